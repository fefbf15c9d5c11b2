/* bench_prefix.c — `dashkit bench --prefix-sweep`: a rho sweep at one split layer, timed with
 * prefix sharing (dk_forward_prefill_prefix once + one suffix per rho) and without (one full
 * prefill per rho whose hook sets the same active set after the split layer), side by side.
 *
 * The active set of a rho keeps K = floor((1-rho)·T) rows evenly spaced over the chunk, always
 * including the last row: wall time depends on K, not on which rows (a policy's scoring at the
 * split layer is shared as well, so it is not part of the comparison).
 *
 * Closed form (FLOP model of prefill.h, A(n) = one layer on n tokens, s = l+1 shared layers):
 *   expected = Σ_r [s·A(T) + (L−s)·A(K_r)] / (s·A(T) + Σ_r (L−s)·A(K_r)). */
#include "bench_prefix.h"
#include "cli_util.h"
#include "blas.h"
#include "forward.h"
#include "model.h"
#include "prefill.h"
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DK_SWEEP_MAX 16

static void dk_sweep_usage(FILE *f) {
    fprintf(f, "usage: dashkit bench --prefix-sweep [MODEL | --shape NAME] [--tokens T] [--ls L] [--rhos R1,R2,...]\n"
               "                     [--reps R] [--threads N] [--seed S]\n\n"
               "Times a rho sweep at one split layer with prefix sharing (layers 0..L once, the rest per rho) and\n"
               "without (a full prefill per rho), in one run, and prints their ratio next to the closed form.\n\n"
               "  MODEL          GGUF or llama2.c model (default models/dashkit-tiny.gguf when present, else a\n"
               "                 random model of its shape: 8 layers, d 128, 4 heads, ff 384, vocab 2048)\n"
               "  --shape NAME   random-weight model of a known shape instead (%s)\n"
               "  --tokens T     chunk length (default 1024)\n"
               "  --ls L         last shared layer: the active set changes after layer L (default 2/5 of the layers)\n"
               "  --rhos LIST    comma-separated halting ratios in [0,1) (default 0.1,0.3,0.5,0.667,0.8)\n"
               "  --reps R       timed repetitions, medians reported (default 3)\n"
               "  --threads N    OpenBLAS threads (default: OpenBLAS's own)\n"
               "  --seed S       seed of random weights and tokens (default 1)\n"
               "  -h, --help     this help\n",
            dk_model_shape_names());
}

typedef struct { int layer; const int32_t *set; int n_set; } dk_sweep_hook_state;

/* Sets the rho's active set after the split layer (the full-prefill side of the comparison). */
static dk_status dk_sweep_hook(void *user, dk_hook_point pt, const dk_layer_view *v, int32_t *next, int *n_next, dk_err *e) {
    (void)e;
    const dk_sweep_hook_state *h = user;
    if (pt != DK_HOOK_AFTER_LAYER || v->layer != h->layer) return DK_OK;
    memcpy(next, h->set, (size_t)h->n_set * sizeof *next);
    *n_next = h->n_set;
    return DK_OK;
}

/* K rows evenly spaced over 0..T-1, the last row included; returns K. */
static int dk_sweep_set(int32_t *set, int T, double rho) {
    int K = (int)floor((1.0 - rho) * T);
    if (K < 1) K = 1;
    for (int i = 0; i < K; i++) set[i] = (int32_t)(T - 1 - (int64_t)(K - 1 - i) * T / K);
    return K;
}

static int dk_sweep_parse_rhos(const char *s, double *rho, int *n) {
    *n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        double r = strtod(p, &end);
        if (end == p || !(r >= 0 && r < 1) || *n >= DK_SWEEP_MAX || (*end && *end != ',')) return -1;
        rho[(*n)++] = r;
        p = *end ? end + 1 : end;
    }
    return *n > 0 ? 0 : -1;
}

void dk_bench_blas_note(void) {
    const char *user, *best;
    if (dk_blas_user_core_slower(&user, &best))
        fprintf(stderr, "blas_note: OPENBLAS_CORETYPE=%s is set; this CPU supports %s (unset it to let dashkit choose)\n", user, best);
}

int dk_bench_prefix_sweep(int argc, char **argv) {
    const char *path = NULL, *shape = NULL, *rhos_arg = "0.1,0.3,0.5,0.667,0.8";
    long tokens = 1024, reps = 3, ls = -1, threads = 0;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--prefix-sweep")) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { dk_sweep_usage(stdout); return 0; }
        bool num = !strcmp(a, "--tokens") || !strcmp(a, "--reps") || !strcmp(a, "--seed") || !strcmp(a, "--ls") ||
                   !strcmp(a, "--threads");
        bool takes = num || !strcmp(a, "--shape") || !strcmp(a, "--rhos");
        if (takes && i + 1 >= argc) { fprintf(stderr, "dashkit bench: option %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--shape")) shape = argv[++i];
        else if (!strcmp(a, "--rhos")) rhos_arg = argv[++i];
        else if (num) {
            char *end;
            const char *v = argv[++i];
            long long x = strtoll(v, &end, 10);
            bool zero_ok = !strcmp(a, "--ls");
            if (*end || end == v || x < (zero_ok ? 0 : 1) || x > (1 << 22)) {
                fprintf(stderr, "dashkit bench: %s '%s' is not a %s integer\n", dk_cli_esc(a), dk_cli_esc(v), zero_ok ? "non-negative" : "positive");
                return 2;
            }
            if (!strcmp(a, "--tokens")) tokens = (long)x;
            else if (!strcmp(a, "--reps")) reps = x > 15 ? 15 : (long)x;
            else if (!strcmp(a, "--ls")) ls = (long)x;
            else if (!strcmp(a, "--threads")) threads = (long)x;
            else seed = (unsigned long long)x;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "dashkit bench: unknown option '%s' for --prefix-sweep (see --prefix-sweep --help)\n", dk_cli_esc(a));
            return 2;
        } else if (!path) path = a;
        else { fprintf(stderr, "dashkit bench: unexpected argument '%s'\n", dk_cli_esc(a)); return 2; }
    }
    double rho[DK_SWEEP_MAX];
    int n_rho;
    if (dk_sweep_parse_rhos(rhos_arg, rho, &n_rho)) {
        fprintf(stderr, "dashkit bench: --rhos '%s' is not a list of 1..%d values in [0,1)\n", dk_cli_esc(rhos_arg), DK_SWEEP_MAX);
        return 2;
    }
    if (path && shape) { fprintf(stderr, "dashkit bench: give a MODEL or --shape, not both\n"); return 2; }
    if (threads > 0) openblas_set_num_threads((int)threads);
    dk_bench_blas_note();

    dk_err e = {{0}};
    dk_model *m = NULL;
    dk_ctx *c = NULL;
    int32_t *toks = NULL, *sets = NULL;
    float *logits = NULL;
    int rc = 1;
    if (!path && !shape && access("models/dashkit-tiny.gguf", R_OK) == 0) path = "models/dashkit-tiny.gguf";
    if (path) {
        if (dk_model_load(path, NULL, &m, &e)) { fprintf(stderr, "dashkit bench: %s\n", e.msg); return 1; }
    } else {
        /* the shape scripts/train_tiny.py gives dashkit-tiny */
        dk_model_config cfg = {DK_ARCH_LLAMA, 8, 128, 4, 4, 32, 384, 2048, 4096, 10000.0f, 32, DK_ROPE_TYPE_NEOX, 1e-5f, false, false};
        if (shape && !dk_model_shape(shape, &cfg)) {
            fprintf(stderr, "dashkit bench: unknown --shape '%s' (known: %s)\n", dk_cli_esc(shape), dk_model_shape_names());
            return 2;
        }
        if (dk_model_create_random(&cfg, seed, shape ? shape : "dashkit-tiny-shape (random)", &m, &e)) {
            fprintf(stderr, "dashkit bench: %s\n", e.msg);
            return 1;
        }
    }
    const dk_model_config *k = &m->cfg;
    int T = (int)tokens, L = k->n_layer;
    if (ls < 0) ls = L * 2 / 5;
    if (ls >= L - 1) {
        fprintf(stderr, "dashkit bench: --ls %ld leaves no layer to halt (the model has %d layers: use 0..%d)\n", ls, L, L - 2);
        rc = 2;
        goto done;
    }
    if (dk_ctx_create(m, T, &c, &e)) { fprintf(stderr, "dashkit bench: %s\n", e.msg); goto done; }
    toks = malloc((size_t)T * sizeof *toks);
    sets = malloc((size_t)n_rho * T * sizeof *sets);
    logits = malloc((size_t)k->n_vocab * sizeof *logits);
    if (!toks || !sets || !logits) { fprintf(stderr, "dashkit bench: out of memory\n"); goto done; }
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < T; i++) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; toks[i] = (int32_t)(s % (uint64_t)k->n_vocab); }
    int n_set[DK_SWEEP_MAX];
    for (int r = 0; r < n_rho; r++) n_set[r] = dk_sweep_set(sets + (size_t)r * T, T, rho[r]);

    printf("model: %s\nn_layer: %d\nn_embd: %d\ntokens: %d\nreps: %ld\nblas_core: %s\nblas_threads: %d\n", m->name, L,
           k->n_embd, T, reps, dk_blas_core(), dk_blas_threads());
    printf("sweep_ls: %ld\nsweep_shared_layers: %ld\nsweep_rhos: %s\n", ls, ls + 1, rhos_arg);
    fflush(stdout);

    /* closed form */
    double sh = (double)(ls + 1), AT = dk_prefill_layer_flops(k, T), no = 0, yes = sh * AT;
    for (int r = 0; r < n_rho; r++) {
        double AK = dk_prefill_layer_flops(k, n_set[r]);
        no += sh * AT + (double)(L - ls - 1) * AK;
        yes += (double)(L - ls - 1) * AK;
    }
    double expected = no / yes;

    /* alternate the two sides rep by rep (order flipped each time); rep -1 is a warm-up */
    double w_no[16], w_yes[16];
    int64_t f_no = 0, f_yes = 0;
    for (int rep = -1; rep < reps; rep++) {
        for (int side = 0; side < 2; side++) {
            bool share = (side == 0) == (rep % 2 == 0);
            int64_t fl = 0;
            double t0 = dk_time_now_s();
            if (share) {
                dk_ctx_reset(c);
                if (dk_forward_prefill_prefix(c, toks, T, (int)ls, NULL, &e)) goto fail;
                for (int r = 0; r < n_rho; r++) {
                    dk_prefill_opts o = {.active = sets + (size_t)r * T, .n_active = n_set[r]};
                    if (dk_forward_prefill_suffix(c, &o, logits, &e)) goto fail;
                    /* the stats describe the whole chunk: count the prefix layers once */
                    const dk_forward_stats *st = dk_ctx_stats(c);
                    fl += dk_flops_total(&st->total);
                    if (r) for (int l = 0; l <= ls; l++) fl -= dk_flops_total(&st->layers[l].flops);
                }
            } else {
                for (int r = 0; r < n_rho; r++) {
                    dk_sweep_hook_state h = {(int)ls, sets + (size_t)r * T, n_set[r]};
                    dk_prefill_opts o = {.hook = dk_sweep_hook, .hook_user = &h};
                    dk_ctx_reset(c);
                    if (dk_forward_prefill(c, toks, T, &o, logits, &e)) goto fail;
                    fl += dk_flops_total(&dk_ctx_stats(c)->total);
                }
            }
            double dt = dk_time_now_s() - t0;
            if (rep < 0) continue;
            if (share) { w_yes[rep] = dt; f_yes = fl; } else { w_no[rep] = dt; f_no = fl; }
        }
        if (rep >= 0)
            fprintf(stderr, "rep %d: without sharing %.3f s, with sharing %.3f s, ratio %.3f\n", rep, w_no[rep], w_yes[rep],
                    w_no[rep] / w_yes[rep]);
    }
    double mn = dk_prefill_median(w_no, (int)reps), my = dk_prefill_median(w_yes, (int)reps);
    printf("sweep_flops_no_share: %lld\nsweep_flops_share: %lld\n", (long long)f_no, (long long)f_yes);
    printf("sweep_wall_no_share_s: %.3f\nsweep_wall_share_s: %.3f\n", mn, my);
    printf("prefix_sharing_flops_ratio: %.3f\nprefix_sharing_expected: %.3f\nprefix_sweep_wall_ratio: %.3f\n",
           (double)f_no / (double)f_yes, expected, mn / my);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "dashkit bench: %s\n", e.msg);
done:
    free(toks); free(sets); free(logits);
    dk_ctx_free(c);
    dk_model_free(m);
    return rc;
}
