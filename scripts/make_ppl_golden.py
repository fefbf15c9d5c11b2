#!/usr/bin/python3
"""make_ppl_golden.py — golden perplexity of the bundled model, computed in plain PyTorch.

Run (Debian's PyTorch and sentencepiece live only in /usr/bin/python3):

    /usr/bin/python3 scripts/make_ppl_golden.py            # (re)writes tests/data/ppl_*
    /usr/bin/python3 scripts/make_ppl_golden.py --check    # regenerate in a temp dir, compare

Input: a fixed slice of datasets/corpora/mobydick-heldout.txt (public domain, held out from
training), whitespace runs collapsed to one space, written to tests/data/ppl_text.txt.
Tokens: SentencePiece (models/tokenizer.model, python3-sentencepiece), BOS (id 1) first, as
llama.cpp's llama-perplexity tokenises a text for a vocabulary that adds BOS.
Model: models/dashkit-tiny.gguf read by gguf_writer.read_gguf (no dashkit code), attn_q/attn_k
rows un-permuted back to HF order, and the float64 HF-style forward of make_ref_models.RefModel.

Chunking, as tools/perplexity/perplexity.cpp perplexity() does it: n_chunk = n_tokens // CTX
chunks of CTX tokens, each run from an empty cache at positions 0..CTX-1 with its first token
replaced by BOS; positions CTX/2 .. CTX-2 of each chunk scored, nll = -log_softmax(logits)[next];
perplexity = exp(mean nll), perplexity_stderr = ppl * sqrt((mean nll^2 - mean^2) / (count - 1)).

Output tests/data/ppl_tiny.json: ctx, the token ids, chunks, tokens_scored, perplexity,
perplexity_stderr.
"""

import json
import math
import os
import re
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gguf_writer as gw  # noqa: E402
from make_ref_models import RefModel, golden_main  # noqa: E402

ROOT = os.path.join(HERE, "..")
CTX = 128
SLICE = (2000, 6000)  # bytes of mobydick-heldout.txt, cut at whitespace (see text())
BOS = 1


def text():
    with open(os.path.join(ROOT, "datasets", "corpora", "mobydick-heldout.txt"), "rb") as f:
        raw = f.read()
    a, b = SLICE
    while raw[a:a + 1] not in b" \n":
        a += 1
    while raw[b:b + 1] not in b" \n":
        b += 1
    return re.sub(r"\s+", " ", raw[a:b].decode("utf-8")).strip()


def unpermute_qk(w, n_head):
    """Inverse of gguf_writer.llama_permute_qk: adjacent-pair rows back to rotate_half order."""
    hd2 = w.shape[0] // n_head // 2
    return w.reshape(n_head, hd2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def load_model(path):
    g = gw.read_gguf(path)
    md = {k: v[1] for k, v in g["metadata"].items()}
    assert md["general.architecture"] == "llama"
    T = {k: v[2].astype(np.float64) for k, v in g["tensors"].items()}
    cfg = dict(n_embd=md["llama.embedding_length"], n_head=md["llama.attention.head_count"],
               n_head_kv=md.get("llama.attention.head_count_kv", md["llama.attention.head_count"]),
               n_layer=md["llama.block_count"], rope_theta=md.get("llama.rope.freq_base", 10000.0),
               rms_eps=md.get("llama.attention.layer_norm_rms_epsilon", 1e-5), qkv_bias=False,
               tied="output.weight" not in T)
    assert md.get("llama.attention.key_length", cfg["n_embd"] // cfg["n_head"]) == cfg["n_embd"] // cfg["n_head"]
    W = {"embed": T["token_embd.weight"], "norm": T["output_norm.weight"]}
    if not cfg["tied"]:
        W["lm_head"] = T["output.weight"]
    for l in range(cfg["n_layer"]):
        p, b = "l%d." % l, "blk.%d." % l
        W[p + "q"] = unpermute_qk(T[b + "attn_q.weight"], cfg["n_head"])
        W[p + "k"] = unpermute_qk(T[b + "attn_k.weight"], cfg["n_head_kv"])
        for k, n in (("v", "attn_v"), ("o", "attn_output"), ("gate", "ffn_gate"), ("up", "ffn_up"),
                     ("down", "ffn_down"), ("attn_norm", "attn_norm"), ("ffn_norm", "ffn_norm")):
            W[p + k] = T[b + n + ".weight"]
    return RefModel(cfg, W)


def perplexity(model, tokens, ctx):
    n_chunk = len(tokens) // ctx
    first = ctx // 2
    nll = nll2 = 0.0
    count = 0
    for c in range(n_chunk):
        ids = list(tokens[c * ctx:(c + 1) * ctx])
        ids[0] = BOS
        with torch.no_grad():
            lp = torch.log_softmax(model.forward(ids), dim=-1).numpy()
        for i in range(first, ctx - 1):
            v = -float(lp[i, ids[i + 1]])
            nll += v
            nll2 += v * v
            count += 1
    m = nll / count
    ppl = math.exp(m)
    var = nll2 / count - m * m
    return n_chunk, count, ppl, ppl * math.sqrt(var / (count - 1))


def generate(outdir, verbose=True):
    import sentencepiece as spm
    torch.set_num_threads(1)
    t = text()
    sp = spm.SentencePieceProcessor(model_file=os.path.join(ROOT, "models", "tokenizer.model"))
    tokens = [BOS] + sp.encode(t)
    model = load_model(os.path.join(ROOT, "models", "dashkit-tiny.gguf"))
    n_chunk, count, ppl, se = perplexity(model, tokens, CTX)
    p_txt = os.path.join(outdir, "ppl_text.txt")
    with open(p_txt, "w", encoding="utf-8") as f:
        f.write(t)
    p_js = os.path.join(outdir, "ppl_tiny.json")
    with open(p_js, "w") as f:
        json.dump({"generator": "scripts/make_ppl_golden.py", "model": "models/dashkit-tiny.gguf",
                   "text": "tests/data/ppl_text.txt", "ctx": CTX, "ids": tokens, "chunks": n_chunk,
                   "tokens_scored": count, "perplexity": ppl, "perplexity_stderr": se}, f)
        f.write("\n")
    if verbose:
        print("%d tokens, %d chunks of %d, %d scored: perplexity %.6f +/- %.6f"
              % (len(tokens), n_chunk, CTX, count, ppl, se))
    return [p_txt, p_js]


if __name__ == "__main__":
    sys.exit(golden_main(__doc__, generate, "perplexity goldens"))
