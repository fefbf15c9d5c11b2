#!/usr/bin/env bash
# compare_outputs.sh — the behaviour-unchanged check for the store's read side (issue 15): what
# `dashkit status`, `export`, `report`, `report --analysis` and `plot` print and write.
#
#   scripts/compare_outputs.sh DASHKIT_A DASHKIT_B [STORE]
#       Both binaries read copies of one store; every output (stdout, stderr, exit status, every
#       file written) must be identical byte for byte. Without STORE, DASHKIT_A builds one in a
#       temporary folder: a two-model matrix on the random test models (tests/data), a second
#       small run with one cell marked failed and one pending (sqlite3 CLI), and one analysis.
#   scripts/compare_outputs.sh --stores STORE_A STORE_B [DASHKIT]
#       One binary (default ./dashkit) on two stores made by separate runs of the same configs
#       (e.g. by two builds, see scripts/compare_stores.sh for the sample rows themselves):
#       `export --format csv` with the wall-time and bookkeeping columns dropped and `status`
#       with its timestamps masked must be identical.
# Prints "outputs: same" and exits 0, or prints the differences and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dk-compare.XXXXXX")
# DK_COMPARE_KEEP=DIR keeps the stores and outputs there for a look.
trap '[ -z "${DK_COMPARE_KEEP:-}" ] || { rm -rf "$DK_COMPARE_KEEP"; cp -r "$tmp" "$DK_COMPARE_KEEP"; }; rm -rf "$tmp"' EXIT

abs() { case "$1" in /*) echo "$1" ;; *) echo "$root/$1" ;; esac; }

# Builds the sample store with binary $1 into $2.
make_store() {
  local dk=$1 db=$2
  cat > "$tmp/cmp.json" <<'JSON'
{
  "name": "compare-outputs",
  "models": ["tests/data/ref_llama_f32.gguf", "tests/data/ref_llama_f16.gguf"],
  "tasks": [{"name": "passkey", "lengths": [200, 240], "depths": [0, 50, 100]}],
  "methods": [
    {"name": "dense"},
    {"name": "dash", "rho": [0.5, 0.8], "ls": 0.34},
    {"name": "random", "rho": 0.667, "ls": 0.34, "seed": 1},
    {"name": "fastv", "rho": 0.667, "ls": 0.34}
  ],
  "samples": 3, "seed": 1234, "threads": 1
}
JSON
  cat > "$tmp/second.json" <<'JSON'
{"name": "compare-outputs-2", "models": ["tests/data/ref_llama_f32.gguf"],
 "tasks": [{"name": "passkey", "lengths": [200, 220]}],
 "methods": [{"name": "dash", "rho": 0.5, "ls": 0.34}, {"name": "fastv", "rho": 0.5, "ls": 0.34}],
 "samples": 2, "seed": 7, "threads": 1}
JSON
  "$dk" run "$tmp/cmp.json" --db "$db" >/dev/null 2>&1
  "$dk" run "$tmp/second.json" --db "$db" >/dev/null 2>&1
  "$dk" analyze tests/data/ref_llama_f32.gguf --task passkey --opt length=200 -n 2 --db "$db" \
      --out "$tmp/analysis" --no-draw >/dev/null 2>&1
  if command -v sqlite3 >/dev/null; then # a failed and a pending cell for status and report's notes
    sqlite3 "$db" "UPDATE cells SET state = 'failed', error = 'compare_outputs: marked failed'
                   WHERE id = (SELECT max(cell_id) FROM run_cells WHERE run_id = 2);
                   UPDATE cells SET state = 'pending'
                   WHERE id = (SELECT min(cell_id) FROM run_cells WHERE run_id = 2);"
  else
    echo "compare_outputs: sqlite3 CLI absent: no failed/pending cells in the sample store" >&2
  fi
}

# Runs every read command of binary $1 on store copy $2/store.db, outputs into $2/out.
read_all() {
  local dk=$1 d=$2 i=0
  mkdir -p "$d/out"
  # the paper's reported numbers beside the measured ones: a made-up table on the sample store's task
  cat > "$d/paper.csv" <<'CSV'
method,dashkit_method,model,benchmark,avg,passkey,speedup_flashattn,speedup_eager,speedup_theoretical,speedup_theoretical_T,source
vanilla,dense,Tiny-1M,made-up,51.5,50.25,,,,,"compare_outputs.sh: not a paper"
dash,dash,Tiny-1M,made-up,49,48.5,1.5,2.25,3,128,"compare_outputs.sh: not a paper"
d3,,Tiny-1M,made-up,40,,,,,,"compare_outputs.sh: not a paper"
fastv,fastv,Tiny-1M,made-up,45.75,44,,1.25,,,"compare_outputs.sh: not a paper"
CSV
  run_one() { # name, args...
    local name=$1; shift
    (cd "$d" && set +e; "$dk" "$@" >"out/$name.stdout" 2>"out/$name.stderr"; echo $? >"out/$name.rc")
  }
  (
    export DK_GNUPLOT=  # no drawing: images depend on the gnuplot build, not on dashkit
    run_one status status --db store.db
    run_one status_run2 status --db store.db --run 2
    run_one status_run9 status --db store.db --run 9
    run_one export_csv export --db store.db --format csv
    run_one export_json export --db store.db --format json
    run_one export_run1 export --db store.db --format csv --run 1
    run_one export_run9 export --db store.db --format json --run 9
    run_one export_file export --db store.db --format json --run 2 --out out/export_run2.json
    run_one report report --db store.db --out out/report --run 1 --boot 200
    run_one report_latest report --db store.db --out out/report_latest --boot 50 --seed 3
    run_one report_paper report --db store.db --out out/report_paper --run 1 --boot 100 --no-draw --paper paper.csv
    run_one report_run9 report --db store.db --out out/report9 --run 9
    run_one plot_frontier plot --db store.db --run 1 --model ref_llama_f32 --task passkey --x flops --out out/plot/f.png --boot 100
    run_one plot_heatmap plot --db store.db --run 1 --model ref_llama_f16 --kind heatmap --task passkey \
        --method 'dash rho=0.5 ls=0.34 recent=0 sink=0' --out out/plot/h.svg
    run_one plot_layers plot --db store.db --run 1 --model ref_llama_f32 --kind layers --method dash --out out/plot/l.png
    run_one plot_delta plot --db store.db --run 2 --kind delta --out out/plot/d.png
    run_one plot_bad plot --db store.db --run 1 --kind heatmap --out out/plot/x.png
    # stores a second analysis (analysis_put) and writes its figures back from the store
    run_one analyze analyze "$root/tests/data/ref_llama_f32.gguf" --task passkey --opt length=200 -n 2 \
        --db store.db --out out/analysis --no-draw
    run_one report_analyses report --db store.db --out out/report_an --run 1 --boot 0 --no-draw
  )
}

if [ "${1:-}" = "--stores" ]; then
  [ $# -ge 3 ] || { echo "usage: $0 --stores STORE_A STORE_B [DASHKIT]" >&2; exit 2; }
  dk=$(abs "${4:-./dashkit}")
  for s in a b; do
    src=$([ $s = a ] && echo "$2" || echo "$3")
    mkdir -p "$tmp/$s"
    cp "$(abs "$src")" "$tmp/$s/store.db"
    (cd "$tmp/$s" && "$dk" export --db store.db --format csv) | python3 -c '
import csv, sys
rows = list(csv.reader(sys.stdin))
drop = {i for i, h in enumerate(rows[0]) if h.startswith("wall") or h in ("worker", "created_at")}
w = csv.writer(sys.stdout, lineterminator="\n")
for r in rows: w.writerow([v for i, v in enumerate(r) if i not in drop])' >"$tmp/$s/export.csv"
    (cd "$tmp/$s" && "$dk" status --db store.db) |
      sed -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z/TIME/g' >"$tmp/$s/status.txt"
  done
  if diff -r "$tmp/a" "$tmp/b" --exclude=store.db >"$tmp/diff" 2>&1; then echo "outputs: same"; exit 0; fi
  head -n 200 "$tmp/diff"; echo "outputs: DIFFERENT"; exit 1
fi

[ $# -ge 2 ] || { echo "usage: $0 DASHKIT_A DASHKIT_B [STORE] | --stores STORE_A STORE_B [DASHKIT]" >&2; exit 2; }
dka=$(abs "$1"); dkb=$(abs "$2")
if [ $# -ge 3 ]; then store=$(abs "$3"); else store="$tmp/sample.db"; make_store "$dka" "$store"; fi
for s in a b; do
  mkdir -p "$tmp/$s"
  cp "$store" "$tmp/$s/store.db"
  [ ! -f "$store-wal" ] || cp "$store-wal" "$tmp/$s/store.db-wal"
done
read_all "$dka" "$tmp/a"
read_all "$dkb" "$tmp/b"
n=$(find "$tmp/a/out" -type f | wc -l)
if diff -r "$tmp/a/out" "$tmp/b/out" >"$tmp/diff" 2>&1; then
  echo "outputs: same ($n files: status, export, report, plot)"; exit 0
fi
head -n 200 "$tmp/diff"; echo "outputs: DIFFERENT"; exit 1
