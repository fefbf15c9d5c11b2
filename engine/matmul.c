/* matmul.c — the products of the projections and the lm head (matmul.h): weight conversion into
 * the f32 scratch, the fused small-m path (matvec.h) and the bf16 backend. */
#include "matmul.h"
#include "matvec.h"
#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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
    dk_dequantize(j->w->type, j->src + a * j->w->row_bytes, j->dst + a * (size_t)j->w->cols,
                  (b - a) * (size_t)j->w->cols);
}

/* Rows [r0, r0+nr) of W as f32: in place for F32, else converted into wbuf (timed). */
static const float *dk_weight_rows(dk_matmul_ctx *mm, const dk_tensor *w, int64_t r0, int64_t nr) {
    const uint8_t *src = (const uint8_t *)w->data + (size_t)r0 * w->row_bytes;
    if (w->type == DK_GGML_TYPE_F32) return (const float *)src;
    double t0 = dk_time_now_s();
    dk_dequant_job j = {w, src, mm->wbuf, (size_t)nr, dk_pool_n_tasks(mm->pool, (size_t)nr, 64)};
    dk_pool_run(mm->pool, j.n_tasks, dk_dequant_task, &j);
    *mm->convert_s += dk_time_now_s() - t0;
    return mm->wbuf;
}

/* ---- few rows (decode): the fused small-m path ----
 * Y (m, n) = X (m, k) · Wᵀ for m <= DK_MATVEC_MAX_M, every file type and compute mode: each row of
 * W is read once in its file type and widened next to its dot products (matvec.h), no f32 copy of
 * W travels through memory and no BLAS call is made. The rows are cut into chunks at fixed offsets
 * (>= DK_MATVEC_CHUNK_BYTES of file bytes, at most 32 chunks per thread) that the pool's threads take as they
 * come; a row's result depends on nothing but its bits and X's, so every split and thread count
 * gives the same bits, and row i of Y is the same whatever m is (a decode step equals the same
 * row of a small chunk). The one-row scratch of types widened in memory is a per-thread slice of
 * wbuf.
 *
 * Why m <= 8: per weight the whole-matrix path moves 2 B (F16/BF16; ~1.06 B Q8_0) read + 4 B f32
 * written + 4 B read again by the sgemm, while this path reads the file bytes once; what grows with
 * m is the arithmetic, where m dot products per row lose to one packed, blocked sgemm as m grows
 * (the previous chunk-and-sgemv form of this path measured whole-matrix / fused wall time ~3x at
 * m = 1..4, ~1.4x at 8, ~0.85x at 16). Decode (m = 1), short question chunks and halting's last few
 * active rows fall below the threshold; prefill chunks never do in practice. */
typedef struct {
    const dk_tensor *w;
    float *y;
    const float *x;
    float *scratch;       /* pool.n slices of k floats, or NULL (F32 weights, q8 dots) */
    const dk_qact *qa;    /* q8 compute on a dk_qdot_type: X quantized (qdot.h), else NULL */
    int64_t r0, r1, rows; /* rows [r0, r1) in chunks of `rows` */
    int m, ldy;
    float beta;
} dk_matvec_job;

static void dk_matvec_task(void *arg, int t, int tid) {
    const dk_matvec_job *j = arg;
    int64_t a = j->r0 + (int64_t)t * j->rows, b = a + j->rows < j->r1 ? a + j->rows : j->r1;
    float *scr = j->scratch ? j->scratch + (size_t)tid * (size_t)j->w->cols : NULL;
    if (j->qa) dk_qdot_rows(j->w, a, b, j->qa, j->m, j->y, j->ldy, j->beta);
    else dk_matvec_rows(j->w, a, b, j->x, j->m, j->y, j->ldy, j->beta, scr);
}

/* The fused path applies: few rows, enabled (the default; dk_ctx_set_fused_decode). */
static bool dk_use_fused(const dk_matmul_ctx *mm, int m) { return mm->fused && m <= DK_MATVEC_MAX_M; }

/* The least file bytes of a chunk of rows. Each chunk starts on lines no prefetch asked for and
 * costs a task hand-out: 64 KiB chunks (5400 a token on the 0.5B shape) left decode 10-17 % short of
 * 256 KiB ones (measured side by side, decode-only steps: Q8_0 in q8 compute 90 -> 107 tok/s, in
 * f32 74 -> 84, F16 55 -> 61); 1 MiB ones were no faster and leave a 0.85 MiB matrix to one
 * thread. */
enum { DK_MATVEC_CHUNK_BYTES = 256 << 10 };

/* A job that reads fewer weight bytes than this runs on the caller alone: waking a worker costs
 * about as much as reading it, and on a busy machine a preempted worker holding a task stalls the
 * job by a time slice (a llama-tiny-shaped model decoded ~100x slower split over 2 busy threads).
 * 256 KiB (was 1 MiB) splits the 0.5B shape's Q and O products too (0.55 MB in Q5_0): decode of its
 * Q4_K_M file in q8 compute, decode-only loops side by side, 102 -> 108 and 106 -> 112 tok/s; Q8_0
 * and F16 files inside the noise. */
enum { DK_MATVEC_PAR_BYTES = 256 << 10 };

/* Rows of W widened into a scratch row (not F32, no q8 dots) find no scratch row per thread in wbuf. */
static bool dk_matvec_no_room(const dk_matmul_ctx *mm, const dk_tensor *w, const dk_qact *qa) {
    return w->type != DK_GGML_TYPE_F32 && !qa &&
           (!mm->wbuf || mm->wbuf_n < (size_t)mm->pool->n * (size_t)w->cols);
}

/* The job of rows [r0, r1) of W against X (m, k) into Y (row stride ldy, column r = row r of W);
 * returns its chunks. *threads: 1 when a widened type finds no scratch row per thread in wbuf, or
 * when the rows hold fewer than DK_MATVEC_PAR_BYTES (dk_matmul_multi sums its products first). */
static int dk_matvec_plan(const dk_matmul_ctx *mm, dk_matvec_job *j, float *y, int ldy, const float *x,
                          const dk_tensor *w, int64_t r0, int64_t r1, int m, float beta, int *threads) {
    *threads = mm->pool->n;
    const dk_qact *qa = mm->compute == DK_COMPUTE_Q8 && dk_qdot_type(w->type) ? &mm->qact : NULL;
    bool widen = w->type != DK_GGML_TYPE_F32 && !qa;
    if (dk_matvec_no_room(mm, w, qa)) *threads = 1;
    if ((r1 - r0) * (int64_t)w->row_bytes < DK_MATVEC_PAR_BYTES) *threads = 1;
    int64_t n = r1 - r0, rows = (DK_MATVEC_CHUNK_BYTES + (int64_t)w->row_bytes - 1) / (int64_t)w->row_bytes;
    int64_t per = (n + 32 * (int64_t)mm->pool->n - 1) / (32 * (int64_t)mm->pool->n);
    if (rows < per) rows = per;
    if (rows < 1) rows = 1;
    *j = (dk_matvec_job){w, y, x, widen ? mm->wbuf : NULL, qa, r0, r1, rows, m, ldy, beta};
    return (int)((n + rows - 1) / rows);
}

/* Runs n_tasks tasks on the pool, or on the caller alone (threads 1). */
static void dk_matvec_run(dk_matmul_ctx *mm, int threads, int n_tasks, dk_task_fn fn, void *arg) {
    if (threads > 1) dk_pool_run(mm->pool, n_tasks, fn, arg);
    else
        for (int t = 0; t < n_tasks; t++) fn(arg, t, 0);
}

static void dk_matmul_fused(dk_matmul_ctx *mm, float *y, int ldy, const float *x, const dk_tensor *w,
                            int64_t r0, int64_t r1, int m, float beta) {
    dk_matvec_job j;
    int threads, n_chunks = dk_matvec_plan(mm, &j, y, ldy, x, w, r0, r1, m, beta, &threads);
    if (j.qa) dk_qact_quantize(&mm->qact, x, m, w->cols);
    dk_matvec_run(mm, threads, n_chunks, dk_matvec_task, &j);
    (*mm->fused_matmuls)++;
}

/* Several products of the same X as one pool job (Q/K/V; gate/up): one wake-up instead of one per
 * matrix; task t is chunk t - first[p] of product p. */
typedef struct {
    dk_matvec_job j[DK_MATMUL_MULTI];
    int first[DK_MATMUL_MULTI + 1];
} dk_matvec_multi_job;

static void dk_matvec_multi_task(void *arg, int t, int tid) {
    dk_matvec_multi_job *mj = arg;
    int p = 0;
    while (t >= mj->first[p + 1]) p++;
    dk_matvec_task(&mj->j[p], t - mj->first[p], tid);
}

void dk_matmul_multi(dk_matmul_ctx *mm, const float *x, int m, int k, const dk_matmul_out *o, int n_o,
                     int64_t *flops) {
    if (!dk_use_fused(mm, m) || n_o > DK_MATMUL_MULTI) {
        for (int p = 0; p < n_o; p++) dk_matmul(mm, o[p].y, x, o[p].w, m, (int)o[p].w->rows, k, 0.0f, flops);
        return;
    }
    dk_matvec_multi_job mj;
    int threads = mm->pool->n;
    int64_t bytes = 0;
    bool quantize = false;
    mj.first[0] = 0;
    for (int p = 0; p < n_o; p++) {
        int th;
        mj.first[p + 1] = mj.first[p] + dk_matvec_plan(mm, &mj.j[p], o[p].y, (int)o[p].w->rows, x, o[p].w, 0,
                                                       o[p].w->rows, m, 0.0f, &th);
        bytes += o[p].w->rows * (int64_t)o[p].w->row_bytes;
        quantize = quantize || mj.j[p].qa;
        if (dk_matvec_no_room(mm, o[p].w, mj.j[p].qa)) threads = 1;
        *flops += 2 * (int64_t)m * o[p].w->rows * k;
    }
    if (bytes < DK_MATVEC_PAR_BYTES) threads = 1;
    if (quantize) dk_qact_quantize(&mm->qact, x, m, k); /* once for all products of this X */
    dk_matvec_run(mm, threads, mj.first[n_o], dk_matvec_multi_task, &mj);
    *mm->fused_matmuls += n_o;
}

/* bf16 compute (compute.h) for products of more than DK_COMPUTE_MIN_M rows. */
static bool dk_use_bf16(const dk_matmul_ctx *mm, int m) {
    return dk_compute_bf16_on(mm->compute) && m > DK_COMPUTE_MIN_M;
}

/* Y (m, nr; row stride ldy) = X · W[r0 .. r0+nr)ᵀ on the bf16 backend: a BF16 file's rows as they
 * are, other types as f32 rows (dk_weight_rows) that the backend rounds to bf16. After a failure
 * the call's later products are skipped; dk_compute_status reports it. */
static void dk_matmul_bf16(dk_matmul_ctx *mm, float *y, int ldy, const float *x, const dk_tensor *w,
                           int64_t r0, int nr, int m, int k, float beta) {
    if (mm->st) return;
    bool native = w->type == DK_GGML_TYPE_BF16;
    const void *wp = native ? (const void *)((const uint8_t *)w->data + (size_t)r0 * w->row_bytes)
                            : (const void *)dk_weight_rows(mm, w, r0, nr);
    mm->st = dk_bf16_matmul(mm->bf16, y, ldy, x, wp, native, m, nr, k, beta, mm->pool->n, &mm->err);
}

/* A model's bf16 packs (model.h: bf16_packs), one per layer matrix, in first-product order. One lock
 * for all models: contexts of one model may live on different threads. */
typedef struct {
    const dk_tensor **w; /* (n) the packed matrices */
    dk_bf16_pack **p;    /* (n) their packs */
    int n, cap;
} dk_pack_table;

static pthread_mutex_t dk_pack_mu = PTHREAD_MUTEX_INITIALIZER;

static void dk_pack_table_free(void *arg) {
    dk_pack_table *t = arg;
    if (!t) return;
    for (int i = 0; i < t->n; i++) dk_bf16_pack_free(t->p[i]);
    free(t->p);
    free(t->w);
    free(t);
}

/* W's pack, made when a context of the model first asks (dk_matmul_pack_layers at its switch to bf16;
 * a product finds it there) from the file's bf16 rows, or its f32 rows: in place or converted into
 * wbuf; NULL after a failure (mm->st). A linear search: a model has 7 per layer. */
static const dk_bf16_pack *dk_matmul_pack_locked(dk_matmul_ctx *mm, const dk_tensor *w) {
    dk_model *m = mm->model;
    if (!m->bf16_packs) {
        if (!(m->bf16_packs = calloc(1, sizeof(dk_pack_table)))) {
            mm->st = dk_fail(&mm->err, DK_ERR_NOMEM, "out of memory");
            return NULL;
        }
        m->bf16_packs_free = dk_pack_table_free;
    }
    dk_pack_table *t = m->bf16_packs;
    for (int i = 0; i < t->n; i++)
        if (t->w[i] == w) return t->p[i];
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 64;
        const dk_tensor **pw = realloc(t->w, (size_t)cap * sizeof *pw);
        if (pw) t->w = pw;
        dk_bf16_pack **pp = pw ? realloc(t->p, (size_t)cap * sizeof *pp) : NULL;
        if (!pp) {
            mm->st = dk_fail(&mm->err, DK_ERR_NOMEM, "out of memory");
            return NULL;
        }
        t->p = pp;
        t->cap = cap;
    }
    bool native = w->type == DK_GGML_TYPE_BF16;
    const void *src = native ? w->data : (const void *)dk_weight_rows(mm, w, 0, w->rows);
    dk_bf16_pack *p;
    mm->st = dk_bf16_pack_create(mm->bf16, src, native, (int)w->rows, (int)w->cols, mm->pool->n, mm->pool, &p,
                                 &mm->err);
    if (mm->st) return NULL;
    t->w[t->n] = w;
    t->p[t->n++] = p;
    return p;
}

static const dk_bf16_pack *dk_matmul_pack(dk_matmul_ctx *mm, const dk_tensor *w) {
    pthread_mutex_lock(&dk_pack_mu);
    const dk_bf16_pack *p = dk_matmul_pack_locked(mm, w);
    pthread_mutex_unlock(&dk_pack_mu);
    return p;
}

dk_status dk_matmul_pack_layers(dk_matmul_ctx *mm, dk_err *e) {
    const dk_model *m = mm->model;
    for (int l = 0; l < m->cfg.n_layer && !mm->st; l++) {
        const dk_layer_weights *lw = &m->w.layers[l];
        const dk_tensor *ws[] = {&lw->wq, &lw->wk, &lw->wv, &lw->wo, &lw->w_gate, &lw->w_up, &lw->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof *ws && !mm->st; i++) dk_matmul_pack(mm, ws[i]);
    }
    dk_status st = mm->st;
    if (st) *e = mm->err;
    mm->st = DK_OK;
    return st;
}

void dk_matmul(dk_matmul_ctx *mm, float *y, const float *x, const dk_tensor *w, int m, int n, int k,
               float beta, int64_t *flops) {
    if (dk_use_fused(mm, m)) {
        dk_matmul_fused(mm, y, n, x, w, 0, n, m, beta);
        *flops += 2 * (int64_t)m * n * k;
        return;
    }
    if (dk_use_bf16(mm, m)) {
        const dk_bf16_pack *p = !mm->st && mm->pack ? dk_matmul_pack(mm, w) : NULL;
        if (p) mm->st = dk_bf16_matmul_packed(mm->bf16, y, n, x, p, m, beta, mm->pool->n, &mm->err);
        else if (!mm->pack) dk_matmul_bf16(mm, y, n, x, w, 0, n, m, k, beta);
        *flops += 2 * (int64_t)m * n * k;
        return;
    }
    const float *wf = dk_weight_rows(mm, w, 0, n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, wf, k, beta, y, n);
    *flops += 2 * (int64_t)m * n * k;
}

void dk_matmul_head(dk_matmul_ctx *mm, float *logits, const float *x, const dk_tensor *w, int m, int blk,
                    int64_t *flops) {
    int n = (int)w->rows, k = (int)w->cols;
    if (dk_use_fused(mm, m)) { /* the vocabulary's rows split over the threads */
        dk_matmul_fused(mm, logits, n, x, w, 0, n, m, 0.0f);
        *flops += 2 * (int64_t)m * n * k;
        return;
    }
    /* the same row blocks for every file type: an F32 file then runs the very same sgemm calls as
     * a converted one (OpenBLAS's result for a column may depend on the call's n) */
    if (blk < 1 || blk > n) blk = n;
    for (int r0 = 0; r0 < n; r0 += blk) {
        int nb = n - r0 < blk ? n - r0 : blk;
        if (dk_use_bf16(mm, m)) {
            dk_matmul_bf16(mm, logits + r0, n, x, w, r0, nb, m, k, 0.0f);
            continue;
        }
        const float *wf = dk_weight_rows(mm, w, r0, nb);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, nb, k, 1.0f, x, k, wf, k, 0.0f, logits + r0,
                    n);
    }
    *flops += 2 * (int64_t)m * n * k;
}
