/* runner.c — the config-matrix run: checks, recording, forking the workers, progress, the analysis
 * (runner.h; the plan is runner_plan.c, a worker runner_worker.c). */
#include "runner.h"
#include "runner_int.h"
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

void dk_runner_opts_default(dk_runner_opts *o) {
    memset(o, 0, sizeof *o);
    o->db_path = "results/dashkit.db";
    o->workers = 1;
    o->lease_s = 1800;
    o->progress_interval_s = 0.5;
    o->prefix_sharing = 1;
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
    if (fgets(line, sizeof line, f)) {
        dk_chomp(line);
        snprintf(out, n, "%s", line);
    }
    if (pclose(f) != 0) {
        out[0] = 0;
        return;
    }
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
            if (c) {
                c++;
                while (*c == ' ' || *c == '\t') c++;
                dk_chomp(c);
                snprintf(out, n, "%s", c);
            }
            break;
        }
    fclose(f);
}

/* ---- recording: run, models, cells ---- */

static dk_status dk_record(dk_store *s, const dk_config *cfg, const dk_runner_opts *o, dk_plan *p,
                           dk_err *e) {
    char host[256] = "", cpu[256], git[320], shard[32];
    snprintf(shard, sizeof shard, "%d/%d", o->shard_index, o->shard_count);
    if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "unknown");
    dk_cpu_model(cpu, sizeof cpu);
    dk_git_rev(git, sizeof git);
    dk_run_info ri = {
        .name = cfg->name,
        .config_path = cfg->path,
        .config_text = cfg->text,
        .config_hash = cfg->hash,
        .git_rev = git[0] ? git : NULL,
        .host = host,
        .cpu = cpu[0] ? cpu : NULL,
        .blas_core = dk_blas_core(),
        .command = o->command,
        .threads = cfg->threads > 0 ? cfg->threads : dk_blas_threads(),
        .workers = o->workers,
        .n_cells = (int64_t)(p->ord ? p->n_config_cells : cfg->n_cells),
        .shard = o->shard_count > 0 ? shard : NULL,
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
    for (size_t i = 0; i < cfg->n_models && !st; i++)
        st = dk_store_model_put(s, &p->model_info[i], &model_id[i], e);
    for (size_t i = 0; i < cfg->n_cells && !st; i++) {
        const dk_config_cell *c = &cfg->cells[i];
        dk_config_identity id;
        if ((st = dk_config_cell_identity(cfg, c, p->model_sha[c->model], &id, e))) break;
        memcpy(p->key[i], id.key, sizeof p->key[i]);
        memcpy(p->task_key[i], id.task_key, sizeof p->task_key[i]);
        ident[i] = id.json;
        spec[i] = (dk_cell_spec){.key = p->key[i],
                                 .identity = ident[i],
                                 .task = c->task_name,
                                 .task_options = c->task_options,
                                 .task_key = p->task_key[i],
                                 .method = c->method_name,
                                 .params = c->method_params,
                                 .model_id = model_id[c->model],
                                 .n_samples = cfg->samples,
                                 .seed = cfg->seed};
    }
    if (!st) st = dk_store_cells_add_at(s, p->run_id, spec, p->ord, cfg->n_cells, 1, p->cell_id, NULL, e);
done:
    for (size_t i = 0; ident && i < cfg->n_cells; i++) free(ident[i]);
    free(ident);
    free(spec);
    free(model_id);
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
    pr->samples_per_s = pr->elapsed_s > 0 && pr->samples_new > 0 ? (double)pr->samples_new / pr->elapsed_s
                                                                 : 0;
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
            if (!st && set.n > 0)
                st = dk_analyze_run(m, &set, dk_eval_default_budget(m, &set.s[0]), &ao, &a, e);
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

/* A forked worker process: runs dk_worker_loop, writes its prefix-sharing counters to statpipe
 * and a fatal error to errpipe (one write < PIPE_BUF each: atomic), exits. */
static void dk_worker_main(const dk_plan *p, pid_t parent, const int errpipe[2], const int statpipe[2]) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a killed run takes its workers with it */
    if (getppid() != parent) _exit(3);
    close(errpipe[0]);
    close(statpipe[0]);
    if (p->cfg->threads > 0) openblas_set_num_threads(p->cfg->threads);
    dk_err we = {{0}};
    dk_share_stats ss = {0, 0.0, 0.0, 0.0};
    dk_status ws = dk_worker_loop(p, &ss, &we);
    char line[128];
    int n = snprintf(line, sizeof line, "%lld %.9g %.17g %.17g\n", (long long)ss.shared_runs, ss.saved_s,
                     ss.model_flops, ss.model_saved);
    if (n > 0 && write(statpipe[1], line, (size_t)n) < 0) _exit(1);
    if (ws) {
        char msg[512];
        int k = snprintf(msg, sizeof msg, "worker %d: %s\n", (int)getpid(), we.msg);
        if (k > 0 && write(errpipe[1], msg, (size_t)(k < (int)sizeof msg ? k : (int)sizeof msg - 1)) < 0)
            _exit(1);
    }
    _exit(ws ? 1 : 0);
}

/* Every worker has exited: their counter lines (those that got that far) are in the pipe; read
 * to EOF and sum them into pr. */
static void dk_runner_read_stats(int fd, dk_runner_progress *pr) {
    char buf[4096];
    size_t len = 0;
    double model_flops = 0, model_saved = 0;
    ssize_t k;
    while (len + 1 < sizeof buf && (k = read(fd, buf + len, sizeof buf - 1 - len)) > 0) len += (size_t)k;
    buf[len] = 0;
    for (char *line = buf; line && *line;) {
        long long runs;
        double saved, mf, ms;
        if (sscanf(line, "%lld %lf %lf %lf", &runs, &saved, &mf, &ms) == 4) {
            pr->prefix_shared_runs += runs;
            pr->prefix_saved_s += saved;
            model_flops += mf;
            model_saved += ms;
        }
        line = strchr(line, '\n');
        if (line) line++;
    }
    pr->prefix_expected_ratio = model_flops > model_saved && model_flops > 0
                                    ? model_flops / (model_flops - model_saved)
                                    : NAN;
}

/* Step 1 (runner.h) and the plan the workers inherit: p->cfg is cfg_all, or *view holding the
 * cells of the shard the options name. */
static dk_status dk_runner_plan(const dk_config *cfg_all, const dk_runner_opts *o, dk_plan *p,
                                dk_config *view, dk_err *e) {
    p->cfg = cfg_all;
    p->lease_s = o->lease_s;
    p->db_path = o->db_path;
    dk_status st = dk_runner_check_compute(cfg_all, e);
    if (!st) st = dk_plan_models(cfg_all, p, e);
    if (!st) st = dk_plan_check_cells(cfg_all, p, e);
    if (!st && o->shard_count > 0 &&
        !(st = dk_plan_shard(cfg_all, o->shard_index, o->shard_count, p, view, e)))
        p->cfg = view;
    if (!st && o->prefix_sharing) st = dk_plan_groups(p->cfg, p, e);
    return st;
}

dk_status dk_runner_run(const dk_config *cfg_all, const dk_runner_opts *o, dk_runner_progress *out,
                        dk_err *e) {
    if (o->workers < 1) return dk_fail(e, DK_ERR_ARG, "workers = %d must be >= 1", o->workers);
    if (o->shard_count < 0 || o->shard_count > DK_SHARD_MAX ||
        (o->shard_count > 0 && (o->shard_index < 1 || o->shard_index > o->shard_count)))
        return dk_fail(e, DK_ERR_ARG, "shard %d/%d is not I/N with 1 <= I <= N <= %d", o->shard_index,
                       o->shard_count, DK_SHARD_MAX);
    if (!(o->lease_s > 0) || !(o->progress_interval_s > 0))
        return dk_fail(e, DK_ERR_ARG, "lease and progress interval must be > 0");
    dk_plan p = {0};
    dk_config view;
    const dk_config *cfg = cfg_all;
    dk_store *s = NULL;
    pid_t *pids = NULL, *all_pids = NULL; /* running workers (0 once reaped); every worker started */
    int n_pids = 0, errpipe[2] = {-1, -1}, statpipe[2] = {-1, -1};
    dk_status st = dk_runner_plan(cfg_all, o, &p, &view, e);
    if (st) goto done;
    cfg = p.cfg;

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
    if (!pids || !all_pids) {
        st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* workers report a fatal (store) error through this pipe: one write < PIPE_BUF each, atomic */
    if (pipe(errpipe) != 0 || pipe(statpipe) != 0) {
        st = dk_fail(e, DK_ERR_IO, "pipe: %s", strerror(errno));
        goto done;
    }
    fflush(NULL);
    pid_t parent = getpid();
    for (int i = 0; i < o->workers; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            st = dk_fail(e, DK_ERR_IO, "fork: %s", strerror(errno));
            break;
        }
        if (pid == 0) dk_worker_main(&p, parent, errpipe, statpipe);
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
    dk_runner_read_stats(statpipe[0], &pr);
    if (o->progress) o->progress(o->progress_user, &pr, 1);
    if (out) *out = pr;
    dk_err ee = {
        {0}}; /* a failed run_end (a full disk) is reported with the cells' state, not instead of it */
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
    for (int i = 0; i < n_pids && pr.cells_running > 0; i++)
        own += dk_progress_held_by(s, p.run_id, all_pids[i]);
    if (pr.cells_done < pr.cells_total)
        st = dk_fail(
            e, DK_ERR_STATE,
            "%lld of %lld cells not done: %lld failed, %lld interrupted, %lld still running in another"
            " process, %lld pending%s%s%s%.300s (see 'dashkit status'; re-run to resume)",
            (long long)(pr.cells_total - pr.cells_done), (long long)pr.cells_total,
            (long long)pr.cells_failed, (long long)own, (long long)(pr.cells_running - own),
            (long long)pr.cells_pending, worker_failed ? "; " : "", werr, est ? "; " : "", est ? ee.msg : "");
    else if (est) {
        *e = ee;
        st = est;
    }
    /* a shard run leaves the config's "analyze" to `run --db MERGED` (its analyses are not merged) */
    if (!st && cfg->analyze && !o->shard_count && pr.cells_done == pr.cells_total)
        st = dk_runner_analyze(s, cfg, &p, e);
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
