/* attention.c — blocked causal attention of one tile (see attention.h). */
#include "attention.h"
#include "attention_simd.h"
#include "ops.h"
#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

int64_t dk_attn_scratch_bytes(int m_cap, int hd) {
    int64_t m = m_cap, h = hd, kb = DK_ATTN_KBLK;
    return 4 * (m * kb + 3 * m + m * h) + 2 * (m * h + m * kb);
}

dk_status dk_attn_scratch_init(dk_attn_scratch *s, int m_cap, int hd, dk_err *e) {
    size_t m = (size_t)m_cap, h = (size_t)hd, kb = DK_ATTN_KBLK;
    memset(s, 0, sizeof *s);
    s->m_cap = m_cap;
    s->hd = hd;
    s->s = malloc(m * kb * 4);
    s->mx = malloc(3 * m * 4);
    s->t = malloc(m * h * 4);
    s->qb = malloc(m * h * 2);
    s->pb = malloc(m * kb * 2);
    if (!s->s || !s->mx || !s->t || !s->qb || !s->pb) {
        dk_attn_scratch_free(s);
        return dk_fail(e, DK_ERR_NOMEM, "out of memory for attention scratch (%d rows of %d)", m_cap, hd);
    }
    s->sum = s->mx + m;
    s->alpha = s->sum + m;
    return DK_OK;
}

void dk_attn_scratch_free(dk_attn_scratch *s) {
    DK_FREE_ALL(s->s, s->mx, s->t, s->qb, s->pb);
    dk_bf16_backend_free(s->bf);
    memset(s, 0, sizeof *s);
}

int64_t dk_attn_blocked_extra_flops(int m, int kvl, int hd) {
    return (int64_t)m * ((int64_t)(kvl - 1) / DK_ATTN_KBLK * (hd + 5) + hd);
}

void dk_attn_round_rows(uint16_t *dst, const float *src, int rows, int hd, int src_stride) {
    for (int r = 0; r < rows; r++)
        dk_round_bf16(dst + (size_t)r * hd, src + (size_t)r * src_stride, (size_t)hd, 1.0f);
}

/* The online softmax step of key block j0 (kn keys, rows of stride ld) for every row of the tile;
 * each row's factor for its earlier blocks in s->alpha. */
static void dk_attn_softmax_block(dk_attn_scratch *s, int nb, int g, int j0, int kn, int ld, int lim0,
                                  bool bf16) {
    float *alpha = s->alpha;
    for (int i = 0; i < nb; i++)
        for (int j = 0; j < g; j++) {
            int r = i * g + j;
            alpha[r] = dk_softmax_online(s->s + (size_t)r * ld, lim0 + i + 1 - j0, bf16 ? ld : kn, &s->mx[r],
                                         &s->sum[r], bf16 ? s->pb + (size_t)r * ld : NULL);
        }
}

static dk_status dk_attn_blocked_f32(dk_attn_scratch *s, const float *q, int nb, int g, int hd,
                                     const float *k, const float *v, int kvd, int kvl, int lim0, float scale,
                                     float *o) {
    int M = nb * g;
    for (int j0 = 0; j0 < kvl; j0 += DK_ATTN_KBLK) {
        int kn = kvl - j0 < DK_ATTN_KBLK ? kvl - j0 : DK_ATTN_KBLK;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, kn, hd, scale, q, hd, k + (size_t)j0 * kvd,
                    kvd, 0.0f, s->s, kn);
        dk_attn_softmax_block(s, nb, g, j0, kn, kn, lim0, false);
        const float *alpha = s->alpha;
        for (int r = 0; r < M; r++) {
            float *orow = o + (size_t)r * hd;
            if (j0 == 0) memset(orow, 0, (size_t)hd * 4);
            else if (alpha[r] != 1.0f)
                for (int x = 0; x < hd; x++) orow[x] *= alpha[r];
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, hd, kn, 1.0f, s->s, kn,
                    v + (size_t)j0 * kvd, kvd, 1.0f, o, hd);
    }
    return DK_OK;
}

static dk_status dk_attn_blocked_bf16(dk_attn_scratch *s, const float *q, int nb, int g, int hd, int kvl,
                                      int lim0, float scale, const uint16_t *kb16, const uint16_t *vb16,
                                      float *o, dk_err *e) {
    int M = nb * g, KB = DK_ATTN_KBLK;
    dk_status st;
    if (!s->bf && (st = dk_bf16_backend_init(&s->bf, e))) return st;
    dk_round_bf16(s->qb, q, (size_t)M * hd, scale);
    for (int j0 = 0; j0 < kvl; j0 += KB) {
        int kn = kvl - j0 < KB ? kvl - j0 : KB;
        const uint16_t *kb = kb16 + (size_t)j0 * hd, *vb = vb16 + (size_t)j0 * hd;
        /* S (M, KB) = Q (M, hd) · Kblkᵀ: B (hd, KB) is the block read by columns */
        if ((st = dk_bf16_gemm(s->bf, s->s, KB, s->qb, hd, kb, 1, hd, M, KB, hd, e))) return st;
        dk_attn_softmax_block(s, nb, g, j0, kn, KB, lim0, true);
        const float *alpha = s->alpha;
        /* T (M, hd) = P (M, KB) · Vblk (KB, hd) */
        if ((st = dk_bf16_gemm(s->bf, s->t, hd, s->pb, KB, vb, hd, 1, M, hd, KB, e))) return st;
        for (int r = 0; r < M; r++) {
            float *orow = o + (size_t)r * hd, a = alpha[r];
            const float *trow = s->t + (size_t)r * hd;
            if (j0 == 0) memcpy(orow, trow, (size_t)hd * 4);
            else if (a != 1.0f)
                for (int x = 0; x < hd; x++) orow[x] = orow[x] * a + trow[x];
            else
                for (int x = 0; x < hd; x++) orow[x] += trow[x];
        }
    }
    return DK_OK;
}

dk_status dk_attn_blocked(dk_attn_scratch *s, const float *q, int nb, int g, int hd, const float *k,
                          const float *v, int kvd, int kvl, int lim0, float scale, const uint16_t *kb16,
                          const uint16_t *vb16, float *o, dk_err *e) {
    int M = nb * g;
    if (nb < 1 || M > s->m_cap || hd != s->hd || lim0 < 0 || lim0 + nb > kvl)
        return dk_fail(e, DK_ERR_ARG,
                       "attention tile: %d rows x %d of head size %d, keys %d..%d of %d (scratch %d x %d)",
                       nb, g, hd, lim0, lim0 + nb, kvl, s->m_cap, s->hd);
    for (int r = 0; r < M; r++) {
        s->mx[r] = -INFINITY;
        s->sum[r] = 0.0f;
    }
    dk_status st = kb16 && vb16 ? dk_attn_blocked_bf16(s, q, nb, g, hd, kvl, lim0, scale, kb16, vb16, o, e)
                                : dk_attn_blocked_f32(s, q, nb, g, hd, k, v, kvd, kvl, lim0, scale, o);
    if (st) return st;
    for (int r = 0; r < M; r++) {
        float inv = 1.0f / s->sum[r], *orow = o + (size_t)r * hd;
        for (int x = 0; x < hd; x++) orow[x] *= inv;
    }
    return DK_OK;
}

/* ---- decode: one position, all keys visible ---- */

#if defined(__AVX2__) && defined(__FMA__)
/* lane j: the sum of a[j]'s eight lanes */
static inline __m256 dk_attn_fold8(const __m256 a[8]) {
    __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
    __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

/* scores of keys j0 .. j0 + 7 for the g rows (hd a multiple of 8) */
static void dk_attn_decode_scores8(const float *q, int g, int hd, const float *k, int kvd, int j0, int n,
                                   float scale, float *s) {
    const float *k0 = k + (size_t)j0 * kvd;
    for (int r = 0; r < g; r++) {
        const float *qr = q + (size_t)r * hd;
        __m256 a[8];
        for (int j = 0; j < 8; j++) a[j] = _mm256_setzero_ps();
        for (int x = 0; x < hd; x += 8) {
            __m256 qv = _mm256_loadu_ps(qr + x);
#define DK_ATTN_FMA(J) a[J] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + (size_t)(J)*kvd + x), a[J])
            DK_ATTN_FMA(0);
            DK_ATTN_FMA(1);
            DK_ATTN_FMA(2);
            DK_ATTN_FMA(3);
            DK_ATTN_FMA(4);
            DK_ATTN_FMA(5);
            DK_ATTN_FMA(6);
            DK_ATTN_FMA(7);
#undef DK_ATTN_FMA
        }
        _mm256_storeu_ps(s + (size_t)r * n + j0, _mm256_mul_ps(dk_attn_fold8(a), _mm256_set1_ps(scale)));
    }
}
#endif

/* keys per block of the output pass: their value rows stay in L1 while the g rows take them */
enum { DK_ATTN_DECODE_VBLK = 64 };

void dk_attn_decode_softmax(const float *q, int g, int hd, const float *k, int kvd, int j, int n, float scale,
                            float *s, float *o) {
    for (; j < n; j++)
        for (int r = 0; r < g; r++) {
            float a = 0.0f;
            for (int x = 0; x < hd; x++) a += q[(size_t)r * hd + x] * k[(size_t)j * kvd + x];
            s[(size_t)r * n + j] = a * scale;
        }
    for (int r = 0; r < g; r++) dk_softmax_masked(s + (size_t)r * n, n, n);
    memset(o, 0, (size_t)g * hd * sizeof *o);
}

/* -1: not yet asked; 0 or 1: whether dk_attn_decode takes the AVX-512 form */
static _Atomic int dk_attn_z = -1;

bool dk_attn_decode_set_simd(bool on) {
    float q[64] = {0}, k[64] = {0}, s[1], o[64];
    /* the CPU first: the probe runs the 16-lane code (no keys, so it only clears o) */
    bool has = __builtin_cpu_supports("avx512f") && dk_attn_decode_avx512(q, 1, 64, k, k, 64, 0, 1.0f, s, o);
    atomic_store(&dk_attn_z, on && has);
    return on && has;
}

void dk_attn_decode(const float *q, int g, int hd, const float *k, const float *v, int kvd, int n,
                    float scale, float *s, float *o) {
    if (atomic_load(&dk_attn_z) < 0) dk_attn_decode_set_simd(true);
    if (atomic_load(&dk_attn_z) == 1 && dk_attn_decode_avx512(q, g, hd, k, v, kvd, n, scale, s, o)) return;
    int j = 0;
#if defined(__AVX2__) && defined(__FMA__)
    if (hd % 8 == 0)
        for (; j + 8 <= n; j += 8) dk_attn_decode_scores8(q, g, hd, k, kvd, j, n, scale, s);
#endif
    dk_attn_decode_softmax(q, g, hd, k, kvd, j, n, scale, s, o);
    for (int j0 = 0; j0 < n; j0 += DK_ATTN_DECODE_VBLK) {
        int j1 = j0 + DK_ATTN_DECODE_VBLK < n ? j0 + DK_ATTN_DECODE_VBLK : n;
        for (int r = 0; r < g; r++) {
            const float *p = s + (size_t)r * n;
            float *orow = o + (size_t)r * hd;
            int x = 0;
#if defined(__AVX2__) && defined(__FMA__)
            for (; x + 32 <= hd; x += 32) {
                __m256 a0 = _mm256_loadu_ps(orow + x), a1 = _mm256_loadu_ps(orow + x + 8),
                       a2 = _mm256_loadu_ps(orow + x + 16), a3 = _mm256_loadu_ps(orow + x + 24);
                for (int jj = j0; jj < j1; jj++) {
                    const float *vr = v + (size_t)jj * kvd + x;
                    __m256 pv = _mm256_set1_ps(p[jj]);
                    a0 = _mm256_fmadd_ps(pv, _mm256_loadu_ps(vr), a0);
                    a1 = _mm256_fmadd_ps(pv, _mm256_loadu_ps(vr + 8), a1);
                    a2 = _mm256_fmadd_ps(pv, _mm256_loadu_ps(vr + 16), a2);
                    a3 = _mm256_fmadd_ps(pv, _mm256_loadu_ps(vr + 24), a3);
                }
                _mm256_storeu_ps(orow + x, a0);
                _mm256_storeu_ps(orow + x + 8, a1);
                _mm256_storeu_ps(orow + x + 16, a2);
                _mm256_storeu_ps(orow + x + 24, a3);
            }
#endif
            for (; x < hd; x++)
                for (int jj = j0; jj < j1; jj++) orow[x] += p[jj] * v[(size_t)jj * kvd + x];
        }
    }
}

bool dk_attn_decode_bf16_ok(int hd) {
    static _Atomic int has = -1; /* -1: not yet asked */
    if (atomic_load(&has) < 0) {
        float q[32] = {0}, s[1], o[32];
        uint16_t k[32] = {0};
        /* the CPU first: the probe runs the bf16 code (no keys, so it only clears o) */
        float ml[2];
        atomic_store(&has, __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                               __builtin_cpu_supports("avx512bf16") &&
                               dk_attn_decode_bf16_avx512(q, 1, 32, k, k, 0, 1.0f, s, o, ml));
    }
    return atomic_load(&has) == 1 && hd % 32 == 0;
}

int dk_attn_decode_parts(int n) {
    return n <= DK_ATTN_DECODE_PART ? 1 : (n + DK_ATTN_DECODE_PART - 1) / DK_ATTN_DECODE_PART;
}

bool dk_attn_decode_bf16_part(const float *q, int g, int hd, const uint16_t *k, const uint16_t *v, int n,
                              int c, float scale, float *s, float *part) {
    size_t j0 = (size_t)c * DK_ATTN_DECODE_PART;
    int nk = n - (int)j0 < DK_ATTN_DECODE_PART ? n - (int)j0 : DK_ATTN_DECODE_PART;
    return dk_attn_decode_bf16_ok(hd) && nk > 0 &&
           dk_attn_decode_bf16_avx512(q, g, hd, k + j0 * hd, v + j0 * hd, nk, scale, s, part,
                                      part + (size_t)g * hd);
}

void dk_attn_decode_merge(int g, int hd, int n_part, const float *part, float *o) {
    size_t pf = DK_ATTN_DECODE_PART_FLOATS(g, hd);
    for (int r = 0; r < g; r++) {
        float mx = -INFINITY, l = 0.0f, *orow = o + (size_t)r * hd;
        for (int c = 0; c < n_part; c++) mx = fmaxf(mx, part[c * pf + (size_t)g * hd + 2 * r]);
        memset(orow, 0, (size_t)hd * sizeof *orow);
        for (int c = 0; c < n_part; c++) { /* in part order: the same bits on any thread count */
            const float *pc = part + c * pf, *ml = pc + (size_t)g * hd + 2 * r;
            float w = expf(ml[0] - mx);
            l += w * ml[1];
            for (int x = 0; x < hd; x++) orow[x] += w * pc[(size_t)r * hd + x];
        }
        float inv = 1.0f / l;
        for (int x = 0; x < hd; x++) orow[x] *= inv;
    }
}

bool dk_attn_decode_bf16(const float *q, int g, int hd, const uint16_t *k, const uint16_t *v, int n,
                         float scale, float *s, float *part, float *o) {
    int np = dk_attn_decode_parts(n);
    for (int c = 0; c < np; c++)
        if (!dk_attn_decode_bf16_part(q, g, hd, k, v, n, c, scale, s,
                                      part + c * DK_ATTN_DECODE_PART_FLOATS(g, hd)))
            return false;
    dk_attn_decode_merge(g, hd, np, part, o);
    return true;
}
