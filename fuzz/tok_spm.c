/* tok_spm.c — fuzz target "tok_spm": SentencePiece-style encode/decode.
 *
 * Input: byte 0 = flags, the rest = text (or ids).
 *   bit 0  add BOS            bit 1  remove_extra_whitespaces
 *   bit 2  tokenizer: 0 = the bundled model's vocabulary (models/dashkit-tiny.gguf, 2048
 *          pieces with byte fallback), 1 = a small vocabulary built here with user-defined
 *          pieces and no byte pieces (unknown characters become unk_id)
 *   bit 3  decode: the rest is u16 ids (see dk_fuzz_tok_decode_ids) instead of text
 * Seeds: the prompts and golden texts of tests/data. */
#include "fuzz.h"
#include "model.h"
#include "tok_common.h"

#include <stdlib.h>

#define SP "\xe2\x96\x81" /* U+2581, SentencePiece's space */

static dk_tokenizer *small_vocab(void) {
    static const char *const pieces[] = {"<unk>", "<s>",      "</s>", SP,      "a",
                                         "b",     "ab",       SP "a", SP "ab", "<user>",
                                         "c",     "\xc3\xa9", SP SP,  "abc",   "<unused>"};
    static const int32_t types[] = {DK_TOKEN_TYPE_UNKNOWN,
                                    DK_TOKEN_TYPE_CONTROL,
                                    DK_TOKEN_TYPE_CONTROL,
                                    1,
                                    1,
                                    1,
                                    1,
                                    1,
                                    1,
                                    DK_TOKEN_TYPE_USER_DEFINED,
                                    1,
                                    1,
                                    1,
                                    1,
                                    DK_TOKEN_TYPE_UNUSED};
    dk_spm_vocab v = {.n_vocab = (int)(sizeof pieces / sizeof pieces[0]),
                      .pieces = pieces,
                      .types = types,
                      .bos_id = 1,
                      .eos_id = 2,
                      .unk_id = 0,
                      .add_space_prefix = true};
    dk_tokenizer *t = NULL;
    dk_err e = {{0}};
    dk_fuzz_assert(dk_tokenizer_create_spm(&v, &t, &e) == DK_OK, "tok_spm", e.msg);
    return t;
}

static dk_tokenizer *tokenizer(int which) {
    static dk_model *m;
    static dk_tokenizer *small;
    if (which) return small ? small : (small = small_vocab());
    if (!m) {
        char path[1024];
        dk_err e = {{0}};
        dk_fuzz_assert(dk_model_load(dk_fuzz_data_path(path, sizeof path, "models/dashkit-tiny.gguf"), NULL,
                                     &m, &e) == DK_OK &&
                           m->tokenizer,
                       "tok_spm", e.msg);
    }
    return m->tokenizer;
}

int dk_fuzz_tok_spm(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t flags = data[0];
    dk_tokenizer *t = tokenizer(flags >> 2 & 1);
    dk_tokenizer_set_remove_extra_whitespaces(t, flags >> 1 & 1);
    if (flags & 8) {
        dk_fuzz_tok_decode_ids("tok_spm", t, data + 1, size - 1);
    } else {
        size_t len;
        free(dk_fuzz_tok_round("tok_spm", t, (const char *)data + 1, size - 1, flags & 1, &len));
    }
    dk_tokenizer_set_remove_extra_whitespaces(t, false);
    return 0;
}
