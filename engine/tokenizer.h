/* tokenizer.h — text <-> token ids for Llama-family models.
 *
 * One opaque dk_tokenizer with a kind behind it:
 *   "spm"     SentencePiece-style BPE built from a GGUF vocabulary (tokenizer.ggml.model = llama)
 *   "llama2c" the same algorithm over a llama2.c tok*.bin (spaces stored as ' ', no token types)
 *   "bpe"     GPT-2 byte-level BPE (tokenizer.ggml.model = gpt2: GPT-2, Llama-3, Qwen2/2.5/3,
 *             SmolLM), described below
 * All kinds share encode/decode/decode_piece and the vocabulary accessors.
 *
 * Encoding (SentencePiece BPE, as sentencepiece's bpe_model.cc, llama.cpp's SPM tokenizer and
 * llama2.c's encode()):
 *   1. normalise: optionally collapse runs of ' ' and strip leading/trailing ' '
 *      (SentencePiece remove_extra_whitespaces; off by default, see below), prepend one ' '
 *      (dummy prefix) when add_space_prefix and the text is non-empty, map ' ' to the
 *      vocabulary's space symbol (U+2581, or ' ' for llama2.c files);
 *   2. split into UTF-8 characters (user-defined pieces are matched whole, longest first);
 *   3. repeatedly merge the adjacent pair whose concatenation is a normal/user-defined piece with
 *      the highest score (ties: leftmost), O(n log n) with a heap over linked symbols;
 *   4. a symbol that is not a piece becomes its bytes as <0xNN> tokens (byte fallback), or
 *      unk_id when the vocabulary has no byte pieces.
 * Control tokens (<s>, </s>) are never produced from text.
 *
 * Encoding (byte-level BPE, as GPT-2's encoder.py, Hugging Face tokenizers and llama.cpp's BPE
 * tokenizer):
 *   1. special tokens (types control and user-defined) found in the text are kept whole and
 *      split the text into segments (leftmost, longest first);
 *   2. each segment is cut into chunks by the pre-tokenizer regex named by tokenizer.ggml.pre,
 *      implemented by hand over a Unicode class table (\p{L}, \p{N}, \s):
 *        gpt-2      's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *        smollm     the same after isolating every \p{N} (SmolLM's Digits(individual_digits))
 *        llama-bpe  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *                    ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+   (Llama-3; also llama3, llama-v3)
 *        qwen2      the llama-bpe regex with \p{N} in place of \p{N}{1,3} (also deepseek-r1-qwen)
 *      dk_bpe_vocab.pre NULL means gpt-2; an unknown name is an error. A GGUF without
 *      tokenizer.ggml.pre is refused (llama.cpp applies its own "default" regexes to it).
 *   3. each chunk's bytes become byte-level characters (GPT-2's bytes_to_unicode: printable
 *      Latin-1 maps to itself, the other 68 bytes to U+0100..U+0143), one symbol per byte;
 *   4. the adjacent pair with the lowest merge rank (tokenizer.ggml.merges order; ties leftmost)
 *      merges until no pair has a rank, O(n log n) with a heap. llama-bpe first emits a chunk that
 *      is itself a token whole (Hugging Face's ignore_merges, as Llama-3 declares it).
 * No Unicode normalisation is applied (Qwen's tokenizer.json asks for NFC; llama.cpp ignores it
 * too): text that is not NFC may tokenise differently from Hugging Face.
 * Decoding maps the byte-level characters back to bytes; control and user-defined tokens decode
 * to their text (Hugging Face's skip_special_tokens = false), so decode(encode(s)) == s for valid
 * UTF-8 s; invalid UTF-8 in the output becomes U+FFFD per maximal invalid subsequence.
 *
 * Parity with llama.cpp (tests/test_tok_parity.c, goldens from llama.cpp's own llama_tokenize):
 * byte-level BPE encodes as llama.cpp with parse_special = true, SentencePiece as llama.cpp with
 * parse_special = false; a GGUF's tokenizer (tokenizer_gguf.c) also takes over llama.cpp's rule
 * that end-of-generation texts ("</s>", "<|im_end|>", "<|endoftext|>", ...) are control tokens.
 *
 * Thread safety: a dk_tokenizer is immutable after creation; encode/decode may run concurrently. */
#ifndef DK_TOKENIZER_H
#define DK_TOKENIZER_H

#include "dk_common.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dk_tokenizer dk_tokenizer;

/* GGUF token types (tokenizer.ggml.token_type). */
enum {
    DK_TOKEN_TYPE_NORMAL = 1,
    DK_TOKEN_TYPE_UNKNOWN = 2,
    DK_TOKEN_TYPE_CONTROL = 3,
    DK_TOKEN_TYPE_USER_DEFINED = 4,
    DK_TOKEN_TYPE_UNUSED = 5,
    DK_TOKEN_TYPE_BYTE = 6,
};

typedef struct {
    int n_vocab;
    const char *const *pieces;  /* (n_vocab) UTF-8 pieces, SentencePiece style with U+2581 for space */
    const uint32_t *piece_lens; /* (n_vocab) bytes of each piece, or NULL => NUL-terminated */
    const float *scores;        /* (n_vocab) merge priority (higher merges first), or NULL => -id
                                       (SentencePiece BPE scores are -rank, so id order is the
                                       natural fallback; llama.cpp would use 0 for all) */
    const int32_t *types;       /* (n_vocab) DK_TOKEN_TYPE_*, or NULL => all normal */
    int bos_id, eos_id, unk_id; /* -1 if absent */
    bool add_space_prefix;      /* tokenizer.ggml.add_space_prefix (llama.cpp default: true) */
    bool no_add_bos;            /* tokenizer.ggml.add_bos_token is false (llama.cpp default for SPM:
                                       true, so a zeroed field means "prepend BOS") */
} dk_spm_vocab;

/* A GPT-2 byte-level BPE vocabulary as GGUF stores it (tokenizer.ggml.model = gpt2). */
typedef struct {
    int n_vocab;
    const char *const *tokens;  /* (n_vocab) byte-level pieces (' ' is stored as U+0120) */
    const uint32_t *token_lens; /* (n_vocab) bytes of each piece, or NULL => NUL-terminated */
    const int32_t *types;       /* (n_vocab) DK_TOKEN_TYPE_*, or NULL => all normal */
    int n_merges;
    const char *const *merges;  /* (n_merges) "left right", rank order (first merges first) */
    const uint32_t *merge_lens; /* (n_merges) bytes of each merge, or NULL => NUL-terminated */
    int bos_id, eos_id, unk_id; /* -1 if absent */
    const char *pre;            /* tokenizer.ggml.pre, NULL => "gpt-2" */
    size_t pre_len;             /* bytes of pre (0 => NUL-terminated) */
    bool add_bos;               /* tokenizer.ggml.add_bos_token (llama.cpp default for BPE: false) */
} dk_bpe_vocab;

struct dk_gguf;

/* ---- construction ---- */

/* Builds a "bpe" tokenizer; copies everything it needs from v. Errors name the token or merge
 * index (a merge whose halves or concatenation are not tokens, an unknown pre-tokenizer). */
dk_status dk_tokenizer_create_bpe(const dk_bpe_vocab *v, dk_tokenizer **out, dk_err *e);

/* Reads tokenizer.ggml.{tokens, token_type, merges, pre, bos/eos/unknown_token_id,
 * add_bos_token} from an open GGUF whose tokenizer.ggml.model is gpt2 and builds a "bpe"
 * tokenizer; `path` names the file in errors. */
dk_status dk_tokenizer_load_gguf_bpe(const struct dk_gguf *g, const char *path, dk_tokenizer **out,
                                     dk_err *e);

/* The tokenizer an open GGUF carries (tokenizer_gguf.c), whatever its general.architecture and
 * whether it has tensors or not (vocab-only files): tokenizer.ggml.model "llama" builds an "spm",
 * "gpt2" a "bpe" tokenizer. desc (may be NULL) receives a short description for `info`:
 * "spm (32000 pieces)", "bpe qwen2 (151669 pieces)", "none", "t5 (not supported yet)",
 * "spm (invalid)". DK_ERR_UNSUPPORTED: no tokenizer or an unsupported tokenizer.ggml.model;
 * DK_ERR_FORMAT/DK_ERR_ARG: a malformed one. Errors name `path`. */
dk_status dk_tokenizer_load_gguf(const struct dk_gguf *g, const char *path, dk_tokenizer **out, char *desc,
                                 size_t desc_size, dk_err *e);
/* The same from a GGUF file path (opened and closed here; nothing else of the file is read). */
dk_status dk_tokenizer_load_gguf_file(const char *path, dk_tokenizer **out, char *desc, size_t desc_size,
                                      dk_err *e);

/* Builds an "spm" tokenizer; copies everything it needs from v (v may be freed afterwards). */
dk_status dk_tokenizer_create_spm(const dk_spm_vocab *v, dk_tokenizer **out, dk_err *e);

/* Loads a llama2.c tokenizer file: int32 max_token_length, then n_vocab x
 * {float32 score, int32 len, len bytes}. Token types are inferred as llama2.c does:
 * id 0 unknown, ids 1/2 BOS/EOS (control), pieces "<0xNN>" bytes, the rest normal. */
dk_status dk_tokenizer_load_llama2c(const char *path, int n_vocab, dk_tokenizer **out, dk_err *e);

void dk_tokenizer_free(dk_tokenizer *t);

/* SentencePiece's normalizer flag remove_extra_whitespaces (collapse runs of ' ', strip leading
 * and trailing ' '; also strips every leading space when decoding). Neither GGUF nor llama2.c
 * files record it, and llama.cpp and llama2.c's run.c never apply it, so it is off by default.
 * Turn it on to reproduce a .model file that sets it (tok512.model does). Set it before the
 * tokenizer is shared between threads (it is the one mutable setting). */
void dk_tokenizer_set_remove_extra_whitespaces(dk_tokenizer *t, bool on);

/* Byte-level BPE: replaces the pre-tokenizer (a tokenizer.ggml.pre name, as in dk_bpe_vocab) of a
 * "bpe" tokenizer, to run the same merges under another pre-tokenizer (tests, experiments).
 * DK_ERR_ARG for another kind, DK_ERR_UNSUPPORTED for an unknown name. Like the setting above,
 * call it before the tokenizer is shared. */
dk_status dk_tokenizer_set_pre(dk_tokenizer *t, const char *pre, dk_err *e);

/* ---- encode ---- */

/* Encodes text[0..len) (need not be NUL-terminated; invalid UTF-8 bytes are byte-fallback
 * symbols). *ids is malloc'd by the callee (free() it), *n_ids its length; add_bos prepends
 * bos_id (error if the vocabulary has none). Empty text gives zero ids (or just BOS). */
dk_status dk_tokenizer_encode(const dk_tokenizer *t, const char *text, size_t len, bool add_bos,
                              int32_t **ids, int *n_ids, dk_err *e);

/* "bpe" kind: the chunk boundaries of steps 1-2 above (special tokens are chunks of their own).
 * *ends (malloc'd) receives the end byte offset of each chunk, *n their count. Other kinds:
 * DK_ERR_UNSUPPORTED. */
dk_status dk_tokenizer_pretokenize(const dk_tokenizer *t, const char *text, size_t len, uint32_t **ends,
                                   int *n, dk_err *e);

/* ---- decode ---- */

/* llama2.c run.c decode(): the piece's text with the space symbol as ' ', its leading ' '
 * dropped when prev is BOS, and <0xNN> as the single raw byte. *len (if non-NULL) receives the
 * byte length (a byte piece may be "\0"). llama2c kind: control pieces are returned verbatim as
 * stored (tok512.bin stores "\n<s>\n"); spm kind: control and unused pieces decode to "".
 * bpe kind: the token's raw bytes (possibly part of a UTF-8 character; prev is unused), control
 * and user-defined tokens as their text, unused ones as "".
 * Out-of-range tok gives "" (len 0). The pointer lives as long as t. */
const char *dk_tokenizer_decode_piece(const dk_tokenizer *t, int32_t prev, int32_t tok, size_t *len);

/* Full detokenisation as SentencePiece's DecodeIds: pieces concatenated with spaces restored,
 * runs of byte pieces decoded as UTF-8 (each invalid byte -> U+FFFD), control tokens skipped,
 * unknown -> " \u2047 ", and the leading space of the first visible piece dropped (all leading
 * spaces when remove_extra_whitespaces). *text is malloc'd and NUL-terminated; *len its bytes.
 * bpe kind: the concatenated bytes of dk_tokenizer_decode_piece, invalid UTF-8 as U+FFFD per
 * maximal invalid subsequence (as Rust's from_utf8_lossy and the WHATWG decoder).
 * Ids out of range are an error naming the position and value. */
dk_status dk_tokenizer_decode(const dk_tokenizer *t, const int32_t *ids, int n, char **text, size_t *len,
                              dk_err *e);

/* ---- vocabulary ---- */

int dk_tokenizer_bos(const dk_tokenizer *t);
int dk_tokenizer_eos(const dk_tokenizer *t);
int dk_tokenizer_unk(const dk_tokenizer *t);
int dk_tokenizer_n_vocab(const dk_tokenizer *t);
const char *dk_tokenizer_kind(const dk_tokenizer *t); /* "spm", "llama2c" or "bpe" */
/* The pre-tokenizer ("gpt-2", "smollm", "llama-bpe", "qwen2"); "" for other kinds. */
const char *dk_tokenizer_pre(const dk_tokenizer *t);
/* Whether callers should prepend BOS by default: tokenizer.ggml.add_bos_token, as llama.cpp,
 * with llama.cpp's default when the key is absent (false for "bpe", true for "spm"); true for
 * "llama2c". */
bool dk_tokenizer_add_bos_default(const dk_tokenizer *t);

/* The raw piece as stored (U+2581 or ' ' for spaces), NULL if out of range; *len its bytes. */
const char *dk_tokenizer_piece(const dk_tokenizer *t, int32_t tok, size_t *len);
/* DK_TOKEN_TYPE_* of tok (inferred for llama2c), 0 if out of range. */
int dk_tokenizer_type(const dk_tokenizer *t, int32_t tok);
/* Id of the exact piece bytes, or -1. */
int32_t dk_tokenizer_find(const dk_tokenizer *t, const char *piece, size_t len);

#endif
