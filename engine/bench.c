/* bench.c — the measurements behind `dashkit bench` (see bench.h). */
#include "bench.h"
#include "matvec.h"
#include "qdot.h"
#include "blas.h"
#include "prefill.h"
#include <cblas.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

double dk_bench_sgemm_gflops(int m, int n, int k, int reps) {
    float *a = malloc((size_t)m * k * 4), *b = malloc((size_t)n * k * 4), *c = malloc((size_t)m * n * 4);
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return 0;
    }
    for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    for (size_t i = 0; i < (size_t)n * k; i++) b[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
    double t[DK_BENCH_MAX_REPS];
    if (reps > DK_BENCH_MAX_REPS) reps = DK_BENCH_MAX_REPS;
    for (int r = -1; r < reps; r++) {
        double t0 = dk_time_now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
        if (r >= 0) t[r] = dk_time_now_s() - t0;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * m * n * k / dk_prefill_median(t, reps) * 1e-9;
}

/* ---- streaming read bandwidth ---- */

typedef struct {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
} dk_bw_slice;

static void *dk_bw_read(void *arg) {
    dk_bw_slice *a = arg;
    const uint64_t *p = a->p;
    size_t i = 0, n = a->n;
#if defined(__AVX2__)
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_add_epi64(s0, _mm256_load_si256((const __m256i *)(p + i)));
        s1 = _mm256_add_epi64(s1, _mm256_load_si256((const __m256i *)(p + i + 4)));
        s2 = _mm256_add_epi64(s2, _mm256_load_si256((const __m256i *)(p + i + 8)));
        s3 = _mm256_add_epi64(s3, _mm256_load_si256((const __m256i *)(p + i + 12)));
    }
    uint64_t t[4];
    _mm256_storeu_si256((__m256i *)t, _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3)));
    uint64_t sum = t[0] + t[1] + t[2] + t[3];
#else
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += p[i];
        s1 += p[i + 1];
        s2 += p[i + 2];
        s3 += p[i + 3];
    }
    uint64_t sum = s0 + s1 + s2 + s3;
#endif
    for (; i < n; i++) sum += p[i];
    a->sum = sum;
    return NULL;
}

uint64_t *dk_bench_bw_buffer(void) {
    uint64_t *buf = aligned_alloc(64, DK_BENCH_BW_BYTES);
    if (buf) memset(buf, 1, DK_BENCH_BW_BYTES);
    return buf;
}

double dk_bench_read_gbps(const uint64_t *buf, int threads) {
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    dk_bw_slice sl[64];
    pthread_t th[64];
    size_t n = DK_BENCH_BW_BYTES / 8, per = (n / (size_t)threads) & ~(size_t)15;
    bool made[64] = {false};
    double t0 = dk_time_now_s();
    for (int t = 0; t < threads; t++) {
        sl[t] = (dk_bw_slice){buf + (size_t)t * per, t == threads - 1 ? n - (size_t)t * per : per, 0};
        if (t > 0) made[t] = pthread_create(&th[t], NULL, dk_bw_read, &sl[t]) == 0;
    }
    dk_bw_read(&sl[0]);
    for (int t = 1; t < threads; t++) {
        if (made[t]) pthread_join(th[t], NULL);
        else dk_bw_read(&sl[t]); /* no thread: this one reads the slice too */
    }
    double dt = dk_time_now_s() - t0;
    volatile uint64_t sink = 0;
    for (int t = 0; t < threads; t++) sink += sl[t].sum;
    (void)sink;
    return DK_BENCH_BW_BYTES / dt * 1e-9;
}

void dk_bench_tokens(int32_t *toks, int n, unsigned long long seed, int n_vocab) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        toks[i] = (int32_t)(s % (uint64_t)n_vocab);
    }
}

double dk_bench_peak_rss(void) {
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss * 1024.0 : 0.0;
}

static void dk_bench_say(void (*progress)(const char *), const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void dk_bench_say(void (*progress)(const char *), const char *fmt, ...) {
    if (!progress) return;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    progress(line);
}

/* ---- dense prefill vs the sgemm peak ---- */

/* One timed prefill of toks in the context's current compute mode. */
static dk_status dk_bench_prefill_once(dk_ctx *c, const int32_t *toks, int T, float *logits, double *wall,
                                       dk_err *e) {
    dk_ctx_reset(c);
    double t0 = dk_time_now_s();
    dk_status st = dk_forward_prefill(c, toks, T, NULL, logits, e);
    *wall = dk_time_now_s() - t0;
    return st;
}

dk_status dk_bench_prefill_run(dk_ctx *c, const int32_t *toks, int T, int reps, bool bf16,
                               dk_bench_prefill_result *r, void (*progress)(const char *line), dk_err *e) {
    const dk_model_config *k = &dk_ctx_model(c)->cfg;
    memset(r, 0, sizeof *r);
    if (reps > DK_BENCH_MAX_REPS - 1) reps = DK_BENCH_MAX_REPS - 1;
    r->reps = reps;
    float *logits = malloc((size_t)k->n_vocab * sizeof *logits);
    if (!logits) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    dk_status st = DK_OK;
    /* the machine is shared: peaks and prefills alternate rep by rep; rep -1 warms caches and scratch */
    for (int rep = -1; rep < reps && !st; rep++) {
        double g = dk_bench_sgemm_gflops(T, k->n_ff, k->n_embd, 3), dt = 0, dtb = 0, pb = 0;
        double layers_s = 0, conv_s = 0; /* of the f32 prefill (the stats of the last run are overwritten) */
        for (int h = 0; h < (bf16 ? 2 : 1) && !st; h++) { /* f32 and bf16, the order flipping every rep */
            bool in_bf16 = bf16 && ((rep + h) & 1) == 0;
            if ((st = dk_ctx_set_compute(c, in_bf16 ? DK_COMPUTE_BF16 : DK_COMPUTE_F32, e))) break;
            if (in_bf16) pb = dk_compute_bf16_peak(T, k->n_ff, k->n_embd, 3, dk_blas_threads());
            st = dk_bench_prefill_once(c, toks, T, logits, in_bf16 ? &dtb : &dt, e);
            if (st || in_bf16) continue;
            const dk_forward_stats *s = dk_ctx_stats(c);
            for (int l = 0; l < s->n_layer; l++) layers_s += s->layers[l].wall_s;
            conv_s = s->convert_s;
            r->flops = dk_flops_total(&s->total);
            r->per = s->total;
        }
        dk_status s2 = dk_ctx_set_compute(c, DK_COMPUTE_F32, e);
        if (!st) st = s2;
        if (st || rep < 0) continue;
        if (bf16) {
            r->wall_b[rep] = dtb, r->peak_b[rep] = pb, r->ratio_b[rep] = dt / dtb;
            dk_bench_say(progress, "rep %d: bf16 peak %.1f GFLOP/s, bf16 prefill %.3f s (f32/bf16 %.3f)", rep,
                         pb, dtb, dt / dtb);
        }
        r->wall[rep] = dt, r->gemm[rep] = g, r->conv_s[rep] = conv_s, r->conv_share[rep] = conv_s / dt;
        r->layers_wall_s += layers_s / (double)reps;
        dk_bench_say(progress, "rep %d: gemm %.1f GFLOP/s, prefill %.3f s = %.1f GFLOP/s", rep, g, dt,
                     (double)r->flops / dt * 1e-9);
    }
    free(logits);
    return st;
}

/* ---- decode ---- */

double dk_bench_decode_bytes(const dk_model *m, double ctx, bool kv_bf16) {
    const dk_model_config *k = &m->cfg;
    double emb = (double)m->w.tok_embd.rows * (double)m->w.tok_embd.row_bytes;
    return (double)m->weights_bytes - (k->tied_output ? 0.0 : emb - (double)m->w.tok_embd.row_bytes) +
           (double)k->n_layer * 2.0 * k->n_head_kv * k->head_dim * (kv_bf16 ? 2.0 : 4.0) * ctx;
}

/* Whether some decode matrix of m has a type that `has` accepts. */
static bool dk_bench_any_type(const dk_model *m, bool (*has)(uint32_t)) {
    bool any = has(m->w.output.type);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        const dk_layer_weights *w = &m->w.layers[l];
        const dk_tensor *t[] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->w_gate, &w->w_up, &w->w_down};
        for (int i = 0; i < 7; i++) any = any || has(t[i]->type);
    }
    return any;
}

/* The streaming read bandwidth: best of 3 passes (a busy machine only lowers a pass). */
static double dk_bench_read_best(const uint64_t *buf) {
    double g = 0;
    for (int p = 0; p < 3; p++) {
        double x = dk_bench_read_gbps(buf, dk_blas_threads());
        g = x > g ? x : g;
    }
    return g;
}

dk_status dk_bench_decode_run(dk_ctx *c, const int32_t *toks, int T, int steps, int reps, bool prefilled,
                              dk_bench_decode_result *r, void (*progress)(const char *line), dk_err *e) {
    const dk_model *m = dk_ctx_model(c);
    memset(r, 0, sizeof *r);
    if (reps > DK_BENCH_MAX_REPS - 1) reps = DK_BENCH_MAX_REPS - 1;
    r->reps = reps, r->steps = steps, r->context = T, r->converts = m->converts; /* F32 weights: one path */
    const uint16_t *kh, *vh;
    r->bytes_per_token = dk_bench_decode_bytes(m, T + steps / 2.0, dk_ctx_cache_bf16(c, 0, &kh, &vh));
    float *lg = malloc((size_t)m->cfg.n_vocab * sizeof *lg);
    uint64_t *buf = dk_bench_bw_buffer();
    if (!lg || !buf) {
        free(lg);
        free(buf);
        return dk_fail(e, DK_ERR_NOMEM, "out of memory for the decode bench");
    }
    dk_status st = DK_OK;
    /* the paths timed, in turn: fused (AVX-512 kernels where the CPU has them), fused on AVX2 only
     * (AVX-512 CPUs, models with matrices of such a type; in q8 compute with q8 dots: fused with f32
     * dots instead), whole-matrix conversion (converted weights) */
    enum { DK_BENCH_FUSED, DK_BENCH_AVX2, DK_BENCH_F32DOT, DK_BENCH_CONVERT };
    int paths[3] = {DK_BENCH_FUSED}, n_paths = 1;
    dk_compute mode = dk_ctx_compute(c);
    r->q8 = mode == DK_COMPUTE_Q8 && dk_bench_any_type(m, dk_qdot_type);
    r->avx512 = !r->q8 && dk_matvec_set_avx512(true) && dk_bench_any_type(m, dk_matvec_avx512_type);
    if (r->avx512) paths[n_paths++] = DK_BENCH_AVX2;
    if (r->q8) paths[n_paths++] = DK_BENCH_F32DOT;
    if (r->converts) paths[n_paths++] = DK_BENCH_CONVERT;
    dk_ctx_set_fused_decode(c, true);
    if (!prefilled) dk_ctx_reset(c);
    if (!prefilled && (st = dk_forward_prefill(c, toks, T, NULL, lg, e))) goto done;
    for (int rep = -1; rep < reps; rep++) {
        for (int h = 0; h < n_paths; h++) {
            int path = paths[(rep + 1 + h) % n_paths];
            if ((st = dk_ctx_truncate(c, T, e))) goto done;
            dk_ctx_set_fused_decode(c, path != DK_BENCH_CONVERT);
            dk_matvec_set_avx512(path != DK_BENCH_AVX2);
            /* q8's few-row products in f32 dots: bf16 compute, which differs from q8 in nothing else */
            if (r->q8 && (st = dk_ctx_set_compute(c, path == DK_BENCH_F32DOT ? DK_COMPUTE_BF16 : mode, e)))
                goto done;
            /* the limit, measured right before and right after the fused decode (the machine's
             * bandwidth drifts with its neighbours: a ratio pairs a decode with its own surroundings) */
            bool bw = path == DK_BENCH_FUSED && rep >= 0;
            double g = bw ? dk_bench_read_best(buf) : 0, t0 = dk_time_now_s();
            for (int i = 0; i < steps; i++)
                if ((st = dk_forward_decode(c, toks[i % T], lg, e))) goto done;
            double tps = steps / (dk_time_now_s() - t0);
            if (bw) r->read_gbps[rep] = 0.5 * (g + dk_bench_read_best(buf));
            if (rep >= 0)
                (path == DK_BENCH_FUSED    ? r->fused
                 : path == DK_BENCH_AVX2   ? r->avx2
                 : path == DK_BENCH_F32DOT ? r->f32dot
                                           : r->convert)[rep] = tps;
        }
        if (rep < 0) continue;
        r->bw_ratio[rep] = r->bytes_per_token * r->fused[rep] * 1e-9 / r->read_gbps[rep];
        if (r->avx512) r->avx512_ratio[rep] = r->fused[rep] / r->avx2[rep];
        if (r->q8) r->q8_ratio[rep] = r->fused[rep] / r->f32dot[rep];
        if (r->converts) r->ratio[rep] = r->fused[rep] / r->convert[rep];
        dk_bench_say(progress,
                     "rep %d: read %.2f GB/s, decode fused %.2f tok/s (%s %.2f), whole-matrix %.2f tok/s",
                     rep, r->read_gbps[rep], r->fused[rep], r->q8 ? "f32 dots" : "AVX2 kernels",
                     r->q8 ? r->f32dot[rep] : r->avx2[rep], r->convert[rep]);
    }
done:
    dk_ctx_set_fused_decode(c, true);
    dk_matvec_set_avx512(true);
    if (r->q8) {
        dk_err e2;
        dk_status s2 = dk_ctx_set_compute(c, mode, &e2); /* back to q8 (it ran before: cannot fail) */
        if (!st && s2) st = s2, *e = e2;
    }
    free(buf);
    free(lg);
    return st;
}
