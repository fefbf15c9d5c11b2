#!/usr/bin/env bash
# Writes the fuzz targets' seed corpora under OUT/<target>/ (default build-fuzz/seeds), from
# tests/data, configs/, the bundled model's prompts and small inputs synthesised here; the
# shared fixtures (metrics cases, tok512.bin) are added when present. Nothing is committed:
# `make fuzz` reruns this. Run from the repository root.
set -euo pipefail
out=${1:-build-fuzz/seeds}
fix=${DK_FIXTURES:-../shared/fixtures}
rm -rf "$out"
for t in gguf model tok_llama2c tok_spm tok_bpe config longbench score memory; do mkdir -p "$out/$t"; done

le32() { # little-endian int32 of $1
    local v=$(( $1 & 0xffffffff ))
    printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((v & 255)) $((v >> 8 & 255)) $((v >> 16 & 255)) $((v >> 24 & 255)))"
}

# ---- gguf, model: the small GGUF models of tests/data
for f in ref_tiny_q8_0 ref_tiny_bf16 ref_qwen2_f16; do
    cp "tests/data/$f.gguf" "$out/gguf/$f"
    cp "tests/data/$f.gguf" "$out/model/$f"
    cp "tests/data/$f.gguf" "$out/memory/$f"
done
# ---- model: synthetic llama2.c checkpoints (zero weights), tied and untied classifier
llama2c() { # name dim hidden layers heads kv_heads vocab seq_len
    local d=$2 f=$3 L=$4 h=$5 kv=$6 v=$7 s=$8 hs=$(($2 / $5))
    local av=${v#-} q=$(($5 * hs)) k=$(($6 * hs))
    local nf=$((av * d + L * d + L * d * q + 2 * L * d * k + L * q * d + L * d + 3 * L * d * f + d + s * hs))
    [ "$v" -lt 0 ] && nf=$((nf + av * d))
    { for x in "$d" "$f" "$L" "$h" "$kv" "$v" "$s"; do le32 "$x"; done; head -c $((4 * nf)) /dev/zero; } > "$out/model/$1"
}
llama2c llama2c_tied 8 16 1 2 1 16 4
llama2c llama2c_untied 8 12 2 2 2 -10 3
# ---- tok_llama2c: u16 n_vocab, then a tokenizer file
{
    printf '\x10\x00'; le32 8
    i=0
    for p in '<unk>' $'\n<s>\n' $'\n</s>\n' '<0x0A>' '<0x41>' ' ' 'a' 'b' 'ab' ' a' 'Once' ' upon' 'x' $'\xc3\xa9' '<0xC3>' '<0xA9>'; do
        le32 $(( i < 3 ? 0 : 0xbf800000 + i * 0x10000 )); le32 ${#p}; printf '%s' "$p"
        i=$((i + 1))
    done
} > "$out/tok_llama2c/synthetic"
if [ -f "$fix/llama2c/tok512.bin" ]; then
    { printf '\x00\x02'; cat "$fix/llama2c/tok512.bin"; } > "$out/tok_llama2c/tok512"
fi
# ---- tok_spm, tok_bpe: flag byte + text lines from tests/data
n=0
while IFS= read -r line; do
    n=$((n + 1))
    printf '\x00%s' "$line" > "$out/tok_spm/line$n"
    { printf "\\x$(printf %02x $((n % 4)))"; printf '%s' "$line"; } > "$out/tok_bpe/line$n"
done < <(cat tests/data/tiny_prompt.txt tests/data/ref_prompt.txt; grep -v "^#" tests/data/tok512_golden.tsv | cut -f1 | head -40;
         grep -o '"text": *"[^"]*"' tests/data/bpe_goldens.json | head -60 | sed 's/"text": *"//; s/"$//')
printf '\x05 hello  <user> ab\xe2\x96\x81c \xc3\xa9\xff' > "$out/tok_spm/small_vocab"
printf '\x08\x01\x00\x02\x00\xff\x07' > "$out/tok_spm/ids"
printf '\x0b\x01\x00\x02\x00\xff\x07\x10\x27' > "$out/tok_bpe/ids"
printf '\x02<|begin_of_text|>Hello 123456 \xf0\x9f\x98\x80\r\n\n  x' > "$out/tok_bpe/special"
# ---- config: the configs of the repository
find configs -name '*.json' | while read -r f; do cp "$f" "$out/config/$(echo "$f" | tr / _)"; done
# ---- longbench: flag byte (dataset | n_max << 4), optional "TEMPLATE\0", JSONL
row() { # dataset answers all_classes
    printf '{"input": "Who?", "context": "Passage 1: x y z. Paragraph 2: w", "answers": %s, "length": 7, "dataset": "%s", "language": "en", "all_classes": %s, "_id": "i%s"}\n' "$2" "$1" "$3" "$RANDOM"
}
{ printf '\x00'; row hotpotqa '["x"]' null; row hotpotqa '["y", "z"]' null; } > "$out/longbench/hotpotqa"
{ printf '\x01'; row trec '["LOC"]' '["LOC", "NUM"]'; } > "$out/longbench/trec"
{ printf '\x12'; row passage_count '["2"]' null; echo; row passage_count '["3"]' null; } > "$out/longbench/count"
{ printf '\x03{{x}} {context}\nQ: {input}\n\0'; row lcc '["def f():"]' null; } > "$out/longbench/lcc_template"
{ printf '\x05'; row passage_retrieval_en '["Paragraph 2"]' null; } > "$out/longbench/retrieval"
# ---- score: bit 0 backend, then cases
{
    printf '\x00'
    echo '{"metric": "qa_f1_score", "prediction": "Bob Dylan", "answers": ["Bob Dylan"], "all_classes": null, "expected": 1.0}'
    echo '{"metric": "rouge_score", "prediction": "the cat sat", "answers": ["a cat sat down"], "all_classes": null}'
    echo '{"metric": "classification_score", "prediction": "LOC x", "answers": ["LOC"], "all_classes": ["LOC", "NUM"]}'
    echo '{"metric": "retrieval_score", "prediction": "Paragraph 3", "answers": ["Paragraph 3"], "all_classes": null}'
    echo '{"metric": "count_score", "prediction": "4 or 5", "answers": ["5"], "all_classes": null}'
} > "$out/score/sample"
{
    printf '\x01'
    echo '{"metric": "code_sim_score", "prediction": "def f(x):\n  return x", "answers": ["def f(y): return y"], "all_classes": null}'
    echo '{"metric": "string_match_all", "prediction": ["a b", "c"], "answers": [["a", "b"], ["d"]], "postprocess": true}'
    echo '{"metric": "string_match_part", "prediction": ["a b"], "answers": [["x", "b"]], "postprocess": false}'
    echo '{"metric": "longbench_dataset_score", "dataset": "trec", "predictions": ["LOC"], "answers": [["LOC"]], "all_classes": ["LOC", "NUM"]}'
} > "$out/score/batch"
if [ -f "$fix/metrics/golden.jsonl" ]; then
    split -l 20 -d "$fix/metrics/golden.jsonl" "$out/score/golden_part"
    for f in "$out"/score/golden_part*; do { printf '\x00'; cat "$f"; } > "$f.seed" && rm "$f"; done
fi
for t in "$out"/*; do echo "seeds: $(basename "$t"): $(ls "$t" | wc -l) files"; done
