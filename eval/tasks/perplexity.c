/* perplexity.c — llama-perplexity's chunked perplexity, KL against base logits, DKLOGIT1 files
 * (see perplexity.h). */
#include "perplexity.h"
#include "metrics.h"
#include "prefill.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "DKLOGIT1 files are little-endian; this reader/writer assumes a little-endian host"
#endif

#define DK_LOGITS_MAGIC "DKLOGIT1"
#define DK_LOGITS_HEADER 16

/* ---- writer ---- */

struct dk_logits_writer {
    FILE *f;
    char *path, *tmp;
    int n, n_vocab, rows;
};

void dk_logits_writer_abort(dk_logits_writer *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    if (w->tmp) unlink(w->tmp);
    free(w->path);
    free(w->tmp);
    free(w);
}

/* An I/O error naming the file; w is aborted (freed, the temporary file removed) when `drop`. */
static dk_status dk_logits_writer_fail(dk_logits_writer *w, bool drop, dk_err *e, const char *what) {
    dk_status st = dk_fail(e, DK_ERR_IO, "%s: %s: %s", w->path, what, strerror(errno ? errno : EIO));
    if (drop) dk_logits_writer_abort(w);
    return st;
}

dk_status dk_logits_writer_open(const char *path, int n, int n_vocab, const int32_t *ids,
                                dk_logits_writer **out, dk_err *e) {
    *out = NULL;
    if (n <= 0 || n_vocab <= 0)
        return dk_fail(e, DK_ERR_ARG, "%s: nothing to write (%d rows of %d logits)", path, n, n_vocab);
    dk_logits_writer *w = calloc(1, sizeof *w);
    size_t pl = strlen(path);
    if (!w || !(w->path = strdup(path)) || !(w->tmp = malloc(pl + 32))) {
        if (w) {
            free(w->path);
            free(w);
        }
        return dk_fail(e, DK_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(w->tmp, pl + 32, "%s.tmp.%ld", path, (long)getpid());
    w->n = n;
    w->n_vocab = n_vocab;
    errno = 0;
    if (!(w->f = fopen(w->tmp, "wb"))) {
        dk_status st = dk_fail(e, DK_ERR_IO, "%s: cannot create: %s", w->tmp, strerror(errno));
        free(w->tmp);
        w->tmp = NULL; /* nothing to remove */
        dk_logits_writer_abort(w);
        return st;
    }
    uint32_t hdr[2] = {(uint32_t)n, (uint32_t)n_vocab};
    if (fwrite(DK_LOGITS_MAGIC, 1, 8, w->f) != 8 || fwrite(hdr, 4, 2, w->f) != 2 ||
        fwrite(ids, 4, (size_t)n, w->f) != (size_t)n)
        return dk_logits_writer_fail(w, true, e, "write error");
    *out = w;
    return DK_OK;
}

dk_status dk_logits_writer_rows(dk_logits_writer *w, const float *rows, int n_rows, dk_err *e) {
    if (n_rows < 0 || w->rows + n_rows > w->n)
        return dk_fail(e, DK_ERR_ARG, "%s: %d more rows than the %d declared", w->path,
                       w->rows + n_rows - w->n, w->n);
    size_t k = (size_t)n_rows * (size_t)w->n_vocab;
    errno = 0;
    if (fwrite(rows, sizeof *rows, k, w->f) != k) return dk_logits_writer_fail(w, false, e, "write error");
    w->rows += n_rows;
    return DK_OK;
}

dk_status dk_logits_writer_commit(dk_logits_writer *w, dk_err *e) {
    if (w->rows != w->n) {
        dk_status st = dk_fail(e, DK_ERR_ARG, "%s: %d of %d rows written", w->path, w->rows, w->n);
        dk_logits_writer_abort(w);
        return st;
    }
    errno = 0;
    if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0)
        return dk_logits_writer_fail(w, true, e, "write error");
    int rc = fclose(w->f);
    w->f = NULL;
    if (rc != 0) return dk_logits_writer_fail(w, true, e, "write error");
    if (rename(w->tmp, w->path) != 0)
        return dk_logits_writer_fail(w, true, e, "cannot rename the temporary file into place");
    free(w->tmp);
    w->tmp = NULL;
    dk_logits_writer_abort(w); /* frees; nothing left to remove */
    return DK_OK;
}

/* ---- reader ---- */

void dk_logits_file_close(dk_logits_file *f) {
    if (!f) return;
    if (f->f) fclose(f->f);
    free(f->ids);
    free(f);
}

dk_status dk_logits_file_open(const char *path, dk_logits_file **out, dk_err *e) {
    *out = NULL;
    dk_logits_file *f = calloc(1, sizeof *f);
    if (!f) return dk_fail(e, DK_ERR_NOMEM, "%s: out of memory", path);
    snprintf(f->path, sizeof f->path, "%s", path);
    dk_status st = DK_OK;
    struct stat sb;
    char magic[8];
    uint32_t hdr[2];
    if (!(f->f = fopen(path, "rb")) || fstat(fileno(f->f), &sb) != 0) {
        st = dk_fail(e, DK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    } else if (fread(magic, 1, 8, f->f) != 8 || memcmp(magic, DK_LOGITS_MAGIC, 8)) {
        st = dk_fail(e, DK_ERR_FORMAT, "%s: not a DKLOGIT1 logits file (bad magic)", path);
    } else if (fread(hdr, 4, 2, f->f) != 2) {
        st = dk_fail(e, DK_ERR_FORMAT, "%s: truncated DKLOGIT1 header", path);
    } else if (hdr[0] == 0 || hdr[0] > INT32_MAX / 4 || hdr[1] == 0 || hdr[1] > (1u << 24)) {
        st = dk_fail(e, DK_ERR_FORMAT, "%s: DKLOGIT1 header n %u, n_vocab %u out of range", path, hdr[0],
                     hdr[1]);
    } else {
        uint64_t want = DK_LOGITS_HEADER + 4ull * hdr[0] + 4ull * hdr[0] * hdr[1];
        if ((uint64_t)sb.st_size != want)
            st = dk_fail(e, DK_ERR_FORMAT,
                         "%s: %lld bytes, but a DKLOGIT1 file of %u rows of %u logits has %llu", path,
                         (long long)sb.st_size, hdr[0], hdr[1], (unsigned long long)want);
    }
    if (!st) {
        f->n = (int)hdr[0];
        f->n_vocab = (int)hdr[1];
        if (!(f->ids = malloc((size_t)f->n * sizeof *f->ids)))
            st = dk_fail(e, DK_ERR_NOMEM, "%s: out of memory", path);
        else if (fread(f->ids, 4, (size_t)f->n, f->f) != (size_t)f->n)
            st = dk_fail(e, DK_ERR_IO, "%s: read error", path);
    }
    if (st) {
        dk_logits_file_close(f);
        return st;
    }
    *out = f;
    return DK_OK;
}

dk_status dk_logits_file_rows(const dk_logits_file *f, int first, int n_rows, float *dst, dk_err *e) {
    if (first < 0 || n_rows < 0 || first > f->n - n_rows)
        return dk_fail(e, DK_ERR_ARG, "%s: rows %d..%d are outside the file's %d", f->path, first,
                       first + n_rows - 1, f->n);
    off_t off = (off_t)DK_LOGITS_HEADER + 4 * (off_t)f->n + 4 * (off_t)first * f->n_vocab;
    size_t k = (size_t)n_rows * (size_t)f->n_vocab;
    if (fseeko(f->f, off, SEEK_SET) != 0 || fread(dst, sizeof *dst, k, f->f) != k)
        return dk_fail(e, DK_ERR_IO, "%s: read error at row %d", f->path, first);
    return DK_OK;
}

/* ---- chunking and scoring ---- */

int dk_ppl_n_chunks(int n_tokens, int n_ctx) { return n_ctx > 0 && n_tokens > 0 ? n_tokens / n_ctx : 0; }

void dk_ppl_chunk_ids(const int32_t *tokens, int n_ctx, int c, int32_t bos, int32_t *out) {
    memcpy(out, tokens + (size_t)c * n_ctx, (size_t)n_ctx * sizeof *out);
    if (bos >= 0) out[0] = bos;
}

/* -log softmax(x)[tok] in double */
static double dk_ppl_nll(const float *x, int n, int32_t tok) {
    float mx = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > mx) mx = x[i];
    double s = 0.0;
    for (int i = 0; i < n; i++) s += exp((double)x[i] - mx);
    return (double)mx + log(s) - (double)x[tok];
}

void dk_ppl_acc_chunk(dk_ppl_acc *a, const float *logits, const float *base, const int32_t *ids, int n_ctx,
                      int n_vocab) {
    for (int i = n_ctx / 2; i < n_ctx - 1; i++) {
        const float *row = logits + (size_t)i * n_vocab;
        double v = dk_ppl_nll(row, n_vocab, ids[i + 1]);
        a->nll += v;
        a->nll2 += v * v;
        a->count++;
        if (!base) continue;
        const float *brow = base + (size_t)i * n_vocab;
        a->have_base = true;
        a->nll_base += dk_ppl_nll(brow, n_vocab, ids[i + 1]);
        double kl = dk_metric_kl_logits(brow, row, n_vocab);
        a->kl_sum += kl;
        if (kl > a->kl_max) a->kl_max = kl;
        a->same_top += dk_metric_top1_agree(brow, row, n_vocab);
    }
}

void dk_ppl_acc_result(const dk_ppl_acc *a, int chunks, dk_ppl_result *r) {
    memset(r, 0, sizeof *r);
    r->chunks = chunks;
    r->tokens_scored = a->count;
    if (a->count <= 0) {
        r->perplexity = r->perplexity_stderr = NAN;
        return;
    }
    double n = (double)a->count, m = a->nll / n, var = a->nll2 / n - m * m;
    r->perplexity = exp(m);
    r->perplexity_stderr = a->count > 1 && var > 0 ? r->perplexity * sqrt(var / (n - 1)) : 0.0;
    if (!a->have_base) return;
    r->have_base = true;
    r->ppl_base = exp(a->nll_base / n);
    r->ppl_delta = r->perplexity - r->ppl_base;
    r->kl_mean = a->kl_sum / n;
    r->kl_max = a->kl_max;
    r->top1_agreement = (double)a->same_top / n;
}

dk_status dk_ppl_run(dk_ctx *c, const dk_policy *p, const dk_policy_params *pp, const int32_t *tokens,
                     int n_tokens, int n_ctx, int32_t bos, const dk_logits_file *base, dk_logits_writer *save,
                     dk_ppl_result *r, dk_err *e) {
    memset(r, 0, sizeof *r);
    int V = dk_ctx_model(c)->cfg.n_vocab;
    int n_chunk = dk_ppl_n_chunks(n_tokens, n_ctx);
    if (n_ctx < 4) return dk_fail(e, DK_ERR_ARG, "--ctx %d: a chunk needs at least 4 tokens", n_ctx);
    if (n_chunk < 1)
        return dk_fail(e, DK_ERR_ARG, "the text tokenizes to %d tokens, fewer than one chunk of --ctx %d",
                       n_tokens, n_ctx);
    if (n_ctx > dk_ctx_n_ctx_max(c))
        return dk_fail(e, DK_ERR_ARG, "--ctx %d exceeds the run state's %d", n_ctx, dk_ctx_n_ctx_max(c));
    if (base && base->n_vocab != V)
        return dk_fail(e, DK_ERR_ARG, "%s: n_vocab %d, the model has %d", base->path, base->n_vocab, V);
    if (base && base->n < n_chunk * n_ctx)
        return dk_fail(e, DK_ERR_ARG, "%s: %d rows, the %d chunks of %d tokens need %d", base->path, base->n,
                       n_chunk, n_ctx, n_chunk * n_ctx);
    size_t rows = (size_t)n_ctx * (size_t)V;
    float *lg = malloc(rows * sizeof *lg), *bl = base ? malloc(rows * sizeof *bl) : NULL;
    int32_t *ids = malloc((size_t)n_ctx * sizeof *ids);
    dk_status st = DK_OK;
    if (!lg || !ids || (base && !bl)) {
        st = dk_fail(e, DK_ERR_NOMEM, "out of memory for %d x %d logits", n_ctx, V);
        goto done;
    }
    dk_ppl_acc acc = {0};
    for (int ch = 0; ch < n_chunk && !st; ch++) {
        dk_ppl_chunk_ids(tokens, n_ctx, ch, bos, ids);
        if (base) {
            for (int j = 0; j < n_ctx; j++) {
                if (base->ids[ch * n_ctx + j] != ids[j]) {
                    st = dk_fail(e, DK_ERR_ARG,
                                 "%s: id %d at row %d, but chunk %d position %d evaluates id %d (other text, "
                                 "--ctx or BOS?)",
                                 base->path, base->ids[ch * n_ctx + j], ch * n_ctx + j, ch, j, ids[j]);
                    goto done;
                }
            }
            if ((st = dk_logits_file_rows(base, ch * n_ctx, n_ctx, bl, e))) goto done;
        }
        if ((st = dk_prefill_all_logits(c, p, pp, ids, n_ctx, lg, e))) goto done;
        if (save && (st = dk_logits_writer_rows(save, lg, n_ctx, e))) goto done;
        dk_ppl_acc_chunk(&acc, lg, bl, ids, n_ctx, V);
    }
    dk_ppl_acc_result(&acc, n_chunk, r);
done:
    free(lg);
    free(bl);
    free(ids);
    return st;
}
