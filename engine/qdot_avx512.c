/* qdot_avx512.c — AVX-512 VNNI forms of qdot.h's q8 dot products (used when the CPU has AVX-512F, BW,
 * VL and VNNI; qdot.c checks at run time, the build never assumes it).
 *
 * Two activation blocks at a time, one 512-bit register holding both blocks' 32 weights as unsigned
 * bytes u (Q8_0: w + 128, by flipping the sign bit; Q5_0, Q4_K, Q6_K: their quants as they are),
 * vpdpbusd sums u_i q_i four at a time into 16 int32 lanes (8 per block), a shuffle-and-add tree folds
 * four such registers into one register of eight block sums (Q6_K: of sixteen half-block sums), and
 * the offsets come off as multiples of the activations' sums (Q8_0 128 Σ q, Q5_0 16 Σ q, Q6_K
 * 32 Σ sc_h Σ_h q): S_b exactly as qdot.h defines it. The eight scales are computed together, and
 * lane j of the f32 accumulator takes blocks b ≡ j (mod 8) in order with one fused multiply-add
 * each, the definition's acc[b mod 8]; the end is its reduction. Q8_0 and Q5_0 rows may end in a
 * group of fewer than eight blocks: half a group the same way, other counts one block per 256-bit
 * register, masked. No 32-bit sum overflows (|Σ u q| <= 32 * 255 * 127; Q6_K's scaled half sums stay
 * below 2^25).
 * Measured here (one thread, rows in L3, AMD Zen 5, full-width AVX-512), G values/s: Q8_0 ~55, Q5_0
 * ~43, Q4_K ~51, Q6_K ~49; one block per 256-bit register, as before 2026-12-03, gave 49, 37, 43 and
 * 36, and the F32-order kernels give ~26, ~21, ~13, ~13. Q8_0 and Q5_0 rows also run two at once
 * (row r0 + i with r0 + h + i, two long streams, as matvec.c pairs them): the steps of the two
 * interleave, decode of the 0.5B shape's Q8_0 file measured 1.08x (Q4_K_M 1.02x), decode-only loops
 * side by side; the pairs loop runs inside the kernel (one call per row range, not per pair: Q4_K_M
 * file decode-only loops, 8 alternating runs, medians 106 -> 113 tok/s). Q5_0R rows (q5_0r.h, with
 * AVX512_VBMI) take Q5_0's steps with their quants unpacked by one vpermb and one vpmultishiftqb per 64
 * values and their scales read as they lie: 40 -> 59 G values/s (two rows at once, in L3); decode-only
 * loops of the Q4_K_M file, 5 alternating runs, medians 106 -> 118 tok/s. */
#include "qdot_simd.h"
#include "matvec_simd.h"
#include "q5_0r_simd.h"
#include "quant.h"
#include <string.h>

#if defined(DK_MATVEC_SIMD) && (defined(__GNUC__) || defined(__clang__))
#define DK_QZ_BASE __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define DK_QZ DK_QZ_BASE

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
    /* the 16 bytes in both halves, the high half shifted right by 4: low nibbles, then high ones */
    __m256i raw = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(p + 6)));
    __m256i u = _mm256_and_si256(_mm256_srlv_epi64(raw, _mm256_setr_epi64x(0, 0, 4, 4)),
                                 _mm256_set1_epi8(0x0F));
    return _mm256_mask_add_epi8(u, (__mmask32)qh, u, _mm256_set1_epi8(16));
}
enum { DK_QZ_SHIFT_q5_0 = 4 };

/* The f16 at p + bb * j for j < nr (nr <= 8; 0 past it), widened: the eight blocks' d_w. */
DK_QZ static inline __m256 dk_qz_scales(const uint8_t *p, int bb, int nr) {
    __m128i h = _mm_setzero_si128();
    uint16_t v;
#define DK_QZ_H(J)                                  \
    do {                                            \
        if ((J) < nr) {                             \
            memcpy(&v, p + bb * (J), 2);            \
            h = _mm_insert_epi16(h, (short)v, (J)); \
        }                                           \
    } while (0)
    DK_QZ_H(0);
    DK_QZ_H(1);
    DK_QZ_H(2);
    DK_QZ_H(3);
    DK_QZ_H(4);
    DK_QZ_H(5);
    DK_QZ_H(6);
    DK_QZ_H(7);
#undef DK_QZ_H
    return _mm256_cvtph_ps(h);
}

/* lane j: the sum of t[j]'s eight lanes */
DK_QZ static inline __m256i dk_qz_fold8(const __m256i t[8]) {
    __m256i b0 = _mm256_hadd_epi32(_mm256_hadd_epi32(t[0], t[1]), _mm256_hadd_epi32(t[2], t[3]));
    __m256i b1 = _mm256_hadd_epi32(_mm256_hadd_epi32(t[4], t[5]), _mm256_hadd_epi32(t[6], t[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(b0, b1, 0x20), _mm256_permute2x128_si256(b0, b1, 0x31));
}

/* One group: blocks b0 .. b0 + nr - 1 (nr <= 8, lanes past nr untouched) into the accumulator ACC,
 * one block per 256-bit register (a row's last blocks, when they are not half a group). */
#define DK_QZ_GROUP(TYPE, BB, P, B0, NR, ACC)                                                           \
    do {                                                                                                \
        __m256i t[8];                                                                                   \
        DK_QZ_DOT(TYPE, BB, P, B0, NR, 0);                                                              \
        DK_QZ_DOT(TYPE, BB, P, B0, NR, 1);                                                              \
        DK_QZ_DOT(TYPE, BB, P, B0, NR, 2);                                                              \
        DK_QZ_DOT(TYPE, BB, P, B0, NR, 3);                                                              \
        DK_QZ_DOT(TYPE, BB, P, B0, NR, 4);                                                              \
        DK_QZ_DOT(TYPE, BB, P, B0, NR, 5);                                                              \
        DK_QZ_DOT(TYPE, BB, P, B0, NR, 6);                                                              \
        DK_QZ_DOT(TYPE, BB, P, B0, NR, 7);                                                              \
        __mmask8 k = (__mmask8)((1u << (NR)) - 1);                                                      \
        __m256i sq = _mm256_slli_epi32(_mm256_maskz_loadu_epi32(k, x->sum + (B0)), DK_QZ_SHIFT_##TYPE); \
        __m256i S = _mm256_sub_epi32(dk_qz_fold8(t), sq);                                               \
        __m256 s = _mm256_mul_ps(dk_qz_scales((P), (BB), (NR)), _mm256_maskz_loadu_ps(k, x->d + (B0))); \
        ACC = _mm256_mask3_fmadd_ps(s, _mm256_cvtepi32_ps(S), ACC, k);                                  \
    } while (0)
/* The row's last blocks after its whole groups: none, half a group (896 wide: 28 blocks, a constant
 * count, 1.05-1.08x), or another part. */
#define DK_QZ_LAST(TYPE, BB, P, B0, NB, ACC)                                         \
    do {                                                                             \
        if ((NB) - (B0) == 4) DK_QZ_ZGROUP(TYPE, BB, P, B0, 2, ACC);                 \
        else if ((B0) < (NB)) DK_QZ_GROUP(TYPE, BB, P, B0, (int)((NB) - (B0)), ACC); \
    } while (0)
/* block j of the group: its lanes of Σ u q (zero past nr) */
#define DK_QZ_DOT(TYPE, BB, P, B0, NR, J)                                                                    \
    t[J] = (J) < (NR) ? _mm256_dpbusd_epi32(_mm256_setzero_si256(), dk_qz_u_##TYPE((P) + (BB) * (J)),        \
                                            _mm256_loadu_si256((const __m256i *)(x->q + 32 * ((B0) + (J))))) \
                      : _mm256_setzero_si256()

/* Two blocks at p, their 64 unsigned weights in one 512-bit register (the block at p in bytes 0-31). */
DK_QZ static inline __m512i dk_qz_u2_q8_0(const uint8_t *p) {
    __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p + 2))),
                                   _mm256_loadu_si256((const __m256i *)(p + 36)), 1);
    return _mm512_xor_si512(w, _mm512_set1_epi8((char)0x80));
}
/* Q5_0: the two blocks' low 4 bits (each block's 16 bytes in two 128-bit lanes, the second shifted
 * right by 4, as dk_qz_u_q5_0) */
DK_QZ static inline __m512i dk_qz_lo2_q5_0(const uint8_t *p) {
    __m512i raw = _mm512_mask_broadcast_i32x4(
        _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(p + 6))), 0xFF00,
        _mm_loadu_si128((const __m128i *)(p + 28)));
    return _mm512_and_si512(_mm512_srlv_epi64(raw, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4)),
                            _mm512_set1_epi8(0x0F));
}
/* + 16 where bit e of the block's qh is set */
DK_QZ static inline __m512i dk_qz_u2_q5_0(const uint8_t *p) {
    __m512i u = dk_qz_lo2_q5_0(p);
    uint32_t h0, h1;
    memcpy(&h0, p + 2, 4);
    memcpy(&h1, p + 24, 4);
    return _mm512_mask_add_epi8(u, (__mmask64)((uint64_t)h0 | (uint64_t)h1 << 32), u, _mm512_set1_epi8(16));
}
/* The same 64 values with AVX512_VBMI: vpmultishiftqb moves bit e of each block's qh to bit 4 of
 * byte e in one step, in place of a 64-bit mask moved into a mask register and a masked byte add
 * (one thread in L3: 39.6 -> 42.3 G values/s). */
#define DK_QZV __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")))
DK_QZV static inline __m512i dk_qz_u2_q5_0v(const uint8_t *p) {
    __m512i u = dk_qz_lo2_q5_0(p);
    uint64_t h0, h1; /* qh and the 4 bytes after it (not used) */
    memcpy(&h0, p + 2, 8);
    memcpy(&h1, p + 24, 8);
    __m512i hb = _mm512_mask_set1_epi64(_mm512_set1_epi64((long long)h0), 0xF0, (long long)h1);
    /* byte e of a block: bits e - 4 .. e + 3 (mod 64) of its 64-bit lane */
    const __m512i at = _mm512_set_epi8(27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10,
                                       9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 63, 62, 61, 60, 27, 26, 25, 24, 23, 22,
                                       21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2,
                                       1, 0, 63, 62, 61, 60);
    /* 0xF8: u | (bits & 16) */
    return _mm512_ternarylogic_epi32(u, _mm512_multishift_epi64_epi8(at, hb), _mm512_set1_epi8(16), 0xF8);
}

/* The eight f16 scales of a whole group at p, widened (dk_qz_scales for nr = 8), by word permutes of the
 * group's own bytes. Q8_0: words 17 j, the first four from bytes 0-127, the others from 128-255;
 * Q5_0: words 11 j, the last two from bytes 112-175. */
DK_QZ static inline __m256 dk_qz_scales8_q8_0(const uint8_t *p) {
    const __m512i idx = _mm512_zextsi128_si512(_mm_setr_epi16(0, 17, 34, 51, 4, 21, 38, 55));
    __m512i lo = _mm512_permutex2var_epi16(_mm512_loadu_si512(p), idx, _mm512_loadu_si512(p + 64));
    __m512i hi = _mm512_permutex2var_epi16(_mm512_loadu_si512(p + 128), idx, _mm512_loadu_si512(p + 192));
    return _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_mask_blend_epi16(0xF0, lo, hi)));
}
DK_QZ static inline __m256 dk_qz_scales8_q5_0(const uint8_t *p) {
    const __m512i idx = _mm512_zextsi128_si512(_mm_setr_epi16(0, 11, 22, 33, 44, 55, 10, 21));
    __m512i lo = _mm512_permutex2var_epi16(_mm512_loadu_si512(p), idx, _mm512_loadu_si512(p + 64));
    __m512i hi = _mm512_permutexvar_epi16(idx, _mm512_loadu_si512(p + 112));
    return _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_mask_blend_epi16(0xC0, lo, hi)));
}

/* Four registers of sixteen lanes, t_i's lanes 0-7 partial sums of block 2i and 8-15 of block 2i + 1
 * (lanes 0-3 of a block its values 0-15, lanes 4-7 its values 16-31): the result's 128-bit lane 0
 * holds the sums of values 0-15 of blocks 0, 2, 4, 6, lane 1 of their values 16-31, lanes 2 and 3
 * the same of blocks 1, 3, 5, 7. */
DK_QZ static inline __m512i dk_qz_fold4_halves(__m512i t0, __m512i t1, __m512i t2, __m512i t3) {
    __m512i a = _mm512_add_epi32(_mm512_unpacklo_epi32(t0, t1), _mm512_unpackhi_epi32(t0, t1));
    __m512i b = _mm512_add_epi32(_mm512_unpacklo_epi32(t2, t3), _mm512_unpackhi_epi32(t2, t3));
    return _mm512_add_epi32(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
}
/* lane j: block j's sum */
DK_QZ static inline __m256i dk_qz_fold4(__m512i t0, __m512i t1, __m512i t2, __m512i t3) {
    __m512i c = dk_qz_fold4_halves(t0, t1, t2, t3);
    __m512i d = _mm512_add_epi32(c, _mm512_shuffle_i64x2(c, c, 0xB1));
    return _mm512_castsi512_si256(
        _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 0, 0, 0, 0, 0, 0, 0, 0), d));
}

/* NP pairs of blocks (NP = 4: a whole group; 2: half of one) from block b0, 512 bits at a time: the
 * same S_b and steps as DK_QZ_GROUP, 1.1-1.2x its speed here. */
#define DK_QZ_ZDOT(TYPE, BB, P, B0, I)                                                 \
    _mm512_dpbusd_epi32(_mm512_setzero_si512(), dk_qz_u2_##TYPE((P) + 2 * (I) * (BB)), \
                        _mm512_loadu_si512(x->q + 32 * (B0) + 64 * (I)))
#define DK_QZ_ZGROUP(TYPE, BB, P, B0, NP, ACC)                                                     \
    do {                                                                                           \
        __m512i z_ = _mm512_setzero_si512();                                                       \
        __m256i S = dk_qz_fold4(DK_QZ_ZDOT(TYPE, BB, P, B0, 0), DK_QZ_ZDOT(TYPE, BB, P, B0, 1),    \
                                (NP) > 2 ? DK_QZ_ZDOT(TYPE, BB, P, B0, 2) : z_,                    \
                                (NP) > 2 ? DK_QZ_ZDOT(TYPE, BB, P, B0, 3) : z_);                   \
        __mmask8 k = (__mmask8)((1u << 2 * (NP)) - 1);                                             \
        S = _mm256_sub_epi32(                                                                      \
            S, _mm256_slli_epi32(_mm256_maskz_loadu_epi32(k, x->sum + (B0)), DK_QZ_SHIFT_##TYPE)); \
        __m256 sc = (NP) == 4 ? dk_qz_scales8_##TYPE(P) : dk_qz_scales((P), (BB), 2 * (NP));       \
        __m256 s = _mm256_mul_ps(sc, _mm256_maskz_loadu_ps(k, x->d + (B0)));                       \
        ACC = _mm256_mask3_fmadd_ps(s, _mm256_cvtepi32_ps(S), ACC, k);                             \
    } while (0)

/* One row, and two rows at once (out[0], out[1]: the two rows' groups interleaved), around a type's
 * whole group of 8 blocks (DK_QZ_FULL_TYPE) and its row end (DK_QZ_LAST_TYPE). */
#define DK_QZ_KERNEL(TYPE, BB)                                                        \
    DK_QZ static float dk_qz_dot_##TYPE(const void *w, const dk_qrow *x, int64_t n) { \
        const uint8_t *p = w;                                                         \
        int64_t nb = n / 32, b0 = 0;                                                  \
        __m256 acc = _mm256_setzero_ps();                                             \
        for (; b0 + 8 <= nb; b0 += 8, p += 8 * (BB)) {                                \
            DK_MATVEC_PREFETCH(p, 8 * (BB));                                          \
            DK_QZ_FULL_##TYPE(p, b0, acc);                                            \
        }                                                                             \
        DK_QZ_LAST_##TYPE(p, b0, nb, acc);                                            \
        return dk_qz_hsum8(acc);                                                      \
    }
#define DK_QZ_KERNEL2(TYPE, BB)                                                                           \
    DK_QZ static void dk_qz_dot2_##TYPE(const void *w, size_t rb, int64_t h, const dk_qrow *x, int64_t n, \
                                        float *y, float beta) {                                           \
        for (int64_t i = 0; i < h; i++) {                                                                 \
            const uint8_t *p0 = (const uint8_t *)w + (size_t)i * rb, *p1 = p0 + (size_t)h * rb;           \
            int64_t nb = n / 32, b0 = 0;                                                                  \
            __m256 a0 = _mm256_setzero_ps(), a1 = a0;                                                     \
            for (; b0 + 8 <= nb; b0 += 8, p0 += 8 * (BB), p1 += 8 * (BB)) {                               \
                DK_MATVEC_PREFETCH(p0, 8 * (BB));                                                         \
                DK_MATVEC_PREFETCH(p1, 8 * (BB));                                                         \
                DK_QZ_FULL_##TYPE(p0, b0, a0);                                                            \
                DK_QZ_FULL_##TYPE(p1, b0, a1);                                                            \
            }                                                                                             \
            DK_QZ_LAST_##TYPE(p0, b0, nb, a0);                                                            \
            DK_QZ_LAST_##TYPE(p1, b0, nb, a1);                                                            \
            float s0 = dk_qz_hsum8(a0), s1 = dk_qz_hsum8(a1);                                             \
            y[i] = beta != 0.0f ? y[i] + s0 : s0;                                                         \
            y[h + i] = beta != 0.0f ? y[h + i] + s1 : s1;                                                 \
        }                                                                                                 \
    }
#define DK_QZ_FULL_q8_0(P, B0, ACC) DK_QZ_ZGROUP(q8_0, 34, P, B0, 4, ACC)
#define DK_QZ_LAST_q8_0(P, B0, NB, ACC) DK_QZ_LAST(q8_0, 34, P, B0, NB, ACC)
#define DK_QZ_FULL_q5_0(P, B0, ACC) DK_QZ_ZGROUP(q5_0, 22, P, B0, 4, ACC)
#define DK_QZ_LAST_q5_0(P, B0, NB, ACC) DK_QZ_LAST(q5_0, 22, P, B0, NB, ACC)
DK_QZ_KERNEL(q8_0, 34)
DK_QZ_KERNEL(q5_0, 22)
DK_QZ_KERNEL2(q8_0, 34)
DK_QZ_KERNEL2(q5_0, 22)
/* the VBMI form of Q5_0: its other steps are q5_0's */
enum { DK_QZ_SHIFT_q5_0v = DK_QZ_SHIFT_q5_0 };
#define dk_qz_u_q5_0v dk_qz_u_q5_0
#define dk_qz_scales8_q5_0v dk_qz_scales8_q5_0
#define DK_QZ_FULL_q5_0v(P, B0, ACC) DK_QZ_ZGROUP(q5_0v, 22, P, B0, 4, ACC)
#define DK_QZ_LAST_q5_0v(P, B0, NB, ACC) DK_QZ_LAST(q5_0v, 22, P, B0, NB, ACC)
#undef DK_QZ
#define DK_QZ DK_QZV
DK_QZ_KERNEL(q5_0v, 22)
DK_QZ_KERNEL2(q5_0v, 22)

/* Q5_0R (q5_0r.h): NU units of 4 blocks from block b0 (NU = 2: a whole group; 1: a row's last half
 * group), the steps of DK_QZ_ZGROUP with the quants unpacked by dk_q5r_unpack64 and the scales read
 * as they lie (4 per unit): S_b and the accumulation are Q5_0's, so are the bits. */
#define DK_QZ_R_DOT(P, B0, C)                                                                         \
    _mm512_dpbusd_epi32(_mm512_setzero_si512(), DK_Q5R_PAIR(P, C, dk_q5r_index(0), dk_q5r_index(24)), \
                        _mm512_loadu_si512(x->q + 32 * (B0) + 64 * (C)))
#define DK_QZ_R_GROUP(P, B0, NU, ACC)                                                                 \
    do {                                                                                              \
        __m512i z_ = _mm512_setzero_si512();                                                          \
        __m256i S = dk_qz_fold4(DK_QZ_R_DOT(P, B0, 0), DK_QZ_R_DOT(P, B0, 1),                         \
                                (NU) > 1 ? DK_QZ_R_DOT((P) + DK_Q5_0R_UNIT_BYTES, (B0) + 4, 0) : z_,  \
                                (NU) > 1 ? DK_QZ_R_DOT((P) + DK_Q5_0R_UNIT_BYTES, (B0) + 4, 1) : z_); \
        __mmask8 k = (NU) > 1 ? 0xFF : 0x0F;                                                          \
        S = _mm256_sub_epi32(                                                                         \
            S, _mm256_slli_epi32(_mm256_maskz_loadu_epi32(k, x->sum + (B0)), DK_QZ_SHIFT_q5_0));      \
        __m128i h = _mm_loadl_epi64((const __m128i *)(P));                                            \
        if ((NU) > 1)                                                                                 \
            h = _mm_unpacklo_epi64(h, _mm_loadl_epi64((const __m128i *)((P) + DK_Q5_0R_UNIT_BYTES))); \
        __m256 s = _mm256_mul_ps(_mm256_cvtph_ps(h), _mm256_maskz_loadu_ps(k, x->d + (B0)));          \
        ACC = _mm256_mask3_fmadd_ps(s, _mm256_cvtepi32_ps(S), ACC, k);                                \
    } while (0)
#define DK_QZ_FULL_q5_0r(P, B0, ACC) DK_QZ_R_GROUP(P, B0, 2, ACC)
#define DK_QZ_LAST_q5_0r(P, B0, NB, ACC)               \
    do {                                               \
        if ((B0) < (NB)) DK_QZ_R_GROUP(P, B0, 1, ACC); \
    } while (0)
DK_QZ_KERNEL(q5_0r, 22)
DK_QZ_KERNEL2(q5_0r, 22)

/* 64 quants (bytes, < 32) as q5_0r.h's 40 bytes in the low bytes of the result: value pairs into
 * 10-bit words (u0 + 32 u1), those into 20-bit dwords, those into 40-bit qwords, then vpermb packs
 * each qword's 5 bytes together. */
DK_QZ static inline __m512i dk_qz_pack40(__m512i u) {
    __m512i w = _mm512_madd_epi16(_mm512_maddubs_epi16(u, _mm512_set1_epi16(0x2001)),
                                  _mm512_set1_epi32(0x04000001));
    __m512i q = _mm512_or_si512(
        _mm512_and_si512(w, _mm512_set1_epi64(0xFFFFF)),
        _mm512_and_si512(_mm512_srli_epi64(w, 12), _mm512_set1_epi64(0xFFFFF00000ll)));
    const __m512i at = _mm512_set_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                       60, 59, 58, 57, 56, 52, 51, 50, 49, 48, 44, 43, 42, 41, 40, 36, 35, 34,
                                       33, 32, 28, 27, 26, 25, 24, 20, 19, 18, 17, 16, 12, 11, 10, 9, 8, 4, 3,
                                       2, 1, 0);
    return _mm512_permutexvar_epi8(at, q);
}

DK_QZ void dk_qdot_avx512_repack_q5_0r(const void *src, void *dst, size_t n) {
    const uint8_t *s = src;
    uint8_t *d = dst;
    for (size_t i = 0; i < n / DK_Q5_0R_UNIT; i++, s += DK_Q5_0R_UNIT_BYTES, d += DK_Q5_0R_UNIT_BYTES) {
        __m512i p0 = dk_qz_pack40(dk_qz_u2_q5_0v(s)), p1 = dk_qz_pack40(dk_qz_u2_q5_0v(s + 44));
        uint16_t sc[4];
        for (int j = 0; j < 4; j++) memcpy(sc + j, s + 22 * j, 2);
        memcpy(d, sc, sizeof sc); /* after every read of s: in place works */
        _mm512_mask_storeu_epi8(d + 8, 0xFFFFFFFFFFull, p0);
        _mm512_mask_storeu_epi8(d + 48, 0xFFFFFFFFFFull, p1);
    }
}
#undef DK_QZ
#define DK_QZ DK_QZ_BASE

dk_qdot2_fn dk_qdot_avx512_2(uint32_t type, bool vbmi) {
    if (type == DK_GGML_TYPE_Q5_0) return vbmi ? dk_qz_dot2_q5_0v : dk_qz_dot2_q5_0;
    if (type == DK_GGML_TYPE_Q5_0R) return vbmi ? dk_qz_dot2_q5_0r : NULL;
    return type == DK_GGML_TYPE_Q8_0 ? dk_qz_dot2_q8_0 : NULL;
}

/* Q4_K / Q5_K block at p: dl = d * scale and ml = dmin * min of the 8 sub-blocks (lane j: sub-block j), the
 * floats matvec_simd.h's dk_matvec_k4_scales computes, unpacked in vector registers: scales 0-3 and mins 0-3
 * are the low 6 bits of bytes 0-3 and 4-7 of the 12; scales 4-7 the low nibbles of bytes 8-11 and the top 2
 * bits of bytes 0-3, mins 4-7 the high nibbles of bytes 8-11 and the top 2 bits of bytes 4-7. */
DK_QZ static inline void dk_qz_k4_scales(const uint8_t *p, __m256 *dl, __m256 *ml) {
    __m128i v = _mm_loadu_si128((const __m128i *)p); /* d, dmin, then the 12 bytes at 4..15 */
    /* lanes 0-7 scales, 8-15 mins: the byte holding the low bits, and the one holding the top 2 (j >= 4) */
    __m128i lo = _mm_shuffle_epi8(v, _mm_setr_epi8(4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15));
    __m128i top = _mm_shuffle_epi8(v,
                                   _mm_setr_epi8(-1, -1, -1, -1, 4, 5, 6, 7, -1, -1, -1, -1, 8, 9, 10, 11));
    /* mins 4-7 take the high nibble: shift those lanes down by 4 first */
    __m128i shifted = _mm_blend_epi16(lo, _mm_srli_epi16(lo, 4), 0xC0);
    __m128i keep = _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 15, 15, 15, 15);
    __m128i u = _mm_or_si128(_mm_and_si128(shifted, keep),
                             _mm_and_si128(_mm_srli_epi16(top, 2), _mm_set1_epi8(0x30)));
    /* lanes 0-7 d, 8-15 dmin, times the 16 unpacked values */
    __m512 dm = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
                                      _mm512_castps256_ps512(_mm256_cvtph_ps(v)));
    __m512 f = _mm512_mul_ps(dm, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(u)));
    *dl = _mm512_castps512_ps256(f);
    *ml = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1));
}

/* Q4_K (144-byte blocks of 256: f16 d, dmin, 12 bytes of 6-bit scales and mins, 128 of nibbles; per
 * 64 values 32 bytes, low nibbles sub-block 2c, high nibbles 2c + 1): S = Σ u q per sub-block, then
 * t = dl S - ml Σ q in one rounding, acc += d_b t. */
DK_QZ static float dk_qz_dot_q4_k(const void *w, const dk_qrow *x, int64_t n) {
    const uint8_t *p = w;
    const __m512i m4 = _mm512_set1_epi8(0x0F), nib = _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b0 = 0; b0 < n / 32; b0 += 8, p += 144) {
        DK_MATVEC_PREFETCH(p, 144);
        const int8_t *q = x->q + 32 * b0;
        /* 32 bytes in both halves, the high one shifted by 4: sub-blocks 2c and 2c + 1 */
#define DK_QZ_Q4(C)                                                                                    \
    _mm512_dpbusd_epi32(_mm512_setzero_si512(),                                                        \
                        _mm512_and_si512(_mm512_srlv_epi64(_mm512_broadcast_i64x4(_mm256_loadu_si256(  \
                                                               (const __m256i *)(p + 16 + 32 * (C)))), \
                                                           nib),                                       \
                                         m4),                                                          \
                        _mm512_loadu_si512(q + 64 * (C)))
        __m256i S = dk_qz_fold4(DK_QZ_Q4(0), DK_QZ_Q4(1), DK_QZ_Q4(2), DK_QZ_Q4(3));
#undef DK_QZ_Q4
        __m256 dl, ml;
        dk_qz_k4_scales(p, &dl, &ml);
        __m256 sq = _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(x->sum + b0)));
        __m256 tt = _mm256_fmsub_ps(dl, _mm256_cvtepi32_ps(S), _mm256_mul_ps(ml, sq));
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(x->d + b0), tt, acc);
    }
    return dk_qz_hsum8(acc);
}

/* Q6_K (210-byte blocks of 256: ql[128], qh[64], int8 scales[16], f16 d): block j of the 256 is half
 * j / 4, k = j % 4, its value l has the low 4 bits in nibble k >> 1 of ql[64 half + 32 (k & 1) + l]
 * and the high 2 at bits 2k of qh[32 half + l]; values 0-15 take scale sc[2j], 16-31 sc[2j + 1].
 * S = sc[2j] Pa + sc[2j + 1] Pb - 32 (sc[2j] hsum[2j] + sc[2j + 1] hsum[2j + 1]). */
DK_QZ static float dk_qz_dot_q6_k(const void *w, const dk_qrow *x, int64_t n) {
    const uint8_t *p = w;
    const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x03);
    const __m512i sh01 = _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2),
                  sh23 = _mm512_setr_epi64(4, 4, 4, 4, 6, 6, 6, 6);
    const __m128i evens = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b0 = 0; b0 < n / 32; b0 += 8, p += 210) {
        DK_MATVEC_PREFETCH(p, 210);
        const int8_t *q = x->q + 32 * b0;
        __m512i t[4];
        for (int h = 0; h < 2; h++) {
            /* blocks 4h + k: k = 0, 1 the low nibbles of ql's 64 bytes, k = 2, 3 the high ones; the
             * 2 high bits of k from bits 2k of qh's 32 bytes (in both halves, shifted by 2k) */
            __m512i ql = _mm512_loadu_si512(p + 64 * h);
            __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(p + 128 + 32 * h)));
            __m512i hi01 = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi64(qh, sh01), m2), 4);
            __m512i hi23 = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi64(qh, sh23), m2), 4);
            /* 0xE4: bits of the first operand where the third (m4) is set, else of the second */
            __m512i u01 = _mm512_ternarylogic_epi32(ql, hi01, m4, 0xE4);
            __m512i u23 = _mm512_ternarylogic_epi32(_mm512_srli_epi16(ql, 4), hi23, m4, 0xE4);
            t[2 * h] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u01, _mm512_loadu_si512(q + 128 * h));
            t[2 * h + 1] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u23,
                                               _mm512_loadu_si512(q + 128 * h + 64));
        }
        /* pab: lanes 0-7 the sums of values 0-15 of blocks 0-7, lanes 8-15 of values 16-31 */
        __m512i pab = _mm512_permutexvar_epi32(
            _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15),
            dk_qz_fold4_halves(t[0], t[1], t[2], t[3]));
        __m128i sc = _mm_loadu_si128((const __m128i *)(p + 192));
        __m512i sab = _mm512_cvtepi8_epi32(
            _mm_shuffle_epi8(sc, evens)); /* lanes 0-7 sc[2j], 8-15 sc[2j + 1] */
        __m512i prod = _mm512_mullo_epi32(pab, sab);
        __m256i corr = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc),
                                         _mm256_loadu_si256((const __m256i *)(x->hsum + 2 * b0)));
        __m256i S = _mm256_sub_epi32(
            _mm256_add_epi32(_mm512_castsi512_si256(prod), _mm512_extracti64x4_epi64(prod, 1)),
            _mm256_slli_epi32(corr, 5));
        uint16_t d;
        memcpy(&d, p + 208, 2);
        __m256 s = _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(d)), _mm256_loadu_ps(x->d + b0));
        acc = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(S), acc);
    }
    return dk_qz_hsum8(acc);
}

dk_qdot_fn dk_qdot_avx512(uint32_t type, bool vbmi) {
    switch (type) {
    case DK_GGML_TYPE_Q8_0: return dk_qz_dot_q8_0;
    case DK_GGML_TYPE_Q5_0: return vbmi ? dk_qz_dot_q5_0v : dk_qz_dot_q5_0;
    case DK_GGML_TYPE_Q5_0R: return vbmi ? dk_qz_dot_q5_0r : NULL;
    case DK_GGML_TYPE_Q4_K: return dk_qz_dot_q4_k;
    case DK_GGML_TYPE_Q6_K: return dk_qz_dot_q6_k;
    default: return NULL;
    }
}
#else
dk_qdot2_fn dk_qdot_avx512_2(uint32_t type, bool vbmi) {
    (void)type, (void)vbmi;
    return NULL;
}
dk_qdot_fn dk_qdot_avx512(uint32_t type, bool vbmi) {
    (void)type, (void)vbmi;
    return NULL;
}
#endif
