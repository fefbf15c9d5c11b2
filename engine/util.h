/* util.h — the small helpers every layer uses: the monotonic clock and UTC text, a growable
 * string, a binary heap, argmax and qsort comparators, freeing a list of pointers, reading a
 * whole stream. Bottom of the engine (depends on nothing but libc), so eval/ and cli/ use it too. */
#ifndef DK_UTIL_H
#define DK_UTIL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Seconds on the monotonic clock (CLOCK_MONOTONIC): for measuring durations, not dates. */
double dk_time_now_s(void);
/* UNIX time t_s (seconds, wall clock) as UTC text in strftime format fmt; nan_text when t_s is NaN. */
void dk_time_fmt_utc(double t_s, const char *fmt, const char *nan_text, char *out, size_t n);

/* qsort comparators: floats / doubles ascending (NaNs compare equal to everything). */
int dk_cmp_f32(const void *a, const void *b);
int dk_cmp_f64(const void *a, const void *b);

/* Index of the largest of x[0..n) (n >= 1), the first one on ties. */
int dk_argmax(const float *x, int n);

/* free() each of ptrs[0..n) (NULL ones included, as free does). */
void dk_free_all_n(void *const *ptrs, size_t n);
/* DK_FREE_ALL(a->x, a->y, ...): free() each argument, in order; the arguments are read before
 * the first free, so the struct holding them may be the last one. A const-qualified pointer
 * needs an explicit (void *) cast. */
#define DK_FREE_ALL(...) \
    dk_free_all_n((void *[]){__VA_ARGS__}, sizeof((void *[]){__VA_ARGS__}) / sizeof(void *))

/* The rest of stream f, malloc'd and NUL-terminated, its size in *len; NULL when out of memory or
 * when it reaches max bytes (0: no limit). *bad: the stream had a read error. */
char *dk_read_stream(FILE *f, size_t max, size_t *len, bool *bad);

/* ---- growable string ----
 * s is NUL-terminated after every append (NULL before the first). After a failed allocation oom
 * is set and later appends do nothing, so a caller may append many pieces and check once. Zero
 * initialised ({0}) is empty; dk_strbuf_free releases s. */
typedef struct {
    char *s;
    size_t n, cap; /* bytes in s (without the NUL), bytes allocated */
    bool oom;
} dk_strbuf;

bool dk_strbuf_add(dk_strbuf *b, const char *s, size_t n); /* false when out of memory */
bool dk_strbuf_adds(dk_strbuf *b, const char *s);
bool dk_strbuf_addf(dk_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dk_strbuf_free(dk_strbuf *b);

/* ---- binary heap ----
 * Elements of `size` bytes (at most 64) in an array; before(a, b) is true when a leaves the heap
 * before b (a strict order: higher score first, lower rank first, ...). Zero the struct and set
 * size and before to start; dk_heap_free releases the array. */
typedef bool (*dk_heap_before_fn)(const void *a, const void *b);
typedef struct {
    unsigned char *v;
    size_t n, cap, size;
    dk_heap_before_fn before;
} dk_heap;

bool dk_heap_push(dk_heap *h, const void *x); /* false when out of memory */
void dk_heap_pop(dk_heap *h, void *out);      /* the first element into out; h->n >= 1 */
void dk_heap_free(dk_heap *h);

#endif
