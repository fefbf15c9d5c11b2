#!/usr/bin/python3
"""make_quant_sources.py OUTDIR — the F32 source models that scripts/make_quant_goldens.sh hands
to llama.cpp's quantiser (llama_model_quantize), plus the prompt ids of the quantised goldens.

Random weights as scripts/make_ref_models.py draws them (same vocabulary, same GGUF writer),
with every matrix row length a multiple of 256 so each K-quant applies to every matrix:
  qllama : llama, n_embd 256, 4 heads x 64, 2 KV heads, n_ff 256, 2 layers, vocab 320, untied
  qqwen2 : qwen2, n_embd 256, 4 heads x 64, 1 KV head,  n_ff 256, 2 layers, vocab 320, tied,
           q/k/v biases
Writes OUTDIR/qllama_f32.gguf, OUTDIR/qqwen2_f32.gguf and OUTDIR/quant_prompt.txt (32 ids,
the first 1 = BOS). Seeded: a rerun writes identical bytes."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_ref_models as mr  # noqa: E402

CONFIGS = {
    "qllama": dict(arch="llama", n_embd=256, n_head=4, n_head_kv=2, n_ff=256, n_layer=2,
                   n_vocab=320, rope_theta=10000.0, rms_eps=1e-5, qkv_bias=False, tied=False,
                   embd_std=1.0, alignment=32),
    "qqwen2": dict(arch="qwen2", n_embd=256, n_head=4, n_head_kv=1, n_ff=256, n_layer=2,
                   n_vocab=320, rope_theta=1000000.0, rms_eps=1e-6, qkv_bias=True, tied=True,
                   embd_std=0.25, alignment=32),
}
N_PROMPT = 32


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    for ci, (name, cfg) in enumerate(CONFIGS.items()):
        gen = torch.Generator().manual_seed(mr.SEED + 100 + ci)
        W = mr.make_weights(cfg, gen)
        mr.write_gguf(os.path.join(out, name + "_f32.gguf"), name, cfg, W, "f32",
                      mr.build_vocab(cfg["n_vocab"]))
    with open(os.path.join(out, "quant_prompt.txt"), "w") as f:
        f.write(" ".join(str(t) for t in mr.make_prompt(320, N_PROMPT)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
