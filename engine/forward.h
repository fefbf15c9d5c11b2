/* forward.h — batched prefill, decode and greedy generation, with per-layer active sets.
 *
 * Run state (dk_ctx): scratch for a chunk of tokens plus one KV cache PER LAYER. Caches may have
 * different lengths: a layer that processes only the active tokens of a chunk appends only their
 * K/V. Every cache entry remembers the ORIGINAL position of its token; entries are in increasing
 * position order, and a query at position p attends to the entries with position <= p.
 *
 * Prefill of a chunk of n tokens at positions n_past .. n_past+n-1 keeps a hidden-state matrix
 * X (n, n_embd). Layer l processes the active set A_l (sorted chunk indices; dense = all):
 *   gather X[A_l] -> run the block on it (RoPE at original positions, K/V of A_l appended to the
 *   layer's cache, causal attention by position) -> scatter back into X[A_l].
 * Rows not in A_l pass through untouched. Sets are chosen by a hook (dk_prefill_opts.hook) that
 * sees each layer after its attention sub-layer and after the whole block; what it writes into
 * `next` is the active set from the next layer on (engine/policy.c's policies are such hooks, driven by
 * engine/prefill.c; a harness may install its own).
 *
 * FLOPs are counted by the code that does the work: 2*m*n*k for every GEMM as called (including the
 * masked upper part of diagonal attention blocks that is really computed), plus elementwise work.
 *
 * Threads: a context runs its non-BLAS work and its attention tiles on dk_blas_threads() threads
 * (re-read at every prefill/decode call, so openblas_set_num_threads() between calls takes
 * effect). Each row is computed by the same operations on any thread: outputs are bit-identical
 * for every thread count as long as OpenBLAS's sgemm is (true for the SkylakeX core dashkit
 * selects on AVX-512 CPUs; tests/test_threads.c). */
#ifndef DK_FORWARD_H
#define DK_FORWARD_H
#include <stdbool.h>
#include <stdint.h>
#include "dk_common.h"
#include "compute.h"
#include "model.h"

/* ---- FLOP counters ---- */

typedef enum {
    DK_FLOPS_QKV,     /* Q, K, V projections (+ bias) */
    DK_FLOPS_ATTN,    /* attention scores Q·Kᵀ and values P·V (GEMMs as executed) */
    DK_FLOPS_O,       /* output projection */
    DK_FLOPS_FFN,     /* gate, up, down projections and SiLU·up */
    DK_FLOPS_NORM,    /* RMSNorms and residual adds */
    DK_FLOPS_ROPE,    /* rotary embedding */
    DK_FLOPS_SOFTMAX, /* scale/mask/exp/normalise */
    DK_FLOPS_LM_HEAD, /* final norm excluded; output projection for the rows whose logits are asked */
    DK_FLOPS_HALT,    /* halting-score overhead, added by policies through the hook */
    DK_FLOPS_COUNT
} dk_flops_component;

typedef struct {
    int64_t c[DK_FLOPS_COUNT];
} dk_flops;

const char *dk_flops_component_name(dk_flops_component c); /* "qkv", "attn", "o", "ffn", ... */
int64_t dk_flops_total(const dk_flops *f);
void dk_flops_add(dk_flops *dst, const dk_flops *src);

/* ---- statistics of the last prefill/decode call ---- */

typedef struct {
    int n_active;   /* tokens of the chunk processed by this layer */
    int kv_len;     /* entries in this layer's cache after the call */
    double wall_s;  /* wall time of the layer incl. gather/scatter and hook calls */
    dk_flops flops; /* by component */
} dk_layer_stats;

typedef struct {
    int n_tokens; /* chunk length */
    int n_layer;
    dk_layer_stats *layers; /* (n_layer) */
    dk_flops head;          /* final norm + lm head */
    dk_flops total;         /* all layers + head */
    double wall_s;          /* whole call; after dk_forward_prefill_suffix: prefix + suffix call */
    double prefix_wall_s;   /* of wall_s, the shared prefix call (0 unless the stats are a suffix's) */
    double convert_s;       /* of wall_s, converting whole weight matrices (and token_embd rows) from
                            * their file type to f32 (model.h). The fused small-m path (decode; see
                            * dk_ctx_set_fused_decode) converts chunk by chunk interleaved with the
                            * products: that conversion is counted in the matmul time, not here. */
    int fused_matmuls;      /* products that took the fused small-m path (0 for F32 weights, for
                            * chunks of more than 8 rows and with the path switched off) */
} dk_forward_stats;

/* ---- halting hook ---- */

typedef enum { DK_HOOK_AFTER_ATTN, DK_HOOK_AFTER_LAYER } dk_hook_point;

/* What a hook sees. All matrices are row-major over the layer's ACTIVE rows, in active order. */
typedef struct {
    int layer;
    int n_tokens; /* chunk length n */
    int n_past;   /* position of chunk row 0 */
    int n_active;
    const int32_t *active; /* (n_active) sorted chunk indices processed at this layer */
    int n_embd;
    const float *x_in; /* (n_active, n_embd) block input */
    const float
        *u; /* (n_active, n_embd) attention output after W_o, before the residual add (AFTER_ATTN only) */
    const float *x_out; /* (n_active, n_embd) block output (AFTER_LAYER only) */
    /* Attention probabilities of the probe rows (dk_prefill_opts.probe_rows that are active at
     * this layer), AFTER_ATTN only, when the layer is in probe_layers: probs[(h*n_probe + r)*kv_len + j]
     * is head h of probe r attending to cache entry j (0 beyond the causal limit). */
    int n_probe;
    const int32_t *probe_rows; /* (n_probe) chunk indices */
    int n_head;
    int kv_len;
    const int32_t *kv_pos; /* (kv_len) original positions of this layer's cache entries */
    const float *probs;    /* (n_head, n_probe, kv_len) or NULL */
    dk_flops *flops;       /* this layer's counters; hooks add their cost to DK_FLOPS_HALT */
} dk_layer_view;

/* The active set for the layers after this one. next_active has room for n_tokens entries and
 * holds the current set on entry; write a sorted, duplicate-free subset of 0..n_tokens-1 and set
 * *n_next. Return DK_OK, or an error (with e filled) to abort the prefill. */
typedef dk_status (*dk_layer_hook)(void *user, dk_hook_point point, const dk_layer_view *v,
                                   int32_t *next_active, int *n_next, dk_err *e);

typedef struct {
    const int32_t *active; /* initial active set for layer 0 (sorted chunk indices), NULL = all */
    int n_active;
    dk_layer_hook hook; /* NULL = no hook (dense, or the fixed initial set) */
    void *hook_user;
    const int32_t *probe_rows; /* chunk indices whose attention probabilities the hook wants */
    int n_probe;
    const bool *probe_layers; /* (n_layer) layers at which to capture them; NULL = none */
    bool all_logits;          /* logits for every chunk row (n, n_vocab) instead of the last row */
    float *hidden_out;        /* optional (n, n_embd): final hidden states before the output norm */
} dk_prefill_opts;

/* ---- run state ---- */

typedef struct {
    float *k;     /* (n_ctx_max, n_head_kv*head_dim) rows 0..len-1 valid */
    float *v;     /* (n_ctx_max, n_head_kv*head_dim) */
    int32_t *pos; /* (n_ctx_max) original position of each entry, increasing */
    int len;
} dk_kv_cache;

typedef struct dk_ctx dk_ctx;

dk_status dk_ctx_create(const dk_model *m, int n_ctx_max, dk_ctx **out, dk_err *e);
void dk_ctx_free(dk_ctx *c);
void dk_ctx_reset(dk_ctx *c);       /* empties all caches; next position is 0 */
int dk_ctx_n_past(const dk_ctx *c); /* tokens fed so far = next original position */
/* Rewinds to n_past (0 <= n_past <= dk_ctx_n_past): drops every cache entry at a position >= n_past,
 * so a caller can branch from a prefix (e.g. teacher-force an answer, rewind, then decode) without
 * re-running the prefill. The remaining entries are untouched (bit-identical continuation). */
dk_status dk_ctx_truncate(dk_ctx *c, int n_past, dk_err *e);
int dk_ctx_n_ctx_max(const dk_ctx *c);
const dk_kv_cache *dk_ctx_cache(const dk_ctx *c, int layer);
const dk_forward_stats *dk_ctx_stats(const dk_ctx *c); /* of the last prefill/decode call */
const dk_model *dk_ctx_model(const dk_ctx *c);
/* What a context allocates, in bytes, from the sizes dk_ctx_create / dk_ctx_reserve allocate with
 * (memory.h's estimate is built on these): the K and V caches at n_ctx; everything else per context
 * with a pool of `threads` threads (dk_ctx_pool_threads(): dk_blas_threads() clamped to 1..64, as a
 * context sizes its pool); the scratch of a chunk of n_chunk rows; the f32 conversion buffer (a
 * context allocates it when some tensor is not F32). */
int64_t dk_ctx_kv_bytes(const dk_model_config *cfg, int n_ctx);
int64_t dk_ctx_fixed_bytes(const dk_model_config *cfg, int n_ctx, int threads);
int64_t dk_ctx_chunk_bytes(const dk_model_config *cfg, int n_chunk);
int64_t dk_ctx_convert_bytes(const dk_model_config *cfg);
/* bf16 and q8 compute keep every layer's cache a second time in bf16, head by head, for the decode
 * step (attention.h: dk_attn_decode_bf16) where head_dim % 32 == 0 (and the CPU has AVX512_BF16,
 * which these modes need anyway): n_layer * 2 * n_ctx * n_head_kv*head_dim * 2 bytes, plus the decode
 * step's key parts (n_head_kv * dk_attn_decode_parts(n_ctx) * DK_ATTN_DECODE_PART_FLOATS * 4), else 0. */
int64_t dk_ctx_kvh_bytes(const dk_model_config *cfg, int n_ctx);
/* The bf16 copy of layer l's K and V heads (rows of head_dim, n_ctx_max per head; rows [0, len) valid),
 * or false where the context keeps none now (tests). */
bool dk_ctx_cache_bf16(const dk_ctx *c, int layer, const uint16_t **k, const uint16_t **v);
/* bf16 compute packs each layer matrix once per model, shared by its contexts (compute.h's packed
 * weights: bf16, half of f32; freed with the model) when they take at most DK_CTX_BF16_PACK_MAX bytes (dk_ctx_bf16_pack_bytes, an upper bound;
 * dk_ctx_bf16_packs): models up to ~2B parameters. Larger ones round and lay out each matrix anew
 * per product (slower, no memory: 7B would need ~13 GB). A fixed bound rather than a share of this
 * machine's memory, so the same model takes the same path on every machine. */
#define DK_CTX_BF16_PACK_MAX ((int64_t)4 << 30)
int64_t dk_ctx_bf16_pack_bytes(const dk_model_config *cfg);
bool dk_ctx_bf16_packs(const dk_model_config *cfg);
/* The longest input row of a product: max(n_embd, n_head*head_dim, n_ff) (q8 compute quantizes up to
 * DK_MATVEC_MAX_M rows of it: qdot.h). */
int64_t dk_ctx_qact_k(const dk_model_config *cfg);
int dk_ctx_pool_threads(void);
/* Matmuls of few rows (m <= 8: decode steps, short chunks; lm head included), every file type:
 * on (the default), each row of W is read once in its file type and widened next to its f32 dot
 * products (matvec.h), rows split over the pool; off, the matrix is converted whole into the
 * context's conversion buffer (F32: used in place) and multiplied by one sgemm (the path every
 * larger m takes). Results differ by float rounding only (summation order); m > 8 runs the same
 * calls either way. No extra memory: the per-thread rows live in the conversion buffer. For tests
 * and the bench (decode_fused_vs_convert). */
void dk_ctx_set_fused_decode(dk_ctx *c, bool on);
bool dk_ctx_fused_decode(const dk_ctx *c);
/* Compute precision of the large products (compute.h): f32 (default, the exact path) or bf16
 * (oneDNN). bf16 fails with one line where the CPU lacks native bf16 (dk_compute_check). Products
 * of m <= DK_COMPUTE_MIN_M rows (decode) keep the f32 path in both modes. Switching to bf16 makes
 * the model's weight packs where it packs them and lacks them (dk_ctx_bf16_packs; ~1 s for a 0.5B
 * model here, once per model). */
dk_status dk_ctx_set_compute(dk_ctx *c, dk_compute mode, dk_err *e);
dk_compute dk_ctx_compute(const dk_ctx *c);

/* Runs tokens[0..n) at positions n_past.. through the model. logits: NULL, or (n_vocab) for the
 * last row, or (n, n_vocab) when opts->all_logits. opts NULL = dense. */
dk_status dk_forward_prefill(dk_ctx *c, const int32_t *tokens, int n, const dk_prefill_opts *opts,
                             float *logits, dk_err *e);

/* ---- split prefill (prefix sharing) ----
 * A chunk can be run in two parts: layers 0..l once (the prefix), then layers l+1..L-1 (the suffix)
 * any number of times, each time with its own active set / hook. Layers <= l do not depend on
 * anything chosen after l, so for a halting policy whose first decision is taken at layer l_s
 * (hook AFTER_LAYER of l_s), every setting (rho, tau, ...) shares the prefix with l = l_s.
 *
 *   dk_forward_prefill_prefix(c, tok, n, l, &o_prefix, e);   // hook may record scores at <= l
 *   for each setting:
 *       dk_forward_prefill_suffix(c, &o_setting, logits, e); // o_setting.active = set for layer l+1
 *       ... dk_forward_prefill(question), decode, dk_ctx_truncate ... as after a plain prefill
 *
 * Invariant (tested bit for bit): prefix + suffix(o with active = S) leaves logits, hidden_out,
 * every cache (k, v, pos, len), FLOP counters and n_active per layer identical to ONE
 * dk_forward_prefill whose hook sets S at AFTER_LAYER of layer l (and whose later hook calls are
 * o's). suffix with o->active NULL continues with the set the prefix's hook left (all rows when
 * it set none), i.e. exactly the full prefill with the prefix's hook.
 *
 * State rules:
 * - The prefix keeps X after layer l (dk_ctx_split_hidden), the active set its hook left for layer
 *   l+1 (dk_ctx_split_active) and the chunk's entries in the caches of layers 0..l. Until the first
 *   suffix, n_past stays at the chunk start and every other prefill/decode fails (DK_ERR_STATE).
 * - Each suffix first drops, in layers <= l, every entry at a position >= chunk end and, in layers
 *   > l, every entry at a position >= chunk start (so question/decode tokens fed after an earlier
 *   suffix are gone), runs layers l+1..L-1 and the head, and sets n_past to the chunk end.
 * - The split is forgotten by dk_ctx_reset, by dk_ctx_truncate below the chunk end, and by the next
 *   prefix call; a prefix/suffix error leaves the caches as before that call (the prefix intact on
 *   a suffix error).
 * - Prefix opts: active (set of layer 0), hook/probes for layers 0..l; all_logits/hidden_out unused.
 *   Suffix opts: active (set of layer l+1, NULL = as the prefix left it), hook/probes for layers
 *   l+1.., all_logits, hidden_out. Stats after a suffix describe the whole chunk (layers 0..l from
 *   the prefix call); wall_s = prefix + this suffix, prefix_wall_s the shared part. */
dk_status dk_forward_prefill_prefix(dk_ctx *c, const int32_t *tokens, int n, int last_layer,
                                    const dk_prefill_opts *opts, dk_err *e);
dk_status dk_forward_prefill_suffix(dk_ctx *c, const dk_prefill_opts *opts, float *logits, dk_err *e);
int dk_ctx_split_layer(const dk_ctx *c);                            /* l of the current split, -1 = none */
const float *dk_ctx_split_hidden(const dk_ctx *c);                  /* (n, n_embd) X after layer l, or NULL */
const int32_t *dk_ctx_split_active(const dk_ctx *c, int *n_active); /* set for layer l+1, or NULL */

/* One token at the next position (attends to every layer's cache, whatever its length). */
dk_status dk_forward_decode(dk_ctx *c, int32_t token, float *logits, dk_err *e);

/* Greedy generation with llama2.c run.c semantics: feeds prompt[0..n_prompt) one position per
 * step (the prompt as a prefill chunk, then decode), and from the end of the prompt appends the
 * argmax token; stops after max_steps positions in total (steps counted from position 0, as run's
 * -n), or when the model produces `stop_token` (>= 0; llama2.c stops on BOS). out receives the
 * generated tokens (capacity max_steps); returns their count in *n_out. */
dk_status dk_generate_greedy(dk_ctx *c, const int32_t *prompt, int n_prompt, int max_steps,
                             int32_t stop_token, int32_t *out, int *n_out, dk_err *e);

#endif
