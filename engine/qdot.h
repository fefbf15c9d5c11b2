/* qdot.h — q8 compute's few-row products (compute.h): rows of block-quantized weights against
 * activations quantized to 8 bits per 32 values, as llama.cpp multiplies them, with integer dot
 * products inside each block.
 *
 * Activations (dk_qact_quantize): per block b of 32 values of a row of X, amax = max |x|,
 * d_b = amax / 127 (f32; 0 below 2^-96, NaN when the block holds an infinity or a NaN),
 * id = 1 / d_b (0 when d_b is 0), q_i = x_i * id rounded to the nearest integer (ties to even) and
 * clamped to [-127, 127]; sum_b = Σ q_i, and the two halves' sums (16 values each) hsum. So
 * |x_i - d_b q_i| <= d_b / 2 (plus f32 rounding of d_b, id and the product: a few units of 2^-24
 * of |x_i|).
 *
 * Dot of a weight row with a quantized row (n elements, n a multiple of the weight's block):
 *   for each activation block b, an exact integer S_b and an f32 scale s_b:
 *     Q8_0  s_b = d_w * d_b,  S_b = Σ w_i q_i                      (w_i the int8 quants)
 *     Q5_0  s_b = d_w * d_b,  S_b = Σ (u_i - 16) q_i               (u_i the 5-bit quants; Q5_0R
 *                                                                  the same, q5_0r.h)
 *     Q6_K  s_b = d * d_b,    S_b = Σ_halves sc_h Σ (u_i - 32) q_i (u_i 6-bit, sc_h the int8 scale
 *                                                                  of each 16 values)
 *   (|S_b| < 2^24, so (float)S_b is exact), and c_b = fmaf(s_b, S_b, acc) below;
 *     Q4_K  sub-block j = block b of its 256: dl_j = d * sc_j, ml_j = dmin * m_j (as dk_dequantize),
 *           S_b = Σ u_i q_i (u_i 4-bit), t_b = fmaf(dl_j, S_b, -(ml_j * sum_b)), c_b = fmaf(d_b, t_b, acc);
 *   then acc[b mod 8] = c_b(acc[b mod 8]) for b in order, and the result is
 *   ((acc0 + acc4) + (acc2 + acc6)) + ((acc1 + acc5) + (acc3 + acc7)).
 * That is the whole definition: dk_qdot_scalar computes it in plain C, the AVX-512 VNNI kernels
 * (qdot_avx512.c, chosen at run time) give the same bits, and a row's result depends on nothing but
 * the row and the quantized X (not on the thread, the row range or m).
 *
 * Error against the exact product of the file's weight values with x: per element |w_i| times the
 * activation's rounding above, plus the f32 rounding of s_b and of the n/32 fused adds (test_qdot
 * checks the bound it derives from this). */
#ifndef DK_QDOT_H
#define DK_QDOT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dk_common.h"
#include "model.h"

enum { DK_QACT_BLOCK = 32 };

/* Quantized rows of X: row i's values at q + i*k, its scales and sums at d + i*k/32, sum + i*k/32,
 * hsum + i*k/16. */
typedef struct {
    int8_t *q;     /* (m, k) */
    float *d;      /* (m, k/32) */
    int32_t *sum;  /* (m, k/32) */
    int16_t *hsum; /* (m, k/16) the sums of each 16 values (|hsum| <= 16 * 127) */
    int64_t cap;   /* elements the buffers hold (m * k <= cap) */
    int64_t k;     /* row length of the current contents */
} dk_qact;

/* Buffers for cap elements (a multiple of 32); dk_qact_free frees them (a zeroed dk_qact is empty). */
dk_status dk_qact_init(dk_qact *a, int64_t cap, dk_err *e);
void dk_qact_free(dk_qact *a);
/* Bytes dk_qact_init(cap) allocates. */
int64_t dk_qact_bytes(int64_t cap);

/* Quantizes X (m, k; row stride k) as above; k a multiple of 32, m * k <= a->cap. */
void dk_qact_quantize(dk_qact *a, const float *x, int m, int64_t k);

/* Whether rows of this type have a q8 dot (Q8_0, Q5_0, Q5_0R, Q4_K, Q6_K). */
bool dk_qdot_type(uint32_t type);

/* One quantized row (pointers into a dk_qact). */
typedef struct {
    const int8_t *q;
    const float *d;
    const int32_t *sum;
    const int16_t *hsum;
} dk_qrow;
/* Row i of a. */
dk_qrow dk_qact_row(const dk_qact *a, int i);

/* The dot above of one row w (n elements) with one quantized row, in plain C. */
float dk_qdot_scalar(uint32_t type, const void *w, const dk_qrow *x, int64_t n);

/* Rows [r0, r1) of W (n, k = w->cols) against the m quantized rows of a (a->k == k):
 * y[i*ldy + r] = dot(row r, row i of a), plus the old value when beta is 1 (beta is 0 or 1).
 * W's type is one dk_qdot_type accepts. */
void dk_qdot_rows(const dk_tensor *w, int64_t r0, int64_t r1, const dk_qact *a, int m, float *y, int64_t ldy,
                  float beta);

/* The AVX-512 VNNI kernels are used where the CPU has AVX-512F/BW/VL and VNNI (detected at the first
 * product). This asks for them on or off and returns whether they are used now (tests, benchmarks;
 * between products only). */
bool dk_qdot_set_simd(bool on);
/* Q5_0's AVX-512 kernels have a form for CPUs that also have AVX512_VBMI (its fifth bits placed by
 * one byte multishift, same bits, ~1.07x); it is used where the CPU has it. This asks for it on or off
 * and returns whether it would be used now (tests; between products only): the AVX-512 kernels are
 * used at all only while dk_qdot_set_simd says so. */
bool dk_qdot_set_vbmi(bool on);

#endif
