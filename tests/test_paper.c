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

static const char *const t_paper_tasks[6] = {"qasper",     "hotpotqa", "2wikimqa",
                                             "gov_report", "lcc",      "repobench-p"};
static const char *const t_paper_methods[4] = {"dense", "fastv", "snapkv", "dash"};

static char *t_slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
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
    dk_test_tmp_path(dir, sizeof dir, "lb");
    char p[600];
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/data", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/config", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/config/dataset2prompt.json", dir);
    t_write(p, "{\"lcc\": \"Please complete the code given below. \\n{context}Next line of code:\\n\","
               " \"repobench-p\": \"Please complete the code given below. \\n{context}{input}Next line of "
               "code:\\n\"}");
    snprintf(p, sizeof p, "%s/config/dataset2maxlen.json", dir);
    t_write(p, "{\"lcc\": 64, \"repobench-p\": 64}");
    snprintf(p, sizeof p, "%s/data/lcc_e.jsonl", dir);
    t_write(
        p, "{\"input\": \"\", \"context\": \"def f(x):\\n    return x\\n\", \"answers\": [\"y = f(1)\"], "
           "\"length\": 6,"
           " \"dataset\": \"lcc_e\", \"language\": \"python\", \"all_classes\": null, \"_id\": \"a\"}\n"
           "{\"input\": \"\", \"context\": \"int g(void) {\\n\", \"answers\": [\"return 0;\"], \"length\": 5,"
           " \"dataset\": \"lcc\", \"language\": \"c\", \"all_classes\": null, \"_id\": \"b\"}\n");
    snprintf(p, sizeof p, "%s/data/repobench-p_e.jsonl", dir);
    t_write(p, "{\"input\": \"import os\\n\", \"context\": \"# a.py\\nX = 1\\n\", \"answers\": "
               "[\"print(X)\"], \"length\": 7,"
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
    ck_assert_msg(strstr(e.msg, "repobench-p_e.jsonl:1: field 'dataset': 'lcc_e' is not 'repobench-p_e'") !=
                      NULL,
                  "%s", e.msg);

    dk_task_kv kv2[3] = {{"e", "maybe"}, {"data", data}, {"config", cfg}};
    ck_assert_int_eq(dk_task_load("lcc", kv2, 3, 0, NULL, &set, &e), DK_ERR_ARG);
    ck_assert_str_eq(e.msg, "task lcc: option e: 'maybe' is not true|false");
}
END_TEST

/* ---- the reported numbers and the report's paper table ---- */

typedef struct {
    const char *method, *params;
} t_set;
static const t_set t_sets[3] = {
    {"dense", "{}"}, {"dash", "{\"ls\":0.4,\"rho\":0.667}"}, {"fastv", "{\"ls\":0.4,\"rho\":0.667}"}};
static const char *const t_tasks[3] = {"qasper", "hotpotqa", "passkey"};
static const char *const t_topts[3] = {"{\"e\":true}", "{\"e\":true}", "{\"length\":1024}"};
#define T_NS 3

/* score of sample j of (task t, setting m): the cell mean is 10(t+1) + m + 1 */
static double t_score(int t, int m, int j) { return 10.0 * (t + 1) + m + j; }

static char t_db[512];

static void t_build_store(void) {
    dk_test_tmp_path(t_db, sizeof t_db, "paper.db");
    if (access(t_db, F_OK) == 0) return;
    dk_err e = {{0}};
    dk_store *s = NULL;
    ck_assert_msg(dk_store_open(t_db, DK_STORE_OPEN_CREATE, &s, &e) == DK_OK, "%s", e.msg);
    dk_run_info ri = {.name = "paper-unit",
                      .config_path = "p.json",
                      .config_text = "{}",
                      .config_hash = "abc",
                      .git_rev = "x",
                      .host = "h",
                      .cpu = "c",
                      .blas_core = "b",
                      .command = "dashkit run p.json",
                      .threads = 1,
                      .workers = 1,
                      .n_cells = 9};
    int64_t run = 0, model = 0;
    ck_assert_msg(dk_store_run_begin(s, &ri, &run, &e) == DK_OK, "%s", e.msg);
    char sha[65];
    memset(sha, 'b', 64);
    sha[64] = 0;
    dk_model_info mi = {.sha256 = sha,
                        .path = "models/q.gguf",
                        .arch = "qwen2",
                        .n_layer = 2,
                        .n_embd = 8,
                        .n_head = 2,
                        .n_head_kv = 1,
                        .n_ff = 16,
                        .n_vocab = 32,
                        .n_ctx = 256,
                        .n_params = 100,
                        .file_bytes = 400};
    ck_assert_msg(dk_store_model_put(s, &mi, &model, &e) == DK_OK, "%s", e.msg);
    dk_cell_spec cs[9];
    char keys[9][16], ids[9][32], tks[9][16];
    for (int t = 0; t < 3; t++)
        for (int m = 0; m < 3; m++) {
            int i = 3 * t + m;
            snprintf(keys[i], 16, "k%d", i);
            snprintf(ids[i], 32, "{\"c\":%d}", i);
            snprintf(tks[i], 16, "t%d", t);
            cs[i] = (dk_cell_spec){keys[i],          ids[i],           t_tasks[t], t_topts[t], tks[i],
                                   t_sets[m].method, t_sets[m].params, model,      T_NS,       0};
        }
    int64_t cell_ids[9];
    ck_assert_msg(dk_store_cells_add(s, run, cs, 9, 0, cell_ids, NULL, &e) == DK_OK, "%s", e.msg);
    dk_worker w;
    dk_store_worker_self(&w);
    for (;;) {
        int64_t cid = 0;
        ck_assert_msg(dk_store_cell_claim(s, run, &w, 600, &cid, NULL, &e) == DK_OK, "%s", e.msg);
        if (!cid) break;
        int i = 0;
        while (i < 9 && cell_ids[i] != cid) i++;
        ck_assert(i < 9);
        int t = i / 3, m = i % 3;
        for (int j = 0; j < T_NS; j++) {
            int64_t active[2] = {100, m ? 33 : 100};
            dk_sample_row row = {.cell_id = cid,
                                 .sample_id = j,
                                 .prompt_tokens = 110,
                                 .context_tokens = 100,
                                 .question_tokens = 10,
                                 .gen_tokens = 2,
                                 .n_layer = 2,
                                 .active = active,
                                 .layers = NULL,
                                 .flops_dense = 1000,
                                 .flops_method = m ? 500 : 1000,
                                 .wall_dense_s = 1.0,
                                 .wall_method_s = m ? 0.8 : 1.0,
                                 .wall_decode_s = 0.01,
                                 .prediction = "p",
                                 .answers = "[\"a\"]",
                                 .score = t_score(t, m, j),
                                 .kl = 0,
                                 .kl_max = 0,
                                 .top1 = 1,
                                 .kl_first = 0,
                                 .top1_first = 1,
                                 .nll_dense = NAN,
                                 .nll_method = NAN};
            ck_assert_msg(dk_store_sample_put(s, &w, 600, &row, &e) == DK_OK, "%s", e.msg);
        }
        ck_assert_msg(dk_store_cell_finish(s, cid, &w, &e) == DK_OK, "%s", e.msg);
    }
    ck_assert_msg(dk_store_run_end(s, run, &e) == DK_OK, "%s", e.msg);
    dk_store_close(s);
}

static dk_status t_report(const char *out, const char *paper, dk_err *e) {
    t_build_store();
    dk_store *s = NULL;
    ck_assert_msg(dk_store_open(t_db, DK_STORE_OPEN_READONLY, &s, e) == DK_OK, "%s", e->msg);
    dk_report_opts o;
    dk_report_opts_default(&o);
    o.draw = 0;
    o.n_boot = 0;
    o.paper = paper;
    dk_report_result r;
    dk_status st = dk_report_write(s, out, &o, &r, e);
    dk_store_close(s);
    return st;
}

/* value of the paper_vs_measured.csv row (paper_method, source, column[, row label prefix]) */
static double t_pvm(const char *csv, const char *pm, const char *source, const char *column, int *found) {
    *found = 0;
    double v = NAN;
    const char *p = strchr(csv, '\n');
    while (p && *++p) {
        const char *end = strchr(p, '\n');
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)(end ? end - p : (long)strlen(p)), p);
        char *f[9] = {0}, *sv = NULL;
        int k = 0;
        for (char *tok = strtok_r(line, ",", &sv); tok && k < 9; tok = strtok_r(NULL, ",", &sv)) f[k++] = tok;
        /* model,paper_method,row,source,column,n,value,lo,hi: n may be empty, so count from the end */
        if (k >= 6 && !strcmp(f[1], pm) && !strcmp(f[3], source) && !strcmp(f[4], column)) {
            (*found)++;
            v = strtod(!strcmp(source, "paper") || k == 6 ? f[5] : f[6], NULL);
        }
        p = end;
    }
    return v;
}

/* The shipped CSV holds the table, with its provenance on every row. */
START_TEST(test_paper_csv_contents) {
    char *t = t_slurp(PAPER_CSV);
    ck_assert_ptr_nonnull(t);
    ck_assert_ptr_nonnull(strstr(t, "\ndash,dash,Qwen2.5-7B-Instruct-1M,LongBench-E,46.76,40.58,49.38,61.00,"
                                    "7.01,59.00,98.00,1.74,1.52,1.83,16384,"));
    ck_assert_ptr_nonnull(strstr(
        t, "\nvanilla,dense,Qwen2.5-7B-Instruct-1M,LongBench-E,48.87,44.19,51.13,62.97,6.97,65.00,99.33,"));
    int rows = 0;
    for (const char *p = t; (p = strstr(p, "secondary summary of the DASH paper")); p++) rows++;
    ck_assert_int_eq(rows, 5);
    free(t);
}
END_TEST

START_TEST(test_report_paper_table) {
    char out[600], path[700];
    dk_test_tmp_path(out, sizeof out, "rep");
    dk_err e = {{0}};
    ck_assert_msg(t_report(out, PAPER_CSV, &e) == DK_OK, "%s", e.msg);
    snprintf(path, sizeof path, "%s/paper_vs_measured.csv", out);
    char *csv = t_slurp(path);
    ck_assert_ptr_nonnull(csv);
    int found;
    /* the reported numbers, read at run time */
    ck_assert(t_pvm(csv, "dash", "paper", "qasper", &found) == 40.58 && found == 1);
    ck_assert(t_pvm(csv, "vanilla", "paper", "hotpotqa", &found) == 51.13 && found == 1);
    ck_assert(t_pvm(csv, "dash", "paper", "paper_avg", &found) == 46.76 && found == 1);
    ck_assert(fabs(t_pvm(csv, "dash", "paper", "mean", &found) - (40.58 + 49.38) / 2) < 1e-9);
    /* the measured means beside them: setting m of task t has mean 10(t+1) + m + 1 */
    ck_assert(t_pvm(csv, "vanilla", "measured", "qasper", &found) == 11 && found == 1);
    ck_assert(t_pvm(csv, "dash", "measured", "qasper", &found) == 12 && found == 1);
    ck_assert(t_pvm(csv, "fastv", "measured", "hotpotqa", &found) == 23 && found == 1);
    ck_assert(t_pvm(csv, "fastv", "measured", "mean", &found) == (13 + 23) / 2.0);
    ck_assert(fabs(t_pvm(csv, "dash", "measured", "wall_speedup", &found) - 1.25) < 1e-12);
    /* no dashkit method (d3) or not in the run (snapkv): no measured row; tasks not in the paper: no column */
    t_pvm(csv, "d3", "measured", "qasper", &found);
    ck_assert_int_eq(found, 0);
    t_pvm(csv, "snapkv", "measured", "qasper", &found);
    ck_assert_int_eq(found, 0);
    ck_assert_ptr_null(strstr(csv, "passkey"));
    free(csv);
    snprintf(path, sizeof path, "%s/report.md", out);
    char *md = t_slurp(path);
    ck_assert_ptr_nonnull(md);
    ck_assert_ptr_nonnull(strstr(md, "\n## Paper vs measured\n"));
    ck_assert_ptr_nonnull(strstr(md, "1.74x FlashAttention, 1.52x eager, 1.83x theoretical at T=16384"));
    free(md);
    snprintf(path, sizeof path, "%s/paper_vs_measured.tex", out);
    ck_assert_int_eq(access(path, F_OK), 0);
}
END_TEST

START_TEST(test_report_paper_absent_and_bad) {
    char out[600], path[700], bad[600];
    dk_err e = {{0}};
    /* absent: skipped silently */
    dk_test_tmp_path(out, sizeof out, "rep-none");
    ck_assert_msg(t_report(out, "datasets/paper/no-such.csv", &e) == DK_OK, "%s", e.msg);
    snprintf(path, sizeof path, "%s/paper_vs_measured.md", out);
    ck_assert_int_ne(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/report.md", out);
    char *md = t_slurp(path);
    ck_assert_ptr_nonnull(md);
    ck_assert_ptr_null(strstr(md, "Paper vs measured"));
    free(md);
    /* malformed: one line naming file, line and column; nothing written */
    dk_test_tmp_path(bad, sizeof bad, "bad.csv");
    t_write(bad, "method,dashkit_method,qasper\ndash,dash,40.5\nfastv,fastv,forty\n");
    dk_test_tmp_path(out, sizeof out, "rep-bad");
    ck_assert_int_eq(t_report(out, bad, &e), DK_ERR_FORMAT);
    char want[800];
    snprintf(want, sizeof want, "%s:3: column qasper: 'forty' is not a number", bad);
    ck_assert_str_eq(e.msg, want);
    ck_assert_int_ne(access(out, F_OK), 0);
    t_write(bad, "method,qasper\ndash,40.5\n");
    ck_assert_int_eq(t_report(out, bad, &e), DK_ERR_FORMAT);
    snprintf(want, sizeof want, "%s:1: the header needs columns \"method\" and \"dashkit_method\"", bad);
    ck_assert_str_eq(e.msg, want);
    t_write(bad, "method,dashkit_method,qasper\ndash,dash\n");
    ck_assert_int_eq(t_report(out, bad, &e), DK_ERR_FORMAT);
    snprintf(want, sizeof want, "%s:2: 2 fields, the header has 3", bad);
    ck_assert_str_eq(e.msg, want);
}
END_TEST

/* CLI: --paper FILE reaches the report. */
START_TEST(test_cli_paper_option) {
    t_build_store();
    char cmd[2048], *out = NULL, dir[600], path[700];
    dk_test_tmp_path(dir, sizeof dir, "rep-cli");
    snprintf(cmd, sizeof cmd, "%s report --db %s --out %s --no-draw --boot 0 --paper %s", dk_test_cli(), t_db,
             dir, PAPER_CSV);
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    free(out);
    snprintf(path, sizeof path, "%s/paper_vs_measured.md", dir);
    ck_assert_int_eq(access(path, F_OK), 0);
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
    TCase *tr = tcase_create("report");
    tcase_set_timeout(tr, 60);
    tcase_add_test(tr, test_paper_csv_contents);
    tcase_add_test(tr, test_report_paper_table);
    tcase_add_test(tr, test_report_paper_absent_and_bad);
    tcase_add_test(tr, test_cli_paper_option);
    suite_add_tcase(s, tr);
    return s;
}

int main(void) { return dk_test_main(paper_suite()); }
