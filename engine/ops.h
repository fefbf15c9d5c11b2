/* ops.h — the row and elementwise kernels of the forward pass, split over the context's pool.
 *
 * Each kernel has a range form (rows or elements [a, b)) and a wrapper that splits the range over
 * the pool by whole rows (elementwise kernels: at multiples of 8 elements). Each row is computed
 * by the same sequence of operations whichever thread runs it, so results are bit-identical for
 * any thread count. */
#ifndef DK_OPS_H
#define DK_OPS_H
#include <stddef.h>
#include <stdint.h>
#include "pool.h"

/* out (rows, d) = rmsnorm(x (rows, d)) * w (d) */
void dk_rmsnorm(dk_pool *p, float *out, const float *x, const float *w, int rows, int d, float eps);
/* softmax over x[0..lim), zeros in x[lim..len) (masked, causal); one row, on the calling thread. */
void dk_softmax_masked(float *x, int lim, int len);
/* One key block of a row's online softmax (blocked attention): x[0..lim) are the block's scores
 * (lim clipped to [0, len]), *m the row's running max (-INFINITY before its first block), *l its
 * running sum of exp(score - *m). The probabilities exp(x - m') over [0, lim) and 0 over
 * [lim, len) go to x, or to pb in bf16 (round to nearest even) when pb is given (x then keeps
 * its scores); *m = m' = max(*m, the block's max), *l = *l·alpha + the block's f32 sum. Returns
 * alpha = exp(m_old - m') (0 before the first block; 1 when the block changes nothing), the
 * factor for what the row accumulated from earlier blocks. */
float dk_softmax_online(float *x, int lim, int len, float *m, float *l, uint16_t *pb);
/* dst[i] = bf16(src[i]·scale) for i < n, round to nearest even (finite values) */
void dk_round_bf16(uint16_t *dst, const float *src, size_t n, float scale);
/* g = silu(g) * u over n elements */
void dk_silu_mul(dk_pool *p, float *g, const float *u, size_t n);
/* a = b + x elementwise over n elements */
void dk_add(dk_pool *p, float *a, const float *b, const float *x, size_t n);
/* dst[dst_idx ? dst_idx[i] : i] = src[src_idx ? src_idx[i] : i] for i < rows, rows of d floats */
void dk_copy_rows(dk_pool *p, float *dst, const int32_t *dst_idx, const float *src, const int32_t *src_idx,
                  int rows, int d);

#endif
