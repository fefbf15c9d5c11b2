/* memory.c — fuzz target "memory": what `dashkit info --memory` reads. dk_memory_read_gguf on
 * the bytes (hyper-parameters and tensor byte counts from the GGUF header alone, range-checked by
 * the same reader dk_model_load uses), then dk_memory_estimate_fill at several context lengths,
 * prefill chunk sizes and probe counts. Checked: every part is >= 0, the total is their sum,
 * more context never needs less memory, and the tensor bytes never exceed the f32 expansion by
 * more than a quantized block's overhead allows (bytes <= 4.25 per element: Q8_0's 34/32 ... F32's 4).
 * Seeds: the small GGUF models of tests/data (fuzz/seeds.sh). */
#include "fuzz.h"
#include "memory.h"

#include <limits.h>

static void check_estimate(const dk_memory_estimate *m) {
    dk_fuzz_assert(m->weights_bytes >= 0 && m->weights_f32_bytes >= 0 && m->kv_bytes >= 0 &&
                       m->scratch_ctx_bytes >= 0 && m->scratch_chunk_bytes >= 0 && m->convert_bytes >= 0,
                   "memory", "negative part in the estimate");
    dk_fuzz_assert(m->scratch_bytes == m->scratch_ctx_bytes + m->scratch_chunk_bytes + m->convert_bytes,
                   "memory", "scratch is not the sum of its parts");
    dk_fuzz_assert(m->total_bytes == m->weights_bytes + m->kv_bytes + m->scratch_bytes, "memory",
                   "total is not weights + kv + scratch");
}

int dk_fuzz_memory(const uint8_t *data, size_t size) {
    dk_model_config cfg;
    int64_t wb = 0, wf = 0;
    char type[16];
    dk_err e = {{0}};
    dk_status st = dk_memory_read_gguf(dk_fuzz_file(data, size), &cfg, &wb, &wf, type, &e);
    dk_fuzz_check_err("memory", st, &e);
    if (st != DK_OK) return 0;
    dk_fuzz_assert(wb >= 0 && wf >= 0, "memory", "negative tensor bytes");
    dk_fuzz_assert(wb / 17 <= wf / 16 + 1, "memory", "tensor bytes exceed 4.25 per f32 element");
    static const int ctxs[] = {1, 512, 4096, 131072, 1 << 20};
    int64_t prev = -1;
    for (size_t i = 0; i < sizeof ctxs / sizeof ctxs[0]; i++) {
        dk_memory_estimate m;
        dk_memory_estimate_fill(&cfg, wb, wf, ctxs[i], 0, &m);
        check_estimate(&m);
        dk_fuzz_assert(m.total_bytes >= prev, "memory", "more context needs less memory");
        prev = m.total_bytes;
        dk_memory_estimate_fill(&cfg, wb, wf, ctxs[i], 1, &m);
        check_estimate(&m);
        dk_fuzz_assert(dk_memory_probe_bytes(&cfg, 64, ctxs[i]) >= 0, "memory", "negative probe bytes");
    }
    return 0;
}
