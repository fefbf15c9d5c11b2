/* quant.h — tensor element types and conversion to f32 (GGML type ids as in GGUF). */
#ifndef DK_QUANT_H
#define DK_QUANT_H
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef enum {
    DK_GGML_TYPE_F32 = 0,
    DK_GGML_TYPE_F16 = 1,
    DK_GGML_TYPE_Q4_0 = 2,
    DK_GGML_TYPE_Q4_1 = 3,
    DK_GGML_TYPE_Q5_0 = 6,
    DK_GGML_TYPE_Q5_1 = 7,
    DK_GGML_TYPE_Q8_0 = 8,
    DK_GGML_TYPE_Q8_1 = 9,
    DK_GGML_TYPE_Q2_K = 10,
    DK_GGML_TYPE_Q3_K = 11,
    DK_GGML_TYPE_Q4_K = 12,
    DK_GGML_TYPE_Q5_K = 13,
    DK_GGML_TYPE_Q6_K = 14,
    DK_GGML_TYPE_Q8_K = 15,
    DK_GGML_TYPE_IQ2_XXS = 16,
    DK_GGML_TYPE_IQ4_NL = 20,
    DK_GGML_TYPE_IQ4_XS = 23,
    DK_GGML_TYPE_I8 = 24,
    DK_GGML_TYPE_I16 = 25,
    DK_GGML_TYPE_I32 = 26,
    DK_GGML_TYPE_I64 = 27,
    DK_GGML_TYPE_F64 = 28,
    DK_GGML_TYPE_BF16 = 30,
    DK_GGML_TYPE_TQ1_0 = 34,
    /* dashkit's own orders of a file type's bytes, made at load (ids from DK_GGML_TYPE_INTERNAL on:
     * never in a file, not dk_ggml_type_supported, not by name) */
    DK_GGML_TYPE_INTERNAL = 1000,
    DK_GGML_TYPE_Q5_0R = 1006, /* Q5_0 rows in units of 128 values (q5_0r.h) */
} dk_ggml_type;

/* Name ("F32", "Q8_0", ...) or NULL for a type id dashkit does not know. */
const char *dk_ggml_type_name(uint32_t type);
/* Elements per block and bytes per block; false for an unknown type. */
bool dk_ggml_type_block(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes);
/* True for the file types dk_dequantize can convert (dk_ggml_supported_names() lists them):
 * F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, IQ4_NL, IQ4_XS. dk_dequantize also
 * converts the internal Q5_0R. */
bool dk_ggml_type_supported(uint32_t type);
const char *dk_ggml_supported_names(void); /* "F32, F16, Q4_0, ..." */
/* True for the types dk_quantize can write (random-weight models). */
bool dk_ggml_type_quantizable(uint32_t type);
/* Type id by name, case-insensitive ("q4_K", "Q8_0", "bf16"); false if unknown. */
bool dk_ggml_type_from_name(const char *name, uint32_t *type);

float dk_fp16_to_f32(uint16_t h);
float dk_bf16_to_f32(uint16_t h);
uint16_t dk_f32_to_fp16(float f); /* round to nearest even */

/* Bytes of a row of n elements (n a multiple of the block size); 0 for an unknown type. */
size_t dk_ggml_row_bytes(uint32_t type, int64_t n);

/* Converts n elements (n a multiple of the type's block size) from src to dst. src may be
 * unaligned. Bit-exact with the scalar conversions above (F16: dk_fp16_to_f32, BF16:
 * dk_bf16_to_f32, Q8_0: d * (float)q with d = dk_fp16_to_f32(scale)) for every non-NaN input;
 * a NaN stays a NaN of the same sign (F16C quiets signalling NaNs). The quantised types give
 * exactly ggml's to_float (same float operations in the same order; layouts in quant.c).
 * Vectorised with AVX2/F16C when the build targets them (-march=x86-64-v3). An unsupported
 * type writes zeros. */
void dk_dequantize(uint32_t type, const void *src, float *dst, size_t n);
/* The portable form of dk_dequantize for the types that have an AVX2 one (tests compare both
 * with ggml); the same function for the others. */
void dk_dequantize_scalar(uint32_t type, const void *src, float *dst, size_t n);
/* Q4_K / Q5_K: the 8 sub-blocks' dl[j] = d * scale_j and ml[j] = dmin * min_j (f32 products), their
 * 6-bit scales and mins unpacked from the block's 12 bytes at p (layout in quant.c). */
void dk_k4_scales(const uint8_t *p, float d, float dmin, float *dl, float *ml);
/* Q5_0 / Q5_1: a block's 32 quants u (0..31) from its qh (4 bytes at p) and the 16 bytes of nibbles
 * after it: element j < 16 the low nibble of byte j, j + 16 its high one, plus 16 where bit j of qh is set. */
void dk_q5_quants(const uint8_t *p, uint8_t u[32]);

/* ---- f32 -> storage type (random-weight models in a file type, tests) ---- */
uint16_t dk_f32_to_bf16(float f); /* round to nearest even; NaN stays NaN */
/* Q8_0 as llama.cpp quantises it: per block of 32, d = max|x| / 127 stored as F16,
 * q = round(x / d). dst holds n / 32 * 34 bytes. */
void dk_quantize_q8_0(const float *src, void *dst, size_t n);
/* Converts n f32 values to a dk_ggml_type_quantizable type (n a multiple of the block size). */
void dk_quantize(uint32_t type, const float *src, void *dst, size_t n);

#endif
