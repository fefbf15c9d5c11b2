/* bootstrap.c — stratified percentile bootstrap (definitions in bootstrap.h). */
#include "bootstrap.h"

#include <math.h>
#include <stdlib.h>

/* ---- generator: splitmix64 (Steele, Lea, Flood 2014) ---- */

static uint64_t dk_boot_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n), n >= 1, without modulo bias (Lemire 2019, multiply and reject). */
static size_t dk_boot_below(uint64_t *s, size_t n) {
    uint64_t bound = (uint64_t)n;
    unsigned __int128 m = (unsigned __int128)dk_boot_next(s) * bound;
    uint64_t lo = (uint64_t)m;
    if (lo < bound) {
        uint64_t t = (0 - bound) % bound;
        while (lo < t) {
            m = (unsigned __int128)dk_boot_next(s) * bound;
            lo = (uint64_t)m;
        }
    }
    return (size_t)(m >> 64);
}

uint64_t dk_bootstrap_seed(uint64_t seed, const char *label) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)(label ? label : ""); *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    uint64_t s = seed ^ h;
    return dk_boot_next(&s);
}

/* ---- statistic ---- */

/* idx NULL: the data as is; else idx holds, stratum after stratum, the resampled positions. */
static double dk_boot_stat_eval(const dk_boot_stratum *st, size_t n_st, dk_boot_stat stat, const size_t *idx) {
    double tn = 0, td = 0, sum_r = 0;
    size_t k = 0, off = 0;
    for (size_t s = 0; s < n_st; s++) {
        double sn = 0, sd = 0;
        for (size_t i = 0; i < st[s].n; i++) {
            size_t j = idx ? idx[off + i] : i;
            sn += st[s].num[j];
            sd += st[s].den ? st[s].den[j] : 1.0;
        }
        off += st[s].n;
        if (!st[s].n) continue;
        tn += sn; td += sd;
        sum_r += sn / sd;
        k++;
    }
    if (!k) return NAN;
    return stat == DK_BOOT_POOLED ? tn / td : sum_r / (double)k;
}

double dk_boot_estimate(const dk_boot_stratum *st, size_t n_st, dk_boot_stat stat) {
    return dk_boot_stat_eval(st, n_st, stat, NULL);
}

static int dk_boot_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Type-7 quantile of sorted v (n >= 1). */
static double dk_boot_quantile(const double *v, size_t n, double p) {
    double h = (double)(n - 1) * p;
    size_t l = (size_t)floor(h);
    if (l + 1 >= n) return v[n - 1];
    return v[l] + (h - (double)l) * (v[l + 1] - v[l]);
}

dk_status dk_bootstrap_ci(const dk_boot_stratum *st, size_t n_st, dk_boot_stat stat, int n_boot, uint64_t seed,
                          double level, dk_ci *out, dk_err *e) {
    if (!(level > 0 && level < 1)) return dk_fail(e, DK_ERR_ARG, "bootstrap level %g is outside (0,1)", level);
    if (n_boot < 0) return dk_fail(e, DK_ERR_ARG, "bootstrap resamples %d < 0", n_boot);
    out->est = dk_boot_stat_eval(st, n_st, stat, NULL);
    out->lo = out->hi = NAN;
    size_t total = 0;
    for (size_t s = 0; s < n_st; s++) total += st[s].n;
    if (n_boot == 0 || total == 0) return DK_OK;
    size_t *idx = malloc(total * sizeof *idx);
    double *v = malloc((size_t)n_boot * sizeof *v);
    if (!idx || !v) { free(idx); free(v); return dk_fail(e, DK_ERR_NOMEM, "bootstrap: out of memory"); }
    uint64_t rng = seed;
    for (int b = 0; b < n_boot; b++) {
        size_t off = 0;
        for (size_t s = 0; s < n_st; s++) {
            for (size_t i = 0; i < st[s].n; i++) idx[off + i] = dk_boot_below(&rng, st[s].n);
            off += st[s].n;
        }
        v[b] = dk_boot_stat_eval(st, n_st, stat, idx);
    }
    qsort(v, (size_t)n_boot, sizeof *v, dk_boot_cmp);
    out->lo = dk_boot_quantile(v, (size_t)n_boot, (1 - level) / 2);
    out->hi = dk_boot_quantile(v, (size_t)n_boot, (1 + level) / 2);
    free(idx);
    free(v);
    return DK_OK;
}
