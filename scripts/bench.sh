#!/usr/bin/env bash
# make bench: (1) sgemm peak and dense prefill of a Qwen2-0.5B-shaped random model, measured in one
# run (last line prefill_vs_gemm_peak); (2) a rho sweep of 5 values at one split layer on the bundled
# model (models/dashkit-tiny.gguf, else a random model of its shape) with vs without prefix sharing
# (last line prefix_sharing_wall_ratio, next to prefix_sharing_expected from the FLOP model).
# The machine is shared: run under nice, read the ratios, not the absolute numbers.
# DK_BENCH_TOKENS / DK_BENCH_REPS / DK_BENCH_THREADS override the defaults (2048 tokens, 3 reps,
# OpenBLAS's thread count); DK_BENCH_SWEEP_TOKENS the sweep's chunk (1024).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=()
[ -n "${DK_BENCH_THREADS:-}" ] && threads=(--threads "$DK_BENCH_THREADS")
echo "== dense prefill vs sgemm peak"
nice ./dashkit bench --shape qwen2-0.5b --tokens "${DK_BENCH_TOKENS:-2048}" --reps "${DK_BENCH_REPS:-3}" "${threads[@]}"
echo "== prefix sharing: rho sweep (5 values) at one l_s"
nice ./dashkit bench --prefix-sweep --tokens "${DK_BENCH_SWEEP_TOKENS:-1024}" --reps "${DK_BENCH_REPS:-3}" "${threads[@]}"
echo "== halting: dense vs DASH side by side (last line halting_efficiency = wall/flops speedup, goal >= 0.95)"
nice ./dashkit bench --shape qwen2-0.5b --tokens "${DK_BENCH_HALT_TOKENS:-4096}" --reps "${DK_BENCH_REPS:-3}" "${threads[@]}" \
    --method dash --rho 0.667 --ls 0.4
