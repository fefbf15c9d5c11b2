/* pareto.h — the Pareto front of a speedup–accuracy scatter: both coordinates are maximised.
 *
 * Point i is dominated iff some j has x[j] >= x[i] and y[j] >= y[i] with at least one strict.
 * Identical points do not dominate each other (both stay on the front). A point with a NaN
 * coordinate is never on the front and dominates nothing. */
#ifndef DK_PARETO_H
#define DK_PARETO_H

#include <stddef.h>

/* on_front (n) receives 1 for non-dominated points, 0 otherwise; returns how many are on the
 * front. O(n log n). Allocation failure falls back to the O(n^2) definition. */
size_t dk_pareto_front(const double *x, const double *y, size_t n, int *on_front);

#endif
