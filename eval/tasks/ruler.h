/* ruler.h — RULER-style synthetic long-context tasks, generated in C: deterministic for a seed,
 * sized in the MODEL's tokens through dk_tok_if (the whole prompt, context + question, BOS not
 * counted, is the largest that fits `length`), needles placed at a requested depth.
 *
 * Templates follow NVIDIA/RULER's (niah, vt, cwe, fwe, qa) and the canonical passkey prompt;
 * RULER's one-shot in-context examples are not prepended. Randomness: xoshiro256** seeded per
 * sample with splitmix64(seed, sample index), so sample i does not depend on how many are made.
 * Word keys/values and CWE words come from the haystack text's vocabulary (distinct lowercase
 * alphabetic words of 3+ letters, first-seen order, then drawn with the PRNG); FWE's coded words
 * are random 3..6-letter strings; numbers are 7 digits (passkey: 5); uuids are version-4 shaped.
 * Depth d%: niah over the essay haystack puts a needle at sentence boundary floor(n_sents * d/100)
 * of the haystack's sentences, as RULER does; over the noise/needle haystacks (whole sentences /
 * needles) at the unit boundary nearest to d% of the haystack's bytes; passkey and qa after
 * round(d% of the units). */
#ifndef DK_RULER_H
#define DK_RULER_H

#include "sample.h"

typedef enum {
    DK_RULER_PASSKEY = 0, /* canonical passkey retrieval over the noise haystack */
    DK_RULER_NIAH,        /* needle(s) in a haystack: single / multi-key / multi-value / multi-query */
    DK_RULER_VT,          /* variable tracking: chains of VAR X = VAR Y with hops */
    DK_RULER_CWE,         /* common words extraction from a numbered list */
    DK_RULER_FWE,         /* frequent (Zipf) coded words extraction */
    DK_RULER_QA,          /* SQuAD question with distractor documents */
} dk_ruler_kind;

typedef enum { DK_RULER_WORDS = 0, DK_RULER_NUMBERS, DK_RULER_UUIDS } dk_ruler_type;
typedef enum { DK_HAYSTACK_ESSAY = 0, DK_HAYSTACK_NOISE, DK_HAYSTACK_NEEDLE } dk_haystack_kind;

typedef struct {
    dk_ruler_kind kind;
    long length;  /* target prompt tokens (context + question, no BOS) */
    double depth; /* 0..100: target needle depth in the haystack; < 0: random */
    uint64_t seed;
    dk_haystack_kind haystack; /* niah only; passkey/vt use noise */
    const char *haystack_path; /* essay text and word source (Gutenberg header/footer stripped) */
    const char *squad_path;    /* qa: SQuAD v1/v2 JSON */
    dk_ruler_type key_type, value_type;
    int n_keys;                  /* niah: needle keys (1 target + distractors when n_queries = 1) */
    int n_values;                /* niah: values per key */
    int n_queries;               /* niah: keys asked for (<= n_keys) */
    int n_chains, n_hops;        /* vt */
    int n_cw, freq_cw, freq_ucw; /* cwe: common words, their and the others' repetitions */
    double alpha;                /* fwe: Zipf exponent */
    int tokens_to_generate;      /* max new tokens */
} dk_ruler_params;

/* RULER's defaults for kind (niah: essay haystack, word keys, number values, 1/1/1). */
void dk_ruler_params_default(dk_ruler_params *p, dk_ruler_kind kind);

/* Generates n samples. Errors: unreadable files, a length too small for the fixed text or too
 * large for the available haystack (qa: documents), or an impossible combination of counts. */
dk_status dk_ruler_generate(const dk_ruler_params *p, int n, const dk_tok_if *tok, dk_sample_set *out,
                            dk_err *e);

/* Reads a plain-text haystack: drops a UTF-8 BOM, keeps only the text between Project
 * Gutenberg's "*** START OF" and "*** END OF" marker lines when present, maps CR LF to LF. */
dk_status dk_ruler_read_haystack(const char *path, char **text, dk_err *e);

/* The noise haystack sentence block. */
extern const char *const dk_ruler_noise;

#endif
