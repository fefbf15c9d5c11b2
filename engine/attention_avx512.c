/* attention_avx512.c — the AVX-512 form of dk_attn_decode (attention.h), used where the CPU has
 * AVX-512F (attention.c checks at run time; the build never assumes it) and head_dim is a multiple of
 * 64. The same three steps as the AVX2 form, 16 lanes wide:
 *   scores  two query rows and eight keys at a time, sixteen accumulators over head_dim (each key
 *           row loaded once for both rows), folded in a shuffle-and-add tree into the sixteen
 *           scores; the lane sums are added in another order than the AVX2 form's, so the scores
 *           differ from it in the last bits (f32 rounding of a dot of head_dim terms);
 *   softmax dk_softmax_masked per row, as there;
 *   values  two rows at a time, head_dim in 64-lane slices, each value row loaded once for both and
 *           added key after key: every output lane sees the same fused multiply-adds in the same
 *           order as the AVX2 form.
 * Measured: attention.h. The loops over lanes and keys are unrolled (GCC kept the sixteen
 * accumulators on the stack without it, and the form ran at 0.7x the AVX2 one).
 *
 * Below it, one key part of dk_attn_decode_bf16 (attention.h) on the bf16 copy of the cache
 * (AVX512_BF16, head_dim a multiple of 32): the same scores with vdpbf16ps on bf16 pairs, the
 * softmax left unnormalized (max and sum to the caller's merge), values eight rows at a time over
 * 32-lane slices of the widened bf16 rows. */
#include "attention_simd.h"
#include "ops.h"
#include "quant.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DK_AZ __attribute__((target("avx512f")))

/* Sixteen accumulators -> one register: lane i the sum of a[i]'s sixteen lanes. */
DK_AZ static inline __m512 dk_az_fold16(const __m512 a[16]) {
    __m512 t[8], w[4];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) /* 128-bit lane l: [A0+A2, B0+B2, A1+A3, B1+B3] of its four */
        t[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                             _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
#pragma GCC unroll 4
    for (int m = 0; m < 4; m++) { /* 128-bit lane l: a[4m .. 4m+3]'s sums over that lane */
        __m512d x = _mm512_castps_pd(t[2 * m]), y = _mm512_castps_pd(t[2 * m + 1]);
        w[m] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
    /* lanes (0, 1) and (2, 3) of each w added, then again: 128-bit lane m holds a[4m .. 4m+3] */
    __m512 x = _mm512_add_ps(_mm512_shuffle_f32x4(w[0], w[1], 0x88), _mm512_shuffle_f32x4(w[0], w[1], 0xDD));
    __m512 y = _mm512_add_ps(_mm512_shuffle_f32x4(w[2], w[3], 0x88), _mm512_shuffle_f32x4(w[2], w[3], 0xDD));
    return _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x88), _mm512_shuffle_f32x4(x, y, 0xDD));
}

/* The scores of keys j0 .. j0 + 7 for rows r and r1 from their sixteen accumulators (a[j]: row r and
 * key j0 + j, a[8 + j]: row r1), times scale, into s (rows of n); r1 == r stores one row. */
DK_AZ static inline void dk_az_store_scores(const __m512 a[16], int r, int r1, int j0, int n, float scale,
                                            float *s) {
    __m512 f = _mm512_mul_ps(dk_az_fold16(a), _mm512_set1_ps(scale)); /* row r's 8, then row r1's */
    _mm256_storeu_ps(s + (size_t)r * n + j0, _mm512_castps512_ps256(f));
    if (r1 != r)
        _mm256_storeu_ps(s + (size_t)r1 * n + j0,
                         _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1)));
}

/* keys per block of the values pass (their rows stay in L1 while the rows take them); the
   prefetch distances, in keys, of the next key and value rows a decode step streams from the
   cache: at 4K cached tokens they took 0.5B-shape decode 71 -> 80 tok/s, none at 512 */
enum { DK_AZ_VBLK = 64, DK_AZ_PF_K = 16, DK_AZ_PF_V = DK_AZ_VBLK };

/* scores of keys j0 .. j0 + 7 for rows r and r1 (r1 == r when g is odd: its half is not stored) */
DK_AZ static void dk_az_scores(const float *q, int r, int r1, int hd, const float *k, int kvd, int j0, int n,
                               float scale, float *s) {
    const float *k0 = k + (size_t)j0 * kvd, *q0 = q + (size_t)r * hd, *q1 = q + (size_t)r1 * hd;
    __m512 a[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) a[i] = _mm512_setzero_ps();
    if (r == 0 && j0 + DK_AZ_PF_K + 8 <= n) /* a later block's key rows, once per block */
        for (int j = 0; j < 8; j++)
            for (int x = 0; x < hd; x += 16)
                _mm_prefetch((const char *)(k0 + (size_t)(j + DK_AZ_PF_K) * kvd + x), _MM_HINT_T0);
    for (int x = 0; x < hd; x += 16) {
        __m512 u = _mm512_loadu_ps(q0 + x), w = _mm512_loadu_ps(q1 + x);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m512 c = _mm512_loadu_ps(k0 + (size_t)j * kvd + x);
            a[j] = _mm512_fmadd_ps(u, c, a[j]);
            a[8 + j] = _mm512_fmadd_ps(w, c, a[8 + j]);
        }
    }
    dk_az_store_scores(a, r, r1, j0, n, scale, s);
}

/* o rows r and r1 (zeroed by the caller), head_dim slice [x0, x0 + 64), += p · v over keys [j0, j1) */
DK_AZ static void dk_az_values(const float *s, int r, int r1, int n, const float *v, int kvd, int j0, int j1,
                               int x0, float *o, int hd) {
    const float *p0 = s + (size_t)r * n, *p1 = s + (size_t)r1 * n;
    float *o0 = o + (size_t)r * hd + x0, *o1 = o + (size_t)r1 * hd + x0;
    __m512 a[8];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        a[i] = _mm512_loadu_ps(o0 + 16 * i);
        a[4 + i] = _mm512_loadu_ps(o1 + 16 * i);
    }
    for (int j = j0; j < j1; j++) {
        const float *vr = v + (size_t)j * kvd + x0;
        if (r == 0 && j + DK_AZ_PF_V < n)
            for (int i = 0; i < 4; i++)
                _mm_prefetch((const char *)(vr + (size_t)DK_AZ_PF_V * kvd + 16 * i), _MM_HINT_T0);
        __m512 b0 = _mm512_set1_ps(p0[j]), b1 = _mm512_set1_ps(p1[j]);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            __m512 c = _mm512_loadu_ps(vr + 16 * i);
            a[i] = _mm512_fmadd_ps(b0, c, a[i]);
            a[4 + i] = _mm512_fmadd_ps(b1, c, a[4 + i]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) _mm512_storeu_ps(o0 + 16 * i, a[i]);
    if (r1 != r)
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) _mm512_storeu_ps(o1 + 16 * i, a[4 + i]);
}

bool dk_attn_decode_avx512(const float *q, int g, int hd, const float *k, const float *v, int kvd, int n,
                           float scale, float *s, float *o) {
    if (hd % 64 != 0) return false;
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int r = 0; r < g; r += 2) dk_az_scores(q, r, r + 1 < g ? r + 1 : r, hd, k, kvd, j, n, scale, s);
    dk_attn_decode_softmax(q, g, hd, k, kvd, j, n, scale, s, o); /* the last n % 8 keys, softmax */
    for (int j0 = 0; j0 < n; j0 += DK_AZ_VBLK) {
        int j1 = j0 + DK_AZ_VBLK < n ? j0 + DK_AZ_VBLK : n;
        for (int r = 0; r < g; r += 2)
            for (int x = 0; x < hd; x += 64)
                dk_az_values(s, r, r + 1 < g ? r + 1 : r, n, v, kvd, j0, j1, x, o, hd);
    }
    return true;
}

/* ---- the bf16 copy of the cache (dk_attn_decode_bf16, attention.h) ---- */
#define DK_AZB __attribute__((target("avx512f,avx512bw,avx512bf16")))

/* prefetch distance, in keys, of both passes' rows: 24 layers of two KV heads on two threads, 4096
 * keys, alone: 2.9 ms a step without, 2.0 with 32..128 (64 taken), 2.2 at 256 */
enum { DK_AZB_PF = 64 };

/* scores of keys j0 .. j0 + 7 for rows r and r1: the two q rows rounded to bf16 here (vcvtne2ps2bf16,
 * to nearest even), each pair of bf16 products added into f32 by vdpbf16ps */
DK_AZB static void dk_azb_scores(const float *q, int r, int r1, int hd, const uint16_t *k, int j0, int n,
                                 float scale, float *s) {
    const uint16_t *k0 = k + (size_t)j0 * hd;
    const float *q0 = q + (size_t)r * hd, *q1 = q + (size_t)r1 * hd;
    __m512 a[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) a[i] = _mm512_setzero_ps();
    if (r == 0 && j0 + DK_AZB_PF + 8 <= n) /* a later block's eight rows, once per block */
        for (int x = 0; x < 8 * hd; x += 32)
            _mm_prefetch((const char *)(k0 + (size_t)DK_AZB_PF * hd + x), _MM_HINT_T0);
    for (int x = 0; x < hd; x += 32) {
        __m512bh u = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(q0 + x + 16), _mm512_loadu_ps(q0 + x)),
                 w = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(q1 + x + 16), _mm512_loadu_ps(q1 + x));
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m512bh c = (__m512bh)_mm512_loadu_si512(k0 + (size_t)j * hd + x);
            a[j] = _mm512_dpbf16_ps(a[j], u, c);
            a[8 + j] = _mm512_dpbf16_ps(a[8 + j], w, c);
        }
    }
    dk_az_store_scores(a, r, r1, j0, n, scale, s);
}

/* 16 bf16 values as f32 (exact: the bits moved up) */
DK_AZB static inline __m512 dk_azb_widen(const uint16_t *v) {
    __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)v));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}

/* o rows r0 .. r0 + 7 (those below g; zeroed by the caller), head_dim slice [x0, x0 + 32), += p · v
 * over keys [j0, j1): each value row widened once for the eight rows, f32 multiply-adds key after key */
DK_AZB static void dk_azb_values(const float *s, int r0, int g, int n, const uint16_t *v, int hd, int j0,
                                 int j1, int x0, float *o) {
    const float *p[8];
    float *orow[8];
    __m512 a[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) { /* rows past g repeat row g - 1 and are not stored */
        int r = r0 + i < g ? r0 + i : g - 1;
        p[i] = s + (size_t)r * n;
        orow[i] = o + (size_t)r * hd + x0;
        a[2 * i] = _mm512_loadu_ps(orow[i]);
        a[2 * i + 1] = _mm512_loadu_ps(orow[i] + 16);
    }
    for (int j = j0; j < j1; j++) {
        const uint16_t *vr = v + (size_t)j * hd + x0;
        if (r0 == 0 && x0 == 0 && j + DK_AZB_PF < n) /* a later row, once per pass */
            for (int x = 0; x < hd; x += 32)
                _mm_prefetch((const char *)(vr + (size_t)DK_AZB_PF * hd + x), _MM_HINT_T0);
        __m512 c0 = dk_azb_widen(vr), c1 = dk_azb_widen(vr + 16);
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            __m512 b = _mm512_set1_ps(p[i][j]);
            a[2 * i] = _mm512_fmadd_ps(b, c0, a[2 * i]);
            a[2 * i + 1] = _mm512_fmadd_ps(b, c1, a[2 * i + 1]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        if (r0 + i < g) {
            _mm512_storeu_ps(orow[i], a[2 * i]);
            _mm512_storeu_ps(orow[i] + 16, a[2 * i + 1]);
        }
}

bool dk_attn_decode_bf16_avx512(const float *q, int g, int hd, const uint16_t *k, const uint16_t *v, int n,
                                float scale, float *s, float *o, float *ml) {
    if (hd % 32 != 0) return false;
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int r = 0; r < g; r += 2) dk_azb_scores(q, r, r + 1 < g ? r + 1 : r, hd, k, j, n, scale, s);
    for (; j < n; j++) /* the last n % 8 keys: the same bf16 products, summed in plain C */
        for (int r = 0; r < g; r++) {
            float a = 0.0f;
            for (int x = 0; x < hd; x++)
                a += dk_bf16_to_f32(dk_f32_to_bf16(q[(size_t)r * hd + x])) *
                     dk_bf16_to_f32(k[(size_t)j * hd + x]);
            s[(size_t)r * n + j] = a * scale;
        }
    for (int r = 0; r < g; r++) { /* exp(score - the row's max), unnormalized; the max and the sum to ml */
        ml[2 * r] = -INFINITY;
        ml[2 * r + 1] = 0.0f;
        dk_softmax_online(s + (size_t)r * n, n, n, &ml[2 * r], &ml[2 * r + 1], NULL);
    }
    memset(o, 0, (size_t)g * hd * sizeof *o);
    for (int j0 = 0; j0 < n; j0 += DK_AZ_VBLK) {
        int j1 = j0 + DK_AZ_VBLK < n ? j0 + DK_AZ_VBLK : n;
        for (int r0 = 0; r0 < g; r0 += 8)
            for (int x = 0; x < hd; x += 32) dk_azb_values(s, r0, g, n, v, hd, j0, j1, x, o);
    }
    return true;
}
#else
bool dk_attn_decode_avx512(const float *q, int g, int hd, const float *k, const float *v, int kvd, int n,
                           float scale, float *s, float *o) {
    (void)q, (void)g, (void)hd, (void)k, (void)v, (void)kvd, (void)n, (void)scale, (void)s, (void)o;
    return false;
}
bool dk_attn_decode_bf16_avx512(const float *q, int g, int hd, const uint16_t *k, const uint16_t *v, int n,
                                float scale, float *s, float *o, float *ml) {
    (void)q, (void)g, (void)hd, (void)k, (void)v, (void)n, (void)scale, (void)s, (void)o, (void)ml;
    return false;
}
#endif
