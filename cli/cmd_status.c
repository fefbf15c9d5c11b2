/* cmd_status.c — `dashkit status [--db PATH] [--run ID]`: per run, its cells by state, and the
 * errors of failed cells. Read-only: never creates or modifies the store. */
#include "cli.h"
#include "cli_util.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void dk_status_usage(FILE *f) {
    fprintf(f, "usage: dashkit status [--db PATH] [--run ID]\n\n"
               "Shows each run of a store and its cells by state (pending, running, done, failed),\n"
               "then the error of every failed cell. Never modifies the store.\n\n"
               "  --db PATH    the store (default results/dashkit.db)\n"
               "  --run ID     only this run\n"
               "  -h, --help   this help\n");
}

static void dk_fmt_time(sqlite3_stmt *q, int col, char *out, size_t n) {
    if (sqlite3_column_type(q, col) == SQLITE_NULL) { snprintf(out, n, "-"); return; }
    time_t t = (time_t)sqlite3_column_double(q, col);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int dk_cmd_status(int argc, char **argv) {
    const char *db = "results/dashkit.db";
    long long run = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { dk_status_usage(stdout); return 0; }
        if ((!strcmp(a, "--db") || !strcmp(a, "--run")) && i + 1 >= argc) {
            fprintf(stderr, "dashkit status: option %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--db")) db = argv[++i];
        else if (!strcmp(a, "--run")) {
            if (!dk_cli_parse_run_id("status", argv[++i], &run)) return 2;
        } else {
            fprintf(stderr, "dashkit status: unknown argument '%s' (see --help)\n", dk_cli_esc(a));
            return 2;
        }
    }
    dk_err e = {{0}};
    dk_store *s = NULL;
    if (dk_store_open(db, DK_STORE_OPEN_READONLY, &s, &e) != DK_OK) {
        fprintf(stderr, "dashkit status: %s\n", e.msg);
        return 1;
    }
    sqlite3 *h = dk_store_db(s);
    sqlite3_stmt *q = NULL;
    int rc = 1, n_runs = 0;
    if (sqlite3_prepare_v2(h,
            "SELECT run_id, name, config_path, started_at, finished_at, cells, pending, running, done, failed"
            " FROM run_status WHERE ?1 = 0 OR run_id = ?1 ORDER BY run_id", -1, &q, NULL) != SQLITE_OK)
        goto sql_fail;
    sqlite3_bind_int64(q, 1, run);
    printf("db: %s\n", db);
    printf("%5s  %-20s %-21s %-21s %6s %8s %8s %6s %7s  %s\n", "run", "name", "started", "finished", "cells",
           "pending", "running", "done", "failed", "config");
    int step;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        char t0[32], t1[32];
        dk_fmt_time(q, 3, t0, sizeof t0);
        dk_fmt_time(q, 4, t1, sizeof t1);
        printf("%5lld  %-20s %-21s %-21s %6lld %8lld %8lld %6lld %7lld  %s\n", (long long)sqlite3_column_int64(q, 0),
               (const char *)sqlite3_column_text(q, 1), t0, t1, (long long)sqlite3_column_int64(q, 5),
               (long long)sqlite3_column_int64(q, 6), (long long)sqlite3_column_int64(q, 7),
               (long long)sqlite3_column_int64(q, 8), (long long)sqlite3_column_int64(q, 9),
               (const char *)sqlite3_column_text(q, 2));
        n_runs++;
    }
    if (step != SQLITE_DONE) goto sql_fail;
    sqlite3_finalize(q);
    q = NULL;
    if (run && !n_runs) {
        fprintf(stderr, "dashkit status: %s: no run %lld\n", dk_cli_esc(db), run);
        rc = 2; /* a run that is not in the store: a bad parameter, as report and plot */
        goto done;
    }
    printf("runs: %d\n", n_runs);
    if (sqlite3_prepare_v2(h,
            "SELECT DISTINCT c.id, c.task, c.task_options, c.method, c.params, c.error FROM cells c"
            " JOIN run_cells rc ON rc.cell_id = c.id WHERE c.state = 'failed' AND (?1 = 0 OR rc.run_id = ?1)"
            " ORDER BY c.id", -1, &q, NULL) != SQLITE_OK)
        goto sql_fail;
    sqlite3_bind_int64(q, 1, run);
    while ((step = sqlite3_step(q)) == SQLITE_ROW)
        printf("failed: cell %lld %s %s %s %s: %s\n", (long long)sqlite3_column_int64(q, 0),
               (const char *)sqlite3_column_text(q, 1), (const char *)sqlite3_column_text(q, 2),
               (const char *)sqlite3_column_text(q, 3), (const char *)sqlite3_column_text(q, 4),
               sqlite3_column_text(q, 5) ? (const char *)sqlite3_column_text(q, 5) : "(no message)");
    if (step != SQLITE_DONE) goto sql_fail;
    rc = 0;
    goto done;
sql_fail:
    fprintf(stderr, "dashkit status: %s: %s\n", db, sqlite3_errmsg(h));
done:
    sqlite3_finalize(q);
    dk_store_close(s);
    return rc;
}
