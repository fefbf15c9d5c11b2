/* cmd_logits.c — `dashkit logits` (the logits of every position into a DKLOGIT1 file) and
 * `dashkit perplexity` (llama-perplexity's chunked perplexity, KL against base logits), dense or
 * under a halting method. They share the option parsing, the model and the input reading. */
#include "cli.h"
#include "cli_util.h"
#include "forward.h"
#include "model.h"
#include "perplexity.h"
#include "policy.h"
#include "prefill.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Options of both commands (those a command does not take stay NULL / 0). */
typedef struct {
    const char *cmd, *model, *tok_path, *prompt, *file, *ids_file, *out, *method, *kl_base, *save;
    bool bos;
    long ctx;
    dk_compute compute;
    dk_cli_param_arg pa[DK_POLICY_PARAM_COUNT];
    int n_pa;
} dk_logits_args;

static void dk_logits_method_help(FILE *f) {
    fprintf(f,
            "  --compute M        f32 (default), bf16 or q8: precision of the matrix products, as for\n"
            "                     `dashkit prefill` (bf16 and q8 need native bf16 dot products)\n"
            "  --method NAME      halting method (%s; default dense), with its parameters\n"
            "                     --rho, --ls, --tau, --keep, ... as `dashkit prefill --help` lists them\n",
            dk_policy_names());
}

static void dk_logits_usage(FILE *f) {
    fprintf(f,
            "usage: dashkit logits MODEL (-p TEXT | -f FILE | --ids FILE) [--bos] --out FILE.logits\n"
            "                      [--compute f32|bf16|q8] [--method NAME [params]] [-z TOKENIZER]\n\n"
            "Writes the next-token logits of every position of the input, from one prefill, to a DKLOGIT1\n"
            "file: \"DKLOGIT1\" | u32 n | u32 n_vocab | i32 ids[n] | f32 logits[n][n_vocab] (little-endian;\n"
            "row t = the logits after ids[0..t]). The file is written beside OUT and renamed into place:\n"
            "nothing half-written is left on error. Prints tokens, n_vocab, method and out.\n\n"
            "  -p TEXT            text to tokenize\n"
            "  -f FILE            text file to tokenize\n"
            "  --ids FILE         token ids, whitespace-separated (as `dashkit tokenize` prints them)\n"
            "  --bos              prepend the BOS id\n"
            "  --out FILE         output file (required)\n"
            "  -z TOKENIZER       llama2.c tok*.bin (for .bin models)\n");
    dk_logits_method_help(f);
    fprintf(f, "  -h, --help         this help\n");
}

static void dk_perplexity_usage(FILE *f) {
    fprintf(
        f,
        "usage: dashkit perplexity MODEL -f TEXT [--ctx N] [--compute f32|bf16|q8] [--method NAME [params]]\n"
        "                          [--kl-base FILE.logits] [--save-logits FILE.logits] [-z TOKENIZER]\n\n"
        "Perplexity as llama.cpp's llama-perplexity computes it: the text is tokenized once (BOS first\n"
        "when the vocabulary adds one) and cut into chunks of N tokens (leftover tokens unused); each\n"
        "chunk is evaluated from an empty cache with its first token replaced by BOS (when the\n"
        "vocabulary adds one), and the second half of its positions (N/2 .. N-2) is scored against\n"
        "the next token. Prints perplexity, perplexity_stderr (llama.cpp's \"PPL = X +/- Y\"),\n"
        "tokens_scored and chunks (llama.cpp needs 2 chunks of text, dashkit one).\n\n"
        "  -f TEXT            text file\n"
        "  --ctx N            tokens per chunk (default 512)\n"
        "  --save-logits F    write every chunk's logits to F (DKLOGIT1; rows chunk after chunk, ids\n"
        "                     as evaluated, BOS substitution included): a base for --kl-base\n"
        "  --kl-base F        base logits of the same chunks (--save-logits of another model or\n"
        "                     method on the same text and --ctx; or `dashkit logits --bos` of a text\n"
        "                     of one chunk): adds kl_mean, kl_max (KL(base || this) per scored\n"
        "                     position), top1_agreement, ppl_base and ppl_delta = perplexity - ppl_base\n"
        "  -z TOKENIZER       llama2.c tok*.bin (for .bin models)\n");
    dk_logits_method_help(f);
    fprintf(f, "  -h, --help         this help\n");
}

/* Parses argv into a; 0 ok, 1 help printed, 2 usage error (printed). */
static int dk_logits_parse(int argc, char **argv, bool ppl, dk_logits_args *a) {
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            (ppl ? dk_perplexity_usage : dk_logits_usage)(stdout);
            return 1;
        }
        if (!ppl && !strcmp(s, "--bos")) {
            a->bos = true;
            continue;
        }
        const dk_policy_param *pd = !strncmp(s, "--", 2) ? dk_policy_param_find(s + 2) : NULL;
        const char **dst = NULL;
        if (!strcmp(s, "-z")) dst = &a->tok_path;
        else if (!strcmp(s, "-f")) dst = &a->file;
        else if (!strcmp(s, "--method")) dst = &a->method;
        else if (!ppl && !strcmp(s, "-p")) dst = &a->prompt;
        else if (!ppl && !strcmp(s, "--ids")) dst = &a->ids_file;
        else if (!ppl && !strcmp(s, "--out")) dst = &a->out;
        else if (ppl && !strcmp(s, "--kl-base")) dst = &a->kl_base;
        else if (ppl && !strcmp(s, "--save-logits")) dst = &a->save;
        bool is_ctx = ppl && !strcmp(s, "--ctx"), is_compute = !strcmp(s, "--compute");
        if ((dst || pd || is_ctx || is_compute) && i + 1 >= argc) {
            fprintf(stderr, "dashkit %s: option %s needs a value\n", a->cmd, dk_cli_esc(s));
            return 2;
        }
        if (dst) *dst = argv[++i];
        else if (pd) {
            if (!dk_cli_param_arg_add(a->cmd, s, pd, argv[++i], a->pa, &a->n_pa)) return 2;
        } else if (is_compute) {
            if (!dk_cli_compute_arg(a->cmd, argv[++i], &a->compute)) return 2;
        } else if (is_ctx) {
            if (!dk_cli_parse_long(a->cmd, "--ctx", argv[++i], 4, 1L << 20, &a->ctx)) return 2;
        } else if (!dk_cli_positional(a->cmd, s, &a->model)) return 2;
    }
    if (!a->model) {
        (ppl ? dk_perplexity_usage : dk_logits_usage)(stderr);
        return 2;
    }
    if (ppl && !a->file) {
        fprintf(stderr, "dashkit %s: missing -f TEXT\n", a->cmd);
        return 2;
    }
    if (!ppl && (!!a->prompt + !!a->file + !!a->ids_file) != 1) {
        fprintf(stderr, "dashkit %s: give exactly one of -p TEXT, -f FILE, --ids FILE\n", a->cmd);
        return 2;
    }
    if (!ppl && !a->out) {
        fprintf(stderr, "dashkit %s: missing --out FILE\n", a->cmd);
        return 2;
    }
    return 0;
}

/* --ids FILE: whitespace-separated decimal ids, each in [0, n_vocab). */
static int32_t *dk_logits_read_ids(const char *path, int n_vocab, int *n_out, dk_err *e) {
    size_t len;
    char *s = dk_cli_read_file(path, &len, e);
    if (!s) return NULL;
    int cap = 256, n = 0;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    const char *p = s;
    while (ids) {
        while (isspace((unsigned char)*p)) p++;
        if (!*p) break;
        const char *tok = p;
        while (*p && !isspace((unsigned char)*p)) p++;
        char *end;
        errno = 0;
        long v = strtol(tok, &end, 10);
        if (end != p || errno || v < 0 || v >= n_vocab || !isdigit((unsigned char)tok[0])) {
            dk_fail(e, DK_ERR_FORMAT, "%s: id %d '%.*s' is not a token id in [0, %d)", path, n,
                    (int)(p - tok > 40 ? 40 : p - tok), tok, n_vocab);
            free(ids);
            free(s);
            return NULL;
        }
        if (n == cap) {
            int32_t *r = realloc(ids, (size_t)(cap *= 2) * sizeof *ids);
            if (!r) {
                free(ids);
                ids = NULL;
                break;
            }
            ids = r;
        }
        ids[n++] = (int32_t)v;
    }
    free(s);
    if (!ids) {
        dk_fail(e, DK_ERR_NOMEM, "%s: out of memory", path);
        return NULL;
    }
    if (n == 0) {
        free(ids);
        dk_fail(e, DK_ERR_FORMAT, "%s: no token ids", path);
        return NULL;
    }
    *n_out = n;
    return ids;
}

/* Shared set-up: method, model, ids of the input (logits: -p/-f/--ids with --bos; perplexity: -f
 * with the vocabulary's BOS rule). Returns the exit status on failure (error printed), 0 ok. */
static int dk_logits_setup(dk_logits_args *a, bool ppl, const dk_policy **pol, dk_policy_params *pp,
                           dk_model **m, int32_t **ids, int *n_ids) {
    if (!dk_cli_policy_resolve(a->cmd, a->method ? a->method : "dense", a->pa, a->n_pa, pol, pp)) return 2;
    dk_err e = {{0}};
    if (dk_model_load(a->model, a->tok_path, m, &e)) {
        fprintf(stderr, "dashkit %s: %s\n", a->cmd, e.msg);
        return 1;
    }
    if (dk_policy_params_validate(*pol, pp, (*m)->cfg.n_layer, &e)) {
        fprintf(stderr, "dashkit %s: %s\n", a->cmd, e.msg);
        return 2;
    }
    const dk_tokenizer *tok = NULL;
    bool need_tok = !a->ids_file || a->bos;
    if (need_tok && dk_model_tokenizer(*m, &tok, &e)) {
        fprintf(stderr, "dashkit %s: %s\n", a->cmd, e.msg);
        return 1;
    }
    if (a->ids_file) {
        int32_t *raw = dk_logits_read_ids(a->ids_file, (*m)->cfg.n_vocab, n_ids, &e);
        if (!raw) {
            fprintf(stderr, "dashkit %s: %s\n", a->cmd, e.msg);
            return 1;
        }
        if (!a->bos) {
            *ids = raw;
            return 0;
        }
        int bos = dk_tokenizer_bos(tok);
        if (bos < 0) {
            free(raw);
            fprintf(stderr, "dashkit %s: --bos: the vocabulary has no BOS token\n", a->cmd);
            return 1;
        }
        if (!(*ids = malloc(((size_t)*n_ids + 1) * sizeof **ids))) {
            free(raw);
            fprintf(stderr, "dashkit %s: out of memory\n", a->cmd);
            return 1;
        }
        (*ids)[0] = bos;
        memcpy(*ids + 1, raw, (size_t)*n_ids * sizeof *raw);
        (*n_ids)++;
        free(raw);
        return 0;
    }
    size_t len = a->prompt ? strlen(a->prompt) : 0;
    char *text = a->prompt ? NULL : dk_cli_read_file(a->file, &len, &e);
    if (!a->prompt && !text) {
        fprintf(stderr, "dashkit %s: %s\n", a->cmd, e.msg);
        return 1;
    }
    bool add_bos = ppl ? dk_tokenizer_add_bos_default(tok) : a->bos;
    dk_status st = dk_tokenizer_encode(tok, text ? text : a->prompt, len, add_bos, ids, n_ids, &e);
    free(text);
    if (st) {
        fprintf(stderr, "dashkit %s: %s\n", a->cmd, e.msg);
        return 1;
    }
    if (*n_ids == 0) {
        fprintf(stderr, "dashkit %s: the input tokenizes to no tokens\n", a->cmd);
        return 1;
    }
    return 0;
}

/* The training-context rule (dk_model_check_context) for one prefill of n tokens: a warning past
 * n_ctx_train, refused (exit 2) past DK_MODEL_MAX_CTX_FACTOR times it. Returns 0 to go on. */
static int dk_logits_check_ctx(const char *cmd, const dk_model *m, int n) {
    dk_err e = {{0}};
    int beyond = 0;
    if (dk_model_check_context(m, n, &beyond, &e)) {
        fprintf(stderr, "dashkit %s: %s\n", cmd, e.msg);
        return 2;
    }
    if (beyond)
        fprintf(
            stderr,
            "dashkit %s: warning: %d tokens per prefill exceed the model's training context of %d tokens\n",
            cmd, n, m->cfg.n_ctx_train);
    return 0;
}

/* Commits the writer *w (none: nothing to do) and forgets it; false, the error printed, when the
 * commit fails. */
static bool dk_logits_commit(const char *cmd, dk_logits_writer **w, dk_err *e) {
    if (!*w) return true;
    dk_status st = dk_logits_writer_commit(*w, e);
    *w = NULL;
    if (st) fprintf(stderr, "dashkit %s: %s\n", cmd, e->msg);
    return !st;
}

int dk_cmd_logits(int argc, char **argv) {
    dk_logits_args a = {.cmd = "logits"};
    int rc = dk_logits_parse(argc, argv, false, &a);
    if (rc) return rc == 1 ? 0 : rc;
    const dk_policy *pol;
    dk_policy_params pp;
    dk_model *m = NULL;
    int32_t *ids = NULL;
    int n = 0;
    dk_ctx *c = NULL;
    float *lg = NULL;
    dk_logits_writer *w = NULL;
    dk_err e = {{0}};
    if ((rc = dk_logits_setup(&a, false, &pol, &pp, &m, &ids, &n)) || (rc = dk_logits_check_ctx(a.cmd, m, n)))
        goto done;
    rc = 1;
    int V = m->cfg.n_vocab;
    if (!(lg = malloc((size_t)n * (size_t)V * sizeof *lg))) {
        fprintf(stderr, "dashkit logits: out of memory for %d x %d logits\n", n, V);
        goto done;
    }
    if (dk_ctx_create(m, n, &c, &e) || dk_ctx_set_compute(c, a.compute, &e) ||
        dk_prefill_all_logits(c, pol, &pp, ids, n, lg, &e) ||
        dk_logits_writer_open(a.out, n, V, ids, &w, &e) || dk_logits_writer_rows(w, lg, n, &e)) {
        fprintf(stderr, "dashkit logits: %s\n", e.msg);
        goto done;
    }
    if (!dk_logits_commit(a.cmd, &w, &e)) goto done;
    char params[512];
    dk_policy_params_format(pol, &pp, params, sizeof params);
    printf("tokens: %d\nn_vocab: %d\ncompute: %s\nmethod: %s\nparams: %s\nout: %s\n", n, V,
           dk_compute_name(a.compute), pol->name, params, a.out);
    rc = 0;
done:
    dk_logits_writer_abort(w);
    free(lg);
    free(ids);
    dk_ctx_free(c);
    dk_model_free(m);
    return rc;
}

int dk_cmd_perplexity(int argc, char **argv) {
    dk_logits_args a = {.cmd = "perplexity", .ctx = 512};
    int rc = dk_logits_parse(argc, argv, true, &a);
    if (rc) return rc == 1 ? 0 : rc;
    const dk_policy *pol;
    dk_policy_params pp;
    dk_model *m = NULL;
    int32_t *tokens = NULL, *eval_ids = NULL;
    int n = 0;
    dk_ctx *c = NULL;
    dk_logits_file *base = NULL;
    dk_logits_writer *w = NULL;
    dk_err e = {{0}};
    if ((rc = dk_logits_setup(&a, true, &pol, &pp, &m, &tokens, &n))) goto done;
    rc = 1;
    int n_ctx = (int)a.ctx, n_chunk = dk_ppl_n_chunks(n, n_ctx);
    const dk_tokenizer *tok = m->tokenizer;
    int32_t bos = dk_tokenizer_add_bos_default(tok) ? dk_tokenizer_bos(tok) : -1;
    if (n_chunk < 1) {
        fprintf(stderr, "dashkit perplexity: %s tokenizes to %d tokens, fewer than one chunk of --ctx %d\n",
                dk_cli_esc(a.file), n, n_ctx);
        goto done;
    }
    if ((rc = dk_logits_check_ctx(a.cmd, m, n_ctx))) goto done;
    rc = 1;
    if (a.kl_base && dk_logits_file_open(a.kl_base, &base, &e)) {
        fprintf(stderr, "dashkit perplexity: %s\n", e.msg);
        goto done;
    }
    if (a.save) {
        if (!(eval_ids = malloc((size_t)n_chunk * (size_t)n_ctx * sizeof *eval_ids))) {
            fprintf(stderr, "dashkit perplexity: out of memory\n");
            goto done;
        }
        for (int ch = 0; ch < n_chunk; ch++)
            dk_ppl_chunk_ids(tokens, n_ctx, ch, bos, eval_ids + (size_t)ch * n_ctx);
        if (dk_logits_writer_open(a.save, n_chunk * n_ctx, m->cfg.n_vocab, eval_ids, &w, &e)) {
            fprintf(stderr, "dashkit perplexity: %s\n", e.msg);
            goto done;
        }
    }
    dk_ppl_result r;
    if (dk_ctx_create(m, n_ctx, &c, &e) || dk_ctx_set_compute(c, a.compute, &e) ||
        dk_ppl_run(c, pol, &pp, tokens, n, n_ctx, bos, base, w, &r, &e)) {
        fprintf(stderr, "dashkit perplexity: %s\n", e.msg);
        goto done;
    }
    if (!dk_logits_commit(a.cmd, &w, &e)) goto done;
    char params[512];
    dk_policy_params_format(pol, &pp, params, sizeof params);
    printf("compute: %s\nmethod: %s\nparams: %s\nctx: %d\ntokens: %d\n", dk_compute_name(a.compute),
           pol->name, params, n_ctx, n);
    printf("chunks: %d\ntokens_scored: %lld\nperplexity: %.6f\nperplexity_stderr: %.6f\n", r.chunks,
           (long long)r.tokens_scored, r.perplexity, r.perplexity_stderr);
    if (r.have_base)
        printf("ppl_base: %.6f\nppl_delta: %.6f\nkl_mean: %.6g\nkl_max: %.6g\ntop1_agreement: %.6f\n",
               r.ppl_base, r.ppl_delta, r.kl_mean, r.kl_max, r.top1_agreement);
    if (a.save) printf("saved_logits: %s\n", a.save);
    rc = 0;
done:
    dk_logits_writer_abort(w);
    dk_logits_file_close(base);
    free(tokens);
    free(eval_ids);
    dk_ctx_free(c);
    dk_model_free(m);
    return rc;
}
