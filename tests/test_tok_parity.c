/* test_tok_parity.c — dashkit's tokenizer against llama.cpp's own, per vocabulary.
 *
 * Goldens tests/data/llamacpp_tok_NAME.json: scripts/make_llamacpp_tok_goldens.sh runs
 * scripts/llamacpp_tok.c (llama_tokenize of the prebuilt libllama of node-llama-cpp@3.21.1, the
 * vocabulary loaded with vocab_only) over tests/data/tok_parity_strings.json, with add_special
 * false ("ids") and true ("ids_special": BOS when the vocabulary adds one). dashkit must give the
 * same ids with add_bos false and with add_bos = its default for the vocabulary (which must also
 * be llama.cpp's). Byte-level BPE goldens use parse_special = true (dashkit matches special-token
 * text), SentencePiece ones parse_special = false (dashkit never produces control tokens from
 * text). Vocabularies: llama.cpp's models/ggml-vocab-{llama-spm,phi-3}.gguf (MIT, gzip'd in
 * tests/data/llamacpp_vocab_*), the project's tests/data/bpe_*.gguf.gz, and the Qwen vocabulary
 * with the pre-tokenizers gpt-2, llama-bpe and smollm swapped in. */
#include "support/dk_test.h"
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Checks every case of tests/data/llamacpp_tok_<name>.json. */
static void check_vocab(const char *name, const char *want_kind) {
    char path[512], gguf[512], cmd[1200];
    snprintf(path, sizeof path, "tests/data/llamacpp_tok_%s.json", name);
    size_t n;
    char *js = dk_test_read_file(path, &n);
    cJSON *g = cJSON_Parse(js);
    free(js);
    ck_assert_msg(g != NULL, "%s does not parse", path);
    const char *gz = cJSON_GetObjectItem(g, "vocab")->valuestring;
    cJSON *pre = cJSON_GetObjectItem(g, "pre");
    snprintf(gguf, sizeof gguf, "%s/%s.gguf", dk_test_tmpdir(), name);
    snprintf(cmd, sizeof cmd, "gzip -dc 'tests/data/%s' > '%s'", gz, gguf);
    ck_assert_msg(dk_test_run(cmd, 1, NULL) == 0, "%s failed", cmd);
    dk_tokenizer *t = NULL;
    dk_err e = {{0}};
    char desc[64];
    ck_assert_msg(dk_tokenizer_load_gguf_file(gguf, &t, desc, sizeof desc, &e) == DK_OK, "%s", e.msg);
    unlink(gguf);
    if (cJSON_IsString(pre)) { /* the same merges under another pre-tokenizer */
        ck_assert_msg(dk_tokenizer_set_pre(t, pre->valuestring, &e) == DK_OK, "%s", e.msg);
        ck_assert_str_eq(dk_tokenizer_pre(t), pre->valuestring);
    }
    ck_assert_str_eq(dk_tokenizer_kind(t), want_kind);
    bool bpe = !strcmp(want_kind, "bpe");
    ck_assert_int_eq(cJSON_IsTrue(cJSON_GetObjectItem(g, "parse_special")), bpe);
    ck_assert_int_eq(dk_tokenizer_n_vocab(t), cJSON_GetObjectItem(g, "n_vocab")->valueint);
    bool add_bos = cJSON_IsTrue(cJSON_GetObjectItem(g, "add_bos"));
    ck_assert_msg(dk_tokenizer_add_bos_default(t) == add_bos, "%s: add_bos default %d, llama.cpp %d", name,
                  dk_tokenizer_add_bos_default(t), add_bos);
    if (add_bos) ck_assert_int_eq(dk_tokenizer_bos(t), cJSON_GetObjectItem(g, "bos")->valueint);
    int n_cases = 0, n_bad = 0;
    char first_bad[2048] = "";
    cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(g, "cases")) {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        for (int k = 0; k < 2; k++) {
            cJSON *want = cJSON_GetObjectItem(c, k ? "ids_special" : "ids");
            int32_t *ids = NULL;
            int m = 0;
            ck_assert_msg(dk_tokenizer_encode(t, text, strlen(text), k ? add_bos : false, &ids, &m, &e) ==
                              DK_OK,
                          "%s: %s", name, e.msg);
            int nw = cJSON_GetArraySize(want), at = -1;
            for (int i = 0; i < (m < nw ? m : nw) && at < 0; i++)
                if (ids[i] != cJSON_GetArrayItem(want, i)->valueint) at = i;
            if (at < 0 && m != nw) at = m < nw ? m : nw;
            if (at >= 0 && !n_bad++)
                snprintf(
                    first_bad, sizeof first_bad,
                    "case %d \"%.200s\" (add_bos %d): %d ids, llama.cpp %d; first difference at %d: %d vs %d",
                    n_cases, text, k, m, nw, at, at < m ? ids[at] : -1,
                    at < nw ? cJSON_GetArrayItem(want, at)->valueint : -1);
            free(ids);
        }
        n_cases++;
    }
    ck_assert_msg(n_bad == 0, "%s: %d of %d encodings differ from llama.cpp; %s", name, n_bad, 2 * n_cases,
                  first_bad);
    ck_assert_int_ge(n_cases, 70);
    dk_tokenizer_free(t);
    cJSON_Delete(g);
}

/* golden name, tokenizer kind */
static const char *const VOCABS[][2] = {
    {"llama_spm", "spm"}, {"phi3", "spm"},      {"gpt2", "bpe"},           {"llama3", "bpe"},
    {"qwen2", "bpe"},     {"qwen_gpt2", "bpe"}, {"qwen_llama_bpe", "bpe"}, {"qwen_smollm", "bpe"},
};
#define N_VOCABS ((int)(sizeof VOCABS / sizeof VOCABS[0]))

START_TEST(test_vocab) { check_vocab(VOCABS[_i][0], VOCABS[_i][1]); }
END_TEST

/* A gpt2 vocabulary without tokenizer.ggml.pre (the key renamed in a copy of bpe_gpt2): llama.cpp
 * would apply its "default" pre-tokenizer, dashkit refuses with one line (tokenize exit 1) and
 * `info` says the tokenizer is not supported. */
START_TEST(test_missing_pre_refused) {
    char gguf[512], cmd[1400], *out = NULL;
    dk_test_tmp_path(gguf, sizeof gguf, "nopre.gguf");
    snprintf(cmd, sizeof cmd, "gzip -dc tests/data/bpe_gpt2.gguf.gz > '%s'", gguf);
    ck_assert(dk_test_run(cmd, 1, NULL) == 0);
    size_t n;
    char *b = dk_test_read_file(gguf, &n);
    char *k = memmem(b, n, "tokenizer.ggml.pre", 18);
    ck_assert_ptr_nonnull(k);
    k[17] = 'X';
    FILE *f = fopen(gguf, "wb");
    ck_assert(f && fwrite(b, 1, n, f) == n && fclose(f) == 0);
    free(b);
    dk_tokenizer *t = NULL;
    dk_err e = {{0}};
    char desc[64];
    ck_assert_int_eq(dk_tokenizer_load_gguf_file(gguf, &t, desc, sizeof desc, &e), DK_ERR_UNSUPPORTED);
    ck_assert_ptr_null(t);
    ck_assert_str_eq(desc, "bpe (not supported)");
    ck_assert_msg(
        strstr(e.msg, "no tokenizer.ggml.pre: llama.cpp tokenizes such a gpt2 vocabulary with its 'default'"),
        "%s", e.msg);
    snprintf(cmd, sizeof cmd, "( %s tokenize '%s' hello 2>&1 >/dev/null )", dk_test_cli(), gguf);
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 1);
    ck_assert_msg(strstr(out, "no tokenizer.ggml.pre") && strchr(out, '\n') == out + strlen(out) - 1, "%s",
                  out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s info '%s'", dk_test_cli(), gguf);
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    ck_assert_msg(strstr(out, "tokenizer: bpe (not supported)\n"), "%s", out);
    free(out);
    unlink(gguf);
}
END_TEST

static Suite *tok_parity_suite(void) {
    Suite *s = suite_create("tok_parity");
    TCase *tc = tcase_create("llamacpp");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_vocab, 0, N_VOCABS);
    tcase_add_test(tc, test_missing_pre_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return dk_test_main(tok_parity_suite()); }
