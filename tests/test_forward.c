/* test_forward.c — forward-pass invariants on random small models, the halting mechanism, and
 * llama2.c's published stories260K output through `dashkit generate`. */
#include "support/dk_test.h"
#include "forward.h"
#include "model.h"
#include "policy.h"
#include "prefill.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static dk_model *make_model(const char *shape) { return dk_test_model_shape(shape, 0, 7); }

static void make_tokens(int32_t *t, int n, int n_vocab) {
    uint32_t s = 12345;
    for (int i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        t[i] = (int32_t)((s >> 8) % (uint32_t)n_vocab);
    }
}

/* Batched prefill of P tokens then decode == token-by-token decode (<= 1e-5), for every row. */
static void check_prefill_vs_decode(const char *shape) {
    enum { P = 37, D = 6, N = P + D };
    dk_model *m = make_model(shape);
    int V = m->cfg.n_vocab;
    int32_t tok[N];
    make_tokens(tok, N, V);
    dk_err e = {{0}};
    dk_ctx *a, *b;
    ck_assert_int_eq(dk_ctx_create(m, 64, &a, &e), DK_OK);
    ck_assert_int_eq(dk_ctx_create(m, 64, &b, &e), DK_OK);
    float *la = malloc((size_t)N * V * 4), *lb = malloc((size_t)N * V * 4);
    dk_prefill_opts o = {.all_logits = true};
    ck_assert_int_eq(dk_forward_prefill(a, tok, P, &o, la, &e), DK_OK);
    for (int i = P; i < N; i++) ck_assert_int_eq(dk_forward_decode(a, tok[i], la + (size_t)i * V, &e), DK_OK);
    for (int i = 0; i < N; i++) ck_assert_int_eq(dk_forward_decode(b, tok[i], lb + (size_t)i * V, &e), DK_OK);
    ck_assert_int_eq(dk_ctx_n_past(a), N);
    double md = 0;
    for (size_t i = 0; i < (size_t)N * V; i++) md = fmax(md, fabs(la[i] - lb[i]));
    ck_assert_msg(md <= 1e-5, "%s: max |prefill - token-by-token| = %g", shape, md);
    /* the logits are not trivially equal: rows differ from each other */
    ck_assert(fabs(la[0] - la[(size_t)(N - 1) * V]) > 1e-3);
    free(la);
    free(lb);
    dk_ctx_free(a);
    dk_ctx_free(b);
    dk_model_free(m);
}

START_TEST(test_prefill_vs_decode_llama) { check_prefill_vs_decode("llama-tiny"); }
END_TEST
START_TEST(test_prefill_vs_decode_qwen2) { check_prefill_vs_decode("qwen2-tiny"); }
END_TEST

/* An explicit active set of ALL rows (gather/scatter path) is bit-identical to the dense path. */
START_TEST(test_active_all_bit_identical) {
    enum { N = 300 };
    dk_model *m = make_model("qwen2-tiny");
    int V = m->cfg.n_vocab;
    int32_t tok[N], all[N];
    make_tokens(tok, N, V);
    for (int i = 0; i < N; i++) all[i] = i;
    dk_err e = {{0}};
    dk_ctx *c;
    ck_assert_int_eq(dk_ctx_create(m, N, &c, &e), DK_OK);
    float *l1 = malloc((size_t)N * V * 4), *l2 = malloc((size_t)N * V * 4);
    dk_prefill_opts dense = {.all_logits = true}, act = {.all_logits = true, .active = all, .n_active = N};
    ck_assert_int_eq(dk_forward_prefill(c, tok, N, &dense, l1, &e), DK_OK);
    dk_flops f1 = dk_ctx_stats(c)->total;
    dk_ctx_reset(c);
    ck_assert_int_eq(dk_forward_prefill(c, tok, N, &act, l2, &e), DK_OK);
    ck_assert(memcmp(l1, l2, (size_t)N * V * 4) == 0);
    ck_assert(memcmp(&f1, &dk_ctx_stats(c)->total, sizeof f1) == 0);
    free(l1);
    free(l2);
    dk_ctx_free(c);
    dk_model_free(m);
}
END_TEST

/* ---- halting through the hook ---- */

typedef struct {
    int decide_layer; /* AFTER_LAYER of this layer sets the active set */
    int keep_every;   /* keep rows with index % keep_every == 0, and the last row */
    float *after;     /* (n, n_embd) hidden state of every row after decide_layer */
    int calls_attn, calls_layer;
} dk_halt_state;

static dk_status halt_hook(void *user, dk_hook_point pt, const dk_layer_view *v, int32_t *next, int *n_next,
                           dk_err *e) {
    (void)e;
    dk_halt_state *h = user;
    if (pt == DK_HOOK_AFTER_ATTN) {
        h->calls_attn++;
        return DK_OK;
    }
    h->calls_layer++;
    if (v->layer != h->decide_layer) return DK_OK;
    for (int i = 0; i < v->n_active; i++)
        memcpy(h->after + (size_t)v->active[i] * v->n_embd, v->x_out + (size_t)i * v->n_embd,
               (size_t)v->n_embd * 4);
    int k = 0;
    for (int i = 0; i < v->n_active; i++)
        if (v->active[i] % h->keep_every == 0 || v->active[i] == v->n_tokens - 1) next[k++] = v->active[i];
    *n_next = k;
    return DK_OK;
}

START_TEST(test_halting_mechanism) {
    enum { N = 50 };
    dk_model *m = make_model("llama-tiny");
    const dk_model_config *k = &m->cfg;
    int V = k->n_vocab, d = k->n_embd, L = k->n_layer;
    int32_t tok[N];
    make_tokens(tok, N, V);
    dk_err e = {{0}};
    dk_ctx *c;
    ck_assert_int_eq(dk_ctx_create(m, N + 4, &c, &e), DK_OK);
    float *hid = malloc((size_t)N * d * 4), *logits = malloc((size_t)V * 4);
    dk_halt_state h = {.decide_layer = 0, .keep_every = 3, .after = calloc((size_t)N * d, 4)};
    dk_prefill_opts o = {.hook = halt_hook, .hook_user = &h, .hidden_out = hid};
    ck_assert_int_eq(dk_forward_prefill(c, tok, N, &o, logits, &e), DK_OK);
    ck_assert_int_eq(h.calls_attn, L);
    ck_assert_int_eq(h.calls_layer, L);
    int n_keep = 0;
    for (int i = 0; i < N; i++) n_keep += (i % 3 == 0 || i == N - 1);
    const dk_forward_stats *st = dk_ctx_stats(c);
    ck_assert_int_eq(st->layers[0].n_active, N);
    ck_assert_int_eq(dk_ctx_cache(c, 0)->len, N);
    for (int l = 1; l < L; l++) {
        ck_assert_int_eq(st->layers[l].n_active, n_keep);
        ck_assert_int_eq(dk_ctx_cache(c, l)->len, n_keep);
        ck_assert_int_eq(dk_ctx_cache(c, l)->pos[1], 3); /* original positions kept */
        /* closed-form QKV count for the active rows */
        int64_t qkv = 2 * (int64_t)n_keep * d * (k->n_head + 2 * k->n_head_kv) * k->head_dim;
        ck_assert_int_eq(st->layers[l].flops.c[DK_FLOPS_QKV], qkv);
    }
    ck_assert_int_eq(st->layers[0].flops.c[DK_FLOPS_QKV],
                     2 * (int64_t)N * d * (k->n_head + 2 * k->n_head_kv) * k->head_dim);
    /* halted rows' final hidden state == their state after the decision layer, bit for bit */
    for (int i = 0; i < N; i++) {
        bool kept = i % 3 == 0 || i == N - 1;
        int same = memcmp(hid + (size_t)i * d, h.after + (size_t)i * d, (size_t)d * 4) == 0;
        ck_assert_msg(kept ? !same : same, "row %d (kept %d)", i, kept);
    }
    /* decode continues at position N over caches of different lengths */
    ck_assert_int_eq(dk_forward_decode(c, tok[0], logits, &e), DK_OK);
    ck_assert_int_eq(dk_ctx_cache(c, 0)->len, N + 1);
    ck_assert_int_eq(dk_ctx_cache(c, 1)->len, n_keep + 1);
    ck_assert_int_eq(dk_ctx_cache(c, 1)->pos[n_keep], N);
    for (int i = 0; i < V; i++) ck_assert(isfinite(logits[i]));
    free(hid);
    free(logits);
    free(h.after);
    dk_ctx_free(c);
    dk_model_free(m);
}
END_TEST

static dk_status bad_hook(void *user, dk_hook_point pt, const dk_layer_view *v, int32_t *next, int *n_next,
                          dk_err *e) {
    (void)user;
    (void)v;
    (void)e;
    if (pt == DK_HOOK_AFTER_LAYER) {
        next[0] = 5;
        next[1] = 2;
        *n_next = 2;
    }
    return DK_OK;
}

START_TEST(test_bad_active_sets) {
    dk_model *m = make_model("llama-tiny");
    int32_t tok[10];
    make_tokens(tok, 10, m->cfg.n_vocab);
    dk_err e = {{0}};
    dk_ctx *c;
    ck_assert_int_eq(dk_ctx_create(m, 16, &c, &e), DK_OK);
    int32_t unsorted[] = {3, 1};
    dk_prefill_opts o = {.active = unsorted, .n_active = 2};
    ck_assert_int_eq(dk_forward_prefill(c, tok, 10, &o, NULL, &e), DK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(e.msg, "not sorted"));
    dk_prefill_opts o2 = {.hook = bad_hook};
    ck_assert_int_eq(dk_forward_prefill(c, tok, 10, &o2, NULL, &e), DK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(e.msg, "layer 0"));
    /* a failed call leaves the caches as they were */
    ck_assert_int_eq(dk_ctx_n_past(c), 0);
    for (int l = 0; l < m->cfg.n_layer; l++) ck_assert_int_eq(dk_ctx_cache(c, l)->len, 0);
    ck_assert_int_eq(dk_forward_prefill(c, tok, 17, NULL, NULL, &e), DK_ERR_STATE);
    int32_t badtok = m->cfg.n_vocab;
    ck_assert_int_eq(dk_forward_decode(c, badtok, NULL, &e), DK_ERR_ARG);
    dk_ctx_free(c);
    dk_model_free(m);
}
END_TEST

/* ---- split prefill (prefix sharing) ---- */

typedef struct {
    int layer; /* AFTER_LAYER of this layer sets `set` */
    const int32_t *set;
    int n_set;
} dk_set_hook;

static dk_status set_hook(void *user, dk_hook_point pt, const dk_layer_view *v, int32_t *next, int *n_next,
                          dk_err *e) {
    (void)e;
    dk_set_hook *h = user;
    if (pt != DK_HOOK_AFTER_LAYER || v->layer != h->layer) return DK_OK;
    memcpy(next, h->set, (size_t)h->n_set * 4);
    *n_next = h->n_set;
    return DK_OK;
}

/* caches of every layer equal (len, pos, k, v of the valid rows) */
static void assert_caches_equal(const dk_ctx *a, const dk_ctx *b, int L, int kvd, const char *what) {
    for (int l = 0; l < L; l++) {
        const dk_kv_cache *x = dk_ctx_cache(a, l), *y = dk_ctx_cache(b, l);
        ck_assert_msg(x->len == y->len, "%s: layer %d cache len %d vs %d", what, l, x->len, y->len);
        ck_assert_msg(memcmp(x->pos, y->pos, (size_t)x->len * 4) == 0, "%s: layer %d positions", what, l);
        ck_assert_msg(memcmp(x->k, y->k, (size_t)x->len * kvd * 4) == 0, "%s: layer %d keys", what, l);
        ck_assert_msg(memcmp(x->v, y->v, (size_t)x->len * kvd * 4) == 0, "%s: layer %d values", what, l);
    }
}

/* prefix (layers 0..l) once + suffix per active set == one full prefill per set (hook setting it
 * after layer l), bit for bit: logits of every row, hidden states, caches, FLOPs, n_active. The
 * chunk follows an earlier chunk (n_past > 0), and a question + decode run between suffixes. */
START_TEST(test_split_prefill_bit_identical) {
    enum { P0 = 23, N = 90, Q = 7, S = 3 };
    dk_model *m = make_model("qwen2-tiny");
    const dk_model_config *k = &m->cfg;
    int V = k->n_vocab, d = k->n_embd, L = k->n_layer, kvd = k->n_head_kv * k->head_dim;
    ck_assert_int_ge(L, 2);
    int ls = L / 2 - 1;
    int32_t tok[P0 + N + Q];
    make_tokens(tok, P0 + N + Q, V);
    /* three sets: all rows, every 2nd (+ last), a sparse tail */
    int32_t sets[S][N];
    int n_sets[S] = {0, 0, 0};
    for (int i = 0; i < N; i++) {
        sets[0][n_sets[0]++] = i;
        if (i % 2 == 0 || i == N - 1) sets[1][n_sets[1]++] = i;
        if (i % 7 == 3 || i >= N - 4) sets[2][n_sets[2]++] = i;
    }
    dk_err e = {{0}};
    dk_ctx *full, *split;
    ck_assert_int_eq(dk_ctx_create(m, P0 + N + Q + 1, &full, &e), DK_OK);
    ck_assert_int_eq(dk_ctx_create(m, P0 + N + Q + 1, &split, &e), DK_OK);
    float *lf = malloc((size_t)N * V * 4), *lsp = malloc((size_t)N * V * 4), *qf = malloc((size_t)V * 4),
          *qs = malloc((size_t)V * 4);
    float *hf = malloc((size_t)N * d * 4), *hs = malloc((size_t)N * d * 4), *l_all = malloc((size_t)V * 4);
    ck_assert_int_eq(dk_forward_prefill(split, tok, P0, NULL, NULL, &e), DK_OK);
    ck_assert_int_eq(dk_forward_prefill_prefix(split, tok + P0, N, ls, NULL, &e), DK_OK);
    ck_assert_int_eq(dk_ctx_n_past(split), P0);
    ck_assert_int_eq(dk_ctx_split_layer(split), ls);
    /* pending: plain prefill/decode refused, nothing changed */
    ck_assert_int_eq(dk_forward_decode(split, tok[0], NULL, &e), DK_ERR_STATE);
    ck_assert_ptr_nonnull(strstr(e.msg, "pending"));
    ck_assert_int_eq(dk_ctx_cache(split, ls)->len, P0 + N);
    ck_assert_int_eq(dk_ctx_cache(split, ls + 1)->len, P0);
    for (int s = 0; s < S; s++) {
        dk_set_hook h = {.layer = ls, .set = sets[s], .n_set = n_sets[s]};
        dk_prefill_opts of = {.hook = set_hook, .hook_user = &h, .all_logits = true, .hidden_out = hf};
        dk_ctx_reset(full);
        ck_assert_int_eq(dk_forward_prefill(full, tok, P0, NULL, NULL, &e), DK_OK);
        ck_assert_int_eq(dk_forward_prefill(full, tok + P0, N, &of, lf, &e), DK_OK);
        dk_forward_stats sf = *dk_ctx_stats(full);
        dk_layer_stats lsf[64];
        memcpy(lsf, sf.layers, (size_t)L * sizeof *lsf);
        dk_prefill_opts os = {.active = sets[s], .n_active = n_sets[s], .all_logits = true, .hidden_out = hs};
        ck_assert_int_eq(dk_forward_prefill_suffix(split, &os, lsp, &e), DK_OK);
        ck_assert_int_eq(dk_ctx_n_past(split), P0 + N);
        ck_assert_msg(memcmp(lf, lsp, (size_t)N * V * 4) == 0, "set %d: logits differ", s);
        ck_assert_msg(memcmp(hf, hs, (size_t)N * d * 4) == 0, "set %d: hidden states differ", s);
        assert_caches_equal(full, split, L, kvd, "after the chunk");
        const dk_forward_stats *ss = dk_ctx_stats(split);
        ck_assert(memcmp(&sf.total, &ss->total, sizeof sf.total) == 0);
        for (int l = 0; l < L; l++) {
            ck_assert_int_eq(lsf[l].n_active, ss->layers[l].n_active);
            ck_assert(memcmp(&lsf[l].flops, &ss->layers[l].flops, sizeof lsf[l].flops) == 0);
        }
        ck_assert_int_eq(ss->layers[L - 1].n_active, n_sets[s]);
        ck_assert(ss->prefix_wall_s > 0 && ss->wall_s >= ss->prefix_wall_s);
        /* a question and a decoded token continue identically; the next suffix drops them */
        ck_assert_int_eq(dk_forward_prefill(full, tok + P0 + N, Q, NULL, qf, &e), DK_OK);
        ck_assert_int_eq(dk_forward_prefill(split, tok + P0 + N, Q, NULL, qs, &e), DK_OK);
        ck_assert_int_eq(dk_forward_decode(full, dk_argmax(qf, V), qf, &e), DK_OK);
        ck_assert_int_eq(dk_forward_decode(split, dk_argmax(qs, V), qs, &e), DK_OK);
        ck_assert(memcmp(qf, qs, (size_t)V * 4) == 0);
        assert_caches_equal(full, split, L, kvd, "after question and decode");
        /* the sets really differ in what they produce (last row's logits) */
        if (s == 0) memcpy(l_all, lsp + (size_t)(N - 1) * V, (size_t)V * 4);
        else ck_assert(memcmp(l_all, lsp + (size_t)(N - 1) * V, (size_t)V * 4) != 0);
    }
    /* NULL active continues with the prefix's own (dense) set == dense prefill */
    dk_ctx_reset(full);
    ck_assert_int_eq(dk_forward_prefill(full, tok, P0, NULL, NULL, &e), DK_OK);
    dk_prefill_opts od = {.all_logits = true};
    ck_assert_int_eq(dk_forward_prefill(full, tok + P0, N, &od, lf, &e), DK_OK);
    ck_assert_int_eq(dk_forward_prefill_suffix(split, &od, lsp, &e), DK_OK);
    ck_assert(memcmp(lf, lsp, (size_t)N * V * 4) == 0);
    assert_caches_equal(full, split, L, kvd, "dense suffix");
    /* errors: bad set, truncating into the chunk forgets the split, bad layer */
    int32_t bad[2] = {4, 4};
    dk_prefill_opts ob = {.active = bad, .n_active = 2};
    ck_assert_int_eq(dk_forward_prefill_suffix(split, &ob, NULL, &e), DK_ERR_ARG);
    ck_assert_int_eq(dk_ctx_truncate(split, P0 + 5, &e), DK_OK);
    ck_assert_int_eq(dk_ctx_split_layer(split), -1);
    ck_assert_int_eq(dk_forward_prefill_suffix(split, NULL, NULL, &e), DK_ERR_STATE);
    ck_assert_int_eq(dk_forward_prefill_prefix(split, tok, 4, L, NULL, &e), DK_ERR_ARG);
    free(lf);
    free(lsp);
    free(qf);
    free(qs);
    free(hf);
    free(hs);
    free(l_all);
    dk_ctx_free(full);
    dk_ctx_free(split);
    dk_model_free(m);
}
END_TEST

/* The runner's use of the split with a real policy, no policy change: split at the layer before
 * the policy's first decision, then per setting a suffix with that setting's policy hook.
 * Context and question logits and caches == dk_prefill_run (the unshared path), bit for bit. */
START_TEST(test_split_prefill_with_policy) {
    enum { N = 80, Q = 5 };
    dk_model *m = make_model("qwen2-tiny");
    const dk_model_config *k = &m->cfg;
    int V = k->n_vocab, L = k->n_layer, kvd = k->n_head_kv * k->head_dim;
    int32_t tok[N + Q];
    make_tokens(tok, N + Q, V);
    dk_err e = {{0}};
    const dk_policy *p = dk_policy_find("dash");
    ck_assert_ptr_nonnull(p);
    dk_ctx *full, *split;
    ck_assert_int_eq(dk_ctx_create(m, N + Q, &full, &e), DK_OK);
    ck_assert_int_eq(dk_ctx_create(m, N + Q, &split, &e), DK_OK);
    float *lc = malloc((size_t)V * 4), *lq = malloc((size_t)V * 4);
    const double rhos[3] = {0.3, 0.5, 0.8};
    int first = -1;
    for (int i = 0; i < 3; i++) {
        dk_policy_params pp;
        dk_policy_params_default(&pp);
        ck_assert_int_eq(dk_policy_params_set(p, &pp, "rho", rhos[i], &e), DK_OK);
        ck_assert_int_eq(dk_policy_params_set(p, &pp, "ls", 0.34, &e), DK_OK);
        int f = dk_policy_first_layer(p, &pp, L);
        ck_assert(f >= 1 && f < L);
        if (i == 0) {
            first = f;
            ck_assert_int_eq(dk_forward_prefill_prefix(split, tok, N, first - 1, NULL, &e), DK_OK);
        }
        ck_assert_int_eq(f, first);
        dk_prefill_result r;
        ck_assert_int_eq(dk_prefill_run(full, p, &pp, tok, N, tok + N, Q, NULL, &r, &e), DK_OK);
        ck_assert_int_lt(r.n_active, N);
        dk_policy_run *run;
        ck_assert_int_eq(dk_policy_run_create(p, &pp, L, N, &run, &e), DK_OK);
        dk_prefill_opts o = {0};
        dk_policy_run_opts(run, &o);
        ck_assert_int_eq(dk_forward_prefill_suffix(split, &o, lc, &e), DK_OK);
        ck_assert_int_eq(dk_ctx_cache(split, L - 1)->len, r.n_active);
        ck_assert_msg(memcmp(lc, r.ctx_logits, (size_t)V * 4) == 0, "rho %g: context logits", rhos[i]);
        ck_assert_int_eq(dk_forward_prefill(split, tok + N, Q, NULL, lq, &e), DK_OK);
        ck_assert_msg(memcmp(lq, r.q_logits, (size_t)V * 4) == 0, "rho %g: question logits", rhos[i]);
        assert_caches_equal(full, split, L, kvd, "policy split");
        dk_policy_run_free(run);
        dk_prefill_result_free(&r);
    }
    free(lc);
    free(lq);
    dk_ctx_free(full);
    dk_ctx_free(split);
    dk_model_free(m);
}
END_TEST

/* Dense FLOP count equals the closed form for every component that is shape-determined. */
START_TEST(test_dense_flops_closed_form) {
    enum { N = 40 };
    dk_model *m = make_model("qwen2-tiny");
    const dk_model_config *k = &m->cfg;
    int32_t tok[N];
    make_tokens(tok, N, k->n_vocab);
    dk_err e = {{0}};
    dk_ctx *c;
    ck_assert_int_eq(dk_ctx_create(m, N, &c, &e), DK_OK);
    float *lg = malloc((size_t)k->n_vocab * 4);
    ck_assert_int_eq(dk_forward_prefill(c, tok, N, NULL, lg, &e), DK_OK);
    const dk_forward_stats *st = dk_ctx_stats(c);
    int64_t d = k->n_embd, q = (int64_t)k->n_head * k->head_dim, kv = (int64_t)k->n_head_kv * k->head_dim;
    for (int l = 0; l < k->n_layer; l++) {
        const dk_flops *f = &st->layers[l].flops;
        ck_assert_int_eq(f->c[DK_FLOPS_QKV], 2 * N * d * (q + 2 * kv) + N * (q + 2 * kv));
        ck_assert_int_eq(f->c[DK_FLOPS_O], 2 * N * q * d);
        ck_assert_int_eq(f->c[DK_FLOPS_FFN], 3 * 2 * N * d * (int64_t)k->n_ff + 5 * N * (int64_t)k->n_ff);
        /* attention: at least the causal triangle, at most the full square, per head, QK and PV */
        int64_t tri = 2 * 2 * (int64_t)k->n_head * k->head_dim * (N * (N + 1) / 2),
                sq = 2 * 2 * (int64_t)k->n_head * k->head_dim * N * N;
        ck_assert(f->c[DK_FLOPS_ATTN] >= tri && f->c[DK_FLOPS_ATTN] <= sq);
    }
    ck_assert_int_eq(st->head.c[DK_FLOPS_LM_HEAD], 2 * d * k->n_vocab);
    free(lg);
    dk_ctx_free(c);
    dk_model_free(m);
}
END_TEST

/* llama2.c's published greedy output for stories260K, byte for byte (plus one final newline). */
START_TEST(test_stories260k_generate) {
    char mb[512], tb[512], xb[512];
    const char *model = dk_test_fixture(mb, sizeof mb, "llama2c/stories260K.bin");
    DK_SKIP_IF_NULL(model);
    const char *tok = dk_test_fixture(tb, sizeof tb, "llama2c/tok512.bin");
    DK_SKIP_IF_NULL(tok);
    const char *exp = dk_test_fixture(xb, sizeof xb, "llama2c/expected_stories260K_t0_n200.txt");
    DK_SKIP_IF_NULL(exp);
    FILE *f = fopen(exp, "rb");
    ck_assert_ptr_nonnull(f);
    char want[4096];
    size_t n = fread(want, 1, sizeof want - 2, f);
    fclose(f);
    want[n++] = '\n';
    want[n] = 0;
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s generate '%s' -z '%s' -n 200", dk_test_cli(), model, tok);
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(strlen(out) == n && memcmp(out, want, n) == 0, "got:\n%s", out);
    free(out);
}
END_TEST

int main(void) {
    Suite *s = suite_create("forward");
    TCase *tc = tcase_create("forward");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_prefill_vs_decode_llama);
    tcase_add_test(tc, test_prefill_vs_decode_qwen2);
    tcase_add_test(tc, test_active_all_bit_identical);
    tcase_add_test(tc, test_halting_mechanism);
    tcase_add_test(tc, test_bad_active_sets);
    tcase_add_test(tc, test_split_prefill_bit_identical);
    tcase_add_test(tc, test_split_prefill_with_policy);
    tcase_add_test(tc, test_dense_flops_closed_form);
    tcase_add_test(tc, test_stories260k_generate);
    suite_add_tcase(s, tc);
    return dk_test_main(s);
}
