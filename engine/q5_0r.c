/* q5_0r.c — Q5_0R (q5_0r.h): the repack from Q5_0, its values, and its conversion to f32. */
#include "q5_0r_simd.h"
#include "qdot_simd.h"
#include "quant.h"
#include <stdatomic.h>
#include <string.h>

bool dk_q5_0r_native(void) {
#ifdef DK_Q5_0R_SIMD
    static _Atomic int has = -1;
    if (atomic_load(&has) < 0)
        atomic_store(&has, __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
                               __builtin_cpu_supports("avx512vbmi"));
    return atomic_load(&has) == 1;
#else
    return false;
#endif
}

/* -1: not yet asked; 0 or 1: whether loaders repack */
static _Atomic int dk_q5_0r_want = -1;

bool dk_q5_0r_set(bool on) {
    bool v = on && dk_q5_0r_native();
    atomic_store(&dk_q5_0r_want, v);
    return v;
}

bool dk_q5_0r_on(void) {
    if (atomic_load(&dk_q5_0r_want) < 0) dk_q5_0r_set(true);
    return atomic_load(&dk_q5_0r_want) == 1;
}

void dk_q5_0r_repack_scalar(const void *src, void *dst, size_t n) {
    const uint8_t *s = src;
    uint8_t *d = dst;
    for (size_t i = 0; i < n / DK_Q5_0R_UNIT; i++, s += DK_Q5_0R_UNIT_BYTES, d += DK_Q5_0R_UNIT_BYTES) {
        uint8_t unit[DK_Q5_0R_UNIT_BYTES] = {0}, u[DK_Q5_0R_UNIT];
        for (int j = 0; j < 4; j++) {
            memcpy(unit + 2 * j, s + 22 * j, 2);
            dk_q5_quants(s + 22 * j + 2, u + 32 * j);
        }
        for (int e = 0; e < DK_Q5_0R_UNIT; e++) {
            int bit = 5 * e, at = 8 + bit / 8, sh = bit % 8;
            unit[at] |= (uint8_t)(u[e] << sh);
            if (sh > 3) unit[at + 1] |= (uint8_t)(u[e] >> (8 - sh));
        }
        memcpy(d, unit, sizeof unit); /* after every read of s: in place works */
    }
}

void dk_q5_0r_repack(const void *src, void *dst, size_t n) {
#ifdef DK_Q5_0R_SIMD
    if (dk_q5_0r_native()) {
        dk_qdot_avx512_repack_q5_0r(src, dst, n);
        return;
    }
#endif
    dk_q5_0r_repack_scalar(src, dst, n);
}

void dk_q5_0r_block(const uint8_t *p, int j, uint8_t u[32]) {
    for (int i = 0; i < 32; i++) {
        int bit = 5 * (32 * j + i), at = 8 + bit / 8, sh = bit % 8;
        unsigned v = (unsigned)p[at] >> sh;
        if (sh > 3) v |= (unsigned)p[at + 1] << (8 - sh);
        u[i] = (uint8_t)(v & 0x1F);
    }
}

void dk_q5_0r_dequantize_scalar(const uint8_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n / DK_Q5_0R_UNIT; i++, src += DK_Q5_0R_UNIT_BYTES) {
        for (int j = 0; j < 4; j++, dst += 32) {
            float d = dk_fp16_to_f32((uint16_t)(src[2 * j] | src[2 * j + 1] << 8));
            uint8_t u[32];
            dk_q5_0r_block(src, j, u);
            for (int e = 0; e < 32; e++) dst[e] = (float)((int)u[e] - 16) * d;
        }
    }
}

#ifdef DK_Q5_0R_SIMD
/* 64 values at a time: u - 16 as int8, each 16 widened, converted (exact) and multiplied by their
 * block's d, the scalar form's one rounding */
DK_Q5R static void dk_q5_0r_dequantize_z(const uint8_t *src, float *dst, size_t n) {
    const __m512i i0 = dk_q5r_index(0), i24 = dk_q5r_index(24), c16 = _mm512_set1_epi8(16);
    for (size_t i = 0; i < n / DK_Q5_0R_UNIT; i++, src += DK_Q5_0R_UNIT_BYTES, dst += DK_Q5_0R_UNIT) {
        __m512 d = _mm512_castps256_ps512(_mm256_cvtph_ps(_mm_loadl_epi64((const __m128i *)src)));
        for (int c = 0; c < 2; c++) {
            __m512i v = _mm512_sub_epi8(DK_Q5R_PAIR(src, c, i0, i24), c16);
            __m512 d0 = _mm512_permutexvar_ps(_mm512_set1_epi32(2 * c), d),
                   d1 = _mm512_permutexvar_ps(_mm512_set1_epi32(2 * c + 1), d);
#define DK_Q5R_STORE(L, D)       \
    _mm512_storeu_ps(            \
        dst + 64 * c + 16 * (L), \
        _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(v, L))), D))
            DK_Q5R_STORE(0, d0);
            DK_Q5R_STORE(1, d0);
            DK_Q5R_STORE(2, d1);
            DK_Q5R_STORE(3, d1);
#undef DK_Q5R_STORE
        }
    }
}
#endif

void dk_q5_0r_dequantize(const uint8_t *src, float *dst, size_t n) {
#ifdef DK_Q5_0R_SIMD
    if (dk_q5_0r_native()) {
        dk_q5_0r_dequantize_z(src, dst, n);
        return;
    }
#endif
    dk_q5_0r_dequantize_scalar(src, dst, n);
}
