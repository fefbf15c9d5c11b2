/* test_memory.c — memory estimate (engine/memory.h): the closed forms, the header reader against
 * the full loader, the estimate against the heap growth of a real dk_ctx (mallinfo2), and the
 * `dashkit info --ctx` lines. */
#include "compute.h"
#include "forward.h"
#include "memory.h"
#include "model.h"
#include "quant.h"
#include "support/dk_test.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t t_heap(void) {
    struct mallinfo2 mi = mallinfo2();
    return (int64_t)mi.uordblks + (int64_t)mi.hblkhd;
}

/* The KV closed form of the issue, and the scratch parts' linearity in their length. */
START_TEST(test_closed_forms) {
    dk_model_config c;
    ck_assert(dk_model_shape("qwen2-0.5b", &c));
    ck_assert_int_eq(dk_memory_kv_bytes(&c, 16384),
                     (int64_t)c.n_layer * 2 * c.n_head_kv * c.head_dim * 16384 * 4);
    /* chunk scratch: 5 (n,d) + 2 (n, n_head*hd) + 2 (n, n_ff) f32 buffers + 5 int32 index arrays */
    int64_t per_row = (5LL * c.n_embd + 2LL * c.n_head * c.head_dim + 2LL * c.n_ff) * 4 + 5 * 4;
    ck_assert_int_eq(dk_memory_chunk_bytes(&c, 1000), 1000 * per_row);
    /* conversion buffer: the largest layer matrix in f32 (Qwen2-0.5B: ffn, 4864 x 896) */
    ck_assert_int_eq(dk_memory_convert_bytes(&c), 4864LL * 896 * 4);
    dk_memory_estimate m;
    dk_memory_estimate_fill(&c, 123, 456, 4096, 0, &m);
    ck_assert_int_eq(m.n_chunk, 4096);
    ck_assert_int_eq(m.total_bytes, 123 + m.kv_bytes + m.scratch_bytes);
    ck_assert_int_eq(m.convert_bytes, dk_memory_convert_bytes(&c));
    ck_assert_int_eq(m.scratch_bytes,
                     dk_memory_ctx_bytes(&c, 4096) + dk_memory_chunk_bytes(&c, 4096) + m.convert_bytes);
    /* all-F32 weights need no conversion buffer */
    dk_memory_estimate_fill(&c, 456, 456, 4096, 0, &m);
    ck_assert_int_eq(m.convert_bytes, 0);
    ck_assert_int_eq(m.scratch_bytes, dk_memory_ctx_bytes(&c, 4096) + dk_memory_chunk_bytes(&c, 4096));
    char h[32];
    ck_assert_str_eq(dk_memory_human(1536, h, sizeof h), "1.50 KiB");
    ck_assert_str_eq(dk_memory_human(15LL << 30, h, sizeof h), "15.00 GiB");
    ck_assert_str_eq(dk_memory_human(37, h, sizeof h), "37 B");
}
END_TEST

/* Header-only reading gives the loader's hyper-parameters; f32 files hold f32 bytes. */
START_TEST(test_read_gguf_matches_loader) {
    const char *files[] = {"tests/data/ref_qwen2_f16.gguf", "tests/data/ref_llama_f32.gguf",
                           "tests/data/ref_tiny_q8_0.gguf", "tests/data/ref_tiny_bf16.gguf"};
    for (int i = 0; i < 4; i++) {
        dk_model_config c;
        int64_t wb = 0, wf = 0;
        char type[16];
        dk_err e = {{0}};
        ck_assert_msg(dk_memory_read_gguf(files[i], &c, &wb, &wf, type, &e) == DK_OK, "%s", e.msg);
        dk_model *m;
        ck_assert_msg(dk_model_load(files[i], NULL, &m, &e) == DK_OK, "%s", e.msg);
        ck_assert_int_eq(memcmp(&c, &m->cfg, sizeof c), 0);
        ck_assert_str_eq(type, m->tensor_type);
        ck_assert_int_eq(wf, m->n_params * 4);
        ck_assert_int_eq(wb, m->weights_bytes);
        ck_assert(m->converts == (wb != wf));
        if (!strcmp(type, "F32")) ck_assert_int_eq(wb, wf);
        else
            ck_assert_msg(wb < wf * 6 / 10, "%s: %lld file bytes vs %lld f32", files[i], (long long)wb,
                          (long long)wf);
        dk_model_free(m);
    }
    dk_model_config c;
    dk_err e = {{0}};
    ck_assert_int_eq(dk_memory_read_gguf("tests/data/no-such.gguf", &c, NULL, NULL, NULL, &e), DK_ERR_IO);
}
END_TEST

/* The estimate of scratch + KV equals what a real context allocates (heap growth measured by
 * mallinfo2 around dk_ctx_create and a prefill of the chunk), within malloc's bookkeeping. */
static const uint32_t t_types[] = {DK_GGML_TYPE_F32, DK_GGML_TYPE_BF16, DK_GGML_TYPE_F32, DK_GGML_TYPE_BF16,
                                   DK_GGML_TYPE_F32};

START_TEST(test_estimate_vs_allocation) {
#ifdef __SANITIZE_ADDRESS__
    printf("SKIP estimate vs heap growth: ASan's allocator does not report to mallinfo2\n");
    return;
#endif
    dk_model_config c;
    ck_assert(dk_model_shape("qwen2-tiny", &c));
    dk_model *m;
    dk_err e = {{0}};
    uint32_t type = t_types[_i];
    /* loops 2, 3: bf16 compute; 4: q8 (its quantized activations) */
    dk_compute compute = _i >= 4 ? DK_COMPUTE_Q8 : _i >= 2 ? DK_COMPUTE_BF16 : DK_COMPUTE_F32;
    if (dk_compute_bf16_on(compute) && !dk_compute_bf16_native()) {
        printf("SKIP estimate vs heap growth in bf16 or q8: no native bf16\n");
        return;
    }
    ck_assert_msg(dk_model_create_random_typed(&c, 1, "t", type, &m, &e) == DK_OK, "%s", e.msg);
    ck_assert(m->converts == (type != DK_GGML_TYPE_F32));
    int n_ctx = 1024, chunk = 700;
    int32_t *tok = malloc((size_t)chunk * sizeof *tok);
    float *logits = malloc((size_t)c.n_vocab * sizeof *logits);
    for (int i = 0; i < chunk; i++) tok[i] = (i * 7 + 3) % c.n_vocab;
    /* warm-up: BLAS buffers and lazy libc state are allocated before measuring */
    dk_ctx *w;
    ck_assert_int_eq(dk_ctx_create(m, 64, &w, &e), DK_OK);
    ck_assert_int_eq(dk_ctx_set_compute(w, compute, &e), DK_OK);
    ck_assert_int_eq(dk_forward_prefill(w, tok, 32, NULL, logits, &e), DK_OK);
    dk_ctx_free(w);

    int64_t h0 = t_heap();
    dk_ctx *x;
    ck_assert_int_eq(dk_ctx_create(m, n_ctx, &x, &e), DK_OK);
    int64_t h1 = t_heap();
    /* bf16: the backend (created by the switch) and its buffers count with the chunk */
    ck_assert_int_eq(dk_ctx_set_compute(x, compute, &e), DK_OK);
    ck_assert_msg(dk_forward_prefill(x, tok, chunk, NULL, logits, &e) == DK_OK, "%s", e.msg);
    int64_t h2 = t_heap();
    /* the conversion buffer belongs to the context (dk_ctx_create) */
    int64_t est_ctx = dk_memory_ctx_bytes(&c, n_ctx) + dk_memory_kv_bytes(&c, n_ctx) +
                      (m->converts ? dk_memory_convert_bytes(&c) : 0);
    int64_t est_chunk = dk_memory_chunk_bytes(&c, chunk) +
                        dk_memory_compute_bytes(&c, compute, m->tensor_type, chunk);
    /* slack: the dk_ctx struct, malloc headers and mmap page rounding of each buffer */
    int64_t slack_ctx = 4096 + (3 * c.n_layer + 9) * 4112, slack_chunk = 14 * 4112;
    ck_assert_msg(h1 - h0 >= est_ctx && h1 - h0 <= est_ctx + slack_ctx,
                  "context: measured %lld, estimate %lld", (long long)(h1 - h0), (long long)est_ctx);
    /* bf16: oneDNN's own allocations are an allowance (DK_MEMORY_DNNL_SCRATCH), not exact */
    int64_t low = est_chunk - (dk_compute_bf16_on(compute) ? DK_MEMORY_DNNL_SCRATCH : 0);
    printf("heap growth of a %d-token chunk (%s weights, %s compute): %lld, estimate %lld\n", chunk,
           m->tensor_type, dk_compute_name(compute), (long long)(h2 - h1), (long long)est_chunk);
    ck_assert_msg(h2 - h1 >= low && h2 - h1 <= est_chunk + slack_chunk, "chunk: measured %lld, estimate %lld",
                  (long long)(h2 - h1), (long long)est_chunk);
    dk_ctx_free(x);
    free(tok);
    free(logits);
    dk_model_free(m);
}
END_TEST

static long long t_field(const char *out, const char *key) {
    char k[64];
    snprintf(k, sizeof k, "\n%s: ", key);
    const char *p = strstr(out, k);
    ck_assert_msg(p != NULL, "no %s in:\n%s", key, out);
    return atoll(p + strlen(k));
}

START_TEST(test_cli_info_memory) {
    char cmd[512], *out = NULL;
    const char *f = "tests/data/ref_qwen2_f16.gguf";
    snprintf(cmd, sizeof cmd, "%s info %s --ctx 2048 --memory", dk_test_cli(), f);
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    dk_model_config c;
    int64_t wb, wf;
    dk_err e = {{0}};
    ck_assert_int_eq(dk_memory_read_gguf(f, &c, &wb, &wf, NULL, &e), DK_OK);
    ck_assert_int_eq(t_field(out, "ctx"), 2048);
    ck_assert_int_eq(t_field(out, "mem_weights_bytes"), wb);
    ck_assert_int_eq(t_field(out, "mem_kv_bytes"),
                     (long long)c.n_layer * 2 * c.n_head_kv * c.head_dim * 2048 * 4);
    /* an F16 file: scratch includes the f32 conversion buffer of one layer matrix */
    ck_assert_int_lt(wb, wf);
    ck_assert_int_eq(t_field(out, "mem_scratch_bytes"), dk_memory_ctx_bytes(&c, 2048) +
                                                            dk_memory_chunk_bytes(&c, 2048) +
                                                            dk_memory_convert_bytes(&c));
    ck_assert_int_eq(t_field(out, "mem_total_bytes"), t_field(out, "mem_weights_bytes") +
                                                          t_field(out, "mem_kv_bytes") +
                                                          t_field(out, "mem_scratch_bytes"));
    ck_assert_ptr_nonnull(strstr(out, "\nmem_total_human: "));
    free(out);
    /* the full info prints the same memory lines */
    snprintf(cmd, sizeof cmd, "%s info %s --ctx 2048", dk_test_cli(), f);
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    ck_assert_int_eq(t_field(out, "mem_kv_bytes"),
                     (long long)c.n_layer * 2 * c.n_head_kv * c.head_dim * 2048 * 4);
    ck_assert_ptr_nonnull(strstr(out, "\ntokenizer: "));
    free(out);
    snprintf(cmd, sizeof cmd, "%s info %s --ctx zero 2>&1", dk_test_cli(), f);
    ck_assert_int_eq(dk_test_run(cmd, 1, &out), 2);
    ck_assert_str_eq(out, "dashkit info: --ctx: 'zero' is not an integer in 1..4194304\n");
    free(out);
    /* bf16 compute: the scratch adds its buffers (a chunk's activations and one layer matrix in
     * bf16, oneDNN's scratchpad); planning needs no bf16 hardware */
    snprintf(cmd, sizeof cmd, "%s info %s --ctx 2048 --chunk 512 --memory --compute bf16", dk_test_cli(), f);
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "\ncompute: bf16\n"));
    int64_t cb = dk_memory_compute_bytes(&c, DK_COMPUTE_BF16, "F16", 512);
    /* (this small model's packed layer matrices fit any machine's budget: forward.h) */
    ck_assert(dk_ctx_bf16_packs(&c));
    ck_assert_int_eq(cb, (512LL * c.n_ff + dk_memory_convert_bytes(&c) / 4) * 2 + dk_ctx_bf16_pack_bytes(&c) +
                             DK_MEMORY_DNNL_SCRATCH);
    ck_assert_int_eq(t_field(out, "mem_compute_bytes"), cb);
    ck_assert_int_eq(t_field(out, "mem_scratch_bytes"), dk_memory_ctx_bytes(&c, 2048) +
                                                            dk_memory_chunk_bytes(&c, 512) +
                                                            dk_memory_convert_bytes(&c) + cb);
    free(out);
    /* a BF16 file's matrices are used as they are: activations only; f32 compute adds nothing */
    ck_assert_int_eq(dk_memory_compute_bytes(&c, DK_COMPUTE_BF16, "BF16", 512),
                     512LL * c.n_ff * 2 + dk_ctx_bf16_pack_bytes(&c) + DK_MEMORY_DNNL_SCRATCH);
    ck_assert_int_eq(dk_memory_compute_bytes(&c, DK_COMPUTE_F32, "F16", 512), 0);
    snprintf(cmd, sizeof cmd, "%s info %s --memory --compute fp8 2>&1", dk_test_cli(), f);
    ck_assert_int_eq(dk_test_run(cmd, 1, &out), 2);
    ck_assert_str_eq(out, "dashkit info: --compute: compute 'fp8' is not one of f32, bf16, q8\n");
    free(out);
}
END_TEST

Suite *memory_suite(void);
Suite *memory_suite(void) {
    Suite *s = suite_create("memory");
    TCase *tc = tcase_create("memory");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_closed_forms);
    tcase_add_test(tc, test_read_gguf_matches_loader);
    tcase_add_loop_test(tc, test_estimate_vs_allocation, 0, 5);
    tcase_add_test(tc, test_cli_info_memory);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return dk_test_main(memory_suite()); }
