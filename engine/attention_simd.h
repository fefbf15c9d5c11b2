/* attention_simd.h — what attention.c and attention_avx512.c share for dk_attn_decode (attention.h). */
#ifndef DK_ATTENTION_SIMD_H
#define DK_ATTENTION_SIMD_H
#include <stdbool.h>
#include <stdint.h>

/* The scores of keys j .. n-1 in plain C, the softmax of each of the g rows of s (g, n), and o (g, hd)
 * zeroed for the values pass. */
void dk_attn_decode_softmax(const float *q, int g, int hd, const float *k, int kvd, int j, int n, float scale,
                            float *s, float *o);
/* The 16-lane form of dk_attn_decode: false (nothing done) where the build has none or hd % 64 != 0.
 * The caller checks the CPU first. */
bool dk_attn_decode_avx512(const float *q, int g, int hd, const float *k, const float *v, int kvd, int n,
                           float scale, float *s, float *o);
/* One part of dk_attn_decode_bf16 (keys [0, n) of k, v), 16 lanes wide: o (g, hd) = Σ_j exp(s_j - m) v_j
 * unnormalized, ml[2r] = m (row r's max score), ml[2r + 1] = Σ_j exp(s_j - m). False (nothing done)
 * where the build has none or hd % 32 != 0. The caller checks the CPU first (AVX512_BF16). */
bool dk_attn_decode_bf16_avx512(const float *q, int g, int hd, const uint16_t *k, const uint16_t *v, int n,
                                float scale, float *s, float *o, float *ml);
#endif
