/* runner.c — config-matrix runner: plan, record, fork workers, claim and run cells (see runner.h). */
#include "runner.h"
#include "analyze.h"
#include "blas.h"
#include "evaluate.h"
#include "model.h"
#include "policy.h"
#include "prefill.h"
#include "method.h"
#include "sha256.h"
#include "shard.h"
#include "store.h"
#include "task.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* OpenBLAS's own setter (declared in its cblas.h, which eval/ is not compiled against). */
extern void openblas_set_num_threads(int n);

#define DK_RUNNER_MAX_KV 64

void dk_runner_opts_default(dk_runner_opts *o) {
    memset(o, 0, sizeof *o);
    o->db_path = "results/dashkit.db";
    o->workers = 1;
    o->lease_s = 1800;
    o->progress_interval_s = 0.5;
    o->prefix_sharing = 1;
}

/* ---- the plan: what the parent computes before forking (inherited by workers) ---- */

typedef struct {
    const dk_config *cfg;
    char (*model_sha)[DK_SHA256_HEX_LEN + 1]; /* (n_models) */
    int *model_layers;                        /* (n_models) n_layer */
    dk_model_info *model_info;                /* (n_models) metadata for the models table */
    char (*model_arch)[16];                   /* (n_models) */
    dk_model_config *model_cfg;               /* (n_models) */
    int64_t *ord;                             /* (n_cells) a shard's cells: position in the whole config; else NULL */
    dk_config_cell *shard_cells;              /* a shard's cells (the view's cells array); else NULL */
    size_t n_config_cells;                    /* cells of the whole config */
    char (*key)[DK_SHA256_HEX_LEN + 1];       /* (n_cells) cell identity key */
    char (*task_key)[DK_SHA256_HEX_LEN + 1];  /* (n_cells) */
    int64_t *cell_id;                         /* (n_cells) store ids */
    const dk_policy **pol;                    /* (n_cells) each cell's policy and parameters, parsed once */
    dk_policy_params *pp;                     /* (n_cells) (dk_method_parse, validated for its model) */
    int *group;                               /* (n_cells) prefix group (cells differing only in after-decision
                                                 parameters, method.h, whose prefix is shareable), -1 = none;
                                                 NULL = sharing off */
    int *group_next;                          /* (n_cells) next member of the cell's group, -1 = last */
    size_t *by_id;                            /* (n_cells) cell indices sorted by cell_id (claims) */
    int64_t run_id;
    double lease_s;
    const char *db_path;
} dk_plan;

static void dk_plan_free(dk_plan *p) {
    free(p->model_sha);
    free(p->model_layers);
    free(p->model_info);
    free(p->model_arch);
    free(p->model_cfg);
    free(p->ord);
    free(p->shard_cells);
    free(p->key);
    free(p->task_key);
    free(p->cell_id);
    free(p->pol);
    free(p->pp);
    free(p->group);
    free(p->group_next);
    free(p->by_id);
    memset(p, 0, sizeof *p);
}

static dk_status dk_task_kv_from(const dk_config *cfg, const dk_config_cell *c, dk_task_kv *kv, char **store, int *n_kv,
                                 dk_err *e);

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
        int seen = prev && prev->model == c->model && prev->task == c->task && !strcmp(prev->task_options, c->task_options);
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
            st = dk_fail(&te, DK_ERR_ARG, "task %s has %d samples, the config asks for %d", c->task_name, set.n, n);
        dk_sample_set_free(&set);
        for (int k = 0; k < 2 * DK_RUNNER_MAX_KV; k++) free(strs[k]);
        if (st) st = dk_fail(e, st, "%s: tasks[%zu] %s %s (model %s): %s", cfg->path, c->task, c->task_name, c->task_options,
                             cfg->models[mi], te.msg);
    }
    return st;
}

static dk_status dk_plan_models(const dk_config *cfg, dk_plan *p, dk_err *e) {
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
            .sha256 = p->model_sha[i], .path = cfg->models[i], .arch = p->model_arch[i], .n_layer = m->cfg.n_layer,
            .n_embd = m->cfg.n_embd, .n_head = m->cfg.n_head, .n_head_kv = m->cfg.n_head_kv, .n_ff = m->cfg.n_ff,
            .n_vocab = m->cfg.n_vocab, .n_ctx = m->cfg.n_ctx_train, .n_params = m->n_params,
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
static dk_status dk_plan_check_cells(const dk_config *cfg, dk_plan *p, dk_err *e) {
    size_t m = cfg->n_cells ? cfg->n_cells : 1;
    if (!(p->pol = calloc(m, sizeof *p->pol)) || !(p->pp = calloc(m, sizeof *p->pp)))
        return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < cfg->n_cells; i++) {
        const dk_config_cell *c = &cfg->cells[i];
        dk_err pe = {{0}};
        if (dk_method_parse(c->method_name, c->method_params, p->model_layers[c->model], &p->pol[i], &p->pp[i], &pe))
            return dk_fail(e, DK_ERR_ARG, "%s: methods[%zu]: %s (model %s, %d layers)", cfg->path, c->method, pe.msg,
                           cfg->models[c->model], p->model_layers[c->model]);
    }
    return DK_OK;
}

/* The config's compute mode can run on this CPU (checked once, before any worker starts). */
static dk_status dk_runner_check_compute(const dk_config *cfg, dk_err *e) {
    dk_err ce = {{0}};
    if (dk_compute_check(cfg->compute, &ce)) return dk_fail(e, DK_ERR_ARG, "%s: compute: %s", cfg->path, ce.msg);
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
typedef struct { const dk_config *cfg; char **keys; } dk_group_order;

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
static dk_status dk_plan_groups(const dk_config *cfg, dk_plan *p, dk_err *e) {
    size_t n = cfg->n_cells, m = n ? n : 1;
    dk_status st = DK_OK;
    p->group = malloc(m * sizeof *p->group);
    p->group_next = malloc(m * sizeof *p->group_next);
    char **keys = calloc(m, sizeof *keys);
    size_t *order = malloc(m * sizeof *order), n_sh = 0;
    if (!p->group || !p->group_next || !keys || !order) { st = dk_fail(e, DK_ERR_NOMEM, "out of memory"); goto out; }
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
        int same = k > 0 && cfg->cells[order[k - 1]].model == cfg->cells[i].model && !strcmp(keys[order[k - 1]], keys[i]);
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
static dk_status dk_plan_cell_shard(const dk_config *cfg, const dk_plan *p, size_t i, int count, int *shard, char *key,
                                    char *group, dk_err *e) {
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
static dk_status dk_plan_shard(const dk_config *cfg, int index, int count, dk_plan *p, dk_config *view, dk_err *e) {
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
static dk_status dk_plan_cell_tokens(const dk_config *cfg, size_t i, dk_model **model, size_t *model_idx, double *tokens,
                                     dk_err *e) {
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
        if ((st = dk_eval_prompt_build(*model, &set.s[j], dk_eval_default_budget(*model, &set.s[j]), &pr, e))) break;
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
            st = dk_fail(e, st, "%s: tasks[%zu] %s %s: estimating its tokens: %s", cfg->path, c->task, c->task_name,
                         c->task_options, te.msg);
        x->cost = x->tokens * x->n_layer * (double)cfg->samples;
        x->flops = dk_prefill_layer_flops(&p.model_cfg[c->model], x->tokens) * x->n_layer * (double)cfg->samples;
    }
    dk_model_free(m);
    dk_plan_free(&p);
    if (st) { dk_shard_plan_free(out); return st; }
    out->n_shards = n_shards;
    out->n_cells = cfg->n_cells;
    return DK_OK;
}

/* ---- provenance ---- */

static void dk_chomp(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) s[--n] = 0;
}

/* Revision of the dashkit source tree the binary sits in (git rev-parse HEAD, "+dirty" when
 * tracked files differ); "" when git or the tree is unavailable. */
static void dk_git_rev(char *out, size_t n) {
    char exe[4096], cmd[4400], line[256];
    out[0] = 0;
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0) return;
    exe[k] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    if (strchr(exe, '\'')) return;
    snprintf(cmd, sizeof cmd, "git -C '%s' rev-parse HEAD 2>/dev/null", exe);
    FILE *f = popen(cmd, "r");
    if (!f) return;
    if (fgets(line, sizeof line, f)) { dk_chomp(line); snprintf(out, n, "%s", line); }
    if (pclose(f) != 0) { out[0] = 0; return; }
    snprintf(cmd, sizeof cmd, "git -C '%s' status --porcelain --untracked-files=no 2>/dev/null", exe);
    if ((f = popen(cmd, "r"))) {
        if (fgets(line, sizeof line, f) && strlen(out) + 7 < n) strcat(out, "+dirty");
        pclose(f);
    }
}

static void dk_cpu_model(char *out, size_t n) {
    char line[512];
    out[0] = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) { c++; while (*c == ' ' || *c == '\t') c++; dk_chomp(c); snprintf(out, n, "%s", c); }
            break;
        }
    fclose(f);
}

/* ---- recording: run, models, cells ---- */

static dk_status dk_record(dk_store *s, const dk_config *cfg, const dk_runner_opts *o, dk_plan *p, dk_err *e) {
    char host[256] = "", cpu[256], git[320], shard[32];
    snprintf(shard, sizeof shard, "%d/%d", o->shard_index, o->shard_count);
    if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "unknown");
    dk_cpu_model(cpu, sizeof cpu);
    dk_git_rev(git, sizeof git);
    dk_run_info ri = {
        .name = cfg->name, .config_path = cfg->path, .config_text = cfg->text, .config_hash = cfg->hash,
        .git_rev = git[0] ? git : NULL, .host = host, .cpu = cpu[0] ? cpu : NULL, .blas_core = dk_blas_core(),
        .command = o->command, .threads = cfg->threads > 0 ? cfg->threads : dk_blas_threads(), .workers = o->workers,
        .n_cells = (int64_t)(p->ord ? p->n_config_cells : cfg->n_cells), .shard = o->shard_count > 0 ? shard : NULL,
    };
    dk_status st = dk_store_run_begin(s, &ri, &p->run_id, e);
    if (st) return st;

    int64_t *model_id = calloc(cfg->n_models, sizeof *model_id);
    dk_cell_spec *spec = calloc(cfg->n_cells ? cfg->n_cells : 1, sizeof *spec);
    char **ident = calloc(cfg->n_cells ? cfg->n_cells : 1, sizeof *ident);
    p->key = calloc(cfg->n_cells ? cfg->n_cells : 1, sizeof *p->key);
    p->task_key = calloc(cfg->n_cells ? cfg->n_cells : 1, sizeof *p->task_key);
    p->cell_id = calloc(cfg->n_cells ? cfg->n_cells : 1, sizeof *p->cell_id);
    if (!model_id || !spec || !ident || !p->key || !p->task_key || !p->cell_id) {
        st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < cfg->n_models && !st; i++) st = dk_store_model_put(s, &p->model_info[i], &model_id[i], e);
    for (size_t i = 0; i < cfg->n_cells && !st; i++) {
        const dk_config_cell *c = &cfg->cells[i];
        dk_config_identity id;
        if ((st = dk_config_cell_identity(cfg, c, p->model_sha[c->model], &id, e))) break;
        memcpy(p->key[i], id.key, sizeof p->key[i]);
        memcpy(p->task_key[i], id.task_key, sizeof p->task_key[i]);
        ident[i] = id.json;
        spec[i] = (dk_cell_spec){.key = p->key[i], .identity = ident[i], .task = c->task_name,
                                 .task_options = c->task_options, .task_key = p->task_key[i], .method = c->method_name,
                                 .params = c->method_params, .model_id = model_id[c->model],
                                 .n_samples = cfg->samples, .seed = cfg->seed};
    }
    if (!st) st = dk_store_cells_add_at(s, p->run_id, spec, p->ord, cfg->n_cells, 1, p->cell_id, NULL, e);
done:
    for (size_t i = 0; ident && i < cfg->n_cells; i++) free(ident[i]);
    free(ident);
    free(spec);
    free(model_id);
    return st;
}

/* ---- worker: caches ---- */

/* A file's identity as the kernel reports it: an in-place overwrite (same size, no truncation)
 * changes mtime and ctime, a replacement the inode; ctime cannot be set back by the writer. */
typedef struct {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
} dk_file_id;

static int dk_file_id_get(const char *path, dk_file_id *id) {
    struct stat sb;
    if (stat(path, &sb) != 0) return 0;
    *id = (dk_file_id){sb.st_dev, sb.st_ino, sb.st_size, sb.st_mtim, sb.st_ctim};
    return 1;
}

static int dk_file_id_same(const dk_file_id *a, const dk_file_id *b) {
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

typedef struct {
    dk_model *model;
    size_t model_idx;
    dk_file_id model_id;  /* identity of the model file when it was hashed and loaded */
    int model_changed;    /* the file changed under the loaded model: reload (and re-hash) */
    dk_ctx *ctx;
    /* sample set of (model, task, options) */
    dk_sample_set set;
    int have_set;
    size_t set_model;
    char *set_task, *set_options;
} dk_worker_cache;

static void dk_cache_drop_set(dk_worker_cache *w) {
    if (w->have_set) dk_sample_set_free(&w->set);
    memset(&w->set, 0, sizeof w->set);
    free(w->set_task);
    free(w->set_options);
    w->set_task = w->set_options = NULL;
    w->have_set = 0;
}

static void dk_cache_free(dk_worker_cache *w) {
    dk_cache_drop_set(w);
    dk_ctx_free(w->ctx);
    dk_model_free(w->model);
    memset(w, 0, sizeof *w);
}

/* Loads model idx and checks its file still has the sha256 the cells were registered under:
 * results of a file changed during the run must not be stored under the old identity. The
 * file's identity, taken before hashing and loading and unchanged after, is what
 * dk_cache_model_verify compares against before every row is committed. */
static dk_status dk_cache_model(dk_worker_cache *w, const dk_plan *p, size_t idx, dk_err *e) {
    const dk_config *cfg = p->cfg;
    const char *path = cfg->models[idx];
    if (w->model && w->model_idx == idx && !w->model_changed) return DK_OK;
    dk_cache_drop_set(w);
    dk_ctx_free(w->ctx);
    w->ctx = NULL;
    dk_model_free(w->model);
    w->model = NULL;
    w->model_changed = 0;
    char sha[DK_SHA256_HEX_LEN + 1];
    dk_file_id before, after;
    dk_status st = dk_file_id_get(path, &before) ? DK_OK : dk_fail(e, DK_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    if (!st) st = dk_model_load(path, NULL, &w->model, e);
    if (!st) st = dk_sha256_file(path, sha, e);
    if (!st && strcmp(sha, p->model_sha[idx]) != 0)
        st = dk_fail(e, DK_ERR_STATE, "%s: the model file changed since the run started (sha256 %.12s..., registered %.12s...)",
                     path, sha, p->model_sha[idx]);
    if (!st && (!dk_file_id_get(path, &after) || !dk_file_id_same(&before, &after)))
        st = dk_fail(e, DK_ERR_STATE, "model file changed during the run: %s", path);
    if (st) { dk_model_free(w->model); w->model = NULL; return st; }
    w->model_idx = idx;
    w->model_id = before;
    return DK_OK;
}

/* The loaded model's file is still the one hashed and loaded (device, inode, size, mtime,
 * ctime). Checked after a result is computed and before it is committed: weights mmapped from a
 * file overwritten in place change under the computation, and such a result must not be stored
 * under the registered sha256. On a change the model is dropped at the next dk_cache_model. */
static dk_status dk_cache_model_verify(dk_worker_cache *w, const dk_plan *p, dk_err *e) {
    dk_file_id now;
    const char *path = p->cfg->models[w->model_idx];
    if (!w->model_changed && dk_file_id_get(path, &now) && dk_file_id_same(&now, &w->model_id)) return DK_OK;
    w->model_changed = 1;
    return dk_fail(e, DK_ERR_STATE, "model file changed during the run: %s", path);
}

/* Task options (canonical JSON of scalars) as task key/values; the config's sample-set seed is
 * the task's "seed" unless the options set one. Strings live in store (n_kv of them). */
static dk_status dk_task_kv_from(const dk_config *cfg, const dk_config_cell *c, dk_task_kv *kv, char **store, int *n_kv,
                                 dk_err *e) {
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
        if (*n_kv + 1 >= DK_RUNNER_MAX_KV) { st = dk_fail(e, DK_ERR_ARG, "too many task options"); break; }
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

static dk_status dk_cache_samples(dk_worker_cache *w, const dk_config *cfg, const dk_config_cell *c, dk_err *e) {
    if (w->have_set && w->set_model == c->model && !strcmp(w->set_task, c->task_name) &&
        !strcmp(w->set_options, c->task_options))
        return DK_OK;
    dk_cache_drop_set(w);
    dk_task_kv kv[DK_RUNNER_MAX_KV];
    char *strs[2 * DK_RUNNER_MAX_KV] = {0};
    int n_kv = 0;
    const dk_tokenizer *tok;
    dk_status st = dk_model_tokenizer(w->model, &tok, e);
    if (!st) st = dk_task_kv_from(cfg, c, kv, strs, &n_kv, e);
    if (!st) {
        dk_tok_if ti = dk_tok_if_engine(tok);
        st = dk_task_load(c->task_name, kv, n_kv, (int)cfg->samples, &ti, &w->set, e);
    }
    for (int i = 0; i < 2 * DK_RUNNER_MAX_KV; i++) free(strs[i]);
    if (st) return st;
    w->have_set = 1;
    w->set_model = c->model;
    w->set_task = strdup(c->task_name);
    w->set_options = strdup(c->task_options);
    if (!w->set_task || !w->set_options) { dk_cache_drop_set(w); return dk_fail(e, DK_ERR_NOMEM, "out of memory"); }
    if (w->set.n < cfg->samples) {
        dk_status r = dk_fail(e, DK_ERR_ARG, "task %s has %d samples, the config asks for %lld", c->task_name, w->set.n,
                              (long long)cfg->samples);
        dk_cache_drop_set(w);
        return r;
    }
    return DK_OK;
}

/* ---- worker: one sample ---- */

/* Outcome of a cell run: the cell's own problem (mark it failed) vs the store's (stop). */
typedef enum { DK_CELL_RUN_OK, DK_CELL_RUN_FAILED, DK_CELL_RUN_LOST, DK_CELL_RUN_STORE } dk_cell_run;

static char *dk_flops_json_alloc(const dk_flops *f) {
    int n = dk_eval_flops_json(f, NULL, 0);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s) dk_eval_flops_json(f, s, (size_t)n + 1);
    return s;
}

/* The dense reference of one sample: from dense_results, else computed (c reset) and stored. */
typedef struct {
    dk_eval_ref ref;
    dk_eval_result rd;        /* computed here (have_rd) */
    dk_dense_result stored;   /* read from the store (have_stored) */
    int have_rd, have_stored;
    char *dense_parts;        /* FLOPs by component (JSON) */
} dk_ref_state;

static void dk_ref_state_free(dk_ref_state *r) {
    if (r->have_rd) dk_eval_result_free(&r->rd);
    if (r->have_stored) dk_store_dense_free(&r->stored);
    free(r->dense_parts);
    memset(r, 0, sizeof *r);
}

static dk_cell_run dk_sample_ref(dk_store *s, const dk_plan *p, dk_worker_cache *w, size_t ci, int64_t sid,
                                 const dk_eval_prompt *pr, dk_ref_state *rs, dk_err *e) {
    const dk_config_cell *c = &p->cfg->cells[ci];
    const char *sha = p->model_sha[c->model];
    int found = 0;
    memset(rs, 0, sizeof *rs);
    if (dk_store_dense_get(s, sha, p->task_key[ci], sid, &rs->stored, &found, e)) return DK_CELL_RUN_STORE;
    if (found) {
        rs->have_stored = 1;
        rs->ref = (dk_eval_ref){(int)rs->stored.n_vocab, (int)rs->stored.n_logit_rows, rs->stored.logits, rs->stored.flops,
                                rs->stored.wall_s, rs->stored.prediction};
        rs->dense_parts = rs->stored.flops_parts ? strdup(rs->stored.flops_parts) : NULL;
        return DK_CELL_RUN_OK;
    }
    if (dk_eval_dense(w->ctx, pr, &rs->rd, e)) return DK_CELL_RUN_FAILED;
    rs->have_rd = 1;
    if (dk_cache_model_verify(w, p, e)) return DK_CELL_RUN_FAILED;
    dk_flops f = dk_eval_result_flops(&rs->rd);
    rs->dense_parts = dk_flops_json_alloc(&f);
    const dk_eval_result *rd = &rs->rd;
    dk_dense_row row = {.model_sha256 = sha, .task_key = p->task_key[ci], .sample_id = sid, .task = c->task_name,
                        .task_options = c->task_options, .prompt_tokens = rd->n_prompt, .flops = rd->flops,
                        .flops_parts = rs->dense_parts, .wall_s = rd->wall_s, .prediction = rd->prediction,
                        .score = rd->score, .n_vocab = rd->n_vocab, .n_logit_rows = rd->n_rows, .logits = rd->logits};
    if (dk_store_dense_put(s, &row, NULL, e)) return DK_CELL_RUN_STORE;
    dk_eval_ref_from_result(rd, &rs->ref);
    return DK_CELL_RUN_OK;
}

/* ONE transaction: the sample row of cell ci with result r against the reference rs. */
static dk_cell_run dk_sample_write(dk_store *s, const dk_worker *wk, const dk_plan *p, const dk_sample *smp, size_t ci,
                                   int64_t sid, const dk_ref_state *rs, const dk_eval_result *r, dk_err *e) {
    dk_cell_run out = DK_CELL_RUN_FAILED;
    dk_flops fm = dk_eval_result_flops(r);
    char *method_parts = dk_flops_json_alloc(&fm), *answers = NULL;
    int64_t *active = malloc((size_t)(r->n_layer > 0 ? r->n_layer : 1) * sizeof *active);
    dk_layer_stat *ls = malloc((size_t)(r->n_layer > 0 ? r->n_layer : 1) * sizeof *ls);
    cJSON *ans = cJSON_CreateStringArray((const char *const *)smp->answers, smp->n_answers);
    answers = ans ? cJSON_PrintUnformatted(ans) : NULL;
    cJSON_Delete(ans);
    if (!active || !ls || !answers || !method_parts) { dk_fail(e, DK_ERR_NOMEM, "out of memory"); goto done; }
    for (int l = 0; l < r->n_layer; l++) {
        /* Δ statistics: the policy's score where it decided; a dense run observes Δ at every layer. */
        const dk_policy_layer_stats *ps = r->policy ? &r->policy[l] : NULL;
        const dk_eval_delta_stats *ds = r->delta ? &r->delta[l] : NULL;
        int dec = ps && ps->decided;
        active[l] = r->active[l];
        ls[l] = (dk_layer_stat){dec ? ps->score_min : ds ? ds->min : NAN, dec ? ps->score_median : ds ? ds->median : NAN,
                                dec ? ps->score_max : ds ? ds->max : NAN,
                                r->layers ? dk_flops_total(&r->layers[l].flops) : 0, r->layers ? r->layers[l].wall_s : NAN};
    }
    /* wall_method_s: a shared prefix's time is in r->wall_s for every cell that used it */
    dk_sample_row row = {
        .cell_id = p->cell_id[ci], .sample_id = sid, .sample_key = smp->id, .prompt_tokens = r->n_prompt,
        .context_tokens = r->n_context, .question_tokens = r->n_question, .gen_tokens = r->n_gen, .n_layer = r->n_layer,
        .active = active, .layers = ls, .flops_dense = rs->ref.flops, .flops_method = r->flops,
        .flops_dense_parts = rs->dense_parts, .flops_method_parts = method_parts, .wall_dense_s = rs->ref.wall_s,
        .wall_method_s = r->wall_s, .wall_decode_s = r->wall_decode_s, .prediction = r->prediction,
        .answers = answers, .score = r->score, .kl = r->kl, .kl_max = r->kl_max, .top1 = r->top1,
        .kl_first = r->kl_first, .top1_first = r->top1_first, .nll_dense = r->nll_dense, .nll_method = r->nll,
        .context_key = smp->context_key,
    };
    dk_status st = dk_store_sample_put(s, wk, p->lease_s, &row, e);
    out = st == DK_OK ? DK_CELL_RUN_OK : st == DK_ERR_STATE ? DK_CELL_RUN_LOST : DK_CELL_RUN_STORE;
done:
    free(active);
    free(ls);
    free(answers);
    free(method_parts);
    return out;
}

/* Prefix-sharing counters of one worker (sent to the parent at exit). */
typedef struct {
    int64_t shared_runs;  /* method runs that continued from a prefix computed for another cell */
    double saved_s;       /* sum over those of the prefix wall time they did not spend */
    /* closed form (prefill.h's layer FLOP model A(n)) of the context prefills executed: every run
     * (dense references included) costs sum_l A(active_l); a reused prefix saves sum_{l<f} A(T) */
    double model_flops, model_saved;
} dk_share_stats;

static double dk_model_cost(const dk_model_config *k, const dk_eval_result *r, int upto) {
    double a = 0;
    for (int l = 0; l < r->n_layer && l <= upto; l++) a += dk_prefill_layer_flops(k, r->active[l]);
    return a;
}

/* ---- worker: one sample of a group of cells ----
 * A group is one claimed cell plus the siblings it could claim (same dk_runner_prefix_group:
 * they differ only in rho). For each sample every cell that still lacks it is run: with prefix
 * sharing (share_layer >= 0, two or more cells) the dense reference, then the context's layers
 * 0..share_layer ONCE, then per cell the suffix, question, forcing and decoding; otherwise each
 * cell runs the whole prefill. res[i] receives each cell's outcome (DK_CELL_RUN_OK when it did
 * not need the sample), errs[i] its error. */
static void dk_group_sample_run(dk_store *s, const dk_worker *wk, const dk_plan *p, dk_worker_cache *w,
                                const size_t *cells, const dk_policy *const *pols, const dk_policy_params *pps,
                                const int *need, int k, int share_layer, int64_t sid, dk_cell_run *res, dk_err *errs,
                                dk_share_stats *ss) {
    const dk_sample *smp = &w->set.s[sid];
    int n_need = 0;
    for (int i = 0; i < k; i++) {
        res[i] = DK_CELL_RUN_OK;
        n_need += need[i] != 0;
    }
    if (!n_need) return;
    dk_eval_prompt pr;
    dk_ref_state rs;
    memset(&rs, 0, sizeof rs);
    dk_err ge = {{0}};
    dk_cell_run all = DK_CELL_RUN_FAILED; /* outcome of a step every cell depends on */
    dk_chat_template chat;
    const dk_config_cell *cc = &p->cfg->cells[cells[0]];
    const char *chat_name = p->cfg->model_chat ? p->cfg->model_chat[cc->model] : p->cfg->chat;
    if (dk_chat_template_from_model(w->model, chat_name, NULL, &chat, &ge) ||
        dk_eval_prompt_build_chat(w->model, smp, dk_eval_default_budget(w->model, smp), &chat, &pr, &ge))
        goto fail_all_noprompt;
    if (dk_eval_ctx_prepare(w->model, &w->ctx, dk_eval_prompt_ctx_tokens(&pr), p->cfg->compute, &ge)) goto fail_all;
    size_t c0 = 0;
    for (int i = 0; i < k; i++)
        if (need[i]) { c0 = cells[i]; break; }
    if ((all = dk_sample_ref(s, p, w, c0, sid, &pr, &rs, &ge)) != DK_CELL_RUN_OK) goto fail_all;
    const dk_model_config *mk = &w->model->cfg;
    if (rs.have_rd) ss->model_flops += dk_model_cost(mk, &rs.rd, mk->n_layer);
    int split = share_layer >= 0 && n_need >= 2;
    if (split && dk_eval_prefix(w->ctx, &pr, share_layer, &ge)) { all = DK_CELL_RUN_FAILED; goto fail_all; }
    int ran = 0;
    for (int i = 0; i < k; i++) {
        if (!need[i]) continue;
        const dk_eval_result *r;
        dk_eval_result rm;
        memset(&rm, 0, sizeof rm);
        int have_rm = 0;
        dk_err *e = &errs[i];
        if (pols[i]->kind == DK_POLICY_DENSE && rs.have_rd) {
            /* a dense cell reuses the reference it just computed */
            if (dk_eval_compare(&rs.ref, &rs.rd, e)) { res[i] = DK_CELL_RUN_FAILED; continue; }
            r = &rs.rd;
        } else {
            dk_status st = split ? dk_eval_method_suffix(w->ctx, &pr, pols[i], &pps[i], &rs.ref, &rm, e)
                                 : dk_eval_method(w->ctx, &pr, pols[i], &pps[i], &rs.ref, &rm, e);
            if (st) { res[i] = DK_CELL_RUN_FAILED; continue; }
            have_rm = 1;
            r = &rm;
            ss->model_flops += dk_model_cost(mk, &rm, mk->n_layer);
            if (split && ran++ > 0) {
                ss->shared_runs++;
                ss->saved_s += rm.wall_prefix_s;
                ss->model_saved += dk_model_cost(mk, &rm, share_layer);
            }
        }
        res[i] = dk_cache_model_verify(w, p, e) ? DK_CELL_RUN_FAILED : dk_sample_write(s, wk, p, smp, cells[i], sid, &rs, r, e);
        if (have_rm) dk_eval_result_free(&rm);
        if (res[i] == DK_CELL_RUN_STORE) {
            for (int j = i + 1; j < k; j++) if (need[j]) { res[j] = DK_CELL_RUN_STORE; errs[j] = *e; }
            break;
        }
    }
    dk_ref_state_free(&rs);
    dk_eval_prompt_free(&pr);
    return;
fail_all:
    dk_eval_prompt_free(&pr);
fail_all_noprompt:
    dk_ref_state_free(&rs);
    for (int i = 0; i < k; i++)
        if (need[i]) { res[i] = all; errs[i] = ge; }
}

/* ---- worker: one claimed group of cells (see runner.h on prefix sharing) ---- */

/* Runs every missing sample of cells[0..k) (one model, task point, method; differing only in
 * rho when k > 1), sample by sample. res[i]/errs[i]: each cell's outcome; a cell that fails or
 * is lost is dropped from the later samples. */
static void dk_runner_group_run(dk_store *s, const dk_worker *wk, const dk_plan *p, dk_worker_cache *w, const size_t *cells,
                                int k, int share, dk_cell_run *res, dk_err *errs, dk_share_stats *ss) {
    const dk_config *cfg = p->cfg;
    const dk_policy **pols = calloc((size_t)k, sizeof *pols);
    dk_policy_params *pps = calloc((size_t)k, sizeof *pps);
    int64_t **have = calloc((size_t)k, sizeof *have);
    size_t *n_have = calloc((size_t)k, sizeof *n_have), *pos = calloc((size_t)k, sizeof *pos);
    int *need = calloc((size_t)k, sizeof *need), *alive = calloc((size_t)k, sizeof *alive);
    dk_cell_run *sres = calloc((size_t)k, sizeof *sres);
    for (int i = 0; i < k; i++) res[i] = DK_CELL_RUN_OK;
    if (!pols || !pps || !have || !n_have || !pos || !need || !alive || !sres) {
        for (int i = 0; i < k; i++) { res[i] = DK_CELL_RUN_FAILED; dk_fail(&errs[i], DK_ERR_NOMEM, "out of memory"); }
        goto done;
    }
    const dk_config_cell *c0 = &cfg->cells[cells[0]];
    dk_err ge = {{0}};
    if (dk_cache_model(w, p, c0->model, &ge) || dk_cache_samples(w, cfg, c0, &ge)) {
        for (int i = 0; i < k; i++) { res[i] = DK_CELL_RUN_FAILED; errs[i] = ge; }
        goto done;
    }
    int L = w->model->cfg.n_layer, share_layer = -1, n_alive = 0;
    for (int i = 0; i < k; i++) {
        pols[i] = p->pol[cells[i]];
        pps[i] = p->pp[cells[i]];
        if (dk_store_sample_ids(s, p->cell_id[cells[i]], &have[i], &n_have[i], &errs[i])) {
            for (int j = 0; j < k; j++) if (j != i) errs[j] = errs[i];
            for (int j = 0; j < k; j++) res[j] = DK_CELL_RUN_STORE;
            goto done;
        }
        alive[i] = 1;
        n_alive++;
    }
    /* one split layer for the group: every cell's first decision layer must agree */
    if (share) {
        for (int i = 0; i < k; i++) {
            if (!alive[i]) continue;
            int l = dk_eval_prefix_layer(pols[i], &pps[i], L);
            if (share_layer == -1) share_layer = l;
            if (l < 0 || l != share_layer || pols[i]->kind != pols[0]->kind) { share_layer = -2; break; }
        }
        if (share_layer < 0) share_layer = -1;
    }
    for (int64_t sid = 0; sid < cfg->samples && n_alive > 0; sid++) {
        for (int i = 0; i < k; i++) {
            need[i] = 0;
            if (!alive[i]) continue;
            while (pos[i] < n_have[i] && have[i][pos[i]] < sid) pos[i]++;
            need[i] = !(pos[i] < n_have[i] && have[i][pos[i]] == sid);
        }
        dk_group_sample_run(s, wk, p, w, cells, pols, pps, need, k, share_layer, sid, sres, errs, ss);
        for (int i = 0; i < k; i++) {
            if (!need[i] || sres[i] == DK_CELL_RUN_OK) continue;
            res[i] = sres[i];
            alive[i] = 0;
            n_alive--;
            if (sres[i] == DK_CELL_RUN_STORE) {
                for (int j = 0; j < k; j++) if (alive[j]) { res[j] = DK_CELL_RUN_STORE; errs[j] = errs[i]; }
                goto done;
            }
        }
    }
done:
    if (have) for (int i = 0; i < k; i++) free(have[i]);
    free(pols); free(pps); free(have); free(n_have); free(pos); free(need); free(alive); free(sres);
}

static int dk_by_id_cmp(const void *a, const void *b, void *ctx) {
    const int64_t *id = ctx, x = id[*(const size_t *)a], y = id[*(const size_t *)b];
    return x < y ? -1 : x > y;
}

/* plan->by_id, for dk_plan_cell_index. */
static dk_status dk_plan_index_ids(dk_plan *p, dk_err *e) {
    size_t n = p->cfg->n_cells;
    if (!(p->by_id = malloc((n ? n : 1) * sizeof *p->by_id))) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) p->by_id[i] = i;
    qsort_r(p->by_id, n, sizeof *p->by_id, dk_by_id_cmp, p->cell_id);
    return DK_OK;
}

/* Index in the plan of the cell with store id `id`; n_cells when it is not in the plan. */
static size_t dk_plan_cell_index(const dk_plan *p, int64_t id) {
    size_t lo = 0, hi = p->cfg->n_cells;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->cell_id[p->by_id[mid]] < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < p->cfg->n_cells && p->cell_id[p->by_id[lo]] == id ? p->by_id[lo] : p->cfg->n_cells;
}

/* Claims and runs cells until none is left. Returns non-DK_OK only for store failures. With
 * sharing, a claimed cell takes along the pending siblings of its prefix group (plan->group). */
static dk_status dk_worker_loop(const dk_plan *p, dk_share_stats *ss, dk_err *e) {
    dk_store *s = NULL;
    dk_status st = dk_store_open(p->db_path, 0, &s, e);
    if (st) return st;
    dk_worker wk;
    dk_store_worker_self(&wk);
    dk_worker_cache w;
    memset(&w, 0, sizeof w);
    size_t n_cells = p->cfg->n_cells;
    size_t *cells = malloc((n_cells ? n_cells : 1) * sizeof *cells);
    int64_t *ids = malloc((n_cells ? n_cells : 1) * sizeof *ids);
    int *claimed = malloc((n_cells ? n_cells : 1) * sizeof *claimed);
    dk_cell_run *res = malloc((n_cells ? n_cells : 1) * sizeof *res);
    dk_err *errs = calloc(n_cells ? n_cells : 1, sizeof *errs);
    if (!cells || !ids || !claimed || !res || !errs) { st = dk_fail(e, DK_ERR_NOMEM, "out of memory"); goto out; }
    for (;;) {
        int64_t cell_id = 0;
        if ((st = dk_store_cell_claim(s, p->run_id, &wk, p->lease_s, &cell_id, NULL, e))) break;
        if (!cell_id) break;
        size_t ci = dk_plan_cell_index(p, cell_id);
        if (ci >= n_cells) {
            dk_err ce = {{0}};
            dk_fail(&ce, DK_ERR_STATE, "cell %lld is not in this run's plan", (long long)cell_id);
            if ((st = dk_store_cell_fail(s, cell_id, &wk, ce.msg, e)) == DK_ERR_STATE) st = DK_OK;
            if (st) break;
            continue;
        }
        int k = 1;
        cells[0] = ci;
        if (p->group && p->group[ci] >= 0) {
            int n_sib = 0;
            for (int j = p->group[ci]; j >= 0; j = p->group_next[j])
                if ((size_t)j != ci) { cells[1 + n_sib] = (size_t)j; ids[n_sib++] = p->cell_id[j]; }
            if (n_sib && (st = dk_store_cell_claim_ids(s, p->run_id, &wk, p->lease_s, ids, (size_t)n_sib, claimed, e))) break;
            for (int j = 0; j < n_sib; j++)
                if (claimed[j]) cells[k++] = cells[1 + j];
        }
        for (int i = 0; i < k; i++) memset(&errs[i], 0, sizeof errs[i]);
        dk_runner_group_run(s, &wk, p, &w, cells, k, p->group != NULL, res, errs, ss);
        for (int i = 0; i < k && !st; i++) {
            int64_t id = p->cell_id[cells[i]];
            if (res[i] == DK_CELL_RUN_OK) {
                if ((st = dk_store_cell_finish(s, id, &wk, e)) == DK_ERR_STATE) st = DK_OK; /* reclaimed meanwhile */
            } else if (res[i] == DK_CELL_RUN_FAILED) {
                if ((st = dk_store_cell_fail(s, id, &wk, errs[i].msg, e)) == DK_ERR_STATE) st = DK_OK;
            } else if (res[i] == DK_CELL_RUN_STORE) {
                *e = errs[i];
                st = DK_ERR_IO;
            }
        }
        if (st) break;
    }
out:
    free(cells); free(ids); free(claimed); free(res); free(errs);
    dk_cache_free(&w);
    dk_store_close(s);
    return st;
}

/* ---- parent: progress ---- */

static dk_status dk_progress_query(dk_store *s, int64_t run_id, dk_runner_progress *pr, dk_err *e) {
    int64_t c[4];
    dk_status st = dk_store_run_counts(s, run_id, c, &pr->samples_done, e);
    if (st != DK_OK) {
        char msg[sizeof e->msg];
        snprintf(msg, sizeof msg, "%s", e->msg);
        return dk_fail(e, DK_ERR_IO, "progress query: %s", msg);
    }
    pr->cells_pending = c[DK_CELL_PENDING];
    pr->cells_running = c[DK_CELL_RUNNING];
    pr->cells_done = c[DK_CELL_DONE];
    pr->cells_failed = c[DK_CELL_FAILED];
    pr->cells_total = c[0] + c[1] + c[2] + c[3];
    return DK_OK;
}

/* Cells of the run left 'running' by worker process pid of this host (0 when the store cannot say). */
static int64_t dk_progress_held_by(dk_store *s, int64_t run_id, pid_t pid) {
    dk_worker self;
    dk_err e = {{0}};
    int64_t n = 0;
    dk_store_worker_self(&self);
    if (dk_store_cells_held(s, run_id, self.host, (int64_t)pid, &n, &e) != DK_OK) n = 0;
    return n;
}

static void dk_progress_derive(dk_runner_progress *pr, int64_t samples_at_start, double t0) {
    pr->elapsed_s = dk_time_now_s() - t0;
    pr->samples_new = pr->samples_done - samples_at_start;
    pr->samples_per_s = pr->elapsed_s > 0 && pr->samples_new > 0 ? (double)pr->samples_new / pr->elapsed_s : 0;
    int64_t left = pr->samples_total - pr->samples_done;
    pr->eta_s = left <= 0 ? 0 : pr->samples_per_s > 0 ? (double)left / pr->samples_per_s : NAN;
}

/* ---- the run ---- */

/* The config's "analyze": per model, the first option setting of each task; an analysis already
 * stored with the same model, task, options and settings is kept (resume). */
static dk_status dk_runner_analyze(dk_store *s, const dk_config *cfg, const dk_plan *p, dk_err *e) {
    dk_status st = DK_OK;
    for (size_t mi = 0; mi < cfg->n_models && !st; mi++) {
        dk_model *m = NULL;
        for (size_t t = 0; t < cfg->n_tasks && !st; t++) {
            const dk_config_cell *c = NULL;
            for (size_t i = 0; i < cfg->n_cells && !c; i++)
                if (cfg->cells[i].model == mi && cfg->cells[i].task == t) c = &cfg->cells[i];
            if (!c) continue;
            dk_analysis a = {0}, want = {0};
            snprintf(want.model_sha256, sizeof want.model_sha256, "%s", p->model_sha[mi]);
            want.task = (char *)c->task_name;
            want.task_options = c->task_options;
            want.n_samples = (int)cfg->analyze_samples;
            want.ls = cfg->analyze_ls;
            want.rho = cfg->analyze_rho;
            int64_t have = 0;
            if ((st = dk_store_analysis_find(s, &want, &have, e)) || have) continue;
            if (!m && (st = dk_model_load(cfg->models[mi], NULL, &m, e))) break;
            dk_task_kv kv[DK_RUNNER_MAX_KV];
            char *strs[2 * DK_RUNNER_MAX_KV] = {0};
            int n_kv = 0;
            dk_sample_set set = {0};
            const dk_tokenizer *tok;
            st = dk_model_tokenizer(m, &tok, e);
            if (!st) st = dk_task_kv_from(cfg, c, kv, strs, &n_kv, e);
            if (!st) {
                dk_tok_if ti = dk_tok_if_engine(tok);
                st = dk_task_load(c->task_name, kv, n_kv, (int)cfg->analyze_samples, &ti, &set, e);
            }
            for (int k = 0; k < 2 * DK_RUNNER_MAX_KV; k++) free(strs[k]);
            dk_analyze_opts ao;
            dk_analyze_opts_default(&ao);
            ao.ls = cfg->analyze_ls;
            ao.rho = cfg->analyze_rho;
            if (!st && set.n > 0) st = dk_analyze_run(m, &set, dk_eval_default_budget(m, &set.s[0]), &ao, &a, e);
            dk_sample_set_free(&set);
            if (st) break;
            a.run_id = p->run_id;
            snprintf(a.model_sha256, sizeof a.model_sha256, "%s", p->model_sha[mi]);
            a.model_path = strdup(cfg->models[mi]);
            a.task = strdup(c->task_name);
            a.task_options = strdup(c->task_options);
            if (!a.model_path || !a.task || !a.task_options) st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
            else st = dk_store_analysis_put(s, &a, e);
            dk_analysis_free(&a);
        }
        dk_model_free(m);
    }
    return st;
}

dk_status dk_runner_run(const dk_config *cfg_all, const dk_runner_opts *o, dk_runner_progress *out, dk_err *e) {
    if (o->workers < 1) return dk_fail(e, DK_ERR_ARG, "workers = %d must be >= 1", o->workers);
    if (o->shard_count < 0 || o->shard_count > DK_SHARD_MAX || (o->shard_count > 0 && (o->shard_index < 1 || o->shard_index > o->shard_count)))
        return dk_fail(e, DK_ERR_ARG, "shard %d/%d is not I/N with 1 <= I <= N <= %d", o->shard_index, o->shard_count, DK_SHARD_MAX);
    if (!(o->lease_s > 0) || !(o->progress_interval_s > 0)) return dk_fail(e, DK_ERR_ARG, "lease and progress interval must be > 0");
    dk_plan p = {0};
    dk_config view;
    const dk_config *cfg = cfg_all;
    p.cfg = cfg;
    p.lease_s = o->lease_s;
    p.db_path = o->db_path;
    dk_store *s = NULL;
    pid_t *pids = NULL, *all_pids = NULL; /* running workers (0 once reaped); every worker started */
    int n_pids = 0, errpipe[2] = {-1, -1}, statpipe[2] = {-1, -1};
    dk_status st = dk_runner_check_compute(cfg, e);
    if (!st) st = dk_plan_models(cfg, &p, e);
    if (!st) st = dk_plan_check_cells(cfg, &p, e);
    if (!st && o->shard_count > 0 && !(st = dk_plan_shard(cfg_all, o->shard_index, o->shard_count, &p, &view, e)))
        p.cfg = cfg = &view;
    if (!st && o->prefix_sharing) st = dk_plan_groups(cfg, &p, e);
    if (st) goto done;

    /* record; the connection is closed before fork (SQLite handles must not cross it) */
    if ((st = dk_store_open(o->db_path, DK_STORE_OPEN_CREATE, &s, e))) goto done;
    if ((st = dk_record(s, cfg, o, &p, e)) || (st = dk_plan_index_ids(&p, e))) goto done;
    dk_runner_progress pr;
    memset(&pr, 0, sizeof pr);
    pr.run_id = p.run_id;
    pr.samples_total = (int64_t)cfg->n_cells * cfg->samples;
    if ((st = dk_progress_query(s, p.run_id, &pr, e))) goto done;
    int64_t samples_at_start = pr.samples_done;
    dk_store_close(s);
    s = NULL;

    pids = calloc((size_t)o->workers, sizeof *pids);
    all_pids = calloc((size_t)o->workers, sizeof *all_pids);
    if (!pids || !all_pids) { st = dk_fail(e, DK_ERR_NOMEM, "out of memory"); goto done; }
    /* workers report a fatal (store) error through this pipe: one write < PIPE_BUF each, atomic */
    if (pipe(errpipe) != 0 || pipe(statpipe) != 0) { st = dk_fail(e, DK_ERR_IO, "pipe: %s", strerror(errno)); goto done; }
    fflush(NULL);
    pid_t parent = getpid();
    for (int i = 0; i < o->workers; i++) {
        pid_t pid = fork();
        if (pid < 0) { st = dk_fail(e, DK_ERR_IO, "fork: %s", strerror(errno)); break; }
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* a killed run takes its workers with it */
            if (getppid() != parent) _exit(3);
            close(errpipe[0]);
            close(statpipe[0]);
            if (cfg->threads > 0) openblas_set_num_threads(cfg->threads);
            dk_err we = {{0}};
            dk_share_stats ss = {0, 0.0, 0.0, 0.0};
            dk_status ws = dk_worker_loop(&p, &ss, &we);
            char line[128];
            int n = snprintf(line, sizeof line, "%lld %.9g %.17g %.17g\n", (long long)ss.shared_runs, ss.saved_s,
                             ss.model_flops, ss.model_saved);
            if (n > 0 && write(statpipe[1], line, (size_t)n) < 0) _exit(1);
            if (ws) {
                char msg[512];
                int k = snprintf(msg, sizeof msg, "worker %d: %s\n", (int)getpid(), we.msg);
                if (k > 0 && write(errpipe[1], msg, (size_t)(k < (int)sizeof msg ? k : (int)sizeof msg - 1)) < 0) _exit(1);
            }
            _exit(ws ? 1 : 0);
        }
        pids[n_pids] = all_pids[n_pids] = pid;
        n_pids++;
    }
    close(errpipe[1]);
    errpipe[1] = -1;
    close(statpipe[1]);
    statpipe[1] = -1;

    if ((st = dk_store_open(o->db_path, 0, &s, e))) goto wait;
    double t0 = dk_time_now_s(), last = -1e9;
    int alive = n_pids, worker_failed = 0;
    while (alive > 0) {
        int ws;
        pid_t w = waitpid(-1, &ws, WNOHANG);
        if (w > 0) {
            for (int i = 0; i < n_pids; i++)
                if (pids[i] == w) {
                    pids[i] = 0;
                    alive--;
                    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) worker_failed++;
                }
            continue;
        }
        if (o->progress && dk_time_now_s() - last >= o->progress_interval_s) {
            last = dk_time_now_s();
            if (dk_progress_query(s, p.run_id, &pr, e) == DK_OK) {
                dk_progress_derive(&pr, samples_at_start, t0);
                o->progress(o->progress_user, &pr, 0);
            }
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if ((st = dk_progress_query(s, p.run_id, &pr, e))) goto wait;
    dk_progress_derive(&pr, samples_at_start, t0);
    {
        /* every worker has exited: its line (if it got that far) is in the pipe; read to EOF */
        char buf[4096];
        size_t len = 0;
        double model_flops = 0, model_saved = 0;
        ssize_t k;
        while (len + 1 < sizeof buf && (k = read(statpipe[0], buf + len, sizeof buf - 1 - len)) > 0) len += (size_t)k;
        buf[len] = 0;
        for (char *line = buf; line && *line;) {
            long long runs;
            double saved, mf, ms;
            if (sscanf(line, "%lld %lf %lf %lf", &runs, &saved, &mf, &ms) == 4) {
                pr.prefix_shared_runs += runs;
                pr.prefix_saved_s += saved;
                model_flops += mf;
                model_saved += ms;
            }
            line = strchr(line, '\n');
            if (line) line++;
        }
        pr.prefix_expected_ratio = model_flops > model_saved && model_flops > 0 ? model_flops / (model_flops - model_saved) : NAN;
    }
    if (o->progress) o->progress(o->progress_user, &pr, 1);
    if (out) *out = pr;
    dk_err ee = {{0}}; /* a failed run_end (a full disk) is reported with the cells' state, not instead of it */
    dk_status est = dk_store_run_end(s, p.run_id, &ee);
    char werr[512] = "";
    if (worker_failed) {
        ssize_t k = read(errpipe[0], werr, sizeof werr - 1);
        werr[k > 0 ? k : 0] = 0;
        char *nl = strchr(werr, '\n');
        if (nl) *nl = 0;
        if (!werr[0]) snprintf(werr, sizeof werr, "a worker stopped abnormally");
    }
    /* cells still 'running' under one of this run's own (exited) workers were interrupted by
     * its failure (a full disk, ...): they are not running anywhere */
    int64_t own = 0;
    for (int i = 0; i < n_pids && pr.cells_running > 0; i++) own += dk_progress_held_by(s, p.run_id, all_pids[i]);
    if (pr.cells_done < pr.cells_total)
        st = dk_fail(e, DK_ERR_STATE, "%lld of %lld cells not done: %lld failed, %lld interrupted, %lld still running in another"
                     " process, %lld pending%s%s%s%.300s (see 'dashkit status'; re-run to resume)",
                     (long long)(pr.cells_total - pr.cells_done), (long long)pr.cells_total, (long long)pr.cells_failed,
                     (long long)own, (long long)(pr.cells_running - own), (long long)pr.cells_pending,
                     worker_failed ? "; " : "", werr, est ? "; " : "", est ? ee.msg : "");
    else if (est) {
        *e = ee;
        st = est;
    }
    /* a shard run leaves the config's "analyze" to `run --db MERGED` (its analyses are not merged) */
    if (!st && cfg->analyze && !o->shard_count && pr.cells_done == pr.cells_total) st = dk_runner_analyze(s, cfg, &p, e);
wait:
    for (int i = 0; i < n_pids; i++)
        if (pids[i] > 0) waitpid(pids[i], NULL, 0);
done:
    if (errpipe[0] >= 0) close(errpipe[0]);
    if (errpipe[1] >= 0) close(errpipe[1]);
    if (statpipe[0] >= 0) close(statpipe[0]);
    if (statpipe[1] >= 0) close(statpipe[1]);
    free(pids);
    free(all_pids);
    dk_store_close(s);
    dk_plan_free(&p);
    return st;
}
