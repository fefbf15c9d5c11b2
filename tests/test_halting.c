/* test_halting.c — halting policies (engine/policy.c) and the prefill protocol (engine/prefill.c):
 *   no-op settings (rho = 0, ls = 1, keep >= T) give logits and hidden states BIT-identical to dense;
 *   halted tokens' final hidden states are exactly their state after the decision layer;
 *   FLOP counters equal a closed-form count for the active sets that ran (dense: the same count);
 *   every policy keeps the set its rule defines (checked against an independent O(n²) selection),
 *   protection, ties, thresholds, budgets, multistep schedule, baselines' invariants;
 *   bad parameters give one exact error (library) and exit 2 (CLI). */
#include "support/dk_test.h"
#include "forward.h"
#include "model.h"
#include "policy.h"
#include "prefill.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- fixtures: small random models, random tokens ---- */

static dk_model *model_shape(const char *shape, int n_layer) {
    return dk_test_model_shape(shape, n_layer, 7);
}

static int32_t *tokens(int n, int n_vocab, uint64_t seed) {
    int32_t *t = malloc((size_t)n * sizeof *t);
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 12345;
    for (int i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        t[i] = (int32_t)(s % (uint64_t)n_vocab);
    }
    return t;
}

static void params(const char *method, const char *kv, const dk_policy **p, dk_policy_params *pp) {
    dk_err e = {{0}};
    ck_assert_msg(dk_policy_lookup(method, p, &e) == DK_OK, "%s", e.msg);
    dk_policy_params_default(pp);
    char buf[256], *save = NULL;
    snprintf(buf, sizeof buf, "%s", kv);
    for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(t, '=');
        ck_assert(eq != NULL);
        *eq = 0;
        ck_assert_msg(dk_policy_params_set_text(*p, pp, t, eq + 1, &e) == DK_OK, "%s", e.msg);
    }
}

typedef struct {
    dk_prefill_result r;
    float *hidden; /* (T, n_embd) */
} run_out;

static void run(dk_ctx *c, const char *method, const char *kv, const int32_t *ctx, int T, const int32_t *q,
                int Q, run_out *o) {
    const dk_policy *p = NULL;
    dk_policy_params pp;
    if (method) params(method, kv, &p, &pp);
    o->hidden = malloc((size_t)T * dk_ctx_model(c)->cfg.n_embd * sizeof(float));
    dk_err e = {{0}};
    ck_assert_msg(dk_prefill_run(c, p, method ? &pp : NULL, ctx, T, q, Q, o->hidden, &o->r, &e) == DK_OK,
                  "%s", e.msg);
}

static void run_free(run_out *o) {
    dk_prefill_result_free(&o->r);
    free(o->hidden);
}

/* ---- no-op settings are bit-identical to dense ---- */

static const char *NOOP[][2] = {
    {"dense", ""},
    {"dash", "rho=0"},
    {"dash", "rho=0.667 ls=1"},
    {"dash-keep", "keep=100000"},
    {"multistep", "rho=0 k=1"},
    {"random", "rho=0 seed=3"},
    {"inverse", "rho=0"},
    {"dblock", "rho=0"},
    {"fastv", "rho=0"},
    {"snapkv", "rho=0 window=8"},
    {"dash", "rho=0.9 sink=60 recent=60"},
};
#define N_NOOP ((int)(sizeof NOOP / sizeof NOOP[0]))

START_TEST(test_noop_bit_identical) {
    const char *shapes[] = {"llama-tiny", "qwen2-tiny"};
    for (int s = 0; s < 2; s++) {
        dk_model *m = model_shape(shapes[s], 6);
        int T = 100, Q = 9, V = m->cfg.n_vocab, d = m->cfg.n_embd;
        int32_t *ctx = tokens(T, V, 1), *q = tokens(Q, V, 2);
        dk_ctx *c = NULL;
        dk_err e = {{0}};
        ck_assert(dk_ctx_create(m, T + Q + 8, &c, &e) == DK_OK);
        run_out dense, meth;
        run(c, NULL, NULL, ctx, T, q, Q, &dense);
        run(c, NOOP[_i][0], NOOP[_i][1], ctx, T, q, Q, &meth);
        ck_assert_msg(!memcmp(dense.r.ctx_logits, meth.r.ctx_logits, (size_t)V * 4),
                      "%s %s: context logits differ", NOOP[_i][0], NOOP[_i][1]);
        ck_assert_msg(!memcmp(dense.r.q_logits, meth.r.q_logits, (size_t)V * 4),
                      "%s %s: question logits differ", NOOP[_i][0], NOOP[_i][1]);
        ck_assert_msg(!memcmp(dense.hidden, meth.hidden, (size_t)T * d * 4), "%s: hidden states differ",
                      NOOP[_i][0]);
        for (int l = 0; l < m->cfg.n_layer; l++) ck_assert_int_eq(meth.r.layers[l].n_active, T);
        /* and decoding after it */
        int32_t a[6], b[6];
        int na, nb;
        dk_ctx *c2 = NULL;
        ck_assert(dk_ctx_create(m, T + Q + 8, &c2, &e) == DK_OK);
        run_free(&meth);
        run(c2, NOOP[_i][0], NOOP[_i][1], ctx, T, q, Q, &meth);
        run_free(&dense);
        run(c, NULL, NULL, ctx, T, q, Q, &dense);
        ck_assert(dk_prefill_decode_greedy(c, dense.r.q_logits, 6, -1, a, &na, &e) == DK_OK);
        ck_assert(dk_prefill_decode_greedy(c2, meth.r.q_logits, 6, -1, b, &nb, &e) == DK_OK);
        ck_assert_int_eq(na, nb);
        ck_assert(!memcmp(a, b, sizeof a));
        run_free(&dense);
        run_free(&meth);
        dk_ctx_free(c);
        dk_ctx_free(c2);
        free(ctx);
        free(q);
        dk_model_free(m);
    }
}
END_TEST

/* ---- halted tokens keep their state after the decision layer ---- */

typedef struct {
    dk_policy_run *run;
    int layer;
    float *after; /* (T, n_embd) block output of `layer`, by chunk row */
} capture;

static dk_status capture_hook(void *user, dk_hook_point pt, const dk_layer_view *v, int32_t *next,
                              int *n_next, dk_err *e) {
    capture *cp = user;
    if (pt == DK_HOOK_AFTER_LAYER && v->layer == cp->layer)
        for (int i = 0; i < v->n_active; i++)
            memcpy(cp->after + (size_t)v->active[i] * v->n_embd, v->x_out + (size_t)i * v->n_embd,
                   (size_t)v->n_embd * 4);
    return dk_policy_hook(cp->run, pt, v, next, n_next, e);
}

START_TEST(test_halted_state_frozen) {
    static const char *M[][2] = {{"dash", "rho=0.5 ls=0.4"},
                                 {"dblock", "rho=0.6 ls=0.2"},
                                 {"fastv", "rho=0.5 layer=1"},
                                 {"multistep", "rho=0.7 ls=0.2 k=2"}};
    dk_model *m = model_shape("qwen2-tiny", 6);
    int T = 90, d = m->cfg.n_embd, L = m->cfg.n_layer;
    int32_t *ctx = tokens(T, m->cfg.n_vocab, 5);
    dk_ctx *c = NULL;
    dk_err e = {{0}};
    ck_assert(dk_ctx_create(m, T, &c, &e) == DK_OK);
    const dk_policy *p;
    dk_policy_params pp;
    params(M[_i][0], M[_i][1], &p, &pp);
    /* one capture per decision layer: run once per decision layer to capture it */
    dk_policy_run *probe = NULL;
    ck_assert(dk_policy_run_create(p, &pp, L, T, &probe, &e) == DK_OK);
    int checked = 0;
    for (int ls = 0; ls < L; ls++) {
        if (!probe->decide[ls]) continue;
        capture cp = {NULL, ls, malloc((size_t)T * d * 4)};
        ck_assert(dk_policy_run_create(p, &pp, L, T, &cp.run, &e) == DK_OK);
        float *hid = malloc((size_t)T * d * 4);
        dk_prefill_opts o = {0};
        dk_policy_run_opts(cp.run, &o);
        o.hook = capture_hook;
        o.hook_user = &cp;
        o.hidden_out = hid;
        dk_ctx_reset(c);
        ck_assert_msg(dk_forward_prefill(c, ctx, T, &o, NULL, &e) == DK_OK, "%s", e.msg);
        /* rows active at layer ls but not after it: halted there */
        const dk_forward_stats *st = dk_ctx_stats(c);
        int n_halted = 0, n_moved = 0;
        const dk_kv_cache *now = dk_ctx_cache(c, ls), *next = dk_ctx_cache(c, ls + 1);
        for (int i = 0, j = 0; i < now->len; i++) {
            int row = now->pos[i];
            while (j < next->len && next->pos[j] < row) j++;
            bool kept = j < next->len && next->pos[j] == row;
            bool same = !memcmp(hid + (size_t)row * d, cp.after + (size_t)row * d, (size_t)d * 4);
            if (!kept) {
                ck_assert_msg(same, "%s: halted row %d changed after layer %d", M[_i][0], row, ls);
                n_halted++;
            } else n_moved += !same;
        }
        ck_assert_int_eq(n_halted, st->layers[ls].n_active - st->layers[ls + 1].n_active);
        ck_assert_int_gt(n_halted, 0);
        ck_assert_int_gt(n_moved, 0); /* kept rows did run the later layers */
        checked++;
        dk_policy_run_free(cp.run);
        free(cp.after);
        free(hid);
    }
    ck_assert_int_gt(checked, 0);
    dk_policy_run_free(probe);
    dk_ctx_free(c);
    free(ctx);
    dk_model_free(m);
}
END_TEST

/* ---- FLOPs: closed form for the active sets that ran ---- */

/* One layer of a call on n rows appended after L0 cache entries; query rows in blocks of B
 * (the engine runs the causal part plus the whole diagonal block: kv width L0 + block end). */
static void layer_closed_form(const dk_model_config *k, int n, int L0, dk_flops *f) {
    int64_t d = k->n_embd, hd = k->head_dim, H = k->n_head, Hk = k->n_head_kv, ff = k->n_ff;
    int64_t qd = H * hd, kvd = Hk * hd, g = H / Hk, B = g >= 256 ? 1 : 256 / g;
    memset(f, 0, sizeof *f);
    if (n == 0) return;
    f->c[DK_FLOPS_NORM] = 10 * n * d;
    f->c[DK_FLOPS_QKV] = 2 * n * d * (qd + 2 * kvd) + (k->qkv_bias ? n * (qd + 2 * kvd) : 0);
    f->c[DK_FLOPS_ROPE] = 6 * n * (H + Hk) * (k->n_rot / 2);
    for (int64_t r0 = 0; r0 < n; r0 += B) {
        int64_t r1 = r0 + B < n ? r0 + B : n;
        f->c[DK_FLOPS_ATTN] += Hk * 4 * ((r1 - r0) * g) * (L0 + r1) * hd;
    }
    for (int64_t i = 0; i < n; i++) f->c[DK_FLOPS_SOFTMAX] += H * (5 * (L0 + i + 1) + 1);
    f->c[DK_FLOPS_O] = 2 * n * qd * d;
    f->c[DK_FLOPS_FFN] = 6 * n * d * ff + 5 * n * ff;
}

static void check_call(const dk_model_config *k, const dk_layer_stats *ls, const dk_flops *total,
                       const int *L0, int64_t halt_layer, int64_t halt_flops, const char *what) {
    dk_flops sum = {{0}}, want;
    for (int l = 0; l < k->n_layer; l++) {
        layer_closed_form(k, ls[l].n_active, L0[l], &want);
        if (l == halt_layer) want.c[DK_FLOPS_HALT] = halt_flops;
        for (int c = 0; c < DK_FLOPS_COUNT; c++)
            ck_assert_msg(ls[l].flops.c[c] == want.c[c], "%s layer %d %s: engine %lld, closed form %lld",
                          what, l, dk_flops_component_name((dk_flops_component)c),
                          (long long)ls[l].flops.c[c], (long long)want.c[c]);
        dk_flops_add(&sum, &want);
    }
    sum.c[DK_FLOPS_NORM] += 4 * (int64_t)k->n_embd;                 /* final norm, last row */
    sum.c[DK_FLOPS_LM_HEAD] += 2 * (int64_t)k->n_vocab * k->n_embd; /* lm head, last row */
    for (int c = 0; c < DK_FLOPS_COUNT; c++) ck_assert_int_eq(total->c[c], sum.c[c]);
}

START_TEST(test_flops_closed_form) {
    const char *shapes[] = {"llama-tiny", "qwen2-tiny"};
    dk_model *m = model_shape(shapes[_i], 5);
    const dk_model_config *k = &m->cfg;
    int T = 150, Q = 7, L = k->n_layer;
    int32_t *ctx = tokens(T, k->n_vocab, 3), *q = tokens(Q, k->n_vocab, 4);
    dk_ctx *c = NULL;
    dk_err e = {{0}};
    ck_assert(dk_ctx_create(m, T + Q, &c, &e) == DK_OK);
    int zero[16] = {0}, L0[16] = {0};

    /* dense: the engine's counter equals the closed form */
    run_out dense, dash;
    run(c, NULL, NULL, ctx, T, q, Q, &dense);
    for (int l = 0; l < L; l++) ck_assert_int_eq(dense.r.layers[l].n_active, T);
    check_call(k, dense.r.layers, &dense.r.ctx_flops, zero, -1, 0, "dense context");
    /* dense question after a dense context: T entries everywhere */
    const dk_forward_stats *st = dk_ctx_stats(c);
    for (int l = 0; l < L; l++) L0[l] = T;
    check_call(k, st->layers, &st->total, L0, -1, 0, "dense question");

    /* dash rho 0.6 at l_s = floor(0.4*5) = 2: layers 3, 4 run K = 60 rows */
    run(c, "dash", "rho=0.6 ls=0.4", ctx, T, q, Q, &dash);
    int K = (int)floor(0.4 * T);
    for (int l = 0; l < L; l++) ck_assert_int_eq(dash.r.layers[l].n_active, l <= 2 ? T : K);
    check_call(k, dash.r.layers, &dash.r.ctx_flops, zero, 2, (int64_t)T * (2 * k->n_embd + 1),
               "dash context");
    /* the question attends to caches of T (l <= l_s) or K entries */
    st = dk_ctx_stats(c);
    for (int l = 0; l < L; l++) L0[l] = l <= 2 ? T : K;
    check_call(k, st->layers, &st->total, L0, -1, 0, "dash question");
    ck_assert(dk_flops_total(&dash.r.q_flops) < dk_flops_total(&dense.r.q_flops));

    /* the theoretical formula's A(n) is the same model with exact causal attention */
    dk_flops one;
    layer_closed_form(
        k, 40, 0,
        &one); /* 40 <= every block size here: one block, so only the diagonal block's upper half differs */
    int64_t pad = 0;
    for (int i = 0; i < 40; i++) pad += 4 * (int64_t)k->n_head * k->head_dim * (40 - (i + 1));
    ck_assert(fabs(dk_prefill_layer_flops(k, 40) - (double)(dk_flops_total(&one) - pad)) < 0.5);
    run_free(&dense);
    run_free(&dash);
    dk_ctx_free(c);
    free(ctx);
    free(q);
    dk_model_free(m);
}
END_TEST

/* ---- selection ---- */

START_TEST(test_select_rules) {
    /* rows 10..17 of a 20-row chunk; ties at 5.0 and 1.0 */
    int32_t rows[8] = {10, 11, 12, 13, 14, 15, 16, 17};
    float s[8] = {1.0f, 5.0f, 3.0f, 5.0f, 1.0f, NAN, 5.0f, 2.0f};
    char order[1024];
    uint8_t keep[8];
    ck_assert(dk_policy_order_size(8) <= sizeof order);
    /* top 2: the two 5.0s at the lowest rows (11, 13), not 16 */
    ck_assert_int_eq(dk_policy_select(DK_POLICY_RULE_TOPK, s, rows, 8, 20, 0, 0, 2, 0, order, keep), 2);
    uint8_t w1[8] = {0, 1, 0, 1, 0, 0, 0, 0};
    ck_assert(!memcmp(keep, w1, 8));
    /* top 6: 5,5,5,3,2 then the lower of the 1.0 ties (row 10); NaN never before a number */
    ck_assert_int_eq(dk_policy_select(DK_POLICY_RULE_TOPK, s, rows, 8, 20, 0, 0, 6, 0, order, keep), 6);
    uint8_t w2[8] = {1, 1, 1, 1, 0, 0, 1, 1};
    ck_assert(!memcmp(keep, w2, 8));
    /* protection: sink 11 protects rows 10; recent 3 protects 17; both inside the budget of 3 */
    ck_assert_int_eq(dk_policy_select(DK_POLICY_RULE_TOPK, s, rows, 8, 20, 11, 3, 3, 0, order, keep), 3);
    uint8_t w3[8] = {1, 1, 0, 0, 0, 0, 0, 1};
    ck_assert(!memcmp(keep, w3, 8));
    /* protected rows beyond the budget are still kept */
    ck_assert_int_eq(dk_policy_select(DK_POLICY_RULE_TOPK, s, rows, 8, 20, 13, 0, 1, 0, order, keep), 3);
    /* threshold: keep score > 2 (2.0 itself halted) */
    ck_assert_int_eq(dk_policy_select(DK_POLICY_RULE_THRESHOLD, s, rows, 8, 20, 0, 0, 0, 2.0, order, keep),
                     4);
    uint8_t w4[8] = {0, 1, 1, 1, 0, 0, 1, 0};
    ck_assert(!memcmp(keep, w4, 8));
    /* budget larger than n keeps everything */
    ck_assert_int_eq(dk_policy_select(DK_POLICY_RULE_BUDGET, s, rows, 8, 20, 0, 0, 100, 0, order, keep), 8);
}
END_TEST

/* Independent top-K: K passes of "largest remaining score, lowest row on ties". */
static void naive_topk(const float *score, const int32_t *rows, int n, int K, uint8_t *keep) {
    memset(keep, 0, (size_t)n);
    for (int k = 0; k < K; k++) {
        int b = -1;
        for (int i = 0; i < n; i++)
            if (!keep[i] && (b < 0 || score[rows[i]] > score[rows[b]])) b = i;
        keep[b] = 1;
    }
}

/* Runs a policy by hand on a fresh context; returns the run (caller frees). */
static dk_policy_run *policy_run(dk_ctx *c, const char *method, const char *kv, const int32_t *ctx, int T) {
    const dk_policy *p;
    dk_policy_params pp;
    params(method, kv, &p, &pp);
    dk_policy_run *r = NULL;
    dk_err e = {{0}};
    ck_assert_msg(dk_policy_run_create(p, &pp, dk_ctx_model(c)->cfg.n_layer, T, &r, &e) == DK_OK, "%s",
                  e.msg);
    dk_prefill_opts o = {0};
    dk_policy_run_opts(r, &o);
    dk_ctx_reset(c);
    ck_assert_msg(dk_forward_prefill(c, ctx, T, &o, NULL, &e) == DK_OK, "%s", e.msg);
    return r;
}

/* kept rows of layer l's decision = positions in the cache of layer l+1 */
static void kept_rows(dk_ctx *c, int l, uint8_t *kept, int T) {
    memset(kept, 0, (size_t)T);
    const dk_kv_cache *kv = dk_ctx_cache(c, l + 1);
    for (int i = 0; i < kv->len; i++) kept[kv->pos[i]] = 1;
}

START_TEST(test_policy_sets) {
    dk_model *m = model_shape("llama-tiny", 8);
    int T = 120, H = m->cfg.n_head;
    int32_t *ctx = tokens(T, m->cfg.n_vocab, 9);
    int32_t all[120];
    for (int i = 0; i < T; i++) all[i] = i;
    dk_ctx *c = NULL;
    dk_err e = {{0}};
    ck_assert(dk_ctx_create(m, T, &c, &e) == DK_OK);
    uint8_t kept[120], want[120];
    int K = (int)floor((1 - 0.667) * T); /* 39 */

    /* TOPK policies: kept = independent top-K of the policy's own scores at l_s = 3 */
    const char *topk[][2] = {{"dash", "rho=0.667"},    {"random", "rho=0.667 seed=5"},
                             {"inverse", "rho=0.667"}, {"dblock", "rho=0.667"},
                             {"fastv", "rho=0.667"},   {"snapkv", "rho=0.667 window=1 kernel=1"}};
    float dash_score[120];
    for (int t = 0; t < 6; t++) {
        dk_policy_run *r = policy_run(c, topk[t][0], topk[t][1], ctx, T);
        ck_assert_int_eq(r->first, 3);
        ck_assert_msg(r->stats[3].decided && r->stats[3].n_kept == K, "%s kept %d", topk[t][0],
                      r->stats[3].n_kept);
        const float *s = r->score + 3 * T;
        float sp[120];
        memcpy(sp, s, sizeof sp);
        if (t == 5) sp[T - 1] = INFINITY; /* snapkv's window row is protected */
        naive_topk(sp, all, T, K, want);
        kept_rows(c, 3, kept, T);
        ck_assert_msg(!memcmp(kept, want, (size_t)T), "%s: kept set is not the top-K of its scores",
                      topk[t][0]);
        double sum = 0;
        for (int i = 0; i < T; i++) sum += s[i];
        if (t == 0) memcpy(dash_score, s, sizeof dash_score);
        if (t == 2)
            for (int i = 0; i < T; i++) ck_assert(s[i] == -dash_score[i]); /* inverse = −Δ */
        if (t == 3)
            for (int i = 0; i < T; i++) ck_assert(s[i] >= 0 && s[i] <= 2); /* 1 − cos */
        if (t == 4 || t == 5)
            ck_assert_msg(fabs(sum - 1.0) < 1e-4, "%s: attention of one row sums to %g", topk[t][0], sum);
        if (t == 4) ck_assert_int_eq(dk_ctx_stats(c)->layers[3].flops.c[DK_FLOPS_HALT], (int64_t)T * (H + 1));
        if (t == 5) ck_assert(kept[T - 1]); /* the observation window stays */
        dk_policy_run_free(r);
    }
    /* random: same seed same set, another seed another set */
    dk_policy_run *r = policy_run(c, "random", "rho=0.5 seed=5", ctx, T);
    uint8_t k5[120], k6[120];
    kept_rows(c, 3, k5, T);
    dk_policy_run_free(r);
    r = policy_run(c, "random", "rho=0.5 seed=5", ctx, T);
    kept_rows(c, 3, kept, T);
    ck_assert(!memcmp(k5, kept, (size_t)T));
    dk_policy_run_free(r);
    r = policy_run(c, "random", "rho=0.5 seed=6", ctx, T);
    kept_rows(c, 3, k6, T);
    ck_assert(memcmp(k5, k6, (size_t)T) != 0);
    dk_policy_run_free(r);

    /* snapkv: the window rows are always kept; pooling never lowers a score */
    r = policy_run(c, "snapkv", "rho=0.9 window=16 kernel=5", ctx, T);
    kept_rows(c, 3, kept, T);
    for (int i = T - 16; i < T; i++) ck_assert(kept[i]);
    ck_assert_int_eq(r->stats[3].n_kept, (int)floor(0.1 * T) > 16 ? (int)floor(0.1 * T) : 16);
    dk_policy_run_free(r);

    /* dash-tau: kept = rows with Δ > tau (absolute), and with Δ/‖h‖ > tau (relative) */
    float sorted[120];
    memcpy(sorted, dash_score, sizeof sorted);
    for (int i = 1; i < T; i++)
        for (int j = i; j > 0 && sorted[j] < sorted[j - 1]; j--) {
            float x = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = x;
        }
    char kv[64];
    snprintf(kv, sizeof kv, "tau=%.9g", (double)sorted[T / 2]);
    r = policy_run(c, "dash-tau", kv, ctx, T);
    kept_rows(c, 3, kept, T);
    int n_above = 0;
    for (int i = 0; i < T; i++) {
        ck_assert_int_eq(kept[i], dash_score[i] > sorted[T / 2]);
        n_above += kept[i];
    }
    ck_assert(n_above > 0 && n_above < T);
    dk_policy_run_free(r);
    r = policy_run(c, "dash-tau", "tau=0.3 relative=true", ctx, T);
    kept_rows(c, 3, kept, T);
    for (int i = 0; i < T; i++) ck_assert_int_eq(kept[i], r->score[3 * T + i] > 0.3f);
    for (int i = 0; i < T; i++)
        ck_assert(fabsf(r->score[3 * T + i] - dash_score[i]) > 0 ||
                  dash_score[i] == 0); /* a different score */
    dk_policy_run_free(r);

    /* dash-keep: exactly `keep` rows; with protection the budget includes the protected rows */
    r = policy_run(c, "dash-keep", "keep=17", ctx, T);
    ck_assert_int_eq(dk_ctx_cache(c, 4)->len, 17);
    dk_policy_run_free(r);
    r = policy_run(c, "dash", "rho=0.667 sink=4 recent=3", ctx, T);
    kept_rows(c, 3, kept, T);
    ck_assert_int_eq(dk_ctx_cache(c, 4)->len, K);
    for (int i = 0; i < 4; i++) ck_assert(kept[i]);
    for (int i = T - 3; i < T; i++) ck_assert(kept[i]);
    dk_policy_run_free(r);

    /* multistep: decisions at 3, 5 (k = 2; 7 is the last layer), counts floor(0.333^(j/2)·T), final = dash's K */
    r = policy_run(c, "multistep", "rho=0.667 k=2", ctx, T);
    ck_assert_int_eq(r->n_decide, 2);
    ck_assert(r->decide[3] && r->decide[5] && !r->decide[4] && !r->decide[7]);
    const dk_forward_stats *st = dk_ctx_stats(c);
    ck_assert_int_eq(st->layers[4].n_active, (int)floor(pow(1 - 0.667, 0.5) * T));
    ck_assert_int_eq(st->layers[6].n_active, K);
    ck_assert_int_eq(st->layers[7].n_active, K);
    dk_policy_run_free(r);
    /* multistep with k past the last layer is dash, bit for bit */
    run_out a, b;
    run(c, "dash", "rho=0.667", ctx, T, NULL, 0, &a);
    run(c, "multistep", "rho=0.667 k=100", ctx, T, NULL, 0, &b);
    ck_assert(!memcmp(a.r.ctx_logits, b.r.ctx_logits, (size_t)m->cfg.n_vocab * 4));
    ck_assert(!memcmp(a.hidden, b.hidden, (size_t)T * m->cfg.n_embd * 4));
    run_free(&a);
    run_free(&b);
    dk_ctx_free(c);
    free(ctx);
    dk_model_free(m);
}
END_TEST

/* ---- parameters: table, defaults, exact errors ---- */

static void expect_err(const char *method, const char *name, double v, const char *msg) {
    const dk_policy *p = dk_policy_find(method);
    ck_assert(p != NULL);
    dk_policy_params pp;
    dk_policy_params_default(&pp);
    dk_err e = {{0}};
    ck_assert_int_eq(dk_policy_params_set(p, &pp, name, v, &e), DK_ERR_ARG);
    ck_assert_str_eq(e.msg, msg);
}

START_TEST(test_params) {
    ck_assert_int_eq(dk_policy_count(), DK_POLICY_COUNT);
    const char *names[] = {"dense",  "dash",    "dash-tau", "dash-keep", "multistep",
                           "random", "inverse", "dblock",   "fastv",     "snapkv"};
    for (int i = 0; i < 10; i++) {
        const dk_policy *p = dk_policy_find(names[i]);
        ck_assert_msg(p && (int)p->kind == i && !strcmp(p->name, names[i]), "%s", names[i]);
        ck_assert((p->score == NULL) == (p->rule == DK_POLICY_RULE_NONE));
    }
    ck_assert(dk_policy_find("DASH") == NULL);
    dk_err e = {{0}};
    const dk_policy *p;
    ck_assert_int_eq(dk_policy_lookup("foo", &p, &e), DK_ERR_ARG);
    ck_assert_str_eq(e.msg, "unknown method 'foo' (known: dense, dash, dash-tau, dash-keep, multistep, "
                            "random, inverse, dblock, fastv, snapkv)");
    /* defaults */
    dk_policy_params pp;
    dk_policy_params_default(&pp);
    ck_assert(pp.rho == 0.667 && pp.ls == 0.4 && pp.sink == 0 && pp.recent == 0 && pp.k == 2 &&
              pp.layer == -1);
    ck_assert_str_eq(dk_policy_param_info(DK_POLICY_PARAM_RHO)->name, "rho");
    ck_assert(dk_policy_param_find("window") == dk_policy_param_info(DK_POLICY_PARAM_WINDOW));
    char buf[128];
    dk_policy_params_format(dk_policy_find("dash"), &pp, buf, sizeof buf);
    ck_assert_str_eq(buf, "rho=0.667 ls=0.4 sink=0 recent=0");
    ck_assert_int_eq(dk_policy_params_validate(dk_policy_find("dash"), &pp, 24, &e), DK_OK);
    ck_assert_int_eq(dk_policy_params_validate(dk_policy_find("dense"), &pp, 24, &e), DK_OK);
    /* errors */
    expect_err("dash", "rho", 1, "dash: rho = 1 is outside [0, 1)");
    expect_err("dash", "rho", -0.1, "dash: rho = -0.1 is outside [0, 1)");
    expect_err("dash", "ls", 1.5, "dash: ls = 1.5 is outside [0, 1]");
    expect_err("dash-tau", "tau", -1, "dash-tau: tau = -1 must be >= 0");
    expect_err("dash-keep", "keep", 2.5, "dash-keep: keep = 2.5 is not an integer");
    expect_err("dash-keep", "keep", 0, "dash-keep: keep = 0 must be >= 1");
    expect_err("snapkv", "kernel", 4, "snapkv: kernel = 4 must be odd");
    expect_err("dash", "tau", 1, "dash: unknown parameter 'tau' (accepted: rho, ls, sink, recent)");
    expect_err("dense", "rho", 0.5, "dense: unknown parameter 'rho' (accepted: none)");
    expect_err("dash", "bogus", 1, "dash: unknown parameter 'bogus' (accepted: rho, ls, sink, recent)");
    p = dk_policy_find("dash-keep");
    ck_assert_int_eq(dk_policy_params_validate(p, &pp, 24, &e), DK_ERR_ARG);
    ck_assert_str_eq(e.msg, "dash-keep: keep is required (tokens kept)");
    p = dk_policy_find("dash-tau");
    ck_assert_int_eq(dk_policy_params_validate(p, &pp, 24, &e), DK_ERR_ARG);
    ck_assert_str_eq(e.msg, "dash-tau: tau is required (halt tokens whose score <= tau)");
    p = dk_policy_find("fastv");
    ck_assert_int_eq(dk_policy_params_set(p, &pp, "layer", 24, &e), DK_OK);
    ck_assert_int_eq(dk_policy_params_validate(p, &pp, 24, &e), DK_ERR_ARG);
    ck_assert_str_eq(e.msg, "fastv: layer = 24 must be < n_layer = 24");
    /* the same checks apply to values written into the struct directly */
    dk_policy_params_default(&pp);
    pp.rho = 1.2;
    ck_assert_int_eq(dk_policy_params_validate(dk_policy_find("random"), &pp, 0, &e), DK_ERR_ARG);
    ck_assert_str_eq(e.msg, "random: rho = 1.2 is outside [0, 1)");
    dk_policy_run *r = NULL;
    ck_assert_int_eq(dk_policy_run_create(dk_policy_find("dash"), &pp, 24, 100, &r, &e), DK_ERR_ARG);
    ck_assert(r == NULL);
    /* text values */
    dk_policy_params_default(&pp);
    ck_assert_int_eq(dk_policy_params_set_text(dk_policy_find("dash"), &pp, "rho", "0.5x", &e), DK_ERR_ARG);
    ck_assert_str_eq(e.msg, "dash: rho = '0.5x' is not a number");
    ck_assert_int_eq(dk_policy_params_set_text(dk_policy_find("dash-tau"), &pp, "relative", "true", &e),
                     DK_OK);
    ck_assert(pp.relative);
    /* ls = 1 is "never decide" (l_s = L), allowed; the first decision layer follows ls or layer */
    dk_policy_params_default(&pp);
    pp.ls = 1;
    ck_assert_int_eq(dk_policy_first_layer(dk_policy_find("dash"), &pp, 24), 24);
    pp.ls = 0.4;
    ck_assert_int_eq(dk_policy_first_layer(dk_policy_find("dash"), &pp, 24), 9);
    pp.layer = 2;
    ck_assert_int_eq(dk_policy_first_layer(dk_policy_find("fastv"), &pp, 24), 2);
    ck_assert_int_eq(dk_policy_first_layer(dk_policy_find("dash"), &pp, 24), 9);
    ck_assert_int_eq(dk_policy_first_layer(dk_policy_find("dense"), &pp, 24), 24);
}
END_TEST

/* ---- the prefill command ---- */

#define REF_MODEL "tests/data/ref_llama_f32.gguf"
#define PROMPT                                                                                          \
    "-p 'The quick brown fox jumps over the lazy dog and then runs far away into the forest, where it " \
    "hides.'"

START_TEST(test_cli_errors) {
    static const char *cases[][2] = {
        {"--rho 1", "dashkit prefill: dash: rho = 1 is outside [0, 1)\n"},
        {"--ls 1.5", "dashkit prefill: dash: ls = 1.5 is outside [0, 1]\n"},
        {"--tau -1", "dashkit prefill: dash-tau: tau = -1 must be >= 0\n"},
        {"--method nope", "dashkit prefill: unknown method 'nope' (known: dense, dash, dash-tau, dash-keep, "
                          "multistep, random, inverse, dblock, fastv, snapkv)\n"},
        {"--method fastv --layer 3", "dashkit prefill: fastv: layer = 3 must be < n_layer = 3\n"},
        {"--method dash-keep", "dashkit prefill: dash-keep: keep is required (tokens kept)\n"},
        {"--method random --window 4",
         "dashkit prefill: random: unknown parameter 'window' (accepted: rho, ls, seed, sink, recent)\n"},
        {"--rho abc", "dashkit prefill: dash: rho = 'abc' is not a number\n"},
        {"--frobnicate 1", "dashkit prefill: unknown option '--frobnicate' (see --help)\n"},
    };
    char cmd[1024];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = NULL;
        snprintf(cmd, sizeof cmd, "%s prefill " REF_MODEL " " PROMPT " %s", dk_test_cli(), cases[i][0]);
        int rc = dk_test_run(cmd, 1, &out);
        ck_assert_msg(rc == 2, "%s: exit %d", cases[i][0], rc);
        ck_assert_str_eq(out, cases[i][1]);
        free(out);
    }
    char *out = NULL;
    snprintf(cmd, sizeof cmd, "%s prefill " REF_MODEL " " PROMPT " --prompt-file x", dk_test_cli());
    ck_assert_int_eq(dk_test_run(cmd, 1, &out), 2);
    ck_assert_str_eq(out, "dashkit prefill: give exactly one of --prompt-file F or -p TEXT\n");
    free(out);
    snprintf(cmd, sizeof cmd, "%s prefill " REF_MODEL " --prompt-file /nonexistent/p.txt", dk_test_cli());
    ck_assert_int_eq(dk_test_run(cmd, 1, &out), 1);
    ck_assert_str_eq(out, "dashkit prefill: /nonexistent/p.txt: cannot open prompt file\n");
    free(out);
    snprintf(cmd, sizeof cmd, "%s prefill --help", dk_test_cli());
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    ck_assert(strstr(out, "--keep") && strstr(out, "A(n)") && strstr(out, "snapkv"));
    free(out);
}
END_TEST

static double jnum(cJSON *o, const char *k) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(cJSON_IsNumber(v), "JSON key %s missing", k);
    return v->valuedouble;
}

START_TEST(test_cli_json_and_text) {
    char cmd[1024], *out = NULL;
    snprintf(cmd, sizeof cmd,
             "%s prefill " REF_MODEL " " PROMPT
             " --question 'Where?' --method dash --rho 0.5 --ls 0.4 --decode 3 --json",
             dk_test_cli());
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    cJSON *j = cJSON_Parse(out);
    ck_assert_msg(j != NULL, "not JSON: %s", out);
    int T = (int)jnum(j, "context_tokens");
    ck_assert_int_eq((int)jnum(j, "n_layer"), 3);
    ck_assert_int_eq((int)jnum(j, "l_s"), 1);
    ck_assert_int_eq((int)jnum(j, "kept_tokens"), T / 2);
    cJSON *layers = cJSON_GetObjectItemCaseSensitive(j, "layers");
    ck_assert_int_eq(cJSON_GetArraySize(layers), 3);
    ck_assert_int_eq((int)jnum(cJSON_GetArrayItem(layers, 2), "active"), T / 2);
    ck_assert_int_eq((int)jnum(cJSON_GetArrayItem(layers, 1), "active"), T);
    ck_assert(jnum(cJSON_GetArrayItem(layers, 1), "flops_halt") > 0);
    double fd = jnum(j, "total_flops_dense"), fm = jnum(j, "total_flops_method");
    ck_assert(fm < fd);
    ck_assert(fabs(jnum(j, "flops_speedup") - fd / fm) < 1e-12);
    ck_assert(jnum(j, "theoretical_speedup") > 1);
    ck_assert(jnum(j, "kl_divergence") >= 0);
    double t1 = jnum(j, "top1_agreement");
    ck_assert(t1 == 0 || t1 == 1);
    ck_assert(jnum(j, "wall_speedup") > 0);
    ck_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "answer_method")));
    cJSON_Delete(j);
    free(out);

    /* rho = 0: same distribution exactly */
    snprintf(cmd, sizeof cmd, "%s prefill " REF_MODEL " " PROMPT " --rho 0 --json", dk_test_cli());
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    j = cJSON_Parse(out);
    ck_assert(j != NULL);
    ck_assert(jnum(j, "kl_divergence") == 0 && jnum(j, "top1_agreement") == 1);
    cJSON_Delete(j);
    free(out);

    /* text: the named lines */
    snprintf(cmd, sizeof cmd, "%s prefill " REF_MODEL " " PROMPT " --keep 7", dk_test_cli());
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    const char *lines[] = {"method: dash-keep\n",  "params: keep=7 ls=0.4 sink=0 recent=0\n",
                           "kept_tokens: 7\n",     "total_flops_dense: ",
                           "total_flops_method: ", "flops_speedup: ",
                           "wall_speedup: ",       "theoretical_speedup: ",
                           "kl_divergence: ",      "top1_agreement: "};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        ck_assert_msg(strstr(out, lines[i]), "missing '%s' in\n%s", lines[i], out);
    free(out);
}
END_TEST

static Suite *halting_suite(void) {
    Suite *s = suite_create("halting");
    TCase *tc = tcase_create("engine");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_noop_bit_identical, 0, N_NOOP);
    tcase_add_loop_test(tc, test_halted_state_frozen, 0, 4);
    tcase_add_loop_test(tc, test_flops_closed_form, 0, 2);
    tcase_add_test(tc, test_select_rules);
    tcase_add_test(tc, test_policy_sets);
    tcase_add_test(tc, test_params);
    suite_add_tcase(s, tc);
    TCase *tcli = tcase_create("cli");
    tcase_set_timeout(tcli, 120);
    tcase_add_test(tcli, test_cli_errors);
    tcase_add_test(tcli, test_cli_json_and_text);
    suite_add_tcase(s, tcli);
    return s;
}

int main(void) { return dk_test_main(halting_suite()); }
