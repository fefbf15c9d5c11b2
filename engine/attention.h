/* attention.h — blocked causal attention of one tile, the attention of bf16 (and q8) compute mode
 * (forward.c runs it per (KV head, query block) tile; f32 compute keeps forward.c's one-pass tile),
 * and the decode step's attention in those modes (dk_attn_decode, below).
 *
 * A tile is M = nb·g query rows: nb query positions, each with the g query heads of one KV head's
 * group, stacked (row i·g + j). Query position i sees cache entries [0, lim0 + i] (causal); the
 * tile reads entries [0, kvl). The keys run in blocks of DK_ATTN_KBLK:
 *   S = Q·Kblkᵀ·scale;  per row an online softmax step (ops.h: running max m and sum l, P =
 *   exp(S - m), alpha = exp(m_old - m));  O = O·alpha + P·Vblk;  at the end O /= l.
 * The block's scores stay in cache however long the context (the one-pass tile writes and reads
 * M·kvl scores per tile). Masked entries of a block get probability 0; blocks past a row's limit
 * leave the row as it was (alpha 1, no terms).
 *
 * The two products are f32 (OpenBLAS sgemm, one thread) or bf16 × bf16 → f32 through oneDNN's
 * matmul on the calling thread: Q·scale and P rounded to bf16 (round to nearest even), the keys
 * and values read from a bf16 copy of the KV head (dk_attn_round_rows, made once per layer by
 * the caller, rows padded to whole blocks so one primitive pair serves every block). The running
 * max, sums, rescaling and the division stay f32. */
#ifndef DK_ATTENTION_H
#define DK_ATTENTION_H
#include <stdbool.h>
#include <stdint.h>
#include "compute.h"
#include "dk_common.h"

enum { DK_ATTN_KBLK = 256 };

/* One thread's scratch for tiles of up to m_cap rows of head size hd. */
typedef struct {
    int m_cap, hd;
    float *s;            /* (m_cap, KBLK) scores, then probabilities, of a key block */
    float *mx, *sum;     /* (m_cap) running max and sum of each row */
    float *alpha;        /* (m_cap) each row's factor for its earlier blocks, of the current block */
    float *t;            /* (m_cap, hd) P·Vblk of a block (bf16 products) */
    uint16_t *qb;        /* (m_cap, hd) bf16 Q·scale */
    uint16_t *pb;        /* (m_cap, KBLK) bf16 probabilities */
    dk_bf16_backend *bf; /* this thread's oneDNN backend, made on the first bf16 tile */
    dk_status st;        /* the caller's: first failure of this thread's tiles, and its message */
    dk_err err;
} dk_attn_scratch;

/* Bytes of dk_attn_scratch_init's buffers (the backend's own are in memory.h's compute bytes). */
int64_t dk_attn_scratch_bytes(int m_cap, int hd);
dk_status dk_attn_scratch_init(dk_attn_scratch *s, int m_cap, int hd, dk_err *e);
void dk_attn_scratch_free(dk_attn_scratch *s);

/* The KV head's bf16 copy for bf16 products: dst (rows, hd) = src rows (row stride src_stride
 * floats) rounded to nearest even (finite values). */
void dk_attn_round_rows(uint16_t *dst, const float *src, int rows, int hd, int src_stride);

/* o (M, hd) = the tile's attention output, q (M, hd) its stacked query rows, M = nb·g <= m_cap;
 * k, v the first cache entry of the KV head (row stride kvd floats); entries [0, kvl) are read,
 * query position i sees [0, lim0 + i] (lim0 + nb <= kvl). kb16, vb16 NULL: f32 products; else
 * the bf16 products on the head's keys and values as (rows, hd) bf16: rows [0, kvl) those of k
 * and v rounded, finite values (zeros) after them up to the next multiple of DK_ATTN_KBLK (needs
 * a CPU with native bf16, compute.h). A failure of oneDNN is returned, o then undefined. */
dk_status dk_attn_blocked(dk_attn_scratch *s, const float *q, int nb, int g, int hd, const float *k,
                          const float *v, int kvd, int kvl, int lim0, float scale, const uint16_t *kb16,
                          const uint16_t *vb16, float *o, dk_err *e);

/* FLOPs the blocked tile runs beyond the one-pass tile's count (forward.c): per row and key
 * block after the first the rescale of its output and its factor, and the final division. */
int64_t dk_attn_blocked_extra_flops(int m, int kvl, int hd);

/* The attention of g query rows (q: rows of hd) of one position that sees all n cache entries (k, v:
 * rows of stride kvd): S = q·kᵀ·scale into s (g, n), softmax per row, O (g, hd) = P·v. For a decode
 * step in bf16 and q8 compute (f32 arithmetic; f32 compute keeps forward.c's tile, bit for bit):
 * each key and value row is read once for all g rows, in place of two 7-row OpenBLAS sgemm calls per
 * tile (~30 % of a decode step's samples at 2K cached tokens, 0.5B shape; this form is 1.4x them alone). */
void dk_attn_decode(const float *q, int g, int hd, const float *k, const float *v, int kvd, int n,
                    float scale, float *s, float *o);
/* Where the CPU has AVX-512F and hd is a multiple of 64, dk_attn_decode runs the 16-lane form
 * (attention_avx512.c; one thread, one KV head of 8 query rows, 2048 keys, head_dim 64: 0.071 ->
 * 0.051 ms with the cache in L2/L3, 2.9 -> 2.4-2.7 ms over 22 layers' caches from memory; decode
 * of the TinyLlama-1.1B shape in Q4_K, q8 compute, after 2048 tokens: 45-47 -> 50-53 tok/s,
 * alternating). Its scores are the AVX2 form's dot products summed in another order (last bits
 * differ); its values pass gives the same bits for the same scores. This asks for it on or off and
 * returns whether it is used now (tests, benchmarks; between calls only). */
bool dk_attn_decode_set_simd(bool on);

/* The same step on a bf16 copy of the KV head (k, v: n rows of hd bf16 each, contiguous: ctx.c keeps
 * one per layer in bf16 and q8 compute): q rounded to bf16 for Q·Kᵀ (vdpbf16ps: exact products, f32
 * sums), the softmax in f32, P·V in f32 multiply-adds on the exactly widened bf16 values. Half the
 * bytes of the f32 rows, read in one stream per head (the f32 cache's rows interleave the heads), and
 * half the multiply instructions for the scores. Where dk_attn_decode_bf16_ok(hd) (the CPU has
 * AVX-512F/BW and AVX512_BF16, hd % 32 == 0); false and nothing done elsewhere.
 *
 * The keys go in parts of DK_ATTN_DECODE_PART (the last one shorter), each with its own max score m
 * and sum l (flash-decoding): part c gives o_c = Σ exp(s - m_c) v and (m_c, l_c), and the merge takes
 * O = Σ_c e^(m_c - M) o_c / Σ_c e^(m_c - M) l_c, M = max m_c, parts in order. Parts of one head run on
 * different threads at long contexts (forward.c: a model with fewer KV heads than threads would leave
 * threads idle); the part size is fixed, so the bits do not depend on the thread count.
 * dk_attn_decode_bf16 runs the parts one after the other: s (g, DK_ATTN_DECODE_PART) scores, part
 * dk_attn_decode_parts(n) * DK_ATTN_DECODE_PART_FLOATS(g, hd) floats. */
enum { DK_ATTN_DECODE_PART = 1024 };
#define DK_ATTN_DECODE_PART_FLOATS(g, hd) ((size_t)(g) * (size_t)(hd) + 2 * (size_t)(g))
bool dk_attn_decode_bf16_ok(int hd);
int dk_attn_decode_parts(int n);
/* part c of n keys: o_c then (m_c, l_c) per row into part (DK_ATTN_DECODE_PART_FLOATS(g, hd) floats) */
bool dk_attn_decode_bf16_part(const float *q, int g, int hd, const uint16_t *k, const uint16_t *v, int n,
                              int c, float scale, float *s, float *part);
/* o (g, hd) from n_part parts (consecutive, DK_ATTN_DECODE_PART_FLOATS(g, hd) floats each) */
void dk_attn_decode_merge(int g, int hd, int n_part, const float *part, float *o);
bool dk_attn_decode_bf16(const float *q, int g, int hd, const uint16_t *k, const uint16_t *v, int n,
                         float scale, float *s, float *part, float *o);

#endif
