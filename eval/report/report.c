/* report.c — figures, tables and report.md from the store (definitions and files in report.h). */
#include "report.h"
#include "bootstrap.h"
#include "pareto.h"
#include "findings.h"
#include "metrics.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- loaded data: one run's cells with their samples ---- */

typedef struct {
    char *sha, *path, *label, *slug, *arch;
    int64_t n_layer, n_params;
} rep_model;

typedef struct {
    char *name, *slug;
} rep_task;

typedef struct {
    char *method, *params; /* params: canonical JSON object */
    char *label, *slug;
    double rho, tau, ls, keep; /* NAN when the method has no such parameter */
} rep_setting;

typedef struct {
    int64_t id;
    int mi, ti, si;           /* model, task, setting index */
    char *options, *task_key; /* task options JSON; dense_results key */
    double length, depth;     /* task options; NAN when absent */
    char state[16];
    int64_t n_expected;       /* cells.n_samples */
    size_t n;                 /* sample rows stored */
    double *score, *wd, *wm, *fd, *fm, *ctx; /* (n); NAN = NULL */
    double *kl, *top1, *nll;  /* (n) answer level: mean KL, top-1 rate, NLL method - dense; NAN = NULL */
    int64_t *sid;             /* (n) sample ids (pairing across settings) */
    int64_t *cl;              /* (n) context cluster: samples.context_key hashed, or unique per row */
    size_t n_shared;          /* samples whose context another sample of the cell shares */
    int n_layer;              /* max layers over the samples */
    double *active;           /* (n, n_layer) context tokens processed; NAN = absent */
    double *dmin, *dmed, *dmax; /* (n, n_layer) Δ statistics from sample_layers; NAN = absent */
} rep_cell;

typedef struct {
    dk_store *store;
    int64_t run_id;
    char *run_name, *config_path, *config_hash, *git_rev, *host, *cpu, *blas_core, *command;
    int64_t threads, workers, n_cells;
    double started_at, finished_at;
    rep_model *models; size_t n_models;
    rep_task *tasks; size_t n_tasks;
    rep_setting *settings; size_t n_settings;
    rep_cell *cells; size_t n_cells_loaded;
    const dk_report_opts *opts;
} rep_data;

/* ---- output context: files written atomically, figures queued for gnuplot ---- */

typedef struct {
    const char *dir;
    int png, svg;         /* formats each figure is drawn in */
    char **figs;          /* (n_figs) gp stems queued for drawing */
    size_t n_figs;
    dk_report_result *r;
} rep_out;

/* ---- small helpers ---- */

static char *rep_strdup(const char *s) {
    if (!s) s = "";
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static void rep_note(dk_report_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rep_note(dk_report_result *r, const char *fmt, ...) {
    size_t n = strlen(r->notes);
    if (n + 2 >= sizeof r->notes) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->notes + n, sizeof r->notes - n - 1, fmt, ap);
    va_end(ap);
    n = strlen(r->notes);
    if (n + 1 < sizeof r->notes) { r->notes[n] = '\n'; r->notes[n + 1] = 0; }
}

/* Lowercase [a-z0-9.] kept, runs of anything else become one '-'. */
static char *rep_slug(const char *s) {
    size_t n = strlen(s);
    char *d = malloc(n + 2), *p = d;
    if (!d) return NULL;
    int dash = 0;
    for (; *s; s++) {
        char c = *s;
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.') {
            if (dash && p > d) *p++ = '-';
            *p++ = c;
            dash = 0;
        } else {
            dash = 1;
        }
    }
    if (p == d) *p++ = 'x';
    *p = 0;
    return d;
}

/* Data-file number: 10 significant digits, NaN for missing (gnuplot skips it). */
static void rep_fmt(char *b, size_t n, double v) {
    if (isnan(v)) snprintf(b, n, "NaN");
    else snprintf(b, n, "%.10g", v);
}

/* Value with interval: "45.2 [41.0, 49.3]" (or "45.2" without CI, "–" without value). */
static void rep_fmt_ci(char *b, size_t n, dk_ci c, int prec, int latex) {
    if (isnan(c.est)) { snprintf(b, n, latex ? "--" : "–"); return; }
    if (isnan(c.lo)) { snprintf(b, n, "%.*f", prec, c.est); return; }
    if (latex) snprintf(b, n, "%.*f\\,{\\scriptsize[%.*f, %.*f]}", prec, c.est, prec, c.lo, prec, c.hi);
    else snprintf(b, n, "%.*f [%.*f, %.*f]", prec, c.est, prec, c.lo, prec, c.hi);
}

static void rep_latex_escape(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '_': case '%': case '&': case '#': case '$': case '{': case '}': fprintf(f, "\\%c", *s); break;
        case '\\': fputs("\\textbackslash{}", f); break;
        case '~': fputs("\\textasciitilde{}", f); break;
        case '^': fputs("\\textasciicircum{}", f); break;
        default: fputc(*s, f);
        }
    }
}

static void rep_md_escape(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '|') fputs("\\|", f);
        else if (*s == '\n') fputc(' ', f);
        else fputc(*s, f);
    }
}

/* gnuplot double-quoted string: backslash and quote escaped. */
static void rep_gp_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

void dk_report_csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) { fputs(s, f); return; }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* ---- atomic files ---- */

/* mkdir -p */
static dk_status rep_mkdirs(const char *dir, dk_err *e) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) return dk_fail(e, DK_ERR_ARG, "%s: path too long", dir);
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return dk_fail(e, DK_ERR_IO, "%s: cannot create folder: %s", buf, strerror(errno));
            *p = c;
            if (!c) break;
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return dk_fail(e, DK_ERR_IO, "%s: not a folder", dir);
    return DK_OK;
}

/* Writes data[0..n) to dir/name through a temporary file in the same folder and rename(2):
 * readers see the old file or the complete new one, never a partial one. */
static dk_status rep_write_file(rep_out *o, const char *name, const char *data, size_t n, dk_err *e) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", o->dir, name);
    snprintf(tmp, sizeof tmp, "%s/.%s.XXXXXX", o->dir, name);
    int fd = mkstemp(tmp);
    if (fd < 0) return dk_fail(e, DK_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    mode_t um = umask(0);
    umask(um);
    if (fchmod(fd, 0666 & ~um) != 0) { /* mkstemp's 0600 otherwise */ }
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, data + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int err = errno;
            close(fd); unlink(tmp);
            return dk_fail(e, DK_ERR_IO, "%s: write failed: %s", path, strerror(err));
        }
        off += (size_t)w;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        return dk_fail(e, DK_ERR_IO, "%s: cannot write: %s", path, strerror(err));
    }
    if (o->r) o->r->n_files++;
    return DK_OK;
}

/* A memory stream: fill with fprintf, then rep_mem_commit writes it atomically. */
typedef struct {
    FILE *f;
    char *buf;
    size_t len;
} rep_mem;

static dk_status rep_mem_open(rep_mem *m, dk_err *e) {
    m->buf = NULL; m->len = 0;
    m->f = open_memstream(&m->buf, &m->len);
    return m->f ? DK_OK : dk_fail(e, DK_ERR_NOMEM, "out of memory");
}

static dk_status rep_mem_commit(rep_mem *m, rep_out *o, const char *name, dk_err *e) {
    int bad = fclose(m->f) != 0;
    m->f = NULL;
    dk_status st = bad ? dk_fail(e, DK_ERR_NOMEM, "%s: out of memory", name) : rep_write_file(o, name, m->buf, m->len, e);
    free(m->buf);
    m->buf = NULL;
    return st;
}

static void rep_mem_drop(rep_mem *m) {
    if (m->f) fclose(m->f);
    free(m->buf);
    m->f = NULL; m->buf = NULL;
}

/* ---- loading ---- */

static void rep_data_free(rep_data *d) {
    free(d->run_name); free(d->config_path); free(d->config_hash); free(d->git_rev);
    free(d->host); free(d->cpu); free(d->blas_core); free(d->command);
    for (size_t i = 0; i < d->n_models; i++) {
        free(d->models[i].sha); free(d->models[i].path); free(d->models[i].label);
        free(d->models[i].slug); free(d->models[i].arch);
    }
    for (size_t i = 0; i < d->n_tasks; i++) { free(d->tasks[i].name); free(d->tasks[i].slug); }
    for (size_t i = 0; i < d->n_settings; i++) {
        free(d->settings[i].method); free(d->settings[i].params);
        free(d->settings[i].label); free(d->settings[i].slug);
    }
    for (size_t i = 0; i < d->n_cells_loaded; i++) {
        rep_cell *c = &d->cells[i];
        free(c->options); free(c->task_key);
        free(c->score); free(c->wd); free(c->wm); free(c->fd); free(c->fm);
        free(c->kl); free(c->top1); free(c->nll); free(c->ctx); free(c->sid); free(c->cl);
        free(c->active); free(c->dmin); free(c->dmed); free(c->dmax);
    }
    free(d->models); free(d->tasks); free(d->settings); free(d->cells);
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
        for (int k = 0; k < 5; k++) if (!strcmp(it->string, first[k])) known = 1;
        if (known || n >= sizeof buf) continue;
        if (cJSON_IsNumber(it)) n += (size_t)snprintf(buf + n, sizeof buf - n, " %s=%g", it->string, it->valuedouble);
        else if (cJSON_IsString(it)) n += (size_t)snprintf(buf + n, sizeof buf - n, " %s=%s", it->string, it->valuestring);
        else if (cJSON_IsBool(it)) n += (size_t)snprintf(buf + n, sizeof buf - n, " %s=%s", it->string, cJSON_IsTrue(it) ? "true" : "false");
    }
    cJSON_Delete(o);
    return rep_strdup(buf);
}

static int rep_find_or_add_task(rep_data *d, const char *name) {
    for (size_t i = 0; i < d->n_tasks; i++) if (!strcmp(d->tasks[i].name, name)) return (int)i;
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
    x->rho = v[0]; x->tau = v[1]; x->ls = v[2]; x->keep = v[3];
    return (int)d->n_settings++;
}

static int rep_find_or_add_model(rep_data *d, const char *sha, const char *path, const char *arch, int64_t n_layer,
                                 int64_t n_params) {
    for (size_t i = 0; i < d->n_models; i++) if (!strcmp(d->models[i].sha, sha)) return (int)i;
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
        if (!strcmp(d->models[i].label, lab)) { size_t l = strlen(lab); snprintf(lab + l, sizeof lab - l, "-%.8s", sha); break; }
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
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) { h ^= *p; h *= 0x100000001b3ULL; }
    return (int64_t)(h & ((UINT64_C(1) << 62) - 1));
}

/* The cell's sample rows from the store: rep_cell takes over the store's column arrays. */
static dk_status rep_load_samples(dk_store *s, rep_cell *c, dk_err *e) {
    dk_store_samples x;
    dk_status st = dk_store_cell_samples_read(s, c->id, &x, e);
    if (st != DK_OK) return st;
    c->n = x.n;
    c->n_layer = x.n_layer;
    c->score = x.score; c->wd = x.wall_dense_s; c->wm = x.wall_method_s; c->fd = x.flops_dense; c->fm = x.flops_method;
    c->kl = x.kl; c->top1 = x.top1; c->nll = x.nll_delta; c->ctx = x.context_tokens; c->sid = x.sample_id;
    c->active = x.active; c->dmin = x.delta_min; c->dmed = x.delta_median; c->dmax = x.delta_max;
    x.score = x.wall_dense_s = x.wall_method_s = x.flops_dense = x.flops_method = NULL;
    x.kl = x.top1 = x.nll_delta = x.context_tokens = x.active = x.delta_min = x.delta_median = x.delta_max = NULL;
    x.sample_id = NULL;
    c->cl = malloc((x.n ? x.n : 1) * sizeof *c->cl);
    if (!c->cl) st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
    for (size_t i = 0; st == DK_OK && i < c->n; i++) c->cl[i] = rep_context_cluster(x.context_key[i], x.row[i]);
    for (size_t i = 0; st == DK_OK && i < c->n; i++)
        for (size_t j = 0; j < c->n; j++)
            if (j != i && c->cl[j] == c->cl[i]) { c->n_shared++; break; }
    dk_store_samples_free(&x);
    return st;
}

/* The run (o->run_id, 0 = the latest) and its provenance. */
static dk_status rep_load_run(dk_store *s, int64_t run, rep_data *d, dk_err *e) {
    dk_store_run *runs = NULL;
    size_t n = 0;
    dk_status st = dk_store_runs_read(s, &runs, &n, e);
    if (st != DK_OK) return st;
    if (run <= 0 && !n) st = dk_fail(e, DK_ERR_ARG, "the store has no runs yet (run 'dashkit run CONFIG' first)");
    if (run <= 0 && n) run = runs[n - 1].id;
    dk_store_run *r = NULL;
    for (size_t i = 0; st == DK_OK && i < n; i++) if (runs[i].id == run) r = &runs[i];
    if (st == DK_OK && !r) {
        if (n) st = dk_fail(e, DK_ERR_ARG, "run %lld: no such run in the store (runs %lld..%lld)", (long long)run,
                            (long long)runs[0].id, (long long)runs[n - 1].id);
        else st = dk_fail(e, DK_ERR_ARG, "run %lld: no such run (the store has no runs yet)", (long long)run);
    }
    if (st == DK_OK) {
        d->run_id = run;
        d->run_name = r->name; d->config_path = r->config_path; d->config_hash = r->config_hash;
        d->git_rev = r->git_rev; d->host = r->host; d->cpu = r->cpu; d->blas_core = r->blas_core; d->command = r->command;
        r->name = r->config_path = r->config_hash = r->git_rev = r->host = r->cpu = r->blas_core = r->command = NULL;
        d->threads = r->threads;
        d->workers = r->workers;
        d->n_cells = r->n_cells;
        d->started_at = r->started_at;
        d->finished_at = r->finished_at;
    }
    dk_store_runs_free(runs, n);
    return st;
}

static dk_status rep_load(dk_store *s, const dk_report_opts *o, rep_data *d, dk_err *e) {
    memset(d, 0, sizeof *d);
    d->store = s;
    d->opts = o;
    dk_store_cell_row *rows = NULL;
    size_t n_rows = 0;
    dk_status st = rep_load_run(s, o->run_id, d, e);
    if (st == DK_OK) st = dk_store_run_cells_read(s, d->run_id, &rows, &n_rows, e);
    if (st == DK_OK && n_rows && !(d->cells = calloc(n_rows, sizeof *d->cells))) st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
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
        if (c->mi < 0 || c->ti < 0 || c->si < 0 || !c->options || !c->task_key) st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
        else st = rep_load_samples(s, c, e);
    }
    dk_store_cell_rows_free(rows, n_rows);
    if (st != DK_OK) rep_data_free(d);
    return st;
}

/* ---- statistics over groups of cells ---- */

typedef enum { Q_SCORE = 0, Q_WALL, Q_FLOPS, Q_KL, Q_TOP1, Q_NLL } rep_qty;
static const char *const rep_qty_name[] = {"score", "wall", "flops", "kl", "top1", "nll_delta"};

typedef struct {
    dk_boot_stratum *st;
    double **bufs; /* (2 * n) owned num/den arrays */
    int64_t **cls; /* (n) owned cluster ids */
    size_t n;
} rep_strata;

static void rep_strata_free(rep_strata *S) {
    for (size_t i = 0; i < 2 * S->n; i++) free(S->bufs[i]);
    for (size_t i = 0; i < S->n; i++) free(S->cls[i]);
    free(S->bufs);
    free(S->cls);
    free(S->st);
    memset(S, 0, sizeof *S);
}

/* Adds cell c's measured values of qty to a new stratum, or to the last one (merge). */
static int rep_strata_add(rep_strata *S, const rep_cell *c, rep_qty qty, int merge) {
    if (!merge || S->n == 0) {
        dk_boot_stratum *p = realloc(S->st, (S->n + 1) * sizeof *p);
        if (!p) return -1;
        S->st = p;
        double **b = realloc(S->bufs, 2 * (S->n + 1) * sizeof *b);
        if (!b) return -1;
        S->bufs = b;
        S->bufs[2 * S->n] = S->bufs[2 * S->n + 1] = NULL;
        int64_t **cb = realloc(S->cls, (S->n + 1) * sizeof *cb);
        if (!cb) return -1;
        S->cls = cb;
        S->cls[S->n] = NULL;
        S->st[S->n] = (dk_boot_stratum){NULL, NULL, 0, NULL};
        S->n++;
    }
    size_t k = S->n - 1;
    dk_boot_stratum *t = &S->st[k];
    double *num = realloc(S->bufs[2 * k], (t->n + c->n + 1) * sizeof *num);
    if (!num) return -1;
    S->bufs[2 * k] = num;
    int64_t *cl = realloc(S->cls[k], (t->n + c->n + 1) * sizeof *cl);
    if (!cl) return -1;
    S->cls[k] = cl;
    double *den = NULL;
    if (qty == Q_WALL || qty == Q_FLOPS) {
        den = realloc(S->bufs[2 * k + 1], (t->n + c->n + 1) * sizeof *den);
        if (!den) return -1;
        S->bufs[2 * k + 1] = den;
    }
    size_t m = t->n;
    for (size_t i = 0; i < c->n; i++) {
        double a, b = 1;
        switch (qty) {
        case Q_SCORE: a = c->score[i]; break;
        case Q_WALL: a = c->wd[i]; b = c->wm[i]; break;
        case Q_FLOPS: a = c->fd[i]; b = c->fm[i]; break;
        case Q_KL: a = c->kl[i]; break;
        case Q_NLL: a = c->nll[i]; break;
        default: a = c->top1[i]; break;
        }
        if (isnan(a) || isnan(b)) continue;
        num[m] = a;
        if (den) den[m] = b;
        cl[m] = c->cl ? c->cl[i] : (int64_t)(UINT64_C(1) << 61) + (int64_t)m; /* no clusters: each its own */
        m++;
    }
    t->num = num;
    t->den = den;
    t->cluster = cl;
    t->n = m;
    return 0;
}

/* The statistic of qty over the cells matching (model, task or -1 = all, setting), strata per
 * cell (by_task = 0, pooled) or per task (by_task = 1, mean of per-task values). Samples carry
 * their context cluster; when a task's cells hold samples that share a context, that task's
 * cells form one stratum, so that its contexts (not samples within one) are resampled. */
static dk_status rep_stat(const rep_data *d, int mi, int ti, int si, rep_qty qty, int by_task, dk_ci *out, size_t *n_out,
                          dk_err *e) {
    rep_strata S = {0};
    dk_status st = DK_OK;
    out->est = out->lo = out->hi = NAN;
    size_t total = 0;
    for (size_t t = 0; t < d->n_tasks; t++) {
        if (ti >= 0 && (int)t != ti) continue;
        int first = 1, shared = 0;
        for (size_t i = 0; i < d->n_cells_loaded; i++) {
            const rep_cell *c = &d->cells[i];
            if (c->mi == mi && c->ti == (int)t && c->si == si && c->n_shared) shared = 1;
        }
        for (size_t i = 0; i < d->n_cells_loaded; i++) {
            const rep_cell *c = &d->cells[i];
            if (c->mi != mi || c->ti != (int)t || c->si != si) continue;
            if (rep_strata_add(&S, c, qty, (by_task || shared) && !first) != 0) {
                st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
                goto done;
            }
            first = 0;
        }
    }
    for (size_t k = 0; k < S.n; k++) total += S.st[k].n;
    char label[2048];
    snprintf(label, sizeof label, "%s|%s|%s|%s|%s|%d", d->models[mi].sha, ti >= 0 ? d->tasks[ti].name : "*",
             d->settings[si].method, d->settings[si].params, rep_qty_name[qty], by_task);
    /* speedups are drawn in x; their CIs are cheap, so every quantity gets one */
    st = dk_bootstrap_ci(S.st, S.n, by_task ? DK_BOOT_MEAN_OF_STRATA : DK_BOOT_POOLED, d->opts->n_boot,
                         dk_bootstrap_seed(d->opts->seed, label), d->opts->level, out, e);
done:
    if (n_out) *n_out = total;
    rep_strata_free(&S);
    return st;
}

/* Does setting si have cells for (mi, ti)? */
static int rep_has(const rep_data *d, int mi, int ti, int si) {
    for (size_t i = 0; i < d->n_cells_loaded; i++)
        if (d->cells[i].mi == mi && d->cells[i].si == si && (ti < 0 || d->cells[i].ti == ti)) return 1;
    return 0;
}

static int rep_is_dense(const rep_setting *s) { return !strcmp(s->method, "dense"); }

/* Dense reference from dense_results when the run has no dense cells: the shared dense scores
 * of the samples of (mi, ti)'s cells, one stratum per task_key. */
static dk_status rep_dense_reference(const rep_data *d, int mi, int ti, dk_ci *out, size_t *n_out, dk_err *e) {
    out->est = out->lo = out->hi = NAN;
    *n_out = 0;
    rep_strata S = {0};
    dk_status st = DK_OK;
    const char **seen = calloc(d->n_cells_loaded + 1, sizeof *seen);
    size_t n_seen = 0;
    if (!seen) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < d->n_cells_loaded; i++) {
        const rep_cell *c = &d->cells[i];
        if (c->mi != mi || c->ti != ti) continue;
        int dup = 0;
        for (size_t k = 0; k < n_seen; k++) if (!strcmp(seen[k], c->task_key)) dup = 1;
        if (dup) continue;
        seen[n_seen++] = c->task_key;
        rep_cell tmp = {0};
        if ((st = dk_store_dense_scores(d->store, d->models[mi].sha, c->task_key, c->n_expected, &tmp.score, &tmp.n, e)))
            goto done;
        if (tmp.n && rep_strata_add(&S, &tmp, Q_SCORE, 0) != 0) st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
        free(tmp.score);
        if (st != DK_OK) goto done;
    }
    for (size_t k = 0; k < S.n; k++) *n_out += S.st[k].n;
    if (*n_out) {
        char label[1024];
        snprintf(label, sizeof label, "%s|%s|dense_results|score", d->models[mi].sha, d->tasks[ti].name);
        st = dk_bootstrap_ci(S.st, S.n, DK_BOOT_POOLED, d->opts->n_boot, dk_bootstrap_seed(d->opts->seed, label),
                             d->opts->level, out, e);
    }
done:
    free(seen);
    rep_strata_free(&S);
    return st;
}

/* ---- gnuplot: locate, probe, draw ---- */

static void rep_gnuplot_locate(const dk_report_opts *o, dk_report_result *r) {
    const char *env = o->gnuplot ? o->gnuplot : getenv("DK_GNUPLOT");
    r->gnuplot_found = 0;
    if (env) {
        if (*env && access(env, X_OK) == 0) {
            snprintf(r->gnuplot, sizeof r->gnuplot, "%s", env);
            r->gnuplot_found = 1;
        } else {
            snprintf(r->gnuplot, sizeof r->gnuplot, "DK_GNUPLOT='%s' is not an executable", env);
        }
        return;
    }
    const char *path = getenv("PATH");
    if (path) {
        const char *p = path;
        while (*p || p == path) {
            const char *end = strchr(p, ':');
            size_t len = end ? (size_t)(end - p) : strlen(p);
            char cand[1024];
            if (len > 0 && len < sizeof cand - 10) {
                snprintf(cand, sizeof cand, "%.*s/gnuplot", (int)len, p);
                if (access(cand, X_OK) == 0) {
                    snprintf(r->gnuplot, sizeof r->gnuplot, "%.*s", (int)sizeof r->gnuplot - 1, cand);
                    r->gnuplot_found = 1;
                    return;
                }
            }
            if (!end) break;
            p = end + 1;
        }
    }
    snprintf(r->gnuplot, sizeof r->gnuplot, "gnuplot not found on PATH (install gnuplot-nox or set DK_GNUPLOT)");
}

/* Runs gnuplot with args in dir; returns its exit status (-1: could not start); its stderr's
 * last non-empty line goes to msg. */
static int rep_gnuplot_exec(const char *gp, const char *dir, char *const args[], char *msg, size_t msg_n) {
    int pfd[2];
    msg[0] = 0;
    if (pipe(pfd) != 0) { snprintf(msg, msg_n, "pipe: %s", strerror(errno)); return -1; }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) { close(pfd[0]); close(pfd[1]); snprintf(msg, msg_n, "fork: %s", strerror(errno)); return -1; }
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) { dup2(nul, 0); dup2(nul, 1); }
        dup2(pfd[1], 2);
        close(pfd[0]); close(pfd[1]);
        if (dir && chdir(dir) != 0) _exit(126);
        execv(gp, args);
        _exit(127);
    }
    close(pfd[1]);
    char buf[8192];
    size_t len = 0;
    ssize_t k;
    while ((k = read(pfd[0], buf + len, sizeof buf - 1 - len)) != 0) {
        if (k < 0) { if (errno == EINTR) continue; break; }
        len += (size_t)k;
        if (len >= sizeof buf - 1) { /* keep the tail */
            memmove(buf, buf + len / 2, len - len / 2);
            len -= len / 2;
        }
    }
    close(pfd[0]);
    buf[len] = 0;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    /* last non-empty line */
    char *end = buf + len;
    while (end > buf && (end[-1] == '\n' || end[-1] == ' ')) *--end = 0;
    char *line = strrchr(buf, '\n');
    line = line ? line + 1 : buf;
    /* gnuplot puts the error after a caret line; the message line is the informative one */
    snprintf(msg, msg_n, "%.*s", (int)(msg_n > 1 ? msg_n - 1 : 0), line);
    if (!WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}

static void rep_gnuplot_probe(dk_report_result *r) {
    char *args[] = {"gnuplot", "-e", "set terminal pngcairo", NULL};
    char msg[256];
    snprintf(r->terminal, sizeof r->terminal, "%s", rep_gnuplot_exec(r->gnuplot, NULL, args, msg, sizeof msg) == 0 ? "pngcairo" : "png");
}

static int rep_nonempty(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

/* Draws every queued figure: gnuplot writes to temporary names, renamed when it succeeded. */
static void rep_draw(rep_out *o) {
    dk_report_result *r = o->r;
    for (size_t i = 0; i < o->n_figs; i++) {
        const char *stem = o->figs[i];
        char png_tmp[1024], svg_tmp[1024], vars[2600], gpname[1024], msg[512];
        snprintf(png_tmp, sizeof png_tmp, ".%s.%d.png.tmp", stem, (int)getpid());
        snprintf(svg_tmp, sizeof svg_tmp, ".%s.%d.svg.tmp", stem, (int)getpid());
        snprintf(vars, sizeof vars, "pngterm=\"%s\"; outpng=\"%s\"; outsvg=\"%s\"", r->terminal, png_tmp, svg_tmp);
        snprintf(gpname, sizeof gpname, "%s.gp", stem);
        char *args[] = {"gnuplot", "-e", vars, gpname, NULL};
        int rc = rep_gnuplot_exec(r->gnuplot, o->dir, args, msg, sizeof msg);
        int ok = rc == 0;
        const char *fmt[2] = {"png", "svg"};
        const char *tmp[2] = {png_tmp, svg_tmp};
        int want[2] = {o->png, o->svg};
        for (int k = 0; k < 2; k++) {
            char from[2048], to[2048];
            snprintf(from, sizeof from, "%s/%s", o->dir, tmp[k]);
            snprintf(to, sizeof to, "%s/%s.%s", o->dir, stem, fmt[k]);
            if (ok && want[k] && !rep_nonempty(from)) {
                ok = 0;
                if (!msg[0]) snprintf(msg, sizeof msg, "no %s output", fmt[k]);
            }
            if (ok && want[k]) {
                if (rename(from, to) == 0) r->n_files++;
                else { ok = 0; snprintf(msg, sizeof msg, "%.300s: %.100s", to, strerror(errno)); }
            }
            unlink(from);
        }
        if (ok) r->n_drawn++;
        else {
            r->n_failed++;
            if (!r->failure[0])
                snprintf(r->failure, sizeof r->failure, "%.250s: %.500s", gpname, msg[0] ? msg : (rc < 0 ? "could not run gnuplot" : "gnuplot failed"));
        }
    }
}

static dk_status rep_queue_fig(rep_out *o, const char *stem, dk_err *e) {
    char **p = realloc(o->figs, (o->n_figs + 1) * sizeof *p);
    if (!p) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    o->figs = p;
    if (!(o->figs[o->n_figs] = rep_strdup(stem))) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    o->n_figs++;
    if (o->r) o->r->n_figures++;
    return DK_OK;
}

/* Script preamble: outputs are variables so the caller (or a user) can redirect them. */
static void rep_gp_head(FILE *f, const rep_out *o, const char *stem, const char *what, const char *dat) {
    fprintf(f, "# %s\n# written by `dashkit report` / `dashkit plot` from the store; data: %s\n", what, dat);
    fprintf(f, "# redraw (restyle freely): gnuplot %s.gp   (variables below may be preset with -e)\n", stem);
    fprintf(f, "if (!exists(\"pngterm\")) pngterm = \"pngcairo\"\n");
    if (o->png) fprintf(f, "if (!exists(\"outpng\")) outpng = \"%s.png\"\n", stem);
    if (o->svg) fprintf(f, "if (!exists(\"outsvg\")) outsvg = \"%s.svg\"\n", stem);
    if (o->png) fprintf(f, "set terminal @pngterm size 960,640 noenhanced\nset output outpng\n");
    else fprintf(f, "set terminal svg size 960,640 dynamic noenhanced\nset output outsvg\n");
}

static void rep_gp_tail(FILE *f, const rep_out *o) {
    if (o->png && o->svg) fprintf(f, "set terminal svg size 960,640 dynamic noenhanced\nset output outsvg\nreplot\n");
    fprintf(f, "unset output\n");
}

/* ---- frontier ---- */

typedef struct {
    int si;             /* setting, -1 = dense_results reference */
    size_t n;
    dk_ci score, wall, flops;
    int front_wall, front_flops;
} rep_point;

/* Points of (mi, ti): every setting with cells there, plus the dense_results reference when
 * the run has no dense cells. */
static dk_status rep_frontier_points(const rep_data *d, int mi, int ti, rep_point **pts_out, size_t *n_out, dk_err *e) {
    rep_point *pts = calloc(d->n_settings + 1, sizeof *pts);
    if (!pts) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    size_t n = 0;
    int have_dense = 0;
    dk_status st = DK_OK;
    for (size_t s = 0; s < d->n_settings; s++) {
        if (!rep_has(d, mi, ti, (int)s)) continue;
        rep_point *p = &pts[n];
        p->si = (int)s;
        if ((st = rep_stat(d, mi, ti, (int)s, Q_SCORE, 0, &p->score, &p->n, e)) != DK_OK ||
            (st = rep_stat(d, mi, ti, (int)s, Q_WALL, 0, &p->wall, NULL, e)) != DK_OK ||
            (st = rep_stat(d, mi, ti, (int)s, Q_FLOPS, 0, &p->flops, NULL, e)) != DK_OK) goto fail;
        if (rep_is_dense(&d->settings[s])) have_dense = 1;
        n++;
    }
    if (!have_dense) {
        rep_point *p = &pts[n];
        p->si = -1;
        if ((st = rep_dense_reference(d, mi, ti, &p->score, &p->n, e)) != DK_OK) goto fail;
        if (p->n) {
            p->wall = (dk_ci){1, NAN, NAN};
            p->flops = (dk_ci){1, NAN, NAN};
            n++;
        }
    }
    double *x = malloc((n + 1) * sizeof *x), *xf = malloc((n + 1) * sizeof *xf), *y = malloc((n + 1) * sizeof *y);
    int *fw = malloc((n + 1) * sizeof *fw), *ff = malloc((n + 1) * sizeof *ff);
    if (!x || !xf || !y || !fw || !ff) {
        free(x); free(xf); free(y); free(fw); free(ff);
        st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) { x[i] = pts[i].wall.est; xf[i] = pts[i].flops.est; y[i] = pts[i].score.est; }
    dk_pareto_front(x, y, n, fw);
    dk_pareto_front(xf, y, n, ff);
    for (size_t i = 0; i < n; i++) { pts[i].front_wall = fw[i]; pts[i].front_flops = ff[i]; }
    free(x); free(xf); free(y); free(fw); free(ff);
    *pts_out = pts;
    *n_out = n;
    return DK_OK;
fail:
    free(pts);
    return st;
}

static const char *rep_point_label(const rep_data *d, const rep_point *p) {
    return p->si >= 0 ? d->settings[p->si].label : "dense (shared dense results)";
}
static const char *rep_point_method(const rep_data *d, const rep_point *p) {
    return p->si >= 0 ? d->settings[p->si].method : "dense";
}

typedef struct { const rep_point *p; int flops; } rep_sort_ctx;
static rep_sort_ctx rep_sort_g;
static int rep_cmp_idx(const void *a, const void *b) {
    const rep_point *pa = &rep_sort_g.p[*(const size_t *)a], *pb = &rep_sort_g.p[*(const size_t *)b];
    double xa = rep_sort_g.flops ? pa->flops.est : pa->wall.est, xb = rep_sort_g.flops ? pb->flops.est : pb->wall.est;
    return (xa > xb) - (xa < xb);
}

/* Writes dat (gnuplot blocks) + csv for (mi, ti), and a script per requested x axis.
 * dat_stem: frontier data stem; gp_stems[x] = script stem for axis x, NULL = not wanted. */
static dk_status rep_frontier_write(const rep_data *d, rep_out *o, int mi, int ti, const char *dat_stem,
                                    const char *gp_stems[2], int write_csv, dk_err *e) {
    rep_point *pts = NULL;
    size_t n = 0;
    dk_status st = rep_frontier_points(d, mi, ti, &pts, &n, e);
    if (st != DK_OK) return st;
    rep_mem m = {0};
    char name[1024];
    /* series = methods in order of first appearance */
    const char **methods = calloc(n + 1, sizeof *methods);
    size_t n_methods = 0;
    size_t *order = calloc(n + 1, sizeof *order);
    if (!methods || !order) { st = dk_fail(e, DK_ERR_NOMEM, "out of memory"); goto done; }
    for (size_t i = 0; i < n; i++) {
        const char *mth = rep_point_method(d, &pts[i]);
        int found = 0;
        for (size_t k = 0; k < n_methods; k++) if (!strcmp(methods[k], mth)) found = 1;
        if (!found) methods[n_methods++] = mth;
    }
    if ((st = rep_mem_open(&m, e)) != DK_OK) goto done;
    fprintf(m.f, "# frontier: model %s, task %s (pooled over task options), run %lld\n", d->models[mi].label,
            d->tasks[ti].name, (long long)d->run_id);
    fprintf(m.f, "# x = speedup (wall: sum dense prefill s / sum method prefill s; flops: sum dense / sum method FLOPs),"
                 " y = mean score; lo/hi = %.0f%% percentile bootstrap CI (%d resamples, seed %llu)\n",
            100 * d->opts->level, d->opts->n_boot, (unsigned long long)d->opts->seed);
    fprintf(m.f, "# blocks (gnuplot index): one per method, then the Pareto front by wall speedup, then by FLOP speedup\n");
    int idx = 0;
    for (size_t k = 0; k < n_methods; k++, idx++) {
        fprintf(m.f, "%s# index %d: method %s\n# wall wall_lo wall_hi flops flops_lo flops_hi score score_lo score_hi n"
                     " pareto_wall pareto_flops setting\n", k ? "\n\n" : "", idx, methods[k]);
        for (size_t i = 0; i < n; i++) {
            if (strcmp(rep_point_method(d, &pts[i]), methods[k]) != 0) continue;
            const rep_point *p = &pts[i];
            char b[9][32];
            rep_fmt(b[0], 32, p->wall.est); rep_fmt(b[1], 32, p->wall.lo); rep_fmt(b[2], 32, p->wall.hi);
            rep_fmt(b[3], 32, p->flops.est); rep_fmt(b[4], 32, p->flops.lo); rep_fmt(b[5], 32, p->flops.hi);
            rep_fmt(b[6], 32, p->score.est); rep_fmt(b[7], 32, p->score.lo); rep_fmt(b[8], 32, p->score.hi);
            fprintf(m.f, "%s %s %s %s %s %s %s %s %s %zu %d %d ", b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8],
                    p->n, p->front_wall, p->front_flops);
            rep_gp_str(m.f, rep_point_label(d, p));
            fputc('\n', m.f);
        }
    }
    for (int fl = 0; fl < 2; fl++, idx++) {
        fprintf(m.f, "\n\n# index %d: Pareto front by %s speedup, sorted by x\n# x score\n", idx, fl ? "FLOP" : "wall");
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if ((fl ? pts[i].front_flops : pts[i].front_wall)) order[k++] = i;
        rep_sort_g = (rep_sort_ctx){pts, fl};
        qsort(order, k, sizeof *order, rep_cmp_idx);
        for (size_t j = 0; j < k; j++) {
            const rep_point *p = &pts[order[j]];
            fprintf(m.f, "%.10g %.10g\n", fl ? p->flops.est : p->wall.est, p->score.est);
        }
        if (!k) fprintf(m.f, "NaN NaN\n");
    }
    snprintf(name, sizeof name, "%s.dat", dat_stem);
    if ((st = rep_mem_commit(&m, o, name, e)) != DK_OK) goto done;

    if (write_csv) {
        if ((st = rep_mem_open(&m, e)) != DK_OK) goto done;
        fprintf(m.f, "model,task,method,setting,params,n,score,score_lo,score_hi,wall_speedup,wall_lo,wall_hi,"
                     "flops_speedup,flops_lo,flops_hi,pareto_wall,pareto_flops\n");
        for (size_t i = 0; i < n; i++) {
            const rep_point *p = &pts[i];
            dk_report_csv_field(m.f, d->models[mi].label); fputc(',', m.f);
            dk_report_csv_field(m.f, d->tasks[ti].name); fputc(',', m.f);
            dk_report_csv_field(m.f, rep_point_method(d, p)); fputc(',', m.f);
            dk_report_csv_field(m.f, rep_point_label(d, p)); fputc(',', m.f);
            dk_report_csv_field(m.f, p->si >= 0 ? d->settings[p->si].params : "{}");
            fprintf(m.f, ",%zu,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%d,%d\n", p->n, p->score.est,
                    p->score.lo, p->score.hi, p->wall.est, p->wall.lo, p->wall.hi, p->flops.est, p->flops.lo,
                    p->flops.hi, p->front_wall, p->front_flops);
        }
        snprintf(name, sizeof name, "%s.csv", dat_stem);
        if ((st = rep_mem_commit(&m, o, name, e)) != DK_OK) goto done;
    }

    /* dense score as a reference line */
    double dense_y = NAN;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(rep_point_method(d, &pts[i]), "dense")) dense_y = pts[i].score.est;
    for (int ax = 0; ax < 2; ax++) {
        if (!gp_stems[ax]) continue;
        if ((st = rep_mem_open(&m, e)) != DK_OK) goto done;
        char what[1024];
        snprintf(what, sizeof what, "speedup-accuracy frontier (%s speedup): %s, %s", ax ? "FLOP" : "measured prefill",
                 d->models[mi].label, d->tasks[ti].name);
        snprintf(name, sizeof name, "%s.dat", dat_stem);
        rep_gp_head(m.f, o, gp_stems[ax], what, name);
        fprintf(m.f, "set title ");
        char title[1024];
        snprintf(title, sizeof title, "%s: %s (run %lld)", d->models[mi].label, d->tasks[ti].name, (long long)d->run_id);
        rep_gp_str(m.f, title);
        fprintf(m.f, "\nset xlabel \"%s\"\nset ylabel \"score (mean, %.0f%% bootstrap CI)\"\n",
                ax ? "FLOP speedup (dense FLOPs / method FLOPs)" : "measured prefill speedup (dense s / method s)",
                100 * d->opts->level);
        fprintf(m.f, "set key outside right top\nset grid\nset offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05\n");
        if (!isnan(dense_y))
            fprintf(m.f, "set arrow 1 from graph 0, first %.4f to graph 1, first %.4f nohead dt 2 lc rgb \"gray40\"\n",
                    dense_y, dense_y);
        fprintf(m.f, "dat = \"%s.dat\"\nplot \\\n", dat_stem);
        for (size_t k = 0; k < n_methods; k++) {
            int dense = !strcmp(methods[k], "dense");
            fprintf(m.f, "  dat index %zu using %d:7:8:9 with yerrorbars %s title ", k, ax ? 4 : 1,
                    dense ? "pt 5 ps 1.8 lc rgb \"black\"" : "pt 7 ps 1.2");
            rep_gp_str(m.f, methods[k]);
            fprintf(m.f, ", \\\n");
        }
        fprintf(m.f, "  dat index %zu using 1:2 with lines lw 2 dt 1 lc rgb \"#555555\" title \"Pareto front\"\n",
                n_methods + (size_t)ax);
        rep_gp_tail(m.f, o);
        snprintf(name, sizeof name, "%s.gp", gp_stems[ax]);
        if ((st = rep_mem_commit(&m, o, name, e)) != DK_OK) goto done;
        if ((st = rep_queue_fig(o, gp_stems[ax], e)) != DK_OK) goto done;
    }
done:
    rep_mem_drop(&m);
    free(methods);
    free(order);
    free(pts);
    return st;
}

/* ---- NIAH heatmap ---- */

static int rep_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Distinct sorted non-NaN values. */
static size_t rep_distinct(double *v, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) if (!isnan(v[i])) v[k++] = v[i];
    qsort(v, k, sizeof *v, rep_cmp_double);
    size_t u = 0;
    for (size_t i = 0; i < k; i++) if (!u || v[i] != v[u - 1]) v[u++] = v[i];
    return u;
}

static int rep_task_has_depth(const rep_data *d, int mi, int ti) {
    for (size_t i = 0; i < d->n_cells_loaded; i++)
        if (d->cells[i].mi == mi && d->cells[i].ti == ti && !isnan(d->cells[i].depth)) return 1;
    return 0;
}

static dk_status rep_heatmap_write(const rep_data *d, rep_out *o, int mi, int ti, int si, const char *stem, dk_err *e) {
    size_t nc = d->n_cells_loaded;
    double *lens = malloc((nc + 1) * sizeof *lens), *deps = malloc((nc + 1) * sizeof *deps);
    if (!lens || !deps) { free(lens); free(deps); return dk_fail(e, DK_ERR_NOMEM, "out of memory"); }
    size_t k = 0;
    for (size_t i = 0; i < nc; i++) {
        const rep_cell *c = &d->cells[i];
        if (c->mi != mi || c->ti != ti || c->si != si) continue;
        lens[k] = isnan(c->length) ? -1 : c->length;
        deps[k] = c->depth;
        k++;
    }
    size_t nl = rep_distinct(lens, k), nd = rep_distinct(deps, k);
    rep_mem m = {0};
    dk_status st = rep_mem_open(&m, e);
    char name[1024];
    if (st != DK_OK) goto done;
    fprintf(m.f, "# NIAH heatmap: model %s, task %s, %s, run %lld\n", d->models[mi].label, d->tasks[ti].name,
            d->settings[si].label, (long long)d->run_id);
    fprintf(m.f, "# length_index depth_index length depth score score_lo score_hi n (score = mean over the cell's samples;"
                 " NaN = no samples; length -1 = no length option)\n");
    for (size_t a = 0; a < nl; a++) {
        for (size_t b = 0; b < nd; b++) {
            /* one cell per (length, depth) for a setting; pool if the store holds several */
            rep_strata S = {0};
            for (size_t i = 0; i < nc; i++) {
                const rep_cell *c = &d->cells[i];
                if (c->mi != mi || c->ti != ti || c->si != si) continue;
                if ((isnan(c->length) ? -1 : c->length) != lens[a] || c->depth != deps[b]) continue;
                if (rep_strata_add(&S, c, Q_SCORE, 0) != 0) { rep_strata_free(&S); st = dk_fail(e, DK_ERR_NOMEM, "out of memory"); goto done; }
            }
            dk_ci ci = {NAN, NAN, NAN};
            size_t tot = 0;
            for (size_t j = 0; j < S.n; j++) tot += S.st[j].n;
            char label[1024];
            snprintf(label, sizeof label, "%s|%s|%s|%s|heat|%g|%g", d->models[mi].sha, d->tasks[ti].name,
                     d->settings[si].method, d->settings[si].params, lens[a], deps[b]);
            st = dk_bootstrap_ci(S.st, S.n, DK_BOOT_POOLED, d->opts->n_boot, dk_bootstrap_seed(d->opts->seed, label),
                                 d->opts->level, &ci, e);
            rep_strata_free(&S);
            if (st != DK_OK) goto done;
            char b1[32], b2[32], b3[32];
            rep_fmt(b1, 32, ci.est); rep_fmt(b2, 32, ci.lo); rep_fmt(b3, 32, ci.hi);
            fprintf(m.f, "%zu %zu %g %g %s %s %s %zu\n", a, b, lens[a], deps[b], b1, b2, b3, tot);
        }
    }
    snprintf(name, sizeof name, "%s.dat", stem);
    if ((st = rep_mem_commit(&m, o, name, e)) != DK_OK) goto done;

    if ((st = rep_mem_open(&m, e)) != DK_OK) goto done;
    char what[1024];
    snprintf(what, sizeof what, "NIAH heatmap: %s, %s, %s", d->models[mi].label, d->tasks[ti].name, d->settings[si].label);
    rep_gp_head(m.f, o, stem, what, name);
    char title[1024];
    snprintf(title, sizeof title, "%s: %s, %s (run %lld)", d->models[mi].label, d->tasks[ti].name, d->settings[si].label,
             (long long)d->run_id);
    fprintf(m.f, "set title ");
    rep_gp_str(m.f, title);
    fprintf(m.f, "\nset xlabel \"context length (tokens)\"\nset ylabel \"needle depth (%% of context)\"\n");
    fprintf(m.f, "set cblabel \"score\"\nset cbrange [0:100]\nset palette defined (0 \"#b2182b\", 50 \"#fee08b\", 100 \"#1a9850\")\n");
    fprintf(m.f, "set xrange [-0.5:%zu.5]\nset yrange [-0.5:%zu.5]\nset xtics (", nl ? nl - 1 : 0, nd ? nd - 1 : 0);
    for (size_t a = 0; a < nl; a++) fprintf(m.f, "%s\"%g\" %zu", a ? ", " : "", lens[a], a);
    fprintf(m.f, ")\nset ytics (");
    for (size_t b = 0; b < nd; b++) fprintf(m.f, "%s\"%g\" %zu", b ? ", " : "", deps[b], b);
    fprintf(m.f, ")\nunset key\nset style fill solid 1.0 noborder\n");
    fprintf(m.f, "plot \"%s\" using 1:2:(0.5):(0.5):5 with boxxyerror lc palette, \\\n"
                 "  \"%s\" using 1:2:(($5 == $5) ? sprintf(\"%%.0f\", $5) : \"\") with labels tc rgb \"black\"\n",
            name, name);
    rep_gp_tail(m.f, o);
    snprintf(name, sizeof name, "%s.gp", stem);
    if ((st = rep_mem_commit(&m, o, name, e)) != DK_OK) goto done;
    st = rep_queue_fig(o, stem, e);
done:
    rep_mem_drop(&m);
    free(lens);
    free(deps);
    return st;
}

/* ---- per-layer plots ---- */

static int rep_model_layers(const rep_data *d, int mi) {
    int L = d->models[mi].n_layer > 0 ? (int)d->models[mi].n_layer : 0;
    for (size_t i = 0; i < d->n_cells_loaded; i++)
        if (d->cells[i].mi == mi && d->cells[i].n_layer > L) L = d->cells[i].n_layer;
    return L;
}

/* Active tokens per layer for every setting of `method` (NULL = all settings) on model mi,
 * pooled over tasks (ti < 0) or one task. y = mean over samples of active[l] / context_tokens. */
static dk_status rep_layers_write(const rep_data *d, rep_out *o, int mi, int ti, const char *method, const char *stem,
                                  int *written, dk_err *e) {
    int L = rep_model_layers(d, mi);
    *written = 0;
    rep_mem m = {0};
    dk_status st = rep_mem_open(&m, e);
    if (st != DK_OK) return st;
    char name[1024];
    int *shown = calloc(d->n_settings + 1, sizeof *shown);
    size_t n_shown = 0;
    if (!shown) { rep_mem_drop(&m); return dk_fail(e, DK_ERR_NOMEM, "out of memory"); }
    fprintf(m.f, "# active context tokens per layer: model %s, %s%s, run %lld\n", d->models[mi].label,
            method ? "method " : "all methods", method ? method : "", (long long)d->run_id);
    fprintf(m.f, "# task: %s. fraction = mean over samples of active_tokens[layer] / context_tokens;"
                 " tokens = mean active_tokens[layer]. One block (gnuplot index) per setting.\n",
            ti >= 0 ? d->tasks[ti].name : "all tasks pooled");
    for (size_t s = 0; s < d->n_settings; s++) {
        if (method && strcmp(d->settings[s].method, method) != 0) continue;
        if (!rep_has(d, mi, ti, (int)s)) continue;
        double *sum_f = calloc((size_t)L + 1, sizeof *sum_f), *sum_t = calloc((size_t)L + 1, sizeof *sum_t);
        size_t *cnt = calloc((size_t)L + 1, sizeof *cnt);
        if (!sum_f || !sum_t || !cnt) { free(sum_f); free(sum_t); free(cnt); st = dk_fail(e, DK_ERR_NOMEM, "out of memory"); goto done; }
        for (size_t i = 0; i < d->n_cells_loaded; i++) {
            const rep_cell *c = &d->cells[i];
            if (c->mi != mi || c->si != (int)s || (ti >= 0 && c->ti != ti)) continue;
            for (size_t r = 0; r < c->n; r++)
                for (int l = 0; l < c->n_layer && l < L; l++) {
                    double a = c->active[r * (size_t)c->n_layer + (size_t)l];
                    if (isnan(a) || !(c->ctx[r] > 0)) continue;
                    sum_f[l] += a / c->ctx[r];
                    sum_t[l] += a;
                    cnt[l]++;
                }
        }
        int any = 0;
        for (int l = 0; l < L; l++) if (cnt[l]) any = 1;
        if (any) {
            fprintf(m.f, "%s# index %zu: ", n_shown ? "\n\n" : "", n_shown);
            rep_gp_str(m.f, d->settings[s].label);
            fprintf(m.f, "\n# layer fraction tokens n\n");
            for (int l = 0; l < L; l++) {
                if (!cnt[l]) continue;
                fprintf(m.f, "%d %.10g %.10g %zu\n", l, sum_f[l] / (double)cnt[l], sum_t[l] / (double)cnt[l], cnt[l]);
            }
            shown[n_shown++] = (int)s;
        }
        free(sum_f); free(sum_t); free(cnt);
    }
    if (!n_shown) { st = DK_OK; goto done; }
    snprintf(name, sizeof name, "%s.dat", stem);
    if ((st = rep_mem_commit(&m, o, name, e)) != DK_OK) goto done;
    if ((st = rep_mem_open(&m, e)) != DK_OK) goto done;
    char what[1024], title[1024];
    snprintf(what, sizeof what, "active tokens per layer: %s, %s", d->models[mi].label, method ? method : "all methods");
    rep_gp_head(m.f, o, stem, what, name);
    snprintf(title, sizeof title, "%s: active context tokens per layer, %s%s%s (run %lld)", d->models[mi].label,
             method ? method : "all methods", ti >= 0 ? ", " : "", ti >= 0 ? d->tasks[ti].name : "", (long long)d->run_id);
    fprintf(m.f, "set title ");
    rep_gp_str(m.f, title);
    fprintf(m.f, "\nset xlabel \"layer\"\nset ylabel \"active tokens / context tokens (mean over samples)\"\n"
                 "set yrange [0:1.05]\nset xrange [-0.5:%d.5]\nset xtics 1\nset key outside right top\nset grid\n",
            L > 0 ? L - 1 : 0);
    fprintf(m.f, "plot \\\n");
    for (size_t k = 0; k < n_shown; k++) {
        fprintf(m.f, "  \"%s\" index %zu using 1:2 with linespoints pt 7 ps 0.8 title ", name, k);
        rep_gp_str(m.f, d->settings[shown[k]].label);
        fprintf(m.f, "%s\n", k + 1 < n_shown ? ", \\" : "");
    }
    rep_gp_tail(m.f, o);
    snprintf(name, sizeof name, "%s.gp", stem);
    if ((st = rep_mem_commit(&m, o, name, e)) != DK_OK) goto done;
    if ((st = rep_queue_fig(o, stem, e)) != DK_OK) goto done;
    *written = 1;
done:
    rep_mem_drop(&m);
    free(shown);
    return st;
}

/* The method whose samples give model mi's Δ figure: dense if its samples carry Δ statistics,
 * else the first method (config order) whose do; NULL when none does. */
static const char *rep_delta_source(const rep_data *d, int mi) {
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < d->n_cells_loaded; i++) {
            const rep_cell *c = &d->cells[i];
            if (c->mi != mi || (pass == 0 && !rep_is_dense(&d->settings[c->si]))) continue;
            for (size_t j = 0; j < c->n * (size_t)c->n_layer; j++)
                if (!isnan(c->dmed[j])) return d->settings[c->si].method;
        }
    return NULL;
}

/* Δ statistics per layer: the samples of dense cells if they carry any, else of the first
 * method (config order) whose samples do. *source receives that method (NULL = none). */
static dk_status rep_delta_write(const rep_data *d, rep_out *o, int mi, const char *stem, const char **source,
                                 dk_err *e) {
    int L = rep_model_layers(d, mi);
    *source = NULL;
    const char *src = rep_delta_source(d, mi);
    if (!src) return DK_OK;
    double *v = malloc(sizeof *v * 1), *vmin = NULL, *vmax = NULL;
    size_t cap = 0;
    rep_mem m = {0};
    dk_status st = rep_mem_open(&m, e);
    char name[1024];
    if (st != DK_OK) { free(v); return st; }
    fprintf(m.f, "# per-layer delta statistics: model %s, samples of method %s, run %lld\n", d->models[mi].label, src,
            (long long)d->run_id);
    fprintf(m.f, "# the store keeps per sample and layer the min, median and max of the halting score (sample_layers);\n"
                 "# across samples: min = min of minima, q25/median/q75 = quartiles of the per-sample medians,"
                 " max = max of maxima\n# layer min q25 median q75 max n\n");
    int rows = 0;
    for (int l = 0; l < L; l++) {
        size_t k = 0;
        double mn = INFINITY, mx = -INFINITY;
        for (size_t i = 0; i < d->n_cells_loaded; i++) {
            const rep_cell *c = &d->cells[i];
            if (c->mi != mi || strcmp(d->settings[c->si].method, src) != 0 || l >= c->n_layer) continue;
            for (size_t r = 0; r < c->n; r++) {
                size_t j = r * (size_t)c->n_layer + (size_t)l;
                if (isnan(c->dmed[j])) continue;
                if (k == cap) {
                    cap = cap ? 2 * cap : 64;
                    double *p = realloc(v, cap * sizeof *p);
                    if (!p) { st = dk_fail(e, DK_ERR_NOMEM, "out of memory"); goto done; }
                    v = p;
                }
                v[k++] = c->dmed[j];
                if (!isnan(c->dmin[j]) && c->dmin[j] < mn) mn = c->dmin[j];
                if (!isnan(c->dmax[j]) && c->dmax[j] > mx) mx = c->dmax[j];
            }
        }
        if (!k) continue;
        qsort(v, k, sizeof *v, rep_cmp_double);
        double q[3];
        for (int t = 0; t < 3; t++) {
            double h = (double)(k - 1) * (0.25 * (t + 1));
            size_t lo = (size_t)floor(h);
            q[t] = lo + 1 < k ? v[lo] + (h - (double)lo) * (v[lo + 1] - v[lo]) : v[k - 1];
        }
        if (isinf(mn)) mn = q[0];
        if (isinf(mx)) mx = q[2];
        fprintf(m.f, "%d %.6g %.6g %.6g %.6g %.6g %zu\n", l, mn, q[0], q[1], q[2], mx, k);
        rows++;
    }
    (void)vmin; (void)vmax;
    snprintf(name, sizeof name, "%s.dat", stem);
    if ((st = rep_mem_commit(&m, o, name, e)) != DK_OK) goto done;
    if ((st = rep_mem_open(&m, e)) != DK_OK) goto done;
    char what[1024], title[1024];
    snprintf(what, sizeof what, "per-layer delta distribution: %s (samples of %s)", d->models[mi].label, src);
    rep_gp_head(m.f, o, stem, what, name);
    snprintf(title, sizeof title, "%s: halting score per layer (%s samples, run %lld)", d->models[mi].label, src,
             (long long)d->run_id);
    fprintf(m.f, "set title ");
    rep_gp_str(m.f, title);
    fprintf(m.f, "\nset xlabel \"layer\"\nset ylabel \"delta (box: quartiles of per-sample medians; whiskers: min/max)\"\n"
                 "set xrange [-0.5:%d.5]\nset xtics 1\nset boxwidth 0.5\nset style fill empty\nset grid\nunset key\n",
            L > 0 ? L - 1 : 0);
    fprintf(m.f, "plot \"%s\" using 1:3:2:6:5 with candlesticks whiskerbars lw 1.5 lc rgb \"#2166ac\", \\\n"
                 "  \"%s\" using 1:4:4:4:4 with candlesticks lw 2 lc rgb \"black\"\n", name, name);
    rep_gp_tail(m.f, o);
    snprintf(name, sizeof name, "%s.gp", stem);
    if ((st = rep_mem_commit(&m, o, name, e)) != DK_OK) goto done;
    if ((st = rep_queue_fig(o, stem, e)) != DK_OK) goto done;
    *source = src;
    (void)rows;
done:
    rep_mem_drop(&m);
    free(v);
    return st;
}

/* ---- paired comparisons, matched FLOPs, Findings, fidelity vs score (issue 14) ---- */

/* Pooled FLOP speedup of setting si over model mi's cells: sum dense FLOPs / sum method FLOPs. */
static double rep_flops_speedup(const rep_data *d, int mi, int si) {
    double a = 0, b = 0;
    for (size_t i = 0; i < d->n_cells_loaded; i++) {
        const rep_cell *c = &d->cells[i];
        if (c->mi != mi || c->si != si) continue;
        for (size_t k = 0; k < c->n; k++)
            if (!isnan(c->fd[k]) && !isnan(c->fm[k])) { a += c->fd[k]; b += c->fm[k]; }
    }
    return b > 0 ? a / b : NAN;
}

/* The cell of (mi, ti, si) with c's task options, or NULL. */
static const rep_cell *rep_twin(const rep_data *d, const rep_cell *c, int si) {
    for (size_t i = 0; i < d->n_cells_loaded; i++) {
        const rep_cell *x = &d->cells[i];
        if (x->mi == c->mi && x->ti == c->ti && x->si == si && !strcmp(x->task_key, c->task_key)) return x;
    }
    return NULL;
}

static double rep_score_of(const rep_cell *c, int64_t sid) {
    if (!c) return NAN;
    for (size_t k = 0; k < c->n; k++) if (c->sid[k] == sid) return c->score[k];
    return NAN;
}

/* Paired samples of setting sa against b = (1 - w) * setting sb0 + w * setting sb1 (w = 0: sb0
 * alone), matched by task options and sample id; clusters from sa's samples. Owned arrays. */
static dk_status rep_pairs(const rep_data *d, int mi, int sa, int sb0, int sb1, double w, double **a, double **b,
                           int64_t **cl, size_t *n, dk_err *e) {
    size_t cap = 0;
    *n = 0;
    *a = *b = NULL;
    *cl = NULL;
    for (size_t i = 0; i < d->n_cells_loaded; i++) if (d->cells[i].mi == mi && d->cells[i].si == sa) cap += d->cells[i].n;
    *a = malloc((cap ? cap : 1) * sizeof **a);
    *b = malloc((cap ? cap : 1) * sizeof **b);
    *cl = malloc((cap ? cap : 1) * sizeof **cl);
    if (!*a || !*b || !*cl) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < d->n_cells_loaded; i++) {
        const rep_cell *c = &d->cells[i];
        if (c->mi != mi || c->si != sa) continue;
        const rep_cell *t0 = rep_twin(d, c, sb0), *t1 = w > 0 ? rep_twin(d, c, sb1) : NULL;
        if (!t0 || (w > 0 && !t1)) continue;
        for (size_t k = 0; k < c->n; k++) {
            double x0 = rep_score_of(t0, c->sid[k]), x1 = w > 0 ? rep_score_of(t1, c->sid[k]) : 0;
            if (isnan(c->score[k]) || isnan(x0) || isnan(x1)) continue;
            (*a)[*n] = c->score[k];
            (*b)[*n] = (1 - w) * x0 + w * x1;
            (*cl)[*n] = c->cl[k];
            (*n)++;
        }
    }
    return DK_OK;
}

/* A baseline series: settings of one method with the same parameters except rho. */
static void rep_series_key(const rep_setting *s, char *b, size_t n) {
    snprintf(b, n, "%s", s->label);
    char *r = strstr(b, " rho=");
    if (r) {
        char *end = strchr(r + 1, ' ');
        memmove(r, end ? end : r + strlen(r), strlen(end ? end : r + strlen(r)) + 1);
    }
}

typedef struct {
    dk_find_cmp *c;
    char **labels; /* owned strings behind c[i].b for matched rows */
    size_t n;
} rep_cmps;

static void rep_cmps_free(rep_cmps *x) {
    for (size_t i = 0; i < x->n; i++) free(x->labels[i]);
    free(x->labels);
    free(x->c);
    memset(x, 0, sizeof *x);
}

static dk_status rep_cmps_add(rep_cmps *x, const dk_find_cmp *c, const char *owned_b, dk_err *e) {
    dk_find_cmp *p = realloc(x->c, (x->n + 1) * sizeof *p);
    if (!p) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    x->c = p;
    char **l = realloc(x->labels, (x->n + 1) * sizeof *l);
    if (!l) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    x->labels = l;
    x->labels[x->n] = owned_b ? rep_strdup(owned_b) : NULL;
    if (owned_b && !x->labels[x->n]) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    x->c[x->n] = *c;
    if (owned_b) x->c[x->n].b = x->labels[x->n];
    x->n++;
    return DK_OK;
}

static dk_status rep_paired(const rep_data *d, int mi, int sa, int sb0, int sb1, double w, const char *label,
                            dk_boot_diff *out, dk_err *e) {
    double *a, *b;
    int64_t *cl;
    size_t n;
    dk_status st = rep_pairs(d, mi, sa, sb0, sb1, w, &a, &b, &cl, &n, e);
    if (st == DK_OK)
        st = dk_bootstrap_paired(a, b, cl, n, d->opts->n_boot, dk_bootstrap_seed(d->opts->seed, label), d->opts->level, out, e);
    free(a); free(b); free(cl);
    return st;
}

/* Every non-dense setting vs dense; every DASH setting vs every baseline series (same ls when the
 * series has one) whose FLOP speedups bracket DASH's, the baseline interpolated linearly in FLOP
 * speedup between its two neighbouring rho settings. */
static dk_status rep_comparisons(const rep_data *d, int mi, rep_cmps *out, dk_err *e) {
    dk_status st = DK_OK;
    int sd = -1;
    size_t ns = d->n_settings;
    double *sp = malloc((ns ? ns : 1) * sizeof *sp);
    int *order = malloc((ns ? ns : 1) * sizeof *order);
    if (!sp || !order) { free(sp); free(order); return dk_fail(e, DK_ERR_NOMEM, "out of memory"); }
    for (size_t si = 0; si < ns; si++) {
        sp[si] = rep_has(d, mi, -1, (int)si) ? rep_flops_speedup(d, mi, (int)si) : NAN;
        if (rep_is_dense(&d->settings[si]) && rep_has(d, mi, -1, (int)si)) sd = (int)si;
    }
    char label[2048];
    for (size_t si = 0; si < ns && sd >= 0; si++) {
        if ((int)si == sd || isnan(sp[si])) continue;
        dk_find_cmp c = {d->settings[si].label, "dense", 0, sp[si], {NAN, NAN, NAN, NAN, 0}};
        snprintf(label, sizeof label, "%s|%s|vs-dense", d->models[mi].sha, d->settings[si].params);
        if ((st = rep_paired(d, mi, (int)si, sd, sd, 0, label, &c.d, e)) != DK_OK) goto done;
        if (c.d.n_used && (st = rep_cmps_add(out, &c, NULL, e)) != DK_OK) goto done;
    }
    for (size_t sa = 0; sa < ns; sa++) {
        const rep_setting *A = &d->settings[sa];
        if (strcmp(A->method, "dash") != 0 || isnan(A->rho) || isnan(sp[sa])) continue;
        /* each series once: the first setting of it (in setting order) stands for it */
        for (size_t s0 = 0; s0 < ns; s0++) {
            const rep_setting *B = &d->settings[s0];
            if (rep_is_dense(B) || !strcmp(B->method, "dash") || isnan(B->rho) || isnan(sp[s0])) continue;
            if (!isnan(B->ls) && !(B->ls == A->ls)) continue;
            char key[1024], k2[1024];
            rep_series_key(B, key, sizeof key);
            int first = 1;
            for (size_t t = 0; t < s0; t++) {
                if (isnan(sp[t]) || isnan(d->settings[t].rho)) continue;
                rep_series_key(&d->settings[t], k2, sizeof k2);
                if (!strcmp(key, k2)) first = 0;
            }
            if (!first) continue;
            size_t m = 0;
            for (size_t t = 0; t < ns; t++) {
                if (isnan(sp[t]) || isnan(d->settings[t].rho)) continue;
                rep_series_key(&d->settings[t], k2, sizeof k2);
                if (!strcmp(key, k2)) order[m++] = (int)t;
            }
            /* the bracket around DASH's speedup */
            int lo = -1, hi = -1;
            for (size_t k = 0; k < m; k++) {
                double x = sp[order[k]];
                if (x <= sp[sa] && (lo < 0 || x > sp[lo])) lo = order[k];
                if (x >= sp[sa] && (hi < 0 || x < sp[hi])) hi = order[k];
            }
            if (lo < 0 || hi < 0) continue; /* the grid does not reach DASH's speedup */
            double w = hi == lo || sp[hi] == sp[lo] ? 0 : (sp[sa] - sp[lo]) / (sp[hi] - sp[lo]);
            char bl[1100];
            snprintf(bl, sizeof bl, "%s (interpolated)", key);
            dk_find_cmp c = {A->label, NULL, 1, sp[sa], {NAN, NAN, NAN, NAN, 0}};
            snprintf(label, sizeof label, "%s|%s|vs|%s", d->models[mi].sha, A->params, key);
            if ((st = rep_paired(d, mi, (int)sa, lo, hi, w, label, &c.d, e)) != DK_OK) goto done;
            if (c.d.n_used && (st = rep_cmps_add(out, &c, bl, e)) != DK_OK) goto done;
        }
    }
done:
    free(sp);
    free(order);
    return st;
}

/* Per-sample answer KL and score of every non-dense setting of mi: fidelity_MODEL.{dat,gp},
 * Spearman per setting into md and overall into *rho / *n_all. */
static dk_status rep_fidelity_write(const rep_data *d, rep_out *o, int mi, const char *stem, FILE *md, double *rho,
                                    size_t *n_all, dk_err *e) {
    size_t cap = 0;
    for (size_t i = 0; i < d->n_cells_loaded; i++) if (d->cells[i].mi == mi) cap += d->cells[i].n;
    double *kx = malloc((cap ? cap : 1) * sizeof *kx), *sy = malloc((cap ? cap : 1) * sizeof *sy);
    double *ax = malloc((cap ? cap : 1) * sizeof *ax), *ay = malloc((cap ? cap : 1) * sizeof *ay);
    rep_mem m = {0};
    dk_status st = DK_OK;
    char name[1100];
    int blocks = 0;
    *n_all = 0;
    *rho = NAN;
    if (!kx || !sy || !ax || !ay) { st = dk_fail(e, DK_ERR_NOMEM, "out of memory"); goto done; }
    if ((st = rep_mem_open(&m, e)) != DK_OK) goto done;
    fprintf(m.f, "# per-sample answer-level KL(dense||method) (nats) and score: model %s, run %lld;"
                 " one block per setting\n", d->models[mi].label, (long long)d->run_id);
    fprintf(md, "| Setting | n | Spearman (answer KL, score) |\n|---|---:|---:|\n");
    for (size_t si = 0; si < d->n_settings; si++) {
        if (rep_is_dense(&d->settings[si]) || !rep_has(d, mi, -1, (int)si)) continue;
        size_t k = 0;
        for (size_t i = 0; i < d->n_cells_loaded; i++) {
            const rep_cell *c = &d->cells[i];
            if (c->mi != mi || c->si != (int)si) continue;
            for (size_t r = 0; r < c->n; r++) {
                if (isnan(c->kl[r]) || isnan(c->score[r])) continue;
                kx[k] = c->kl[r]; sy[k] = c->score[r]; k++;
                ax[*n_all] = c->kl[r]; ay[*n_all] = c->score[r]; (*n_all)++;
            }
        }
        if (!k) continue;
        double r = dk_metric_spearman(kx, sy, k);
        fprintf(md, "| %s | %zu | ", d->settings[si].label, k);
        if (isnan(r)) fprintf(md, "– (a constant side) |\n");
        else fprintf(md, "%.3f |\n", r);
        fprintf(m.f, "%s# %s\n", blocks ? "\n\n" : "", d->settings[si].label);
        for (size_t j = 0; j < k; j++) fprintf(m.f, "%.6g %.6g\n", kx[j], sy[j]);
        blocks++;
    }
    *rho = dk_metric_spearman(ax, ay, *n_all);
    if (isnan(*rho)) fprintf(md, "| all method samples | %zu | – |\n", *n_all);
    else fprintf(md, "| all method samples | %zu | %.3f |\n", *n_all, *rho);
    if (!blocks) goto done;
    snprintf(name, sizeof name, "%s.dat", stem);
    if ((st = rep_mem_commit(&m, o, name, e)) != DK_OK) goto done;
    if ((st = rep_mem_open(&m, e)) != DK_OK) goto done;
    char what[1024], title[1024];
    snprintf(what, sizeof what, "answer KL vs score per sample: %s", d->models[mi].label);
    rep_gp_head(m.f, o, stem, what, name);
    snprintf(title, sizeof title, "%s: answer-level KL vs score per sample (Spearman over all: %.2f, n = %zu)",
             d->models[mi].label, *rho, *n_all);
    fprintf(m.f, "set title ");
    rep_gp_str(m.f, title);
    fprintf(m.f, "\nset xlabel \"KL(dense||method), mean over the answer tokens (nats, log scale)\"\n"
                 "set ylabel \"score (jittered by up to 2 points)\"\nset logscale x\nset grid\nset key outside right\n"
                 "set yrange [-5:105]\n");
    fprintf(m.f, "plot for [i=0:%d] \"%s\" index i using ($1 > 1e-6 ? $1 : 1e-6):($2 + 4 * (rand(0) - 0.5))"
                 " with points pt 7 ps 0.6 title columnheader(1)\n", blocks - 1, name);
    rep_gp_tail(m.f, o);
    snprintf(name, sizeof name, "%s.gp", stem);
    if ((st = rep_mem_commit(&m, o, name, e)) != DK_OK) goto done;
    st = rep_queue_fig(o, stem, e);
done:
    rep_mem_drop(&m);
    free(kx); free(sy); free(ax); free(ay);
    return st;
}

/* report.md sections "Paired comparisons" (+ comparisons.csv), "Fidelity vs score" and
 * "Findings" for every model. */
static dk_status rep_section_stats(const rep_data *d, rep_out *o, FILE *f, dk_err *e) {
    rep_mem csv = {0};
    dk_status st = rep_mem_open(&csv, e);
    if (st != DK_OK) return st;
    fprintf(csv.f, "model,a,b,kind,flops_speedup,n,diff,diff_lo,diff_hi,p\n");
    char *find = NULL;
    size_t find_n = 0;
    FILE *ff = open_memstream(&find, &find_n);
    if (!ff) { rep_mem_drop(&csv); return dk_fail(e, DK_ERR_NOMEM, "out of memory"); }
    fprintf(f, "\n## Paired comparisons\n\nScore differences in points (a − b) over the samples both settings ran, paired"
               " by sample; %.0f%% percentile bootstrap interval and two-sided bootstrap p-value (%d resamples, resampling"
               " contexts where samples share one, as above). \"vs dense\": every method against dense. \"matched\": DASH"
               " against each baseline series (same ls where the baseline has one) whose rho grid brackets DASH's FLOP"
               " speedup, the baseline's per-sample score interpolated linearly in FLOP speedup between its two neighbouring"
               " rho settings. Also as [CSV](comparisons.csv).\n", 100 * d->opts->level, d->opts->n_boot);
    for (size_t mi = 0; mi < d->n_models && st == DK_OK; mi++) {
        rep_cmps cm = {0};
        if ((st = rep_comparisons(d, (int)mi, &cm, e)) != DK_OK) { rep_cmps_free(&cm); break; }
        fprintf(f, "\n**%s**\n\n| a | b | kind | FLOPs speedup | n | difference | CI | p |\n|---|---|---|---:|---:|---:|---|---:|\n",
                d->models[mi].label);
        for (size_t i = 0; i < cm.n; i++) {
            const dk_find_cmp *c = &cm.c[i];
            fprintf(f, "| %s | %s | %s | %.2f× | %zu | %+.2f | [%+.2f, %+.2f] | %.3g |\n", c->a, c->b,
                    c->matched ? "matched" : "vs dense", c->speedup, c->d.n_used, c->d.est, c->d.lo, c->d.hi, c->d.p);
            dk_report_csv_field(csv.f, d->models[mi].label); fputc(',', csv.f);
            dk_report_csv_field(csv.f, c->a); fputc(',', csv.f);
            dk_report_csv_field(csv.f, c->b);
            fprintf(csv.f, ",%s,%.17g,%zu,%.17g,%.17g,%.17g,%.17g\n", c->matched ? "matched" : "vs_dense", c->speedup, c->d.n_used,
                    c->d.est, c->d.lo, c->d.hi, c->d.p);
        }
        if (!cm.n) fprintf(f, "| – | – | – | – | 0 | – | – | – |\n");
        /* fidelity vs score */
        char stem[1024];
        snprintf(stem, sizeof stem, "fidelity_%s", d->models[mi].slug);
        fprintf(f, "\n**Fidelity vs score, %s**: does the cheap screen (answer-level KL) rank samples as the expensive"
                   " metric (the score) does? ([data](%s.dat))\n\n", d->models[mi].label, stem);
        double rho = NAN;
        size_t n_kl = 0;
        if ((st = rep_fidelity_write(d, o, (int)mi, stem, f, &rho, &n_kl, e)) != DK_OK) { rep_cmps_free(&cm); break; }
        if (n_kl) fprintf(f, "\n![answer KL vs score](%s.png)\n", stem);
        /* findings from these numbers */
        dk_find_setting *fs = calloc(d->n_settings + 1, sizeof *fs);
        size_t nfs = 0;
        if (!fs) { st = dk_fail(e, DK_ERR_NOMEM, "out of memory"); rep_cmps_free(&cm); break; }
        for (size_t si = 0; si < d->n_settings && st == DK_OK; si++) {
            if (!rep_has(d, (int)mi, -1, (int)si)) continue;
            dk_ci sc;
            size_t n;
            if ((st = rep_stat(d, (int)mi, -1, (int)si, Q_SCORE, 0, &sc, &n, e)) != DK_OK) break;
            fs[nfs++] = (dk_find_setting){d->settings[si].label, rep_flops_speedup(d, (int)mi, (int)si), sc,
                                          rep_is_dense(&d->settings[si])};
        }
        if (st == DK_OK) dk_findings_write(ff, d->models[mi].label, fs, nfs, cm.c, cm.n, rho, n_kl, d->opts->level, 0.05);
        free(fs);
        rep_cmps_free(&cm);
    }
    fclose(ff);
    if (st == DK_OK) {
        fprintf(f, "\n## Findings\n\nGenerated from the numbers above (pooled over each model's tasks; \"best of k\": the"
                   " settings in that speedup band); no fixed text.\n\n");
        fwrite(find, 1, find_n, f);
        st = rep_mem_commit(&csv, o, "comparisons.csv", e);
    }
    free(find);
    rep_mem_drop(&csv);
    return st;
}

/* ---- tables ---- */

/* Settings of model mi in table order: dense first, then config order. */
static size_t rep_table_rows(const rep_data *d, int mi, int *rows) {
    size_t n = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t s = 0; s < d->n_settings; s++) {
            if ((pass == 0) != rep_is_dense(&d->settings[s])) continue;
            if (rep_has(d, mi, -1, (int)s)) rows[n++] = (int)s;
        }
    return n;
}

static size_t rep_model_tasks(const rep_data *d, int mi, int *tasks) {
    size_t n = 0;
    for (size_t t = 0; t < d->n_tasks; t++)
        for (size_t i = 0; i < d->n_cells_loaded; i++)
            if (d->cells[i].mi == mi && d->cells[i].ti == (int)t) { tasks[n++] = (int)t; break; }
    return n;
}

static void rep_csv_row(FILE *f, const rep_data *d, int mi, int si, const char *column, size_t n, dk_ci c) {
    dk_report_csv_field(f, d->models[mi].label); fputc(',', f);
    dk_report_csv_field(f, d->settings[si].label); fputc(',', f);
    dk_report_csv_field(f, d->settings[si].method); fputc(',', f);
    dk_report_csv_field(f, d->settings[si].params); fputc(',', f);
    dk_report_csv_field(f, column);
    fprintf(f, ",%zu,%.17g,%.17g,%.17g\n", n, c.est, c.lo, c.hi);
}

/* table_main: settings x tasks. md and tex are also embedded in report.md (md_out). */
static dk_status rep_table_main(const rep_data *d, rep_out *o, FILE *md_out, dk_err *e) {
    rep_mem md = {0}, tex = {0}, csv = {0};
    dk_status st;
    int *rows = calloc(d->n_settings + 1, sizeof *rows), *tasks = calloc(d->n_tasks + 1, sizeof *tasks);
    if (!rows || !tasks) { free(rows); free(tasks); return dk_fail(e, DK_ERR_NOMEM, "out of memory"); }
    if ((st = rep_mem_open(&md, e)) != DK_OK || (st = rep_mem_open(&tex, e)) != DK_OK || (st = rep_mem_open(&csv, e)) != DK_OK)
        goto done;
    fprintf(csv.f, "model,setting,method,params,column,n,value,lo,hi\n");
    fprintf(tex.f, "%% dashkit report, run %lld: mean score per task (%.0f%% percentile bootstrap CI), Avg = mean of the"
                   " task means,\n%% FLOPs and wall = prefill speedups over dense (sum dense / sum method). Needs \\usepackage{booktabs}.\n",
            (long long)d->run_id, 100 * d->opts->level);
    for (size_t mi = 0; mi < d->n_models; mi++) {
        size_t nr = rep_table_rows(d, (int)mi, rows), nt = rep_model_tasks(d, (int)mi, tasks);
        fprintf(md.f, "%s**%s** — score per task (mean [%.0f%% CI]), Avg = mean of task means; speedups = dense / method\n\n",
                mi ? "\n" : "", d->models[mi].label, 100 * d->opts->level);
        fprintf(md.f, "| Method |");
        for (size_t t = 0; t < nt; t++) { fputc(' ', md.f); rep_md_escape(md.f, d->tasks[tasks[t]].name); fprintf(md.f, " |"); }
        fprintf(md.f, " Avg | FLOPs speedup | Wall speedup |\n|---|");
        for (size_t t = 0; t < nt + 3; t++) fprintf(md.f, "---:|");
        fputc('\n', md.f);
        fprintf(tex.f, "\\begin{table}[t]\n\\centering\n\\caption{");
        rep_latex_escape(tex.f, d->models[mi].label);
        fprintf(tex.f, ": score per task (mean, %.0f\\%% CI), speedups over dense.}\n\\begin{tabular}{l", 100 * d->opts->level);
        for (size_t t = 0; t < nt + 3; t++) fputc('r', tex.f);
        fprintf(tex.f, "}\n\\toprule\nMethod");
        for (size_t t = 0; t < nt; t++) { fprintf(tex.f, " & "); rep_latex_escape(tex.f, d->tasks[tasks[t]].name); }
        fprintf(tex.f, " & Avg & FLOPs & Wall \\\\\n\\midrule\n");
        for (size_t r = 0; r < nr; r++) {
            int si = rows[r];
            fprintf(md.f, "| ");
            rep_md_escape(md.f, d->settings[si].label);
            fprintf(md.f, " |");
            rep_latex_escape(tex.f, d->settings[si].label);
            int complete = 1;
            char b[256];
            for (size_t t = 0; t < nt; t++) {
                dk_ci c = {NAN, NAN, NAN};
                size_t n = 0;
                if (rep_has(d, (int)mi, tasks[t], si)) {
                    if ((st = rep_stat(d, (int)mi, tasks[t], si, Q_SCORE, 0, &c, &n, e)) != DK_OK) goto done;
                    rep_csv_row(csv.f, d, (int)mi, si, d->tasks[tasks[t]].name, n, c);
                }
                if (isnan(c.est)) complete = 0;
                rep_fmt_ci(b, sizeof b, c, 1, 0);
                fprintf(md.f, " %s |", b);
                rep_fmt_ci(b, sizeof b, c, 1, 1);
                fprintf(tex.f, " & %s", b);
            }
            dk_ci avg = {NAN, NAN, NAN}, fl, wl;
            size_t n_avg = 0, n_fl, n_wl;
            if (complete) {
                if ((st = rep_stat(d, (int)mi, -1, si, Q_SCORE, 1, &avg, &n_avg, e)) != DK_OK) goto done;
                rep_csv_row(csv.f, d, (int)mi, si, "avg", n_avg, avg);
            }
            if ((st = rep_stat(d, (int)mi, -1, si, Q_FLOPS, 0, &fl, &n_fl, e)) != DK_OK ||
                (st = rep_stat(d, (int)mi, -1, si, Q_WALL, 0, &wl, &n_wl, e)) != DK_OK) goto done;
            rep_csv_row(csv.f, d, (int)mi, si, "flops_speedup", n_fl, fl);
            rep_csv_row(csv.f, d, (int)mi, si, "wall_speedup", n_wl, wl);
            dk_ci fl0 = {fl.est, NAN, NAN};
            rep_fmt_ci(b, sizeof b, avg, 1, 0); fprintf(md.f, " %s |", b);
            rep_fmt_ci(b, sizeof b, fl0, 2, 0); fprintf(md.f, " %s× |", b);
            rep_fmt_ci(b, sizeof b, wl, 2, 0); fprintf(md.f, " %s× |\n", b);
            rep_fmt_ci(b, sizeof b, avg, 1, 1); fprintf(tex.f, " & %s", b);
            rep_fmt_ci(b, sizeof b, fl0, 2, 1); fprintf(tex.f, " & %s$\\times$", b);
            rep_fmt_ci(b, sizeof b, wl, 2, 1); fprintf(tex.f, " & %s$\\times$ \\\\\n", b);
        }
        fprintf(tex.f, "\\bottomrule\n\\end{tabular}\n\\end{table}\n");
    }
    fflush(md.f);
    if (md_out) fwrite(md.buf, 1, md.len, md_out);
    if ((st = rep_mem_commit(&md, o, "table_main.md", e)) != DK_OK || (st = rep_mem_commit(&tex, o, "table_main.tex", e)) != DK_OK ||
        (st = rep_mem_commit(&csv, o, "table_main.csv", e)) != DK_OK) goto done;
done:
    rep_mem_drop(&md); rep_mem_drop(&tex); rep_mem_drop(&csv);
    free(rows); free(tasks);
    return st;
}

/* ---- reported numbers (paper) beside the measured ones ---- */

/* A CSV of reported numbers: header + rows of strings (RFC 4180 quoting). Task columns are
 * every column that is not a known metadata column. */
typedef struct {
    char **cols; size_t n_cols;
    char **cells; size_t n_rows;       /* (n_rows, n_cols) */
    int c_method, c_dk, c_avg, c_model, c_fa, c_eager, c_theo, c_theo_t;
    int *is_task;                      /* (n_cols) */
    char *path;
} rep_paper;

static void rep_paper_free(rep_paper *p) {
    for (size_t i = 0; i < p->n_cols; i++) free(p->cols[i]);
    for (size_t i = 0; i < p->n_rows * p->n_cols; i++) free(p->cells[i]);
    free(p->cols); free(p->cells); free(p->is_task); free(p->path);
    memset(p, 0, sizeof *p);
}

/* Splits one CSV record starting at *pp (advanced past it); fields malloc'd into *out. 0 = ok,
 * -1 = unterminated quote, -2 = out of memory. */
static int rep_csv_record(const char **pp, char ***out, size_t *n) {
    const char *p = *pp;
    size_t cap = 0;
    *out = NULL; *n = 0;
    for (;;) {
        size_t fc = 64, fl = 0;
        char *f = malloc(fc);
        if (!f) return -2;
        if (*p == '"') {
            p++;
            for (;;) {
                if (!*p) { free(f); return -1; }
                if (*p == '"' && p[1] == '"') { p += 2; f[fl++] = '"'; }
                else if (*p == '"') { p++; break; }
                else f[fl++] = *p++;
                if (fl + 1 >= fc) { char *g = realloc(f, fc *= 2); if (!g) { free(f); return -2; } f = g; }
            }
        }
        while (*p && *p != ',' && *p != '\n' && *p != '\r') {
            f[fl++] = *p++;
            if (fl + 1 >= fc) { char *g = realloc(f, fc *= 2); if (!g) { free(f); return -2; } f = g; }
        }
        f[fl] = 0;
        if (*n == cap) {
            char **v = realloc(*out, (cap = cap ? 2 * cap : 16) * sizeof *v);
            if (!v) { free(f); return -2; }
            *out = v;
        }
        (*out)[(*n)++] = f;
        if (*p == ',') { p++; continue; }
        if (*p == '\r') p++;
        if (*p == '\n') p++;
        break;
    }
    *pp = p;
    return 0;
}

static int rep_paper_col(const rep_paper *p, const char *name) {
    for (size_t i = 0; i < p->n_cols; i++) if (!strcmp(p->cols[i], name)) return (int)i;
    return -1;
}

static double rep_paper_num(const rep_paper *p, size_t row, int col) {
    if (col < 0) return NAN;
    const char *v = p->cells[row * p->n_cols + (size_t)col];
    return *v ? strtod(v, NULL) : NAN;
}

static const char *rep_paper_str(const rep_paper *p, size_t row, int col) {
    return col < 0 ? "" : p->cells[row * p->n_cols + (size_t)col];
}

/* Loads path into p; a file that does not exist leaves p empty (n_cols 0) and returns DK_OK. */
static dk_status rep_paper_load(const char *path, rep_paper *p, dk_err *e) {
    memset(p, 0, sizeof *p);
    if (!path || !*path) return DK_OK;
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? DK_OK : dk_fail(e, DK_ERR_IO, "%s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0, k;
    char chunk[4096];
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + k + 1 > cap) {
            char *b = realloc(buf, cap = (len + k + 1) * 2);
            if (!b) { free(buf); fclose(f); return dk_fail(e, DK_ERR_NOMEM, "out of memory"); }
            buf = b;
        }
        memcpy(buf + len, chunk, k);
        len += k;
    }
    int rerr = ferror(f);
    fclose(f);
    if (rerr) { free(buf); return dk_fail(e, DK_ERR_IO, "%s: read error", path); }
    if (!buf) return dk_fail(e, DK_ERR_FORMAT, "%s: empty file (expected a header line)", path);
    buf[len] = 0;
    dk_status st = DK_OK;
    const char *q = buf;
    long line = 1;
    char **rec;
    size_t n;
    if (!(p->path = rep_strdup(path))) { st = dk_fail(e, DK_ERR_NOMEM, "out of memory"); goto done; }
    int rc = rep_csv_record(&q, &rec, &n);
    if (rc) { st = rc == -1 ? dk_fail(e, DK_ERR_FORMAT, "%s:1: unterminated quote", path) : dk_fail(e, DK_ERR_NOMEM, "out of memory"); goto done; }
    p->cols = rec; p->n_cols = n;
    p->c_method = rep_paper_col(p, "method");
    p->c_dk = rep_paper_col(p, "dashkit_method");
    if (p->c_method < 0 || p->c_dk < 0) { st = dk_fail(e, DK_ERR_FORMAT, "%s:1: the header needs columns \"method\" and \"dashkit_method\"", path); goto done; }
    p->c_avg = rep_paper_col(p, "avg");
    p->c_model = rep_paper_col(p, "model");
    p->c_fa = rep_paper_col(p, "speedup_flashattn");
    p->c_eager = rep_paper_col(p, "speedup_eager");
    p->c_theo = rep_paper_col(p, "speedup_theoretical");
    p->c_theo_t = rep_paper_col(p, "speedup_theoretical_T");
    if (!(p->is_task = calloc(n, sizeof *p->is_task))) { st = dk_fail(e, DK_ERR_NOMEM, "out of memory"); goto done; }
    static const char *const meta[] = {"method", "dashkit_method", "model", "benchmark", "avg", "source", "notes"};
    for (size_t c = 0; c < n; c++) {
        int m = !strncmp(p->cols[c], "speedup_", 8) || !*p->cols[c];
        for (size_t j = 0; j < sizeof meta / sizeof meta[0]; j++) m |= !strcmp(p->cols[c], meta[j]);
        p->is_task[c] = !m;
    }
    while (*q) {
        line++;
        if (*q == '\n' || *q == '\r') { /* blank line */
            if (*q == '\r') q++;
            if (*q == '\n') q++;
            continue;
        }
        if ((rc = rep_csv_record(&q, &rec, &n))) {
            st = rc == -1 ? dk_fail(e, DK_ERR_FORMAT, "%s:%ld: unterminated quote", path, line) : dk_fail(e, DK_ERR_NOMEM, "out of memory");
            goto done;
        }
        if (n != p->n_cols) {
            for (size_t i = 0; i < n; i++) free(rec[i]);
            free(rec);
            st = dk_fail(e, DK_ERR_FORMAT, "%s:%ld: %zu fields, the header has %zu", path, line, n, p->n_cols);
            goto done;
        }
        char **cells = realloc(p->cells, (p->n_rows + 1) * p->n_cols * sizeof *cells);
        if (!cells) { for (size_t i = 0; i < n; i++) free(rec[i]); free(rec); st = dk_fail(e, DK_ERR_NOMEM, "out of memory"); goto done; }
        p->cells = cells;
        memcpy(p->cells + p->n_rows * p->n_cols, rec, n * sizeof *rec);
        free(rec);
        p->n_rows++;
        for (size_t c = 0; c < n; c++) {
            const char *v = p->cells[(p->n_rows - 1) * n + c];
            int numeric = p->is_task[c] || (int)c == p->c_avg || !strncmp(p->cols[c], "speedup_", 8);
            if (!numeric || !*v) continue;
            char *end;
            double x = strtod(v, &end);
            if (*end || !isfinite(x)) {
                st = dk_fail(e, DK_ERR_FORMAT, "%s:%ld: column %s: '%s' is not a number", path, line, p->cols[c], v);
                goto done;
            }
        }
        if (!*rep_paper_str(p, p->n_rows - 1, p->c_method)) {
            st = dk_fail(e, DK_ERR_FORMAT, "%s:%ld: column method is empty", path, line);
            goto done;
        }
    }
done:
    free(buf);
    if (st != DK_OK) rep_paper_free(p);
    return st;
}

/* paper_vs_measured: per model whose run has tasks named in the paper's columns, each paper row
 * followed by the run's settings of its dashkit_method. Mean = mean over the shown task columns
 * (of the paper's numbers / of the measured task means); the paper's own avg is shown as is. */
static dk_status rep_table_paper(const rep_data *d, const rep_paper *pp, rep_out *o, FILE *md_out, int *written, dk_err *e) {
    *written = 0;
    if (!pp->n_cols || !pp->n_rows) return DK_OK;
    rep_mem md = {0}, tex = {0}, csv = {0};
    dk_status st;
    int *rows = calloc(d->n_settings + 1, sizeof *rows), *tasks = calloc(d->n_tasks + 1, sizeof *tasks);
    int *pcol = calloc(pp->n_cols + 1, sizeof *pcol), *rti = calloc(pp->n_cols + 1, sizeof *rti);
    if (!rows || !tasks || !pcol || !rti) { st = dk_fail(e, DK_ERR_NOMEM, "out of memory"); goto done; }
    if ((st = rep_mem_open(&md, e)) != DK_OK || (st = rep_mem_open(&tex, e)) != DK_OK || (st = rep_mem_open(&csv, e)) != DK_OK)
        goto done;
    fprintf(csv.f, "model,paper_method,row,source,column,n,value,lo,hi\n");
    fprintf(tex.f, "%% dashkit report, run %lld: reported numbers (%s) beside measured task means (%.0f%% bootstrap CI).\n",
            (long long)d->run_id, pp->path, 100 * d->opts->level);
    for (size_t mi = 0; mi < d->n_models; mi++) {
        size_t nt = rep_model_tasks(d, (int)mi, tasks), nc = 0;
        for (size_t c = 0; c < pp->n_cols; c++) {
            if (!pp->is_task[c]) continue;
            for (size_t t = 0; t < nt; t++)
                if (!strcmp(d->tasks[tasks[t]].name, pp->cols[c])) { pcol[nc] = (int)c; rti[nc] = tasks[t]; nc++; break; }
        }
        if (!nc) continue;
        size_t nr = rep_table_rows(d, (int)mi, rows);
        const char *pmodel = pp->c_model >= 0 ? rep_paper_str(pp, 0, pp->c_model) : "";
        fprintf(md.f, "%s**%s** vs the paper%s%s%s — reported numbers from `%s`; measured: mean [%.0f%% CI]. Mean = mean of"
                      " the columns shown; Paper avg = the paper's own average (over its tasks).\n\n",
                *written ? "\n" : "", d->models[mi].label, *pmodel ? " (" : "", pmodel, *pmodel ? ")" : "", pp->path,
                100 * d->opts->level);
        *written = 1;
        fprintf(md.f, "| Method | Source |");
        for (size_t t = 0; t < nc; t++) { fputc(' ', md.f); rep_md_escape(md.f, pp->cols[pcol[t]]); fprintf(md.f, " |"); }
        fprintf(md.f, " Mean | Paper avg | Speedup |\n|---|---|");
        for (size_t t = 0; t < nc + 2; t++) fprintf(md.f, "---:|");
        fprintf(md.f, "---|\n");
        fprintf(tex.f, "\\begin{table}[t]\n\\centering\n\\caption{");
        rep_latex_escape(tex.f, d->models[mi].label);
        fprintf(tex.f, ": reported vs measured.}\n\\begin{tabular}{ll");
        for (size_t t = 0; t < nc + 2; t++) fputc('r', tex.f);
        fprintf(tex.f, "l}\n\\toprule\nMethod & Source");
        for (size_t t = 0; t < nc; t++) { fprintf(tex.f, " & "); rep_latex_escape(tex.f, pp->cols[pcol[t]]); }
        fprintf(tex.f, " & Mean & Paper avg & Speedup \\\\\n\\midrule\n");
        char b[256];
        for (size_t pr = 0; pr < pp->n_rows; pr++) {
            const char *pm = rep_paper_str(pp, pr, pp->c_method), *dm = rep_paper_str(pp, pr, pp->c_dk);
            /* the paper's row */
            double sum = 0, pavg = rep_paper_num(pp, pr, pp->c_avg);
            int nn = 0;
            fprintf(md.f, "| ");
            rep_md_escape(md.f, pm);
            fprintf(md.f, " | paper |");
            rep_latex_escape(tex.f, pm);
            fprintf(tex.f, " & paper");
            for (size_t t = 0; t < nc; t++) {
                double v = rep_paper_num(pp, pr, pcol[t]);
                dk_ci c = {v, NAN, NAN};
                if (!isnan(v)) { sum += v; nn++; }
                rep_fmt_ci(b, sizeof b, c, 2, 0); fprintf(md.f, " %s |", b);
                rep_fmt_ci(b, sizeof b, c, 2, 1); fprintf(tex.f, " & %s", b);
                dk_report_csv_field(csv.f, d->models[mi].label); fputc(',', csv.f);
                dk_report_csv_field(csv.f, pm); fputc(',', csv.f);
                dk_report_csv_field(csv.f, pm);
                fprintf(csv.f, ",paper,");
                dk_report_csv_field(csv.f, pp->cols[pcol[t]]);
                fprintf(csv.f, ",,%.17g,,\n", v);
            }
            dk_ci mean = {nn == (int)nc ? sum / nn : NAN, NAN, NAN}, pa = {pavg, NAN, NAN};
            char sp[160] = "";
            double fa = rep_paper_num(pp, pr, pp->c_fa), ea = rep_paper_num(pp, pr, pp->c_eager),
                   th = rep_paper_num(pp, pr, pp->c_theo), tt = rep_paper_num(pp, pr, pp->c_theo_t);
            size_t spn = 0;
            if (!isnan(fa)) spn += (size_t)snprintf(sp + spn, sizeof sp - spn, "%.2fx FlashAttention", fa);
            if (!isnan(ea) && spn < sizeof sp) spn += (size_t)snprintf(sp + spn, sizeof sp - spn, "%s%.2fx eager", spn ? ", " : "", ea);
            if (!isnan(th) && spn < sizeof sp)
                spn += (size_t)snprintf(sp + spn, sizeof sp - spn, "%s%.2fx theoretical%s", spn ? ", " : "", th, isnan(tt) ? "" : " at T=");
            if (!isnan(th) && !isnan(tt) && spn < sizeof sp) snprintf(sp + spn, sizeof sp - spn, "%.0f", tt);
            rep_fmt_ci(b, sizeof b, mean, 2, 0); fprintf(md.f, " %s |", b);
            rep_fmt_ci(b, sizeof b, pa, 2, 0); fprintf(md.f, " %s | %s |\n", b, *sp ? sp : "–");
            rep_fmt_ci(b, sizeof b, mean, 2, 1); fprintf(tex.f, " & %s", b);
            rep_fmt_ci(b, sizeof b, pa, 2, 1); fprintf(tex.f, " & %s & ", b);
            rep_latex_escape(tex.f, *sp ? sp : "--");
            fprintf(tex.f, " \\\\\n");
            const char *mcols[2] = {"mean", "paper_avg"};
            double mvals[2] = {mean.est, pavg};
            for (int k = 0; k < 2; k++) {
                dk_report_csv_field(csv.f, d->models[mi].label); fputc(',', csv.f);
                dk_report_csv_field(csv.f, pm); fputc(',', csv.f);
                dk_report_csv_field(csv.f, pm);
                fprintf(csv.f, ",paper,%s,,%.17g,,\n", mcols[k], mvals[k]);
            }
            if (!*dm) {
                fprintf(md.f, "| ↳ (no dashkit method) | measured |");
                for (size_t t = 0; t < nc + 2; t++) fprintf(md.f, " – |");
                fprintf(md.f, " – |\n");
                continue;
            }
            /* the measured settings of that method */
            for (size_t r = 0; r < nr; r++) {
                int si = rows[r];
                if (strcmp(d->settings[si].method, dm)) continue;
                fprintf(md.f, "| ↳ ");
                rep_md_escape(md.f, d->settings[si].label);
                fprintf(md.f, " | measured |");
                fprintf(tex.f, "\\quad ");
                rep_latex_escape(tex.f, d->settings[si].label);
                fprintf(tex.f, " & measured");
                double ms = 0;
                int mn = 0;
                for (size_t t = 0; t < nc; t++) {
                    dk_ci c = {NAN, NAN, NAN};
                    size_t n = 0;
                    if (rep_has(d, (int)mi, rti[t], si) &&
                        (st = rep_stat(d, (int)mi, rti[t], si, Q_SCORE, 0, &c, &n, e)) != DK_OK) goto done;
                    if (!isnan(c.est)) { ms += c.est; mn++; }
                    rep_fmt_ci(b, sizeof b, c, 2, 0); fprintf(md.f, " %s |", b);
                    rep_fmt_ci(b, sizeof b, c, 2, 1); fprintf(tex.f, " & %s", b);
                    dk_report_csv_field(csv.f, d->models[mi].label); fputc(',', csv.f);
                    dk_report_csv_field(csv.f, pm); fputc(',', csv.f);
                    dk_report_csv_field(csv.f, d->settings[si].label);
                    fprintf(csv.f, ",measured,");
                    dk_report_csv_field(csv.f, pp->cols[pcol[t]]);
                    fprintf(csv.f, ",%zu,%.17g,%.17g,%.17g\n", n, c.est, c.lo, c.hi);
                }
                dk_ci mm = {mn == (int)nc ? ms / mn : NAN, NAN, NAN}, wl, fl;
                size_t n_wl, n_fl;
                if ((st = rep_stat(d, (int)mi, -1, si, Q_WALL, 0, &wl, &n_wl, e)) != DK_OK ||
                    (st = rep_stat(d, (int)mi, -1, si, Q_FLOPS, 0, &fl, &n_fl, e)) != DK_OK) goto done;
                char msp[128];
                snprintf(msp, sizeof msp, "%.2fx wall, %.2fx FLOPs (CPU)", wl.est, fl.est);
                rep_fmt_ci(b, sizeof b, mm, 2, 0); fprintf(md.f, " %s | – | %s |\n", b, msp);
                rep_fmt_ci(b, sizeof b, mm, 2, 1); fprintf(tex.f, " & %s & -- & ", b);
                rep_latex_escape(tex.f, msp);
                fprintf(tex.f, " \\\\\n");
                const char *qn[3] = {"mean", "wall_speedup", "flops_speedup"};
                double qv[3] = {mm.est, wl.est, fl.est};
                for (int k = 0; k < 3; k++) {
                    dk_report_csv_field(csv.f, d->models[mi].label); fputc(',', csv.f);
                    dk_report_csv_field(csv.f, pm); fputc(',', csv.f);
                    dk_report_csv_field(csv.f, d->settings[si].label);
                    fprintf(csv.f, ",measured,%s,,%.17g,,\n", qn[k], qv[k]);
                }
            }
        }
        fprintf(tex.f, "\\bottomrule\n\\end{tabular}\n\\end{table}\n");
    }
    if (!*written) goto done;
    fflush(md.f);
    if (md_out) fwrite(md.buf, 1, md.len, md_out);
    if ((st = rep_mem_commit(&md, o, "paper_vs_measured.md", e)) != DK_OK ||
        (st = rep_mem_commit(&tex, o, "paper_vs_measured.tex", e)) != DK_OK ||
        (st = rep_mem_commit(&csv, o, "paper_vs_measured.csv", e)) != DK_OK) goto done;
done:
    rep_mem_drop(&md); rep_mem_drop(&tex); rep_mem_drop(&csv);
    free(rows); free(tasks); free(pcol); free(rti);
    return st;
}

static const rep_data *rep_sort_data;
static int rep_cmp_ablation(const void *a, const void *b) {
    const rep_setting *x = &rep_sort_data->settings[*(const int *)a], *y = &rep_sort_data->settings[*(const int *)b];
    /* method in config order (settings are numbered in that order), then ls, rho, tau, keep */
    int mx = *(const int *)a, my = *(const int *)b;
    for (size_t s = 0; s < rep_sort_data->n_settings; s++)
        if (!strcmp(rep_sort_data->settings[s].method, x->method)) { mx = (int)s; break; }
    for (size_t s = 0; s < rep_sort_data->n_settings; s++)
        if (!strcmp(rep_sort_data->settings[s].method, y->method)) { my = (int)s; break; }
    if (mx != my) return mx - my;
    double kx[4] = {x->ls, x->rho, x->tau, x->keep}, ky[4] = {y->ls, y->rho, y->tau, y->keep};
    for (int i = 0; i < 4; i++) {
        if (isnan(kx[i]) != isnan(ky[i])) return isnan(kx[i]) ? -1 : 1;
        if (!isnan(kx[i]) && kx[i] != ky[i]) return kx[i] < ky[i] ? -1 : 1;
    }
    return *(const int *)a - *(const int *)b;
}

static void rep_param(char *b, size_t n, double v) {
    if (isnan(v)) snprintf(b, n, "–");
    else snprintf(b, n, "%g", v);
}

/* table_ablation: one row per setting with its ratio/threshold parameters. */
static dk_status rep_table_ablation(const rep_data *d, rep_out *o, FILE *md_out, dk_err *e) {
    rep_mem md = {0}, tex = {0}, csv = {0};
    dk_status st;
    int *rows = calloc(d->n_settings + 1, sizeof *rows), *tasks = calloc(d->n_tasks + 1, sizeof *tasks);
    if (!rows || !tasks) { free(rows); free(tasks); return dk_fail(e, DK_ERR_NOMEM, "out of memory"); }
    if ((st = rep_mem_open(&md, e)) != DK_OK || (st = rep_mem_open(&tex, e)) != DK_OK || (st = rep_mem_open(&csv, e)) != DK_OK)
        goto done;
    fprintf(csv.f, "model,setting,method,rho,tau,ls,keep,n,score,score_lo,score_hi,flops_speedup,wall_speedup,wall_lo,wall_hi,"
                   "kl,top1,nll_delta\n");
    fprintf(tex.f, "%% dashkit report, run %lld: ablation over ratio (rho), threshold (tau), start layer (ls), keep.\n",
            (long long)d->run_id);
    for (size_t mi = 0; mi < d->n_models; mi++) {
        size_t nr = rep_table_rows(d, (int)mi, rows), nt = rep_model_tasks(d, (int)mi, tasks);
        rep_sort_data = d;
        qsort(rows, nr, sizeof *rows, rep_cmp_ablation);
        fprintf(md.f, "%s**%s** — score = mean of the %zu task means [%.0f%% CI]; over the teacher-forced answer: KL ="
                      " mean KL(dense‖method), nats; top-1 = share of answer tokens whose argmax agrees with dense;"
                      " ΔNLL = answer NLL method − dense, nats/token\n\n",
                mi ? "\n" : "", d->models[mi].label, nt, 100 * d->opts->level);
        fprintf(md.f, "| Method | rho | tau | ls | keep | Score | FLOPs speedup | Wall speedup | KL | Top-1 | ΔNLL |\n"
                      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        fprintf(tex.f, "\\begin{table}[t]\n\\centering\n\\caption{");
        rep_latex_escape(tex.f, d->models[mi].label);
        fprintf(tex.f, ": ablation (score = mean over tasks, %.0f\\%% CI).}\n\\begin{tabular}{lrrrrrrrrrr}\n\\toprule\n"
                       "Method & $\\rho$ & $\\tau$ & $l_s$ & keep & Score & FLOPs & Wall & KL & Top-1 & $\\Delta$NLL \\\\\n\\midrule\n",
                100 * d->opts->level);
        for (size_t r = 0; r < nr; r++) {
            int si = rows[r];
            const rep_setting *s = &d->settings[si];
            int complete = 1;
            for (size_t t = 0; t < nt; t++) if (!rep_has(d, (int)mi, tasks[t], si)) complete = 0;
            dk_ci sc = {NAN, NAN, NAN}, fl, wl, kl, t1, nl;
            size_t n = 0, nn;
            if (complete && (st = rep_stat(d, (int)mi, -1, si, Q_SCORE, 1, &sc, &n, e)) != DK_OK) goto done;
            if ((st = rep_stat(d, (int)mi, -1, si, Q_FLOPS, 0, &fl, &nn, e)) != DK_OK ||
                (st = rep_stat(d, (int)mi, -1, si, Q_WALL, 0, &wl, &nn, e)) != DK_OK ||
                (st = rep_stat(d, (int)mi, -1, si, Q_KL, 0, &kl, &nn, e)) != DK_OK ||
                (st = rep_stat(d, (int)mi, -1, si, Q_TOP1, 0, &t1, &nn, e)) != DK_OK ||
                (st = rep_stat(d, (int)mi, -1, si, Q_NLL, 0, &nl, &nn, e)) != DK_OK) goto done;
            char p[4][32], b[6][128];
            rep_param(p[0], 32, s->rho); rep_param(p[1], 32, s->tau); rep_param(p[2], 32, s->ls); rep_param(p[3], 32, s->keep);
            dk_report_csv_field(csv.f, d->models[mi].label); fputc(',', csv.f);
            dk_report_csv_field(csv.f, s->label); fputc(',', csv.f);
            dk_report_csv_field(csv.f, s->method);
            fprintf(csv.f, ",%.17g,%.17g,%.17g,%.17g,%zu,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g\n", s->rho,
                    s->tau, s->ls, s->keep, n, sc.est, sc.lo, sc.hi, fl.est, wl.est, wl.lo, wl.hi, kl.est, t1.est, nl.est);
            dk_ci fl0 = {fl.est, NAN, NAN}, kl0 = {kl.est, NAN, NAN}, t10 = {t1.est * 100, NAN, NAN}, nl0 = {nl.est, NAN, NAN};
            for (int latex = 0; latex < 2; latex++) {
                FILE *f = latex ? tex.f : md.f;
                rep_fmt_ci(b[0], 128, sc, 1, latex);
                rep_fmt_ci(b[1], 128, fl0, 2, latex);
                rep_fmt_ci(b[2], 128, wl, 2, latex);
                rep_fmt_ci(b[3], 128, kl0, 4, latex);
                rep_fmt_ci(b[4], 128, t10, 1, latex);
                rep_fmt_ci(b[5], 128, nl0, 4, latex);
                if (!latex) {
                    fprintf(f, "| %s | %s | %s | %s | %s | %s | %s× | %s× | %s | %s%% | %s |\n", s->method, p[0], p[1], p[2],
                            p[3], b[0], b[1], b[2], b[3], b[4], b[5]);
                } else {
                    rep_latex_escape(f, s->method);
                    for (int k = 0; k < 4; k++) fprintf(f, " & %s", strcmp(p[k], "–") ? p[k] : "--");
                    fprintf(f, " & %s & %s$\\times$ & %s$\\times$ & %s & %s\\%% & %s \\\\\n", b[0], b[1], b[2], b[3], b[4],
                            b[5]);
                }
            }
        }
        fprintf(tex.f, "\\bottomrule\n\\end{tabular}\n\\end{table}\n");
    }
    fflush(md.f);
    if (md_out) fwrite(md.buf, 1, md.len, md_out);
    if ((st = rep_mem_commit(&md, o, "table_ablation.md", e)) != DK_OK ||
        (st = rep_mem_commit(&tex, o, "table_ablation.tex", e)) != DK_OK ||
        (st = rep_mem_commit(&csv, o, "table_ablation.csv", e)) != DK_OK) goto done;
done:
    rep_mem_drop(&md); rep_mem_drop(&tex); rep_mem_drop(&csv);
    free(rows); free(tasks);
    return st;
}

/* ---- report ---- */

void dk_report_opts_default(dk_report_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_boot = 2000;
    o->seed = 1;
    o->level = 0.95;
    o->draw = 1;
}

const char *dk_report_kind_name(dk_report_kind k) {
    switch (k) {
    case DK_REPORT_KIND_FRONTIER: return "frontier";
    case DK_REPORT_KIND_HEATMAP: return "heatmap";
    case DK_REPORT_KIND_LAYERS: return "layers";
    case DK_REPORT_KIND_DELTA: return "delta";
    }
    return "?";
}

int dk_report_kind_parse(const char *s, dk_report_kind *k) {
    for (int i = 0; i <= DK_REPORT_KIND_DELTA; i++)
        if (!strcmp(s, dk_report_kind_name((dk_report_kind)i))) { *k = (dk_report_kind)i; return 0; }
    return -1;
}

static void rep_time(char *b, size_t n, double t) {
    if (isnan(t)) { snprintf(b, n, "–"); return; }
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(b, n, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static void rep_md_kv(FILE *f, const char *k, const char *v) {
    fprintf(f, "| %s | ", k);
    rep_md_escape(f, v && *v ? v : "–");
    fprintf(f, " |\n");
}

static dk_status rep_check_opts(const dk_report_opts *o, dk_err *e) {
    if (!(o->level > 0 && o->level < 1)) return dk_fail(e, DK_ERR_ARG, "CI level %g is outside (0,1)", o->level);
    if (o->n_boot < 0) return dk_fail(e, DK_ERR_ARG, "bootstrap resamples %d < 0", o->n_boot);
    return DK_OK;
}

static void rep_out_free(rep_out *o) {
    for (size_t i = 0; i < o->n_figs; i++) free(o->figs[i]);
    free(o->figs);
    o->figs = NULL;
    o->n_figs = 0;
}

static void rep_prepare_draw(const dk_report_opts *o, dk_report_result *r) {
    rep_gnuplot_locate(o, r);
    if (r->gnuplot_found) rep_gnuplot_probe(r);
}

/* ---- stability vs redundancy: the figures and Markdown of one analysis (analyze.h) ---- */

static dk_status rep_dat_gp(rep_out *o, const char *stem, rep_mem *dat, rep_mem *gp, dk_err *e) {
    char name[1100];
    snprintf(name, sizeof name, "%s.dat", stem);
    dk_status st = rep_mem_commit(dat, o, name, e);
    snprintf(name, sizeof name, "%s.gp", stem);
    if (st == DK_OK) st = rep_mem_commit(gp, o, name, e);
    if (st == DK_OK) st = rep_queue_fig(o, stem, e);
    return st;
}

/* analysis_delta_SLUG (rel = 0: Δ; 1: Δ/‖h‖), analysis_redundancy_SLUG, analysis_recall_SLUG, and
 * the Markdown section into md. */
static dk_status rep_analysis_write(rep_out *o, const dk_analysis *a, const char *label, const char *slug, FILE *md,
                                    dk_err *e) {
    rep_mem dat = {0}, gp = {0};
    dk_status st = DK_OK;
    char stem[1024], title[1024], what[1024];
    fprintf(md, "\n### %s: stability vs redundancy (analysis %lld)\n\nDense prefills of %d `%s` contexts (%s);"
                " l_s = layer %d (ls %g). Δ_t = ‖U_t‖ (DASH's score); received attention = what all queries of a layer"
                " pay a row, mean over heads, divided by the queries that can see it.\n\n",
            label, (long long)a->id, a->n_samples, a->task ? a->task : "?", a->task_options ? a->task_options : "{}",
            a->ls_layer, a->ls);
    fprintf(md, "- `delta_received_spearman`: %.3f (Spearman of Δ at l_s with the mean received attention of the layers"
                " after l_s; positive: rows that change little are attended little)\n", a->delta_received_spearman);
    for (int r = 0; r < a->n_recall; r++)
        if (fabs(a->recall[r].rho - a->rho) < 1e-12)
            fprintf(md, "- `recall_%s`: %.3f (kept %.1f%% of the rows at rho %g)\n", a->recall[r].method, a->recall[r].recall,
                    100 * a->recall[r].kept_frac, a->rho);
    fprintf(md, "\n| layer | Δ p10 | Δ p50 | Δ p90 | Δ/‖h‖ p50 | received (mean) | Spearman(Δ@l_s, received) |\n"
                "|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int l = 0; l < a->n_layer; l++) {
        const double *dq = a->delta_q + l * DK_ANALYSIS_NQ, *rq = a->rel_q + l * DK_ANALYSIS_NQ;
        fprintf(md, "| %d%s | %.4g | %.4g | %.4g | %.4g | %.4g | %.3f |\n", l, l == a->ls_layer ? " (l_s)" : "", dq[1], dq[3],
                dq[5], rq[3], a->received_mean[l], a->received_spearman[l]);
    }
    fprintf(md, "\nReceived attention (layers after l_s) by Δ-decile at l_s, lowest Δ first:\n\n| decile | mean Δ | received |\n"
                "|---:|---:|---:|\n");
    for (int k = 0; k < 10; k++) fprintf(md, "| %d | %.4g | %.4g |\n", k + 1, a->decile_delta[k], a->decile_received[k]);
    fprintf(md, "\nKept-set overlap (Jaccard) at rho %g:\n\n| a | b | Jaccard |\n|---|---|---:|\n", a->rho);
    for (int k = 0; k < a->n_overlap; k++) fprintf(md, "| %s | %s | %.3f |\n", a->overlap[k].a, a->overlap[k].b, a->overlap[k].jaccard);

    /* Δ percentile bands per layer, absolute and relative */
    for (int rel = 0; rel < 2 && st == DK_OK; rel++) {
        snprintf(stem, sizeof stem, "analysis_%s_%s", rel ? "reldelta" : "delta", slug);
        if ((st = rep_mem_open(&dat, e)) != DK_OK || (st = rep_mem_open(&gp, e)) != DK_OK) break;
        fprintf(dat.f, "# analysis %lld, %s: per layer percentiles of %s over the context rows of %d dense prefills\n"
                       "# layer p1 p10 p25 p50 p75 p90 p99\n", (long long)a->id, label, rel ? "delta/|h|" : "delta", a->n_samples);
        for (int l = 0; l < a->n_layer; l++) {
            fprintf(dat.f, "%d", l);
            for (int q = 0; q < DK_ANALYSIS_NQ; q++) fprintf(dat.f, " %.6g", (rel ? a->rel_q : a->delta_q)[l * DK_ANALYSIS_NQ + q]);
            fprintf(dat.f, "\n");
        }
        snprintf(what, sizeof what, "%s percentile bands per layer: %s", rel ? "relative delta" : "delta", label);
        snprintf(title, sizeof title, "%s: %s per layer (bands p10-p90, p25-p75; median; p1/p99 dashed)", label,
                 rel ? "|U_t| / |h_t|" : "delta_t = |U_t|");
        char dname[1100];
        snprintf(dname, sizeof dname, "%s.dat", stem);
        rep_gp_head(gp.f, o, stem, what, dname);
        fprintf(gp.f, "set title ");
        rep_gp_str(gp.f, title);
        fprintf(gp.f, "\nset xlabel \"layer\"\nset ylabel \"%s\"\nset logscale y\nset grid\nset key top left\nset xtics 1\n"
                      "set arrow from %d, graph 0 to %d, graph 1 nohead dt 3 lc rgb \"gray40\"\n",
                rel ? "|U| / |h|" : "|U|", a->ls_layer, a->ls_layer);
        fprintf(gp.f, "plot \"%s\" using 1:3:7 with filledcurves fc rgb \"#c6dbef\" title \"p10-p90\", \\\n"
                      "  \"\" using 1:4:6 with filledcurves fc rgb \"#6baed6\" title \"p25-p75\", \\\n"
                      "  \"\" using 1:5 with linespoints lw 2 lc rgb \"#08306b\" title \"median\", \\\n"
                      "  \"\" using 1:2 with lines dt 2 lc rgb \"gray30\" title \"p1\", \\\n"
                      "  \"\" using 1:8 with lines dt 2 lc rgb \"gray30\" title \"p99\"\n", dname);
        rep_gp_tail(gp.f, o);
        st = rep_dat_gp(o, stem, &dat, &gp, e);
        rep_mem_drop(&dat); rep_mem_drop(&gp);
        fprintf(md, "\n![%s](%s.png)\n", rel ? "relative delta per layer" : "delta per layer", stem);
    }
    /* the redundancy curve */
    if (st == DK_OK) {
        snprintf(stem, sizeof stem, "analysis_redundancy_%s", slug);
        if ((st = rep_mem_open(&dat, e)) == DK_OK && (st = rep_mem_open(&gp, e)) == DK_OK) {
            fprintf(dat.f, "# analysis %lld, %s: received attention of the layers after l_s = %d by delta-decile at l_s\n"
                           "# decile mean_delta received\n", (long long)a->id, label, a->ls_layer);
            for (int k = 0; k < 10; k++) fprintf(dat.f, "%d %.6g %.6g\n", k + 1, a->decile_delta[k], a->decile_received[k]);
            char dname[1100];
            snprintf(dname, sizeof dname, "%s.dat", stem);
            rep_gp_head(gp.f, o, stem, "stability vs redundancy curve", dname);
            snprintf(title, sizeof title, "%s: attention received in layers > %d by delta-decile at layer %d (Spearman %.2f)",
                     label, a->ls_layer, a->ls_layer, a->delta_received_spearman);
            fprintf(gp.f, "set title ");
            rep_gp_str(gp.f, title);
            fprintf(gp.f, "\nset xlabel \"decile of delta at l_s (1 = most stable)\"\nset ylabel \"received attention"
                          " (normalised by visible queries)\"\nset logscale y\nset grid\nset xtics 1\nunset key\n"
                          "plot \"%s\" using 1:3 with linespoints lw 2 pt 7 lc rgb \"#b2182b\"\n", dname);
            rep_gp_tail(gp.f, o);
            st = rep_dat_gp(o, stem, &dat, &gp, e);
        }
        rep_mem_drop(&dat); rep_mem_drop(&gp);
        fprintf(md, "\n![redundancy curve](%s.png)\n", stem);
    }
    /* recall vs rho per method */
    if (st == DK_OK) {
        snprintf(stem, sizeof stem, "analysis_recall_%s", slug);
        if ((st = rep_mem_open(&dat, e)) == DK_OK && (st = rep_mem_open(&gp, e)) == DK_OK) {
            fprintf(dat.f, "# analysis %lld, %s: attention recall (share of dense attention of layers > l_s on kept rows)"
                           " vs rho; one block per method\n", (long long)a->id, label);
            int blocks = 0;
            for (int r = 0; r < a->n_recall; r++) {
                if (r == 0 || strcmp(a->recall[r].method, a->recall[r - 1].method)) fprintf(dat.f, "%s# %s\n", blocks++ ? "\n\n" : "", a->recall[r].method);
                fprintf(dat.f, "%.6g %.6g %.6g\n", a->recall[r].rho, a->recall[r].recall, a->recall[r].kept_frac);
            }
            char dname[1100];
            snprintf(dname, sizeof dname, "%s.dat", stem);
            rep_gp_head(gp.f, o, stem, "attention recall vs rho", dname);
            snprintf(title, sizeof title, "%s: dense attention (layers > %d) on the rows each method keeps", label, a->ls_layer);
            fprintf(gp.f, "set title ");
            rep_gp_str(gp.f, title);
            fprintf(gp.f, "\nset xlabel \"rho (fraction halted)\"\nset ylabel \"attention recall\"\nset yrange [0:1.05]\nset grid\n"
                          "set key bottom left\nplot for [i=0:%d] \"%s\" index i using 1:2 with linespoints lw 2 title columnheader(1)\n",
                    blocks - 1, dname);
            rep_gp_tail(gp.f, o);
            st = blocks ? rep_dat_gp(o, stem, &dat, &gp, e) : DK_OK;
        }
        rep_mem_drop(&dat); rep_mem_drop(&gp);
        fprintf(md, "\n![attention recall vs rho](%s.png)\n", stem);
    }
    return st;
}

dk_status dk_report_analysis(dk_store *s, int64_t id, const char *out_dir, const dk_report_opts *opts, dk_report_result *r,
                             dk_err *e) {
    memset(r, 0, sizeof *r);
    dk_analysis a;
    int found = 0;
    dk_status st = dk_store_analysis_get(s, id, NULL, &a, &found, e);
    if (st != DK_OK) return st;
    if (!found) return dk_fail(e, DK_ERR_ARG, "no analysis %lld in the store", (long long)id);
    rep_out o = {out_dir, 1, 1, NULL, 0, r};
    rep_mem md = {0};
    char *base = rep_strdup(a.model_path ? a.model_path : "model"), *label, *slug = NULL;
    if (!base) { dk_analysis_free(&a); return dk_fail(e, DK_ERR_NOMEM, "out of memory"); }
    label = strrchr(base, '/') ? strrchr(base, '/') + 1 : base;
    char *dot = strrchr(label, '.');
    if (dot && dot != label) *dot = 0;
    if (!(slug = rep_slug(label))) { st = dk_fail(e, DK_ERR_NOMEM, "out of memory"); goto done; }
    if ((st = rep_mkdirs(out_dir, e)) != DK_OK || (st = rep_mem_open(&md, e)) != DK_OK) goto done;
    fprintf(md.f, "# dashkit analyze\n");
    if ((st = rep_analysis_write(&o, &a, label, slug, md.f, e)) != DK_OK) goto done;
    if (opts->draw) {
        rep_prepare_draw(opts, r);
        if (r->gnuplot_found) rep_draw(&o);
    }
    st = rep_mem_commit(&md, &o, "analysis.md", e);
done:
    rep_mem_drop(&md);
    rep_out_free(&o);
    free(base);
    free(slug);
    dk_analysis_free(&a);
    return st;
}

dk_status dk_report_write(dk_store *s, const char *out_dir, const dk_report_opts *opts, dk_report_result *r, dk_err *e) {
    memset(r, 0, sizeof *r);
    dk_status st = rep_check_opts(opts, e);
    if (st != DK_OK) return st;
    rep_paper paper;
    if ((st = rep_paper_load(opts->paper ? opts->paper : DK_REPORT_PAPER_DEFAULT, &paper, e)) != DK_OK) return st;
    rep_data d;
    if ((st = rep_load(s, opts, &d, e)) != DK_OK) { rep_paper_free(&paper); return st; }
    r->run_id = d.run_id;
    rep_out o = {out_dir, 1, 1, NULL, 0, r};
    rep_mem rep = {0}, figs = {0};
    if ((st = rep_mkdirs(out_dir, e)) != DK_OK) goto done;
    if ((st = rep_mem_open(&rep, e)) != DK_OK || (st = rep_mem_open(&figs, e)) != DK_OK) goto done;

    /* figures (markdown list collected in figs) */
    char stem[1024], dat[1024], s_wall[1100], s_flops[1100];
    for (size_t mi = 0; mi < d.n_models; mi++) {
        fprintf(figs.f, "\n### %s\n", d.models[mi].label);
        for (size_t ti = 0; ti < d.n_tasks; ti++) {
            int any = 0;
            for (size_t i = 0; i < d.n_cells_loaded; i++) if (d.cells[i].mi == (int)mi && d.cells[i].ti == (int)ti) any = 1;
            if (!any) continue;
            snprintf(dat, sizeof dat, "frontier_%s_%s", d.models[mi].slug, d.tasks[ti].slug);
            snprintf(s_wall, sizeof s_wall, "%s_wall", dat);
            snprintf(s_flops, sizeof s_flops, "%s_flops", dat);
            const char *stems[2] = {s_wall, s_flops};
            if ((st = rep_frontier_write(&d, &o, (int)mi, (int)ti, dat, stems, 1, e)) != DK_OK) goto done;
            fprintf(figs.f, "\n**Frontier, %s** (data: [%s.dat](%s.dat), [%s.csv](%s.csv))\n\n"
                            "![%s frontier, measured speedup](%s.png) ![%s frontier, FLOP speedup](%s.png)\n",
                    d.tasks[ti].name, dat, dat, dat, dat, d.tasks[ti].name, s_wall, d.tasks[ti].name, s_flops);
            if (rep_task_has_depth(&d, (int)mi, (int)ti)) {
                for (size_t si = 0; si < d.n_settings; si++) {
                    if (!rep_has(&d, (int)mi, (int)ti, (int)si)) continue;
                    snprintf(stem, sizeof stem, "heatmap_%s_%s_%s", d.models[mi].slug, d.tasks[ti].slug, d.settings[si].slug);
                    if ((st = rep_heatmap_write(&d, &o, (int)mi, (int)ti, (int)si, stem, e)) != DK_OK) goto done;
                    fprintf(figs.f, "\n**NIAH heatmap, %s, %s** ([data](%s.dat))\n\n![heatmap](%s.png)\n", d.tasks[ti].name,
                            d.settings[si].label, stem, stem);
                }
            }
        }
        int any_depth = 0;
        for (size_t ti = 0; ti < d.n_tasks; ti++) any_depth |= rep_task_has_depth(&d, (int)mi, (int)ti);
        if (!any_depth)
            rep_note(r, "no NIAH heatmap for %s: no task of this run has a \"depth\" option (give the task a \"depths\" grid;"
                        " per-sample random depths are not stored)", d.models[mi].label);
        /* active tokens per layer: one figure per method */
        for (size_t si = 0; si < d.n_settings; si++) {
            int first = 1;
            for (size_t k = 0; k < si; k++) if (!strcmp(d.settings[k].method, d.settings[si].method)) first = 0;
            if (!first || !rep_has(&d, (int)mi, -1, (int)si)) continue;
            char *ms = rep_slug(d.settings[si].method);
            if (!ms) { st = dk_fail(e, DK_ERR_NOMEM, "out of memory"); goto done; }
            snprintf(stem, sizeof stem, "layers_active_%s_%s", d.models[mi].slug, ms);
            free(ms);
            int w = 0;
            if ((st = rep_layers_write(&d, &o, (int)mi, -1, d.settings[si].method, stem, &w, e)) != DK_OK) goto done;
            if (w) fprintf(figs.f, "\n**Active tokens per layer, %s** ([data](%s.dat))\n\n![layers](%s.png)\n",
                           d.settings[si].method, stem, stem);
        }
        snprintf(stem, sizeof stem, "layers_delta_%s", d.models[mi].slug);
        const char *src = NULL;
        if ((st = rep_delta_write(&d, &o, (int)mi, stem, &src, e)) != DK_OK) goto done;
        if (src) {
            fprintf(figs.f, "\n**Halting score (Δ) per layer, samples of %s** ([data](%s.dat))\n\n![delta](%s.png)\n", src,
                    stem, stem);
            if (strcmp(src, "dense") != 0)
                rep_note(r, "Δ per layer for %s drawn from %s samples: the run's dense samples carry no Δ statistics",
                         d.models[mi].label, src);
        } else {
            rep_note(r, "no Δ-per-layer figure for %s: no sample of this run has Δ statistics (sample_layers.delta_*)",
                     d.models[mi].label);
        }
    }

    /* report.md */
    FILE *f = rep.f;
    char b1[64], b2[64];
    fprintf(f, "# dashkit report: run %lld", (long long)d.run_id);
    if (d.run_name && *d.run_name) { fprintf(f, " (%s)", d.run_name); }
    fprintf(f, "\n\nEvery number below is read from the store's sample rows; nothing is recomputed. Each figure's data"
               " (`.dat`/`.csv`) and gnuplot script (`.gp`) are beside it: `gnuplot NAME.gp` in this folder redraws it.\n\n");
    fprintf(f, "## Provenance\n\n| | |\n|---|---|\n");
    char num[64];
    snprintf(num, sizeof num, "%lld", (long long)d.run_id);
    rep_md_kv(f, "run", num);
    rep_md_kv(f, "name", d.run_name);
    rep_md_kv(f, "config", d.config_path);
    rep_md_kv(f, "config sha256", d.config_hash);
    rep_md_kv(f, "git revision", d.git_rev);
    rep_md_kv(f, "host", d.host);
    rep_md_kv(f, "CPU", d.cpu);
    rep_md_kv(f, "BLAS core", d.blas_core);
    snprintf(num, sizeof num, "%lld", (long long)d.threads);
    rep_md_kv(f, "threads", d.threads >= 0 ? num : NULL);
    snprintf(num, sizeof num, "%lld", (long long)d.workers);
    rep_md_kv(f, "workers", d.workers >= 0 ? num : NULL);
    rep_md_kv(f, "command", d.command);
    rep_time(b1, sizeof b1, d.started_at);
    rep_time(b2, sizeof b2, d.finished_at);
    rep_md_kv(f, "started", b1);
    rep_md_kv(f, "finished", isnan(d.finished_at) ? "– (running or interrupted)" : b2);
    {
        size_t nd = 0, np = 0, nrun = 0, nf = 0, ns = 0;
        for (size_t i = 0; i < d.n_cells_loaded; i++) {
            const char *x = d.cells[i].state;
            if (!strcmp(x, "done")) nd++;
            else if (!strcmp(x, "pending")) np++;
            else if (!strcmp(x, "running")) nrun++;
            else nf++;
            ns += d.cells[i].n;
        }
        char cells[256];
        snprintf(cells, sizeof cells, "%zu (done %zu, pending %zu, running %zu, failed %zu); %zu sample rows", d.n_cells_loaded,
                 nd, np, nrun, nf, ns);
        rep_md_kv(f, "cells", cells);
        if (nd != d.n_cells_loaded)
            rep_note(r, "run %lld is incomplete: %zu of %zu cells are not done; figures use the samples stored so far",
                     (long long)d.run_id, d.n_cells_loaded - nd, d.n_cells_loaded);
    }
    fprintf(f, "\n**Models**\n\n| Model | Path | sha256 | Arch | Layers | Parameters |\n|---|---|---|---|---:|---:|\n");
    for (size_t mi = 0; mi < d.n_models; mi++) {
        const rep_model *m = &d.models[mi];
        fprintf(f, "| %s | ", m->label);
        rep_md_escape(f, m->path);
        fprintf(f, " | `%s` | %s | %lld | %lld |\n", m->sha, *m->arch ? m->arch : "–", (long long)m->n_layer,
                (long long)m->n_params);
    }
    size_t n_shared_rows = 0, n_rows_all = 0;
    for (size_t i = 0; i < d.n_cells_loaded; i++) { n_shared_rows += d.cells[i].n_shared; n_rows_all += d.cells[i].n; }
    fprintf(f, "\n## Method\n\nScore: mean of the samples' scores (0–100). Wall speedup: sum of dense prefill seconds /"
               " sum of method prefill seconds over the same samples (measured). FLOPs speedup: dense FLOPs / method FLOPs"
               " (counted by the engine). Intervals: %.0f%% percentile bootstrap, %d resamples, seed %llu, stratified by cell"
               " (Avg: by task); deterministic for the seed. What is resampled: samples, except where samples share a"
               " context (RULER's fixed haystack at one length and depth: %zu of %zu sample rows here), where the"
               " distinct contexts are resampled as clusters with all their samples and the task's cells form one"
               " stratum, so the interval reflects how many contexts were seen, not how many needles were put into them."
               " Fidelity (KL, top-1, ΔNLL) is taken over the teacher-forced answer tokens. Frontiers pool a task's"
               " lengths/depths; the Pareto front maximises both speedup and score over every point including dense.\n",
            100 * opts->level, opts->n_boot, (unsigned long long)opts->seed, n_shared_rows, n_rows_all);
    fprintf(f, "\n## Main table\n\nAlso as [Markdown](table_main.md), [LaTeX](table_main.tex), [CSV](table_main.csv).\n\n");
    if ((st = rep_table_main(&d, &o, f, e)) != DK_OK) goto done;
    fprintf(f, "\n## Ablation: ratio / threshold / start layer\n\nAlso as [Markdown](table_ablation.md), [LaTeX](table_ablation.tex),"
               " [CSV](table_ablation.csv).\n\n");
    if ((st = rep_table_ablation(&d, &o, f, e)) != DK_OK) goto done;
    if ((st = rep_section_stats(&d, &o, f, e)) != DK_OK) goto done;
    {
        int any = 0;
        for (size_t mi = 0; mi < d.n_models && st == DK_OK; mi++) {
            dk_analysis an;
            int found = 0;
            if ((st = dk_store_analysis_get(s, 0, d.models[mi].sha, &an, &found, e)) != DK_OK) goto done;
            if (!found) continue;
            if (!any) fprintf(f, "\n## Stability vs redundancy (`dashkit analyze`)\n\nThe latest analysis of each model"
                                 " in the store.\n");
            any = 1;
            st = rep_analysis_write(&o, &an, d.models[mi].label, d.models[mi].slug, f, e);
            dk_analysis_free(&an);
        }
        if (st != DK_OK) goto done;
    }
    {
        rep_mem pm = {0};
        int pw = 0;
        if ((st = rep_mem_open(&pm, e)) != DK_OK) goto done;
        st = rep_table_paper(&d, &paper, &o, pm.f, &pw, e);
        fflush(pm.f);
        if (st == DK_OK && pw)
            fprintf(f, "\n## Paper vs measured\n\nAlso as [Markdown](paper_vs_measured.md), [LaTeX](paper_vs_measured.tex),"
                       " [CSV](paper_vs_measured.csv).\n\n%.*s", (int)pm.len, pm.buf);
        rep_mem_drop(&pm);
        if (st != DK_OK) goto done;
    }

    /* draw before writing report.md so its notes are final */
    if (opts->draw) {
        rep_prepare_draw(opts, r);
        if (r->gnuplot_found) rep_draw(&o);
        else rep_note(r, "figures not drawn: %s; data and scripts are written (draw with `gnuplot NAME.gp` here)", r->gnuplot);
    } else {
        snprintf(r->gnuplot, sizeof r->gnuplot, "not run (--no-draw)");
    }
    if (r->n_failed) rep_note(r, "gnuplot failed on %d figure(s); first: %s", r->n_failed, r->failure);

    fflush(figs.f);
    fprintf(f, "\n## Figures\n");
    fwrite(figs.buf, 1, figs.len, f);
    fprintf(f, "\n## Notes\n\n");
    if (r->notes[0]) {
        for (char *p = r->notes; *p;) {
            char *nl = strchr(p, '\n');
            fprintf(f, "- %.*s\n", nl ? (int)(nl - p) : (int)strlen(p), p);
            p = nl ? nl + 1 : p + strlen(p);
        }
    } else {
        fprintf(f, "None.\n");
    }
    if ((st = rep_mem_commit(&rep, &o, "report.md", e)) != DK_OK) goto done;
done:
    rep_mem_drop(&rep);
    rep_mem_drop(&figs);
    rep_out_free(&o);
    rep_data_free(&d);
    rep_paper_free(&paper);
    return st;
}

/* ---- one figure ---- */

static int rep_pick_model(const rep_data *d, const char *want, dk_err *e, dk_status *st) {
    if (!want) {
        if (d->n_models == 1) return 0;
        *st = dk_fail(e, DK_ERR_ARG, "--model: run %lld has %zu models; name one (%s, ...)", (long long)d->run_id,
                      d->n_models, d->n_models ? d->models[0].label : "");
        return -1;
    }
    int found = -1;
    for (size_t i = 0; i < d->n_models; i++) {
        const rep_model *m = &d->models[i];
        if (!strcmp(m->label, want) || !strcmp(m->path, want) || (strlen(want) >= 6 && !strncmp(m->sha, want, strlen(want)))) {
            if (found >= 0) { *st = dk_fail(e, DK_ERR_ARG, "--model '%s' is ambiguous", want); return -1; }
            found = (int)i;
        }
    }
    if (found < 0) *st = dk_fail(e, DK_ERR_ARG, "--model '%s': no such model in run %lld", want, (long long)d->run_id);
    return found;
}

static int rep_pick_task(const rep_data *d, const char *want, int required, dk_err *e, dk_status *st) {
    if (!want) {
        if (!required) return -1;
        if (d->n_tasks == 1) return 0;
        char list[512] = "";
        for (size_t i = 0; i < d->n_tasks; i++) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", d->tasks[i].name);
        }
        *st = dk_fail(e, DK_ERR_ARG, "--task is required: run %lld has tasks %s", (long long)d->run_id, list);
        return -2;
    }
    for (size_t i = 0; i < d->n_tasks; i++) if (!strcmp(d->tasks[i].name, want)) return (int)i;
    *st = dk_fail(e, DK_ERR_ARG, "--task '%s': no such task in run %lld", want, (long long)d->run_id);
    return -2;
}

dk_status dk_report_plot(dk_store *s, const char *out_file, const dk_plot_spec *p, const dk_report_opts *opts,
                         dk_report_result *r, dk_err *e) {
    memset(r, 0, sizeof *r);
    dk_status st = rep_check_opts(opts, e);
    if (st != DK_OK) return st;
    const char *ext = strrchr(out_file, '.');
    const char *slash = strrchr(out_file, '/');
    if (!ext || (slash && ext < slash) || (strcmp(ext, ".png") != 0 && strcmp(ext, ".svg") != 0))
        return dk_fail(e, DK_ERR_ARG, "--out '%s': the file name must end in .png or .svg", out_file);
    char dir[4096], stem[1024];
    if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - out_file), out_file);
    else snprintf(dir, sizeof dir, ".");
    if (!dir[0]) snprintf(dir, sizeof dir, "/");
    const char *base = slash ? slash + 1 : out_file;
    snprintf(stem, sizeof stem, "%.*s", (int)(ext - base), base);
    if (!stem[0] || strchr(stem, '"') || strchr(stem, '\\'))
        return dk_fail(e, DK_ERR_ARG, "--out '%s': unusable file name", out_file);
    rep_data d;
    if ((st = rep_load(s, opts, &d, e)) != DK_OK) return st;
    r->run_id = d.run_id;
    rep_out o = {dir, !strcmp(ext, ".png"), !strcmp(ext, ".svg"), NULL, 0, r};
    /* validate the selection first: a bad option leaves nothing behind, not even the folder */
    int mi = rep_pick_model(&d, p->model, e, &st), ti = -1, si = -1;
    if (mi < 0) goto done;
    switch (p->kind) {
    case DK_REPORT_KIND_FRONTIER:
        if ((ti = rep_pick_task(&d, p->task, 1, e, &st)) < 0) goto done;
        break;
    case DK_REPORT_KIND_HEATMAP: {
        if ((ti = rep_pick_task(&d, p->task, 1, e, &st)) < 0) goto done;
        if (!rep_task_has_depth(&d, mi, ti)) {
            st = dk_fail(e, DK_ERR_ARG, "--task '%s': its cells have no \"depth\" option, so there is no length x depth grid"
                                        " (give the task a \"depths\" grid)", d.tasks[ti].name);
            goto done;
        }
        int n_match = 0;
        for (size_t k = 0; k < d.n_settings; k++) {
            if (!rep_has(&d, mi, ti, (int)k)) continue;
            if (p->method && !strcmp(d.settings[k].label, p->method)) { si = (int)k; n_match = 1; break; }
            if (p->method && strcmp(d.settings[k].method, p->method) != 0) continue;
            if (si < 0) si = (int)k;
            n_match++;
        }
        if (si < 0) {
            st = dk_fail(e, DK_ERR_ARG, "--method '%s': no such method or setting for task %s", p->method ? p->method : "",
                         d.tasks[ti].name);
            goto done;
        }
        if (n_match > 1) {
            st = dk_fail(e, DK_ERR_ARG, "--method: %d settings match%s%s; give one label, e.g. --method '%s'", n_match,
                         p->method ? " " : "", p->method ? p->method : "", d.settings[si].label);
            goto done;
        }
        break;
    }
    case DK_REPORT_KIND_LAYERS:
        if ((ti = rep_pick_task(&d, p->task, 0, e, &st)) == -2) goto done;
        if (p->method) {
            int known = 0;
            for (size_t k = 0; k < d.n_settings; k++) if (!strcmp(d.settings[k].method, p->method)) known = 1;
            if (!known) { st = dk_fail(e, DK_ERR_ARG, "--method '%s': no such method in run %lld", p->method, (long long)d.run_id); goto done; }
        }
        break;
    case DK_REPORT_KIND_DELTA:
        if (!rep_delta_source(&d, mi)) {
            st = dk_fail(e, DK_ERR_ARG, "delta: no sample of run %lld has delta statistics (sample_layers)", (long long)d.run_id);
            goto done;
        }
        break;
    }
    if ((st = rep_mkdirs(dir, e)) != DK_OK) goto done;
    switch (p->kind) {
    case DK_REPORT_KIND_FRONTIER: {
        const char *stems[2] = {p->x == DK_REPORT_X_WALL ? stem : NULL, p->x == DK_REPORT_X_FLOPS ? stem : NULL};
        if ((st = rep_frontier_write(&d, &o, mi, ti, stem, stems, 1, e)) != DK_OK) goto done;
        break;
    }
    case DK_REPORT_KIND_HEATMAP:
        if ((st = rep_heatmap_write(&d, &o, mi, ti, si, stem, e)) != DK_OK) goto done;
        break;
    case DK_REPORT_KIND_LAYERS: {
        int w = 0;
        if ((st = rep_layers_write(&d, &o, mi, ti, p->method, stem, &w, e)) != DK_OK) goto done;
        if (!w) { st = dk_fail(e, DK_ERR_ARG, "layers: no sample of the selection has active-token counts"); goto done; }
        break;
    }
    case DK_REPORT_KIND_DELTA: {
        const char *src = NULL;
        if ((st = rep_delta_write(&d, &o, mi, stem, &src, e)) != DK_OK) goto done;
        break;
    }
    }
    if (opts->draw) {
        rep_prepare_draw(opts, r);
        if (r->gnuplot_found) rep_draw(&o);
    } else {
        snprintf(r->gnuplot, sizeof r->gnuplot, "not run (--no-draw)");
    }
done:
    rep_out_free(&o);
    rep_data_free(&d);
    return st;
}
