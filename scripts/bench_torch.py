#!/usr/bin/python3
"""bench_torch.py — times the same dense prefill as `dashkit bench --shape qwen2-0.5b` in PyTorch
(CPU, float32, plain ops: torch 1.13 has no scaled_dot_product_attention) for the README comparison.

Run with Debian's torch and the BLAS core fixed for both tools, e.g.
    OPENBLAS_CORETYPE=SkylakeX nice /usr/bin/python3 scripts/bench_torch.py --tokens 2048
Prints prefill_wall_s (median of --reps) and torch_threads. Weights are random (the time does not
depend on their values); logits only for the last row, as dashkit bench does."""
import argparse
import statistics
import time

import torch

SHAPES = {"qwen2-0.5b": dict(n_layer=24, d=896, n_head=14, n_kv=2, hd=64, ff=4864, vocab=151936, theta=1e6)}


def rope_neox(x, cos, sin):
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="qwen2-0.5b", choices=sorted(SHAPES))
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c = SHAPES[a.shape]
    d, H, KV, hd, ff, T = c["d"], c["n_head"], c["n_kv"], c["hd"], c["ff"], a.tokens
    g = H // KV
    r = lambda *s: torch.randn(*s) * (1.0 / s[-1] ** 0.5)
    emb = torch.randn(c["vocab"], d)
    layers = [dict(wq=r(H * hd, d), bq=torch.zeros(H * hd), wk=r(KV * hd, d), bk=torch.zeros(KV * hd),
                   wv=r(KV * hd, d), bv=torch.zeros(KV * hd), wo=r(d, H * hd), n1=torch.ones(d), n2=torch.ones(d),
                   wg=r(ff, d), wu=r(ff, d), wd=r(d, ff)) for _ in range(c["n_layer"])]
    nf = torch.ones(d)
    inv = 1.0 / (c["theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv[None, :]
    cos, sin = ang.cos(), ang.sin()
    mask = torch.full((T, T), float("-inf")).triu(1)
    tokens = torch.randint(0, c["vocab"], (T,))

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w

    @torch.no_grad()
    def forward():
        x = emb[tokens]
        for L in layers:
            h = rms(x, L["n1"])
            q = torch.addmm(L["bq"], h, L["wq"].t()).view(T, H, hd).transpose(0, 1)
            k = torch.addmm(L["bk"], h, L["wk"].t()).view(T, KV, hd).transpose(0, 1)
            v = torch.addmm(L["bv"], h, L["wv"].t()).view(T, KV, hd).transpose(0, 1)
            q, k = rope_neox(q, cos, sin), rope_neox(k, cos, sin)
            k, v = k.repeat_interleave(g, 0), v.repeat_interleave(g, 0)
            s = torch.baddbmm(mask.expand(H, T, T), q, k.transpose(1, 2), alpha=hd ** -0.5)
            o = torch.bmm(s.softmax(-1), v).transpose(0, 1).reshape(T, H * hd)
            x = x + o @ L["wo"].t()
            h = rms(x, L["n2"])
            x = x + (torch.nn.functional.silu(h @ L["wg"].t()) * (h @ L["wu"].t())) @ L["wd"].t()
        return rms(x[-1:], nf) @ emb.t()

    forward()  # warm-up
    ts = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        forward()
        ts.append(time.perf_counter() - t0)
    print("shape: %s\ntokens: %d\ntorch_threads: %d\nprefill_wall_s: %.3f" % (a.shape, T, torch.get_num_threads(), statistics.median(ts)))


if __name__ == "__main__":
    main()
