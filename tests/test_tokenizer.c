/* test_tokenizer.c — tokenizer against SentencePiece goldens (tok512), llama2.c decode semantics,
 * the real Llama-2 vocabulary from a GGUF, hand-built vocabularies and bad input.
 *
 * Goldens: tests/data/tok512_golden.tsv, made by scripts/make_tok_goldens.py with SentencePiece on
 * ../shared/fixtures/llama2c/tok512.model (format described in the script). */
#include "support/dk_test.h"
#include "gguf.h"
#include "tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef DK_TOK_GOLDEN
#define DK_TOK_GOLDEN "tests/data/tok512_golden.tsv"
#endif

/* ---- helpers ---- */

static dk_tokenizer *load_tok512(void) {
    char buf[1024];
    const char *p = dk_test_fixture(buf, sizeof buf, "llama2c/tok512.bin");
    if (!p) return NULL;
    dk_tokenizer *t = NULL;
    dk_err e = {{0}};
    dk_status st = dk_tokenizer_load_llama2c(p, 512, &t, &e);
    ck_assert_msg(st == DK_OK, "load tok512.bin: %s", e.msg);
    return t;
}

/* Splits line in place on '\t' (line's '\n' removed); returns the field count. */
static int split_tabs(char *line, char **f, int max) {
    int n = 0;
    line[strcspn(line, "\r\n")] = 0;
    char *s = line;
    while (n < max) {
        f[n++] = s;
        char *t = strchr(s, '\t');
        if (!t) break;
        *t = 0;
        s = t + 1;
    }
    return n;
}

/* Hex ("-" = empty) to a malloc'd NUL-terminated byte string. */
static char *unhex(const char *h, size_t *len) {
    if (!strcmp(h, "-")) h = "";
    size_t n = strlen(h) / 2;
    char *out = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        ck_assert(sscanf(h + 2 * i, "%2x", &v) == 1);
        out[i] = (char)v;
    }
    out[n] = 0;
    *len = n;
    return out;
}

/* Space-separated ids ("-" = none) into ids (capacity max); returns the count. */
static int parse_ids(const char *s, int32_t *ids, int max) {
    if (!strcmp(s, "-")) return 0;
    int n = 0;
    char *end;
    while (*s) {
        long v = strtol(s, &end, 10);
        ck_assert_msg(end != s, "bad id list '%s'", s);
        ck_assert(n < max);
        ids[n++] = (int32_t)v;
        s = end;
        while (*s == ' ') s++;
    }
    return n;
}

static char *ids_to_str(const int32_t *ids, int n) {
    size_t cap = (size_t)n * 12 + 2;
    char *s = malloc(cap), *p = s;
    *p = 0;
    for (int i = 0; i < n; i++) p += sprintf(p, "%s%d", i ? " " : "", ids[i]);
    return s;
}

static void assert_ids(const char *what, const int32_t *got, int n_got, const int32_t *want, int n_want) {
    char *g = ids_to_str(got, n_got), *w = ids_to_str(want, n_want);
    ck_assert_msg(n_got == n_want && !memcmp(got, want, sizeof(int32_t) * (size_t)n_got),
                  "%s:\n  got  [%s]\n  want [%s]", what, g, w);
    free(g);
    free(w);
}

static FILE *open_golden(void) {
    FILE *f = fopen(DK_TOK_GOLDEN, "r");
    ck_assert_msg(f != NULL, "cannot open %s (run from the repository root)", DK_TOK_GOLDEN);
    return f;
}

/* ---- tok512 goldens from SentencePiece ---- */

/* mode 0: default (whitespace kept, as llama2.c run.c); mode 1: tok512.model's normaliser. */
static void check_enc_goldens(int mode) {
    dk_tokenizer *t = load_tok512();
    DK_SKIP_IF_NULL(t);
    dk_tokenizer_set_remove_extra_whitespaces(t, mode == 1);
    FILE *f = open_golden();
    char *line = NULL;
    size_t cap = 0;
    int n_cases = 0;
    static int32_t want[65536];
    while (getline(&line, &cap, f) > 0) {
        char *fl[8];
        if (line[0] == '#' || split_tabs(line, fl, 8) < 7 || strcmp(fl[0], "enc")) continue;
        size_t len, dlen;
        char *text = unhex(fl[2], &len);
        int n_want = parse_ids(mode ? fl[3] : fl[4], want, 65536);
        char *dec_want = unhex(mode ? fl[5] : fl[6], &dlen);
        int32_t *ids = NULL;
        int n = 0;
        dk_err e = {{0}};
        ck_assert_msg(dk_tokenizer_encode(t, text, len, false, &ids, &n, &e) == DK_OK, "%s: %s", fl[1],
                      e.msg);
        char what[128];
        snprintf(what, sizeof what, "encode '%s' (%s)", fl[1], mode ? "model normaliser" : "whitespace kept");
        assert_ids(what, ids, n, want, n_want);
        /* with BOS: same ids after BOS 1 */
        int32_t *ids2 = NULL;
        int n2 = 0;
        ck_assert(dk_tokenizer_encode(t, text, len, true, &ids2, &n2, &e) == DK_OK);
        ck_assert_int_eq(n2, n + 1);
        ck_assert_int_eq(ids2[0], 1);
        ck_assert(!memcmp(ids2 + 1, ids, sizeof(int32_t) * (size_t)n));
        /* SentencePiece's decode of those ids */
        char *dec = NULL;
        size_t got_len = 0;
        ck_assert(dk_tokenizer_decode(t, want, n_want, &dec, &got_len, &e) == DK_OK);
        ck_assert_msg(got_len == dlen && !memcmp(dec, dec_want, dlen), "decode '%s': got '%s' want '%s'",
                      fl[1], dec, dec_want);
        free(dec);
        free(ids);
        free(ids2);
        free(text);
        free(dec_want);
        n_cases++;
    }
    free(line);
    fclose(f);
    ck_assert_int_ge(n_cases, 20);
    dk_tokenizer_free(t);
}

START_TEST(test_tok512_golden_keep_ws) { check_enc_goldens(0); }
END_TEST

START_TEST(test_tok512_golden_model_normalizer) { check_enc_goldens(1); }
END_TEST

START_TEST(test_tok512_golden_decode) {
    dk_tokenizer *t = load_tok512();
    DK_SKIP_IF_NULL(t);
    FILE *f = open_golden();
    char *line = NULL;
    size_t cap = 0;
    int n_cases = 0;
    int32_t ids[256];
    while (getline(&line, &cap, f) > 0) {
        char *fl[8];
        if (line[0] == '#' || split_tabs(line, fl, 8) < 5 || strcmp(fl[0], "dec")) continue;
        int n = parse_ids(fl[2], ids, 256);
        for (int mode = 0; mode < 2; mode++) {
            dk_tokenizer_set_remove_extra_whitespaces(t, mode == 1);
            size_t wl, gl;
            char *want = unhex(mode ? fl[3] : fl[4], &wl), *got = NULL;
            dk_err e = {{0}};
            ck_assert(dk_tokenizer_decode(t, ids, n, &got, &gl, &e) == DK_OK);
            ck_assert_msg(gl == wl && !memcmp(got, want, wl), "decode '%s' mode %d: got '%s' want '%s'",
                          fl[1], mode, got, want);
            free(got);
            free(want);
        }
        n_cases++;
    }
    free(line);
    fclose(f);
    ck_assert_int_ge(n_cases, 10);
    dk_tokenizer_free(t);
}
END_TEST

static uint64_t fnv1a64_ids(const int32_t *ids, int n) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (int i = 0; i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        for (int k = 0; k < 4; k++) {
            h ^= (v >> (8 * k)) & 0xFF;
            h *= 0x100000001B3ull;
        }
    }
    return h;
}

/* Whole books (0.4-1.3 MB): exact SentencePiece ids. Also guards against O(n^2) merging — a
 * quadratic encoder would not finish within the test's timeout on 10^6 symbols. */
START_TEST(test_tok512_golden_long_text) {
    dk_tokenizer *t = load_tok512();
    DK_SKIP_IF_NULL(t);
    FILE *f = open_golden();
    char *line = NULL;
    size_t cap = 0;
    int n_cases = 0;
    while (getline(&line, &cap, f) > 0) {
        char *fl[8];
        if (line[0] == '#' || split_tabs(line, fl, 8) < 7 || strcmp(fl[0], "long")) continue;
        char buf[1024];
        const char *path = dk_test_fixture(buf, sizeof buf, fl[2]);
        if (!path) continue;
        FILE *tf = fopen(path, "rb");
        ck_assert(tf != NULL);
        fseek(tf, 0, SEEK_END);
        long sz = ftell(tf);
        fseek(tf, 0, SEEK_SET);
        char *text = malloc((size_t)sz);
        ck_assert(fread(text, 1, (size_t)sz, tf) == (size_t)sz);
        fclose(tf);
        dk_tokenizer_set_remove_extra_whitespaces(t, !strcmp(fl[3], "model"));
        int32_t *ids = NULL;
        int n = 0;
        dk_err e = {{0}};
        ck_assert_msg(dk_tokenizer_encode(t, text, (size_t)sz, false, &ids, &n, &e) == DK_OK, "%s", e.msg);
        int32_t first[32];
        int n_first = parse_ids(fl[6], first, 32);
        char what[256];
        snprintf(what, sizeof what, "%s (%s) first ids", fl[1], fl[3]);
        assert_ids(what, ids, n < n_first ? n : n_first, first, n_first);
        ck_assert_msg(n == atoi(fl[4]), "%s (%s): %d ids, SentencePiece gives %s", fl[1], fl[3], n, fl[4]);
        char hash[32];
        snprintf(hash, sizeof hash, "%016llx", (unsigned long long)fnv1a64_ids(ids, n));
        ck_assert_msg(!strcmp(hash, fl[5]), "%s (%s): id hash %s, SentencePiece gives %s", fl[1], fl[3], hash,
                      fl[5]);
        if (!strcmp(fl[3], "keep_ws")) { /* whitespace kept: decode restores the book exactly */
            char *dec = NULL;
            size_t dl = 0;
            ck_assert(dk_tokenizer_decode(t, ids, n, &dec, &dl, &e) == DK_OK);
            ck_assert_msg(dl == (size_t)sz && !memcmp(dec, text, dl), "%s: decode(encode(book)) != book",
                          fl[1]);
            free(dec);
        }
        free(ids);
        free(text);
        n_cases++;
    }
    free(line);
    fclose(f);
    dk_tokenizer_free(t);
    if (n_cases == 0) printf("SKIP: no long-text fixture present\n");
}
END_TEST

/* ---- llama2.c run.c decode() semantics ---- */

START_TEST(test_llama2c_decode_piece) {
    dk_tokenizer *t = load_tok512();
    DK_SKIP_IF_NULL(t);
    size_t L;
    ck_assert_str_eq(dk_tokenizer_kind(t), "llama2c");
    ck_assert_int_eq(dk_tokenizer_n_vocab(t), 512);
    ck_assert_int_eq(dk_tokenizer_bos(t), 1);
    ck_assert_int_eq(dk_tokenizer_eos(t), 2);
    /* piece 261 is " a" in tok512.bin: leading space dropped only after BOS */
    ck_assert_str_eq(dk_tokenizer_decode_piece(t, 1, 261, &L), "a");
    ck_assert_uint_eq(L, 1);
    ck_assert_str_eq(dk_tokenizer_decode_piece(t, 259, 261, &L), " a");
    ck_assert_uint_eq(L, 2);
    /* <0x0A> is the newline byte, <0x00> a single zero byte */
    ck_assert_str_eq(dk_tokenizer_decode_piece(t, 400, 13, &L), "\n");
    const char *z = dk_tokenizer_decode_piece(t, 400, 3, &L);
    ck_assert_uint_eq(L, 1);
    ck_assert_int_eq(z[0], 0);
    /* control pieces verbatim as stored in the file, as run.c prints them */
    ck_assert_str_eq(dk_tokenizer_decode_piece(t, 400, 2, &L), "\n</s>\n");
    ck_assert_str_eq(dk_tokenizer_decode_piece(t, 400, 9999, &L), "");
    ck_assert_uint_eq(L, 0);
    /* space representation: tok512.bin stores ' ', so find(" a") hits and U+2581 pieces do not exist */
    ck_assert_int_eq(dk_tokenizer_find(t, " a", 2), 261);
    ck_assert_int_eq(dk_tokenizer_find(t,
                                       "\xE2\x96\x81"
                                       "a",
                                       4),
                     -1);
    dk_tokenizer_free(t);
}
END_TEST

/* The stories260K reference text: encode with BOS, then run.c's decode loop (prev, tok) must
 * give back the exact bytes, and full decode must agree. */
START_TEST(test_llama2c_stories_roundtrip) {
    char buf[1024];
    const char *p = dk_test_fixture(buf, sizeof buf, "llama2c/expected_stories260K_t0_n200.txt");
    DK_SKIP_IF_NULL(p);
    dk_tokenizer *t = load_tok512();
    DK_SKIP_IF_NULL(t);
    FILE *f = fopen(p, "rb");
    char text[4096];
    size_t n = fread(text, 1, sizeof text, f);
    fclose(f);
    int32_t *ids = NULL;
    int n_ids = 0;
    dk_err e = {{0}};
    ck_assert(dk_tokenizer_encode(t, text, n, true, &ids, &n_ids, &e) == DK_OK);
    ck_assert_int_gt(n_ids, 50);
    char out[8192];
    size_t o = 0;
    for (int i = 1; i < n_ids; i++) {
        size_t L;
        const char *s = dk_tokenizer_decode_piece(t, ids[i - 1], ids[i], &L);
        ck_assert(o + L < sizeof out);
        memcpy(out + o, s, L);
        o += L;
    }
    ck_assert_uint_eq(o, n);
    ck_assert(!memcmp(out, text, n));
    char *dec = NULL;
    size_t dl;
    ck_assert(dk_tokenizer_decode(t, ids, n_ids, &dec, &dl, &e) == DK_OK);
    ck_assert_uint_eq(dl, n);
    ck_assert(!memcmp(dec, text, n));
    free(dec);
    free(ids);
    dk_tokenizer_free(t);
}
END_TEST

/* ---- bad input ---- */

START_TEST(test_llama2c_bad_files) {
    char buf[1024];
    const char *p = dk_test_fixture(buf, sizeof buf, "llama2c/tok512.bin");
    DK_SKIP_IF_NULL(p);
    dk_tokenizer *t = NULL;
    dk_err e = {{0}};
    ck_assert_int_eq(dk_tokenizer_load_llama2c("/nonexistent/tok.bin", 512, &t, &e), DK_ERR_IO);
    ck_assert_ptr_null(t);
    ck_assert_ptr_nonnull(strstr(e.msg, "/nonexistent/tok.bin"));
    /* wrong vocabulary size: trailing bytes / truncation are both named */
    ck_assert_int_eq(dk_tokenizer_load_llama2c(p, 500, &t, &e), DK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "trailing bytes"));
    ck_assert_int_eq(dk_tokenizer_load_llama2c(p, 600, &t, &e), DK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "truncated at token 512"));
    ck_assert_int_eq(dk_tokenizer_load_llama2c(p, 0, &t, &e), DK_ERR_ARG);
    /* truncated copy, and a copy with a corrupt length field */
    FILE *f = fopen(p, "rb");
    static char data[8192];
    size_t n = fread(data, 1, sizeof data, f);
    fclose(f);
    char path[512];
    dk_test_tmp_path(path, sizeof path, "trunc.bin");
    f = fopen(path, "wb");
    fwrite(data, 1, n / 2, f);
    fclose(f);
    ck_assert_int_eq(dk_tokenizer_load_llama2c(path, 512, &t, &e), DK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, path));
    ck_assert_ptr_nonnull(strstr(e.msg, "truncated"));
    dk_test_tmp_path(path, sizeof path, "badlen.bin");
    int32_t bad = 1 << 28;
    memcpy(data + 4 + 4, &bad, 4); /* length of token 0 */
    f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
    ck_assert_int_eq(dk_tokenizer_load_llama2c(path, 512, &t, &e), DK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "token 0 has bad length 268435456"));
    ck_assert_ptr_null(t);
}
END_TEST

START_TEST(test_decode_bad_id) {
    dk_tokenizer *t = load_tok512();
    DK_SKIP_IF_NULL(t);
    int32_t ids[] = {261, 512};
    char *s = (char *)1;
    dk_err e = {{0}};
    ck_assert_int_eq(dk_tokenizer_decode(t, ids, 2, &s, NULL, &e), DK_ERR_ARG);
    ck_assert_ptr_null(s);
    ck_assert_str_eq(e.msg, "tokenizer: token id 512 at position 1 is out of range [0, 512)");
    dk_tokenizer_free(t);
}
END_TEST

/* ---- hand-built vocabularies (no fixtures) ---- */

/* Merge order, ties, user-defined pieces, byte fallback and unk, with U+2581 spaces. */
START_TEST(test_spm_small_vocab) {
    static const char *pieces[] = {
        "<unk>",
        "<s>",
        "</s>",
        "<0x41>",
        "<0x0A>", /* 0-4 */
        "\xE2\x96\x81",
        "a",
        "b",
        "c",
        "ab",
        "bc", /* 5-10 */
        "\xE2\x96\x81"
        "a",
        "abc",
        "<tool>",
        "x", /* 11-14 */
    };
    float scores[] = {0, 0, 0, 0, 0, -10, -20, -20, -20, -1, -1, -2, -3, 0, -30};
    int32_t types[] = {2, 3, 3, 6, 6, 1, 1, 1, 1, 1, 1, 1, 1, 4, 1};
    dk_spm_vocab v = {15, pieces, NULL, scores, types, 1, 2, 0, true};
    dk_tokenizer *t = NULL;
    dk_err e = {{0}};
    ck_assert_msg(dk_tokenizer_create_spm(&v, &t, &e) == DK_OK, "%s", e.msg);
    ck_assert_str_eq(dk_tokenizer_kind(t), "spm");
    int32_t *ids = NULL;
    int n = 0;
    /* "▁abc": ab(-1) and bc(-1) tie -> leftmost "ab" first; then "▁a"? no: pairs are (▁,ab) "▁ab"
     * absent and (ab,c) -> "abc"; result ▁ abc */
    ck_assert(dk_tokenizer_encode(t, "abc", 3, false, &ids, &n, &e) == DK_OK);
    int32_t w1[] = {5, 12};
    assert_ids("abc", ids, n, w1, 2);
    free(ids);
    /* "A" is not a piece but <0x41> exists; "Z" has neither -> unk; newline -> <0x0A> */
    ck_assert(dk_tokenizer_encode(t, "aA\nZ", 4, false, &ids, &n, &e) == DK_OK);
    int32_t w2[] = {11, 3, 4, 0};
    assert_ids("aA\\nZ", ids, n, w2, 4);
    free(ids);
    /* user-defined piece kept whole, never merged with neighbours */
    ck_assert(dk_tokenizer_encode(t, "x<tool>a", 8, false, &ids, &n, &e) == DK_OK);
    int32_t w3[] = {5, 14, 13, 6};
    assert_ids("x<tool>a", ids, n, w3, 4);
    free(ids);
    /* control pieces in text are plain characters: "<s>" -> unk for each of <, s, > */
    ck_assert(dk_tokenizer_encode(t, "<s>", 3, false, &ids, &n, &e) == DK_OK);
    int32_t w4[] = {5, 0, 0, 0};
    assert_ids("<s>", ids, n, w4, 4);
    free(ids);
    /* decode: control skipped, unk surface, leading space of first piece dropped */
    int32_t d[] = {1, 11, 0, 9, 2, 5, 3};
    char *s = NULL;
    size_t L;
    ck_assert(dk_tokenizer_decode(t, d, 7, &s, &L, &e) == DK_OK);
    ck_assert_str_eq(s, "a \xE2\x81\x87 ab A");
    free(s);
    ck_assert_str_eq(dk_tokenizer_decode_piece(t, 1, 11, &L), "a");
    ck_assert_str_eq(dk_tokenizer_decode_piece(t, 6, 11, &L), " a");
    ck_assert_str_eq(dk_tokenizer_decode_piece(t, 6, 1, &L), "");
    ck_assert_str_eq(dk_tokenizer_decode_piece(t, 6, 3, &L), "A");
    /* BOS requested without one */
    dk_tokenizer_free(t);
    v.bos_id = -1;
    ck_assert(dk_tokenizer_create_spm(&v, &t, &e) == DK_OK);
    ck_assert_int_eq(dk_tokenizer_encode(t, "a", 1, true, &ids, &n, &e), DK_ERR_ARG);
    dk_tokenizer_free(t);
    /* bad vocabularies */
    v.bos_id = 99;
    ck_assert_int_eq(dk_tokenizer_create_spm(&v, &t, &e), DK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "bos 99"));
    v.bos_id = 1;
    types[7] = 9;
    ck_assert_int_eq(dk_tokenizer_create_spm(&v, &t, &e), DK_ERR_FORMAT);
    ck_assert_str_eq(e.msg, "tokenizer (spm): token 7 has unknown token type 9");
    types[7] = 6; /* "b" typed byte */
    ck_assert_int_eq(dk_tokenizer_create_spm(&v, &t, &e), DK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "token 7 has type byte"));
}
END_TEST

/* No byte pieces and no unk: a character outside the vocabulary is an error naming its offset. */
START_TEST(test_spm_no_fallback) {
    static const char *pieces[] = {"\xE2\x96\x81", "a"};
    dk_spm_vocab v = {2, pieces, NULL, NULL, NULL, -1, -1, -1, false};
    dk_tokenizer *t = NULL;
    dk_err e = {{0}};
    ck_assert(dk_tokenizer_create_spm(&v, &t, &e) == DK_OK);
    int32_t *ids = NULL;
    int n = 0;
    ck_assert(dk_tokenizer_encode(t, "a a", 3, false, &ids, &n, &e) == DK_OK);
    int32_t w[] = {1, 0, 1};
    assert_ids("a a (no prefix)", ids, n, w, 3);
    free(ids);
    ck_assert_int_eq(dk_tokenizer_encode(t, "aaq", 3, false, &ids, &n, &e), DK_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(e.msg, "byte offset 2"));
    dk_tokenizer_free(t);
}
END_TEST

/* ---- Llama-2 vocabulary from the real GGUF ---- */

static dk_tokenizer *load_llama2_gguf(void) {
    char buf[1024];
    const char *p = dk_test_fixture(buf, sizeof buf, "gguf/llama-2-tiny-random.gguf");
    if (!p) return NULL;
    dk_gguf *g = NULL;
    dk_err e = {{0}};
    ck_assert_msg(dk_gguf_open(p, &g, &e) == DK_OK, "%s", e.msg);
    const char *const *strs;
    const uint32_t *lens;
    uint64_t n;
    ck_assert(dk_gguf_get_arr_str(g, "tokenizer.ggml.tokens", &strs, &lens, &n, &e) == DK_OK);
    ck_assert_uint_eq(n, 32000);
    float *scores = malloc(sizeof(float) * n);
    int32_t *types = malloc(sizeof(int32_t) * n);
    ck_assert(dk_gguf_get_arr_f32(g, "tokenizer.ggml.scores", scores, n, &e) == DK_OK);
    ck_assert(dk_gguf_get_arr_i32(g, "tokenizer.ggml.token_type", types, n, &e) == DK_OK);
    uint32_t bos, eos, unk;
    ck_assert(dk_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &bos, &e) == DK_OK);
    ck_assert(dk_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &eos, &e) == DK_OK);
    ck_assert(dk_gguf_get_u32(g, "tokenizer.ggml.unknown_token_id", &unk, &e) == DK_OK);
    bool asp = true;
    if (dk_gguf_find_key(g, "tokenizer.ggml.add_space_prefix") >= 0)
        ck_assert(dk_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &asp, &e) == DK_OK);
    dk_spm_vocab v = {(int)n, strs, lens, scores, types, (int)bos, (int)eos, (int)unk, asp};
    dk_tokenizer *t = NULL;
    ck_assert_msg(dk_tokenizer_create_spm(&v, &t, &e) == DK_OK, "%s", e.msg);
    free(scores);
    free(types);
    dk_gguf_close(g); /* the tokenizer copied what it needs */
    return t;
}

START_TEST(test_llama2_gguf_ids) {
    dk_tokenizer *t = load_llama2_gguf();
    DK_SKIP_IF_NULL(t);
    ck_assert_int_eq(dk_tokenizer_bos(t), 1);
    ck_assert_int_eq(dk_tokenizer_eos(t), 2);
    ck_assert_int_eq(dk_tokenizer_unk(t), 0);
    /* Hand-verified Llama-2 ids (published widely; e.g. "Hello world" = 15043 3186, and the
     * well-known 29871 '▁' before a leading newline/space) */
    struct {
        const char *text;
        int32_t ids[8];
        int n;
    } cases[] = {
        {"Hello world", {1, 15043, 3186}, 3},
        {" Hello", {1, 29871, 15043}, 3},
        {"\n", {1, 29871, 13}, 3},
        {"", {1}, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int32_t *ids = NULL;
        int n = 0;
        dk_err e = {{0}};
        ck_assert(dk_tokenizer_encode(t, cases[c].text, strlen(cases[c].text), true, &ids, &n, &e) == DK_OK);
        assert_ids(cases[c].text, ids, n, cases[c].ids, cases[c].n);
        free(ids);
    }
    ck_assert_int_eq(dk_tokenizer_find(t,
                                       "\xE2\x96\x81"
                                       "the",
                                       6),
                     278);
    ck_assert_int_eq(dk_tokenizer_find(t, "<0x0A>", 6), 13);
    ck_assert_int_eq(dk_tokenizer_type(t, 13), DK_TOKEN_TYPE_BYTE);
    ck_assert_int_eq(dk_tokenizer_type(t, 1), DK_TOKEN_TYPE_CONTROL);
    dk_tokenizer_free(t);
}
END_TEST

START_TEST(test_llama2_gguf_roundtrip) {
    dk_tokenizer *t = load_llama2_gguf();
    DK_SKIP_IF_NULL(t);
    const char *texts[] = {
        "Once upon a time, there was a little girl named Lily.",
        "  two leading spaces, trailing too  ",
        "multiple   spaces\tand\ttabs\n\nnewlines\r\n",
        "digits 3.14159 and 1,000,000; code: for (int i = 0; i < n; i++) { x[i] = 0x1F; }",
        "unicode: caf\u00e9 na\u00efve \u65e5\u672c\u8a9e \U0001F600 "
        "\u0417\u0434\u0440\u0430\u0432\u0441\u0442\u0432\u0443\u0439",
        "\xF0\x9F\xA6\x99 rare emoji and \xE2\x80\x8B zero-width space",
        "<s> literal control text </s>",
        "x",
    };
    for (size_t c = 0; c < sizeof texts / sizeof texts[0]; c++) {
        int32_t *ids = NULL;
        int n = 0;
        dk_err e = {{0}};
        size_t L = strlen(texts[c]);
        ck_assert(dk_tokenizer_encode(t, texts[c], L, true, &ids, &n, &e) == DK_OK);
        for (int i = 1; i < n; i++) { /* text never produces control or unknown tokens */
            int ty = dk_tokenizer_type(t, ids[i]);
            ck_assert_msg(ty == DK_TOKEN_TYPE_NORMAL || ty == DK_TOKEN_TYPE_BYTE, "'%s': id %d type %d",
                          texts[c], ids[i], ty);
        }
        char *s = NULL;
        size_t sl = 0;
        ck_assert(dk_tokenizer_decode(t, ids, n, &s, &sl, &e) == DK_OK);
        ck_assert_msg(sl == L && !memcmp(s, texts[c], L), "round trip: '%s' -> '%s'", texts[c], s);
        free(s);
        free(ids);
    }
    dk_tokenizer_free(t);
}
END_TEST

/* ---- CLI ---- */

START_TEST(test_cli_tokenize) {
    char b1[1024], b2[1024];
    const char *model = dk_test_fixture(b1, sizeof b1, "llama2c/stories260K.bin");
    DK_SKIP_IF_NULL(model);
    const char *tok = dk_test_fixture(b2, sizeof b2, "llama2c/tok512.bin");
    DK_SKIP_IF_NULL(tok);
    char cmd[4096];
    char *out = NULL;
    /* "Once upon a time, there was a little girl named Lily." golden ids (see tok512_golden.tsv) */
    snprintf(cmd, sizeof cmd, "%s tokenize %s -z %s 'Once upon a time, there was a little girl named Lily.'",
             dk_test_cli(), model, tok);
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    ck_assert_str_eq(out, "403 407 261 378 432 383 286 261 376 298 315 421 395 317 426\n");
    free(out);
    snprintf(cmd, sizeof cmd, "%s tokenize --bos %s -z %s 'hello'", dk_test_cli(), model, tok);
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    ck_assert_str_eq(out, "1 281 306 414\n");
    free(out);
    snprintf(cmd, sizeof cmd, "%s tokenize %s -z %s --decode 1 403 407 261 378 13 281 306 414", dk_test_cli(),
             model, tok);
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    ck_assert_str_eq(out, "Once upon a time\n hello\n"); /* the space of "▁he" after a newline byte stays */
    free(out);
    /* errors: bad id, out-of-range id, missing model, no text */
    snprintf(cmd, sizeof cmd, "%s tokenize %s -z %s --decode 12x", dk_test_cli(), model, tok);
    ck_assert_int_eq(dk_test_run(cmd, 1, &out), 2);
    ck_assert_ptr_nonnull(strstr(out, "12x"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s tokenize %s -z %s --decode 600", dk_test_cli(), model, tok);
    ck_assert_int_eq(dk_test_run(cmd, 1, &out), 1);
    ck_assert_ptr_nonnull(strstr(out, "600"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s tokenize /nonexistent.bin 'x'", dk_test_cli());
    ck_assert_int_eq(dk_test_run(cmd, 1, &out), 1);
    ck_assert_ptr_nonnull(strstr(out, "/nonexistent.bin"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s tokenize %s -z %s", dk_test_cli(), model, tok);
    ck_assert_int_eq(dk_test_run(cmd, 1, &out), 2);
    free(out);
    snprintf(cmd, sizeof cmd, "%s tokenize --help", dk_test_cli());
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "--decode"));
    ck_assert_ptr_nonnull(strstr(out, "--bos"));
    free(out);
}
END_TEST

static Suite *tokenizer_suite(void) {
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_tok512_golden_keep_ws);
    tcase_add_test(tc, test_tok512_golden_model_normalizer);
    tcase_add_test(tc, test_tok512_golden_decode);
    tcase_add_test(tc, test_tok512_golden_long_text);
    tcase_add_test(tc, test_llama2c_decode_piece);
    tcase_add_test(tc, test_llama2c_stories_roundtrip);
    tcase_add_test(tc, test_llama2c_bad_files);
    tcase_add_test(tc, test_decode_bad_id);
    tcase_add_test(tc, test_spm_small_vocab);
    tcase_add_test(tc, test_spm_no_fallback);
    tcase_add_test(tc, test_llama2_gguf_ids);
    tcase_add_test(tc, test_llama2_gguf_roundtrip);
    tcase_add_test(tc, test_cli_tokenize);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return dk_test_main(tokenizer_suite()); }
