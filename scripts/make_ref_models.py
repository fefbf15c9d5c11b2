#!/usr/bin/python3
"""make_ref_models.py — small random-weight reference models + golden logits for dashkit's tests.

Run (Debian's PyTorch 1.13 lives only in /usr/bin/python3):

    /usr/bin/python3 scripts/make_ref_models.py            # (re)writes tests/data/ref_*
    /usr/bin/python3 scripts/make_ref_models.py --check    # regenerate in a temp dir and compare
                                                           # byte for byte with tests/data/

Everything is seeded and computed single-threaded in float64, so a rerun rewrites identical
bytes.  The forward below is an independent, plain HF-style PyTorch implementation (as HF
transformers' LlamaForCausalLM / Qwen2ForCausalLM compute it): RMSNorm, RoPE with rotate_half on
UNPERMUTED q/k, GQA by repeating each KV head for n_head/n_head_kv consecutive query heads,
SwiGLU FFN, causal softmax attention; no engine code is shared.

Models (tests/data/ref_<name>_<type>.gguf, tokenizer.ggml.model = llama, SPM-style vocab):
  llama : n_embd 64, 4 heads x 16, 2 KV heads, n_ff 128, 3 layers, vocab 320, theta 1e4,
          rms eps 1e-5, untied output.weight.  attn_q/attn_k rows PERMUTED as llama.cpp's
          convert_hf_to_gguf.py does (GGML "normal" adjacent-pair RoPE on the GGUF side).
  qwen2 : n_embd 64, 8 heads x 8, 2 KV heads, n_ff 96, 2 layers, vocab 320, theta 1e6,
          rms eps 1e-6, q/k/v biases, tied output (no output.weight), NOT permuted (NEOX RoPE).
          Written with general.alignment = 64 (the llama files use the implicit default 32).
  tiny  : n_embd 32, 2 heads x 16, 1 KV head, n_ff 64, 1 layer, vocab 288, untied, llama
          layout; written as Q8_0 and BF16 (ref_tiny_{q8_0,bf16}); its golden covers a 16-token
          prompt only, to keep tests/data small.
  F16/BF16/Q8_0 files store 2-D weights in that type and 1-D tensors (norms, biases) as F32,
  as llama.cpp does.
  The golden of each file is computed from the weights exactly as stored (F16 values upcast).

Golden logits: tests/data/ref_<name>_<type>.logits, little-endian binary:
    char     magic[8]   = "DKLOGIT1"
    uint32   n_tokens   (64; 16 for tiny)
    uint32   n_vocab
    int32    tokens[n_tokens]              the prompt ids (the 64 of llama/qwen2 are also in
                                           tests/data/ref_prompt.txt)
    float32  logits[n_tokens][n_vocab]     row t = next-token logits after tokens[0..t]
"""

import argparse
import filecmp
import math
import os
import struct
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_writer as gw  # noqa: E402

SEED = 20240607
N_PROMPT = 64
N_CTX_TRAIN = 256

CONFIGS = {
    "llama": dict(arch="llama", n_embd=64, n_head=4, n_head_kv=2, n_ff=128, n_layer=3,
                  n_vocab=320, rope_theta=10000.0, rms_eps=1e-5, qkv_bias=False, tied=False,
                  embd_std=1.0, alignment=32),
    "qwen2": dict(arch="qwen2", n_embd=64, n_head=8, n_head_kv=2, n_ff=96, n_layer=2,
                  n_vocab=320, rope_theta=1000000.0, rms_eps=1e-6, qkv_bias=True, tied=True,
                  embd_std=0.25, alignment=64),
    # quantised storage types: a tiny model (Q8_0 needs ne[0] % 32 == 0) and a short prompt
    "tiny": dict(arch="llama", n_embd=32, n_head=2, n_head_kv=1, n_ff=64, n_layer=1,
                 n_vocab=288, rope_theta=10000.0, rms_eps=1e-5, qkv_bias=False, tied=False,
                 embd_std=1.0, alignment=32, ftypes=("q8_0", "bf16"), n_prompt=16),
}
FTYPES = {  # name: (GGML type of 2-D weights, general.file_type, rounding the engine sees)
    "f32": (gw.GGMLType.F32, gw.LlamaFileType.ALL_F32, lambda v: v),
    "f16": (gw.GGMLType.F16, gw.LlamaFileType.MOSTLY_F16, gw.f16_round),
    "bf16": (gw.GGMLType.BF16, gw.LlamaFileType.MOSTLY_BF16, gw.bf16_round),
    "q8_0": (gw.GGMLType.Q8_0, gw.LlamaFileType.MOSTLY_Q8_0, gw.q8_0_round),
}


# ------------------------------------------------------------------ vocabulary ----

SPACE = "\u2581"
WORDS = ["the", "and", "was", "said", "cat", "dog", "she", "he", "it", "in", "of", "to",
         "a", "is", "on", "day", "one", "time", "lily", "tom", "ball", "sun", "big", "happy"]


def build_vocab(n_vocab):
    """SPM-style vocab: <unk>,<s>,</s>, 256 byte tokens, then pieces with descending scores.
    Every multi-character piece has all its prefixes in the vocab, so a score-driven
    bigram-merge tokenizer can reach it."""
    tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    types = [gw.TokenType.UNKNOWN, gw.TokenType.CONTROL, gw.TokenType.CONTROL] + \
        [gw.TokenType.BYTE] * 256
    scores = [0.0] * len(tokens)
    pieces = [SPACE] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + [",", ".", "!"]
    for w in WORDS:
        s = SPACE + w
        for i in range(2, len(s) + 1):
            if s[:i] not in pieces:
                pieces.append(s[:i])
    for p in ["er", "in", "he", "an", "on", "at", "en", "ed", "ing", "ll"]:
        if p not in pieces:
            pieces.append(p)
    need = n_vocab - len(tokens)
    if len(pieces) < need:
        raise SystemExit("vocab: only %d pieces for %d slots" % (len(pieces), need))
    for i, p in enumerate(pieces[:need]):
        tokens.append(p)
        types.append(gw.TokenType.NORMAL)
        scores.append(-float(i))
    return tokens, scores, types


# ------------------------------------------------------------------ weights ----

def make_weights(cfg, gen):
    """HF-layout float32 weights (torch Linear: (out, in)), deterministic from `gen`."""
    d, hd = cfg["n_embd"], cfg["n_embd"] // cfg["n_head"]
    nq, nkv, ff, V = cfg["n_head"] * hd, cfg["n_head_kv"] * hd, cfg["n_ff"], cfg["n_vocab"]

    def rn(*shape, std=1.0):
        return (torch.randn(*shape, generator=gen, dtype=torch.float32) * std).numpy()

    W = {"embed": rn(V, d, std=cfg["embd_std"]), "norm": 1.0 + rn(d, std=0.1)}
    if not cfg["tied"]:
        W["lm_head"] = rn(V, d, std=1.0 / math.sqrt(d))
    for l in range(cfg["n_layer"]):
        p = "l%d." % l
        W[p + "attn_norm"] = 1.0 + rn(d, std=0.1)
        W[p + "q"] = rn(nq, d, std=1.0 / math.sqrt(d))
        W[p + "k"] = rn(nkv, d, std=1.0 / math.sqrt(d))
        W[p + "v"] = rn(nkv, d, std=1.0 / math.sqrt(d))
        if cfg["qkv_bias"]:
            W[p + "q_bias"] = rn(nq, std=0.5)
            W[p + "k_bias"] = rn(nkv, std=0.5)
            W[p + "v_bias"] = rn(nkv, std=0.5)
        W[p + "o"] = rn(d, nq, std=1.0 / math.sqrt(nq))
        W[p + "ffn_norm"] = 1.0 + rn(d, std=0.1)
        W[p + "gate"] = rn(ff, d, std=1.0 / math.sqrt(d))
        W[p + "up"] = rn(ff, d, std=1.0 / math.sqrt(d))
        W[p + "down"] = rn(d, ff, std=1.0 / math.sqrt(ff))
    return {k: v.astype(np.float32) for k, v in W.items()}


def stored_weights(W, ftype):
    """The values an engine sees after loading the file of type ftype: F16/BF16/Q8_0 round
    every 2-D weight; 1-D tensors stay F32."""
    rnd = FTYPES[ftype][2]
    return {k: (rnd(v) if v.ndim == 2 else v) for k, v in W.items()}


# ------------------------------------------------------------------ torch forward ----

def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope(x, pos, theta):
    """x: (T, H, hd) in HF rotate_half layout; pos: (T,) int64 original positions."""
    hd = x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    ang = pos.to(torch.float64)[:, None] * inv_freq[None, :]
    emb = torch.cat((ang, ang), dim=-1)[:, None, :]
    return x * emb.cos() + rotate_half(x) * emb.sin()


def rope_pairs(x, pos, theta):
    """GGML "normal" RoPE: rotates adjacent pairs (x[2i], x[2i+1]) by pos * theta^(-2i/hd)."""
    hd = x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    ang = pos.to(torch.float64)[:, None, None] * inv_freq[None, None, :]
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * ang.cos() - b * ang.sin(), a * ang.sin() + b * ang.cos()),
                       -1).reshape(x.shape)


# Deliberate engine bugs the goldens must expose (each must move logits by > 1e-2 of scale).
MUTANTS = {"llama": ["rope_pairs", "gqa_modulo", "theta_swapped"],
           "qwen2": ["rope_pairs", "gqa_modulo", "theta_swapped", "no_bias"]}


class RefModel:
    """Plain HF-style decoder in float64. All methods take/return torch float64 tensors."""

    def __init__(self, cfg, W, mutant=None):
        self.cfg = cfg
        self.mutant = mutant  # None, or a deliberate bug (see MUTANTS) for the sensitivity check
        self.W = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in W.items()}
        self.hd = cfg["n_embd"] // cfg["n_head"]

    def embed(self, tokens):
        return self.W["embed"][torch.as_tensor(tokens, dtype=torch.long)]

    def qkv(self, l, x, pos):
        """x: (T, d) normed input; returns q (T,H,hd), k, v (T,Hkv,hd) with RoPE applied."""
        c, W, p = self.cfg, self.W, "l%d." % l
        q, k, v = x @ W[p + "q"].T, x @ W[p + "k"].T, x @ W[p + "v"].T
        if c["qkv_bias"] and self.mutant != "no_bias":
            q, k, v = q + W[p + "q_bias"], k + W[p + "k_bias"], v + W[p + "v_bias"]
        T = x.shape[0]
        q, k = q.view(T, c["n_head"], self.hd), k.view(T, c["n_head_kv"], self.hd)
        if self.mutant == "rope_pairs":      # adjacent-pair RoPE on unpermuted rows
            q, k = rope_pairs(q, pos, c["rope_theta"]), rope_pairs(k, pos, c["rope_theta"])
        else:
            th = c["rope_theta"]
            if self.mutant == "theta_swapped":   # 1e4 <-> 1e6 (the other arch's default)
                th = 1e6 if th < 1e5 else 1e4
            q, k = rope(q, pos, th), rope(k, pos, th)
        return q, k, v.view(T, c["n_head_kv"], self.hd)

    def attend(self, q, k, v, q_pos, k_pos):
        """Causal attention of queries at q_pos over keys at k_pos (key j visible iff
        k_pos[j] <= q_pos[i]); GQA: query head h reads KV head h // (n_head/n_head_kv)."""
        rep = self.cfg["n_head"] // self.cfg["n_head_kv"]
        if self.mutant == "gqa_modulo":      # head h reads KV head h % n_head_kv
            k, v = k.repeat(1, rep, 1), v.repeat(1, rep, 1)
        else:
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        s = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(self.hd)
        mask = k_pos[None, :] > q_pos[:, None]
        s = s.masked_fill(mask[None, :, :], float("-inf"))
        a = torch.softmax(s, dim=-1)
        return torch.einsum("hqk,khd->qhd", a, v).reshape(q.shape[0], -1)

    def attn_out(self, l, o):
        return o @ self.W["l%d.o" % l].T

    def ffn(self, l, h):
        c, W, p = self.cfg, self.W, "l%d." % l
        x = rms_norm(h, W[p + "ffn_norm"], c["rms_eps"])
        return (torch.nn.functional.silu(x @ W[p + "gate"].T) * (x @ W[p + "up"].T)) @ W[p + "down"].T

    def logits(self, h):
        x = rms_norm(h, self.W["norm"], self.cfg["rms_eps"])
        head = self.W["embed"] if self.cfg["tied"] else self.W["lm_head"]
        return x @ head.T

    def forward(self, tokens):
        """Dense causal forward of the whole sequence; returns logits (T, V)."""
        c = self.cfg
        h = self.embed(tokens)
        pos = torch.arange(h.shape[0])
        for l in range(c["n_layer"]):
            x = rms_norm(h, self.W["l%d.attn_norm" % l], c["rms_eps"])
            q, k, v = self.qkv(l, x, pos)
            h = h + self.attn_out(l, self.attend(q, k, v, pos, pos))
            h = h + self.ffn(l, h)
        return self.logits(h)


# ------------------------------------------------------------------ GGUF ----

def write_gguf(path, name, cfg, W, ftype, vocab):
    c = cfg
    arch = c["arch"]
    hd = c["n_embd"] // c["n_head"]
    wt = FTYPES[ftype][0]
    w = gw.GGUFWriter(path, alignment=c["alignment"])
    w.add_string("general.architecture", arch)
    w.add_string("general.name", "dashkit-ref-%s" % name)
    w.add_uint32(arch + ".context_length", N_CTX_TRAIN)
    w.add_uint32(arch + ".embedding_length", c["n_embd"])
    w.add_uint32(arch + ".block_count", c["n_layer"])
    w.add_uint32(arch + ".feed_forward_length", c["n_ff"])
    w.add_uint32(arch + ".rope.dimension_count", hd)
    w.add_uint32(arch + ".attention.head_count", c["n_head"])
    w.add_uint32(arch + ".attention.head_count_kv", c["n_head_kv"])
    w.add_float32(arch + ".rope.freq_base", c["rope_theta"])
    w.add_float32(arch + ".attention.layer_norm_rms_epsilon", c["rms_eps"])
    w.add_uint32("general.file_type", FTYPES[ftype][1])
    tokens, scores, types = vocab
    w.add_tokenizer_spm(tokens, scores, types, bos_id=1, eos_id=2, unk_id=0)

    def mat(n, a):
        w.add_tensor(n, a, wt)

    def vec(n, a):
        w.add_tensor(n, a, gw.GGMLType.F32)

    permute = arch == "llama"
    mat("token_embd.weight", W["embed"])
    for l in range(c["n_layer"]):
        p, b = "l%d." % l, "blk.%d." % l
        vec(b + "attn_norm.weight", W[p + "attn_norm"])
        q, k = W[p + "q"], W[p + "k"]
        if permute:
            q = gw.llama_permute_qk(q, c["n_head"], c["n_head"])
            k = gw.llama_permute_qk(k, c["n_head"], c["n_head_kv"])
        mat(b + "attn_q.weight", q)
        mat(b + "attn_k.weight", k)
        mat(b + "attn_v.weight", W[p + "v"])
        if c["qkv_bias"]:
            vec(b + "attn_q.bias", W[p + "q_bias"])
            vec(b + "attn_k.bias", W[p + "k_bias"])
            vec(b + "attn_v.bias", W[p + "v_bias"])
        mat(b + "attn_output.weight", W[p + "o"])
        vec(b + "ffn_norm.weight", W[p + "ffn_norm"])
        mat(b + "ffn_gate.weight", W[p + "gate"])
        mat(b + "ffn_up.weight", W[p + "up"])
        mat(b + "ffn_down.weight", W[p + "down"])
    vec("output_norm.weight", W["norm"])
    if not c["tied"]:
        mat("output.weight", W["lm_head"])
    return w.write()


def check_roundtrip(path, cfg, Wst):
    """Parse the file back and check every tensor equals the (stored-precision) weight, the
    permutation included, and the hyper-parameters."""
    r = gw.read_gguf(path)
    md, t = r["metadata"], r["tensors"]
    a = cfg["arch"]
    assert md["general.architecture"][1] == a
    assert md[a + ".attention.head_count_kv"][1] == cfg["n_head_kv"]
    assert md[a + ".block_count"][1] == cfg["n_layer"]
    assert len(md["tokenizer.ggml.tokens"][1]) == cfg["n_vocab"]
    assert r["alignment"] == cfg["alignment"]
    assert np.array_equal(t["token_embd.weight"][2], Wst["embed"])
    assert t["token_embd.weight"][1] == [cfg["n_embd"], cfg["n_vocab"]]
    assert ("output.weight" in t) == (not cfg["tied"])
    for l in range(cfg["n_layer"]):
        p, b = "l%d." % l, "blk.%d." % l
        q, k = t[b + "attn_q.weight"][2], t[b + "attn_k.weight"][2]
        if a == "llama":   # undo the permutation: rows (2i, 2i+1) -> (i, i + hd/2)
            def unperm(x, nh):
                hd = x.shape[0] // nh
                return x.reshape(nh, hd // 2, 2, -1).swapaxes(1, 2).reshape(x.shape)
            q, k = unperm(q, cfg["n_head"]), unperm(k, cfg["n_head_kv"])
        assert np.array_equal(q, Wst[p + "q"]) and np.array_equal(k, Wst[p + "k"])
        assert np.array_equal(t[b + "ffn_down.weight"][2], Wst[p + "down"])
        assert t[b + "attn_norm.weight"][0] == gw.GGMLType.F32
        if cfg["qkv_bias"]:
            assert np.array_equal(t[b + "attn_k.bias"][2], Wst[p + "k_bias"])


def permuted_rope_matches(cfg, W):
    """Independent check of the permutation semantics: adjacent-pair RoPE on permuted rows
    equals rotate_half RoPE on HF rows (up to the same permutation of outputs)."""
    hd = cfg["n_embd"] // cfg["n_head"]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, cfg["n_embd"], generator=g, dtype=torch.float64)
    pos = torch.arange(5) * 7
    wq = torch.from_numpy(W["l0.q"].astype(np.float64))
    hf = rope((x @ wq.T).view(5, cfg["n_head"], hd), pos, cfg["rope_theta"])
    wp = torch.from_numpy(gw.llama_permute_qk(W["l0.q"], cfg["n_head"]).astype(np.float64))
    y = (x @ wp.T).view(5, cfg["n_head"], hd // 2, 2)
    inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    ang = pos.double()[:, None, None] * inv[None, None, :]
    y0 = y[..., 0] * ang.cos() - y[..., 1] * ang.sin()
    y1 = y[..., 0] * ang.sin() + y[..., 1] * ang.cos()
    gg = torch.stack((y0, y1), -1).reshape(5, cfg["n_head"], hd)
    back = torch.cat((gg[..., 0::2], gg[..., 1::2]), -1)    # pairs -> halves
    return float((back - hf).abs().max()) < 1e-12


# ------------------------------------------------------------------ goldens ----

def make_prompt(n_vocab, n=N_PROMPT):
    g = torch.Generator().manual_seed(SEED + 7)
    body = torch.randint(3, n_vocab, (n - 1,), generator=g).tolist()
    return [1] + body


def write_logits(path, tokens, logits):
    T, V = logits.shape
    with open(path + ".tmp", "wb") as f:
        f.write(b"DKLOGIT1" + struct.pack("<II", T, V))
        f.write(np.asarray(tokens, dtype="<i4").tobytes())
        f.write(np.ascontiguousarray(logits, dtype="<f4").tobytes())
    os.replace(path + ".tmp", path)


def read_logits(path):
    with open(path, "rb") as f:
        b = f.read()
    assert b[:8] == b"DKLOGIT1"
    T, V = struct.unpack("<II", b[8:16])
    toks = np.frombuffer(b, dtype="<i4", count=T, offset=16)
    lg = np.frombuffer(b, dtype="<f4", count=T * V, offset=16 + 4 * T).reshape(T, V)
    return toks, lg


def generate(outdir, verbose=True):
    torch.set_num_threads(1)
    files = []
    main_tokens = None
    for ci, (name, cfg) in enumerate(CONFIGS.items()):
        gen = torch.Generator().manual_seed(SEED + ci)
        W = make_weights(cfg, gen)
        assert permuted_rope_matches(cfg, W), "permutation/RoPE self-check failed"
        vocab = build_vocab(cfg["n_vocab"])
        tokens = make_prompt(cfg["n_vocab"], cfg.get("n_prompt", N_PROMPT))
        if main_tokens is None:
            main_tokens = tokens
        for ftype in cfg.get("ftypes", ("f32", "f16")):
            base = os.path.join(outdir, "ref_%s_%s" % (name, ftype))
            size = write_gguf(base + ".gguf", name, cfg, W, ftype, vocab)
            Wst = stored_weights(W, ftype)
            check_roundtrip(base + ".gguf", cfg, Wst)
            model = RefModel(cfg, Wst)
            with torch.no_grad():
                lg = model.forward(tokens).numpy()
                # prefix consistency of the causal reference itself
                n40 = min(40, len(tokens) - 1)
                lg40 = model.forward(tokens[:n40]).numpy()
            assert np.abs(lg[:n40] - lg40).max() < 1e-9
            scale = np.abs(lg).max()
            for mut in MUTANTS.get(name, []):
                with torch.no_grad():
                    lm = RefModel(cfg, Wst, mutant=mut).forward(tokens).numpy()
                gap = np.abs(lm - lg).max() / scale
                assert gap > 1e-2, "golden does not expose bug %s (gap %.2e)" % (mut, gap)
                if verbose:
                    print("  mutant %-13s moves logits by %.3f of scale" % (mut, gap))
            write_logits(base + ".logits", tokens, lg)
            t2, l2 = read_logits(base + ".logits")
            assert list(t2) == tokens and np.abs(l2 - lg).max() <= np.abs(lg).max() * 1e-7
            files += [base + ".gguf", base + ".logits"]
            if verbose:
                print("%s: %d bytes; logits %dx%d, max|logit| %.3f, top1 of last %d"
                      % (base, size, lg.shape[0], lg.shape[1], np.abs(lg).max(),
                         int(lg[-1].argmax())))
    p = os.path.join(outdir, "ref_prompt.txt")
    with open(p, "w") as f:
        f.write(" ".join(str(t) for t in main_tokens) + "\n")
    files.append(p)
    return files


def generate_or_check(generate, out, check, what):
    """Writes generate(dir, verbose)'s files into `out`, or with `check` regenerates them into a
    temp dir and compares each with its twin in `out` byte for byte. Returns the exit status."""
    if check:
        with tempfile.TemporaryDirectory() as d:
            files = generate(d, verbose=False)
            bad = [os.path.basename(f) for f in files
                   if not filecmp.cmp(f, os.path.join(out, os.path.basename(f)), shallow=False)]
        if bad:
            print("differs: " + " ".join(bad))
            return 1
        print("all %d %s regenerate byte-identically" % (len(files), what))
        return 0
    os.makedirs(out, exist_ok=True)
    generate(out)
    return 0


def golden_main(doc, generate, what):
    """The command line of a golden generator: --out DIR (default tests/data), --check."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "tests", "data"))
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temp dir and compare with --out byte for byte")
    a = ap.parse_args()
    return generate_or_check(generate, a.out, a.check, what)


def main():
    gw.self_test(tempfile.gettempdir())
    return golden_main(__doc__, generate, "reference files")


if __name__ == "__main__":
    sys.exit(main())
