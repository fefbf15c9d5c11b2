/* merge.h — `dashkit merge OUT.db SHARD.db...`: shard stores (`run --shard`) united into one.
 *
 * 1. Before OUT is touched, every shard is opened read-only (which runs PRAGMA quick_check) and
 *    its config is taken from its latest run; all shards must have that config's hash. A missing
 *    file, a file that is not a dashkit store, a corrupt one or a shard of another config is one
 *    error naming the file; OUT is then neither created nor modified.
 * 2. In ONE transaction on OUT (created when missing), each shard in turn is merged
 *    (dk_store_merge_from, store.h): runs' provenance, models, cells, samples with their layer
 *    rows, dense results. Results OUT already holds for a cell identity must equal the shard's
 *    (every column but wall times): a conflict rolls everything back and names the cell; an OUT
 *    this merge created is removed again.
 * Merging a shard again changes nothing. Unfinished cells of a partial shard stay pending in OUT
 * with the samples they have; `dashkit run CONFIG --db OUT` (or the re-run shard, merged again)
 * finishes them. */
#ifndef DK_MERGE_H
#define DK_MERGE_H

#include "dk_common.h"
#include "store.h"

typedef struct {
    int64_t run_id; /* the merged run in OUT */
    char config_hash[65];
    char name[128];             /* the config's name */
    int64_t cells[4];           /* the merged run's cells by state (dk_cell_state order) */
    int64_t samples;            /* sample rows of those cells */
    dk_store_merge_stats added; /* what this merge added */
} dk_merge_result;

/* command: recorded as the merged run's command when it is created (NULL = unknown). */
dk_status dk_merge_stores(const char *out_path, const char *const *shards, int n_shards, const char *command,
                          dk_merge_result *r, dk_err *e);

#endif
