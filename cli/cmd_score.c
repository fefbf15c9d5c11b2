/* cmd_score.c — `dashkit score FILE.jsonl|-`: score metric cases (the golden format of
 * ../shared/fixtures/metrics/README.md) and print each line back with an added "got" field.
 * Exit 1 if a line is malformed (nothing is printed then) or any case with "expected" differs
 * from "got" by more than the tolerance (1e-6). */
#include "cli.h"
#include "cli_util.h"
#include "metrics.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void score_usage(FILE *f) {
    fprintf(f,
            "usage: dashkit score [options] FILE.jsonl|-\n\n"
            "Scores cases with the LongBench/RULER metrics and prints each input line back with an\n"
            "added \"got\" field. A case is one JSON object per line:\n"
            "  metric: qa_f1_score | rouge_score | classification_score | retrieval_score |\n"
            "          count_score | code_sim_score           (prediction: string, answers: [string],\n"
            "                                                   all_classes: [string] or null)\n"
            "          string_match_all | string_match_part   (prediction: [string], answers: [[string]],\n"
            "                                                   postprocess: bool)\n"
            "          longbench_dataset_score                (dataset, predictions: [string],\n"
            "                                                   answers: [[string]], all_classes)\n"
            "  expected: number (optional) — compared with got.\n"
            "Per-sample LongBench rows give the max over answers in [0,1] (no first-line rule);\n"
            "RULER and dataset rows give x100 values rounded to 2 decimals, as the official code.\n\n"
            "options:\n"
            "  --code-sim difflib|levenshtein  fuzz.ratio backend (default difflib, LongBench's\n"
            "                                  plain install); levenshtein compares with\n"
            "                                  expected_with_levenshtein when a row has it\n"
            "  --tolerance X                   allowed |got - expected| (default 1e-6)\n"
            "  --quiet                         print only failures and the summary\n"
            "  -h, --help                      this help\n"
            "A summary line `cases: N checked: M failed: K` goes to stderr.\n");
}

/* ---- case parsing ---- */

typedef struct {
    const char **v; /* (n) borrowed from the cJSON tree */
    int n;
} strlist;

static int get_strlist(const cJSON *a, strlist *out, int allow_null) {
    out->v = NULL;
    out->n = 0;
    if (allow_null && (!a || cJSON_IsNull(a))) return 1;
    if (!cJSON_IsArray(a)) return 0;
    int n = cJSON_GetArraySize(a);
    out->v = calloc((size_t)n + 1, sizeof(char *));
    if (!out->v) return 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, a) {
        if (!cJSON_IsString(it)) {
            free(out->v);
            out->v = NULL;
            return 0;
        }
        out->v[out->n++] = it->valuestring;
    }
    return 1;
}

/* answers as a list of lists of strings */
typedef struct {
    strlist *l; /* (n) */
    const char *const **v;
    int *cnt;
    int n;
} strlist2;

static void strlist2_free(strlist2 *s) {
    for (int i = 0; i < s->n; i++) free(s->l[i].v);
    free(s->l);
    free(s->v);
    free(s->cnt);
}

static int get_strlist2(const cJSON *a, strlist2 *out) {
    memset(out, 0, sizeof *out);
    if (!cJSON_IsArray(a)) return 0;
    int n = cJSON_GetArraySize(a);
    out->l = calloc((size_t)n + 1, sizeof(strlist));
    out->v = calloc((size_t)n + 1, sizeof(char **));
    out->cnt = calloc((size_t)n + 1, sizeof(int));
    if (!out->l || !out->v || !out->cnt) return 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, a) {
        if (!get_strlist(it, &out->l[out->n], 0)) return 0;
        out->v[out->n] = out->l[out->n].v;
        out->cnt[out->n] = out->l[out->n].n;
        out->n++;
    }
    return 1;
}

/* Scores one row; returns NULL and fills why on a malformed row. *got may be NAN when the
 * official code would raise on this input. */
static const char *score_row(const cJSON *row, dk_code_sim_backend be, double *got) {
    const cJSON *jm = cJSON_GetObjectItemCaseSensitive(row, "metric");
    if (!cJSON_IsString(jm)) return "metric";
    const char *mname = jm->valuestring;
    if (!strcmp(mname, "longbench_dataset_score")) {
        const cJSON *jd = cJSON_GetObjectItemCaseSensitive(row, "dataset");
        if (!cJSON_IsString(jd)) return "dataset";
        dk_metric m;
        if (dk_metric_for_dataset(jd->valuestring, &m, NULL) != DK_OK) return "dataset";
        strlist preds, cls;
        strlist2 ans;
        if (!get_strlist(cJSON_GetObjectItemCaseSensitive(row, "predictions"), &preds, 0))
            return "predictions";
        if (!get_strlist2(cJSON_GetObjectItemCaseSensitive(row, "answers"), &ans) || ans.n != preds.n) {
            strlist2_free(&ans);
            free(preds.v);
            return "answers";
        }
        if (!get_strlist(cJSON_GetObjectItemCaseSensitive(row, "all_classes"), &cls, 1) ||
            (m == DK_METRIC_CLASSIFICATION && !cls.v)) {
            strlist2_free(&ans);
            free(preds.v);
            return "all_classes";
        }
        *got = dk_metric_longbench_dataset_score(jd->valuestring, preds.v, preds.n, ans.v, ans.cnt, cls.v,
                                                 cls.n, be);
        strlist2_free(&ans);
        free(preds.v);
        free(cls.v);
        return "";
    }
    dk_metric m;
    if (dk_metric_from_name(mname, &m, NULL) != DK_OK) return "metric";
    if (m == DK_METRIC_STRING_MATCH_ALL || m == DK_METRIC_STRING_MATCH_PART) {
        strlist preds;
        strlist2 ans;
        if (!get_strlist(cJSON_GetObjectItemCaseSensitive(row, "prediction"), &preds, 0)) return "prediction";
        if (!get_strlist2(cJSON_GetObjectItemCaseSensitive(row, "answers"), &ans) || ans.n != preds.n) {
            strlist2_free(&ans);
            free(preds.v);
            return "answers";
        }
        const cJSON *pp = cJSON_GetObjectItemCaseSensitive(row, "postprocess");
        if (pp && !cJSON_IsBool(pp) && !cJSON_IsNull(pp)) {
            strlist2_free(&ans);
            free(preds.v);
            return "postprocess";
        }
        *got = dk_metric_ruler_batch_score(m == DK_METRIC_STRING_MATCH_ALL, preds.v, preds.n, ans.v, ans.cnt,
                                           cJSON_IsTrue(pp));
        strlist2_free(&ans);
        free(preds.v);
        return "";
    }
    const cJSON *jp = cJSON_GetObjectItemCaseSensitive(row, "prediction");
    if (!cJSON_IsString(jp)) return "prediction";
    strlist ans, cls;
    if (!get_strlist(cJSON_GetObjectItemCaseSensitive(row, "answers"), &ans, 0)) return "answers";
    if (!get_strlist(cJSON_GetObjectItemCaseSensitive(row, "all_classes"), &cls, 1) ||
        (m == DK_METRIC_CLASSIFICATION && !cls.v)) {
        free(ans.v);
        return "all_classes";
    }
    if (m == DK_METRIC_CODE_SIM) { /* sample score with the chosen backend */
        double s = 0.0;
        for (int i = 0; i < ans.n && !isnan(s); i++) {
            double v = dk_metric_code_sim_score(jp->valuestring, ans.v[i], be);
            s = isnan(v) ? v : (v > s ? v : s);
        }
        *got = s;
    } else {
        *got = dk_metric_sample_score(m, jp->valuestring, ans.v, ans.n, cls.v, cls.n);
    }
    free(ans.v);
    free(cls.v);
    return "";
}

/* ---- command ---- */

/* What pass 1 keeps: the output lines (NULL where --quiet drops one), the FAIL lines, counts. */
typedef struct {
    dk_code_sim_backend be;
    double tol;
    int quiet;
    char **outl, **fails;
    size_t cap, n_out, n_fails;
    long checked, failed, cases;
} score_pass;

/* One non-empty input line: scored into sp. 0, or 1 after printing the error line. */
static int score_line(score_pass *sp, const char *fname, long lineno, const char *line) {
    cJSON *row = cJSON_Parse(line);
    if (!cJSON_IsObject(row)) {
        fprintf(stderr, "dashkit score: %s:%ld: not a JSON object\n", fname, lineno);
        cJSON_Delete(row);
        return 1;
    }
    double got = NAN;
    const char *bad = score_row(row, sp->be, &got);
    if (*bad) {
        fprintf(stderr, "dashkit score: %s:%ld: field '%s': missing or of the wrong type/value\n", fname,
                lineno, bad);
        cJSON_Delete(row);
        return 1;
    }
    sp->cases++;
    cJSON_AddItemToObject(row, "got", isnan(got) ? cJSON_CreateNull() : cJSON_CreateNumber(got));
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(row, "expected");
    const cJSON *exl = cJSON_GetObjectItemCaseSensitive(row, "expected_with_levenshtein");
    if (sp->be == DK_CODE_SIM_LEVENSHTEIN && cJSON_IsNumber(exl)) ex = exl;
    int fail = 0;
    if (cJSON_IsNumber(ex)) {
        sp->checked++;
        if (isnan(got) || fabs(got - ex->valuedouble) > sp->tol) fail = 1;
    }
    char *txt = cJSON_PrintUnformatted(row);
    if (fail) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(row, "id");
        char buf[2600];
        snprintf(buf, sizeof buf, "FAIL %s:%ld%s%s: expected %.17g got %.17g", fname, lineno,
                 cJSON_IsString(id) ? " id=" : "", cJSON_IsString(id) ? dk_cli_esc(id->valuestring) : "",
                 ex->valuedouble, got);
        sp->fails = realloc(sp->fails, (sp->n_fails + 1) * sizeof *sp->fails);
        sp->fails[sp->n_fails++] = strdup(buf);
        sp->failed++;
    }
    cJSON_Delete(row);
    if (!txt) {
        fprintf(stderr, "dashkit score: out of memory\n");
        return 1;
    }
    if (sp->n_out == sp->cap)
        sp->outl = realloc(sp->outl, (sp->cap = sp->cap ? 2 * sp->cap : 64) * sizeof *sp->outl);
    sp->outl[sp->n_out++] = (!sp->quiet || fail) ? txt : (free(txt), NULL);
    return 0;
}

/* -1: parsed; otherwise the exit status (0 after --help). */
static int score_parse_args(int argc, char **argv, score_pass *sp, const char **path) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dk_cli_help(a, score_usage)) return 0;
        else if (!strcmp(a, "--quiet")) sp->quiet = 1;
        else if (!strcmp(a, "--code-sim") && i + 1 < argc) {
            const char *v = argv[++i];
            if (!strcmp(v, "difflib")) sp->be = DK_CODE_SIM_DIFFLIB;
            else if (!strcmp(v, "levenshtein")) sp->be = DK_CODE_SIM_LEVENSHTEIN;
            else {
                fprintf(stderr, "dashkit score: --code-sim: unknown backend '%s' (difflib|levenshtein)\n",
                        dk_cli_esc(v));
                return 2;
            }
        } else if (!strcmp(a, "--tolerance") && i + 1 < argc) {
            char *end;
            errno = 0;
            sp->tol = strtod(argv[++i], &end);
            if (errno || *end || !(sp->tol >= 0)) {
                fprintf(stderr, "dashkit score: --tolerance: invalid value '%s'\n", dk_cli_esc(argv[i]));
                return 2;
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "dashkit score: unknown or incomplete option '%s' (see --help)\n", dk_cli_esc(a));
            return 2;
        } else if (*path) {
            fprintf(stderr, "dashkit score: more than one input file ('%s', '%s')\n", dk_cli_esc(*path),
                    dk_cli_esc(a));
            return 2;
        } else *path = a;
    }
    if (!*path) {
        score_usage(stderr);
        return 2;
    }
    return -1;
}

int dk_cmd_score(int argc, char **argv) {
    score_pass sp = {.be = DK_CODE_SIM_DIFFLIB, .tol = 1e-6};
    const char *path = NULL;
    int rc = score_parse_args(argc, argv, &sp, &path);
    if (rc >= 0) return rc;
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    char fname[1024]; /* the path as echoed in error lines */
    dk_escape_controls(strcmp(path, "-") ? path : "<stdin>", fname, sizeof fname);
    if (!f) {
        fprintf(stderr, "dashkit score: %s: %s\n", dk_cli_esc(path), strerror(errno));
        return 1;
    }

    /* Pass 1: parse and score everything into memory, so a malformed line prints nothing. */
    char *line = NULL;
    size_t lcap = 0;
    long lineno = 0;
    rc = 0;
    ssize_t len;
    errno = 0;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        if ((rc = score_line(&sp, fname, lineno, line))) break;
    }
    if (rc == 0 && ferror(f)) { /* a read error (EISDIR, EIO) is not the end of the file */
        fprintf(stderr, "dashkit score: %s: read error: %s\n", fname, strerror(errno ? errno : EIO));
        rc = 1;
    }
    if (f != stdin) fclose(f);
    free(line);
    if (rc == 0) {
        for (size_t i = 0; i < sp.n_out; i++)
            if (sp.outl[i]) puts(sp.outl[i]);
        for (size_t i = 0; i < sp.n_fails; i++) fprintf(stderr, "%s\n", sp.fails[i]);
        fprintf(stderr, "cases: %ld checked: %ld failed: %ld\n", sp.cases, sp.checked, sp.failed);
        if (sp.failed) rc = 1;
    }
    for (size_t i = 0; i < sp.n_out; i++) free(sp.outl[i]);
    for (size_t i = 0; i < sp.n_fails; i++) free(sp.fails[i]);
    free(sp.outl);
    free(sp.fails);
    return rc;
}
