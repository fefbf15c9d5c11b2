#!/usr/bin/env bash
# compare_stores.sh A.db B.db — do two dashkit stores hold the same results?
#
# Used to show a refactor changes nothing: run `make run` (or any config) before and after into two
# stores, then compare. Compared, keyed by the cell's identity key (row ids may differ): every
# cell's identity, task, method, params and state; every sample row (tokens, active-token counts,
# FLOPs and their parts, prediction, answers, score and every fidelity column); per-layer rows
# (deltas, FLOPs); the dense-result cache (logits included). Left out, because they measure the
# machine or the clock and not the result: wall times, timestamps, worker/host/pid fields, leases,
# attempts. Columns present in only one store (a newer schema) are reported, then ignored.
#
# Prints `stores_equal: yes` and exits 0, or `stores_equal: no` with the first differing rows
# (`differs: TABLE.COLUMN in N rows, max abs diff D` per column, cells present in one store only, then the
# start of a unified diff of the sorted dumps) and exits 1. Exit 2 on bad arguments.
set -euo pipefail
if [ $# -ne 2 ] || [ ! -f "$1" ] || [ ! -f "$2" ]; then
  echo "usage: compare_stores.sh A.db B.db (both existing dashkit stores)" >&2
  exit 2
fi
command -v sqlite3 > /dev/null || { echo "compare_stores: the sqlite3 command is needed (apt-get install sqlite3)" >&2; exit 2; }
a=$1 b=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Columns that measure time, place or bookkeeping, never results.
skip='^(id|cell_id|sample_row|run_id|model_id|wall_s|wall_dense_s|wall_method_s|wall_decode_s|created_at|claimed_at|started_at|finished_at|added_at|worker|worker_host|worker_pid|worker_start|lease_until|attempts)$'

# cols DB TABLE: the table's result columns, one per line.
cols() { sqlite3 "$1" "SELECT name FROM pragma_table_info('$2')" | grep -Ev "$skip" || true; }

# common TABLE: result columns both stores have, comma-joined with a prefix; mentions the others.
common() {
  local t=$1 p=$2
  cols "$a" "$t" | sort > "$tmp/ca"
  cols "$b" "$t" | sort > "$tmp/cb"
  local only
  only=$(comm -3 "$tmp/ca" "$tmp/cb" | tr -d '\t' | tr '\n' ' ')
  [ -z "$only" ] || echo "compare_stores: $t: columns in one store only (ignored): $only" >&2
  comm -12 "$tmp/ca" "$tmp/cb" | sed "s/^/$p./" | paste -sd, -
}

# exprs TABLE PREFIX: one SQL text expression joining the common columns with '|'; reals are printed
# with 17 significant digits (exact round trip), everything else through quote() (NULL, blobs as hex),
# with backslashes doubled and newlines written \n so that every row stays one line.
exprs() {
  common "$1" "$2" | tr ',' '\n' |
    sed "s/.*/iif(typeof(&) = 'real', printf('%!.17g', &), replace(replace(quote(&), char(92), char(92, 92)), char(10), char(92, 110)))/" | paste -sd'|' - |
    sed "s/)|iif/) || '|' || iif/g"
}

# dump DB OUT: every compared row as text, sorted, one line per row (quote() keeps blobs and NULLs exact).
dump() {
  local db=$1 out=$2 q
  {
    q=$(exprs cells c)
    sqlite3 "$db" "SELECT 'cell|' || $q FROM cells c"
    q=$(exprs samples s)
    sqlite3 "$db" "SELECT 'sample|' || c.key || '|' || $q FROM samples s JOIN cells c ON c.id = s.cell_id"
    q=$(exprs sample_layers l)
    sqlite3 "$db" "SELECT 'layer|' || c.key || '|' || s.sample_id || '|' || $q FROM sample_layers l
                   JOIN samples s ON s.id = l.sample_row JOIN cells c ON c.id = s.cell_id"
    q=$(exprs dense_results d)
    sqlite3 "$db" "SELECT 'dense|' || $q FROM dense_results d"
  } | LC_ALL=C sort > "$out"
}

dump "$a" "$tmp/a.txt"
dump "$b" "$tmp/b.txt"
na=$(wc -l < "$tmp/a.txt") nb=$(wc -l < "$tmp/b.txt")
echo "rows: $na vs $nb (cells, samples, per-layer rows, dense results)"
if cmp -s "$tmp/a.txt" "$tmp/b.txt"; then
  echo "stores_equal: yes"
  exit 0
fi
echo "stores_equal: no"
# Where: per column, the rows that differ between matching rows (cells by key, samples by cell key
# and sample id, layers by those and the layer, dense results by their primary key), with the
# largest absolute difference for numbers; then rows present in one store only.
colsum() { # TABLE ALIAS JOIN-SQL
  local t=$1 p=$2 join=$3 c sel=""
  for c in $(common "$t" x | tr ',' ' ' | sed 's/x\.//g'); do
    sel="$sel UNION ALL SELECT '$t.$c', sum(A.$c IS NOT B.$c),
         max(CASE WHEN typeof(A.$c) IN ('real','integer') AND typeof(B.$c) IN ('real','integer')
                  THEN abs(A.$c - B.$c) END) FROM $join"
  done
  sqlite3 -separator ' ' "$b" "ATTACH '$a' AS a; SELECT * FROM (${sel# UNION ALL}) WHERE 2 > 1" 2>/dev/null |
    awk '$2 > 0 { printf "differs: %s in %d rows%s\n", $1, $2, ($3 != "" ? ", max abs diff " $3 : "") }'
}
colsum cells c "a.cells A JOIN main.cells B ON A.key = B.key"
colsum samples s "a.samples A JOIN a.cells AC ON AC.id = A.cell_id JOIN main.cells BC ON BC.key = AC.key
                  JOIN main.samples B ON B.cell_id = BC.id AND B.sample_id = A.sample_id"
colsum sample_layers l "a.sample_layers A JOIN a.samples AS_ ON AS_.id = A.sample_row JOIN a.cells AC ON AC.id = AS_.cell_id
                  JOIN main.cells BC ON BC.key = AC.key JOIN main.samples BS ON BS.cell_id = BC.id AND BS.sample_id = AS_.sample_id
                  JOIN main.sample_layers B ON B.sample_row = BS.id AND B.layer = A.layer"
colsum dense_results d "a.dense_results A JOIN main.dense_results B USING (model_sha256, task_key, sample_id)"
sqlite3 -separator ' ' "$b" "ATTACH '$a' AS a;
  SELECT 'cells only in A:', count(*) FROM a.cells WHERE key NOT IN (SELECT key FROM main.cells);
  SELECT 'cells only in B:', count(*) FROM main.cells WHERE key NOT IN (SELECT key FROM a.cells)"
diff -u "$tmp/a.txt" "$tmp/b.txt" | head -20 | cut -c1-300
exit 1
