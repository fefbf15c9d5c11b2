/* sample.c — tokenizer adapters, samples, prompt tokens with middle truncation. */
#include "sample.h"
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

/* ---- tokenizer interface ---- */

static dk_status tok_engine_encode(void *user, const char *text, size_t len, int add_bos, int32_t **ids,
                                   size_t *n, dk_err *e) {
    int k = 0;
    dk_status st = dk_tokenizer_encode((const dk_tokenizer *)user, text, len, add_bos != 0, ids, &k, e);
    *n = st ? 0 : (size_t)k;
    return st;
}

dk_tok_if dk_tok_if_engine(const struct dk_tokenizer *t) { return (dk_tok_if){tok_engine_encode, (void *)t}; }

static dk_status tok_bytes_encode(void *user, const char *text, size_t len, int add_bos, int32_t **ids,
                                  size_t *n, dk_err *e) {
    (void)user;
    int32_t *v = malloc((len + 2) * sizeof(int32_t));
    if (!v) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    size_t k = 0;
    if (add_bos) v[k++] = 256;
    for (size_t i = 0; i < len; i++) v[k++] = (unsigned char)text[i];
    *ids = v;
    *n = k;
    return DK_OK;
}

dk_tok_if dk_tok_if_bytes(void) { return (dk_tok_if){tok_bytes_encode, NULL}; }

long dk_tok_count(const dk_tok_if *tok, const char *text, size_t len, dk_err *e) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (tok->encode(tok->user, text, len, 0, &ids, &n, e) != DK_OK) return -1;
    free(ids);
    return (long)n;
}

/* ---- samples ---- */

static void free_strv(char **v, int n) {
    if (!v) return;
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

void dk_sample_clear(dk_sample *s) {
    DK_FREE_ALL(s->id, s->context, s->question, s->context_key);
    free_strv(s->answers, s->n_answers);
    free_strv(s->all_classes, s->n_classes);
    memset(s, 0, sizeof *s);
}

void dk_sample_set_free(dk_sample_set *set) {
    for (int i = 0; i < set->n; i++) dk_sample_clear(&set->s[i]);
    free(set->s);
    set->s = NULL;
    set->n = 0;
}

/* ---- prompt tokens ---- */

dk_status dk_sample_build_prompt(const dk_sample *s, const dk_tok_if *tok, size_t budget, int add_bos,
                                 dk_prompt *out, dk_err *e) {
    memset(out, 0, sizeof *out);
    size_t lc = strlen(s->context), lq = strlen(s->question);
    char *full = malloc(lc + lq + 1);
    if (!full) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    memcpy(full, s->context, lc);
    memcpy(full + lc, s->question, lq + 1);
    int32_t *ids = NULL, *cids = NULL;
    size_t n = 0, nc = 0;
    dk_status st = tok->encode(tok->user, full, lc + lq, add_bos, &ids, &n, e);
    free(full);
    if (st) return st;
    if ((st = tok->encode(tok->user, s->context, lc, add_bos, &cids, &nc, e))) {
        free(ids);
        return st;
    }
    size_t split = 0;
    while (split < n && split < nc && ids[split] == cids[split]) split++;
    free(cids);
    out->n_full = n;
    out->n_context = split;
    if (budget > 0 && n > budget) {
        size_t half = budget / 2, tail = n - half; /* keep ids[0..half) and ids[tail..n) */
        memmove(ids + half, ids + tail, half * sizeof(int32_t));
        out->n_context = (split < half ? split : half) + (split > tail ? split - tail : 0);
        n = 2 * half;
    }
    out->ids = ids;
    out->n = n;
    out->n_dropped = out->n_full - n;
    return DK_OK;
}

void dk_prompt_free(dk_prompt *p) {
    free(p->ids);
    memset(p, 0, sizeof *p);
}
