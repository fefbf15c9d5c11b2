#!/usr/bin/python3
"""make_quant_sources.py OUTDIR [--bench] — the F32 source models that scripts/make_quant_goldens.sh hands
to llama.cpp's quantiser (llama_model_quantize), plus the prompt ids of the quantised goldens.

Random weights as scripts/make_ref_models.py draws them (same vocabulary, same GGUF writer),
with every matrix row length a multiple of 256 so each K-quant applies to every matrix:
  qllama : llama, n_embd 256, 4 heads x 64, 2 KV heads, n_ff 256, 2 layers, vocab 320, untied
  qqwen2 : qwen2, n_embd 256, 4 heads x 64, 1 KV head,  n_ff 256, 2 layers, vocab 320, tied,
           q/k/v biases
Writes OUTDIR/qllama_f32.gguf, OUTDIR/qqwen2_f32.gguf and OUTDIR/quant_prompt.txt (32 ids,
the first 1 = BOS). Seeded: a rerun writes identical bytes.

--bench instead writes OUTDIR/qwen2-0.5b_f32.gguf for `make bench`'s dashkit-vs-llama.cpp
comparison: Qwen2-0.5B's shapes (24 layers, d 896, 14/2 heads of 64, ff 4864, vocab 151936,
tied, q/k/v biases), random normal weights (numpy, seeded), a filler SPM vocabulary; 2 GB,
written tensor by tensor."""
import os
import struct
import sys

import numpy as np
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


def write_bench_model(path):
    """Qwen2-0.5B-shaped F32 GGUF, streamed (the tensors never all in memory)."""
    import gguf_writer as gw
    d, nh, nkv, hd, ff, V, L = 896, 14, 2, 64, 4864, 151936, 24
    w = gw.GGUFWriter(path)
    w.add_string("general.architecture", "qwen2")
    w.add_string("general.name", "dashkit-bench-qwen2-0.5b")
    for k, v in [("context_length", 32768), ("embedding_length", d), ("block_count", L), ("feed_forward_length", ff),
                 ("rope.dimension_count", hd), ("attention.head_count", nh), ("attention.head_count_kv", nkv)]:
        w.add_uint32("qwen2." + k, v)
    w.add_float32("qwen2.rope.freq_base", 1000000.0)
    w.add_float32("qwen2.attention.layer_norm_rms_epsilon", 1e-6)
    w.add_uint32("general.file_type", gw.LlamaFileType.ALL_F32)
    toks, scores, types = mr.build_vocab(320)
    toks += ["<t%d>" % i for i in range(V - len(toks))]
    scores += [-1000.0 - i for i in range(V - len(scores))]
    types += [gw.TokenType.NORMAL] * (V - len(types))
    w.add_tokenizer_spm(toks, scores, types, bos_id=1, eos_id=2, unk_id=0)
    shapes = [("token_embd.weight", (V, d), 0.02)]
    for l in range(L):
        b = "blk.%d." % l
        shapes += [(b + "attn_norm.weight", (d,), None), (b + "attn_q.weight", (nh * hd, d), d),
                   (b + "attn_q.bias", (nh * hd,), 0.1), (b + "attn_k.weight", (nkv * hd, d), d),
                   (b + "attn_k.bias", (nkv * hd,), 0.1), (b + "attn_v.weight", (nkv * hd, d), d),
                   (b + "attn_v.bias", (nkv * hd,), 0.1), (b + "attn_output.weight", (d, nh * hd), nh * hd),
                   (b + "ffn_norm.weight", (d,), None), (b + "ffn_gate.weight", (ff, d), d),
                   (b + "ffn_up.weight", (ff, d), d), (b + "ffn_down.weight", (d, ff), ff)]
    shapes.append(("output_norm.weight", (d,), None))
    align = w.alignment
    pad = lambda n: (-n) % align  # noqa: E731
    head = bytearray(gw.GGUF_MAGIC + struct.pack("<IQQ", gw.GGUF_VERSION, len(shapes), len(w._kv)))
    for key, packed in w._kv:
        head += gw._pack_string(key) + packed
    off = 0
    for name, shape, _ in shapes:
        ne = list(reversed(shape))
        head += gw._pack_string(name) + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne)
        head += struct.pack("<IQ", gw.GGMLType.F32, off)
        n = int(np.prod(shape)) * 4
        off += n + pad(n)
    head += b"\0" * pad(len(head))
    rng = np.random.default_rng(20240607)
    with open(path + ".tmp", "wb") as f:
        f.write(head)
        for name, shape, a in shapes:
            if a is None:
                x = np.ones(shape, dtype=np.float32)
            else:
                x = rng.standard_normal(shape, dtype=np.float32) * np.float32(a if a < 1 else 1.0 / np.sqrt(a))
            raw = x.astype("<f4").tobytes()
            f.write(raw + b"\0" * pad(len(raw)))
    os.replace(path + ".tmp", path)


def main():
    out = sys.argv[1]
    if len(sys.argv) > 2 and sys.argv[2] == "--bench":
        os.makedirs(out, exist_ok=True)
        write_bench_model(os.path.join(out, "qwen2-0.5b_f32.gguf"))
        return 0
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
