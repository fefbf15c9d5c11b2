/* blas.c — OpenBLAS core detection fix (see blas.h). */
#include "blas.h"
#include "util.h"
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
    static const char *const old[] = {
        "Prescott",  "Core2",  "Penryn",  "Dunnington", "Nehalem",     "Atom",   "Katmai",  "Coppermine",
        "Northwood", "Banias", "Generic", "Unknown",    "Sandybridge", "Athlon", "Opteron", NULL};
    if (!name || !*name) return 1;
    for (int i = 0; old[i]; i++)
        if (!strcasecmp(name, old[i])) return 1;
    return 0;
}

/* ---- re-exec with the fixed core ---- */

static void dk_blas_reexec(void) {
    FILE *f = fopen("/proc/self/cmdline", "rb");
    if (!f) return;
    size_t len;
    bool bad;
    char *buf = dk_read_stream(f, 0, &len, &bad);
    fclose(f);
    if (!buf || len == 0) {
        free(buf);
        return;
    }
    int argc = 0;
    for (size_t i = 0; i < len; i++)
        if (buf[i] == 0) argc++;
    if (buf[len - 1] != 0) argc++;
    char **argv = calloc((size_t)argc + 1, sizeof *argv);
    if (!argv) {
        free(buf);
        return;
    }
    int k = 0;
    for (size_t i = 0; i < len && k < argc;) {
        argv[k++] = buf + i;
        while (i < len && buf[i]) i++;
        i++;
    }
    if (buf[len - 1] != 0) {
        char *nb = realloc(buf, len + 1);
        if (nb) {
            nb[len] = 0;
        }
    }
    fflush(NULL);
    execv("/proc/self/exe", argv);
    free(argv); /* exec failed: carry on with the slow core */
    free(buf);
}

/* ---- public ---- */

/* Both libraries' idle workers spin after every call by default: oneDNN's libgomp workers after a
 * primitive, OpenBLAS's after an sgemm (2^28 cycles, ~0.1 s, calling sched_yield). On a machine
 * whose cores the context's pool needs right after that (attention tiles, norms, the decode's row
 * dots), the spinning steals them (measured: a fifth of a bf16 prefill's CPU time in libgomp; an
 * OpenBLAS worker yielding through a decode that followed a prefill). Both libraries read their
 * setting only when they load, so it is set with the core fix, before the one re-exec: libgomp
 * OMP_WAIT_POLICY=PASSIVE, OpenBLAS OPENBLAS_THREAD_TIMEOUT=4 (its least: 2^4 cycles, i.e. sleep
 * right after the work; a prefill's sgemm calls take milliseconds, a wake-up microseconds). A
 * user's value (or GOMP_SPINCOUNT) is respected. */
static int dk_omp_wait_unset(void) { return !getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT"); }
static int dk_blas_wait_unset(void) { return !getenv("OPENBLAS_THREAD_TIMEOUT"); }

void dk_blas_init(void) {
    const char *user = getenv("OPENBLAS_CORETYPE");
    const char *marker = getenv("DK_BLAS_REEXEC");
    const char *core = openblas_get_corename();
    if (marker && *marker) { /* we already re-executed; the marker says what was set */
        int core_set = strstr(marker, "core") != NULL;
        dk_blas_note_str = core_set
                               ? (user && *user ? "auto-set OPENBLAS_CORETYPE"
                                                : "re-exec did not take effect")
                               : (user && *user ? "OPENBLAS_CORETYPE set by user" : "detected by OpenBLAS");
        return;
    }
    const char *best = dk_cpu_best_core();
    int fix_core = !(user && *user) && best && dk_core_is_generic(core), fix_omp = dk_omp_wait_unset(),
        fix_blas = dk_blas_wait_unset();
    if (fix_core || fix_omp || fix_blas) {
        if (fix_core) setenv("OPENBLAS_CORETYPE", best, 1);
        if (fix_omp) setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
        if (fix_blas) setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1);
        setenv("DK_BLAS_REEXEC", fix_core ? "core" : "wait", 1);
        dk_blas_reexec();
        /* exec failed: carry on as detected */
        if (fix_core) unsetenv("OPENBLAS_CORETYPE");
        if (fix_omp) unsetenv("OMP_WAIT_POLICY");
        if (fix_blas) unsetenv("OPENBLAS_THREAD_TIMEOUT");
        unsetenv("DK_BLAS_REEXEC");
        dk_blas_note_str = fix_core ? "re-exec failed; running the detected core" : "detected by OpenBLAS";
        return;
    }
    dk_blas_note_str = user && *user ? "OPENBLAS_CORETYPE set by user" : "detected by OpenBLAS";
}

const char *dk_blas_core(void) {
    const char *c = openblas_get_corename();
    return c ? c : "unknown";
}

int dk_blas_threads(void) { return openblas_get_num_threads(); }

int dk_blas_thread_timeout(void) {
    const char *v = getenv("OPENBLAS_THREAD_TIMEOUT");
    long t = v && *v ? strtol(v, NULL, 10) : 0; /* OpenBLAS: atoi, and <= 0 keeps the default */
    if (t <= 0) return 28;
    return t < 4 ? 4 : t > 30 ? 30 : (int)t;
}

const char *dk_blas_note(void) { return dk_blas_note_str; }

const char *dk_blas_best_core(void) { return dk_cpu_best_core(); }

/* 3: AVX-512 kernels, 2: AVX2 kernels, 1: anything else OpenBLAS knows. */
static int dk_core_rank(const char *name) {
    static const char *const avx512[] = {"SkylakeX", "CooperLake", "SapphireRapids", NULL};
    static const char *const avx2[] = {"Haswell", "Skylake", "Zen", NULL};
    for (int i = 0; avx512[i]; i++)
        if (!strcasecmp(name, avx512[i])) return 3;
    for (int i = 0; avx2[i]; i++)
        if (!strcasecmp(name, avx2[i])) return 2;
    return 1;
}

int dk_blas_user_core_slower(const char **user, const char **best) {
    const char *u = getenv("OPENBLAS_CORETYPE"), *b = dk_cpu_best_core();
    if (!u || !*u || !b || dk_core_rank(u) >= dk_core_rank(b)) return 0;
    if (user) *user = u;
    if (best) *best = b;
    return 1;
}
