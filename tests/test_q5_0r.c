/* test_q5_0r.c — Q5_0R, the in-memory order of Q5_0 rows (engine/q5_0r.h):
 *  - the repack writes q5_0r.h's layout: each unit's 4 scales as they were, and value e's 5-bit quant
 *    (parsed here from Q5_0's nibbles and qh) at bits 5e..5e+4; the AVX-512 form writes the same
 *    bytes as the portable one, in place as well; every bit pattern of quants (raw random blocks);
 *  - its values are Q5_0's bit for bit (dk_dequantize, both forms);
 *  - q8 dots (qdot.h) on Q5_0R rows give Q5_0's bits: the AVX-512 kernels (one row, the two-row
 *    kernel, m = 3) and the plain C form, rows of 1, 7, 8 and 38 units (whole groups of 8 blocks and
 *    a last half group);
 *  - f32 dots (matvec.h) on Q5_0R rows give Q5_0's bits, AVX-512 and AVX2 (the converted row);
 *  - a model: where the CPU has the kernels, loading repacks the Q5_0 matrices whose rows are whole
 *    units (a llama.cpp-written GGUF and a random model), leaves the others, and the logits in f32
 *    and q8 compute equal those of the same model loaded without the repack; Q5_0R is never a file
 *    type (not supported, not by name). */
#include "support/dk_test.h"
#include "compute.h"
#include "forward.h"
#include "matvec.h"
#include "q5_0r.h"
#include "qdot.h"
#include "quant.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t t_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static float t_unit(uint64_t *s) {
    return (float)((t_next(s) >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

/* n values of Q5_0: raw random bytes with finite scales (every quant and qh pattern), or quantized
 * from random values */
static uint8_t *t_q5_0(size_t n, bool raw, uint64_t seed) {
    size_t bytes = dk_ggml_row_bytes(DK_GGML_TYPE_Q5_0, (int64_t)n);
    uint8_t *p = malloc(bytes);
    uint64_t s = seed;
    if (raw) {
        for (size_t i = 0; i < bytes; i++) p[i] = (uint8_t)(t_next(&s) >> 24);
        for (size_t b = 0; b < n / 32; b++) p[22 * b + 1] &= 0x3B; /* exponent below 31: finite */
    } else {
        float *x = malloc(n * sizeof *x);
        for (size_t i = 0; i < n; i++) x[i] = t_unit(&s);
        dk_quantize(DK_GGML_TYPE_Q5_0, x, p, n);
        free(x);
    }
    return p;
}

static uint8_t *t_repack(const uint8_t *q, size_t n) {
    size_t bytes = dk_ggml_row_bytes(DK_GGML_TYPE_Q5_0, (int64_t)n);
    uint8_t *r = malloc(bytes);
    dk_q5_0r_repack(q, r, n);
    return r;
}

START_TEST(test_layout) {
    ck_assert(!dk_ggml_type_supported(DK_GGML_TYPE_Q5_0R));
    uint32_t t;
    ck_assert(!dk_ggml_type_from_name("Q5_0R", &t));
    ck_assert(!strstr(dk_ggml_supported_names(), "Q5_0R"));
    ck_assert_uint_eq(dk_ggml_row_bytes(DK_GGML_TYPE_Q5_0R, 896), dk_ggml_row_bytes(DK_GGML_TYPE_Q5_0, 896));
    for (int raw = 0; raw < 2; raw++) {
        size_t n = 128 * 9;
        uint8_t *q = t_q5_0(n, raw, 11 + raw), *r = t_repack(q, n),
                *s = malloc(dk_ggml_row_bytes(DK_GGML_TYPE_Q5_0, (int64_t)n));
        for (size_t e = 0; e < n; e++) { /* block b = e / 32, element j */
            size_t b = e / 32, j = e % 32, unit = e / 128, k = e % 128;
            const uint8_t *blk = q + 22 * b, *pu = r + 88 * unit;
            uint32_t qh = (uint32_t)blk[2] | (uint32_t)blk[3] << 8 | (uint32_t)blk[4] << 16 |
                          (uint32_t)blk[5] << 24;
            unsigned want = (j < 16 ? blk[6 + j] & 0x0F : blk[6 + j - 16] >> 4) | ((qh >> j) & 1) << 4;
            unsigned got = 0;
            for (int bit = 0; bit < 5; bit++) {
                size_t at = 5 * k + (size_t)bit;
                got |= (unsigned)((pu[8 + at / 8] >> (at % 8)) & 1) << bit;
            }
            ck_assert_msg(got == want, "value %zu: quant %u in the unit, %u in Q5_0", e, got, want);
            if (j == 0) ck_assert(!memcmp(pu + 2 * (b % 4), blk, 2)); /* the scale */
            uint8_t u[32];
            dk_q5_0r_block(pu, (int)(b % 4), u);
            ck_assert_uint_eq(u[j], want);
        }
        dk_q5_0r_repack_scalar(q, s, n);
        ck_assert_msg(!memcmp(r, s, dk_ggml_row_bytes(DK_GGML_TYPE_Q5_0, (int64_t)n)),
                      "the AVX-512 repack differs from the portable one");
        memcpy(s, q, dk_ggml_row_bytes(DK_GGML_TYPE_Q5_0, (int64_t)n));
        dk_q5_0r_repack(s, s, n);
        ck_assert_msg(!memcmp(r, s, dk_ggml_row_bytes(DK_GGML_TYPE_Q5_0, (int64_t)n)), "in place differs");
        /* the values */
        float *a = malloc(n * 4), *b = malloc(n * 4), *c = malloc(n * 4);
        dk_dequantize(DK_GGML_TYPE_Q5_0, q, a, n);
        dk_dequantize(DK_GGML_TYPE_Q5_0R, r, b, n);
        dk_dequantize_scalar(DK_GGML_TYPE_Q5_0R, r, c, n);
        ck_assert_msg(!memcmp(a, b, n * 4), "Q5_0R values differ from Q5_0's");
        ck_assert_msg(!memcmp(a, c, n * 4), "portable Q5_0R values differ from Q5_0's");
        free(a);
        free(b);
        free(c);
        free(q);
        free(r);
        free(s);
    }
}
END_TEST

/* loop index: 0 the plain C / AVX2 forms, 1 the AVX-512 ones (false: the CPU lacks them, skip) */
static bool t_simd(int i) {
    bool want = i == 1, got = dk_qdot_set_simd(want) && dk_matvec_set_avx512(want) && dk_q5_0r_native();
    if (want && !got) printf("SKIP: no AVX-512 VNNI/VBMI here: the Q5_0R kernels are not tested\n");
    dk_qdot_set_vbmi(true);
    return want == got;
}

static const int T_UNITS[] = {1, 7, 8, 38}; /* rows of 128 .. 4864 values */

START_TEST(test_dots) {
    if (!t_simd(_i)) return;
    for (size_t ui = 0; ui < sizeof T_UNITS / sizeof T_UNITS[0]; ui++) {
        int64_t k = 128 * T_UNITS[ui], rows = 9, m = 3;
        size_t rb = dk_ggml_row_bytes(DK_GGML_TYPE_Q5_0, k);
        uint8_t *q = t_q5_0((size_t)(rows * k), ui % 2, 100 + ui), *r = t_repack(q, (size_t)(rows * k));
        dk_tensor tq = {q, DK_GGML_TYPE_Q5_0, rows, k, rb}, tr = {r, DK_GGML_TYPE_Q5_0R, rows, k, rb};
        float *x = malloc((size_t)(m * k) * 4);
        uint64_t s = 7 + ui;
        for (int64_t i = 0; i < m * k; i++) x[i] = 3 * t_unit(&s);
        dk_qact a = {0};
        dk_err e = {{0}};
        ck_assert(dk_qact_init(&a, m * k, &e) == DK_OK);
        float want[27], got[27], scratch[4864];
        for (int mm = 1; mm <= m; mm += 2) { /* m = 1 (the two-row kernels) and 3 */
            dk_qact_quantize(&a, x, mm, k);
            for (int64_t row = 0; row < rows; row++) { /* the definition, Q5_0's plain C form */
                for (int i = 0; i < mm; i++) {
                    dk_qrow xr = dk_qact_row(&a, i);
                    want[i * rows + row] = dk_qdot_scalar(DK_GGML_TYPE_Q5_0, q + row * rb, &xr, k);
                }
            }
            dk_qdot_rows(&tr, 0, rows, &a, mm, got, rows, 0);
            ck_assert_msg(!memcmp(want, got, (size_t)(mm * rows) * 4),
                          "q8 dots, %lld wide, m %d: Q5_0R differs", (long long)k, mm);
            for (int i = 0; i < mm; i++) { /* f32: the Q5_0 rows' bits */
                dk_matvec_rows(&tq, 0, rows, x + i * k, 1, want + i * rows, rows, 0, scratch);
                dk_matvec_rows(&tr, 0, rows, x + i * k, 1, got + i * rows, rows, 0, scratch);
            }
            ck_assert_msg(!memcmp(want, got, (size_t)(mm * rows) * 4), "f32 dots, %lld wide: Q5_0R differs",
                          (long long)k);
            dk_matvec_rows(&tq, 0, rows, x, mm, want, rows, 0, scratch);
            dk_matvec_rows(&tr, 0, rows, x, mm, got, rows, 0, scratch);
            ck_assert_msg(!memcmp(want, got, (size_t)(mm * rows) * 4), "f32 dots, %lld wide, m %d: differ",
                          (long long)k, mm);
        }
        dk_qact_free(&a);
        free(x);
        free(q);
        free(r);
    }
    dk_qdot_set_simd(true);
    dk_matvec_set_avx512(true);
}
END_TEST

static float *t_logits(dk_model *m, const int32_t *tok, int n, dk_compute mode) {
    dk_ctx *c = NULL;
    dk_err e = {{0}};
    ck_assert_msg(dk_ctx_create(m, n + 2, &c, &e) == DK_OK, "%s", e.msg);
    ck_assert_msg(dk_ctx_set_compute(c, mode, &e) == DK_OK, "%s", e.msg);
    int V = m->cfg.n_vocab;
    float *lg = malloc((size_t)(n + 1) * V * 4);
    dk_prefill_opts o = {.all_logits = true};
    ck_assert_msg(dk_forward_prefill(c, tok, n, &o, lg, &e) == DK_OK, "%s", e.msg);
    ck_assert_msg(dk_forward_decode(c, 1, lg + (size_t)n * V, &e) == DK_OK, "%s", e.msg); /* a decode step */
    dk_ctx_free(c);
    return lg;
}

/* the same logits, f32 and q8 compute, with and without the repack; *repacked: matrices turned Q5_0R */
static void t_same_logits(dk_model *on, dk_model *off, const char *what) {
    int32_t tok[6] = {1, 5, 9, 2, 7, 3};
    size_t n = (size_t)7 * on->cfg.n_vocab * 4;
    for (int mode = 0; mode < 2; mode++) {
        dk_compute cm = mode ? DK_COMPUTE_Q8 : DK_COMPUTE_F32;
        if (cm == DK_COMPUTE_Q8 && dk_compute_check(cm, NULL) != DK_OK) continue;
        float *a = t_logits(on, tok, 6, cm), *b = t_logits(off, tok, 6, cm);
        ck_assert_msg(!memcmp(a, b, n), "%s, %s compute: logits differ with the repack", what,
                      mode ? "q8" : "f32");
        free(a);
        free(b);
    }
}

START_TEST(test_models) {
    if (!dk_q5_0r_native()) {
        printf("SKIP: no AVX-512 VNNI/VBMI here: models keep Q5_0\n");
        return;
    }
    /* a random model whose d and n_ff are whole units (Q5_0R) and whose heads are not */
    dk_model_config cfg;
    ck_assert(dk_model_shape("qwen2-tiny", &cfg));
    cfg.n_layer = 2;
    cfg.n_embd = 128;
    cfg.n_head = 4;
    cfg.n_head_kv = 2;
    cfg.head_dim = 16;
    cfg.n_ff = 256;
    ck_assert(dk_q5_0r_set(true));
    dk_model *on = dk_test_model_random(&cfg, DK_GGML_TYPE_Q5_0, 3, "q5r");
    ck_assert(!dk_q5_0r_set(false));
    dk_model *off = dk_test_model_random(&cfg, DK_GGML_TYPE_Q5_0, 3, "q5r");
    dk_q5_0r_set(true);
    ck_assert_uint_eq(on->w.layers[1].w_up.type, DK_GGML_TYPE_Q5_0R); /* 128 wide */
    ck_assert_uint_eq(on->w.layers[1].wo.type, DK_GGML_TYPE_Q5_0);    /* 64 wide */
    ck_assert_uint_eq(on->w.tok_embd.type, DK_GGML_TYPE_Q5_0R);       /* tied: */
    ck_assert_ptr_eq(on->w.output.data, on->w.tok_embd.data);         /* still shared */
    ck_assert_uint_eq(off->w.layers[1].w_up.type, DK_GGML_TYPE_Q5_0);
    t_same_logits(on, off, "random Q5_0 model");
    dk_model_free(on);
    dk_model_free(off);

    /* a GGUF written by llama.cpp's tools: its blk.0.attn_q is Q5_0, 256 wide */
    const char *path = "tests/data/quant_qllama_mix.gguf";
    dk_err e = {{0}};
    ck_assert_msg(dk_model_load(path, NULL, &on, &e) == DK_OK, "%s", e.msg);
    dk_q5_0r_set(false);
    ck_assert_msg(dk_model_load(path, NULL, &off, &e) == DK_OK, "%s", e.msg);
    dk_q5_0r_set(true);
    ck_assert_uint_eq(on->w.layers[0].wq.type, DK_GGML_TYPE_Q5_0R);
    ck_assert_uint_eq(off->w.layers[0].wq.type, DK_GGML_TYPE_Q5_0);
    ck_assert_str_eq(on->tensor_types, off->tensor_types); /* the file's types, as before */
    t_same_logits(on, off, path);
    dk_model_free(on);
    dk_model_free(off);
}
END_TEST

int main(void) {
    Suite *s = suite_create("q5_0r");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_layout);
    tcase_add_loop_test(tc, test_dots, 0, 2);
    tcase_add_test(tc, test_models);
    suite_add_tcase(s, tc);
    return dk_test_main(s);
}
