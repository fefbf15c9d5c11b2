/* store_read.c — reads of the store for the commands that show results (store.h): runs, counts. */
#include "store_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void dk_store_runs_free(dk_store_run *r, size_t n) {
    for (size_t i = 0; r && i < n; i++) {
        free(r[i].name); free(r[i].config_path); free(r[i].config_text); free(r[i].config_hash);
        free(r[i].git_rev); free(r[i].host); free(r[i].cpu); free(r[i].blas_core); free(r[i].command); free(r[i].shard);
    }
    free(r);
}

dk_status dk_store_runs_read(dk_store *s, dk_store_run **out, size_t *n, dk_err *err) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *q;
    dk_status rc = dk_sql_prepare(s,
        "SELECT id, name, config_path, config_text, config_hash, git_rev, host, cpu, blas_core, command, shard, threads,"
        " workers, n_cells, started_at, finished_at FROM runs ORDER BY id", &q, err);
    if (rc) return rc;
    size_t cap = 0;
    int step;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            dk_store_run *p = realloc(*out, cap * sizeof *p);
            if (!p) { rc = dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", s->path); break; }
            *out = p;
        }
        dk_store_run *r = &(*out)[(*n)++];
        memset(r, 0, sizeof *r);
        r->id = sqlite3_column_int64(q, 0);
        char **txt[] = {&r->name, &r->config_path, &r->config_text, &r->config_hash, &r->git_rev, &r->host, &r->cpu,
                        &r->blas_core, &r->command, &r->shard};
        for (int i = 0; i < 10; i++) *txt[i] = dk_sql_strdup(sqlite3_column_text(q, 1 + i));
        r->threads = sqlite3_column_int(q, 11);
        r->workers = sqlite3_column_int(q, 12);
        r->n_cells = sqlite3_column_int64(q, 13);
        r->started_at = sqlite3_column_double(q, 14);
        r->finished_at = sqlite3_column_type(q, 15) == SQLITE_NULL ? NAN : sqlite3_column_double(q, 15);
    }
    if (!rc && step != SQLITE_DONE) rc = dk_sql_fail(s, err, "read runs");
    sqlite3_finalize(q);
    if (rc) { dk_store_runs_free(*out, *n); *out = NULL; *n = 0; }
    return rc;
}

dk_status dk_store_run_counts(dk_store *s, int64_t run_id, int64_t counts[4], int64_t *samples, dk_err *err) {
    sqlite3_stmt *q;
    dk_status rc = dk_sql_prepare(s,
        "SELECT total(c.state = 'pending'), total(c.state = 'running'), total(c.state = 'done'), total(c.state = 'failed'),"
        " (SELECT count(*) FROM samples x JOIN run_cells y ON y.cell_id = x.cell_id WHERE y.run_id = ?1)"
        " FROM run_cells rc JOIN cells c ON c.id = rc.cell_id WHERE rc.run_id = ?1", &q, err);
    if (rc) return rc;
    sqlite3_bind_int64(q, 1, run_id);
    if (sqlite3_step(q) != SQLITE_ROW) rc = dk_sql_fail(s, err, "count cells");
    else {
        for (int i = 0; i < 4; i++) counts[i] = (int64_t)sqlite3_column_double(q, i);
        if (samples) *samples = sqlite3_column_int64(q, 4);
    }
    sqlite3_finalize(q);
    return rc;
}
