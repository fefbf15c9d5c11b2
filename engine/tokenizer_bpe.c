/* tokenizer_bpe.c — GPT-2 byte-level BPE ("bpe"): construction from a GGUF vocabulary and merges,
 * the pre-tokenizers (gpt-2, smollm, llama-bpe, qwen2), merge by rank, decode (tokenizer.h). */
#include "tokenizer_impl.h"
#include "tokenizer_unicode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the code point at s[0..n) (n >= 1) into *cp; returns its byte count. A byte that does
 * not start a valid sequence is one "character" with *cp = 0x110000 + byte (class other). */
static uint32_t dk_utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
    size_t L = dk_utf8_valid(s, n);
    if (L == 0) {
        *cp = 0x110000u + s[0];
        return 1;
    }
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

static bool dk_bpe_special_type(int ty) {
    return ty == DK_TOKEN_TYPE_CONTROL || ty == DK_TOKEN_TYPE_USER_DEFINED;
}

/* tokenizer.ggml.pre -> dk_bpe_pre; -1 if unknown. Names as llama.cpp's llama-vocab.cpp. */
static int dk_bpe_pre_parse(const char *s, size_t n) {
    static const struct {
        const char *name;
        dk_bpe_pre pre;
    } names[] = {
        {"gpt-2", DK_BPE_PRE_GPT2},
        {"smollm", DK_BPE_PRE_SMOLLM},
        {"llama-bpe", DK_BPE_PRE_LLAMA3},
        {"llama3", DK_BPE_PRE_LLAMA3},
        {"llama-v3", DK_BPE_PRE_LLAMA3},
        {"qwen2", DK_BPE_PRE_QWEN2},
        {"deepseek-r1-qwen", DK_BPE_PRE_QWEN2},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i].name) == n && memcmp(names[i].name, s, n) == 0) return (int)names[i].pre;
    return -1;
}

dk_status dk_tokenizer_set_pre(dk_tokenizer *t, const char *pre, dk_err *e) {
    if (t->kind != DK_TOKENIZER_KIND_BPE)
        return dk_fail(e, DK_ERR_ARG, "tokenizer: a pre-tokenizer applies to byte-level BPE only");
    int p = dk_bpe_pre_parse(pre, strlen(pre));
    if (p < 0)
        return dk_fail(e, DK_ERR_UNSUPPORTED, "tokenizer (bpe): pre-tokenizer '%.40s' is not supported", pre);
    t->pre = (dk_bpe_pre)p;
    return DK_OK;
}

/* Display texts (dblob): the raw bytes of normal tokens (byte-level characters mapped back),
 * special tokens verbatim, unused ones empty; and the special-token bookkeeping. */
static dk_status dk_bpe_display_texts(dk_tokenizer *t, const int16_t byte_of_cp[DK_BPE_N_CP], size_t blob,
                                      int *n_special_out, const char *what, dk_err *e) {
    int n = t->n_vocab;
    /* a token's bytes never outnumber its UTF-8 text */
    if (!dk_tokenizer_alloc_display(t, blob)) return dk_fail(e, DK_ERR_NOMEM, "%s: out of memory", what);
    size_t d = 0;
    int n_special = 0;
    for (int i = 0; i < n; i++) {
        const unsigned char *p = (const unsigned char *)t->blob + t->off[i];
        uint32_t L = t->len[i];
        t->doff[i] = (uint32_t)d;
        t->byte_val[i] = -1;
        if (dk_bpe_special_type(t->types[i])) {
            memcpy(t->dblob + d, p, L);
            d += L;
            if (L > 0) {
                n_special++;
                if (L > t->max_special_len) t->max_special_len = L;
                t->special_first[p[0]] = 1;
            }
        } else if (t->types[i] != DK_TOKEN_TYPE_UNUSED) {
            for (uint32_t j = 0; j < L;) {
                uint32_t cp, cl = dk_utf8_next(p + j, L - j, &cp);
                if (cp < DK_BPE_N_CP && byte_of_cp[cp] >= 0) t->dblob[d++] = (char)byte_of_cp[cp];
                else {
                    memcpy(t->dblob + d, p + j, cl);
                    d += cl;
                } /* not a byte-level character: kept */
                j += cl;
            }
        }
        t->dlen[i] = (uint32_t)(d - t->doff[i]);
        t->dblob[d++] = 0;
    }
    *n_special_out = n_special;
    return DK_OK;
}

/* The merges, "left right" each, split at the first space after the first byte (as llama.cpp),
 * into the pair map: a repeated pair keeps its first (lowest) rank. */
static dk_status dk_bpe_add_merges(dk_tokenizer *t, const dk_bpe_vocab *v, const char *what, dk_err *e) {
    char *merged = NULL;
    size_t merged_cap = 0;
    dk_status st = DK_OK;
    for (int r = 0; r < v->n_merges; r++) {
        const char *m = v->merges[r];
        size_t L = v->merge_lens ? v->merge_lens[r] : (m ? strlen(m) : 0);
        const char *sp = (m && L > 1) ? memchr(m + 1, ' ', L - 1) : NULL;
        if (!sp) {
            st = dk_fail(e, DK_ERR_FORMAT, "%s: merge %d '%.*s' is not \"left right\"", what, r,
                         (int)(L > 60 ? 60 : L), m ? m : "");
            goto done;
        }
        size_t la = (size_t)(sp - m), lb = L - la - 1;
        int32_t a = dk_piece_map_get(t, &t->all, m, la), b = dk_piece_map_get(t, &t->all, sp + 1, lb);
        if (merged_cap < la + lb) {
            merged_cap = (la + lb) * 2;
            char *nm = realloc(merged, merged_cap);
            if (!nm) {
                st = dk_fail(e, DK_ERR_NOMEM, "%s: out of memory", what);
                goto done;
            }
            merged = nm;
        }
        if (la + lb) {
            memcpy(merged, m, la);
            memcpy(merged + la, sp + 1, lb);
        }
        int32_t ab = (a >= 0 && b >= 0) ? dk_piece_map_get(t, &t->all, merged, la + lb) : -1;
        if (ab < 0) {
            st = dk_fail(e, DK_ERR_FORMAT, "%s: merge %d '%.*s': %s is not a token", what, r,
                         (int)(L > 60 ? 60 : L), m,
                         a < 0   ? "the left part"
                         : b < 0 ? "the right part"
                                 : "the concatenation");
            goto done;
        }
        uint32_t slot = dk_pair_map_slot(&t->pairs, a, b);
        if (t->pairs.keys[slot] == UINT64_MAX) { /* a repeated pair keeps its first (lowest) rank */
            t->pairs.keys[slot] = dk_pair_key(a, b);
            t->pairs.rank[slot] = r;
            t->pairs.id[slot] = ab;
        }
    }
done:
    free(merged);
    return st;
}

dk_status dk_tokenizer_create_bpe(const dk_bpe_vocab *v, dk_tokenizer **out, dk_err *e) {
    *out = NULL;
    const char *what = "tokenizer (bpe)";
    if (!v || v->n_vocab <= 0 || !v->tokens)
        return dk_fail(e, DK_ERR_ARG, "%s: empty vocabulary (n_vocab %d)", what, v ? v->n_vocab : 0);
    if (v->n_vocab > (1 << 30) || v->n_merges < 0 || v->n_merges > (1 << 30))
        return dk_fail(e, DK_ERR_FORMAT, "%s: absurd sizes (n_vocab %d, n_merges %d)", what, v->n_vocab,
                       v->n_merges);
    if (v->n_merges > 0 && !v->merges)
        return dk_fail(e, DK_ERR_ARG, "%s: %d merges but no merge array", what, v->n_merges);
    int pre = DK_BPE_PRE_GPT2;
    if (v->pre) {
        size_t pl = v->pre_len ? v->pre_len : strlen(v->pre);
        pre = dk_bpe_pre_parse(v->pre, pl);
        if (pre < 0)
            return dk_fail(e, DK_ERR_UNSUPPORTED,
                           "%s: pre-tokenizer (tokenizer.ggml.pre) '%.*s' is not supported (gpt-2, smollm, "
                           "llama-bpe, qwen2 are)",
                           what, (int)(pl > 60 ? 60 : pl), v->pre);
    }
    int n = v->n_vocab;
    size_t blob = 0;
    for (int i = 0; i < n; i++) {
        if (!v->tokens[i]) return dk_fail(e, DK_ERR_FORMAT, "%s: token %d has no text", what, i);
        blob += (v->token_lens ? v->token_lens[i] : strlen(v->tokens[i])) + 1;
        if (blob > UINT32_MAX) return dk_fail(e, DK_ERR_FORMAT, "%s: tokens exceed 4 GiB", what);
    }
    if (v->bos_id < -1 || v->eos_id < -1 || v->unk_id < -1 || v->bos_id >= n || v->eos_id >= n ||
        v->unk_id >= n)
        return dk_fail(e, DK_ERR_FORMAT,
                       "%s: special token id out of range (bos %d, eos %d, unk %d, n_vocab %d)", what,
                       v->bos_id, v->eos_id, v->unk_id, n);
    dk_tokenizer *t;
    dk_status st = dk_tokenizer_alloc(n, blob, &t, what, e);
    if (st) return st;
    t->kind = DK_TOKENIZER_KIND_BPE;
    t->pre = (dk_bpe_pre)pre;
    t->add_bos = v->add_bos;
    t->bos = v->bos_id;
    t->eos = v->eos_id;
    t->unk = v->unk_id;
    t->space[0] = ' ';
    t->space_len = 1;
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        size_t L = v->token_lens ? v->token_lens[i] : strlen(v->tokens[i]);
        int ty = v->types ? v->types[i] : DK_TOKEN_TYPE_NORMAL;
        if ((st = dk_tokenizer_add_piece(t, i, v->tokens[i], L, 0.0f, ty, &o, what, e))) goto fail;
    }
    uint32_t cp_of_byte[256];
    int16_t byte_of_cp[DK_BPE_N_CP];
    dk_bpe_byte_map(cp_of_byte, byte_of_cp);
    int n_special = 0;
    if ((st = dk_bpe_display_texts(t, byte_of_cp, blob, &n_special, what, e))) goto fail;
    for (int b = 0; b < 256; b++) {
        t->byte_id[b] = -1;
        t->byte_text[b][0] = (char)b;
        t->byte_text[b][1] = 0;
    }
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
    if ((st = dk_bpe_add_merges(t, v, what, e))) goto fail;
    *out = t;
    return DK_OK;
fail:
    dk_tokenizer_free(t);
    return st;
}

/* ----------------------------------------------------------------------------------------------
 * GPT-2 byte-level BPE ("bpe"): pre-tokenizer
 * ---------------------------------------------------------------------------------------------- */

enum {
    DK_CL_L = DK_UNICODE_CLASS_LETTER,
    DK_CL_N = DK_UNICODE_CLASS_NUMBER,
    DK_CL_S = DK_UNICODE_CLASS_SPACE
};

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
    size_t cap; /* allocated code points */
} dk_bpe_cpts;

#define DK_IS(k, bit) ((k) < n && (cl[k] & (bit)))
#define DK_IS_O(k) ((k) < n && !(cl[k] & (DK_CL_L | DK_CL_N | DK_CL_S)))
#define DK_IS_NL(k) ((k) < n && (cp[k] == '\r' || cp[k] == '\n'))

/* End of the match at i of 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+.
 * single_digits: every \p{N} was isolated beforehand (SmolLM), so a number is one digit and the
 * text before it ends there. */
static int32_t dk_match_gpt2(const uint32_t *cp, const uint8_t *cl, int32_t n, int32_t i,
                             bool single_digits) {
    uint32_t c = cp[i];
    if (c == '\'' && i + 1 < n) {
        uint32_t c1 = cp[i + 1], c2 = i + 2 < n ? cp[i + 2] : 0;
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return i + 2;
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return i + 3;
    }
    int32_t j = c == ' ' ? i + 1 : i; /* the optional leading space */
    if (DK_IS(j, DK_CL_L)) {
        while (DK_IS(j, DK_CL_L)) j++;
        return j;
    }
    if (DK_IS(j, DK_CL_N)) {
        if (!single_digits) {
            while (DK_IS(j, DK_CL_N)) j++;
            return j;
        }
        if (j == i) return i + 1;
    }
    if (DK_IS_O(j)) {
        while (DK_IS_O(j)) j++;
        return j;
    }
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
static uint32_t dk_bpe_special_at(const dk_tokenizer *t, const char *text, size_t len, size_t i,
                                  int32_t *id) {
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
        a->v = nv;
        a->cap = nc;
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
    dk_heap heap; /* of dk_bpe_cand: min-heap on (rank, left) */
    char *mapped; /* (4 * cap) the chunk as byte-level characters (ignore_merges) */
} dk_bpe_work;

static bool dk_cand_before(const void *pa, const void *pb) {
    const dk_bpe_cand *a = pa, *b = pb;
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static bool dk_bpe_try_pair(const dk_tokenizer *t, dk_bpe_work *w, int32_t l) {
    if (l < 0 || w->next[l] < 0) return true;
    int32_t r = w->next[l];
    uint32_t s = dk_pair_map_slot(&t->pairs, w->id[l], w->id[r]);
    if (t->pairs.keys[s] == UINT64_MAX) return true;
    dk_bpe_cand c = {t->pairs.rank[s], l, w->id[l], w->id[r]};
    return dk_heap_push(&w->heap, &c);
}

/* BPE of one chunk's bytes, tokens appended to out. DK_ERR_NOMEM, or DK_ERR_UNSUPPORTED when a
 * byte has no token and the vocabulary no unknown token. */
static dk_status dk_bpe_word(const dk_tokenizer *t, const unsigned char *b, size_t n, dk_bpe_work *w,
                             dk_ids *out) {
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
            if (!u) {
                m = 0;
                break;
            }
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
    w->heap.n = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (!dk_bpe_try_pair(t, w, (int32_t)i)) return DK_ERR_NOMEM;
    while (w->heap.n) {
        dk_bpe_cand c;
        dk_heap_pop(&w->heap, &c);
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
        if (m == 0 && i < len) {
            i++;
            continue;
        }
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
            if (x->t->byte_tok[(unsigned char)text[i]] < 0) {
                x->bad_byte = i;
                break;
            }
    }
    return st;
}

dk_status dk_bpe_encode(const dk_tokenizer *t, const char *text, size_t len, bool add_bos, int32_t **ids,
                        int *n_ids, dk_err *e) {
    dk_bpe_encode_ctx x = {.t = t, .w.heap = {.size = sizeof(dk_bpe_cand), .before = dk_cand_before}};
    dk_bpe_cpts c = {0};
    dk_status st = DK_OK;
    if (add_bos && !dk_ids_push(&x.out, t->bos)) st = DK_ERR_NOMEM;
    if (!st) st = dk_bpe_walk(t, text, len, &c, dk_bpe_encode_chunk, &x);
    if (!st && x.out.n > (size_t)INT32_MAX) st = DK_ERR_NOMEM;
    DK_FREE_ALL(c.cp, c.off, c.cl, x.w.id, x.w.prev, x.w.next);
    dk_heap_free(&x.w.heap);
    free(x.w.mapped);
    if (st) {
        free(x.out.v);
        if (st == DK_ERR_UNSUPPORTED)
            return dk_fail(e, st,
                           "tokenizer: text byte offset %zu: byte 0x%02x has no token and the vocabulary no "
                           "unknown token",
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
    (void)text;
    (void)start;
    (void)special;
    dk_bpe_split_ctx *x = ctx;
    return dk_ids_push(&x->ends, (int32_t)end) ? DK_OK : DK_ERR_NOMEM;
}

dk_status dk_tokenizer_pretokenize(const dk_tokenizer *t, const char *text, size_t len, uint32_t **ends,
                                   int *n, dk_err *e) {
    *ends = NULL;
    *n = 0;
    if (t->kind != DK_TOKENIZER_KIND_BPE)
        return dk_fail(e, DK_ERR_UNSUPPORTED, "tokenizer: pre-tokenization applies to bpe tokenizers, not %s",
                       dk_tokenizer_kind(t));
    if (!text && len) return dk_fail(e, DK_ERR_ARG, "tokenizer: NULL text of length %zu", len);
    if (len > (size_t)INT32_MAX) return dk_fail(e, DK_ERR_ARG, "tokenizer: text too long (%zu bytes)", len);
    dk_bpe_split_ctx x = {{0}};
    dk_bpe_cpts c = {0};
    dk_status st = dk_bpe_walk(t, text, len, &c, dk_bpe_split_chunk, &x);
    free(c.cp);
    free(c.off);
    free(c.cl);
    if (st) {
        free(x.ends.v);
        return dk_fail(e, DK_ERR_NOMEM, "tokenizer: out of memory splitting %zu bytes", len);
    }
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
    unsigned lo, hi;
    size_t L = dk_utf8_lead(s[0], &lo, &hi);
    if (!L) return 1;
    size_t k = 1;
    if (k < n && s[k] >= lo && s[k] <= hi) {
        k++;
        while (k < L && k < n && s[k] >= 0x80 && s[k] <= 0xBF) k++;
    }
    return k;
}

dk_status dk_bpe_decode(const dk_tokenizer *t, const int32_t *ids, int n, char **text, size_t *len,
                        dk_err *e) {
    dk_strbuf raw = {0}, b = {0};
    if (!dk_strbuf_add(&raw, "", 0) || !dk_strbuf_add(&b, "", 0)) goto oom;
    for (int i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_vocab) {
            free(raw.s);
            free(b.s);
            return dk_fail(e, DK_ERR_ARG, "tokenizer: token id %d at position %d is out of range [0, %d)", id,
                           i, t->n_vocab);
        }
        if (!dk_strbuf_add(&raw, t->dblob + t->doff[id], t->dlen[id])) goto oom;
    }
    const unsigned char *s = (const unsigned char *)raw.s;
    for (size_t i = 0; i < raw.n;) {
        size_t L = dk_utf8_valid(s + i, raw.n - i);
        if (L) {
            if (!dk_strbuf_add(&b, raw.s + i, L)) goto oom;
            i += L;
        } else {
            if (!dk_strbuf_add(&b, "\xEF\xBF\xBD", 3)) goto oom;
            i += dk_utf8_invalid_len(s + i, raw.n - i);
        }
    }
    free(raw.s);
    *text = b.s;
    if (len) *len = b.n;
    return DK_OK;
oom:
    free(raw.s);
    free(b.s);
    return dk_fail(e, DK_ERR_NOMEM, "tokenizer: out of memory decoding %d tokens", n);
}
