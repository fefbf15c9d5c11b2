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

#define DK_EVAL_MAX_OPTS 64
#define DK_EVAL_PRED_SHOWN 60 /* bytes of a prediction shown on a per-sample text line */

static void dk_eval_usage(FILE *f) {
    fprintf(f, "usage: dashkit eval MODEL --task NAME [--opt KEY=VALUE]... [--method NAME] [--rho R] [--ls F]\n"
               "                    [--tau T] [--keep N] [...] [-n SAMPLES] [--seed S] [--budget TOKENS] [--json]\n\n"
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
               "                     Not applied to trec, triviaqa, samsum, lsht, lcc, repobench-p (LongBench's rule)\n"
               "  --json             one JSON object (samples and aggregate) instead of text\n"
               "  -h, --help         this help\n\n"
               "Method parameters (each method accepts a subset; see 'dashkit prefill --help'):\n",
            dk_policy_names());
    for (int i = 0; i < DK_POLICY_PARAM_COUNT; i++) {
        const dk_policy_param *d = dk_policy_param_info((dk_policy_param_id)i);
        char def[32], opt[32];
        if (isnan(d->def)) snprintf(def, sizeof def, "required");
        else snprintf(def, sizeof def, "default %g", d->def);
        snprintf(opt, sizeof opt, "--%s%s V", i == DK_POLICY_PARAM_SEED ? "policy-" : "", d->name);
        fprintf(f, "  %-18s %s (%s)\n", opt, d->help, def);
    }
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

static bool dk_eval_parse_int(const char *v, long lo, long hi, long *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < lo || x > hi) return false;
    *out = x;
    return true;
}

int dk_cmd_eval(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *task_name = NULL, *method = "dash", *seed = NULL, *chat = "auto";
    long n_samples = 0, budget = -1;
    bool json = false;
    dk_task_kv kv[DK_EVAL_MAX_OPTS];
    int nkv = 0;
    dk_cli_param_arg pa[DK_POLICY_PARAM_COUNT];
    int n_pa = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { dk_eval_usage(stdout); return 0; }
        if (!strcmp(a, "--json")) { json = true; continue; }
        const dk_policy_param *pd = NULL;
        if (!strcmp(a, "--policy-seed")) pd = dk_policy_param_info(DK_POLICY_PARAM_SEED);
        else if (!strncmp(a, "--", 2) && strcmp(a, "--seed")) pd = dk_policy_param_find(a + 2);
        bool takes = pd || !strcmp(a, "-z") || !strcmp(a, "--tokenizer") || !strcmp(a, "--task") || !strcmp(a, "--opt") ||
                     !strcmp(a, "--method") || !strcmp(a, "-n") || !strcmp(a, "--seed") || !strcmp(a, "--budget") ||
                     !strcmp(a, "--chat");
        if (takes && i + 1 >= argc) { fprintf(stderr, "dashkit eval: option %s needs a value\n", a); return 2; }
        if (pd) {
            if (!dk_cli_param_arg_add("eval", a, pd, argv[++i], pa, &n_pa)) return 2;
        } else if (!strcmp(a, "-z") || !strcmp(a, "--tokenizer")) tok_path = argv[++i];
        else if (!strcmp(a, "--task")) task_name = argv[++i];
        else if (!strcmp(a, "--method")) method = argv[++i];
        else if (!strcmp(a, "--seed")) seed = argv[++i];
        else if (!strcmp(a, "--chat")) {
            chat = argv[++i];
            dk_chat_template_kind k;
            dk_err ce = {{0}};
            if (strcmp(chat, "auto") && dk_chat_template_parse(chat, &k, &ce)) {
                fprintf(stderr, "dashkit eval: --chat: %s\n", ce.msg);
                return 2;
            }
        }
        else if (!strcmp(a, "--opt")) {
            char *eq = strchr(argv[++i], '=');
            if (!eq || eq == argv[i]) { fprintf(stderr, "dashkit eval: --opt: expected KEY=VALUE, got '%s'\n", dk_cli_esc(argv[i])); return 2; }
            if (nkv == DK_EVAL_MAX_OPTS) { fprintf(stderr, "dashkit eval: more than %d --opt options\n", DK_EVAL_MAX_OPTS); return 2; }
            *eq = 0;
            kv[nkv++] = (dk_task_kv){argv[i], eq + 1};
        } else if (!strcmp(a, "-n")) {
            if (!dk_eval_parse_int(argv[++i], 1, 1000000, &n_samples)) {
                fprintf(stderr, "dashkit eval: -n '%s' is not an integer in 1..1000000\n", dk_cli_esc(argv[i]));
                return 2;
            }
        } else if (!strcmp(a, "--budget")) {
            if (!dk_eval_parse_int(argv[++i], 0, 1L << 30, &budget) || budget == 1) {
                fprintf(stderr, "dashkit eval: --budget '%s' is not 0 or an integer >= 2\n", dk_cli_esc(argv[i]));
                return 2;
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "dashkit eval: unknown option '%s' (see --help)\n", dk_cli_esc(a));
            return 2;
        } else if (!model_path) model_path = a;
        else { fprintf(stderr, "dashkit eval: unexpected argument '%s'\n", dk_cli_esc(a)); return 2; }
    }
    if (!model_path) { fprintf(stderr, "dashkit eval: missing MODEL (see --help)\n"); return 2; }
    if (!task_name) { fprintf(stderr, "dashkit eval: missing --task NAME (see 'dashkit tasks')\n"); return 2; }

    /* task and method are checked before the model is loaded */
    const dk_task *task = dk_task_find(task_name);
    if (!task) { fprintf(stderr, "dashkit eval: unknown task '%s' (run 'dashkit tasks')\n", dk_cli_esc(task_name)); return 2; }
    if (seed) {
        long sv;
        if (!dk_eval_parse_int(seed, 0, 0x7fffffffL, &sv)) { fprintf(stderr, "dashkit eval: --seed '%s' is not a non-negative integer\n", dk_cli_esc(seed)); return 2; }
        for (int j = 0; j < nkv; j++)
            if (!strcmp(kv[j].key, "seed")) { fprintf(stderr, "dashkit eval: --seed and --opt seed=... both given\n"); return 2; }
        if (dk_task_opt_value(task, kv, nkv, "seed")) {
            if (nkv == DK_EVAL_MAX_OPTS) { fprintf(stderr, "dashkit eval: more than %d --opt options\n", DK_EVAL_MAX_OPTS); return 2; }
            kv[nkv++] = (dk_task_kv){"seed", seed};
        }
    }
    dk_err e = {{0}};
    const dk_policy *pol;
    dk_policy_params pp;
    if (!dk_cli_policy_resolve("eval", method, pa, n_pa, &pol, &pp)) return 2;

    int rc = 1;
    dk_model *m = NULL;
    dk_ctx *c = NULL;
    dk_sample_set set = {0};
    double *s_method = NULL, *s_dense = NULL;
    cJSON *js = NULL, *jsamples = NULL;
    const dk_tokenizer *tok;
    if (dk_model_load(model_path, tok_path, &m, &e) || dk_model_tokenizer(m, &tok, &e)) {
        fprintf(stderr, "dashkit eval: %s\n", e.msg);
        goto done;
    }
    if (dk_policy_params_validate(pol, &pp, m->cfg.n_layer, &e)) { fprintf(stderr, "dashkit eval: %s\n", e.msg); rc = 2; goto done; }
    dk_chat_template tmpl;
    if (dk_chat_template_from_model(m, chat, NULL, &tmpl, &e)) { fprintf(stderr, "dashkit eval: %s\n", e.msg); rc = 2; goto done; }
    dk_tok_if ti = dk_tok_if_engine(tok);
    dk_status st = dk_task_load(task->name, kv, nkv, (int)n_samples, &ti, &set, &e);
    if (st) { fprintf(stderr, "dashkit eval: %s\n", e.msg); rc = st == DK_ERR_ARG ? 2 : 1; goto done; }
    if (set.n == 0) { fprintf(stderr, "dashkit eval: task %s has no samples\n", task->name); goto done; }
    s_method = malloc((size_t)set.n * sizeof *s_method);
    s_dense = malloc((size_t)set.n * sizeof *s_dense);
    if (!s_method || !s_dense) { fprintf(stderr, "dashkit eval: out of memory\n"); goto done; }
    char params[160] = "";
    dk_policy_params_format(pol, &pp, params, sizeof params);
    if (json) {
        js = cJSON_CreateObject();
        cJSON_AddStringToObject(js, "model", model_path);
        cJSON_AddStringToObject(js, "task", task->name);
        cJSON *jo = cJSON_AddObjectToObject(js, "options");
        for (const dk_task_opt *o = task->opts; o->name; o++) {
            const char *v = dk_task_opt_value(task, kv, nkv, o->name);
            if (v && *v) cJSON_AddStringToObject(jo, o->name, v);
        }
        cJSON_AddStringToObject(js, "chat", dk_eval_chat_applies(set.s[0].dataset) ? dk_chat_template_name(tmpl.kind) : "none");
        cJSON_AddStringToObject(js, "chat_source", tmpl.source);
        cJSON_AddStringToObject(js, "method", pol->name);
        cJSON_AddStringToObject(js, "params", params);
        cJSON_AddStringToObject(js, "metric", dk_metric_name(set.s[0].metric));
        cJSON_AddStringToObject(js, "blas_core", dk_blas_core());
        jsamples = cJSON_AddArrayToObject(js, "samples");
    }

    int64_t fl_dense = 0, fl_method = 0;
    double w_dense = 0, w_method = 0;
    /* means over samples of the fidelity figures (NAN ones skipped); kl_max is a max */
    enum { F_KL, F_TOP1, F_NLL, F_KL_FIRST, F_TOP1_FIRST, F_N };
    double f_sum[F_N] = {0}, kl_max = NAN;
    int f_n[F_N] = {0}, warned_ctx = 0;
    for (int i = 0; i < set.n; i++) {
        const dk_sample *s = &set.s[i];
        dk_eval_prompt p;
        dk_eval_result rd, rm;
        size_t b = budget >= 0 ? (size_t)budget : dk_eval_default_budget(m, s);
        if ((st = dk_eval_prompt_build_chat(m, s, b, &tmpl, &p, &e))) { fprintf(stderr, "dashkit eval: %s\n", e.msg); goto done; }
        int beyond = 0;
        if (dk_model_check_context(m, dk_eval_prompt_ctx_tokens(&p), &beyond, NULL) == DK_OK && beyond && !warned_ctx++)
            fprintf(stderr, "dashkit eval: warning: sample %d: %d tokens exceed the model's training context of %d tokens\n", i,
                    dk_eval_prompt_ctx_tokens(&p), m->cfg.n_ctx_train);
        if ((st = dk_eval_ctx_reserve(m, &c, dk_eval_prompt_ctx_tokens(&p), &e)) || (i == 0 && (st = dk_eval_warmup(c, &p, &e))) ||
            (st = dk_eval_dense(c, &p, &rd, &e))) {
            fprintf(stderr, "dashkit eval: %s\n", e.msg);
            if (st == DK_ERR_ARG) rc = 2; /* e.g. a prompt far beyond the training context */
            dk_eval_prompt_free(&p);
            goto done;
        }
        dk_eval_ref ref;
        dk_eval_ref_from_result(&rd, &ref);
        if ((st = dk_eval_method(c, &p, pol, &pp, &ref, &rm, &e))) {
            fprintf(stderr, "dashkit eval: %s\n", e.msg);
            dk_eval_result_free(&rd);
            dk_eval_prompt_free(&p);
            goto done;
        }
        s_method[i] = rm.score01;
        s_dense[i] = rd.score01;
        fl_dense += rd.flops;
        fl_method += rm.flops;
        w_dense += rd.wall_s;
        w_method += rm.wall_s;
        const double fv[F_N] = {rm.kl, rm.top1, rm.nll_delta, rm.kl_first, rm.top1_first < 0 ? NAN : rm.top1_first};
        for (int k = 0; k < F_N; k++)
            if (!isnan(fv[k])) { f_sum[k] += fv[k]; f_n[k]++; }
        if (!isnan(rm.kl_max) && !(rm.kl_max <= kl_max)) kl_max = rm.kl_max;
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToArray(jsamples, o);
            cJSON_AddStringToObject(o, "id", s->id ? s->id : "");
            dk_eval_json_num(o, "score", rm.score);
            dk_eval_json_num(o, "dense_score", rd.score);
            cJSON_AddStringToObject(o, "prediction", rm.prediction);
            cJSON_AddStringToObject(o, "dense_prediction", rd.prediction);
            cJSON_AddItemToObject(o, "answers", cJSON_CreateStringArray((const char *const *)s->answers, s->n_answers));
            cJSON_AddNumberToObject(o, "prompt_tokens", rm.n_prompt);
            cJSON_AddNumberToObject(o, "context_tokens", rm.n_context);
            cJSON_AddNumberToObject(o, "question_tokens", rm.n_question);
            cJSON_AddNumberToObject(o, "dropped_tokens", rm.n_dropped);
            cJSON_AddNumberToObject(o, "gen_tokens", rm.n_gen);
            cJSON_AddNumberToObject(o, "gold_tokens", rm.n_gold);
            cJSON_AddItemToObject(o, "active_tokens", cJSON_CreateIntArray(rm.active, rm.n_layer));
            cJSON_AddNumberToObject(o, "flops_dense", (double)rd.flops);
            cJSON_AddNumberToObject(o, "flops_method", (double)rm.flops);
            dk_eval_json_num(o, "flops_speedup", rm.flops_speedup);
            dk_eval_json_num(o, "wall_dense_s", rd.wall_s);
            dk_eval_json_num(o, "wall_method_s", rm.wall_s);
            dk_eval_json_num(o, "wall_speedup", rm.wall_speedup);
            dk_eval_json_num(o, "kl", rm.kl);
            dk_eval_json_num(o, "kl_max", rm.kl_max);
            dk_eval_json_num(o, "top1", rm.top1);
            dk_eval_json_num(o, "nll_delta", rm.nll_delta);
            dk_eval_json_num(o, "nll_dense", rm.nll_dense);
            dk_eval_json_num(o, "kl_first", rm.kl_first);
            cJSON_AddNumberToObject(o, "top1_first", rm.top1_first);
        } else {
            printf("%s score=%.2f flops_speedup=%.4f wall_speedup=%.3f kl=%.6g kl_max=%.6g top1=%.4f nll_delta=%.6g"
                   " kl_first=%.6g top1_first=%d prediction=\"",
                   s->id ? s->id : "?", rm.score, rm.flops_speedup, rm.wall_speedup, rm.kl, rm.kl_max, rm.top1, rm.nll_delta,
                   rm.kl_first, rm.top1_first);
            dk_eval_print_escaped(stdout, rm.prediction, DK_EVAL_PRED_SHOWN);
            printf("\"\n");
            fflush(stdout);
        }
        dk_eval_result_free(&rm);
        dk_eval_result_free(&rd);
        dk_eval_prompt_free(&p);
    }

    dk_metric metric = set.s[0].metric;
    double score = dk_eval_aggregate_score(metric, s_method, set.n), dscore = dk_eval_aggregate_score(metric, s_dense, set.n);
    double fsp = fl_method > 0 ? (double)fl_dense / (double)fl_method : NAN, wsp = w_method > 0 ? w_dense / w_method : NAN;
    double f_mean[F_N];
    for (int k = 0; k < F_N; k++) f_mean[k] = f_n[k] ? f_sum[k] / f_n[k] : NAN;
    if (json) {
        cJSON_AddNumberToObject(js, "n", set.n);
        dk_eval_json_num(js, "score", score);
        dk_eval_json_num(js, "dense_score", dscore);
        cJSON_AddNumberToObject(js, "flops_dense", (double)fl_dense);
        cJSON_AddNumberToObject(js, "flops_method", (double)fl_method);
        dk_eval_json_num(js, "flops_speedup", fsp);
        dk_eval_json_num(js, "wall_speedup", wsp);
        dk_eval_json_num(js, "kl", f_mean[F_KL]);
        dk_eval_json_num(js, "kl_max", kl_max);
        dk_eval_json_num(js, "top1", f_mean[F_TOP1]);
        dk_eval_json_num(js, "nll_delta", f_mean[F_NLL]);
        dk_eval_json_num(js, "kl_first", f_mean[F_KL_FIRST]);
        dk_eval_json_num(js, "top1_first", f_mean[F_TOP1_FIRST]);
        char *txt = cJSON_PrintUnformatted(js);
        if (!txt) { fprintf(stderr, "dashkit eval: out of memory\n"); goto done; }
        printf("%s\n", txt);
        free(txt);
    } else {
        printf("task: %s\nchat: %s\nchat_source: %s\nmethod: %s\nparams: %s\nmetric: %s\nsamples: %d\n", task->name,
               dk_eval_chat_applies(set.s[0].dataset) ? dk_chat_template_name(tmpl.kind) : "none",
               dk_eval_chat_applies(set.s[0].dataset) ? tmpl.source : "LongBench: no template for this dataset", pol->name,
               params, dk_metric_name(metric), set.n);
        printf("score: %.2f\ndense_score: %.2f\n", score, dscore);
        printf("flops_speedup: %.4f\nwall_speedup: %.3f\n", fsp, wsp);
        printf("kl: %.6g\nkl_max: %.6g\ntop1: %.4f\nnll_delta: %.6g\nkl_first: %.6g\ntop1_first: %.4f\n", f_mean[F_KL],
               kl_max, f_mean[F_TOP1], f_mean[F_NLL], f_mean[F_KL_FIRST], f_mean[F_TOP1_FIRST]);
    }
    rc = 0;
done:
    cJSON_Delete(js);
    free(s_method);
    free(s_dense);
    dk_sample_set_free(&set);
    dk_ctx_free(c);
    dk_model_free(m);
    return rc;
}
