/* ops.c — the row and elementwise kernels of the forward pass (ops.h). */
#include "ops.h"
#include "quant.h"
#include <math.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

typedef struct {
    float *out;
    const float *x, *w;
    int rows, d, n_tasks;
    float eps;
} dk_rmsnorm_job;

static void dk_rmsnorm_task(void *arg, int t, int tid) {
    (void)tid;
    const dk_rmsnorm_job *j = arg;
    int d = j->d;
    for (size_t r = dk_task_lo((size_t)j->rows, t, j->n_tasks);
         r < dk_task_lo((size_t)j->rows, t + 1, j->n_tasks); r++) {
        const float *xr = j->x + r * d, *w = j->w;
        float *o = j->out + r * d;
        float ss = 0.0f;
        for (int i = 0; i < d; i++) ss += xr[i] * xr[i];
        ss = 1.0f / sqrtf(ss / (float)d + j->eps);
        for (int i = 0; i < d; i++) o[i] = w[i] * (ss * xr[i]);
    }
}

void dk_rmsnorm(dk_pool *p, float *out, const float *x, const float *w, int rows, int d, float eps) {
    dk_rmsnorm_job j = {out, x, w, rows, d, dk_pool_n_tasks(p, (size_t)rows, 4), eps};
    dk_pool_run(p, j.n_tasks, dk_rmsnorm_task, &j);
}

#if defined(__AVX2__) && defined(__FMA__)
/* exp(x) for 8 lanes: x = n·ln2 + r, |r| <= ln2/2, degree-6 polynomial (Cephes expf), 2^n via the
 * exponent bits. Relative error ~2 ulp; inputs below -87.3 give ~0, above 88.3 saturate. */
static inline __m256 dk_exp256(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}
#endif

#if defined(__AVX2__)
/* 8 lanes to bf16, round to nearest even (finite values: dk_f32_to_bf16's rounding) */
static inline __m128i dk_bf16x8(__m256 v) {
    __m256i x = _mm256_castps_si256(v);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7fff)), lsb), 16);
    return _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
}
#endif

void dk_round_bf16(uint16_t *dst, const float *src, size_t n, float scale) {
    size_t i = 0;
#if defined(__AVX2__)
    const __m256 vs = _mm256_set1_ps(scale);
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), dk_bf16x8(_mm256_mul_ps(_mm256_loadu_ps(src + i), vs)));
#endif
    for (; i < n; i++) dst[i] = dk_f32_to_bf16(src[i] * scale);
}

/* exp(x[i] - mx) into x[i], or into pb[i] in bf16 when pb is given; returns the f32 sum. */
static float dk_exp_sum(float *x, int n, float mx, uint16_t *pb) {
    int i = 0;
    float sum = 0.0f;
#if defined(__AVX2__) && defined(__FMA__)
    __m256 vs = _mm256_setzero_ps(), vm = _mm256_set1_ps(mx);
    for (; i + 8 <= n; i += 8) {
        __m256 v = dk_exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        if (pb) _mm_storeu_si128((__m128i *)(pb + i), dk_bf16x8(v));
        else _mm256_storeu_ps(x + i, v);
        vs = _mm256_add_ps(vs, v);
    }
    float t[8];
    _mm256_storeu_ps(t, vs);
    for (int j = 0; j < 8; j++) sum += t[j];
#endif
    for (; i < n; i++) {
        float v = expf(x[i] - mx);
        if (pb) pb[i] = dk_f32_to_bf16(v);
        else x[i] = v;
        sum += v;
    }
    return sum;
}

/* max of x[0..n), n >= 1 (order-independent: the vector and scalar paths give the same value) */
static float dk_row_max(const float *x, int n) {
    float mx = x[0];
    int i = 0;
#if defined(__AVX2__) && defined(__FMA__)
    if (n >= 8) {
        __m256 vm = _mm256_loadu_ps(x);
        for (i = 8; i + 8 <= n; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + i));
        float t[8];
        _mm256_storeu_ps(t, vm);
        for (int j = 0; j < 8; j++) mx = t[j] > mx ? t[j] : mx;
    }
#endif
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    return mx;
}

/* softmax over x[0..lim), zeros in x[lim..len) (masked, causal). The max and the scaling are
 * order-independent, so the vector and scalar paths give the same bits. */
void dk_softmax_masked(float *x, int lim, int len) {
    float mx = dk_row_max(x, lim);
    float inv = 1.0f / dk_exp_sum(x, lim, mx, NULL);
    int i = 0;
#if defined(__AVX2__) && defined(__FMA__)
    __m256 vi = _mm256_set1_ps(inv);
    for (; i + 8 <= lim; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vi));
#endif
    for (; i < lim; i++) x[i] *= inv;
    if (len > lim) memset(x + lim, 0, (size_t)(len - lim) * sizeof *x);
}

float dk_softmax_online(float *x, int lim, int len, float *m, float *l, uint16_t *pb) {
    if (lim > len) lim = len;
    if (lim < 0) lim = 0;
    float alpha = 1.0f;
    if (lim > 0) {
        float mx = dk_row_max(x, lim);
        if (*m > mx) mx = *m;
        alpha = *m == -INFINITY ? 0.0f : expf(*m - mx);
        *l = *l * alpha + dk_exp_sum(x, lim, mx, pb);
        *m = mx;
    }
    if (pb) memset(pb + lim, 0, (size_t)(len - lim) * sizeof *pb); /* bf16 0 is all zero bits */
    else memset(x + lim, 0, (size_t)(len - lim) * sizeof *x);
    return alpha;
}

/* g = silu(g) * u over elements [i, n): the vector path covers whole groups of 8 from i, so a
 * split at multiples of 8 computes every element as the unsplit loop does. */
static void dk_silu_mul_range(float *g, const float *u, size_t i, size_t n) {
#if defined(__AVX2__) && defined(__FMA__)
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(g + i);
        __m256 s = _mm256_div_ps(v, _mm256_add_ps(one, dk_exp256(_mm256_sub_ps(zero, v))));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
#endif
    for (; i < n; i++) g[i] = g[i] * (1.0f / (1.0f + expf(-g[i]))) * u[i];
}

typedef struct {
    float *a;
    const float *b, *c;
    size_t n;
    int n_tasks;
} dk_elem_job;

static void dk_silu_mul_task(void *arg, int t, int tid) {
    (void)tid;
    const dk_elem_job *j = arg;
    size_t groups = j->n / 8, lo = 8 * dk_task_lo(groups, t, j->n_tasks);
    size_t hi = t + 1 == j->n_tasks ? j->n : 8 * dk_task_lo(groups, t + 1, j->n_tasks);
    dk_silu_mul_range(j->a, j->b, lo, hi);
}

void dk_silu_mul(dk_pool *p, float *g, const float *u, size_t n) {
    dk_elem_job j = {g, u, NULL, n, dk_pool_n_tasks(p, n / 8, 2048)};
    dk_pool_run(p, j.n_tasks, dk_silu_mul_task, &j);
}

/* a = b + c elementwise */
static void dk_add_task(void *arg, int t, int tid) {
    (void)tid;
    const dk_elem_job *j = arg;
    for (size_t i = dk_task_lo(j->n, t, j->n_tasks); i < dk_task_lo(j->n, t + 1, j->n_tasks); i++)
        j->a[i] = j->b[i] + j->c[i];
}

void dk_add(dk_pool *p, float *a, const float *b, const float *x, size_t n) {
    dk_elem_job j = {a, b, x, n, dk_pool_n_tasks(p, n, 16384)};
    dk_pool_run(p, j.n_tasks, dk_add_task, &j);
}

/* Copies rows: dst[dst_idx ? dst_idx[i] : i] = src[src_idx ? src_idx[i] : i], rows of d floats. */
typedef struct {
    float *dst;
    const float *src;
    const int32_t *dst_idx, *src_idx;
    int rows, d, n_tasks;
} dk_copy_job;

static void dk_copy_rows_task(void *arg, int t, int tid) {
    (void)tid;
    const dk_copy_job *j = arg;
    size_t d = (size_t)j->d;
    for (size_t i = dk_task_lo((size_t)j->rows, t, j->n_tasks);
         i < dk_task_lo((size_t)j->rows, t + 1, j->n_tasks); i++) {
        size_t di = j->dst_idx ? (size_t)j->dst_idx[i] : i, si = j->src_idx ? (size_t)j->src_idx[i] : i;
        memcpy(j->dst + di * d, j->src + si * d, d * 4);
    }
}

void dk_copy_rows(dk_pool *p, float *dst, const int32_t *dst_idx, const float *src, const int32_t *src_idx,
                  int rows, int d) {
    dk_copy_job j = {dst, src, dst_idx, src_idx, rows, d, dk_pool_n_tasks(p, (size_t)rows, 16)};
    dk_pool_run(p, j.n_tasks, dk_copy_rows_task, &j);
}
