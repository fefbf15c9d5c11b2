/* tokenizer_impl.h — the tokenizer's state and the helpers its files share (tokenizer.c: tables,
 * lifecycle, decode, accessors; tokenizer_spm.c: SentencePiece vocabularies, llama2.c tok*.bin and
 * the SentencePiece merge; tokenizer_bpe.c: GPT-2 byte-level BPE). Private to the engine: callers
 * use tokenizer.h. */
#ifndef DK_TOKENIZER_IMPL_H
#define DK_TOKENIZER_IMPL_H
#include "tokenizer.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    DK_TOKENIZER_KIND_SPM,     /* SentencePiece BPE from GGUF (tokenizer.ggml.model = llama) */
    DK_TOKENIZER_KIND_LLAMA2C, /* same algorithm over a llama2.c tok*.bin */
    DK_TOKENIZER_KIND_BPE,     /* GPT-2 byte-level BPE from GGUF (tokenizer.ggml.model = gpt2) */
} dk_tokenizer_kind_t;

/* Pre-tokenizer regex of a "bpe" tokenizer (tokenizer.ggml.pre). */
typedef enum {
    DK_BPE_PRE_GPT2,   /* GPT-2's regex */
    DK_BPE_PRE_SMOLLM, /* GPT-2's regex after isolating each \p{N} */
    DK_BPE_PRE_LLAMA3, /* Llama-3's regex, \p{N}{1,3}, ignore_merges */
    DK_BPE_PRE_QWEN2,  /* Llama-3's regex with single \p{N} */
} dk_bpe_pre;

/* Open-addressing map from an adjacent token pair to its merge. */
typedef struct {
    uint32_t mask;  /* capacity - 1, capacity a power of two >= 2 * entries */
    uint64_t *keys; /* (capacity) left id << 32 | right id, or UINT64_MAX if empty */
    int32_t *rank;  /* (capacity) merge rank, lower merges first */
    int32_t *id;    /* (capacity) token of the concatenation */
} dk_pair_map;

/* Open-addressing map from piece bytes to the lowest id with those bytes. */
typedef struct {
    uint32_t mask;  /* capacity - 1, capacity a power of two >= 2 * entries */
    int32_t *slots; /* (capacity) token id or -1 */
} dk_piece_map;

struct dk_tokenizer {
    dk_tokenizer_kind_t kind;
    int n_vocab;
    char *blob;             /* all pieces, each NUL-terminated, back to back */
    uint32_t *off;          /* (n_vocab) byte offset of each piece in blob */
    uint32_t *len;          /* (n_vocab) bytes of each piece (without the NUL) */
    char *dblob;            /* display text: space symbol -> ' ', NUL-terminated, back to back */
    uint32_t *doff;         /* (n_vocab) offset of each display text in dblob */
    uint32_t *dlen;         /* (n_vocab) bytes of each display text */
    float *scores;          /* (n_vocab) merge priority, higher first */
    int32_t *types;         /* (n_vocab) DK_TOKEN_TYPE_* */
    int16_t *byte_val;      /* (n_vocab) the byte a <0xNN> piece stands for, or -1 */
    int32_t byte_id[256];   /* id of <0xNN> for each byte, or -1 */
    char byte_text[256][2]; /* each byte as a 1-byte NUL-terminated string */
    dk_piece_map all;       /* every piece */
    dk_piece_map merge;     /* pieces BPE may produce: normal and user-defined */
    dk_piece_map user;      /* user-defined pieces (matched whole before merging) */
    uint32_t max_user_len;  /* bytes of the longest user-defined piece, 0 if none */
    char space[4];          /* the vocabulary's space symbol: "\xE2\x96\x81" (U+2581) or " " */
    uint32_t space_len;     /* 3 or 1 */
    int bos, eos, unk;      /* -1 if absent */
    bool add_space_prefix;
    bool remove_extra_ws;
    /* ---- "bpe" kind only (display texts dblob hold each token's raw bytes) ---- */
    dk_bpe_pre pre;
    bool add_bos;               /* tokenizer.ggml.add_bos_token */
    dk_pair_map pairs;          /* merges */
    int32_t byte_tok[256];      /* token of each byte's byte-level character, or -1 */
    dk_piece_map special;       /* control and user-defined tokens, split out of text first */
    uint32_t max_special_len;   /* bytes of the longest special token, 0 if none */
    uint8_t special_first[256]; /* 1 if some special token starts with this byte */
};

static const char DK_SPM_SPACE[] = "\xE2\x96\x81";     /* U+2581 LOWER ONE EIGHTH BLOCK */
static const char DK_UNK_SURFACE[] = " \xE2\x81\x87 "; /* SentencePiece's default " ⁇ " */

/* ---- shared by the tokenizer's files ---- */

uint32_t dk_hash_bytes(const char *s, size_t n);
/* Parses "<0xNN>" (exactly, upper or lower case hex); returns the byte or -1. */
int dk_parse_byte_piece(const char *s, size_t n);
bool dk_piece_map_init(dk_piece_map *m, int n_entries);
int32_t dk_piece_map_get(const dk_tokenizer *t, const dk_piece_map *m, const char *s, size_t n);
void dk_piece_map_put(const dk_tokenizer *t, dk_piece_map *m, int32_t id);
/* Allocates t and its per-token arrays for n tokens with blob_bytes of piece text. */
dk_status dk_tokenizer_alloc(int n, size_t blob_bytes, dk_tokenizer **out, const char *what, dk_err *e);
/* Token i: its piece s (L bytes) appended to the blob at *o (advanced past its NUL), its score,
 * and its type, checked (DK_TOKEN_TYPE_NORMAL..BYTE, else DK_ERR_FORMAT naming the token). */
dk_status dk_tokenizer_add_piece(dk_tokenizer *t, int i, const char *s, size_t L, float score, int type,
                                 size_t *o, const char *what, dk_err *e);
/* Builds the derived tables once pieces, lens, scores and types are in place. `what` names the
 * source for error messages. */
dk_status dk_tokenizer_finish(dk_tokenizer *t, const char *what, dk_err *e);
/* Allocates the display tables: dblob of dblob_bytes (at least 1), doff, dlen and byte_val of
 * n_vocab entries each; false when out of memory (what was allocated is freed by
 * dk_tokenizer_free). */
bool dk_tokenizer_alloc_display(dk_tokenizer *t, size_t dblob_bytes);
/* Length of a valid UTF-8 sequence at s[0..n) (RFC 3629), or 0 if invalid. */
size_t dk_utf8_valid(const unsigned char *s, size_t n);
/* The length (2..4) of the UTF-8 sequence lead byte c starts (RFC 3629), and the range [*lo, *hi]
 * its second byte must lie in (no overlongs, surrogates or > U+10FFFF); 0 when c leads none. */
size_t dk_utf8_lead(unsigned c, unsigned *lo, unsigned *hi);

/* The two algorithms behind dk_tokenizer_encode / dk_tokenizer_decode (arguments checked there). */
dk_status dk_spm_encode(const dk_tokenizer *t, const char *text, size_t len, bool add_bos, int32_t **ids,
                        int *n_ids, dk_err *e);
dk_status dk_bpe_encode(const dk_tokenizer *t, const char *text, size_t len, bool add_bos, int32_t **ids,
                        int *n_ids, dk_err *e);
dk_status dk_bpe_decode(const dk_tokenizer *t, const int32_t *ids, int n, char **text, size_t *len,
                        dk_err *e);

#endif
