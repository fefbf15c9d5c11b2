/* quant.c — element type table and conversion to f32. */
#include "quant.h"
#include <string.h>
#include <math.h>
#if defined(__AVX2__) && defined(__F16C__)
#include <immintrin.h>
#endif

/* ---- type table ---- */

typedef struct { uint32_t id; const char *name; uint32_t blck, bytes; bool supported; } dk_type_info;

static const dk_type_info dk_types[] = {
    {0, "F32", 1, 4, true},      {1, "F16", 1, 2, true},      {2, "Q4_0", 32, 18, false},
    {3, "Q4_1", 32, 20, false},  {6, "Q5_0", 32, 22, false},  {7, "Q5_1", 32, 24, false},
    {8, "Q8_0", 32, 34, true},   {9, "Q8_1", 32, 36, false},  {10, "Q2_K", 256, 84, false},
    {11, "Q3_K", 256, 110, false}, {12, "Q4_K", 256, 144, false}, {13, "Q5_K", 256, 176, false},
    {14, "Q6_K", 256, 210, false}, {15, "Q8_K", 256, 292, false}, {24, "I8", 1, 1, false},
    {25, "I16", 1, 2, false},    {26, "I32", 1, 4, false},    {27, "I64", 1, 8, false},
    {28, "F64", 1, 8, false},    {30, "BF16", 1, 2, true},
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
    return ti && ti->supported;
}

/* ---- scalar conversions ---- */

float dk_fp16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) bits = sign;
        else { /* subnormal: value = mant * 2^-24 */
            float f = ldexpf((float)mant, -24);
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

/* ---- bulk ---- */

size_t dk_ggml_row_bytes(uint32_t type, int64_t n) {
    const dk_type_info *ti = dk_type_find(type);
    return ti ? (size_t)(n / ti->blck) * ti->bytes : 0;
}

#if defined(__AVX2__) && defined(__F16C__)
#define DK_QUANT_SIMD 1
#endif

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
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + 2 * i))));
#endif
    for (; i < n; i++) { uint16_t h; memcpy(&h, s + 2 * i, 2); dst[i] = dk_fp16_to_f32(h); }
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
    for (; i < n; i++) { uint16_t h; memcpy(&h, s + 2 * i, 2); dst[i] = dk_bf16_to_f32(h); }
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
        _mm256_storeu_ps(o + 8, _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q0, 8)))));
        _mm256_storeu_ps(o + 16, _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q1))));
        _mm256_storeu_ps(o + 24, _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q1, 8)))));
#else
        for (int j = 0; j < 32; j++) o[j] = d * (float)(int8_t)blk[2 + j];
#endif
    }
}

void dk_dequantize(uint32_t type, const void *src, float *dst, size_t n) {
    const uint8_t *s = src;
    switch (type) {
    case DK_GGML_TYPE_F32: memcpy(dst, s, n * 4); break;
    case DK_GGML_TYPE_F16: dk_dequant_f16(s, dst, n); break;
    case DK_GGML_TYPE_BF16: dk_dequant_bf16(s, dst, n); break;
    case DK_GGML_TYPE_Q8_0: dk_dequant_q8_0(s, dst, n); break;
    default: memset(dst, 0, n * sizeof *dst); break;
    }
}

/* ---- f32 -> storage type ---- */

uint16_t dk_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

void dk_quantize_q8_0(const float *src, void *dst, size_t n) {
    uint8_t *o = dst;
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

void dk_quantize(uint32_t type, const float *src, void *dst, size_t n) {
    uint8_t *o = dst;
    switch (type) {
    case DK_GGML_TYPE_F32: memcpy(o, src, n * 4); break;
    case DK_GGML_TYPE_F16:
        for (size_t i = 0; i < n; i++) { uint16_t h = dk_f32_to_fp16(src[i]); memcpy(o + 2 * i, &h, 2); }
        break;
    case DK_GGML_TYPE_BF16:
        for (size_t i = 0; i < n; i++) { uint16_t h = dk_f32_to_bf16(src[i]); memcpy(o + 2 * i, &h, 2); }
        break;
    case DK_GGML_TYPE_Q8_0: dk_quantize_q8_0(src, dst, n); break;
    default: break;
    }
}
