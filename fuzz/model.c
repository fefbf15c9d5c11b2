/* model.c — fuzz target "model": dk_model_load on the bytes (a GGUF or a llama2.c .bin, told
 * apart by the magic as for any model path), then what a run touches first: the first and last
 * row of every matrix converted to f32, every norm vector, and, when the file carries a
 * tokenizer, an encode/decode round of a fixed text. Seeds: the small GGUF models of tests/data
 * and a synthetic llama2.c checkpoint (fuzz/seeds.sh). */
#include "fuzz.h"
#include "model.h"

#include <stdlib.h>
#include <string.h>

static void touch_matrix(const dk_tensor *t, float *row) {
    if (t->rows <= 0) return;
    dk_tensor_row_f32(t, 0, row);
    dk_tensor_row_f32(t, t->rows - 1, row);
}

static void touch_vec(const float *v, int n) {
    if (!v || n <= 0) return;
    volatile float s = v[0] + v[n - 1];
    (void)s;
}

int dk_fuzz_model(const uint8_t *data, size_t size) {
    dk_model *m = NULL;
    dk_err e = {{0}};
    dk_status st = dk_model_load(dk_fuzz_file(data, size), NULL, &m, &e);
    dk_fuzz_check_err("model", st, &e);
    if (st != DK_OK) return 0;
    const dk_model_config *c = &m->cfg;
    dk_fuzz_assert(c->n_layer >= 1 && c->n_embd >= 1 && c->n_head >= 1 && c->n_head_kv >= 1 &&
                       c->n_head % c->n_head_kv == 0 && c->head_dim >= 1 && c->n_ff >= 1 && c->n_vocab >= 1 &&
                       c->n_rot >= 0 && c->n_rot <= c->head_dim && c->n_rot % 2 == 0,
                   "model", "loaded a model with an inconsistent configuration");
    /* the widest row: n_embd, n_ff or n_head*head_dim columns */
    int64_t w = c->n_embd;
    if (c->n_ff > w) w = c->n_ff;
    if ((int64_t)c->n_head * c->head_dim > w) w = (int64_t)c->n_head * c->head_dim;
    float *row = malloc((size_t)w * sizeof *row);
    dk_fuzz_assert(row != NULL, "model", "out of memory");
    const dk_model_weights *W = &m->w;
    dk_fuzz_assert(W->tok_embd.cols <= w && W->output.cols <= w, "model", "embedding wider than n_embd");
    touch_matrix(&W->tok_embd, row);
    touch_matrix(&W->output, row);
    touch_vec(W->output_norm, c->n_embd);
    for (int l = 0; l < c->n_layer; l++) {
        const dk_layer_weights *L = &W->layers[l];
        const dk_tensor *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
            dk_fuzz_assert(mats[i]->cols <= w, "model", "matrix wider than its configuration");
            touch_matrix(mats[i], row);
        }
        touch_vec(L->attn_norm, c->n_embd);
        touch_vec(L->ffn_norm, c->n_embd);
        touch_vec(L->bq, c->n_head * c->head_dim);
        touch_vec(L->bk, c->n_head_kv * c->head_dim);
        touch_vec(L->bv, c->n_head_kv * c->head_dim);
    }
    free(row);
    if (m->tokenizer) {
        static const char text[] = "Hello world! <s> 12345 \xc3\xa9t\xc3\xa9  \xe2\x96\x81x\n";
        int32_t *ids = NULL;
        int n = 0;
        st = dk_tokenizer_encode(m->tokenizer, text, sizeof text - 1, false, &ids, &n, &e);
        dk_fuzz_check_err("model", st, &e);
        if (st == DK_OK) {
            char *out = NULL;
            size_t len;
            st = dk_tokenizer_decode(m->tokenizer, ids, n, &out, &len, &e);
            dk_fuzz_check_err("model", st, &e);
            free(out);
        }
        free(ids);
    } else {
        dk_fuzz_assert(m->tokenizer_error[0] != 0 && !strchr(m->tokenizer_error, '\n'), "model",
                       "no tokenizer and no one-line reason");
    }
    dk_model_free(m);
    return 0;
}
