/* runner_worker.c — one worker process of a run: caches, claims, a group of cells run sample by
 * sample, one store transaction per sample row (runner.h, runner_int.h). */
#include "runner_int.h"
#include "evaluate.h"
#include "prefill.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
           a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
           a->ctime.tv_nsec == b->ctime.tv_nsec;
}

typedef struct {
    dk_model *model;
    size_t model_idx;
    dk_file_id model_id; /* identity of the model file when it was hashed and loaded */
    int model_changed;   /* the file changed under the loaded model: reload (and re-hash) */
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
    dk_status st = dk_file_id_get(path, &before)
                       ? DK_OK
                       : dk_fail(e, DK_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    if (!st) st = dk_model_load(path, NULL, &w->model, e);
    if (!st) st = dk_sha256_file(path, sha, e);
    if (!st && strcmp(sha, p->model_sha[idx]) != 0)
        st = dk_fail(
            e, DK_ERR_STATE,
            "%s: the model file changed since the run started (sha256 %.12s..., registered %.12s...)", path,
            sha, p->model_sha[idx]);
    if (!st && (!dk_file_id_get(path, &after) || !dk_file_id_same(&before, &after)))
        st = dk_fail(e, DK_ERR_STATE, "model file changed during the run: %s", path);
    if (st) {
        dk_model_free(w->model);
        w->model = NULL;
        return st;
    }
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

static dk_status dk_cache_samples(dk_worker_cache *w, const dk_config *cfg, const dk_config_cell *c,
                                  dk_err *e) {
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
    if (!w->set_task || !w->set_options) {
        dk_cache_drop_set(w);
        return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    }
    if (w->set.n < cfg->samples) {
        dk_status r = dk_fail(e, DK_ERR_ARG, "task %s has %d samples, the config asks for %lld", c->task_name,
                              w->set.n, (long long)cfg->samples);
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
    dk_eval_result rd;      /* computed here (have_rd) */
    dk_dense_result stored; /* read from the store (have_stored) */
    int have_rd, have_stored;
    char *dense_parts; /* FLOPs by component (JSON) */
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
        rs->ref = (dk_eval_ref){(int)rs->stored.n_vocab, (int)rs->stored.n_logit_rows,
                                rs->stored.logits,       rs->stored.flops,
                                rs->stored.wall_s,       rs->stored.prediction};
        rs->dense_parts = rs->stored.flops_parts ? strdup(rs->stored.flops_parts) : NULL;
        return DK_CELL_RUN_OK;
    }
    if (dk_eval_dense(w->ctx, pr, &rs->rd, e)) return DK_CELL_RUN_FAILED;
    rs->have_rd = 1;
    if (dk_cache_model_verify(w, p, e)) return DK_CELL_RUN_FAILED;
    dk_flops f = dk_eval_result_flops(&rs->rd);
    rs->dense_parts = dk_flops_json_alloc(&f);
    const dk_eval_result *rd = &rs->rd;
    dk_dense_row row = {.model_sha256 = sha,
                        .task_key = p->task_key[ci],
                        .sample_id = sid,
                        .task = c->task_name,
                        .task_options = c->task_options,
                        .prompt_tokens = rd->n_prompt,
                        .flops = rd->flops,
                        .flops_parts = rs->dense_parts,
                        .wall_s = rd->wall_s,
                        .prediction = rd->prediction,
                        .score = rd->score,
                        .n_vocab = rd->n_vocab,
                        .n_logit_rows = rd->n_rows,
                        .logits = rd->logits};
    if (dk_store_dense_put(s, &row, NULL, e)) return DK_CELL_RUN_STORE;
    dk_eval_ref_from_result(rd, &rs->ref);
    return DK_CELL_RUN_OK;
}

/* ONE transaction: the sample row of cell ci with result r against the reference rs. */
static dk_cell_run dk_sample_write(dk_store *s, const dk_worker *wk, const dk_plan *p, const dk_sample *smp,
                                   size_t ci, int64_t sid, const dk_ref_state *rs, const dk_eval_result *r,
                                   dk_err *e) {
    dk_cell_run out = DK_CELL_RUN_FAILED;
    dk_flops fm = dk_eval_result_flops(r);
    char *method_parts = dk_flops_json_alloc(&fm), *answers = NULL;
    int64_t *active = malloc((size_t)(r->n_layer > 0 ? r->n_layer : 1) * sizeof *active);
    dk_layer_stat *ls = malloc((size_t)(r->n_layer > 0 ? r->n_layer : 1) * sizeof *ls);
    cJSON *ans = cJSON_CreateStringArray((const char *const *)smp->answers, smp->n_answers);
    answers = ans ? cJSON_PrintUnformatted(ans) : NULL;
    cJSON_Delete(ans);
    if (!active || !ls || !answers || !method_parts) {
        dk_fail(e, DK_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int l = 0; l < r->n_layer; l++) {
        /* Δ statistics: the policy's score where it decided; a dense run observes Δ at every layer. */
        const dk_policy_layer_stats *ps = r->policy ? &r->policy[l] : NULL;
        const dk_eval_delta_stats *ds = r->delta ? &r->delta[l] : NULL;
        int dec = ps && ps->decided;
        active[l] = r->active[l];
        ls[l] = (dk_layer_stat){dec  ? ps->score_min
                                : ds ? ds->min
                                     : NAN,
                                dec  ? ps->score_median
                                : ds ? ds->median
                                     : NAN,
                                dec  ? ps->score_max
                                : ds ? ds->max
                                     : NAN,
                                r->layers ? dk_flops_total(&r->layers[l].flops) : 0,
                                r->layers ? r->layers[l].wall_s : NAN};
    }
    /* wall_method_s: a shared prefix's time is in r->wall_s for every cell that used it */
    dk_sample_row row = {
        .cell_id = p->cell_id[ci],
        .sample_id = sid,
        .sample_key = smp->id,
        .prompt_tokens = r->n_prompt,
        .context_tokens = r->n_context,
        .question_tokens = r->n_question,
        .gen_tokens = r->n_gen,
        .n_layer = r->n_layer,
        .active = active,
        .layers = ls,
        .flops_dense = rs->ref.flops,
        .flops_method = r->flops,
        .flops_dense_parts = rs->dense_parts,
        .flops_method_parts = method_parts,
        .wall_dense_s = rs->ref.wall_s,
        .wall_method_s = r->wall_s,
        .wall_decode_s = r->wall_decode_s,
        .prediction = r->prediction,
        .answers = answers,
        .score = r->score,
        .kl = r->kl,
        .kl_max = r->kl_max,
        .top1 = r->top1,
        .kl_first = r->kl_first,
        .top1_first = r->top1_first,
        .nll_dense = r->nll_dense,
        .nll_method = r->nll,
        .context_key = smp->context_key,
    };
    dk_status st = dk_store_sample_put(s, wk, p->lease_s, &row, e);
    out = st == DK_OK ? DK_CELL_RUN_OK : st == DK_ERR_STATE ? DK_CELL_RUN_LOST : DK_CELL_RUN_STORE;
done:
    DK_FREE_ALL(active, ls, answers, method_parts);
    return out;
}

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
                                const size_t *cells, const dk_policy *const *pols,
                                const dk_policy_params *pps, const int *need, int k, int share_layer,
                                int64_t sid, dk_cell_run *res, dk_err *errs, dk_share_stats *ss) {
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
    if (dk_eval_ctx_prepare(w->model, &w->ctx, dk_eval_prompt_ctx_tokens(&pr), p->cfg->compute, &ge))
        goto fail_all;
    size_t c0 = 0;
    for (int i = 0; i < k; i++)
        if (need[i]) {
            c0 = cells[i];
            break;
        }
    if ((all = dk_sample_ref(s, p, w, c0, sid, &pr, &rs, &ge)) != DK_CELL_RUN_OK) goto fail_all;
    const dk_model_config *mk = &w->model->cfg;
    if (rs.have_rd) ss->model_flops += dk_model_cost(mk, &rs.rd, mk->n_layer);
    int split = share_layer >= 0 && n_need >= 2;
    if (split && dk_eval_prefix(w->ctx, &pr, share_layer, &ge)) {
        all = DK_CELL_RUN_FAILED;
        goto fail_all;
    }
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
            if (dk_eval_compare(&rs.ref, &rs.rd, e)) {
                res[i] = DK_CELL_RUN_FAILED;
                continue;
            }
            r = &rs.rd;
        } else {
            dk_status st = split ? dk_eval_method_suffix(w->ctx, &pr, pols[i], &pps[i], &rs.ref, &rm, e)
                                 : dk_eval_method(w->ctx, &pr, pols[i], &pps[i], &rs.ref, &rm, e);
            if (st) {
                res[i] = DK_CELL_RUN_FAILED;
                continue;
            }
            have_rm = 1;
            r = &rm;
            ss->model_flops += dk_model_cost(mk, &rm, mk->n_layer);
            if (split && ran++ > 0) {
                ss->shared_runs++;
                ss->saved_s += rm.wall_prefix_s;
                ss->model_saved += dk_model_cost(mk, &rm, share_layer);
            }
        }
        res[i] = dk_cache_model_verify(w, p, e) ? DK_CELL_RUN_FAILED
                                                : dk_sample_write(s, wk, p, smp, cells[i], sid, &rs, r, e);
        if (have_rm) dk_eval_result_free(&rm);
        if (res[i] == DK_CELL_RUN_STORE) {
            for (int j = i + 1; j < k; j++)
                if (need[j]) {
                    res[j] = DK_CELL_RUN_STORE;
                    errs[j] = *e;
                }
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
        if (need[i]) {
            res[i] = all;
            errs[i] = ge;
        }
}

/* ---- worker: one claimed group of cells (see runner.h on prefix sharing) ---- */

/* Runs every missing sample of cells[0..k) (one model, task point, method; differing only in
 * rho when k > 1), sample by sample. res[i]/errs[i]: each cell's outcome; a cell that fails or
 * is lost is dropped from the later samples. */
static void dk_runner_group_run(dk_store *s, const dk_worker *wk, const dk_plan *p, dk_worker_cache *w,
                                const size_t *cells, int k, int share, dk_cell_run *res, dk_err *errs,
                                dk_share_stats *ss) {
    const dk_config *cfg = p->cfg;
    const dk_policy **pols = calloc((size_t)k, sizeof *pols);
    dk_policy_params *pps = calloc((size_t)k, sizeof *pps);
    int64_t **have = calloc((size_t)k, sizeof *have);
    size_t *n_have = calloc((size_t)k, sizeof *n_have), *pos = calloc((size_t)k, sizeof *pos);
    int *need = calloc((size_t)k, sizeof *need), *alive = calloc((size_t)k, sizeof *alive);
    dk_cell_run *sres = calloc((size_t)k, sizeof *sres);
    for (int i = 0; i < k; i++) res[i] = DK_CELL_RUN_OK;
    if (!pols || !pps || !have || !n_have || !pos || !need || !alive || !sres) {
        for (int i = 0; i < k; i++) {
            res[i] = DK_CELL_RUN_FAILED;
            dk_fail(&errs[i], DK_ERR_NOMEM, "out of memory");
        }
        goto done;
    }
    const dk_config_cell *c0 = &cfg->cells[cells[0]];
    dk_err ge = {{0}};
    if (dk_cache_model(w, p, c0->model, &ge) || dk_cache_samples(w, cfg, c0, &ge)) {
        for (int i = 0; i < k; i++) {
            res[i] = DK_CELL_RUN_FAILED;
            errs[i] = ge;
        }
        goto done;
    }
    int L = w->model->cfg.n_layer, share_layer = -1, n_alive = 0;
    for (int i = 0; i < k; i++) {
        pols[i] = p->pol[cells[i]];
        pps[i] = p->pp[cells[i]];
        if (dk_store_sample_ids(s, p->cell_id[cells[i]], &have[i], &n_have[i], &errs[i])) {
            for (int j = 0; j < k; j++)
                if (j != i) errs[j] = errs[i];
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
            if (l < 0 || l != share_layer || pols[i]->kind != pols[0]->kind) {
                share_layer = -2;
                break;
            }
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
                for (int j = 0; j < k; j++)
                    if (alive[j]) {
                        res[j] = DK_CELL_RUN_STORE;
                        errs[j] = errs[i];
                    }
                goto done;
            }
        }
    }
done:
    if (have)
        for (int i = 0; i < k; i++) free(have[i]);
    DK_FREE_ALL(pols, pps, have, n_have, pos, need, alive, sres);
}

/* Claims and runs cells until none is left. Returns non-DK_OK only for store failures. With
 * sharing, a claimed cell takes along the pending siblings of its prefix group (plan->group). */
dk_status dk_worker_loop(const dk_plan *p, dk_share_stats *ss, dk_err *e) {
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
    if (!cells || !ids || !claimed || !res || !errs) {
        st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
        goto out;
    }
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
                if ((size_t)j != ci) {
                    cells[1 + n_sib] = (size_t)j;
                    ids[n_sib++] = p->cell_id[j];
                }
            if (n_sib &&
                (st = dk_store_cell_claim_ids(s, p->run_id, &wk, p->lease_s, ids, (size_t)n_sib, claimed, e)))
                break;
            for (int j = 0; j < n_sib; j++)
                if (claimed[j]) cells[k++] = cells[1 + j];
        }
        for (int i = 0; i < k; i++) memset(&errs[i], 0, sizeof errs[i]);
        dk_runner_group_run(s, &wk, p, &w, cells, k, p->group != NULL, res, errs, ss);
        for (int i = 0; i < k && !st; i++) {
            int64_t id = p->cell_id[cells[i]];
            if (res[i] == DK_CELL_RUN_OK) {
                if ((st = dk_store_cell_finish(s, id, &wk, e)) == DK_ERR_STATE)
                    st = DK_OK; /* reclaimed meanwhile */
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
    DK_FREE_ALL(cells, ids, claimed, res, errs);
    dk_cache_free(&w);
    dk_store_close(s);
    return st;
}
