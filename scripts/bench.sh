#!/usr/bin/env bash
# make bench: sgemm peak and dense prefill of a Qwen2-0.5B-shaped random model, measured in one run.
# The machine is shared: run under nice, read the ratio (last line), not the absolute numbers.
# DK_BENCH_TOKENS / DK_BENCH_REPS override the defaults (2048 tokens, 3 repetitions).
set -euo pipefail
cd "$(dirname "$0")/.."
exec nice ./dashkit bench --shape qwen2-0.5b --tokens "${DK_BENCH_TOKENS:-2048}" --reps "${DK_BENCH_REPS:-3}"
