/* ruler.c — RULER-style generators (passkey, niah, vt, cwe, fwe, qa), sized in model tokens: the
 * haystack, the per-sample plans, the sizing search and the driver (the prompt text of a plan:
 * ruler_build.c; what both share: ruler_int.h). */
#include "ruler.h"
#include "ruler_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const dk_ruler_noise =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

/* ---- haystack text and vocabulary ---- */

static dk_status slurp(const char *path, char **out, dk_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return dk_fail(e, DK_ERR_IO, "%s: %s", path, strerror(errno));
    dk_strbuf s = {0};
    char buf[1 << 15];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) dk_strbuf_add(&s, buf, k);
    int err = ferror(f);
    fclose(f);
    if (err || s.oom) {
        free(s.s);
        return dk_fail(e, err ? DK_ERR_IO : DK_ERR_NOMEM, "%s: read failed", path);
    }
    if (!s.s) s.s = strdup("");
    *out = s.s;
    return DK_OK;
}

dk_status dk_ruler_read_haystack(const char *path, char **text, dk_err *e) {
    char *raw;
    dk_status st = slurp(path, &raw, e);
    if (st) return st;
    char *b = raw, *end = raw + strlen(raw);
    if (!strncmp(b, "\xEF\xBB\xBF", 3)) b += 3;
    char *st_m = strstr(b, "*** START OF");
    if (st_m) {
        char *nl = strchr(st_m, '\n');
        b = nl ? nl + 1 : end;
    }
    char *en_m = strstr(b, "*** END OF");
    if (en_m) end = en_m;
    size_t n = 0;
    char *o = malloc((size_t)(end - b) + 1);
    if (!o) {
        free(raw);
        return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    }
    for (char *p = b; p < end; p++)
        if (!(*p == '\r' && p + 1 < end && p[1] == '\n')) o[n++] = *p;
    o[n] = 0;
    free(raw);
    if (!n) {
        free(o);
        return dk_fail(e, DK_ERR_FORMAT, "%s: empty haystack text", path);
    }
    *text = o;
    return DK_OK;
}

static void wl_free(wordlist *l) {
    for (int i = 0; i < l->n; i++) free(l->w[i]);
    free(l->w);
    memset(l, 0, sizeof *l);
}

/* Whitespace-separated words of text (as written). */
/* Room for element n of the array *arr (elements of elem bytes, *cap of them allocated): doubled,
 * from first, when full; false when out of memory (*arr unchanged). */
static bool grow(void **arr, int n, int *cap, size_t elem, int first) {
    if (n < *cap) return true;
    int nc = *cap ? 2 * *cap : first;
    void *p = realloc(*arr, (size_t)nc * elem);
    if (!p) return false;
    *arr = p;
    *cap = nc;
    return true;
}

static int words_split(const char *text, wordlist *out) {
    memset(out, 0, sizeof *out);
    int cap = 0;
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r' || *p == '\f' || *p == '\v') p++;
        if (!*p) break;
        const char *q = p;
        while (*q && !(*q == ' ' || *q == '\n' || *q == '\t' || *q == '\r' || *q == '\f' || *q == '\v')) q++;
        if (!grow((void **)&out->w, out->n, &cap, sizeof *out->w, 1024)) return 0;
        if (!(out->w[out->n] = strndup(p, (size_t)(q - p)))) return 0;
        out->n++;
        p = q;
    }
    return 1;
}

/* Distinct lowercase alphabetic words of >= 3 letters, first-seen order. */
static int vocab_build(const wordlist *words, wordlist *out) {
    memset(out, 0, sizeof *out);
    size_t hcap = 1 << 16;
    char **ht = calloc(hcap, sizeof *ht); /* open addressing; borrowed pointers into out */
    if (!ht) return 0;
    int cap = 0, ok = 1;
    for (int i = 0; i < words->n && ok; i++) {
        const char *w = words->w[i];
        size_t L = strlen(w), a = 0, b = L;
        while (a < b && !(w[a] >= 'a' && w[a] <= 'z') && !(w[a] >= 'A' && w[a] <= 'Z')) a++;
        while (b > a && !(w[b - 1] >= 'a' && w[b - 1] <= 'z')) b--;
        if (b - a < 3) continue;
        int alpha = 1;
        for (size_t k = a; k < b; k++)
            if (!(w[k] >= 'a' && w[k] <= 'z')) alpha = 0;
        if (!alpha) continue;
        uint64_t h = 1469598103934665603ull;
        for (size_t k = a; k < b; k++) h = (h ^ (unsigned char)w[k]) * 1099511628211ull;
        size_t slot = h & (hcap - 1);
        int dup = 0;
        while (ht[slot]) {
            if (strlen(ht[slot]) == b - a && !strncmp(ht[slot], w + a, b - a)) {
                dup = 1;
                break;
            }
            slot = (slot + 1) & (hcap - 1);
        }
        if (dup) continue;
        if ((size_t)out->n * 2 >= hcap) break; /* 32k words is plenty */
        if (!grow((void **)&out->w, out->n, &cap, sizeof *out->w, 1024)) {
            ok = 0;
            break;
        }
        if (!(out->w[out->n] = strndup(w + a, b - a))) {
            ok = 0;
            break;
        }
        ht[slot] = out->w[out->n++];
    }
    free(ht);
    return ok;
}

static void gen_ctx_free(gen_ctx *g) {
    free(g->text);
    wl_free(&g->essay);
    wl_free(&g->vocab);
    for (int i = 0; i < g->n_docs; i++) free(g->docs[i]);
    free(g->docs);
    for (int i = 0; i < g->n_qas; i++) {
        free(g->qas[i].q);
        for (int k = 0; k < g->qas[i].n_ans; k++) free(g->qas[i].ans[k]);
        free(g->qas[i].ans);
    }
    free(g->qas);
}

static void plan_free(sample_plan *s) {
    for (int i = 0; i < s->n_needles; i++) free(s->needle[i]);
    free(s->needle);
    free(s->nd_depth);
    for (int i = 0; i < s->n_ans; i++) free(s->ans[i]);
    free(s->ans);
    for (int i = 0; i < s->n_stmt; i++) free(s->stmt[i]);
    free(s->stmt);
    free(s->st_pos);
    wl_free(&s->coded);
    free(s->doc_perm);
}

static double pick_depth(const dk_ruler_params *p, rng_t *r) {
    if (p->depth >= 0) return p->depth;
    return round(100.0 * (double)rng_below(r, 40) / 39.0); /* RULER: 40 evenly spaced depths */
}

/* ---- sizing ---- */

static long prompt_tokens(const gen_ctx *g, const dk_strbuf *c, const dk_strbuf *q, dk_err *e) {
    dk_strbuf all = {0};
    dk_strbuf_add(&all, c->s, c->n);
    dk_strbuf_add(&all, q->s, q->n);
    if (all.oom) {
        free(all.s);
        dk_fail(e, DK_ERR_NOMEM, "out of memory");
        return -1;
    }
    long n = dk_tok_count(g->tok, all.s, all.n, e);
    free(all.s);
    return n;
}

/* Upper bound on haystack units for the kind (qa: distractor documents available). */
static long max_units(const gen_ctx *g) {
    switch (g->p->kind) {
    case DK_RULER_QA: return g->n_docs - 1;
    case DK_RULER_CWE: return (long)(g->vocab.n - g->p->n_cw) * g->p->freq_ucw;
    default: return 1L << 26;
    }
}

/* Largest h with tokens(build(h)) <= length. */
static dk_status size_sample(const gen_ctx *g, sample_plan *sp, long *h_out, long *tok_out, dk_strbuf *c,
                             dk_strbuf *q, dk_err *e) {
    long L = g->p->length, hmax = max_units(g);
    ruler_build(g, sp, 0, c, q);
    long t0 = prompt_tokens(g, c, q, e);
    if (t0 < 0) return DK_ERR_ARG;
    if (t0 > L)
        return dk_fail(e, DK_ERR_ARG,
                       "length %ld is too small: the prompt without haystack already has %ld tokens", L, t0);
    /* exponential then binary search; tokens grow with h */
    long lo = 0, hi = 16, tlo = t0;
    for (;;) {
        if (hi > hmax) hi = hmax;
        ruler_build(g, sp, hi, c, q);
        long t = prompt_tokens(g, c, q, e);
        if (t < 0) return DK_ERR_ARG;
        if (t > L) break;
        lo = hi;
        tlo = t;
        if (hi == hmax) break;
        hi *= 2;
    }
    while (hi - lo > 1 && lo < hmax) {
        long mid = lo + (hi - lo) / 2;
        ruler_build(g, sp, mid, c, q);
        long t = prompt_tokens(g, c, q, e);
        if (t < 0) return DK_ERR_ARG;
        if (t <= L) {
            lo = mid;
            tlo = t;
        } else hi = mid;
    }
    *h_out = lo;
    *tok_out = tlo;
    return DK_OK;
}

/* ---- plans ---- */

static char *xstrdup(const char *s, int *oom) {
    char *r = strdup(s);
    if (!r) *oom = 1;
    return r;
}

/* plan_make for DK_RULER_PASSKEY: a 5-digit pass key, stated twice in one needle at the requested depth. */
static dk_status plan_passkey(const gen_ctx *g, sample_plan *sp, int *oom, dk_err *e) {
    const dk_ruler_params *p = g->p;
    rng_t *r = &sp->rng;
    char buf[256];
    char key[16];
    snprintf(key, sizeof key, "%05llu", (unsigned long long)(10000 + rng_below(r, 90000)));
    snprintf(buf, sizeof buf, "The pass key is %s. Remember it. %s is the pass key.", key, key);
    sp->n_needles = 1;
    sp->needle = calloc(1, sizeof(char *));
    sp->nd_depth = calloc(1, sizeof(double));
    sp->ans = calloc(1, sizeof(char *));
    if (!sp->needle || !sp->nd_depth || !sp->ans) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    sp->needle[0] = xstrdup(buf, oom);
    sp->nd_depth[0] = pick_depth(p, r);
    sp->ans[0] = xstrdup(key, oom);
    sp->n_ans = 1;
    return DK_OK;
}

/* plan_make for DK_RULER_NIAH: keys and values (distinct, none inside another or the haystack), one needle per pair; the queried keys' needles at the requested depth, distractors at random depths. */
static dk_status plan_niah(const gen_ctx *g, sample_plan *sp, int *oom, dk_err *e) {
    const dk_ruler_params *p = g->p;
    rng_t *r = &sp->rng;
    char buf[256];
    int nk = p->n_keys, nv = p->n_values, n = nk * nv;
    snprintf(sp->vtype, sizeof sp->vtype, "%s", type_plural(p->value_type));
    sp->n_needles = n;
    sp->needle = calloc((size_t)n, sizeof(char *));
    sp->nd_depth = calloc((size_t)n, sizeof(double));
    sp->ans = calloc((size_t)(p->n_queries * nv), sizeof(char *));
    char(*keys)[128] = calloc((size_t)nk, 128), (*vals)[128] = calloc((size_t)n, 128);
    if (!sp->needle || !sp->nd_depth || !sp->ans || !keys || !vals) {
        free(keys);
        free(vals);
        return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    }
    for (int k = 0; k < nk; k++) { /* distinct keys, no key inside another */
        for (int tries = 0;; tries++) {
            rand_value(r, p->key_type, &g->vocab, keys[k], 128);
            int clash = 0;
            for (int j = 0; j < k; j++)
                if (strstr(keys[j], keys[k]) || strstr(keys[k], keys[j])) clash = 1;
            if (g->text && strstr(g->text, keys[k])) clash = 1;
            if (!clash || tries > 1000) break;
        }
    }
    for (int i = 0; i < n; i++) {
        for (int tries = 0;; tries++) {
            rand_value(r, p->value_type, &g->vocab, vals[i], 128);
            int clash = 0;
            for (int j = 0; j < i; j++)
                if (strstr(vals[j], vals[i]) || strstr(vals[i], vals[j])) clash = 1;
            for (int j = 0; j < nk; j++)
                if (strstr(keys[j], vals[i]) || strstr(vals[i], keys[j])) clash = 1;
            if (g->text && strstr(g->text, vals[i])) clash = 1;
            if (!clash || tries > 1000) break;
        }
    }
    double d0 = pick_depth(p, r);
    for (int k = 0; k < nk; k++)
        for (int v = 0; v < nv; v++) {
            int i = k * nv + v;
            snprintf(buf, sizeof buf, "One of the special magic %s for %s is: %s.", sp->vtype, keys[k],
                     vals[i]);
            sp->needle[i] = xstrdup(buf, oom);
            /* queried keys' needles at the requested depth; distractors at random depths */
            sp->nd_depth[i] = k < p->n_queries
                                  ? (k == 0 && v == 0 ? d0 : (p->depth >= 0 ? d0 : pick_depth(p, r)))
                                  : round(100.0 * (double)rng_below(r, 40) / 39.0);
            if (k < p->n_queries) sp->ans[sp->n_ans++] = xstrdup(vals[i], oom);
        }
    sp->target = 0;
    size_t qn = 0;
    for (int k = 0; k < p->n_queries; k++) {
        const char *sep = k == 0 ? ""
                                 : (k == p->n_queries - 1 ? (p->n_queries > 2 ? ", and " : " and ") : ", ");
        qn += (size_t)snprintf(sp->query + qn, sizeof sp->query - qn, "%s%s", sep, keys[k]);
        if (qn >= sizeof sp->query) {
            free(keys);
            free(vals);
            return dk_fail(e, DK_ERR_ARG, "too many queries");
        }
    }
    free(keys);
    free(vals);
    return DK_OK;
}

/* plan_make for DK_RULER_VT: variable-tracking chains, their statements interleaved at random positions. */
static dk_status plan_vt(const gen_ctx *g, sample_plan *sp, int *oom, dk_err *e) {
    const dk_ruler_params *p = g->p;
    rng_t *r = &sp->rng;
    char buf[256];
    int nc = p->n_chains, nh = p->n_hops, nvar = nc * (nh + 1);
    char(*vars)[8] = calloc((size_t)nvar, 8);
    char(*vals)[8] = calloc((size_t)nc, 8);
    sp->n_stmt = nvar;
    sp->stmt = calloc((size_t)nvar, sizeof(char *));
    sp->st_pos = calloc((size_t)nvar, sizeof(double));
    sp->ans = calloc((size_t)(nh + 1), sizeof(char *));
    if (!vars || !vals || !sp->stmt || !sp->st_pos || !sp->ans) {
        free(vars);
        free(vals);
        return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < nvar; i++)
        for (;;) {
            for (int k = 0; k < 5; k++) vars[i][k] = (char)('A' + rng_below(r, 26));
            int dup = 0;
            for (int j = 0; j < i; j++)
                if (!strcmp(vars[i], vars[j])) dup = 1;
            if (!dup) break;
        }
    for (int c = 0; c < nc; c++)
        for (;;) {
            snprintf(vals[c], 8, "%05llu", (unsigned long long)(10000 + rng_below(r, 90000)));
            int dup = 0;
            for (int j = 0; j < c; j++)
                if (!strcmp(vals[c], vals[j])) dup = 1;
            if (!dup) break;
        }
    /* chain c's statements keep their order; chains interleave at random positions */
    double *pos = calloc((size_t)nvar, sizeof(double));
    int *own = calloc((size_t)nvar, sizeof(int));
    if (!pos || !own) {
        DK_FREE_ALL(pos, own, vars, vals);
        return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < nvar; i++) pos[i] = rng_unit(r);
    for (int i = 1; i < nvar; i++)
        for (int j = i; j > 0 && pos[j - 1] > pos[j]; j--) {
            double t = pos[j];
            pos[j] = pos[j - 1];
            pos[j - 1] = t;
        }
    for (int i = 0; i < nvar; i++) own[i] = i / (nh + 1);
    rng_shuffle(r, own, nvar);
    int next[64] = {0};
    if (nc > 64) {
        DK_FREE_ALL(pos, own, vars, vals);
        return dk_fail(e, DK_ERR_ARG, "chains: at most 64");
    }
    for (int i = 0; i < nvar; i++) {
        int c = own[i], hop = next[c]++;
        const char *v = vars[c * (nh + 1) + hop];
        if (c == 0 && hop == 0) sp->target = i; /* the queried chain's head is the "needle" */
        if (hop == 0) snprintf(buf, sizeof buf, "VAR %s = %s", v, vals[c]);
        else snprintf(buf, sizeof buf, "VAR %s = VAR %s", v, vars[c * (nh + 1) + hop - 1]);
        sp->stmt[i] = xstrdup(buf, oom);
        sp->st_pos[i] = pos[i];
    }
    for (int h = 0; h <= nh; h++) sp->ans[sp->n_ans++] = xstrdup(vars[h], oom);
    snprintf(sp->query, sizeof sp->query, "%s", vals[0]);
    DK_FREE_ALL(pos, own, vars, vals);
    return DK_OK;
}

/* plan_make for DK_RULER_CWE: a permutation of the vocabulary: its first common words are the answers. */
static dk_status plan_cwe(const gen_ctx *g, sample_plan *sp, int *oom, dk_err *e) {
    const dk_ruler_params *p = g->p;
    rng_t *r = &sp->rng;
    /* a per-sample permutation of the vocabulary: first n_cw are the common words */
    int V = g->vocab.n;
    int *perm = malloc((size_t)V * sizeof(int));
    sp->coded.w = calloc((size_t)V, sizeof(char *));
    sp->ans = calloc((size_t)p->n_cw, sizeof(char *));
    if (!perm || !sp->coded.w || !sp->ans) {
        free(perm);
        return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < V; i++) perm[i] = i;
    rng_shuffle(r, perm, V);
    for (int i = 0; i < V; i++) sp->coded.w[sp->coded.n++] = xstrdup(g->vocab.w[perm[i]], oom);
    for (int i = 0; i < p->n_cw; i++) sp->ans[sp->n_ans++] = xstrdup(g->vocab.w[perm[i]], oom);
    free(perm);
    return DK_OK;
}

/* plan_make for DK_RULER_FWE: 256 coded words (none inside another); the first 3 are the answers. */
static dk_status plan_fwe(const gen_ctx *g, sample_plan *sp, int *oom, dk_err *e) {
    (void)g; /* every plan_* takes the generator context */
    rng_t *r = &sp->rng;
    int V = 256;
    sp->coded.w = calloc((size_t)V, sizeof(char *));
    sp->ans = calloc(3, sizeof(char *));
    if (!sp->coded.w || !sp->ans) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    while (sp->coded.n < V && !*oom) {
        int L = 3 + (int)rng_below(r, 4);
        char w[8];
        for (int k = 0; k < L; k++) w[k] = (char)('a' + rng_below(r, 26));
        w[L] = 0;
        int clash = 0; /* no coded word inside another: answers stay unambiguous */
        for (int j = 0; j < sp->coded.n; j++)
            if (strstr(sp->coded.w[j], w) || strstr(w, sp->coded.w[j])) clash = 1;
        if (!clash) sp->coded.w[sp->coded.n++] = xstrdup(w, oom);
    }
    for (int i = 0; i < 3 && !*oom; i++) sp->ans[sp->n_ans++] = xstrdup(sp->coded.w[i], oom);
    return DK_OK;
}

/* plan_make for DK_RULER_QA: a SQuAD question, its documents' order, the gold document at the requested depth. */
static dk_status plan_qa(const gen_ctx *g, sample_plan *sp, int *oom, dk_err *e) {
    const dk_ruler_params *p = g->p;
    rng_t *r = &sp->rng;
    sp->qa_idx = (int)rng_below(r, (uint64_t)g->n_qas);
    sp->n_needles = 1;
    sp->nd_depth = calloc(1, sizeof(double));
    sp->doc_perm = malloc((size_t)g->n_docs * sizeof(int));
    const int na = g->qas[sp->qa_idx].n_ans;
    sp->ans = calloc((size_t)na, sizeof(char *));
    sp->needle = calloc(1, sizeof(char *));
    if (!sp->nd_depth || !sp->doc_perm || !sp->ans || !sp->needle)
        return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    sp->needle[0] = xstrdup("", oom);
    sp->nd_depth[0] = pick_depth(p, r);
    for (int i = 0; i < g->n_docs; i++) sp->doc_perm[i] = i;
    rng_shuffle(r, sp->doc_perm, g->n_docs);
    for (int k = 0; k < na; k++) sp->ans[sp->n_ans++] = xstrdup(g->qas[sp->qa_idx].ans[k], oom);
    return DK_OK;
}

static dk_status plan_make(const gen_ctx *g, int idx, sample_plan *sp, dk_err *e) {
    const dk_ruler_params *p = g->p;
    memset(sp, 0, sizeof *sp);
    rng_seed(&sp->rng, p->seed, (uint64_t)idx);
    sp->shuffle_seed = rng_next(&sp->rng);
    int oom = 0;
    dk_status st = DK_OK;
    switch (p->kind) {
    case DK_RULER_PASSKEY: st = plan_passkey(g, sp, &oom, e); break;
    case DK_RULER_NIAH: st = plan_niah(g, sp, &oom, e); break;
    case DK_RULER_VT: st = plan_vt(g, sp, &oom, e); break;
    case DK_RULER_CWE: st = plan_cwe(g, sp, &oom, e); break;
    case DK_RULER_FWE: st = plan_fwe(g, sp, &oom, e); break;
    case DK_RULER_QA: st = plan_qa(g, sp, &oom, e); break;
    }
    if (st) return st;
    if (oom) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    return DK_OK;
}

/* ---- SQuAD ---- */

static dk_status load_squad(const char *path, gen_ctx *g, dk_err *e) {
    char *txt;
    dk_status st = slurp(path, &txt, e);
    if (st) return st;
    cJSON *root = cJSON_Parse(txt);
    free(txt);
    if (!root) return dk_fail(e, DK_ERR_FORMAT, "%s: invalid JSON", path);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data"), *art, *par, *qa;
    if (!cJSON_IsArray(data)) {
        cJSON_Delete(root);
        return dk_fail(e, DK_ERR_FORMAT, "%s: field 'data': expected a list (SQuAD format)", path);
    }
    int cd = 0, cq = 0, oom = 0;
    cJSON_ArrayForEach(art, data) {
        const cJSON *pars = cJSON_GetObjectItemCaseSensitive(art, "paragraphs");
        if (!cJSON_IsArray(pars)) {
            st = dk_fail(e, DK_ERR_FORMAT, "%s: field 'data[].paragraphs': expected a list", path);
            break;
        }
        cJSON_ArrayForEach(par, pars) {
            const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(par, "context");
            const cJSON *qas = cJSON_GetObjectItemCaseSensitive(par, "qas");
            if (!cJSON_IsString(ctx) || !cJSON_IsArray(qas)) {
                st = dk_fail(e, DK_ERR_FORMAT,
                             "%s: paragraph %d: fields 'context' (string) and 'qas' (list) required", path,
                             g->n_docs);
                break;
            }
            if (!grow((void **)&g->docs, g->n_docs, &cd, sizeof *g->docs, 64)) {
                oom = 1;
                break;
            }
            g->docs[g->n_docs] = xstrdup(ctx->valuestring, &oom);
            int doc = g->n_docs++;
            cJSON_ArrayForEach(qa, qas) {
                const cJSON *imp = cJSON_GetObjectItemCaseSensitive(qa, "is_impossible");
                const cJSON *q = cJSON_GetObjectItemCaseSensitive(qa, "question");
                const cJSON *ans = cJSON_GetObjectItemCaseSensitive(qa, "answers"), *a;
                if (cJSON_IsTrue(imp) || !cJSON_IsString(q) || !cJSON_IsArray(ans) ||
                    !cJSON_GetArraySize(ans))
                    continue;
                if (!grow((void **)&g->qas, g->n_qas, &cq, sizeof *g->qas, 256)) {
                    oom = 1;
                    break;
                }
                __typeof__(g->qas) Q = &g->qas[g->n_qas];
                memset(Q, 0, sizeof *Q);
                Q->q = xstrdup(q->valuestring, &oom);
                Q->doc = doc;
                Q->ans = calloc((size_t)cJSON_GetArraySize(ans), sizeof(char *));
                if (!Q->ans) {
                    oom = 1;
                    break;
                }
                g->n_qas++;
                cJSON_ArrayForEach(a, ans) {
                    const cJSON *t = cJSON_GetObjectItemCaseSensitive(a, "text");
                    if (!cJSON_IsString(t)) continue;
                    int dup = 0; /* RULER keeps the distinct answer texts */
                    for (int k = 0; k < Q->n_ans; k++)
                        if (!strcmp(Q->ans[k], t->valuestring)) dup = 1;
                    if (!dup) Q->ans[Q->n_ans++] = xstrdup(t->valuestring, &oom);
                }
                if (!Q->n_ans) {
                    free(Q->q);
                    free(Q->ans);
                    g->n_qas--;
                }
            }
            if (oom) break;
        }
        if (st || oom) break;
    }
    cJSON_Delete(root);
    if (oom) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    if (st) return st;
    if (g->n_qas == 0 || g->n_docs < 2)
        return dk_fail(e, DK_ERR_FORMAT, "%s: no answerable questions or fewer than 2 paragraphs", path);
    return DK_OK;
}

/* ---- driver ---- */

void dk_ruler_params_default(dk_ruler_params *p, dk_ruler_kind kind) {
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->length = 4096;
    p->depth = -1;
    p->seed = 42;
    p->haystack = kind == DK_RULER_NIAH ? DK_HAYSTACK_ESSAY : DK_HAYSTACK_NOISE;
    p->haystack_path = "datasets/corpora/mobydick-heldout.txt";
    p->squad_path = "datasets/squad/dev-v2.0.json";
    p->key_type = DK_RULER_WORDS;
    p->value_type = DK_RULER_NUMBERS;
    p->n_keys = p->n_values = p->n_queries = 1;
    p->n_chains = 1;
    p->n_hops = 4;
    p->n_cw = 10;
    p->freq_cw = 30;
    p->freq_ucw = 3;
    p->alpha = 2.0;
    p->tokens_to_generate = kind == DK_RULER_NIAH      ? 128
                            : kind == DK_RULER_PASSKEY ? 16
                            : kind == DK_RULER_VT      ? 30
                            : kind == DK_RULER_CWE     ? 120
                            : kind == DK_RULER_FWE     ? 50
                                                       : 32;
}

static const char *kind_name(dk_ruler_kind k) {
    static const char *const n[] = {"passkey", "niah", "vt", "cwe", "fwe", "qa"};
    return (unsigned)k < 6 ? n[k] : "?";
}

static dk_status check_params(const dk_ruler_params *p, dk_err *e) {
    if (p->length < 16) return dk_fail(e, DK_ERR_ARG, "length: %ld is below 16 tokens", p->length);
    if (p->depth > 100) return dk_fail(e, DK_ERR_ARG, "depth: %g is outside 0..100", p->depth);
    if (p->kind == DK_RULER_NIAH) {
        if (p->n_keys < 1 || p->n_values < 1 || p->n_queries < 1 || p->n_keys * p->n_values > 256)
            return dk_fail(e, DK_ERR_ARG, "keys/values/queries: each >= 1 and keys*values <= 256");
        if (p->n_queries > p->n_keys)
            return dk_fail(e, DK_ERR_ARG, "queries: %d exceeds keys %d", p->n_queries, p->n_keys);
        if (p->haystack == DK_HAYSTACK_NEEDLE && p->key_type == DK_RULER_NUMBERS &&
            p->value_type == DK_RULER_NUMBERS) {}
    }
    if (p->kind == DK_RULER_VT && (p->n_chains < 1 || p->n_chains > 64 || p->n_hops < 1 || p->n_hops > 64))
        return dk_fail(e, DK_ERR_ARG, "chains must be 1..64 and hops 1..64");
    if (p->kind == DK_RULER_CWE && (p->n_cw < 1 || p->freq_cw <= p->freq_ucw || p->freq_ucw < 1))
        return dk_fail(e, DK_ERR_ARG, "cwe: need common >= 1 and freq_cw > freq_ucw >= 1");
    if (p->kind == DK_RULER_FWE && !(p->alpha > 1.0 && p->alpha <= 4.0))
        return dk_fail(e, DK_ERR_ARG, "alpha: %g is outside (1, 4]", p->alpha);
    return DK_OK;
}

static void sample_init(dk_sample *s) {
    memset(s, 0, sizeof *s);
    s->depth = -1;
    s->needle_pos = -1;
}

dk_status dk_ruler_generate(const dk_ruler_params *p, int n, const dk_tok_if *tok, dk_sample_set *out,
                            dk_err *e) {
    memset(out, 0, sizeof *out);
    if (!tok || !tok->encode) return dk_fail(e, DK_ERR_ARG, "generators need a tokenizer");
    if (n < 1) return dk_fail(e, DK_ERR_ARG, "samples: %d (need >= 1)", n);
    dk_status st = check_params(p, e);
    if (st) return st;
    gen_ctx g = {.p = p, .tok = tok};
    int need_text = (p->kind == DK_RULER_NIAH &&
                     (p->haystack == DK_HAYSTACK_ESSAY || p->key_type == DK_RULER_WORDS ||
                      p->value_type == DK_RULER_WORDS)) ||
                    p->kind == DK_RULER_CWE;
    if (need_text) {
        char *text;
        if ((st = dk_ruler_read_haystack(p->haystack_path, &text, e))) return st;
        int ok = words_split(text, &g.essay) && vocab_build(&g.essay, &g.vocab);
        g.text = text;
        if (!ok) {
            gen_ctx_free(&g);
            return dk_fail(e, DK_ERR_NOMEM, "out of memory");
        }
        if (g.essay.n == 0 || g.vocab.n < 64) {
            gen_ctx_free(&g);
            return dk_fail(e, DK_ERR_FORMAT, "%s: haystack text has fewer than 64 distinct words",
                           p->haystack_path);
        }
    }
    if (p->kind == DK_RULER_QA && (st = load_squad(p->squad_path, &g, e))) {
        gen_ctx_free(&g);
        return st;
    }

    dk_sample_set set = {0};
    set.s = calloc((size_t)n, sizeof(dk_sample));
    if (!set.s) {
        gen_ctx_free(&g);
        return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    }
    dk_strbuf c = {0}, q = {0};
    for (int i = 0; i < n && !st; i++) {
        sample_plan sp;
        dk_sample *s = &set.s[i];
        sample_init(s);
        set.n = i + 1;
        if ((st = plan_make(&g, i, &sp, e))) {
            plan_free(&sp);
            break;
        }
        long h = 0, ntok = 0;
        st = size_sample(&g, &sp, &h, &ntok, &c, &q, e);
        if (!st) {
            long tpos = ruler_build(&g, &sp, h, &c, &q);
            if (c.oom || q.oom) st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
            else if (ntok < p->length / 2) /* the haystack (qa: documents) ran out */
                st = dk_fail(
                    e, DK_ERR_ARG, "length %ld: the %s generator reached only %ld tokens (not enough %s)",
                    p->length, kind_name(p->kind), ntok, p->kind == DK_RULER_QA ? "documents" : "haystack");
            if (!st) {
                char idb[64];
                snprintf(idb, sizeof idb, "%s-%llu-%d", kind_name(p->kind), (unsigned long long)p->seed, i);
                s->id = strdup(idb);
                s->context = strdup(c.s);
                s->question = strdup(q.s);
                s->answers = sp.ans;
                s->n_answers = sp.n_ans;
                sp.ans = NULL;
                sp.n_ans = 0;
                s->max_new_tokens = p->tokens_to_generate;
                s->metric = (p->kind == DK_RULER_QA) ? DK_METRIC_STRING_MATCH_PART
                                                     : DK_METRIC_STRING_MATCH_ALL;
                s->dataset = kind_name(p->kind);
                s->length = ntok;
                s->needle_pos = tpos;
                s->depth = (p->kind == DK_RULER_PASSKEY || p->kind == DK_RULER_NIAH || p->kind == DK_RULER_QA)
                               ? sp.nd_depth[0]
                               : -1;
                /* a fixed haystack (essay or noise text) at this length, needle at this depth: every
                 * such sample reads the same text around a different needle */
                if ((p->kind == DK_RULER_PASSKEY || p->kind == DK_RULER_NIAH) &&
                    p->haystack != DK_HAYSTACK_NEEDLE) {
                    char kb[128];
                    snprintf(kb, sizeof kb, "%s/%s/%ld/%g", kind_name(p->kind),
                             p->haystack == DK_HAYSTACK_ESSAY ? "essay" : "noise", p->length, s->depth);
                    if (!(s->context_key = strdup(kb))) st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
                }
                if (!s->id || !s->context || !s->question) st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
            }
        }
        plan_free(&sp);
    }
    free(c.s);
    free(q.s);
    gen_ctx_free(&g);
    if (st) {
        dk_sample_set_free(&set);
        return st;
    }
    *out = set;
    return DK_OK;
}
