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

/* Reads all of f into a malloc'd buffer. */
static char *dk_read_all(FILE *f, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    size_t r;
    while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) { free(buf); return NULL; }
            buf = nb;
        }
    }
    if (ferror(f)) { free(buf); return NULL; }
    *len = n;
    return buf;
}

int dk_cmd_tokenize(int argc, char **argv) {
    const char *tok_path = NULL, *file = NULL;
    bool bos = false, decode = false, pieces = false, rm_ws = false, end_opts = false;
    const char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int n_pos = 0;
    if (!pos) { fprintf(stderr, "dashkit tokenize: out of memory\n"); return 1; }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (end_opts || a[0] != '-' || !strcmp(a, "-")) { pos[n_pos++] = a; continue; }
        if (!strcmp(a, "--")) end_opts = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { dk_tokenize_usage(stdout); free(pos); return 0; }
        else if (!strcmp(a, "--bos")) bos = true;
        else if (!strcmp(a, "--decode")) decode = true;
        else if (!strcmp(a, "--pieces")) pieces = true;
        else if (!strcmp(a, "--remove-extra-whitespaces")) rm_ws = true;
        else if (!strcmp(a, "-z") || !strcmp(a, "--tokenizer") || !strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "dashkit tokenize: option %s needs a value\n", a);
                free(pos);
                return 2;
            }
            bool is_tok = !strcmp(a, "-z") || !strcmp(a, "--tokenizer");
            if (is_tok) tok_path = argv[++i]; else file = argv[++i];
        } else {
            fprintf(stderr, "dashkit tokenize: unknown option '%s' (see 'dashkit tokenize --help')\n", dk_cli_esc(a));
            free(pos);
            return 2;
        }
    }
    if (n_pos < 1) {
        fprintf(stderr, "dashkit tokenize: missing MODEL (see 'dashkit tokenize --help')\n");
        free(pos);
        return 2;
    }
    if (decode ? (n_pos < 2 || file) : (file ? n_pos != 1 : n_pos < 2)) {
        fprintf(stderr, "dashkit tokenize: %s\n",
                decode ? (file ? "--decode takes ids as arguments, not -f" : "--decode needs at least one ID")
                       : (file ? "give either TEXT or -f FILE, not both" : "missing TEXT (or -f FILE)"));
        free(pos);
        return 2;
    }

    /* ids are validated before the model loads: a typo is a usage error */
    int n_ids = decode ? n_pos - 1 : 0;
    int32_t *ids = decode ? malloc(sizeof(int32_t) * (size_t)n_ids) : NULL;
    for (int i = 0; i < n_ids; i++) {
        char *end;
        errno = 0;
        long v = strtol(pos[1 + i], &end, 10);
        if (end == pos[1 + i] || *end || errno || v < 0 || v > INT32_MAX) {
            fprintf(stderr, "dashkit tokenize: --decode: '%s' is not a token id (non-negative integer)\n", dk_cli_esc(pos[1 + i]));
            free(ids); free(pos);
            return 2;
        }
        ids[i] = (int32_t)v;
    }

    int rc = 1;
    char *text = NULL, *out = NULL;
    int32_t *enc = NULL;
    dk_tokenizer *tk = NULL;
    dk_err e = {{0}};
    if (dk_model_load_tokenizer(pos[0], tok_path, &tk, &e) != DK_OK) {
        fprintf(stderr, "dashkit tokenize: %s\n", e.msg);
        goto done;
    }
    if (rm_ws) dk_tokenizer_set_remove_extra_whitespaces(tk, true);

    if (decode) {
        if (pieces) {
            for (int i = 0; i < n_ids; i++) {
                size_t L;
                const char *p = dk_tokenizer_piece(tk, ids[i], &L);
                if (!p) {
                    fprintf(stderr, "dashkit tokenize: token id %d is out of range [0, %d)\n", ids[i], dk_tokenizer_n_vocab(tk));
                    goto done;
                }
                printf("%d\t%.*s\n", ids[i], (int)L, p);
            }
            rc = 0;
            goto done;
        }
        size_t len = 0;
        if (dk_tokenizer_decode(tk, ids, n_ids, &out, &len, &e) != DK_OK) {
            fprintf(stderr, "dashkit tokenize: %s\n", e.msg);
            goto done;
        }
        fwrite(out, 1, len, stdout);
        fputc('\n', stdout);
        rc = 0;
        goto done;
    }

    size_t len = 0;
    if (file) {
        FILE *f = strcmp(file, "-") ? fopen(file, "rb") : stdin;
        if (!f) { fprintf(stderr, "dashkit tokenize: %s: cannot open: %s\n", dk_cli_esc(file), strerror(errno)); goto done; }
        text = dk_read_all(f, &len);
        if (f != stdin) fclose(f);
        if (!text) { fprintf(stderr, "dashkit tokenize: %s: read error\n", dk_cli_esc(file)); goto done; }
    } else {
        for (int i = 1; i < n_pos; i++) len += strlen(pos[i]) + 1;
        text = malloc(len + 1);
        if (!text) { fprintf(stderr, "dashkit tokenize: out of memory\n"); goto done; }
        len = 0;
        for (int i = 1; i < n_pos; i++) {
            if (i > 1) text[len++] = ' ';
            size_t L = strlen(pos[i]);
            memcpy(text + len, pos[i], L);
            len += L;
        }
    }
    int n = 0;
    if (dk_tokenizer_encode(tk, text, len, bos, &enc, &n, &e) != DK_OK) {
        fprintf(stderr, "dashkit tokenize: %s\n", e.msg);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        if (pieces) {
            size_t L;
            const char *p = dk_tokenizer_piece(tk, enc[i], &L);
            printf("%d\t%.*s\n", enc[i], (int)L, p);
        } else {
            printf(i ? " %d" : "%d", enc[i]);
        }
    }
    if (!pieces) fputc('\n', stdout);
    rc = 0;
done:
    if (fflush(stdout) != 0 && rc == 0) { fprintf(stderr, "dashkit tokenize: write error\n"); rc = 1; }
    free(enc); free(text); free(out); free(ids); free(pos);
    if (tk) dk_tokenizer_free(tk);
    return rc;
}
