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
#include "bench.h"
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
    fprintf(
        f,
        "usage: dashkit bench --prefix-sweep [MODEL | --shape NAME] [--tokens T] [--ls L] [--rhos "
        "R1,R2,...]\n"
        "                     [--reps R] [--threads N] [--seed S]\n\n"
        "Times a rho sweep at one split layer with prefix sharing (layers 0..L once, the rest per rho) and\n"
        "without (a full prefill per rho), in one run, and prints their ratio next to the closed form.\n\n"
        "  MODEL          GGUF or llama2.c model (default models/dashkit-tiny.gguf when present, else a\n"
        "                 random model of its shape: 8 layers, d 128, 4 heads, ff 384, vocab 2048)\n"
        "  --shape NAME   random-weight model of a known shape instead (%s)\n"
        "  --tokens T     chunk length (default 1024)\n"
        "  --ls L         last shared layer: the active set changes after layer L (default 2/5 of the "
        "layers)\n"
        "  --rhos LIST    comma-separated halting ratios in [0,1) (default 0.1,0.3,0.5,0.667,0.8)\n"
        "  --reps R       timed repetitions, medians reported (default 3)\n"
        "  --threads N    OpenBLAS threads (default: OpenBLAS's own)\n"
        "  --seed S       seed of random weights and tokens (default 1)\n"
        "  -h, --help     this help\n",
        dk_model_shape_names());
}

typedef struct {
    int layer;
    const int32_t *set;
    int n_set;
} dk_sweep_hook_state;

/* Sets the rho's active set after the split layer (the full-prefill side of the comparison). */
static dk_status dk_sweep_hook(void *user, dk_hook_point pt, const dk_layer_view *v, int32_t *next,
                               int *n_next, dk_err *e) {
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
        fprintf(
            stderr,
            "blas_note: OPENBLAS_CORETYPE=%s is set; this CPU supports %s (unset it to let dashkit choose)\n",
            user, best);
}

/* Options of --prefix-sweep. */
typedef struct {
    const char *path, *shape, *rhos_arg;
    long tokens, reps, ls, threads;
    unsigned long long seed;
    double rho[DK_SWEEP_MAX];
    int n_rho;
} dk_sweep_args;

bool dk_bench_parse_count_value(const char *opt, const char *v, long long min, long long *x) {
    char *end;
    *x = strtoll(v, &end, 10);
    if (*end || end == v || *x < min || *x > (1 << 22)) {
        fprintf(stderr, "dashkit bench: %s '%s' is not a %s integer\n", dk_cli_esc(opt), dk_cli_esc(v),
                min ? "positive" : "non-negative");
        return false;
    }
    return true;
}

void dk_bench_set_count(const char *opt, long long x, long *tokens, long *reps, long *threads,
                        unsigned long long *seed) {
    if (!strcmp(opt, "--tokens")) *tokens = (long)x;
    else if (!strcmp(opt, "--reps")) *reps = x > 15 ? 15 : (long)x;
    else if (!strcmp(opt, "--threads")) *threads = (long)x;
    else *seed = (unsigned long long)x;
}

/* A numeric option's value into a; false after printing the error. */
static bool dk_sweep_parse_num(const char *opt, const char *v, dk_sweep_args *a) {
    long long x;
    if (!dk_bench_parse_count_value(opt, v, strcmp(opt, "--ls") ? 1 : 0, &x)) return false;
    if (!strcmp(opt, "--ls")) a->ls = (long)x;
    else dk_bench_set_count(opt, x, &a->tokens, &a->reps, &a->threads, &a->seed);
    return true;
}

/* argv into a; -1 to go on, else the exit code (help or a usage error printed). */
static int dk_sweep_parse(int argc, char **argv, dk_sweep_args *a) {
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--prefix-sweep")) continue;
        if (dk_cli_help(s, dk_sweep_usage)) return 0;
        bool num = !strcmp(s, "--tokens") || !strcmp(s, "--reps") || !strcmp(s, "--seed") ||
                   !strcmp(s, "--ls") || !strcmp(s, "--threads");
        bool takes = num || !strcmp(s, "--shape") || !strcmp(s, "--rhos");
        if (takes && !dk_cli_has_value("bench", argc, argv, i)) return 2;
        if (!strcmp(s, "--shape")) a->shape = argv[++i];
        else if (!strcmp(s, "--rhos")) a->rhos_arg = argv[++i];
        else if (num) {
            if (!dk_sweep_parse_num(s, argv[++i], a)) return 2;
        } else if (s[0] == '-' && s[1]) {
            fprintf(stderr,
                    "dashkit bench: unknown option '%s' for --prefix-sweep (see --prefix-sweep --help)\n",
                    dk_cli_esc(s));
            return 2;
        } else if (!a->path) a->path = s;
        else {
            fprintf(stderr, "dashkit bench: unexpected argument '%s'\n", dk_cli_esc(s));
            return 2;
        }
    }
    if (dk_sweep_parse_rhos(a->rhos_arg, a->rho, &a->n_rho)) {
        fprintf(stderr, "dashkit bench: --rhos '%s' is not a list of 1..%d values in [0,1)\n",
                dk_cli_esc(a->rhos_arg), DK_SWEEP_MAX);
        return 2;
    }
    if (a->path && a->shape) {
        fprintf(stderr, "dashkit bench: give a MODEL or --shape, not both\n");
        return 2;
    }
    return -1;
}

/* MODEL, models/dashkit-tiny.gguf when present, else a random model of --shape or of dashkit-tiny's shape. */
static int dk_sweep_model(dk_sweep_args *a, dk_model **m) {
    dk_err e = {{0}};
    if (!a->path && !a->shape && access("models/dashkit-tiny.gguf", R_OK) == 0)
        a->path = "models/dashkit-tiny.gguf";
    if (a->path) {
        if (dk_model_load(a->path, NULL, m, &e)) {
            fprintf(stderr, "dashkit bench: %s\n", e.msg);
            return 1;
        }
        return 0;
    }
    /* the shape scripts/train_tiny.py gives dashkit-tiny */
    dk_model_config cfg = {DK_ARCH_LLAMA,     8,     128,   4,    4, 32, 384, 2048, 4096, 10000.0f, 32,
                           DK_ROPE_TYPE_NEOX, 1e-5f, false, false};
    if (a->shape && !dk_model_shape(a->shape, &cfg)) {
        fprintf(stderr, "dashkit bench: unknown --shape '%s' (known: %s)\n", dk_cli_esc(a->shape),
                dk_model_shape_names());
        return 2;
    }
    if (dk_model_create_random(&cfg, a->seed, a->shape ? a->shape : "dashkit-tiny-shape (random)", m, &e)) {
        fprintf(stderr, "dashkit bench: %s\n", e.msg);
        return 1;
    }
    return 0;
}

/* Closed form: Σ_r [s·A(T) + (L−s)·A(K_r)] / (s·A(T) + Σ_r (L−s)·A(K_r)), s = ls + 1 shared layers. */
static double dk_sweep_expected(const dk_model_config *k, int T, int ls, const int *n_set, int n_rho) {
    double sh = (double)(ls + 1), AT = dk_prefill_layer_flops(k, T), no = 0, yes = sh * AT;
    for (int r = 0; r < n_rho; r++) {
        double AK = dk_prefill_layer_flops(k, n_set[r]);
        no += sh * AT + (double)(k->n_layer - ls - 1) * AK;
        yes += (double)(k->n_layer - ls - 1) * AK;
    }
    return no / yes;
}

/* One side of a rep: the sweep with sharing (prefix once + one suffix per rho) or without (a
 * full prefill per rho, the hook setting the rho's set); its FLOPs (prefix layers counted once). */
static dk_status dk_sweep_side(dk_ctx *c, const int32_t *toks, int T, int ls, const int32_t *sets,
                               const int *n_set, int n_rho, bool share, float *logits, int64_t *flops,
                               dk_err *e) {
    dk_status st;
    *flops = 0;
    if (share) {
        dk_ctx_reset(c);
        if ((st = dk_forward_prefill_prefix(c, toks, T, ls, NULL, e))) return st;
        for (int r = 0; r < n_rho; r++) {
            dk_prefill_opts o = {.active = sets + (size_t)r * T, .n_active = n_set[r]};
            if ((st = dk_forward_prefill_suffix(c, &o, logits, e))) return st;
            /* the stats describe the whole chunk: count the prefix layers once */
            const dk_forward_stats *s = dk_ctx_stats(c);
            *flops += dk_flops_total(&s->total);
            if (r)
                for (int l = 0; l <= ls; l++) *flops -= dk_flops_total(&s->layers[l].flops);
        }
        return DK_OK;
    }
    for (int r = 0; r < n_rho; r++) {
        dk_sweep_hook_state h = {ls, sets + (size_t)r * T, n_set[r]};
        dk_prefill_opts o = {.hook = dk_sweep_hook, .hook_user = &h};
        dk_ctx_reset(c);
        if ((st = dk_forward_prefill(c, toks, T, &o, logits, e))) return st;
        *flops += dk_flops_total(&dk_ctx_stats(c)->total);
    }
    return DK_OK;
}

/* Both sides alternately rep by rep (order flipped each time; rep -1 warms up); prints the lines. */
static int dk_sweep_time(dk_ctx *c, const int32_t *toks, int T, int ls, const int32_t *sets, const int *n_set,
                         int n_rho, int reps, double expected) {
    double w[2][16];
    int64_t fl[2] = {0, 0};
    dk_err e = {{0}};
    float *logits = malloc((size_t)dk_ctx_model(c)->cfg.n_vocab * sizeof *logits);
    if (!logits) {
        fprintf(stderr, "dashkit bench: out of memory\n");
        return 1;
    }
    for (int rep = -1; rep < reps; rep++) {
        for (int side = 0; side < 2; side++) {
            bool share = (side == 0) == (rep % 2 == 0);
            int64_t f;
            double t0 = dk_time_now_s();
            if (dk_sweep_side(c, toks, T, ls, sets, n_set, n_rho, share, logits, &f, &e)) {
                fprintf(stderr, "dashkit bench: %s\n", e.msg);
                free(logits);
                return 1;
            }
            if (rep >= 0) w[share][rep] = dk_time_now_s() - t0, fl[share] = f;
        }
        if (rep >= 0)
            fprintf(stderr, "rep %d: without sharing %.3f s, with sharing %.3f s, ratio %.3f\n", rep,
                    w[0][rep], w[1][rep], w[0][rep] / w[1][rep]);
    }
    free(logits);
    double mn = dk_prefill_median(w[0], reps), my = dk_prefill_median(w[1], reps);
    printf("sweep_flops_no_share: %lld\nsweep_flops_share: %lld\n", (long long)fl[0], (long long)fl[1]);
    printf("sweep_wall_no_share_s: %.3f\nsweep_wall_share_s: %.3f\n", mn, my);
    printf("prefix_sharing_flops_ratio: %.3f\nprefix_sharing_expected: %.3f\nprefix_sweep_wall_ratio: %.3f\n",
           (double)fl[0] / (double)fl[1], expected, mn / my);
    return 0;
}

int dk_bench_prefix_sweep(int argc, char **argv) {
    dk_sweep_args a = {.rhos_arg = "0.1,0.3,0.5,0.667,0.8", .tokens = 1024, .reps = 3, .ls = -1, .seed = 1};
    int rc = dk_sweep_parse(argc, argv, &a);
    if (rc >= 0) return rc;
    if (a.threads > 0) openblas_set_num_threads((int)a.threads);
    dk_bench_blas_note();
    dk_err e = {{0}};
    dk_model *m = NULL;
    dk_ctx *c = NULL;
    int32_t *toks = NULL, *sets = NULL;
    if ((rc = dk_sweep_model(&a, &m))) return rc;
    rc = 1;
    const dk_model_config *k = &m->cfg;
    int T = (int)a.tokens, L = k->n_layer;
    if (a.ls < 0) a.ls = L * 2 / 5;
    if (a.ls >= L - 1) {
        fprintf(stderr,
                "dashkit bench: --ls %ld leaves no layer to halt (the model has %d layers: use 0..%d)\n",
                a.ls, L, L - 2);
        rc = 2;
        goto done;
    }
    if (dk_ctx_create(m, T, &c, &e)) {
        fprintf(stderr, "dashkit bench: %s\n", e.msg);
        goto done;
    }
    toks = malloc((size_t)T * sizeof *toks);
    sets = malloc((size_t)a.n_rho * T * sizeof *sets);
    if (!toks || !sets) {
        fprintf(stderr, "dashkit bench: out of memory\n");
        goto done;
    }
    dk_bench_tokens(toks, T, a.seed, k->n_vocab);
    int n_set[DK_SWEEP_MAX];
    for (int r = 0; r < a.n_rho; r++) n_set[r] = dk_sweep_set(sets + (size_t)r * T, T, a.rho[r]);
    printf("model: %s\nn_layer: %d\nn_embd: %d\ntokens: %d\nreps: %ld\nblas_core: %s\nblas_threads: %d\n",
           m->name, L, k->n_embd, T, a.reps, dk_blas_core(), dk_blas_threads());
    printf("sweep_ls: %ld\nsweep_shared_layers: %ld\nsweep_rhos: %s\n", a.ls, a.ls + 1, a.rhos_arg);
    fflush(stdout);
    rc = dk_sweep_time(c, toks, T, (int)a.ls, sets, n_set, a.n_rho, (int)a.reps,
                       dk_sweep_expected(k, T, (int)a.ls, n_set, a.n_rho));
done:
    free(toks);
    free(sets);
    dk_ctx_free(c);
    dk_model_free(m);
    return rc;
}
