/* test_threads.c — the forward pass gives the same bits whatever the thread count.
 *
 * The engine splits its non-BLAS work (norms, RoPE, SiLU·up, residual adds, gather/scatter,
 * weight conversion) and the attention tiles over dk_blas_threads() threads. Every row must be
 * computed by the same operations whichever thread runs it, so 1-thread and 2-thread runs are
 * compared bit for bit: logits of every row, final hidden states, the K/V caches, captured
 * attention probabilities and FLOP counters. Shapes are chosen so each kernel really splits
 * (several attention tiles per KV head, >= 8 rows per norm, > 32k SiLU elements, > 128 weight
 * rows converted). OpenBLAS's part is thread-count independent on the core dashkit selects
 * (dk_blas_init), not on every core: see main(). */
#include "support/dk_test.h"
#include "blas.h"
#include "forward.h"
#include "model.h"
#include "quant.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { T = 300, D = 4 };

typedef struct {
    float *logits; /* (T, n_vocab) prefill, then D decode rows (n_vocab each) */
    float *hidden; /* (T, n_embd) */
    float *probs;  /* captured at layer 1: (n_head, n_probe, kv_len) */
    size_t n_probs;
    float *k0, *v0; /* layer 0 cache after the decode steps */
    size_t n_kv;
    dk_flops total;
} run_out;

static const int32_t probe_rows[] = {0, 17, 299};

static dk_status capture_hook(void *user, dk_hook_point pt, const dk_layer_view *v, int32_t *next,
                              int *n_next, dk_err *e) {
    (void)next;
    (void)n_next;
    (void)e;
    run_out *r = user;
    if (pt == DK_HOOK_AFTER_ATTN && v->probs && !r->probs) {
        r->n_probs = (size_t)v->n_head * v->n_probe * v->kv_len;
        r->probs = malloc(r->n_probs * 4);
        memcpy(r->probs, v->probs, r->n_probs * 4);
    }
    return DK_OK;
}

/* Prefill of T tokens (active set = every row but multiples of 7 when `sparse`), then D decode
 * steps, with `threads` OpenBLAS/engine threads. */
static run_out run(const dk_model *m, const int32_t *tok, int threads, bool sparse) {
    openblas_set_num_threads(threads);
    ck_assert_int_eq(dk_blas_threads(), threads); /* else the comparison would not test anything */
    const dk_model_config *k = &m->cfg;
    run_out r = {0};
    dk_err e = {{0}};
    dk_ctx *c;
    ck_assert_int_eq(dk_ctx_create(m, T + D, &c, &e), DK_OK);
    r.logits = malloc((size_t)(T + D) * k->n_vocab * 4);
    r.hidden = malloc((size_t)T * k->n_embd * 4);
    int32_t act[T];
    int na = 0;
    for (int i = 0; i < T; i++)
        if (!sparse || i % 7 != 0 || i == T - 1) act[na++] = i;
    bool probe_layers[16] = {false, true};
    dk_prefill_opts o = {.all_logits = true,
                         .hidden_out = r.hidden,
                         .hook = capture_hook,
                         .hook_user = &r,
                         .probe_rows = probe_rows,
                         .n_probe = 3,
                         .probe_layers = probe_layers};
    if (sparse) {
        o.active = act;
        o.n_active = na;
    }
    ck_assert_msg(dk_forward_prefill(c, tok, T, &o, r.logits, &e) == DK_OK, "%s", e.msg);
    r.total = dk_ctx_stats(c)->total;
    for (int i = 0; i < D; i++)
        ck_assert_int_eq(dk_forward_decode(c, tok[T + i], r.logits + (size_t)(T + i) * k->n_vocab, &e),
                         DK_OK);
    const dk_kv_cache *kv = dk_ctx_cache(c, 0);
    r.n_kv = (size_t)kv->len * k->n_head_kv * k->head_dim;
    r.k0 = malloc(r.n_kv * 4);
    r.v0 = malloc(r.n_kv * 4);
    memcpy(r.k0, kv->k, r.n_kv * 4);
    memcpy(r.v0, kv->v, r.n_kv * 4);
    dk_ctx_free(c);
    return r;
}

static void run_free(run_out *r) {
    free(r->logits);
    free(r->hidden);
    free(r->probs);
    free(r->k0);
    free(r->v0);
}

static void check_threads(uint32_t type, bool sparse) {
    dk_model_config cfg;
    ck_assert(dk_model_shape("qwen2-tiny", &cfg));
    cfg.n_embd = 64;
    cfg.n_ff = 256;
    cfg.n_layer = 2; /* multiples of 32 for Q8_0; SiLU splits */
    cfg.n_head = 8;
    cfg.n_head_kv = 2;
    cfg.head_dim = 8;
    cfg.n_rot = 8;
    dk_model *m = dk_test_model_random(&cfg, type, 11, "threads");
    int32_t tok[T + D];
    uint32_t s = 99;
    for (int i = 0; i < T + D; i++) {
        s = s * 1103515245u + 12345u;
        tok[i] = (int32_t)((s >> 8) % (uint32_t)cfg.n_vocab);
    }
    int saved = dk_blas_threads();
    run_out a = run(m, tok, 1, sparse), b = run(m, tok, 2, sparse);
    openblas_set_num_threads(saved);
    size_t nl = (size_t)(T + D) * cfg.n_vocab, first = nl;
    for (size_t i = 0; i < nl && first == nl; i++)
        if (memcmp(&a.logits[i], &b.logits[i], 4)) first = i;
    ck_assert_msg(memcmp(a.hidden, b.hidden, (size_t)T * cfg.n_embd * 4) == 0, "hidden states differ");
    ck_assert_msg(first == nl, "logits differ between 1 and 2 threads: row %zu, column %zu: %a vs %a",
                  first / (size_t)cfg.n_vocab, first % (size_t)cfg.n_vocab, (double)a.logits[first],
                  (double)b.logits[first]);
    ck_assert_uint_eq(a.n_kv, b.n_kv);
    ck_assert_msg(memcmp(a.k0, b.k0, a.n_kv * 4) == 0 && memcmp(a.v0, b.v0, a.n_kv * 4) == 0,
                  "K/V caches differ");
    ck_assert_msg(a.probs && b.probs && a.n_probs == b.n_probs &&
                      memcmp(a.probs, b.probs, a.n_probs * 4) == 0,
                  "captured attention probabilities differ");
    ck_assert_msg(memcmp(&a.total, &b.total, sizeof a.total) == 0, "FLOP counters differ");
    /* not vacuous: rows differ from each other */
    ck_assert(memcmp(a.logits, a.logits + (size_t)(T - 1) * cfg.n_vocab, (size_t)cfg.n_vocab * 4) != 0);
    run_free(&a);
    run_free(&b);
    dk_model_free(m);
}

START_TEST(test_threads_dense_f32) { check_threads(DK_GGML_TYPE_F32, false); }
END_TEST
START_TEST(test_threads_sparse_f32) { check_threads(DK_GGML_TYPE_F32, true); }
END_TEST
START_TEST(test_threads_dense_bf16) { check_threads(DK_GGML_TYPE_BF16, false); }
END_TEST
START_TEST(test_threads_dense_q8_0) { check_threads(DK_GGML_TYPE_Q8_0, false); }
END_TEST

int main(int argc, char **argv) {
    (void)argc;
    /* Run on the fastest core this CPU supports, which is what dashkit selects when the user does
     * not force one: OpenBLAS 0.3.21's own multi-threaded sgemm gives other bits than its 1-thread
     * sgemm on some kernels (seen with OPENBLAS_CORETYPE=Haswell and with the misdetected
     * "Prescott" on an AVX-512 CPU), which is outside the engine's control. A user-set slower
     * core is overridden for this test only (re-exec, OpenBLAS reads the variable at load). */
    const char *user, *best;
    if (dk_blas_user_core_slower(&user, &best) && !getenv("DK_TEST_THREADS_REEXEC")) {
        printf("OPENBLAS_CORETYPE=%s is slower than this CPU's %s: re-running with %s\n", user, best, best);
        fflush(stdout);
        setenv("OPENBLAS_CORETYPE", best, 1);
        setenv("DK_TEST_THREADS_REEXEC", "1", 1);
        execv("/proc/self/exe", argv);
    }
    dk_blas_init();
    printf("blas core %s (%s)\n", dk_blas_core(), dk_blas_note());
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_threads_dense_f32);
    tcase_add_test(tc, test_threads_sparse_f32);
    tcase_add_test(tc, test_threads_dense_bf16);
    tcase_add_test(tc, test_threads_dense_q8_0);
    suite_add_tcase(s, tc);
    return dk_test_main(s);
}
