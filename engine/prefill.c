/* prefill.c — context prefill with a policy, dense question prefill, greedy decode; the
 * theoretical speedup formula (see prefill.h). */
#include "prefill.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- one context + question prefill ---- */

void dk_prefill_result_free(dk_prefill_result *r) {
    if (!r) return;
    DK_FREE_ALL(r->layers, r->policy, r->active, r->ctx_logits, r->q_logits);
    memset(r, 0, sizeof *r);
}

const float *dk_prefill_next_logits(const dk_prefill_result *r) {
    return r->q_logits ? r->q_logits : r->ctx_logits;
}

dk_status dk_prefill_result_init(dk_prefill_result *r, int n_layer, int n_vocab, int n_ctx, int n_q,
                                 dk_err *e) {
    memset(r, 0, sizeof *r);
    r->n_layer = n_layer;
    r->n_vocab = n_vocab;
    r->n_ctx = n_ctx;
    r->n_question = n_q;
    r->layers = malloc((size_t)n_layer * sizeof *r->layers);
    r->policy = calloc((size_t)n_layer, sizeof *r->policy);
    r->active = malloc((size_t)n_ctx * sizeof *r->active);
    r->ctx_logits = malloc((size_t)n_vocab * sizeof *r->ctx_logits);
    r->q_logits = n_q > 0 ? malloc((size_t)n_vocab * sizeof *r->q_logits) : NULL;
    if (!r->layers || !r->policy || !r->active || !r->ctx_logits || (n_q > 0 && !r->q_logits)) {
        dk_prefill_result_free(r);
        return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    }
    return DK_OK;
}

dk_status dk_prefill_result_finish(dk_prefill_result *r, dk_ctx *c, const dk_policy_run *run,
                                   const int32_t *question, int n_q, dk_err *e) {
    int L = r->n_layer;
    const dk_forward_stats *fs = dk_ctx_stats(c);
    memcpy(r->layers, fs->layers, (size_t)L * sizeof *r->layers);
    r->ctx_flops = fs->total;
    r->ctx_wall_s = fs->wall_s;
    for (int l = 0; l < L; l++)
        r->policy[l] = run ? run->stats[l] : (dk_policy_layer_stats){false, 0, 0, NAN, NAN, NAN};
    /* the last layer's cache holds exactly the rows active there, at positions 0..n_ctx-1 */
    const dk_kv_cache *kv = dk_ctx_cache(c, L - 1);
    r->n_active = kv->len;
    memcpy(r->active, kv->pos, (size_t)kv->len * sizeof *r->active);
    if (n_q <= 0) return DK_OK;
    dk_status st = dk_forward_prefill(c, question, n_q, NULL, r->q_logits, e);
    if (st) return st;
    fs = dk_ctx_stats(c);
    r->q_flops = fs->total;
    r->q_wall_s = fs->wall_s;
    return DK_OK;
}

dk_status dk_prefill_run(dk_ctx *c, const dk_policy *p, const dk_policy_params *pp, const int32_t *ctx,
                         int n_ctx, const int32_t *question, int n_q, float *hidden_out, dk_prefill_result *r,
                         dk_err *e) {
    memset(r, 0, sizeof *r);
    const dk_model_config *k = &dk_ctx_model(c)->cfg;
    int L = k->n_layer;
    if (n_ctx <= 0) return dk_fail(e, DK_ERR_ARG, "empty context");
    if (n_q < 0 || (n_q > 0 && !question)) return dk_fail(e, DK_ERR_ARG, "bad question (%d tokens)", n_q);
    dk_status st = dk_prefill_result_init(r, L, k->n_vocab, n_ctx, n_q, e);
    if (st) return st;

    dk_policy_run *run = NULL;
    dk_prefill_opts o = {0};
    o.hidden_out = hidden_out;
    if (p && p->rule != DK_POLICY_RULE_NONE) {
        if ((st = dk_policy_run_create(p, pp, L, n_ctx, &run, e))) goto done;
        dk_policy_run_opts(run, &o);
    }
    dk_ctx_reset(c);
    if (!(st = dk_forward_prefill(c, ctx, n_ctx, &o, r->ctx_logits, e)))
        st = dk_prefill_result_finish(r, c, run, question, n_q, e);
done:
    dk_policy_run_free(run);
    if (st) dk_prefill_result_free(r);
    return st;
}

dk_status dk_prefill_all_logits(dk_ctx *c, const dk_policy *p, const dk_policy_params *pp,
                                const int32_t *tokens, int n, float *logits, dk_err *e) {
    if (n <= 0) return dk_fail(e, DK_ERR_ARG, "no tokens");
    dk_policy_run *run = NULL;
    dk_prefill_opts o = {.all_logits = true};
    dk_status st;
    if (p && p->rule != DK_POLICY_RULE_NONE) {
        if ((st = dk_policy_run_create(p, pp, dk_ctx_model(c)->cfg.n_layer, n, &run, e))) return st;
        dk_policy_run_opts(run, &o);
    }
    dk_ctx_reset(c);
    st = dk_forward_prefill(c, tokens, n, &o, logits, e);
    dk_policy_run_free(run);
    return st;
}

dk_status dk_prefill_decode_greedy(dk_ctx *c, const float *logits, int n_max, int32_t stop_token,
                                   int32_t *out, int *n_out, dk_err *e) {
    *n_out = 0;
    int V = dk_ctx_model(c)->cfg.n_vocab;
    if (n_max <= 0) return DK_OK;
    float *lg = malloc((size_t)V * sizeof *lg);
    if (!lg) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    int32_t next = dk_argmax(logits, V);
    dk_status st = DK_OK;
    while (next != stop_token) {
        out[(*n_out)++] = next;
        if (*n_out >= n_max) break;
        if ((st = dk_forward_decode(c, next, lg, e))) break;
        next = dk_argmax(lg, V);
    }
    free(lg);
    return st;
}

/* ---- dense vs method, side by side ---- */

double dk_prefill_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, dk_cmp_f64);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* One timed context prefill; method = NULL for dense. Returns wall seconds in *dt. */
static dk_status dk_prefill_timed(dk_ctx *c, const dk_policy *p, const dk_policy_params *pp,
                                  const int32_t *tokens, int T, float *logits, double *dt, dk_flops *fl,
                                  dk_policy_run **keep_run, dk_err *e) {
    int L = dk_ctx_model(c)->cfg.n_layer;
    dk_ctx_reset(c);
    double t0 = dk_time_now_s();
    dk_policy_run *run = NULL;
    dk_prefill_opts o = {0};
    dk_status st = DK_OK;
    if (p && p->rule != DK_POLICY_RULE_NONE) {
        if ((st = dk_policy_run_create(p, pp, L, T, &run, e))) return st;
        dk_policy_run_opts(run, &o);
    }
    st = dk_forward_prefill(c, tokens, T, &o, logits, e);
    *dt = dk_time_now_s() - t0;
    *fl = dk_ctx_stats(c)->total;
    if (keep_run && !st) *keep_run = run;
    else dk_policy_run_free(run);
    return st;
}

dk_status dk_prefill_compare_run(dk_ctx *c, const dk_policy *p, const dk_policy_params *pp,
                                 const int32_t *tokens, int T, int reps, dk_prefill_compare *out, dk_err *e) {
    memset(out, 0, sizeof *out);
    const dk_model_config *k = &dk_ctx_model(c)->cfg;
    if (reps < 1) return dk_fail(e, DK_ERR_ARG, "reps = %d must be >= 1", reps);
    float *logits = malloc((size_t)k->n_vocab * sizeof *logits);
    double *wd = malloc((size_t)reps * sizeof *wd), *wm = malloc((size_t)reps * sizeof *wm), dt;
    dk_policy_run *run = NULL;
    dk_status st = DK_OK;
    if (!logits || !wd || !wm) {
        st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* warm-up; the method's run tells what was kept */
    if ((st = dk_prefill_timed(c, NULL, NULL, tokens, T, logits, &dt, &out->flops_dense, NULL, e)) ||
        (st = dk_prefill_timed(c, p, pp, tokens, T, logits, &dt, &out->flops_method, &run, e)))
        goto done;
    out->l_s = p ? dk_policy_first_layer(p, pp, k->n_layer) : k->n_layer;
    out->n_kept = run && out->l_s < k->n_layer && run->stats[out->l_s].decided ? run->stats[out->l_s].n_kept
                                                                               : T;
    out->theoretical = dk_prefill_theoretical_speedup(k, T, out->l_s, out->n_kept);
    for (int r = 0; r < reps; r++) {
        dk_flops f;
        for (int h = 0; h < 2; h++) {
            bool dense = (h == 0) == (r % 2 == 0);
            if ((st = dk_prefill_timed(c, dense ? NULL : p, pp, tokens, T, logits, &dt, &f, NULL, e)))
                goto done;
            (dense ? wd : wm)[r] = dt;
        }
    }
    out->reps = reps;
    out->wall_dense_s = dk_prefill_median(wd, reps);
    out->wall_method_s = dk_prefill_median(wm, reps);
done:
    dk_policy_run_free(run);
    free(logits);
    free(wd);
    free(wm);
    return st;
}

/* ---- FLOP model ----
 * Per layer on n rows (first chunk, exact causal attention, P = n(n+1)/2 query-key pairs):
 *   norm  10·n·d            two RMSNorms (4·n·d each) and two residual adds
 *   qkv   2·n·d·(qd+2·kvd)  (+ n·(qd+2·kvd) biases)
 *   rope  6·n·(H+H_kv)·n_rot/2
 *   attn  4·H·hd·P          Q·Kᵀ and P·V
 *   soft  H·(5·P + n)
 *   o     2·n·qd·d
 *   ffn   6·n·d·f + 5·n·f */
double dk_prefill_layer_flops(const dk_model_config *k, double n) {
    double d = k->n_embd, hd = k->head_dim, H = k->n_head, Hkv = k->n_head_kv, f = k->n_ff;
    double qd = H * hd, kvd = Hkv * hd, P = n * (n + 1) / 2;
    double a = 10 * n * d + 2 * n * d * (qd + 2 * kvd) + (k->qkv_bias ? n * (qd + 2 * kvd) : 0);
    a += 6 * n * (H + Hkv) * (k->n_rot / 2) + 4 * H * hd * P + H * (5 * P + n) + 2 * n * qd * d;
    return a + 6 * n * d * f + 5 * n * f;
}

double dk_prefill_theoretical_speedup(const dk_model_config *k, int T, int l_s, double n_kept) {
    int L = k->n_layer;
    if (l_s >= L) return 1.0;
    double A = dk_prefill_layer_flops(k, T), Ak = dk_prefill_layer_flops(k, n_kept);
    return (double)L * A / ((double)l_s * A + (double)(L - l_s) * Ak);
}
