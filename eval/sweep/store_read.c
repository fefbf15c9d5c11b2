/* store_read.c — the store's reads for the commands that show results (store.h "reading
 * results"): runs, cells by state, failed cells, a run's cells with their samples, the dense
 * reference scores, and the sample_rows view row by row. Each returns owned, typed copies (or
 * calls back per row); callers never see SQL. */
#include "store_int.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Runs sql (its parameters bound to params[0..n_params)) to the end, appending one zeroed element
 * of elem bytes per row to *out (*n of them), filled by fill (nonzero: out of memory). On failure
 * frees what was read with free_fn and returns the error ("what" names the read). */
typedef int (*dk_read_fill)(sqlite3_stmt *q, void *elem);
typedef void (*dk_read_free)(void *rows, size_t n);

static dk_status dk_read_rows(dk_store *s, const char *sql, const dk_sql_val *params, size_t n_params,
                              size_t elem, dk_read_fill fill, dk_read_free free_fn, void **out, size_t *n,
                              const char *what, dk_err *err) {
    sqlite3_stmt *q;
    size_t cap = 0;
    int step = SQLITE_DONE;
    *out = NULL;
    *n = 0;
    dk_status rc = dk_sql_prepare_bind(s, sql, &q, err, params, n_params);
    if (rc) return rc;
    while (!rc && (step = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            void *p = realloc(*out, cap * elem);
            if (!p) {
                rc = dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", s->path);
                break;
            }
            *out = p;
        }
        void *e = (char *)*out + *n * elem;
        memset(e, 0, elem);
        (*n)++;
        if (fill(q, e) != 0) rc = dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", s->path);
    }
    if (!rc && step != SQLITE_DONE) rc = dk_sql_fail(s, err, what);
    sqlite3_finalize(q);
    if (rc) {
        free_fn(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

/* ---- runs ---- */

static void dk_runs_free_v(void *r, size_t n) { dk_store_runs_free(r, n); }

void dk_store_runs_free(dk_store_run *r, size_t n) {
    for (size_t i = 0; r && i < n; i++) {
        DK_FREE_ALL(r[i].name, r[i].config_path, r[i].config_text, r[i].config_hash, r[i].git_rev, r[i].host,
                    r[i].cpu, r[i].blas_core, r[i].command, r[i].shard);
    }
    free(r);
}

static int dk_run_fill(sqlite3_stmt *q, void *elem) {
    dk_store_run *r = elem;
    r->id = sqlite3_column_int64(q, 0);
    char **txt[] = {&r->name, &r->config_path, &r->config_text, &r->config_hash, &r->git_rev,
                    &r->host, &r->cpu,         &r->blas_core,   &r->command,     &r->shard};
    for (int i = 0; i < 10; i++)
        if (dk_sql_col_text(q, 1 + i, txt[i]) != 0) return -1;
    r->threads = (int)dk_sql_col_known(q, 11);
    r->workers = (int)dk_sql_col_known(q, 12);
    r->n_cells = dk_sql_col_known(q, 13);
    r->started_at = dk_sql_col_real(q, 14);
    r->finished_at = dk_sql_col_real(q, 15);
    return 0;
}

dk_status dk_store_runs_read(dk_store *s, dk_store_run **out, size_t *n, dk_err *err) {
    return dk_read_rows(s,
                        "SELECT id, name, config_path, config_text, config_hash, git_rev, host, cpu, "
                        "blas_core, command, shard, threads,"
                        " workers, n_cells, started_at, finished_at FROM runs ORDER BY id",
                        NULL, 0, sizeof **out, dk_run_fill, dk_runs_free_v, (void **)out, n, "read runs",
                        err);
}

dk_status dk_store_run_counts(dk_store *s, int64_t run_id, int64_t counts[4], int64_t *samples, dk_err *err) {
    sqlite3_stmt *q;
    dk_status rc = DK_SQL_PREPARE(
        s,
        "SELECT total(c.state = 'pending'), total(c.state = 'running'), total(c.state = 'done'), "
        "total(c.state = 'failed'),"
        " (SELECT count(*) FROM samples x JOIN run_cells y ON y.cell_id = x.cell_id WHERE y.run_id = ?1)"
        " FROM run_cells rc JOIN cells c ON c.id = rc.cell_id WHERE rc.run_id = ?1",
        &q, err, DK_V_INT(run_id));
    if (rc) return rc;
    if (sqlite3_step(q) != SQLITE_ROW) rc = dk_sql_fail(s, err, "count cells");
    else {
        for (int i = 0; i < 4; i++) counts[i] = (int64_t)sqlite3_column_double(q, i);
        if (samples) *samples = sqlite3_column_int64(q, 4);
    }
    sqlite3_finalize(q);
    return rc;
}

dk_status dk_store_cells_held(dk_store *s, int64_t run_id, const char *host, int64_t pid, int64_t *n,
                              dk_err *err) {
    sqlite3_stmt *q;
    *n = 0;
    dk_status rc = DK_SQL_PREPARE(
        s,
        "SELECT count(*) FROM run_cells r JOIN cells c ON c.id = r.cell_id WHERE r.run_id = ?"
        " AND c.state = 'running' AND c.worker_host = ? AND c.worker_pid = ?",
        &q, err, DK_V_INT(run_id), DK_V_TEXT(host), DK_V_INT(pid));
    if (rc) return rc;
    if (sqlite3_step(q) == SQLITE_ROW) *n = sqlite3_column_int64(q, 0);
    else rc = dk_sql_fail(s, err, "count held cells");
    sqlite3_finalize(q);
    return rc;
}

/* ---- run_status and failed cells (`dashkit status`) ---- */

void dk_store_run_status_free(dk_store_run_status *r, size_t n) {
    for (size_t i = 0; r && i < n; i++) {
        free(r[i].name);
        free(r[i].config_path);
    }
    free(r);
}
static void dk_run_status_free_v(void *r, size_t n) { dk_store_run_status_free(r, n); }

static int dk_run_status_fill(sqlite3_stmt *q, void *elem) {
    dk_store_run_status *r = elem;
    r->run_id = sqlite3_column_int64(q, 0);
    if (dk_sql_col_text(q, 1, &r->name) || dk_sql_col_text(q, 2, &r->config_path)) return -1;
    r->started_at = dk_sql_col_real(q, 3);
    r->finished_at = dk_sql_col_real(q, 4);
    int64_t *cnt[] = {&r->cells, &r->pending, &r->running, &r->done, &r->failed};
    for (int i = 0; i < 5; i++) *cnt[i] = sqlite3_column_int64(q, 5 + i);
    return 0;
}

dk_status dk_store_run_status_read(dk_store *s, int64_t run_id, dk_store_run_status **out, size_t *n,
                                   dk_err *err) {
    return dk_read_rows(
        s,
        "SELECT run_id, name, config_path, started_at, finished_at, cells, pending, running, done, failed"
        " FROM run_status WHERE ?1 = 0 OR run_id = ?1 ORDER BY run_id",
        &DK_V_INT(run_id), 1, sizeof **out, dk_run_status_fill, dk_run_status_free_v, (void **)out, n,
        "read run_status", err);
}

void dk_store_failed_cells_free(dk_store_failed_cell *c, size_t n) {
    for (size_t i = 0; c && i < n; i++) {
        DK_FREE_ALL(c[i].task, c[i].task_options, c[i].method, c[i].params, c[i].error);
    }
    free(c);
}
static void dk_failed_cells_free_v(void *c, size_t n) { dk_store_failed_cells_free(c, n); }

static int dk_failed_cell_fill(sqlite3_stmt *q, void *elem) {
    dk_store_failed_cell *c = elem;
    c->id = sqlite3_column_int64(q, 0);
    char **txt[] = {&c->task, &c->task_options, &c->method, &c->params, &c->error};
    for (int i = 0; i < 5; i++)
        if (dk_sql_col_text(q, 1 + i, txt[i]) != 0) return -1;
    return 0;
}

dk_status dk_store_failed_cells_read(dk_store *s, int64_t run_id, dk_store_failed_cell **out, size_t *n,
                                     dk_err *err) {
    return dk_read_rows(
        s,
        "SELECT DISTINCT c.id, c.task, c.task_options, c.method, c.params, c.error FROM cells c"
        " JOIN run_cells rc ON rc.cell_id = c.id WHERE c.state = 'failed' AND (?1 = 0 OR rc.run_id = ?1)"
        " ORDER BY c.id",
        &DK_V_INT(run_id), 1, sizeof **out, dk_failed_cell_fill, dk_failed_cells_free_v, (void **)out, n,
        "read failed cells", err);
}

/* ---- a run's cells and their samples (`dashkit report`) ---- */

void dk_store_cell_rows_free(dk_store_cell_row *c, size_t n) {
    for (size_t i = 0; c && i < n; i++) {
        DK_FREE_ALL(c[i].model_sha256, c[i].model_path, c[i].model_arch, c[i].task, c[i].task_options,
                    c[i].task_key, c[i].method, c[i].params, c[i].state);
    }
    free(c);
}
static void dk_cell_rows_free_v(void *c, size_t n) { dk_store_cell_rows_free(c, n); }

static int dk_cell_row_fill(sqlite3_stmt *q, void *elem) {
    dk_store_cell_row *c = elem;
    c->id = sqlite3_column_int64(q, 0);
    char **txt[] = {&c->model_sha256, &c->model_path, &c->model_arch, &c->task, &c->task_options,
                    &c->task_key,     &c->method,     &c->params,     &c->state};
    static const int col[] = {1, 2, 3, 6, 7, 8, 9, 10, 11};
    for (int i = 0; i < 9; i++)
        if (dk_sql_col_text(q, col[i], txt[i]) != 0) return -1;
    c->model_n_layer = dk_sql_col_known(q, 4);
    c->model_n_params = dk_sql_col_known(q, 5);
    c->n_samples = sqlite3_column_int64(q, 12);
    c->length = dk_sql_col_real(q, 13);
    c->depth = dk_sql_col_real(q, 14);
    return 0;
}

dk_status dk_store_run_cells_read(dk_store *s, int64_t run_id, dk_store_cell_row **out, size_t *n,
                                  dk_err *err) {
    return dk_read_rows(
        s,
        "SELECT c.id, m.sha256, m.path, m.arch, m.n_layer, m.n_params, c.task, c.task_options,"
        " c.task_key, c.method, c.params, c.state, c.n_samples,"
        " json_extract(c.task_options, '$.length'), json_extract(c.task_options, '$.depth')"
        " FROM run_cells rc JOIN cells c ON c.id = rc.cell_id JOIN models m ON m.id = c.model_id"
        " WHERE rc.run_id = ? ORDER BY rc.ord",
        &DK_V_INT(run_id), 1, sizeof **out, dk_cell_row_fill, dk_cell_rows_free_v, (void **)out, n,
        "read cells", err);
}

void dk_store_samples_free(dk_store_samples *x) {
    for (size_t i = 0; x->context_key && i < x->n; i++) free(x->context_key[i]);
    double *arr[] = {x->score,     x->wall_dense_s, x->wall_method_s, x->flops_dense,    x->flops_method,
                     x->kl,        x->top1,         x->nll_delta,     x->context_tokens, x->active,
                     x->delta_min, x->delta_median, x->delta_max};
    for (size_t a = 0; a < sizeof arr / sizeof arr[0]; a++) free(arr[a]);
    free(x->row);
    free(x->sample_id);
    free(x->context_key);
    memset(x, 0, sizeof *x);
}

/* Rows and layers of the cell's samples; allocates x's arrays for them (per-layer ones NAN). */
static dk_status dk_samples_alloc(dk_store *s, int64_t cell_id, dk_store_samples *x, size_t *cap,
                                  dk_err *err) {
    sqlite3_stmt *q;
    dk_status rc = DK_SQL_PREPARE(
        s,
        "SELECT count(*), coalesce(max(json_array_length(active_tokens)), 0),"
        " coalesce((SELECT max(l.layer) + 1 FROM sample_layers l JOIN samples x ON x.id = l.sample_row"
        " WHERE x.cell_id = ?1), 0) FROM samples WHERE cell_id = ?1",
        &q, err, DK_V_INT(cell_id));
    if (rc) return rc;
    if (sqlite3_step(q) != SQLITE_ROW) {
        rc = dk_sql_fail(s, err, "count samples");
        sqlite3_finalize(q);
        return rc;
    }
    *cap = (size_t)sqlite3_column_int64(q, 0);
    int64_t L = sqlite3_column_int64(q, 1);
    if (sqlite3_column_int64(q, 2) > L) L = sqlite3_column_int64(q, 2);
    sqlite3_finalize(q);
    if (L > 65536)
        return dk_fail(err, DK_ERR_FORMAT, "cell %lld: %lld layers is absurd", (long long)cell_id,
                       (long long)L);
    x->n_layer = (int)L;
    size_t m = *cap ? *cap : 1, ml = m * (size_t)(L ? L : 1);
    double **arrs[] = {&x->score, &x->wall_dense_s, &x->wall_method_s, &x->flops_dense,   &x->flops_method,
                       &x->kl,    &x->top1,         &x->nll_delta,     &x->context_tokens};
    for (size_t a = 0; a < sizeof arrs / sizeof arrs[0]; a++)
        if (!(*arrs[a] = malloc(m * sizeof(double)))) return dk_fail(err, DK_ERR_NOMEM, "out of memory");
    if (!(x->row = malloc(m * sizeof *x->row)) || !(x->sample_id = malloc(m * sizeof *x->sample_id)) ||
        !(x->context_key = calloc(m, sizeof *x->context_key)))
        return dk_fail(err, DK_ERR_NOMEM, "out of memory");
    double **larrs[] = {&x->active, &x->delta_min, &x->delta_median, &x->delta_max};
    for (size_t a = 0; a < 4; a++) {
        if (!(*larrs[a] = malloc(ml * sizeof(double)))) return dk_fail(err, DK_ERR_NOMEM, "out of memory");
        for (size_t j = 0; j < ml; j++) (*larrs[a])[j] = NAN;
    }
    return DK_OK;
}

/* Row i of the samples query q (and its layer rows through ql) into x. */
static int dk_samples_fill(sqlite3_stmt *q, sqlite3_stmt *ql, dk_store_samples *x, size_t i) {
    size_t L = (size_t)x->n_layer, base = i * L;
    x->row[i] = sqlite3_column_int64(q, 0);
    double *num[] = {x->score,        x->wall_dense_s, x->wall_method_s, x->flops_dense,
                     x->flops_method, x->kl,           x->top1,          x->context_tokens};
    for (int k = 0; k < 8; k++) num[k][i] = dk_sql_col_real(q, 1 + k);
    x->nll_delta[i] = dk_sql_col_real(q, 10);
    x->sample_id[i] = sqlite3_column_int64(q, 11);
    if (dk_sql_col_text(q, 12, &x->context_key[i]) != 0) return -1;
    const char *act = (const char *)sqlite3_column_text(q, 9);
    cJSON *a = cJSON_Parse(act ? act : "[]");
    size_t l = 0;
    for (cJSON *it = cJSON_IsArray(a) ? a->child : NULL; it && l < L; it = it->next, l++)
        x->active[base + l] = cJSON_IsNumber(it) ? it->valuedouble : NAN;
    cJSON_Delete(a);
    sqlite3_reset(ql);
    sqlite3_bind_int64(ql, 1, x->row[i]);
    while (sqlite3_step(ql) == SQLITE_ROW) {
        int64_t ly = sqlite3_column_int64(ql, 0);
        if (ly < 0 || ly >= (int64_t)L) continue;
        x->delta_min[base + (size_t)ly] = dk_sql_col_real(ql, 1);
        x->delta_median[base + (size_t)ly] = dk_sql_col_real(ql, 2);
        x->delta_max[base + (size_t)ly] = dk_sql_col_real(ql, 3);
    }
    return 0;
}

dk_status dk_store_cell_samples_read(dk_store *s, int64_t cell_id, dk_store_samples *x, dk_err *err) {
    memset(x, 0, sizeof *x);
    sqlite3_stmt *q = NULL, *ql = NULL;
    size_t cap = 0;
    int step = SQLITE_DONE;
    dk_status rc = dk_samples_alloc(s, cell_id, x, &cap, err);
    if (!rc)
        rc = dk_sql_prepare(s,
                            "SELECT id, score, wall_dense_s, wall_method_s, flops_dense, flops_method, "
                            "kl_answer, top1_answer,"
                            " context_tokens, active_tokens, nll_method - nll_dense, sample_id, context_key"
                            " FROM samples WHERE cell_id = ? ORDER BY sample_id",
                            &q, err);
    if (!rc)
        rc = dk_sql_prepare(
            s, "SELECT layer, delta_min, delta_median, delta_max FROM sample_layers WHERE sample_row = ?",
            &ql, err);
    if (!rc) {
        sqlite3_bind_int64(q, 1, cell_id);
        while ((step = sqlite3_step(q)) == SQLITE_ROW && x->n < cap)
            if (dk_samples_fill(q, ql, x, x->n++) != 0) {
                rc = dk_fail(err, DK_ERR_NOMEM, "out of memory");
                break;
            }
        if (!rc && step != SQLITE_DONE && step != SQLITE_ROW)
            rc = dk_fail(err, DK_ERR_FORMAT, "reading samples of cell %lld: %s", (long long)cell_id,
                         sqlite3_errmsg(s->db));
    }
    sqlite3_finalize(q);
    sqlite3_finalize(ql);
    if (rc) dk_store_samples_free(x);
    return rc;
}

static int dk_score_fill(sqlite3_stmt *q, void *elem) {
    *(double *)elem = sqlite3_column_double(q, 0);
    return 0;
}
static void dk_scores_free_v(void *scores, size_t n) {
    (void)n;
    free(scores);
}

dk_status dk_store_dense_scores(dk_store *s, const char *model_sha256, const char *task_key,
                                int64_t n_samples, double **scores, size_t *n, dk_err *err) {
    const dk_sql_val params[] = {DK_V_TEXT(model_sha256), DK_V_TEXT(task_key), DK_V_INT(n_samples)};
    return dk_read_rows(
        s,
        "SELECT score FROM dense_results WHERE model_sha256 = ? AND task_key = ? AND sample_id < ?"
        " AND score IS NOT NULL ORDER BY sample_id",
        params, 3, sizeof **scores, dk_score_fill, dk_scores_free_v, (void **)scores, n, "read dense scores",
        err);
}

/* ---- the sample_rows view (`dashkit export`) ---- */

dk_status dk_store_sample_rows(dk_store *s, int64_t run_id, dk_store_row_fn fn, void *ctx, int64_t *n_rows,
                               dk_err *err) {
    sqlite3_stmt *q;
    *n_rows = 0;
    dk_status rc = DK_SQL_PREPARE(s,
                                  "SELECT * FROM sample_rows WHERE ?1 = 0 OR cell_id IN (SELECT cell_id FROM "
                                  "run_cells WHERE run_id = ?1)"
                                  " ORDER BY cell_id, sample_id",
                                  &q, err, DK_V_INT(run_id));
    if (rc) return rc;
    int nc = sqlite3_column_count(q), step = SQLITE_DONE;
    dk_store_value *v = calloc((size_t)(nc ? nc : 1), sizeof *v);
    if (!v) {
        sqlite3_finalize(q);
        return dk_fail(err, DK_ERR_NOMEM, "out of memory");
    }
    for (int c = 0; c < nc; c++) v[c].name = sqlite3_column_name(q, c);
    if (fn(ctx, v, nc, 1) != 0) rc = dk_fail(err, DK_ERR_IO, "%s: export stopped", s->path);
    while (!rc && (step = sqlite3_step(q)) == SQLITE_ROW) {
        for (int c = 0; c < nc; c++) {
            int t = sqlite3_column_type(q, c);
            v[c].type = t == SQLITE_INTEGER ? DK_STORE_INTEGER
                        : t == SQLITE_FLOAT ? DK_STORE_REAL
                        : t == SQLITE_NULL  ? DK_STORE_NULL
                                            : DK_STORE_TEXT;
            v[c].i = t == SQLITE_INTEGER ? sqlite3_column_int64(q, c) : 0;
            v[c].r = t == SQLITE_FLOAT ? sqlite3_column_double(q, c) : 0;
            v[c].text = (const char *)sqlite3_column_text(q, c);
        }
        if (fn(ctx, v, nc, 0) != 0) rc = dk_fail(err, DK_ERR_IO, "%s: export stopped", s->path);
        else (*n_rows)++;
    }
    if (!rc && step != SQLITE_DONE) rc = dk_sql_fail(s, err, "read sample_rows");
    free(v);
    sqlite3_finalize(q);
    return rc;
}
