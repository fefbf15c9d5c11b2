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
 * The pieces live beside it: the products with the weights in matmul.c (conversion of F16/BF16/
 * quantised matrices to f32, the fused small-m decode path, the bf16 backend), norms/softmax/
 * SiLU/adds/row copies in ops.c, the thread pool in pool.c, the context's life in ctx.c.
 *
 * Threads: the GEMMs of the projections run on OpenBLAS's threads; everything else is split over
 * the context's pool of dk_blas_threads() threads by whole rows, each row computed by the same
 * operations whichever thread runs it, so results are bit-identical for any thread count.
 * Attention runs (KV head, query block) tiles concurrently, each tile's two GEMMs on one OpenBLAS
 * thread (the OpenBLAS thread count is set to 1 for the attention phase only). */
#include "forward_state.h"
#include "attention.h"
#include "ops.h"
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The first bf16 product failure of this call, once (later products of the call were skipped). */
static dk_status dk_compute_status(dk_ctx *c, dk_err *e) {
    dk_status st = c->mm.st;
    if (st) {
        *e = c->mm.err;
        c->mm.st = DK_OK;
    }
    return st;
}

/* ---- the transformer block: RoPE and the QKV epilogue, attention, then the block itself ---- */

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

/* Per active row i: biases of q, k, v (when the model has them), RoPE of q and k at pos_a[i], the
 * cache entry's position and, while the context keeps it, the entry's bf16 copy (kvh: row L0 + i of
 * each head). */
typedef struct {
    dk_ctx *c;
    const dk_layer_weights *w;
    float *kdst, *vdst;
    int32_t *kv_pos;
    int na, n_tasks;
    int kvh_layer; /* the layer whose bf16 copy (forward_state.h: kvh) takes the rows, or -1 */
    int L0;
} dk_qkv_job;

static void dk_qkv_post_task(void *arg, int t, int tid) {
    (void)tid;
    const dk_qkv_job *j = arg;
    const dk_model_config *k = &j->c->m->cfg;
    size_t qd = (size_t)k->n_head * k->head_dim, kvd = (size_t)k->n_head_kv * k->head_dim;
    for (size_t i = dk_task_lo((size_t)j->na, t, j->n_tasks);
         i < dk_task_lo((size_t)j->na, t + 1, j->n_tasks); i++) {
        float *q = j->c->q + i * qd, *kr = j->kdst + i * kvd, *vr = j->vdst + i * kvd;
        if (j->w->bq) {
            dk_add_bias_row(q, j->w->bq, (int)qd);
            dk_add_bias_row(kr, j->w->bk, (int)kvd);
            dk_add_bias_row(vr, j->w->bv, (int)kvd);
        }
        dk_rope_row(j->c, q, k->n_head, j->c->pos_a[i]);
        dk_rope_row(j->c, kr, k->n_head_kv, j->c->pos_a[i]);
        j->kv_pos[i] = j->c->pos_a[i];
        if (j->kvh_layer >= 0) {
            size_t hd = (size_t)k->head_dim, row = ((size_t)j->L0 + i) * hd;
            for (int h = 0; h < k->n_head_kv; h++) {
                dk_round_bf16(dk_ctx_kvh_head(j->c, j->kvh_layer, 0, h) + row, kr + h * hd, hd, 1.0f);
                dk_round_bf16(dk_ctx_kvh_head(j->c, j->kvh_layer, 1, h) + row, vr + h * hd, hd, 1.0f);
            }
        }
    }
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
    const uint16_t *kv16; /* the layer's cache in bf16 (dk_kv16_fill) for bf16 products, or NULL */
    bool decode;          /* one query row that sees the whole cache: dk_attn_decode (bf16, q8) */
    int kvh_layer; /* with decode: the layer whose bf16 copy of the cache dk_attn_decode_bf16 reads, or -1 */
    int n_part;    /* with kvh_layer: key parts per KV head (dk_attn_decode_parts) */
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
        memcpy(qb + (size_t)i * g * hd, c->q + (size_t)(r0 + i) * qd + (size_t)h * g * hd,
               (size_t)g * hd * 4);
    if (jb->decode) { /* bf16 / q8 compute, one query row: every key visible, no probe rows */
        dk_attn_decode(qb, g, hd, kv->k + (size_t)h * hd, kv->v + (size_t)h * hd, kvd, kvl, scale, sb, ob);
        memcpy(c->att + (size_t)r0 * qd + (size_t)h * g * hd, ob, (size_t)g * hd * 4);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, kvl, hd, scale, qb, hd, kv->k + (size_t)h * hd,
                kvd, 0.0f, sb, kvl);
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
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, hd, kvl, 1.0f, sb, kvl, kv->v + (size_t)h * hd,
                kvd, 0.0f, ob, hd);
    for (int i = 0; i < nb; i++)
        memcpy(c->att + (size_t)(r0 + i) * qd + (size_t)h * g * hd, ob + (size_t)i * g * hd,
               (size_t)g * hd * 4);
}

/* Tile t of a decode step on the bf16 copy of the cache: KV head t / n_part, key part t % n_part,
 * into c->dpart (attention.h: dk_attn_decode_bf16_part; it cannot refuse: kvh is kept only where
 * dk_attn_decode_bf16_ok); dk_attention merges the parts. */
static void dk_attn_tile_part(void *arg, int t, int tid) {
    const dk_attn_job *jb = arg;
    dk_ctx *c = jb->c;
    const dk_model_config *k = &c->m->cfg;
    int hd = k->head_dim, g = k->n_head / k->n_head_kv, h = t / jb->n_part, part = t % jb->n_part;
    dk_attn_decode_bf16_part(c->q + (size_t)h * g * hd, g, hd, dk_ctx_kvh_head(c, jb->kvh_layer, 0, h),
                             dk_ctx_kvh_head(c, jb->kvh_layer, 1, h), jb->L0 + 1, part,
                             1.0f / sqrtf((float)hd), c->s[tid],
                             c->dpart + (size_t)t * DK_ATTN_DECODE_PART_FLOATS(g, hd));
}

/* ---- blocked attention (bf16 compute mode; attention.h) ----
 * The same tiles; the keys in blocks with an online softmax, the products in bf16 for full query
 * blocks (partial ones keep f32 products: a bf16 primitive per odd shape would cost more than it
 * saves); a decode step's single row takes dk_attn_decode instead. The sum over keys runs in another
 * order than the one-pass tile, so f32 compute keeps the one-pass tile (bit-identical to before). */

/* Probabilities of the probe rows of a tile (capture): the one-pass scores and softmax for those
 * rows only, after the tile's output (they are read by the hook, never by the output). */
static void dk_attn_capture_rows(const dk_attn_job *jb, int h, int r0, int nb, int kvl, float *sb) {
    dk_ctx *c = jb->c;
    const dk_model_config *k = &c->m->cfg;
    int hd = k->head_dim, g = k->n_head / k->n_head_kv, qd = k->n_head * hd, kvd = k->n_head_kv * hd;
    int kv_len = jb->L0 + jb->na;
    float scale = 1.0f / sqrtf((float)hd);
    for (int i = 0; i < nb; i++) {
        if (c->probe_slot[r0 + i] < 0) continue;
        const float *qrow = c->q + (size_t)(r0 + i) * qd + (size_t)h * g * hd;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g, kvl, hd, scale, qrow, hd,
                    jb->kv->k + (size_t)h * hd, kvd, 0.0f, sb, kvl);
        for (int j = 0; j < g; j++) {
            float *srow = sb + (size_t)j * kvl;
            dk_softmax_masked(srow, jb->L0 + r0 + i + 1, kvl);
            float *dst = c->probs + ((size_t)(h * g + j) * jb->n_probe + c->probe_slot[r0 + i]) * kv_len;
            memcpy(dst, srow, (size_t)kvl * 4);
            memset(dst + kvl, 0, (size_t)(kv_len - kvl) * 4);
        }
    }
}

static void dk_attn_tile_blocked(void *arg, int t, int tid) {
    const dk_attn_job *jb = arg;
    dk_ctx *c = jb->c;
    const dk_model_config *k = &c->m->cfg;
    dk_attn_scratch *as = &c->attn[tid];
    int hd = k->head_dim, g = k->n_head / k->n_head_kv, qd = k->n_head * hd, kvd = k->n_head_kv * hd;
    int na = jb->na, L0 = jb->L0;
    int h = t % k->n_head_kv, r0 = (jb->n_blk - 1 - t / k->n_head_kv) * c->qblk;
    float *qb = c->qb[tid], *ob = c->ob[tid];
    int r1 = r0 + c->qblk < na ? r0 + c->qblk : na, nb = r1 - r0, kvl = L0 + r1;
    if (as->st) return; /* an earlier tile of this thread failed */
    for (int i = 0; i < nb; i++)
        memcpy(qb + (size_t)i * g * hd, c->q + (size_t)(r0 + i) * qd + (size_t)h * g * hd,
               (size_t)g * hd * 4);
    /* bf16 products for full query blocks, on the layer's bf16 copy of the cache (dk_kv16_fill) */
    const uint16_t *kb16 = NULL, *vb16 = NULL;
    if (jb->kv16 && nb == c->qblk) {
        size_t head = (size_t)(c->n_ctx_max + DK_ATTN_KBLK) * hd;
        kb16 = c->kv16 + (size_t)h * head;
        vb16 = c->kv16 + (size_t)(k->n_head_kv + h) * head;
    }
    as->st = dk_attn_blocked(as, qb, nb, g, hd, jb->kv->k + (size_t)h * hd, jb->kv->v + (size_t)h * hd, kvd,
                             kvl, L0 + r0, 1.0f / sqrtf((float)hd), kb16, vb16, ob, &as->err);
    if (as->st) return;
    for (int i = 0; i < nb; i++)
        memcpy(c->att + (size_t)(r0 + i) * qd + (size_t)h * g * hd, ob + (size_t)i * g * hd,
               (size_t)g * hd * 4);
    if (jb->capture) dk_attn_capture_rows(jb, h, r0, nb, kvl, c->s[tid]);
}

/* c->kv16 = the layer's cache in bf16, head by head (K heads, then V heads; rows of head_dim),
 * rows [0, kv_len) rounded, then zeros to the next whole key block. */
typedef struct {
    dk_ctx *c;
    const dk_kv_cache *kv;
    int rows, n_tasks;
} dk_kv16_job;

static void dk_kv16_task(void *arg, int t, int tid) {
    (void)tid;
    const dk_kv16_job *j = arg;
    const dk_model_config *k = &j->c->m->cfg;
    int hd = k->head_dim, kvd = k->n_head_kv * hd, nkv = k->n_head_kv;
    size_t head = (size_t)(j->c->n_ctx_max + DK_ATTN_KBLK) * hd;
    size_t lo = dk_task_lo((size_t)j->rows, t, j->n_tasks),
           hi = dk_task_lo((size_t)j->rows, t + 1, j->n_tasks);
    for (int h = 0; h < nkv; h++) {
        uint16_t *kd = j->c->kv16 + (size_t)h * head + lo * hd,
                 *vd = j->c->kv16 + (size_t)(nkv + h) * head + lo * hd;
        dk_attn_round_rows(kd, j->kv->k + lo * kvd + (size_t)h * hd, (int)(hi - lo), hd, kvd);
        dk_attn_round_rows(vd, j->kv->v + lo * kvd + (size_t)h * hd, (int)(hi - lo), hd, kvd);
    }
}

static void dk_kv16_fill(dk_ctx *c, const dk_kv_cache *kv) {
    const dk_model_config *k = &c->m->cfg;
    int hd = k->head_dim, pad = (DK_ATTN_KBLK - kv->len % DK_ATTN_KBLK) % DK_ATTN_KBLK;
    dk_kv16_job j = {c, kv, kv->len, dk_pool_n_tasks(&c->pool, (size_t)kv->len, 64)};
    dk_pool_run(&c->pool, j.n_tasks, dk_kv16_task, &j);
    size_t head = (size_t)(c->n_ctx_max + DK_ATTN_KBLK) * hd;
    for (int h = 0; h < 2 * k->n_head_kv; h++)
        memset(c->kv16 + h * head + (size_t)kv->len * hd, 0, (size_t)pad * hd * 2);
}

static dk_status dk_attention(dk_ctx *c, int l, int na, int L0, bool capture, int n_probe, dk_flops *fl,
                              dk_err *e) {
    const dk_model_config *k = &c->m->cfg;
    int hd = k->head_dim, g = k->n_head / k->n_head_kv;
    int n_blk = (na + c->qblk - 1) / c->qblk, n_tiles = n_blk * k->n_head_kv;
    /* bf16 and q8 compute: one query row and no probe to capture takes attention.h's decode form
     * (through the one-pass tile), other chunks the blocked tile */
    bool decode = dk_compute_bf16_on(c->mm.compute) && na == 1 && !capture;
    bool blocked = dk_compute_bf16_on(c->mm.compute) && !decode, b16 = blocked && na >= c->qblk;
    bool part = decode && c->kvh_on; /* the bf16 copy: a tile per head and key part */
    dk_attn_job jb = {c, &c->kv[l], na, L0, n_blk, n_probe, capture, b16 ? c->kv16 : NULL, decode, -1, 0};
    if (part) {
        jb.kvh_layer = l;
        jb.n_part = dk_attn_decode_parts(L0 + 1);
        n_tiles = k->n_head_kv * jb.n_part;
    }
    if (b16) dk_kv16_fill(c, &c->kv[l]);
    dk_task_fn tile = part ? dk_attn_tile_part : blocked ? dk_attn_tile_blocked : dk_attn_tile;
    /* one OpenBLAS thread per tile while the pool runs tiles side by side (the setting is
     * process-wide in OpenBLAS 0.3.21, so it is set here, between the pool's jobs) */
    int bt = openblas_get_num_threads();
    bool par = c->pool.n > 1 && n_tiles > 1;
    if (par && bt > 1) openblas_set_num_threads(1);
    dk_pool_run(&c->pool, par ? n_tiles : 1, tile, &jb);
    if (!par)
        for (int t = 1; t < n_tiles; t++) tile(&jb, t, 0);
    if (par && bt > 1) openblas_set_num_threads(bt);
    for (int h = 0; part && h < k->n_head_kv; h++) /* each head's parts, in order */
        dk_attn_decode_merge(g, hd, jb.n_part,
                             c->dpart + (size_t)h * jb.n_part * DK_ATTN_DECODE_PART_FLOATS(g, hd),
                             c->att + (size_t)h * g * hd);
    /* FLOPs as executed by the tiles (a decode step's merge of parts, ~2·head_dim per part and row, is
     * not counted: under 1 % of its attention's at any length) */
    for (int r0 = 0; r0 < na; r0 += c->qblk) {
        int r1 = r0 + c->qblk < na ? r0 + c->qblk : na, M = (r1 - r0) * g, kvl = L0 + r1;
        fl->c[DK_FLOPS_ATTN] += (int64_t)k->n_head_kv * 4 * (int64_t)M * kvl * hd;
        for (int i = r0; i < r1; i++)
            fl->c[DK_FLOPS_SOFTMAX] += (int64_t)k->n_head_kv * g * (5 * (int64_t)(L0 + i + 1) + 1);
        /* blocked: the rescaling of the online softmax (attention.h) */
        if (blocked)
            fl->c[DK_FLOPS_SOFTMAX] += (int64_t)k->n_head_kv * dk_attn_blocked_extra_flops(M, kvl, hd);
    }
    for (int t = 0; blocked && t < c->n_scratch; t++)
        if (c->attn[t].st) {
            dk_status st = c->attn[t].st;
            *e = c->attn[t].err;
            for (int u = 0; u < c->n_scratch; u++) c->attn[u].st = DK_OK;
            return st;
        }
    return DK_OK;
}

/* ---- one transformer block on the active rows ---- */

static dk_status dk_call_hook(dk_ctx *c, const dk_prefill_opts *o, dk_hook_point pt, dk_layer_view *v,
                              int *n_next, dk_err *e) {
    if (!o || !o->hook) return DK_OK;
    dk_status st = o->hook(o->hook_user, pt, v, c->next, n_next, e);
    if (st) return st;
    if (*n_next < 0 || *n_next > v->n_tokens)
        return dk_fail(e, DK_ERR_ARG, "layer %d: hook returned an active set of %d rows for a %d-token chunk",
                       v->layer, *n_next, v->n_tokens);
    for (int i = 0; i < *n_next; i++)
        if (c->next[i] < 0 || c->next[i] >= v->n_tokens || (i > 0 && c->next[i] <= c->next[i - 1]))
            return dk_fail(
                e, DK_ERR_ARG,
                "layer %d: hook's active set is not sorted, unique and within 0..%d (entry %d = %d)",
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
    dk_rmsnorm(&c->pool, c->xb, xin, w->attn_norm, na, d, k->rms_eps);
    fl->c[DK_FLOPS_NORM] += 4 * (int64_t)na * d;
    float *kdst = kv->k + (size_t)L0 * kvd, *vdst = kv->v + (size_t)L0 * kvd;
    dk_matmul_out qkv[3] = {{c->q, &w->wq}, {kdst, &w->wk}, {vdst, &w->wv}};
    dk_matmul_multi(&c->mm, c->xb, na, d, qkv, 3, &fl->c[DK_FLOPS_QKV]);
    dk_qkv_job qj = {
        c, w, kdst, vdst, kv->pos + L0, na, dk_pool_n_tasks(&c->pool, (size_t)na, 4), c->kvh_on ? l : -1, L0};
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
                if (a == r) {
                    if (c->probe_slot[mid] < 0) {
                        c->probe_slot[mid] = n_probe;
                        c->probe_act[n_probe++] = r;
                    }
                    break;
                }
                if (a < r) lo = mid + 1;
                else hi = mid - 1;
            }
        }
        /* probe slots must follow active order for probe_act to be sorted consistently */
        n_probe = 0;
        for (int i = 0; i < na; i++)
            if (c->probe_slot[i] >= 0) {
                c->probe_slot[i] = n_probe;
                c->probe_act[n_probe++] = c->active[i];
            }
        size_t need = (size_t)k->n_head * (size_t)n_probe * (size_t)kv->len;
        if (need > (size_t)c->probs_cap) {
            float *p = realloc(c->probs, need * 4);
            if (!p) return dk_fail(e, DK_ERR_NOMEM, "out of memory for attention probabilities");
            c->probs = p;
            c->probs_cap = (int)need;
        }
        capture = n_probe > 0;
    }
    if ((st = dk_attention(c, l, na, L0, capture, n_probe, fl, e))) return st;
    dk_matmul(&c->mm, c->u, c->att, &w->wo, na, d, qd, 0.0f, &fl->c[DK_FLOPS_O]);
    if ((st = dk_compute_status(c, e))) return st;

    dk_layer_view v = {.layer = l,
                       .n_tokens = n,
                       .n_past = c->n_past,
                       .n_active = na,
                       .active = c->active,
                       .n_embd = d,
                       .x_in = xin,
                       .u = c->u,
                       .n_probe = capture ? n_probe : 0,
                       .probe_rows = capture ? c->probe_act : NULL,
                       .n_head = k->n_head,
                       .kv_len = kv->len,
                       .kv_pos = kv->pos,
                       .probs = capture ? c->probs : NULL,
                       .flops = fl};
    if ((st = dk_call_hook(c, o, DK_HOOK_AFTER_ATTN, &v, n_next, e))) return st;

    /* residual, then the FFN sub-layer accumulating into the residual */
    dk_add(&c->pool, hout, xin, c->u, (size_t)na * d);
    fl->c[DK_FLOPS_NORM] += (int64_t)na * d;
    dk_rmsnorm(&c->pool, c->xb, hout, w->ffn_norm, na, d, k->rms_eps);
    fl->c[DK_FLOPS_NORM] += 4 * (int64_t)na * d;
    dk_matmul_out gate_up[2] = {{c->hb, &w->w_gate}, {c->hb2, &w->w_up}};
    dk_matmul_multi(&c->mm, c->xb, na, d, gate_up, 2, &fl->c[DK_FLOPS_FFN]);
    dk_silu_mul(&c->pool, c->hb, c->hb2, (size_t)na * f);
    fl->c[DK_FLOPS_FFN] += 5 * (int64_t)na * f;
    dk_matmul(&c->mm, hout, c->hb, &w->w_down, na, d, f, 1.0f, &fl->c[DK_FLOPS_FFN]);
    fl->c[DK_FLOPS_NORM] += (int64_t)na * d; /* residual add inside the GEMM (beta = 1) */

    if ((st = dk_compute_status(c, e))) return st;

    v.u = NULL;
    v.x_out = hout;
    v.n_probe = 0;
    v.probe_rows = NULL;
    v.probs = NULL;
    return dk_call_hook(c, o, DK_HOOK_AFTER_LAYER, &v, n_next, e);
}

/* ---- prefill ---- */

static dk_status dk_check_set(const int32_t *a, int na, int n, const char *what, dk_err *e) {
    if (na < 0 || na > n) return dk_fail(e, DK_ERR_ARG, "%s: %d rows for a %d-token chunk", what, na, n);
    for (int i = 0; i < na; i++)
        if (a[i] < 0 || a[i] >= n || (i > 0 && a[i] <= a[i - 1]))
            return dk_fail(e, DK_ERR_ARG, "%s is not sorted, unique and within 0..%d (entry %d = %d)", what,
                           n - 1, i, a[i]);
    return DK_OK;
}

/* Validates a chunk and its sets, reserves scratch, clears the stats of layers l0.. . */
static dk_status dk_prefill_begin(dk_ctx *c, const int32_t *tokens, int n, int l0, const dk_prefill_opts *o,
                                  dk_err *e) {
    const dk_model_config *k = &c->m->cfg;
    dk_status st;
    if (n <= 0) return dk_fail(e, DK_ERR_ARG, "prefill of %d tokens", n);
    if (c->n_past + n > c->n_ctx_max)
        return dk_fail(e, DK_ERR_STATE, "context full: %d cached + %d new tokens > n_ctx_max %d", c->n_past,
                       n, c->n_ctx_max);
    for (int i = 0; tokens && i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= k->n_vocab)
            return dk_fail(e, DK_ERR_ARG, "token id %d at index %d out of range 0..%d", tokens[i], i,
                           k->n_vocab - 1);
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
                dk_copy_rows(&c->pool, c->xa, NULL, c->x, c->active, na, d);
                xin = c->xa;
            }
            if ((st = dk_layer_forward(c, l, xin, c->h, na, n, o, &n_next, fl, e))) {
                c->kv[l].len -= na;
                for (int j = l0; j < l; j++) c->kv[j].len -= c->layer_stats[j].n_active;
                return st;
            }
            if (c->dense) {
                float *t = c->x;
                c->x = c->h;
                c->h = t;
            } else dk_copy_rows(&c->pool, c->x, c->active, c->h, NULL, na, d);
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
        dk_rmsnorm(&c->pool, c->xb, src, m->w.output_norm, rows, d, k->rms_eps);
        c->stats.head.c[DK_FLOPS_NORM] += 4 * (int64_t)rows * d;
        /* blocks of the conversion buffer's rows, for every file type (dk_matmul_head) */
        int blk = (int)(c->convert_n / (size_t)m->w.output.cols);
        dk_matmul_head(&c->mm, logits, c->xb, &m->w.output, rows, blk, &c->stats.head.c[DK_FLOPS_LM_HEAD]);
    }
    for (int l = 0; l < k->n_layer; l++) dk_flops_add(&c->stats.total, &c->layer_stats[l].flops);
    dk_flops_add(&c->stats.total, &c->stats.head);
    c->stats.wall_s = dk_time_now_s() - t_start + c->stats.prefix_wall_s;
}

static dk_status dk_refuse_pending(const dk_ctx *c, dk_err *e) {
    return c->split_pending
               ? dk_fail(e, DK_ERR_STATE,
                         "a split prefill (layers 0..%d) is pending: run dk_forward_prefill_suffix first",
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
    if (o && o->active) {
        c->dense = false;
        c->na = o->n_active;
        memcpy(c->active, o->active, (size_t)c->na * 4);
    }
}

dk_status dk_forward_prefill(dk_ctx *c, const int32_t *tokens, int n, const dk_prefill_opts *o, float *logits,
                             dk_err *e) {
    double t_start = dk_time_now_s();
    dk_status st;
    if ((st = dk_refuse_pending(c, e)) || (st = dk_prefill_begin(c, tokens, n, 0, o, e))) return st;
    dk_prefill_embed(c, tokens, n, o);
    if ((st = dk_run_layers(c, n, 0, c->m->cfg.n_layer - 1, o, e))) return st;
    dk_prefill_end(c, n, o, logits, t_start);
    return dk_compute_status(c, e);
}

dk_status dk_forward_prefill_prefix(dk_ctx *c, const int32_t *tokens, int n, int last_layer,
                                    const dk_prefill_opts *o, dk_err *e) {
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
        if (!x || !a) {
            c->split_layer = -1;
            return dk_fail(e, DK_ERR_NOMEM, "out of memory for a split prefill of %d tokens", n);
        }
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
    if (ls < 0)
        return dk_fail(e, DK_ERR_STATE,
                       "split prefill: no prefix to continue (run dk_forward_prefill_prefix first)");
    if (o && o->active &&
        (st = dk_check_set(o->active, o->n_active, n, "active set after the split layer", e)))
        return st;
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
    return dk_compute_status(c, e);
}

dk_status dk_forward_decode(dk_ctx *c, int32_t token, float *logits, dk_err *e) {
    return dk_forward_prefill(c, &token, 1, NULL, logits, e);
}

/* ---- greedy generation ---- */

dk_status dk_generate_greedy(dk_ctx *c, const int32_t *prompt, int n_prompt, int max_steps,
                             int32_t stop_token, int32_t *out, int *n_out, dk_err *e) {
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
