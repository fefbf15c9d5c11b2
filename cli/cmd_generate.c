/* cmd_generate.c — `dashkit generate MODEL [-z TOKENIZER] [-p PROMPT] [-n STEPS]`: greedy
 * generation with llama2.c run.c semantics (-n counts positions from 0, the prompt included). */
#include "cli.h"
#include "cli_util.h"
#include "blas.h"
#include "forward.h"
#include "model.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void dk_generate_usage(FILE *f) {
    fprintf(f, "usage: dashkit generate MODEL [-z TOKENIZER] [-p PROMPT] [-n STEPS] [--compute f32|bf16]\n\n"
               "Greedy generation. Text goes to stdout, statistics to stderr.\n\n"
               "  MODEL          GGUF file or llama2.c checkpoint (.bin)\n"
               "  -z TOKENIZER   llama2.c tok*.bin (needed for .bin models; overrides a GGUF's vocabulary)\n"
               "  -p PROMPT      prompt text (default: empty, i.e. generation starts from BOS)\n"
               "  -n STEPS       positions to run, prompt included, as llama2.c run -n (default 256;\n"
               "                 0 or more than the training context means the training context)\n"
               DK_CLI_COMPUTE_HELP
               "  -h, --help     this help\n");
}

int dk_cmd_generate(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *prompt = "";
    long steps = 256;
    dk_compute compute = DK_COMPUTE_F32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { dk_generate_usage(stdout); return 0; }
        if ((!strcmp(a, "-z") || !strcmp(a, "-p") || !strcmp(a, "-n") || !strcmp(a, "--compute")) && i + 1 >= argc) {
            fprintf(stderr, "dashkit generate: option %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "-z")) tok_path = argv[++i];
        else if (!strcmp(a, "-p")) prompt = argv[++i];
        else if (!strcmp(a, "--compute")) { if (!dk_cli_compute_arg("generate", argv[++i], &compute)) return 2; }
        else if (!strcmp(a, "-n")) {
            char *end;
            steps = strtol(argv[++i], &end, 10);
            if (*end || end == argv[i] || steps < 0) {
                fprintf(stderr, "dashkit generate: -n '%s' is not a non-negative integer\n", dk_cli_esc(argv[i]));
                return 2;
            }
        } else if (!dk_cli_positional("generate", a, &model_path)) return 2;
    }
    if (!model_path) { dk_generate_usage(stderr); return 2; }

    dk_err e = {{0}};
    dk_model *m = NULL;
    dk_ctx *c = NULL;
    int32_t *ids = NULL, *out = NULL;
    int rc = 1, n_ids = 0, n_out = 0;
    const dk_tokenizer *tok;
    if (dk_model_load(model_path, tok_path, &m, &e) || dk_model_tokenizer(m, &tok, &e)) {
        fprintf(stderr, "dashkit generate: %s\n", e.msg);
        goto done;
    }
    if (steps == 0 || (m->cfg.n_ctx_train > 0 && steps > m->cfg.n_ctx_train)) steps = m->cfg.n_ctx_train > 0 ? m->cfg.n_ctx_train : 2048;
    if (dk_tokenizer_encode(tok, prompt, strlen(prompt), true, &ids, &n_ids, &e) ||
        dk_ctx_create(m, (int)steps, &c, &e) || dk_ctx_set_compute(c, compute, &e)) {
        fprintf(stderr, "dashkit generate: %s\n", e.msg);
        goto done;
    }
    if (!(out = malloc((size_t)steps * sizeof *out))) { fprintf(stderr, "dashkit generate: out of memory\n"); goto done; }
    double t0 = dk_time_now_s();
    if (dk_generate_greedy(c, ids, n_ids, (int)steps, dk_tokenizer_bos(tok), out, &n_out, &e)) {
        fprintf(stderr, "dashkit generate: %s\n", e.msg);
        goto done;
    }
    double t1 = dk_time_now_s();
    int32_t prev = ids[0];
    for (int i = 0; i < n_out; i++) {
        size_t len;
        const char *piece = dk_tokenizer_decode_piece(tok, prev, out[i], &len);
        if (dk_cli_piece_printable(piece, len)) fwrite(piece, 1, len, stdout);
        prev = out[i];
    }
    printf("\n");
    fflush(stdout);
    double dt = t1 - t0;
    fprintf(stderr, "tokens: %d\ntokens_per_s: %.2f\nblas_core: %s\nblas_threads: %d\n", n_out,
            dt > 0 ? (double)n_out / dt : 0.0, dk_blas_core(), dk_blas_threads());
    rc = 0;
done:
    free(out);
    free(ids);
    dk_ctx_free(c);
    dk_model_free(m);
    return rc;
}
