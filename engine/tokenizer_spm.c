/* tokenizer_spm.c — SentencePiece-style BPE: vocabularies from GGUF ("spm") and llama2.c
 * tok*.bin ("llama2c"), and the merge of adjacent symbols by score (tokenizer.h). */
#include "tokenizer_impl.h"
#include "tokenizer_unicode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool dk_contains(const char *s, size_t n, const char *sub, size_t m) {
    if (m == 0 || n < m) return false;
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(s + i, sub, m) == 0) return true;
    return false;
}

dk_status dk_tokenizer_create_spm(const dk_spm_vocab *v, dk_tokenizer **out, dk_err *e) {
    *out = NULL;
    const char *what = "tokenizer (spm)";
    if (!v || v->n_vocab <= 0 || !v->pieces)
        return dk_fail(e, DK_ERR_ARG, "%s: empty vocabulary (n_vocab %d)", what, v ? v->n_vocab : 0);
    if (v->n_vocab > (1 << 30)) return dk_fail(e, DK_ERR_FORMAT, "%s: absurd n_vocab %d", what, v->n_vocab);
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
    t->add_bos = !v->no_add_bos;
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        size_t L = v->piece_lens ? v->piece_lens[i] : strlen(v->pieces[i]);
        int ty = v->types ? v->types[i] : DK_TOKEN_TYPE_NORMAL;
        if ((st = dk_tokenizer_add_piece(t, i, v->pieces[i], L, v->scores ? v->scores[i] : -(float)i, ty, &o,
                                         what, e))) {
            dk_tokenizer_free(t);
            return st;
        }
    }
    memcpy(t->space, DK_SPM_SPACE, 4);
    t->space_len = 3;
    t->bos = v->bos_id;
    t->eos = v->eos_id;
    t->unk = v->unk_id;
    if (t->bos < -1 || t->eos < -1 || t->unk < -1) {
        dk_tokenizer_free(t);
        return dk_fail(e, DK_ERR_ARG, "%s: special token ids must be >= -1 (bos %d, eos %d, unk %d)", what,
                       v->bos_id, v->eos_id, v->unk_id);
    }
    t->add_space_prefix = v->add_space_prefix;
    st = dk_tokenizer_finish(t, what, e);
    if (st) {
        dk_tokenizer_free(t);
        return st;
    }
    *out = t;
    return DK_OK;
}

/* Pass 1 over a llama2.c tokenizer file's bytes: the header and every token record (f32 score,
 * i32 length, bytes) checked against the file size; *blob = the bytes the pieces need, NULs included. */
static dk_status dk_llama2c_check(const char *raw, size_t size, int n_vocab, const char *path, size_t *blob,
                                  dk_err *e) {
    size_t o = 4;
    int32_t max_len;
    *blob = 0;
    if (size < 4)
        return dk_fail(e, DK_ERR_FORMAT, "%s: truncated tokenizer (%zu bytes, no header)", path, size);
    memcpy(&max_len, raw, 4);
    if (max_len <= 0 || max_len > (1 << 20))
        return dk_fail(e, DK_ERR_FORMAT, "%s: bad max_token_length %d in header", path, max_len);
    for (int i = 0; i < n_vocab; i++) {
        int32_t L;
        if (size - o < 8)
            return dk_fail(e, DK_ERR_FORMAT, "%s: truncated at token %d of %d (offset %zu)", path, i, n_vocab,
                           o);
        memcpy(&L, raw + o + 4, 4);
        if (L < 0 || L > max_len || (size_t)L > size - o - 8)
            return dk_fail(e, DK_ERR_FORMAT,
                           "%s: token %d has bad length %d (max_token_length %d, %zu bytes left)", path, i, L,
                           max_len, size - o - 8);
        o += 8 + (size_t)L;
        *blob += (size_t)L + 1;
    }
    if (o != size)
        return dk_fail(e, DK_ERR_FORMAT, "%s: %zu trailing bytes after %d tokens (n_vocab mismatch?)", path,
                       size - o, n_vocab);
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
            if (!nr) {
                free(raw);
                fclose(f);
                return dk_fail(e, DK_ERR_NOMEM, "%s: out of memory", path);
            }
            raw = nr;
        }
        size_t r = fread(raw + size, 1, cap - size, f);
        size += r;
        if (r == 0) break;
    }
    bool rerr = ferror(f);
    fclose(f);
    if (rerr) {
        free(raw);
        return dk_fail(e, DK_ERR_IO, "%s: read error", path);
    }

    /* pass 1: validate and size; pass 2: fill */
    size_t blob;
    dk_status st = dk_llama2c_check(raw, size, n_vocab, path, &blob, e);
    if (st) goto done;
    dk_tokenizer *t;
    st = dk_tokenizer_alloc(n_vocab, blob, &t, path, e);
    if (st) goto done;
    t->kind = DK_TOKENIZER_KIND_LLAMA2C;
    t->add_bos = true;
    size_t o = 4, bo = 0;
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
    if (has_u2581 && !has_space) {
        memcpy(t->space, DK_SPM_SPACE, 4);
        t->space_len = 3;
    } else {
        t->space[0] = ' ';
        t->space[1] = 0;
        t->space_len = 1;
    }
    t->bos = n_vocab > 1 ? 1 : -1;
    t->eos = n_vocab > 2 ? 2 : -1;
    t->unk = 0;
    t->add_space_prefix = true; /* llama2.c encode() prepends " " to non-empty text */
    st = dk_tokenizer_finish(t, path, e);
    if (st) {
        dk_tokenizer_free(t);
        goto done;
    }
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
    int32_t left;  /* symbol index (= position order, so lower is further left) */
    uint32_t size; /* bytes of the merged span */
} dk_bigram;

/* max-heap order: higher score first, then leftmost */
static bool dk_bigram_before(const void *pa, const void *pb) {
    const dk_bigram *a = pa, *b = pb;
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

/* Symbols as a doubly linked list over spans of the normalised text. */
typedef struct {
    const char *text;
    uint32_t *start; /* (n_sym) byte offset in text */
    uint32_t *n;     /* (n_sym) bytes; 0 once merged into its left neighbour */
    int32_t *prev;   /* (n_sym) -1 at the start */
    int32_t *next;   /* (n_sym) -1 at the end */
    uint8_t *frozen; /* (n_sym) user-defined pieces never merge */
} dk_symbols;

static bool dk_try_bigram(const dk_tokenizer *t, const dk_symbols *s, int32_t l, dk_heap *h) {
    if (l < 0) return true;
    int32_t r = s->next[l];
    if (r < 0 || s->frozen[l] || s->frozen[r]) return true;
    uint32_t size = s->n[l] + s->n[r];
    int32_t id = dk_piece_map_get(t, &t->merge, s->text + s->start[l], size);
    if (id < 0) return true;
    dk_bigram b = {t->scores[id], l, size};
    return dk_heap_push(h, &b);
}

static uint32_t dk_utf8_len(unsigned char c) {
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[c >> 4];
}

/* SentencePiece BPE over the checked text (dk_tokenizer_encode): normalise, split into symbols,
 * merge the best-scoring adjacent pair first, then map the symbols to ids (byte fallback). */
dk_status dk_spm_encode(const dk_tokenizer *t, const char *text, size_t len, bool add_bos, int32_t **ids,
                        int *n_ids, dk_err *e) {
    /* 1. normalise */
    size_t b = 0, end = len;
    if (t->remove_extra_ws) {
        while (b < end && text[b] == ' ') b++;
        while (end > b && text[end - 1] == ' ') end--;
    }
    char *norm = malloc((end - b + 1) * t->space_len + 1);
    int32_t *out = malloc(sizeof(int32_t) *
                          ((end - b + 1) * 4 + 2)); /* <= 4 byte tokens per input byte + prefix + BOS */
    dk_symbols s = {0};
    dk_heap h = {.size = sizeof(dk_bigram), .before = dk_bigram_before};
    dk_status st = DK_OK;
    if (!norm || !out) {
        st = dk_fail(e, DK_ERR_NOMEM, "tokenizer: out of memory for %zu bytes of text", len);
        goto done;
    }
    size_t nn = 0;
    if (end > b && t->add_space_prefix) {
        memcpy(norm + nn, t->space, t->space_len);
        nn += t->space_len;
    }
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
    if (nn == 0) {
        free(norm);
        *ids = out;
        *n_ids = n_out;
        return DK_OK;
    }

    /* 2. split into characters (user-defined pieces whole) */
    s.text = norm;
    s.start = malloc(sizeof(uint32_t) * nn);
    s.n = malloc(sizeof(uint32_t) * nn);
    s.prev = malloc(sizeof(int32_t) * nn);
    s.next = malloc(sizeof(int32_t) * nn);
    s.frozen = malloc(nn);
    if (!s.start || !s.n || !s.prev || !s.next || !s.frozen) {
        st = dk_fail(e, DK_ERR_NOMEM, "tokenizer: out of memory for %zu symbols", nn);
        goto done;
    }
    int32_t n_sym = 0;
    for (size_t i = 0; i < nn;) {
        uint32_t L = 0;
        bool fz = false;
        if (t->max_user_len) {
            uint32_t m = t->max_user_len < nn - i ? t->max_user_len : (uint32_t)(nn - i);
            for (; m > 0; m--)
                if (dk_piece_map_get(t, &t->user, norm + i, m) >= 0) {
                    L = m;
                    fz = true;
                    break;
                }
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
        dk_bigram bg;
        dk_heap_pop(&h, &bg);
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
        if (id >= 0) {
            out[n_out++] = id;
            continue;
        }
        bool bytes = true;
        for (uint32_t k = 0; k < s.n[i]; k++)
            if (t->byte_id[(unsigned char)norm[s.start[i] + k]] < 0) bytes = false;
        if (bytes) {
            for (uint32_t k = 0; k < s.n[i]; k++)
                out[n_out++] = t->byte_id[(unsigned char)norm[s.start[i] + k]];
        } else if (t->unk >= 0) {
            out[n_out++] = t->unk;
        } else {
            st = dk_fail(e, DK_ERR_UNSUPPORTED,
                         "tokenizer: text byte offset %u: character not in the vocabulary, which has no byte "
                         "or unknown tokens",
                         s.start[i]);
            goto done;
        }
    }
    int32_t *shrunk = realloc(out, sizeof(int32_t) *
                                       (size_t)(n_out ? n_out : 1)); /* worst case was 16 B per text byte */
    *ids = shrunk ? shrunk : out;
    *n_ids = n_out;
    out = NULL; /* the caller's now */
    goto done;
oom:
    st = dk_fail(e, DK_ERR_NOMEM, "tokenizer: out of memory while merging %zu bytes", nn);
done:
    DK_FREE_ALL(norm, out, s.start, s.n, s.prev, s.next, s.frozen);
    dk_heap_free(&h);
    return st;
}
