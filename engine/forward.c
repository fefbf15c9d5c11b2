/* forward.c — the transformer forward pass over a chunk (see forward.h for the model of state).
 *
 * Per layer, on the n_a active rows (gathered into a contiguous block):
 *   xb  = rmsnorm(x_in) * attn_norm
 *   q   = xb·Wqᵀ (+bq)          k, v = xb·Wkᵀ, xb·Wvᵀ (+bk, +bv) written straight into the cache
 *   rope(q, k) at the rows' original positions
 *   att = softmax(q·kᵀ/√hd, causal by position)·v      per KV head: the query heads of the GQA
 *         group are stacked, query rows blocked so only the causal part (plus the diagonal block) runs
 *   u   = att·Woᵀ                                       (hook: AFTER_ATTN)
 *   h   = x_in + u
 *   h  += (silu(xbf·Wgᵀ) ⊙ xbf·Wuᵀ)·Wdᵀ,  xbf = rmsnorm(h) * ffn_norm   (hook: AFTER_LAYER)
 * then the block output is scattered back (dense: buffers swap, no copy).
 *
 * Weights in F16/BF16 or a quantised type stay in that type (model.h); each such matrix is converted into the
 * f32 scratch wbuf right before its sgemm (OpenBLAS 0.3.21 has no half-precision GEMM), the lm
 * head in blocks of rows that fit wbuf, token_embd one row per token. Converted values are the
 * exact f32 values (quant.h), so the sgemm calls see the same operands as with an f32 file.
 * For a few rows (decode; m <= DK_FUSED_MAX_M) the whole-matrix copy is skipped instead: each
 * pool task converts a chunk of W's rows into its own cache-sized slice of wbuf and multiplies it
 * right away (dk_matmul_fused), so W is read once in its file type and no f32 copy of it travels
 * through memory.
 *
 * Threads: the GEMMs of the projections run on OpenBLAS's threads; everything else (norms, RoPE,
 * SiLU·up, residual adds, gather/scatter, weight conversion, attention tiles) is split over a
 * small pool of dk_blas_threads() threads owned by the context. Work is split by whole rows (or
 * by elements at multiples of 8 for elementwise kernels), and each row is computed by the same
 * sequence of operations whichever thread runs it, so results are bit-identical for any thread
 * count. Attention runs (KV head, query block) tiles concurrently, each tile's two GEMMs on
 * one OpenBLAS thread (the OpenBLAS thread count is set to 1 for the attention phase only). */
#include "forward.h"
#include "blas.h"
#include "memory.h"
#include "quant.h"
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

/* ---- FLOP counters ---- */

const char *dk_flops_component_name(dk_flops_component c) {
    static const char *const n[DK_FLOPS_COUNT] = {"qkv", "attn", "o", "ffn", "norm", "rope", "softmax", "lm_head", "halt"};
    return (unsigned)c < DK_FLOPS_COUNT ? n[c] : "?";
}

int64_t dk_flops_total(const dk_flops *f) {
    int64_t t = 0;
    for (int i = 0; i < DK_FLOPS_COUNT; i++) t += f->c[i];
    return t;
}

void dk_flops_add(dk_flops *dst, const dk_flops *src) {
    for (int i = 0; i < DK_FLOPS_COUNT; i++) dst->c[i] += src->c[i];
}

/* ---- thread pool ----
 * n threads including the caller; dk_pool_run(p, n_tasks, fn, arg) runs fn(arg, task, tid) for
 * every task 0..n_tasks-1 (tid in 0..n-1 names the thread, for per-thread scratch) and returns
 * when all are done. Idle workers sleep on a condition variable (no spinning that would steal a
 * core from OpenBLAS). */

typedef void (*dk_task_fn)(void *arg, int task, int tid);

typedef struct dk_pool dk_pool;
typedef struct { dk_pool *p; int tid; } dk_pool_worker_arg;

struct dk_pool {
    int n;                  /* threads including the caller; 1 = no workers */
    pthread_t *th;          /* (n-1) workers */
    dk_pool_worker_arg *wa; /* (n-1) their arguments, tid 1..n-1 */
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned long gen;      /* incremented per job */
    int busy;               /* workers still in the current job */
    bool quit;
    dk_task_fn fn;
    void *arg;
    int n_tasks;
    atomic_int next;        /* next task to hand out */
};

static void dk_pool_drain(dk_pool *p, int tid) {
    int t;
    while ((t = atomic_fetch_add(&p->next, 1)) < p->n_tasks) p->fn(p->arg, t, tid);
}

static void *dk_pool_main(void *argp) {
    dk_pool_worker_arg *a = argp;
    dk_pool *p = a->p;
    int tid = a->tid;
    unsigned long seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->gen == seen && !p->quit) pthread_cond_wait(&p->go, &p->mu);
        if (p->quit) { pthread_mutex_unlock(&p->mu); return NULL; }
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        dk_pool_drain(p, tid);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0) pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

static void dk_pool_free(dk_pool *p) {
    if (p->n > 1) {
        pthread_mutex_lock(&p->mu);
        p->quit = true;
        pthread_cond_broadcast(&p->go);
        pthread_mutex_unlock(&p->mu);
        for (int i = 0; i < p->n - 1; i++) pthread_join(p->th[i], NULL);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->go);
        pthread_cond_destroy(&p->done);
    }
    free(p->th);
    free(p->wa);
    memset(p, 0, sizeof *p);
    p->n = 1;
}

/* Starts n-1 workers; on any failure the pool has fewer threads (at least the caller). */
static void dk_pool_init(dk_pool *p, int n) {
    memset(p, 0, sizeof *p);
    p->n = 1;
    if (n <= 1) return;
    p->th = malloc((size_t)(n - 1) * sizeof *p->th);
    dk_pool_worker_arg *wa = p->wa = malloc((size_t)(n - 1) * sizeof *wa);
    if (!p->th || !wa) { free(p->th); free(wa); p->th = NULL; p->wa = NULL; return; }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->next, 0);
    p->n = 1;
    for (int i = 0; i < n - 1; i++) {
        wa[i] = (dk_pool_worker_arg){p, i + 1};
        if (pthread_create(&p->th[i], NULL, dk_pool_main, &wa[i]) != 0) break;
        p->n++;
    }
    if (p->n == 1) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->go);
        pthread_cond_destroy(&p->done);
    }
}

static void dk_pool_run(dk_pool *p, int n_tasks, dk_task_fn fn, void *arg) {
    if (n_tasks <= 0) return;
    if (p->n <= 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++) fn(arg, t, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    atomic_store(&p->next, 0);
    p->busy = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    dk_pool_drain(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

/* ---- run state ---- */

struct dk_ctx {
    const dk_model *m;
    int n_ctx_max;
    int n_past;             /* next original position */
    dk_kv_cache *kv;        /* (n_layer) */
    float *rope_cos;        /* (n_ctx_max, n_rot/2) */
    float *rope_sin;        /* (n_ctx_max, n_rot/2) */
    int cap;                /* chunk rows the scratch below holds */
    float *x;               /* (cap, n_embd) hidden states of the chunk */
    float *h;               /* (cap, n_embd) block output */
    float *xa;              /* (cap, n_embd) gathered block input */
    float *xb;              /* (cap, n_embd) normed input of a sub-layer */
    float *u;               /* (cap, n_embd) attention output after W_o */
    float *q;               /* (cap, n_head*head_dim) */
    float *att;             /* (cap, n_head*head_dim) attention output before W_o */
    float *hb;              /* (cap, n_ff) gate, then silu(gate)*up */
    float *hb2;             /* (cap, n_ff) up */
    int32_t *active;        /* (cap) active set of the current layer */
    int32_t *next;          /* (cap) active set chosen by the hook */
    int32_t *pos_a;         /* (cap) original positions of the active rows */
    int32_t *probe_slot;    /* (cap) active row -> probe index, or -1 */
    int32_t *probe_act;     /* (cap) probe chunk indices active at this layer */
    int qblk;               /* query rows per attention block */
    dk_pool pool;           /* pool.n threads for the non-BLAS work */
    int n_scratch;          /* threads the per-thread attention scratch below is allocated for */
    float **s;              /* (n_scratch) each (qblk*group, n_ctx_max) scores/probabilities of a block */
    float **qb;             /* (n_scratch) each (qblk*group, head_dim) stacked queries of a block */
    float **ob;             /* (n_scratch) each (qblk*group, head_dim) block output */
    float *probs;           /* (n_head, n_probe, n_ctx_max) captured probabilities */
    int probs_cap;          /* floats in probs */
    float *wbuf;            /* (wbuf_n) one weight matrix (or lm-head row block) converted to f32,
                             * or, in the fused small-m path, the tasks' row-chunk slices;
                             * NULL when every tensor is F32 (model->converts false) */
    size_t wbuf_n;          /* floats in wbuf: max(n_head*head_dim, n_ff) * n_embd */
    bool fused;             /* small-m matmuls of converted weights chunk by chunk (default on) */
    dk_layer_stats *layer_stats; /* (n_layer) */
    dk_forward_stats stats;
    /* state of the chunk between layers (dk_run_layers) */
    bool dense;             /* active set == all rows and X is not gathered */
    int na;                 /* rows in the active set */
    /* split prefill (dk_forward_prefill_prefix / _suffix); split_layer -1 = none */
    int split_layer;        /* last layer the prefix ran */
    bool split_pending;     /* prefix done, no suffix yet: other prefills are refused */
    int split_n;            /* chunk length */
    int split_start;        /* position of chunk row 0 */
    int split_cap;          /* rows x_split/split_active hold */
    float *x_split;         /* (split_n, n_embd) hidden states after split_layer */
    int32_t *split_active;  /* (split_n) active set for layer split_layer+1 as the prefix left it */
    int split_na;
    bool split_dense;
    double split_wall_s;    /* wall time of the prefix call */
    double split_convert_s; /* of it, weight conversion */
    int split_fused_matmuls; /* of it, fused small-m products */
    dk_layer_stats *split_stats; /* (n_layer) stats of layers 0..split_layer from the prefix call */
};

static void dk_ctx_free_scratch(dk_ctx *c) {
    free(c->x); free(c->h); free(c->xa); free(c->xb); free(c->u); free(c->q); free(c->att);
    free(c->hb); free(c->hb2); free(c->active); free(c->next); free(c->pos_a); free(c->probe_slot);
    free(c->probe_act);
    c->x = c->h = c->xa = c->xb = c->u = c->q = c->att = c->hb = c->hb2 = NULL;
    c->active = c->next = c->pos_a = c->probe_slot = c->probe_act = NULL;
    c->cap = 0;
}

static dk_status dk_ctx_reserve(dk_ctx *c, int n, dk_err *e) {
    if (n <= c->cap) return DK_OK;
    const dk_model_config *k = &c->m->cfg;
    size_t r = (size_t)n, d = (size_t)k->n_embd, q = (size_t)k->n_head * k->head_dim, f = (size_t)k->n_ff;
    dk_ctx_free_scratch(c);
    c->x = malloc(r * d * 4); c->h = malloc(r * d * 4); c->xa = malloc(r * d * 4); c->xb = malloc(r * d * 4);
    c->u = malloc(r * d * 4); c->q = malloc(r * q * 4); c->att = malloc(r * q * 4);
    c->hb = malloc(r * f * 4); c->hb2 = malloc(r * f * 4);
    c->active = malloc(r * 4); c->next = malloc(r * 4); c->pos_a = malloc(r * 4);
    c->probe_slot = malloc(r * 4); c->probe_act = malloc(r * 4);
    if (!c->x || !c->h || !c->xa || !c->xb || !c->u || !c->q || !c->att || !c->hb || !c->hb2 || !c->active ||
        !c->next || !c->pos_a || !c->probe_slot || !c->probe_act) {
        dk_ctx_free_scratch(c);
        return dk_fail(e, DK_ERR_NOMEM, "out of memory for a chunk of %d tokens", n);
    }
    c->cap = n;
    return DK_OK;
}

static void dk_ctx_free_attn_scratch(dk_ctx *c) {
    for (int t = 0; t < c->n_scratch; t++) {
        if (c->s) free(c->s[t]);
        if (c->qb) free(c->qb[t]);
        if (c->ob) free(c->ob[t]);
    }
    free(c->s); free(c->qb); free(c->ob);
    c->s = c->qb = c->ob = NULL;
    c->n_scratch = 0;
}

/* Sizes the pool to dk_blas_threads() (read at every prefill: callers change the OpenBLAS thread
 * count at run time) and the per-thread attention scratch to the pool. */
static dk_status dk_ctx_threads(dk_ctx *c, dk_err *e) {
    int want = dk_blas_threads();
    if (want < 1) want = 1;
    if (want > 64) want = 64;
    if (want != c->pool.n) {
        dk_pool_free(&c->pool);
        dk_pool_init(&c->pool, want);
    }
    if (c->n_scratch == c->pool.n) return DK_OK;
    dk_ctx_free_attn_scratch(c);
    const dk_model_config *k = &c->m->cfg;
    int n = c->pool.n, group = k->n_head / k->n_head_kv;
    size_t rows = (size_t)c->qblk * group;
    c->s = calloc((size_t)n, sizeof *c->s);
    c->qb = calloc((size_t)n, sizeof *c->qb);
    c->ob = calloc((size_t)n, sizeof *c->ob);
    c->n_scratch = n;
    bool ok = c->s && c->qb && c->ob;
    for (int t = 0; ok && t < n; t++)
        ok = (c->s[t] = malloc(rows * (size_t)c->n_ctx_max * 4)) && (c->qb[t] = malloc(rows * (size_t)k->head_dim * 4)) &&
             (c->ob[t] = malloc(rows * (size_t)k->head_dim * 4));
    if (!ok) {
        if (!c->s || !c->qb || !c->ob) c->n_scratch = 0;
        dk_ctx_free_attn_scratch(c);
        return dk_fail(e, DK_ERR_NOMEM, "out of memory for attention scratch of %d threads", n);
    }
    return DK_OK;
}

dk_status dk_ctx_create(const dk_model *m, int n_ctx_max, dk_ctx **out, dk_err *e) {
    *out = NULL;
    const dk_model_config *k = &m->cfg;
    if (n_ctx_max <= 0 || n_ctx_max > (1 << 22))
        return dk_fail(e, DK_ERR_ARG, "context size %d out of range (1..%d)", n_ctx_max, 1 << 22);
    dk_ctx *c = calloc(1, sizeof *c);
    if (!c) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    c->m = m;
    c->n_ctx_max = n_ctx_max;
    c->split_layer = -1;
    c->fused = true;
    int group = k->n_head / k->n_head_kv;
    c->qblk = group >= 256 ? 1 : 256 / group;
    size_t kvd = (size_t)k->n_head_kv * k->head_dim, half = (size_t)k->n_rot / 2, nc = (size_t)n_ctx_max;
    bool ok = (c->kv = calloc((size_t)k->n_layer, sizeof *c->kv)) && (c->layer_stats = calloc((size_t)k->n_layer, sizeof *c->layer_stats)) &&
              (c->split_stats = calloc((size_t)k->n_layer, sizeof *c->split_stats)) &&
              (c->rope_cos = malloc(nc * half * 4)) && (c->rope_sin = malloc(nc * half * 4));
    dk_pool_init(&c->pool, 1);
    ok = ok && dk_ctx_threads(c, e) == DK_OK;
    if (ok && m->converts) {
        c->wbuf_n = (size_t)(dk_memory_convert_bytes(k) / 4);
        ok = (c->wbuf = malloc(c->wbuf_n * 4)) != NULL;
    }
    for (int l = 0; ok && l < k->n_layer; l++)
        ok = (c->kv[l].k = malloc(nc * kvd * 4)) && (c->kv[l].v = malloc(nc * kvd * 4)) && (c->kv[l].pos = malloc(nc * 4));
    if (!ok) { dk_ctx_free(c); return dk_fail(e, DK_ERR_NOMEM, "out of memory for a %d-token context", n_ctx_max); }
    /* angle(pos, i) = pos * theta^(-2i/n_rot), in double then rounded once */
    for (size_t p = 0; p < nc; p++)
        for (size_t i = 0; i < half; i++) {
            double a = (double)p * pow((double)k->rope_theta, -2.0 * (double)i / (double)k->n_rot);
            c->rope_cos[p * half + i] = (float)cos(a);
            c->rope_sin[p * half + i] = (float)sin(a);
        }
    c->stats.n_layer = k->n_layer;
    c->stats.layers = c->layer_stats;
    *out = c;
    return DK_OK;
}

void dk_ctx_free(dk_ctx *c) {
    if (!c) return;
    if (c->kv)
        for (int l = 0; l < c->m->cfg.n_layer; l++) { free(c->kv[l].k); free(c->kv[l].v); free(c->kv[l].pos); }
    dk_pool_free(&c->pool);
    dk_ctx_free_attn_scratch(c);
    free(c->kv); free(c->layer_stats); free(c->rope_cos); free(c->rope_sin); free(c->probs); free(c->wbuf); free(c->x_split); free(c->split_active); free(c->split_stats);
    dk_ctx_free_scratch(c);
    free(c);
}

void dk_ctx_reset(dk_ctx *c) {
    c->n_past = 0;
    c->split_layer = -1;
    c->split_pending = false;
    for (int l = 0; l < c->m->cfg.n_layer; l++) c->kv[l].len = 0;
}

dk_status dk_ctx_truncate(dk_ctx *c, int n_past, dk_err *e) {
    if (n_past < 0 || n_past > c->n_past)
        return dk_fail(e, DK_ERR_ARG, "truncate to %d tokens: context holds %d", n_past, c->n_past);
    for (int l = 0; l < c->m->cfg.n_layer; l++)
        while (c->kv[l].len > 0 && c->kv[l].pos[c->kv[l].len - 1] >= n_past) c->kv[l].len--;
    c->n_past = n_past;
    if (c->split_layer >= 0 && (c->split_pending || n_past < c->split_start + c->split_n)) {
        c->split_layer = -1; /* the prefix's cache entries are gone */
        c->split_pending = false;
    }
    return DK_OK;
}

int dk_ctx_split_layer(const dk_ctx *c) { return c->split_layer; }
const float *dk_ctx_split_hidden(const dk_ctx *c) { return c->split_layer >= 0 ? c->x_split : NULL; }
const int32_t *dk_ctx_split_active(const dk_ctx *c, int *n_active) {
    if (n_active) *n_active = c->split_layer >= 0 ? c->split_na : 0;
    return c->split_layer >= 0 ? c->split_active : NULL;
}

void dk_ctx_set_fused_decode(dk_ctx *c, bool on) { c->fused = on; }
bool dk_ctx_fused_decode(const dk_ctx *c) { return c->fused; }

int dk_ctx_n_past(const dk_ctx *c) { return c->n_past; }
int dk_ctx_n_ctx_max(const dk_ctx *c) { return c->n_ctx_max; }
const dk_kv_cache *dk_ctx_cache(const dk_ctx *c, int layer) { return &c->kv[layer]; }
const dk_forward_stats *dk_ctx_stats(const dk_ctx *c) { return &c->stats; }
const dk_model *dk_ctx_model(const dk_ctx *c) { return c->m; }

/* ---- kernels ----
 * Each kernel has a range form (rows or elements [a, b)) and a wrapper that splits the range
 * over the pool. A row's result never depends on the split. */

/* Tasks for n units of work when a task should hold at least min_units: up to 4 per thread. */
static int dk_n_tasks(const dk_ctx *c, size_t n, size_t min_units) {
    if (c->pool.n <= 1 || n < 2 * min_units) return 1;
    size_t t = n / min_units, cap = (size_t)c->pool.n * 4;
    return (int)(t < cap ? t : cap);
}

static size_t dk_task_lo(size_t n, int task, int n_tasks) { return n * (size_t)task / (size_t)n_tasks; }

typedef struct {
    const dk_tensor *w;
    const uint8_t *src;
    float *dst;
    size_t rows;
    int n_tasks;
} dk_dequant_job;

static void dk_dequant_task(void *arg, int t, int tid) {
    (void)tid;
    dk_dequant_job *j = arg;
    size_t a = dk_task_lo(j->rows, t, j->n_tasks), b = dk_task_lo(j->rows, t + 1, j->n_tasks);
    dk_dequantize(j->w->type, j->src + a * j->w->row_bytes, j->dst + a * (size_t)j->w->cols, (b - a) * (size_t)j->w->cols);
}

/* Rows [r0, r0+nr) of W as f32: in place for F32, else converted into wbuf (timed). */
static const float *dk_weight_rows(dk_ctx *c, const dk_tensor *w, int64_t r0, int64_t nr) {
    const uint8_t *src = (const uint8_t *)w->data + (size_t)r0 * w->row_bytes;
    if (w->type == DK_GGML_TYPE_F32) return (const float *)src;
    double t0 = dk_time_now_s();
    dk_dequant_job j = {w, src, c->wbuf, (size_t)nr, dk_n_tasks(c, (size_t)nr, 64)};
    dk_pool_run(&c->pool, j.n_tasks, dk_dequant_task, &j);
    c->stats.convert_s += dk_time_now_s() - t0;
    return c->wbuf;
}

/* ---- fused small-m matmul of a converted matrix ----
 * Y (m, n) = X (m, k) · Wᵀ for m <= DK_FUSED_MAX_M without the whole-matrix f32 copy. W's rows are
 * cut into chunks of dk_fused_rows(k) rows at FIXED row offsets (0, R, 2R, ...); a task converts
 * each chunk of its contiguous run into its slice of wbuf and multiplies it at once, one sgemv per
 * row of X, with OpenBLAS on one thread. A chunk's calls are the same whatever the number of
 * tasks or threads, so results are bit-identical for every thread count; and Y's row i is the
 * same sgemv whatever m is, so a decode step equals the same row of a small chunk bit for bit.
 *
 * Why m <= 8: per weight element the whole-matrix path moves 2 B (F16/BF16; ~1.06 B Q8_0) read +
 * 4 B f32 written + 4 B f32 read again by the sgemm, through memory for any real layer matrix,
 * while the fused path reads the 2 B once and reuses the f32 chunk from L2 for all m rows. That
 * saving is per weight whatever m is; what grows with m is the product itself, where m sgemv calls
 * (each re-reading the chunk from L2) lose to one packed, blocked sgemm as m grows. sgemm on the
 * chunk instead of m sgemv calls was slower at every m tried (2..6; it packs the chunk again). Measured
 * end to end (a chunk of m tokens, qwen2-0.5b shape in BF16, 2 shared cores, fused vs whole-matrix
 * alternately, medians): whole-matrix / fused wall time ~3x at m = 1..4, ~1.4x at 8, ~0.85x at 16
 * and ~0.75x at 32. Decode (m = 1), short question chunks and halting's last few active rows
 * fall below the threshold; prefill chunks never do in practice. */
enum { DK_FUSED_MAX_M = 8 };

/* Rows per chunk for rows of k floats: ~128 KiB of f32 (fits L2 next to the source rows), at
 * least 1 and at most 64 rows; never more than wbuf holds (a layer matrix holds >= 1 row). */
static int dk_fused_rows(const dk_ctx *c, int k) {
    size_t r = (32768 + (size_t)k - 1) / (size_t)k, cap = c->wbuf_n / (size_t)k;
    if (r > 64) r = 64;
    if (r > cap) r = cap;
    return r < 1 ? 1 : (int)r;
}

typedef struct {
    const dk_tensor *w;
    float *y;
    const float *x, *wbuf;
    int m, n, k, rows;     /* rows per chunk */
    int n_chunks, n_tasks;
    bool per_thread;       /* slices indexed by thread (pool fits wbuf), else by task */
    float beta;
} dk_fused_job;

static void dk_fused_task(void *arg, int t, int tid) {
    const dk_fused_job *j = arg;
    int k = j->k, R = j->rows;
    float *buf = (float *)j->wbuf + (size_t)(j->per_thread ? tid : t) * (size_t)R * (size_t)k;
    const uint8_t *src = j->w->data;
    for (size_t ch = dk_task_lo((size_t)j->n_chunks, t, j->n_tasks); ch < dk_task_lo((size_t)j->n_chunks, t + 1, j->n_tasks); ch++) {
        int r0 = (int)ch * R, nb = j->n - r0 < R ? j->n - r0 : R;
        dk_dequantize(j->w->type, src + (size_t)r0 * j->w->row_bytes, buf, (size_t)nb * (size_t)k);
        for (int i = 0; i < j->m; i++)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, nb, k, 1.0f, buf, k, j->x + (size_t)i * k, 1, j->beta, j->y + (size_t)i * j->n + r0, 1);
    }
}

/* The fused path applies: converted weights, few rows, enabled. */
static bool dk_use_fused(const dk_ctx *c, const dk_tensor *w, int m) {
    return c->fused && w->type != DK_GGML_TYPE_F32 && m <= DK_FUSED_MAX_M && c->wbuf;
}

/* Rows 0..n-1 of W (n, k) against X (m, k), Y row stride n. The conversion is interleaved with
 * the products chunk by chunk, so its time is counted in the matmul time, not in convert_s. */
static void dk_matmul_fused(dk_ctx *c, float *y, const float *x, const dk_tensor *w, int m, int n, int k, float beta) {
    int R = dk_fused_rows(c, k), n_chunks = (n + R - 1) / R;
    int slices = (int)(c->wbuf_n / ((size_t)R * (size_t)k));
    int n_tasks = dk_n_tasks(c, (size_t)n_chunks, 1);
    bool per_thread = c->pool.n <= slices;
    if (!per_thread && n_tasks > slices) n_tasks = slices;
    dk_fused_job j = {w, y, x, c->wbuf, m, n, k, R, n_chunks, n_tasks, per_thread, beta};
    /* one OpenBLAS thread per chunk call while the pool runs tasks side by side (process-wide
     * setting, restored after the job as in dk_attention) */
    int bt = openblas_get_num_threads();
    if (bt > 1) openblas_set_num_threads(1);
    dk_pool_run(&c->pool, n_tasks, dk_fused_task, &j);
    if (bt > 1) openblas_set_num_threads(bt);
    c->stats.fused_matmuls++;
}

/* Y (m, n) = X (m, k) · Wᵀ, W (n, k) row-major; beta 1 accumulates into Y. W is one layer
 * matrix (n*k <= wbuf_n when it is converted). */
static void dk_matmul(dk_ctx *c, float *y, const float *x, const dk_tensor *w, int m, int n, int k, float beta, int64_t *flops) {
    if (dk_use_fused(c, w, m)) {
        dk_matmul_fused(c, y, x, w, m, n, k, beta);
        *flops += 2 * (int64_t)m * n * k;
        return;
    }
    const float *wf = dk_weight_rows(c, w, 0, n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, wf, k, beta, y, n);
    *flops += 2 * (int64_t)m * n * k;
}

/* logits (m, n_vocab) = X (m, d) · Wᵀ for the lm head: one sgemm for F32, else one per block of
 * wbuf_n / d rows converted in turn (the head of a 7B model is ~2 GB in f32), or, for m <=
 * DK_FUSED_MAX_M, the fused chunked path over all n_vocab rows. */
static void dk_lm_head(dk_ctx *c, float *logits, const float *x, int m, int64_t *flops) {
    const dk_tensor *w = &c->m->w.output;
    int n = (int)w->rows, k = (int)w->cols;
    if (dk_use_fused(c, w, m)) {
        dk_matmul_fused(c, logits, x, w, m, n, k, 0.0f);
        *flops += 2 * (int64_t)m * n * k;
        return;
    }
    /* the same row blocks for every file type: an F32 file then runs the very same sgemm calls as
     * a converted one (OpenBLAS's result for a column may depend on the call's n) */
    int blk = (int)((size_t)(dk_memory_convert_bytes(&c->m->cfg) / 4) / (size_t)k);
    if (blk < 1 || blk > n) blk = n;
    for (int r0 = 0; r0 < n; r0 += blk) {
        int nb = n - r0 < blk ? n - r0 : blk;
        const float *wf = dk_weight_rows(c, w, r0, nb);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, nb, k, 1.0f, x, k, wf, k, 0.0f, logits + r0, n);
    }
    *flops += 2 * (int64_t)m * n * k;
}

typedef struct {
    float *out;
    const float *x, *w;
    int rows, d, n_tasks;
    float eps;
} dk_rmsnorm_job;

static void dk_rmsnorm_task(void *arg, int t, int tid) {
    (void)tid;
    const dk_rmsnorm_job *j = arg;
    int d = j->d;
    for (size_t r = dk_task_lo((size_t)j->rows, t, j->n_tasks); r < dk_task_lo((size_t)j->rows, t + 1, j->n_tasks); r++) {
        const float *xr = j->x + r * d, *w = j->w;
        float *o = j->out + r * d;
        float ss = 0.0f;
        for (int i = 0; i < d; i++) ss += xr[i] * xr[i];
        ss = 1.0f / sqrtf(ss / (float)d + j->eps);
        for (int i = 0; i < d; i++) o[i] = w[i] * (ss * xr[i]);
    }
}

static void dk_rmsnorm(dk_ctx *c, float *out, const float *x, const float *w, int rows, int d, float eps) {
    dk_rmsnorm_job j = {out, x, w, rows, d, dk_n_tasks(c, (size_t)rows, 4), eps};
    dk_pool_run(&c->pool, j.n_tasks, dk_rmsnorm_task, &j);
}

#if defined(__AVX2__) && defined(__FMA__)
/* exp(x) for 8 lanes: x = n·ln2 + r, |r| <= ln2/2, degree-6 polynomial (Cephes expf), 2^n via the
 * exponent bits. Relative error ~2 ulp; inputs below -87.3 give ~0, above 88.3 saturate. */
static inline __m256 dk_exp256(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}
#endif

/* x[i] = exp(x[i] - mx); returns the sum. */
static float dk_exp_sum(float *x, int n, float mx) {
    int i = 0;
    float sum = 0.0f;
#if defined(__AVX2__) && defined(__FMA__)
    __m256 vs = _mm256_setzero_ps(), vm = _mm256_set1_ps(mx);
    for (; i + 8 <= n; i += 8) {
        __m256 v = dk_exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, v);
        vs = _mm256_add_ps(vs, v);
    }
    float t[8];
    _mm256_storeu_ps(t, vs);
    for (int j = 0; j < 8; j++) sum += t[j];
#endif
    for (; i < n; i++) { x[i] = expf(x[i] - mx); sum += x[i]; }
    return sum;
}

/* softmax over x[0..lim), zeros in x[lim..len) (masked, causal). The max and the scaling are
 * order-independent, so the vector and scalar paths give the same bits. */
static void dk_softmax_masked(float *x, int lim, int len) {
    float mx = x[0];
    int i = 0;
#if defined(__AVX2__) && defined(__FMA__)
    if (lim >= 8) {
        __m256 vm = _mm256_loadu_ps(x);
        for (i = 8; i + 8 <= lim; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + i));
        float t[8];
        _mm256_storeu_ps(t, vm);
        for (int j = 0; j < 8; j++) mx = t[j] > mx ? t[j] : mx;
    }
#endif
    for (; i < lim; i++) mx = x[i] > mx ? x[i] : mx;
    float inv = 1.0f / dk_exp_sum(x, lim, mx);
    i = 0;
#if defined(__AVX2__) && defined(__FMA__)
    __m256 vi = _mm256_set1_ps(inv);
    for (; i + 8 <= lim; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vi));
#endif
    for (; i < lim; i++) x[i] *= inv;
    if (len > lim) memset(x + lim, 0, (size_t)(len - lim) * sizeof *x);
}

/* g = silu(g) * u over elements [i, n): the vector path covers whole groups of 8 from i, so a
 * split at multiples of 8 computes every element as the unsplit loop does. */
static void dk_silu_mul_range(float *g, const float *u, size_t i, size_t n) {
#if defined(__AVX2__) && defined(__FMA__)
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(g + i);
        __m256 s = _mm256_div_ps(v, _mm256_add_ps(one, dk_exp256(_mm256_sub_ps(zero, v))));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
#endif
    for (; i < n; i++) g[i] = g[i] * (1.0f / (1.0f + expf(-g[i]))) * u[i];
}

typedef struct {
    float *a;
    const float *b, *c;
    size_t n;
    int n_tasks;
} dk_elem_job;

static void dk_silu_mul_task(void *arg, int t, int tid) {
    (void)tid;
    const dk_elem_job *j = arg;
    size_t groups = j->n / 8, lo = 8 * dk_task_lo(groups, t, j->n_tasks);
    size_t hi = t + 1 == j->n_tasks ? j->n : 8 * dk_task_lo(groups, t + 1, j->n_tasks);
    dk_silu_mul_range(j->a, j->b, lo, hi);
}

static void dk_silu_mul(dk_ctx *c, float *g, const float *u, size_t n) {
    dk_elem_job j = {g, u, NULL, n, dk_n_tasks(c, n / 8, 2048)};
    dk_pool_run(&c->pool, j.n_tasks, dk_silu_mul_task, &j);
}

/* a = b + c elementwise */
static void dk_add_task(void *arg, int t, int tid) {
    (void)tid;
    const dk_elem_job *j = arg;
    for (size_t i = dk_task_lo(j->n, t, j->n_tasks); i < dk_task_lo(j->n, t + 1, j->n_tasks); i++) j->a[i] = j->b[i] + j->c[i];
}

static void dk_add(dk_ctx *c, float *a, const float *b, const float *x, size_t n) {
    dk_elem_job j = {a, b, x, n, dk_n_tasks(c, n, 16384)};
    dk_pool_run(&c->pool, j.n_tasks, dk_add_task, &j);
}

/* Rotates the first n_rot dims of each of n_heads heads of one row at position pos. */
static void dk_rope_row(const dk_ctx *c, float *row, int n_heads, int pos) {
    const dk_model_config *k = &c->m->cfg;
    int half = k->n_rot / 2;
    const float *cs = c->rope_cos + (size_t)pos * half, *sn = c->rope_sin + (size_t)pos * half;
    for (int h = 0; h < n_heads; h++) {
        float *x = row + (size_t)h * k->head_dim;
        if (k->rope_type == DK_ROPE_TYPE_NORM) {
            for (int i = 0; i < half; i++) {
                float a = x[2 * i], b = x[2 * i + 1];
                x[2 * i] = a * cs[i] - b * sn[i];
                x[2 * i + 1] = a * sn[i] + b * cs[i];
            }
        } else {
            for (int i = 0; i < half; i++) {
                float a = x[i], b = x[i + half];
                x[i] = a * cs[i] - b * sn[i];
                x[i + half] = a * sn[i] + b * cs[i];
            }
        }
    }
}

static void dk_add_bias_row(float *y, const float *b, int n) {
    for (int i = 0; i < n; i++) y[i] += b[i];
}

/* Per active row i: biases of q, k, v (when the model has them), RoPE of q and k at pos_a[i], and
 * the cache entry's position. */
typedef struct {
    dk_ctx *c;
    const dk_layer_weights *w;
    float *kdst, *vdst;
    int32_t *kv_pos;
    int na, n_tasks;
} dk_qkv_job;

static void dk_qkv_post_task(void *arg, int t, int tid) {
    (void)tid;
    const dk_qkv_job *j = arg;
    const dk_model_config *k = &j->c->m->cfg;
    size_t qd = (size_t)k->n_head * k->head_dim, kvd = (size_t)k->n_head_kv * k->head_dim;
    for (size_t i = dk_task_lo((size_t)j->na, t, j->n_tasks); i < dk_task_lo((size_t)j->na, t + 1, j->n_tasks); i++) {
        float *q = j->c->q + i * qd, *kr = j->kdst + i * kvd, *vr = j->vdst + i * kvd;
        if (j->w->bq) {
            dk_add_bias_row(q, j->w->bq, (int)qd);
            dk_add_bias_row(kr, j->w->bk, (int)kvd);
            dk_add_bias_row(vr, j->w->bv, (int)kvd);
        }
        dk_rope_row(j->c, q, k->n_head, j->c->pos_a[i]);
        dk_rope_row(j->c, kr, k->n_head_kv, j->c->pos_a[i]);
        j->kv_pos[i] = j->c->pos_a[i];
    }
}

/* Copies rows: dst[dst_idx ? dst_idx[i] : i] = src[src_idx ? src_idx[i] : i], rows of d floats. */
typedef struct {
    float *dst;
    const float *src;
    const int32_t *dst_idx, *src_idx;
    int rows, d, n_tasks;
} dk_copy_job;

static void dk_copy_rows_task(void *arg, int t, int tid) {
    (void)tid;
    const dk_copy_job *j = arg;
    size_t d = (size_t)j->d;
    for (size_t i = dk_task_lo((size_t)j->rows, t, j->n_tasks); i < dk_task_lo((size_t)j->rows, t + 1, j->n_tasks); i++) {
        size_t di = j->dst_idx ? (size_t)j->dst_idx[i] : i, si = j->src_idx ? (size_t)j->src_idx[i] : i;
        memcpy(j->dst + di * d, j->src + si * d, d * 4);
    }
}

static void dk_copy_rows(dk_ctx *c, float *dst, const int32_t *dst_idx, const float *src, const int32_t *src_idx, int rows, int d) {
    dk_copy_job j = {dst, src, dst_idx, src_idx, rows, d, dk_n_tasks(c, (size_t)rows, 16)};
    dk_pool_run(&c->pool, j.n_tasks, dk_copy_rows_task, &j);
}

/* ---- attention ----
 * Query rows 0..na-1 of this chunk sit at cache entries L0..L0+na-1; row i sees entries [0, L0+i].
 * For KV head h and a block of query rows [r0, r1): S (nb*group, L0+r1) = Qblk·Kᵀ·(1/√hd), causal
 * softmax per row, O = P·V. Rows of the stacked block are (row i, head j of the group). */
typedef struct {
    dk_ctx *c;
    const dk_kv_cache *kv;
    int na, L0, n_blk, n_probe;
    bool capture;
} dk_attn_job;

/* Tile t: the largest (latest) query blocks first, for balance; KV head fastest. */
static void dk_attn_tile(void *arg, int t, int tid) {
    const dk_attn_job *jb = arg;
    dk_ctx *c = jb->c;
    const dk_model_config *k = &c->m->cfg;
    const dk_kv_cache *kv = jb->kv;
    int hd = k->head_dim, g = k->n_head / k->n_head_kv, qd = k->n_head * hd, kvd = k->n_head_kv * hd;
    int na = jb->na, L0 = jb->L0, kv_len = L0 + na, n_probe = jb->n_probe;
    int h = t % k->n_head_kv, r0 = (jb->n_blk - 1 - t / k->n_head_kv) * c->qblk;
    float scale = 1.0f / sqrtf((float)hd);
    float *qb = c->qb[tid], *sb = c->s[tid], *ob = c->ob[tid];
    int r1 = r0 + c->qblk < na ? r0 + c->qblk : na, nb = r1 - r0, M = nb * g, kvl = L0 + r1;
    for (int i = 0; i < nb; i++)
        memcpy(qb + (size_t)i * g * hd, c->q + (size_t)(r0 + i) * qd + (size_t)h * g * hd, (size_t)g * hd * 4);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, kvl, hd, scale, qb, hd, kv->k + (size_t)h * hd, kvd, 0.0f, sb, kvl);
    for (int i = 0; i < nb; i++) {
        int lim = L0 + r0 + i + 1;
        for (int j = 0; j < g; j++) {
            float *srow = sb + (size_t)(i * g + j) * kvl;
            dk_softmax_masked(srow, lim, kvl);
            if (jb->capture && c->probe_slot[r0 + i] >= 0) {
                float *dst = c->probs + ((size_t)(h * g + j) * n_probe + c->probe_slot[r0 + i]) * kv_len;
                memcpy(dst, srow, (size_t)kvl * 4);
                memset(dst + kvl, 0, (size_t)(kv_len - kvl) * 4);
            }
        }
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, hd, kvl, 1.0f, sb, kvl, kv->v + (size_t)h * hd, kvd, 0.0f, ob, hd);
    for (int i = 0; i < nb; i++)
        memcpy(c->att + (size_t)(r0 + i) * qd + (size_t)h * g * hd, ob + (size_t)i * g * hd, (size_t)g * hd * 4);
}

static void dk_attention(dk_ctx *c, int l, int na, int L0, bool capture, int n_probe, dk_flops *fl) {
    const dk_model_config *k = &c->m->cfg;
    int hd = k->head_dim, g = k->n_head / k->n_head_kv;
    int n_blk = (na + c->qblk - 1) / c->qblk, n_tiles = n_blk * k->n_head_kv;
    dk_attn_job jb = {c, &c->kv[l], na, L0, n_blk, n_probe, capture};
    /* one OpenBLAS thread per tile while the pool runs tiles side by side (the setting is
     * process-wide in OpenBLAS 0.3.21, so it is set here, between the pool's jobs) */
    int bt = openblas_get_num_threads();
    bool par = c->pool.n > 1 && n_tiles > 1;
    if (par && bt > 1) openblas_set_num_threads(1);
    dk_pool_run(&c->pool, par ? n_tiles : 1, dk_attn_tile, &jb);
    if (!par) for (int t = 1; t < n_tiles; t++) dk_attn_tile(&jb, t, 0);
    if (par && bt > 1) openblas_set_num_threads(bt);
    /* FLOPs as executed by the tiles */
    for (int r0 = 0; r0 < na; r0 += c->qblk) {
        int r1 = r0 + c->qblk < na ? r0 + c->qblk : na, M = (r1 - r0) * g, kvl = L0 + r1;
        fl->c[DK_FLOPS_ATTN] += (int64_t)k->n_head_kv * 4 * (int64_t)M * kvl * hd;
        for (int i = r0; i < r1; i++) fl->c[DK_FLOPS_SOFTMAX] += (int64_t)k->n_head_kv * g * (5 * (int64_t)(L0 + i + 1) + 1);
    }
}

/* ---- one transformer block on the active rows ---- */

static dk_status dk_call_hook(dk_ctx *c, const dk_prefill_opts *o, dk_hook_point pt, dk_layer_view *v, int *n_next, dk_err *e) {
    if (!o || !o->hook) return DK_OK;
    dk_status st = o->hook(o->hook_user, pt, v, c->next, n_next, e);
    if (st) return st;
    if (*n_next < 0 || *n_next > v->n_tokens)
        return dk_fail(e, DK_ERR_ARG, "layer %d: hook returned an active set of %d rows for a %d-token chunk", v->layer, *n_next, v->n_tokens);
    for (int i = 0; i < *n_next; i++)
        if (c->next[i] < 0 || c->next[i] >= v->n_tokens || (i > 0 && c->next[i] <= c->next[i - 1]))
            return dk_fail(e, DK_ERR_ARG, "layer %d: hook's active set is not sorted, unique and within 0..%d (entry %d = %d)",
                           v->layer, v->n_tokens - 1, i, c->next[i]);
    return DK_OK;
}

static dk_status dk_layer_forward(dk_ctx *c, int l, const float *xin, float *hout, int na, int n,
                                  const dk_prefill_opts *o, int *n_next, dk_flops *fl, dk_err *e) {
    const dk_model_config *k = &c->m->cfg;
    const dk_layer_weights *w = &c->m->w.layers[l];
    dk_kv_cache *kv = &c->kv[l];
    int d = k->n_embd, hd = k->head_dim, qd = k->n_head * hd, kvd = k->n_head_kv * hd, f = k->n_ff;
    int L0 = kv->len;
    dk_status st;

    /* attention sub-layer */
    dk_rmsnorm(c, c->xb, xin, w->attn_norm, na, d, k->rms_eps);
    fl->c[DK_FLOPS_NORM] += 4 * (int64_t)na * d;
    float *kdst = kv->k + (size_t)L0 * kvd, *vdst = kv->v + (size_t)L0 * kvd;
    dk_matmul(c, c->q, c->xb, &w->wq, na, qd, d, 0.0f, &fl->c[DK_FLOPS_QKV]);
    dk_matmul(c, kdst, c->xb, &w->wk, na, kvd, d, 0.0f, &fl->c[DK_FLOPS_QKV]);
    dk_matmul(c, vdst, c->xb, &w->wv, na, kvd, d, 0.0f, &fl->c[DK_FLOPS_QKV]);
    dk_qkv_job qj = {c, w, kdst, vdst, kv->pos + L0, na, dk_n_tasks(c, (size_t)na, 4)};
    dk_pool_run(&c->pool, qj.n_tasks, dk_qkv_post_task, &qj);
    if (w->bq) fl->c[DK_FLOPS_QKV] += (int64_t)na * (qd + 2 * kvd);
    fl->c[DK_FLOPS_ROPE] += 6 * (int64_t)na * (k->n_head + k->n_head_kv) * (k->n_rot / 2);
    kv->len = L0 + na;

    /* probe rows active at this layer */
    bool capture = o && o->hook && o->probe_layers && o->probe_layers[l] && o->n_probe > 0;
    int n_probe = 0;
    if (capture) {
        for (int i = 0; i < na; i++) c->probe_slot[i] = -1;
        for (int p = 0; p < o->n_probe; p++) {
            int32_t r = o->probe_rows[p];
            int lo = 0, hi = na - 1; /* active rows are sorted: binary search */
            while (lo <= hi) {
                int mid = (lo + hi) / 2, a = c->active[mid];
                if (a == r) { if (c->probe_slot[mid] < 0) { c->probe_slot[mid] = n_probe; c->probe_act[n_probe++] = r; } break; }
                if (a < r) lo = mid + 1; else hi = mid - 1;
            }
        }
        /* probe slots must follow active order for probe_act to be sorted consistently */
        n_probe = 0;
        for (int i = 0; i < na; i++) if (c->probe_slot[i] >= 0) { c->probe_slot[i] = n_probe; c->probe_act[n_probe++] = c->active[i]; }
        size_t need = (size_t)k->n_head * (size_t)n_probe * (size_t)kv->len;
        if (need > (size_t)c->probs_cap) {
            float *p = realloc(c->probs, need * 4);
            if (!p) return dk_fail(e, DK_ERR_NOMEM, "out of memory for attention probabilities");
            c->probs = p;
            c->probs_cap = (int)need;
        }
        capture = n_probe > 0;
    }
    dk_attention(c, l, na, L0, capture, n_probe, fl);
    dk_matmul(c, c->u, c->att, &w->wo, na, d, qd, 0.0f, &fl->c[DK_FLOPS_O]);

    dk_layer_view v = {.layer = l, .n_tokens = n, .n_past = c->n_past, .n_active = na, .active = c->active,
                       .n_embd = d, .x_in = xin, .u = c->u, .n_probe = capture ? n_probe : 0,
                       .probe_rows = capture ? c->probe_act : NULL, .n_head = k->n_head, .kv_len = kv->len,
                       .kv_pos = kv->pos, .probs = capture ? c->probs : NULL, .flops = fl};
    if ((st = dk_call_hook(c, o, DK_HOOK_AFTER_ATTN, &v, n_next, e))) return st;

    /* residual, then the FFN sub-layer accumulating into the residual */
    dk_add(c, hout, xin, c->u, (size_t)na * d);
    fl->c[DK_FLOPS_NORM] += (int64_t)na * d;
    dk_rmsnorm(c, c->xb, hout, w->ffn_norm, na, d, k->rms_eps);
    fl->c[DK_FLOPS_NORM] += 4 * (int64_t)na * d;
    dk_matmul(c, c->hb, c->xb, &w->w_gate, na, f, d, 0.0f, &fl->c[DK_FLOPS_FFN]);
    dk_matmul(c, c->hb2, c->xb, &w->w_up, na, f, d, 0.0f, &fl->c[DK_FLOPS_FFN]);
    dk_silu_mul(c, c->hb, c->hb2, (size_t)na * f);
    fl->c[DK_FLOPS_FFN] += 5 * (int64_t)na * f;
    dk_matmul(c, hout, c->hb, &w->w_down, na, d, f, 1.0f, &fl->c[DK_FLOPS_FFN]);
    fl->c[DK_FLOPS_NORM] += (int64_t)na * d; /* residual add inside the GEMM (beta = 1) */

    v.u = NULL;
    v.x_out = hout;
    v.n_probe = 0; v.probe_rows = NULL; v.probs = NULL;
    return dk_call_hook(c, o, DK_HOOK_AFTER_LAYER, &v, n_next, e);
}

/* ---- prefill ---- */

static dk_status dk_check_set(const int32_t *a, int na, int n, const char *what, dk_err *e) {
    if (na < 0 || na > n) return dk_fail(e, DK_ERR_ARG, "%s: %d rows for a %d-token chunk", what, na, n);
    for (int i = 0; i < na; i++)
        if (a[i] < 0 || a[i] >= n || (i > 0 && a[i] <= a[i - 1]))
            return dk_fail(e, DK_ERR_ARG, "%s is not sorted, unique and within 0..%d (entry %d = %d)", what, n - 1, i, a[i]);
    return DK_OK;
}

/* Validates a chunk and its sets, reserves scratch, clears the stats of layers l0.. . */
static dk_status dk_prefill_begin(dk_ctx *c, const int32_t *tokens, int n, int l0, const dk_prefill_opts *o, dk_err *e) {
    const dk_model_config *k = &c->m->cfg;
    dk_status st;
    if (n <= 0) return dk_fail(e, DK_ERR_ARG, "prefill of %d tokens", n);
    if (c->n_past + n > c->n_ctx_max)
        return dk_fail(e, DK_ERR_STATE, "context full: %d cached + %d new tokens > n_ctx_max %d", c->n_past, n, c->n_ctx_max);
    for (int i = 0; tokens && i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= k->n_vocab)
            return dk_fail(e, DK_ERR_ARG, "token id %d at index %d out of range 0..%d", tokens[i], i, k->n_vocab - 1);
    if (o && o->active && (st = dk_check_set(o->active, o->n_active, n, "initial active set", e))) return st;
    if (o && o->probe_rows && (st = dk_check_set(o->probe_rows, o->n_probe, n, "probe rows", e))) return st;
    if ((st = dk_ctx_reserve(c, n, e)) || (st = dk_ctx_threads(c, e))) return st;
    memset(&c->stats.head, 0, sizeof c->stats.head);
    memset(&c->stats.total, 0, sizeof c->stats.total);
    memset(c->layer_stats + l0, 0, (size_t)(k->n_layer - l0) * sizeof *c->layer_stats);
    c->stats.n_tokens = n;
    c->stats.prefix_wall_s = 0;
    c->stats.convert_s = 0;
    c->stats.fused_matmuls = 0;
    return DK_OK;
}

/* Sets the active set of the next layer: o->active or, when NULL, keeps the current one. A set
 * equal to the current one keeps the dense (no-gather) path, as a hook returning it would. */
static void dk_set_active(dk_ctx *c, const dk_prefill_opts *o) {
    if (!(o && o->active)) return;
    if (o->n_active == c->na && memcmp(o->active, c->active, (size_t)c->na * 4) == 0) return;
    c->dense = false;
    c->na = o->n_active;
    memcpy(c->active, o->active, (size_t)c->na * 4);
}

/* Layers l0..l1 on the chunk X (c->x, c->active, c->na, c->dense). On error, the caches of
 * layers l0..l1 are as before the call. */
static dk_status dk_run_layers(dk_ctx *c, int n, int l0, int l1, const dk_prefill_opts *o, dk_err *e) {
    int d = c->m->cfg.n_embd;
    dk_status st;
    for (int l = l0; l <= l1; l++) {
        double t0 = dk_time_now_s();
        dk_flops *fl = &c->layer_stats[l].flops;
        int na = c->na;
        for (int i = 0; i < na; i++) c->pos_a[i] = c->n_past + c->active[i];
        memcpy(c->next, c->active, (size_t)na * 4);
        int n_next = na;
        if (na > 0) {
            const float *xin = c->x;
            if (!c->dense) {
                dk_copy_rows(c, c->xa, NULL, c->x, c->active, na, d);
                xin = c->xa;
            }
            if ((st = dk_layer_forward(c, l, xin, c->h, na, n, o, &n_next, fl, e))) {
                c->kv[l].len -= na;
                for (int j = l0; j < l; j++) c->kv[j].len -= c->layer_stats[j].n_active;
                return st;
            }
            if (c->dense) { float *t = c->x; c->x = c->h; c->h = t; }
            else dk_copy_rows(c, c->x, c->active, c->h, NULL, na, d);
        }
        c->layer_stats[l].n_active = na;
        c->layer_stats[l].kv_len = c->kv[l].len;
        /* decision point: the hook's set takes effect from the next layer on */
        if (n_next != na || memcmp(c->next, c->active, (size_t)na * 4) != 0) {
            c->dense = false;
            c->na = n_next;
            memcpy(c->active, c->next, (size_t)n_next * 4);
        }
        c->layer_stats[l].wall_s = dk_time_now_s() - t0;
    }
    return DK_OK;
}

/* Final norm and lm head for the rows asked (the last, or all), totals, n_past. */
static void dk_prefill_end(dk_ctx *c, int n, const dk_prefill_opts *o, float *logits, double t_start) {
    const dk_model *m = c->m;
    const dk_model_config *k = &m->cfg;
    int d = k->n_embd;
    c->n_past += n;
    if (o && o->hidden_out) memcpy(o->hidden_out, c->x, (size_t)n * d * 4);
    if (logits) {
        int rows = (o && o->all_logits) ? n : 1;
        const float *src = c->x + (size_t)(n - rows) * d;
        dk_rmsnorm(c, c->xb, src, m->w.output_norm, rows, d, k->rms_eps);
        c->stats.head.c[DK_FLOPS_NORM] += 4 * (int64_t)rows * d;
        dk_lm_head(c, logits, c->xb, rows, &c->stats.head.c[DK_FLOPS_LM_HEAD]);
    }
    for (int l = 0; l < k->n_layer; l++) dk_flops_add(&c->stats.total, &c->layer_stats[l].flops);
    dk_flops_add(&c->stats.total, &c->stats.head);
    c->stats.wall_s = dk_time_now_s() - t_start + c->stats.prefix_wall_s;
}

static dk_status dk_refuse_pending(const dk_ctx *c, dk_err *e) {
    return c->split_pending ? dk_fail(e, DK_ERR_STATE, "a split prefill (layers 0..%d) is pending: run dk_forward_prefill_suffix first",
                                      c->split_layer)
                            : DK_OK;
}

/* X = token embeddings, active set from the options (all rows when none). */
static void dk_prefill_embed(dk_ctx *c, const int32_t *tokens, int n, const dk_prefill_opts *o) {
    int d = c->m->cfg.n_embd;
    const dk_tensor *te = &c->m->w.tok_embd;
    double t0 = dk_time_now_s();
    for (int i = 0; i < n; i++) dk_tensor_row_f32(te, tokens[i], c->x + (size_t)i * d);
    if (te->type != DK_GGML_TYPE_F32) c->stats.convert_s += dk_time_now_s() - t0;
    c->dense = true;
    c->na = n;
    for (int i = 0; i < n; i++) c->active[i] = i;
    if (o && o->active) { c->dense = false; c->na = o->n_active; memcpy(c->active, o->active, (size_t)c->na * 4); }
}

dk_status dk_forward_prefill(dk_ctx *c, const int32_t *tokens, int n, const dk_prefill_opts *o, float *logits, dk_err *e) {
    double t_start = dk_time_now_s();
    dk_status st;
    if ((st = dk_refuse_pending(c, e)) || (st = dk_prefill_begin(c, tokens, n, 0, o, e))) return st;
    dk_prefill_embed(c, tokens, n, o);
    if ((st = dk_run_layers(c, n, 0, c->m->cfg.n_layer - 1, o, e))) return st;
    dk_prefill_end(c, n, o, logits, t_start);
    return DK_OK;
}

dk_status dk_forward_prefill_prefix(dk_ctx *c, const int32_t *tokens, int n, int last_layer, const dk_prefill_opts *o,
                                    dk_err *e) {
    double t_start = dk_time_now_s();
    int L = c->m->cfg.n_layer, d = c->m->cfg.n_embd;
    dk_status st;
    if (last_layer < 0 || last_layer >= L)
        return dk_fail(e, DK_ERR_ARG, "split prefill: last layer %d out of range 0..%d", last_layer, L - 1);
    if ((st = dk_refuse_pending(c, e)) || (st = dk_prefill_begin(c, tokens, n, 0, o, e))) return st;
    if (n > c->split_cap) {
        float *x = realloc(c->x_split, (size_t)n * d * 4);
        if (x) c->x_split = x;
        int32_t *a = realloc(c->split_active, (size_t)n * 4);
        if (a) c->split_active = a;
        if (!x || !a) { c->split_layer = -1; return dk_fail(e, DK_ERR_NOMEM, "out of memory for a split prefill of %d tokens", n); }
        c->split_cap = n;
    }
    c->split_layer = -1;
    dk_prefill_embed(c, tokens, n, o);
    if ((st = dk_run_layers(c, n, 0, last_layer, o, e))) return st;
    memcpy(c->x_split, c->x, (size_t)n * d * 4);
    memcpy(c->split_active, c->active, (size_t)c->na * 4);
    c->split_na = c->na;
    c->split_dense = c->dense;
    c->split_layer = last_layer;
    c->split_pending = true;
    c->split_n = n;
    c->split_start = c->n_past;
    c->stats.total = (dk_flops){{0}};
    for (int l = 0; l <= last_layer; l++) dk_flops_add(&c->stats.total, &c->layer_stats[l].flops);
    memcpy(c->split_stats, c->layer_stats, (size_t)(last_layer + 1) * sizeof *c->split_stats);
    c->split_wall_s = c->stats.wall_s = dk_time_now_s() - t_start;
    c->split_convert_s = c->stats.convert_s;
    c->split_fused_matmuls = c->stats.fused_matmuls;
    return DK_OK;
}

dk_status dk_forward_prefill_suffix(dk_ctx *c, const dk_prefill_opts *o, float *logits, dk_err *e) {
    double t_start = dk_time_now_s();
    int L = c->m->cfg.n_layer, d = c->m->cfg.n_embd, ls = c->split_layer, n = c->split_n;
    dk_status st;
    if (ls < 0) return dk_fail(e, DK_ERR_STATE, "split prefill: no prefix to continue (run dk_forward_prefill_prefix first)");
    if (o && o->active && (st = dk_check_set(o->active, o->n_active, n, "active set after the split layer", e))) return st;
    /* back to the end of the prefix: layers <= ls keep the chunk, later layers end before it */
    for (int l = 0; l < L; l++) {
        int32_t lim = c->split_start + (l <= ls ? n : 0);
        while (c->kv[l].len > 0 && c->kv[l].pos[c->kv[l].len - 1] >= lim) c->kv[l].len--;
    }
    c->n_past = c->split_start;
    if ((st = dk_prefill_begin(c, NULL, n, ls + 1, o, e))) return st;
    memcpy(c->layer_stats, c->split_stats, (size_t)(ls + 1) * sizeof *c->layer_stats);
    c->stats.convert_s = c->split_convert_s;
    c->stats.fused_matmuls = c->split_fused_matmuls;
    memcpy(c->x, c->x_split, (size_t)n * d * 4);
    memcpy(c->active, c->split_active, (size_t)c->split_na * 4);
    c->na = c->split_na;
    c->dense = c->split_dense;
    dk_set_active(c, o);
    c->split_pending = true;
    if ((st = dk_run_layers(c, n, ls + 1, L - 1, o, e))) return st;
    c->split_pending = false;
    c->stats.prefix_wall_s = c->split_wall_s;
    dk_prefill_end(c, n, o, logits, t_start);
    return DK_OK;
}

dk_status dk_forward_decode(dk_ctx *c, int32_t token, float *logits, dk_err *e) {
    return dk_forward_prefill(c, &token, 1, NULL, logits, e);
}

int dk_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[best]) best = i;
    return best;
}

/* ---- greedy generation ---- */

dk_status dk_generate_greedy(dk_ctx *c, const int32_t *prompt, int n_prompt, int max_steps, int32_t stop_token,
                             int32_t *out, int *n_out, dk_err *e) {
    *n_out = 0;
    if (n_prompt <= 0) return dk_fail(e, DK_ERR_ARG, "generation needs at least one prompt token (e.g. BOS)");
    if (max_steps <= 0) return DK_OK;
    int nv = c->m->cfg.n_vocab;
    float *logits = malloc((size_t)nv * sizeof *logits);
    if (!logits) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    /* positions 0..n_feed-1 of the prompt in one chunk; the prompt tokens after the first are
     * "generated" by those steps, as in run.c */
    int n_feed = n_prompt < max_steps ? n_prompt : max_steps;
    dk_status st = dk_forward_prefill(c, prompt, n_feed, NULL, logits, e);
    int pos = n_feed;
    for (int i = 1; i < n_feed; i++) out[(*n_out)++] = prompt[i];
    if (!st && n_feed == n_prompt) {
        int32_t next = dk_argmax(logits, nv);
        while (next != stop_token) {
            out[(*n_out)++] = next;
            if (pos >= max_steps) break;
            if ((st = dk_forward_decode(c, next, logits, e))) break;
            pos++;
            next = dk_argmax(logits, nv);
        }
    } else if (!st && n_feed < n_prompt) {
        out[(*n_out)++] = prompt[n_feed];
    }
    free(logits);
    return st;
}
