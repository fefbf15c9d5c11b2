#!/usr/bin/python3
"""ref_halting.py — independent plain-PyTorch reference of DASH halting, golden files for tests.

Run (Debian's PyTorch 1.13 lives only in /usr/bin/python3), after make_ref_models.py:

    /usr/bin/python3 scripts/ref_halting.py           # writes tests/data/ref_halt_*.bin
    /usr/bin/python3 scripts/ref_halting.py --check   # regenerate in a temp dir, compare bytes

The model is read back from the committed GGUF (tests/data/ref_<model>.gguf) with the reader in
gguf_writer.py, un-permuted to HF layout, and run by make_ref_models.RefModel in float64,
single-threaded. The method (issue 3, "The method"; as the authors' kvpress plugin does it):

  context prefill of T tokens, L layers, decision layer l_s = floor(ls_frac * L):
  1. layers 0 .. l_s-1 process all T tokens;
  2. in layer l_s, U = attention output after o_proj, before the residual add;
     delta_t = ||U_t||_2 over the model dimension; layer l_s finishes for all T tokens;
  3. keep the K = floor((1 - rho) * T) tokens of largest delta (ties: lower position first);
  4. layers l_s+1 .. L-1 run on the active tokens only, as a shorter dense sequence: Q/K/V of
     active tokens, causal attention among active tokens, RoPE at ORIGINAL positions; the KV
     cache of such a layer holds only the active tokens; halted tokens' hidden states pass
     unchanged to the final norm;
  then the Q question tokens (positions T .. T+Q-1) are prefilled densely through every layer,
  attending to each layer's cache (T entries for layers <= l_s, K entries after) plus
  themselves causally; then greedy decoding of n_decode steps (positions T+Q, T+Q+1, ...).
  rho = 0 (K = T) must equal the dense forward; the script asserts it.

The selection and the greedy path must be robust to float32 rounding in the engine, so the
script asserts margins: the K-th and (K+1)-th largest delta differ by > 1e-4 of max delta, and
every greedy step's top-1 logit beats the runner-up by > 1e-3 of the logit scale.

Golden file tests/data/ref_halt_<case>.bin, little-endian binary:
    char     magic[8]        = "DKHALT01"
    char     model[32]       GGUF file name in tests/data, NUL-padded (e.g. "ref_llama_f32.gguf")
    uint32   n_layer, l_s, T, Q, n_decode, n_vocab, K     (7 values)
    float32  rho, ls_frac                                  (l_s == floor(ls_frac * n_layer))
    int32    ctx_tokens[T]
    int32    question_tokens[Q]
    float32  delta[T]              ||U_t||_2 at layer l_s for every context position
    int32    active[K]             kept original positions, ascending
    float32  ctx_logits[n_vocab]   logits of the LAST context token after the halted prefill
                                   (from its post-l_s state if it was halted)
    float32  q_logits[n_vocab]     logits of the last question token (question prefilled densely)
    int32    decode_tokens[n_decode]   greedy: decode_tokens[0] = argmax(q_logits); token i is
                                   fed at position T+Q+i and decode_tokens[i+1] = argmax of
    float32  decode_logits[n_decode][n_vocab]   the logits it produces (row i)
"""

import math
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_writer as gw  # noqa: E402
import make_ref_models as mrm  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")

# name: (model file, rho, ls_frac, T, Q, n_decode)
CASES = {
    "llama_r50_ls1": ("ref_llama_f32.gguf", 0.5, 0.4, 64, 8, 8),
    "llama_r667_ls1": ("ref_llama_f32.gguf", 0.667, 0.4, 64, 8, 8),
    "llama_r75_ls0": ("ref_llama_f32.gguf", 0.75, 0.0, 64, 8, 8),
    "llama_r0_ls1": ("ref_llama_f32.gguf", 0.0, 0.4, 64, 8, 8),
    "qwen2_r50_ls0": ("ref_qwen2_f32.gguf", 0.5, 0.0, 64, 8, 8),
}


# ------------------------------------------------------------------ model from GGUF ----

def load_model(path):
    """RefModel with weights read back from the GGUF (HF layout: llama q/k un-permuted)."""
    r = gw.read_gguf(path)
    md, t = r["metadata"], r["tensors"]
    a = md["general.architecture"][1]
    g = lambda k: md[a + "." + k][1]  # noqa: E731
    cfg = dict(arch=a, n_embd=g("embedding_length"), n_head=g("attention.head_count"),
               n_head_kv=g("attention.head_count_kv"), n_ff=g("feed_forward_length"),
               n_layer=g("block_count"), n_vocab=t["token_embd.weight"][1][1],
               rope_theta=g("rope.freq_base"), rms_eps=g("attention.layer_norm_rms_epsilon"),
               qkv_bias="blk.0.attn_q.bias" in t, tied="output.weight" not in t)

    def unperm(x, nh):
        hd = x.shape[0] // nh
        return x.reshape(nh, hd // 2, 2, -1).swapaxes(1, 2).reshape(x.shape)

    W = {"embed": t["token_embd.weight"][2], "norm": t["output_norm.weight"][2]}
    if not cfg["tied"]:
        W["lm_head"] = t["output.weight"][2]
    for l in range(cfg["n_layer"]):
        b, p = "blk.%d." % l, "l%d." % l
        q, k = t[b + "attn_q.weight"][2], t[b + "attn_k.weight"][2]
        if a == "llama":
            q, k = unperm(q, cfg["n_head"]), unperm(k, cfg["n_head_kv"])
        W.update({p + "attn_norm": t[b + "attn_norm.weight"][2], p + "q": q, p + "k": k,
                  p + "v": t[b + "attn_v.weight"][2], p + "o": t[b + "attn_output.weight"][2],
                  p + "ffn_norm": t[b + "ffn_norm.weight"][2],
                  p + "gate": t[b + "ffn_gate.weight"][2], p + "up": t[b + "ffn_up.weight"][2],
                  p + "down": t[b + "ffn_down.weight"][2]})
        if cfg["qkv_bias"]:
            for n in ("q", "k", "v"):
                W[p + n + "_bias"] = t[b + "attn_%s.bias" % n][2]
    return mrm.RefModel(cfg, W)


# ------------------------------------------------------------------ halting forward ----

class Caches:
    """Per-layer KV caches of possibly different lengths: k, v (n, n_head_kv, hd), pos (n,)."""

    def __init__(self, n_layer):
        self.k = [None] * n_layer
        self.v = [None] * n_layer
        self.pos = [None] * n_layer

    def append(self, l, k, v, pos):
        if self.k[l] is None:
            self.k[l], self.v[l], self.pos[l] = k, v, pos
        else:
            self.k[l] = torch.cat((self.k[l], k))
            self.v[l] = torch.cat((self.v[l], v))
            self.pos[l] = torch.cat((self.pos[l], pos))


def layer(m, caches, l, h, pos):
    """One decoder layer on rows h (n, d) at original positions pos (n,); appends their K/V to
    layer l's cache, attends causally over the whole cache. Returns (h_out, U)."""
    x = mrm.rms_norm(h, m.W["l%d.attn_norm" % l], m.cfg["rms_eps"])
    q, k, v = m.qkv(l, x, pos)
    caches.append(l, k, v, pos)
    U = m.attn_out(l, m.attend(q, caches.k[l], caches.v[l], pos, caches.pos[l]))
    h = h + U
    return h + m.ffn(l, h), U


def select_active(delta, K):
    """Top-K by delta, ties to the lower position; returned ascending."""
    order = sorted(range(len(delta)), key=lambda i: (-float(delta[i]), i))
    return sorted(order[:K])


def halted_prefill(m, caches, tokens, l_s, rho):
    """Context prefill with DASH; returns (h_final (T, d), delta (T,), active list)."""
    L, T = m.cfg["n_layer"], len(tokens)
    h = m.embed(tokens)
    pos = torch.arange(T)
    for l in range(l_s):
        h, _ = layer(m, caches, l, h, pos)
    if l_s >= L:
        return h, None, list(range(T))
    h, U = layer(m, caches, l_s, h, pos)
    delta = U.norm(dim=-1)
    K = int(math.floor((1.0 - rho) * T))
    active = select_active(delta, K)
    idx = torch.as_tensor(active, dtype=torch.long)
    ha = h[idx]
    for l in range(l_s + 1, L):
        ha, _ = layer(m, caches, l, ha, idx)
    h = h.clone()
    h[idx] = ha
    return h, delta, active


def dense_chunk(m, caches, tokens, start):
    """Dense prefill/decode of tokens at positions start.. through every layer; returns h."""
    h = m.embed(tokens)
    pos = torch.arange(start, start + len(tokens))
    for l in range(m.cfg["n_layer"]):
        h, _ = layer(m, caches, l, h, pos)
    return h


def run_case(m, ctx, question, rho, ls_frac, n_decode):
    L, T = m.cfg["n_layer"], len(ctx)
    l_s = int(math.floor(ls_frac * L))
    caches = Caches(L)
    with torch.no_grad():
        h, delta, active = halted_prefill(m, caches, ctx, l_s, rho)
        ctx_logits = m.logits(h[-1:])[0]
        hq = dense_chunk(m, caches, question, T)
        q_logits = m.logits(hq[-1:])[0]
        dec_tokens, dec_logits = [], []
        cur = q_logits
        for i in range(n_decode):
            tok = int(cur.argmax())
            dec_tokens.append(tok)
            cur = m.logits(dense_chunk(m, caches, [tok], T + len(question) + i))[0]
            dec_logits.append(cur)
        # caches: layers <= l_s hold all T + Q + n_decode, later layers K + Q + n_decode
        n_after = len(question) + n_decode
        for l in range(L):
            want = (T if l <= l_s else len(active)) + n_after
            assert caches.k[l].shape[0] == want
    return dict(l_s=l_s, delta=delta, active=active, ctx_logits=ctx_logits, q_logits=q_logits,
                dec_tokens=dec_tokens, dec_logits=torch.stack(dec_logits))


def check_margins(name, res, T, K):
    scale = float(res["q_logits"].abs().max())
    if K < T:
        d = np.sort(res["delta"].numpy())[::-1]
        gap = (d[K - 1] - d[K]) / d[0]
        assert gap > 1e-4, "%s: selection margin %.2e too small" % (name, gap)
    for row in [res["q_logits"]] + list(res["dec_logits"][:-1]):
        top = torch.topk(row, 2).values
        g = float(top[0] - top[1]) / scale
        assert g > 1e-3, "%s: greedy margin %.2e too small" % (name, g)


def write_case(path, model_name, m, ctx, question, rho, ls_frac, res):
    L, T, Q = m.cfg["n_layer"], len(ctx), len(question)
    K, V = len(res["active"]), m.cfg["n_vocab"]
    delta = res["delta"] if res["delta"] is not None else torch.zeros(T)
    b = bytearray(b"DKHALT01")
    b += model_name.encode().ljust(32, b"\0")
    b += struct.pack("<7I", L, res["l_s"], T, Q, len(res["dec_tokens"]), V, K)
    b += struct.pack("<2f", rho, ls_frac)
    b += np.asarray(ctx, dtype="<i4").tobytes() + np.asarray(question, dtype="<i4").tobytes()
    b += delta.numpy().astype("<f4").tobytes()
    b += np.asarray(res["active"], dtype="<i4").tobytes()
    b += res["ctx_logits"].numpy().astype("<f4").tobytes()
    b += res["q_logits"].numpy().astype("<f4").tobytes()
    b += np.asarray(res["dec_tokens"], dtype="<i4").tobytes()
    b += res["dec_logits"].numpy().astype("<f4").tobytes()
    with open(path + ".tmp", "wb") as f:
        f.write(b)
    os.replace(path + ".tmp", path)


def generate(outdir, verbose=True):
    torch.set_num_threads(1)
    ctx = [int(x) for x in open(os.path.join(DATA, "ref_prompt.txt")).read().split()]
    files = []
    models = {}
    for name, (model_name, rho, ls_frac, T, Q, n_dec) in CASES.items():
        if model_name not in models:
            models[model_name] = load_model(os.path.join(DATA, model_name))
        m = models[model_name]
        g = torch.Generator().manual_seed(mrm.SEED + 99)
        question = torch.randint(3, m.cfg["n_vocab"], (Q,), generator=g).tolist()
        c = ctx[:T]
        res = run_case(m, c, question, rho, ls_frac, n_dec)
        K = len(res["active"])
        assert K == int(math.floor((1.0 - rho) * T))
        check_margins(name, res, T, K)
        if rho == 0.0:
            # no halting: context logits equal the dense golden of make_ref_models
            _, dense = mrm.read_logits(os.path.join(DATA, model_name.replace(".gguf", ".logits")))
            err = np.abs(res["ctx_logits"].numpy() - dense[T - 1]).max() / np.abs(dense).max()
            assert err < 1e-6, "%s: rho=0 differs from dense golden (%.2e)" % (name, err)
        else:
            # halting must change something, or the golden proves nothing
            dres = run_case(m, c, question, 0.0, ls_frac, n_dec)
            moved = float((dres["q_logits"] - res["q_logits"]).abs().max() /
                          res["q_logits"].abs().max())
            assert moved > 1e-2, "%s: halting does not move q_logits (%.2e)" % (name, moved)
        p = os.path.join(outdir, "ref_halt_%s.bin" % name)
        write_case(p, model_name, m, c, question, rho, ls_frac, res)
        files.append(p)
        if verbose:
            print("%s: L=%d l_s=%d T=%d K=%d Q=%d decode=%s last_ctx_active=%s"
                  % (p, m.cfg["n_layer"], res["l_s"], T, K, Q, res["dec_tokens"],
                     (T - 1) in res["active"]))
    return files


def main():
    return mrm.golden_main(__doc__, generate, "halting goldens")


if __name__ == "__main__":
    sys.exit(main())
