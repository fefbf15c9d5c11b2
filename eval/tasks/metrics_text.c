/* metrics_text.c — the code-point string layer under metrics.c: UTF-8 <-> code points and the
 * Python str operations the official metrics use (lower, split, strip, `in`), with Python 3.11's
 * Unicode properties from metrics_unicode. */
#include "metrics_text.h"
#include "metrics_unicode.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int uni_in(const dk_uni_range *r, int n, uint32_t cp) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < r[mid].lo) hi = mid - 1;
        else if (cp > r[mid].hi) lo = mid + 1;
        else return 1;
    }
    return 0;
}
int dk_uni_is_space(uint32_t c) { return uni_in(dk_uni_space, dk_uni_space_n, c); }
int dk_uni_is_word(uint32_t c) { return uni_in(dk_uni_word, dk_uni_word_n, c); }
int dk_uni_is_decimal(uint32_t c) { return uni_in(dk_uni_decimal, dk_uni_decimal_n, c); }
static int is_cased(uint32_t c) { return uni_in(dk_uni_cased, dk_uni_cased_n, c); }
static int is_case_ignorable(uint32_t c) { return uni_in(dk_uni_case_ignorable, dk_uni_case_ignorable_n, c); }

static const dk_uni_lower *lower_find(uint32_t cp) {
    int lo = 0, hi = dk_uni_lower_map_n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < dk_uni_lower_map[mid].cp) hi = mid - 1;
        else if (cp > dk_uni_lower_map[mid].cp) lo = mid + 1;
        else return &dk_uni_lower_map[mid];
    }
    return NULL;
}

/* UTF-8 -> code points; each invalid byte becomes U+FFFD. Returns 0 on OOM. */
int dk_u32_from_utf8(const char *s, dk_u32s *out) {
    size_t len = strlen(s);
    out->c = malloc((len + 1) * sizeof(uint32_t));
    out->n = 0;
    if (!out->c) return 0;
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        uint32_t c = *p;
        if (c < 0x80) {
            out->c[out->n++] = c;
            p++;
            continue;
        }
        int k = (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
        if (k < 0 || end - p <= k) {
            out->c[out->n++] = 0xFFFD;
            p++;
            continue;
        }
        uint32_t v = c & (0x3F >> k);
        int ok = 1;
        for (int i = 1; i <= k; i++) {
            if ((p[i] & 0xC0) != 0x80) {
                ok = 0;
                break;
            }
            v = (v << 6) | (p[i] & 0x3F);
        }
        static const uint32_t minv[4] = {0, 0x80, 0x800, 0x10000};
        if (!ok || v < minv[k] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
            out->c[out->n++] = 0xFFFD;
            p++;
            continue;
        }
        out->c[out->n++] = v;
        p += k + 1;
    }
    return 1;
}

char *dk_u32_to_utf8(const uint32_t *c, size_t n) {
    char *s = malloc(4 * n + 1), *q = s;
    if (!s) return NULL;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = c[i];
        if (v < 0x80) *q++ = (char)v;
        else if (v < 0x800) {
            *q++ = (char)(0xC0 | (v >> 6));
            *q++ = (char)(0x80 | (v & 0x3F));
        } else if (v < 0x10000) {
            *q++ = (char)(0xE0 | (v >> 12));
            *q++ = (char)(0x80 | ((v >> 6) & 0x3F));
            *q++ = (char)(0x80 | (v & 0x3F));
        } else {
            *q++ = (char)(0xF0 | (v >> 18));
            *q++ = (char)(0x80 | ((v >> 12) & 0x3F));
            *q++ = (char)(0x80 | ((v >> 6) & 0x3F));
            *q++ = (char)(0x80 | (v & 0x3F));
        }
    }
    *q = 0;
    return s;
}

/* Python str.lower(): full mapping (U+0130 -> "i\u0307") and the final-sigma rule. */
int dk_u32_lower(const dk_u32s *in, dk_u32s *out) {
    out->c = malloc((3 * in->n + 1) * sizeof(uint32_t));
    out->n = 0;
    if (!out->c) return 0;
    for (size_t i = 0; i < in->n; i++) {
        uint32_t c = in->c[i];
        if (c == 0x3A3) {
            size_t j = i;
            while (j > 0 && is_case_ignorable(in->c[j - 1])) j--;
            int fin = j > 0 && is_cased(in->c[j - 1]);
            if (fin) {
                size_t k = i + 1;
                while (k < in->n && is_case_ignorable(in->c[k])) k++;
                fin = k == in->n || !is_cased(in->c[k]);
            }
            out->c[out->n++] = fin ? 0x3C2 : 0x3C3;
            continue;
        }
        const dk_uni_lower *m = c < 0x41 ? NULL : lower_find(c);
        if (!m) {
            out->c[out->n++] = c;
            continue;
        }
        for (int k = 0; k < 3 && m->to[k]; k++) out->c[out->n++] = m->to[k];
    }
    return 1;
}

/* Python str.split() with no argument: tokens as [start, end) index pairs into s.
 * Returns the count, or -1 on OOM; *tok is malloc'd (2 entries per token). */
long dk_u32_split_ws(const uint32_t *s, size_t n, size_t **tok) {
    size_t cap = 16, nt = 0;
    size_t *t = malloc(cap * 2 * sizeof(size_t));
    if (!t) return -1;
    size_t i = 0;
    for (;;) {
        while (i < n && dk_uni_is_space(s[i])) i++;
        if (i >= n) break;
        size_t st = i;
        while (i < n && !dk_uni_is_space(s[i])) i++;
        if (nt == cap) {
            size_t *nt2 = realloc(t, (cap *= 2) * 2 * sizeof(size_t));
            if (!nt2) {
                free(t);
                return -1;
            }
            t = nt2;
        }
        t[2 * nt] = st;
        t[2 * nt + 1] = i;
        nt++;
    }
    *tok = t;
    return (long)nt;
}

/* Python str.strip() bounds. */
void dk_u32_strip(const uint32_t *s, size_t n, size_t *b, size_t *e) {
    size_t i = 0, j = n;
    while (i < j && dk_uni_is_space(s[i])) i++;
    while (j > i && dk_uni_is_space(s[j - 1])) j--;
    *b = i;
    *e = j;
}

/* Python `needle in hay` on code points (empty needle is always found). */
int dk_u32_contains(const uint32_t *h, size_t hn, const uint32_t *nd, size_t nn) {
    if (nn == 0) return 1;
    if (nn > hn) return 0;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == nd[0] && !memcmp(h + i, nd, nn * sizeof(uint32_t))) return 1;
    return 0;
}
