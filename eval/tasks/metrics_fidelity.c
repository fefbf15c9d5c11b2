/* metrics_fidelity.c — fidelity against dense on logits (KL, top-1 agreement, answer NLL) and
 * Spearman rank correlation; split from metrics.c, which keeps the LongBench/RULER answer scoring. */
#include "metrics.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- fidelity ---- */

static double log_sum_exp(const float *x, int n, double *mx) {
    double m = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > m) m = x[i];
    double s = 0.0;
    for (int i = 0; i < n; i++) s += exp((double)x[i] - m);
    *mx = m;
    return m + log(s);
}

double dk_metric_kl_logits(const float *p, const float *q, int n) {
    double mp, mq;
    double lzp = log_sum_exp(p, n, &mp), lzq = log_sum_exp(q, n, &mq);
    double kl = 0.0;
    for (int i = 0; i < n; i++) {
        double lp = (double)p[i] - lzp, lq = (double)q[i] - lzq;
        double pi = exp(lp);
        if (pi > 0) kl += pi * (lp - lq);
    }
    return kl < 0 ? 0.0 : kl; /* rounding can leave -1e-17 for identical inputs */
}

int dk_metric_top1_agree(const float *p, const float *q, int n) { return dk_argmax(p, n) == dk_argmax(q, n); }

double dk_metric_mean_kl(const float *dense, const float *method, int n_pos, int n_vocab) {
    if (n_pos <= 0) return 0.0;
    double s = 0.0;
    for (int t = 0; t < n_pos; t++)
        s += dk_metric_kl_logits(dense + (size_t)t * n_vocab, method + (size_t)t * n_vocab, n_vocab);
    return s / n_pos;
}

void dk_metric_answer_fidelity(const float *dense, const float *method, int n_rows, int n_vocab,
                               dk_metric_fidelity *out) {
    *out = (dk_metric_fidelity){NAN, NAN, NAN, NAN, -1};
    if (n_rows <= 0 || n_vocab <= 0) return;
    double sum = 0.0, mx = 0.0;
    int agree = 0;
    for (int t = 0; t < n_rows; t++) {
        const float *p = dense + (size_t)t * n_vocab, *q = method + (size_t)t * n_vocab;
        double kl = dk_metric_kl_logits(p, q, n_vocab);
        int a = dk_metric_top1_agree(p, q, n_vocab);
        if (t == 0) {
            out->kl_first = kl;
            out->top1_first = a;
        }
        sum += kl;
        if (kl > mx) mx = kl;
        agree += a;
    }
    out->kl_mean = sum / n_rows;
    out->kl_max = mx;
    out->top1 = (double)agree / n_rows;
}

double dk_metric_answer_nll(const float *logits, const int32_t *gold, int n, int n_vocab) {
    if (n <= 0 || n_vocab <= 0) return NAN;
    double s = 0.0;
    for (int t = 0; t < n; t++) {
        if (gold[t] < 0 || gold[t] >= n_vocab) return NAN;
        const float *x = logits + (size_t)t * n_vocab;
        double m;
        double lz = log_sum_exp(x, n_vocab, &m);
        s += lz - (double)x[gold[t]];
    }
    return s / n;
}

/* ---- rank correlation ---- */

static int dk_metric_cmp_index(const void *a, const void *b, void *ctx) {
    const double *v = ctx;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    if (v[i] != v[j]) return v[i] < v[j] ? -1 : 1;
    return (i > j) - (i < j);
}

void dk_metric_argsort(const double *v, size_t n, size_t *order) {
    for (size_t i = 0; i < n; i++) order[i] = i;
    qsort_r(order, n, sizeof *order, dk_metric_cmp_index, (void *)v);
}

/* Average ranks (1-based) of v[0..n) into r. */
static int dk_metric_ranks(const double *v, size_t n, double *r) {
    size_t *o = malloc((n ? n : 1) * sizeof *o);
    if (!o) return -1;
    dk_metric_argsort(v, n, o);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && v[o[j]] == v[o[i]]) j++;
        double avg = 0.5 * (double)(i + 1 + j); /* mean of ranks i+1..j */
        for (size_t k = i; k < j; k++) r[o[k]] = avg;
        i = j;
    }
    free(o);
    return 0;
}

double dk_metric_spearman(const double *x, const double *y, size_t n) {
    double *xs = malloc((n ? n : 1) * sizeof *xs), *ys = malloc((n ? n : 1) * sizeof *ys);
    double *rx = malloc((n ? n : 1) * sizeof *rx), *ry = malloc((n ? n : 1) * sizeof *ry);
    double out = NAN;
    size_t m = 0;
    if (!xs || !ys || !rx || !ry) goto done;
    for (size_t i = 0; i < n; i++)
        if (!isnan(x[i]) && !isnan(y[i])) {
            xs[m] = x[i];
            ys[m] = y[i];
            m++;
        }
    if (m < 3 || dk_metric_ranks(xs, m, rx) || dk_metric_ranks(ys, m, ry)) goto done;
    double mx = 0, my = 0;
    for (size_t i = 0; i < m; i++) {
        mx += rx[i];
        my += ry[i];
    }
    mx /= (double)m;
    my /= (double)m;
    double sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < m; i++) {
        sxy += (rx[i] - mx) * (ry[i] - my);
        sxx += (rx[i] - mx) * (rx[i] - mx);
        syy += (ry[i] - my) * (ry[i] - my);
    }
    if (sxx > 0 && syy > 0) out = sxy / sqrt(sxx * syy);
done:
    DK_FREE_ALL(xs, ys, rx, ry);
    return out;
}
