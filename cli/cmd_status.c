/* cmd_status.c — `dashkit status [--db PATH] [--run ID]`: per run, its cells by state, and the
 * errors of failed cells; `dashkit status DIR` on a shard folder (`dashkit slurm --out DIR`): the
 * latest run of each DIR/shard-I.db by state, the total and the merged DIR/dashkit.db.
 * Read-only: never creates or modifies a store. */
#include "cli.h"
#include "cli_util.h"
#include "store.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static void dk_status_usage(FILE *f) {
    fprintf(f, "usage: dashkit status [--db PATH] [--run ID]\n"
               "       dashkit status DIR\n\n"
               "Shows each run of a store and its cells by state (pending, running, done, failed),\n"
               "then the error of every failed cell. Never modifies the store.\n"
               "On a shard folder DIR (dashkit slurm --out DIR; also --db DIR): the latest run of each\n"
               "DIR/shard-I.db by state, shards missing, the total, and the merged DIR/dashkit.db.\n\n"
               "  --db PATH    the store (default results/dashkit.db)\n"
               "  --run ID     only this run\n"
               "  -h, --help   this help\n");
}

/* Latest run of one store: its shard ("-" when none), config name and cells by state. */
static int dk_status_latest(const char *path, char *shard, size_t n, char *name, size_t nn, int64_t c[4], int64_t *samples) {
    dk_err e = {{0}};
    dk_store *s = NULL;
    dk_store_run *runs = NULL;
    size_t n_runs = 0;
    dk_status st = dk_store_open(path, DK_STORE_OPEN_READONLY, &s, &e);
    if (!st) st = dk_store_runs_read(s, &runs, &n_runs, &e);
    if (!st && n_runs) {
        const dk_store_run *r = &runs[n_runs - 1];
        snprintf(shard, n, "%s", r->shard ? r->shard : "-");
        snprintf(name, nn, "%s", r->name ? r->name : "");
        st = dk_store_run_counts(s, r->id, c, samples, &e);
    } else if (!st) {
        snprintf(shard, n, "-");
        snprintf(name, nn, "(no run)");
        memset(c, 0, 4 * sizeof *c);
        *samples = 0;
    }
    dk_store_runs_free(runs, n_runs);
    dk_store_close(s);
    if (st) fprintf(stderr, "dashkit status: %s\n", e.msg);
    return st ? 0 : 1;
}

static int dk_status_cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* `dashkit status DIR` on a shard folder. */
static int dk_status_shard_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) { fprintf(stderr, "dashkit status: %s: cannot read the folder\n", dir); return 1; }
    int idx[4096], n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 4096) {
        int i;
        char tail[8];
        if (sscanf(de->d_name, "shard-%d.d%7s", &i, tail) == 2 && !strcmp(tail, "b") && i > 0) idx[n++] = i;
    }
    closedir(d);
    qsort(idx, (size_t)n, sizeof *idx, dk_status_cmp_int);
    printf("dir: %s\n%-9s %6s %8s %8s %6s %7s %8s  %s\n", dir, "shard", "cells", "pending", "running", "done", "failed",
           "samples", "config");
    int64_t tot[4] = {0, 0, 0, 0}, tot_samples = 0;
    int want = 0, rc = 0;
    for (int k = 0; k < n; k++) {
        char path[4200], shard[32], name[128];
        int64_t c[4], samples;
        snprintf(path, sizeof path, "%s/shard-%d.db", dir, idx[k]);
        if (!dk_status_latest(path, shard, sizeof shard, name, sizeof name, c, &samples)) { rc = 1; continue; }
        int si, sn;
        if (sscanf(shard, "%d/%d", &si, &sn) == 2 && sn > want) want = sn;
        printf("%-9s %6lld %8lld %8lld %6lld %7lld %8lld  %s\n", shard, (long long)(c[0] + c[1] + c[2] + c[3]),
               (long long)c[0], (long long)c[1], (long long)c[2], (long long)c[3], (long long)samples, name);
        for (int j = 0; j < 4; j++) tot[j] += c[j];
        tot_samples += samples;
    }
    printf("%-9s %6lld %8lld %8lld %6lld %7lld %8lld\n", "total", (long long)(tot[0] + tot[1] + tot[2] + tot[3]),
           (long long)tot[0], (long long)tot[1], (long long)tot[2], (long long)tot[3], (long long)tot_samples);
    printf("shards: %d\n", n);
    if (want > 0) {
        printf("missing:");
        int any = 0;
        for (int i = 1; i <= want; i++) {
            int found = 0;
            for (int k = 0; k < n && !found; k++) found = idx[k] == i;
            if (!found) { printf(" %d", i); any = 1; }
        }
        printf("%s\n", any ? "" : " none");
    }
    printf("cells: %lld\npending: %lld\nrunning: %lld\ndone: %lld\nfailed: %lld\nsamples: %lld\n",
           (long long)(tot[0] + tot[1] + tot[2] + tot[3]), (long long)tot[0], (long long)tot[1], (long long)tot[2],
           (long long)tot[3], (long long)tot_samples);
    char merged[4200], shard[32], name[128];
    int64_t c[4], samples;
    struct stat sb;
    snprintf(merged, sizeof merged, "%s/dashkit.db", dir);
    if (stat(merged, &sb) == 0) {
        if (dk_status_latest(merged, shard, sizeof shard, name, sizeof name, c, &samples))
            printf("merged: %s cells %lld done %lld pending %lld failed %lld samples %lld\n", merged,
                   (long long)(c[0] + c[1] + c[2] + c[3]), (long long)c[2], (long long)(c[0] + c[1]), (long long)c[3],
                   (long long)samples);
        else rc = 1;
    } else {
        printf("merged: none yet\n");
    }
    return rc;
}

static void dk_fmt_time(sqlite3_stmt *q, int col, char *out, size_t n) {
    if (sqlite3_column_type(q, col) == SQLITE_NULL) { snprintf(out, n, "-"); return; }
    time_t t = (time_t)sqlite3_column_double(q, col);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int dk_cmd_status(int argc, char **argv) {
    const char *db = "results/dashkit.db", *dir_arg = NULL;
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
        } else if (a[0] != '-' && !dir_arg) {
            dir_arg = a;
        } else {
            fprintf(stderr, "dashkit status: unknown argument '%s' (see --help)\n", dk_cli_esc(a));
            return 2;
        }
    }
    struct stat sb;
    if (dir_arg && (stat(dir_arg, &sb) != 0 || !S_ISDIR(sb.st_mode))) {
        fprintf(stderr, "dashkit status: %s: not a shard folder (a store is given with --db)\n", dir_arg);
        return dir_arg && stat(dir_arg, &sb) != 0 ? 1 : 2;
    }
    if (!dir_arg && stat(db, &sb) == 0 && S_ISDIR(sb.st_mode)) dir_arg = db;
    if (dir_arg) {
        if (run) { fprintf(stderr, "dashkit status: --run applies to one store, not to a shard folder\n"); return 2; }
        return dk_status_shard_dir(dir_arg);
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
