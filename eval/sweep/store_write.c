/* store_write.c — the worker protocol of the store (store.h): runs, models, cells and their claims, samples, dense results. */
#include "store_int.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- runs and models ---- */

dk_status dk_store_run_begin(dk_store *s, const dk_run_info *in, int64_t *run_id, dk_err *err) {
    sqlite3_stmt *st;
    dk_status rc = DK_SQL_PREPARE(
        s,
        "INSERT INTO runs(name, config_path, config_text, config_hash, git_rev, host, cpu, blas_core,"
        " threads, workers, command, n_cells, started_at, shard) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        &st, err, DK_V_TEXT(in->name ? in->name : ""), DK_V_TEXT(in->config_path ? in->config_path : ""),
        DK_V_TEXT(in->config_text ? in->config_text : ""), DK_V_TEXT(in->config_hash ? in->config_hash : ""),
        DK_V_TEXT(in->git_rev), DK_V_TEXT(in->host), DK_V_TEXT(in->cpu), DK_V_TEXT(in->blas_core),
        DK_V_INT(in->threads), DK_V_INT(in->workers), DK_V_TEXT(in->command), DK_V_INT(in->n_cells),
        DK_V_DOUBLE(dk_store_now()), DK_V_TEXT(in->shard));
    if (rc != DK_OK) return rc;
    if (sqlite3_step(st) != SQLITE_DONE) rc = dk_sql_fail(s, err, "insert run");
    else *run_id = sqlite3_last_insert_rowid(s->db);
    sqlite3_finalize(st);
    return rc;
}

dk_status dk_store_run_end(dk_store *s, int64_t run_id, dk_err *err) {
    sqlite3_stmt *st;
    dk_status rc = DK_SQL_PREPARE(s, "UPDATE runs SET finished_at = ? WHERE id = ?", &st, err,
                                  DK_V_DOUBLE(dk_store_now()), DK_V_INT(run_id));
    if (rc != DK_OK) return rc;
    if (sqlite3_step(st) != SQLITE_DONE) rc = dk_sql_fail(s, err, "finish run");
    else if (sqlite3_changes(s->db) != 1)
        rc = dk_fail(err, DK_ERR_ARG, "%s: no run %lld", s->path, (long long)run_id);
    sqlite3_finalize(st);
    return rc;
}

dk_status dk_store_model_put(dk_store *s, const dk_model_info *m, int64_t *model_id, dk_err *err) {
    if (!m->sha256 || strlen(m->sha256) != 64 || !m->path)
        return dk_fail(err, DK_ERR_ARG, "%s: model needs a path and a 64-digit sha256", s->path);
    sqlite3_stmt *st;
    dk_status rc = DK_SQL_PREPARE(
        s,
        "INSERT INTO models(sha256, path, arch, n_layer, n_embd, n_head, n_head_kv, n_ff, n_vocab, n_ctx,"
        " n_params, file_bytes, added_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(sha256) DO UPDATE SET path = excluded.path, arch = coalesce(excluded.arch, arch),"
        " n_layer = coalesce(excluded.n_layer, n_layer), n_embd = coalesce(excluded.n_embd, n_embd),"
        " n_head = coalesce(excluded.n_head, n_head), n_head_kv = coalesce(excluded.n_head_kv, n_head_kv),"
        " n_ff = coalesce(excluded.n_ff, n_ff), n_vocab = coalesce(excluded.n_vocab, n_vocab),"
        " n_ctx = coalesce(excluded.n_ctx, n_ctx), n_params = coalesce(excluded.n_params, n_params),"
        " file_bytes = coalesce(excluded.file_bytes, file_bytes)"
        " RETURNING id",
        &st, err, DK_V_TEXT(m->sha256), DK_V_TEXT(m->path), DK_V_TEXT(m->arch), DK_V_KNOWN(m->n_layer),
        DK_V_KNOWN(m->n_embd), DK_V_KNOWN(m->n_head), DK_V_KNOWN(m->n_head_kv), DK_V_KNOWN(m->n_ff),
        DK_V_KNOWN(m->n_vocab), DK_V_KNOWN(m->n_ctx), DK_V_KNOWN(m->n_params), DK_V_KNOWN(m->file_bytes),
        DK_V_DOUBLE(dk_store_now()));
    if (rc != DK_OK) return rc;
    if (sqlite3_step(st) != SQLITE_ROW) rc = dk_sql_fail(s, err, "insert model");
    else *model_id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc;
}

/* ---- cells ---- */

dk_status dk_store_cells_add(dk_store *s, int64_t run_id, const dk_cell_spec *cells, size_t n,
                             int retry_failed, int64_t *cell_ids, dk_cell_state *states, dk_err *err) {
    return dk_store_cells_add_at(s, run_id, cells, NULL, n, retry_failed, cell_ids, states, err);
}

dk_status dk_store_cells_add_at(dk_store *s, int64_t run_id, const dk_cell_spec *cells, const int64_t *ord,
                                size_t n, int retry_failed, int64_t *cell_ids, dk_cell_state *states,
                                dk_err *err) {
    sqlite3_stmt *ins = NULL, *get = NULL, *retry = NULL, *link = NULL;
    dk_status rc = dk_sql_exec(s, "BEGIN IMMEDIATE", err);
    if (rc != DK_OK) return rc;
    double now = dk_store_now();
    if ((rc = dk_sql_prepare(
             s,
             "INSERT INTO cells(key, identity, run_id, model_id, task, task_options, task_key, method, "
             "params,"
             " n_samples, seed, created_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(key) DO NOTHING",
             &ins, err)) ||
        (rc = dk_sql_prepare(s, "SELECT id, state FROM cells WHERE key = ?", &get, err)) ||
        (rc = dk_sql_prepare(s, "UPDATE cells SET state = 'pending' WHERE id = ? AND state = 'failed'",
                             &retry, err)) ||
        (rc = dk_sql_prepare(s, "INSERT OR IGNORE INTO run_cells(run_id, cell_id, ord) VALUES(?,?,?)", &link,
                             err)))
        goto done;
    for (size_t i = 0; i < n; i++) {
        const dk_cell_spec *c = &cells[i];
        sqlite3_reset(ins);
        DK_SQL_BIND(ins, 1, DK_V_TEXT(c->key), DK_V_TEXT(c->identity), DK_V_INT(run_id),
                    DK_V_INT(c->model_id), DK_V_TEXT(c->task), DK_V_TEXT(c->task_options),
                    DK_V_TEXT(c->task_key), DK_V_TEXT(c->method), DK_V_TEXT(c->params),
                    DK_V_INT(c->n_samples), DK_V_INT(c->seed), DK_V_DOUBLE(now));
        if (sqlite3_step(ins) != SQLITE_DONE) {
            rc = dk_sql_fail(s, err, "insert cell");
            goto done;
        }
        sqlite3_reset(get);
        dk_sql_bind_text(get, 1, c->key);
        if (sqlite3_step(get) != SQLITE_ROW) {
            rc = dk_sql_fail(s, err, "read cell");
            goto done;
        }
        int64_t id = sqlite3_column_int64(get, 0);
        dk_cell_state state = dk_cell_state_parse(sqlite3_column_text(get, 1));
        if (retry_failed && state == DK_CELL_FAILED) {
            sqlite3_reset(retry);
            sqlite3_bind_int64(retry, 1, id);
            if (sqlite3_step(retry) != SQLITE_DONE) {
                rc = dk_sql_fail(s, err, "retry cell");
                goto done;
            }
            state = DK_CELL_PENDING;
        }
        sqlite3_reset(link);
        sqlite3_bind_int64(link, 1, run_id);
        sqlite3_bind_int64(link, 2, id);
        sqlite3_bind_int64(link, 3, ord ? ord[i] : (int64_t)i);
        if (sqlite3_step(link) != SQLITE_DONE) {
            rc = dk_sql_fail(s, err, "link cell to run");
            goto done;
        }
        if (cell_ids) cell_ids[i] = id;
        if (states) states[i] = state;
    }
done:
    sqlite3_finalize(ins);
    sqlite3_finalize(get);
    sqlite3_finalize(retry);
    sqlite3_finalize(link);
    return dk_sql_end(s, rc, err);
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
        if (field == 22) {
            *start = strtoll(tok, NULL, 10);
            return 0;
        }
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

dk_status dk_store_cell_claim(dk_store *s, int64_t run_id, const dk_worker *w, double lease_s,
                              int64_t *cell_id, char key[65], dk_err *err) {
    *cell_id = 0;
    sqlite3_stmt *q = NULL, *up = NULL;
    dk_status rc = dk_sql_exec(s, "BEGIN IMMEDIATE", err);
    if (rc != DK_OK) return rc;
    double now = dk_store_now();
    int64_t pick = 0;
    if ((rc = dk_sql_prepare(
             s,
             "SELECT c.id, c.state, c.worker_host, c.worker_pid, c.worker_start, c.lease_until"
             " FROM run_cells rc JOIN cells c ON c.id = rc.cell_id"
             " WHERE rc.run_id = ? AND c.state IN ('pending', 'running') ORDER BY c.state = 'running', "
             "rc.ord",
             &q, err)))
        goto done;
    sqlite3_bind_int64(q, 1, run_id);
    int step;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(q, 0);
        const char *state = (const char *)sqlite3_column_text(q, 1);
        if (!strcmp(state, "pending")) {
            pick = id;
            break;
        }
        int lease_over = sqlite3_column_type(q, 5) == SQLITE_NULL || sqlite3_column_double(q, 5) < now;
        if (lease_over || !dk_worker_alive(w, (const char *)sqlite3_column_text(q, 2),
                                           sqlite3_column_int64(q, 3), sqlite3_column_int64(q, 4))) {
            pick = id;
            break;
        }
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = dk_sql_fail(s, err, "find a cell to claim");
        goto done;
    }
    sqlite3_finalize(q);
    q = NULL;
    if (pick) {
        if ((rc = dk_sql_prepare(s,
                                 "UPDATE cells SET state = 'running', worker = ?, worker_host = ?, "
                                 "worker_pid = ?, worker_start = ?,"
                                 " lease_until = ?, claimed_at = ?, started_at = coalesce(started_at, ?), "
                                 "attempts = attempts + 1,"
                                 " error = NULL WHERE id = ? RETURNING key",
                                 &up, err)))
            goto done;
        sqlite3_bind_text(up, 1, w->name, -1, SQLITE_TRANSIENT);
        dk_bind_owner(up, 2, w);
        DK_SQL_BIND(up, 5, DK_V_DOUBLE(now + lease_s), DK_V_DOUBLE(now), DK_V_DOUBLE(now), DK_V_INT(pick));
        if (sqlite3_step(up) != SQLITE_ROW) {
            rc = dk_sql_fail(s, err, "claim cell");
            goto done;
        }
        if (key) snprintf(key, 65, "%s", (const char *)sqlite3_column_text(up, 0));
        sqlite3_finalize(up);
        up = NULL;
    }
done:
    sqlite3_finalize(q);
    sqlite3_finalize(up);
    if ((rc = dk_sql_end(s, rc, err)) == DK_OK) *cell_id = pick;
    return rc;
}

dk_status dk_store_cell_claim_ids(dk_store *s, int64_t run_id, const dk_worker *w, double lease_s,
                                  const int64_t *ids, size_t n, int *claimed, dk_err *err) {
    for (size_t i = 0; i < n; i++) claimed[i] = 0;
    if (n == 0) return DK_OK;
    sqlite3_stmt *q = NULL, *up = NULL;
    dk_status rc = dk_sql_exec(s, "BEGIN IMMEDIATE", err);
    if (rc != DK_OK) return rc;
    double now = dk_store_now();
    if ((rc = dk_sql_prepare(
             s,
             "SELECT c.state, c.worker_host, c.worker_pid, c.worker_start, c.lease_until"
             " FROM run_cells rc JOIN cells c ON c.id = rc.cell_id WHERE rc.run_id = ? AND c.id = ?",
             &q, err)) ||
        (rc = dk_sql_prepare(s,
                             "UPDATE cells SET state = 'running', worker = ?, worker_host = ?, worker_pid = "
                             "?, worker_start = ?,"
                             " lease_until = ?, claimed_at = ?, started_at = coalesce(started_at, ?), "
                             "attempts = attempts + 1,"
                             " error = NULL WHERE id = ?",
                             &up, err)))
        goto done;
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, run_id);
        sqlite3_bind_int64(q, 2, ids[i]);
        int step = sqlite3_step(q);
        if (step == SQLITE_DONE) continue;
        if (step != SQLITE_ROW) {
            rc = dk_sql_fail(s, err, "find a cell to claim");
            goto done;
        }
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
        DK_SQL_BIND(up, 5, DK_V_DOUBLE(now + lease_s), DK_V_DOUBLE(now), DK_V_DOUBLE(now), DK_V_INT(ids[i]));
        if (sqlite3_step(up) != SQLITE_DONE) {
            rc = dk_sql_fail(s, err, "claim cell");
            goto done;
        }
        claimed[i] = 1;
    }
done:
    sqlite3_finalize(q);
    sqlite3_finalize(up);
    if ((rc = dk_sql_end(s, rc, err)) != DK_OK)
        for (size_t i = 0; i < n; i++) claimed[i] = 0;
    return rc;
}

/* UPDATE cells SET <set> WHERE id = ? AND <owner>; DK_ERR_STATE when w does not own the cell. */
static dk_status dk_owned_update(dk_store *s, int64_t cell_id, const dk_worker *w, const char *set, double a,
                                 const char *text, dk_err *err) {
    char sql[512];
    snprintf(sql, sizeof sql, "UPDATE cells SET %s WHERE id = ? AND " DK_OWNER_SQL, set);
    sqlite3_stmt *st;
    dk_status rc = dk_sql_prepare(s, sql, &st, err);
    if (rc != DK_OK) return rc;
    int i = 1;
    if (strchr(set, '?')) sqlite3_bind_double(st, i++, a);
    if (strstr(set, "error = ?")) dk_sql_bind_text(st, i++, text);
    sqlite3_bind_int64(st, i++, cell_id);
    dk_bind_owner(st, i, w);
    if (sqlite3_step(st) != SQLITE_DONE) rc = dk_sql_fail(s, err, "update cell");
    else if (sqlite3_changes(s->db) != 1)
        rc = dk_fail(err, DK_ERR_STATE, "%s: cell %lld is not held by worker %s (reclaimed or finished)",
                     s->path, (long long)cell_id, w->name);
    sqlite3_finalize(st);
    return rc;
}

dk_status dk_store_cell_renew(dk_store *s, int64_t cell_id, const dk_worker *w, double lease_s, dk_err *err) {
    return dk_owned_update(s, cell_id, w, "lease_until = ?", dk_store_now() + lease_s, NULL, err);
}

dk_status dk_store_cell_fail(dk_store *s, int64_t cell_id, const dk_worker *w, const char *error,
                             dk_err *err) {
    return dk_owned_update(
        s, cell_id, w,
        "finished_at = ?1, wall_s = wall_s + (?1 - claimed_at), state = 'failed', lease_until = NULL,"
        " error = ?",
        dk_store_now(), error ? error : "unknown error", err);
}

dk_status dk_store_cell_release(dk_store *s, int64_t cell_id, const dk_worker *w, dk_err *err) {
    return dk_owned_update(s, cell_id, w,
                           "wall_s = wall_s + (? - claimed_at), state = 'pending', lease_until = NULL",
                           dk_store_now(), NULL, err);
}

dk_status dk_store_cell_finish(dk_store *s, int64_t cell_id, const dk_worker *w, dk_err *err) {
    sqlite3_stmt *q = NULL;
    dk_status rc = dk_sql_exec(s, "BEGIN IMMEDIATE", err);
    if (rc != DK_OK) return rc;
    if ((rc = dk_sql_prepare(
             s,
             "SELECT n_samples, (SELECT count(*) FROM samples WHERE cell_id = ?1) FROM cells WHERE id = ?1",
             &q, err)))
        goto done;
    sqlite3_bind_int64(q, 1, cell_id);
    if (sqlite3_step(q) != SQLITE_ROW) {
        rc = dk_fail(err, DK_ERR_ARG, "%s: no cell %lld", s->path, (long long)cell_id);
        goto done;
    }
    int64_t want = sqlite3_column_int64(q, 0), have = sqlite3_column_int64(q, 1);
    sqlite3_finalize(q);
    q = NULL;
    if (have != want) {
        rc = dk_fail(err, DK_ERR_STATE, "%s: cell %lld has %lld of %lld samples; it cannot be done", s->path,
                     (long long)cell_id, (long long)have, (long long)want);
        goto done;
    }
    rc = dk_owned_update(
        s, cell_id, w,
        "finished_at = ?1, wall_s = wall_s + (?1 - claimed_at), state = 'done', lease_until = NULL",
        dk_store_now(), NULL, err);
done:
    sqlite3_finalize(q);
    return dk_sql_end(s, rc, err);
}

dk_status dk_store_cell_state(dk_store *s, int64_t cell_id, dk_cell_state *state, dk_err *err) {
    sqlite3_stmt *q;
    dk_status rc = DK_SQL_PREPARE(s, "SELECT state FROM cells WHERE id = ?", &q, err, DK_V_INT(cell_id));
    if (rc != DK_OK) return rc;
    int step = sqlite3_step(q);
    if (step == SQLITE_ROW) *state = dk_cell_state_parse(sqlite3_column_text(q, 0));
    else if (step == SQLITE_DONE)
        rc = dk_fail(err, DK_ERR_ARG, "%s: no cell %lld", s->path, (long long)cell_id);
    else rc = dk_sql_fail(s, err, "read cell state");
    sqlite3_finalize(q);
    return rc;
}

dk_status dk_store_sample_ids(dk_store *s, int64_t cell_id, int64_t **ids, size_t *n, dk_err *err) {
    *ids = NULL;
    *n = 0;
    sqlite3_stmt *q;
    dk_status rc = dk_sql_prepare(s, "SELECT sample_id FROM samples WHERE cell_id = ? ORDER BY sample_id", &q,
                                  err);
    if (rc != DK_OK) return rc;
    sqlite3_bind_int64(q, 1, cell_id);
    size_t cap = 0;
    int step;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            int64_t *p = realloc(*ids, cap * sizeof *p);
            if (!p) {
                rc = dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", s->path);
                break;
            }
            *ids = p;
        }
        (*ids)[(*n)++] = sqlite3_column_int64(q, 0);
    }
    if (rc == DK_OK && step != SQLITE_DONE) rc = dk_sql_fail(s, err, "read sample ids");
    sqlite3_finalize(q);
    if (rc != DK_OK) {
        free(*ids);
        *ids = NULL;
        *n = 0;
    }
    return rc;
}

/* ---- samples ---- */

static char *dk_json_int_array(const int64_t *v, int n) {
    size_t cap = 2 + (size_t)(n > 0 ? n : 0) * 21, len = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    s[len++] = '[';
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s%lld", i ? "," : "", (long long)v[i]);
    s[len++] = ']';
    s[len] = 0;
    return s;
}

dk_status dk_store_sample_put(dk_store *s, const dk_worker *w, double lease_s, const dk_sample_row *r,
                              dk_err *err) {
    if (r->n_layer < 0 || (r->n_layer > 0 && !r->active))
        return dk_fail(err, DK_ERR_ARG, "%s: cell %lld sample %lld: active tokens per layer missing", s->path,
                       (long long)r->cell_id, (long long)r->sample_id);
    char *active = dk_json_int_array(r->active, r->n_layer);
    if (!active) return dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", s->path);
    sqlite3_stmt *ins = NULL, *lay = NULL;
    dk_status rc = dk_sql_exec(s, "BEGIN IMMEDIATE", err);
    if (rc != DK_OK) {
        free(active);
        return rc;
    }
    double now = dk_store_now();
    if ((rc = dk_owned_update(s, r->cell_id, w, "lease_until = ?", now + lease_s, NULL, err))) goto done;
    if ((rc = dk_sql_prepare(
             s,
             "INSERT INTO samples(cell_id, sample_id, sample_key, prompt_tokens, context_tokens, "
             "question_tokens,"
             " gen_tokens, active_tokens, flops_dense, flops_method, flops_dense_parts, flops_method_parts,"
             " wall_dense_s, wall_method_s, wall_decode_s, prediction, answers, score, kl, kl_answer, top1, "
             "worker,"
             " created_at, kl_answer_max, top1_answer, nll_dense, nll_method, context_key)"
             " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
             &ins, err)))
        goto done;
    DK_SQL_BIND(ins, 1, DK_V_INT(r->cell_id), DK_V_INT(r->sample_id), DK_V_TEXT(r->sample_key),
                DK_V_INT(r->prompt_tokens), DK_V_INT(r->context_tokens), DK_V_INT(r->question_tokens),
                DK_V_INT(r->gen_tokens), DK_V_TEXT(active), DK_V_INT(r->flops_dense),
                DK_V_INT(r->flops_method), DK_V_TEXT(r->flops_dense_parts), DK_V_TEXT(r->flops_method_parts),
                DK_V_REAL(r->wall_dense_s), DK_V_REAL(r->wall_method_s), DK_V_REAL(r->wall_decode_s),
                DK_V_TEXT(r->prediction), DK_V_TEXT(r->answers), DK_V_REAL(r->score), DK_V_REAL(r->kl_first),
                DK_V_REAL(r->kl), DK_V_KNOWN(r->top1_first), DK_V_TEXT(w->name), DK_V_DOUBLE(now),
                DK_V_REAL(r->kl_max), DK_V_REAL(r->top1), DK_V_REAL(r->nll_dense), DK_V_REAL(r->nll_method),
                DK_V_TEXT(r->context_key));
    if (sqlite3_step(ins) != SQLITE_DONE) {
        if (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_UNIQUE)
            rc = dk_fail(err, DK_ERR_STATE, "%s: cell %lld sample %lld is already stored", s->path,
                         (long long)r->cell_id, (long long)r->sample_id);
        else
            rc = dk_fail(err, DK_ERR_ARG, "%s: cell %lld sample %lld: rejected: %s", s->path,
                         (long long)r->cell_id, (long long)r->sample_id, sqlite3_errmsg(s->db));
        goto done;
    }
    int64_t row = sqlite3_last_insert_rowid(s->db);
    if (r->layers) {
        if ((rc = dk_sql_prepare(s,
                                 "INSERT INTO sample_layers(sample_row, layer, delta_min, delta_median, "
                                 "delta_max, flops, wall_s)"
                                 " VALUES(?,?,?,?,?,?,?)",
                                 &lay, err)))
            goto done;
        for (int l = 0; l < r->n_layer; l++) {
            const dk_layer_stat *ls = &r->layers[l];
            sqlite3_reset(lay);
            DK_SQL_BIND(lay, 1, DK_V_INT(row), DK_V_INT(l), DK_V_REAL(ls->delta_min),
                        DK_V_REAL(ls->delta_median), DK_V_REAL(ls->delta_max), DK_V_INT(ls->flops),
                        DK_V_REAL(ls->wall_s));
            if (sqlite3_step(lay) != SQLITE_DONE) {
                rc = dk_fail(err, DK_ERR_ARG, "%s: cell %lld sample %lld layer %d: rejected: %s", s->path,
                             (long long)r->cell_id, (long long)r->sample_id, l, sqlite3_errmsg(s->db));
                goto done;
            }
        }
    }
done:
    sqlite3_finalize(ins);
    sqlite3_finalize(lay);
    free(active);
    return dk_sql_end(s, rc, err);
}

/* ---- dense results ---- */

dk_status dk_store_dense_put(dk_store *s, const dk_dense_row *r, int *inserted, dk_err *err) {
    if (r->logits && (r->n_vocab <= 0 || r->n_logit_rows <= 0))
        return dk_fail(err, DK_ERR_ARG, "%s: dense logits need n_vocab and n_logit_rows > 0", s->path);
    sqlite3_stmt *st;
    dk_status rc = DK_SQL_PREPARE(
        s,
        "INSERT OR IGNORE INTO dense_results(model_sha256, task_key, sample_id, task, task_options, "
        "prompt_tokens,"
        " flops, flops_parts, wall_s, prediction, score, n_vocab, n_logit_rows, logits, created_at)"
        " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        &st, err, DK_V_TEXT(r->model_sha256), DK_V_TEXT(r->task_key), DK_V_INT(r->sample_id),
        DK_V_TEXT(r->task), DK_V_TEXT(r->task_options), DK_V_INT(r->prompt_tokens), DK_V_INT(r->flops),
        DK_V_TEXT(r->flops_parts), DK_V_REAL(r->wall_s), DK_V_TEXT(r->prediction), DK_V_REAL(r->score),
        DK_V_KNOWN(r->logits ? r->n_vocab : -1), DK_V_KNOWN(r->logits ? r->n_logit_rows : -1));
    if (rc != DK_OK) return rc;
    if (r->logits)
        sqlite3_bind_blob64(st, 14, r->logits, (sqlite3_uint64)(r->n_vocab * r->n_logit_rows) * sizeof(float),
                            SQLITE_STATIC);
    else sqlite3_bind_null(st, 14);
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
    dk_status rc = DK_SQL_PREPARE(
        s,
        "SELECT prompt_tokens, flops, flops_parts, wall_s, prediction, score, n_vocab, n_logit_rows, logits"
        " FROM dense_results WHERE model_sha256 = ? AND task_key = ? AND sample_id = ?",
        &q, err, DK_V_TEXT(model_sha256), DK_V_TEXT(task_key), DK_V_INT(sample_id));
    if (rc != DK_OK) return rc;
    int step = sqlite3_step(q);
    if (step == SQLITE_ROW) {
        out->prompt_tokens = sqlite3_column_int64(q, 0);
        out->flops = sqlite3_column_int64(q, 1);
        out->flops_parts = dk_sql_strdup(sqlite3_column_text(q, 2));
        out->wall_s = sqlite3_column_double(q, 3);
        out->prediction = dk_sql_strdup(sqlite3_column_text(q, 4));
        out->score = sqlite3_column_type(q, 5) == SQLITE_NULL ? NAN : sqlite3_column_double(q, 5);
        out->n_vocab = sqlite3_column_int64(q, 6);
        out->n_logit_rows = sqlite3_column_int64(q, 7);
        const void *blob = sqlite3_column_blob(q, 8);
        size_t bytes = (size_t)sqlite3_column_bytes(q, 8);
        if (blob && bytes) {
            if (bytes != (size_t)(out->n_vocab * out->n_logit_rows) * sizeof(float)) {
                rc = dk_fail(err, DK_ERR_FORMAT,
                             "%s: dense result logits have %zu bytes, expected %lld x %lld floats", s->path,
                             bytes, (long long)out->n_logit_rows, (long long)out->n_vocab);
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
