/* test_metrics.c — LongBench/RULER metrics against the official code's golden values (C API and
 * `dashkit score`), Python round() ties, fidelity metrics against closed forms. */
#include "support/dk_test.h"
#include "metrics.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char **strs(const cJSON *a, int *n) {
    *n = cJSON_GetArraySize(a);
    const char **v = calloc((size_t)*n + 1, sizeof *v);
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, a) v[i++] = it->valuestring;
    return v;
}

/* Scores one golden row through the public C API. */
static double api_score(const cJSON *row, dk_code_sim_backend be) {
    const char *m = cJSON_GetObjectItem(row, "metric")->valuestring;
    const cJSON *ans = cJSON_GetObjectItem(row, "answers");
    const cJSON *cls = cJSON_GetObjectItem(row, "all_classes");
    int nc = 0;
    const char **cv = cJSON_IsArray(cls) ? strs(cls, &nc) : NULL;
    double r;
    if (!strcmp(m, "longbench_dataset_score") || !strncmp(m, "string_match", 12)) {
        const cJSON *pr = cJSON_GetObjectItem(row, !strcmp(m, "longbench_dataset_score") ? "predictions"
                                                                                         : "prediction");
        int np, n = cJSON_GetArraySize(ans);
        const char **pv = strs(pr, &np);
        const char ***av = calloc((size_t)n + 1, sizeof *av);
        int *an = calloc((size_t)n + 1, sizeof *an);
        for (int i = 0; i < n; i++) av[i] = strs(cJSON_GetArrayItem(ans, i), &an[i]);
        if (!strcmp(m, "longbench_dataset_score"))
            r = dk_metric_longbench_dataset_score(cJSON_GetObjectItem(row, "dataset")->valuestring, pv, np,
                                                  (const char *const *const *)av, an, cv, nc, be);
        else
            r = dk_metric_ruler_batch_score(!strcmp(m, "string_match_all"), pv, np,
                                            (const char *const *const *)av, an,
                                            cJSON_IsTrue(cJSON_GetObjectItem(row, "postprocess")));
        for (int i = 0; i < n; i++) free(av[i]);
        free(av);
        free(an);
        free(pv);
    } else {
        dk_metric mm;
        ck_assert_int_eq(dk_metric_from_name(m, &mm, NULL), DK_OK);
        int na;
        const char **av = strs(ans, &na);
        const char *pred = cJSON_GetObjectItem(row, "prediction")->valuestring;
        if (mm == DK_METRIC_CODE_SIM) {
            r = 0.0;
            for (int i = 0; i < na; i++) {
                double v = dk_metric_code_sim_score(pred, av[i], be);
                if (v > r) r = v;
            }
        } else r = dk_metric_sample_score(mm, pred, av, na, cv, nc);
        free(av);
    }
    free(cv);
    return r;
}

static void golden_api(dk_code_sim_backend be) {
    char path[1024];
    DK_SKIP_IF_NULL(dk_test_fixture(path, sizeof path, "metrics/golden.jsonl"));
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char *line = NULL;
    size_t cap = 0;
    int n = 0, per_metric_seen = 0;
    while (getline(&line, &cap, f) > 0) {
        cJSON *row = cJSON_Parse(line);
        ck_assert_ptr_nonnull(row);
        const cJSON *ex = cJSON_GetObjectItem(row, "expected");
        const cJSON *exl = cJSON_GetObjectItem(row, "expected_with_levenshtein");
        if (be == DK_CODE_SIM_LEVENSHTEIN && cJSON_IsNumber(exl)) {
            ex = exl;
            per_metric_seen++;
        }
        double got = api_score(row, be);
        /* the README's independent implementation matches with ==; so must we */
        ck_assert_msg(got == ex->valuedouble, "%s: expected %.17g got %.17g",
                      cJSON_GetObjectItem(row, "id")->valuestring, ex->valuedouble, got);
        cJSON_Delete(row);
        n++;
    }
    free(line);
    fclose(f);
    ck_assert_int_eq(n, 244);
    if (be == DK_CODE_SIM_LEVENSHTEIN) ck_assert_int_ge(per_metric_seen, 30);
}

START_TEST(test_golden_api_difflib) { golden_api(DK_CODE_SIM_DIFFLIB); }
END_TEST
START_TEST(test_golden_api_levenshtein) { golden_api(DK_CODE_SIM_LEVENSHTEIN); }
END_TEST

START_TEST(test_golden_cli) {
    char path[1024], cmd[4096];
    DK_SKIP_IF_NULL(dk_test_fixture(path, sizeof path, "metrics/golden.jsonl"));
    char *out = NULL;
    snprintf(cmd, sizeof cmd, "%s score '%s'", dk_test_cli(), path);
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    int lines = 0;
    for (char *p = out; (p = strstr(p, "\"got\":")); p++) lines++;
    ck_assert_int_eq(lines, 244);
    free(out);
    /* stdin, and a case whose expected value is wrong must fail with exit 1 */
    snprintf(cmd, sizeof cmd,
             "head -n 3 '%s' | sed '2s/\"expected\": 1.0/\"expected\": 0.5/' | %s score - 2>&1", path,
             dk_test_cli());
    ck_assert_int_eq(dk_test_run(cmd, 1, &out), 1);
    ck_assert_ptr_nonnull(strstr(out, "FAIL <stdin>:2"));
    ck_assert_ptr_nonnull(strstr(out, "cases: 3 checked: 3 failed: 1"));
    free(out);
}
END_TEST

START_TEST(test_score_malformed) {
    char p[1024], cmd[2048];
    dk_test_tmp_path(p, sizeof p, "bad_cases.jsonl");
    FILE *f = fopen(p, "w");
    fputs("{\"metric\": \"qa_f1_score\", \"prediction\": \"a\", \"answers\": [\"a\"], \"expected\": 0.0}\n",
          f);
    fputs("{\"metric\": \"qa_f1_score\", \"prediction\": 3, \"answers\": [\"a\"]}\n", f);
    fclose(f);
    char *out = NULL;
    snprintf(cmd, sizeof cmd, "%s score '%s' 2>&1", dk_test_cli(), p);
    ck_assert_int_eq(dk_test_run(cmd, 1, &out), 1);
    ck_assert_ptr_nonnull(strstr(out, "bad_cases.jsonl:2: field 'prediction'"));
    ck_assert_ptr_null(strstr(out, "\"got\"")); /* nothing half-written */
    free(out);
}
END_TEST

START_TEST(test_round2_ties) {
    ck_assert(dk_metric_round2(15.625) == 15.62);
    ck_assert(dk_metric_round2(40.625) == 40.62);
    ck_assert(dk_metric_round2(9.375) == 9.38);
    ck_assert(dk_metric_round2(3.125) == 3.12);
    ck_assert(dk_metric_round2(100.0 * 2 / 3) == 66.67);
}
END_TEST

START_TEST(test_unicode_rules) {
    /* final sigma and U+0130 (full lower-casing), NBSP splits, fullwidth digits are \d */
    const char *a1[] = {"οδυσσευς"};
    ck_assert(dk_metric_sample_score(DK_METRIC_QA_F1, "ΟΔΥΣΣΕΥΣ", a1, 1, NULL, 0) == 1.0);
    const char *a2[] = {"i\xcc\x87stanbul"};
    ck_assert(dk_metric_string_match("\xc4\xb0STANBUL", a2, 1, 1) == 1.0);
    ck_assert(dk_metric_count_score("\xef\xbc\x91\xef\xbc\x92 or 12\xc2\xb2", "12") == 0.5);
    char *n = dk_metric_normalize_answer("The\xc2\xa0"
                                         "A\xc3\xb1"
                                         "ejo an apple");
    ck_assert_str_eq(n, "a\xc3\xb1"
                        "ejo apple");
    free(n);
}
END_TEST

START_TEST(test_fidelity) {
    float p[2] = {0.0f, logf(3.0f)}, q[2] = {5.0f, 5.0f};
    double want = 0.25 * log(0.25 / 0.5) + 0.75 * log(0.75 / 0.5);
    ck_assert_double_eq_tol(dk_metric_kl_logits(p, q, 2), want, 1e-7);
    ck_assert(dk_metric_kl_logits(p, p, 2) == 0.0);
    ck_assert_int_eq(dk_metric_top1_agree(p, q, 2), 0); /* q ties -> argmax 0, p -> 1 */
    float r[4] = {0.0f, logf(3.0f), 1.0f, 0.0f}, s[4] = {5.0f, 5.0f, 0.0f, 2.0f};
    ck_assert_double_eq_tol(dk_metric_mean_kl(r, s, 2, 2),
                            0.5 * (dk_metric_kl_logits(r, s, 2) + dk_metric_kl_logits(r + 2, s + 2, 2)),
                            1e-12);
    ck_assert_int_eq(dk_argmax(r + 2, 2), 0);
    /* over the answer rows */
    dk_metric_fidelity fi;
    dk_metric_answer_fidelity(r, s, 2, 2, &fi);
    double k0 = dk_metric_kl_logits(r, s, 2), k1 = dk_metric_kl_logits(r + 2, s + 2, 2);
    ck_assert_double_eq_tol(fi.kl_mean, 0.5 * (k0 + k1), 1e-12);
    ck_assert(fi.kl_max == fmax(k0, k1) && fi.kl_first == k0);
    ck_assert(fi.top1 == 0.0 && fi.top1_first == 0); /* row 1: argmax 0 vs 1 */
    float t[4] = {0.0f, 1.0f, 0.0f, 3.0f};           /* row 0 agrees with r, row 1 does not */
    dk_metric_answer_fidelity(r, t, 2, 2, &fi);
    ck_assert(fi.top1 == 0.5 && fi.top1_first == 1);
    dk_metric_answer_fidelity(r, r, 2, 2, &fi);
    ck_assert(fi.kl_mean == 0 && fi.kl_max == 0 && fi.top1 == 1 && fi.top1_first == 1);
    dk_metric_answer_fidelity(r, s, 0, 2, &fi);
    ck_assert(isnan(fi.kl_mean) && isnan(fi.top1) && fi.top1_first == -1);
    /* NLL: row 0 = softmax(0, ln 3) = (1/4, 3/4), row 1 = softmax(1, 0) */
    const int32_t g[2] = {1, 1}, bad[2] = {1, 2};
    double z1 = log(exp(1.0) + 1.0);
    ck_assert_double_eq_tol(dk_metric_answer_nll(r, g, 2, 2), 0.5 * (-log(0.75) + z1), 1e-7);
    ck_assert(isnan(dk_metric_answer_nll(r, bad, 2, 2)) && isnan(dk_metric_answer_nll(r, g, 0, 2)));
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_golden_api_difflib);
    tcase_add_test(tc, test_golden_api_levenshtein);
    tcase_add_test(tc, test_golden_cli);
    tcase_add_test(tc, test_score_malformed);
    tcase_add_test(tc, test_round2_ties);
    tcase_add_test(tc, test_unicode_rules);
    tcase_add_test(tc, test_fidelity);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return dk_test_main(suite()); }
