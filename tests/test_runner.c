/* test_runner.c — `dashkit run` end to end on a tiny random GGUF model (tests/data): results
 * and dense sharing, resume, SIGKILL at random points then re-run (every cell done exactly once,
 * rows identical to an uninterrupted run, no half-written sample), two workers and two
 * concurrent runs on one DB (attempts == 1), a changed model file not served stale results,
 * bad configs (exit 2, no DB file created), prefix groups. */
#include "config.h"
#include "runner.h"
#include "support/dk_test.h"

#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DK_MODEL "tests/data/ref_llama_f32.gguf" /* 3 layers, n_ctx 256, SPM tokenizer */

/* 2 task points x (dense + 3 dash) = 8 cells of `samples` samples each. */
static void write_config(const char *path, const char *model, int samples) {
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "{\"name\":\"rt\",\"models\":[\"%s\"],\n"
            " \"tasks\":[{\"name\":\"passkey\",\"lengths\":[230,240]}],\n"
            " \"methods\":[{\"name\":\"dense\"},{\"name\":\"dash\",\"rho\":[0.3,0.5,0.8],\"ls\":0.34}],\n"
            " \"samples\":%d,\"seed\":5,\"threads\":1}\n",
            model, samples);
    fclose(f);
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static void rm_db(const char *db) {
    char p[600];
    unlink(db);
    snprintf(p, sizeof p, "%s-wal", db);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", db);
    unlink(p);
}

static int run_cli(const char *args, char **out) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s", dk_test_cli(), args);
    return dk_test_run(cmd, 1, out);
}

static sqlite3 *db_open(const char *path) {
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static int64_t q_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *q = NULL;
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

/* Text dump of the deterministic part of every sample row, keyed by cell identity and sample. */
static char *dump_results(sqlite3 *db) {
    sqlite3_stmt *q = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(
                         db,
                         "SELECT c.key, s.sample_id, s.sample_key, s.prompt_tokens, s.context_tokens, "
                         "s.question_tokens, s.gen_tokens,"
                         " s.active_tokens, s.flops_dense, s.flops_method, s.flops_method_parts, "
                         "hex(s.prediction), s.answers,"
                         " s.score, s.kl, s.kl_answer, s.top1, s.kl_answer_max, s.top1_answer, s.nll_dense, "
                         "s.nll_method, (SELECT count(*) FROM sample_layers l WHERE l.sample_row = s.id),"
                         " (SELECT group_concat(flops) FROM (SELECT flops FROM sample_layers l WHERE "
                         "l.sample_row = s.id ORDER BY layer))"
                         " FROM samples s JOIN cells c ON c.id = s.cell_id ORDER BY c.key, s.sample_id",
                         -1, &q, NULL),
                     SQLITE_OK);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    out[0] = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        for (int i = 0; i < sqlite3_column_count(q); i++) {
            const char *t = (const char *)sqlite3_column_text(q, i);
            size_t need = len + (t ? strlen(t) : 4) + 4;
            if (need > cap) {
                while (need > cap) cap *= 2;
                out = realloc(out, cap);
            }
            len += (size_t)sprintf(out + len, "%s%s", t ? t : "NULL",
                                   i + 1 < sqlite3_column_count(q) ? "|" : "\n");
        }
    }
    sqlite3_finalize(q);
    return out;
}

/* Store invariants after a complete run of write_config(.., samples): every cell of the last run
 * done exactly once with exactly `samples` rows, each with its 3 layer rows. */
static void check_complete(sqlite3 *db, int samples) {
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM cells"), 8);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM cells WHERE state = 'done'"), 8);
    char sql[512];
    snprintf(
        sql, sizeof sql,
        "SELECT count(*) FROM cells c WHERE (SELECT count(*) FROM samples s WHERE s.cell_id = c.id) != %d",
        samples);
    ck_assert_int_eq(q_int(db, sql), 0);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM samples"), 8 * samples);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM (SELECT cell_id, sample_id FROM samples GROUP BY 1, 2 "
                               "HAVING count(*) > 1)"),
                     0);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM samples WHERE sample_id < 0 OR sample_id >= %d", samples);
    ck_assert_int_eq(q_int(db, sql), 0);
    /* no half-written sample: every row has all its layer rows and its results */
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM samples s WHERE (SELECT count(*) FROM sample_layers l "
                               "WHERE l.sample_row = s.id) != 3"),
                     0);
    ck_assert_int_eq(
        q_int(db,
              "SELECT count(*) FROM samples WHERE prediction IS NULL OR score IS NULL OR flops_method IS NULL"
              " OR active_tokens IS NULL OR top1 IS NULL"),
        0);
    ck_assert_int_eq(
        q_int(db, "SELECT count(*) FROM sample_layers WHERE sample_row NOT IN (SELECT id FROM samples)"), 0);
    /* dense computed once per (model, task point, sample), shared by the 4 method cells */
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM dense_results"), 2 * samples);
}

/* ---- results, dense sharing, resume ---- */

START_TEST(test_run_results_and_resume) {
    char cfg[512], db[512], args[1200];
    dk_test_tmp_path(cfg, sizeof cfg, "basic.json");
    dk_test_tmp_path(db, sizeof db, "basic.db");
    write_config(cfg, DK_MODEL, 3);
    rm_db(db);
    char *out = NULL;
    snprintf(args, sizeof args, "run %s --db %s", cfg, db);
    ck_assert_msg(run_cli(args, &out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "cells: 8\ndone: 8\nfailed: 0\nunfinished: 0\nsamples: 24\nsamples_new: 24\n"),
                  "%s", out);
    free(out);
    sqlite3 *h = db_open(db);
    check_complete(h, 3);
    ck_assert_int_eq(q_int(h, "SELECT count(*) FROM cells WHERE attempts != 1"), 0);
    /* the dense cell is the reference: KL 0, top-1 agreement, same FLOPs */
    ck_assert_int_eq(
        q_int(h, "SELECT count(*) FROM samples s JOIN cells c ON c.id = s.cell_id WHERE c.method = 'dense'"
                 " AND (s.kl != 0 OR s.top1 != 1 OR s.flops_method != s.flops_dense OR s.kl_answer != 0"
                 " OR s.kl_answer_max != 0 OR s.top1_answer != 1 OR s.nll_method != s.nll_dense)"),
        0);
    /* every method cell compares against the stored dense row of its sample */
    ck_assert_int_eq(q_int(h, "SELECT count(*) FROM samples s JOIN cells c ON c.id = s.cell_id JOIN models m "
                              "ON m.id = c.model_id"
                              " JOIN dense_results d ON d.model_sha256 = m.sha256 AND d.task_key = c.task_key"
                              " AND d.sample_id = s.sample_id WHERE d.flops = s.flops_dense"),
                     24);
    /* halting does less work, more so for larger rho; active tokens drop after l_s = 1 */
    ck_assert_int_eq(
        q_int(h, "SELECT count(*) FROM samples s JOIN cells c ON c.id = s.cell_id WHERE c.method = 'dash'"
                 " AND s.flops_method >= s.flops_dense"),
        0);
    ck_assert_int_eq(
        q_int(h, "SELECT count(*) FROM samples s JOIN cells c ON c.id = s.cell_id WHERE c.method = 'dash'"
                 " AND json_extract(s.active_tokens, '$[2]') >= json_extract(s.active_tokens, '$[1]')"),
        0);
    /* dense samples carry Δ statistics at every layer (the report's Δ-per-layer figure), ordered */
    ck_assert_int_eq(
        q_int(h, "SELECT count(*) FROM sample_layers l JOIN samples s ON s.id = l.sample_row JOIN cells c"
                 " ON c.id = s.cell_id WHERE c.method = 'dense' AND (l.delta_max IS NULL OR NOT (l.delta_min "
                 "<= l.delta_median"
                 " AND l.delta_median <= l.delta_max AND l.delta_min >= 0))"),
        0);
    ck_assert_int_eq(
        q_int(h, "SELECT count(*) FROM sample_layers l JOIN samples s ON s.id = l.sample_row JOIN cells c"
                 " ON c.id = s.cell_id WHERE c.method = 'dense'"),
        2 * 3 * 3); /* 2 task points x 3 samples x 3 layers */
    /* provenance of the run */
    ck_assert_int_eq(
        q_int(
            h,
            "SELECT count(*) FROM runs WHERE threads = 1 AND workers = 1 AND blas_core IS NOT NULL"
            " AND host IS NOT NULL AND length(config_hash) = 64 AND n_cells = 8 AND finished_at IS NOT NULL"),
        1);
    ck_assert_int_eq(
        q_int(h, "SELECT count(*) FROM models WHERE n_layer = 3 AND n_vocab = 320 AND length(sha256) = 64"),
        1);
    char *before = dump_results(h);
    sqlite3_close(h);

    /* resume: nothing left to do, nothing rewritten */
    ck_assert_msg(run_cli(args, &out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "done: 8\n") && strstr(out, "samples_new: 0\n"), "%s", out);
    free(out);
    h = db_open(db);
    char *after = dump_results(h);
    ck_assert_str_eq(before, after);
    ck_assert_int_eq(q_int(h, "SELECT count(*) FROM runs"), 2);
    ck_assert_int_eq(q_int(h, "SELECT count(*) FROM cells WHERE attempts != 1"), 0);
    sqlite3_close(h);
    free(before);
    free(after);
}
END_TEST

/* ---- SIGKILL at random points, then re-run ---- */

/* Waits until no worker recorded on a running cell is alive (killed workers die with their
 * parent, asynchronously). */
static void wait_workers_gone(const char *dbp) {
    if (!file_exists(dbp)) return;
    for (int tries = 0; tries < 200; tries++) {
        sqlite3 *h = db_open(dbp);
        sqlite3_stmt *q = NULL;
        int alive = 0;
        if (sqlite3_prepare_v2(h, "SELECT worker_pid FROM cells WHERE state = 'running'", -1, &q, NULL) ==
            SQLITE_OK)
            while (sqlite3_step(q) == SQLITE_ROW) {
                pid_t pid = (pid_t)sqlite3_column_int64(q, 0);
                if (pid > 0 && kill(pid, 0) == 0) {
                    char p[64], st = 0;
                    snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
                    FILE *f = fopen(p, "r");
                    if (f) {
                        if (fscanf(f, "%*d %*s %c", &st) != 1) st = 0;
                        fclose(f);
                    }
                    alive += st != 'Z' && st != 'X';
                }
            }
        sqlite3_finalize(q);
        sqlite3_close(h);
        if (!alive) return;
        usleep(20000);
    }
    ck_abort_msg("workers of a killed run still alive");
}

static int64_t count_samples(const char *dbp) {
    if (!file_exists(dbp)) return 0;
    sqlite3 *db = NULL;
    int64_t n = 0;
    if (sqlite3_open_v2(dbp, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *q = NULL;
        sqlite3_busy_timeout(db, 1000);
        if (sqlite3_prepare_v2(db, "SELECT count(*) FROM samples", -1, &q, NULL) == SQLITE_OK &&
            sqlite3_step(q) == SQLITE_ROW)
            n = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
    sqlite3_close(db);
    return n;
}

/* STEM.json (write_config of model, samples), a fresh STEM.db, and STEM_ref.db holding an
 * uninterrupted run of it (the reference). */
static void setup_with_reference(const char *stem, const char *model, int samples, char cfg[512],
                                 char db[512], char ref_db[512]) {
    char name[128], args[1200], *out = NULL;
    snprintf(name, sizeof name, "%s.json", stem);
    dk_test_tmp_path(cfg, 512, name);
    snprintf(name, sizeof name, "%s.db", stem);
    dk_test_tmp_path(db, 512, name);
    snprintf(name, sizeof name, "%s_ref.db", stem);
    dk_test_tmp_path(ref_db, 512, name);
    write_config(cfg, model, samples);
    rm_db(db);
    rm_db(ref_db);
    snprintf(args, sizeof args, "run %s --db %s", cfg, ref_db);
    ck_assert_msg(run_cli(args, &out) == 0, "%s", out);
    free(out);
}

START_TEST(test_sigkill_then_rerun) {
    char cfg[512], db[512], ref_db[512], args[1200];
    setup_with_reference("kill", DK_MODEL, 5, cfg, db, ref_db);
    char *out = NULL;

    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    printf("test_sigkill_then_rerun: seed %u\n", seed);
    srand(seed);
    int kills = 0;
    for (int round = 0; round < 6; round++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            int fd = open("/dev/null", 1);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
            }
            const char *w = round % 2 ? "2" : "1";
            execl(dk_test_cli(), dk_test_cli(), "run", cfg, "--db", db, "--workers", w, "--quiet",
                  (char *)NULL);
            _exit(127);
        }
        /* kill at a random point while work is being stored: after 1-3 more sample rows, plus
         * 0-6 ms (mid-sample, mid-transaction, between cells, ...); a sample takes a few ms */
        int64_t start = count_samples(db), target = start + 1 + rand() % 3;
        int status, exited = 0;
        /* up to ~60 s for the target: on a loaded machine a run's start (model load, dense
         * references) can take several seconds, and a kill before its first row tests nothing */
        for (int t = 0; t < 30000 && !exited; t++) {
            if (waitpid(pid, &status, WNOHANG) == pid) {
                exited = 1;
                break;
            }
            if (count_samples(db) >= target) break;
            usleep(2000);
        }
        if (!exited) {
            usleep((useconds_t)(rand() % 6000));
            if (waitpid(pid, &status, WNOHANG) == 0) {
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                kills++;
            }
        }
        wait_workers_gone(db);
    }
    printf("test_sigkill_then_rerun: %d runs killed\n", kills);
    ck_assert_msg(kills >= 4, "only %d of 6 runs were still running when killed", kills);
    /* what the killed runs left is consistent: no sample without its layer rows */
    int64_t partial = 0;
    if (file_exists(db)) {
        sqlite3 *h = db_open(db);
        partial = q_int(h, "SELECT count(*) FROM samples");
        ck_assert_int_eq(q_int(h, "SELECT count(*) FROM samples s WHERE (SELECT count(*) FROM sample_layers "
                                  "l WHERE l.sample_row = s.id) != 3"),
                         0);
        ck_assert_int_eq(q_int(h, "SELECT count(*) FROM cells WHERE state = 'done' AND (SELECT count(*) FROM "
                                  "samples s WHERE s.cell_id = cells.id) != 5"),
                         0);
        sqlite3_close(h);
    }
    printf("test_sigkill_then_rerun: %lld of 40 samples stored by the killed runs\n", (long long)partial);
    ck_assert_msg(partial > 0, "the killed runs stored nothing: the kills did not interrupt work");
    snprintf(args, sizeof args, "run %s --db %s", cfg, db);
    ck_assert_msg(run_cli(args, &out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "done: 8\n"), "%s", out);
    free(out);
    sqlite3 *h = db_open(db), *r = db_open(ref_db);
    check_complete(h, 5);
    char *got = dump_results(h), *want = dump_results(r);
    ck_assert_str_eq(got, want); /* the same rows as without interruption */
    free(got);
    free(want);
    sqlite3_close(h);
    sqlite3_close(r);
}
END_TEST

/* ---- two workers, and two runs at once, on one DB ---- */

START_TEST(test_two_workers) {
    char cfg[512], db[512], args[1200];
    dk_test_tmp_path(cfg, sizeof cfg, "two.json");
    dk_test_tmp_path(db, sizeof db, "two.db");
    write_config(cfg, DK_MODEL, 4);
    rm_db(db);
    char *out = NULL;
    snprintf(args, sizeof args, "run %s --db %s --workers 2", cfg, db);
    ck_assert_msg(run_cli(args, &out) == 0, "%s", out);
    free(out);
    sqlite3 *h = db_open(db);
    check_complete(h, 4);
    ck_assert_int_eq(q_int(h, "SELECT count(*) FROM cells WHERE attempts != 1"), 0);
    ck_assert_int_eq(q_int(h, "SELECT count(*) FROM runs WHERE workers = 2"), 1);
    /* a sample row is written by the worker that holds its cell */
    ck_assert_int_eq(
        q_int(h,
              "SELECT count(*) FROM samples s JOIN cells c ON c.id = s.cell_id WHERE s.worker != c.worker"),
        0);
    sqlite3_close(h);

    /* two `dashkit run` processes at once (2 workers each) on a fresh DB */
    rm_db(db);
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "%s run %s --db %s --workers 2 --quiet > /dev/null 2>&1", dk_test_cli(), cfg,
             db);
    pid_t a = fork();
    if (a == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    pid_t b = fork();
    if (b == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int sa, sb;
    waitpid(a, &sa, 0);
    waitpid(b, &sb, 0);
    /* each exits 0, or 1 when cells were still running in the other process as it finished */
    ck_assert(WIFEXITED(sa) && WEXITSTATUS(sa) <= 1);
    ck_assert(WIFEXITED(sb) && WEXITSTATUS(sb) <= 1);
    h = db_open(db);
    check_complete(h, 4);
    ck_assert_int_eq(q_int(h, "SELECT count(*) FROM cells WHERE attempts != 1"), 0);
    ck_assert_int_eq(q_int(h, "SELECT count(*) FROM runs"), 2);
    sqlite3_close(h);
}
END_TEST

/* ---- a changed model file is not served stale results ---- */

/* "analyze" in a config: the run records one analysis per (model, task), a re-run keeps it */
START_TEST(test_run_records_analysis) {
    char cfg[512], db[512], args[1200];
    dk_test_tmp_path(cfg, sizeof cfg, "an.json");
    dk_test_tmp_path(db, sizeof db, "an.db");
    FILE *f = fopen(cfg, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "{\"name\":\"an\",\"models\":[\"%s\"],\"tasks\":[{\"name\":\"passkey\",\"lengths\":[200,220]}],"
            "\"methods\":[{\"name\":\"dense\"}],\"samples\":1,\"seed\":5,\"threads\":1,"
            "\"analyze\":{\"samples\":2,\"ls\":0.34,\"rho\":0.5}}\n",
            DK_MODEL);
    fclose(f);
    rm_db(db);
    char *out = NULL;
    snprintf(args, sizeof args, "run %s --db %s", cfg, db);
    for (int pass = 0; pass < 2; pass++) {
        ck_assert_msg(run_cli(args, &out) == 0, "%s", out);
        free(out);
    }
    sqlite3 *h = db_open(db);
    ck_assert_int_eq(q_int(h, "SELECT count(*) FROM analyses"), 1);
    ck_assert_int_eq(q_int(h, "SELECT run_id FROM analyses"), 1);
    ck_assert_int_eq(
        q_int(h, "SELECT n_samples = 2 AND rho = 0.5 AND task_options = '{\"length\":200}' FROM analyses"),
        1);
    ck_assert_int_eq(q_int(h, "SELECT count(*) FROM analysis_layers"), 3);
    ck_assert_int_eq(q_int(h, "SELECT count(*) FROM analysis_recall WHERE recall > 0 AND recall <= 1"), 24);
    sqlite3_close(h);
}
END_TEST

START_TEST(test_changed_model) {
    char cfg[512], db[512], model[512], args[1200];
    dk_test_tmp_path(cfg, sizeof cfg, "chg.json");
    dk_test_tmp_path(db, sizeof db, "chg.db");
    dk_test_tmp_path(model, sizeof model, "model.gguf");
    dk_test_copy_file(DK_MODEL, model);
    write_config(cfg, model, 2);
    rm_db(db);
    char *out = NULL;
    snprintf(args, sizeof args, "run %s --db %s", cfg, db);
    ck_assert_msg(run_cli(args, &out) == 0, "%s", out);
    free(out);
    /* change one byte of the last tensor's data (the files end with f32 weights) */
    FILE *f = fopen(model, "r+b");
    ck_assert_ptr_nonnull(f);
    fseek(f, -2, SEEK_END);
    int ch = fgetc(f);
    fseek(f, -2, SEEK_END);
    fputc(ch ^ 0x01, f);
    fclose(f);
    ck_assert_msg(run_cli(args, &out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "samples: 16\nsamples_new: 16\n"), "new cells computed, got:\n%s", out);
    free(out);
    sqlite3 *h = db_open(db);
    ck_assert_int_eq(q_int(h, "SELECT count(*) FROM models"), 2);
    ck_assert_int_eq(q_int(h, "SELECT count(DISTINCT model_id) FROM cells"), 2);
    ck_assert_int_eq(q_int(h, "SELECT count(*) FROM cells WHERE state = 'done'"), 16);
    ck_assert_int_eq(q_int(h, "SELECT count(*) FROM samples"), 32);
    ck_assert_int_eq(q_int(h, "SELECT count(*) FROM dense_results"), 8); /* 2 models x 2 tasks x 2 samples */
    /* the second run's cells belong to the new sha256 only */
    ck_assert_int_eq(
        q_int(h, "SELECT count(*) FROM run_cells r JOIN cells c ON c.id = r.cell_id WHERE r.run_id = 2"
                 " AND c.model_id = (SELECT id FROM models ORDER BY id LIMIT 1)"),
        0);
    sqlite3_close(h);
}
END_TEST

/* ---- issue 17 finding 1: the model file overwritten in place DURING a run ---- */

/* The deterministic part of every dense reference row. */
static char *dump_dense(sqlite3 *db) {
    sqlite3_stmt *q = NULL;
    ck_assert_int_eq(
        sqlite3_prepare_v2(
            db,
            "SELECT model_sha256 || '|' || task_key || '|' || sample_id || '|' || flops || '|' ||"
            " hex(prediction) || '|' || hex(logits) FROM dense_results ORDER BY 1",
            -1, &q, NULL),
        SQLITE_OK);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    out[0] = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(q, 0);
        size_t need = len + strlen(t) + 2;
        if (need > cap) {
            while (need > cap) cap *= 2;
            out = realloc(out, cap);
        }
        len += (size_t)sprintf(out + len, "%s\n", t);
    }
    sqlite3_finalize(q);
    return out;
}

/* every line of part is a line of whole */
static void assert_lines_within(const char *part, const char *whole, const char *what) {
    for (const char *l = part; *l;) {
        const char *nl = strchr(l, '\n');
        size_t n = nl ? (size_t)(nl - l) + 1 : strlen(l);
        int found = 0;
        for (const char *w = whole; *w && !found;) {
            const char *wn = strchr(w, '\n');
            size_t m = wn ? (size_t)(wn - w) + 1 : strlen(w);
            found = m == n && !memcmp(l, w, n);
            w += m;
        }
        ck_assert_msg(found, "%s row not in the reference (computed with the overwritten weights?): %.*s",
                      what, (int)n, l);
        l += n;
    }
}

/* Same size, no truncation, same inode (as `dd conv=notrunc` or a sync tool): the workers' mmapped
 * weights change under them. No row computed after the change may be stored under the original
 * sha256; the cells fail with "model file changed during the run: PATH"; once the file is back,
 * a resumed run ends with exactly the rows of an undisturbed run. */
START_TEST(test_model_overwritten_during_run) {
    char cfg[512], db[512], ref_db[512], model[512], errf[512], args[1400];
    dk_test_tmp_path(model, sizeof model, "ow.gguf");
    dk_test_tmp_path(errf, sizeof errf, "ow.err");
    dk_test_copy_file(DK_MODEL, model);
    setup_with_reference("ow", model, 30, cfg, db, ref_db);
    char *out = NULL;

    size_t size, n;
    unsigned char *orig = dk_test_read_file(model, &size), *mod = malloc(size);
    ck_assert_ptr_nonnull(mod);
    memcpy(mod, orig, size);
    for (size_t i = size / 2; i + 4 <= size; i += 4)
        mod[i + 1] ^= 0x5a; /* f32 weights of the later tensors, perturbed */

    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(errf, O_WRONLY | O_CREAT | O_TRUNC, 0644), nul = open("/dev/null", O_WRONLY);
        if (fd >= 0) dup2(fd, 2);
        if (nul >= 0) dup2(nul, 1);
        execl(dk_test_cli(), dk_test_cli(), "run", cfg, "--db", db, "--quiet", (char *)NULL);
        _exit(127);
    }
    int status = 0, exited = 0;
    for (int t = 0; t < 5000; t++) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            exited = 1;
            break;
        }
        if (count_samples(db) >= 5) break;
        usleep(1000);
    }
    ck_assert_msg(!exited, "the run finished before the model could be overwritten");
    int fd = open(model, O_WRONLY); /* in place: no O_TRUNC, same size */
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, mod, size, 0), (ssize_t)size);
    close(fd);
    int64_t at_overwrite = count_samples(db);
    waitpid(pid, &status, 0);
    ck_assert(WIFEXITED(status));
    char *err = dk_test_read_file(errf, &n);
    char want[700];
    snprintf(want, sizeof want, "model file changed during the run: %s", model);
    ck_assert_msg(WEXITSTATUS(status) == 1, "exit %d: %s", WEXITSTATUS(status), err);
    free(err);
    sqlite3 *h = db_open(db), *r = db_open(ref_db);
    ck_assert_msg(q_int(h, "SELECT count(*) FROM cells WHERE state = 'failed'") > 0, "no cell failed");
    char sql[1200];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM cells WHERE state = 'failed' AND error != '%s'"
             " AND error NOT LIKE '%%: the model file changed since the run started (sha256 %%'",
             want);
    ck_assert_int_eq(q_int(h, sql), 0);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM cells WHERE error = '%s'", want);
    ck_assert_int_ge(q_int(h, sql), 1);
    /* nothing stored from the overwritten weights */
    char *got = dump_results(h), *ref = dump_results(r), *gd = dump_dense(h), *rd = dump_dense(r);
    assert_lines_within(got, ref, "sample");
    assert_lines_within(gd, rd, "dense");
    printf("test_model_overwritten_during_run: %lld samples stored before the overwrite, %lld in all\n",
           (long long)at_overwrite, (long long)q_int(h, "SELECT count(*) FROM samples"));
    free(got);
    free(gd);
    sqlite3_close(h);

    /* the original content back (a new mtime, the same sha256): the resumed run completes the
     * cells, and its rows are exactly the undisturbed run's */
    fd = open(model, O_WRONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, orig, size, 0), (ssize_t)size);
    close(fd);
    snprintf(args, sizeof args, "run %s --db %s", cfg, db);
    ck_assert_msg(run_cli(args, &out) == 0, "%s", out);
    free(out);
    h = db_open(db);
    got = dump_results(h);
    gd = dump_dense(h);
    ck_assert_str_eq(got, ref);
    ck_assert_str_eq(gd, rd);
    free(got);
    free(gd);
    free(ref);
    free(rd);
    sqlite3_close(h);
    sqlite3_close(r);
    free(orig);
    free(mod);
}
END_TEST

/* ---- bad configs: exit 2 (1 for an unreadable model), one error line, no DB file ---- */

typedef struct {
    const char *json; /* %s = the model path */
    int rc;
    const char *msg; /* expected stderr line after "dashkit run: ", %s = config path */
} dk_bad_run;

static const dk_bad_run dk_bad_runs[] = {
    {"{\"models\":[\"%s\"],\"tasks\":[{\"name\":\"passkey\"}],\"methods\":[{\"name\":\"dense\"}],\"samples\":"
     "1,}",
     2, "%s: line 1, column 115: invalid JSON"},
    {"{\"models\":[\"%s\"],\"tasks\":[{\"name\":\"passkey\"}],\"methods\":[{\"name\":\"dash\",\"rho\":[0.5,1]"
     "}],\"samples\":1}",
     2, "%s: methods[0].rho[1]: rho = 1 is outside [0,1)"},
    {"{\"models\":[\"%s\"],\"tasks\":[{\"name\":\"passkey\"}],\"methods\":[{\"name\":\"dash-tau\"}],"
     "\"samples\":1}",
     2, "%s: methods[0]: dash-tau: tau is required (halt tokens whose score <= tau)"},
    {"{\"models\":[\"%s\"],\"tasks\":[{\"name\":\"passkey\"}],\"methods\":[{\"name\":\"dense\"}],\"samples\":"
     "1,\"sampels\":2}",
     2,
     "%s: sampels: unknown key (expected one of: name, description, models, tasks, methods, samples, seed, "
     "threads, chat, compute, analyze)"},
    {"{\"models\":[\"%s\"],\"tasks\":[{\"name\":\"passkey\"}],\"methods\":[{\"name\":\"fastv\",\"layer\":3}],"
     "\"samples\":1}",
     2, "%s: methods[0]: fastv: layer = 3 must be < n_layer = 3 (model tests/data/ref_llama_f32.gguf, 3 layers)"},
    {"{\"models\":[\"%s\"],\"tasks\":[{\"name\":\"niah_single_1\",\"haystack\":\"nonsense\"}],\"methods\":[{"
     "\"name\":\"dense\"}],\"samples\":1}",
     2,
     "%s: tasks[0] niah_single_1 {\"haystack\":\"nonsense\"} (model tests/data/ref_llama_f32.gguf): task "
     "niah_single_1: option haystack: 'nonsense' is not essay|noise|needle"},
    {"{\"models\":[\"%s.missing\"],\"tasks\":[{\"name\":\"passkey\"}],\"methods\":[{\"name\":\"dense\"}],"
     "\"samples\":1}",
     1, "%s: models[0]: tests/data/ref_llama_f32.gguf.missing: cannot open: No such file or directory"},
};

START_TEST(test_bad_config) {
    const dk_bad_run *b = &dk_bad_runs[_i];
    char cfg[512], db[512], args[1400], want[1024], text[1024];
    dk_test_tmp_path(cfg, sizeof cfg, "bad.json");
    dk_test_tmp_path(db, sizeof db, "sub/bad.db");
    rm_db(db);
    FILE *f = fopen(cfg, "w");
    snprintf(text, sizeof text, b->json, DK_MODEL);
    fputs(text, f);
    fclose(f);
    char *out = NULL;
    snprintf(args, sizeof args, "run %s --db %s", cfg, db);
    int rc = run_cli(args, &out);
    snprintf(want, sizeof want, b->msg, cfg);
    char line[1200];
    snprintf(line, sizeof line, "dashkit run: %s\n", want);
    ck_assert_msg(rc == b->rc, "case %d: rc %d want %d: %s", _i, rc, b->rc, out);
    ck_assert_str_eq(out, line);
    ck_assert_msg(!file_exists(db), "case %d: the DB was created", _i);
    char dir[600];
    dk_test_tmp_path(dir, sizeof dir, "sub");
    ck_assert_msg(!file_exists(dir), "case %d: the DB folder was created", _i);
    free(out);
}
END_TEST

START_TEST(test_usage_errors) {
    char *out = NULL;
    ck_assert_int_eq(run_cli("run", &out), 2);
    ck_assert_str_eq(out, "dashkit run: missing CONFIG (see --help)\n");
    free(out);
    ck_assert_int_eq(run_cli("run x.json --workers 0", &out), 2);
    ck_assert_str_eq(out, "dashkit run: --workers '0' is not an integer in 1..256\n");
    free(out);
    ck_assert_int_eq(run_cli("run --help", &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "--workers N"));
    ck_assert_ptr_nonnull(strstr(out, "--db PATH"));
    ck_assert_ptr_nonnull(strstr(out, "--quiet"));
    free(out);
}
END_TEST

/* ---- prefix sharing: bit-identical results, the saving reported ---- */

START_TEST(test_prefix_sharing_identical) {
    char cfg[512], db_on[512], db_off[512], args[1400];
    dk_test_tmp_path(cfg, sizeof cfg, "share.json");
    dk_test_tmp_path(db_on, sizeof db_on, "share_on.db");
    dk_test_tmp_path(db_off, sizeof db_off, "share_off.db");
    /* 3 layers: ls 0.34 -> l_s 1 (layer 0 shared), ls 0.67 -> l_s 2 (layers 0-1 shared); random
     * shares too; ls 0 cannot share (first decision at layer 0) and runs alone */
    FILE *f = fopen(cfg, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(
        f,
        "{\"name\":\"share\",\"models\":[\"%s\"],\"tasks\":[{\"name\":\"passkey\",\"lengths\":[230]}],\n"
        " \"methods\":[{\"name\":\"dense\"},{\"name\":\"dash\",\"rho\":[0,0.3,0.5,0.8],\"ls\":[0.34,0.67]},\n"
        "             "
        "{\"name\":\"random\",\"rho\":[0.3,0.6],\"ls\":0.34},{\"name\":\"dash\",\"rho\":[0.3,0.6],\"ls\":0}],"
        "\n"
        " \"samples\":3,\"seed\":11,\"threads\":1}\n",
        DK_MODEL);
    fclose(f);
    rm_db(db_on);
    rm_db(db_off);
    char *out = NULL;
    snprintf(args, sizeof args, "run %s --db %s --no-prefix-sharing", cfg, db_off);
    ck_assert_msg(run_cli(args, &out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "prefix_sharing: off\nprefix_sharing_runs: 0\nprefix_sharing_saved_s: 0.000\n"),
                  "%s", out);
    free(out);
    snprintf(args, sizeof args, "run %s --db %s", cfg, db_on);
    ck_assert_msg(run_cli(args, &out) == 0, "%s", out);
    /* per sample: dash ls .34 (4 cells) 3 reuse the prefix, ls .67 3, random 1 = 7; x 3 samples */
    ck_assert_msg(strstr(out, "cells: 13\ndone: 13\n"), "%s", out);
    ck_assert_msg(strstr(out, "prefix_sharing: on\nprefix_sharing_runs: 21\n"), "%s", out);
    const char *sv = strstr(out, "prefix_sharing_saved_s: ");
    ck_assert_ptr_nonnull(sv);
    ck_assert_msg(atof(sv + strlen("prefix_sharing_saved_s: ")) >= 0.0, "%s", out);
    free(out);
    sqlite3 *on = db_open(db_on), *off = db_open(db_off);
    char *a = dump_results(on), *b = dump_results(off);
    ck_assert_int_eq(q_int(on, "SELECT count(*) FROM samples"), 39);
    ck_assert_str_eq(a, b); /* predictions, KL, top-1, FLOPs (total, parts, per layer), active sets */
    free(a);
    free(b);
    /* rho = 0 with sharing halts nothing: same logits-derived KL (0) and prediction as dense */
    ck_assert_int_eq(
        q_int(on, "SELECT count(*) FROM samples s JOIN cells c ON c.id = s.cell_id WHERE c.method = 'dash'"
                  " AND json_extract(c.params, '$.rho') = 0"),
        6);
    ck_assert_int_eq(
        q_int(on, "SELECT count(*) FROM samples s JOIN cells c ON c.id = s.cell_id WHERE c.method = 'dash'"
                  " AND json_extract(c.params, '$.rho') = 0 AND (s.kl != 0 OR s.top1 != 1 OR s.kl_answer != 0"
                  " OR s.top1_answer != 1)"),
        0);
    /* honest wall time: every method row carries its whole prefill, prefix included */
    ck_assert_int_eq(q_int(on, "SELECT count(*) FROM samples WHERE NOT (wall_method_s > 0)"), 0);
    ck_assert_int_eq(
        q_int(on, "SELECT count(*) FROM samples s WHERE NOT (wall_method_s >= (SELECT total(l.wall_s) FROM"
                  " sample_layers l WHERE l.sample_row = s.id))"),
        0);
    /* one worker claimed each group whole: every cell claimed once */
    ck_assert_int_eq(q_int(on, "SELECT count(*) FROM cells WHERE attempts != 1"), 0);
    sqlite3_close(on);
    sqlite3_close(off);

    /* resume with sharing: a deleted sample of one rho is recomputed alone, identically */
    sqlite3 *w = NULL;
    ck_assert_int_eq(sqlite3_open(db_on, &w), SQLITE_OK);
    ck_assert_int_eq(
        sqlite3_exec(
            w,
            "CREATE TEMP TABLE gone AS SELECT s.id FROM samples s JOIN cells c ON c.id = s.cell_id"
            " WHERE c.method = 'dash' AND s.sample_id = 1 AND json_extract(c.params, '$.rho') IN (0.3, 0.8);"
            " DELETE FROM sample_layers WHERE sample_row IN (SELECT id FROM gone);"
            " DELETE FROM samples WHERE id IN (SELECT id FROM gone);"
            " UPDATE cells SET state = 'pending' WHERE id NOT IN (SELECT cell_id FROM samples GROUP BY"
            " cell_id HAVING count(*) = 3);",
            NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(w);
    snprintf(args, sizeof args, "run %s --db %s", cfg, db_on);
    ck_assert_msg(run_cli(args, &out) == 0, "%s", out);
    /* rho .3/.8 at ls .34 share one prefix (1 reuse), at ls .67 another (1 reuse); ls 0 rho .3 alone */
    ck_assert_msg(strstr(out, "samples_new: 5\n") && strstr(out, "prefix_sharing_runs: 2\n"), "%s", out);
    free(out);
    on = db_open(db_on);
    off = db_open(db_off);
    a = dump_results(on);
    b = dump_results(off);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    sqlite3_close(on);
    sqlite3_close(off);
}
END_TEST

/* ---- prefix groups ---- */

START_TEST(test_prefix_groups) {
    const char *json =
        "{\"models\":[\"m\"],\"tasks\":[{\"name\":\"passkey\",\"length\":512}],"
        "\"methods\":[{\"name\":\"dense\"},{\"name\":\"dash\",\"rho\":[0.3,0.5],\"ls\":[0.2,0.4]},"
        "{\"name\":\"random\",\"rho\":[0.3,0.5]}],\"samples\":1}";
    dk_config *c = NULL;
    dk_err e = {{0}};
    ck_assert_int_eq(dk_config_parse(json, strlen(json), "g.json", NULL, &c, &e), DK_OK);
    ck_assert_int_eq(c->n_cells, 7);
    char g[7][512];
    for (int i = 0; i < 7; i++) dk_runner_prefix_group(c, &c->cells[i], g[i], sizeof g[i]);
    /* cells: dense; dash (rho .3, ls .2), (.3, .4), (.5, .2), (.5, .4); random .3, .5 */
    ck_assert_str_eq(g[1], g[3]);
    ck_assert_str_eq(g[2], g[4]);
    ck_assert_str_ne(g[1], g[2]);
    ck_assert_str_eq(g[5], g[6]);
    ck_assert_str_ne(g[0], g[1]);
    ck_assert_str_ne(g[1], g[5]);
    ck_assert_ptr_null(strstr(g[1], "rho"));
    dk_config_free(c);
}
END_TEST

/* ---- chat key: per model or global, part of the identity unless auto ---- */

START_TEST(test_chat_identity) {
    static const char sha[] = "0000000000000000000000000000000000000000000000000000000000000000";
    const char *base =
        "\"tasks\":[{\"name\":\"passkey\",\"length\":512}],\"methods\":[{\"name\":\"dense\"}],\"samples\":1";
    const char *models[] = {
        "\"models\":[\"m\"]",                                                  /* 0: auto (default) */
        "\"models\":[\"m\"],\"chat\":\"auto\"",                                /* 1: auto, written */
        "\"models\":[{\"path\":\"m\"}]",                                       /* 2: auto, object form */
        "\"models\":[\"m\"],\"chat\":\"none\"",                                /* 3: none, global */
        "\"models\":[{\"path\":\"m\",\"chat\":\"none\"}],\"chat\":\"chatml\"", /* 4: none, per model wins */
        "\"models\":[\"m\"],\"chat\":\"chatml\"",                              /* 5: chatml */
    };
    char key[6][65], tkey[6][65];
    for (int i = 0; i < 6; i++) {
        char json[1024];
        snprintf(json, sizeof json, "{%s,%s}", models[i], base);
        dk_config *c = NULL;
        dk_err e = {{0}};
        ck_assert_msg(dk_config_parse(json, strlen(json), "c.json", NULL, &c, &e) == DK_OK, "%s: %s", json,
                      e.msg);
        ck_assert_str_eq(c->models[0], "m");
        dk_config_identity id;
        ck_assert_int_eq(dk_config_cell_identity(c, &c->cells[0], sha, &id, &e), DK_OK);
        snprintf(key[i], sizeof key[i], "%s", id.key);
        snprintf(tkey[i], sizeof tkey[i], "%s", id.task_key);
        dk_config_identity_free(&id);
        dk_config_free(c);
    }
    ck_assert_str_eq(key[0], key[1]);
    ck_assert_str_eq(key[0], key[2]);
    ck_assert_str_eq(tkey[0], tkey[2]);
    ck_assert_str_eq(key[3], key[4]);
    ck_assert_str_eq(tkey[3], tkey[4]);
    ck_assert_str_ne(key[0], key[3]);
    ck_assert_str_ne(tkey[0], tkey[3]); /* the dense reference is not shared across templates */
    ck_assert_str_ne(key[3], key[5]);
    ck_assert_str_ne(tkey[3], tkey[5]);
}
END_TEST

static Suite *runner_suite(void) {
    Suite *s = suite_create("runner");
    TCase *tc = tcase_create("runner");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_run_results_and_resume);
    tcase_add_test(tc, test_sigkill_then_rerun);
    tcase_add_test(tc, test_two_workers);
    tcase_add_test(tc, test_changed_model);
    tcase_add_test(tc, test_run_records_analysis);
    tcase_add_test(tc, test_model_overwritten_during_run);
    tcase_add_loop_test(tc, test_bad_config, 0, (int)(sizeof dk_bad_runs / sizeof dk_bad_runs[0]));
    tcase_add_test(tc, test_usage_errors);
    tcase_add_test(tc, test_prefix_groups);
    tcase_add_test(tc, test_prefix_sharing_identical);
    tcase_add_test(tc, test_chat_identity);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return dk_test_main(runner_suite()); }
