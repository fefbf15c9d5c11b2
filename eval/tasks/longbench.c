/* longbench.c — LongBench v1 JSONL + official config reader; template split for halting. */
#include "longbench.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- files ---- */

static dk_status read_file(const char *path, char **buf, size_t *len, dk_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return dk_fail(e, DK_ERR_IO, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    for (;;) {
        if (!b) {
            fclose(f);
            return dk_fail(e, DK_ERR_NOMEM, "%s: out of memory", path);
        }
        n += fread(b + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        char *nb = realloc(b, cap *= 2);
        if (!nb) free(b);
        b = nb;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(b);
        return dk_fail(e, DK_ERR_IO, "%s: read error", path);
    }
    b[n] = 0;
    *buf = b;
    if (len) *len = n;
    return DK_OK;
}

/* The one conversion of a JSON number from these files to an integer: 1 with *out set when v is an
 * integral number in [lo, hi] (checked in double before converting), else 0. */
static int lb_json_int(const cJSON *v, double lo, double hi, long *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= lo && d <= hi) || d != floor(d)) return 0;
    *out = (long)d;
    return 1;
}

static dk_status read_json(const char *path, cJSON **out, dk_err *e) {
    char *b;
    dk_status st = read_file(path, &b, NULL, e);
    if (st) return st;
    *out = cJSON_Parse(b);
    free(b);
    if (!*out) return dk_fail(e, DK_ERR_FORMAT, "%s: invalid JSON", path);
    return DK_OK;
}

dk_status dk_longbench_config_load(const char *config_dir, const char *dataset, char **tmpl,
                                   int *max_new_tokens, dk_err *e) {
    char p1[4096], p2[4096];
    snprintf(p1, sizeof p1, "%s/dataset2prompt.json", config_dir);
    snprintf(p2, sizeof p2, "%s/dataset2maxlen.json", config_dir);
    cJSON *jp, *jm;
    dk_status st = read_json(p1, &jp, e);
    if (st) return st;
    if ((st = read_json(p2, &jm, e))) {
        cJSON_Delete(jp);
        return st;
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(jp, dataset);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(jm, dataset);
    long maxlen = 0;
    if (!cJSON_IsString(t))
        st = dk_fail(e, DK_ERR_FORMAT, "%s: no string entry for dataset '%s'", p1, dataset);
    else if (!lb_json_int(m, 1, DK_LONGBENCH_MAX_NEW_TOKENS, &maxlen))
        st = dk_fail(e, DK_ERR_FORMAT, "%s: no integer entry in 1..%d for dataset '%s'", p2,
                     DK_LONGBENCH_MAX_NEW_TOKENS, dataset);
    else if (!(*tmpl = strdup(t->valuestring))) st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
    else *max_new_tokens = (int)maxlen;
    cJSON_Delete(jp);
    cJSON_Delete(jm);
    return st;
}

/* ---- template ---- */

/* Fills tmpl[from..to) into s. */
static dk_status fmt_range(const char *tmpl, size_t from, size_t to, const char *context, const char *input,
                           dk_strbuf *s, dk_err *e) {
    if (!dk_strbuf_add(s, "", 0)) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    for (size_t i = from; i < to;) {
        char c = tmpl[i];
        if ((c == '{' || c == '}') && i + 1 < to && tmpl[i + 1] == c) {
            if (!dk_strbuf_add(s, &c, 1)) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
            i += 2;
        } else if (c == '{') {
            const char *val = NULL;
            size_t L = 0;
            if (!strncmp(tmpl + i, "{context}", 9)) {
                val = context;
                L = 9;
            } else if (!strncmp(tmpl + i, "{input}", 7)) {
                val = input;
                L = 7;
            } else return dk_fail(e, DK_ERR_FORMAT, "prompt template: unsupported field at offset %zu", i);
            if (!dk_strbuf_add(s, val, strlen(val))) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
            i += L;
        } else if (c == '}') {
            return dk_fail(e, DK_ERR_FORMAT, "prompt template: single '}' at offset %zu", i);
        } else {
            size_t j = i;
            while (j < to && tmpl[j] != '{' && tmpl[j] != '}') j++;
            if (!dk_strbuf_add(s, tmpl + i, j - i)) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
            i = j;
        }
    }
    return DK_OK;
}

/* Offset of a real (unescaped) placeholder, or -1. */
static long find_field(const char *t, const char *f) {
    for (size_t i = 0; t[i]; i++) {
        if ((t[i] == '{' || t[i] == '}') && t[i + 1] == t[i]) {
            i++;
            continue;
        }
        if (t[i] == '{' && !strncmp(t + i, f, strlen(f))) return (long)i;
    }
    return -1;
}

dk_status dk_longbench_format(const char *tmpl, const char *context, const char *input, char **ctx_part,
                              char **q_part, dk_err *e) {
    long pc = find_field(tmpl, "{context}"), pi = find_field(tmpl, "{input}");
    if (pc < 0) return dk_fail(e, DK_ERR_FORMAT, "prompt template has no {context}");
    size_t split = (pi > pc) ? (size_t)pi : (size_t)pc + 9, len = strlen(tmpl);
    dk_strbuf a = {0}, b = {0};
    dk_status st = fmt_range(tmpl, 0, split, context, input, &a, e);
    if (!st) st = fmt_range(tmpl, split, len, context, input, &b, e);
    if (st) {
        free(a.s);
        free(b.s);
        return st;
    }
    *ctx_part = a.s;
    *q_part = b.s;
    return DK_OK;
}

/* ---- JSONL ---- */

static char **strarray(const cJSON *a, int *n) {
    int k = cJSON_GetArraySize(a), i = 0;
    char **v = calloc((size_t)k + 1, sizeof(char *));
    if (!v) return NULL;
    const cJSON *it;
    cJSON_ArrayForEach(it, a) {
        if (!(v[i++] = strdup(it->valuestring))) {
            for (int j = 0; j < i; j++) free(v[j]);
            free(v);
            return NULL;
        }
    }
    *n = k;
    return v;
}

/* Checks one parsed line; returns 1 if fine, else 0 with the message in why. e: a LongBench-E
 * file, whose "dataset" field may also be "<dataset>_e". */
static int check_line(const cJSON *o, const char *dataset, int e, dk_metric m, long *length, char *why,
                      size_t nwhy) {
    static const char *const strf[] = {"input", "context", "dataset", "language", "_id"};
    if (!cJSON_IsObject(o)) {
        snprintf(why, nwhy, "not a JSON object");
        return 0;
    }
    for (size_t i = 0; i < sizeof strf / sizeof strf[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, strf[i]);
        if (!v) {
            snprintf(why, nwhy, "missing field '%s'", strf[i]);
            return 0;
        }
        if (!cJSON_IsString(v)) {
            snprintf(why, nwhy, "field '%s': expected a string", strf[i]);
            return 0;
        }
    }
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(o, "dataset");
    size_t dl = strlen(dataset);
    int ok = !strcmp(ds->valuestring, dataset) ||
             (e && !strncmp(ds->valuestring, dataset, dl) && !strcmp(ds->valuestring + dl, "_e"));
    if (!ok) {
        snprintf(why, nwhy, "field 'dataset': '%.100s' is not '%s%s'", ds->valuestring, dataset,
                 e ? "_e" : "");
        return 0;
    }
    const cJSON *len = cJSON_GetObjectItemCaseSensitive(o, "length");
    if (!len) {
        snprintf(why, nwhy, "missing field 'length'");
        return 0;
    }
    if (!lb_json_int(len, 0, DK_LONGBENCH_MAX_LENGTH, length)) {
        snprintf(why, nwhy, "field 'length': expected an integer in 0..%.0f", DK_LONGBENCH_MAX_LENGTH);
        return 0;
    }
    const cJSON *ans = cJSON_GetObjectItemCaseSensitive(o, "answers");
    if (!ans) {
        snprintf(why, nwhy, "missing field 'answers'");
        return 0;
    }
    if (!cJSON_IsArray(ans)) {
        snprintf(why, nwhy, "field 'answers': expected a list of strings");
        return 0;
    }
    if (cJSON_GetArraySize(ans) == 0) {
        snprintf(why, nwhy, "field 'answers': empty list");
        return 0;
    }
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, ans) {
        if (!cJSON_IsString(it)) {
            snprintf(why, nwhy, "field 'answers'[%d]: expected a string", i);
            return 0;
        }
        i++;
    }
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(o, "all_classes");
    if (!cl) {
        snprintf(why, nwhy, "missing field 'all_classes'");
        return 0;
    }
    if (!cJSON_IsNull(cl)) {
        if (!cJSON_IsArray(cl)) {
            snprintf(why, nwhy, "field 'all_classes': expected null or a list of strings");
            return 0;
        }
        i = 0;
        cJSON_ArrayForEach(it, cl) {
            if (!cJSON_IsString(it)) {
                snprintf(why, nwhy, "field 'all_classes'[%d]: expected a string", i);
                return 0;
            }
            i++;
        }
    } else if (m == DK_METRIC_CLASSIFICATION) {
        snprintf(why, nwhy, "field 'all_classes': null, but %s is scored by classification", dataset);
        return 0;
    }
    return 1;
}

static dk_status lb_load_file(const char *path, const char *dataset, int is_e, const char *tmpl,
                              int max_new_tokens, int n_max, dk_sample_set *out, dk_err *e) {
    memset(out, 0, sizeof *out);
    dk_metric m;
    dk_status st = dk_metric_for_dataset(dataset, &m, e);
    if (st) return st;
    char *buf;
    if ((st = read_file(path, &buf, NULL, e))) return st;
    dk_sample_set set = {0};
    int cap = 0;
    long lineno = 0;
    char *p = buf;
    while (*p) { /* every line is checked, also past the n_max samples that are built */
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        lineno++;
        char *line = p;
        p = nl ? nl + 1 : p + strlen(p);
        size_t L = strlen(line);
        while (L && (line[L - 1] == '\r' || line[L - 1] == ' ' || line[L - 1] == '\t')) line[--L] = 0;
        if (!L) continue;
        cJSON *o = cJSON_ParseWithOpts(line, NULL, 1);
        char why[512];
        long length = 0;
        if (!o) {
            st = dk_fail(e, DK_ERR_FORMAT, "%s:%ld: invalid JSON", path, lineno);
            break;
        }
        if (!check_line(o, dataset, is_e, m, &length, why, sizeof why)) {
            cJSON_Delete(o);
            st = dk_fail(e, DK_ERR_FORMAT, "%s:%ld: %s", path, lineno, why);
            break;
        }
        if (n_max > 0 && set.n >= n_max) {
            cJSON_Delete(o);
            continue;
        }
        if (set.n == cap) {
            dk_sample *ns = realloc(set.s, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *ns);
            if (!ns) {
                cJSON_Delete(o);
                st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
                break;
            }
            set.s = ns;
        }
        dk_sample *s = &set.s[set.n];
        memset(s, 0, sizeof *s);
        s->depth = -1;
        s->needle_pos = -1;
        s->metric = m;
        s->dataset = dataset;
        s->max_new_tokens = max_new_tokens;
        s->length = length;
        const char *ctx = cJSON_GetObjectItemCaseSensitive(o, "context")->valuestring;
        const char *inp = cJSON_GetObjectItemCaseSensitive(o, "input")->valuestring;
        const cJSON *cl = cJSON_GetObjectItemCaseSensitive(o, "all_classes");
        st = dk_longbench_format(tmpl, ctx, inp, &s->context, &s->question, e);
        if (!st && (!(s->id = strdup(cJSON_GetObjectItemCaseSensitive(o, "_id")->valuestring)) ||
                    !(s->answers = strarray(cJSON_GetObjectItemCaseSensitive(o, "answers"), &s->n_answers)) ||
                    (!cJSON_IsNull(cl) && !(s->all_classes = strarray(cl, &s->n_classes)))))
            st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
        cJSON_Delete(o);
        set.n++;
        if (st) break;
    }
    free(buf);
    if (st) {
        dk_sample_set_free(&set);
        return st;
    }
    if (set.n == 0) return dk_fail(e, DK_ERR_FORMAT, "%s: no samples", path);
    *out = set;
    return DK_OK;
}

dk_status dk_longbench_load_file(const char *path, const char *dataset, const char *tmpl, int max_new_tokens,
                                 int n_max, dk_sample_set *out, dk_err *e) {
    return lb_load_file(path, dataset, 0, tmpl, max_new_tokens, n_max, out, e);
}

static dk_status lb_load(const char *data_dir, const char *config_dir, const char *dataset, int is_e,
                         int n_max, dk_sample_set *out, dk_err *e) {
    char *tmpl;
    int maxlen;
    memset(out, 0, sizeof *out);
    dk_status st = dk_longbench_config_load(config_dir, dataset, &tmpl, &maxlen, e);
    if (st) return st;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s%s.jsonl", data_dir, dataset, is_e ? "_e" : "");
    st = lb_load_file(path, dataset, is_e, tmpl, maxlen, n_max, out, e);
    free(tmpl);
    return st;
}

dk_status dk_longbench_load(const char *data_dir, const char *config_dir, const char *dataset, int n_max,
                            dk_sample_set *out, dk_err *e) {
    return lb_load(data_dir, config_dir, dataset, 0, n_max, out, e);
}

dk_status dk_longbench_load_e(const char *data_dir, const char *config_dir, const char *dataset, int n_max,
                              dk_sample_set *out, dk_err *e) {
    return lb_load(data_dir, config_dir, dataset, 1, n_max, out, e);
}
