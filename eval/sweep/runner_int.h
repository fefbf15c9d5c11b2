/* runner_int.h — the runner's parts, shared by its three files; not an API (that is runner.h):
 *   runner_plan.c    the plan the parent computes before forking (inherited by the workers): every
 *                    model hashed and loaded, every task point and cell checked, each cell's method
 *                    parsed once (method.h), prefix groups, a shard's view, `--dry-run` shard plans
 *   runner_worker.c  one worker process: model and sample caches, claims, a group of cells run
 *                    sample by sample (with prefix sharing), one transaction per sample row
 *   runner.c         the run: checks, recording, forking the workers, progress, the analysis
 * May include what eval/sweep may: engine/, eval/tasks/ and this room. */
#ifndef DK_RUNNER_INT_H
#define DK_RUNNER_INT_H

#include "config.h"
#include "dk_common.h"
#include "model.h"
#include "policy.h"
#include "sha256.h"
#include "shard.h"
#include "store.h"
#include "task.h"

#define DK_RUNNER_MAX_KV 64

/* ---- the plan (runner_plan.c) ---- */

typedef struct {
    const dk_config *cfg;
    char (*model_sha)[DK_SHA256_HEX_LEN + 1]; /* (n_models) */
    int *model_layers;                        /* (n_models) n_layer */
    dk_model_info *model_info;                /* (n_models) metadata for the models table */
    char (*model_arch)[16];                   /* (n_models) */
    dk_model_config *model_cfg;               /* (n_models) */
    int64_t *ord;                /* (n_cells) a shard's cells: position in the whole config; else NULL */
    dk_config_cell *shard_cells; /* a shard's cells (the view's cells array); else NULL */
    size_t n_config_cells;       /* cells of the whole config */
    char (*key)[DK_SHA256_HEX_LEN + 1];      /* (n_cells) cell identity key */
    char (*task_key)[DK_SHA256_HEX_LEN + 1]; /* (n_cells) */
    int64_t *cell_id;                        /* (n_cells) store ids */
    const dk_policy **pol;                   /* (n_cells) each cell's policy and parameters, parsed once */
    dk_policy_params *pp;                    /* (n_cells) (dk_method_parse, validated for its model) */
    int *group;                              /* (n_cells) prefix group (cells differing only in after-decision
                                                 parameters, method.h, whose prefix is shareable), -1 = none;
                                                 NULL = sharing off */
    int *group_next;                         /* (n_cells) next member of the cell's group, -1 = last */
    size_t *by_id;                           /* (n_cells) cell indices sorted by cell_id (claims) */
    int64_t run_id;
    double lease_s;
    const char *db_path;
} dk_plan;

/* Prefix-sharing counters of one worker (sent to the parent at exit). */
typedef struct {
    int64_t shared_runs; /* method runs that continued from a prefix computed for another cell */
    double saved_s;      /* sum over those of the prefix wall time they did not spend */
    /* closed form (prefill.h's layer FLOP model A(n)) of the context prefills executed: every run
     * (dense references included) costs sum_l A(active_l); a reused prefix saves sum_{l<f} A(T) */
    double model_flops, model_saved;
} dk_share_stats;

void dk_plan_free(dk_plan *p);
/* Hashes and loads every model (p->model_*), checking each task point loads with its tokenizer. */
dk_status dk_plan_models(const dk_config *cfg, dk_plan *p, dk_err *e);
/* Every cell's policy and parameters (p->pol, p->pp), parsed once and validated against its model. */
dk_status dk_plan_check_cells(const dk_config *cfg, dk_plan *p, dk_err *e);
/* The config's compute mode can run on this CPU (checked once, before any worker starts). */
dk_status dk_runner_check_compute(const dk_config *cfg, dk_err *e);
/* p->group, p->group_next: the prefix groups (see runner.h). */
dk_status dk_plan_groups(const dk_config *cfg, dk_plan *p, dk_err *e);
/* A shard's cells only (shard.h): *view is cfg with just the cells of shard index/count. */
dk_status dk_plan_shard(const dk_config *cfg, int index, int count, dk_plan *p, dk_config *view, dk_err *e);
/* p->by_id, for dk_plan_cell_index. */
dk_status dk_plan_index_ids(dk_plan *p, dk_err *e);
/* Index in the plan of the cell with store id `id`; n_cells when it is not in the plan. */
size_t dk_plan_cell_index(const dk_plan *p, int64_t id);
/* Task options of cell c as key/values (the config's seed added when the task has one); the
 * strings live in store (free each of its 2 * DK_RUNNER_MAX_KV entries). */
dk_status dk_task_kv_from(const dk_config *cfg, const dk_config_cell *c, dk_task_kv *kv, char **store,
                          int *n_kv, dk_err *e);

/* ---- a worker (runner_worker.c) ---- */

/* Claims and runs cells until none is left. Returns non-DK_OK only for store failures. */
dk_status dk_worker_loop(const dk_plan *p, dk_share_stats *ss, dk_err *e);

#endif
