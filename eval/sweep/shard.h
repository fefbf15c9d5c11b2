/* shard.h — one config split into N shards: `dashkit run CONFIG --shard I/N` runs shard I (each
 * shard its own store file, united later by `dashkit merge`), `dashkit slurm` runs the N shards
 * as a Slurm job array.
 *
 * The unit of the split is a sibling group: the cells whose identity (config.h) differs at most
 * in the method's after-decision parameters (method.h; today rho alone). A group never straddles
 * shards, so prefix sharing (runner.h) still pays. Group key = sha256 of the canonical identity
 * JSON with those parameters removed from method.params (dk_method_params_strip).
 *
 * The shard of a group is a pure function of its key and N (rendezvous hashing: the i in 1..N
 * whose sha256(key ":" i) is largest), never of the config's order or of the other cells:
 * adding a model, a task point or a rho later leaves every existing cell in its shard, and
 * raising N moves a group only to one of the new shards. The estimated cost of a cell,
 * tokens x layers x samples (a group: summed over its cells, i.e. x methods), spreads evenly
 * in expectation; `--dry-run` prints it per shard with the max/mean imbalance. */
#ifndef DK_SHARD_H
#define DK_SHARD_H

#include "config.h"
#include "dk_common.h"
#include "sha256.h"
#include <stddef.h>
#include <stdint.h>

#define DK_SHARD_MAX 4096 /* N at most (a Slurm array's default MaxArraySize is 1001) */

/* "I/N" with integers 1 <= I <= N <= DK_SHARD_MAX. DK_ERR_ARG "--shard 'TEXT': ..." otherwise. */
dk_status dk_shard_parse(const char *text, int *index, int *count, dk_err *e);

/* Sibling-group key of a cell identity JSON (dk_config_identity.json). DK_ERR_FORMAT if it is not
 * an identity object. */
dk_status dk_shard_group_key(const char *identity_json, char out[DK_SHA256_HEX_LEN + 1], dk_err *e);

/* Shard (1..n) of a group key; n >= 1. */
int dk_shard_of_group(const char *group_key, int n);

/* One cell of a shard plan (dk_runner_shard_plan). */
typedef struct {
    char key[DK_SHA256_HEX_LEN + 1];   /* cell identity key */
    char group[DK_SHA256_HEX_LEN + 1]; /* sibling-group key */
    int shard;                         /* 1..n_shards */
    int n_layer;                       /* of its model */
    double tokens;                     /* estimated prompt tokens per sample */
    double cost;                       /* tokens x layers x samples */
    double flops;                      /* estimated dense prefill FLOPs of all its samples */
} dk_shard_cell;

typedef struct {
    int n_shards;
    size_t n_cells;
    dk_shard_cell *cells; /* (n_cells) in the config's order */
} dk_shard_plan;

void dk_shard_plan_free(dk_shard_plan *p);

/* Per shard i (1..n): cells, summed cost and FLOPs into the (n_shards + 1)-sized arrays (index 0
 * unused); *imbalance = max shard cost / mean shard cost (1 = even; 0 when nothing costs). */
void dk_shard_plan_totals(const dk_shard_plan *p, int64_t *cells, double *cost, double *flops,
                          double *imbalance);

#endif
