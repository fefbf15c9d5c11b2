/* config.h — sweep matrices: a JSON config parsed with cJSON, validated, expanded into cells.
 *
 * File format (every key below; any other key is an error):
 *   {
 *     "name": "quickstart",                    optional; default = file name without .json
 *     "description": "...",                    optional, free text
 *     "models":  ["models/dashkit-tiny.gguf"], non-empty; paths as given (relative = to the cwd), or
 *                {"path": P, "chat": C} objects to give one model its own chat template
 *     "tasks":   [ {"name": "passkey", "lengths": [1024, 2048], "depth": 50}, ... ],
 *     "methods": [ {"name": "dense"}, {"name": "dash", "rho": [0.3, 0.5], "ls": 0.4}, ... ],
 *     "samples": 10,                           required, integer >= 1: samples 0..samples-1
 *     "seed":    1234,                         optional, integer >= 0, default 0
 *     "threads": 2,                            optional, integer >= 0, default 0 (= all cores)
 *     "chat":    "auto"                        optional: auto | none | chatml | llama3 | llama2 (evaluate.h)
 *     "compute": "f32"                         optional: f32 (default) | bf16 | q8, precision of the
 *                                              products (engine/compute.h); bf16 and q8 are part of
 *                                              every cell's identity and task key (f32 adds nothing,
 *                                              so keys of earlier stores stay valid)
 *   }
 * A task or method option is a scalar (number, string, boolean) or a grid: a non-empty array
 * of scalars. Grids expand as a cross product; a task grid key written in the plural
 * ("lengths", "depths") becomes the singular key ("length", "depth") in each cell.
 *
 * Cells = models x tasks x (task grid) x methods x (method grid), in that nesting order (the
 * last key of an object varies fastest). Identical cells (same model, task options, method,
 * params) are kept once. Method defaults from the registry (every default the policy table
 * declares, e.g. dash: rho 0.667, ls 0.4, sink 0, recent 0) are filled in, so {"name":"dash"}
 * and {"name":"dash","rho":0.667,"ls":0.4,"sink":0} are the same cell. With the builtin
 * registry each method grid point is also validated by the policy table itself
 * (dk_policy_params_validate: required parameters such as dash-tau's tau, an odd snapkv kernel).
 *
 * Value rules (by parameter name, for every method/task that accepts it):
 *   rho in [0,1); ls in [0,1]; tau >= 0; keep, k, window, kernel integers >= 1;
 *   seed, sink, recent integers >= 0; layer integer >= -1; relative boolean;
 *   task length integer >= 1 (model tokens); task depth in [0,100] (percent) or "random".
 *
 * Errors: one line "FILE: JSON.PATH: problem", e.g.
 *   configs/x.json: methods[2].rho[1]: rho = 1 is outside [0,1)
 * Parsing touches nothing on disk except reading the file. */
#ifndef DK_CONFIG_H
#define DK_CONFIG_H

#include "compute.h"
#include "dk_common.h"
#include "sha256.h"
#include <stddef.h>
#include <stdint.h>

/* ---- registries: which method/task names exist and which keys they accept ---- */

typedef struct {
    const char *name;        /* "dash", "passkey", "longbench/hotpotqa" */
    const char *const *keys; /* NULL-terminated accepted parameter/option names; NULL = any key */
    const char *defaults;    /* JSON object of default values merged into each cell, or NULL */
} dk_config_entry;

/* The halting and tasks modules own the real lists. dk_config_registry_builtin() (used when
 * reg is NULL): tasks and their option names straight from the tasks registry (task.h);
 * methods straight from the halting policy table (dk_policy_at, dk_policy_param_info: names,
 * accepted parameters, declared defaults, value ranges). */
typedef struct {
    const dk_config_entry *methods; /* (n_methods) */
    size_t n_methods;
    const dk_config_entry *tasks; /* (n_tasks) */
    size_t n_tasks;
} dk_config_registry;

const dk_config_registry *dk_config_registry_builtin(void);

/* ---- the parsed matrix ---- */

typedef struct {
    char *name;    /* task name as written */
    char *options; /* canonical JSON object of its options, grids still as arrays */
} dk_config_task;

typedef struct {
    char *name;   /* method name as written */
    char *params; /* canonical JSON object of its parameters (grids as arrays, defaults filled) */
} dk_config_method;

/* One point of the matrix. Strings are canonical JSON (sorted keys, no spaces). */
typedef struct {
    size_t model;            /* index into dk_config.models */
    size_t task;             /* index into dk_config.tasks */
    size_t method;           /* index into dk_config.methods */
    const char *task_name;   /* == tasks[task].name */
    char *task_options;      /* scalar options, e.g. {"depth":50,"length":1024} */
    const char *method_name; /* == methods[method].name */
    char *method_params;     /* scalar params, e.g. {"ls":0.4,"rho":0.5} */
} dk_config_cell;

typedef struct {
    char *path;                       /* the file it was read from (as given) */
    char *text;                       /* file contents, verbatim (stored in runs.config_text) */
    char hash[DK_SHA256_HEX_LEN + 1]; /* sha256 of text */
    char *name;
    char *description; /* "" when absent */
    char *chat;        /* "chat": chat template for every model: auto (default), none, chatml, llama3,
                                   llama2; a model's value other than auto is part of its cells' identity and task key */
    char **models;     /* (n_models) paths */
    char **model_chat; /* (n_models) per-model "chat" ({"path": P, "chat": C} entries), or cfg->chat */
    size_t n_models;
    dk_config_task *tasks; /* (n_tasks) */
    size_t n_tasks;
    dk_config_method *methods; /* (n_methods) */
    size_t n_methods;
    int64_t samples;       /* samples per cell, >= 1 */
    int64_t seed;          /* sample-set seed, >= 0 */
    int threads;           /* 0 = all cores */
    dk_compute compute;    /* "compute": f32 (default), bf16 or q8 */
    dk_config_cell *cells; /* (n_cells) the expanded matrix */
    size_t n_cells;
    /* "analyze": {"samples": N, "ls": F, "rho": R} (all optional; defaults 5, 0.4, 0.667): after
     * the matrix is done, `dashkit run` runs the stability vs redundancy analysis (analyze.h) on
     * each model for the first option setting of each task and records it with the run */
    int analyze; /* 1 when the key is present */
    int64_t analyze_samples;
    double analyze_ls, analyze_rho;
} dk_config;

/* Reads, parses, validates and expands `path`. reg NULL = builtin registry. On failure *out is
 * NULL and err holds "PATH: JSON.PATH: problem"; status DK_ERR_IO (unreadable), DK_ERR_FORMAT
 * (not JSON) or DK_ERR_ARG (invalid content). */
dk_status dk_config_load(const char *path, const dk_config_registry *reg, dk_config **out, dk_err *err);

/* Same from memory; `path` is only used in messages and dk_config.path. */
dk_status dk_config_parse(const char *text, size_t n, const char *path, const dk_config_registry *reg,
                          dk_config **out, dk_err *err);

void dk_config_free(dk_config *cfg);

/* ---- identity ---- */

/* What makes a cell's results reusable. key = sha256(json) where json is the canonical
 *   {"method":{"name":..,"params":{..}},"model":"<sha256>","samples":{"n":N,"seed":S},
 *    "task":{"name":..,"options":{..}}}
 * task_key = sha256 of {"seed":S,"task":{"name":..,"options":{..}}}: with the model sha256 and
 * a sample id it keys the dense results shared by every method's cell. */
typedef struct {
    char key[DK_SHA256_HEX_LEN + 1];
    char task_key[DK_SHA256_HEX_LEN + 1];
    char *json; /* malloc'd canonical identity JSON */
} dk_config_identity;

dk_status dk_config_cell_identity(const dk_config *cfg, const dk_config_cell *cell, const char *model_sha256,
                                  dk_config_identity *id, dk_err *err);
void dk_config_identity_free(dk_config_identity *id);

/* Canonical JSON of a JSON text (objects' keys sorted, no whitespace, numbers in shortest
 * round-trip form with integers written without a fraction). malloc'd; NULL if not JSON. */
char *dk_config_canonical_json(const char *json);

#endif
