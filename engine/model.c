/* model.c — model loading (GGUF, llama2.c .bin) and random-weight models. */
#include "model.h"
#include "gguf.h"
#include "q5_0r.h"
#include "quant.h"
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

const char *dk_arch_name(dk_arch a) { return a == DK_ARCH_QWEN2 ? "qwen2" : "llama"; }
const char *dk_rope_type_name(dk_rope_type r) { return r == DK_ROPE_TYPE_NEOX ? "neox" : "norm"; }

/* ---- owned storage ---- */

/* p (from malloc or posix_memalign) owned by (and freed with) the model; false when out of memory */
static bool dk_model_own(dk_model *m, void *p) {
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? 2 * m->cap_owned : 64;
        void **o = realloc(m->owned, (size_t)cap * sizeof *o);
        if (!o) return false;
        m->owned = o;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = p;
    return true;
}

/* n bytes owned by (and freed with) the model */
static void *dk_model_alloc(dk_model *m, size_t n) {
    void *p = malloc(n ? n : 1);
    if (p && !dk_model_own(m, p)) {
        free(p);
        return NULL;
    }
    return p;
}

void dk_model_free(dk_model *m) {
    if (!m) return;
    if (m->bf16_packs_free) m->bf16_packs_free(m->bf16_packs);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->w.layers);
    if (m->tokenizer) dk_tokenizer_free(m->tokenizer);
    if (m->gguf) dk_gguf_close(m->gguf);
    if (m->map) munmap(m->map, m->map_size);
    free(m);
}

/* The one range check of a model's hyper-parameters, whatever the loader (GGUF header, llama2.c
 * header, random shapes): every later product (n_layer*n_head_kv*head_dim*n_ctx*4, n_vocab*n_embd,
 * ...) fits in int64 and every float is finite and positive. */
dk_status dk_model_config_check(const char *path, const dk_model_config *c, dk_err *e) {
    if (c->n_layer <= 0 || c->n_layer > 4096 || c->n_embd <= 0 || c->n_embd > 1 << 16 || c->n_head <= 0 ||
        c->n_head > 1 << 14 || c->n_head_kv <= 0 || c->n_head % c->n_head_kv || c->head_dim <= 0 ||
        c->head_dim > 1024 || c->n_ff <= 0 || c->n_ff > 1 << 20 || c->n_vocab <= 0 || c->n_vocab > 1 << 24 ||
        c->n_rot <= 0 || c->n_rot > c->head_dim || c->n_rot % 2 || !(c->rope_theta > 0) ||
        !isfinite(c->rope_theta) || !(c->rms_eps > 0) || !isfinite(c->rms_eps) || c->n_ctx_train < 0 ||
        c->n_ctx_train > DK_MODEL_MAX_CTX)
        return dk_fail(
            e, DK_ERR_FORMAT,
            "%s: invalid hyper-parameters (n_layer %d, n_embd %d, n_head %d, n_head_kv %d, head_dim %d, "
            "n_ff %d, n_vocab %d, n_rot %d, n_ctx_train %d, rope_theta %g, rms_eps %g)",
            path, c->n_layer, c->n_embd, c->n_head, c->n_head_kv, c->head_dim, c->n_ff, c->n_vocab, c->n_rot,
            c->n_ctx_train, c->rope_theta, c->rms_eps);
    return DK_OK;
}

static int64_t dk_config_n_params(const dk_model_config *c) {
    int64_t d = c->n_embd, q = (int64_t)c->n_head * c->head_dim, kv = (int64_t)c->n_head_kv * c->head_dim;
    int64_t per = 2 * d + d * q * 2 + d * kv * 2 + 3 * d * c->n_ff + (c->qkv_bias ? q + 2 * kv : 0);
    return (int64_t)c->n_vocab * d * (c->tied_output ? 1 : 2) + d + c->n_layer * per;
}

/* ---- tensors ---- */

static dk_tensor dk_tensor_f32(const float *p, int64_t rows, int64_t cols) {
    return (dk_tensor){
        .data = p, .type = DK_GGML_TYPE_F32, .rows = rows, .cols = cols, .row_bytes = (size_t)cols * 4};
}

void dk_tensor_row_f32(const dk_tensor *t, int64_t r, float *dst) {
    dk_dequantize(t->type, (const uint8_t *)t->data + (size_t)r * t->row_bytes, dst, (size_t)t->cols);
}

/* ---- GGUF ---- */

typedef struct {
    dk_model *m;
    dk_gguf *g;
    const char *path;
    dk_err *e;
    dk_status st;
} dk_gguf_loader;

/* The tensor `name` of exactly shape (ne1 rows of ne0); ne1 = 0 means 1-D. NULL (L->st set)
 * when absent (and not optional), misshapen or of an unsupported type. */
static const dk_gguf_tensor *dk_gguf_check(dk_gguf_loader *L, const char *name, int64_t ne0, int64_t ne1,
                                           bool optional) {
    const dk_gguf_tensor *t = dk_gguf_find_tensor(L->g, name);
    if (!t) {
        if (!optional) L->st = dk_fail(L->e, DK_ERR_FORMAT, "%s: missing tensor '%s'", L->path, name);
        return NULL;
    }
    bool ok = ne1 == 0 ? (t->n_dims == 1 && (int64_t)t->ne[0] == ne0)
                       : (t->n_dims == 2 && (int64_t)t->ne[0] == ne0 && (int64_t)t->ne[1] == ne1);
    if (!ok) {
        L->st = dk_fail(L->e, DK_ERR_FORMAT,
                        "%s: tensor '%s' has shape [%llu, %llu, %llu] (n_dims %u), expected [%lld, %lld]",
                        L->path, name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                        (unsigned long long)t->ne[2], t->n_dims, (long long)ne0, (long long)(ne1 ? ne1 : 1));
        return NULL;
    }
    if (!dk_ggml_type_supported(t->type)) {
        L->st = dk_fail(L->e, DK_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s, not supported (%s are)",
                        L->path, name, dk_ggml_type_name(t->type), dk_ggml_supported_names());
        return NULL;
    }
    return t;
}

/* f32 copy of a tensor unless it is F32 and aligned in the mapping (then used in place). */
static const float *dk_gguf_f32(dk_gguf_loader *L, const dk_gguf_tensor *t, const char *name) {
    if (t->type == DK_GGML_TYPE_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) return t->data;
    float *dst = dk_model_alloc(L->m, t->n_elems * sizeof *dst);
    if (!dst) {
        L->st = dk_fail(L->e, DK_ERR_NOMEM, "%s: out of memory converting '%s'", L->path, name);
        return NULL;
    }
    dk_dequantize(t->type, t->data, dst, t->n_elems);
    return dst;
}

/* 1-D tensor (norm, bias) as f32. */
static const float *dk_gguf_vec(dk_gguf_loader *L, const char *name, int64_t ne0) {
    const dk_gguf_tensor *t = dk_gguf_check(L, name, ne0, 0, false);
    return t ? dk_gguf_f32(L, t, name) : NULL;
}

/* Matrix (ne1 rows of ne0) in its file type, pointing into the mapping. */
static bool dk_gguf_mat(dk_gguf_loader *L, const char *name, int64_t ne0, int64_t ne1, dk_tensor *out) {
    const dk_gguf_tensor *t = dk_gguf_check(L, name, ne0, ne1, false);
    if (!t) return false;
    *out = (dk_tensor){.data = t->data,
                       .type = t->type,
                       .rows = ne1,
                       .cols = ne0,
                       .row_bytes = dk_ggml_row_bytes(t->type, ne0)};
    if (t->type == DK_GGML_TYPE_F32 && !(out->data = dk_gguf_f32(L, t, name))) return false;
    return true;
}

/* An optional integer key (def when absent), refused beyond int range. */
static dk_status dk_gguf_u32_opt(const dk_gguf *g, const char *key, int *v, int def, dk_err *e) {
    if (dk_gguf_find_key(g, key) < 0) {
        *v = def;
        return DK_OK;
    }
    uint32_t x;
    dk_status st = dk_gguf_get_u32(g, key, &x, e);
    if (st) return st;
    if (x > INT32_MAX)
        return dk_fail(e, DK_ERR_FORMAT, "%s: key '%s' value %u too large", dk_gguf_path(g), key, x);
    *v = (int)x;
    return DK_OK;
}

static dk_status dk_gguf_f32_opt(const dk_gguf *g, const char *key, float *v, float def, dk_err *e) {
    if (dk_gguf_find_key(g, key) < 0) {
        *v = def;
        return DK_OK;
    }
    return dk_gguf_get_f32(g, key, v, e);
}

dk_status dk_model_config_read_gguf(const dk_gguf *g, dk_model_config *c, dk_err *e) {
    const char *path = dk_gguf_path(g), *arch;
    size_t alen;
    memset(c, 0, sizeof *c);
    dk_status st = dk_gguf_get_str(g, "general.architecture", &arch, &alen, e);
    if (st) return st;
    if (alen == 5 && !memcmp(arch, "llama", 5)) {
        c->arch = DK_ARCH_LLAMA;
        c->rope_type = DK_ROPE_TYPE_NORM;
    } else if (alen == 5 && !memcmp(arch, "qwen2", 5)) {
        c->arch = DK_ARCH_QWEN2;
        c->rope_type = DK_ROPE_TYPE_NEOX;
    } else
        return dk_fail(e, DK_ERR_UNSUPPORTED,
                       "%s: general.architecture '%.*s' is not supported (llama, qwen2 are)", path,
                       (int)(alen > 40 ? 40 : alen), arch);
    const char *an = dk_arch_name(c->arch);
    char key[128];
#define DK_KEY(suffix) (snprintf(key, sizeof key, "%s.%s", an, suffix), key)
    if ((st = dk_gguf_u32_opt(g, DK_KEY("block_count"), &c->n_layer, -1, e)) ||
        (st = dk_gguf_u32_opt(g, DK_KEY("embedding_length"), &c->n_embd, -1, e)) ||
        (st = dk_gguf_u32_opt(g, DK_KEY("feed_forward_length"), &c->n_ff, -1, e)) ||
        (st = dk_gguf_u32_opt(g, DK_KEY("attention.head_count"), &c->n_head, -1, e)))
        return st;
    if (c->n_layer < 0 || c->n_embd < 0 || c->n_ff < 0 || c->n_head < 0)
        return dk_fail(
            e, DK_ERR_FORMAT,
            "%s: missing one of %s.block_count/embedding_length/feed_forward_length/attention.head_count",
            path, an);
    if (c->n_head == 0) return dk_fail(e, DK_ERR_FORMAT, "%s: %s.attention.head_count is 0", path, an);
    if ((st = dk_gguf_u32_opt(g, DK_KEY("attention.head_count_kv"), &c->n_head_kv, c->n_head, e)) ||
        (st = dk_gguf_u32_opt(g, DK_KEY("attention.key_length"), &c->head_dim, c->n_embd / c->n_head, e)) ||
        (st = dk_gguf_u32_opt(g, DK_KEY("context_length"), &c->n_ctx_train, 0, e)) ||
        (st = dk_gguf_u32_opt(g, DK_KEY("rope.dimension_count"), &c->n_rot, c->head_dim, e)) ||
        (st = dk_gguf_f32_opt(g, DK_KEY("rope.freq_base"), &c->rope_theta, 10000.0f, e)) ||
        (st = dk_gguf_f32_opt(g, DK_KEY("attention.layer_norm_rms_epsilon"), &c->rms_eps, 1e-5f, e)))
        return st;
#undef DK_KEY
    const dk_gguf_tensor *te = dk_gguf_find_tensor(g, "token_embd.weight");
    if (!te) return dk_fail(e, DK_ERR_FORMAT, "%s: missing tensor 'token_embd.weight'", path);
    c->n_vocab = te->n_dims == 2 && te->ne[1] <= INT32_MAX ? (int)te->ne[1] : -1;
    c->tied_output = dk_gguf_find_tensor(g, "output.weight") == NULL;
    c->qkv_bias = dk_gguf_find_tensor(g, "blk.0.attn_q.bias") != NULL;
    return dk_model_config_check(path, c, e);
}

/* The tokenizer the file carries (tokenizer_gguf.c); when it cannot be built the reason is kept
 * in the model (tokenizer_error) rather than failing the load, so id-level work still runs. */
static dk_status dk_gguf_tokenizer(dk_gguf_loader *L) {
    dk_model *m = L->m;
    dk_err te = {{0}};
    if (dk_tokenizer_load_gguf(L->g, L->path, &m->tokenizer, m->tokenizer_desc, sizeof m->tokenizer_desc,
                               &te) != DK_OK) {
        snprintf(m->tokenizer_error, sizeof m->tokenizer_error, "%.900s", te.msg);
        return DK_OK;
    }
    if (dk_tokenizer_n_vocab(m->tokenizer) != m->cfg.n_vocab)
        return dk_fail(L->e, DK_ERR_FORMAT,
                       "%s: tokenizer.ggml.tokens has %d entries but token_embd has %d rows", L->path,
                       dk_tokenizer_n_vocab(m->tokenizer), m->cfg.n_vocab);
    return DK_OK;
}

/* llama.cpp's llama_ftype values (general.file_type) by name; "" for a retired value */
static const char *const dk_file_type_names[] = {
    "ALL_F32",
    "MOSTLY_F16",
    "MOSTLY_Q4_0",
    "MOSTLY_Q4_1",
    "MOSTLY_Q4_1_SOME_F16",
    "",
    "",
    "MOSTLY_Q8_0",
    "MOSTLY_Q5_0",
    "MOSTLY_Q5_1",
    "MOSTLY_Q2_K",
    "MOSTLY_Q3_K_S",
    "MOSTLY_Q3_K_M",
    "MOSTLY_Q3_K_L",
    "MOSTLY_Q4_K_S",
    "MOSTLY_Q4_K_M",
    "MOSTLY_Q5_K_S",
    "MOSTLY_Q5_K_M",
    "MOSTLY_Q6_K",
    "MOSTLY_IQ2_XXS",
    "MOSTLY_IQ2_XS",
    "MOSTLY_Q2_K_S",
    "MOSTLY_IQ3_XS",
    "MOSTLY_IQ3_XXS",
    "MOSTLY_IQ1_S",
    "MOSTLY_IQ4_NL",
    "MOSTLY_IQ3_S",
    "MOSTLY_IQ3_M",
    "MOSTLY_IQ2_S",
    "MOSTLY_IQ2_M",
    "MOSTLY_IQ4_XS",
    "MOSTLY_IQ1_M",
    "MOSTLY_BF16",
    "",
    "",
    "",
    "MOSTLY_TQ1_0",
    "MOSTLY_TQ2_0",
};

static void dk_gguf_file_type(dk_model *m, dk_gguf *g) {
    uint32_t ft;
    if (dk_gguf_find_key(g, "general.file_type") < 0) snprintf(m->file_type, sizeof m->file_type, "none");
    else if (dk_gguf_get_u32(g, "general.file_type", &ft, NULL) != DK_OK)
        snprintf(m->file_type, sizeof m->file_type, "invalid");
    else if (ft < sizeof dk_file_type_names / sizeof dk_file_type_names[0] && dk_file_type_names[ft][0])
        snprintf(m->file_type, sizeof m->file_type, "%s", dk_file_type_names[ft]);
    else snprintf(m->file_type, sizeof m->file_type, "unknown (%u)", ft);
}

/* "q4_K:113 q6_K:25 f32:65": tensors per type (ggml's lower-case names), most bytes first */
static void dk_types_histogram(char *out, size_t n, const int *count, const int64_t *bytes, int n_types) {
    bool done[64] = {false};
    size_t o = 0;
    out[0] = 0;
    for (;;) {
        int best = -1;
        for (int t = 0; t < n_types; t++)
            if (count[t] && !done[t] && (best < 0 || bytes[t] > bytes[best])) best = t;
        if (best < 0 || o + 1 >= n) break;
        done[best] = true;
        char nm[16];
        const char *u = dk_ggml_type_name((uint32_t)best);
        size_t k = 0;
        for (; u && u[k] && k + 1 < sizeof nm; k++) nm[k] = (char)tolower((unsigned char)u[k]);
        nm[k] = 0;
        if (k >= 2 && nm[k - 2] == '_' && nm[k - 1] == 'k') nm[k - 1] = 'K'; /* ggml spells q4_K */
        int w = snprintf(out + o, n - o, "%s%s:%d", o ? " " : "", u ? nm : "?", count[best]);
        if (w < 0 || (size_t)w >= n - o) break;
        o += (size_t)w;
    }
}

static dk_status dk_model_load_gguf(dk_model *m, const char *path, dk_err *e) {
    dk_gguf *g;
    dk_status st = dk_gguf_open(path, &g, e);
    if (st) return st;
    m->gguf = g;
    m->format = DK_MODEL_FORMAT_GGUF;
    snprintf(m->format_name, sizeof m->format_name, "gguf");
    m->gguf_version = dk_gguf_version(g);
    m->n_tensors = (int)dk_gguf_n_tensors(g);
    dk_gguf_loader L = {m, g, path, e, DK_OK};
    dk_model_config *c = &m->cfg;
    if ((st = dk_model_config_read_gguf(g, c, e))) return st;
    snprintf(m->arch_name, sizeof m->arch_name, "%s", dk_arch_name(c->arch));
    if (dk_gguf_find_key(g, "general.name") >= 0) {
        const char *nm;
        size_t nl;
        if (dk_gguf_get_str(g, "general.name", &nm, &nl, NULL) == DK_OK)
            snprintf(m->name, sizeof m->name, "%.*s", (int)(nl > 120 ? 120 : nl), nm);
    }

    /* storage type: the type holding most matrix elements */
    int64_t by_type[64] = {0}, type_bytes[64] = {0};
    int type_count[64] = {0};
    for (int64_t i = 0; i < dk_gguf_n_tensors(g); i++) {
        const dk_gguf_tensor *t = dk_gguf_tensor_at(g, i);
        m->n_params += (int64_t)t->n_elems;
        m->weights_bytes += (int64_t)t->nbytes;
        if (t->n_dims >= 2 && t->type < 64) by_type[t->type] += (int64_t)t->n_elems;
        if (t->type < 64) {
            type_count[t->type]++;
            type_bytes[t->type] += (int64_t)t->nbytes;
        }
    }
    dk_types_histogram(m->tensor_types, sizeof m->tensor_types, type_count, type_bytes, 64);
    dk_gguf_file_type(m, g);
    int best = 0;
    for (int t = 1; t < 64; t++)
        if (by_type[t] > by_type[best]) best = t;
    snprintf(m->tensor_type, sizeof m->tensor_type, "%s",
             dk_ggml_type_name((uint32_t)best) ? dk_ggml_type_name((uint32_t)best) : "?");
    m->converts = m->weights_bytes != 4 * m->n_params;

    int64_t d = c->n_embd, q = (int64_t)c->n_head * c->head_dim, kv = (int64_t)c->n_head_kv * c->head_dim;
    dk_model_weights *w = &m->w;
    if (!(w->layers = calloc((size_t)c->n_layer, sizeof *w->layers)))
        return dk_fail(e, DK_ERR_NOMEM, "%s: out of memory", path);
    if (!dk_gguf_mat(&L, "token_embd.weight", d, c->n_vocab, &w->tok_embd)) return L.st;
    if (!(w->output_norm = dk_gguf_vec(&L, "output_norm.weight", d))) return L.st;
    if (c->tied_output) w->output = w->tok_embd;
    else if (!dk_gguf_mat(&L, "output.weight", d, c->n_vocab, &w->output)) return L.st;
    for (int l = 0; l < c->n_layer; l++) {
        dk_layer_weights *lw = &w->layers[l];
        char nm[96];
#define DK_V(field, suffix, ne0)                                  \
    do {                                                          \
        snprintf(nm, sizeof nm, "blk.%d.%s", l, suffix);          \
        if (!(lw->field = dk_gguf_vec(&L, nm, ne0))) return L.st; \
    } while (0)
#define DK_M(field, suffix, ne0, ne1)                                \
    do {                                                             \
        snprintf(nm, sizeof nm, "blk.%d.%s", l, suffix);             \
        if (!dk_gguf_mat(&L, nm, ne0, ne1, &lw->field)) return L.st; \
    } while (0)
        DK_V(attn_norm, "attn_norm.weight", d);
        DK_M(wq, "attn_q.weight", d, q);
        DK_M(wk, "attn_k.weight", d, kv);
        DK_M(wv, "attn_v.weight", d, kv);
        DK_M(wo, "attn_output.weight", q, d);
        DK_V(ffn_norm, "ffn_norm.weight", d);
        DK_M(w_gate, "ffn_gate.weight", d, c->n_ff);
        DK_M(w_up, "ffn_up.weight", d, c->n_ff);
        DK_M(w_down, "ffn_down.weight", c->n_ff, d);
        if (c->qkv_bias) {
            DK_V(bq, "attn_q.bias", q);
            DK_V(bk, "attn_k.bias", kv);
            DK_V(bv, "attn_v.bias", kv);
        }
#undef DK_V
#undef DK_M
    }
    return dk_gguf_tokenizer(&L);
}

/* ---- Q5_0R ----
 * Where dk_q5_0r_on, every Q5_0 matrix whose rows are whole units (cols a multiple of 128) becomes
 * Q5_0R (q5_0r.h): the same bytes in the order the q8 kernels read fastest. Mapped matrices are
 * copied into one owned block (2 MiB pages: one fault per 2 MiB, and fewer TLB misses when decode
 * streams them; 4 KiB pages made the load of the 0.5B Q4_K_M file 0.6 s slower) and their file pages
 * are handed back (madvise; read-only pages of a private mapping: a later read would fault them in
 * again from the file), so the weights are still held once; a random model's matrices are converted
 * in place. Matrices that share bytes (a tied output) stay shared. */
enum { DK_REPACK_PAGE = 2 << 20, DK_REPACK_ALIGN = 64 };

static bool dk_repacks(const dk_tensor *t) {
    return t->type == DK_GGML_TYPE_Q5_0 && t->cols % DK_Q5_0R_UNIT == 0;
}

static dk_status dk_model_repack(dk_model *m, dk_err *e) {
    if (!dk_q5_0r_on()) return DK_OK;
    dk_model_weights *w = &m->w;
    int n = 2 + 7 * m->cfg.n_layer, k = 0;
    dk_tensor **t = malloc((size_t)n * sizeof *t);
    int *same = malloc((size_t)n * sizeof *same); /* an earlier matrix with the same bytes, or -1 */
    if (!t || !same) {
        free(t);
        free(same);
        return dk_fail(e, DK_ERR_NOMEM, "%s: out of memory", m->name);
    }
    t[k++] = &w->tok_embd;
    t[k++] = &w->output;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        dk_layer_weights *lw = &w->layers[l];
        dk_tensor *mats[] = {&lw->wq, &lw->wk, &lw->wv, &lw->wo, &lw->w_gate, &lw->w_up, &lw->w_down};
        for (int i = 0; i < 7; i++) t[k++] = mats[i];
    }
    bool mapped = m->format != DK_MODEL_FORMAT_RANDOM;
    size_t total = 0; /* the owned block: each matrix at a multiple of 64 bytes */
    for (int i = 0; i < n; i++) {
        same[i] = -1;
        for (int j = 0; j < i && same[i] < 0; j++)
            if (t[j]->data == t[i]->data) same[i] = j;
        if (same[i] < 0 && dk_repacks(t[i]))
            total += ((size_t)t[i]->rows * t[i]->row_bytes + DK_REPACK_ALIGN - 1) / DK_REPACK_ALIGN *
                     DK_REPACK_ALIGN;
    }
    uint8_t *block = NULL;
    if (mapped && total) {
        size_t alloc = (total + DK_REPACK_PAGE - 1) / DK_REPACK_PAGE * DK_REPACK_PAGE;
        void *p = NULL;
        if (posix_memalign(&p, DK_REPACK_PAGE, alloc) || !dk_model_own(m, p)) {
            free(p);
            free(t);
            free(same);
            return dk_fail(e, DK_ERR_NOMEM, "%s: out of memory reordering Q5_0 weights", m->name);
        }
        madvise(p, alloc, MADV_HUGEPAGE);
        block = p;
    }
    long page = sysconf(_SC_PAGESIZE);
    for (int i = 0; i < n; i++) {
        if (same[i] >= 0) {
            *t[i] = *t[same[i]];
            continue;
        }
        if (!dk_repacks(t[i])) continue;
        size_t bytes = (size_t)t[i]->rows * t[i]->row_bytes;
        void *dst = mapped ? (void *)block : (void *)t[i]->data;
        dk_q5_0r_repack(t[i]->data, dst, (size_t)t[i]->rows * (size_t)t[i]->cols);
        if (mapped && page > 0) { /* the whole pages inside the matrix's bytes */
            uintptr_t a = ((uintptr_t)t[i]->data + (uintptr_t)page - 1) / (uintptr_t)page * (uintptr_t)page,
                      b = ((uintptr_t)t[i]->data + bytes) / (uintptr_t)page * (uintptr_t)page;
            if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
        }
        if (mapped) block += (bytes + DK_REPACK_ALIGN - 1) / DK_REPACK_ALIGN * DK_REPACK_ALIGN;
        t[i]->data = dst;
        t[i]->type = DK_GGML_TYPE_Q5_0R;
    }
    free(t);
    free(same);
    return DK_OK;
}

/* ---- llama2.c legacy checkpoint ----
 * Header: 7 x int32 {dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len}, a
 * negative vocab_size meaning an untied classifier. Then f32 arrays: token_embedding (vocab, dim),
 * rms_att (layer, dim), wq (layer, dim, n_heads*hs), wk/wv (layer, dim, n_kv*hs), wo (layer, n_heads*hs, dim),
 * rms_ffn (layer, dim), w1 (layer, hidden, dim), w2 (layer, dim, hidden), w3 (layer, hidden, dim),
 * rms_final (dim), freq_cis_real/imag (seq_len, hs/2) each (unused), wcls (vocab, dim) if untied. */

static dk_status dk_model_load_llama2c(dk_model *m, const char *path, const uint8_t *map, size_t size,
                                       dk_err *e) {
    int32_t h[7];
    if (size < sizeof h)
        return dk_fail(e, DK_ERR_FORMAT,
                       "%s: unrecognised model format: %zu bytes is too short for GGUF or a llama2.c header",
                       path, size);
    memcpy(h, map, sizeof h);
    dk_model_config *c = &m->cfg;
    c->arch = DK_ARCH_LLAMA;
    c->n_embd = h[0];
    c->n_ff = h[1];
    c->n_layer = h[2];
    c->n_head = h[3];
    c->n_head_kv = h[4];
    c->tied_output = h[5] > 0;
    c->n_vocab = h[5] > 0 ? h[5] : (h[5] == INT32_MIN ? 0 : -h[5]);
    c->n_ctx_train = h[6];
    c->head_dim = c->n_head > 0 ? c->n_embd / c->n_head : 0;
    c->n_rot = c->head_dim;
    c->rope_theta = 10000.0f;
    c->rope_type = DK_ROPE_TYPE_NORM;
    c->rms_eps = 1e-5f;
    c->qkv_bias = false;
    if (h[0] <= 0 || h[1] <= 0 || h[2] <= 0 || h[3] <= 0 || h[4] <= 0 || h[6] <= 0 || h[0] % h[3] ||
        h[3] % h[4] || c->n_vocab <= 0 || dk_model_config_check(path, c, NULL) != DK_OK)
        return dk_fail(e, DK_ERR_FORMAT,
                       "%s: unrecognised model format: magic %02x%02x%02x%02x is not GGUF and the llama2.c "
                       "header is invalid "
                       "(dim %d, hidden %d, layers %d, heads %d, kv_heads %d, vocab %d, seq_len %d)",
                       path, map[0], map[1], map[2], map[3], h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
    int64_t d = c->n_embd, L = c->n_layer, hs = c->head_dim, q = (int64_t)c->n_head * hs,
            kv = (int64_t)c->n_head_kv * hs;
    int64_t nf = 0;
    nf += c->n_vocab * d + L * d + L * d * q + 2 * L * d * kv + L * q * d + L * d + 3 * L * d * c->n_ff + d;
    nf += c->n_ctx_train * hs; /* freq_cis real + imag, each (seq_len, hs/2) */
    if (!c->tied_output) nf += c->n_vocab * d;
    if ((uint64_t)nf * 4 + sizeof h > size)
        return dk_fail(e, DK_ERR_FORMAT,
                       "%s: truncated llama2.c checkpoint: header needs %lld bytes of weights, file has %zu",
                       path, (long long)nf * 4, size - sizeof h);
    m->format = DK_MODEL_FORMAT_LLAMA2C;
    snprintf(m->format_name, sizeof m->format_name, "llama2c");
    snprintf(m->arch_name, sizeof m->arch_name, "llama");
    snprintf(m->tensor_type, sizeof m->tensor_type, "F32");
    const char *base = strrchr(path, '/');
    snprintf(m->name, sizeof m->name, "%s", base ? base + 1 : path);
    m->n_params = dk_config_n_params(c);
    m->weights_bytes = 4 * m->n_params;
    const float *p = (const float *)(map + sizeof h); /* 28-byte header keeps 4-byte alignment */
    dk_model_weights *w = &m->w;
    if (!(w->layers = calloc((size_t)L, sizeof *w->layers)))
        return dk_fail(e, DK_ERR_NOMEM, "%s: out of memory", path);
    w->tok_embd = dk_tensor_f32(p, c->n_vocab, d);
    p += c->n_vocab * d;
#define DK_SPLIT(field, per)                                            \
    do {                                                                \
        for (int l = 0; l < L; l++) w->layers[l].field = p + l * (per); \
        p += L * (per);                                                 \
    } while (0)
#define DK_SPLIT_M(field, rows, cols)                                                                        \
    do {                                                                                                     \
        for (int l = 0; l < L; l++) w->layers[l].field = dk_tensor_f32(p + l * (rows) * (cols), rows, cols); \
        p += L * (rows) * (cols);                                                                            \
    } while (0)
    DK_SPLIT(attn_norm, d);
    DK_SPLIT_M(wq, q, d);
    DK_SPLIT_M(wk, kv, d);
    DK_SPLIT_M(wv, kv, d);
    DK_SPLIT_M(wo, d, q);
    DK_SPLIT(ffn_norm, d);
    DK_SPLIT_M(w_gate, c->n_ff, d);
    DK_SPLIT_M(w_down, d, c->n_ff);
    DK_SPLIT_M(w_up, c->n_ff, d);
#undef DK_SPLIT
#undef DK_SPLIT_M
    w->output_norm = p;
    p += d;
    p += c->n_ctx_train * hs;
    w->output = c->tied_output ? w->tok_embd : dk_tensor_f32(p, c->n_vocab, d);
    snprintf(m->tokenizer_desc, sizeof m->tokenizer_desc, "none");
    snprintf(m->tokenizer_error, sizeof m->tokenizer_error,
             "%s: llama2.c checkpoints carry no tokenizer; pass one with -z tok.bin", path);
    return DK_OK;
}

/* ---- entry point ---- */

dk_status dk_model_load(const char *path, const char *tokenizer_path, dk_model **out, dk_err *e) {
    *out = NULL;
    dk_model *m = calloc(1, sizeof *m);
    if (!m) return dk_fail(e, DK_ERR_NOMEM, "%s: out of memory", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        free(m);
        return dk_fail(e, DK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        free(m);
        return dk_fail(e, DK_ERR_IO, "%s: not a regular file", path);
    }
    char magic[4] = {0};
    ssize_t r = read(fd, magic, 4);
    dk_status st;
    if (r == 4 && !memcmp(magic, "GGUF", 4)) {
        close(fd);
        st = dk_model_load_gguf(m, path, e);
        if (!st) st = dk_model_repack(m, e);
    } else if (sb.st_size == 0) {
        close(fd);
        st = dk_fail(e, DK_ERR_FORMAT, "%s: empty file, not a model", path);
    } else {
        m->map_size = (size_t)sb.st_size;
        m->map = mmap(NULL, m->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        if (m->map == MAP_FAILED) {
            m->map = NULL;
            st = dk_fail(e, DK_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
        } else st = dk_model_load_llama2c(m, path, m->map, m->map_size, e);
    }
    if (!st && tokenizer_path) {
        if (m->tokenizer) {
            dk_tokenizer_free(m->tokenizer);
            m->tokenizer = NULL;
        }
        st = dk_tokenizer_load_llama2c(tokenizer_path, m->cfg.n_vocab, &m->tokenizer, e);
        if (!st) {
            snprintf(m->tokenizer_desc, sizeof m->tokenizer_desc, "%s (%d pieces)",
                     dk_tokenizer_kind(m->tokenizer), m->cfg.n_vocab);
            m->tokenizer_error[0] = 0;
        }
    }
    if (st) {
        dk_model_free(m);
        return st;
    }
    *out = m;
    return DK_OK;
}

dk_status dk_model_load_tokenizer(const char *path, const char *tokenizer_path, dk_tokenizer **out,
                                  dk_err *e) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    bool gguf = f && fread(magic, 1, 4, f) == 4 && !memcmp(magic, "GGUF", 4);
    if (f) fclose(f);
    if (gguf && !tokenizer_path) return dk_tokenizer_load_gguf_file(path, out, NULL, 0, e);
    dk_model *m;
    dk_status st = dk_model_load(path, tokenizer_path, &m, e);
    if (st) return st;
    if (!m->tokenizer) st = dk_model_tokenizer(m, &(const dk_tokenizer *){NULL}, e);
    *out = m->tokenizer;
    m->tokenizer = NULL;
    dk_model_free(m);
    return st;
}

dk_status dk_model_check_context(const dk_model *m, int64_t n_tokens, int *beyond, dk_err *e) {
    int64_t train = m->cfg.n_ctx_train;
    if (beyond) *beyond = train > 0 && n_tokens > train;
    if (train > 0 && n_tokens > DK_MODEL_MAX_CTX_FACTOR * train)
        return dk_fail(e, DK_ERR_ARG,
                       "a prompt of %lld tokens is more than %d x the model's training context (%lld tokens)",
                       (long long)n_tokens, DK_MODEL_MAX_CTX_FACTOR, (long long)train);
    return DK_OK;
}

dk_status dk_model_tokenizer(const dk_model *m, const dk_tokenizer **tok, dk_err *e) {
    *tok = m->tokenizer;
    if (m->tokenizer) return DK_OK;
    return dk_fail(e, DK_ERR_UNSUPPORTED, "%s",
                   m->tokenizer_error[0] ? m->tokenizer_error : "model has no tokenizer");
}

/* ---- random-weight models ---- */

static uint64_t dk_splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* n values uniform in ±a (a = 0: all 1), as f32 into `tmp` */
static void dk_random_values(float *p, size_t n, float a, uint64_t *s) {
    if (a == 0) {
        for (size_t i = 0; i < n; i++) p[i] = 1.0f;
        return;
    }
    for (size_t i = 0; i < n; i++) p[i] = a * ((float)(dk_splitmix64(s) >> 40) * (2.0f / 16777216.0f) - 1.0f);
}

static float *dk_random_fill(dk_model *m, size_t n, float a, uint64_t *s) {
    float *p = dk_model_alloc(m, n * sizeof *p);
    if (p) dk_random_values(p, n, a, s);
    return p;
}

/* A (rows, cols) random matrix stored in `type`; tmp holds rows*cols floats. */
static bool dk_random_mat(dk_model *m, dk_tensor *t, int64_t rows, int64_t cols, float a, uint32_t type,
                          float *tmp, uint64_t *s) {
    size_t n = (size_t)rows * (size_t)cols;
    if (type == DK_GGML_TYPE_F32) {
        const float *p = dk_random_fill(m, n, a, s);
        *t = dk_tensor_f32(p, rows, cols);
        return p != NULL;
    }
    size_t rb = dk_ggml_row_bytes(type, cols);
    void *p = dk_model_alloc(m, rb * (size_t)rows);
    if (!p) return false;
    dk_random_values(tmp, n, a, s);
    dk_quantize(type, tmp, p, n);
    *t = (dk_tensor){.data = p, .type = type, .rows = rows, .cols = cols, .row_bytes = rb};
    return true;
}

dk_status dk_model_create_random(const dk_model_config *cfg, uint64_t seed, const char *name, dk_model **out,
                                 dk_err *e) {
    return dk_model_create_random_typed(cfg, seed, name, DK_GGML_TYPE_F32, out, e);
}

dk_status dk_model_create_random_typed(const dk_model_config *cfg, uint64_t seed, const char *name,
                                       uint32_t type, dk_model **out, dk_err *e) {
    *out = NULL;
    dk_status st = dk_model_config_check(name, cfg, e);
    if (st) return st;
    const dk_model_config *c = cfg;
    size_t d = (size_t)c->n_embd, q = (size_t)c->n_head * c->head_dim,
           kv = (size_t)c->n_head_kv * c->head_dim, f = (size_t)c->n_ff;
    uint32_t be, bb;
    if (!dk_ggml_type_quantizable(type) || !dk_ggml_type_block(type, &be, &bb))
        return dk_fail(e, DK_ERR_ARG, "%s: random weights in type %s: not supported", name,
                       dk_ggml_type_name(type) ? dk_ggml_type_name(type) : "?");
    if (d % be || q % be || f % be)
        return dk_fail(e, DK_ERR_ARG,
                       "%s: %s needs n_embd, n_head*head_dim and n_ff multiples of %u (%zu, %zu, %zu)", name,
                       dk_ggml_type_name(type), be, d, q, f);
    dk_model *m = calloc(1, sizeof *m);
    if (!m) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    m->cfg = *cfg;
    m->format = DK_MODEL_FORMAT_RANDOM;
    snprintf(m->format_name, sizeof m->format_name, "random");
    snprintf(m->arch_name, sizeof m->arch_name, "%s", dk_arch_name(cfg->arch));
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->tensor_type, sizeof m->tensor_type, "%s", dk_ggml_type_name(type));
    snprintf(m->tokenizer_desc, sizeof m->tokenizer_desc, "none");
    snprintf(m->tokenizer_error, sizeof m->tokenizer_error, "%s: random-weight model has no tokenizer", name);
    m->n_params = dk_config_n_params(cfg);
    uint64_t s = seed;
    dk_model_weights *w = &m->w;
    /* staging for one matrix before rounding to `type` */
    size_t big = (size_t)c->n_vocab * d, lay = (q > f ? q : f) * d;
    float *tmp = type == DK_GGML_TYPE_F32 ? NULL : malloc((big > lay ? big : lay) * sizeof *tmp);
    bool ok = (w->layers = calloc((size_t)c->n_layer, sizeof *w->layers)) != NULL &&
              (type == DK_GGML_TYPE_F32 || tmp);
    float ad = 1.0f / sqrtf((float)d), aq = 1.0f / sqrtf((float)q), af = 1.0f / sqrtf((float)f);
    ok = ok && dk_random_mat(m, &w->tok_embd, c->n_vocab, (int64_t)d, 1.0f, type, tmp, &s);
    for (int l = 0; ok && l < c->n_layer; l++) {
        dk_layer_weights *lw = &w->layers[l];
        ok = (lw->attn_norm = dk_random_fill(m, d, 0, &s)) &&
             dk_random_mat(m, &lw->wq, (int64_t)q, (int64_t)d, ad, type, tmp, &s) &&
             dk_random_mat(m, &lw->wk, (int64_t)kv, (int64_t)d, ad, type, tmp, &s) &&
             dk_random_mat(m, &lw->wv, (int64_t)kv, (int64_t)d, ad, type, tmp, &s) &&
             dk_random_mat(m, &lw->wo, (int64_t)d, (int64_t)q, aq, type, tmp, &s) &&
             (lw->ffn_norm = dk_random_fill(m, d, 0, &s)) &&
             dk_random_mat(m, &lw->w_gate, (int64_t)f, (int64_t)d, ad, type, tmp, &s) &&
             dk_random_mat(m, &lw->w_up, (int64_t)f, (int64_t)d, ad, type, tmp, &s) &&
             dk_random_mat(m, &lw->w_down, (int64_t)d, (int64_t)f, af, type, tmp, &s);
        if (ok && c->qkv_bias)
            ok = (lw->bq = dk_random_fill(m, q, 0.1f, &s)) && (lw->bk = dk_random_fill(m, kv, 0.1f, &s)) &&
                 (lw->bv = dk_random_fill(m, kv, 0.1f, &s));
    }
    ok = ok && (w->output_norm = dk_random_fill(m, d, 0, &s));
    if (ok) {
        if (c->tied_output) w->output = w->tok_embd;
        else ok = dk_random_mat(m, &w->output, c->n_vocab, (int64_t)d, ad, type, tmp, &s);
    }
    free(tmp);
    if (!ok) {
        dk_model_free(m);
        return dk_fail(e, DK_ERR_NOMEM, "%s: out of memory for random weights", name);
    }
    /* weights_bytes as a GGUF of this type would hold them: matrices in `type`, vectors f32 */
    int64_t mats = (int64_t)c->n_vocab * (int64_t)d * (c->tied_output ? 1 : 2) +
                   (int64_t)c->n_layer * (int64_t)((2 * q + 2 * kv + 3 * f) * d);
    m->weights_bytes = (int64_t)dk_ggml_row_bytes(type, mats) + 4 * (m->n_params - mats);
    m->converts = type != DK_GGML_TYPE_F32;
    if ((st = dk_model_repack(m, e))) {
        dk_model_free(m);
        return st;
    }
    *out = m;
    return DK_OK;
}

/* ---- named shapes ---- */

typedef struct {
    const char *name;
    dk_model_config c;
} dk_shape;

static const dk_shape dk_shapes[] = {
    /* Qwen2-0.5B: 24 layers, d 896, 14 heads / 2 KV heads of 64, ff 4864, vocab 151936, tied, QKV bias */
    {"qwen2-0.5b",
     {DK_ARCH_QWEN2, 24, 896, 14, 2, 64, 4864, 151936, 32768, 1000000.0f, 64, DK_ROPE_TYPE_NEOX, 1e-6f, true,
      true}},
    /* TinyLlama-1.1B */
    {"tinyllama-1.1b",
     {DK_ARCH_LLAMA, 22, 2048, 32, 4, 64, 5632, 32000, 2048, 10000.0f, 64, DK_ROPE_TYPE_NORM, 1e-5f, false,
      false}},
    /* small shapes for tests */
    {"llama-tiny",
     {DK_ARCH_LLAMA, 3, 64, 8, 2, 8, 160, 97, 512, 10000.0f, 8, DK_ROPE_TYPE_NORM, 1e-5f, false, false}},
    {"qwen2-tiny",
     {DK_ARCH_QWEN2, 3, 48, 6, 2, 8, 96, 101, 512, 1000000.0f, 8, DK_ROPE_TYPE_NEOX, 1e-6f, true, true}},
};

bool dk_model_shape(const char *name, dk_model_config *cfg) {
    for (size_t i = 0; i < sizeof dk_shapes / sizeof dk_shapes[0]; i++)
        if (!strcmp(name, dk_shapes[i].name)) {
            *cfg = dk_shapes[i].c;
            return true;
        }
    return false;
}

const char *dk_model_shape_names(void) { return "qwen2-0.5b, tinyllama-1.1b, llama-tiny, qwen2-tiny"; }
