/* model.h — Llama-family model: hyper-parameters, weights in their file type, tokenizer.
 *
 * Loaders: GGUF (arch llama / qwen2) and llama2.c legacy checkpoints (.bin, f32). A model can also
 * be built in memory with random weights of given shapes, stored as F32, F16, BF16 or Q8_0 (bench,
 * tests). Nothing outside this module knows which format a model came from.
 *
 * Weights stay in the type the file stores them in (F32, F16, BF16, the legacy quants Q4_0,
 * Q4_1, Q5_0, Q5_1, Q8_0, the K-quants Q2_K..Q6_K, IQ4_NL, IQ4_XS; per tensor, so llama-quantize's
 * mixes such as Q4_K_M load as written; quant.h has the table), pointing into the
 * read-only mmap of the file (no copy): peak memory = the file's tensors (page cache) + the run
 * state. One exception: where the CPU has AVX-512 VBMI (dk_q5_0r_on), Q5_0 matrices whose rows are
 * multiples of 128 are copied at load into Q5_0R (q5_0r.h: the same bytes in another order, read
 * faster) and their file pages handed back, so they are still held once. matmul.c converts a matrix to f32 in a scratch buffer right before its sgemm (one
 * matrix at a time; the lm head in row blocks; token_embd one row per looked-up token). Only
 * 1-D tensors (norms, biases) stored in another type than F32, and F32 tensors the file leaves
 * unaligned, are copied to owned f32 at load.
 *
 * Weight layout: every matrix is row-major (out, in) — ggml's ne = [in, out] — so a batch
 * Y (n, out) = X (n, in) · Wᵀ is one cblas_sgemm(NoTrans, Trans). Q/K rows are stored so that the
 * model's own RoPE style applies (rope_type NORM: adjacent pairs (2i, 2i+1); NEOX: (i, i+n_rot/2)). */
#ifndef DK_MODEL_H
#define DK_MODEL_H
#include <stdbool.h>
#include <stdint.h>
#include "dk_common.h"
#include "gguf.h"
#include "tokenizer.h"

/* ---- configuration ---- */

typedef enum { DK_ARCH_LLAMA, DK_ARCH_QWEN2 } dk_arch;
typedef enum { DK_ROPE_TYPE_NORM, DK_ROPE_TYPE_NEOX } dk_rope_type;
typedef enum { DK_MODEL_FORMAT_GGUF, DK_MODEL_FORMAT_LLAMA2C, DK_MODEL_FORMAT_RANDOM } dk_model_format;

typedef struct {
    dk_arch arch;
    int n_layer;
    int n_embd;    /* model dimension d */
    int n_head;    /* query heads */
    int n_head_kv; /* key/value heads (GQA: n_head % n_head_kv == 0) */
    int head_dim;  /* per-head dimension; n_head*head_dim need not equal n_embd */
    int n_ff;      /* FFN hidden size */
    int n_vocab;
    int n_ctx_train;
    float rope_theta; /* RoPE base */
    int n_rot;        /* rotated dims per head (<= head_dim, even) */
    dk_rope_type rope_type;
    float rms_eps;
    bool tied_output; /* lm head == token embedding */
    bool qkv_bias;    /* qwen2: biases on Q, K, V projections */
} dk_model_config;

/* Largest n_ctx_train a model may declare (and the longest context dashkit plans memory for). */
#define DK_MODEL_MAX_CTX (1 << 24)

/* The one range check of hyper-parameters every loader applies before any arithmetic on them:
 * counts positive and bounded (n_layer <= 4096, n_embd <= 65536, n_head <= 16384, head_dim <= 1024,
 * n_ff <= 2^20, n_vocab <= 2^24, n_ctx_train <= DK_MODEL_MAX_CTX), GQA divisible, n_rot even and
 * <= head_dim, rope_theta and rms_eps finite and > 0. DK_ERR_FORMAT naming path and the values. */
dk_status dk_model_config_check(const char *path, const dk_model_config *cfg, dk_err *e);

/* A GGUF's hyper-parameters (general.architecture, the ARCH.* keys with the loader's defaults,
 * n_vocab from token_embd, tied output, QKV bias), checked by dk_model_config_check. Used by
 * dk_model_load and by the header-only memory estimate, so both accept exactly the same files. */
dk_status dk_model_config_read_gguf(const dk_gguf *g, dk_model_config *cfg, dk_err *e);

/* ---- weights (const pointers into the mmap or into owned storage) ---- */

/* A matrix in its storage type: rows of `cols` elements, row r at data + r * row_bytes.
 * type is F32 (4-byte aligned), any dk_ggml_type_supported type or Q5_0R (cols a multiple of its
 * block size, so every row starts on a block). */
typedef struct {
    const void *data; /* (rows, cols) in `type` */
    uint32_t type;    /* dk_ggml_type */
    int64_t rows, cols;
    size_t row_bytes;
} dk_tensor;

typedef struct {
    const float *attn_norm; /* (n_embd) f32 */
    dk_tensor wq;           /* (n_head*head_dim, n_embd) */
    dk_tensor wk;           /* (n_head_kv*head_dim, n_embd) */
    dk_tensor wv;           /* (n_head_kv*head_dim, n_embd) */
    const float *bq;        /* (n_head*head_dim) f32 or NULL */
    const float *bk;        /* (n_head_kv*head_dim) f32 or NULL */
    const float *bv;        /* (n_head_kv*head_dim) f32 or NULL */
    dk_tensor wo;           /* (n_embd, n_head*head_dim) */
    const float *ffn_norm;  /* (n_embd) f32 */
    dk_tensor w_gate;       /* (n_ff, n_embd)  "w1" */
    dk_tensor w_up;         /* (n_ff, n_embd)  "w3" */
    dk_tensor w_down;       /* (n_embd, n_ff)  "w2" */
} dk_layer_weights;

typedef struct {
    dk_tensor tok_embd;       /* (n_vocab, n_embd) */
    dk_layer_weights *layers; /* (n_layer) */
    const float *output_norm; /* (n_embd) f32 */
    dk_tensor output;         /* (n_vocab, n_embd); == tok_embd when tied */
} dk_model_weights;

/* ---- model ---- */

typedef struct dk_model {
    dk_model_config cfg;
    dk_model_weights w;
    dk_model_format format;
    char format_name[16];    /* "gguf", "llama2c", "random" */
    char arch_name[16];      /* "llama", "qwen2" */
    char name[128];          /* general.name, file name or shape name */
    char tensor_type[16];    /* storage type of the big matrices in the file: "F32", "F16", ... */
    char tensor_types[256];  /* tensors per type, ggml names, most bytes first: "q4_K:113 q6_K:25 f32:65" */
    char file_type[32];      /* general.file_type as llama.cpp names it ("MOSTLY_Q4_K_M"), "none" if absent */
    int64_t n_params;        /* parameters counted from the tensors (tied output counted once) */
    int64_t weights_bytes;   /* the tensors in their storage type (what memory.h calls weights) */
    bool converts;           /* some tensor is not F32: the context keeps an f32 conversion scratch
                            * (== weights_bytes != 4 * n_params, the rule memory.c applies) */
    uint32_t gguf_version;   /* 0 unless GGUF */
    int n_tensors;           /* tensors in the file (0 for llama2.c / random) */
    dk_tokenizer *tokenizer; /* NULL when none could be built (see tokenizer_error) */
    char tokenizer_desc[64]; /* e.g. "spm (32000 pieces)", "bpe qwen2 (151669 pieces)", "none" */
    char tokenizer_error[1024]; /* why tokenizer is NULL, for commands that need one */
    /* private */
    void *map; /* mmapped file (llama2.c) */
    size_t map_size;
    void *gguf;   /* dk_gguf*, kept open while weights point into it */
    void **owned; /* arrays this model allocated */
    int n_owned, cap_owned;
    void *bf16_packs;                /* matmul.c's bf16 weight packs (compute.h): made by the first bf16
                                    * context that needs one, shared by every context of the model
                                    * (a cache written through their const pointer); NULL until then */
    void (*bf16_packs_free)(void *); /* frees bf16_packs (set with it) */
} dk_model;

/* Loads a GGUF or llama2.c .bin (detected by the magic). tokenizer_path (may be NULL) names a
 * llama2.c tok*.bin and takes precedence over a tokenizer embedded in a GGUF. A model whose
 * tokenizer cannot be built (unknown tokenizer.ggml.model or pre-tokenizer) still loads, with
 * tokenizer NULL and tokenizer_error set, so id-level work needs no tokenizer. */
dk_status dk_model_load(const char *path, const char *tokenizer_path, dk_model **out, dk_err *e);
void dk_model_free(dk_model *m);

/* Random-weight model of the given shapes (cfg fully filled by the caller), weights drawn
 * uniformly from ±scale/sqrt(fan_in) by a seeded generator, norms 1. No tokenizer. */
dk_status dk_model_create_random(const dk_model_config *cfg, uint64_t seed, const char *name, dk_model **out,
                                 dk_err *e);
/* The same weights rounded to `type` (a dk_ggml_type_quantizable type; n_embd, n_ff and
 * n_head*head_dim multiples of its block size) and stored in that type, as a GGUF of that type would be:
 * matrices and token_embd in `type`, norms and biases f32. F32 == dk_model_create_random. */
dk_status dk_model_create_random_typed(const dk_model_config *cfg, uint64_t seed, const char *name,
                                       uint32_t type, dk_model **out, dk_err *e);

/* Row r of a matrix converted to f32 (dst: cols floats). */
void dk_tensor_row_f32(const dk_tensor *t, int64_t r, float *dst);

/* Named shapes for benchmarks/tests: "qwen2-0.5b", "llama-tiny" (2 layers, d 64), ...
 * Returns false for an unknown name. dk_model_shape_names() lists them, comma separated. */
bool dk_model_shape(const char *name, dk_model_config *cfg);
const char *dk_model_shape_names(void);

/* The tokenizer of a model file, owned by the caller. A GGUF's own is read from its tokenizer keys
 * alone (dk_tokenizer_load_gguf: any general.architecture, vocab-only files too); a llama2.c
 * checkpoint, or tokenizer_path (a llama2.c tok*.bin), needs the model's n_vocab, so the model
 * is loaded for it. */
dk_status dk_model_load_tokenizer(const char *path, const char *tokenizer_path, dk_tokenizer **out,
                                  dk_err *e);

/* The training-context rule, for every command that runs a prompt: up to n_ctx_train tokens it
 * runs as is; longer, it runs (RoPE positions past training are extrapolated; *beyond = 1 and the
 * command prints a warning); longer than DK_MODEL_MAX_CTX_FACTOR x n_ctx_train it is refused
 * (DK_ERR_ARG naming both lengths): no model in scope gives meaningful output there. A model that
 * declares no training context (0) is not checked. */
#define DK_MODEL_MAX_CTX_FACTOR 8
dk_status dk_model_check_context(const dk_model *m, int64_t n_tokens, int *beyond, dk_err *e);

/* Tokenizer or a DK_ERR_UNSUPPORTED/DK_ERR_ARG error explaining why there is none. */
dk_status dk_model_tokenizer(const dk_model *m, const dk_tokenizer **tok, dk_err *e);

const char *dk_arch_name(dk_arch a);
const char *dk_rope_type_name(dk_rope_type r);

#endif
