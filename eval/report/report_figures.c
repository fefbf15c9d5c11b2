/* report_figures.c — each figure's data (.dat, .csv) and gnuplot script (.gp), queued for drawing:
 * speedup-accuracy frontiers, NIAH heatmaps, active tokens and Δ per layer, fidelity vs score, and
 * the stability-vs-redundancy figures of an analysis (with its Markdown). May include:
 * report_int.h, pareto.h, metrics.h (Spearman). */
#include "report_int.h"
#include "pareto.h"
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- frontier ---- */

typedef struct {
    int si; /* setting, -1 = dense_results reference */
    size_t n;
    dk_ci score, wall, flops;
    int front_wall, front_flops;
} rep_point;

/* Points of (mi, ti): every setting with cells there, plus the dense_results reference when
 * the run has no dense cells. */
static dk_status rep_frontier_points(const rep_data *d, int mi, int ti, rep_point **pts_out, size_t *n_out,
                                     dk_err *e) {
    rep_point *pts = calloc(d->n_settings + 1, sizeof *pts);
    if (!pts) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    size_t n = 0;
    int have_dense = 0;
    dk_status st = DK_OK;
    for (size_t s = 0; s < d->n_settings; s++) {
        if (!rep_has(d, mi, ti, (int)s)) continue;
        rep_point *p = &pts[n];
        p->si = (int)s;
        if ((st = rep_stat(d, mi, ti, (int)s, Q_SCORE, 0, &p->score, &p->n, e)) != DK_OK ||
            (st = rep_stat(d, mi, ti, (int)s, Q_WALL, 0, &p->wall, NULL, e)) != DK_OK ||
            (st = rep_stat(d, mi, ti, (int)s, Q_FLOPS, 0, &p->flops, NULL, e)) != DK_OK)
            goto fail;
        if (rep_is_dense(&d->settings[s])) have_dense = 1;
        n++;
    }
    if (!have_dense) {
        rep_point *p = &pts[n];
        p->si = -1;
        if ((st = rep_dense_reference(d, mi, ti, &p->score, &p->n, e)) != DK_OK) goto fail;
        if (p->n) {
            p->wall = (dk_ci){1, NAN, NAN};
            p->flops = (dk_ci){1, NAN, NAN};
            n++;
        }
    }
    double *x = malloc((n + 1) * sizeof *x), *xf = malloc((n + 1) * sizeof *xf),
           *y = malloc((n + 1) * sizeof *y);
    int *fw = malloc((n + 1) * sizeof *fw), *ff = malloc((n + 1) * sizeof *ff);
    if (!x || !xf || !y || !fw || !ff) {
        DK_FREE_ALL(x, xf, y, fw, ff);
        st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        x[i] = pts[i].wall.est;
        xf[i] = pts[i].flops.est;
        y[i] = pts[i].score.est;
    }
    dk_pareto_front(x, y, n, fw);
    dk_pareto_front(xf, y, n, ff);
    for (size_t i = 0; i < n; i++) {
        pts[i].front_wall = fw[i];
        pts[i].front_flops = ff[i];
    }
    DK_FREE_ALL(x, xf, y, fw, ff);
    *pts_out = pts;
    *n_out = n;
    return DK_OK;
fail:
    free(pts);
    return st;
}

static const char *rep_point_label(const rep_data *d, const rep_point *p) {
    return p->si >= 0 ? d->settings[p->si].label : "dense (shared dense results)";
}
static const char *rep_point_method(const rep_data *d, const rep_point *p) {
    return p->si >= 0 ? d->settings[p->si].method : "dense";
}

typedef struct {
    const rep_point *p;
    int flops;
} rep_sort_ctx;
static rep_sort_ctx rep_sort_g;
static int rep_cmp_idx(const void *a, const void *b) {
    const rep_point *pa = &rep_sort_g.p[*(const size_t *)a], *pb = &rep_sort_g.p[*(const size_t *)b];
    double xa = rep_sort_g.flops ? pa->flops.est : pa->wall.est,
           xb = rep_sort_g.flops ? pb->flops.est : pb->wall.est;
    return (xa > xb) - (xa < xb);
}

/* STEM.csv of a frontier: one row per point with its intervals. */
static dk_status rep_frontier_csv(const rep_data *d, rep_out *o, int mi, int ti, const rep_point *pts,
                                  size_t n, const char *dat_stem, dk_err *e) {
    rep_mem m = {0};
    char name[1024];
    dk_status st = rep_mem_open(&m, e);
    if (st != DK_OK) return st;
    fprintf(m.f, "model,task,method,setting,params,n,score,score_lo,score_hi,wall_speedup,wall_lo,wall_hi,"
                 "flops_speedup,flops_lo,flops_hi,pareto_wall,pareto_flops\n");
    for (size_t i = 0; i < n; i++) {
        const rep_point *p = &pts[i];
        dk_report_csv_field(m.f, d->models[mi].label);
        fputc(',', m.f);
        dk_report_csv_field(m.f, d->tasks[ti].name);
        fputc(',', m.f);
        dk_report_csv_field(m.f, rep_point_method(d, p));
        fputc(',', m.f);
        dk_report_csv_field(m.f, rep_point_label(d, p));
        fputc(',', m.f);
        dk_report_csv_field(m.f, p->si >= 0 ? d->settings[p->si].params : "{}");
        fprintf(m.f, ",%zu,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%d,%d\n", p->n, p->score.est,
                p->score.lo, p->score.hi, p->wall.est, p->wall.lo, p->wall.hi, p->flops.est, p->flops.lo,
                p->flops.hi, p->front_wall, p->front_flops);
    }
    snprintf(name, sizeof name, "%s.csv", dat_stem);
    st = rep_mem_commit(&m, o, name, e);
    rep_mem_drop(&m);
    return st;
}

/* Writes dat (gnuplot blocks) + csv for (mi, ti), and a script per requested x axis.
 * dat_stem: frontier data stem; gp_stems[x] = script stem for axis x, NULL = not wanted. */
dk_status rep_frontier_write(const rep_data *d, rep_out *o, int mi, int ti, const char *dat_stem,
                             const char *gp_stems[2], int write_csv, dk_err *e) {
    rep_point *pts = NULL;
    size_t n = 0;
    dk_status st = rep_frontier_points(d, mi, ti, &pts, &n, e);
    if (st != DK_OK) return st;
    rep_mem m = {0};
    char name[1024];
    /* series = methods in order of first appearance */
    const char **methods = calloc(n + 1, sizeof *methods);
    size_t n_methods = 0;
    size_t *order = calloc(n + 1, sizeof *order);
    if (!methods || !order) {
        st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const char *mth = rep_point_method(d, &pts[i]);
        int found = 0;
        for (size_t k = 0; k < n_methods; k++)
            if (!strcmp(methods[k], mth)) found = 1;
        if (!found) methods[n_methods++] = mth;
    }
    if ((st = rep_mem_open(&m, e)) != DK_OK) goto done;
    fprintf(m.f, "# frontier: model %s, task %s (pooled over task options), run %lld\n", d->models[mi].label,
            d->tasks[ti].name, (long long)d->run_id);
    fprintf(m.f,
            "# x = speedup (wall: sum dense prefill s / sum method prefill s; flops: sum dense / sum method "
            "FLOPs),"
            " y = mean score; lo/hi = %.0f%% percentile bootstrap CI (%d resamples, seed %llu)\n",
            100 * d->opts->level, d->opts->n_boot, (unsigned long long)d->opts->seed);
    fprintf(m.f, "# blocks (gnuplot index): one per method, then the Pareto front by wall speedup, then by "
                 "FLOP speedup\n");
    int idx = 0;
    for (size_t k = 0; k < n_methods; k++, idx++) {
        fprintf(m.f,
                "%s# index %d: method %s\n# wall wall_lo wall_hi flops flops_lo flops_hi score score_lo "
                "score_hi n"
                " pareto_wall pareto_flops setting\n",
                k ? "\n\n" : "", idx, methods[k]);
        for (size_t i = 0; i < n; i++) {
            if (strcmp(rep_point_method(d, &pts[i]), methods[k]) != 0) continue;
            const rep_point *p = &pts[i];
            char b[9][32];
            rep_fmt(b[0], 32, p->wall.est);
            rep_fmt(b[1], 32, p->wall.lo);
            rep_fmt(b[2], 32, p->wall.hi);
            rep_fmt(b[3], 32, p->flops.est);
            rep_fmt(b[4], 32, p->flops.lo);
            rep_fmt(b[5], 32, p->flops.hi);
            rep_fmt(b[6], 32, p->score.est);
            rep_fmt(b[7], 32, p->score.lo);
            rep_fmt(b[8], 32, p->score.hi);
            fprintf(m.f, "%s %s %s %s %s %s %s %s %s %zu %d %d ", b[0], b[1], b[2], b[3], b[4], b[5], b[6],
                    b[7], b[8], p->n, p->front_wall, p->front_flops);
            rep_gp_str(m.f, rep_point_label(d, p));
            fputc('\n', m.f);
        }
    }
    for (int fl = 0; fl < 2; fl++, idx++) {
        fprintf(m.f, "\n\n# index %d: Pareto front by %s speedup, sorted by x\n# x score\n", idx,
                fl ? "FLOP" : "wall");
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if ((fl ? pts[i].front_flops : pts[i].front_wall)) order[k++] = i;
        rep_sort_g = (rep_sort_ctx){pts, fl};
        qsort(order, k, sizeof *order, rep_cmp_idx);
        for (size_t j = 0; j < k; j++) {
            const rep_point *p = &pts[order[j]];
            fprintf(m.f, "%.10g %.10g\n", fl ? p->flops.est : p->wall.est, p->score.est);
        }
        if (!k) fprintf(m.f, "NaN NaN\n");
    }
    snprintf(name, sizeof name, "%s.dat", dat_stem);
    if ((st = rep_mem_commit(&m, o, name, e)) != DK_OK) goto done;

    if (write_csv && (st = rep_frontier_csv(d, o, mi, ti, pts, n, dat_stem, e)) != DK_OK) goto done;

    /* dense score as a reference line */
    double dense_y = NAN;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(rep_point_method(d, &pts[i]), "dense")) dense_y = pts[i].score.est;
    for (int ax = 0; ax < 2; ax++) {
        if (!gp_stems[ax]) continue;
        if ((st = rep_mem_open(&m, e)) != DK_OK) goto done;
        char what[1024];
        snprintf(what, sizeof what, "speedup-accuracy frontier (%s speedup): %s, %s",
                 ax ? "FLOP" : "measured prefill", d->models[mi].label, d->tasks[ti].name);
        snprintf(name, sizeof name, "%s.dat", dat_stem);
        char title[1024];
        snprintf(title, sizeof title, "%s: %s (run %lld)", d->models[mi].label, d->tasks[ti].name,
                 (long long)d->run_id);
        rep_gp_head(m.f, o, gp_stems[ax], what, name, title);
        fprintf(m.f, "\nset xlabel \"%s\"\nset ylabel \"score (mean, %.0f%% bootstrap CI)\"\n",
                ax ? "FLOP speedup (dense FLOPs / method FLOPs)"
                   : "measured prefill speedup (dense s / method s)",
                100 * d->opts->level);
        fprintf(m.f, "set key outside right top\nset grid\nset offsets graph 0.05, graph 0.05, graph 0.05, "
                     "graph 0.05\n");
        if (!isnan(dense_y))
            fprintf(
                m.f,
                "set arrow 1 from graph 0, first %.4f to graph 1, first %.4f nohead dt 2 lc rgb \"gray40\"\n",
                dense_y, dense_y);
        fprintf(m.f, "dat = \"%s.dat\"\nplot \\\n", dat_stem);
        for (size_t k = 0; k < n_methods; k++) {
            int dense = !strcmp(methods[k], "dense");
            fprintf(m.f, "  dat index %zu using %d:7:8:9 with yerrorbars %s title ", k, ax ? 4 : 1,
                    dense ? "pt 5 ps 1.8 lc rgb \"black\"" : "pt 7 ps 1.2");
            rep_gp_str(m.f, methods[k]);
            fprintf(m.f, ", \\\n");
        }
        fprintf(m.f,
                "  dat index %zu using 1:2 with lines lw 2 dt 1 lc rgb \"#555555\" title \"Pareto front\"\n",
                n_methods + (size_t)ax);
        rep_gp_tail(m.f, o);
        if ((st = rep_gp_commit(o, &m, gp_stems[ax], e)) != DK_OK) goto done;
    }
done:
    rep_mem_drop(&m);
    free(methods);
    free(order);
    free(pts);
    return st;
}

/* ---- NIAH heatmap ---- */

/* Distinct sorted non-NaN values. */
static size_t rep_distinct(double *v, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(v[i])) v[k++] = v[i];
    qsort(v, k, sizeof *v, dk_cmp_f64);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (!u || v[i] != v[u - 1]) v[u++] = v[i];
    return u;
}

int rep_task_has_depth(const rep_data *d, int mi, int ti) {
    for (size_t i = 0; i < d->n_cells_loaded; i++)
        if (d->cells[i].mi == mi && d->cells[i].ti == ti && !isnan(d->cells[i].depth)) return 1;
    return 0;
}

dk_status rep_heatmap_write(const rep_data *d, rep_out *o, int mi, int ti, int si, const char *stem,
                            dk_err *e) {
    size_t nc = d->n_cells_loaded;
    double *lens = malloc((nc + 1) * sizeof *lens), *deps = malloc((nc + 1) * sizeof *deps);
    if (!lens || !deps) {
        free(lens);
        free(deps);
        return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < nc; i++) {
        const rep_cell *c = &d->cells[i];
        if (c->mi != mi || c->ti != ti || c->si != si) continue;
        lens[k] = isnan(c->length) ? -1 : c->length;
        deps[k] = c->depth;
        k++;
    }
    size_t nl = rep_distinct(lens, k), nd = rep_distinct(deps, k);
    rep_mem m = {0};
    dk_status st = rep_mem_open(&m, e);
    char name[1024];
    if (st != DK_OK) goto done;
    fprintf(m.f, "# NIAH heatmap: model %s, task %s, %s, run %lld\n", d->models[mi].label, d->tasks[ti].name,
            d->settings[si].label, (long long)d->run_id);
    fprintf(m.f, "# length_index depth_index length depth score score_lo score_hi n (score = mean over the "
                 "cell's samples;"
                 " NaN = no samples; length -1 = no length option)\n");
    for (size_t a = 0; a < nl; a++) {
        for (size_t b = 0; b < nd; b++) {
            /* one cell per (length, depth) for a setting; pool if the store holds several */
            rep_strata S = {0};
            for (size_t i = 0; i < nc; i++) {
                const rep_cell *c = &d->cells[i];
                if (c->mi != mi || c->ti != ti || c->si != si) continue;
                if ((isnan(c->length) ? -1 : c->length) != lens[a] || c->depth != deps[b]) continue;
                if (rep_strata_add(&S, c, Q_SCORE, 0) != 0) {
                    rep_strata_free(&S);
                    st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
                    goto done;
                }
            }
            dk_ci ci = {NAN, NAN, NAN};
            size_t tot = 0;
            for (size_t j = 0; j < S.n; j++) tot += S.st[j].n;
            char label[1024];
            snprintf(label, sizeof label, "%s|%s|%s|%s|heat|%g|%g", d->models[mi].sha, d->tasks[ti].name,
                     d->settings[si].method, d->settings[si].params, lens[a], deps[b]);
            st = dk_bootstrap_ci(S.st, S.n, DK_BOOT_POOLED, d->opts->n_boot,
                                 dk_bootstrap_seed(d->opts->seed, label), d->opts->level, &ci, e);
            rep_strata_free(&S);
            if (st != DK_OK) goto done;
            char b1[32], b2[32], b3[32];
            rep_fmt(b1, 32, ci.est);
            rep_fmt(b2, 32, ci.lo);
            rep_fmt(b3, 32, ci.hi);
            fprintf(m.f, "%zu %zu %g %g %s %s %s %zu\n", a, b, lens[a], deps[b], b1, b2, b3, tot);
        }
    }
    snprintf(name, sizeof name, "%s.dat", stem);
    if ((st = rep_mem_commit(&m, o, name, e)) != DK_OK) goto done;

    if ((st = rep_mem_open(&m, e)) != DK_OK) goto done;
    char what[1024];
    snprintf(what, sizeof what, "NIAH heatmap: %s, %s, %s", d->models[mi].label, d->tasks[ti].name,
             d->settings[si].label);
    char title[1024];
    snprintf(title, sizeof title, "%s: %s, %s (run %lld)", d->models[mi].label, d->tasks[ti].name,
             d->settings[si].label, (long long)d->run_id);
    rep_gp_head(m.f, o, stem, what, name, title);
    fprintf(m.f, "\nset xlabel \"context length (tokens)\"\nset ylabel \"needle depth (%% of context)\"\n");
    fprintf(m.f, "set cblabel \"score\"\nset cbrange [0:100]\nset palette defined (0 \"#b2182b\", 50 "
                 "\"#fee08b\", 100 \"#1a9850\")\n");
    fprintf(m.f, "set xrange [-0.5:%zu.5]\nset yrange [-0.5:%zu.5]\nset xtics (", nl ? nl - 1 : 0,
            nd ? nd - 1 : 0);
    for (size_t a = 0; a < nl; a++) fprintf(m.f, "%s\"%g\" %zu", a ? ", " : "", lens[a], a);
    fprintf(m.f, ")\nset ytics (");
    for (size_t b = 0; b < nd; b++) fprintf(m.f, "%s\"%g\" %zu", b ? ", " : "", deps[b], b);
    fprintf(m.f, ")\nunset key\nset style fill solid 1.0 noborder\n");
    fprintf(m.f,
            "plot \"%s\" using 1:2:(0.5):(0.5):5 with boxxyerror lc palette, \\\n"
            "  \"%s\" using 1:2:(($5 == $5) ? sprintf(\"%%.0f\", $5) : \"\") with labels tc rgb \"black\"\n",
            name, name);
    rep_gp_tail(m.f, o);
    st = rep_gp_commit(o, &m, stem, e);
done:
    rep_mem_drop(&m);
    free(lens);
    free(deps);
    return st;
}

/* ---- per-layer plots ---- */

static int rep_model_layers(const rep_data *d, int mi) {
    int L = d->models[mi].n_layer > 0 ? (int)d->models[mi].n_layer : 0;
    for (size_t i = 0; i < d->n_cells_loaded; i++)
        if (d->cells[i].mi == mi && d->cells[i].n_layer > L) L = d->cells[i].n_layer;
    return L;
}

/* Active tokens per layer for every setting of `method` (NULL = all settings) on model mi,
 * pooled over tasks (ti < 0) or one task. y = mean over samples of active[l] / context_tokens. */
dk_status rep_layers_write(const rep_data *d, rep_out *o, int mi, int ti, const char *method,
                           const char *stem, int *written, dk_err *e) {
    int L = rep_model_layers(d, mi);
    *written = 0;
    rep_mem m = {0};
    dk_status st = rep_mem_open(&m, e);
    if (st != DK_OK) return st;
    char name[1024];
    int *shown = calloc(d->n_settings + 1, sizeof *shown);
    size_t n_shown = 0;
    if (!shown) {
        rep_mem_drop(&m);
        return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    }
    fprintf(m.f, "# active context tokens per layer: model %s, %s%s, run %lld\n", d->models[mi].label,
            method ? "method " : "all methods", method ? method : "", (long long)d->run_id);
    fprintf(m.f,
            "# task: %s. fraction = mean over samples of active_tokens[layer] / context_tokens;"
            " tokens = mean active_tokens[layer]. One block (gnuplot index) per setting.\n",
            ti >= 0 ? d->tasks[ti].name : "all tasks pooled");
    for (size_t s = 0; s < d->n_settings; s++) {
        if (method && strcmp(d->settings[s].method, method) != 0) continue;
        if (!rep_has(d, mi, ti, (int)s)) continue;
        double *sum_f = calloc((size_t)L + 1, sizeof *sum_f), *sum_t = calloc((size_t)L + 1, sizeof *sum_t);
        size_t *cnt = calloc((size_t)L + 1, sizeof *cnt);
        if (!sum_f || !sum_t || !cnt) {
            free(sum_f);
            free(sum_t);
            free(cnt);
            st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < d->n_cells_loaded; i++) {
            const rep_cell *c = &d->cells[i];
            if (c->mi != mi || c->si != (int)s || (ti >= 0 && c->ti != ti)) continue;
            for (size_t r = 0; r < c->n; r++)
                for (int l = 0; l < c->n_layer && l < L; l++) {
                    double a = c->active[r * (size_t)c->n_layer + (size_t)l];
                    if (isnan(a) || !(c->ctx[r] > 0)) continue;
                    sum_f[l] += a / c->ctx[r];
                    sum_t[l] += a;
                    cnt[l]++;
                }
        }
        int any = 0;
        for (int l = 0; l < L; l++)
            if (cnt[l]) any = 1;
        if (any) {
            fprintf(m.f, "%s# index %zu: ", n_shown ? "\n\n" : "", n_shown);
            rep_gp_str(m.f, d->settings[s].label);
            fprintf(m.f, "\n# layer fraction tokens n\n");
            for (int l = 0; l < L; l++) {
                if (!cnt[l]) continue;
                fprintf(m.f, "%d %.10g %.10g %zu\n", l, sum_f[l] / (double)cnt[l], sum_t[l] / (double)cnt[l],
                        cnt[l]);
            }
            shown[n_shown++] = (int)s;
        }
        free(sum_f);
        free(sum_t);
        free(cnt);
    }
    if (!n_shown) {
        st = DK_OK;
        goto done;
    }
    snprintf(name, sizeof name, "%s.dat", stem);
    if ((st = rep_mem_commit(&m, o, name, e)) != DK_OK) goto done;
    if ((st = rep_mem_open(&m, e)) != DK_OK) goto done;
    char what[1024], title[1024];
    snprintf(what, sizeof what, "active tokens per layer: %s, %s", d->models[mi].label,
             method ? method : "all methods");
    snprintf(title, sizeof title, "%s: active context tokens per layer, %s%s%s (run %lld)",
             d->models[mi].label, method ? method : "all methods", ti >= 0 ? ", " : "",
             ti >= 0 ? d->tasks[ti].name : "", (long long)d->run_id);
    rep_gp_head(m.f, o, stem, what, name, title);
    fprintf(m.f,
            "\nset xlabel \"layer\"\nset ylabel \"active tokens / context tokens (mean over samples)\"\n"
            "set yrange [0:1.05]\nset xrange [-0.5:%d.5]\nset xtics 1\nset key outside right top\nset grid\n",
            L > 0 ? L - 1 : 0);
    fprintf(m.f, "plot \\\n");
    for (size_t k = 0; k < n_shown; k++) {
        fprintf(m.f, "  \"%s\" index %zu using 1:2 with linespoints pt 7 ps 0.8 title ", name, k);
        rep_gp_str(m.f, d->settings[shown[k]].label);
        fprintf(m.f, "%s\n", k + 1 < n_shown ? ", \\" : "");
    }
    rep_gp_tail(m.f, o);
    if ((st = rep_gp_commit(o, &m, stem, e)) != DK_OK) goto done;
    *written = 1;
done:
    rep_mem_drop(&m);
    free(shown);
    return st;
}

/* The method whose samples give model mi's Δ figure: dense if its samples carry Δ statistics,
 * else the first method (config order) whose do; NULL when none does. */
const char *rep_delta_source(const rep_data *d, int mi) {
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < d->n_cells_loaded; i++) {
            const rep_cell *c = &d->cells[i];
            if (c->mi != mi || (pass == 0 && !rep_is_dense(&d->settings[c->si]))) continue;
            for (size_t j = 0; j < c->n * (size_t)c->n_layer; j++)
                if (!isnan(c->dmed[j])) return d->settings[c->si].method;
        }
    return NULL;
}

/* Δ statistics per layer: the samples of dense cells if they carry any, else of the first
 * method (config order) whose samples do. *source receives that method (NULL = none). */
dk_status rep_delta_write(const rep_data *d, rep_out *o, int mi, const char *stem, const char **source,
                          dk_err *e) {
    int L = rep_model_layers(d, mi);
    *source = NULL;
    const char *src = rep_delta_source(d, mi);
    if (!src) return DK_OK;
    double *v = malloc(sizeof *v * 1), *vmin = NULL, *vmax = NULL;
    size_t cap = 0;
    rep_mem m = {0};
    dk_status st = rep_mem_open(&m, e);
    char name[1024];
    if (st != DK_OK) {
        free(v);
        return st;
    }
    fprintf(m.f, "# per-layer delta statistics: model %s, samples of method %s, run %lld\n",
            d->models[mi].label, src, (long long)d->run_id);
    fprintf(m.f,
            "# the store keeps per sample and layer the min, median and max of the halting score "
            "(sample_layers);\n"
            "# across samples: min = min of minima, q25/median/q75 = quartiles of the per-sample medians,"
            " max = max of maxima\n# layer min q25 median q75 max n\n");
    int rows = 0;
    for (int l = 0; l < L; l++) {
        size_t k = 0;
        double mn = INFINITY, mx = -INFINITY;
        for (size_t i = 0; i < d->n_cells_loaded; i++) {
            const rep_cell *c = &d->cells[i];
            if (c->mi != mi || strcmp(d->settings[c->si].method, src) != 0 || l >= c->n_layer) continue;
            for (size_t r = 0; r < c->n; r++) {
                size_t j = r * (size_t)c->n_layer + (size_t)l;
                if (isnan(c->dmed[j])) continue;
                if (k == cap) {
                    cap = cap ? 2 * cap : 64;
                    double *p = realloc(v, cap * sizeof *p);
                    if (!p) {
                        st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
                        goto done;
                    }
                    v = p;
                }
                v[k++] = c->dmed[j];
                if (!isnan(c->dmin[j]) && c->dmin[j] < mn) mn = c->dmin[j];
                if (!isnan(c->dmax[j]) && c->dmax[j] > mx) mx = c->dmax[j];
            }
        }
        if (!k) continue;
        qsort(v, k, sizeof *v, dk_cmp_f64);
        double q[3];
        for (int t = 0; t < 3; t++) {
            double h = (double)(k - 1) * (0.25 * (t + 1));
            size_t lo = (size_t)floor(h);
            q[t] = lo + 1 < k ? v[lo] + (h - (double)lo) * (v[lo + 1] - v[lo]) : v[k - 1];
        }
        if (isinf(mn)) mn = q[0];
        if (isinf(mx)) mx = q[2];
        fprintf(m.f, "%d %.6g %.6g %.6g %.6g %.6g %zu\n", l, mn, q[0], q[1], q[2], mx, k);
        rows++;
    }
    (void)vmin;
    (void)vmax;
    snprintf(name, sizeof name, "%s.dat", stem);
    if ((st = rep_mem_commit(&m, o, name, e)) != DK_OK) goto done;
    if ((st = rep_mem_open(&m, e)) != DK_OK) goto done;
    char what[1024], title[1024];
    snprintf(what, sizeof what, "per-layer delta distribution: %s (samples of %s)", d->models[mi].label, src);
    snprintf(title, sizeof title, "%s: halting score per layer (%s samples, run %lld)", d->models[mi].label,
             src, (long long)d->run_id);
    rep_gp_head(m.f, o, stem, what, name, title);
    fprintf(
        m.f,
        "\nset xlabel \"layer\"\nset ylabel \"delta (box: quartiles of per-sample medians; whiskers: "
        "min/max)\"\n"
        "set xrange [-0.5:%d.5]\nset xtics 1\nset boxwidth 0.5\nset style fill empty\nset grid\nunset key\n",
        L > 0 ? L - 1 : 0);
    fprintf(m.f,
            "plot \"%s\" using 1:3:2:6:5 with candlesticks whiskerbars lw 1.5 lc rgb \"#2166ac\", \\\n"
            "  \"%s\" using 1:4:4:4:4 with candlesticks lw 2 lc rgb \"black\"\n",
            name, name);
    rep_gp_tail(m.f, o);
    if ((st = rep_gp_commit(o, &m, stem, e)) != DK_OK) goto done;
    *source = src;
    (void)rows;
done:
    rep_mem_drop(&m);
    free(v);
    return st;
}

/* Per-sample answer KL and score of every non-dense setting of mi: fidelity_MODEL.{dat,gp},
 * Spearman per setting into md and overall into *rho / *n_all. */
dk_status rep_fidelity_write(const rep_data *d, rep_out *o, int mi, const char *stem, FILE *md, double *rho,
                             size_t *n_all, dk_err *e) {
    size_t cap = 0;
    for (size_t i = 0; i < d->n_cells_loaded; i++)
        if (d->cells[i].mi == mi) cap += d->cells[i].n;
    double *kx = malloc((cap ? cap : 1) * sizeof *kx), *sy = malloc((cap ? cap : 1) * sizeof *sy);
    double *ax = malloc((cap ? cap : 1) * sizeof *ax), *ay = malloc((cap ? cap : 1) * sizeof *ay);
    rep_mem m = {0};
    dk_status st = DK_OK;
    char name[1100];
    int blocks = 0;
    *n_all = 0;
    *rho = NAN;
    if (!kx || !sy || !ax || !ay) {
        st = dk_fail(e, DK_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = rep_mem_open(&m, e)) != DK_OK) goto done;
    fprintf(m.f,
            "# per-sample answer-level KL(dense||method) (nats) and score: model %s, run %lld;"
            " one block per setting\n",
            d->models[mi].label, (long long)d->run_id);
    fprintf(md, "| Setting | n | Spearman (answer KL, score) |\n|---|---:|---:|\n");
    for (size_t si = 0; si < d->n_settings; si++) {
        if (rep_is_dense(&d->settings[si]) || !rep_has(d, mi, -1, (int)si)) continue;
        size_t k = 0;
        for (size_t i = 0; i < d->n_cells_loaded; i++) {
            const rep_cell *c = &d->cells[i];
            if (c->mi != mi || c->si != (int)si) continue;
            for (size_t r = 0; r < c->n; r++) {
                if (isnan(c->kl[r]) || isnan(c->score[r])) continue;
                kx[k] = c->kl[r];
                sy[k] = c->score[r];
                k++;
                ax[*n_all] = c->kl[r];
                ay[*n_all] = c->score[r];
                (*n_all)++;
            }
        }
        if (!k) continue;
        double r = dk_metric_spearman(kx, sy, k);
        fprintf(md, "| %s | %zu | ", d->settings[si].label, k);
        if (isnan(r)) fprintf(md, "– (a constant side) |\n");
        else fprintf(md, "%.3f |\n", r);
        fprintf(m.f, "%s# %s\n", blocks ? "\n\n" : "", d->settings[si].label);
        for (size_t j = 0; j < k; j++) fprintf(m.f, "%.6g %.6g\n", kx[j], sy[j]);
        blocks++;
    }
    *rho = dk_metric_spearman(ax, ay, *n_all);
    if (isnan(*rho)) fprintf(md, "| all method samples | %zu | – |\n", *n_all);
    else fprintf(md, "| all method samples | %zu | %.3f |\n", *n_all, *rho);
    if (!blocks) goto done;
    snprintf(name, sizeof name, "%s.dat", stem);
    if ((st = rep_mem_commit(&m, o, name, e)) != DK_OK) goto done;
    if ((st = rep_mem_open(&m, e)) != DK_OK) goto done;
    char what[1024], title[1024];
    snprintf(what, sizeof what, "answer KL vs score per sample: %s", d->models[mi].label);
    snprintf(title, sizeof title,
             "%s: answer-level KL vs score per sample (Spearman over all: %.2f, n = %zu)",
             d->models[mi].label, *rho, *n_all);
    rep_gp_head(m.f, o, stem, what, name, title);
    fprintf(
        m.f,
        "\nset xlabel \"KL(dense||method), mean over the answer tokens (nats, log scale)\"\n"
        "set ylabel \"score (jittered by up to 2 points)\"\nset logscale x\nset grid\nset key outside right\n"
        "set yrange [-5:105]\n");
    fprintf(m.f,
            "plot for [i=0:%d] \"%s\" index i using ($1 > 1e-6 ? $1 : 1e-6):($2 + 4 * (rand(0) - 0.5))"
            " with points pt 7 ps 0.6 title columnheader(1)\n",
            blocks - 1, name);
    rep_gp_tail(m.f, o);
    st = rep_gp_commit(o, &m, stem, e);
done:
    rep_mem_drop(&m);
    DK_FREE_ALL(kx, sy, ax, ay);
    return st;
}
/* ---- stability vs redundancy: the figures and Markdown of one analysis (analyze.h) ---- */

/* One figure of an analysis: its data (dname = STEM.dat) and gnuplot script, written together. */
typedef struct {
    rep_mem dat, gp;
    char stem[1024], dname[1100];
} rep_fig;

/* Opens figure analysis_KIND_SLUG. */
static dk_status rep_fig_open(rep_fig *f, const char *kind, const char *slug, dk_err *e) {
    snprintf(f->stem, sizeof f->stem, "analysis_%s_%s", kind, slug);
    snprintf(f->dname, sizeof f->dname, "%s.dat", f->stem);
    dk_status st = rep_mem_open(&f->dat, e);
    return st == DK_OK ? rep_mem_open(&f->gp, e) : st;
}

/* After a successful open (st): ends the script, writes both files when `write` and links the image
 * from md as alt. Frees the streams; returns the result. */
static dk_status rep_fig_close(rep_fig *f, rep_out *o, dk_status st, bool write, FILE *md, const char *alt,
                               dk_err *e) {
    if (st == DK_OK) {
        rep_gp_tail(f->gp.f, o);
        if (write && (st = rep_mem_commit(&f->dat, o, f->dname, e)) == DK_OK)
            st = rep_gp_commit(o, &f->gp, f->stem, e);
        fprintf(md, "\n![%s](%s.png)\n", alt, f->stem);
    }
    rep_mem_drop(&f->dat);
    rep_mem_drop(&f->gp);
    return st;
}

/* analysis_delta_SLUG (rel = 0: Δ) or analysis_reldelta_SLUG (rel = 1: Δ/‖h‖): percentile bands per
 * layer. */
static dk_status rep_analysis_delta_fig(rep_out *o, const dk_analysis *a, const char *label, const char *slug,
                                        int rel, FILE *md, dk_err *e) {
    rep_fig f = {0};
    dk_status st = rep_fig_open(&f, rel ? "reldelta" : "delta", slug, e);
    if (st == DK_OK) {
        fprintf(
            f.dat.f,
            "# analysis %lld, %s: per layer percentiles of %s over the context rows of %d dense prefills\n"
            "# layer p1 p10 p25 p50 p75 p90 p99\n",
            (long long)a->id, label, rel ? "delta/|h|" : "delta", a->n_samples);
        for (int l = 0; l < a->n_layer; l++) {
            fprintf(f.dat.f, "%d", l);
            for (int q = 0; q < DK_ANALYSIS_NQ; q++)
                fprintf(f.dat.f, " %.6g", (rel ? a->rel_q : a->delta_q)[l * DK_ANALYSIS_NQ + q]);
            fprintf(f.dat.f, "\n");
        }
        char what[1024], title[1024];
        snprintf(what, sizeof what, "%s percentile bands per layer: %s", rel ? "relative delta" : "delta",
                 label);
        snprintf(title, sizeof title, "%s: %s per layer (bands p10-p90, p25-p75; median; p1/p99 dashed)",
                 label, rel ? "|U_t| / |h_t|" : "delta_t = |U_t|");
        rep_gp_head(f.gp.f, o, f.stem, what, f.dname, title);
        fprintf(f.gp.f,
                "\nset xlabel \"layer\"\nset ylabel \"%s\"\nset logscale y\nset grid\nset key top left\nset "
                "xtics 1\n"
                "set arrow from %d, graph 0 to %d, graph 1 nohead dt 3 lc rgb \"gray40\"\n",
                rel ? "|U| / |h|" : "|U|", a->ls_layer, a->ls_layer);
        fprintf(f.gp.f,
                "plot \"%s\" using 1:3:7 with filledcurves fc rgb \"#c6dbef\" title \"p10-p90\", \\\n"
                "  \"\" using 1:4:6 with filledcurves fc rgb \"#6baed6\" title \"p25-p75\", \\\n"
                "  \"\" using 1:5 with linespoints lw 2 lc rgb \"#08306b\" title \"median\", \\\n"
                "  \"\" using 1:2 with lines dt 2 lc rgb \"gray30\" title \"p1\", \\\n"
                "  \"\" using 1:8 with lines dt 2 lc rgb \"gray30\" title \"p99\"\n",
                f.dname);
    }
    return rep_fig_close(&f, o, st, true, md, rel ? "relative delta per layer" : "delta per layer", e);
}

/* analysis_redundancy_SLUG: received attention by Δ-decile at l_s. */
static dk_status rep_analysis_redundancy_fig(rep_out *o, const dk_analysis *a, const char *label,
                                             const char *slug, FILE *md, dk_err *e) {
    rep_fig f = {0};
    dk_status st = rep_fig_open(&f, "redundancy", slug, e);
    if (st == DK_OK) {
        fprintf(f.dat.f,
                "# analysis %lld, %s: received attention of the layers after l_s = %d by delta-decile at "
                "l_s\n"
                "# decile mean_delta received\n",
                (long long)a->id, label, a->ls_layer);
        for (int k = 0; k < 10; k++)
            fprintf(f.dat.f, "%d %.6g %.6g\n", k + 1, a->decile_delta[k], a->decile_received[k]);
        char title[1024];
        snprintf(title, sizeof title,
                 "%s: attention received in layers > %d by delta-decile at layer %d (Spearman %.2f)", label,
                 a->ls_layer, a->ls_layer, a->delta_received_spearman);
        rep_gp_head(f.gp.f, o, f.stem, "stability vs redundancy curve", f.dname, title);
        fprintf(f.gp.f,
                "\nset xlabel \"decile of delta at l_s (1 = most stable)\"\nset ylabel \"received attention"
                " (normalised by visible queries)\"\nset logscale y\nset grid\nset xtics 1\nunset key\n"
                "plot \"%s\" using 1:3 with linespoints lw 2 pt 7 lc rgb \"#b2182b\"\n",
                f.dname);
    }
    return rep_fig_close(&f, o, st, true, md, "redundancy curve", e);
}

/* analysis_recall_SLUG: attention recall vs rho, one line per method (no files without recall rows). */
static dk_status rep_analysis_recall_fig(rep_out *o, const dk_analysis *a, const char *label,
                                         const char *slug, FILE *md, dk_err *e) {
    rep_fig f = {0};
    dk_status st = rep_fig_open(&f, "recall", slug, e);
    int blocks = 0;
    if (st == DK_OK) {
        fprintf(f.dat.f,
                "# analysis %lld, %s: attention recall (share of dense attention of layers > l_s on kept "
                "rows)"
                " vs rho; one block per method\n",
                (long long)a->id, label);
        for (int r = 0; r < a->n_recall; r++) {
            if (r == 0 || strcmp(a->recall[r].method, a->recall[r - 1].method))
                fprintf(f.dat.f, "%s# %s\n", blocks++ ? "\n\n" : "", a->recall[r].method);
            fprintf(f.dat.f, "%.6g %.6g %.6g\n", a->recall[r].rho, a->recall[r].recall,
                    a->recall[r].kept_frac);
        }
        char title[1024];
        snprintf(title, sizeof title, "%s: dense attention (layers > %d) on the rows each method keeps",
                 label, a->ls_layer);
        rep_gp_head(f.gp.f, o, f.stem, "attention recall vs rho", f.dname, title);
        fprintf(f.gp.f,
                "\nset xlabel \"rho (fraction halted)\"\nset ylabel \"attention recall\"\nset yrange "
                "[0:1.05]\nset grid\n"
                "set key bottom left\nplot for [i=0:%d] \"%s\" index i using 1:2 with linespoints lw 2 "
                "title columnheader(1)\n",
                blocks - 1, f.dname);
    }
    return rep_fig_close(&f, o, st, blocks > 0, md, "attention recall vs rho", e);
}

dk_status rep_analysis_write(rep_out *o, const dk_analysis *a, const char *label, const char *slug, FILE *md,
                             dk_err *e) {
    fprintf(md,
            "\n### %s: stability vs redundancy (analysis %lld)\n\nDense prefills of %d `%s` contexts (%s);"
            " l_s = layer %d (ls %g). Δ_t = ‖U_t‖ (DASH's score); received attention = what all queries of a "
            "layer"
            " pay a row, mean over heads, divided by the queries that can see it.\n\n",
            label, (long long)a->id, a->n_samples, a->task ? a->task : "?",
            a->task_options ? a->task_options : "{}", a->ls_layer, a->ls);
    fprintf(md,
            "- `delta_received_spearman`: %.3f (Spearman of Δ at l_s with the mean received attention of the "
            "layers"
            " after l_s; positive: rows that change little are attended little)\n",
            a->delta_received_spearman);
    for (int r = 0; r < a->n_recall; r++)
        if (fabs(a->recall[r].rho - a->rho) < 1e-12)
            fprintf(md, "- `recall_%s`: %.3f (kept %.1f%% of the rows at rho %g)\n", a->recall[r].method,
                    a->recall[r].recall, 100 * a->recall[r].kept_frac, a->rho);
    fprintf(md,
            "\n| layer | Δ p10 | Δ p50 | Δ p90 | Δ/‖h‖ p50 | received (mean) | Spearman(Δ@l_s, received) |\n"
            "|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int l = 0; l < a->n_layer; l++) {
        const double *dq = a->delta_q + l * DK_ANALYSIS_NQ, *rq = a->rel_q + l * DK_ANALYSIS_NQ;
        fprintf(md, "| %d%s | %.4g | %.4g | %.4g | %.4g | %.4g | %.3f |\n", l,
                l == a->ls_layer ? " (l_s)" : "", dq[1], dq[3], dq[5], rq[3], a->received_mean[l],
                a->received_spearman[l]);
    }
    fprintf(md, "\nReceived attention (layers after l_s) by Δ-decile at l_s, lowest Δ first:\n\n| decile | "
                "mean Δ | received |\n"
                "|---:|---:|---:|\n");
    for (int k = 0; k < 10; k++)
        fprintf(md, "| %d | %.4g | %.4g |\n", k + 1, a->decile_delta[k], a->decile_received[k]);
    fprintf(md, "\nKept-set overlap (Jaccard) at rho %g:\n\n| a | b | Jaccard |\n|---|---|---:|\n", a->rho);
    for (int k = 0; k < a->n_overlap; k++)
        fprintf(md, "| %s | %s | %.3f |\n", a->overlap[k].a, a->overlap[k].b, a->overlap[k].jaccard);

    dk_status st = DK_OK;
    for (int rel = 0; rel < 2 && st == DK_OK; rel++)
        st = rep_analysis_delta_fig(o, a, label, slug, rel, md, e);
    if (st == DK_OK) st = rep_analysis_redundancy_fig(o, a, label, slug, md, e);
    if (st == DK_OK) st = rep_analysis_recall_fig(o, a, label, slug, md, e);
    return st;
}
