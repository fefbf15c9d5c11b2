/* tok_bpe.c — fuzz target "tok_bpe": GPT-2 byte-level BPE encode/decode and pre-tokenizer
 * chunks, on the real vocabularies of tests/data (bpe_*.gguf.gz, decompressed once).
 *
 * Input: byte 0 = flags, the rest = text (or ids).
 *   bits 0-1  tokenizer: 0 GPT-2 (pre gpt-2), 1 GPT-2 vocabulary with pre smollm,
 *             2 Llama-3 (llama-bpe), 3 Qwen2.5 (qwen2)
 *   bit 2     add BOS         bit 3  decode: the rest is u16 ids (dk_fuzz_tok_decode_ids)
 * Checked: chunk ends strictly increase and end at the text's length, and decode(encode(s)) == s
 * for valid UTF-8 s (tokenizer.h promises both). Seeds: the texts of tests/data. */
#include "fuzz.h"
#include "gguf.h"
#include "tok_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static dk_tokenizer *load(const char *gz, const char *pre) {
    char rel[256], src[1024], path[] = "/tmp/dk_fuzz_bpe_XXXXXX";
    snprintf(rel, sizeof rel, "tests/data/%s", gz);
    int fd = mkstemp(path);
    dk_fuzz_assert(fd >= 0, "tok_bpe", "mkstemp failed");
    close(fd);
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "gzip -dc '%s' > '%s'", dk_fuzz_data_path(src, sizeof src, rel), path);
    dk_fuzz_assert(system(cmd) == 0, "tok_bpe", "cannot decompress a vocabulary of tests/data");
    dk_gguf *g = NULL;
    dk_err e = {{0}};
    dk_fuzz_assert(dk_gguf_open(path, &g, &e) == DK_OK, "tok_bpe", e.msg);
    unlink(path);
    dk_tokenizer *t = NULL;
    if (!pre) {
        dk_fuzz_assert(dk_tokenizer_load_gguf_bpe(g, path, &t, &e) == DK_OK, "tok_bpe", e.msg);
    } else {
        dk_bpe_vocab v = {.bos_id = -1, .eos_id = -1, .unk_id = -1, .pre = pre};
        uint64_t n = 0, nm = 0;
        dk_fuzz_assert(
            dk_gguf_get_arr_str(g, "tokenizer.ggml.tokens", &v.tokens, &v.token_lens, &n, &e) == DK_OK &&
                dk_gguf_get_arr_str(g, "tokenizer.ggml.merges", &v.merges, &v.merge_lens, &nm, &e) == DK_OK,
            "tok_bpe", e.msg);
        int32_t *types = malloc(n * sizeof *types);
        dk_fuzz_assert(types && dk_gguf_get_arr_i32(g, "tokenizer.ggml.token_type", types, n, &e) == DK_OK,
                       "tok_bpe", e.msg);
        v.n_vocab = (int)n;
        v.n_merges = (int)nm;
        v.types = types;
        dk_fuzz_assert(dk_tokenizer_create_bpe(&v, &t, &e) == DK_OK, "tok_bpe", e.msg);
        free(types);
    }
    dk_gguf_close(g);
    return t;
}

static const dk_tokenizer *tokenizer(int which) {
    static dk_tokenizer *t[4];
    static const char *const gz[4] = {"bpe_gpt2.gguf.gz", "bpe_gpt2.gguf.gz", "bpe_llama3.gguf.gz",
                                      "bpe_qwen.gguf.gz"};
    static const char *const pre[4] = {NULL, "smollm", NULL, NULL};
    if (!t[which]) t[which] = load(gz[which], pre[which]);
    return t[which];
}

int dk_fuzz_tok_bpe(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t flags = data[0];
    const dk_tokenizer *t = tokenizer(flags & 3);
    if (flags & 8) {
        dk_fuzz_tok_decode_ids("tok_bpe", t, data + 1, size - 1);
        return 0;
    }
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    uint32_t *ends = NULL;
    int n_chunks = 0;
    dk_err e = {{0}};
    dk_status st = dk_tokenizer_pretokenize(t, text, n, &ends, &n_chunks, &e);
    dk_fuzz_check_err("tok_bpe", st, &e);
    dk_fuzz_assert(st == DK_OK, "tok_bpe", "pretokenize failed");
    for (int i = 0; i < n_chunks; i++)
        dk_fuzz_assert(ends[i] > (i ? ends[i - 1] : 0) && ends[i] <= n, "tok_bpe",
                       "chunk ends not increasing");
    dk_fuzz_assert(n == 0 || (n_chunks > 0 && ends[n_chunks - 1] == n), "tok_bpe",
                   "chunks do not cover the text");
    free(ends);
    int add_bos = (flags & 4) && dk_tokenizer_bos(t) >= 0;
    size_t len = 0;
    char *out = dk_fuzz_tok_round("tok_bpe", t, text, n, add_bos, &len);
    dk_fuzz_assert(out != NULL, "tok_bpe", "encode failed");
    if (dk_fuzz_utf8_valid(text, n) && !add_bos)
        dk_fuzz_assert(len == n && !memcmp(out, text, n), "tok_bpe",
                       "decode(encode(s)) != s for valid UTF-8 s");
    free(out);
    return 0;
}
