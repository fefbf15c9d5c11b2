/* findings.c — the generated Findings paragraph (findings.h). */
#include "findings.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- Findings ---- */

static const double dk_find_bands[] = {1.0, 1.25, 1.5, 2.0, 3.0, INFINITY};
#define DK_FIND_N_BANDS (sizeof dk_find_bands / sizeof dk_find_bands[0] - 1)

static void dk_find_diff(FILE *f, const dk_boot_diff *d, double level) {
    fprintf(f, "%+.1f points", d->est);
    if (!isnan(d->lo)) fprintf(f, " [%.0f%% CI %+.1f, %+.1f], p = %.3g", 100 * level, d->lo, d->hi, d->p);
}

static int dk_find_contains_zero(const dk_boot_diff *d) { return !isnan(d->lo) && d->lo <= 0 && d->hi >= 0; }

void dk_findings_write(FILE *f, const char *model, const dk_find_setting *s, size_t ns, const dk_find_cmp *c,
                       size_t nc, double rho_kl, size_t n_kl, double level, double alpha) {
    fprintf(f, "**%s.** ", model);
    /* 1. leaders per FLOP-speedup band */
    int any_band = 0;
    for (size_t b = 0; b < DK_FIND_N_BANDS; b++) {
        const dk_find_setting *best = NULL;
        size_t n_in = 0;
        for (size_t i = 0; i < ns; i++) {
            if (s[i].is_dense || isnan(s[i].flops_speedup) || isnan(s[i].score.est)) continue;
            if (s[i].flops_speedup < dk_find_bands[b] || s[i].flops_speedup >= dk_find_bands[b + 1]) continue;
            n_in++;
            if (!best || s[i].score.est > best->score.est) best = &s[i];
        }
        if (!best) continue;
        if (!any_band) fprintf(f, "Highest mean score by FLOP speedup: ");
        else fprintf(f, "; ");
        any_band = 1;
        if (isinf(dk_find_bands[b + 1])) fprintf(f, "at %.2g× and above, ", dk_find_bands[b]);
        else fprintf(f, "%.3g–%.3g×, ", dk_find_bands[b], dk_find_bands[b + 1]);
        fprintf(f, "%s (%.1f", best->label, best->score.est);
        if (!isnan(best->score.lo)) fprintf(f, " [%.1f, %.1f]", best->score.lo, best->score.hi);
        fprintf(f, " at %.2f×, best of %zu)", best->flops_speedup, n_in);
    }
    if (any_band) fprintf(f, ". ");
    /* 2. against dense */
    size_t n_vs = 0, n_same = 0, n_below = 0, n_above = 0;
    for (size_t i = 0; i < nc; i++) {
        if (c[i].matched || isnan(c[i].d.est)) continue;
        n_vs++;
        if (dk_find_contains_zero(&c[i].d)) n_same++;
        else if (c[i].d.hi < 0) n_below++;
        else if (c[i].d.lo > 0) n_above++;
    }
    if (n_vs) {
        if (n_same) {
            fprintf(f,
                    "Indistinguishable from dense (the %.0f%% CI of the paired score difference contains 0): "
                    "%zu of %zu settings (",
                    100 * level, n_same, n_vs);
            size_t k = 0;
            for (size_t i = 0; i < nc && k < 6; i++)
                if (!c[i].matched && !isnan(c[i].d.est) && dk_find_contains_zero(&c[i].d))
                    fprintf(f, "%s%s at %.2f×", k++ ? ", " : "", c[i].a, c[i].speedup);
            if (n_same > k) fprintf(f, ", ...");
            fprintf(f, "). ");
        } else {
            fprintf(f, "No setting is indistinguishable from dense. ");
        }
        if (n_below) {
            /* the worst few, most negative first */
            fprintf(f, "Below dense: %zu", n_below);
            const dk_find_cmp *worst = NULL;
            for (size_t i = 0; i < nc; i++)
                if (!c[i].matched && !isnan(c[i].d.est) && c[i].d.hi < 0 &&
                    (!worst || c[i].d.est < worst->d.est))
                    worst = &c[i];
            if (worst) {
                fprintf(f, " (furthest: %s at %.2f×, ", worst->a, worst->speedup);
                dk_find_diff(f, &worst->d, level);
                fprintf(f, ")");
            }
            fprintf(f, ". ");
        }
        if (n_above) fprintf(f, "Above dense: %zu. ", n_above);
        if (!n_same && !n_below && !n_above) fprintf(f, "(No intervals: run the report with resamples.) ");
    }
    /* 3. DASH vs the baselines at matched FLOPs */
    size_t n_m = 0, n_lead = 0, n_trail = 0;
    const dk_find_cmp *big = NULL, *worst = NULL;
    for (size_t i = 0; i < nc; i++) {
        if (!c[i].matched || isnan(c[i].d.est)) continue;
        n_m++;
        int sig = !isnan(c[i].d.p) && c[i].d.p < alpha;
        if (sig && c[i].d.est > 0) {
            n_lead++;
            if (!big || c[i].d.est > big->d.est) big = &c[i];
        }
        if (sig && c[i].d.est < 0) {
            n_trail++;
            if (!worst || c[i].d.est < worst->d.est) worst = &c[i];
        }
    }
    if (n_m) {
        fprintf(f,
                "At matched FLOPs (baseline interpolated along its rho grid), DASH leads in %zu of %zu "
                "comparisons"
                " (p < %.2g), trails in %zu, and is within noise in %zu",
                n_lead, n_m, alpha, n_trail, n_m - n_lead - n_trail);
        if (big) {
            fprintf(f, "; largest lead: %s over %s at %.2f×, ", big->a, big->b, big->speedup);
            dk_find_diff(f, &big->d, level);
        }
        if (worst) {
            fprintf(f, "; largest deficit: %s vs %s at %.2f×, ", worst->a, worst->b, worst->speedup);
            dk_find_diff(f, &worst->d, level);
        }
        fprintf(f, ". ");
    } else if (nc) {
        fprintf(f, "No baseline's rho grid brackets a DASH setting's FLOP speedup, so there is no "
                   "matched-FLOPs comparison. ");
    }
    /* 4. the cheap screen */
    if (!isnan(rho_kl)) {
        fprintf(f, "Answer-level KL vs score over %zu method samples: Spearman %.2f (%s).", n_kl, rho_kl,
                rho_kl <= -0.5   ? "the screen ranks samples much as their scores do"
                : rho_kl <= -0.2 ? "higher KL goes with lower scores, loosely"
                : rho_kl < 0.2   ? "KL says little about the score here"
                                 : "higher KL goes with HIGHER scores: the screen misleads here");
    }
    fprintf(f, "\n");
}
