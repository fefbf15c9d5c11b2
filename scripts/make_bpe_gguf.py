"""make_bpe_gguf.py — writes a vocabulary-only GGUF for a GPT-2-style byte-level BPE tokenizer.

Called by scripts/make_bpe_goldens.js with a JSON dump of a real vocabulary:
    {"name", "arch", "pre", "tokens": [str] (id order), "merges": ["a b"] (rank order),
     "special": [{"id", "special"}] (added tokens), "bos", "eos", "pad"?, "add_bos",
     "chat_template"?}
Keys follow llama.cpp's convert_hf_to_gguf.py for tokenizer.ggml.model = gpt2: token types are
NORMAL (1), CONTROL (3) for added tokens with special = true, USER_DEFINED (4) for the other
added tokens. There are no tensors: the tests read the tokenizer keys only.

Usage: python3 scripts/make_bpe_gguf.py VOCAB.json OUT.gguf
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_writer import GGUFWriter, ValueType  # noqa: E402

TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_USER_DEFINED = 1, 3, 4


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: make_bpe_gguf.py VOCAB.json OUT.gguf")
    with open(sys.argv[1], encoding="utf-8") as f:
        v = json.load(f)
    tokens = v["tokens"]
    types = [TOKEN_NORMAL] * len(tokens)
    for s in v["special"]:
        types[s["id"]] = TOKEN_CONTROL if s["special"] else TOKEN_USER_DEFINED
    w = GGUFWriter(sys.argv[2])
    w.add_string("general.architecture", v["arch"])
    w.add_string("general.name", v["name"])
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", v["pre"])
    w.add_array("tokenizer.ggml.tokens", tokens, ValueType.STRING)
    w.add_array("tokenizer.ggml.token_type", types, ValueType.INT32)
    w.add_array("tokenizer.ggml.merges", v["merges"], ValueType.STRING)
    w.add_uint32("tokenizer.ggml.bos_token_id", v["bos"])
    w.add_uint32("tokenizer.ggml.eos_token_id", v["eos"])
    if v.get("pad") is not None:
        w.add_uint32("tokenizer.ggml.padding_token_id", v["pad"])
    w.add_bool("tokenizer.ggml.add_bos_token", v["add_bos"])
    if v.get("chat_template"):
        w.add_string("tokenizer.chat_template", v["chat_template"])
    n = w.write()
    print("%s: %d tokens, %d merges, %d bytes" % (sys.argv[2], len(tokens), len(v["merges"]), n))


if __name__ == "__main__":
    main()
