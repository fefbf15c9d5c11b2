#!/usr/bin/env bash
# Slow check (make check-slow): a config as a Slurm job array on a real one-node cluster on
# loopback (scripts/slurm-local.sh), one array task cancelled mid-run (scancel), the whole thing
# resubmitted, and the merged store compared with a one-machine run of the same config: every
# cell done, every sample's scores, FLOPs, tokens and predictions identical.
#   DK_SLURM_CONFIG   the config (default configs/quickstart.json)
#   DK_SLURM_SHARDS   array size (default 4)
set -euo pipefail
cd "$(dirname "$0")/.."
dashkit=$(pwd)/dashkit
config=${DK_SLURM_CONFIG:-configs/quickstart.json}
shards=${DK_SLURM_SHARDS:-4}
work=$(mktemp -d /tmp/dk-slurm-check.XXXXXX)
chmod 755 "$work"
cluster=$work/cluster
out=$work/out
cleanup() {
  scripts/slurm-local.sh stop "$cluster" || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "slow_slurm: FAIL: $*" >&2; for f in "$out"/logs/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 5 "$f"; }; done >&2; exit 1; }

# the daemons and every job they start run niced: the machine is shared
nice -n 10 scripts/slurm-local.sh start "$cluster"
export SLURM_CONF=$cluster/slurm.conf

wait_job() { # job id, seconds
  local t=0
  while [ -n "$(squeue -h -j "$1" -o %i 2>/dev/null)" ]; do
    sleep 2; t=$((t + 2)); [ "$t" -lt "$2" ] || fail "job $1 still queued/running after $2 s"
  done
}

echo "slow_slurm: submit $config as $shards shards"
"$dashkit" slurm "$config" --shards "$shards" --cpus-per-task 1 --out "$out" --submit > "$work/submit1.txt" ||
  fail "dashkit slurm --submit: $(cat "$work/submit1.txt")"
cat "$work/submit1.txt"
array=$(awk '/^array_job:/ {print $2}' "$work/submit1.txt")
merge=$(awk '/^merge_job:/ {print $2}' "$work/submit1.txt")
[ -n "$array" ] && [ -n "$merge" ] || fail "no job ids printed"

# cancel one array task once it is running and has stored something
victim=""
for _ in $(seq 1 600); do
  for t in $(squeue -h -r -j "$array" -t R -o %i 2>/dev/null); do
    i=${t#*_}
    if [ -f "$out/shard-$i.db" ] && [ "$(sqlite3 "$out/shard-$i.db" 'SELECT count(*) FROM samples' 2>/dev/null || echo 0)" -gt 0 ]; then
      victim=$t; break
    fi
  done
  [ -n "$victim" ] && break
  [ -n "$(squeue -h -j "$array" -o %i 2>/dev/null)" ] || break
  sleep 1
done
[ -n "$victim" ] || fail "no array task of $array was seen running with stored samples"
scancel "$victim"
echo "slow_slurm: cancelled array task $victim"
wait_job "$array" 3600
wait_job "$merge" 600
"$dashkit" status "$out" > "$work/status1.txt" || fail "status: $(cat "$work/status1.txt")"
cat "$work/status1.txt"
grep -q '^merged: .*pending [1-9]' "$work/status1.txt" || grep -q '^missing: [0-9]' "$work/status1.txt" ||
  fail "after the cancel the merged store should miss cells"

echo "slow_slurm: resubmit"
"$dashkit" slurm "$config" --shards "$shards" --cpus-per-task 1 --out "$out" --submit > "$work/submit2.txt" ||
  fail "resubmit: $(cat "$work/submit2.txt")"
cat "$work/submit2.txt"
wait_job "$(awk '/^array_job:/ {print $2}' "$work/submit2.txt")" 3600
wait_job "$(awk '/^merge_job:/ {print $2}' "$work/submit2.txt")" 600
"$dashkit" status "$out" > "$work/status2.txt" || fail "status"
cat "$work/status2.txt"
grep -q '^merged: .* pending 0 failed 0' "$work/status2.txt" || fail "merged store not complete"

echo "slow_slurm: one-machine run of the same config"
nice -n 10 "$dashkit" run "$config" --db "$work/one.db" --threads 1 --quiet > /dev/null || fail "one-machine run"
dump() {
  sqlite3 "$1" "SELECT c.key, c.state, s.sample_id, s.prompt_tokens, s.context_tokens, s.question_tokens, s.gen_tokens,
    s.active_tokens, s.flops_dense, s.flops_method, s.flops_method_parts, hex(s.prediction), s.answers, s.score, s.kl,
    s.kl_answer, s.top1, (SELECT group_concat(l.flops) FROM sample_layers l WHERE l.sample_row = s.id)
    FROM cells c LEFT JOIN samples s ON s.cell_id = c.id ORDER BY c.key, s.sample_id"
}
dump "$work/one.db" > "$work/one.txt"
dump "$out/dashkit.db" > "$work/merged.txt"
n=$(wc -l < "$work/one.txt")
cmp -s "$work/one.txt" "$work/merged.txt" || { diff "$work/one.txt" "$work/merged.txt" | head -5 >&2; fail "merged store differs from the one-machine run"; }
[ "$(sqlite3 "$out/dashkit.db" "SELECT count(*) FROM cells WHERE state <> 'done'")" = 0 ] || fail "cells not done"
runs=$(sqlite3 "$out/dashkit.db" "SELECT count(*) FROM run_shards WHERE host <> '' AND threads = 1")
[ "$runs" -ge $((shards + 1)) ] || fail "run_shards has $runs shard runs with host and 1 thread, expected > $shards"
echo "slow_slurm: merged store == one-machine run ($n sample rows; $runs shard runs recorded)"
echo "slow_slurm: ok"
