#!/usr/bin/env bash
# make_quant_goldens.sh — llama.cpp's own outputs as goldens for dashkit's quantised types
# (tests/test_quant.c). Never run by `make`/`make test`; needs node/npm (or DK_LLAMACPP_DIR),
# a C compiler and /usr/bin/python3 with torch (scripts/make_quant_sources.py).
#
#   scripts/make_quant_goldens.sh            # build the reference program, rewrite the goldens
#   scripts/make_quant_goldens.sh --build    # only build build/llamacpp_ref (for make bench)
#
# The llama.cpp used is node-llama-cpp 3.21.1's prebuilt linux-x64 libraries: DK_LLAMACPP_DIR
# names a node_modules folder that holds it (e.g. /work/llamacpp/node_modules), else the package
# is installed pinned (npm i -E node-llama-cpp@3.21.1) into .cache/llamacpp (gitignored). Its
# headers come from the llama.cpp source bundled in the package (gitRelease.bundle, cloned next
# to it). scripts/llamacpp_ref.c is compiled against that libllama into build/llamacpp_ref.
#
# Goldens, per model M (tests/data/quant_M.*):
#   .gguf         the project's F32 model (make_quant_sources.py) quantised by llama_model_quantize
#   .tensors.tsv  each tensor dequantised by ggml's to_float: name, type, elements, FNV-1a 64 of
#                 the f32 bytes, first element's bits
#   .logits       llama.cpp's logits at every position of tests/data/quant_prompt.txt (DKLOGIT1)
#   .greedy.txt   llama.cpp's 16 greedy tokens after the prompt (line 1) and each step's top-1 minus
#                 top-2 logit (line 2)
# Models: qllama_mix / qqwen2_mix put every supported quantised type on some matrix (per-tensor
# overrides, as llama-quantize --tensor-type does, two different rotations of the type list);
# qllama_q4_k_m, qqwen2_q3_k_m and qllama_q5_k_s are llama-quantize's standard mixes.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
if [ -z "${DK_LLAMACPP_DIR:-}" ]; then
    DK_LLAMACPP_DIR=$root/.cache/llamacpp/node_modules
    if [ ! -d "$DK_LLAMACPP_DIR/@node-llama-cpp/linux-x64" ]; then
        mkdir -p "$root/.cache/llamacpp"
        (cd "$root/.cache/llamacpp" && npm i -E --ignore-scripts node-llama-cpp@3.21.1)
    fi
fi
libdir=$DK_LLAMACPP_DIR/@node-llama-cpp/linux-x64/bins/linux-x64
bundle=$DK_LLAMACPP_DIR/node-llama-cpp/llama/gitRelease.bundle
[ -f "$libdir/libggml-base.so" ] || { echo "make_quant_goldens: no llama.cpp libraries in $libdir" >&2; exit 1; }
src=$root/.cache/llamacpp/src
if [ ! -f "$src/include/llama.h" ]; then
    rm -rf "$src"
    mkdir -p "$root/.cache/llamacpp"
    git clone -q "$bundle" "$src"
fi
mkdir -p build
first() { local f; for f in "$@"; do [ -f "$libdir/$f" ] && { echo "$f"; return; }; done; echo "make_quant_goldens: none of $* in $libdir" >&2; exit 1; }
llama=$(cd "$libdir" && first libllama.so libllama.v*.so) ggml=$(cd "$libdir" && first libggml.so libggml.v*.so)
cc -std=gnu11 -O2 -Wall -I"$src/include" -I"$src/ggml/include" scripts/llamacpp_ref.c -o build/llamacpp_ref \
    -L"$libdir" -l:"$llama" -l:"$ggml" -l:libggml-base.so -Wl,-rpath,"$libdir"
echo "$libdir" > build/llamacpp_ref.libdir
echo "built build/llamacpp_ref against $libdir"
[ "${1:-}" = "--build" ] && exit 0

export DK_LLAMACPP_LIBDIR=$libdir
ref=build/llamacpp_ref
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 scripts/make_quant_sources.py "$tmp"
out=tests/data
cp "$tmp/quant_prompt.txt" "$out/quant_prompt.txt"

types=(q4_0 q4_1 q5_0 q5_1 q8_0 q2_K q3_K q4_K q5_K q6_K iq4_nl iq4_xs)
# overrides for model $1 (llama: untied, has output.weight), type-list rotation $2
mix_overrides() {
    local slots=(token_embd) i=0 s l
    [ "$1" = qllama ] && slots+=(output)
    for l in 0 1; do for s in attn_q attn_k attn_v attn_output ffn_gate ffn_up ffn_down; do slots+=("blk\\.$l\\.$s"); done; done
    for s in "${slots[@]}"; do echo "^$s\\.weight\$=${types[$(( (i * $2 + $2 / 2) % 12 ))]}"; i=$((i + 1)); done
}
quantize() { # name source ftype [overrides...]
    local name=$1 srcm=$2 ft=$3
    shift 3
    "$ref" quantize "$tmp/${srcm}_f32.gguf" "$out/quant_$name.gguf" "$ft" "$@"
}
mapfile -t ov_llama < <(mix_overrides qllama 1)
mapfile -t ov_qwen < <(mix_overrides qqwen2 5)
quantize qllama_mix qllama Q4_0 "${ov_llama[@]}"
quantize qqwen2_mix qqwen2 Q4_K_S "${ov_qwen[@]}"
quantize qllama_q4_k_m qllama Q4_K_M
quantize qqwen2_q3_k_m qqwen2 Q3_K_M
quantize qllama_q5_k_s qllama Q5_K_S
# the bundled model in Q8_0, for q8 compute's passkey and greedy checks (tests/test_compute.c)
"$ref" quantize models/dashkit-tiny.gguf "$out/tiny_q8_0.gguf" Q8_0
for m in qllama_mix qqwen2_mix qllama_q4_k_m qqwen2_q3_k_m qllama_q5_k_s; do
    "$ref" tensors "$out/quant_$m.gguf" "$out/quant_$m.tensors.tsv"
    "$ref" logits "$out/quant_$m.gguf" "$out/quant_prompt.txt" 16 "$out/quant_$m.logits" "$out/quant_$m.greedy.txt"
    echo "quant_$m: $(stat -c %s "$out/quant_$m.gguf") bytes; types $(cut -f2 "$out/quant_$m.tensors.tsv" | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}')"
done
