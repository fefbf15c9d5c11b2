#!/usr/bin/env bash
# bench_llamacpp.sh — dashkit vs llama.cpp on the same files and threads (part of `make bench`).
# Needs build/llamacpp_ref (scripts/make_quant_goldens.sh --build); without it, prints why and
# exits 0. A Qwen2-0.5B-shaped random F32 GGUF is written once into .cache/bench
# (scripts/make_quant_sources.py --bench, 2 GB) and quantised by llama.cpp's own quantiser to
# F16, BF16, Q8_0 and Q4_K_M (the 896-wide rows are not whole 256-blocks, so llama.cpp's Q4_K_M
# keeps most matrices in Q5_0/Q8_0 as it does for the real Qwen2-0.5B).
#
# Per type (DK_BENCH_LLAMACPP_TYPES, default f32 f16 bf16 q8_0 q4_k_m) and prompt length
# (DK_BENCH_LLAMACPP_LENGTHS, default 2048,16384): prefill tokens/s, dashkit in q8 compute where
# the CPU has native bf16 (else f32; q8 is bf16 plus 8-bit activations in the decode of block-type
# rows, as llama.cpp computes those; on F32/F16/BF16 files it is bf16) vs llama.cpp (`llamacpp_ref bench`, n_batch = n_ubatch = 512,
# its best setting here), and after the shortest prompt DK_BENCH_LLAMACPP_DECODE decode steps
# (default 8). The two programs alternate run by run, DK_BENCH_REPS runs each (default 3; each run
# has its own untimed warm-up), medians; both on DK_BENCH_THREADS threads (default 2).
# Lines: dashkit_prefill_tok_s_TYPE_T, llamacpp_prefill_tok_s_TYPE_T, dashkit_decode_tok_s_TYPE,
# llamacpp_decode_tok_s_TYPE, then the ratios dashkit / llama.cpp last:
# llamacpp_prefill_ratio_TYPE_T and llamacpp_decode_ratio_TYPE. The machine may be shared: read
# the ratios, and the load the script prints.
set -euo pipefail
cd "$(dirname "$0")/.."
ref=build/llamacpp_ref
if [ ! -x "$ref" ] || [ ! -f build/llamacpp_ref.libdir ]; then
    echo "llamacpp: skipped (no build/llamacpp_ref; build it with scripts/make_quant_goldens.sh --build)"
    exit 0
fi
export DK_LLAMACPP_LIBDIR=$(cat build/llamacpp_ref.libdir)
lengths=${DK_BENCH_LLAMACPP_LENGTHS:-2048,16384} D=${DK_BENCH_LLAMACPP_DECODE:-8}
th=${DK_BENCH_THREADS:-2} reps=${DK_BENCH_REPS:-3} types=${DK_BENCH_LLAMACPP_TYPES:-f32 f16 bf16 q8_0 q4_k_m}
dir=.cache/bench
mkdir -p "$dir"
[ -f "$dir/qwen2-0.5b_f32.gguf" ] || nice /usr/bin/python3 scripts/make_quant_sources.py "$dir" --bench
for t in $types; do
    [ "$t" = f32 ] || [ -f "$dir/qwen2-0.5b_$t.gguf" ] || nice "$ref" quantize "$dir/qwen2-0.5b_f32.gguf" "$dir/qwen2-0.5b_$t.gguf" "$t" > /dev/null 2>&1
done
compute=q8
./dashkit generate tests/data/ref_llama_f32.gguf -n 2 --compute q8 > /dev/null 2>&1 || compute=f32
first=${lengths%%,*}
echo "llamacpp_lengths: $lengths"
echo "llamacpp_decode_steps: $D"
echo "llamacpp_threads: $th"
echo "llamacpp_reps: $reps"
echo "llamacpp_dashkit_compute: $compute"
echo "llamacpp_load_before: $(cut -d' ' -f1-3 /proc/loadavg)"
field() { awk -F': ' -v k="$1" '$1 == k {print $2}'; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
ratio() { awk -v a="$2" -v b="$3" -v n="$1" 'BEGIN {printf "%s: %.3f", n, a / b}'; }
ratios=()
for t in $types; do
    f=$dir/qwen2-0.5b_$t.gguf T_=$(tr a-z A-Z <<<"$t")
    for T in ${lengths//,/ }; do
        dp=() lp=() dd=() ld=()
        for rep in $(seq 1 "$reps"); do
            # alternate which program goes first; decode only after the shortest prompt
            for side in $([ $((rep % 2)) -eq 1 ] && echo "dk lc" || echo "lc dk"); do
                n_gen=1
                [ "$T" = "$first" ] && n_gen=$D
                if [ "$side" = dk ]; then
                    dec=()
                    [ "$T" = "$first" ] && dec=(--decode "$D")
                    out=$(nice ./dashkit bench "$f" --lengths "$T" --reps 1 --threads "$th" --compute "$compute" "${dec[@]}" 2>/dev/null)
                    dp+=("$(field "prefill_tokens_per_s_$T" <<<"$out")")
                    [ "$T" = "$first" ] && dd+=("$(field decode_tokens_per_s <<<"$out")")
                else
                    out=$(nice "$ref" bench "$f" "$T" "$n_gen" "$th" 512 1 2>/dev/null)
                    lp+=("$(field prefill_tok_s <<<"$out")")
                    [ "$T" = "$first" ] && ld+=("$(field decode_tok_s <<<"$out")")
                fi
            done
        done
        a=$(median "${dp[@]}") b=$(median "${lp[@]}")
        echo "dashkit_prefill_tok_s_${T_}_$T: $a"
        echo "llamacpp_prefill_tok_s_${T_}_$T: $b"
        ratios+=("$(ratio "llamacpp_prefill_ratio_${T_}_$T" "$a" "$b")")
        [ "$T" = "$first" ] || continue
        a=$(median "${dd[@]}") b=$(median "${ld[@]}")
        echo "dashkit_decode_tok_s_$T_: $a"
        echo "llamacpp_decode_tok_s_$T_: $b"
        ratios+=("$(ratio "llamacpp_decode_ratio_$T_" "$a" "$b")")
    done
done
echo "llamacpp_load_after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%s\n' "${ratios[@]}"
