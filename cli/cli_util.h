/* cli_util.h — helpers shared by several subcommands. Like the rest of cli/, they print the one
 * error line ("dashkit CMD: message") themselves; the caller chooses the exit status. */
#ifndef DK_CLI_UTIL_H
#define DK_CLI_UTIL_H

#include "policy.h"

/* one `--NAME VALUE` method-parameter option as given on the command line */
typedef struct { const char *name, *value; } dk_cli_param_arg;

/* Records --NAME VALUE (pd from dk_policy_param_find) in pa[*n_pa] (room for
 * DK_POLICY_PARAM_COUNT). A parameter given twice prints "dashkit CMD: option OPT given twice"
 * and returns false. */
bool dk_cli_param_arg_add(const char *cmd, const char *opt, const dk_policy_param *pd, const char *value,
                          dk_cli_param_arg *pa, int *n_pa);

/* Turns --method NAME plus the parameter options into a policy and its parameters: dash with
 * --tau means dash-tau, dash with --keep means dash-keep (both: an error); then lookup,
 * set_text of every option in order, and validate without a layer count. On error prints
 * "dashkit CMD: message" and returns false (a usage error: exit 2). */
bool dk_cli_policy_resolve(const char *cmd, const char *method, const dk_cli_param_arg *pa, int n_pa,
                           const dk_policy **pol, dk_policy_params *pp);

#endif
