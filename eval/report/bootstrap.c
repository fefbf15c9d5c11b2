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

/* ---- statistic over clusters ----
 * Each stratum is reduced to its clusters' sums (in order of first appearance); a resample draws
 * k clusters of a stratum of k with replacement and adds their sums. Singleton clusters make
 * this the per-sample bootstrap with the same draws and the same additions. */

typedef struct {
    double *sn, *sd; /* (k) per cluster sums of num and den */
    size_t k;
} dk_boot_groups;

static void dk_boot_groups_free(dk_boot_groups *g, size_t n_st) {
    if (!g) return;
    for (size_t s = 0; s < n_st; s++) {
        free(g[s].sn);
        free(g[s].sd);
    }
    free(g);
}

static int dk_boot_cmp_i64(const void *a, const void *b) {
    const int64_t *x = a, *y = b; /* (id, first position) pairs: by id */
    return (x[0] > y[0]) - (x[0] < y[0]);
}

/* Builds per-stratum cluster sums; NULL when out of memory. */
static dk_boot_groups *dk_boot_groups_make(const dk_boot_stratum *st, size_t n_st) {
    dk_boot_groups *g = calloc(n_st ? n_st : 1, sizeof *g);
    if (!g) return NULL;
    for (size_t s = 0; s < n_st; s++) {
        size_t n = st[s].n;
        g[s].sn = malloc((n ? n : 1) * sizeof(double));
        g[s].sd = malloc((n ? n : 1) * sizeof(double));
        if (!g[s].sn || !g[s].sd) {
            dk_boot_groups_free(g, n_st);
            return NULL;
        }
        if (!st[s].cluster) {
            for (size_t i = 0; i < n; i++) {
                g[s].sn[i] = st[s].num[i];
                g[s].sd[i] = st[s].den ? st[s].den[i] : 1.0;
            }
            g[s].k = n;
            continue;
        }
        /* cluster index of each sample: sort (id, position), number ids by first appearance */
        int64_t *pair = malloc((n ? n : 1) * 2 * sizeof *pair);
        size_t *slot = malloc((n ? n : 1) * sizeof *slot), *first = malloc((n ? n : 1) * sizeof *first);
        if (!pair || !slot || !first) {
            free(pair);
            free(slot);
            free(first);
            dk_boot_groups_free(g, n_st);
            return NULL;
        }
        for (size_t i = 0; i < n; i++) {
            pair[2 * i] = st[s].cluster[i];
            pair[2 * i + 1] = (int64_t)i;
        }
        qsort(pair, n, 2 * sizeof *pair, dk_boot_cmp_i64);
        /* within equal ids qsort's order is unspecified: the group's first position is its minimum */
        for (size_t i = 0; i < n;) {
            size_t j = i;
            int64_t lo = pair[2 * i + 1];
            while (j < n && pair[2 * j] == pair[2 * i]) {
                if (pair[2 * j + 1] < lo) lo = pair[2 * j + 1];
                j++;
            }
            for (size_t t = i; t < j; t++) first[pair[2 * t + 1]] = (size_t)lo;
            i = j;
        }
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (first[i] == i) {
                slot[i] = k;
                g[s].sn[k] = 0;
                g[s].sd[k] = 0;
                k++;
            } else slot[i] = slot[first[i]];
            g[s].sn[slot[i]] += st[s].num[i];
            g[s].sd[slot[i]] += st[s].den ? st[s].den[i] : 1.0;
        }
        g[s].k = k;
        free(pair);
        free(slot);
        free(first);
    }
    return g;
}

/* rng NULL: the data as is; else one resample drawn from rng. */
static double dk_boot_stat_eval(const dk_boot_groups *g, size_t n_st, dk_boot_stat stat, uint64_t *rng) {
    double tn = 0, td = 0, sum_r = 0;
    size_t k = 0;
    for (size_t s = 0; s < n_st; s++) {
        double sn = 0, sd = 0;
        for (size_t i = 0; i < g[s].k; i++) {
            size_t j = rng ? dk_boot_below(rng, g[s].k) : i;
            sn += g[s].sn[j];
            sd += g[s].sd[j];
        }
        if (!g[s].k) continue;
        tn += sn;
        td += sd;
        sum_r += sn / sd;
        k++;
    }
    if (!k) return NAN;
    return stat == DK_BOOT_POOLED ? tn / td : sum_r / (double)k;
}

double dk_boot_estimate(const dk_boot_stratum *st, size_t n_st, dk_boot_stat stat) {
    dk_boot_groups *g = dk_boot_groups_make(st, n_st);
    if (!g) return NAN;
    double v = dk_boot_stat_eval(g, n_st, stat, NULL);
    dk_boot_groups_free(g, n_st);
    return v;
}

/* Type-7 quantile of sorted v (n >= 1). */
static double dk_boot_quantile(const double *v, size_t n, double p) {
    double h = (double)(n - 1) * p;
    size_t l = (size_t)floor(h);
    if (l + 1 >= n) return v[n - 1];
    return v[l] + (h - (double)l) * (v[l + 1] - v[l]);
}

/* est and the n_boot resampled statistics (malloc'd in *vals, unsorted; NULL when none). */
static dk_status dk_boot_run(const dk_boot_stratum *st, size_t n_st, dk_boot_stat stat, int n_boot,
                             uint64_t seed, double *est, double **vals, dk_err *e) {
    *vals = NULL;
    dk_boot_groups *g = dk_boot_groups_make(st, n_st);
    if (!g) return dk_fail(e, DK_ERR_NOMEM, "bootstrap: out of memory");
    *est = dk_boot_stat_eval(g, n_st, stat, NULL);
    size_t total = 0;
    for (size_t s = 0; s < n_st; s++) total += g[s].k;
    if (n_boot > 0 && total > 0) {
        double *v = malloc((size_t)n_boot * sizeof *v);
        if (!v) {
            dk_boot_groups_free(g, n_st);
            return dk_fail(e, DK_ERR_NOMEM, "bootstrap: out of memory");
        }
        uint64_t rng = seed;
        for (int b = 0; b < n_boot; b++) v[b] = dk_boot_stat_eval(g, n_st, stat, &rng);
        *vals = v;
    }
    dk_boot_groups_free(g, n_st);
    return DK_OK;
}

dk_status dk_bootstrap_ci(const dk_boot_stratum *st, size_t n_st, dk_boot_stat stat, int n_boot,
                          uint64_t seed, double level, dk_ci *out, dk_err *e) {
    if (!(level > 0 && level < 1))
        return dk_fail(e, DK_ERR_ARG, "bootstrap level %g is outside (0,1)", level);
    if (n_boot < 0) return dk_fail(e, DK_ERR_ARG, "bootstrap resamples %d < 0", n_boot);
    out->lo = out->hi = NAN;
    double *v = NULL;
    dk_status rc = dk_boot_run(st, n_st, stat, n_boot, seed, &out->est, &v, e);
    if (rc != DK_OK || !v) return rc;
    qsort(v, (size_t)n_boot, sizeof *v, dk_cmp_f64);
    out->lo = dk_boot_quantile(v, (size_t)n_boot, (1 - level) / 2);
    out->hi = dk_boot_quantile(v, (size_t)n_boot, (1 + level) / 2);
    free(v);
    return DK_OK;
}

dk_status dk_bootstrap_paired(const double *a, const double *b, const int64_t *cluster, size_t n, int n_boot,
                              uint64_t seed, double level, dk_boot_diff *out, dk_err *e) {
    *out = (dk_boot_diff){NAN, NAN, NAN, NAN, 0};
    if (!(level > 0 && level < 1))
        return dk_fail(e, DK_ERR_ARG, "bootstrap level %g is outside (0,1)", level);
    if (n_boot < 0) return dk_fail(e, DK_ERR_ARG, "bootstrap resamples %d < 0", n_boot);
    double *d = malloc((n ? n : 1) * sizeof *d);
    int64_t *cl = cluster ? malloc((n ? n : 1) * sizeof *cl) : NULL;
    if (!d || (cluster && !cl)) {
        free(d);
        free(cl);
        return dk_fail(e, DK_ERR_NOMEM, "bootstrap: out of memory");
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) continue;
        d[m] = a[i] - b[i];
        if (cl) cl[m] = cluster[i];
        m++;
    }
    out->n_used = m;
    dk_boot_stratum st = {d, NULL, m, cl};
    double *v = NULL;
    dk_status rc = dk_boot_run(&st, 1, DK_BOOT_POOLED, n_boot, seed, &out->est, &v, e);
    if (rc == DK_OK && v) {
        size_t far = 0;
        for (int k = 0; k < n_boot; k++) far += fabs(v[k] - out->est) >= fabs(out->est);
        out->p = (1.0 + (double)far) / ((double)n_boot + 1.0);
        qsort(v, (size_t)n_boot, sizeof *v, dk_cmp_f64);
        out->lo = dk_boot_quantile(v, (size_t)n_boot, (1 - level) / 2);
        out->hi = dk_boot_quantile(v, (size_t)n_boot, (1 + level) / 2);
    }
    free(v);
    free(d);
    free(cl);
    return rc;
}
