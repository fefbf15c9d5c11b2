/* sample.h — what a task produces: samples (context to halt + question never halted + answers),
 * the tokenizer interface eval/ uses, and prompt tokens with LongBench's middle truncation.
 *
 * Tokenisation enters through dk_tok_if (function pointer + user data) so eval/ does not depend
 * on a tokenizer implementation; dk_tok_if_engine() adapts engine/tokenizer.h. The task registry
 * (task.h) and the loaders/generators (longbench.h, ruler.h) build on this header. */
#ifndef DK_SAMPLE_H
#define DK_SAMPLE_H

#include <stddef.h>
#include <stdint.h>
#include "dk_common.h"
#include "metrics.h"

struct dk_tokenizer;

/* ---- tokenizer interface ---- */

/* Encodes text[0..len); *ids is malloc'd by the callee (caller frees), *n its length; add_bos
 * prepends the model's BOS. Must be deterministic. */
typedef dk_status (*dk_tok_encode_fn)(void *user, const char *text, size_t len, int add_bos, int32_t **ids,
                                      size_t *n, dk_err *e);
typedef struct {
    dk_tok_encode_fn encode;
    void *user;
} dk_tok_if;

/* Adapter over the engine tokenizer (t must outlive the returned value). */
dk_tok_if dk_tok_if_engine(const struct dk_tokenizer *t);
/* One token per UTF-8 byte (ids 0..255), BOS = 256: a model-free tokenizer for previews/tests. */
dk_tok_if dk_tok_if_bytes(void);
/* Convenience: number of tokens of text (no BOS); -1 on error. */
long dk_tok_count(const dk_tok_if *tok, const char *text, size_t len, dk_err *e);

/* ---- samples ---- */

/* Prompt = context + question (plain concatenation, no separator added).
 * LongBench: the official template is split at its {input} position (or after {context} when it
 * has no {input}): context = template prefix + context + template text up to {input};
 * question = input + rest of the template. RULER-style: context = instruction + haystack with
 * needles; question = the query + answer prefix. */
typedef struct {
    char *id;
    char *context;  /* haltable part of the prompt (UTF-8) */
    char *question; /* never-halted part of the prompt (UTF-8) */
    char **answers; /* (n_answers) references; LongBench: max over them */
    int n_answers;
    char **all_classes; /* (n_classes) classification label set, else NULL */
    int n_classes;
    int max_new_tokens; /* generation budget (dataset2maxlen / RULER tokens_to_generate) */
    dk_metric metric;
    const char *dataset; /* static: dataset or task name, selects first-line rule */
    long length;         /* LongBench "length" (words); generators: prompt tokens measured */
    double depth;        /* generators: depth (percent) of the target needle, else -1 */
    long needle_pos;     /* generators: byte offset of the target needle in context, else -1 */
    char *context_key;   /* samples with the same key share their context apart from the needle(s)
                              (RULER's fixed haystack at one length and depth); NULL = its own.
                              Bootstrap intervals resample these contexts as clusters */
} dk_sample;

typedef struct {
    dk_sample *s; /* (n) */
    int n;
} dk_sample_set;

void dk_sample_set_free(dk_sample_set *set);
/* Frees the strings owned by one sample (used by loaders; sets free all theirs). */
void dk_sample_clear(dk_sample *s);

/* ---- prompt tokens ---- */

typedef struct {
    int32_t *ids; /* (n) prompt tokens after truncation; BOS first when requested */
    size_t n;
    size_t n_context; /* ids[0..n_context) may be halted; ids[n_context..n) are the question */
    size_t n_full;    /* tokens of the whole prompt before truncation */
    size_t n_dropped; /* n_full - n: middle tokens removed */
} dk_prompt;

/* Tokenises context + question as ONE text (the tokens pred.py would give) and marks the split:
 * n_context = the longest common prefix of encode(context) and encode(context + question), so a
 * token straddling the boundary belongs to the question (never halted).
 * budget > 0 and n_full > budget: keep exactly the first and last budget/2 tokens (pred.py's
 * middle truncation, done on ids: no decode/re-encode round trip); the split is carried over
 * (kept context tokens stay context). budget = 0: no truncation. */
dk_status dk_sample_build_prompt(const dk_sample *s, const dk_tok_if *tok, size_t budget, int add_bos,
                                 dk_prompt *out, dk_err *e);
void dk_prompt_free(dk_prompt *p);

#endif
