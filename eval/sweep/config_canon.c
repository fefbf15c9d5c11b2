/* config_canon.c — canonical JSON (sorted keys, shortest round-trip numbers) and a cell's identity
 * (its key and task key): what makes results reusable across runs and stores (config.h). */
#include "config.h"
#include "config_int.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- canonical JSON ---- */

void dk_config_fmt_number(double d, char out[40]) {
    if (d == 0) {
        strcpy(out, "0");
        return;
    }
    if (d == floor(d) && fabs(d) < 9007199254740992.0) {
        snprintf(out, 40, "%.0f", d);
        return;
    }
    for (int p = 15; p <= 17; p++) {
        snprintf(out, 40, "%.*g", p, d);
        if (strtod(out, NULL) == d) return;
    }
}

void dk_config_canon_string(dk_strbuf *b, const char *s) {
    dk_strbuf_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': dk_strbuf_adds(b, "\\\""); break;
        case '\\': dk_strbuf_adds(b, "\\\\"); break;
        case '\b': dk_strbuf_adds(b, "\\b"); break;
        case '\f': dk_strbuf_adds(b, "\\f"); break;
        case '\n': dk_strbuf_adds(b, "\\n"); break;
        case '\r': dk_strbuf_adds(b, "\\r"); break;
        case '\t': dk_strbuf_adds(b, "\\t"); break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                dk_strbuf_adds(b, esc);
            } else dk_strbuf_add(b, (const char *)p, 1);
        }
    }
    dk_strbuf_add(b, "\"", 1);
}

static int dk_cmp_item_key(const void *a, const void *b) {
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return strcmp(x->string, y->string);
}

static void dk_canon(dk_strbuf *b, const cJSON *it) {
    char num[40];
    if (cJSON_IsNull(it)) dk_strbuf_adds(b, "null");
    else if (cJSON_IsTrue(it)) dk_strbuf_adds(b, "true");
    else if (cJSON_IsFalse(it)) dk_strbuf_adds(b, "false");
    else if (cJSON_IsNumber(it)) {
        dk_config_fmt_number(it->valuedouble, num);
        dk_strbuf_adds(b, num);
    } else if (cJSON_IsString(it)) dk_config_canon_string(b, it->valuestring);
    else if (cJSON_IsArray(it)) {
        dk_strbuf_add(b, "[", 1);
        int first = 1;
        for (const cJSON *c = it->child; c; c = c->next, first = 0) {
            if (!first) dk_strbuf_add(b, ",", 1);
            dk_canon(b, c);
        }
        dk_strbuf_add(b, "]", 1);
    } else if (cJSON_IsObject(it)) {
        size_t n = 0;
        for (const cJSON *c = it->child; c; c = c->next) n++;
        const cJSON **kids = malloc((n ? n : 1) * sizeof *kids);
        if (!kids) {
            b->oom = 1;
            return;
        }
        n = 0;
        for (const cJSON *c = it->child; c; c = c->next) kids[n++] = c;
        qsort(kids, n, sizeof *kids, dk_cmp_item_key);
        dk_strbuf_add(b, "{", 1);
        for (size_t i = 0; i < n; i++) {
            if (i) dk_strbuf_add(b, ",", 1);
            dk_config_canon_string(b, kids[i]->string);
            dk_strbuf_add(b, ":", 1);
            dk_canon(b, kids[i]);
        }
        dk_strbuf_add(b, "}", 1);
        free(kids);
    }
}

char *dk_config_canon_item(const cJSON *it) {
    dk_strbuf b = {0};
    dk_canon(&b, it);
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

char *dk_config_canonical_json(const char *json) {
    cJSON *it = cJSON_Parse(json);
    if (!it) return NULL;
    char *s = dk_config_canon_item(it);
    cJSON_Delete(it);
    return s;
}

/* ---- identity ---- */

dk_status dk_config_cell_identity(const dk_config *cfg, const dk_config_cell *cell, const char *model_sha256,
                                  dk_config_identity *id, dk_err *err) {
    memset(id, 0, sizeof *id);
    size_t hl = model_sha256 ? strlen(model_sha256) : 0;
    if (hl != DK_SHA256_HEX_LEN || strspn(model_sha256, "0123456789abcdef") != hl)
        return dk_fail(err, DK_ERR_ARG, "model sha256 must be %d lower-case hex digits", DK_SHA256_HEX_LEN);
    dk_strbuf task = {0}, b = {0};
    dk_strbuf_adds(&task, "{\"name\":");
    dk_config_canon_string(&task, cell->task_name);
    dk_strbuf_adds(&task, ",\"options\":");
    dk_strbuf_adds(&task, cell->task_options);
    const char *chat = cfg->model_chat && cell->model < cfg->n_models ? cfg->model_chat[cell->model]
                                                                      : cfg->chat;
    if (chat && strcmp(chat, "auto")) { /* absent for auto: keys of earlier stores stay valid */
        dk_strbuf_adds(&task, ",\"chat\":");
        dk_config_canon_string(&task, chat);
    }
    if (cfg->compute != DK_COMPUTE_F32) { /* absent for f32, as chat for auto */
        dk_strbuf_adds(&task, ",\"compute\":");
        dk_config_canon_string(&task, dk_compute_name(cfg->compute));
    }
    dk_strbuf_adds(&task, "}");
    char num[64];
    dk_strbuf_adds(&b, "{\"method\":{\"name\":");
    dk_config_canon_string(&b, cell->method_name);
    dk_strbuf_adds(&b, ",\"params\":");
    dk_strbuf_adds(&b, cell->method_params);
    dk_strbuf_adds(&b, "},\"model\":\"");
    dk_strbuf_adds(&b, model_sha256);
    snprintf(num, sizeof num, "\",\"samples\":{\"n\":%lld,\"seed\":%lld},\"task\":", (long long)cfg->samples,
             (long long)cfg->seed);
    dk_strbuf_adds(&b, num);
    if (task.s) dk_strbuf_adds(&b, task.s);
    dk_strbuf_adds(&b, "}");
    dk_strbuf tk = {0};
    snprintf(num, sizeof num, "{\"seed\":%lld,\"task\":", (long long)cfg->seed);
    dk_strbuf_adds(&tk, num);
    if (task.s) dk_strbuf_adds(&tk, task.s);
    dk_strbuf_adds(&tk, "}");
    dk_status st = DK_OK;
    if (task.oom || b.oom || tk.oom || !b.s || !tk.s) st = dk_fail(err, DK_ERR_NOMEM, "out of memory");
    else {
        dk_sha256_hex(b.s, b.n, id->key);
        dk_sha256_hex(tk.s, tk.n, id->task_key);
        id->json = b.s;
        b.s = NULL;
    }
    free(task.s);
    free(b.s);
    free(tk.s);
    return st;
}

void dk_config_identity_free(dk_config_identity *id) {
    if (!id) return;
    free(id->json);
    id->json = NULL;
}
