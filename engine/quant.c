/* quant.c — element type table and conversion to f32. */
#include "quant.h"
#include <string.h>
#include <math.h>

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

void dk_dequantize(uint32_t type, const void *src, float *dst, size_t n) {
    const uint8_t *s = src;
    switch (type) {
    case DK_GGML_TYPE_F32: memcpy(dst, s, n * 4); break;
    case DK_GGML_TYPE_F16:
        for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, s + 2 * i, 2); dst[i] = dk_fp16_to_f32(h); }
        break;
    case DK_GGML_TYPE_BF16:
        for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, s + 2 * i, 2); dst[i] = dk_bf16_to_f32(h); }
        break;
    case DK_GGML_TYPE_Q8_0: /* block: f16 scale d, 32 x int8 q; value = d * q */
        for (size_t b = 0; b < n / 32; b++) {
            const uint8_t *blk = s + 34 * b;
            uint16_t h;
            memcpy(&h, blk, 2);
            float d = dk_fp16_to_f32(h);
            for (int j = 0; j < 32; j++) dst[32 * b + j] = d * (float)(int8_t)blk[2 + j];
        }
        break;
    default: memset(dst, 0, n * sizeof *dst); break;
    }
}
