/* cmd_analyze.c — `dashkit analyze`: stability vs redundancy on dense prefills (eval/sweep/analyze.h),
 * stored in the results store, drawn into --out, named lines on stdout. */
#include "cli.h"
#include "cli_util.h"
#include "analyze.h"
#include "evaluate.h"
#include "report.h"
#include "sha256.h"
#include "store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void dk_analyze_usage(FILE *f) {
    fprintf(
        f,
        "usage: dashkit analyze MODEL --task NAME [--opt KEY=VALUE]... [-n SAMPLES] [--ls F] [--rho R]\n"
        "                       [--db PATH] [--out DIR] [-z TOK] [--seed S] [--budget TOKENS] [--no-draw]\n\n"
        "Dense prefills of a task's contexts, observed at every layer: the attention update\n"
        "delta_t = |U_t| and |U_t|/|h_t| (percentiles per layer), the attention each context token\n"
        "RECEIVES from all queries of each layer (mean over heads, divided by the queries that can see\n"
        "it) and its Spearman correlation with delta at l_s, received attention by delta-decile at l_s,\n"
        "and the attention recall of the tokens that dash / fastv / snapkv / random / inverse / dblock keep\n"
        "(share of dense attention of the layers after l_s that falls on them) over a rho grid, with the\n"
        "Jaccard overlap of their kept sets. Aggregates go to the store (tables analyses,\n"
        "analysis_layers, analysis_deciles, analysis_recall, analysis_overlap), figures and analysis.md\n"
        "to --out; `dashkit report` adds the same section to report.md.\n\n"
        "  MODEL              GGUF or llama2.c model file\n"
        "  --task NAME        task (see 'dashkit tasks'); --opt KEY=VALUE its options, repeatable\n"
        "  -n SAMPLES         contexts analysed (default 5)\n"
        "  --ls F             DASH's decision layer fraction, l_s = floor(F * n_layer) (default 0.4)\n"
        "  --rho R            the rho of the recall lines and overlaps (default 0.667; the recall\n"
        "                     curve also covers 0.3, 0.5, 0.667, 0.8)\n"
        "  --db PATH          results store (default results/dashkit.db; created if missing)\n"
        "  --out DIR          figures and analysis.md (default results/analyze)\n"
        "  --seed S           the task's sample seed (= --opt seed=S)\n"
        "  --budget TOKENS    middle-truncate prompts to TOKENS (default: as eval)\n"
        "  --no-draw          write data and gnuplot scripts only\n\n"
        "Output lines: analysis_id, samples, l_s, delta_received_spearman, recall_METHOD (at --rho),\n"
        "kept_METHOD (fraction of rows kept), out.\n");
}

static void dk_analyze_progress(void *user, int done, int total) {
    (void)user;
    fprintf(stderr, "analyze: %d/%d contexts\n", done, total);
}

static bool dk_analyze_parse_num(const char *v, double lo, double hi, double *out) {
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !(x >= lo && x <= hi)) return false;
    *out = x;
    return true;
}

typedef struct {
    dk_cli_task_args t; /* MODEL, --task, --opt, -z, --seed */
    const char *db, *out;
    double n_samples, budget;
    dk_analyze_opts ao;
    dk_report_opts ro;
} dk_analyze_args;

/* Option a with its value v. true: taken; false: the error line is printed. */
static bool dk_analyze_parse_opt(dk_analyze_args *x, const char *a, char *v) {
    if (dk_cli_task_args_takes(a)) return dk_cli_task_args_opt("analyze", &x->t, a, v);
    if (!strcmp(a, "--db")) x->db = v;
    else if (!strcmp(a, "--out")) x->out = v;
    else if (!strcmp(a, "-n")) {
        if (!dk_analyze_parse_num(v, 1, 100000, &x->n_samples) || x->n_samples != floor(x->n_samples)) {
            fprintf(stderr, "dashkit analyze: -n '%s' is not an integer in 1..100000\n", v);
            return false;
        }
    } else if (!strcmp(a, "--ls")) {
        if (!dk_analyze_parse_num(v, 0, 1, &x->ao.ls)) {
            fprintf(stderr, "dashkit analyze: --ls '%s' is not a number in [0, 1]\n", v);
            return false;
        }
    } else if (!strcmp(a, "--rho")) {
        if (!dk_analyze_parse_num(v, 0, 0.999999, &x->ao.rho)) {
            fprintf(stderr, "dashkit analyze: --rho '%s' is not a number in [0, 1)\n", v);
            return false;
        }
    } else if (!strcmp(a, "--budget")) {
        if (!dk_analyze_parse_num(v, 0, 1 << 30, &x->budget) || x->budget != floor(x->budget) ||
            x->budget == 1) {
            fprintf(stderr, "dashkit analyze: --budget '%s' is not 0 or an integer >= 2\n", v);
            return false;
        }
    }
    return true;
}

/* -1: parsed into x; otherwise the exit status (0 after --help). */
static int dk_analyze_parse_args(int argc, char **argv, dk_analyze_args *x) {
    memset(x, 0, sizeof *x);
    x->db = "results/dashkit.db";
    x->out = "results/analyze";
    x->n_samples = 5;
    x->budget = -1;
    dk_analyze_opts_default(&x->ao);
    dk_report_opts_default(&x->ro);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dk_cli_help(a, dk_analyze_usage)) return 0;
        if (!strcmp(a, "--no-draw")) {
            x->ro.draw = 0;
            continue;
        }
        bool takes = dk_cli_task_args_takes(a) || !strcmp(a, "-n") || !strcmp(a, "--ls") ||
                     !strcmp(a, "--rho") || !strcmp(a, "--db") || !strcmp(a, "--out") ||
                     !strcmp(a, "--budget");
        if (takes && !dk_cli_has_value("analyze", argc, argv, i)) return 2;
        if (takes) {
            if (!dk_analyze_parse_opt(x, a, argv[++i])) return 2;
        } else if (!dk_cli_positional("analyze", a, &x->t.model_path)) return 2;
    }
    return dk_cli_task_args_check("analyze", &x->t) ? -1 : 2;
}

/* The task options as canonical JSON (string values), for the store; malloc'd, NULL when out of memory. */
static char *dk_analyze_opts_json(const dk_task_kv *kv, int nkv) {
    size_t cap = 3, len = 0;
    for (int i = 0; i < nkv; i++) cap += strlen(kv[i].key) + strlen(kv[i].val) * 2 + 8;
    char *js = malloc(cap);
    if (!js) return NULL;
    len += (size_t)snprintf(js, cap, "{");
    for (int i = 0; i < nkv; i++) {
        len += (size_t)snprintf(js + len, cap - len, "%s\"%s\":\"", i ? "," : "", kv[i].key);
        for (const char *p = kv[i].val; *p && len + 3 < cap; p++) {
            if (*p == '"' || *p == '\\') js[len++] = '\\';
            js[len++] = (unsigned char)*p < 0x20 ? ' ' : *p;
        }
        len += (size_t)snprintf(js + len, cap - len, "\"");
    }
    snprintf(js + len, cap - len, "}");
    return js;
}

static void dk_analyze_print(const dk_analysis *an, const char *out, const dk_report_result *rr) {
    printf("analysis_id: %lld\nsamples: %d\nl_s: %d\ndelta_received_spearman: %.4f\n", (long long)an->id,
           an->n_samples, an->ls_layer, an->delta_received_spearman);
    for (int r = 0; r < an->n_recall; r++)
        if (fabs(an->recall[r].rho - an->rho) < 1e-12)
            printf("recall_%s: %.4f\n", an->recall[r].method, an->recall[r].recall);
    for (int r = 0; r < an->n_recall; r++)
        if (fabs(an->recall[r].rho - an->rho) < 1e-12)
            printf("kept_%s: %.4f\n", an->recall[r].method, an->recall[r].kept_frac);
    printf("out: %s/analysis.md\nfigures: %d drawn of %d\n", out, rr->n_drawn, rr->n_figures);
}

int dk_cmd_analyze(int argc, char **argv) {
    dk_analyze_args x;
    int rc = dk_analyze_parse_args(argc, argv, &x);
    if (rc >= 0) return rc;
    const dk_task *task = x.t.task;
    if (x.t.seed && !dk_cli_task_args_add("analyze", &x.t, "seed", x.t.seed)) return 2;
    x.ao.progress = dk_analyze_progress;

    rc = 1;
    dk_err e = {{0}};
    dk_model *m = NULL;
    dk_store *s = NULL;
    dk_sample_set set = {0};
    dk_analysis an = {0};
    char *opts_json = NULL;
    const dk_tokenizer *tok;
    char sha[65];
    if (dk_model_load(x.t.model_path, x.t.tok_path, &m, &e) || dk_model_tokenizer(m, &tok, &e) ||
        dk_sha256_file(x.t.model_path, sha, &e)) {
        fprintf(stderr, "dashkit analyze: %s\n", e.msg);
        goto done;
    }
    int lr = dk_cli_task_load("analyze", task, x.t.kv, x.t.nkv, (int)x.n_samples, tok, &set);
    if (lr >= 0) {
        rc = lr;
        goto done;
    }
    dk_status st;
    size_t b = x.budget >= 0 ? (size_t)x.budget : dk_eval_default_budget(m, &set.s[0]);
    if ((st = dk_analyze_run(m, &set, b, &x.ao, &an, &e))) {
        fprintf(stderr, "dashkit analyze: %s\n", e.msg);
        rc = st == DK_ERR_ARG ? 2 : 1;
        goto done;
    }
    if (!(opts_json = dk_analyze_opts_json(x.t.kv, x.t.nkv))) {
        fprintf(stderr, "dashkit analyze: out of memory\n");
        goto done;
    }
    snprintf(an.model_sha256, sizeof an.model_sha256, "%s", sha);
    an.model_path = strdup(x.t.model_path);
    an.task = strdup(task->name);
    an.task_options = strdup(opts_json);
    if (!an.model_path || !an.task || !an.task_options) {
        fprintf(stderr, "dashkit analyze: out of memory\n");
        goto done;
    }
    if (dk_store_open(x.db, DK_STORE_OPEN_CREATE, &s, &e) || dk_store_analysis_put(s, &an, &e)) {
        fprintf(stderr, "dashkit analyze: %s\n", e.msg);
        goto done;
    }
    dk_report_result rr;
    if (dk_report_analysis(s, an.id, x.out, &x.ro, &rr, &e)) {
        fprintf(stderr, "dashkit analyze: %s\n", e.msg);
        goto done;
    }
    dk_analyze_print(&an, x.out, &rr);
    rc = 0;
done:
    free(opts_json);
    dk_analysis_free(&an);
    dk_store_close(s);
    dk_sample_set_free(&set);
    dk_model_free(m);
    return rc;
}
