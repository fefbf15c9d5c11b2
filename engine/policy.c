/* policy.c — the halting policy table, its scoring functions and the one selection routine
 * (see policy.h for the definitions of every policy). */
#include "policy.h"
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- parameters ---- */

static const dk_policy_param dk_params[DK_POLICY_PARAM_COUNT] = {
    [DK_POLICY_PARAM_RHO] = {"rho", DK_POLICY_PARAM_NUM, 0.667, 0, 1, true, "fraction of the tokens halted",
                             true},
    [DK_POLICY_PARAM_LS] = {"ls", DK_POLICY_PARAM_NUM, 0.4, 0, 1, false,
                            "decision layer l_s = floor(ls * n_layer); 1 = never"},
    [DK_POLICY_PARAM_TAU] = {"tau", DK_POLICY_PARAM_NUM, NAN, 0, INFINITY, false,
                             "halt tokens whose score <= tau"},
    [DK_POLICY_PARAM_RELATIVE] = {"relative", DK_POLICY_PARAM_BOOL, 0, 0, 1, false,
                                  "score delta / ||h|| instead of delta"},
    [DK_POLICY_PARAM_KEEP] = {"keep", DK_POLICY_PARAM_INT, NAN, 1, INFINITY, false, "tokens kept"},
    [DK_POLICY_PARAM_K] = {"k", DK_POLICY_PARAM_INT, 2, 1, INFINITY, false, "layers between re-selections"},
    [DK_POLICY_PARAM_SEED] = {"seed", DK_POLICY_PARAM_INT, 0, 0, 9007199254740992.0, false,
                              "seed of the random scores"},
    [DK_POLICY_PARAM_LAYER] = {"layer", DK_POLICY_PARAM_INT, -1, -1, INFINITY, false,
                               "decision layer index; -1 = floor(ls * n_layer)"},
    [DK_POLICY_PARAM_WINDOW] = {"window", DK_POLICY_PARAM_INT, 32, 1, INFINITY, false,
                                "observation window (last context tokens)"},
    [DK_POLICY_PARAM_KERNEL] = {"kernel", DK_POLICY_PARAM_INT, 5, 1, INFINITY, false,
                                "max-pool kernel width (odd)"},
    [DK_POLICY_PARAM_SINK] = {"sink", DK_POLICY_PARAM_INT, 0, 0, INFINITY, false,
                              "first context tokens never halted"},
    [DK_POLICY_PARAM_RECENT] = {"recent", DK_POLICY_PARAM_INT, 0, 0, INFINITY, false,
                                "last context tokens never halted"},
};

const dk_policy_param *dk_policy_param_info(dk_policy_param_id id) {
    return (unsigned)id < DK_POLICY_PARAM_COUNT ? &dk_params[id] : NULL;
}

const dk_policy_param *dk_policy_param_find(const char *name) {
    for (int i = 0; i < DK_POLICY_PARAM_COUNT; i++)
        if (!strcmp(dk_params[i].name, name)) return &dk_params[i];
    return NULL;
}

/* ---- scoring functions: score[i] for active row i, higher = keep; return FLOPs spent ---- */

static double dk_norm2(const float *x, int d) {
    double s = 0;
    for (int j = 0; j < d; j++) s += (double)x[j] * x[j];
    return sqrt(s);
}

/* Δ_t = ‖U_t‖₂ (relative: / ‖x_in,t‖₂ when the policy's `relative` is set). */
static int64_t dk_score_delta(const dk_policy_run *r, const dk_layer_view *v, float *score) {
    bool rel = r->p->kind == DK_POLICY_DASH_TAU && r->pp.relative;
    for (int i = 0; i < v->n_active; i++) {
        double dl = dk_norm2(v->u + (size_t)i * v->n_embd, v->n_embd);
        if (rel) {
            double h = dk_norm2(v->x_in + (size_t)i * v->n_embd, v->n_embd);
            dl = h > 0 ? dl / h : INFINITY;
        }
        score[i] = (float)dl;
    }
    return (int64_t)v->n_active * (rel ? 2 * (2 * (int64_t)v->n_embd + 1) + 1 : 2 * (int64_t)v->n_embd + 1);
}

static int64_t dk_score_inverse(const dk_policy_run *r, const dk_layer_view *v, float *score) {
    int64_t f = dk_score_delta(r, v, score);
    for (int i = 0; i < v->n_active; i++) score[i] = -score[i];
    return f;
}

/* splitmix64 of (seed, layer, original position) -> uniform in [0, 1). */
static int64_t dk_score_random(const dk_policy_run *r, const dk_layer_view *v, float *score) {
    for (int i = 0; i < v->n_active; i++) {
        uint64_t z = (uint64_t)r->pp.seed * 0x9E3779B97F4A7C15ull + ((uint64_t)v->layer << 40) +
                     (uint64_t)(v->n_past + v->active[i]) + 0x632BE59BD9B4E019ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        score[i] = (float)((double)(z >> 40) / (double)(1ull << 24));
    }
    return 0;
}

/* 1 − cos(x_in,t, x_out,t) of the whole block. */
static int64_t dk_score_dblock(const dk_policy_run *r, const dk_layer_view *v, float *score) {
    (void)r;
    int d = v->n_embd;
    for (int i = 0; i < v->n_active; i++) {
        const float *a = v->x_in + (size_t)i * d, *b = v->x_out + (size_t)i * d;
        double ab = 0, aa = 0, bb = 0;
        for (int j = 0; j < d; j++) {
            ab += (double)a[j] * b[j];
            aa += (double)a[j] * a[j];
            bb += (double)b[j] * b[j];
        }
        score[i] = (float)(aa > 0 && bb > 0 ? 1.0 - ab / sqrt(aa * bb) : 0.0);
    }
    return (int64_t)v->n_active * (6 * (int64_t)d + 5);
}

/* Attention received by active row i from the probe rows, summed over probes, mean over heads.
 * Row i's key is cache entry kv_len - n_active + i (this call appended the active rows last). */
static int64_t dk_attention_received(const dk_layer_view *v, float *score) {
    int base = v->kv_len - v->n_active;
    for (int i = 0; i < v->n_active; i++) {
        double s = 0;
        for (int h = 0; h < v->n_head; h++)
            for (int q = 0; q < v->n_probe; q++)
                s += v->probs[((size_t)h * v->n_probe + q) * v->kv_len + base + i];
        score[i] = (float)(s / v->n_head);
    }
    return (int64_t)v->n_active * ((int64_t)v->n_head * v->n_probe + 1);
}

static int64_t dk_score_fastv(const dk_policy_run *r, const dk_layer_view *v, float *score) {
    (void)r;
    return dk_attention_received(v, score);
}

/* SnapKV: window attention, then max-pool over `kernel` neighbouring active rows (same length). */
static int64_t dk_score_snapkv(const dk_policy_run *r, const dk_layer_view *v, float *score) {
    int64_t f = dk_attention_received(v, score);
    int half = r->pp.kernel / 2, n = v->n_active;
    float *pooled = r->tmp + n; /* tmp has room for 2 * n_tokens */
    for (int i = 0; i < n; i++) {
        float m = score[i];
        for (int j = i - half < 0 ? 0 : i - half; j <= i + half && j < n; j++)
            m = score[j] > m ? score[j] : m;
        pooled[i] = m;
    }
    memcpy(score, pooled, (size_t)n * sizeof *score);
    return f + (int64_t)n * (2 * half);
}

/* ---- the policy table ---- */

#define P(x) DK_POLICY_PARAM_##x
static const dk_policy_param_id dk_p_dense[] = {P(COUNT)};
static const dk_policy_param_id dk_p_dash[] = {P(RHO), P(LS), P(SINK), P(RECENT), P(COUNT)};
static const dk_policy_param_id dk_p_tau[] = {P(TAU), P(RELATIVE), P(LS), P(SINK), P(RECENT), P(COUNT)};
static const dk_policy_param_id dk_p_keep[] = {P(KEEP), P(LS), P(SINK), P(RECENT), P(COUNT)};
static const dk_policy_param_id dk_p_multi[] = {P(RHO), P(LS), P(K), P(SINK), P(RECENT), P(COUNT)};
static const dk_policy_param_id dk_p_random[] = {P(RHO), P(LS), P(SEED), P(SINK), P(RECENT), P(COUNT)};
static const dk_policy_param_id dk_p_fastv[] = {P(RHO), P(LS), P(LAYER), P(SINK), P(RECENT), P(COUNT)};
static const dk_policy_param_id dk_p_snapkv[] = {P(RHO),    P(LS),   P(LAYER),  P(WINDOW),
                                                 P(KERNEL), P(SINK), P(RECENT), P(COUNT)};
#undef P

static const dk_policy dk_policies[DK_POLICY_COUNT] = {
    {"dense", DK_POLICY_DENSE, "no halting", dk_p_dense, DK_HOOK_AFTER_ATTN, DK_POLICY_PROBE_NONE,
     DK_POLICY_RULE_NONE, NULL},
    {"dash", DK_POLICY_DASH, "DASH: keep the top (1-rho) by ||U||_2 at l_s", dk_p_dash, DK_HOOK_AFTER_ATTN,
     DK_POLICY_PROBE_NONE, DK_POLICY_RULE_TOPK, dk_score_delta},
    {"dash-tau", DK_POLICY_DASH_TAU, "DASH threshold: halt ||U||_2 (or ||U||/||h||) <= tau", dk_p_tau,
     DK_HOOK_AFTER_ATTN, DK_POLICY_PROBE_NONE, DK_POLICY_RULE_THRESHOLD, dk_score_delta},
    {"dash-keep", DK_POLICY_DASH_KEEP, "DASH budget: keep the `keep` largest ||U||_2", dk_p_keep,
     DK_HOOK_AFTER_ATTN, DK_POLICY_PROBE_NONE, DK_POLICY_RULE_BUDGET, dk_score_delta},
    {"multistep", DK_POLICY_MULTISTEP, "DASH re-selecting every k layers from l_s to the same final count",
     dk_p_multi, DK_HOOK_AFTER_ATTN, DK_POLICY_PROBE_NONE, DK_POLICY_RULE_TOPK, dk_score_delta},
    {"random", DK_POLICY_RANDOM, "ablation: keep a seeded random (1-rho) at l_s", dk_p_random,
     DK_HOOK_AFTER_ATTN, DK_POLICY_PROBE_NONE, DK_POLICY_RULE_TOPK, dk_score_random},
    {"inverse", DK_POLICY_INVERSE, "ablation: halt the HIGHEST ||U||_2", dk_p_dash, DK_HOOK_AFTER_ATTN,
     DK_POLICY_PROBE_NONE, DK_POLICY_RULE_TOPK, dk_score_inverse},
    {"dblock", DK_POLICY_DBLOCK, "ablation: score 1 - cos(h_in, h_out) of block l_s", dk_p_dash,
     DK_HOOK_AFTER_LAYER, DK_POLICY_PROBE_NONE, DK_POLICY_RULE_TOPK, dk_score_dblock},
    {"fastv", DK_POLICY_FASTV, "FastV: drop the rho least attended by the last token", dk_p_fastv,
     DK_HOOK_AFTER_ATTN, DK_POLICY_PROBE_LAST, DK_POLICY_RULE_TOPK, dk_score_fastv},
    {"snapkv", DK_POLICY_SNAPKV, "SnapKV (prune): drop the rho least attended by the window, max-pooled",
     dk_p_snapkv, DK_HOOK_AFTER_ATTN, DK_POLICY_PROBE_WINDOW, DK_POLICY_RULE_TOPK, dk_score_snapkv},
};

int dk_policy_count(void) { return DK_POLICY_COUNT; }
const dk_policy *dk_policy_at(int i) { return i >= 0 && i < DK_POLICY_COUNT ? &dk_policies[i] : NULL; }

const dk_policy *dk_policy_find(const char *name) {
    for (int i = 0; i < DK_POLICY_COUNT; i++)
        if (!strcmp(dk_policies[i].name, name)) return &dk_policies[i];
    return NULL;
}

const char *dk_policy_names(void) {
    static char buf[256];
    if (!buf[0]) {
        size_t o = 0;
        for (int i = 0; i < DK_POLICY_COUNT; i++)
            o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", i ? ", " : "", dk_policies[i].name);
    }
    return buf;
}

dk_status dk_policy_lookup(const char *name, const dk_policy **out, dk_err *e) {
    *out = dk_policy_find(name);
    if (!*out) return dk_fail(e, DK_ERR_ARG, "unknown method '%s' (known: %s)", name, dk_policy_names());
    return DK_OK;
}

bool dk_policy_accepts(const dk_policy *p, dk_policy_param_id id) {
    for (const dk_policy_param_id *q = p->params; *q != DK_POLICY_PARAM_COUNT; q++)
        if (*q == id) return true;
    return false;
}

/* ---- parameter values ---- */

/* Where each parameter's value lives in dk_policy_params, and as what. */
typedef enum { DK_SLOT_NUM, DK_SLOT_INT, DK_SLOT_BOOL, DK_SLOT_I64 } dk_param_slot_kind;
#define DK_SLOT(field, kind) \
    { offsetof(dk_policy_params, field), DK_SLOT_##kind }
static const struct {
    size_t off;
    dk_param_slot_kind kind;
} dk_param_slots[DK_POLICY_PARAM_COUNT] = {
    [DK_POLICY_PARAM_RHO] = DK_SLOT(rho, NUM),       [DK_POLICY_PARAM_LS] = DK_SLOT(ls, NUM),
    [DK_POLICY_PARAM_TAU] = DK_SLOT(tau, NUM),       [DK_POLICY_PARAM_RELATIVE] = DK_SLOT(relative, BOOL),
    [DK_POLICY_PARAM_KEEP] = DK_SLOT(keep, INT),     [DK_POLICY_PARAM_K] = DK_SLOT(k, INT),
    [DK_POLICY_PARAM_SEED] = DK_SLOT(seed, I64),     [DK_POLICY_PARAM_LAYER] = DK_SLOT(layer, INT),
    [DK_POLICY_PARAM_WINDOW] = DK_SLOT(window, INT), [DK_POLICY_PARAM_KERNEL] = DK_SLOT(kernel, INT),
    [DK_POLICY_PARAM_SINK] = DK_SLOT(sink, INT),     [DK_POLICY_PARAM_RECENT] = DK_SLOT(recent, INT),
};

double dk_policy_params_get(const dk_policy_params *pp, dk_policy_param_id id) {
    if ((unsigned)id >= DK_POLICY_PARAM_COUNT) return NAN;
    const char *at = (const char *)pp + dk_param_slots[id].off;
    switch (dk_param_slots[id].kind) {
    case DK_SLOT_NUM: return *(const double *)at;
    case DK_SLOT_INT: return *(const int *)at;
    case DK_SLOT_BOOL: return *(const bool *)at;
    default: return (double)*(const int64_t *)at;
    }
}

static void dk_param_put(dk_policy_params *pp, dk_policy_param_id id, double x) {
    char *at = (char *)pp + dk_param_slots[id].off;
    switch (dk_param_slots[id].kind) {
    case DK_SLOT_NUM: *(double *)at = x; break;
    case DK_SLOT_INT:
        *(int *)at = isfinite(x) && fabs(x) < 2e9 ? (int)x : (x > 0 ? 2147483647 : -2147483647);
        break;
    case DK_SLOT_BOOL: *(bool *)at = x != 0; break;
    default: *(int64_t *)at = isfinite(x) ? (int64_t)x : 0; break;
    }
}

void dk_policy_params_default(dk_policy_params *pp) {
    memset(pp, 0, sizeof *pp);
    for (int i = 0; i < DK_POLICY_PARAM_COUNT; i++) dk_param_put(pp, (dk_policy_param_id)i, dk_params[i].def);
    pp->tau = NAN;
    pp->keep = 0;
    pp->given = 0;
}

/* Range/type check of one value; 0 ok, else the error. */
static dk_status dk_param_check(const dk_policy *p, dk_policy_param_id id, double x, dk_err *e) {
    const dk_policy_param *d = &dk_params[id];
    if (isnan(x)) return dk_fail(e, DK_ERR_ARG, "%s: %s = nan is not a number", p->name, d->name);
    if (d->type == DK_POLICY_PARAM_BOOL && x != 0 && x != 1)
        return dk_fail(e, DK_ERR_ARG, "%s: %s = %g is not a boolean (0 or 1)", p->name, d->name, x);
    if (d->type == DK_POLICY_PARAM_INT && (!isfinite(x) || x != floor(x)))
        return dk_fail(e, DK_ERR_ARG, "%s: %s = %g is not an integer", p->name, d->name, x);
    if (x < d->lo || x > d->hi || (d->hi_open && x >= d->hi)) {
        if (isinf(d->hi))
            return dk_fail(e, DK_ERR_ARG, "%s: %s = %g must be >= %g", p->name, d->name, x, d->lo);
        return dk_fail(e, DK_ERR_ARG, "%s: %s = %g is outside [%g, %g%c", p->name, d->name, x, d->lo, d->hi,
                       d->hi_open ? ')' : ']');
    }
    if (id == DK_POLICY_PARAM_KERNEL && ((int)x % 2) == 0)
        return dk_fail(e, DK_ERR_ARG, "%s: kernel = %g must be odd", p->name, x);
    return DK_OK;
}

dk_status dk_policy_params_set(const dk_policy *p, dk_policy_params *pp, const char *name, double value,
                               dk_err *e) {
    const dk_policy_param *d = dk_policy_param_find(name);
    if (!d || !dk_policy_accepts(p, (dk_policy_param_id)(d - dk_params))) {
        char acc[256];
        size_t o = 0;
        acc[0] = 0;
        for (const dk_policy_param_id *q = p->params; *q != DK_POLICY_PARAM_COUNT; q++)
            o += (size_t)snprintf(acc + o, sizeof acc - o, "%s%s", o ? ", " : "", dk_params[*q].name);
        return dk_fail(e, DK_ERR_ARG, "%s: unknown parameter '%s' (accepted: %s)", p->name, name,
                       o ? acc : "none");
    }
    dk_policy_param_id id = (dk_policy_param_id)(d - dk_params);
    dk_status st = dk_param_check(p, id, value, e);
    if (st) return st;
    dk_param_put(pp, id, value);
    pp->given |= 1u << id;
    return DK_OK;
}

dk_status dk_policy_params_set_text(const dk_policy *p, dk_policy_params *pp, const char *name,
                                    const char *text, dk_err *e) {
    double x;
    char *end;
    if (!strcmp(text, "true")) x = 1;
    else if (!strcmp(text, "false")) x = 0;
    else {
        x = strtod(text, &end);
        if (end == text || *end || isnan(x))
            return dk_fail(e, DK_ERR_ARG, "%s: %s = '%s' is not a number", p->name, name, text);
    }
    return dk_policy_params_set(p, pp, name, x, e);
}

int dk_policy_first_layer(const dk_policy *p, const dk_policy_params *pp, int n_layer) {
    if (p->rule == DK_POLICY_RULE_NONE) return n_layer;
    if (dk_policy_accepts(p, DK_POLICY_PARAM_LAYER) && pp->layer >= 0)
        return pp->layer < n_layer ? pp->layer : n_layer;
    int l = (int)floor(pp->ls * (double)n_layer);
    return l < n_layer ? l : n_layer;
}

dk_status dk_policy_params_validate(const dk_policy *p, const dk_policy_params *pp, int n_layer, dk_err *e) {
    dk_status st;
    for (const dk_policy_param_id *q = p->params; *q != DK_POLICY_PARAM_COUNT; q++) {
        if (isnan(dk_params[*q].def) && !(pp->given & (1u << *q)))
            return dk_fail(e, DK_ERR_ARG, "%s: %s is required (%s)", p->name, dk_params[*q].name,
                           dk_params[*q].help);
        if ((st = dk_param_check(p, *q, dk_policy_params_get(pp, *q), e))) return st;
    }
    if (n_layer <= 0) return DK_OK;
    if (dk_policy_accepts(p, DK_POLICY_PARAM_LS)) {
        double ls_layer = floor(pp->ls * (double)n_layer);
        if (ls_layer > n_layer)
            return dk_fail(e, DK_ERR_ARG, "%s: ls = %g gives l_s = %g > n_layer = %d", p->name, pp->ls,
                           ls_layer, n_layer);
    }
    if (dk_policy_accepts(p, DK_POLICY_PARAM_LAYER) && pp->layer >= n_layer)
        return dk_fail(e, DK_ERR_ARG, "%s: layer = %d must be < n_layer = %d", p->name, pp->layer, n_layer);
    return DK_OK;
}

void dk_policy_params_format(const dk_policy *p, const dk_policy_params *pp, char *buf, size_t n) {
    size_t o = 0;
    buf[0] = 0;
    for (const dk_policy_param_id *q = p->params; *q != DK_POLICY_PARAM_COUNT && o < n; q++)
        o += (size_t)snprintf(buf + o, n - o, "%s%s=%.10g", o ? " " : "", dk_params[*q].name,
                              dk_policy_params_get(pp, *q));
}

/* ---- selection ---- */

typedef struct {
    float s;
    int32_t row;
} dk_ranked;

/* score descending (NaN last), then row ascending */
static int dk_ranked_cmp(const void *a, const void *b) {
    const dk_ranked *x = a, *y = b;
    bool nx = isnan(x->s), ny = isnan(y->s);
    if (nx != ny) return nx ? 1 : -1;
    if (!nx && x->s != y->s) return x->s > y->s ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

size_t dk_policy_order_size(int n) { return (size_t)(n > 0 ? n : 1) * sizeof(dk_ranked); }

int dk_policy_select(dk_policy_rule rule, const float *score, const int32_t *rows, int n, int n_tokens,
                     int sink, int recent, int target, double tau, void *order, uint8_t *keep) {
    dk_ranked *ord = order;
    int n_keep = 0, n_free = 0;
    for (int i = 0; i < n; i++) {
        keep[i] = rows[i] < sink || rows[i] >= n_tokens - recent; /* protected */
        n_keep += keep[i];
        if (!keep[i]) ord[n_free++] = (dk_ranked){score[i], i};
    }
    if (rule == DK_POLICY_RULE_THRESHOLD) {
        for (int i = 0; i < n_free; i++)
            if (ord[i].s > tau) {
                keep[ord[i].row] = 1;
                n_keep++;
            }
        return n_keep;
    }
    qsort(ord, (size_t)n_free, sizeof *ord, dk_ranked_cmp);
    for (int i = 0; i < n_free && n_keep < target; i++) {
        keep[ord[i].row] = 1;
        n_keep++;
    }
    return n_keep;
}

/* ---- the run: one context prefill ---- */

dk_status dk_policy_run_create(const dk_policy *p, const dk_policy_params *pp, int n_layer, int n_tokens,
                               dk_policy_run **out, dk_err *e) {
    *out = NULL;
    dk_status st = dk_policy_params_validate(p, pp, n_layer, e);
    if (st) return st;
    if (n_tokens <= 0) return dk_fail(e, DK_ERR_ARG, "%s: a chunk of %d tokens", p->name, n_tokens);
    dk_policy_run *r = calloc(1, sizeof *r);
    if (!r) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    r->p = p;
    r->pp = *pp;
    r->n_layer = n_layer;
    r->n_tokens = n_tokens;
    r->first = dk_policy_first_layer(p, pp, n_layer);
    size_t nt = (size_t)n_tokens;
    r->decide = calloc((size_t)n_layer, sizeof *r->decide);
    r->stats = calloc((size_t)n_layer, sizeof *r->stats);
    r->score = malloc((size_t)n_layer * nt * sizeof *r->score);
    r->tmp = malloc(2 * nt * sizeof *r->tmp);
    r->order = malloc(dk_policy_order_size(n_tokens));
    r->keep = malloc(nt);
    r->probe = malloc(nt * sizeof *r->probe);
    if (!r->decide || !r->stats || !r->score || !r->tmp || !r->order || !r->keep || !r->probe) {
        dk_policy_run_free(r);
        return dk_fail(e, DK_ERR_NOMEM, "out of memory for a %d-token policy run", n_tokens);
    }
    for (size_t i = 0; i < (size_t)n_layer * nt; i++) r->score[i] = NAN;
    for (int l = 0; l < n_layer; l++) {
        r->stats[l].score_min = r->stats[l].score_median = r->stats[l].score_max = NAN;
        /* a decision at the last layer would change nothing: none there */
        bool d = l == r->first && l < n_layer - 1;
        if (p->kind == DK_POLICY_MULTISTEP)
            d = l >= r->first && l < n_layer - 1 && (l - r->first) % pp->k == 0;
        r->decide[l] = d;
        r->n_decide += d;
    }
    if (p->probe == DK_POLICY_PROBE_LAST) {
        r->probe[0] = n_tokens - 1;
        r->n_probe = 1;
    }
    if (p->probe == DK_POLICY_PROBE_WINDOW) {
        r->n_probe = pp->window < n_tokens ? pp->window : n_tokens;
        for (int i = 0; i < r->n_probe; i++) r->probe[i] = n_tokens - r->n_probe + i;
    }
    *out = r;
    return DK_OK;
}

void dk_policy_run_free(dk_policy_run *r) {
    if (!r) return;
    DK_FREE_ALL(r->decide, r->stats, r->score, r->tmp, r->order, r->keep, r->probe);
    free(r);
}

void dk_policy_run_opts(dk_policy_run *r, dk_prefill_opts *o) {
    o->hook = r->p->rule == DK_POLICY_RULE_NONE ? NULL : dk_policy_hook;
    o->hook_user = r;
    o->probe_rows = r->n_probe ? r->probe : NULL;
    o->n_probe = r->n_probe;
    o->probe_layers = r->n_probe ? r->decide : NULL;
}

/* ---- the halting decision ----
 * At a decision layer: score the active rows, choose by the policy's rule (protected rows always
 * kept), hand the kept rows (ascending) to the engine as the active set of the next layers. */
dk_status dk_policy_hook(void *user, dk_hook_point point, const dk_layer_view *v, int32_t *next_active,
                         int *n_next, dk_err *e) {
    dk_policy_run *r = user;
    const dk_policy *p = r->p;
    if (point != p->point || !r->decide[v->layer]) return DK_OK;
    if (v->n_tokens != r->n_tokens)
        return dk_fail(e, DK_ERR_STATE, "%s: policy run made for %d tokens used on a %d-token chunk", p->name,
                       r->n_tokens, v->n_tokens);
    if (p->probe != DK_POLICY_PROBE_NONE && (!v->probs || v->n_probe == 0))
        return dk_fail(e, DK_ERR_STATE, "%s: no attention probabilities at layer %d (probe rows halted?)",
                       p->name, v->layer);
    int n = v->n_active;
    if (n == 0) return DK_OK;

    float *s = r->tmp;
    v->flops->c[DK_FLOPS_HALT] += p->score(r, v, s);

    int target = 0, sink = r->pp.sink, recent = r->pp.recent;
    if (p->kind == DK_POLICY_SNAPKV && recent < r->n_probe) recent = r->n_probe; /* the window stays */
    if (r->j == 0) r->n_start = n;
    if (p->rule == DK_POLICY_RULE_TOPK) {
        double frac = 1.0 - r->pp.rho;
        if (p->kind == DK_POLICY_MULTISTEP) frac = pow(frac, (double)(r->j + 1) / (double)r->n_decide);
        target = (int)floor(frac * (double)r->n_start);
    } else if (p->rule == DK_POLICY_RULE_BUDGET) target = r->pp.keep;
    int kept = dk_policy_select(p->rule, s, v->active, n, v->n_tokens, sink, recent, target, r->pp.tau,
                                r->order, r->keep);

    *n_next = 0;
    for (int i = 0; i < n; i++)
        if (r->keep[i]) next_active[(*n_next)++] = v->active[i];
    r->j++;

    /* statistics: scores by chunk row, min/median/max */
    dk_policy_layer_stats *st = &r->stats[v->layer];
    float *row = r->score + (size_t)v->layer * r->n_tokens, *sorted = r->tmp + n;
    for (int i = 0; i < n; i++) row[v->active[i]] = s[i];
    memcpy(sorted, s, (size_t)n * sizeof *s);
    qsort(sorted, (size_t)n, sizeof *sorted, dk_cmp_f32);
    *st = (dk_policy_layer_stats){
        true,         n, kept, sorted[0], n % 2 ? sorted[n / 2] : 0.5f * (sorted[n / 2 - 1] + sorted[n / 2]),
        sorted[n - 1]};
    return DK_OK;
}
