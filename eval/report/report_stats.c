/* report_stats.c — the report's statistics: bootstrap CIs of a quantity over groups of cells
 * (strata per cell or per task, context clusters), the dense reference from dense_results, and the
 * paired comparisons (every setting vs dense; DASH vs FLOP-matched baselines). Numbers only: no
 * files. May include: report_int.h (bootstrap.h, findings.h). */
#include "report_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- statistics over groups of cells ---- */

static const char *const rep_qty_name[] = {"score", "wall", "flops", "kl", "top1", "nll_delta"};

void rep_strata_free(rep_strata *S) {
    for (size_t i = 0; i < 2 * S->n; i++) free(S->bufs[i]);
    for (size_t i = 0; i < S->n; i++) free(S->cls[i]);
    free(S->bufs);
    free(S->cls);
    free(S->st);
    memset(S, 0, sizeof *S);
}

/* Adds cell c's measured values of qty to a new stratum, or to the last one (merge). */
int rep_strata_add(rep_strata *S, const rep_cell *c, rep_qty qty, int merge) {
    if (!merge || S->n == 0) {
        dk_boot_stratum *p = realloc(S->st, (S->n + 1) * sizeof *p);
        if (!p) return -1;
        S->st = p;
        double **b = realloc(S->bufs, 2 * (S->n + 1) * sizeof *b);
        if (!b) return -1;
        S->bufs = b;
        S->bufs[2 * S->n] = S->bufs[2 * S->n + 1] = NULL;
        int64_t **cb = realloc(S->cls, (S->n + 1) * sizeof *cb);
        if (!cb) return -1;
        S->cls = cb;
        S->cls[S->n] = NULL;
        S->st[S->n] = (dk_boot_stratum){NULL, NULL, 0, NULL};
        S->n++;
    }
    size_t k = S->n - 1;
    dk_boot_stratum *t = &S->st[k];
    double *num = realloc(S->bufs[2 * k], (t->n + c->n + 1) * sizeof *num);
    if (!num) return -1;
    S->bufs[2 * k] = num;
    int64_t *cl = realloc(S->cls[k], (t->n + c->n + 1) * sizeof *cl);
    if (!cl) return -1;
    S->cls[k] = cl;
    double *den = NULL;
    if (qty == Q_WALL || qty == Q_FLOPS) {
        den = realloc(S->bufs[2 * k + 1], (t->n + c->n + 1) * sizeof *den);
        if (!den) return -1;
        S->bufs[2 * k + 1] = den;
    }
    size_t m = t->n;
    for (size_t i = 0; i < c->n; i++) {
        double a, b = 1;
        switch (qty) {
        case Q_SCORE: a = c->score[i]; break;
        case Q_WALL:
            a = c->wd[i];
            b = c->wm[i];
            break;
        case Q_FLOPS:
            a = c->fd[i];
            b = c->fm[i];
            break;
        case Q_KL: a = c->kl[i]; break;
        case Q_NLL: a = c->nll[i]; break;
        default: a = c->top1[i]; break;
        }
        if (isnan(a) || isnan(b)) continue;
        num[m] = a;
        if (den) den[m] = b;
        cl[m] = c->cl ? c->cl[i] : (int64_t)(UINT64_C(1) << 61) + (int64_t)m; /* no clusters: each its own */
        m++;
    }
    t->num = num;
    t->den = den;
    t->cluster = cl;
    t->n = m;
    return 0;
}

/* The statistic of qty over the cells matching (model, task or -1 = all, setting), strata per
 * cell (by_task = 0, pooled) or per task (by_task = 1, mean of per-task values). Samples carry
 * their context cluster; when a task's cells hold samples that share a context, that task's
 * cells form one stratum, so that its contexts (not samples within one) are resampled. */
dk_status rep_stat(const rep_data *d, int mi, int ti, int si, rep_qty qty, int by_task, dk_ci *out,
                   size_t *n_out, dk_err *e) {
    rep_strata S = {0};
    dk_status st = DK_OK;
    out->est = out->lo = out->hi = NAN;
    size_t total = 0;
    for (size_t t = 0; t < d->n_tasks; t++) {
        if (ti >= 0 && (int)t != ti) continue;
        int first = 1, shared = 0;
        for (size_t i = 0; i < d->n_cells_loaded; i++) {
            const rep_cell *c = &d->cells[i];
            if (c->mi == mi && c->ti == (int)t && c->si == si && c->n_shared) shared = 1;
        }
        for (size_t i = 0; i < d->n_cells_loaded; i++) {
            const rep_cell *c = &d->cells[i];
            if (c->mi != mi || c->ti != (int)t || c->si != si) continue;
            if (rep_strata_add(&S, c, qty, (by_task || shared) && !first) != 0) {
                st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
                goto done;
            }
            first = 0;
        }
    }
    for (size_t k = 0; k < S.n; k++) total += S.st[k].n;
    char label[2048];
    snprintf(label, sizeof label, "%s|%s|%s|%s|%s|%d", d->models[mi].sha, ti >= 0 ? d->tasks[ti].name : "*",
             d->settings[si].method, d->settings[si].params, rep_qty_name[qty], by_task);
    /* speedups are drawn in x; their CIs are cheap, so every quantity gets one */
    st = dk_bootstrap_ci(S.st, S.n, by_task ? DK_BOOT_MEAN_OF_STRATA : DK_BOOT_POOLED, d->opts->n_boot,
                         dk_bootstrap_seed(d->opts->seed, label), d->opts->level, out, e);
done:
    if (n_out) *n_out = total;
    rep_strata_free(&S);
    return st;
}

/* Does setting si (< 0: any) have cells for (mi, ti) (ti < 0: any task)? */
int rep_has(const rep_data *d, int mi, int ti, int si) {
    for (size_t i = 0; i < d->n_cells_loaded; i++)
        if (d->cells[i].mi == mi && (si < 0 || d->cells[i].si == si) && (ti < 0 || d->cells[i].ti == ti))
            return 1;
    return 0;
}

int rep_is_dense(const rep_setting *s) { return !strcmp(s->method, "dense"); }

/* Dense reference from dense_results when the run has no dense cells: the shared dense scores
 * of the samples of (mi, ti)'s cells, one stratum per task_key. */
dk_status rep_dense_reference(const rep_data *d, int mi, int ti, dk_ci *out, size_t *n_out, dk_err *e) {
    out->est = out->lo = out->hi = NAN;
    *n_out = 0;
    rep_strata S = {0};
    dk_status st = DK_OK;
    const char **seen = calloc(d->n_cells_loaded + 1, sizeof *seen);
    size_t n_seen = 0;
    if (!seen) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < d->n_cells_loaded; i++) {
        const rep_cell *c = &d->cells[i];
        if (c->mi != mi || c->ti != ti) continue;
        int dup = 0;
        for (size_t k = 0; k < n_seen; k++)
            if (!strcmp(seen[k], c->task_key)) dup = 1;
        if (dup) continue;
        seen[n_seen++] = c->task_key;
        rep_cell tmp = {0};
        if ((st = dk_store_dense_scores(d->store, d->models[mi].sha, c->task_key, c->n_expected, &tmp.score,
                                        &tmp.n, e)))
            goto done;
        if (tmp.n && rep_strata_add(&S, &tmp, Q_SCORE, 0) != 0)
            st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
        free(tmp.score);
        if (st != DK_OK) goto done;
    }
    for (size_t k = 0; k < S.n; k++) *n_out += S.st[k].n;
    if (*n_out) {
        char label[1024];
        snprintf(label, sizeof label, "%s|%s|dense_results|score", d->models[mi].sha, d->tasks[ti].name);
        st = dk_bootstrap_ci(S.st, S.n, DK_BOOT_POOLED, d->opts->n_boot,
                             dk_bootstrap_seed(d->opts->seed, label), d->opts->level, out, e);
    }
done:
    free(seen);
    rep_strata_free(&S);
    return st;
}

/* ---- paired comparisons, matched FLOPs, Findings, fidelity vs score (issue 14) ---- */

/* Pooled FLOP speedup of setting si over model mi's cells: sum dense FLOPs / sum method FLOPs. */
double rep_flops_speedup(const rep_data *d, int mi, int si) {
    double a = 0, b = 0;
    for (size_t i = 0; i < d->n_cells_loaded; i++) {
        const rep_cell *c = &d->cells[i];
        if (c->mi != mi || c->si != si) continue;
        for (size_t k = 0; k < c->n; k++)
            if (!isnan(c->fd[k]) && !isnan(c->fm[k])) {
                a += c->fd[k];
                b += c->fm[k];
            }
    }
    return b > 0 ? a / b : NAN;
}

/* The cell of (mi, ti, si) with c's task options, or NULL. */
static const rep_cell *rep_twin(const rep_data *d, const rep_cell *c, int si) {
    for (size_t i = 0; i < d->n_cells_loaded; i++) {
        const rep_cell *x = &d->cells[i];
        if (x->mi == c->mi && x->ti == c->ti && x->si == si && !strcmp(x->task_key, c->task_key)) return x;
    }
    return NULL;
}

static double rep_score_of(const rep_cell *c, int64_t sid) {
    if (!c) return NAN;
    for (size_t k = 0; k < c->n; k++)
        if (c->sid[k] == sid) return c->score[k];
    return NAN;
}

/* Paired samples of setting sa against b = (1 - w) * setting sb0 + w * setting sb1 (w = 0: sb0
 * alone), matched by task options and sample id; clusters from sa's samples. Owned arrays. */
static dk_status rep_pairs(const rep_data *d, int mi, int sa, int sb0, int sb1, double w, double **a,
                           double **b, int64_t **cl, size_t *n, dk_err *e) {
    size_t cap = 0;
    *n = 0;
    *a = *b = NULL;
    *cl = NULL;
    for (size_t i = 0; i < d->n_cells_loaded; i++)
        if (d->cells[i].mi == mi && d->cells[i].si == sa) cap += d->cells[i].n;
    *a = malloc((cap ? cap : 1) * sizeof **a);
    *b = malloc((cap ? cap : 1) * sizeof **b);
    *cl = malloc((cap ? cap : 1) * sizeof **cl);
    if (!*a || !*b || !*cl) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < d->n_cells_loaded; i++) {
        const rep_cell *c = &d->cells[i];
        if (c->mi != mi || c->si != sa) continue;
        const rep_cell *t0 = rep_twin(d, c, sb0), *t1 = w > 0 ? rep_twin(d, c, sb1) : NULL;
        if (!t0 || (w > 0 && !t1)) continue;
        for (size_t k = 0; k < c->n; k++) {
            double x0 = rep_score_of(t0, c->sid[k]), x1 = w > 0 ? rep_score_of(t1, c->sid[k]) : 0;
            if (isnan(c->score[k]) || isnan(x0) || isnan(x1)) continue;
            (*a)[*n] = c->score[k];
            (*b)[*n] = (1 - w) * x0 + w * x1;
            (*cl)[*n] = c->cl[k];
            (*n)++;
        }
    }
    return DK_OK;
}

/* A baseline series: settings of one method with the same parameters except rho. */
static void rep_series_key(const rep_setting *s, char *b, size_t n) {
    snprintf(b, n, "%s", s->label);
    char *r = strstr(b, " rho=");
    if (r) {
        char *end = strchr(r + 1, ' ');
        memmove(r, end ? end : r + strlen(r), strlen(end ? end : r + strlen(r)) + 1);
    }
}

void rep_cmps_free(rep_cmps *x) {
    for (size_t i = 0; i < x->n; i++) free(x->labels[i]);
    free(x->labels);
    free(x->c);
    memset(x, 0, sizeof *x);
}

static dk_status rep_cmps_add(rep_cmps *x, const dk_find_cmp *c, const char *owned_b, dk_err *e) {
    dk_find_cmp *p = realloc(x->c, (x->n + 1) * sizeof *p);
    if (!p) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    x->c = p;
    char **l = realloc(x->labels, (x->n + 1) * sizeof *l);
    if (!l) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    x->labels = l;
    x->labels[x->n] = owned_b ? rep_strdup(owned_b) : NULL;
    if (owned_b && !x->labels[x->n]) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    x->c[x->n] = *c;
    if (owned_b) x->c[x->n].b = x->labels[x->n];
    x->n++;
    return DK_OK;
}

static dk_status rep_paired(const rep_data *d, int mi, int sa, int sb0, int sb1, double w, const char *label,
                            dk_boot_diff *out, dk_err *e) {
    double *a, *b;
    int64_t *cl;
    size_t n;
    dk_status st = rep_pairs(d, mi, sa, sb0, sb1, w, &a, &b, &cl, &n, e);
    if (st == DK_OK)
        st = dk_bootstrap_paired(a, b, cl, n, d->opts->n_boot, dk_bootstrap_seed(d->opts->seed, label),
                                 d->opts->level, out, e);
    free(a);
    free(b);
    free(cl);
    return st;
}

/* Every non-dense setting vs dense; every DASH setting vs every baseline series (same ls when the
 * series has one) whose FLOP speedups bracket DASH's, the baseline interpolated linearly in FLOP
 * speedup between its two neighbouring rho settings. */
dk_status rep_comparisons(const rep_data *d, int mi, rep_cmps *out, dk_err *e) {
    dk_status st = DK_OK;
    int sd = -1;
    size_t ns = d->n_settings;
    double *sp = malloc((ns ? ns : 1) * sizeof *sp);
    int *order = malloc((ns ? ns : 1) * sizeof *order);
    if (!sp || !order) {
        free(sp);
        free(order);
        return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    }
    for (size_t si = 0; si < ns; si++) {
        sp[si] = rep_has(d, mi, -1, (int)si) ? rep_flops_speedup(d, mi, (int)si) : NAN;
        if (rep_is_dense(&d->settings[si]) && rep_has(d, mi, -1, (int)si)) sd = (int)si;
    }
    char label[2048];
    for (size_t si = 0; si < ns && sd >= 0; si++) {
        if ((int)si == sd || isnan(sp[si])) continue;
        dk_find_cmp c = {d->settings[si].label, "dense", 0, sp[si], {NAN, NAN, NAN, NAN, 0}};
        snprintf(label, sizeof label, "%s|%s|vs-dense", d->models[mi].sha, d->settings[si].params);
        if ((st = rep_paired(d, mi, (int)si, sd, sd, 0, label, &c.d, e)) != DK_OK) goto done;
        if (c.d.n_used && (st = rep_cmps_add(out, &c, NULL, e)) != DK_OK) goto done;
    }
    for (size_t sa = 0; sa < ns; sa++) {
        const rep_setting *A = &d->settings[sa];
        if (strcmp(A->method, "dash") != 0 || isnan(A->rho) || isnan(sp[sa])) continue;
        /* each series once: the first setting of it (in setting order) stands for it */
        for (size_t s0 = 0; s0 < ns; s0++) {
            const rep_setting *B = &d->settings[s0];
            if (rep_is_dense(B) || !strcmp(B->method, "dash") || isnan(B->rho) || isnan(sp[s0])) continue;
            if (!isnan(B->ls) && !(B->ls == A->ls)) continue;
            char key[1024], k2[1024];
            rep_series_key(B, key, sizeof key);
            int first = 1;
            for (size_t t = 0; t < s0; t++) {
                if (isnan(sp[t]) || isnan(d->settings[t].rho)) continue;
                rep_series_key(&d->settings[t], k2, sizeof k2);
                if (!strcmp(key, k2)) first = 0;
            }
            if (!first) continue;
            size_t m = 0;
            for (size_t t = 0; t < ns; t++) {
                if (isnan(sp[t]) || isnan(d->settings[t].rho)) continue;
                rep_series_key(&d->settings[t], k2, sizeof k2);
                if (!strcmp(key, k2)) order[m++] = (int)t;
            }
            /* the bracket around DASH's speedup */
            int lo = -1, hi = -1;
            for (size_t k = 0; k < m; k++) {
                double x = sp[order[k]];
                if (x <= sp[sa] && (lo < 0 || x > sp[lo])) lo = order[k];
                if (x >= sp[sa] && (hi < 0 || x < sp[hi])) hi = order[k];
            }
            if (lo < 0 || hi < 0) continue; /* the grid does not reach DASH's speedup */
            double w = hi == lo || sp[hi] == sp[lo] ? 0 : (sp[sa] - sp[lo]) / (sp[hi] - sp[lo]);
            char bl[1100];
            snprintf(bl, sizeof bl, "%s (interpolated)", key);
            dk_find_cmp c = {A->label, NULL, 1, sp[sa], {NAN, NAN, NAN, NAN, 0}};
            snprintf(label, sizeof label, "%s|%s|vs|%s", d->models[mi].sha, A->params, key);
            if ((st = rep_paired(d, mi, (int)sa, lo, hi, w, label, &c.d, e)) != DK_OK) goto done;
            if (c.d.n_used && (st = rep_cmps_add(out, &c, bl, e)) != DK_OK) goto done;
        }
    }
done:
    free(sp);
    free(order);
    return st;
}
