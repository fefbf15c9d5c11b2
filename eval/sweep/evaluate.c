/* evaluate.c — one sample, dense and with a method: prefill, teacher forcing, greedy decode,
 * score, fidelity (see evaluate.h for the protocol). */
#include "evaluate.h"
#include "chat.h"
#include "metrics.h"
#include "prefill.h"
#include "tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- prompt ---- */

void dk_eval_prompt_free(dk_eval_prompt *p) {
    if (!p) return;
    dk_prompt_free(&p->p);
    free(p->gold);
    memset(p, 0, sizeof *p);
}

static void dk_eval_add_stop(dk_eval_prompt *p, int32_t t) {
    if (t < 0) return;
    for (int i = 0; i < p->n_stop; i++)
        if (p->stop[i] == t) return;
    if (p->n_stop < DK_EVAL_MAX_STOP) p->stop[p->n_stop++] = t;
}

bool dk_eval_chat_applies(const char *dataset) {
    static const char *const raw[] = {"trec", "triviaqa", "samsum", "lsht", "lcc", "repobench-p"};
    if (!dataset) return true;
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        size_t n = strlen(raw[i]);
        /* LongBench-E files are <dataset>_e.jsonl: the same rule */
        if (!strncmp(dataset, raw[i], n) && (!dataset[n] || !strcmp(dataset + n, "_e"))) return false;
    }
    return true;
}

static bool dk_eval_is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Tokens of text (no BOS unless bos) that ids starts with (from_end: ends with); 0 if it does not. */
static dk_status dk_eval_affix_tokens(const dk_tokenizer *tok, const char *text, bool bos, const int32_t *ids,
                                      size_t n, bool from_end, size_t *out, dk_err *e) {
    int32_t *t = NULL;
    int k = 0;
    *out = 0;
    dk_status st = dk_tokenizer_encode(tok, text, strlen(text), bos, &t, &k, e);
    if (st) return st;
    size_t m = 0;
    while (m < (size_t)k && m < n && (from_end ? ids[n - 1 - m] == t[k - 1 - m] : ids[m] == t[m])) m++;
    *out = m;
    free(t);
    return DK_OK;
}

dk_status dk_eval_prompt_build(const dk_model *m, const dk_sample *s, size_t budget, dk_eval_prompt *out,
                               dk_err *e) {
    return dk_eval_prompt_build_chat(m, s, budget, NULL, out, e);
}

dk_status dk_eval_prompt_build_chat(const dk_model *m, const dk_sample *s, size_t budget,
                                    const dk_chat_template *chat, dk_eval_prompt *out, dk_err *e) {
    memset(out, 0, sizeof *out);
    const dk_tokenizer *tok;
    dk_status st = dk_model_tokenizer(m, &tok, e);
    if (st) return st;
    const char *id = s->id ? s->id : "?";
    if (budget == 1) return dk_fail(e, DK_ERR_ARG, "budget of 1 token: middle truncation needs at least 2");
    dk_tok_if ti = dk_tok_if_engine(tok);
    int add_bos = dk_tokenizer_bos(tok) >= 0;
    if (!chat || chat->kind == DK_CHAT_TEMPLATE_NONE || !dk_eval_chat_applies(s->dataset)) {
        if ((st = dk_sample_build_prompt(s, &ti, budget, add_bos, &out->p, e))) return st;
    } else {
        /* LongBench's pred.py: truncate the raw prompt to budget tokens in the middle, then wrap it
         * in the template. Here: prefix + context (haltable) | question + suffix (never halted),
         * tokenised as one text; the middle truncation applies to the content tokens only. */
        dk_chat_parts parts;
        if ((st = dk_chat_template_parts(chat, &parts, e))) return st;
        const char *cx = s->context, *q = s->question;
        size_t lc = strlen(cx), lq = strlen(q);
        if (parts.trim_content) { /* strip the whole content (context + question) */
            while (lc && dk_eval_is_space(*cx)) {
                cx++;
                lc--;
            }
            if (!lc)
                while (lq && dk_eval_is_space(*q)) {
                    q++;
                    lq--;
                }
            while (lq && dk_eval_is_space(q[lq - 1])) lq--;
            if (!lq)
                while (lc && dk_eval_is_space(cx[lc - 1])) lc--;
        }
        if (parts.bos_in_text) add_bos = 0;
        dk_sample t = *s;
        t.context = malloc(parts.prefix_len + lc + 1);
        t.question = malloc(lq + parts.suffix_len + 1);
        if (!t.context || !t.question) {
            st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
        } else {
            memcpy(t.context, parts.prefix, parts.prefix_len);
            memcpy(t.context + parts.prefix_len, cx, lc);
            t.context[parts.prefix_len + lc] = 0;
            memcpy(t.question, q, lq);
            memcpy(t.question + lq, parts.suffix, parts.suffix_len);
            t.question[lq + parts.suffix_len] = 0;
            st = dk_sample_build_prompt(&t, &ti, 0, add_bos, &out->p, e);
        }
        size_t np = 0, ns = 0;
        if (!st) st = dk_eval_affix_tokens(tok, parts.prefix, add_bos, out->p.ids, out->p.n, false, &np, e);
        if (!st) st = dk_eval_affix_tokens(tok, parts.suffix, false, out->p.ids, out->p.n, true, &ns, e);
        out->n_template = (int)(np + ns);
        size_t n = out->p.n, nc = n - np - ns; /* content tokens ids[np .. n-ns) */
        if (!st && budget > 0 && np + ns <= n && nc > budget) {
            size_t half = budget / 2, tail = np + nc - half, split = out->p.n_context;
            int32_t *ids = out->p.ids;
            memmove(ids + np + half, ids + tail, (half + ns) * sizeof *ids);
            out->p.n_context = split < np + half ? split
                               : split >= tail   ? split - (tail - np - half)
                                                 : np + half;
            out->p.n = np + 2 * half + ns;
            out->p.n_dropped = out->p.n_full - out->p.n;
        }
        free(t.context);
        free(t.question);
        if (!st) {
            out->chat = chat->kind;
            /* the end-of-turn token ends generation (pred.py: the model's eos for its chat format) */
            static const char *const eot[] = {NULL, "<|im_end|>", "<|eot_id|>", NULL};
            const char *et = eot[chat->kind];
            int32_t *x = NULL;
            int k = 0;
            if (et && dk_tokenizer_encode(tok, et, strlen(et), false, &x, &k, e) == DK_OK && k == 1)
                dk_eval_add_stop(out, x[0]);
            free(x);
        }
        dk_chat_parts_free(&parts);
        if (st) {
            dk_eval_prompt_free(out);
            return st;
        }
    }
    out->s = s;
    out->n_context = (int)out->p.n_context;
    out->n_question = (int)(out->p.n - out->p.n_context);
    if (out->n_context <= 0) {
        dk_eval_prompt_free(out);
        return dk_fail(e, DK_ERR_ARG, "sample %s: the prompt has no context tokens to prefill", id);
    }
    if (s->n_answers > 0 && s->answers[0][0]) {
        int n;
        if ((st = dk_tokenizer_encode(tok, s->answers[0], strlen(s->answers[0]), false, &out->gold, &n, e))) {
            dk_eval_prompt_free(out);
            return st;
        }
        out->n_gold = n;
    }
    dk_eval_add_stop(out, dk_tokenizer_eos(tok));
    dk_eval_add_stop(out, dk_tokenizer_bos(tok)); /* llama2.c models emit BOS between documents */
    if (s->dataset && !strcmp(s->dataset, "samsum")) {
        /* pred.py: eos_token_id = [eos, tokenizer.encode("\n")[-1]], min_length = prompt + 1 */
        int32_t *nl = NULL;
        int n = 0;
        if ((st = dk_tokenizer_encode(tok, "\n", 1, false, &nl, &n, e))) {
            dk_eval_prompt_free(out);
            return st;
        }
        if (n > 0) dk_eval_add_stop(out, nl[n - 1]);
        free(nl);
        out->min_new_tokens = 1;
    }
    out->max_new_tokens = s->max_new_tokens > 0 ? s->max_new_tokens : 0;
    return DK_OK;
}

int dk_eval_prompt_ctx_tokens(const dk_eval_prompt *p) {
    int extra = p->max_new_tokens > p->n_gold ? p->max_new_tokens : p->n_gold;
    return (int)p->p.n + extra;
}

size_t dk_eval_default_budget(const dk_model *m, const dk_sample *s) {
    int n = m->cfg.n_ctx_train;
    if (n <= 0) return 0;
    int b = n - (s->max_new_tokens > 0 ? s->max_new_tokens : 0);
    return (size_t)(b >= n / 2 && b >= 2 ? b : (n / 2 >= 2 ? n / 2 : 2));
}

dk_status dk_eval_ctx_reserve(const dk_model *m, dk_ctx **c, int n_tokens, dk_err *e) {
    dk_status st = dk_model_check_context(m, n_tokens, NULL, e); /* the training-context rule (model.h) */
    if (st) return st;
    if (*c && dk_ctx_model(*c) == m && dk_ctx_n_ctx_max(*c) >= n_tokens) return DK_OK;
    dk_ctx_free(*c);
    *c = NULL;
    int n = (n_tokens + 255) / 256 * 256; /* fewer re-creations across samples of similar length */
    return dk_ctx_create(m, n, c, e);
}

dk_status dk_eval_warmup(dk_ctx *c, const dk_eval_prompt *p, dk_err *e) {
    dk_prefill_result r;
    dk_status st = dk_prefill_run(c, NULL, NULL, p->p.ids, p->n_context, p->p.ids + p->n_context,
                                  p->n_question, NULL, &r, e);
    if (!st) dk_prefill_result_free(&r);
    return st;
}

/* ---- results ---- */

void dk_eval_result_free(dk_eval_result *r) {
    if (!r) return;
    DK_FREE_ALL(r->active, r->layers, r->policy, r->delta, r->gen, r->prediction, r->logits, r->gold);
    memset(r, 0, sizeof *r);
}

dk_flops dk_eval_result_flops(const dk_eval_result *r) {
    dk_flops f = r->flops_ctx;
    dk_flops_add(&f, &r->flops_q);
    return f;
}

void dk_eval_ref_from_result(const dk_eval_result *d, dk_eval_ref *ref) {
    ref->n_vocab = d->n_vocab;
    ref->n_rows = d->n_rows;
    ref->logits = d->logits;
    ref->flops = d->flops;
    ref->wall_s = d->wall_s;
    ref->prediction = d->prediction;
}

static void dk_eval_unset_compare(dk_eval_result *r) {
    r->flops_dense = -1;
    r->wall_dense_s = r->flops_speedup = r->wall_speedup = NAN;
    r->kl = r->kl_max = r->top1 = r->kl_first = r->nll_dense = r->nll_delta = NAN;
    r->top1_first = r->same_prediction = -1;
}

/* ---- scoring ---- */

static dk_status dk_eval_score(const dk_sample *s, const char *pred, double *score01, dk_err *e) {
    char *p = NULL;
    const char *use = pred;
    if (s->dataset && dk_metric_dataset_first_line(s->dataset)) use = p = dk_metric_first_line(pred);
    else if (s->metric == DK_METRIC_STRING_MATCH_ALL || s->metric == DK_METRIC_STRING_MATCH_PART)
        use = p = dk_metric_ruler_postprocess(pred);
    if (!use) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    double v = dk_metric_sample_score(s->metric, use, (const char *const *)s->answers, s->n_answers,
                                      (const char *const *)s->all_classes, s->n_classes);
    free(p);
    if (isnan(v))
        return dk_fail(e, DK_ERR_FORMAT,
                       "sample %s: %s cannot score it (the official code would raise on these answers)",
                       s->id ? s->id : "?", dk_metric_name(s->metric));
    *score01 = v;
    return DK_OK;
}

double dk_eval_aggregate_score(dk_metric m, const double *score01, int n) {
    if (n <= 0) return NAN;
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += score01[i];
    if (m == DK_METRIC_STRING_MATCH_ALL || m == DK_METRIC_STRING_MATCH_PART)
        return dk_metric_round2(sum / n * 100);
    return dk_metric_round2(100 * sum / n);
}

/* ---- Δ statistics of a dense prefill ---- */

typedef struct {
    dk_eval_delta_stats *out; /* (n_layer) */
    float *buf;               /* (n_ctx) Δ of the active rows of the current layer */
} dk_eval_delta_obs;

/* numpy.quantile(sorted[0..n), q), linear method */
static float dk_eval_quantile(const float *sorted, int n, double q) {
    double pos = q * (double)(n - 1);
    int lo = (int)pos;
    if (lo >= n - 1) return sorted[n - 1];
    double f = pos - lo;
    return (float)((double)sorted[lo] + f * ((double)sorted[lo + 1] - (double)sorted[lo]));
}

/* Observer hook: records Δ at AFTER_ATTN; next_active is left as it came (the current set). */
static dk_status dk_eval_delta_hook(void *user, dk_hook_point point, const dk_layer_view *v,
                                    int32_t *next_active, int *n_next, dk_err *e) {
    (void)next_active;
    (void)n_next;
    (void)e;
    if (point != DK_HOOK_AFTER_ATTN) return DK_OK;
    dk_eval_delta_obs *o = user;
    int n = v->n_active, d = v->n_embd;
    dk_eval_delta_stats *st = &o->out[v->layer];
    if (n <= 0) {
        *st = (dk_eval_delta_stats){0, NAN, NAN, NAN, NAN, NAN};
        return DK_OK;
    }
    for (int i = 0; i < n; i++) {
        const float *u = v->u + (size_t)i * d;
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)u[j] * u[j];
        o->buf[i] = (float)sqrt(s);
    }
    qsort(o->buf, (size_t)n, sizeof *o->buf, dk_cmp_f32);
    *st = (dk_eval_delta_stats){n,
                                o->buf[0],
                                dk_eval_quantile(o->buf, n, 0.1),
                                n % 2 ? o->buf[n / 2] : 0.5f * (o->buf[n / 2 - 1] + o->buf[n / 2]),
                                dk_eval_quantile(o->buf, n, 0.9),
                                o->buf[n - 1]};
    return DK_OK;
}

/* dk_prefill_run(c, NULL, ...) (dense context, dense question) with the Δ observer on the
 * context call; fills r as dk_prefill_run does and delta (n_layer). */
static dk_status dk_eval_prefill_dense(dk_ctx *c, const int32_t *ctx, int n_ctx, const int32_t *q, int n_q,
                                       dk_prefill_result *r, dk_eval_delta_stats *delta, dk_err *e) {
    memset(r, 0, sizeof *r);
    const dk_model_config *k = &dk_ctx_model(c)->cfg;
    int L = k->n_layer;
    if (n_ctx <= 0) return dk_fail(e, DK_ERR_ARG, "empty context");
    dk_status st = dk_prefill_result_init(r, L, k->n_vocab, n_ctx, n_q, e);
    if (st) return st;
    dk_eval_delta_obs obs = {delta, malloc((size_t)n_ctx * sizeof(float))};
    if (!obs.buf) {
        st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int l = 0; l < L; l++) delta[l] = (dk_eval_delta_stats){0, NAN, NAN, NAN, NAN, NAN};
    dk_prefill_opts o = {0};
    o.hook = dk_eval_delta_hook;
    o.hook_user = &obs;
    dk_ctx_reset(c);
    if (!(st = dk_forward_prefill(c, ctx, n_ctx, &o, r->ctx_logits, e)))
        st = dk_prefill_result_finish(r, c, NULL, q, n_q, e);
done:
    free(obs.buf);
    if (st) dk_prefill_result_free(r);
    return st;
}

/* ---- prefix sharing: the context's layers 0..l once, the rest per policy setting ---- */

int dk_eval_prefix_layer(const dk_policy *pol, const dk_policy_params *pp, int n_layer) {
    if (!pol || pol->rule == DK_POLICY_RULE_NONE || !pp) return -1;
    int f = dk_policy_first_layer(pol, pp, n_layer);
    return f >= 1 && f < n_layer ? f - 1 : -1;
}

dk_status dk_eval_prefix(dk_ctx *c, const dk_eval_prompt *p, int last_layer, dk_err *e) {
    int L = dk_ctx_model(c)->cfg.n_layer;
    if (last_layer < 0 || last_layer >= L - 1)
        return dk_fail(e, DK_ERR_ARG, "prefix through layer %d: the model has %d layers (use 0..%d)",
                       last_layer, L, L - 2);
    if (p->n_context <= 0) return dk_fail(e, DK_ERR_ARG, "empty context");
    int need = dk_eval_prompt_ctx_tokens(p);
    if (dk_ctx_n_ctx_max(c) < need)
        return dk_fail(e, DK_ERR_ARG, "sample %s: the context holds %d positions, the sample needs %d",
                       p->s && p->s->id ? p->s->id : "?", dk_ctx_n_ctx_max(c), need);
    dk_ctx_reset(c);
    return dk_forward_prefill_prefix(c, p->p.ids, p->n_context, last_layer, NULL, e);
}

/* dk_prefill_run(c, pol, pp, ...) for a context whose layers 0..f-1 are already in c (a prefix
 * split at f-1, f = the policy's first decision layer): the suffix with the policy's hook, then
 * the question densely. Bit-identical to the full call (forward.h's split invariant); the stats
 * cover the whole context (ctx_wall_s includes the shared prefix's time). */
static dk_status dk_eval_prefill_suffix(dk_ctx *c, const dk_policy *pol, const dk_policy_params *pp,
                                        int n_ctx, const int32_t *q, int n_q, dk_prefill_result *r,
                                        double *prefix_wall_s, dk_err *e) {
    memset(r, 0, sizeof *r);
    const dk_model_config *k = &dk_ctx_model(c)->cfg;
    int L = k->n_layer;
    int l = dk_eval_prefix_layer(pol, pp, L);
    if (l < 0 || dk_ctx_split_layer(c) != l || dk_ctx_split_hidden(c) == NULL)
        return dk_fail(e, DK_ERR_STATE,
                       "no prefix through layer %d in the context (split at %d): run dk_eval_prefix first", l,
                       dk_ctx_split_layer(c));
    dk_status st = dk_prefill_result_init(r, L, k->n_vocab, n_ctx, n_q, e);
    if (st) return st;
    dk_policy_run *run = NULL;
    if ((st = dk_policy_run_create(pol, pp, L, n_ctx, &run, e))) goto done;
    dk_prefill_opts o = {0};
    dk_policy_run_opts(run, &o);
    if ((st = dk_forward_prefill_suffix(c, &o, r->ctx_logits, e))) goto done;
    const dk_forward_stats *fs = dk_ctx_stats(c);
    if (fs->n_tokens != n_ctx) {
        st = dk_fail(e, DK_ERR_STATE, "the prefix in the context has %d tokens, this prompt's context %d",
                     fs->n_tokens, n_ctx);
        goto done;
    }
    *prefix_wall_s = fs->prefix_wall_s;
    st = dk_prefill_result_finish(r, c, run, q, n_q, e);
done:
    dk_policy_run_free(run);
    if (st) dk_prefill_result_free(r);
    return st;
}

/* ---- one run: prefill, teacher forcing, greedy decode, score ---- */

static bool dk_eval_is_stop(const dk_eval_prompt *p, int32_t t) {
    for (int i = 0; i < p->n_stop; i++)
        if (p->stop[i] == t) return true;
    return false;
}

/* argmax (lowest index on ties), skipping the stop tokens when suppress */
static int32_t dk_eval_pick(const dk_eval_prompt *p, const float *x, int n, bool suppress) {
    if (!suppress) return dk_argmax(x, n);
    int best = -1;
    for (int i = 0; i < n; i++) {
        if (dk_eval_is_stop(p, i)) continue;
        if (best < 0 || x[i] > x[best]) best = i;
    }
    return best < 0 ? dk_argmax(x, n) : best;
}

static dk_status dk_eval_run(dk_ctx *c, const dk_eval_prompt *p, const dk_policy *pol,
                             const dk_policy_params *pp, bool suffix, dk_eval_result *r, dk_err *e) {
    memset(r, 0, sizeof *r);
    dk_eval_unset_compare(r);
    const dk_model *m = dk_ctx_model(c);
    const dk_tokenizer *tok;
    dk_status st = dk_model_tokenizer(m, &tok, e);
    if (st) return st;
    const char *id = p->s && p->s->id ? p->s->id : "?";
    int need = dk_eval_prompt_ctx_tokens(p);
    if (dk_ctx_n_ctx_max(c) < need)
        return dk_fail(e, DK_ERR_ARG,
                       "sample %s: the context holds %d positions, the sample needs %d (prompt %d + %d "
                       "generated/forced)",
                       id, dk_ctx_n_ctx_max(c), need, (int)p->p.n, need - (int)p->p.n);
    if (pol && pol->kind == DK_POLICY_DENSE) pol = NULL;
    dk_policy_params defaults;
    if (!pp) {
        dk_policy_params_default(&defaults);
        pp = &defaults;
    }
    int L = m->cfg.n_layer, V = m->cfg.n_vocab;
    if (pol && (st = dk_policy_params_validate(pol, pp, L, e))) return st;

    snprintf(r->method, sizeof r->method, "%s", pol ? pol->name : "dense");
    if (pol) dk_policy_params_format(pol, pp, r->params, sizeof r->params);
    r->n_prompt = (int)p->p.n;
    r->n_context = p->n_context;
    r->n_question = p->n_question;
    r->n_full = (int)p->p.n_full;
    r->n_dropped = (int)p->p.n_dropped;
    r->n_gold = p->n_gold;
    r->n_layer = L;
    r->n_vocab = V;
    r->n_rows = p->n_gold > 1 ? p->n_gold : 1;

    float *buf = NULL;
    dk_prefill_result pr = {0};
    r->active = malloc((size_t)L * sizeof *r->active);
    r->layers = malloc((size_t)L * sizeof *r->layers);
    r->policy = malloc((size_t)L * sizeof *r->policy);
    if (!pol) r->delta = malloc((size_t)L * sizeof *r->delta);
    r->logits = malloc((size_t)r->n_rows * V * sizeof *r->logits);
    r->gold = malloc((size_t)(p->n_gold > 0 ? p->n_gold : 1) * sizeof *r->gold);
    r->gen = malloc((size_t)(p->max_new_tokens > 0 ? p->max_new_tokens : 1) * sizeof *r->gen);
    buf = malloc((size_t)V * sizeof *buf);
    if (!r->active || !r->layers || !r->policy || (!pol && !r->delta) || !r->logits || !r->gold || !r->gen ||
        !buf) {
        st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
        goto fail;
    }

    /* prefill: context with the policy, question densely */
    const int32_t *ids = p->p.ids;
    if (suffix && !pol)
        st = dk_fail(e, DK_ERR_ARG, "prefix sharing needs a halting method (dense has no decision layer)");
    else if (suffix)
        st = dk_eval_prefill_suffix(c, pol, pp, p->n_context, ids + p->n_context, p->n_question, &pr,
                                    &r->wall_prefix_s, e);
    else if (pol)
        st = dk_prefill_run(c, pol, pp, ids, p->n_context, ids + p->n_context, p->n_question, NULL, &pr, e);
    else
        st = dk_eval_prefill_dense(c, ids, p->n_context, ids + p->n_context, p->n_question, &pr, r->delta, e);
    if (st) goto fail;
    for (int l = 0; l < L; l++) r->active[l] = pr.layers[l].n_active;
    memcpy(r->layers, pr.layers, (size_t)L * sizeof *r->layers);
    memcpy(r->policy, pr.policy, (size_t)L * sizeof *r->policy);
    r->n_kept = pr.n_active;
    r->flops_ctx = pr.ctx_flops;
    r->flops_q = pr.q_flops;
    r->flops = dk_flops_total(&pr.ctx_flops) + dk_flops_total(&pr.q_flops);
    r->wall_ctx_s = pr.ctx_wall_s;
    r->wall_q_s = pr.q_wall_s;
    r->wall_s = pr.ctx_wall_s + pr.q_wall_s;
    memcpy(r->logits, dk_prefill_next_logits(&pr), (size_t)V * sizeof *r->logits);

    /* teacher forcing: rows 1..G-1 from g[0..G-1) in one dense chunk, then rewind */
    if (p->n_gold > 1) {
        double t0 = dk_time_now_s();
        dk_prefill_opts o = {0};
        o.all_logits = true;
        if ((st = dk_forward_prefill(c, p->gold, p->n_gold - 1, &o, r->logits + V, e))) goto fail;
        if ((st = dk_ctx_truncate(c, r->n_prompt, e))) goto fail;
        r->wall_forcing_s = dk_time_now_s() - t0;
    }

    if (p->n_gold > 0) memcpy(r->gold, p->gold, (size_t)p->n_gold * sizeof *r->gold);
    r->nll = dk_metric_answer_nll(r->logits, r->gold, r->n_gold, V);

    /* greedy decode from row 0 */
    double t0 = dk_time_now_s();
    const float *cur = r->logits;
    for (int step = 0; r->n_gen < p->max_new_tokens; step++) {
        int32_t next = dk_eval_pick(p, cur, V, step < p->min_new_tokens);
        if (dk_eval_is_stop(p, next)) break;
        r->gen[r->n_gen++] = next;
        if (r->n_gen >= p->max_new_tokens) break;
        if ((st = dk_forward_decode(c, next, buf, e))) goto fail;
        cur = buf;
    }
    r->wall_decode_s = dk_time_now_s() - t0;
    size_t len;
    if ((st = dk_tokenizer_decode(tok, r->gen, r->n_gen, &r->prediction, &len, e))) goto fail;

    if (p->s) {
        if ((st = dk_eval_score(p->s, r->prediction, &r->score01, e))) goto fail;
        r->score = 100.0 * r->score01;
    } else r->score = r->score01 = NAN;
    dk_prefill_result_free(&pr);
    free(buf);
    return DK_OK;
fail:
    dk_prefill_result_free(&pr);
    free(buf);
    dk_eval_result_free(r);
    return st;
}

/* ---- the two parts ---- */

dk_status dk_eval_dense(dk_ctx *c, const dk_eval_prompt *p, dk_eval_result *out, dk_err *e) {
    return dk_eval_run(c, p, NULL, NULL, false, out, e);
}

dk_status dk_eval_compare(const dk_eval_ref *ref, dk_eval_result *r, dk_err *e) {
    if (ref->n_vocab != r->n_vocab || ref->n_rows != r->n_rows || !ref->logits)
        return dk_fail(e, DK_ERR_ARG,
                       "dense reference has %d logit rows of %d, this run %d rows of %d (different model or "
                       "tokenisation?)",
                       ref->n_rows, ref->n_vocab, r->n_rows, r->n_vocab);
    int V = r->n_vocab;
    r->flops_dense = ref->flops;
    r->wall_dense_s = ref->wall_s;
    r->flops_speedup = r->flops > 0 ? (double)ref->flops / (double)r->flops : NAN;
    r->wall_speedup = r->wall_s > 0 ? ref->wall_s / r->wall_s : NAN;
    dk_metric_fidelity fi;
    dk_metric_answer_fidelity(ref->logits, r->logits, r->n_rows, V, &fi);
    r->kl = fi.kl_mean;
    r->kl_max = fi.kl_max;
    r->top1 = fi.top1;
    r->kl_first = fi.kl_first;
    r->top1_first = fi.top1_first;
    r->nll_dense = dk_metric_answer_nll(ref->logits, r->gold, r->n_gold, V);
    r->nll_delta = r->nll - r->nll_dense;
    r->same_prediction = ref->prediction && r->prediction ? !strcmp(ref->prediction, r->prediction) : -1;
    return DK_OK;
}

dk_status dk_eval_method(dk_ctx *c, const dk_eval_prompt *p, const dk_policy *pol, const dk_policy_params *pp,
                         const dk_eval_ref *dense, dk_eval_result *out, dk_err *e) {
    dk_status st = dk_eval_run(c, p, pol, pp, false, out, e);
    if (st || !dense) return st;
    if ((st = dk_eval_compare(dense, out, e))) dk_eval_result_free(out);
    return st;
}

dk_status dk_eval_method_suffix(dk_ctx *c, const dk_eval_prompt *p, const dk_policy *pol,
                                const dk_policy_params *pp, const dk_eval_ref *dense, dk_eval_result *out,
                                dk_err *e) {
    dk_policy_params defaults;
    if (!pp) {
        dk_policy_params_default(&defaults);
        pp = &defaults;
    }
    if (pol && pol->kind == DK_POLICY_DENSE) pol = NULL;
    dk_status st = dk_eval_run(c, p, pol, pp, true, out, e);
    if (st || !dense) return st;
    if ((st = dk_eval_compare(dense, out, e))) dk_eval_result_free(out);
    return st;
}

/* ---- helpers ---- */

static int dk_eval_cmp_component(const void *a, const void *b) {
    return strcmp(dk_flops_component_name(*(const dk_flops_component *)a),
                  dk_flops_component_name(*(const dk_flops_component *)b));
}

int dk_eval_flops_json(const dk_flops *f, char *buf, size_t n) {
    dk_flops_component order[DK_FLOPS_COUNT];
    for (int i = 0; i < DK_FLOPS_COUNT; i++) order[i] = (dk_flops_component)i;
    qsort(order, DK_FLOPS_COUNT, sizeof *order, dk_eval_cmp_component);
    size_t o = 0;
    int k = snprintf(buf, n, "{");
    o += (size_t)k;
    for (int i = 0; i < DK_FLOPS_COUNT; i++) {
        k = snprintf(o < n ? buf + o : NULL, o < n ? n - o : 0, "%s\"%s\":%lld", i ? "," : "",
                     dk_flops_component_name(order[i]), (long long)f->c[order[i]]);
        o += (size_t)k;
    }
    k = snprintf(o < n ? buf + o : NULL, o < n ? n - o : 0, "}");
    return (int)(o + (size_t)k);
}

/* ---- one sample end to end ---- */

dk_status dk_eval_ctx_prepare(const dk_model *m, dk_ctx **c, int n_tokens, dk_compute compute, dk_err *e) {
    dk_status st = dk_eval_ctx_reserve(m, c, n_tokens, e);
    return st ? st : dk_ctx_set_compute(*c, compute, e);
}

dk_status dk_eval_sample(const dk_model *m, dk_ctx **c, const dk_sample *s, const dk_eval_sample_opts *o,
                         const dk_policy *pol, const dk_policy_params *pp, dk_eval_pair *out, dk_err *e) {
    memset(out, 0, sizeof *out);
    dk_eval_prompt p;
    size_t b = o->budget >= 0 ? (size_t)o->budget : dk_eval_default_budget(m, s);
    out->step = DK_EVAL_STEP_PROMPT;
    dk_status st = dk_eval_prompt_build_chat(m, s, b, o->chat, &p, e);
    if (st) return st;
    out->n_ctx_tokens = dk_eval_prompt_ctx_tokens(&p);
    out->step = DK_EVAL_STEP_DENSE;
    if ((st = dk_eval_ctx_prepare(m, c, out->n_ctx_tokens, o->compute, e)) ||
        (o->warmup && (st = dk_eval_warmup(*c, &p, e))) || (st = dk_eval_dense(*c, &p, &out->dense, e)))
        goto done;
    out->step = DK_EVAL_STEP_METHOD;
    dk_eval_ref ref;
    dk_eval_ref_from_result(&out->dense, &ref);
    if ((st = dk_eval_method(*c, &p, pol, pp, &ref, &out->method, e))) {
        dk_eval_result_free(&out->dense);
        goto done;
    }
    out->step = DK_EVAL_STEP_DONE;
done:
    dk_eval_prompt_free(&p);
    return st;
}

void dk_eval_pair_free(dk_eval_pair *r) {
    if (r->step == DK_EVAL_STEP_DONE) {
        dk_eval_result_free(&r->method);
        dk_eval_result_free(&r->dense);
    }
    r->step = DK_EVAL_STEP_PROMPT;
}

dk_status dk_eval_totals_init(dk_eval_totals *t, int n_samples, dk_err *e) {
    memset(t, 0, sizeof *t);
    t->kl_max = NAN;
    t->cap = n_samples > 0 ? n_samples : 1;
    t->score_method = malloc((size_t)t->cap * sizeof *t->score_method);
    t->score_dense = malloc((size_t)t->cap * sizeof *t->score_dense);
    if (!t->score_method || !t->score_dense) {
        dk_eval_totals_free(t);
        return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    }
    return DK_OK;
}

void dk_eval_totals_add(dk_eval_totals *t, const dk_eval_result *rd, const dk_eval_result *rm) {
    if (t->n >= t->cap) return;
    t->score_method[t->n] = rm->score01;
    t->score_dense[t->n] = rd->score01;
    t->n++;
    t->flops_dense += rd->flops;
    t->flops_method += rm->flops;
    t->wall_dense_s += rd->wall_s;
    t->wall_method_s += rm->wall_s;
    const double fv[5] = {rm->kl, rm->top1, rm->nll_delta, rm->kl_first,
                          rm->top1_first < 0 ? NAN : rm->top1_first};
    for (int k = 0; k < 5; k++)
        if (!isnan(fv[k])) {
            t->fid_sum[k] += fv[k];
            t->fid_n[k]++;
        }
    if (!isnan(rm->kl_max) && !(rm->kl_max <= t->kl_max)) t->kl_max = rm->kl_max;
}

void dk_eval_totals_summary(const dk_eval_totals *t, dk_metric metric, dk_eval_summary *out) {
    double mean[5];
    for (int k = 0; k < 5; k++) mean[k] = t->fid_n[k] ? t->fid_sum[k] / t->fid_n[k] : NAN;
    *out = (dk_eval_summary){
        .n = t->n,
        .score = dk_eval_aggregate_score(metric, t->score_method, t->n),
        .dense_score = dk_eval_aggregate_score(metric, t->score_dense, t->n),
        .flops_dense = t->flops_dense,
        .flops_method = t->flops_method,
        .flops_speedup = t->flops_method > 0 ? (double)t->flops_dense / (double)t->flops_method : NAN,
        .wall_speedup = t->wall_method_s > 0 ? t->wall_dense_s / t->wall_method_s : NAN,
        .kl = mean[0],
        .kl_max = t->kl_max,
        .top1 = mean[1],
        .nll_delta = mean[2],
        .kl_first = mean[3],
        .top1_first = mean[4],
    };
}

void dk_eval_totals_free(dk_eval_totals *t) {
    free(t->score_method);
    free(t->score_dense);
    t->score_method = t->score_dense = NULL;
}
