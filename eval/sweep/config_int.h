/* config_int.h — config.c and config_canon.c share these (not an API: config.h is). */
#ifndef DK_CONFIG_INT_H
#define DK_CONFIG_INT_H

#include "dk_common.h"

struct cJSON;

/* d in JSON's shortest round-trip form; integers without a fraction. */
void dk_config_fmt_number(double d, char out[40]);
/* s as a JSON string literal appended to b. */
void dk_config_canon_string(dk_strbuf *b, const char *s);
/* Canonical JSON text of one cJSON item; malloc'd, NULL when out of memory. */
char *dk_config_canon_item(const struct cJSON *it);

#endif
