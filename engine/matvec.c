/* matvec.c — fused widen + dot products for a few rows (see matvec.h). */
#include "matvec.h"
#include "quant.h"
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include "matvec_simd.h"

size_t dk_matvec_scratch_floats(int64_t k) { return (size_t)k; }

#ifdef DK_MATVEC_SIMD
/* 8 widened weights at element i of a row: one macro per file type, the same loop around them */
#define DK_LOAD_F32(p, i) _mm256_loadu_ps((const float *)(p) + (i))
#define DK_LOAD_BF16(p, i)                 \
    _mm256_castsi256_ps(_mm256_slli_epi32( \
        _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)(p) + (i)))), 16))
#define DK_LOAD_F16(p, i) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)(p) + (i))))

#define DK_DOT_BODY(LOAD, SCALAR, ELEM_BYTES)                                                \
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                              \
    int64_t i = 0;                                                                           \
    for (; i + 32 <= n; i += 32) {                                                           \
        DK_MATVEC_PREFETCH((const char *)w + i * (ELEM_BYTES), 32 * (ELEM_BYTES));           \
        a0 = _mm256_fmadd_ps(LOAD(w, i), _mm256_loadu_ps(x + i), a0);                        \
        a1 = _mm256_fmadd_ps(LOAD(w, i + 8), _mm256_loadu_ps(x + i + 8), a1);                \
        a2 = _mm256_fmadd_ps(LOAD(w, i + 16), _mm256_loadu_ps(x + i + 16), a2);              \
        a3 = _mm256_fmadd_ps(LOAD(w, i + 24), _mm256_loadu_ps(x + i + 24), a3);              \
    }                                                                                        \
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(LOAD(w, i), _mm256_loadu_ps(x + i), a0); \
    float s = dk_matvec_hsum(a0, a1, a2, a3);                                                \
    for (; i < n; i++) s += SCALAR(w, i) * x[i];                                             \
    return s;

#define DK_SCALAR_F32(p, i) (((const float *)(p))[i])
static inline float dk_scalar_bf16(const void *p, int64_t i) {
    uint16_t h;
    memcpy(&h, (const uint16_t *)p + i, 2);
    return dk_bf16_to_f32(h);
}
static inline float dk_scalar_f16(const void *p, int64_t i) {
    uint16_t h;
    memcpy(&h, (const uint16_t *)p + i, 2);
    return dk_fp16_to_f32(h);
}

float dk_matvec_dot(const float *w, const float *x, int64_t n) { DK_DOT_BODY(DK_LOAD_F32, DK_SCALAR_F32, 4) }
static float dk_dot_bf16(const void *w, const float *x, int64_t n) {
    DK_DOT_BODY(DK_LOAD_BF16, dk_scalar_bf16, 2)
}
static float dk_dot_f16(const void *w, const float *x, int64_t n) {
    DK_DOT_BODY(DK_LOAD_F16, dk_scalar_f16, 2)
}

/* One 32-element block of an 8-bit-valued row: acc[k] += (d * q[8k..8k+7]) * x[8k..8k+7] (minus m
 * after the multiply when `min`), d = d0 for elements 0-15 and d1 for 16-31: the four 8-lane FMAs of
 * the F32 loop's step, so the block types keep the F32 order. */
static inline void dk_matvec_fma_q32(__m256 d0, __m256 d1, __m256 m, bool min, __m256i q, const float *x,
                                     __m256 acc[4]) {
    __m128i q0 = _mm256_castsi256_si128(q), q1 = _mm256_extracti128_si256(q, 1);
    __m256 w[4] = {_mm256_mul_ps(d0, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q0))),
                   _mm256_mul_ps(d0, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q0, 8)))),
                   _mm256_mul_ps(d1, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q1))),
                   _mm256_mul_ps(d1, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q1, 8))))};
    for (int k = 0; k < 4; k++)
        acc[k] = _mm256_fmadd_ps(min ? _mm256_sub_ps(w[k], m) : w[k], _mm256_loadu_ps(x + 8 * k), acc[k]);
}

/* Q8_0 (block: f16 scale d, 32 x int8 q; value d * q, as dk_dequantize computes it): a block is one
 * step of the 32-element loop above, so the order is the F32 one; n is a multiple of 32. */
static float dk_dot_q8_0(const void *w, const float *x, int64_t n) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const uint8_t *b = w;
    for (int64_t i = 0; i < n; i += 32, b += 34) {
        DK_MATVEC_PREFETCH(b, 34);
        uint16_t h;
        memcpy(&h, b, 2);
        __m256 d = _mm256_set1_ps(_cvtsh_ss(h)); /* == dk_fp16_to_f32 (a scale is never NaN) */
        __m256i q = _mm256_loadu_si256((const __m256i *)(b + 2));
        dk_matvec_fma_q32(d, d, d, false, q, x + i, acc);
    }
    return dk_matvec_hsum(acc[0], acc[1], acc[2], acc[3]);
}

/* Q5_0 (block: f16 scale d, u32 qh = the 5th bits, 16 bytes of nibbles; element j < 16 is the low
 * nibble of byte j, element j + 16 its high nibble; value d * (q - 16), as dk_dequantize computes it). */
static float dk_dot_q5_0(const void *w, const float *x, int64_t n) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const uint8_t *b = w;
    /* byte i of the broadcast qh picks byte i / 8 of qh, then bit i % 8 of it */
    const __m256i pick = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2,
                                          2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    for (int64_t i = 0; i < n; i += 32, b += 22) {
        DK_MATVEC_PREFETCH(b, 22);
        uint16_t h;
        uint32_t qh;
        memcpy(&h, b, 2);
        memcpy(&qh, b + 2, 4);
        __m128i raw = _mm_loadu_si128((const __m128i *)(b + 6));
        __m128i lo = _mm_and_si128(raw, _mm_set1_epi8(0x0F)),
                hi = _mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0F));
        __m256i q = _mm256_set_m128i(hi, lo);
        __m256i hb = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), pick), bit);
        q = _mm256_or_si256(q, _mm256_and_si256(_mm256_cmpeq_epi8(hb, bit), _mm256_set1_epi8(0x10)));
        q = _mm256_sub_epi8(q, _mm256_set1_epi8(16));
        __m256 d = _mm256_set1_ps(_cvtsh_ss(h));
        dk_matvec_fma_q32(d, d, d, false, q, x + i, acc);
    }
    return dk_matvec_hsum(acc[0], acc[1], acc[2], acc[3]);
}

/* Q4_K (144-byte blocks of 256: f16 d, dmin, 12 bytes of scales, 128 of nibbles): per 64 elements
 * 32 bytes, low nibbles sub-block 2c, high nibbles 2c + 1; value dl * q - ml as dk_dequantize. */
static float dk_dot_q4_k(const void *w, const float *x, int64_t n) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const uint8_t *b = w;
    for (int64_t i = 0; i < n; i += 256, b += 144) {
        DK_MATVEC_PREFETCH(b, 144);
        __m256 dl, ml;
        dk_matvec_k4_scales(b, &dl, &ml);
        for (int c = 0; c < 4; c++) {
            __m256i raw = _mm256_loadu_si256((const __m256i *)(b + 16 + 32 * c)), m4 = _mm256_set1_epi8(0x0F);
            __m256i j1 = _mm256_set1_epi32(2 * c), j2 = _mm256_set1_epi32(2 * c + 1);
            __m256 d1 = _mm256_permutevar8x32_ps(dl, j1), d2 = _mm256_permutevar8x32_ps(dl, j2);
            dk_matvec_fma_q32(d1, d1, _mm256_permutevar8x32_ps(ml, j1), true, _mm256_and_si256(raw, m4),
                              x + i + 64 * c, acc);
            dk_matvec_fma_q32(d2, d2, _mm256_permutevar8x32_ps(ml, j2), true,
                              _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4), x + i + 64 * c + 32, acc);
        }
    }
    return dk_matvec_hsum(acc[0], acc[1], acc[2], acc[3]);
}

/* Q6_K (210-byte blocks of 256: ql[128], qh[64], int8 scales[16], f16 d): per half (128 elements)
 * element l + 32k (l < 32, k < 4) has its low 4 bits in nibble k >> 1 of ql[l + 32(k & 1)], its high
 * 2 bits at bits 2k of qh[l], scale sc[l / 16 + 2k]; value (d * scale) * (q - 32) as dk_dequantize. */
static float dk_dot_q6_k(const void *w, const float *x, int64_t n) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const uint8_t *b = w;
    for (int64_t i = 0; i < n; i += 256, b += 210) {
        DK_MATVEC_PREFETCH(b, 210);
        const int8_t *sc = (const int8_t *)(b + 192);
        uint16_t h;
        memcpy(&h, b + 208, 2);
        float d = _cvtsh_ss(h);
        for (int half = 0; half < 2; half++) {
            __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 128 + 32 * half));
            for (int k = 0; k < 4; k++) {
                __m256i ql = _mm256_loadu_si256((const __m256i *)(b + 64 * half + 32 * (k & 1)));
                __m256i lo = _mm256_and_si256(_mm256_srl_epi16(ql, _mm_cvtsi32_si128(4 * (k >> 1))),
                                              _mm256_set1_epi8(0x0F));
                __m256i hi = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * k)),
                                              _mm256_set1_epi8(0x03));
                __m256i q = _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)),
                                            _mm256_set1_epi8(32));
                __m256 d0 = _mm256_set1_ps(d * (float)sc[8 * half + 2 * k]),
                       d1 = _mm256_set1_ps(d * (float)sc[8 * half + 1 + 2 * k]);
                dk_matvec_fma_q32(d0, d1, d0, false, q, x + i + 128 * half + 32 * k, acc);
            }
        }
    }
    return dk_matvec_hsum(acc[0], acc[1], acc[2], acc[3]);
}

/* -1: not yet asked; 0 or 1: whether the AVX-512 kernels are used */
static _Atomic int dk_matvec_z = -1;

bool dk_matvec_set_avx512(bool on) {
    bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               dk_matvec_avx512_dot(DK_GGML_TYPE_Q8_0) != NULL;
    atomic_store(&dk_matvec_z, on && has);
    return on && has;
}

static bool dk_matvec_z_on(void) {
    if (atomic_load(&dk_matvec_z) < 0) dk_matvec_set_avx512(true);
    return atomic_load(&dk_matvec_z) == 1;
}

static dk_dot_fn dk_matvec_inline(uint32_t type) {
    dk_dot_fn z = dk_matvec_z_on() ? dk_matvec_avx512_dot(type) : NULL;
    if (z) return z;
    switch (type) {
    case DK_GGML_TYPE_F32: return (dk_dot_fn)dk_matvec_dot;
    case DK_GGML_TYPE_BF16: return dk_dot_bf16;
    case DK_GGML_TYPE_F16: return dk_dot_f16;
    case DK_GGML_TYPE_Q8_0: return dk_dot_q8_0;
    case DK_GGML_TYPE_Q5_0: return dk_dot_q5_0;
    case DK_GGML_TYPE_Q4_K: return dk_dot_q4_k;
    case DK_GGML_TYPE_Q6_K: return dk_dot_q6_k;
    default: return NULL;
    }
}
#else
float dk_matvec_dot(const float *w, const float *x, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += w[i] * x[i];
    return s;
}
bool dk_matvec_set_avx512(bool on) {
    (void)on;
    return false;
}
static bool dk_matvec_z_on(void) { return false; }
static dk_dot_fn dk_matvec_inline(uint32_t type) {
    return type == DK_GGML_TYPE_F32 ? (dk_dot_fn)dk_matvec_dot : NULL;
}
#endif

/* (without DK_MATVEC_SIMD, matvec_avx512.c has no kernels: NULL for every type) */
bool dk_matvec_avx512_type(uint32_t type) { return dk_matvec_avx512_dot(type) != NULL; }

/* two rows at once (AVX-512 Q4_K, Q6_K), or NULL */
static dk_dot2_fn dk_matvec_inline2(uint32_t type) {
    return dk_matvec_z_on() ? dk_matvec_avx512_dot2(type) : NULL;
}

void dk_matvec_rows(const dk_tensor *w, int64_t r0, int64_t r1, const float *x, int m, float *y, int64_t ldy,
                    float beta, float *scratch) {
    int64_t k = w->cols;
    dk_dot_fn dot = dk_matvec_inline(w->type);
    /* in registers: F32 rows always, the others for one row of X (m > 1 widens once per row) */
    bool in_regs = dot && (w->type == DK_GGML_TYPE_F32 || m == 1);
    dk_dot2_fn dot2 = m == 1 ? dk_matvec_inline2(w->type) : NULL;
    if (dot2) {
        /* row r0 + i with row r0 + h + i: two long sequential streams (adjacent rows, short
         * interleaved streams, defeated the prefetcher: 0.3x) */
        int64_t h = (r1 - r0) / 2;
        for (int64_t i = 0; i < h; i++) {
            const uint8_t *ra = (const uint8_t *)w->data + (size_t)(r0 + i) * w->row_bytes;
            float s[2];
            dot2(ra, ra + (size_t)h * w->row_bytes, x, k, s);
            float *ya = y + r0 + i, *yb = ya + h;
            *ya = beta != 0.0f ? *ya + s[0] : s[0];
            *yb = beta != 0.0f ? *yb + s[1] : s[1];
        }
        r0 += 2 * h;
    }
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
        if (!in_regs) dk_dequantize(w->type, row, scratch, (size_t)k);
        for (int i = 0; i < m; i++) {
            const float *xi = x + (size_t)i * (size_t)k;
            float s = in_regs ? dot(row, xi, k) : dk_matvec_dot(scratch, xi, k);
            float *yi = y + (size_t)i * (size_t)ldy + r;
            *yi = beta != 0.0f ? *yi + s : s;
        }
    }
}
