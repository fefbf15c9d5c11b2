/* cmd_report.c — `dashkit report`: every figure, table and report.md of one run, from the store.
 * Library work is in eval/report/report.c; this file parses options, prints and picks the exit code:
 *   0  report written (also when gnuplot is missing: data and scripts are written, stderr says so)
 *   1  the store cannot be read / a file cannot be written / gnuplot failed on a figure
 *   2  usage error, or --run names no run in the store */
#include "cli.h"
#include "cli_util.h"
#include "report.h"
#include "store.h"

#include <stdio.h>
#include <string.h>

static void dk_report_usage(FILE *f) {
    fprintf(f, "usage: dashkit report [--db PATH] [--run ID] [--out DIR] [options]\n\n"
               "Writes speedup-accuracy frontiers (measured and FLOP speedup), NIAH heatmaps, per-layer\n"
               "plots, Markdown/LaTeX/CSV tables and DIR/report.md for one run of the store. Each figure's\n"
               "data (.dat/.csv) and gnuplot script (.gp) are written beside it; files are replaced\n"
               "atomically. gnuplot is found at run time ($DK_GNUPLOT, else on $PATH); without it the data\n"
               "and scripts are still written, a message says so, and the exit status is 0.\n\n"
               "  --db PATH      the store (default results/dashkit.db)\n"
               "  --run ID       the run to report (default: the latest)\n"
               "  --out DIR      output folder (default results/report; created if missing)\n"
               "  --boot N       bootstrap resamples for the CIs (default 2000; 0 = no CIs)\n"
               "  --seed S       bootstrap seed (default 1): the same seed gives the same CIs\n"
               "  --level L      CI level in (0,1) (default 0.95)\n"
               "  --no-draw      write data, scripts and tables only; do not run gnuplot\n"
               "  --paper FILE   reported numbers printed beside the measured ones (\"Paper vs\n"
               "                 measured\"; default datasets/paper/dash_longbench_e.csv, skipped when\n"
               "                 absent; \"\" = none)\n"
               "  -h, --help     this help\n\n"
               "exit status: 0 written; 1 store unreadable, write error or gnuplot failed on a figure;\n"
               "2 usage error or no such run\n");
}

int dk_cmd_report(int argc, char **argv) {
    const char *db = "results/dashkit.db", *out = "results/report";
    dk_report_opts o;
    dk_report_opts_default(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dk_cli_help(a, dk_report_usage)) return 0;
        if (!strcmp(a, "--no-draw")) {
            o.draw = 0;
            continue;
        }
        static const char *const with_val[] = {"--db",   "--run",   "--out",   "--boot",
                                               "--seed", "--level", "--paper", NULL};
        const char *v = dk_cli_opt_value("report", argc, argv, &i, with_val);
        if (!v) return 2;
        if (!strcmp(a, "--db")) db = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--paper")) o.paper = v;
        else if (dk_report_parse_ci_opt("report", a, v, &o) < 0) return 2;
    }
    if (!*out) {
        fprintf(stderr, "dashkit report: --out is empty\n");
        return 2;
    }
    dk_err e = {{0}};
    dk_store *s = NULL;
    dk_status st = dk_store_open(db, DK_STORE_OPEN_READONLY, &s, &e);
    if (st != DK_OK) {
        fprintf(stderr, "dashkit report: %s\n", e.msg);
        return 1;
    }
    dk_report_result r;
    st = dk_report_write(s, out, &o, &r, &e);
    dk_store_close(s);
    if (st != DK_OK) {
        fprintf(stderr, "dashkit report: %s\n", e.msg);
        return dk_report_exit_code(st);
    }
    printf("run: %lld\nout: %s\nreport: %s/report.md\nfiles: %d\n", (long long)r.run_id, out, out, r.n_files);
    if (!o.draw) printf("figures: %d scripts, not drawn (--no-draw)\n", r.n_figures);
    else if (!r.gnuplot_found) printf("figures: %d scripts, 0 drawn (gnuplot missing)\n", r.n_figures);
    else
        printf("figures: %d drawn, %d failed (gnuplot %s, %s)\n", r.n_drawn, r.n_failed, r.gnuplot,
               r.terminal);
    for (char *p = r.notes; *p;) {
        char *nl = strchr(p, '\n');
        fprintf(stderr, "note: %.*s\n", nl ? (int)(nl - p) : (int)strlen(p), p);
        p = nl ? nl + 1 : p + strlen(p);
    }
    if (o.draw && !r.gnuplot_found)
        fprintf(stderr,
                "dashkit report: %s: figures not drawn; data and scripts are in %s (draw with: cd %s && "
                "gnuplot NAME.gp)\n",
                r.gnuplot, out, out);
    if (r.n_failed) {
        fprintf(stderr, "dashkit report: gnuplot failed on %d figure(s): %s\n", r.n_failed, r.failure);
        return 1;
    }
    return 0;
}
