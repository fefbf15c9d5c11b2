/* quant.h — tensor element types and conversion to f32 (GGML type ids as in GGUF). */
#ifndef DK_QUANT_H
#define DK_QUANT_H
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef enum {
    DK_GGML_TYPE_F32 = 0, DK_GGML_TYPE_F16 = 1, DK_GGML_TYPE_Q4_0 = 2, DK_GGML_TYPE_Q4_1 = 3,
    DK_GGML_TYPE_Q5_0 = 6, DK_GGML_TYPE_Q5_1 = 7, DK_GGML_TYPE_Q8_0 = 8, DK_GGML_TYPE_Q8_1 = 9,
    DK_GGML_TYPE_Q2_K = 10, DK_GGML_TYPE_Q3_K = 11, DK_GGML_TYPE_Q4_K = 12, DK_GGML_TYPE_Q5_K = 13,
    DK_GGML_TYPE_Q6_K = 14, DK_GGML_TYPE_Q8_K = 15, DK_GGML_TYPE_I8 = 24, DK_GGML_TYPE_I16 = 25,
    DK_GGML_TYPE_I32 = 26, DK_GGML_TYPE_I64 = 27, DK_GGML_TYPE_F64 = 28, DK_GGML_TYPE_BF16 = 30,
} dk_ggml_type;

/* Name ("F32", "Q8_0", ...) or NULL for a type id dashkit does not know. */
const char *dk_ggml_type_name(uint32_t type);
/* Elements per block and bytes per block; false for an unknown type. */
bool dk_ggml_type_block(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes);
/* True for the types dk_dequantize can convert: F32, F16, BF16, Q8_0. */
bool dk_ggml_type_supported(uint32_t type);

float dk_fp16_to_f32(uint16_t h);
float dk_bf16_to_f32(uint16_t h);
uint16_t dk_f32_to_fp16(float f); /* round to nearest even */

/* Converts n elements (n a multiple of the type's block size) from src to dst. src may be unaligned. */
void dk_dequantize(uint32_t type, const void *src, float *dst, size_t n);

#endif
