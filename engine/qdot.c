/* qdot.c — quantized activations and the q8 dot products of qdot.h (plain C; qdot_avx512.c has the
 * AVX-512 VNNI kernels). */
#include "qdot.h"
#include "qdot_simd.h"
#include "q5_0r.h"
#include "quant.h"
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

int64_t dk_qact_bytes(int64_t cap) {
    return (cap + 63) / 64 * 64 +
           cap / DK_QACT_BLOCK * (int64_t)(sizeof(float) + sizeof(int32_t) + 2 * sizeof(int16_t));
}

dk_status dk_qact_init(dk_qact *a, int64_t cap, dk_err *e) {
    *a = (dk_qact){0};
    int64_t nb = cap / DK_QACT_BLOCK;
    a->q = aligned_alloc(64, ((size_t)cap + 63) / 64 * 64); /* whole lines for 512-bit loads */
    a->d = malloc((size_t)nb * sizeof *a->d);
    a->sum = malloc((size_t)nb * sizeof *a->sum);
    a->hsum = malloc((size_t)nb * 2 * sizeof *a->hsum);
    if (!a->q || !a->d || !a->sum || !a->hsum) {
        dk_qact_free(a);
        return dk_fail(e, DK_ERR_NOMEM, "out of memory (quantized activations, %lld values)", (long long)cap);
    }
    a->cap = cap;
    return DK_OK;
}

void dk_qact_free(dk_qact *a) {
    free(a->q);
    free(a->d);
    free(a->sum);
    free(a->hsum);
    *a = (dk_qact){0};
}

/* A block's scale from its largest magnitude: amax / 127; 0 below 2^-96 (so that 1/d stays finite
 * and every q is 0); NaN when the block holds an infinity or a NaN (its q are 0 and the NaN reaches
 * every dot through s_b, as an f32 product would propagate it). */
static float dk_qact_scale(float amax, bool finite) {
    if (!finite) return NAN;
    return amax < 0x1p-96f ? 0.0f : amax / 127.0f;
}

#if defined(__AVX2__)
#include <immintrin.h>
/* one block of 32: the scalar loop's operations, 8 lanes at a time (cvtps rounds to nearest even,
 * as rintf does in the default rounding mode) */
static void dk_qact_block(const float *x, int8_t *q, float *d, int32_t *sum, int16_t *hsum) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4], mx = _mm256_setzero_ps(), nf = _mm256_setzero_ps();
    for (int j = 0; j < 4; j++) {
        v[j] = _mm256_loadu_ps(x + 8 * j);
        __m256 a = _mm256_andnot_ps(sign, v[j]);
        mx = _mm256_max_ps(mx, a);
        nf = _mm256_or_ps(nf, _mm256_cmp_ps(a, _mm256_set1_ps(FLT_MAX), _CMP_NLE_UQ));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
    float s = dk_qact_scale(_mm_cvtss_f32(m4), _mm256_movemask_ps(nf) == 0);
    *d = s;
    __m256 id = _mm256_set1_ps(s > 0.0f ? 1.0f / s : 0.0f);
    __m256i r[4], lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    for (int j = 0; j < 4; j++)
        r[j] = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(v[j], id)), lo), hi);
    __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3]));
    b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, b);
    for (int h = 0; h < 2; h++) { /* values 16h .. 16h + 15: r[2h] and r[2h + 1] */
        __m256i s8 = _mm256_add_epi32(r[2 * h], r[2 * h + 1]);
        __m128i a4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
        a4 = _mm_add_epi32(a4, _mm_shuffle_epi32(a4, 0x4E));
        a4 = _mm_add_epi32(a4, _mm_shuffle_epi32(a4, 0xB1));
        hsum[h] = (int16_t)_mm_cvtsi128_si32(a4);
    }
    *sum = hsum[0] + hsum[1];
}
#else
static void dk_qact_block(const float *x, int8_t *q, float *d, int32_t *sum, int16_t *hsum) {
    float amax = 0.0f;
    bool finite = true;
    for (int i = 0; i < DK_QACT_BLOCK; i++) {
        float a = fabsf(x[i]);
        finite = finite && a <= FLT_MAX;
        amax = a > amax ? a : amax;
    }
    float s = dk_qact_scale(amax, finite), id = s > 0.0f ? 1.0f / s : 0.0f;
    *d = s;
    int32_t t[2] = {0, 0};
    for (int i = 0; i < DK_QACT_BLOCK; i++) {
        float v = rintf(x[i] * id);
        /* NaN: -127, as the AVX2 form's clamp of cvtps's 0x80000000 (the block's d is NaN then) */
        int32_t r = v != v ? -127 : v >= 127.0f ? 127 : v <= -127.0f ? -127 : (int32_t)v;
        q[i] = (int8_t)r;
        t[i / 16] += r;
    }
    hsum[0] = (int16_t)t[0];
    hsum[1] = (int16_t)t[1];
    *sum = t[0] + t[1];
}
#endif

void dk_qact_quantize(dk_qact *a, const float *x, int m, int64_t k) {
    int64_t nb = k / DK_QACT_BLOCK;
    a->k = k;
    for (int64_t i = 0; i < (int64_t)m * nb; i++)
        dk_qact_block(x + i * DK_QACT_BLOCK, a->q + i * DK_QACT_BLOCK, a->d + i, a->sum + i, a->hsum + 2 * i);
}

dk_qrow dk_qact_row(const dk_qact *a, int i) {
    size_t k = (size_t)a->k, nb = k / DK_QACT_BLOCK;
    return (dk_qrow){a->q + i * k, a->d + i * nb, a->sum + i * nb, a->hsum + i * 2 * nb};
}

bool dk_qdot_type(uint32_t type) {
    return type == DK_GGML_TYPE_Q8_0 || type == DK_GGML_TYPE_Q5_0 || type == DK_GGML_TYPE_Q5_0R ||
           type == DK_GGML_TYPE_Q4_K || type == DK_GGML_TYPE_Q6_K;
}

/* Σ w_i q_i over n values */
static int32_t dk_qdot_ints(const int32_t *w, const int8_t *q, int n) {
    int32_t s = 0;
    for (int i = 0; i < n; i++) s += w[i] * q[i];
    return s;
}

static float dk_qdot_half(const uint8_t *p) { return dk_fp16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

float dk_qdot_scalar(uint32_t type, const void *w, const dk_qrow *x, int64_t n) {
    float acc[8] = {0};
    const uint8_t *p = w;
    int32_t v[DK_QACT_BLOCK];
    if (type == DK_GGML_TYPE_Q8_0 || type == DK_GGML_TYPE_Q5_0 || type == DK_GGML_TYPE_Q5_0R) {
        for (int64_t b = 0; b < n / DK_QACT_BLOCK; b++) {
            const uint8_t *d; /* the block's f16 scale */
            if (type == DK_GGML_TYPE_Q8_0) {
                d = p + 34 * b;
                for (int i = 0; i < DK_QACT_BLOCK; i++) v[i] = (int8_t)d[2 + i];
            } else { /* Q5_0, and Q5_0R: the same quants and scale, from the block's unit */
                uint8_t u[DK_QACT_BLOCK];
                if (type == DK_GGML_TYPE_Q5_0) {
                    d = p + 22 * b;
                    dk_q5_quants(d + 2, u);
                } else {
                    const uint8_t *unit = p + (b / 4) * DK_Q5_0R_UNIT_BYTES;
                    dk_q5_0r_block(unit, (int)(b % 4), u);
                    d = unit + 2 * (b % 4);
                }
                for (int i = 0; i < DK_QACT_BLOCK; i++) v[i] = (int32_t)u[i] - 16;
            }
            float s = dk_qdot_half(d) * x->d[b];
            acc[b % 8] = fmaf(s, (float)dk_qdot_ints(v, x->q + b * DK_QACT_BLOCK, DK_QACT_BLOCK), acc[b % 8]);
        }
    } else if (type == DK_GGML_TYPE_Q4_K) { /* 144-byte blocks: d, dmin, 12 scale bytes, 128 of nibbles */
        for (int64_t b0 = 0; b0 < n / DK_QACT_BLOCK; b0 += 8, p += 144) {
            float dl[8], ml[8];
            dk_k4_scales(p + 4, dk_qdot_half(p), dk_qdot_half(p + 2), dl, ml);
            for (int j = 0; j < 8; j++) { /* sub-block j: the low (j even) or high nibbles of 32 bytes */
                for (int i = 0; i < DK_QACT_BLOCK; i++)
                    v[i] = (p[16 + 32 * (j / 2) + i] >> (4 * (j % 2))) & 0xF;
                int32_t S = dk_qdot_ints(v, x->q + (b0 + j) * DK_QACT_BLOCK, DK_QACT_BLOCK);
                acc[j] = fmaf(x->d[b0 + j], fmaf(dl[j], (float)S, -(ml[j] * (float)x->sum[b0 + j])), acc[j]);
            }
        }
    } else { /* Q6_K, 210-byte blocks: ql[128], qh[64], int8 scales[16], f16 d; see quant.c */
        for (int64_t b0 = 0; b0 < n / DK_QACT_BLOCK; b0 += 8, p += 210) {
            const int8_t *sc = (const int8_t *)(p + 192);
            for (int j = 0; j < 8; j++) { /* block j: half j / 4, k = j % 4, values l = 0..31 */
                int half = j / 4, k = j % 4;
                for (int l = 0; l < DK_QACT_BLOCK; l++)
                    v[l] = (int32_t)(((p[64 * half + 32 * (k & 1) + l] >> (4 * (k >> 1))) & 0xF) |
                                     ((p[128 + 32 * half + l] >> (2 * k)) & 3) << 4) -
                           32;
                const int8_t *q = x->q + (b0 + j) * DK_QACT_BLOCK;
                int32_t S = sc[2 * j] * dk_qdot_ints(v, q, 16) +
                            sc[2 * j + 1] * dk_qdot_ints(v + 16, q + 16, 16);
                acc[j] = fmaf(dk_qdot_half(p + 208) * x->d[b0 + j], (float)S, acc[j]);
            }
        }
    }
    float t[4]; /* ((acc0 + acc4) + (acc2 + acc6)) + ((acc1 + acc5) + (acc3 + acc7)) */
    for (int i = 0; i < 4; i++) t[i] = acc[i] + acc[i + 4];
    return (t[0] + t[2]) + (t[1] + t[3]);
}

/* -1: not yet asked; 0 or 1: whether the AVX-512 VNNI kernels are used, and Q5_0's VBMI form */
static _Atomic int dk_qdot_z = -1, dk_qdot_vb = -1;

/* whether this build and CPU have the AVX-512 VNNI kernels */
static bool dk_qdot_has_simd(void) {
    return dk_qdot_avx512(DK_GGML_TYPE_Q8_0, false) != NULL && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512vnni");
}

bool dk_qdot_set_simd(bool on) {
    bool has = dk_qdot_has_simd();
    atomic_store(&dk_qdot_z, on && has);
    return on && has;
}

bool dk_qdot_set_vbmi(bool on) {
    bool has = dk_qdot_has_simd() && __builtin_cpu_supports("avx512vbmi");
    atomic_store(&dk_qdot_vb, on && has);
    return on && has;
}

void dk_qdot_rows(const dk_tensor *w, int64_t r0, int64_t r1, const dk_qact *a, int m, float *y, int64_t ldy,
                  float beta) {
    if (atomic_load(&dk_qdot_z) < 0) dk_qdot_set_simd(true);
    if (atomic_load(&dk_qdot_vb) < 0) dk_qdot_set_vbmi(true);
    bool vb = atomic_load(&dk_qdot_vb) == 1;
    dk_qdot_fn z = atomic_load(&dk_qdot_z) == 1 ? dk_qdot_avx512(w->type, vb) : NULL;
    int64_t k = w->cols;
    dk_qdot2_fn z2 = z && m == 1 ? dk_qdot_avx512_2(w->type, vb) : NULL;
    if (z2) { /* one row of X: row r0 + i with r0 + h + i, two long streams (as matvec.c pairs rows) */
        int64_t h = (r1 - r0) / 2;
        dk_qrow x = dk_qact_row(a, 0);
        z2((const uint8_t *)w->data + (size_t)r0 * w->row_bytes, w->row_bytes, h, &x, k, y + r0, beta);
        r0 += 2 * h;
    }
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
        for (int i = 0; i < m; i++) {
            dk_qrow x = dk_qact_row(a, i);
            float s = z ? z(row, &x, k) : dk_qdot_scalar(w->type, row, &x, k);
            float *yi = y + (size_t)i * (size_t)ldy + r;
            *yi = beta != 0.0f ? *yi + s : s;
        }
    }
}
