/* cmd_prefill.c — `dashkit prefill MODEL (--prompt-file F | -p TEXT) [--question TEXT] [--method NAME]
 * [--rho R] [--ls F] [--tau T] [--keep N] [--json] ...`: the same prompt prefilled densely and with a
 * halting method in one process; per-layer active tokens and FLOPs, totals, speedups, and KL /
 * top-1 agreement of the next-token distribution against dense. */
#include "cli.h"
#include "cli_util.h"
#include "forward.h"
#include "metrics.h"
#include "model.h"
#include "policy.h"
#include "prefill.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void dk_prefill_usage(FILE *f) {
    fprintf(
        f,
        "usage: dashkit prefill MODEL (--prompt-file F | -p TEXT) [--question TEXT] [--method NAME]\n"
        "                       [--rho R] [--ls F] [--tau T] [--keep N] [--json] [options]\n\n"
        "Prefills the context densely AND with a halting method in one process (the question, if any,\n"
        "is prefilled densely after the context, as in kvpress) and compares them: per layer active\n"
        "tokens, cache length, FLOPs and wall time; then total FLOPs, flops_speedup = dense/method,\n"
        "wall_speedup = dense/method wall time of the prefill (median of --reps), theoretical_speedup =\n"
        "L*A(T) / (l_s*A(T) + (L-l_s)*A(K)) with K = (1-rho)*T the tokens kept at l_s and A(n) the FLOPs\n"
        "of one layer on n tokens under the engine's FLOP counting model with exact causal attention\n"
        "(n(n+1)/2 query-key pairs), kl_divergence KL(dense || method) and top1_agreement of the\n"
        "next-token distribution after the prompt.\n\n"
        "  MODEL              GGUF or llama2.c model file\n"
        "  -z TOKENIZER       llama2.c tok*.bin (needed for .bin models)\n"
        "  --prompt-file F    context text from file F\n"
        "  -p TEXT            context text\n"
        "  --question TEXT    question/instruction appended after the context, never halted\n"
        "  --method NAME      %s (default dash);\n"
        "                     dash with --tau means dash-tau, dash with --keep means dash-keep\n"
        "  --decode N         also greedy-decode N tokens after the prompt with both (default 0)\n"
        "  --reps R           timed repetitions of both prefills, medians reported (default "
        "1)\n" DK_CLI_COMPUTE_HELP "  --json             one JSON object instead of text\n"
        "  -h, --help         this help\n\n"
        "Method parameters (each method accepts a subset; see README):\n",
        dk_policy_names());
    dk_cli_param_help(f, 9, false);
    fprintf(f, "\nAccepted parameters per method:\n");
    for (int i = 0; i < dk_policy_count(); i++) {
        const dk_policy *p = dk_policy_at(i);
        fprintf(f, "  %-10s", p->name);
        for (const dk_policy_param_id *q = p->params; *q != DK_POLICY_PARAM_COUNT; q++)
            fprintf(f, " %s", dk_policy_param_info(*q)->name);
        fprintf(f, "%s  — %s\n", p->params[0] == DK_POLICY_PARAM_COUNT ? " (none)" : "", p->summary);
    }
}

static char *dk_read_text(const char *path, dk_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        dk_fail(e, DK_ERR_IO, "%s: cannot open prompt file", path);
        return NULL;
    }
    size_t n;
    bool bad;
    char *s = dk_read_stream(f, 0, &n, &bad);
    fclose(f);
    if (!s || bad) {
        free(s);
        dk_fail(e, DK_ERR_IO, "%s: cannot read prompt file", path);
        return NULL;
    }
    return s;
}

static void dk_print_answer(const dk_tokenizer *tok, const char *key, const int32_t *t, int n, int32_t prev,
                            cJSON *js) {
    size_t cap = 64, len = 0;
    char *s = malloc(cap);
    for (int i = 0; s && i < n; i++) {
        size_t pl;
        const char *piece = dk_tokenizer_decode_piece(tok, prev, t[i], &pl);
        prev = t[i];
        if (!dk_cli_piece_printable(piece, pl)) continue;
        if (len + pl + 1 > cap) {
            while (len + pl + 1 > cap) cap *= 2;
            char *r = realloc(s, cap);
            if (!r) {
                free(s);
                s = NULL;
                break;
            }
            s = r;
        }
        memcpy(s + len, piece, pl);
        len += pl;
    }
    if (!s) return;
    s[len] = 0;
    if (js) cJSON_AddStringToObject(js, key, s);
    else {
        for (char *c = s; *c; c++)
            if (*c == '\n') *c = ' ';
        printf("%s: %s\n", key, s);
    }
    free(s);
}

/* ---- options ---- */

typedef struct {
    const char *model_path, *tok_path, *prompt, *prompt_file, *question;
    dk_cli_method_args m; /* --method, its parameters, --compute */
    long reps, n_decode;
    bool json;
} dk_prefill_args;

/* -1 when the options are good; else the exit status (0 after --help, 2 on a usage error). */
static int dk_prefill_parse(int argc, char **argv, dk_prefill_args *o) {
    *o = (dk_prefill_args){.m = {.method = "dash", .compute = DK_COMPUTE_F32}, .reps = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dk_cli_help(a, dk_prefill_usage)) return 0;
        if (!strcmp(a, "--json")) {
            o->json = true;
            continue;
        }
        const dk_policy_param *pd = !strncmp(a, "--", 2) ? dk_policy_param_find(a + 2) : NULL;
        bool method = dk_cli_method_args_takes(a, pd);
        bool takes = method || !strcmp(a, "-z") || !strcmp(a, "-p") || !strcmp(a, "--prompt-file") ||
                     !strcmp(a, "--question") || !strcmp(a, "--reps") || !strcmp(a, "--decode");
        if (takes && !dk_cli_has_value("prefill", argc, argv, i)) return 2;
        if (method) {
            if (!dk_cli_method_args_opt("prefill", &o->m, a, pd, argv[++i])) return 2;
        } else if (!strcmp(a, "-z")) o->tok_path = argv[++i];
        else if (!strcmp(a, "-p")) o->prompt = argv[++i];
        else if (!strcmp(a, "--prompt-file")) o->prompt_file = argv[++i];
        else if (!strcmp(a, "--question")) o->question = argv[++i];
        else if (!strcmp(a, "--reps")) {
            if (!dk_cli_parse_long("prefill", a, argv[++i], 1, 100000, &o->reps)) return 2;
        } else if (!strcmp(a, "--decode")) {
            if (!dk_cli_parse_long("prefill", a, argv[++i], 0, 100000, &o->n_decode)) return 2;
        } else if (!dk_cli_positional("prefill", a, &o->model_path)) return 2;
    }
    if (!o->model_path) {
        dk_prefill_usage(stderr);
        return 2;
    }
    if (!o->prompt == !o->prompt_file) {
        fprintf(stderr, "dashkit prefill: give exactly one of --prompt-file F or -p TEXT\n");
        return 2;
    }
    return -1;
}

/* ---- the comparison: the same prompt dense and with the method ---- */

typedef struct {
    const dk_policy *pol;
    dk_policy_params pp;
    dk_model *m;
    const dk_tokenizer *tok;
    char *text;
    int32_t *ctx, *q; /* (n_ctx) context with BOS, (n_q) question */
    int n_ctx, n_q;
    dk_ctx *cd, *cm;          /* dense, method */
    dk_prefill_result rd, rm; /* of the last repetition */
    double *wd, *wm;          /* (reps) prefill wall times */
    int32_t *ans_d, *ans_m;   /* (n_decode + 1) greedy continuations */
    int n_ans_d, n_ans_m;
} dk_prefill_cmp;

static void dk_prefill_cmp_free(dk_prefill_cmp *c) {
    dk_prefill_result_free(&c->rd);
    dk_prefill_result_free(&c->rm);
    DK_FREE_ALL(c->wd, c->wm, c->ans_d, c->ans_m, c->ctx, c->q, c->text);
    dk_ctx_free(c->cd);
    dk_ctx_free(c->cm);
    dk_model_free(c->m);
}

/* Model, parameters checked against it, prompt tokens, two contexts. 0, or the exit status after
 * the error line. */
static int dk_prefill_setup(const dk_prefill_args *o, dk_prefill_cmp *c, dk_err *e) {
    if (dk_model_load(o->model_path, o->tok_path, &c->m, e) || dk_model_tokenizer(c->m, &c->tok, e))
        goto fail;
    const dk_model_config *k = &c->m->cfg;
    if (dk_policy_params_validate(c->pol, &c->pp, k->n_layer, e)) {
        fprintf(stderr, "dashkit prefill: %s\n", e->msg);
        return 2;
    }
    if (o->prompt_file && !(c->text = dk_read_text(o->prompt_file, e))) goto fail;
    const char *ctext = c->text ? c->text : o->prompt;
    if (dk_tokenizer_encode(c->tok, ctext, strlen(ctext), true, &c->ctx, &c->n_ctx, e) ||
        (o->question &&
         dk_tokenizer_encode(c->tok, o->question, strlen(o->question), false, &c->q, &c->n_q, e)))
        goto fail;
    int n_total = c->n_ctx + c->n_q + (int)o->n_decode, beyond = 0;
    if (dk_model_check_context(c->m, n_total, &beyond, e)) {
        fprintf(stderr, "dashkit prefill: %s\n", e->msg);
        return 2;
    }
    if (beyond)
        fprintf(stderr,
                "dashkit prefill: warning: %d tokens (prompt + decode) exceed the model's training context "
                "of %d tokens\n",
                n_total, k->n_ctx_train);
    if (dk_ctx_create(c->m, n_total, &c->cd, e) || dk_ctx_create(c->m, n_total, &c->cm, e) ||
        dk_ctx_set_compute(c->cd, o->m.compute, e) || dk_ctx_set_compute(c->cm, o->m.compute, e))
        goto fail;
    return 0;
fail:
    fprintf(stderr, "dashkit prefill: %s\n", e->msg);
    return 1;
}

/* Dense and method alternately, reps times (the order flips every repetition; the results of the
 * last are kept), then the greedy continuations. 0, or 1 after the error line. */
static int dk_prefill_measure(const dk_prefill_args *o, dk_prefill_cmp *c, dk_err *e) {
    c->wd = malloc((size_t)o->reps * sizeof *c->wd);
    c->wm = malloc((size_t)o->reps * sizeof *c->wm);
    c->ans_d = malloc((size_t)(o->n_decode + 1) * sizeof *c->ans_d);
    c->ans_m = malloc((size_t)(o->n_decode + 1) * sizeof *c->ans_m);
    if (!c->wd || !c->wm || !c->ans_d || !c->ans_m) {
        fprintf(stderr, "dashkit prefill: out of memory\n");
        return 1;
    }
    for (long r = 0; r < o->reps; r++) {
        for (int h = 0; h < 2; h++) {
            bool dense = (h == 0) == (r % 2 == 0);
            dk_prefill_result_free(dense ? &c->rd : &c->rm);
            if (dense
                    ? dk_prefill_run(c->cd, NULL, NULL, c->ctx, c->n_ctx, c->q, c->n_q, NULL, &c->rd, e)
                    : dk_prefill_run(c->cm, c->pol, &c->pp, c->ctx, c->n_ctx, c->q, c->n_q, NULL, &c->rm, e))
                goto fail;
        }
        c->wd[r] = c->rd.ctx_wall_s + c->rd.q_wall_s;
        c->wm[r] = c->rm.ctx_wall_s + c->rm.q_wall_s;
    }
    int32_t stop = dk_tokenizer_eos(c->tok);
    int n = (int)o->n_decode;
    if (n > 0 &&
        (dk_prefill_decode_greedy(c->cd, dk_prefill_next_logits(&c->rd), n, stop, c->ans_d, &c->n_ans_d, e) ||
         dk_prefill_decode_greedy(c->cm, dk_prefill_next_logits(&c->rm), n, stop, c->ans_m, &c->n_ans_m, e)))
        goto fail;
    return 0;
fail:
    fprintf(stderr, "dashkit prefill: %s\n", e->msg);
    return 1;
}

/* ---- the report ---- */

typedef struct {
    dk_flops fd, fm; /* over the whole prompt (context + question) */
    double tfd, tfm, wall_d, wall_m, theo, kl;
    int l_s, kept, top1;
    char params[512];
} dk_prefill_summary;

static void dk_prefill_summarize(const dk_prefill_args *o, const dk_prefill_cmp *c, dk_prefill_summary *s) {
    const dk_model_config *k = &c->m->cfg;
    s->fd = c->rd.ctx_flops;
    s->fm = c->rm.ctx_flops;
    dk_flops_add(&s->fd, &c->rd.q_flops);
    dk_flops_add(&s->fm, &c->rm.q_flops);
    s->tfd = (double)dk_flops_total(&s->fd);
    s->tfm = (double)dk_flops_total(&s->fm);
    s->wall_d = dk_prefill_median(c->wd, (int)o->reps);
    s->wall_m = dk_prefill_median(c->wm, (int)o->reps);
    s->l_s = dk_policy_first_layer(c->pol, &c->pp, k->n_layer);
    /* tokens kept at the first decision */
    s->kept = s->l_s < k->n_layer && c->rm.policy[s->l_s].decided ? c->rm.policy[s->l_s].n_kept : c->n_ctx;
    s->theo = dk_prefill_theoretical_speedup(k, c->n_ctx, s->l_s, s->kept);
    const float *ld = dk_prefill_next_logits(&c->rd), *lm = dk_prefill_next_logits(&c->rm);
    s->kl = dk_metric_kl_logits(ld, lm, k->n_vocab);
    s->top1 = dk_metric_top1_agree(ld, lm, k->n_vocab);
    dk_policy_params_format(c->pol, &c->pp, s->params, sizeof s->params);
}

static void dk_prefill_answers(const dk_prefill_args *o, const dk_prefill_cmp *c, cJSON *js) {
    if (o->n_decode <= 0) return;
    int32_t prev = c->n_q ? c->q[c->n_q - 1] : c->ctx[c->n_ctx - 1];
    dk_print_answer(c->tok, "answer_dense", c->ans_d, c->n_ans_d, prev, js);
    dk_print_answer(c->tok, "answer_method", c->ans_m, c->n_ans_m, prev, js);
}

static cJSON *dk_prefill_json_layer(const dk_prefill_cmp *c, int l) {
    cJSON *o = cJSON_CreateObject();
    const dk_policy_layer_stats *ps = &c->rm.policy[l];
    const dk_layer_stats *d = &c->rd.layers[l], *m = &c->rm.layers[l];
    cJSON_AddNumberToObject(o, "layer", l);
    cJSON_AddNumberToObject(o, "active_dense", d->n_active);
    cJSON_AddNumberToObject(o, "active", m->n_active);
    cJSON_AddNumberToObject(o, "kv_len", m->kv_len);
    cJSON_AddNumberToObject(o, "flops_dense", (double)dk_flops_total(&d->flops));
    cJSON_AddNumberToObject(o, "flops_method", (double)dk_flops_total(&m->flops));
    cJSON_AddNumberToObject(o, "flops_halt", (double)m->flops.c[DK_FLOPS_HALT]);
    cJSON_AddNumberToObject(o, "wall_dense_s", d->wall_s);
    cJSON_AddNumberToObject(o, "wall_method_s", m->wall_s);
    cJSON *jc = cJSON_AddObjectToObject(o, "flops_method_by_component");
    for (int i = 0; i < DK_FLOPS_COUNT; i++)
        cJSON_AddNumberToObject(jc, dk_flops_component_name((dk_flops_component)i), (double)m->flops.c[i]);
    cJSON_AddBoolToObject(o, "decided", ps->decided);
    if (ps->decided) {
        cJSON_AddNumberToObject(o, "kept", ps->n_kept);
        cJSON_AddNumberToObject(o, "score_min", ps->score_min);
        cJSON_AddNumberToObject(o, "score_median", ps->score_median);
        cJSON_AddNumberToObject(o, "score_max", ps->score_max);
    }
    return o;
}

/* One JSON object on stdout; false when out of memory. */
static bool dk_prefill_print_json(const dk_prefill_args *o, const dk_prefill_cmp *c,
                                  const dk_prefill_summary *s) {
    const dk_model_config *k = &c->m->cfg;
    cJSON *js = cJSON_CreateObject();
    cJSON_AddStringToObject(js, "model", c->m->name);
    cJSON_AddStringToObject(js, "method", c->pol->name);
    cJSON *jp = cJSON_AddObjectToObject(js, "params");
    for (const dk_policy_param_id *pi = c->pol->params; *pi != DK_POLICY_PARAM_COUNT; pi++) {
        const dk_policy_param *d = dk_policy_param_info(*pi);
        if (*pi == DK_POLICY_PARAM_RELATIVE) cJSON_AddBoolToObject(jp, d->name, c->pp.relative);
        else cJSON_AddNumberToObject(jp, d->name, dk_policy_params_get(&c->pp, *pi));
    }
    cJSON_AddNumberToObject(js, "n_layer", k->n_layer);
    cJSON_AddNumberToObject(js, "context_tokens", c->n_ctx);
    cJSON_AddNumberToObject(js, "question_tokens", c->n_q);
    cJSON_AddNumberToObject(js, "l_s", s->l_s);
    cJSON_AddNumberToObject(js, "kept_tokens", s->kept);
    cJSON *jl = cJSON_AddArrayToObject(js, "layers");
    for (int l = 0; l < k->n_layer; l++) cJSON_AddItemToArray(jl, dk_prefill_json_layer(c, l));
    cJSON *jf = cJSON_AddObjectToObject(js, "flops_by_component");
    for (int i = 0; i < DK_FLOPS_COUNT; i++) {
        cJSON *jo = cJSON_AddObjectToObject(jf, dk_flops_component_name((dk_flops_component)i));
        cJSON_AddNumberToObject(jo, "dense", (double)s->fd.c[i]);
        cJSON_AddNumberToObject(jo, "method", (double)s->fm.c[i]);
    }
    cJSON_AddNumberToObject(js, "total_flops_dense", s->tfd);
    cJSON_AddNumberToObject(js, "total_flops_method", s->tfm);
    cJSON_AddNumberToObject(js, "context_flops_dense", (double)dk_flops_total(&c->rd.ctx_flops));
    cJSON_AddNumberToObject(js, "context_flops_method", (double)dk_flops_total(&c->rm.ctx_flops));
    cJSON_AddNumberToObject(js, "wall_dense_s", s->wall_d);
    cJSON_AddNumberToObject(js, "wall_method_s", s->wall_m);
    cJSON_AddNumberToObject(js, "flops_speedup", s->tfd / s->tfm);
    cJSON_AddNumberToObject(js, "wall_speedup", s->wall_d / s->wall_m);
    cJSON_AddNumberToObject(js, "theoretical_speedup", s->theo);
    cJSON_AddNumberToObject(js, "kl_divergence", s->kl);
    cJSON_AddNumberToObject(js, "top1_agreement", s->top1);
    dk_prefill_answers(o, c, js);
    char *out = cJSON_PrintUnformatted(js);
    cJSON_Delete(js);
    if (!out) return false;
    printf("%s\n", out);
    free(out);
    return true;
}

static void dk_prefill_print_text(const dk_prefill_args *o, const dk_prefill_cmp *c,
                                  const dk_prefill_summary *s) {
    const dk_model_config *k = &c->m->cfg;
    printf("model: %s\nmethod: %s\nparams: %s\nn_layer: %d\ncontext_tokens: %d\nquestion_tokens: %d\nl_s: "
           "%d\nkept_tokens: %d\n",
           c->m->name, c->pol->name, s->params, k->n_layer, c->n_ctx, c->n_q, s->l_s, s->kept);
    printf("%5s %8s %8s %8s %14s %14s %10s %10s %10s %11s %11s %11s\n", "layer", "active_d", "active",
           "kv_len", "flops_dense", "flops_method", "flops_halt", "wall_d_ms", "wall_m_ms", "score_min",
           "score_med", "score_max");
    for (int l = 0; l < k->n_layer; l++) {
        const dk_policy_layer_stats *ps = &c->rm.policy[l];
        const dk_layer_stats *d = &c->rd.layers[l], *m = &c->rm.layers[l];
        printf("%5d %8d %8d %8d %14lld %14lld %10lld %10.3f %10.3f", l, d->n_active, m->n_active, m->kv_len,
               (long long)dk_flops_total(&d->flops), (long long)dk_flops_total(&m->flops),
               (long long)m->flops.c[DK_FLOPS_HALT], 1e3 * d->wall_s, 1e3 * m->wall_s);
        if (ps->decided) printf(" %11.4g %11.4g %11.4g\n", ps->score_min, ps->score_median, ps->score_max);
        else printf(" %11s %11s %11s\n", "-", "-", "-");
    }
    printf("total_flops_dense: %.0f\ntotal_flops_method: %.0f\n", s->tfd, s->tfm);
    printf("wall_dense_s: %.6f\nwall_method_s: %.6f\n", s->wall_d, s->wall_m);
    printf("flops_speedup: %.4f\nwall_speedup: %.4f\ntheoretical_speedup: %.4f\n", s->tfd / s->tfm,
           s->wall_d / s->wall_m, s->theo);
    printf("kl_divergence: %.6g\ntop1_agreement: %d\n", s->kl, s->top1);
    dk_prefill_answers(o, c, NULL);
}

int dk_cmd_prefill(int argc, char **argv) {
    dk_prefill_args o;
    int rc = dk_prefill_parse(argc, argv, &o);
    if (rc >= 0) return rc;
    /* method and parameters (dash + tau/keep select the threshold/budget variants) */
    dk_prefill_cmp c = {0};
    if (!dk_cli_policy_resolve("prefill", o.m.method, o.m.pa, o.m.n_pa, &c.pol, &c.pp)) return 2;
    dk_err e = {{0}};
    if (!(rc = dk_prefill_setup(&o, &c, &e)) && !(rc = dk_prefill_measure(&o, &c, &e))) {
        dk_prefill_summary s;
        dk_prefill_summarize(&o, &c, &s);
        if (!o.json) dk_prefill_print_text(&o, &c, &s);
        else if (!dk_prefill_print_json(&o, &c, &s)) {
            fprintf(stderr, "dashkit prefill: out of memory\n");
            rc = 1;
        }
    }
    dk_prefill_cmp_free(&c);
    return rc;
}
