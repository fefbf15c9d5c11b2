/* qdot_simd.h — what qdot.c and qdot_avx512.c share: the kernel type of one row's q8 dot. */
#ifndef DK_QDOT_SIMD_H
#define DK_QDOT_SIMD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "qdot.h"

/* qdot.h's dot of one row w (n elements) with one quantized row. */
typedef float (*dk_qdot_fn)(const void *w, const dk_qrow *x, int64_t n);

/* The AVX-512 VNNI kernel of a type (the bits of dk_qdot_scalar), or NULL where it has none or the
 * build cannot make it; vbmi: Q5_0's form that also needs AVX512_VBMI. The caller checks the CPU. */
dk_qdot_fn dk_qdot_avx512(uint32_t type, bool vbmi);

/* Rows in pairs: for i < h, rows w + i rb and w + (h + i) rb (two long streams, as matvec.c pairs rows)
 * into y[i] and y[h + i], plus the old values when beta is 1: the bits dk_qdot_fn gives for each (AVX-512
 * Q8_0 and Q5_0; NULL otherwise). */
typedef void (*dk_qdot2_fn)(const void *w, size_t rb, int64_t h, const dk_qrow *x, int64_t n, float *y,
                            float beta);
dk_qdot2_fn dk_qdot_avx512_2(uint32_t type, bool vbmi);

/* dk_q5_0r_repack's AVX-512 VBMI form (builds that target AVX2; the caller checks the CPU). */
void dk_qdot_avx512_repack_q5_0r(const void *src, void *dst, size_t n);
#endif
