/* llamacpp_tok.c — llama.cpp's own tokenizer as the reference for dashkit's (tokenizer parity).
 *
 * Built and run by scripts/make_llamacpp_tok_goldens.sh against the prebuilt libllama of the npm
 * package node-llama-cpp@3.21.1 (llama.cpp release of that package); never part of dashkit's
 * build or `make test`.
 *
 *   llamacpp_tok VOCAB.gguf STRINGS.json PARSE_SPECIAL(0|1) > OUT.json
 *
 * Loads VOCAB.gguf with vocab_only = true (no weights, any architecture) and, for each string of
 * the JSON array STRINGS.json, tokenizes it twice with llama_tokenize(): add_special = false, and
 * add_special = true (BOS added when the vocabulary says so, tokenizer.ggml.add_bos_token or its
 * llama.cpp default), with parse_special as given. Prints one JSON object:
 *   {"add_bos": bool, "bos": id, "n_vocab": n, "parse_special": bool,
 *    "cases": [{"text": s, "ids": [...], "ids_special": [...]}, ...]}
 * Exit 1 with one line on stderr on any error. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"

static void quiet(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s) s[n] = 0;
    fclose(f);
    return s;
}

/* llama_tokenize into a JSON array; NULL on failure. */
static cJSON *tokenize(const struct llama_vocab *v, const char *text, bool add_special, bool parse_special) {
    int len = (int)strlen(text), cap = len + 8;
    llama_token *ids = malloc(sizeof *ids * (size_t)cap);
    int n = llama_tokenize(v, text, len, ids, cap, add_special, parse_special);
    if (n < 0) {
        cap = -n;
        ids = realloc(ids, sizeof *ids * (size_t)cap);
        n = llama_tokenize(v, text, len, ids, cap, add_special, parse_special);
    }
    if (n < 0) {
        free(ids);
        return NULL;
    }
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
    free(ids);
    return a;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: llamacpp_tok VOCAB.gguf STRINGS.json PARSE_SPECIAL(0|1)\n");
        return 2;
    }
    bool parse_special = atoi(argv[3]) != 0;
    llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    struct llama_model *m = llama_model_load_from_file(argv[1], mp);
    if (!m) {
        fprintf(stderr, "llamacpp_tok: %s: llama.cpp cannot load it\n", argv[1]);
        return 1;
    }
    const struct llama_vocab *v = llama_model_get_vocab(m);
    char *js = slurp(argv[2]);
    cJSON *in = js ? cJSON_Parse(js) : NULL;
    free(js);
    if (!cJSON_IsArray(in)) {
        fprintf(stderr, "llamacpp_tok: %s: not a JSON array of strings\n", argv[2]);
        return 1;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddBoolToObject(out, "add_bos", llama_vocab_get_add_bos(v));
    cJSON_AddNumberToObject(out, "bos", llama_vocab_bos(v));
    cJSON_AddNumberToObject(out, "n_vocab", llama_vocab_n_tokens(v));
    cJSON_AddBoolToObject(out, "parse_special", parse_special);
    cJSON *cases = cJSON_AddArrayToObject(out, "cases");
    cJSON *s;
    int i = 0;
    cJSON_ArrayForEach(s, in) {
        if (!cJSON_IsString(s)) {
            fprintf(stderr, "llamacpp_tok: %s: item %d is not a string\n", argv[2], i);
            return 1;
        }
        cJSON *a = tokenize(v, s->valuestring, false, parse_special),
              *b = tokenize(v, s->valuestring, true, parse_special);
        if (!a || !b) {
            fprintf(stderr, "llamacpp_tok: item %d: llama_tokenize failed\n", i);
            return 1;
        }
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "text", s->valuestring);
        cJSON_AddItemToObject(c, "ids", a);
        cJSON_AddItemToObject(c, "ids_special", b);
        cJSON_AddItemToArray(cases, c);
        i++;
    }
    char *o = cJSON_PrintUnformatted(out);
    puts(o);
    free(o);
    cJSON_Delete(out);
    cJSON_Delete(in);
    llama_model_free(m);
    llama_backend_free();
    return 0;
}
