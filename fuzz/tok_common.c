/* tok_common.c — see tok_common.h. */
#include "tok_common.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

static void decode_pieces(const char *target, const dk_tokenizer *t, const int32_t *ids, int n) {
    int32_t prev = -1;
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        const char *p = dk_tokenizer_decode_piece(t, prev, ids[i], &len);
        dk_fuzz_assert(p != NULL, target, "decode_piece returned NULL");
        if (len) {
            volatile char c = p[0] ^ p[len - 1];
            (void)c;
        }
        prev = ids[i];
    }
}

char *dk_fuzz_tok_round(const char *target, const dk_tokenizer *t, const char *text, size_t len, bool add_bos,
                        size_t *out_len) {
    int32_t *ids = NULL;
    int n = 0;
    dk_err e = {{0}};
    if (add_bos && dk_tokenizer_bos(t) < 0) add_bos = false;
    dk_status st = dk_tokenizer_encode(t, text, len, add_bos, &ids, &n, &e);
    dk_fuzz_check_err(target, st, &e);
    if (st != DK_OK) {
        free(ids);
        return NULL;
    }
    int nv = dk_tokenizer_n_vocab(t);
    for (int i = 0; i < n; i++)
        dk_fuzz_assert(ids[i] >= 0 && ids[i] < nv, target, "encode produced an id out of range");
    dk_fuzz_assert(len > 0 || n == (add_bos ? 1 : 0), target, "empty text gave tokens");
    decode_pieces(target, t, ids, n);
    char *out = NULL;
    st = dk_tokenizer_decode(t, ids, n, &out, out_len, &e);
    dk_fuzz_check_err(target, st, &e);
    dk_fuzz_assert(st == DK_OK, target, "decode of encoded ids failed");
    dk_fuzz_assert(strlen(out) <= *out_len && out[*out_len] == 0, target, "decoded text not NUL-terminated");
    free(ids);
    return out;
}

void dk_fuzz_tok_decode_ids(const char *target, const dk_tokenizer *t, const uint8_t *data, size_t size) {
    int n = (int)(size / 2);
    int32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
    dk_fuzz_assert(ids != NULL, target, "out of memory");
    uint32_t mod = (uint32_t)dk_tokenizer_n_vocab(t) + 2;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        ids[i] = (int32_t)((data[2 * i] | (uint32_t)data[2 * i + 1] << 8) % mod);
        if (ids[i] >= dk_tokenizer_n_vocab(t)) bad = 1;
    }
    decode_pieces(target, t, ids, n);
    char *out = NULL;
    size_t len = 0;
    dk_err e = {{0}};
    dk_status st = dk_tokenizer_decode(t, ids, n, &out, &len, &e);
    dk_fuzz_check_err(target, st, &e);
    dk_fuzz_assert((st == DK_OK) == !bad, target, "decode accepted an out-of-range id or refused valid ids");
    free(out);
    free(ids);
}

bool dk_fuzz_utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            k = 1;
            cp = c & 0x1F;
            min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2;
            cp = c & 0x0F;
            min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            k = 3;
            cp = c & 0x07;
            min = 0x10000;
        } else return false;
        if (n - i <= k) return false; /* truncated */
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (p[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += k + 1;
    }
    return true;
}
