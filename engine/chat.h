/* chat.h — chat templates: the text a chat model was trained to see around one user message.
 *
 * A template is a model property (GGUF tokenizer.chat_template), so it lives in the engine; the
 * engine knows nothing of tasks, so which tasks use it (LongBench's rule) is the caller's choice.
 * Only the single-turn case is rendered: [system turn] + user turn + the assistant header
 * (add_generation_prompt), exactly as Hugging Face's apply_chat_template renders these templates
 * for messages = [{"role": "user", "content": prompt}]. The output is split into a prefix and a
 * suffix so a caller can place context and question inside the one user turn:
 *     prefix + context + question + suffix.
 *
 * Kinds (user = the prompt):
 *   none    user
 *   chatml  [<|im_start|>system\n{system}<|im_end|>\n]<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n
 *           (Qwen2/2.5/3; the system turn only when the template has a default system message:
 *           Qwen2 "You are a helpful assistant.", Qwen2.5 "You are Qwen, created by Alibaba Cloud.
 *           You are a helpful assistant.", Qwen3 none)
 *   llama3  <|begin_of_text|>[<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>]
 *           <|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n
 *           (Llama-3.1+ templates always emit a system turn "Cutting Knowledge Date: December 2023\n
 *           Today Date: {date_string}\n\n", date_string as the template sets it, default 26 Jul 2024)
 *   llama2  [INST] [<<SYS>>\n{system}\n<</SYS>>\n\n]{user} [/INST]   (Llama-2-chat, Mistral-Instruct;
 *           BOS comes from the tokenizer, not the text)
 *
 * Selection (dk_chat_template_select): an override name wins; otherwise the contents of
 * tokenizer.chat_template (<|im_start|> -> chatml, <|start_header_id|> -> llama3, [INST] -> llama2);
 * with no template, tokenizer.ggml.pre / general.architecture (qwen2 -> chatml with Qwen2's
 * default system message, llama-bpe -> llama3, anything else -> none). `source` says which rule
 * chose, for reports. */
#ifndef DK_CHAT_H
#define DK_CHAT_H

#include "dk_common.h"
#include <stdbool.h>
#include <stddef.h>

typedef enum {
    DK_CHAT_TEMPLATE_NONE,
    DK_CHAT_TEMPLATE_CHATML,
    DK_CHAT_TEMPLATE_LLAMA3,
    DK_CHAT_TEMPLATE_LLAMA2,
} dk_chat_template_kind;

typedef struct {
    dk_chat_template_kind kind;
    char system[512]; /* system message, "" = no system turn */
    char source[160]; /* which rule chose kind and system, e.g. "tokenizer.chat_template" */
} dk_chat_template;

/* The rendered single-turn text around the user message; malloc'd, NUL-terminated. */
typedef struct {
    char *prefix;
    char *suffix;
    size_t prefix_len, suffix_len;
    bool bos_in_text;  /* the prefix starts with the BOS text (llama3): do not also add BOS */
    bool trim_content; /* the template strips the user content (llama3's "| trim"): callers that
                          assemble prefix + content + suffix strip leading/trailing whitespace of
                          the whole content first (dk_chat_template_apply does, ASCII whitespace) */
} dk_chat_parts;

struct dk_model;

/* "none", "chatml", "llama3", "llama2". */
const char *dk_chat_template_name(dk_chat_template_kind k);
/* Parses a kind name; DK_ERR_ARG naming the value and the choices otherwise. */
dk_status dk_chat_template_parse(const char *name, dk_chat_template_kind *out, dk_err *e);

/* Chooses the template. override: NULL or "auto" to detect, else a kind name. system: NULL to
 * keep the chosen default, else the system message to use ("" for none; not for "none").
 * jinja: tokenizer.chat_template (NULL if absent); arch: general.architecture; pre:
 * tokenizer.ggml.pre (each may be NULL). */
dk_status dk_chat_template_select(const char *override, const char *system, const char *jinja,
                                  size_t jinja_len, const char *arch, const char *pre, dk_chat_template *out,
                                  dk_err *e);

/* dk_chat_template_select with the model's GGUF keys (tokenizer.chat_template,
 * general.architecture, tokenizer.ggml.pre); models without a GGUF (llama2.c) give none. */
dk_status dk_chat_template_from_model(const struct dk_model *m, const char *override, const char *system,
                                      dk_chat_template *out, dk_err *e);

dk_status dk_chat_template_parts(const dk_chat_template *t, dk_chat_parts *out, dk_err *e);
void dk_chat_parts_free(dk_chat_parts *p);

/* prefix + prompt[0..len) + suffix, malloc'd and NUL-terminated (*out_len its bytes); the prompt
 * stripped of leading/trailing ASCII whitespace first when parts.trim_content. */
dk_status dk_chat_template_apply(const dk_chat_template *t, const char *prompt, size_t len, char **out,
                                 size_t *out_len, dk_err *e);

#endif
