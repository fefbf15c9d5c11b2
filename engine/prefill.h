/* prefill.h — the DASH protocol on one prompt: the context is prefilled with a halting policy,
 * the question (never halted) is prefilled densely against the per-layer caches the context
 * left (of different lengths after halting), then greedy decoding continues from there.
 *
 * Also the theoretical speedup of the paper, L·A(T) / (l_s·A(T) + (L−l_s)·A((1−ρ)T)), where
 * A(n) is the FLOPs of one transformer layer on n tokens under the engine's counting model
 * (forward.h) with exact causal attention (n(n+1)/2 query-key pairs, no block padding). */
#ifndef DK_PREFILL_H
#define DK_PREFILL_H
#include <stdint.h>
#include "dk_common.h"
#include "forward.h"
#include "policy.h"

/* ---- one context + question prefill ---- */

typedef struct {
    int n_layer, n_vocab, n_ctx, n_question;
    /* context phase (with the policy) */
    dk_layer_stats *layers;        /* (n_layer) the engine's per-layer stats of the context call */
    dk_policy_layer_stats *policy; /* (n_layer) decisions and score statistics */
    dk_flops ctx_flops;            /* whole context call (layers + head) */
    double ctx_wall_s;
    int32_t *active; /* (n_active) context rows active in the last layer, ascending */
    int n_active;
    float *ctx_logits; /* (n_vocab) after the last context token */
    /* question phase (dense); zero / NULL when there is no question */
    dk_flops q_flops;
    double q_wall_s;
    float *q_logits; /* (n_vocab) after the last question token */
} dk_prefill_result;

/* Resets c, prefills ctx[0..n_ctx) with policy p (NULL = dense) and then question[0..n_q)
 * densely. hidden_out: NULL or (n_ctx, n_embd) final context hidden states before the norm. */
dk_status dk_prefill_run(dk_ctx *c, const dk_policy *p, const dk_policy_params *pp, const int32_t *ctx,
                         int n_ctx, const int32_t *question, int n_q, float *hidden_out, dk_prefill_result *r,
                         dk_err *e);
void dk_prefill_result_free(dk_prefill_result *r);
/* Logits of the next token after the prompt: q_logits, or ctx_logits without a question. */
const float *dk_prefill_next_logits(const dk_prefill_result *r);

/* Building blocks of dk_prefill_run for callers that drive the context call themselves (eval/:
 * a Δ observer, a shared prefix). _init zeroes r, sets its sizes and allocates its arrays (on
 * failure r is freed: DK_ERR_NOMEM). _finish, right after the context call, fills the context
 * phase but ctx_logits from c (per-layer stats, FLOPs, wall time, the last layer's active rows,
 * run's decisions; run NULL: dense, none), then prefills question[0..n_q) densely into the
 * question phase (nothing when n_q == 0); on failure r is left for the caller to free. */
dk_status dk_prefill_result_init(dk_prefill_result *r, int n_layer, int n_vocab, int n_ctx, int n_q,
                                 dk_err *e);
dk_status dk_prefill_result_finish(dk_prefill_result *r, dk_ctx *c, const dk_policy_run *run,
                                   const int32_t *question, int n_q, dk_err *e);

/* Logits of every position of tokens[0..n) (row t after tokens[0..t]) from one prefill of an
 * emptied c with policy p (NULL or dense: none); logits is (n, n_vocab). Halted rows keep the
 * hidden state of the layer where they stopped (the final norm and lm head see it unchanged). */
dk_status dk_prefill_all_logits(dk_ctx *c, const dk_policy *p, const dk_policy_params *pp,
                                const int32_t *tokens, int n, float *logits, dk_err *e);

/* Greedy continuation: out[0] = argmax(logits); token i is fed at the next position and
 * out[i+1] = argmax of what it produces; stops after n_max tokens or when stop_token (>= 0) is
 * produced (not stored). Attends to every layer's cache as the prefill left it. */
dk_status dk_prefill_decode_greedy(dk_ctx *c, const float *logits, int n_max, int32_t stop_token,
                                   int32_t *out, int *n_out, dk_err *e);

/* ---- dense vs method, side by side (benchmarks) ---- */

typedef struct {
    int reps;
    double wall_dense_s,
        wall_method_s; /* medians over reps of one context prefill (method: incl. policy set-up) */
    dk_flops flops_dense, flops_method; /* one call each (deterministic) */
    int l_s;                            /* first decision layer (n_layer: none) */
    int n_kept;                         /* rows kept at the first decision (T when none) */
    double theoretical;                 /* dk_prefill_theoretical_speedup(cfg, T, l_s, n_kept) */
} dk_prefill_compare;

/* After one untimed warm-up of each, runs the dense and the method prefill of tokens[0..T)
 * alternately reps times (the order flips every repetition), c reset before each. */
dk_status dk_prefill_compare_run(dk_ctx *c, const dk_policy *p, const dk_policy_params *pp,
                                 const int32_t *tokens, int T, int reps, dk_prefill_compare *out, dk_err *e);
/* Median of v[0..n) (n >= 1; mean of the middle two for even n), e.g. of repeated wall times.
 * Sorts v in place. */
double dk_prefill_median(double *v, int n);

/* ---- FLOP model for the theoretical speedup ---- */

/* A(n): FLOPs of one layer on n tokens with exact causal attention (see the top of this file). */
double dk_prefill_layer_flops(const dk_model_config *cfg, double n);
/* L·A(T) / (l_s·A(T) + (L−l_s)·A(K)) with K = (1−ρ)T the tokens kept (dash: floor((1−ρ)T));
 * 1 when l_s >= L. */
double dk_prefill_theoretical_speedup(const dk_model_config *cfg, int T, int l_s, double n_kept);

#endif
