/* evaluate.h — THE per-sample evaluation: one sample, one method, against dense.
 *
 * Used by `dashkit eval` and by the config-matrix runner. Per sample:
 *   1. dk_eval_prompt_build: prompt tokens (BOS + context + question, middle-truncated to the
 *      token budget as LongBench's pred.py), the split (context haltable, question never), the
 *      gold tokens of the FIRST answer for teacher forcing, and the stop tokens.
 *   2. dk_eval_dense: the dense reference (computed once per sample, shared by every method).
 *   3. dk_eval_method: the same with a halting policy, compared against the dense reference.
 * One run (dense or method) is
 *   prefill   dk_prefill_run: context with the policy, question densely            (timed, counted)
 *   forcing   the first answer's tokens g[0..G-1) fed after the question as one dense chunk with
 *             all logits, then the caches rewound to the end of the prompt (dk_ctx_truncate)
 *   decode    greedy from the prompt's logits: at most max_new_tokens tokens, stops at EOS/BOS (and
 *             "\n" for samsum, whose first token may be neither, as pred.py's min_length); the
 *             tokens are detokenised (control tokens skipped) into the prediction
 *   score     the sample's metric: first-line rule for trec/triviaqa/samsum/lsht, RULER's
 *             postprocess_pred for string_match_*; in [0, 100]
 * and keeps the logit rows of the first answer token and of teacher forcing:
 *   row 0 = logits after the prompt (predicts g[0]); row t = logits after g[0..t) (predicts g[t]),
 *   n_rows = max(1, G). This is the layout of the store's dense_results.logits.
 * Fidelity (method vs dense) over the answer rows 0..n_rows-1 (the teacher-forced answer; row 0
 * alone when G = 0): kl = mean KL(dense‖method), kl_max = their max, top1 = fraction of rows whose
 * argmax agrees; kl_first / top1_first = the same of row 0 alone (the first answer token, which
 * for a dummy-prefix tokenizer is often the space before the answer: a blind screen).
 * Likelihood: nll = mean -log p(g[t] | row t) of the run's own rows (nats per token; NAN when
 * G = 0); nll_dense = the same under the reference; nll_delta = nll - nll_dense.
 * FLOPs and wall times are those of the prefill (context + question) only: forcing and decoding
 * are identical work for every method and are not part of the speedup.
 *
 * Gold tokens are encode(answers[0]) without BOS, with the tokenizer's usual dummy-prefix space
 * (the answer as a continuation " answer" after the prompt).
 * Library code: statuses and dk_err only; nothing prints. */
#ifndef DK_EVALUATE_H
#define DK_EVALUATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "chat.h"
#include "compute.h"
#include "dk_common.h"
#include "forward.h"
#include "model.h"
#include "policy.h"
#include "task.h"

/* ---- prompt of one sample ---- */

#define DK_EVAL_MAX_STOP 4

typedef struct {
    const dk_sample *s;        /* borrowed; must outlive the prompt */
    dk_prompt p;               /* ids (n) with BOS first, n_context, n_full, n_dropped */
    int n_context, n_question; /* p.n split: context (haltable, BOS included) + question */
    int32_t *gold;             /* (n_gold) first answer's tokens, no BOS */
    int n_gold;
    int32_t stop[DK_EVAL_MAX_STOP]; /* generation stops when one of these is produced */
    int n_stop;
    int min_new_tokens;         /* steps during which stop tokens are suppressed (samsum: 1) */
    int max_new_tokens;         /* the sample's generation budget */
    dk_chat_template_kind chat; /* template applied (NONE: plain prompt) */
    int n_template;             /* of p.n, template tokens (prefix incl. BOS + suffix) */
} dk_eval_prompt;

/* Tokenises s with the model's tokenizer. budget > 0: the prompt is middle-truncated to budget
 * tokens (BOS counted); 0: no truncation. Errors: no tokenizer, empty prompt. */
dk_status dk_eval_prompt_build(const dk_model *m, const dk_sample *s, size_t budget, dk_eval_prompt *out,
                               dk_err *e);
/* As dk_eval_prompt_build, inside a chat template (chat.h; NULL or kind none = plain prompt):
 *   [BOS] prefix + context | question + suffix
 * where prefix + context is the haltable part and question + suffix is never halted. LongBench's
 * rule (pred.py): no template for trec, triviaqa, samsum, lsht, lcc, repobench-p (and their _e
 * variants), see dk_eval_chat_applies. budget counts the content tokens only (as pred.py
 * truncates before build_chat); the template's tokens come on top. The template's end-of-turn
 * token (<|im_end|>, <|eot_id|>) is a stop token. */
dk_status dk_eval_prompt_build_chat(const dk_model *m, const dk_sample *s, size_t budget,
                                    const dk_chat_template *chat, dk_eval_prompt *out, dk_err *e);
/* false for the datasets LongBench prompts without the chat template. */
bool dk_eval_chat_applies(const char *dataset);
void dk_eval_prompt_free(dk_eval_prompt *p);
/* Positions a dk_ctx must hold for this prompt: n + max(max_new_tokens, n_gold). */
int dk_eval_prompt_ctx_tokens(const dk_eval_prompt *p);
/* Default truncation budget for a sample, as LongBench sizes it: the model's training context
 * minus the generation budget (0 = no truncation when the model declares no context). */
size_t dk_eval_default_budget(const dk_model *m, const dk_sample *s);

/* Makes *c (NULL or an existing context of m) hold at least n_tokens positions, re-creating it
 * when it is too small. */
dk_status dk_eval_ctx_reserve(const dk_model *m, dk_ctx **c, int n_tokens, dk_err *e);

/* One untimed dense prefill of p's prompt: maps the weights in and starts the BLAS threads, so
 * the first timed run of a process is not charged for them (call once before timing). */
dk_status dk_eval_warmup(dk_ctx *c, const dk_eval_prompt *p, dk_err *e);

/* ---- results ---- */

/* Distribution over the context rows of one layer of Δ_t = ‖U_t‖₂ (the attention sub-layer's
 * output after W_o, before the residual add: DASH's score) in a DENSE run. Quantiles as
 * numpy's default (linear interpolation); median = mean of the two middle values for even n. */
typedef struct {
    int n; /* rows (the layer's active context rows: all of them) */
    float min, p10, median, p90, max;
} dk_eval_delta_stats;

typedef struct {
    /* prompt (tokens) */
    int n_prompt, n_context, n_question; /* n_prompt = n_context + n_question */
    int n_full, n_dropped;               /* before truncation; removed from the middle */
    int n_gold;                          /* teacher-forced answer tokens */
    /* method */
    char method[32];  /* policy name, "dense" for the reference */
    char params[160]; /* dk_policy_params_format text, "" for dense */
    /* per layer, context prefill (n_layer) */
    int n_layer;
    int *active;                   /* (n_layer) context tokens processed by each layer */
    dk_layer_stats *layers;        /* (n_layer) per-layer FLOPs and wall time of the context call */
    dk_policy_layer_stats *policy; /* (n_layer) decisions and halting-score statistics */
    dk_eval_delta_stats *delta;    /* (n_layer) dense runs only (method "dense"): Δ per layer of the
                                            context prefill, observed through the engine hook without
                                            changing the active set (logits bit-identical to an unhooked
                                            dense prefill; not counted as FLOPs); NULL for method runs */
    int n_kept;                    /* context rows active in the last layer */
    /* prefill compute: context (with the policy) and question (dense) */
    dk_flops flops_ctx, flops_q;         /* by component (FLOPs) */
    int64_t flops;                       /* total of both */
    double wall_ctx_s, wall_q_s, wall_s; /* prefill wall times (s); wall_s = ctx + q */
    double wall_prefix_s; /* of wall_ctx_s, the shared prefix (dk_eval_method_suffix; 0 otherwise):
                                            measured once per prompt and charged to every run that shares it */
    double wall_forcing_s, wall_decode_s; /* teacher forcing and greedy decoding (s), not in wall_s */
    /* generation */
    int32_t *gen; /* (n_gen) generated tokens, stop token excluded */
    int n_gen;
    char *prediction; /* UTF-8 text of gen */
    double score;     /* [0, 100] */
    double score01;   /* [0, 1], what the official aggregates sum */
    /* logit rows (see top of file) */
    int n_vocab, n_rows;
    float *logits; /* (n_rows, n_vocab) */
    int32_t *gold; /* (n_gold) the teacher-forced answer tokens (copy) */
    double nll;    /* mean -log p(gold[t] | row t) (nats/token); NAN when n_gold = 0 */
    /* against dense (dk_eval_method with a reference; NAN / -1 otherwise) */
    int64_t flops_dense;
    double wall_dense_s;
    double flops_speedup;        /* flops_dense / flops */
    double wall_speedup;         /* wall_dense_s / wall_s */
    double kl;                   /* mean KL(dense‖method) over the answer rows (nats) */
    double kl_max;               /* max KL over the answer rows */
    double top1;                 /* fraction of answer rows whose argmax agrees, [0, 1] */
    double kl_first;             /* KL of row 0 alone */
    int top1_first;              /* 1 if row 0's argmax agrees, 0 if not, -1 not measured */
    double nll_dense, nll_delta; /* reference's answer NLL; nll - nll_dense (nats/token) */
    int same_prediction;         /* 1/0 vs the reference's prediction, -1 unknown */
} dk_eval_result;

void dk_eval_result_free(dk_eval_result *r);
/* flops_ctx + flops_q by component. */
dk_flops dk_eval_result_flops(const dk_eval_result *r);

/* What a method run is compared with: a dense dk_eval_result (dk_eval_ref_from_result), or a
 * row of the store's dense_results (prompt_tokens, flops, wall_s, prediction, n_vocab,
 * n_logit_rows, logits) — all borrowed. */
typedef struct {
    int n_vocab, n_rows;
    const float *logits;    /* (n_rows, n_vocab) layout as dk_eval_result.logits */
    int64_t flops;          /* dense prefill FLOPs (context + question) */
    double wall_s;          /* dense prefill wall time (s) */
    const char *prediction; /* NULL = unknown */
} dk_eval_ref;

void dk_eval_ref_from_result(const dk_eval_result *dense, dk_eval_ref *ref);

/* ---- the two parts ---- */

/* Dense reference of one prompt. c must hold dk_eval_prompt_ctx_tokens(p) positions (see
 * dk_eval_ctx_reserve); it is reset first. The comparison fields are left unset (NAN / -1). */
dk_status dk_eval_dense(dk_ctx *c, const dk_eval_prompt *p, dk_eval_result *out, dk_err *e);

/* The prompt with policy pol (NULL or "dense" = dense) and parameters pp (validated here; NULL
 * = defaults), compared with dense when dense != NULL. A reference whose n_vocab or n_rows do
 * not match this prompt is DK_ERR_ARG (e.g. a stored dense row of another tokenisation). */
dk_status dk_eval_method(dk_ctx *c, const dk_eval_prompt *p, const dk_policy *pol, const dk_policy_params *pp,
                         const dk_eval_ref *dense, dk_eval_result *out, dk_err *e);

/* ---- prefix sharing (the runner's rho sweeps) ----
 * Layers before a policy's first decision layer f do not depend on rho (or any setting chosen at
 * f), so a sweep runs them once per prompt:
 *   l = dk_eval_prefix_layer(pol, &pp, L);           // -1: not shareable (dense, f = 0, f = L)
 *   dk_eval_prefix(c, &prompt, l, e);                // context through layer l, untimed by callers
 *   for each setting: dk_eval_method_suffix(c, &prompt, pol, &pp_r, &ref, &res_r, e);
 * Each result equals dk_eval_method's bit for bit (logits, FLOPs, active sets, prediction); its
 * wall_ctx_s/wall_s include the prefix's time (wall_prefix_s), so a result's speedup is what a
 * single run would see. Every setting must have the same first layer (e.g. differ only in rho). */
int dk_eval_prefix_layer(const dk_policy *pol, const dk_policy_params *pp, int n_layer);
/* Resets c and runs layers 0..last_layer of p's context (0 <= last_layer < n_layer-1). */
dk_status dk_eval_prefix(dk_ctx *c, const dk_eval_prompt *p, int last_layer, dk_err *e);
/* As dk_eval_method, continuing from the prefix dk_eval_prefix left in c (same prompt): the
 * remaining layers with pol, the question, forcing, decoding. DK_ERR_STATE when c holds no
 * prefix split at dk_eval_prefix_layer(pol, pp, n_layer) or one of another length. */
dk_status dk_eval_method_suffix(dk_ctx *c, const dk_eval_prompt *p, const dk_policy *pol,
                                const dk_policy_params *pp, const dk_eval_ref *dense, dk_eval_result *out,
                                dk_err *e);

/* Fills the comparison fields of r from ref (used by dk_eval_method; exposed for callers that
 * compare results they already have). */
dk_status dk_eval_compare(const dk_eval_ref *ref, dk_eval_result *r, dk_err *e);

/* ---- one sample end to end: the steps every caller takes ----
 * `dashkit eval` runs dk_eval_sample per sample and sums with dk_eval_totals; the runner builds
 * the prompt, dk_eval_ctx_prepare, then its stored dense references and prefix sharing (runner.h). */

/* dk_eval_ctx_reserve for n_tokens, then the context set to compute mode. */
dk_status dk_eval_ctx_prepare(const dk_model *m, dk_ctx **c, int n_tokens, dk_compute compute, dk_err *e);

typedef enum { DK_EVAL_STEP_PROMPT, DK_EVAL_STEP_DENSE, DK_EVAL_STEP_METHOD, DK_EVAL_STEP_DONE } dk_eval_step;

typedef struct {
    long budget;                  /* prompt budget in tokens; < 0: dk_eval_default_budget */
    const dk_chat_template *chat; /* NULL = plain prompt */
    dk_compute compute;
    bool warmup; /* one untimed dense prefill first (dk_eval_warmup) */
} dk_eval_sample_opts;

typedef struct {
    dk_eval_result dense, method; /* valid when step == DK_EVAL_STEP_DONE */
    int n_ctx_tokens;             /* positions the sample needs (set once the prompt is built) */
    dk_eval_step step;            /* how far it got: on failure, the step that failed */
} dk_eval_pair;

/* Sample s: the prompt (tokenising: step PROMPT), the context, warm-up and dense reference
 * (step DENSE), the method (pol, pp) against it (step METHOD). Free with dk_eval_pair_free. */
dk_status dk_eval_sample(const dk_model *m, dk_ctx **c, const dk_sample *s, const dk_eval_sample_opts *o,
                         const dk_policy *pol, const dk_policy_params *pp, dk_eval_pair *out, dk_err *e);
void dk_eval_pair_free(dk_eval_pair *r);

/* Sums over samples of a method against dense, and what `dashkit eval` reports of them. */
typedef struct {
    int n, cap;
    double *score_method, *score_dense; /* (cap) score01 per sample */
    int64_t flops_dense, flops_method;
    double wall_dense_s, wall_method_s;
    double fid_sum[5]; /* kl, top1, nll_delta, kl_first, top1_first: sums of non-NAN values */
    int fid_n[5];
    double kl_max; /* max over samples (NAN before one) */
} dk_eval_totals;

typedef struct {
    int n;
    double score, dense_score; /* dk_eval_aggregate_score of the metric */
    int64_t flops_dense, flops_method;
    double flops_speedup, wall_speedup; /* sum dense / sum method (NAN when the method's sum is 0) */
    double kl, kl_max, top1, nll_delta, kl_first,
        top1_first; /* means over samples (NAN skipped); kl_max the max */
} dk_eval_summary;

dk_status dk_eval_totals_init(dk_eval_totals *t, int n_samples, dk_err *e);
void dk_eval_totals_add(dk_eval_totals *t, const dk_eval_result *dense, const dk_eval_result *method);
void dk_eval_totals_summary(const dk_eval_totals *t, dk_metric metric, dk_eval_summary *out);
void dk_eval_totals_free(dk_eval_totals *t);

/* ---- helpers for callers ---- */

/* Official aggregate of per-sample scores in [0,1] (score01), with the arithmetic of the
 * reference code: LongBench round(100*sum/n, 2), RULER round(sum/n*100, 2). NAN when n = 0. */
double dk_eval_aggregate_score(dk_metric m, const double *score01, int n);

/* Canonical JSON object (sorted keys, no spaces) of every component of f, e.g.
 * {"attn":123,"ffn":456,...}. Returns the length needed
 * (snprintf semantics). */
int dk_eval_flops_json(const dk_flops *f, char *buf, size_t n);

#endif
