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
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void dk_prefill_usage(FILE *f) {
    fprintf(f, "usage: dashkit prefill MODEL (--prompt-file F | -p TEXT) [--question TEXT] [--method NAME]\n"
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
               "  --reps R           timed repetitions of both prefills, medians reported (default 1)\n"
               DK_CLI_COMPUTE_HELP
               "  --json             one JSON object instead of text\n"
               "  -h, --help         this help\n\n"
               "Method parameters (each method accepts a subset; see README):\n",
            dk_policy_names());
    dk_cli_param_help(f, 9, false);
    fprintf(f, "\nAccepted parameters per method:\n");
    for (int i = 0; i < dk_policy_count(); i++) {
        const dk_policy *p = dk_policy_at(i);
        fprintf(f, "  %-10s", p->name);
        for (const dk_policy_param_id *q = p->params; *q != DK_POLICY_PARAM_COUNT; q++) fprintf(f, " %s", dk_policy_param_info(*q)->name);
        fprintf(f, "%s  — %s\n", p->params[0] == DK_POLICY_PARAM_COUNT ? " (none)" : "", p->summary);
    }
}

static char *dk_read_text(const char *path, dk_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) { dk_fail(e, DK_ERR_IO, "%s: cannot open prompt file", path); return NULL; }
    size_t cap = 1 << 16, n = 0, r;
    char *s = malloc(cap);
    while (s && (r = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n < 2) { char *t = realloc(s, cap *= 2); if (!t) { free(s); s = NULL; } else s = t; }
    }
    bool bad = ferror(f);
    fclose(f);
    if (!s || bad) { free(s); dk_fail(e, DK_ERR_IO, "%s: cannot read prompt file", path); return NULL; }
    s[n] = 0;
    return s;
}

static void dk_print_answer(const dk_tokenizer *tok, const char *key, const int32_t *t, int n, int32_t prev, cJSON *js) {
    size_t cap = 64, len = 0;
    char *s = malloc(cap);
    for (int i = 0; s && i < n; i++) {
        size_t pl;
        const char *piece = dk_tokenizer_decode_piece(tok, prev, t[i], &pl);
        prev = t[i];
        if (pl == 1 && !(isprint((unsigned char)piece[0]) || isspace((unsigned char)piece[0]))) continue;
        if (len + pl + 1 > cap) { while (len + pl + 1 > cap) cap *= 2; char *r = realloc(s, cap); if (!r) { free(s); s = NULL; break; } s = r; }
        memcpy(s + len, piece, pl);
        len += pl;
    }
    if (!s) return;
    s[len] = 0;
    if (js) cJSON_AddStringToObject(js, key, s);
    else {
        for (char *c = s; *c; c++) if (*c == '\n') *c = ' ';
        printf("%s: %s\n", key, s);
    }
    free(s);
}

int dk_cmd_prefill(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *prompt = NULL, *prompt_file = NULL, *question = NULL;
    const char *method = "dash";
    long reps = 1, n_decode = 0;
    dk_compute compute = DK_COMPUTE_F32;
    bool json = false;
    dk_cli_param_arg pa[DK_POLICY_PARAM_COUNT];
    int n_pa = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { dk_prefill_usage(stdout); return 0; }
        if (!strcmp(a, "--json")) { json = true; continue; }
        const dk_policy_param *pd = !strncmp(a, "--", 2) ? dk_policy_param_find(a + 2) : NULL;
        bool takes = pd || !strcmp(a, "-z") || !strcmp(a, "-p") || !strcmp(a, "--prompt-file") || !strcmp(a, "--question") ||
                     !strcmp(a, "--method") || !strcmp(a, "--reps") || !strcmp(a, "--decode") || !strcmp(a, "--compute");
        if (takes && i + 1 >= argc) { fprintf(stderr, "dashkit prefill: option %s needs a value\n", a); return 2; }
        if (pd) {
            if (!dk_cli_param_arg_add("prefill", a, pd, argv[++i], pa, &n_pa)) return 2;
        } else if (!strcmp(a, "-z")) tok_path = argv[++i];
        else if (!strcmp(a, "-p")) prompt = argv[++i];
        else if (!strcmp(a, "--prompt-file")) prompt_file = argv[++i];
        else if (!strcmp(a, "--question")) question = argv[++i];
        else if (!strcmp(a, "--method")) method = argv[++i];
        else if (!strcmp(a, "--compute")) { if (!dk_cli_compute_arg("prefill", argv[++i], &compute)) return 2; }
        else if (!strcmp(a, "--reps") || !strcmp(a, "--decode")) {
            char *end;
            const char *v = argv[++i];
            long x = strtol(v, &end, 10);
            bool isreps = !strcmp(a, "--reps");
            if (*end || end == v || x < (isreps ? 1 : 0) || x > 100000) {
                fprintf(stderr, "dashkit prefill: %s '%s' is not an integer in %d..100000\n", dk_cli_esc(a), dk_cli_esc(v), isreps ? 1 : 0);
                return 2;
            }
            if (isreps) reps = x; else n_decode = x;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "dashkit prefill: unknown option '%s' (see --help)\n", dk_cli_esc(a));
            return 2;
        } else if (!model_path) model_path = a;
        else { fprintf(stderr, "dashkit prefill: unexpected argument '%s'\n", dk_cli_esc(a)); return 2; }
    }
    if (!model_path) { dk_prefill_usage(stderr); return 2; }
    if (!prompt == !prompt_file) { fprintf(stderr, "dashkit prefill: give exactly one of --prompt-file F or -p TEXT\n"); return 2; }

    /* method and parameters (dash + tau/keep select the threshold/budget variants) */
    dk_err e = {{0}};
    const dk_policy *pol;
    dk_policy_params pp;
    if (!dk_cli_policy_resolve("prefill", method, pa, n_pa, &pol, &pp)) return 2;

    dk_model *m = NULL;
    dk_ctx *cd = NULL, *cm = NULL;
    char *text = NULL;
    int32_t *ctx = NULL, *q = NULL, *ans_d = NULL, *ans_m = NULL;
    int n_ctx = 0, n_q = 0, rc = 1, n_ans_d = 0, n_ans_m = 0;
    dk_prefill_result rd = {0}, rm = {0};
    double *wd = NULL, *wm = NULL;
    cJSON *js = NULL;
    const dk_tokenizer *tok;
    if (dk_model_load(model_path, tok_path, &m, &e) || dk_model_tokenizer(m, &tok, &e)) {
        fprintf(stderr, "dashkit prefill: %s\n", e.msg);
        goto done;
    }
    const dk_model_config *k = &m->cfg;
    if (dk_policy_params_validate(pol, &pp, k->n_layer, &e)) { fprintf(stderr, "dashkit prefill: %s\n", e.msg); rc = 2; goto done; }
    if (prompt_file && !(text = dk_read_text(prompt_file, &e))) { fprintf(stderr, "dashkit prefill: %s\n", e.msg); goto done; }
    const char *ctext = text ? text : prompt;
    if (dk_tokenizer_encode(tok, ctext, strlen(ctext), true, &ctx, &n_ctx, &e) ||
        (question && dk_tokenizer_encode(tok, question, strlen(question), false, &q, &n_q, &e))) {
        fprintf(stderr, "dashkit prefill: %s\n", e.msg);
        goto done;
    }
    int n_total = n_ctx + n_q + (int)n_decode, beyond = 0;
    if (dk_model_check_context(m, n_total, &beyond, &e)) { fprintf(stderr, "dashkit prefill: %s\n", e.msg); rc = 2; goto done; }
    if (beyond)
        fprintf(stderr, "dashkit prefill: warning: %d tokens (prompt + decode) exceed the model's training context of %d tokens\n",
                n_total, k->n_ctx_train);
    if (dk_ctx_create(m, n_total, &cd, &e) || dk_ctx_create(m, n_total, &cm, &e) || dk_ctx_set_compute(cd, compute, &e) ||
        dk_ctx_set_compute(cm, compute, &e)) { fprintf(stderr, "dashkit prefill: %s\n", e.msg); goto done; }
    wd = malloc((size_t)reps * sizeof *wd);
    wm = malloc((size_t)reps * sizeof *wm);
    ans_d = malloc((size_t)(n_decode + 1) * sizeof *ans_d);
    ans_m = malloc((size_t)(n_decode + 1) * sizeof *ans_m);
    if (!wd || !wm || !ans_d || !ans_m) { fprintf(stderr, "dashkit prefill: out of memory\n"); goto done; }

    /* dense and method alternately; the results of the last repetition are reported */
    for (long r = 0; r < reps; r++) {
        for (int h = 0; h < 2; h++) { /* the order flips every repetition */
            bool dense = (h == 0) == (r % 2 == 0);
            dk_prefill_result_free(dense ? &rd : &rm);
            if (dense ? dk_prefill_run(cd, NULL, NULL, ctx, n_ctx, q, n_q, NULL, &rd, &e)
                      : dk_prefill_run(cm, pol, &pp, ctx, n_ctx, q, n_q, NULL, &rm, &e)) {
                fprintf(stderr, "dashkit prefill: %s\n", e.msg);
                goto done;
            }
        }
        wd[r] = rd.ctx_wall_s + rd.q_wall_s;
        wm[r] = rm.ctx_wall_s + rm.q_wall_s;
    }
    int32_t stop = dk_tokenizer_eos(tok);
    if (n_decode > 0 && (dk_prefill_decode_greedy(cd, dk_prefill_next_logits(&rd), (int)n_decode, stop, ans_d, &n_ans_d, &e) ||
                         dk_prefill_decode_greedy(cm, dk_prefill_next_logits(&rm), (int)n_decode, stop, ans_m, &n_ans_m, &e))) {
        fprintf(stderr, "dashkit prefill: %s\n", e.msg);
        goto done;
    }

    /* totals over the whole prompt (context + question) */
    dk_flops fd = rd.ctx_flops, fm = rm.ctx_flops;
    dk_flops_add(&fd, &rd.q_flops);
    dk_flops_add(&fm, &rm.q_flops);
    double tfd = (double)dk_flops_total(&fd), tfm = (double)dk_flops_total(&fm);
    double wall_d = dk_prefill_median(wd, (int)reps), wall_m = dk_prefill_median(wm, (int)reps);
    int l_s = dk_policy_first_layer(pol, &pp, k->n_layer);
    int kept = l_s < k->n_layer && rm.policy[l_s].decided ? rm.policy[l_s].n_kept : n_ctx; /* at the first decision */
    double theo = dk_prefill_theoretical_speedup(k, n_ctx, l_s, kept);
    const float *ld = dk_prefill_next_logits(&rd), *lm = dk_prefill_next_logits(&rm);
    double kl = dk_metric_kl_logits(ld, lm, k->n_vocab);
    int top1 = dk_metric_top1_agree(ld, lm, k->n_vocab);
    char params[512];
    dk_policy_params_format(pol, &pp, params, sizeof params);

    if (json) {
        js = cJSON_CreateObject();
        cJSON_AddStringToObject(js, "model", m->name);
        cJSON_AddStringToObject(js, "method", pol->name);
        cJSON *jp = cJSON_AddObjectToObject(js, "params");
        for (const dk_policy_param_id *pi = pol->params; *pi != DK_POLICY_PARAM_COUNT; pi++) {
            const dk_policy_param *d = dk_policy_param_info(*pi);
            if (*pi == DK_POLICY_PARAM_RELATIVE) cJSON_AddBoolToObject(jp, d->name, pp.relative);
            else cJSON_AddNumberToObject(jp, d->name, dk_policy_params_get(&pp, *pi));
        }
        cJSON_AddNumberToObject(js, "n_layer", k->n_layer);
        cJSON_AddNumberToObject(js, "context_tokens", n_ctx);
        cJSON_AddNumberToObject(js, "question_tokens", n_q);
        cJSON_AddNumberToObject(js, "l_s", l_s);
        cJSON_AddNumberToObject(js, "kept_tokens", kept);
        cJSON *jl = cJSON_AddArrayToObject(js, "layers");
        for (int l = 0; l < k->n_layer; l++) {
            cJSON *o = cJSON_CreateObject();
            const dk_policy_layer_stats *ps = &rm.policy[l];
            cJSON_AddNumberToObject(o, "layer", l);
            cJSON_AddNumberToObject(o, "active_dense", rd.layers[l].n_active);
            cJSON_AddNumberToObject(o, "active", rm.layers[l].n_active);
            cJSON_AddNumberToObject(o, "kv_len", rm.layers[l].kv_len);
            cJSON_AddNumberToObject(o, "flops_dense", (double)dk_flops_total(&rd.layers[l].flops));
            cJSON_AddNumberToObject(o, "flops_method", (double)dk_flops_total(&rm.layers[l].flops));
            cJSON_AddNumberToObject(o, "flops_halt", (double)rm.layers[l].flops.c[DK_FLOPS_HALT]);
            cJSON_AddNumberToObject(o, "wall_dense_s", rd.layers[l].wall_s);
            cJSON_AddNumberToObject(o, "wall_method_s", rm.layers[l].wall_s);
            cJSON *jc = cJSON_AddObjectToObject(o, "flops_method_by_component");
            for (int i = 0; i < DK_FLOPS_COUNT; i++)
                cJSON_AddNumberToObject(jc, dk_flops_component_name((dk_flops_component)i), (double)rm.layers[l].flops.c[i]);
            cJSON_AddBoolToObject(o, "decided", ps->decided);
            if (ps->decided) {
                cJSON_AddNumberToObject(o, "kept", ps->n_kept);
                cJSON_AddNumberToObject(o, "score_min", ps->score_min);
                cJSON_AddNumberToObject(o, "score_median", ps->score_median);
                cJSON_AddNumberToObject(o, "score_max", ps->score_max);
            }
            cJSON_AddItemToArray(jl, o);
        }
        cJSON *jf = cJSON_AddObjectToObject(js, "flops_by_component");
        for (int i = 0; i < DK_FLOPS_COUNT; i++) {
            cJSON *o = cJSON_AddObjectToObject(jf, dk_flops_component_name((dk_flops_component)i));
            cJSON_AddNumberToObject(o, "dense", (double)fd.c[i]);
            cJSON_AddNumberToObject(o, "method", (double)fm.c[i]);
        }
        cJSON_AddNumberToObject(js, "total_flops_dense", tfd);
        cJSON_AddNumberToObject(js, "total_flops_method", tfm);
        cJSON_AddNumberToObject(js, "context_flops_dense", (double)dk_flops_total(&rd.ctx_flops));
        cJSON_AddNumberToObject(js, "context_flops_method", (double)dk_flops_total(&rm.ctx_flops));
        cJSON_AddNumberToObject(js, "wall_dense_s", wall_d);
        cJSON_AddNumberToObject(js, "wall_method_s", wall_m);
        cJSON_AddNumberToObject(js, "flops_speedup", tfd / tfm);
        cJSON_AddNumberToObject(js, "wall_speedup", wall_d / wall_m);
        cJSON_AddNumberToObject(js, "theoretical_speedup", theo);
        cJSON_AddNumberToObject(js, "kl_divergence", kl);
        cJSON_AddNumberToObject(js, "top1_agreement", top1);
        if (n_decode > 0) {
            dk_print_answer(tok, "answer_dense", ans_d, n_ans_d, n_q ? q[n_q - 1] : ctx[n_ctx - 1], js);
            dk_print_answer(tok, "answer_method", ans_m, n_ans_m, n_q ? q[n_q - 1] : ctx[n_ctx - 1], js);
        }
        char *out = cJSON_PrintUnformatted(js);
        if (!out) { fprintf(stderr, "dashkit prefill: out of memory\n"); goto done; }
        printf("%s\n", out);
        free(out);
    } else {
        printf("model: %s\nmethod: %s\nparams: %s\nn_layer: %d\ncontext_tokens: %d\nquestion_tokens: %d\nl_s: %d\nkept_tokens: %d\n",
               m->name, pol->name, params, k->n_layer, n_ctx, n_q, l_s, kept);
        printf("%5s %8s %8s %8s %14s %14s %10s %10s %10s %11s %11s %11s\n", "layer", "active_d", "active", "kv_len", "flops_dense",
               "flops_method", "flops_halt", "wall_d_ms", "wall_m_ms", "score_min", "score_med", "score_max");
        for (int l = 0; l < k->n_layer; l++) {
            const dk_policy_layer_stats *ps = &rm.policy[l];
            printf("%5d %8d %8d %8d %14lld %14lld %10lld %10.3f %10.3f", l, rd.layers[l].n_active, rm.layers[l].n_active,
                   rm.layers[l].kv_len, (long long)dk_flops_total(&rd.layers[l].flops), (long long)dk_flops_total(&rm.layers[l].flops),
                   (long long)rm.layers[l].flops.c[DK_FLOPS_HALT], 1e3 * rd.layers[l].wall_s, 1e3 * rm.layers[l].wall_s);
            if (ps->decided) printf(" %11.4g %11.4g %11.4g\n", ps->score_min, ps->score_median, ps->score_max);
            else printf(" %11s %11s %11s\n", "-", "-", "-");
        }
        printf("total_flops_dense: %.0f\ntotal_flops_method: %.0f\n", tfd, tfm);
        printf("wall_dense_s: %.6f\nwall_method_s: %.6f\n", wall_d, wall_m);
        printf("flops_speedup: %.4f\nwall_speedup: %.4f\ntheoretical_speedup: %.4f\n", tfd / tfm, wall_d / wall_m, theo);
        printf("kl_divergence: %.6g\ntop1_agreement: %d\n", kl, top1);
        if (n_decode > 0) {
            dk_print_answer(tok, "answer_dense", ans_d, n_ans_d, n_q ? q[n_q - 1] : ctx[n_ctx - 1], NULL);
            dk_print_answer(tok, "answer_method", ans_m, n_ans_m, n_q ? q[n_q - 1] : ctx[n_ctx - 1], NULL);
        }
    }
    rc = 0;
done:
    cJSON_Delete(js);
    dk_prefill_result_free(&rd);
    dk_prefill_result_free(&rm);
    free(wd); free(wm); free(ans_d); free(ans_m); free(ctx); free(q); free(text);
    dk_ctx_free(cd);
    dk_ctx_free(cm);
    dk_model_free(m);
    return rc;
}
