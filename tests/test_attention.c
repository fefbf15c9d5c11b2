/* test_attention.c — the blocked attention tile (engine/attention.h) against a double-precision
 * reference, its causal mask, and bf16 compute's use of it in the forward pass.
 *
 * Bound (ε = 2^-24, u = 2^-8 the unit roundoff of bf16, γ_n = nε/(1 - nε)). Let a = max over rows
 * and keys of scale·Σ_x |q_x k_x|. Scores: rounding q·scale and k to bf16 (relative u_q, u_k; 0
 * for f32 products) and the f32 sum of hd exact products give |ŝ - s| <= Δ = (u_q + u_k +
 * u_q·u_k)·a + γ_hd·(1 + u_q)(1 + u_k)·a. A softmax of scores moved by at most Δ moves each
 * probability by a factor in [e^-2Δ, e^2Δ], so Σ_j |p̂_j - p_j| <= e^2Δ - 1. Then the f32
 * evaluation: exp (relative <= 4 ulp = 8ε with the subtraction of the max), the sums of the
 * probabilities and of the products over kvl keys and the per-block rescalings (n_blk = kvl/256
 * + 1 factors, each one rounding on O and on l; the factor itself cancels in O/l) and the final
 * division: η_f = 8ε + 2·γ_(kvl + 2·n_blk + 1); rounding P and V to bf16 (u_p, u_v) each adds a
 * relative u. So
 *   |ô - o| <= ((e^2Δ - 1)(1 + η) + η)·max|v|,  η = u_p + u_v + u_p·u_v + η_f,
 * per output element. Checked with f32 products (u's 0), with bf16 products on inputs that are
 * bf16 already (u_q = u_k = u_v = 0: only P is rounded) and on any inputs; the key counts cross
 * the key-block edges (255, 256, 257, 600). A missing or doubled block, a wrong mask or a wrong
 * rescale is an error of the order of max|v| (the scores span several units: few keys dominate).
 * Causal: entries after a query row's limit never change that row's output bits. */
#include "support/dk_test.h"
#include "attention.h"
#include "blas.h"
#include <cblas.h>
#include "compute.h"
#include "forward.h"
#include "policy.h"
#include "prefill.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EPS (1.0 / 16777216.0)
#define U_BF16 (1.0 / 256.0)

static bool g_native;

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}
static float rng_unit(uint64_t *s) {
    return (float)((rng_next(s) >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}
static double gamma_n(double n) { return n * EPS / (1.0 - n * EPS); }

typedef struct {
    int nb, g, hd, kvd, kvl, lim0;
    float scale;
    float *q, *k, *v; /* q (nb*g, hd); k, v (kvl, kvd), the tile's head at column 0 */
} tile;

static void tile_make(tile *t, int nb, int g, int hd, int kvl, uint64_t seed, bool bf16_exact) {
    t->nb = nb;
    t->g = g;
    t->hd = hd;
    t->kvd = 2 * hd;
    t->kvl = kvl;
    t->lim0 = kvl - nb;
    t->scale = 1.0f / sqrtf((float)hd);
    size_t nq = (size_t)nb * g * hd, nk = (size_t)kvl * t->kvd;
    t->q = malloc(nq * 4);
    t->k = malloc(nk * 4);
    t->v = malloc(nk * 4);
    uint64_t s = seed;
    for (size_t i = 0; i < nq; i++) t->q[i] = 2.0f * rng_unit(&s);
    for (size_t i = 0; i < nk; i++) {
        t->k[i] = 2.0f * rng_unit(&s);
        t->v[i] = rng_unit(&s);
    }
    if (bf16_exact) {
        for (size_t i = 0; i < nq; i++) t->q[i] = dk_bf16_to_f32(dk_f32_to_bf16(t->q[i]));
        for (size_t i = 0; i < nk; i++) {
            t->k[i] = dk_bf16_to_f32(dk_f32_to_bf16(t->k[i]));
            t->v[i] = dk_bf16_to_f32(dk_f32_to_bf16(t->v[i]));
        }
    }
}

static void tile_free(tile *t) {
    free(t->q);
    free(t->k);
    free(t->v);
}

/* bf16: the head's keys and values rounded (dk_attn_round_rows), rows of 1..2 to a whole block */
static dk_status tile_run(const tile *t, bool bf16, float *o) {
    dk_attn_scratch sc;
    dk_err e = {{0}};
    uint16_t *kb = NULL, *vb = NULL;
    if (bf16) {
        size_t rows = (size_t)(t->kvl + DK_ATTN_KBLK - 1) / DK_ATTN_KBLK * DK_ATTN_KBLK;
        kb = malloc(rows * t->hd * 2);
        vb = malloc(rows * t->hd * 2);
        for (size_t i = 0; i < rows * t->hd; i++) { /* rows after kvl: any finite values */
            kb[i] = (uint16_t)(0x3f80 + i % 97);
            vb[i] = (uint16_t)(0xbf80 + i % 89);
        }
        dk_attn_round_rows(kb, t->k, t->kvl, t->hd, t->kvd);
        dk_attn_round_rows(vb, t->v, t->kvl, t->hd, t->kvd);
    }
    ck_assert(dk_attn_scratch_init(&sc, t->nb * t->g, t->hd, &e) == DK_OK);
    dk_status st = dk_attn_blocked(&sc, t->q, t->nb, t->g, t->hd, t->k, t->v, t->kvd, t->kvl, t->lim0,
                                   t->scale, kb, vb, o, &e);
    ck_assert_msg(st == DK_OK, "%s", e.msg);
    dk_attn_scratch_free(&sc);
    free(kb);
    free(vb);
    return st;
}

/* max error of o against a double reference over the bound above; u_in: rounding of q, k, v. */
static double tile_check(const tile *t, const float *o, double u_in, double u_p) {
    int M = t->nb * t->g, hd = t->hd;
    double *sc = malloc((size_t)t->kvl * sizeof *sc), a = 0, vmax = 0, worst = 0, err_max = 0;
    for (int j = 0; j < t->kvl; j++)
        for (int x = 0; x < hd; x++) vmax = fmax(vmax, fabs(t->v[(size_t)j * t->kvd + x]));
    for (int r = 0; r < M; r++)
        for (int j = 0; j <= t->lim0 + r / t->g; j++) {
            double s = 0;
            for (int x = 0; x < hd; x++)
                s += fabs((double)t->q[(size_t)r * hd + x] * t->k[(size_t)j * t->kvd + x]);
            a = fmax(a, s * t->scale);
        }
    double n_blk = t->kvl / DK_ATTN_KBLK + 1;
    double D = (2 * u_in + u_in * u_in) * a + gamma_n(hd) * (1 + u_in) * (1 + u_in) * a;
    double eta = u_p + u_in + u_p * u_in + 8 * EPS + 2 * gamma_n(t->kvl + 2 * n_blk + 1);
    double bound = ((exp(2 * D) - 1) * (1 + eta) + eta) * vmax;
    for (int r = 0; r < M; r++) {
        int lim = t->lim0 + r / t->g + 1;
        double mx = -INFINITY, l = 0;
        for (int j = 0; j < lim; j++) {
            double s = 0;
            for (int x = 0; x < hd; x++) s += (double)t->q[(size_t)r * hd + x] * t->k[(size_t)j * t->kvd + x];
            sc[j] = s * t->scale;
            mx = fmax(mx, sc[j]);
        }
        for (int j = 0; j < lim; j++) {
            sc[j] = exp(sc[j] - mx);
            l += sc[j];
        }
        for (int x = 0; x < hd; x++) {
            double ref = 0;
            for (int j = 0; j < lim; j++) ref += sc[j] * t->v[(size_t)j * t->kvd + x];
            ref /= l;
            double err = fabs(o[(size_t)r * hd + x] - ref);
            err_max = fmax(err_max, err);
            worst = fmax(worst, err / bound);
        }
    }
    free(sc);
    ck_assert_msg(worst <= 1.0, "nb %d kvl %d: error %.3g is %.3f of the bound %.3g", t->nb, t->kvl, err_max,
                  worst, bound);
    return worst;
}

static const int KVL[] = {1, 255, 256, 257, 600};
static const int NB[] = {1, 5, 36};

START_TEST(test_blocked_f32_bound) {
    for (size_t a = 0; a < sizeof KVL / sizeof *KVL; a++)
        for (size_t b = 0; b < sizeof NB / sizeof *NB; b++) {
            if (NB[b] > KVL[a]) continue;
            tile t;
            tile_make(&t, NB[b], 7, 64, KVL[a], 11 + a * 7 + b, false);
            float *o = malloc((size_t)t.nb * t.g * t.hd * 4);
            tile_run(&t, false, o);
            tile_check(&t, o, 0, 0);
            free(o);
            tile_free(&t);
        }
}
END_TEST

/* dk_attn_decode (one position seeing every key; bf16 and q8 compute's decode step) within the same
 * f32 bound (no bf16 rounding, no block rescaling), on the vector path (head size 64) and the plain
 * one (12), key counts around its 8-key and 64-key steps. */
START_TEST(test_decode_f32_bound) {
    static const int n_keys[] = {1, 7, 8, 9, 64, 65, 600};
    static const int hds[] = {64, 12};
    for (size_t a = 0; a < sizeof n_keys / sizeof *n_keys; a++)
        for (size_t b = 0; b < 2; b++) {
            tile t;
            tile_make(&t, 1, 7, hds[b], n_keys[a], 5 + a * 3 + b, false);
            float *o = malloc((size_t)t.g * t.hd * 4), *sc = malloc((size_t)t.g * t.kvl * 4);
            for (int z = 0; z < 2; z++) { /* the AVX2 (or plain) form, then the AVX-512 one where it runs */
                if (dk_attn_decode_set_simd(z == 1) != (z == 1)) continue;
                dk_attn_decode(t.q, t.g, t.hd, t.k, t.v, t.kvd, t.kvl, t.scale, sc, o);
                tile_check(&t, o, 0, 0);
            }
            dk_attn_decode_set_simd(true);
            free(o);
            free(sc);
            tile_free(&t);
        }
}
END_TEST

/* dk_attn_decode_bf16 (the decode step on the bf16 copy of the cache) within the bound above with q,
 * k and v rounded to bf16 (u_in = u; P stays f32: u_p = 0), and within the f32 bound (u_in = 0) on
 * inputs that are bf16 already; rows g = 1, 7, 9 (score pairs and value groups of 8 cut short),
 * head sizes 32, 64, 96, key counts around its 8- and 64-key steps and its parts of 1024 keys (the
 * bound's per-block rescalings cover the merge's, one per part). */
START_TEST(test_decode_bf16_bound) {
    static const int n_keys[] = {1, 7, 8, 9, 64, 65, 600, 1024, 1025, 2500};
    static const int hds[] = {32, 64, 96}, gs[] = {1, 7, 9};
    if (!dk_attn_decode_bf16_ok(64)) {
        printf("SKIP decode attention on the bf16 cache: no AVX-512 BF16 on this CPU\n");
        return;
    }
    ck_assert(!dk_attn_decode_bf16_ok(48)); /* hd % 32 != 0: the f32 form */
    double worst[2] = {0, 0};
    for (size_t a = 0; a < sizeof n_keys / sizeof *n_keys; a++)
        for (size_t b = 0; b < 3; b++)
            for (size_t c = 0; c < 3; c++)
                for (int exact = 0; exact < 2; exact++) {
                    tile t;
                    tile_make(&t, 1, gs[c], hds[b], n_keys[a], 31 + a * 9 + b * 3 + c, exact);
                    size_t nk = (size_t)t.kvl * t.hd;
                    uint16_t *kb = malloc(nk * 2), *vb = malloc(nk * 2);
                    dk_attn_round_rows(kb, t.k, t.kvl, t.hd, t.kvd);
                    dk_attn_round_rows(vb, t.v, t.kvl, t.hd, t.kvd);
                    float *o = malloc((size_t)t.g * t.hd * 4),
                          *sc = malloc((size_t)t.g * DK_ATTN_DECODE_PART * 4),
                          *part = malloc(dk_attn_decode_parts(t.kvl) * DK_ATTN_DECODE_PART_FLOATS(t.g, t.hd) *
                                         4);
                    ck_assert(dk_attn_decode_bf16(t.q, t.g, t.hd, kb, vb, t.kvl, t.scale, sc, part, o));
                    worst[exact] = fmax(worst[exact], tile_check(&t, o, exact ? 0 : U_BF16, 0));
                    free(part);
                    free(o);
                    free(sc);
                    free(kb);
                    free(vb);
                    tile_free(&t);
                }
    printf("decode attention on the bf16 cache: worst error %.3f of the bound (any inputs), %.3f (bf16 "
           "inputs)\n",
           worst[0], worst[1]);
}
END_TEST

/* The bf16 copy of the caches a context keeps for the decode step (bf16/q8 compute, head_dim % 32 == 0)
 * holds exactly the rounded f32 cache rows after prefills, decode steps, a truncation and more rows
 * written over the dropped ones, and after a switch to f32 and back (made anew from the caches). */
static void check_kvh(const dk_ctx *c) {
    const dk_model_config *k = &dk_ctx_model(c)->cfg;
    int hd = k->head_dim, nkv = k->n_head_kv, kvd = nkv * hd;
    size_t head = (size_t)dk_ctx_n_ctx_max(c) * hd;
    for (int l = 0; l < k->n_layer; l++) {
        const uint16_t *kh, *vh;
        ck_assert(dk_ctx_cache_bf16(c, l, &kh, &vh));
        const dk_kv_cache *kv = dk_ctx_cache(c, l);
        for (int h = 0; h < nkv; h++)
            for (int j = 0; j < kv->len; j++)
                for (int x = 0; x < hd; x++) {
                    size_t at = (size_t)j * kvd + (size_t)h * hd + x, bt = h * head + (size_t)j * hd + x;
                    ck_assert_msg(kh[bt] == dk_f32_to_bf16(kv->k[at]) && vh[bt] == dk_f32_to_bf16(kv->v[at]),
                                  "layer %d head %d row %d dim %d", l, h, j, x);
                }
    }
}

static int32_t *tokens(int n, int V, uint64_t seed);

/* qwen2-tiny with heads of 32 (the bf16 decode form's step), two layers, d = 16 per query head */
static dk_model *model_hd32(int n_head, int n_head_kv, uint64_t seed) {
    dk_model_config cfg;
    ck_assert(dk_model_shape("qwen2-tiny", &cfg));
    cfg.n_layer = 2;
    cfg.n_embd = 16 * n_head;
    cfg.n_head = n_head;
    cfg.n_head_kv = n_head_kv;
    cfg.head_dim = 32;
    cfg.n_rot = 32;
    cfg.n_ctx_train = 4096;
    return dk_test_model_random(&cfg, DK_GGML_TYPE_F32, seed, "qwen2-hd32");
}

START_TEST(test_decode_bf16_cache) {
    if (!g_native || !dk_attn_decode_bf16_ok(32)) return;
    dk_model *m = model_hd32(6, 2, 9);
    int V = m->cfg.n_vocab;
    int32_t *toks = tokens(120, V, 8);
    dk_err e = {{0}};
    dk_ctx *c = NULL;
    float *lg = malloc((size_t)V * 4), *lg2 = malloc((size_t)V * 4);
    ck_assert(dk_ctx_create(m, 200, &c, &e) == DK_OK);
    const uint16_t *kh, *vh;
    ck_assert(!dk_ctx_cache_bf16(c, 0, &kh, &vh));                     /* f32 compute keeps none */
    ck_assert(dk_forward_prefill(c, toks, 30, NULL, lg, &e) == DK_OK); /* rows made in f32 compute */
    ck_assert(dk_ctx_set_compute(c, DK_COMPUTE_BF16, &e) == DK_OK);
    check_kvh(c);
    ck_assert(dk_forward_prefill(c, toks + 30, 50, NULL, lg, &e) == DK_OK);
    for (int i = 0; i < 4; i++) ck_assert(dk_forward_decode(c, toks[80 + i], lg, &e) == DK_OK);
    check_kvh(c);
    ck_assert(dk_ctx_truncate(c, 60, &e) == DK_OK);
    ck_assert(dk_forward_prefill(c, toks + 90, 20, NULL, lg, &e) == DK_OK); /* over rows 60..79 */
    ck_assert(dk_forward_decode(c, toks[110], lg, &e) == DK_OK);
    check_kvh(c);
    ck_assert(dk_ctx_set_compute(c, DK_COMPUTE_F32, &e) == DK_OK);
    ck_assert(!dk_ctx_cache_bf16(c, 0, &kh, &vh));
    ck_assert(dk_forward_decode(c, toks[111], lg, &e) == DK_OK);
    ck_assert(dk_ctx_set_compute(c, DK_COMPUTE_Q8, &e) == DK_OK);
    check_kvh(c);
    /* and the decode step reads it: a second context through the same steps gives the same logits,
     * and different ones once a value of its copy (layer 0, head 0, row 0) is changed */
    dk_ctx *c2 = NULL;
    ck_assert(dk_ctx_create(m, 200, &c2, &e) == DK_OK);
    ck_assert(dk_ctx_set_compute(c2, DK_COMPUTE_Q8, &e) == DK_OK);
    ck_assert(dk_forward_prefill(c2, toks, 100, NULL, lg2, &e) == DK_OK);
    ck_assert(dk_ctx_truncate(c, 0, &e) == DK_OK);
    ck_assert(dk_forward_prefill(c, toks, 100, NULL, lg, &e) == DK_OK);
    ck_assert(dk_forward_decode(c, toks[112], lg, &e) == DK_OK);
    ck_assert(dk_forward_decode(c2, toks[112], lg2, &e) == DK_OK);
    ck_assert(!memcmp(lg, lg2, (size_t)V * 4));
    ck_assert(dk_ctx_cache_bf16(c2, 0, &kh, &vh));
    ((uint16_t *)vh)[0] ^= 0x4000; /* a value far from the f32 cache's */
    ck_assert(dk_forward_decode(c, toks[113], lg, &e) == DK_OK);
    ck_assert(dk_forward_decode(c2, toks[113], lg2, &e) == DK_OK);
    ck_assert(memcmp(lg, lg2, (size_t)V * 4) != 0);
    free(lg);
    free(lg2);
    free(toks);
    dk_ctx_free(c);
    dk_ctx_free(c2);
    dk_model_free(m);
}
END_TEST

/* Decode steps on the bf16 copy past one key part (2100 cached tokens: 3 parts) give the same logits
 * on 1 and 2 threads, with one KV head (the parts of that head on both threads) and with two. */
static float *decode_logits(const dk_model *m, const int32_t *toks, int T, int threads) {
    openblas_set_num_threads(threads);
    ck_assert_int_eq(dk_blas_threads(), threads);
    int V = m->cfg.n_vocab;
    dk_err e = {{0}};
    dk_ctx *c = NULL;
    float *lg = malloc((size_t)3 * V * 4);
    ck_assert(dk_ctx_create(m, T + 3, &c, &e) == DK_OK);
    ck_assert(dk_ctx_set_compute(c, DK_COMPUTE_BF16, &e) == DK_OK);
    ck_assert_msg(dk_forward_prefill(c, toks, T, NULL, lg, &e) == DK_OK, "%s", e.msg);
    for (int i = 0; i < 3; i++) ck_assert(dk_forward_decode(c, toks[T + i], lg + (size_t)i * V, &e) == DK_OK);
    dk_ctx_free(c);
    return lg;
}

START_TEST(test_decode_bf16_threads) {
    if (!g_native || !dk_attn_decode_bf16_ok(32)) return;
    int bt = dk_blas_threads();
    for (int nkv = 1; nkv <= 2; nkv++) {
        dk_model *m = model_hd32(4, nkv, 21);
        int T = 2100, V = m->cfg.n_vocab;
        ck_assert(dk_attn_decode_parts(T + 1) == 3);
        int32_t *toks = tokens(T + 3, V, 12);
        float *a = decode_logits(m, toks, T, 1), *b = decode_logits(m, toks, T, 2);
        ck_assert_msg(!memcmp(a, b, (size_t)3 * V * 4),
                      "%d KV heads: decode logits differ between 1 and 2 threads", nkv);
        free(a);
        free(b);
        free(toks);
        dk_model_free(m);
    }
    openblas_set_num_threads(bt);
}
END_TEST

START_TEST(test_blocked_bf16_bound) {
    if (!g_native) return;
    double worst[2] = {0, 0};
    for (int exact = 0; exact < 2; exact++)
        for (size_t a = 0; a < sizeof KVL / sizeof *KVL; a++)
            for (size_t b = 0; b < sizeof NB / sizeof *NB; b++) {
                if (NB[b] > KVL[a]) continue;
                tile t;
                tile_make(&t, NB[b], 7, 64, KVL[a], 101 + a * 7 + b, exact);
                float *o = malloc((size_t)t.nb * t.g * t.hd * 4), *of = malloc((size_t)t.nb * t.g * t.hd * 4);
                tile_run(&t, true, o);
                double w = tile_check(&t, o, exact ? 0 : U_BF16, U_BF16);
                worst[exact] = fmax(worst[exact], w);
                tile_run(&t, false, of); /* and it is the bf16 path: f32 products differ */
                if (t.kvl > 1) ck_assert(memcmp(o, of, (size_t)t.nb * t.g * t.hd * 4) != 0);
                free(o);
                free(of);
                tile_free(&t);
            }
    printf(
        "blocked attention, bf16 products: worst error %.3f of the bound (any inputs), %.3f (bf16 inputs)\n",
        worst[0], worst[1]);
}
END_TEST

/* Entries after row i's limit (lim0 + i) never reach rows <= i: huge finite values there leave
 * those rows' bits as they were. */
START_TEST(test_blocked_causal_exact) {
    for (int bf16 = 0; bf16 < 2; bf16++) {
        if (bf16 && !g_native) continue;
        tile t;
        tile_make(&t, 36, 7, 64, 300, 77, false);
        size_t per = (size_t)t.g * t.hd, n = (size_t)t.nb * per;
        float *o = malloc(n * 4), *o2 = malloc(n * 4);
        tile_run(&t, bf16, o);
        for (int i = 0; i < t.nb; i += 7) {
            tile u = t;
            size_t nk = (size_t)t.kvl * t.kvd;
            u.k = malloc(nk * 4);
            u.v = malloc(nk * 4);
            memcpy(u.k, t.k, nk * 4);
            memcpy(u.v, t.v, nk * 4);
            for (int j = t.lim0 + i + 1; j < t.kvl; j++)
                for (int x = 0; x < t.kvd; x++) {
                    u.k[(size_t)j * t.kvd + x] = 1e20f;
                    u.v[(size_t)j * t.kvd + x] = -1e20f;
                }
            tile_run(&u, bf16, o2);
            ck_assert_msg(!memcmp(o, o2, (size_t)(i + 1) * per * 4),
                          "%s: rows <= %d changed by later entries", bf16 ? "bf16" : "f32", i);
            for (size_t x = 0; x < n; x++) ck_assert(isfinite(o2[x]) || x >= (size_t)(i + 1) * per);
            free(u.k);
            free(u.v);
        }
        free(o);
        free(o2);
        tile_free(&t);
    }
}
END_TEST

START_TEST(test_blocked_bad_tile) {
    dk_attn_scratch sc;
    dk_err e = {{0}};
    float q[64], k[64], v[64], o[64];
    ck_assert(dk_attn_scratch_init(&sc, 4, 8, &e) == DK_OK);
    ck_assert(dk_attn_blocked(&sc, q, 2, 4, 8, k, v, 8, 4, 0, 1.0f, NULL, NULL, o, &e) ==
              DK_ERR_ARG); /* 8 rows > 4 */
    ck_assert(strstr(e.msg, "attention tile") != NULL);
    ck_assert(dk_attn_blocked(&sc, q, 1, 4, 8, k, v, 8, 2, 2, 1.0f, NULL, NULL, o, &e) ==
              DK_ERR_ARG); /* limit past kvl */
    dk_attn_scratch_free(&sc);
}
END_TEST

/* ---- in the forward pass (bf16 compute) ---- */

static int32_t *tokens(int n, int V, uint64_t seed) {
    int32_t *t = malloc((size_t)n * 4);
    for (int i = 0; i < n; i++) t[i] = (int32_t)(rng_next(&seed) % (uint64_t)V);
    return t;
}

/* rho = 0 with a method that captures attention probabilities (fastv: the last token's) and one
 * that does not (dash) equal dense bf16 bit for bit, at a length of several query blocks and
 * key blocks (qwen2-tiny: group 3, 85 query rows a block). */
START_TEST(test_rho0_probes_bf16) {
    if (!g_native) return;
    dk_model *m = dk_test_model_shape("qwen2-tiny", 3, 5);
    int T = 400, Q = 5, V = m->cfg.n_vocab, d = m->cfg.n_embd;
    int32_t *ctx = tokens(T, V, 3), *q = tokens(Q, V, 4);
    dk_err e = {{0}};
    dk_ctx *c = NULL;
    ck_assert(dk_ctx_create(m, T + Q, &c, &e) == DK_OK);
    ck_assert(dk_ctx_set_compute(c, DK_COMPUTE_BF16, &e) == DK_OK);
    float *hd = malloc((size_t)T * d * 4), *hm = malloc((size_t)T * d * 4);
    dk_prefill_result rd, rm;
    ck_assert_msg(dk_prefill_run(c, NULL, NULL, ctx, T, q, Q, hd, &rd, &e) == DK_OK, "%s", e.msg);
    const char *methods[] = {"fastv", "snapkv", "dash"};
    for (int i = 0; i < 3; i++) {
        const dk_policy *pol;
        dk_policy_params pp;
        ck_assert(dk_policy_lookup(methods[i], &pol, &e) == DK_OK);
        dk_policy_params_default(&pp);
        ck_assert(dk_policy_params_set_text(pol, &pp, "rho", "0", &e) == DK_OK);
        ck_assert_msg(dk_prefill_run(c, pol, &pp, ctx, T, q, Q, hm, &rm, &e) == DK_OK, "%s: %s", methods[i],
                      e.msg);
        ck_assert_msg(!memcmp(rd.ctx_logits, rm.ctx_logits, (size_t)V * 4), "%s rho 0: context logits differ",
                      methods[i]);
        ck_assert_msg(!memcmp(rd.q_logits, rm.q_logits, (size_t)V * 4), "%s rho 0: question logits differ",
                      methods[i]);
        ck_assert_msg(!memcmp(hd, hm, (size_t)T * d * 4), "%s rho 0: hidden states differ", methods[i]);
        dk_prefill_result_free(&rm);
    }
    /* and halting still runs: rho 0.5 keeps fewer rows after l_s, logits finite */
    const dk_policy *pol;
    dk_policy_params pp;
    ck_assert(dk_policy_lookup("fastv", &pol, &e) == DK_OK);
    dk_policy_params_default(&pp);
    ck_assert(dk_policy_params_set_text(pol, &pp, "rho", "0.5", &e) == DK_OK);
    ck_assert_msg(dk_prefill_run(c, pol, &pp, ctx, T, q, Q, NULL, &rm, &e) == DK_OK, "%s", e.msg);
    ck_assert(dk_flops_total(&rm.ctx_flops) < dk_flops_total(&rd.ctx_flops));
    for (int i = 0; i < V; i++) ck_assert(isfinite(rm.q_logits[i]));
    dk_prefill_result_free(&rm);
    dk_prefill_result_free(&rd);
    free(hd);
    free(hm);
    free(ctx);
    free(q);
    dk_ctx_free(c);
    dk_model_free(m);
}
END_TEST

/* FLOPs as executed: bf16's attention products equal f32's count, its softmax adds exactly the
 * blocked tile's rescaling (dk_attn_blocked_extra_flops per tile). */
START_TEST(test_flops_bf16) {
    if (!g_native) return;
    dk_model *m = dk_test_model_shape("qwen2-tiny", 2, 5);
    const dk_model_config *k = &m->cfg;
    int T = 300, V = k->n_vocab, g = k->n_head / k->n_head_kv, B = 256 / g;
    int32_t *ctx = tokens(T, V, 8);
    dk_err e = {{0}};
    dk_ctx *c = NULL;
    float *lg = malloc((size_t)V * 4);
    ck_assert(dk_ctx_create(m, T, &c, &e) == DK_OK);
    dk_flops f[2];
    for (int mode = 0; mode < 2; mode++) {
        ck_assert(dk_ctx_set_compute(c, mode ? DK_COMPUTE_BF16 : DK_COMPUTE_F32, &e) == DK_OK);
        dk_ctx_reset(c);
        ck_assert(dk_forward_prefill(c, ctx, T, NULL, lg, &e) == DK_OK);
        f[mode] = dk_ctx_stats(c)->layers[1].flops;
    }
    int64_t extra = 0;
    for (int r0 = 0; r0 < T; r0 += B) {
        int r1 = r0 + B < T ? r0 + B : T;
        extra += k->n_head_kv * dk_attn_blocked_extra_flops((r1 - r0) * g, r1, k->head_dim);
    }
    ck_assert(f[1].c[DK_FLOPS_ATTN] == f[0].c[DK_FLOPS_ATTN]);
    ck_assert(f[1].c[DK_FLOPS_SOFTMAX] == f[0].c[DK_FLOPS_SOFTMAX] + extra);
    ck_assert(extra > 0);
    free(lg);
    free(ctx);
    dk_ctx_free(c);
    dk_model_free(m);
}
END_TEST

static Suite *attention_suite(void) {
    Suite *s = suite_create("attention");
    TCase *t = tcase_create("blocked");
    tcase_set_timeout(t, 300);
    tcase_add_test(t, test_blocked_f32_bound);
    tcase_add_test(t, test_decode_f32_bound);
    tcase_add_test(t, test_decode_bf16_bound);
    tcase_add_test(t, test_decode_bf16_cache);
    tcase_add_test(t, test_decode_bf16_threads);
    tcase_add_test(t, test_blocked_bf16_bound);
    tcase_add_test(t, test_blocked_causal_exact);
    tcase_add_test(t, test_blocked_bad_tile);
    tcase_add_test(t, test_rho0_probes_bf16);
    tcase_add_test(t, test_flops_bf16);
    suite_add_tcase(s, t);
    return s;
}

int main(void) {
    dk_blas_init();
    g_native = dk_compute_bf16_native();
    if (!g_native)
        printf("SKIP bf16 attention tests: oneDNN runs this CPU as %s (no AVX512_BF16/AMX)\n",
               dk_compute_isa_name());
    return dk_test_main(attention_suite());
}
