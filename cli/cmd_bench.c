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
#include "forward.h"
#include "model.h"
#include "policy.h"
#include "prefill.h"
#include "quant.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
               "  --decode N     after the prefill, N decode steps with the fused small-m path (each matrix\n"
               "                 converted chunk by chunk next to its product) and N with whole-matrix\n"
               "                 conversion, alternately per rep. Prints decode_tokens_per_s (the default,\n"
               "                 fused path), decode_fused_tokens_per_s, decode_convert_tokens_per_s and, last,\n"
               "                 decode_fused_vs_convert (median of the per-rep ratios); F32 weights have one\n"
               "                 path: decode_tokens_per_s only\n"
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

/* Decode after a T-token prefill: steps tokens with the fused small-m path and steps with
 * whole-matrix conversion (dk_ctx_set_fused_decode), alternately and in alternating order per
 * rep, each from the same cache (truncated back to T); one warm-up rep. */
static dk_status dk_bench_decode(dk_ctx *c, const int32_t *toks, int T, int steps, int reps, dk_err *e) {
    dk_status st;
    float *lg = malloc((size_t)dk_ctx_model(c)->cfg.n_vocab * sizeof *lg);
    if (!lg) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    double tf[16], tc[16], ratio[16];
    dk_ctx_reset(c);
    dk_ctx_set_fused_decode(c, true);
    if ((st = dk_forward_prefill(c, toks, T, NULL, lg, e))) goto done;
    bool converts = dk_ctx_model(c)->converts; /* F32 weights: one path, timed alone */
    for (int r = -1; r < reps; r++) {
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
        fprintf(stderr, "rep %d: decode fused %.2f tok/s, whole-matrix %.2f tok/s, ratio %.3f\n", r, tf[r], tc[r], ratio[r]);
    }
    printf("decode_steps: %d\ndecode_context: %d\n", steps, T);
    printf("decode_tokens_per_s: %.2f\n", dk_prefill_median(tf, reps)); /* the default (fused) path */
    if (!converts) goto done;
    printf("decode_fused_tokens_per_s: %.2f\ndecode_convert_tokens_per_s: %.2f\n", dk_prefill_median(tf, reps), dk_prefill_median(tc, reps));
    printf("decode_fused_vs_convert: %.3f\n", dk_prefill_median(ratio, reps));
done:
    dk_ctx_set_fused_decode(c, true);
    free(lg);
    return st;
}

int dk_cmd_bench(int argc, char **argv) {
    const char *path = NULL, *shape = NULL;
    long tokens = 2048, reps = 3;
    unsigned long long seed = 1;
    long threads = 0, decode = 0;
    const char *dtype = NULL;
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
                     !strcmp(a, "--threads") || !strcmp(a, "--decode");
        if (takes && i + 1 >= argc) { fprintf(stderr, "dashkit bench: option %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--shape")) shape = argv[++i];
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
    if (dk_ctx_create(m, T + (int)decode, &c, &e)) { fprintf(stderr, "dashkit bench: %s\n", e.msg); goto done; }
    if (!(toks = malloc((size_t)T * sizeof *toks))) { fprintf(stderr, "dashkit bench: out of memory\n"); goto done; }
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < T; i++) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; toks[i] = (int32_t)(s % (uint64_t)k->n_vocab); }

    printf("model: %s\nformat: %s\ntensor_type: %s\nn_layer: %d\nn_embd: %d\nn_head: %d\nn_head_kv: %d\nn_ff: %d\nn_vocab: %d\n",
           m->name, m->format_name, m->tensor_type, k->n_layer, k->n_embd, k->n_head, k->n_head_kv, k->n_ff, k->n_vocab);
    printf("tokens: %d\nreps: %ld\nblas_core: %s\nblas_threads: %d\n", T, reps, dk_blas_core(), dk_blas_threads());
    fflush(stdout);

    /* The machine is shared, so sgemm peak and prefill are sampled alternately, rep by rep, and
     * the medians compared. Peak = the model's largest GEMM shape at this T (FFN: T x n_ff x n_embd). */
    float *logits = malloc((size_t)k->n_vocab * sizeof *logits);
    double wall[16], gemm_s[16], conv_s[16], conv_share[16], layer_s = 0;
    dk_flops per = {{0}};
    int64_t flops = 0;
    double sq = dk_bench_gemm(2048, 2048, 2048, 3);
    for (int r = -1; r < reps && logits; r++) {
        double g = dk_bench_gemm(T, k->n_ff, k->n_embd, 3);
        dk_ctx_reset(c);
        double t0 = dk_time_now_s();
        if (dk_forward_prefill(c, toks, T, NULL, logits, &e)) { fprintf(stderr, "dashkit bench: %s\n", e.msg); free(logits); goto done; }
        double dt = dk_time_now_s() - t0;
        if (r < 0) continue; /* warm-up: first touch of caches and scratch */
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
