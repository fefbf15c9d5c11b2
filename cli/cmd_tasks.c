/* cmd_tasks.c — `dashkit tasks [NAME]`: list tasks with their options and metrics; with
 * --show, generate/load samples and print them as JSONL. */
#include "cli.h"
#include "cli_util.h"
#include "model.h"
#include "task.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void tasks_usage(FILE *f) {
    fprintf(f,
            "usage: dashkit tasks [NAME] [--show] [-n N] [--opt KEY=VALUE]... [--model FILE [--tokenizer "
            "FILE]]\n\n"
            "Without NAME: one line per task (name, family, metric, summary).\n"
            "With NAME: the task's options with their defaults.\n\n"
            "options:\n"
            "  --show              load/generate the samples and print them as JSONL (id, context,\n"
            "                      question, answers, metric, max_new_tokens, length, depth, needle_pos)\n"
            "  -n N                number of samples for --show (default 3)\n"
            "  --opt KEY=VALUE     a task option (repeatable), e.g. --opt length=8192 --opt depth=50\n"
            "  --model FILE        size generator prompts in this model's tokens (GGUF or llama2.c .bin);\n"
            "                      default: one token per byte\n"
            "  --tokenizer FILE    llama2.c tok*.bin for a llama2.c model\n"
            "  -h, --help          this help\n");
}

/* The task table (no NAME given). */
static void tasks_print_list(void) {
    printf("%-22s %-10s %-21s %s\n", "task", "family", "metric", "summary");
    for (int i = 0; i < dk_task_count(); i++) {
        const dk_task *t = dk_task_at(i);
        printf("%-22s %-10s %-21s %s\n", t->name, t->family, t->metric, t->summary);
    }
    printf("\n'dashkit tasks NAME' lists a task's options; 'dashkit tasks NAME --show' prints samples.\n");
}

/* One task's fields and its options with the values --opt gives them. */
static void tasks_print_options(const dk_task *t, const dk_task_kv *kv, int nkv) {
    printf("task: %s\nfamily: %s\nmetric: %s\nsummary: %s\n", t->name, t->family, t->metric, t->summary);
    if (t->preset && *t->preset) printf("preset: %s\n", t->preset);
    printf("options:\n");
    for (const dk_task_opt *o = t->opts; o->name; o++) {
        const char *v = dk_task_opt_value(t, kv, nkv, o->name);
        printf("  %-15s %-40s %s\n", o->name, *v ? v : "(task default)", o->help);
    }
}

/* One sample as a JSON line (--show). */
static void tasks_print_sample(const dk_task *t, const dk_sample *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", s->id);
    cJSON_AddStringToObject(o, "task", t->name);
    cJSON_AddStringToObject(o, "metric", dk_metric_name(s->metric));
    cJSON_AddNumberToObject(o, "max_new_tokens", s->max_new_tokens);
    cJSON_AddNumberToObject(o, "length", (double)s->length);
    if (s->depth >= 0) cJSON_AddNumberToObject(o, "depth", s->depth);
    if (s->needle_pos >= 0) cJSON_AddNumberToObject(o, "needle_pos", (double)s->needle_pos);
    cJSON_AddItemToObject(o, "answers",
                          cJSON_CreateStringArray((const char *const *)s->answers, s->n_answers));
    if (s->all_classes)
        cJSON_AddItemToObject(o, "all_classes",
                              cJSON_CreateStringArray((const char *const *)s->all_classes, s->n_classes));
    cJSON_AddStringToObject(o, "context", s->context);
    cJSON_AddStringToObject(o, "question", s->question);
    char *txt = cJSON_PrintUnformatted(o);
    puts(txt);
    free(txt);
    cJSON_Delete(o);
}

int dk_cmd_tasks(int argc, char **argv) {
    const char *name = NULL, *model_path = NULL, *tok_path = NULL;
    int show = 0, n = 3;
    dk_task_kv kv[64];
    int nkv = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dk_cli_help(a, tasks_usage)) return 0;
        else if (!strcmp(a, "--show")) show = 1;
        else if (!strcmp(a, "-n") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 1000000) {
                fprintf(stderr, "dashkit tasks: -n: invalid count '%s'\n", dk_cli_esc(argv[i]));
                return 2;
            }
            n = (int)v;
        } else if (!strcmp(a, "--opt") && i + 1 < argc) {
            char *eq = strchr(argv[++i], '=');
            if (!eq || eq == argv[i] || nkv == 64) {
                fprintf(stderr, "dashkit tasks: --opt: expected KEY=VALUE, got '%s'\n", dk_cli_esc(argv[i]));
                return 2;
            }
            *eq = 0;
            kv[nkv++] = (dk_task_kv){argv[i], eq + 1};
        } else if (!strcmp(a, "--model") && i + 1 < argc) model_path = argv[++i];
        else if (!strcmp(a, "--tokenizer") && i + 1 < argc) tok_path = argv[++i];
        else if (a[0] == '-') {
            fprintf(stderr, "dashkit tasks: unknown or incomplete option '%s' (see --help)\n", dk_cli_esc(a));
            return 2;
        } else if (name) {
            fprintf(stderr, "dashkit tasks: more than one task name ('%s', '%s')\n", dk_cli_esc(name),
                    dk_cli_esc(a));
            return 2;
        } else name = a;
    }
    if (!name) {
        if (show || nkv) {
            fprintf(stderr, "dashkit tasks: --show/--opt need a task NAME\n");
            return 2;
        }
        tasks_print_list();
        return 0;
    }
    const dk_task *t = dk_task_find(name);
    if (!t) {
        fprintf(stderr, "dashkit tasks: unknown task '%s' (run 'dashkit tasks')\n", dk_cli_esc(name));
        return 2;
    }
    if (!show) {
        tasks_print_options(t, kv, nkv);
        return 0;
    }
    dk_err e = {{0}};
    dk_model *m = NULL;
    dk_tok_if tok = dk_tok_if_bytes();
    if (model_path) {
        const dk_tokenizer *tk;
        if (dk_model_load(model_path, tok_path, &m, &e) != DK_OK || dk_model_tokenizer(m, &tk, &e) != DK_OK) {
            fprintf(stderr, "dashkit tasks: %s\n", e.msg);
            dk_model_free(m);
            return 1;
        }
        tok = dk_tok_if_engine(tk);
    }
    dk_sample_set set;
    dk_status st = dk_task_load(name, kv, nkv, n, &tok, &set, &e);
    if (st) {
        fprintf(stderr, "dashkit tasks: %s\n", e.msg);
        dk_model_free(m);
        return st == DK_ERR_ARG ? 2 : 1;
    }
    for (int i = 0; i < set.n; i++) {
        tasks_print_sample(t, &set.s[i]);
    }
    dk_sample_set_free(&set);
    dk_model_free(m);
    return 0;
}
