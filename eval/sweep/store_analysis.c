/* store_analysis.c — the stored analyses of `dashkit analyze` (store.h, eval/sweep/analyze.h). */
#include "store_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double dk_analysis_q[DK_ANALYSIS_NQ] = {0.01, 0.10, 0.25, 0.50, 0.75, 0.90, 0.99};

void dk_analysis_free(dk_analysis *a) {
    if (!a) return;
    DK_FREE_ALL(a->model_path, a->task, a->task_options, a->delta_q, a->rel_q, a->received_mean,
                a->received_spearman, a->recall, a->overlap);
    memset(a, 0, sizeof *a);
}

/* ---- the four per-analysis tables: row k of each bound for INSERT (after analysis_id), or one
 * SELECTed row filled into the analysis ---- */

static void dk_layer_bind(sqlite3_stmt *q, const dk_analysis *a, int l) {
    sqlite3_bind_int(q, 2, l);
    for (int k = 0; k < DK_ANALYSIS_NQ; k++) {
        dk_sql_bind_real(q, 3 + k, a->delta_q[l * DK_ANALYSIS_NQ + k]);
        dk_sql_bind_real(q, 3 + DK_ANALYSIS_NQ + k, a->rel_q[l * DK_ANALYSIS_NQ + k]);
    }
    dk_sql_bind_real(q, 17, a->received_mean[l]);
    dk_sql_bind_real(q, 18, a->received_spearman[l]);
}

static int dk_layer_fill(sqlite3_stmt *q, dk_analysis *a) {
    int l = sqlite3_column_int(q, 1);
    if (l < 0 || l >= a->n_layer) return 0;
    for (int k = 0; k < DK_ANALYSIS_NQ; k++) {
        a->delta_q[l * DK_ANALYSIS_NQ + k] = dk_sql_col_real(q, 2 + k);
        a->rel_q[l * DK_ANALYSIS_NQ + k] = dk_sql_col_real(q, 2 + DK_ANALYSIS_NQ + k);
    }
    a->received_mean[l] = dk_sql_col_real(q, 16);
    a->received_spearman[l] = dk_sql_col_real(q, 17);
    return 0;
}

static void dk_decile_bind(sqlite3_stmt *q, const dk_analysis *a, int k) {
    sqlite3_bind_int(q, 2, k);
    dk_sql_bind_real(q, 3, a->decile_delta[k]);
    dk_sql_bind_real(q, 4, a->decile_received[k]);
}

static int dk_decile_fill(sqlite3_stmt *q, dk_analysis *a) {
    int k = sqlite3_column_int(q, 0);
    if (k < 0 || k >= 10) return 0;
    a->decile_delta[k] = dk_sql_col_real(q, 1);
    a->decile_received[k] = dk_sql_col_real(q, 2);
    return 0;
}

static void dk_recall_bind(sqlite3_stmt *q, const dk_analysis *a, int k) {
    DK_SQL_BIND(q, 2, DK_V_TEXT(a->recall[k].method), DK_V_REAL(a->recall[k].rho),
                DK_V_REAL(a->recall[k].recall), DK_V_REAL(a->recall[k].kept_frac));
}

/* One more zeroed element at the end of the array *arr of *n elements of elem bytes; NULL when out
 * of memory (the array unchanged). */
static void *dk_append(void **arr, int *n, size_t elem) {
    char *p = realloc(*arr, (size_t)(*n + 1) * elem);
    if (!p) return NULL;
    *arr = p;
    p += (size_t)(*n)++ * elem;
    memset(p, 0, elem);
    return p;
}

static int dk_recall_fill(sqlite3_stmt *q, dk_analysis *a) {
    dk_analysis_recall *r = dk_append((void **)&a->recall, &a->n_recall, sizeof *r);
    if (!r) return -1;
    snprintf(r->method, sizeof r->method, "%s", (const char *)sqlite3_column_text(q, 0));
    r->rho = dk_sql_col_real(q, 1);
    r->recall = dk_sql_col_real(q, 2);
    r->kept_frac = dk_sql_col_real(q, 3);
    return 0;
}

static void dk_overlap_bind(sqlite3_stmt *q, const dk_analysis *a, int k) {
    dk_sql_bind_text(q, 2, a->overlap[k].a);
    dk_sql_bind_text(q, 3, a->overlap[k].b);
    dk_sql_bind_real(q, 4, a->overlap[k].jaccard);
}

static int dk_overlap_fill(sqlite3_stmt *q, dk_analysis *a) {
    dk_analysis_overlap *o = dk_append((void **)&a->overlap, &a->n_overlap, sizeof *o);
    if (!o) return -1;
    snprintf(o->a, sizeof o->a, "%s", (const char *)sqlite3_column_text(q, 0));
    snprintf(o->b, sizeof o->b, "%s", (const char *)sqlite3_column_text(q, 1));
    o->jaccard = dk_sql_col_real(q, 2);
    return 0;
}

typedef struct {
    const char *insert, *select, *what;
    void (*bind)(sqlite3_stmt *q, const dk_analysis *a, int k);
    int (*fill)(sqlite3_stmt *q, dk_analysis *a); /* nonzero: out of memory */
} dk_analysis_table;

enum { DK_AN_LAYERS, DK_AN_DECILES, DK_AN_RECALL, DK_AN_OVERLAP, DK_AN_TABLES };

static const dk_analysis_table dk_analysis_tables[DK_AN_TABLES] = {
    {"INSERT INTO analysis_layers VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
     "SELECT * FROM analysis_layers WHERE analysis_id = ? ORDER BY layer", "analysis layer", dk_layer_bind,
     dk_layer_fill},
    {"INSERT INTO analysis_deciles VALUES(?,?,?,?)",
     "SELECT decile, delta_mean, received_mean FROM analysis_deciles WHERE analysis_id = ?",
     "analysis decile", dk_decile_bind, dk_decile_fill},
    {"INSERT INTO analysis_recall VALUES(?,?,?,?,?)",
     "SELECT method, rho, recall, kept_frac FROM analysis_recall WHERE analysis_id = ? ORDER BY method, rho",
     "analysis recall", dk_recall_bind, dk_recall_fill},
    {"INSERT INTO analysis_overlap VALUES(?,?,?,?)",
     "SELECT method_a, method_b, jaccard FROM analysis_overlap WHERE analysis_id = ? ORDER BY method_a, "
     "method_b",
     "analysis overlap", dk_overlap_bind, dk_overlap_fill},
};

/* Rows 0..n of table t for analysis a->id. */
static dk_status dk_analysis_rows_put(dk_store *s, const dk_analysis *a, const dk_analysis_table *t, int n,
                                      dk_err *err) {
    sqlite3_stmt *q;
    dk_status rc = dk_sql_prepare(s, t->insert, &q, err);
    for (int k = 0; !rc && k < n; k++) {
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, a->id);
        t->bind(q, a, k);
        if (sqlite3_step(q) != SQLITE_DONE) {
            char what[64];
            snprintf(what, sizeof what, "insert %s", t->what);
            rc = dk_sql_fail(s, err, what);
        }
    }
    sqlite3_finalize(q);
    return rc;
}

static dk_status dk_analysis_rows_get(dk_store *s, dk_analysis *a, const dk_analysis_table *t, dk_err *err) {
    sqlite3_stmt *q;
    dk_status rc = DK_SQL_PREPARE(s, t->select, &q, err, DK_V_INT(a->id));
    if (rc) return rc;
    while (!rc && sqlite3_step(q) == SQLITE_ROW)
        if (t->fill(q, a) != 0) rc = dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", s->path);
    sqlite3_finalize(q);
    return rc;
}

static dk_status dk_analysis_head_put(dk_store *s, dk_analysis *a, dk_err *err) {
    sqlite3_stmt *q;
    dk_status rc = dk_sql_prepare(
        s,
        "INSERT INTO analyses(run_id, model_sha256, model_path, task, task_options, n_samples, n_layer, ls, "
        "ls_layer,"
        " rho, delta_received_spearman, created_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
        &q, err);
    if (rc) return rc;
    a->created_at = dk_store_now();
    DK_SQL_BIND(q, 1, DK_V_KNOWN(a->run_id > 0 ? a->run_id : -1), DK_V_TEXT(a->model_sha256),
                DK_V_TEXT(a->model_path), DK_V_TEXT(a->task), DK_V_TEXT(a->task_options),
                DK_V_INT(a->n_samples), DK_V_INT(a->n_layer), DK_V_REAL(a->ls), DK_V_INT(a->ls_layer),
                DK_V_REAL(a->rho), DK_V_REAL(a->delta_received_spearman), DK_V_DOUBLE(a->created_at));
    if (sqlite3_step(q) != SQLITE_DONE) rc = dk_sql_fail(s, err, "insert analysis");
    else a->id = sqlite3_last_insert_rowid(s->db);
    sqlite3_finalize(q);
    return rc;
}

dk_status dk_store_analysis_put(dk_store *s, dk_analysis *a, dk_err *err) {
    dk_status rc = dk_sql_exec(s, "BEGIN IMMEDIATE", err);
    if (rc != DK_OK) return rc;
    const int n[DK_AN_TABLES] = {a->n_layer, 10, a->n_recall, a->n_overlap};
    rc = dk_analysis_head_put(s, a, err);
    for (int t = 0; !rc && t < DK_AN_TABLES; t++)
        rc = dk_analysis_rows_put(s, a, &dk_analysis_tables[t], n[t], err);
    return dk_sql_end(s, rc, err);
}

/* The analyses row of id (> 0) or the latest of model_sha256 (NULL: of any model); *found = 0 when none. */
static dk_status dk_analysis_head_get(dk_store *s, int64_t id, const char *model_sha256, dk_analysis *a,
                                      int *found, dk_err *err) {
    sqlite3_stmt *q;
    dk_status rc = DK_SQL_PREPARE(s,
                                  "SELECT id, coalesce(run_id, 0), model_sha256, model_path, task, "
                                  "task_options, n_samples, n_layer, ls, ls_layer,"
                                  " rho, delta_received_spearman, created_at FROM analyses"
                                  " WHERE (?1 > 0 AND id = ?1) OR (?1 <= 0 AND (?2 IS NULL OR model_sha256 = "
                                  "?2)) ORDER BY id DESC LIMIT 1",
                                  &q, err, DK_V_INT(id), DK_V_TEXT(model_sha256));
    if (rc != DK_OK) return rc;
    int step = sqlite3_step(q);
    if (step != SQLITE_ROW) {
        if (step != SQLITE_DONE) rc = dk_sql_fail(s, err, "read analysis");
        sqlite3_finalize(q);
        return rc;
    }
    *found = 1;
    a->id = sqlite3_column_int64(q, 0);
    a->run_id = sqlite3_column_int64(q, 1);
    snprintf(a->model_sha256, sizeof a->model_sha256, "%s", (const char *)sqlite3_column_text(q, 2));
    a->model_path = dk_sql_strdup(sqlite3_column_text(q, 3));
    a->task = dk_sql_strdup(sqlite3_column_text(q, 4));
    a->task_options = dk_sql_strdup(sqlite3_column_text(q, 5));
    a->n_samples = sqlite3_column_int(q, 6);
    a->n_layer = sqlite3_column_int(q, 7);
    a->ls = dk_sql_col_real(q, 8);
    a->ls_layer = sqlite3_column_int(q, 9);
    a->rho = dk_sql_col_real(q, 10);
    a->delta_received_spearman = dk_sql_col_real(q, 11);
    a->created_at = dk_sql_col_real(q, 12);
    sqlite3_finalize(q);
    return DK_OK;
}

dk_status dk_store_analysis_get(dk_store *s, int64_t id, const char *model_sha256, dk_analysis *a, int *found,
                                dk_err *err) {
    memset(a, 0, sizeof *a);
    *found = 0;
    dk_status rc = dk_analysis_head_get(s, id, model_sha256, a, found, err);
    if (rc != DK_OK || !*found) return rc;
    *found = 0;
    if (a->n_layer < 0 || a->n_layer > 65536) {
        rc = dk_fail(err, DK_ERR_FORMAT, "%s: analysis %lld: %d layers is absurd", s->path, (long long)a->id,
                     a->n_layer);
        goto fail;
    }
    size_t L = (size_t)(a->n_layer ? a->n_layer : 1);
    a->delta_q = malloc(L * DK_ANALYSIS_NQ * sizeof(double));
    a->rel_q = malloc(L * DK_ANALYSIS_NQ * sizeof(double));
    a->received_mean = malloc(L * sizeof(double));
    a->received_spearman = malloc(L * sizeof(double));
    if (!a->delta_q || !a->rel_q || !a->received_mean || !a->received_spearman) {
        rc = dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", s->path);
        goto fail;
    }
    for (size_t i = 0; i < L * DK_ANALYSIS_NQ; i++) a->delta_q[i] = a->rel_q[i] = NAN;
    for (size_t i = 0; i < L; i++) a->received_mean[i] = a->received_spearman[i] = NAN;
    for (int k = 0; k < 10; k++) a->decile_delta[k] = a->decile_received[k] = NAN;
    for (int t = 0; t < DK_AN_TABLES; t++)
        if ((rc = dk_analysis_rows_get(s, a, &dk_analysis_tables[t], err)) != DK_OK) goto fail;
    *found = 1;
    return DK_OK;
fail:
    dk_analysis_free(a);
    return rc;
}

dk_status dk_store_analysis_find(dk_store *s, const dk_analysis *a, int64_t *id, dk_err *err) {
    *id = 0;
    sqlite3_stmt *q;
    dk_status rc = DK_SQL_PREPARE(s,
                                  "SELECT id FROM analyses WHERE model_sha256 = ? AND task = ? AND "
                                  "coalesce(task_options, '') = coalesce(?, '')"
                                  " AND n_samples = ? AND ls = ? AND rho = ? ORDER BY id DESC LIMIT 1",
                                  &q, err, DK_V_TEXT(a->model_sha256), DK_V_TEXT(a->task),
                                  DK_V_TEXT(a->task_options), DK_V_INT(a->n_samples), DK_V_DOUBLE(a->ls),
                                  DK_V_DOUBLE(a->rho));
    if (rc != DK_OK) return rc;
    int step = sqlite3_step(q);
    if (step == SQLITE_ROW) *id = sqlite3_column_int64(q, 0);
    else if (step != SQLITE_DONE) rc = dk_sql_fail(s, err, "find analysis");
    sqlite3_finalize(q);
    return rc;
}
