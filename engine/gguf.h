/* gguf.h — standalone reader for GGUF v2/v3 files (the llama.cpp model format).
 *
 * The file is mmapped read-only; every string, array and tensor pointer handed out points into
 * the mapping and stays valid until dk_gguf_close(). dk_gguf_open() validates the whole header
 * (magic, version, counts vs file size, string lengths, value types, tensor dims/types, offsets,
 * alignment, data within the file) and fails with one line naming the file and the problem.
 * Strings in GGUF are length-prefixed and NOT NUL-terminated: always use the returned length. */
#ifndef DK_GGUF_H
#define DK_GGUF_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dk_common.h"

typedef enum {
    DK_GGUF_TYPE_UINT8 = 0,
    DK_GGUF_TYPE_INT8 = 1,
    DK_GGUF_TYPE_UINT16 = 2,
    DK_GGUF_TYPE_INT16 = 3,
    DK_GGUF_TYPE_UINT32 = 4,
    DK_GGUF_TYPE_INT32 = 5,
    DK_GGUF_TYPE_FLOAT32 = 6,
    DK_GGUF_TYPE_BOOL = 7,
    DK_GGUF_TYPE_STRING = 8,
    DK_GGUF_TYPE_ARRAY = 9,
    DK_GGUF_TYPE_UINT64 = 10,
    DK_GGUF_TYPE_INT64 = 11,
    DK_GGUF_TYPE_FLOAT64 = 12,
    DK_GGUF_TYPE_COUNT
} dk_gguf_type;

#define DK_GGUF_MAX_DIMS 4
#define DK_GGUF_DEFAULT_ALIGNMENT 32

typedef struct {
    const char *name;              /* NUL-terminated copy */
    uint32_t n_dims;               /* 1..4 */
    uint64_t ne[DK_GGUF_MAX_DIMS]; /* elements per dim, ne[0] fastest (row length); unused dims = 1 */
    uint32_t type;                 /* dk_ggml_type id */
    uint64_t offset;               /* bytes from the start of the data section */
    uint64_t n_elems;              /* product of ne */
    size_t nbytes;                 /* bytes of data */
    const void *data;              /* into the mapping; aligned to the file's alignment */
} dk_gguf_tensor;

typedef struct dk_gguf dk_gguf;

dk_status dk_gguf_open(const char *path, dk_gguf **out, dk_err *e);
void dk_gguf_close(dk_gguf *g);

const char *dk_gguf_path(const dk_gguf *g);
uint32_t dk_gguf_version(const dk_gguf *g);
uint32_t dk_gguf_alignment(const dk_gguf *g);
size_t dk_gguf_file_size(const dk_gguf *g);

/* ---- metadata ---- */
int64_t dk_gguf_n_kv(const dk_gguf *g);
int64_t dk_gguf_find_key(const dk_gguf *g, const char *key); /* index or -1 */
const char *dk_gguf_key(const dk_gguf *g, int64_t i);        /* NUL-terminated copy */
dk_gguf_type dk_gguf_kv_type(const dk_gguf *g, int64_t i);
const char *dk_gguf_type_name(dk_gguf_type t);

/* Typed getters by key. Integers convert between integer types when the value fits; floats
 * accept FLOAT32/FLOAT64. Absent key -> DK_ERR_FORMAT "missing key"; wrong type -> DK_ERR_FORMAT. */
dk_status dk_gguf_get_u32(const dk_gguf *g, const char *key, uint32_t *v, dk_err *e);
dk_status dk_gguf_get_i64(const dk_gguf *g, const char *key, int64_t *v, dk_err *e);
dk_status dk_gguf_get_f32(const dk_gguf *g, const char *key, float *v, dk_err *e);
dk_status dk_gguf_get_bool(const dk_gguf *g, const char *key, bool *v, dk_err *e);
dk_status dk_gguf_get_str(const dk_gguf *g, const char *key, const char **s, size_t *len, dk_err *e);
/* Arrays: element type and count. Numeric data is copied out converted (may be unaligned in the
 * file): f32 from FLOAT32/FLOAT64, i32 from any integer type that fits. */
dk_status dk_gguf_get_arr_info(const dk_gguf *g, const char *key, dk_gguf_type *elem, uint64_t *n, dk_err *e);
dk_status dk_gguf_get_arr_f32(const dk_gguf *g, const char *key, float *dst, uint64_t n, dk_err *e);
dk_status dk_gguf_get_arr_i32(const dk_gguf *g, const char *key, int32_t *dst, uint64_t n, dk_err *e);
/* String array: pointers into the mapping (not NUL-terminated) and lengths, valid until close. */
dk_status dk_gguf_get_arr_str(const dk_gguf *g, const char *key, const char *const **strs,
                              const uint32_t **lens, uint64_t *n, dk_err *e);

/* ---- tensors ---- */
int64_t dk_gguf_n_tensors(const dk_gguf *g);
const dk_gguf_tensor *dk_gguf_tensor_at(const dk_gguf *g, int64_t i);
const dk_gguf_tensor *dk_gguf_find_tensor(const dk_gguf *g, const char *name); /* NULL if absent */

#endif
