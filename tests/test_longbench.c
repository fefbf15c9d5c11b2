/* test_longbench.c — the real LongBench fixture files load; prompts rebuilt from context+input
 * with the official template; split at {input}; middle truncation keeps budget/2 head + tail;
 * malformed JSONL fails as a whole with file:line:field. */
#include "support/dk_test.h"
#include "longbench.h"
#include "task.h"
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const datasets[] = {"2wikimqa", "gov_report",  "hotpotqa",      "multifieldqa_en",
                                       "musique",  "narrativeqa", "passage_count", "passage_retrieval_en",
                                       "qasper",   "qmsum",       "samsum",        "trec",
                                       "triviaqa"};
#define N_DS (int)(sizeof datasets / sizeof datasets[0])

/* Independent template fill: replace each {context}/{input} (no escapes in LongBench v1). */
static char *fill(const char *t, const char *ctx, const char *inp) {
    size_t cap = strlen(t) + strlen(ctx) * 2 + strlen(inp) * 2 + 1, n = 0;
    char *o = malloc(cap);
    for (const char *p = t; *p;) {
        if (!strncmp(p, "{context}", 9)) {
            strcpy(o + n, ctx);
            n += strlen(ctx);
            p += 9;
        } else if (!strncmp(p, "{input}", 7)) {
            strcpy(o + n, inp);
            n += strlen(inp);
            p += 7;
        } else o[n++] = *p++;
    }
    o[n] = 0;
    return o;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    ck_assert_int_eq(fread(b, 1, (size_t)n, f), n);
    b[n] = 0;
    fclose(f);
    return b;
}

START_TEST(test_fixtures_load_and_rebuild) {
    char dir[1024], cfg[1024];
    DK_SKIP_IF_NULL(dk_test_fixture(dir, sizeof dir, "longbench"));
    DK_SKIP_IF_NULL(dk_test_fixture(cfg, sizeof cfg, "longbench/config"));
    char ppath[1200];
    snprintf(ppath, sizeof ppath, "%s/dataset2prompt.json", cfg);
    char *pj = slurp(ppath);
    cJSON *prompts = cJSON_Parse(pj);
    free(pj);
    int total = 0;
    for (int d = 0; d < N_DS; d++) {
        dk_sample_set set;
        dk_err e = {{0}};
        ck_assert_msg(dk_longbench_load(dir, cfg, datasets[d], 0, &set, &e) == DK_OK, "%s: %s", datasets[d],
                      e.msg);
        const char *tmpl = cJSON_GetObjectItem(prompts, datasets[d])->valuestring;
        char jp[1200];
        snprintf(jp, sizeof jp, "%s/%s.jsonl", dir, datasets[d]);
        char *txt = slurp(jp), *save = NULL;
        int i = 0;
        for (char *line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
            ck_assert_int_lt(i, set.n);
            cJSON *o = cJSON_Parse(line);
            const char *ctx = cJSON_GetObjectItem(o, "context")->valuestring;
            const char *inp = cJSON_GetObjectItem(o, "input")->valuestring;
            char *want = fill(tmpl, ctx, inp);
            const dk_sample *s = &set.s[i];
            size_t lc = strlen(s->context);
            ck_assert_int_eq(lc + strlen(s->question), strlen(want));
            ck_assert(!memcmp(want, s->context, lc) && !strcmp(want + lc, s->question));
            if (strstr(tmpl, "{input}")) /* split exactly at {input}: the question starts with it */
                ck_assert(!strncmp(s->question, inp, strlen(inp)));
            ck_assert_ptr_nonnull(strstr(s->context, ctx)); /* all of the context is haltable */
            ck_assert_int_eq(s->n_answers, cJSON_GetArraySize(cJSON_GetObjectItem(o, "answers")));
            ck_assert_str_eq(
                s->answers[s->n_answers - 1],
                cJSON_GetArrayItem(cJSON_GetObjectItem(o, "answers"), s->n_answers - 1)->valuestring);
            ck_assert_str_eq(s->id, cJSON_GetObjectItem(o, "_id")->valuestring);
            free(want);
            cJSON_Delete(o);
        }
        ck_assert_int_eq(i, set.n);
        total += set.n;
        free(txt);
        dk_sample_set_free(&set);
    }
    cJSON_Delete(prompts);
    ck_assert_int_eq(total, 127); /* PROVENANCE.md: 13+13+7+9+7+6+15+4+8+12+15+12+6 */
}
END_TEST

START_TEST(test_spot_checks) {
    char dir[1024], cfg[1024];
    DK_SKIP_IF_NULL(dk_test_fixture(dir, sizeof dir, "longbench"));
    DK_SKIP_IF_NULL(dk_test_fixture(cfg, sizeof cfg, "longbench/config"));
    dk_sample_set set;
    dk_err e = {{0}};
    ck_assert_int_eq(dk_longbench_load(dir, cfg, "hotpotqa", 1, &set, &e), DK_OK);
    ck_assert_int_eq(set.n, 1);
    const dk_sample *s = &set.s[0];
    static const char head[] =
        "Answer the question based on the given passages. Only give me the answer and do "
        "not output any other words.\n\nThe following are given passages.\nPassage 1:\n"
        "Nobody for Everybody\n";
    ck_assert(!strncmp(s->context, head, sizeof head - 1));
    const char *tail = "Only give me the answer and do not output any other words.\n\nQuestion: ";
    ck_assert_str_eq(s->context + strlen(s->context) - strlen(tail), tail);
    ck_assert(!strncmp(s->question, "Name a member of a British-American supergroup", 46));
    ck_assert_str_eq(s->question + strlen(s->question) - 8, "\nAnswer:");
    ck_assert_str_eq(s->answers[0], "Bob Dylan");
    ck_assert_int_eq(s->max_new_tokens, 32);
    ck_assert_int_eq(s->metric, DK_METRIC_QA_F1);
    dk_sample_set_free(&set);

    ck_assert_int_eq(dk_longbench_load(dir, cfg, "trec", 0, &set, &e), DK_OK);
    ck_assert_int_eq(set.s[0].n_classes, 50);
    ck_assert_int_eq(set.s[0].metric, DK_METRIC_CLASSIFICATION);
    ck_assert_int_eq(set.s[0].max_new_tokens, 64);
    ck_assert_str_eq(set.s[0].question, "Question: What was J.F.K. 's wife 's name ?\nType:");
    ck_assert_str_eq(set.s[0].context + strlen(set.s[0].context) - 1, "\n");
    dk_sample_set_free(&set);

    /* gov_report has no {input}: the instruction after the context is the question */
    ck_assert_int_eq(dk_longbench_load(dir, cfg, "gov_report", 1, &set, &e), DK_OK);
    ck_assert_str_eq(set.s[0].question, "\n\nNow, write a one-page summary of the report.\n\nSummary:");
    ck_assert_int_eq(set.s[0].max_new_tokens, 512);
    dk_sample_set_free(&set);
}
END_TEST

static void check_truncation(const dk_tok_if *tok, const dk_sample *s, size_t budget) {
    dk_prompt full, cut;
    dk_err e = {{0}};
    ck_assert_int_eq(dk_sample_build_prompt(s, tok, 0, 1, &full, &e), DK_OK);
    ck_assert_int_eq(dk_sample_build_prompt(s, tok, budget, 1, &cut, &e), DK_OK);
    ck_assert_int_gt(full.n, budget);
    size_t half = budget / 2;
    ck_assert_int_eq(cut.n, 2 * half);
    ck_assert_int_eq(cut.n_full, full.n);
    ck_assert_int_eq(cut.n_dropped, full.n - 2 * half);
    ck_assert(!memcmp(cut.ids, full.ids, half * sizeof(int32_t)));
    ck_assert(!memcmp(cut.ids + half, full.ids + full.n - half, half * sizeof(int32_t)));
    /* the context tokens are a prefix of the whole prompt's tokens, and the split survives */
    int32_t *cids;
    size_t nc;
    ck_assert_int_eq(tok->encode(tok->user, s->context, strlen(s->context), 1, &cids, &nc, &e), DK_OK);
    ck_assert_int_le(full.n_context, nc);
    ck_assert_int_ge(full.n_context + 2, nc);
    ck_assert(!memcmp(cids, full.ids, full.n_context * sizeof(int32_t)));
    free(cids);
    size_t tail = full.n - half;
    size_t want_ctx = (full.n_context < half ? full.n_context : half) +
                      (full.n_context > tail ? full.n_context - tail : 0);
    ck_assert_int_eq(cut.n_context, want_ctx);
    dk_prompt_free(&full);
    dk_prompt_free(&cut);
}

START_TEST(test_truncation) {
    char dir[1024], cfg[1024], tokp[1024];
    DK_SKIP_IF_NULL(dk_test_fixture(dir, sizeof dir, "longbench"));
    DK_SKIP_IF_NULL(dk_test_fixture(cfg, sizeof cfg, "longbench/config"));
    dk_sample_set set;
    dk_err e = {{0}};
    ck_assert_int_eq(dk_longbench_load(dir, cfg, "qasper", 2, &set, &e), DK_OK);
    dk_tok_if bytes = dk_tok_if_bytes();
    check_truncation(&bytes, &set.s[0], 1001); /* odd budget: 500 + 500 as int(max_length/2) */
    check_truncation(&bytes, &set.s[1], 4096);
    /* byte tokens make the split exact: context bytes + BOS */
    dk_prompt p;
    ck_assert_int_eq(dk_sample_build_prompt(&set.s[0], &bytes, 0, 1, &p, &e), DK_OK);
    ck_assert_int_eq(p.n_context, strlen(set.s[0].context) + 1);
    dk_prompt_free(&p);
    if (dk_test_fixture(tokp, sizeof tokp, "llama2c/tok512.bin")) {
        dk_tokenizer *t;
        ck_assert_int_eq(dk_tokenizer_load_llama2c(tokp, 512, &t, &e), DK_OK);
        dk_tok_if real = dk_tok_if_engine(t);
        check_truncation(&real, &set.s[0], 2000);
        check_truncation(&real, &set.s[1], 3501);
        dk_tokenizer_free(t);
    }
    dk_sample_set_free(&set);
}
END_TEST

static void expect_bad(const char *name, const char *content, const char *want_line_field) {
    char p[1024], cfgdir[1024];
    DK_SKIP_IF_NULL(dk_test_fixture(cfgdir, sizeof cfgdir, "longbench/config"));
    dk_test_tmp_path(p, sizeof p, name);
    FILE *f = fopen(p, "w");
    fputs(content, f);
    fclose(f);
    dk_sample_set set = {(dk_sample *)1, 7};
    dk_err e = {{0}};
    dk_status st = dk_longbench_load_file(p, "hotpotqa", "{context}Q: {input}", 32, 0, &set, &e);
    ck_assert_int_eq(st, DK_ERR_FORMAT);
    ck_assert_int_eq(set.n, 0);
    ck_assert_ptr_null(set.s);
    char want[1200];
    snprintf(want, sizeof want, "%s:%s", p, want_line_field);
    ck_assert_msg(strstr(e.msg, want) != NULL, "message '%s' lacks '%s'", e.msg, want);
    ck_assert_ptr_null(strchr(e.msg, '\n'));
}

#define GOOD                                                                                    \
    "{\"input\": \"q\", \"context\": \"c\", \"answers\": [\"a\"], \"length\": 3, \"dataset\": " \
    "\"hotpotqa\", \"language\": \"en\", \"all_classes\": null, \"_id\": \"x\"}\n"

START_TEST(test_malformed) {
    expect_bad("badjson.jsonl", GOOD "{\"input\": \"q\", \n", "2: invalid JSON");
    expect_bad("missing.jsonl",
               GOOD GOOD "{\"input\": \"q\", \"context\": \"c\", \"length\": 3, \"dataset\": \"hotpotqa\", "
                         "\"language\": \"en\", \"all_classes\": null, \"_id\": \"x\"}\n",
               "3: missing field 'answers'");
    expect_bad("type.jsonl",
               "{\"input\": \"q\", \"context\": \"c\", \"answers\": [\"a\"], \"length\": \"3\", \"dataset\": "
               "\"hotpotqa\", \"language\": \"en\", \"all_classes\": null, \"_id\": \"x\"}\n",
               "1: field 'length'");
    expect_bad("ctx.jsonl",
               GOOD "{\"input\": \"q\", \"context\": 5, \"answers\": [\"a\"], \"length\": 3, \"dataset\": "
                    "\"hotpotqa\", \"language\": \"en\", \"all_classes\": null, \"_id\": \"x\"}\n",
               "2: field 'context'");
    expect_bad("empty.jsonl",
               GOOD "\n{\"input\": \"q\", \"context\": \"c\", \"answers\": [], \"length\": 3, \"dataset\": "
                    "\"hotpotqa\", \"language\": \"en\", \"all_classes\": null, \"_id\": \"x\"}\n",
               "3: field 'answers': empty list");
    expect_bad("anstype.jsonl",
               "{\"input\": \"q\", \"context\": \"c\", \"answers\": [\"a\", 2], \"length\": 3, \"dataset\": "
               "\"hotpotqa\", \"language\": \"en\", \"all_classes\": null, \"_id\": \"x\"}\n",
               "1: field 'answers'[1]");
    expect_bad("ds.jsonl",
               "{\"input\": \"q\", \"context\": \"c\", \"answers\": [\"a\"], \"length\": 3, \"dataset\": "
               "\"musique\", \"language\": \"en\", \"all_classes\": null, \"_id\": \"x\"}\n",
               "1: field 'dataset'");
    expect_bad("array.jsonl", "[1, 2]\n", "1: not a JSON object");
    /* issue 17 finding 3: lengths beyond the integer range are refused by a range check made
     * before the float->integer conversion (it used to convert first: undefined behaviour) */
    static const char *const huge[] = {"1e300", "-1e300", "9.3e18", "1e13", "2.5", "-1"};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        char line[512];
        snprintf(line, sizeof line,
                 GOOD
                 "{\"input\": \"q\", \"context\": \"c\", \"answers\": [\"a\"], \"length\": %s, "
                 "\"dataset\": \"hotpotqa\", \"language\": \"en\", \"all_classes\": null, \"_id\": \"x\"}\n",
                 huge[i]);
        expect_bad("length.jsonl", line, "2: field 'length': expected an integer in 0..1000000000000");
    }
}
END_TEST

START_TEST(test_missing_files) {
    dk_sample_set set;
    dk_err e = {{0}};
    ck_assert_int_eq(dk_longbench_load("/nonexistent/data", "/nonexistent/cfg", "hotpotqa", 0, &set, &e),
                     DK_ERR_IO);
    ck_assert_ptr_nonnull(strstr(e.msg, "/nonexistent/cfg/dataset2prompt.json"));
    char *a, *b;
    ck_assert_int_eq(dk_longbench_format("x {other} {context}", "c", "i", &a, &b, &e), DK_ERR_FORMAT);
    ck_assert_int_eq(dk_longbench_format("{{lit}} {context} | {input}!", "C", "I", &a, &b, &e), DK_OK);
    ck_assert_str_eq(a, "{lit} C | ");
    ck_assert_str_eq(b, "I!");
    free(a);
    free(b);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("longbench");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fixtures_load_and_rebuild);
    tcase_add_test(tc, test_spot_checks);
    tcase_add_test(tc, test_truncation);
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_missing_files);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return dk_test_main(suite()); }
