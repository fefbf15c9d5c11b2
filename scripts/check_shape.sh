#!/usr/bin/env bash
# check_shape.sh — the size bars of the "house a newcomer can live in" (issue 15), measured:
#   no file in engine/ eval/ cli/ over 1,000 lines (generated tables aside: *_unicode.c),
#   no function in engine/ or eval/ over 120 lines, no cli command function over 100 lines.
# A function is counted from its header line (a line at column 0 ending in `{` with a `(` in it) to
# the closing `}` at column 0, both included. Prints every offender and `shape_ok: yes|no`;
# exit 1 when a bar is broken. `--list N` prints every function longer than N lines instead.
set -euo pipefail
cd "$(dirname "$0")/.."
list=0
[ "${1:-}" = --list ] && list=${2:?--list N}
files=$(ls engine/*.c engine/*.h eval/*/*.c eval/*/*.h cli/*.c cli/*.h 2>/dev/null | grep -v '_unicode\.[ch]$')
bad=0
if [ "$list" = 0 ]; then
  for f in $files; do
    n=$(wc -l < "$f")
    if [ "$n" -gt 1000 ]; then echo "file over 1000 lines: $f ($n)"; bad=1; fi
  done
fi
# awk prints: length file function
lens=$(awk '
  FNR == 1 { infn = 0 }
  !infn && /^[A-Za-z_].*\(.*\{[ \t]*$/ && $0 !~ /^(typedef|struct|enum|union)[ \t]/ && $0 !~ /^[^(]*=/ {
    infn = 1; start = FNR; name = $0; sub(/\(.*/, "", name); sub(/.*[ \t*]/, "", name); next
  }
  infn && /^}/ { print FNR - start + 1, FILENAME, name; infn = 0 }
' $files)
if [ "$list" != 0 ]; then
  echo "$lens" | awk -v n="$list" '$1 > n' | sort -rn
  exit 0
fi
while read -r n f name; do
  [ -n "${n:-}" ] || continue
  case "$f" in
    cli/*) lim=100; [[ "$name" == dk_cmd_* ]] || lim=120 ;;
    *) lim=120 ;;
  esac
  if [ "$n" -gt "$lim" ]; then echo "function over $lim lines: $f $name ($n)"; bad=1; fi
done <<< "$lens"
if [ "$bad" = 0 ]; then echo "shape_ok: yes"; else echo "shape_ok: no"; exit 1; fi
