/* policy.h — halting policies: DASH, its ablations and baselines as rows of one table.
 *
 * A policy decides, at one or more DECISION LAYERS of a context prefill, which tokens stay active
 * for the layers after it (the engine's per-layer active sets, forward.h). Every policy is
 *   a table entry (name, accepted parameters, hook point, probe needs, selection rule)
 *   + a scoring function (one score per active row of the decision layer)
 * and shares one selection routine:
 *   rule TOPK:      keep the K highest scores, K = floor((1 - rho) * n) (multistep: see below)
 *   rule BUDGET:    keep the `keep` highest scores
 *   rule THRESHOLD: keep the rows whose score > tau (halt score <= tau)
 * Ties: the lower position is kept first. The first `sink` and last `recent` rows of the chunk are
 * protected (always kept, counted inside K; if they alone exceed K, exactly they are kept).
 *
 * Decision layer l_s = floor(ls * n_layer), ls in [0, 1]; ls = 1 (l_s = n_layer) never decides,
 * i.e. the prefill is dense. The set chosen at layer l applies from layer l+1: layer l itself
 * finishes for every row it started with. Halted rows keep their hidden state to the final norm.
 *
 *   name       score (at layer l_s unless said)                      rule / notes
 *   dense      -                                                      no decision
 *   dash       Δ_t = ‖U_t‖₂, U = attention output after W_o, before  TOPK by rho
 *              the residual add (hook AFTER_ATTN)
 *   dash-tau   Δ_t, or Δ_t/‖x_in,t‖₂ when relative                    THRESHOLD tau
 *   dash-keep  Δ_t                                                    BUDGET keep
 *   multistep  Δ_t at layers l_s, l_s+k, l_s+2k, ... < n_layer-1      TOPK; after decision j of S
 *                                                                      keeps floor((1-rho)^((j+1)/S)·T)
 *                                                                      (same final count as dash)
 *   random     uniform from a seeded hash of (seed, layer, position)   TOPK by rho
 *   inverse    −Δ_t (halts the HIGHEST Δ)                             TOPK by rho
 *   dblock     1 − cos(x_in,t, x_out,t) of the whole block (AFTER_LAYER) TOPK by rho
 *   fastv      attention the last chunk row gives t, mean over heads   TOPK by rho, at `layer`
 *              (FastV; layer -1 = l_s)
 *   snapkv     attention from the last `window` rows to t, summed over TOPK by rho, at `layer`;
 *              the window, averaged over heads, max-pooled over        the window rows are kept
 *              `kernel` neighbouring rows (SnapKV, prune variant)
 *
 * Scoring arithmetic is added to the layer's DK_FLOPS_HALT counter (selection sorts are not FLOPs).
 * The engine never includes this header; prefill.h and the CLI/eval layers do. */
#ifndef DK_POLICY_H
#define DK_POLICY_H
#include <stdbool.h>
#include <stdint.h>
#include "dk_common.h"
#include "forward.h"

/* ---- parameters ---- */

typedef enum { DK_POLICY_PARAM_NUM, DK_POLICY_PARAM_INT, DK_POLICY_PARAM_BOOL } dk_policy_param_type;

typedef enum {
    DK_POLICY_PARAM_RHO,      /* fraction halted, [0, 1), default 0.667 */
    DK_POLICY_PARAM_LS,       /* decision layer fraction, [0, 1], default 0.4 */
    DK_POLICY_PARAM_TAU,      /* threshold, >= 0, required by dash-tau */
    DK_POLICY_PARAM_RELATIVE, /* dash-tau: score Δ/‖x_in‖, default false */
    DK_POLICY_PARAM_KEEP,     /* tokens kept, >= 1, required by dash-keep */
    DK_POLICY_PARAM_K,        /* multistep: layers between decisions, >= 1, default 2 */
    DK_POLICY_PARAM_SEED,     /* random: seed, >= 0, default 0 */
    DK_POLICY_PARAM_LAYER,    /* fastv/snapkv: decision layer index, -1 = floor(ls*L), < n_layer */
    DK_POLICY_PARAM_WINDOW,   /* snapkv: observation window (last rows), >= 1, default 32 */
    DK_POLICY_PARAM_KERNEL,   /* snapkv: max-pool kernel (odd), >= 1, default 5 */
    DK_POLICY_PARAM_SINK,     /* first rows always kept, >= 0, default 0 */
    DK_POLICY_PARAM_RECENT,   /* last rows always kept, >= 0, default 0 */
    DK_POLICY_PARAM_COUNT
} dk_policy_param_id;

/* Description of one parameter (for validation in other layers, --help, config registries). */
typedef struct {
    const char *name; /* "rho", "ls", ... (the JSON key / CLI option name) */
    dk_policy_param_type type;
    double def;          /* default value (NAN when required) */
    double lo, hi;       /* valid range; hi = INFINITY when unbounded */
    bool hi_open;        /* hi excluded */
    const char *help;    /* one line */
    bool after_decision; /* takes effect only after the decision layer: cells differing only in
                                    such parameters compute the same layers before it, so they share that
                                    prefix (runner.h) and a shard (shard.h). Set for rho alone: tau, keep
                                    and seed would qualify too, but the set is part of every sharded run's
                                    group keys, so widening it moves groups between existing shards. */
} dk_policy_param;

/* All values, whichever policy; a policy reads only the ones it accepts. */
typedef struct {
    double rho, ls, tau;
    bool relative;
    int keep, k, layer, window, kernel, sink, recent;
    int64_t seed;
    uint32_t given; /* bit (1 << id) set by dk_policy_params_set */
} dk_policy_params;

const dk_policy_param *dk_policy_param_info(dk_policy_param_id id);
const dk_policy_param *dk_policy_param_find(const char *name); /* NULL if unknown */

/* ---- the policy table ---- */

typedef enum {
    DK_POLICY_DENSE,
    DK_POLICY_DASH,
    DK_POLICY_DASH_TAU,
    DK_POLICY_DASH_KEEP,
    DK_POLICY_MULTISTEP,
    DK_POLICY_RANDOM,
    DK_POLICY_INVERSE,
    DK_POLICY_DBLOCK,
    DK_POLICY_FASTV,
    DK_POLICY_SNAPKV,
    DK_POLICY_COUNT
} dk_policy_kind;

typedef enum {
    DK_POLICY_RULE_NONE,
    DK_POLICY_RULE_TOPK,
    DK_POLICY_RULE_BUDGET,
    DK_POLICY_RULE_THRESHOLD
} dk_policy_rule;

typedef enum { DK_POLICY_PROBE_NONE, DK_POLICY_PROBE_LAST, DK_POLICY_PROBE_WINDOW } dk_policy_probe;

struct dk_policy_run;
/* Scores the active rows of the decision layer into score[0..v->n_active) (higher = keep);
 * returns the FLOPs it spent. */
typedef int64_t (*dk_policy_score_fn)(const struct dk_policy_run *r, const dk_layer_view *v, float *score);

typedef struct {
    const char *name; /* "dash" */
    dk_policy_kind kind;
    const char *summary;              /* one line */
    const dk_policy_param_id *params; /* accepted parameters, terminated by DK_POLICY_PARAM_COUNT */
    dk_hook_point point;              /* when the score is taken */
    dk_policy_probe probe;            /* attention probabilities it needs */
    dk_policy_rule rule;
    dk_policy_score_fn score; /* NULL for dense */
} dk_policy;

int dk_policy_count(void);
const dk_policy *dk_policy_at(int i);              /* 0 <= i < dk_policy_count() */
const dk_policy *dk_policy_find(const char *name); /* NULL if unknown */
/* As find, with the error "unknown method 'x' (known: dense, dash, ...)". */
dk_status dk_policy_lookup(const char *name, const dk_policy **out, dk_err *e);
const char *dk_policy_names(void); /* "dense, dash, dash-tau, ..." */
bool dk_policy_accepts(const dk_policy *p, dk_policy_param_id id);

/* ---- parameter values ---- */

void dk_policy_params_default(dk_policy_params *pp); /* every default; given = 0 */
/* Sets one parameter by name: errors (DK_ERR_ARG) for a name the policy does not accept, a
 * non-integer value of an integer parameter, or a value outside its range, e.g.
 * "dash: rho = 1 is outside [0, 1)". */
dk_status dk_policy_params_set(const dk_policy *p, dk_policy_params *pp, const char *name, double value,
                               dk_err *e);
/* Value of one parameter as a double (booleans 0/1). */
double dk_policy_params_get(const dk_policy_params *pp, dk_policy_param_id id);
/* As dk_policy_params_set with the value as text: a number, or true/false for booleans. */
dk_status dk_policy_params_set_text(const dk_policy *p, dk_policy_params *pp, const char *name,
                                    const char *text, dk_err *e);
/* Checks every accepted value (range, required ones given) and, when n_layer > 0, the layers
 * they imply: l_s = floor(ls*n_layer) <= n_layer, layer < n_layer. One error line. */
dk_status dk_policy_params_validate(const dk_policy *p, const dk_policy_params *pp, int n_layer, dk_err *e);
/* Canonical text of the accepted parameters, e.g. "rho=0.667 ls=0.4" ("" for dense). */
void dk_policy_params_format(const dk_policy *p, const dk_policy_params *pp, char *buf, size_t n);

/* The first decision layer: floor(ls*n_layer), or `layer` for fastv/snapkv when >= 0; n_layer
 * means none (dense). */
int dk_policy_first_layer(const dk_policy *p, const dk_policy_params *pp, int n_layer);

/* ---- one context prefill with a policy ---- */

typedef struct {
    bool decided;                             /* a selection was made at this layer */
    int n_scored;                             /* rows scored (the layer's active rows) */
    int n_kept;                               /* rows active after it */
    float score_min, score_median, score_max; /* of the policy's score (NAN when not decided) */
} dk_policy_layer_stats;

typedef struct dk_policy_run {
    const dk_policy *p;
    dk_policy_params pp;
    int n_layer, n_tokens; /* chunk the run is made for */
    bool *decide;          /* (n_layer) decision layers */
    int n_decide;          /* their count */
    int first;             /* first decision layer (n_layer: none) */
    int n_start;           /* rows active at the first decision (multistep target base) */
    int j;                 /* decisions taken so far */
    int32_t *probe;        /* (n_probe) chunk rows whose attention is captured */
    int n_probe;
    float *score;                 /* (n_layer, n_tokens) score by chunk row, NAN where not scored */
    float *tmp;                   /* (n_tokens) scratch: scores of the active rows */
    void *order;                  /* (n_tokens) scratch for the selection sort */
    uint8_t *keep;                /* (n_tokens) scratch: row kept */
    dk_policy_layer_stats *stats; /* (n_layer) */
} dk_policy_run;

/* Prepares a run for one chunk of n_tokens rows on a model of n_layer layers (validates pp). */
dk_status dk_policy_run_create(const dk_policy *p, const dk_policy_params *pp, int n_layer, int n_tokens,
                               dk_policy_run **out, dk_err *e);
void dk_policy_run_free(dk_policy_run *r);
/* Points opts at the run: hook, hook_user, probe rows and layers (other fields untouched). */
void dk_policy_run_opts(dk_policy_run *r, dk_prefill_opts *o);
/* The hook itself (dk_layer_hook), user = the run. */
dk_status dk_policy_hook(void *user, dk_hook_point point, const dk_layer_view *v, int32_t *next_active,
                         int *n_next, dk_err *e);

/* ---- selection (shared by every policy; exposed for tests) ---- */

/* Writes into keep[0..n) which of the n rows (chunk indices rows[], ascending) stay active:
 * protected rows always; then by rule, the best scores (ties: lower index). target = K for
 * TOPK/BUDGET. order is scratch of dk_policy_order_size(n) bytes. Returns the kept count. */
int dk_policy_select(dk_policy_rule rule, const float *score, const int32_t *rows, int n, int n_tokens,
                     int sink, int recent, int target, double tau, void *order, uint8_t *keep);
size_t dk_policy_order_size(int n);

#endif
