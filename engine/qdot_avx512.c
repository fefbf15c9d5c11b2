/* qdot_avx512.c — AVX-512 VNNI forms of qdot.h's q8 dot products (used when the CPU has AVX-512F, BW,
 * VL and VNNI; qdot.c checks at run time, the build never assumes it).
 *
 * Eight activation blocks at a time, one 256-bit register per block: the block's 32 weights as
 * unsigned bytes u (Q8_0: w + 128, by flipping the sign bit; Q5_0: its 5-bit quants as they are),
 * vpdpbusd sums u_i q_i four at a time into 8 int32 lanes, a horizontal add folds the eight blocks'
 * lanes into one register of eight block sums, and the offset comes off as a multiple of the
 * block's Σ q (128 Σ q, 16 Σ q): S_b exactly as qdot.c defines it. The eight scales are the
 * eight f16 d_w widened together times the eight d_b; lane j of the f32 accumulator then takes
 * blocks b ≡ j (mod 8) in order with one fused multiply-add each, the definition's acc[b mod 8], and
 * the end is its reduction. A last group of fewer than eight blocks runs the same steps masked.
 * No 32-bit sum can overflow: |Σ u q| <= 32 * 255 * 127. */
#include "qdot_simd.h"
#include "matvec_simd.h"
#include "quant.h"
#include <string.h>

#if defined(DK_MATVEC_SIMD) && (defined(__GNUC__) || defined(__clang__))
#define DK_QZ __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

/* lane j: the sum of t[j]'s eight lanes */
DK_QZ static inline __m256i dk_qz_fold8(const __m256i t[8]) {
    __m256i a01 = _mm256_hadd_epi32(t[0], t[1]), a23 = _mm256_hadd_epi32(t[2], t[3]);
    __m256i a45 = _mm256_hadd_epi32(t[4], t[5]), a67 = _mm256_hadd_epi32(t[6], t[7]);
    __m256i b0 = _mm256_hadd_epi32(a01, a23), b1 = _mm256_hadd_epi32(a45, a67);
    return _mm256_add_epi32(_mm256_permute2x128_si256(b0, b1, 0x20), _mm256_permute2x128_si256(b0, b1, 0x31));
}

/* ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)) */
DK_QZ static inline float dk_qz_hsum8(__m256 a) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}

/* A block's 32 weights as unsigned bytes, and the offset (a power of two: its shift) they carry. */
DK_QZ static inline __m256i dk_qz_u_q8_0(const uint8_t *p) {
    return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(p + 2)), _mm256_set1_epi8((char)0x80));
}
enum { DK_QZ_SHIFT_q8_0 = 7 };

/* Q5_0: element j < 16 the low nibble of byte j, j + 16 its high nibble; + 16 where bit j of qh is set */
DK_QZ static inline __m256i dk_qz_u_q5_0(const uint8_t *p) {
    uint32_t qh;
    memcpy(&qh, p + 2, 4);
    __m128i raw = _mm_loadu_si128((const __m128i *)(p + 6)), m4 = _mm_set1_epi8(0x0F);
    __m256i u = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), _mm_and_si128(raw, m4));
    return _mm256_mask_add_epi8(u, (__mmask32)qh, u, _mm256_set1_epi8(16));
}
enum { DK_QZ_SHIFT_q5_0 = 4 };

/* The f16 at p + bb * j for j < nr (nr <= 8; 0 past it), widened: the eight blocks' d_w. */
DK_QZ static inline __m256 dk_qz_scales(const uint8_t *p, int bb, int nr) {
    __m128i h = _mm_setzero_si128();
    uint16_t v;
#define DK_QZ_H(J)                              \
    if ((J) < nr) {                             \
        memcpy(&v, p + bb * (J), 2);            \
        h = _mm_insert_epi16(h, (short)v, (J)); \
    }
    DK_QZ_H(0)
    DK_QZ_H(1) DK_QZ_H(2) DK_QZ_H(3) DK_QZ_H(4) DK_QZ_H(5) DK_QZ_H(6) DK_QZ_H(7)
#undef DK_QZ_H
        return _mm256_cvtph_ps(h);
}

/* One group: blocks b0 .. b0 + nr - 1 (nr <= 8, lanes past nr untouched) into acc. */
#define DK_QZ_GROUP(TYPE, BB, P, B0, NR)                                                                     \
    do {                                                                                                     \
        __m256i t[8];                                                                                        \
        DK_QZ_DOT(TYPE, BB, P, B0, NR, 0)                                                                    \
        DK_QZ_DOT(TYPE, BB, P, B0, NR, 1) DK_QZ_DOT(TYPE, BB, P, B0, NR, 2)                                  \
            DK_QZ_DOT(TYPE, BB, P, B0, NR, 3) DK_QZ_DOT(TYPE, BB, P, B0, NR, 4)                              \
                DK_QZ_DOT(TYPE, BB, P, B0, NR, 5) DK_QZ_DOT(TYPE, BB, P, B0, NR, 6)                          \
                    DK_QZ_DOT(TYPE, BB, P, B0, NR, 7) __mmask8 k = (__mmask8)((1u << (NR)) - 1);             \
        __m256i S = _mm256_sub_epi32(                                                                        \
            dk_qz_fold8(t), _mm256_slli_epi32(_mm256_maskz_loadu_epi32(k, sum + (B0)), DK_QZ_SHIFT_##TYPE)); \
        __m256 s = _mm256_mul_ps(dk_qz_scales((P), (BB), (NR)), _mm256_maskz_loadu_ps(k, d + (B0)));         \
        acc = _mm256_mask3_fmadd_ps(s, _mm256_cvtepi32_ps(S), acc, k);                                       \
    } while (0)
/* block j of the group: its lanes of Σ u q (zero past nr) */
#define DK_QZ_DOT(TYPE, BB, P, B0, NR, J)                                                                 \
    t[J] = (J) < (NR) ? _mm256_dpbusd_epi32(_mm256_setzero_si256(), dk_qz_u_##TYPE((P) + (BB) * (J)),     \
                                            _mm256_loadu_si256((const __m256i *)(q + 32 * ((B0) + (J))))) \
                      : _mm256_setzero_si256();

#define DK_QZ_KERNEL(TYPE, BB)                                                                              \
    DK_QZ static float dk_qz_dot_##TYPE(const void *w, const int8_t *q, const float *d, const int32_t *sum, \
                                        int64_t n) {                                                        \
        const uint8_t *p = w;                                                                               \
        int64_t nb = n / 32, b0 = 0;                                                                        \
        __m256 acc = _mm256_setzero_ps();                                                                   \
        for (; b0 + 8 <= nb; b0 += 8, p += 8 * (BB)) {                                                      \
            DK_MATVEC_PREFETCH(p, 8 * (BB));                                                                \
            DK_QZ_GROUP(TYPE, BB, p, b0, 8);                                                                \
        }                                                                                                   \
        if (b0 < nb) DK_QZ_GROUP(TYPE, BB, p, b0, (int)(nb - b0));                                          \
        return dk_qz_hsum8(acc);                                                                            \
    }
DK_QZ_KERNEL(q8_0, 34)
DK_QZ_KERNEL(q5_0, 22)

dk_qdot_fn dk_qdot_avx512(uint32_t type) {
    switch (type) {
    case DK_GGML_TYPE_Q8_0: return dk_qz_dot_q8_0;
    case DK_GGML_TYPE_Q5_0: return dk_qz_dot_q5_0;
    default: return NULL;
    }
}
#else
dk_qdot_fn dk_qdot_avx512(uint32_t type) {
    (void)type;
    return NULL;
}
#endif
