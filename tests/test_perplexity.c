/* test_perplexity.c — `dashkit logits` and `dashkit perplexity` through the CLI.
 *
 * Goldens: tests/data/ppl_tiny.json (scripts/make_ppl_golden.py: llama-perplexity's chunking
 * over a plain float64 PyTorch forward of models/dashkit-tiny.gguf, SentencePiece tokens) and
 * tests/data/ref_llama_f32.{gguf,logits} (scripts/make_ref_models.py). */
#include "support/dk_test.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TINY "models/dashkit-tiny.gguf"
#define PPL_TEXT "tests/data/ppl_text.txt"

/* Value of the line "name: value" in out, NAN when absent. */
static double field(const char *out, const char *name) {
    char key[64];
    snprintf(key, sizeof key, "%s: ", name);
    for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, key, strlen(key))) return strtod(p + strlen(key), NULL);
    return NAN;
}

/* Runs cmd (stdout only), asserts exit status want, returns its output (free it). */
static char *run(const char *cmd, int want) {
    char *out = NULL;
    int rc = dk_test_run(cmd, 0, &out);
    ck_assert_msg(rc == want, "%s: exit %d, want %d; output: %s", cmd, rc, want, out ? out : "");
    return out;
}

/* Runs cmd with stderr only captured, asserts exit 1 and ONE line containing `what`. */
static void expect_error(const char *cmd, const char *what) {
    char full[4096], *out = NULL;
    snprintf(full, sizeof full, "( %s 2>&1 >/dev/null )", cmd);
    int rc = dk_test_run(full, 0, &out);
    ck_assert_msg(rc == 1, "%s: exit %d, want 1 (%s)", cmd, rc, out ? out : "");
    ck_assert_msg(out && strstr(out, what), "%s: error lacks '%s': %s", cmd, what, out ? out : "");
    char *nl = strchr(out, '\n');
    ck_assert_msg(nl && nl[1] == 0, "%s: expected exactly one line: %s", cmd, out);
    free(out);
}

static cJSON *ppl_golden(void) {
    size_t n;
    char *js = dk_test_read_file("tests/data/ppl_tiny.json", &n);
    cJSON *g = cJSON_Parse(js);
    free(js);
    ck_assert_msg(g != NULL, "ppl_tiny.json does not parse");
    return g;
}

static double num(cJSON *g, const char *k) { return cJSON_GetObjectItem(g, k)->valuedouble; }

/* ---- perplexity vs PyTorch ---- */

START_TEST(test_perplexity_golden) {
    cJSON *g = ppl_golden();
    char cmd[1024];
    /* the same tokens as the reference's SentencePiece ids (BOS first), so the chunks align */
    snprintf(cmd, sizeof cmd, "%s tokenize " TINY " --bos -f " PPL_TEXT, dk_test_cli());
    char *ids = run(cmd, 0), want[32768] = "";
    cJSON *id;
    cJSON_ArrayForEach(id, cJSON_GetObjectItem(g, "ids"))
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%d", want[0] ? " " : "", id->valueint);
    strcat(want, "\n");
    ck_assert_msg(!strcmp(ids, want), "tokens differ from the reference's:\n%s\n%s", ids, want);
    free(ids);

    snprintf(cmd, sizeof cmd, "%s perplexity " TINY " -f " PPL_TEXT " --ctx %d", dk_test_cli(),
             cJSON_GetObjectItem(g, "ctx")->valueint);
    char *out = run(cmd, 0);
    ck_assert_int_eq((int)field(out, "chunks"), (int)num(g, "chunks"));
    ck_assert_int_eq((int)field(out, "tokens_scored"), (int)num(g, "tokens_scored"));
    /* f32 engine vs float64 reference: logits agree to ~1e-6 of their scale, so the mean nll to
     * ~1e-6 absolute; 1e-5 relative on perplexity and 1e-4 on its standard error leave margin
     * while a one-position shift of the scored window moves both by percents */
    double ppl = field(out, "perplexity"), se = field(out, "perplexity_stderr");
    ck_assert_msg(fabs(ppl / num(g, "perplexity") - 1) < 1e-5, "perplexity %.6f, reference %.6f", ppl,
                  num(g, "perplexity"));
    ck_assert_msg(fabs(se / num(g, "perplexity_stderr") - 1) < 1e-4, "stderr %.6f, reference %.6f", se,
                  num(g, "perplexity_stderr"));
    free(out);
    cJSON_Delete(g);
}
END_TEST

/* ---- KL against base logits ---- */

START_TEST(test_kl_base_self) {
    char base[512], cmd[2048];
    dk_test_tmp_path(base, sizeof base, "base.logits");
    snprintf(cmd, sizeof cmd, "%s perplexity " TINY " -f " PPL_TEXT " --ctx 64 --save-logits '%s'",
             dk_test_cli(), base);
    char *o1 = run(cmd, 0);
    dk_test_logits l;
    dk_test_logits_load(base, 4, &l);
    ck_assert_int_eq(l.n_tokens, (int)field(o1, "chunks") * 64);
    ck_assert_int_eq(l.n_vocab, 2048);
    ck_assert_int_eq(l.tokens[0], 1);
    ck_assert_int_eq(l.tokens[64], 1); /* every chunk starts with BOS */
    dk_test_logits_free(&l);

    snprintf(cmd, sizeof cmd, "%s perplexity " TINY " -f " PPL_TEXT " --ctx 64 --kl-base '%s'", dk_test_cli(),
             base);
    char *o2 = run(cmd, 0);
    ck_assert(field(o2, "kl_mean") == 0 && field(o2, "kl_max") == 0);
    ck_assert(field(o2, "top1_agreement") == 1);
    ck_assert(field(o2, "ppl_delta") == 0);
    ck_assert(field(o2, "perplexity") == field(o1, "perplexity"));
    ck_assert(field(o2, "ppl_base") == field(o1, "perplexity"));
    free(o2);

    /* halting against the dense base: the distributions move, perplexity changes */
    snprintf(cmd, sizeof cmd,
             "%s perplexity " TINY " -f " PPL_TEXT
             " --ctx 64 --kl-base '%s' --method dash --rho 0.5 --ls 0.25",
             dk_test_cli(), base);
    o2 = run(cmd, 0);
    double kl = field(o2, "kl_mean"), km = field(o2, "kl_max"), t1 = field(o2, "top1_agreement");
    ck_assert_msg(kl > 0 && km >= kl && t1 < 1 && t1 > 0, "kl_mean %g kl_max %g top1 %g", kl, km, t1);
    ck_assert(fabs(field(o2, "ppl_delta") - (field(o2, "perplexity") - field(o1, "perplexity"))) < 1e-5);
    free(o2);

    /* rho 0: bit-identical to dense, so KL 0 again */
    snprintf(cmd, sizeof cmd,
             "%s perplexity " TINY " -f " PPL_TEXT " --ctx 64 --kl-base '%s' --method dash --rho 0",
             dk_test_cli(), base);
    o2 = run(cmd, 0);
    ck_assert(field(o2, "kl_max") == 0 && field(o2, "top1_agreement") == 1);
    free(o2);

    /* a base of other chunks is refused, naming the first differing id */
    snprintf(cmd, sizeof cmd, "%s perplexity " TINY " -f " PPL_TEXT " --ctx 63 --kl-base '%s'", dk_test_cli(),
             base);
    expect_error(cmd, "but chunk 1 position 0 evaluates id");
    free(o1);
    unlink(base);
}
END_TEST

/* ---- logits ---- */

/* --ids from the golden's prompt: every position within the reference suite's bound. */
START_TEST(test_logits_golden) {
    dk_test_logits g;
    dk_test_logits_load("tests/data/ref_llama_f32.logits", 4, &g);
    char ids[512], out[512], cmd[2048];
    dk_test_tmp_path(ids, sizeof ids, "ids.txt");
    dk_test_tmp_path(out, sizeof out, "ref.logits");
    FILE *f = fopen(ids, "w");
    for (int i = 0; i < g.n_tokens; i++) fprintf(f, i % 10 == 9 ? "%d\n" : "%d\t ", g.tokens[i]);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s logits tests/data/ref_llama_f32.gguf --ids '%s' --out '%s'", dk_test_cli(),
             ids, out);
    char *o = run(cmd, 0);
    ck_assert_int_eq((int)field(o, "tokens"), g.n_tokens);
    free(o);
    dk_test_logits d;
    dk_test_logits_load(out, 4, &d);
    ck_assert_int_eq(d.n_tokens, g.n_tokens);
    ck_assert_int_eq(d.n_vocab, g.n_vocab);
    ck_assert(!memcmp(d.tokens, g.tokens, sizeof(int32_t) * (size_t)g.n_tokens));
    double r = dk_test_rel_err(d.logits, g.logits, (size_t)g.n_tokens * g.n_vocab, g.scale);
    ck_assert_msg(r <= 1e-4, "dashkit logits vs PyTorch: %.3g of the logit scale", r);
    dk_test_logits_free(&d);
    dk_test_logits_free(&g);
    unlink(ids);
    unlink(out);
}
END_TEST

/* Text input, --bos, halting at rho 0 byte-identical to dense, halting changes later rows only. */
START_TEST(test_logits_methods) {
    char dense[512], halt[512], cmd[2048];
    const char *tmp = dk_test_tmpdir();
    snprintf(dense, sizeof dense, "%s/dense.logits", tmp);
    snprintf(halt, sizeof halt, "%s/halt.logits", tmp);
    snprintf(cmd, sizeof cmd, "%s logits " TINY " -f " PPL_TEXT " --bos --out '%s'", dk_test_cli(), dense);
    free(run(cmd, 0));
    snprintf(cmd, sizeof cmd, "%s logits " TINY " -f " PPL_TEXT " --bos --out '%s' --method dash --rho 0",
             dk_test_cli(), halt);
    free(run(cmd, 0));
    size_t nd, nh;
    char *bd = dk_test_read_file(dense, &nd), *bh = dk_test_read_file(halt, &nh);
    ck_assert(nd == nh && !memcmp(bd, bh, nd));
    free(bh);
    snprintf(cmd, sizeof cmd,
             "%s logits " TINY " -f " PPL_TEXT " --bos --out '%s' --method dash --rho 0.5 --ls 0.5",
             dk_test_cli(), halt);
    char *o = run(cmd, 0);
    ck_assert_ptr_nonnull(strstr(o, "method: dash\n"));
    free(o);
    free(bd);
    dk_test_logits a, b;
    dk_test_logits_load(dense, 4, &a);
    dk_test_logits_load(halt, 4, &b);
    ck_assert_int_eq(a.tokens[0], 1);
    ck_assert_int_eq(a.n_tokens, b.n_tokens);
    /* halting decides at layer 4 of 8: some rows differ, none is lost */
    ck_assert(dk_test_rel_err(a.logits, b.logits, (size_t)a.n_tokens * a.n_vocab, a.scale) > 1e-3);
    dk_test_logits_free(&a);
    dk_test_logits_free(&b);
    unlink(dense);
    unlink(halt);
}
END_TEST

START_TEST(test_logits_bad_input) {
    char ids[512], out[512], cmd[2048];
    dk_test_tmp_path(ids, sizeof ids, "bad_ids.txt");
    dk_test_tmp_path(out, sizeof out, "never.logits");
    FILE *f = fopen(ids, "w");
    fprintf(f, "1 5 2048 7\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s logits " TINY " --ids '%s' --out '%s'", dk_test_cli(), ids, out);
    expect_error(cmd, "id 2 '2048' is not a token id in [0, 2048)");
    f = fopen(ids, "w");
    fprintf(f, "1 5 x7\n");
    fclose(f);
    expect_error(cmd, "id 2 'x7' is not a token id");
    ck_assert_int_ne(access(out, F_OK), 0); /* nothing written */
    /* an unwritable output: one line, no temporary file left */
    snprintf(cmd, sizeof cmd, "%s logits " TINY " -p 'Hello' --out /nonexistent-dir/x.logits", dk_test_cli());
    expect_error(cmd, "/nonexistent-dir/x.logits");
    /* a text shorter than one chunk */
    snprintf(cmd, sizeof cmd, "%s perplexity " TINY " -f " PPL_TEXT " --ctx 100000", dk_test_cli());
    expect_error(cmd, "fewer than one chunk of --ctx 100000");
    /* a base file that is not DKLOGIT1 */
    snprintf(cmd, sizeof cmd, "%s perplexity " TINY " -f " PPL_TEXT " --ctx 64 --kl-base " PPL_TEXT,
             dk_test_cli());
    expect_error(cmd, "not a DKLOGIT1 logits file");
    unlink(ids);
}
END_TEST

static Suite *perplexity_suite(void) {
    Suite *s = suite_create("perplexity");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_perplexity_golden);
    tcase_add_test(tc, test_kl_base_self);
    tcase_add_test(tc, test_logits_golden);
    tcase_add_test(tc, test_logits_methods);
    tcase_add_test(tc, test_logits_bad_input);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return dk_test_main(perplexity_suite()); }
