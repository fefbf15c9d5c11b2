/* cli_util.c — helpers shared by several subcommands (see cli_util.h). */
#include "cli_util.h"

#include <stdio.h>
#include <string.h>

/* ---- method parameters ---- */

bool dk_cli_param_arg_add(const char *cmd, const char *opt, const dk_policy_param *pd, const char *value,
                          dk_cli_param_arg *pa, int *n_pa) {
    for (int j = 0; j < *n_pa; j++)
        if (!strcmp(pa[j].name, pd->name)) { fprintf(stderr, "dashkit %s: option %s given twice\n", cmd, opt); return false; }
    pa[(*n_pa)++] = (dk_cli_param_arg){pd->name, value};
    return true;
}

bool dk_cli_policy_resolve(const char *cmd, const char *method, const dk_cli_param_arg *pa, int n_pa,
                           const dk_policy **pol, dk_policy_params *pp) {
    bool has_tau = false, has_keep = false;
    for (int j = 0; j < n_pa; j++) { has_tau |= !strcmp(pa[j].name, "tau"); has_keep |= !strcmp(pa[j].name, "keep"); }
    if (!strcmp(method, "dash") && has_tau && has_keep) { fprintf(stderr, "dashkit %s: --tau and --keep exclude each other\n", cmd); return false; }
    if (!strcmp(method, "dash") && has_tau) method = "dash-tau";
    if (!strcmp(method, "dash") && has_keep) method = "dash-keep";
    dk_err e = {{0}};
    dk_policy_params_default(pp);
    if (dk_policy_lookup(method, pol, &e)) { fprintf(stderr, "dashkit %s: %s\n", cmd, e.msg); return false; }
    for (int j = 0; j < n_pa; j++)
        if (dk_policy_params_set_text(*pol, pp, pa[j].name, pa[j].value, &e)) { fprintf(stderr, "dashkit %s: %s\n", cmd, e.msg); return false; }
    if (dk_policy_params_validate(*pol, pp, 0, &e)) { fprintf(stderr, "dashkit %s: %s\n", cmd, e.msg); return false; }
    return true;
}
