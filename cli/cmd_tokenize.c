/* cmd_tokenize.c — `dashkit tokenize MODEL [-z TOKENIZER] [--bos] TEXT...` prints the token ids,
 * space-separated, on one line; `--decode ID...` prints the detokenised text instead. */
#include "cli.h"
#include "cli_util.h"
#include "model.h"
#include "tokenizer.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void dk_tokenize_usage(FILE *f) {
    fprintf(f,
            "usage: dashkit tokenize MODEL [-z TOKENIZER] [--bos] [--remove-extra-whitespaces] TEXT...\n"
            "       dashkit tokenize MODEL [-z TOKENIZER] -f FILE\n"
            "       dashkit tokenize MODEL [-z TOKENIZER] --decode ID...\n"
            "\n"
            "Encodes TEXT (several arguments are joined with single spaces) with the model's tokenizer and\n"
            "prints the ids space-separated on one line. MODEL is a GGUF (its embedded tokenizer, whatever\n"
            "its architecture; vocab-only files too) or a llama2.c checkpoint (needs -z).\n"
            "\n"
            "options:\n"
            "  -z, --tokenizer PATH         llama2.c tok*.bin tokenizer (overrides a GGUF's own)\n"
            "  -f, --file FILE              encode the bytes of FILE ('-' = stdin) instead of TEXT\n"
            "      --bos                    prepend the BOS id\n"
            "      --remove-extra-whitespaces  collapse runs of spaces and strip leading/trailing ones\n"
            "                               before encoding (SentencePiece normaliser flag; off as in\n"
            "                               llama.cpp and llama2.c)\n"
            "      --decode                 the arguments are ids: print their text (SentencePiece: control\n"
            "                               ids skipped, leading space dropped; byte-level BPE: bytes\n"
            "                               restored, special tokens as their text)\n"
            "      --pieces                 print one 'id<TAB>piece' line per token instead\n"
            "  -h, --help                   this help\n");
}

typedef struct {
    const char *tok_path, *file;
    bool bos, decode, pieces, rm_ws;
    const char **pos; /* (n_pos) MODEL, then TEXT... or ID... */
    int n_pos;
    int32_t *ids; /* (n_ids) --decode's ids */
    int n_ids;
} dk_tokenize_args;

static int dk_tokenize_usage_error(dk_tokenize_args *o, const char *fmt, const char *arg) {
    fprintf(stderr, "dashkit tokenize: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    free(o->ids);
    free(o->pos);
    return 2;
}

/* -1 when the options are good (ids validated before the model loads: a typo is a usage error);
 * else the exit status. */
static int dk_tokenize_parse(int argc, char **argv, dk_tokenize_args *o) {
    bool end_opts = false;
    *o = (dk_tokenize_args){.pos = calloc((size_t)argc + 1, sizeof *o->pos)};
    if (!o->pos) {
        fprintf(stderr, "dashkit tokenize: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (end_opts || a[0] != '-' || !strcmp(a, "-")) {
            o->pos[o->n_pos++] = a;
            continue;
        }
        if (!strcmp(a, "--")) end_opts = true;
        else if (dk_cli_help(a, dk_tokenize_usage)) {
            free(o->pos);
            return 0;
        } else if (!strcmp(a, "--bos")) o->bos = true;
        else if (!strcmp(a, "--decode")) o->decode = true;
        else if (!strcmp(a, "--pieces")) o->pieces = true;
        else if (!strcmp(a, "--remove-extra-whitespaces")) o->rm_ws = true;
        else if (!strcmp(a, "-z") || !strcmp(a, "--tokenizer") || !strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (i + 1 >= argc) return dk_tokenize_usage_error(o, "option %s needs a value", a);
            bool is_tok = !strcmp(a, "-z") || !strcmp(a, "--tokenizer");
            if (is_tok) o->tok_path = argv[++i];
            else o->file = argv[++i];
        } else
            return dk_tokenize_usage_error(o, "unknown option '%s' (see 'dashkit tokenize --help')",
                                           dk_cli_esc(a));
    }
    if (o->n_pos < 1)
        return dk_tokenize_usage_error(o, "%s", "missing MODEL (see 'dashkit tokenize --help')");
    if (o->decode ? (o->n_pos < 2 || o->file) : (o->file ? o->n_pos != 1 : o->n_pos < 2))
        return dk_tokenize_usage_error(
            o, "%s",
            o->decode
                ? (o->file ? "--decode takes ids as arguments, not -f" : "--decode needs at least one ID")
                : (o->file ? "give either TEXT or -f FILE, not both" : "missing TEXT (or -f FILE)"));
    o->n_ids = o->decode ? o->n_pos - 1 : 0;
    o->ids = o->decode ? malloc(sizeof(int32_t) * (size_t)o->n_ids) : NULL;
    for (int i = 0; i < o->n_ids; i++) {
        char *end;
        errno = 0;
        long v = strtol(o->pos[1 + i], &end, 10);
        if (end == o->pos[1 + i] || *end || errno || v < 0 || v > INT32_MAX)
            return dk_tokenize_usage_error(o, "--decode: '%s' is not a token id (non-negative integer)",
                                           dk_cli_esc(o->pos[1 + i]));
        o->ids[i] = (int32_t)v;
    }
    return -1;
}

/* --decode: the ids' text, or with --pieces one 'id<TAB>piece' line each. */
static int dk_tokenize_decode(const dk_tokenizer *tk, const dk_tokenize_args *o) {
    if (o->pieces) {
        for (int i = 0; i < o->n_ids; i++) {
            size_t L;
            const char *p = dk_tokenizer_piece(tk, o->ids[i], &L);
            if (!p) {
                fprintf(stderr, "dashkit tokenize: token id %d is out of range [0, %d)\n", o->ids[i],
                        dk_tokenizer_n_vocab(tk));
                return 1;
            }
            printf("%d\t%.*s\n", o->ids[i], (int)L, p);
        }
        return 0;
    }
    char *out = NULL;
    size_t len = 0;
    dk_err e = {{0}};
    if (dk_tokenizer_decode(tk, o->ids, o->n_ids, &out, &len, &e) != DK_OK) {
        fprintf(stderr, "dashkit tokenize: %s\n", e.msg);
        return 1;
    }
    fwrite(out, 1, len, stdout);
    fputc('\n', stdout);
    free(out);
    return 0;
}

/* The text to encode: the bytes of -f FILE, or the TEXT arguments joined by single spaces. */
static char *dk_tokenize_text(const dk_tokenize_args *o, size_t *len) {
    dk_err e = {{0}};
    if (o->file) {
        char *text = dk_cli_read_file(o->file, len, &e);
        if (!text) fprintf(stderr, "dashkit tokenize: %s\n", e.msg);
        return text;
    }
    dk_strbuf b = {0};
    for (int i = 1; i < o->n_pos; i++)
        if (!(i > 1 ? dk_strbuf_add(&b, " ", 1) : dk_strbuf_add(&b, "", 0)) || !dk_strbuf_adds(&b, o->pos[i]))
            break;
    if (b.oom) {
        dk_strbuf_free(&b);
        fprintf(stderr, "dashkit tokenize: out of memory\n");
        return NULL;
    }
    *len = b.n;
    return b.s;
}

static int dk_tokenize_encode(const dk_tokenizer *tk, const dk_tokenize_args *o) {
    size_t len = 0;
    char *text = dk_tokenize_text(o, &len);
    if (!text) return 1;
    int32_t *enc = NULL;
    int n = 0;
    dk_err e = {{0}};
    dk_status st = dk_tokenizer_encode(tk, text, len, o->bos, &enc, &n, &e);
    free(text);
    if (st != DK_OK) {
        fprintf(stderr, "dashkit tokenize: %s\n", e.msg);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        if (o->pieces) {
            size_t L;
            const char *p = dk_tokenizer_piece(tk, enc[i], &L);
            printf("%d\t%.*s\n", enc[i], (int)L, p);
        } else {
            printf(i ? " %d" : "%d", enc[i]);
        }
    }
    if (!o->pieces) fputc('\n', stdout);
    free(enc);
    return 0;
}

int dk_cmd_tokenize(int argc, char **argv) {
    dk_tokenize_args o;
    int rc = dk_tokenize_parse(argc, argv, &o);
    if (rc >= 0) return rc;
    dk_tokenizer *tk = NULL;
    dk_err e = {{0}};
    if (dk_model_load_tokenizer(o.pos[0], o.tok_path, &tk, &e) != DK_OK) {
        fprintf(stderr, "dashkit tokenize: %s\n", e.msg);
        rc = 1;
    } else {
        if (o.rm_ws) dk_tokenizer_set_remove_extra_whitespaces(tk, true);
        rc = o.decode ? dk_tokenize_decode(tk, &o) : dk_tokenize_encode(tk, &o);
    }
    if (fflush(stdout) != 0 && rc == 0) {
        fprintf(stderr, "dashkit tokenize: write error\n");
        rc = 1;
    }
    free(o.ids);
    free(o.pos);
    if (tk) dk_tokenizer_free(tk);
    return rc;
}
