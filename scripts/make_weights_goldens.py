#!/usr/bin/python3
"""make_weights_goldens.py — golden logits for tests/test_weights.c (weights kept in file type).

Run (Debian's PyTorch 1.13 lives only in /usr/bin/python3):

    /usr/bin/python3 scripts/make_weights_goldens.py           # (re)writes tests/data/weights_qwen2_*.logits
    /usr/bin/python3 scripts/make_weights_goldens.py --check   # regenerate and compare byte for byte

The model: Qwen2.5-0.5B's attention geometry (n_embd 896, 14 query heads and 2 KV heads of 64,
NEOX RoPE theta 1e6, rms eps 1e-6, Q/K/V biases) with 2 layers, n_ff 256, vocab 1024; untied
output for BF16 and Q8_0, tied for F16. tests/test_weights.c writes it as a GGUF of each type
with its own C writer; the values come from an integer rule mirrored here (t_value there,
`values` here), every one exactly representable in the storage type, so both sides hold the same
dequantised weights without sharing a file:

    r(seed, i) = splitmix64 mix of seed + (i+1) * 0x9E3779B97F4A7C15   (counter based)
    tensor k of the list (token_embd, per layer attn_norm, q, k, v, q/k/v bias, o, ffn_norm,
    gate, up, down, then output_norm, output; a tied output keeps its index) has seed (k+1)*1000003
    s = 7 for token_embd, else 7 + ceil(log2(cols) / 2)
    BF16/F16 element i: (r % 511 - 255) * 2^-(s + (r >> 32) % 4)          (<= 8 significant bits)
    Q8_0 element i:     d_b * ((r >> 8) % 255 - 127), d_b = (64 + rd % 64) * 2^-(s + 6),
                        rd = r(seed ^ 0xD5, i // 32)
    norms (F32):        1 + (r % 256 - 128) * 2^-10;  biases (F32): (r % 256 - 128) * 2^-8
    prompt: 16 tokens, token i = r(777, i) % n_vocab

The forward is make_ref_models.RefModel: an independent plain PyTorch (HF-style) decoder in
float64 — no engine code is shared. Output format: DKLOGIT1 (see make_ref_models.py), all 16 rows.
"""

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_ref_models as ref  # noqa: E402

CFG = dict(arch="qwen2", n_embd=896, n_head=14, n_head_kv=2, n_ff=256, n_layer=2, n_vocab=1024,
           rope_theta=1000000.0, rms_eps=1e-6, qkv_bias=True)
TYPES = {"bf16": False, "f16": True, "q8_0": False}   # type: tied output
N_PROMPT = 16
M64 = (1 << 64) - 1


def rand(seed, idx):
    """splitmix64 of seed + (idx+1)*gamma for an array of indices (uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (idx.astype(np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def shift(kind, cols):
    if kind == "embd":
        return 7
    e = 0
    while (1 << (2 * e)) < cols:
        e += 1
    return 7 + e


def values(kind, rows, cols, seed, q8):
    n = rows * cols
    i = np.arange(n, dtype=np.uint64)
    r = rand(seed, i)
    if kind == "norm":
        v = 1.0 + ((r % np.uint64(256)).astype(np.float64) - 128.0) * 2.0 ** -10
    elif kind == "bias":
        v = ((r % np.uint64(256)).astype(np.float64) - 128.0) * 2.0 ** -8
    else:
        s = shift(kind, cols)
        if q8:
            rd = rand(seed ^ 0xD5, i // np.uint64(32))
            d = (64.0 + (rd % np.uint64(64)).astype(np.float64)) * 2.0 ** -(s + 6)
            q = ((r >> np.uint64(8)) % np.uint64(255)).astype(np.float64) - 127.0
            v = d * q
        else:
            k = (r % np.uint64(511)).astype(np.float64) - 255.0
            j = ((r >> np.uint64(32)) % np.uint64(4)).astype(np.float64)
            v = k * 2.0 ** -(s + j)
    v32 = v.astype(np.float32)
    assert np.array_equal(v32.astype(np.float64), v), "value not exact in f32"
    return v32.reshape(rows, cols) if rows > 1 or kind in ("embd", "mat") else v32


def make_weights(ftype, tied):
    c = CFG
    d, hd = c["n_embd"], c["n_embd"] // c["n_head"]
    nq, nkv, ff, V = c["n_head"] * hd, c["n_head_kv"] * hd, c["n_ff"], c["n_vocab"]
    q8 = ftype == "q8_0"
    W = {}
    idx = [0]

    def add(key, kind, rows, cols):
        seed = (idx[0] + 1) * 1000003
        idx[0] += 1
        if key is not None:
            W[key] = values(kind, rows, cols, seed, q8)

    add("embed", "embd", V, d)
    for l in range(c["n_layer"]):
        p = "l%d." % l
        add(p + "attn_norm", "norm", 1, d)
        add(p + "q", "mat", nq, d)
        add(p + "k", "mat", nkv, d)
        add(p + "v", "mat", nkv, d)
        add(p + "q_bias", "bias", 1, nq)
        add(p + "k_bias", "bias", 1, nkv)
        add(p + "v_bias", "bias", 1, nkv)
        add(p + "o", "mat", d, nq)
        add(p + "ffn_norm", "norm", 1, d)
        add(p + "gate", "mat", ff, d)
        add(p + "up", "mat", ff, d)
        add(p + "down", "mat", d, ff)
    add("norm", "norm", 1, d)
    add(None if tied else "lm_head", "mat", V, d)
    if ftype == "f16":   # every value must be exact in F16 too
        for k, v in W.items():
            if v.ndim == 2:
                assert np.array_equal(v.astype(np.float16).astype(np.float32), v), k
    if ftype == "bf16":
        for k, v in W.items():
            if v.ndim == 2:
                assert not (v.view(np.uint32) & 0xFFFF).any(), k
    return W


def prompt():
    return [int(x) for x in rand(777, np.arange(N_PROMPT, dtype=np.uint64)) % np.uint64(CFG["n_vocab"])]


def generate(outdir, verbose=True):
    torch.set_num_threads(1)
    files = []
    tokens = prompt()
    for ftype, tied in TYPES.items():
        cfg = dict(CFG, tied=tied)
        W = make_weights(ftype, tied)
        model = ref.RefModel(cfg, W)
        with torch.no_grad():
            lg = model.forward(tokens).numpy()
        scale = np.abs(lg).max()
        # the golden must expose the engine bugs make_ref_models checks for: each moves the logits by
        # more than 5x the test tolerance (1e-3 of scale)
        for mut in ref.MUTANTS["qwen2"]:
            with torch.no_grad():
                gap = np.abs(ref.RefModel(cfg, W, mutant=mut).forward(tokens).numpy() - lg).max() / scale
            assert gap > 5e-3, "golden does not expose %s (gap %.2e)" % (mut, gap)
            if verbose:
                print("  %s: mutant %-13s moves logits by %.3f of scale" % (ftype, mut, gap))
        path = os.path.join(outdir, "weights_qwen2_%s.logits" % ftype)
        ref.write_logits(path, tokens, lg)
        t2, l2 = ref.read_logits(path)
        assert list(t2) == tokens and np.abs(l2 - lg).max() <= scale * 1e-7
        files.append(path)
        if verbose:
            print("%s: logits %dx%d, max|logit| %.3f, top1 of last %d"
                  % (path, lg.shape[0], lg.shape[1], scale, int(lg[-1].argmax())))
    return files


def main():
    return ref.golden_main(__doc__, generate, "golden files")


if __name__ == "__main__":
    sys.exit(main())
