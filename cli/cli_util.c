/* cli_util.c — helpers shared by several subcommands (see cli_util.h). */
#include "cli_util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- echoing values ---- */

const char *dk_cli_esc(const char *s) {
    static char buf[4][1024];
    static int k;
    char *b = buf[k++ % 4];
    dk_escape_controls(s ? s : "(null)", b, sizeof buf[0]);
    return b;
}

/* ---- method parameters ---- */

bool dk_cli_param_arg_add(const char *cmd, const char *opt, const dk_policy_param *pd, const char *value,
                          dk_cli_param_arg *pa, int *n_pa) {
    for (int j = 0; j < *n_pa; j++)
        if (!strcmp(pa[j].name, pd->name)) {
            fprintf(stderr, "dashkit %s: option %s given twice\n", cmd, opt);
            return false;
        }
    pa[(*n_pa)++] = (dk_cli_param_arg){pd->name, value};
    return true;
}

bool dk_cli_policy_resolve(const char *cmd, const char *method, const dk_cli_param_arg *pa, int n_pa,
                           const dk_policy **pol, dk_policy_params *pp) {
    bool has_tau = false, has_keep = false;
    for (int j = 0; j < n_pa; j++) {
        has_tau |= !strcmp(pa[j].name, "tau");
        has_keep |= !strcmp(pa[j].name, "keep");
    }
    if (!strcmp(method, "dash") && has_tau && has_keep) {
        fprintf(stderr, "dashkit %s: --tau and --keep exclude each other\n", cmd);
        return false;
    }
    if (!strcmp(method, "dash") && has_tau) method = "dash-tau";
    if (!strcmp(method, "dash") && has_keep) method = "dash-keep";
    dk_err e = {{0}};
    dk_policy_params_default(pp);
    if (dk_policy_lookup(method, pol, &e)) {
        fprintf(stderr, "dashkit %s: %s\n", cmd, e.msg);
        return false;
    }
    for (int j = 0; j < n_pa; j++)
        if (dk_policy_params_set_text(*pol, pp, pa[j].name, pa[j].value, &e)) {
            fprintf(stderr, "dashkit %s: %s\n", cmd, e.msg);
            return false;
        }
    if (dk_policy_params_validate(*pol, pp, 0, &e)) {
        fprintf(stderr, "dashkit %s: %s\n", cmd, e.msg);
        return false;
    }
    return true;
}

void dk_cli_param_help(FILE *f, int name_width, bool policy_seed) {
    for (int i = 0; i < DK_POLICY_PARAM_COUNT; i++) {
        const dk_policy_param *d = dk_policy_param_info((dk_policy_param_id)i);
        char def[32], opt[32];
        if (isnan(d->def)) snprintf(def, sizeof def, "required");
        else snprintf(def, sizeof def, "default %g", d->def);
        snprintf(opt, sizeof opt, "--%-*s V", name_width,
                 policy_seed && i == DK_POLICY_PARAM_SEED ? "policy-seed" : d->name);
        fprintf(f, "  %-18s %s (%s)\n", opt, d->help, def);
    }
}

/* ---- arguments ---- */

bool dk_cli_method_args_takes(const char *a, const dk_policy_param *pd) {
    return pd || !strcmp(a, "--method") || !strcmp(a, "--compute");
}

bool dk_cli_method_args_opt(const char *cmd, dk_cli_method_args *m, const char *a, const dk_policy_param *pd,
                            const char *v) {
    if (pd) return dk_cli_param_arg_add(cmd, a, pd, v, m->pa, &m->n_pa);
    if (!strcmp(a, "--compute")) return dk_cli_compute_arg(cmd, v, &m->compute);
    m->method = v;
    return true;
}

bool dk_cli_task_args_takes(const char *a) {
    return !strcmp(a, "-z") || !strcmp(a, "--tokenizer") || !strcmp(a, "--task") || !strcmp(a, "--opt") ||
           !strcmp(a, "--seed");
}

bool dk_cli_task_args_add(const char *cmd, dk_cli_task_args *t, const char *key, const char *value) {
    if (t->nkv == DK_CLI_MAX_TASK_OPTS) {
        fprintf(stderr, "dashkit %s: more than %d --opt options\n", cmd, DK_CLI_MAX_TASK_OPTS);
        return false;
    }
    t->kv[t->nkv++] = (dk_task_kv){key, value};
    return true;
}

bool dk_cli_task_args_opt(const char *cmd, dk_cli_task_args *t, const char *a, char *v) {
    if (!strcmp(a, "-z") || !strcmp(a, "--tokenizer")) t->tok_path = v;
    else if (!strcmp(a, "--task")) t->task_name = v;
    else if (!strcmp(a, "--seed")) t->seed = v;
    else {
        char *eq = strchr(v, '=');
        if (!eq || eq == v) {
            fprintf(stderr, "dashkit %s: --opt: expected KEY=VALUE, got '%s'\n", cmd, dk_cli_esc(v));
            return false;
        }
        *eq = 0;
        return dk_cli_task_args_add(cmd, t, v, eq + 1);
    }
    return true;
}

bool dk_cli_task_args_check(const char *cmd, dk_cli_task_args *t) {
    if (!t->model_path) fprintf(stderr, "dashkit %s: missing MODEL (see --help)\n", cmd);
    else if (!t->task_name) fprintf(stderr, "dashkit %s: missing --task NAME (see 'dashkit tasks')\n", cmd);
    else if (!(t->task = dk_task_find(t->task_name)))
        fprintf(stderr, "dashkit %s: unknown task '%s' (run 'dashkit tasks')\n", cmd,
                dk_cli_esc(t->task_name));
    return t->task != NULL;
}

bool dk_cli_long_in(const char *v, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) return false;
    *out = x;
    return true;
}

bool dk_cli_parse_long(const char *cmd, const char *opt, const char *v, long lo, long hi, long *out) {
    if (dk_cli_long_in(v, lo, hi, out)) return true;
    fprintf(stderr, "dashkit %s: %s '%s' is not an integer in %ld..%ld\n", cmd, opt, dk_cli_esc(v), lo, hi);
    return false;
}

bool dk_cli_positional(const char *cmd, const char *a, const char **slot) {
    if (a[0] == '-' && a[1]) {
        fprintf(stderr, "dashkit %s: unknown option '%s' (see --help)\n", cmd, dk_cli_esc(a));
        return false;
    }
    if (*slot) {
        fprintf(stderr, "dashkit %s: unexpected argument '%s'\n", cmd, dk_cli_esc(a));
        return false;
    }
    *slot = a;
    return true;
}

/* ---- input ---- */

bool dk_cli_piece_printable(const char *piece, size_t len) {
    return !(len == 1 && !(isprint((unsigned char)piece[0]) || isspace((unsigned char)piece[0])));
}

char *dk_cli_read_file(const char *path, size_t *len, dk_err *e) {
    bool in = !strcmp(path, "-");
    FILE *f = in ? stdin : fopen(path, "rb");
    if (!f) {
        dk_fail(e, DK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t n;
    bool bad;
    char *s = dk_read_stream(f, 0, &n, &bad);
    if (!in) fclose(f);
    if (!s || bad) {
        dk_fail(e, DK_ERR_IO, "%s: %s", path, s ? "read error" : "out of memory");
        free(s);
        return NULL;
    }
    *len = n;
    return s;
}

/* ---- store selections ---- */

bool dk_cli_parse_run_id(const char *cmd, const char *v, long long *out) {
    char *end;
    long long x = strtoll(v, &end, 10);
    if (*end || end == v || x <= 0) {
        fprintf(stderr, "dashkit %s: --run '%s' is not a run id (a positive integer)\n", cmd, dk_cli_esc(v));
        return false;
    }
    *out = x;
    return true;
}

/* ---- report and plot options ---- */

int dk_report_parse_i64(const char *cmd, const char *opt, const char *v, long long min, long long *out) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end || end == v || x < min) {
        fprintf(stderr, "dashkit %s: %s '%s' is not an integer >= %lld\n", cmd, opt, dk_cli_esc(v), min);
        return -1;
    }
    *out = x;
    return 0;
}

int dk_report_parse_level(const char *cmd, const char *v, double *out) {
    char *end;
    double x = strtod(v, &end);
    if (*end || end == v || !(x > 0 && x < 1)) {
        fprintf(stderr, "dashkit %s: --level '%s' is not a number in (0,1)\n", cmd, dk_cli_esc(v));
        return -1;
    }
    *out = x;
    return 0;
}

int dk_report_exit_code(dk_status st) { return st == DK_ERR_ARG ? 2 : 1; }

int dk_report_parse_ci_opt(const char *cmd, const char *a, const char *v, dk_report_opts *o) {
    long long x;
    if (!strcmp(a, "--run")) {
        if (dk_report_parse_i64(cmd, a, v, 1, &x)) return -1;
        o->run_id = x;
    } else if (!strcmp(a, "--boot")) {
        if (dk_report_parse_i64(cmd, a, v, 0, &x)) return -1;
        if (x > 1000000) {
            fprintf(stderr, "dashkit %s: --boot %lld is more than 1000000\n", cmd, x);
            return -1;
        }
        o->n_boot = (int)x;
    } else if (!strcmp(a, "--seed")) {
        if (dk_report_parse_i64(cmd, a, v, 0, &x)) return -1;
        o->seed = (uint64_t)x;
    } else if (!strcmp(a, "--level")) {
        if (dk_report_parse_level(cmd, v, &o->level)) return -1;
    } else return 0;
    return 1;
}

const char *dk_cli_opt_value(const char *cmd, int argc, char **argv, int *i, const char *const *with_val) {
    const char *a = argv[*i];
    bool known = false;
    for (int k = 0; with_val[k]; k++) known = known || !strcmp(a, with_val[k]);
    if (!known) {
        fprintf(stderr, "dashkit %s: unknown argument '%s' (see --help)\n", cmd, dk_cli_esc(a));
        return NULL;
    }
    if (!dk_cli_has_value(cmd, argc, argv, *i)) return NULL;
    return argv[++*i];
}

int dk_cli_task_load(const char *cmd, const dk_task *task, const dk_task_kv *kv, int nkv, int n,
                     const struct dk_tokenizer *tok, dk_sample_set *set) {
    dk_err e = {{0}};
    dk_tok_if ti = dk_tok_if_engine(tok);
    dk_status st = dk_task_load(task->name, kv, nkv, n, &ti, set, &e);
    if (st) {
        fprintf(stderr, "dashkit %s: %s\n", cmd, e.msg);
        return st == DK_ERR_ARG ? 2 : 1;
    }
    if (set->n == 0) {
        fprintf(stderr, "dashkit %s: task %s has no samples\n", cmd, task->name);
        return 1;
    }
    return -1;
}

bool dk_cli_help(const char *a, void (*usage)(FILE *f)) {
    if (strcmp(a, "-h") && strcmp(a, "--help")) return false;
    usage(stdout);
    return true;
}

bool dk_cli_has_value(const char *cmd, int argc, char **argv, int i) {
    if (i + 1 < argc) return true;
    fprintf(stderr, "dashkit %s: option %s needs a value\n", cmd, argv[i]);
    return false;
}

bool dk_cli_compute_arg(const char *cmd, const char *value, dk_compute *out) {
    dk_err e = {{0}};
    if (dk_compute_parse(value, out, &e) || dk_compute_check(*out, &e)) {
        fprintf(stderr, "dashkit %s: --compute: %s\n", cmd, e.msg);
        return false;
    }
    return true;
}

char *dk_cli_command_line(int argc, char **argv) {
    size_t len = 16;
    for (int i = 0; i < argc; i++) len += strlen(argv[i]) + 1;
    char *cmd = malloc(len);
    if (!cmd) return NULL;
    strcpy(cmd, "dashkit");
    for (int i = 0; i < argc; i++) {
        strcat(cmd, " ");
        strcat(cmd, argv[i]);
    }
    return cmd;
}
