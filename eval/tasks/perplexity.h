/* perplexity.h — perplexity as llama.cpp's llama-perplexity computes it, KL against saved base
 * logits, and DKLOGIT1 logits files.
 *
 * Chunking (tools/perplexity/perplexity.cpp, perplexity()): the whole text is tokenised once
 * (BOS first when the vocabulary adds one); n_chunk = n_tokens / n_ctx chunks of n_ctx tokens,
 * chunk c = tokens[c*n_ctx .. (c+1)*n_ctx), each evaluated from an empty cache at positions
 * 0..n_ctx-1 with its first token replaced by BOS when the vocabulary adds one; the leftover
 * tokens are not used. In each chunk the logits at positions first = n_ctx/2 .. n_ctx-2 are
 * scored against the next token: nll_i = -log softmax(logits_i)[ids_{i+1}], so each chunk scores
 * n_ctx - 1 - n_ctx/2 tokens. perplexity = exp(mean nll); perplexity_stderr = ppl *
 * sqrt((mean nll² - (mean nll)²) / (count - 1)), llama.cpp's "PPL = X +/- Y". One difference:
 * llama.cpp asks for at least 2*n_ctx tokens, dashkit for one chunk (n_ctx tokens).
 *
 * Against base logits of the same chunks (a DKLOGIT1 file whose ids are the chunks' ids as
 * evaluated, BOS substitution included, rows chunk after chunk: row c*n_ctx + j = position j
 * of chunk c; `dashkit perplexity --save-logits` and `dashkit logits --ctx` write it), over
 * the same scored positions: kl_mean / kl_max of KL(base || this) per position (exact, in
 * double, from the f32 logits; llama.cpp stores base log-probs quantised to 16 bits), top1_agreement
 * (fraction of positions with the same argmax, first index on ties), ppl_base from the base
 * logits and ppl_delta = perplexity - ppl_base. */
#ifndef DK_PERPLEXITY_H
#define DK_PERPLEXITY_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "dk_common.h"
#include "forward.h"
#include "policy.h"

/* ---- DKLOGIT1 files ----
 * "DKLOGIT1" | u32 n | u32 n_vocab | i32 ids[n] | f32 logits[n][n_vocab], little-endian; row t =
 * the next-token logits after ids[0..t] (for a chunked file: within its chunk). */

/* Written to PATH.tmp.PID and renamed onto PATH by _commit, so PATH is never half-written; an
 * error or _abort removes the temporary file. */
typedef struct dk_logits_writer dk_logits_writer;
dk_status dk_logits_writer_open(const char *path, int n, int n_vocab, const int32_t *ids,
                                dk_logits_writer **out, dk_err *e);
/* Appends n_rows rows of n_vocab floats; on error w stays open (the caller aborts it). */
dk_status dk_logits_writer_rows(dk_logits_writer *w, const float *rows, int n_rows, dk_err *e);
/* Checks that all n rows were written, flushes, renames; frees w (also on error). */
dk_status dk_logits_writer_commit(dk_logits_writer *w, dk_err *e);
void dk_logits_writer_abort(dk_logits_writer *w);

/* A DKLOGIT1 file opened for reading rows on demand; the header and the file size are checked
 * (exactly 16 + 4n + 4·n·n_vocab bytes). */
typedef struct {
    FILE *f;
    char path[512];
    int n, n_vocab;
    int32_t *ids; /* (n) */
} dk_logits_file;
dk_status dk_logits_file_open(const char *path, dk_logits_file **out, dk_err *e);
/* Rows first..first+n_rows-1 into dst (n_rows, n_vocab). */
dk_status dk_logits_file_rows(const dk_logits_file *f, int first, int n_rows, float *dst, dk_err *e);
void dk_logits_file_close(dk_logits_file *f);

/* ---- chunking ---- */

/* Number of chunks of n_ctx tokens (n_tokens / n_ctx). */
int dk_ppl_n_chunks(int n_tokens, int n_ctx);
/* Ids of chunk c as evaluated: tokens[c*n_ctx ..) with out[0] = bos when bos >= 0. */
void dk_ppl_chunk_ids(const int32_t *tokens, int n_ctx, int c, int32_t bos, int32_t *out);

/* ---- scoring ---- */

typedef struct {
    double nll, nll2; /* sums over scored positions */
    int64_t count;
    bool have_base;
    double nll_base, kl_sum, kl_max;
    int64_t same_top;
} dk_ppl_acc;

typedef struct {
    double perplexity, perplexity_stderr;
    int64_t tokens_scored;
    int chunks;
    /* with base logits */
    bool have_base;
    double ppl_base, kl_mean, kl_max, top1_agreement, ppl_delta;
} dk_ppl_result;

/* Scores positions n_ctx/2 .. n_ctx-2 of one chunk: logits (n_ctx, n_vocab) of the chunk's ids;
 * base (n_ctx, n_vocab) or NULL. */
void dk_ppl_acc_chunk(dk_ppl_acc *a, const float *logits, const float *base, const int32_t *ids, int n_ctx,
                      int n_vocab);
void dk_ppl_acc_result(const dk_ppl_acc *a, int chunks, dk_ppl_result *r);

/* The whole computation: every chunk of tokens[0..n_tokens) prefilled on c (n_ctx_max >= n_ctx)
 * with policy p (NULL: dense), scored; bos >= 0 replaces each chunk's first token. base (may be
 * NULL) must hold n_vocab columns and the chunks' ids in its first n_chunk*n_ctx rows (an error
 * names the first id that differs); save (may be NULL) receives every row of every chunk. */
dk_status dk_ppl_run(dk_ctx *c, const dk_policy *p, const dk_policy_params *pp, const int32_t *tokens,
                     int n_tokens, int n_ctx, int32_t bos, const dk_logits_file *base, dk_logits_writer *save,
                     dk_ppl_result *r, dk_err *e);

#endif
