/* bootstrap.h — seeded percentile bootstrap confidence intervals over samples.
 *
 * Data come in strata (e.g. one per cell or per task); each resample draws, with replacement,
 * as many samples from each stratum as it holds, so strata keep their sizes. A sample is a pair
 * (num, den); den NULL means den = 1 for every sample (then a ratio of sums is a mean).
 *   DK_BOOT_POOLED          stat = sum(num) / sum(den) over all strata pooled
 *                           (mean score; speedup = sum dense time / sum method time)
 *   DK_BOOT_MEAN_OF_STRATA  stat = mean over non-empty strata of sum(num_k) / sum(den_k)
 *                           (the "Avg" column: the mean of per-task means)
 * Clusters: a stratum may give each sample a cluster id (e.g. samples that share one context:
 * RULER's fixed haystack at one length and depth); a resample then draws as many CLUSTERS as the
 * stratum holds, with replacement, each with all its samples (the cluster bootstrap). Without
 * ids every sample is its own cluster, which is the i.i.d. bootstrap, draw for draw.
 * The interval is the percentile interval: the (1-level)/2 and (1+level)/2 quantiles (linear
 * interpolation between order statistics, Hyndman–Fan type 7) of n_boot resampled stats.
 * Deterministic: the same data, n_boot and seed give the same interval on every machine
 * (splitmix64 generator, unbiased bounded draws). */
#ifndef DK_BOOTSTRAP_H
#define DK_BOOTSTRAP_H

#include "dk_common.h"
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const double *num; /* (n) */
    const double *den; /* (n) or NULL = all ones */
    size_t n;
    const int64_t *cluster; /* (n) or NULL = each sample its own cluster; equal ids resample together */
} dk_boot_stratum;

typedef enum {
    DK_BOOT_POOLED = 0,
    DK_BOOT_MEAN_OF_STRATA,
} dk_boot_stat;

typedef struct {
    double est;    /* the statistic on the data; NAN when there are no samples */
    double lo, hi; /* percentile interval; NAN when n_boot = 0 or no samples */
} dk_ci;

/* The point estimate only. */
double dk_boot_estimate(const dk_boot_stratum *st, size_t n_st, dk_boot_stat stat);

/* n_boot >= 0 resamples (0: est only); level in (0,1). DK_ERR_ARG for a bad level or n_boot,
 * DK_ERR_NOMEM. */
dk_status dk_bootstrap_ci(const dk_boot_stratum *st, size_t n_st, dk_boot_stat stat, int n_boot,
                          uint64_t seed, double level, dk_ci *out, dk_err *e);

/* Paired comparison of two methods on the same samples: d_i = a_i - b_i (NAN pairs skipped),
 * est = mean d, [lo, hi] its percentile interval over n_boot resamples of the pairs (of their
 * clusters when cluster != NULL), p = the two-sided bootstrap p-value of "mean d = 0":
 * (1 + #{b : |d*_b - est| >= |est|}) / (n_boot + 1) (the resampled means centred on est, i.e.
 * under the null). Identical inputs give est = 0, lo = hi = 0 and p = 1. n_used = pairs used.
 * n_boot = 0: est only (lo, hi, p NAN). */
typedef struct {
    double est, lo, hi, p;
    size_t n_used;
} dk_boot_diff;

dk_status dk_bootstrap_paired(const double *a, const double *b, const int64_t *cluster, size_t n, int n_boot,
                              uint64_t seed, double level, dk_boot_diff *out, dk_err *e);

/* A per-quantity seed: seed mixed with a label (FNV-1a), so one group's interval does not
 * change when other groups are added to a report. */
uint64_t dk_bootstrap_seed(uint64_t seed, const char *label);

#endif
