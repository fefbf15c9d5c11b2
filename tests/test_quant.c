/* test_quant.c — the quantised weight types against llama.cpp itself (goldens written by
 * scripts/make_quant_goldens.sh with node-llama-cpp 3.21.1's libllama; see that script):
 *   - dequantisation of every tensor of every golden file == ggml's to_float, bit for bit
 *     (FNV-1a 64 of the f32 bytes), and the goldens hold every supported quantised type;
 *   - a quantised model's forward == dashkit's F32 forward of the same weights dequantised
 *     (prefill bit for bit; the fused decode path: same greedy tokens, small error);
 *   - logits vs llama.cpp's at every prompt position: same argmax, error within QUANT_TOL of the
 *     logit scale, and llama.cpp's 16 greedy tokens reproduced step by step;
 *   - rho = 0 halting on a quantised model is bit-identical to dense;
 *   - damaged quantised files: unsupported type, row not a whole number of blocks, truncated
 *     tensor -> one line naming the file, the tensor and the problem, exit 1. */
#include "support/dk_test.h"
#include "forward.h"
#include "gguf.h"
#include "model.h"
#include "policy.h"
#include "prefill.h"
#include "quant.h"
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define QDIR "tests/data/"

static const char *QMODELS[] = {"qllama_mix", "qqwen2_mix", "qllama_q4_k_m", "qqwen2_q3_k_m",
                                "qllama_q5_k_s"};
#define N_QMODELS ((int)(sizeof QMODELS / sizeof QMODELS[0]))

/* Bound on max |dashkit - llama.cpp| / max |llama.cpp logit| at any position. Measured on these
 * goldens: 1.6e-2..1.83e-2 for every file (qllama_q4_k_m worst), against 1.5e-4..3e-4 for the
 * F32 source models (llama.cpp F32 vs dashkit F32). Why not exact: for every quantised weight
 * type llama.cpp's CPU matmul quantises the activations as well (Q8_0 for the 32-element types,
 * Q8_K for the K-quants and IQ4_XS: 8 bits, one scale per block of the row) and accumulates
 * integer dot products, so every product carries the activations' rounding error (~0.4% of a
 * block's max per element, more where the FFN's SiLU·up activations are heavy-tailed); dashkit
 * multiplies the exact dequantised weights (bit-identical to ggml's, test_dequant_matches_ggml)
 * with f32 activations. The error hardly depends on the weight type (Q5_K_S 1.71e-2, Q4_K_M
 * 1.83e-2, Q3_K_M 1.83e-2), as expected of an activation-side error. A wrong block layout,
 * scale or sign would move logits by tens of percent.
 *
 * argmax: the random-weight goldens have near-ties (llama.cpp's own top-1/top-2 margin is
 * below 1% of the scale at 1..4 of the 32 positions), which 8-bit activations may flip (they do
 * at 1-2 positions of the llama files). So at EVERY position (and every step of llama.cpp's
 * greedy continuation, teacher-forced) dashkit's argmax must be a token within
 * 2*QUANT_TOL*scale of llama.cpp's top logit (all the bound allows), and equal to llama.cpp's
 * argmax wherever llama.cpp's margin exceeds that (the bound guarantees it there). */
#define QUANT_TOL 2.5e-2

static dk_model *load_q(const char *name) {
    char path[256];
    snprintf(path, sizeof path, QDIR "quant_%s.gguf", name);
    dk_model *m = NULL;
    dk_err e = {{0}};
    ck_assert_msg(dk_model_load(path, NULL, &m, &e) == DK_OK, "load %s: %s", path, e.msg);
    return m;
}

static uint64_t fnv1a64(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* ---- dequantisation == ggml's to_float ---- */

START_TEST(test_dequant_matches_ggml) {
    static bool seen[64];
    for (int mi = 0; mi < N_QMODELS; mi++) {
        char path[256];
        snprintf(path, sizeof path, QDIR "quant_%s.tensors.tsv", QMODELS[mi]);
        size_t len;
        char *tsv = dk_test_read_file(path, &len);
        snprintf(path, sizeof path, QDIR "quant_%s.gguf", QMODELS[mi]);
        dk_gguf *g;
        dk_err e = {{0}};
        ck_assert_msg(dk_gguf_open(path, &g, &e) == DK_OK, "%s", e.msg);
        int lines = 0;
        for (char *line = strtok(tsv, "\n"); line; line = strtok(NULL, "\n"), lines++) {
            char name[128], type[32], hash[32], first[16];
            long long n;
            ck_assert_int_eq(sscanf(line, "%127s %31s %lld %31s %15s", name, type, &n, hash, first), 5);
            const dk_gguf_tensor *t = dk_gguf_find_tensor(g, name);
            ck_assert_msg(t != NULL, "%s: no tensor %s", path, name);
            ck_assert_msg(!strcasecmp(type, dk_ggml_type_name(t->type)), "%s: %s is %s here, %s in ggml",
                          path, name, dk_ggml_type_name(t->type), type);
            ck_assert_int_eq((long long)t->n_elems, n);
            ck_assert_msg(dk_ggml_type_supported(t->type), "%s: type %s unsupported", name, type);
            seen[t->type] = true;
            float *y = malloc(t->n_elems * sizeof *y);
            dk_dequantize(t->type, t->data, y, t->n_elems);
            char got[32];
            snprintf(got, sizeof got, "%016llx", (unsigned long long)fnv1a64(y, t->n_elems * 4));
            uint32_t b0;
            memcpy(&b0, y, 4);
            ck_assert_msg(!strcmp(got, hash),
                          "%s %s (%s): dequantised f32 differ from ggml's to_float (first %08x vs %s)", path,
                          name, type, b0, first);
            /* and the portable form (what a build without AVX2 runs) */
            dk_dequantize_scalar(t->type, t->data, y, t->n_elems);
            snprintf(got, sizeof got, "%016llx", (unsigned long long)fnv1a64(y, t->n_elems * 4));
            ck_assert_msg(!strcmp(got, hash),
                          "%s %s (%s): portable dequantisation differs from ggml's to_float", path, name,
                          type);
            free(y);
        }
        ck_assert_int_eq(lines, (int)dk_gguf_n_tensors(g));
        dk_gguf_close(g);
        free(tsv);
    }
    /* every supported quantised type is covered by some golden tensor */
    static const uint32_t want[] = {DK_GGML_TYPE_Q4_0, DK_GGML_TYPE_Q4_1,   DK_GGML_TYPE_Q5_0,
                                    DK_GGML_TYPE_Q5_1, DK_GGML_TYPE_Q8_0,   DK_GGML_TYPE_Q2_K,
                                    DK_GGML_TYPE_Q3_K, DK_GGML_TYPE_Q4_K,   DK_GGML_TYPE_Q5_K,
                                    DK_GGML_TYPE_Q6_K, DK_GGML_TYPE_IQ4_NL, DK_GGML_TYPE_IQ4_XS};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(seen[want[i]], "no golden tensor of type %s", dk_ggml_type_name(want[i]));
    for (uint32_t t = 0; t < 64; t++)
        if (dk_ggml_type_supported(t) && t != DK_GGML_TYPE_F32 && t != DK_GGML_TYPE_F16 &&
            t != DK_GGML_TYPE_BF16)
            ck_assert_msg(seen[t], "supported type %s has no ggml golden", dk_ggml_type_name(t));
}
END_TEST

/* ---- forward on the quantised file == F32 forward of its dequantised weights ---- */

/* Replaces each matrix of m by an f32 copy of its dequantised values (owned by *bufs). */
static void dequantize_model(dk_model *m, void ***bufs, int *nb) {
    dk_tensor *ts[4 + 7 * 64];
    int n = 0;
    ts[n++] = &m->w.tok_embd;
    if (!m->cfg.tied_output) ts[n++] = &m->w.output;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        dk_layer_weights *lw = &m->w.layers[l];
        dk_tensor *lt[] = {&lw->wq, &lw->wk, &lw->wv, &lw->wo, &lw->w_gate, &lw->w_up, &lw->w_down};
        for (int i = 0; i < 7; i++) ts[n++] = lt[i];
    }
    *bufs = calloc((size_t)n, sizeof **bufs);
    *nb = n;
    for (int i = 0; i < n; i++) {
        dk_tensor *t = ts[i];
        float *f = malloc((size_t)(t->rows * t->cols) * sizeof *f);
        for (int64_t r = 0; r < t->rows; r++) dk_tensor_row_f32(t, r, f + r * t->cols);
        (*bufs)[i] = f;
        *t = (dk_tensor){.data = f,
                         .type = DK_GGML_TYPE_F32,
                         .rows = t->rows,
                         .cols = t->cols,
                         .row_bytes = (size_t)t->cols * 4};
    }
    if (m->cfg.tied_output) m->w.output = m->w.tok_embd;
}

static int32_t *read_ids(const char *path, int *n) {
    size_t len;
    char *s = dk_test_read_file(path, &len), *p = s, *end;
    int32_t *ids = malloc((len / 2 + 1) * sizeof *ids);
    *n = 0;
    for (long v = strtol(p, &end, 10); end != p; p = end, v = strtol(p, &end, 10)) ids[(*n)++] = (int32_t)v;
    free(s);
    return ids;
}

static float *prefill_all(dk_model *m, const int32_t *ids, int n) {
    dk_ctx *c = NULL;
    dk_err e = {{0}};
    ck_assert_msg(dk_ctx_create(m, n + 32, &c, &e) == DK_OK, "%s", e.msg);
    float *lg = malloc(sizeof(float) * (size_t)n * m->cfg.n_vocab);
    dk_prefill_opts o = {0};
    o.all_logits = true;
    ck_assert_msg(dk_forward_prefill(c, ids, n, &o, lg, &e) == DK_OK, "%s", e.msg);
    dk_ctx_free(c);
    return lg;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* prefill ids, then n_gen greedy steps through dk_forward_decode; out[n_gen] */
static void greedy(dk_model *m, const int32_t *ids, int n, int n_gen, int32_t *out) {
    dk_ctx *c = NULL;
    dk_err e = {{0}};
    int V = m->cfg.n_vocab;
    ck_assert_msg(dk_ctx_create(m, n + n_gen + 1, &c, &e) == DK_OK, "%s", e.msg);
    float *lg = malloc(sizeof(float) * (size_t)V);
    ck_assert_msg(dk_forward_prefill(c, ids, n, NULL, lg, &e) == DK_OK, "%s", e.msg);
    for (int i = 0; i < n_gen; i++) {
        out[i] = argmax(lg, V);
        ck_assert_msg(dk_forward_decode(c, out[i], lg, &e) == DK_OK, "%s", e.msg);
    }
    free(lg);
    dk_ctx_free(c);
}

START_TEST(test_forward_equals_dequantized_f32) {
    const char *name = QMODELS[_i];
    int n;
    int32_t *ids = read_ids(QDIR "quant_prompt.txt", &n);
    dk_model *q = load_q(name), *f = load_q(name);
    void **bufs;
    int nb;
    dequantize_model(f, &bufs, &nb);
    int V = q->cfg.n_vocab;
    float *lq = prefill_all(q, ids, n), *lf = prefill_all(f, ids, n);
    ck_assert_msg(!memcmp(lq, lf, sizeof(float) * (size_t)n * V),
                  "%s: prefill logits differ from the dequantised F32 model", name);
    /* decode: the quantised model takes the fused small-m path, the F32 one plain sgemm */
    int32_t gq[8], gf[8];
    greedy(q, ids, n, 8, gq);
    greedy(f, ids, n, 8, gf);
    ck_assert_msg(!memcmp(gq, gf, sizeof gq), "%s: greedy decode differs from the dequantised F32 model",
                  name);
    free(lq);
    free(lf);
    for (int i = 0; i < nb; i++) free(bufs[i]);
    free(bufs);
    dk_model_free(q);
    dk_model_free(f);
    free(ids);
}
END_TEST

/* `dashkit logits` on the quantised file (the CLI path users take, e.g. as a --kl-base) writes the
 * F32 forward of the dequantised weights bit for bit (dequantisation == ggml's to_float:
 * test_dequant_matches_ggml), for every prompt position, with the prompt ids. */
START_TEST(test_cli_logits_equals_dequantized_f32) {
    const char *name = QMODELS[_i];
    int n;
    int32_t *ids = read_ids(QDIR "quant_prompt.txt", &n);
    dk_model *f = load_q(name);
    void **bufs;
    int nb;
    dequantize_model(f, &bufs, &nb);
    float *lf = prefill_all(f, ids, n);
    char out[512], cmd[1024], *o = NULL;
    snprintf(out, sizeof out, "%s/%s.logits", dk_test_tmpdir(), name);
    snprintf(cmd, sizeof cmd, "%s logits " QDIR "quant_%s.gguf --ids " QDIR "quant_prompt.txt --out '%s'",
             dk_test_cli(), name, out);
    ck_assert_msg(dk_test_run(cmd, 1, &o) == 0, "%s: %s", cmd, o ? o : "");
    free(o);
    dk_test_logits g;
    dk_test_logits_load(out, 4, &g);
    ck_assert_int_eq(g.n_tokens, n);
    ck_assert_int_eq(g.n_vocab, f->cfg.n_vocab);
    ck_assert(!memcmp(g.tokens, ids, sizeof(int32_t) * (size_t)n));
    ck_assert_msg(!memcmp(g.logits, lf, sizeof(float) * (size_t)n * f->cfg.n_vocab),
                  "%s: dashkit logits differ from the F32 forward of the dequantised weights", name);
    dk_test_logits_free(&g);
    unlink(out);
    free(lf);
    for (int i = 0; i < nb; i++) free(bufs[i]);
    free(bufs);
    dk_model_free(f);
    free(ids);
}
END_TEST

/* ---- vs llama.cpp ---- */

/* dashkit's argmax `a` against llama.cpp's logits ref (n): a is within 2*QUANT_TOL*scale of the
 * top, and is the top wherever the top-2 margin exceeds that. Returns whether a is the top. */
static bool argmax_agrees(const char *what, int step, int a, const float *ref, int n, float scale) {
    int b = argmax(ref, n);
    float second = -INFINITY;
    for (int i = 0; i < n; i++)
        if (i != b && ref[i] > second) second = ref[i];
    double slack = 2.0 * QUANT_TOL * scale;
    ck_assert_msg(ref[a] >= ref[b] - slack, "%s %d: argmax %d is %.3g below llama.cpp's top %d (> %.3g)",
                  what, step, a, ref[b] - ref[a], b, slack);
    if (ref[b] - second > slack)
        ck_assert_msg(a == b, "%s %d: argmax %d, llama.cpp %d with margin %.3g", what, step, a, b,
                      ref[b] - second);
    return a == b;
}

START_TEST(test_logits_vs_llamacpp) {
    const char *name = QMODELS[_i];
    char path[256];
    snprintf(path, sizeof path, QDIR "quant_%s.logits", name);
    dk_test_logits g;
    dk_test_logits_load(path, 4, &g);
    dk_model *m = load_q(name);
    int V = m->cfg.n_vocab;
    ck_assert_int_eq(g.n_vocab, V);
    float *lg = prefill_all(m, g.tokens, g.n_tokens);
    double worst = 0;
    int worst_t = 0, same = 0;
    for (int t = 0; t < g.n_tokens; t++) {
        const float *a = lg + (size_t)t * V, *b = g.logits + (size_t)t * V;
        same += argmax_agrees("position", t, argmax(a, V), b, V, g.scale);
        double r = dk_test_rel_err(a, b, (size_t)V, g.scale);
        if (r > worst) {
            worst = r;
            worst_t = t;
        }
    }
    ck_assert_msg(worst <= QUANT_TOL, "%s: position %d differs from llama.cpp by %.3e of scale (> %g)", name,
                  worst_t, worst, QUANT_TOL);
    /* llama.cpp's greedy continuation: its ids (line 1) and each step's top-2 margin (line 2) */
    snprintf(path, sizeof path, QDIR "quant_%s.greedy.txt", name);
    size_t len;
    char *txt = dk_test_read_file(path, &len), *p = txt, *end;
    int32_t want[16], got[16];
    float margin[16];
    for (int i = 0; i < 16; i++, p = end) {
        want[i] = (int32_t)strtol(p, &end, 10);
        ck_assert(end != p);
    }
    for (int i = 0; i < 16; i++, p = end) {
        margin[i] = strtof(p, &end);
        ck_assert(end != p);
    }
    free(txt);
    /* free-running greedy: identical to llama.cpp's. (Its smallest step margin is 0.4% of the
     * scale, qllama_q4_k_m step 2, where a fork would be within the bound; measured: none forks,
     * and dashkit's own run-to-run / machine-to-machine differences are ~1e-6 of the scale.) */
    greedy(m, g.tokens, g.n_tokens, 16, got);
    for (int i = 0; i < 16; i++)
        ck_assert_msg(got[i] == want[i], "%s: greedy token %d: %d, llama.cpp %d", name, i, got[i], want[i]);
    /* teacher-forced along llama.cpp's tokens: every step's argmax agrees as above */
    dk_ctx *c = NULL;
    dk_err e = {{0}};
    ck_assert(dk_ctx_create(m, g.n_tokens + 17, &c, &e) == DK_OK);
    float *step = malloc(sizeof(float) * (size_t)V);
    ck_assert_msg(dk_forward_prefill(c, g.tokens, g.n_tokens, NULL, step, &e) == DK_OK, "%s", e.msg);
    int forced = 0;
    for (int i = 0; i < 16; i++) {
        int a = argmax(step, V);
        ck_assert_msg(a == want[i] || step[want[i]] >= step[a] - 2.0 * QUANT_TOL * g.scale,
                      "%s: step %d: argmax %d, llama.cpp %d", name, i, a, want[i]);
        if (margin[i] > 2.0 * QUANT_TOL * g.scale)
            ck_assert_msg(a == want[i], "%s: step %d: argmax %d, llama.cpp %d (margin %.3g)", name, i, a,
                          want[i], margin[i]);
        forced += a == want[i];
        ck_assert_msg(dk_forward_decode(c, want[i], step, &e) == DK_OK, "%s", e.msg);
    }
    printf(
        "%s: max err vs llama.cpp %.2e of logit scale %.3f (position %d); argmax equal at %d/%d positions, "
        "teacher-forced greedy steps %d/16; greedy 16/16 identical\n",
        name, worst, g.scale, worst_t, same, g.n_tokens, forced);
    free(step);
    dk_ctx_free(c);
    free(lg);
    dk_model_free(m);
    dk_test_logits_free(&g);
}
END_TEST

/* ---- halting: rho = 0 == dense ---- */

START_TEST(test_rho0_bit_identical) {
    dk_model *m = load_q(QMODELS[_i]);
    int n;
    int32_t *ids = read_ids(QDIR "quant_prompt.txt", &n);
    int T = n - 6, Q = 6, V = m->cfg.n_vocab, d = m->cfg.n_embd;
    const dk_policy *p;
    dk_policy_params pp;
    dk_err e = {{0}};
    ck_assert_msg(dk_policy_lookup("dash", &p, &e) == DK_OK, "%s", e.msg);
    dk_policy_params_default(&pp);
    ck_assert_msg(dk_policy_params_set_text(p, &pp, "rho", "0", &e) == DK_OK, "%s", e.msg);
    dk_ctx *c = NULL;
    ck_assert(dk_ctx_create(m, n + 4, &c, &e) == DK_OK);
    float *h0 = malloc(sizeof(float) * (size_t)T * d), *h1 = malloc(sizeof(float) * (size_t)T * d);
    dk_prefill_result r0, r1;
    ck_assert_msg(dk_prefill_run(c, NULL, NULL, ids, T, ids + T, Q, h0, &r0, &e) == DK_OK, "%s", e.msg);
    ck_assert_msg(dk_prefill_run(c, p, &pp, ids, T, ids + T, Q, h1, &r1, &e) == DK_OK, "%s", e.msg);
    ck_assert(!memcmp(r0.ctx_logits, r1.ctx_logits, sizeof(float) * (size_t)V));
    ck_assert(!memcmp(r0.q_logits, r1.q_logits, sizeof(float) * (size_t)V));
    ck_assert(!memcmp(h0, h1, sizeof(float) * (size_t)T * d));
    for (int l = 0; l < m->cfg.n_layer; l++) ck_assert_int_eq(r1.layers[l].n_active, T);
    dk_prefill_result_free(&r0);
    dk_prefill_result_free(&r1);
    free(h0);
    free(h1);
    dk_ctx_free(c);
    dk_model_free(m);
    free(ids);
}
END_TEST

/* ---- damaged quantised files ---- */

/* A copy of a golden at tmp/name whose tensor `tensor` gets type `type` (if not 0) and row
 * length ne0 (if not 0), cut to `cut` bytes (if not 0). */
static const char *patched_copy(const char *golden, const char *name, const char *tensor, uint32_t type,
                                uint64_t ne0, size_t cut) {
    const char *p = dk_test_tmp_path(NULL, 0, name);
    size_t n;
    uint8_t *b = dk_test_read_file(golden, &n);
    if (tensor) {
        size_t tl = strlen(tensor);
        uint8_t *at = NULL;
        for (size_t i = 8; i + tl + 8 < n && !at; i++) {
            uint64_t l;
            memcpy(&l, b + i - 8, 8);
            if (l == tl && !memcmp(b + i, tensor, tl)) at = b + i + tl;
        }
        ck_assert_msg(at != NULL, "%s: tensor info %s not found", golden, tensor);
        uint32_t nd;
        memcpy(&nd, at, 4);
        if (ne0) memcpy(at + 4, &ne0, 8);
        if (type) memcpy(at + 4 + 8 * nd, &type, 4);
    }
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(b, 1, cut ? cut : n, f);
    fclose(f);
    free(b);
    return p;
}

/* `dashkit info path`: exit 1, nothing on stdout, one stderr line holding every string given */
static void expect_one_line_error(const char *path, const char *a, const char *b) {
    char cmd[1024], *out = NULL;
    snprintf(cmd, sizeof cmd, "( %s info '%s' 2>&1 >/dev/null )", dk_test_cli(), path);
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 1);
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(strstr(out, path) && strstr(out, a) && strstr(out, b),
                  "error lacks the file, '%s' or '%s': %s", a, b, out);
    char *nl = strchr(out, '\n');
    ck_assert_msg(nl && nl[1] == 0, "expected exactly one line: %s", out);
    free(out);
}

START_TEST(test_bad_quant_files) {
    const char *g = QDIR "quant_qllama_q4_k_m.gguf";
    /* known to ggml but not to dashkit's engine: fails at load naming the tensor and its type */
    expect_one_line_error(patched_copy(g, "iq2.gguf", "blk.1.attn_q.weight", DK_GGML_TYPE_IQ2_XXS, 0, 0),
                          "tensor 'blk.1.attn_q.weight' has type IQ2_XXS", "not supported");
    expect_one_line_error(patched_copy(g, "tq1.gguf", "blk.0.ffn_up.weight", DK_GGML_TYPE_TQ1_0, 0, 0),
                          "tensor 'blk.0.ffn_up.weight' has type TQ1_0", "not supported");
    /* a row that is not a whole number of Q4_K blocks */
    expect_one_line_error(patched_copy(g, "rows.gguf", "blk.0.attn_q.weight", 0, 200, 0),
                          "'blk.0.attn_q.weight'",
                          "row length 200 is not a multiple of the Q4_K block size 256");
    /* the file cut inside the last quantised tensor */
    size_t n;
    free(dk_test_read_file(g, &n));
    expect_one_line_error(patched_copy(g, "cut.gguf", NULL, 0, 0, n - 1000),
                          "extends past the end of the file", "tensor '");
}
END_TEST

/* ---- dashkit's own (round-to-nearest) quantisers: random-weight models in every type ---- */

/* relative RMS error of quantise -> dequantise on uniform data with a few 4x outliers; bounds ~1.5x
 * the measured values (Q2_K 0.287, Q3_K 0.145, Q4_0 0.075, IQ4_* 0.075, Q4_1/Q4_K 0.066, Q5_*
 * 0.032-0.037, Q6_K 0.016, Q8_0 0.0046): a packing mistake (a nibble, a scale bit in the wrong
 * place) gives errors of order 1 */
static const struct {
    uint32_t type;
    double rt_bound;
} QTYPES[] = {
    {DK_GGML_TYPE_Q4_0, 0.11},  {DK_GGML_TYPE_Q4_1, 0.10},   {DK_GGML_TYPE_Q5_0, 0.055},
    {DK_GGML_TYPE_Q5_1, 0.05},  {DK_GGML_TYPE_Q8_0, 0.007},  {DK_GGML_TYPE_Q2_K, 0.43},
    {DK_GGML_TYPE_Q3_K, 0.22},  {DK_GGML_TYPE_Q4_K, 0.10},   {DK_GGML_TYPE_Q5_K, 0.05},
    {DK_GGML_TYPE_Q6_K, 0.025}, {DK_GGML_TYPE_IQ4_NL, 0.11}, {DK_GGML_TYPE_IQ4_XS, 0.11},
};
#define N_QTYPES ((int)(sizeof QTYPES / sizeof QTYPES[0]))

START_TEST(test_quantize_roundtrip) {
    uint32_t t = QTYPES[_i].type;
    ck_assert(dk_ggml_type_quantizable(t));
    size_t n = 8192;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    uint8_t *q = malloc(dk_ggml_row_bytes(t, (int64_t)n));
    uint32_t s = 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        x[i] = ((float)(s >> 8) / 16777216.0f * 2.0f - 1.0f) * (i % 300 == 0 ? 4.0f : 1.0f);
    }
    dk_quantize(t, x, q, n);
    dk_dequantize(t, q, y, n);
    double err = 0, ref = 0;
    for (size_t i = 0; i < n; i++) {
        err += (double)(x[i] - y[i]) * (x[i] - y[i]);
        ref += (double)x[i] * x[i];
    }
    double r = sqrt(err / ref);
    ck_assert_msg(r <= QTYPES[_i].rt_bound, "%s: relative RMS error %.4f > %.3f", dk_ggml_type_name(t), r,
                  QTYPES[_i].rt_bound);
    free(x);
    free(y);
    free(q);
}
END_TEST

/* a random model stored in each type runs (prefill and fused decode) and stays near its F32 twin */
START_TEST(test_random_typed_model) {
    uint32_t t = QTYPES[_i].type;
    dk_model_config cfg = {DK_ARCH_LLAMA,     2,     256,   4,    2, 64, 256, 96, 512, 10000.0f, 64,
                           DK_ROPE_TYPE_NORM, 1e-5f, false, false};
    dk_model *mq, *mf;
    dk_err e = {{0}};
    ck_assert_msg(dk_model_create_random_typed(&cfg, 7, "q256", t, &mq, &e) == DK_OK, "%s", e.msg);
    ck_assert_msg(dk_model_create_random(&cfg, 7, "q256", &mf, &e) == DK_OK, "%s", e.msg);
    ck_assert_str_eq(mq->tensor_type, dk_ggml_type_name(t));
    ck_assert(mq->converts);
    ck_assert_int_eq(
        mq->weights_bytes,
        (int64_t)dk_ggml_row_bytes(t, 96 * 256 * 2 + 2 * (256 * 256 * 2 + 128 * 256 * 2 + 3 * 256 * 256)) +
            4 * (mq->n_params - (96 * 256 * 2 + 2 * (256 * 256 * 2 + 128 * 256 * 2 + 3 * 256 * 256))));
    int32_t ids[24];
    for (int i = 0; i < 24; i++) ids[i] = (i * 37 + 5) % 96;
    float *lq = prefill_all(mq, ids, 24), *lf = prefill_all(mf, ids, 24);
    float scale = 0;
    for (int i = 0; i < 24 * 96; i++) scale = fabsf(lf[i]) > scale ? fabsf(lf[i]) : scale;
    double r = dk_test_rel_err(lq, lf, 24 * 96, scale);
    /* the weights' rounding error (QTYPES bound) through 2 layers: within 3x of it */
    ck_assert_msg(r <= 3 * QTYPES[_i].rt_bound, "%s: logits %.3e of scale from the F32 model",
                  dk_ggml_type_name(t), r);
    int32_t g[4];
    greedy(mq, ids, 24, 4, g);
    for (int i = 0; i < 4; i++) ck_assert(g[i] >= 0 && g[i] < 96);
    free(lq);
    free(lf);
    dk_model_free(mq);
    dk_model_free(mf);
}
END_TEST

/* ---- dashkit info: the type histogram (counted here from ggml's tensor list) and file type ---- */

START_TEST(test_info_types) {
    static const char *file_type[] = {"MOSTLY_Q4_0", "MOSTLY_Q4_K_S", "MOSTLY_Q4_K_M", "MOSTLY_Q3_K_M",
                                      "MOSTLY_Q5_K_S"};
    char path[256], cmd[512], *out = NULL;
    snprintf(path, sizeof path, QDIR "quant_%s.tensors.tsv", QMODELS[_i]);
    size_t len;
    char *tsv = dk_test_read_file(path, &len);
    char types[32][16];
    int count[32] = {0}, nt = 0;
    for (char *line = strtok(tsv, "\n"); line; line = strtok(NULL, "\n")) {
        char name[128], type[16];
        ck_assert_int_eq(sscanf(line, "%127s %15s", name, type), 2);
        int k = 0;
        while (k < nt && strcmp(types[k], type)) k++;
        if (k == nt) snprintf(types[nt++], 16, "%s", type);
        count[k]++;
    }
    free(tsv);
    snprintf(cmd, sizeof cmd, "%s info " QDIR "quant_%s.gguf", dk_test_cli(), QMODELS[_i]);
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    char *line = strstr(out, "\ntensor_types: ");
    ck_assert_msg(line != NULL, "no tensor_types line: %s", out);
    char list[512]; /* " q4_K:13 q6_K:3 f32:5 " */
    snprintf(list, sizeof list, " %.*s ", (int)(strchr(line + 15, '\n') - (line + 15)), line + 15);
    int listed = 0;
    for (char *p = list; *p; p++) listed += p[0] == ' ' && p[1];
    ck_assert_int_eq(listed, nt);
    for (int k = 0; k < nt; k++) {
        char want[64];
        snprintf(want, sizeof want, " %.15s:%d ", types[k], count[k]);
        ck_assert_msg(strstr(list, want) != NULL, "%s: tensor_types '%s' lacks %s", QMODELS[_i], list, want);
    }
    char want[64];
    snprintf(want, sizeof want, "\nfile_type: %s\n", file_type[_i]);
    ck_assert_msg(strstr(out, want) != NULL, "%s: no '%s'", QMODELS[_i], want + 1);
    free(out);
}
END_TEST

static Suite *quant_suite(void) {
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_dequant_matches_ggml);
    tcase_add_loop_test(tc, test_forward_equals_dequantized_f32, 0, N_QMODELS);
    tcase_add_loop_test(tc, test_cli_logits_equals_dequantized_f32, 0, N_QMODELS);
    tcase_add_loop_test(tc, test_logits_vs_llamacpp, 0, N_QMODELS);
    tcase_add_loop_test(tc, test_rho0_bit_identical, 0, N_QMODELS);
    tcase_add_test(tc, test_bad_quant_files);
    tcase_add_loop_test(tc, test_info_types, 0, N_QMODELS);
    tcase_add_loop_test(tc, test_quantize_roundtrip, 0, N_QTYPES);
    tcase_add_loop_test(tc, test_random_typed_model, 0, N_QTYPES);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return dk_test_main(quant_suite()); }
