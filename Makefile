# dashkit — build, test, bench.  `make run` and `make test` install what they need (scripts/install-deps.sh).
CC      ?= cc
BUILD   := build
# AVX2+FMA code generation where the CPU has it (the engine's non-BLAS loops); override with ARCH_FLAGS=.
ARCH_FLAGS ?= $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo 2>/dev/null && echo -march=x86-64-v3)
OPT     ?= -O2
CFLAGS  += -std=c11 -D_GNU_SOURCE $(OPT) $(ARCH_FLAGS) -Wall -Wextra -g -MMD -MP
# Include paths per folder: the compiler enforces the layering cli -> eval -> engine.
ENGINE_INC := -Iengine
EVAL_INC   := -Iengine -Ieval -Ieval/tasks -Ieval/sweep -Ieval/report
CLI_INC    := $(EVAL_INC) -Icli
BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null || echo -I/usr/include/x86_64-linux-gnu/openblas-pthread)
BLAS_LIBS   := $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
CJSON_CFLAGS := $(shell pkg-config --cflags libcjson 2>/dev/null)
CJSON_LIBS   := $(shell pkg-config --libs libcjson 2>/dev/null || echo -lcjson)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm -lpthread)
# oneDNN (libdnnl-dev, OpenMP build): the bf16 compute backend (engine/compute_dnnl.c)
DNNL_LIBS   := -ldnnl -lgomp
LIBS    := $(CJSON_LIBS) -lsqlite3 $(BLAS_LIBS) $(DNNL_LIBS) -lm -lpthread

ENGINE_SRC := $(wildcard engine/*.c)
EVAL_SRC   := $(wildcard eval/*.c eval/*/*.c)
CLI_SRC    := $(wildcard cli/*.c)
TEST_SRC   := $(wildcard tests/test_*.c)
SLOW_SRC   := $(wildcard tests/slow_*.c)
TESTLIB_SRC := $(wildcard tests/support/*.c)

ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/%.o)
EVAL_OBJ   := $(EVAL_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ    := $(CLI_SRC:%.c=$(BUILD)/%.o)
TESTLIB_OBJ := $(TESTLIB_SRC:%.c=$(BUILD)/%.o)
TEST_BIN   := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
SLOW_BIN   := $(SLOW_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all deps run test check check-slow bench debug test-asan clean fuzz
all: dashkit

deps:
	@bash scripts/install-deps.sh

$(BUILD)/engine/%.o: engine/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ENGINE_INC) $(BLAS_CFLAGS) -c $< -o $@
$(BUILD)/eval/%.o: eval/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(EVAL_INC) $(CJSON_CFLAGS) -c $< -o $@
$(BUILD)/cli/%.o: cli/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CLI_INC) $(CJSON_CFLAGS) -c $< -o $@
$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CLI_INC) $(CJSON_CFLAGS) $(CHECK_CFLAGS) -Itests -c $< -o $@

# Archives and the binary are built beside their target and renamed into place, so a concurrent
# build or a running ./dashkit never sees a half-written file.
$(BUILD)/libdkengine.a: $(ENGINE_OBJ)
	@rm -f $@.tmp.$$$$ && ar rcs $@.tmp.$$$$ $^ && mv -f $@.tmp.$$$$ $@
$(BUILD)/libdkeval.a: $(EVAL_OBJ)
	@rm -f $@.tmp.$$$$ && ar rcs $@.tmp.$$$$ $^ && mv -f $@.tmp.$$$$ $@

$(BUILD)/dashkit: $(CLI_OBJ) $(BUILD)/libdkeval.a $(BUILD)/libdkengine.a
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libdkeval.a $(BUILD)/libdkengine.a $(LIBS) $(LDFLAGS)
dashkit: $(BUILD)/dashkit
	@cp $< $@.tmp.$$$$ && mv -f $@.tmp.$$$$ $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TESTLIB_OBJ) $(BUILD)/libdkeval.a $(BUILD)/libdkengine.a
	$(CC) $(CFLAGS) -o $@ $< $(TESTLIB_OBJ) $(BUILD)/libdkeval.a $(BUILD)/libdkengine.a $(CHECK_LIBS) $(LIBS) $(LDFLAGS)

# ---- fuzz targets (fuzz/fuzz.h): compiled normally into test_fuzz_regress (replays
# tests/data/fuzz/), and with clang libFuzzer + ASan + UBSan into build-fuzz/fuzz_NAME (make fuzz).
FUZZ_TARGETS := gguf model tok_llama2c tok_spm tok_bpe config longbench score memory
FUZZ_SECONDS ?= 60
FUZZ_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(filter-out fuzz/libfuzzer_main.c,$(wildcard fuzz/*.c))) $(BUILD)/cli/cmd_score.o $(BUILD)/cli/cli_util.o
$(BUILD)/fuzz/%.o: fuzz/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CLI_INC) $(CJSON_CFLAGS) -Ifuzz -c $< -o $@
$(BUILD)/tests/test_fuzz_regress.o: CFLAGS += -Ifuzz
$(BUILD)/tests/test_fuzz_regress: $(BUILD)/tests/test_fuzz_regress.o $(FUZZ_OBJ) $(TESTLIB_OBJ) $(BUILD)/libdkeval.a $(BUILD)/libdkengine.a
	$(CC) $(CFLAGS) -o $@ $< $(FUZZ_OBJ) $(TESTLIB_OBJ) $(BUILD)/libdkeval.a $(BUILD)/libdkengine.a $(CHECK_LIBS) $(LIBS) $(LDFLAGS)
$(BUILD)/fuzz/main_%.o: fuzz/libfuzzer_main.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ENGINE_INC) -Ifuzz -DDK_FUZZ_TARGET=dk_fuzz_$* -c $< -o $@
$(BUILD)/fuzz_%: $(BUILD)/fuzz/main_%.o $(FUZZ_OBJ) $(BUILD)/libdkeval.a $(BUILD)/libdkengine.a
	$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJ) $(BUILD)/libdkeval.a $(BUILD)/libdkengine.a $(LIBS) $(LDFLAGS)

# Main job on the bundled defaults.
run: deps
	@$(MAKE) --no-print-directory all
	bash scripts/run-main.sh

test: deps
	@$(MAKE) --no-print-directory all $(TEST_BIN)
	@bash tests/check_layers.sh --self-test && bash tests/check_layers.sh
	@bash scripts/check_shape.sh
	@bash tests/run_tests.sh $(TEST_BIN)
check: test

check-slow: deps
	@bash scripts/install-deps.sh --slurm
	@$(MAKE) --no-print-directory all $(SLOW_BIN)
	@bash tests/run_tests.sh $(SLOW_BIN)
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=10
	@bash tests/slow_slurm.sh

bench: deps
	@$(MAKE) --no-print-directory all
	bash scripts/bench.sh

ASAN := BUILD=build-asan OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined" LDFLAGS="-fsanitize=address,undefined"
debug:
	@$(MAKE) --no-print-directory $(ASAN) build-asan/dashkit
	cp build-asan/dashkit dashkit-asan

test-asan: deps
	@$(MAKE) --no-print-directory $(ASAN) build-asan/dashkit $(TEST_SRC:tests/%.c=build-asan/tests/%)
	@DASHKIT=build-asan/dashkit ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    bash tests/run_tests.sh $(TEST_SRC:tests/%.c=build-asan/tests/%)

# Each fuzz target for FUZZ_SECONDS (seeds: fuzz/seeds.sh; corpus kept in build-fuzz/corpus);
# fails on any crash, sanitizer report, leak or timeout (scripts/fuzz.sh). Needs clang: --fuzz.
FUZZ_BUILD := BUILD=build-fuzz CC=clang \
    OPT="-O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"
fuzz:
	@bash scripts/install-deps.sh --fuzz
	@$(MAKE) --no-print-directory $(FUZZ_BUILD) $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
	@bash scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf build build-asan build-fuzz dashkit dashkit-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# README frontier image (docs/frontier.png + its .dat/.gp) from the store `make run` wrote.
.PHONY: readme-figure
readme-figure:
	@$(MAKE) --no-print-directory all
	bash scripts/readme-figure.sh
