/* store.c — the SQLite results store: its schema (the migrations below are the only place tables,
 * views and triggers are created), open/close, the SQL helpers its other files share (store_int.h)
 * and transactions. The store is split by job, one public header (store.h, which documents the
 * schema and its invariants):
 *   store.c           schema, migrations, open/close, helpers
 *   store_write.c     the worker protocol: runs, models, cells and claims, samples, dense results
 *   store_read.c      reads for the commands that show results (report, status, export, runner)
 *   store_merge.c     uniting shard stores
 *   store_analysis.c  `dashkit analyze` results
 * Only these files (and tests) include sqlite3.h: every SQL statement of the project lives here. */
#include "store_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* ---- schema migrations: entry i upgrades user_version i to i+1; never edit a shipped one ---- */

/* Column lists the views repeat across migrations, so each view is written once: the text of
 * every migration stays byte for byte as shipped (the macros are pasted string literals). */
/* the task and method columns of a cell, as every view shows them */
#define DK_VIEW_CELL_COLUMNS                                                                            \
    "  c.task, c.task_options,"                                                                         \
    "  json_extract(c.task_options, '$.length') AS length, json_extract(c.task_options, '$.depth') AS " \
    "depth,"                                                                                            \
    "  c.method, c.params,"                                                                             \
    "  json_extract(c.params, '$.rho') AS rho, json_extract(c.params, '$.ls') AS ls,"                   \
    "  json_extract(c.params, '$.tau') AS tau, json_extract(c.params, '$.keep') AS keep,"
/* view cell_summary (migrations 0 -> 1 and 1 -> 2) up to its fidelity columns */
#define DK_CELL_SUMMARY_COLUMNS                                                                    \
    "  c.id AS cell_id, c.run_id, m.path AS model, m.sha256 AS model_sha256," DK_VIEW_CELL_COLUMNS \
    "  c.state, c.n_samples, count(s.id) AS n, avg(s.score) AS mean_score,"                        \
    "  sum(s.flops_dense) AS flops_dense, sum(s.flops_method) AS flops_method,"                    \
    "  CAST(sum(s.flops_method) AS REAL) / NULLIF(sum(s.flops_dense), 0) AS flops_ratio,"          \
    "  CAST(sum(s.flops_dense) AS REAL) / NULLIF(sum(s.flops_method), 0) AS flops_speedup,"        \
    "  sum(s.wall_dense_s) / NULLIF(sum(s.wall_method_s), 0) AS wall_speedup,"
/* view sample_rows (migrations 0 -> 1, 1 -> 2, 2 -> 3) up to its decode and score columns */
#define DK_SAMPLE_ROWS_HEAD                                                                                 \
    "  c.id AS cell_id, c.key AS cell_key, m.path AS model, m.sha256 AS model_sha256," DK_VIEW_CELL_COLUMNS \
    "  s.sample_id, s.sample_key, s.prompt_tokens, s.context_tokens, s.question_tokens, s.gen_tokens,"      \
    "  s.active_tokens, s.flops_dense, s.flops_method,"                                                     \
    "  CAST(s.flops_method AS REAL) / NULLIF(s.flops_dense, 0) AS flops_ratio,"                             \
    "  s.wall_dense_s, s.wall_method_s, s.wall_dense_s / NULLIF(s.wall_method_s, 0) AS wall_speedup,"
/* view sample_rows of migrations 1 -> 2 and 2 -> 3, up to the first-row fidelity columns */
#define DK_SAMPLE_ROWS_COLUMNS                                                                              \
    DK_SAMPLE_ROWS_HEAD                                                                                     \
    "  s.wall_decode_s, s.prediction, s.answers, s.score,"                                                  \
    "  s.kl_answer AS kl, s.kl_answer_max AS kl_max, s.top1_answer AS top1, s.nll_method - s.nll_dense AS " \
    "nll_delta,"

static const char *const dk_store_migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE runs ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  config_path TEXT NOT NULL,"
    "  config_text TEXT NOT NULL,"
    "  config_hash TEXT NOT NULL,"
    "  git_rev TEXT, host TEXT, cpu TEXT, blas_core TEXT,"
    "  threads INTEGER, workers INTEGER, command TEXT, n_cells INTEGER,"
    "  started_at REAL NOT NULL, finished_at REAL);"
    "CREATE TABLE models ("
    "  id INTEGER PRIMARY KEY,"
    "  sha256 TEXT NOT NULL UNIQUE CHECK (length(sha256) = 64),"
    "  path TEXT NOT NULL, arch TEXT,"
    "  n_layer INTEGER, n_embd INTEGER, n_head INTEGER, n_head_kv INTEGER, n_ff INTEGER,"
    "  n_vocab INTEGER, n_ctx INTEGER, n_params INTEGER, file_bytes INTEGER,"
    "  added_at REAL NOT NULL);"
    "CREATE TABLE cells ("
    "  id INTEGER PRIMARY KEY,"
    "  key TEXT NOT NULL UNIQUE,"
    "  identity TEXT NOT NULL CHECK (json_valid(identity)),"
    "  run_id INTEGER NOT NULL REFERENCES runs(id),"
    "  model_id INTEGER NOT NULL REFERENCES models(id),"
    "  task TEXT NOT NULL,"
    "  task_options TEXT NOT NULL CHECK (json_valid(task_options)),"
    "  task_key TEXT NOT NULL,"
    "  method TEXT NOT NULL,"
    "  params TEXT NOT NULL CHECK (json_valid(params)),"
    "  n_samples INTEGER NOT NULL CHECK (n_samples >= 1),"
    "  seed INTEGER NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','running','done','failed')),"
    "  error TEXT,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  worker TEXT, worker_host TEXT, worker_pid INTEGER, worker_start INTEGER,"
    "  lease_until REAL,"
    "  created_at REAL NOT NULL, claimed_at REAL, started_at REAL, finished_at REAL,"
    "  wall_s REAL NOT NULL DEFAULT 0);"
    "CREATE INDEX cells_state ON cells(state);"
    "CREATE TABLE run_cells ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id),"
    "  cell_id INTEGER NOT NULL REFERENCES cells(id),"
    "  ord INTEGER NOT NULL,"
    "  PRIMARY KEY (run_id, cell_id));"
    "CREATE INDEX run_cells_ord ON run_cells(run_id, ord);"
    "CREATE TABLE samples ("
    "  id INTEGER PRIMARY KEY,"
    "  cell_id INTEGER NOT NULL REFERENCES cells(id),"
    "  sample_id INTEGER NOT NULL CHECK (sample_id >= 0),"
    "  sample_key TEXT,"
    "  prompt_tokens INTEGER NOT NULL CHECK (prompt_tokens >= 0),"
    "  context_tokens INTEGER NOT NULL CHECK (context_tokens >= 0),"
    "  question_tokens INTEGER NOT NULL CHECK (question_tokens >= 0),"
    "  gen_tokens INTEGER NOT NULL CHECK (gen_tokens >= 0),"
    "  active_tokens TEXT NOT NULL CHECK (json_valid(active_tokens) AND json_type(active_tokens) = 'array'),"
    "  flops_dense INTEGER NOT NULL CHECK (flops_dense >= 0),"
    "  flops_method INTEGER NOT NULL CHECK (flops_method >= 0),"
    "  flops_dense_parts TEXT CHECK (flops_dense_parts IS NULL OR json_valid(flops_dense_parts)),"
    "  flops_method_parts TEXT CHECK (flops_method_parts IS NULL OR json_valid(flops_method_parts)),"
    "  wall_dense_s REAL, wall_method_s REAL, wall_decode_s REAL,"
    "  prediction TEXT,"
    "  answers TEXT CHECK (answers IS NULL OR json_valid(answers)),"
    "  score REAL, kl REAL, kl_answer REAL,"
    "  top1 INTEGER CHECK (top1 IS NULL OR top1 IN (0, 1)),"
    "  worker TEXT, created_at REAL NOT NULL,"
    "  UNIQUE (cell_id, sample_id));"
    "CREATE TABLE sample_layers ("
    "  sample_row INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,"
    "  layer INTEGER NOT NULL CHECK (layer >= 0),"
    "  delta_min REAL, delta_median REAL, delta_max REAL,"
    "  flops INTEGER NOT NULL CHECK (flops >= 0),"
    "  wall_s REAL,"
    "  PRIMARY KEY (sample_row, layer)) WITHOUT ROWID;"
    "CREATE TABLE dense_results ("
    "  model_sha256 TEXT NOT NULL, task_key TEXT NOT NULL, sample_id INTEGER NOT NULL,"
    "  task TEXT NOT NULL, task_options TEXT NOT NULL,"
    "  prompt_tokens INTEGER NOT NULL, flops INTEGER NOT NULL CHECK (flops >= 0),"
    "  flops_parts TEXT CHECK (flops_parts IS NULL OR json_valid(flops_parts)),"
    "  wall_s REAL NOT NULL, prediction TEXT, score REAL,"
    "  n_vocab INTEGER, n_logit_rows INTEGER, logits BLOB,"
    "  created_at REAL NOT NULL,"
    "  PRIMARY KEY (model_sha256, task_key, sample_id));"
    "CREATE TRIGGER cells_done_needs_all_samples BEFORE UPDATE OF state ON cells"
    "  WHEN NEW.state = 'done' AND (SELECT count(*) FROM samples WHERE cell_id = NEW.id) <> NEW.n_samples"
    "  BEGIN SELECT RAISE(ABORT, 'cell is not complete: sample rows missing'); END;"
    "CREATE VIEW cell_summary AS SELECT" DK_CELL_SUMMARY_COLUMNS
    "  avg(s.kl) AS mean_kl, avg(s.top1) AS top1_agreement, c.wall_s"
    "  FROM cells c JOIN models m ON m.id = c.model_id LEFT JOIN samples s ON s.cell_id = c.id"
    "  GROUP BY c.id;"
    "CREATE VIEW run_status AS SELECT"
    "  r.id AS run_id, r.name, r.config_path, r.started_at, r.finished_at,"
    "  count(c.id) AS cells,"
    "  coalesce(sum(c.state = 'pending'), 0) AS pending, coalesce(sum(c.state = 'running'), 0) AS running,"
    "  coalesce(sum(c.state = 'done'), 0) AS done, coalesce(sum(c.state = 'failed'), 0) AS failed"
    "  FROM runs r LEFT JOIN run_cells rc ON rc.run_id = r.id LEFT JOIN cells c ON c.id = rc.cell_id"
    "  GROUP BY r.id;"
    "CREATE VIEW sample_rows AS SELECT" DK_SAMPLE_ROWS_HEAD
    "  s.wall_decode_s, s.prediction, s.answers, s.score, s.kl, s.kl_answer, s.top1"
    "  FROM samples s JOIN cells c ON c.id = s.cell_id JOIN models m ON m.id = c.model_id;",
    /* 1 -> 2: fidelity over the answer (issue 14). Additive: samples keeps kl / top1 (first answer
     * row) and kl_answer (mean over the answer rows) and gains the answer's max KL, top-1 rate and
     * NLLs; the views now show the answer-level figures as kl / top1 / nll_delta and the first
     * row as kl_first / top1_first. Rows written before have NULL in the new columns. */
    "ALTER TABLE samples ADD COLUMN kl_answer_max REAL;"
    "ALTER TABLE samples ADD COLUMN top1_answer REAL CHECK (top1_answer IS NULL OR (top1_answer >= 0 AND "
    "top1_answer <= 1));"
    "ALTER TABLE samples ADD COLUMN nll_dense REAL;"
    "ALTER TABLE samples ADD COLUMN nll_method REAL;"
    "DROP VIEW cell_summary;"
    "CREATE VIEW cell_summary AS SELECT" DK_CELL_SUMMARY_COLUMNS
    "  avg(s.kl_answer) AS kl, max(s.kl_answer_max) AS kl_max, avg(s.top1_answer) AS top1,"
    "  avg(s.nll_method - s.nll_dense) AS nll_delta, avg(s.kl) AS kl_first, avg(s.top1) AS top1_first, "
    "c.wall_s"
    "  FROM cells c JOIN models m ON m.id = c.model_id LEFT JOIN samples s ON s.cell_id = c.id"
    "  GROUP BY c.id;"
    "DROP VIEW sample_rows;"
    "CREATE VIEW sample_rows AS SELECT" DK_SAMPLE_ROWS_COLUMNS "  s.kl AS kl_first, s.top1 AS top1_first"
    "  FROM samples s JOIN cells c ON c.id = s.cell_id JOIN models m ON m.id = c.model_id;",
    /* 2 -> 3: the shared-context key of a sample (issue 14: cluster bootstrap) */
    "ALTER TABLE samples ADD COLUMN context_key TEXT;"
    "DROP VIEW sample_rows;"
    "CREATE VIEW sample_rows AS SELECT" DK_SAMPLE_ROWS_COLUMNS
    "  s.kl AS kl_first, s.top1 AS top1_first, s.context_key"
    "  FROM samples s JOIN cells c ON c.id = s.cell_id JOIN models m ON m.id = c.model_id;",
    /* 3 -> 4: aggregates of `dashkit analyze` (issue 14) */
    "CREATE TABLE analyses ("
    "  id INTEGER PRIMARY KEY, run_id INTEGER, model_sha256 TEXT NOT NULL, model_path TEXT, task TEXT NOT "
    "NULL,"
    "  task_options TEXT, n_samples INTEGER NOT NULL, n_layer INTEGER NOT NULL, ls REAL, ls_layer INTEGER, "
    "rho REAL,"
    "  delta_received_spearman REAL, created_at REAL NOT NULL);"
    "CREATE TABLE analysis_layers ("
    "  analysis_id INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE, layer INTEGER NOT NULL,"
    "  delta_p01 REAL, delta_p10 REAL, delta_p25 REAL, delta_p50 REAL, delta_p75 REAL, delta_p90 REAL, "
    "delta_p99 REAL,"
    "  rel_p01 REAL, rel_p10 REAL, rel_p25 REAL, rel_p50 REAL, rel_p75 REAL, rel_p90 REAL, rel_p99 REAL,"
    "  received_mean REAL, received_spearman REAL, PRIMARY KEY (analysis_id, layer)) WITHOUT ROWID;"
    "CREATE TABLE analysis_deciles ("
    "  analysis_id INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE, decile INTEGER NOT NULL,"
    "  delta_mean REAL, received_mean REAL, PRIMARY KEY (analysis_id, decile)) WITHOUT ROWID;"
    "CREATE TABLE analysis_recall ("
    "  analysis_id INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE, method TEXT NOT NULL, rho "
    "REAL NOT NULL,"
    "  recall REAL, kept_frac REAL, PRIMARY KEY (analysis_id, method, rho)) WITHOUT ROWID;"
    "CREATE TABLE analysis_overlap ("
    "  analysis_id INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE, method_a TEXT NOT NULL,"
    "  method_b TEXT NOT NULL, jaccard REAL, PRIMARY KEY (analysis_id, method_a, method_b)) WITHOUT ROWID;",
    /* 4 -> 5: sharded runs (`run --shard`) and the shard runs a merged run was united from */
    "ALTER TABLE runs ADD COLUMN shard TEXT;"
    "CREATE TABLE run_shards ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id),"
    "  source TEXT NOT NULL, shard TEXT, src_run_id INTEGER NOT NULL, config_hash TEXT NOT NULL,"
    "  git_rev TEXT, host TEXT NOT NULL DEFAULT '', cpu TEXT, blas_core TEXT, threads INTEGER, workers "
    "INTEGER,"
    "  command TEXT, started_at REAL NOT NULL, finished_at REAL,"
    "  PRIMARY KEY (run_id, host, src_run_id, started_at));",
};

#define DK_N_MIGRATIONS ((int)(sizeof dk_store_migrations / sizeof dk_store_migrations[0]))
_Static_assert(DK_N_MIGRATIONS == DK_STORE_SCHEMA_VERSION, "one migration per schema version");

/* ---- small helpers ---- */

const char *dk_cell_state_name(dk_cell_state s) {
    switch (s) {
    case DK_CELL_PENDING: return "pending";
    case DK_CELL_RUNNING: return "running";
    case DK_CELL_DONE: return "done";
    case DK_CELL_FAILED: return "failed";
    }
    return "?";
}

dk_cell_state dk_cell_state_parse(const unsigned char *s) {
    if (!s) return DK_CELL_PENDING;
    if (!strcmp((const char *)s, "running")) return DK_CELL_RUNNING;
    if (!strcmp((const char *)s, "done")) return DK_CELL_DONE;
    if (!strcmp((const char *)s, "failed")) return DK_CELL_FAILED;
    return DK_CELL_PENDING;
}

double dk_store_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

dk_status dk_sql_fail(dk_store *s, dk_err *err, const char *what) {
    int code = sqlite3_errcode(s->db);
    dk_status st = (code == SQLITE_CONSTRAINT || (code & 0xff) == SQLITE_CONSTRAINT) ? DK_ERR_ARG : DK_ERR_IO;
    return dk_fail(err, st, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

dk_status dk_sql_exec(dk_store *s, const char *sql, dk_err *err) {
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) return dk_sql_fail(s, err, sql);
    return DK_OK;
}

dk_status dk_sql_prepare(dk_store *s, const char *sql, sqlite3_stmt **st, dk_err *err) {
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return dk_sql_fail(s, err, "prepare");
    }
    return DK_OK;
}

void dk_sql_rollback(dk_store *s) {
    if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

dk_status dk_sql_end(dk_store *s, dk_status rc, dk_err *err) {
    if (rc == DK_OK) return dk_store_commit(s, err);
    dk_sql_rollback(s);
    return rc;
}

void dk_sql_bind_text(sqlite3_stmt *st, int i, const char *v) {
    if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, i);
}
void dk_sql_bind_real(sqlite3_stmt *st, int i, double v) {
    if (isnan(v)) sqlite3_bind_null(st, i);
    else sqlite3_bind_double(st, i, v);
}
void dk_sql_bind_known(sqlite3_stmt *st, int i, int64_t v) { /* < 0 = unknown */
    if (v < 0) sqlite3_bind_null(st, i);
    else sqlite3_bind_int64(st, i, v);
}

dk_status dk_sql_prepare_bind(dk_store *s, const char *sql, sqlite3_stmt **st, dk_err *err,
                              const dk_sql_val *v, size_t n) {
    dk_status rc = dk_sql_prepare(s, sql, st, err);
    if (rc == DK_OK) dk_sql_bind_all(*st, 1, v, n);
    return rc;
}

void dk_sql_bind_all(sqlite3_stmt *st, int first, const dk_sql_val *v, size_t n) {
    for (size_t k = 0; k < n; k++) {
        int i = first + (int)k;
        switch (v[k].kind) {
        case DK_SQL_VAL_TEXT: dk_sql_bind_text(st, i, v[k].v.t); break;
        case DK_SQL_VAL_INT: sqlite3_bind_int64(st, i, v[k].v.i); break;
        case DK_SQL_VAL_DOUBLE: sqlite3_bind_double(st, i, v[k].v.d); break;
        case DK_SQL_VAL_REAL: dk_sql_bind_real(st, i, v[k].v.d); break;
        case DK_SQL_VAL_KNOWN: dk_sql_bind_known(st, i, v[k].v.i); break;
        }
    }
}

char *dk_sql_strdup(const unsigned char *s) {
    if (!s) return NULL;
    size_t n = strlen((const char *)s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

double dk_sql_col_real(sqlite3_stmt *q, int i) {
    return sqlite3_column_type(q, i) == SQLITE_NULL ? NAN : sqlite3_column_double(q, i);
}

int64_t dk_sql_col_known(sqlite3_stmt *q, int i) {
    return sqlite3_column_type(q, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(q, i);
}

int dk_sql_col_text(sqlite3_stmt *q, int i, char **out) {
    const unsigned char *t = sqlite3_column_text(q, i);
    *out = dk_sql_strdup(t);
    return t && !*out ? -1 : 0;
}

/* ---- open / migrate ---- */

static int dk_pragma_int(dk_store *s, const char *sql, int *out) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) return sqlite3_errcode(s->db);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int dk_mkdir_parents(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf) return 0;
    *slash = 0;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return (mkdir(buf, 0777) != 0 && errno != EEXIST) ? -1 : 0;
}

static dk_status dk_store_check_identity(dk_store *s, int *version, dk_err *err) {
    int app = 0, ntab = 0;
    int rc = dk_pragma_int(s, "PRAGMA application_id", &app);
    if (rc == SQLITE_NOTADB)
        return dk_fail(err, DK_ERR_FORMAT, "%s: not a dashkit store (not an SQLite database)", s->path);
    if (rc != SQLITE_OK) return dk_sql_fail(s, err, "read application_id");
    if ((rc = dk_pragma_int(s, "PRAGMA user_version", version)) != SQLITE_OK)
        return dk_sql_fail(s, err, "read user_version");
    if ((rc = dk_pragma_int(s, "SELECT count(*) FROM sqlite_master", &ntab)) != SQLITE_OK)
        return dk_sql_fail(s, err, "read schema");
    if (app != DK_STORE_APPLICATION_ID && (app != 0 || ntab > 0))
        return dk_fail(err, DK_ERR_FORMAT,
                       "%s: not a dashkit store (an SQLite database of another application)", s->path);
    if (*version > DK_STORE_SCHEMA_VERSION)
        return dk_fail(err, DK_ERR_FORMAT,
                       "%s: store schema version %d is newer than this dashkit's (%d); update dashkit",
                       s->path, *version, DK_STORE_SCHEMA_VERSION);
    return DK_OK;
}

static dk_status dk_store_migrate(dk_store *s, dk_err *err) {
    for (;;) {
        dk_status st = dk_sql_exec(s, "BEGIN IMMEDIATE", err);
        if (st != DK_OK) return st;
        int v = 0;
        if ((st = dk_store_check_identity(s, &v, err)) != DK_OK) {
            dk_sql_rollback(s);
            return st;
        }
        if (v >= DK_STORE_SCHEMA_VERSION) return dk_sql_exec(s, "COMMIT", err);
        char set[128];
        snprintf(set, sizeof set, "PRAGMA user_version = %d; PRAGMA application_id = %d;", v + 1,
                 DK_STORE_APPLICATION_ID);
        char *msg = NULL;
        if (sqlite3_exec(s->db, dk_store_migrations[v], NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(s->db, set, NULL, NULL, NULL) != SQLITE_OK) {
            st = dk_fail(err, DK_ERR_IO, "%s: migration to schema version %d failed: %s", s->path, v + 1,
                         msg ? msg : sqlite3_errmsg(s->db));
            sqlite3_free(msg);
            dk_sql_rollback(s);
            return st;
        }
        if ((st = dk_sql_exec(s, "COMMIT", err)) != DK_OK) {
            dk_sql_rollback(s);
            return st;
        }
    }
}

/* 1 when the filesystem holding path has no space left for an unprivileged write. */
static int dk_disk_full(const char *path) {
    struct statvfs v;
    return statvfs(path, &v) == 0 && v.f_bavail == 0;
}

/* 1 when path cannot be written: a read-only filesystem, or the file or its folder not writable
 * by us (SQLite then cannot create the WAL index, -shm, beside it). */
static int dk_path_readonly(const char *path) {
    struct statvfs v;
    if (statvfs(path, &v) == 0 && (v.f_flag & ST_RDONLY)) return 1;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    return access(path, W_OK) != 0 || access(dir, W_OK) != 0;
}

void dk_store_remove_files(const char *path) {
    char p[4200];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

/* PRAGMA quick_check: DK_OK when SQLite finds the file intact, else DK_ERR_FORMAT with its first
 * finding (or the corruption error it raised). */
static dk_status dk_store_quick_check(dk_store *s, dk_err *err) {
    sqlite3_stmt *q;
    dk_status st = dk_sql_prepare(s, "PRAGMA quick_check", &q, err);
    if (st) return st;
    int rc = sqlite3_step(q);
    const char *r = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(q, 0) : sqlite3_errmsg(s->db);
    if (rc != SQLITE_ROW || !r || strcmp(r, "ok") != 0)
        st = dk_fail(err, DK_ERR_FORMAT,
                     "%s: the store is damaged (PRAGMA quick_check: %.300s); restore it from a copy", s->path,
                     r ? r : "no result");
    sqlite3_finalize(q);
    return st;
}

/* file:PATH?immutable=1, with '%', '?' and '#' of the path percent-encoded. */
static void dk_store_immutable_uri(const char *path, char *uri, size_t cap) {
    size_t o = (size_t)snprintf(uri, cap, "file:");
    for (const char *c = path; *c && o + 4 < cap - 16; c++)
        o += (size_t)(strchr("%?#", *c) ? snprintf(uri + o, 4, "%%%02X", (unsigned char)*c)
                                        : (uri[o] = *c, 1));
    snprintf(uri + o, cap - o, "?immutable=1");
}

/* Switches the store to WAL journal mode. */
static dk_status dk_store_set_wal(dk_store *s, const char *path, dk_err *err) {
    char mode[16] = "";
    sqlite3_stmt *q;
    dk_status st;
    if ((st = dk_sql_prepare(s, "PRAGMA journal_mode = WAL", &q, err)) != DK_OK) return st;
    /* Another process creating the same store at this moment holds its lock while it switches
     * it to WAL; the switch does not always wait through the busy handler, so retry (up to the
     * busy timeout, 60 s) while SQLite answers BUSY/LOCKED. */
    for (int tries = 0; tries < 6000; tries++) {
        int rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
            snprintf(mode, sizeof mode, "%s", (const char *)sqlite3_column_text(q, 0));
            break;
        }
        if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED) break;
        sqlite3_reset(q);
        sqlite3_sleep(10);
    }
    sqlite3_finalize(q);
    if (strcmp(mode, "wal") != 0)
        return dk_fail(err, DK_ERR_IO, "%s: cannot switch to WAL journal mode", path);
    return DK_OK;
}

dk_status dk_store_open(const char *path, int flags, dk_store **out, dk_err *err) {
    *out = NULL;
    int ro = (flags & DK_STORE_OPEN_READONLY) != 0, created = 0, immutable = 0, full = 0;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno != ENOENT) return dk_fail(err, DK_ERR_IO, "%s: %s", path, strerror(errno));
        if (ro || !(flags & DK_STORE_OPEN_CREATE)) return dk_fail(err, DK_ERR_IO, "%s: no such store", path);
        if (dk_mkdir_parents(path) != 0)
            return dk_fail(err, DK_ERR_IO, "%s: cannot create its folder: %s", path, strerror(errno));
        created = 1;
    } else if (!S_ISREG(sb.st_mode)) {
        return dk_fail(err, DK_ERR_IO, "%s: not a regular file", path);
    } else if (ro && dk_path_readonly(path)) {
        /* read-only media: nobody can be writing it, and SQLite cannot create the WAL index
         * beside it: open it immutable, unless a WAL file holds changes not yet merged */
        char wal[4200];
        struct stat wb;
        snprintf(wal, sizeof wal, "%s-wal", path);
        if (stat(wal, &wb) == 0 && wb.st_size > 0)
            return dk_fail(
                err, DK_ERR_IO,
                "%s: on read-only media with unmerged changes in %s; open it once where it is writable", path,
                wal);
        immutable = 1;
    }
    dk_store *s = calloc(1, sizeof *s);
    if (!s) return dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", path);
    s->path = malloc(strlen(path) + 1);
    if (!s->path) {
        free(s);
        return dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", path);
    }
    strcpy(s->path, path);
    s->readonly = ro;
    int oflags = ro ? SQLITE_OPEN_READONLY
                    : SQLITE_OPEN_READWRITE | ((flags & DK_STORE_OPEN_CREATE) ? SQLITE_OPEN_CREATE : 0);
    dk_status st = DK_OK;
    char uri[3 * 4096 + 32];
    if (immutable) dk_store_immutable_uri(path, uri, sizeof uri);
    int orc = sqlite3_open_v2(immutable ? uri : path, &s->db,
                              oflags | SQLITE_OPEN_NOMUTEX | (immutable ? SQLITE_OPEN_URI : 0), NULL);
    if (orc != SQLITE_OK) {
        st = dk_fail(err, DK_ERR_IO, "%s: cannot open: %s", path,
                     s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, 60000);
    int v = 0;
    /* one read snapshot: another process may be creating the schema right now (its application_id,
     * user_version and tables become visible together, at its COMMIT) */
    if ((st = dk_sql_exec(s, "BEGIN", err)) != DK_OK) goto fail;
    st = dk_store_check_identity(s, &v, err);
    if (st != DK_OK) {
        dk_sql_rollback(s);
        goto fail;
    }
    if ((st = dk_sql_exec(s, "COMMIT", err)) != DK_OK) goto fail;
    if (ro) {
        if (v > 0 && v < DK_STORE_SCHEMA_VERSION && !(flags & DK_STORE_OPEN_NO_UPGRADE) &&
            access(path, W_OK) == 0) {
            /* an older store: upgrade it once (the migrations are additive), then read it */
            dk_store_close(s);
            dk_store *w = NULL;
            if ((st = dk_store_open(path, 0, &w, err)) != DK_OK) return st;
            dk_store_close(w);
            return dk_store_open(path, flags | DK_STORE_OPEN_NO_UPGRADE, out, err);
        }
        if (v < DK_STORE_SCHEMA_VERSION) {
            st = v == 0 ? dk_fail(err, DK_ERR_FORMAT, "%s: not a dashkit store (empty)", path)
                        : dk_fail(err, DK_ERR_FORMAT,
                                  "%s: store schema version %d is older than %d; any writing dashkit command "
                                  "upgrades it",
                                  path, v, DK_STORE_SCHEMA_VERSION);
            goto fail;
        }
    } else {
        if ((st = dk_store_set_wal(s, path, err)) != DK_OK) goto fail;
        if ((st = dk_sql_exec(s, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;", err)) != DK_OK)
            goto fail;
        if ((st = dk_store_migrate(s, err)) != DK_OK) goto fail;
    }
    if (ro && (st = dk_store_quick_check(s, err)) != DK_OK) goto fail;
    *out = s;
    return DK_OK;
fail:
    /* a full disk is said so, whatever step found it (SQLITE_FULL or a failed WAL switch), and
     * the empty file this call created is removed (only then: another process may be creating
     * the same store at this moment) */
    full = st == DK_ERR_IO &&
           ((s->db && (sqlite3_errcode(s->db) & 0xff) == SQLITE_FULL) || dk_disk_full(path));
    if (full) st = dk_fail(err, DK_ERR_IO, "%s: the disk is full (no space left on device)", path);
    dk_store_close(s);
    if (full && created && stat(path, &sb) == 0 && sb.st_size == 0) dk_store_remove_files(path);
    return st;
}

void dk_store_close(dk_store *s) {
    if (!s) return;
    sqlite3_close(s->db);
    free(s->path);
    free(s);
}

int dk_store_schema_version(dk_store *s) {
    int v = -1;
    dk_pragma_int(s, "PRAGMA user_version", &v);
    return v;
}

/* ---- transactions around several calls ---- */

dk_status dk_store_begin(dk_store *s, dk_err *err) { return dk_sql_exec(s, "BEGIN IMMEDIATE", err); }
dk_status dk_store_commit(dk_store *s, dk_err *err) {
    dk_status st = dk_sql_exec(s, "COMMIT", err);
    if (st) dk_sql_rollback(s);
    return st;
}
void dk_store_rollback(dk_store *s) { dk_sql_rollback(s); }
const char *dk_store_path(const dk_store *s) { return s->path; }
