/* chat.c — chat templates (see chat.h). Detection reads the Jinja source as text: it recognises
 * the families by their marker tokens and lifts constant default system messages out of string
 * literals; it does not evaluate Jinja. */
#include "chat.h"
#include "gguf.h"
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char DK_CHATML_DEFAULT_SYSTEM[] = "You are a helpful assistant."; /* Qwen2's default */
static const char DK_LLAMA31_DEFAULT_DATE[] = "26 Jul 2024";

/* ---- names ---- */

static const char *const dk_chat_names[] = {"none", "chatml", "llama3", "llama2"};

const char *dk_chat_template_name(dk_chat_template_kind k) {
    return (unsigned)k < sizeof dk_chat_names / sizeof dk_chat_names[0] ? dk_chat_names[k] : "?";
}

dk_status dk_chat_template_parse(const char *name, dk_chat_template_kind *out, dk_err *e) {
    for (int k = 0; k < (int)(sizeof dk_chat_names / sizeof dk_chat_names[0]); k++)
        if (name && !strcmp(name, dk_chat_names[k])) {
            *out = (dk_chat_template_kind)k;
            return DK_OK;
        }
    return dk_fail(e, DK_ERR_ARG, "chat template '%s' is unknown (auto, none, chatml, llama3, llama2)",
                   name ? name : "(null)");
}

/* ---- detection ---- */

static const char *dk_memmem(const char *h, size_t hn, const char *needle) {
    size_t n = strlen(needle);
    if (n == 0 || hn < n) return NULL;
    for (size_t i = 0; i + n <= hn; i++)
        if (h[i] == needle[0] && !memcmp(h + i, needle, n)) return h + i;
    return NULL;
}

/* Copies a Jinja string-literal body s[0..n) into out (cap bytes) with \n and \t unescaped;
 * false if it holds anything that is not constant text (quotes, braces, '+') or does not fit. */
static bool dk_literal(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\'' || c == '"' || c == '{' || c == '}' || c == '+') return false;
        if (c == '\\' && i + 1 < n) {
            char d = s[++i];
            c = d == 'n' ? '\n' : d == 't' ? '\t' : d;
        }
        if (o + 1 >= cap) return false;
        out[o++] = c;
    }
    out[o] = 0;
    return true;
}

/* ChatML default system message: the first "<|im_start|>system" + newline (escaped or not)
 * followed by constant text up to "<|im_end|>". */
static bool dk_chatml_default_system(const char *j, size_t n, char *out, size_t cap) {
    static const char marker[] = "<|im_start|>system";
    const char *end = j + n;
    for (const char *p = dk_memmem(j, n, marker); p; p = dk_memmem(p + 1, (size_t)(end - p - 1), marker)) {
        const char *q = p + sizeof marker - 1;
        if (end - q >= 2 && q[0] == '\\' && q[1] == 'n') q += 2;
        else if (q < end && q[0] == '\n') q += 1;
        else continue;
        const char *stop = dk_memmem(q, (size_t)(end - q), "<|im_end|>");
        if (stop && dk_literal(q, (size_t)(stop - q), out, cap) && out[0]) return true;
    }
    return false;
}

/* Llama-3.1+: "Cutting Knowledge Date: December 2023\nToday Date: {date_string}\n\n", date_string
 * from the template's {%- set date_string = "..." %} (or its documented default). */
static void dk_llama31_system(const char *j, size_t n, char *out, size_t cap) {
    char date[64];
    snprintf(date, sizeof date, "%s", DK_LLAMA31_DEFAULT_DATE);
    const char *p = dk_memmem(j, n, "set date_string = ");
    if (p) {
        p += strlen("set date_string = ");
        const char *end = j + n;
        if (p < end && (*p == '"' || *p == '\'')) {
            char qc = *p++;
            const char *q = memchr(p, qc, (size_t)(end - p));
            if (q && q - p > 0 && q - p < (long)sizeof date)
                snprintf(date, sizeof date, "%.*s", (int)(q - p), p);
        }
    }
    snprintf(out, cap, "Cutting Knowledge Date: December 2023\nToday Date: %s\n\n", date);
}

static void dk_detect(const char *jinja, size_t jn, const char *arch, const char *pre, dk_chat_template *t) {
    memset(t, 0, sizeof *t);
    if (jinja && jn) {
        if (dk_memmem(jinja, jn, "<|im_start|>")) {
            t->kind = DK_CHAT_TEMPLATE_CHATML;
            bool sys = dk_chatml_default_system(jinja, jn, t->system, sizeof t->system);
            if (!sys) t->system[0] = 0;
            snprintf(t->source, sizeof t->source, "tokenizer.chat_template (ChatML, %s)",
                     sys ? "its default system message" : "no default system message");
            return;
        }
        if (dk_memmem(jinja, jn, "<|start_header_id|>") && dk_memmem(jinja, jn, "<|end_header_id|>")) {
            t->kind = DK_CHAT_TEMPLATE_LLAMA3;
            bool dated = dk_memmem(jinja, jn, "Cutting Knowledge Date") != NULL;
            if (dated) dk_llama31_system(jinja, jn, t->system, sizeof t->system);
            snprintf(t->source, sizeof t->source, "tokenizer.chat_template (Llama-3%s)",
                     dated ? ".1+, dated system turn" : "");
            return;
        }
        if (dk_memmem(jinja, jn, "[INST]")) {
            t->kind = DK_CHAT_TEMPLATE_LLAMA2;
            snprintf(t->source, sizeof t->source, "tokenizer.chat_template ([INST])");
            return;
        }
    }
    const char *why = jinja && jn ? "unrecognised tokenizer.chat_template" : "no tokenizer.chat_template";
    if ((pre && (!strcmp(pre, "qwen2") || !strcmp(pre, "deepseek-r1-qwen"))) ||
        (arch && !strcmp(arch, "qwen2"))) {
        t->kind = DK_CHAT_TEMPLATE_CHATML;
        snprintf(t->system, sizeof t->system, "%s", DK_CHATML_DEFAULT_SYSTEM);
        snprintf(t->source, sizeof t->source, "%s; Qwen model (%s %s)", why,
                 pre && !strcmp(pre, "qwen2") ? "tokenizer.ggml.pre" : "general.architecture",
                 pre && !strcmp(pre, "qwen2") ? pre : arch);
        return;
    }
    if (pre && (!strcmp(pre, "llama-bpe") || !strcmp(pre, "llama3") || !strcmp(pre, "llama-v3"))) {
        t->kind = DK_CHAT_TEMPLATE_LLAMA3;
        snprintf(t->source, sizeof t->source, "%s; Llama-3 tokenizer (tokenizer.ggml.pre %s)", why, pre);
        return;
    }
    t->kind = DK_CHAT_TEMPLATE_NONE;
    snprintf(t->source, sizeof t->source, "%s", why);
}

dk_status dk_chat_template_select(const char *override, const char *system, const char *jinja,
                                  size_t jinja_len, const char *arch, const char *pre, dk_chat_template *out,
                                  dk_err *e) {
    dk_chat_template t;
    dk_detect(jinja, jinja_len, arch, pre, &t);
    if (override && strcmp(override, "auto")) {
        dk_chat_template_kind k;
        dk_status st = dk_chat_template_parse(override, &k, e);
        if (st) return st;
        if (k != t.kind) { /* the detected default system message belongs to the detected kind */
            t.kind = k;
            snprintf(t.system, sizeof t.system, "%s",
                     k == DK_CHAT_TEMPLATE_CHATML ? DK_CHATML_DEFAULT_SYSTEM : "");
        }
        snprintf(t.source, sizeof t.source, "override");
    }
    if (system) {
        if (t.kind == DK_CHAT_TEMPLATE_NONE && system[0])
            return dk_fail(e, DK_ERR_ARG, "a system message needs a chat template, but the template is none");
        if (strlen(system) >= sizeof t.system)
            return dk_fail(e, DK_ERR_ARG, "system message too long (%zu bytes, at most %zu)", strlen(system),
                           sizeof t.system - 1);
        snprintf(t.system, sizeof t.system, "%s", system);
    }
    *out = t;
    return DK_OK;
}

dk_status dk_chat_template_from_model(const struct dk_model *m, const char *override, const char *system,
                                      dk_chat_template *out, dk_err *e) {
    const char *jinja = NULL, *pre = NULL;
    size_t jn = 0;
    char prebuf[64] = "";
    const dk_gguf *g = m->format == DK_MODEL_FORMAT_GGUF ? (const dk_gguf *)m->gguf : NULL;
    if (g && dk_gguf_find_key(g, "tokenizer.chat_template") >= 0 &&
        dk_gguf_get_str(g, "tokenizer.chat_template", &jinja, &jn, NULL) != DK_OK) {
        jinja = NULL;
        jn = 0;
    }
    if (g && dk_gguf_find_key(g, "tokenizer.ggml.pre") >= 0) {
        const char *p;
        size_t pl;
        if (dk_gguf_get_str(g, "tokenizer.ggml.pre", &p, &pl, NULL) == DK_OK && pl < sizeof prebuf) {
            memcpy(prebuf, p, pl);
            prebuf[pl] = 0;
            pre = prebuf;
        }
    }
    return dk_chat_template_select(override, system, jinja, jn, g ? m->arch_name : NULL, pre, out, e);
}

/* ---- rendering ---- */

void dk_chat_parts_free(dk_chat_parts *p) {
    if (!p) return;
    free(p->prefix);
    free(p->suffix);
    p->prefix = p->suffix = NULL;
}

/* Each template's text around the user content: the prefix with a system prompt (its one %s) and
 * without one, the suffix that opens the assistant turn, and the template's two flags. */
typedef struct {
    const char *with_system, *without_system, *suffix;
    bool bos_in_text, trim_content;
} dk_chat_form;

static const dk_chat_form dk_chat_forms[] = {
    [DK_CHAT_TEMPLATE_NONE] = {"", "", "", false, false},
    [DK_CHAT_TEMPLATE_CHATML] = {"<|im_start|>system\n%s<|im_end|>\n<|im_start|>user\n", "<|im_start|>user\n",
                                 "<|im_end|>\n<|im_start|>assistant\n", false, false},
    [DK_CHAT_TEMPLATE_LLAMA3] = {"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n%s<|eot_id|>"
                                 "<|start_header_id|>user<|end_header_id|>\n\n",
                                 "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n",
                                 "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", true, true},
    [DK_CHAT_TEMPLATE_LLAMA2] = {"[INST] <<SYS>>\n%s\n<</SYS>>\n\n", "[INST] ", " [/INST]", false, false},
};

dk_status dk_chat_template_parts(const dk_chat_template *t, dk_chat_parts *out, dk_err *e) {
    memset(out, 0, sizeof *out);
    if ((unsigned)t->kind >= sizeof dk_chat_forms / sizeof dk_chat_forms[0])
        return dk_fail(e, DK_ERR_ARG, "chat template: unknown kind %d", (int)t->kind);
    const dk_chat_form *f = &dk_chat_forms[t->kind];
    size_t cap = strlen(t->system) + 256;
    out->prefix = malloc(cap);
    out->suffix = malloc(256);
    if (!out->prefix || !out->suffix) {
        dk_chat_parts_free(out);
        return dk_fail(e, DK_ERR_NOMEM, "chat template: out of memory");
    }
    if (t->system[0]) snprintf(out->prefix, cap, f->with_system, t->system);
    else snprintf(out->prefix, cap, "%s", f->without_system);
    snprintf(out->suffix, 256, "%s", f->suffix);
    out->bos_in_text = f->bos_in_text;
    out->trim_content = f->trim_content;
    out->prefix_len = strlen(out->prefix);
    out->suffix_len = strlen(out->suffix);
    return DK_OK;
}

dk_status dk_chat_template_apply(const dk_chat_template *t, const char *prompt, size_t len, char **out,
                                 size_t *out_len, dk_err *e) {
    *out = NULL;
    dk_chat_parts p;
    dk_status st = dk_chat_template_parts(t, &p, e);
    if (st) return st;
    if (p.trim_content) {
        while (len && strchr(" \t\n\v\f\r", prompt[0]) && prompt[0]) {
            prompt++;
            len--;
        }
        while (len && strchr(" \t\n\v\f\r", prompt[len - 1]) && prompt[len - 1]) len--;
    }
    size_t n = p.prefix_len + len + p.suffix_len;
    char *s = malloc(n + 1);
    if (!s) {
        dk_chat_parts_free(&p);
        return dk_fail(e, DK_ERR_NOMEM, "chat template: out of memory for %zu bytes", n);
    }
    memcpy(s, p.prefix, p.prefix_len);
    if (len) memcpy(s + p.prefix_len, prompt, len);
    memcpy(s + p.prefix_len + len, p.suffix, p.suffix_len);
    s[n] = 0;
    dk_chat_parts_free(&p);
    *out = s;
    if (out_len) *out_len = n;
    return DK_OK;
}
