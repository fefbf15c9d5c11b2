/* util.c — clock, comparators, argmax, free list, reading a stream, growable string, binary heap (util.h). */
#include "util.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double dk_time_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void dk_time_fmt_utc(double t_s, const char *fmt, const char *nan_text, char *out, size_t n) {
    if (isnan(t_s)) {
        snprintf(out, n, "%s", nan_text);
        return;
    }
    time_t t = (time_t)t_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, fmt, &tm);
}

int dk_cmp_f32(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int dk_cmp_f64(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int dk_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

void dk_free_all_n(void *const *ptrs, size_t n) {
    for (size_t i = 0; i < n; i++) free(ptrs[i]);
}

char *dk_read_stream(FILE *f, size_t max, size_t *len, bool *bad) {
    size_t cap = 1 << 16, n = 0, r;
    char *s = malloc(cap);
    while (s && (r = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (max && n >= max) {
            free(s);
            s = NULL;
        } else if (cap - n < 2) {
            char *t = realloc(s, cap *= 2);
            if (!t) free(s);
            s = t;
        }
    }
    *bad = ferror(f);
    if (s) s[n] = 0;
    *len = n;
    return s;
}

/* ---- growable string ---- */

bool dk_strbuf_add(dk_strbuf *b, const char *s, size_t n) {
    if (b->oom) return false;
    if (b->cap - b->n < n + 1) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc - b->n < n + 1) nc *= 2;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = true;
            return false;
        }
        b->s = ns;
        b->cap = nc;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
    return true;
}

bool dk_strbuf_adds(dk_strbuf *b, const char *s) { return dk_strbuf_add(b, s, strlen(s)); }

bool dk_strbuf_addf(dk_strbuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) return false;
    if ((size_t)k < sizeof tmp) return dk_strbuf_add(b, tmp, (size_t)k);
    char *big = malloc((size_t)k + 1);
    if (!big) {
        b->oom = true;
        return false;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)k + 1, fmt, ap);
    va_end(ap);
    bool ok = dk_strbuf_add(b, big, (size_t)k);
    free(big);
    return ok;
}

void dk_strbuf_free(dk_strbuf *b) {
    free(b->s);
    memset(b, 0, sizeof *b);
}

/* ---- binary heap ---- */

#define DK_HEAP_AT(h, i) ((h)->v + (i) * (h)->size)

bool dk_heap_push(dk_heap *h, const void *x) {
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 256;
        unsigned char *nv = realloc(h->v, nc * h->size);
        if (!nv) return false;
        h->v = nv;
        h->cap = nc;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!h->before(x, DK_HEAP_AT(h, p))) break;
        memcpy(DK_HEAP_AT(h, i), DK_HEAP_AT(h, p), h->size);
        i = p;
    }
    memcpy(DK_HEAP_AT(h, i), x, h->size);
    return true;
}

void dk_heap_pop(dk_heap *h, void *out) {
    unsigned char last[64];
    memcpy(out, h->v, h->size);
    memcpy(last, DK_HEAP_AT(h, --h->n), h->size);
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && h->before(DK_HEAP_AT(h, c + 1), DK_HEAP_AT(h, c))) c++;
        if (!h->before(DK_HEAP_AT(h, c), last)) break;
        memcpy(DK_HEAP_AT(h, i), DK_HEAP_AT(h, c), h->size);
        i = c;
    }
    if (h->n) memcpy(DK_HEAP_AT(h, i), last, h->size);
}

void dk_heap_free(dk_heap *h) {
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}
