/* report_data.c — one run loaded for the report: its provenance, models, tasks, settings (labels
 * and slugs) and cells with their samples, all through the store's read API (store.h); no SQL
 * here. May include: report_int.h, cJSON (settings' parameters). */
#include "report_int.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- loading ---- */

void rep_data_free(rep_data *d) {
    dk_store_runs_free(d->runs, d->n_runs);
    for (size_t i = 0; i < d->n_models; i++) {
        DK_FREE_ALL(d->models[i].sha, d->models[i].path, d->models[i].label, d->models[i].slug,
                    d->models[i].arch);
    }
    for (size_t i = 0; i < d->n_tasks; i++) {
        free(d->tasks[i].name);
        free(d->tasks[i].slug);
    }
    for (size_t i = 0; i < d->n_settings; i++) {
        DK_FREE_ALL(d->settings[i].method, d->settings[i].params, d->settings[i].label, d->settings[i].slug);
    }
    for (size_t i = 0; i < d->n_cells_loaded; i++) {
        rep_cell *c = &d->cells[i];
        DK_FREE_ALL(c->options, c->task_key, c->score, c->wd, c->wm, c->fd, c->fm, c->kl, c->top1, c->nll,
                    c->ctx, c->sid, c->cl, c->active, c->dmin, c->dmed, c->dmax);
    }
    DK_FREE_ALL(d->models, d->tasks, d->settings, d->cells);
    memset(d, 0, sizeof *d);
}

/* Setting label: method then its parameters, rho/tau/keep/k/ls first, others alphabetical. */
static char *rep_setting_label(const char *method, const char *params, double v[4]) {
    static const char *const first[] = {"rho", "tau", "keep", "k", "ls"};
    char buf[1024];
    size_t n = (size_t)snprintf(buf, sizeof buf, "%s", method);
    for (int i = 0; i < 4; i++) v[i] = NAN;
    cJSON *o = cJSON_Parse(params ? params : "{}");
    for (int k = 0; k < 5 && o; k++) {
        cJSON *it = cJSON_GetObjectItemCaseSensitive(o, first[k]);
        if (!it) continue;
        if (cJSON_IsNumber(it) && n < sizeof buf)
            n += (size_t)snprintf(buf + n, sizeof buf - n, " %s=%g", first[k], it->valuedouble);
        if (cJSON_IsNumber(it)) {
            if (k == 0) v[0] = it->valuedouble;
            if (k == 1) v[1] = it->valuedouble;
            if (k == 2 || k == 3) v[3] = it->valuedouble;
            if (k == 4) v[2] = it->valuedouble;
        }
    }
    for (cJSON *it = o ? o->child : NULL; it; it = it->next) { /* canonical JSON: keys already sorted */
        int known = 0;
        for (int k = 0; k < 5; k++)
            if (!strcmp(it->string, first[k])) known = 1;
        if (known || n >= sizeof buf) continue;
        if (cJSON_IsNumber(it))
            n += (size_t)snprintf(buf + n, sizeof buf - n, " %s=%g", it->string, it->valuedouble);
        else if (cJSON_IsString(it))
            n += (size_t)snprintf(buf + n, sizeof buf - n, " %s=%s", it->string, it->valuestring);
        else if (cJSON_IsBool(it))
            n += (size_t)snprintf(buf + n, sizeof buf - n, " %s=%s", it->string,
                                  cJSON_IsTrue(it) ? "true" : "false");
    }
    cJSON_Delete(o);
    return rep_strdup(buf);
}

static int rep_find_or_add_task(rep_data *d, const char *name) {
    for (size_t i = 0; i < d->n_tasks; i++)
        if (!strcmp(d->tasks[i].name, name)) return (int)i;
    rep_task *t = realloc(d->tasks, (d->n_tasks + 1) * sizeof *t);
    if (!t) return -1;
    d->tasks = t;
    t[d->n_tasks].name = rep_strdup(name);
    t[d->n_tasks].slug = rep_slug(name);
    return (int)d->n_tasks++;
}

static int rep_find_or_add_setting(rep_data *d, const char *method, const char *params) {
    for (size_t i = 0; i < d->n_settings; i++)
        if (!strcmp(d->settings[i].method, method) && !strcmp(d->settings[i].params, params)) return (int)i;
    rep_setting *s = realloc(d->settings, (d->n_settings + 1) * sizeof *s);
    if (!s) return -1;
    d->settings = s;
    rep_setting *x = &s[d->n_settings];
    double v[4];
    x->method = rep_strdup(method);
    x->params = rep_strdup(params);
    x->label = rep_setting_label(method, params, v);
    x->slug = rep_slug(x->label);
    x->rho = v[0];
    x->tau = v[1];
    x->ls = v[2];
    x->keep = v[3];
    return (int)d->n_settings++;
}

static int rep_find_or_add_model(rep_data *d, const char *sha, const char *path, const char *arch,
                                 int64_t n_layer, int64_t n_params) {
    for (size_t i = 0; i < d->n_models; i++)
        if (!strcmp(d->models[i].sha, sha)) return (int)i;
    rep_model *m = realloc(d->models, (d->n_models + 1) * sizeof *m);
    if (!m) return -1;
    d->models = m;
    rep_model *x = &m[d->n_models];
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char lab[512];
    snprintf(lab, sizeof lab, "%s", base);
    char *dot = strrchr(lab, '.');
    if (dot && dot != lab) *dot = 0;
    /* two files with one name: tell them apart by hash */
    for (size_t i = 0; i < d->n_models; i++)
        if (!strcmp(d->models[i].label, lab)) {
            size_t l = strlen(lab);
            snprintf(lab + l, sizeof lab - l, "-%.8s", sha);
            break;
        }
    x->sha = rep_strdup(sha);
    x->path = rep_strdup(path);
    x->arch = rep_strdup(arch ? arch : "");
    x->label = rep_strdup(lab);
    x->slug = rep_slug(lab);
    x->n_layer = n_layer;
    x->n_params = n_params;
    return (int)d->n_models++;
}

/* Sizes first (rows, layers), then one pass over the rows: per-layer arrays are exact. */
/* Cluster id of a sample: its context key hashed (FNV-1a, 62 bits), or a unique id from its row
 * when it has a context of its own. */
static int64_t rep_context_cluster(const char *key, int64_t row) {
    if (!key) return (int64_t)(UINT64_C(1) << 62) + row;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    return (int64_t)(h & ((UINT64_C(1) << 62) - 1));
}

/* The cell's sample rows from the store: rep_cell takes over the store's column arrays. */
static dk_status rep_load_samples(dk_store *s, rep_cell *c, dk_err *e) {
    dk_store_samples x;
    dk_status st = dk_store_cell_samples_read(s, c->id, &x, e);
    if (st != DK_OK) return st;
    c->n = x.n;
    c->n_layer = x.n_layer;
    c->score = x.score;
    c->wd = x.wall_dense_s;
    c->wm = x.wall_method_s;
    c->fd = x.flops_dense;
    c->fm = x.flops_method;
    c->kl = x.kl;
    c->top1 = x.top1;
    c->nll = x.nll_delta;
    c->ctx = x.context_tokens;
    c->sid = x.sample_id;
    c->active = x.active;
    c->dmin = x.delta_min;
    c->dmed = x.delta_median;
    c->dmax = x.delta_max;
    x.score = x.wall_dense_s = x.wall_method_s = x.flops_dense = x.flops_method = NULL;
    x.kl = x.top1 = x.nll_delta = x.context_tokens = x.active = x.delta_min = x.delta_median = x.delta_max =
        NULL;
    x.sample_id = NULL;
    c->cl = malloc((x.n ? x.n : 1) * sizeof *c->cl);
    if (!c->cl) st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
    for (size_t i = 0; st == DK_OK && i < c->n; i++)
        c->cl[i] = rep_context_cluster(x.context_key[i], x.row[i]);
    for (size_t i = 0; st == DK_OK && i < c->n; i++)
        for (size_t j = 0; j < c->n; j++)
            if (j != i && c->cl[j] == c->cl[i]) {
                c->n_shared++;
                break;
            }
    dk_store_samples_free(&x);
    return st;
}

/* The run (o->run_id, 0 = the latest) and its provenance. */
static dk_status rep_load_run(dk_store *s, int64_t run, rep_data *d, dk_err *e) {
    dk_store_run *runs = NULL;
    size_t n = 0;
    dk_status st = dk_store_runs_read(s, &runs, &n, e);
    if (st != DK_OK) return st;
    if (run <= 0 && !n)
        st = dk_fail(e, DK_ERR_ARG, "the store has no runs yet (run 'dashkit run CONFIG' first)");
    if (run <= 0 && n) run = runs[n - 1].id;
    dk_store_run *r = NULL;
    for (size_t i = 0; st == DK_OK && i < n; i++)
        if (runs[i].id == run) r = &runs[i];
    if (st == DK_OK && !r) {
        if (n)
            st = dk_fail(e, DK_ERR_ARG, "run %lld: no such run in the store (runs %lld..%lld)",
                         (long long)run, (long long)runs[0].id, (long long)runs[n - 1].id);
        else st = dk_fail(e, DK_ERR_ARG, "run %lld: no such run (the store has no runs yet)", (long long)run);
    }
    if (st != DK_OK) {
        dk_store_runs_free(runs, n);
        return st;
    }
    d->run_id = run;
    d->runs = runs;
    d->n_runs = n;
    d->run = r;
    return DK_OK;
}

dk_status rep_load(dk_store *s, const dk_report_opts *o, rep_data *d, dk_err *e) {
    memset(d, 0, sizeof *d);
    d->store = s;
    d->opts = o;
    dk_store_cell_row *rows = NULL;
    size_t n_rows = 0;
    dk_status st = rep_load_run(s, o->run_id, d, e);
    if (st == DK_OK) st = dk_store_run_cells_read(s, d->run_id, &rows, &n_rows, e);
    if (st == DK_OK && n_rows && !(d->cells = calloc(n_rows, sizeof *d->cells)))
        st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
    for (size_t i = 0; st == DK_OK && i < n_rows; i++) {
        dk_store_cell_row *w = &rows[i];
        rep_cell *c = &d->cells[d->n_cells_loaded++];
        c->id = w->id;
        c->mi = rep_find_or_add_model(d, w->model_sha256, w->model_path ? w->model_path : "?", w->model_arch,
                                      w->model_n_layer, w->model_n_params);
        c->ti = rep_find_or_add_task(d, w->task);
        c->options = w->task_options;
        c->task_key = w->task_key;
        w->task_options = w->task_key = NULL;
        c->si = rep_find_or_add_setting(d, w->method, w->params);
        snprintf(c->state, sizeof c->state, "%s", w->state ? w->state : "?");
        c->n_expected = w->n_samples;
        c->length = w->length;
        c->depth = w->depth;
        if (c->mi < 0 || c->ti < 0 || c->si < 0 || !c->options || !c->task_key)
            st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
        else st = rep_load_samples(s, c, e);
    }
    dk_store_cell_rows_free(rows, n_rows);
    if (st != DK_OK) rep_data_free(d);
    return st;
}
