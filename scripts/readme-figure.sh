#!/usr/bin/env bash
# Regenerates the README's speedup-accuracy frontier (docs/frontier.png, with the data and
# gnuplot script beside it: docs/frontier.dat, docs/frontier.gp) from the store `make run`
# writes (configs/quickstart.json). Every number comes from the store; nothing is rerun.
#   scripts/readme-figure.sh            # or: make readme-figure
# Environment: DB (default results/dashkit.db), TASK (default passkey), X (wall|flops, default
# flops: FLOP speedups are the same on every machine, while a 2 M-parameter model's measured
# wall speedups scatter with the machine's load), OUT (default docs/frontier.png), RUN (run id;
# default the latest run named quickstart, else the latest run).
set -euo pipefail
cd "$(dirname "$0")/.."
db="${DB:-results/dashkit.db}"
task="${TASK:-passkey}"
x="${X:-flops}"
out="${OUT:-docs/frontier.png}"
run="${RUN:-}"
[ -x ./dashkit ] || { echo "readme-figure: ./dashkit not built (make dashkit)" >&2; exit 1; }
[ -f "$db" ] || { echo "readme-figure: $db not found: run 'make run' first" >&2; exit 1; }
if [ -z "$run" ] && command -v sqlite3 >/dev/null; then
  run=$(sqlite3 -readonly "$db" "SELECT max(id) FROM runs WHERE name = 'quickstart'" 2>/dev/null || true)
fi
args=(plot --db "$db" --kind frontier --task "$task" --x "$x" --out "$out")
[ -n "$run" ] && args+=(--run "$run")
mkdir -p "$(dirname "$out")"
./dashkit "${args[@]}"
