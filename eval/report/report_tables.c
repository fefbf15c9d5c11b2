/* report_tables.c — the tables: main (settings x tasks), ablation (rho/tau/ls/keep) and the paper's
 * reported numbers beside the measured ones (its CSV read here), each as Markdown, LaTeX and CSV
 * files plus the Markdown for report.md. May include: report_int.h. */
#include "report_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- tables ---- */

/* Settings of model mi in table order: dense first, then config order. */
static size_t rep_table_rows(const rep_data *d, int mi, int *rows) {
    size_t n = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t s = 0; s < d->n_settings; s++) {
            if ((pass == 0) != rep_is_dense(&d->settings[s])) continue;
            if (rep_has(d, mi, -1, (int)s)) rows[n++] = (int)s;
        }
    return n;
}

static size_t rep_model_tasks(const rep_data *d, int mi, int *tasks) {
    size_t n = 0;
    for (size_t t = 0; t < d->n_tasks; t++)
        for (size_t i = 0; i < d->n_cells_loaded; i++)
            if (d->cells[i].mi == mi && d->cells[i].ti == (int)t) {
                tasks[n++] = (int)t;
                break;
            }
    return n;
}

static void rep_csv_row(FILE *f, const rep_data *d, int mi, int si, const char *column, size_t n, dk_ci c) {
    dk_report_csv_field(f, d->models[mi].label);
    fputc(',', f);
    dk_report_csv_field(f, d->settings[si].label);
    fputc(',', f);
    dk_report_csv_field(f, d->settings[si].method);
    fputc(',', f);
    dk_report_csv_field(f, d->settings[si].params);
    fputc(',', f);
    dk_report_csv_field(f, column);
    fprintf(f, ",%zu,%.17g,%.17g,%.17g\n", n, c.est, c.lo, c.hi);
}

/* The three streams of a table (Markdown, LaTeX, CSV) and its index buffers: *rows for d's settings,
 * *tasks for its tasks (one spare each); rep_table_drop frees them, also after a failure here. */
static dk_status rep_table_open(const rep_data *d, rep_mem *md, rep_mem *tex, rep_mem *csv, int **rows,
                                int **tasks, dk_err *e) {
    *rows = calloc(d->n_settings + 1, sizeof **rows);
    *tasks = calloc(d->n_tasks + 1, sizeof **tasks);
    if (!*rows || !*tasks) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    dk_status st = rep_mem_open(md, e);
    if (st == DK_OK) st = rep_mem_open(tex, e);
    if (st == DK_OK) st = rep_mem_open(csv, e);
    return st;
}

/* STEM.md, STEM.tex, STEM.csv written; the Markdown also into md_out (report.md) when given. */
static dk_status rep_table_commit(rep_mem *md, rep_mem *tex, rep_mem *csv, rep_out *o, const char *stem,
                                  FILE *md_out, dk_err *e) {
    char name[256];
    dk_status st;
    fflush(md->f);
    if (md_out) fwrite(md->buf, 1, md->len, md_out);
    snprintf(name, sizeof name, "%s.md", stem);
    if ((st = rep_mem_commit(md, o, name, e)) != DK_OK) return st;
    snprintf(name, sizeof name, "%s.tex", stem);
    if ((st = rep_mem_commit(tex, o, name, e)) != DK_OK) return st;
    snprintf(name, sizeof name, "%s.csv", stem);
    return rep_mem_commit(csv, o, name, e);
}

static void rep_table_drop(rep_mem *md, rep_mem *tex, rep_mem *csv, int *rows, int *tasks) {
    rep_mem_drop(md);
    rep_mem_drop(tex);
    rep_mem_drop(csv);
    free(rows);
    free(tasks);
}

/* table_main: settings x tasks. md and tex are also embedded in report.md (md_out). */
/* One cell of the main table, c to prec digits, into the Markdown and the LaTeX table; a speedup
 * gets its times sign. */
static void rep_main_cell(FILE *md, FILE *tex, dk_ci c, int prec, bool speedup) {
    char b[256];
    rep_fmt_ci(b, sizeof b, c, prec, 0);
    fprintf(md, " %s%s |", b, speedup ? "×" : "");
    rep_fmt_ci(b, sizeof b, c, prec, 1);
    fprintf(tex, " & %s%s", b, speedup ? "$\\times$" : "");
}

dk_status rep_table_main(const rep_data *d, rep_out *o, FILE *md_out, dk_err *e) {
    rep_mem md = {0}, tex = {0}, csv = {0};
    dk_status st;
    int *rows, *tasks;
    if ((st = rep_table_open(d, &md, &tex, &csv, &rows, &tasks, e)) != DK_OK) goto done;
    fprintf(csv.f, "model,setting,method,params,column,n,value,lo,hi\n");
    fprintf(
        tex.f,
        "%% dashkit report, run %lld: mean score per task (%.0f%% percentile bootstrap CI), Avg = mean of the"
        " task means,\n%% FLOPs and wall = prefill speedups over dense (sum dense / sum method). Needs "
        "\\usepackage{booktabs}.\n",
        (long long)d->run_id, 100 * d->opts->level);
    for (size_t mi = 0; mi < d->n_models; mi++) {
        size_t nr = rep_table_rows(d, (int)mi, rows), nt = rep_model_tasks(d, (int)mi, tasks);
        fprintf(md.f,
                "%s**%s** — score per task (mean [%.0f%% CI]), Avg = mean of task means; speedups = dense / "
                "method\n\n",
                mi ? "\n" : "", d->models[mi].label, 100 * d->opts->level);
        fprintf(md.f, "| Method |");
        for (size_t t = 0; t < nt; t++) {
            fputc(' ', md.f);
            rep_md_escape(md.f, d->tasks[tasks[t]].name);
            fprintf(md.f, " |");
        }
        fprintf(md.f, " Avg | FLOPs speedup | Wall speedup |\n|---|");
        for (size_t t = 0; t < nt + 3; t++) fprintf(md.f, "---:|");
        fputc('\n', md.f);
        fprintf(tex.f, "\\begin{table}[t]\n\\centering\n\\caption{");
        rep_latex_escape(tex.f, d->models[mi].label);
        fprintf(tex.f, ": score per task (mean, %.0f\\%% CI), speedups over dense.}\n\\begin{tabular}{l",
                100 * d->opts->level);
        for (size_t t = 0; t < nt + 3; t++) fputc('r', tex.f);
        fprintf(tex.f, "}\n\\toprule\nMethod");
        for (size_t t = 0; t < nt; t++) {
            fprintf(tex.f, " & ");
            rep_latex_escape(tex.f, d->tasks[tasks[t]].name);
        }
        fprintf(tex.f, " & Avg & FLOPs & Wall \\\\\n\\midrule\n");
        for (size_t r = 0; r < nr; r++) {
            int si = rows[r];
            fprintf(md.f, "| ");
            rep_md_escape(md.f, d->settings[si].label);
            fprintf(md.f, " |");
            rep_latex_escape(tex.f, d->settings[si].label);
            int complete = 1;
            for (size_t t = 0; t < nt; t++) {
                dk_ci c = {NAN, NAN, NAN};
                size_t n = 0;
                if (rep_has(d, (int)mi, tasks[t], si)) {
                    if ((st = rep_stat(d, (int)mi, tasks[t], si, Q_SCORE, 0, &c, &n, e)) != DK_OK) goto done;
                    rep_csv_row(csv.f, d, (int)mi, si, d->tasks[tasks[t]].name, n, c);
                }
                if (isnan(c.est)) complete = 0;
                rep_main_cell(md.f, tex.f, c, 1, false);
            }
            dk_ci avg = {NAN, NAN, NAN}, fl, wl;
            size_t n_avg = 0, n_fl, n_wl;
            if (complete) {
                if ((st = rep_stat(d, (int)mi, -1, si, Q_SCORE, 1, &avg, &n_avg, e)) != DK_OK) goto done;
                rep_csv_row(csv.f, d, (int)mi, si, "avg", n_avg, avg);
            }
            if ((st = rep_stat(d, (int)mi, -1, si, Q_FLOPS, 0, &fl, &n_fl, e)) != DK_OK ||
                (st = rep_stat(d, (int)mi, -1, si, Q_WALL, 0, &wl, &n_wl, e)) != DK_OK)
                goto done;
            rep_csv_row(csv.f, d, (int)mi, si, "flops_speedup", n_fl, fl);
            rep_csv_row(csv.f, d, (int)mi, si, "wall_speedup", n_wl, wl);
            dk_ci fl0 = {fl.est, NAN, NAN};
            rep_main_cell(md.f, tex.f, avg, 1, false);
            rep_main_cell(md.f, tex.f, fl0, 2, true);
            rep_main_cell(md.f, tex.f, wl, 2, true);
            fprintf(md.f, "\n");
            fprintf(tex.f, " \\\\\n");
        }
        fprintf(tex.f, "\\bottomrule\n\\end{tabular}\n\\end{table}\n");
    }
    st = rep_table_commit(&md, &tex, &csv, o, "table_main", md_out, e);
done:
    rep_table_drop(&md, &tex, &csv, rows, tasks);
    return st;
}

/* ---- reported numbers (paper) beside the measured ones ---- */

/* A CSV of reported numbers: header + rows of strings (RFC 4180 quoting). Task columns are
 * every column that is not a known metadata column. */

void rep_paper_free(rep_paper *p) {
    for (size_t i = 0; i < p->n_cols; i++) free(p->cols[i]);
    for (size_t i = 0; i < p->n_rows * p->n_cols; i++) free(p->cells[i]);
    DK_FREE_ALL(p->cols, p->cells, p->is_task, p->path);
    memset(p, 0, sizeof *p);
}

/* Splits one CSV record starting at *pp (advanced past it); fields malloc'd into *out. 0 = ok,
 * -1 = unterminated quote, -2 = out of memory. */
static int rep_csv_record(const char **pp, char ***out, size_t *n) {
    const char *p = *pp;
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    for (;;) {
        dk_strbuf f = {0};
        if (!dk_strbuf_add(&f, "", 0)) return -2;
        if (*p == '"') {
            p++;
            for (;;) {
                if (!*p) {
                    int r = f.oom ? -2 : -1;
                    dk_strbuf_free(&f);
                    return r;
                }
                if (*p == '"' && p[1] == '"') {
                    p += 2;
                    dk_strbuf_add(&f, "\"", 1);
                } else if (*p == '"') {
                    p++;
                    break;
                } else dk_strbuf_add(&f, p++, 1);
            }
        }
        while (*p && *p != ',' && *p != '\n' && *p != '\r') dk_strbuf_add(&f, p++, 1);
        if (f.oom) {
            dk_strbuf_free(&f);
            return -2;
        }
        if (*n == cap) {
            char **v = realloc(*out, (cap = cap ? 2 * cap : 16) * sizeof *v);
            if (!v) {
                dk_strbuf_free(&f);
                return -2;
            }
            *out = v;
        }
        (*out)[(*n)++] = f.s;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '\r') p++;
        if (*p == '\n') p++;
        break;
    }
    *pp = p;
    return 0;
}

static int rep_paper_col(const rep_paper *p, const char *name) {
    for (size_t i = 0; i < p->n_cols; i++)
        if (!strcmp(p->cols[i], name)) return (int)i;
    return -1;
}

static double rep_paper_num(const rep_paper *p, size_t row, int col) {
    if (col < 0) return NAN;
    const char *v = p->cells[row * p->n_cols + (size_t)col];
    return *v ? strtod(v, NULL) : NAN;
}

static const char *rep_paper_str(const rep_paper *p, size_t row, int col) {
    return col < 0 ? "" : p->cells[row * p->n_cols + (size_t)col];
}

/* Loads path into p; a file that does not exist leaves p empty (n_cols 0) and returns DK_OK. */
/* The header's column indexes (method and dashkit_method required) and which columns are tasks. */
static dk_status rep_paper_header(rep_paper *p, const char *path, dk_err *e) {
    size_t n = p->n_cols;
    p->c_method = rep_paper_col(p, "method");
    p->c_dk = rep_paper_col(p, "dashkit_method");
    if (p->c_method < 0 || p->c_dk < 0)
        return dk_fail(e, DK_ERR_FORMAT, "%s:1: the header needs columns \"method\" and \"dashkit_method\"",
                       path);
    p->c_avg = rep_paper_col(p, "avg");
    p->c_model = rep_paper_col(p, "model");
    p->c_fa = rep_paper_col(p, "speedup_flashattn");
    p->c_eager = rep_paper_col(p, "speedup_eager");
    p->c_theo = rep_paper_col(p, "speedup_theoretical");
    p->c_theo_t = rep_paper_col(p, "speedup_theoretical_T");
    if (!(p->is_task = calloc(n, sizeof *p->is_task))) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    static const char *const meta[] = {"method", "dashkit_method", "model", "benchmark",
                                       "avg",    "source",         "notes"};
    for (size_t c = 0; c < n; c++) {
        int m = !strncmp(p->cols[c], "speedup_", 8) || !*p->cols[c];
        for (size_t j = 0; j < sizeof meta / sizeof meta[0]; j++) m |= !strcmp(p->cols[c], meta[j]);
        p->is_task[c] = !m;
    }
    return DK_OK;
}

/* Row r (file line `line`): its task, avg and speedup cells are numbers or empty; method is set. */
static dk_status rep_paper_check_row(const rep_paper *p, size_t r, const char *path, long line, dk_err *e) {
    size_t n = p->n_cols;
    for (size_t c = 0; c < n; c++) {
        const char *v = p->cells[r * n + c];
        int numeric = p->is_task[c] || (int)c == p->c_avg || !strncmp(p->cols[c], "speedup_", 8);
        if (!numeric || !*v) continue;
        char *end;
        double x = strtod(v, &end);
        if (*end || !isfinite(x))
            return dk_fail(e, DK_ERR_FORMAT, "%s:%ld: column %s: '%s' is not a number", path, line,
                           p->cols[c], v);
    }
    if (!*rep_paper_str(p, r, p->c_method))
        return dk_fail(e, DK_ERR_FORMAT, "%s:%ld: column method is empty", path, line);
    return DK_OK;
}

dk_status rep_paper_load(const char *path, rep_paper *p, dk_err *e) {
    memset(p, 0, sizeof *p);
    if (!path || !*path) return DK_OK;
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? DK_OK : dk_fail(e, DK_ERR_IO, "%s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0, k;
    char chunk[4096];
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + k + 1 > cap) {
            char *b = realloc(buf, cap = (len + k + 1) * 2);
            if (!b) {
                free(buf);
                fclose(f);
                return dk_fail(e, DK_ERR_NOMEM, "out of memory");
            }
            buf = b;
        }
        memcpy(buf + len, chunk, k);
        len += k;
    }
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        free(buf);
        return dk_fail(e, DK_ERR_IO, "%s: read error", path);
    }
    if (!buf) return dk_fail(e, DK_ERR_FORMAT, "%s: empty file (expected a header line)", path);
    buf[len] = 0;
    dk_status st = DK_OK;
    const char *q = buf;
    long line = 1;
    char **rec;
    size_t n;
    if (!(p->path = rep_strdup(path))) {
        st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
        goto done;
    }
    int rc = rep_csv_record(&q, &rec, &n);
    if (rc) {
        st = rc == -1 ? dk_fail(e, DK_ERR_FORMAT, "%s:1: unterminated quote", path)
                      : dk_fail(e, DK_ERR_NOMEM, "out of memory");
        goto done;
    }
    p->cols = rec;
    p->n_cols = n;
    if ((st = rep_paper_header(p, path, e)) != DK_OK) goto done;
    while (*q) {
        line++;
        if (*q == '\n' || *q == '\r') { /* blank line */
            if (*q == '\r') q++;
            if (*q == '\n') q++;
            continue;
        }
        if ((rc = rep_csv_record(&q, &rec, &n))) {
            st = rc == -1 ? dk_fail(e, DK_ERR_FORMAT, "%s:%ld: unterminated quote", path, line)
                          : dk_fail(e, DK_ERR_NOMEM, "out of memory");
            goto done;
        }
        if (n != p->n_cols) {
            for (size_t i = 0; i < n; i++) free(rec[i]);
            free(rec);
            st = dk_fail(e, DK_ERR_FORMAT, "%s:%ld: %zu fields, the header has %zu", path, line, n,
                         p->n_cols);
            goto done;
        }
        char **cells = realloc(p->cells, (p->n_rows + 1) * p->n_cols * sizeof *cells);
        if (!cells) {
            for (size_t i = 0; i < n; i++) free(rec[i]);
            free(rec);
            st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
            goto done;
        }
        p->cells = cells;
        memcpy(p->cells + p->n_rows * p->n_cols, rec, n * sizeof *rec);
        free(rec);
        p->n_rows++;
        if ((st = rep_paper_check_row(p, p->n_rows - 1, path, line, e)) != DK_OK) goto done;
    }
done:
    free(buf);
    if (st != DK_OK) rep_paper_free(p);
    return st;
}

/* paper_vs_measured: per model whose run has tasks named in the paper's columns, each paper row
 * followed by the run's settings of its dashkit_method. Mean = mean over the shown task columns
 * (of the paper's numbers / of the measured task means); the paper's own avg is shown as is. */
/* What the paper table of one model writes into: its task columns (the paper's column pcol[t],
 * the run's task rti[t]) and the three streams. */
typedef struct {
    const rep_data *d;
    const rep_paper *pp;
    int mi;
    size_t nc;
    const int *pcol, *rti;
    FILE *md, *tex, *csv;
} rep_paper_ctx;

/* The CSV row's leading fields: model, paper method, row label. */
static void rep_paper_csv_key(const rep_paper_ctx *x, const char *pm, const char *row) {
    dk_report_csv_field(x->csv, x->d->models[x->mi].label);
    fputc(',', x->csv);
    dk_report_csv_field(x->csv, pm);
    fputc(',', x->csv);
    dk_report_csv_field(x->csv, row);
}

/* A value with its interval into the Markdown and LaTeX rows. */
static void rep_paper_cell(const rep_paper_ctx *x, dk_ci c) {
    char b[256];
    rep_fmt_ci(b, sizeof b, c, 2, 0);
    fprintf(x->md, " %s |", b);
    rep_fmt_ci(b, sizeof b, c, 2, 1);
    fprintf(x->tex, " & %s", b);
}

/* The table's caption and header (Markdown and LaTeX). */
static void rep_paper_head(const rep_paper_ctx *x, int first) {
    const rep_paper *pp = x->pp;
    const char *pmodel = pp->c_model >= 0 ? rep_paper_str(pp, 0, pp->c_model) : "";
    fprintf(
        x->md,
        "%s**%s** vs the paper%s%s%s — reported numbers from `%s`; measured: mean [%.0f%% CI]. Mean = mean of"
        " the columns shown; Paper avg = the paper's own average (over its tasks).\n\n",
        first ? "" : "\n", x->d->models[x->mi].label, *pmodel ? " (" : "", pmodel, *pmodel ? ")" : "",
        pp->path, 100 * x->d->opts->level);
    fprintf(x->md, "| Method | Source |");
    for (size_t t = 0; t < x->nc; t++) {
        fputc(' ', x->md);
        rep_md_escape(x->md, pp->cols[x->pcol[t]]);
        fprintf(x->md, " |");
    }
    fprintf(x->md, " Mean | Paper avg | Speedup |\n|---|---|");
    for (size_t t = 0; t < x->nc + 2; t++) fprintf(x->md, "---:|");
    fprintf(x->md, "---|\n");
    fprintf(x->tex, "\\begin{table}[t]\n\\centering\n\\caption{");
    rep_latex_escape(x->tex, x->d->models[x->mi].label);
    fprintf(x->tex, ": reported vs measured.}\n\\begin{tabular}{ll");
    for (size_t t = 0; t < x->nc + 2; t++) fputc('r', x->tex);
    fprintf(x->tex, "l}\n\\toprule\nMethod & Source");
    for (size_t t = 0; t < x->nc; t++) {
        fprintf(x->tex, " & ");
        rep_latex_escape(x->tex, pp->cols[x->pcol[t]]);
    }
    fprintf(x->tex, " & Mean & Paper avg & Speedup \\\\\n\\midrule\n");
}

/* The paper's row pr: its task values, their mean, its own average, its reported speedups. */
static void rep_paper_row(const rep_paper_ctx *x, size_t pr) {
    const rep_paper *pp = x->pp;
    const char *pm = rep_paper_str(pp, pr, pp->c_method);
    double sum = 0, pavg = rep_paper_num(pp, pr, pp->c_avg);
    int nn = 0;
    fprintf(x->md, "| ");
    rep_md_escape(x->md, pm);
    fprintf(x->md, " | paper |");
    rep_latex_escape(x->tex, pm);
    fprintf(x->tex, " & paper");
    for (size_t t = 0; t < x->nc; t++) {
        double v = rep_paper_num(pp, pr, x->pcol[t]);
        if (!isnan(v)) {
            sum += v;
            nn++;
        }
        rep_paper_cell(x, (dk_ci){v, NAN, NAN});
        rep_paper_csv_key(x, pm, pm);
        fprintf(x->csv, ",paper,");
        dk_report_csv_field(x->csv, pp->cols[x->pcol[t]]);
        fprintf(x->csv, ",,%.17g,,\n", v);
    }
    dk_ci mean = {nn == (int)x->nc ? sum / nn : NAN, NAN, NAN}, pa = {pavg, NAN, NAN};
    char sp[160] = "", b[256];
    double fa = rep_paper_num(pp, pr, pp->c_fa), ea = rep_paper_num(pp, pr, pp->c_eager),
           th = rep_paper_num(pp, pr, pp->c_theo), tt = rep_paper_num(pp, pr, pp->c_theo_t);
    size_t spn = 0;
    if (!isnan(fa)) spn += (size_t)snprintf(sp + spn, sizeof sp - spn, "%.2fx FlashAttention", fa);
    if (!isnan(ea) && spn < sizeof sp)
        spn += (size_t)snprintf(sp + spn, sizeof sp - spn, "%s%.2fx eager", spn ? ", " : "", ea);
    if (!isnan(th) && spn < sizeof sp)
        spn += (size_t)snprintf(sp + spn, sizeof sp - spn, "%s%.2fx theoretical%s", spn ? ", " : "", th,
                                isnan(tt) ? "" : " at T=");
    if (!isnan(th) && !isnan(tt) && spn < sizeof sp) snprintf(sp + spn, sizeof sp - spn, "%.0f", tt);
    rep_fmt_ci(b, sizeof b, mean, 2, 0);
    fprintf(x->md, " %s |", b);
    rep_fmt_ci(b, sizeof b, pa, 2, 0);
    fprintf(x->md, " %s | %s |\n", b, *sp ? sp : "–");
    rep_fmt_ci(b, sizeof b, mean, 2, 1);
    fprintf(x->tex, " & %s", b);
    rep_fmt_ci(b, sizeof b, pa, 2, 1);
    fprintf(x->tex, " & %s & ", b);
    rep_latex_escape(x->tex, *sp ? sp : "--");
    fprintf(x->tex, " \\\\\n");
    const char *mcols[2] = {"mean", "paper_avg"};
    double mvals[2] = {mean.est, pavg};
    for (int k = 0; k < 2; k++) {
        rep_paper_csv_key(x, pm, pm);
        fprintf(x->csv, ",paper,%s,,%.17g,,\n", mcols[k], mvals[k]);
    }
}

/* The measured row of setting si under paper method pm: task means, their mean, its speedups. */
static dk_status rep_paper_measured(const rep_paper_ctx *x, const char *pm, int si, dk_err *e) {
    const rep_data *d = x->d;
    const char *label = d->settings[si].label;
    dk_status st;
    char b[256];
    fprintf(x->md, "| ↳ ");
    rep_md_escape(x->md, label);
    fprintf(x->md, " | measured |");
    fprintf(x->tex, "\\quad ");
    rep_latex_escape(x->tex, label);
    fprintf(x->tex, " & measured");
    double ms = 0;
    int mn = 0;
    for (size_t t = 0; t < x->nc; t++) {
        dk_ci c = {NAN, NAN, NAN};
        size_t n = 0;
        if (rep_has(d, x->mi, x->rti[t], si) &&
            (st = rep_stat(d, x->mi, x->rti[t], si, Q_SCORE, 0, &c, &n, e)) != DK_OK)
            return st;
        if (!isnan(c.est)) {
            ms += c.est;
            mn++;
        }
        rep_paper_cell(x, c);
        rep_paper_csv_key(x, pm, label);
        fprintf(x->csv, ",measured,");
        dk_report_csv_field(x->csv, x->pp->cols[x->pcol[t]]);
        fprintf(x->csv, ",%zu,%.17g,%.17g,%.17g\n", n, c.est, c.lo, c.hi);
    }
    dk_ci mm = {mn == (int)x->nc ? ms / mn : NAN, NAN, NAN}, wl, fl;
    size_t n_wl, n_fl;
    if ((st = rep_stat(d, x->mi, -1, si, Q_WALL, 0, &wl, &n_wl, e)) != DK_OK ||
        (st = rep_stat(d, x->mi, -1, si, Q_FLOPS, 0, &fl, &n_fl, e)) != DK_OK)
        return st;
    char msp[128];
    snprintf(msp, sizeof msp, "%.2fx wall, %.2fx FLOPs (CPU)", wl.est, fl.est);
    rep_fmt_ci(b, sizeof b, mm, 2, 0);
    fprintf(x->md, " %s | – | %s |\n", b, msp);
    rep_fmt_ci(b, sizeof b, mm, 2, 1);
    fprintf(x->tex, " & %s & -- & ", b);
    rep_latex_escape(x->tex, msp);
    fprintf(x->tex, " \\\\\n");
    const char *qn[3] = {"mean", "wall_speedup", "flops_speedup"};
    double qv[3] = {mm.est, wl.est, fl.est};
    for (int k = 0; k < 3; k++) {
        rep_paper_csv_key(x, pm, label);
        fprintf(x->csv, ",measured,%s,,%.17g,,\n", qn[k], qv[k]);
    }
    return DK_OK;
}

/* Model mi's table: each paper row, then the measured settings of its dashkit method. */
static dk_status rep_paper_model(const rep_paper_ctx *x, int *rows, dk_err *e) {
    const rep_paper *pp = x->pp;
    size_t nr = rep_table_rows(x->d, x->mi, rows);
    for (size_t pr = 0; pr < pp->n_rows; pr++) {
        const char *pm = rep_paper_str(pp, pr, pp->c_method), *dm = rep_paper_str(pp, pr, pp->c_dk);
        rep_paper_row(x, pr);
        if (!*dm) {
            fprintf(x->md, "| ↳ (no dashkit method) | measured |");
            for (size_t t = 0; t < x->nc + 2; t++) fprintf(x->md, " – |");
            fprintf(x->md, " – |\n");
            continue;
        }
        for (size_t r = 0; r < nr; r++) {
            if (strcmp(x->d->settings[rows[r]].method, dm)) continue;
            dk_status st = rep_paper_measured(x, pm, rows[r], e);
            if (st != DK_OK) return st;
        }
    }
    fprintf(x->tex, "\\bottomrule\n\\end{tabular}\n\\end{table}\n");
    return DK_OK;
}

dk_status rep_table_paper(const rep_data *d, const rep_paper *pp, rep_out *o, FILE *md_out, int *written,
                          dk_err *e) {
    *written = 0;
    if (!pp->n_cols || !pp->n_rows) return DK_OK;
    rep_mem md = {0}, tex = {0}, csv = {0};
    dk_status st;
    int *rows, *tasks;
    int *pcol = calloc(pp->n_cols + 1, sizeof *pcol), *rti = calloc(pp->n_cols + 1, sizeof *rti);
    if ((st = rep_table_open(d, &md, &tex, &csv, &rows, &tasks, e)) != DK_OK) goto done;
    if (!pcol || !rti) {
        st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
        goto done;
    }
    fprintf(csv.f, "model,paper_method,row,source,column,n,value,lo,hi\n");
    fprintf(tex.f,
            "%% dashkit report, run %lld: reported numbers (%s) beside measured task means (%.0f%% bootstrap "
            "CI).\n",
            (long long)d->run_id, pp->path, 100 * d->opts->level);
    for (size_t mi = 0; mi < d->n_models; mi++) {
        size_t nt = rep_model_tasks(d, (int)mi, tasks), nc = 0;
        for (size_t c = 0; c < pp->n_cols; c++) {
            if (!pp->is_task[c]) continue;
            for (size_t t = 0; t < nt; t++)
                if (!strcmp(d->tasks[tasks[t]].name, pp->cols[c])) {
                    pcol[nc] = (int)c;
                    rti[nc] = tasks[t];
                    nc++;
                    break;
                }
        }
        if (!nc) continue;
        rep_paper_ctx x = {d, pp, (int)mi, nc, pcol, rti, md.f, tex.f, csv.f};
        rep_paper_head(&x, !*written);
        *written = 1;
        if ((st = rep_paper_model(&x, rows, e)) != DK_OK) goto done;
    }
    if (!*written) goto done;
    st = rep_table_commit(&md, &tex, &csv, o, "paper_vs_measured", md_out, e);
done:
    rep_table_drop(&md, &tex, &csv, rows, tasks);
    free(pcol);
    free(rti);
    return st;
}

static const rep_data *rep_sort_data;
static int rep_cmp_ablation(const void *a, const void *b) {
    const rep_setting *x = &rep_sort_data->settings[*(const int *)a],
                      *y = &rep_sort_data->settings[*(const int *)b];
    /* method in config order (settings are numbered in that order), then ls, rho, tau, keep */
    int mx = *(const int *)a, my = *(const int *)b;
    for (size_t s = 0; s < rep_sort_data->n_settings; s++)
        if (!strcmp(rep_sort_data->settings[s].method, x->method)) {
            mx = (int)s;
            break;
        }
    for (size_t s = 0; s < rep_sort_data->n_settings; s++)
        if (!strcmp(rep_sort_data->settings[s].method, y->method)) {
            my = (int)s;
            break;
        }
    if (mx != my) return mx - my;
    double kx[4] = {x->ls, x->rho, x->tau, x->keep}, ky[4] = {y->ls, y->rho, y->tau, y->keep};
    for (int i = 0; i < 4; i++) {
        if (isnan(kx[i]) != isnan(ky[i])) return isnan(kx[i]) ? -1 : 1;
        if (!isnan(kx[i]) && kx[i] != ky[i]) return kx[i] < ky[i] ? -1 : 1;
    }
    return *(const int *)a - *(const int *)b;
}

static void rep_param(char *b, size_t n, double v) {
    if (isnan(v)) snprintf(b, n, "–");
    else snprintf(b, n, "%g", v);
}

/* table_ablation: one row per setting with its ratio/threshold parameters. */
dk_status rep_table_ablation(const rep_data *d, rep_out *o, FILE *md_out, dk_err *e) {
    rep_mem md = {0}, tex = {0}, csv = {0};
    dk_status st;
    int *rows, *tasks;
    if ((st = rep_table_open(d, &md, &tex, &csv, &rows, &tasks, e)) != DK_OK) goto done;
    fprintf(csv.f, "model,setting,method,rho,tau,ls,keep,n,score,score_lo,score_hi,flops_speedup,wall_"
                   "speedup,wall_lo,wall_hi,"
                   "kl,top1,nll_delta\n");
    fprintf(
        tex.f,
        "%% dashkit report, run %lld: ablation over ratio (rho), threshold (tau), start layer (ls), keep.\n",
        (long long)d->run_id);
    for (size_t mi = 0; mi < d->n_models; mi++) {
        size_t nr = rep_table_rows(d, (int)mi, rows), nt = rep_model_tasks(d, (int)mi, tasks);
        rep_sort_data = d;
        qsort(rows, nr, sizeof *rows, rep_cmp_ablation);
        fprintf(
            md.f,
            "%s**%s** — score = mean of the %zu task means [%.0f%% CI]; over the teacher-forced answer: KL ="
            " mean KL(dense‖method), nats; top-1 = share of answer tokens whose argmax agrees with dense;"
            " ΔNLL = answer NLL method − dense, nats/token\n\n",
            mi ? "\n" : "", d->models[mi].label, nt, 100 * d->opts->level);
        fprintf(
            md.f,
            "| Method | rho | tau | ls | keep | Score | FLOPs speedup | Wall speedup | KL | Top-1 | ΔNLL |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        fprintf(tex.f, "\\begin{table}[t]\n\\centering\n\\caption{");
        rep_latex_escape(tex.f, d->models[mi].label);
        fprintf(
            tex.f,
            ": ablation (score = mean over tasks, %.0f\\%% CI).}\n\\begin{tabular}{lrrrrrrrrrr}\n\\toprule\n"
            "Method & $\\rho$ & $\\tau$ & $l_s$ & keep & Score & FLOPs & Wall & KL & Top-1 & $\\Delta$NLL "
            "\\\\\n\\midrule\n",
            100 * d->opts->level);
        for (size_t r = 0; r < nr; r++) {
            int si = rows[r];
            const rep_setting *s = &d->settings[si];
            int complete = 1;
            for (size_t t = 0; t < nt; t++)
                if (!rep_has(d, (int)mi, tasks[t], si)) complete = 0;
            dk_ci sc = {NAN, NAN, NAN}, fl, wl, kl, t1, nl;
            size_t n = 0, nn;
            if (complete && (st = rep_stat(d, (int)mi, -1, si, Q_SCORE, 1, &sc, &n, e)) != DK_OK) goto done;
            if ((st = rep_stat(d, (int)mi, -1, si, Q_FLOPS, 0, &fl, &nn, e)) != DK_OK ||
                (st = rep_stat(d, (int)mi, -1, si, Q_WALL, 0, &wl, &nn, e)) != DK_OK ||
                (st = rep_stat(d, (int)mi, -1, si, Q_KL, 0, &kl, &nn, e)) != DK_OK ||
                (st = rep_stat(d, (int)mi, -1, si, Q_TOP1, 0, &t1, &nn, e)) != DK_OK ||
                (st = rep_stat(d, (int)mi, -1, si, Q_NLL, 0, &nl, &nn, e)) != DK_OK)
                goto done;
            char p[4][32], b[6][128];
            rep_param(p[0], 32, s->rho);
            rep_param(p[1], 32, s->tau);
            rep_param(p[2], 32, s->ls);
            rep_param(p[3], 32, s->keep);
            dk_report_csv_field(csv.f, d->models[mi].label);
            fputc(',', csv.f);
            dk_report_csv_field(csv.f, s->label);
            fputc(',', csv.f);
            dk_report_csv_field(csv.f, s->method);
            fprintf(
                csv.f,
                ",%.17g,%.17g,%.17g,%.17g,%zu,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g\n",
                s->rho, s->tau, s->ls, s->keep, n, sc.est, sc.lo, sc.hi, fl.est, wl.est, wl.lo, wl.hi, kl.est,
                t1.est, nl.est);
            dk_ci fl0 = {fl.est, NAN, NAN}, kl0 = {kl.est, NAN, NAN}, t10 = {t1.est * 100, NAN, NAN},
                  nl0 = {nl.est, NAN, NAN};
            for (int latex = 0; latex < 2; latex++) {
                FILE *f = latex ? tex.f : md.f;
                rep_fmt_ci(b[0], 128, sc, 1, latex);
                rep_fmt_ci(b[1], 128, fl0, 2, latex);
                rep_fmt_ci(b[2], 128, wl, 2, latex);
                rep_fmt_ci(b[3], 128, kl0, 4, latex);
                rep_fmt_ci(b[4], 128, t10, 1, latex);
                rep_fmt_ci(b[5], 128, nl0, 4, latex);
                if (!latex) {
                    fprintf(f, "| %s | %s | %s | %s | %s | %s | %s× | %s× | %s | %s%% | %s |\n", s->method,
                            p[0], p[1], p[2], p[3], b[0], b[1], b[2], b[3], b[4], b[5]);
                } else {
                    rep_latex_escape(f, s->method);
                    for (int k = 0; k < 4; k++) fprintf(f, " & %s", strcmp(p[k], "–") ? p[k] : "--");
                    fprintf(f, " & %s & %s$\\times$ & %s$\\times$ & %s & %s\\%% & %s \\\\\n", b[0], b[1],
                            b[2], b[3], b[4], b[5]);
                }
            }
        }
        fprintf(tex.f, "\\bottomrule\n\\end{tabular}\n\\end{table}\n");
    }
    st = rep_table_commit(&md, &tex, &csv, o, "table_ablation", md_out, e);
done:
    rep_table_drop(&md, &tex, &csv, rows, tasks);
    return st;
}
