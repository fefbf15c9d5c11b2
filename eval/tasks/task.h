/* task.h — the task registry: LongBench v1 datasets read from the official JSONL and RULER-style
 * generators, by name, with their options. Samples and prompt tokens are in sample.h. */
#ifndef DK_TASK_H
#define DK_TASK_H

#include "sample.h"

/* ---- task registry ---- */

typedef struct {
    const char *name;
    const char *def; /* default value as text ("" = none/required where stated) */
    const char *help;
} dk_task_opt;

typedef struct {
    const char *key, *val;
} dk_task_kv;

typedef struct dk_task dk_task;
struct dk_task {
    const char *name;   /* --task NAME */
    const char *family; /* "longbench" or "ruler" */
    const char *metric; /* official metric function name */
    const char *summary;
    const dk_task_opt *opts; /* terminated by {NULL} */
    /* preset knobs for generator tasks (ignored by LongBench) */
    int kind;           /* internal generator id */
    const char *preset; /* "key=value,..." defaults applied before user options */
};

int dk_task_count(void);
const dk_task *dk_task_at(int i);
const dk_task *dk_task_find(const char *name);

/* Loads or generates the samples of task `name`. kv holds user options (name=value; unknown or
 * malformed options are DK_ERR_ARG naming them). n_samples > 0 limits/sets the count (LongBench:
 * first n lines; generators: n samples, default 10 when 0). tok sizes generator contexts in the
 * model's tokens (LongBench loading does not need it: may be NULL). All-or-nothing: on error
 * *out is empty. */
dk_status dk_task_load(const char *name, const dk_task_kv *kv, int n_kv, int n_samples, const dk_tok_if *tok,
                       dk_sample_set *out, dk_err *e);

/* Value of option `key` for task t after applying defaults, preset and kv; NULL if unknown. */
const char *dk_task_opt_value(const dk_task *t, const dk_task_kv *kv, int n_kv, const char *key);

#endif
