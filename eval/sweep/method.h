/* method.h — a cell's method as the engine runs it: the one route from a method's JSON
 * parameters to dk_policy_params, and the parameters that decide which cells share a prefix.
 *
 * The route: config.h writes a method grid point as canonical JSON ({"ls":0.4,"rho":0.5});
 * dk_method_parse reads it back once per cell (the config checks every grid point with it, the
 * runner parses each cell once per plan); the policy table (engine/policy.c) validates the values
 * (dk_policy_params_set, dk_policy_params_validate); evaluate.h and prefill.h receive the struct.
 * The engine never sees JSON.
 *
 * Prefix siblings: parameters the policy table flags after_decision (policy.h) change nothing
 * before the first decision layer; cells that differ only in them form a prefix group (runner.h)
 * and a shard group (shard.h). dk_method_params_strip removes them from a params object, so both
 * keys are "the cell without its after-decision parameters". */
#ifndef DK_METHOD_H
#define DK_METHOD_H

#include "dk_common.h"
#include "policy.h"

struct cJSON;

/* Policy `method` (dk_policy_lookup: "unknown method 'x' (known: ...)") and its parameters: the
 * policy's defaults, then every key of the JSON object `params_json` (numbers; true/false as
 * 1/0) set by dk_policy_params_set (unknown key, wrong type, out of range), then
 * dk_policy_params_validate for n_layer (0: the checks that need no model). */
dk_status dk_method_parse(const char *method, const char *params_json, int n_layer, const dk_policy **pol,
                          dk_policy_params *pp, dk_err *e);

/* Deletes from a method's params object every key the policy table flags after_decision. */
void dk_method_params_strip(struct cJSON *params);

#endif
