#!/usr/bin/env bash
# Runs each fuzz target (build-fuzz/fuzz_NAME, built by `make fuzz`) for SECONDS with libFuzzer,
# one after the other, and prints one line per target:
#   fuzz NAME: ok: 60 s, 812345 runs, cov 1234 ft 5678, corpus 321 files
# Fails (exit 1) when any target reports a crash, a sanitizer error, a leak, a timeout (a
# single input over FUZZ_TIMEOUT seconds, default 25) or runs out of memory (FUZZ_RSS_MB,
# default 3072): the offending input is kept in build-fuzz/artifacts/NAME/ and the report is in
# build-fuzz/logs/NAME.log. A found crash goes into tests/data/fuzz/NAME/ as a regression input
# once fixed (tests/test_fuzz_regress replays it in `make test`).
#   scripts/fuzz.sh SECONDS NAME...
set -u
secs=$1; shift
root=build-fuzz
bash fuzz/seeds.sh "$root/seeds" >/dev/null
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
bad=""
for t in "$@"; do
    mkdir -p "$root/corpus/$t" "$root/artifacts/$t" "$root/logs"
    log="$root/logs/$t.log"
    dirs=("$root/corpus/$t" "$root/seeds/$t")
    [ -d "tests/data/fuzz/$t" ] && dirs+=("tests/data/fuzz/$t")
    "$root/fuzz_$t" -max_total_time="$secs" -timeout="${FUZZ_TIMEOUT:-25}" -rss_limit_mb="${FUZZ_RSS_MB:-3072}" \
        -close_fd_mask=3 -print_final_stats=1 -artifact_prefix="$root/artifacts/$t/" "${dirs[@]}" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last"); ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    n=$(find "$root/corpus/$t" -type f | wc -l)
    if [ $rc -eq 0 ]; then
        echo "fuzz $t: ok: $secs s, ${runs:-?} runs, cov ${cov:-?} ft ${ft:-?}, corpus $n files"
    else
        bad="$bad $t"
        echo "fuzz $t: FAILED (exit $rc) after ${runs:-?} runs, cov ${cov:-?} ft ${ft:-?}: see $log"
        grep -aE 'ERROR: |SUMMARY: |runtime error|dk_fuzz |Test unit written' "$log" | head -n 8 | sed 's/^/  /'
    fi
done
[ -z "$bad" ] || { echo "fuzz: failing targets:$bad"; exit 1; }
