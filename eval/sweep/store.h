/* store.h — the SQLite results store: one file holds what was asked, what ran, what came out,
 * and on what machine. WAL mode; any number of worker processes share one file.
 *
 * ======================================================================================
 * SCHEMA (version 5; PRAGMA user_version = schema version, PRAGMA application_id = 0x444b4954;
 * each version's migration runs on open by any writing command, so older stores stay readable)
 * Units: times are unix seconds (REAL, UTC); durations seconds (REAL); FLOPs are counts of
 * floating-point operations (INTEGER, a multiply-add = 2); scores in [0,100] as LongBench and
 * RULER report them; KL in nats. JSON columns hold canonical JSON (sorted keys, no spaces).
 * --------------------------------------------------------------------------------------
 * runs           one row per `dashkit run` invocation
 *   id INTEGER PK, name TEXT (config "name"), config_path TEXT, config_text TEXT (verbatim),
 *   config_hash TEXT (sha256 hex of config_text), git_rev TEXT (dashkit source revision),
 *   host TEXT, cpu TEXT (model name), blas_core TEXT (OpenBLAS core in use), threads INTEGER,
 *   workers INTEGER, command TEXT (argv), n_cells INTEGER (cells the config expands to),
 *   started_at REAL, finished_at REAL (NULL while running or if interrupted),
 *   shard TEXT ("I/N": a `run --shard I/N`, which registered only shard I's cells; NULL otherwise)
 *   [v5]
 * models         one row per distinct model FILE CONTENT
 *   id INTEGER PK, sha256 TEXT UNIQUE (hex of the file), path TEXT (last path seen), arch TEXT,
 *   n_layer, n_embd, n_head, n_head_kv, n_ff, n_vocab, n_ctx, n_params, file_bytes INTEGER,
 *   added_at REAL
 * cells          one row per matrix point; shared by every run whose config contains it
 *   id INTEGER PK, key TEXT UNIQUE (sha256 of identity), identity TEXT (canonical JSON of
 *   model sha256 + task name/options + method name/params + sample set, see config.h),
 *   run_id INTEGER (the run that created it), model_id INTEGER -> models,
 *   task TEXT, task_options TEXT (JSON object), task_key TEXT (keys dense_results),
 *   method TEXT, params TEXT (JSON object), n_samples INTEGER (samples 0..n-1), seed INTEGER,
 *   state TEXT: 'pending' | 'running' | 'done' | 'failed', error TEXT (last failure),
 *   attempts INTEGER (claims so far), worker TEXT ("host:pid" of the last claimant),
 *   worker_host TEXT, worker_pid INTEGER, worker_start INTEGER (process start, clock ticks
 *   since boot: tells a reused pid apart), lease_until REAL (claim expires unless renewed),
 *   created_at, claimed_at, started_at (first claim), finished_at REAL,
 *   wall_s REAL (seconds spent running it, summed over attempts)
 *   INVARIANT (trigger): state becomes 'done' only when it has exactly n_samples sample rows.
 * run_cells      which cells each run asked for
 *   run_id INTEGER, cell_id INTEGER, ord INTEGER (position in the config's expansion); PK(run,cell)
 * samples        one row per (cell, sample); written with its sample_layers in ONE transaction
 *   id INTEGER PK, cell_id INTEGER -> cells, sample_id INTEGER (index in the sample set),
 *   sample_key TEXT (task's own id, e.g. LongBench _id), prompt_tokens, context_tokens,
 *   question_tokens, gen_tokens INTEGER (tokens), active_tokens TEXT (JSON array, per layer:
 *   context tokens that layer processed), flops_dense, flops_method INTEGER (prefill of
 *   context + question), flops_dense_parts, flops_method_parts TEXT (JSON object component ->
 *   FLOPs), wall_dense_s, wall_method_s REAL (prefill wall time), wall_decode_s REAL,
 *   prediction TEXT, answers TEXT (JSON array of gold answers), score REAL [0,100],
 *   kl REAL (KL(dense||method) of the FIRST answer row only; the views call it kl_first),
 *   kl_answer REAL (mean KL over the teacher-forced answer rows; the views' kl), top1 INTEGER
 *   0/1 (FIRST row's argmax agrees with dense; the views' top1_first), worker TEXT, created_at
 *   REAL; since version 2: kl_answer_max REAL (max KL over the answer rows), top1_answer REAL
 *   (fraction of answer rows whose argmax agrees; the views' top1), nll_dense, nll_method REAL
 *   (mean -log p(gold token) over the answer rows, nats/token; the views' nll_delta = method -
 *   dense); since version 3: context_key TEXT (samples of a cell with the same key share their
 *   context apart from the needle, e.g. RULER's fixed haystack at one length and depth; NULL = a
 *   context of its own: the report's bootstrap resamples these clusters).
 *   UNIQUE(cell_id, sample_id). NULL = not measured (or written before that version).
 * sample_layers  per-layer detail of a sample (optional)
 *   sample_row INTEGER -> samples.id, layer INTEGER, delta_min, delta_median, delta_max REAL
 *   (halting score statistics at that layer; NULL where none was computed), flops INTEGER,
 *   wall_s REAL; PK(sample_row, layer)
 * run_shards     [v5] provenance of a merged run (`dashkit merge`): one row per shard-store run
 *   it was united from: run_id INTEGER -> runs (the merged run), source TEXT (shard file as
 *   given), shard TEXT ("I/N"), src_run_id INTEGER (run id inside the shard file), config_hash,
 *   git_rev, host, cpu, blas_core TEXT, threads, workers INTEGER, command TEXT, started_at,
 *   finished_at REAL; PK(run_id, host, src_run_id, started_at)
 * dense_results  dense reference per (model, task, sample), shared by every method's cell
 *   model_sha256 TEXT, task_key TEXT, sample_id INTEGER (PK of the three), task TEXT,
 *   task_options TEXT, prompt_tokens INTEGER, flops INTEGER, flops_parts TEXT, wall_s REAL,
 *   prediction TEXT, score REAL, n_vocab INTEGER, n_logit_rows INTEGER, logits BLOB (float32
 *   little-endian, (n_logit_rows, n_vocab): row 0 = first answer token's logits, rows 1.. =
 *   teacher-forced gold answer tokens), created_at REAL
 * analyses       one row per `dashkit analyze` (eval/sweep/analyze.h: stability vs redundancy on dense
 *   prefills; since version 4): id INTEGER PK, run_id INTEGER (the run that recorded it, NULL for
 *   the command), model_sha256 TEXT, model_path TEXT, task TEXT, task_options TEXT (JSON),
 *   n_samples, n_layer INTEGER, ls REAL, ls_layer INTEGER (l_s), rho REAL,
 *   delta_received_spearman REAL (Spearman of Δ at l_s with the mean received attention of the
 *   later layers, per sample, averaged), created_at REAL
 * analysis_layers  per (analysis, layer): delta_p01, delta_p10, delta_p25, delta_p50, delta_p75,
 *   delta_p90, delta_p99 REAL (Δ_t = ‖U_t‖ percentiles over all samples' context rows), rel_p01 ..
 *   rel_p99 REAL (the same of Δ_t/‖h_t‖), received_mean REAL (mean received attention, normalised
 *   by the queries that see the row), received_spearman REAL (Spearman of Δ at l_s with this
 *   layer's received attention); PK(analysis_id, layer)
 * analysis_deciles per (analysis, decile 0..9 of Δ at l_s, lowest first): delta_mean REAL,
 *   received_mean REAL (mean received attention over the layers after l_s: the redundancy curve)
 * analysis_recall per (analysis, method, rho): recall REAL (share of dense later-layer attention
 *   mass on the rows the method keeps), kept_frac REAL (kept rows / context rows)
 * analysis_overlap per (analysis, method_a, method_b) at the analysis' rho: jaccard REAL
 * --------------------------------------------------------------------------------------
 * VIEWS (query them directly: sqlite3 results/dashkit.db 'SELECT * FROM cell_summary')
 * cell_summary   per cell: cell_id, run_id, model, model_sha256, task, task_options, length,
 *   depth, method, params, rho, ls, tau, keep, state, n_samples, n (sample rows),
 *   mean_score, flops_dense, flops_method (sums over samples), flops_ratio
 *   (= flops_method/flops_dense), flops_speedup (= flops_dense/flops_method), wall_speedup
 *   (= sum wall_dense_s / sum wall_method_s), kl (mean over samples of the answer-level KL),
 *   kl_max (max over samples of kl_answer_max), top1 (mean answer-level top-1 rate), nll_delta
 *   (mean), kl_first, top1_first (means of the first-row values), wall_s
 * run_status     per run: run_id, name, config_path, started_at, finished_at, cells, pending,
 *   running, done, failed
 * sample_rows    per sample with its cell's parameters (what `dashkit export` writes):
 *   cell_id, cell_key, model, model_sha256, task, task_options, length, depth, method, params,
 *   rho, ls, tau, keep, sample_id, sample_key, prompt_tokens, context_tokens, question_tokens,
 *   gen_tokens, active_tokens, flops_dense, flops_method, flops_ratio, wall_dense_s,
 *   wall_method_s, wall_speedup, wall_decode_s, prediction, answers, score, kl, kl_max, top1,
 *   nll_delta (answer level), kl_first, top1_first (first answer row), context_key
 * ======================================================================================
 *
 * Library code: every function returns a dk_status and fills dk_err; nothing prints or exits.
 * Work protocol of a worker (the runner):
 *   dk_store_open -> dk_store_run_begin -> dk_store_model_put -> dk_store_cells_add
 *   loop: dk_store_cell_claim -> (dk_store_sample_ids; per missing sample: dk_store_dense_get /
 *         dk_store_dense_put, dk_store_sample_put) -> dk_store_cell_finish | dk_store_cell_fail
 *   dk_store_run_end -> dk_store_close
 * Sample writes and finishing check that the caller still owns the cell (state running, same
 * worker); a reclaimed cell's old owner gets DK_ERR_STATE and must drop it. */
#ifndef DK_STORE_H
#define DK_STORE_H

#include "dk_common.h"
#include <stddef.h>
#include <stdint.h>

#define DK_STORE_SCHEMA_VERSION 5
#define DK_STORE_APPLICATION_ID 0x444b4954 /* "DKIT" */

typedef struct dk_store dk_store;

typedef enum {
    DK_STORE_OPEN_CREATE = 1,     /* create the file (and its parent folder) if missing */
    DK_STORE_OPEN_READONLY = 2,   /* never write; the file must exist. One exception: a store of an
                                   older schema whose file is writable is first upgraded by its
                                   (additive) migrations, so read commands keep reading old stores */
    DK_STORE_OPEN_NO_UPGRADE = 4, /* with READONLY: an older store is an error, never upgraded */
} dk_store_open_flags;

typedef enum {
    DK_CELL_PENDING = 0,
    DK_CELL_RUNNING,
    DK_CELL_DONE,
    DK_CELL_FAILED,
} dk_cell_state;

const char *dk_cell_state_name(dk_cell_state s);

/* ---- open / close ---- */

/* Opens (creating / migrating as flags allow) the store at path. A missing file without
 * DK_STORE_OPEN_CREATE is DK_ERR_IO "PATH: no such store". A file that is not a dashkit store,
 * or has a newer schema than this build, is DK_ERR_FORMAT. */
dk_status dk_store_open(const char *path, int flags, dk_store **out, dk_err *err);
void dk_store_close(dk_store *s);
int dk_store_schema_version(dk_store *s); /* PRAGMA user_version */
double dk_store_now(void);                /* unix seconds */

/* ---- runs and models ---- */

typedef struct {
    const char *name, *config_path, *config_text, *config_hash;
    const char *git_rev, *host, *cpu, *blas_core, *command; /* NULL = unknown */
    int threads, workers;
    int64_t n_cells;
    const char *shard; /* "I/N" for `run --shard I/N`; NULL = the whole config */
} dk_run_info;

dk_status dk_store_run_begin(dk_store *s, const dk_run_info *info, int64_t *run_id, dk_err *err);
dk_status dk_store_run_end(dk_store *s, int64_t run_id, dk_err *err);

typedef struct {
    const char *sha256; /* required, 64 hex */
    const char *path;   /* required */
    const char *arch;   /* NULL = unknown; integer fields < 0 = unknown */
    int64_t n_layer, n_embd, n_head, n_head_kv, n_ff, n_vocab, n_ctx, n_params, file_bytes;
} dk_model_info;

/* Inserts the model (or updates path and metadata of the same sha256); returns its id. */
dk_status dk_store_model_put(dk_store *s, const dk_model_info *m, int64_t *model_id, dk_err *err);

/* ---- cells ---- */

typedef struct {
    const char *key, *identity; /* from dk_config_cell_identity */
    const char *task, *task_options, *task_key;
    const char *method, *params;
    int64_t model_id, n_samples, seed;
} dk_cell_spec;

/* In ONE transaction: inserts each cell not yet in the store (state pending, created by run_id),
 * links all to run_id in order, and (retry_failed) puts failed ones back to pending. Done cells
 * stay done: that is resume. cell_ids (n) receives each cell's id; states (n, may be NULL) its
 * state after the call. */
dk_status dk_store_cells_add(dk_store *s, int64_t run_id, const dk_cell_spec *cells, size_t n,
                             int retry_failed, int64_t *cell_ids, dk_cell_state *states, dk_err *err);

/* The same with the run_cells order of each cell given (ord[i], e.g. its position in the whole
 * config's expansion when only a shard of it is registered); ord NULL = position in cells. */
dk_status dk_store_cells_add_at(dk_store *s, int64_t run_id, const dk_cell_spec *cells, const int64_t *ord,
                                size_t n, int retry_failed, int64_t *cell_ids, dk_cell_state *states,
                                dk_err *err);

/* Who holds a claim. dk_store_worker_self fills it for the calling process. */
typedef struct {
    char host[256];
    int64_t pid;
    int64_t start;  /* process start, clock ticks since boot (0 = unknown) */
    char name[300]; /* "host:pid" */
} dk_worker;

void dk_store_worker_self(dk_worker *w);

/* In one BEGIN IMMEDIATE transaction: picks the first cell of run_id (config order) that is
 * pending, or running but stale (lease_until passed, or its worker on this host no longer
 * exists), and marks it running for w with lease_until = now + lease_s.
 * *cell_id = 0 when no cell is left to claim. key (may be NULL) receives the cell key. */
dk_status dk_store_cell_claim(dk_store *s, int64_t run_id, const dk_worker *w, double lease_s,
                              int64_t *cell_id, char key[65], dk_err *err);

/* In one BEGIN IMMEDIATE transaction: claims for w, as dk_store_cell_claim would, each of
 * ids[0..n) that belongs to run_id and is pending or stale; claimed[i] = 1 for those taken, 0
 * for the others (done, failed, held by a live worker, not in the run). The runner uses it to
 * take the pending siblings of a claimed cell that share its prefix (runner.h). */
dk_status dk_store_cell_claim_ids(dk_store *s, int64_t run_id, const dk_worker *w, double lease_s,
                                  const int64_t *ids, size_t n, int *claimed, dk_err *err);

/* Extends w's lease on cell_id. DK_ERR_STATE if w no longer owns it. */
dk_status dk_store_cell_renew(dk_store *s, int64_t cell_id, const dk_worker *w, double lease_s, dk_err *err);

/* Sample ids already stored for the cell, ascending (malloc'd; *ids NULL when n = 0). */
dk_status dk_store_sample_ids(dk_store *s, int64_t cell_id, int64_t **ids, size_t *n, dk_err *err);

/* Marks an owned cell done; DK_ERR_STATE if samples are missing or w does not own it. */
dk_status dk_store_cell_finish(dk_store *s, int64_t cell_id, const dk_worker *w, dk_err *err);
/* Marks an owned cell failed with a one-line error. */
dk_status dk_store_cell_fail(dk_store *s, int64_t cell_id, const dk_worker *w, const char *error,
                             dk_err *err);
/* Gives an owned cell back (pending), e.g. on interrupt. Its stored samples are kept. */
dk_status dk_store_cell_release(dk_store *s, int64_t cell_id, const dk_worker *w, dk_err *err);
dk_status dk_store_cell_state(dk_store *s, int64_t cell_id, dk_cell_state *state, dk_err *err);

/* ---- samples ---- */

typedef struct {
    double delta_min, delta_median, delta_max; /* NAN = not computed at this layer */
    int64_t flops;                             /* >= 0 */
    double wall_s;                             /* NAN = not measured */
} dk_layer_stat;

/* Doubles set to NAN and strings set to NULL are stored as NULL. */
typedef struct {
    int64_t cell_id, sample_id;
    const char *sample_key;
    int64_t prompt_tokens, context_tokens, question_tokens, gen_tokens;
    int n_layer;
    const int64_t *active;       /* (n_layer) context tokens processed per layer */
    const dk_layer_stat *layers; /* (n_layer) or NULL */
    int64_t flops_dense, flops_method;
    const char *flops_dense_parts, *flops_method_parts; /* JSON objects or NULL */
    double wall_dense_s, wall_method_s, wall_decode_s;
    const char *prediction;
    const char *answers; /* JSON array or NULL */
    double score;
    double kl, kl_max, top1;      /* answer level: mean / max KL over the answer rows, top-1 rate [0,1] */
    double kl_first;              /* first answer row */
    int top1_first;               /* 0, 1, or -1 = not measured */
    double nll_dense, nll_method; /* mean answer NLL (nats/token) */
    const char *context_key;      /* shared-context key (task.h) or NULL */
} dk_sample_row;

/* Writes the sample row and its layer rows in ONE BEGIN IMMEDIATE transaction, after checking
 * that w owns the cell (and renewing its lease by lease_s). Any failure rolls everything back:
 * no partial row is ever visible. DK_ERR_STATE: not the owner or sample already stored. */
dk_status dk_store_sample_put(dk_store *s, const dk_worker *w, double lease_s, const dk_sample_row *row,
                              dk_err *err);

/* ---- dense results shared across methods ---- */

typedef struct {
    const char *model_sha256, *task_key;
    int64_t sample_id;
    const char *task, *task_options;
    int64_t prompt_tokens, flops;
    const char *flops_parts; /* JSON object or NULL */
    double wall_s;
    const char *prediction;
    double score; /* NAN = not scored */
    int64_t n_vocab, n_logit_rows;
    const float *logits; /* (n_logit_rows, n_vocab) or NULL */
} dk_dense_row;

/* INSERT OR IGNORE: the first writer wins (dense results are deterministic); *inserted (may be
 * NULL) tells whether this call stored it. */
dk_status dk_store_dense_put(dk_store *s, const dk_dense_row *row, int *inserted, dk_err *err);

/* Owned copy of a dense row; free with dk_store_dense_free. */
typedef struct {
    int64_t prompt_tokens, flops;
    char *flops_parts;
    double wall_s;
    char *prediction;
    double score;
    int64_t n_vocab, n_logit_rows;
    float *logits; /* (n_logit_rows, n_vocab) or NULL */
} dk_dense_result;

dk_status dk_store_dense_get(dk_store *s, const char *model_sha256, const char *task_key, int64_t sample_id,
                             dk_dense_result *out, int *found, dk_err *err);
void dk_store_dense_free(dk_dense_result *r);

/* ---- merging shard stores (`dashkit merge`, eval/merge.h) ---- */

/* One row of runs, owned copies (NULL where unknown; threads, workers, n_cells -1 and
 * started_at NAN where NULL; finished_at NAN while open). */
typedef struct {
    int64_t id;
    char *name, *config_path, *config_text, *config_hash, *git_rev, *host, *cpu, *blas_core, *command, *shard;
    int threads, workers;
    int64_t n_cells;
    double started_at, finished_at;
} dk_store_run;

dk_status dk_store_runs_read(dk_store *s, dk_store_run **runs, size_t *n, dk_err *err); /* ascending id */
void dk_store_runs_free(dk_store_run *runs, size_t n);

/* A write transaction around several calls (BEGIN IMMEDIATE / COMMIT / ROLLBACK). */
dk_status dk_store_begin(dk_store *s, dk_err *err);
dk_status dk_store_commit(dk_store *s, dk_err *err);
void dk_store_rollback(dk_store *s);
const char *dk_store_path(const dk_store *s);

typedef struct {
    int64_t cells_added;   /* cells new to out */
    int64_t samples_added; /* sample rows copied (with their layer rows) */
    int64_t samples_same;  /* sample rows out already had, found equal */
    int64_t dense_added;   /* dense references copied */
} dk_store_merge_stats;

/* Inside the caller's transaction on out: unites into out what src (opened read-only) holds for
 * the config of config_run (one of src's runs; its config_hash selects every src run of that
 * config). The merged run is out's first run of that config hash with run_shards rows, created
 * from config_run (command recorded) when there is none; *merged_run receives its id. Copied:
 *   run_shards  one row per src run of the config (its host, CPU, BLAS core, revision, times);
 *               the merged run's host/cpu/blas_core/git_rev become the distinct values of all
 *               its shard runs, its started/finished_at their span
 *   models      by sha256; cells by key (linked to the merged run at their config position)
 *   samples     (with sample_layers) new ones copied; ones out already has must be equal in every
 *               column but measurements (names starting with "wall", worker, created_at)
 *   state       done in src -> done in out (the done trigger checks the samples); failed -> failed
 *               unless done; running/pending -> pending (its stored samples kept: `run` resumes)
 *   dense_results  new ones copied, stored ones compared likewise
 * A difference is DK_ERR_STATE "SRC: cell KEY12 (task options method params) sample S: COLUMN
 * differs from the result already merged (...)"; the caller rolls back. Samples, layer rows and
 * dense rows are compared column by column of the two stores' tables, so columns added by later
 * schema versions take part. ms counts are added to. */
dk_status dk_store_merge_from(dk_store *out, dk_store *src, const dk_store_run *config_run,
                              const char *command, int64_t *merged_run, dk_store_merge_stats *ms,
                              dk_err *err);

/* ---- reading results (report, status, export, the runner's progress; store_read.c) ----
 * Owned, typed copies: callers never see SQL. Text fields are NULL where the column is NULL. */

/* Cells of run_id by state (counts[DK_CELL_PENDING..DK_CELL_FAILED]) and their sample rows. */
dk_status dk_store_run_counts(dk_store *s, int64_t run_id, int64_t counts[4], int64_t *samples, dk_err *err);
/* Cells of run_id left 'running' by worker process pid of host. */
dk_status dk_store_cells_held(dk_store *s, int64_t run_id, const char *host, int64_t pid, int64_t *n,
                              dk_err *err);

/* One row of the run_status view. */
typedef struct {
    int64_t run_id;
    char *name, *config_path;
    double started_at, finished_at; /* NAN where NULL */
    int64_t cells, pending, running, done, failed;
} dk_store_run_status;

/* run_status rows of run_id (0 = every run), ascending run id. */
dk_status dk_store_run_status_read(dk_store *s, int64_t run_id, dk_store_run_status **rows, size_t *n,
                                   dk_err *err);
void dk_store_run_status_free(dk_store_run_status *rows, size_t n);

typedef struct {
    int64_t id;
    char *task, *task_options, *method, *params, *error;
} dk_store_failed_cell;

/* Failed cells of run_id (0 = of every run), ascending cell id. */
dk_status dk_store_failed_cells_read(dk_store *s, int64_t run_id, dk_store_failed_cell **cells, size_t *n,
                                     dk_err *err);
void dk_store_failed_cells_free(dk_store_failed_cell *cells, size_t n);

/* A cell of a run with its model. */
typedef struct {
    int64_t id;
    char *model_sha256, *model_path, *model_arch;
    int64_t model_n_layer, model_n_params; /* -1 where NULL */
    char *task, *task_options, *task_key, *method, *params, *state;
    int64_t n_samples;
    double length, depth; /* task_options' "length", "depth"; NAN where absent */
} dk_store_cell_row;

/* The cells of run_id in config order (run_cells.ord). */
dk_status dk_store_run_cells_read(dk_store *s, int64_t run_id, dk_store_cell_row **cells, size_t *n,
                                  dk_err *err);
void dk_store_cell_rows_free(dk_store_cell_row *cells, size_t n);

/* The measured columns of a cell's sample rows, ascending sample_id, as column arrays. */
typedef struct {
    size_t n;           /* sample rows */
    int n_layer;        /* the longest active_tokens array or the highest sample_layers layer + 1 */
    int64_t *row;       /* (n) samples.id */
    int64_t *sample_id; /* (n) */
    char **context_key; /* (n) NULL = a context of its own */
    double *score, *wall_dense_s, *wall_method_s, *flops_dense, *flops_method; /* (n) NAN where NULL */
    double *kl, *top1;                            /* (n) kl_answer, top1_answer; NAN where NULL */
    double *nll_delta;                            /* (n) nll_method - nll_dense; NAN where either is NULL */
    double *context_tokens;                       /* (n) NAN where NULL */
    double *active;                               /* (n, n_layer) active_tokens; NAN where absent */
    double *delta_min, *delta_median, *delta_max; /* (n, n_layer) sample_layers; NAN where absent */
} dk_store_samples;

/* DK_ERR_FORMAT when the rows claim more than 65536 layers. Free with dk_store_samples_free. */
dk_status dk_store_cell_samples_read(dk_store *s, int64_t cell_id, dk_store_samples *out, dk_err *err);
void dk_store_samples_free(dk_store_samples *x);

/* Scores of the dense reference (dense_results) of model_sha256 and task_key for sample ids
 * below n_samples, ascending sample id, unscored ones left out (malloc'd; NULL when n = 0). */
dk_status dk_store_dense_scores(dk_store *s, const char *model_sha256, const char *task_key,
                                int64_t n_samples, double **scores, size_t *n, dk_err *err);

/* One value of a row: its type, number and SQLite's text of it (what CSV writes). */
typedef enum {
    DK_STORE_NULL = 0,
    DK_STORE_INTEGER,
    DK_STORE_REAL,
    DK_STORE_TEXT, /* text or blob */
} dk_store_type;

typedef struct {
    const char *name; /* column name */
    dk_store_type type;
    int64_t i;        /* DK_STORE_INTEGER */
    double r;         /* DK_STORE_REAL */
    const char *text; /* NULL for NULL; valid during the call */
} dk_store_value;

/* Called once with header = 1 (names only), then once per row; nonzero stops the read. */
typedef int (*dk_store_row_fn)(void *ctx, const dk_store_value *cols, int n_cols, int header);

/* The sample_rows view (see SCHEMA) of run_id's cells (0 = every cell), by cell and sample;
 * *n_rows counts the rows passed to fn. A stop by fn is DK_ERR_IO "PATH: export stopped". */
dk_status dk_store_sample_rows(dk_store *s, int64_t run_id, dk_store_row_fn fn, void *ctx, int64_t *n_rows,
                               dk_err *err);
/* ---- analyses (eval/sweep/analyze.h) ---- */

#define DK_ANALYSIS_NQ 7 /* percentiles 1, 10, 25, 50, 75, 90, 99 */
extern const double dk_analysis_q[DK_ANALYSIS_NQ];

typedef struct {
    char method[32];
    double rho, recall, kept_frac;
} dk_analysis_recall;

typedef struct {
    char a[32], b[32];
    double jaccard;
} dk_analysis_overlap;

typedef struct {
    int64_t id, run_id; /* run_id 0 = none */
    char model_sha256[65];
    char *model_path, *task, *task_options;
    int n_samples, n_layer, ls_layer;
    double ls, rho, delta_received_spearman, created_at;
    double *delta_q, *rel_q;   /* (n_layer, DK_ANALYSIS_NQ) */
    double *received_mean;     /* (n_layer) */
    double *received_spearman; /* (n_layer) */
    double decile_delta[10], decile_received[10];
    dk_analysis_recall *recall; /* (n_recall) */
    int n_recall;
    dk_analysis_overlap *overlap; /* (n_overlap) */
    int n_overlap;
} dk_analysis;

void dk_analysis_free(dk_analysis *a);
/* The id of a stored analysis of the same model, task, options, samples, ls and rho (0: none). */
dk_status dk_store_analysis_find(dk_store *s, const dk_analysis *a, int64_t *id, dk_err *err);
/* Stores a in one transaction; a->id receives its id. */
dk_status dk_store_analysis_put(dk_store *s, dk_analysis *a, dk_err *err);
/* The analysis with id (> 0), or the latest one of the model (model_sha256 non-NULL) or of any
 * model; *found = 0 when there is none. Free with dk_analysis_free. */
dk_status dk_store_analysis_get(dk_store *s, int64_t id, const char *model_sha256, dk_analysis *out,
                                int *found, dk_err *err);

/* Deletes a store file and its -wal/-shm companions (errors ignored: for cleaning up a store this
 * process created and failed to fill). */
void dk_store_remove_files(const char *path);

#endif
