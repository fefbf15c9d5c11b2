/* tokenizer.c — what every tokenizer kind shares: the piece tables, construction helpers and
 * free, the public encode/decode entry points (SentencePiece decode here; the algorithms in
 * tokenizer_spm.c and tokenizer_bpe.c), and the vocabulary accessors. See tokenizer.h for the
 * algorithms and the contract of each function. */
#include "tokenizer_impl.h"
#include "tokenizer_unicode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------------------------------------------
 * Piece map
 * ---------------------------------------------------------------------------------------------- */

uint32_t dk_hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

bool dk_piece_map_init(dk_piece_map *m, int n_entries) {
    uint32_t cap = 16;
    while (cap < (uint32_t)n_entries * 2u + 2u) cap <<= 1;
    m->slots = malloc(sizeof(int32_t) * cap);
    if (!m->slots) return false;
    memset(m->slots, 0xff, sizeof(int32_t) * cap);
    m->mask = cap - 1;
    return true;
}

int32_t dk_piece_map_get(const dk_tokenizer *t, const dk_piece_map *m, const char *s, size_t n) {
    if (!m->slots) return -1;
    for (uint32_t i = dk_hash_bytes(s, n) & m->mask;; i = (i + 1) & m->mask) {
        int32_t id = m->slots[i];
        if (id < 0) return -1;
        if (t->len[id] == n && memcmp(t->blob + t->off[id], s, n) == 0) return id;
    }
}

/* Inserts id unless its bytes are already present (so the lowest id wins). */
void dk_piece_map_put(const dk_tokenizer *t, dk_piece_map *m, int32_t id) {
    const char *s = t->blob + t->off[id];
    uint32_t n = t->len[id];
    for (uint32_t i = dk_hash_bytes(s, n) & m->mask;; i = (i + 1) & m->mask) {
        int32_t cur = m->slots[i];
        if (cur < 0) {
            m->slots[i] = id;
            return;
        }
        if (t->len[cur] == n && memcmp(t->blob + t->off[cur], s, n) == 0) return;
    }
}

/* ----------------------------------------------------------------------------------------------
 * Construction
 * ---------------------------------------------------------------------------------------------- */

void dk_tokenizer_free(dk_tokenizer *t) {
    if (!t) return;
    DK_FREE_ALL(t->blob, t->off, t->len, t->dblob, t->doff, t->dlen, t->scores, t->types, t->byte_val,
                t->all.slots, t->merge.slots, t->user.slots, t->pairs.keys, t->pairs.rank, t->pairs.id,
                t->special.slots);
    free(t);
}

/* Parses "<0xNN>" (exactly, upper or lower case hex); returns the byte or -1. */
int dk_parse_byte_piece(const char *s, size_t n) {
    if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = (c >= '0' && c <= '9')   ? c - '0'
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                         : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

bool dk_tokenizer_alloc_display(dk_tokenizer *t, size_t dblob_bytes) {
    size_t n = (size_t)t->n_vocab;
    t->dblob = malloc(dblob_bytes ? dblob_bytes : 1);
    t->doff = malloc(sizeof(uint32_t) * n);
    t->dlen = malloc(sizeof(uint32_t) * n);
    t->byte_val = malloc(sizeof(int16_t) * n);
    return t->dblob && t->doff && t->dlen && t->byte_val;
}

/* Builds the derived tables once pieces, lens, scores and types are in place. `what` names the
 * source for error messages. */
dk_status dk_tokenizer_finish(dk_tokenizer *t, const char *what, dk_err *e) {
    int n = t->n_vocab;
    if (t->bos >= n || t->eos >= n || t->unk >= n)
        return dk_fail(e, DK_ERR_FORMAT,
                       "%s: special token id out of range (bos %d, eos %d, unk %d, n_vocab %d)", what, t->bos,
                       t->eos, t->unk, n);
    /* display texts: the space symbol becomes ' ' */
    size_t dcap = 0;
    for (int i = 0; i < n; i++) dcap += t->len[i] + 1;
    if (!dk_tokenizer_alloc_display(t, dcap))
        return dk_fail(e, DK_ERR_NOMEM, "%s: out of memory for the vocabulary", what);
    size_t d = 0;
    for (int i = 0; i < n; i++) {
        const char *p = t->blob + t->off[i];
        uint32_t L = t->len[i];
        t->doff[i] = (uint32_t)d;
        for (uint32_t j = 0; j < L;) {
            if (t->space_len == 3 && j + 3 <= L && memcmp(p + j, DK_SPM_SPACE, 3) == 0) {
                t->dblob[d++] = ' ';
                j += 3;
            } else {
                t->dblob[d++] = p[j++];
            }
        }
        t->dlen[i] = (uint32_t)(d - t->doff[i]);
        t->dblob[d++] = 0;
    }
    /* bytes and maps */
    for (int b = 0; b < 256; b++) {
        t->byte_id[b] = -1;
        t->byte_text[b][0] = (char)b;
        t->byte_text[b][1] = 0;
    }
    int n_user = 0;
    for (int i = 0; i < n; i++) {
        t->byte_val[i] = -1;
        if (t->types[i] == DK_TOKEN_TYPE_BYTE) {
            int b = dk_parse_byte_piece(t->blob + t->off[i], t->len[i]);
            if (b < 0)
                return dk_fail(e, DK_ERR_FORMAT, "%s: token %d has type byte but piece is not <0xNN>", what,
                               i);
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

dk_status dk_tokenizer_add_piece(dk_tokenizer *t, int i, const char *s, size_t L, float score, int type,
                                 size_t *o, const char *what, dk_err *e) {
    memcpy(t->blob + *o, s, L);
    t->blob[*o + L] = 0;
    t->off[i] = (uint32_t)*o;
    t->len[i] = (uint32_t)L;
    *o += L + 1;
    t->scores[i] = score;
    if (type < DK_TOKEN_TYPE_NORMAL || type > DK_TOKEN_TYPE_BYTE)
        return dk_fail(e, DK_ERR_FORMAT, "%s: token %d has unknown token type %d", what, i, type);
    t->types[i] = type;
    return DK_OK;
}

/* Allocates t and its per-token arrays for n tokens with blob_bytes of piece text. */
dk_status dk_tokenizer_alloc(int n, size_t blob_bytes, dk_tokenizer **out, const char *what, dk_err *e) {
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

/* ----------------------------------------------------------------------------------------------
 * Encode
 * ---------------------------------------------------------------------------------------------- */

dk_status dk_tokenizer_encode(const dk_tokenizer *t, const char *text, size_t len, bool add_bos,
                              int32_t **ids, int *n_ids, dk_err *e) {
    *ids = NULL;
    *n_ids = 0;
    if (!text && len) return dk_fail(e, DK_ERR_ARG, "tokenizer: NULL text of length %zu", len);
    if (add_bos && t->bos < 0)
        return dk_fail(e, DK_ERR_ARG, "tokenizer: add_bos requested but the vocabulary has no BOS token");
    if (len > (size_t)INT32_MAX / 8)
        return dk_fail(e, DK_ERR_ARG, "tokenizer: text too long (%zu bytes)", len);
    if (t->kind == DK_TOKENIZER_KIND_BPE) return dk_bpe_encode(t, text, len, add_bos, ids, n_ids, e);
    return dk_spm_encode(t, text, len, add_bos, ids, n_ids, e);
}

/* ----------------------------------------------------------------------------------------------
 * Decode
 * ---------------------------------------------------------------------------------------------- */

const char *dk_tokenizer_decode_piece(const dk_tokenizer *t, int32_t prev, int32_t tok, size_t *len) {
    if (tok < 0 || tok >= t->n_vocab) {
        if (len) *len = 0;
        return "";
    }
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
    if (prev == t->bos && prev >= 0 && L > 0 && p[0] == ' ') {
        p++;
        L--;
    }
    if (len) *len = L;
    return p;
}

size_t dk_utf8_lead(unsigned c, unsigned *lo, unsigned *hi) {
    size_t L;
    *lo = 0x80;
    *hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) L = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        L = 3;
        if (c == 0xE0) *lo = 0xA0;
        if (c == 0xED) *hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        L = 4;
        if (c == 0xF0) *lo = 0x90;
        if (c == 0xF4) *hi = 0x8F;
    } else return 0;
    return L;
}

/* Length of a valid UTF-8 sequence at s[0..n) (RFC 3629: no overlongs, surrogates or > U+10FFFF),
 * or 0 if invalid. */
size_t dk_utf8_valid(const unsigned char *s, size_t n) {
    if (s[0] < 0x80) return 1;
    unsigned lo, hi;
    size_t L = dk_utf8_lead(s[0], &lo, &hi);
    if (!L || n < L) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < L; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return L;
}

/* Appends a run of raw bytes as UTF-8, each byte of an invalid sequence as U+FFFD. */
static bool dk_add_utf8_or_fffd(dk_strbuf *b, const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t L = dk_utf8_valid(s + i, n - i);
        if (L) {
            if (!dk_strbuf_add(b, (const char *)s + i, L)) return false;
            i += L;
        } else {
            if (!dk_strbuf_add(b, "\xEF\xBF\xBD", 3)) return false;
            i++;
        }
    }
    return true;
}
dk_status dk_tokenizer_decode(const dk_tokenizer *t, const int32_t *ids, int n, char **text, size_t *len,
                              dk_err *e) {
    *text = NULL;
    if (len) *len = 0;
    if (t->kind == DK_TOKENIZER_KIND_BPE) return dk_bpe_decode(t, ids, n, text, len, e);
    dk_strbuf b = {0};
    unsigned char *run = malloc((size_t)(n > 0 ? n : 1)); /* pending byte pieces */
    size_t n_run = 0;
    bool bos_ws = true; /* still before the first visible text: strip a leading space */
    bool strip = t->add_space_prefix || t->remove_extra_ws;
    if (!run || !dk_strbuf_add(&b, "", 0)) goto oom;
    for (int i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_vocab) {
            free(run);
            free(b.s);
            return dk_fail(e, DK_ERR_ARG, "tokenizer: token id %d at position %d is out of range [0, %d)", id,
                           i, t->n_vocab);
        }
        if (t->byte_val[id] >= 0) {
            run[n_run++] = (unsigned char)t->byte_val[id];
            continue;
        }
        int ty = t->types[id];
        if (n_run) { /* any other piece, even an invisible one, ends a byte run */
            if (!dk_add_utf8_or_fffd(&b, run, n_run)) goto oom;
            n_run = 0;
            bos_ws = false;
        }
        if (ty == DK_TOKEN_TYPE_CONTROL || ty == DK_TOKEN_TYPE_UNUSED) continue; /* invisible */
        if (ty == DK_TOKEN_TYPE_UNKNOWN) {
            if (!dk_strbuf_add(&b, DK_UNK_SURFACE, sizeof DK_UNK_SURFACE - 1)) goto oom;
            bos_ws = false;
            continue;
        }
        const char *p = t->dblob + t->doff[id];
        size_t L = t->dlen[id];
        bool consumed = false;
        if (bos_ws && strip && L > 0 && p[0] == ' ') {
            p++;
            L--;
            consumed = !t->remove_extra_ws; /* with remove_extra_whitespaces every leading space goes */
        }
        if (!dk_strbuf_add(&b, p, L)) goto oom;
        if (L > 0 || consumed) bos_ws = false;
    }
    if (n_run && !dk_add_utf8_or_fffd(&b, run, n_run)) goto oom;
    free(run);
    *text = b.s;
    if (len) *len = b.n;
    return DK_OK;
oom:
    free(run);
    free(b.s);
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

bool dk_tokenizer_add_bos_default(const dk_tokenizer *t) { return t->add_bos; }

const char *dk_tokenizer_piece(const dk_tokenizer *t, int32_t tok, size_t *len) {
    if (tok < 0 || tok >= t->n_vocab) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = t->len[tok];
    return t->blob + t->off[tok];
}

int dk_tokenizer_type(const dk_tokenizer *t, int32_t tok) {
    return (tok < 0 || tok >= t->n_vocab) ? 0 : t->types[tok];
}

int32_t dk_tokenizer_find(const dk_tokenizer *t, const char *piece, size_t len) {
    return dk_piece_map_get(t, &t->all, piece, len);
}
