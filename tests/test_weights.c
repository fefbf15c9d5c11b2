/* test_weights.c — weights kept in their file type (model.h, forward.c, quant.c).
 *
 * - The vectorised conversions equal the scalar ones bit for bit (every F16 and BF16 pattern,
 *   Q8_0 blocks over every int8 and many scales), from unaligned sources too.
 * - A random-weight model with Qwen2.5-0.5B's attention geometry (d 896, 14 query heads and 2 KV
 *   heads of 64, NEOX RoPE theta 1e6, rms eps 1e-6, QKV biases; 2 layers, n_ff 256, vocab 1024)
 *   is written here as a GGUF in BF16, F16 (tied output) and Q8_0 by the small writer below.
 *   Its values come from an integer rule (t_value) that scripts/make_weights_goldens.py mirrors;
 *   every value is exactly representable in the storage type, so the script's PyTorch forward
 *   (make_ref_models.RefModel, float64) runs on the same dequantised weights. Its logits are the
 *   goldens tests/data/weights_qwen2_<type>.logits: <= 1e-3 of the logit scale.
 * - The same values written as an F32 GGUF give bit-identical hidden states and logits: the
 *   conversion changes nothing but memory.
 * - Decode and chunks of <= 8 rows take the fused path (engine/matvec: rows widened next to their
 *   dot products): on those
 *   models and on the committed F16/BF16/Q8_0 reference models, its logits equal the goldens
 *   within their tolerance and the whole-matrix path within 1e-5 of the logit scale.
 * - Peak RSS: a child process (this binary re-executed) loads an ~89 MB BF16 model and prefills;
 *   its VmHWM growth stays below dk_memory's estimate (weights in file type + KV + scratch) + 10 %
 *   and well below the f32 expansion of the weights. */
#include "forward.h"
#include "gguf.h"
#include "memory.h"
#include "model.h"
#include "quant.h"
#include "support/dk_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Per-element checks: Check's ck_assert records every passing call through a pipe write, so
 * loops over millions of elements test the condition and abort only on failure. */
#define T_CHECK(cond, ...)                      \
    do {                                        \
        if (!(cond)) ck_abort_msg(__VA_ARGS__); \
    } while (0)

/* ---- conversions ---- */

static uint32_t t_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* same bits, or both NaN with the same sign (F16C quiets signalling NaNs) */
static int t_same(float a, float b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b) && (t_bits(a) >> 31) == (t_bits(b) >> 31);
    return t_bits(a) == t_bits(b);
}

START_TEST(test_convert_f16_bf16_exhaustive) {
    /* all 65536 patterns, at offset 0 and from an odd address */
    uint8_t *src = malloc(2 * 65536 + 1);
    float *dst = malloc(65536 * sizeof *dst);
    for (int off = 0; off < 2; off++) {
        for (uint32_t h = 0; h < 65536; h++) {
            uint16_t v = (uint16_t)h;
            memcpy(src + off + 2 * h, &v, 2);
        }
        dk_dequantize(DK_GGML_TYPE_F16, src + off, dst, 65536);
        for (uint32_t h = 0; h < 65536; h++)
            T_CHECK(t_same(dst[h], dk_fp16_to_f32((uint16_t)h)), "f16 0x%04x: %08x vs %08x", h,
                    t_bits(dst[h]), t_bits(dk_fp16_to_f32((uint16_t)h)));
        dk_dequantize(DK_GGML_TYPE_BF16, src + off, dst, 65536);
        for (uint32_t h = 0; h < 65536; h++)
            T_CHECK(t_bits(dst[h]) == h << 16, "bf16 0x%04x: %08x", h, t_bits(dst[h]));
        /* a length that is not a multiple of the vector width */
        dst[37] = 12345.0f;
        dk_dequantize(DK_GGML_TYPE_F16, src + off + 2 * 1000, dst, 37);
        ck_assert(t_same(dst[36], dk_fp16_to_f32(1036)));
        ck_assert(dst[37] == 12345.0f);
    }
    /* round to nearest even, and back */
    ck_assert_uint_eq(dk_f32_to_bf16(1.0f), 0x3f80);
    ck_assert_uint_eq(dk_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80); /* tie -> even */
    ck_assert_uint_eq(dk_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
    ck_assert_uint_eq(dk_f32_to_bf16(1.0f + 0x3p-8f), 0x3f82); /* tie -> even (up) */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = dk_bf16_to_f32((uint16_t)h);
        T_CHECK(isnan(f) || dk_f32_to_bf16(f) == h, "bf16 round trip 0x%04x", h);
    }
    free(src);
    free(dst);
}
END_TEST

START_TEST(test_convert_q8_0) {
    enum { NB = 2048 };
    uint8_t *src = malloc(34 * NB + 1);
    float *dst = malloc(32 * NB * sizeof *dst);
    uint64_t s = 99;
    for (int off = 0; off < 2; off++) {
        for (int b = 0; b < NB; b++) {
            uint8_t *blk = src + off + 34 * b;
            /* scales: every 32nd F16 pattern (subnormals, normals, inf, NaN) */
            uint16_t d = (uint16_t)(b * 32 + (b & 31));
            memcpy(blk, &d, 2);
            for (int j = 0; j < 32; j++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                blk[2 + j] = b < 8 ? (uint8_t)(b * 32 + j) : (uint8_t)(s >> 56); /* blocks 0-7: every int8 */
            }
        }
        dk_dequantize(DK_GGML_TYPE_Q8_0, src + off, dst, 32 * NB);
        for (int b = 0; b < NB; b++) {
            const uint8_t *blk = src + off + 34 * b;
            uint16_t d;
            memcpy(&d, blk, 2);
            float df = dk_fp16_to_f32(d);
            for (int j = 0; j < 32; j++) {
                float want = df * (float)(int8_t)blk[2 + j];
                T_CHECK(t_same(dst[32 * b + j], want), "q8_0 block %d elem %d", b, j);
            }
        }
    }
    /* quantiser: the largest magnitude maps to +-127, and dequantising is within d/2 */
    float x[32], back[32];
    uint8_t q[34];
    for (int j = 0; j < 32; j++) x[j] = sinf((float)j) * 3.0f;
    dk_quantize_q8_0(x, q, 32);
    dk_dequantize(DK_GGML_TYPE_Q8_0, q, back, 32);
    uint16_t dh;
    memcpy(&dh, q, 2);
    float d = dk_fp16_to_f32(dh);
    for (int j = 0; j < 32; j++) T_CHECK(fabsf(back[j] - x[j]) <= 0.5f * d * 1.01f, "elem %d", j);
    free(src);
    free(dst);
}
END_TEST

/* ---- deterministic weights (mirrored by scripts/make_weights_goldens.py) ---- */

typedef struct {
    int n_layer, n_embd, n_head, n_head_kv, n_ff, n_vocab;
    float rope_theta, rms_eps;
    int tied;
} t_cfg;

/* Qwen2.5-0.5B attention geometry, reduced depth/FFN/vocab (the golden models) */
static const t_cfg T_GOLDEN = {2, 896, 14, 2, 256, 1024, 1000000.0f, 1e-6f, 0};
/* the RSS model: Qwen2.5-0.5B's layer shapes (n_ff 4864), ~89 MB in BF16 */
static const t_cfg T_BIG = {2, 896, 14, 2, 4864, 8192, 1000000.0f, 1e-6f, 0};

enum { T_KIND_MAT, T_KIND_EMBD, T_KIND_NORM, T_KIND_BIAS };

typedef struct {
    char name[48];
    int kind;
    int64_t rows, cols; /* ne1 (1 for vectors), ne0 */
    uint64_t seed;
} t_tensor;

static uint64_t t_rand(uint64_t seed, uint64_t i) {
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* scale exponent of a matrix: 7 + ceil(log2(cols) / 2), 7 for token_embd */
static int t_shift(const t_tensor *t) {
    if (t->kind == T_KIND_EMBD) return 7;
    int e = 0;
    while ((1LL << (2 * e)) < t->cols) e++;
    return 7 + e;
}

/* Element i (row-major) of tensor t as its storage type holds it, dequantised (exact f32). */
static float t_value(const t_tensor *t, uint32_t type, int64_t i) {
    uint64_t r = t_rand(t->seed, (uint64_t)i);
    if (t->kind == T_KIND_NORM) return 1.0f + (float)((int)(r % 256) - 128) * 0x1p-10f;
    if (t->kind == T_KIND_BIAS) return (float)((int)(r % 256) - 128) * 0x1p-8f;
    int s = t_shift(t);
    if (type == DK_GGML_TYPE_Q8_0) {
        uint64_t rd = t_rand(t->seed ^ 0xD5, (uint64_t)(i / 32));
        float d = ldexpf((float)(64 + rd % 64), -(s + 6));
        return d * (float)((int)((r >> 8) % 255) - 127);
    }
    return ldexpf((float)((int)(r % 511) - 255), -(s + (int)((r >> 32) % 4)));
}

static int t_tensors(const t_cfg *c, t_tensor *out) {
    int n = 0, q = c->n_head * (c->n_embd / c->n_head), kv = c->n_head_kv * (c->n_embd / c->n_head);
    uint64_t idx = 0;
#define T_ADD(nm, k, r, cl)                            \
    do {                                               \
        t_tensor *t_ = &out[n++];                      \
        snprintf(t_->name, sizeof t_->name, "%s", nm); \
        t_->kind = k;                                  \
        t_->rows = r;                                  \
        t_->cols = cl;                                 \
        t_->seed = (idx + 1) * 1000003ull;             \
        idx++;                                         \
    } while (0)
    T_ADD("token_embd.weight", T_KIND_EMBD, c->n_vocab, c->n_embd);
    for (int l = 0; l < c->n_layer; l++) {
        char b[48];
#define T_L(sfx, k, r, cl)                          \
    do {                                            \
        snprintf(b, sizeof b, "blk.%d.%s", l, sfx); \
        T_ADD(b, k, r, cl);                         \
    } while (0)
        T_L("attn_norm.weight", T_KIND_NORM, 1, c->n_embd);
        T_L("attn_q.weight", T_KIND_MAT, q, c->n_embd);
        T_L("attn_k.weight", T_KIND_MAT, kv, c->n_embd);
        T_L("attn_v.weight", T_KIND_MAT, kv, c->n_embd);
        T_L("attn_q.bias", T_KIND_BIAS, 1, q);
        T_L("attn_k.bias", T_KIND_BIAS, 1, kv);
        T_L("attn_v.bias", T_KIND_BIAS, 1, kv);
        T_L("attn_output.weight", T_KIND_MAT, c->n_embd, q);
        T_L("ffn_norm.weight", T_KIND_NORM, 1, c->n_embd);
        T_L("ffn_gate.weight", T_KIND_MAT, c->n_ff, c->n_embd);
        T_L("ffn_up.weight", T_KIND_MAT, c->n_ff, c->n_embd);
        T_L("ffn_down.weight", T_KIND_MAT, c->n_embd, c->n_ff);
#undef T_L
    }
    T_ADD("output_norm.weight", T_KIND_NORM, 1, c->n_embd);
    if (c->tied) idx++;
    else T_ADD("output.weight", T_KIND_MAT, c->n_vocab, c->n_embd);
#undef T_ADD
    return n;
}

/* ---- a small GGUF v3 writer ---- */

static void t_w64(FILE *f, uint64_t v) { fwrite(&v, 8, 1, f); }
static void t_w32(FILE *f, uint32_t v) { fwrite(&v, 4, 1, f); }
static void t_wstr(FILE *f, const char *s) {
    t_w64(f, strlen(s));
    fwrite(s, 1, strlen(s), f);
}
static void t_kv_u32(FILE *f, const char *k, uint32_t v) {
    t_wstr(f, k);
    t_w32(f, DK_GGUF_TYPE_UINT32);
    t_w32(f, v);
}
static void t_kv_f32(FILE *f, const char *k, float v) {
    t_wstr(f, k);
    t_w32(f, DK_GGUF_TYPE_FLOAT32);
    fwrite(&v, 4, 1, f);
}
static void t_kv_str(FILE *f, const char *k, const char *v) {
    t_wstr(f, k);
    t_w32(f, DK_GGUF_TYPE_STRING);
    t_wstr(f, v);
}
static void t_pad(FILE *f) {
    long p = ftell(f);
    while (p % 32) {
        fputc(0, f);
        p++;
    }
}

static uint32_t t_ttype(const t_tensor *t, uint32_t type) {
    return (t->kind == T_KIND_MAT || t->kind == T_KIND_EMBD) ? type : DK_GGML_TYPE_F32;
}

/* Writes the model with matrices stored in `type` (vectors F32) holding the values of the rule
 * for `vtype` (== type, or F32 storage of another type's values); returns the file size. */
static long t_write_gguf_as(const char *path, const t_cfg *c, uint32_t type, uint32_t vtype) {
    t_tensor ts[64];
    int nt = t_tensors(c, ts);
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fwrite("GGUF", 1, 4, f);
    t_w32(f, 3);
    t_w64(f, (uint64_t)nt);
    t_w64(f, 10);
    t_kv_str(f, "general.architecture", "qwen2");
    t_kv_str(f, "general.name", "dashkit-weights-test");
    t_kv_u32(f, "qwen2.block_count", (uint32_t)c->n_layer);
    t_kv_u32(f, "qwen2.context_length", 32768);
    t_kv_u32(f, "qwen2.embedding_length", (uint32_t)c->n_embd);
    t_kv_u32(f, "qwen2.feed_forward_length", (uint32_t)c->n_ff);
    t_kv_u32(f, "qwen2.attention.head_count", (uint32_t)c->n_head);
    t_kv_u32(f, "qwen2.attention.head_count_kv", (uint32_t)c->n_head_kv);
    t_kv_f32(f, "qwen2.rope.freq_base", c->rope_theta);
    t_kv_f32(f, "qwen2.attention.layer_norm_rms_epsilon", c->rms_eps);
    uint64_t off = 0;
    for (int i = 0; i < nt; i++) {
        const t_tensor *t = &ts[i];
        uint32_t ty = t_ttype(t, type);
        t_wstr(f, t->name);
        t_w32(f, t->rows > 1 ? 2 : 1);
        t_w64(f, (uint64_t)t->cols);
        if (t->rows > 1) t_w64(f, (uint64_t)t->rows);
        t_w32(f, ty);
        t_w64(f, off);
        off += (dk_ggml_row_bytes(ty, t->cols) * (uint64_t)t->rows + 31) / 32 * 32;
    }
    t_pad(f);
    for (int i = 0; i < nt; i++) {
        const t_tensor *t = &ts[i];
        uint32_t ty = t_ttype(t, type);
        size_t n = (size_t)(t->rows * t->cols), nb = dk_ggml_row_bytes(ty, t->cols) * (size_t)t->rows;
        uint8_t *buf = malloc(nb);
        ck_assert_ptr_nonnull(buf);
        for (size_t j = 0; j < n; j++) {
            float v = t_value(t, t_ttype(t, vtype), (int64_t)j);
            if (ty == DK_GGML_TYPE_F32) memcpy(buf + 4 * j, &v, 4);
            else if (ty == DK_GGML_TYPE_BF16) {
                T_CHECK((t_bits(v) & 0xffff) == 0, "%s[%zu] not exact in bf16", t->name, j);
                uint16_t h = (uint16_t)(t_bits(v) >> 16);
                memcpy(buf + 2 * j, &h, 2);
            } else if (ty == DK_GGML_TYPE_F16) {
                uint16_t h = dk_f32_to_fp16(v);
                T_CHECK(dk_fp16_to_f32(h) == v, "%s[%zu] not exact in f16", t->name, j);
                memcpy(buf + 2 * j, &h, 2);
            } else { /* Q8_0: the rule's scale and quant directly */
                uint64_t r = t_rand(t->seed, j);
                if (j % 32 == 0) {
                    uint64_t rd = t_rand(t->seed ^ 0xD5, j / 32);
                    uint16_t h = dk_f32_to_fp16(ldexpf((float)(64 + rd % 64), -(t_shift(t) + 6)));
                    memcpy(buf + 34 * (j / 32), &h, 2);
                }
                buf[34 * (j / 32) + 2 + j % 32] = (uint8_t)(int8_t)((int)((r >> 8) % 255) - 127);
            }
        }
        fwrite(buf, 1, nb, f);
        free(buf);
        t_pad(f);
    }
    long size = ftell(f);
    ck_assert_int_eq(fclose(f), 0);
    return size;
}

static long t_write_gguf(const char *path, const t_cfg *c, uint32_t type) {
    return t_write_gguf_as(path, c, type, type);
}

/* ---- goldens ---- */

static const uint32_t t_types[] = {DK_GGML_TYPE_BF16, DK_GGML_TYPE_F16, DK_GGML_TYPE_Q8_0};
static const char *const t_type_files[] = {"bf16", "f16", "q8_0"};
enum { T_PROMPT = 16 };

static void t_prompt(int32_t *tok, int n_vocab) {
    for (int i = 0; i < T_PROMPT; i++) tok[i] = (int32_t)(t_rand(777, (uint64_t)i) % (uint64_t)n_vocab);
}

/* tests/data/weights_qwen2_<type>.logits: T_PROMPT tokens, copied into tokens */
static float *t_read_golden(const char *path, int *n_tok, int *n_vocab, int32_t *tokens) {
    dk_test_logits g;
    dk_test_logits_load(path, 4, &g);
    ck_assert_int_eq(g.n_tokens, T_PROMPT);
    memcpy(tokens, g.tokens, (size_t)T_PROMPT * sizeof *tokens);
    free(g.tokens);
    *n_tok = g.n_tokens;
    *n_vocab = g.n_vocab;
    return g.logits;
}

static dk_model *t_load(const char *path) {
    dk_model *m;
    dk_err e = {{0}};
    ck_assert_msg(dk_model_load(path, NULL, &m, &e) == DK_OK, "%s", e.msg);
    return m;
}

static void t_prefill(dk_model *m, const int32_t *tok, int n, float *logits, float *hidden) {
    dk_ctx *c;
    dk_err e = {{0}};
    ck_assert_int_eq(dk_ctx_create(m, 64, &c, &e), DK_OK);
    dk_prefill_opts o = {.all_logits = true, .hidden_out = hidden};
    ck_assert_msg(dk_forward_prefill(c, tok, n, &o, logits, &e) == DK_OK, "%s", e.msg);
    dk_ctx_free(c);
}

/* The golden config for file type `type` (an F16 file ties its lm head: token_embd in its file
 * type), its GGUF path under the tmpdir (prefix + type) and the golden logits' path. */
static t_cfg t_golden_setup(int i, const char *prefix, char *path, size_t np, char *gpath, size_t ng) {
    t_cfg cfg = T_GOLDEN;
    cfg.tied = t_types[i] == DK_GGML_TYPE_F16;
    snprintf(path, np, "%s/%s_%s.gguf", dk_test_tmpdir(), prefix, t_type_files[i]);
    snprintf(gpath, ng, "tests/data/weights_qwen2_%s.logits", t_type_files[i]);
    return cfg;
}

START_TEST(test_golden_logits) {
    uint32_t type = t_types[_i];
    char path[512], gpath[256];
    t_cfg cfg = t_golden_setup(_i, "w", path, sizeof path, gpath, sizeof gpath);
    long size = t_write_gguf(path, &cfg, type);
    dk_model *m = t_load(path);
    ck_assert_str_eq(m->tensor_type, dk_ggml_type_name(type));
    ck_assert(m->converts);
    ck_assert_int_eq(m->cfg.head_dim, 64);
    ck_assert_int_eq(m->cfg.rope_type, DK_ROPE_TYPE_NEOX);
    ck_assert(m->cfg.qkv_bias && m->cfg.tied_output == (bool)cfg.tied);
    ck_assert_int_le(m->weights_bytes, size);
    /* matrices stay in the file type and point into the mapping (no copy) */
    const dk_gguf_tensor *gq = dk_gguf_find_tensor(m->gguf, "blk.1.ffn_down.weight");
    ck_assert_uint_eq(m->w.layers[1].w_down.type, type);
    ck_assert_ptr_eq(m->w.layers[1].w_down.data, gq->data);
    ck_assert_ptr_eq(m->w.tok_embd.data, dk_gguf_find_tensor(m->gguf, "token_embd.weight")->data);
    if (!cfg.tied) ck_assert_ptr_eq(m->w.output.data, dk_gguf_find_tensor(m->gguf, "output.weight")->data);
    else ck_assert_ptr_eq(m->w.output.data, m->w.tok_embd.data);

    int T, V;
    int32_t gtok[T_PROMPT], tok[T_PROMPT];
    float *gold = t_read_golden(gpath, &T, &V, gtok);
    ck_assert_int_eq(V, cfg.n_vocab);
    t_prompt(tok, cfg.n_vocab);
    ck_assert_int_eq(memcmp(tok, gtok, sizeof tok), 0);
    float *lg = malloc((size_t)T * V * sizeof *lg);
    t_prefill(m, tok, T, lg, NULL);
    double scale = 0, err = 0;
    for (size_t i = 0; i < (size_t)T * V; i++) {
        scale = fmax(scale, fabs(gold[i]));
        err = fmax(err, fabs((double)lg[i] - gold[i]));
    }
    printf("weights %s: max |logit| %.3f, max err %.2e (%.2e of scale)\n", t_type_files[_i], scale, err,
           err / scale);
    ck_assert(scale > 1.0);
    ck_assert_msg(err <= 1e-3 * scale, "%s: max err %g > 1e-3 x %g", t_type_files[_i], err, scale);
    free(lg);
    free(gold);
    dk_model_free(m);
    unlink(path);
}
END_TEST

/* The file type changes memory, not results: an F32 GGUF of the same (dequantised) values gives
 * bit-identical hidden states and logits, the lm head's row blocks included (V 1024 > 896 rows
 * per block at this shape). */
START_TEST(test_filetype_equals_f32) {
    uint32_t type = t_types[_i];
    char p1[512], p2[512], gpath[256];
    t_cfg cfg = t_golden_setup(_i, "e", p1, sizeof p1, gpath, sizeof gpath);
    snprintf(p2, sizeof p2, "%s/e_%s_f32.gguf", dk_test_tmpdir(), t_type_files[_i]);
    t_write_gguf(p1, &cfg, type);
    t_write_gguf_as(p2, &cfg, DK_GGML_TYPE_F32, type); /* F32 file of the values p1 dequantises to */
    dk_model *a = t_load(p1), *b = t_load(p2);
    ck_assert(!b->converts);
    int n = T_PROMPT, V = cfg.n_vocab, d = cfg.n_embd;
    int32_t tok[T_PROMPT];
    t_prompt(tok, V);
    float *la = malloc((size_t)n * V * 4), *lb = malloc((size_t)n * V * 4), *ha = malloc((size_t)n * d * 4),
          *hb = malloc((size_t)n * d * 4);
    t_prefill(a, tok, n, la, ha);
    t_prefill(b, tok, n, lb, hb);
    ck_assert_int_eq(memcmp(ha, hb, (size_t)n * d * 4), 0);
    ck_assert_int_eq(memcmp(la, lb, (size_t)n * V * 4), 0);
    free(la);
    free(lb);
    free(ha);
    free(hb);
    dk_model_free(a);
    dk_model_free(b);
    unlink(p1);
    unlink(p2);
}
END_TEST

/* ---- fused small-m path (decode) ----
 * Decode and chunks of <= 8 rows read each weight row once in its file type next to its dot
 * products (engine/matvec.c via matmul.c's dk_matmul_fused) instead of converting whole matrices
 * first. Both paths run the same prompt:
 * a 3-token chunk (m = 3: the per-row loop, w_down's beta = 1 at row stride n) and then one
 * decode step per token. Fused logits equal the golden within the golden's tolerance, and the
 * old path's within 1e-5 of the logit scale: the operands are the same exact f32 values, only
 * the summation order differs (matvec's dot vs one sgemm), ~1e-7 relative per dot
 * product. Which path ran is asserted from the stats' fused_matmuls count (with OpenBLAS 0.3.21
 * most logits also differ in their last bits; printed, not asserted: a later OpenBLAS may route
 * an m = 1 sgemm to the same gemv kernel). */

enum { T_FUSED_CHUNK = 3 };

/* logits (n, V) of tok: one chunk of T_FUSED_CHUNK rows, then decode steps */
static void t_decode_rows(dk_model *m, bool fused, const int32_t *tok, int n, float *logits) {
    dk_ctx *c;
    dk_err e = {{0}};
    int V = m->cfg.n_vocab;
    ck_assert_int_eq(dk_ctx_create(m, n, &c, &e), DK_OK);
    ck_assert(dk_ctx_fused_decode(c)); /* the default */
    dk_ctx_set_fused_decode(c, fused);
    dk_prefill_opts o = {.all_logits = true};
    ck_assert_msg(dk_forward_prefill(c, tok, T_FUSED_CHUNK, &o, logits, &e) == DK_OK, "%s", e.msg);
    for (int i = T_FUSED_CHUNK; i < n; i++) {
        ck_assert_msg(dk_forward_decode(c, tok[i], logits + (size_t)i * V, &e) == DK_OK, "%s", e.msg);
        ck_assert_int_eq(dk_ctx_stats(c)->n_tokens, 1);
        /* FLOPs as counted by the old path: 2*m*n*k for every product, m = 1 */
        const dk_flops *f = &dk_ctx_stats(c)->head;
        ck_assert_int_eq(f->c[DK_FLOPS_LM_HEAD], 2LL * V * m->cfg.n_embd);
        /* the path taken: q, k, v, o, gate, up, down per layer and the lm head, or none */
        ck_assert_int_eq(dk_ctx_stats(c)->fused_matmuls, fused ? 7 * m->cfg.n_layer + 1 : 0);
    }
    dk_ctx_free(c);
}

/* fused vs golden (tolerance tol of the golden's scale) and vs the whole-matrix path (1e-5) */
static void t_check_fused(dk_model *m, const char *what, const int32_t *tok, int n, const float *gold,
                          double tol) {
    int V = m->cfg.n_vocab;
    size_t nl = (size_t)n * V;
    float *lf = malloc(nl * 4), *lc = malloc(nl * 4);
    t_decode_rows(m, true, tok, n, lf);
    t_decode_rows(m, false, tok, n, lc);
    double gs = 0, eg = 0, cs = 0, ec = 0;
    size_t n_diff = 0;
    for (size_t i = 0; i < nl; i++) {
        gs = fmax(gs, fabs(gold[i]));
        eg = fmax(eg, fabs((double)lf[i] - gold[i]));
        cs = fmax(cs, fabs(lc[i]));
        ec = fmax(ec, fabs((double)lf[i] - lc[i]));
        n_diff += memcmp(&lf[i], &lc[i], 4) != 0;
    }
    printf("fused decode %s: vs golden %.2e of scale, vs whole-matrix path %.2e of scale (%zu of %zu logits "
           "differ)\n",
           what, eg / gs, ec / cs, n_diff, nl);
    ck_assert(gs > 1.0 && cs > 1.0);
    ck_assert_msg(eg <= tol * gs, "%s: fused decode differs from the golden by %g > %g x %g", what, eg, tol,
                  gs);
    ck_assert_msg(ec <= 1e-5 * cs, "%s: fused vs whole-matrix path: %g > 1e-5 x %g", what, ec, cs);
    free(lf);
    free(lc);
}

/* The golden models of this file (BF16, F16 with a tied head in F16, Q8_0), golden 1e-3 as above. */
START_TEST(test_fused_decode_golden) {
    uint32_t type = t_types[_i];
    char path[512], gpath[256];
    t_cfg cfg = t_golden_setup(_i, "fd", path, sizeof path, gpath, sizeof gpath);
    t_write_gguf(path, &cfg, type);
    dk_model *m = t_load(path);
    int T, V;
    int32_t tok[T_PROMPT];
    float *gold = t_read_golden(gpath, &T, &V, tok);
    t_check_fused(m, t_type_files[_i], tok, T, gold, 1e-3);
    free(gold);
    dk_model_free(m);
    unlink(path);
}
END_TEST

/* The committed reference models in a converted type (scripts/make_ref_models.py; golden
 * tolerance 1e-4 as test_reference.c): llama and qwen2 in F16 (64 tokens), the 1-layer tiny model
 * in BF16 and Q8_0 (16 tokens). */
static const char *const t_ref_files[] = {"ref_llama_f16", "ref_qwen2_f16", "ref_tiny_bf16", "ref_tiny_q8_0"};

START_TEST(test_fused_decode_ref_models) {
    char path[256];
    snprintf(path, sizeof path, "tests/data/%s.gguf", t_ref_files[_i]);
    dk_model *m = t_load(path);
    ck_assert(m->converts);
    snprintf(path, sizeof path, "tests/data/%s.logits", t_ref_files[_i]);
    dk_test_logits g;
    dk_test_logits_load(path, 4, &g);
    ck_assert_int_eq(g.n_vocab, m->cfg.n_vocab);
    t_check_fused(m, t_ref_files[_i], g.tokens, g.n_tokens, g.logits, 1e-4);
    dk_test_logits_free(&g);
    dk_model_free(m);
}
END_TEST

/* ---- peak RSS ---- */

static long t_status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            v = atol(line + kl + 1);
            break;
        }
    fclose(f);
    return v;
}

enum { T_RSS_CTX = 256, T_RSS_TOKENS = 256 };

/* Child mode (DK_WEIGHTS_RSS_MODEL=path): load, prefill T_RSS_TOKENS, print VmHWM before and after. */
static int t_rss_child(const char *path) {
    long base = t_status_kb("VmHWM");
    dk_model *m;
    dk_ctx *c;
    dk_err e = {{0}};
    if (dk_model_load(path, NULL, &m, &e) || dk_ctx_create(m, T_RSS_CTX, &c, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    int32_t tok[T_RSS_TOKENS];
    for (int i = 0; i < T_RSS_TOKENS; i++)
        tok[i] = (int32_t)(t_rand(5, (uint64_t)i) % (uint64_t)m->cfg.n_vocab);
    float *logits = malloc((size_t)m->cfg.n_vocab * sizeof *logits);
    if (dk_forward_prefill(c, tok, T_RSS_TOKENS, NULL, logits, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    long peak = t_status_kb("VmHWM");
    printf("%ld %ld %s %.6f\n", base, peak, m->tensor_type, dk_ctx_stats(c)->convert_s);
    free(logits);
    dk_ctx_free(c);
    dk_model_free(m);
    return 0;
}

START_TEST(test_peak_rss) {
#ifdef __SANITIZE_ADDRESS__
    printf("SKIP peak RSS: ASan's shadow memory and quarantine inflate it\n");
    return;
#endif
    if (t_status_kb("VmHWM") < 0) {
        printf("SKIP peak RSS: no VmHWM in /proc/self/status\n");
        return;
    }
    char path[512], exe[512], cmd[1200], *out = NULL;
    dk_test_tmp_path(path, sizeof path, "rss_bf16.gguf");
    long size = t_write_gguf(path, &T_BIG, DK_GGML_TYPE_BF16);
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    ck_assert(n > 0);
    exe[n] = 0;
    /* a fresh process, so VmHWM is its own: baseline, then the peak of load + prefill */
    snprintf(cmd, sizeof cmd, "DK_WEIGHTS_RSS_MODEL='%s' '%s'", path, exe);
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    long base = 0, peak = 0;
    char type[16] = "";
    double conv = 0;
    ck_assert_msg(sscanf(out, "%ld %ld %15s %lf", &base, &peak, type, &conv) == 4, "child printed: %s", out);
    free(out);
    ck_assert_str_eq(type, "BF16");
    dk_model_config c;
    int64_t wb, wf;
    dk_err e = {{0}};
    ck_assert_int_eq(dk_memory_read_gguf(path, &c, &wb, &wf, NULL, &e), DK_OK);
    dk_memory_estimate est;
    dk_memory_estimate_fill(&c, wb, wf, T_RSS_CTX, T_RSS_TOKENS, &est);
    double grew = (double)(peak - base) * 1024.0;
    printf("peak RSS: file %.1f MB, weights %.1f MB (f32 %.1f MB), kv %.2f MB, scratch %.1f MB (convert %.1f "
           "MB); "
           "estimate %.1f MB, measured growth %.1f MB (%.3f of the estimate, %.3f of the f32 weights); "
           "convert %.3f s\n",
           size / 1e6, wb / 1e6, wf / 1e6, est.kv_bytes / 1e6, est.scratch_bytes / 1e6,
           est.convert_bytes / 1e6, est.total_bytes / 1e6, grew / 1e6, grew / (double)est.total_bytes,
           grew / (double)wf, conv);
    ck_assert(wb > 60000000 && wb < 100000000);
    ck_assert_msg(grew <= 1.10 * (double)est.total_bytes,
                  "peak RSS growth %.1f MB > estimate %.1f MB + 10 %%", grew / 1e6, est.total_bytes / 1e6);
    /* converting at load would hold the f32 weights (wf) plus the same run state */
    ck_assert_msg(grew < 0.75 * (double)wf,
                  "peak RSS growth %.1f MB is not well below the f32 weights %.1f MB", grew / 1e6, wf / 1e6);
    /* and the weights really were touched: the growth covers the layer matrices read */
    ck_assert_msg(grew > 0.5 * (double)wb, "growth %.1f MB < half the weights: model not read?", grew / 1e6);
    unlink(path);
}
END_TEST

/* ---- random models in a storage type, and the bench option ---- */

START_TEST(test_random_typed) {
    dk_model_config c;
    ck_assert(dk_model_shape("llama-tiny", &c));
    dk_model *f, *b, *q;
    dk_err e = {{0}};
    ck_assert_int_eq(dk_model_create_random(&c, 7, "f", &f, &e), DK_OK);
    ck_assert_int_eq(dk_model_create_random_typed(&c, 7, "b", DK_GGML_TYPE_BF16, &b, &e), DK_OK);
    ck_assert_str_eq(b->tensor_type, "BF16");
    ck_assert(b->converts && !f->converts);
    ck_assert_int_lt(b->weights_bytes, f->weights_bytes);
    /* same draws, rounded to bf16 */
    const dk_tensor *tf = &f->w.layers[2].w_up, *tb = &b->w.layers[2].w_up;
    ck_assert_uint_eq(tb->type, DK_GGML_TYPE_BF16);
    float row[160];
    for (int64_t r = 0; r < tb->rows; r++) {
        dk_tensor_row_f32(tb, r, row);
        const float *fr = (const float *)tf->data + r * tf->cols;
        for (int64_t j = 0; j < tb->cols; j++)
            T_CHECK(t_bits(row[j]) == (uint32_t)dk_f32_to_bf16(fr[j]) << 16, "row %lld col %lld",
                    (long long)r, (long long)j);
    }
    /* Q8_0 needs block-aligned rows: llama-tiny's n_ff 160 is, n_embd 64 is */
    ck_assert_int_eq(dk_model_create_random_typed(&c, 7, "q", DK_GGML_TYPE_Q8_0, &q, &e), DK_OK);
    dk_model_config bad;
    ck_assert(dk_model_shape("qwen2-tiny", &bad)); /* n_embd 48 */
    dk_model *x = NULL;
    ck_assert_int_eq(dk_model_create_random_typed(&bad, 7, "qwen2-tiny", DK_GGML_TYPE_Q8_0, &x, &e),
                     DK_ERR_ARG);
    ck_assert_str_eq(e.msg,
                     "qwen2-tiny: Q8_0 needs n_embd, n_head*head_dim and n_ff multiples of 32 (48, 48, 96)");
    ck_assert_ptr_null(x);
    /* each runs; bf16 logits are close to f32's (rounding of the weights only) */
    int32_t tok[12];
    for (int i = 0; i < 12; i++) tok[i] = (i * 11 + 2) % c.n_vocab;
    float lf[97], lb[97], lq[97];
    dk_ctx *cf, *cb, *cq;
    ck_assert_int_eq(dk_ctx_create(f, 16, &cf, &e), DK_OK);
    ck_assert_int_eq(dk_ctx_create(b, 16, &cb, &e), DK_OK);
    ck_assert_int_eq(dk_ctx_create(q, 16, &cq, &e), DK_OK);
    ck_assert_int_eq(dk_forward_prefill(cf, tok, 12, NULL, lf, &e), DK_OK);
    ck_assert_int_eq(dk_forward_prefill(cb, tok, 12, NULL, lb, &e), DK_OK);
    ck_assert_int_eq(dk_forward_prefill(cq, tok, 12, NULL, lq, &e), DK_OK);
    ck_assert(dk_ctx_stats(cf)->convert_s == 0);
    ck_assert(dk_ctx_stats(cb)->convert_s > 0);
    double sc = 0, eb = 0, eq = 0;
    for (int i = 0; i < c.n_vocab; i++) {
        sc = fmax(sc, fabs(lf[i]));
        eb = fmax(eb, fabs(lf[i] - lb[i]));
        eq = fmax(eq, fabs(lf[i] - lq[i]));
    }
    ck_assert_msg(eb > 0 && eb < 0.05 * sc, "bf16 vs f32: %g of %g", eb, sc);
    ck_assert_msg(eq > 0 && eq < 0.05 * sc, "q8_0 vs f32: %g of %g", eq, sc);
    dk_ctx_free(cf);
    dk_ctx_free(cb);
    dk_ctx_free(cq);
    dk_model_free(f);
    dk_model_free(b);
    dk_model_free(q);
}
END_TEST

START_TEST(test_cli_bench_dtype) {
    char cmd[512], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s bench --shape llama-tiny --dtype bf16 --tokens 64 --reps 1", dk_test_cli());
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "\ntensor_type: BF16\n"));
    double cs = dk_test_field(out, "convert_s"), sh = dk_test_field(out, "convert_share");
    ck_assert(cs > 0 && sh > 0 && sh < 1);
    free(out);
    snprintf(cmd, sizeof cmd, "%s bench --shape llama-tiny --tokens 64 --reps 1", dk_test_cli());
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "\ntensor_type: F32\n"));
    ck_assert(dk_test_field(out, "convert_s") == 0);
    free(out);
    /* OpenBLAS's idle workers sleep right after their work unless the user says otherwise (blas.h);
     * DK_BLAS_REEXEC unset: this test binary's own re-exec marker would stop the CLI's */
    static const struct {
        const char *env;
        int want;
    } timeouts[] = {{"-u OPENBLAS_THREAD_TIMEOUT", 4}, {"OPENBLAS_THREAD_TIMEOUT=12", 12}};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, "env -u DK_BLAS_REEXEC %s %s bench --shape llama-tiny --tokens 16 --reps 1",
                 timeouts[i].env, dk_test_cli());
        ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
        ck_assert_msg(dk_test_field(out, "blas_thread_timeout") == timeouts[i].want, "%s", out);
        free(out);
    }
    /* --decode: fused vs whole-matrix decode side by side, ratio last; refused for F32 weights */
    snprintf(cmd, sizeof cmd, "%s bench --shape llama-tiny --dtype q8_0 --tokens 16 --reps 1 --decode 2",
             dk_test_cli());
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    ck_assert(dk_test_field(out, "decode_steps") == 2 && dk_test_field(out, "decode_context") == 16);
    double tf = dk_test_field(out, "decode_fused_tokens_per_s"),
           tc = dk_test_field(out, "decode_convert_tokens_per_s");
    double ratio = dk_test_field(out, "decode_fused_vs_convert");
    ck_assert(tf > 0 && tc > 0 && ratio > 0);
    /* one rep: the ratio is tf / tc up to the printed precision (%.3f for it, %.2f for tf and tc) */
    double q = tf / tc, tol = 0.0005 + q * (0.005 / tf + 0.005 / tc) + 1e-9;
    ck_assert_msg(fabs(ratio - q) <= tol, "one rep: ratio %g = %g / %g (tolerance %g)", ratio, tf, tc, tol);
    const char *last = strstr(out, "\ndecode_fused_vs_convert: ");
    ck_assert_msg(strchr(last + 1, '\n') == out + strlen(out) - 1,
                  "decode_fused_vs_convert is not the last line:\n%s", out);
    free(out);
    /* F32 weights: one decode path, decode_tokens_per_s only */
    snprintf(cmd, sizeof cmd, "%s bench --shape llama-tiny --tokens 16 --reps 1 --decode 2", dk_test_cli());
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    ck_assert_msg(dk_test_field(out, "decode_tokens_per_s") > 0 && !strstr(out, "decode_fused_vs_convert"),
                  "%s", out);
    /* one rep: decode_vs_bandwidth is that rep's bytes x tokens/s over its bandwidth (%.3f of
     * %.0f x %.2f / %.2f) */
    double bpt = dk_test_field(out, "decode_bytes_per_token"),
           tps = dk_test_field(out, "decode_tokens_per_s"), bw = dk_test_field(out, "stream_read_gbps"),
           vb = dk_test_field(out, "decode_vs_bandwidth");
    double want = bpt * tps * 1e-9 / bw, tol2 = 0.0005 + want * (0.005 / tps + 0.005 / bw) + 1e-9;
    ck_assert_msg(bw > 0 && fabs(vb - want) <= tol2, "decode_vs_bandwidth %g, want %g:\n%s", vb, want, out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s bench --shape llama-tiny --dtype iq2_xxs 2>&1", dk_test_cli());
    ck_assert_int_eq(dk_test_run(cmd, 1, &out), 2);
    ck_assert_str_eq(
        out, "dashkit bench: --dtype 'iq2_xxs' is not one of F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, "
             "Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, BF16\n");
    free(out);
    /* every supported type is accepted; the K-quants need rows of whole 256-blocks */
    snprintf(cmd, sizeof cmd, "%s bench --shape llama-tiny --dtype q4_1 --tokens 16 --reps 1", dk_test_cli());
    ck_assert_int_eq(dk_test_run(cmd, 1, &out), 0);
    ck_assert_msg(strstr(out, "tensor_type: Q4_1\n"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s bench --shape llama-tiny --dtype q4_K --tokens 16 2>&1", dk_test_cli());
    ck_assert_int_ne(dk_test_run(cmd, 1, &out), 0);
    ck_assert_msg(
        strstr(out, "llama-tiny: Q4_K needs n_embd, n_head*head_dim and n_ff multiples of 256 (64, 64, 160)"),
        "%s", out);
    free(out);
}
END_TEST

Suite *weights_suite(void);
Suite *weights_suite(void) {
    Suite *s = suite_create("weights");
    TCase *tc = tcase_create("weights");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_convert_f16_bf16_exhaustive);
    tcase_add_test(tc, test_convert_q8_0);
    tcase_add_loop_test(tc, test_golden_logits, 0, 3);
    tcase_add_loop_test(tc, test_filetype_equals_f32, 0, 3);
    tcase_add_loop_test(tc, test_fused_decode_golden, 0, 3);
    tcase_add_loop_test(tc, test_fused_decode_ref_models, 0, 4);
    tcase_add_test(tc, test_random_typed);
    tcase_add_test(tc, test_cli_bench_dtype);
    tcase_add_test(tc, test_peak_rss);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    const char *child = getenv("DK_WEIGHTS_RSS_MODEL");
    if (child) return t_rss_child(child);
    return dk_test_main(weights_suite());
}
