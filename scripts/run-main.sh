#!/usr/bin/env bash
# make run: the main job on bundled defaults. For now a generation demo: llama2.c's stories260K
# from ../shared/fixtures (or $DK_FIXTURES) when present; otherwise the engine benchmark on a
# small random model so the command still exercises the engine.
set -euo pipefail
cd "$(dirname "$0")/.."
fx="${DK_FIXTURES:-../shared/fixtures}"
if [ -f "$fx/llama2c/stories260K.bin" ] && [ -f "$fx/llama2c/tok512.bin" ]; then
  ./dashkit info "$fx/llama2c/stories260K.bin" -z "$fx/llama2c/tok512.bin"
  echo "---"
  ./dashkit generate "$fx/llama2c/stories260K.bin" -z "$fx/llama2c/tok512.bin" -p "Once upon a time" -n 256
else
  echo "run-main: $fx/llama2c/stories260K.bin absent; running the engine benchmark on a small shape instead" >&2
  ./dashkit bench --shape llama-tiny --tokens 256
fi
