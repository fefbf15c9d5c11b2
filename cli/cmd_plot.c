/* cmd_plot.c — `dashkit plot`: one figure from the store, with its data and script beside it.
 * Exit: 0 drawn; 1 store unreadable / write error / gnuplot missing or failed (the .dat and .gp
 * are written all the same); 2 usage error or a selection naming nothing in the run. */
#include "cli.h"
#include "cli_util.h"
#include "report.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void dk_plot_usage(FILE *f) {
    fprintf(f, "usage: dashkit plot [--kind frontier|heatmap|layers|delta] [--task NAME] [--x wall|flops]\n"
               "                    [--method M] [--model M] [--db PATH] [--run ID] [--out FILE]\n\n"
               "Draws one figure of one run. FILE ends in .png or .svg; FILE's stem .dat (data) and .gp\n"
               "(gnuplot script) are written beside it, so `gnuplot STEM.gp` in that folder redraws it.\n\n"
               "  --kind K       frontier (default): score vs speedup per setting, one series per method,\n"
               "                 Pareto front, dense reference, bootstrap CIs;\n"
               "                 heatmap: context length x needle depth, colour = score (one setting);\n"
               "                 layers: fraction of context tokens active per layer;\n"
               "                 delta: per-layer halting-score statistics\n"
               "  --task NAME    task (frontier/heatmap: required when the run has several; layers: filter)\n"
               "  --x AXIS       frontier x axis: wall (measured prefill speedup, default) or flops\n"
               "  --method M     heatmap: a setting label (e.g. 'dash rho=0.5 ls=0.4') or a method with one\n"
               "                 setting; layers: only this method's settings\n"
               "  --model M      model label, path or sha256 prefix (default: the run's only model)\n"
               "  --db PATH      the store (default results/dashkit.db)\n"
               "  --run ID       the run (default: the latest)\n"
               "  --out FILE     output image (default results/plot-KIND.png)\n"
               "  --boot N, --seed S, --level L   bootstrap CIs (defaults 2000, 1, 0.95)\n"
               "  --no-draw      write the data and script only\n"
               "  -h, --help     this help\n\n"
               "exit status: 0 drawn; 1 store unreadable, write error, gnuplot missing or failed;\n"
               "2 usage error or a selection that names nothing in the run\n");
}

int dk_cmd_plot(int argc, char **argv) {
    const char *db = "results/dashkit.db", *out = NULL, *kind = "frontier", *x = "wall";
    dk_plot_spec p = {0};
    dk_report_opts o;
    dk_report_opts_default(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dk_cli_help(a, dk_plot_usage)) return 0;
        if (!strcmp(a, "--no-draw")) {
            o.draw = 0;
            continue;
        }
        static const char *const with_val[] = {"--db",     "--run",   "--out",  "--kind", "--task",  "--x",
                                               "--method", "--model", "--boot", "--seed", "--level", NULL};
        const char *v = dk_cli_opt_value("plot", argc, argv, &i, with_val);
        if (!v) return 2;
        if (!strcmp(a, "--db")) db = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--kind")) kind = v;
        else if (!strcmp(a, "--task")) p.task = v;
        else if (!strcmp(a, "--x")) x = v;
        else if (!strcmp(a, "--method")) p.method = v;
        else if (!strcmp(a, "--model")) p.model = v;
        else if (dk_report_parse_ci_opt("plot", a, v, &o) < 0) return 2;
    }
    if (dk_report_kind_parse(kind, &p.kind) != 0) {
        fprintf(stderr, "dashkit plot: --kind '%s': expected frontier, heatmap, layers or delta\n",
                dk_cli_esc(kind));
        return 2;
    }
    if (!strcmp(x, "wall")) p.x = DK_REPORT_X_WALL;
    else if (!strcmp(x, "flops")) p.x = DK_REPORT_X_FLOPS;
    else {
        fprintf(stderr, "dashkit plot: --x '%s': expected wall or flops\n", dk_cli_esc(x));
        return 2;
    }
    char def[256];
    if (!out) {
        snprintf(def, sizeof def, "results/plot-%s.png", kind);
        out = def;
    }
    dk_err e = {{0}};
    dk_store *s = NULL;
    dk_status st = dk_store_open(db, DK_STORE_OPEN_READONLY, &s, &e);
    if (st != DK_OK) {
        fprintf(stderr, "dashkit plot: %s\n", e.msg);
        return 1;
    }
    dk_report_result r;
    st = dk_report_plot(s, out, &p, &o, &r, &e);
    dk_store_close(s);
    if (st != DK_OK) {
        fprintf(stderr, "dashkit plot: %s\n", e.msg);
        return dk_report_exit_code(st);
    }
    const char *dot = strrchr(out, '.');
    int stem_len = (int)(dot - out);
    printf("run: %lld\ndata: %.*s.dat\nscript: %.*s.gp\n", (long long)r.run_id, stem_len, out, stem_len, out);
    if (!o.draw) {
        printf("figure: not drawn (--no-draw)\n");
        return 0;
    }
    if (!r.gnuplot_found) {
        printf("figure: not drawn (gnuplot missing)\n");
        fprintf(stderr, "dashkit plot: %s: %s not drawn; its data and script are written\n", r.gnuplot, out);
        return 1;
    }
    if (r.n_failed) {
        fprintf(stderr, "dashkit plot: gnuplot failed: %s\n", r.failure);
        return 1;
    }
    printf("figure: %s\n", out);
    return 0;
}
