/* blas.h — OpenBLAS set-up: core-type detection fix and reporting.
 *
 * Debian's OpenBLAS 0.3.21 misdetects recent Intel CPUs (e.g. Sapphire Rapids) as "Prescott" and
 * then runs sgemm ~10x slower. dk_blas_init() must run before any BLAS call: when
 * OPENBLAS_CORETYPE is unset, the detected core is generic/old and CPUID reports AVX-512
 * (-> SkylakeX) or AVX2+FMA (-> Haswell), it sets the variable and re-executes /proc/self/exe with
 * the original argv (OpenBLAS reads the variable only when the library loads). A user-set value is
 * always respected; DK_BLAS_REEXEC guards against loops. The same single re-exec also sets
 * OMP_WAIT_POLICY=PASSIVE when neither it nor GOMP_SPINCOUNT is set, and OPENBLAS_THREAD_TIMEOUT=4
 * when unset: oneDNN's OpenMP workers (compute.h) and OpenBLAS's own would otherwise spin after
 * each call on the cores the context's pool uses next. */
#ifndef DK_BLAS_H
#define DK_BLAS_H

void dk_blas_init(void);
const char *dk_blas_core(void); /* the core OpenBLAS runs with, e.g. "SkylakeX" */
int dk_blas_threads(void);      /* OpenBLAS worker threads */
/* log2 of the cycles OpenBLAS's idle workers spin before they sleep: OPENBLAS_THREAD_TIMEOUT as
 * OpenBLAS clamps it (4..30), 28 when unset (its default) */
int dk_blas_thread_timeout(void);
/* What dk_blas_init() did: "auto-set OPENBLAS_CORETYPE=SkylakeX", "user-set", "detected", ... */
const char *dk_blas_note(void);
/* The fastest OpenBLAS core this CPU supports ("SkylakeX", "Haswell"), or NULL when neither. */
const char *dk_blas_best_core(void);
/* True when OPENBLAS_CORETYPE is set (by the user) to a core slower than dk_blas_best_core(),
 * e.g. Haswell on an AVX-512 CPU; *user and *best then name them. The setting is respected. */
int dk_blas_user_core_slower(const char **user, const char **best);

#endif
