/* cmd_info.c — `dashkit info MODEL [-z TOKENIZER] [--ctx N] [--chunk N] [--compute M] [--memory]`: one
 * `key: value` per line, including the memory the model needs at a context length. */
#include "cli.h"
#include "cli_util.h"
#include "gguf.h"
#include "memory.h"
#include "model.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void dk_info_usage(FILE *f) {
    fprintf(
        f,
        "usage: dashkit info MODEL [-z TOKENIZER] [--ctx N] [--chunk N] [--compute f32|bf16|q8] "
        "[--memory]\n\n"
        "Prints a model's hyper-parameters and metadata, one `key: value` per line, and the\n"
        "memory it needs at a context length: mem_weights_bytes (tensors in their file type),\n"
        "mem_kv_bytes (f32 K/V caches at N tokens), mem_scratch_bytes (the engine's buffers\n"
        "for a prefill chunk), mem_total_bytes, each also human-readable (*_human).\n\n"
        "  MODEL          GGUF file or llama2.c checkpoint (.bin)\n"
        "  -z TOKENIZER   llama2.c tok*.bin to attach\n"
        "  --ctx N        context length for the memory lines (default: the model's\n"
        "                 training context, 4096 when it declares none)\n"
        "  --chunk N      tokens per prefill chunk (default N of --ctx: dashkit prefills a\n"
        "                 prompt's context in one chunk)\n"
        "  --compute M    f32 (default), bf16 or q8: with bf16 (q8) the scratch also counts bf16 compute's\n"
        "                 buffers (mem_compute_bytes: a chunk's activations and one layer matrix in\n"
        "                 bf16, none for BF16 files' matrices, and oneDNN's scratchpad; q8 adds its\n"
        "                 quantized activations)\n"
        "  --memory       GGUF: read only the header (no weights loaded) and print the\n"
        "                 hyper-parameters and memory lines\n"
        "  -h, --help     this help\n");
}

static int dk_info_int(const char *opt, const char *v, int *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || !*v || *end || x < 1 || x > (1L << 22)) {
        fprintf(stderr, "dashkit info: %s: '%s' is not an integer in 1..%ld\n", opt, dk_cli_esc(v), 1L << 22);
        return 0;
    }
    *out = (int)x;
    return 1;
}

static void dk_info_print_memory(const dk_model_config *c, int64_t wb, int64_t wf, const char *type, int ctx,
                                 int chunk, dk_compute compute) {
    dk_memory_estimate m;
    if (ctx <= 0) ctx = c->n_ctx_train > 0 ? c->n_ctx_train : 4096;
    if (ctx > (1 << 22)) ctx = 1 << 22;
    dk_memory_estimate_fill(c, wb, wf, ctx, chunk, &m);
    dk_memory_estimate_add_compute(c, compute, type, &m);
    char h[32];
    printf("ctx: %d\n", m.n_ctx);
    printf("chunk: %d\n", m.n_chunk);
    printf("mem_weights_bytes: %lld\n", (long long)m.weights_bytes);
    printf("mem_weights_human: %s\n", dk_memory_human(m.weights_bytes, h, sizeof h));
    printf("mem_weights_f32_bytes: %lld\n", (long long)m.weights_f32_bytes);
    printf("mem_kv_bytes: %lld\n", (long long)m.kv_bytes);
    printf("mem_kv_human: %s\n", dk_memory_human(m.kv_bytes, h, sizeof h));
    printf("compute: %s\nmem_compute_bytes: %lld\n", dk_compute_name(compute), (long long)m.compute_bytes);
    printf("mem_scratch_bytes: %lld\n", (long long)m.scratch_bytes);
    printf("mem_scratch_human: %s\n", dk_memory_human(m.scratch_bytes, h, sizeof h));
    printf("mem_total_bytes: %lld\n", (long long)m.total_bytes);
    printf("mem_total_human: %s\n", dk_memory_human(m.total_bytes, h, sizeof h));
}

static void dk_info_print_config(const dk_model_config *c) {
    printf("arch: %s\n", dk_arch_name(c->arch));
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
}

static int dk_info_is_gguf(const char *path) {
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    int ok = f && fread(magic, 1, 4, f) == 4 && !memcmp(magic, "GGUF", 4);
    if (f) fclose(f);
    return ok;
}

/* A GGUF dashkit cannot run (vocab-only, or an architecture/type it does not support): what the
 * header says and the tokenizer it carries. Returns 0 for a vocab-only file, else 1 after the
 * load error (st, why); -1 when the file does not even open as GGUF (the caller reports `why`). */
static int dk_info_header_only(const char *path, dk_status st, const dk_err *why) {
    dk_gguf *g;
    dk_err e = {{0}};
    if (dk_gguf_open(path, &g, &e) != DK_OK) return -1;
    int64_t n_tensors = dk_gguf_n_tensors(g);
    if (n_tensors > 0 && st != DK_ERR_UNSUPPORTED) {
        dk_gguf_close(g);
        return -1;
    }
    printf("path: %s\nformat: gguf\ngguf_version: %u\nn_tensors: %lld\n", path, dk_gguf_version(g),
           (long long)n_tensors);
    static const char *const keys[2] = {"general.name", "general.architecture"}, *const names[2] = {"name",
                                                                                                    "arch"};
    for (int k = 0; k < 2; k++) {
        const char *s;
        size_t n;
        if (dk_gguf_find_key(g, keys[k]) >= 0 && dk_gguf_get_str(g, keys[k], &s, &n, NULL) == DK_OK)
            printf("%s: %.*s\n", names[k], (int)(n > 120 ? 120 : n), s);
    }
    dk_tokenizer *tk = NULL;
    char desc[64];
    dk_tokenizer_load_gguf(g, path, &tk, desc, sizeof desc, &e);
    printf("tokenizer: %s\n", desc);
    if (tk) printf("bos_id: %d\neos_id: %d\n", dk_tokenizer_bos(tk), dk_tokenizer_eos(tk));
    dk_tokenizer_free(tk);
    dk_gguf_close(g);
    if (n_tensors == 0) {
        printf("weights: none (vocab-only file)\n");
        return 0;
    }
    fprintf(stderr, "dashkit info: %s\n", why->msg);
    return 1;
}

int dk_cmd_info(int argc, char **argv) {
    const char *path = NULL, *tok = NULL;
    int ctx = 0, chunk = 0, memory_only = 0;
    dk_compute compute = DK_COMPUTE_F32;
    for (int i = 1; i < argc; i++) {
        if (dk_cli_help(argv[i], dk_info_usage)) return 0;
        if (!strcmp(argv[i], "--compute")) {
            if (!dk_cli_has_value("info", argc, argv, i)) return 2;
            dk_err ce = {{0}};
            if (dk_compute_parse(argv[++i], &compute, &ce)) {
                fprintf(stderr, "dashkit info: --compute: %s\n", ce.msg);
                return 2;
            }
            continue;
        }
        if (!strcmp(argv[i], "-z") || !strcmp(argv[i], "--ctx") || !strcmp(argv[i], "--chunk")) {
            if (!dk_cli_has_value("info", argc, argv, i)) return 2;
            const char *o = argv[i++];
            if (!strcmp(o, "-z")) tok = argv[i];
            else if (!dk_info_int(o, argv[i], !strcmp(o, "--ctx") ? &ctx : &chunk)) return 2;
        } else if (!strcmp(argv[i], "--memory")) {
            memory_only = 1;
        } else if (!dk_cli_positional("info", argv[i], &path)) return 2;
    }
    if (!path) {
        dk_info_usage(stderr);
        return 2;
    }
    if (chunk > 0 && ctx > 0 && chunk > ctx) {
        fprintf(stderr, "dashkit info: --chunk %d is larger than --ctx %d\n", chunk, ctx);
        return 2;
    }
    dk_err e = {{0}};
    /* GGUF: memory from the header alone, before (or instead of) loading the weights */
    int gguf = dk_info_is_gguf(path);
    dk_model_config hc;
    int64_t wb = 0, wf = 0;
    char type[16] = "";
    dk_status st;
    if (gguf && (st = dk_memory_read_gguf(path, &hc, &wb, &wf, type, &e))) {
        int rc = memory_only ? -1 : dk_info_header_only(path, st, &e);
        if (rc < 0) fprintf(stderr, "dashkit info: %s\n", e.msg);
        return rc < 0 ? 1 : rc;
    }
    if (memory_only) {
        if (!gguf) {
            fprintf(stderr, "dashkit info: --memory reads GGUF headers only; %s is not a GGUF file\n", path);
            return 1;
        }
        printf("path: %s\nformat: gguf\n", path);
        dk_info_print_config(&hc);
        printf("tensor_type: %s\n", type);
        dk_info_print_memory(&hc, wb, wf, type, ctx, chunk, compute);
        return 0;
    }
    dk_model *m;
    if ((st = dk_model_load(path, tok, &m, &e))) {
        int rc = gguf ? dk_info_header_only(path, st, &e) : -1;
        if (rc < 0) fprintf(stderr, "dashkit info: %s\n", e.msg);
        return rc < 0 ? 1 : rc;
    }
    const dk_model_config *c = &m->cfg;
    printf("path: %s\n", path);
    printf("format: %s\n", m->format_name);
    if (m->format == DK_MODEL_FORMAT_GGUF)
        printf("gguf_version: %u\nn_tensors: %d\n", m->gguf_version, m->n_tensors);
    printf("name: %s\n", m->name);
    dk_info_print_config(c);
    printf("tensor_type: %s\n", m->tensor_type);
    if (m->format == DK_MODEL_FORMAT_GGUF)
        printf("tensor_types: %s\nfile_type: %s\n", m->tensor_types, m->file_type);
    printf("n_params: %lld\n", (long long)m->n_params);
    printf("tokenizer: %s\n", m->tokenizer_desc);
    if (m->tokenizer)
        printf("bos_id: %d\neos_id: %d\n", dk_tokenizer_bos(m->tokenizer), dk_tokenizer_eos(m->tokenizer));
    if (!gguf) wb = wf = m->n_params * 4; /* llama2.c checkpoints are f32 */
    dk_info_print_memory(c, wb, wf, m->tensor_type, ctx, chunk, compute);
    dk_model_free(m);
    return 0;
}
