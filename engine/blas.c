/* blas.c — OpenBLAS core detection fix (see blas.h). */
#include "blas.h"
#include <cblas.h>
#include <cpuid.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Declared by OpenBLAS (openblas_config.h on some versions only). */
char *openblas_get_corename(void);
int openblas_get_num_threads(void);

static const char *dk_blas_note_str = "not initialised";

/* ---- CPU features ---- */

static int dk_cpu_xgetbv_ok(unsigned mask) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & (1u << 27))) return 0; /* OSXSAVE */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & mask) == mask;
}

/* "SkylakeX" for AVX-512F+BW+VL with OS support, "Haswell" for AVX2+FMA, NULL otherwise. */
static const char *dk_cpu_best_core(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return NULL;
    int fma = (c >> 12) & 1;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return NULL;
    int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1, avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
    if (avx512f && avx512bw && avx512vl && dk_cpu_xgetbv_ok(0xE6)) return "SkylakeX";
    if (avx2 && fma && dk_cpu_xgetbv_ok(0x06)) return "Haswell";
    return NULL;
}

/* Cores OpenBLAS falls back to when it does not know the CPU: no AVX2 kernels. */
static int dk_core_is_generic(const char *name) {
    static const char *const old[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem",
                                      "Atom", "Katmai", "Coppermine", "Northwood", "Banias",
                                      "Generic", "Unknown", "Sandybridge", "Athlon", "Opteron", NULL};
    if (!name || !*name) return 1;
    for (int i = 0; old[i]; i++)
        if (!strcasecmp(name, old[i])) return 1;
    return 0;
}

/* ---- re-exec with the fixed core ---- */

static void dk_blas_reexec(void) {
    FILE *f = fopen("/proc/self/cmdline", "rb");
    if (!f) return;
    size_t cap = 4096, len = 0, r;
    char *buf = malloc(cap);
    while (buf && (r = fread(buf + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) { char *nb = realloc(buf, cap * 2); if (!nb) { free(buf); buf = NULL; break; } buf = nb; cap *= 2; }
    }
    fclose(f);
    if (!buf || len == 0) { free(buf); return; }
    int argc = 0;
    for (size_t i = 0; i < len; i++) if (buf[i] == 0) argc++;
    if (buf[len - 1] != 0) argc++;
    char **argv = calloc((size_t)argc + 1, sizeof *argv);
    if (!argv) { free(buf); return; }
    int k = 0;
    for (size_t i = 0; i < len && k < argc; ) {
        argv[k++] = buf + i;
        while (i < len && buf[i]) i++;
        i++;
    }
    if (buf[len - 1] != 0) { char *nb = realloc(buf, len + 1); if (nb) { nb[len] = 0; } }
    fflush(NULL);
    execv("/proc/self/exe", argv);
    free(argv); /* exec failed: carry on with the slow core */
    free(buf);
}

/* ---- public ---- */

void dk_blas_init(void) {
    const char *user = getenv("OPENBLAS_CORETYPE");
    const char *marker = getenv("DK_BLAS_REEXEC");
    const char *core = openblas_get_corename();
    if (user && *user) {
        dk_blas_note_str = (marker && *marker) ? "auto-set OPENBLAS_CORETYPE" : "OPENBLAS_CORETYPE set by user";
        return;
    }
    if (marker && *marker) { /* we already re-executed but the variable vanished: do not loop */
        dk_blas_note_str = "re-exec did not take effect";
        return;
    }
    const char *best = dk_cpu_best_core();
    if (best && dk_core_is_generic(core)) {
        setenv("OPENBLAS_CORETYPE", best, 1);
        setenv("DK_BLAS_REEXEC", "1", 1);
        dk_blas_reexec();
        dk_blas_note_str = "re-exec failed; running the detected core";
        unsetenv("OPENBLAS_CORETYPE");
        return;
    }
    dk_blas_note_str = "detected by OpenBLAS";
}

const char *dk_blas_core(void) {
    const char *c = openblas_get_corename();
    return c ? c : "unknown";
}

int dk_blas_threads(void) { return openblas_get_num_threads(); }

const char *dk_blas_note(void) { return dk_blas_note_str; }

const char *dk_blas_best_core(void) { return dk_cpu_best_core(); }

/* 3: AVX-512 kernels, 2: AVX2 kernels, 1: anything else OpenBLAS knows. */
static int dk_core_rank(const char *name) {
    static const char *const avx512[] = {"SkylakeX", "CooperLake", "SapphireRapids", NULL};
    static const char *const avx2[] = {"Haswell", "Skylake", "Zen", NULL};
    for (int i = 0; avx512[i]; i++) if (!strcasecmp(name, avx512[i])) return 3;
    for (int i = 0; avx2[i]; i++) if (!strcasecmp(name, avx2[i])) return 2;
    return 1;
}

int dk_blas_user_core_slower(const char **user, const char **best) {
    const char *u = getenv("OPENBLAS_CORETYPE"), *b = dk_cpu_best_core();
    if (!u || !*u || !b || dk_core_rank(u) >= dk_core_rank(b)) return 0;
    if (user) *user = u;
    if (best) *best = b;
    return 1;
}
