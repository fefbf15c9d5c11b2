/* q5_0r_simd.h — the AVX-512 VBMI unpacking of Q5_0R (q5_0r.h) that its converters and kernels
 * share (q5_0r.c, qdot_avx512.c, matvec_avx512.c). Only in builds that target AVX2; the callers
 * check the CPU (dk_q5_0r_native) before they run it. */
#ifndef DK_Q5_0R_SIMD_H
#define DK_Q5_0R_SIMD_H
#include "q5_0r.h"
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DK_Q5_0R_SIMD 1
#define DK_Q5R __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")))

/* vpermb indices: 64-bit lane k of the result takes the 5 bytes at off + 5k (its 8 values' 40 bits;
 * the 3 bytes above them repeat the last, and the mask below drops them) */
DK_Q5R static inline __m512i dk_q5r_index(int off) {
    const __m512i base = _mm512_set_epi8(39, 39, 39, 39, 38, 37, 36, 35, 34, 34, 34, 34, 33, 32, 31, 30, 29,
                                         29, 29, 29, 28, 27, 26, 25, 24, 24, 24, 24, 23, 22, 21, 20, 19, 19,
                                         19, 19, 18, 17, 16, 15, 14, 14, 14, 14, 13, 12, 11, 10, 9, 9, 9, 9,
                                         8, 7, 6, 5, 4, 4, 4, 4, 3, 2, 1, 0);
    return _mm512_add_epi8(base, _mm512_set1_epi8((char)off));
}

/* The 64 values u (0..31) of the 40 packed bytes at byte off of raw (the 64 bytes loaded; off 0 or
 * 24, idx = dk_q5r_index(off)), one per byte in order: vpermb gives each 64-bit lane its 5 bytes,
 * vpmultishiftqb moves value v of the lane (bits 5v..5v+4) to byte v. */
DK_Q5R static inline __m512i dk_q5r_unpack64(__m512i raw, __m512i idx) {
    const __m512i at = _mm512_set1_epi64(0x231E19140F0A0500ll); /* bytes 0, 5, 10, ..., 35 */
    return _mm512_and_si512(_mm512_multishift_epi64_epi8(at, _mm512_permutexvar_epi8(idx, raw)),
                            _mm512_set1_epi8(0x1F));
}

/* Pair c (0 or 1: values 64c..64c+63) of the unit at p, as bytes. Both loads stay inside the unit's 88
 * bytes: pair 0 from its own start (p + 8), pair 1 from p + 24 (its bytes at offset 24 of the 64). */
#define DK_Q5R_PAIR(P, C, IDX0, IDX24)                                                \
    ((C) == 0 ? dk_q5r_unpack64(_mm512_loadu_si512((const uint8_t *)(P) + 8), (IDX0)) \
              : dk_q5r_unpack64(_mm512_loadu_si512((const uint8_t *)(P) + 24), (IDX24)))
#endif
#endif
