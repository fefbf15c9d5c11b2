#!/usr/bin/python3
"""export_gguf.py — export a train_tiny.py checkpoint to GGUF (arch "llama"), with goldens.

Run with /usr/bin/python3 (torch 1.13, sentencepiece):
  /usr/bin/python3 scripts/export_gguf.py [--ckpt CKPT] [--out models/dashkit-tiny.gguf]
        [--type f32|f16] [--golden] [--verify]

  --ckpt     checkpoint of scripts/train_tiny.py (default ${DK_TRAIN_DIR:-/var/tmp/dashkit-train}/ckpt.pt)
  --golden   also write tests/data/tiny_prompt.txt, tests/data/tiny_logits_<type>.logits and
             tests/data/tiny_tok_golden.tsv (formats below)
  --verify   re-read the written GGUF (scripts/gguf_writer.read_gguf) and check, exiting 1 on any
             failure: (1) every metadata key and the tokenizer arrays equal the SentencePiece
             model; (2) an independent forward written here in numpy on the tensors AS STORED
             (GGML "normal" RoPE on adjacent pairs, i.e. the permuted Q/K rows) reproduces the
             torch model's logits (HF rotate_half RoPE on unpermuted rows) to 1e-4; (3) a
             llama-SPM BPE encoder written here from the GGUF vocabulary alone (merge the
             highest-scoring adjacent pair, byte fallback) gives SentencePiece's ids on a set of
             strings and on held-out corpus text.

GGUF content (the llama.cpp conventions for arch llama, SentencePiece vocab):
  general.architecture=llama, general.name=dashkit-tiny, general.file_type (0 F32, 1 F16),
  llama.context_length (the longest training length, 2048), llama.embedding_length,
  llama.block_count, llama.feed_forward_length, llama.attention.head_count(_kv),
  llama.rope.dimension_count, llama.rope.freq_base, llama.attention.layer_norm_rms_epsilon,
  llama.vocab_size; tokenizer.ggml.model=llama, tokens (U+2581 for spaces, "<0xNN>" byte
  pieces), scores, token_type (1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte),
  bos/eos/unknown ids, add_bos_token=true, add_eos_token=false, add_space_prefix=true.
  Tensors: token_embd.weight (tied: no output.weight), output_norm.weight, blk.N.{attn_norm,
  attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}.weight; attn_q/attn_k
  rows permuted from rotate_half order to adjacent pairs as convert_hf_to_gguf.py does.
  F16 files keep 1-D tensors (norms) in F32.

Golden files:
  tests/data/tiny_prompt.txt       the prompt text (UTF-8, no trailing newline): a canonical
                                   passkey prompt followed by its answer
  tests/data/tiny_logits_f32.logits  (or _f16) DKLOGIT1 format of scripts/make_ref_models.py:
      char magic[8]="DKLOGIT1" | u32 n_tokens | u32 n_vocab | i32 tokens[n_tokens]
      | f32 logits[n_tokens][n_vocab]   (row t = next-token logits after tokens[0..t];
      tokens = [BOS] + SentencePiece ids of the prompt; computed by torch in float64 from the
      weights exactly as stored in the GGUF)
  tests/data/tiny_tok_golden.tsv   lines "enc<TAB>NAME<TAB>TEXT_HEX<TAB>IDS" (text as lowercase hex
      UTF-8 bytes, ids space-separated, "-" when empty), SentencePiece's encoding without BOS.
"""

import argparse
import hashlib
import os
import random
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import gguf_writer  # noqa: E402
from gguf_writer import GGUFWriter, GGMLType, ValueType  # noqa: E402
import train_tiny  # noqa: E402
import tiny_tasks  # noqa: E402

TOKEN_TYPE_NORMAL, TOKEN_TYPE_UNKNOWN, TOKEN_TYPE_CONTROL = 1, 2, 3
TOKEN_TYPE_USER_DEFINED, TOKEN_TYPE_UNUSED, TOKEN_TYPE_BYTE = 4, 5, 6

TOK_STRINGS = [
    ("empty", ""),
    ("word", "Hello"),
    ("sentence", "The pass key is 12345. Remember it. 12345 is the pass key."),
    ("niah", "One of the special magic numbers for whale-harpoon is: 7364512."),
    ("spaces", "  two  leading, double  inner and trailing  "),
    ("newlines", "line one\nline two\n\nline four"),
    ("digits", "In 1776, 13 colonies; 3.14159 and 0042."),
    ("unicode", "Ishmael\u2014never mind how long precisely\u2014\u201cWhale!\u201d caf\u00e9 na\u00efve"),
    ("cjk_bytefallback", "\u65e5\u672c\u8a9e and \U0001F600 emoji"),
    ("question", "What is the pass key? The pass key is"),
    ("tabs", "a\tb\t\tc"),
]


def sp_vocab(sp):
    toks, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        toks.append(sp.id_to_piece(i))
        scores.append(float(sp.get_score(i)))
        if sp.is_unknown(i):
            t = TOKEN_TYPE_UNKNOWN
        elif sp.is_control(i):
            t = TOKEN_TYPE_CONTROL
        elif sp.is_byte(i):
            t = TOKEN_TYPE_BYTE
        elif sp.is_unused(i):
            t = TOKEN_TYPE_UNUSED
        else:
            t = TOKEN_TYPE_NORMAL
        types.append(t)
    return toks, scores, types


def load_ckpt(path):
    ck = torch.load(path, map_location="cpu")
    cfg = train_tiny.Config.from_dict(ck["config"])
    model = train_tiny.Llama(cfg)
    model.load_state_dict(ck["model"])
    model.eval()
    return ck, cfg, model


def gguf_tensors(model, cfg):
    """(name, numpy array in torch (out, in) shape) in llama.cpp naming, Q/K permuted."""
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    out = [("token_embd.weight", sd["tok_embeddings.weight"])]
    for i in range(cfg.n_layers):
        p = "layers.%d." % i
        b = "blk.%d." % i
        out += [
            (b + "attn_norm.weight", sd[p + "attention_norm.weight"]),
            (b + "attn_q.weight", gguf_writer.llama_permute_qk(sd[p + "attention.wq.weight"], cfg.n_heads)),
            (b + "attn_k.weight", gguf_writer.llama_permute_qk(sd[p + "attention.wk.weight"], cfg.n_heads,
                                                              cfg.n_kv_heads)),
            (b + "attn_v.weight", sd[p + "attention.wv.weight"]),
            (b + "attn_output.weight", sd[p + "attention.wo.weight"]),
            (b + "ffn_norm.weight", sd[p + "ffn_norm.weight"]),
            (b + "ffn_gate.weight", sd[p + "feed_forward.w1.weight"]),
            (b + "ffn_up.weight", sd[p + "feed_forward.w3.weight"]),
            (b + "ffn_down.weight", sd[p + "feed_forward.w2.weight"]),
        ]
    out.append(("output_norm.weight", sd["norm.weight"]))
    return out


def write_gguf(path, model, cfg, sp, ftype, ctx_len, name_extra):
    w = GGUFWriter(path)
    w.add_string("general.architecture", "llama")
    w.add_string("general.name", "dashkit-tiny")
    w.add_string("general.description", name_extra)
    w.add_string("general.license", "CC0-1.0")
    w.add_uint32("general.file_type", 0 if ftype == "f32" else 1)
    w.add_uint32("llama.context_length", ctx_len)
    w.add_uint32("llama.embedding_length", cfg.dim)
    w.add_uint32("llama.block_count", cfg.n_layers)
    w.add_uint32("llama.feed_forward_length", cfg.ffn)
    w.add_uint32("llama.attention.head_count", cfg.n_heads)
    w.add_uint32("llama.attention.head_count_kv", cfg.n_kv_heads)
    w.add_uint32("llama.rope.dimension_count", cfg.dim // cfg.n_heads)
    w.add_float32("llama.rope.freq_base", float(cfg.rope_theta))
    w.add_float32("llama.attention.layer_norm_rms_epsilon", float(cfg.norm_eps))
    w.add_uint32("llama.vocab_size", cfg.vocab)
    toks, scores, types = sp_vocab(sp)
    w.add_tokenizer_spm(toks, scores, types, bos_id=sp.bos_id(), eos_id=sp.eos_id(), unk_id=sp.unk_id(),
                        add_bos=True, add_eos=False)
    w.add_bool("tokenizer.ggml.add_space_prefix", True)
    for name, arr in gguf_tensors(model, cfg):
        t = GGMLType.F32 if (ftype == "f32" or arr.ndim == 1) else GGMLType.F16
        w.add_tensor(name, arr, t)
    w.write()


# ---- independent references used by --verify and --golden ---------------------------------

def unpermute_qk(w, n_head):
    """Inverse of gguf_writer.llama_permute_qk."""
    hd2 = w.shape[0] // n_head // 2
    return w.reshape(n_head, hd2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def model_from_gguf(info, cfg):
    """A train_tiny.Llama whose weights are the GGUF tensors as stored (F16 upcast), Q/K
    un-permuted back to rotate_half order."""
    m = train_tiny.Llama(cfg)
    T = {k: v[2] for k, v in info["tensors"].items()}
    sd = {"tok_embeddings.weight": T["token_embd.weight"], "norm.weight": T["output_norm.weight"]}
    for i in range(cfg.n_layers):
        p, b = "layers.%d." % i, "blk.%d." % i
        sd[p + "attention_norm.weight"] = T[b + "attn_norm.weight"]
        sd[p + "attention.wq.weight"] = unpermute_qk(T[b + "attn_q.weight"], cfg.n_heads)
        sd[p + "attention.wk.weight"] = unpermute_qk(T[b + "attn_k.weight"], cfg.n_kv_heads)
        sd[p + "attention.wv.weight"] = T[b + "attn_v.weight"]
        sd[p + "attention.wo.weight"] = T[b + "attn_output.weight"]
        sd[p + "ffn_norm.weight"] = T[b + "ffn_norm.weight"]
        sd[p + "feed_forward.w1.weight"] = T[b + "ffn_gate.weight"]
        sd[p + "feed_forward.w3.weight"] = T[b + "ffn_up.weight"]
        sd[p + "feed_forward.w2.weight"] = T[b + "ffn_down.weight"]
    m.load_state_dict({k: torch.tensor(np.array(v, dtype=np.float32)) for k, v in sd.items()})
    m.eval()
    return m


def numpy_forward_ggml(info, tokens):
    """Dense causal forward in float64 numpy on the GGUF tensors as stored, written like
    llama.cpp's graph: RMSNorm, Q/K with GGML_ROPE_TYPE_NORM (rotate adjacent pairs (2i, 2i+1)
    by pos * base^(-2i/hd)), softmax attention with GQA, SwiGLU, tied output.  Returns (T, V)."""
    md = {k: v[1] for k, v in info["metadata"].items()}
    T_ = {k: np.asarray(v[2], dtype=np.float64) for k, v in info["tensors"].items()}
    d = md["llama.embedding_length"]
    nl = md["llama.block_count"]
    nh = md["llama.attention.head_count"]
    nkv = md["llama.attention.head_count_kv"]
    hd = d // nh
    eps = md["llama.attention.layer_norm_rms_epsilon"]
    base = md["llama.rope.freq_base"]
    n = len(tokens)

    def rms(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    pos = np.arange(n)[:, None]
    theta = pos * base ** (-np.arange(0, hd, 2) / hd)  # (n, hd/2)
    c, s = np.cos(theta), np.sin(theta)

    def rope(x):  # x (n, heads, hd), adjacent pairs
        x0, x1 = x[..., 0::2], x[..., 1::2]
        y = np.empty_like(x)
        y[..., 0::2] = x0 * c[:, None, :] - x1 * s[:, None, :]
        y[..., 1::2] = x0 * s[:, None, :] + x1 * c[:, None, :]
        return y

    x = T_["token_embd.weight"][tokens]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for i in range(nl):
        b = "blk.%d." % i
        h = rms(x, T_[b + "attn_norm.weight"])
        q = rope((h @ T_[b + "attn_q.weight"].T).reshape(n, nh, hd))
        k = rope((h @ T_[b + "attn_k.weight"].T).reshape(n, nkv, hd))
        v = (h @ T_[b + "attn_v.weight"].T).reshape(n, nkv, hd)
        o = np.empty((n, nh, hd))
        for hh in range(nh):
            kv = hh // (nh // nkv)
            a = q[:, hh] @ k[:, kv].T / np.sqrt(hd) + mask
            a = np.exp(a - a.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            o[:, hh] = a @ v[:, kv]
        x = x + o.reshape(n, d) @ T_[b + "attn_output.weight"].T
        h = rms(x, T_[b + "ffn_norm.weight"])
        g = h @ T_[b + "ffn_gate.weight"].T
        x = x + ((g / (1 + np.exp(-g))) * (h @ T_[b + "ffn_up.weight"].T)) @ T_[b + "ffn_down.weight"].T
    x = rms(x, T_["output_norm.weight"])
    return x @ T_["token_embd.weight"].T


def spm_bpe_encode(text, pieces, scores, types, add_space_prefix=True):
    """llama-SPM BPE from the vocabulary alone: spaces -> U+2581 (plus one leading), split into
    UTF-8 characters, repeatedly merge the adjacent pair whose concatenation is a normal piece with
    the highest score (leftmost on ties), unknown symbols -> <0xNN> byte pieces."""
    if not text:
        return []
    s = ("\u2581" if add_space_prefix else "") + text.replace(" ", "\u2581")
    index = {p: i for i, p in enumerate(pieces) if types[i] in (TOKEN_TYPE_NORMAL, TOKEN_TYPE_USER_DEFINED)}
    sym = list(s)
    while True:
        best, bi = None, -1
        for j in range(len(sym) - 1):
            m = sym[j] + sym[j + 1]
            if m in index and (best is None or scores[index[m]] > best):
                best, bi = scores[index[m]], j
        if bi < 0:
            break
        sym[bi:bi + 2] = [sym[bi] + sym[bi + 1]]
    byte_id = {p: i for i, p in enumerate(pieces) if types[i] == TOKEN_TYPE_BYTE}
    out = []
    for t in sym:
        if t in index:
            out.append(index[t])
        else:
            out.extend(byte_id["<0x%02X>" % b] for b in t.encode("utf-8"))
    return out


def golden_prompt(sp):
    """A canonical passkey prompt with a short real-text haystack from the held-out corpus, plus
    its answer: deterministic (fixed seed)."""
    corpus = tiny_tasks.Corpus(sp, "heldout")
    gen = tiny_tasks.TaskGen(sp, corpus, joiner="\n")
    s = gen.passkey(random.Random(20240607), 96, depth=0.5, garbage=False)
    return s["prompt"] + " " + s["answer"]


def write_logits(path, tokens, logits):
    T, V = logits.shape
    with open(path + ".tmp", "wb") as f:
        f.write(b"DKLOGIT1" + struct.pack("<II", T, V))
        f.write(np.asarray(tokens, dtype="<i4").tobytes())
        f.write(np.ascontiguousarray(logits, dtype="<f4").tobytes())
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default=os.path.join(os.environ.get("DK_TRAIN_DIR", "/var/tmp/dashkit-train"), "ckpt.pt"))
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "dashkit-tiny.gguf"))
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "models", "tokenizer.model"))
    ap.add_argument("--type", choices=["f32", "f16"], default="f32")
    ap.add_argument("--ctx-len", type=int, default=2048, help="llama.context_length (longest training length)")
    ap.add_argument("--golden", action="store_true")
    ap.add_argument("--verify", action="store_true")
    args = ap.parse_args()

    import sentencepiece as spm
    torch.set_num_threads(1)
    sp = spm.SentencePieceProcessor(model_file=args.tokenizer)
    if not os.path.exists(args.ckpt):
        sys.exit("export_gguf: %s: no such checkpoint" % args.ckpt)
    ck, cfg, model = load_ckpt(args.ckpt)
    tok_sha = hashlib.sha256(open(args.tokenizer, "rb").read()).hexdigest()
    if ck.get("tokenizer_sha") and ck["tokenizer_sha"] != tok_sha:
        sys.exit("export_gguf: %s was trained with tokenizer sha256 %s, but %s has %s"
                 % (args.ckpt, ck["tokenizer_sha"], args.tokenizer, tok_sha))
    if cfg.vocab != sp.get_piece_size():
        sys.exit("export_gguf: checkpoint vocab %d != tokenizer %d" % (cfg.vocab, sp.get_piece_size()))
    st = ck["state"]
    desc = ("dashkit-tiny: step %d, stage %s, %d tokens, %.2f CPU hours; trained by scripts/train_tiny.py"
            % (st["step"], st["stage"], st["tokens"], st["train_seconds"] / 3600))
    write_gguf(args.out, model, cfg, sp, args.type, args.ctx_len, desc)
    print("wrote %s (%d bytes, sha256 %s)" % (args.out, os.path.getsize(args.out),
                                             hashlib.sha256(open(args.out, "rb").read()).hexdigest()))

    info = gguf_writer.read_gguf(args.out)
    prompt = golden_prompt(sp)
    tokens = [sp.bos_id()] + sp.encode(prompt)

    if args.golden:
        ddir = os.path.join(ROOT, "tests", "data")
        m64 = model_from_gguf(info, cfg).double()
        with torch.no_grad():
            lg = m64(torch.tensor([tokens]))[0].numpy()
        with open(os.path.join(ddir, "tiny_prompt.txt.tmp"), "w", encoding="utf-8") as f:
            f.write(prompt)
        os.replace(os.path.join(ddir, "tiny_prompt.txt.tmp"), os.path.join(ddir, "tiny_prompt.txt"))
        write_logits(os.path.join(ddir, "tiny_logits_%s.logits" % args.type), tokens, lg)
        lines = ["# dashkit-tiny tokenizer golden: SentencePiece %s on models/tokenizer.model sha256 %s"
                 % (spm.__version__, tok_sha),
                 "# made by scripts/export_gguf.py --golden; enc NAME TEXT_HEX IDS (no BOS)"]
        for name, text in TOK_STRINGS + [("golden_prompt", prompt)]:
            ids = sp.encode(text)
            lines.append("enc\t%s\t%s\t%s" % (name, text.encode("utf-8").hex() or "-",
                                              " ".join(map(str, ids)) or "-"))
        p = os.path.join(ddir, "tiny_tok_golden.tsv")
        with open(p + ".tmp", "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(p + ".tmp", p)
        print("wrote tests/data/tiny_prompt.txt, tiny_logits_%s.logits (%d tokens), tiny_tok_golden.tsv"
              % (args.type, len(tokens)))

    if args.verify:
        fails = 0
        md = {k: v[1] for k, v in info["metadata"].items()}
        toks, scores, types = sp_vocab(sp)
        want = {"general.architecture": "llama", "llama.embedding_length": cfg.dim,
                "llama.block_count": cfg.n_layers, "llama.feed_forward_length": cfg.ffn,
                "llama.attention.head_count": cfg.n_heads, "llama.attention.head_count_kv": cfg.n_kv_heads,
                "llama.rope.dimension_count": cfg.dim // cfg.n_heads, "tokenizer.ggml.model": "llama",
                "tokenizer.ggml.bos_token_id": sp.bos_id(), "tokenizer.ggml.eos_token_id": sp.eos_id(),
                "tokenizer.ggml.unknown_token_id": sp.unk_id(), "tokenizer.ggml.add_space_prefix": True,
                "tokenizer.ggml.tokens": toks, "tokenizer.ggml.token_type": types}
        for k, v in want.items():
            got = md.get(k)
            got = list(got) if isinstance(got, (list, tuple, np.ndarray)) else got
            if got != v:
                print("FAIL metadata %s" % k)
                fails += 1
        if not np.array_equal(np.asarray(md["tokenizer.ggml.scores"], dtype=np.float32),
                              np.asarray(scores, dtype=np.float32)):
            print("FAIL tokenizer.ggml.scores")
            fails += 1
        # (2) logits: torch HF-style model on the checkpoint vs numpy GGML-style forward on the file
        with torch.no_grad():
            ref = model.double()(torch.tensor([tokens]))[0].numpy()
            model.float()
        got = numpy_forward_ggml(info, tokens)
        tol = 1e-4 if args.type == "f32" else 5e-2
        err = float(np.abs(ref - got).max())
        print("logits: %d tokens, max |torch(ckpt) - numpy_ggml(gguf)| = %.3g (tol %g)" % (len(tokens), err, tol))
        if not err <= tol:
            fails += 1
        m2 = model_from_gguf(info, cfg)
        with torch.no_grad():
            err2 = float(np.abs(m2.double()(torch.tensor([tokens]))[0].numpy() - got).max())
        print("logits: max |torch(gguf, unpermuted) - numpy_ggml(gguf)| = %.3g" % err2)
        if not err2 <= 1e-4:
            fails += 1
        # (3) tokenizer from the GGUF vocabulary vs SentencePiece
        vt = md["tokenizer.ggml.tokens"]
        vs = np.asarray(md["tokenizer.ggml.scores"], dtype=np.float32)
        vy = list(md["tokenizer.ggml.token_type"])
        held = open(os.path.join(ROOT, "datasets", "corpora", "mobydick-heldout.txt"), encoding="utf-8").read()
        cases = [t for _, t in TOK_STRINGS] + [prompt] + [p for p in held.split("\n") if p.strip()][:150]
        bad = 0
        for t in cases:
            if spm_bpe_encode(t, vt, vs, vy) != sp.encode(t):
                bad += 1
                if bad <= 3:
                    print("FAIL tokenizer: %r" % t[:80])
        print("tokenizer: %d/%d strings encode identically (GGUF-vocab llama-SPM BPE vs SentencePiece)"
              % (len(cases) - bad, len(cases)))
        fails += bad
        print("verify: %s" % ("OK" if fails == 0 else "%d FAILURES" % fails))
        sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
