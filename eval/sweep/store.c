/* store.c — the SQLite results store (schema and invariants documented in store.h). */
#include "store.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

struct dk_store {
    sqlite3 *db;
    char *path;
    int readonly;
};

/* ---- schema migrations: entry i upgrades user_version i to i+1; never edit a shipped one ---- */

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
    "CREATE VIEW cell_summary AS SELECT"
    "  c.id AS cell_id, c.run_id, m.path AS model, m.sha256 AS model_sha256,"
    "  c.task, c.task_options,"
    "  json_extract(c.task_options, '$.length') AS length, json_extract(c.task_options, '$.depth') AS depth,"
    "  c.method, c.params,"
    "  json_extract(c.params, '$.rho') AS rho, json_extract(c.params, '$.ls') AS ls,"
    "  json_extract(c.params, '$.tau') AS tau, json_extract(c.params, '$.keep') AS keep,"
    "  c.state, c.n_samples, count(s.id) AS n, avg(s.score) AS mean_score,"
    "  sum(s.flops_dense) AS flops_dense, sum(s.flops_method) AS flops_method,"
    "  CAST(sum(s.flops_method) AS REAL) / NULLIF(sum(s.flops_dense), 0) AS flops_ratio,"
    "  CAST(sum(s.flops_dense) AS REAL) / NULLIF(sum(s.flops_method), 0) AS flops_speedup,"
    "  sum(s.wall_dense_s) / NULLIF(sum(s.wall_method_s), 0) AS wall_speedup,"
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
    "CREATE VIEW sample_rows AS SELECT"
    "  c.id AS cell_id, c.key AS cell_key, m.path AS model, m.sha256 AS model_sha256,"
    "  c.task, c.task_options,"
    "  json_extract(c.task_options, '$.length') AS length, json_extract(c.task_options, '$.depth') AS depth,"
    "  c.method, c.params,"
    "  json_extract(c.params, '$.rho') AS rho, json_extract(c.params, '$.ls') AS ls,"
    "  json_extract(c.params, '$.tau') AS tau, json_extract(c.params, '$.keep') AS keep,"
    "  s.sample_id, s.sample_key, s.prompt_tokens, s.context_tokens, s.question_tokens, s.gen_tokens,"
    "  s.active_tokens, s.flops_dense, s.flops_method,"
    "  CAST(s.flops_method AS REAL) / NULLIF(s.flops_dense, 0) AS flops_ratio,"
    "  s.wall_dense_s, s.wall_method_s, s.wall_dense_s / NULLIF(s.wall_method_s, 0) AS wall_speedup,"
    "  s.wall_decode_s, s.prediction, s.answers, s.score, s.kl, s.kl_answer, s.top1"
    "  FROM samples s JOIN cells c ON c.id = s.cell_id JOIN models m ON m.id = c.model_id;",
    /* 1 -> 2: fidelity over the answer (issue 14). Additive: samples keeps kl / top1 (first answer
     * row) and kl_answer (mean over the answer rows) and gains the answer's max KL, top-1 rate and
     * NLLs; the views now show the answer-level figures as kl / top1 / nll_delta and the first
     * row as kl_first / top1_first. Rows written before have NULL in the new columns. */
    "ALTER TABLE samples ADD COLUMN kl_answer_max REAL;"
    "ALTER TABLE samples ADD COLUMN top1_answer REAL CHECK (top1_answer IS NULL OR (top1_answer >= 0 AND top1_answer <= 1));"
    "ALTER TABLE samples ADD COLUMN nll_dense REAL;"
    "ALTER TABLE samples ADD COLUMN nll_method REAL;"
    "DROP VIEW cell_summary;"
    "CREATE VIEW cell_summary AS SELECT"
    "  c.id AS cell_id, c.run_id, m.path AS model, m.sha256 AS model_sha256,"
    "  c.task, c.task_options,"
    "  json_extract(c.task_options, '$.length') AS length, json_extract(c.task_options, '$.depth') AS depth,"
    "  c.method, c.params,"
    "  json_extract(c.params, '$.rho') AS rho, json_extract(c.params, '$.ls') AS ls,"
    "  json_extract(c.params, '$.tau') AS tau, json_extract(c.params, '$.keep') AS keep,"
    "  c.state, c.n_samples, count(s.id) AS n, avg(s.score) AS mean_score,"
    "  sum(s.flops_dense) AS flops_dense, sum(s.flops_method) AS flops_method,"
    "  CAST(sum(s.flops_method) AS REAL) / NULLIF(sum(s.flops_dense), 0) AS flops_ratio,"
    "  CAST(sum(s.flops_dense) AS REAL) / NULLIF(sum(s.flops_method), 0) AS flops_speedup,"
    "  sum(s.wall_dense_s) / NULLIF(sum(s.wall_method_s), 0) AS wall_speedup,"
    "  avg(s.kl_answer) AS kl, max(s.kl_answer_max) AS kl_max, avg(s.top1_answer) AS top1,"
    "  avg(s.nll_method - s.nll_dense) AS nll_delta, avg(s.kl) AS kl_first, avg(s.top1) AS top1_first, c.wall_s"
    "  FROM cells c JOIN models m ON m.id = c.model_id LEFT JOIN samples s ON s.cell_id = c.id"
    "  GROUP BY c.id;"
    "DROP VIEW sample_rows;"
    "CREATE VIEW sample_rows AS SELECT"
    "  c.id AS cell_id, c.key AS cell_key, m.path AS model, m.sha256 AS model_sha256,"
    "  c.task, c.task_options,"
    "  json_extract(c.task_options, '$.length') AS length, json_extract(c.task_options, '$.depth') AS depth,"
    "  c.method, c.params,"
    "  json_extract(c.params, '$.rho') AS rho, json_extract(c.params, '$.ls') AS ls,"
    "  json_extract(c.params, '$.tau') AS tau, json_extract(c.params, '$.keep') AS keep,"
    "  s.sample_id, s.sample_key, s.prompt_tokens, s.context_tokens, s.question_tokens, s.gen_tokens,"
    "  s.active_tokens, s.flops_dense, s.flops_method,"
    "  CAST(s.flops_method AS REAL) / NULLIF(s.flops_dense, 0) AS flops_ratio,"
    "  s.wall_dense_s, s.wall_method_s, s.wall_dense_s / NULLIF(s.wall_method_s, 0) AS wall_speedup,"
    "  s.wall_decode_s, s.prediction, s.answers, s.score,"
    "  s.kl_answer AS kl, s.kl_answer_max AS kl_max, s.top1_answer AS top1, s.nll_method - s.nll_dense AS nll_delta,"
    "  s.kl AS kl_first, s.top1 AS top1_first"
    "  FROM samples s JOIN cells c ON c.id = s.cell_id JOIN models m ON m.id = c.model_id;",
    /* 2 -> 3: the shared-context key of a sample (issue 14: cluster bootstrap) */
    "ALTER TABLE samples ADD COLUMN context_key TEXT;"
    "DROP VIEW sample_rows;"
    "CREATE VIEW sample_rows AS SELECT"
    "  c.id AS cell_id, c.key AS cell_key, m.path AS model, m.sha256 AS model_sha256,"
    "  c.task, c.task_options,"
    "  json_extract(c.task_options, '$.length') AS length, json_extract(c.task_options, '$.depth') AS depth,"
    "  c.method, c.params,"
    "  json_extract(c.params, '$.rho') AS rho, json_extract(c.params, '$.ls') AS ls,"
    "  json_extract(c.params, '$.tau') AS tau, json_extract(c.params, '$.keep') AS keep,"
    "  s.sample_id, s.sample_key, s.prompt_tokens, s.context_tokens, s.question_tokens, s.gen_tokens,"
    "  s.active_tokens, s.flops_dense, s.flops_method,"
    "  CAST(s.flops_method AS REAL) / NULLIF(s.flops_dense, 0) AS flops_ratio,"
    "  s.wall_dense_s, s.wall_method_s, s.wall_dense_s / NULLIF(s.wall_method_s, 0) AS wall_speedup,"
    "  s.wall_decode_s, s.prediction, s.answers, s.score,"
    "  s.kl_answer AS kl, s.kl_answer_max AS kl_max, s.top1_answer AS top1, s.nll_method - s.nll_dense AS nll_delta,"
    "  s.kl AS kl_first, s.top1 AS top1_first, s.context_key"
    "  FROM samples s JOIN cells c ON c.id = s.cell_id JOIN models m ON m.id = c.model_id;",
    /* 3 -> 4: aggregates of `dashkit analyze` (issue 14) */
    "CREATE TABLE analyses ("
    "  id INTEGER PRIMARY KEY, run_id INTEGER, model_sha256 TEXT NOT NULL, model_path TEXT, task TEXT NOT NULL,"
    "  task_options TEXT, n_samples INTEGER NOT NULL, n_layer INTEGER NOT NULL, ls REAL, ls_layer INTEGER, rho REAL,"
    "  delta_received_spearman REAL, created_at REAL NOT NULL);"
    "CREATE TABLE analysis_layers ("
    "  analysis_id INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE, layer INTEGER NOT NULL,"
    "  delta_p01 REAL, delta_p10 REAL, delta_p25 REAL, delta_p50 REAL, delta_p75 REAL, delta_p90 REAL, delta_p99 REAL,"
    "  rel_p01 REAL, rel_p10 REAL, rel_p25 REAL, rel_p50 REAL, rel_p75 REAL, rel_p90 REAL, rel_p99 REAL,"
    "  received_mean REAL, received_spearman REAL, PRIMARY KEY (analysis_id, layer)) WITHOUT ROWID;"
    "CREATE TABLE analysis_deciles ("
    "  analysis_id INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE, decile INTEGER NOT NULL,"
    "  delta_mean REAL, received_mean REAL, PRIMARY KEY (analysis_id, decile)) WITHOUT ROWID;"
    "CREATE TABLE analysis_recall ("
    "  analysis_id INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE, method TEXT NOT NULL, rho REAL NOT NULL,"
    "  recall REAL, kept_frac REAL, PRIMARY KEY (analysis_id, method, rho)) WITHOUT ROWID;"
    "CREATE TABLE analysis_overlap ("
    "  analysis_id INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE, method_a TEXT NOT NULL,"
    "  method_b TEXT NOT NULL, jaccard REAL, PRIMARY KEY (analysis_id, method_a, method_b)) WITHOUT ROWID;",
    /* 4 -> 5: sharded runs (`run --shard`) and the shard runs a merged run was united from */
    "ALTER TABLE runs ADD COLUMN shard TEXT;"
    "CREATE TABLE run_shards ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id),"
    "  source TEXT NOT NULL, shard TEXT, src_run_id INTEGER NOT NULL, config_hash TEXT NOT NULL,"
    "  git_rev TEXT, host TEXT NOT NULL DEFAULT '', cpu TEXT, blas_core TEXT, threads INTEGER, workers INTEGER,"
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

static dk_cell_state dk_cell_state_parse(const unsigned char *s) {
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

static dk_status dk_sql_fail(dk_store *s, dk_err *err, const char *what) {
    int code = sqlite3_errcode(s->db);
    dk_status st = (code == SQLITE_CONSTRAINT || (code & 0xff) == SQLITE_CONSTRAINT) ? DK_ERR_ARG : DK_ERR_IO;
    return dk_fail(err, st, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

static dk_status dk_exec(dk_store *s, const char *sql, dk_err *err) {
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) return dk_sql_fail(s, err, sql);
    return DK_OK;
}

static dk_status dk_prepare(dk_store *s, const char *sql, sqlite3_stmt **st, dk_err *err) {
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return dk_sql_fail(s, err, "prepare");
    }
    return DK_OK;
}

static void dk_rollback(dk_store *s) {
    if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

static void dk_bind_text(sqlite3_stmt *st, int i, const char *v) {
    if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, i);
}
static void dk_bind_real(sqlite3_stmt *st, int i, double v) {
    if (isnan(v)) sqlite3_bind_null(st, i);
    else sqlite3_bind_double(st, i, v);
}
static void dk_bind_known(sqlite3_stmt *st, int i, int64_t v) { /* < 0 = unknown */
    if (v < 0) sqlite3_bind_null(st, i);
    else sqlite3_bind_int64(st, i, v);
}

static char *dk_strdup0(const unsigned char *s) {
    if (!s) return NULL;
    size_t n = strlen((const char *)s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* ---- open / migrate ---- */

static int dk_pragma_int(dk_store *s, const char *sql, int *out) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) return sqlite3_errcode(s->db);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) { *out = sqlite3_column_int(st, 0); rc = SQLITE_OK; }
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
    if (rc == SQLITE_NOTADB) return dk_fail(err, DK_ERR_FORMAT, "%s: not a dashkit store (not an SQLite database)", s->path);
    if (rc != SQLITE_OK) return dk_sql_fail(s, err, "read application_id");
    if ((rc = dk_pragma_int(s, "PRAGMA user_version", version)) != SQLITE_OK) return dk_sql_fail(s, err, "read user_version");
    if ((rc = dk_pragma_int(s, "SELECT count(*) FROM sqlite_master", &ntab)) != SQLITE_OK)
        return dk_sql_fail(s, err, "read schema");
    if (app != DK_STORE_APPLICATION_ID && (app != 0 || ntab > 0))
        return dk_fail(err, DK_ERR_FORMAT, "%s: not a dashkit store (an SQLite database of another application)", s->path);
    if (*version > DK_STORE_SCHEMA_VERSION)
        return dk_fail(err, DK_ERR_FORMAT, "%s: store schema version %d is newer than this dashkit's (%d); update dashkit",
                       s->path, *version, DK_STORE_SCHEMA_VERSION);
    return DK_OK;
}

static dk_status dk_store_migrate(dk_store *s, dk_err *err) {
    for (;;) {
        dk_status st = dk_exec(s, "BEGIN IMMEDIATE", err);
        if (st != DK_OK) return st;
        int v = 0;
        if ((st = dk_store_check_identity(s, &v, err)) != DK_OK) { dk_rollback(s); return st; }
        if (v >= DK_STORE_SCHEMA_VERSION) return dk_exec(s, "COMMIT", err);
        char set[128];
        snprintf(set, sizeof set, "PRAGMA user_version = %d; PRAGMA application_id = %d;", v + 1, DK_STORE_APPLICATION_ID);
        char *msg = NULL;
        if (sqlite3_exec(s->db, dk_store_migrations[v], NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(s->db, set, NULL, NULL, NULL) != SQLITE_OK) {
            st = dk_fail(err, DK_ERR_IO, "%s: migration to schema version %d failed: %s", s->path, v + 1,
                         msg ? msg : sqlite3_errmsg(s->db));
            sqlite3_free(msg);
            dk_rollback(s);
            return st;
        }
        if ((st = dk_exec(s, "COMMIT", err)) != DK_OK) { dk_rollback(s); return st; }
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
    dk_status st = dk_prepare(s, "PRAGMA quick_check", &q, err);
    if (st) return st;
    int rc = sqlite3_step(q);
    const char *r = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(q, 0) : sqlite3_errmsg(s->db);
    if (rc != SQLITE_ROW || !r || strcmp(r, "ok") != 0)
        st = dk_fail(err, DK_ERR_FORMAT, "%s: the store is damaged (PRAGMA quick_check: %.300s); restore it from a copy",
                     s->path, r ? r : "no result");
    sqlite3_finalize(q);
    return st;
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
            return dk_fail(err, DK_ERR_IO, "%s: on read-only media with unmerged changes in %s; open it once where it is writable",
                           path, wal);
        immutable = 1;
    }
    dk_store *s = calloc(1, sizeof *s);
    if (!s) return dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", path);
    s->path = malloc(strlen(path) + 1);
    if (!s->path) { free(s); return dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", path); }
    strcpy(s->path, path);
    s->readonly = ro;
    int oflags = ro ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | ((flags & DK_STORE_OPEN_CREATE) ? SQLITE_OPEN_CREATE : 0);
    dk_status st = DK_OK;
    char uri[3 * 4096 + 32];
    if (immutable) { /* file:PATH?immutable=1, with '%', '?' and '#' of the path percent-encoded */
        size_t o = (size_t)snprintf(uri, sizeof uri, "file:");
        for (const char *c = path; *c && o + 4 < sizeof uri - 16; c++)
            o += (size_t)(strchr("%?#", *c) ? snprintf(uri + o, 4, "%%%02X", (unsigned char)*c) : (uri[o] = *c, 1));
        snprintf(uri + o, sizeof uri - o, "?immutable=1");
    }
    int orc = sqlite3_open_v2(immutable ? uri : path, &s->db, oflags | SQLITE_OPEN_NOMUTEX | (immutable ? SQLITE_OPEN_URI : 0), NULL);
    if (orc != SQLITE_OK) {
        st = dk_fail(err, DK_ERR_IO, "%s: cannot open: %s", path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, 60000);
    int v = 0;
    /* one read snapshot: another process may be creating the schema right now (its application_id,
     * user_version and tables become visible together, at its COMMIT) */
    if ((st = dk_exec(s, "BEGIN", err)) != DK_OK) goto fail;
    st = dk_store_check_identity(s, &v, err);
    if (st != DK_OK) { dk_rollback(s); goto fail; }
    if ((st = dk_exec(s, "COMMIT", err)) != DK_OK) goto fail;
    if (ro) {
        if (v > 0 && v < DK_STORE_SCHEMA_VERSION && !(flags & DK_STORE_OPEN_NO_UPGRADE) && access(path, W_OK) == 0) {
            /* an older store: upgrade it once (the migrations are additive), then read it */
            dk_store_close(s);
            dk_store *w = NULL;
            if ((st = dk_store_open(path, 0, &w, err)) != DK_OK) return st;
            dk_store_close(w);
            return dk_store_open(path, flags | DK_STORE_OPEN_NO_UPGRADE, out, err);
        }
        if (v < DK_STORE_SCHEMA_VERSION) {
            st = v == 0 ? dk_fail(err, DK_ERR_FORMAT, "%s: not a dashkit store (empty)", path)
                        : dk_fail(err, DK_ERR_FORMAT, "%s: store schema version %d is older than %d; any writing dashkit command upgrades it",
                                  path, v, DK_STORE_SCHEMA_VERSION);
            goto fail;
        }
    } else {
        char mode[16] = "";
        sqlite3_stmt *q;
        if ((st = dk_prepare(s, "PRAGMA journal_mode = WAL", &q, err)) != DK_OK) goto fail;
        /* Another process creating the same store at this moment holds its lock while it switches
         * it to WAL; the switch does not always wait through the busy handler, so retry (up to the
         * busy timeout, 60 s) while SQLite answers BUSY/LOCKED. */
        for (int tries = 0; tries < 6000; tries++) {
            int rc = sqlite3_step(q);
            if (rc == SQLITE_ROW) { snprintf(mode, sizeof mode, "%s", (const char *)sqlite3_column_text(q, 0)); break; }
            if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED) break;
            sqlite3_reset(q);
            sqlite3_sleep(10);
        }
        sqlite3_finalize(q);
        if (strcmp(mode, "wal") != 0) { st = dk_fail(err, DK_ERR_IO, "%s: cannot switch to WAL journal mode", path); goto fail; }
        if ((st = dk_exec(s, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;", err)) != DK_OK) goto fail;
        if ((st = dk_store_migrate(s, err)) != DK_OK) goto fail;
    }
    if (ro && (st = dk_store_quick_check(s, err)) != DK_OK) goto fail;
    *out = s;
    return DK_OK;
fail:
    /* a full disk is said so, whatever step found it (SQLITE_FULL or a failed WAL switch), and
     * the empty file this call created is removed (only then: another process may be creating
     * the same store at this moment) */
    full = st == DK_ERR_IO && ((s->db && (sqlite3_errcode(s->db) & 0xff) == SQLITE_FULL) || dk_disk_full(path));
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

sqlite3 *dk_store_db(dk_store *s) { return s->db; }

int dk_store_schema_version(dk_store *s) {
    int v = -1;
    dk_pragma_int(s, "PRAGMA user_version", &v);
    return v;
}

/* ---- runs and models ---- */

dk_status dk_store_run_begin(dk_store *s, const dk_run_info *in, int64_t *run_id, dk_err *err) {
    sqlite3_stmt *st;
    dk_status rc = dk_prepare(s,
        "INSERT INTO runs(name, config_path, config_text, config_hash, git_rev, host, cpu, blas_core,"
        " threads, workers, command, n_cells, started_at, shard) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)", &st, err);
    if (rc != DK_OK) return rc;
    dk_bind_text(st, 1, in->name ? in->name : "");
    dk_bind_text(st, 2, in->config_path ? in->config_path : "");
    dk_bind_text(st, 3, in->config_text ? in->config_text : "");
    dk_bind_text(st, 4, in->config_hash ? in->config_hash : "");
    dk_bind_text(st, 5, in->git_rev);
    dk_bind_text(st, 6, in->host);
    dk_bind_text(st, 7, in->cpu);
    dk_bind_text(st, 8, in->blas_core);
    sqlite3_bind_int(st, 9, in->threads);
    sqlite3_bind_int(st, 10, in->workers);
    dk_bind_text(st, 11, in->command);
    sqlite3_bind_int64(st, 12, in->n_cells);
    sqlite3_bind_double(st, 13, dk_store_now());
    dk_bind_text(st, 14, in->shard);
    if (sqlite3_step(st) != SQLITE_DONE) rc = dk_sql_fail(s, err, "insert run");
    else *run_id = sqlite3_last_insert_rowid(s->db);
    sqlite3_finalize(st);
    return rc;
}

dk_status dk_store_run_end(dk_store *s, int64_t run_id, dk_err *err) {
    sqlite3_stmt *st;
    dk_status rc = dk_prepare(s, "UPDATE runs SET finished_at = ? WHERE id = ?", &st, err);
    if (rc != DK_OK) return rc;
    sqlite3_bind_double(st, 1, dk_store_now());
    sqlite3_bind_int64(st, 2, run_id);
    if (sqlite3_step(st) != SQLITE_DONE) rc = dk_sql_fail(s, err, "finish run");
    else if (sqlite3_changes(s->db) != 1) rc = dk_fail(err, DK_ERR_ARG, "%s: no run %lld", s->path, (long long)run_id);
    sqlite3_finalize(st);
    return rc;
}

dk_status dk_store_model_put(dk_store *s, const dk_model_info *m, int64_t *model_id, dk_err *err) {
    if (!m->sha256 || strlen(m->sha256) != 64 || !m->path)
        return dk_fail(err, DK_ERR_ARG, "%s: model needs a path and a 64-digit sha256", s->path);
    sqlite3_stmt *st;
    dk_status rc = dk_prepare(s,
        "INSERT INTO models(sha256, path, arch, n_layer, n_embd, n_head, n_head_kv, n_ff, n_vocab, n_ctx,"
        " n_params, file_bytes, added_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(sha256) DO UPDATE SET path = excluded.path, arch = coalesce(excluded.arch, arch),"
        " n_layer = coalesce(excluded.n_layer, n_layer), n_embd = coalesce(excluded.n_embd, n_embd),"
        " n_head = coalesce(excluded.n_head, n_head), n_head_kv = coalesce(excluded.n_head_kv, n_head_kv),"
        " n_ff = coalesce(excluded.n_ff, n_ff), n_vocab = coalesce(excluded.n_vocab, n_vocab),"
        " n_ctx = coalesce(excluded.n_ctx, n_ctx), n_params = coalesce(excluded.n_params, n_params),"
        " file_bytes = coalesce(excluded.file_bytes, file_bytes)"
        " RETURNING id", &st, err);
    if (rc != DK_OK) return rc;
    dk_bind_text(st, 1, m->sha256);
    dk_bind_text(st, 2, m->path);
    dk_bind_text(st, 3, m->arch);
    const int64_t v[] = {m->n_layer, m->n_embd, m->n_head, m->n_head_kv, m->n_ff, m->n_vocab, m->n_ctx, m->n_params, m->file_bytes};
    for (int i = 0; i < 9; i++) dk_bind_known(st, 4 + i, v[i]);
    sqlite3_bind_double(st, 13, dk_store_now());
    if (sqlite3_step(st) != SQLITE_ROW) rc = dk_sql_fail(s, err, "insert model");
    else *model_id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc;
}

/* ---- cells ---- */

dk_status dk_store_cells_add(dk_store *s, int64_t run_id, const dk_cell_spec *cells, size_t n, int retry_failed,
                             int64_t *cell_ids, dk_cell_state *states, dk_err *err) {
    return dk_store_cells_add_at(s, run_id, cells, NULL, n, retry_failed, cell_ids, states, err);
}

dk_status dk_store_cells_add_at(dk_store *s, int64_t run_id, const dk_cell_spec *cells, const int64_t *ord, size_t n,
                                int retry_failed, int64_t *cell_ids, dk_cell_state *states, dk_err *err) {
    sqlite3_stmt *ins = NULL, *get = NULL, *retry = NULL, *link = NULL;
    dk_status rc = dk_exec(s, "BEGIN IMMEDIATE", err);
    if (rc != DK_OK) return rc;
    double now = dk_store_now();
    if ((rc = dk_prepare(s,
            "INSERT INTO cells(key, identity, run_id, model_id, task, task_options, task_key, method, params,"
            " n_samples, seed, created_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(key) DO NOTHING", &ins, err)) ||
        (rc = dk_prepare(s, "SELECT id, state FROM cells WHERE key = ?", &get, err)) ||
        (rc = dk_prepare(s, "UPDATE cells SET state = 'pending' WHERE id = ? AND state = 'failed'", &retry, err)) ||
        (rc = dk_prepare(s, "INSERT OR IGNORE INTO run_cells(run_id, cell_id, ord) VALUES(?,?,?)", &link, err)))
        goto fail;
    for (size_t i = 0; i < n; i++) {
        const dk_cell_spec *c = &cells[i];
        sqlite3_reset(ins);
        dk_bind_text(ins, 1, c->key);
        dk_bind_text(ins, 2, c->identity);
        sqlite3_bind_int64(ins, 3, run_id);
        sqlite3_bind_int64(ins, 4, c->model_id);
        dk_bind_text(ins, 5, c->task);
        dk_bind_text(ins, 6, c->task_options);
        dk_bind_text(ins, 7, c->task_key);
        dk_bind_text(ins, 8, c->method);
        dk_bind_text(ins, 9, c->params);
        sqlite3_bind_int64(ins, 10, c->n_samples);
        sqlite3_bind_int64(ins, 11, c->seed);
        sqlite3_bind_double(ins, 12, now);
        if (sqlite3_step(ins) != SQLITE_DONE) { rc = dk_sql_fail(s, err, "insert cell"); goto fail; }
        sqlite3_reset(get);
        dk_bind_text(get, 1, c->key);
        if (sqlite3_step(get) != SQLITE_ROW) { rc = dk_sql_fail(s, err, "read cell"); goto fail; }
        int64_t id = sqlite3_column_int64(get, 0);
        dk_cell_state state = dk_cell_state_parse(sqlite3_column_text(get, 1));
        if (retry_failed && state == DK_CELL_FAILED) {
            sqlite3_reset(retry);
            sqlite3_bind_int64(retry, 1, id);
            if (sqlite3_step(retry) != SQLITE_DONE) { rc = dk_sql_fail(s, err, "retry cell"); goto fail; }
            state = DK_CELL_PENDING;
        }
        sqlite3_reset(link);
        sqlite3_bind_int64(link, 1, run_id);
        sqlite3_bind_int64(link, 2, id);
        sqlite3_bind_int64(link, 3, ord ? ord[i] : (int64_t)i);
        if (sqlite3_step(link) != SQLITE_DONE) { rc = dk_sql_fail(s, err, "link cell to run"); goto fail; }
        if (cell_ids) cell_ids[i] = id;
        if (states) states[i] = state;
    }
    sqlite3_finalize(ins); sqlite3_finalize(get); sqlite3_finalize(retry); sqlite3_finalize(link);
    if ((rc = dk_exec(s, "COMMIT", err)) != DK_OK) dk_rollback(s);
    return rc;
fail:
    sqlite3_finalize(ins); sqlite3_finalize(get); sqlite3_finalize(retry); sqlite3_finalize(link);
    dk_rollback(s);
    return rc;
}

/* ---- workers ---- */

/* State letter and start time (field 22, clock ticks since boot) of a process; 0 if unknown. */
static int dk_proc_stat(int64_t pid, char *state, int64_t *start) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* comm may contain spaces and parentheses */
    if (!p) return -1;
    p++;
    /* fields 3.. follow: state is field 3, starttime field 22 */
    int field = 2;
    char *tok = strtok(p, " ");
    while (tok) {
        field++;
        if (field == 3) *state = tok[0];
        if (field == 22) { *start = strtoll(tok, NULL, 10); return 0; }
        tok = strtok(NULL, " ");
    }
    return -1;
}

void dk_store_worker_self(dk_worker *w) {
    memset(w, 0, sizeof *w);
    if (gethostname(w->host, sizeof w->host - 1) != 0) snprintf(w->host, sizeof w->host, "unknown");
    w->pid = (int64_t)getpid();
    char state;
    if (dk_proc_stat(w->pid, &state, &w->start) != 0) w->start = 0;
    snprintf(w->name, sizeof w->name, "%s:%lld", w->host, (long long)w->pid);
}

/* 0 only when the worker certainly no longer exists: same host, and its pid is gone, a zombie,
 * or now belongs to a process started at another time. Other hosts: rely on the lease. */
static int dk_worker_alive(const dk_worker *self, const char *host, int64_t pid, int64_t start) {
    if (!host || strcmp(host, self->host) != 0) return 1;
    if (pid == self->pid && (start == self->start || start == 0 || self->start == 0)) return 1;
    if (pid <= 0) return 0;
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) return 0;
    char state = 0;
    int64_t now_start = 0;
    if (dk_proc_stat(pid, &state, &now_start) != 0) return 1; /* no /proc: trust kill() */
    if (state == 'Z' || state == 'X') return 0;
    if (start > 0 && now_start != start) return 0;
    return 1;
}

#define DK_OWNER_SQL "state = 'running' AND worker_host = ? AND worker_pid = ? AND worker_start = ?"

static void dk_bind_owner(sqlite3_stmt *st, int i, const dk_worker *w) {
    sqlite3_bind_text(st, i, w->host, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, i + 1, w->pid);
    sqlite3_bind_int64(st, i + 2, w->start);
}

dk_status dk_store_cell_claim(dk_store *s, int64_t run_id, const dk_worker *w, double lease_s, int64_t *cell_id,
                              char key[65], dk_err *err) {
    *cell_id = 0;
    sqlite3_stmt *q = NULL, *up = NULL;
    dk_status rc = dk_exec(s, "BEGIN IMMEDIATE", err);
    if (rc != DK_OK) return rc;
    double now = dk_store_now();
    int64_t pick = 0;
    if ((rc = dk_prepare(s,
            "SELECT c.id, c.state, c.worker_host, c.worker_pid, c.worker_start, c.lease_until"
            " FROM run_cells rc JOIN cells c ON c.id = rc.cell_id"
            " WHERE rc.run_id = ? AND c.state IN ('pending', 'running') ORDER BY c.state = 'running', rc.ord", &q, err)))
        goto fail;
    sqlite3_bind_int64(q, 1, run_id);
    int step;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(q, 0);
        const char *state = (const char *)sqlite3_column_text(q, 1);
        if (!strcmp(state, "pending")) { pick = id; break; }
        int lease_over = sqlite3_column_type(q, 5) == SQLITE_NULL || sqlite3_column_double(q, 5) < now;
        if (lease_over || !dk_worker_alive(w, (const char *)sqlite3_column_text(q, 2), sqlite3_column_int64(q, 3),
                                           sqlite3_column_int64(q, 4))) { pick = id; break; }
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) { rc = dk_sql_fail(s, err, "find a cell to claim"); goto fail; }
    sqlite3_finalize(q);
    q = NULL;
    if (pick) {
        if ((rc = dk_prepare(s,
                "UPDATE cells SET state = 'running', worker = ?, worker_host = ?, worker_pid = ?, worker_start = ?,"
                " lease_until = ?, claimed_at = ?, started_at = coalesce(started_at, ?), attempts = attempts + 1,"
                " error = NULL WHERE id = ? RETURNING key", &up, err)))
            goto fail;
        sqlite3_bind_text(up, 1, w->name, -1, SQLITE_TRANSIENT);
        dk_bind_owner(up, 2, w);
        sqlite3_bind_double(up, 5, now + lease_s);
        sqlite3_bind_double(up, 6, now);
        sqlite3_bind_double(up, 7, now);
        sqlite3_bind_int64(up, 8, pick);
        if (sqlite3_step(up) != SQLITE_ROW) { rc = dk_sql_fail(s, err, "claim cell"); goto fail; }
        if (key) snprintf(key, 65, "%s", (const char *)sqlite3_column_text(up, 0));
        sqlite3_finalize(up);
        up = NULL;
    }
    if ((rc = dk_exec(s, "COMMIT", err)) != DK_OK) goto fail;
    *cell_id = pick;
    return DK_OK;
fail:
    sqlite3_finalize(q);
    sqlite3_finalize(up);
    dk_rollback(s);
    return rc;
}

dk_status dk_store_cell_claim_ids(dk_store *s, int64_t run_id, const dk_worker *w, double lease_s, const int64_t *ids,
                                  size_t n, int *claimed, dk_err *err) {
    for (size_t i = 0; i < n; i++) claimed[i] = 0;
    if (n == 0) return DK_OK;
    sqlite3_stmt *q = NULL, *up = NULL;
    dk_status rc = dk_exec(s, "BEGIN IMMEDIATE", err);
    if (rc != DK_OK) return rc;
    double now = dk_store_now();
    if ((rc = dk_prepare(s,
            "SELECT c.state, c.worker_host, c.worker_pid, c.worker_start, c.lease_until"
            " FROM run_cells rc JOIN cells c ON c.id = rc.cell_id WHERE rc.run_id = ? AND c.id = ?", &q, err)) ||
        (rc = dk_prepare(s,
            "UPDATE cells SET state = 'running', worker = ?, worker_host = ?, worker_pid = ?, worker_start = ?,"
            " lease_until = ?, claimed_at = ?, started_at = coalesce(started_at, ?), attempts = attempts + 1,"
            " error = NULL WHERE id = ?", &up, err)))
        goto fail;
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, run_id);
        sqlite3_bind_int64(q, 2, ids[i]);
        int step = sqlite3_step(q);
        if (step == SQLITE_DONE) continue;
        if (step != SQLITE_ROW) { rc = dk_sql_fail(s, err, "find a cell to claim"); goto fail; }
        const char *state = (const char *)sqlite3_column_text(q, 0);
        int take = !strcmp(state, "pending");
        if (!take && !strcmp(state, "running"))
            take = sqlite3_column_type(q, 4) == SQLITE_NULL || sqlite3_column_double(q, 4) < now ||
                   !dk_worker_alive(w, (const char *)sqlite3_column_text(q, 1), sqlite3_column_int64(q, 2),
                                    sqlite3_column_int64(q, 3));
        if (!take) continue;
        sqlite3_reset(up);
        sqlite3_bind_text(up, 1, w->name, -1, SQLITE_TRANSIENT);
        dk_bind_owner(up, 2, w);
        sqlite3_bind_double(up, 5, now + lease_s);
        sqlite3_bind_double(up, 6, now);
        sqlite3_bind_double(up, 7, now);
        sqlite3_bind_int64(up, 8, ids[i]);
        if (sqlite3_step(up) != SQLITE_DONE) { rc = dk_sql_fail(s, err, "claim cell"); goto fail; }
        claimed[i] = 1;
    }
    sqlite3_finalize(q);
    sqlite3_finalize(up);
    q = up = NULL;
    if ((rc = dk_exec(s, "COMMIT", err)) != DK_OK) goto fail;
    return DK_OK;
fail:
    sqlite3_finalize(q);
    sqlite3_finalize(up);
    dk_rollback(s);
    for (size_t i = 0; i < n; i++) claimed[i] = 0;
    return rc;
}

/* UPDATE cells SET <set> WHERE id = ? AND <owner>; DK_ERR_STATE when w does not own the cell. */
static dk_status dk_owned_update(dk_store *s, int64_t cell_id, const dk_worker *w, const char *set, double a,
                                 const char *text, dk_err *err) {
    char sql[512];
    snprintf(sql, sizeof sql, "UPDATE cells SET %s WHERE id = ? AND " DK_OWNER_SQL, set);
    sqlite3_stmt *st;
    dk_status rc = dk_prepare(s, sql, &st, err);
    if (rc != DK_OK) return rc;
    int i = 1;
    if (strchr(set, '?')) sqlite3_bind_double(st, i++, a);
    if (strstr(set, "error = ?")) dk_bind_text(st, i++, text);
    sqlite3_bind_int64(st, i++, cell_id);
    dk_bind_owner(st, i, w);
    if (sqlite3_step(st) != SQLITE_DONE) rc = dk_sql_fail(s, err, "update cell");
    else if (sqlite3_changes(s->db) != 1)
        rc = dk_fail(err, DK_ERR_STATE, "%s: cell %lld is not held by worker %s (reclaimed or finished)", s->path,
                     (long long)cell_id, w->name);
    sqlite3_finalize(st);
    return rc;
}

dk_status dk_store_cell_renew(dk_store *s, int64_t cell_id, const dk_worker *w, double lease_s, dk_err *err) {
    return dk_owned_update(s, cell_id, w, "lease_until = ?", dk_store_now() + lease_s, NULL, err);
}

dk_status dk_store_cell_fail(dk_store *s, int64_t cell_id, const dk_worker *w, const char *error, dk_err *err) {
    return dk_owned_update(s, cell_id, w,
                           "finished_at = ?1, wall_s = wall_s + (?1 - claimed_at), state = 'failed', lease_until = NULL,"
                           " error = ?", dk_store_now(), error ? error : "unknown error", err);
}

dk_status dk_store_cell_release(dk_store *s, int64_t cell_id, const dk_worker *w, dk_err *err) {
    return dk_owned_update(s, cell_id, w, "wall_s = wall_s + (? - claimed_at), state = 'pending', lease_until = NULL",
                           dk_store_now(), NULL, err);
}

dk_status dk_store_cell_finish(dk_store *s, int64_t cell_id, const dk_worker *w, dk_err *err) {
    sqlite3_stmt *q = NULL;
    dk_status rc = dk_exec(s, "BEGIN IMMEDIATE", err);
    if (rc != DK_OK) return rc;
    if ((rc = dk_prepare(s, "SELECT n_samples, (SELECT count(*) FROM samples WHERE cell_id = ?1) FROM cells WHERE id = ?1",
                         &q, err)))
        goto fail;
    sqlite3_bind_int64(q, 1, cell_id);
    if (sqlite3_step(q) != SQLITE_ROW) {
        rc = dk_fail(err, DK_ERR_ARG, "%s: no cell %lld", s->path, (long long)cell_id);
        goto fail;
    }
    int64_t want = sqlite3_column_int64(q, 0), have = sqlite3_column_int64(q, 1);
    sqlite3_finalize(q);
    q = NULL;
    if (have != want) {
        rc = dk_fail(err, DK_ERR_STATE, "%s: cell %lld has %lld of %lld samples; it cannot be done", s->path,
                     (long long)cell_id, (long long)have, (long long)want);
        goto fail;
    }
    if ((rc = dk_owned_update(s, cell_id, w,
                              "finished_at = ?1, wall_s = wall_s + (?1 - claimed_at), state = 'done', lease_until = NULL",
                              dk_store_now(), NULL, err)))
        goto fail;
    if ((rc = dk_exec(s, "COMMIT", err)) != DK_OK) goto fail;
    return DK_OK;
fail:
    sqlite3_finalize(q);
    dk_rollback(s);
    return rc;
}

dk_status dk_store_cell_state(dk_store *s, int64_t cell_id, dk_cell_state *state, dk_err *err) {
    sqlite3_stmt *q;
    dk_status rc = dk_prepare(s, "SELECT state FROM cells WHERE id = ?", &q, err);
    if (rc != DK_OK) return rc;
    sqlite3_bind_int64(q, 1, cell_id);
    int step = sqlite3_step(q);
    if (step == SQLITE_ROW) *state = dk_cell_state_parse(sqlite3_column_text(q, 0));
    else if (step == SQLITE_DONE) rc = dk_fail(err, DK_ERR_ARG, "%s: no cell %lld", s->path, (long long)cell_id);
    else rc = dk_sql_fail(s, err, "read cell state");
    sqlite3_finalize(q);
    return rc;
}

dk_status dk_store_sample_ids(dk_store *s, int64_t cell_id, int64_t **ids, size_t *n, dk_err *err) {
    *ids = NULL;
    *n = 0;
    sqlite3_stmt *q;
    dk_status rc = dk_prepare(s, "SELECT sample_id FROM samples WHERE cell_id = ? ORDER BY sample_id", &q, err);
    if (rc != DK_OK) return rc;
    sqlite3_bind_int64(q, 1, cell_id);
    size_t cap = 0;
    int step;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            int64_t *p = realloc(*ids, cap * sizeof *p);
            if (!p) { rc = dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", s->path); break; }
            *ids = p;
        }
        (*ids)[(*n)++] = sqlite3_column_int64(q, 0);
    }
    if (rc == DK_OK && step != SQLITE_DONE) rc = dk_sql_fail(s, err, "read sample ids");
    sqlite3_finalize(q);
    if (rc != DK_OK) { free(*ids); *ids = NULL; *n = 0; }
    return rc;
}

/* ---- samples ---- */

static char *dk_json_int_array(const int64_t *v, int n) {
    size_t cap = 2 + (size_t)(n > 0 ? n : 0) * 21, len = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    s[len++] = '[';
    for (int i = 0; i < n; i++) len += (size_t)snprintf(s + len, cap - len, "%s%lld", i ? "," : "", (long long)v[i]);
    s[len++] = ']';
    s[len] = 0;
    return s;
}

dk_status dk_store_sample_put(dk_store *s, const dk_worker *w, double lease_s, const dk_sample_row *r, dk_err *err) {
    if (r->n_layer < 0 || (r->n_layer > 0 && !r->active))
        return dk_fail(err, DK_ERR_ARG, "%s: cell %lld sample %lld: active tokens per layer missing", s->path,
                       (long long)r->cell_id, (long long)r->sample_id);
    char *active = dk_json_int_array(r->active, r->n_layer);
    if (!active) return dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", s->path);
    sqlite3_stmt *ins = NULL, *lay = NULL;
    dk_status rc = dk_exec(s, "BEGIN IMMEDIATE", err);
    if (rc != DK_OK) { free(active); return rc; }
    double now = dk_store_now();
    if ((rc = dk_owned_update(s, r->cell_id, w, "lease_until = ?", now + lease_s, NULL, err))) goto fail;
    if ((rc = dk_prepare(s,
            "INSERT INTO samples(cell_id, sample_id, sample_key, prompt_tokens, context_tokens, question_tokens,"
            " gen_tokens, active_tokens, flops_dense, flops_method, flops_dense_parts, flops_method_parts,"
            " wall_dense_s, wall_method_s, wall_decode_s, prediction, answers, score, kl, kl_answer, top1, worker,"
            " created_at, kl_answer_max, top1_answer, nll_dense, nll_method, context_key)"
            " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", &ins, err)))
        goto fail;
    sqlite3_bind_int64(ins, 1, r->cell_id);
    sqlite3_bind_int64(ins, 2, r->sample_id);
    dk_bind_text(ins, 3, r->sample_key);
    sqlite3_bind_int64(ins, 4, r->prompt_tokens);
    sqlite3_bind_int64(ins, 5, r->context_tokens);
    sqlite3_bind_int64(ins, 6, r->question_tokens);
    sqlite3_bind_int64(ins, 7, r->gen_tokens);
    dk_bind_text(ins, 8, active);
    sqlite3_bind_int64(ins, 9, r->flops_dense);
    sqlite3_bind_int64(ins, 10, r->flops_method);
    dk_bind_text(ins, 11, r->flops_dense_parts);
    dk_bind_text(ins, 12, r->flops_method_parts);
    dk_bind_real(ins, 13, r->wall_dense_s);
    dk_bind_real(ins, 14, r->wall_method_s);
    dk_bind_real(ins, 15, r->wall_decode_s);
    dk_bind_text(ins, 16, r->prediction);
    dk_bind_text(ins, 17, r->answers);
    dk_bind_real(ins, 18, r->score);
    dk_bind_real(ins, 19, r->kl_first);
    dk_bind_real(ins, 20, r->kl);
    if (r->top1_first < 0) sqlite3_bind_null(ins, 21);
    else sqlite3_bind_int(ins, 21, r->top1_first);
    sqlite3_bind_text(ins, 22, w->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(ins, 23, now);
    dk_bind_real(ins, 24, r->kl_max);
    dk_bind_real(ins, 25, r->top1);
    dk_bind_real(ins, 26, r->nll_dense);
    dk_bind_real(ins, 27, r->nll_method);
    dk_bind_text(ins, 28, r->context_key);
    if (sqlite3_step(ins) != SQLITE_DONE) {
        if (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_UNIQUE)
            rc = dk_fail(err, DK_ERR_STATE, "%s: cell %lld sample %lld is already stored", s->path,
                         (long long)r->cell_id, (long long)r->sample_id);
        else
            rc = dk_fail(err, DK_ERR_ARG, "%s: cell %lld sample %lld: rejected: %s", s->path, (long long)r->cell_id,
                         (long long)r->sample_id, sqlite3_errmsg(s->db));
        goto fail;
    }
    int64_t row = sqlite3_last_insert_rowid(s->db);
    if (r->layers) {
        if ((rc = dk_prepare(s,
                "INSERT INTO sample_layers(sample_row, layer, delta_min, delta_median, delta_max, flops, wall_s)"
                " VALUES(?,?,?,?,?,?,?)", &lay, err)))
            goto fail;
        for (int l = 0; l < r->n_layer; l++) {
            const dk_layer_stat *ls = &r->layers[l];
            sqlite3_reset(lay);
            sqlite3_bind_int64(lay, 1, row);
            sqlite3_bind_int(lay, 2, l);
            dk_bind_real(lay, 3, ls->delta_min);
            dk_bind_real(lay, 4, ls->delta_median);
            dk_bind_real(lay, 5, ls->delta_max);
            sqlite3_bind_int64(lay, 6, ls->flops);
            dk_bind_real(lay, 7, ls->wall_s);
            if (sqlite3_step(lay) != SQLITE_DONE) {
                rc = dk_fail(err, DK_ERR_ARG, "%s: cell %lld sample %lld layer %d: rejected: %s", s->path,
                             (long long)r->cell_id, (long long)r->sample_id, l, sqlite3_errmsg(s->db));
                goto fail;
            }
        }
    }
    sqlite3_finalize(ins);
    sqlite3_finalize(lay);
    ins = lay = NULL;
    if ((rc = dk_exec(s, "COMMIT", err)) != DK_OK) goto fail;
    free(active);
    return DK_OK;
fail:
    sqlite3_finalize(ins);
    sqlite3_finalize(lay);
    dk_rollback(s);
    free(active);
    return rc;
}

/* ---- dense results ---- */

dk_status dk_store_dense_put(dk_store *s, const dk_dense_row *r, int *inserted, dk_err *err) {
    if (r->logits && (r->n_vocab <= 0 || r->n_logit_rows <= 0))
        return dk_fail(err, DK_ERR_ARG, "%s: dense logits need n_vocab and n_logit_rows > 0", s->path);
    sqlite3_stmt *st;
    dk_status rc = dk_prepare(s,
        "INSERT OR IGNORE INTO dense_results(model_sha256, task_key, sample_id, task, task_options, prompt_tokens,"
        " flops, flops_parts, wall_s, prediction, score, n_vocab, n_logit_rows, logits, created_at)"
        " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", &st, err);
    if (rc != DK_OK) return rc;
    dk_bind_text(st, 1, r->model_sha256);
    dk_bind_text(st, 2, r->task_key);
    sqlite3_bind_int64(st, 3, r->sample_id);
    dk_bind_text(st, 4, r->task);
    dk_bind_text(st, 5, r->task_options);
    sqlite3_bind_int64(st, 6, r->prompt_tokens);
    sqlite3_bind_int64(st, 7, r->flops);
    dk_bind_text(st, 8, r->flops_parts);
    dk_bind_real(st, 9, r->wall_s);
    dk_bind_text(st, 10, r->prediction);
    dk_bind_real(st, 11, r->score);
    dk_bind_known(st, 12, r->logits ? r->n_vocab : -1);
    dk_bind_known(st, 13, r->logits ? r->n_logit_rows : -1);
    if (r->logits)
        sqlite3_bind_blob64(st, 14, r->logits, (sqlite3_uint64)(r->n_vocab * r->n_logit_rows) * sizeof(float), SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 14);
    sqlite3_bind_double(st, 15, dk_store_now());
    if (sqlite3_step(st) != SQLITE_DONE) rc = dk_sql_fail(s, err, "insert dense result");
    else if (inserted) *inserted = sqlite3_changes(s->db) > 0;
    sqlite3_finalize(st);
    return rc;
}

dk_status dk_store_dense_get(dk_store *s, const char *model_sha256, const char *task_key, int64_t sample_id,
                             dk_dense_result *out, int *found, dk_err *err) {
    memset(out, 0, sizeof *out);
    *found = 0;
    sqlite3_stmt *q;
    dk_status rc = dk_prepare(s,
        "SELECT prompt_tokens, flops, flops_parts, wall_s, prediction, score, n_vocab, n_logit_rows, logits"
        " FROM dense_results WHERE model_sha256 = ? AND task_key = ? AND sample_id = ?", &q, err);
    if (rc != DK_OK) return rc;
    dk_bind_text(q, 1, model_sha256);
    dk_bind_text(q, 2, task_key);
    sqlite3_bind_int64(q, 3, sample_id);
    int step = sqlite3_step(q);
    if (step == SQLITE_ROW) {
        out->prompt_tokens = sqlite3_column_int64(q, 0);
        out->flops = sqlite3_column_int64(q, 1);
        out->flops_parts = dk_strdup0(sqlite3_column_text(q, 2));
        out->wall_s = sqlite3_column_double(q, 3);
        out->prediction = dk_strdup0(sqlite3_column_text(q, 4));
        out->score = sqlite3_column_type(q, 5) == SQLITE_NULL ? NAN : sqlite3_column_double(q, 5);
        out->n_vocab = sqlite3_column_int64(q, 6);
        out->n_logit_rows = sqlite3_column_int64(q, 7);
        const void *blob = sqlite3_column_blob(q, 8);
        size_t bytes = (size_t)sqlite3_column_bytes(q, 8);
        if (blob && bytes) {
            if (bytes != (size_t)(out->n_vocab * out->n_logit_rows) * sizeof(float)) {
                rc = dk_fail(err, DK_ERR_FORMAT, "%s: dense result logits have %zu bytes, expected %lld x %lld floats",
                             s->path, bytes, (long long)out->n_logit_rows, (long long)out->n_vocab);
            } else if ((out->logits = malloc(bytes))) {
                memcpy(out->logits, blob, bytes);
            } else {
                rc = dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", s->path);
            }
        }
        if (rc == DK_OK) *found = 1;
        else dk_store_dense_free(out);
    } else if (step != SQLITE_DONE) {
        rc = dk_sql_fail(s, err, "read dense result");
    }
    sqlite3_finalize(q);
    return rc;
}

void dk_store_dense_free(dk_dense_result *r) {
    if (!r) return;
    free(r->flops_parts);
    free(r->prediction);
    free(r->logits);
    memset(r, 0, sizeof *r);
}

/* ---- merging shard stores (eval/merge.c drives these; see store.h) ---- */

dk_status dk_store_begin(dk_store *s, dk_err *err) { return dk_exec(s, "BEGIN IMMEDIATE", err); }
dk_status dk_store_commit(dk_store *s, dk_err *err) {
    dk_status st = dk_exec(s, "COMMIT", err);
    if (st) dk_rollback(s);
    return st;
}
void dk_store_rollback(dk_store *s) { dk_rollback(s); }
const char *dk_store_path(const dk_store *s) { return s->path; }

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
    dk_status rc = dk_prepare(s,
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
        for (int i = 0; i < 10; i++) *txt[i] = dk_strdup0(sqlite3_column_text(q, 1 + i));
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

/* Columns of `table` present in both stores, minus skip (NULL-terminated); cmp[i] = 0 for
 * measurements (a name starting with "wall", worker, created_at), which may differ between two
 * runs of the same cell. */
typedef struct {
    int n;
    char name[48][64];
    int cmp[48];
    char list[4096]; /* "a, b, c" */
} dk_merge_cols;

static dk_status dk_merge_cols_load(dk_store *out, dk_store *src, const char *table, const char *const *skip,
                                    dk_merge_cols *c, dk_err *err) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT name FROM pragma_table_info('%s') ORDER BY cid", table);
    sqlite3_stmt *q, *h;
    dk_status rc = dk_prepare(out, sql, &q, err);
    if (rc) return rc;
    if ((rc = dk_prepare(src, "SELECT 1 FROM pragma_table_info(?) WHERE name = ?", &h, err))) { sqlite3_finalize(q); return rc; }
    memset(c, 0, sizeof *c);
    size_t len = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(q, 0);
        int skipped = 0;
        for (int i = 0; skip[i]; i++) skipped |= !strcmp(skip[i], name);
        sqlite3_reset(h);
        sqlite3_bind_text(h, 1, table, -1, SQLITE_STATIC);
        sqlite3_bind_text(h, 2, name, -1, SQLITE_TRANSIENT);
        if (skipped || sqlite3_step(h) != SQLITE_ROW) continue;
        if (c->n == 48 || strlen(name) >= sizeof c->name[0]) { rc = dk_fail(err, DK_ERR_FORMAT, "%s: table %s: too many columns", out->path, table); break; }
        snprintf(c->name[c->n], sizeof c->name[0], "%s", name);
        c->cmp[c->n] = strncmp(name, "wall", 4) != 0 && strcmp(name, "worker") != 0 && strcmp(name, "created_at") != 0;
        len += (size_t)snprintf(c->list + len, sizeof c->list - len, "%s%s", c->n ? ", " : "", name);
        c->n++;
    }
    sqlite3_finalize(q);
    sqlite3_finalize(h);
    return rc;
}

/* Same type and the same bytes (REAL: the same bits). */
static int dk_value_same(sqlite3_value *a, sqlite3_value *b) {
    int t = sqlite3_value_type(a);
    if (t != sqlite3_value_type(b)) return 0;
    switch (t) {
    case SQLITE_NULL: return 1;
    case SQLITE_INTEGER: return sqlite3_value_int64(a) == sqlite3_value_int64(b);
    case SQLITE_FLOAT: { double x = sqlite3_value_double(a), y = sqlite3_value_double(b); return !memcmp(&x, &y, sizeof x); }
    default: {
        int n = sqlite3_value_bytes(a);
        const void *pa = t == SQLITE_TEXT ? (const void *)sqlite3_value_text(a) : sqlite3_value_blob(a);
        const void *pb = t == SQLITE_TEXT ? (const void *)sqlite3_value_text(b) : sqlite3_value_blob(b);
        return n == sqlite3_value_bytes(b) && (n == 0 || !memcmp(pa, pb, (size_t)n));
    }
    }
}

/* Short text of a value for conflict messages. */
static void dk_value_text(sqlite3_value *v, char *buf, size_t n) {
    switch (sqlite3_value_type(v)) {
    case SQLITE_NULL: snprintf(buf, n, "NULL"); break;
    case SQLITE_BLOB: snprintf(buf, n, "<%d bytes>", sqlite3_value_bytes(v)); break;
    case SQLITE_FLOAT: snprintf(buf, n, "%.17g", sqlite3_value_double(v)); break;
    default: snprintf(buf, n, "%.40s%s", (const char *)sqlite3_value_text(v), sqlite3_value_bytes(v) > 40 ? "..." : "");
    }
}

/* Column i (c's order) of a and b that differs (columns start at offset ao / bo), or -1. */
static int dk_row_diff(sqlite3_stmt *a, int ao, sqlite3_stmt *b, int bo, const dk_merge_cols *c) {
    for (int i = 0; i < c->n; i++)
        if (c->cmp[i] && !dk_value_same(sqlite3_column_value(a, ao + i), sqlite3_column_value(b, bo + i))) return i;
    return -1;
}

static dk_status dk_merge_conflict(dk_store *src, const char *what, const char *col, sqlite3_value *mine,
                                   sqlite3_value *theirs, dk_err *err) {
    char a[64], b[64];
    dk_value_text(theirs, a, sizeof a);
    dk_value_text(mine, b, sizeof b);
    return dk_fail(err, DK_ERR_STATE, "%s: %s: %s differs from the result already merged (%s here, %s there); refusing "
                   "conflicting results for one cell identity", src->path, what, col, b, a);
}

/* "INSERT INTO table(lead, cols) VALUES(?,...)suffix", one ? per column (lead NULL: none). */
static void dk_merge_insert_sql(char *sql, size_t n, const char *table, const char *lead, const dk_merge_cols *c,
                                const char *suffix) {
    size_t len = (size_t)snprintf(sql, n, "INSERT INTO %s(%s%s%s) VALUES(", table, lead ? lead : "", lead ? ", " : "", c->list);
    for (int i = 0; i < c->n + (lead ? 1 : 0) && len < n; i++) len += (size_t)snprintf(sql + len, n - len, "%s?", i ? "," : "");
    if (len < n) snprintf(sql + len, n - len, ")%s", suffix);
}

typedef struct {
    sqlite3_stmt *src_layers, *out_layers, *ins_layer;
    dk_merge_cols lc; /* sample_layers columns but sample_row */
} dk_merge_layers;

/* Layer rows of src sample src_row vs out sample out_row (0 = just inserted: copy them). */
static dk_status dk_merge_sample_layers(dk_store *out, dk_store *src, dk_merge_layers *L, int64_t src_row, int64_t out_row,
                                        int fresh, const char *what, dk_err *err) {
    sqlite3_reset(L->src_layers);
    sqlite3_bind_int64(L->src_layers, 1, src_row);
    if (!fresh) { sqlite3_reset(L->out_layers); sqlite3_bind_int64(L->out_layers, 1, out_row); }
    for (;;) {
        int a = sqlite3_step(L->src_layers);
        if (a != SQLITE_ROW && a != SQLITE_DONE) return dk_sql_fail(src, err, "read sample layers");
        if (fresh) {
            if (a == SQLITE_DONE) return DK_OK;
            sqlite3_reset(L->ins_layer);
            sqlite3_bind_int64(L->ins_layer, 1, out_row);
            for (int i = 0; i < L->lc.n; i++) sqlite3_bind_value(L->ins_layer, 2 + i, sqlite3_column_value(L->src_layers, i));
            if (sqlite3_step(L->ins_layer) != SQLITE_DONE) return dk_sql_fail(out, err, "insert sample layer");
            continue;
        }
        int b = sqlite3_step(L->out_layers);
        if (b != SQLITE_ROW && b != SQLITE_DONE) return dk_sql_fail(out, err, "read sample layers");
        if (a == SQLITE_DONE && b == SQLITE_DONE) return DK_OK;
        if (a != b) return dk_fail(err, DK_ERR_STATE, "%s: %s: a different number of layer rows than the result already "
                                   "merged; refusing conflicting results for one cell identity", src->path, what);
        int d = dk_row_diff(L->src_layers, 0, L->out_layers, 0, &L->lc);
        if (d >= 0) {
            char col[96];
            snprintf(col, sizeof col, "layer %d %s", sqlite3_column_int(L->src_layers, 0), L->lc.name[d]);
            return dk_merge_conflict(src, what, col, sqlite3_column_value(L->src_layers, d), sqlite3_column_value(L->out_layers, d), err);
        }
    }
}

/* The merged run of config_hash in out (the first run with run_shards rows), created from r when
 * there is none. */
static dk_status dk_merge_run(dk_store *out, const dk_store_run *r, const char *command, int64_t *run_id, dk_err *err) {
    sqlite3_stmt *q;
    dk_status rc = dk_prepare(out, "SELECT id FROM runs WHERE config_hash = ? AND id IN (SELECT run_id FROM run_shards)"
                                   " ORDER BY id LIMIT 1", &q, err);
    if (rc) return rc;
    sqlite3_bind_text(q, 1, r->config_hash, -1, SQLITE_TRANSIENT);
    int step = sqlite3_step(q);
    if (step == SQLITE_ROW) *run_id = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    if (step == SQLITE_ROW) return DK_OK;
    if (step != SQLITE_DONE) return dk_sql_fail(out, err, "find the merged run");
    dk_run_info ri = {.name = r->name, .config_path = r->config_path, .config_text = r->config_text,
                      .config_hash = r->config_hash, .command = command, .threads = r->threads, .workers = 0,
                      .n_cells = r->n_cells};
    return dk_store_run_begin(out, &ri, run_id, err);
}

dk_status dk_store_merge_from(dk_store *out, dk_store *src, const dk_store_run *config_run, const char *command,
                              int64_t *merged_run, dk_store_merge_stats *ms, dk_err *err) {
    static const char *const skip_samples[] = {"id", "cell_id", NULL};
    static const char *const skip_layers[] = {"sample_row", NULL};
    static const char *const skip_dense[] = {NULL};
    const char *hash = config_run->config_hash;
    sqlite3_stmt *st[16] = {0};
    dk_merge_layers L;
    dk_merge_cols sc, dc;
    char sql[8192];
    int64_t run_id = 0;
    dk_status rc = dk_merge_run(out, config_run, command, &run_id, err);
    if (!rc) rc = dk_merge_cols_load(out, src, "samples", skip_samples, &sc, err);
    if (!rc) rc = dk_merge_cols_load(out, src, "sample_layers", skip_layers, &L.lc, err);
    if (!rc) rc = dk_merge_cols_load(out, src, "dense_results", skip_dense, &dc, err);
    if (rc) return rc;
    *merged_run = run_id;
    int sid_col = -1;
    for (int i = 0; i < sc.n; i++) if (!strcmp(sc.name[i], "sample_id")) sid_col = i;
    if (sid_col < 0 || L.lc.n < 1 || strcmp(L.lc.name[0], "layer") != 0)
        return dk_fail(err, DK_ERR_FORMAT, "%s: unexpected samples/sample_layers columns", src->path);
    enum { SRUNS, INS_RS, SCELLS, OCELL, INS_MODEL, GET_MODEL, INS_CELL, LINK, SSAMP, OSAMP, INS_SAMP, DONE, FAIL, SDENSE,
           ODENSE, INS_DENSE };
    /* 1. the shard's runs of this config: provenance rows of the merged run */
    if ((rc = dk_prepare(src, "SELECT id, shard, git_rev, coalesce(host, ''), cpu, blas_core, threads, workers, command,"
                              " started_at, finished_at FROM runs WHERE config_hash = ? ORDER BY id", &st[SRUNS], err)) ||
        (rc = dk_prepare(out, "INSERT INTO run_shards(run_id, source, shard, src_run_id, config_hash, git_rev, host, cpu,"
                              " blas_core, threads, workers, command, started_at, finished_at)"
                              " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO UPDATE SET"
                              " finished_at = coalesce(excluded.finished_at, finished_at)", &st[INS_RS], err)))
        goto done;
    sqlite3_bind_text(st[SRUNS], 1, hash, -1, SQLITE_TRANSIENT);
    while ((rc = DK_OK, sqlite3_step(st[SRUNS])) == SQLITE_ROW) {
        sqlite3_stmt *a = st[SRUNS], *b = st[INS_RS];
        sqlite3_reset(b);
        sqlite3_bind_int64(b, 1, run_id);
        sqlite3_bind_text(b, 2, src->path, -1, SQLITE_TRANSIENT);
        sqlite3_bind_value(b, 3, sqlite3_column_value(a, 1));
        sqlite3_bind_value(b, 4, sqlite3_column_value(a, 0));
        sqlite3_bind_text(b, 5, hash, -1, SQLITE_TRANSIENT);
        for (int i = 2; i <= 10; i++) sqlite3_bind_value(b, 4 + i, sqlite3_column_value(a, i));
        if (sqlite3_step(b) != SQLITE_DONE) { rc = dk_sql_fail(out, err, "record shard provenance"); goto done; }
    }
    /* 2. cells of this config's runs, with their models; samples and layers; final state */
    if ((rc = dk_prepare(src,
            "SELECT c.id, c.key, c.identity, c.task, c.task_options, c.task_key, c.method, c.params, c.n_samples, c.seed,"
            " c.state, c.error, c.attempts, c.worker, c.worker_host, c.worker_pid, c.worker_start, c.created_at,"
            " c.claimed_at, c.started_at, c.finished_at, c.wall_s, min(rc.ord),"
            " m.sha256, m.path, m.arch, m.n_layer, m.n_embd, m.n_head, m.n_head_kv, m.n_ff, m.n_vocab, m.n_ctx, m.n_params,"
            " m.file_bytes, m.added_at"
            " FROM cells c JOIN models m ON m.id = c.model_id JOIN run_cells rc ON rc.cell_id = c.id"
            " JOIN runs r ON r.id = rc.run_id WHERE r.config_hash = ? GROUP BY c.id ORDER BY min(rc.ord), c.id",
            &st[SCELLS], err)) ||
        (rc = dk_prepare(out, "SELECT id, state, identity FROM cells WHERE key = ?", &st[OCELL], err)) ||
        (rc = dk_prepare(out, "INSERT INTO models(sha256, path, arch, n_layer, n_embd, n_head, n_head_kv, n_ff, n_vocab,"
                              " n_ctx, n_params, file_bytes, added_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)"
                              " ON CONFLICT(sha256) DO NOTHING", &st[INS_MODEL], err)) ||
        (rc = dk_prepare(out, "SELECT id FROM models WHERE sha256 = ?", &st[GET_MODEL], err)) ||
        (rc = dk_prepare(out, "INSERT INTO cells(key, identity, run_id, model_id, task, task_options, task_key, method,"
                              " params, n_samples, seed, created_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
                         &st[INS_CELL], err)) ||
        (rc = dk_prepare(out, "INSERT OR IGNORE INTO run_cells(run_id, cell_id, ord) VALUES(?,?,?)", &st[LINK], err)))
        goto done;
    snprintf(sql, sizeof sql, "SELECT id, %s FROM samples WHERE cell_id = ? ORDER BY sample_id", sc.list);
    if ((rc = dk_prepare(src, sql, &st[SSAMP], err))) goto done;
    snprintf(sql, sizeof sql, "SELECT id, %s FROM samples WHERE cell_id = ? AND sample_id = ?", sc.list);
    if ((rc = dk_prepare(out, sql, &st[OSAMP], err))) goto done;
    dk_merge_insert_sql(sql, sizeof sql, "samples", "cell_id", &sc, " RETURNING id");
    if ((rc = dk_prepare(out, sql, &st[INS_SAMP], err))) goto done;
    snprintf(sql, sizeof sql, "SELECT %s FROM sample_layers WHERE sample_row = ? ORDER BY layer", L.lc.list);
    if ((rc = dk_prepare(src, sql, &L.src_layers, err))) goto done;
    if ((rc = dk_prepare(out, sql, &L.out_layers, err))) goto done;
    dk_merge_insert_sql(sql, sizeof sql, "sample_layers", "sample_row", &L.lc, "");
    if ((rc = dk_prepare(out, sql, &L.ins_layer, err))) goto done;
    if ((rc = dk_prepare(out, "UPDATE cells SET state = 'done', error = NULL, attempts = ?, worker = ?, worker_host = ?,"
                              " worker_pid = ?, worker_start = ?, lease_until = NULL, claimed_at = ?, started_at = ?,"
                              " finished_at = ?, wall_s = ? WHERE id = ? AND state <> 'done'", &st[DONE], err)) ||
        (rc = dk_prepare(out, "UPDATE cells SET state = 'failed', error = ?, attempts = ?, finished_at = ?, wall_s = ?"
                              " WHERE id = ? AND state = 'pending'", &st[FAIL], err)))
        goto done;
    sqlite3_bind_text(st[SCELLS], 1, hash, -1, SQLITE_TRANSIENT);
    int step;
    while ((step = sqlite3_step(st[SCELLS])) == SQLITE_ROW) {
        sqlite3_stmt *c = st[SCELLS];
        char what[1024];
        snprintf(what, sizeof what, "cell %.12s (%s %s %s %s)", (const char *)sqlite3_column_text(c, 1),
                 (const char *)sqlite3_column_text(c, 3), (const char *)sqlite3_column_text(c, 4),
                 (const char *)sqlite3_column_text(c, 6), (const char *)sqlite3_column_text(c, 7));
        /* the model, then the cell */
        sqlite3_reset(st[INS_MODEL]);
        for (int i = 0; i < 13; i++) sqlite3_bind_value(st[INS_MODEL], 1 + i, sqlite3_column_value(c, 23 + i));
        if (sqlite3_step(st[INS_MODEL]) != SQLITE_DONE) { rc = dk_sql_fail(out, err, "insert model"); goto done; }
        sqlite3_reset(st[OCELL]);
        sqlite3_bind_value(st[OCELL], 1, sqlite3_column_value(c, 1));
        int64_t cell = 0;
        int out_done = 0;
        int o = sqlite3_step(st[OCELL]);
        if (o == SQLITE_ROW) {
            cell = sqlite3_column_int64(st[OCELL], 0);
            out_done = !strcmp((const char *)sqlite3_column_text(st[OCELL], 1), "done");
            if (!dk_value_same(sqlite3_column_value(st[OCELL], 2), sqlite3_column_value(c, 2))) {
                rc = dk_fail(err, DK_ERR_STATE, "%s: %s: its identity differs from the cell of the same key already merged",
                             src->path, what);
                goto done;
            }
        } else if (o == SQLITE_DONE) {
            sqlite3_reset(st[GET_MODEL]);
            sqlite3_bind_value(st[GET_MODEL], 1, sqlite3_column_value(c, 23));
            if (sqlite3_step(st[GET_MODEL]) != SQLITE_ROW) { rc = dk_sql_fail(out, err, "find model"); goto done; }
            sqlite3_stmt *ins = st[INS_CELL];
            sqlite3_reset(ins);
            sqlite3_bind_value(ins, 1, sqlite3_column_value(c, 1));
            sqlite3_bind_value(ins, 2, sqlite3_column_value(c, 2));
            sqlite3_bind_int64(ins, 3, run_id);
            sqlite3_bind_int64(ins, 4, sqlite3_column_int64(st[GET_MODEL], 0));
            for (int i = 3; i <= 9; i++) sqlite3_bind_value(ins, 2 + i, sqlite3_column_value(c, i));
            sqlite3_bind_value(ins, 12, sqlite3_column_value(c, 17));
            if (sqlite3_step(ins) != SQLITE_ROW) { rc = dk_sql_fail(out, err, "insert cell"); goto done; }
            cell = sqlite3_column_int64(ins, 0);
            ms->cells_added++;
        } else {
            rc = dk_sql_fail(out, err, "find cell");
            goto done;
        }
        sqlite3_reset(st[LINK]);
        sqlite3_bind_int64(st[LINK], 1, run_id);
        sqlite3_bind_int64(st[LINK], 2, cell);
        sqlite3_bind_value(st[LINK], 3, sqlite3_column_value(c, 22));
        if (sqlite3_step(st[LINK]) != SQLITE_DONE) { rc = dk_sql_fail(out, err, "link cell"); goto done; }
        /* its samples: new ones copied with their layers, stored ones compared */
        sqlite3_reset(st[SSAMP]);
        sqlite3_bind_value(st[SSAMP], 1, sqlite3_column_value(c, 0));
        int s1;
        while ((s1 = sqlite3_step(st[SSAMP])) == SQLITE_ROW) {
            sqlite3_stmt *a = st[SSAMP], *b = st[OSAMP];
            char swhat[1100];
            snprintf(swhat, sizeof swhat, "%s sample %lld", what, (long long)sqlite3_column_int64(a, 1 + sid_col));
            sqlite3_reset(b);
            sqlite3_bind_int64(b, 1, cell);
            sqlite3_bind_value(b, 2, sqlite3_column_value(a, 1 + sid_col));
            int s2 = sqlite3_step(b);
            int64_t row;
            if (s2 == SQLITE_ROW) {
                int d = dk_row_diff(a, 1, b, 1, &sc);
                if (d >= 0) { rc = dk_merge_conflict(src, swhat, sc.name[d], sqlite3_column_value(a, 1 + d), sqlite3_column_value(b, 1 + d), err); goto done; }
                row = sqlite3_column_int64(b, 0);
                ms->samples_same++;
            } else if (s2 == SQLITE_DONE) {
                sqlite3_stmt *ins = st[INS_SAMP];
                sqlite3_reset(ins);
                sqlite3_bind_int64(ins, 1, cell);
                for (int i = 0; i < sc.n; i++) sqlite3_bind_value(ins, 2 + i, sqlite3_column_value(a, 1 + i));
                if (sqlite3_step(ins) != SQLITE_ROW) { rc = dk_sql_fail(out, err, "insert sample"); goto done; }
                row = sqlite3_column_int64(ins, 0);
                sqlite3_reset(ins);
                ms->samples_added++;
            } else {
                rc = dk_sql_fail(out, err, "find sample");
                goto done;
            }
            if ((rc = dk_merge_sample_layers(out, src, &L, sqlite3_column_int64(a, 0), row, s2 == SQLITE_DONE, swhat, err)))
                goto done;
        }
        if (s1 != SQLITE_DONE) { rc = dk_sql_fail(src, err, "read samples"); goto done; }
        /* state: done anywhere wins; a failure is kept unless done elsewhere; running -> pending */
        const char *state = (const char *)sqlite3_column_text(c, 10);
        if (!out_done && !strcmp(state, "done")) {
            sqlite3_stmt *u = st[DONE];
            sqlite3_reset(u);
            sqlite3_bind_value(u, 1, sqlite3_column_value(c, 12));
            for (int i = 0; i < 4; i++) sqlite3_bind_value(u, 2 + i, sqlite3_column_value(c, 13 + i));
            for (int i = 0; i < 4; i++) sqlite3_bind_value(u, 6 + i, sqlite3_column_value(c, 18 + i));
            sqlite3_bind_int64(u, 10, cell);
            if (sqlite3_step(u) != SQLITE_DONE) {
                rc = dk_fail(err, DK_ERR_STATE, "%s: %s: done in the shard but %s", src->path, what, sqlite3_errmsg(out->db));
                goto done;
            }
        } else if (!out_done && !strcmp(state, "failed")) {
            sqlite3_stmt *u = st[FAIL];
            sqlite3_reset(u);
            sqlite3_bind_value(u, 1, sqlite3_column_value(c, 11));
            sqlite3_bind_value(u, 2, sqlite3_column_value(c, 12));
            sqlite3_bind_value(u, 3, sqlite3_column_value(c, 20));
            sqlite3_bind_value(u, 4, sqlite3_column_value(c, 21));
            sqlite3_bind_int64(u, 5, cell);
            if (sqlite3_step(u) != SQLITE_DONE) { rc = dk_sql_fail(out, err, "mark cell failed"); goto done; }
        }
    }
    if (step != SQLITE_DONE) { rc = dk_sql_fail(src, err, "read cells"); goto done; }
    /* 3. dense references: new ones copied, stored ones compared */
    snprintf(sql, sizeof sql, "SELECT %s FROM dense_results ORDER BY model_sha256, task_key, sample_id", dc.list);
    if ((rc = dk_prepare(src, sql, &st[SDENSE], err))) goto done;
    snprintf(sql, sizeof sql, "SELECT %s FROM dense_results WHERE model_sha256 = ? AND task_key = ? AND sample_id = ?", dc.list);
    if ((rc = dk_prepare(out, sql, &st[ODENSE], err))) goto done;
    dk_merge_insert_sql(sql, sizeof sql, "dense_results", NULL, &dc, "");
    if ((rc = dk_prepare(out, sql, &st[INS_DENSE], err))) goto done;
    int key_col[3] = {-1, -1, -1};
    for (int i = 0; i < dc.n; i++) {
        if (!strcmp(dc.name[i], "model_sha256")) key_col[0] = i;
        if (!strcmp(dc.name[i], "task_key")) key_col[1] = i;
        if (!strcmp(dc.name[i], "sample_id")) key_col[2] = i;
    }
    if (key_col[0] < 0 || key_col[1] < 0 || key_col[2] < 0) { rc = dk_fail(err, DK_ERR_FORMAT, "%s: unexpected dense_results columns", src->path); goto done; }
    while ((step = sqlite3_step(st[SDENSE])) == SQLITE_ROW) {
        sqlite3_stmt *a = st[SDENSE], *b = st[ODENSE];
        sqlite3_reset(b);
        for (int k = 0; k < 3; k++) sqlite3_bind_value(b, 1 + k, sqlite3_column_value(a, key_col[k]));
        int s2 = sqlite3_step(b);
        if (s2 == SQLITE_ROW) {
            int d = dk_row_diff(a, 0, b, 0, &dc);
            if (d >= 0) {
                char dwhat[512];
                int tc = -1, oc = -1;
                for (int i = 0; i < dc.n; i++) { if (!strcmp(dc.name[i], "task")) tc = i; if (!strcmp(dc.name[i], "task_options")) oc = i; }
                snprintf(dwhat, sizeof dwhat, "dense reference of %s %s sample %lld (model %.12s)",
                         tc >= 0 ? (const char *)sqlite3_column_text(a, tc) : "?", oc >= 0 ? (const char *)sqlite3_column_text(a, oc) : "",
                         (long long)sqlite3_column_int64(a, key_col[2]), (const char *)sqlite3_column_text(a, key_col[0]));
                rc = dk_merge_conflict(src, dwhat, dc.name[d], sqlite3_column_value(a, d), sqlite3_column_value(b, d), err);
                goto done;
            }
        } else if (s2 == SQLITE_DONE) {
            sqlite3_reset(st[INS_DENSE]);
            for (int i = 0; i < dc.n; i++) sqlite3_bind_value(st[INS_DENSE], 1 + i, sqlite3_column_value(a, i));
            if (sqlite3_step(st[INS_DENSE]) != SQLITE_DONE) { rc = dk_sql_fail(out, err, "insert dense result"); goto done; }
            ms->dense_added++;
        } else {
            rc = dk_sql_fail(out, err, "find dense result");
            goto done;
        }
    }
    if (step != SQLITE_DONE) { rc = dk_sql_fail(src, err, "read dense results"); goto done; }
    /* 4. the merged run's provenance: every shard run's host, CPU, BLAS core and revision */
    sqlite3_finalize(st[SRUNS]);
    st[SRUNS] = NULL;
    if ((rc = dk_prepare(out,
            "UPDATE runs SET"
            " host = (SELECT group_concat(v, ', ') FROM (SELECT DISTINCT host AS v FROM run_shards WHERE run_id = ?1 AND host <> '' ORDER BY 1)),"
            " cpu = (SELECT group_concat(v, ', ') FROM (SELECT DISTINCT cpu AS v FROM run_shards WHERE run_id = ?1 ORDER BY 1)),"
            " blas_core = (SELECT group_concat(v, ', ') FROM (SELECT DISTINCT blas_core AS v FROM run_shards WHERE run_id = ?1 ORDER BY 1)),"
            " git_rev = (SELECT group_concat(v, ', ') FROM (SELECT DISTINCT git_rev AS v FROM run_shards WHERE run_id = ?1 ORDER BY 1)),"
            " threads = (SELECT max(threads) FROM run_shards WHERE run_id = ?1),"
            " workers = (SELECT sum(workers) FROM run_shards WHERE run_id = ?1),"
            " started_at = (SELECT min(started_at) FROM run_shards WHERE run_id = ?1),"
            " finished_at = (SELECT CASE WHEN count(*) = count(finished_at) THEN max(finished_at) END FROM run_shards WHERE run_id = ?1)"
            " WHERE id = ?1", &st[SRUNS], err)))
        goto done;
    sqlite3_bind_int64(st[SRUNS], 1, run_id);
    if (sqlite3_step(st[SRUNS]) != SQLITE_DONE) rc = dk_sql_fail(out, err, "record merged provenance");
done:
    for (int i = 0; i < 16; i++) sqlite3_finalize(st[i]);
    sqlite3_finalize(L.src_layers);
    sqlite3_finalize(L.out_layers);
    sqlite3_finalize(L.ins_layer);
    return rc;
}

dk_status dk_store_run_counts(dk_store *s, int64_t run_id, int64_t counts[4], int64_t *samples, dk_err *err) {
    sqlite3_stmt *q;
    dk_status rc = dk_prepare(s,
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
    dk_status rc = dk_exec(s, "BEGIN IMMEDIATE", err);
    if (rc != DK_OK) return rc;
    if ((rc = dk_prepare(s,
            "INSERT INTO analyses(run_id, model_sha256, model_path, task, task_options, n_samples, n_layer, ls, ls_layer,"
            " rho, delta_received_spearman, created_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)", &q, err)))
        goto fail;
    dk_bind_known(q, 1, a->run_id > 0 ? a->run_id : -1);
    dk_bind_text(q, 2, a->model_sha256);
    dk_bind_text(q, 3, a->model_path);
    dk_bind_text(q, 4, a->task);
    dk_bind_text(q, 5, a->task_options);
    sqlite3_bind_int(q, 6, a->n_samples);
    sqlite3_bind_int(q, 7, a->n_layer);
    dk_bind_real(q, 8, a->ls);
    sqlite3_bind_int(q, 9, a->ls_layer);
    dk_bind_real(q, 10, a->rho);
    dk_bind_real(q, 11, a->delta_received_spearman);
    a->created_at = dk_store_now();
    sqlite3_bind_double(q, 12, a->created_at);
    if (sqlite3_step(q) != SQLITE_DONE) { rc = dk_sql_fail(s, err, "insert analysis"); goto fail; }
    a->id = sqlite3_last_insert_rowid(s->db);
    sqlite3_finalize(q);
    q = NULL;
    if ((rc = dk_prepare(s, "INSERT INTO analysis_layers VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", &q, err))) goto fail;
    for (int l = 0; l < a->n_layer; l++) {
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, a->id);
        sqlite3_bind_int(q, 2, l);
        for (int k = 0; k < DK_ANALYSIS_NQ; k++) {
            dk_bind_real(q, 3 + k, a->delta_q[l * DK_ANALYSIS_NQ + k]);
            dk_bind_real(q, 3 + DK_ANALYSIS_NQ + k, a->rel_q[l * DK_ANALYSIS_NQ + k]);
        }
        dk_bind_real(q, 17, a->received_mean[l]);
        dk_bind_real(q, 18, a->received_spearman[l]);
        if (sqlite3_step(q) != SQLITE_DONE) { rc = dk_sql_fail(s, err, "insert analysis layer"); goto fail; }
    }
    sqlite3_finalize(q);
    q = NULL;
    if ((rc = dk_prepare(s, "INSERT INTO analysis_deciles VALUES(?,?,?,?)", &q, err))) goto fail;
    for (int k = 0; k < 10; k++) {
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, a->id);
        sqlite3_bind_int(q, 2, k);
        dk_bind_real(q, 3, a->decile_delta[k]);
        dk_bind_real(q, 4, a->decile_received[k]);
        if (sqlite3_step(q) != SQLITE_DONE) { rc = dk_sql_fail(s, err, "insert analysis decile"); goto fail; }
    }
    sqlite3_finalize(q);
    q = NULL;
    if ((rc = dk_prepare(s, "INSERT INTO analysis_recall VALUES(?,?,?,?,?)", &q, err))) goto fail;
    for (int k = 0; k < a->n_recall; k++) {
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, a->id);
        dk_bind_text(q, 2, a->recall[k].method);
        dk_bind_real(q, 3, a->recall[k].rho);
        dk_bind_real(q, 4, a->recall[k].recall);
        dk_bind_real(q, 5, a->recall[k].kept_frac);
        if (sqlite3_step(q) != SQLITE_DONE) { rc = dk_sql_fail(s, err, "insert analysis recall"); goto fail; }
    }
    sqlite3_finalize(q);
    q = NULL;
    if ((rc = dk_prepare(s, "INSERT INTO analysis_overlap VALUES(?,?,?,?)", &q, err))) goto fail;
    for (int k = 0; k < a->n_overlap; k++) {
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, a->id);
        dk_bind_text(q, 2, a->overlap[k].a);
        dk_bind_text(q, 3, a->overlap[k].b);
        dk_bind_real(q, 4, a->overlap[k].jaccard);
        if (sqlite3_step(q) != SQLITE_DONE) { rc = dk_sql_fail(s, err, "insert analysis overlap"); goto fail; }
    }
    sqlite3_finalize(q);
    q = NULL;
    if ((rc = dk_exec(s, "COMMIT", err)) != DK_OK) goto fail;
    return DK_OK;
fail:
    sqlite3_finalize(q);
    dk_rollback(s);
    return rc;
}

static double dk_col_real(sqlite3_stmt *q, int i) {
    return sqlite3_column_type(q, i) == SQLITE_NULL ? NAN : sqlite3_column_double(q, i);
}

dk_status dk_store_analysis_get(dk_store *s, int64_t id, const char *model_sha256, dk_analysis *a, int *found,
                                dk_err *err) {
    memset(a, 0, sizeof *a);
    *found = 0;
    sqlite3_stmt *q = NULL;
    dk_status rc = dk_prepare(s,
        "SELECT id, coalesce(run_id, 0), model_sha256, model_path, task, task_options, n_samples, n_layer, ls, ls_layer,"
        " rho, delta_received_spearman, created_at FROM analyses"
        " WHERE (?1 > 0 AND id = ?1) OR (?1 <= 0 AND (?2 IS NULL OR model_sha256 = ?2)) ORDER BY id DESC LIMIT 1", &q, err);
    if (rc != DK_OK) return rc;
    sqlite3_bind_int64(q, 1, id);
    dk_bind_text(q, 2, model_sha256);
    int step = sqlite3_step(q);
    if (step == SQLITE_DONE) { sqlite3_finalize(q); return DK_OK; }
    if (step != SQLITE_ROW) { rc = dk_sql_fail(s, err, "read analysis"); sqlite3_finalize(q); return rc; }
    a->id = sqlite3_column_int64(q, 0);
    a->run_id = sqlite3_column_int64(q, 1);
    snprintf(a->model_sha256, sizeof a->model_sha256, "%s", (const char *)sqlite3_column_text(q, 2));
    a->model_path = dk_strdup0(sqlite3_column_text(q, 3));
    a->task = dk_strdup0(sqlite3_column_text(q, 4));
    a->task_options = dk_strdup0(sqlite3_column_text(q, 5));
    a->n_samples = sqlite3_column_int(q, 6);
    a->n_layer = sqlite3_column_int(q, 7);
    a->ls = dk_col_real(q, 8);
    a->ls_layer = sqlite3_column_int(q, 9);
    a->rho = dk_col_real(q, 10);
    a->delta_received_spearman = dk_col_real(q, 11);
    a->created_at = dk_col_real(q, 12);
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
    if ((rc = dk_prepare(s, "SELECT * FROM analysis_layers WHERE analysis_id = ? ORDER BY layer", &q, err))) goto fail;
    sqlite3_bind_int64(q, 1, a->id);
    while (sqlite3_step(q) == SQLITE_ROW) {
        int l = sqlite3_column_int(q, 1);
        if (l < 0 || l >= a->n_layer) continue;
        for (int k = 0; k < DK_ANALYSIS_NQ; k++) {
            a->delta_q[l * DK_ANALYSIS_NQ + k] = dk_col_real(q, 2 + k);
            a->rel_q[l * DK_ANALYSIS_NQ + k] = dk_col_real(q, 2 + DK_ANALYSIS_NQ + k);
        }
        a->received_mean[l] = dk_col_real(q, 16);
        a->received_spearman[l] = dk_col_real(q, 17);
    }
    sqlite3_finalize(q);
    q = NULL;
    for (int k = 0; k < 10; k++) a->decile_delta[k] = a->decile_received[k] = NAN;
    if ((rc = dk_prepare(s, "SELECT decile, delta_mean, received_mean FROM analysis_deciles WHERE analysis_id = ?", &q, err)))
        goto fail;
    sqlite3_bind_int64(q, 1, a->id);
    while (sqlite3_step(q) == SQLITE_ROW) {
        int k = sqlite3_column_int(q, 0);
        if (k < 0 || k >= 10) continue;
        a->decile_delta[k] = dk_col_real(q, 1);
        a->decile_received[k] = dk_col_real(q, 2);
    }
    sqlite3_finalize(q);
    q = NULL;
    if ((rc = dk_prepare(s, "SELECT method, rho, recall, kept_frac FROM analysis_recall WHERE analysis_id = ? ORDER BY method, rho",
                         &q, err)))
        goto fail;
    sqlite3_bind_int64(q, 1, a->id);
    while (sqlite3_step(q) == SQLITE_ROW) {
        dk_analysis_recall *p = realloc(a->recall, (size_t)(a->n_recall + 1) * sizeof *p);
        if (!p) { rc = dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", s->path); goto fail; }
        a->recall = p;
        dk_analysis_recall *r = &a->recall[a->n_recall++];
        snprintf(r->method, sizeof r->method, "%s", (const char *)sqlite3_column_text(q, 0));
        r->rho = dk_col_real(q, 1);
        r->recall = dk_col_real(q, 2);
        r->kept_frac = dk_col_real(q, 3);
    }
    sqlite3_finalize(q);
    q = NULL;
    if ((rc = dk_prepare(s, "SELECT method_a, method_b, jaccard FROM analysis_overlap WHERE analysis_id = ?"
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
        o->jaccard = dk_col_real(q, 2);
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
    dk_status rc = dk_prepare(s,
        "SELECT id FROM analyses WHERE model_sha256 = ? AND task = ? AND coalesce(task_options, '') = coalesce(?, '')"
        " AND n_samples = ? AND ls = ? AND rho = ? ORDER BY id DESC LIMIT 1", &q, err);
    if (rc != DK_OK) return rc;
    dk_bind_text(q, 1, a->model_sha256);
    dk_bind_text(q, 2, a->task);
    dk_bind_text(q, 3, a->task_options);
    sqlite3_bind_int(q, 4, a->n_samples);
    sqlite3_bind_double(q, 5, a->ls);
    sqlite3_bind_double(q, 6, a->rho);
    int step = sqlite3_step(q);
    if (step == SQLITE_ROW) *id = sqlite3_column_int64(q, 0);
    else if (step != SQLITE_DONE) rc = dk_sql_fail(s, err, "find analysis");
    sqlite3_finalize(q);
    return rc;
}
