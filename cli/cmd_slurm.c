/* cmd_slurm.c — `dashkit slurm CONFIG --shards N [--partition P] [--time T] [--cpus-per-task C]
 * [--mem M] [--out DIR] [--submit] [--dry-run]`: a config as a Slurm job array of N shards
 * (`run --shard I/N`, eval/sweep/shard.h) and a dependent `dashkit merge` into DIR/dashkit.db. */
#include "cli.h"
#include "cli_util.h"
#include "config.h"
#include "runner.h"
#include "shard.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void dk_slurm_usage(FILE *f) {
    fprintf(
        f,
        "usage: dashkit slurm CONFIG --shards N [--partition P] [--time T] [--cpus-per-task C] [--mem M]\n"
        "                     [--out DIR] [--submit] [--dry-run]\n\n"
        "Writes DIR/dashkit-shards.sbatch (a job array of N tasks; task I runs\n"
        "'dashkit run CONFIG --shard I/N --db DIR/shard-I.db --threads $SLURM_CPUS_PER_TASK', its log in\n"
        "DIR/logs/shard-I.log), DIR/dashkit-merge.sbatch (after the array, whatever its tasks' fate:\n"
        "'dashkit merge DIR/dashkit.db' of the shard stores there, then 'dashkit status DIR') and\n"
        "DIR/submit.sh (submits both with the dependency). Jobs run in the current folder, which must be\n"
        "on a filesystem the nodes share with this one (the config's relative model and data paths, DIR).\n"
        "Submitting again runs only the cells not done yet: the shard stores resume.\n\n"
        "  --shards N          array size, 1..%d (each shard: the rho-sibling groups hashing to it)\n"
        "  --partition P, --time T, --mem M\n"
        "                      passed to sbatch for each array task and the merge job\n"
        "  --cpus-per-task C   cores per task, its BLAS threads (default: the config's \"threads\", else 1)\n"
        "  --out DIR           scripts, shard stores, logs and dashkit.db (default results/slurm)\n"
        "  --submit            also submit (sbatch) and print array_job and merge_job\n"
        "  --dry-run           only print the shard plan: cells and estimated cost per shard\n"
        "  -h, --help          this help\n\n"
        "Exit status: 0 ok, 1 a model/data/IO error or sbatch failed, 2 bad usage or config.\n",
        DK_SHARD_MAX);
}

/* A value written into a shell script between single quotes / after #SBATCH: no quote, newline
 * or other control character. */
static int dk_slurm_safe(const char *what, const char *v) {
    for (const char *p = v; *p; p++)
        if (*p == '\'' || (unsigned char)*p < 0x20) {
            fprintf(stderr,
                    "dashkit slurm: %s '%s' holds a quote or control character; not written into a script\n",
                    what, v);
            return 0;
        }
    return 1;
}

static int dk_slurm_mkdirs(const char *dir) {
    char buf[PATH_MAX + 16];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(buf, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

typedef struct {
    const char *partition, *time, *mem;
    int cpus, shards;
} dk_slurm_opts;

static void dk_slurm_sbatch_common(FILE *f, const dk_slurm_opts *o, const char *cwd) {
    if (o->partition) fprintf(f, "#SBATCH --partition=%s\n", o->partition);
    if (o->time) fprintf(f, "#SBATCH --time=%s\n", o->time);
    if (o->mem) fprintf(f, "#SBATCH --mem=%s\n", o->mem);
    fprintf(f, "#SBATCH --ntasks=1\n#SBATCH --open-mode=append\n#SBATCH --chdir=%s\n", cwd);
}

/* Writes path atomically (tmp + rename), mode 0755. */
static FILE *dk_slurm_open(const char *path, char *tmp, size_t n) {
    snprintf(tmp, n, "%s.tmp.%d", path, (int)getpid());
    return fopen(tmp, "w");
}
static int dk_slurm_close(FILE *f, const char *tmp, const char *path) {
    int bad = ferror(f) | fclose(f);
    if (bad || chmod(tmp, 0755) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "dashkit slurm: %s: cannot write: %s\n", path, strerror(errno));
        unlink(tmp);
        return 0;
    }
    return 1;
}

static int dk_slurm_write(const dk_config *cfg, const dk_slurm_opts *o, const char *exe, const char *config,
                          const char *dir, const char *cwd, const char *command) {
    char path[PATH_MAX + 64], tmp[PATH_MAX + 96];
    FILE *f;
    /* the array */
    snprintf(path, sizeof path, "%s/dashkit-shards.sbatch", dir);
    if (!(f = dk_slurm_open(path, tmp, sizeof tmp))) goto io;
    fprintf(f,
            "#!/bin/bash\n# %s\n# Task I of the array runs shard I/%d of %s into %s/shard-I.db (resumable: "
            "submitting\n"
            "# again runs only the cells not done yet).\n",
            command, o->shards, config, dir);
    fprintf(f,
            "#SBATCH --job-name=dashkit-%s\n#SBATCH --array=1-%d\n#SBATCH --cpus-per-task=%d\n"
            "#SBATCH --output=%s/logs/shard-%%a.log\n",
            cfg->name, o->shards, o->cpus, dir);
    dk_slurm_sbatch_common(f, o, cwd);
    fprintf(f,
            "set -eu\ni=${SLURM_ARRAY_TASK_ID:?not a Slurm array task}\nthreads=${SLURM_CPUS_PER_TASK:-%d}\n"
            "echo \"dashkit shard $i/%d on $(hostname) with $threads threads, $(date -u)\"\n"
            "exec '%s' run '%s' --shard \"$i/%d\" --db '%s'/shard-\"$i\".db --threads \"$threads\" --quiet\n",
            o->cpus, o->shards, exe, config, o->shards, dir);
    if (!dk_slurm_close(f, tmp, path)) return 0;
    /* the merge */
    snprintf(path, sizeof path, "%s/dashkit-merge.sbatch", dir);
    if (!(f = dk_slurm_open(path, tmp, sizeof tmp))) goto io;
    fprintf(
        f, "#!/bin/bash\n# %s\n# After the array (afterany): the shard stores there merged into %s/dashkit.db.\n",
        command, dir);
    fprintf(
        f, "#SBATCH --job-name=dashkit-%s-merge\n#SBATCH --cpus-per-task=1\n#SBATCH --output=%s/logs/merge.log\n",
        cfg->name, dir);
    dk_slurm_sbatch_common(f, o, cwd);
    fprintf(f,
            "set -eu\nshards=()\nfor i in $(seq 1 %d); do\n  f='%s'/shard-$i.db\n"
            "  if [ -f \"$f\" ]; then shards+=(\"$f\"); else echo \"dashkit-merge: $f missing (shard $i/%d "
            "never started)\" >&2; fi\n"
            "done\n[ ${#shards[@]} -gt 0 ] || { echo \"dashkit-merge: no shard store in %s\" >&2; exit 1; }\n"
            "'%s' merge '%s'/dashkit.db \"${shards[@]}\"\nexec '%s' status '%s'\n",
            o->shards, dir, o->shards, dir, exe, dir, exe, dir);
    if (!dk_slurm_close(f, tmp, path)) return 0;
    /* submit.sh */
    snprintf(path, sizeof path, "%s/submit.sh", dir);
    if (!(f = dk_slurm_open(path, tmp, sizeof tmp))) goto io;
    fprintf(f,
            "#!/bin/sh\n# %s\n# Submits the array, then the merge to run after it; prints both job ids.\nset "
            "-eu\n"
            "array=$(sbatch --parsable '%s/dashkit-shards.sbatch')\narray=${array%%%%;*}\n"
            "merge=$(sbatch --parsable --dependency=afterany:\"$array\" '%s/dashkit-merge.sbatch')\n"
            "echo \"array_job: $array\"\necho \"merge_job: ${merge%%%%;*}\"\n",
            command, dir, dir);
    if (!dk_slurm_close(f, tmp, path)) return 0;
    return 1;
io:
    fprintf(stderr, "dashkit slurm: %s: cannot write: %s\n", path, strerror(errno));
    return 0;
}

static int dk_slurm_dry(const dk_config *cfg, int shards) {
    dk_err e = {{0}};
    dk_shard_plan plan;
    dk_status st = dk_runner_shard_plan(cfg, shards, &plan, &e);
    if (st) {
        fprintf(stderr, "dashkit slurm: %s\n", e.msg);
        return st == DK_ERR_ARG ? 2 : 1;
    }
    int64_t *cells = calloc((size_t)shards + 1, sizeof *cells);
    double *cost = calloc((size_t)shards + 1, sizeof *cost),
           *flops = calloc((size_t)shards + 1, sizeof *flops), imb = 0;
    if (!cells || !cost || !flops) {
        fprintf(stderr, "dashkit slurm: out of memory\n");
        free(cells);
        free(cost);
        free(flops);
        return 1;
    }
    dk_shard_plan_totals(&plan, cells, cost, flops, &imb);
    double tc = 0, tf = 0;
    for (int i = 1; i <= shards; i++) {
        tc += cost[i];
        tf += flops[i];
    }
    printf("cells: %zu\nshards: %d\ncost: %.6g\nest_flops: %.6g\nimbalance: %.3f\n", plan.n_cells, shards, tc,
           tf, imb);
    printf("%6s %7s %12s %12s\n", "shard", "cells", "cost", "est_flops");
    for (int i = 1; i <= shards; i++)
        printf("%6d %7lld %12.4g %12.4g\n", i, (long long)cells[i], cost[i], flops[i]);
    free(cells);
    free(cost);
    free(flops);
    dk_shard_plan_free(&plan);
    return 0;
}

static int dk_slurm_int(const char *opt, const char *v, long lo, long hi, int *out) {
    long n;
    if (!dk_cli_parse_long("slurm", opt, v, lo, hi, &n)) return 0;
    *out = (int)n;
    return 1;
}

/* Reads the options into o, *config, *out, *submit, *dry and checks them. Returns -1 to go on,
 * else the exit code (0 after --help, 2 on a bad option with its error line printed). */
static int slurm_parse_args(int argc, char **argv, dk_slurm_opts *o, const char **config, const char **out,
                            int *submit, int *dry) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dk_cli_help(a, dk_slurm_usage)) return 0;
        int takes = !strcmp(a, "--shards") || !strcmp(a, "--partition") || !strcmp(a, "--time") ||
                    !strcmp(a, "--cpus-per-task") || !strcmp(a, "--mem") || !strcmp(a, "--out");
        if (takes && !dk_cli_has_value("slurm", argc, argv, i)) return 2;
        if (!strcmp(a, "--shards")) {
            if (!dk_slurm_int(a, argv[++i], 1, DK_SHARD_MAX, &o->shards)) return 2;
        } else if (!strcmp(a, "--cpus-per-task")) {
            if (!dk_slurm_int(a, argv[++i], 1, 4096, &o->cpus)) return 2;
        } else if (!strcmp(a, "--partition")) o->partition = argv[++i];
        else if (!strcmp(a, "--time")) o->time = argv[++i];
        else if (!strcmp(a, "--mem")) o->mem = argv[++i];
        else if (!strcmp(a, "--out")) *out = argv[++i];
        else if (!strcmp(a, "--submit")) *submit = 1;
        else if (!strcmp(a, "--dry-run")) *dry = 1;
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "dashkit slurm: unknown option '%s' (see --help)\n", a);
            return 2;
        } else if (!*config) *config = a;
        else {
            fprintf(stderr, "dashkit slurm: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!*config) {
        fprintf(stderr, "dashkit slurm: missing CONFIG (see --help)\n");
        return 2;
    }
    if (!o->shards) {
        fprintf(stderr, "dashkit slurm: missing --shards N (see --help)\n");
        return 2;
    }
    if (*submit && *dry) {
        fprintf(stderr, "dashkit slurm: --submit and --dry-run exclude each other\n");
        return 2;
    }
    const char *vals[][2] = {{"--partition", o->partition},
                             {"--time", o->time},
                             {"--mem", o->mem},
                             {"--out", *out},
                             {"CONFIG", *config}};
    for (size_t k = 0; k < sizeof vals / sizeof vals[0]; k++) {
        if (!vals[k][1]) continue;
        if (!dk_slurm_safe(vals[k][0], vals[k][1])) return 2;
        if (k < 3 && (!vals[k][1][0] || strchr(vals[k][1], ' '))) {
            fprintf(stderr, "dashkit slurm: %s '%s' is empty or holds a space\n", vals[k][0], vals[k][1]);
            return 2;
        }
    }
    return -1;
}

/* Runs DIR/submit.sh, echoing its array_job:/merge_job: lines; 1 with the last other line on failure. */
static int slurm_submit(const char *dir) {
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "/bin/sh '%s/submit.sh' 2>&1", dir);
    FILE *p = popen(cmd, "r");
    if (!p) {
        fprintf(stderr, "dashkit slurm: cannot run %s/submit.sh: %s\n", dir, strerror(errno));
        return 1;
    }
    char line[1024], last[1024] = "";
    while (fgets(line, sizeof line, p)) {
        if (!strncmp(line, "array_job: ", 11) || !strncmp(line, "merge_job: ", 11)) fputs(line, stdout);
        else snprintf(last, sizeof last, "%s", line);
    }
    int ws = pclose(p);
    if (ws != 0) {
        char *nl = strchr(last, '\n');
        if (nl) *nl = 0;
        fprintf(stderr, "dashkit slurm: sbatch failed: %s\n", last[0] ? last : "no output");
        return 1;
    }
    return 0;
}

int dk_cmd_slurm(int argc, char **argv) {
    dk_slurm_opts o = {NULL, NULL, NULL, 0, 0};
    const char *config = NULL, *out = "results/slurm";
    int submit = 0, dry = 0;
    int rc = slurm_parse_args(argc, argv, &o, &config, &out, &submit, &dry);
    if (rc >= 0) return rc;
    dk_err e = {{0}};
    dk_config *cfg = NULL;
    if (dk_config_load(config, NULL, &cfg, &e)) {
        fprintf(stderr, "dashkit slurm: %s\n", e.msg);
        return 2;
    }
    if (!o.cpus) o.cpus = cfg->threads > 0 ? cfg->threads : 1;
    rc = 1;
    char exe[PATH_MAX], cfg_abs[PATH_MAX], dir[PATH_MAX], cwd[PATH_MAX];
    char *command = NULL;
    if (dry) {
        rc = dk_slurm_dry(cfg, o.shards);
        goto done;
    }
    /* the whole config is checked here (models, task data) before anything is written */
    dk_status st = dk_runner_check(cfg, &e);
    if (st) {
        fprintf(stderr, "dashkit slurm: %s\n", e.msg);
        rc = st == DK_ERR_ARG ? 2 : 1;
        goto done;
    }
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0) {
        fprintf(stderr, "dashkit slurm: cannot find its own binary: %s\n", strerror(errno));
        goto done;
    }
    exe[k] = 0;
    if (!realpath(config, cfg_abs) || !getcwd(cwd, sizeof cwd)) {
        fprintf(stderr, "dashkit slurm: %s: %s\n", config, strerror(errno));
        goto done;
    }
    char logs[PATH_MAX + 8];
    snprintf(logs, sizeof logs, "%s/logs", out);
    if (dk_slurm_mkdirs(logs) != 0 || !realpath(out, dir)) {
        fprintf(stderr, "dashkit slurm: %s: cannot create: %s\n", out, strerror(errno));
        goto done;
    }
    if (!dk_slurm_safe("binary path", exe) || !dk_slurm_safe("CONFIG path", cfg_abs) ||
        !dk_slurm_safe("--out path", dir) || !dk_slurm_safe("working folder", cwd) || strchr(cwd, ' ') ||
        strchr(dir, ' ')) {
        if (strchr(cwd, ' ') || strchr(dir, ' '))
            fprintf(stderr, "dashkit slurm: %s or %s holds a space (#SBATCH paths cannot)\n", cwd, dir);
        rc = 2;
        goto done;
    }
    if (!(command = dk_cli_command_line(argc, argv))) {
        fprintf(stderr, "dashkit slurm: out of memory\n");
        goto done;
    }
    for (char *p = command; *p; p++)
        if ((unsigned char)*p < 0x20) *p = ' ';
    if (!dk_slurm_write(cfg, &o, exe, cfg_abs, dir, cwd, command)) goto done;
    printf("dir: %s\nscript: %s/dashkit-shards.sbatch\nmerge_script: %s/dashkit-merge.sbatch\nsubmit_script: "
           "%s/submit.sh\n"
           "shards: %d\ncells: %zu\ncpus_per_task: %d\nout_db: %s/dashkit.db\n",
           dir, dir, dir, dir, o.shards, cfg->n_cells, o.cpus, dir);
    fflush(stdout);
    rc = 0;
    if (submit) rc = slurm_submit(dir);
done:
    free(command);
    dk_config_free(cfg);
    return rc;
}
