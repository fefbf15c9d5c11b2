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
static int dk_status_latest(const char *path, char *shard, size_t n, char *name, size_t nn, int64_t c[4],
                            int64_t *samples) {
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
    if (!d) {
        fprintf(stderr, "dashkit status: %s: cannot read the folder\n", dir);
        return 1;
    }
    int idx[4096], n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 4096) {
        int i;
        char tail[8];
        if (sscanf(de->d_name, "shard-%d.d%7s", &i, tail) == 2 && !strcmp(tail, "b") && i > 0) idx[n++] = i;
    }
    closedir(d);
    qsort(idx, (size_t)n, sizeof *idx, dk_status_cmp_int);
    printf("dir: %s\n%-9s %6s %8s %8s %6s %7s %8s  %s\n", dir, "shard", "cells", "pending", "running", "done",
           "failed", "samples", "config");
    int64_t tot[4] = {0, 0, 0, 0}, tot_samples = 0;
    int want = 0, rc = 0;
    for (int k = 0; k < n; k++) {
        char path[4200], shard[32], name[128];
        int64_t c[4], samples;
        snprintf(path, sizeof path, "%s/shard-%d.db", dir, idx[k]);
        if (!dk_status_latest(path, shard, sizeof shard, name, sizeof name, c, &samples)) {
            rc = 1;
            continue;
        }
        int si, sn;
        if (sscanf(shard, "%d/%d", &si, &sn) == 2 && sn > want) want = sn;
        printf("%-9s %6lld %8lld %8lld %6lld %7lld %8lld  %s\n", shard,
               (long long)(c[0] + c[1] + c[2] + c[3]), (long long)c[0], (long long)c[1], (long long)c[2],
               (long long)c[3], (long long)samples, name);
        for (int j = 0; j < 4; j++) tot[j] += c[j];
        tot_samples += samples;
    }
    printf("%-9s %6lld %8lld %8lld %6lld %7lld %8lld\n", "total",
           (long long)(tot[0] + tot[1] + tot[2] + tot[3]), (long long)tot[0], (long long)tot[1],
           (long long)tot[2], (long long)tot[3], (long long)tot_samples);
    printf("shards: %d\n", n);
    if (want > 0) {
        printf("missing:");
        int any = 0;
        for (int i = 1; i <= want; i++) {
            int found = 0;
            for (int k = 0; k < n && !found; k++) found = idx[k] == i;
            if (!found) {
                printf(" %d", i);
                any = 1;
            }
        }
        printf("%s\n", any ? "" : " none");
    }
    printf("cells: %lld\npending: %lld\nrunning: %lld\ndone: %lld\nfailed: %lld\nsamples: %lld\n",
           (long long)(tot[0] + tot[1] + tot[2] + tot[3]), (long long)tot[0], (long long)tot[1],
           (long long)tot[2], (long long)tot[3], (long long)tot_samples);
    char merged[4200], shard[32], name[128];
    int64_t c[4], samples;
    struct stat sb;
    snprintf(merged, sizeof merged, "%s/dashkit.db", dir);
    if (stat(merged, &sb) == 0) {
        if (dk_status_latest(merged, shard, sizeof shard, name, sizeof name, c, &samples))
            printf("merged: %s cells %lld done %lld pending %lld failed %lld samples %lld\n", merged,
                   (long long)(c[0] + c[1] + c[2] + c[3]), (long long)c[2], (long long)(c[0] + c[1]),
                   (long long)c[3], (long long)samples);
        else rc = 1;
    } else {
        printf("merged: none yet\n");
    }
    return rc;
}

static void dk_fmt_time(double t_s, char *out, size_t n) {
    dk_time_fmt_utc(t_s, "%Y-%m-%dT%H:%M:%SZ", "-", out, n);
}

/* `dashkit status [--run ID]` on one store: its runs by state, then its failed cells. */
static int dk_status_store(dk_store *s, const char *db, long long run) {
    dk_err e = {{0}};
    dk_store_run_status *runs = NULL;
    dk_store_failed_cell *failed = NULL;
    size_t n_runs = 0, n_failed = 0;
    int rc = 1;
    if (dk_store_run_status_read(s, run, &runs, &n_runs, &e) != DK_OK) goto fail;
    printf("db: %s\n", db);
    printf("%5s  %-20s %-21s %-21s %6s %8s %8s %6s %7s  %s\n", "run", "name", "started", "finished", "cells",
           "pending", "running", "done", "failed", "config");
    for (size_t i = 0; i < n_runs; i++) {
        const dk_store_run_status *r = &runs[i];
        char t0[32], t1[32];
        dk_fmt_time(r->started_at, t0, sizeof t0);
        dk_fmt_time(r->finished_at, t1, sizeof t1);
        printf("%5lld  %-20s %-21s %-21s %6lld %8lld %8lld %6lld %7lld  %s\n", (long long)r->run_id, r->name,
               t0, t1, (long long)r->cells, (long long)r->pending, (long long)r->running, (long long)r->done,
               (long long)r->failed, r->config_path);
    }
    if (run && !n_runs) {
        fprintf(stderr, "dashkit status: %s: no run %lld\n", dk_cli_esc(db), run);
        rc = 2; /* a run that is not in the store: a bad parameter, as report and plot */
        goto done;
    }
    printf("runs: %zu\n", n_runs);
    if (dk_store_failed_cells_read(s, run, &failed, &n_failed, &e) != DK_OK) goto fail;
    for (size_t i = 0; i < n_failed; i++) {
        const dk_store_failed_cell *c = &failed[i];
        printf("failed: cell %lld %s %s %s %s: %s\n", (long long)c->id, c->task, c->task_options, c->method,
               c->params, c->error ? c->error : "(no message)");
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "dashkit status: %s\n", e.msg);
done:
    dk_store_run_status_free(runs, n_runs);
    dk_store_failed_cells_free(failed, n_failed);
    return rc;
}

int dk_cmd_status(int argc, char **argv) {
    const char *db = "results/dashkit.db", *dir_arg = NULL;
    long long run = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dk_cli_help(a, dk_status_usage)) return 0;
        bool takes = !strcmp(a, "--db") || !strcmp(a, "--run");
        if (takes && !dk_cli_has_value("status", argc, argv, i)) return 2;
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
        if (run) {
            fprintf(stderr, "dashkit status: --run applies to one store, not to a shard folder\n");
            return 2;
        }
        return dk_status_shard_dir(dir_arg);
    }
    dk_err e = {{0}};
    dk_store *s = NULL;
    if (dk_store_open(db, DK_STORE_OPEN_READONLY, &s, &e) != DK_OK) {
        fprintf(stderr, "dashkit status: %s\n", e.msg);
        return 1;
    }
    int rc = dk_status_store(s, db, run);
    dk_store_close(s);
    return rc;
}
