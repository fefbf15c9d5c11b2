/* longbench.h — LongBench v1 as published: the official JSONL files (one sample per line with
 * fields input, context, answers, length, dataset, language, all_classes, _id) and the official
 * config/dataset2prompt.json + config/dataset2maxlen.json. */
#ifndef DK_LONGBENCH_H
#define DK_LONGBENCH_H

#include "sample.h"

/* Ranges every number read from these files is checked against (before any conversion): a
 * sample's "length" (words/characters of its context) and dataset2maxlen.json's budgets. */
#define DK_LONGBENCH_MAX_LENGTH 1e12
#define DK_LONGBENCH_MAX_NEW_TOKENS (1 << 20)

/* Reads the template and max new tokens of `dataset` from config_dir/dataset2prompt.json and
 * config_dir/dataset2maxlen.json. *tmpl is malloc'd. */
dk_status dk_longbench_config_load(const char *config_dir, const char *dataset, char **tmpl,
                                   int *max_new_tokens, dk_err *e);

/* Python str.format(context=..., input=...) of tmpl, split in two: *ctx_part is the template up
 * to its {input} placeholder (or up to the end of {context} when {input} is absent or comes
 * first) and *q_part the rest, each filled. ctx_part + q_part == tmpl.format(...) exactly.
 * "{{" / "}}" are literal braces; any other field is DK_ERR_FORMAT. */
dk_status dk_longbench_format(const char *tmpl, const char *context, const char *input, char **ctx_part,
                              char **q_part, dk_err *e);

/* Loads every sample of one JSONL file (blank lines skipped), at most n_max when n_max > 0
 * (every line is checked all the same: a file is accepted whole or not at all).
 * `dataset` must be a static string: the metric comes from eval.py's map, and each line's
 * "dataset" field must equal it. Any malformed line (bad JSON, missing field, wrong type,
 * empty answers, classification without all_classes) fails the whole load with one error
 * "PATH:LINE: ..." naming the field; *out is then empty. */
dk_status dk_longbench_load_file(const char *path, const char *dataset, const char *tmpl, int max_new_tokens,
                                 int n_max, dk_sample_set *out, dk_err *e);

/* data_dir/<dataset>.jsonl with the config of config_dir. */
dk_status dk_longbench_load(const char *data_dir, const char *config_dir, const char *dataset, int n_max,
                            dk_sample_set *out, dk_err *e);

/* LongBench-E (the length-balanced subsets, pred.py --e): data_dir/<dataset>_e.jsonl, whose
 * lines carry "dataset": "<dataset>_e" (also accepted: "<dataset>"); template, generation
 * budget and metric are those of <dataset>, as in pred.py/eval.py. Otherwise as above. */
dk_status dk_longbench_load_e(const char *data_dir, const char *config_dir, const char *dataset, int n_max,
                              dk_sample_set *out, dk_err *e);

#endif
