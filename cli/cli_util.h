/* cli_util.h — helpers shared by several subcommands. Like the rest of cli/, they print the one
 * error line ("dashkit CMD: message") themselves; the caller chooses the exit status. */
#ifndef DK_CLI_UTIL_H
#define DK_CLI_UTIL_H

#include "compute.h"
#include <stdio.h>
#include "policy.h"
#include "report.h"
#include "task.h"

/* s with control characters escaped (dk_escape_controls), for echoing a command-line value or a
 * path in an error line so that the line stays one line. Rotating static buffers: up to 4 results
 * are valid at once (one error line). */
const char *dk_cli_esc(const char *s);

/* one `--NAME VALUE` method-parameter option as given on the command line */
typedef struct {
    const char *name, *value;
} dk_cli_param_arg;

/* Records --NAME VALUE (pd from dk_policy_param_find) in pa[*n_pa] (room for
 * DK_POLICY_PARAM_COUNT). A parameter given twice prints "dashkit CMD: option OPT given twice"
 * and returns false. */
bool dk_cli_param_arg_add(const char *cmd, const char *opt, const dk_policy_param *pd, const char *value,
                          dk_cli_param_arg *pa, int *n_pa);

/* --method NAME, the method-parameter options (--NAME VALUE) and --compute M, as eval, prefill and
 * bench take them. */
typedef struct {
    const char *method;
    dk_cli_param_arg pa[DK_POLICY_PARAM_COUNT];
    int n_pa;
    dk_compute compute;
} dk_cli_method_args;
/* Whether option a is one of these (pd: a's method parameter, NULL when a names none); all take a
 * value. */
bool dk_cli_method_args_takes(const char *a, const dk_policy_param *pd);
/* Option a (dk_cli_method_args_takes) with its value v into m; false after printing the error line
 * (a usage error: exit 2). */
bool dk_cli_method_args_opt(const char *cmd, dk_cli_method_args *m, const char *a, const dk_policy_param *pd,
                            const char *v);

/* Turns --method NAME plus the parameter options into a policy and its parameters: dash with
 * --tau means dash-tau, dash with --keep means dash-keep (both: an error); then lookup,
 * set_text of every option in order, and validate without a layer count. On error prints
 * "dashkit CMD: message" and returns false (a usage error: exit 2). */
bool dk_cli_policy_resolve(const char *cmd, const char *method, const dk_cli_param_arg *pa, int n_pa,
                           const dk_policy **pol, dk_policy_params *pp);

/* One help line per method parameter, "  --NAME V  HELP (default D|required)": NAME padded to
 * name_width, "--NAME V" to 18 columns; policy_seed spells seed "policy-seed" (for a command
 * whose own --seed is the task's). */
void dk_cli_param_help(FILE *f, int name_width, bool policy_seed);

/* A command's non-option argument a: the first fills *slot; an unknown option ("-x") or a second
 * argument prints its error line ("dashkit CMD: unknown option '-x' (see --help)", "...:
 * unexpected argument 'a'") and returns false (a usage error: exit 2). */
bool dk_cli_positional(const char *cmd, const char *a, const char **slot);

/* ---- MODEL --task NAME [--opt KEY=VALUE]... [-z TOKENIZER] [--seed S]: one task on one model
 * (eval, analyze) ---- */
#define DK_CLI_MAX_TASK_OPTS 64
typedef struct {
    const char *model_path, *tok_path, *task_name, *seed;
    const dk_task *task; /* the one task_name names (dk_cli_task_args_check) */
    dk_task_kv kv[DK_CLI_MAX_TASK_OPTS];
    int nkv;
} dk_cli_task_args;

/* Whether option a is one of these (all take a value). */
bool dk_cli_task_args_takes(const char *a);
/* Option a (dk_cli_task_args_takes) with its value v into t; false after printing the error line
 * ("dashkit CMD: --opt: expected KEY=VALUE, got 'V'", "dashkit CMD: more than 64 --opt options"). */
bool dk_cli_task_args_opt(const char *cmd, dk_cli_task_args *t, const char *a, char *v);
/* Adds task option key=value to t; false after printing "dashkit CMD: more than 64 --opt options". */
bool dk_cli_task_args_add(const char *cmd, dk_cli_task_args *t, const char *key, const char *value);
/* After the parse: the MODEL argument and --task given, the task known (t->task set); false after
 * printing "dashkit CMD: missing MODEL (see --help)", "dashkit CMD: missing --task NAME (see
 * 'dashkit tasks')" or "dashkit CMD: unknown task 'NAME' (run 'dashkit tasks')" (a usage error:
 * exit 2). */
bool dk_cli_task_args_check(const char *cmd, dk_cli_task_args *t);

/* The samples of task (options kv[0..nkv), at most n) tokenized by tok into *set: -1 when there
 * are some; else the exit status after printing "dashkit CMD: ..." (2 for a bad option, 1 for any
 * other failure or no samples). */
int dk_cli_task_load(const char *cmd, const dk_task *task, const dk_task_kv *kv, int nkv, int n,
                     const struct dk_tokenizer *tok, dk_sample_set *set);

/* v as a whole decimal integer in lo..hi into *out; false (nothing printed) when it is not one. */
bool dk_cli_long_in(const char *v, long lo, long hi, long *out);
/* The same for option opt, false after printing "dashkit CMD: OPT 'V' is not an integer in LO..HI"
 * (a usage error: exit 2). */
bool dk_cli_parse_long(const char *cmd, const char *opt, const char *v, long lo, long hi, long *out);

/* True after printing the command's usage to stdout when a is -h or --help (exit 0). */
bool dk_cli_help(const char *a, void (*usage)(FILE *f));

/* Whether option argv[i] has its value argv[i + 1]; false after printing "dashkit CMD: option A
 * needs a value" (a usage error: exit 2). */
bool dk_cli_has_value(const char *cmd, int argc, char **argv, int i);

/* The value of option argv[*i] of a command whose value-taking options are with_val (NULL-
 * terminated), *i advanced to it; NULL after printing "dashkit CMD: unknown argument 'A' (see
 * --help)" (A not in with_val) or "dashkit CMD: option A needs a value" (a usage error: exit 2). */
const char *dk_cli_opt_value(const char *cmd, int argc, char **argv, int *i, const char *const *with_val);

/* --compute VALUE: f32 | bf16 | q8, checked against this CPU (compute.h). On error prints
 * "dashkit CMD: --compute: message" and returns false (a usage error: exit 2). */
bool dk_cli_compute_arg(const char *cmd, const char *value, dk_compute *out);
#define DK_CLI_COMPUTE_HELP                                                                             \
    "  --compute f32|bf16|q8 precision of the matrix products: f32 (default, exact), bf16 (the\n"       \
    "                     large ones on oneDNN, bf16 inputs with f32 accumulation; needs AVX512_BF16\n" \
    "                     or AMX) or q8 (bf16, and decode on Q8_0/Q5_0/Q4_K/Q6_K rows with 8-bit\n"     \
    "                     activations and integer dots, as llama.cpp)\n"

/* ---- output ---- */

/* False for a lone non-printable byte (a decoded byte piece), which generated text skips as
 * llama2.c run.c's safe_printf does. */
bool dk_cli_piece_printable(const char *piece, size_t len);

/* ---- input ---- */

/* The whole file at path ('-' = stdin), malloc'd and NUL-terminated, its size in *len; NULL with
 * a DK_ERR_IO error naming the file. */
char *dk_cli_read_file(const char *path, size_t *len, dk_err *e);

/* ---- store selections ---- */

/* --run ID: a positive integer ("dashkit CMD: --run 'V' is not a run id (a positive integer)"
 * otherwise: false). */
bool dk_cli_parse_run_id(const char *cmd, const char *v, long long *out);

/* ---- report and plot options ---- */

/* An integer >= min ("dashkit CMD: OPT 'V' is not an integer >= MIN" otherwise: -1). */
int dk_report_parse_i64(const char *cmd, const char *opt, const char *v, long long min, long long *out);
/* A CI level in (0,1) ("dashkit CMD: --level 'V' is not a number in (0,1)" otherwise: -1). */
int dk_report_parse_level(const char *cmd, const char *v, double *out);
/* The options report and plot share, a with value v: --run ID (>= 1), --boot N (0..1000000),
 * --seed S (>= 0), --level L (in (0,1)). 1: parsed into o; 0: a is none of them; -1: the error
 * line is printed (a usage error). */
int dk_report_parse_ci_opt(const char *cmd, const char *a, const char *v, dk_report_opts *o);
/* Exit status for a failed report/plot: 2 for DK_ERR_ARG (no such run/selection), else 1. */
int dk_report_exit_code(dk_status st);

/* "dashkit ARGV..." joined by spaces (recorded with runs), malloc'd; NULL when out of memory. */
char *dk_cli_command_line(int argc, char **argv);

#endif
