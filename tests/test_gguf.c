/* test_gguf.c — GGUF reader and `dashkit info`: a valid file written here, the real llama.cpp
 * fixture, and corrupt variants that must each give one clear error naming the file, exit 1. */
#include "support/dk_test.h"
#include "gguf.h"
#include "model.h"
#include "quant.h"
#include "tokenizer.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a tiny GGUF writer (llama, 1 layer, d 8, 2 heads, ff 16, vocab 16, F32) ---- */

typedef struct {
    uint8_t *b;
    size_t n, cap;
} dk_buf;
static void put(dk_buf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->b = realloc(b->b, b->cap);
    }
    memcpy(b->b + b->n, p, n);
    b->n += n;
}
static void put_u32(dk_buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(dk_buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(dk_buf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void kv_u32(dk_buf *b, const char *k, uint32_t v) {
    put_str(b, k);
    put_u32(b, DK_GGUF_TYPE_UINT32);
    put_u32(b, v);
}
static void kv_str(dk_buf *b, const char *k, const char *v) {
    put_str(b, k);
    put_u32(b, DK_GGUF_TYPE_STRING);
    put_str(b, v);
}

/* block_count (0: 1), key_length (0: absent), nan_theta: a NaN llama.rope.freq_base */
typedef struct {
    uint32_t version;
    uint64_t n_kv_override;
    uint32_t bad_type;
    size_t cut;
    int misalign;
    uint32_t block_count, key_length;
    int nan_theta;
} dk_gguf_variant;

static const struct {
    const char *name;
    uint64_t ne0, ne1;
} dk_tensors[] = {
    {"token_embd.weight", 8, 16},     {"output_norm.weight", 8, 0},       {"output.weight", 8, 16},
    {"blk.0.attn_norm.weight", 8, 0}, {"blk.0.attn_q.weight", 8, 8},      {"blk.0.attn_k.weight", 8, 8},
    {"blk.0.attn_v.weight", 8, 8},    {"blk.0.attn_output.weight", 8, 8}, {"blk.0.ffn_norm.weight", 8, 0},
    {"blk.0.ffn_gate.weight", 8, 16}, {"blk.0.ffn_up.weight", 8, 16},     {"blk.0.ffn_down.weight", 16, 8},
};
#define DK_NT (sizeof dk_tensors / sizeof dk_tensors[0])

static void write_gguf(const char *path, dk_gguf_variant v) {
    dk_buf b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, v.version ? v.version : 3);
    put_u64(&b, DK_NT);
    put_u64(&b, v.n_kv_override ? v.n_kv_override : (uint64_t)(8 + (v.key_length > 0) + (v.nan_theta > 0)));
    kv_str(&b, "general.architecture", "llama");
    kv_str(&b, "general.name", "dk-test");
    kv_u32(&b, "llama.block_count", v.block_count ? v.block_count : 1);
    if (v.key_length) kv_u32(&b, "llama.attention.key_length", v.key_length);
    if (v.nan_theta) {
        put_str(&b, "llama.rope.freq_base");
        put_u32(&b, DK_GGUF_TYPE_FLOAT32);
        float nan = NAN;
        put(&b, &nan, 4);
    }
    kv_u32(&b, "llama.embedding_length", 8);
    kv_u32(&b, "llama.feed_forward_length", 16);
    kv_u32(&b, "llama.attention.head_count", 2);
    kv_u32(&b, "llama.context_length", 64);
    kv_u32(&b, "general.alignment", 32);
    uint64_t off = 0;
    for (size_t i = 0; i < DK_NT; i++) {
        put_str(&b, dk_tensors[i].name);
        put_u32(&b, dk_tensors[i].ne1 ? 2 : 1);
        put_u64(&b, dk_tensors[i].ne0);
        if (dk_tensors[i].ne1) put_u64(&b, dk_tensors[i].ne1);
        put_u32(&b, (v.bad_type && i == 4) ? v.bad_type : DK_GGML_TYPE_F32);
        put_u64(&b, off + (v.misalign && i == 5 ? 4 : 0));
        uint64_t bytes = dk_tensors[i].ne0 * (dk_tensors[i].ne1 ? dk_tensors[i].ne1 : 1) * 4;
        off += (bytes + 31) / 32 * 32;
    }
    while (b.n % 32) put(&b, "", 1);
    uint64_t s = 42;
    for (size_t i = 0; i < DK_NT; i++) {
        size_t start = b.n;
        uint64_t n = dk_tensors[i].ne0 * (dk_tensors[i].ne1 ? dk_tensors[i].ne1 : 1);
        for (uint64_t j = 0; j < n; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            float f = dk_tensors[i].ne1 ? (float)((s >> 40) % 2001) / 1000.0f - 1.0f : 1.0f;
            put(&b, &f, 4);
        }
        while ((b.n - start) % 32) put(&b, "", 1);
    }
    size_t n = b.n;
    if (v.cut) n = v.cut < n ? v.cut : n;
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(b.b, 1, n, f);
    fclose(f);
    free(b.b);
}

/* Runs `dashkit info [opt] path`; asserts exit 1, nothing on stdout, one stderr line naming the
 * file and `what`. */
static void expect_info_opt_error(const char *opt, const char *path, const char *what) {
    char cmd[1024], *out = NULL;
    snprintf(cmd, sizeof cmd, "( %s info %s '%s' 2>&1 >/dev/null )", dk_test_cli(), opt, path);
    int rc = dk_test_run(cmd, 0, &out);
    ck_assert_int_eq(rc, 1);
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(strstr(out, path) != NULL, "error does not name the file: %s", out);
    ck_assert_msg(strstr(out, what) != NULL, "error lacks '%s': %s", what, out);
    char *nl = strchr(out, '\n');
    ck_assert_msg(nl && nl[1] == 0, "expected exactly one line: %s", out);
    free(out);
}
static void expect_info_error(const char *path, const char *what) { expect_info_opt_error("", path, what); }

START_TEST(test_valid_file) {
    const char *p = dk_test_tmp_path(NULL, 0, "ok.gguf");
    write_gguf(p, (dk_gguf_variant){0});
    dk_err e = {{0}};
    dk_gguf *g;
    ck_assert_int_eq(dk_gguf_open(p, &g, &e), DK_OK);
    ck_assert_int_eq(dk_gguf_version(g), 3);
    ck_assert_int_eq(dk_gguf_n_tensors(g), DK_NT);
    uint32_t v;
    ck_assert_int_eq(dk_gguf_get_u32(g, "llama.feed_forward_length", &v, &e), DK_OK);
    ck_assert_int_eq(v, 16);
    const char *s;
    size_t len;
    ck_assert_int_eq(dk_gguf_get_str(g, "general.name", &s, &len, &e), DK_OK);
    ck_assert_int_eq(len, 7);
    ck_assert(!memcmp(s, "dk-test", 7));
    ck_assert_int_eq(dk_gguf_get_str(g, "llama.block_count", &s, &len, &e), DK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "expected string"));
    ck_assert_int_eq(dk_gguf_get_u32(g, "no.such.key", &v, &e), DK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "missing key 'no.such.key'"));
    const dk_gguf_tensor *t = dk_gguf_find_tensor(g, "blk.0.ffn_down.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ne[0], 16);
    ck_assert_int_eq(t->ne[1], 8);
    ck_assert_int_eq((uintptr_t)t->data % 32, 0);
    dk_gguf_close(g);

    char cmd[1024], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s info '%s'", dk_test_cli(), p);
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "format: gguf\n"));
    ck_assert_ptr_nonnull(strstr(out, "n_layer: 1\n"));
    ck_assert_ptr_nonnull(strstr(out, "n_head_kv: 2\n"));
    ck_assert_ptr_nonnull(strstr(out, "n_vocab: 16\n"));
    ck_assert_ptr_nonnull(strstr(out, "tokenizer: none\n"));
    free(out);
}
END_TEST

START_TEST(test_wrong_magic) {
    const char *p = dk_test_tmp_path(NULL, 0, "magic.gguf");
    write_gguf(p, (dk_gguf_variant){0});
    FILE *f = fopen(p, "r+b");
    fwrite("GGUX", 1, 4, f);
    fclose(f);
    expect_info_error(p, "magic");
}
END_TEST

START_TEST(test_bad_version) {
    const char *p = dk_test_tmp_path(NULL, 0, "version.gguf");
    write_gguf(p, (dk_gguf_variant){.version = 7});
    expect_info_error(p, "unsupported GGUF version 7");
}
END_TEST

START_TEST(test_tensor_past_eof) {
    const char *p = dk_test_tmp_path(NULL, 0, "eof.gguf");
    write_gguf(p, (dk_gguf_variant){0});
    FILE *f = fopen(p, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    write_gguf(p, (dk_gguf_variant){.cut = (size_t)n - 100});
    expect_info_error(p, "'blk.0.ffn_down.weight'");
    expect_info_error(p, "past the end of the file");
}
END_TEST

START_TEST(test_absurd_counts) {
    const char *p = dk_test_tmp_path(NULL, 0, "counts.gguf");
    write_gguf(p, (dk_gguf_variant){.n_kv_override = (uint64_t)1 << 60});
    expect_info_error(p, "metadata count 1152921504606846976 cannot fit");
    expect_info_error(p, "absurd count");
}
END_TEST

START_TEST(test_unknown_type) {
    const char *p = dk_test_tmp_path(NULL, 0, "type.gguf");
    write_gguf(p, (dk_gguf_variant){.bad_type = 99});
    expect_info_error(p, "unknown type 99");
    /* dashkit's in-memory orders are no file type */
    write_gguf(p, (dk_gguf_variant){.bad_type = DK_GGML_TYPE_Q5_0R});
    expect_info_error(p, "unknown type 1006");
}
END_TEST

/* a quantised type whose block does not divide the row (8 elements vs Q4_K's 256); the other
 * damaged quantised files (unsupported type, truncated tensor) are in test_quant.c */
START_TEST(test_quant_block_does_not_divide) {
    const char *p = dk_test_tmp_path(NULL, 0, "qblock.gguf");
    write_gguf(p, (dk_gguf_variant){.bad_type = DK_GGML_TYPE_Q4_K});
    expect_info_error(
        p, "tensor 'blk.0.attn_q.weight': row length 8 is not a multiple of the Q4_K block size 256");
}
END_TEST

START_TEST(test_truncated_header) {
    const char *p = dk_test_tmp_path(NULL, 0, "trunc.gguf");
    write_gguf(p, (dk_gguf_variant){.cut = 40});
    expect_info_error(p, "truncated");
    const char *q = dk_test_tmp_path(NULL, 0, "trunc2.gguf");
    write_gguf(q, (dk_gguf_variant){.cut = 300});
    expect_info_error(q, "truncated");
}
END_TEST

START_TEST(test_misaligned_offset) {
    const char *p = dk_test_tmp_path(NULL, 0, "align.gguf");
    write_gguf(p, (dk_gguf_variant){.misalign = 1});
    expect_info_error(p, "not a multiple of the alignment 32");
}
END_TEST

START_TEST(test_missing_file) { expect_info_error(dk_test_tmp_path(NULL, 0, "absent.gguf"), "cannot open"); }
END_TEST

/* Finding 2 of issue 17: `info --memory` applies the loader's hyper-parameter checks (it used to
 * multiply block_count * key_length = (2^31-1)^2 into a negative byte count, print "4096 TiB" for
 * block_count 2^31-1 alone and accept a NaN rope_theta, all with exit 0). */
START_TEST(test_memory_checks_hparams) {
    static const dk_gguf_variant bad[] = {
        {.block_count = 0x7fffffff, .key_length = 0x7fffffff},
        {.block_count = 0x7fffffff},
        {.nan_theta = 1},
        {.key_length = 0x7fffffff},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "hparam%zu.gguf", i);
        const char *p = dk_test_tmp_path(NULL, 0, name);
        write_gguf(p, bad[i]);
        expect_info_opt_error("--memory", p, "invalid hyper-parameters");
        expect_info_opt_error("", p, "invalid hyper-parameters");
    }
}
END_TEST

/* The real llama.cpp-written GGUF: values from its header (PROVENANCE.md). */
/* A vocab-only SentencePiece GGUF (tokenizer.ggml.model llama, 4 pieces, BOS id 1) with
 * tokenizer.ggml.add_bos_token absent (add_bos -1), false (0) or true (1). */
static void write_spm_vocab(const char *path, int add_bos) {
    static const char *const pieces[] = {"<unk>", "<s>", "</s>",
                                         "\xE2\x96\x81"
                                         "a"};
    dk_buf b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, 0);
    put_u64(&b, add_bos < 0 ? 3 : 4);
    kv_str(&b, "tokenizer.ggml.model", "llama");
    put_str(&b, "tokenizer.ggml.tokens");
    put_u32(&b, DK_GGUF_TYPE_ARRAY);
    put_u32(&b, DK_GGUF_TYPE_STRING);
    put_u64(&b, 4);
    for (int i = 0; i < 4; i++) put_str(&b, pieces[i]);
    kv_u32(&b, "tokenizer.ggml.bos_token_id", 1);
    if (add_bos >= 0) {
        uint8_t v = (uint8_t)add_bos;
        put_str(&b, "tokenizer.ggml.add_bos_token");
        put_u32(&b, DK_GGUF_TYPE_BOOL);
        put(&b, &v, 1);
    }
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b.b, 1, b.n, f), b.n);
    fclose(f);
    free(b.b);
}

/* SPM follows tokenizer.ggml.add_bos_token as llama.cpp does; absent means true (llama.cpp's SPM
 * default). The default reaches encoding: "a" is [1, 3] with BOS, [3] without. */
START_TEST(test_spm_add_bos_token) {
    static const struct {
        int key;
        bool want;
    } cases[] = {{-1, true}, {0, false}, {1, true}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[512];
        dk_test_tmp_path(path, sizeof path, "spm_add_bos.gguf");
        write_spm_vocab(path, cases[i].key);
        dk_tokenizer *t;
        dk_err e = {{0}};
        ck_assert_msg(dk_tokenizer_load_gguf_file(path, &t, NULL, 0, &e) == DK_OK, "%s", e.msg);
        ck_assert_str_eq(dk_tokenizer_kind(t), "spm");
        ck_assert_msg(dk_tokenizer_add_bos_default(t) == cases[i].want, "add_bos_token %d", cases[i].key);
        int32_t *ids;
        int n;
        ck_assert_msg(dk_tokenizer_encode(t, "a", 1, dk_tokenizer_add_bos_default(t), &ids, &n, &e) == DK_OK,
                      "%s", e.msg);
        ck_assert_int_eq(n, cases[i].want ? 2 : 1);
        if (cases[i].want) ck_assert_int_eq(ids[0], 1);
        ck_assert_int_eq(ids[n - 1], 3);
        free(ids);
        dk_tokenizer_free(t);
        remove(path);
    }
}
END_TEST

START_TEST(test_real_fixture_info) {
    char buf[512];
    const char *p = dk_test_fixture(buf, sizeof buf, "gguf/llama-2-tiny-random.gguf");
    DK_SKIP_IF_NULL(p);
    char cmd[1024], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s info '%s'", dk_test_cli(), p);
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    static const char *const want[] = {"format: gguf\n",
                                       "gguf_version: 3\n",
                                       "arch: llama\n",
                                       "name: LLaMA v2\n",
                                       "n_layer: 1\n",
                                       "n_embd: 8\n",
                                       "n_head: 2\n",
                                       "n_head_kv: 2\n",
                                       "n_ff: 32\n",
                                       "n_vocab: 32000\n",
                                       "n_ctx_train: 4096\n",
                                       "n_rot: 4\n",
                                       "rms_eps: 1e-05\n",
                                       "rope_theta: 10000\n",
                                       "tensor_type: F16\n",
                                       "n_tensors: 12\n",
                                       "tokenizer: spm (32000 pieces)\n",
                                       "bos_id: 1\n",
                                       "eos_id: 2\n",
                                       NULL};
    for (int i = 0; want[i]; i++)
        ck_assert_msg(strstr(out, want[i]) != NULL, "missing '%s' in:\n%s", want[i], out);
    free(out);
}
END_TEST

int main(void) {
    Suite *s = suite_create("gguf");
    TCase *tc = tcase_create("gguf");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_valid_file);
    tcase_add_test(tc, test_wrong_magic);
    tcase_add_test(tc, test_bad_version);
    tcase_add_test(tc, test_tensor_past_eof);
    tcase_add_test(tc, test_absurd_counts);
    tcase_add_test(tc, test_unknown_type);
    tcase_add_test(tc, test_quant_block_does_not_divide);
    tcase_add_test(tc, test_truncated_header);
    tcase_add_test(tc, test_misaligned_offset);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_real_fixture_info);
    tcase_add_test(tc, test_memory_checks_hparams);
    tcase_add_test(tc, test_spm_add_bos_token);
    suite_add_tcase(s, tc);
    return dk_test_main(s);
}
