#!/usr/bin/env bash
# Fails when a file includes a header from a layer above its own. Layers, lowest first:
#   engine/ (0)  <  eval/tasks/ (1)  <  eval/sweep/ (2)  <  eval/report/ and eval/ itself (3)  <  cli/ (4)
# A file may include headers of its own layer and of the layers below it.
#   tests/check_layers.sh [ROOT]       check the tree at ROOT (default: the repository)
#   tests/check_layers.sh --self-test  show that an engine file including an eval header is caught
# Besides the per-folder include paths in the Makefile (engine objects see only engine/), this catches
# what include paths cannot: relative paths ("../eval/x.h"), includes between eval's rooms, and
# library headers the engine must not use (SQLite, cJSON), and sqlite3.h anywhere but the store
# (eval/sweep/store*.[ch]: every SQL statement lives there).
set -u
layer_of() { # path relative to the root -> layer number
  case "$1" in
    engine/*) echo 0 ;; eval/tasks/*) echo 1 ;; eval/sweep/*) echo 2 ;; eval/*) echo 3 ;; cli/*) echo 4 ;; *) echo 9 ;;
  esac
}
check_tree() {
  local root=$1 bad=0 f inc name base hl fl
  declare -A hdr_layer=()
  while IFS= read -r f; do hdr_layer[${f##*/}]=$(layer_of "$f"); done < <(cd "$root" && find engine eval cli -name '*.h' 2>/dev/null)
  while IFS= read -r f; do
    fl=$(layer_of "$f")
    while IFS= read -r inc; do
      name=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^>"]+)[>"].*/\1/' <<<"$inc")
      base=${name##*/}
      hl=${hdr_layer[$base]:-}
      case "$name" in ../*|*/../*) hl=$(layer_of "$(realpath -m --relative-to="$root" "$root/$(dirname "$f")/$name")") ;; esac
      if [ "$fl" = 0 ] && [[ $base == sqlite3.h || $base == cJSON.h ]]; then hl=9; fi
      if [ "$base" = sqlite3.h ] && [[ $f != eval/sweep/store*.[ch] ]]; then # all SQL lives in the store
        echo "check_layers: $f includes sqlite3.h: only the store (eval/sweep/store*.c) speaks SQL; read through store.h"
        bad=1
      fi
      if [ -n "$hl" ] && [ "$hl" -gt "$fl" ]; then
        echo "check_layers: $f includes $name, a header of a layer above it (see tests/check_layers.sh)"; bad=1
      fi
    done < <(grep -E '^[[:space:]]*#[[:space:]]*include' "$root/$f")
  done < <(cd "$root" && find engine eval cli -name '*.[ch]' 2>/dev/null | sort)
  return $bad
}
if [ "${1:-}" = "--self-test" ]; then
  t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
  mkdir -p "$t/engine" "$t/eval/sweep" "$t/eval/tasks" "$t/cli"
  printf '#include "store.h"\n' > "$t/engine/forward.c"; : > "$t/eval/sweep/store.h"
  out=$(check_tree "$t") && { echo "check_layers: self-test FAILED: engine including an eval header not caught"; exit 1; }
  rm "$t/engine/forward.c"; printf '#include "../sweep/store.h"\n' > "$t/eval/tasks/task.c"
  out2=$(check_tree "$t") && { echo "check_layers: self-test FAILED: tasks including a sweep header not caught"; exit 1; }
  rm "$t/eval/tasks/task.c"; printf '#include <sqlite3.h>\n' > "$t/cli/cmd_status.c"
  out3=$(check_tree "$t") && { echo "check_layers: self-test FAILED: SQL outside the store not caught"; exit 1; }
  printf 'check_layers: self-test caught: %s\ncheck_layers: self-test caught: %s\ncheck_layers: self-test caught: %s\n' \
    "$out" "$out2" "$out3"
  exit 0
fi
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
check_tree "$root" || exit 1
echo "check_layers: no file includes a header of a layer above it"
