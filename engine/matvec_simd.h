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

/* Two rows at once: out[0] and out[1] get the bits dk_dot_fn gives for w0 and w1 (AVX-512 Q4_K and
 * Q6_K; NULL otherwise). */
typedef void (*dk_dot2_fn)(const void *w0, const void *w1, const float *x, int64_t n, float *out);
dk_dot2_fn dk_matvec_avx512_dot2(uint32_t type);

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#include <string.h>
#include "quant.h"
#define DK_MATVEC_SIMD 1

/* A row is read once per token and never again soon: each kernel asks for the bytes this far ahead
 * of the ones it widens now (non-temporal hint: into L1, not kept in the outer caches), one
 * prefetch per 64-byte line. The hardware prefetchers alone left decode short of the memory's pace
 * (measured here, `generate` on Qwen2-0.5B-shaped files, 2 threads, side by side: Q8_0 48 -> 55
 * tok/s, F16 33 -> 38; 4096 bytes ahead beat 512, 1024, 2048 and 8192; _MM_HINT_T0 and T1 no
 * better). A prefetch never faults, so reading ahead past a row's or the matrix's end is harmless. */
enum { DK_MATVEC_PREFETCH_AHEAD = 4096 };
#define DK_MATVEC_PREFETCH(p, bytes)                                                           \
    do {                                                                                       \
        for (int dk_pf_ = 0; dk_pf_ < (bytes); dk_pf_ += 64)                                   \
            _mm_prefetch((const char *)(p) + DK_MATVEC_PREFETCH_AHEAD + dk_pf_, _MM_HINT_NTA); \
    } while (0)

/* (a0 + a1) + (a2 + a3), then lanes 4+4, 2+2, 1+1 */
static inline float dk_matvec_hsum(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    __m256 s = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}

/* Q4_K / Q5_K block at p: the 8 sub-blocks' dl = d * scale and ml = dmin * min (lane j: sub-block j), the floats
 * quant.c's dk_k4_scales computes (same products), with the 6-bit fields unpacked 4 at a time from the
 * 12 bytes as u0, u1, u2 (little-endian words): scales 0-3 and mins 0-3 are the low 6 bits of u0's
 * and u1's bytes; scales 4-7 take the low nibbles of u2's bytes and the top 2 bits of u0's, mins 4-7
 * the high nibbles of u2's and the top 2 bits of u1's. */
static inline void dk_matvec_k4_scales(const uint8_t *p, __m256 *dl, __m256 *ml) {
    uint16_t h[2];
    uint32_t u[3];
    memcpy(h, p, 4);
    memcpy(u, p + 4, 12);
    uint32_t sc_hi = (u[2] & 0x0F0F0F0Fu) | ((u[0] >> 6) & 0x03030303u) << 4;
    uint32_t mn_hi = ((u[2] >> 4) & 0x0F0F0F0Fu) | ((u[1] >> 6) & 0x03030303u) << 4;
    __m128i v = _mm_setr_epi32((int)(u[0] & 0x3F3F3F3Fu), (int)sc_hi, (int)(u[1] & 0x3F3F3F3Fu), (int)mn_hi);
    __m256 sc = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)),
           mn = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(v, 8)));
    *dl = _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(h[0])), sc);
    *ml = _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(h[1])), mn);
}

#endif
#endif
