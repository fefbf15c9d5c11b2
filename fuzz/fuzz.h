/* fuzz.h — the fuzz targets: one entry point per parser, each taking the fuzzer's bytes.
 *
 * A target is `int dk_fuzz_NAME(const uint8_t *data, size_t size)` in fuzz/NAME.c. It feeds the
 * bytes to the library's real entry points (through a memfd file where the API reads a path),
 * uses whatever loaded, frees everything and returns 0. It aborts (a crash for libFuzzer and
 * for the Check test alike) when the library breaks a documented promise: a failing call with an
 * empty or multi-line error message, or a property of its output (e.g. BPE decode(encode(s)) == s
 * for valid UTF-8 s). Memory errors, undefined behaviour and leaks are left to the sanitizers.
 *
 * Built two ways: with clang -fsanitize=fuzzer,address,undefined, one binary per target
 * (fuzz/libfuzzer_main.c, `make fuzz`), and normally into tests/test_fuzz_regress, which replays
 * tests/data/fuzz/NAME/ through the same functions in `make test`. Data files the targets need
 * (tokenizer vocabularies) are read relative to the repository root, or $DK_FUZZ_ROOT. */
#ifndef DK_FUZZ_H
#define DK_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#include "dk_common.h"

typedef int (*dk_fuzz_fn)(const uint8_t *data, size_t size);

typedef struct {
    const char *name; /* fuzz/NAME.c, build-fuzz/fuzz_NAME, tests/data/fuzz/NAME/ */
    dk_fuzz_fn fn;
} dk_fuzz_target;

int dk_fuzz_gguf(const uint8_t *data, size_t size);        /* dk_gguf_open + every getter */
int dk_fuzz_model(const uint8_t *data, size_t size);       /* dk_model_load: GGUF or llama2.c .bin */
int dk_fuzz_tok_llama2c(const uint8_t *data, size_t size); /* dk_tokenizer_load_llama2c */
int dk_fuzz_tok_spm(const uint8_t *data, size_t size);     /* SentencePiece-style encode/decode */
int dk_fuzz_tok_bpe(const uint8_t *data, size_t size);     /* byte-level BPE encode/decode */
int dk_fuzz_config(const uint8_t *data, size_t size);      /* dk_config_parse + cell identities */
int dk_fuzz_longbench(const uint8_t *data, size_t size);   /* dk_longbench_load_file + prompts */
int dk_fuzz_score(const uint8_t *data, size_t size);       /* `dashkit score FILE` (dk_cmd_score) */
int dk_fuzz_memory(const uint8_t *data, size_t size); /* dk_memory_read_gguf + estimates (info --memory) */

/* Every target, NULL-terminated. */
extern const dk_fuzz_target dk_fuzz_targets[];

/* ---- helpers shared by the targets (fuzz/fuzz.c) ---- */

/* Path of a file holding exactly data[0..size): one memfd per process, rewritten on each call
 * ("/proc/self/fd/N"). Aborts when the memfd cannot be made. */
const char *dk_fuzz_file(const uint8_t *data, size_t size);

/* Aborts unless a failed call left a non-empty, one-line message in e (what the CLI prints). */
void dk_fuzz_check_err(const char *target, dk_status st, const dk_err *e);

/* Aborts with "dk_fuzz NAME: WHY" on stderr when cond is false. */
void dk_fuzz_assert(int cond, const char *target, const char *why);

/* $DK_FUZZ_ROOT/rel (default: rel, relative to the working directory) into buf. */
const char *dk_fuzz_data_path(char *buf, size_t n, const char *rel);

#endif
