/* tokenizer.c — SentencePiece-style BPE tokenizer over GGUF ("spm") and llama2.c ("llama2c")
 * vocabularies, and GPT-2 byte-level BPE ("bpe"). See tokenizer.h for the algorithms and the
 * contract of each function. */
#include "tokenizer.h"
#include "tokenizer_unicode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------------------------------------------
 * Data structures
 * ---------------------------------------------------------------------------------------------- */

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
    char *blob;          /* all pieces, each NUL-terminated, back to back */
    uint32_t *off;       /* (n_vocab) byte offset of each piece in blob */
    uint32_t *len;       /* (n_vocab) bytes of each piece (without the NUL) */
    char *dblob;         /* display text: space symbol -> ' ', NUL-terminated, back to back */
    uint32_t *doff;      /* (n_vocab) offset of each display text in dblob */
    uint32_t *dlen;      /* (n_vocab) bytes of each display text */
    float *scores;       /* (n_vocab) merge priority, higher first */
    int32_t *types;      /* (n_vocab) DK_TOKEN_TYPE_* */
    int16_t *byte_val;   /* (n_vocab) the byte a <0xNN> piece stands for, or -1 */
    int32_t byte_id[256];            /* id of <0xNN> for each byte, or -1 */
    char byte_text[256][2];          /* each byte as a 1-byte NUL-terminated string */
    dk_piece_map all;    /* every piece */
    dk_piece_map merge;  /* pieces BPE may produce: normal and user-defined */
    dk_piece_map user;   /* user-defined pieces (matched whole before merging) */
    uint32_t max_user_len;           /* bytes of the longest user-defined piece, 0 if none */
    char space[4];       /* the vocabulary's space symbol: "\xE2\x96\x81" (U+2581) or " " */
    uint32_t space_len;  /* 3 or 1 */
    int bos, eos, unk;   /* -1 if absent */
    bool add_space_prefix;
    bool remove_extra_ws;
    /* ---- "bpe" kind only (display texts dblob hold each token's raw bytes) ---- */
    dk_bpe_pre pre;
    bool add_bos;                    /* tokenizer.ggml.add_bos_token */
    dk_pair_map pairs;               /* merges */
    int32_t byte_tok[256];           /* token of each byte's byte-level character, or -1 */
    dk_piece_map special;            /* control and user-defined tokens, split out of text first */
    uint32_t max_special_len;        /* bytes of the longest special token, 0 if none */
    uint8_t special_first[256];      /* 1 if some special token starts with this byte */
};

static const char DK_SPM_SPACE[] = "\xE2\x96\x81"; /* U+2581 LOWER ONE EIGHTH BLOCK */
static const char DK_UNK_SURFACE[] = " \xE2\x81\x87 "; /* SentencePiece's default " ⁇ " */

/* ----------------------------------------------------------------------------------------------
 * Piece map
 * ---------------------------------------------------------------------------------------------- */

static uint32_t dk_hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 16777619u; }
    return h;
}

static bool dk_piece_map_init(dk_piece_map *m, int n_entries) {
    uint32_t cap = 16;
    while (cap < (uint32_t)n_entries * 2u + 2u) cap <<= 1;
    m->slots = malloc(sizeof(int32_t) * cap);
    if (!m->slots) return false;
    memset(m->slots, 0xff, sizeof(int32_t) * cap);
    m->mask = cap - 1;
    return true;
}

static int32_t dk_piece_map_get(const dk_tokenizer *t, const dk_piece_map *m, const char *s, size_t n) {
    if (!m->slots) return -1;
    for (uint32_t i = dk_hash_bytes(s, n) & m->mask;; i = (i + 1) & m->mask) {
        int32_t id = m->slots[i];
        if (id < 0) return -1;
        if (t->len[id] == n && memcmp(t->blob + t->off[id], s, n) == 0) return id;
    }
}

/* Inserts id unless its bytes are already present (so the lowest id wins). */
static void dk_piece_map_put(const dk_tokenizer *t, dk_piece_map *m, int32_t id) {
    const char *s = t->blob + t->off[id];
    uint32_t n = t->len[id];
    for (uint32_t i = dk_hash_bytes(s, n) & m->mask;; i = (i + 1) & m->mask) {
        int32_t cur = m->slots[i];
        if (cur < 0) { m->slots[i] = id; return; }
        if (t->len[cur] == n && memcmp(t->blob + t->off[cur], s, n) == 0) return;
    }
}

/* ----------------------------------------------------------------------------------------------
 * Construction
 * ---------------------------------------------------------------------------------------------- */

void dk_tokenizer_free(dk_tokenizer *t) {
    if (!t) return;
    free(t->blob); free(t->off); free(t->len);
    free(t->dblob); free(t->doff); free(t->dlen);
    free(t->scores); free(t->types); free(t->byte_val);
    free(t->all.slots); free(t->merge.slots); free(t->user.slots);
    free(t->pairs.keys); free(t->pairs.rank); free(t->pairs.id); free(t->special.slots);
    free(t);
}

/* Parses "<0xNN>" (exactly, upper or lower case hex); returns the byte or -1. */
static int dk_parse_byte_piece(const char *s, size_t n) {
    if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static bool dk_contains(const char *s, size_t n, const char *sub, size_t m) {
    if (m == 0 || n < m) return false;
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(s + i, sub, m) == 0) return true;
    return false;
}

/* Builds the derived tables once pieces, lens, scores and types are in place. `what` names the
 * source for error messages. */
static dk_status dk_tokenizer_finish(dk_tokenizer *t, const char *what, dk_err *e) {
    int n = t->n_vocab;
    if (t->bos >= n || t->eos >= n || t->unk >= n)
        return dk_fail(e, DK_ERR_FORMAT, "%s: special token id out of range (bos %d, eos %d, unk %d, n_vocab %d)",
                       what, t->bos, t->eos, t->unk, n);
    /* display texts: the space symbol becomes ' ' */
    size_t dcap = 0;
    for (int i = 0; i < n; i++) dcap += t->len[i] + 1;
    t->dblob = malloc(dcap ? dcap : 1);
    t->doff = malloc(sizeof(uint32_t) * (size_t)n);
    t->dlen = malloc(sizeof(uint32_t) * (size_t)n);
    t->byte_val = malloc(sizeof(int16_t) * (size_t)n);
    if (!t->dblob || !t->doff || !t->dlen || !t->byte_val)
        return dk_fail(e, DK_ERR_NOMEM, "%s: out of memory for the vocabulary", what);
    size_t d = 0;
    for (int i = 0; i < n; i++) {
        const char *p = t->blob + t->off[i];
        uint32_t L = t->len[i];
        t->doff[i] = (uint32_t)d;
        for (uint32_t j = 0; j < L;) {
            if (t->space_len == 3 && j + 3 <= L && memcmp(p + j, DK_SPM_SPACE, 3) == 0) {
                t->dblob[d++] = ' '; j += 3;
            } else {
                t->dblob[d++] = p[j++];
            }
        }
        t->dlen[i] = (uint32_t)(d - t->doff[i]);
        t->dblob[d++] = 0;
    }
    /* bytes and maps */
    for (int b = 0; b < 256; b++) { t->byte_id[b] = -1; t->byte_text[b][0] = (char)b; t->byte_text[b][1] = 0; }
    int n_user = 0;
    for (int i = 0; i < n; i++) {
        t->byte_val[i] = -1;
        if (t->types[i] == DK_TOKEN_TYPE_BYTE) {
            int b = dk_parse_byte_piece(t->blob + t->off[i], t->len[i]);
            if (b < 0)
                return dk_fail(e, DK_ERR_FORMAT, "%s: token %d has type byte but piece is not <0xNN>", what, i);
            t->byte_val[i] = (int16_t)b;
            if (t->byte_id[b] < 0) t->byte_id[b] = i;
        }
        if (t->types[i] == DK_TOKEN_TYPE_USER_DEFINED) {
            n_user++;
            if (t->len[i] > t->max_user_len) t->max_user_len = t->len[i];
        }
    }
    if (!dk_piece_map_init(&t->all, n) || !dk_piece_map_init(&t->merge, n) ||
        (n_user && !dk_piece_map_init(&t->user, n_user)))
        return dk_fail(e, DK_ERR_NOMEM, "%s: out of memory for the piece map", what);
    for (int i = 0; i < n; i++) {
        dk_piece_map_put(t, &t->all, i);
        int ty = t->types[i];
        if (t->len[i] > 0 && (ty == DK_TOKEN_TYPE_NORMAL || ty == DK_TOKEN_TYPE_USER_DEFINED))
            dk_piece_map_put(t, &t->merge, i);
        if (t->len[i] > 0 && ty == DK_TOKEN_TYPE_USER_DEFINED) dk_piece_map_put(t, &t->user, i);
    }
    return DK_OK;
}

/* Allocates t and its per-token arrays for n tokens with blob_bytes of piece text. */
static dk_status dk_tokenizer_alloc(int n, size_t blob_bytes, dk_tokenizer **out, const char *what, dk_err *e) {
    dk_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return dk_fail(e, DK_ERR_NOMEM, "%s: out of memory", what);
    t->n_vocab = n;
    t->blob = malloc(blob_bytes ? blob_bytes : 1);
    t->off = malloc(sizeof(uint32_t) * (size_t)n);
    t->len = malloc(sizeof(uint32_t) * (size_t)n);
    t->scores = malloc(sizeof(float) * (size_t)n);
    t->types = malloc(sizeof(int32_t) * (size_t)n);
    if (!t->blob || !t->off || !t->len || !t->scores || !t->types) {
        dk_tokenizer_free(t);
        return dk_fail(e, DK_ERR_NOMEM, "%s: out of memory for %d tokens", what, n);
    }
    *out = t;
    return DK_OK;
}

dk_status dk_tokenizer_create_spm(const dk_spm_vocab *v, dk_tokenizer **out, dk_err *e) {
    *out = NULL;
    const char *what = "tokenizer (spm)";
    if (!v || v->n_vocab <= 0 || !v->pieces)
        return dk_fail(e, DK_ERR_ARG, "%s: empty vocabulary (n_vocab %d)", what, v ? v->n_vocab : 0);
    if (v->n_vocab > (1 << 30))
        return dk_fail(e, DK_ERR_FORMAT, "%s: absurd n_vocab %d", what, v->n_vocab);
    int n = v->n_vocab;
    size_t blob = 0;
    for (int i = 0; i < n; i++) {
        if (!v->pieces[i]) return dk_fail(e, DK_ERR_FORMAT, "%s: token %d has no piece", what, i);
        size_t L = v->piece_lens ? v->piece_lens[i] : strlen(v->pieces[i]);
        blob += L + 1;
        if (blob > UINT32_MAX) return dk_fail(e, DK_ERR_FORMAT, "%s: pieces exceed 4 GiB", what);
    }
    dk_tokenizer *t;
    dk_status st = dk_tokenizer_alloc(n, blob, &t, what, e);
    if (st) return st;
    t->kind = DK_TOKENIZER_KIND_SPM;
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        size_t L = v->piece_lens ? v->piece_lens[i] : strlen(v->pieces[i]);
        memcpy(t->blob + o, v->pieces[i], L);
        t->blob[o + L] = 0;
        t->off[i] = (uint32_t)o;
        t->len[i] = (uint32_t)L;
        o += L + 1;
        t->scores[i] = v->scores ? v->scores[i] : -(float)i;
        int ty = v->types ? v->types[i] : DK_TOKEN_TYPE_NORMAL;
        if (ty < DK_TOKEN_TYPE_NORMAL || ty > DK_TOKEN_TYPE_BYTE) {
            dk_tokenizer_free(t);
            return dk_fail(e, DK_ERR_FORMAT, "%s: token %d has unknown token type %d", what, i, ty);
        }
        t->types[i] = ty;
    }
    memcpy(t->space, DK_SPM_SPACE, 4);
    t->space_len = 3;
    t->bos = v->bos_id; t->eos = v->eos_id; t->unk = v->unk_id;
    if (t->bos < -1 || t->eos < -1 || t->unk < -1) {
        dk_tokenizer_free(t);
        return dk_fail(e, DK_ERR_ARG, "%s: special token ids must be >= -1 (bos %d, eos %d, unk %d)",
                       what, v->bos_id, v->eos_id, v->unk_id);
    }
    t->add_space_prefix = v->add_space_prefix;
    st = dk_tokenizer_finish(t, what, e);
    if (st) { dk_tokenizer_free(t); return st; }
    *out = t;
    return DK_OK;
}

dk_status dk_tokenizer_load_llama2c(const char *path, int n_vocab, dk_tokenizer **out, dk_err *e) {
    *out = NULL;
    if (n_vocab <= 0 || n_vocab > (1 << 24))
        return dk_fail(e, DK_ERR_ARG, "%s: bad n_vocab %d for a llama2.c tokenizer", path, n_vocab);
    FILE *f = fopen(path, "rb");
    if (!f) return dk_fail(e, DK_ERR_IO, "%s: cannot open tokenizer: %s", path, strerror(errno));
    char *raw = NULL;
    size_t size = 0, cap = 0;
    for (;;) {
        if (cap - size < 65536) {
            cap = cap ? cap * 2 : 65536;
            char *nr = realloc(raw, cap);
            if (!nr) { free(raw); fclose(f); return dk_fail(e, DK_ERR_NOMEM, "%s: out of memory", path); }
            raw = nr;
        }
        size_t r = fread(raw + size, 1, cap - size, f);
        size += r;
        if (r == 0) break;
    }
    bool rerr = ferror(f);
    fclose(f);
    if (rerr) { free(raw); return dk_fail(e, DK_ERR_IO, "%s: read error", path); }

    /* pass 1: validate and size */
    dk_status st = DK_OK;
    size_t o = 4, blob = 0;
    int32_t max_len;
    if (size < 4) { st = dk_fail(e, DK_ERR_FORMAT, "%s: truncated tokenizer (%zu bytes, no header)", path, size); goto done; }
    memcpy(&max_len, raw, 4);
    if (max_len <= 0 || max_len > (1 << 20)) {
        st = dk_fail(e, DK_ERR_FORMAT, "%s: bad max_token_length %d in header", path, max_len);
        goto done;
    }
    for (int i = 0; i < n_vocab; i++) {
        int32_t L;
        if (size - o < 8) {
            st = dk_fail(e, DK_ERR_FORMAT, "%s: truncated at token %d of %d (offset %zu)", path, i, n_vocab, o);
            goto done;
        }
        memcpy(&L, raw + o + 4, 4);
        if (L < 0 || L > max_len || (size_t)L > size - o - 8) {
            st = dk_fail(e, DK_ERR_FORMAT, "%s: token %d has bad length %d (max_token_length %d, %zu bytes left)",
                         path, i, L, max_len, size - o - 8);
            goto done;
        }
        o += 8 + (size_t)L;
        blob += (size_t)L + 1;
    }
    if (o != size) {
        st = dk_fail(e, DK_ERR_FORMAT, "%s: %zu trailing bytes after %d tokens (n_vocab mismatch?)", path, size - o, n_vocab);
        goto done;
    }
    /* pass 2: fill */
    dk_tokenizer *t;
    st = dk_tokenizer_alloc(n_vocab, blob, &t, path, e);
    if (st) goto done;
    t->kind = DK_TOKENIZER_KIND_LLAMA2C;
    o = 4;
    size_t bo = 0;
    bool has_u2581 = false, has_space = false;
    for (int i = 0; i < n_vocab; i++) {
        int32_t L;
        memcpy(&t->scores[i], raw + o, 4);
        memcpy(&L, raw + o + 4, 4);
        memcpy(t->blob + bo, raw + o + 8, (size_t)L);
        t->blob[bo + (size_t)L] = 0;
        t->off[i] = (uint32_t)bo;
        t->len[i] = (uint32_t)L;
        o += 8 + (size_t)L;
        bo += (size_t)L + 1;
        /* llama2.c's convention: 0 <unk>, 1 BOS, 2 EOS, <0xNN> raw bytes */
        int ty = DK_TOKEN_TYPE_NORMAL;
        if (i == 0) ty = DK_TOKEN_TYPE_UNKNOWN;
        else if (i == 1 || i == 2) ty = DK_TOKEN_TYPE_CONTROL;
        else if (dk_parse_byte_piece(t->blob + t->off[i], (size_t)L) >= 0) ty = DK_TOKEN_TYPE_BYTE;
        t->types[i] = ty;
        if (ty == DK_TOKEN_TYPE_NORMAL) {
            if (dk_contains(t->blob + t->off[i], (size_t)L, DK_SPM_SPACE, 3)) has_u2581 = true;
            if (memchr(t->blob + t->off[i], ' ', (size_t)L)) has_space = true;
        }
    }
    /* llama2.c's exporter writes U+2581 as ' '; a file that kept U+2581 (and has no ' ') is read as is. */
    if (has_u2581 && !has_space) { memcpy(t->space, DK_SPM_SPACE, 4); t->space_len = 3; }
    else { t->space[0] = ' '; t->space[1] = 0; t->space_len = 1; }
    t->bos = n_vocab > 1 ? 1 : -1;
    t->eos = n_vocab > 2 ? 2 : -1;
    t->unk = 0;
    t->add_space_prefix = true; /* llama2.c encode() prepends " " to non-empty text */
    st = dk_tokenizer_finish(t, path, e);
    if (st) { dk_tokenizer_free(t); goto done; }
    *out = t;
done:
    free(raw);
    return st;
}

void dk_tokenizer_set_remove_extra_whitespaces(dk_tokenizer *t, bool on) { t->remove_extra_ws = on; }

/* ----------------------------------------------------------------------------------------------
 * Encode
 * ---------------------------------------------------------------------------------------------- */

/* A candidate merge of symbol `left` with its right neighbour; stale once either side changed,
 * detected by size != n[left] + n[right]. */
typedef struct {
    float score;
    int32_t left; /* symbol index (= position order, so lower is further left) */
    uint32_t size; /* bytes of the merged span */
} dk_bigram;

/* max-heap order: higher score first, then leftmost */
static inline bool dk_bigram_before(const dk_bigram *a, const dk_bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct {
    dk_bigram *v;
    size_t n, cap;
} dk_bigram_heap;

static bool dk_heap_push(dk_bigram_heap *h, dk_bigram b) {
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 256;
        dk_bigram *nv = realloc(h->v, nc * sizeof *nv);
        if (!nv) return false;
        h->v = nv; h->cap = nc;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!dk_bigram_before(&b, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = b;
    return true;
}

static dk_bigram dk_heap_pop(dk_bigram_heap *h) {
    dk_bigram top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && dk_bigram_before(&h->v[c + 1], &h->v[c])) c++;
        if (!dk_bigram_before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

/* Symbols as a doubly linked list over spans of the normalised text. */
typedef struct {
    const char *text;
    uint32_t *start;  /* (n_sym) byte offset in text */
    uint32_t *n;      /* (n_sym) bytes; 0 once merged into its left neighbour */
    int32_t *prev;    /* (n_sym) -1 at the start */
    int32_t *next;    /* (n_sym) -1 at the end */
    uint8_t *frozen;  /* (n_sym) user-defined pieces never merge */
} dk_symbols;

static bool dk_try_bigram(const dk_tokenizer *t, const dk_symbols *s, int32_t l, dk_bigram_heap *h) {
    if (l < 0) return true;
    int32_t r = s->next[l];
    if (r < 0 || s->frozen[l] || s->frozen[r]) return true;
    uint32_t size = s->n[l] + s->n[r];
    int32_t id = dk_piece_map_get(t, &t->merge, s->text + s->start[l], size);
    if (id < 0) return true;
    dk_bigram b = {t->scores[id], l, size};
    return dk_heap_push(h, b);
}

static uint32_t dk_utf8_len(unsigned char c) {
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[c >> 4];
}

static dk_status dk_bpe_encode(const dk_tokenizer *t, const char *text, size_t len, bool add_bos,
                               int32_t **ids, int *n_ids, dk_err *e);

dk_status dk_tokenizer_encode(const dk_tokenizer *t, const char *text, size_t len, bool add_bos,
                              int32_t **ids, int *n_ids, dk_err *e) {
    *ids = NULL;
    *n_ids = 0;
    if (!text && len) return dk_fail(e, DK_ERR_ARG, "tokenizer: NULL text of length %zu", len);
    if (add_bos && t->bos < 0) return dk_fail(e, DK_ERR_ARG, "tokenizer: add_bos requested but the vocabulary has no BOS token");
    if (len > (size_t)INT32_MAX / 8) return dk_fail(e, DK_ERR_ARG, "tokenizer: text too long (%zu bytes)", len);
    if (t->kind == DK_TOKENIZER_KIND_BPE) return dk_bpe_encode(t, text, len, add_bos, ids, n_ids, e);

    /* 1. normalise */
    size_t b = 0, end = len;
    if (t->remove_extra_ws) {
        while (b < end && text[b] == ' ') b++;
        while (end > b && text[end - 1] == ' ') end--;
    }
    char *norm = malloc((end - b + 1) * t->space_len + 1);
    int32_t *out = malloc(sizeof(int32_t) * ((end - b + 1) * 4 + 2)); /* <= 4 byte tokens per input byte + prefix + BOS */
    dk_symbols s = {0};
    dk_bigram_heap h = {0};
    dk_status st = DK_OK;
    if (!norm || !out) { st = dk_fail(e, DK_ERR_NOMEM, "tokenizer: out of memory for %zu bytes of text", len); goto fail; }
    size_t nn = 0;
    if (end > b && t->add_space_prefix) { memcpy(norm + nn, t->space, t->space_len); nn += t->space_len; }
    for (size_t i = b; i < end; i++) {
        if (text[i] == ' ') {
            if (t->remove_extra_ws && i > b && text[i - 1] == ' ') continue;
            memcpy(norm + nn, t->space, t->space_len);
            nn += t->space_len;
        } else {
            norm[nn++] = text[i];
        }
    }
    int n_out = 0;
    if (add_bos) out[n_out++] = t->bos;
    if (nn == 0) { free(norm); *ids = out; *n_ids = n_out; return DK_OK; }

    /* 2. split into characters (user-defined pieces whole) */
    s.text = norm;
    s.start = malloc(sizeof(uint32_t) * nn);
    s.n = malloc(sizeof(uint32_t) * nn);
    s.prev = malloc(sizeof(int32_t) * nn);
    s.next = malloc(sizeof(int32_t) * nn);
    s.frozen = malloc(nn);
    if (!s.start || !s.n || !s.prev || !s.next || !s.frozen) {
        st = dk_fail(e, DK_ERR_NOMEM, "tokenizer: out of memory for %zu symbols", nn);
        goto fail;
    }
    int32_t n_sym = 0;
    for (size_t i = 0; i < nn;) {
        uint32_t L = 0;
        bool fz = false;
        if (t->max_user_len) {
            uint32_t m = t->max_user_len < nn - i ? t->max_user_len : (uint32_t)(nn - i);
            for (; m > 0; m--)
                if (dk_piece_map_get(t, &t->user, norm + i, m) >= 0) { L = m; fz = true; break; }
        }
        if (!L) {
            L = dk_utf8_len((unsigned char)norm[i]);
            if (L > nn - i) L = (uint32_t)(nn - i);
        }
        s.start[n_sym] = (uint32_t)i;
        s.n[n_sym] = L;
        s.frozen[n_sym] = fz;
        s.prev[n_sym] = n_sym - 1;
        s.next[n_sym] = n_sym + 1;
        n_sym++;
        i += L;
    }
    s.next[n_sym - 1] = -1;

    /* 3. merge the best-scoring adjacent pair until none is a piece */
    for (int32_t i = 0; i + 1 < n_sym; i++)
        if (!dk_try_bigram(t, &s, i, &h)) goto oom;
    while (h.n) {
        dk_bigram bg = dk_heap_pop(&h);
        int32_t l = bg.left, r = s.next[l];
        if (s.n[l] == 0 || r < 0 || s.n[l] + s.n[r] != bg.size) continue; /* stale */
        s.n[l] += s.n[r];
        s.n[r] = 0;
        s.next[l] = s.next[r];
        if (s.next[r] >= 0) s.prev[s.next[r]] = l;
        if (!dk_try_bigram(t, &s, s.prev[l], &h) || !dk_try_bigram(t, &s, l, &h)) goto oom;
    }

    /* 4. emit pieces; byte fallback for symbols that are not pieces */
    for (int32_t i = 0; i >= 0; i = s.next[i]) {
        int32_t id = dk_piece_map_get(t, &t->merge, norm + s.start[i], s.n[i]);
        if (id >= 0) { out[n_out++] = id; continue; }
        bool bytes = true;
        for (uint32_t k = 0; k < s.n[i]; k++)
            if (t->byte_id[(unsigned char)norm[s.start[i] + k]] < 0) bytes = false;
        if (bytes) {
            for (uint32_t k = 0; k < s.n[i]; k++) out[n_out++] = t->byte_id[(unsigned char)norm[s.start[i] + k]];
        } else if (t->unk >= 0) {
            out[n_out++] = t->unk;
        } else {
            st = dk_fail(e, DK_ERR_UNSUPPORTED,
                         "tokenizer: text byte offset %u: character not in the vocabulary, which has no byte or unknown tokens",
                         s.start[i]);
            goto fail;
        }
    }
    free(norm); free(s.start); free(s.n); free(s.prev); free(s.next); free(s.frozen); free(h.v);
    int32_t *shrunk = realloc(out, sizeof(int32_t) * (size_t)(n_out ? n_out : 1)); /* worst case was 16 B per text byte */
    *ids = shrunk ? shrunk : out;
    *n_ids = n_out;
    return DK_OK;
oom:
    st = dk_fail(e, DK_ERR_NOMEM, "tokenizer: out of memory while merging %zu bytes", nn);
fail:
    free(norm); free(out); free(s.start); free(s.n); free(s.prev); free(s.next); free(s.frozen); free(h.v);
    return st;
}

/* ----------------------------------------------------------------------------------------------
 * Decode
 * ---------------------------------------------------------------------------------------------- */

const char *dk_tokenizer_decode_piece(const dk_tokenizer *t, int32_t prev, int32_t tok, size_t *len) {
    if (tok < 0 || tok >= t->n_vocab) { if (len) *len = 0; return ""; }
    if (t->kind == DK_TOKENIZER_KIND_BPE) { /* dblob: raw bytes; unused tokens have none */
        if (len) *len = t->dlen[tok];
        return t->dblob + t->doff[tok];
    }
    if (t->byte_val[tok] >= 0) {
        if (len) *len = 1;
        return t->byte_text[t->byte_val[tok]];
    }
    int ty = t->types[tok];
    if (t->kind == DK_TOKENIZER_KIND_SPM && (ty == DK_TOKEN_TYPE_CONTROL || ty == DK_TOKEN_TYPE_UNUSED)) {
        if (len) *len = 0;
        return "";
    }
    const char *p = t->dblob + t->doff[tok];
    size_t L = t->dlen[tok];
    /* following BOS, SentencePiece's decoder strips the leading space (llama2.c PR #89) */
    if (prev == t->bos && prev >= 0 && L > 0 && p[0] == ' ') { p++; L--; }
    if (len) *len = L;
    return p;
}

typedef struct {
    char *p;
    size_t n, cap;
} dk_buf;

static bool dk_buf_add(dk_buf *b, const char *s, size_t n) {
    if (b->cap - b->n < n + 1) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc - b->n < n + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) return false;
        b->p = np; b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return true;
}

/* Length of a valid UTF-8 sequence at s[0..n) (RFC 3629: no overlongs, surrogates or > U+10FFFF),
 * or 0 if invalid. */
static size_t dk_utf8_valid(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t L;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) L = 2;
    else if (c >= 0xE0 && c <= 0xEF) { L = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { L = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 0;
    if (n < L) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < L; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return L;
}

/* Appends a run of raw bytes as UTF-8, each byte of an invalid sequence as U+FFFD. */
static bool dk_buf_add_bytes(dk_buf *b, const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t L = dk_utf8_valid(s + i, n - i);
        if (L) { if (!dk_buf_add(b, (const char *)s + i, L)) return false; i += L; }
        else { if (!dk_buf_add(b, "\xEF\xBF\xBD", 3)) return false; i++; }
    }
    return true;
}

static dk_status dk_bpe_decode(const dk_tokenizer *t, const int32_t *ids, int n, char **text, size_t *len, dk_err *e);

dk_status dk_tokenizer_decode(const dk_tokenizer *t, const int32_t *ids, int n, char **text, size_t *len, dk_err *e) {
    *text = NULL;
    if (len) *len = 0;
    if (t->kind == DK_TOKENIZER_KIND_BPE) return dk_bpe_decode(t, ids, n, text, len, e);
    dk_buf b = {0};
    unsigned char *run = malloc((size_t)(n > 0 ? n : 1)); /* pending byte pieces */
    size_t n_run = 0;
    bool bos_ws = true; /* still before the first visible text: strip a leading space */
    bool strip = t->add_space_prefix || t->remove_extra_ws;
    if (!run || !dk_buf_add(&b, "", 0)) goto oom;
    for (int i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_vocab) {
            free(run); free(b.p);
            return dk_fail(e, DK_ERR_ARG, "tokenizer: token id %d at position %d is out of range [0, %d)", id, i, t->n_vocab);
        }
        if (t->byte_val[id] >= 0) { run[n_run++] = (unsigned char)t->byte_val[id]; continue; }
        int ty = t->types[id];
        if (n_run) { /* any other piece, even an invisible one, ends a byte run */
            if (!dk_buf_add_bytes(&b, run, n_run)) goto oom;
            n_run = 0;
            bos_ws = false;
        }
        if (ty == DK_TOKEN_TYPE_CONTROL || ty == DK_TOKEN_TYPE_UNUSED) continue; /* invisible */
        if (ty == DK_TOKEN_TYPE_UNKNOWN) {
            if (!dk_buf_add(&b, DK_UNK_SURFACE, sizeof DK_UNK_SURFACE - 1)) goto oom;
            bos_ws = false;
            continue;
        }
        const char *p = t->dblob + t->doff[id];
        size_t L = t->dlen[id];
        bool consumed = false;
        if (bos_ws && strip && L > 0 && p[0] == ' ') {
            p++; L--;
            consumed = !t->remove_extra_ws; /* with remove_extra_whitespaces every leading space goes */
        }
        if (!dk_buf_add(&b, p, L)) goto oom;
        if (L > 0 || consumed) bos_ws = false;
    }
    if (n_run && !dk_buf_add_bytes(&b, run, n_run)) goto oom;
    free(run);
    *text = b.p;
    if (len) *len = b.n;
    return DK_OK;
oom:
    free(run); free(b.p);
    return dk_fail(e, DK_ERR_NOMEM, "tokenizer: out of memory decoding %d tokens", n);
}

/* ----------------------------------------------------------------------------------------------
 * Vocabulary accessors
 * ---------------------------------------------------------------------------------------------- */

int dk_tokenizer_bos(const dk_tokenizer *t) { return t->bos; }
int dk_tokenizer_eos(const dk_tokenizer *t) { return t->eos; }
int dk_tokenizer_unk(const dk_tokenizer *t) { return t->unk; }
int dk_tokenizer_n_vocab(const dk_tokenizer *t) { return t->n_vocab; }

const char *dk_tokenizer_kind(const dk_tokenizer *t) {
    switch (t->kind) {
    case DK_TOKENIZER_KIND_SPM: return "spm";
    case DK_TOKENIZER_KIND_LLAMA2C: return "llama2c";
    case DK_TOKENIZER_KIND_BPE: return "bpe";
    }
    return "?";
}

static const char *const dk_bpe_pre_names[] = {"gpt-2", "smollm", "llama-bpe", "qwen2"};

const char *dk_tokenizer_pre(const dk_tokenizer *t) {
    return t->kind == DK_TOKENIZER_KIND_BPE ? dk_bpe_pre_names[t->pre] : "";
}

bool dk_tokenizer_add_bos_default(const dk_tokenizer *t) {
    return t->kind == DK_TOKENIZER_KIND_BPE ? t->add_bos : true;
}

const char *dk_tokenizer_piece(const dk_tokenizer *t, int32_t tok, size_t *len) {
    if (tok < 0 || tok >= t->n_vocab) { if (len) *len = 0; return NULL; }
    if (len) *len = t->len[tok];
    return t->blob + t->off[tok];
}

int dk_tokenizer_type(const dk_tokenizer *t, int32_t tok) {
    return (tok < 0 || tok >= t->n_vocab) ? 0 : t->types[tok];
}

int32_t dk_tokenizer_find(const dk_tokenizer *t, const char *piece, size_t len) {
    return dk_piece_map_get(t, &t->all, piece, len);
}

/* ----------------------------------------------------------------------------------------------
 * GPT-2 byte-level BPE ("bpe"): construction
 * ---------------------------------------------------------------------------------------------- */

/* GPT-2 bytes_to_unicode(): bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for the same code
 * point; the other 68 bytes, in increasing order, for U+0100, U+0101, ... U+0143. */
#define DK_BPE_N_CP 324 /* code points 0..323 cover the whole map */

static void dk_bpe_byte_map(uint32_t cp_of_byte[256], int16_t byte_of_cp[DK_BPE_N_CP]) {
    int n = 0;
    for (int c = 0; c < DK_BPE_N_CP; c++) byte_of_cp[c] = -1;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        cp_of_byte[b] = printable ? (uint32_t)b : 256u + (uint32_t)n++;
        byte_of_cp[cp_of_byte[b]] = (int16_t)b;
    }
}

/* Writes cp (<= U+10FFFF) as UTF-8 into out; returns its byte count. */
static uint32_t dk_utf8_put(uint32_t cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12); out[1] = (char)(0x80 | (cp >> 6 & 0x3F)); out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18); out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the code point at s[0..n) (n >= 1) into *cp; returns its byte count. A byte that does
 * not start a valid sequence is one "character" with *cp = 0x110000 + byte (class other). */
static uint32_t dk_utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
    size_t L = dk_utf8_valid(s, n);
    if (L == 0) { *cp = 0x110000u + s[0]; return 1; }
    uint32_t c = L == 1 ? s[0] : L == 2 ? (s[0] & 0x1Fu) : L == 3 ? (s[0] & 0x0Fu) : (s[0] & 0x07u);
    for (size_t i = 1; i < L; i++) c = c << 6 | (s[i] & 0x3Fu);
    *cp = c;
    return (uint32_t)L;
}

static uint64_t dk_pair_key(int32_t a, int32_t b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }
static uint32_t dk_pair_hash(uint64_t k) { return (uint32_t)((k * 0x9E3779B97F4A7C15ull) >> 32); }

static bool dk_pair_map_init(dk_pair_map *m, int n_entries) {
    uint32_t cap = 16;
    while (cap < (uint32_t)n_entries * 2u + 2u) cap <<= 1;
    m->keys = malloc(sizeof(uint64_t) * cap);
    m->rank = malloc(sizeof(int32_t) * cap);
    m->id = malloc(sizeof(int32_t) * cap);
    if (!m->keys || !m->rank || !m->id) return false;
    memset(m->keys, 0xff, sizeof(uint64_t) * cap);
    m->mask = cap - 1;
    return true;
}

/* Index of the slot holding (a, b), or of the empty slot where it would go. */
static uint32_t dk_pair_map_slot(const dk_pair_map *m, int32_t a, int32_t b) {
    uint64_t k = dk_pair_key(a, b);
    uint32_t i = dk_pair_hash(k) & m->mask;
    while (m->keys[i] != UINT64_MAX && m->keys[i] != k) i = (i + 1) & m->mask;
    return i;
}

static bool dk_bpe_special_type(int ty) { return ty == DK_TOKEN_TYPE_CONTROL || ty == DK_TOKEN_TYPE_USER_DEFINED; }

/* tokenizer.ggml.pre -> dk_bpe_pre; -1 if unknown. Names as llama.cpp's llama-vocab.cpp. */
static int dk_bpe_pre_parse(const char *s, size_t n) {
    static const struct { const char *name; dk_bpe_pre pre; } names[] = {
        {"gpt-2", DK_BPE_PRE_GPT2}, {"smollm", DK_BPE_PRE_SMOLLM},
        {"llama-bpe", DK_BPE_PRE_LLAMA3}, {"llama3", DK_BPE_PRE_LLAMA3}, {"llama-v3", DK_BPE_PRE_LLAMA3},
        {"qwen2", DK_BPE_PRE_QWEN2}, {"deepseek-r1-qwen", DK_BPE_PRE_QWEN2},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i].name) == n && memcmp(names[i].name, s, n) == 0) return (int)names[i].pre;
    return -1;
}

dk_status dk_tokenizer_set_pre(dk_tokenizer *t, const char *pre, dk_err *e) {
    if (t->kind != DK_TOKENIZER_KIND_BPE) return dk_fail(e, DK_ERR_ARG, "tokenizer: a pre-tokenizer applies to byte-level BPE only");
    int p = dk_bpe_pre_parse(pre, strlen(pre));
    if (p < 0) return dk_fail(e, DK_ERR_UNSUPPORTED, "tokenizer (bpe): pre-tokenizer '%.40s' is not supported", pre);
    t->pre = (dk_bpe_pre)p;
    return DK_OK;
}

dk_status dk_tokenizer_create_bpe(const dk_bpe_vocab *v, dk_tokenizer **out, dk_err *e) {
    *out = NULL;
    const char *what = "tokenizer (bpe)";
    if (!v || v->n_vocab <= 0 || !v->tokens)
        return dk_fail(e, DK_ERR_ARG, "%s: empty vocabulary (n_vocab %d)", what, v ? v->n_vocab : 0);
    if (v->n_vocab > (1 << 30) || v->n_merges < 0 || v->n_merges > (1 << 30))
        return dk_fail(e, DK_ERR_FORMAT, "%s: absurd sizes (n_vocab %d, n_merges %d)", what, v->n_vocab, v->n_merges);
    if (v->n_merges > 0 && !v->merges) return dk_fail(e, DK_ERR_ARG, "%s: %d merges but no merge array", what, v->n_merges);
    int pre = DK_BPE_PRE_GPT2;
    if (v->pre) {
        size_t pl = v->pre_len ? v->pre_len : strlen(v->pre);
        pre = dk_bpe_pre_parse(v->pre, pl);
        if (pre < 0)
            return dk_fail(e, DK_ERR_UNSUPPORTED,
                           "%s: pre-tokenizer (tokenizer.ggml.pre) '%.*s' is not supported (gpt-2, smollm, llama-bpe, qwen2 are)",
                           what, (int)(pl > 60 ? 60 : pl), v->pre);
    }
    int n = v->n_vocab;
    size_t blob = 0;
    for (int i = 0; i < n; i++) {
        if (!v->tokens[i]) return dk_fail(e, DK_ERR_FORMAT, "%s: token %d has no text", what, i);
        blob += (v->token_lens ? v->token_lens[i] : strlen(v->tokens[i])) + 1;
        if (blob > UINT32_MAX) return dk_fail(e, DK_ERR_FORMAT, "%s: tokens exceed 4 GiB", what);
    }
    if (v->bos_id < -1 || v->eos_id < -1 || v->unk_id < -1 || v->bos_id >= n || v->eos_id >= n || v->unk_id >= n)
        return dk_fail(e, DK_ERR_FORMAT, "%s: special token id out of range (bos %d, eos %d, unk %d, n_vocab %d)",
                       what, v->bos_id, v->eos_id, v->unk_id, n);
    dk_tokenizer *t;
    dk_status st = dk_tokenizer_alloc(n, blob, &t, what, e);
    if (st) return st;
    t->kind = DK_TOKENIZER_KIND_BPE;
    t->pre = (dk_bpe_pre)pre;
    t->add_bos = v->add_bos;
    t->bos = v->bos_id; t->eos = v->eos_id; t->unk = v->unk_id;
    t->space[0] = ' '; t->space_len = 1;
    char *merged = NULL;
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        size_t L = v->token_lens ? v->token_lens[i] : strlen(v->tokens[i]);
        memcpy(t->blob + o, v->tokens[i], L);
        t->blob[o + L] = 0;
        t->off[i] = (uint32_t)o;
        t->len[i] = (uint32_t)L;
        o += L + 1;
        t->scores[i] = 0.0f;
        int ty = v->types ? v->types[i] : DK_TOKEN_TYPE_NORMAL;
        if (ty < DK_TOKEN_TYPE_NORMAL || ty > DK_TOKEN_TYPE_BYTE) {
            st = dk_fail(e, DK_ERR_FORMAT, "%s: token %d has unknown token type %d", what, i, ty);
            goto fail;
        }
        t->types[i] = ty;
    }
    /* display texts: raw bytes of normal tokens, special tokens verbatim, unused ones empty */
    uint32_t cp_of_byte[256];
    int16_t byte_of_cp[DK_BPE_N_CP];
    dk_bpe_byte_map(cp_of_byte, byte_of_cp);
    t->dblob = malloc(blob ? blob : 1); /* a token's bytes never outnumber its UTF-8 text */
    t->doff = malloc(sizeof(uint32_t) * (size_t)n);
    t->dlen = malloc(sizeof(uint32_t) * (size_t)n);
    t->byte_val = malloc(sizeof(int16_t) * (size_t)n);
    if (!t->dblob || !t->doff || !t->dlen || !t->byte_val) { st = dk_fail(e, DK_ERR_NOMEM, "%s: out of memory", what); goto fail; }
    size_t d = 0;
    int n_special = 0;
    for (int i = 0; i < n; i++) {
        const unsigned char *p = (const unsigned char *)t->blob + t->off[i];
        uint32_t L = t->len[i];
        t->doff[i] = (uint32_t)d;
        t->byte_val[i] = -1;
        if (dk_bpe_special_type(t->types[i])) {
            memcpy(t->dblob + d, p, L); d += L;
            if (L > 0) {
                n_special++;
                if (L > t->max_special_len) t->max_special_len = L;
                t->special_first[p[0]] = 1;
            }
        } else if (t->types[i] != DK_TOKEN_TYPE_UNUSED) {
            for (uint32_t j = 0; j < L;) {
                uint32_t cp, cl = dk_utf8_next(p + j, L - j, &cp);
                if (cp < DK_BPE_N_CP && byte_of_cp[cp] >= 0) t->dblob[d++] = (char)byte_of_cp[cp];
                else { memcpy(t->dblob + d, p + j, cl); d += cl; } /* not a byte-level character: kept */
                j += cl;
            }
        }
        t->dlen[i] = (uint32_t)(d - t->doff[i]);
        t->dblob[d++] = 0;
    }
    for (int b = 0; b < 256; b++) { t->byte_id[b] = -1; t->byte_text[b][0] = (char)b; t->byte_text[b][1] = 0; }
    if (!dk_piece_map_init(&t->all, n) || (n_special && !dk_piece_map_init(&t->special, n_special)) ||
        !dk_pair_map_init(&t->pairs, v->n_merges)) {
        st = dk_fail(e, DK_ERR_NOMEM, "%s: out of memory for the maps", what);
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        dk_piece_map_put(t, &t->all, i);
        if (dk_bpe_special_type(t->types[i]) && t->len[i] > 0) dk_piece_map_put(t, &t->special, i);
    }
    for (int b = 0; b < 256; b++) {
        char u[4];
        t->byte_tok[b] = dk_piece_map_get(t, &t->all, u, dk_utf8_put(cp_of_byte[b], u));
    }
    /* merges: "left right", split at the first space after the first byte (as llama.cpp) */
    size_t merged_cap = 0;
    for (int r = 0; r < v->n_merges; r++) {
        const char *m = v->merges[r];
        size_t L = v->merge_lens ? v->merge_lens[r] : (m ? strlen(m) : 0);
        const char *sp = (m && L > 1) ? memchr(m + 1, ' ', L - 1) : NULL;
        if (!sp) {
            st = dk_fail(e, DK_ERR_FORMAT, "%s: merge %d '%.*s' is not \"left right\"", what, r, (int)(L > 60 ? 60 : L), m ? m : "");
            goto fail;
        }
        size_t la = (size_t)(sp - m), lb = L - la - 1;
        int32_t a = dk_piece_map_get(t, &t->all, m, la), b = dk_piece_map_get(t, &t->all, sp + 1, lb);
        if (merged_cap < la + lb) {
            merged_cap = (la + lb) * 2;
            char *nm = realloc(merged, merged_cap);
            if (!nm) { st = dk_fail(e, DK_ERR_NOMEM, "%s: out of memory", what); goto fail; }
            merged = nm;
        }
        if (la + lb) { memcpy(merged, m, la); memcpy(merged + la, sp + 1, lb); }
        int32_t ab = (a >= 0 && b >= 0) ? dk_piece_map_get(t, &t->all, merged, la + lb) : -1;
        if (ab < 0) {
            st = dk_fail(e, DK_ERR_FORMAT, "%s: merge %d '%.*s': %s is not a token", what, r, (int)(L > 60 ? 60 : L), m,
                         a < 0 ? "the left part" : b < 0 ? "the right part" : "the concatenation");
            goto fail;
        }
        uint32_t slot = dk_pair_map_slot(&t->pairs, a, b);
        if (t->pairs.keys[slot] == UINT64_MAX) { /* a repeated pair keeps its first (lowest) rank */
            t->pairs.keys[slot] = dk_pair_key(a, b);
            t->pairs.rank[slot] = r;
            t->pairs.id[slot] = ab;
        }
    }
    free(merged);
    *out = t;
    return DK_OK;
fail:
    free(merged);
    dk_tokenizer_free(t);
    return st;
}

/* ----------------------------------------------------------------------------------------------
 * GPT-2 byte-level BPE ("bpe"): pre-tokenizer
 * ---------------------------------------------------------------------------------------------- */

enum { DK_CL_L = DK_UNICODE_CLASS_LETTER, DK_CL_N = DK_UNICODE_CLASS_NUMBER, DK_CL_S = DK_UNICODE_CLASS_SPACE };

static inline uint8_t dk_bpe_class(uint32_t c) {
    if (c < 0x80) {
        if ((c | 32u) - 'a' < 26u) return DK_CL_L;
        if (c - '0' < 10u) return DK_CL_N;
        return (c == ' ' || (c >= 9 && c <= 13)) ? DK_CL_S : 0;
    }
    return (uint8_t)dk_unicode_class(c);
}

/* A segment of text (between special tokens) as code points. */
typedef struct {
    uint32_t *cp;  /* (n) code points; an invalid byte b is 0x110000 + b */
    uint32_t *off; /* (n + 1) byte offset of each code point in the segment; off[n] = its bytes */
    uint8_t *cl;   /* (n) DK_CL_* bits */
    int32_t n;
    size_t cap;    /* allocated code points */
} dk_bpe_cpts;

#define DK_IS(k, bit) ((k) < n && (cl[k] & (bit)))
#define DK_IS_O(k) ((k) < n && !(cl[k] & (DK_CL_L | DK_CL_N | DK_CL_S)))
#define DK_IS_NL(k) ((k) < n && (cp[k] == '\r' || cp[k] == '\n'))

/* End of the match at i of 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+.
 * single_digits: every \p{N} was isolated beforehand (SmolLM), so a number is one digit and the
 * text before it ends there. */
static int32_t dk_match_gpt2(const uint32_t *cp, const uint8_t *cl, int32_t n, int32_t i, bool single_digits) {
    uint32_t c = cp[i];
    if (c == '\'' && i + 1 < n) {
        uint32_t c1 = cp[i + 1], c2 = i + 2 < n ? cp[i + 2] : 0;
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return i + 2;
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return i + 3;
    }
    int32_t j = c == ' ' ? i + 1 : i; /* the optional leading space */
    if (DK_IS(j, DK_CL_L)) { while (DK_IS(j, DK_CL_L)) j++; return j; }
    if (DK_IS(j, DK_CL_N)) {
        if (!single_digits) { while (DK_IS(j, DK_CL_N)) j++; return j; }
        if (j == i) return i + 1;
    }
    if (DK_IS_O(j)) { while (DK_IS_O(j)) j++; return j; }
    if (DK_IS(i, DK_CL_S)) {
        int32_t k = i;
        while (DK_IS(k, DK_CL_S)) k++;
        /* \s+(?!\S) leaves the last space to the word after it; \s+ takes a lone one */
        if (k == n || (single_digits && DK_IS(k, DK_CL_N)) || k - i < 2) return k;
        return k - 1;
    }
    return i + 1;
}

/* End of the match at i of (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+  (Llama-3: max_digits 3; Qwen2: 1). */
static int32_t dk_match_llama3(const uint32_t *cp, const uint8_t *cl, int32_t n, int32_t i, int max_digits) {
    uint32_t c = cp[i];
    if (c == '\'' && i + 1 < n) {
        uint32_t c1 = cp[i + 1] | 32u, c2 = i + 2 < n ? cp[i + 2] | 32u : 0; /* ASCII case folding */
        if (cp[i + 1] < 0x80 && (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd')) return i + 2;
        if (cp[i + 1] < 0x80 && i + 2 < n && cp[i + 2] < 0x80 &&
            ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')))
            return i + 3;
    }
    int32_t j;
    if (DK_IS(i, DK_CL_L) || (!DK_IS_NL(i) && !DK_IS(i, DK_CL_N) && DK_IS(i + 1, DK_CL_L))) {
        j = i + 1;
        while (DK_IS(j, DK_CL_L)) j++;
        return j;
    }
    if (DK_IS(i, DK_CL_N)) {
        j = i + 1;
        while (j - i < max_digits && DK_IS(j, DK_CL_N)) j++;
        return j;
    }
    j = (c == ' ' && DK_IS_O(i + 1)) ? i + 1 : i;
    if (DK_IS_O(j)) {
        while (DK_IS_O(j)) j++;
        while (DK_IS_NL(j)) j++;
        return j;
    }
    if (DK_IS(i, DK_CL_S)) {
        int32_t k = i, last_nl = -1;
        for (; DK_IS(k, DK_CL_S); k++)
            if (DK_IS_NL(k)) last_nl = k;
        if (last_nl >= 0) return last_nl + 1; /* \s*[\r\n]+ backtracks to the last line break */
        if (k == n || k - i < 2) return k;
        return k - 1;
    }
    return i + 1;
}

#undef DK_IS
#undef DK_IS_O
#undef DK_IS_NL

/* Decodes seg[0..len) into c (growing it); false on OOM. */
static bool dk_bpe_cpts_fill(dk_bpe_cpts *c, const char *seg, size_t len) {
    if (c->cap < len + 1) {
        size_t cap = len + 1 > 2 * c->cap ? len + 1 : 2 * c->cap;
        uint32_t *cp = realloc(c->cp, cap * sizeof *cp);
        if (cp) c->cp = cp;
        uint32_t *off = realloc(c->off, (cap + 1) * sizeof *off);
        if (off) c->off = off;
        uint8_t *cl = realloc(c->cl, cap);
        if (cl) c->cl = cl;
        if (!cp || !off || !cl) return false;
        c->cap = cap;
    }
    int32_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        uint32_t L = dk_utf8_next((const unsigned char *)seg + i, len - i, &cp);
        c->cp[n] = cp;
        c->off[n] = (uint32_t)i;
        c->cl[n] = dk_bpe_class(cp);
        n++;
        i += L;
    }
    c->off[n] = (uint32_t)len;
    c->n = n;
    return true;
}

/* End (code point index) of the chunk that starts at i. */
static int32_t dk_bpe_chunk_end(const dk_tokenizer *t, const dk_bpe_cpts *c, int32_t i) {
    switch (t->pre) {
    case DK_BPE_PRE_GPT2: return dk_match_gpt2(c->cp, c->cl, c->n, i, false);
    case DK_BPE_PRE_SMOLLM: return dk_match_gpt2(c->cp, c->cl, c->n, i, true);
    case DK_BPE_PRE_LLAMA3: return dk_match_llama3(c->cp, c->cl, c->n, i, 3);
    case DK_BPE_PRE_QWEN2: return dk_match_llama3(c->cp, c->cl, c->n, i, 1);
    }
    return i + 1;
}

/* Bytes of the special token at text[i..len), 0 if none (longest match wins); *id its token. */
static uint32_t dk_bpe_special_at(const dk_tokenizer *t, const char *text, size_t len, size_t i, int32_t *id) {
    if (!t->max_special_len || !t->special_first[(unsigned char)text[i]]) return 0;
    uint32_t m = t->max_special_len < len - i ? t->max_special_len : (uint32_t)(len - i);
    for (; m > 0; m--)
        if ((*id = dk_piece_map_get(t, &t->special, text + i, m)) >= 0) return m;
    return 0;
}

/* ----------------------------------------------------------------------------------------------
 * GPT-2 byte-level BPE ("bpe"): encode
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    int32_t *v;
    size_t n, cap;
} dk_ids;

static bool dk_ids_push(dk_ids *a, int32_t id) {
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 256;
        int32_t *nv = realloc(a->v, nc * sizeof *nv);
        if (!nv) return false;
        a->v = nv; a->cap = nc;
    }
    a->v[a->n++] = id;
    return true;
}

/* A candidate merge of symbol `left` (token lid) with its right neighbour (token rid); stale once
 * either symbol's token changed (tokens only grow, so an old id never comes back). */
typedef struct {
    int32_t rank, left, lid, rid;
} dk_bpe_cand;

typedef struct {
    int32_t *id, *prev, *next; /* (cap) symbols of one chunk: token, neighbours (-1 at the ends) */
    size_t cap;
    dk_bpe_cand *heap;          /* min-heap on (rank, left) */
    size_t n_heap, cap_heap;
    char *mapped;               /* (4 * cap) the chunk as byte-level characters (ignore_merges) */
} dk_bpe_work;

static inline bool dk_cand_before(const dk_bpe_cand *a, const dk_bpe_cand *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static bool dk_bpe_push(dk_bpe_work *w, dk_bpe_cand c) {
    if (w->n_heap == w->cap_heap) {
        size_t nc = w->cap_heap ? w->cap_heap * 2 : 256;
        dk_bpe_cand *nh = realloc(w->heap, nc * sizeof *nh);
        if (!nh) return false;
        w->heap = nh; w->cap_heap = nc;
    }
    size_t i = w->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!dk_cand_before(&c, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = c;
    return true;
}

static dk_bpe_cand dk_bpe_pop(dk_bpe_work *w) {
    dk_bpe_cand top = w->heap[0], last = w->heap[--w->n_heap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= w->n_heap) break;
        if (c + 1 < w->n_heap && dk_cand_before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!dk_cand_before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (w->n_heap) w->heap[i] = last;
    return top;
}

static bool dk_bpe_try_pair(const dk_tokenizer *t, dk_bpe_work *w, int32_t l) {
    if (l < 0 || w->next[l] < 0) return true;
    int32_t r = w->next[l];
    uint32_t s = dk_pair_map_slot(&t->pairs, w->id[l], w->id[r]);
    if (t->pairs.keys[s] == UINT64_MAX) return true;
    dk_bpe_cand c = {t->pairs.rank[s], l, w->id[l], w->id[r]};
    return dk_bpe_push(w, c);
}

/* BPE of one chunk's bytes, tokens appended to out. DK_ERR_NOMEM, or DK_ERR_UNSUPPORTED when a
 * byte has no token and the vocabulary no unknown token. */
static dk_status dk_bpe_word(const dk_tokenizer *t, const unsigned char *b, size_t n, dk_bpe_work *w, dk_ids *out) {
    if (n == 0) return DK_OK;
    if (w->cap < n) {
        size_t cap = n > 2 * w->cap ? n : 2 * w->cap;
        int32_t *id = realloc(w->id, cap * sizeof *id);
        if (id) w->id = id;
        int32_t *prev = realloc(w->prev, cap * sizeof *prev);
        if (prev) w->prev = prev;
        int32_t *next = realloc(w->next, cap * sizeof *next);
        if (next) w->next = next;
        char *mapped = realloc(w->mapped, 4 * cap);
        if (mapped) w->mapped = mapped;
        if (!id || !prev || !next || !mapped) return DK_ERR_NOMEM;
        w->cap = cap;
    }
    if (t->pre == DK_BPE_PRE_LLAMA3) { /* ignore_merges: a chunk that is a token is emitted whole */
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            size_t L;
            const char *u = dk_tokenizer_piece(t, t->byte_tok[b[i]], &L);
            if (!u) { m = 0; break; }
            memcpy(w->mapped + m, u, L);
            m += L;
        }
        int32_t id = m ? dk_piece_map_get(t, &t->all, w->mapped, m) : -1;
        if (id >= 0 && !dk_bpe_special_type(t->types[id])) return dk_ids_push(out, id) ? DK_OK : DK_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        w->id[i] = t->byte_tok[b[i]];
        if (w->id[i] < 0) {
            if (t->unk < 0) return DK_ERR_UNSUPPORTED;
            w->id[i] = t->unk; /* never merges: no merge names it */
        }
        w->prev[i] = (int32_t)i - 1;
        w->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    w->n_heap = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (!dk_bpe_try_pair(t, w, (int32_t)i)) return DK_ERR_NOMEM;
    while (w->n_heap) {
        dk_bpe_cand c = dk_bpe_pop(w);
        int32_t l = c.left, r = w->next[l];
        if (w->id[l] != c.lid || r < 0 || w->id[r] != c.rid) continue; /* stale */
        uint32_t s = dk_pair_map_slot(&t->pairs, c.lid, c.rid);
        w->id[l] = t->pairs.id[s];
        w->id[r] = -1;
        w->next[l] = w->next[r];
        if (w->next[r] >= 0) w->prev[w->next[r]] = l;
        if (!dk_bpe_try_pair(t, w, w->prev[l]) || !dk_bpe_try_pair(t, w, l)) return DK_ERR_NOMEM;
    }
    for (int32_t i = 0; i >= 0; i = w->next[i])
        if (!dk_ids_push(out, w->id[i])) return DK_ERR_NOMEM;
    return DK_OK;
}

/* Splits text into special tokens and pre-tokenizer chunks. For each chunk calls
 * chunk(ctx, start, end, special id or -1) with byte offsets into text. */
typedef dk_status (*dk_bpe_chunk_fn)(void *ctx, const char *text, size_t start, size_t end, int32_t special);

static dk_status dk_bpe_walk(const dk_tokenizer *t, const char *text, size_t len, dk_bpe_cpts *c,
                             dk_bpe_chunk_fn chunk, void *ctx) {
    size_t seg = 0, i = 0;
    dk_status st;
    for (;;) {
        int32_t sid = -1;
        uint32_t m = i < len ? dk_bpe_special_at(t, text, len, i, &sid) : 0;
        if (m == 0 && i < len) { i++; continue; }
        if (i > seg) { /* the ordinary text before the special token (or the end) */
            if (!dk_bpe_cpts_fill(c, text + seg, i - seg)) return DK_ERR_NOMEM;
            for (int32_t k = 0; k < c->n;) {
                int32_t end = dk_bpe_chunk_end(t, c, k);
                if ((st = chunk(ctx, text, seg + c->off[k], seg + c->off[end], -1))) return st;
                k = end;
            }
        }
        if (i >= len) return DK_OK;
        if ((st = chunk(ctx, text, i, i + m, sid))) return st;
        i += m;
        seg = i;
    }
}

typedef struct {
    const dk_tokenizer *t;
    dk_bpe_work w;
    dk_ids out;
    size_t bad_byte; /* offset of a byte with no token (DK_ERR_UNSUPPORTED) */
} dk_bpe_encode_ctx;

static dk_status dk_bpe_encode_chunk(void *ctx, const char *text, size_t start, size_t end, int32_t special) {
    dk_bpe_encode_ctx *x = ctx;
    if (special >= 0) return dk_ids_push(&x->out, special) ? DK_OK : DK_ERR_NOMEM;
    dk_status st = dk_bpe_word(x->t, (const unsigned char *)text + start, end - start, &x->w, &x->out);
    if (st == DK_ERR_UNSUPPORTED) {
        for (size_t i = start; i < end; i++)
            if (x->t->byte_tok[(unsigned char)text[i]] < 0) { x->bad_byte = i; break; }
    }
    return st;
}

static dk_status dk_bpe_encode(const dk_tokenizer *t, const char *text, size_t len, bool add_bos,
                               int32_t **ids, int *n_ids, dk_err *e) {
    dk_bpe_encode_ctx x = {.t = t};
    dk_bpe_cpts c = {0};
    dk_status st = DK_OK;
    if (add_bos && !dk_ids_push(&x.out, t->bos)) st = DK_ERR_NOMEM;
    if (!st) st = dk_bpe_walk(t, text, len, &c, dk_bpe_encode_chunk, &x);
    if (!st && x.out.n > (size_t)INT32_MAX) st = DK_ERR_NOMEM;
    free(c.cp); free(c.off); free(c.cl);
    free(x.w.id); free(x.w.prev); free(x.w.next); free(x.w.heap); free(x.w.mapped);
    if (st) {
        free(x.out.v);
        if (st == DK_ERR_UNSUPPORTED)
            return dk_fail(e, st, "tokenizer: text byte offset %zu: byte 0x%02x has no token and the vocabulary no unknown token",
                           x.bad_byte, (unsigned char)text[x.bad_byte]);
        return dk_fail(e, DK_ERR_NOMEM, "tokenizer: out of memory encoding %zu bytes", len);
    }
    if (!x.out.v) x.out.v = malloc(sizeof(int32_t)); /* empty text: a valid, freeable pointer */
    if (!x.out.v) return dk_fail(e, DK_ERR_NOMEM, "tokenizer: out of memory");
    *ids = x.out.v;
    *n_ids = (int)x.out.n;
    return DK_OK;
}

typedef struct {
    dk_ids ends;
} dk_bpe_split_ctx;

static dk_status dk_bpe_split_chunk(void *ctx, const char *text, size_t start, size_t end, int32_t special) {
    (void)text; (void)start; (void)special;
    dk_bpe_split_ctx *x = ctx;
    return dk_ids_push(&x->ends, (int32_t)end) ? DK_OK : DK_ERR_NOMEM;
}

dk_status dk_tokenizer_pretokenize(const dk_tokenizer *t, const char *text, size_t len, uint32_t **ends,
                                   int *n, dk_err *e) {
    *ends = NULL;
    *n = 0;
    if (t->kind != DK_TOKENIZER_KIND_BPE)
        return dk_fail(e, DK_ERR_UNSUPPORTED, "tokenizer: pre-tokenization applies to bpe tokenizers, not %s", dk_tokenizer_kind(t));
    if (!text && len) return dk_fail(e, DK_ERR_ARG, "tokenizer: NULL text of length %zu", len);
    if (len > (size_t)INT32_MAX) return dk_fail(e, DK_ERR_ARG, "tokenizer: text too long (%zu bytes)", len);
    dk_bpe_split_ctx x = {{0}};
    dk_bpe_cpts c = {0};
    dk_status st = dk_bpe_walk(t, text, len, &c, dk_bpe_split_chunk, &x);
    free(c.cp); free(c.off); free(c.cl);
    if (st) { free(x.ends.v); return dk_fail(e, DK_ERR_NOMEM, "tokenizer: out of memory splitting %zu bytes", len); }
    if (!x.ends.v) x.ends.v = malloc(sizeof(int32_t));
    if (!x.ends.v) return dk_fail(e, DK_ERR_NOMEM, "tokenizer: out of memory");
    *ends = (uint32_t *)x.ends.v;
    *n = (int)x.ends.n;
    return DK_OK;
}

/* ----------------------------------------------------------------------------------------------
 * GPT-2 byte-level BPE ("bpe"): decode
 * ---------------------------------------------------------------------------------------------- */

/* Bytes of the maximal invalid subsequence at s[0..n) (n >= 1, s not valid UTF-8 there): the
 * longest prefix that could start a well-formed sequence, or 1 (Unicode 3.9, U+FFFD policy). */
static size_t dk_utf8_invalid_len(const unsigned char *s, size_t n) {
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    size_t L;
    if (c >= 0xC2 && c <= 0xDF) L = 2;
    else if (c >= 0xE0 && c <= 0xEF) { L = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { L = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 1;
    size_t k = 1;
    if (k < n && s[k] >= lo && s[k] <= hi) {
        k++;
        while (k < L && k < n && s[k] >= 0x80 && s[k] <= 0xBF) k++;
    }
    return k;
}

static dk_status dk_bpe_decode(const dk_tokenizer *t, const int32_t *ids, int n, char **text, size_t *len, dk_err *e) {
    dk_buf raw = {0}, b = {0};
    if (!dk_buf_add(&raw, "", 0) || !dk_buf_add(&b, "", 0)) goto oom;
    for (int i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_vocab) {
            free(raw.p); free(b.p);
            return dk_fail(e, DK_ERR_ARG, "tokenizer: token id %d at position %d is out of range [0, %d)", id, i, t->n_vocab);
        }
        if (!dk_buf_add(&raw, t->dblob + t->doff[id], t->dlen[id])) goto oom;
    }
    const unsigned char *s = (const unsigned char *)raw.p;
    for (size_t i = 0; i < raw.n;) {
        size_t L = dk_utf8_valid(s + i, raw.n - i);
        if (L) { if (!dk_buf_add(&b, raw.p + i, L)) goto oom; i += L; }
        else { if (!dk_buf_add(&b, "\xEF\xBF\xBD", 3)) goto oom; i += dk_utf8_invalid_len(s + i, raw.n - i); }
    }
    free(raw.p);
    *text = b.p;
    if (len) *len = b.n;
    return DK_OK;
oom:
    free(raw.p); free(b.p);
    return dk_fail(e, DK_ERR_NOMEM, "tokenizer: out of memory decoding %d tokens", n);
}
