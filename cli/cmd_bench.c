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
#include "bench.h"
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void dk_bench_usage(FILE *f) {
    fprintf(
        f,
        "usage: dashkit bench [MODEL | --shape NAME] [--tokens T] [--reps R] [--seed S] [--threads N]\n"
        "       dashkit bench --prefix-sweep ...   (rho sweep with vs without prefix sharing; --prefix-sweep "
        "--help)\n\n"
        "Measures the sgemm peak of this machine and the dense prefill of T tokens in one run.\n\n"
        "  MODEL          GGUF or llama2.c model file\n"
        "  --shape NAME   random-weight model of a known shape instead (%s)\n"
        "  --dtype T      storage type of the --shape model's weights: f32 (default), f16, bf16, q4_0, "
        "q4_1,\n"
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
        "  --compute M    f32 (default), bf16 or q8: with bf16 or q8, the prefill runs in f32 AND in bf16\n"
        "                 compute alternately, next to oneDNN's bf16 matmul peak of the same shape; prints\n"
        "                 bf16_gemm_gflops, prefill_bf16_tokens_per_s, prefill_vs_bf16_peak and\n"
        "                 bf16_vs_f32_prefill (median of per-rep f32/bf16 wall-time ratios); --method,\n"
        "                 --decode and --lengths then run in that compute (q8 --decode: also with f32\n"
        "                 dots, decode_f32dot_tokens_per_s and decode_q8_vs_f32dot)\n"
        "  --lengths L,.. dense prefill tokens/s at each length (e.g. 2048,8192,16384,32768), one context\n"
        "                 per length, each after an untimed 64-token prefill (weights paged in, oneDNN "
        "kernels\n"
        "                 and bf16 packs made), instead of the run above; prints prefill_tokens_per_s_L,\n"
        "                 prefill_gflops_L, peak_rss_bytes_L (before any --decode) vs "
        "memory_estimate_bytes_L (with --method:\n"
        "                 dense and the method side by side per length, flops_speedup_L, wall_speedup_L,\n"
        "                 theoretical_speedup_L, halting_efficiency_L),\n"
        "                 long_context_retention_flops (the ratio at equal GFLOP/s: FLOPs per token at the\n"
        "                 shortest / at the longest) and long_context_retention = tokens/s at the longest\n"
        "                 / at the shortest; with --decode N (one length, no --method) the decode lines\n"
        "                 of --decode follow, after that length's prefill\n"
        "  --decode N     after the prefill, N decode steps with the fused small-m path (each weight\n"
        "                 row read once in its file type next to its dot products) and N with whole-\n"
        "                 matrix conversion, alternately per rep. Prints decode_tokens_per_s (the default,\n"
        "                 fused path), decode_fused_tokens_per_s, decode_convert_tokens_per_s and, last,\n"
        "                 decode_fused_vs_convert (median of the per-rep ratios); F32 weights are timed\n"
        "                 on the fused path only: decode_tokens_per_s. And the streaming read bandwidth "
        "measured\n"
        "                 right before and after each rep's fused decode (best of 3 passes over 512 MiB\n"
        "                 each, their mean; median of the reps): stream_read_gbps,\n"
        "                 decode_bytes_per_token (weights + KV read per token) and decode_vs_bandwidth =\n"
        "                 bytes/token x tokens/s / bandwidth (median of the per-rep ratios). On CPUs with "
        "AVX-512F/BW\n"
        "                 and files with Q8_0/Q5_0/Q4_K/Q6_K matrices the fused path also runs on its AVX2\n"
        "                 kernels (same bits) in turn: decode_avx2_tokens_per_s and decode_avx512_vs_avx2\n"
        "                 (median of the per-rep ratios)\n"
        "  -h, --help     this help\n",
        dk_model_shape_names(), dk_policy_names());
}

/* Options of `dashkit bench` (the --prefix-sweep form has its own, bench_prefix.c). */
typedef struct {
    const char *path, *shape, *dtype;
    dk_cli_method_args m; /* --method (none: a dense bench), its parameters, --compute */
    uint32_t wtype;       /* --dtype as a ggml type (F32 without it) */
    long tokens, reps, threads, decode;
    unsigned long long seed;
    int lengths[32], n_lengths;
} dk_bench_args;

/* --lengths L1,L2,...: up to 32 positive integers. */
static bool dk_bench_parse_lengths(const char *v, dk_bench_args *a) {
    a->n_lengths = 0;
    for (const char *q = v; *q;) {
        char *end;
        long long x = strtoll(q, &end, 10);
        if (end == q || x < 1 || x > (1 << 22) || (*end && *end != ',') || a->n_lengths == 32) {
            fprintf(stderr,
                    "dashkit bench: --lengths '%s' is not a list of up to 32 positive integers (e.g. "
                    "2048,8192)\n",
                    v);
            return false;
        }
        a->lengths[a->n_lengths++] = (int)x;
        q = *end ? end + 1 : end;
    }
    if (a->n_lengths == 0) {
        fprintf(stderr, "dashkit bench: --lengths '%s' is empty\n", v);
        return false;
    }
    return true;
}

/* --tokens, --reps, --seed, --threads, --decode: a positive integer. */
static bool dk_bench_parse_count(const char *opt, const char *v, dk_bench_args *a) {
    long long x;
    if (!dk_bench_parse_count_value(opt, v, 1, &x)) return false;
    if (!strcmp(opt, "--decode")) a->decode = (long)x;
    else dk_bench_set_count(opt, x, &a->tokens, &a->reps, &a->threads, &a->seed);
    return true;
}

/* argv into a; -1 to go on, else the exit code (help or a usage error printed). */
static int dk_bench_parse(int argc, char **argv, dk_bench_args *a) {
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (dk_cli_help(s, dk_bench_usage)) return 0;
        const dk_policy_param *pd = !strncmp(s, "--", 2) ? dk_policy_param_find(s + 2) : NULL;
        bool count = !strcmp(s, "--tokens") || !strcmp(s, "--reps") || !strcmp(s, "--seed") ||
                     !strcmp(s, "--threads") || !strcmp(s, "--decode");
        bool method = dk_cli_method_args_takes(s, pd);
        bool takes = method || count || !strcmp(s, "--shape") || !strcmp(s, "--dtype") ||
                     !strcmp(s, "--lengths");
        if (takes && !dk_cli_has_value("bench", argc, argv, i)) return 2;
        if (method) {
            if (!dk_cli_method_args_opt("bench", &a->m, s, pd, argv[++i])) return 2;
        } else if (!strcmp(s, "--shape")) a->shape = argv[++i];
        else if (!strcmp(s, "--dtype")) a->dtype = argv[++i];
        else if (!strcmp(s, "--lengths")) {
            if (!dk_bench_parse_lengths(argv[++i], a)) return 2;
        } else if (count) {
            if (!dk_bench_parse_count(s, argv[++i], a)) return 2;
        } else if (s[0] == '-' && s[1]) {
            fprintf(stderr, "dashkit bench: unknown option '%s' (see --help)\n", dk_cli_esc(s));
            return 2;
        } else if (!a->path) a->path = s;
        else {
            fprintf(stderr, "dashkit bench: unexpected argument '%s'\n", dk_cli_esc(s));
            return 2;
        }
    }
    if (!a->path && !a->shape) a->shape = "qwen2-0.5b";
    if (a->path && a->shape) {
        fprintf(stderr, "dashkit bench: give a MODEL or --shape, not both\n");
        return 2;
    }
    a->wtype = DK_GGML_TYPE_F32;
    if (a->dtype) {
        if (!dk_ggml_type_from_name(a->dtype, &a->wtype) || !dk_ggml_type_quantizable(a->wtype)) {
            fprintf(stderr, "dashkit bench: --dtype '%s' is not one of %s\n", dk_cli_esc(a->dtype),
                    dk_ggml_supported_names());
            return 2;
        }
        if (a->path) {
            fprintf(stderr,
                    "dashkit bench: --dtype applies to --shape models (a MODEL file keeps its own types)\n");
            return 2;
        }
    }
    return -1;
}

/* The model of the bench: MODEL, or a random one of --shape in --dtype; 0 ok, else the exit code. */
static int dk_bench_model(const dk_bench_args *a, dk_model **m) {
    dk_err e = {{0}};
    dk_model_config cfg;
    if (a->shape && !dk_model_shape(a->shape, &cfg)) {
        fprintf(stderr, "dashkit bench: unknown --shape '%s' (known: %s)\n", dk_cli_esc(a->shape),
                dk_model_shape_names());
        return 2;
    }
    if (a->shape ? dk_model_create_random_typed(&cfg, a->seed, a->shape, a->wtype, m, &e)
                 : dk_model_load(a->path, NULL, m, &e)) {
        fprintf(stderr, "dashkit bench: %s\n", e.msg);
        return 1;
    }
    return 0;
}

static void dk_bench_progress(const char *line) { fprintf(stderr, "%s\n", line); }

/* Dense prefill vs the sgemm peak, and with bf16 (or q8: the same prefill) the same prefill in bf16
 * compute side by side; the context is left in `compute` for what follows. */
static int dk_bench_prefill(dk_ctx *c, const int32_t *toks, int T, int reps, dk_compute compute) {
    bool bf16 = dk_compute_bf16_on(compute);
    dk_bench_prefill_result r;
    dk_err e = {{0}};
    double sq = dk_bench_sgemm_gflops(2048, 2048, 2048, 3);
    if (dk_bench_prefill_run(c, toks, T, reps, bf16, &r, dk_bench_progress, &e)) {
        fprintf(stderr, "dashkit bench: %s\n", e.msg);
        return 1;
    }
    double gemm = dk_prefill_median(r.gemm, reps), tw = dk_prefill_median(r.wall, reps),
           pf = (double)r.flops / tw * 1e-9;
    printf("gemm_gflops_square2048: %.1f\n", sq);
    for (int i = 0; i < DK_FLOPS_COUNT; i++)
        printf("flops_%s: %lld\n", dk_flops_component_name((dk_flops_component)i), (long long)r.per.c[i]);
    printf("prefill_flops: %lld\nprefill_wall_s: %.3f\nprefill_layers_wall_s: %.3f\nprefill_tokens_per_s: "
           "%.1f\n",
           (long long)r.flops, tw, r.layers_wall_s, T / tw);
    /* weight conversion (file type -> f32) inside the prefill: medians over the reps */
    printf("convert_s: %.6f\nconvert_share: %.4f\n", dk_prefill_median(r.conv_s, reps),
           dk_prefill_median(r.conv_share, reps));
    printf("gemm_gflops: %.1f\nprefill_gflops: %.1f\nprefill_vs_gemm_peak: %.3f\n", gemm, pf, pf / gemm);
    if (!bf16) return 0;
    /* the same FLOPs in bf16 compute, over oneDNN's bf16 peak of the FFN shape */
    double twb = dk_prefill_median(r.wall_b, reps), pk = dk_prefill_median(r.peak_b, reps),
           pfb = (double)r.flops / twb * 1e-9;
    printf("compute: bf16\nbf16_isa: %s\nbf16_gemm_gflops: %.1f\nprefill_bf16_wall_s: "
           "%.3f\nprefill_bf16_tokens_per_s: %.1f\n"
           "prefill_bf16_gflops: %.1f\nprefill_vs_bf16_peak: %.3f\nbf16_vs_f32_prefill: %.3f\n",
           dk_compute_isa_name(), pk, twb, T / twb, pfb, pfb / pk, dk_prefill_median(r.ratio_b, reps));
    if (dk_ctx_set_compute(c, compute, &e)) {
        fprintf(stderr, "dashkit bench: %s\n", e.msg);
        return 1;
    }
    return 0;
}

/* Dense and the halting method side by side, alternately, medians; halting_efficiency last. */
static int dk_bench_halting(dk_ctx *c, const dk_policy *pol, const dk_policy_params *pp, const int32_t *toks,
                            int T, int reps) {
    fflush(stdout);
    dk_prefill_compare cmp;
    dk_err e = {{0}};
    if (dk_prefill_compare_run(c, pol, pp, toks, T, reps, &cmp, &e)) {
        fprintf(stderr, "dashkit bench: %s\n", e.msg);
        return 1;
    }
    char desc[256];
    dk_policy_params_format(pol, pp, desc, sizeof desc);
    double fd = (double)dk_flops_total(&cmp.flops_dense), fm = (double)dk_flops_total(&cmp.flops_method);
    double fs = fd / fm, ws = cmp.wall_dense_s / cmp.wall_method_s;
    printf("method: %s\nparams: %s\nl_s: %d\nkept_tokens: %d\n", pol->name, desc, cmp.l_s, cmp.n_kept);
    printf("dense_flops: %.0f\nmethod_flops: %.0f\nmethod_flops_halt: %lld\ndense_wall_s: "
           "%.3f\nmethod_wall_s: %.3f\n",
           fd, fm, (long long)cmp.flops_method.c[DK_FLOPS_HALT], cmp.wall_dense_s, cmp.wall_method_s);
    printf("flops_speedup: %.4f\nwall_speedup: %.4f\ntheoretical_speedup: %.4f\nhalting_efficiency: %.4f\n",
           fs, ws, cmp.theoretical, ws / fs);
    return 0;
}

/* Decode after the prefill: the fused small-m path vs whole-matrix conversion, next to the
 * streaming read bandwidth (decode_vs_bandwidth); on AVX-512 CPUs the fused path on AVX2 kernels
 * only beside it (decode_avx512_vs_avx2); decode_fused_vs_convert last. */
static int dk_bench_decode(dk_ctx *c, const int32_t *toks, int T, int steps, int reps, bool prefilled) {
    dk_bench_decode_result r;
    dk_err e = {{0}};
    if (dk_bench_decode_run(c, toks, T, steps, reps, prefilled, &r, dk_bench_progress, &e)) {
        fprintf(stderr, "dashkit bench: %s\n", e.msg);
        return 1;
    }
    double tps = dk_prefill_median(r.fused, reps), gbps = dk_prefill_median(r.read_gbps, reps);
    printf("decode_steps: %d\ndecode_context: %d\n", steps, T);
    printf("decode_tokens_per_s: %.2f\n", tps); /* the default (fused) path */
    printf("stream_read_gbps: %.2f\ndecode_bytes_per_token: %.0f\n", gbps, r.bytes_per_token);
    printf("decode_vs_bandwidth: %.3f\n", dk_prefill_median(r.bw_ratio, reps));
    if (r.avx512) {
        printf("decode_avx2_tokens_per_s: %.2f\n", dk_prefill_median(r.avx2, reps));
        printf("decode_avx512_vs_avx2: %.3f\n", dk_prefill_median(r.avx512_ratio, reps));
    }
    if (r.q8) {
        printf("decode_f32dot_tokens_per_s: %.2f\n", dk_prefill_median(r.f32dot, reps));
        printf("decode_q8_vs_f32dot: %.3f\n", dk_prefill_median(r.q8_ratio, reps));
    }
    if (!r.converts) return 0;
    printf("decode_fused_tokens_per_s: %.2f\ndecode_convert_tokens_per_s: %.2f\n", tps,
           dk_prefill_median(r.convert, reps));
    printf("decode_fused_vs_convert: %.3f\n", dk_prefill_median(r.ratio, reps));
    return 0;
}

enum { DK_BENCH_WARMUP_TOKENS = 64 };

/* --lengths: dense prefill tokens/s at each length, one context per length (longest last keeps
 * the process's peak RSS that of the longest); with a method, dense and the method side by side
 * (dk_prefill_compare_run) and the speedups per length. */
static int dk_bench_lengths(dk_model *m, const int *len, int n_len, int reps, dk_compute compute,
                            const dk_policy *pol, const dk_policy_params *pp, unsigned long long seed,
                            int decode) {
    const dk_model_config *k = &m->cfg;
    double tps[32], fpt[32]; /* tokens/s and FLOPs per token (dense) of each length */
    dk_err e = {{0}};
    printf("compute: %s\nlengths: %d\n", dk_compute_name(compute), n_len);
    for (int i = 0; i < n_len; i++) {
        int L = len[i];
        dk_ctx *c = NULL;
        int32_t *toks = malloc((size_t)L * sizeof *toks);
        float *lg = malloc((size_t)k->n_vocab * sizeof *lg);
        if (!toks || !lg || dk_ctx_create(m, L + decode, &c, &e) || dk_ctx_set_compute(c, compute, &e)) {
            fprintf(stderr, "dashkit bench: %s\n", toks && lg ? e.msg : "out of memory");
            free(toks);
            free(lg);
            dk_ctx_free(c);
            return 1;
        }
        dk_bench_tokens(toks, L, seed, k->n_vocab);
        double w[16];
        dk_status st = DK_OK;
        if (pol) {
            dk_prefill_compare cmp;
            if (!(st = dk_prefill_compare_run(c, pol, pp, toks, L, reps, &cmp, &e))) {
                double fs = (double)dk_flops_total(&cmp.flops_dense) /
                            (double)dk_flops_total(&cmp.flops_method);
                double ws = cmp.wall_dense_s / cmp.wall_method_s;
                tps[i] = L / cmp.wall_dense_s;
                fpt[i] = (double)dk_flops_total(&cmp.flops_dense) / L;
                printf("prefill_tokens_per_s_%d: %.1f\nflops_speedup_%d: %.4f\nwall_speedup_%d: "
                       "%.4f\ntheoretical_speedup_%d: %.4f\n"
                       "halting_efficiency_%d: %.4f\n",
                       L, tps[i], L, fs, L, ws, L, cmp.theoretical, L, ws / fs);
            }
        } else {
            /* warm-up: a short prefill (weights paged in, oneDNN's kernels made, bf16 packs
             * built: what any longer use of the context pays once), not one of the length's: a
             * 32K prefill is minutes on 2 cores */
            int wu = L < DK_BENCH_WARMUP_TOKENS ? L : DK_BENCH_WARMUP_TOKENS;
            st = dk_forward_prefill(c, toks, wu, NULL, lg, &e);
            for (int r = 0; r < reps && !st; r++) {
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
        /* the peak before --decode: its bandwidth passes read a 512 MiB buffer of the bench's own */
        double rss = dk_bench_peak_rss();
        if (!st && decode > 0 && dk_bench_decode(c, toks, L, decode, reps, true)) {
            dk_ctx_free(c);
            free(toks);
            free(lg);
            return 1;
        }
        dk_ctx_free(c);
        free(toks);
        free(lg);
        if (st) {
            fprintf(stderr, "dashkit bench: %s\n", e.msg);
            return 1;
        }
        printf("prefill_gflops_%d: %.1f\n", L, tps[i] * fpt[i] * 1e-9);
        dk_memory_estimate est;
        dk_memory_estimate_fill(k, m->weights_bytes, 4 * m->n_params, L, L, &est);
        dk_memory_estimate_add_compute(k, compute, m->tensor_type, &est);
        double need = (double)est.total_bytes;
        printf("memory_estimate_bytes_%d: %.0f\npeak_rss_bytes_%d: %.0f\npeak_rss_vs_estimate_%d: %.3f\n", L,
               need, L, rss, L, rss / need);
        fflush(stdout);
    }
    /* what the ratio would be at equal GFLOP/s: exact causal attention makes a long token dearer */
    printf("long_context_retention_flops: %.3f\n", fpt[0] / fpt[n_len - 1]);
    printf("long_context_retention: %.3f\n", tps[n_len - 1] / tps[0]);
    return 0;
}

int dk_cmd_bench(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--prefix-sweep")) return dk_bench_prefix_sweep(argc, argv);
    dk_bench_args a = {.m = {.compute = DK_COMPUTE_F32}, .tokens = 2048, .reps = 3, .seed = 1};
    int rc = dk_bench_parse(argc, argv, &a);
    if (rc >= 0) return rc;
    /* halting method and parameters (dash + tau/keep select the threshold/budget variants) */
    const dk_policy *pol = NULL;
    dk_policy_params pp;
    dk_policy_params_default(&pp);
    if (a.m.n_pa > 0 && !a.m.method) a.m.method = "dash";
    if (a.m.method && !dk_cli_policy_resolve("bench", a.m.method, a.m.pa, a.m.n_pa, &pol, &pp)) return 2;
    if (a.threads > 0) openblas_set_num_threads((int)a.threads);
    dk_bench_blas_note();

    dk_err e = {{0}};
    dk_model *m = NULL;
    dk_ctx *c = NULL;
    int32_t *toks = NULL;
    if ((rc = dk_bench_model(&a, &m))) return rc;
    rc = 1;
    const dk_model_config *k = &m->cfg;
    int T = (int)a.tokens, reps = (int)a.reps;
    if (pol && dk_policy_params_validate(pol, &pp, k->n_layer, &e)) {
        fprintf(stderr, "dashkit bench: %s\n", e.msg);
        rc = 2;
        goto done;
    }
    if (a.n_lengths > 0) {
        if (a.decode > 0 && (a.n_lengths > 1 || pol)) {
            fprintf(stderr, "dashkit bench: --decode after --lengths takes one length and no --method\n");
            rc = 2;
            goto done;
        }
        printf("model: %s\ntensor_type: %s\nblas_core: %s\nblas_threads: %d\nblas_thread_timeout: %d\nreps: "
               "%ld\n",
               m->name, m->tensor_type, dk_blas_core(), dk_blas_threads(), dk_blas_thread_timeout(), a.reps);
        rc = dk_bench_lengths(m, a.lengths, a.n_lengths, reps, a.m.compute, pol, &pp, a.seed, (int)a.decode);
        goto done;
    }
    if (dk_ctx_create(m, T + (int)a.decode, &c, &e)) {
        fprintf(stderr, "dashkit bench: %s\n", e.msg);
        goto done;
    }
    if (!(toks = malloc((size_t)T * sizeof *toks))) {
        fprintf(stderr, "dashkit bench: out of memory\n");
        goto done;
    }
    dk_bench_tokens(toks, T, a.seed, k->n_vocab);
    printf("model: %s\nformat: %s\ntensor_type: %s\nn_layer: %d\nn_embd: %d\nn_head: %d\nn_head_kv: "
           "%d\nn_ff: %d\nn_vocab: %d\n",
           m->name, m->format_name, m->tensor_type, k->n_layer, k->n_embd, k->n_head, k->n_head_kv, k->n_ff,
           k->n_vocab);
    printf("tokens: %d\nreps: %ld\nblas_core: %s\nblas_threads: %d\nblas_thread_timeout: %d\n", T, a.reps,
           dk_blas_core(), dk_blas_threads(), dk_blas_thread_timeout());
    fflush(stdout);
    if (dk_bench_prefill(c, toks, T, reps, a.m.compute)) goto done;
    if (pol && dk_bench_halting(c, pol, &pp, toks, T, reps)) goto done;
    if (a.decode > 0 && dk_bench_decode(c, toks, T, (int)a.decode, reps, false)) goto done;
    rc = 0;
done:
    free(toks);
    dk_ctx_free(c);
    dk_model_free(m);
    return rc;
}
