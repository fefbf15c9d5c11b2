/* bench_prefix.h — `dashkit bench --prefix-sweep` (see bench_prefix.c). */
#ifndef DK_BENCH_PREFIX_H
#define DK_BENCH_PREFIX_H

#include <stdbool.h>

/* argv as given to `dashkit bench` (argv[0] = "bench"); returns the exit code. */
int dk_bench_prefix_sweep(int argc, char **argv);

/* One stderr line `blas_note: ...` when OPENBLAS_CORETYPE forces a core slower than this CPU's
 * best (the setting is respected); nothing otherwise. */
void dk_bench_blas_note(void);

/* The value v of a bench count option opt (--tokens, --reps, ...): an integer in [min, 2^22], min 0
 * or 1; false after printing "dashkit bench: OPT 'V' is not a positive (non-negative) integer". */
bool dk_bench_parse_count_value(const char *opt, const char *v, long long min, long long *x);
/* x into the count both bench forms take: --tokens, --reps (at most 15), --threads; any other opt
 * is --seed. */
void dk_bench_set_count(const char *opt, long long x, long *tokens, long *reps, long *threads,
                        unsigned long long *seed);

#endif
