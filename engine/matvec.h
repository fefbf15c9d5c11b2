/* matvec.h — the products of a few rows (decode): Y (m, n) = X (m, k) · Wᵀ for m <= DK_MATVEC_MAX_M,
 * reading each weight once, in its file type, next to the dot products.
 *
 * A row of W is never converted as a whole matrix: F32 rows are read in place; F16, BF16, Q8_0, Q5_0,
 * Q5_0R, Q4_K and Q6_K rows are widened to f32 in registers inside the dot product (one row, m = 1; the
 * block types in 16 lanes on CPUs with AVX-512F and BW: matvec_avx512.c, chosen at run time) or into
 * a one-row scratch that stays in L1 (m > 1, and every other type, through dk_dequantize). Every dot product
 * runs the same f32 operations in the same order whatever the row's file type and whichever path
 * widened it: a row whose file values are w gives bit for bit the result an F32 row holding w
 * gives. The result of a row depends on nothing else (not on the row range, m, the thread or the
 * number of threads), so callers may split rows over threads freely.
 *
 * Dot order (AVX2 build): four 8-wide FMA accumulators over blocks of 32 elements, then 8-element
 * blocks into the first, summed (a0 + a1) + (a2 + a3), lanes added pairwise (4+4, 2+2, 1+1), then the
 * remaining elements one by one. Without AVX2: one sequential f32 sum. */
#ifndef DK_MATVEC_H
#define DK_MATVEC_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "model.h"

enum { DK_MATVEC_MAX_M = 8 };

/* Floats of scratch one thread needs for rows of k elements. */
size_t dk_matvec_scratch_floats(int64_t k);

/* Rows [r0, r1) of W (n, k = w->cols): y[i*ldy + r] = dot(x + i*k, W row r) for i < m, plus the old
 * y[i*ldy + r] when beta is 1 (beta is 0 or 1). scratch holds dk_matvec_scratch_floats(k) floats.
 * W's type is one dk_dequantize supports. */
void dk_matvec_rows(const dk_tensor *w, int64_t r0, int64_t r1, const float *x, int m, float *y, int64_t ldy,
                    float beta, float *scratch);

/* The AVX-512 kernels (matvec_avx512.c: 16 lanes, the same bits as the AVX2 ones) are used where
 * the CPU has AVX-512F and AVX-512BW, detected at the first product. This asks for them on or off and returns
 * whether they are used now (false where the CPU or the build lacks them). Call it between products
 * (tests, benchmarks), never while one runs. */
bool dk_matvec_set_avx512(bool on);
/* Whether rows of this type have an AVX-512 kernel (Q8_0, Q5_0, Q4_K, Q6_K in builds for AVX2). */
bool dk_matvec_avx512_type(uint32_t type);

/* The dot product above of two f32 vectors (tests). */
float dk_matvec_dot(const float *a, const float *b, int64_t n);

#endif
