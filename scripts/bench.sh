#!/usr/bin/env bash
# make bench: (1) sgemm peak and dense prefill of a Qwen2-0.5B-shaped random model, measured in one
# run (last line prefill_vs_gemm_peak); (2) a rho sweep of 5 values at one split layer on the bundled
# model (models/dashkit-tiny.gguf, else a random model of its shape) with vs without prefix sharing
# in the engine (prefix_sweep_wall_ratio, next to prefix_sharing_expected from the FLOP model);
# (3) the same kind of sweep through `dashkit run`, with vs without prefix sharing (last line
# prefix_sharing_wall_ratio); (4) decode on a BF16 Qwen2-0.5B-shaped model with the fused small-m
# path vs whole-matrix conversion, alternating (decode_fused_vs_convert = fused / whole-matrix
# tokens per second, median of the per-rep ratios), next to the streaming read bandwidth
# (decode_vs_bandwidth), and decode after a 512-token prompt for F32, F16, BF16, Q8_0 and Q5_0 weights
# (decode_vs_bandwidth_TYPE; on AVX-512 CPUs decode_avx512_vs_avx2_TYPE, the same decode on the AVX2
# kernels beside it), and where q8 compute runs, Q8_0 and Q5_0 in q8 compute too
# (decode_vs_bandwidth_TYPE_q8, and decode_q8_vs_f32dot_TYPE: against the same decode with f32 dots,
# side by side), and Q4_K and Q6_K on the TinyLlama-1.1B shape in q8 (decode_vs_bandwidth_TINYLLAMA_TYPE_q8),
# and Q5_0 in q8 after an 8192-token prompt (decode_vs_bandwidth_Q5_0_q8_8K);
# (5) dashkit vs llama.cpp prefill and decode
# tokens/s on the same files at 2K and 16K tokens, dashkit in bf16 compute (scripts/bench_llamacpp.sh;
# skipped with a message unless build/llamacpp_ref is built: llamacpp_prefill_ratio_TYPE_T,
# llamacpp_decode_ratio_TYPE);
# (6) where the CPU has native bf16: the prefill of (1) also in bf16 compute
# (bf16_vs_f32_prefill, prefill_vs_bf16_peak) and the halting run of (3) in bf16 compute too;
# (7) dense prefill tokens/s per context length in f32 and bf16 (long_context_retention).
# The machine is shared: run under nice, read the ratios, not the absolute numbers.
# DK_BENCH_TOKENS / DK_BENCH_REPS / DK_BENCH_THREADS override the defaults (2048 tokens, 3 reps,
# OpenBLAS's thread count); DK_BENCH_SWEEP_TOKENS the sweep's chunk (1024); DK_BENCH_DECODE_STEPS
# the decode steps per path and rep (2 in the BF16 section, 16 per file type after the 512-token
# prompt; each step reads every weight once, ~1 GB in BF16);
# DK_BENCH_LENGTHS the lengths of (6) (2048,8192,16384,32768: a 32K prefill of the 0.5B shape is
# ~80 TFLOP, tens of minutes on 2 busy cores; one rep per length).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "bench_date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "load_before: $(cut -d' ' -f1-3 /proc/loadavg)"
threads=()
[ -n "${DK_BENCH_THREADS:-}" ] && threads=(--threads "$DK_BENCH_THREADS")
# bf16 compute where the CPU multiplies bf16 natively (dashkit refuses it elsewhere, exit 2)
compute=(--compute bf16)
if ! ./dashkit generate tests/data/ref_llama_f32.gguf -n 2 --compute bf16 >/dev/null 2>&1; then
    echo "bf16 compute: not available on this CPU (f32 only)"
    compute=()
fi
echo "== dense prefill vs sgemm peak (and, with bf16, f32 vs bf16 compute side by side: bf16_vs_f32_prefill last)"
nice ./dashkit bench --shape qwen2-0.5b --tokens "${DK_BENCH_TOKENS:-2048}" --reps "${DK_BENCH_REPS:-3}" "${threads[@]}" "${compute[@]}"
echo "== prefix sharing: rho sweep (5 values) at one l_s"
nice ./dashkit bench --prefix-sweep --tokens "${DK_BENCH_SWEEP_TOKENS:-1024}" --reps "${DK_BENCH_REPS:-3}" "${threads[@]}"
echo "== halting: dense vs DASH side by side (last line halting_efficiency = wall/flops speedup, goal >= 0.95)"
for mode in f32 ${compute[1]:-}; do
    echo "compute: $mode"
    nice ./dashkit bench --shape qwen2-0.5b --tokens "${DK_BENCH_HALT_TOKENS:-4096}" --reps "${DK_BENCH_REPS:-3}" "${threads[@]}" \
        --method dash --rho 0.667 --ls 0.4 $([ "$mode" = bf16 ] && echo --compute bf16) | grep -v '^compute:'
done
echo "== decode: fused small-m path vs whole-matrix conversion, BF16 weights, and decode_vs_bandwidth (last line decode_fused_vs_convert)"
nice ./dashkit bench --shape qwen2-0.5b --dtype bf16 --tokens 16 --reps 5 "${threads[@]}" --decode "${DK_BENCH_DECODE_STEPS:-2}"
echo "== decode per file type after a 512-token prompt: achieved bytes/s over the streaming read bandwidth (decode_vs_bandwidth_TYPE)"
decode_types=(${DK_BENCH_DECODE_TYPES:-f32 f16 bf16 q8_0 q5_0})
# q8 compute (8-bit activations for the block types' decode) where bf16 runs
[ -n "${compute[*]}" ] && decode_types+=(q8_0:q8 q5_0:q8)
for dtc in "${decode_types[@]}"; do
    dt=${dtc%%:*} suffix= cflags=()
    [ "$dtc" != "$dt" ] && suffix=_${dtc#*:} cflags=(--compute "${dtc#*:}")
    out=$(nice ./dashkit bench --shape qwen2-0.5b --dtype "$dt" --lengths 512 --reps 3 "${threads[@]}" "${cflags[@]}" --decode "${DK_BENCH_DECODE_STEPS:-16}" 2>/dev/null)
    T_=$(tr a-z A-Z <<<"$dt")$suffix
    awk -F': ' -v t="$T_" '$1 ~ /^(decode_tokens_per_s|stream_read_gbps|decode_bytes_per_token|decode_vs_bandwidth|decode_avx2_tokens_per_s|decode_avx512_vs_avx2|decode_f32dot_tokens_per_s|decode_q8_vs_f32dot)$/ {print $1 "_" t ": " $2}' <<<"$out"
done
# K-quants on a shape whose rows are whole 256-blocks (TinyLlama-1.1B; the 0.5B shape's 896-wide
# rows are not), in q8 compute: decode_vs_bandwidth_TINYLLAMA_TYPE_q8, decode_q8_vs_f32dot_TINYLLAMA_TYPE_q8
for dt in $([ -n "${compute[*]}" ] && echo "${DK_BENCH_DECODE_KTYPES:-q4_k q6_k}"); do
    out=$(nice ./dashkit bench --shape tinyllama-1.1b --dtype "$dt" --lengths 512 --reps 3 "${threads[@]}" --compute q8 --decode "${DK_BENCH_DECODE_STEPS:-16}" 2>/dev/null)
    T_=TINYLLAMA_$(tr a-z A-Z <<<"$dt")_q8
    awk -F': ' -v t="$T_" '$1 ~ /^(decode_tokens_per_s|stream_read_gbps|decode_vs_bandwidth|decode_f32dot_tokens_per_s|decode_q8_vs_f32dot)$/ {print $1 "_" t ": " $2}' <<<"$out"
done
# Decode after a long prompt (8192 tokens; DK_BENCH_DECODE_LONG), Q5_0 in q8 compute, where the K and V
# rows a step reads rival the weights (the bf16 copy of the cache: half of f32's 201 MB a token here):
# decode_vs_bandwidth_Q5_0_q8_8K
for L in $([ -n "${compute[*]}" ] && echo "${DK_BENCH_DECODE_LONG:-8192}"); do
    out=$(nice ./dashkit bench --shape qwen2-0.5b --dtype q5_0 --lengths "$L" --reps 3 "${threads[@]}" --compute q8 --decode "${DK_BENCH_DECODE_STEPS:-16}" 2>/dev/null)
    T_=Q5_0_q8_$((L / 1024))K
    awk -F': ' -v t="$T_" '$1 ~ /^(decode_tokens_per_s|stream_read_gbps|decode_bytes_per_token|decode_vs_bandwidth)$/ {print $1 "_" t ": " $2}' <<<"$out"
done
echo "== long context: dense prefill tokens/s per length (long_context_retention = longest / shortest)"
for mode in f32 ${compute[1]:-}; do
    nice ./dashkit bench --shape qwen2-0.5b --lengths "${DK_BENCH_LENGTHS:-2048,8192,16384,32768}" --reps 1 "${threads[@]}" \
        --compute "$mode" | grep -E '^(compute|prefill_tokens_per_s_|prefill_gflops_|peak_rss_vs_estimate_|long_context)'
done
echo "== prefix sharing through the runner: dashkit run of a 5-rho sweep at one l_s, with vs without (fresh DBs, alternating)"
# wall = the run's elapsed_s (dense references, question, decoding and store writes included, as a
# user's sweep sees them); expected = the runner's closed form over the same context prefills.
sweep_model=models/dashkit-tiny.gguf sweep_len=2048 sweep_samples=2
if [ ! -f "$sweep_model" ]; then sweep_model=tests/data/ref_llama_f32.gguf sweep_len=230 sweep_samples=8; fi
sweep_tmp=$(mktemp -d)
trap 'rm -rf "$sweep_tmp"' EXIT
cat > "$sweep_tmp/sweep.json" <<JSON
{"name":"bench-prefix-sweep","models":["$PWD/$sweep_model"],"tasks":[{"name":"passkey","lengths":[$sweep_len]}],
 "methods":[{"name":"dash","rho":[0.1,0.3,0.5,0.667,0.8],"ls":0.4}],"samples":$sweep_samples,"seed":1,
 "threads":${DK_BENCH_THREADS:-0}}
JSON
echo "sweep_model: $sweep_model"
echo "sweep_context_tokens: $sweep_len"
echo "sweep_samples: $sweep_samples"
sweep_run() { # $1 = db name, $2.. = extra flags; prints elapsed_s, keeps the summary
    rm -f "$sweep_tmp/$1".db*
    nice ./dashkit run "$sweep_tmp/sweep.json" --db "$sweep_tmp/$1.db" --quiet "${@:2}" > "$sweep_tmp/$1.out"
    awk -F': ' '$1 == "elapsed_s" {print $2}' "$sweep_tmp/$1.out"
}
no=() yes=()
for rep in $(seq 1 "${DK_BENCH_REPS:-3}"); do
    if [ $((rep % 2)) -eq 1 ]; then n=$(sweep_run off --no-prefix-sharing); y=$(sweep_run on); else y=$(sweep_run on); n=$(sweep_run off --no-prefix-sharing); fi
    no+=("$n") yes+=("$y")
    echo "rep $rep: without sharing ${n} s, with sharing ${y} s" >&2
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
mn=$(median "${no[@]}") my=$(median "${yes[@]}")
echo "sweep_run_wall_no_share_s: $mn"
echo "sweep_run_wall_share_s: $my"
awk -F': ' '$1 == "prefix_sharing_saved_s" {print "sweep_" $0}' "$sweep_tmp/on.out"
awk -v a="$mn" -v b="$my" 'BEGIN {printf "prefix_sharing_wall_ratio: %.3f\n", a / b}'
grep '^prefix_sharing_expected_ratio:' "$sweep_tmp/on.out"
echo "== config expansion + validation: dashkit run --check of a rho x ls grid, 10^5 and 10^6 cells (last line config_expand_cells_per_s)"
# --check parses, expands (identical cells dropped), validates every cell against the model and
# loads each task point's data: everything a run does before it opens the store. Scaling = cells/s
# at 10^6 over cells/s at 10^5 (1.0 = linear; the quadratic expansion this replaced gave ~0.1).
grid_check() { # $1 = grid side; prints the median wall seconds of DK_BENCH_REPS runs
    local n=$1 vals t ts=()
    vals=$(awk -v n="$n" 'BEGIN {for (i = 0; i < n; i++) printf "%s%.6f", i ? "," : "", i / n}')
    printf '{"name":"bench-grid","models":["%s"],"tasks":[{"name":"passkey","lengths":[200]}],"methods":[{"name":"dash","rho":[%s],"ls":[%s]}],"samples":1}\n' \
        "$PWD/tests/data/ref_llama_f32.gguf" "$vals" "$vals" > "$sweep_tmp/grid$n.json"
    for rep in $(seq 1 "${DK_BENCH_REPS:-3}"); do
        t=$(date +%s.%N)
        nice ./dashkit run "$sweep_tmp/grid$n.json" --check > /dev/null
        ts+=("$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN {print b - a}')")
    done
    median "${ts[@]}"
}
small=$(grid_check 316) big=$(grid_check 1000)
echo "config_expand_s_1e5: $small"
echo "config_expand_s_1e6: $big"
awk -v s="$small" -v b="$big" 'BEGIN {printf "config_expand_scaling: %.3f\n", (1000000 / b) / (99856 / s)}'
awk -v b="$big" 'BEGIN {printf "config_expand_cells_per_s: %.0f\n", 1000000 / b}'
echo "== dashkit vs llama.cpp: prefill and decode tokens/s on the same Qwen2-0.5B-shaped file and threads, F32/BF16/Q8_0/Q4_K_M (ratios last)"
bash scripts/bench_llamacpp.sh
echo "load_after: $(cut -d' ' -f1-3 /proc/loadavg)"
