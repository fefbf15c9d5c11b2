#!/usr/bin/env bash
# make run: the main job on bundled defaults — configs/quickstart.json (the bundled tiny model on
# passkey/needle retrieval, dense vs DASH over a rho grid vs baselines) into results/dashkit.db,
# then the per-cell summary (fidelity over the teacher-forced answer: kl, top1, nll_delta; kl_first
# is the first answer token alone). Re-running resumes: done cells are skipped.
# Without models/dashkit-tiny.gguf (trained by scripts/train_tiny.py), it says so and runs the
# same kind of matrix on the tiny random test model tests/data/ref_llama_f32.gguf instead
# (3 layers, 256-token context: the scores mean nothing, the machinery is the same).
set -euo pipefail
cd "$(dirname "$0")/.."
db="${DK_DB:-results/dashkit.db}"
config=configs/quickstart.json
if [ ! -f models/dashkit-tiny.gguf ]; then
  echo "run-main: models/dashkit-tiny.gguf is absent (train it with scripts/train_tiny.py);" \
       "running a small matrix on the random test model tests/data/ref_llama_f32.gguf instead" >&2
  mkdir -p results
  config=results/quickstart-fallback.json
  db="${DK_DB:-results/dashkit-fallback.db}"
  cat > "$config" <<'JSON'
{
  "name": "quickstart-fallback",
  "description": "make run without the bundled model: the quickstart matrix shape on a 3-layer random GGUF (tests/data), contexts sized to its 256-token window.",
  "models": ["tests/data/ref_llama_f32.gguf"],
  "tasks": [{"name": "passkey", "lengths": [220, 240]}],
  "methods": [
    {"name": "dense"},
    {"name": "dash", "rho": [0.3, 0.5, 0.667, 0.8], "ls": 0.34},
    {"name": "random", "rho": 0.667, "ls": 0.34, "seed": 1},
    {"name": "fastv", "rho": 0.667, "ls": 0.34}
  ],
  "samples": 10,
  "seed": 1234,
  "threads": 2
}
JSON
fi
./dashkit run "$config" --db "$db"
echo "---"
sqlite3 -header -column "$db" \
  "SELECT task, length, method, rho, ls, n, round(mean_score, 2) AS score, round(flops_speedup, 3) AS flops_speedup,
          round(wall_speedup, 3) AS wall_speedup, round(kl, 4) AS kl, round(top1, 3) AS top1,
          round(nll_delta, 4) AS nll_delta, round(kl_first, 5) AS kl_first
   FROM cell_summary WHERE cell_id IN (SELECT cell_id FROM run_cells WHERE run_id = (SELECT max(id) FROM runs))
   ORDER BY task, length, method, rho" 2>/dev/null || ./dashkit status --db "$db"
echo "---"
# Figures, tables and report.md drawn from the store (gnuplot optional: data + scripts regardless).
./dashkit report --db "$db" --out "${DK_REPORT:-results/report}"
