/* libfuzzer_main.c — libFuzzer's entry for one target, chosen at compile time with
 * -DDK_FUZZ_TARGET=dk_fuzz_NAME (Makefile: build-fuzz/fuzz_NAME). */
#include "fuzz.h"

#ifndef DK_FUZZ_TARGET
#error "compile with -DDK_FUZZ_TARGET=dk_fuzz_NAME"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return DK_FUZZ_TARGET(data, size); }
