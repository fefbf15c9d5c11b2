/* gguf.c — GGUF v2/v3 reader with full header validation (see gguf.h). */
#include "gguf.h"
#include "quant.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- data structures ---- */

typedef struct {
    char *key; /* NUL-terminated copy */
    dk_gguf_type type;
    union {
        uint64_t u;
        int64_t i;
        double f;
        bool b;
    } scalar;
    const char *str;
    uint64_t str_len; /* STRING */
    dk_gguf_type elem;
    uint64_t n;         /* ARRAY */
    const uint8_t *arr; /* ARRAY: first element in the mapping */
    const char **strs;
    uint32_t *lens; /* ARRAY of STRING: per-element views */
} dk_gguf_kv;

struct dk_gguf {
    char *path;
    const uint8_t *map; /* whole file */
    size_t size;
    uint32_t version, alignment;
    int64_t n_kv, n_tensors;
    dk_gguf_kv *kv;          /* (n_kv) */
    dk_gguf_tensor *tensors; /* (n_tensors) */
    size_t data_offset;      /* start of the tensor data section in the file */
};

typedef struct {
    const dk_gguf *g;
    size_t pos;
    dk_err *e;
} dk_cursor;

/* One scalar as stored: GGUF is little-endian and read in place (the host's order). */
typedef union {
    uint8_t u8;
    int8_t i8;
    uint16_t u16;
    int16_t i16;
    uint32_t u32;
    int32_t i32;
    float f32;
    uint64_t u64;
    int64_t i64;
    double f64;
} dk_gguf_raw;

static const size_t dk_gguf_type_size[DK_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *dk_gguf_type_name(dk_gguf_type t) {
    static const char *const n[] = {"uint8", "int8",   "uint16", "int16",  "uint32", "int32",  "float32",
                                    "bool",  "string", "array",  "uint64", "int64",  "float64"};
    return (unsigned)t < DK_GGUF_TYPE_COUNT ? n[t] : "invalid";
}

/* ---- bounded reads ---- */

static dk_status dk_rd(dk_cursor *c, void *dst, size_t n, const char *what) {
    if (n > c->g->size || c->pos > c->g->size - n)
        return dk_fail(c->e, DK_ERR_FORMAT,
                       "%s: truncated header: %s at byte %zu needs %zu bytes, file has %zu", c->g->path, what,
                       c->pos, n, c->g->size);
    memcpy(dst, c->g->map + c->pos, n);
    c->pos += n;
    return DK_OK;
}

static dk_status dk_rd_str(dk_cursor *c, const char **s, uint64_t *len, const char *what) {
    dk_status st = dk_rd(c, len, 8, what);
    if (st) return st;
    if (*len > c->g->size - c->pos)
        return dk_fail(c->e, DK_ERR_FORMAT,
                       "%s: %s: string length %llu at byte %zu runs past the end of the file (%zu bytes)",
                       c->g->path, what, (unsigned long long)*len, c->pos - 8, c->g->size);
    *s = (const char *)c->g->map + c->pos;
    c->pos += *len;
    return DK_OK;
}

static char *dk_strndup0(const char *s, uint64_t n) {
    char *r = malloc(n + 1);
    if (r) {
        memcpy(r, s, n);
        r[n] = 0;
    }
    return r;
}

/* ---- parsing ---- */

static dk_status dk_parse_value(dk_cursor *c, dk_gguf_kv *kv) {
    dk_status st;
    const char *k = kv->key;
    if ((unsigned)kv->type >= DK_GGUF_TYPE_COUNT)
        return dk_fail(c->e, DK_ERR_FORMAT, "%s: key '%s' has unknown value type %u", c->g->path, k,
                       (unsigned)kv->type);
    if (kv->type == DK_GGUF_TYPE_STRING) return dk_rd_str(c, &kv->str, &kv->str_len, k);
    if (kv->type != DK_GGUF_TYPE_ARRAY) {
        dk_gguf_raw v = {0};
        if ((st = dk_rd(c, &v, dk_gguf_type_size[kv->type], k))) return st;
        switch (kv->type) {
        case DK_GGUF_TYPE_UINT8: kv->scalar.u = v.u8; break;
        case DK_GGUF_TYPE_INT8: kv->scalar.i = v.i8; break;
        case DK_GGUF_TYPE_UINT16: kv->scalar.u = v.u16; break;
        case DK_GGUF_TYPE_INT16: kv->scalar.i = v.i16; break;
        case DK_GGUF_TYPE_UINT32: kv->scalar.u = v.u32; break;
        case DK_GGUF_TYPE_INT32: kv->scalar.i = v.i32; break;
        case DK_GGUF_TYPE_FLOAT32: kv->scalar.f = v.f32; break;
        case DK_GGUF_TYPE_BOOL:
            if (v.u8 > 1)
                return dk_fail(c->e, DK_ERR_FORMAT, "%s: key '%s': bool value %u is not 0 or 1", c->g->path,
                               k, v.u8);
            kv->scalar.b = v.u8;
            break;
        case DK_GGUF_TYPE_UINT64: kv->scalar.u = v.u64; break;
        case DK_GGUF_TYPE_INT64: kv->scalar.i = v.i64; break;
        case DK_GGUF_TYPE_FLOAT64: kv->scalar.f = v.f64; break;
        default: break;
        }
        return DK_OK;
    }
    uint32_t et;
    if ((st = dk_rd(c, &et, 4, k))) return st;
    if ((st = dk_rd(c, &kv->n, 8, k))) return st;
    kv->elem = (dk_gguf_type)et;
    if (et >= DK_GGUF_TYPE_COUNT || et == DK_GGUF_TYPE_ARRAY)
        return dk_fail(c->e, DK_ERR_FORMAT, "%s: key '%s': unsupported array element type %u", c->g->path, k,
                       et);
    kv->arr = c->g->map + c->pos;
    size_t left = c->g->size - c->pos;
    if (et != DK_GGUF_TYPE_STRING) {
        size_t es = dk_gguf_type_size[et];
        if (kv->n > left / es)
            return dk_fail(c->e, DK_ERR_FORMAT,
                           "%s: key '%s': array of %llu %s runs past the end of the file", c->g->path, k,
                           (unsigned long long)kv->n, dk_gguf_type_name(kv->elem));
        c->pos += kv->n * es;
        return DK_OK;
    }
    if (kv->n > left / 8) /* every string needs at least its 8-byte length */
        return dk_fail(c->e, DK_ERR_FORMAT,
                       "%s: key '%s': absurd string array count %llu for a %zu-byte file", c->g->path, k,
                       (unsigned long long)kv->n, c->g->size);
    kv->strs = malloc((kv->n ? kv->n : 1) * sizeof *kv->strs);
    kv->lens = malloc((kv->n ? kv->n : 1) * sizeof *kv->lens);
    if (!kv->strs || !kv->lens)
        return dk_fail(c->e, DK_ERR_NOMEM, "%s: out of memory reading '%s'", c->g->path, k);
    for (uint64_t i = 0; i < kv->n; i++) {
        uint64_t len;
        if ((st = dk_rd_str(c, &kv->strs[i], &len, k))) return st;
        if (len > UINT32_MAX)
            return dk_fail(c->e, DK_ERR_FORMAT, "%s: key '%s': string %llu too long", c->g->path, k,
                           (unsigned long long)i);
        kv->lens[i] = (uint32_t)len;
    }
    return DK_OK;
}

/* Magic, version and the two counts; allocates the kv and tensor-info arrays. */
static dk_status dk_gguf_parse_header(dk_gguf *g, dk_cursor *c) {
    dk_err *e = c->e;
    dk_status st;
    char magic[4];
    if (g->size < 4)
        return dk_fail(e, DK_ERR_FORMAT,
                       "%s: truncated header: file is %zu bytes, too short for the GGUF magic", g->path,
                       g->size);
    if ((st = dk_rd(c, magic, 4, "magic"))) return st;
    if (memcmp(magic, "GGUF", 4) != 0)
        return dk_fail(e, DK_ERR_FORMAT,
                       "%s: bad magic %02x %02x %02x %02x, not a GGUF file (expected 'GGUF')", g->path,
                       (unsigned char)magic[0], (unsigned char)magic[1], (unsigned char)magic[2],
                       (unsigned char)magic[3]);
    if ((st = dk_rd(c, &g->version, 4, "version"))) return st;
    if (g->version != 2 && g->version != 3)
        return dk_fail(e, DK_ERR_UNSUPPORTED, "%s: unsupported GGUF version %u (supported: 2, 3)", g->path,
                       g->version);
    uint64_t nt, nkv;
    if ((st = dk_rd(c, &nt, 8, "tensor count"))) return st;
    if ((st = dk_rd(c, &nkv, 8, "metadata count"))) return st;
    /* a key-value pair takes at least 8+1+4+1 bytes, a tensor info at least 8+1+4+8+4+8 */
    if (nkv > g->size / 14)
        return dk_fail(
            e, DK_ERR_FORMAT,
            "%s: metadata count %llu cannot fit in a %zu-byte file (absurd count or truncated header)",
            g->path, (unsigned long long)nkv, g->size);
    if (nt > g->size / 33)
        return dk_fail(
            e, DK_ERR_FORMAT,
            "%s: tensor count %llu cannot fit in a %zu-byte file (absurd count or truncated header)", g->path,
            (unsigned long long)nt, g->size);
    g->n_kv = (int64_t)nkv;
    g->n_tensors = (int64_t)nt;
    g->kv = calloc(nkv ? nkv : 1, sizeof *g->kv);
    g->tensors = calloc(nt ? nt : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors) return dk_fail(e, DK_ERR_NOMEM, "%s: out of memory", g->path);
    return DK_OK;
}

/* The metadata key-value pairs (general.alignment checked and taken). */
static dk_status dk_gguf_parse_kvs(dk_gguf *g, dk_cursor *c) {
    dk_err *e = c->e;
    dk_status st;
    g->alignment = DK_GGUF_DEFAULT_ALIGNMENT;
    for (int64_t i = 0; i < g->n_kv; i++) {
        dk_gguf_kv *kv = &g->kv[i];
        const char *ks;
        uint64_t kl;
        uint32_t t;
        if ((st = dk_rd_str(c, &ks, &kl, "metadata key"))) return st;
        if (!(kv->key = dk_strndup0(ks, kl))) return dk_fail(e, DK_ERR_NOMEM, "%s: out of memory", g->path);
        if ((st = dk_rd(c, &t, 4, kv->key))) return st;
        kv->type = (dk_gguf_type)t;
        if ((st = dk_parse_value(c, kv))) return st;
        for (int64_t j = 0; j < i; j++)
            if (!strcmp(g->kv[j].key, kv->key))
                return dk_fail(e, DK_ERR_FORMAT, "%s: duplicate metadata key '%s'", g->path, kv->key);
        if (!strcmp(kv->key, "general.alignment")) {
            if (kv->type != DK_GGUF_TYPE_UINT32 && kv->type != DK_GGUF_TYPE_UINT64 &&
                kv->type != DK_GGUF_TYPE_INT32)
                return dk_fail(e, DK_ERR_FORMAT, "%s: general.alignment has type %s, expected uint32",
                               g->path, dk_gguf_type_name(kv->type));
            uint64_t a = kv->scalar.u;
            if (a == 0 || (a & (a - 1)) || a > 1u << 20)
                return dk_fail(e, DK_ERR_FORMAT, "%s: general.alignment %llu is not a power of two <= 1 MiB",
                               g->path, (unsigned long long)a);
            g->alignment = (uint32_t)a;
        }
    }
    return DK_OK;
}

/* The tensor infos: names, dims, types, offsets, byte sizes. */
static dk_status dk_gguf_parse_tensor_infos(dk_gguf *g, dk_cursor *c) {
    dk_err *e = c->e;
    dk_status st;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        dk_gguf_tensor *t = &g->tensors[i];
        const char *ns;
        uint64_t nl;
        if ((st = dk_rd_str(c, &ns, &nl, "tensor name"))) return st;
        if (!(t->name = dk_strndup0(ns, nl))) return dk_fail(e, DK_ERR_NOMEM, "%s: out of memory", g->path);
        if ((st = dk_rd(c, &t->n_dims, 4, t->name))) return st;
        if (t->n_dims == 0 || t->n_dims > DK_GGUF_MAX_DIMS)
            return dk_fail(e, DK_ERR_FORMAT, "%s: tensor '%s' has %u dims (1..%d allowed)", g->path, t->name,
                           t->n_dims, DK_GGUF_MAX_DIMS);
        t->n_elems = 1;
        for (int d = 0; d < DK_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            if ((st = dk_rd(c, &t->ne[d], 8, t->name))) return st;
            if (t->ne[d] == 0 || t->ne[d] > ((uint64_t)1 << 40) ||
                t->n_elems > ((uint64_t)1 << 42) / t->ne[d])
                return dk_fail(e, DK_ERR_FORMAT, "%s: tensor '%s': absurd dimension %u = %llu", g->path,
                               t->name, d, (unsigned long long)t->ne[d]);
            t->n_elems *= t->ne[d];
        }
        if ((st = dk_rd(c, &t->type, 4, t->name))) return st;
        if ((st = dk_rd(c, &t->offset, 8, t->name))) return st;
        uint32_t be, bb;
        if (t->type >= DK_GGML_TYPE_INTERNAL || !dk_ggml_type_block(t->type, &be, &bb))
            return dk_fail(e, DK_ERR_UNSUPPORTED, "%s: tensor '%s' has unknown type %u", g->path, t->name,
                           t->type);
        if (t->ne[0] % be)
            return dk_fail(e, DK_ERR_FORMAT,
                           "%s: tensor '%s': row length %llu is not a multiple of the %s block size %u",
                           g->path, t->name, (unsigned long long)t->ne[0], dk_ggml_type_name(t->type), be);
        t->nbytes = (size_t)(t->n_elems / be * bb);
        for (int64_t j = 0; j < i; j++)
            if (!strcmp(g->tensors[j].name, t->name))
                return dk_fail(e, DK_ERR_FORMAT, "%s: duplicate tensor name '%s'", g->path, t->name);
    }
    return DK_OK;
}

/* Aligns the data section and points each tensor at its bytes, checking they fit the file. */
static dk_status dk_gguf_place_tensors(dk_gguf *g, dk_cursor *c) {
    dk_err *e = c->e;
    size_t a = g->alignment;
    g->data_offset = (c->pos + a - 1) / a * a;
    if (g->n_tensors > 0 && g->data_offset > g->size)
        return dk_fail(e, DK_ERR_FORMAT,
                       "%s: truncated: tensor data section would start at byte %zu, file has %zu", g->path,
                       g->data_offset, g->size);
    for (int64_t i = 0; i < g->n_tensors; i++) {
        dk_gguf_tensor *t = &g->tensors[i];
        if (t->offset % a)
            return dk_fail(e, DK_ERR_FORMAT,
                           "%s: tensor '%s': offset %llu is not a multiple of the alignment %zu", g->path,
                           t->name, (unsigned long long)t->offset, a);
        size_t room = g->size - g->data_offset;
        if (t->offset > room || t->nbytes > room - t->offset)
            return dk_fail(e, DK_ERR_FORMAT,
                           "%s: tensor '%s' (%zu bytes at data offset %llu) extends past the end of the file "
                           "(%zu bytes)",
                           g->path, t->name, t->nbytes, (unsigned long long)t->offset, g->size);
        t->data = g->map + g->data_offset + t->offset;
    }
    return DK_OK;
}

static dk_status dk_gguf_parse(dk_gguf *g, dk_err *e) {
    dk_cursor cur = {g, 0, e}, *c = &cur;
    dk_status st;
    if ((st = dk_gguf_parse_header(g, c))) return st;
    if ((st = dk_gguf_parse_kvs(g, c))) return st;
    if ((st = dk_gguf_parse_tensor_infos(g, c))) return st;
    return dk_gguf_place_tensors(g, c);
}

/* ---- open/close ---- */

dk_status dk_gguf_open(const char *path, dk_gguf **out, dk_err *e) {
    *out = NULL;
    dk_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(path))) {
        free(g);
        return dk_fail(e, DK_ERR_NOMEM, "%s: out of memory", path);
    }
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        dk_status s = dk_fail(e, DK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        dk_gguf_close(g);
        return s;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        dk_gguf_close(g);
        return dk_fail(e, DK_ERR_IO, "%s: not a regular file", path);
    }
    g->size = (size_t)sb.st_size;
    if (g->size > 0) {
        void *m = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            dk_status s = dk_fail(e, DK_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
            close(fd);
            dk_gguf_close(g);
            return s;
        }
        g->map = m;
    }
    close(fd);
    dk_status st = dk_gguf_parse(g, e);
    if (st) {
        dk_gguf_close(g);
        return st;
    }
    *out = g;
    return DK_OK;
}

void dk_gguf_close(dk_gguf *g) {
    if (!g) return;
    if (g->kv)
        for (int64_t i = 0; i < g->n_kv; i++) {
            free(g->kv[i].key);
            free(g->kv[i].strs);
            free(g->kv[i].lens);
        }
    if (g->tensors)
        for (int64_t i = 0; i < g->n_tensors; i++) free((char *)g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    if (g->map) munmap((void *)g->map, g->size);
    free(g->path);
    free(g);
}

/* ---- accessors ---- */

const char *dk_gguf_path(const dk_gguf *g) { return g->path; }
uint32_t dk_gguf_version(const dk_gguf *g) { return g->version; }
uint32_t dk_gguf_alignment(const dk_gguf *g) { return g->alignment; }
size_t dk_gguf_file_size(const dk_gguf *g) { return g->size; }
int64_t dk_gguf_n_kv(const dk_gguf *g) { return g->n_kv; }
int64_t dk_gguf_n_tensors(const dk_gguf *g) { return g->n_tensors; }
const char *dk_gguf_key(const dk_gguf *g, int64_t i) { return (i >= 0 && i < g->n_kv) ? g->kv[i].key : NULL; }
dk_gguf_type dk_gguf_kv_type(const dk_gguf *g, int64_t i) {
    return (i >= 0 && i < g->n_kv) ? g->kv[i].type : DK_GGUF_TYPE_COUNT;
}
const dk_gguf_tensor *dk_gguf_tensor_at(const dk_gguf *g, int64_t i) {
    return (i >= 0 && i < g->n_tensors) ? &g->tensors[i] : NULL;
}

int64_t dk_gguf_find_key(const dk_gguf *g, const char *key) {
    for (int64_t i = 0; i < g->n_kv; i++)
        if (!strcmp(g->kv[i].key, key)) return i;
    return -1;
}

const dk_gguf_tensor *dk_gguf_find_tensor(const dk_gguf *g, const char *name) {
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (!strcmp(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

static const dk_gguf_kv *dk_kv_get(const dk_gguf *g, const char *key, dk_err *e) {
    int64_t i = dk_gguf_find_key(g, key);
    if (i < 0) {
        dk_fail(e, DK_ERR_FORMAT, "%s: missing key '%s'", g->path, key);
        return NULL;
    }
    return &g->kv[i];
}

/* Key `key` holding a value of type t, or NULL (e set: missing, or another type). */
static const dk_gguf_kv *dk_kv_get_as(const dk_gguf *g, const char *key, dk_gguf_type t, dk_err *e) {
    const dk_gguf_kv *kv = dk_kv_get(g, key, e);
    if (kv && kv->type != t) {
        dk_fail(e, DK_ERR_FORMAT, "%s: key '%s' has type %s, expected %s", g->path, key,
                dk_gguf_type_name(kv->type), dk_gguf_type_name(t));
        return NULL;
    }
    return kv;
}

static bool dk_type_is_int(dk_gguf_type t) {
    return t <= DK_GGUF_TYPE_INT32 || t == DK_GGUF_TYPE_UINT64 || t == DK_GGUF_TYPE_INT64;
}
static bool dk_type_is_signed(dk_gguf_type t) {
    return t == DK_GGUF_TYPE_INT8 || t == DK_GGUF_TYPE_INT16 || t == DK_GGUF_TYPE_INT32 ||
           t == DK_GGUF_TYPE_INT64;
}

dk_status dk_gguf_get_i64(const dk_gguf *g, const char *key, int64_t *v, dk_err *e) {
    const dk_gguf_kv *kv = dk_kv_get(g, key, e);
    if (!kv) return DK_ERR_FORMAT;
    if (!dk_type_is_int(kv->type))
        return dk_fail(e, DK_ERR_FORMAT, "%s: key '%s' has type %s, expected an integer", g->path, key,
                       dk_gguf_type_name(kv->type));
    if (!dk_type_is_signed(kv->type) && kv->scalar.u > INT64_MAX)
        return dk_fail(e, DK_ERR_FORMAT, "%s: key '%s' value %llu out of range", g->path, key,
                       (unsigned long long)kv->scalar.u);
    *v = dk_type_is_signed(kv->type) ? kv->scalar.i : (int64_t)kv->scalar.u;
    return DK_OK;
}

dk_status dk_gguf_get_u32(const dk_gguf *g, const char *key, uint32_t *v, dk_err *e) {
    int64_t x;
    dk_status st = dk_gguf_get_i64(g, key, &x, e);
    if (st) return st;
    if (x < 0 || x > (int64_t)UINT32_MAX)
        return dk_fail(e, DK_ERR_FORMAT, "%s: key '%s' value %lld out of range", g->path, key, (long long)x);
    *v = (uint32_t)x;
    return DK_OK;
}

dk_status dk_gguf_get_f32(const dk_gguf *g, const char *key, float *v, dk_err *e) {
    const dk_gguf_kv *kv = dk_kv_get(g, key, e);
    if (!kv) return DK_ERR_FORMAT;
    if (kv->type != DK_GGUF_TYPE_FLOAT32 && kv->type != DK_GGUF_TYPE_FLOAT64)
        return dk_fail(e, DK_ERR_FORMAT, "%s: key '%s' has type %s, expected float32", g->path, key,
                       dk_gguf_type_name(kv->type));
    *v = (float)kv->scalar.f;
    return DK_OK;
}

dk_status dk_gguf_get_bool(const dk_gguf *g, const char *key, bool *v, dk_err *e) {
    const dk_gguf_kv *kv = dk_kv_get_as(g, key, DK_GGUF_TYPE_BOOL, e);
    if (!kv) return DK_ERR_FORMAT;
    *v = kv->scalar.b;
    return DK_OK;
}

dk_status dk_gguf_get_str(const dk_gguf *g, const char *key, const char **s, size_t *len, dk_err *e) {
    const dk_gguf_kv *kv = dk_kv_get_as(g, key, DK_GGUF_TYPE_STRING, e);
    if (!kv) return DK_ERR_FORMAT;
    *s = kv->str;
    *len = (size_t)kv->str_len;
    return DK_OK;
}

/* Array key `key` of n elements, or NULL (e set). */
static const dk_gguf_kv *dk_arr_get_n(const dk_gguf *g, const char *key, uint64_t n, dk_err *e) {
    const dk_gguf_kv *kv = dk_kv_get_as(g, key, DK_GGUF_TYPE_ARRAY, e);
    if (kv && kv->n != n) {
        dk_fail(e, DK_ERR_FORMAT, "%s: key '%s' has %llu elements, expected %llu", g->path, key,
                (unsigned long long)kv->n, (unsigned long long)n);
        return NULL;
    }
    return kv;
}

dk_status dk_gguf_get_arr_info(const dk_gguf *g, const char *key, dk_gguf_type *elem, uint64_t *n,
                               dk_err *e) {
    const dk_gguf_kv *kv = dk_kv_get_as(g, key, DK_GGUF_TYPE_ARRAY, e);
    if (!kv) return DK_ERR_FORMAT;
    *elem = kv->elem;
    *n = kv->n;
    return DK_OK;
}

dk_status dk_gguf_get_arr_f32(const dk_gguf *g, const char *key, float *dst, uint64_t n, dk_err *e) {
    const dk_gguf_kv *kv = dk_arr_get_n(g, key, n, e);
    if (!kv) return DK_ERR_FORMAT;
    if (kv->elem == DK_GGUF_TYPE_FLOAT32) {
        memcpy(dst, kv->arr, n * 4);
        return DK_OK;
    }
    if (kv->elem == DK_GGUF_TYPE_FLOAT64) {
        for (uint64_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, kv->arr + 8 * i, 8);
            dst[i] = (float)d;
        }
        return DK_OK;
    }
    return dk_fail(e, DK_ERR_FORMAT, "%s: key '%s' is an array of %s, expected float32", g->path, key,
                   dk_gguf_type_name(kv->elem));
}

dk_status dk_gguf_get_arr_i32(const dk_gguf *g, const char *key, int32_t *dst, uint64_t n, dk_err *e) {
    const dk_gguf_kv *kv = dk_arr_get_n(g, key, n, e);
    if (!kv) return DK_ERR_FORMAT;
    if (!dk_type_is_int(kv->elem))
        return dk_fail(e, DK_ERR_FORMAT, "%s: key '%s' is an array of %s, expected integers", g->path, key,
                       dk_gguf_type_name(kv->elem));
    size_t es = dk_gguf_type_size[kv->elem];
    for (uint64_t i = 0; i < n; i++) {
        dk_gguf_raw x = {0};
        memcpy(&x, kv->arr + es * i, es);
        int64_t v = 0;
        switch (kv->elem) {
        case DK_GGUF_TYPE_UINT8: v = x.u8; break;
        case DK_GGUF_TYPE_INT8: v = x.i8; break;
        case DK_GGUF_TYPE_UINT16: v = x.u16; break;
        case DK_GGUF_TYPE_INT16: v = x.i16; break;
        case DK_GGUF_TYPE_UINT32: v = x.u32; break;
        case DK_GGUF_TYPE_INT32: v = x.i32; break;
        case DK_GGUF_TYPE_UINT64: v = x.u64 > INT64_MAX ? INT64_MAX : (int64_t)x.u64; break;
        case DK_GGUF_TYPE_INT64: v = x.i64; break;
        default: break;
        }
        if (v < INT32_MIN || v > INT32_MAX)
            return dk_fail(e, DK_ERR_FORMAT, "%s: key '%s'[%llu] = %lld out of int32 range", g->path, key,
                           (unsigned long long)i, (long long)v);
        dst[i] = (int32_t)v;
    }
    return DK_OK;
}

dk_status dk_gguf_get_arr_str(const dk_gguf *g, const char *key, const char *const **strs,
                              const uint32_t **lens, uint64_t *n, dk_err *e) {
    const dk_gguf_kv *kv = dk_kv_get_as(g, key, DK_GGUF_TYPE_ARRAY, e);
    if (!kv) return DK_ERR_FORMAT;
    if (kv->elem != DK_GGUF_TYPE_STRING)
        return dk_fail(e, DK_ERR_FORMAT, "%s: key '%s' is an array of %s, expected strings", g->path, key,
                       dk_gguf_type_name(kv->elem));
    *strs = (const char *const *)kv->strs;
    *lens = kv->lens;
    *n = kv->n;
    return DK_OK;
}
