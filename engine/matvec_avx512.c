/* matvec_avx512.c — AVX-512 (F + BW) forms of matvec.c's in-register row dot products of the block
 * types (16 lanes), used when the CPU has both (matvec.c checks at run time; the build never
 * assumes it). F32, F16 and BF16 rows keep their AVX2 kernels: they run at the memory's pace already
 * and measured no faster in 16 lanes (64-byte loads of 32-byte-aligned rows split cache lines).
 *
 * Same bits as the AVX2 kernels: a 16-lane accumulator holds two of matvec.h's 8-lane ones
 * (A = a0|a1, B = a2|a3), each 32-element step is one FMA into each, and every lane sees the same
 * operations in the same order; the reduction is matvec_simd.h's. Each weight is widened exactly as
 * dk_dequantize computes it (quant.c holds the block layouts):
 *   Q8_0  d * q: int8 -> int32 -> f32 (exact), one multiply.
 *   Q5_0, Q4_K  every value of a block (Q5_0: the 32 of d * (q - 16); Q4_K: the 16 of a sub-block's
 *         dl * q - ml) is computed once into a table with the reference's operations, and each
 *         weight is a table lookup (vpermps) indexed by its bits: the same floats, fewer operations.
 *   Q6_K  (d * scale) * (q - 32): the q - 32 built as bytes 64 at a time in registers, each 16
 *         widened, converted, one multiply (scales broadcast from a register, not stored: a store
 *         read back in pieces measured 0.78x).
 * Measured here (one thread, CPU time, a busy 2-core AMD EPYC with AVX-512): rows read at ~1.7x
 * (Q8_0), ~2x (Q5_0), ~3.5x (Q4_K) and ~2.8x (Q6_K) the AVX2 kernels' bytes/s. All four reach
 * ~20 G elements/s, the bound of the dot order's two 16-lane FMA chains (one FMA per 32 elements
 * each, 4 cycles apart); matvec.c runs Q4_K and Q6_K rows two at once (the _2 kernels) to double the chains. */
#include "matvec_simd.h"
#include "q5_0r_simd.h"
#include <string.h>

#if defined(DK_MATVEC_SIMD) && (defined(__GNUC__) || defined(__clang__))
#define DK_Z __attribute__((target("avx512f,avx512bw")))

/* (a0 + a1) + (a2 + a3) and the rest of matvec.h's reduction; n is a multiple of 32, no tail */
DK_Z static inline float dk_z_hsum(__m512 a, __m512 b) {
    __m256 a0 = _mm512_castps512_ps256(a),
           a1 = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
    __m256 a2 = _mm512_castps512_ps256(b),
           a3 = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(b), 1));
    return dk_matvec_hsum(a0, a1, a2, a3);
}

DK_Z static inline __m512 dk_z_half(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _mm512_set1_ps(_cvtsh_ss(h)); /* == dk_fp16_to_f32 (a scale is never NaN) */
}
DK_Z static inline __m512i dk_z_u8(const uint8_t *p) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
}

/* Each type's block step: one block at p against x, into the two accumulators. */

/* Q8_0 (34-byte blocks: f16 d, 32 x int8 q) */
DK_Z static inline void dk_z_q8_0(const uint8_t *p, const float *x, __m512 *a, __m512 *b) {
    __m512 d = dk_z_half(p);
    __m512 w0 = _mm512_mul_ps(
        d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 2)))));
    __m512 w1 = _mm512_mul_ps(
        d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 18)))));
    *a = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x), *a);
    *b = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + 16), *b);
}

/* Q5_0 (22-byte blocks: f16 d, u32 qh, 16 bytes of nibbles). Table: entry q of (lo | hi) is
 * (float)(q - 16) * d; element j < 16 is indexed by the low nibble of byte j (vpermps reads the low
 * 4 bits of each lane) and takes hi where bit j of qh is set; element j + 16 by the high nibble and
 * bit j + 16. */
DK_Z static inline void dk_z_q5_0(const uint8_t *p, const float *x, __m512 *a, __m512 *b) {
    const __m512 c_lo = _mm512_setr_ps(-16, -15, -14, -13, -12, -11, -10, -9, -8, -7, -6, -5, -4, -3, -2, -1);
    const __m512 c_hi = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512 d = dk_z_half(p), lo = _mm512_mul_ps(c_lo, d), hi = _mm512_mul_ps(c_hi, d);
    uint32_t qh;
    memcpy(&qh, p + 2, 4);
    __m512i r = dk_z_u8(p + 6), rh = _mm512_srli_epi32(r, 4);
    __m512 w0 = _mm512_mask_permutexvar_ps(_mm512_permutexvar_ps(r, lo), (__mmask16)(qh & 0xFFFF), r, hi);
    __m512 w1 = _mm512_mask_permutexvar_ps(_mm512_permutexvar_ps(rh, lo), (__mmask16)(qh >> 16), rh, hi);
    *a = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x), *a);
    *b = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + 16), *b);
}

/* Q4_K (144-byte blocks of 256: f16 d, dmin, 12 bytes of scales, 128 bytes of nibbles): per 64
 * elements 32 bytes, low nibbles sub-block 2c, high nibbles 2c + 1; table entry q is dl * q - ml. */
DK_Z static inline void dk_z_q4_k(const uint8_t *p, const float *x, __m512 *a, __m512 *b) {
    const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m256 dl8, ml8;
    dk_matvec_k4_scales(p, &dl8, &ml8);
    __m512 dl = _mm512_castps256_ps512(dl8), ml = _mm512_castps256_ps512(ml8);
    const uint8_t *q = p + 16;
    for (int c = 0; c < 4; c++, q += 32, x += 64) {
        __m512i j1 = _mm512_set1_epi32(2 * c), j2 = _mm512_set1_epi32(2 * c + 1);
        __m512 t1 = _mm512_sub_ps(_mm512_mul_ps(_mm512_permutexvar_ps(j1, dl), iota),
                                  _mm512_permutexvar_ps(j1, ml));
        __m512 t2 = _mm512_sub_ps(_mm512_mul_ps(_mm512_permutexvar_ps(j2, dl), iota),
                                  _mm512_permutexvar_ps(j2, ml));
        __m512i r0 = dk_z_u8(q), r1 = dk_z_u8(q + 16);
        *a = _mm512_fmadd_ps(_mm512_permutexvar_ps(r0, t1), _mm512_loadu_ps(x), *a);
        *b = _mm512_fmadd_ps(_mm512_permutexvar_ps(r1, t1), _mm512_loadu_ps(x + 16), *b);
        *a = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(r0, 4), t2), _mm512_loadu_ps(x + 32),
                             *a);
        *b = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(r1, 4), t2), _mm512_loadu_ps(x + 48),
                             *b);
    }
}

/* Q6_K (210-byte blocks of 256: ql[128], qh[64], int8 scales[16], f16 d). Per half (128 elements)
 * element l + 32k (l < 32, k < 4): low 4 bits from ql[l + 32(k & 1)] (nibble k >> 1), high 2 bits
 * from bits 2k of qh[l], scale sc[l / 16 + 2k]; value (d * scale) * (q - 32). A half's 128 values
 * q - 32 are built as bytes 64 at a time (elements 0-63: the low nibbles of ql[0..63]; 64-127:
 * the high nibbles), then each 16 are widened, converted and scaled. */
DK_Z static inline void dk_z_q6_k(const uint8_t *p, const float *x, __m512 *a, __m512 *b) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x30), c32 = _mm512_set1_epi8(32);
    /* per 16-bit word: element l + 32k's 2 bits moved to bits 4-5, k = 0, 1 (low, high 256 bits), 2, 3 */
    const __m512i up01 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i dn23 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    uint16_t h;
    memcpy(&h, p + 208, 2);
    __m512 dl = _mm512_mul_ps(
        _mm512_set1_ps(_cvtsh_ss(h)),
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 192)))));
    for (int half = 0; half < 2; half++, x += 128) {
        __m512i ql = _mm512_loadu_si512(p + 64 * half);
        __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(p + 128 + 32 * half)));
        __m512i h01 = _mm512_and_si512(_mm512_sllv_epi16(qh, up01), m2),
                h23 = _mm512_and_si512(_mm512_srlv_epi16(qh, dn23), m2);
        __m512i v0 = _mm512_sub_epi8(_mm512_or_si512(_mm512_and_si512(ql, m4), h01), c32);
        __m512i v1 = _mm512_sub_epi8(_mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), h23),
                                     c32);
        /* group g: elements 16g..16g+15 of the half, 16-byte lane g % 4 of v0 (g < 4) or v1, scale 8 half + g */
#define DK_Z_Q6_GROUP(V, LANE, G, ACC)                                                               \
    ACC = _mm512_fmadd_ps(                                                                           \
        _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_set1_epi32(8 * half + (G)), dl),                  \
                      _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(V, LANE)))), \
        _mm512_loadu_ps(x + 16 * (G)), ACC)
        DK_Z_Q6_GROUP(v0, 0, 0, *a);
        DK_Z_Q6_GROUP(v0, 1, 1, *b);
        DK_Z_Q6_GROUP(v0, 2, 2, *a);
        DK_Z_Q6_GROUP(v0, 3, 3, *b);
        DK_Z_Q6_GROUP(v1, 0, 4, *a);
        DK_Z_Q6_GROUP(v1, 1, 5, *b);
        DK_Z_Q6_GROUP(v1, 2, 6, *a);
        DK_Z_Q6_GROUP(v1, 3, 7, *b);
#undef DK_Z_Q6_GROUP
    }
}

/* One row, and two rows at once (out[0], out[1]; two more independent FMA chains, x read once for
 * both): a block type's kernels around its step. Two rows measured 1.2-1.6x one for Q4_K and Q6_K,
 * no gain for Q8_0 and Q5_0 (0.95-1.05x), which keep the one-row kernel only. */
#define DK_Z_KERNEL(NAME, STEP, ELEMS, BYTES)                          \
    DK_Z static float NAME(const void *w, const float *x, int64_t n) { \
        __m512 a = _mm512_setzero_ps(), b = a;                         \
        const uint8_t *p = w;                                          \
        for (int64_t i = 0; i < n; i += ELEMS, p += BYTES) {           \
            DK_MATVEC_PREFETCH(p, BYTES);                              \
            STEP(p, x + i, &a, &b);                                    \
        }                                                              \
        return dk_z_hsum(a, b);                                        \
    }
#define DK_Z_KERNEL2(NAME, STEP, ELEMS, BYTES)                                                         \
    DK_Z_KERNEL(NAME, STEP, ELEMS, BYTES)                                                              \
    DK_Z static void NAME##_2(const void *w0, const void *w1, const float *x, int64_t n, float *out) { \
        __m512 a0 = _mm512_setzero_ps(), b0 = a0, a1 = a0, b1 = a0;                                    \
        const uint8_t *p0 = w0, *p1 = w1;                                                              \
        for (int64_t i = 0; i < n; i += ELEMS, p0 += BYTES, p1 += BYTES) {                             \
            DK_MATVEC_PREFETCH(p0, BYTES);                                                             \
            DK_MATVEC_PREFETCH(p1, BYTES);                                                             \
            STEP(p0, x + i, &a0, &b0);                                                                 \
            STEP(p1, x + i, &a1, &b1);                                                                 \
        }                                                                                              \
        out[0] = dk_z_hsum(a0, b0);                                                                    \
        out[1] = dk_z_hsum(a1, b1);                                                                    \
    }
DK_Z_KERNEL(dk_z_dot_q8_0, dk_z_q8_0, 32, 34)
DK_Z_KERNEL(dk_z_dot_q5_0, dk_z_q5_0, 32, 22)
DK_Z_KERNEL2(dk_z_dot_q4_k, dk_z_q4_k, 256, 144)
DK_Z_KERNEL2(dk_z_dot_q6_k, dk_z_q6_k, 256, 210)

/* Q5_0R (q5_0r.h; needs AVX512_VBMI as well): a unit of 4 blocks, each block Q5_0's table (entry u:
 * (float)(u - 16) * d) and Q5_0's two FMAs, its 32 quants unpacked 64 at a time (q5_0r_simd.h). */
DK_Q5R static inline void dk_z_q5_0r(const uint8_t *p, const float *x, __m512 *a, __m512 *b) {
    const __m512 c_lo = _mm512_setr_ps(-16, -15, -14, -13, -12, -11, -10, -9, -8, -7, -6, -5, -4, -3, -2, -1);
    const __m512 c_hi = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i i0 = dk_q5r_index(0), i24 = dk_q5r_index(24);
    for (int c = 0; c < 2; c++) {
        __m512i v = DK_Q5R_PAIR(p, c, i0, i24);
#define DK_Z_Q5R_BLOCK(J, L)                                                                    \
    do {                                                                                        \
        __m512 d = dk_z_half(p + 2 * (2 * c + (J))), lo = _mm512_mul_ps(c_lo, d),               \
               hi = _mm512_mul_ps(c_hi, d);                                                     \
        __m512i u0 = _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(v, L)),                     \
                u1 = _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(v, (L) + 1));               \
        const float *xb = x + 64 * c + 32 * (J);                                                \
        *a = _mm512_fmadd_ps(_mm512_permutex2var_ps(lo, u0, hi), _mm512_loadu_ps(xb), *a);      \
        *b = _mm512_fmadd_ps(_mm512_permutex2var_ps(lo, u1, hi), _mm512_loadu_ps(xb + 16), *b); \
    } while (0)
        DK_Z_Q5R_BLOCK(0, 0);
        DK_Z_Q5R_BLOCK(1, 2);
#undef DK_Z_Q5R_BLOCK
    }
}
#undef DK_Z
#define DK_Z DK_Q5R
DK_Z_KERNEL(dk_z_dot_q5_0r, dk_z_q5_0r, DK_Q5_0R_UNIT, DK_Q5_0R_UNIT_BYTES)
#undef DK_Z
#define DK_Z __attribute__((target("avx512f,avx512bw")))

dk_dot2_fn dk_matvec_avx512_dot2(uint32_t type) {
    switch (type) {
    case DK_GGML_TYPE_Q4_K: return dk_z_dot_q4_k_2;
    case DK_GGML_TYPE_Q6_K: return dk_z_dot_q6_k_2;
    default: return NULL;
    }
}

dk_dot_fn dk_matvec_avx512_dot(uint32_t type) {
    switch (type) {
    case DK_GGML_TYPE_Q8_0: return dk_z_dot_q8_0;
    case DK_GGML_TYPE_Q5_0: return dk_z_dot_q5_0;
    case DK_GGML_TYPE_Q5_0R: return dk_q5_0r_native() ? dk_z_dot_q5_0r : NULL;
    case DK_GGML_TYPE_Q4_K: return dk_z_dot_q4_k;
    case DK_GGML_TYPE_Q6_K: return dk_z_dot_q6_k;
    default: return NULL;
    }
}
#else
dk_dot_fn dk_matvec_avx512_dot(uint32_t type) {
    (void)type;
    return NULL;
}
dk_dot2_fn dk_matvec_avx512_dot2(uint32_t type) {
    (void)type;
    return NULL;
}
#endif
