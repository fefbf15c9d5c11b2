/* analyze.h — "stability implies redundancy", measured: on DENSE prefills of a task's contexts,
 * per layer, the attention update Δ_t = ‖U_t‖₂ (U = attention output after W_o, before the
 * residual add, DASH's score) and Δ_t/‖h_t‖ (h_t = the block input), the attention each context
 * row RECEIVES from the queries of every layer, and how much of that dense attention the rows a
 * halting method keeps would have received (attention recall).
 *
 * The prompt (context + question, n rows) is prefilled densely as one chunk, so every later
 * query, the question's included, is counted. Received attention of row j at layer l:
 *   mass_l[j] = (1/H) Σ_h Σ_{i ≥ j} P_h(i, j)        (the mean over heads of what all queries pay j)
 *   recv_l[j] = mass_l[j] / (n − j)                  (normalised by the queries that can see j)
 * Attention recall of a kept set K of context rows after layer l_s (the layers a halted row no
 * longer serves), over the context rows j < n_ctx:
 *   recall(K) = Σ_{l > l_s} Σ_{j ∈ K} mass_l[j] / Σ_{l > l_s} Σ_{j < n_ctx} mass_l[j]
 * (1 exactly when K holds every context row, 0 when it is empty). Δ statistics, deciles and
 * correlations are over the context rows (the ones a policy may halt).
 * The probabilities come from the engine's probe API (forward.h: probe_rows / probe_layers), with
 * every row a probe at every layer: O(H n²) floats per layer, a research tool for short contexts.
 *
 * dk_analyze_run aggregates over samples into a dk_analysis (store.h, where it is stored):
 *   Δ and Δ/‖h‖ percentiles per layer (1, 10, 25, 50, 75, 90, 99; pooled over samples' rows),
 *   per layer the mean recv and the Spearman correlation of Δ at l_s with recv_l (per sample,
 *   averaged), delta_received_spearman = Spearman of Δ at l_s with the mean recv over the layers
 *   after l_s (per sample, averaged), the mean recv of the layers after l_s by Δ-decile at l_s
 *   (deciles within each sample, averaged), recall and kept fraction per method and rho, and the
 *   Jaccard overlap of the methods' kept sets at the requested rho.
 * Library code: statuses and dk_err; progress through an optional callback; nothing printed. */
#ifndef DK_ANALYZE_H
#define DK_ANALYZE_H

#include <stdint.h>
#include "dk_common.h"
#include "forward.h"
#include "policy.h"
#include "store.h"
#include "task.h"

typedef struct {
    int n_layer, n, n_head;
    float *delta, *rel; /* (n_layer, n) Δ_t and Δ_t / ‖h_t‖ */
    double *mass;       /* (n_layer, n) attention mass received (mean over heads, summed over queries) */
    double *recv;       /* (n_layer, n) mass / (n - j) */
} dk_attn_profile;

/* Dense prefill of tokens[0..n) (c reset first) observing every layer. */
dk_status dk_analyze_profile(dk_ctx *c, const int32_t *tokens, int n, dk_attn_profile *out, dk_err *e);
void dk_attn_profile_free(dk_attn_profile *p);

/* Share of the mass that layers after_layer+1..n_layer-1 pay to rows j < n_rows (<= p->n) that
 * pays to the rows with keep[j] != 0. NAN when those rows receive no mass there. */
double dk_analyze_recall(const dk_attn_profile *p, int after_layer, const uint8_t *keep, int n_rows);

/* keep[0..n) = 1 for the rows a policy setting keeps through the last layer (c reset first;
 * dense keeps all). *n_kept receives their count. */
dk_status dk_analyze_kept(dk_ctx *c, const int32_t *tokens, int n, const dk_policy *pol,
                          const dk_policy_params *pp, uint8_t *keep, int *n_kept, dk_err *e);

/* |a ∩ b| / |a ∪ b| over n flags (1 when both are empty). */
double dk_analyze_jaccard(const uint8_t *a, const uint8_t *b, int n);

#define DK_ANALYZE_MAX_RHO 8
typedef struct {
    double ls;  /* decision layer fraction (DASH's l_s = floor(ls * L)), default 0.4 */
    double rho; /* the rho of the named recall lines and the overlaps, default 0.667 */
    double rho_grid[DK_ANALYZE_MAX_RHO]; /* recall vs rho (rho itself is added when missing) */
    int n_rho;
    uint64_t seed; /* random's seed */
    /* progress: called after each sample (may be NULL) */
    void (*progress)(void *user, int done, int total);
    void *progress_user;
} dk_analyze_opts;

void dk_analyze_opts_default(dk_analyze_opts *o);

/* The methods whose kept sets are compared, in this order. */
extern const char *const dk_analyze_methods[];
#define DK_ANALYZE_N_METHODS 6

/* Runs the analysis over the samples' contexts (BOS + context tokens, the part a policy may halt;
 * middle-truncated to budget tokens when budget > 0) and fills out (free with
 * dk_analysis_free). */
dk_status dk_analyze_run(const dk_model *m, const dk_sample_set *set, size_t budget, const dk_analyze_opts *o,
                         dk_analysis *out, dk_err *e);

#endif
