/* report.h — figures, tables and report.md drawn straight from the SQLite store.
 *
 * Every number comes from stored sample rows of one run's cells (run_cells); nothing is
 * recomputed from a model. Definitions (all over the stored samples of the cells in a group):
 *   setting        a (method, params) pair, e.g. dash {"ls":0.4,"rho":0.5}; labelled
 *                  "dash rho=0.5 ls=0.4"; ordered as the config lists them (run_cells.ord).
 *   score          mean of samples.score (NULL scores skipped), LongBench/RULER scale [0,100].
 *   wall speedup   sum(wall_dense_s) / sum(wall_method_s) over samples with both measured
 *                  (measured prefill speedup; 1 for dense by construction of the runner).
 *   FLOPs speedup  sum(flops_dense) / sum(flops_method).
 *   Avg            mean over the tasks of the per-task scores (the paper's LongBench-E "Avg").
 *   CIs            percentile bootstrap over samples (bootstrap.h), stratified by cell (so task
 *                  lengths/depths keep their sample counts), seeded per quantity from
 *                  opts.seed and the quantity's label: deterministic for a seed. Where
 *                  samples share a context (samples.context_key), a task's cells form one
 *                  stratum and its distinct contexts are resampled as clusters.
 *   Comparisons    paired bootstrap of score differences: every setting vs dense; DASH vs each
 *                  baseline series (same method and parameters but rho; same ls) whose FLOP
 *                  speedups bracket DASH's, interpolated linearly between the two neighbours.
 *                  Difference, interval, two-sided p-value (bootstrap.h dk_bootstrap_paired).
 *   Findings       a paragraph generated from those numbers (stats.h dk_findings_write).
 * A frontier pools the cells of one (model, task) over their task options (lengths, depths):
 * one point per setting, one series per method, the Pareto front (pareto.h) over all points
 * including dense. If the run has no "dense" cells, the reference point is the shared dense
 * results (dense_results.score) of the same samples at speedup 1.
 *
 * Files (in out_dir; every one written to a temporary name and renamed when complete):
 *   report.md                                   provenance, tables, figures, notes
 *   table_main.{md,tex,csv}                     settings x tasks (+Avg, FLOPs and wall speedup)
 *   table_ablation.{md,tex,csv}                 one row per setting: rho/tau/ls/keep, Avg score,
 *                                               speedups, answer-level KL, top-1, ΔNLL
 *   comparisons.csv                             the paired comparisons (report.md: "Paired comparisons")
 *   fidelity_MODEL.{dat,gp,png,svg}             per-sample answer KL vs score, one series per
 *                                               setting; Spearman per setting in report.md
 *   frontier_MODEL_TASK.{dat,csv}               + _wall.{gp,png,svg} and _flops.{gp,png,svg}
 *   heatmap_MODEL_TASK_SETTING.{dat,gp,png,svg} tasks whose cells have a "depth" option
 *   layers_active_MODEL_METHOD.{dat,gp,png,svg} mean fraction of context tokens active per layer
 *   layers_delta_MODEL.{dat,gp,png,svg}         per-layer Δ statistics (sample_layers)
 *   paper_vs_measured.{md,tex,csv}              the paper's reported numbers (opts.paper) beside
 *                                               the measured ones, for models whose run has tasks
 *                                               named in the paper's columns; rows matched by the
 *                                               CSV's dashkit_method column
 * A .gp script reads its .dat by relative name: `cd out_dir && gnuplot NAME.gp` redraws it
 * (variables outpng/outsvg/pngterm may be preset with -e). gnuplot is found at run time:
 * $DK_GNUPLOT if set (empty = none), else "gnuplot" on $PATH; without it every data file and
 * script is still written and the result says what is missing. */
#ifndef DK_REPORT_H
#define DK_REPORT_H

#include "dk_common.h"
#include "store.h"
#include <stdint.h>
#include <stdio.h>

typedef enum {
    DK_REPORT_KIND_FRONTIER = 0,
    DK_REPORT_KIND_HEATMAP,
    DK_REPORT_KIND_LAYERS, /* active tokens per layer */
    DK_REPORT_KIND_DELTA,  /* Δ statistics per layer */
} dk_report_kind;

typedef enum {
    DK_REPORT_X_WALL = 0, /* measured prefill speedup */
    DK_REPORT_X_FLOPS,    /* FLOP speedup */
} dk_report_xaxis;

typedef struct {
    int64_t run_id;      /* 0 = the latest run in the store */
    int n_boot;          /* bootstrap resamples (0 = no CIs) */
    uint64_t seed;       /* bootstrap seed */
    double level;        /* CI level in (0,1), e.g. 0.95 */
    int draw;            /* 0 = write data and scripts only, never run gnuplot */
    const char *gnuplot; /* NULL = $DK_GNUPLOT, else "gnuplot" on $PATH */
    const char *paper;   /* reported numbers to print beside the measured ones (CSV, layout of
                            datasets/paper/README.md); NULL = DK_REPORT_PAPER_DEFAULT, "" = none.
                            A file that does not exist is skipped silently; a malformed one is
                            DK_ERR_FORMAT "FILE:LINE: problem" before anything is written. */
} dk_report_opts;

#define DK_REPORT_PAPER_DEFAULT "datasets/paper/dash_longbench_e.csv"

void dk_report_opts_default(dk_report_opts *o); /* latest run, 2000 resamples, seed 1, 0.95, draw */

typedef struct {
    int64_t run_id;    /* the run reported */
    int n_files;       /* files written (data, scripts, tables, report.md, images) */
    int n_figures;     /* figure scripts written */
    int n_drawn;       /* figures drawn by gnuplot */
    int n_failed;      /* figures gnuplot failed on */
    int gnuplot_found; /* 1 when a gnuplot executable was found */
    char gnuplot[512]; /* its path, or why none was found */
    char terminal[16]; /* "pngcairo" or "png" */
    char failure[768]; /* first gnuplot failure: "NAME.gp: message" */
    char notes[2048];  /* figures that could not be made from this store, one per line */
} dk_report_result;

/* Writes the whole report for one run into out_dir (created if missing).
 * DK_ERR_ARG: no such run / the store has no runs. DK_ERR_IO: a file could not be written.
 * gnuplot missing or failing is NOT an error: see result. */
/* The figures (analysis_{delta,reldelta,redundancy,recall}_MODEL.{dat,gp,png,svg}) and
 * analysis.md of the stored analysis id (analyze.h) into out_dir; report.md has the same section
 * for the latest analysis of each of the run's models. DK_ERR_ARG: no such analysis. */
dk_status dk_report_analysis(dk_store *s, int64_t id, const char *out_dir, const dk_report_opts *o,
                             dk_report_result *r, dk_err *e);

dk_status dk_report_write(dk_store *s, const char *out_dir, const dk_report_opts *o, dk_report_result *r,
                          dk_err *e);

typedef struct {
    dk_report_kind kind;
    dk_report_xaxis x;  /* frontier */
    const char *model;  /* label, path or sha256 prefix; NULL = the only model (else error) */
    const char *task;   /* frontier/heatmap: required unless the run has one task; layers: filter */
    const char *method; /* heatmap: setting label or method name (unique); layers: method */
} dk_plot_spec;

/* One figure: out_file ends in .png or .svg; its data (.dat) and script (.gp) are written
 * beside it with the same stem. DK_ERR_ARG names the option at fault (unknown task, ambiguous
 * model, nothing to plot). */
dk_status dk_report_plot(dk_store *s, const char *out_file, const dk_plot_spec *p, const dk_report_opts *o,
                         dk_report_result *r, dk_err *e);

const char *dk_report_kind_name(dk_report_kind k);
/* Writes s as one RFC 4180 CSV field: quoted (quotes doubled) when it holds , " CR or LF. */
void dk_report_csv_field(FILE *f, const char *s);
int dk_report_kind_parse(const char *s, dk_report_kind *k); /* 0 ok, -1 unknown */

#endif
