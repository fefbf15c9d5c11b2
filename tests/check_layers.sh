#!/usr/bin/env bash
# Fails when a layer includes a header from a layer above it: cli -> eval -> engine, arrows down only.
#   tests/check_layers.sh [ROOT]     check the tree at ROOT (default: the repository)
#   tests/check_layers.sh --self-test  show that an engine file including an eval header is caught
# Besides the per-folder include paths in the Makefile (engine objects see only engine/), this
# catches what include paths cannot: relative paths ("../eval/x.h") and library headers the engine
# must not use (SQLite, cJSON).
set -u
check_tree() {
  local root=$1 bad=0 f inc name
  # headers of each layer, by file name (any depth below the folder)
  local eval_h cli_h
  eval_h=$(cd "$root" && find eval -name '*.h' -printf '%f\n' 2>/dev/null | sort -u)
  cli_h=$(cd "$root" && find cli -name '*.h' -printf '%f\n' 2>/dev/null | sort -u)
  while IFS= read -r f; do
    while IFS= read -r inc; do
      name=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^>"]+)[>"].*/\1/' <<<"$inc")
      base=${name##*/}
      case "$f" in
        engine/*)
          if printf '%s\n%s\n' "$eval_h" "$cli_h" | grep -qxF "$base" || [[ $name == *eval/* || $name == *cli/* ]] ||
             [[ $base == sqlite3.h || $base == cJSON.h || $name == cjson/* ]]; then
            echo "check_layers: $f includes $name (engine/ may include only engine/ and system headers)"; bad=1
          fi ;;
        eval/*)
          if printf '%s\n' "$cli_h" | grep -qxF "$base" || [[ $name == *cli/* ]]; then
            echo "check_layers: $f includes $name (eval/ may include engine/ and eval/, not cli/)"; bad=1
          fi ;;
      esac
    done < <(grep -E '^[[:space:]]*#[[:space:]]*include' "$root/$f")
  done < <(cd "$root" && find engine eval -name '*.[ch]' 2>/dev/null | sort)
  return $bad
}
if [ "${1:-}" = "--self-test" ]; then
  t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
  mkdir -p "$t/engine" "$t/eval" "$t/cli"
  printf '#include "store.h"\n' > "$t/engine/forward.c"; : > "$t/eval/store.h"
  out=$(check_tree "$t") && { echo "check_layers: self-test FAILED: upward include not caught"; exit 1; }
  echo "check_layers: self-test caught: $out"
  exit 0
fi
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
check_tree "$root" || exit 1
echo "check_layers: engine/ and eval/ include nothing from the layers above them"
