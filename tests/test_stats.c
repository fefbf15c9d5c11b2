/* test_stats.c — cluster bootstrap and paired bootstrap comparisons (eval/bootstrap.h) on
 * synthetic rows: shared contexts widen the interval, identical methods compare as equal,
 * singleton clusters reproduce the i.i.d. bootstrap draw for draw. */
#include "support/dk_test.h"
#include "bootstrap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* 12 contexts x 4 samples: a context is answered (100) or not (0) as a whole, as RULER's fixed
 * haystack makes a needle depth found or missed for every sample that shares it. */
#define N_CTX 12
#define PER 4
static void rows(double *score, int64_t *cluster) {
    static const int found[N_CTX] = {1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1};
    for (int c = 0; c < N_CTX; c++)
        for (int k = 0; k < PER; k++) {
            score[c * PER + k] = found[c] ? 100 : 0;
            cluster[c * PER + k] = 1000 + 7 * c; /* any ids */
        }
}

START_TEST(test_cluster_wider) {
    double score[N_CTX * PER];
    int64_t cl[N_CTX * PER];
    rows(score, cl);
    dk_err e = {{0}};
    dk_boot_stratum iid = {score, NULL, N_CTX * PER, NULL}, clu = {score, NULL, N_CTX * PER, cl};
    dk_ci a, b;
    ck_assert_int_eq(dk_bootstrap_ci(&iid, 1, DK_BOOT_POOLED, 4000, 7, 0.95, &a, &e), DK_OK);
    ck_assert_int_eq(dk_bootstrap_ci(&clu, 1, DK_BOOT_POOLED, 4000, 7, 0.95, &b, &e), DK_OK);
    ck_assert(a.est == 75.0 && b.est == 75.0);
    printf("i.i.d. [%.1f, %.1f] vs cluster [%.1f, %.1f]\n", a.lo, a.hi, b.lo, b.hi);
    /* the standard error of the mean grows by sqrt(cluster size) = 2 when clusters are perfectly
     * correlated: the interval is about twice as wide */
    double wa = a.hi - a.lo, wb = b.hi - b.lo;
    ck_assert_msg(wb > 1.6 * wa && wb < 2.5 * wa, "widths %g vs %g", wa, wb);
    /* every sample its own cluster = the i.i.d. bootstrap, draw for draw */
    int64_t own[N_CTX * PER];
    for (int i = 0; i < N_CTX * PER; i++) own[i] = i;
    dk_boot_stratum single = {score, NULL, N_CTX * PER, own};
    dk_ci c;
    ck_assert_int_eq(dk_bootstrap_ci(&single, 1, DK_BOOT_POOLED, 4000, 7, 0.95, &c, &e), DK_OK);
    ck_assert(c.est == a.est && c.lo == a.lo && c.hi == a.hi);
    /* a cluster bootstrap with one cluster per stratum cannot vary */
    dk_boot_stratum one = {score, NULL, PER, cl};
    ck_assert_int_eq(dk_bootstrap_ci(&one, 1, DK_BOOT_POOLED, 500, 7, 0.95, &c, &e), DK_OK);
    ck_assert(c.lo == 100 && c.hi == 100);
}
END_TEST

START_TEST(test_paired) {
    double score[N_CTX * PER], other[N_CTX * PER];
    int64_t cl[N_CTX * PER];
    rows(score, cl);
    dk_err e = {{0}};
    dk_boot_diff d;
    /* identical methods: difference 0, interval [0, 0], p = 1 (with and without clusters) */
    ck_assert_int_eq(dk_bootstrap_paired(score, score, NULL, N_CTX * PER, 2000, 3, 0.95, &d, &e), DK_OK);
    ck_assert(d.est == 0 && d.lo == 0 && d.hi == 0 && d.p == 1.0);
    ck_assert_uint_eq(d.n_used, N_CTX * PER);
    ck_assert_int_eq(dk_bootstrap_paired(score, score, cl, N_CTX * PER, 2000, 3, 0.95, &d, &e), DK_OK);
    ck_assert(d.est == 0 && d.lo == 0 && d.hi == 0 && d.p == 1.0);
    /* a method that loses every context: difference 75, p at its floor 1/(B+1) */
    for (int i = 0; i < N_CTX * PER; i++) other[i] = 0;
    ck_assert_int_eq(dk_bootstrap_paired(score, other, cl, N_CTX * PER, 999, 3, 0.95, &d, &e), DK_OK);
    ck_assert(d.est == 75.0 && d.lo > 0 && d.hi <= 100);
    ck_assert_double_eq_tol(d.p, 1.0 / 1000, 1e-12);
    /* one context lost: small difference, not significant */
    for (int i = 0; i < N_CTX * PER; i++) other[i] = score[i];
    for (int k = 0; k < PER; k++) other[k] = 0;
    ck_assert_int_eq(dk_bootstrap_paired(score, other, cl, N_CTX * PER, 2000, 3, 0.95, &d, &e), DK_OK);
    ck_assert_double_eq_tol(d.est, 100.0 / N_CTX, 1e-9);
    ck_assert(d.p > 0.05 && d.lo <= 0);
    /* NAN pairs are skipped */
    other[5] = NAN;
    ck_assert_int_eq(dk_bootstrap_paired(score, other, NULL, N_CTX * PER, 0, 3, 0.95, &d, &e), DK_OK);
    ck_assert_uint_eq(d.n_used, N_CTX * PER - 1);
    ck_assert(isnan(d.lo) && isnan(d.p));
    ck_assert_int_eq(dk_bootstrap_paired(score, other, NULL, 4, 10, 3, 1.5, &d, &e), DK_ERR_ARG);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_cluster_wider);
    tcase_add_test(tc, test_paired);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return dk_test_main(suite()); }
