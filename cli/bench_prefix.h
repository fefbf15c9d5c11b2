/* bench_prefix.h — `dashkit bench --prefix-sweep` (see bench_prefix.c). */
#ifndef DK_BENCH_PREFIX_H
#define DK_BENCH_PREFIX_H

/* argv as given to `dashkit bench` (argv[0] = "bench"); returns the exit code. */
int dk_bench_prefix_sweep(int argc, char **argv);

/* One stderr line `blas_note: ...` when OPENBLAS_CORETYPE forces a core slower than this CPU's
 * best (the setting is respected); nothing otherwise. */
void dk_bench_blas_note(void);

#endif
