/* cmd_merge.c — `dashkit merge OUT.db SHARD.db...`: shard stores united into one (eval/sweep/merge.h). */
#include "cli.h"
#include "cli_util.h"
#include "merge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void dk_merge_usage(FILE *f) {
    fprintf(f, "usage: dashkit merge OUT.db SHARD.db...\n\n"
               "Unites the stores of 'dashkit run CONFIG --shard I/N' runs into OUT (created when missing):\n"
               "runs (one merged run recording every shard's host, CPU, BLAS core and revision), models,\n"
               "cells, samples with their per-layer rows, dense references. All in one transaction: on any\n"
               "error OUT is left as it was. Results OUT already holds for a cell must be equal (every\n"
               "column but wall times), else the merge is refused naming the cell. Merging a shard again\n"
               "changes nothing. Unfinished cells of a partial shard stay pending with the samples they\n"
               "have: 'dashkit run CONFIG --db OUT' or the re-run shard (merged again) finishes them.\n\n"
               "Exit status: 0 merged, 1 a shard missing, corrupt, of another config or conflicting,\n"
               "or a store error, 2 bad usage.\n");
}

int dk_cmd_merge(int argc, char **argv) {
    const char *out = NULL;
    const char **shards = calloc((size_t)argc, sizeof *shards);
    int n = 0;
    if (!shards) {
        fprintf(stderr, "dashkit merge: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dk_cli_help(a, dk_merge_usage)) {
            free(shards);
            return 0;
        }
        if (a[0] == '-' && a[1]) {
            fprintf(stderr, "dashkit merge: unknown option '%s' (see --help)\n", a);
            free(shards);
            return 2;
        }
        if (!out) out = a;
        else shards[n++] = a;
    }
    if (!out || n == 0) {
        fprintf(stderr, "dashkit merge: %s (see --help)\n",
                out ? "no SHARD.db given" : "missing OUT.db and SHARD.db");
        free(shards);
        return 2;
    }
    char *cmd = dk_cli_command_line(argc, argv);
    dk_err e = {{0}};
    dk_merge_result r;
    dk_status st = dk_merge_stores(out, shards, n, cmd, &r, &e);
    free(cmd);
    free(shards);
    if (st) {
        fprintf(stderr, "dashkit merge: %s\n", e.msg);
        return 1;
    }
    printf("out: %s\nrun: %lld\nconfig: %s\nconfig_hash: %s\nshards: %d\n", out, (long long)r.run_id, r.name,
           r.config_hash, n);
    printf("cells: %lld\ndone: %lld\npending: %lld\nfailed: %lld\nsamples: %lld\n",
           (long long)(r.cells[0] + r.cells[1] + r.cells[2] + r.cells[3]), (long long)r.cells[DK_CELL_DONE],
           (long long)(r.cells[DK_CELL_PENDING] + r.cells[DK_CELL_RUNNING]),
           (long long)r.cells[DK_CELL_FAILED], (long long)r.samples);
    printf("cells_added: %lld\nsamples_added: %lld\nsamples_same: %lld\ndense_added: %lld\n",
           (long long)r.added.cells_added, (long long)r.added.samples_added, (long long)r.added.samples_same,
           (long long)r.added.dense_added);
    return 0;
}
