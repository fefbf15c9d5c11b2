/* memory.h — how much memory a model needs at a context length, before loading it.
 *
 * Three parts, in bytes:
 *   weights  the tensors in their file type (GGUF tensor infos: F16/BF16 2 bytes per element,
 *            Q8_0 34 bytes per 32, ...), read from the header without touching the data. The
 *            engine keeps them in that type, mmapped (page cache, counted in the process RSS once
 *            touched); weights_f32 is the same tensors expanded to f32 (what a loader that
 *            converted every tensor at load time would hold; printed for comparison only).
 *   kv       n_layer * 2 * n_head_kv * head_dim * n_ctx * 4: the K and V caches of dk_ctx (f32).
 *            In bf16 and q8 compute (compute_bytes, below) a bf16 copy of them, half that size, for
 *            the decode step where head_dim % 32 == 0 (forward.h: dk_ctx_kvh_bytes).
 *   scratch  everything else dk_ctx allocates (ctx.c): per context (RoPE tables, cache
 *            positions, one attention block's scores/queries/outputs) and per prefill chunk of
 *            n_chunk tokens (hidden states, normed inputs, attention and FFN activations, index
 *            arrays). dashkit prefills a prompt's context as ONE chunk, so n_chunk = n_ctx is
 *            the estimate for `dashkit run`/`eval`. Plus, when any tensor is stored in another
 *            type than F32 (weights != weights_f32), the conversion buffer: one layer matrix in
 *            f32, max(n_head*head_dim, n_ff) * n_embd * 4 (dk_memory_convert_bytes), which also
 *            holds the lm head's row blocks and, for decode (the fused small-m path), the
 *            per-task row chunks (<= 64 rows, ~128 KiB each): no memory beyond it.
 * The parts come from the sizes dk_ctx_create / dk_ctx_reserve allocate with (dk_ctx_*_bytes,
 * forward.h), so the estimate cannot drift from the allocations (test_memory also checks it
 * against the measured heap growth of a real dk_ctx). Not counted: attention probabilities
 * captured for probe rows (FastV/SnapKV: n_head * n_probe * kv_len * 4 at the decision layer,
 * see dk_memory_probe_bytes), the split-prefill copy of X (n_chunk * n_embd * 4 when prefix
 * sharing is used), logit rows, the tokenizer, and the < 2 MiB by which the block of a model's
 * Q5_0R matrices (model.h) rounds their bytes up to whole 2 MiB pages. */
#ifndef DK_MEMORY_H
#define DK_MEMORY_H
#include <stdint.h>
#include "compute.h"
#include "dk_common.h"
#include "model.h"

typedef struct {
    int64_t weights_bytes;       /* tensors in their file type */
    int64_t weights_f32_bytes;   /* the same tensors as f32 */
    int64_t kv_bytes;            /* K and V caches at n_ctx */
    int64_t scratch_ctx_bytes;   /* dk_ctx_create's allocations other than K/V */
    int64_t scratch_chunk_bytes; /* dk_ctx_reserve(n_chunk) */
    int64_t convert_bytes;       /* f32 conversion buffer (0 when every tensor is F32) */
    int64_t compute_bytes; /* bf16 compute's buffers (0 in f32 compute; dk_memory_estimate_add_compute) */
    int64_t scratch_bytes; /* scratch_ctx + scratch_chunk + convert + compute */
    int64_t total_bytes;   /* weights + kv + scratch */
    int n_ctx, n_chunk;
} dk_memory_estimate;

/* Hyper-parameters and tensor byte counts of a GGUF model from its header only, read and
 * range-checked by dk_model_config_read_gguf, as dk_model_load does (a file this refuses, loading
 * refuses, with the same message). type: the file type of most matrix elements ("BF16", ...). */
dk_status dk_memory_read_gguf(const char *path, dk_model_config *cfg, int64_t *weights_bytes,
                              int64_t *weights_f32_bytes, char type[16], dk_err *e);

int64_t dk_memory_kv_bytes(const dk_model_config *cfg, int n_ctx);
int64_t dk_memory_ctx_bytes(const dk_model_config *cfg, int n_ctx);
int64_t dk_memory_chunk_bytes(const dk_model_config *cfg, int n_chunk);
/* The conversion buffer dk_ctx_create allocates for a model with non-F32 tensors. */
int64_t dk_memory_convert_bytes(const dk_model_config *cfg);
/* Probabilities captured for n_probe probe rows against kv_len cache entries. */
int64_t dk_memory_probe_bytes(const dk_model_config *cfg, int n_probe, int kv_len);

/* Fills every field; n_chunk <= 0 means n_ctx. convert_bytes counts when weights_bytes differs
 * from weights_f32_bytes (the rule dk_model.converts applies). */
void dk_memory_estimate_fill(const dk_model_config *cfg, int64_t weights_bytes, int64_t weights_f32_bytes,
                             int n_ctx, int n_chunk, dk_memory_estimate *out);

/* bf16 compute's buffers for chunks of n_chunk rows (compute.h, dk_compute_bf16_bytes): one product's
 * activations in bf16 (n_chunk x the widest product input, max(n_embd, n_head*head_dim, n_ff)) and,
 * unless the matrices are BF16 in the file (type "BF16": used as they are), one layer matrix rounded
 * to bf16 (the size of the conversion buffer, which also bounds the lm head's row blocks), plus
 * DK_MEMORY_DNNL_SCRATCH for oneDNN's own scratchpad (its brgemm blocks: 129-257 KiB on 2 threads at
 * Qwen2-0.5B's products, queried from oneDNN 2.6), plus the packed layer matrices where the
 * model's contexts pack them (forward.h: dk_ctx_bf16_packs, dk_ctx_bf16_pack_bytes; made once per
 * model and shared, so a second context of the same model allocates them no more: an upper bound
 * there). 0 for f32 compute. */
enum { DK_MEMORY_DNNL_SCRATCH = 1 << 20 };
int64_t dk_memory_compute_bytes(const dk_model_config *cfg, dk_compute compute, const char *type,
                                int n_chunk);
/* Adds dk_memory_compute_bytes (for the estimate's n_chunk) and, in bf16 and q8 compute, the bf16 copy
 * of the caches the decode step reads (forward.h: dk_ctx_kvh_bytes at the estimate's n_ctx) to an
 * estimate that dk_memory_estimate_fill filled: compute_bytes, scratch_bytes and total_bytes. */
void dk_memory_estimate_add_compute(const dk_model_config *cfg, dk_compute compute, const char *type,
                                    dk_memory_estimate *o);

/* "15.23 GiB", "512.0 MiB", "37 B" into buf. */
const char *dk_memory_human(int64_t bytes, char *buf, size_t n);

#endif
