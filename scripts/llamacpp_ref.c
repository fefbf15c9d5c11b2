/* llamacpp_ref.c — llama.cpp itself as the reference for dashkit's quantised types.
 *
 * Linked against the libllama/libggml that node-llama-cpp ships (scripts/make_quant_goldens.sh
 * builds it; never part of `make`/`make test`). Commands:
 *
 *   llamacpp_ref quantize IN.gguf OUT.gguf FTYPE [REGEX=TYPE ...]
 *       llama_model_quantize (the code path of llama-quantize) with the llama_ftype named FTYPE
 *       (Q4_0, Q4_K_M, Q3_K_M, ...); REGEX=TYPE pairs are llama-quantize's --tensor-type
 *       overrides (tensor name regex -> ggml type name, e.g. 'blk\.0\.attn_q\.weight=q2_K').
 *   llamacpp_ref logits MODEL.gguf IDS.txt N_GEN OUT.logits OUT_GREEDY.txt
 *       llama.cpp's logits at every position of the prompt (whitespace-separated ids in IDS.txt,
 *       no BOS added), one decode of the whole prompt, 1 thread, f32 KV cache, written in the
 *       DKLOGIT1 layout ("DKLOGIT1" | u32 n | u32 n_vocab | i32 ids[n] | f32 logits[n][n_vocab]);
 *       then N_GEN greedy tokens (argmax, lowest id on ties), one llama_decode each: OUT_GREEDY.txt
 *       holds a line of the ids and a line of each step's top-1 minus top-2 logit.
 *   llamacpp_ref tensors MODEL.gguf OUT.tsv
 *       every tensor dequantised by ggml's own to_float (ggml_get_type_traits(type)->to_float),
 *       one line per tensor: name, type name, element count, FNV-1a 64 of the f32 bytes (hex),
 *       the first element's bits (hex).
 *   llamacpp_ref bench MODEL.gguf N_PROMPT N_GEN THREADS N_BATCH REPS
 *       prints `prefill_tok_s: X` (N_PROMPT tokens, batches of N_BATCH) and `decode_tok_s: Y`
 *       (N_GEN single-token decodes after the prompt), medians of REPS runs (a fresh context
 *       each; one untimed warm-up run first). */
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ggml-backend.h"
#include "ggml.h"
#include "gguf.h"
#include "llama.h"

static void die(const char *fmt, const char *a) {
    fprintf(stderr, "llamacpp_ref: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, "\n");
    exit(1);
}

static void quiet_log(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static void init_backends(void) {
    llama_log_set(quiet_log, NULL);
    const char *dir = getenv("DK_LLAMACPP_LIBDIR");
    if (dir) ggml_backend_load_all_from_path(dir);
    else ggml_backend_load_all();
    llama_backend_init();
}

/* ---- quantize ---- */

typedef struct {
    const char *name;
    enum llama_ftype ftype;
} ftype_name;
static const ftype_name FTYPES[] = {
    {"F32", LLAMA_FTYPE_ALL_F32},          {"F16", LLAMA_FTYPE_MOSTLY_F16},
    {"BF16", LLAMA_FTYPE_MOSTLY_BF16},     {"Q4_0", LLAMA_FTYPE_MOSTLY_Q4_0},
    {"Q4_1", LLAMA_FTYPE_MOSTLY_Q4_1},     {"Q5_0", LLAMA_FTYPE_MOSTLY_Q5_0},
    {"Q5_1", LLAMA_FTYPE_MOSTLY_Q5_1},     {"Q8_0", LLAMA_FTYPE_MOSTLY_Q8_0},
    {"Q2_K", LLAMA_FTYPE_MOSTLY_Q2_K},     {"Q2_K_S", LLAMA_FTYPE_MOSTLY_Q2_K_S},
    {"Q3_K_S", LLAMA_FTYPE_MOSTLY_Q3_K_S}, {"Q3_K_M", LLAMA_FTYPE_MOSTLY_Q3_K_M},
    {"Q3_K_L", LLAMA_FTYPE_MOSTLY_Q3_K_L}, {"Q4_K_S", LLAMA_FTYPE_MOSTLY_Q4_K_S},
    {"Q4_K_M", LLAMA_FTYPE_MOSTLY_Q4_K_M}, {"Q5_K_S", LLAMA_FTYPE_MOSTLY_Q5_K_S},
    {"Q5_K_M", LLAMA_FTYPE_MOSTLY_Q5_K_M}, {"Q6_K", LLAMA_FTYPE_MOSTLY_Q6_K},
    {"IQ4_NL", LLAMA_FTYPE_MOSTLY_IQ4_NL}, {"IQ4_XS", LLAMA_FTYPE_MOSTLY_IQ4_XS},
};

static enum ggml_type type_by_name(const char *s) {
    for (int t = 0; t < GGML_TYPE_COUNT; t++) {
        const char *n = ggml_type_name((enum ggml_type)t);
        if (n && !strcasecmp(n, s)) return (enum ggml_type)t;
    }
    die("unknown ggml type '%s'", s);
    return GGML_TYPE_COUNT;
}

static int cmd_quantize(int argc, char **argv) {
    if (argc < 5) die("%s", "usage: quantize IN.gguf OUT.gguf FTYPE [REGEX=TYPE ...]");
    llama_model_quantize_params p = llama_model_quantize_default_params();
    p.nthread = 1;
    int found = 0;
    for (size_t i = 0; i < sizeof FTYPES / sizeof FTYPES[0]; i++)
        if (!strcasecmp(FTYPES[i].name, argv[4])) {
            p.ftype = FTYPES[i].ftype;
            found = 1;
        }
    if (!found) die("unknown ftype '%s'", argv[4]);
    int n_ov = argc - 5;
    struct llama_model_tensor_override *ov = calloc((size_t)n_ov + 1, sizeof *ov);
    for (int i = 0; i < n_ov; i++) {
        char *eq = strrchr(argv[5 + i], '=');
        if (!eq) die("override '%s' is not REGEX=TYPE", argv[5 + i]);
        *eq = 0;
        ov[i].pattern = argv[5 + i];
        ov[i].type = type_by_name(eq + 1);
    }
    ov[n_ov].pattern = NULL;
    if (n_ov) p.tt_overrides = ov;
    uint32_t rc = llama_model_quantize(argv[2], argv[3], &p);
    free(ov);
    if (rc) die("llama_model_quantize failed for %s", argv[2]);
    return 0;
}

/* ---- logits ---- */

static int *read_ids(const char *path, int *n) {
    FILE *f = fopen(path, "r");
    if (!f) die("cannot open %s", path);
    int cap = 64, *ids = malloc(cap * sizeof *ids), x;
    *n = 0;
    while (fscanf(f, "%d", &x) == 1) {
        if (*n == cap) ids = realloc(ids, (cap *= 2) * sizeof *ids);
        ids[(*n)++] = x;
    }
    fclose(f);
    if (*n == 0) die("no ids in %s", path);
    return ids;
}

static struct llama_model *load_model(const char *path) {
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *m = llama_model_load_from_file(path, mp);
    if (!m) die("cannot load %s", path);
    return m;
}

static struct llama_context *make_ctx(struct llama_model *m, int n_ctx, int n_batch, int threads) {
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_batch = cp.n_ubatch = (uint32_t)n_batch;
    cp.n_threads = cp.n_threads_batch = threads;
    cp.type_k = cp.type_v = GGML_TYPE_F32;
    cp.no_perf = true;
    struct llama_context *c = llama_init_from_model(m, cp);
    if (!c) die("%s", "llama_init_from_model failed");
    return c;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* top-1 minus top-2 logit */
static float top2_margin(const float *x, int n) {
    int b = argmax(x, n);
    float s = -INFINITY;
    for (int i = 0; i < n; i++)
        if (i != b && x[i] > s) s = x[i];
    return x[b] - s;
}

static void decode_or_die(struct llama_context *c, const int *ids, int n, int pos0, int all_logits) {
    struct llama_batch b = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        b.token[i] = ids[i];
        b.pos[i] = pos0 + i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = all_logits || i == n - 1;
    }
    b.n_tokens = n;
    if (llama_decode(c, b)) die("%s", "llama_decode failed");
    llama_batch_free(b);
}

static int cmd_logits(int argc, char **argv) {
    if (argc != 7) die("%s", "usage: logits MODEL.gguf IDS.txt N_GEN OUT.logits OUT_GREEDY.txt");
    int n, n_gen = atoi(argv[4]);
    int *ids = read_ids(argv[3], &n);
    struct llama_model *m = load_model(argv[2]);
    int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(m));
    struct llama_context *c = make_ctx(m, n + n_gen + 8, n, 1);
    decode_or_die(c, ids, n, 0, 1);
    FILE *f = fopen(argv[5], "wb");
    if (!f) die("cannot write %s", argv[5]);
    uint32_t h[2] = {(uint32_t)n, (uint32_t)n_vocab};
    fwrite("DKLOGIT1", 1, 8, f);
    fwrite(h, 4, 2, f);
    fwrite(ids, 4, (size_t)n, f);
    for (int i = 0; i < n; i++) fwrite(llama_get_logits_ith(c, i), 4, (size_t)n_vocab, f);
    if (fclose(f)) die("write error on %s", argv[5]);
    FILE *g = fopen(argv[6], "w");
    if (!g) die("cannot write %s", argv[6]);
    float *margin = malloc((size_t)n_gen * sizeof *margin);
    const float *lg = llama_get_logits_ith(c, n - 1);
    for (int i = 0; i < n_gen; i++) {
        int tok = argmax(lg, n_vocab);
        margin[i] = top2_margin(lg, n_vocab);
        fprintf(g, "%s%d", i ? " " : "", tok);
        decode_or_die(c, &tok, 1, n + i, 1);
        lg = llama_get_logits_ith(c, -1);
    }
    fprintf(g, "\n");
    for (int i = 0; i < n_gen; i++) fprintf(g, "%s%.6g", i ? " " : "", margin[i]);
    fprintf(g, "\n");
    free(margin);
    if (fclose(g)) die("write error on %s", argv[6]);
    llama_free(c);
    llama_model_free(m);
    free(ids);
    return 0;
}

/* ---- tensors ---- */

static uint64_t fnv1a64(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static int cmd_tensors(int argc, char **argv) {
    if (argc != 4) die("%s", "usage: tensors MODEL.gguf OUT.tsv");
    struct gguf_init_params gp = {.no_alloc = true, .ctx = NULL};
    struct gguf_context *g = gguf_init_from_file(argv[2], gp);
    if (!g) die("gguf_init_from_file failed on %s", argv[2]);
    int fd = open(argv[2], O_RDONLY);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb)) die("cannot open %s", argv[2]);
    const uint8_t *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) die("cannot mmap %s", argv[2]);
    FILE *f = fopen(argv[3], "w");
    if (!f) die("cannot write %s", argv[3]);
    size_t base = gguf_get_data_offset(g);
    for (int64_t i = 0; i < gguf_get_n_tensors(g); i++) {
        const char *name = gguf_get_tensor_name(g, i);
        enum ggml_type t = gguf_get_tensor_type(g, i);
        size_t off = base + gguf_get_tensor_offset(g, i), nbytes = gguf_get_tensor_size(g, i);
        int64_t n = (int64_t)(nbytes / ggml_type_size(t)) * ggml_blck_size(t);
        const struct ggml_type_traits *tr = ggml_get_type_traits(t);
        float *y = malloc((size_t)n * sizeof *y);
        if (t == GGML_TYPE_F32) memcpy(y, map + off, (size_t)n * 4);
        else if (tr->to_float) tr->to_float(map + off, y, n);
        else die("type %s has no to_float", ggml_type_name(t));
        uint32_t first;
        memcpy(&first, y, 4);
        fprintf(f, "%s\t%s\t%lld\t%016llx\t%08x\n", name, ggml_type_name(t), (long long)n,
                (unsigned long long)fnv1a64(y, (size_t)n * 4), first);
        free(y);
    }
    if (fclose(f)) die("write error on %s", argv[3]);
    munmap((void *)map, (size_t)sb.st_size);
    close(fd);
    gguf_free(g);
    return 0;
}

/* ---- bench ---- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int cmd_bench(int argc, char **argv) {
    if (argc != 8) die("%s", "usage: bench MODEL.gguf N_PROMPT N_GEN THREADS N_BATCH REPS");
    int n_prompt = atoi(argv[3]), n_gen = atoi(argv[4]), threads = atoi(argv[5]), n_batch = atoi(argv[6]),
        reps = atoi(argv[7]);
    if (n_prompt < 1 || n_gen < 1 || threads < 1 || n_batch < 1 || reps < 1 || reps > 15)
        die("%s", "bench: counts must be >= 1 (reps <= 15)");
    struct llama_model *m = load_model(argv[2]);
    int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(m));
    int *ids = malloc((size_t)n_prompt * sizeof *ids);
    for (int i = 0; i < n_prompt; i++) ids[i] = (int)((7919u * (unsigned)i + 13u) % (unsigned)n_vocab);
    double tp[16], td[16];
    for (int rep = -1; rep < reps; rep++) {
        struct llama_context *c = make_ctx(m, n_prompt + n_gen + 8, n_batch, threads);
        double t0 = now_s();
        for (int i = 0; i < n_prompt; i += n_batch)
            decode_or_die(c, ids + i, n_prompt - i < n_batch ? n_prompt - i : n_batch, i, 0);
        double t1 = now_s();
        int tok = argmax(llama_get_logits_ith(c, -1), n_vocab);
        for (int i = 0; i < n_gen; i++) {
            decode_or_die(c, &tok, 1, n_prompt + i, 1);
            tok = argmax(llama_get_logits_ith(c, -1), n_vocab);
        }
        double t2 = now_s();
        if (rep >= 0) {
            tp[rep] = n_prompt / (t1 - t0);
            td[rep] = n_gen / (t2 - t1);
        }
        llama_free(c);
    }
    printf("prefill_tok_s: %.2f\ndecode_tok_s: %.2f\n", median(tp, reps), median(td, reps));
    free(ids);
    llama_model_free(m);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) die("%s", "usage: llamacpp_ref quantize|logits|tensors|bench ...");
    init_backends();
    if (!strcmp(argv[1], "quantize")) return cmd_quantize(argc, argv);
    if (!strcmp(argv[1], "logits")) return cmd_logits(argc, argv);
    if (!strcmp(argv[1], "tensors")) return cmd_tensors(argc, argv);
    if (!strcmp(argv[1], "bench")) return cmd_bench(argc, argv);
    die("unknown command '%s'", argv[1]);
    return 1;
}
