/* attention.c — blocked causal attention of one tile (see attention.h). */
#include "attention.h"
#include "ops.h"
#include "quant.h"
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

int64_t dk_attn_scratch_bytes(int m_cap, int hd) {
    int64_t m = m_cap, h = hd, kb = DK_ATTN_KBLK;
    return 4 * (m * kb + 3 * m + m * h) + 2 * (m * h + 2 * kb * h + m * kb);
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
    s->kb = malloc(kb * h * 2);
    s->vb = malloc(kb * h * 2);
    s->pb = malloc(m * kb * 2);
    if (!s->s || !s->mx || !s->t || !s->qb || !s->kb || !s->vb || !s->pb) {
        dk_attn_scratch_free(s);
        return dk_fail(e, DK_ERR_NOMEM, "out of memory for attention scratch (%d rows of %d)", m_cap, hd);
    }
    s->sum = s->mx + m;
    s->alpha = s->sum + m;
    return DK_OK;
}

void dk_attn_scratch_free(dk_attn_scratch *s) {
    free(s->s);
    free(s->mx);
    free(s->t);
    free(s->qb);
    free(s->kb);
    free(s->vb);
    free(s->pb);
    dk_bf16_backend_free(s->bf);
    memset(s, 0, sizeof *s);
}

int64_t dk_attn_blocked_extra_flops(int m, int kvl, int hd) {
    return (int64_t)m * ((int64_t)(kvl - 1) / DK_ATTN_KBLK * (hd + 5) + hd);
}

/* dst[i] = bf16(src[i]·scale) for i < n, round to nearest even (finite inputs: scores,
 * probabilities and cache entries; dk_f32_to_bf16's rounding). */
static void dk_round_bf16(uint16_t *dst, const float *src, size_t n, float scale) {
    size_t i = 0;
#if defined(__AVX2__)
    const __m256 vs = _mm256_set1_ps(scale);
    const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff);
    for (; i + 8 <= n; i += 8) {
        __m256i x = _mm256_castps_si256(_mm256_mul_ps(_mm256_loadu_ps(src + i), vs));
        __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), one);
        __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(x, bias), lsb), 16);
        __m128i p = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
        _mm_storeu_si128((__m128i *)(dst + i), p);
    }
#endif
    for (; i < n; i++) dst[i] = dk_f32_to_bf16(src[i] * scale);
}

/* dst (KBLK, hd) bf16 = rows [0, kn) of src (row stride kvd), zero rows after. */
static void dk_round_block(uint16_t *dst, const float *src, int kn, int hd, int kvd) {
    for (int r = 0; r < kn; r++) dk_round_bf16(dst + (size_t)r * hd, src + (size_t)r * kvd, (size_t)hd, 1.0f);
    memset(dst + (size_t)kn * hd, 0, (size_t)(DK_ATTN_KBLK - kn) * hd * 2);
}

/* The online softmax step of key block j0 (kn keys, rows of stride ld) for every row of the tile;
 * each row's factor for its earlier blocks in s->alpha. */
static void dk_attn_softmax_block(dk_attn_scratch *s, int nb, int g, int j0, int kn, int ld, int lim0) {
    float *alpha = s->alpha;
    for (int i = 0; i < nb; i++)
        for (int j = 0; j < g; j++) {
            int r = i * g + j;
            alpha[r] = dk_softmax_online(s->s + (size_t)r * ld, lim0 + i + 1 - j0, kn, &s->mx[r], &s->sum[r]);
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
        dk_attn_softmax_block(s, nb, g, j0, kn, kn, lim0);
        const float *alpha = s->alpha;
        for (int r = 0; r < M; r++) {
            float *orow = o + (size_t)r * hd;
            if (j0 == 0)
                memset(orow, 0, (size_t)hd * 4);
            else if (alpha[r] != 1.0f)
                for (int x = 0; x < hd; x++) orow[x] *= alpha[r];
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, hd, kn, 1.0f, s->s, kn,
                    v + (size_t)j0 * kvd, kvd, 1.0f, o, hd);
    }
    return DK_OK;
}

static dk_status dk_attn_blocked_bf16(dk_attn_scratch *s, const float *q, int nb, int g, int hd,
                                      const float *k, const float *v, int kvd, int kvl, int lim0, float scale,
                                      float *o, dk_err *e) {
    int M = nb * g, KB = DK_ATTN_KBLK;
    dk_status st;
    if (!s->bf && (st = dk_bf16_backend_init(&s->bf, e))) return st;
    dk_round_bf16(s->qb, q, (size_t)M * hd, scale);
    for (int j0 = 0; j0 < kvl; j0 += KB) {
        int kn = kvl - j0 < KB ? kvl - j0 : KB;
        dk_round_block(s->kb, k + (size_t)j0 * kvd, kn, hd, kvd);
        dk_round_block(s->vb, v + (size_t)j0 * kvd, kn, hd, kvd);
        /* S (M, KB) = Q (M, hd) · Kblkᵀ: B (hd, KB) is the block read by columns */
        if ((st = dk_bf16_gemm(s->bf, s->s, KB, s->qb, hd, s->kb, 1, hd, M, KB, hd, e))) return st;
        dk_attn_softmax_block(s, nb, g, j0, kn, KB, lim0);
        const float *alpha = s->alpha;
        dk_round_bf16(s->pb, s->s, (size_t)M * KB, 1.0f);
        /* T (M, hd) = P (M, KB) · Vblk (KB, hd) */
        if ((st = dk_bf16_gemm(s->bf, s->t, hd, s->pb, KB, s->vb, hd, 1, M, hd, KB, e))) return st;
        for (int r = 0; r < M; r++) {
            float *orow = o + (size_t)r * hd, a = alpha[r];
            const float *trow = s->t + (size_t)r * hd;
            if (j0 == 0)
                memcpy(orow, trow, (size_t)hd * 4);
            else if (a != 1.0f)
                for (int x = 0; x < hd; x++) orow[x] = orow[x] * a + trow[x];
            else
                for (int x = 0; x < hd; x++) orow[x] += trow[x];
        }
    }
    return DK_OK;
}

dk_status dk_attn_blocked(dk_attn_scratch *s, const float *q, int nb, int g, int hd, const float *k,
                          const float *v, int kvd, int kvl, int lim0, float scale, bool bf16, float *o,
                          dk_err *e) {
    int M = nb * g;
    if (nb < 1 || M > s->m_cap || hd != s->hd || lim0 < 0 || lim0 + nb > kvl)
        return dk_fail(e, DK_ERR_ARG,
                       "attention tile: %d rows x %d of head size %d, keys %d..%d of %d (scratch %d x %d)",
                       nb, g, hd, lim0, lim0 + nb, kvl, s->m_cap, s->hd);
    for (int r = 0; r < M; r++) {
        s->mx[r] = -INFINITY;
        s->sum[r] = 0.0f;
    }
    dk_status st = bf16 ? dk_attn_blocked_bf16(s, q, nb, g, hd, k, v, kvd, kvl, lim0, scale, o, e)
                        : dk_attn_blocked_f32(s, q, nb, g, hd, k, v, kvd, kvl, lim0, scale, o);
    if (st) return st;
    for (int r = 0; r < M; r++) {
        float inv = 1.0f / s->sum[r], *orow = o + (size_t)r * hd;
        for (int x = 0; x < hd; x++) orow[x] *= inv;
    }
    return DK_OK;
}
