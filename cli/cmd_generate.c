/* cmd_generate.c — `dashkit generate MODEL [-z TOKENIZER] [-p PROMPT] [-n STEPS]`: greedy
 * generation with llama2.c run.c semantics (-n counts positions from 0, the prompt included). */
#include "cli.h"
#include "cli_util.h"
#include "blas.h"
#include "forward.h"
#include "model.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void dk_generate_usage(FILE *f) {
    fprintf(f, "usage: dashkit generate MODEL [-z TOKENIZER] [-p PROMPT] [-n STEPS] [--compute f32|bf16|q8]\n\n"
               "Greedy generation. Text goes to stdout, statistics to stderr.\n\n"
               "  MODEL          GGUF file or llama2.c checkpoint (.bin)\n"
               "  -z TOKENIZER   llama2.c tok*.bin (needed for .bin models; overrides a GGUF's vocabulary)\n"
               "  -p PROMPT      prompt text (default: empty, i.e. generation starts from BOS)\n"
               "  -n STEPS       positions to run, prompt included, as llama2.c run -n (default 256;\n"
               "                 0 or more than the training context means the training "
               "context)\n" DK_CLI_COMPUTE_HELP "  -h, --help     this help\n");
}

typedef struct {
    const char *model_path, *tok_path, *prompt;
    long steps;
    dk_compute compute;
} dk_generate_args;

/* -1 when the options are good; else the exit status (0 after --help, 2 on a usage error). */
static int dk_generate_parse(int argc, char **argv, dk_generate_args *o) {
    *o = (dk_generate_args){.prompt = "", .steps = 256, .compute = DK_COMPUTE_F32};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dk_cli_help(a, dk_generate_usage)) return 0;
        bool takes = !strcmp(a, "-z") || !strcmp(a, "-p") || !strcmp(a, "-n") || !strcmp(a, "--compute");
        if (takes && !dk_cli_has_value("generate", argc, argv, i)) return 2;
        if (!strcmp(a, "-z")) o->tok_path = argv[++i];
        else if (!strcmp(a, "-p")) o->prompt = argv[++i];
        else if (!strcmp(a, "--compute")) {
            if (!dk_cli_compute_arg("generate", argv[++i], &o->compute)) return 2;
        } else if (!strcmp(a, "-n")) {
            if (!dk_cli_long_in(argv[++i], 0, LONG_MAX, &o->steps)) {
                fprintf(stderr, "dashkit generate: -n '%s' is not a non-negative integer\n",
                        dk_cli_esc(argv[i]));
                return 2;
            }
        } else if (!dk_cli_positional("generate", a, &o->model_path)) return 2;
    }
    if (!o->model_path) {
        dk_generate_usage(stderr);
        return 2;
    }
    return -1;
}

/* The generated text as run.c prints it (lone non-printable bytes skipped), then the statistics. */
static void dk_generate_print(const dk_tokenizer *tok, int32_t prev, const int32_t *out, int n_out,
                              double dt) {
    for (int i = 0; i < n_out; i++) {
        size_t len;
        const char *piece = dk_tokenizer_decode_piece(tok, prev, out[i], &len);
        if (dk_cli_piece_printable(piece, len)) fwrite(piece, 1, len, stdout);
        prev = out[i];
    }
    printf("\n");
    fflush(stdout);
    fprintf(stderr, "tokens: %d\ntokens_per_s: %.2f\nblas_core: %s\nblas_threads: %d\n", n_out,
            dt > 0 ? (double)n_out / dt : 0.0, dk_blas_core(), dk_blas_threads());
}

int dk_cmd_generate(int argc, char **argv) {
    dk_generate_args o;
    int rc = dk_generate_parse(argc, argv, &o);
    if (rc >= 0) return rc;
    dk_err e = {{0}};
    dk_model *m = NULL;
    dk_ctx *c = NULL;
    int32_t *ids = NULL, *out = NULL;
    int n_ids = 0, n_out = 0;
    const dk_tokenizer *tok;
    rc = 1;
    if (dk_model_load(o.model_path, o.tok_path, &m, &e) || dk_model_tokenizer(m, &tok, &e)) goto fail;
    long steps = o.steps, n_train = m->cfg.n_ctx_train;
    if (steps == 0 || (n_train > 0 && steps > n_train)) steps = n_train > 0 ? n_train : 2048;
    if (dk_tokenizer_encode(tok, o.prompt, strlen(o.prompt), true, &ids, &n_ids, &e) ||
        dk_ctx_create(m, (int)steps, &c, &e) || dk_ctx_set_compute(c, o.compute, &e))
        goto fail;
    if (!(out = malloc((size_t)steps * sizeof *out))) {
        fprintf(stderr, "dashkit generate: out of memory\n");
        goto done;
    }
    double t0 = dk_time_now_s();
    if (dk_generate_greedy(c, ids, n_ids, (int)steps, dk_tokenizer_bos(tok), out, &n_out, &e)) goto fail;
    dk_generate_print(tok, ids[0], out, n_out, dk_time_now_s() - t0);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "dashkit generate: %s\n", e.msg);
done:
    free(out);
    free(ids);
    dk_ctx_free(c);
    dk_model_free(m);
    return rc;
}
