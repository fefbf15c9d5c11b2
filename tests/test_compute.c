/* test_compute.c — bf16 compute (engine/compute.h, oneDNN) against the f32 path.
 *
 * Bounds (u = 2^-8, the unit roundoff of bf16: 8 significant bits, round to nearest even):
 *  - one product (backend): x̃ = x(1+δ), w̃ = w(1+ε), |δ|,|ε| <= u, and x̃·w̃ is exact in f32 (8+8
 *    significant bits); the f32 sum of k terms in any order adds at most γ_k = k·2^-24/(1-k·2^-24)
 *    times Σ|x̃ w̃|. So |ỹ - y| <= (2u + u²)·Σ|x w| + γ_k·(1+u)²·Σ|x w| per output (u for a bf16
 *    weight that is used as it is: only x is rounded). Checked elementwise against a double sum.
 *  - whole model (logits of every prompt row): each bf16 product on the path (7 per layer, plus
 *    the lm head, plus attention's two for full query blocks: engine/attention.h, whose own bound
 *    tests/test_attention.c checks) perturbs its output by at most 2u relative to the output
 *    scale (first order; for attention's scores, at scores of order 1);
 *    pre-norm residual blocks pass a perturbation on with gain <= 1 (RMSNorm rescales), so the
 *    perturbations add at most linearly: max|logit_bf16 - logit_f32| <= P·2u·max|logit_f32|,
 *    P = 9·n_layer + 1. This is a first-order bound, not a worst case over all inputs; the
 *    decisions that matter are then checked exactly: argmax of every row and the greedy
 *    continuation equal f32 on the bundled model's golden prompt, the bundled model's passkey
 *    accuracy is unchanged on a fixed sample set.
 *  - rho = 0 with bf16 equals dense bf16 bit for bit (the same primitives on the same rows).
 * On a CPU without native bf16 (oneDNN's ISA below avx512_core_bf16) the bf16 tests print SKIP;
 * the refusal is tested everywhere (DNNL_MAX_CPU_ISA=AVX512_CORE forces it on a bf16 CPU). */
#include "support/dk_test.h"
#include "blas.h"
#include "compute.h"
#include "config.h"
#include "forward.h"
#include "memory.h"
#include "model.h"
#include "policy.h"
#include "prefill.h"
#include "quant.h"
#include "tokenizer.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TINY_MODEL "models/dashkit-tiny.gguf"
#define TINY_PROMPT "tests/data/tiny_prompt.txt"
/* the bundled model quantized to Q8_0 by llama.cpp (scripts/make_quant_goldens.sh) */
#define TINY_Q8_MODEL "tests/data/tiny_q8_0.gguf"
#define U_BF16 (1.0 / 256.0)
/* bf16 products on the path of a logit (the bound above) */
#define BF16_PRODUCTS(n_layer) (9.0 * (n_layer) + 1)

static bool g_native;

#define SKIP_UNLESS_NATIVE()   \
    do {                       \
        if (!g_native) return; \
    } while (0)

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}
static float rng_unit(uint64_t *s) {
    return (float)((rng_next(s) >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

/* ---- one product against the derived elementwise bound ---- */

static void check_product(int m, int n, int k, int ldy, bool w_bf16, float beta) {
    uint64_t s = 0x1234567ull + (uint64_t)(m * 131 + n * 7 + k);
    float *x = malloc((size_t)m * k * 4), *w = malloc((size_t)n * k * 4), *y = malloc((size_t)m * ldy * 4);
    uint16_t *wb = malloc((size_t)n * k * 2);
    for (int i = 0; i < m * k; i++) x[i] = rng_unit(&s) * (i % 7 == 0 ? 30.0f : 1.0f);
    for (int i = 0; i < n * k; i++) {
        w[i] = rng_unit(&s) * 0.2f;
        if (w_bf16) {
            wb[i] = dk_f32_to_bf16(w[i]);
            w[i] = dk_bf16_to_f32(wb[i]);
        } /* the file's exact values */
    }
    for (int i = 0; i < m * ldy; i++) y[i] = beta != 0.0f ? rng_unit(&s) : NAN; /* beta 0 must overwrite */
    float *y0 = malloc((size_t)m * ldy * 4);
    memcpy(y0, y, (size_t)m * ldy * 4);
    dk_bf16_backend *b = NULL;
    dk_err e = {{0}};
    ck_assert_msg(dk_bf16_backend_init(&b, &e) == DK_OK, "%s", e.msg);
    ck_assert_msg(dk_bf16_matmul(b, y, ldy, x, w_bf16 ? (const void *)wb : (const void *)w, w_bf16, m, n, k,
                                 beta, 2, &e) == DK_OK,
                  "%s", e.msg);
    /* the same product on W packed once (compute.h), checked below like the unpacked one */
    float *yp = malloc((size_t)m * ldy * 4);
    memcpy(yp, y0, (size_t)m * ldy * 4);
    dk_bf16_pack *pk = NULL;
    ck_assert_msg(dk_bf16_pack_create(b, w_bf16 ? (const void *)wb : (const void *)w, w_bf16, n, k, 2, NULL,
                                      &pk, &e) == DK_OK,
                  "%s", e.msg);
    ck_assert_int_ge((long long)dk_bf16_pack_bytes(pk), 2LL * n * k);
    ck_assert_int_le((long long)dk_bf16_pack_bytes(pk), dk_compute_bf16_pack_bytes(n, k));
    ck_assert_msg(dk_bf16_matmul_packed(b, yp, ldy, x, pk, m, beta, 2, &e) == DK_OK, "%s", e.msg);
    /* bit for bit where the engine packs (row stride n) on the avx512_core_bf16 kernels measured
     * here; elsewhere (AMX, another blocking) the bound below holds for both */
    if (ldy == n && !strcmp(dk_compute_isa_name(), "avx512_core_bf16"))
        for (size_t i = 0; i < (size_t)m * ldy; i++)
            ck_assert_msg(!memcmp(&y[i], &yp[i], 4), "m=%d n=%d k=%d: packed y[%zu] = %.9g, unpacked %.9g", m,
                          n, k, i, yp[i], y[i]);
    dk_bf16_pack_free(pk);
    double gk = k * 0x1p-24 / (1 - k * 0x1p-24),
           rel = (w_bf16 ? U_BF16 : 2 * U_BF16 + U_BF16 * U_BF16) + gk * (1 + U_BF16) * (1 + U_BF16);
    for (int v = 0; v < 2; v++)
        for (int i = 0; i < m; i++)
            for (int j = 0; j < ldy; j++) {
                float got = (v ? yp : y)[(size_t)i * ldy + j];
                if (j >= n) {
                    ck_assert_msg(isnan(y0[(size_t)i * ldy + j]) ? isnan(got)
                                                                 : got == y0[(size_t)i * ldy + j],
                                  "column %d beyond n written", j);
                    continue;
                }
                double exact = beta != 0.0f ? y0[(size_t)i * ldy + j] : 0.0, mag = 0;
                for (int t = 0; t < k; t++) {
                    exact += (double)x[(size_t)i * k + t] * w[(size_t)j * k + t];
                    mag += fabs((double)x[(size_t)i * k + t] * w[(size_t)j * k + t]);
                }
                double bound = rel * mag + (beta != 0.0f ? 0x1p-24 * (fabs(exact) + 1) : 0);
                ck_assert_msg(fabs(got - exact) <= bound,
                              "m=%d n=%d k=%d y[%d][%d] = %.9g, exact %.9g, bound %.3g", m, n, k, i, j, got,
                              exact, bound);
            }
    dk_bf16_backend_free(b);
    free(x);
    free(w);
    free(wb);
    free(y);
    free(y0);
    free(yp);
}

START_TEST(test_product_bound) {
    SKIP_UNLESS_NATIVE();
    check_product(37, 45, 128, 45, false, 0.0f);
    check_product(37, 45, 128, 45, true, 0.0f);
    check_product(64, 96, 384, 100, false, 1.0f); /* row stride > n, accumulate into Y */
    check_product(9, 1000, 896, 1000, true, 0.0f);
    check_product(300, 130, 200, 130, false, 0.0f); /* 288 + 12 rows, n and k not multiples of 64 */
    check_product(64, 96, 384, 96, false, 1.0f);
}
END_TEST

START_TEST(test_bad_shape) {
    SKIP_UNLESS_NATIVE();
    dk_bf16_backend *b = NULL;
    dk_err e = {{0}};
    float y[4] = {0}, x[4] = {0}, w[4] = {0};
    ck_assert(dk_bf16_backend_init(&b, &e) == DK_OK);
    ck_assert_int_eq(dk_bf16_matmul(b, y, 1, x, w, false, 2, 2, 1, 0.0f, 1, &e), DK_ERR_ARG);
    ck_assert_str_eq(e.msg, "bf16 matmul: bad shape m=2 n=2 k=1 ldy=1 beta=0");
    ck_assert_int_eq(dk_bf16_matmul(b, y, 2, x, w, false, 2, 2, 1, 0.5f, 1, &e), DK_ERR_ARG);
    dk_bf16_backend_free(b);
}
END_TEST

/* ---- whole models: every row's logits in f32 and bf16 ---- */

static float *all_logits(dk_model *m, const int32_t *tok, int n, dk_compute mode) {
    dk_ctx *c = NULL;
    dk_err e = {{0}};
    ck_assert_msg(dk_ctx_create(m, n, &c, &e) == DK_OK, "%s", e.msg);
    ck_assert_msg(dk_ctx_set_compute(c, mode, &e) == DK_OK, "%s", e.msg);
    ck_assert(dk_ctx_compute(c) == mode);
    float *lg = malloc((size_t)n * m->cfg.n_vocab * 4);
    dk_prefill_opts o = {.all_logits = true};
    ck_assert_msg(dk_forward_prefill(c, tok, n, &o, lg, &e) == DK_OK, "%s", e.msg);
    dk_ctx_free(c);
    return lg;
}

static const char *const MODELS[] = {TINY_MODEL, "tests/data/ref_llama_f32.gguf",
                                     "tests/data/ref_qwen2_f32.gguf", "tests/data/ref_tiny_bf16.gguf",
                                     "tests/data/ref_tiny_q8_0.gguf"};
static const char *const GOLDENS[] = {"tests/data/tiny_logits_f32.logits", "tests/data/ref_llama_f32.logits",
                                      "tests/data/ref_qwen2_f32.logits", "tests/data/ref_tiny_bf16.logits",
                                      "tests/data/ref_tiny_q8_0.logits"};

START_TEST(test_model_logits_bound) {
    SKIP_UNLESS_NATIVE();
    if (access(MODELS[_i], R_OK) != 0) {
        printf("SKIP %s absent\n", MODELS[_i]);
        return;
    }
    dk_test_logits g;
    dk_test_logits_load(GOLDENS[_i], 0, &g);
    dk_model *m = NULL;
    dk_err e = {{0}};
    ck_assert_msg(dk_model_load(MODELS[_i], NULL, &m, &e) == DK_OK, "%s", e.msg);
    int n = g.n_tokens, V = m->cfg.n_vocab;
    ck_assert_msg(n > DK_COMPUTE_MIN_M, "%s: a %d-token prompt would not reach the bf16 path", GOLDENS[_i],
                  n);
    float *f = all_logits(m, g.tokens, n, DK_COMPUTE_F32), *b = all_logits(m, g.tokens, n, DK_COMPUTE_BF16);
    float scale = 0;
    for (size_t i = 0; i < (size_t)n * V; i++) scale = fabsf(f[i]) > scale ? fabsf(f[i]) : scale;
    double P = BF16_PRODUCTS(m->cfg.n_layer), bound = P * 2 * U_BF16;
    double err = dk_test_rel_err(b, f, (size_t)n * V, scale);
    printf("%s: bf16 vs f32 logits: max |diff| / max |logit| = %.5f (bound %.4f)\n", MODELS[_i], err, bound);
    ck_assert_msg(err <= bound, "%s: bf16 logits off by %.5f of the scale (bound %.4f)", MODELS[_i], err,
                  bound);
    ck_assert_msg(err > 0, "%s: bf16 logits equal f32 bit for bit: the bf16 path did not run", MODELS[_i]);
    if (_i == 0) /* the bundled model: the decisions are the same on its golden prompt */
        for (int r = 0; r < n; r++)
            ck_assert_msg(dk_argmax(f + (size_t)r * V, V) == dk_argmax(b + (size_t)r * V, V),
                          "row %d: argmax differs", r);
    free(f);
    free(b);
    dk_model_free(m);
    dk_test_logits_free(&g);
}
END_TEST

/* Greedy continuation of the golden passkey prompt cut before its answer: the bundled model in bf16,
 * and its Q8_0 file (llama.cpp's quantizer) in q8, each against f32 on the same file. */
static const char *const GREEDY_MODELS[] = {TINY_MODEL, TINY_Q8_MODEL};
static const dk_compute GREEDY_MODES[] = {DK_COMPUTE_BF16, DK_COMPUTE_Q8};

START_TEST(test_greedy_equal) {
    SKIP_UNLESS_NATIVE();
    if (access(GREEDY_MODELS[_i], R_OK) != 0) {
        printf("SKIP %s absent\n", GREEDY_MODELS[_i]);
        return;
    }
    size_t len;
    char *text = dk_test_read_file(TINY_PROMPT, &len);
    char *cut = NULL;
    for (char *p = strstr(text, "The pass key is"); p; p = strstr(p + 1, "The pass key is")) cut = p;
    ck_assert(cut != NULL);
    dk_model *m = NULL;
    const dk_tokenizer *tok;
    dk_err e = {{0}};
    ck_assert_msg(dk_model_load(GREEDY_MODELS[_i], NULL, &m, &e) == DK_OK &&
                      dk_model_tokenizer(m, &tok, &e) == DK_OK,
                  "%s", e.msg);
    /* the prompt with its golden answer " 36066." (up to the answer's period), then without */
    char *dot = strchr(cut, '.');
    ck_assert(dot != NULL);
    char saved = dot[1];
    dot[1] = 0;
    int32_t *full = NULL, *ids = NULL, out[2][160];
    int n_full = 0, n_ids = 0, n_out[2];
    ck_assert(dk_tokenizer_encode(tok, text, strlen(text), true, &full, &n_full, &e) == DK_OK);
    dot[1] = saved;
    cut[strlen("The pass key is")] = 0;
    ck_assert(dk_tokenizer_encode(tok, text, strlen(text), true, &ids, &n_ids, &e) == DK_OK);
    ck_assert(n_ids > DK_COMPUTE_MIN_M && n_ids + 12 <= 160);
    for (int mode = 0; mode < 2; mode++) {
        dk_ctx *c = NULL;
        ck_assert(dk_ctx_create(m, n_ids + 12, &c, &e) == DK_OK);
        ck_assert(dk_ctx_set_compute(c, mode ? GREEDY_MODES[_i] : DK_COMPUTE_F32, &e) == DK_OK);
        ck_assert_msg(dk_generate_greedy(c, ids, n_ids, n_ids + 12, -1, out[mode], &n_out[mode], &e) == DK_OK,
                      "%s", e.msg);
        dk_ctx_free(c);
    }
    ck_assert_int_eq(n_out[0], n_out[1]);
    /* f32 gives the golden answer; bf16 the whole continuation of f32. q8's 8-bit activations moved
     * the first near-tie after the answer on this model (f32 goes on ". 36066", q8 ".3": the tiny
     * model's text after an answer), so q8 is held to the answer */
    /* out[i] is the token at position i + 1 (llama2.c's run): the prompt's, then the generated */
    ck_assert(n_full > n_ids && n_full - 1 <= n_out[0] && !memcmp(full, ids, (size_t)n_ids * 4));
    ck_assert_msg(!memcmp(out[0], full + 1, (size_t)(n_full - 1) * 4),
                  "%s: f32 does not give the golden answer", GREEDY_MODELS[_i]);
    int n_cmp = GREEDY_MODES[_i] == DK_COMPUTE_Q8 ? n_full - 1 : n_out[0];
    ck_assert_msg(!memcmp(out[0], out[1], (size_t)n_cmp * 4), "%s: greedy continuations differ (%s vs f32)",
                  GREEDY_MODELS[_i], dk_compute_name(GREEDY_MODES[_i]));
    free(full);
    free(ids);
    free(text);
    dk_model_free(m);
}
END_TEST

/* Few rows (decode-sized chunks) keep f32 arithmetic in bf16 mode: F32 weights by sgemv per row
 * chunk instead of one sgemm, so equal up to the summation order (k = n_embd terms). */
START_TEST(test_small_m_f32) {
    SKIP_UNLESS_NATIVE();
    dk_model *m = NULL;
    dk_err e = {{0}};
    ck_assert_msg(dk_model_load("tests/data/ref_qwen2_f32.gguf", NULL, &m, &e) == DK_OK, "%s", e.msg);
    int32_t tok[4] = {1, 7, 42, 3};
    int V = m->cfg.n_vocab;
    float *f = all_logits(m, tok, 4, DK_COMPUTE_F32), *b = all_logits(m, tok, 4, DK_COMPUTE_BF16);
    float scale = 0;
    for (int i = 0; i < 4 * V; i++) scale = fabsf(f[i]) > scale ? fabsf(f[i]) : scale;
    double err = dk_test_rel_err(b, f, (size_t)4 * V, scale);
    ck_assert_msg(err <= 1e-5, "4-row chunk in bf16 mode off by %.3g of the scale (f32 arithmetic expected)",
                  err);
    free(f);
    free(b);
    dk_model_free(m);
}
END_TEST

/* ---- rho = 0 is dense, bit for bit, in bf16 too ---- */

/* T context and Q question tokens of m's vocabulary from seed, and dash with rho 0 */
static void rho0_inputs(const dk_model *m, uint64_t seed, int32_t *ctx, int T, int32_t *q, int Q,
                        const dk_policy **pol, dk_policy_params *pp) {
    dk_err e = {{0}};
    uint64_t s = seed, V = (uint64_t)m->cfg.n_vocab;
    for (int i = 0; i < T; i++) ctx[i] = (int32_t)(rng_next(&s) % V);
    for (int i = 0; i < Q; i++) q[i] = (int32_t)(rng_next(&s) % V);
    ck_assert(dk_policy_lookup("dash", pol, &e) == DK_OK);
    dk_policy_params_default(pp);
    ck_assert(dk_policy_params_set_text(*pol, pp, "rho", "0", &e) == DK_OK);
}

START_TEST(test_rho0_bit_identical) {
    SKIP_UNLESS_NATIVE();
    dk_model *m = dk_test_model_shape("qwen2-tiny", 4, 7);
    dk_err e = {{0}};
    int T = 100, Q = 9, V = m->cfg.n_vocab;
    int32_t ctx[100], q[9];
    const dk_policy *pol;
    dk_policy_params pp;
    rho0_inputs(m, 99, ctx, T, q, Q, &pol, &pp);
    dk_prefill_result rd, rm;
    float *hd = malloc((size_t)T * m->cfg.n_embd * 4), *hm = malloc((size_t)T * m->cfg.n_embd * 4);
    dk_ctx *c = NULL;
    ck_assert(dk_ctx_create(m, T + Q, &c, &e) == DK_OK);
    ck_assert(dk_ctx_set_compute(c, DK_COMPUTE_BF16, &e) == DK_OK);
    ck_assert_msg(dk_prefill_run(c, NULL, NULL, ctx, T, q, Q, hd, &rd, &e) == DK_OK, "%s", e.msg);
    ck_assert_msg(dk_prefill_run(c, pol, &pp, ctx, T, q, Q, hm, &rm, &e) == DK_OK, "%s", e.msg);
    ck_assert(!memcmp(rd.ctx_logits, rm.ctx_logits, (size_t)V * 4));
    ck_assert(!memcmp(rd.q_logits, rm.q_logits, (size_t)V * 4));
    ck_assert(!memcmp(hd, hm, (size_t)T * m->cfg.n_embd * 4));
    /* and it is the bf16 path: f32 differs */
    dk_prefill_result rf;
    ck_assert(dk_ctx_set_compute(c, DK_COMPUTE_F32, &e) == DK_OK);
    ck_assert(dk_prefill_run(c, NULL, NULL, ctx, T, q, Q, NULL, &rf, &e) == DK_OK);
    ck_assert(memcmp(rd.ctx_logits, rf.ctx_logits, (size_t)V * 4) != 0);
    dk_prefill_result_free(&rd);
    dk_prefill_result_free(&rm);
    dk_prefill_result_free(&rf);
    free(hd);
    free(hm);
    dk_ctx_free(c);
    dk_model_free(m);
}
END_TEST

/* ---- q8 compute: few-row products of Q8_0 / Q5_0 weights on 8-bit activations (qdot.h) ----
 * Bound (whole model, first order as for bf16 above): a quantized activation is off by at most half
 * a step, 1/254 of its block's largest magnitude, and the weights are the file's own values, so each
 * of the 7 products per layer and the lm head perturbs its output by at most 2·U_Q8 relative to the
 * output scale: max|logit_q8 - logit_f32| <= (7·n_layer + 1)·2·U_Q8·max|logit_f32|. */
#define U_Q8 (1.0 / 254.0)

/* qwen2-tiny with product inputs that are multiples of 32 (its n_embd 48 is not) */
static dk_model *q8_model(uint32_t type, uint64_t seed) {
    dk_model_config cfg;
    ck_assert(dk_model_shape("qwen2-tiny", &cfg));
    cfg.n_layer = 3;
    cfg.n_embd = 64;
    cfg.n_head = 8;
    cfg.n_head_kv = 2;
    cfg.head_dim = 8;
    cfg.n_ff = 128;
    return dk_test_model_random(&cfg, type, seed, "qwen2-q8");
}

static const uint32_t Q8_TYPES[] = {DK_GGML_TYPE_Q8_0, DK_GGML_TYPE_Q5_0};

/* 4 rows (every product on the few-row path): q8 within the bound of f32, and not equal to it */
START_TEST(test_q8_small_m_bound) {
    SKIP_UNLESS_NATIVE();
    dk_model *m = q8_model(Q8_TYPES[_i], 5);
    int32_t tok[4] = {1, 7, 42, 3};
    int V = m->cfg.n_vocab;
    float *f = all_logits(m, tok, 4, DK_COMPUTE_F32), *q = all_logits(m, tok, 4, DK_COMPUTE_Q8);
    float scale = 0;
    for (int i = 0; i < 4 * V; i++) scale = fabsf(f[i]) > scale ? fabsf(f[i]) : scale;
    double err = dk_test_rel_err(q, f, (size_t)4 * V, scale), bound = (7.0 * m->cfg.n_layer + 1) * 2 * U_Q8;
    printf("q8 %s: vs f32 logits: max |diff| / max |logit| = %.5f (bound %.4f)\n",
           dk_ggml_type_name(Q8_TYPES[_i]), err, bound);
    ck_assert_msg(err <= bound, "q8 logits off by %.5f of the scale (bound %.4f)", err, bound);
    ck_assert_msg(err > 0, "q8 logits equal f32 bit for bit: the q8 dots did not run");
    free(f);
    free(q);
    dk_model_free(m);
}
END_TEST

/* q8 changes only the few-row products of its block types: on F32 weights it is bf16, bit for bit */
START_TEST(test_q8_f32_weights_is_bf16) {
    SKIP_UNLESS_NATIVE();
    dk_model *m = dk_test_model_shape("qwen2-tiny", 2, 3);
    int32_t tok[20];
    for (int i = 0; i < 20; i++) tok[i] = (i * 7 + 1) % m->cfg.n_vocab;
    for (int n = 4; n <= 20; n += 16) {
        float *b = all_logits(m, tok, n, DK_COMPUTE_BF16), *q = all_logits(m, tok, n, DK_COMPUTE_Q8);
        ck_assert_msg(!memcmp(b, q, (size_t)n * m->cfg.n_vocab * 4), "%d rows: q8 differs from bf16", n);
        free(b);
        free(q);
    }
    dk_model_free(m);
}
END_TEST

/* rho = 0 is dense in q8 too: a 100-token context (bf16 products) and a 5-token question (q8 dots) */
START_TEST(test_q8_rho0_bit_identical) {
    SKIP_UNLESS_NATIVE();
    dk_model *m = q8_model(DK_GGML_TYPE_Q8_0, 9);
    dk_err e = {{0}};
    int T = 100, Q = 5, V = m->cfg.n_vocab;
    int32_t ctx[100], q[5];
    const dk_policy *pol;
    dk_policy_params pp;
    rho0_inputs(m, 42, ctx, T, q, Q, &pol, &pp);
    dk_prefill_result rd, rm, rb;
    dk_ctx *c = NULL;
    ck_assert(dk_ctx_create(m, T + Q, &c, &e) == DK_OK);
    ck_assert(dk_ctx_set_compute(c, DK_COMPUTE_Q8, &e) == DK_OK);
    ck_assert_msg(dk_prefill_run(c, NULL, NULL, ctx, T, q, Q, NULL, &rd, &e) == DK_OK, "%s", e.msg);
    ck_assert_msg(dk_prefill_run(c, pol, &pp, ctx, T, q, Q, NULL, &rm, &e) == DK_OK, "%s", e.msg);
    ck_assert(!memcmp(rd.ctx_logits, rm.ctx_logits, (size_t)V * 4));
    ck_assert(!memcmp(rd.q_logits, rm.q_logits, (size_t)V * 4));
    /* the q8 dots ran: bf16 mode (f32 few-row products) gives other question logits */
    ck_assert(dk_ctx_set_compute(c, DK_COMPUTE_BF16, &e) == DK_OK);
    ck_assert(dk_prefill_run(c, NULL, NULL, ctx, T, q, Q, NULL, &rb, &e) == DK_OK);
    ck_assert(memcmp(rd.q_logits, rb.q_logits, (size_t)V * 4) != 0);
    dk_prefill_result_free(&rd);
    dk_prefill_result_free(&rm);
    dk_prefill_result_free(&rb);
    dk_ctx_free(c);
    dk_model_free(m);
}
END_TEST

/* ---- the bf16 packs belong to the model: made once, shared by its contexts, outlive them ---- */

START_TEST(test_packs_shared) {
    SKIP_UNLESS_NATIVE();
    dk_model *m = dk_test_model_shape("qwen2-tiny", 4, 7);
    dk_err e = {{0}};
    int T = 60, V = m->cfg.n_vocab;
    int32_t tok[60];
    for (int i = 0; i < T; i++) tok[i] = (i * 13 + 5) % V;
    float *la = malloc((size_t)V * 4), *lb = malloc((size_t)V * 4);
    ck_assert(dk_ctx_bf16_packs(&m->cfg));
    ck_assert_ptr_null(m->bf16_packs);
    dk_ctx *a = NULL, *b = NULL;
    ck_assert(dk_ctx_create(m, T, &a, &e) == DK_OK);
    ck_assert_msg(dk_ctx_set_compute(a, DK_COMPUTE_BF16, &e) == DK_OK, "%s", e.msg);
    void *packs = m->bf16_packs; /* made by the switch, before any prefill */
    ck_assert_ptr_nonnull(packs);
    ck_assert_msg(dk_forward_prefill(a, tok, T, NULL, la, &e) == DK_OK, "%s", e.msg);
    dk_ctx_free(a);
    ck_assert(dk_ctx_create(m, T, &b, &e) == DK_OK);
    ck_assert(dk_ctx_set_compute(b, DK_COMPUTE_BF16, &e) == DK_OK);
    ck_assert_ptr_eq(m->bf16_packs, packs);
    ck_assert_msg(dk_forward_prefill(b, tok, T, NULL, lb, &e) == DK_OK, "%s", e.msg);
    ck_assert(!memcmp(la, lb, (size_t)V * 4));
    dk_ctx_free(b);
    dk_model_free(m); /* frees the packs (ASan/valgrind: no leak) */
    free(la);
    free(lb);
}
END_TEST

/* ---- passkey accuracy of the bundled model, fixed sample set ---- */

START_TEST(test_passkey_accuracy) {
    SKIP_UNLESS_NATIVE();
    if (access(GREEDY_MODELS[_i], R_OK) != 0) {
        printf("SKIP %s absent\n", GREEDY_MODELS[_i]);
        return;
    }
    double sc[2][2];
    for (int mode = 0; mode < 2; mode++) {
        char cmd[512], *out = NULL;
        snprintf(
            cmd, sizeof cmd,
            "%s eval %s --task passkey --opt length=1024 -n 6 --seed 3 --method dash --rho 0.5 --compute %s",
            dk_test_cli(), GREEDY_MODELS[_i], mode ? dk_compute_name(GREEDY_MODES[_i]) : "f32");
        ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
        sc[mode][0] = dk_test_field(out, "dense_score");
        sc[mode][1] = dk_test_field(out, "score");
        free(out);
    }
    printf("%s: passkey 1024 x 6: dense %.1f / %.1f, dash rho 0.5 %.1f / %.1f (f32 / %s)\n",
           GREEDY_MODELS[_i], sc[0][0], sc[1][0], sc[0][1], sc[1][1], dk_compute_name(GREEDY_MODES[_i]));
    ck_assert(sc[0][0] == sc[1][0]);
    ck_assert(sc[0][1] == sc[1][1]);
}
END_TEST

/* ---- without native bf16: one clear refusal ---- */

START_TEST(test_refusal) {
    char cmd[512], *out = NULL;
    snprintf(cmd, sizeof cmd,
             "DNNL_MAX_CPU_ISA=AVX512_CORE %s generate tests/data/ref_llama_f32.gguf -n 4 --compute bf16",
             dk_test_cli());
    ck_assert_int_eq(dk_test_run(cmd, 1, &out), 2);
    ck_assert_msg(strstr(out, "dashkit generate: --compute: bf16 needs native bf16 dot products (AVX512_BF16 "
                              "or AMX); oneDNN runs this CPU as ") == out,
                  "%s", out);
    ck_assert(strchr(out, '\n') == out + strlen(out) - 1); /* one line */
    free(out);
    dk_err e = {{0}};
    dk_compute c;
    ck_assert_int_eq(dk_compute_parse("fp16", &c, &e), DK_ERR_ARG);
    ck_assert_str_eq(e.msg, "compute 'fp16' is not one of f32, bf16, q8");
    ck_assert(dk_compute_parse("bf16", &c, &e) == DK_OK && c == DK_COMPUTE_BF16);
    ck_assert_str_eq(dk_compute_name(DK_COMPUTE_F32), "f32");
}
END_TEST

/* ---- "compute" in configs: part of the cell identity and task key, f32 adds nothing ---- */

static void identity_of(const char *compute_kv, dk_config_identity *id) {
    char json[512];
    snprintf(json, sizeof json,
             "{\"models\":[\"m.gguf\"],\"tasks\":[{\"name\":\"passkey\",\"length\":512}],\"methods\":[{"
             "\"name\":\"dense\"}],"
             "\"samples\":2%s}",
             compute_kv);
    dk_config *c = NULL;
    dk_err e = {{0}};
    ck_assert_msg(dk_config_parse(json, strlen(json), "t.json", NULL, &c, &e) == DK_OK, "%s", e.msg);
    ck_assert_int_eq(
        dk_config_cell_identity(c, &c->cells[0],
                                "0000000000000000000000000000000000000000000000000000000000000000", id, &e),
        DK_OK);
    dk_config_free(c);
}

START_TEST(test_config_compute) {
    dk_config_identity none, f32, bf16, q8;
    identity_of("", &none);
    identity_of(",\"compute\":\"f32\"", &f32);
    identity_of(",\"compute\":\"bf16\"", &bf16);
    identity_of(",\"compute\":\"q8\"", &q8);
    ck_assert_str_ne(q8.key, bf16.key); /* q8 is its own cell, with its own dense references */
    ck_assert_str_ne(q8.task_key, bf16.task_key);
    ck_assert_ptr_nonnull(strstr(q8.json, "\"compute\":\"q8\""));
    dk_config_identity_free(&q8);
    ck_assert_str_eq(none.key, f32.key);
    ck_assert_str_eq(none.task_key, f32.task_key);
    ck_assert_str_ne(none.key, bf16.key);
    ck_assert_str_ne(none.task_key, bf16.task_key); /* dense references are not shared across modes */
    ck_assert_ptr_nonnull(strstr(bf16.json, "\"compute\":\"bf16\""));
    ck_assert_ptr_null(strstr(f32.json, "compute"));
    dk_config_identity_free(&none);
    dk_config_identity_free(&f32);
    dk_config_identity_free(&bf16);
    static const char *const bad[][2] = {
        {"\"fp16\"", "t.json: compute: compute 'fp16' is not one of f32, bf16, q8"},
        {"16", "t.json: compute: expected a string (f32, bf16, q8), got number 16"}};
    for (int i = 0; i < 2; i++) {
        char json[512];
        snprintf(
            json, sizeof json,
            "{\"models\":[\"m.gguf\"],\"tasks\":[{\"name\":\"passkey\"}],\"methods\":[{\"name\":\"dense\"}],"
            "\"samples\":2,\"compute\":%s}",
            bad[i][0]);
        dk_config *c = NULL;
        dk_err e = {{0}};
        ck_assert_int_eq(dk_config_parse(json, strlen(json), "t.json", NULL, &c, &e), DK_ERR_ARG);
        ck_assert_str_eq(e.msg, bad[i][1]);
    }
}
END_TEST

/* `dashkit logits` and `dashkit perplexity` take --compute: bf16 logits of the whole prompt within the
 * whole-model bound of test_model_logits_bound, and so the chunk logits perplexity scores (--save-logits);
 * both print `compute: bf16`. */
static char *cli_out(const char *cmd) {
    char *out = NULL;
    int rc = dk_test_run(cmd, 0, &out);
    ck_assert_msg(rc == 0, "%s: exit %d: %s", cmd, rc, out ? out : "");
    return out;
}

START_TEST(test_cli_compute) {
    SKIP_UNLESS_NATIVE();
    const char *model = "tests/data/ref_llama_f32.gguf";
    dk_test_logits g;
    dk_test_logits_load("tests/data/ref_llama_f32.logits", 4, &g);
    char ids[512], lf[512], lb[512], cmd[2048];
    dk_test_tmp_path(ids, sizeof ids, "cids.txt");
    FILE *f = fopen(ids, "w");
    for (int i = 0; i < g.n_tokens; i++) fprintf(f, "%d\n", g.tokens[i]);
    fclose(f);
    const char *mode[2] = {"f32", "bf16"};
    char *path[2] = {lf, lb};
    for (int i = 0; i < 2; i++) {
        snprintf(path[i], 512, "%s/c_%s.logits", dk_test_tmpdir(), mode[i]);
        snprintf(cmd, sizeof cmd, "%s logits %s --ids '%s' --out '%s' --compute %s", dk_test_cli(), model,
                 ids, path[i], mode[i]);
        char *out = cli_out(cmd);
        ck_assert_msg(strstr(out, i ? "\ncompute: bf16\n" : "\ncompute: f32\n") != NULL, "%s", out);
        free(out);
    }
    dk_test_logits a, b;
    dk_test_logits_load(lf, 4, &a);
    dk_test_logits_load(lb, 4, &b);
    dk_model_config cfg;
    int64_t wb, wf;
    dk_err e = {{0}};
    ck_assert(dk_memory_read_gguf(model, &cfg, &wb, &wf, NULL, &e) == DK_OK);
    double bound = BF16_PRODUCTS(cfg.n_layer) * 2 * U_BF16,
           err = dk_test_rel_err(b.logits, a.logits, (size_t)a.n_tokens * a.n_vocab, a.scale);
    printf("logits --compute bf16 vs f32: %.5f of the scale (bound %.4f)\n", err, bound);
    ck_assert_msg(err > 0 && err <= bound, "logits --compute bf16: %.5f of the scale (bound %.4f)", err,
                  bound);
    dk_test_logits_free(&a);
    dk_test_logits_free(&b);
    dk_test_logits_free(&g);
    /* q8 on a Q8_0 file, 4 rows (every product on the few-row path): within the q8 bound of f32 */
    dk_test_logits_load("tests/data/ref_tiny_q8_0.logits", 4, &g);
    f = fopen(ids, "w");
    for (int i = 0; i < 4; i++) fprintf(f, "%d\n", g.tokens[i]);
    fclose(f);
    const char *qmode[2] = {"f32", "q8"};
    for (int i = 0; i < 2; i++) {
        snprintf(path[i], 512, "%s/q_%s.logits", dk_test_tmpdir(), qmode[i]);
        snprintf(cmd, sizeof cmd,
                 "%s logits tests/data/ref_tiny_q8_0.gguf --ids '%s' --out '%s' --compute %s", dk_test_cli(),
                 ids, path[i], qmode[i]);
        char *out = cli_out(cmd);
        ck_assert_msg(strstr(out, i ? "\ncompute: q8\n" : "\ncompute: f32\n") != NULL, "%s", out);
        free(out);
    }
    dk_test_logits_load(lf, 4, &a);
    dk_test_logits_load(lb, 4, &b);
    ck_assert(dk_memory_read_gguf("tests/data/ref_tiny_q8_0.gguf", &cfg, &wb, &wf, NULL, &e) == DK_OK);
    bound = (7.0 * cfg.n_layer + 1) * 2 * U_Q8;
    err = dk_test_rel_err(b.logits, a.logits, (size_t)a.n_tokens * a.n_vocab, a.scale);
    printf("logits --compute q8 vs f32 (Q8_0 file, 4 rows): %.5f of the scale (bound %.4f)\n", err, bound);
    ck_assert_msg(err > 0 && err <= bound, "logits --compute q8: %.5f of the scale (bound %.4f)", err, bound);
    dk_test_logits_free(&a);
    dk_test_logits_free(&b);
    dk_test_logits_free(&g);
    if (access(TINY_MODEL, R_OK) != 0) {
        printf("SKIP perplexity --compute: %s absent\n", TINY_MODEL);
        return;
    }
    snprintf(cmd, sizeof cmd,
             "%s perplexity " TINY_MODEL " -f tests/data/ppl_text.txt --ctx 64 --save-logits '%s'",
             dk_test_cli(), lf);
    free(cli_out(cmd));
    dk_test_logits base;
    dk_test_logits_load(lf, 4, &base);
    ck_assert(dk_memory_read_gguf(TINY_MODEL, &cfg, &wb, &wf, NULL, &e) == DK_OK);
    bound = BF16_PRODUCTS(cfg.n_layer) * 2 * U_BF16;
    snprintf(cmd, sizeof cmd,
             "%s perplexity " TINY_MODEL
             " -f tests/data/ppl_text.txt --ctx 64 --kl-base '%s' --save-logits '%s' --compute bf16",
             dk_test_cli(), lf, lb);
    char *out = cli_out(cmd);
    ck_assert_msg(!strncmp(out, "compute: bf16\n", 14), "%s", out);
    double p = dk_test_field(out, "perplexity"), pb = dk_test_field(out, "ppl_base");
    dk_test_logits chunks;
    dk_test_logits_load(lb, 4, &chunks);
    ck_assert_int_eq(chunks.n_tokens, base.n_tokens);
    err = dk_test_rel_err(chunks.logits, base.logits, (size_t)base.n_tokens * base.n_vocab, base.scale);
    printf("perplexity --compute bf16: %.6f vs f32 %.6f; its logits %.5f of the scale (bound %.4f)\n", p, pb,
           err, bound);
    ck_assert_msg(p != pb && err > 0 && err <= bound, "perplexity bf16 %.6f vs f32 %.6f, logits off by %.5f",
                  p, pb, err);
    dk_test_logits_free(&chunks);
    free(out);
    dk_test_logits_free(&base);
    unlink(ids);
    unlink(lf);
    unlink(lb);
}
END_TEST

static Suite *compute_suite(void) {
    Suite *s = suite_create("compute");
    TCase *t = tcase_create("bf16");
    tcase_set_timeout(t, 300);
    tcase_add_test(t, test_refusal);
    tcase_add_test(t, test_config_compute);
    tcase_add_test(t, test_product_bound);
    tcase_add_test(t, test_bad_shape);
    tcase_add_loop_test(t, test_model_logits_bound, 0, (int)(sizeof MODELS / sizeof *MODELS));
    tcase_add_loop_test(t, test_greedy_equal, 0, 2);
    tcase_add_test(t, test_small_m_f32);
    tcase_add_test(t, test_rho0_bit_identical);
    tcase_add_test(t, test_packs_shared);
    tcase_add_loop_test(t, test_q8_small_m_bound, 0, (int)(sizeof Q8_TYPES / sizeof *Q8_TYPES));
    tcase_add_test(t, test_q8_f32_weights_is_bf16);
    tcase_add_test(t, test_q8_rho0_bit_identical);
    tcase_add_loop_test(t, test_passkey_accuracy, 0, 2);
    tcase_add_test(t, test_cli_compute);
    suite_add_tcase(s, t);
    return s;
}

int main(void) {
    dk_blas_init();
    g_native = dk_compute_bf16_native();
    if (!g_native)
        printf("SKIP bf16 compute tests: oneDNN runs this CPU as %s (no AVX512_BF16/AMX)\n",
               dk_compute_isa_name());
    return dk_test_main(compute_suite());
}
