/* ctx.c — a context's life (forward.h): creation, scratch sized to the chunk and the threads,
 * reset/truncate, settings and accessors; and the FLOP counters. The pass itself is forward.c. */
#include "forward_state.h"
#include "blas.h"
#include "attention.h"
#include "compute.h"
#include "matvec.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- FLOP counters ---- */

const char *dk_flops_component_name(dk_flops_component c) {
    static const char *const n[DK_FLOPS_COUNT] = {"qkv",  "attn",    "o",       "ffn", "norm",
                                                  "rope", "softmax", "lm_head", "halt"};
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

/* ---- sizes ----
 * Every buffer of a context, in elements, from one function: dk_ctx_create, dk_ctx_threads and
 * dk_ctx_reserve allocate these, and dk_ctx_*_bytes (memory.h's estimate) add them up. */

typedef struct {
    size_t kv;     /* floats of one layer's K, and of its V: n_ctx * n_head_kv*head_dim */
    size_t kv16;   /* bf16 values of one layer's K and V for bf16 attention products:
                      * 2 * n_head_kv * (n_ctx + DK_ATTN_KBLK) * head_dim */
    size_t rope;   /* floats of each RoPE table (cos, sin): n_ctx * n_rot/2 */
    int qblk;      /* query rows per attention block: 256/group, 1 when group >= 256 */
    size_t attn_s; /* floats of one thread's scores: qblk*group * n_ctx */
    size_t attn_qo; /* floats of one thread's stacked queries, and of its block output: qblk*group * head_dim */
    size_t
        convert; /* floats of the conversion buffer: the largest layer matrix, max(n_head*head_dim, n_ff) * n_embd */
    size_t row_d; /* floats per chunk row of x, h, xa, xb, u: n_embd */
    size_t row_q; /* of q, att: n_head*head_dim */
    size_t row_f; /* of hb, hb2: n_ff */
} dk_ctx_layout;

static dk_ctx_layout dk_ctx_layout_of(const dk_model_config *k, int n_ctx) {
    dk_ctx_layout l;
    size_t nc = (size_t)n_ctx, group = (size_t)(k->n_head / k->n_head_kv),
           q = (size_t)k->n_head * k->head_dim;
    l.kv = nc * (size_t)k->n_head_kv * (size_t)k->head_dim;
    l.kv16 = 2 * (size_t)k->n_head_kv * (nc + DK_ATTN_KBLK) * (size_t)k->head_dim;
    l.rope = nc * (size_t)(k->n_rot / 2);
    l.qblk = group >= 256 ? 1 : (int)(256 / group);
    l.attn_s = (size_t)l.qblk * group * nc;
    l.attn_qo = (size_t)l.qblk * group * (size_t)k->head_dim;
    l.convert = (q > (size_t)k->n_ff ? q : (size_t)k->n_ff) * (size_t)k->n_embd;
    l.row_d = (size_t)k->n_embd;
    l.row_q = q;
    l.row_f = (size_t)k->n_ff;
    return l;
}

int dk_ctx_pool_threads(void) {
    int n = dk_blas_threads();
    return n < 1 ? 1 : n > 64 ? 64 : n;
}

int64_t dk_ctx_kv_bytes(const dk_model_config *k, int n_ctx) {
    return (int64_t)k->n_layer * 2 * (int64_t)dk_ctx_layout_of(k, n_ctx).kv * 4;
}

/* per layer a dk_kv_cache, a dk_layer_stats and the cache positions (n_ctx int32); the RoPE
 * tables; one layer's K and V in bf16 (bf16 attention products); per pool thread the attention block's scores, queries and output, and the blocked
 * attention's scratch (attention.h) */
int64_t dk_ctx_fixed_bytes(const dk_model_config *k, int n_ctx, int threads) {
    dk_ctx_layout l = dk_ctx_layout_of(k, n_ctx);
    return (int64_t)k->n_layer *
               ((int64_t)sizeof(dk_kv_cache) + (int64_t)sizeof(dk_layer_stats) + (int64_t)n_ctx * 4) +
           2 * (int64_t)l.rope * 4 + (int64_t)l.kv16 * 2 +
           (int64_t)threads * ((int64_t)l.attn_s * 4 + 2 * (int64_t)l.attn_qo * 4 +
                               dk_attn_scratch_bytes(l.qblk * (k->n_head / k->n_head_kv), k->head_dim));
}

/* dk_ctx_reserve: five buffers of row_d, two of row_q, two of row_f floats and five int32 per row */
int64_t dk_ctx_chunk_bytes(const dk_model_config *k, int n_chunk) {
    dk_ctx_layout l = dk_ctx_layout_of(k, 1);
    return (int64_t)n_chunk * (int64_t)(5 * l.row_d + 2 * l.row_q + 2 * l.row_f) * 4 +
           5 * (int64_t)n_chunk * 4;
}

/* the part scratch of a decode step on kvh: every KV head's key parts */
static size_t dk_ctx_dpart_floats(const dk_model_config *k, int n_ctx) {
    return (size_t)k->n_head_kv * (size_t)dk_attn_decode_parts(n_ctx) *
           DK_ATTN_DECODE_PART_FLOATS(k->n_head / k->n_head_kv, k->head_dim);
}

/* bf16 values of the copy of every layer's K and V */
static size_t dk_ctx_kvh_elems(const dk_model_config *k, int n_ctx) {
    return (size_t)k->n_layer * 2 * dk_ctx_layout_of(k, n_ctx).kv;
}

int64_t dk_ctx_kvh_bytes(const dk_model_config *k, int n_ctx) {
    return k->head_dim % 32
               ? 0
               : (int64_t)dk_ctx_kvh_elems(k, n_ctx) * 2 + (int64_t)dk_ctx_dpart_floats(k, n_ctx) * 4;
}

int64_t dk_ctx_convert_bytes(const dk_model_config *k) { return (int64_t)dk_ctx_layout_of(k, 1).convert * 4; }

int64_t dk_ctx_bf16_pack_bytes(const dk_model_config *k) {
    int64_t d = k->n_embd, q = (int64_t)k->n_head * k->head_dim, kv = (int64_t)k->n_head_kv * k->head_dim,
            f = k->n_ff;
    int64_t layer = dk_compute_bf16_pack_bytes(q, d) + 2 * dk_compute_bf16_pack_bytes(kv, d) +
                    dk_compute_bf16_pack_bytes(d, q) + 2 * dk_compute_bf16_pack_bytes(f, d) +
                    dk_compute_bf16_pack_bytes(d, f);
    return k->n_layer * layer;
}

bool dk_ctx_bf16_packs(const dk_model_config *k) { return dk_ctx_bf16_pack_bytes(k) <= DK_CTX_BF16_PACK_MAX; }

int64_t dk_ctx_qact_k(const dk_model_config *k) {
    int64_t q = (int64_t)k->n_head * k->head_dim, m = k->n_embd > q ? k->n_embd : q;
    return k->n_ff > m ? k->n_ff : m;
}

/* ---- context ---- */

static void dk_ctx_free_scratch(dk_ctx *c) {
    DK_FREE_ALL(c->x, c->h, c->xa, c->xb, c->u, c->q, c->att, c->hb, c->hb2, c->active, c->next, c->pos_a,
                c->probe_slot, c->probe_act);
    c->x = c->h = c->xa = c->xb = c->u = c->q = c->att = c->hb = c->hb2 = NULL;
    c->active = c->next = c->pos_a = c->probe_slot = c->probe_act = NULL;
    c->cap = 0;
}

dk_status dk_ctx_reserve(dk_ctx *c, int n, dk_err *e) {
    if (n <= c->cap) return DK_OK;
    dk_ctx_layout l = dk_ctx_layout_of(&c->m->cfg, 1);
    size_t r = (size_t)n, d = l.row_d, q = l.row_q, f = l.row_f;
    dk_ctx_free_scratch(c);
    c->x = malloc(r * d * 4);
    c->h = malloc(r * d * 4);
    c->xa = malloc(r * d * 4);
    c->xb = malloc(r * d * 4);
    c->u = malloc(r * d * 4);
    c->q = malloc(r * q * 4);
    c->att = malloc(r * q * 4);
    c->hb = malloc(r * f * 4);
    c->hb2 = malloc(r * f * 4);
    c->active = malloc(r * 4);
    c->next = malloc(r * 4);
    c->pos_a = malloc(r * 4);
    c->probe_slot = malloc(r * 4);
    c->probe_act = malloc(r * 4);
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
        if (c->attn) dk_attn_scratch_free(&c->attn[t]);
    }
    DK_FREE_ALL(c->s, c->qb, c->ob, c->attn);
    c->s = c->qb = c->ob = NULL;
    c->attn = NULL;
    c->n_scratch = 0;
}

dk_status dk_ctx_threads(dk_ctx *c, dk_err *e) {
    int want = dk_ctx_pool_threads();
    if (want != c->pool.n) {
        dk_pool_free(&c->pool);
        dk_pool_init(&c->pool, want);
    }
    if (c->n_scratch == c->pool.n) return DK_OK;
    dk_ctx_free_attn_scratch(c);
    dk_ctx_layout l = dk_ctx_layout_of(&c->m->cfg, c->n_ctx_max);
    int n = c->pool.n;
    c->s = calloc((size_t)n, sizeof *c->s);
    c->qb = calloc((size_t)n, sizeof *c->qb);
    c->ob = calloc((size_t)n, sizeof *c->ob);
    c->attn = calloc((size_t)n, sizeof *c->attn);
    c->n_scratch = n;
    bool ok = c->s && c->qb && c->ob && c->attn;
    int m_cap = l.qblk * (c->m->cfg.n_head / c->m->cfg.n_head_kv);
    for (int t = 0; ok && t < n; t++)
        ok = (c->s[t] = malloc(l.attn_s * 4)) && (c->qb[t] = malloc(l.attn_qo * 4)) &&
             (c->ob[t] = malloc(l.attn_qo * 4)) &&
             dk_attn_scratch_init(&c->attn[t], m_cap, c->m->cfg.head_dim, e) == DK_OK;
    if (!ok) {
        if (!c->s || !c->qb || !c->ob || !c->attn) c->n_scratch = 0;
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
    c->mm.pool = &c->pool;
    c->mm.model = (dk_model *)m; /* for its bf16 packs, a cache (model.h) */
    c->mm.fused = true;
    c->mm.convert_s = &c->stats.convert_s;
    c->mm.fused_matmuls = &c->stats.fused_matmuls;
    dk_ctx_layout l = dk_ctx_layout_of(k, n_ctx_max);
    c->qblk = l.qblk;
    c->convert_n = l.convert;
    size_t half = (size_t)k->n_rot / 2, nc = (size_t)n_ctx_max;
    bool ok = (c->kv = calloc((size_t)k->n_layer, sizeof *c->kv)) &&
              (c->layer_stats = calloc((size_t)k->n_layer, sizeof *c->layer_stats)) &&
              (c->split_stats = calloc((size_t)k->n_layer, sizeof *c->split_stats)) &&
              (c->rope_cos = malloc(l.rope * 4)) && (c->rope_sin = malloc(l.rope * 4)) &&
              (c->kv16 = malloc(l.kv16 * 2));
    dk_pool_init(&c->pool, 1);
    ok = ok && dk_ctx_threads(c, e) == DK_OK;
    if (ok && m->converts) {
        c->mm.wbuf_n = l.convert;
        ok = (c->mm.wbuf = malloc(c->mm.wbuf_n * 4)) != NULL;
    }
    for (int i = 0; ok && i < k->n_layer; i++)
        ok = (c->kv[i].k = malloc(l.kv * 4)) && (c->kv[i].v = malloc(l.kv * 4)) &&
             (c->kv[i].pos = malloc(nc * 4));
    if (!ok) {
        dk_ctx_free(c);
        return dk_fail(e, DK_ERR_NOMEM, "out of memory for a %d-token context", n_ctx_max);
    }
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
        for (int l = 0; l < c->m->cfg.n_layer; l++) {
            free(c->kv[l].k);
            free(c->kv[l].v);
            free(c->kv[l].pos);
        }
    dk_pool_free(&c->pool);
    dk_bf16_backend_free(c->mm.bf16);
    dk_qact_free(&c->mm.qact);
    dk_ctx_free_attn_scratch(c);
    DK_FREE_ALL(c->kv, c->layer_stats, c->rope_cos, c->rope_sin, c->kv16, c->kvh, c->dpart, c->probs,
                c->mm.wbuf, c->x_split, c->split_active, c->split_stats);
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

void dk_ctx_set_fused_decode(dk_ctx *c, bool on) { c->mm.fused = on; }

/* c->kvh from the f32 caches: rows [0, len) of every layer, head by head */
static void dk_ctx_kvh_fill(dk_ctx *c) {
    const dk_model_config *k = &c->m->cfg;
    int hd = k->head_dim, kvd = k->n_head_kv * hd;
    for (int l = 0; l < k->n_layer; l++)
        for (int h = 0; h < k->n_head_kv; h++) {
            dk_attn_round_rows(dk_ctx_kvh_head(c, l, 0, h), c->kv[l].k + (size_t)h * hd, c->kv[l].len, hd,
                               kvd);
            dk_attn_round_rows(dk_ctx_kvh_head(c, l, 1, h), c->kv[l].v + (size_t)h * hd, c->kv[l].len, hd,
                               kvd);
        }
}

bool dk_ctx_cache_bf16(const dk_ctx *c, int layer, const uint16_t **k, const uint16_t **v) {
    if (!c->kvh_on || layer < 0 || layer >= c->m->cfg.n_layer) return false;
    *k = dk_ctx_kvh_head(c, layer, 0, 0);
    *v = dk_ctx_kvh_head(c, layer, 1, 0);
    return true;
}

dk_status dk_ctx_set_compute(dk_ctx *c, dk_compute mode, dk_err *e) {
    dk_status st = dk_compute_check(mode, e);
    if (st) return st;
    /* the bf16 copy of the caches for the decode step (allocated first: a failure changes nothing) */
    bool kvh = dk_compute_bf16_on(mode) && dk_attn_decode_bf16_ok(c->m->cfg.head_dim);
    if (kvh && !c->kvh) {
        if (!(c->dpart = malloc(dk_ctx_dpart_floats(&c->m->cfg, c->n_ctx_max) * 4)) ||
            !(c->kvh = malloc(dk_ctx_kvh_elems(&c->m->cfg, c->n_ctx_max) * 2))) {
            free(c->dpart);
            c->dpart = NULL;
            return dk_fail(e, DK_ERR_NOMEM, "out of memory for the bf16 copy of a %d-token cache",
                           c->n_ctx_max);
        }
    }
    /* the backend (and its cached primitives) stays until dk_ctx_free once created */
    if (dk_compute_bf16_on(mode) && !c->mm.bf16 && (st = dk_bf16_backend_init(&c->mm.bf16, e))) return st;
    /* q8: room for DK_MATVEC_MAX_M quantized rows of the longest product input */
    if (mode == DK_COMPUTE_Q8 && !c->mm.qact.cap &&
        (st = dk_qact_init(&c->mm.qact, DK_MATVEC_MAX_M * dk_ctx_qact_k(&c->m->cfg), e)))
        return st;
    c->mm.compute = mode;
    if (kvh && !c->kvh_on) dk_ctx_kvh_fill(c); /* made from the caches when the mode starts */
    c->kvh_on = kvh;
    c->mm.pack = dk_compute_bf16_on(mode) && dk_ctx_bf16_packs(&c->m->cfg);
    /* the packs are made here, not inside the first timed prefill (a dense-vs-method comparison
     * would charge them to whichever ran first) */
    return c->mm.pack ? dk_matmul_pack_layers(&c->mm, e) : DK_OK;
}
dk_compute dk_ctx_compute(const dk_ctx *c) { return c->mm.compute; }
bool dk_ctx_fused_decode(const dk_ctx *c) { return c->mm.fused; }

int dk_ctx_n_past(const dk_ctx *c) { return c->n_past; }
int dk_ctx_n_ctx_max(const dk_ctx *c) { return c->n_ctx_max; }
const dk_kv_cache *dk_ctx_cache(const dk_ctx *c, int layer) { return &c->kv[layer]; }
const dk_forward_stats *dk_ctx_stats(const dk_ctx *c) { return &c->stats; }
const dk_model *dk_ctx_model(const dk_ctx *c) { return c->m; }
