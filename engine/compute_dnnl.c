/* compute_dnnl.c — compute modes and the bf16 backend on oneDNN's C API (see compute.h).
 *
 * Every product is a oneDNN matmul primitive: src X (m, k) bf16 row-major, weights Wᵀ (k, n) given
 * as W (n, k) row-major through strides {1, k}, dst Y (m, n) f32 with row stride ldy, and a sum
 * post-op for beta = 1. f32 operands are rounded to bf16 by oneDNN reorder primitives (round to
 * nearest even, vectorised and threaded by the library). Primitives are cached per shape: creating
 * one costs up to milliseconds (JIT), running one of a prefill chunk tens of milliseconds. */
#include "compute.h"
#include "ops.h"
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* oneDNN runs on OpenMP (Debian's build); its team size is this process's OpenMP setting. */
extern void omp_set_num_threads(int n);
extern int omp_get_max_threads(void);

/* oneDNN's team for the next primitives: `threads` (below 1: unchanged) */
static void dk_omp_threads(int threads) {
    if (threads >= 1 && omp_get_max_threads() != threads) omp_set_num_threads(threads);
}

const char *dk_compute_name(dk_compute c) {
    return c == DK_COMPUTE_BF16 ? "bf16" : c == DK_COMPUTE_F32 ? "f32" : c == DK_COMPUTE_Q8 ? "q8" : "?";
}

dk_status dk_compute_parse(const char *s, dk_compute *out, dk_err *e) {
    if (s && !strcmp(s, "f32")) *out = DK_COMPUTE_F32;
    else if (s && !strcmp(s, "bf16")) *out = DK_COMPUTE_BF16;
    else if (s && !strcmp(s, "q8")) *out = DK_COMPUTE_Q8;
    else return dk_fail(e, DK_ERR_ARG, "compute '%s' is not one of f32, bf16, q8", s ? s : "(null)");
    return DK_OK;
}

bool dk_compute_bf16_native(void) {
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    return (isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) == (unsigned)dnnl_cpu_isa_avx512_core_bf16;
}

const char *dk_compute_isa_name(void) {
    static const struct {
        dnnl_cpu_isa_t isa;
        const char *name;
    } t[] = {{dnnl_cpu_isa_avx512_core_amx, "avx512_core_amx"},
             {dnnl_cpu_isa_avx512_core_bf16, "avx512_core_bf16"},
             {dnnl_cpu_isa_avx512_core_vnni, "avx512_core_vnni"},
             {dnnl_cpu_isa_avx512_core, "avx512_core"},
             {dnnl_cpu_isa_avx2_vnni, "avx2_vnni"},
             {dnnl_cpu_isa_avx2, "avx2"},
             {dnnl_cpu_isa_avx, "avx"},
             {dnnl_cpu_isa_sse41, "sse41"}};
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (isa == t[i].isa) return t[i].name;
    return "other";
}

dk_status dk_compute_check(dk_compute c, dk_err *e) {
    if ((unsigned)c >= DK_COMPUTE_COUNT)
        return dk_fail(e, DK_ERR_ARG, "compute mode %d out of range", (int)c);
    if (dk_compute_bf16_on(c) && !dk_compute_bf16_native())
        return dk_fail(e, DK_ERR_ARG,
                       "%s needs native bf16 dot products (AVX512_BF16 or AMX); oneDNN runs this CPU as %s: use f32",
                       dk_compute_name(c), dk_compute_isa_name());
    return DK_OK;
}

/* ---- primitive cache ---- */

enum { DK_PRIM_CACHE = 48 };
typedef enum { DK_PRIM_MATMUL, DK_PRIM_ROUND } dk_prim_kind;

typedef struct {
    dk_prim_kind kind;
    int64_t m, n, k, ldy;  /* matmul shape; ROUND: m rows of k */
    int64_t lda, brs, bcs; /* matmul: row stride of X, strides of B (k, n): W (n, k) is {1, k} */
    int beta;
    bool packed;            /* weights in a pack's layout (wmd) instead of W's strides */
    dnnl_memory_desc_t wmd; /* packed: that layout */
    dnnl_primitive_t p;     /* NULL = empty slot */
    uint64_t used;
} dk_prim_entry;

struct dk_bf16_backend {
    dnnl_engine_t eng;
    dnnl_stream_t str;
    dk_prim_entry cache[DK_PRIM_CACHE];
    uint64_t tick;
    uint16_t *xb;
    size_t xb_n; /* (m, k) bf16 activations of the current product */
    uint16_t *wb;
    size_t wb_n; /* (n, k) bf16 weights rounded from f32 */
};

static dk_status dk_dnnl_fail(dk_err *e, dnnl_status_t s, const char *what) {
    return dk_fail(e, s == dnnl_out_of_memory ? DK_ERR_NOMEM : DK_ERR_ARG, "oneDNN: %s failed (status %d)",
                   what, (int)s);
}

static void dk_md_2d(dnnl_memory_desc_t *md, int64_t r, int64_t c, int64_t rs, int64_t cs,
                     dnnl_data_type_t t) {
    dnnl_dims_t dims = {r, c}, strides = {rs, cs};
    dnnl_memory_desc_init_by_strides(md, 2, dims, t, strides);
}

static void dk_matmul_mds(dnnl_memory_desc_t *a, dnnl_memory_desc_t *w, dnnl_memory_desc_t *y,
                          const dk_prim_entry *key) {
    dk_md_2d(a, key->m, key->k, key->lda, 1, dnnl_bf16);
    if (key->packed) *w = key->wmd;
    else dk_md_2d(w, key->k, key->n, key->brs, key->bcs, dnnl_bf16);
    dk_md_2d(y, key->m, key->n, key->ldy, 1, dnnl_f32);
}

static dk_status dk_prim_create(dk_bf16_backend *b, const dk_prim_entry *key, dnnl_primitive_t *out,
                                dk_err *e) {
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_status_t s;
    if (key->kind == DK_PRIM_MATMUL) {
        dnnl_memory_desc_t a, w, y;
        dnnl_matmul_desc_t md;
        dk_matmul_mds(&a, &w, &y, key);
        if ((s = dnnl_primitive_attr_create(&attr))) return dk_dnnl_fail(e, s, "primitive attributes");
        if (key->beta && (!(s = dnnl_post_ops_create(&po)))) {
            if (!(s = dnnl_post_ops_append_sum(po, 1.0f))) s = dnnl_primitive_attr_set_post_ops(attr, po);
            dnnl_post_ops_destroy(po);
        }
        if (!s && !(s = dnnl_matmul_desc_init(&md, &a, &w, NULL, &y)))
            s = dnnl_primitive_desc_create(&pd, &md, attr, b->eng, NULL);
        dnnl_primitive_attr_destroy(attr);
    } else {
        dnnl_memory_desc_t src, dst;
        dk_md_2d(&src, key->m, key->k, key->k, 1, dnnl_f32);
        dk_md_2d(&dst, key->m, key->k, key->k, 1, dnnl_bf16);
        s = dnnl_reorder_primitive_desc_create(&pd, &src, b->eng, &dst, b->eng, NULL);
    }
    if (s)
        return dk_dnnl_fail(e, s,
                            key->kind == DK_PRIM_MATMUL ? "bf16 matmul set-up" : "f32->bf16 reorder set-up");
    s = dnnl_primitive_create(out, pd);
    dnnl_primitive_desc_destroy(pd);
    return s ? dk_dnnl_fail(e, s, "primitive creation") : DK_OK;
}

/* The cached primitive of this shape, created (evicting the least recently used) when absent. */
static dk_status dk_prim_get(dk_bf16_backend *b, const dk_prim_entry *key, dnnl_primitive_t *out, dk_err *e) {
    dk_prim_entry *victim = &b->cache[0];
    b->tick++;
    for (int i = 0; i < DK_PRIM_CACHE; i++) {
        dk_prim_entry *c = &b->cache[i];
        if (c->p && c->kind == key->kind && c->m == key->m && c->n == key->n && c->k == key->k &&
            c->ldy == key->ldy && c->lda == key->lda && c->brs == key->brs && c->bcs == key->bcs &&
            c->beta == key->beta && c->packed == key->packed &&
            (!c->packed || dnnl_memory_desc_equal(&c->wmd, &key->wmd))) {
            c->used = b->tick;
            *out = c->p;
            return DK_OK;
        }
        if (!c->p || (victim->p && c->used < victim->used)) victim = c;
    }
    dnnl_primitive_t p;
    dk_status st = dk_prim_create(b, key, &p, e);
    if (st) return st;
    if (victim->p) dnnl_primitive_destroy(victim->p);
    *victim = *key;
    victim->p = p;
    victim->used = b->tick;
    *out = p;
    return DK_OK;
}

/* ---- backend ---- */

dk_status dk_bf16_backend_init(dk_bf16_backend **out, dk_err *e) {
    *out = NULL;
    dk_status st = dk_compute_check(DK_COMPUTE_BF16, e);
    if (st) return st;
    dk_bf16_backend *b = calloc(1, sizeof *b);
    if (!b) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    dnnl_status_t s = dnnl_engine_create(&b->eng, dnnl_cpu, 0);
    if (!s) s = dnnl_stream_create(&b->str, b->eng, dnnl_stream_default_flags);
    if (s) {
        dk_bf16_backend_free(b);
        return dk_dnnl_fail(e, s, "engine set-up");
    }
    *out = b;
    return DK_OK;
}

void dk_bf16_backend_free(dk_bf16_backend *b) {
    if (!b) return;
    for (int i = 0; i < DK_PRIM_CACHE; i++)
        if (b->cache[i].p) dnnl_primitive_destroy(b->cache[i].p);
    if (b->str) dnnl_stream_destroy(b->str);
    if (b->eng) dnnl_engine_destroy(b->eng);
    free(b->xb);
    free(b->wb);
    free(b);
}

static dk_status dk_grow(uint16_t **buf, size_t *cap, size_t need, dk_err *e) {
    if (need <= *cap) return DK_OK;
    free(*buf);
    *cap = 0;
    if (!(*buf = malloc(need * sizeof **buf)))
        return dk_fail(e, DK_ERR_NOMEM, "out of memory for %zu bf16 values", need);
    *cap = need;
    return DK_OK;
}

/* Runs primitive p on args built from memory descs and pointers; waits for it. */
static dk_status dk_exec(dk_bf16_backend *b, dnnl_primitive_t p, int n, const int *arg,
                         const dnnl_memory_desc_t *md, void *const *ptr, dk_err *e) {
    dnnl_exec_arg_t args[3];
    dnnl_status_t s = dnnl_success;
    int made = 0;
    for (; made < n && !s; made++) {
        args[made].arg = arg[made];
        s = dnnl_memory_create(&args[made].memory, &md[made], b->eng, ptr[made]);
        if (s) break;
    }
    if (!s) s = dnnl_primitive_execute(p, b->str, n, args);
    if (!s) s = dnnl_stream_wait(b->str);
    for (int i = 0; i < made; i++) dnnl_memory_destroy(args[i].memory);
    return s ? dk_dnnl_fail(e, s, "primitive execution") : DK_OK;
}

/* dst (rows, cols) bf16 = src (rows, cols) f32 rounded to nearest even. */
static dk_status dk_round(dk_bf16_backend *b, uint16_t *dst, const float *src, int64_t rows, int64_t cols,
                          dk_err *e) {
    dk_prim_entry key = {.kind = DK_PRIM_ROUND, .m = rows, .k = cols};
    dnnl_primitive_t p;
    dk_status st = dk_prim_get(b, &key, &p, e);
    if (st) return st;
    dnnl_memory_desc_t md[2];
    dk_md_2d(&md[0], rows, cols, cols, 1, dnnl_f32);
    dk_md_2d(&md[1], rows, cols, cols, 1, dnnl_bf16);
    static const int arg[2] = {DNNL_ARG_FROM, DNNL_ARG_TO};
    void *ptr[2] = {(void *)src, dst};
    return dk_exec(b, p, 2, arg, md, ptr, e);
}

/* Runs the matmul of key (cached primitive) on bf16 x, bf16 w, f32 y. */
static dk_status dk_matmul_run(dk_bf16_backend *b, const dk_prim_entry *key, const void *x, const void *w,
                               float *y, dk_err *e) {
    dnnl_primitive_t p;
    dk_status st = dk_prim_get(b, key, &p, e);
    if (st) return st;
    dnnl_memory_desc_t md[3];
    dk_matmul_mds(&md[0], &md[1], &md[2], key);
    static const int arg[3] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST};
    void *ptr[3] = {(void *)x, (void *)w, y};
    return dk_exec(b, p, 3, arg, md, ptr, e);
}

static dk_status dk_matmul_check(int m, int n, int k, int ldy, float beta, dk_err *e) {
    if (m <= 0 || n <= 0 || k <= 0 || ldy < n || (beta != 0.0f && beta != 1.0f))
        return dk_fail(e, DK_ERR_ARG, "bf16 matmul: bad shape m=%d n=%d k=%d ldy=%d beta=%g", m, n, k, ldy,
                       (double)beta);
    return DK_OK;
}

/* X (m, k) f32 rounded into the backend's activation buffer, on `threads` threads */
static dk_status dk_round_x(dk_bf16_backend *b, const float *x, int m, int k, int threads, dk_err *e) {
    dk_omp_threads(threads);
    dk_status st = dk_grow(&b->xb, &b->xb_n, (size_t)m * (size_t)k, e);
    return st ? st : dk_round(b, b->xb, x, m, k, e);
}

/* Y = xb (m, k) · W (key's n, k, weights layout) in two products: the rows of a multiple of 16,
 * then the rest. oneDNN 2.6's bf16 kernel ran an odd m at ~0.7 of the GFLOP/s of the multiple of
 * 16 below it (m = 1363 vs 1360 + 3: 25-27 ms vs 19-20 ms on the FFN shape), and halting's active
 * counts and prompt lengths are anything. */
static dk_status dk_matmul_split(dk_bf16_backend *b, dk_prim_entry *key, int m, const void *wp, float *y,
                                 dk_err *e) {
    int m_main = m > 16 ? m & ~15 : m;
    key->m = m_main;
    dk_status st = dk_matmul_run(b, key, b->xb, wp, y, e);
    if (st || m_main == m) return st;
    key->m = m - m_main;
    return dk_matmul_run(b, key, b->xb + (size_t)m_main * (size_t)key->k, wp,
                         y + (size_t)m_main * (size_t)key->ldy, e);
}

dk_status dk_bf16_matmul(dk_bf16_backend *b, float *y, int ldy, const float *x, const void *w, bool w_bf16,
                         int m, int n, int k, float beta, int threads, dk_err *e) {
    dk_status st;
    if ((st = dk_matmul_check(m, n, k, ldy, beta, e)) || (st = dk_round_x(b, x, m, k, threads, e))) return st;
    const void *wp = w;
    if (!w_bf16) {
        if ((st = dk_grow(&b->wb, &b->wb_n, (size_t)n * (size_t)k, e)) ||
            (st = dk_round(b, b->wb, w, n, k, e)))
            return st;
        wp = b->wb;
    }
    dk_prim_entry key = {.kind = DK_PRIM_MATMUL,
                         .n = n,
                         .k = k,
                         .ldy = ldy,
                         .lda = k,
                         .brs = 1,
                         .bcs = k,
                         .beta = beta != 0.0f};
    return dk_matmul_split(b, &key, m, wp, y, e);
}

/* ---- packed weights ---- */

enum { DK_BF16_HUGE_PAGE = 2 << 20 };

/* bytes a pack of `bytes` allocates: whole 2 MiB pages from 2 MiB on */
static int64_t dk_compute_bf16_alloc_bytes(int64_t bytes) {
    return bytes < DK_BF16_HUGE_PAGE
               ? bytes
               : (bytes + DK_BF16_HUGE_PAGE - 1) / DK_BF16_HUGE_PAGE * DK_BF16_HUGE_PAGE;
}

int64_t dk_compute_bf16_pack_bytes(int64_t n, int64_t k) {
    return dk_compute_bf16_alloc_bytes(((n + 63) & ~63) * ((k + 63) & ~63) * 2);
}

struct dk_bf16_pack {
    int n, k;
    dnnl_memory_desc_t md; /* the layout: what oneDNN's matmul picks for (DK_BF16_PACK_PROBE_M, n, k) */
    void *data;            /* dnnl_memory_desc_get_size(&md) bytes */
    size_t bytes;
};

/* The layout is asked for at one fixed m, so that it depends on (n, k) and the CPU only: products of
 * every m then take the same pack (checked here: 7, 32 and 640 rows all ran oneDNN's brgemm kernel on it). */
enum { DK_BF16_PACK_PROBE_M = 256 };

/* The layout oneDNN 2.6 asks for on avx512_core_bf16 (dims (k, n), "BA16a64b2a"): blocks of 32 k x
 * 64 n, 4 KiB each, the k-blocks of one n-block next to each other; inside a block 16 pairs of k,
 * each 64 n x 2 k. Filled here by hand, rows of W read in order: oneDNN's reorder from W's
 * transposed strides ran at ~0.8 GB/s (17-21 ms per FFN matrix of the 0.5B shape, 2.4 s per model,
 * more than a 2K prefill saves). Other layouts (AMX, another ISA) take the reorder. */
static bool dk_pack_is_ba16a64b2a(const dnnl_memory_desc_t *md) {
    const dnnl_blocking_desc_t *bd = &md->format_desc.blocking;
    return md->format_kind == dnnl_blocked && md->ndims == 2 && md->offset0 == 0 && bd->inner_nblks == 3 &&
           bd->inner_blks[0] == 16 && bd->inner_idxs[0] == 0 && bd->inner_blks[1] == 64 &&
           bd->inner_idxs[1] == 1 && bd->inner_blks[2] == 2 && bd->inner_idxs[2] == 0 &&
           md->padded_dims[0] % 32 == 0 && md->padded_dims[1] % 64 == 0 && bd->strides[0] == 32 * 64 &&
           bd->strides[1] == md->padded_dims[0] * 64;
}

typedef struct {
    const void *w; /* (n, k) row-major */
    bool w_bf16;
    int n, k, k_pad; /* k_pad: padded_dims[0] */
    uint16_t *dst;
} dk_pack_job;

/* n-block t: 64 rows of W (rows and k beyond W are zeros), each row read in order, its runs of 32
 * values rounded to 16 bf16 pairs and each pair stored in its 4 KiB block (the n-block, k_pad x 64
 * x 2 bytes, stays in L2). The time goes to the first write of the fresh pack memory, not here. */
static void dk_pack_task(void *arg, int t, int tid) {
    (void)tid;
    const dk_pack_job *j = arg;
    uint32_t *nblk = (uint32_t *)(j->dst + (size_t)t * (size_t)j->k_pad * 64);
    for (int r = 0; r < 64; r++) {
        int64_t row = (int64_t)t * 64 + r;
        uint32_t *blk = nblk + r;
        for (int c0 = 0; c0 < j->k_pad; c0 += 32, blk += 16 * 64) {
            int nc = j->k - c0 < 32 ? j->k - c0 : 32;
            uint32_t pair[16] = {0};
            if (row < j->n && nc > 0) {
                size_t at = (size_t)row * (size_t)j->k + (size_t)c0;
                if (j->w_bf16) memcpy(pair, (const uint16_t *)j->w + at, (size_t)nc * 2);
                else dk_round_bf16((uint16_t *)pair, (const float *)j->w + at, (size_t)nc, 1.0f);
            }
            for (int i = 0; i < 16; i++) blk[i * 64] = pair[i];
        }
    }
}

dk_status dk_bf16_pack_create(dk_bf16_backend *b, const void *w, bool w_bf16, int n, int k, int threads,
                              dk_pool *pool, dk_bf16_pack **out, dk_err *e) {
    *out = NULL;
    dk_status st = dk_matmul_check(DK_BF16_PACK_PROBE_M, n, k, n, 0.0f, e);
    if (st) return st;
    dnnl_memory_desc_t a, wa, y, src;
    dnnl_dims_t wdims = {k, n};
    dk_md_2d(&a, DK_BF16_PACK_PROBE_M, k, k, 1, dnnl_bf16);
    dk_md_2d(&y, DK_BF16_PACK_PROBE_M, n, n, 1, dnnl_f32);
    dnnl_memory_desc_init_by_tag(&wa, 2, wdims, dnnl_bf16, dnnl_format_tag_any);
    dnnl_matmul_desc_t mmd;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s = dnnl_matmul_desc_init(&mmd, &a, &wa, NULL, &y);
    if (!s) s = dnnl_primitive_desc_create(&pd, &mmd, NULL, b->eng, NULL);
    if (s) return dk_dnnl_fail(e, s, "bf16 weight layout query");
    dk_bf16_pack *p = calloc(1, sizeof *p);
    if (!p) {
        dnnl_primitive_desc_destroy(pd);
        return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    }
    p->n = n;
    p->k = k;
    p->md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_primitive_desc_destroy(pd);
    p->bytes = dnnl_memory_desc_get_size(&p->md);
    /* packs of 2 MiB and more in transparent huge pages where the kernel offers them, whole ones
     * (so the last never holds memory the estimate does not count): the first write of fresh
     * memory dominated packing here (~1 s of page clearing per 0.5B model in 4 KiB pages, half
     * that in 2 MiB ones) */
    size_t alloc = (size_t)dk_compute_bf16_alloc_bytes((int64_t)p->bytes);
    if (alloc == p->bytes) p->data = malloc(alloc);
    else if (!posix_memalign(&p->data, DK_BF16_HUGE_PAGE, alloc)) madvise(p->data, alloc, MADV_HUGEPAGE);
    else p->data = NULL;
    if (!p->data) {
        size_t bytes = p->bytes;
        dk_bf16_pack_free(p);
        return dk_fail(e, DK_ERR_NOMEM, "out of memory for a %zu-byte bf16 weight pack", bytes);
    }
    if (dk_pack_is_ba16a64b2a(&p->md)) {
        dk_pack_job j = {w, w_bf16, n, k, (int)p->md.padded_dims[0], p->data};
        int nb = (int)(p->md.padded_dims[1] / 64);
        if (pool) dk_pool_run(pool, nb, dk_pack_task, &j);
        else
            for (int t = 0; t < nb; t++) dk_pack_task(&j, t, 0);
        *out = p;
        return DK_OK;
    }
    /* W (n, k) row-major is Wᵀ (k, n) with strides {1, k}; one reorder rounds and lays it out */
    dk_md_2d(&src, k, n, 1, k, w_bf16 ? dnnl_bf16 : dnnl_f32);
    dnnl_primitive_t r = NULL;
    if (!(s = dnnl_reorder_primitive_desc_create(&pd, &src, b->eng, &p->md, b->eng, NULL))) {
        s = dnnl_primitive_create(&r, pd);
        dnnl_primitive_desc_destroy(pd);
    }
    if (s) {
        dk_bf16_pack_free(p);
        return dk_dnnl_fail(e, s, "bf16 weight pack set-up");
    }
    dk_omp_threads(threads);
    dnnl_memory_desc_t md[2] = {src, p->md};
    static const int arg[2] = {DNNL_ARG_FROM, DNNL_ARG_TO};
    void *ptr[2] = {(void *)w, p->data};
    st = dk_exec(b, r, 2, arg, md, ptr, e);
    dnnl_primitive_destroy(r);
    if (st) {
        dk_bf16_pack_free(p);
        return st;
    }
    *out = p;
    return DK_OK;
}

void dk_bf16_pack_free(dk_bf16_pack *p) {
    if (!p) return;
    free(p->data);
    free(p);
}

size_t dk_bf16_pack_bytes(const dk_bf16_pack *p) { return p ? p->bytes : 0; }

dk_status dk_bf16_matmul_packed(dk_bf16_backend *b, float *y, int ldy, const float *x, const dk_bf16_pack *w,
                                int m, float beta, int threads, dk_err *e) {
    dk_status st;
    if ((st = dk_matmul_check(m, w->n, w->k, ldy, beta, e)) || (st = dk_round_x(b, x, m, w->k, threads, e)))
        return st;
    dk_prim_entry key = {.kind = DK_PRIM_MATMUL,
                         .n = w->n,
                         .k = w->k,
                         .ldy = ldy,
                         .lda = w->k,
                         .beta = beta != 0.0f,
                         .packed = true,
                         .wmd = w->md};
    return dk_matmul_split(b, &key, m, w->data, y, e);
}

dk_status dk_bf16_gemm(dk_bf16_backend *b, float *c, int ldc, const uint16_t *a, int lda, const uint16_t *bm,
                       int64_t b_rs, int64_t b_cs, int m, int n, int k, dk_err *e) {
    if (m <= 0 || n <= 0 || k <= 0 || ldc < n || lda < k || b_rs < 1 || b_cs < 1)
        return dk_fail(e, DK_ERR_ARG, "bf16 gemm: bad shape m=%d n=%d k=%d ldc=%d lda=%d", m, n, k, ldc, lda);
    dk_omp_threads(1);
    dk_prim_entry key = {
        .kind = DK_PRIM_MATMUL, .m = m, .n = n, .k = k, .ldy = ldc, .lda = lda, .brs = b_rs, .bcs = b_cs};
    return dk_matmul_run(b, &key, a, bm, c, e);
}

int64_t dk_compute_bf16_bytes(int n_chunk, int k_max, int64_t w_elems) {
    return ((int64_t)n_chunk * k_max + w_elems) * 2;
}

/* ---- peak (bench) ---- */

double dk_compute_bf16_peak(int m, int n, int k, int reps, int threads) {
    dk_err e = {{0}};
    dk_bf16_backend *b = NULL;
    if (reps < 1) reps = 1;
    if (reps > 16) reps = 16;
    if (dk_bf16_backend_init(&b, &e)) return 0;
    uint16_t *w = malloc((size_t)n * k * 2);
    float *a = malloc((size_t)m * k * 4), *c = malloc((size_t)m * n * 4);
    dk_bf16_pack *pk = NULL;
    double t[16], gf = 0;
    if (a && w && c) {
        for (size_t i = 0; i < (size_t)m * k; i++)
            a[i] = 0.5f + (float)((i * 7919) % 128) / 256; /* 0.5 .. 1 */
        for (size_t i = 0; i < (size_t)n * k; i++) w[i] = (uint16_t)(0xbf00 + (i * 104729) % 128);
        /* the product alone, as the engine runs it: W packed (once), X already bf16 */
        int ok = dk_bf16_pack_create(b, w, true, n, k, threads, NULL, &pk, &e) == DK_OK &&
                 dk_round_x(b, a, m, k, threads, &e) == DK_OK;
        dk_prim_entry key = {.kind = DK_PRIM_MATMUL, .n = n, .k = k, .ldy = n, .lda = k, .packed = true};
        if (pk) key.wmd = pk->md;
        for (int r = -1; ok && r < reps; r++) {
            double t0 = dk_time_now_s();
            ok = dk_matmul_split(b, &key, m, pk->data, c, &e) == DK_OK;
            if (r >= 0) t[r] = dk_time_now_s() - t0;
        }
        if (ok) {
            qsort(t, (size_t)reps, sizeof *t, dk_cmp_f64);
            double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
            gf = 2.0 * m * n * k / med * 1e-9;
        }
    }
    dk_bf16_pack_free(pk);
    free(a);
    free(w);
    free(c);
    dk_bf16_backend_free(b);
    return gf;
}
