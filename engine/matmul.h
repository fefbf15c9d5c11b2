/* matmul.h — Y = X·Wᵀ for the projections and the lm head, W a model tensor in its file type.
 *
 * Weights in F16/BF16 or a quantised type stay in that type (model.h); each such matrix is
 * converted into the f32 scratch wbuf right before its sgemm (OpenBLAS 0.3.21 has no
 * half-precision GEMM), the lm head in blocks of rows that fit wbuf. Converted values are the
 * exact f32 values (quant.h), so the sgemm calls see the same operands as with an f32 file.
 * For a few rows (decode; m <= 8), every file type and compute mode, the whole-matrix copy and
 * BLAS are skipped instead (the fused path, matvec.h): each row of W is read once in its file type
 * and widened next to its dot products, rows split over the pool. In bf16 compute mode (compute.h)
 * products of more than DK_COMPUTE_MIN_M rows run on the oneDNN backend.
 * Every path computes a row of Y by the same calls whatever the thread count: bit-identical. */
#ifndef DK_MATMUL_H
#define DK_MATMUL_H
#include <stdbool.h>
#include <stdint.h>
#include "compute.h"
#include "dk_common.h"
#include "model.h"
#include "pool.h"
#include "qdot.h"
#include "quant.h"

/* What the products use of their context; embedded in dk_ctx. */
typedef struct {
    dk_pool *pool;         /* the context's pool: conversion and the small-m paths */
    float *wbuf;           /* (wbuf_n) one weight matrix (or lm-head row block) converted to f32,
                             * or, in the fused small-m path, the tasks' row-chunk slices;
                             * NULL when every tensor is F32 (model->converts false) */
    size_t wbuf_n;         /* floats in wbuf: max(n_head*head_dim, n_ff) * n_embd */
    bool fused;            /* small-m matmuls of converted weights chunk by chunk (default on) */
    dk_compute compute;    /* compute precision (compute.h) */
    dk_bf16_backend *bf16; /* exists from the first switch to bf16 on */
    bool pack;             /* bf16: pack the layer matrices on their first product (compute.h's
                            * packed weights; set by dk_ctx_set_compute when they fit, see
                            * dk_ctx_bf16_pack_bytes) */
    dk_model *model;       /* the context's model, whose bf16 packs this makes (model.h) */
    dk_qact qact;          /* q8: the quantized X of the current few-row product (from the first
                            * switch to q8 on; DK_MATVEC_MAX_M rows of dk_ctx_qact_k) */
    dk_status st;          /* first failure of a bf16 product in this call; later ones are skipped */
    dk_err err;
    double *convert_s;  /* += time converting whole matrices (the context's stats) */
    int *fused_matmuls; /* += products that took the fused path (the context's stats) */
} dk_matmul_ctx;

/* Makes the bf16 packs of every layer matrix of mm->model that it lacks (bf16 compute with packing
 * on; see dk_ctx_bf16_packs). A product packs a matrix it finds without one as well. */
dk_status dk_matmul_pack_layers(dk_matmul_ctx *mm, dk_err *e);

/* Y (m, n) = X (m, k) · Wᵀ, W (n, k) row-major; beta 1 accumulates into Y. W is one layer
 * matrix (n*k <= wbuf_n when it is converted). Adds the product's FLOPs to *flops. */
void dk_matmul(dk_matmul_ctx *mm, float *y, const float *x, const dk_tensor *w, int m, int n, int k,
               float beta, int64_t *flops);

/* Several products of the same X (m, k): Y_p (m, rows of W_p) = X · W_pᵀ, beta 0. Few rows (the fused
 * path) run them as one pool job; otherwise one dk_matmul each, in order (the same calls as those). */
enum { DK_MATMUL_MULTI = 4 };
typedef struct {
    float *y;
    const dk_tensor *w;
} dk_matmul_out;
void dk_matmul_multi(dk_matmul_ctx *mm, const float *x, int m, int k, const dk_matmul_out *o, int n_o,
                     int64_t *flops);

/* logits (m, n_vocab) = X (m, d) · Wᵀ for the lm head W: one sgemm per block of blk rows (converted
 * in turn when W is not F32: the head of a 7B model is ~2 GB in f32), or, for m <= 8, the fused
 * path over all rows (split over the threads). blk out of 1..n means one block. */
void dk_matmul_head(dk_matmul_ctx *mm, float *logits, const float *x, const dk_tensor *w, int m, int blk,
                    int64_t *flops);

#endif
