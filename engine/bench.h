/* bench.h — the measurements behind `dashkit bench` (the CLI parses and prints; these time).
 *
 * Every measurement that is compared with another runs in the same process, alternately rep by rep
 * (the order flipping every rep where two sides are timed), and reports per-rep values: the caller
 * takes medians (dk_prefill_median). One warm-up rep (index -1) is never reported. */
#ifndef DK_BENCH_H
#define DK_BENCH_H
#include <stdbool.h>
#include <stdint.h>
#include "compute.h"
#include "dk_common.h"
#include "forward.h"

enum { DK_BENCH_MAX_REPS = 16 };

/* sgemm GFLOP/s of C (m, n) = A (m, k) · Bᵀ on OpenBLAS's threads, median of reps after one warm-up
 * (0 when out of memory). */
double dk_bench_sgemm_gflops(int m, int n, int k, int reps);

/* ---- streaming read bandwidth ----
 * `threads` threads each sum their slice of a buffer far larger than the caches (64-bit adds in four
 * independent chains: the loads, not the adds, limit it). */
enum { DK_BENCH_BW_BYTES = 512 << 20 };
/* A DK_BENCH_BW_BYTES buffer, touched (free() it); NULL when out of memory. */
uint64_t *dk_bench_bw_buffer(void);
/* GB/s of one pass over buf on `threads` threads (1..64). */
double dk_bench_read_gbps(const uint64_t *buf, int threads);

/* n random tokens below n_vocab (xorshift from seed): the bench's input. */
void dk_bench_tokens(int32_t *toks, int n, unsigned long long seed, int n_vocab);

/* Peak resident set of this process in bytes (getrusage). */
double dk_bench_peak_rss(void);

/* ---- dense prefill vs the sgemm peak (and bf16 compute) ---- */
typedef struct {
    int reps;
    double wall[DK_BENCH_MAX_REPS]; /* f32 prefill wall s */
    double gemm[DK_BENCH_MAX_REPS]; /* sgemm GFLOP/s of the FFN shape (T x n_ff x n_embd), same rep */
    double conv_s[DK_BENCH_MAX_REPS],
        conv_share[DK_BENCH_MAX_REPS]; /* weight conversion inside the prefill */
    double wall_b[DK_BENCH_MAX_REPS];  /* bf16 prefill wall s (bf16 only) */
    double peak_b[DK_BENCH_MAX_REPS];  /* oneDNN bf16 GFLOP/s of the FFN shape */
    double ratio_b[DK_BENCH_MAX_REPS]; /* f32 / bf16 wall */
    double layers_wall_s;              /* mean over reps of the f32 prefill's summed layer wall */
    int64_t flops;                     /* FLOPs of one prefill */
    dk_flops per;                      /* by component */
} dk_bench_prefill_result;

/* reps (<= DK_BENCH_MAX_REPS - 1) dense prefills of toks[0..T) in f32 and, with bf16, also in bf16
 * compute alternately, each rep next to the sgemm (and bf16) peak of the FFN shape. progress: one
 * stderr-style line per rep is passed to it (NULL: none). The context is left in f32 compute. */
dk_status dk_bench_prefill_run(dk_ctx *c, const int32_t *toks, int T, int reps, bool bf16,
                               dk_bench_prefill_result *r, void (*progress)(const char *line), dk_err *e);

/* ---- decode after a prefill ---- */
typedef struct {
    int reps, steps, context;
    bool converts;                          /* two paths timed (fused and whole-matrix) */
    double fused[DK_BENCH_MAX_REPS];        /* tokens/s, fused small-m path (the default; F32's one path) */
    double convert[DK_BENCH_MAX_REPS];      /* tokens/s, whole-matrix conversion (converts only) */
    double ratio[DK_BENCH_MAX_REPS];        /* fused / convert */
    bool avx512;                            /* the fused path also timed on AVX2 kernels only (matvec.h; CPUs
                                        * with AVX-512, models with rows of a type that has such kernels) */
    double avx2[DK_BENCH_MAX_REPS];         /* tokens/s, fused path on AVX2 kernels (avx512 only) */
    double avx512_ratio[DK_BENCH_MAX_REPS]; /* fused / avx2 */
    bool q8;                                /* q8 compute on a model with q8 dots (qdot.h): the fused path
                                             * also timed with f32 dots (bf16 compute) instead of on AVX2 */
    double f32dot[DK_BENCH_MAX_REPS];       /* tokens/s, fused path with f32 dots (q8 only) */
    double q8_ratio[DK_BENCH_MAX_REPS];     /* fused (q8 dots) / f32dot */
    double read_gbps[DK_BENCH_MAX_REPS];    /* streaming read bandwidth around the rep's fused decode:
                                               the mean of the best of 3 passes before and after it */
    double bw_ratio[DK_BENCH_MAX_REPS];     /* bytes/token x fused tokens/s / read_gbps of the same rep */
    double bytes_per_token;                 /* weights + KV read by one step at the steps' mean context */
} dk_bench_decode_result;

/* steps decode tokens after a T-token prefill, reps times from the same cache (truncated back to T)
 * plus one warm-up rep: the fused path, on CPUs with AVX-512 (and a model with rows of a type that has
 * such kernels) the fused path on AVX2 kernels only (in q8 compute, with q8 dots for some rows: the
 * fused path with f32 dots instead), and
 * (converted weights) whole-matrix conversion, in turn, starting from a different one each rep, the bandwidth measured before each rep. prefilled: the context already
 * holds the dense prefill of toks[0..T) (else it is reset and prefilled first). */
dk_status dk_bench_decode_run(dk_ctx *c, const int32_t *toks, int T, int steps, int reps, bool prefilled,
                              dk_bench_decode_result *r, void (*progress)(const char *line), dk_err *e);

/* Bytes one decode step reads at context ctx: every weight matrix once (the token embedding only as
 * the tied lm head, else one row) and the K and V of every layer, f32 or (kv_bf16: the bf16 copy a
 * context keeps in bf16 and q8 compute, forward.h: dk_ctx_cache_bf16) bf16. */
double dk_bench_decode_bytes(const dk_model *m, double ctx, bool kv_bf16);

#endif
