#!/usr/bin/env bash
# make_llamacpp_tok_goldens.sh — tokenizer parity goldens from llama.cpp itself.
#
#   bash scripts/make_llamacpp_tok_goldens.sh     # (re)writes tests/data/llamacpp_tok_*.json
#
# 1. llama.cpp: the npm package node-llama-cpp@3.21.1 (pinned; newer releases may not install
#    here) ships prebuilt libllama/libggml for linux-x64 and the llama.cpp source of its release
#    as a git bundle. DK_LLAMACPP_DIR names a node_modules folder that holds it (as for
#    scripts/make_quant_goldens.sh, e.g. /work/llamacpp/node_modules); else it is installed pinned
#    into .cache/llamacpp (git-ignored). The bundle is cloned into .cache/llamacpp/src for
#    include/llama.h and ggml/include.
# 2. scripts/llamacpp_tok.c is built against that libllama (needs cc and libcjson-dev).
# 3. For every vocabulary below, llamacpp_tok tokenizes each string of
#    tests/data/tok_parity_strings.json (unicode, emoji, CJK, digit runs, whitespace runs,
#    tabs/newlines, contractions, code, special-token text, and llama.cpp's own tokenizer test
#    inputs models/ggml-vocab-*.gguf.inp) with add_special false and true, and the output goes
#    to tests/data/llamacpp_tok_NAME.json. tests/test_tok_parity.c compares dashkit's ids.
#
# parse_special follows dashkit's contract: byte-level BPE vocabularies match special-token
# text (control and user-defined tokens; llama.cpp parse_special = true), SentencePiece ones
# never produce control tokens from text (parse_special = false).
#
# Vocabularies: llama-spm and phi-3 are llama.cpp's models/ggml-vocab-{llama-spm,phi-3}.gguf
# (MIT License, Copyright (c) 2023-2026 The ggml authors), committed gzip'd as
# tests/data/llamacpp_vocab_{llama_spm,phi3}.gguf.gz; gpt2, llama3 (llama-bpe) and qwen2 are the
# project's tests/data/bpe_*.gguf.gz; gpt2-on-qwen, llama-bpe-on-qwen and smollm-on-qwen are the
# Qwen vocabulary with tokenizer.ggml.pre rewritten, so every pre-tokenizer dashkit supports is
# run by llama.cpp on real merges.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DATA=$ROOT/tests/data
PKG=node-llama-cpp@3.21.1
NM=${DK_LLAMACPP_DIR:-$ROOT/.cache/llamacpp/node_modules}
if [ ! -d "$NM/@node-llama-cpp/linux-x64/bins/linux-x64" ]; then
    [ -n "${DK_LLAMACPP_DIR:-}" ] && { echo "make_llamacpp_tok_goldens: no $PKG in $NM" >&2; exit 1; }
    mkdir -p "$ROOT/.cache/llamacpp"
    echo "installing $PKG into .cache/llamacpp"
    (cd "$ROOT/.cache/llamacpp" && npm i -E --ignore-scripts --no-audit --no-fund "$PKG")
fi
LIB=$NM/@node-llama-cpp/linux-x64/bins/linux-x64
SRC=$ROOT/.cache/llamacpp/src
if [ ! -f "$SRC/include/llama.h" ]; then
    rm -rf "$SRC"
    mkdir -p "$ROOT/.cache/llamacpp"
    git clone -q "$NM/node-llama-cpp/llama/gitRelease.bundle" "$SRC"
fi
LLAMA=$(ls "$LIB"/libllama.*so | head -1)
GGML=$(ls "$LIB"/libggml.*so | head -1)

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cc -O1 -o "$WORK/llamacpp_tok" scripts/llamacpp_tok.c -I"$SRC/include" -I"$SRC/ggml/include" \
    $(pkg-config --cflags libcjson 2>/dev/null) "$LLAMA" "$GGML" "$LIB/libggml-base.so" -lcjson \
    -Wl,-rpath,"$LIB"

# the vocabularies llama.cpp ships that dashkit tests against (small, gzip'd, MIT)
for v in llama-spm phi-3; do
    out=$DATA/llamacpp_vocab_${v//-/_}.gguf.gz
    out=${out/phi_3/phi3}
    [ -f "$out" ] || gzip -9nc "$SRC/models/ggml-vocab-$v.gguf" > "$out"
done

# NAME  VOCAB(gz in tests/data)  PARSE_SPECIAL  [PRE override]
run() {
    local name=$1 gz=$2 ps=$3 pre=${4:-}
    gzip -dc "$DATA/$gz" > "$WORK/$name.gguf"
    if [ -n "$pre" ]; then
        /usr/bin/python3 - "$WORK/$name.gguf" "$pre" <<'EOF'
import struct, sys
path, pre = sys.argv[1], sys.argv[2].encode()
b = open(path, "rb").read()
key = b"tokenizer.ggml.pre"
k = b.index(struct.pack("<Q", len(key)) + key) + 8 + len(key)
assert struct.unpack("<I", b[k:k + 4])[0] == 8, "tokenizer.ggml.pre is not a string"
n = struct.unpack("<Q", b[k + 4:k + 12])[0]
b = b[:k + 4] + struct.pack("<Q", len(pre)) + pre + b[k + 12 + n:]
assert struct.unpack("<Q", b[8:16])[0] == 0, "only vocab-only files (no tensors) can be patched"
open(path, "wb").write(b)
EOF
    fi
    "$WORK/llamacpp_tok" "$WORK/$name.gguf" "$DATA/tok_parity_strings.json" "$ps" > "$WORK/$name.json"
    /usr/bin/python3 - "$WORK/$name.json" "$DATA/llamacpp_tok_$name.json" "$gz" "${pre:-}" "$PKG" <<'EOF'
import json, sys
src, dst, gz, pre, pkg = sys.argv[1:6]
d = json.load(open(src))
out = {"generator": "scripts/make_llamacpp_tok_goldens.sh (scripts/llamacpp_tok.c, %s)" % pkg,
       "vocab": gz, "pre": pre or None}
out.update(d)
with open(dst, "w") as f:
    json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
    f.write("\n")
print("%s: %d cases" % (dst, len(d["cases"])))
EOF
}

run llama_spm llamacpp_vocab_llama_spm.gguf.gz 0
run phi3      llamacpp_vocab_phi3.gguf.gz      0
run gpt2      bpe_gpt2.gguf.gz                 1
run llama3    bpe_llama3.gguf.gz               1
run qwen2     bpe_qwen.gguf.gz                 1
run qwen_gpt2      bpe_qwen.gguf.gz 1 gpt-2
run qwen_llama_bpe bpe_qwen.gguf.gz 1 llama-bpe
run qwen_smollm    bpe_qwen.gguf.gz 1 smollm
