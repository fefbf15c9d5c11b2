/* shard.c — the pure part of sharding (see shard.h): "I/N", sibling-group keys, rendezvous. */
#include "shard.h"
#include "method.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

dk_status dk_shard_parse(const char *text, int *index, int *count, dk_err *e) {
    const char *slash = text ? strchr(text, '/') : NULL;
    char *end1 = NULL, *end2 = NULL;
    long i = 0, n = 0;
    int ok = slash && isdigit((unsigned char)text[0]) && isdigit((unsigned char)slash[1]);
    if (ok) {
        errno = 0;
        i = strtol(text, &end1, 10);
        n = strtol(slash + 1, &end2, 10);
        ok = !errno && end1 == slash && !*end2;
    }
    if (!ok)
        return dk_fail(e, DK_ERR_ARG, "--shard '%s' is not I/N (two integers, e.g. 2/8)", text ? text : "");
    if (n < 1 || n > DK_SHARD_MAX)
        return dk_fail(e, DK_ERR_ARG, "--shard '%s': N = %ld is not in 1..%d", text, n, DK_SHARD_MAX);
    if (i < 1 || i > n) return dk_fail(e, DK_ERR_ARG, "--shard '%s': I = %ld is not in 1..%ld", text, i, n);
    *index = (int)i;
    *count = (int)n;
    return DK_OK;
}

dk_status dk_shard_group_key(const char *identity_json, char out[DK_SHA256_HEX_LEN + 1], dk_err *e) {
    cJSON *o = cJSON_Parse(identity_json);
    cJSON *params = o ? cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "method"),
                                                         "params")
                      : NULL;
    if (!cJSON_IsObject(params)) {
        cJSON_Delete(o);
        return dk_fail(e, DK_ERR_FORMAT, "not a cell identity (no method.params object): %.80s",
                       identity_json);
    }
    dk_method_params_strip(params);
    char *txt = cJSON_PrintUnformatted(o);
    char *canon = txt ? dk_config_canonical_json(txt) : NULL;
    cJSON_Delete(o);
    free(txt);
    if (!canon) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    dk_sha256_hex(canon, strlen(canon), out);
    free(canon);
    return DK_OK;
}

int dk_shard_of_group(const char *group_key, int n) {
    int best = 1;
    uint8_t best_d[32] = {0};
    char buf[DK_SHA256_HEX_LEN + 16];
    for (int i = 1; i <= n; i++) {
        int len = snprintf(buf, sizeof buf, "%s:%d", group_key, i);
        dk_sha256 h;
        uint8_t d[32];
        dk_sha256_init(&h);
        dk_sha256_update(&h, buf, (size_t)len);
        dk_sha256_final(&h, d);
        if (i == 1 || memcmp(d, best_d, sizeof d) > 0) {
            best = i;
            memcpy(best_d, d, sizeof d);
        }
    }
    return best;
}

void dk_shard_plan_free(dk_shard_plan *p) {
    if (!p) return;
    free(p->cells);
    memset(p, 0, sizeof *p);
}

void dk_shard_plan_totals(const dk_shard_plan *p, int64_t *cells, double *cost, double *flops,
                          double *imbalance) {
    for (int i = 0; i <= p->n_shards; i++) {
        cells[i] = 0;
        cost[i] = 0;
        flops[i] = 0;
    }
    double total = 0, max = 0;
    for (size_t c = 0; c < p->n_cells; c++) {
        const dk_shard_cell *x = &p->cells[c];
        cells[x->shard]++;
        cost[x->shard] += x->cost;
        flops[x->shard] += x->flops;
        total += x->cost;
    }
    for (int i = 1; i <= p->n_shards; i++)
        if (cost[i] > max) max = cost[i];
    *imbalance = total > 0 ? max / (total / p->n_shards) : 0;
}
