/* gguf.c — fuzz target "gguf": dk_gguf_open on the bytes, then every key through the typed
 * getter of its type (and one of another type: a clean error), every array copied out, every
 * tensor's first and last data byte read. Seeds: the GGUF models of tests/data. */
#include "fuzz.h"
#include "gguf.h"

#include <stdbool.h>
#include <stdlib.h>

static void get_array(const dk_gguf *g, const char *key) {
    dk_err e = {{0}};
    dk_gguf_type et;
    uint64_t n;
    dk_status st = dk_gguf_get_arr_info(g, key, &et, &n, &e);
    dk_fuzz_check_err("gguf", st, &e);
    if (st != DK_OK) return;
    /* the reader checked n elements against the file size: an allocation of n is bounded */
    dk_fuzz_assert(n <= dk_gguf_file_size(g), "gguf", "array count larger than the file");
    if (et == DK_GGUF_TYPE_STRING) {
        const char *const *strs;
        const uint32_t *lens;
        uint64_t m;
        st = dk_gguf_get_arr_str(g, key, &strs, &lens, &m, &e);
        dk_fuzz_check_err("gguf", st, &e);
        volatile char sink = 0;
        if (st == DK_OK)
            for (uint64_t i = 0; i < m; i++)
                if (lens[i]) sink ^= strs[i][0] ^ strs[i][lens[i] - 1];
        (void)sink;
        return;
    }
    float *f = malloc((n ? n : 1) * sizeof *f);
    int32_t *v = malloc((n ? n : 1) * sizeof *v);
    dk_fuzz_assert(f && v, "gguf", "out of memory");
    dk_fuzz_check_err("gguf", dk_gguf_get_arr_f32(g, key, f, n, &e), &e);
    dk_fuzz_check_err("gguf", dk_gguf_get_arr_i32(g, key, v, n, &e), &e);
    free(f);
    free(v);
}

int dk_fuzz_gguf(const uint8_t *data, size_t size) {
    dk_gguf *g = NULL;
    dk_err e = {{0}};
    dk_status st = dk_gguf_open(dk_fuzz_file(data, size), &g, &e);
    dk_fuzz_check_err("gguf", st, &e);
    if (st != DK_OK) return 0;
    for (int64_t i = 0; i < dk_gguf_n_kv(g); i++) {
        const char *key = dk_gguf_key(g, i);
        dk_fuzz_assert(key != NULL, "gguf", "key index in range returns NULL");
        dk_fuzz_assert(dk_gguf_find_key(g, key) >= 0, "gguf", "key not found by its own name");
        (void)dk_gguf_type_name(dk_gguf_kv_type(g, i));
        uint32_t u32;
        int64_t i64;
        float f32;
        bool b;
        const char *s;
        size_t len;
        dk_fuzz_check_err("gguf", dk_gguf_get_u32(g, key, &u32, &e), &e);
        dk_fuzz_check_err("gguf", dk_gguf_get_i64(g, key, &i64, &e), &e);
        dk_fuzz_check_err("gguf", dk_gguf_get_f32(g, key, &f32, &e), &e);
        dk_fuzz_check_err("gguf", dk_gguf_get_bool(g, key, &b, &e), &e);
        st = dk_gguf_get_str(g, key, &s, &len, &e);
        dk_fuzz_check_err("gguf", st, &e);
        if (st == DK_OK && len) {
            volatile char c = s[0] ^ s[len - 1];
            (void)c;
        }
        if (dk_gguf_kv_type(g, i) == DK_GGUF_TYPE_ARRAY) get_array(g, key);
    }
    for (int64_t i = 0; i < dk_gguf_n_tensors(g); i++) {
        const dk_gguf_tensor *t = dk_gguf_tensor_at(g, i);
        dk_fuzz_assert(t && dk_gguf_find_tensor(g, t->name), "gguf", "tensor not found by its own name");
        dk_fuzz_assert(t->n_dims >= 1 && t->n_dims <= DK_GGUF_MAX_DIMS, "gguf", "n_dims out of range");
        dk_fuzz_assert(t->nbytes <= dk_gguf_file_size(g), "gguf", "tensor larger than the file");
        if (t->nbytes) {
            const volatile uint8_t *p = t->data;
            uint8_t c = p[0] ^ p[t->nbytes - 1];
            (void)c;
        }
    }
    dk_gguf_close(g);
    return 0;
}
