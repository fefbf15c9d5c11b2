#!/usr/bin/env bash
# Installs the Debian packages dashkit needs, only those missing.
#   scripts/install-deps.sh          build + test + run dependencies
#   scripts/install-deps.sh --dev    also PyTorch/SentencePiece for the reference and training scripts
#   scripts/install-deps.sh --fuzz   also clang and its libFuzzer runtime (make fuzz)
#   scripts/install-deps.sh --slurm  also Slurm and munge (make check-slow's loopback cluster, tests/slow_slurm.sh)
set -euo pipefail
pkgs="make gcc pkg-config libopenblas-dev libdnnl-dev libcjson-dev libsqlite3-dev sqlite3 check gnuplot-nox"
for opt in "$@"; do
  case "$opt" in
    --dev) pkgs="$pkgs python3-torch python3-numpy python3-sentencepiece sentencepiece" ;;
    --fuzz) pkgs="$pkgs clang libclang-rt-dev" ;;
    --slurm) pkgs="$pkgs slurm-wlm munge iproute2" ;;
    *) echo "install-deps: unknown option '$opt' (--dev, --fuzz, --slurm)" >&2; exit 2 ;;
  esac
done
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing packages:$missing (run as root or install them)" >&2
  exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
