#!/bin/sh
# train_tokenizer.sh — train the dashkit-tiny SentencePiece BPE tokenizer (Debian `spm_train`).
#
# Input: the TRAINING corpora only (datasets/corpora/*-train.txt), split into one sentence per
# line (spm_train skips lines longer than --max_sentence_length).
# Output: models/tokenizer.model and models/tokenizer.vocab.
#
# Settings are those of the Llama/Llama-2 SentencePiece tokenizer so that the llama-SPM BPE
# implementation in the engine reproduces SentencePiece's ids:
#   model_type=bpe, byte_fallback (256 <0xNN> pieces), split_digits, identity normalisation
#   (no NFKC, text kept byte for byte), add_dummy_prefix (the "add_space_prefix" of GGUF),
#   remove_extra_whitespaces=false, unk=0 <unk>, bos=1 <s>, eos=2 </s>, no pad.
# A newline is not in the vocabulary and is encoded by byte fallback as <0x0A>, as in Llama.
#
# Reproducibility: the pieces and scores (models/tokenizer.vocab) are identical on every run.
# The committed models/tokenizer.model (sha256 8fbbfc4a...) was made by an earlier revision that
# passed absolute temp paths, which SentencePiece records in the model's trainer_spec, so a
# rebuild (deterministic: sha256 a45db857...) differs from it in those bytes only; compare
# tokenizer.vocab to check a rebuild.
#
# Usage: scripts/train_tokenizer.sh [VOCAB_SIZE]   (default 2048)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
vocab=${1:-2048}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

cat "$root"/datasets/corpora/*-train.txt \
	| sed -e 's/\([.!?]["”’]*\) \([A-Z“"‘]\)/\1\n\2/g' \
	| awk 'length($0) > 0' > "$tmp/sentences.txt"

# relative paths: the trainer spec stored inside the .model then does not name the temp dir
cd "$tmp"
nice spm_train \
	--input=sentences.txt \
	--model_prefix=tokenizer \
	--model_type=bpe \
	--vocab_size="$vocab" \
	--character_coverage=0.9999 \
	--byte_fallback=true \
	--split_digits=true \
	--normalization_rule_name=identity \
	--add_dummy_prefix=true \
	--remove_extra_whitespaces=false \
	--allow_whitespace_only_pieces=true \
	--max_sentence_length=16384 \
	--input_sentence_size=0 \
	--shuffle_input_sentence=true \
	--random_seed=20240607 \
	--unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 \
	--num_threads=1 \
	--minloglevel=1

mkdir -p "$root/models"
cp "$tmp/tokenizer.model" "$root/models/tokenizer.model.tmp" && mv "$root/models/tokenizer.model.tmp" "$root/models/tokenizer.model"
cp "$tmp/tokenizer.vocab" "$root/models/tokenizer.vocab.tmp" && mv "$root/models/tokenizer.vocab.tmp" "$root/models/tokenizer.vocab"
sha256sum "$root/models/tokenizer.model"
