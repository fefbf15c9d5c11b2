/* quant.c — element type table, conversion to f32 (dequantisation) and from f32.
 *
 * One table row per GGML type: block size, bytes per block, the dequant-row function (NULL:
 * known but not supported) and the quantiser (random-weight models; NULL when dashkit has none).
 * The dequantisers compute each element with the same float operations in the same order as
 * ggml's reference to_float (ggml-quants.c), so the results are bit-identical (tests/test_quant.c
 * checks every supported type against ggml's own output). Block layouts (little-endian, packed):
 *   Q4_0  (32, 18):  f16 d | u8 qs[16]                 x = (nib - 8) * d; low nibbles = x[0..15]
 *   Q4_1  (32, 20):  f16 d, f16 m | u8 qs[16]          x = nib * d + m
 *   Q5_0  (32, 22):  f16 d | u32 qh | u8 qs[16]        5th bit of x[j] = bit j of qh; x = (q - 16) * d
 *   Q5_1  (32, 24):  f16 d, f16 m | u32 qh | u8 qs[16] x = q * d + m
 *   Q8_0  (32, 34):  f16 d | i8 qs[32]                 x = q * d
 *   Q2_K  (256, 84): u8 scales[16] (lo 4 bits scale, hi 4 bits min) | u8 qs[64] | f16 d, dmin
 *   Q3_K  (256,110): u8 hmask[32] | u8 qs[64] | 12 bytes of 16 6-bit scales | f16 d
 *   Q4_K  (256,144): f16 d, dmin | 12 bytes of 8 6-bit scales + 8 6-bit mins | u8 qs[128]
 *   Q5_K  (256,176): as Q4_K, then u8 qh[32] before qs[128]
 *   Q6_K  (256,210): u8 ql[128] | u8 qh[64] | i8 scales[16] | f16 d
 *   IQ4_NL(32, 18):  f16 d | u8 qs[16]                 x = d * kvalues[nib] (non-linear grid)
 *   IQ4_XS(256,136): f16 d | u16 scales_h | u8 scales_l[4] | u8 qs[128]; 8 sub-blocks of 32 */
#include "quant.h"
#include "q5_0r.h"
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#if defined(__AVX2__) && defined(__F16C__)
#include <immintrin.h>
#endif

/* ---- scalar conversions ---- */

float dk_fp16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) bits = sign;
        else { /* subnormal: value = mant * 2^-24 */ float f = ldexpf((float)mant, -24);
            memcpy(&bits, &f, 4);
            bits |= sign;
        }
    } else if (exp == 31) bits = sign | 0x7f800000u | (mant << 13);
    else bits = sign | ((exp + 112) << 23) | (mant << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float dk_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t dk_f32_to_fp16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t mant = x & 0x7fffff;
    if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        mant |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = sign | ((uint32_t)exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)h;
}

#if defined(__AVX2__) && defined(__F16C__)
#define DK_QUANT_SIMD 1
#endif

/* dst[i..n) from the 16-bit floats at s: bfloat16 when bf16, else IEEE half (the scalar path, and the
 * SIMD loops' remainder) */
static void dk_dequant_half_rest(const uint8_t *s, float *dst, size_t i, size_t n, bool bf16) {
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = bf16 ? dk_bf16_to_f32(h) : dk_fp16_to_f32(h);
    }
}

/* Vector paths: F16 via vcvtph2ps (exact for every finite, infinite and subnormal half), BF16
 * by widening to 32 bits and shifting left 16 (the definition), Q8_0 by int8 -> int32 -> f32
 * (exact) and one multiply by the block scale (the scalar's single rounding). */
static void dk_dequant_f16(const uint8_t *s, float *dst, size_t n) {
    size_t i = 0;
#ifdef DK_QUANT_SIMD
    for (; i + 16 <= n; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(s + 2 * i));
        __m128i b = _mm_loadu_si128((const __m128i *)(s + 2 * i + 16));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(a));
        _mm256_storeu_ps(dst + i + 8, _mm256_cvtph_ps(b));
    }
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + 2 * i))));
#endif
    dk_dequant_half_rest(s, dst, i, n, false);
}

static void dk_dequant_bf16(const uint8_t *s, float *dst, size_t n) {
    size_t i = 0;
#ifdef DK_QUANT_SIMD
    for (; i + 16 <= n; i += 16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)(s + 2 * i));
        __m256i lo = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(h)), 16);
        __m256i hi = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_extracti128_si256(h, 1)), 16);
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(lo));
        _mm256_storeu_ps(dst + i + 8, _mm256_castsi256_ps(hi));
    }
#endif
    dk_dequant_half_rest(s, dst, i, n, true);
}

/* block: f16 scale d, 32 x int8 q; value = d * q */
static void dk_dequant_q8_0(const uint8_t *s, float *dst, size_t n) {
    for (size_t b = 0; b < n / 32; b++) {
        const uint8_t *blk = s + 34 * b;
        uint16_t h;
        memcpy(&h, blk, 2);
        float d = dk_fp16_to_f32(h);
        float *o = dst + 32 * b;
#ifdef DK_QUANT_SIMD
        __m256 vd = _mm256_set1_ps(d);
        __m256i q = _mm256_loadu_si256((const __m256i *)(blk + 2));
        __m128i q0 = _mm256_castsi256_si128(q), q1 = _mm256_extracti128_si256(q, 1);
        _mm256_storeu_ps(o, _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q0))));
        _mm256_storeu_ps(o + 8,
                         _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q0, 8)))));
        _mm256_storeu_ps(o + 16, _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q1))));
        _mm256_storeu_ps(o + 24,
                         _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q1, 8)))));
#else
        for (int j = 0; j < 32; j++) o[j] = d * (float)(int8_t)blk[2 + j];
#endif
    }
}

/* ---- quantised types: each takes n elements (whole blocks) ---- */

static float dk_half_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return dk_fp16_to_f32(h);
}

static void dk_dequant_q4_0(const uint8_t *s, float *dst, size_t n) {
    for (size_t b = 0; b < n / 32; b++, s += 18, dst += 32) {
        float d = dk_half_at(s);
        const uint8_t *q = s + 2;
        for (int j = 0; j < 16; j++) {
            dst[j] = (float)((q[j] & 0xF) - 8) * d;
            dst[j + 16] = (float)((q[j] >> 4) - 8) * d;
        }
    }
}

static void dk_dequant_q4_1(const uint8_t *s, float *dst, size_t n) {
    for (size_t b = 0; b < n / 32; b++, s += 20, dst += 32) {
        float d = dk_half_at(s), m = dk_half_at(s + 2);
        const uint8_t *q = s + 4;
        for (int j = 0; j < 16; j++) {
            dst[j] = (float)(q[j] & 0xF) * d + m;
            dst[j + 16] = (float)(q[j] >> 4) * d + m;
        }
    }
}

/* Q5_0 / Q5_1: the 5th bit of element j (0..31) is bit j of qh */
void dk_q5_quants(const uint8_t *p, uint8_t u[32]) {
    uint32_t qh;
    memcpy(&qh, p, 4);
    const uint8_t *q = p + 4;
    for (int j = 0; j < 16; j++) {
        u[j] = (uint8_t)((q[j] & 0xF) | (((qh >> j) & 1) << 4));
        u[j + 16] = (uint8_t)((q[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
    }
}

static void dk_dequant_q5_0(const uint8_t *s, float *dst, size_t n) {
    for (size_t b = 0; b < n / 32; b++, s += 22, dst += 32) {
        float d = dk_half_at(s);
        uint8_t u[32];
        dk_q5_quants(s + 2, u);
        for (int j = 0; j < 32; j++) dst[j] = (float)((int)u[j] - 16) * d;
    }
}

static void dk_dequant_q5_1(const uint8_t *s, float *dst, size_t n) {
    for (size_t b = 0; b < n / 32; b++, s += 24, dst += 32) {
        float d = dk_half_at(s), m = dk_half_at(s + 2);
        uint8_t u[32];
        dk_q5_quants(s + 4, u);
        for (int j = 0; j < 32; j++) dst[j] = (float)u[j] * d + m;
    }
}

/* Q2_K: 16 sub-blocks of 16. Each half (128 elements) uses 32 bytes of qs four times at bit
 * offsets 0, 2, 4, 6; per offset, bytes 0..15 then 16..31 are two sub-blocks. */
static void dk_dequant_q2_k(const uint8_t *s, float *dst, size_t n) {
    for (size_t b = 0; b < n / 256; b++, s += 84) {
        const uint8_t *sc = s, *q = s + 16;
        float d = dk_half_at(s + 80), dmin = dk_half_at(s + 82);
        for (int half = 0, is = 0; half < 2; half++, q += 32)
            for (int shift = 0; shift < 8; shift += 2)
                for (int part = 0; part < 2; part++, is++, dst += 16) {
                    float dl = d * (float)(sc[is] & 0xF), ml = dmin * (float)(sc[is] >> 4);
                    for (int l = 0; l < 16; l++) dst[l] = dl * (float)((q[16 * part + l] >> shift) & 3) - ml;
                }
    }
}

/* Q3_K: 16 6-bit scales: low 4 bits in bytes 0..7 (scales 0..7 low nibble, 8..15 high nibble),
 * high 2 bits of scale i at bits 2*(i/4) of byte 8 + i%4; value (scale - 32). The third bit of
 * a quant is hmask; a clear bit subtracts 4. */
static void dk_dequant_q3_k(const uint8_t *s, float *dst, size_t n) {
    for (size_t b = 0; b < n / 256; b++, s += 110) {
        const uint8_t *hm = s, *q = s + 32, *sb = s + 96;
        float d = dk_half_at(s + 108);
        int sc[16];
        for (int i = 0; i < 16; i++) {
            int lo = i < 8 ? sb[i] & 0xF : sb[i - 8] >> 4, hi = (sb[8 + i % 4] >> (2 * (i / 4))) & 3;
            sc[i] = (lo | hi << 4) - 32;
        }
        int is = 0, bit = 0;
        for (int half = 0; half < 2; half++, q += 32)
            for (int shift = 0; shift < 8; shift += 2, bit++)
                for (int part = 0; part < 2; part++, is++, dst += 16) {
                    float dl = d * (float)sc[is];
                    const uint8_t *qp = q + 16 * part, *hp = hm + 16 * part;
                    for (int l = 0; l < 16; l++)
                        dst[l] = dl * (float)((int)((qp[l] >> shift) & 3) - ((hp[l] >> bit) & 1 ? 0 : 4));
                }
    }
}

/* Q4_K / Q5_K: 8 sub-blocks of 32, 6-bit scale and min each, packed in 12 bytes: j < 4 in the
 * low 6 bits of bytes j (scale) and j+4 (min); j >= 4: low 4 bits from byte j+4 (lo nibble scale,
 * hi nibble min), high 2 bits from the top of bytes j-4 (scale) and j (min). */
void dk_k4_scales(const uint8_t *p, float d, float dmin, float *dl, float *ml) {
    for (int j = 0; j < 8; j++) {
        int sc = j < 4 ? p[j] & 63 : (p[j + 4] & 0xF) | (p[j - 4] >> 6) << 4;
        int mn = j < 4 ? p[j + 4] & 63 : (p[j + 4] >> 4) | (p[j] >> 6) << 4;
        dl[j] = d * (float)sc;
        ml[j] = dmin * (float)mn;
    }
}

/* each 64 elements: 32 bytes, low nibbles = sub-block 2c, high nibbles = sub-block 2c+1 */
static void dk_dequant_q4_k(const uint8_t *s, float *dst, size_t n) {
    for (size_t b = 0; b < n / 256; b++, s += 144) {
        float dl[8], ml[8];
        dk_k4_scales(s + 4, dk_half_at(s), dk_half_at(s + 2), dl, ml);
        const uint8_t *q = s + 16;
        for (int c = 0; c < 4; c++, q += 32, dst += 64) {
            float d1 = dl[2 * c], m1 = ml[2 * c], d2 = dl[2 * c + 1], m2 = ml[2 * c + 1];
            for (int l = 0; l < 32; l++) dst[l] = d1 * (float)(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) dst[32 + l] = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

/* as Q4_K; the 5th bit of sub-block k's element l is bit k of qh[l] */
static void dk_dequant_q5_k(const uint8_t *s, float *dst, size_t n) {
    for (size_t b = 0; b < n / 256; b++, s += 176) {
        float dl[8], ml[8];
        dk_k4_scales(s + 4, dk_half_at(s), dk_half_at(s + 2), dl, ml);
        const uint8_t *qh = s + 16, *q = s + 48;
        for (int c = 0; c < 4; c++, q += 32, dst += 64) {
            float d1 = dl[2 * c], m1 = ml[2 * c], d2 = dl[2 * c + 1], m2 = ml[2 * c + 1];
            int b1 = 2 * c, b2 = 2 * c + 1;
            for (int l = 0; l < 32; l++) dst[l] = d1 * (float)((q[l] & 0xF) | ((qh[l] >> b1) & 1) << 4) - m1;
            for (int l = 0; l < 32; l++)
                dst[32 + l] = d2 * (float)((q[l] >> 4) | ((qh[l] >> b2) & 1) << 4) - m2;
        }
    }
}

/* Q6_K: per half (128 elements): ql 64 bytes, qh 32 bytes, 8 scales. Element l + 32 k
 * (l = 0..31, k = 0..3) has its low 4 bits in ql[l] lo (k 0), ql[l+32] lo (k 1), ql[l] hi (k 2),
 * ql[l+32] hi (k 3), its high 2 bits at bits 2k of qh[l], scale sc[l/16 + 2k];
 * value (d * scale) * (q - 32). */
static void dk_dequant_q6_k(const uint8_t *s, float *dst, size_t n) {
    for (size_t b = 0; b < n / 256; b++, s += 210) {
        const int8_t *sc = (const int8_t *)(s + 192);
        float d = dk_half_at(s + 208);
        for (int half = 0; half < 2; half++)
            for (int k = 0; k < 4; k++)
                for (int is = 0; is < 2; is++, dst += 16) {
                    /* 16 consecutive elements (128 half + 32 k + 16 is + l) share one scale */
                    const uint8_t *ql = s + 64 * half + 32 * (k & 1) + 16 * is,
                                  *qh = s + 128 + 32 * half + 16 * is;
                    int shift = 4 * (k >> 1), hs = 2 * k;
                    float dl = d * (float)sc[8 * half + is + 2 * k];
                    for (int l = 0; l < 16; l++) {
                        int q = (int)(((uint32_t)ql[l] >> shift & 0xF) | ((uint32_t)qh[l] >> hs & 3) << 4) -
                                32;
                        dst[l] = dl * (float)q;
                    }
                }
    }
}

/* IQ4_NL / IQ4_XS: 4-bit indices into a fixed non-linear grid */
static const int8_t dk_iq4_grid[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                       1,    13,   25,  38,  53,  69,  89,  113};

static void dk_dequant_iq4_nl(const uint8_t *s, float *dst, size_t n) {
    for (size_t b = 0; b < n / 32; b++, s += 18, dst += 32) {
        float d = dk_half_at(s);
        const uint8_t *q = s + 2;
        for (int j = 0; j < 16; j++) {
            dst[j] = d * (float)dk_iq4_grid[q[j] & 0xF];
            dst[j + 16] = d * (float)dk_iq4_grid[q[j] >> 4];
        }
    }
}

/* sub-block ib's 6-bit scale: low 4 bits from nibble ib%2 of scales_l[ib/2], high 2 bits from
 * bits 2*ib of scales_h; value (scale - 32) */
static void dk_dequant_iq4_xs(const uint8_t *s, float *dst, size_t n) {
    for (size_t b = 0; b < n / 256; b++, s += 136) {
        float d = dk_half_at(s);
        uint16_t sh;
        memcpy(&sh, s + 2, 2);
        const uint8_t *sl = s + 4, *q = s + 8;
        for (int ib = 0; ib < 8; ib++, q += 16, dst += 32) {
            int ls = ((sl[ib / 2] >> (4 * (ib % 2))) & 0xF) | ((sh >> (2 * ib)) & 3) << 4;
            float dl = d * (float)(ls - 32);
            for (int j = 0; j < 16; j++) {
                dst[j] = dl * (float)dk_iq4_grid[q[j] & 0xF];
                dst[j + 16] = dl * (float)dk_iq4_grid[q[j] >> 4];
            }
        }
    }
}

#ifdef DK_QUANT_SIMD
/* AVX2 forms of the K-quant loops: the bit fields are extracted into 16 int8 lanes, widened to
 * int32 and converted to float (exact), then the same one multiply (and, with a min, one
 * subtract) per element as the scalar code, so the results are bit-identical (no FMA: ISO C
 * mode compiles with -ffp-contract=off). */
static inline __m128i dk_bits16(__m128i v, int shift, int mask) {
    return _mm_and_si128(_mm_srl_epi16(v, _mm_cvtsi32_si128(shift)), _mm_set1_epi8((char)mask));
}

/* dst[0..15] = dl * q (q: 16 int8 lanes), minus ml when sub */
static inline void dk_store16(float *dst, __m128i q, float dl, float ml, int sub) {
    __m256 vd = _mm256_set1_ps(dl), vm = _mm256_set1_ps(ml);
    __m256 a = _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)));
    __m256 b = _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8))));
    if (sub) {
        a = _mm256_sub_ps(a, vm);
        b = _mm256_sub_ps(b, vm);
    }
    _mm256_storeu_ps(dst, a);
    _mm256_storeu_ps(dst + 8, b);
}

static void dk_dequant_q2_k_simd(const uint8_t *s, float *dst, size_t n) {
    for (size_t b = 0; b < n / 256; b++, s += 84) {
        float d = dk_half_at(s + 80), dmin = dk_half_at(s + 82);
        for (int half = 0, is = 0; half < 2; half++)
            for (int k = 0; k < 4; k++)
                for (int p = 0; p < 2; p++, is++, dst += 16) {
                    __m128i q = dk_bits16(_mm_loadu_si128((const __m128i *)(s + 16 + 32 * half + 16 * p)),
                                          2 * k, 3);
                    dk_store16(dst, q, d * (float)(s[is] & 0xF), dmin * (float)(s[is] >> 4), 1);
                }
    }
}

static void dk_dequant_q3_k_simd(const uint8_t *s, float *dst, size_t n) {
    for (size_t b = 0; b < n / 256; b++, s += 110) {
        const uint8_t *sb = s + 96;
        float d = dk_half_at(s + 108);
        for (int half = 0, is = 0; half < 2; half++)
            for (int k = 0; k < 4; k++)
                for (int p = 0; p < 2; p++, is++, dst += 16) {
                    __m128i lo = dk_bits16(_mm_loadu_si128((const __m128i *)(s + 32 + 32 * half + 16 * p)),
                                           2 * k, 3);
                    __m128i hb = dk_bits16(_mm_loadu_si128((const __m128i *)(s + 16 * p)), 4 * half + k, 1);
                    __m128i q = _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi16(hb, 2)), _mm_set1_epi8(4));
                    int l4 = is < 8 ? sb[is] & 0xF : sb[is - 8] >> 4,
                        h2 = (sb[8 + is % 4] >> (2 * (is / 4))) & 3;
                    dk_store16(dst, q, d * (float)((l4 | h2 << 4) - 32), 0.0f, 0);
                }
    }
}

static void dk_dequant_q45_k_simd(const uint8_t *s, float *dst, size_t n, int five);
static void dk_dequant_q4_k_simd(const uint8_t *s, float *dst, size_t n) {
    dk_dequant_q45_k_simd(s, dst, n, 0);
}
static void dk_dequant_q5_k_simd(const uint8_t *s, float *dst, size_t n) {
    dk_dequant_q45_k_simd(s, dst, n, 1);
}

static void dk_dequant_q45_k_simd(const uint8_t *s, float *dst, size_t n, int five) {
    size_t bb = five ? 176 : 144;
    for (size_t b = 0; b < n / 256; b++, s += bb) {
        float dl[8], ml[8];
        dk_k4_scales(s + 4, dk_half_at(s), dk_half_at(s + 2), dl, ml);
        const uint8_t *qh = s + 16, *q = s + (five ? 48 : 16);
        for (int c = 0; c < 4; c++, q += 32)
            for (int nib = 0; nib < 2; nib++)
                for (int h = 0; h < 2; h++, dst += 16) {
                    __m128i v = dk_bits16(_mm_loadu_si128((const __m128i *)(q + 16 * h)), 4 * nib, 0xF);
                    if (five)
                        v = _mm_or_si128(
                            v, _mm_slli_epi16(
                                   dk_bits16(_mm_loadu_si128((const __m128i *)(qh + 16 * h)), 2 * c + nib, 1),
                                   4));
                    dk_store16(dst, v, dl[2 * c + nib], ml[2 * c + nib], 1);
                }
    }
}

static void dk_dequant_q6_k_simd(const uint8_t *s, float *dst, size_t n) {
    for (size_t b = 0; b < n / 256; b++, s += 210) {
        const int8_t *sc = (const int8_t *)(s + 192);
        float d = dk_half_at(s + 208);
        for (int half = 0; half < 2; half++)
            for (int k = 0; k < 4; k++)
                for (int is = 0; is < 2; is++, dst += 16) {
                    __m128i lo = dk_bits16(
                        _mm_loadu_si128((const __m128i *)(s + 64 * half + 32 * (k & 1) + 16 * is)),
                        4 * (k >> 1), 0xF);
                    __m128i hi = dk_bits16(_mm_loadu_si128((const __m128i *)(s + 128 + 32 * half + 16 * is)),
                                           2 * k, 3);
                    __m128i q = _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi16(hi, 4)), _mm_set1_epi8(32));
                    dk_store16(dst, q, d * (float)sc[8 * half + is + 2 * k], 0.0f, 0);
                }
    }
}
/* 32-element blocks: low nibbles are elements 0..15, high nibbles 16..31 */
static inline __m128i dk_qh16(uint32_t qh, int base) { /* 0x10 in lane j where bit base+j of qh is set */
    __m128i v = _mm_set1_epi16((short)(qh >> base & 0xFFFF));
    v = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
    __m128i bit = _mm_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
    return _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(v, bit), bit), _mm_set1_epi8(0x10));
}

/* kind: 0 Q4_0, 1 Q4_1, 2 Q5_0, 3 Q5_1, 4 IQ4_NL */
static void dk_dequant_b32_simd(const uint8_t *s, float *dst, size_t n, int kind) {
    static const size_t bytes[] = {18, 20, 22, 24, 18};
    const __m128i grid = _mm_loadu_si128((const __m128i *)dk_iq4_grid);
    for (size_t b = 0; b < n / 32; b++, s += bytes[kind], dst += 32) {
        float d = dk_half_at(s), m = kind == 1 || kind == 3 ? dk_half_at(s + 2) : 0.0f;
        uint32_t qh = 0;
        if (kind == 2) memcpy(&qh, s + 2, 4);
        if (kind == 3) memcpy(&qh, s + 4, 4);
        __m128i raw = _mm_loadu_si128((const __m128i *)(s + bytes[kind] - 16));
        for (int h = 0; h < 2; h++) {
            __m128i q = dk_bits16(raw, 4 * h, 0xF);
            if (kind == 2 || kind == 3) q = _mm_or_si128(q, dk_qh16(qh, 16 * h));
            if (kind == 0) q = _mm_sub_epi8(q, _mm_set1_epi8(8));
            if (kind == 2) q = _mm_sub_epi8(q, _mm_set1_epi8(16));
            if (kind == 4) q = _mm_shuffle_epi8(grid, q);
            /* Q4_1/Q5_1: q*d + m == q*d - (-m) exactly */
            dk_store16(dst + 16 * h, q, d, -m, kind == 1 || kind == 3);
        }
    }
}
static void dk_dequant_q4_0_simd(const uint8_t *s, float *dst, size_t n) {
    dk_dequant_b32_simd(s, dst, n, 0);
}
static void dk_dequant_q4_1_simd(const uint8_t *s, float *dst, size_t n) {
    dk_dequant_b32_simd(s, dst, n, 1);
}
static void dk_dequant_q5_0_simd(const uint8_t *s, float *dst, size_t n) {
    dk_dequant_b32_simd(s, dst, n, 2);
}
static void dk_dequant_q5_1_simd(const uint8_t *s, float *dst, size_t n) {
    dk_dequant_b32_simd(s, dst, n, 3);
}
static void dk_dequant_iq4_nl_simd(const uint8_t *s, float *dst, size_t n) {
    dk_dequant_b32_simd(s, dst, n, 4);
}

static void dk_dequant_iq4_xs_simd(const uint8_t *s, float *dst, size_t n) {
    const __m128i grid = _mm_loadu_si128((const __m128i *)dk_iq4_grid);
    for (size_t b = 0; b < n / 256; b++, s += 136) {
        float d = dk_half_at(s);
        uint16_t sh;
        memcpy(&sh, s + 2, 2);
        for (int ib = 0; ib < 8; ib++, dst += 32) {
            int ls = ((s[4 + ib / 2] >> (4 * (ib % 2))) & 0xF) | ((sh >> (2 * ib)) & 3) << 4;
            float dl = d * (float)(ls - 32);
            __m128i raw = _mm_loadu_si128((const __m128i *)(s + 8 + 16 * ib));
            for (int h = 0; h < 2; h++)
                dk_store16(dst + 16 * h, _mm_shuffle_epi8(grid, dk_bits16(raw, 4 * h, 0xF)), dl, 0.0f, 0);
        }
    }
}
#endif

static void dk_dequant_f32(const uint8_t *s, float *dst, size_t n) { memcpy(dst, s, n * sizeof *dst); }

/* ---- type table ---- */

typedef void (*dk_dequant_fn)(const uint8_t *src, float *dst, size_t n);
typedef void (*dk_quant_fn)(const float *src, uint8_t *dst, size_t n);

typedef struct {
    uint32_t id;
    const char *name;
    uint32_t blck, bytes;  /* elements and bytes per block */
    dk_dequant_fn dequant; /* NULL: known (the file opens) but not supported */
    dk_quant_fn quant;     /* NULL: no random weights of this type */
    dk_dequant_fn simd;    /* AVX2 form of dequant (same results), NULL: dequant is the only one */
} dk_type_info;

#ifdef DK_QUANT_SIMD
#define DK_SIMD(t) dk_dequant_##t##_simd
#else
#define DK_SIMD(t) NULL
#endif

static void dk_quant_f32(const float *src, uint8_t *dst, size_t n);
static void dk_quant_f16(const float *src, uint8_t *dst, size_t n);
static void dk_quant_bf16(const float *src, uint8_t *dst, size_t n);
static void dk_quant_q8_0(const float *src, uint8_t *dst, size_t n);
static void dk_quant_q4_0(const float *src, uint8_t *dst, size_t n);
static void dk_quant_q4_1(const float *src, uint8_t *dst, size_t n);
static void dk_quant_q5_0(const float *src, uint8_t *dst, size_t n);
static void dk_quant_q5_1(const float *src, uint8_t *dst, size_t n);
static void dk_quant_q2_k(const float *src, uint8_t *dst, size_t n);
static void dk_quant_q3_k(const float *src, uint8_t *dst, size_t n);
static void dk_quant_q4_k(const float *src, uint8_t *dst, size_t n);
static void dk_quant_q5_k(const float *src, uint8_t *dst, size_t n);
static void dk_quant_q6_k(const float *src, uint8_t *dst, size_t n);
static void dk_quant_iq4_nl(const float *src, uint8_t *dst, size_t n);
static void dk_quant_iq4_xs(const float *src, uint8_t *dst, size_t n);

static const dk_type_info dk_types[] = {
    {0, "F32", 1, 4, dk_dequant_f32, dk_quant_f32, NULL},
    {1, "F16", 1, 2, dk_dequant_f16, dk_quant_f16, NULL},
    {2, "Q4_0", 32, 18, dk_dequant_q4_0, dk_quant_q4_0, DK_SIMD(q4_0)},
    {3, "Q4_1", 32, 20, dk_dequant_q4_1, dk_quant_q4_1, DK_SIMD(q4_1)},
    {6, "Q5_0", 32, 22, dk_dequant_q5_0, dk_quant_q5_0, DK_SIMD(q5_0)},
    {7, "Q5_1", 32, 24, dk_dequant_q5_1, dk_quant_q5_1, DK_SIMD(q5_1)},
    {8, "Q8_0", 32, 34, dk_dequant_q8_0, dk_quant_q8_0, NULL},
    {9, "Q8_1", 32, 36, NULL, NULL, NULL},
    {10, "Q2_K", 256, 84, dk_dequant_q2_k, dk_quant_q2_k, DK_SIMD(q2_k)},
    {11, "Q3_K", 256, 110, dk_dequant_q3_k, dk_quant_q3_k, DK_SIMD(q3_k)},
    {12, "Q4_K", 256, 144, dk_dequant_q4_k, dk_quant_q4_k, DK_SIMD(q4_k)},
    {13, "Q5_K", 256, 176, dk_dequant_q5_k, dk_quant_q5_k, DK_SIMD(q5_k)},
    {14, "Q6_K", 256, 210, dk_dequant_q6_k, dk_quant_q6_k, DK_SIMD(q6_k)},
    {15, "Q8_K", 256, 292, NULL, NULL, NULL},
    {16, "IQ2_XXS", 256, 66, NULL, NULL, NULL},
    {17, "IQ2_XS", 256, 74, NULL, NULL, NULL},
    {18, "IQ3_XXS", 256, 98, NULL, NULL, NULL},
    {19, "IQ1_S", 256, 50, NULL, NULL, NULL},
    {20, "IQ4_NL", 32, 18, dk_dequant_iq4_nl, dk_quant_iq4_nl, DK_SIMD(iq4_nl)},
    {21, "IQ3_S", 256, 110, NULL, NULL, NULL},
    {22, "IQ2_S", 256, 82, NULL, NULL, NULL},
    {23, "IQ4_XS", 256, 136, dk_dequant_iq4_xs, dk_quant_iq4_xs, DK_SIMD(iq4_xs)},
    {24, "I8", 1, 1, NULL, NULL, NULL},
    {25, "I16", 1, 2, NULL, NULL, NULL},
    {26, "I32", 1, 4, NULL, NULL, NULL},
    {27, "I64", 1, 8, NULL, NULL, NULL},
    {28, "F64", 1, 8, NULL, NULL, NULL},
    {29, "IQ1_M", 256, 56, NULL, NULL, NULL},
    {30, "BF16", 1, 2, dk_dequant_bf16, dk_quant_bf16, NULL},
    {34, "TQ1_0", 256, 54, NULL, NULL, NULL},
    {35, "TQ2_0", 256, 66, NULL, NULL, NULL},
    {39, "MXFP4", 32, 17, NULL, NULL, NULL},
    {DK_GGML_TYPE_Q5_0R, "Q5_0R", DK_Q5_0R_UNIT, DK_Q5_0R_UNIT_BYTES, dk_q5_0r_dequantize_scalar, NULL,
     dk_q5_0r_dequantize},
};

static const dk_type_info *dk_type_find(uint32_t t) {
    for (size_t i = 0; i < sizeof dk_types / sizeof dk_types[0]; i++)
        if (dk_types[i].id == t) return &dk_types[i];
    return NULL;
}

const char *dk_ggml_type_name(uint32_t type) {
    const dk_type_info *ti = dk_type_find(type);
    return ti ? ti->name : NULL;
}

bool dk_ggml_type_block(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes) {
    const dk_type_info *ti = dk_type_find(type);
    if (!ti) return false;
    *block_elems = ti->blck;
    *block_bytes = ti->bytes;
    return true;
}

bool dk_ggml_type_supported(uint32_t type) {
    const dk_type_info *ti = dk_type_find(type);
    return ti && ti->dequant && type < DK_GGML_TYPE_INTERNAL;
}

bool dk_ggml_type_quantizable(uint32_t type) {
    const dk_type_info *ti = dk_type_find(type);
    return ti && ti->quant;
}

const char *dk_ggml_supported_names(void) {
    static char buf[256];
    if (!buf[0])
        for (size_t i = 0, o = 0; i < sizeof dk_types / sizeof dk_types[0]; i++)
            if (dk_types[i].dequant && dk_types[i].id < DK_GGML_TYPE_INTERNAL)
                o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", o ? ", " : "", dk_types[i].name);
    return buf;
}

bool dk_ggml_type_from_name(const char *name, uint32_t *type) {
    for (size_t i = 0; i < sizeof dk_types / sizeof dk_types[0]; i++)
        if (dk_types[i].id < DK_GGML_TYPE_INTERNAL && !strcasecmp(name, dk_types[i].name)) {
            *type = dk_types[i].id;
            return true;
        }
    return false;
}

size_t dk_ggml_row_bytes(uint32_t type, int64_t n) {
    const dk_type_info *ti = dk_type_find(type);
    return ti ? (size_t)(n / ti->blck) * ti->bytes : 0;
}

void dk_dequantize(uint32_t type, const void *src, float *dst, size_t n) {
    const dk_type_info *ti = dk_type_find(type);
    if (ti && ti->dequant) (ti->simd ? ti->simd : ti->dequant)(src, dst, n);
    else memset(dst, 0, n * sizeof *dst);
}

void dk_dequantize_scalar(uint32_t type, const void *src, float *dst, size_t n) {
    const dk_type_info *ti = dk_type_find(type);
    if (ti && ti->dequant) ti->dequant(src, dst, n);
    else memset(dst, 0, n * sizeof *dst);
}

/* ---- f32 -> storage type ---- */

uint16_t dk_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

static void dk_quant_f32(const float *src, uint8_t *dst, size_t n) { memcpy(dst, src, n * 4); }

static void dk_quant_f16(const float *src, uint8_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint16_t h = dk_f32_to_fp16(src[i]);
        memcpy(dst + 2 * i, &h, 2);
    }
}

static void dk_quant_bf16(const float *src, uint8_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint16_t h = dk_f32_to_bf16(src[i]);
        memcpy(dst + 2 * i, &h, 2);
    }
}

static void dk_quant_q8_0(const float *src, uint8_t *o, size_t n) {
    for (size_t b = 0; b < n / 32; b++) {
        const float *x = src + 32 * b;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t h = dk_f32_to_fp16(d);
        memcpy(o + 34 * b, &h, 2);
        for (int j = 0; j < 32; j++) o[34 * b + 2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
}

void dk_quantize_q8_0(const float *src, void *dst, size_t n) { dk_quant_q8_0(src, dst, n); }

/* ---- simple quantisers for the other types (random-weight models: bench --dtype, tests) ----
 * Round to nearest with one min/max (or signed max) per block or sub-block, and the sub-block
 * scales rounded to the format's bits: valid files of each layout, not llama.cpp's optimised
 * (importance-weighted, searched) quantisation. Each inverts the layout dk_dequant_* reads. */

static void dk_put_half(uint8_t *p, float f) {
    uint16_t h = dk_f32_to_fp16(f);
    memcpy(p, &h, 2);
}

static int dk_clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* the value of largest magnitude, with its sign */
static float dk_signed_max(const float *x, int n) {
    float m = 0.0f;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > fabsf(m)) m = x[i];
    return m;
}

static void dk_min_max(const float *x, int n, float *lo, float *hi) {
    *lo = *hi = x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < *lo) *lo = x[i];
        if (x[i] > *hi) *hi = x[i];
    }
}

/* q[i] = round(x[i] / d) + off clamped to [0, qmax] (0 when d is 0) */
static void dk_round_block(const float *x, int n, float d, int off, int qmax, int *q) {
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int i = 0; i < n; i++) q[i] = dk_clampi((int)lrintf(x[i] * id) + off, 0, qmax);
}

/* legacy 32-element blocks: low nibbles of q[j] and q[j + 16] share byte j of qs; returns bit 4 of
 * each q[j] at bit j (the Q5 qh word; Q4 ignores it) */
static uint32_t dk_pack_nibbles32(const int q[32], uint8_t *qs) {
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0xF) | (q[j + 16] & 0xF) << 4);
        qh |= (uint32_t)(q[j] >> 4 & 1) << j | (uint32_t)(q[j + 16] >> 4 & 1) << (j + 16);
    }
    return qh;
}

/* symmetric 4/5-bit legacy blocks: d = signed max / -2^(bits-1); Q5 puts bit 4 of q[j] at bit j of qh */
static void dk_quant_sym32(const float *src, uint8_t *o, size_t n, int bits) {
    int half = 1 << (bits - 1), q[32];
    size_t bb = bits == 4 ? 18 : 22;
    for (size_t b = 0; b < n / 32; b++, src += 32, o += bb) {
        float d = dk_signed_max(src, 32) / (float)-half;
        dk_put_half(o, d);
        dk_round_block(src, 32, dk_fp16_to_f32(dk_f32_to_fp16(d)), half, 2 * half - 1, q);
        uint32_t qh = dk_pack_nibbles32(q, o + (bits == 4 ? 2 : 6));
        if (bits == 5) memcpy(o + 2, &qh, 4);
    }
}

/* asymmetric 4/5-bit legacy blocks: x = q * d + m, m = block min */
static void dk_quant_asym32(const float *src, uint8_t *o, size_t n, int bits) {
    int qmax = (1 << bits) - 1, q[32];
    size_t bb = bits == 4 ? 20 : 24;
    for (size_t b = 0; b < n / 32; b++, src += 32, o += bb) {
        float lo, hi;
        dk_min_max(src, 32, &lo, &hi);
        float d = (hi - lo) / (float)qmax;
        dk_put_half(o, d);
        dk_put_half(o + 2, lo);
        float m = dk_fp16_to_f32(dk_f32_to_fp16(lo)), dd = dk_fp16_to_f32(dk_f32_to_fp16(d));
        float shifted[32];
        for (int j = 0; j < 32; j++) shifted[j] = src[j] - m;
        dk_round_block(shifted, 32, dd, 0, qmax, q);
        uint32_t qh = dk_pack_nibbles32(q, o + (bits == 4 ? 4 : 8));
        if (bits == 5) memcpy(o + 4, &qh, 4);
    }
}

static void dk_quant_q4_0(const float *s, uint8_t *o, size_t n) { dk_quant_sym32(s, o, n, 4); }
static void dk_quant_q5_0(const float *s, uint8_t *o, size_t n) { dk_quant_sym32(s, o, n, 5); }
static void dk_quant_q4_1(const float *s, uint8_t *o, size_t n) { dk_quant_asym32(s, o, n, 4); }
static void dk_quant_q5_1(const float *s, uint8_t *o, size_t n) { dk_quant_asym32(s, o, n, 5); }

/* nearest IQ4 grid index to v */
static int dk_iq4_index(float v) {
    int best = 0;
    for (int k = 1; k < 16; k++)
        if (fabsf(v - (float)dk_iq4_grid[k]) < fabsf(v - (float)dk_iq4_grid[best])) best = k;
    return best;
}

/* 32 values at scale d into 16 bytes of IQ4 indices (low nibbles x[0..15], high x[16..31]) */
static void dk_iq4_pack(const float *x, float d, uint8_t *qs) {
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 16; j++)
        qs[j] = (uint8_t)(dk_iq4_index(x[j] * id) | dk_iq4_index(x[j + 16] * id) << 4);
}

static void dk_quant_iq4_nl(const float *src, uint8_t *o, size_t n) {
    for (size_t b = 0; b < n / 32; b++, src += 32, o += 18) {
        float d = dk_signed_max(src, 32) / -127.0f;
        dk_put_half(o, d);
        dk_iq4_pack(src, dk_fp16_to_f32(dk_f32_to_fp16(d)), o + 2);
    }
}

/* K-quant super-block scales: the sub-block scales s[i] (>= 0) as round(s / d) in [0, smax],
 * d = max s / smax stored as f16; returns the f16-rounded d. */
static float dk_k_scales(const float *s, int n, int smax, int *q, uint8_t *dst_half) {
    float mx = 0.0f;
    for (int i = 0; i < n; i++)
        if (s[i] > mx) mx = s[i];
    float d = mx / (float)smax;
    dk_put_half(dst_half, d);
    d = dk_fp16_to_f32(dk_f32_to_fp16(d));
    for (int i = 0; i < n; i++) q[i] = d != 0.0f ? dk_clampi((int)lrintf(s[i] / d), 0, smax) : 0;
    return d;
}

/* signed sub-block scales s[i] as round(s / d) in [-smax-1, smax], d = max |s| / smax */
static float dk_k_scales_signed(const float *s, int n, int smax, int *q, float *d_out) {
    float mx = 0.0f;
    for (int i = 0; i < n; i++)
        if (fabsf(s[i]) > mx) mx = fabsf(s[i]);
    float d = dk_fp16_to_f32(dk_f32_to_fp16(mx / (float)smax));
    for (int i = 0; i < n; i++) q[i] = d != 0.0f ? dk_clampi((int)lrintf(s[i] / d), -smax - 1, smax) : 0;
    *d_out = d;
    return d;
}

/* asymmetric sub-blocks of `sub` values with levels 0..qmax: x ~ (d*sc) q - (dmin*m). Fills
 * sc[], mn[] (6-bit for Q4_K/Q5_K, 4-bit for Q2_K) and q[256]; d, dmin go to dh, dh + 2. */
static void dk_k_asym(const float *x, int sub, int qmax, int smax, int *sc, int *mn, int *q, uint8_t *dh) {
    int ns = 256 / sub;
    float scale[16], minv[16];
    for (int i = 0; i < ns; i++) {
        float lo, hi;
        dk_min_max(x + i * sub, sub, &lo, &hi);
        if (lo > 0.0f) lo = 0.0f;
        scale[i] = (hi - lo) / (float)qmax;
        minv[i] = -lo;
    }
    float d = dk_k_scales(scale, ns, smax, sc, dh), dmin = dk_k_scales(minv, ns, smax, mn, dh + 2);
    for (int i = 0; i < ns; i++) {
        float dl = d * (float)sc[i], ml = dmin * (float)mn[i], id = dl != 0.0f ? 1.0f / dl : 0.0f;
        for (int l = 0; l < sub; l++)
            q[i * sub + l] = dk_clampi((int)lrintf((x[i * sub + l] + ml) * id), 0, qmax);
    }
}

/* the 12-byte 6-bit scale/min packing dk_k4_scales reads */
static void dk_k4_pack_scales(const int *sc, const int *mn, uint8_t *p) {
    for (int j = 0; j < 4; j++) {
        p[j] = (uint8_t)((sc[j] & 63) | (sc[j + 4] >> 4) << 6);
        p[j + 4] = (uint8_t)((mn[j] & 63) | (mn[j + 4] >> 4) << 6);
        p[j + 8] = (uint8_t)((sc[j + 4] & 0xF) | (mn[j + 4] & 0xF) << 4);
    }
}

static void dk_quant_q4_k(const float *src, uint8_t *o, size_t n) {
    for (size_t b = 0; b < n / 256; b++, src += 256, o += 144) {
        int sc[8], mn[8], q[256];
        dk_k_asym(src, 32, 15, 63, sc, mn, q, o);
        dk_k4_pack_scales(sc, mn, o + 4);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                o[16 + 32 * c + l] = (uint8_t)(q[64 * c + l] | q[64 * c + 32 + l] << 4);
    }
}

static void dk_quant_q5_k(const float *src, uint8_t *o, size_t n) {
    for (size_t b = 0; b < n / 256; b++, src += 256, o += 176) {
        int sc[8], mn[8], q[256];
        dk_k_asym(src, 32, 31, 63, sc, mn, q, o);
        dk_k4_pack_scales(sc, mn, o + 4);
        uint8_t *qh = o + 16, *qs = o + 48;
        memset(qh, 0, 32);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                int a = q[64 * c + l], h = q[64 * c + 32 + l];
                qs[32 * c + l] = (uint8_t)((a & 0xF) | (h & 0xF) << 4);
                qh[l] |= (uint8_t)((a >> 4) << (2 * c) | (h >> 4) << (2 * c + 1));
            }
    }
}

static void dk_quant_q2_k(const float *src, uint8_t *o, size_t n) {
    for (size_t b = 0; b < n / 256; b++, src += 256, o += 84) {
        int sc[16], mn[16], q[256];
        dk_k_asym(src, 16, 3, 15, sc, mn, q, o + 80);
        for (int i = 0; i < 16; i++) o[i] = (uint8_t)(sc[i] | mn[i] << 4);
        uint8_t *qs = o + 16;
        memset(qs, 0, 64);
        /* element 128 h + 32 k + 16 p + l -> byte 32 h + 16 p + l, bits 2k */
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 4; k++)
                for (int p = 0; p < 2; p++)
                    for (int l = 0; l < 16; l++)
                        qs[32 * h + 16 * p + l] |= (uint8_t)(q[128 * h + 32 * k + 16 * p + l] << (2 * k));
    }
}

/* symmetric sub-blocks of 16 with levels -half..half-1 and signed sub-block scales */
static float dk_k_sym16(const float *x, int half, int smax, int *sc, int *q) {
    float s[16], d;
    for (int i = 0; i < 16; i++) s[i] = dk_signed_max(x + 16 * i, 16) / (float)-half;
    dk_k_scales_signed(s, 16, smax, sc, &d);
    for (int i = 0; i < 16; i++) {
        float dl = d * (float)sc[i], id = dl != 0.0f ? 1.0f / dl : 0.0f;
        for (int l = 0; l < 16; l++)
            q[16 * i + l] = dk_clampi((int)lrintf(x[16 * i + l] * id), -half, half - 1);
    }
    return d;
}

static void dk_quant_q3_k(const float *src, uint8_t *o, size_t n) {
    for (size_t b = 0; b < n / 256; b++, src += 256, o += 110) {
        int sc[16], q[256];
        float d = dk_k_sym16(src, 4, 31, sc, q);
        dk_put_half(o + 108, d);
        uint8_t *hm = o, *qs = o + 32, *sb = o + 96;
        memset(o, 0, 108);
        for (int i = 0; i < 16; i++) {
            int u = sc[i] + 32; /* 6 bits */
            if (i < 8) sb[i] |= (uint8_t)(u & 0xF);
            else sb[i - 8] |= (uint8_t)((u & 0xF) << 4);
            sb[8 + i % 4] |= (uint8_t)((u >> 4) << (2 * (i / 4)));
        }
        /* element 128 h + 32 k + 16 p + l: 2 low bits in qs[32 h + 16 p + l] at 2k, high bit
         * (set when q >= 0, i.e. nothing subtracted) in hmask[16 p + l] at bit 4 h + k */
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 4; k++)
                for (int p = 0; p < 2; p++)
                    for (int l = 0; l < 16; l++) {
                        int v = q[128 * h + 32 * k + 16 * p + l] + 4;
                        qs[32 * h + 16 * p + l] |= (uint8_t)((v & 3) << (2 * k));
                        if (v & 4) hm[16 * p + l] |= (uint8_t)(1 << (4 * h + k));
                    }
    }
}

static void dk_quant_q6_k(const float *src, uint8_t *o, size_t n) {
    for (size_t b = 0; b < n / 256; b++, src += 256, o += 210) {
        int sc[16], q[256];
        float d = dk_k_sym16(src, 32, 127, sc, q);
        dk_put_half(o + 208, d);
        memset(o, 0, 192);
        for (int i = 0; i < 16; i++) o[192 + i] = (uint8_t)(int8_t)sc[i];
        /* element 128 h + l + 32 k (see dk_dequant_q6_k) */
        for (int h = 0; h < 2; h++) {
            uint8_t *ql = o + 64 * h, *qh = o + 128 + 32 * h;
            for (int l = 0; l < 32; l++)
                for (int k = 0; k < 4; k++) {
                    int v = q[128 * h + 32 * k + l] + 32;
                    ql[l + 32 * (k & 1)] |= (uint8_t)((v & 0xF) << (4 * (k >> 1)));
                    qh[l] |= (uint8_t)((v >> 4) << (2 * k));
                }
        }
    }
}

static void dk_quant_iq4_xs(const float *src, uint8_t *o, size_t n) {
    for (size_t b = 0; b < n / 256; b++, src += 256, o += 136) {
        float s[8], d;
        int sc[8];
        for (int i = 0; i < 8; i++) s[i] = dk_signed_max(src + 32 * i, 32) / -127.0f;
        dk_k_scales_signed(s, 8, 31, sc, &d);
        dk_put_half(o, d);
        uint16_t sh = 0;
        memset(o + 4, 0, 4);
        for (int i = 0; i < 8; i++) {
            int u = sc[i] + 32;
            o[4 + i / 2] |= (uint8_t)((u & 0xF) << (4 * (i % 2)));
            sh |= (uint16_t)((u >> 4) << (2 * i));
            dk_iq4_pack(src + 32 * i, d * (float)sc[i], o + 8 + 16 * i);
        }
        memcpy(o + 2, &sh, 2);
    }
}

void dk_quantize(uint32_t type, const float *src, void *dst, size_t n) {
    const dk_type_info *ti = dk_type_find(type);
    if (ti && ti->quant) ti->quant(src, dst, n);
}
