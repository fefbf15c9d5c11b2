/* runner.h — the config-matrix runner behind `dashkit run`: a validated config (config.h) is
 * recorded in the store (store.h) and its cells are run by worker processes, resumably.
 *
 * One run:
 *   1. before anything touches the store: every model file is hashed (sha256) and loaded once
 *      (shape, tokenizer); every task point loads one sample with that model's tokenizer (bad
 *      option values, missing data files); every method grid point is validated against each
 *      model's n_layer. A problem here leaves the store untouched (not even created).
 *   2. the store is opened (created), the run recorded (config text and hash, git revision,
 *      host, CPU model, OpenBLAS core and threads, workers, command line), the models and
 *      cells registered in one transaction each. Cells already done (same identity: model
 *      sha256 + task + method + sample set) stay done: that is resume.
 *   3. `workers` processes are forked (each dies with the parent: PR_SET_PDEATHSIG). Each opens
 *      its own connection and loops: claim a cell (BEGIN IMMEDIATE; a cell whose worker is
 *      gone or whose lease passed is reclaimed), run every sample not yet stored, finish it.
 *      Per sample: the prompt; the dense reference from dense_results, else computed and
 *      stored there (shared by every method's cell of that model/task/sample); the method run
 *      against it (evaluate.h); ONE transaction writes the sample row with its layer rows.
 *      A cell becomes done only when all its samples are stored (a store trigger enforces it).
 *      A cell that fails (bad task option, model error) is marked failed with its error and the
 *      worker moves on; re-running retries failed cells.
 *   4. the parent polls the store for progress (reported through a callback: the library never
 *      prints), waits for the workers, and closes the run.
 * Per worker process: OpenBLAS threads = config "threads" (0 = OpenBLAS's default); loaded
 * models and generated sample sets are cached for the process's life.
 *
 * Prefix sharing (layers before the first decision layer f = l_s are identical for every rho):
 * cells of the same model, task point, method and parameters except the after-decision ones
 * (method.h: the policy table's flag; today rho) form a prefix group
 * (dk_runner_prefix_group) when the method's f is in 1..n_layer-1. A worker that claims a cell
 * also claims, in one transaction (dk_store_cell_claim_ids), every sibling of its group that is
 * pending or stale, and runs the group sample by sample: the dense reference; the context's
 * layers 0..f-1 once (dk_eval_prefix); per cell the remaining layers with its rho, the question,
 * forcing and decoding (dk_eval_method_suffix). Results are bit-identical to running each cell
 * alone (opts.prefix_sharing = 0, `dashkit run --no-prefix-sharing`). Wall-time accounting stays
 * per cell: a cell's wall_method_s = prefix + its suffix + question, the prefix measured once per
 * sample and charged to every cell that used it, so its speedup is what a single run would see;
 * the sweep's saving (the prefix time not spent again) is reported separately
 * (dk_runner_progress.prefix_saved_s). Siblings already held by another worker are not waited
 * for: they run there, whole. */
#ifndef DK_RUNNER_H
#define DK_RUNNER_H

#include <stdint.h>
#include "config.h"
#include "dk_common.h"
#include "shard.h"

typedef struct {
    int64_t run_id;
    int64_t cells_total; /* cells of this config */
    int64_t cells_done, cells_failed, cells_running, cells_pending;
    int64_t samples_total; /* cells_total * samples per cell */
    int64_t samples_done;  /* sample rows stored for this config's cells */
    int64_t samples_new;   /* of them, written since this invocation started */
    double elapsed_s;      /* since the workers started */
    double samples_per_s;  /* samples_new / elapsed_s (0 before the first) */
    double eta_s;          /* remaining samples / samples_per_s; NAN when unknown */
    /* prefix sharing, this invocation (final report only; 0 in intermediate ones) */
    int64_t prefix_shared_runs;   /* method runs that continued from a prefix computed for a sibling cell */
    double prefix_saved_s;        /* the prefix wall time those runs did not spend (s): the sweep's saving.
                                   Each cell's wall_method_s still includes its prefix (see top). */
    double prefix_expected_ratio; /* closed form of the saving: context-prefill FLOPs of this invocation's
                                     runs (dense references included) under prefill.h's layer model,
                                     sum_l A(active_l) per run, unshared / shared; NAN when nothing ran */
} dk_runner_progress;

/* Called in the parent about every progress_interval_s and once at the end (final = 1). */
typedef void (*dk_runner_progress_fn)(void *user, const dk_runner_progress *p, int final);

typedef struct {
    const char *db_path;        /* store file (created with its folder when missing) */
    int workers;                /* worker processes, >= 1 */
    double lease_s;             /* claim lease (s), renewed by every sample write; > 0 */
    double progress_interval_s; /* > 0 */
    const char *command;        /* recorded in runs.command; NULL = unknown */
    int prefix_sharing; /* 1 (default): share layers before l_s across a rho grid; 0: every cell alone */
    dk_runner_progress_fn progress;
    void *progress_user;
    int shard_index, shard_count; /* run only shard I of N (shard.h): 1 <= I <= N; N = 0: the whole config */
} dk_runner_opts;

void dk_runner_opts_default(dk_runner_opts *o); /* results/dashkit.db, 1 worker, lease 1800 s */

/* Step 1 alone (what `dashkit run` does before opening the store): hashes and loads each model,
 * loads one sample of each task point, validates every cell's method parameters against its
 * model. Nothing is written. Errors:
 * DK_ERR_IO (model unreadable), DK_ERR_FORMAT (not a model), DK_ERR_ARG (a parameter that does
 * not fit the model, e.g. layer >= n_layer), each naming the config file and model path. */
dk_status dk_runner_check(const dk_config *cfg, dk_err *e);

/* The whole run (steps 1-4). Returns DK_OK when every cell of the config is done; DK_ERR_STATE
 * "N of M cells failed/unfinished" when some are not (their errors are in cells.error); other
 * codes for step 1 and store failures. *out (may be NULL) receives the final progress. */
dk_status dk_runner_run(const dk_config *cfg, const dk_runner_opts *o, dk_runner_progress *out, dk_err *e);

/* Step 1 (dk_runner_check), then each cell's shard of n_shards (shard.h) and its estimated
 * cost: what `run --dry-run` and `slurm --dry-run` print. Nothing is written. */
dk_status dk_runner_shard_plan(const dk_config *cfg, int n_shards, dk_shard_plan *out, dk_err *e);

/* Cells that could share the layers before l_s (see top): same model, task and options, method
 * and parameters other than the after-decision ones (method.h). Writes a canonical JSON key into
 * buf (snprintf semantics). */
int dk_runner_prefix_group(const dk_config *cfg, const dk_config_cell *cell, char *buf, size_t n);

#endif
