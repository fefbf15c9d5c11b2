/* forward_state.h — the run state of a context (struct dk_ctx), private to the engine: ctx.c
 * creates, sizes and frees it, forward.c runs the pass on it. Callers use forward.h. */
#ifndef DK_FORWARD_STATE_H
#define DK_FORWARD_STATE_H
#include "forward.h"
#include "attention.h"
#include "matmul.h"
#include "pool.h"

struct dk_ctx {
    const dk_model *m;
    int n_ctx_max;
    int n_past;          /* next original position */
    dk_kv_cache *kv;     /* (n_layer) */
    float *rope_cos;     /* (n_ctx_max, n_rot/2) */
    float *rope_sin;     /* (n_ctx_max, n_rot/2) */
    int cap;             /* chunk rows the scratch below holds */
    float *x;            /* (cap, n_embd) hidden states of the chunk */
    float *h;            /* (cap, n_embd) block output */
    float *xa;           /* (cap, n_embd) gathered block input */
    float *xb;           /* (cap, n_embd) normed input of a sub-layer */
    float *u;            /* (cap, n_embd) attention output after W_o */
    float *q;            /* (cap, n_head*head_dim) */
    float *att;          /* (cap, n_head*head_dim) attention output before W_o */
    float *hb;           /* (cap, n_ff) gate, then silu(gate)*up */
    float *hb2;          /* (cap, n_ff) up */
    int32_t *active;     /* (cap) active set of the current layer */
    int32_t *next;       /* (cap) active set chosen by the hook */
    int32_t *pos_a;      /* (cap) original positions of the active rows */
    int32_t *probe_slot; /* (cap) active row -> probe index, or -1 */
    int32_t *probe_act;  /* (cap) probe chunk indices active at this layer */
    int qblk;            /* query rows per attention block */
    size_t convert_n; /* floats of the largest layer matrix in f32: the lm head's row blocks hold as many */
    dk_pool pool;     /* pool.n threads for the non-BLAS work */
    int n_scratch;    /* threads the per-thread attention scratch below is allocated for */
    float **s;        /* (n_scratch) each (qblk*group, n_ctx_max) scores/probabilities of a block */
    float **qb;       /* (n_scratch) each (qblk*group, head_dim) stacked queries of a block */
    float **ob;       /* (n_scratch) each (qblk*group, head_dim) block output */
    dk_attn_scratch *attn;       /* (n_scratch) the blocked attention's (bf16 compute mode; attention.h) */
    uint16_t *kv16;              /* (2, n_head_kv, n_ctx_max + DK_ATTN_KBLK, head_dim) one layer's K then V
                             * heads in bf16 for bf16 attention products, refilled per layer */
    /* (n_layer, 2, n_head_kv, n_ctx_max, head_dim) every layer's K then V heads in bf16 for the decode
     * step (dk_attn_decode_bf16); while kvh_on (bf16/q8 compute where dk_attn_decode_bf16_ok), rows
     * [0, kv[l].len) are the f32 cache's rows rounded: made by dk_ctx_set_compute, then written next
     * to each new f32 row. NULL until a compute switch needs it. */
    uint16_t *kvh;
    bool kvh_on;
    float *dpart; /* (n_head_kv, dk_attn_decode_parts(n_ctx_max), DK_ATTN_DECODE_PART_FLOATS) a decode
                   * step's key parts on kvh (attention.h), allocated with kvh */
    float *probs;                /* (n_head, n_probe, n_ctx_max) captured probabilities */
    int probs_cap;               /* floats in probs */
    dk_matmul_ctx mm;            /* the products: f32 conversion scratch, fused path, compute precision
                             * and bf16 backend (matmul.h); mm.pool = &pool */
    dk_layer_stats *layer_stats; /* (n_layer) */
    dk_forward_stats stats;
    /* state of the chunk between layers (dk_run_layers) */
    bool dense; /* active set == all rows and X is not gathered */
    int na;     /* rows in the active set */
    /* split prefill (dk_forward_prefill_prefix / _suffix); split_layer -1 = none */
    int split_layer;       /* last layer the prefix ran */
    bool split_pending;    /* prefix done, no suffix yet: other prefills are refused */
    int split_n;           /* chunk length */
    int split_start;       /* position of chunk row 0 */
    int split_cap;         /* rows x_split/split_active hold */
    float *x_split;        /* (split_n, n_embd) hidden states after split_layer */
    int32_t *split_active; /* (split_n) active set for layer split_layer+1 as the prefix left it */
    int split_na;
    bool split_dense;
    double split_wall_s;         /* wall time of the prefix call */
    double split_convert_s;      /* of it, weight conversion */
    int split_fused_matmuls;     /* of it, fused small-m products */
    dk_layer_stats *split_stats; /* (n_layer) stats of layers 0..split_layer from the prefix call */
};

/* Head h's rows in layer l's bf16 copy of the cache (kvh): kv 0 its keys, 1 its values. */
static inline uint16_t *dk_ctx_kvh_head(const dk_ctx *c, int l, int kv, int h) {
    const dk_model_config *k = &c->m->cfg;
    return c->kvh + (((size_t)l * 2 + (size_t)kv) * (size_t)k->n_head_kv + (size_t)h) * (size_t)c->n_ctx_max *
                        (size_t)k->head_dim;
}

/* Scratch for a chunk of n rows (grows only). */
dk_status dk_ctx_reserve(dk_ctx *c, int n, dk_err *e);
/* Sizes the pool to dk_blas_threads() (read at every prefill: callers change the OpenBLAS thread
 * count at run time) and the per-thread attention scratch to the pool. */
dk_status dk_ctx_threads(dk_ctx *c, dk_err *e);

#endif
