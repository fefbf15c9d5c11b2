#!/usr/bin/env bash
# Runs each Check test binary given, prints its output, and closes with one summary line
#   tests: N passed, N failed
# counting individual Check test cases. Exit status is non-zero if any binary failed.
set -u
export DASHKIT="${DASHKIT:-./dashkit}"
export DK_FIXTURES="${DK_FIXTURES:-../shared/fixtures}"
passed=0; failed=0; bad_bins=""
for bin in "$@"; do
  echo "== $bin"
  out=$("$bin" 2>&1); rc=$?
  printf '%s\n' "$out"
  line=$(printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' | tail -n 1)
  if [ -n "$line" ]; then
    n=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
    f=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$line")
    e=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
    passed=$((passed + n - f - e)); failed=$((failed + f + e))
  fi
  if [ $rc -ne 0 ] || [ -z "$line" ]; then
    bad_bins="$bad_bins $bin"
    [ -z "$line" ] && failed=$((failed + 1))
  fi
done
[ -n "$bad_bins" ] && echo "failing test binaries:$bad_bins"
echo "tests: $passed passed, $failed failed"
[ -z "$bad_bins" ]
