/* tok_llama2c.c — fuzz target "tok_llama2c": dk_tokenizer_load_llama2c on a tokenizer file
 * (int32 max_token_length, then n_vocab x {float32 score, int32 len, len bytes}).
 *
 * Input: bytes 0-1 = n_vocab (little-endian u16, as a model header would give it), the rest =
 * the file. When it loads: an encode/decode round of a fixed text and of the file's own bytes,
 * every piece decoded. Seeds: a synthetic vocabulary (fuzz/seeds.sh) and tok512.bin of the
 * shared fixtures when present. */
#include "fuzz.h"
#include "tok_common.h"

#include <stdlib.h>

int dk_fuzz_tok_llama2c(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    int n_vocab = data[0] | data[1] << 8;
    dk_tokenizer *t = NULL;
    dk_err e = {{0}};
    dk_status st = dk_tokenizer_load_llama2c(dk_fuzz_file(data + 2, size - 2), n_vocab, &t, &e);
    dk_fuzz_check_err("tok_llama2c", st, &e);
    if (st != DK_OK) return 0;
    dk_fuzz_assert(dk_tokenizer_n_vocab(t) == n_vocab, "tok_llama2c", "vocabulary size differs from n_vocab");
    static const char text[] = "Once upon a time, <s> x\xc3\xa9\xff  y\n";
    size_t len;
    free(dk_fuzz_tok_round("tok_llama2c", t, text, sizeof text - 1, true, &len));
    size_t k = size - 2 < 256 ? size - 2 : 256;
    free(dk_fuzz_tok_round("tok_llama2c", t, (const char *)data + 2, k, false, &len));
    for (int i = 0; i < n_vocab; i++) {
        size_t pl = 0;
        const char *p = dk_tokenizer_piece(t, i, &pl);
        dk_fuzz_assert(p != NULL, "tok_llama2c", "piece in range is NULL");
        dk_fuzz_assert(dk_tokenizer_find(t, p, pl) >= 0, "tok_llama2c", "piece not found by its own bytes");
        (void)dk_tokenizer_decode_piece(t, i ? i - 1 : -1, i, &pl);
    }
    dk_tokenizer_free(t);
    return 0;
}
