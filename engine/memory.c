/* memory.c — memory estimate of a model at a context length (see memory.h). */
#include "memory.h"
#include "forward.h"
#include "gguf.h"
#include "matvec.h"
#include "qdot.h"
#include "quant.h"
#include <stdio.h>
#include <string.h>

/* ---- GGUF header ---- */

dk_status dk_memory_read_gguf(const char *path, dk_model_config *c, int64_t *weights_bytes,
                              int64_t *weights_f32_bytes, char type[16], dk_err *e) {
    dk_gguf *g;
    dk_status st = dk_gguf_open(path, &g, e);
    if (st) return st;
    if ((st = dk_model_config_read_gguf(g, c, e))) goto done;
    int64_t wb = 0, wf = 0, by_type[64] = {0};
    for (int64_t i = 0; i < dk_gguf_n_tensors(g); i++) {
        const dk_gguf_tensor *t = dk_gguf_tensor_at(g, i);
        wb += (int64_t)t->nbytes;
        wf += (int64_t)t->n_elems * 4;
        if (t->n_dims >= 2 && t->type < 64) by_type[t->type] += (int64_t)t->n_elems;
    }
    int best = 0;
    for (int t = 1; t < 64; t++)
        if (by_type[t] > by_type[best]) best = t;
    if (type)
        snprintf(type, 16, "%s", dk_ggml_type_name((uint32_t)best) ? dk_ggml_type_name((uint32_t)best) : "?");
    if (weights_bytes) *weights_bytes = wb;
    if (weights_f32_bytes) *weights_f32_bytes = wf;
done:
    dk_gguf_close(g);
    return st;
}

/* ---- the parts: what a dk_ctx allocates, from the sizes it allocates with (ctx.c) ---- */

int64_t dk_memory_kv_bytes(const dk_model_config *c, int n_ctx) { return dk_ctx_kv_bytes(c, n_ctx); }

/* attention scratch exists once per pool thread: the pool dk_ctx_create would start now */
int64_t dk_memory_ctx_bytes(const dk_model_config *c, int n_ctx) {
    return dk_ctx_fixed_bytes(c, n_ctx, dk_ctx_pool_threads());
}

int64_t dk_memory_chunk_bytes(const dk_model_config *c, int n_chunk) {
    return dk_ctx_chunk_bytes(c, n_chunk);
}

/* The fused small-m path's per-task chunks are slices of the conversion buffer: nothing more. */
int64_t dk_memory_convert_bytes(const dk_model_config *c) { return dk_ctx_convert_bytes(c); }

int64_t dk_memory_probe_bytes(const dk_model_config *c, int n_probe, int kv_len) {
    return (int64_t)c->n_head * n_probe * (int64_t)kv_len * 4;
}

void dk_memory_estimate_fill(const dk_model_config *c, int64_t weights_bytes, int64_t weights_f32_bytes,
                             int n_ctx, int n_chunk, dk_memory_estimate *o) {
    memset(o, 0, sizeof *o);
    if (n_chunk <= 0 || n_chunk > n_ctx) n_chunk = n_ctx;
    o->n_ctx = n_ctx;
    o->n_chunk = n_chunk;
    o->weights_bytes = weights_bytes;
    o->weights_f32_bytes = weights_f32_bytes;
    o->kv_bytes = dk_memory_kv_bytes(c, n_ctx);
    o->scratch_ctx_bytes = dk_memory_ctx_bytes(c, n_ctx);
    o->scratch_chunk_bytes = dk_memory_chunk_bytes(c, n_chunk);
    o->convert_bytes = weights_bytes != weights_f32_bytes ? dk_memory_convert_bytes(c) : 0;
    o->scratch_bytes = o->scratch_ctx_bytes + o->scratch_chunk_bytes + o->convert_bytes;
    o->total_bytes = o->weights_bytes + o->kv_bytes + o->scratch_bytes;
}

int64_t dk_memory_compute_bytes(const dk_model_config *c, dk_compute compute, const char *type, int n_chunk) {
    if (!dk_compute_bf16_on(compute)) return 0;
    int64_t k_max = dk_ctx_qact_k(c);
    int64_t w_elems = type && !strcmp(type, "BF16") ? 0 : dk_memory_convert_bytes(c) / 4;
    int64_t packs = dk_ctx_bf16_packs(c) ? dk_ctx_bf16_pack_bytes(c) : 0;
    int64_t qact = compute == DK_COMPUTE_Q8 ? dk_qact_bytes(DK_MATVEC_MAX_M * k_max) : 0;
    return dk_compute_bf16_bytes(n_chunk, (int)k_max, w_elems) + packs + qact + DK_MEMORY_DNNL_SCRATCH;
}

void dk_memory_estimate_add_compute(const dk_model_config *c, dk_compute compute, const char *type,
                                    dk_memory_estimate *o) {
    int64_t b = dk_memory_compute_bytes(c, compute, type, o->n_chunk) +
                (dk_compute_bf16_on(compute) ? dk_ctx_kvh_bytes(c, o->n_ctx) : 0);
    o->compute_bytes += b;
    o->scratch_bytes += b;
    o->total_bytes += b;
}

const char *dk_memory_human(int64_t b, char *buf, size_t n) {
    static const char *const u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int i = 0;
    while (v >= 1024.0 && i < 4) {
        v /= 1024.0;
        i++;
    }
    if (i == 0) snprintf(buf, n, "%lld B", (long long)b);
    else snprintf(buf, n, "%.2f %s", v, u[i]);
    return buf;
}
