/* test_store.c — SHA-256 against FIPS vectors and sha256sum(1); the SQLite store: schema and
 * open errors, atomic sample writes (constraint failure mid-way, SIGKILL mid-way), exclusive
 * claims across racing processes, reclaiming dead/expired workers, done only when complete,
 * resume and model-change identity, view aggregates, shared dense results; status/export CLI. */
#include "config.h"
#include "sha256.h"
#include "store.h"
#include "support/dk_test.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ---- */

static void rm_db(const char *path) {
    char p[1100];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

static dk_store *open_new(const char *name, char *path, size_t n) {
    dk_test_tmp_path(path, n, name);
    rm_db(path);
    dk_store *s = NULL;
    dk_err e = {{0}};
    ck_assert_msg(dk_store_open(path, DK_STORE_OPEN_CREATE, &s, &e) == DK_OK, "%s", e.msg);
    return s;
}

static dk_store *open_existing(const char *path) {
    dk_store *s = NULL;
    dk_err e = {{0}};
    ck_assert_msg(dk_store_open(path, 0, &s, &e) == DK_OK, "%s", e.msg);
    return s;
}

/* The store's file on a connection of the test's own: the raw checks below read (and once write)
 * the tables directly; the library's callers never see SQL. Close with sqlite3_close. */
static sqlite3 *raw_open(dk_store *s) {
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(dk_store_path(s), &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 60000);
    return db;
}

/* Steps sql on a raw connection to its first row (asserted), for one column's value. */
static sqlite3_stmt *raw_row(dk_store *s, const char *sql, sqlite3 **db) {
    sqlite3_stmt *q;
    *db = raw_open(s);
    ck_assert_msg(sqlite3_prepare_v2(*db, sql, -1, &q, NULL) == SQLITE_OK, "%s: %s", sql,
                  sqlite3_errmsg(*db));
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    return q;
}

static void raw_done(sqlite3_stmt *q, sqlite3 *db) {
    sqlite3_finalize(q);
    sqlite3_close(db);
}

static int64_t q_int(dk_store *s, const char *sql) {
    sqlite3 *db;
    sqlite3_stmt *q = raw_row(s, sql, &db);
    int64_t v = sqlite3_column_int64(q, 0);
    raw_done(q, db);
    return v;
}

static double q_real(dk_store *s, const char *sql) {
    sqlite3 *db;
    sqlite3_stmt *q = raw_row(s, sql, &db);
    double v = sqlite3_column_type(q, 0) == SQLITE_NULL ? NAN : sqlite3_column_double(q, 0);
    raw_done(q, db);
    return v;
}

static int64_t mk_run(dk_store *s, const char *name) {
    dk_run_info ri = {.name = name,
                      .config_path = "t.json",
                      .config_text = "{}",
                      .config_hash = "h",
                      .host = "test",
                      .threads = 1,
                      .workers = 1};
    int64_t id = 0;
    dk_err e = {{0}};
    ck_assert_msg(dk_store_run_begin(s, &ri, &id, &e) == DK_OK, "%s", e.msg);
    return id;
}

static int64_t mk_model(dk_store *s, const char *sha) {
    dk_model_info mi = {.sha256 = sha,
                        .path = "m.gguf",
                        .arch = "llama",
                        .n_layer = 4,
                        .n_embd = 64,
                        .n_head = 4,
                        .n_head_kv = 4,
                        .n_ff = 128,
                        .n_vocab = 512,
                        .n_ctx = 4096,
                        .n_params = -1,
                        .file_bytes = 1000};
    int64_t id = 0;
    dk_err e = {{0}};
    ck_assert_msg(dk_store_model_put(s, &mi, &id, &e) == DK_OK, "%s", e.msg);
    return id;
}

static const char *SHA_A = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/* n synthetic cells (method "dash", rho = i/(2n)), n_samples each; ids into ids[]. */
static void mk_cells(dk_store *s, int64_t run, int64_t model, int n, int n_samples, int64_t *ids) {
    dk_cell_spec *sp = calloc((size_t)n, sizeof *sp);
    char(*keys)[65] = calloc((size_t)n, 65), (*params)[64] = calloc((size_t)n, 64);
    for (int i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof id, "cell %d of %d/%d", i, n, n_samples);
        dk_sha256_hex(id, strlen(id), keys[i]);
        snprintf(params[i], 64, "{\"ls\":0.4,\"rho\":%.17g}", (double)i / (2.0 * n));
        sp[i] = (dk_cell_spec){.key = keys[i],
                               .identity = "{}",
                               .task = "passkey",
                               .task_options = "{\"length\":1024}",
                               .task_key = "tk",
                               .method = "dash",
                               .params = params[i],
                               .model_id = model,
                               .n_samples = n_samples,
                               .seed = 0};
    }
    dk_err e = {{0}};
    ck_assert_msg(dk_store_cells_add(s, run, sp, (size_t)n, 1, ids, NULL, &e) == DK_OK, "%s", e.msg);
    free(sp);
    free(keys);
    free(params);
}

static dk_sample_row mk_row(int64_t cell, int64_t sample, int n_layer, const int64_t *active) {
    dk_sample_row r = {.cell_id = cell,
                       .sample_id = sample,
                       .sample_key = "k",
                       .prompt_tokens = 100,
                       .context_tokens = 90,
                       .question_tokens = 10,
                       .gen_tokens = 3,
                       .n_layer = n_layer,
                       .active = active,
                       .flops_dense = 1000,
                       .flops_method = 500,
                       .flops_dense_parts = "{\"attn\":400,\"mlp\":600}",
                       .flops_method_parts = NULL,
                       .wall_dense_s = 1.0,
                       .wall_method_s = 0.5,
                       .wall_decode_s = NAN,
                       .prediction = "42",
                       .answers = "[\"42\"]",
                       .score = 100,
                       .kl = NAN,
                       .kl_max = NAN,
                       .top1 = NAN,
                       .kl_first = 0.01,
                       .top1_first = 1,
                       .nll_dense = NAN,
                       .nll_method = NAN};
    return r;
}

/* ---- sha256 ---- */

START_TEST(test_sha256_vectors) {
    char hex[65];
    dk_sha256_hex("", 0, hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    dk_sha256_hex("abc", 3, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    dk_sha256_hex(m2, strlen(m2), hex);
    ck_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *m3 =
        "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
        "mnopqrstnopqrstu";
    dk_sha256_hex(m3, strlen(m3), hex);
    ck_assert_str_eq(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    /* one million 'a', fed in uneven pieces through the streaming API */
    dk_sha256 st;
    dk_sha256_init(&st);
    char a[1000];
    memset(a, 'a', sizeof a);
    size_t left = 1000000, piece = 1;
    while (left) {
        size_t k = piece < left ? piece : left;
        if (k > sizeof a) k = sizeof a;
        dk_sha256_update(&st, a, k);
        left -= k;
        piece = piece * 7 % 997 + 1;
    }
    uint8_t d[32];
    dk_sha256_final(&st, d);
    ck_assert_uint_eq(d[0], 0xcd);
    ck_assert_uint_eq(d[1], 0xc7);
    ck_assert_uint_eq(d[31], 0xd0);
    /* every length 0..200 (all padding boundaries) vs sha256sum, one file per length */
    char path[512], cmd[700], *out = NULL;
    enum { NLEN = 201 };
    char(*want)[65] = calloc(NLEN, 65);
    size_t cmd_len = (size_t)snprintf(cmd, sizeof cmd, "cd %s && sha256sum", dk_test_tmpdir());
    char *big = malloc(16 * NLEN + sizeof cmd);
    strcpy(big, cmd);
    for (int n = 0; n < NLEN; n++) {
        snprintf(path, sizeof path, "%s/sha.%d", dk_test_tmpdir(), n);
        FILE *f = fopen(path, "wb");
        for (int i = 0; i < n; i++) fputc((i * 131 + n) & 0xff, f);
        fclose(f);
        dk_err e = {{0}};
        ck_assert_int_eq(dk_sha256_file(path, want[n], &e), DK_OK);
        cmd_len += (size_t)sprintf(big + cmd_len, " sha.%d", n);
    }
    ck_assert_int_eq(dk_test_run(big, 0, &out), 0);
    char *line = out;
    for (int n = 0; n < NLEN; n++) {
        char name[32];
        snprintf(name, sizeof name, "  sha.%d\n", n);
        ck_assert_msg(!strncmp(line, want[n], 64) && !strncmp(line + 64, name, strlen(name)),
                      "n=%d: sha256sum %.70s vs %s", n, line, want[n]);
        line = strchr(line, '\n') + 1;
    }
    free(out);
    free(big);
    free(want);
    dk_test_tmp_path(path, sizeof path, "sha.bin");
    snprintf(cmd, sizeof cmd, "sha256sum %s", path);
    /* a large file (several read chunks) */
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 300001; i++) fputc((int)(((unsigned)i * 7919u) >> 3 & 0xffu), f);
    fclose(f);
    dk_err e = {{0}};
    ck_assert_int_eq(dk_sha256_file(path, hex, &e), DK_OK);
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    ck_assert_msg(!strncmp(out, hex, 64), "sha256sum %.64s vs %s", out, hex);
    free(out);
    ck_assert_int_eq(dk_sha256_file("/nonexistent/x", hex, &e), DK_ERR_IO);
    ck_assert_str_eq(e.msg, "/nonexistent/x: cannot open: No such file or directory");
}
END_TEST

/* ---- open ---- */

START_TEST(test_open_errors) {
    char path[512], p2[600];
    dk_test_tmp_path(path, sizeof path, "sub/dir/x.db");
    dk_store *s = NULL;
    dk_err e = {{0}};
    struct stat sb;
    /* missing file without CREATE (and read-only): error, nothing created */
    ck_assert_int_eq(dk_store_open(path, 0, &s, &e), DK_ERR_IO);
    snprintf(p2, sizeof p2, "%s: no such store", path);
    ck_assert_str_eq(e.msg, p2);
    ck_assert_int_eq(dk_store_open(path, DK_STORE_OPEN_READONLY, &s, &e), DK_ERR_IO);
    ck_assert_int_ne(stat(path, &sb), 0);
    /* CREATE makes the folders, WAL mode, schema version 1 */
    ck_assert_msg(dk_store_open(path, DK_STORE_OPEN_CREATE, &s, &e) == DK_OK, "%s", e.msg);
    ck_assert_int_eq(dk_store_schema_version(s), DK_STORE_SCHEMA_VERSION);
    sqlite3 *db;
    sqlite3_stmt *q = raw_row(s, "PRAGMA journal_mode", &db);
    ck_assert_str_eq((const char *)sqlite3_column_text(q, 0), "wal");
    raw_done(q, db);
    ck_assert_int_eq(q_int(s, "PRAGMA application_id"), DK_STORE_APPLICATION_ID);
    ck_assert_int_eq(q_int(s, "SELECT count(*) FROM sqlite_master WHERE type = 'view' AND name IN "
                              "('cell_summary', 'run_status', 'sample_rows')"),
                     3);
    dk_store_close(s);
    /* reopen (no migration again) and read-only */
    ck_assert_msg(dk_store_open(path, 0, &s, &e) == DK_OK, "%s", e.msg);
    dk_store_close(s);
    ck_assert_msg(dk_store_open(path, DK_STORE_OPEN_READONLY, &s, &e) == DK_OK, "%s", e.msg);
    dk_store_close(s);

    /* not SQLite */
    dk_test_tmp_path(p2, sizeof p2, "notdb.db");
    FILE *f = fopen(p2, "w");
    fputs("this is not a database, just text that is long enough to be read as a header ......\n", f);
    fclose(f);
    ck_assert_int_eq(dk_store_open(p2, DK_STORE_OPEN_CREATE, &s, &e), DK_ERR_FORMAT);
    char want[800];
    snprintf(want, sizeof want, "%s: not a dashkit store (not an SQLite database)", p2);
    ck_assert_str_eq(e.msg, want);
    /* another application's SQLite file: refused and left as it was */
    dk_test_tmp_path(p2, sizeof p2, "other.db");
    rm_db(p2);
    sqlite3_open(p2, &db);
    sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL);
    sqlite3_close(db);
    ck_assert_int_eq(dk_store_open(p2, DK_STORE_OPEN_CREATE, &s, &e), DK_ERR_FORMAT);
    snprintf(want, sizeof want, "%s: not a dashkit store (an SQLite database of another application)", p2);
    ck_assert_str_eq(e.msg, want);
    /* a newer schema */
    sqlite3_open(path, &db);
    sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL);
    sqlite3_close(db);
    ck_assert_int_eq(dk_store_open(path, 0, &s, &e), DK_ERR_FORMAT);
    snprintf(want, sizeof want,
             "%s: store schema version 99 is newer than this dashkit's (%d); update dashkit", path,
             DK_STORE_SCHEMA_VERSION);
    ck_assert_str_eq(e.msg, want);
}
END_TEST

/* ---- atomic sample writes ---- */

START_TEST(test_sample_atomic_constraint) {
    char path[512];
    dk_store *s = open_new("atomic.db", path, sizeof path);
    int64_t run = mk_run(s, "r"), model = mk_model(s, SHA_A), cell, claimed;
    mk_cells(s, run, model, 1, 2, &cell);
    dk_worker w;
    dk_store_worker_self(&w);
    dk_err e = {{0}};
    ck_assert_int_eq(dk_store_cell_claim(s, run, &w, 600, &claimed, NULL, &e), DK_OK);
    ck_assert_int_eq(claimed, cell);
    int64_t active[4] = {90, 90, 30, 30};
    dk_layer_stat layers[4] = {{NAN, NAN, NAN, 10, 0.1},
                               {0.1, 0.5, 0.9, 10, 0.1},
                               {NAN, NAN, NAN, -1, 0.1},
                               {NAN, NAN, NAN, 5, 0.1}};
    dk_sample_row r = mk_row(cell, 0, 4, active);
    r.layers = layers;
    /* the sample row goes in, layers 0-1 go in, layer 2 violates flops >= 0: all rolled back */
    ck_assert_int_eq(dk_store_sample_put(s, &w, 600, &r, &e), DK_ERR_ARG);
    char want[800];
    snprintf(want, sizeof want,
             "%s: cell %lld sample 0 layer 2: rejected: CHECK constraint failed: flops >= 0", path,
             (long long)cell);
    ck_assert_str_eq(e.msg, want);
    ck_assert_int_eq(q_int(s, "SELECT count(*) FROM samples"), 0);
    ck_assert_int_eq(q_int(s, "SELECT count(*) FROM sample_layers"), 0);
    /* bad JSON in a column: rejected, nothing stored */
    layers[2].flops = 10;
    r.flops_method_parts = "{not json";
    ck_assert_int_eq(dk_store_sample_put(s, &w, 600, &r, &e), DK_ERR_ARG);
    ck_assert_int_eq(q_int(s, "SELECT count(*) FROM samples"), 0);
    /* now valid: one row, 4 layer rows, NULLs where NAN */
    r.flops_method_parts = "{\"attn\":100}";
    ck_assert_msg(dk_store_sample_put(s, &w, 600, &r, &e) == DK_OK, "%s", e.msg);
    ck_assert_int_eq(q_int(s, "SELECT count(*) FROM samples"), 1);
    ck_assert_int_eq(q_int(s, "SELECT count(*) FROM sample_layers"), 4);
    ck_assert_int_eq(q_int(s, "SELECT count(*) FROM sample_layers WHERE delta_median IS NULL"), 3);
    ck_assert_int_eq(q_int(s, "SELECT wall_decode_s IS NULL AND kl_answer IS NULL AND top1_answer IS NULL "
                              "AND nll_method IS NULL"
                              " AND kl = 0.01 AND top1 = 1 FROM samples"),
                     1);
    ck_assert_int_eq(q_int(s, "SELECT json_extract(active_tokens, '$[2]') FROM samples"), 30);
    /* the same sample twice: refused, still one row */
    ck_assert_int_eq(dk_store_sample_put(s, &w, 600, &r, &e), DK_ERR_STATE);
    snprintf(want, sizeof want, "%s: cell %lld sample 0 is already stored", path, (long long)cell);
    ck_assert_str_eq(e.msg, want);
    ck_assert_int_eq(q_int(s, "SELECT count(*) FROM samples"), 1);
    ck_assert_int_eq(q_int(s, "SELECT count(*) FROM sample_layers"), 4);
    dk_store_close(s);
}
END_TEST

/* A writer SIGKILLed at several points while writing big samples: every stored sample has all
 * its layer rows, no layer row is orphaned, and the dead writer's cell is reclaimed. */
START_TEST(test_sample_atomic_sigkill) {
    char path[512];
    dk_store *s = open_new("kill.db", path, sizeof path);
    int64_t run = mk_run(s, "r"), model = mk_model(s, SHA_A), cell;
    mk_cells(s, run, model, 1, 1000, &cell);
    dk_store_close(s);
    enum { NL = 40000 };
    const int delays_us[] = {2000, 30000, 90000, 250000};
    for (int k = 0; k < 4; k++) {
        int pfd[2];
        ck_assert_int_eq(pipe(pfd), 0);
        pid_t pid = fork();
        if (pid == 0) {
            close(pfd[0]);
            dk_store *cs = open_existing(path);
            dk_worker w;
            dk_store_worker_self(&w);
            dk_err e = {{0}};
            int64_t got = 0, *ids = NULL;
            size_t n_ids = 0;
            if (dk_store_cell_claim(cs, run, &w, 600, &got, NULL, &e) != DK_OK || got != cell) _exit(3);
            dk_store_sample_ids(cs, cell, &ids, &n_ids, &e);
            int64_t *active = malloc(NL * sizeof *active);
            dk_layer_stat *ls = malloc(NL * sizeof *ls);
            for (int l = 0; l < NL; l++) {
                active[l] = l;
                ls[l] = (dk_layer_stat){NAN, NAN, NAN, l, NAN};
            }
            if (write(pfd[1], "g", 1) != 1) _exit(4);
            for (int64_t sid = (int64_t)n_ids;; sid++) {
                dk_sample_row r = mk_row(cell, sid, NL, active);
                r.layers = ls;
                if (dk_store_sample_put(cs, &w, 600, &r, &e) != DK_OK) _exit(5);
            }
        }
        close(pfd[1]);
        char c;
        ck_assert_int_eq(read(pfd[0], &c, 1), 1);
        close(pfd[0]);
        usleep((useconds_t)delays_us[k]);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        ck_assert_msg(WIFSIGNALED(status), "writer %d ended before the kill (status %d)", k, status);
        s = open_existing(path);
        ck_assert_int_eq(q_int(s,
                               "SELECT count(*) FROM samples s WHERE (SELECT count(*) FROM sample_layers l "
                               "WHERE l.sample_row = s.id) <> 40000"),
                         0);
        ck_assert_int_eq(
            q_int(s, "SELECT count(*) FROM sample_layers WHERE sample_row NOT IN (SELECT id FROM samples)"),
            0);
        ck_assert_int_eq(q_int(s, "SELECT count(*) FROM samples") * NL,
                         q_int(s, "SELECT count(*) FROM sample_layers"));
        ck_assert_int_eq(q_int(s, "SELECT max(sample_id) + 1 FROM samples"),
                         q_int(s, "SELECT count(*) FROM samples"));
        ck_assert_int_eq(q_int(s, "SELECT state = 'running' FROM cells"), 1);
        dk_store_close(s);
    }
    /* the killed writer's running cell is stale: a live worker reclaims it */
    s = open_existing(path);
    dk_worker w;
    dk_store_worker_self(&w);
    dk_err e = {{0}};
    int64_t got = 0;
    ck_assert_int_eq(dk_store_cell_claim(s, run, &w, 600, &got, NULL, &e), DK_OK);
    ck_assert_int_eq(got, cell);
    ck_assert_int_eq(q_int(s, "SELECT attempts FROM cells"), 5);
    dk_store_close(s);
}
END_TEST

/* ---- claims ---- */

START_TEST(test_claim_exclusive_processes) {
    char path[512];
    enum { NCELL = 240, NPROC = 3 };
    dk_store *s = open_new("race.db", path, sizeof path);
    int64_t run = mk_run(s, "r"), model = mk_model(s, SHA_A), ids[NCELL];
    mk_cells(s, run, model, NCELL, 1, ids);
    dk_store_close(s);
    pid_t pids[NPROC];
    for (int p = 0; p < NPROC; p++) {
        pids[p] = fork();
        if (pids[p] == 0) {
            char out[600];
            snprintf(out, sizeof out, "%s.claims.%d", path, p);
            FILE *f = fopen(out, "w");
            dk_store *cs = open_existing(path);
            dk_worker w;
            dk_store_worker_self(&w);
            dk_err e = {{0}};
            int64_t active[2] = {1, 1};
            for (;;) {
                int64_t cell = 0;
                if (dk_store_cell_claim(cs, run, &w, 600, &cell, NULL, &e) != DK_OK) {
                    fprintf(f, "ERR %s\n", e.msg);
                    _exit(1);
                }
                if (!cell) break;
                fprintf(f, "%lld\n", (long long)cell);
                fflush(f);
                dk_sample_row r = mk_row(cell, 0, 2, active);
                if (dk_store_sample_put(cs, &w, 600, &r, &e) != DK_OK ||
                    dk_store_cell_finish(cs, cell, &w, &e) != DK_OK) {
                    fprintf(f, "ERR %s\n", e.msg);
                    _exit(1);
                }
            }
            fclose(f);
            dk_store_close(cs);
            _exit(0);
        }
    }
    for (int p = 0; p < NPROC; p++) {
        int status;
        waitpid(pids[p], &status, 0);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "worker %d failed", p);
    }
    int seen[NCELL + 1] = {0}, per_proc[NPROC] = {0};
    for (int p = 0; p < NPROC; p++) {
        char out[600], line[256];
        snprintf(out, sizeof out, "%s.claims.%d", path, p);
        FILE *f = fopen(out, "r");
        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof line, f)) {
            ck_assert_msg(strncmp(line, "ERR", 3) != 0, "%s", line);
            long long id = atoll(line);
            ck_assert(id >= ids[0] && id <= ids[NCELL - 1]);
            seen[id - ids[0]]++;
            per_proc[p]++;
        }
        fclose(f);
    }
    for (int i = 0; i < NCELL; i++) ck_assert_msg(seen[i] == 1, "cell %d claimed %d times", i, seen[i]);
    s = open_existing(path);
    ck_assert_int_eq(q_int(s, "SELECT count(*) FROM cells WHERE state = 'done' AND attempts = 1"), NCELL);
    ck_assert_int_eq(q_int(s, "SELECT count(*) FROM samples"), NCELL);
    ck_assert_int_eq(q_int(s, "SELECT count(DISTINCT worker) FROM samples"),
                     NPROC - (per_proc[0] == 0) - (per_proc[1] == 0) - (per_proc[2] == 0));
    dk_store_close(s);
}
END_TEST

/* A child that claims one cell, reports, then waits to be killed (or exits at once). */
static pid_t claim_in_child(const char *path, int64_t run, double lease, int exit_after) {
    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        dk_store *cs = open_existing(path);
        dk_worker w;
        dk_store_worker_self(&w);
        dk_err e = {{0}};
        int64_t cell = 0;
        char ok = dk_store_cell_claim(cs, run, &w, lease, &cell, NULL, &e) == DK_OK && cell ? 'y' : 'n';
        dk_store_close(cs);
        if (write(pfd[1], &ok, 1) != 1 || exit_after) _exit(0);
        for (;;) pause();
    }
    close(pfd[1]);
    char c = 0;
    ck_assert_int_eq(read(pfd[0], &c, 1), 1);
    close(pfd[0]);
    ck_assert_int_eq(c, 'y');
    return pid;
}

START_TEST(test_reclaim_stale) {
    char path[512];
    dk_store *s = open_new("stale.db", path, sizeof path);
    int64_t run = mk_run(s, "r"), model = mk_model(s, SHA_A), cell;
    mk_cells(s, run, model, 1, 1, &cell);
    dk_worker me;
    dk_store_worker_self(&me);
    dk_err e = {{0}};
    int64_t got = -1;

    /* a live worker with a valid lease keeps its cell */
    pid_t pid = claim_in_child(path, run, 600, 0);
    ck_assert_int_eq(dk_store_cell_claim(s, run, &me, 600, &got, NULL, &e), DK_OK);
    ck_assert_int_eq(got, 0);
    /* once it is dead (killed and reaped), the cell is claimable again */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ck_assert_int_eq(dk_store_cell_claim(s, run, &me, 600, &got, NULL, &e), DK_OK);
    ck_assert_int_eq(got, cell);
    ck_assert_int_eq(q_int(s, "SELECT attempts FROM cells"), 2);
    /* the same holds for a worker that exited without finishing */
    ck_assert_int_eq(dk_store_cell_release(s, cell, &me, &e), DK_OK);
    pid = claim_in_child(path, run, 600, 1);
    waitpid(pid, NULL, 0);
    ck_assert_int_eq(dk_store_cell_claim(s, run, &me, 600, &got, NULL, &e), DK_OK);
    ck_assert_int_eq(got, cell);
    ck_assert_int_eq(dk_store_cell_release(s, cell, &me, &e), DK_OK);

    /* a live worker whose lease expired loses the cell; its later writes are refused */
    pid = claim_in_child(path, run, -1, 0);
    dk_worker old = me;
    sqlite3 *db;
    sqlite3_stmt *q = raw_row(s, "SELECT worker_pid, worker_start, worker FROM cells", &db);
    old.pid = sqlite3_column_int64(q, 0);
    old.start = sqlite3_column_int64(q, 1);
    snprintf(old.name, sizeof old.name, "%s", (const char *)sqlite3_column_text(q, 2));
    raw_done(q, db);
    ck_assert_int_eq(old.pid, pid);
    ck_assert_int_eq(dk_store_cell_renew(s, cell, &old, -1, &e), DK_OK); /* still its owner */
    ck_assert_int_eq(dk_store_cell_claim(s, run, &me, 600, &got, NULL, &e), DK_OK);
    ck_assert_int_eq(got, cell);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    int64_t active[1] = {5};
    dk_sample_row r = mk_row(cell, 0, 1, active);
    ck_assert_int_eq(dk_store_sample_put(s, &old, 600, &r, &e), DK_ERR_STATE);
    char want[900];
    snprintf(want, sizeof want, "%s: cell %lld is not held by worker %s (reclaimed or finished)", path,
             (long long)cell, old.name);
    ck_assert_str_eq(e.msg, want);
    ck_assert_int_eq(dk_store_cell_finish(s, cell, &old, &e), DK_ERR_STATE);
    ck_assert_int_eq(dk_store_cell_renew(s, cell, &old, 600, &e), DK_ERR_STATE);
    /* the new owner can */
    ck_assert_int_eq(dk_store_cell_renew(s, cell, &me, 600, &e), DK_OK);
    ck_assert_int_eq(dk_store_sample_put(s, &me, 600, &r, &e), DK_OK);
    ck_assert_int_eq(dk_store_cell_finish(s, cell, &me, &e), DK_OK);
    ck_assert_int_eq(dk_store_cell_claim(s, run, &me, 600, &got, NULL, &e), DK_OK);
    ck_assert_int_eq(got, 0);
    ck_assert_int_eq(q_int(s, "SELECT attempts FROM cells"), 6); /* 3 children + 3 reclaims */
    dk_store_close(s);
}
END_TEST

START_TEST(test_done_needs_all_samples) {
    char path[512];
    dk_store *s = open_new("done.db", path, sizeof path);
    int64_t run = mk_run(s, "r"), model = mk_model(s, SHA_A), cell, got;
    mk_cells(s, run, model, 1, 3, &cell);
    dk_worker w;
    dk_store_worker_self(&w);
    dk_err e = {{0}};
    ck_assert_int_eq(dk_store_cell_claim(s, run, &w, 600, &got, NULL, &e), DK_OK);
    int64_t active[1] = {5};
    dk_sample_row r = mk_row(cell, 1, 1, active);
    ck_assert_int_eq(dk_store_sample_put(s, &w, 600, &r, &e), DK_OK);
    ck_assert_int_eq(dk_store_cell_finish(s, cell, &w, &e), DK_ERR_STATE);
    char want[800];
    snprintf(want, sizeof want, "%s: cell %lld has 1 of 3 samples; it cannot be done", path, (long long)cell);
    ck_assert_str_eq(e.msg, want);
    /* the database itself refuses it too (trigger), whoever writes */
    char *msg = NULL;
    sqlite3 *db = raw_open(s);
    ck_assert_int_ne(sqlite3_exec(db, "UPDATE cells SET state = 'done'", NULL, NULL, &msg), SQLITE_OK);
    ck_assert_str_eq(msg, "cell is not complete: sample rows missing");
    sqlite3_free(msg);
    sqlite3_close(db);
    int64_t *ids;
    size_t n;
    ck_assert_int_eq(dk_store_sample_ids(s, cell, &ids, &n, &e), DK_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(ids[0], 1);
    free(ids);
    r.sample_id = 0;
    ck_assert_int_eq(dk_store_sample_put(s, &w, 600, &r, &e), DK_OK);
    r.sample_id = 2;
    ck_assert_int_eq(dk_store_sample_put(s, &w, 600, &r, &e), DK_OK);
    ck_assert_int_eq(dk_store_cell_finish(s, cell, &w, &e), DK_OK);
    dk_cell_state st;
    ck_assert_int_eq(dk_store_cell_state(s, cell, &st, &e), DK_OK);
    ck_assert_int_eq(st, DK_CELL_DONE);
    ck_assert_int_eq(dk_store_cell_finish(s, cell, &w, &e), DK_ERR_STATE); /* no longer held */
    ck_assert_int_eq(q_int(s, "SELECT wall_s >= 0 AND finished_at >= started_at FROM cells"), 1);
    dk_store_close(s);
}
END_TEST

/* ---- resume, model change ---- */

static void add_config_cells(dk_store *s, int64_t run, dk_config *c, const char *sha, int64_t *ids,
                             dk_cell_state *states) {
    dk_err e = {{0}};
    dk_model_info mi = {.sha256 = sha,
                        .path = c->models[0],
                        .n_layer = -1,
                        .n_embd = -1,
                        .n_head = -1,
                        .n_head_kv = -1,
                        .n_ff = -1,
                        .n_vocab = -1,
                        .n_ctx = -1,
                        .n_params = -1,
                        .file_bytes = -1};
    int64_t model;
    ck_assert_int_eq(dk_store_model_put(s, &mi, &model, &e), DK_OK);
    dk_cell_spec *sp = calloc(c->n_cells, sizeof *sp);
    dk_config_identity *id = calloc(c->n_cells, sizeof *id);
    for (size_t i = 0; i < c->n_cells; i++) {
        ck_assert_int_eq(dk_config_cell_identity(c, &c->cells[i], sha, &id[i], &e), DK_OK);
        sp[i] = (dk_cell_spec){id[i].key,
                               id[i].json,
                               c->cells[i].task_name,
                               c->cells[i].task_options,
                               id[i].task_key,
                               c->cells[i].method_name,
                               c->cells[i].method_params,
                               model,
                               c->samples,
                               c->seed};
    }
    ck_assert_msg(dk_store_cells_add(s, run, sp, c->n_cells, 1, ids, states, &e) == DK_OK, "%s", e.msg);
    for (size_t i = 0; i < c->n_cells; i++) dk_config_identity_free(&id[i]);
    free(id);
    free(sp);
}

START_TEST(test_resume_and_model_change) {
    char path[512], model_path[512];
    dk_store *s = open_new("resume.db", path, sizeof path);
    dk_test_tmp_path(model_path, sizeof model_path, "model.bin");
    FILE *f = fopen(model_path, "wb");
    fputs("model weights v1", f);
    fclose(f);
    char cfg_text[1024];
    snprintf(cfg_text, sizeof cfg_text,
             "{\"models\":[\"%s\"],\"tasks\":[{\"name\":\"passkey\",\"lengths\":[64,128]}],"
             "\"methods\":[{\"name\":\"dense\"},{\"name\":\"dash\",\"rho\":[0.5,0.8]}],\"samples\":2}",
             model_path);
    dk_config *c = NULL;
    dk_err e = {{0}};
    ck_assert_int_eq(dk_config_parse(cfg_text, strlen(cfg_text), "r.json", NULL, &c, &e), DK_OK);
    ck_assert_int_eq(c->n_cells, 6);
    char sha1[65], sha2[65];
    ck_assert_int_eq(dk_sha256_file(model_path, sha1, &e), DK_OK);

    int64_t ids1[6], ids2[6], ids3[6];
    dk_cell_state st[6];
    int64_t run1 = mk_run(s, "first");
    add_config_cells(s, run1, c, sha1, ids1, st);
    for (int i = 0; i < 6; i++) ck_assert_int_eq(st[i], DK_CELL_PENDING);
    /* run 1 finishes 4 of 6 cells and fails one, then stops */
    dk_worker w;
    dk_store_worker_self(&w);
    int64_t active[1] = {1};
    for (int k = 0; k < 5; k++) {
        int64_t cell;
        ck_assert_int_eq(dk_store_cell_claim(s, run1, &w, 600, &cell, NULL, &e), DK_OK);
        ck_assert_int_eq(cell, ids1[k]); /* config order */
        if (k == 4) {
            ck_assert_int_eq(dk_store_cell_fail(s, cell, &w, "engine: out of memory", &e), DK_OK);
            break;
        }
        for (int j = 0; j < 2; j++) {
            dk_sample_row r = mk_row(cell, j, 1, active);
            ck_assert_int_eq(dk_store_sample_put(s, &w, 600, &r, &e), DK_OK);
        }
        ck_assert_int_eq(dk_store_cell_finish(s, cell, &w, &e), DK_OK);
    }
    ck_assert_int_eq(q_int(s, "SELECT error = 'engine: out of memory' FROM cells WHERE state = 'failed'"), 1);

    /* run 2, same config and model: same cells; done stay done, failed retried, rest pending */
    int64_t run2 = mk_run(s, "second");
    add_config_cells(s, run2, c, sha1, ids2, st);
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(ids2[i], ids1[i]);
        ck_assert_int_eq(st[i], i < 4 ? DK_CELL_DONE : DK_CELL_PENDING);
    }
    int64_t cell;
    ck_assert_int_eq(dk_store_cell_claim(s, run2, &w, 600, &cell, NULL, &e), DK_OK);
    ck_assert_int_eq(cell, ids1[4]);
    ck_assert_int_eq(dk_store_cell_release(s, cell, &w, &e), DK_OK);
    ck_assert_int_eq(q_int(s, "SELECT count(*) FROM samples"), 8);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT done || '/' || pending || '/' || cells FROM run_status WHERE run_id = %lld",
             (long long)run2);
    sqlite3 *db;
    sqlite3_stmt *q = raw_row(s, sql, &db);
    ck_assert_str_eq((const char *)sqlite3_column_text(q, 0), "4/2/6");
    raw_done(q, db);

    /* the model file changes: new sha256, new cells, none done, nothing reused */
    f = fopen(model_path, "wb");
    fputs("model weights v2", f);
    fclose(f);
    ck_assert_int_eq(dk_sha256_file(model_path, sha2, &e), DK_OK);
    ck_assert_str_ne(sha1, sha2);
    int64_t run3 = mk_run(s, "third");
    add_config_cells(s, run3, c, sha2, ids3, st);
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(st[i], DK_CELL_PENDING);
        for (int j = 0; j < 6; j++) ck_assert_int_ne(ids3[i], ids1[j]);
    }
    ck_assert_int_eq(q_int(s, "SELECT count(*) FROM models"), 2);
    ck_assert_int_eq(q_int(s, "SELECT count(*) FROM cells"), 12);
    ck_assert_int_eq(dk_store_cell_claim(s, run3, &w, 600, &cell, NULL, &e), DK_OK);
    ck_assert_int_eq(cell, ids3[0]);
    int64_t *sids;
    size_t n;
    ck_assert_int_eq(dk_store_sample_ids(s, cell, &sids, &n, &e), DK_OK);
    ck_assert_int_eq(n, 0);
    dk_config_free(c);
    dk_store_close(s);
}
END_TEST

/* ---- views ---- */

START_TEST(test_views) {
    char path[512];
    dk_store *s = open_new("views.db", path, sizeof path);
    int64_t run = mk_run(s, "v"), model = mk_model(s, SHA_A), cells[3], got;
    mk_cells(s, run, model, 3, 3, cells);
    dk_worker w;
    dk_store_worker_self(&w);
    dk_err e = {{0}};
    const double score[3] = {100, 50, 0}, wd[3] = {1.0, 2.0, 3.0}, wm[3] = {0.5, 0.5, 1.0},
                 kl[3] = {0.1, 0.2, 0.3};
    const double klmax[3] = {0.5, 0.9, 0.4}, top1[3] = {1, 0.5, 0.25}, nd[3] = {1.0, 2.0, 3.0},
                 nm[3] = {1.5, 2.0, 3.25};
    const int64_t fd[3] = {1000, 1000, 2000}, fm[3] = {400, 500, 600};
    const int top1f[3] = {1, 1, 0};
    int64_t active[2] = {10, 4};
    ck_assert_int_eq(dk_store_cell_claim(s, run, &w, 600, &got, NULL, &e), DK_OK);
    for (int i = 0; i < 3; i++) {
        dk_sample_row r = mk_row(cells[0], i, 2, active);
        r.score = score[i];
        r.wall_dense_s = wd[i];
        r.wall_method_s = wm[i];
        r.kl = kl[i];
        r.flops_dense = fd[i];
        r.flops_method = fm[i];
        r.top1 = top1[i];
        r.top1_first = top1f[i];
        r.kl_max = klmax[i];
        r.kl_first = kl[i] / 10;
        r.nll_dense = nd[i];
        r.nll_method = nm[i];
        r.prediction = i == 1 ? "a, \"b\"\nc" : "x";
        ck_assert_int_eq(dk_store_sample_put(s, &w, 600, &r, &e), DK_OK);
    }
    ck_assert_int_eq(dk_store_cell_finish(s, cells[0], &w, &e), DK_OK);
    /* cell 2 (second) gets one sample and stays running; cell 3 fails */
    ck_assert_int_eq(dk_store_cell_claim(s, run, &w, 600, &got, NULL, &e), DK_OK);
    dk_sample_row r = mk_row(cells[1], 0, 2, active);
    ck_assert_int_eq(dk_store_sample_put(s, &w, 600, &r, &e), DK_OK);
    ck_assert_int_eq(dk_store_cell_claim(s, run, &w, 600, &got, NULL, &e), DK_OK);
    ck_assert_int_eq(dk_store_cell_fail(s, cells[2], &w, "boom", &e), DK_OK);

    char sql[512];
    /* expected values computed here from the inputs */
    double mean = (100 + 50 + 0) / 3.0, ratio = (400.0 + 500 + 600) / (1000 + 1000 + 2000);
    double wall = (1.0 + 2.0 + 3.0) / (0.5 + 0.5 + 1.0), mkl = (0.1 + 0.2 + 0.3) / 3, agree = 2.0 / 3.0;
#define CS(col)                                                                         \
    (snprintf(sql, sizeof sql, "SELECT " col " FROM cell_summary WHERE cell_id = %lld", \
              (long long)cells[0]),                                                     \
     sql)
    ck_assert_int_eq(q_int(s, CS("n")), 3);
    ck_assert_double_eq_tol(q_real(s, CS("mean_score")), mean, 1e-12);
    ck_assert_double_eq_tol(q_real(s, CS("flops_ratio")), ratio, 1e-12);
    ck_assert_double_eq_tol(q_real(s, CS("flops_speedup")), 1 / ratio, 1e-12);
    ck_assert_double_eq_tol(q_real(s, CS("wall_speedup")), wall, 1e-12);
    ck_assert_double_eq_tol(q_real(s, CS("kl")), mkl, 1e-12);
    ck_assert_double_eq_tol(q_real(s, CS("kl_max")), 0.9, 1e-12);
    ck_assert_double_eq_tol(q_real(s, CS("top1")), (1 + 0.5 + 0.25) / 3, 1e-12);
    ck_assert_double_eq_tol(q_real(s, CS("nll_delta")), (0.5 + 0 + 0.25) / 3, 1e-12);
    ck_assert_double_eq_tol(q_real(s, CS("kl_first")), mkl / 10, 1e-12);
    ck_assert_double_eq_tol(q_real(s, CS("top1_first")), agree, 1e-12);
    ck_assert_double_eq_tol(q_real(s, CS("rho")), 0.0, 1e-15);
    ck_assert_double_eq_tol(q_real(s, CS("ls")), 0.4, 1e-15);
    ck_assert_int_eq(q_int(s, CS("length")), 1024);
    ck_assert_int_eq(q_int(s, CS("flops_dense")), 4000);
    ck_assert_int_eq(q_int(s, CS("state = 'done'")), 1);
    snprintf(sql, sizeof sql, "SELECT rho FROM cell_summary WHERE cell_id = %lld", (long long)cells[1]);
    ck_assert_double_eq_tol(q_real(s, sql), 1.0 / 6.0, 1e-12);
    snprintf(sql, sizeof sql, "SELECT n FROM cell_summary WHERE cell_id = %lld", (long long)cells[2]);
    ck_assert_int_eq(q_int(s, sql), 0);
    snprintf(sql, sizeof sql,
             "SELECT mean_score IS NULL AND wall_speedup IS NULL FROM cell_summary WHERE cell_id = %lld",
             (long long)cells[2]);
    ck_assert_int_eq(q_int(s, sql), 1);
    /* run_status counts by state */
    ck_assert_int_eq(q_int(s, "SELECT cells FROM run_status"), 3);
    ck_assert_int_eq(q_int(s, "SELECT done FROM run_status"), 1);
    ck_assert_int_eq(q_int(s, "SELECT running FROM run_status"), 1);
    ck_assert_int_eq(q_int(s, "SELECT failed FROM run_status"), 1);
    ck_assert_int_eq(q_int(s, "SELECT pending FROM run_status"), 0);
    /* sample_rows: one per sample, per-sample ratios */
    ck_assert_int_eq(q_int(s, "SELECT count(*) FROM sample_rows"), 4);
    snprintf(sql, sizeof sql, "SELECT wall_speedup FROM sample_rows WHERE cell_id = %lld AND sample_id = 1",
             (long long)cells[0]);
    ck_assert_double_eq_tol(q_real(s, sql), 4.0, 1e-12);
    snprintf(sql, sizeof sql, "SELECT flops_ratio FROM sample_rows WHERE cell_id = %lld AND sample_id = 2",
             (long long)cells[0]);
    ck_assert_double_eq_tol(q_real(s, sql), 0.3, 1e-12);
    dk_store_close(s);
}
END_TEST

/* ---- dense results ---- */

START_TEST(test_dense_shared) {
    char path[512];
    dk_store *s = open_new("dense.db", path, sizeof path);
    float logits[2 * 5];
    for (int i = 0; i < 10; i++) logits[i] = (float)i * 0.25f - 1.0f;
    dk_dense_row d = {.model_sha256 = SHA_A,
                      .task_key = "tk",
                      .sample_id = 3,
                      .task = "passkey",
                      .task_options = "{\"length\":64}",
                      .prompt_tokens = 70,
                      .flops = 123456789012LL,
                      .flops_parts = "{\"mlp\":1}",
                      .wall_s = 0.25,
                      .prediction = "7",
                      .score = 100,
                      .n_vocab = 5,
                      .n_logit_rows = 2,
                      .logits = logits};
    dk_err e = {{0}};
    int ins = -1, found = -1;
    ck_assert_int_eq(dk_store_dense_put(s, &d, &ins, &e), DK_OK);
    ck_assert_int_eq(ins, 1);
    dk_dense_row d2 = d;
    d2.prediction = "8";
    d2.wall_s = 9;
    ck_assert_int_eq(dk_store_dense_put(s, &d2, &ins, &e), DK_OK);
    ck_assert_int_eq(ins, 0); /* first writer wins */
    dk_dense_result r;
    ck_assert_int_eq(dk_store_dense_get(s, SHA_A, "tk", 3, &r, &found, &e), DK_OK);
    ck_assert_int_eq(found, 1);
    ck_assert_str_eq(r.prediction, "7");
    ck_assert_int_eq(r.flops, 123456789012LL);
    ck_assert_double_eq(r.wall_s, 0.25);
    ck_assert_int_eq(r.n_vocab, 5);
    ck_assert_int_eq(r.n_logit_rows, 2);
    ck_assert_mem_eq(r.logits, logits, sizeof logits);
    dk_store_dense_free(&r);
    ck_assert_int_eq(dk_store_dense_get(s, SHA_A, "tk", 4, &r, &found, &e), DK_OK);
    ck_assert_int_eq(found, 0);
    ck_assert_int_eq(dk_store_dense_get(s, "b", "tk", 3, &r, &found, &e), DK_OK);
    ck_assert_int_eq(found, 0);
    dk_store_close(s);
}
END_TEST

/* ---- CLI: status and export ---- */

static int count_tmp_leftovers(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) n += strstr(de->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

/* ---- migration: a schema-1 store written by the dashkit before issue 14 (tests/data/store_v1.db,
 * scripts/make_store_v1.sh) is upgraded on open and its old rows stay readable ---- */

START_TEST(test_migrate_v1) {
    const char *fixture = "tests/data/store_v1.db";
    char path[512], path2[512], cmd[2048], *out = NULL;
    dk_test_tmp_path(path, sizeof path, "v1.db");
    dk_test_tmp_path(path2, sizeof path2, "v1-noupgrade.db");
    rm_db(path);
    rm_db(path2);
    dk_test_copy_file(fixture, path);
    dk_test_copy_file(fixture, path2);
    /* what the old schema holds, read with plain SQLite */
    sqlite3 *old;
    ck_assert_int_eq(sqlite3_open_v2(fixture, &old, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q;
    ck_assert_int_eq(sqlite3_prepare_v2(old, "PRAGMA user_version", -1, &q, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(q, 0), 1);
    sqlite3_finalize(q);

    /* read-only with NO_UPGRADE: an error naming both versions, the file untouched */
    dk_store *s = NULL;
    dk_err e = {{0}};
    ck_assert_int_eq(dk_store_open(path2, DK_STORE_OPEN_READONLY | DK_STORE_OPEN_NO_UPGRADE, &s, &e),
                     DK_ERR_FORMAT);
    ck_assert_msg(strstr(e.msg, "store schema version 1 is older than") != NULL, "%s", e.msg);

    /* a read command (export opens read-only) upgrades it and reads every row */
    snprintf(cmd, sizeof cmd, "%s export --db %s --format json", dk_test_cli(), path);
    ck_assert_int_eq(dk_test_run(cmd, 1, &out), 0);
    cJSON *arr = cJSON_Parse(out);
    ck_assert_msg(arr != NULL, "%s", out);
    ck_assert_int_eq(cJSON_GetArraySize(arr), 6);
    cJSON_Delete(arr);
    free(out);
    ck_assert_int_eq(dk_store_open(path, DK_STORE_OPEN_READONLY, &s, &e), DK_OK);
    ck_assert_int_eq(dk_store_schema_version(s), DK_STORE_SCHEMA_VERSION);
    /* old kl_answer (answer mean) is the views' kl; old first-row kl/top1 are kl_first/top1_first;
     * what schema 1 never measured is NULL */
    ck_assert_int_eq(sqlite3_prepare_v2(old,
                                        "SELECT s.kl, s.kl_answer, s.top1, c.key, s.sample_id FROM samples s"
                                        " JOIN cells c ON c.id = s.cell_id ORDER BY c.key, s.sample_id",
                                        -1, &q, NULL),
                     SQLITE_OK);
    int n = 0, n_method = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        char sql[512];
        snprintf(
            sql, sizeof sql,
            "SELECT count(*) FROM sample_rows WHERE cell_key = '%s' AND sample_id = %lld"
            " AND kl_first = %.17g AND kl = %.17g AND top1_first = %d AND top1 IS NULL AND kl_max IS NULL"
            " AND nll_delta IS NULL",
            (const char *)sqlite3_column_text(q, 3), (long long)sqlite3_column_int64(q, 4),
            sqlite3_column_double(q, 0), sqlite3_column_double(q, 1), sqlite3_column_int(q, 2));
        ck_assert_msg(q_int(s, sql) == 1, "%s", sql);
        n_method += sqlite3_column_double(q, 1) > 0;
        n++;
    }
    sqlite3_finalize(q);
    sqlite3_close(old);
    ck_assert_int_eq(n, 6);
    ck_assert_int_eq(n_method, 4);
    ck_assert_int_eq(
        q_int(s, "SELECT count(*) FROM cell_summary WHERE kl IS NOT NULL AND top1 IS NULL AND n = 2"), 3);
    dk_store_close(s);
    /* and the report draws from it */
    snprintf(cmd, sizeof cmd, "%s report --db %s --out %s/v1-report --no-draw", dk_test_cli(), path,
             dk_test_tmpdir());
    ck_assert_int_eq(dk_test_run(cmd, 1, &out), 0);
    free(out);
}
END_TEST

START_TEST(test_cli_status_export) {
    char path[512], cmd[2048], *out = NULL, dir[600], csv[700], js[700];
    dk_test_tmp_path(dir, sizeof dir, "exp");
    mkdir(dir, 0777);
    dk_store *s = open_new("exp/cli.db", path, sizeof path);
    int64_t run = mk_run(s, "clitest"), model = mk_model(s, SHA_A), cells[2], got;
    mk_cells(s, run, model, 2, 2, cells);
    dk_worker w;
    dk_store_worker_self(&w);
    dk_err e = {{0}};
    int64_t active[3] = {9, 9, 3};
    ck_assert_int_eq(dk_store_cell_claim(s, run, &w, 600, &got, NULL, &e), DK_OK);
    for (int i = 0; i < 2; i++) {
        dk_sample_row r = mk_row(cells[0], i, 3, active);
        r.prediction = i ? "a, \"b\"" : "plain";
        ck_assert_int_eq(dk_store_sample_put(s, &w, 600, &r, &e), DK_OK);
    }
    ck_assert_int_eq(dk_store_cell_finish(s, cells[0], &w, &e), DK_OK);
    ck_assert_int_eq(dk_store_cell_claim(s, run, &w, 600, &got, NULL, &e), DK_OK);
    ck_assert_int_eq(dk_store_cell_fail(s, cells[1], &w, "model: bad tensor", &e), DK_OK);
    dk_store_close(s);

    /* status */
    snprintf(cmd, sizeof cmd, "%s status --db %s", dk_test_cli(), path);
    ck_assert_int_eq(dk_test_run(cmd, 1, &out), 0);
    ck_assert_msg(strstr(out, "runs: 1\n") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "clitest") != NULL, "%s", out);
    char line[512];
    snprintf(
        line, sizeof line,
        "failed: cell %lld passkey {\"length\":1024} dash {\"ls\":0.4,\"rho\":0.25}: model: bad tensor\n",
        (long long)cells[1]);
    ck_assert_msg(strstr(out, line) != NULL, "%s", out);
    /* the row: 2 cells, 0 pending, 0 running, 1 done, 1 failed */
    char *row = strstr(out, "clitest");
    long long n_cells, n_p, n_r, n_d, n_f;
    ck_assert_int_eq(
        sscanf(row, "clitest %*s %*s %lld %lld %lld %lld %lld", &n_cells, &n_p, &n_r, &n_d, &n_f), 5);
    ck_assert(n_cells == 2 && n_p == 0 && n_r == 0 && n_d == 1 && n_f == 1);
    free(out);
    snprintf(cmd, sizeof cmd, "%s status --db %s/none.db", dk_test_cli(), dir);
    ck_assert_int_eq(dk_test_run(cmd, 1, &out), 1);
    ck_assert_msg(strstr(out, "none.db: no such store") != NULL, "%s", out);
    free(out);
    snprintf(csv, sizeof csv, "%s/none.db", dir);
    struct stat sb;
    ck_assert_int_ne(stat(csv, &sb), 0);

    /* export csv */
    snprintf(csv, sizeof csv, "%s/out.csv", dir);
    snprintf(cmd, sizeof cmd, "%s export --db %s --format csv --out %s", dk_test_cli(), path, csv);
    ck_assert_int_eq(dk_test_run(cmd, 1, &out), 0);
    free(out);
    FILE *f = fopen(csv, "r");
    ck_assert_ptr_nonnull(f);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    ck_assert_msg(
        !strncmp(buf,
                 "cell_id,cell_key,model,model_sha256,task,task_options,length,depth,method,params,rho,ls,"
                 "tau,keep,sample_id,sample_key,prompt_tokens,",
                 120),
        "%s", buf);
    int lines = 0;
    for (char *p = buf; *p; p++) lines += *p == '\n';
    ck_assert_int_eq(lines, 3); /* header + 2 samples */
    ck_assert_msg(strstr(buf, ",\"a, \"\"b\"\"\",") != NULL, "quoted field: %s", buf);
    ck_assert_msg(strstr(buf, ",\"{\"\"ls\"\":0.4,\"\"rho\"\":0}\",") != NULL, "params: %s", buf);
    ck_assert_msg(strstr(buf, ",\"[9,9,3]\",") != NULL, "active tokens: %s", buf);

    /* export json: parses, 2 objects, JSON columns embedded */
    snprintf(js, sizeof js, "%s/out.json", dir);
    snprintf(cmd, sizeof cmd, "%s export --db %s --format json --out %s", dk_test_cli(), path, js);
    ck_assert_int_eq(dk_test_run(cmd, 1, &out), 0);
    free(out);
    f = fopen(js, "r");
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    cJSON *arr = cJSON_Parse(buf);
    ck_assert_ptr_nonnull(arr);
    ck_assert_int_eq(cJSON_GetArraySize(arr), 2);
    cJSON *o = cJSON_GetArrayItem(arr, 1);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "prediction")->valuestring, "a, \"b\"");
    ck_assert(cJSON_IsObject(cJSON_GetObjectItem(o, "params")));
    ck_assert_double_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "params"), "ls")->valuedouble, 0.4);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "active_tokens")), 3);
    ck_assert_double_eq(cJSON_GetObjectItem(o, "wall_speedup")->valuedouble, 2.0);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "kl")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "nll_delta")));
    ck_assert_double_eq(cJSON_GetObjectItem(o, "kl_first")->valuedouble, 0.01);
    ck_assert_int_eq(cJSON_GetObjectItem(o, "top1_first")->valueint, 1);
    cJSON_Delete(arr);

    /* --run filter, stdout, empty selection */
    snprintf(cmd, sizeof cmd, "%s export --db %s --format json --run %lld", dk_test_cli(), path,
             (long long)run);
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    arr = cJSON_Parse(out);
    ck_assert_int_eq(cJSON_GetArraySize(arr), 2);
    cJSON_Delete(arr);
    free(out);
    snprintf(cmd, sizeof cmd, "%s export --db %s --format json --run 99", dk_test_cli(), path);
    ck_assert_int_eq(dk_test_run(cmd, 1, &out),
                     2); /* a run not in the store: bad parameter, as report/plot */
    ck_assert_msg(strstr(out, ": no run 99") != NULL, "%s", out);
    free(out);

    /* errors: bad format (exit 2), unwritable destination (exit 1, nothing left behind) */
    snprintf(cmd, sizeof cmd, "%s export --db %s --format xml", dk_test_cli(), path);
    ck_assert_int_eq(dk_test_run(cmd, 1, &out), 2);
    ck_assert_msg(strstr(out, "--format 'xml': expected csv or json") != NULL, "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s export --db %s --format csv --out %s/no/such/dir/x.csv", dk_test_cli(),
             path, dir);
    ck_assert_int_eq(dk_test_run(cmd, 1, &out), 1);
    free(out);
    ck_assert_int_eq(count_tmp_leftovers(dir), 0);
    /* export/status never write: the store is byte-identical afterwards is too strong with WAL,
     * but no run/cell/sample count changes */
    s = open_existing(path);
    ck_assert_int_eq(q_int(s, "SELECT count(*) FROM samples"), 2);
    ck_assert_int_eq(q_int(s, "SELECT count(*) FROM runs"), 1);
    dk_store_close(s);
}
END_TEST

static Suite *store_suite(void) {
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("store");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_sha256_vectors);
    tcase_add_test(tc, test_open_errors);
    tcase_add_test(tc, test_sample_atomic_constraint);
    tcase_add_test(tc, test_sample_atomic_sigkill);
    tcase_add_test(tc, test_claim_exclusive_processes);
    tcase_add_test(tc, test_reclaim_stale);
    tcase_add_test(tc, test_done_needs_all_samples);
    tcase_add_test(tc, test_resume_and_model_change);
    tcase_add_test(tc, test_views);
    tcase_add_test(tc, test_dense_shared);
    tcase_add_test(tc, test_cli_status_export);
    tcase_add_test(tc, test_migrate_v1);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return dk_test_main(store_suite()); }
