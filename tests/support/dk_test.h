/* dk_test.h — helpers shared by the Check suites. */
#ifndef DK_TEST_H
#define DK_TEST_H
#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include "model.h"
#include "quant.h"

/* Path of a fixture under $DK_FIXTURES (default ../shared/fixtures), written into buf.
 * Returns NULL (and prints "SKIP <why>" once) when the fixture folder or file is absent. */
const char *dk_test_fixture(char *buf, size_t n, const char *rel);

/* Path of the dashkit CLI binary ($DASHKIT, default ./dashkit). */
const char *dk_test_cli(void);

/* Runs `cmd` with /bin/sh; captures stdout (and stderr if want_stderr) into a malloc'd,
 * NUL-terminated string (*out, may be NULL); returns the exit status (or -1). */
int dk_test_run(const char *cmd, int want_stderr, char **out);

/* The number on the `KEY: VALUE` line of a command's output (fails the test when there is none). */
double dk_test_field(const char *out, const char *key);

/* Runs a Check suite with CK_NORMAL output; returns the process exit status. */
int dk_test_main(Suite *s);

/* Temporary directory unique to this process (created on first use). */
const char *dk_test_tmpdir(void);

/* dk_test_tmpdir()/name written into buf (n bytes) and returned; buf NULL: into one of 8 static
 * buffers used in turn (for a few paths alive at once). */
const char *dk_test_tmp_path(char *buf, size_t n, const char *name);

/* A random-weight model of cfg (dk_model_create_random_typed; DK_GGML_TYPE_F32 is
 * dk_model_create_random), failing the test on error. */
dk_model *dk_test_model_random(const dk_model_config *cfg, uint32_t type, uint64_t seed, const char *name);
/* The same for a named shape (dk_model_shape), f32, its n_layer replaced when n_layer > 0, named
 * after the shape. */
dk_model *dk_test_model_shape(const char *shape, int n_layer, uint64_t seed);

/* The whole file at path, malloc'd and NUL-terminated (*n = its size); fails the test when it
 * cannot be read. */
void *dk_test_read_file(const char *path, size_t *n);

/* Copies the file at `from` to `to` (created or truncated); fails the test on any error. */
void dk_test_copy_file(const char *from, const char *to);

/* ---- DKLOGIT1 goldens (scripts/make_ref_models.py) ----
 * "DKLOGIT1" | u32 n_tokens | u32 n_vocab | i32 tokens[n_tokens] | logits[n_tokens][n_vocab] as
 * f32 or f64, little-endian; row t = next-token logits after tokens[0..t]. */
typedef struct {
    int n_tokens, n_vocab;
    int elem_size;   /* bytes per stored logit: 4 (f32) or 8 (f64) */
    int32_t *tokens; /* (n_tokens) prompt ids */
    float *logits;   /* (n_tokens, n_vocab) */
    float scale;     /* max |logits|, > 0 */
} dk_test_logits;

/* Loads a golden, failing the test on a bad magic, an empty header, a size that fits neither
 * element size (or not want_elem_size when it is not 0), a non-finite or all-zero logit table. */
void dk_test_logits_load(const char *path, int want_elem_size, dk_test_logits *r);
void dk_test_logits_free(dk_test_logits *r);

/* max |a - b| over n values, divided by scale; NaN makes it NaN (fails any <= bound) */
double dk_test_rel_err(const float *a, const float *b, size_t n, float scale);

#define DK_SKIP_IF_NULL(p)       \
    do {                         \
        if ((p) == NULL) return; \
    } while (0)
#endif
