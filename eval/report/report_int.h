/* report_int.h — what the files of the report room (eval/report/report*.c) share: the loaded run,
 * the output context and each file's entry points. Only report*.c include it; the public face is
 * report.h. Files and what each owns (and may include besides this header):
 *   report_data.c     one run loaded through the store's read API (store.h; no SQL)
 *   report_stats.c    statistics: bootstrap CIs over groups of cells, paired comparisons (bootstrap.h)
 *   report_gnuplot.c  gnuplot found at run time, run by fork/exec, figures drawn atomically
 *   report_figures.c  each figure's data (.dat/.csv) and script (.gp): frontier, heatmap, layers,
 *                     Δ, fidelity, analysis (pareto.h, bootstrap.h)
 *   report_tables.c   main, ablation and paper-vs-measured tables: Markdown, LaTeX, CSV
 *   report_out.c      text helpers (slugs, number formats, escapes), atomic files, memory streams
 *   report.c          the public entry points: report.md, `dashkit plot`'s one figure, an analysis
 *                     (findings.h) */
#ifndef DK_REPORT_INT_H
#define DK_REPORT_INT_H

#include "bootstrap.h"
#include "findings.h"
#include "report.h"
#include "store.h"

#include <stdint.h>
#include <stdio.h>

/* ---- loaded data: one run's cells with their samples ---- */

typedef struct {
    char *sha, *path, *label, *slug, *arch;
    int64_t n_layer, n_params;
} rep_model;

typedef struct {
    char *name, *slug;
} rep_task;

typedef struct {
    char *method, *params; /* params: canonical JSON object */
    char *label, *slug;
    double rho, tau, ls, keep; /* NAN when the method has no such parameter */
} rep_setting;

typedef struct {
    int64_t id;
    int mi, ti, si;           /* model, task, setting index */
    char *options, *task_key; /* task options JSON; dense_results key */
    double length, depth;     /* task options; NAN when absent */
    char state[16];
    int64_t n_expected;                      /* cells.n_samples */
    size_t n;                                /* sample rows stored */
    double *score, *wd, *wm, *fd, *fm, *ctx; /* (n); NAN = NULL */
    double *kl, *top1, *nll;    /* (n) answer level: mean KL, top-1 rate, NLL method - dense; NAN = NULL */
    int64_t *sid;               /* (n) sample ids (pairing across settings) */
    int64_t *cl;                /* (n) context cluster: samples.context_key hashed, or unique per row */
    size_t n_shared;            /* samples whose context another sample of the cell shares */
    int n_layer;                /* max layers over the samples */
    double *active;             /* (n, n_layer) context tokens processed; NAN = absent */
    double *dmin, *dmed, *dmax; /* (n, n_layer) Δ statistics from sample_layers; NAN = absent */
} rep_cell;

typedef struct {
    dk_store *store;
    int64_t run_id;
    dk_store_run *runs; /* the store's runs, read once */
    size_t n_runs;
    const dk_store_run *run; /* the one reported (in runs): its name and provenance */
    rep_model *models;
    size_t n_models;
    rep_task *tasks;
    size_t n_tasks;
    rep_setting *settings;
    size_t n_settings;
    rep_cell *cells;
    size_t n_cells_loaded;
    const dk_report_opts *opts;
} rep_data;

/* ---- output context: files written atomically, figures queued for gnuplot ---- */

typedef struct {
    const char *dir;
    int png, svg; /* formats each figure is drawn in */
    char **figs;  /* (n_figs) gp stems queued for drawing */
    size_t n_figs;
    dk_report_result *r;
} rep_out;

/* A memory stream: fill with fprintf, then rep_mem_commit writes it atomically. */
typedef struct {
    FILE *f;
    char *buf;
    size_t len;
} rep_mem;

/* ---- statistics ---- */

typedef enum { Q_SCORE = 0, Q_WALL, Q_FLOPS, Q_KL, Q_TOP1, Q_NLL } rep_qty;

typedef struct {
    dk_boot_stratum *st;
    double **bufs; /* (2 * n) owned num/den arrays */
    int64_t **cls; /* (n) owned cluster ids */
    size_t n;
} rep_strata;

typedef struct {
    dk_find_cmp *c;
    char **labels; /* owned strings behind c[i].b for matched rows */
    size_t n;
} rep_cmps;

/* ---- reported numbers (paper) ---- */

typedef struct {
    char **cols;
    size_t n_cols;
    char **cells;
    size_t n_rows; /* (n_rows, n_cols) */
    int c_method, c_dk, c_avg, c_model, c_fa, c_eager, c_theo, c_theo_t;
    int *is_task; /* (n_cols) */
    char *path;
} rep_paper;

/* ---- output (report_out.c): small text helpers, files written atomically, memory streams ---- */

char *rep_strdup(const char *s);
void rep_note(dk_report_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *rep_slug(const char *s);
void rep_fmt(char *b, size_t n, double v);
void rep_fmt_ci(char *b, size_t n, dk_ci c, int prec, int latex);
void rep_latex_escape(FILE *f, const char *s);
void rep_md_escape(FILE *f, const char *s);
void rep_gp_str(FILE *f, const char *s);
dk_status rep_mkdirs(const char *dir, dk_err *e);
dk_status rep_mem_open(rep_mem *m, dk_err *e);
dk_status rep_mem_commit(rep_mem *m, rep_out *o, const char *name, dk_err *e);
void rep_mem_drop(rep_mem *m);
void rep_out_free(rep_out *o);

/* ---- data (report_data.c): one run loaded through the store's read API ---- */

void rep_data_free(rep_data *d);
dk_status rep_load(dk_store *s, const dk_report_opts *o, rep_data *d, dk_err *e);

/* ---- statistics (report_stats.c): bootstrap CIs over groups of cells, paired comparisons ---- */

void rep_strata_free(rep_strata *S);
int rep_strata_add(rep_strata *S, const rep_cell *c, rep_qty qty, int merge);
dk_status rep_stat(const rep_data *d, int mi, int ti, int si, rep_qty qty, int by_task, dk_ci *out,
                   size_t *n_out, dk_err *e);
int rep_has(const rep_data *d, int mi, int ti, int si);
int rep_is_dense(const rep_setting *s);
dk_status rep_dense_reference(const rep_data *d, int mi, int ti, dk_ci *out, size_t *n_out, dk_err *e);
double rep_flops_speedup(const rep_data *d, int mi, int si);
void rep_cmps_free(rep_cmps *x);
dk_status rep_comparisons(const rep_data *d, int mi, rep_cmps *out, dk_err *e);

/* ---- gnuplot (report_gnuplot.c): locate, probe, draw (fork/exec), script head and tail ---- */

void rep_draw(rep_out *o);
dk_status rep_queue_fig(rep_out *o, const char *stem, dk_err *e);
dk_status rep_gp_commit(rep_out *o, rep_mem *gp, const char *stem, dk_err *e);
void rep_gp_head(FILE *f, const rep_out *o, const char *stem, const char *what, const char *dat,
                 const char *title);
void rep_gp_tail(FILE *f, const rep_out *o);
void rep_prepare_draw(const dk_report_opts *o, dk_report_result *r);

/* ---- figures (report_figures.c): data files and gnuplot scripts of each figure ---- */

dk_status rep_frontier_write(const rep_data *d, rep_out *o, int mi, int ti, const char *dat_stem,
                             const char *gp_stems[2], int write_csv, dk_err *e);
int rep_task_has_depth(const rep_data *d, int mi, int ti);
dk_status rep_heatmap_write(const rep_data *d, rep_out *o, int mi, int ti, int si, const char *stem,
                            dk_err *e);
dk_status rep_layers_write(const rep_data *d, rep_out *o, int mi, int ti, const char *method,
                           const char *stem, int *written, dk_err *e);
const char *rep_delta_source(const rep_data *d, int mi);
dk_status rep_delta_write(const rep_data *d, rep_out *o, int mi, const char *stem, const char **source,
                          dk_err *e);
dk_status rep_fidelity_write(const rep_data *d, rep_out *o, int mi, const char *stem, FILE *md, double *rho,
                             size_t *n_all, dk_err *e);
dk_status rep_analysis_write(rep_out *o, const dk_analysis *a, const char *label, const char *slug, FILE *md,
                             dk_err *e);

/* ---- tables (report_tables.c): main, ablation and paper-vs-measured in Markdown/LaTeX/CSV ---- */

dk_status rep_table_main(const rep_data *d, rep_out *o, FILE *md_out, dk_err *e);
void rep_paper_free(rep_paper *p);
dk_status rep_paper_load(const char *path, rep_paper *p, dk_err *e);
dk_status rep_table_paper(const rep_data *d, const rep_paper *pp, rep_out *o, FILE *md_out, int *written,
                          dk_err *e);
dk_status rep_table_ablation(const rep_data *d, rep_out *o, FILE *md_out, dk_err *e);

#endif
