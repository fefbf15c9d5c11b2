/* cmd_run.c — `dashkit run CONFIG [--db PATH] [--workers N] [--threads N] [--shard I/N] [--dry-run]
 * [--no-prefix-sharing] [--quiet]`: a config matrix (or one shard of it, eval/sweep/shard.h) into the SQLite
 * store, resumably (eval/sweep/runner.h). A bad config is one error line and exit 2 before the
 * store is touched (not even created); a model that cannot be read is exit 1, store untouched. */
#include "cli.h"
#include "cli_util.h"
#include "config.h"
#include "runner.h"
#include "shard.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void dk_run_usage(FILE *f) {
    fprintf(
        f,
        "usage: dashkit run CONFIG [--db PATH] [--workers N] [--threads N] [--shard I/N] [--dry-run]\n"
        "                   [--no-prefix-sharing] [--quiet] [--check]\n\n"
        "Runs every cell of a JSON config matrix (models x tasks x methods x grids) into the\n"
        "SQLite store. Resume is the default: cells already done (same model sha256, task,\n"
        "method, parameters and sample set) are skipped, unfinished ones completed, failed\n"
        "ones retried. Progress (cells done/total, samples/s, ETA) goes to stderr when it is\n"
        "a terminal.\n\n"
        "  --db PATH      the store (default results/dashkit.db; created with its folder)\n"
        "  --workers N    worker processes claiming cells from the store (default 1)\n"
        "  --threads N    BLAS threads per worker, overriding the config's \"threads\" (0 = all cores)\n"
        "  --shard I/N    only shard I of N (1 <= I <= N): the cells whose rho-sibling group hashes to I,\n"
        "                 a pure function of each cell's identity; default store results/shard-I.db.\n"
        "                 Unite the shard stores with 'dashkit merge'\n"
        "  --dry-run      validate, then print 'cells: N' and each cell (shard, estimated tokens and\n"
        "                 cost = tokens x layers x samples); runs nothing, writes nothing\n"
        "  --no-prefix-sharing\n"
        "                 run every cell alone. By default the cells of a rho grid (same model, task\n"
        "                 point, method and other parameters) are claimed together and the layers\n"
        "                 before the decision layer l_s run once per sample for all of them; results\n"
        "                 are bit-identical either way, and each cell's wall time includes the\n"
        "                 prefix (the sweep's saving is printed as prefix_sharing_saved_s)\n"
        "  --quiet        no progress line\n"
        "  --check        validate only: the config, every model, every data file and every cell's\n"
        "                 parameters, as a run does before it opens the store; prints `cells: N`\n"
        "  -h, --help     this help\n\n"
        "Exit status: 0 all cells done, 1 a model/store error or cells failed, 2 bad usage or\n"
        "bad config. Query results with 'dashkit status', 'dashkit export' or sqlite3.\n");
}

static void dk_fmt_dur(double s, char *out, size_t n) {
    if (!isfinite(s)) {
        snprintf(out, n, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(out, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60) snprintf(out, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(out, n, "%lds", t);
}

typedef struct {
    int tty;
} dk_run_ui;

/* --dry-run: the cells (of the shard) with their shard and estimated cost. */
static int dk_run_dry(const dk_config *cfg, int shard_index, int shard_count) {
    dk_err e = {{0}};
    dk_shard_plan plan;
    dk_status st = dk_runner_shard_plan(cfg, shard_count > 0 ? shard_count : 1, &plan, &e);
    if (st) {
        fprintf(stderr, "dashkit run: %s\n", e.msg);
        return st == DK_ERR_ARG ? 2 : 1;
    }
    size_t n = 0;
    double cost = 0, flops = 0;
    for (size_t i = 0; i < plan.n_cells; i++)
        if (!shard_count || plan.cells[i].shard == shard_index) {
            n++;
            cost += plan.cells[i].cost;
            flops += plan.cells[i].flops;
        }
    printf("cells: %zu\n", n);
    if (shard_count) printf("shard: %d/%d\nconfig_cells: %zu\n", shard_index, shard_count, plan.n_cells);
    printf("cost: %.6g\nest_flops: %.6g\n", cost, flops);
    printf("%5s  %-12s %-6s %-16s %-36s %-10s %-40s %9s %11s\n", "ord", "key", "shard", "task", "options",
           "method", "params", "tokens", "cost");
    for (size_t i = 0; i < plan.n_cells; i++) {
        const dk_shard_cell *x = &plan.cells[i];
        const dk_config_cell *c = &cfg->cells[i];
        if (shard_count && x->shard != shard_index) continue;
        char sh[24];
        if (shard_count) snprintf(sh, sizeof sh, "%d/%d", x->shard, shard_count);
        else snprintf(sh, sizeof sh, "-");
        printf("%5zu  %.12s %-6s %-16s %-36s %-10s %-40s %9.0f %11.4g\n", i, x->key, sh, c->task_name,
               c->task_options, c->method_name, c->method_params, x->tokens, x->cost);
    }
    dk_shard_plan_free(&plan);
    return 0;
}

static void dk_run_progress(void *user, const dk_runner_progress *p, int final) {
    dk_run_ui *ui = user;
    if (!ui->tty) return;
    char eta[32];
    dk_fmt_dur(p->eta_s, eta, sizeof eta);
    fprintf(stderr, "\r\033[Kcells %lld/%lld done", (long long)p->cells_done, (long long)p->cells_total);
    if (p->cells_failed) fprintf(stderr, ", %lld failed", (long long)p->cells_failed);
    fprintf(stderr, " | samples %lld/%lld | %.2f samples/s | ETA %s", (long long)p->samples_done,
            (long long)p->samples_total, p->samples_per_s, eta);
    if (final) fputc('\n', stderr);
    fflush(stderr);
}

typedef struct {
    dk_runner_opts o;
    const char *config;
    int quiet, dry, threads, check, db_given;
} dk_run_args;

/* Option a with its value v. true: taken; false: the error line is printed. */
static bool dk_run_parse_opt(dk_run_args *x, const char *a, const char *v) {
    long n;
    if (!strcmp(a, "--db")) {
        x->o.db_path = v;
        x->db_given = 1;
    } else if (!strcmp(a, "--workers")) {
        if (!dk_cli_parse_long("run", a, v, 1, 256, &n)) return false;
        x->o.workers = (int)n;
    } else if (!strcmp(a, "--threads")) {
        if (!dk_cli_parse_long("run", a, v, 0, 4096, &n)) return false;
        x->threads = (int)n;
    } else {
        dk_err se = {{0}};
        if (dk_shard_parse(v, &x->o.shard_index, &x->o.shard_count, &se)) {
            fprintf(stderr, "dashkit run: %s\n", se.msg);
            return false;
        }
    }
    return true;
}

/* -1: parsed into x; otherwise the exit status (0 after --help). */
static int dk_run_parse_args(int argc, char **argv, dk_run_args *x) {
    memset(x, 0, sizeof *x);
    dk_runner_opts_default(&x->o);
    x->threads = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dk_cli_help(a, dk_run_usage)) return 0;
        bool takes = !strcmp(a, "--db") || !strcmp(a, "--workers") || !strcmp(a, "--threads") ||
                     !strcmp(a, "--shard");
        if (takes && !dk_cli_has_value("run", argc, argv, i)) return 2;
        if (takes) {
            if (!dk_run_parse_opt(x, a, argv[++i])) return 2;
        } else if (!strcmp(a, "--dry-run")) x->dry = 1;
        else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) x->quiet = 1;
        else if (!strcmp(a, "--no-prefix-sharing")) x->o.prefix_sharing = 0;
        else if (!strcmp(a, "--check")) x->check = 1;
        else if (!dk_cli_positional("run", a, &x->config)) return 2;
    }
    if (!x->config) {
        fprintf(stderr, "dashkit run: missing CONFIG (see --help)\n");
        return 2;
    }
    return -1;
}

static void dk_run_print(const dk_runner_opts *o, const dk_runner_progress *p) {
    char el[32];
    dk_fmt_dur(p->elapsed_s, el, sizeof el);
    if (o->shard_count) printf("shard: %d/%d\n", o->shard_index, o->shard_count);
    printf("run: %lld\ndb: %s\ncells: %lld\ndone: %lld\nfailed: %lld\nunfinished: %lld\nsamples: %lld\n"
           "samples_new: %lld\nelapsed: %s\n",
           (long long)p->run_id, o->db_path, (long long)p->cells_total, (long long)p->cells_done,
           (long long)p->cells_failed, (long long)(p->cells_running + p->cells_pending),
           (long long)p->samples_done, (long long)p->samples_new, el);
    printf("prefix_sharing: %s\nprefix_sharing_runs: %lld\nprefix_sharing_saved_s: %.3f\n"
           "prefix_sharing_expected_ratio: %.3f\nelapsed_s: %.3f\n",
           o->prefix_sharing ? "on" : "off", (long long)p->prefix_shared_runs, p->prefix_saved_s,
           p->prefix_expected_ratio, p->elapsed_s);
}

int dk_cmd_run(int argc, char **argv) {
    dk_run_args x;
    int rc = dk_run_parse_args(argc, argv, &x);
    if (rc >= 0) return rc;
    dk_runner_opts o = x.o;
    char shard_db[64];
    dk_err e = {{0}};
    dk_config *cfg = NULL;
    dk_status st = dk_config_load(x.config, NULL, &cfg, &e);
    if (st) {
        fprintf(stderr, "dashkit run: %s\n", e.msg);
        return 2;
    }
    if (x.threads >= 0) cfg->threads = x.threads; /* not part of any cell's identity */
    if (x.check) {
        st = dk_runner_check(cfg, &e);
        if (st) fprintf(stderr, "dashkit run: %s\n", e.msg);
        else printf("cells: %zu\ncheck: ok\n", cfg->n_cells);
        dk_config_free(cfg);
        return st == DK_OK ? 0 : st == DK_ERR_ARG ? 2 : 1;
    }
    if (x.dry) {
        int drc = dk_run_dry(cfg, o.shard_index, o.shard_count);
        dk_config_free(cfg);
        return drc;
    }
    if (o.shard_count && !x.db_given) {
        snprintf(shard_db, sizeof shard_db, "results/shard-%d.db", o.shard_index);
        o.db_path = shard_db;
    }
    /* the command line, recorded with the run */
    char *cmd = dk_cli_command_line(argc, argv);
    o.command = cmd;
    dk_run_ui ui = {!x.quiet && isatty(2)};
    o.progress = dk_run_progress;
    o.progress_user = &ui;
    dk_runner_progress p;
    memset(&p, 0, sizeof p);
    st = dk_runner_run(cfg, &o, &p, &e);
    rc = 0;
    if (st == DK_OK || st == DK_ERR_STATE) dk_run_print(&o, &p);
    if (st) {
        fprintf(stderr, "dashkit run: %s\n", e.msg);
        rc = st == DK_ERR_ARG ? 2 : 1;
    }
    free(cmd);
    dk_config_free(cfg);
    return rc;
}
