/* config_expand.c — a parsed matrix into cells (config.h): each task and method options object as
 * a grid (scalars and lists, cross product, last key fastest), the cells of models x task points x
 * method points in that order with identical cells dropped, and the policy check of every method
 * point. config.c parses and validates the document and calls in here (config_int.h). */
#include "config.h"
#include "config_int.h"
#include "method.h"
#include "policy.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- grids ---- */

/* An options object (scalars and grids) as a cross product, last key fastest: each key's values
 * indexable, and their canonical JSON computed once (a point's text is a concatenation). */
typedef struct {
    size_t nk, total;
    const cJSON **keys;  /* (nk) in object order */
    const cJSON ***vals; /* (nk, cnt[k]) */
    size_t *cnt;         /* (nk) */
    char **kcanon;       /* (nk) "\"key\":" */
    char ***vcanon;      /* (nk, cnt[k]) canonical value */
    size_t *sorted;      /* (nk) key indices in canonical (strcmp) order */
} dk_grid;

static void dk_grid_free(dk_grid *g) {
    for (size_t k = 0; k < g->nk; k++) {
        for (size_t j = 0; g->vcanon && g->vcanon[k] && j < g->cnt[k]; j++) free(g->vcanon[k][j]);
        if (g->vcanon) free(g->vcanon[k]);
        if (g->vals) free(g->vals[k]);
        if (g->kcanon) free(g->kcanon[k]);
    }
    DK_FREE_ALL(g->keys, g->vals, g->cnt, g->kcanon, g->vcanon, g->sorted);
    memset(g, 0, sizeof *g);
}

static int dk_grid_key_cmp(const void *a, const void *b, void *ctx) {
    const dk_grid *g = ctx;
    return strcmp(g->keys[*(const size_t *)a]->string, g->keys[*(const size_t *)b]->string);
}

/* 1 ok; 0 on allocation failure or more than DK_CONFIG_MAX_CELLS points. */
static int dk_grid_init(dk_grid *g, const cJSON *opts) {
    memset(g, 0, sizeof *g);
    size_t nk = 0;
    for (const cJSON *c = opts->child; c; c = c->next) nk++;
    size_t m = nk ? nk : 1;
    g->keys = malloc(m * sizeof *g->keys);
    g->vals = calloc(m, sizeof *g->vals);
    g->cnt = calloc(m, sizeof *g->cnt);
    g->kcanon = calloc(m, sizeof *g->kcanon);
    g->vcanon = calloc(m, sizeof *g->vcanon);
    g->sorted = malloc(m * sizeof *g->sorted);
    if (!g->keys || !g->vals || !g->cnt || !g->kcanon || !g->vcanon || !g->sorted) {
        dk_grid_free(g);
        return 0;
    }
    g->total = 1;
    for (const cJSON *c = opts->child; c; c = c->next) {
        size_t k = g->nk++, n = cJSON_IsArray(c) ? (size_t)cJSON_GetArraySize(c) : 1;
        g->keys[k] = c;
        g->sorted[k] = k;
        g->cnt[k] = n;
        g->total *= n;
        dk_strbuf kb = {0};
        dk_config_canon_string(&kb, c->string);
        dk_strbuf_add(&kb, ":", 1);
        g->kcanon[k] = kb.s;
        if (g->total > DK_CONFIG_MAX_CELLS || kb.oom || !(g->vals[k] = malloc(n * sizeof *g->vals[k])) ||
            !(g->vcanon[k] = calloc(n, sizeof *g->vcanon[k]))) {
            dk_grid_free(g);
            return 0;
        }
        size_t j = 0;
        for (const cJSON *v = cJSON_IsArray(c) ? c->child : c; v && j < n;
             v = cJSON_IsArray(c) ? v->next : NULL, j++) {
            g->vals[k][j] = v;
            if (!(g->vcanon[k][j] = dk_config_canon_item(v))) {
                dk_grid_free(g);
                return 0;
            }
        }
    }
    qsort_r(g->sorted, g->nk, sizeof *g->sorted, dk_grid_key_cmp, g);
    return 1;
}

/* The value index of each key at point `p` (0 <= p < total). */
static void dk_grid_point(const dk_grid *g, size_t p, size_t *idx) {
    for (size_t k = g->nk; k-- > 0;) {
        idx[k] = p % g->cnt[k];
        p /= g->cnt[k];
    }
}

/* Expands an options object into canonical scalar objects, last key fastest. Returns the count
 * (0 on allocation failure or too many points) and the malloc'd array of malloc'd strings. */
static size_t dk_expand_grid(const cJSON *opts, char ***out) {
    dk_grid g;
    *out = NULL;
    if (!dk_grid_init(&g, opts)) return 0;
    char **res = calloc(g.total, sizeof *res);
    size_t *idx = malloc((g.nk ? g.nk : 1) * sizeof *idx), done = 0;
    for (; res && idx && done < g.total; done++) {
        dk_grid_point(&g, done, idx);
        dk_strbuf b = {0};
        dk_strbuf_add(&b, "{", 1);
        for (size_t i = 0; i < g.nk; i++) {
            size_t k = g.sorted[i];
            if (i) dk_strbuf_add(&b, ",", 1);
            dk_strbuf_adds(&b, g.kcanon[k]);
            dk_strbuf_adds(&b, g.vcanon[k][idx[k]]);
        }
        dk_strbuf_add(&b, "}", 1);
        if (b.oom) {
            free(b.s);
            break;
        }
        res[done] = b.s;
    }
    size_t total = g.total;
    free(idx);
    dk_grid_free(&g);
    if (!res || done < total) {
        for (size_t i = 0; res && i < done; i++) free(res[i]);
        free(res);
        return 0;
    }
    *out = res;
    return total;
}

/* ---- cells ---- */

static uint64_t dk_fnv1a(const char *s, uint64_t h) {
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (h ^ 0xff) * 1099511628211ull;
}

/* Order of expanded cells for finding identical ones: hash, then the strings, then position. */
typedef struct {
    const dk_config *cfg;
    const uint64_t *hashes;
} dk_cell_order;

static int dk_cell_cmp_same(const dk_cell_order *o, size_t a, size_t b) {
    const dk_config_cell *x = &o->cfg->cells[a], *y = &o->cfg->cells[b];
    int r;
    if (o->hashes[a] != o->hashes[b]) return o->hashes[a] < o->hashes[b] ? -1 : 1;
    if ((r = strcmp(o->cfg->models[x->model], o->cfg->models[y->model])) ||
        (r = strcmp(x->task_name, y->task_name)) || (r = strcmp(x->task_options, y->task_options)) ||
        (r = strcmp(x->method_name, y->method_name)))
        return r;
    return strcmp(x->method_params, y->method_params);
}

static int dk_cell_cmp(const void *a, const void *b, void *ctx) {
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int r = dk_cell_cmp_same(ctx, i, j);
    return r ? r : (i < j ? -1 : i > j);
}

/* Expands each of opts[0..n) (the config's `what` array) into grid[i] of cnt[i] points; *total is
 * their sum. */
static dk_status dk_expand_grids(const char *path, const char *what, const cJSON *opts[], size_t n,
                                 char ***grid, size_t *cnt, size_t *total, dk_err *err) {
    *total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(cnt[i] = dk_expand_grid(opts[i], &grid[i])))
            return dk_fail(err, DK_ERR_ARG, "%s: %s[%zu]: grid too large (over %d points)", path, what, i,
                           DK_CONFIG_MAX_CELLS);
        *total += cnt[i];
    }
    return DK_OK;
}

dk_status dk_config_expand(dk_config *cfg, const cJSON *tasks_opts[], const cJSON *meth_opts[], dk_err *err) {
    dk_status st = DK_OK;
    char ***tgrid = calloc(cfg->n_tasks, sizeof *tgrid), ***mgrid = calloc(cfg->n_methods, sizeof *mgrid);
    size_t *nt = calloc(cfg->n_tasks, sizeof *nt), *nm = calloc(cfg->n_methods, sizeof *nm);
    uint64_t *hashes = NULL;
    size_t *order = NULL;
    unsigned char *keep = NULL;
    if (!tgrid || !mgrid || !nt || !nm) {
        st = dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", cfg->path);
        goto done;
    }
    size_t total_t, total_m;
    if ((st = dk_expand_grids(cfg->path, "tasks", tasks_opts, cfg->n_tasks, tgrid, nt, &total_t, err)) ||
        (st = dk_expand_grids(cfg->path, "methods", meth_opts, cfg->n_methods, mgrid, nm, &total_m, err)))
        goto done;
    double total = (double)cfg->n_models * (double)total_t * (double)total_m;
    if (total > DK_CONFIG_MAX_CELLS) {
        st = dk_fail(err, DK_ERR_ARG, "%s: the matrix expands to %.0f cells (limit %d)", cfg->path, total,
                     DK_CONFIG_MAX_CELLS);
        goto done;
    }
    /* every point of the cross product, then identical cells dropped (the first kept, order
     * preserved): sorted by (hash, strings, position) in O(n log n) */
    size_t n = (size_t)total;
    cfg->cells = calloc(n ? n : 1, sizeof *cfg->cells);
    hashes = calloc(n ? n : 1, sizeof *hashes);
    order = malloc((n ? n : 1) * sizeof *order);
    keep = calloc(n ? n : 1, 1);
    if (!cfg->cells || !hashes || !order || !keep) {
        st = dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", cfg->path);
        goto done;
    }
    size_t k = 0;
    for (size_t mo = 0; mo < cfg->n_models; mo++)
        for (size_t t = 0; t < cfg->n_tasks; t++)
            for (size_t tg = 0; tg < nt[t]; tg++)
                for (size_t me = 0; me < cfg->n_methods; me++)
                    for (size_t mg = 0; mg < nm[me]; mg++, k++) {
                        dk_config_cell *c = &cfg->cells[k];
                        c->model = mo;
                        c->task = t;
                        c->method = me;
                        c->task_name = cfg->tasks[t].name;
                        c->method_name = cfg->methods[me].name;
                        c->task_options = tgrid[t][tg]; /* borrowed until compaction */
                        c->method_params = mgrid[me][mg];
                        uint64_t h = 14695981039346656037ull;
                        h = dk_fnv1a(cfg->models[mo], h);
                        h = dk_fnv1a(c->task_name, h);
                        h = dk_fnv1a(c->task_options, h);
                        h = dk_fnv1a(c->method_name, h);
                        h = dk_fnv1a(c->method_params, h);
                        hashes[k] = h;
                        order[k] = k;
                    }
    dk_cell_order ctx = {cfg, hashes};
    qsort_r(order, n, sizeof *order, dk_cell_cmp, &ctx);
    for (size_t i = 0; i < n; i++)
        keep[order[i]] = i == 0 || dk_cell_cmp_same(&ctx, order[i - 1], order[i]) != 0;
    for (size_t i = 0; i < n; i++) {
        if (!keep[i]) continue;
        dk_config_cell *c = &cfg->cells[cfg->n_cells];
        *c = cfg->cells[i];
        cfg->n_cells++;
        c->task_options = strdup(c->task_options);
        c->method_params = strdup(c->method_params);
        if (!c->task_options || !c->method_params) {
            st = dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", cfg->path);
            goto done;
        }
    }
done:
    for (size_t i = 0; tgrid && i < cfg->n_tasks; i++) {
        for (size_t j = 0; j < nt[i]; j++) free(tgrid[i][j]);
        free(tgrid[i]);
    }
    for (size_t i = 0; mgrid && i < cfg->n_methods; i++) {
        for (size_t j = 0; j < nm[i]; j++) free(mgrid[i][j]);
        free(mgrid[i]);
    }
    DK_FREE_ALL(tgrid, mgrid, nt, nm, hashes, order, keep);
    return st;
}

/* Each point of each method grid read as a cell will be (dk_method_parse): catches what
 * per-value rules cannot (a required parameter missing, e.g. tau of dash-tau; an even snapkv
 * kernel). Layer-dependent checks wait for the model (n_layer unknown). */
dk_status dk_config_check_policies(dk_config *cfg, const cJSON *meth_opts[], dk_err *err) {
    for (size_t i = 0; i < cfg->n_methods; i++) {
        if (!dk_policy_find(cfg->methods[i].name)) continue;
        char **pts;
        size_t n = dk_expand_grid(meth_opts[i], &pts);
        if (!n)
            return dk_fail(err, DK_ERR_ARG, "%s: methods[%zu]: grid too large (over %d points)", cfg->path, i,
                           DK_CONFIG_MAX_CELLS);
        dk_status st = DK_OK;
        for (size_t pt = 0; pt < n && st == DK_OK; pt++) {
            const dk_policy *p;
            dk_policy_params pp;
            dk_err pe = {{0}};
            if ((st = dk_method_parse(cfg->methods[i].name, pts[pt], 0, &p, &pp, &pe)))
                st = dk_fail(err, st, "%s: methods[%zu]: %s", cfg->path, i, pe.msg);
        }
        for (size_t pt = 0; pt < n; pt++) free(pts[pt]);
        free(pts);
        if (st) return st;
    }
    return DK_OK;
}
