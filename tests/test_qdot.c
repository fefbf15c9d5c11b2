/* test_qdot.c — q8 compute's dot products (engine/qdot.h):
 *  - quantized activations: d = max|x| / 127 in f32, |q| <= 127, the block sums, and
 *    |x - d q| <= d/2 + 2.01 u |x| (u = 2^-24) per element; all-zero blocks and blocks below 2^-96
 *    give d = 0 and q = 0 (error < 2^-96), a block holding an infinity gives d = NaN;
 *  - the dot is qdot.h's definition, rebuilt here from dk_dequantize's values (S_b = Σ (w/d_w) q in
 *    double, exact; s_b = d_w d_b in f32; lane b mod 8 by fmaf; the stated reduction): bit for bit,
 *    for the plain C form and (CPUs with AVX-512 VNNI; else SKIP) the AVX-512 kernels, on rows
 *    quantized from random values and on raw random blocks (every quant pattern, Q8_0's -128
 *    included), lengths with and without a partial last group of 8 blocks;
 *  - the error against the double product of the file's values with x is within the bound derived
 *    in qdot.h: Σ |w| (d_b/2 + 2.01 u |x|) + (u + 1.01 (L + 3) u)(1 + u) Σ_b |d_w d_b S_b|, L the
 *    blocks per lane;
 *  - a row's result depends on nothing but the row and X: any row range, m = 1 (the two-row
 *    kernels) or 3, beta 1 adds. */
#include "support/dk_test.h"
#include "qdot.h"
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

static const uint32_t T_TYPES[] = {DK_GGML_TYPE_Q8_0, DK_GGML_TYPE_Q5_0, DK_GGML_TYPE_Q4_K,
                                   DK_GGML_TYPE_Q6_K};
enum { T_N_TYPES = 4 };

/* loop index -> kernels (0: plain C, 1: AVX-512 VNNI where the CPU has it) and a type; false (the
 * caller skips) for the AVX-512 kernels on a CPU without them */
/* Loop index i: type i % T_N_TYPES; i / T_N_TYPES = 0 the plain C form, 1 the AVX-512 kernels, 2 those
 * without Q5_0's VBMI form (a case of its own only where the CPU has VBMI). */
static bool t_isa(int i, uint32_t *type) {
    *type = T_TYPES[i % T_N_TYPES];
    int mode = i / T_N_TYPES;
    bool want = mode >= 1, got = dk_qdot_set_simd(want);
    if (want && !got)
        printf("SKIP: no AVX-512 VNNI on this CPU or build: its q8 kernels are not tested here\n");
    if (mode == 2) { /* Q5_0 without its VBMI form, where the CPU has VBMI */
        if (*type != DK_GGML_TYPE_Q5_0 || !dk_qdot_set_vbmi(true)) return false;
        dk_qdot_set_vbmi(false);
    } else dk_qdot_set_vbmi(true);
    return want == got;
}

static float t_half_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return dk_fp16_to_f32(h);
}

/* Σ v_i q_i in double (exact) */
static double t_idot(const double *v, const int8_t *q, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += v[i] * q[i];
    return s;
}

/* qdot.h's definition, rebuilt from the file values dk_dequantize gives (w) and the block layouts
 * (quant.c's comments); *mag = Σ_b of the magnitudes its roundings scale with. */
static float t_ref_dot(uint32_t type, const uint8_t *row, int64_t n, const dk_qact *a, double *mag) {
    uint32_t be, bb;
    ck_assert(dk_ggml_type_block(type, &be, &bb));
    float *w = malloc((size_t)n * 4), acc[8] = {0};
    dk_dequantize(type, row, w, (size_t)n);
    *mag = 0;
    for (int64_t b = 0; b < n / 32; b++) {
        const float *wb = w + 32 * b;
        const int8_t *q = a->q + 32 * b;
        double v[32];
        float c;
        if (type == DK_GGML_TYPE_Q8_0 || type == DK_GGML_TYPE_Q5_0) {
            float dw = t_half_at(row + b * bb);
            for (int i = 0; i < 32; i++) v[i] = (double)wb[i] / dw; /* integers: d_w * q is exact in f32 */
            double S = t_idot(v, q, 32);
            float s = dw * a->d[b];
            c = fmaf(s, (float)S, acc[b % 8]);
            *mag += fabs((double)s * S);
        } else if (type == DK_GGML_TYPE_Q6_K) { /* w = (d * sc_h) * (u - 32): v = w / (d * sc_h) */
            const uint8_t *p = row + (b / 8) * bb;
            int j = (int)(b % 8);
            float d = t_half_at(p + 208);
            double S = 0;
            for (int h = 0; h < 2; h++) {
                int sc = (int8_t)p[192 + 2 * j + h];
                float ds = d * (float)sc;
                if (ds == 0) continue; /* the half adds sc * (...) = 0 */
                for (int i = 0; i < 16; i++) v[i] = (double)wb[16 * h + i] / ds;
                S += sc * t_idot(v, q + 16 * h, 16);
            }
            float s = d * a->d[b];
            c = fmaf(s, (float)S, acc[b % 8]);
            *mag += fabs((double)s * S);
        } else { /* Q4_K: u and the 6-bit scale and min parsed here, checked against dk_dequantize */
            const uint8_t *p = row + (b / 8) * bb, *u6 = p + 4;
            int j = (int)(b % 8);
            int sc = j < 4 ? u6[j] & 63 : (u6[j + 4] & 0xF) | (u6[j - 4] >> 6) << 4;
            int mn = j < 4 ? u6[j + 4] & 63 : (u6[j + 4] >> 4) | (u6[j] >> 6) << 4;
            float dl = t_half_at(p) * (float)sc, ml = t_half_at(p + 2) * (float)mn;
            for (int i = 0; i < 32; i++) {
                v[i] = (p[16 + 32 * (j / 2) + i] >> (4 * (j % 2))) & 0xF;
                ck_assert_msg(dl * (float)v[i] - ml == wb[i],
                              "Q4_K block %lld value %d: parsed %g, dequantized %g", (long long)b, i,
                              dl * (float)v[i] - ml, wb[i]);
            }
            double S = t_idot(v, q, 32);
            c = fmaf(a->d[b], fmaf(dl, (float)S, -(ml * (float)a->sum[b])), acc[b % 8]);
            *mag += fabs((double)a->d[b]) * (fabs((double)dl * S) + fabs((double)ml * a->sum[b]));
        }
        acc[b % 8] = c;
    }
    free(w);
    float t[4];
    for (int i = 0; i < 4; i++) t[i] = acc[i] + acc[i + 4];
    return (t[0] + t[2]) + (t[1] + t[3]);
}

START_TEST(test_quantize) {
    enum { K = 32 * 9 };
    float x[K];
    uint64_t s = 3;
    for (int i = 0; i < K; i++) x[i] = t_unit(&s) * (i < 64 ? 100.0f : 0.01f);
    for (int i = 64; i < 96; i++) x[i] = 0.0f;                       /* block 2: zeros */
    for (int i = 96; i < 128; i++) x[i] = 1e-31f * (float)(i - 100); /* block 3: below 2^-96 */
    x[130] = INFINITY;                                               /* block 4: an infinity */
    dk_qact a = {0};
    dk_err e;
    ck_assert(dk_qact_init(&a, K, &e) == DK_OK);
    dk_qact_quantize(&a, x, 1, K);
    ck_assert_int_eq(a.k, K);
    for (int b = 0; b < K / 32; b++) {
        if (b == 4) {
            ck_assert_msg(isnan(a.d[b]), "block with an infinity: d = %g, not NaN", a.d[b]);
            continue;
        }
        float amax = 0;
        int32_t sum = 0;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[32 * b + i]));
        float d = b == 2 || b == 3 ? 0.0f : amax / 127.0f;
        ck_assert_msg(a.d[b] == d, "block %d: d = %.9g, expected %.9g", b, a.d[b], d);
        for (int i = 0; i < 32; i++) {
            int q = a.q[32 * b + i];
            sum += q;
            ck_assert(q >= -127 && q <= 127);
            double err = fabs((double)x[32 * b + i] - (double)d * q);
            ck_assert_msg(err <= d / 2.0 + 2.01 * 0x1p-24 * fabs(x[32 * b + i]) + (d == 0 ? 0x1p-96 : 0),
                          "block %d elem %d: %.9g vs %d * %.9g", b, i, x[32 * b + i], q, d);
        }
        ck_assert_int_eq(a.sum[b], sum);
    }
    dk_qact_free(&a);
}
END_TEST

/* Rows quantized from random values and raw random blocks, lengths 1..9 groups with partial ones. */
START_TEST(test_definition_bits_and_bound) {
    uint32_t type;
    if (!t_isa(_i, &type)) return;
    uint32_t be, bb;
    ck_assert(dk_ggml_type_block(type, &be, &bb));
    static const int64_t lens[] = {32, 64, 224, 256, 288, 896, 4864, 32 * 67, 2304};
    uint64_t s = 77 + (uint64_t)_i;
    for (int raw = 0; raw < 2; raw++)
        for (int li = 0; li < (int)(sizeof lens / sizeof *lens); li++) {
            int64_t k = lens[li];
            if (k % be) continue; /* K types: whole blocks of 256 */
            size_t rb = dk_ggml_row_bytes(type, k);
            uint8_t *row = malloc(rb);
            float *x = malloc((size_t)k * 4), *wf = malloc((size_t)k * 4);
            for (int64_t j = 0; j < k; j++) wf[j] = t_unit(&s) * (j % 7 == 0 ? 3.0f : 0.5f);
            if (raw) { /* every byte random; the f16 scale kept finite and nonzero */
                for (size_t j = 0; j < rb; j++) row[j] = (uint8_t)(t_unit(&s) * 128.0f + 128.0f);
                for (size_t b = 0; b < rb; b += bb) {
                    size_t hi = type == DK_GGML_TYPE_Q6_K ? 209 : 1; /* d's high byte (Q4_K: and dmin's) */
                    row[b + hi] = (uint8_t)((row[b + hi] & 0xBF) | 0x04);
                    if (type == DK_GGML_TYPE_Q4_K) row[b + 3] = (uint8_t)((row[b + 3] & 0xBF) | 0x04);
                    if (type == DK_GGML_TYPE_Q8_0) row[b + 2] = 0x80; /* a -128 quant in every block */
                }
            } else dk_quantize(type, wf, row, (size_t)k);
            for (int64_t j = 0; j < k; j++) x[j] = t_unit(&s) * (j % 5 == 0 ? 4.0f : 1.0f);
            dk_qact a = {0};
            dk_err e;
            ck_assert(dk_qact_init(&a, k, &e) == DK_OK);
            dk_qact_quantize(&a, x, 1, k);
            dk_tensor t = {row, type, 1, k, rb};
            float y;
            dk_qdot_rows(&t, 0, 1, &a, 1, &y, 1, 0.0f);
            double mag;
            float ref = t_ref_dot(type, row, k, &a, &mag);
            ck_assert_msg(memcmp(&y, &ref, 4) == 0,
                          "%s k = %lld raw %d isa %d: %.9g vs the definition's %.9g", dk_ggml_type_name(type),
                          (long long)k, raw, _i / T_N_TYPES, y, ref);
            dk_qrow xr = dk_qact_row(&a, 0);
            float plain = dk_qdot_scalar(type, row, &xr, k);
            ck_assert(memcmp(&y, &plain, 4) == 0);
            /* the error bound against the double product of the file's values */
            dk_dequantize(type, row, wf, (size_t)k);
            double exact = 0, act = 0, u = 0x1p-24, L = (double)((k / 32 + 7) / 8);
            for (int64_t j = 0; j < k; j++) {
                exact += (double)wf[j] * x[j];
                /* the activation's rounding, and (Q4_K) the file value's own rounding of dl u - ml */
                act += fabs((double)wf[j]) * (a.d[j / 32] / 2.0 + 3.02 * u * fabs(x[j]));
            }
            double bound = act + (2 * u + 1.01 * (L + 3) * u) * (1 + u) * mag;
            ck_assert_msg(fabs(y - exact) <= bound, "%s k = %lld raw %d: |%.9g - %.9g| > bound %.3g",
                          dk_ggml_type_name(type), (long long)k, raw, y, exact, bound);
            dk_qact_free(&a);
            free(row);
            free(x);
            free(wf);
        }
    dk_qdot_set_simd(true);
    dk_qdot_set_vbmi(true);
}
END_TEST

/* m rows of X at once, one at a time in row ranges of 5 (m = 1: pairs of rows through the two-row
 * kernels, the odd one alone), beta 1: the same bits; lengths whose last group of 8 blocks is whole,
 * half (896: 28 blocks) and partial (416: 13) for the 32-value types. */
START_TEST(test_rows_independent) {
    uint32_t type;
    if (!t_isa(_i, &type)) return;
    uint32_t be, bb;
    ck_assert(dk_ggml_type_block(type, &be, &bb));
    static const int lens[] = {1792, 896, 416};
    for (int li = 0; li < (be == 32 ? 3 : 1); li++) {
        enum { R = 23, M = 3 };
        int K = lens[li];
        size_t rb = dk_ggml_row_bytes(type, K);
        uint8_t *w = malloc(R * rb);
        float *src = malloc(K * 4), *x = malloc(M * K * 4), y[M * R], z[M * R];
        uint64_t s = 11;
        for (int r = 0; r < R; r++) {
            for (int j = 0; j < K; j++) src[j] = t_unit(&s);
            dk_quantize(type, src, w + r * rb, K);
        }
        for (int i = 0; i < M * K; i++) x[i] = t_unit(&s) * 2.0f;
        dk_qact a = {0}, a1 = {0};
        dk_err e;
        ck_assert(dk_qact_init(&a, M * K, &e) == DK_OK && dk_qact_init(&a1, K, &e) == DK_OK);
        dk_qact_quantize(&a, x, M, K);
        dk_tensor t = {w, type, R, K, rb};
        dk_qdot_rows(&t, 0, R, &a, M, y, R, 0.0f);
        for (int i = 0; i < M; i++) {
            dk_qact_quantize(&a1, x + i * K, 1, K);
            for (int r0 = 0; r0 < R; r0 += 5)
                dk_qdot_rows(&t, r0, r0 + 5 < R ? r0 + 5 : R, &a1, 1, z + i * R, R, 0.0f);
        }
        ck_assert_msg(memcmp(y, z, sizeof y) == 0, "%s k = %d: m = 1 ranges differ from m = 3",
                      dk_ggml_type_name(type), K);
        dk_qdot_rows(&t, 0, R, &a, M, z, R, 1.0f);
        for (int i = 0; i < M * R; i++) ck_assert_msg(z[i] == y[i] + y[i], "beta 1: entry %d", i);
        dk_qact_free(&a);
        dk_qact_free(&a1);
        free(w);
        free(src);
        free(x);
    }
    dk_qdot_set_simd(true);
    dk_qdot_set_vbmi(true);
}
END_TEST

int main(void) {
    Suite *s = suite_create("qdot");
    TCase *tc = tcase_create("qdot");
    tcase_add_test(tc, test_quantize);
    tcase_add_loop_test(tc, test_definition_bits_and_bound, 0, 3 * T_N_TYPES);
    tcase_add_loop_test(tc, test_rows_independent, 0, 3 * T_N_TYPES);
    suite_add_tcase(s, tc);
    return dk_test_main(s);
}
