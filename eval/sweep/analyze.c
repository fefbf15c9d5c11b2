/* analyze.c — Δ, received attention and attention recall on dense prefills (analyze.h). */
#include "analyze.h"
#include "evaluate.h"
#include "metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const dk_analyze_methods[DK_ANALYZE_N_METHODS] = {"dash",   "fastv",   "snapkv",
                                                              "random", "inverse", "dblock"};

void dk_analyze_opts_default(dk_analyze_opts *o) {
    memset(o, 0, sizeof *o);
    o->ls = 0.4;
    o->rho = 0.667;
    const double g[] = {0.3, 0.5, 0.667, 0.8};
    for (int i = 0; i < 4; i++) o->rho_grid[i] = g[i];
    o->n_rho = 4;
    o->seed = 1;
}

void dk_attn_profile_free(dk_attn_profile *p) {
    if (!p) return;
    DK_FREE_ALL(p->delta, p->rel, p->mass, p->recv);
    memset(p, 0, sizeof *p);
}

/* ---- profile: a hook that reads every layer's U, h and attention probabilities ---- */

static dk_status dk_analyze_hook(void *user, dk_hook_point point, const dk_layer_view *v,
                                 int32_t *next_active, int *n_next, dk_err *e) {
    (void)next_active;
    (void)n_next;
    if (point != DK_HOOK_AFTER_ATTN) return DK_OK;
    dk_attn_profile *p = user;
    int n = p->n, d = v->n_embd, l = v->layer;
    if (v->n_active != n || v->n_past != 0 || !v->probs || v->n_probe != n || v->kv_len != n)
        return dk_fail(e, DK_ERR_STATE, "analysis: layer %d is not a dense, fully probed prefill of %d rows",
                       l, n);
    for (int i = 0; i < n; i++) {
        const float *u = v->u + (size_t)i * d, *h = v->x_in + (size_t)i * d;
        double su = 0, sh = 0;
        for (int j = 0; j < d; j++) {
            su += (double)u[j] * u[j];
            sh += (double)h[j] * h[j];
        }
        p->delta[(size_t)l * n + i] = (float)sqrt(su);
        p->rel[(size_t)l * n + i] = sh > 0 ? (float)sqrt(su / sh) : NAN;
    }
    double *mass = p->mass + (size_t)l * n;
    for (int j = 0; j < n; j++) mass[j] = 0;
    for (int hh = 0; hh < v->n_head; hh++)
        for (int r = 0; r < n; r++) {
            const float *row = v->probs + ((size_t)hh * n + r) * (size_t)n;
            for (int j = 0; j <= r; j++) mass[j] += row[j];
        }
    for (int j = 0; j < n; j++) {
        mass[j] /= v->n_head;
        p->recv[(size_t)l * n + j] = mass[j] / (double)(n - j);
    }
    return DK_OK;
}

dk_status dk_analyze_profile(dk_ctx *c, const int32_t *tokens, int n, dk_attn_profile *p, dk_err *e) {
    memset(p, 0, sizeof *p);
    const dk_model_config *k = &dk_ctx_model(c)->cfg;
    int L = k->n_layer;
    if (n <= 0) return dk_fail(e, DK_ERR_ARG, "analysis: empty context");
    if (dk_ctx_n_ctx_max(c) < n)
        return dk_fail(e, DK_ERR_ARG, "analysis: the context holds %d positions, %d needed",
                       dk_ctx_n_ctx_max(c), n);
    p->n_layer = L;
    p->n = n;
    p->n_head = k->n_head;
    size_t m = (size_t)L * (size_t)n;
    p->delta = malloc(m * sizeof *p->delta);
    p->rel = malloc(m * sizeof *p->rel);
    p->mass = malloc(m * sizeof *p->mass);
    p->recv = malloc(m * sizeof *p->recv);
    int32_t *probe = malloc((size_t)n * sizeof *probe);
    bool *layers = malloc((size_t)L * sizeof *layers);
    float *logits = malloc((size_t)k->n_vocab * sizeof *logits);
    dk_status st = DK_OK;
    if (!p->delta || !p->rel || !p->mass || !p->recv || !probe || !layers || !logits) {
        st = dk_fail(e, DK_ERR_NOMEM, "analysis: out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) probe[i] = i;
    for (int l = 0; l < L; l++) layers[l] = true;
    dk_prefill_opts o = {0};
    o.hook = dk_analyze_hook;
    o.hook_user = p;
    o.probe_rows = probe;
    o.n_probe = n;
    o.probe_layers = layers;
    dk_ctx_reset(c);
    st = dk_forward_prefill(c, tokens, n, &o, logits, e);
done:
    free(probe);
    free(layers);
    free(logits);
    if (st) dk_attn_profile_free(p);
    return st;
}

double dk_analyze_recall(const dk_attn_profile *p, int after_layer, const uint8_t *keep, int n_rows) {
    double kept = 0, all = 0;
    if (n_rows > p->n) n_rows = p->n;
    for (int l = after_layer + 1; l < p->n_layer; l++)
        for (int j = 0; j < n_rows; j++) {
            double x = p->mass[(size_t)l * p->n + j];
            all += x;
            if (keep[j]) kept += x;
        }
    return all > 0 ? kept / all : NAN;
}

double dk_analyze_jaccard(const uint8_t *a, const uint8_t *b, int n) {
    int in = 0, un = 0;
    for (int i = 0; i < n; i++) {
        in += a[i] && b[i];
        un += a[i] || b[i];
    }
    return un ? (double)in / un : 1.0;
}

/* ---- kept set of a policy setting: its own hook, and ours recording the last layer's rows ---- */

typedef struct {
    dk_layer_hook inner;
    void *inner_user;
    uint8_t *keep;
    int n, n_layer, n_kept;
} dk_analyze_kept_obs;

static dk_status dk_analyze_kept_hook(void *user, dk_hook_point point, const dk_layer_view *v,
                                      int32_t *next_active, int *n_next, dk_err *e) {
    dk_analyze_kept_obs *o = user;
    dk_status st = o->inner ? o->inner(o->inner_user, point, v, next_active, n_next, e) : DK_OK;
    if (st || point != DK_HOOK_AFTER_LAYER || v->layer != o->n_layer - 1) return st;
    memset(o->keep, 0, (size_t)o->n);
    for (int i = 0; i < v->n_active; i++) o->keep[v->active[i]] = 1;
    o->n_kept = v->n_active;
    return DK_OK;
}

dk_status dk_analyze_kept(dk_ctx *c, const int32_t *tokens, int n, const dk_policy *pol,
                          const dk_policy_params *pp, uint8_t *keep, int *n_kept, dk_err *e) {
    int L = dk_ctx_model(c)->cfg.n_layer;
    float *logits = malloc((size_t)dk_ctx_model(c)->cfg.n_vocab * sizeof *logits);
    if (!logits) return dk_fail(e, DK_ERR_NOMEM, "analysis: out of memory");
    dk_policy_run *run = NULL;
    dk_prefill_opts o = {0};
    dk_status st = DK_OK;
    if (pol && pol->rule != DK_POLICY_RULE_NONE) {
        if ((st = dk_policy_params_validate(pol, pp, L, e)) ||
            (st = dk_policy_run_create(pol, pp, L, n, &run, e)))
            goto done;
        dk_policy_run_opts(run, &o);
    }
    dk_analyze_kept_obs obs = {o.hook, o.hook_user, keep, n, L, 0};
    o.hook = dk_analyze_kept_hook;
    o.hook_user = &obs;
    dk_ctx_reset(c);
    if ((st = dk_forward_prefill(c, tokens, n, &o, logits, e))) goto done;
    *n_kept = obs.n_kept;
done:
    dk_policy_run_free(run);
    free(logits);
    return st;
}

/* ---- aggregation over samples ---- */

/* numpy's default (linear) quantile of sorted v[0..n) */
static double dk_analyze_quantile(const float *v, size_t n, double q) {
    if (!n) return NAN;
    double h = q * (double)(n - 1);
    size_t lo = (size_t)h;
    if (lo + 1 >= n) return v[n - 1];
    return v[lo] + (h - (double)lo) * (v[lo + 1] - v[lo]);
}

static int dk_analyze_find_rho(const dk_analyze_opts *o, const double *grid, int ng, double rho) {
    for (int i = 0; i < ng; i++)
        if (fabs(grid[i] - rho) < 1e-12) return i;
    (void)o;
    return -1;
}

dk_status dk_analyze_run(const dk_model *m, const dk_sample_set *set, size_t budget, const dk_analyze_opts *o,
                         dk_analysis *a, dk_err *e) {
    memset(a, 0, sizeof *a);
    const dk_model_config *k = &m->cfg;
    int L = k->n_layer, S = set->n;
    if (S <= 0) return dk_fail(e, DK_ERR_ARG, "analysis: no samples");
    if (!(o->ls >= 0 && o->ls <= 1))
        return dk_fail(e, DK_ERR_ARG, "analysis: ls %g is outside [0, 1]", o->ls);
    if (!(o->rho >= 0 && o->rho < 1))
        return dk_fail(e, DK_ERR_ARG, "analysis: rho %g is outside [0, 1)", o->rho);
    /* rho grid with the requested rho */
    double grid[DK_ANALYZE_MAX_RHO + 1];
    int ng = 0;
    for (int i = 0; i < o->n_rho && ng < DK_ANALYZE_MAX_RHO; i++) grid[ng++] = o->rho_grid[i];
    if (dk_analyze_find_rho(o, grid, ng, o->rho) < 0) grid[ng++] = o->rho;
    int r_at = dk_analyze_find_rho(o, grid, ng, o->rho);
    /* l_s as DASH takes it */
    const dk_policy *dash = dk_policy_find("dash");
    dk_policy_params pp0;
    dk_policy_params_default(&pp0);
    dk_status st;
    if ((st = dk_policy_params_set(dash, &pp0, "ls", o->ls, e)) ||
        (st = dk_policy_params_set(dash, &pp0, "rho", o->rho, e)))
        return st;
    int ls_layer = dk_policy_first_layer(dash, &pp0, L);
    if (ls_layer < 0 || ls_layer >= L) ls_layer = L - 1;

    a->n_samples = S;
    a->n_layer = L;
    a->ls = o->ls;
    a->ls_layer = ls_layer;
    a->rho = o->rho;
    size_t NM = DK_ANALYZE_N_METHODS;
    a->delta_q = calloc((size_t)L * DK_ANALYSIS_NQ, sizeof(double));
    a->rel_q = calloc((size_t)L * DK_ANALYSIS_NQ, sizeof(double));
    a->received_mean = calloc((size_t)L, sizeof(double));
    a->received_spearman = calloc((size_t)L, sizeof(double));
    a->recall = calloc(NM * (size_t)ng, sizeof *a->recall);
    a->overlap = calloc(NM * NM, sizeof *a->overlap);
    float **pool_d = calloc((size_t)L, sizeof *pool_d), **pool_r = calloc((size_t)L, sizeof *pool_r);
    size_t pool_n = 0, pool_cap = 0;
    int *n_sp = calloc((size_t)L, sizeof *n_sp), n_drs = 0, *n_rec = calloc(NM * (size_t)ng, sizeof *n_rec);
    int n_dec[10] = {0};
    double drs = 0;
    uint8_t *keep = NULL, *keep_at = NULL;
    dk_ctx *c = NULL;
    dk_attn_profile prof = {0};
    dk_eval_prompt pr = {0};
    double *later = NULL, *dl = NULL, *rl = NULL;
    if (!a->delta_q || !a->rel_q || !a->received_mean || !a->received_spearman || !a->recall || !a->overlap ||
        !pool_d || !pool_r || !n_sp || !n_rec) {
        st = dk_fail(e, DK_ERR_NOMEM, "analysis: out of memory");
        goto done;
    }
    for (size_t i = 0; i < NM; i++)
        for (int r = 0; r < ng; r++) {
            dk_analysis_recall *x = &a->recall[i * (size_t)ng + (size_t)r];
            snprintf(x->method, sizeof x->method, "%s", dk_analyze_methods[i]);
            x->rho = grid[r];
        }
    for (size_t i = 0; i < NM; i++)
        for (size_t j = i + 1; j < NM; j++) {
            dk_analysis_overlap *x = &a->overlap[a->n_overlap++];
            snprintf(x->a, sizeof x->a, "%s", dk_analyze_methods[i]);
            snprintf(x->b, sizeof x->b, "%s", dk_analyze_methods[j]);
        }
    a->n_recall = (int)NM * ng;
    double overlap_sum[DK_ANALYZE_N_METHODS * DK_ANALYZE_N_METHODS] = {0};
    for (int si = 0; si < S; si++) {
        if ((st = dk_eval_prompt_build(m, &set->s[si], budget, &pr, e))) goto done;
        int n = pr.n_context, nt = (int)pr.p.n; /* context rows analysed; all rows prefilled */
        const int32_t *tok = pr.p.ids;
        if ((st = dk_eval_ctx_reserve(m, &c, nt, e)) || (st = dk_analyze_profile(c, tok, nt, &prof, e)))
            goto done;
        /* pools for the percentiles */
        if (pool_n + (size_t)n > pool_cap) {
            size_t cap = pool_cap ? pool_cap : 1024;
            while (cap < pool_n + (size_t)n) cap *= 2;
            for (int l = 0; l < L; l++) {
                float *x = realloc(pool_d[l], cap * sizeof *x),
                      *y = x ? realloc(pool_r[l], cap * sizeof *y) : NULL;
                if (x) pool_d[l] = x;
                if (!x || !y) {
                    st = dk_fail(e, DK_ERR_NOMEM, "analysis: out of memory");
                    goto done;
                }
                pool_r[l] = y;
            }
            pool_cap = cap;
        }
        for (int l = 0; l < L; l++) {
            memcpy(pool_d[l] + pool_n, prof.delta + (size_t)l * nt, (size_t)n * sizeof(float));
            memcpy(pool_r[l] + pool_n, prof.rel + (size_t)l * nt, (size_t)n * sizeof(float));
        }
        pool_n += (size_t)n;
        /* Δ at l_s against received attention, per layer and over the later layers */
        free(later);
        free(dl);
        free(rl);
        later = calloc((size_t)n, sizeof *later);
        dl = malloc((size_t)n * sizeof *dl);
        rl = malloc((size_t)n * sizeof *rl);
        if (!later || !dl || !rl) {
            st = dk_fail(e, DK_ERR_NOMEM, "analysis: out of memory");
            goto done;
        }
        for (int j = 0; j < n; j++) dl[j] = prof.delta[(size_t)ls_layer * nt + j];
        for (int l = 0; l < L; l++) {
            for (int j = 0; j < n; j++) rl[j] = prof.recv[(size_t)l * nt + j];
            double r = dk_metric_spearman(dl, rl, (size_t)n), mean = 0;
            for (int j = 0; j < n; j++) mean += rl[j] / n;
            a->received_mean[l] += mean / S;
            if (!isnan(r)) {
                a->received_spearman[l] += r;
                n_sp[l]++;
            }
            if (l > ls_layer)
                for (int j = 0; j < n; j++) later[j] += rl[j] / (L - 1 - ls_layer);
        }
        if (ls_layer < L - 1) {
            double r = dk_metric_spearman(dl, later, (size_t)n);
            if (!isnan(r)) {
                drs += r;
                n_drs++;
            }
            /* deciles of Δ at l_s within the sample */
            size_t *ord = malloc((size_t)n * sizeof *ord);
            if (!ord) {
                st = dk_fail(e, DK_ERR_NOMEM, "analysis: out of memory");
                goto done;
            }
            dk_metric_argsort(dl, (size_t)n, ord);
            for (int q = 0; q < 10; q++) {
                int j0 = (int)((int64_t)q * n / 10), j1 = (int)((int64_t)(q + 1) * n / 10);
                if (j1 <= j0) continue;
                double sd = 0, sr = 0;
                for (int t = j0; t < j1; t++) {
                    sd += dl[ord[t]];
                    sr += later[ord[t]];
                }
                a->decile_delta[q] += sd / (j1 - j0);
                a->decile_received[q] += sr / (j1 - j0);
                n_dec[q]++;
            }
            free(ord);
        }
        /* kept sets per method and rho: recall, and overlaps at the requested rho */
        free(keep);
        free(keep_at);
        keep = malloc((size_t)n);
        keep_at = malloc(NM * (size_t)n);
        if (!keep || !keep_at) {
            st = dk_fail(e, DK_ERR_NOMEM, "analysis: out of memory");
            goto done;
        }
        for (size_t mi = 0; mi < NM; mi++) {
            const dk_policy *pol = dk_policy_find(dk_analyze_methods[mi]);
            if (!pol) {
                st = dk_fail(e, DK_ERR_ARG, "analysis: no policy '%s'", dk_analyze_methods[mi]);
                goto done;
            }
            for (int r = 0; r < ng; r++) {
                dk_policy_params pp;
                dk_policy_params_default(&pp);
                if ((st = dk_policy_params_set(pol, &pp, "rho", grid[r], e)) ||
                    (st = dk_policy_params_set(pol, &pp, "ls", o->ls, e)))
                    goto done;
                if (!strcmp(pol->name, "random") &&
                    (st = dk_policy_params_set(pol, &pp, "seed", (double)o->seed, e)))
                    goto done;
                int nk = 0;
                if ((st = dk_analyze_kept(c, tok, n, pol, &pp, keep, &nk, e))) goto done;
                double rc = dk_analyze_recall(&prof, ls_layer, keep, n);
                dk_analysis_recall *x = &a->recall[mi * (size_t)ng + (size_t)r];
                if (!isnan(rc)) {
                    x->recall += rc;
                    x->kept_frac += (double)nk / n;
                    n_rec[mi * (size_t)ng + (size_t)r]++;
                }
                if (r == r_at) memcpy(keep_at + mi * (size_t)n, keep, (size_t)n);
            }
        }
        for (size_t i = 0; i < NM; i++)
            for (size_t j = i + 1; j < NM; j++)
                overlap_sum[i * NM + j] +=
                    dk_analyze_jaccard(keep_at + i * (size_t)n, keep_at + j * (size_t)n, n) / S;
        dk_attn_profile_free(&prof);
        dk_eval_prompt_free(&pr);
        if (o->progress) o->progress(o->progress_user, si + 1, S);
    }
    /* finish the means and the percentiles */
    for (int l = 0; l < L; l++) {
        a->received_spearman[l] = n_sp[l] ? a->received_spearman[l] / n_sp[l] : NAN;
        qsort(pool_d[l], pool_n, sizeof(float), dk_cmp_f32);
        size_t nr = 0; /* NAN relative values (‖h‖ = 0) sort to no fixed place: drop them first */
        for (size_t i = 0; i < pool_n; i++)
            if (!isnan(pool_r[l][i])) pool_r[l][nr++] = pool_r[l][i];
        qsort(pool_r[l], nr, sizeof(float), dk_cmp_f32);
        for (int q = 0; q < DK_ANALYSIS_NQ; q++) {
            a->delta_q[l * DK_ANALYSIS_NQ + q] = dk_analyze_quantile(pool_d[l], pool_n, dk_analysis_q[q]);
            a->rel_q[l * DK_ANALYSIS_NQ + q] = dk_analyze_quantile(pool_r[l], nr, dk_analysis_q[q]);
        }
    }
    a->delta_received_spearman = n_drs ? drs / n_drs : NAN;
    for (int q = 0; q < 10; q++) {
        a->decile_delta[q] = n_dec[q] ? a->decile_delta[q] / n_dec[q] : NAN;
        a->decile_received[q] = n_dec[q] ? a->decile_received[q] / n_dec[q] : NAN;
    }
    for (size_t i = 0; i < NM * (size_t)ng; i++) {
        int nn = n_rec[i];
        a->recall[i].recall = nn ? a->recall[i].recall / nn : NAN;
        a->recall[i].kept_frac = nn ? a->recall[i].kept_frac / nn : NAN;
    }
    for (int x = 0, t = 0; x < (int)NM; x++)
        for (int y = x + 1; y < (int)NM; y++) a->overlap[t++].jaccard = overlap_sum[x * NM + y];
    st = DK_OK;
done:
    for (int l = 0; pool_d && l < L; l++) free(pool_d[l]);
    for (int l = 0; pool_r && l < L; l++) free(pool_r[l]);
    DK_FREE_ALL(pool_d, pool_r, n_sp, n_rec, keep, keep_at, later, dl, rl);
    dk_attn_profile_free(&prof);
    dk_eval_prompt_free(&pr);
    dk_ctx_free(c);
    if (st) dk_analysis_free(a);
    return st;
}
