/* store_analysis.c — the stored analyses of `dashkit analyze` (store.h, eval/sweep/analyze.h). */
#include "store_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- analyses ---- */

const double dk_analysis_q[DK_ANALYSIS_NQ] = {0.01, 0.10, 0.25, 0.50, 0.75, 0.90, 0.99};

void dk_analysis_free(dk_analysis *a) {
    if (!a) return;
    free(a->model_path); free(a->task); free(a->task_options);
    free(a->delta_q); free(a->rel_q); free(a->received_mean); free(a->received_spearman);
    free(a->recall); free(a->overlap);
    memset(a, 0, sizeof *a);
}

dk_status dk_store_analysis_put(dk_store *s, dk_analysis *a, dk_err *err) {
    sqlite3_stmt *q = NULL;
    dk_status rc = dk_sql_exec(s, "BEGIN IMMEDIATE", err);
    if (rc != DK_OK) return rc;
    if ((rc = dk_sql_prepare(s,
            "INSERT INTO analyses(run_id, model_sha256, model_path, task, task_options, n_samples, n_layer, ls, ls_layer,"
            " rho, delta_received_spearman, created_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)", &q, err)))
        goto fail;
    dk_sql_bind_known(q, 1, a->run_id > 0 ? a->run_id : -1);
    dk_sql_bind_text(q, 2, a->model_sha256);
    dk_sql_bind_text(q, 3, a->model_path);
    dk_sql_bind_text(q, 4, a->task);
    dk_sql_bind_text(q, 5, a->task_options);
    sqlite3_bind_int(q, 6, a->n_samples);
    sqlite3_bind_int(q, 7, a->n_layer);
    dk_sql_bind_real(q, 8, a->ls);
    sqlite3_bind_int(q, 9, a->ls_layer);
    dk_sql_bind_real(q, 10, a->rho);
    dk_sql_bind_real(q, 11, a->delta_received_spearman);
    a->created_at = dk_store_now();
    sqlite3_bind_double(q, 12, a->created_at);
    if (sqlite3_step(q) != SQLITE_DONE) { rc = dk_sql_fail(s, err, "insert analysis"); goto fail; }
    a->id = sqlite3_last_insert_rowid(s->db);
    sqlite3_finalize(q);
    q = NULL;
    if ((rc = dk_sql_prepare(s, "INSERT INTO analysis_layers VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", &q, err))) goto fail;
    for (int l = 0; l < a->n_layer; l++) {
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, a->id);
        sqlite3_bind_int(q, 2, l);
        for (int k = 0; k < DK_ANALYSIS_NQ; k++) {
            dk_sql_bind_real(q, 3 + k, a->delta_q[l * DK_ANALYSIS_NQ + k]);
            dk_sql_bind_real(q, 3 + DK_ANALYSIS_NQ + k, a->rel_q[l * DK_ANALYSIS_NQ + k]);
        }
        dk_sql_bind_real(q, 17, a->received_mean[l]);
        dk_sql_bind_real(q, 18, a->received_spearman[l]);
        if (sqlite3_step(q) != SQLITE_DONE) { rc = dk_sql_fail(s, err, "insert analysis layer"); goto fail; }
    }
    sqlite3_finalize(q);
    q = NULL;
    if ((rc = dk_sql_prepare(s, "INSERT INTO analysis_deciles VALUES(?,?,?,?)", &q, err))) goto fail;
    for (int k = 0; k < 10; k++) {
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, a->id);
        sqlite3_bind_int(q, 2, k);
        dk_sql_bind_real(q, 3, a->decile_delta[k]);
        dk_sql_bind_real(q, 4, a->decile_received[k]);
        if (sqlite3_step(q) != SQLITE_DONE) { rc = dk_sql_fail(s, err, "insert analysis decile"); goto fail; }
    }
    sqlite3_finalize(q);
    q = NULL;
    if ((rc = dk_sql_prepare(s, "INSERT INTO analysis_recall VALUES(?,?,?,?,?)", &q, err))) goto fail;
    for (int k = 0; k < a->n_recall; k++) {
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, a->id);
        dk_sql_bind_text(q, 2, a->recall[k].method);
        dk_sql_bind_real(q, 3, a->recall[k].rho);
        dk_sql_bind_real(q, 4, a->recall[k].recall);
        dk_sql_bind_real(q, 5, a->recall[k].kept_frac);
        if (sqlite3_step(q) != SQLITE_DONE) { rc = dk_sql_fail(s, err, "insert analysis recall"); goto fail; }
    }
    sqlite3_finalize(q);
    q = NULL;
    if ((rc = dk_sql_prepare(s, "INSERT INTO analysis_overlap VALUES(?,?,?,?)", &q, err))) goto fail;
    for (int k = 0; k < a->n_overlap; k++) {
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, a->id);
        dk_sql_bind_text(q, 2, a->overlap[k].a);
        dk_sql_bind_text(q, 3, a->overlap[k].b);
        dk_sql_bind_real(q, 4, a->overlap[k].jaccard);
        if (sqlite3_step(q) != SQLITE_DONE) { rc = dk_sql_fail(s, err, "insert analysis overlap"); goto fail; }
    }
    sqlite3_finalize(q);
    q = NULL;
    if ((rc = dk_sql_exec(s, "COMMIT", err)) != DK_OK) goto fail;
    return DK_OK;
fail:
    sqlite3_finalize(q);
    dk_sql_rollback(s);
    return rc;
}


dk_status dk_store_analysis_get(dk_store *s, int64_t id, const char *model_sha256, dk_analysis *a, int *found,
                                dk_err *err) {
    memset(a, 0, sizeof *a);
    *found = 0;
    sqlite3_stmt *q = NULL;
    dk_status rc = dk_sql_prepare(s,
        "SELECT id, coalesce(run_id, 0), model_sha256, model_path, task, task_options, n_samples, n_layer, ls, ls_layer,"
        " rho, delta_received_spearman, created_at FROM analyses"
        " WHERE (?1 > 0 AND id = ?1) OR (?1 <= 0 AND (?2 IS NULL OR model_sha256 = ?2)) ORDER BY id DESC LIMIT 1", &q, err);
    if (rc != DK_OK) return rc;
    sqlite3_bind_int64(q, 1, id);
    dk_sql_bind_text(q, 2, model_sha256);
    int step = sqlite3_step(q);
    if (step == SQLITE_DONE) { sqlite3_finalize(q); return DK_OK; }
    if (step != SQLITE_ROW) { rc = dk_sql_fail(s, err, "read analysis"); sqlite3_finalize(q); return rc; }
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
    q = NULL;
    if (a->n_layer < 0 || a->n_layer > 65536) {
        rc = dk_fail(err, DK_ERR_FORMAT, "%s: analysis %lld: %d layers is absurd", s->path, (long long)a->id, a->n_layer);
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
    if ((rc = dk_sql_prepare(s, "SELECT * FROM analysis_layers WHERE analysis_id = ? ORDER BY layer", &q, err))) goto fail;
    sqlite3_bind_int64(q, 1, a->id);
    while (sqlite3_step(q) == SQLITE_ROW) {
        int l = sqlite3_column_int(q, 1);
        if (l < 0 || l >= a->n_layer) continue;
        for (int k = 0; k < DK_ANALYSIS_NQ; k++) {
            a->delta_q[l * DK_ANALYSIS_NQ + k] = dk_sql_col_real(q, 2 + k);
            a->rel_q[l * DK_ANALYSIS_NQ + k] = dk_sql_col_real(q, 2 + DK_ANALYSIS_NQ + k);
        }
        a->received_mean[l] = dk_sql_col_real(q, 16);
        a->received_spearman[l] = dk_sql_col_real(q, 17);
    }
    sqlite3_finalize(q);
    q = NULL;
    for (int k = 0; k < 10; k++) a->decile_delta[k] = a->decile_received[k] = NAN;
    if ((rc = dk_sql_prepare(s, "SELECT decile, delta_mean, received_mean FROM analysis_deciles WHERE analysis_id = ?", &q, err)))
        goto fail;
    sqlite3_bind_int64(q, 1, a->id);
    while (sqlite3_step(q) == SQLITE_ROW) {
        int k = sqlite3_column_int(q, 0);
        if (k < 0 || k >= 10) continue;
        a->decile_delta[k] = dk_sql_col_real(q, 1);
        a->decile_received[k] = dk_sql_col_real(q, 2);
    }
    sqlite3_finalize(q);
    q = NULL;
    if ((rc = dk_sql_prepare(s, "SELECT method, rho, recall, kept_frac FROM analysis_recall WHERE analysis_id = ? ORDER BY method, rho",
                         &q, err)))
        goto fail;
    sqlite3_bind_int64(q, 1, a->id);
    while (sqlite3_step(q) == SQLITE_ROW) {
        dk_analysis_recall *p = realloc(a->recall, (size_t)(a->n_recall + 1) * sizeof *p);
        if (!p) { rc = dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", s->path); goto fail; }
        a->recall = p;
        dk_analysis_recall *r = &a->recall[a->n_recall++];
        snprintf(r->method, sizeof r->method, "%s", (const char *)sqlite3_column_text(q, 0));
        r->rho = dk_sql_col_real(q, 1);
        r->recall = dk_sql_col_real(q, 2);
        r->kept_frac = dk_sql_col_real(q, 3);
    }
    sqlite3_finalize(q);
    q = NULL;
    if ((rc = dk_sql_prepare(s, "SELECT method_a, method_b, jaccard FROM analysis_overlap WHERE analysis_id = ?"
                            " ORDER BY method_a, method_b", &q, err)))
        goto fail;
    sqlite3_bind_int64(q, 1, a->id);
    while (sqlite3_step(q) == SQLITE_ROW) {
        dk_analysis_overlap *p = realloc(a->overlap, (size_t)(a->n_overlap + 1) * sizeof *p);
        if (!p) { rc = dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", s->path); goto fail; }
        a->overlap = p;
        dk_analysis_overlap *o = &a->overlap[a->n_overlap++];
        snprintf(o->a, sizeof o->a, "%s", (const char *)sqlite3_column_text(q, 0));
        snprintf(o->b, sizeof o->b, "%s", (const char *)sqlite3_column_text(q, 1));
        o->jaccard = dk_sql_col_real(q, 2);
    }
    sqlite3_finalize(q);
    *found = 1;
    return DK_OK;
fail:
    sqlite3_finalize(q);
    dk_analysis_free(a);
    return rc;
}

dk_status dk_store_analysis_find(dk_store *s, const dk_analysis *a, int64_t *id, dk_err *err) {
    *id = 0;
    sqlite3_stmt *q;
    dk_status rc = dk_sql_prepare(s,
        "SELECT id FROM analyses WHERE model_sha256 = ? AND task = ? AND coalesce(task_options, '') = coalesce(?, '')"
        " AND n_samples = ? AND ls = ? AND rho = ? ORDER BY id DESC LIMIT 1", &q, err);
    if (rc != DK_OK) return rc;
    dk_sql_bind_text(q, 1, a->model_sha256);
    dk_sql_bind_text(q, 2, a->task);
    dk_sql_bind_text(q, 3, a->task_options);
    sqlite3_bind_int(q, 4, a->n_samples);
    sqlite3_bind_double(q, 5, a->ls);
    sqlite3_bind_double(q, 6, a->rho);
    int step = sqlite3_step(q);
    if (step == SQLITE_ROW) *id = sqlite3_column_int64(q, 0);
    else if (step != SQLITE_DONE) rc = dk_sql_fail(s, err, "find analysis");
    sqlite3_finalize(q);
    return rc;
}

