/* findings.h — the report's generated "Findings" paragraph.
 *
 * dk_findings_write: one paragraph of Markdown, written from the numbers it is given and from
 * nothing else (no fixed claims): which setting leads in each FLOP-speedup band, which settings
 * are indistinguishable from dense (the CI of the paired score difference contains 0) and which
 * fall below it, how DASH fares against each baseline at matched FLOPs, and whether the cheap
 * fidelity screen (answer-level KL) ranks samples as their scores do.
 * Library code: nothing printed except into the FILE given. */
#ifndef DK_FINDINGS_H
#define DK_FINDINGS_H

#include "bootstrap.h"
#include <stddef.h>
#include <stdio.h>

typedef struct {
    const char *label;    /* setting label, e.g. "dash rho=0.667 ls=0.4" */
    double flops_speedup; /* dense FLOPs / method FLOPs, pooled */
    dk_ci score;          /* mean score and its interval */
    int is_dense;
} dk_find_setting;

typedef struct {
    const char *a, *b; /* a - b: a method vs "dense", or DASH vs a baseline series */
    int matched;       /* 0: vs dense; 1: vs a baseline interpolated to a's FLOP speedup */
    double speedup;    /* a's FLOP speedup */
    dk_boot_diff d;    /* paired difference of scores (points) */
} dk_find_cmp;

/* Writes the paragraph for one model; level is the CI level (e.g. 0.95), alpha the p-value
 * threshold called significant (e.g. 0.05); rho_kl the Spearman correlation of answer KL and
 * score over n_kl method samples (NAN = not measured). */
void dk_findings_write(FILE *f, const char *model, const dk_find_setting *s, size_t ns, const dk_find_cmp *c,
                       size_t nc, double rho_kl, size_t n_kl, double level, double alpha);

#endif
