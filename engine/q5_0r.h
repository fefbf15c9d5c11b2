/* q5_0r.h — Q5_0R: dashkit's in-memory order of Q5_0 rows, made at load for the q8 kernels (never
 * read from or written to a file).
 *
 * The same bytes as Q5_0 (22 per 32 values), another order. A row is cut into units of 4 blocks
 * (128 values, 88 bytes), so rows of Q5_0R exist where the row length is a multiple of 128 and a
 * unit never straddles two rows. A unit holds
 *   f16 d[4]      the four blocks' scales, in block order                          (bytes 0-7)
 *   u8  bits[80]  the 128 values' 5-bit quants u (0..31), value e (block e / 32,    (bytes 8-87)
 *                 element e % 32) at bits 5e .. 5e + 4, the 80 bytes read as one
 *                 little-endian number
 * and element e of block j is (u - 16) * d[j], exactly Q5_0's value (u the low nibble, plus 16 where
 * the block's qh bit is set). So 64 values (two blocks) are 40 consecutive bytes, 8 values 5 bytes:
 * one vpermb and one vpmultishiftqb give them as bytes (q5_0r_simd.h), where Q5_0 needs its nibbles
 * split and its qh bits moved in one by one. The q8 kernel reads it at ~1.45x Q5_0's rate (one thread,
 * rows in L3: 40 -> 59 G values/s, the same bits). */
#ifndef DK_Q5_0R_H
#define DK_Q5_0R_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { DK_Q5_0R_UNIT = 128, DK_Q5_0R_UNIT_BYTES = 88 };

/* Whether this build and CPU have the kernels that read Q5_0R (AVX-512 F, BW, VL, VNNI and VBMI). */
bool dk_q5_0r_native(void);

/* Whether model loaders turn Q5_0 matrices into Q5_0R (model.h): on by default where
 * dk_q5_0r_native. This asks for it on or off and returns whether it is on now. Call it before a
 * load (tests, benchmarks); models already loaded keep their order. */
bool dk_q5_0r_set(bool on);
bool dk_q5_0r_on(void);

/* n values (a multiple of 128) of Q5_0 at src into Q5_0R at dst; src == dst converts in place. */
void dk_q5_0r_repack(const void *src, void *dst, size_t n);
/* The portable form (the same bytes; tests compare). */
void dk_q5_0r_repack_scalar(const void *src, void *dst, size_t n);

/* The 32 quants u of block j (0..3) of the unit at p. */
void dk_q5_0r_block(const uint8_t *p, int j, uint8_t u[32]);

/* n values (a multiple of 128) of Q5_0R as f32, exactly dk_dequantize's Q5_0 values (quant.c's
 * table calls these); the fast form uses AVX-512 VBMI where the CPU has it. */
void dk_q5_0r_dequantize(const uint8_t *src, float *dst, size_t n);
void dk_q5_0r_dequantize_scalar(const uint8_t *src, float *dst, size_t n);
#endif
