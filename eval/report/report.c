/* report.c — the report room's public entry points (report.h): report.md for one run (provenance,
 * method, tables, comparisons and findings, analyses, figures, notes), one figure for `dashkit
 * plot`, the figures of one analysis. It composes the other report*.c files (report_int.h lists
 * them). May include: report_int.h, findings.h. */
#include "report_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- report ---- */

void dk_report_opts_default(dk_report_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_boot = 2000;
    o->seed = 1;
    o->level = 0.95;
    o->draw = 1;
}

const char *dk_report_kind_name(dk_report_kind k) {
    switch (k) {
    case DK_REPORT_KIND_FRONTIER: return "frontier";
    case DK_REPORT_KIND_HEATMAP: return "heatmap";
    case DK_REPORT_KIND_LAYERS: return "layers";
    case DK_REPORT_KIND_DELTA: return "delta";
    }
    return "?";
}

int dk_report_kind_parse(const char *s, dk_report_kind *k) {
    for (int i = 0; i <= DK_REPORT_KIND_DELTA; i++)
        if (!strcmp(s, dk_report_kind_name((dk_report_kind)i))) {
            *k = (dk_report_kind)i;
            return 0;
        }
    return -1;
}

static void rep_time(char *b, size_t n, double t) { dk_time_fmt_utc(t, "%Y-%m-%d %H:%M:%S UTC", "–", b, n); }

static void rep_md_kv(FILE *f, const char *k, const char *v) {
    fprintf(f, "| %s | ", k);
    rep_md_escape(f, v && *v ? v : "–");
    fprintf(f, " |\n");
}

static dk_status rep_check_opts(const dk_report_opts *o, dk_err *e) {
    if (!(o->level > 0 && o->level < 1))
        return dk_fail(e, DK_ERR_ARG, "CI level %g is outside (0,1)", o->level);
    if (o->n_boot < 0) return dk_fail(e, DK_ERR_ARG, "bootstrap resamples %d < 0", o->n_boot);
    return DK_OK;
}

/* report.md sections "Paired comparisons" (+ comparisons.csv), "Fidelity vs score" and
 * "Findings" for every model. */
static dk_status rep_section_stats(const rep_data *d, rep_out *o, FILE *f, dk_err *e) {
    rep_mem csv = {0};
    dk_status st = rep_mem_open(&csv, e);
    if (st != DK_OK) return st;
    fprintf(csv.f, "model,a,b,kind,flops_speedup,n,diff,diff_lo,diff_hi,p\n");
    char *find = NULL;
    size_t find_n = 0;
    FILE *ff = open_memstream(&find, &find_n);
    if (!ff) {
        rep_mem_drop(&csv);
        return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    }
    fprintf(f,
            "\n## Paired comparisons\n\nScore differences in points (a − b) over the samples both settings "
            "ran, paired"
            " by sample; %.0f%% percentile bootstrap interval and two-sided bootstrap p-value (%d resamples, "
            "resampling"
            " contexts where samples share one, as above). \"vs dense\": every method against dense. "
            "\"matched\": DASH"
            " against each baseline series (same ls where the baseline has one) whose rho grid brackets "
            "DASH's FLOP"
            " speedup, the baseline's per-sample score interpolated linearly in FLOP speedup between its two "
            "neighbouring"
            " rho settings. Also as [CSV](comparisons.csv).\n",
            100 * d->opts->level, d->opts->n_boot);
    for (size_t mi = 0; mi < d->n_models && st == DK_OK; mi++) {
        rep_cmps cm = {0};
        if ((st = rep_comparisons(d, (int)mi, &cm, e)) != DK_OK) {
            rep_cmps_free(&cm);
            break;
        }
        fprintf(f,
                "\n**%s**\n\n| a | b | kind | FLOPs speedup | n | difference | CI | p "
                "|\n|---|---|---|---:|---:|---:|---|---:|\n",
                d->models[mi].label);
        for (size_t i = 0; i < cm.n; i++) {
            const dk_find_cmp *c = &cm.c[i];
            fprintf(f, "| %s | %s | %s | %.2f× | %zu | %+.2f | [%+.2f, %+.2f] | %.3g |\n", c->a, c->b,
                    c->matched ? "matched" : "vs dense", c->speedup, c->d.n_used, c->d.est, c->d.lo, c->d.hi,
                    c->d.p);
            dk_report_csv_field(csv.f, d->models[mi].label);
            fputc(',', csv.f);
            dk_report_csv_field(csv.f, c->a);
            fputc(',', csv.f);
            dk_report_csv_field(csv.f, c->b);
            fprintf(csv.f, ",%s,%.17g,%zu,%.17g,%.17g,%.17g,%.17g\n", c->matched ? "matched" : "vs_dense",
                    c->speedup, c->d.n_used, c->d.est, c->d.lo, c->d.hi, c->d.p);
        }
        if (!cm.n) fprintf(f, "| – | – | – | – | 0 | – | – | – |\n");
        /* fidelity vs score */
        char stem[1024];
        snprintf(stem, sizeof stem, "fidelity_%s", d->models[mi].slug);
        fprintf(f,
                "\n**Fidelity vs score, %s**: does the cheap screen (answer-level KL) rank samples as the "
                "expensive"
                " metric (the score) does? ([data](%s.dat))\n\n",
                d->models[mi].label, stem);
        double rho = NAN;
        size_t n_kl = 0;
        if ((st = rep_fidelity_write(d, o, (int)mi, stem, f, &rho, &n_kl, e)) != DK_OK) {
            rep_cmps_free(&cm);
            break;
        }
        if (n_kl) fprintf(f, "\n![answer KL vs score](%s.png)\n", stem);
        /* findings from these numbers */
        dk_find_setting *fs = calloc(d->n_settings + 1, sizeof *fs);
        size_t nfs = 0;
        if (!fs) {
            st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
            rep_cmps_free(&cm);
            break;
        }
        for (size_t si = 0; si < d->n_settings && st == DK_OK; si++) {
            if (!rep_has(d, (int)mi, -1, (int)si)) continue;
            dk_ci sc;
            size_t n;
            if ((st = rep_stat(d, (int)mi, -1, (int)si, Q_SCORE, 0, &sc, &n, e)) != DK_OK) break;
            fs[nfs++] = (dk_find_setting){d->settings[si].label, rep_flops_speedup(d, (int)mi, (int)si), sc,
                                          rep_is_dense(&d->settings[si])};
        }
        if (st == DK_OK)
            dk_findings_write(ff, d->models[mi].label, fs, nfs, cm.c, cm.n, rho, n_kl, d->opts->level, 0.05);
        free(fs);
        rep_cmps_free(&cm);
    }
    fclose(ff);
    if (st == DK_OK) {
        fprintf(f, "\n## Findings\n\nGenerated from the numbers above (pooled over each model's tasks; "
                   "\"best of k\": the"
                   " settings in that speedup band); no fixed text.\n\n");
        fwrite(find, 1, find_n, f);
        st = rep_mem_commit(&csv, o, "comparisons.csv", e);
    }
    free(find);
    rep_mem_drop(&csv);
    return st;
}

dk_status dk_report_analysis(dk_store *s, int64_t id, const char *out_dir, const dk_report_opts *opts,
                             dk_report_result *r, dk_err *e) {
    memset(r, 0, sizeof *r);
    dk_analysis a;
    int found = 0;
    dk_status st = dk_store_analysis_get(s, id, NULL, &a, &found, e);
    if (st != DK_OK) return st;
    if (!found) return dk_fail(e, DK_ERR_ARG, "no analysis %lld in the store", (long long)id);
    rep_out o = {out_dir, 1, 1, NULL, 0, r};
    rep_mem md = {0};
    char *base = rep_strdup(a.model_path ? a.model_path : "model"), *label, *slug = NULL;
    if (!base) {
        dk_analysis_free(&a);
        return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    }
    label = strrchr(base, '/') ? strrchr(base, '/') + 1 : base;
    char *dot = strrchr(label, '.');
    if (dot && dot != label) *dot = 0;
    if (!(slug = rep_slug(label))) {
        st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = rep_mkdirs(out_dir, e)) != DK_OK || (st = rep_mem_open(&md, e)) != DK_OK) goto done;
    fprintf(md.f, "# dashkit analyze\n");
    if ((st = rep_analysis_write(&o, &a, label, slug, md.f, e)) != DK_OK) goto done;
    if (opts->draw) {
        rep_prepare_draw(opts, r);
        if (r->gnuplot_found) rep_draw(&o);
    }
    st = rep_mem_commit(&md, &o, "analysis.md", e);
done:
    rep_mem_drop(&md);
    rep_out_free(&o);
    free(base);
    free(slug);
    dk_analysis_free(&a);
    return st;
}

/* Model mi's figures (frontier and heatmaps per task, active tokens per method, Δ per layer):
 * their data and scripts written and queued, their Markdown into figs. */
static dk_status rep_model_figures(const rep_data *d, rep_out *o, int mi, FILE *figs, dk_err *e) {
    dk_report_result *r = o->r;
    const rep_model *m = &d->models[mi];
    char stem[1024], dat[1024], s_wall[1100], s_flops[1100];
    dk_status st;
    fprintf(figs, "\n### %s\n", m->label);
    for (size_t ti = 0; ti < d->n_tasks; ti++) {
        if (!rep_has(d, mi, (int)ti, -1)) continue;
        snprintf(dat, sizeof dat, "frontier_%s_%s", m->slug, d->tasks[ti].slug);
        snprintf(s_wall, sizeof s_wall, "%s_wall", dat);
        snprintf(s_flops, sizeof s_flops, "%s_flops", dat);
        const char *stems[2] = {s_wall, s_flops};
        if ((st = rep_frontier_write(d, o, mi, (int)ti, dat, stems, 1, e)) != DK_OK) return st;
        fprintf(figs,
                "\n**Frontier, %s** (data: [%s.dat](%s.dat), [%s.csv](%s.csv))\n\n"
                "![%s frontier, measured speedup](%s.png) ![%s frontier, FLOP speedup](%s.png)\n",
                d->tasks[ti].name, dat, dat, dat, dat, d->tasks[ti].name, s_wall, d->tasks[ti].name, s_flops);
        if (!rep_task_has_depth(d, mi, (int)ti)) continue;
        for (size_t si = 0; si < d->n_settings; si++) {
            if (!rep_has(d, mi, (int)ti, (int)si)) continue;
            snprintf(stem, sizeof stem, "heatmap_%s_%s_%s", m->slug, d->tasks[ti].slug, d->settings[si].slug);
            if ((st = rep_heatmap_write(d, o, mi, (int)ti, (int)si, stem, e)) != DK_OK) return st;
            fprintf(figs, "\n**NIAH heatmap, %s, %s** ([data](%s.dat))\n\n![heatmap](%s.png)\n",
                    d->tasks[ti].name, d->settings[si].label, stem, stem);
        }
    }
    int any_depth = 0;
    for (size_t ti = 0; ti < d->n_tasks; ti++) any_depth |= rep_task_has_depth(d, mi, (int)ti);
    if (!any_depth)
        rep_note(r,
                 "no NIAH heatmap for %s: no task of this run has a \"depth\" option (give the task a "
                 "\"depths\" grid;"
                 " per-sample random depths are not stored)",
                 m->label);
    /* active tokens per layer: one figure per method */
    for (size_t si = 0; si < d->n_settings; si++) {
        int first = 1;
        for (size_t k = 0; k < si; k++)
            if (!strcmp(d->settings[k].method, d->settings[si].method)) first = 0;
        if (!first || !rep_has(d, mi, -1, (int)si)) continue;
        char *ms = rep_slug(d->settings[si].method);
        if (!ms) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
        snprintf(stem, sizeof stem, "layers_active_%s_%s", m->slug, ms);
        free(ms);
        int w = 0;
        if ((st = rep_layers_write(d, o, mi, -1, d->settings[si].method, stem, &w, e)) != DK_OK) return st;
        if (w)
            fprintf(figs, "\n**Active tokens per layer, %s** ([data](%s.dat))\n\n![layers](%s.png)\n",
                    d->settings[si].method, stem, stem);
    }
    snprintf(stem, sizeof stem, "layers_delta_%s", m->slug);
    const char *src = NULL;
    if ((st = rep_delta_write(d, o, mi, stem, &src, e)) != DK_OK) return st;
    if (!src) {
        rep_note(
            r, "no Δ-per-layer figure for %s: no sample of this run has Δ statistics (sample_layers.delta_*)",
            m->label);
        return DK_OK;
    }
    fprintf(figs, "\n**Halting score (Δ) per layer, samples of %s** ([data](%s.dat))\n\n![delta](%s.png)\n",
            src, stem, stem);
    if (strcmp(src, "dense") != 0)
        rep_note(r, "Δ per layer for %s drawn from %s samples: the run's dense samples carry no Δ statistics",
                 m->label, src);
    return DK_OK;
}

/* report.md's title, Provenance (with the cells by state) and Models. */
static void rep_md_provenance(FILE *f, const rep_data *d, dk_report_result *r) {
    char b1[64], b2[64], num[64];
    fprintf(f, "# dashkit report: run %lld", (long long)d->run_id);
    if (d->run->name && *d->run->name) {
        fprintf(f, " (%s)", d->run->name);
    }
    fprintf(f, "\n\nEvery number below is read from the store's sample rows; nothing is recomputed. Each "
               "figure's data"
               " (`.dat`/`.csv`) and gnuplot script (`.gp`) are beside it: `gnuplot NAME.gp` in this folder "
               "redraws it.\n\n");
    fprintf(f, "## Provenance\n\n| | |\n|---|---|\n");
    snprintf(num, sizeof num, "%lld", (long long)d->run_id);
    rep_md_kv(f, "run", num);
    rep_md_kv(f, "name", d->run->name);
    rep_md_kv(f, "config", d->run->config_path);
    rep_md_kv(f, "config sha256", d->run->config_hash);
    rep_md_kv(f, "git revision", d->run->git_rev);
    rep_md_kv(f, "host", d->run->host);
    rep_md_kv(f, "CPU", d->run->cpu);
    rep_md_kv(f, "BLAS core", d->run->blas_core);
    snprintf(num, sizeof num, "%lld", (long long)d->run->threads);
    rep_md_kv(f, "threads", d->run->threads >= 0 ? num : NULL);
    snprintf(num, sizeof num, "%lld", (long long)d->run->workers);
    rep_md_kv(f, "workers", d->run->workers >= 0 ? num : NULL);
    rep_md_kv(f, "command", d->run->command);
    rep_time(b1, sizeof b1, d->run->started_at);
    rep_time(b2, sizeof b2, d->run->finished_at);
    rep_md_kv(f, "started", b1);
    rep_md_kv(f, "finished", isnan(d->run->finished_at) ? "– (running or interrupted)" : b2);
    size_t nd = 0, np = 0, nrun = 0, nf = 0, ns = 0;
    for (size_t i = 0; i < d->n_cells_loaded; i++) {
        const char *x = d->cells[i].state;
        if (!strcmp(x, "done")) nd++;
        else if (!strcmp(x, "pending")) np++;
        else if (!strcmp(x, "running")) nrun++;
        else nf++;
        ns += d->cells[i].n;
    }
    char cells[256];
    snprintf(cells, sizeof cells, "%zu (done %zu, pending %zu, running %zu, failed %zu); %zu sample rows",
             d->n_cells_loaded, nd, np, nrun, nf, ns);
    rep_md_kv(f, "cells", cells);
    if (nd != d->n_cells_loaded)
        rep_note(
            r, "run %lld is incomplete: %zu of %zu cells are not done; figures use the samples stored so far",
            (long long)d->run_id, d->n_cells_loaded - nd, d->n_cells_loaded);
    fprintf(f, "\n**Models**\n\n| Model | Path | sha256 | Arch | Layers | Parameters "
               "|\n|---|---|---|---|---:|---:|\n");
    for (size_t mi = 0; mi < d->n_models; mi++) {
        const rep_model *m = &d->models[mi];
        fprintf(f, "| %s | ", m->label);
        rep_md_escape(f, m->path);
        fprintf(f, " | `%s` | %s | %lld | %lld |\n", m->sha, *m->arch ? m->arch : "–", (long long)m->n_layer,
                (long long)m->n_params);
    }
}

/* report.md's Method paragraph. */
static void rep_md_method(FILE *f, const rep_data *d) {
    const dk_report_opts *opts = d->opts;
    size_t n_shared_rows = 0, n_rows_all = 0;
    for (size_t i = 0; i < d->n_cells_loaded; i++) {
        n_shared_rows += d->cells[i].n_shared;
        n_rows_all += d->cells[i].n;
    }
    fprintf(
        f,
        "\n## Method\n\nScore: mean of the samples' scores (0–100). Wall speedup: sum of dense prefill "
        "seconds /"
        " sum of method prefill seconds over the same samples (measured). FLOPs speedup: dense FLOPs / "
        "method FLOPs"
        " (counted by the engine). Intervals: %.0f%% percentile bootstrap, %d resamples, seed %llu, "
        "stratified by cell"
        " (Avg: by task); deterministic for the seed. What is resampled: samples, except where samples share "
        "a"
        " context (RULER's fixed haystack at one length and depth: %zu of %zu sample rows here), where the"
        " distinct contexts are resampled as clusters with all their samples and the task's cells form one"
        " stratum, so the interval reflects how many contexts were seen, not how many needles were put into "
        "them."
        " Fidelity (KL, top-1, ΔNLL) is taken over the teacher-forced answer tokens. Frontiers pool a task's"
        " lengths/depths; the Pareto front maximises both speedup and score over every point including "
        "dense.\n",
        100 * opts->level, opts->n_boot, (unsigned long long)opts->seed, n_shared_rows, n_rows_all);
}

/* report.md's "Stability vs redundancy" section: the latest analysis of each of the run's models. */
static dk_status rep_md_analyses(dk_store *s, const rep_data *d, rep_out *o, FILE *f, dk_err *e) {
    int any = 0;
    dk_status st = DK_OK;
    for (size_t mi = 0; mi < d->n_models && st == DK_OK; mi++) {
        dk_analysis an;
        int found = 0;
        if ((st = dk_store_analysis_get(s, 0, d->models[mi].sha, &an, &found, e)) != DK_OK) return st;
        if (!found) continue;
        if (!any)
            fprintf(f, "\n## Stability vs redundancy (`dashkit analyze`)\n\nThe latest analysis of each model"
                       " in the store.\n");
        any = 1;
        st = rep_analysis_write(o, &an, d->models[mi].label, d->models[mi].slug, f, e);
        dk_analysis_free(&an);
    }
    return st;
}

/* report.md's "Paper vs measured" section, when the paper's table names tasks of the run. */
static dk_status rep_md_paper(const rep_data *d, const rep_paper *paper, rep_out *o, FILE *f, dk_err *e) {
    rep_mem pm = {0};
    int pw = 0;
    dk_status st = rep_mem_open(&pm, e);
    if (st != DK_OK) return st;
    st = rep_table_paper(d, paper, o, pm.f, &pw, e);
    fflush(pm.f);
    if (st == DK_OK && pw)
        fprintf(f,
                "\n## Paper vs measured\n\nAlso as [Markdown](paper_vs_measured.md), "
                "[LaTeX](paper_vs_measured.tex),"
                " [CSV](paper_vs_measured.csv).\n\n%.*s",
                (int)pm.len, pm.buf);
    rep_mem_drop(&pm);
    return st;
}

/* Draws the queued figures (notes final after it), then report.md's Figures and Notes. */
static void rep_md_figures_notes(FILE *f, rep_out *o, const dk_report_opts *opts, rep_mem *figs) {
    dk_report_result *r = o->r;
    if (opts->draw) {
        rep_prepare_draw(opts, r);
        if (r->gnuplot_found) rep_draw(o);
        else
            rep_note(r,
                     "figures not drawn: %s; data and scripts are written (draw with `gnuplot NAME.gp` here)",
                     r->gnuplot);
    } else {
        snprintf(r->gnuplot, sizeof r->gnuplot, "not run (--no-draw)");
    }
    if (r->n_failed) rep_note(r, "gnuplot failed on %d figure(s); first: %s", r->n_failed, r->failure);
    fflush(figs->f);
    fprintf(f, "\n## Figures\n");
    fwrite(figs->buf, 1, figs->len, f);
    fprintf(f, "\n## Notes\n\n");
    if (!r->notes[0]) {
        fprintf(f, "None.\n");
        return;
    }
    for (char *p = r->notes; *p;) {
        char *nl = strchr(p, '\n');
        fprintf(f, "- %.*s\n", nl ? (int)(nl - p) : (int)strlen(p), p);
        p = nl ? nl + 1 : p + strlen(p);
    }
}

dk_status dk_report_write(dk_store *s, const char *out_dir, const dk_report_opts *opts, dk_report_result *r,
                          dk_err *e) {
    memset(r, 0, sizeof *r);
    dk_status st = rep_check_opts(opts, e);
    if (st != DK_OK) return st;
    rep_paper paper;
    if ((st = rep_paper_load(opts->paper ? opts->paper : DK_REPORT_PAPER_DEFAULT, &paper, e)) != DK_OK)
        return st;
    rep_data d;
    if ((st = rep_load(s, opts, &d, e)) != DK_OK) {
        rep_paper_free(&paper);
        return st;
    }
    r->run_id = d.run_id;
    rep_out o = {out_dir, 1, 1, NULL, 0, r};
    rep_mem rep = {0}, figs = {0};
    if ((st = rep_mkdirs(out_dir, e)) != DK_OK) goto done;
    if ((st = rep_mem_open(&rep, e)) != DK_OK || (st = rep_mem_open(&figs, e)) != DK_OK) goto done;
    for (size_t mi = 0; mi < d.n_models; mi++)
        if ((st = rep_model_figures(&d, &o, (int)mi, figs.f, e)) != DK_OK) goto done;
    FILE *f = rep.f;
    rep_md_provenance(f, &d, r);
    rep_md_method(f, &d);
    fprintf(f, "\n## Main table\n\nAlso as [Markdown](table_main.md), [LaTeX](table_main.tex), "
               "[CSV](table_main.csv).\n\n");
    if ((st = rep_table_main(&d, &o, f, e)) != DK_OK) goto done;
    fprintf(f, "\n## Ablation: ratio / threshold / start layer\n\nAlso as [Markdown](table_ablation.md), "
               "[LaTeX](table_ablation.tex),"
               " [CSV](table_ablation.csv).\n\n");
    if ((st = rep_table_ablation(&d, &o, f, e)) != DK_OK) goto done;
    if ((st = rep_section_stats(&d, &o, f, e)) != DK_OK) goto done;
    if ((st = rep_md_analyses(s, &d, &o, f, e)) != DK_OK) goto done;
    if ((st = rep_md_paper(&d, &paper, &o, f, e)) != DK_OK) goto done;
    rep_md_figures_notes(f, &o, opts, &figs); /* draws first, so report.md's notes are final */
    st = rep_mem_commit(&rep, &o, "report.md", e);
done:
    rep_mem_drop(&rep);
    rep_mem_drop(&figs);
    rep_out_free(&o);
    rep_data_free(&d);
    rep_paper_free(&paper);
    return st;
}

/* ---- one figure ---- */

static int rep_pick_model(const rep_data *d, const char *want, dk_err *e, dk_status *st) {
    if (!want) {
        if (d->n_models == 1) return 0;
        *st = dk_fail(e, DK_ERR_ARG, "--model: run %lld has %zu models; name one (%s, ...)",
                      (long long)d->run_id, d->n_models, d->n_models ? d->models[0].label : "");
        return -1;
    }
    int found = -1;
    for (size_t i = 0; i < d->n_models; i++) {
        const rep_model *m = &d->models[i];
        if (!strcmp(m->label, want) || !strcmp(m->path, want) ||
            (strlen(want) >= 6 && !strncmp(m->sha, want, strlen(want)))) {
            if (found >= 0) {
                *st = dk_fail(e, DK_ERR_ARG, "--model '%s' is ambiguous", want);
                return -1;
            }
            found = (int)i;
        }
    }
    if (found < 0)
        *st = dk_fail(e, DK_ERR_ARG, "--model '%s': no such model in run %lld", want, (long long)d->run_id);
    return found;
}

static int rep_pick_task(const rep_data *d, const char *want, int required, dk_err *e, dk_status *st) {
    if (!want) {
        if (!required) return -1;
        if (d->n_tasks == 1) return 0;
        char list[512] = "";
        for (size_t i = 0; i < d->n_tasks; i++) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", d->tasks[i].name);
        }
        *st = dk_fail(e, DK_ERR_ARG, "--task is required: run %lld has tasks %s", (long long)d->run_id, list);
        return -2;
    }
    for (size_t i = 0; i < d->n_tasks; i++)
        if (!strcmp(d->tasks[i].name, want)) return (int)i;
    *st = dk_fail(e, DK_ERR_ARG, "--task '%s': no such task in run %lld", want, (long long)d->run_id);
    return -2;
}

dk_status dk_report_plot(dk_store *s, const char *out_file, const dk_plot_spec *p, const dk_report_opts *opts,
                         dk_report_result *r, dk_err *e) {
    memset(r, 0, sizeof *r);
    dk_status st = rep_check_opts(opts, e);
    if (st != DK_OK) return st;
    const char *ext = strrchr(out_file, '.');
    const char *slash = strrchr(out_file, '/');
    if (!ext || (slash && ext < slash) || (strcmp(ext, ".png") != 0 && strcmp(ext, ".svg") != 0))
        return dk_fail(e, DK_ERR_ARG, "--out '%s': the file name must end in .png or .svg", out_file);
    char dir[4096], stem[1024];
    if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - out_file), out_file);
    else snprintf(dir, sizeof dir, ".");
    if (!dir[0]) snprintf(dir, sizeof dir, "/");
    const char *base = slash ? slash + 1 : out_file;
    snprintf(stem, sizeof stem, "%.*s", (int)(ext - base), base);
    if (!stem[0] || strchr(stem, '"') || strchr(stem, '\\'))
        return dk_fail(e, DK_ERR_ARG, "--out '%s': unusable file name", out_file);
    rep_data d;
    if ((st = rep_load(s, opts, &d, e)) != DK_OK) return st;
    r->run_id = d.run_id;
    rep_out o = {dir, !strcmp(ext, ".png"), !strcmp(ext, ".svg"), NULL, 0, r};
    /* validate the selection first: a bad option leaves nothing behind, not even the folder */
    int mi = rep_pick_model(&d, p->model, e, &st), ti = -1, si = -1;
    if (mi < 0) goto done;
    switch (p->kind) {
    case DK_REPORT_KIND_FRONTIER:
        if ((ti = rep_pick_task(&d, p->task, 1, e, &st)) < 0) goto done;
        break;
    case DK_REPORT_KIND_HEATMAP: {
        if ((ti = rep_pick_task(&d, p->task, 1, e, &st)) < 0) goto done;
        if (!rep_task_has_depth(&d, mi, ti)) {
            st = dk_fail(e, DK_ERR_ARG,
                         "--task '%s': its cells have no \"depth\" option, so there is no length x depth grid"
                         " (give the task a \"depths\" grid)",
                         d.tasks[ti].name);
            goto done;
        }
        int n_match = 0;
        for (size_t k = 0; k < d.n_settings; k++) {
            if (!rep_has(&d, mi, ti, (int)k)) continue;
            if (p->method && !strcmp(d.settings[k].label, p->method)) {
                si = (int)k;
                n_match = 1;
                break;
            }
            if (p->method && strcmp(d.settings[k].method, p->method) != 0) continue;
            if (si < 0) si = (int)k;
            n_match++;
        }
        if (si < 0) {
            st = dk_fail(e, DK_ERR_ARG, "--method '%s': no such method or setting for task %s",
                         p->method ? p->method : "", d.tasks[ti].name);
            goto done;
        }
        if (n_match > 1) {
            st = dk_fail(e, DK_ERR_ARG, "--method: %d settings match%s%s; give one label, e.g. --method '%s'",
                         n_match, p->method ? " " : "", p->method ? p->method : "", d.settings[si].label);
            goto done;
        }
        break;
    }
    case DK_REPORT_KIND_LAYERS:
        if ((ti = rep_pick_task(&d, p->task, 0, e, &st)) == -2) goto done;
        if (p->method) {
            int known = 0;
            for (size_t k = 0; k < d.n_settings; k++)
                if (!strcmp(d.settings[k].method, p->method)) known = 1;
            if (!known) {
                st = dk_fail(e, DK_ERR_ARG, "--method '%s': no such method in run %lld", p->method,
                             (long long)d.run_id);
                goto done;
            }
        }
        break;
    case DK_REPORT_KIND_DELTA:
        if (!rep_delta_source(&d, mi)) {
            st = dk_fail(e, DK_ERR_ARG, "delta: no sample of run %lld has delta statistics (sample_layers)",
                         (long long)d.run_id);
            goto done;
        }
        break;
    }
    if ((st = rep_mkdirs(dir, e)) != DK_OK) goto done;
    switch (p->kind) {
    case DK_REPORT_KIND_FRONTIER: {
        const char *stems[2] = {p->x == DK_REPORT_X_WALL ? stem : NULL,
                                p->x == DK_REPORT_X_FLOPS ? stem : NULL};
        if ((st = rep_frontier_write(&d, &o, mi, ti, stem, stems, 1, e)) != DK_OK) goto done;
        break;
    }
    case DK_REPORT_KIND_HEATMAP:
        if ((st = rep_heatmap_write(&d, &o, mi, ti, si, stem, e)) != DK_OK) goto done;
        break;
    case DK_REPORT_KIND_LAYERS: {
        int w = 0;
        if ((st = rep_layers_write(&d, &o, mi, ti, p->method, stem, &w, e)) != DK_OK) goto done;
        if (!w) {
            st = dk_fail(e, DK_ERR_ARG, "layers: no sample of the selection has active-token counts");
            goto done;
        }
        break;
    }
    case DK_REPORT_KIND_DELTA: {
        const char *src = NULL;
        if ((st = rep_delta_write(&d, &o, mi, stem, &src, e)) != DK_OK) goto done;
        break;
    }
    }
    if (opts->draw) {
        rep_prepare_draw(opts, r);
        if (r->gnuplot_found) rep_draw(&o);
    } else {
        snprintf(r->gnuplot, sizeof r->gnuplot, "not run (--no-draw)");
    }
done:
    rep_out_free(&o);
    rep_data_free(&d);
    return st;
}
