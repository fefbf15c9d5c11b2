#!/usr/bin/env bash
# Installs the Debian packages dashkit needs, only those missing.
#   scripts/install-deps.sh          build + test + run dependencies
#   scripts/install-deps.sh --dev    also PyTorch/SentencePiece for the reference and training scripts
#   scripts/install-deps.sh --slurm  only Slurm and munge, for make check-slow
set -euo pipefail
pkgs="make gcc pkg-config libopenblas-dev libcjson-dev libsqlite3-dev sqlite3 check gnuplot-nox"
if [ "${1:-}" = "--dev" ]; then
  pkgs="$pkgs python3-torch python3-numpy python3-sentencepiece sentencepiece"
fi
# --slurm: what `make check-slow`'s loopback Slurm cluster needs (tests/slow_slurm.sh)
if [ "${1:-}" = "--slurm" ]; then
  pkgs="slurm-wlm munge iproute2 sqlite3"
fi
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
