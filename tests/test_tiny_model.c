/* test_tiny_model.c — the bundled model models/dashkit-tiny.gguf against its export goldens.
 *
 * Goldens (written together with the GGUF by scripts/export_gguf.py --golden; a re-export from a
 * newer checkpoint replaces all four files, so nothing below hard-codes a logit, an id or a shape):
 *   tests/data/tiny_prompt.txt         the prompt text (UTF-8)
 *   tests/data/tiny_logits_f32.logits  DKLOGIT1: "DKLOGIT1" | u32 n_tokens | u32 n_vocab |
 *                                      i32 tokens[n] ([BOS] + SentencePiece ids of the prompt) |
 *                                      logits[n][n_vocab], computed by torch in float64 on the
 *                                      weights as stored; the script writes them as f32, the
 *                                      reader also accepts f64 (element size from the file size)
 *   tests/data/tiny_tok_golden.tsv     "enc<TAB>NAME<TAB>TEXT_HEX<TAB>IDS" (SentencePiece ids on
 *                                      models/tokenizer.model, WITHOUT BOS; "-" = empty)
 * The hyper-parameters expected of the loaded model are read from the GGUF header with gguf.h
 * (an independent reader path from model.c's), not written here.
 * Tolerance: max |engine - golden| <= 1e-4 * max |golden| (the logit scale), as test_reference.
 * The whole suite SKIPs (with a printed reason) when the model file is absent. */
#include "support/dk_test.h"
#include "blas.h"
#include "forward.h"
#include "gguf.h"
#include "model.h"
#include "tokenizer.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TINY_MODEL "models/dashkit-tiny.gguf"
#define TINY_PROMPT "tests/data/tiny_prompt.txt"
#define TINY_LOGITS "tests/data/tiny_logits_f32.logits"
#define TINY_TOK "tests/data/tiny_tok_golden.tsv"
#define TINY_TOL 1e-4

/* ---- model presence ---- */

/* Set once in main() before Check forks the tests; main prints the SKIP line. */
static bool g_tiny_present;

static bool tiny_present(void) { return g_tiny_present; }

static dk_model *tiny_load(void) {
    dk_model *m = NULL;
    dk_err e = {{0}};
    dk_status st = dk_model_load(TINY_MODEL, NULL, &m, &e);
    ck_assert_msg(st == DK_OK, "load %s: %s", TINY_MODEL, e.msg);
    return m;
}

/* ---- tokenizer golden ---- */

typedef struct {
    char name[64];
    char *text; /* decoded bytes, NUL-terminated */
    size_t len;
    int32_t *ids; /* (n_ids) */
    int n_ids;
} tok_case;

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Parses TINY_TOK into *cases (malloc'd); returns the count. */
static int tok_cases_load(tok_case **cases) {
    size_t n;
    char *buf = dk_test_read_file(TINY_TOK, &n);
    int cap = 16, cnt = 0, line_no = 0;
    tok_case *cs = malloc(sizeof *cs * (size_t)cap);
    ck_assert(cs != NULL);
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line_no++;
        if (line[0] == '#' || line[0] == 0) continue;
        char *f[4];
        int nf = 0;
        char *p = line;
        while (nf < 4) {
            f[nf++] = p;
            char *t = strchr(p, '\t');
            if (!t) break;
            *t = 0;
            p = t + 1;
        }
        ck_assert_msg(nf == 4 && strcmp(f[0], "enc") == 0, "%s:%d: expected enc<TAB>NAME<TAB>HEX<TAB>IDS",
                      TINY_TOK, line_no);
        if (cnt == cap) {
            cap *= 2;
            cs = realloc(cs, sizeof *cs * (size_t)cap);
            ck_assert(cs != NULL);
        }
        tok_case *c = &cs[cnt++];
        snprintf(c->name, sizeof c->name, "%s", f[1]);
        size_t hl = strcmp(f[2], "-") == 0 ? 0 : strlen(f[2]);
        ck_assert_msg(hl % 2 == 0, "%s:%d: odd hex length", TINY_TOK, line_no);
        c->len = hl / 2;
        c->text = malloc(c->len + 1);
        ck_assert(c->text != NULL);
        for (size_t i = 0; i < c->len; i++) {
            int hi = hexval(f[2][2 * i]), lo = hexval(f[2][2 * i + 1]);
            ck_assert_msg(hi >= 0 && lo >= 0, "%s:%d: bad hex", TINY_TOK, line_no);
            c->text[i] = (char)(hi * 16 + lo);
        }
        c->text[c->len] = 0;
        c->n_ids = 0;
        c->ids = malloc(sizeof(int32_t) * (strlen(f[3]) + 1));
        ck_assert(c->ids != NULL);
        if (strcmp(f[3], "-") != 0) {
            char *q = f[3], *end;
            while (*q) {
                long v = strtol(q, &end, 10);
                ck_assert_msg(end != q && v >= 0, "%s:%d: bad id list", TINY_TOK, line_no);
                c->ids[c->n_ids++] = (int32_t)v;
                q = end;
                while (*q == ' ') q++;
            }
        }
        ck_assert_msg(c->len == 0 || c->n_ids > 0, "%s:%d: non-empty text without ids", TINY_TOK, line_no);
    }
    free(buf);
    *cases = cs;
    return cnt;
}

static void tok_cases_free(tok_case *cs, int n) {
    for (int i = 0; i < n; i++) {
        free(cs[i].text);
        free(cs[i].ids);
    }
    free(cs);
}

static void expect_ids(const char *what, const int32_t *got, int n_got, const int32_t *want, int n_want) {
    int i = 0;
    while (i < n_got && i < n_want && got[i] == want[i]) i++;
    ck_assert_msg(i == n_got && i == n_want, "%s: %d ids vs golden %d; first difference at %d (%d vs %d)",
                  what, n_got, n_want, i, i < n_got ? got[i] : -1, i < n_want ? want[i] : -1);
}

/* ---- configuration == the GGUF header ---- */

static uint32_t gguf_u32(const dk_gguf *g, const char *key) {
    uint32_t v = 0;
    dk_err e = {{0}};
    ck_assert_msg(dk_gguf_get_u32(g, key, &v, &e) == DK_OK, "%s", e.msg);
    return v;
}

static float gguf_f32(const dk_gguf *g, const char *key) {
    float v = 0;
    dk_err e = {{0}};
    ck_assert_msg(dk_gguf_get_f32(g, key, &v, &e) == DK_OK, "%s", e.msg);
    return v;
}

START_TEST(test_config) {
    if (!tiny_present()) return;
    dk_gguf *g = NULL;
    dk_err e = {{0}};
    ck_assert_msg(dk_gguf_open(TINY_MODEL, &g, &e) == DK_OK, "%s", e.msg);
    dk_model *m = tiny_load();
    const dk_model_config *c = &m->cfg;

    const char *s;
    size_t sl;
    ck_assert_msg(dk_gguf_get_str(g, "general.architecture", &s, &sl, &e) == DK_OK, "%s", e.msg);
    ck_assert_msg(sl == 5 && memcmp(s, "llama", 5) == 0, "architecture '%.*s'", (int)sl, s);
    ck_assert_str_eq(m->arch_name, "llama");
    ck_assert_str_eq(m->format_name, "gguf");
    ck_assert_int_eq(m->gguf_version, dk_gguf_version(g));

    ck_assert_int_eq(c->n_layer, (int)gguf_u32(g, "llama.block_count"));
    ck_assert_int_eq(c->n_embd, (int)gguf_u32(g, "llama.embedding_length"));
    ck_assert_int_eq(c->n_ff, (int)gguf_u32(g, "llama.feed_forward_length"));
    ck_assert_int_eq(c->n_head, (int)gguf_u32(g, "llama.attention.head_count"));
    ck_assert_int_eq(c->n_head_kv, (int)gguf_u32(g, "llama.attention.head_count_kv"));
    ck_assert_int_eq(c->n_rot, (int)gguf_u32(g, "llama.rope.dimension_count"));
    ck_assert_int_eq(c->n_ctx_train, (int)gguf_u32(g, "llama.context_length"));
    ck_assert_int_eq(c->n_vocab, (int)gguf_u32(g, "llama.vocab_size"));
    ck_assert_float_eq(c->rope_theta, gguf_f32(g, "llama.rope.freq_base"));
    ck_assert_float_eq(c->rms_eps, gguf_f32(g, "llama.attention.layer_norm_rms_epsilon"));
    ck_assert_int_eq(c->rope_type, DK_ROPE_TYPE_NORM);
    ck_assert(!c->qkv_bias);

    /* shapes from the tensors themselves (ne[0] = row length) */
    const dk_gguf_tensor *q = dk_gguf_find_tensor(g, "blk.0.attn_q.weight");
    const dk_gguf_tensor *k = dk_gguf_find_tensor(g, "blk.0.attn_k.weight");
    const dk_gguf_tensor *emb = dk_gguf_find_tensor(g, "token_embd.weight");
    ck_assert(q && k && emb);
    ck_assert_int_eq(c->head_dim * c->n_head, (int)q->ne[1]);
    ck_assert_int_eq(c->head_dim * c->n_head_kv, (int)k->ne[1]);
    ck_assert_int_eq(c->n_embd, (int)q->ne[0]);
    ck_assert_int_eq(c->n_vocab, (int)emb->ne[1]);
    ck_assert_int_eq(c->tied_output, dk_gguf_find_tensor(g, "output.weight") == NULL);
    ck_assert_int_eq(m->n_tensors, (int)dk_gguf_n_tensors(g));
    ck_assert_int_eq(m->n_tensors, c->tied_output ? 2 + 9 * c->n_layer : 3 + 9 * c->n_layer);
    int64_t n_params = 0;
    for (int64_t i = 0; i < dk_gguf_n_tensors(g); i++) n_params += (int64_t)dk_gguf_tensor_at(g, i)->n_elems;
    ck_assert_int_eq(m->n_params, n_params);
    uint32_t ftype = gguf_u32(g, "general.file_type");
    ck_assert_msg(ftype == 0 || ftype == 1, "general.file_type %u (export_gguf.py writes 0 or 1)", ftype);
    ck_assert_str_eq(m->tensor_type, ftype == 0 ? "F32" : "F16");

    /* tokenizer: SentencePiece vocabulary of the size the header declares */
    ck_assert_msg(dk_gguf_get_str(g, "tokenizer.ggml.model", &s, &sl, &e) == DK_OK, "%s", e.msg);
    ck_assert_msg(sl == 5 && memcmp(s, "llama", 5) == 0, "tokenizer.ggml.model '%.*s'", (int)sl, s);
    dk_gguf_type et;
    uint64_t n_tok = 0;
    ck_assert_msg(dk_gguf_get_arr_info(g, "tokenizer.ggml.tokens", &et, &n_tok, &e) == DK_OK, "%s", e.msg);
    ck_assert_msg(m->tokenizer != NULL, "no tokenizer: %s", m->tokenizer_error);
    ck_assert_str_eq(dk_tokenizer_kind(m->tokenizer), "spm");
    ck_assert_int_eq(dk_tokenizer_n_vocab(m->tokenizer), (int)n_tok);
    ck_assert_int_eq(dk_tokenizer_n_vocab(m->tokenizer), c->n_vocab);
    ck_assert_int_eq(dk_tokenizer_bos(m->tokenizer), (int)gguf_u32(g, "tokenizer.ggml.bos_token_id"));
    ck_assert_int_eq(dk_tokenizer_eos(m->tokenizer), (int)gguf_u32(g, "tokenizer.ggml.eos_token_id"));
    ck_assert(dk_tokenizer_add_bos_default(m->tokenizer));

    printf("dashkit-tiny: %d layers, d %d, %d/%d heads of %d, ff %d, vocab %d, ctx %d, %s, %lld params\n",
           c->n_layer, c->n_embd, c->n_head, c->n_head_kv, c->head_dim, c->n_ff, c->n_vocab, c->n_ctx_train,
           m->tensor_type, (long long)m->n_params);
    dk_model_free(m);
    dk_gguf_close(g);
}
END_TEST

/* ---- logits ---- */

/* The golden's tokens are [BOS] + the engine's encoding of tiny_prompt.txt (so the logits test
 * really runs the bundled prompt), and its shape matches the model. */
static void check_golden_tokens(const dk_model *m, const dk_test_logits *gl) {
    ck_assert_int_eq(gl->n_vocab, m->cfg.n_vocab);
    ck_assert_msg(gl->n_tokens <= m->cfg.n_ctx_train, "golden longer than the context");
    size_t n;
    char *text = dk_test_read_file(TINY_PROMPT, &n);
    int32_t *ids = NULL;
    int n_ids = 0;
    dk_err e = {{0}};
    ck_assert_msg(dk_tokenizer_encode(m->tokenizer, text, n, true, &ids, &n_ids, &e) == DK_OK, "%s", e.msg);
    expect_ids(TINY_PROMPT " with BOS vs golden tokens", ids, n_ids, gl->tokens, gl->n_tokens);
    free(ids);
    free(text);
}

/* Prefills the golden's first n tokens on a fresh context with logits for every position into lg
 * (n, V) and checks rows 0..n-1 against the golden within TINY_TOL; returns the worst error
 * (relative to the golden's scale). The context stays open for decode steps. */
static double prefill_check_rows(dk_model *m, const dk_test_logits *gl, int n, dk_ctx **c, float **lg) {
    int V = gl->n_vocab;
    dk_err e = {{0}};
    ck_assert_msg(dk_ctx_create(m, gl->n_tokens, c, &e) == DK_OK, "%s", e.msg);
    *lg = malloc(sizeof(float) * (size_t)n * V);
    ck_assert(*lg != NULL);
    dk_prefill_opts o = {0};
    o.all_logits = true;
    ck_assert_msg(dk_forward_prefill(*c, gl->tokens, n, &o, *lg, &e) == DK_OK, "%s", e.msg);
    double worst = 0;
    for (int t = 0; t < n; t++) {
        double r = dk_test_rel_err(*lg + (size_t)t * V, gl->logits + (size_t)t * V, (size_t)V, gl->scale);
        ck_assert_msg(r <= TINY_TOL, "prefill position %d of %d: max err %.3e of scale %.3f (tol %g)", t, n,
                      r, gl->scale, TINY_TOL);
        worst = fmax(worst, r);
    }
    return worst;
}

START_TEST(test_prefill_all_positions) {
    if (!tiny_present()) return;
    dk_model *m = tiny_load();
    dk_test_logits gl;
    dk_test_logits_load(TINY_LOGITS, 0, &gl);
    check_golden_tokens(m, &gl);
    int n = gl.n_tokens, V = gl.n_vocab;
    dk_ctx *c = NULL;
    float *lg = NULL;
    double worst = prefill_check_rows(m, &gl, n, &c, &lg);
    /* the argmax of the last position is the golden's (a gross check that survives any tolerance) */
    ck_assert_int_eq(dk_argmax(lg + (size_t)(n - 1) * V, V), dk_argmax(gl.logits + (size_t)(n - 1) * V, V));
    printf("dashkit-tiny prefill: %d positions x %d vocab (golden f%d), max err %.2e of scale %.2f\n", n, V,
           8 * gl.elem_size, worst, gl.scale);
    free(lg);
    dk_ctx_free(c);
    dk_test_logits_free(&gl);
    dk_model_free(m);
}
END_TEST

START_TEST(test_prefill_then_decode) {
    if (!tiny_present()) return;
    dk_model *m = tiny_load();
    dk_test_logits gl;
    dk_test_logits_load(TINY_LOGITS, 0, &gl);
    int n = gl.n_tokens, V = gl.n_vocab, h = n / 2;
    ck_assert_msg(h >= 1 && h < n, "golden too short to split (%d tokens)", n);
    dk_ctx *c = NULL;
    float *lg = NULL;
    dk_err e = {{0}};
    double worst = prefill_check_rows(m, &gl, h, &c, &lg);
    for (int t = h; t < n; t++) {
        ck_assert_int_eq(dk_ctx_n_past(c), t);
        ck_assert_msg(dk_forward_decode(c, gl.tokens[t], lg, &e) == DK_OK, "decode %d: %s", t, e.msg);
        double r = dk_test_rel_err(lg, gl.logits + (size_t)t * V, (size_t)V, gl.scale);
        ck_assert_msg(r <= TINY_TOL, "decode position %d: max err %.3e (tol %g)", t, r, TINY_TOL);
        worst = fmax(worst, r);
    }
    for (int l = 0; l < m->cfg.n_layer; l++) ck_assert_int_eq(dk_ctx_cache(c, l)->len, n);
    printf("dashkit-tiny prefill %d + decode %d: max err %.2e\n", h, n - h, worst);
    free(lg);
    dk_ctx_free(c);
    dk_test_logits_free(&gl);
    dk_model_free(m);
}
END_TEST

/* ---- tokenizer ---- */

START_TEST(test_tokenizer_golden) {
    if (!tiny_present()) return;
    dk_model *m = tiny_load();
    ck_assert_msg(m->tokenizer != NULL, "no tokenizer: %s", m->tokenizer_error);
    tok_case *cs = NULL;
    int n = tok_cases_load(&cs);
    ck_assert_msg(n > 0, "%s: no cases", TINY_TOK);
    int bos = dk_tokenizer_bos(m->tokenizer), n_nonempty = 0;
    dk_test_logits gl;
    dk_test_logits_load(TINY_LOGITS, 0, &gl);
    bool saw_prompt = false;
    for (int i = 0; i < n; i++) {
        /* the golden is SentencePiece's encoding WITHOUT BOS: BOS is never produced from text */
        if (cs[i].n_ids > 0) {
            n_nonempty++;
            ck_assert_msg(cs[i].ids[0] != bos, "%s: golden starts with BOS; expected none", cs[i].name);
        }
        int32_t *ids = NULL;
        int n_ids = 0;
        dk_err e = {{0}};
        ck_assert_msg(dk_tokenizer_encode(m->tokenizer, cs[i].text, cs[i].len, false, &ids, &n_ids, &e) ==
                          DK_OK,
                      "%s: %s", cs[i].name, e.msg);
        expect_ids(cs[i].name, ids, n_ids, cs[i].ids, cs[i].n_ids);
        free(ids);
        if (strcmp(cs[i].name, "golden_prompt") == 0) {
            /* the same prompt as the logits golden: its ids are the golden's tokens after BOS */
            saw_prompt = true;
            ck_assert_int_eq(gl.tokens[0], bos);
            expect_ids("golden_prompt vs logits golden tokens[1..]", cs[i].ids, cs[i].n_ids, gl.tokens + 1,
                       gl.n_tokens - 1);
        }
    }
    ck_assert_msg(n_nonempty > 0, "%s: every case empty", TINY_TOK);
    printf("dashkit-tiny tokenizer: %d golden strings equal SentencePiece%s\n", n,
           saw_prompt ? " (incl. the logits prompt)" : "");
    dk_test_logits_free(&gl);
    tok_cases_free(cs, n);
    dk_model_free(m);
}
END_TEST

/* Appends s to the shell command as one single-quoted word. */
static void sh_quote(char *dst, size_t cap, const char *s) {
    size_t k = strlen(dst);
    ck_assert(k + 1 < cap);
    dst[k++] = '\'';
    for (; *s; s++) {
        if (*s == '\'') {
            ck_assert(k + 5 < cap);
            memcpy(dst + k, "'\\''", 4);
            k += 4;
        } else {
            ck_assert(k + 2 < cap);
            dst[k++] = *s;
        }
    }
    dst[k++] = '\'';
    dst[k] = 0;
}

/* "id id ...\n" printed by `dashkit tokenize` vs ids. */
static void expect_cli_ids(const char *what, const char *out, const int32_t *want, int n_want) {
    int32_t got[4096];
    int n_got = 0;
    const char *p = out;
    char *end;
    while (n_got < 4096) {
        while (*p == ' ') p++;
        if (*p == '\n' || *p == 0) break;
        long v = strtol(p, &end, 10);
        ck_assert_msg(end != p, "%s: unexpected output '%s'", what, out);
        got[n_got++] = (int32_t)v;
        p = end;
    }
    if (*p == '\n') p++;
    ck_assert_msg(*p == 0, "%s: more than one output line: '%s'", what, out);
    expect_ids(what, got, n_got, want, n_want);
}

START_TEST(test_tokenize_cli) {
    if (!tiny_present()) return;
    tok_case *cs = NULL;
    int n = tok_cases_load(&cs);
    /* one string through the TEXT argument: the golden string with the most ids */
    int best = -1;
    for (int i = 0; i < n; i++)
        if (cs[i].n_ids > 0 && !memchr(cs[i].text, 0, cs[i].len) &&
            (best < 0 || cs[i].n_ids > cs[best].n_ids))
            best = i;
    ck_assert_msg(best >= 0, "%s: no non-empty case", TINY_TOK);
    size_t cap = 64 + 4 * cs[best].len + strlen(dk_test_cli());
    char *cmd = calloc(cap, 1);
    ck_assert(cmd != NULL);
    snprintf(cmd, cap, "%s tokenize " TINY_MODEL " -- ", dk_test_cli());
    sh_quote(cmd, cap, cs[best].text);
    char *out = NULL;
    int rc = dk_test_run(cmd, 0, &out);
    ck_assert_msg(rc == 0, "dashkit tokenize (%s): exit %d", cs[best].name, rc);
    ck_assert(out != NULL);
    expect_cli_ids(cs[best].name, out, cs[best].ids, cs[best].n_ids);
    free(out);
    free(cmd);

    /* the prompt file with --bos == the logits golden's tokens */
    dk_test_logits gl;
    dk_test_logits_load(TINY_LOGITS, 0, &gl);
    char fcmd[512];
    snprintf(fcmd, sizeof fcmd, "%s tokenize " TINY_MODEL " --bos -f " TINY_PROMPT, dk_test_cli());
    out = NULL;
    rc = dk_test_run(fcmd, 0, &out);
    ck_assert_msg(rc == 0, "%s: exit %d", fcmd, rc);
    ck_assert(out != NULL);
    expect_cli_ids("tokenize --bos -f " TINY_PROMPT, out, gl.tokens, gl.n_tokens);
    free(out);
    dk_test_logits_free(&gl);
    tok_cases_free(cs, n);
}
END_TEST

static Suite *tiny_model_suite(void) {
    Suite *s = suite_create("tiny_model");
    TCase *tc = tcase_create("dashkit-tiny");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_config);
    tcase_add_test(tc, test_prefill_all_positions);
    tcase_add_test(tc, test_prefill_then_decode);
    tcase_add_test(tc, test_tokenizer_golden);
    tcase_add_test(tc, test_tokenize_cli);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    dk_blas_init();
    g_tiny_present = access(TINY_MODEL, R_OK) == 0;
    if (!g_tiny_present) printf("SKIP %s absent (run from the repository root)\n", TINY_MODEL);
    return dk_test_main(tiny_model_suite());
}
