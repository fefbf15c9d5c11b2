/* test_matvec.c — the fused small-m kernels (engine/matvec.h):
 *  - a row gives the same bits whatever its file type, when the values are the same: F16, BF16,
 *    Q8_0, Q5_0, Q4_K, Q6_K (widened in registers for m = 1, into the scratch row for m = 3) and Q5_K
 *    (scratch) against an F32 row holding their exact f32 values (dk_dequantize), for m = 1 and
 *    m = 3, on the AVX2 kernels and (CPUs with AVX-512F/BW; else SKIP) the AVX-512 ones;
 *  - the same on raw random blocks (every bit pattern of quants, scales, high bits) and rows with
 *    tails past the 32- and 8-element steps;
 *  - the result of a row depends on nothing but the row and x: any row range, any m, beta 1 adds
 *    to y exactly;
 *  - each dot product is within the f32 summation bound of a double-precision sum:
 *    |got - exact| <= n * 2^-24 * sum |w x| * 1.01 (+ the tail of one rounding). */
#include "support/dk_test.h"
#include "matvec.h"
#include "model.h"
#include "quant.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float t_unit(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (float)((*s >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

/* rows x k values of W in type `type` (quantised from random f32) and their exact f32 values */
static void t_make(uint32_t type, int rows, int k, uint64_t seed, void **data, float **f32, dk_tensor *t) {
    size_t rb = dk_ggml_row_bytes(type, k);
    float *src = malloc((size_t)rows * k * 4);
    *f32 = malloc((size_t)rows * k * 4);
    *data = malloc((size_t)rows * rb);
    for (int i = 0; i < rows * k; i++) src[i] = t_unit(&seed) * (i % 11 == 0 ? 2.0f : 0.25f);
    for (int r = 0; r < rows; r++) {
        dk_quantize(type, src + (size_t)r * k, (uint8_t *)*data + (size_t)r * rb, (size_t)k);
        dk_dequantize(type, (uint8_t *)*data + (size_t)r * rb, *f32 + (size_t)r * k, (size_t)k);
    }
    *t = (dk_tensor){*data, type, rows, k, rb};
    free(src);
}

static const uint32_t T_TYPES[] = {DK_GGML_TYPE_F16,  DK_GGML_TYPE_BF16, DK_GGML_TYPE_Q8_0, DK_GGML_TYPE_Q4_K,
                                   DK_GGML_TYPE_Q5_0, DK_GGML_TYPE_Q6_K, DK_GGML_TYPE_Q5_K};
enum { T_N_TYPES = (int)(sizeof T_TYPES / sizeof *T_TYPES) };

/* loop index -> the kernels' ISA (0: AVX2 or the portable build, 1: AVX-512 where the CPU has it)
 * and a type; false (the caller skips) for AVX-512 on a CPU without it */
static bool t_isa(int i, uint32_t *type) {
    *type = T_TYPES[i % T_N_TYPES];
    bool want = i >= T_N_TYPES, got = dk_matvec_set_avx512(want);
    if (want && !got) printf("SKIP: no AVX-512F/BW on this CPU or build: its kernels are not tested here\n");
    return want == got;
}

START_TEST(test_types_bit_identical) {
    enum { R = 19, K = 512, M = 3 };
    uint32_t type;
    if (!t_isa(_i, &type)) return;
    void *data;
    float *f32, x[M * K], scratch[K], y[M * R], yf[M * R];
    dk_tensor t;
    t_make(type, R, K, 7 + _i, &data, &f32, &t);
    dk_tensor tf = {f32, DK_GGML_TYPE_F32, R, K, (size_t)K * 4};
    uint64_t s = 99;
    for (int i = 0; i < M * K; i++) x[i] = t_unit(&s);
    for (int m = 1; m <= M; m += 2) {
        dk_matvec_rows(&t, 0, R, x, m, y, R, 0.0f, scratch);
        dk_matvec_rows(&tf, 0, R, x, m, yf, R, 0.0f, NULL);
        ck_assert_msg(memcmp(y, yf, (size_t)m * R * 4) == 0, "%s, m = %d, isa %d: not the F32 row's bits",
                      dk_ggml_type_name(type), m, _i / T_N_TYPES);
    }
    free(data);
    free(f32);
    dk_matvec_set_avx512(true);
}
END_TEST

/* Raw random blocks (every bit pattern of the quants, scales and high bits; the f16 scales kept
 * finite by clearing their top exponent bit) and rows with tails: the in-register kernel of each
 * type, in each ISA, gives exactly dk_matvec_dot of the row dk_dequantize writes. */
START_TEST(test_random_blocks_exact) {
    uint32_t type;
    if (!t_isa(_i, &type)) return;
    uint32_t be, bb;
    ck_assert(dk_ggml_type_block(type, &be, &bb));
    static const int64_t lens[] = {1, 3, 5, 8, 13, 29, 45, 256 + 8 + 5, 896 + 13, 4864 + 13};
    uint64_t s = 1234 + (uint64_t)_i;
    for (int li = 0; li < (int)(sizeof lens / sizeof *lens); li++) {
        int64_t k = be == 1 ? lens[li] : ((lens[li] + be - 1) / be) * be;
        size_t rb = dk_ggml_row_bytes(type, k);
        uint8_t *row = malloc(rb);
        float *x = malloc((size_t)k * 4), *wf = malloc((size_t)k * 4), y;
        for (size_t j = 0; j < rb; j++) row[j] = (uint8_t)(t_unit(&s) * 128.0f + 128.0f);
        /* the high bytes of the f16/bf16 fields: every other byte (F16, BF16), d (and Q4_K/Q5_K dmin) */
        bool two = type == DK_GGML_TYPE_Q4_K || type == DK_GGML_TYPE_Q5_K;
        for (size_t b = 0; b < rb; b += bb) {
            if (be == 1) row[b + 1] &= 0xBF;
            else if (type == DK_GGML_TYPE_Q6_K) row[b + 209] &= 0xBF;
            else row[b + 1] &= 0xBF, row[b + 3] &= two ? 0xBF : 0xFF;
        }
        for (int64_t j = 0; j < k; j++) x[j] = t_unit(&s);
        dk_dequantize(type, row, wf, (size_t)k);
        dk_tensor t = {row, type, 1, k, rb};
        float *scratch = malloc(dk_matvec_scratch_floats(k) * 4);
        dk_matvec_rows(&t, 0, 1, x, 1, &y, 1, 0.0f, scratch);
        float ref = dk_matvec_dot(wf, x, k);
        ck_assert_msg(memcmp(&y, &ref, 4) == 0, "%s k = %lld isa %d: %.9g vs %.9g", dk_ggml_type_name(type),
                      (long long)k, _i / T_N_TYPES, y, ref);
        free(row);
        free(x);
        free(wf);
        free(scratch);
    }
    dk_matvec_set_avx512(true);
}
END_TEST

START_TEST(test_rows_independent_and_bound) {
    enum { R = 40, K = 4864 + 13, M = 4 }; /* a tail of 13 past the 8-wide blocks */
    float *w = malloc((size_t)R * K * 4), *x = malloc((size_t)M * K * 4), y[M * R], z[M * R];
    uint64_t s = 5;
    for (int i = 0; i < R * K; i++) w[i] = t_unit(&s);
    for (int i = 0; i < M * K; i++) x[i] = t_unit(&s) * 3.0f;
    dk_tensor t = {w, DK_GGML_TYPE_F32, R, K, (size_t)K * 4};
    dk_matvec_rows(&t, 0, R, x, M, y, R, 0.0f, NULL);
    /* other ranges and m = 1 give the same bits; beta 1 adds the same value once more */
    for (int r0 = 0; r0 < R; r0 += 7) {
        int r1 = r0 + 7 < R ? r0 + 7 : R;
        for (int i = 0; i < M; i++)
            dk_matvec_rows(&t, r0, r1, x + (size_t)i * K, 1, z + (size_t)i * R, R, 0.0f, NULL);
    }
    ck_assert(memcmp(y, z, sizeof y) == 0);
    dk_matvec_rows(&t, 0, R, x, M, z, R, 1.0f, NULL);
    for (int i = 0; i < M * R; i++) ck_assert_msg(z[i] == y[i] + y[i], "beta 1: entry %d", i);
    for (int i = 0; i < M; i++)
        for (int r = 0; r < R; r++) {
            double exact = 0, mag = 0;
            for (int j = 0; j < K; j++) {
                exact += (double)w[(size_t)r * K + j] * x[(size_t)i * K + j];
                mag += fabs((double)w[(size_t)r * K + j] * x[(size_t)i * K + j]);
            }
            double got = y[i * R + r], bound = (double)K * 0x1p-24 * mag * 1.01 + 0x1p-24 * fabs(exact);
            ck_assert_msg(fabs(got - exact) <= bound, "row %d x %d: %.9g vs %.9g (bound %.3g)", r, i, got,
                          exact, bound);
            ck_assert(dk_matvec_dot(w + (size_t)r * K, x + (size_t)i * K, K) == y[i * R + r]);
        }
    free(w);
    free(x);
}
END_TEST

int main(void) {
    Suite *s = suite_create("matvec");
    TCase *tc = tcase_create("matvec");
    tcase_add_loop_test(tc, test_types_bit_identical, 0, 2 * T_N_TYPES);
    tcase_add_loop_test(tc, test_random_blocks_exact, 0, 2 * T_N_TYPES);
    tcase_add_test(tc, test_rows_independent_and_bound);
    suite_add_tcase(s, tc);
    return dk_test_main(s);
}
