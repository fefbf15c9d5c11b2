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
 * Prefix sharing (layers before l_s identical for every rho at that l_s) needs an engine
 * snapshot of a context after the decision layer, which the engine does not offer yet. The
 * runner already knows which cells could share a prefix: dk_runner_prefix_group() gives cells
 * of the same model, task, method and parameters except rho one group key, and cells are
 * claimed in config order, where a rho grid of one (ls, ...) point is contiguous when rho is
 * the fastest-varying key. The worker loop runs a claimed batch through one function
 * (dk_runner_cell_run); batching a group there is where the snapshot will plug in. */
#ifndef DK_RUNNER_H
#define DK_RUNNER_H

#include <stdint.h>
#include "config.h"
#include "dk_common.h"

typedef struct {
    int64_t run_id;
    int64_t cells_total;      /* cells of this config */
    int64_t cells_done, cells_failed, cells_running, cells_pending;
    int64_t samples_total;    /* cells_total * samples per cell */
    int64_t samples_done;     /* sample rows stored for this config's cells */
    int64_t samples_new;      /* of them, written since this invocation started */
    double elapsed_s;         /* since the workers started */
    double samples_per_s;     /* samples_new / elapsed_s (0 before the first) */
    double eta_s;             /* remaining samples / samples_per_s; NAN when unknown */
} dk_runner_progress;

/* Called in the parent about every progress_interval_s and once at the end (final = 1). */
typedef void (*dk_runner_progress_fn)(void *user, const dk_runner_progress *p, int final);

typedef struct {
    const char *db_path;          /* store file (created with its folder when missing) */
    int workers;                  /* worker processes, >= 1 */
    double lease_s;               /* claim lease (s), renewed by every sample write; > 0 */
    double progress_interval_s;   /* > 0 */
    const char *command;          /* recorded in runs.command; NULL = unknown */
    dk_runner_progress_fn progress;
    void *progress_user;
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

/* Cells that could share the layers before l_s (see top): same model, task and options, method
 * and parameters other than rho. Writes a canonical JSON key into buf (snprintf semantics). */
int dk_runner_prefix_group(const dk_config *cfg, const dk_config_cell *cell, char *buf, size_t n);

#endif
