/* compute.h — compute precision of the large matrix products, and the backends behind one matmul
 * interface.
 *
 *   f32   (default) OpenBLAS sgemm on f32 activations and f32 weights (other file types converted
 *         to their exact f32 values): today's path, bit-identical for every thread count.
 *   bf16  oneDNN's matmul primitive: bf16 activations x bf16 weights, f32 accumulation and f32
 *         output. A BF16 file's own bits are the weights; F32/F16/Q8_0 weights are rounded to bf16
 *         (round to nearest even). The layer matrices are packed once per model (packed weights,
 *         below; forward.h says when), the others rounded right before each product. Activations are rounded
 *         from f32 to bf16 per product. Applies to the products of more than DK_COMPUTE_MIN_M rows
 *         (prefill chunks: QKV, O, FFN and, for all-row logits, the lm head). Products of fewer
 *         rows (decode, short question chunks) are memory-bound and keep f32 arithmetic on the
 *         same fused small-m path as f32 mode (matvec.h: every weight read once in its file type,
 *         f32 dot products). Attention runs blocked over the keys with an online
 *         softmax (attention.h), its two products in bf16 for full query blocks (f32 for the
 *         last partial block and decode); norms, RoPE and the softmax arithmetic stay f32.
 *         oneDNN picks its kernels from the CPU at run time (avx512_core_bf16, AMX).
 *   q8    bf16, and the products of at most DK_MATVEC_MAX_M rows (decode) on Q8_0, Q5_0, Q4_K and
 *         Q6_K weights take activations quantized to 8 bits per 32 values and sum integer products
 *         inside each block, as llama.cpp multiplies them (qdot.h: the definition and its error).
 *         Decode on those types in f32 arithmetic is bound by the work per weight (widen, scale,
 *         FMA in a fixed order), not by the memory; the integer dots read a row ~2x (Q8_0, Q5_0) to
 *         ~4x (Q4_K, Q6_K) faster per thread. Other weight types decode as in f32.
 *
 * bf16 needs native bf16 dot products (AVX512_BF16 or AMX-BF16), as oneDNN itself reports them:
 * without, dk_compute_check refuses with one line (oneDNN's emulation on plain AVX-512 was slower
 * than f32 sgemm where measured; see README). DNNL_MAX_CPU_ISA=AVX512_CORE reproduces that case on
 * a bf16 machine. */
#ifndef DK_COMPUTE_H
#define DK_COMPUTE_H
#include <stdbool.h>
#include <stdint.h>
#include "dk_common.h"
#include "pool.h"

typedef enum { DK_COMPUTE_F32, DK_COMPUTE_BF16, DK_COMPUTE_Q8, DK_COMPUTE_COUNT } dk_compute;

/* Whether the large products run on the bf16 backend in mode c (bf16 and q8). */
static inline bool dk_compute_bf16_on(dk_compute c) { return c == DK_COMPUTE_BF16 || c == DK_COMPUTE_Q8; }

/* Products with at most this many rows keep the f32 path in every compute mode (the fused
 * small-m decode path of matmul.c covers m <= 8). */
enum { DK_COMPUTE_MIN_M = 8 };

const char *dk_compute_name(dk_compute c); /* "f32", "bf16", "q8" */
/* "f32" | "bf16" | "q8" -> *out; else DK_ERR_ARG "compute 'X' is not one of f32, bf16, q8". */
dk_status dk_compute_parse(const char *s, dk_compute *out, dk_err *e);
/* True when this CPU multiplies bf16 natively (oneDNN's effective ISA has avx512_core_bf16 or AMX). */
bool dk_compute_bf16_native(void);
/* The ISA oneDNN runs with, e.g. "avx512_core_bf16". */
const char *dk_compute_isa_name(void);
/* DK_OK when mode c can run here; bf16 or q8 without native bf16: DK_ERR_ARG with one line. */
dk_status dk_compute_check(dk_compute c, dk_err *e);

/* ---- the bf16 backend (oneDNN) ----
 * Owns a oneDNN engine and stream, a cache of matmul and reorder primitives per shape (least
 * recently used evicted), and the bf16 buffers of one product's activations and weights, grown
 * on demand (dk_compute_bf16_bytes says how large they get). Not thread-safe: one per context. */
typedef struct dk_bf16_backend dk_bf16_backend;

dk_status dk_bf16_backend_init(dk_bf16_backend **out, dk_err *e);
void dk_bf16_backend_free(dk_bf16_backend *b);

/* Y (m, n; row stride ldy) = X (m, k; row stride k, f32) · Wᵀ (+ Y when beta is 1; beta is 0 or 1).
 * W (n, k) row-major is either bf16 (w_bf16 = true: used as it is) or f32 (rounded to bf16 first).
 * Runs on `threads` threads (oneDNN's OpenMP team). */
dk_status dk_bf16_matmul(dk_bf16_backend *b, float *y, int ldy, const float *x, const void *w, bool w_bf16,
                         int m, int n, int k, float beta, int threads, dk_err *e);

/* C (m, n; row stride ldc, f32) = A (m, k; row stride lda, bf16) · B (k, n, bf16; element (i, j) at
 * bm[i·b_rs + j·b_cs]), on the calling thread alone (its OpenMP team set to 1: attention tiles run
 * side by side on a context's pool, each pool thread with its own backend). */
dk_status dk_bf16_gemm(dk_bf16_backend *b, float *c, int ldc, const uint16_t *a, int lda, const uint16_t *bm,
                       int64_t b_rs, int64_t b_cs, int m, int n, int k, dk_err *e);

/* ---- packed weights ----
 * A weight matrix W (n, k) rounded to bf16 once and laid out as oneDNN's matmul kernel reads it (the
 * layout its primitive picks for (n, k) when free to choose), kept for the later products of the
 * same W: the per-product rounding of non-BF16 weights and oneDNN's own per-product copy of W into
 * that layout (measured each ~5 % of a 2K-token bf16 prefill of the 0.5B shape) are paid once.
 * Where measured (avx512_core_bf16 kernels, row stride n as the engine's layer products have) the
 * products give the bits dk_bf16_matmul gives on the same W; a row stride above n took another
 * blocking of k and differed in the last bits. test_compute checks both against one bound. */
typedef struct dk_bf16_pack dk_bf16_pack;

/* Packs W (n, k) row-major, bf16 (w_bf16) or f32: on the pool's threads where the layout is the one
 * compute_dnnl.c fills itself (NULL: the calling thread), else by a oneDNN reorder on `threads`. */
dk_status dk_bf16_pack_create(dk_bf16_backend *b, const void *w, bool w_bf16, int n, int k, int threads,
                              dk_pool *pool, dk_bf16_pack **out, dk_err *e);
void dk_bf16_pack_free(dk_bf16_pack *p);
size_t dk_bf16_pack_bytes(const dk_bf16_pack *p); /* the pack's buffer (0 for NULL) */
/* dk_bf16_matmul with a packed W (its n and k). */
dk_status dk_bf16_matmul_packed(dk_bf16_backend *b, float *y, int ldy, const float *x, const dk_bf16_pack *w,
                                int m, float beta, int threads, dk_err *e);
/* An upper bound of a pack's bytes: n and k padded to 64 (oneDNN 2.6's blocks on avx512_core_bf16
 * are 64 columns and 32 k), from 2 MiB on rounded up to whole 2 MiB pages (what it allocates). */
int64_t dk_compute_bf16_pack_bytes(int64_t n, int64_t k);

/* Bytes the backend's buffers reach for chunks of up to n_chunk rows with products of inner size
 * up to k_max, and weight matrices of up to w_elems elements to round (0 for a BF16 file). */
int64_t dk_compute_bf16_bytes(int n_chunk, int k_max, int64_t w_elems);

/* Peak of oneDNN's bf16 matmul in GFLOP/s: C (m, n) = A (m, k) · Bᵀ on bf16 A and a packed B (the
 * engine's layer products, less the rounding of A), median of reps (bench). */
double dk_compute_bf16_peak(int m, int n, int k, int reps, int threads);

#endif
