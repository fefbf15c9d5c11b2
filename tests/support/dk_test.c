/* dk_test.c — helpers shared by the Check suites. */
#include "dk_test.h"
#include "blas.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

const char *dk_test_fixture(char *buf, size_t n, const char *rel) {
    const char *root = getenv("DK_FIXTURES");
    if (!root || !*root) root = "../shared/fixtures";
    snprintf(buf, n, "%s/%s", root, rel);
    struct stat st;
    if (stat(buf, &st) != 0) {
        printf("SKIP: fixture %s absent (set DK_FIXTURES to ../shared/fixtures)\n", buf);
        fflush(stdout);
        return NULL;
    }
    return buf;
}

double dk_test_field(const char *out, const char *key) {
    char k[96];
    snprintf(k, sizeof k, "\n%s: ", key);
    const char *p = strstr(out, k);
    ck_assert_msg(p != NULL, "no %s line in:\n%s", key, out);
    return strtod(p + strlen(k), NULL);
}

const char *dk_test_cli(void) {
    const char *p = getenv("DASHKIT");
    return (p && *p) ? p : "./dashkit";
}

int dk_test_run(const char *cmd, int want_stderr, char **out) {
    char full[8192];
    snprintf(full, sizeof full, "%s%s", cmd, want_stderr ? " 2>&1" : " 2>/dev/null");
    FILE *f = popen(full, "r");
    if (!f) return -1;
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    size_t r;
    while (s && (r = fread(s + len, 1, cap - len - 1, f)) > 0) {
        len += r;
        if (cap - len < 2) {
            cap *= 2;
            s = realloc(s, cap);
        }
    }
    if (s) s[len] = 0;
    int st = pclose(f);
    if (out) *out = s;
    else free(s);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int dk_test_main(Suite *s) {
    dk_blas_init();
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? 0 : 1;
}

const char *dk_test_tmpdir(void) {
    static char dir[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/dktest.%d.XXXXXX", (int)getpid());
        if (!mkdtemp(dir)) dir[0] = 0;
    }
    return dir;
}

const char *dk_test_tmp_path(char *buf, size_t n, const char *name) {
    static char ring[8][512];
    static int next;
    if (!buf) {
        buf = ring[next++ % 8];
        n = sizeof ring[0];
    }
    snprintf(buf, n, "%s/%s", dk_test_tmpdir(), name);
    return buf;
}

dk_model *dk_test_model_random(const dk_model_config *cfg, uint32_t type, uint64_t seed, const char *name) {
    dk_model *m = NULL;
    dk_err e = {{0}};
    dk_status st = type == DK_GGML_TYPE_F32 ? dk_model_create_random(cfg, seed, name, &m, &e)
                                            : dk_model_create_random_typed(cfg, seed, name, type, &m, &e);
    ck_assert_msg(st == DK_OK, "random model %s: %s", name, e.msg);
    return m;
}

dk_model *dk_test_model_shape(const char *shape, int n_layer, uint64_t seed) {
    dk_model_config cfg;
    ck_assert_msg(dk_model_shape(shape, &cfg), "unknown model shape %s", shape);
    if (n_layer > 0) cfg.n_layer = n_layer;
    return dk_test_model_random(&cfg, DK_GGML_TYPE_F32, seed, shape);
}

void *dk_test_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert(fseek(f, 0, SEEK_END) == 0);
    long sz = ftell(f);
    ck_assert_msg(sz >= 0, "%s: cannot size", path);
    ck_assert(fseek(f, 0, SEEK_SET) == 0);
    char *b = malloc((size_t)sz + 1);
    ck_assert(b != NULL);
    ck_assert_msg(fread(b, 1, (size_t)sz, f) == (size_t)sz, "short read %s", path);
    fclose(f);
    b[sz] = 0;
    *n = (size_t)sz;
    return b;
}

void dk_test_copy_file(const char *from, const char *to) {
    size_t n;
    void *b = dk_test_read_file(from, &n);
    FILE *f = fopen(to, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", to);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
    free(b);
}

void dk_test_logits_load(const char *path, int want_elem_size, dk_test_logits *r) {
    size_t n;
    unsigned char *b = dk_test_read_file(path, &n);
    ck_assert_msg(n >= 16 && memcmp(b, "DKLOGIT1", 8) == 0, "%s: bad golden magic", path);
    uint32_t hdr[2];
    memcpy(hdr, b + 8, sizeof hdr);
    ck_assert_msg(hdr[0] > 0 && hdr[1] > 0, "%s: empty golden (%u x %u)", path, hdr[0], hdr[1]);
    r->n_tokens = (int)hdr[0];
    r->n_vocab = (int)hdr[1];
    size_t nt = (size_t)r->n_tokens, cells = nt * (size_t)r->n_vocab, head = 16 + 4 * nt;
    ck_assert_msg(n > head && (n - head) % cells == 0 && ((n - head) / cells == 4 || (n - head) / cells == 8),
                  "%s: size %zu fits neither f32 (%zu) nor f64 (%zu) logits for %u x %u", path, n,
                  head + 4 * cells, head + 8 * cells, hdr[0], hdr[1]);
    r->elem_size = (int)((n - head) / cells);
    ck_assert_msg(!want_elem_size || r->elem_size == want_elem_size, "%s: size %zu, header says %zu", path, n,
                  head + (size_t)want_elem_size * cells);
    r->tokens = malloc(4 * nt);
    r->logits = malloc(sizeof(float) * cells);
    ck_assert(r->tokens && r->logits);
    memcpy(r->tokens, b + 16, 4 * nt);
    const unsigned char *p = b + head;
    /* (no ck_assert inside the loop: Check records every assertion through a pipe) */
    float m = 0;
    size_t bad = cells;
    for (size_t i = 0; i < cells; i++) {
        if (r->elem_size == 4) {
            memcpy(&r->logits[i], p + 4 * i, 4);
        } else {
            double d;
            memcpy(&d, p + 8 * i, 8);
            r->logits[i] = (float)d;
        }
        if (!isfinite(r->logits[i]) && bad == cells) bad = i;
        m = fmaxf(m, fabsf(r->logits[i]));
    }
    ck_assert_msg(bad == cells, "%s: logit %zu not finite", path, bad);
    ck_assert_msg(m > 0, "%s: all logits zero", path);
    r->scale = m;
    free(b);
}

void dk_test_logits_free(dk_test_logits *r) {
    free(r->tokens);
    free(r->logits);
}

double dk_test_rel_err(const float *a, const float *b, size_t n, float scale) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d;
    }
    return m / scale;
}
