/* method.c — method parameters: JSON → dk_policy_params, prefix-sibling keys (see method.h). */
#include "method.h"

#include <cjson/cJSON.h>

dk_status dk_method_parse(const char *method, const char *params_json, int n_layer, const dk_policy **pol,
                          dk_policy_params *pp, dk_err *e) {
    dk_status st = dk_policy_lookup(method, pol, e);
    if (st) return st;
    dk_policy_params_default(pp);
    cJSON *o = cJSON_Parse(params_json);
    if (!o) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    for (const cJSON *c = o->child; c && !st; c = c->next)
        st = dk_policy_params_set(*pol, pp, c->string,
                                  cJSON_IsBool(c) ? (cJSON_IsTrue(c) ? 1.0 : 0.0) : c->valuedouble, e);
    cJSON_Delete(o);
    if (!st) st = dk_policy_params_validate(*pol, pp, n_layer, e);
    return st;
}

void dk_method_params_strip(cJSON *params) {
    for (int i = 0; i < DK_POLICY_PARAM_COUNT; i++) {
        const dk_policy_param *d = dk_policy_param_info((dk_policy_param_id)i);
        if (d->after_decision) cJSON_DeleteItemFromObjectCaseSensitive(params, d->name);
    }
}
