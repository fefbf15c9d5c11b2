#!/usr/bin/env bash
# bench_llamacpp.sh — dashkit vs llama.cpp on the same files and threads (part of `make bench`).
# Needs build/llamacpp_ref (scripts/make_quant_goldens.sh --build); without it, prints why and
# exits 0. A Qwen2-0.5B-shaped random F32 GGUF is written once into .cache/bench
# (scripts/make_quant_sources.py --bench, 2 GB) and quantised by llama.cpp's own quantiser to
# BF16, Q8_0 and Q4_K_M (the 896-wide rows are not whole 256-blocks, so llama.cpp's Q4_K_M keeps
# most matrices in Q5_0/Q8_0 as it does for the real Qwen2-0.5B). Per type: prefill tokens/s of
# DK_BENCH_LLAMACPP_TOKENS tokens (default 512) and decode tokens/s of DK_BENCH_LLAMACPP_DECODE
# steps (default 8) after them, dashkit (`dashkit bench MODEL --decode`, fused decode path)
# then llama.cpp (`llamacpp_ref bench`, batch = the whole prompt), medians of DK_BENCH_REPS
# runs each (default 3; the first run of each program untimed as warm-up), both on
# DK_BENCH_THREADS threads (default 2), then the ratios dashkit / llama.cpp last:
# llamacpp_prefill_ratio_TYPE, llamacpp_decode_ratio_TYPE. The machine is shared: the two
# programs run one after the other, so read the ratios as rough.
set -euo pipefail
cd "$(dirname "$0")/.."
ref=build/llamacpp_ref
if [ ! -x "$ref" ] || [ ! -f build/llamacpp_ref.libdir ]; then
    echo "llamacpp: skipped (no build/llamacpp_ref; build it with scripts/make_quant_goldens.sh --build)"
    exit 0
fi
export DK_LLAMACPP_LIBDIR=$(cat build/llamacpp_ref.libdir)
T=${DK_BENCH_LLAMACPP_TOKENS:-512} D=${DK_BENCH_LLAMACPP_DECODE:-8} th=${DK_BENCH_THREADS:-2} reps=${DK_BENCH_REPS:-3}
dir=.cache/bench
mkdir -p "$dir"
[ -f "$dir/qwen2-0.5b_f32.gguf" ] || nice /usr/bin/python3 scripts/make_quant_sources.py "$dir" --bench
for t in bf16 q8_0 q4_k_m; do
    [ -f "$dir/qwen2-0.5b_$t.gguf" ] || nice "$ref" quantize "$dir/qwen2-0.5b_f32.gguf" "$dir/qwen2-0.5b_$t.gguf" "$t" > /dev/null 2>&1
done
echo "llamacpp_tokens: $T"
echo "llamacpp_decode_steps: $D"
echo "llamacpp_threads: $th"
echo "llamacpp_reps: $reps"
field() { awk -F': ' -v k="$1" '$1 == k {print $2}'; }
ratios=()
for t in f32 bf16 q8_0 q4_k_m; do
    f=$dir/qwen2-0.5b_$t.gguf
    dk=$(nice ./dashkit bench "$f" --tokens "$T" --reps "$reps" --threads "$th" --decode "$D" 2>/dev/null)
    lc=$(nice "$ref" bench "$f" "$T" "$D" "$th" "$T" "$reps" 2>/dev/null)
    dp=$(field prefill_tokens_per_s <<<"$dk") dd=$(field decode_tokens_per_s <<<"$dk")
    lp=$(field prefill_tok_s <<<"$lc") ld=$(field decode_tok_s <<<"$lc")
    T_=$(tr a-z A-Z <<<"$t")
    echo "dashkit_prefill_tok_s_$T_: $dp"
    echo "llamacpp_prefill_tok_s_$T_: $lp"
    echo "dashkit_decode_tok_s_$T_: $dd"
    echo "llamacpp_decode_tok_s_$T_: $ld"
    ratios+=("$(awk -v a="$dp" -v b="$lp" -v n="$T_" 'BEGIN {printf "llamacpp_prefill_ratio_%s: %.3f", n, a / b}')")
    ratios+=("$(awk -v a="$dd" -v b="$ld" -v n="$T_" 'BEGIN {printf "llamacpp_decode_ratio_%s: %.3f", n, a / b}')")
done
printf '%s\n' "${ratios[@]}"
