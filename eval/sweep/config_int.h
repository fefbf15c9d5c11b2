/* config_int.h — config.c, config_expand.c and config_canon.c share these (not an API: config.h is). */
#ifndef DK_CONFIG_INT_H
#define DK_CONFIG_INT_H

#include "config.h"
#include "dk_common.h"

struct cJSON;

/* the most points one grid, or the whole matrix, may expand to */
#define DK_CONFIG_MAX_CELLS 1000000

/* d in JSON's shortest round-trip form; integers without a fraction. */
void dk_config_fmt_number(double d, char out[40]);
/* s as a JSON string literal appended to b. */
void dk_config_canon_string(dk_strbuf *b, const char *s);
/* Canonical JSON text of one cJSON item; malloc'd, NULL when out of memory. */
char *dk_config_canon_item(const struct cJSON *it);

/* config_expand.c: the cells of cfg (models x task points x method points, identical ones dropped)
 * from the parsed options objects of its tasks and methods. */
dk_status dk_config_expand(dk_config *cfg, const struct cJSON *tasks_opts[], const struct cJSON *meth_opts[],
                           dk_err *err);
/* config_expand.c: every point of every builtin-policy method grid parses as a cell's would. */
dk_status dk_config_check_policies(dk_config *cfg, const struct cJSON *meth_opts[], dk_err *err);

#endif
