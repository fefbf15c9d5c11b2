/* metrics.h — answer scoring exactly as LongBench v1 (metrics.py, eval.py) and RULER
 * (string_match_all/part, postprocess_pred) compute it, plus fidelity metrics on logits.
 *
 * Reference versions (see ../shared/fixtures/metrics/README.md): THUDM/LongBench@2e00731f,
 * NVIDIA/RULER@c3f5e3b4, rouge (pltrdy) 1.0.1, fuzzywuzzy 0.18.0 with the difflib backend
 * (Levenshtein optional), Python 3.11 / Unicode 14.0 string semantics (full lower-casing with
 * the final-sigma rule, Unicode whitespace, re's \w and \d) via the generated tables in
 * metrics_unicode.c. Strings are UTF-8 (invalid bytes read as U+FFFD each).
 *
 * Per-sample scores are in [0,1]; dataset/batch scores are x100 and rounded to 2 decimals with
 * Python's round() semantics (exact binary value, ties to even). Functions returning double
 * return NAN when allocation fails or when the official code would raise (e.g. a retrieval
 * ground truth without "Paragraph N"). */
#ifndef DK_METRICS_H
#define DK_METRICS_H

#include <stdint.h>

#include <stddef.h>
#include "dk_common.h"

/* ---- metric identities ---- */

typedef enum {
    DK_METRIC_QA_F1 = 0,         /* qa_f1_score */
    DK_METRIC_ROUGE,             /* rouge_score (ROUGE-L F, summary level) */
    DK_METRIC_CLASSIFICATION,    /* classification_score (needs all_classes) */
    DK_METRIC_RETRIEVAL,         /* retrieval_score */
    DK_METRIC_COUNT,             /* count_score */
    DK_METRIC_CODE_SIM,          /* code_sim_score */
    DK_METRIC_STRING_MATCH_ALL,  /* RULER string_match_all (per sample: fraction found) */
    DK_METRIC_STRING_MATCH_PART, /* RULER string_match_part (per sample: any found) */
    DK_METRIC_N
} dk_metric;

typedef enum {
    DK_CODE_SIM_DIFFLIB = 0, /* fuzzywuzzy without python-Levenshtein (LongBench's install) */
    DK_CODE_SIM_LEVENSHTEIN, /* fuzzywuzzy with python-Levenshtein */
} dk_code_sim_backend;

/* Official function name ("qa_f1_score", "string_match_all", ...). */
const char *dk_metric_name(dk_metric m);
/* Parses an official function name; DK_ERR_ARG if unknown. */
dk_status dk_metric_from_name(const char *name, dk_metric *out, dk_err *e);
/* eval.py's dataset2metric (English + Chinese names mapped to the English metric they share in
 * structure are NOT accepted: only datasets whose metric is implemented). DK_ERR_ARG if unknown. */
dk_status dk_metric_for_dataset(const char *dataset, dk_metric *out, dk_err *e);
/* 1 for trec, triviaqa, samsum, lsht: eval.py scores only the prediction's first line. */
int dk_metric_dataset_first_line(const char *dataset);

/* ---- per-answer metrics (one prediction vs one ground truth, value in [0,1]) ---- */

double dk_metric_qa_f1_score(const char *pred, const char *gt);
double dk_metric_rouge_score(const char *pred, const char *gt);
double dk_metric_classification_score(const char *pred, const char *gt, const char *const *all_classes,
                                      int n_classes);
double dk_metric_retrieval_score(const char *pred, const char *gt);
double dk_metric_count_score(const char *pred, const char *gt);
double dk_metric_code_sim_score(const char *pred, const char *gt, dk_code_sim_backend backend);
/* RULER per-sample value: fraction of refs found (all) or 1/0 if any is found (part), after
 * full Unicode lower-casing of both sides; plain substring test. NAN when n_refs == 0. */
double dk_metric_string_match(const char *pred, const char *const *refs, int n_refs, int all);
/* fuzzywuzzy fuzz.ratio in 0..100 (an integer value). */
double dk_metric_fuzz_ratio(const char *a, const char *b, dk_code_sim_backend backend);

/* ---- helpers with official semantics (results are malloc'd; NULL on OOM) ---- */

/* SQuAD normalize_answer: lower, drop ASCII punctuation, articles -> " ", squeeze whitespace. */
char *dk_metric_normalize_answer(const char *s);
/* eval.py first-line rule: lstrip("\n") then split("\n")[0]. */
char *dk_metric_first_line(const char *pred);
/* RULER evaluate.py postprocess_pred: strip, chars U+0000..U+001F -> "\n", strip. */
char *dk_metric_ruler_postprocess(const char *pred);
/* Python round(x, 2). */
double dk_metric_round2(double x);

/* ---- sample, dataset and batch scores ---- */

/* One sample: LongBench metrics start at 0.0 and take the max over answers (0 answers -> 0.0);
 * RULER metrics return the per-sample value in [0,1] over all references (n_answers >= 1).
 * all_classes is only read by classification. Code similarity uses the difflib backend. */
double dk_metric_sample_score(dk_metric m, const char *pred, const char *const *answers, int n_answers,
                              const char *const *all_classes, int n_classes);

/* eval.py scorer(): first-line rule for the datasets that need it, per-sample max over answers,
 * round(100 * total / n, 2). answers[i] has n_answers[i] strings. */
double dk_metric_longbench_dataset_score(const char *dataset, const char *const *preds, int n,
                                         const char *const *const *answers, const int *n_answers,
                                         const char *const *all_classes, int n_classes,
                                         dk_code_sim_backend backend);

/* RULER string_match_all (all != 0) or string_match_part over a batch: x100, round 2.
 * postprocess != 0 applies postprocess_pred to each prediction first. */
double dk_metric_ruler_batch_score(int all, const char *const *preds, int n, const char *const *const *refs,
                                   const int *n_refs, int postprocess);

/* ---- fidelity against dense (logits in nats, any scale; computed in double) ---- */

/* KL(softmax(p) || softmax(q)) >= 0 over n_vocab logits; p = dense, q = method. */
double dk_metric_kl_logits(const float *p_logits, const float *q_logits, int n_vocab);
/* 1 if both distributions have the same top-1 token, else 0. */
int dk_metric_top1_agree(const float *p_logits, const float *q_logits, int n_vocab);
/* Mean over n_pos rows of KL(dense_t || method_t): rows are (n_pos, n_vocab), row t holds the
 * logits predicting gold answer token t under teacher forcing. 0 when n_pos == 0. */
double dk_metric_mean_kl(const float *dense, const float *method, int n_pos, int n_vocab);

/* Fidelity over the teacher-forced answer rows (issue 14): rows are (n_rows, n_vocab) as above.
 *   kl_mean, kl_max   mean and max over the rows of KL(dense_t || method_t)
 *   top1              fraction of rows whose argmax agrees (in [0, 1])
 *   kl_first, top1_first  the same of row 0 alone (the first answer token)
 * n_rows <= 0: every field NAN (top1_first -1). */
typedef struct {
    double kl_mean, kl_max, top1;
    double kl_first;
    int top1_first;
} dk_metric_fidelity;

void dk_metric_answer_fidelity(const float *dense, const float *method, int n_rows, int n_vocab,
                               dk_metric_fidelity *out);
/* Mean negative log-likelihood (nats per token) of gold[0..n) where row t of logits (n, n_vocab)
 * predicts gold[t]. NAN when n <= 0 or a gold id is outside [0, n_vocab). */
double dk_metric_answer_nll(const float *logits, const int32_t *gold, int n, int n_vocab);

/* Spearman's rank correlation of (x, y) over the pairs where both are numbers: the Pearson
 * correlation of their ranks, ties given their average rank (as scipy.stats.spearmanr). NAN when
 * fewer than 3 pairs or either side is constant. */
double dk_metric_spearman(const double *x, const double *y, size_t n);
/* order[0..n) = the indices of v sorted by value ascending, ties by index (a stable argsort). */
void dk_metric_argsort(const double *v, size_t n, size_t *order);

#endif
