/* store_merge.c — uniting shard stores into one (store.h dk_store_merge_from; eval/sweep/merge.c drives it). */
#include "store_int.h"

#include <stdio.h>
#include <string.h>

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
    dk_status rc = dk_sql_prepare(out, sql, &q, err);
    if (rc) return rc;
    if ((rc = dk_sql_prepare(src, "SELECT 1 FROM pragma_table_info(?) WHERE name = ?", &h, err))) {
        sqlite3_finalize(q);
        return rc;
    }
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
        if (c->n == 48 || strlen(name) >= sizeof c->name[0]) {
            rc = dk_fail(err, DK_ERR_FORMAT, "%s: table %s: too many columns", out->path, table);
            break;
        }
        snprintf(c->name[c->n], sizeof c->name[0], "%s", name);
        c->cmp[c->n] = strncmp(name, "wall", 4) != 0 && strcmp(name, "worker") != 0 &&
                       strcmp(name, "created_at") != 0;
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
    case SQLITE_FLOAT: {
        double x = sqlite3_value_double(a), y = sqlite3_value_double(b);
        return !memcmp(&x, &y, sizeof x);
    }
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
    default:
        snprintf(buf, n, "%.40s%s", (const char *)sqlite3_value_text(v),
                 sqlite3_value_bytes(v) > 40 ? "..." : "");
    }
}

/* Column i (c's order) of a and b that differs (columns start at offset ao / bo), or -1. */
static int dk_row_diff(sqlite3_stmt *a, int ao, sqlite3_stmt *b, int bo, const dk_merge_cols *c) {
    for (int i = 0; i < c->n; i++)
        if (c->cmp[i] && !dk_value_same(sqlite3_column_value(a, ao + i), sqlite3_column_value(b, bo + i)))
            return i;
    return -1;
}

static dk_status dk_merge_conflict(dk_store *src, const char *what, const char *col, sqlite3_value *mine,
                                   sqlite3_value *theirs, dk_err *err) {
    char a[64], b[64];
    dk_value_text(theirs, a, sizeof a);
    dk_value_text(mine, b, sizeof b);
    return dk_fail(err, DK_ERR_STATE,
                   "%s: %s: %s differs from the result already merged (%s here, %s there); refusing "
                   "conflicting results for one cell identity",
                   src->path, what, col, b, a);
}

/* "INSERT INTO table(lead, cols) VALUES(?,...)suffix", one ? per column (lead NULL: none). */
static void dk_merge_insert_sql(char *sql, size_t n, const char *table, const char *lead,
                                const dk_merge_cols *c, const char *suffix) {
    size_t len = (size_t)snprintf(sql, n, "INSERT INTO %s(%s%s%s) VALUES(", table, lead ? lead : "",
                                  lead ? ", " : "", c->list);
    for (int i = 0; i < c->n + (lead ? 1 : 0) && len < n; i++)
        len += (size_t)snprintf(sql + len, n - len, "%s?", i ? "," : "");
    if (len < n) snprintf(sql + len, n - len, ")%s", suffix);
}

typedef struct {
    sqlite3_stmt *src_layers, *out_layers, *ins_layer;
    dk_merge_cols lc; /* sample_layers columns but sample_row */
} dk_merge_layers;

/* Layer rows of src sample src_row vs out sample out_row (0 = just inserted: copy them). */
static dk_status dk_merge_sample_layers(dk_store *out, dk_store *src, dk_merge_layers *L, int64_t src_row,
                                        int64_t out_row, int fresh, const char *what, dk_err *err) {
    sqlite3_reset(L->src_layers);
    sqlite3_bind_int64(L->src_layers, 1, src_row);
    if (!fresh) {
        sqlite3_reset(L->out_layers);
        sqlite3_bind_int64(L->out_layers, 1, out_row);
    }
    for (;;) {
        int a = sqlite3_step(L->src_layers);
        if (a != SQLITE_ROW && a != SQLITE_DONE) return dk_sql_fail(src, err, "read sample layers");
        if (fresh) {
            if (a == SQLITE_DONE) return DK_OK;
            sqlite3_reset(L->ins_layer);
            sqlite3_bind_int64(L->ins_layer, 1, out_row);
            for (int i = 0; i < L->lc.n; i++)
                sqlite3_bind_value(L->ins_layer, 2 + i, sqlite3_column_value(L->src_layers, i));
            if (sqlite3_step(L->ins_layer) != SQLITE_DONE)
                return dk_sql_fail(out, err, "insert sample layer");
            continue;
        }
        int b = sqlite3_step(L->out_layers);
        if (b != SQLITE_ROW && b != SQLITE_DONE) return dk_sql_fail(out, err, "read sample layers");
        if (a == SQLITE_DONE && b == SQLITE_DONE) return DK_OK;
        if (a != b)
            return dk_fail(err, DK_ERR_STATE,
                           "%s: %s: a different number of layer rows than the result already "
                           "merged; refusing conflicting results for one cell identity",
                           src->path, what);
        int d = dk_row_diff(L->src_layers, 0, L->out_layers, 0, &L->lc);
        if (d >= 0) {
            char col[96];
            snprintf(col, sizeof col, "layer %d %s", sqlite3_column_int(L->src_layers, 0), L->lc.name[d]);
            return dk_merge_conflict(src, what, col, sqlite3_column_value(L->src_layers, d),
                                     sqlite3_column_value(L->out_layers, d), err);
        }
    }
}

/* The merged run of config_hash in out (the first run with run_shards rows), created from r when
 * there is none. */
static dk_status dk_merge_run(dk_store *out, const dk_store_run *r, const char *command, int64_t *run_id,
                              dk_err *err) {
    sqlite3_stmt *q;
    dk_status rc = dk_sql_prepare(
        out,
        "SELECT id FROM runs WHERE config_hash = ? AND id IN (SELECT run_id FROM run_shards)"
        " ORDER BY id LIMIT 1",
        &q, err);
    if (rc) return rc;
    sqlite3_bind_text(q, 1, r->config_hash, -1, SQLITE_TRANSIENT);
    int step = sqlite3_step(q);
    if (step == SQLITE_ROW) *run_id = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    if (step == SQLITE_ROW) return DK_OK;
    if (step != SQLITE_DONE) return dk_sql_fail(out, err, "find the merged run");
    dk_run_info ri = {.name = r->name,
                      .config_path = r->config_path,
                      .config_text = r->config_text,
                      .config_hash = r->config_hash,
                      .command = command,
                      .threads = r->threads > 0 ? r->threads : 0,
                      .workers = 0,
                      .n_cells = r->n_cells > 0 ? r->n_cells : 0}; /* NULL (-1) stored as 0, as ever */
    return dk_store_run_begin(out, &ri, run_id, err);
}

/* One merge of src into out: the statements it runs and what it knows. */
enum {
    SRUNS,
    INS_RS,
    SCELLS,
    OCELL,
    INS_MODEL,
    GET_MODEL,
    INS_CELL,
    LINK,
    SSAMP,
    OSAMP,
    INS_SAMP,
    DONE,
    FAIL,
    SDENSE,
    ODENSE,
    INS_DENSE,
    N_MERGE_STMT
};

typedef struct {
    dk_store *out, *src;
    const char *hash; /* the config's hash */
    int64_t run_id;   /* the merged run in out */
    dk_store_merge_stats *ms;
    sqlite3_stmt *st[N_MERGE_STMT];
    dk_merge_layers L;
    dk_merge_cols sc, dc; /* samples (but id, cell_id), dense_results columns */
    int sid_col;          /* sample_id in sc */
} dk_merge;

/* 1. the shard's runs of this config: provenance rows of the merged run */
static dk_status dk_merge_shard_runs(dk_merge *m, dk_err *err) {
    dk_status rc;
    if ((rc = dk_sql_prepare(
             m->src,
             "SELECT id, shard, git_rev, coalesce(host, ''), cpu, blas_core, threads, workers, command,"
             " started_at, finished_at FROM runs WHERE config_hash = ? ORDER BY id",
             &m->st[SRUNS], err)) ||
        (rc = dk_sql_prepare(
             m->out,
             "INSERT INTO run_shards(run_id, source, shard, src_run_id, config_hash, git_rev, host, cpu,"
             " blas_core, threads, workers, command, started_at, finished_at)"
             " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO UPDATE SET"
             " finished_at = coalesce(excluded.finished_at, finished_at)",
             &m->st[INS_RS], err)))
        return rc;
    sqlite3_bind_text(m->st[SRUNS], 1, m->hash, -1, SQLITE_TRANSIENT);
    while (sqlite3_step(m->st[SRUNS]) == SQLITE_ROW) {
        sqlite3_stmt *a = m->st[SRUNS], *b = m->st[INS_RS];
        sqlite3_reset(b);
        sqlite3_bind_int64(b, 1, m->run_id);
        sqlite3_bind_text(b, 2, m->src->path, -1, SQLITE_TRANSIENT);
        sqlite3_bind_value(b, 3, sqlite3_column_value(a, 1));
        sqlite3_bind_value(b, 4, sqlite3_column_value(a, 0));
        sqlite3_bind_text(b, 5, m->hash, -1, SQLITE_TRANSIENT);
        for (int i = 2; i <= 10; i++) sqlite3_bind_value(b, 4 + i, sqlite3_column_value(a, i));
        if (sqlite3_step(b) != SQLITE_DONE) return dk_sql_fail(m->out, err, "record shard provenance");
    }
    return DK_OK;
}

/* The statements of step 2 (cells, models, samples, layers, states). */
static dk_status dk_merge_prepare_cells(dk_merge *m, dk_err *err) {
    dk_store *out = m->out, *src = m->src;
    sqlite3_stmt **st = m->st;
    char sql[8192];
    static const struct {
        int id, from_src; /* statement, prepared on src (else on out) */
        const char *sql;
    } fixed[] = {
        {SCELLS, 1,
         "SELECT c.id, c.key, c.identity, c.task, c.task_options, c.task_key, c.method, c.params, "
         "c.n_samples, c.seed,"
         " c.state, c.error, c.attempts, c.worker, c.worker_host, c.worker_pid, c.worker_start, c.created_at,"
         " c.claimed_at, c.started_at, c.finished_at, c.wall_s, min(rc.ord),"
         " m.sha256, m.path, m.arch, m.n_layer, m.n_embd, m.n_head, m.n_head_kv, m.n_ff, m.n_vocab, m.n_ctx, "
         "m.n_params,"
         " m.file_bytes, m.added_at"
         " FROM cells c JOIN models m ON m.id = c.model_id JOIN run_cells rc ON rc.cell_id = c.id"
         " JOIN runs r ON r.id = rc.run_id WHERE r.config_hash = ? GROUP BY c.id ORDER BY min(rc.ord), c.id"},
        {OCELL, 0, "SELECT id, state, identity FROM cells WHERE key = ?"},
        {INS_MODEL, 0,
         "INSERT INTO models(sha256, path, arch, n_layer, n_embd, n_head, n_head_kv, n_ff, n_vocab,"
         " n_ctx, n_params, file_bytes, added_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)"
         " ON CONFLICT(sha256) DO NOTHING"},
        {GET_MODEL, 0, "SELECT id FROM models WHERE sha256 = ?"},
        {INS_CELL, 0,
         "INSERT INTO cells(key, identity, run_id, model_id, task, task_options, task_key, method,"
         " params, n_samples, seed, created_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id"},
        {LINK, 0, "INSERT OR IGNORE INTO run_cells(run_id, cell_id, ord) VALUES(?,?,?)"},
        {DONE, 0,
         "UPDATE cells SET state = 'done', error = NULL, attempts = ?, worker = ?, worker_host = ?,"
         " worker_pid = ?, worker_start = ?, lease_until = NULL, claimed_at = ?, started_at = ?,"
         " finished_at = ?, wall_s = ? WHERE id = ? AND state <> 'done'"},
        {FAIL, 0,
         "UPDATE cells SET state = 'failed', error = ?, attempts = ?, finished_at = ?, wall_s = ?"
         " WHERE id = ? AND state = 'pending'"},
    };
    dk_status rc;
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if ((rc = dk_sql_prepare(fixed[i].from_src ? src : out, fixed[i].sql, &st[fixed[i].id], err)))
            return rc;
    snprintf(sql, sizeof sql, "SELECT id, %s FROM samples WHERE cell_id = ? ORDER BY sample_id", m->sc.list);
    if ((rc = dk_sql_prepare(src, sql, &st[SSAMP], err))) return rc;
    snprintf(sql, sizeof sql, "SELECT id, %s FROM samples WHERE cell_id = ? AND sample_id = ?", m->sc.list);
    if ((rc = dk_sql_prepare(out, sql, &st[OSAMP], err))) return rc;
    dk_merge_insert_sql(sql, sizeof sql, "samples", "cell_id", &m->sc, " RETURNING id");
    if ((rc = dk_sql_prepare(out, sql, &st[INS_SAMP], err))) return rc;
    snprintf(sql, sizeof sql, "SELECT %s FROM sample_layers WHERE sample_row = ? ORDER BY layer",
             m->L.lc.list);
    if ((rc = dk_sql_prepare(src, sql, &m->L.src_layers, err))) return rc;
    if ((rc = dk_sql_prepare(out, sql, &m->L.out_layers, err))) return rc;
    dk_merge_insert_sql(sql, sizeof sql, "sample_layers", "sample_row", &m->L.lc, "");
    if ((rc = dk_sql_prepare(out, sql, &m->L.ins_layer, err))) return rc;
    sqlite3_bind_text(st[SCELLS], 1, m->hash, -1, SQLITE_TRANSIENT);
    return DK_OK;
}

/* The source cell row c in out: its model, the cell (found by key, its identity checked, or
 * inserted), linked to the merged run; *cell its id, *out_done whether out already has it done. */
static dk_status dk_merge_cell_row(dk_merge *m, sqlite3_stmt *c, const char *what, int64_t *cell,
                                   int *out_done, dk_err *err) {
    sqlite3_stmt **st = m->st;
    sqlite3_reset(st[INS_MODEL]);
    for (int i = 0; i < 13; i++) sqlite3_bind_value(st[INS_MODEL], 1 + i, sqlite3_column_value(c, 23 + i));
    if (sqlite3_step(st[INS_MODEL]) != SQLITE_DONE) return dk_sql_fail(m->out, err, "insert model");
    sqlite3_reset(st[OCELL]);
    sqlite3_bind_value(st[OCELL], 1, sqlite3_column_value(c, 1));
    *out_done = 0;
    int o = sqlite3_step(st[OCELL]);
    if (o == SQLITE_ROW) {
        *cell = sqlite3_column_int64(st[OCELL], 0);
        *out_done = !strcmp((const char *)sqlite3_column_text(st[OCELL], 1), "done");
        if (!dk_value_same(sqlite3_column_value(st[OCELL], 2), sqlite3_column_value(c, 2)))
            return dk_fail(err, DK_ERR_STATE,
                           "%s: %s: its identity differs from the cell of the same key already merged",
                           m->src->path, what);
    } else if (o == SQLITE_DONE) {
        sqlite3_reset(st[GET_MODEL]);
        sqlite3_bind_value(st[GET_MODEL], 1, sqlite3_column_value(c, 23));
        if (sqlite3_step(st[GET_MODEL]) != SQLITE_ROW) return dk_sql_fail(m->out, err, "find model");
        sqlite3_stmt *ins = st[INS_CELL];
        sqlite3_reset(ins);
        sqlite3_bind_value(ins, 1, sqlite3_column_value(c, 1));
        sqlite3_bind_value(ins, 2, sqlite3_column_value(c, 2));
        sqlite3_bind_int64(ins, 3, m->run_id);
        sqlite3_bind_int64(ins, 4, sqlite3_column_int64(st[GET_MODEL], 0));
        for (int i = 3; i <= 9; i++) sqlite3_bind_value(ins, 2 + i, sqlite3_column_value(c, i));
        sqlite3_bind_value(ins, 12, sqlite3_column_value(c, 17));
        if (sqlite3_step(ins) != SQLITE_ROW) return dk_sql_fail(m->out, err, "insert cell");
        *cell = sqlite3_column_int64(ins, 0);
        m->ms->cells_added++;
    } else {
        return dk_sql_fail(m->out, err, "find cell");
    }
    sqlite3_reset(st[LINK]);
    sqlite3_bind_int64(st[LINK], 1, m->run_id);
    sqlite3_bind_int64(st[LINK], 2, *cell);
    sqlite3_bind_value(st[LINK], 3, sqlite3_column_value(c, 22));
    if (sqlite3_step(st[LINK]) != SQLITE_DONE) return dk_sql_fail(m->out, err, "link cell");
    return DK_OK;
}

/* The samples of source cell src_cell into out's cell: new ones copied with their layers, stored
 * ones compared. */
static dk_status dk_merge_cell_samples(dk_merge *m, sqlite3_value *src_cell, int64_t cell, const char *what,
                                       dk_err *err) {
    sqlite3_stmt **st = m->st;
    dk_status rc;
    sqlite3_reset(st[SSAMP]);
    sqlite3_bind_value(st[SSAMP], 1, src_cell);
    int s1;
    while ((s1 = sqlite3_step(st[SSAMP])) == SQLITE_ROW) {
        sqlite3_stmt *a = st[SSAMP], *b = st[OSAMP];
        char swhat[1100];
        snprintf(swhat, sizeof swhat, "%s sample %lld", what,
                 (long long)sqlite3_column_int64(a, 1 + m->sid_col));
        sqlite3_reset(b);
        sqlite3_bind_int64(b, 1, cell);
        sqlite3_bind_value(b, 2, sqlite3_column_value(a, 1 + m->sid_col));
        int s2 = sqlite3_step(b);
        int64_t row;
        if (s2 == SQLITE_ROW) {
            int d = dk_row_diff(a, 1, b, 1, &m->sc);
            if (d >= 0)
                return dk_merge_conflict(m->src, swhat, m->sc.name[d], sqlite3_column_value(a, 1 + d),
                                         sqlite3_column_value(b, 1 + d), err);
            row = sqlite3_column_int64(b, 0);
            m->ms->samples_same++;
        } else if (s2 == SQLITE_DONE) {
            sqlite3_stmt *ins = st[INS_SAMP];
            sqlite3_reset(ins);
            sqlite3_bind_int64(ins, 1, cell);
            for (int i = 0; i < m->sc.n; i++) sqlite3_bind_value(ins, 2 + i, sqlite3_column_value(a, 1 + i));
            if (sqlite3_step(ins) != SQLITE_ROW) return dk_sql_fail(m->out, err, "insert sample");
            row = sqlite3_column_int64(ins, 0);
            sqlite3_reset(ins);
            m->ms->samples_added++;
        } else {
            return dk_sql_fail(m->out, err, "find sample");
        }
        if ((rc = dk_merge_sample_layers(m->out, m->src, &m->L, sqlite3_column_int64(a, 0), row,
                                         s2 == SQLITE_DONE, swhat, err)))
            return rc;
    }
    return s1 == SQLITE_DONE ? DK_OK : dk_sql_fail(m->src, err, "read samples");
}

/* The cell's state: done anywhere wins; a failure is kept unless done elsewhere; running -> pending. */
static dk_status dk_merge_cell_state(dk_merge *m, sqlite3_stmt *c, int64_t cell, int out_done,
                                     const char *what, dk_err *err) {
    const char *state = (const char *)sqlite3_column_text(c, 10);
    if (!out_done && !strcmp(state, "done")) {
        sqlite3_stmt *u = m->st[DONE];
        sqlite3_reset(u);
        sqlite3_bind_value(u, 1, sqlite3_column_value(c, 12));
        for (int i = 0; i < 4; i++) sqlite3_bind_value(u, 2 + i, sqlite3_column_value(c, 13 + i));
        for (int i = 0; i < 4; i++) sqlite3_bind_value(u, 6 + i, sqlite3_column_value(c, 18 + i));
        sqlite3_bind_int64(u, 10, cell);
        if (sqlite3_step(u) != SQLITE_DONE)
            return dk_fail(err, DK_ERR_STATE, "%s: %s: done in the shard but %s", m->src->path, what,
                           sqlite3_errmsg(m->out->db));
    } else if (!out_done && !strcmp(state, "failed")) {
        sqlite3_stmt *u = m->st[FAIL];
        sqlite3_reset(u);
        sqlite3_bind_value(u, 1, sqlite3_column_value(c, 11));
        sqlite3_bind_value(u, 2, sqlite3_column_value(c, 12));
        sqlite3_bind_value(u, 3, sqlite3_column_value(c, 20));
        sqlite3_bind_value(u, 4, sqlite3_column_value(c, 21));
        sqlite3_bind_int64(u, 5, cell);
        if (sqlite3_step(u) != SQLITE_DONE) return dk_sql_fail(m->out, err, "mark cell failed");
    }
    return DK_OK;
}

/* 2. cells of this config's runs, with their models; samples and layers; final state */
static dk_status dk_merge_cells(dk_merge *m, dk_err *err) {
    dk_status rc = dk_merge_prepare_cells(m, err);
    if (rc) return rc;
    int step;
    while ((step = sqlite3_step(m->st[SCELLS])) == SQLITE_ROW) {
        sqlite3_stmt *c = m->st[SCELLS];
        char what[1024];
        snprintf(what, sizeof what, "cell %.12s (%s %s %s %s)", (const char *)sqlite3_column_text(c, 1),
                 (const char *)sqlite3_column_text(c, 3), (const char *)sqlite3_column_text(c, 4),
                 (const char *)sqlite3_column_text(c, 6), (const char *)sqlite3_column_text(c, 7));
        int64_t cell = 0;
        int out_done = 0;
        if ((rc = dk_merge_cell_row(m, c, what, &cell, &out_done, err)) ||
            (rc = dk_merge_cell_samples(m, sqlite3_column_value(c, 0), cell, what, err)) ||
            (rc = dk_merge_cell_state(m, c, cell, out_done, what, err)))
            return rc;
    }
    return step == SQLITE_DONE ? DK_OK : dk_sql_fail(m->src, err, "read cells");
}

/* A conflict on dense row a (its differing column d). */
static dk_status dk_merge_dense_conflict(dk_merge *m, sqlite3_stmt *a, sqlite3_stmt *b, int d,
                                         const int key_col[3], dk_err *err) {
    const dk_merge_cols *dc = &m->dc;
    char dwhat[512];
    int tc = -1, oc = -1;
    for (int i = 0; i < dc->n; i++) {
        if (!strcmp(dc->name[i], "task")) tc = i;
        if (!strcmp(dc->name[i], "task_options")) oc = i;
    }
    snprintf(dwhat, sizeof dwhat, "dense reference of %s %s sample %lld (model %.12s)",
             tc >= 0 ? (const char *)sqlite3_column_text(a, tc) : "?",
             oc >= 0 ? (const char *)sqlite3_column_text(a, oc) : "",
             (long long)sqlite3_column_int64(a, key_col[2]),
             (const char *)sqlite3_column_text(a, key_col[0]));
    return dk_merge_conflict(m->src, dwhat, dc->name[d], sqlite3_column_value(a, d),
                             sqlite3_column_value(b, d), err);
}

/* 3. dense references: new ones copied, stored ones compared */
static dk_status dk_merge_dense(dk_merge *m, dk_err *err) {
    sqlite3_stmt **st = m->st;
    const dk_merge_cols *dc = &m->dc;
    char sql[8192];
    dk_status rc;
    snprintf(sql, sizeof sql, "SELECT %s FROM dense_results ORDER BY model_sha256, task_key, sample_id",
             dc->list);
    if ((rc = dk_sql_prepare(m->src, sql, &st[SDENSE], err))) return rc;
    snprintf(sql, sizeof sql,
             "SELECT %s FROM dense_results WHERE model_sha256 = ? AND task_key = ? AND sample_id = ?",
             dc->list);
    if ((rc = dk_sql_prepare(m->out, sql, &st[ODENSE], err))) return rc;
    dk_merge_insert_sql(sql, sizeof sql, "dense_results", NULL, dc, "");
    if ((rc = dk_sql_prepare(m->out, sql, &st[INS_DENSE], err))) return rc;
    int key_col[3] = {-1, -1, -1};
    for (int i = 0; i < dc->n; i++) {
        if (!strcmp(dc->name[i], "model_sha256")) key_col[0] = i;
        if (!strcmp(dc->name[i], "task_key")) key_col[1] = i;
        if (!strcmp(dc->name[i], "sample_id")) key_col[2] = i;
    }
    if (key_col[0] < 0 || key_col[1] < 0 || key_col[2] < 0)
        return dk_fail(err, DK_ERR_FORMAT, "%s: unexpected dense_results columns", m->src->path);
    int step;
    while ((step = sqlite3_step(st[SDENSE])) == SQLITE_ROW) {
        sqlite3_stmt *a = st[SDENSE], *b = st[ODENSE];
        sqlite3_reset(b);
        for (int k = 0; k < 3; k++) sqlite3_bind_value(b, 1 + k, sqlite3_column_value(a, key_col[k]));
        int s2 = sqlite3_step(b);
        if (s2 == SQLITE_ROW) {
            int d = dk_row_diff(a, 0, b, 0, dc);
            if (d >= 0) return dk_merge_dense_conflict(m, a, b, d, key_col, err);
        } else if (s2 == SQLITE_DONE) {
            sqlite3_reset(st[INS_DENSE]);
            for (int i = 0; i < dc->n; i++)
                sqlite3_bind_value(st[INS_DENSE], 1 + i, sqlite3_column_value(a, i));
            if (sqlite3_step(st[INS_DENSE]) != SQLITE_DONE)
                return dk_sql_fail(m->out, err, "insert dense result");
            m->ms->dense_added++;
        } else {
            return dk_sql_fail(m->out, err, "find dense result");
        }
    }
    return step == SQLITE_DONE ? DK_OK : dk_sql_fail(m->src, err, "read dense results");
}

/* 4. the merged run's provenance: every shard run's host, CPU, BLAS core and revision */
static dk_status dk_merge_provenance(dk_merge *m, dk_err *err) {
    sqlite3_stmt *q;
    dk_status rc = DK_SQL_PREPARE(m->out,
                                  "UPDATE runs SET"
                                  " host = (SELECT group_concat(v, ', ') FROM (SELECT DISTINCT host AS v "
                                  "FROM run_shards WHERE run_id = ?1 AND host <> '' ORDER BY 1)),"
                                  " cpu = (SELECT group_concat(v, ', ') FROM (SELECT DISTINCT cpu AS v FROM "
                                  "run_shards WHERE run_id = ?1 ORDER BY 1)),"
                                  " blas_core = (SELECT group_concat(v, ', ') FROM (SELECT DISTINCT "
                                  "blas_core AS v FROM run_shards WHERE run_id = ?1 ORDER BY 1)),"
                                  " git_rev = (SELECT group_concat(v, ', ') FROM (SELECT DISTINCT git_rev AS "
                                  "v FROM run_shards WHERE run_id = ?1 ORDER BY 1)),"
                                  " threads = (SELECT max(threads) FROM run_shards WHERE run_id = ?1),"
                                  " workers = (SELECT sum(workers) FROM run_shards WHERE run_id = ?1),"
                                  " started_at = (SELECT min(started_at) FROM run_shards WHERE run_id = ?1),"
                                  " finished_at = (SELECT CASE WHEN count(*) = count(finished_at) THEN "
                                  "max(finished_at) END FROM run_shards WHERE run_id = ?1)"
                                  " WHERE id = ?1",
                                  &q, err, DK_V_INT(m->run_id));
    if (rc) return rc;
    if (sqlite3_step(q) != SQLITE_DONE) rc = dk_sql_fail(m->out, err, "record merged provenance");
    sqlite3_finalize(q);
    return rc;
}

dk_status dk_store_merge_from(dk_store *out, dk_store *src, const dk_store_run *config_run,
                              const char *command, int64_t *merged_run, dk_store_merge_stats *ms,
                              dk_err *err) {
    static const char *const skip_samples[] = {"id", "cell_id", NULL};
    static const char *const skip_layers[] = {"sample_row", NULL};
    static const char *const skip_dense[] = {NULL};
    dk_merge m = {.out = out, .src = src, .hash = config_run->config_hash, .ms = ms, .sid_col = -1};
    dk_status rc = dk_merge_run(out, config_run, command, &m.run_id, err);
    if (!rc) rc = dk_merge_cols_load(out, src, "samples", skip_samples, &m.sc, err);
    if (!rc) rc = dk_merge_cols_load(out, src, "sample_layers", skip_layers, &m.L.lc, err);
    if (!rc) rc = dk_merge_cols_load(out, src, "dense_results", skip_dense, &m.dc, err);
    if (rc) return rc;
    *merged_run = m.run_id;
    for (int i = 0; i < m.sc.n; i++)
        if (!strcmp(m.sc.name[i], "sample_id")) m.sid_col = i;
    if (m.sid_col < 0 || m.L.lc.n < 1 || strcmp(m.L.lc.name[0], "layer") != 0)
        return dk_fail(err, DK_ERR_FORMAT, "%s: unexpected samples/sample_layers columns", src->path);
    if (!(rc = dk_merge_shard_runs(&m, err)) && !(rc = dk_merge_cells(&m, err)) &&
        !(rc = dk_merge_dense(&m, err)))
        rc = dk_merge_provenance(&m, err);
    for (int i = 0; i < N_MERGE_STMT; i++) sqlite3_finalize(m.st[i]);
    sqlite3_finalize(m.L.src_layers);
    sqlite3_finalize(m.L.out_layers);
    sqlite3_finalize(m.L.ins_layer);
    return rc;
}
