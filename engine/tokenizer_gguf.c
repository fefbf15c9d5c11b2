/* tokenizer_gguf.c — the tokenizer a GGUF carries (tokenizer.ggml.*), read without looking at the
 * model's architecture or tensors, so vocab-only files and any general.architecture work. */
#include "gguf.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Optional u32 key as an id in [0, n), -1 when absent. */
static dk_status dk_gguf_token_id(const dk_gguf *g, const char *path, const char *key, uint64_t n, int *id,
                                  dk_err *e) {
    *id = -1;
    if (dk_gguf_find_key(g, key) < 0) return DK_OK;
    uint32_t u;
    dk_status st = dk_gguf_get_u32(g, key, &u, e);
    if (st) return st;
    if (u >= n)
        return dk_fail(e, DK_ERR_FORMAT, "%s: %s = %u is out of range (%llu tokens)", path, key, u,
                       (unsigned long long)n);
    *id = (int)u;
    return DK_OK;
}

/* tokenizer.ggml.token_type as a malloc'd array of n, or NULL (*types) when the key is absent. */
static dk_status dk_gguf_token_types(const dk_gguf *g, const char *path, uint64_t n, int32_t **types,
                                     dk_err *e) {
    *types = NULL;
    if (dk_gguf_find_key(g, "tokenizer.ggml.token_type") < 0) return DK_OK;
    int32_t *t = malloc(n * sizeof *t);
    if (!t) return dk_fail(e, DK_ERR_NOMEM, "%s: out of memory", path);
    dk_status st = dk_gguf_get_arr_i32(g, "tokenizer.ggml.token_type", t, n, e);
    if (st) {
        free(t);
        return st;
    }
    *types = t;
    return DK_OK;
}

/* llama.cpp (llama-vocab.cpp, load) makes every token whose text is one of these end-of-generation
 * markers a control token, whatever type the file gives it (it warns that the model is probably
 * wrong), so that e.g. "</s>" in text is not matched as a user-defined token (Phi-3) and a normal
 * "</s>" piece is no longer produced from text (Qwen). dashkit does the same, for token-level
 * parity with llama.cpp. Exception, as there: "</s>" stays normal in a vocabulary that also has
 * "<|tool_response>" (Gemma 4). */
static const char *const dk_llamacpp_eog_texts[] = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
};

static void dk_gguf_llamacpp_control(const char *const *tok, const uint32_t *lens, uint64_t n,
                                     int32_t *types) {
    enum { N_EOG = sizeof dk_llamacpp_eog_texts / sizeof dk_llamacpp_eog_texts[0] };
    int64_t s_id = -1;
    bool tool_response = false;
    for (uint64_t i = 0; i < n; i++) {
        if (lens[i] < 3 || lens[i] > 32) continue;
        for (int k = 0; k < N_EOG; k++) {
            const char *w = dk_llamacpp_eog_texts[k];
            if (strlen(w) != lens[i] || memcmp(w, tok[i], lens[i])) continue;
            types[i] = DK_TOKEN_TYPE_CONTROL;
            if (!strcmp(w, "</s>")) s_id = (int64_t)i;
            if (!strcmp(w, "<|tool_response>")) tool_response = true;
        }
    }
    if (tool_response && s_id >= 0) types[s_id] = DK_TOKEN_TYPE_NORMAL;
}

/* tokenizer.ggml.tokens with a sane count. */
static dk_status dk_gguf_tokens(const dk_gguf *g, const char *path, const char *const **tok,
                                const uint32_t **lens, uint64_t *n, dk_err *e) {
    dk_status st = dk_gguf_get_arr_str(g, "tokenizer.ggml.tokens", tok, lens, n, e);
    if (st) return st;
    if (*n == 0 || *n > (1u << 30))
        return dk_fail(e, DK_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries", path,
                       (unsigned long long)*n);
    return DK_OK;
}

static dk_status dk_tokenizer_load_gguf_spm(const dk_gguf *g, const char *path, dk_tokenizer **out,
                                            dk_err *e) {
    const char *const *pieces;
    const uint32_t *lens;
    uint64_t n;
    dk_status st = dk_gguf_tokens(g, path, &pieces, &lens, &n, e);
    if (st) return st;
    float *scores = NULL;
    int32_t *types = NULL;
    if (dk_gguf_find_key(g, "tokenizer.ggml.scores") >= 0) {
        if (!(scores = malloc(n * sizeof *scores)))
            return dk_fail(e, DK_ERR_NOMEM, "%s: out of memory", path);
        if ((st = dk_gguf_get_arr_f32(g, "tokenizer.ggml.scores", scores, n, e))) {
            free(scores);
            return st;
        }
    }
    if ((st = dk_gguf_token_types(g, path, n, &types, e))) {
        free(scores);
        return st;
    }
    if (types) dk_gguf_llamacpp_control(pieces, lens, n, types);
    dk_spm_vocab v = {.n_vocab = (int)n,
                      .pieces = pieces,
                      .piece_lens = lens,
                      .scores = scores,
                      .types = types,
                      .add_space_prefix = true};
    if (!st) st = dk_gguf_token_id(g, path, "tokenizer.ggml.bos_token_id", n, &v.bos_id, e);
    if (!st) st = dk_gguf_token_id(g, path, "tokenizer.ggml.eos_token_id", n, &v.eos_id, e);
    if (!st) st = dk_gguf_token_id(g, path, "tokenizer.ggml.unknown_token_id", n, &v.unk_id, e);
    if (!st && dk_gguf_find_key(g, "tokenizer.ggml.add_space_prefix") >= 0)
        st = dk_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &v.add_space_prefix, e);
    bool add_bos = true; /* llama.cpp's default for SPM when the key is absent */
    if (!st && dk_gguf_find_key(g, "tokenizer.ggml.add_bos_token") >= 0)
        st = dk_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos, e);
    v.no_add_bos = !add_bos;
    if (!st) {
        dk_err te = {{0}};
        if ((st = dk_tokenizer_create_spm(&v, out, &te))) dk_fail(e, st, "%.400s: %.500s", path, te.msg);
    }
    free(scores);
    free(types);
    return st;
}

dk_status dk_tokenizer_load_gguf_bpe(const dk_gguf *g, const char *path, dk_tokenizer **out, dk_err *e) {
    *out = NULL;
    const char *model, *pre = NULL;
    size_t mlen, plen = 0;
    dk_status st = dk_gguf_get_str(g, "tokenizer.ggml.model", &model, &mlen, e);
    if (st) return st;
    if (!(mlen == 4 && !memcmp(model, "gpt2", 4)))
        return dk_fail(e, DK_ERR_ARG, "%s: tokenizer.ggml.model is '%.*s', not gpt2", path,
                       (int)(mlen > 40 ? 40 : mlen), model);
    dk_bpe_vocab v = {0};
    uint64_t n, nm;
    if ((st = dk_gguf_tokens(g, path, &v.tokens, &v.token_lens, &n, e))) return st;
    if (dk_gguf_find_key(g, "tokenizer.ggml.merges") < 0)
        return dk_fail(e, DK_ERR_FORMAT,
                       "%s: missing key tokenizer.ggml.merges (required for tokenizer.ggml.model gpt2)",
                       path);
    if ((st = dk_gguf_get_arr_str(g, "tokenizer.ggml.merges", &v.merges, &v.merge_lens, &nm, e))) return st;
    if (nm > (1u << 30))
        return dk_fail(e, DK_ERR_FORMAT, "%s: absurd tokenizer.ggml.merges count %llu", path,
                       (unsigned long long)nm);
    v.n_vocab = (int)n;
    v.n_merges = (int)nm;
    /* llama.cpp runs a vocabulary without tokenizer.ggml.pre through its own "default" regex
     * sequence (not GPT-2's), which dashkit does not implement: refuse rather than differ */
    if (dk_gguf_find_key(g, "tokenizer.ggml.pre") < 0)
        return dk_fail(
            e, DK_ERR_UNSUPPORTED,
            "%s: no tokenizer.ggml.pre: llama.cpp tokenizes such a gpt2 vocabulary with its 'default' "
            "pre-tokenizer, which dashkit does not support (gpt-2, smollm, llama-bpe, qwen2 are)",
            path);
    if ((st = dk_gguf_get_str(g, "tokenizer.ggml.pre", &pre, &plen, e))) return st;
    v.pre = pre;
    v.pre_len = plen;
    if ((st = dk_gguf_token_id(g, path, "tokenizer.ggml.bos_token_id", n, &v.bos_id, e)) ||
        (st = dk_gguf_token_id(g, path, "tokenizer.ggml.eos_token_id", n, &v.eos_id, e)) ||
        (st = dk_gguf_token_id(g, path, "tokenizer.ggml.unknown_token_id", n, &v.unk_id, e)))
        return st;
    if (dk_gguf_find_key(g, "tokenizer.ggml.add_bos_token") >= 0 &&
        (st = dk_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &v.add_bos, e)))
        return st;
    int32_t *types;
    if ((st = dk_gguf_token_types(g, path, n, &types, e))) return st;
    if (types) dk_gguf_llamacpp_control(v.tokens, v.token_lens, n, types);
    v.types = types;
    dk_err te = {{0}};
    st = dk_tokenizer_create_bpe(&v, out, &te);
    free(types);
    if (st) return dk_fail(e, st, "%s: %s", path, te.msg);
    return DK_OK;
}

dk_status dk_tokenizer_load_gguf(const dk_gguf *g, const char *path, dk_tokenizer **out, char *desc,
                                 size_t desc_size, dk_err *e) {
    *out = NULL;
    char scratch[64];
    if (!desc) {
        desc = scratch;
        desc_size = sizeof scratch;
    }
    if (dk_gguf_find_key(g, "tokenizer.ggml.model") < 0) {
        snprintf(desc, desc_size, "none");
        return dk_fail(e, DK_ERR_UNSUPPORTED, "%s: the GGUF has no tokenizer (no tokenizer.ggml.model key)",
                       path);
    }
    const char *kind;
    size_t klen;
    dk_status st = dk_gguf_get_str(g, "tokenizer.ggml.model", &kind, &klen, e);
    if (st) {
        snprintf(desc, desc_size, "? (invalid)");
        return st;
    }
    bool bpe = klen == 4 && !memcmp(kind, "gpt2", 4), spm = klen == 5 && !memcmp(kind, "llama", 5);
    if (!bpe && !spm) {
        snprintf(desc, desc_size, "%.*s (not supported yet)", (int)(klen > 20 ? 20 : klen), kind);
        return dk_fail(
            e, DK_ERR_UNSUPPORTED,
            "%s: tokenizer.ggml.model '%.*s' is not supported yet (llama SentencePiece BPE and gpt2 "
            "byte-level BPE are)",
            path, (int)(klen > 40 ? 40 : klen), kind);
    }
    st = bpe ? dk_tokenizer_load_gguf_bpe(g, path, out, e) : dk_tokenizer_load_gguf_spm(g, path, out, e);
    if (st)
        snprintf(desc, desc_size, "%s (%s)", bpe ? "bpe" : "spm",
                 st == DK_ERR_UNSUPPORTED ? "not supported" : "invalid");
    else if (bpe)
        snprintf(desc, desc_size, "bpe %s (%d pieces)", dk_tokenizer_pre(*out), dk_tokenizer_n_vocab(*out));
    else snprintf(desc, desc_size, "spm (%d pieces)", dk_tokenizer_n_vocab(*out));
    return st;
}

dk_status dk_tokenizer_load_gguf_file(const char *path, dk_tokenizer **out, char *desc, size_t desc_size,
                                      dk_err *e) {
    *out = NULL;
    dk_gguf *g;
    dk_status st = dk_gguf_open(path, &g, e);
    if (st) return st;
    st = dk_tokenizer_load_gguf(g, path, out, desc, desc_size, e);
    dk_gguf_close(g);
    return st;
}
