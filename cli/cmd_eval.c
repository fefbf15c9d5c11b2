/* cmd_eval.c — `dashkit eval MODEL --task NAME [--opt K=V ...] [--method NAME --rho R ...] [-n N]
 * [--seed S] [--budget TOKENS] [--json]`: one task on one setting. Every sample is run densely
 * (the reference) and with the method (eval/sweep/evaluate.h); one line per sample, then the aggregate
 * score (official arithmetic), FLOPs and wall-time speedups and fidelity against dense. */
#include "cli.h"
#include "cli_util.h"
#include "blas.h"
#include "evaluate.h"
#include "metrics.h"
#include "model.h"
#include "policy.h"
#include "task.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DK_EVAL_PRED_SHOWN 60 /* bytes of a prediction shown on a per-sample text line */

static void dk_eval_usage(FILE *f) {
    fprintf(
        f,
        "usage: dashkit eval MODEL --task NAME [--opt KEY=VALUE]... [--method NAME] [--rho R] [--ls F]\n"
        "                    [--tau T] [--keep N] [...] [-n SAMPLES] [--seed S] [--budget TOKENS] "
        "[--json]\n\n"
        "Runs one task with one method. Each sample is prefilled densely (the reference) and with the\n"
        "method (context halted, question dense), greedy-decoded, and scored with the task's official\n"
        "metric. Per sample: id, score, flops_speedup, wall_speedup, fidelity over the teacher-forced\n"
        "answer: kl and kl_max (mean and max KL(dense||method) over its rows), top1 (fraction of rows\n"
        "whose argmax agrees), nll_delta (answer NLL, method - dense, nats/token), and of the first\n"
        "answer row alone kl_first and top1_first; prediction (escaped, truncated). Then the aggregate\n"
        "lines score (as LongBench/RULER compute it), dense_score, flops_speedup and wall_speedup (sum\n"
        "dense / sum method, prefill of context + question), kl, kl_max, top1, nll_delta, kl_first,\n"
        "top1_first (means over samples; kl_max the max).\n\n"
        "  MODEL              GGUF or llama2.c model file\n"
        "  -z, --tokenizer F  llama2.c tok*.bin (needed for .bin models)\n"
        "  --task NAME        task (see 'dashkit tasks')\n"
        "  --opt KEY=VALUE    task option, repeatable (see 'dashkit tasks NAME'), e.g. --opt length=4096\n"
        "  --method NAME      %s (default dash);\n"
        "                     dash with --tau means dash-tau, dash with --keep means dash-keep\n"
        "  -n SAMPLES         samples to run (LongBench: the first N lines, default all;\n"
        "                     generators: default 10)\n"
        "  --seed S           the task's sample seed (= --opt seed=S; tasks without a seed ignore it)\n"
        "  --budget TOKENS    prompt budget in tokens (BOS included): longer prompts keep the first and\n"
        "                     last TOKENS/2 (LongBench's middle truncation); 0 = never truncate;\n"
        "                     default: the model's training context minus the sample's max new tokens\n"
        "  --chat auto|none|NAME  chat template around the prompt (context inside the user turn):\n"
        "                     auto (default) = the model's own (GGUF tokenizer.chat_template, else by\n"
        "                     architecture; none for models without one), none, or chatml|llama3|llama2.\n"
        "                     Not applied to trec, triviaqa, samsum, lsht, lcc, repobench-p (LongBench's "
        "rule)\n" DK_CLI_COMPUTE_HELP
        "  --json             one JSON object (samples and aggregate) instead of text\n"
        "  -h, --help         this help\n\n"
        "Method parameters (each method accepts a subset; see 'dashkit prefill --help'):\n",
        dk_policy_names());
    dk_cli_param_help(f, 0, true);
}

/* Escaped for one text line: \" \\ \n \t \r, other control bytes \xNN; at most max input bytes
 * (cut at a UTF-8 character boundary), "..." appended when cut. */
static void dk_eval_print_escaped(FILE *f, const char *s, size_t max) {
    size_t i = 0;
    for (; s[i]; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (i >= max && (ch & 0xC0) != 0x80) break;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch == '\n') fputs("\\n", f);
        else if (ch == '\t') fputs("\\t", f);
        else if (ch == '\r') fputs("\\r", f);
        else if (ch < 0x20 || ch == 0x7f) fprintf(f, "\\x%02x", ch);
        else fputc(ch, f);
    }
    if (s[i]) fputs("...", f);
}

static void dk_eval_json_num(cJSON *o, const char *k, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

/* keys[i] = v[i] for i < n, each a number or null */
static void dk_eval_json_nums(cJSON *o, const char *const *keys, const double *v, int n) {
    for (int i = 0; i < n; i++) dk_eval_json_num(o, keys[i], v[i]);
}

/* ---- options ---- */

typedef struct {
    dk_cli_task_args t;   /* MODEL, --task, --opt, -z, --seed */
    dk_cli_method_args m; /* --method, its parameters, --compute */
    const char *chat;
    long n_samples, budget;
    bool json;
} dk_eval_args;

/* Option a with its value v (a method parameter when pd). true: taken; false: the error line is printed. */
static bool dk_eval_parse_opt(dk_eval_args *x, const char *a, const dk_policy_param *pd, char *v) {
    if (dk_cli_method_args_takes(a, pd)) return dk_cli_method_args_opt("eval", &x->m, a, pd, v);
    if (dk_cli_task_args_takes(a)) return dk_cli_task_args_opt("eval", &x->t, a, v);
    if (!strcmp(a, "--chat")) {
        x->chat = v;
        dk_chat_template_kind k;
        dk_err ce = {{0}};
        if (strcmp(v, "auto") && dk_chat_template_parse(v, &k, &ce)) {
            fprintf(stderr, "dashkit eval: --chat: %s\n", ce.msg);
            return false;
        }
    } else if (!strcmp(a, "-n")) return dk_cli_parse_long("eval", a, v, 1, 1000000, &x->n_samples);
    else if (!strcmp(a, "--budget")) {
        if (!dk_cli_long_in(v, 0, 1L << 30, &x->budget) || x->budget == 1) {
            fprintf(stderr, "dashkit eval: --budget '%s' is not 0 or an integer >= 2\n", dk_cli_esc(v));
            return false;
        }
    }
    return true;
}

/* -1: parsed into x; otherwise the exit status (0 after --help). */
static int dk_eval_parse_args(int argc, char **argv, dk_eval_args *x) {
    *x = (dk_eval_args){.m = {.method = "dash", .compute = DK_COMPUTE_F32}, .chat = "auto", .budget = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dk_cli_help(a, dk_eval_usage)) return 0;
        if (!strcmp(a, "--json")) {
            x->json = true;
            continue;
        }
        const dk_policy_param *pd = NULL;
        if (!strcmp(a, "--policy-seed")) pd = dk_policy_param_info(DK_POLICY_PARAM_SEED);
        else if (!strncmp(a, "--", 2) && strcmp(a, "--seed")) pd = dk_policy_param_find(a + 2);
        bool takes = dk_cli_method_args_takes(a, pd) || dk_cli_task_args_takes(a) || !strcmp(a, "-n") ||
                     !strcmp(a, "--budget") || !strcmp(a, "--chat");
        if (takes && !dk_cli_has_value("eval", argc, argv, i)) return 2;
        if (takes) {
            if (!dk_eval_parse_opt(x, a, pd, argv[++i])) return 2;
        } else if (!dk_cli_positional("eval", a, &x->t.model_path)) return 2;
    }
    return dk_cli_task_args_check("eval", &x->t) ? -1 : 2;
}

/* --seed S as the task's seed option (tasks without one ignore it). false: the error line is printed. */
static bool dk_eval_task_seed(dk_eval_args *x, const dk_task *task) {
    if (!x->t.seed) return true;
    long sv;
    if (!dk_cli_long_in(x->t.seed, 0, 0x7fffffffL, &sv)) {
        fprintf(stderr, "dashkit eval: --seed '%s' is not a non-negative integer\n", dk_cli_esc(x->t.seed));
        return false;
    }
    for (int j = 0; j < x->t.nkv; j++)
        if (!strcmp(x->t.kv[j].key, "seed")) {
            fprintf(stderr, "dashkit eval: --seed and --opt seed=... both given\n");
            return false;
        }
    return !dk_task_opt_value(task, x->t.kv, x->t.nkv, "seed") ||
           dk_cli_task_args_add("eval", &x->t, "seed", x->t.seed);
}

/* ---- output ---- */

/* What every output form names: the run's setting. */
typedef struct {
    const dk_eval_args *x;
    const dk_task *task;
    const dk_chat_template *tmpl;
    const dk_sample_set *set;
    const dk_policy *pol;
    char params[160];
} dk_eval_setting;

static cJSON *dk_eval_json_head(const dk_eval_setting *g) {
    cJSON *js = cJSON_CreateObject();
    cJSON_AddStringToObject(js, "model", g->x->t.model_path);
    cJSON_AddStringToObject(js, "task", g->task->name);
    cJSON *jo = cJSON_AddObjectToObject(js, "options");
    for (const dk_task_opt *o = g->task->opts; o->name; o++) {
        const char *v = dk_task_opt_value(g->task, g->x->t.kv, g->x->t.nkv, o->name);
        if (v && *v) cJSON_AddStringToObject(jo, o->name, v);
    }
    bool applies = dk_eval_chat_applies(g->set->s[0].dataset);
    cJSON_AddStringToObject(js, "chat", applies ? dk_chat_template_name(g->tmpl->kind) : "none");
    cJSON_AddStringToObject(js, "chat_source", g->tmpl->source);
    cJSON_AddStringToObject(js, "method", g->pol->name);
    cJSON_AddStringToObject(js, "params", g->params);
    cJSON_AddStringToObject(js, "metric", dk_metric_name(g->set->s[0].metric));
    cJSON_AddStringToObject(js, "blas_core", dk_blas_core());
    cJSON_AddArrayToObject(js, "samples");
    return js;
}

static void dk_eval_json_sample(cJSON *arr, const dk_sample *s, const dk_eval_result *rd,
                                const dk_eval_result *rm) {
    static const char *const k_score[] = {"score", "dense_score"};
    static const char *const k_tok[] = {"prompt_tokens",  "context_tokens", "question_tokens",
                                        "dropped_tokens", "gen_tokens",     "gold_tokens"};
    static const char *const k_run[] = {
        "flops_dense", "flops_method", "flops_speedup", "wall_dense_s", "wall_method_s", "wall_speedup",
        "kl",          "kl_max",       "top1",          "nll_delta",    "nll_dense",     "kl_first"};
    const double v_score[] = {rm->score, rd->score};
    const double v_tok[] = {rm->n_prompt,  rm->n_context, rm->n_question,
                            rm->n_dropped, rm->n_gen,     rm->n_gold};
    const double v_run[] = {(double)rd->flops,
                            (double)rm->flops,
                            rm->flops_speedup,
                            rd->wall_s,
                            rm->wall_s,
                            rm->wall_speedup,
                            rm->kl,
                            rm->kl_max,
                            rm->top1,
                            rm->nll_delta,
                            rm->nll_dense,
                            rm->kl_first};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToArray(arr, o);
    cJSON_AddStringToObject(o, "id", s->id ? s->id : "");
    dk_eval_json_nums(o, k_score, v_score, 2);
    cJSON_AddStringToObject(o, "prediction", rm->prediction);
    cJSON_AddStringToObject(o, "dense_prediction", rd->prediction);
    cJSON_AddItemToObject(o, "answers",
                          cJSON_CreateStringArray((const char *const *)s->answers, s->n_answers));
    dk_eval_json_nums(o, k_tok, v_tok, 6);
    cJSON_AddItemToObject(o, "active_tokens", cJSON_CreateIntArray(rm->active, rm->n_layer));
    dk_eval_json_nums(o, k_run, v_run, 12);
    cJSON_AddNumberToObject(o, "top1_first", rm->top1_first);
}

static void dk_eval_print_sample(const dk_sample *s, const dk_eval_result *rm) {
    printf("%s score=%.2f flops_speedup=%.4f wall_speedup=%.3f kl=%.6g kl_max=%.6g top1=%.4f nll_delta=%.6g"
           " kl_first=%.6g top1_first=%d prediction=\"",
           s->id ? s->id : "?", rm->score, rm->flops_speedup, rm->wall_speedup, rm->kl, rm->kl_max, rm->top1,
           rm->nll_delta, rm->kl_first, rm->top1_first);
    dk_eval_print_escaped(stdout, rm->prediction, DK_EVAL_PRED_SHOWN);
    printf("\"\n");
    fflush(stdout);
}

/* The aggregate: appended to js and printed (JSON), or the text lines. 0, or 1 when out of memory. */
static int dk_eval_print_summary(const dk_eval_setting *g, cJSON *js, const dk_eval_summary *a) {
    if (js) {
        static const char *const k[] = {
            "n",  "score",  "dense_score", "flops_dense", "flops_method", "flops_speedup", "wall_speedup",
            "kl", "kl_max", "top1",        "nll_delta",   "kl_first",     "top1_first"};
        const double v[] = {a->n,
                            a->score,
                            a->dense_score,
                            (double)a->flops_dense,
                            (double)a->flops_method,
                            a->flops_speedup,
                            a->wall_speedup,
                            a->kl,
                            a->kl_max,
                            a->top1,
                            a->nll_delta,
                            a->kl_first,
                            a->top1_first};
        dk_eval_json_nums(js, k, v, 13);
        char *txt = cJSON_PrintUnformatted(js);
        if (!txt) {
            fprintf(stderr, "dashkit eval: out of memory\n");
            return 1;
        }
        printf("%s\n", txt);
        free(txt);
        return 0;
    }
    bool applies = dk_eval_chat_applies(g->set->s[0].dataset);
    printf("task: %s\nchat: %s\nchat_source: %s\nmethod: %s\nparams: %s\nmetric: %s\nsamples: %d\n",
           g->task->name, applies ? dk_chat_template_name(g->tmpl->kind) : "none",
           applies ? g->tmpl->source : "LongBench: no template for this dataset", g->pol->name, g->params,
           dk_metric_name(g->set->s[0].metric), g->set->n);
    printf("score: %.2f\ndense_score: %.2f\n", a->score, a->dense_score);
    printf("flops_speedup: %.4f\nwall_speedup: %.3f\n", a->flops_speedup, a->wall_speedup);
    printf("kl: %.6g\nkl_max: %.6g\ntop1: %.4f\nnll_delta: %.6g\nkl_first: %.6g\ntop1_first: %.4f\n", a->kl,
           a->kl_max, a->top1, a->nll_delta, a->kl_first, a->top1_first);
    return 0;
}

/* ---- the command ---- */

/* Every sample through dk_eval_sample, printed as it finishes, then the aggregate. Exit status. */
static int dk_eval_samples(dk_eval_setting *g, const dk_model *m, const dk_policy_params *pp, dk_err *e) {
    const dk_sample_set *set = g->set;
    dk_eval_sample_opts so = {.budget = g->x->budget, .chat = g->tmpl, .compute = g->x->m.compute};
    dk_eval_totals t;
    dk_ctx *c = NULL;
    cJSON *js = NULL;
    int rc = 1, warned_ctx = 0;
    if (dk_eval_totals_init(&t, set->n, e)) {
        fprintf(stderr, "dashkit eval: out of memory\n");
        return 1;
    }
    dk_policy_params_format(g->pol, pp, g->params, sizeof g->params);
    if (g->x->json) js = dk_eval_json_head(g);
    for (int i = 0; i < set->n; i++) {
        dk_eval_pair r;
        so.warmup = i == 0;
        dk_status st = dk_eval_sample(m, &c, &set->s[i], &so, g->pol, pp, &r, e);
        int beyond = 0;
        if (r.step > DK_EVAL_STEP_PROMPT &&
            dk_model_check_context(m, r.n_ctx_tokens, &beyond, NULL) == DK_OK && beyond && !warned_ctx++)
            fprintf(stderr,
                    "dashkit eval: warning: sample %d: %d tokens exceed the model's training context of %d "
                    "tokens\n",
                    i, r.n_ctx_tokens, m->cfg.n_ctx_train);
        if (st) {
            fprintf(stderr, "dashkit eval: %s\n", e->msg);
            if (r.step == DK_EVAL_STEP_DENSE && st == DK_ERR_ARG)
                rc = 2; /* e.g. a prompt far beyond the training context */
            goto done;
        }
        dk_eval_totals_add(&t, &r.dense, &r.method);
        if (js)
            dk_eval_json_sample(cJSON_GetObjectItemCaseSensitive(js, "samples"), &set->s[i], &r.dense,
                                &r.method);
        else dk_eval_print_sample(&set->s[i], &r.method);
        dk_eval_pair_free(&r);
    }
    dk_eval_summary a;
    dk_eval_totals_summary(&t, set->s[0].metric, &a);
    rc = dk_eval_print_summary(g, js, &a);
done:
    cJSON_Delete(js);
    dk_eval_totals_free(&t);
    dk_ctx_free(c);
    return rc;
}

int dk_cmd_eval(int argc, char **argv) {
    dk_eval_args x;
    int rc = dk_eval_parse_args(argc, argv, &x);
    if (rc >= 0) return rc;
    /* task (in the parse) and method are checked before the model is loaded */
    const dk_task *task = x.t.task;
    if (!dk_eval_task_seed(&x, task)) return 2;
    dk_err e = {{0}};
    const dk_policy *pol;
    dk_policy_params pp;
    if (!dk_cli_policy_resolve("eval", x.m.method, x.m.pa, x.m.n_pa, &pol, &pp)) return 2;

    rc = 1;
    dk_model *m = NULL;
    dk_sample_set set = {0};
    const dk_tokenizer *tok;
    dk_chat_template tmpl;
    if (dk_model_load(x.t.model_path, x.t.tok_path, &m, &e) || dk_model_tokenizer(m, &tok, &e)) {
        fprintf(stderr, "dashkit eval: %s\n", e.msg);
        goto done;
    }
    if (dk_policy_params_validate(pol, &pp, m->cfg.n_layer, &e) ||
        dk_chat_template_from_model(m, x.chat, NULL, &tmpl, &e)) {
        fprintf(stderr, "dashkit eval: %s\n", e.msg);
        rc = 2;
        goto done;
    }
    int lr = dk_cli_task_load("eval", task, x.t.kv, x.t.nkv, (int)x.n_samples, tok, &set);
    if (lr >= 0) {
        rc = lr;
        goto done;
    }
    dk_eval_setting g = {.x = &x, .task = task, .tmpl = &tmpl, .set = &set, .pol = pol};
    rc = dk_eval_samples(&g, m, &pp, &e);
done:
    dk_sample_set_free(&set);
    dk_model_free(m);
    return rc;
}
