/* test_policy_ref.c — the `dash` policy and the prefill protocol (engine/policy.c, prefill.c)
 * against the plain-PyTorch DASH reference of scripts/ref_halting.py (tests/data/ref_halt_*.bin):
 * Δ at l_s, the exact kept positions, context logits, dense question prefill against per-layer
 * caches of different lengths, greedy decode tokens and logits. Tolerance: 1e-4 of the logit scale. */
#include "support/dk_test.h"
#include "forward.h"
#include "model.h"
#include "policy.h"
#include "prefill.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REF_TOL 1e-4

typedef struct {
    char model[33];
    uint32_t n_layer, l_s, T, Q, n_decode, n_vocab, K;
    float rho, ls_frac;
    int32_t *ctx, *question, *active, *dec_tokens;
    float *delta, *ctx_logits, *q_logits, *dec_logits;
    unsigned char *buf;
} golden;

/* Layout: scripts/ref_halting.py header. */
static void golden_load(const char *name, golden *g) {
    char path[256];
    snprintf(path, sizeof path, "tests/data/ref_halt_%s.bin", name);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    size_t n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    g->buf = malloc(n);
    ck_assert(fread(g->buf, 1, n, f) == n);
    fclose(f);
    unsigned char *b = g->buf;
    ck_assert_msg(n >= 76 && !memcmp(b, "DKHALT01", 8), "%s: bad magic", path);
    memcpy(g->model, b + 8, 32);
    g->model[32] = 0;
    uint32_t u[7];
    memcpy(u, b + 40, sizeof u);
    g->n_layer = u[0];
    g->l_s = u[1];
    g->T = u[2];
    g->Q = u[3];
    g->n_decode = u[4];
    g->n_vocab = u[5];
    g->K = u[6];
    memcpy(&g->rho, b + 68, 4);
    memcpy(&g->ls_frac, b + 72, 4);
    size_t off = 76;
#define TAKE(f, cnt)              \
    do {                          \
        g->f = (void *)(b + off); \
        off += 4 * (size_t)(cnt); \
    } while (0)
    TAKE(ctx, g->T);
    TAKE(question, g->Q);
    TAKE(delta, g->T);
    TAKE(active, g->K);
    TAKE(ctx_logits, g->n_vocab);
    TAKE(q_logits, g->n_vocab);
    TAKE(dec_tokens, g->n_decode);
    TAKE(dec_logits, (size_t)g->n_decode * g->n_vocab);
#undef TAKE
    ck_assert_msg(off == n, "%s: size %zu, header implies %zu", path, n, off);
}

static double rel_err(const float *a, const float *b, size_t n) {
    double m = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        m = fmax(m, fabs((double)a[i] - b[i]));
        s = fmax(s, fabs((double)b[i]));
    }
    return m / s;
}

static const char *CASES[] = {"llama_r50_ls1", "llama_r667_ls1", "llama_r75_ls0", "llama_r0_ls1",
                              "qwen2_r50_ls0"};
#define N_CASES ((int)(sizeof CASES / sizeof CASES[0]))

/* rho and ls as the reference used them (python doubles written as float32): parse the decimal. */
static void case_params(const golden *g, const dk_policy *p, dk_policy_params *pp) {
    char v[32];
    dk_err e = {{0}};
    dk_policy_params_default(pp);
    snprintf(v, sizeof v, "%.6g", (double)g->rho);
    ck_assert_msg(dk_policy_params_set_text(p, pp, "rho", v, &e) == DK_OK, "%s", e.msg);
    snprintf(v, sizeof v, "%.6g", (double)g->ls_frac);
    ck_assert_msg(dk_policy_params_set_text(p, pp, "ls", v, &e) == DK_OK, "%s", e.msg);
}

START_TEST(test_dash_vs_torch) {
    golden g;
    golden_load(CASES[_i], &g);
    char path[256];
    snprintf(path, sizeof path, "tests/data/%s", g.model);
    dk_model *m = NULL;
    dk_ctx *c = NULL;
    dk_err e = {{0}};
    ck_assert_msg(dk_model_load(path, NULL, &m, &e) == DK_OK, "%s", e.msg);
    ck_assert_msg(dk_ctx_create(m, (int)(g.T + g.Q + g.n_decode), &c, &e) == DK_OK, "%s", e.msg);
    const dk_policy *p = dk_policy_find("dash");
    dk_policy_params pp;
    case_params(&g, p, &pp);
    ck_assert_int_eq(dk_policy_first_layer(p, &pp, (int)g.n_layer), (int)g.l_s);

    /* context with the policy, scores visible through a run made by hand */
    dk_policy_run *run = NULL;
    ck_assert_msg(dk_policy_run_create(p, &pp, (int)g.n_layer, (int)g.T, &run, &e) == DK_OK, "%s", e.msg);
    dk_prefill_opts o = {0};
    dk_policy_run_opts(run, &o);
    float *lg = malloc(sizeof(float) * g.n_vocab);
    ck_assert_msg(dk_forward_prefill(c, g.ctx, (int)g.T, &o, lg, &e) == DK_OK, "%s", e.msg);
    double worst = rel_err(lg, g.ctx_logits, g.n_vocab);
    ck_assert_msg(worst <= REF_TOL, "%s: context logits differ by %.3e", CASES[_i], worst);
    bool halts = g.l_s + 1 < g.n_layer;
    if (halts) {
        ck_assert(run->stats[g.l_s].decided);
        ck_assert_int_eq(run->stats[g.l_s].n_kept, (int)g.K);
        double d = rel_err(run->score + (size_t)g.l_s * g.T, g.delta, g.T);
        ck_assert_msg(d <= REF_TOL, "%s: delta differs by %.3e", CASES[_i], d);
        /* the exact kept positions, in the cache of every later layer */
        for (uint32_t l = g.l_s + 1; l < g.n_layer; l++) {
            const dk_kv_cache *kv = dk_ctx_cache(c, (int)l);
            ck_assert_int_eq(kv->len, (int)g.K);
            ck_assert_msg(!memcmp(kv->pos, g.active, g.K * sizeof(int32_t)),
                          "%s: kept set differs at layer %u", CASES[_i], l);
        }
    }
    dk_policy_run_free(run);

    /* question densely, then decode the reference's tokens step by step */
    ck_assert_msg(dk_forward_prefill(c, g.question, (int)g.Q, NULL, lg, &e) == DK_OK, "%s", e.msg);
    double r = rel_err(lg, g.q_logits, g.n_vocab);
    ck_assert_msg(r <= REF_TOL, "%s: question logits differ by %.3e", CASES[_i], r);
    worst = fmax(worst, r);
    for (uint32_t i = 0; i < g.n_decode; i++) {
        ck_assert_msg(dk_forward_decode(c, g.dec_tokens[i], lg, &e) == DK_OK, "%s", e.msg);
        r = rel_err(lg, g.dec_logits + (size_t)i * g.n_vocab, g.n_vocab);
        ck_assert_msg(r <= REF_TOL, "%s: decode step %u differs by %.3e", CASES[_i], i, r);
        worst = fmax(worst, r);
    }
    for (uint32_t l = 0; l < g.n_layer; l++) {
        int want = (l <= g.l_s || !halts ? (int)g.T : (int)g.K) + (int)(g.Q + g.n_decode);
        ck_assert_int_eq(dk_ctx_cache(c, (int)l)->len, want);
    }

    /* the whole protocol through prefill.h: same logits, greedy tokens equal the reference's */
    dk_prefill_result res;
    ck_assert_msg(dk_prefill_run(c, p, &pp, g.ctx, (int)g.T, g.question, (int)g.Q, NULL, &res, &e) == DK_OK,
                  "%s", e.msg);
    ck_assert(rel_err(res.ctx_logits, g.ctx_logits, g.n_vocab) <= REF_TOL);
    ck_assert(rel_err(res.q_logits, g.q_logits, g.n_vocab) <= REF_TOL);
    ck_assert_int_eq(res.n_active, halts ? (int)g.K : (int)g.T);
    if (halts) ck_assert(!memcmp(res.active, g.active, g.K * sizeof(int32_t)));
    int32_t *toks = malloc(sizeof(int32_t) * g.n_decode);
    int n_out = 0;
    ck_assert_msg(dk_prefill_decode_greedy(c, res.q_logits, (int)g.n_decode, -1, toks, &n_out, &e) == DK_OK,
                  "%s", e.msg);
    ck_assert_int_eq(n_out, (int)g.n_decode);
    ck_assert_msg(!memcmp(toks, g.dec_tokens, g.n_decode * sizeof(int32_t)), "%s: greedy tokens differ",
                  CASES[_i]);
    /* decoding leaves caches of different lengths: l_s and earlier hold all T, later only K */
    for (uint32_t l = 0; l < g.n_layer; l++) {
        int want = (l <= g.l_s || !halts ? (int)g.T : (int)g.K) + (int)(g.Q + g.n_decode) - 1;
        ck_assert_int_eq(dk_ctx_cache(c, (int)l)->len, want);
    }
    printf("%s: K=%u of T=%u at l_s=%u, max err %.2e\n", CASES[_i], g.K, g.T, g.l_s, worst);
    dk_prefill_result_free(&res);
    free(toks);
    free(lg);
    free(g.buf);
    dk_ctx_free(c);
    dk_model_free(m);
}
END_TEST

static Suite *policy_ref_suite(void) {
    Suite *s = suite_create("policy_ref");
    TCase *tc = tcase_create("dash_vs_torch");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_dash_vs_torch, 0, N_CASES);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return dk_test_main(policy_ref_suite()); }
