/* runner_plan.c — the runner's plan: what the parent computes before forking (runner_int.h). */
#include "runner_int.h"
#include "evaluate.h"
#include "method.h"
#include "prefill.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void dk_plan_free(dk_plan *p) {
    DK_FREE_ALL(p->model_sha, p->model_layers, p->model_info, p->model_arch, p->model_cfg, p->ord,
                p->shard_cells, p->key, p->task_key, p->cell_id, p->pol, p->pp, p->group, p->group_next,
                p->by_id);
    memset(p, 0, sizeof *p);
}

/* Every task point of the config loads (one sample, with model mi's tokenizer): option values
 * the config rules cannot judge (a haystack name, a data file) fail here, before the store. */
static dk_status dk_plan_check_tasks(const dk_config *cfg, const dk_model *m, size_t mi, dk_err *e) {
    const dk_tokenizer *tok;
    dk_status st = dk_model_tokenizer(m, &tok, e);
    if (st) return st;
    dk_tok_if ti = dk_tok_if_engine(tok);
    for (size_t i = 0; i < cfg->n_cells && !st; i++) {
        const dk_config_cell *c = &cfg->cells[i], *prev = i ? &cfg->cells[i - 1] : NULL;
        /* cells of one task point are consecutive (config.h's nesting order): check the first */
        int seen = prev && prev->model == c->model && prev->task == c->task &&
                   !strcmp(prev->task_options, c->task_options);
        if (c->model != mi || seen) continue;
        dk_task_kv kv[DK_RUNNER_MAX_KV];
        char *strs[2 * DK_RUNNER_MAX_KV] = {0};
        int n_kv = 0;
        dk_sample_set set = {0};
        dk_err te = {{0}};
        /* data read from files (LongBench) is read as the cells will: all the samples asked for
         * (the loader checks every line of the file); generators are checked on one sample */
        const dk_task *t = dk_task_find(c->task_name);
        int from_file = t && !strcmp(t->family, "longbench"), n = from_file ? (int)cfg->samples : 1;
        st = dk_task_kv_from(cfg, c, kv, strs, &n_kv, &te);
        if (!st) st = dk_task_load(c->task_name, kv, n_kv, n, &ti, &set, &te);
        if (!st && set.n < n)
            st = dk_fail(&te, DK_ERR_ARG, "task %s has %d samples, the config asks for %d", c->task_name,
                         set.n, n);
        dk_sample_set_free(&set);
        for (int k = 0; k < 2 * DK_RUNNER_MAX_KV; k++) free(strs[k]);
        if (st)
            st = dk_fail(e, st, "%s: tasks[%zu] %s %s (model %s): %s", cfg->path, c->task, c->task_name,
                         c->task_options, cfg->models[mi], te.msg);
    }
    return st;
}

dk_status dk_plan_models(const dk_config *cfg, dk_plan *p, dk_err *e) {
    p->model_sha = calloc(cfg->n_models, sizeof *p->model_sha);
    p->model_layers = calloc(cfg->n_models, sizeof *p->model_layers);
    p->model_info = calloc(cfg->n_models, sizeof *p->model_info);
    p->model_arch = calloc(cfg->n_models, sizeof *p->model_arch);
    p->model_cfg = calloc(cfg->n_models, sizeof *p->model_cfg);
    if (!p->model_sha || !p->model_layers || !p->model_info || !p->model_arch || !p->model_cfg)
        return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < cfg->n_models; i++) {
        dk_err me = {{0}};
        dk_model *m = NULL;
        dk_status st = dk_sha256_file(cfg->models[i], p->model_sha[i], &me);
        if (!st) st = dk_model_load(cfg->models[i], NULL, &m, &me);
        if (st) return dk_fail(e, st, "%s: models[%zu]: %s", cfg->path, i, me.msg);
        p->model_layers[i] = m->cfg.n_layer;
        p->model_cfg[i] = m->cfg;
        struct stat sb;
        snprintf(p->model_arch[i], sizeof p->model_arch[i], "%s", m->arch_name);
        p->model_info[i] = (dk_model_info){
            .sha256 = p->model_sha[i],
            .path = cfg->models[i],
            .arch = p->model_arch[i],
            .n_layer = m->cfg.n_layer,
            .n_embd = m->cfg.n_embd,
            .n_head = m->cfg.n_head,
            .n_head_kv = m->cfg.n_head_kv,
            .n_ff = m->cfg.n_ff,
            .n_vocab = m->cfg.n_vocab,
            .n_ctx = m->cfg.n_ctx_train,
            .n_params = m->n_params,
            .file_bytes = stat(cfg->models[i], &sb) == 0 ? (int64_t)sb.st_size : -1,
        };
        const dk_tokenizer *tok;
        st = dk_model_tokenizer(m, &tok, &me);
        if (st) {
            dk_model_free(m);
            return dk_fail(e, DK_ERR_ARG, "%s: models[%zu]: %s: %s", cfg->path, i, cfg->models[i], me.msg);
        }
        st = dk_plan_check_tasks(cfg, m, i, e);
        dk_model_free(m);
        if (st) return st;
    }
    return DK_OK;
}

/* Every cell's policy and parameters (p->pol, p->pp), parsed once and validated against its model. */
dk_status dk_plan_check_cells(const dk_config *cfg, dk_plan *p, dk_err *e) {
    size_t m = cfg->n_cells ? cfg->n_cells : 1;
    if (!(p->pol = calloc(m, sizeof *p->pol)) || !(p->pp = calloc(m, sizeof *p->pp)))
        return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < cfg->n_cells; i++) {
        const dk_config_cell *c = &cfg->cells[i];
        dk_err pe = {{0}};
        if (dk_method_parse(c->method_name, c->method_params, p->model_layers[c->model], &p->pol[i],
                            &p->pp[i], &pe))
            return dk_fail(e, DK_ERR_ARG, "%s: methods[%zu]: %s (model %s, %d layers)", cfg->path, c->method,
                           pe.msg, cfg->models[c->model], p->model_layers[c->model]);
    }
    return DK_OK;
}

/* The config's compute mode can run on this CPU (checked once, before any worker starts). */
dk_status dk_runner_check_compute(const dk_config *cfg, dk_err *e) {
    dk_err ce = {{0}};
    if (dk_compute_check(cfg->compute, &ce))
        return dk_fail(e, DK_ERR_ARG, "%s: compute: %s", cfg->path, ce.msg);
    return DK_OK;
}

dk_status dk_runner_check(const dk_config *cfg, dk_err *e) {
    dk_plan p = {0};
    dk_status st = dk_runner_check_compute(cfg, e);
    if (!st) st = dk_plan_models(cfg, &p, e);
    if (!st) st = dk_plan_check_cells(cfg, &p, e);
    dk_plan_free(&p);
    return st;
}

int dk_runner_prefix_group(const dk_config *cfg, const dk_config_cell *cell, char *buf, size_t n) {
    cJSON *o = cJSON_Parse(cell->method_params);
    if (o) dk_method_params_strip(o);
    char *params = o ? cJSON_PrintUnformatted(o) : NULL;
    char *canon = params ? dk_config_canonical_json(params) : NULL;
    cJSON *g = cJSON_CreateObject();
    cJSON_AddStringToObject(g, "model", cfg->models[cell->model]);
    cJSON_AddStringToObject(g, "task", cell->task_name);
    cJSON_AddRawToObject(g, "options", cell->task_options);
    cJSON_AddStringToObject(g, "method", cell->method_name);
    cJSON_AddRawToObject(g, "params", canon ? canon : "{}");
    char *txt = cJSON_PrintUnformatted(g);
    char *key = txt ? dk_config_canonical_json(txt) : NULL;
    int r = snprintf(buf, n, "%s", key ? key : "");
    free(key);
    free(txt);
    cJSON_Delete(g);
    free(canon);
    free(params);
    cJSON_Delete(o);
    return r;
}

/* Order of cells by (model, prefix-group key, position). */
typedef struct {
    const dk_config *cfg;
    char **keys;
} dk_group_order;

static int dk_group_cmp(const void *a, const void *b, void *ctx) {
    const dk_group_order *o = ctx;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    size_t mi = o->cfg->cells[i].model, mj = o->cfg->cells[j].model;
    if (mi != mj) return mi < mj ? -1 : 1;
    int r = strcmp(o->keys[i], o->keys[j]);
    return r ? r : (i < j ? -1 : i > j);
}

/* plan->group: cells with the same prefix-group key and model whose policy has a shareable
 * prefix (first decision layer in 1..n_layer-1) get one group index (the first member's);
 * plan->group_next links each group's members in position order (-1 ends). O(n log n). */
dk_status dk_plan_groups(const dk_config *cfg, dk_plan *p, dk_err *e) {
    size_t n = cfg->n_cells, m = n ? n : 1;
    dk_status st = DK_OK;
    p->group = malloc(m * sizeof *p->group);
    p->group_next = malloc(m * sizeof *p->group_next);
    char **keys = calloc(m, sizeof *keys);
    size_t *order = malloc(m * sizeof *order), n_sh = 0;
    if (!p->group || !p->group_next || !keys || !order) {
        st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const dk_config_cell *c = &cfg->cells[i];
        p->group[i] = -1;
        p->group_next[i] = -1;
        if (dk_eval_prefix_layer(p->pol[i], &p->pp[i], p->model_layers[c->model]) < 0) continue;
        int len = dk_runner_prefix_group(cfg, c, NULL, 0);
        if (len <= 0 || !(keys[i] = malloc((size_t)len + 1))) continue;
        dk_runner_prefix_group(cfg, c, keys[i], (size_t)len + 1);
        order[n_sh++] = i;
    }
    dk_group_order ctx = {cfg, keys};
    qsort_r(order, n_sh, sizeof *order, dk_group_cmp, &ctx);
    for (size_t k = 0; k < n_sh; k++) {
        size_t i = order[k];
        int same = k > 0 && cfg->cells[order[k - 1]].model == cfg->cells[i].model &&
                   !strcmp(keys[order[k - 1]], keys[i]);
        p->group[i] = same ? p->group[order[k - 1]] : (int)i;
        if (same) p->group_next[order[k - 1]] = (int)i;
    }
out:
    for (size_t i = 0; keys && i < n; i++) free(keys[i]);
    free(keys);
    free(order);
    return st;
}

/* Shard (1..count) of cell i (shard.h); key and group (65 bytes each, may be NULL) receive its
 * identity and sibling-group keys. */
static dk_status dk_plan_cell_shard(const dk_config *cfg, const dk_plan *p, size_t i, int count, int *shard,
                                    char *key, char *group, dk_err *e) {
    dk_config_identity id;
    char g[DK_SHA256_HEX_LEN + 1];
    dk_status st = dk_config_cell_identity(cfg, &cfg->cells[i], p->model_sha[cfg->cells[i].model], &id, e);
    if (st) return st;
    st = dk_shard_group_key(id.json, g, e);
    if (!st) {
        *shard = dk_shard_of_group(g, count);
        if (key) memcpy(key, id.key, sizeof id.key);
        if (group) memcpy(group, g, sizeof g);
    }
    dk_config_identity_free(&id);
    return st;
}

/* A shard's cells only (shard.h): *view is cfg with just the cells of shard index/count (its
 * cells array owned by the plan), p->ord their positions in the whole config. */
dk_status dk_plan_shard(const dk_config *cfg, int index, int count, dk_plan *p, dk_config *view, dk_err *e) {
    size_t n = cfg->n_cells, k = 0;
    p->shard_cells = malloc((n ? n : 1) * sizeof *p->shard_cells);
    p->ord = malloc((n ? n : 1) * sizeof *p->ord);
    if (!p->shard_cells || !p->ord) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        int shard;
        dk_status st = dk_plan_cell_shard(cfg, p, i, count, &shard, NULL, NULL, e);
        if (st) return st;
        if (shard != index) continue;
        p->shard_cells[k] = cfg->cells[i];
        p->pol[k] = p->pol[i]; /* k <= i: in place */
        p->pp[k] = p->pp[i];
        p->ord[k++] = (int64_t)i;
    }
    *view = *cfg;
    view->cells = p->shard_cells;
    view->n_cells = k;
    p->n_config_cells = n;
    return DK_OK;
}

/* Estimated prompt tokens per sample of cell i (for shard plans): the task's "length" option
 * (set or default) when it has one; otherwise the mean prompt length of its sample set in the
 * model's tokens (LongBench: the files' samples, truncated as a run truncates them). *model is
 * a lazily loaded model of cell i's config model (*model_idx), reused across calls. */
static dk_status dk_plan_cell_tokens(const dk_config *cfg, size_t i, dk_model **model, size_t *model_idx,
                                     double *tokens, dk_err *e) {
    const dk_config_cell *c = &cfg->cells[i];
    dk_task_kv kv[DK_RUNNER_MAX_KV];
    char *strs[2 * DK_RUNNER_MAX_KV] = {0};
    int n_kv = 0;
    dk_sample_set set = {0};
    dk_status st = dk_task_kv_from(cfg, c, kv, strs, &n_kv, e);
    const dk_task *t = dk_task_find(c->task_name);
    const char *len = !st && t ? dk_task_opt_value(t, kv, n_kv, "length") : NULL;
    if (!st && len && atof(len) > 0) {
        *tokens = atof(len);
        goto done;
    }
    if (!st && (!*model || *model_idx != c->model)) {
        dk_model_free(*model);
        *model = NULL;
        if (!(st = dk_model_load(cfg->models[c->model], NULL, model, e))) *model_idx = c->model;
    }
    const dk_tokenizer *tok;
    if (!st) st = dk_model_tokenizer(*model, &tok, e);
    if (!st) {
        dk_tok_if ti = dk_tok_if_engine(tok);
        st = dk_task_load(c->task_name, kv, n_kv, (int)cfg->samples, &ti, &set, e);
    }
    double sum = 0;
    for (int j = 0; !st && j < set.n; j++) {
        dk_eval_prompt pr;
        if ((st = dk_eval_prompt_build(*model, &set.s[j], dk_eval_default_budget(*model, &set.s[j]), &pr, e)))
            break;
        sum += (double)pr.p.n;
        dk_eval_prompt_free(&pr);
    }
    if (!st) *tokens = set.n > 0 ? sum / set.n : 0;
    dk_sample_set_free(&set);
done:
    for (int k = 0; k < 2 * DK_RUNNER_MAX_KV; k++) free(strs[k]);
    return st;
}

dk_status dk_runner_shard_plan(const dk_config *cfg, int n_shards, dk_shard_plan *out, dk_err *e) {
    memset(out, 0, sizeof *out);
    if (n_shards < 1 || n_shards > DK_SHARD_MAX)
        return dk_fail(e, DK_ERR_ARG, "%d shards: not in 1..%d", n_shards, DK_SHARD_MAX);
    dk_plan p = {0};
    p.cfg = cfg;
    dk_model *m = NULL;
    size_t m_idx = 0;
    dk_status st = dk_plan_models(cfg, &p, e);
    if (!st) st = dk_plan_check_cells(cfg, &p, e);
    if (!st && !(out->cells = calloc(cfg->n_cells ? cfg->n_cells : 1, sizeof *out->cells)))
        st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < cfg->n_cells; i++) {
        const dk_config_cell *c = &cfg->cells[i];
        dk_shard_cell *x = &out->cells[i];
        if ((st = dk_plan_cell_shard(cfg, &p, i, n_shards, &x->shard, x->key, x->group, e))) break;
        x->n_layer = p.model_layers[c->model];
        x->tokens = -1;
        for (size_t j = 0; j < i && x->tokens < 0; j++) /* same model and task point: same samples */
            if (cfg->cells[j].model == c->model && !strcmp(cfg->cells[j].task_name, c->task_name) &&
                !strcmp(cfg->cells[j].task_options, c->task_options))
                x->tokens = out->cells[j].tokens;
        dk_err te = {{0}};
        if (x->tokens < 0 && (st = dk_plan_cell_tokens(cfg, i, &m, &m_idx, &x->tokens, &te)))
            st = dk_fail(e, st, "%s: tasks[%zu] %s %s: estimating its tokens: %s", cfg->path, c->task,
                         c->task_name, c->task_options, te.msg);
        x->cost = x->tokens * x->n_layer * (double)cfg->samples;
        x->flops = dk_prefill_layer_flops(&p.model_cfg[c->model], x->tokens) * x->n_layer *
                   (double)cfg->samples;
    }
    dk_model_free(m);
    dk_plan_free(&p);
    if (st) {
        dk_shard_plan_free(out);
        return st;
    }
    out->n_shards = n_shards;
    out->n_cells = cfg->n_cells;
    return DK_OK;
}

/* Task options (canonical JSON of scalars) as task key/values; the config's sample-set seed is
 * the task's "seed" unless the options set one. Strings live in store (n_kv of them). */
dk_status dk_task_kv_from(const dk_config *cfg, const dk_config_cell *c, dk_task_kv *kv, char **store,
                          int *n_kv, dk_err *e) {
    *n_kv = 0;
    cJSON *o = cJSON_Parse(c->task_options);
    if (!o) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    dk_status st = DK_OK;
    int has_seed = 0;
    for (const cJSON *it = o->child; it && !st; it = it->next) {
        char num[64];
        const char *v = num;
        if (cJSON_IsString(it)) v = it->valuestring;
        else if (cJSON_IsBool(it)) v = cJSON_IsTrue(it) ? "true" : "false";
        else if (it->valuedouble == floor(it->valuedouble) && fabs(it->valuedouble) < 9e15)
            snprintf(num, sizeof num, "%lld", (long long)it->valuedouble);
        else snprintf(num, sizeof num, "%.17g", it->valuedouble);
        if (*n_kv + 1 >= DK_RUNNER_MAX_KV) {
            st = dk_fail(e, DK_ERR_ARG, "too many task options");
            break;
        }
        store[2 * *n_kv] = strdup(it->string);
        store[2 * *n_kv + 1] = strdup(v);
        kv[*n_kv] = (dk_task_kv){store[2 * *n_kv], store[2 * *n_kv + 1]};
        (*n_kv)++;
        has_seed |= !strcmp(it->string, "seed");
    }
    cJSON_Delete(o);
    const dk_task *t = dk_task_find(c->task_name);
    if (!st && !has_seed && t && dk_task_opt_value(t, kv, *n_kv, "seed")) {
        char num[32];
        snprintf(num, sizeof num, "%lld", (long long)cfg->seed);
        store[2 * *n_kv] = strdup("seed");
        store[2 * *n_kv + 1] = strdup(num);
        kv[*n_kv] = (dk_task_kv){store[2 * *n_kv], store[2 * *n_kv + 1]};
        (*n_kv)++;
    }
    return st;
}

static int dk_by_id_cmp(const void *a, const void *b, void *ctx) {
    const int64_t *id = ctx, x = id[*(const size_t *)a], y = id[*(const size_t *)b];
    return x < y ? -1 : x > y;
}

/* plan->by_id, for dk_plan_cell_index. */
dk_status dk_plan_index_ids(dk_plan *p, dk_err *e) {
    size_t n = p->cfg->n_cells;
    if (!(p->by_id = malloc((n ? n : 1) * sizeof *p->by_id)))
        return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) p->by_id[i] = i;
    qsort_r(p->by_id, n, sizeof *p->by_id, dk_by_id_cmp, p->cell_id);
    return DK_OK;
}

/* Index in the plan of the cell with store id `id`; n_cells when it is not in the plan. */
size_t dk_plan_cell_index(const dk_plan *p, int64_t id) {
    size_t lo = 0, hi = p->cfg->n_cells;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->cell_id[p->by_id[mid]] < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < p->cfg->n_cells && p->cell_id[p->by_id[lo]] == id ? p->by_id[lo] : p->cfg->n_cells;
}
