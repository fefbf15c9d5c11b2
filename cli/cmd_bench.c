/* cmd_bench.c — `dashkit bench [MODEL | --shape NAME] [--tokens T] [--reps R] [--method NAME ...]`:
 * sgemm peak and dense prefill throughput measured in the same run. With --method, dense and the
 * halting method then run side by side and the last line is `halting_efficiency: X` =
 * wall_speedup / flops_speedup; without it the last line is
 * `prefill_vs_gemm_peak: Y/X` (model FLOPs counted by the engine / wall time, over sgemm peak).
 * With --decode N (converted weights), N decode steps after the T-token prefill run with the
 * fused small-m path and with whole-matrix conversion alternately, and the last line is
 * `decode_fused_vs_convert: R` (median over reps of fused tokens/s / whole-matrix tokens/s). */
#include "cli.h"
#include "cli_util.h"
#include "bench_prefix.h"
#include "blas.h"
#include "compute.h"
#include "forward.h"
#include "memory.h"
#include "model.h"
#include "policy.h"
#include "prefill.h"
#include "quant.h"
#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

static void dk_bench_usage(FILE *f) {
    fprintf(f, "usage: dashkit bench [MODEL | --shape NAME] [--tokens T] [--reps R] [--seed S] [--threads N]\n"
               "       dashkit bench --prefix-sweep ...   (rho sweep with vs without prefix sharing; --prefix-sweep --help)\n\n"
               "Measures the sgemm peak of this machine and the dense prefill of T tokens in one run.\n\n"
               "  MODEL          GGUF or llama2.c model file\n"
               "  --shape NAME   random-weight model of a known shape instead (%s)\n"
               "  --dtype T      storage type of the --shape model's weights: f32 (default), f16, bf16, q4_0, q4_1,\n"
               "                 q5_0, q5_1, q8_0, q2_K, q3_K, q4_K, q5_K, q6_K, iq4_nl, iq4_xs (K-quants and\n"
               "                 iq4_xs need dims that are multiples of 256; plain round-to-nearest quantisation)\n"
               "                 (rounded to T and kept in T, as a GGUF of that type; each matrix is converted\n"
               "                 to f32 before its sgemm: convert_s and convert_share report that cost)\n"
               "  --tokens T     prefill length (default 2048)\n"
               "  --reps R       timed repetitions, the median is reported (default 3)\n"
               "  --seed S       seed of the random weights and tokens (default 1)\n"
               "  --threads N    OpenBLAS threads (default: OpenBLAS's own; pin cores with taskset)\n"
               "  --method NAME  also run dense and this halting method side by side, alternately (%s);\n"
               "                 prints flops_speedup, wall_speedup, theoretical_speedup (the paper's\n"
               "                 L*A(T) / (l_s*A(T) + (L-l_s)*A(K)), A(n) = FLOPs of one layer on n tokens with\n"
               "                 exact causal attention, K = tokens kept) and, last, halting_efficiency =\n"
               "                 wall_speedup / flops_speedup\n"
               "  --rho R, --ls F, --tau T, --keep N, ...   method parameters, as `dashkit prefill --help`\n"
               "  --compute M    f32 (default) or bf16: with bf16, the prefill runs in f32 AND in bf16 compute\n"
               "                 alternately, next to oneDNN's bf16 matmul peak of the same shape; prints\n"
               "                 bf16_gemm_gflops, prefill_bf16_tokens_per_s, prefill_vs_bf16_peak and\n"
               "                 bf16_vs_f32_prefill (median of per-rep f32/bf16 wall-time ratios); --method,\n"
               "                 --decode and --lengths then run in bf16 compute\n"
               "  --lengths L,.. dense prefill tokens/s at each length (e.g. 2048,8192,16384,32768), one context\n"
               "                 per length (instead of the run above); prints prefill_tokens_per_s_L,\n"
               "                 prefill_gflops_L, peak_rss_bytes_L vs memory_estimate_bytes_L (with --method:\n"
               "                 dense and the method side by side per length, flops_speedup_L, wall_speedup_L,\n"
               "                 theoretical_speedup_L, halting_efficiency_L),\n"
               "                 long_context_retention_flops (the ratio at equal GFLOP/s: FLOPs per token at the\n"
               "                 shortest / at the longest) and long_context_retention = tokens/s at the longest\n"
               "                 / at the shortest\n"
               "  --decode N     after the prefill, N decode steps with the fused small-m path (each matrix\n"
               "                 converted chunk by chunk next to its product) and N with whole-matrix\n"
               "                 conversion, alternately per rep. Prints decode_tokens_per_s (the default,\n"
               "                 fused path), decode_fused_tokens_per_s, decode_convert_tokens_per_s and, last,\n"
               "                 decode_fused_vs_convert (median of the per-rep ratios); F32 weights have one\n"
               "                 path: decode_tokens_per_s only. And the streaming read bandwidth measured\n"
               "                 before each rep (best of 3 passes over 512 MiB; median of the reps):\n"
               "                 stream_read_gbps, decode_bytes_per_token (weights + KV read per token) and\n"
               "                 decode_vs_bandwidth = bytes/token x tokens/s / bandwidth\n"
               "  -h, --help     this help\n",
            dk_model_shape_names(), dk_policy_names());
}

/* GFLOP/s of C (m,n) = A (m,k) · Bᵀ, median of reps after one warm-up. */
static double dk_bench_gemm(int m, int n, int k, int reps) {
    float *a = malloc((size_t)m * k * 4), *b = malloc((size_t)n * k * 4), *c = malloc((size_t)m * n * 4);
    if (!a || !b || !c) { free(a); free(b); free(c); return 0; }
    for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    for (size_t i = 0; i < (size_t)n * k; i++) b[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
    double t[16];
    if (reps > 16) reps = 16;
    for (int r = -1; r < reps; r++) {
        double t0 = dk_time_now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
        if (r >= 0) t[r] = dk_time_now_s() - t0;
    }
    free(a); free(b); free(c);
    return 2.0 * m * n * k / dk_prefill_median(t, reps) * 1e-9;
}

/* ---- streaming read bandwidth ----
 * Each of `threads` threads sums its slice of a buffer far larger than the caches (64-bit adds in
 * four independent chains: the loads, not the adds, limit it). GB/s = buffer bytes / wall time. */
enum { DK_BW_BYTES = 512 << 20 };

typedef struct { const uint64_t *p; size_t n; uint64_t sum; } dk_bw_slice;

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
    for (; i + 4 <= n; i += 4) { s0 += p[i]; s1 += p[i + 1]; s2 += p[i + 2]; s3 += p[i + 3]; }
    uint64_t sum = s0 + s1 + s2 + s3;
#endif
    for (; i < n; i++) sum += p[i];
    a->sum = sum;
    return NULL;
}

/* One timed pass over buf (DK_BW_BYTES) on `threads` threads; GB/s. */
static double dk_bench_read_gbps(const uint64_t *buf, int threads) {
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    dk_bw_slice sl[64];
    pthread_t th[64];
    size_t n = DK_BW_BYTES / 8, per = (n / (size_t)threads) & ~(size_t)15;
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
    return DK_BW_BYTES / dt * 1e-9;
}

/* Decode after a T-token prefill: steps tokens with the fused small-m path and steps with
 * whole-matrix conversion (dk_ctx_set_fused_decode), alternately and in alternating order per
 * rep, each from the same cache (truncated back to T); one warm-up rep. */
static dk_status dk_bench_decode(dk_ctx *c, const int32_t *toks, int T, int steps, int reps, dk_err *e) {
    dk_status st;
    float *lg = malloc((size_t)dk_ctx_model(c)->cfg.n_vocab * sizeof *lg);
    if (!lg) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    double tf[16], tc[16], ratio[16], bw[16];
    uint64_t *buf = aligned_alloc(64, DK_BW_BYTES);
    if (!buf) { free(lg); return dk_fail(e, DK_ERR_NOMEM, "out of memory for the bandwidth buffer"); }
    memset(buf, 1, DK_BW_BYTES);
    dk_ctx_reset(c);
    dk_ctx_set_fused_decode(c, true);
    if ((st = dk_forward_prefill(c, toks, T, NULL, lg, e))) goto done;
    bool converts = dk_ctx_model(c)->converts; /* F32 weights: one path, timed alone */
    for (int r = -1; r < reps; r++) {
        double g = 0; /* the limit: best of 3 passes (a busy machine only lowers a pass) */
        for (int p = 0; p < 3; p++) { double x = dk_bench_read_gbps(buf, dk_blas_threads()); g = x > g ? x : g; }
        if (r >= 0) bw[r] = g;
        for (int h = 0; h < (converts ? 2 : 1); h++) {
            bool fused = !converts || ((r + h) & 1) == 0;
            if ((st = dk_ctx_truncate(c, T, e))) goto done;
            dk_ctx_set_fused_decode(c, fused);
            double t0 = dk_time_now_s();
            for (int i = 0; i < steps; i++)
                if ((st = dk_forward_decode(c, toks[i % T], lg, e))) goto done;
            double tps = steps / (dk_time_now_s() - t0);
            if (r >= 0) (fused ? tf : tc)[r] = tps;
        }
        if (r < 0 || !converts) continue;
        ratio[r] = tf[r] / tc[r];
        fprintf(stderr, "rep %d: read %.2f GB/s, decode fused %.2f tok/s, whole-matrix %.2f tok/s, ratio %.3f\n", r, bw[r], tf[r], tc[r],
                ratio[r]);
    }
    printf("decode_steps: %d\ndecode_context: %d\n", steps, T);
    printf("decode_tokens_per_s: %.2f\n", dk_prefill_median(tf, reps)); /* the default (fused) path */
    /* bytes one step reads: every weight matrix once (the token embedding only as the tied lm
     * head, else one row) and the K and V of every layer at the mean context of the steps */
    const dk_model *m = dk_ctx_model(c);
    const dk_model_config *k = &m->cfg;
    double emb = (double)m->w.tok_embd.rows * (double)m->w.tok_embd.row_bytes;
    double per_tok = (double)m->weights_bytes - (k->tied_output ? 0.0 : emb - (double)m->w.tok_embd.row_bytes) +
                     (double)k->n_layer * 2.0 * k->n_head_kv * k->head_dim * 4.0 * (T + steps / 2.0);
    double gbps = dk_prefill_median(bw, reps);
    printf("stream_read_gbps: %.2f\ndecode_bytes_per_token: %.0f\n", gbps, per_tok);
    printf("decode_vs_bandwidth: %.3f\n", per_tok * dk_prefill_median(tf, reps) * 1e-9 / gbps);
    if (!converts) goto done;
    printf("decode_fused_tokens_per_s: %.2f\ndecode_convert_tokens_per_s: %.2f\n", dk_prefill_median(tf, reps), dk_prefill_median(tc, reps));
    printf("decode_fused_vs_convert: %.3f\n", dk_prefill_median(ratio, reps));
done:
    dk_ctx_set_fused_decode(c, true);
    free(buf);
    free(lg);
    return st;
}

/* Random tokens of the bench (xorshift from the seed). */
static void dk_bench_tokens(int32_t *toks, int T, unsigned long long seed, int n_vocab) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < T; i++) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; toks[i] = (int32_t)(s % (uint64_t)n_vocab); }
}

static double dk_bench_peak_rss(void) {
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss * 1024.0 : 0.0;
}

/* --lengths: dense prefill tokens/s at each length, one context per length (longest last keeps
 * the process's peak RSS that of the longest); with a method, dense and the method side by side
 * (dk_prefill_compare_run) and the speedups per length. */
static int dk_bench_lengths(dk_model *m, const int *len, int n_len, int reps, dk_compute compute, const dk_policy *pol,
                            const dk_policy_params *pp, unsigned long long seed) {
    const dk_model_config *k = &m->cfg;
    double tps[32], fpt[32]; /* tokens/s and FLOPs per token (dense) of each length */
    dk_err e = {{0}};
    printf("compute: %s\nlengths: %d\n", dk_compute_name(compute), n_len);
    for (int i = 0; i < n_len; i++) {
        int L = len[i];
        dk_ctx *c = NULL;
        int32_t *toks = malloc((size_t)L * sizeof *toks);
        float *lg = malloc((size_t)k->n_vocab * sizeof *lg);
        if (!toks || !lg || dk_ctx_create(m, L, &c, &e) || dk_ctx_set_compute(c, compute, &e)) {
            fprintf(stderr, "dashkit bench: %s\n", toks && lg ? e.msg : "out of memory");
            free(toks); free(lg); dk_ctx_free(c);
            return 1;
        }
        dk_bench_tokens(toks, L, seed, k->n_vocab);
        double w[16];
        dk_status st = DK_OK;
        if (pol) {
            dk_prefill_compare cmp;
            if (!(st = dk_prefill_compare_run(c, pol, pp, toks, L, reps, &cmp, &e))) {
                double fs = (double)dk_flops_total(&cmp.flops_dense) / (double)dk_flops_total(&cmp.flops_method);
                double ws = cmp.wall_dense_s / cmp.wall_method_s;
                tps[i] = L / cmp.wall_dense_s;
                fpt[i] = (double)dk_flops_total(&cmp.flops_dense) / L;
                printf("prefill_tokens_per_s_%d: %.1f\nflops_speedup_%d: %.4f\nwall_speedup_%d: %.4f\ntheoretical_speedup_%d: %.4f\n"
                       "halting_efficiency_%d: %.4f\n", L, tps[i], L, fs, L, ws, L, cmp.theoretical, L, ws / fs);
            }
        } else {
            for (int r = 0; r < reps && !st; r++) { /* no warm-up: a 32K prefill is minutes on 2 cores */
                dk_ctx_reset(c);
                double t0 = dk_time_now_s();
                st = dk_forward_prefill(c, toks, L, NULL, lg, &e);
                w[r] = dk_time_now_s() - t0;
                if (!st) fprintf(stderr, "length %d rep %d: %.2f s = %.1f tok/s\n", L, r, w[r], L / w[r]);
            }
            if (!st) {
                tps[i] = L / dk_prefill_median(w, reps);
                fpt[i] = (double)dk_flops_total(&dk_ctx_stats(c)->total) / L;
                printf("prefill_tokens_per_s_%d: %.1f\n", L, tps[i]);
            }
        }
        dk_ctx_free(c);
        free(toks); free(lg);
        if (st) { fprintf(stderr, "dashkit bench: %s\n", e.msg); return 1; }
        printf("prefill_gflops_%d: %.1f\n", L, tps[i] * fpt[i] * 1e-9);
        dk_memory_estimate est;
        dk_memory_estimate_fill(k, m->weights_bytes, 4 * m->n_params, L, L, &est);
        dk_memory_estimate_add_compute(k, compute, m->tensor_type, &est);
        double need = (double)est.total_bytes;
        double rss = dk_bench_peak_rss();
        printf("memory_estimate_bytes_%d: %.0f\npeak_rss_bytes_%d: %.0f\npeak_rss_vs_estimate_%d: %.3f\n", L, need, L, rss, L, rss / need);
        fflush(stdout);
    }
    /* what the ratio would be at equal GFLOP/s: exact causal attention makes a long token dearer */
    printf("long_context_retention_flops: %.3f\n", fpt[0] / fpt[n_len - 1]);
    printf("long_context_retention: %.3f\n", tps[n_len - 1] / tps[0]);
    return 0;
}

int dk_cmd_bench(int argc, char **argv) {
    const char *path = NULL, *shape = NULL;
    long tokens = 2048, reps = 3;
    unsigned long long seed = 1;
    long threads = 0, decode = 0;
    const char *dtype = NULL;
    dk_compute compute = DK_COMPUTE_F32;
    int lengths[32], n_lengths = 0;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--prefix-sweep")) return dk_bench_prefix_sweep(argc, argv);
    const char *method = NULL;
    const char *pa_name[DK_POLICY_PARAM_COUNT], *pa_value[DK_POLICY_PARAM_COUNT];
    int n_pa = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { dk_bench_usage(stdout); return 0; }
        const dk_policy_param *pd = !strncmp(a, "--", 2) ? dk_policy_param_find(a + 2) : NULL;
        if ((pd || !strcmp(a, "--method")) && i + 1 >= argc) { fprintf(stderr, "dashkit bench: option %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--method")) { method = argv[++i]; continue; }
        if (pd) {
            for (int j = 0; j < n_pa; j++)
                if (!strcmp(pa_name[j], pd->name)) { fprintf(stderr, "dashkit bench: option %s given twice\n", a); return 2; }
            pa_name[n_pa] = pd->name;
            pa_value[n_pa++] = argv[++i];
            continue;
        }
        bool takes = !strcmp(a, "--shape") || !strcmp(a, "--dtype") || !strcmp(a, "--tokens") || !strcmp(a, "--reps") || !strcmp(a, "--seed") ||
                     !strcmp(a, "--threads") || !strcmp(a, "--decode") || !strcmp(a, "--compute") || !strcmp(a, "--lengths");
        if (takes && i + 1 >= argc) { fprintf(stderr, "dashkit bench: option %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--shape")) shape = argv[++i];
        else if (!strcmp(a, "--compute")) { if (!dk_cli_compute_arg("bench", argv[++i], &compute)) return 2; }
        else if (!strcmp(a, "--lengths")) {
            const char *v = argv[++i];
            n_lengths = 0;
            for (const char *q = v; *q;) {
                char *end;
                long long x = strtoll(q, &end, 10);
                if (end == q || x < 1 || x > (1 << 22) || (*end && *end != ',') || n_lengths == 32) {
                    fprintf(stderr, "dashkit bench: --lengths '%s' is not a list of up to 32 positive integers (e.g. 2048,8192)\n", v);
                    return 2;
                }
                lengths[n_lengths++] = (int)x;
                q = *end ? end + 1 : end;
            }
            if (n_lengths == 0) { fprintf(stderr, "dashkit bench: --lengths '%s' is empty\n", v); return 2; }
        }
        else if (!strcmp(a, "--dtype")) dtype = argv[++i];
        else if (!strcmp(a, "--tokens") || !strcmp(a, "--reps") || !strcmp(a, "--seed") || !strcmp(a, "--threads") ||
                 !strcmp(a, "--decode")) {
            char *end;
            const char *v = argv[++i];
            long long x = strtoll(v, &end, 10);
            if (*end || end == v || x <= 0 || x > (1 << 22)) {
                fprintf(stderr, "dashkit bench: %s '%s' is not a positive integer\n", dk_cli_esc(a), dk_cli_esc(v));
                return 2;
            }
            if (!strcmp(a, "--tokens")) tokens = (long)x;
            else if (!strcmp(a, "--reps")) reps = x > 15 ? 15 : (long)x;
            else if (!strcmp(a, "--threads")) threads = (long)x;
            else if (!strcmp(a, "--decode")) decode = (long)x;
            else seed = (unsigned long long)x;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "dashkit bench: unknown option '%s' (see --help)\n", dk_cli_esc(a));
            return 2;
        } else if (!path) path = a;
        else { fprintf(stderr, "dashkit bench: unexpected argument '%s'\n", dk_cli_esc(a)); return 2; }
    }
    if (!path && !shape) shape = "qwen2-0.5b";
    if (path && shape) { fprintf(stderr, "dashkit bench: give a MODEL or --shape, not both\n"); return 2; }
    uint32_t wtype = DK_GGML_TYPE_F32;
    if (dtype) {
        if (!dk_ggml_type_from_name(dtype, &wtype) || !dk_ggml_type_quantizable(wtype)) {
            fprintf(stderr, "dashkit bench: --dtype '%s' is not one of %s\n", dk_cli_esc(dtype), dk_ggml_supported_names());
            return 2;
        }
        if (path) { fprintf(stderr, "dashkit bench: --dtype applies to --shape models (a MODEL file keeps its own types)\n"); return 2; }
    }

    /* halting method and parameters (dash + tau/keep select the threshold/budget variants) */
    const dk_policy *pol = NULL;
    dk_policy_params pp;
    dk_policy_params_default(&pp);
    if (n_pa > 0 && !method) method = "dash";
    if (method) {
        dk_err pe = {{0}};
        for (int j = 0; j < n_pa && !strcmp(method, "dash"); j++)
            if (!strcmp(pa_name[j], "tau") || !strcmp(pa_name[j], "keep")) method = pa_name[j][0] == 't' ? "dash-tau" : "dash-keep";
        if (dk_policy_lookup(method, &pol, &pe)) { fprintf(stderr, "dashkit bench: %s\n", pe.msg); return 2; }
        for (int j = 0; j < n_pa; j++)
            if (dk_policy_params_set_text(pol, &pp, pa_name[j], pa_value[j], &pe)) { fprintf(stderr, "dashkit bench: %s\n", pe.msg); return 2; }
        if (dk_policy_params_validate(pol, &pp, 0, &pe)) { fprintf(stderr, "dashkit bench: %s\n", pe.msg); return 2; }
    }
    if (threads > 0) openblas_set_num_threads((int)threads);
    dk_bench_blas_note();

    dk_err e = {{0}};
    dk_model *m = NULL;
    dk_ctx *c = NULL;
    int32_t *toks = NULL;
    int rc = 1;
    if (shape) {
        dk_model_config cfg;
        if (!dk_model_shape(shape, &cfg)) {
            fprintf(stderr, "dashkit bench: unknown --shape '%s' (known: %s)\n", dk_cli_esc(shape), dk_model_shape_names());
            return 2;
        }
        if (dk_model_create_random_typed(&cfg, seed, shape, wtype, &m, &e)) { fprintf(stderr, "dashkit bench: %s\n", e.msg); return 1; }
    } else if (dk_model_load(path, NULL, &m, &e)) {
        fprintf(stderr, "dashkit bench: %s\n", e.msg);
        return 1;
    }
    const dk_model_config *k = &m->cfg;
    int T = (int)tokens;
    if (pol && dk_policy_params_validate(pol, &pp, k->n_layer, &e)) { fprintf(stderr, "dashkit bench: %s\n", e.msg); rc = 2; goto done; }
    if (n_lengths > 0) {
        if (decode > 0) { fprintf(stderr, "dashkit bench: --lengths and --decode are separate runs\n"); rc = 2; goto done; }
        printf("model: %s\ntensor_type: %s\nblas_core: %s\nblas_threads: %d\nreps: %ld\n", m->name, m->tensor_type, dk_blas_core(),
               dk_blas_threads(), reps);
        rc = dk_bench_lengths(m, lengths, n_lengths, (int)reps, compute, pol, &pp, seed);
        goto done;
    }
    if (dk_ctx_create(m, T + (int)decode, &c, &e)) { fprintf(stderr, "dashkit bench: %s\n", e.msg); goto done; }
    if (!(toks = malloc((size_t)T * sizeof *toks))) { fprintf(stderr, "dashkit bench: out of memory\n"); goto done; }
    dk_bench_tokens(toks, T, seed, k->n_vocab);

    printf("model: %s\nformat: %s\ntensor_type: %s\nn_layer: %d\nn_embd: %d\nn_head: %d\nn_head_kv: %d\nn_ff: %d\nn_vocab: %d\n",
           m->name, m->format_name, m->tensor_type, k->n_layer, k->n_embd, k->n_head, k->n_head_kv, k->n_ff, k->n_vocab);
    printf("tokens: %d\nreps: %ld\nblas_core: %s\nblas_threads: %d\n", T, reps, dk_blas_core(), dk_blas_threads());
    fflush(stdout);

    /* The machine is shared, so sgemm peak and prefill are sampled alternately, rep by rep, and
     * the medians compared. Peak = the model's largest GEMM shape at this T (FFN: T x n_ff x n_embd). */
    float *logits = malloc((size_t)k->n_vocab * sizeof *logits);
    double wall[16], gemm_s[16], conv_s[16], conv_share[16], layer_s = 0;
    double wall_b[16], peak_b[16], ratio_b[16]; /* bf16 compute (--compute bf16), same reps */
    bool bf16 = compute == DK_COMPUTE_BF16;
    dk_flops per = {{0}};
    int64_t flops = 0;
    double sq = dk_bench_gemm(2048, 2048, 2048, 3);
    for (int r = -1; r < reps && logits; r++) {
        double g = dk_bench_gemm(T, k->n_ff, k->n_embd, 3), dt = 0, dtb = 0;
        /* f32 and (with --compute bf16) bf16, the order flipping every rep */
        for (int h = 0; h < (bf16 ? 2 : 1); h++) {
            bool in_bf16 = bf16 && ((r + h) & 1) == 0;
            if (dk_ctx_set_compute(c, in_bf16 ? DK_COMPUTE_BF16 : DK_COMPUTE_F32, &e)) { fprintf(stderr, "dashkit bench: %s\n", e.msg); free(logits); goto done; }
            double pb = in_bf16 ? dk_compute_bf16_peak(T, k->n_ff, k->n_embd, 3, dk_blas_threads()) : 0;
            dk_ctx_reset(c);
            double t0 = dk_time_now_s();
            if (dk_forward_prefill(c, toks, T, NULL, logits, &e)) { fprintf(stderr, "dashkit bench: %s\n", e.msg); free(logits); goto done; }
            double t = dk_time_now_s() - t0;
            if (in_bf16) { dtb = t; if (r >= 0) peak_b[r] = pb; }
            else dt = t;
        }
        if (dk_ctx_set_compute(c, DK_COMPUTE_F32, &e)) { fprintf(stderr, "dashkit bench: %s\n", e.msg); free(logits); goto done; }
        if (r < 0) continue; /* warm-up: first touch of caches and scratch */
        if (bf16) {
            wall_b[r] = dtb;
            ratio_b[r] = dt / dtb;
            fprintf(stderr, "rep %d: bf16 peak %.1f GFLOP/s, bf16 prefill %.3f s (f32/bf16 %.3f)\n", r, peak_b[r], dtb, ratio_b[r]);
        }
        wall[r] = dt;
        gemm_s[r] = g;
        const dk_forward_stats *st = dk_ctx_stats(c);
        conv_s[r] = st->convert_s;
        conv_share[r] = st->convert_s / dt;
        flops = dk_flops_total(&st->total);
        per = st->total;
        for (int l = 0; l < st->n_layer; l++) layer_s += st->layers[l].wall_s / (double)reps;
        fprintf(stderr, "rep %d: gemm %.1f GFLOP/s, prefill %.3f s = %.1f GFLOP/s\n", r, g, dt, (double)flops / dt * 1e-9);
    }
    free(logits);
    double gemm = dk_prefill_median(gemm_s, (int)reps);
    double tw = dk_prefill_median(wall, (int)reps);
    double pf = (double)flops / tw * 1e-9;
    printf("gemm_gflops_square2048: %.1f\n", sq);
    for (int i = 0; i < DK_FLOPS_COUNT; i++)
        printf("flops_%s: %lld\n", dk_flops_component_name((dk_flops_component)i), (long long)per.c[i]);
    printf("prefill_flops: %lld\nprefill_wall_s: %.3f\nprefill_layers_wall_s: %.3f\nprefill_tokens_per_s: %.1f\n",
           (long long)flops, tw, layer_s, T / tw);
    /* weight conversion (file type -> f32) inside the prefill: medians over the reps */
    printf("convert_s: %.6f\nconvert_share: %.4f\n", dk_prefill_median(conv_s, (int)reps), dk_prefill_median(conv_share, (int)reps));
    printf("gemm_gflops: %.1f\nprefill_gflops: %.1f\nprefill_vs_gemm_peak: %.3f\n", gemm, pf, pf / gemm);
    if (bf16) {
        /* the same FLOPs in bf16 compute, over oneDNN's bf16 peak of the FFN shape */
        double twb = dk_prefill_median(wall_b, (int)reps), pk = dk_prefill_median(peak_b, (int)reps), pfb = (double)flops / twb * 1e-9;
        printf("compute: bf16\nbf16_isa: %s\nbf16_gemm_gflops: %.1f\nprefill_bf16_wall_s: %.3f\nprefill_bf16_tokens_per_s: %.1f\n"
               "prefill_bf16_gflops: %.1f\nprefill_vs_bf16_peak: %.3f\nbf16_vs_f32_prefill: %.3f\n",
               dk_compute_isa_name(), pk, twb, T / twb, pfb, pfb / pk, dk_prefill_median(ratio_b, (int)reps));
        if (dk_ctx_set_compute(c, DK_COMPUTE_BF16, &e)) { fprintf(stderr, "dashkit bench: %s\n", e.msg); goto done; }
    }
    if (pol) {
        /* dense and the method side by side, alternately, medians; halting_efficiency last */
        fflush(stdout);
        dk_prefill_compare cmp;
        if (dk_prefill_compare_run(c, pol, &pp, toks, T, (int)reps, &cmp, &e)) { fprintf(stderr, "dashkit bench: %s\n", e.msg); goto done; }
        char desc[256];
        dk_policy_params_format(pol, &pp, desc, sizeof desc);
        double fd = (double)dk_flops_total(&cmp.flops_dense), fm = (double)dk_flops_total(&cmp.flops_method);
        double fs = fd / fm, ws = cmp.wall_dense_s / cmp.wall_method_s;
        printf("method: %s\nparams: %s\nl_s: %d\nkept_tokens: %d\n", pol->name, desc, cmp.l_s, cmp.n_kept);
        printf("dense_flops: %.0f\nmethod_flops: %.0f\nmethod_flops_halt: %lld\ndense_wall_s: %.3f\nmethod_wall_s: %.3f\n", fd, fm,
               (long long)cmp.flops_method.c[DK_FLOPS_HALT], cmp.wall_dense_s, cmp.wall_method_s);
        printf("flops_speedup: %.4f\nwall_speedup: %.4f\ntheoretical_speedup: %.4f\nhalting_efficiency: %.4f\n", fs, ws,
               cmp.theoretical, ws / fs);
    }
    if (decode > 0 && dk_bench_decode(c, toks, T, (int)decode, (int)reps, &e)) { fprintf(stderr, "dashkit bench: %s\n", e.msg); goto done; }
    rc = 0;
done:
    free(toks);
    dk_ctx_free(c);
    dk_model_free(m);
    return rc;
}
