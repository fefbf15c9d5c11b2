/* ruler_int.h — what ruler.c (plans, sizing, driver) and ruler_build.c (prompt text) share: the
 * generator PRNG, the word lists, the generator state and one sample's plan. Not an API (ruler.h is). */
#ifndef DK_RULER_INT_H
#define DK_RULER_INT_H

#include "ruler.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>

/* ---- PRNG: splitmix64 seeding, xoshiro256** stream ---- */

typedef struct {
    uint64_t s[4];
} rng_t;

static inline uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline void rng_seed(rng_t *r, uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}
static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static inline uint64_t rng_next(rng_t *r) {
    uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return res;
}
static inline uint64_t rng_below(rng_t *r, uint64_t n) {
    return n ? rng_next(r) % n : 0;
} /* bias < 2^-40 for our n */
/* Fisher-Yates: a[0..n) in a uniformly random order (from the last element down). */
static inline void rng_shuffle(rng_t *r, int *a, long n) {
    for (long i = n - 1; i > 0; i--) {
        long j = (long)rng_below(r, (uint64_t)i + 1);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}
static inline double rng_unit(rng_t *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

typedef struct {
    char **w; /* (n) */
    int n;
} wordlist;

/* ---- shared generator state ---- */

typedef struct {
    const dk_ruler_params *p;
    const dk_tok_if *tok;
    wordlist essay; /* haystack words (essay haystack) */
    wordlist vocab; /* word source for keys/values/cwe */
    char *text;     /* the haystack text (values must not occur in it) */
    /* qa */
    char **docs;
    int n_docs; /* (n_docs) paragraphs */
    struct {
        char *q;
        int doc;
        char **ans;
        int n_ans;
    } * qas;
    int n_qas;
} gen_ctx;

/* One sample's fixed random choices; ruler_build() turns them into text for haystack size h. */
typedef struct {
    rng_t rng;
    int n_needles;
    char **needle;    /* (n_needles) needle sentences */
    double *nd_depth; /* (n_needles) percent */
    int target;       /* index of the first target needle */
    char **ans;
    int n_ans;
    char query[2048];
    char vtype[16];
    /* vt */
    int n_stmt;
    char **stmt;
    double *st_pos;
    /* cwe / fwe */
    uint64_t shuffle_seed;
    wordlist coded; /* fwe */
    int qa_idx;
    int *doc_perm; /* qa */
} sample_plan;

static inline void rand_value(rng_t *r, dk_ruler_type t, const wordlist *vocab, char *out, size_t n) {
    if (t == DK_RULER_NUMBERS) {
        snprintf(out, n, "%07llu", (unsigned long long)(1000000 + rng_below(r, 9000000)));
    } else if (t == DK_RULER_UUIDS) {
        uint64_t a = rng_next(r), b = rng_next(r);
        snprintf(out, n, "%08llx-%04llx-4%03llx-%04llx-%012llx", (unsigned long long)(a >> 32),
                 (unsigned long long)((a >> 16) & 0xFFFF), (unsigned long long)(a & 0xFFF),
                 (unsigned long long)(0x8000 | ((b >> 48) & 0x3FFF)),
                 (unsigned long long)(b & 0xFFFFFFFFFFFFull));
    } else {
        const char *w1 = vocab->w[rng_below(r, (uint64_t)vocab->n)],
                   *w2 = vocab->w[rng_below(r, (uint64_t)vocab->n)];
        snprintf(out, n, "%s-%s", w1, w2);
    }
}

static inline const char *type_plural(dk_ruler_type t) {
    return t == DK_RULER_NUMBERS ? "numbers" : t == DK_RULER_UUIDS ? "uuids" : "words";
}

/* Builds context c and question q of plan sp for haystack size h (units of the kind's haystack);
 * returns the target needle's offset in c, or -1 (ruler_build.c). */
long ruler_build(const gen_ctx *g, sample_plan *sp, long h, dk_strbuf *c, dk_strbuf *q);

#endif
