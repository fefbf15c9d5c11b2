/* config.c — JSON sweep matrices: parse (cJSON) and validate with JSON paths (the expansion into
 * cells: config_expand.c; canonical JSON and cell identities: config_canon.c). */
#include "config.h"
#include "config_int.h"
#include "chat.h"
#include "method.h"
#include "policy.h"
#include "task.h"

#include <pthread.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- builtin registry ----
 * Methods: the halting policy table itself (engine/policy.h): every policy, the names of the
 * parameters it accepts, and as defaults every accepted parameter that has one (a parameter
 * without a default, e.g. dash-tau's tau, is required: see dk_config_check_policies). Tasks: the
 * tasks registry (task.h). Built once, on first use. */

static const char *const dk_keys_none[] = {NULL};

static dk_config_entry *dk_builtin_methods;
static size_t dk_n_builtin_methods;

/* JSON object of the policy's defaults ({} when none); malloc'd, NULL on allocation failure. */
static char *dk_policy_defaults_json(const dk_policy *p) {
    char *s = malloc(1024), num[40];
    size_t o = 0;
    if (!s) return NULL;
    o += (size_t)snprintf(s + o, 1024 - o, "{");
    for (const dk_policy_param_id *q = p->params; *q != DK_POLICY_PARAM_COUNT && o < 1024; q++) {
        const dk_policy_param *d = dk_policy_param_info(*q);
        if (isnan(d->def)) continue;
        if (d->type == DK_POLICY_PARAM_BOOL) snprintf(num, sizeof num, "%s", d->def != 0 ? "true" : "false");
        else dk_config_fmt_number(d->def, num);
        o += (size_t)snprintf(s + o, 1024 - o, "%s\"%s\":%s", o > 1 ? "," : "", d->name, num);
    }
    if (o + 2 > 1024) {
        free(s);
        return NULL;
    }
    snprintf(s + o, 1024 - o, "}");
    return s;
}

static void dk_builtin_methods_init(void) {
    int n = dk_policy_count();
    dk_builtin_methods = calloc((size_t)(n > 0 ? n : 1), sizeof *dk_builtin_methods);
    for (int i = 0; dk_builtin_methods && i < n; i++) {
        const dk_policy *p = dk_policy_at(i);
        size_t k = 0;
        while (p->params[k] != DK_POLICY_PARAM_COUNT) k++;
        const char **keys = calloc(k + 1, sizeof *keys);
        for (size_t j = 0; keys && j < k; j++) keys[j] = dk_policy_param_info(p->params[j])->name;
        char *def = dk_policy_defaults_json(p);
        if (def && !strcmp(def, "{}")) {
            free(def);
            def = NULL;
        }
        dk_builtin_methods[dk_n_builtin_methods++] = (dk_config_entry){p->name, keys ? keys : dk_keys_none,
                                                                       def};
    }
}

/* Tasks come from the tasks module's registry (task.h): every task, its option names. */
static dk_config_entry *dk_builtin_tasks;
static size_t dk_n_builtin_tasks;
static dk_config_registry dk_builtin_registry;
static pthread_once_t dk_builtin_once = PTHREAD_ONCE_INIT;

static void dk_builtin_init(void) {
    int n = dk_task_count();
    dk_builtin_tasks = calloc((size_t)(n > 0 ? n : 1), sizeof *dk_builtin_tasks);
    for (int i = 0; dk_builtin_tasks && i < n; i++) {
        const dk_task *t = dk_task_at(i);
        size_t k = 0;
        while (t->opts && t->opts[k].name) k++;
        const char **keys = calloc(k + 1, sizeof *keys);
        for (size_t j = 0; keys && j < k; j++) keys[j] = t->opts[j].name;
        dk_builtin_tasks[dk_n_builtin_tasks++] = (dk_config_entry){t->name, keys ? keys : dk_keys_none, NULL};
    }
    dk_builtin_methods_init();
    dk_builtin_registry = (dk_config_registry){dk_builtin_methods, dk_n_builtin_methods, dk_builtin_tasks,
                                               dk_n_builtin_tasks};
}

const dk_config_registry *dk_config_registry_builtin(void) {
    pthread_once(&dk_builtin_once, dk_builtin_init);
    return &dk_builtin_registry;
}

/* ---- validation helpers ---- */

static const char *dk_json_type(const cJSON *v) {
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "boolean";
    if (cJSON_IsNumber(v)) return "number";
    if (cJSON_IsString(v)) return "string";
    if (cJSON_IsArray(v)) return "array";
    if (cJSON_IsObject(v)) return "object";
    return "invalid";
}

/* "got string \"abc\"" / "got number 3" / "got array" for messages. */
static void dk_describe(const cJSON *v, char *out, size_t n) {
    if (cJSON_IsString(v)) snprintf(out, n, "string \"%.60s\"", v->valuestring);
    else if (cJSON_IsNumber(v)) snprintf(out, n, "number %g", v->valuedouble);
    else if (cJSON_IsBool(v)) snprintf(out, n, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else snprintf(out, n, "%s", dk_json_type(v));
}

static int dk_is_int(const cJSON *v) {
    return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) &&
           fabs(v->valuedouble) < 9007199254740992.0;
}

typedef enum {
    DK_RULE_NUM, /* number within [lo, hi] / [lo, hi) */
    DK_RULE_INT, /* integer >= lo */
    DK_RULE_BOOL,
} dk_rule_kind;

typedef struct {
    const char *key;
    dk_rule_kind kind;
    double lo, hi;
    int hi_open; /* 1: hi excluded */
} dk_value_rule;

/* Task option rules; method parameters take theirs from the policy table (dk_policy_param_info). */
static const dk_value_rule dk_rules[] = {
    {"seed", DK_RULE_INT, 0, 0, 0},
    {"length", DK_RULE_INT, 1, 0, 0},
    {"depth", DK_RULE_NUM, 0, 100, 0},
    {"max_length", DK_RULE_INT, 1, 0, 0},
};

/* The rule for key: the policy table's parameter of that name, else the task rules above. */
static int dk_find_rule(const char *key, dk_value_rule *out) {
    const dk_policy_param *d = dk_policy_param_find(key);
    if (d) {
        dk_rule_kind k = d->type == DK_POLICY_PARAM_BOOL  ? DK_RULE_BOOL
                         : d->type == DK_POLICY_PARAM_INT ? DK_RULE_INT
                                                          : DK_RULE_NUM;
        *out = (dk_value_rule){key, k, d->lo, d->hi, d->hi_open};
        return 1;
    }
    for (size_t i = 0; i < sizeof dk_rules / sizeof dk_rules[0]; i++)
        if (!strcmp(dk_rules[i].key, key)) {
            *out = dk_rules[i];
            return 1;
        }
    return 0;
}

/* Checks one scalar value of option `key`; 0 ok, else msg = the problem (no path). */
static int dk_check_scalar(const char *key, const cJSON *v, char *msg, size_t n) {
    char got[96];
    if (!(cJSON_IsNumber(v) || cJSON_IsString(v) || cJSON_IsBool(v))) {
        dk_describe(v, got, sizeof got);
        snprintf(msg, n, "expected a number, string or boolean, got %s", got);
        return 1;
    }
    dk_value_rule rule;
    if (dk_find_rule(key, &rule)) {
        const dk_value_rule *r = &rule;
        dk_describe(v, got, sizeof got);
        if (!strcmp(key, "depth") && cJSON_IsString(v) && !strcmp(v->valuestring, "random")) return 0;
        switch (r->kind) {
        case DK_RULE_BOOL:
            if (!cJSON_IsBool(v)) {
                snprintf(msg, n, "expected true or false for %s, got %s", key, got);
                return 1;
            }
            return 0;
        case DK_RULE_INT:
            if (!dk_is_int(v) || v->valuedouble < r->lo) {
                snprintf(msg, n, "expected an integer >= %g for %s, got %s", r->lo, key, got);
                return 1;
            }
            return 0;
        case DK_RULE_NUM:
            if (!cJSON_IsNumber(v)) {
                snprintf(msg, n, "expected a number for %s, got %s", key, got);
                return 1;
            }
            double d = v->valuedouble;
            if (isinf(r->hi)) {
                if (d < r->lo) {
                    snprintf(msg, n, "%s = %g must be >= %g", key, d, r->lo);
                    return 1;
                }
            } else if (d < r->lo || d > r->hi || (r->hi_open && d == r->hi)) {
                snprintf(msg, n, "%s = %g is outside [%g,%g%c", key, d, r->lo, r->hi, r->hi_open ? ')' : ']');
                return 1;
            }
            return 0;
        }
    }
    return 0;
}

static int dk_key_listed(const char *const *keys, const char *k) {
    if (!keys) return 1;
    for (; *keys; keys++)
        if (!strcmp(*keys, k)) return 1;
    return 0;
}

static void dk_join_keys(const char *const *keys, char *out, size_t n) {
    size_t len = 0;
    out[0] = 0;
    if (!keys || !*keys) {
        snprintf(out, n, "none");
        return;
    }
    for (; *keys && len + 1 < n; keys++) len += snprintf(out + len, n - len, "%s%s", len ? ", " : "", *keys);
}

static void dk_join_names(const dk_config_entry *e, size_t ne, char *out, size_t n) {
    size_t len = 0;
    out[0] = 0;
    for (size_t i = 0; i < ne && len + 1 < n; i++)
        len += snprintf(out + len, n - len, "%s%s", i ? ", " : "", e[i].name);
}

static const dk_config_entry *dk_find_entry(const dk_config_entry *e, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(e[i].name, name)) return &e[i];
    return NULL;
}

/* Plural grid keys written in configs and the singular key each cell gets. */
static const char *dk_singular(const char *k) {
    if (!strcmp(k, "lengths")) return "length";
    if (!strcmp(k, "depths")) return "depth";
    return k;
}

/* Length of the valid UTF-8 prefix of s (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF); == strlen(s) when all of s is valid. */
static size_t dk_utf8_valid_prefix(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (p[i]) {
        unsigned c = p[i], n = c < 0x80             ? 0
                               : (c & 0xe0) == 0xc0 ? 1
                               : (c & 0xf0) == 0xe0 ? 2
                               : (c & 0xf8) == 0xf0 ? 3
                                                    : 4;
        if (n == 4 || (n == 1 && c < 0xc2)) return i;
        uint32_t cp = n == 0 ? c : c & (0x3f >> n);
        for (unsigned k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) return i;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return i;
        i += n + 1;
    }
    return i;
}

/* The first problem anywhere in the tree that cJSON lets through: a duplicate key (kept
 * silently), or a key or string that is not valid UTF-8 (it would reach the store and reports).
 * JSON path into out, the problem into why; 0 when there is none. */
static int dk_find_tree_problem(const cJSON *it, const char *path, char *out, size_t n, char *why,
                                size_t nwhy) {
    if (cJSON_IsString(it) && it->valuestring[dk_utf8_valid_prefix(it->valuestring)]) {
        snprintf(out, n, "%s", path);
        snprintf(why, nwhy, "not valid UTF-8 (byte 0x%02x at offset %zu)",
                 (unsigned char)it->valuestring[dk_utf8_valid_prefix(it->valuestring)],
                 dk_utf8_valid_prefix(it->valuestring));
        return 1;
    }
    if (cJSON_IsObject(it)) {
        for (const cJSON *a = it->child; a; a = a->next) {
            size_t bad = dk_utf8_valid_prefix(a->string);
            if (a->string[bad]) {
                snprintf(out, n, "%s%s%.*s", path, *path ? "." : "", (int)bad, a->string);
                snprintf(why, nwhy, "key not valid UTF-8 (byte 0x%02x at offset %zu)",
                         (unsigned char)a->string[bad], bad);
                return 1;
            }
            for (const cJSON *b = a->next; b; b = b->next)
                if (!strcmp(a->string, b->string)) {
                    snprintf(out, n, "%s%s%s", path, *path ? "." : "", a->string);
                    snprintf(why, nwhy, "duplicate key");
                    return 1;
                }
        }
        for (const cJSON *c = it->child; c; c = c->next) {
            char sub[512];
            snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", c->string);
            if (dk_find_tree_problem(c, sub, out, n, why, nwhy)) return 1;
        }
    } else if (cJSON_IsArray(it)) {
        int i = 0;
        for (const cJSON *c = it->child; c; c = c->next, i++) {
            char sub[512];
            snprintf(sub, sizeof sub, "%s[%d]", path, i);
            if (dk_find_tree_problem(c, sub, out, n, why, nwhy)) return 1;
        }
    }
    return 0;
}

/* ---- options of one task or method entry ---- */

/* Validates the non-"name" keys of entry object `obj` (at JSON path `where`, e.g. "methods[2]")
 * against registry entry `reg`, and returns a new object of options (plural grid keys renamed,
 * registry defaults merged for missing keys). NULL + err on a problem. */
static cJSON *dk_parse_options(const char *file, const char *where, const cJSON *obj,
                               const dk_config_entry *reg, const char *kind, int rename_plural, dk_err *err,
                               dk_status *st) {
    cJSON *opts = cJSON_CreateObject();
    char msg[512], accepted[512];
    if (!opts) {
        *st = dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", file);
        return NULL;
    }
    for (const cJSON *c = obj->child; c; c = c->next) {
        if (!strcmp(c->string, "name")) continue;
        const char *key = rename_plural ? dk_singular(c->string) : c->string;
        if (!dk_key_listed(reg->keys, key)) {
            dk_join_keys(reg->keys, accepted, sizeof accepted);
            *st = dk_fail(err, DK_ERR_ARG, "%s: %s.%s: unknown %s for %s \"%s\" (accepted: %s)", file, where,
                          c->string, kind, rename_plural ? "task" : "method", reg->name, accepted);
            goto fail;
        }
        if (cJSON_GetObjectItemCaseSensitive(opts, key)) {
            *st = dk_fail(err, DK_ERR_ARG, "%s: %s.%s: \"%s\" is given twice", file, where, c->string, key);
            goto fail;
        }
        if (cJSON_IsArray(c)) {
            if (!c->child) {
                *st = dk_fail(err, DK_ERR_ARG, "%s: %s.%s: empty grid []", file, where, c->string);
                goto fail;
            }
            int j = 0;
            for (const cJSON *v = c->child; v; v = v->next, j++)
                if (dk_check_scalar(key, v, msg, sizeof msg)) {
                    *st = dk_fail(err, DK_ERR_ARG, "%s: %s.%s[%d]: %s", file, where, c->string, j, msg);
                    goto fail;
                }
        } else if (dk_check_scalar(key, c, msg, sizeof msg)) {
            *st = dk_fail(err, DK_ERR_ARG, "%s: %s.%s: %s", file, where, c->string, msg);
            goto fail;
        }
        cJSON *dup = cJSON_Duplicate(c, 1);
        if (!dup || !cJSON_AddItemToObject(opts, key, dup)) {
            cJSON_Delete(dup);
            *st = dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", file);
            goto fail;
        }
    }
    if (reg->defaults) {
        cJSON *def = cJSON_Parse(reg->defaults);
        for (const cJSON *d = def ? def->child : NULL; d; d = d->next)
            if (!cJSON_GetObjectItemCaseSensitive(opts, d->string))
                cJSON_AddItemToObject(opts, d->string, cJSON_Duplicate(d, 1));
        cJSON_Delete(def);
    }
    return opts;
fail:
    cJSON_Delete(opts);
    return NULL;
}
/* ---- the whole document ---- */

/* "analyze": an object of samples (1..100000), ls ([0, 1]) and rho ([0, 1)), each optional. */
static dk_status dk_config_parse_analyze(const char *file, const cJSON *root, dk_config *cfg, dk_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "analyze");
    cfg->analyze_samples = 5;
    cfg->analyze_ls = 0.4;
    cfg->analyze_rho = 0.667;
    if (!v) return DK_OK;
    if (!cJSON_IsObject(v))
        return dk_fail(err, DK_ERR_ARG, "%s: analyze: expected an object {\"samples\", \"ls\", \"rho\"}",
                       file);
    for (const cJSON *k = v->child; k; k = k->next) {
        double x = k->valuedouble;
        if (!strcmp(k->string, "samples")) {
            if (!cJSON_IsNumber(k) || x != floor(x) || x < 1 || x > 100000)
                return dk_fail(err, DK_ERR_ARG, "%s: analyze.samples: expected an integer in 1..100000",
                               file);
            cfg->analyze_samples = (int64_t)x;
        } else if (!strcmp(k->string, "ls")) {
            if (!cJSON_IsNumber(k) || !(x >= 0 && x <= 1))
                return dk_fail(err, DK_ERR_ARG, "%s: analyze.ls: expected a number in [0, 1]", file);
            cfg->analyze_ls = x;
        } else if (!strcmp(k->string, "rho")) {
            if (!cJSON_IsNumber(k) || !(x >= 0 && x < 1))
                return dk_fail(err, DK_ERR_ARG, "%s: analyze.rho: expected a number in [0, 1)", file);
            cfg->analyze_rho = x;
        } else {
            return dk_fail(err, DK_ERR_ARG, "%s: analyze.%s: unknown key (expected one of: samples, ls, rho)",
                           file, k->string);
        }
    }
    cfg->analyze = 1;
    return DK_OK;
}

static const char *const dk_top_keys[] = {"name", "description", "models", "tasks",   "methods", "samples",
                                          "seed", "threads",     "chat",   "compute", "analyze", NULL};

static dk_status dk_get_int(const char *file, const cJSON *root, const char *key, int required, int64_t lo,
                            int64_t hi, int64_t def, int64_t *out, dk_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    char got[96];
    if (!v) {
        if (required) return dk_fail(err, DK_ERR_ARG, "%s: missing required key \"%s\"", file, key);
        *out = def;
        return DK_OK;
    }
    if (!dk_is_int(v) || v->valuedouble < (double)lo || v->valuedouble > (double)hi) {
        dk_describe(v, got, sizeof got);
        return dk_fail(err, DK_ERR_ARG, "%s: %s: expected an integer in [%lld, %lld], got %s", file, key,
                       (long long)lo, (long long)hi, got);
    }
    *out = (int64_t)v->valuedouble;
    return DK_OK;
}

static char *dk_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* Entries list ("tasks"/"methods"): non-empty array of objects with a string "name". */
static dk_status dk_check_list(const char *file, const cJSON *root, const char *key, const cJSON **out,
                               dk_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    char got[96];
    if (!v) return dk_fail(err, DK_ERR_ARG, "%s: missing required key \"%s\"", file, key);
    if (!cJSON_IsArray(v)) {
        dk_describe(v, got, sizeof got);
        return dk_fail(err, DK_ERR_ARG, "%s: %s: expected an array of objects, got %s", file, key, got);
    }
    if (!v->child) return dk_fail(err, DK_ERR_ARG, "%s: %s: empty list []", file, key);
    int i = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        if (!cJSON_IsObject(c)) {
            dk_describe(c, got, sizeof got);
            return dk_fail(err, DK_ERR_ARG, "%s: %s[%d]: expected an object with a \"name\", got %s", file,
                           key, i, got);
        }
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(c, "name");
        if (!nm) return dk_fail(err, DK_ERR_ARG, "%s: %s[%d]: missing required key \"name\"", file, key, i);
        if (!cJSON_IsString(nm) || !nm->valuestring[0]) {
            dk_describe(nm, got, sizeof got);
            return dk_fail(err, DK_ERR_ARG, "%s: %s[%d].name: expected a non-empty string, got %s", file, key,
                           i, got);
        }
    }
    *out = v;
    return DK_OK;
}

/* The words of one kind of entry list: "tasks"/"task"/"option" (plural grid keys renamed) or
 * "methods"/"method"/"parameter". */
typedef struct {
    const char *list, *what, *kind;
    int rename_plural;
} dk_entry_kind;
static const dk_entry_kind dk_entry_task = {"tasks", "task", "option", 1};
static const dk_entry_kind dk_entry_method = {"methods", "method", "parameter", 0};

/* Entry i of a tasks/methods list: its name found among the registry's `known` entries, its
 * options parsed into *opts, the name and the options' canonical JSON into *name / *canon. */
static dk_status dk_parse_entry(const char *file, const dk_entry_kind *k, const cJSON *c, size_t i,
                                const dk_config_entry *known, size_t n_known, const cJSON **opts, char **name,
                                char **canon, dk_err *err) {
    char where[64], buf[1024];
    dk_status st = DK_OK;
    const char *nm = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
    const dk_config_entry *e = dk_find_entry(known, n_known, nm);
    if (!e) {
        dk_join_names(known, n_known, buf, sizeof buf);
        return dk_fail(err, DK_ERR_ARG, "%s: %s[%zu].name: unknown %s \"%s\" (known: %s)", file, k->list, i,
                       k->what, nm, buf);
    }
    snprintf(where, sizeof where, "%s[%zu]", k->list, i);
    if (!(*opts = dk_parse_options(file, where, c, e, k->kind, k->rename_plural, err, &st))) return st;
    *name = dk_strdup(nm);
    *canon = dk_config_canon_item(*opts);
    if (!*name || !*canon) return dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", file);
    return DK_OK;
}

static void dk_line_col(const char *text, size_t off, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else (*col)++;
    }
}

dk_status dk_config_parse(const char *text, size_t n, const char *path, const dk_config_registry *reg,
                          dk_config **out, dk_err *err) {
    if (!reg) reg = dk_config_registry_builtin();
    *out = NULL;
    const char *file = path ? path : "<config>";
    const char *end = NULL;
    char got[96], buf[1024];
    int line, col;
    cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!root) {
        size_t off = end && end >= text && end <= text + n ? (size_t)(end - text) : 0;
        dk_line_col(text, off, &line, &col);
        return dk_fail(err, DK_ERR_FORMAT, "%s: line %d, column %d: invalid JSON", file, line, col);
    }
    for (const char *p = end; p && p < text + n && *p; p++)
        if (!strchr(" \t\r\n", *p)) {
            dk_line_col(text, (size_t)(p - text), &line, &col);
            cJSON_Delete(root);
            return dk_fail(err, DK_ERR_FORMAT,
                           "%s: line %d, column %d: unexpected text after the JSON object", file, line, col);
        }

    dk_status st = DK_OK;
    dk_config *cfg = calloc(1, sizeof *cfg);
    const cJSON **topt = NULL, **mopt = NULL;
    if (!cfg) {
        cJSON_Delete(root);
        return dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", file);
    }
    cfg->path = dk_strdup(file);
    cfg->text = malloc(n + 1);
    if (!cfg->path || !cfg->text) {
        st = dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", file);
        goto fail;
    }
    memcpy(cfg->text, text, n);
    cfg->text[n] = 0;
    dk_sha256_hex(text, n, cfg->hash);

    if (!cJSON_IsObject(root)) {
        dk_describe(root, got, sizeof got);
        st = dk_fail(err, DK_ERR_ARG, "%s: expected a JSON object at the top level, got %s", file, got);
        goto fail;
    }
    char why[128];
    if (dk_find_tree_problem(root, "", buf, sizeof buf, why, sizeof why)) {
        st = dk_fail(err, DK_ERR_ARG, "%s: %s: %s", file, buf, why);
        goto fail;
    }
    for (const cJSON *c = root->child; c; c = c->next)
        if (!dk_key_listed(dk_top_keys, c->string)) {
            dk_join_keys(dk_top_keys, buf, sizeof buf);
            st = dk_fail(err, DK_ERR_ARG, "%s: %s: unknown key (expected one of: %s)", file, c->string, buf);
            goto fail;
        }

    /* name, description */
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (v && (!cJSON_IsString(v) || !v->valuestring[0])) {
        dk_describe(v, got, sizeof got);
        st = dk_fail(err, DK_ERR_ARG, "%s: name: expected a non-empty string, got %s", file, got);
        goto fail;
    }
    if (v) cfg->name = dk_strdup(v->valuestring);
    else {
        const char *base = strrchr(file, '/');
        base = base ? base + 1 : file;
        size_t bl = strlen(base);
        if (bl > 5 && !strcmp(base + bl - 5, ".json")) bl -= 5;
        cfg->name = malloc(bl + 1);
        if (cfg->name) {
            memcpy(cfg->name, base, bl);
            cfg->name[bl] = 0;
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "description");
    if (v && !cJSON_IsString(v)) {
        dk_describe(v, got, sizeof got);
        st = dk_fail(err, DK_ERR_ARG, "%s: description: expected a string, got %s", file, got);
        goto fail;
    }
    cfg->description = dk_strdup(v ? v->valuestring : "");
    v = cJSON_GetObjectItemCaseSensitive(root, "chat");
    if (v) {
        dk_chat_template_kind ck;
        dk_err ce = {{0}};
        if (!cJSON_IsString(v)) {
            dk_describe(v, got, sizeof got);
            st = dk_fail(err, DK_ERR_ARG,
                         "%s: chat: expected a string (auto, none, chatml, llama3, llama2), got %s", file,
                         got);
            goto fail;
        }
        if (strcmp(v->valuestring, "auto") && dk_chat_template_parse(v->valuestring, &ck, &ce)) {
            st = dk_fail(err, DK_ERR_ARG, "%s: chat: %s", file, ce.msg);
            goto fail;
        }
    }
    cfg->chat = dk_strdup(v ? v->valuestring : "auto");
    v = cJSON_GetObjectItemCaseSensitive(root, "compute");
    if (v) {
        dk_err ce = {{0}};
        if (!cJSON_IsString(v)) {
            dk_describe(v, got, sizeof got);
            st = dk_fail(err, DK_ERR_ARG, "%s: compute: expected a string (f32, bf16, q8), got %s", file, got);
            goto fail;
        }
        if (dk_compute_parse(v->valuestring, &cfg->compute, &ce)) {
            st = dk_fail(err, DK_ERR_ARG, "%s: compute: %s", file, ce.msg);
            goto fail;
        }
    }
    if (!cfg->name || !cfg->description || !cfg->chat) {
        st = dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", file);
        goto fail;
    }

    /* models */
    v = cJSON_GetObjectItemCaseSensitive(root, "models");
    if (!v) {
        st = dk_fail(err, DK_ERR_ARG, "%s: missing required key \"models\"", file);
        goto fail;
    }
    if (!cJSON_IsArray(v)) {
        dk_describe(v, got, sizeof got);
        st = dk_fail(err, DK_ERR_ARG, "%s: models: expected an array of model paths, got %s", file, got);
        goto fail;
    }
    if (!v->child) {
        st = dk_fail(err, DK_ERR_ARG, "%s: models: empty list []", file);
        goto fail;
    }
    cfg->n_models = (size_t)cJSON_GetArraySize(v);
    cfg->models = calloc(cfg->n_models, sizeof *cfg->models);
    cfg->model_chat = calloc(cfg->n_models, sizeof *cfg->model_chat);
    if (!cfg->models || !cfg->model_chat) {
        st = dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", file);
        goto fail;
    }
    size_t i = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        const char *mchat = cfg->chat;
        const cJSON *pv = c; /* the path value */
        if (cJSON_IsObject(c)) {
            const cJSON *mp = cJSON_GetObjectItemCaseSensitive(c, "path"),
                        *mc = cJSON_GetObjectItemCaseSensitive(c, "chat");
            for (const cJSON *k = c->child; k; k = k->next)
                if (strcmp(k->string, "path") && strcmp(k->string, "chat")) {
                    st = dk_fail(err, DK_ERR_ARG,
                                 "%s: models[%zu].%s: unknown key (expected one of: path, chat)", file, i,
                                 k->string);
                    goto fail;
                }
            if (mc) {
                dk_chat_template_kind ck;
                dk_err ce = {{0}};
                if (!cJSON_IsString(mc)) {
                    dk_describe(mc, got, sizeof got);
                    st = dk_fail(err, DK_ERR_ARG,
                                 "%s: models[%zu].chat: expected a string (auto, none, chatml, llama3, "
                                 "llama2), got %s",
                                 file, i, got);
                    goto fail;
                }
                if (strcmp(mc->valuestring, "auto") && dk_chat_template_parse(mc->valuestring, &ck, &ce)) {
                    st = dk_fail(err, DK_ERR_ARG, "%s: models[%zu].chat: %s", file, i, ce.msg);
                    goto fail;
                }
                mchat = mc->valuestring;
            }
            if (!mp) {
                st = dk_fail(err, DK_ERR_ARG, "%s: models[%zu]: missing required key \"path\"", file, i);
                goto fail;
            }
            pv = mp;
        }
        if (!(cfg->model_chat[i] = dk_strdup(mchat))) {
            st = dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", file);
            goto fail;
        }
        if (!cJSON_IsString(pv) || !pv->valuestring[0]) {
            dk_describe(pv, got, sizeof got);
            st = dk_fail(err, DK_ERR_ARG,
                         "%s: models[%zu]%s: expected a model path (non-empty string), got %s", file, i,
                         pv == c ? "" : ".path", got);
            goto fail;
        }
        if (!(cfg->models[i] = dk_strdup(pv->valuestring))) {
            st = dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", file);
            goto fail;
        }
    }

    /* scalars */
    int64_t threads;
    if ((st = dk_get_int(file, root, "samples", 1, 1, 100000000, 0, &cfg->samples, err)) != DK_OK) goto fail;
    if ((st = dk_get_int(file, root, "seed", 0, 0, INT64_C(9007199254740991), 0, &cfg->seed, err)) != DK_OK)
        goto fail;
    if ((st = dk_get_int(file, root, "threads", 0, 0, 4096, 0, &threads, err)) != DK_OK) goto fail;
    cfg->threads = (int)threads;
    if ((st = dk_config_parse_analyze(file, root, cfg, err)) != DK_OK) goto fail;

    /* tasks and methods */
    const cJSON *tasks, *methods;
    if ((st = dk_check_list(file, root, "tasks", &tasks, err)) != DK_OK) goto fail;
    if ((st = dk_check_list(file, root, "methods", &methods, err)) != DK_OK) goto fail;
    cfg->n_tasks = (size_t)cJSON_GetArraySize(tasks);
    cfg->n_methods = (size_t)cJSON_GetArraySize(methods);
    cfg->tasks = calloc(cfg->n_tasks, sizeof *cfg->tasks);
    cfg->methods = calloc(cfg->n_methods, sizeof *cfg->methods);
    topt = calloc(cfg->n_tasks, sizeof *topt);
    mopt = calloc(cfg->n_methods, sizeof *mopt);
    if (!cfg->tasks || !cfg->methods || !topt || !mopt) {
        st = dk_fail(err, DK_ERR_NOMEM, "%s: out of memory", file);
        goto fail;
    }
    i = 0;
    for (const cJSON *c = tasks->child; c; c = c->next, i++) {
        dk_config_task *t = &cfg->tasks[i];
        if ((st = dk_parse_entry(file, &dk_entry_task, c, i, reg->tasks, reg->n_tasks, &topt[i], &t->name,
                                 &t->options, err)) != DK_OK)
            goto fail;
    }
    i = 0;
    for (const cJSON *c = methods->child; c; c = c->next, i++) {
        dk_config_method *m = &cfg->methods[i];
        if ((st = dk_parse_entry(file, &dk_entry_method, c, i, reg->methods, reg->n_methods, &mopt[i],
                                 &m->name, &m->params, err)) != DK_OK)
            goto fail;
    }

    if (reg == dk_config_registry_builtin() && (st = dk_config_check_policies(cfg, mopt, err)) != DK_OK)
        goto fail;
    if ((st = dk_config_expand(cfg, topt, mopt, err)) != DK_OK) goto fail;
    for (i = 0; i < cfg->n_tasks; i++) cJSON_Delete((cJSON *)topt[i]);
    for (i = 0; i < cfg->n_methods; i++) cJSON_Delete((cJSON *)mopt[i]);
    free(topt);
    free(mopt);
    cJSON_Delete(root);
    *out = cfg;
    return DK_OK;
fail:
    for (i = 0; topt && i < cfg->n_tasks; i++) cJSON_Delete((cJSON *)topt[i]);
    for (i = 0; mopt && i < cfg->n_methods; i++) cJSON_Delete((cJSON *)mopt[i]);
    free(topt);
    free(mopt);
    cJSON_Delete(root);
    dk_config_free(cfg);
    return st;
}

dk_status dk_config_load(const char *path, const dk_config_registry *reg, dk_config **out, dk_err *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return dk_fail(err, DK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t n;
    bool bad;
    char *text = dk_read_stream(f, 128u << 20, &n, &bad);
    fclose(f);
    if (!text) return dk_fail(err, DK_ERR_IO, "%s: too large or out of memory", path);
    if (bad) {
        free(text);
        return dk_fail(err, DK_ERR_IO, "%s: read error", path);
    }
    dk_status st = dk_config_parse(text, n, path, reg, out, err);
    free(text);
    return st;
}

void dk_config_free(dk_config *cfg) {
    if (!cfg) return;
    for (size_t i = 0; i < cfg->n_cells; i++) {
        free(cfg->cells[i].task_options);
        free(cfg->cells[i].method_params);
    }
    free(cfg->cells);
    for (size_t i = 0; cfg->models && i < cfg->n_models; i++) free(cfg->models[i]);
    free(cfg->models);
    for (size_t i = 0; cfg->model_chat && i < cfg->n_models; i++) free(cfg->model_chat[i]);
    free(cfg->model_chat);
    for (size_t i = 0; cfg->tasks && i < cfg->n_tasks; i++) {
        free(cfg->tasks[i].name);
        free(cfg->tasks[i].options);
    }
    free(cfg->tasks);
    for (size_t i = 0; cfg->methods && i < cfg->n_methods; i++) {
        free(cfg->methods[i].name);
        free(cfg->methods[i].params);
    }
    DK_FREE_ALL(cfg->methods, cfg->path, cfg->text, cfg->name, cfg->description, cfg->chat);
    free(cfg);
}
