/* matvec_simd.h — what matvec.c and matvec_avx512.c share: the row dot's type and, in builds that
 * target AVX2/FMA/F16C, the end of matvec.h's dot order (the four 8-lane accumulators summed
 * (a0 + a1) + (a2 + a3), lanes 4+4, 2+2, 1+1). */
#ifndef DK_MATVEC_SIMD_H
#define DK_MATVEC_SIMD_H
#include <stdint.h>

/* The dot product of one row in its file type against x (n elements), widened in registers. */
typedef float (*dk_dot_fn)(const void *w, const float *x, int64_t n);

/* The AVX-512 form of the row dot of a file type (matvec_avx512.c; same bits as the AVX2 one), or
 * NULL where it has none or the build does not target AVX2. The caller checks the CPU. */
dk_dot_fn dk_matvec_avx512_dot(uint32_t type);

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#include "quant.h"
#define DK_MATVEC_SIMD 1

/* (a0 + a1) + (a2 + a3), then lanes 4+4, 2+2, 1+1 */
static inline float dk_matvec_hsum(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    __m256 s = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}

#endif
#endif
