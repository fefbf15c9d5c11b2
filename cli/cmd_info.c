/* cmd_info.c — `dashkit info MODEL [-z TOKENIZER]`: one `key: value` per line. */
#include "cli.h"
#include "model.h"
#include <stdio.h>
#include <string.h>

static void dk_info_usage(FILE *f) {
    fprintf(f, "usage: dashkit info MODEL [-z TOKENIZER]\n\n"
               "Prints a model's hyper-parameters and metadata, one `key: value` per line.\n\n"
               "  MODEL          GGUF file or llama2.c checkpoint (.bin)\n"
               "  -z TOKENIZER   llama2.c tok*.bin to attach\n"
               "  -h, --help     this help\n");
}

int dk_cmd_info(int argc, char **argv) {
    const char *path = NULL, *tok = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { dk_info_usage(stdout); return 0; }
        if (!strcmp(argv[i], "-z")) {
            if (i + 1 >= argc) { fprintf(stderr, "dashkit info: option -z needs a value\n"); return 2; }
            tok = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "dashkit info: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        } else if (!path) path = argv[i];
        else { fprintf(stderr, "dashkit info: unexpected argument '%s'\n", argv[i]); return 2; }
    }
    if (!path) { dk_info_usage(stderr); return 2; }
    dk_err e = {{0}};
    dk_model *m;
    if (dk_model_load(path, tok, &m, &e)) {
        fprintf(stderr, "dashkit info: %s\n", e.msg);
        return 1;
    }
    const dk_model_config *c = &m->cfg;
    printf("path: %s\n", path);
    printf("format: %s\n", m->format_name);
    if (m->format == DK_MODEL_FORMAT_GGUF) printf("gguf_version: %u\nn_tensors: %d\n", m->gguf_version, m->n_tensors);
    printf("name: %s\n", m->name);
    printf("arch: %s\n", m->arch_name);
    printf("n_layer: %d\n", c->n_layer);
    printf("n_embd: %d\n", c->n_embd);
    printf("n_head: %d\n", c->n_head);
    printf("n_head_kv: %d\n", c->n_head_kv);
    printf("head_dim: %d\n", c->head_dim);
    printf("n_ff: %d\n", c->n_ff);
    printf("n_vocab: %d\n", c->n_vocab);
    printf("n_ctx_train: %d\n", c->n_ctx_train);
    printf("rope_theta: %g\n", c->rope_theta);
    printf("n_rot: %d\n", c->n_rot);
    printf("rope_type: %s\n", dk_rope_type_name(c->rope_type));
    printf("rms_eps: %g\n", c->rms_eps);
    printf("tied_output: %s\n", c->tied_output ? "true" : "false");
    printf("qkv_bias: %s\n", c->qkv_bias ? "true" : "false");
    printf("tensor_type: %s\n", m->tensor_type);
    printf("n_params: %lld\n", (long long)m->n_params);
    printf("tokenizer: %s\n", m->tokenizer_desc);
    if (m->tokenizer) printf("bos_id: %d\neos_id: %d\n", dk_tokenizer_bos(m->tokenizer), dk_tokenizer_eos(m->tokenizer));
    dk_model_free(m);
    return 0;
}
