/* fuzz.c — the target table and the helpers the fuzz targets share (see fuzz.h). */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

const dk_fuzz_target dk_fuzz_targets[] = {
    {"gguf", dk_fuzz_gguf},
    {"model", dk_fuzz_model},
    {"tok_llama2c", dk_fuzz_tok_llama2c},
    {"tok_spm", dk_fuzz_tok_spm},
    {"tok_bpe", dk_fuzz_tok_bpe},
    {"config", dk_fuzz_config},
    {"longbench", dk_fuzz_longbench},
    {"score", dk_fuzz_score},
    {"memory", dk_fuzz_memory},
    {NULL, NULL},
};

const char *dk_fuzz_file(const uint8_t *data, size_t size) {
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("dk_fuzz", 0);
        dk_fuzz_assert(fd >= 0, "fuzz", "memfd_create failed");
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    dk_fuzz_assert(ftruncate(fd, 0) == 0, "fuzz", "ftruncate of the memfd failed");
    size_t off = 0;
    while (off < size) {
        ssize_t w = pwrite(fd, data + off, size - off, (off_t)off);
        dk_fuzz_assert(w > 0, "fuzz", "write to the memfd failed");
        off += (size_t)w;
    }
    return path;
}

/* The sanitizers' report channel, which `make fuzz` keeps while libFuzzer closes stderr
 * (-close_fd_mask); absent (NULL) in the normal build. */
extern void __sanitizer_report_error_summary(const char *summary) __attribute__((weak));

static void fail(const char *target, const char *why, const char *detail) {
    char line[1400];
    snprintf(line, sizeof line, "dk_fuzz %s: %s%s%s", target, why, detail ? ": " : "", detail ? detail : "");
    fprintf(stderr, "%s\n", line);
    if (__sanitizer_report_error_summary) __sanitizer_report_error_summary(line);
    abort();
}

void dk_fuzz_assert(int cond, const char *target, const char *why) {
    if (!cond) fail(target, why, NULL);
}

void dk_fuzz_check_err(const char *target, dk_status st, const dk_err *e) {
    if (st == DK_OK) return;
    if (!e->msg[0]) fail(target, "failure with an empty error message", dk_status_name(st));
    if (strchr(e->msg, '\n') || strchr(e->msg, '\r')) fail(target, "error message is not one line", e->msg);
}

const char *dk_fuzz_data_path(char *buf, size_t n, const char *rel) {
    const char *root = getenv("DK_FUZZ_ROOT");
    if (root && *root) snprintf(buf, n, "%s/%s", root, rel);
    else snprintf(buf, n, "%s", rel);
    return buf;
}
