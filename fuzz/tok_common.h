/* tok_common.h — the encode/decode round shared by the tokenizer targets (fuzz/tok_*.c). */
#ifndef DK_FUZZ_TOK_COMMON_H
#define DK_FUZZ_TOK_COMMON_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tokenizer.h"

/* Encodes text[0..len) (BOS when add_bos and the vocabulary has one), checks every id is in
 * range, decodes the ids back (dk_tokenizer_decode and piece by piece) and returns the decoded
 * text (malloc'd, *out_len bytes) or NULL when encoding failed cleanly. */
char *dk_fuzz_tok_round(const char *target, const dk_tokenizer *t, const char *text, size_t len, bool add_bos,
                        size_t *out_len);

/* Decodes ids read from data as little-endian u16 values modulo n_vocab + 2 (so an
 * out-of-range id now and then: a clean error), whole and piece by piece. */
void dk_fuzz_tok_decode_ids(const char *target, const dk_tokenizer *t, const uint8_t *data, size_t size);

/* Whether s[0..n) is valid UTF-8 (no overlongs, surrogates or code points above U+10FFFF). */
bool dk_fuzz_utf8_valid(const char *s, size_t n);

#endif
