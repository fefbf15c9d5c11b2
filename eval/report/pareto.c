/* pareto.c — non-dominated points of a (maximise x, maximise y) scatter (definition in pareto.h). */
#include "pareto.h"

#include <math.h>
#include <stdlib.h>

/* ---- sort by x descending, then y descending ---- */

typedef struct {
    double x, y;
    size_t i;
} dk_pareto_pt;

static int dk_pareto_cmp(const void *pa, const void *pb) {
    const dk_pareto_pt *a = pa, *b = pb;
    if (a->x != b->x) return a->x > b->x ? -1 : 1;
    if (a->y != b->y) return a->y > b->y ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

static size_t dk_pareto_quadratic(const double *x, const double *y, size_t n, int *on_front) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int ok = !isnan(x[i]) && !isnan(y[i]);
        for (size_t j = 0; ok && j < n; j++) {
            if (j == i || isnan(x[j]) || isnan(y[j])) continue;
            if (x[j] >= x[i] && y[j] >= y[i] && (x[j] > x[i] || y[j] > y[i])) ok = 0;
        }
        on_front[i] = ok;
        k += (size_t)ok;
    }
    return k;
}

/* Sweep over groups of equal x, largest x first. best = max y over all points with a strictly
 * larger x. A point of the group is on the front iff its y is the group's maximum and exceeds
 * best (anything with larger x and y >= its y would dominate it). */
size_t dk_pareto_front(const double *x, const double *y, size_t n, int *on_front) {
    dk_pareto_pt *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) return dk_pareto_quadratic(x, y, n, on_front);
    size_t m = 0, k = 0;
    for (size_t i = 0; i < n; i++) {
        on_front[i] = 0;
        if (!isnan(x[i]) && !isnan(y[i])) p[m++] = (dk_pareto_pt){x[i], y[i], i};
    }
    qsort(p, m, sizeof *p, dk_pareto_cmp);
    double best = -INFINITY;
    for (size_t g = 0; g < m;) {
        size_t h = g;
        while (h < m && p[h].x == p[g].x) h++;
        double gmax = p[g].y; /* group sorted by y descending */
        for (size_t j = g; j < h; j++)
            if (p[j].y == gmax && p[j].y > best) {
                on_front[p[j].i] = 1;
                k++;
            }
        if (gmax > best) best = gmax;
        g = h;
    }
    free(p);
    return k;
}
