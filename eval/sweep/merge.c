/* merge.c — shard stores united into one (see merge.h); the SQL lives in store.c. */
#include "merge.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The latest run of a shard store (its config); a read-only open runs PRAGMA quick_check. */
static dk_status dk_merge_shard_config(const char *path, dk_store_run **runs, size_t *n_runs,
                                       const dk_store_run **latest, dk_err *e) {
    dk_store *s = NULL;
    dk_status st = dk_store_open(path, DK_STORE_OPEN_READONLY, &s, e);
    if (!st) st = dk_store_runs_read(s, runs, n_runs, e);
    dk_store_close(s);
    if (!st && *n_runs == 0)
        st = dk_fail(e, DK_ERR_FORMAT, "%s: no runs in this store: not a shard of any config", path);
    if (!st) *latest = &(*runs)[*n_runs - 1];
    return st;
}

dk_status dk_merge_stores(const char *out_path, const char *const *shards, int n_shards, const char *command,
                          dk_merge_result *r, dk_err *e) {
    memset(r, 0, sizeof *r);
    if (n_shards < 1) return dk_fail(e, DK_ERR_ARG, "no shard stores to merge");
    struct stat so, ss;
    int out_exists = stat(out_path, &so) == 0;
    /* 1. every shard, before OUT is touched */
    dk_store_run *first_runs = NULL;
    size_t first_n = 0;
    const dk_store_run *cfg_run = NULL;
    dk_status st = DK_OK;
    for (int i = 0; i < n_shards && !st; i++) {
        if (out_exists && stat(shards[i], &ss) == 0 && ss.st_dev == so.st_dev && ss.st_ino == so.st_ino) {
            st = dk_fail(e, DK_ERR_ARG, "%s: is the output store itself", shards[i]);
            break;
        }
        dk_store_run *runs = NULL;
        size_t n = 0;
        const dk_store_run *latest = NULL;
        st = dk_merge_shard_config(shards[i], &runs, &n, &latest, e);
        if (!st && i == 0) {
            first_runs = runs;
            first_n = n;
            cfg_run = latest;
            continue;
        }
        if (!st && strcmp(latest->config_hash, cfg_run->config_hash) != 0)
            st = dk_fail(
                e, DK_ERR_ARG,
                "%s: a shard of config %.12s (%s), not of %.12s (%s) like %s: merge shards of one config",
                shards[i], latest->config_hash, latest->name ? latest->name : "?", cfg_run->config_hash,
                cfg_run->name ? cfg_run->name : "?", shards[0]);
        dk_store_runs_free(runs, n);
    }
    if (st) {
        dk_store_runs_free(first_runs, first_n);
        return st;
    }
    snprintf(r->config_hash, sizeof r->config_hash, "%s", cfg_run->config_hash);
    snprintf(r->name, sizeof r->name, "%s", cfg_run->name ? cfg_run->name : "");

    /* 2. one transaction on OUT */
    dk_store *out = NULL;
    st = dk_store_open(out_path, DK_STORE_OPEN_CREATE, &out, e);
    int in_tx = 0;
    if (!st && !(st = dk_store_begin(out, e))) in_tx = 1;
    for (int i = 0; i < n_shards && !st; i++) {
        dk_store *src = NULL;
        if ((st = dk_store_open(shards[i], DK_STORE_OPEN_READONLY, &src, e))) break;
        st = dk_store_merge_from(out, src, cfg_run, command, &r->run_id, &r->added, e);
        dk_store_close(src);
    }
    if (!st) st = dk_store_run_counts(out, r->run_id, r->cells, &r->samples, e);
    if (!st && in_tx) st = dk_store_commit(out, e);
    else if (in_tx) dk_store_rollback(out);
    dk_store_close(out);
    if (st && !out_exists) dk_store_remove_files(out_path);
    dk_store_runs_free(first_runs, first_n);
    return st;
}
