/* test_analyze.c — the stability vs redundancy analysis (eval/sweep/analyze.h) on a hand-built
 * 2-layer model whose weights make every query attend to one token X, whose value is large (the
 * only nonzero one):
 * the received attention finds X in both layers, Δ is 0 before X and large from X on; attention
 * recall is exactly 1 for keep-everything and 0 for keep-nothing; `dashkit analyze` runs end to
 * end on a random model and stores its aggregates. */
#include "support/dk_test.h"
#include "analyze.h"
#include "forward.h"
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define D 16
#define HD 8
#define NH 2
#define NV 8
#define X_TOK 5
#define X_POS 3
#define N 24

static float *mut(const dk_tensor *t) { return (float *)(uintptr_t)t->data; }

static dk_model *hand_model(void) {
    dk_model_config cfg = {.arch = DK_ARCH_LLAMA,
                           .n_layer = 2,
                           .n_embd = D,
                           .n_head = NH,
                           .n_head_kv = NH,
                           .head_dim = HD,
                           .n_ff = 16,
                           .n_vocab = NV,
                           .n_ctx_train = 64,
                           .rope_theta = 1e6f,
                           .n_rot = HD,
                           .rope_type = DK_ROPE_TYPE_NORM,
                           .rms_eps = 1e-6f};
    dk_model *m = dk_test_model_random(&cfg, DK_GGML_TYPE_F32, 3, "hand");
    float *emb = mut(&m->w.tok_embd);
    memset(emb, 0, sizeof(float) * NV * D);
    for (int t = 0; t < NV; t++) {
        if (t == X_TOK) {
            emb[t * D + 0] = 1;
            continue;
        }                   /* X: along e0 alone */
        emb[t * D + 1] = 1; /* the others: e1 plus a small own direction */
        emb[t * D + 2 + t] = 0.3f;
    }
    for (int l = 0; l < 2; l++) {
        dk_layer_weights *w = &m->w.layers[l];
        float *an = (float *)(uintptr_t)w->attn_norm, *fn = (float *)(uintptr_t)w->ffn_norm;
        for (int i = 0; i < D; i++) an[i] = fn[i] = 1;
        float *wq = mut(&w->wq), *wk = mut(&w->wk), *wv = mut(&w->wv), *wo = mut(&w->wo),
              *wd = mut(&w->w_down);
        memset(wq, 0, sizeof(float) * NH * HD * D);
        memset(wk, 0, sizeof(float) * NH * HD * D);
        memset(wv, 0, sizeof(float) * NH * HD * D);
        memset(wo, 0, sizeof(float) * D * NH * HD);
        memset(wd, 0, sizeof(float) * D * 16);
        for (int h = 0; h < NH; h++) {
            int r = h * HD + 6; /* the slowest RoPE pair: the pattern barely rotates over 24 positions */
            wq[r * D + 0] = wq[r * D + 1] = 20; /* every token asks along e0 + e1 */
            wk[r * D + 0] = 20;                 /* only X answers */
            wv[(h * HD) * D + 0] = 2.5f;     /* X's value is large (|v| = 10 after the norm), the others' 0 */
            wo[15 * (NH * HD) + h * HD] = 1; /* into a residual direction no key reads */
        }
    }
    return m;
}

static void tokens(int32_t *t) {
    for (int i = 0, k = 0; i < N; i++) {
        if (i == X_POS) {
            t[i] = X_TOK;
            continue;
        }
        t[i] = k % NV == X_TOK ? (k + 1) % NV : k % NV;
        k++;
    }
}

START_TEST(test_hand_built_finds_x) {
    dk_model *m = hand_model();
    dk_err e = {{0}};
    dk_ctx *c = NULL;
    ck_assert_int_eq(dk_ctx_create(m, 64, &c, &e), DK_OK);
    int32_t tok[N];
    tokens(tok);
    dk_attn_profile p;
    ck_assert_msg(dk_analyze_profile(c, tok, N, &p, &e) == DK_OK, "%s", e.msg);
    ck_assert_int_eq(p.n_layer, 2);
    for (int l = 0; l < 2; l++) {
        const double *mass = p.mass + (size_t)l * N, *recv = p.recv + (size_t)l * N;
        int best = 0;
        double total = 0;
        for (int j = 0; j < N; j++) {
            total += mass[j];
            if (recv[j] > recv[best]) best = j;
        }
        ck_assert_msg(best == X_POS, "layer %d: most received is row %d", l, best);
        /* every query sums to 1: the mass is the number of queries */
        ck_assert_double_eq_tol(total, N, 1e-3);
        /* the queries from X on put nearly all of it on X */
        ck_assert_msg(mass[X_POS] > 0.95 * (N - X_POS), "layer %d: X receives %g", l, mass[X_POS]);
        /* Δ: rows before X cannot see it (Δ 0); from X on its huge value dominates */
        for (int j = 0; j < N; j++) {
            float d = p.delta[(size_t)l * N + j];
            if (j < X_POS) ck_assert_msg(d < 1e-6f, "layer %d row %d: delta %g", l, j, d);
            else ck_assert_msg(d > (l ? 0.5f : 5.0f), "layer %d row %d: delta %g", l, j, d);
        }
    }
    /* recall: keep everything = exactly 1, nothing = exactly 0, X alone most of it */
    uint8_t all[N], none[N], onlyx[N];
    memset(all, 1, N);
    memset(none, 0, N);
    memset(onlyx, 0, N);
    onlyx[X_POS] = 1;
    for (int after = -1; after < 1; after++) {
        ck_assert(dk_analyze_recall(&p, after, all, N) == 1.0);
        ck_assert(dk_analyze_recall(&p, after, none, N) == 0.0);
        ck_assert(dk_analyze_recall(&p, after, onlyx, N) > 0.8);
    }
    ck_assert(isnan(dk_analyze_recall(&p, 1, all, N))); /* no layer after the last */
    /* over the first rows only: X among them keeps nearly everything they receive */
    ck_assert(dk_analyze_recall(&p, 0, all, X_POS + 1) == 1.0 &&
              dk_analyze_recall(&p, 0, onlyx, X_POS + 1) > 0.8);
    /* dense keeps every row; a policy keeps its share */
    uint8_t keep[N];
    int nk = 0;
    ck_assert_int_eq(dk_analyze_kept(c, tok, N, NULL, NULL, keep, &nk, &e), DK_OK);
    ck_assert_int_eq(nk, N);
    ck_assert(memcmp(keep, all, N) == 0);
    const dk_policy *pol = dk_policy_find("random");
    dk_policy_params pp;
    dk_policy_params_default(&pp);
    ck_assert_int_eq(dk_policy_params_set(pol, &pp, "rho", 0.5, &e), DK_OK);
    ck_assert_int_eq(dk_policy_params_set(pol, &pp, "ls", 0.0, &e), DK_OK); /* decides after layer 0 */
    ck_assert_msg(dk_analyze_kept(c, tok, N, pol, &pp, keep, &nk, &e) == DK_OK, "%s", e.msg);
    ck_assert_int_eq(nk, N / 2);
    int cnt = 0;
    for (int j = 0; j < N; j++) cnt += keep[j];
    ck_assert_int_eq(cnt, nk);
    ck_assert(dk_analyze_jaccard(keep, keep, N) == 1.0 && dk_analyze_jaccard(all, none, N) == 0.0);
    ck_assert_double_eq_tol(dk_analyze_jaccard(keep, all, N), 0.5, 1e-12);
    dk_attn_profile_free(&p);
    dk_ctx_free(c);
    dk_model_free(m);
}
END_TEST

/* `dashkit analyze` on the tiny random test model: named lines, stored aggregates, figures */
START_TEST(test_cli_analyze) {
    char cmd[2048], *out = NULL, db[600], dir[600];
    dk_test_tmp_path(db, sizeof db, "an.db");
    dk_test_tmp_path(dir, sizeof dir, "an");
    snprintf(cmd, sizeof cmd,
             "%s analyze tests/data/ref_llama_f32.gguf --task passkey --opt length=200 -n 2 --ls 0.34"
             " --rho 0.5 --db %s --out %s --no-draw 2>/dev/null",
             dk_test_cli(), db, dir);
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    const char *lines[] = {
        "analysis_id: 1\n", "samples: 2\n",    "delta_received_spearman: ", "recall_dash: ",
        "recall_fastv: ",   "recall_snapkv: ", "recall_random: ",           "recall_inverse: ",
        "recall_dblock: ",  "kept_dash: "};
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++)
        ck_assert_msg(strstr(out, lines[i]), "missing %s in\n%s", lines[i], out);
    double r = atof(strstr(out, "recall_random: ") + 15);
    ck_assert(r > 0 && r < 1);
    double kept = atof(strstr(out, "kept_dash: ") + 11); /* rho 0.5 of an odd count of rows */
    ck_assert_msg(kept > 0.45 && kept < 0.55, "kept %g", kept);
    free(out);
    dk_store *s = NULL;
    dk_err e = {{0}};
    ck_assert_int_eq(dk_store_open(db, DK_STORE_OPEN_READONLY, &s, &e), DK_OK);
    dk_analysis a;
    int found = 0;
    ck_assert_int_eq(dk_store_analysis_get(s, 0, NULL, &a, &found, &e), DK_OK);
    ck_assert(found && a.id == 1 && a.n_samples == 2 && a.n_layer == 3 && !strcmp(a.task, "passkey"));
    ck_assert_int_eq(a.n_recall, 6 * 4); /* 6 methods x (0.3, 0.5, 0.667, 0.8): --rho 0.5 is in the grid */
    ck_assert_int_eq(a.n_overlap, 15);
    for (int l = 0; l < a.n_layer; l++)
        ck_assert(a.delta_q[l * DK_ANALYSIS_NQ + 3] >= a.delta_q[l * DK_ANALYSIS_NQ + 1]);
    dk_analysis_free(&a);
    dk_store_close(s);
    char path[800];
    snprintf(path, sizeof path, "%s/analysis.md", dir);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    snprintf(path, sizeof path, "%s/analysis_redundancy_ref-llama-f32.gp", dir);
    f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s", path);
    fclose(f);
    /* errors: usage, exit 2, one line */
    snprintf(cmd, sizeof cmd, "%s analyze tests/data/ref_llama_f32.gguf --task passkey --rho 1.5",
             dk_test_cli());
    ck_assert_int_eq(dk_test_run(cmd, 1, &out), 2);
    ck_assert_msg(strstr(out, "--rho '1.5'"), "%s", out);
    free(out);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("analyze");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_hand_built_finds_x);
    tcase_add_test(tc, test_cli_analyze);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return dk_test_main(suite()); }
