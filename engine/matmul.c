/* matmul.c — the products of the projections and the lm head (matmul.h): weight conversion into
 * the f32 scratch, the fused small-m path, the bf16 backend and the f32 sgemv path for decode. */
#include "matmul.h"
#include <cblas.h>
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
    dk_dequantize(j->w->type, j->src + a * j->w->row_bytes, j->dst + a * (size_t)j->w->cols, (b - a) * (size_t)j->w->cols);
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
static int dk_fused_rows(const dk_matmul_ctx *mm, int k) {
    size_t r = (32768 + (size_t)k - 1) / (size_t)k, cap = mm->wbuf_n / (size_t)k;
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
static bool dk_use_fused(const dk_matmul_ctx *mm, const dk_tensor *w, int m) {
    return mm->fused && w->type != DK_GGML_TYPE_F32 && m <= DK_FUSED_MAX_M && mm->wbuf;
}

/* Rows 0..n-1 of W (n, k) against X (m, k), Y row stride n. The conversion is interleaved with
 * the products chunk by chunk, so its time is counted in the matmul time, not in convert_s. */
static void dk_matmul_fused(dk_matmul_ctx *mm, float *y, const float *x, const dk_tensor *w, int m, int n, int k, float beta) {
    int R = dk_fused_rows(mm, k), n_chunks = (n + R - 1) / R;
    int slices = (int)(mm->wbuf_n / ((size_t)R * (size_t)k));
    int n_tasks = dk_pool_n_tasks(mm->pool, (size_t)n_chunks, 1);
    bool per_thread = mm->pool->n <= slices;
    if (!per_thread && n_tasks > slices) n_tasks = slices;
    dk_fused_job j = {w, y, x, mm->wbuf, m, n, k, R, n_chunks, n_tasks, per_thread, beta};
    /* one OpenBLAS thread per chunk call while the pool runs tasks side by side (process-wide
     * setting, restored after the job as in dk_attention) */
    int bt = openblas_get_num_threads();
    if (bt > 1) openblas_set_num_threads(1);
    dk_pool_run(mm->pool, n_tasks, dk_fused_task, &j);
    if (bt > 1) openblas_set_num_threads(bt);
    (*mm->fused_matmuls)++;
}

/* bf16 compute (compute.h) for products of more than DK_COMPUTE_MIN_M rows. */
static bool dk_use_bf16(const dk_matmul_ctx *mm, int m) { return mm->compute == DK_COMPUTE_BF16 && m > DK_COMPUTE_MIN_M; }

/* Y (m, nr; row stride ldy) = X · W[r0 .. r0+nr)ᵀ on the bf16 backend: a BF16 file's rows as they
 * are, other types as f32 rows (dk_weight_rows) that the backend rounds to bf16. After a failure
 * the call's later products are skipped; dk_compute_status reports it. */
static void dk_matmul_bf16(dk_matmul_ctx *mm, float *y, int ldy, const float *x, const dk_tensor *w, int64_t r0, int nr, int m, int k,
                           float beta) {
    if (mm->st) return;
    bool native = w->type == DK_GGML_TYPE_BF16;
    const void *wp = native ? (const void *)((const uint8_t *)w->data + (size_t)r0 * w->row_bytes) : (const void *)dk_weight_rows(mm, w, r0, nr);
    mm->st = dk_bf16_matmul(mm->bf16, y, ldy, x, wp, native, m, nr, k, beta, mm->pool->n, &mm->err);
}

/* bf16 compute, F32 weights, m <= DK_COMPUTE_MIN_M (decode): Y = X·Wᵀ as one sgemv per row of X
 * and chunk of 64 rows of W, the chunks spread over the pool (OpenBLAS on one thread per call),
 * W read once in place. sgemm with m = 1 packs W first and reads it about 3x slower (measured);
 * the f32 mode keeps that call, bit for bit. */
typedef struct {
    const dk_tensor *w;
    float *y;
    const float *x;
    int m, n, k, n_chunks, n_tasks, ldy;
    float beta;
} dk_gemv_job;

enum { DK_GEMV_ROWS = 64 };

static void dk_gemv_task(void *arg, int t, int tid) {
    (void)tid;
    const dk_gemv_job *j = arg;
    for (size_t ch = dk_task_lo((size_t)j->n_chunks, t, j->n_tasks); ch < dk_task_lo((size_t)j->n_chunks, t + 1, j->n_tasks); ch++) {
        int r0 = (int)ch * DK_GEMV_ROWS, nb = j->n - r0 < DK_GEMV_ROWS ? j->n - r0 : DK_GEMV_ROWS;
        const float *wr = (const float *)((const uint8_t *)j->w->data + (size_t)r0 * j->w->row_bytes);
        for (int i = 0; i < j->m; i++)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, nb, j->k, 1.0f, wr, j->k, j->x + (size_t)i * j->k, 1, j->beta,
                        j->y + (size_t)i * j->ldy + r0, 1);
    }
}

static bool dk_use_gemv(const dk_matmul_ctx *mm, const dk_tensor *w, int m) {
    return mm->compute == DK_COMPUTE_BF16 && w->type == DK_GGML_TYPE_F32 && m <= DK_COMPUTE_MIN_M;
}

/* Rows [r0, r0+n) of W into columns [0, n) of Y (row stride ldy). */
static void dk_matmul_gemv(dk_matmul_ctx *mm, float *y, int ldy, const float *x, const dk_tensor *w, int64_t r0, int m, int n, int k, float beta) {
    dk_tensor sub = *w;
    sub.data = (const uint8_t *)w->data + (size_t)r0 * w->row_bytes;
    int n_chunks = (n + DK_GEMV_ROWS - 1) / DK_GEMV_ROWS;
    dk_gemv_job j = {&sub, y, x, m, n, k, n_chunks, dk_pool_n_tasks(mm->pool, (size_t)n_chunks, 1), ldy, beta};
    int bt = openblas_get_num_threads();
    if (bt > 1 && mm->pool->n > 1) openblas_set_num_threads(1);
    dk_pool_run(mm->pool, j.n_tasks, dk_gemv_task, &j);
    if (bt > 1 && mm->pool->n > 1) openblas_set_num_threads(bt);
}

void dk_matmul(dk_matmul_ctx *mm, float *y, const float *x, const dk_tensor *w, int m, int n, int k, float beta, int64_t *flops) {
    if (dk_use_gemv(mm, w, m)) {
        dk_matmul_gemv(mm, y, n, x, w, 0, m, n, k, beta);
        *flops += 2 * (int64_t)m * n * k;
        return;
    }
    if (dk_use_bf16(mm, m)) {
        dk_matmul_bf16(mm, y, n, x, w, 0, n, m, k, beta);
        *flops += 2 * (int64_t)m * n * k;
        return;
    }
    if (dk_use_fused(mm, w, m)) {
        dk_matmul_fused(mm, y, x, w, m, n, k, beta);
        *flops += 2 * (int64_t)m * n * k;
        return;
    }
    const float *wf = dk_weight_rows(mm, w, 0, n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, wf, k, beta, y, n);
    *flops += 2 * (int64_t)m * n * k;
}

void dk_matmul_head(dk_matmul_ctx *mm, float *logits, const float *x, const dk_tensor *w, int m, int blk, int64_t *flops) {
    int n = (int)w->rows, k = (int)w->cols;
    if (dk_use_fused(mm, w, m)) {
        dk_matmul_fused(mm, logits, x, w, m, n, k, 0.0f);
        *flops += 2 * (int64_t)m * n * k;
        return;
    }
    /* the same row blocks for every file type: an F32 file then runs the very same sgemm calls as
     * a converted one (OpenBLAS's result for a column may depend on the call's n) */
    if (blk < 1 || blk > n) blk = n;
    for (int r0 = 0; r0 < n; r0 += blk) {
        int nb = n - r0 < blk ? n - r0 : blk;
        if (dk_use_bf16(mm, m)) { dk_matmul_bf16(mm, logits + r0, n, x, w, r0, nb, m, k, 0.0f); continue; }
        if (dk_use_gemv(mm, w, m)) { dk_matmul_gemv(mm, logits + r0, n, x, w, r0, m, nb, k, 0.0f); continue; }
        const float *wf = dk_weight_rows(mm, w, r0, nb);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, nb, k, 1.0f, x, k, wf, k, 0.0f, logits + r0, n);
    }
    *flops += 2 * (int64_t)m * n * k;
}
