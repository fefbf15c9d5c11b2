/* test_report.c — reports from a small store built here through the store API:
 * Pareto sets against brute force (module and the report's frontier), table numbers against
 * SQL aggregates computed here, bootstrap determinism and coverage, gnuplot present (PNG
 * signatures) and absent (data and scripts still written, message), and CLI errors. */
#include "bootstrap.h"
#include "pareto.h"
#include "report.h"
#include "store.h"
#include "support/dk_test.h"

#include <dirent.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the fixture store ---- */

#define T_LAYERS 4
#define T_SAMPLES 5

typedef struct {
    const char *method, *params;
    double rho, ls;
} t_setting;
static const t_setting t_settings[] = {
    {"dense", "{}", 0, 1},
    {"dash", "{\"ls\":0.5,\"rho\":0.3}", 0.3, 0.5},
    {"dash", "{\"ls\":0.5,\"rho\":0.5}", 0.5, 0.5},
    {"dash", "{\"ls\":0.5,\"rho\":0.8}", 0.8, 0.5},
    {"random", "{\"ls\":0.5,\"rho\":0.5,\"seed\":1}", 0.5, 0.5},
    {"fastv", "{\"rho\":0.5}", 0.5, 0.25},
};
#define T_N_SETTINGS (sizeof t_settings / sizeof t_settings[0])

typedef struct {
    const char *task, *options;
} t_taskopt;
static const t_taskopt t_tasks[] = {
    {"passkey", "{\"depth\":10,\"length\":1024}"},
    {"passkey", "{\"depth\":50,\"length\":1024}"},
    {"passkey", "{\"depth\":90,\"length\":1024}"},
    {"passkey", "{\"depth\":10,\"length\":2048}"},
    {"passkey", "{\"depth\":50,\"length\":2048}"},
    {"passkey", "{\"depth\":90,\"length\":2048}"},
    {"qa", "{\"length\":1024}"},
};
#define T_N_TASKS (sizeof t_tasks / sizeof t_tasks[0])

static double t_hash01(unsigned a, unsigned b, unsigned c) {
    unsigned long long h = 1469598103934665603ULL;
    unsigned v[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        h ^= v[i] + 0x9e37u;
        h *= 1099511628211ULL;
        h ^= h >> 29;
    }
    return (double)(h % 1000003ULL) / 1000003.0;
}

static char t_db[512];

/* Builds t_db once: one run, every (task option, setting) cell with T_SAMPLES samples. Dense
 * samples carry per-layer Δ statistics; the fastv cell of one sample misses its wall time. */
static void t_build_store(void) {
    if (t_db[0]) return;
    dk_test_tmp_path(t_db, sizeof t_db, "t.db");
    if (access(t_db, F_OK) == 0) return; /* built by an earlier test (Check forks each test) */
    dk_err e = {{0}};
    dk_store *s = NULL;
    ck_assert_msg(dk_store_open(t_db, DK_STORE_OPEN_CREATE, &s, &e) == DK_OK, "%s", e.msg);
    dk_run_info ri = {.name = "unit",
                      .config_path = "t.json",
                      .config_text = "{}",
                      .config_hash = "abc",
                      .git_rev = "deadbeef",
                      .host = "testhost",
                      .cpu = "Test CPU",
                      .blas_core = "SkylakeX",
                      .command = "dashkit run t.json",
                      .threads = 2,
                      .workers = 1,
                      .n_cells = 42};
    int64_t run = 0, model = 0;
    ck_assert_msg(dk_store_run_begin(s, &ri, &run, &e) == DK_OK, "%s", e.msg);
    char sha[65];
    memset(sha, 'a', 64);
    sha[64] = 0;
    dk_model_info mi = {.sha256 = sha,
                        .path = "models/tiny.gguf",
                        .arch = "llama",
                        .n_layer = T_LAYERS,
                        .n_embd = 64,
                        .n_head = 4,
                        .n_head_kv = 4,
                        .n_ff = 128,
                        .n_vocab = 512,
                        .n_ctx = 4096,
                        .n_params = 1000,
                        .file_bytes = 4000};
    ck_assert_msg(dk_store_model_put(s, &mi, &model, &e) == DK_OK, "%s", e.msg);
    size_t n = T_N_TASKS * T_N_SETTINGS;
    dk_cell_spec *cs = calloc(n, sizeof *cs);
    char(*keys)[80] = calloc(n, 80), (*ids)[200] = calloc(n, 200), (*tks)[80] = calloc(n, 80);
    for (size_t t = 0; t < T_N_TASKS; t++)
        for (size_t m = 0; m < T_N_SETTINGS; m++) {
            size_t i = t * T_N_SETTINGS + m;
            snprintf(keys[i], 80, "key-%zu", i);
            snprintf(ids[i], 200, "{\"cell\":%zu}", i);
            snprintf(tks[i], 80, "tk-%zu", t);
            cs[i] = (dk_cell_spec){keys[i],
                                   ids[i],
                                   t_tasks[t].task,
                                   t_tasks[t].options,
                                   tks[i],
                                   t_settings[m].method,
                                   t_settings[m].params,
                                   model,
                                   T_SAMPLES,
                                   7};
        }
    int64_t *cell_ids = calloc(n, sizeof *cell_ids);
    ck_assert_msg(dk_store_cells_add(s, run, cs, n, 0, cell_ids, NULL, &e) == DK_OK, "%s", e.msg);
    dk_worker w;
    dk_store_worker_self(&w);
    for (;;) {
        int64_t cid = 0;
        ck_assert_msg(dk_store_cell_claim(s, run, &w, 600, &cid, NULL, &e) == DK_OK, "%s", e.msg);
        if (!cid) break;
        size_t i = 0;
        while (i < n && cell_ids[i] != cid) i++;
        ck_assert(i < n);
        size_t t = i / T_N_SETTINGS, m = i % T_N_SETTINGS;
        const t_setting *st = &t_settings[m];
        int is_dense = !strcmp(st->method, "dense");
        for (int j = 0; j < T_SAMPLES; j++) {
            int64_t ctx = 900 + 100 * (int64_t)t + 7 * j;
            int64_t active[T_LAYERS];
            dk_layer_stat ls[T_LAYERS];
            for (int l = 0; l < T_LAYERS; l++) {
                active[l] = ((double)l < st->ls * T_LAYERS) ? ctx
                                                            : (int64_t)llround((double)ctx * (1 - st->rho));
                double base = 0.01 * (l + 1) * (1 + t_hash01(9, (unsigned)i, (unsigned)(j * 8 + l)));
                ls[l] = (dk_layer_stat){is_dense ? base * 0.1 : NAN, is_dense ? base : NAN,
                                        is_dense ? base * 5 : NAN, 1000 * (l + 1), NAN};
            }
            double q = t_hash01(1, (unsigned)i, (unsigned)j);
            /* scores on a coarse grid so ties happen; a better score for less halting */
            double score = 20.0 * floor(5.0 * fmin(0.999, (1 - 0.6 * st->rho) * (0.5 + 0.6 * q)));
            double wd = 1.0 + 0.1 * t_hash01(2, (unsigned)t, (unsigned)j);
            double wm = is_dense
                            ? wd
                            : wd * (1 - 0.6 * st->rho) * (0.9 + 0.2 * t_hash01(3, (unsigned)i, (unsigned)j));
            if (!strcmp(st->method, "fastv") && j == 2) wm = NAN;
            int64_t fd = 1000000 + 1000 * ctx,
                    fm = is_dense ? fd : (int64_t)((double)fd * (1 - 0.5 * st->rho));
            char pred[32];
            snprintf(pred, sizeof pred, "p%d", j);
            dk_sample_row row = {.cell_id = cid,
                                 .sample_id = j,
                                 .sample_key = NULL,
                                 .prompt_tokens = ctx + 20,
                                 .context_tokens = ctx,
                                 .question_tokens = 20,
                                 .gen_tokens = 3,
                                 .n_layer = T_LAYERS,
                                 .active = active,
                                 .layers = ls,
                                 .flops_dense = fd,
                                 .flops_method = fm,
                                 .wall_dense_s = wd,
                                 .wall_method_s = wm,
                                 .wall_decode_s = 0.01,
                                 .prediction = pred,
                                 .answers = "[\"x\"]",
                                 .score = score,
                                 .kl = is_dense ? 0 : 0.1 * st->rho * (1 + q),
                                 .kl_max = NAN,
                                 .top1 = is_dense ? 1 : (q > st->rho * 0.5),
                                 .kl_first = NAN,
                                 .top1_first = -1,
                                 .nll_dense = NAN,
                                 .nll_method = NAN};
            ck_assert_msg(dk_store_sample_put(s, &w, 600, &row, &e) == DK_OK, "%s", e.msg);
        }
        ck_assert_msg(dk_store_cell_finish(s, cid, &w, &e) == DK_OK, "%s", e.msg);
    }
    ck_assert_msg(dk_store_run_end(s, run, &e) == DK_OK, "%s", e.msg);
    dk_store_close(s);
    free(cs);
    free(keys);
    free(ids);
    free(tks);
    free(cell_ids);
}

/* ---- helpers: SQL on the store, CSV reading ---- */

static sqlite3 *t_open(void) {
    sqlite3 *db = NULL;
    ck_assert(sqlite3_open_v2(t_db, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    return db;
}

static double t_sql1(sqlite3 *db, const char *sql, const char *a, const char *b, const char *c) {
    sqlite3_stmt *q = NULL;
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    const char *v[3] = {a, b, c};
    for (int i = 0; i < 3; i++)
        if (v[i] && i < sqlite3_bind_parameter_count(q))
            sqlite3_bind_text(q, i + 1, v[i], -1, SQLITE_TRANSIENT);
    ck_assert(sqlite3_step(q) == SQLITE_ROW);
    double x = sqlite3_column_type(q, 0) == SQLITE_NULL ? NAN : sqlite3_column_double(q, 0);
    sqlite3_finalize(q);
    return x;
}

static char *t_read(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t r = fread(b, 1, (size_t)n, f);
    b[r] = 0;
    fclose(f);
    if (len) *len = r;
    return b;
}

#define T_MAXF 24
typedef struct {
    char f[T_MAXF][256];
    int n;
} t_row;

/* Parses one CSV record (RFC 4180 quoting) starting at *p; returns 0 at end of input. */
static int t_csv_next(const char **p, t_row *r) {
    const char *s = *p;
    if (!*s) return 0;
    r->n = 0;
    for (;;) {
        char *o = r->f[r->n];
        size_t k = 0;
        if (*s == '"') {
            s++;
            for (;;) {
                if (*s == '"' && s[1] == '"') {
                    o[k++] = '"';
                    s += 2;
                } else if (*s == '"') {
                    s++;
                    break;
                } else if (!*s) break;
                else o[k++] = *s++;
            }
        } else {
            while (*s && *s != ',' && *s != '\n' && *s != '\r') o[k++] = *s++;
        }
        o[k] = 0;
        r->n++;
        if (*s == ',') {
            s++;
            continue;
        }
        while (*s == '\r' || *s == '\n') s++;
        break;
    }
    *p = s;
    return 1;
}

static int t_col(const t_row *hdr, const char *name) {
    for (int i = 0; i < hdr->n; i++)
        if (!strcmp(hdr->f[i], name)) return i;
    ck_abort_msg("column %s missing", name);
    return -1;
}

static void t_close(double got, double want, const char *what) {
    ck_assert_msg(fabs(got - want) <= 1e-9 * fmax(1, fabs(want)), "%s: report %.17g, SQL %.17g", what, got,
                  want);
}

static const char *t_report_dir(const char *name, int draw, uint64_t seed) {
    static char dir[600];
    dk_test_tmp_path(dir, sizeof dir, name);
    t_build_store();
    dk_err e = {{0}};
    dk_store *s = NULL;
    ck_assert_msg(dk_store_open(t_db, DK_STORE_OPEN_READONLY, &s, &e) == DK_OK, "%s", e.msg);
    dk_report_opts o;
    dk_report_opts_default(&o);
    o.n_boot = 300;
    o.seed = seed;
    o.draw = draw;
    dk_report_result r;
    ck_assert_msg(dk_report_write(s, dir, &o, &r, &e) == DK_OK, "%s", e.msg);
    dk_store_close(s);
    ck_assert_int_eq(r.run_id, 1);
    return dir;
}

/* ---- Pareto module against brute force ---- */

static int t_dominated(const double *x, const double *y, size_t n, size_t i) {
    if (isnan(x[i]) || isnan(y[i])) return 1;
    for (size_t j = 0; j < n; j++)
        if (j != i && !isnan(x[j]) && !isnan(y[j]) && x[j] >= x[i] && y[j] >= y[i] &&
            (x[j] > x[i] || y[j] > y[i]))
            return 1;
    return 0;
}

START_TEST(test_pareto_random_vs_bruteforce) {
    unsigned long long st = 12345;
    for (int trial = 0; trial < 400; trial++) {
        size_t n = 1 + (size_t)(trial % 37);
        double x[64], y[64];
        int f[64];
        for (size_t i = 0; i < n; i++) {
            st = st * 6364136223846793005ULL + 1442695040888963407ULL;
            /* coarse grid: ties and duplicates are common */
            x[i] = (double)((st >> 33) % 7);
            y[i] = (double)((st >> 45) % 6);
            if ((st >> 20) % 29 == 0) y[i] = NAN;
        }
        size_t k = dk_pareto_front(x, y, n, f), k2 = 0;
        for (size_t i = 0; i < n; i++) {
            int want = !t_dominated(x, y, n, i);
            ck_assert_msg(f[i] == want, "trial %d point %zu (%g,%g): got %d want %d", trial, i, x[i], y[i],
                          f[i], want);
            k2 += (size_t)want;
        }
        ck_assert_uint_eq(k, k2);
    }
    /* a hand case: (1,5) (2,4) (2,4) (3,1) (1,1) (2,3) -> the first four */
    double x[] = {1, 2, 2, 3, 1, 2}, y[] = {5, 4, 4, 1, 1, 3};
    int f[6], want[] = {1, 1, 1, 1, 0, 0};
    ck_assert_uint_eq(dk_pareto_front(x, y, 6, f), 4);
    for (int i = 0; i < 6; i++) ck_assert_int_eq(f[i], want[i]);
}
END_TEST

/* ---- bootstrap ---- */

START_TEST(test_bootstrap_deterministic_and_sane) {
    double v[40], w[40];
    for (int i = 0; i < 40; i++) {
        v[i] = 50 + 30 * sin(i * 1.7);
        w[i] = 1 + 0.5 * cos(i * 0.9);
    }
    dk_boot_stratum st[2] = {{v, NULL, 25, NULL}, {v + 25, NULL, 15, NULL}};
    dk_err e = {{0}};
    dk_ci a, b, c;
    ck_assert(dk_bootstrap_ci(st, 2, DK_BOOT_POOLED, 2000, 42, 0.95, &a, &e) == DK_OK);
    ck_assert(dk_bootstrap_ci(st, 2, DK_BOOT_POOLED, 2000, 42, 0.95, &b, &e) == DK_OK);
    ck_assert(dk_bootstrap_ci(st, 2, DK_BOOT_POOLED, 2000, 43, 0.95, &c, &e) == DK_OK);
    ck_assert(memcmp(&a, &b, sizeof a) == 0); /* same seed: bit-identical */
    ck_assert(a.lo != c.lo || a.hi != c.hi);  /* another seed: another draw */
    double mean = 0, var = 0;
    for (int i = 0; i < 40; i++) mean += v[i];
    mean /= 40;
    for (int i = 0; i < 40; i++) var += (v[i] - mean) * (v[i] - mean);
    var /= 39;
    t_close(a.est, mean, "pooled mean");
    ck_assert(a.lo < a.est && a.est < a.hi);
    /* the percentile CI of a mean is close to the normal one, mean +- 1.96 s / sqrt(n) */
    double half = 1.96 * sqrt(var / 40);
    ck_assert_msg(fabs((a.hi - a.lo) / (2 * half) - 1) < 0.2, "CI width %g vs normal %g", a.hi - a.lo,
                  2 * half);
    /* constant data: a zero-width interval at the value */
    double k[5] = {7, 7, 7, 7, 7};
    dk_boot_stratum ks = {k, NULL, 5, NULL};
    ck_assert(dk_bootstrap_ci(&ks, 1, DK_BOOT_POOLED, 100, 1, 0.95, &a, &e) == DK_OK);
    ck_assert(a.est == 7 && a.lo == 7 && a.hi == 7);
    /* ratio of sums and mean of strata */
    dk_boot_stratum rs = {v, w, 40, NULL};
    ck_assert(dk_bootstrap_ci(&rs, 1, DK_BOOT_POOLED, 0, 1, 0.95, &a, &e) == DK_OK);
    double sv = 0, sw = 0;
    for (int i = 0; i < 40; i++) {
        sv += v[i];
        sw += w[i];
    }
    t_close(a.est, sv / sw, "ratio of sums");
    ck_assert(isnan(a.lo) && isnan(a.hi));
    ck_assert(dk_bootstrap_ci(st, 2, DK_BOOT_MEAN_OF_STRATA, 0, 1, 0.95, &a, &e) == DK_OK);
    double m1 = 0, m2 = 0;
    for (int i = 0; i < 25; i++) m1 += v[i];
    for (int i = 25; i < 40; i++) m2 += v[i];
    t_close(a.est, (m1 / 25 + m2 / 15) / 2, "mean of strata");
    ck_assert(dk_bootstrap_ci(st, 2, DK_BOOT_POOLED, 10, 1, 1.5, &a, &e) == DK_ERR_ARG);
    ck_assert(dk_bootstrap_seed(1, "a") != dk_bootstrap_seed(1, "b"));
}
END_TEST

/* ---- the report's numbers against SQL ---- */

static const char *t_run_filter =
    " FROM sample_rows r JOIN run_cells rc ON rc.cell_id = r.cell_id WHERE rc.run_id = 1";

START_TEST(test_table_main_equals_sql) {
    const char *dir = t_report_dir("tables", 0, 1);
    char path[700];
    snprintf(path, sizeof path, "%s/table_main.csv", dir);
    char *csv = t_read(path, NULL);
    ck_assert_msg(csv != NULL, "%s missing", path);
    sqlite3 *db = t_open();
    const char *p = csv;
    t_row h, r;
    ck_assert(t_csv_next(&p, &h));
    int c_method = t_col(&h, "method"), c_params = t_col(&h, "params"), c_col = t_col(&h, "column"),
        c_val = t_col(&h, "value"), c_lo = t_col(&h, "lo"), c_hi = t_col(&h, "hi"), c_n = t_col(&h, "n");
    int rows = 0, seen_avg = 0, seen_wall = 0;
    char sql[1024];
    while (t_csv_next(&p, &r)) {
        const char *m = r.f[c_method], *pa = r.f[c_params], *col = r.f[c_col];
        double v = strtod(r.f[c_val], NULL), want, n;
        if (!strcmp(col, "avg")) {
            snprintf(
                sql, sizeof sql,
                "SELECT avg(x) FROM (SELECT avg(score) AS x%s AND method = ?1 AND params = ?2 GROUP BY task)",
                t_run_filter);
            want = t_sql1(db, sql, m, pa, NULL);
            seen_avg++;
        } else if (!strcmp(col, "flops_speedup")) {
            snprintf(
                sql, sizeof sql,
                "SELECT CAST(sum(flops_dense) AS REAL) / sum(flops_method)%s AND method = ?1 AND params = ?2",
                t_run_filter);
            want = t_sql1(db, sql, m, pa, NULL);
        } else if (!strcmp(col, "wall_speedup")) {
            snprintf(sql, sizeof sql,
                     "SELECT sum(wall_dense_s) / sum(wall_method_s)%s AND method = ?1 AND params = ?2"
                     " AND wall_dense_s IS NOT NULL AND wall_method_s IS NOT NULL",
                     t_run_filter);
            want = t_sql1(db, sql, m, pa, NULL);
            snprintf(sql, sizeof sql,
                     "SELECT count(*)%s AND method = ?1 AND params = ?2 AND wall_method_s IS NOT NULL",
                     t_run_filter);
            n = t_sql1(db, sql, m, pa, NULL);
            ck_assert_int_eq(atoi(r.f[c_n]), (int)n);
            seen_wall++;
        } else {
            snprintf(sql, sizeof sql, "SELECT avg(score)%s AND method = ?1 AND params = ?2 AND task = ?3",
                     t_run_filter);
            want = t_sql1(db, sql, m, pa, col);
            snprintf(sql, sizeof sql, "SELECT count(score)%s AND method = ?1 AND params = ?2 AND task = ?3",
                     t_run_filter);
            n = t_sql1(db, sql, m, pa, col);
            ck_assert_int_eq(atoi(r.f[c_n]), (int)n);
        }
        char what[600];
        snprintf(what, sizeof what, "%s %s %s", m, pa, col);
        t_close(v, want, what);
        double lo = strtod(r.f[c_lo], NULL), hi = strtod(r.f[c_hi], NULL);
        ck_assert_msg(lo <= v + 1e-12 && v <= hi + 1e-12, "%s: %g outside [%g, %g]", what, v, lo, hi);
        rows++;
    }
    /* 6 settings x (2 tasks + avg + flops + wall) */
    ck_assert_int_eq(rows, (int)(T_N_SETTINGS * 5));
    ck_assert_int_eq(seen_avg, (int)T_N_SETTINGS);
    ck_assert_int_eq(seen_wall, (int)T_N_SETTINGS);
    free(csv);

    /* ablation: mean KL and top-1 agreement against SQL */
    snprintf(path, sizeof path, "%s/table_ablation.csv", dir);
    csv = t_read(path, NULL);
    ck_assert(csv != NULL);
    p = csv;
    ck_assert(t_csv_next(&p, &h));
    int c_set = t_col(&h, "setting"), c_kl = t_col(&h, "kl"), c_t1 = t_col(&h, "top1"),
        c_rho = t_col(&h, "rho");
    rows = 0;
    while (t_csv_next(&p, &r)) {
        const char *label = r.f[c_set];
        size_t si = 0;
        for (; si < T_N_SETTINGS; si++) {
            char lab[128];
            const t_setting *s = &t_settings[si];
            if (!strcmp(s->method, "dense")) snprintf(lab, sizeof lab, "dense");
            else if (!strcmp(s->method, "fastv")) snprintf(lab, sizeof lab, "fastv rho=%g", s->rho);
            else if (!strcmp(s->method, "random"))
                snprintf(lab, sizeof lab, "random rho=%g ls=%g seed=1", s->rho, s->ls);
            else snprintf(lab, sizeof lab, "%s rho=%g ls=%g", s->method, s->rho, s->ls);
            if (!strcmp(lab, label)) break;
        }
        ck_assert_msg(si < T_N_SETTINGS, "unexpected setting label '%s'", label);
        const t_setting *s = &t_settings[si];
        snprintf(sql, sizeof sql, "SELECT avg(kl)%s AND method = ?1 AND params = ?2", t_run_filter);
        t_close(strtod(r.f[c_kl], NULL), t_sql1(db, sql, s->method, s->params, NULL), "kl");
        snprintf(sql, sizeof sql, "SELECT avg(top1)%s AND method = ?1 AND params = ?2", t_run_filter);
        t_close(strtod(r.f[c_t1], NULL), t_sql1(db, sql, s->method, s->params, NULL), "top1");
        if (strcmp(s->method, "dense") != 0) t_close(strtod(r.f[c_rho], NULL), s->rho, "rho column");
        rows++;
    }
    ck_assert_int_eq(rows, (int)T_N_SETTINGS);
    free(csv);
    sqlite3_close(db);
}
END_TEST

START_TEST(test_frontier_pareto_equals_bruteforce) {
    const char *dir = t_report_dir("frontier", 0, 1);
    sqlite3 *db = t_open();
    const char *tasks[] = {"passkey", "qa"};
    for (int t = 0; t < 2; t++) {
        char path[700], sql[1024];
        snprintf(path, sizeof path, "%s/frontier_tiny_%s.csv", dir, tasks[t]);
        char *csv = t_read(path, NULL);
        ck_assert_msg(csv != NULL, "%s missing", path);
        /* points computed here from SQL, in t_settings order */
        double xw[T_N_SETTINGS], xf[T_N_SETTINGS], y[T_N_SETTINGS];
        int fw[T_N_SETTINGS], ff[T_N_SETTINGS], got_w[T_N_SETTINGS], got_f[T_N_SETTINGS],
            seen[T_N_SETTINGS] = {0};
        for (size_t s = 0; s < T_N_SETTINGS; s++) {
            snprintf(sql, sizeof sql, "SELECT avg(score)%s AND method = ?1 AND params = ?2 AND task = ?3",
                     t_run_filter);
            y[s] = t_sql1(db, sql, t_settings[s].method, t_settings[s].params, tasks[t]);
            snprintf(sql, sizeof sql,
                     "SELECT sum(wall_dense_s) / sum(wall_method_s)%s AND method = ?1 AND params = ?2"
                     " AND task = ?3 AND wall_method_s IS NOT NULL",
                     t_run_filter);
            xw[s] = t_sql1(db, sql, t_settings[s].method, t_settings[s].params, tasks[t]);
            snprintf(sql, sizeof sql,
                     "SELECT CAST(sum(flops_dense) AS REAL) / sum(flops_method)%s AND method = ?1"
                     " AND params = ?2 AND task = ?3",
                     t_run_filter);
            xf[s] = t_sql1(db, sql, t_settings[s].method, t_settings[s].params, tasks[t]);
        }
        for (size_t s = 0; s < T_N_SETTINGS; s++) {
            fw[s] = !t_dominated(xw, y, T_N_SETTINGS, s);
            ff[s] = !t_dominated(xf, y, T_N_SETTINGS, s);
        }
        const char *p = csv;
        t_row h, r;
        ck_assert(t_csv_next(&p, &h));
        int c_m = t_col(&h, "method"), c_p = t_col(&h, "params"), c_y = t_col(&h, "score"),
            c_xw = t_col(&h, "wall_speedup"), c_xf = t_col(&h, "flops_speedup"),
            c_fw = t_col(&h, "pareto_wall"), c_ff = t_col(&h, "pareto_flops");
        int n = 0;
        while (t_csv_next(&p, &r)) {
            size_t s = 0;
            while (s < T_N_SETTINGS &&
                   (strcmp(t_settings[s].method, r.f[c_m]) || strcmp(t_settings[s].params, r.f[c_p])))
                s++;
            ck_assert_msg(s < T_N_SETTINGS, "unknown point %s %s", r.f[c_m], r.f[c_p]);
            seen[s]++;
            t_close(strtod(r.f[c_y], NULL), y[s], "frontier score");
            t_close(strtod(r.f[c_xw], NULL), xw[s], "frontier wall speedup");
            t_close(strtod(r.f[c_xf], NULL), xf[s], "frontier flops speedup");
            got_w[s] = atoi(r.f[c_fw]);
            got_f[s] = atoi(r.f[c_ff]);
            n++;
        }
        ck_assert_int_eq(n, (int)T_N_SETTINGS);
        int nfw = 0, nff = 0;
        for (size_t s = 0; s < T_N_SETTINGS; s++) {
            ck_assert_int_eq(seen[s], 1);
            ck_assert_msg(got_w[s] == fw[s], "%s: wall front %d, brute force %d", tasks[t], got_w[s], fw[s]);
            ck_assert_msg(got_f[s] == ff[s], "%s: flops front %d, brute force %d", tasks[t], got_f[s], ff[s]);
            nfw += fw[s];
            nff += ff[s];
        }
        /* the fixture is built so the fronts are proper subsets with more than one point */
        ck_assert_msg(nfw >= 2 && nfw < (int)T_N_SETTINGS, "%s: degenerate wall front (%d)", tasks[t], nfw);
        ck_assert_msg(nff >= 2 && nff < (int)T_N_SETTINGS, "%s: degenerate flops front (%d)", tasks[t], nff);
        free(csv);
        /* the .dat and both scripts are beside it */
        const char *suffix[] = {".dat", "_wall.gp", "_flops.gp"};
        for (int k = 0; k < 3; k++) {
            snprintf(path, sizeof path, "%s/frontier_tiny_%s%s", dir, tasks[t], suffix[k]);
            ck_assert_msg(access(path, R_OK) == 0, "%s missing", path);
        }
    }
    sqlite3_close(db);
}
END_TEST

START_TEST(test_heatmap_and_layers_equal_sql) {
    const char *dir = t_report_dir("heat", 0, 1);
    sqlite3 *db = t_open();
    char path[700], sql[1024];
    /* passkey has length x depth cells; qa has no depth: no heatmap */
    snprintf(path, sizeof path, "%s/heatmap_tiny_passkey_dash-rho-0.5-ls-0.5.dat", dir);
    char *dat = t_read(path, NULL);
    ck_assert_msg(dat != NULL, "%s missing", path);
    snprintf(path, sizeof path, "%s/heatmap_tiny_qa_dense.dat", dir);
    ck_assert(access(path, F_OK) != 0);
    int cells = 0;
    for (char *line = strtok(dat, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        int li, di;
        double len, dep, sc;
        ck_assert(sscanf(line, "%d %d %lf %lf %lf", &li, &di, &len, &dep, &sc) == 5);
        snprintf(sql, sizeof sql,
                 "SELECT avg(score)%s AND method = 'dash' AND params = ?1 AND task = 'passkey'"
                 " AND length = CAST(?2 AS INTEGER) AND depth = CAST(?3 AS INTEGER)",
                 t_run_filter);
        char a[32], b[32];
        snprintf(a, sizeof a, "%g", len);
        snprintf(b, sizeof b, "%g", dep);
        t_close(sc, t_sql1(db, sql, t_settings[2].params, a, b), "heatmap cell");
        cells++;
    }
    ck_assert_int_eq(cells, 6);
    free(dat);
    /* active fraction per layer for dash */
    snprintf(path, sizeof path, "%s/layers_active_tiny_dash.dat", dir);
    dat = t_read(path, NULL);
    ck_assert_msg(dat != NULL, "%s missing", path);
    int block = -1, rows = 0;
    for (char *line = strtok(dat, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strncmp(line, "# index", 7)) {
            block++;
            continue;
        }
        if (line[0] == '#') continue;
        int l;
        double frac;
        ck_assert(sscanf(line, "%d %lf", &l, &frac) == 2);
        ck_assert(block >= 0 && block < 3);
        snprintf(sql, sizeof sql,
                 "SELECT avg(CAST(json_extract(active_tokens, '$[%d]') AS REAL) / context_tokens)%s"
                 " AND method = 'dash' AND params = ?1",
                 l, t_run_filter);
        t_close(frac, t_sql1(db, sql, t_settings[1 + block].params, NULL, NULL), "active fraction");
        rows++;
    }
    ck_assert_int_eq(rows, 3 * T_LAYERS);
    free(dat);
    /* Δ statistics come from the dense samples */
    snprintf(path, sizeof path, "%s/layers_delta_tiny.dat", dir);
    dat = t_read(path, NULL);
    ck_assert_msg(dat != NULL && strstr(dat, "samples of method dense"), "%s missing or wrong source", path);
    for (char *line = strtok(dat, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        int l;
        double mn, q1, med, q3, mx;
        ck_assert(sscanf(line, "%d %lf %lf %lf %lf %lf", &l, &mn, &q1, &med, &q3, &mx) == 6);
        snprintf(sql, sizeof sql,
                 "SELECT min(delta_min) FROM sample_layers sl JOIN samples s ON s.id = sl.sample_row"
                 " JOIN cells c ON c.id = s.cell_id WHERE c.method = 'dense' AND sl.layer = %d",
                 l);
        ck_assert(fabs(mn - t_sql1(db, sql, NULL, NULL, NULL)) < 1e-5 * fabs(mn));
        snprintf(sql, sizeof sql,
                 "SELECT max(delta_max) FROM sample_layers sl JOIN samples s ON s.id = sl.sample_row"
                 " JOIN cells c ON c.id = s.cell_id WHERE c.method = 'dense' AND sl.layer = %d",
                 l);
        ck_assert(fabs(mx - t_sql1(db, sql, NULL, NULL, NULL)) < 1e-5 * fabs(mx));
        ck_assert(mn <= q1 && q1 <= med && med <= q3 && q3 <= mx);
    }
    free(dat);
    sqlite3_close(db);
}
END_TEST

START_TEST(test_report_deterministic_for_seed) {
    const char *a = t_report_dir("det_a", 0, 5);
    char pa[700], pb[700], pc[700];
    snprintf(pa, sizeof pa, "%s/table_main.csv", a);
    const char *b = t_report_dir("det_b", 0, 5);
    snprintf(pb, sizeof pb, "%s/table_main.csv", b);
    const char *c = t_report_dir("det_c", 0, 6);
    snprintf(pc, sizeof pc, "%s/table_main.csv", c);
    size_t la, lb, lc;
    char *ta = t_read(pa, &la), *tb = t_read(pb, &lb), *tc = t_read(pc, &lc);
    ck_assert(ta && tb && tc);
    ck_assert_msg(la == lb && memcmp(ta, tb, la) == 0, "same seed, different tables");
    ck_assert_msg(la != lc || memcmp(ta, tc, la) != 0, "another seed gave identical CIs");
    free(ta);
    free(tb);
    free(tc);
}
END_TEST

/* ---- CLI: gnuplot present / absent, errors ---- */

static int t_png_ok(const char *path) {
    size_t n;
    char *b = t_read(path, &n);
    int ok = b && n > 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8);
    free(b);
    return ok;
}

static int t_count(const char *dir, const char *suffix, int dotfiles) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    size_t ls = strlen(suffix);
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (dotfiles) {
            if (de->d_name[0] == '.' && strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
            continue;
        }
        if (l >= ls && !strcmp(de->d_name + l - ls, suffix)) n++;
    }
    closedir(d);
    return n;
}

static int t_have_gnuplot(void) { return dk_test_run("command -v gnuplot >/dev/null", 0, NULL) == 0; }

START_TEST(test_cli_report_with_gnuplot) {
    if (!t_have_gnuplot()) {
        printf("SKIP: gnuplot not installed\n");
        return;
    }
    t_build_store();
    char cmd[2048], dir[600], path[800];
    dk_test_tmp_path(dir, sizeof dir, "cli_gp");
    snprintf(cmd, sizeof cmd, "%s report --db %s --out %s --boot 200", dk_test_cli(), t_db, dir);
    char *out = NULL;
    int rc = dk_test_run(cmd, 1, &out);
    ck_assert_msg(rc == 0, "rc %d: %s", rc, out);
    ck_assert_msg(strstr(out, "run: 1\n") && strstr(out, "figures: ") && strstr(out, " drawn, 0 failed"),
                  "%s", out);
    free(out);
    const char *pngs[] = {"frontier_tiny_passkey_wall.png", "frontier_tiny_passkey_flops.png",
                          "frontier_tiny_qa_wall.png",      "heatmap_tiny_passkey_dense.png",
                          "layers_active_tiny_dash.png",    "layers_delta_tiny.png"};
    for (size_t i = 0; i < sizeof pngs / sizeof pngs[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, pngs[i]);
        ck_assert_msg(t_png_ok(path), "%s is not a PNG", path);
    }
    /* every script drew a PNG and an SVG; no temporary file is left */
    int ngp = t_count(dir, ".gp", 0);
    ck_assert_int_gt(ngp, 10);
    ck_assert_int_eq(t_count(dir, ".png", 0), ngp);
    ck_assert_int_eq(t_count(dir, ".svg", 0), ngp);
    ck_assert_int_eq(t_count(dir, "", 1), 0);
    snprintf(path, sizeof path, "%s/frontier_tiny_passkey_wall.svg", dir);
    char *svg = t_read(path, NULL);
    ck_assert(svg && strstr(svg, "<svg"));
    free(svg);
    snprintf(path, sizeof path, "%s/report.md", dir);
    char *md = t_read(path, NULL);
    ck_assert(md && strstr(md, "| git revision | deadbeef |") && strstr(md, "| BLAS core | SkylakeX |") &&
              strstr(md, "| CPU | Test CPU |") && strstr(md, "| threads | 2 |") &&
              strstr(md, "![passkey frontier, measured speedup](frontier_tiny_passkey_wall.png)"));
    free(md);

    /* one figure with plot */
    snprintf(cmd, sizeof cmd,
             "%s plot --db %s --kind frontier --task qa --x flops --out %s/one/f.png --boot 100",
             dk_test_cli(), t_db, dk_test_tmpdir());
    rc = dk_test_run(cmd, 1, &out);
    ck_assert_msg(rc == 0, "rc %d: %s", rc, out);
    free(out);
    dk_test_tmp_path(path, sizeof path, "one/f.png");
    ck_assert(t_png_ok(path));
    dk_test_tmp_path(path, sizeof path, "one/f.gp");
    char *gp = t_read(path, NULL);
    ck_assert(gp && strstr(gp, "FLOP speedup") && strstr(gp, "dat = \"f.dat\""));
    free(gp);
    snprintf(
        cmd, sizeof cmd,
        "%s plot --db %s --kind heatmap --task passkey --method 'dash rho=0.8 ls=0.5' --out %s/one/h.svg",
        dk_test_cli(), t_db, dk_test_tmpdir());
    rc = dk_test_run(cmd, 1, &out);
    ck_assert_msg(rc == 0, "rc %d: %s", rc, out);
    free(out);
    dk_test_tmp_path(path, sizeof path, "one/h.svg");
    svg = t_read(path, NULL);
    ck_assert(svg && strstr(svg, "<svg"));
    free(svg);
}
END_TEST

START_TEST(test_cli_report_without_gnuplot) {
    t_build_store();
    char cmd[2048], dir[600], path[800];
    char *out = NULL;
    /* PATH emptied of gnuplot */
    dk_test_tmp_path(dir, sizeof dir, "cli_nogp");
    snprintf(cmd, sizeof cmd, "env -u DK_GNUPLOT PATH=/nonexistent %s report --db %s --out %s --boot 50",
             dk_test_cli(), t_db, dir);
    int rc = dk_test_run(cmd, 1, &out);
    ck_assert_msg(rc == 0, "rc %d: %s", rc, out);
    ck_assert_msg(strstr(out, "gnuplot not found on PATH") && strstr(out, "0 drawn (gnuplot missing)"), "%s",
                  out);
    free(out);
    ck_assert_int_eq(t_count(dir, ".png", 0), 0);
    ck_assert_int_gt(t_count(dir, ".gp", 0), 10);
    ck_assert_int_eq(t_count(dir, ".dat", 0),
                     t_count(dir, ".gp", 0) - 2); /* frontier: one .dat, two scripts per task */
    const char *files[] = {"report.md",         "table_main.md",      "table_main.tex",
                           "table_ablation.md", "table_ablation.tex", "frontier_tiny_passkey.csv"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        ck_assert_msg(access(path, R_OK) == 0, "%s missing", path);
    }
    snprintf(path, sizeof path, "%s/report.md", dir);
    char *md = t_read(path, NULL);
    ck_assert(md && strstr(md, "figures not drawn: gnuplot not found on PATH"));
    free(md);
    /* DK_GNUPLOT pointing nowhere */
    snprintf(cmd, sizeof cmd, "DK_GNUPLOT=/nonexistent/gnuplot %s report --db %s --out %s/cli_nogp2 --boot 0",
             dk_test_cli(), t_db, dk_test_tmpdir());
    rc = dk_test_run(cmd, 1, &out);
    ck_assert_msg(rc == 0 && strstr(out, "DK_GNUPLOT='/nonexistent/gnuplot' is not an executable"),
                  "rc %d: %s", rc, out);
    free(out);
    /* plot: the image was the point, so exit 1, but data and script are written */
    snprintf(cmd, sizeof cmd, "DK_GNUPLOT= %s plot --db %s --task qa --out %s/nogp/q.png", dk_test_cli(),
             t_db, dk_test_tmpdir());
    rc = dk_test_run(cmd, 1, &out);
    ck_assert_msg(rc == 1 && strstr(out, "not drawn"), "rc %d: %s", rc, out);
    free(out);
    dk_test_tmp_path(path, sizeof path, "nogp/q.dat");
    ck_assert(access(path, R_OK) == 0);
    dk_test_tmp_path(path, sizeof path, "nogp/q.gp");
    ck_assert(access(path, R_OK) == 0);
    dk_test_tmp_path(path, sizeof path, "nogp/q.png");
    ck_assert(access(path, F_OK) != 0);
}
END_TEST

static void t_expect(const char *args, int want_rc, const char *want_msg, const char *no_dir) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s", dk_test_cli(), args);
    char *out = NULL;
    int rc = dk_test_run(cmd, 1, &out);
    ck_assert_msg(rc == want_rc, "%s: rc %d (want %d): %s", args, rc, want_rc, out);
    ck_assert_msg(strstr(out, want_msg), "%s: output lacks '%s': %s", args, want_msg, out);
    int lines = 0;
    for (char *p = out; *p; p++) lines += *p == '\n';
    ck_assert_msg(lines == 1, "%s: want one error line, got: %s", args, out);
    free(out);
    if (no_dir) ck_assert_msg(access(no_dir, F_OK) != 0, "%s: %s was created", args, no_dir);
}

START_TEST(test_cli_errors) {
    t_build_store();
    char args[2048], dir[600];
    dk_test_tmp_path(dir, sizeof dir, "err_out");
    snprintf(args, sizeof args, "report --db %s/missing.db --out %s", dk_test_tmpdir(), dir);
    t_expect(args, 1, "missing.db: no such store", dir);
    snprintf(args, sizeof args, "report --db %s --run 99 --out %s", t_db, dir);
    t_expect(args, 2, "run 99: no such run in the store (runs 1..1)", dir);
    snprintf(args, sizeof args, "report --db %s --run abc --out %s", t_db, dir);
    t_expect(args, 2, "--run 'abc' is not an integer >= 1", dir);
    snprintf(args, sizeof args, "report --db %s --level 2 --out %s", t_db, dir);
    t_expect(args, 2, "--level '2' is not a number in (0,1)", dir);
    snprintf(args, sizeof args, "report --db %s --bogus", t_db);
    t_expect(args, 2, "unknown argument '--bogus'", NULL);
    snprintf(args, sizeof args, "plot --db %s --out %s/p.png", t_db, dir);
    t_expect(args, 2, "--task is required: run 1 has tasks passkey, qa", dir);
    snprintf(args, sizeof args, "plot --db %s --task nope --out %s/p.png", t_db, dir);
    t_expect(args, 2, "--task 'nope': no such task in run 1", dir);
    snprintf(args, sizeof args, "plot --db %s --kind heatmap --task qa --out %s/p.png", t_db, dir);
    t_expect(args, 2, "--task 'qa': its cells have no \"depth\" option", dir);
    snprintf(args, sizeof args, "plot --db %s --kind heatmap --task passkey --method dash --out %s/p.png",
             t_db, dir);
    t_expect(args, 2, "--method: 3 settings match dash", dir);
    snprintf(args, sizeof args, "plot --db %s --kind pie --out %s/p.png", t_db, dir);
    t_expect(args, 2, "--kind 'pie': expected frontier, heatmap, layers or delta", dir);
    snprintf(args, sizeof args, "plot --db %s --task qa --out %s/p.jpg", t_db, dir);
    t_expect(args, 2, "the file name must end in .png or .svg", dir);
    snprintf(args, sizeof args, "plot --db %s --task qa --x time --out %s/p.png", t_db, dir);
    t_expect(args, 2, "--x 'time': expected wall or flops", dir);
}
END_TEST

/* A run without dense cells: the reference point comes from dense_results at speedup 1. */
START_TEST(test_dense_reference_from_shared_results) {
    char db[600];
    dk_test_tmp_path(db, sizeof db, "nodense.db");
    dk_err e = {{0}};
    dk_store *s = NULL;
    ck_assert_msg(dk_store_open(db, DK_STORE_OPEN_CREATE, &s, &e) == DK_OK, "%s", e.msg);
    dk_run_info ri = {.name = "nd",
                      .config_path = "nd.json",
                      .config_text = "{}",
                      .config_hash = "h",
                      .threads = 1,
                      .workers = 1,
                      .n_cells = 1};
    int64_t run, model;
    ck_assert(dk_store_run_begin(s, &ri, &run, &e) == DK_OK);
    char sha[65];
    memset(sha, 'b', 64);
    sha[64] = 0;
    dk_model_info mi = {.sha256 = sha,
                        .path = "m.gguf",
                        .n_layer = 2,
                        .n_embd = -1,
                        .n_head = -1,
                        .n_head_kv = -1,
                        .n_ff = -1,
                        .n_vocab = -1,
                        .n_ctx = -1,
                        .n_params = -1,
                        .file_bytes = -1};
    ck_assert(dk_store_model_put(s, &mi, &model, &e) == DK_OK);
    dk_cell_spec cs = {
        "k1", "{\"c\":1}", "qa", "{\"length\":100}", "tkq", "dash", "{\"ls\":0.5,\"rho\":0.5}", model, 3, 0};
    int64_t cid;
    ck_assert(dk_store_cells_add(s, run, &cs, 1, 0, &cid, NULL, &e) == DK_OK);
    double dense_scores[3] = {100, 50, 0}, method_scores[3] = {0, 50, 0};
    for (int j = 0; j < 3; j++) {
        dk_dense_row dr = {.model_sha256 = sha,
                           .task_key = "tkq",
                           .sample_id = j,
                           .task = "qa",
                           .task_options = "{}",
                           .prompt_tokens = 10,
                           .flops = 100,
                           .wall_s = 1,
                           .prediction = "x",
                           .score = dense_scores[j]};
        ck_assert_msg(dk_store_dense_put(s, &dr, NULL, &e) == DK_OK, "%s", e.msg);
    }
    dk_worker w;
    dk_store_worker_self(&w);
    int64_t got;
    ck_assert(dk_store_cell_claim(s, run, &w, 600, &got, NULL, &e) == DK_OK && got == cid);
    for (int j = 0; j < 3; j++) {
        int64_t act[2] = {10, 5};
        dk_sample_row row = {.cell_id = cid,
                             .sample_id = j,
                             .prompt_tokens = 12,
                             .context_tokens = 10,
                             .question_tokens = 2,
                             .n_layer = 2,
                             .active = act,
                             .flops_dense = 100,
                             .flops_method = 60,
                             .wall_dense_s = 1,
                             .wall_method_s = 0.5,
                             .wall_decode_s = NAN,
                             .score = method_scores[j],
                             .kl = NAN,
                             .kl_max = NAN,
                             .top1 = NAN,
                             .kl_first = NAN,
                             .top1_first = -1,
                             .nll_dense = NAN,
                             .nll_method = NAN};
        ck_assert_msg(dk_store_sample_put(s, &w, 600, &row, &e) == DK_OK, "%s", e.msg);
    }
    ck_assert(dk_store_cell_finish(s, cid, &w, &e) == DK_OK);
    dk_store_close(s);
    ck_assert(dk_store_open(db, DK_STORE_OPEN_READONLY, &s, &e) == DK_OK);
    dk_report_opts o;
    dk_report_opts_default(&o);
    o.draw = 0;
    o.n_boot = 50;
    dk_report_result r;
    char dir[700], path[800];
    dk_test_tmp_path(dir, sizeof dir, "nodense");
    ck_assert_msg(dk_report_write(s, dir, &o, &r, &e) == DK_OK, "%s", e.msg);
    dk_store_close(s);
    snprintf(path, sizeof path, "%s/frontier_m_qa.csv", dir);
    char *csv = t_read(path, NULL);
    ck_assert(csv);
    /* dense (shared dense results): score 50 at speedup 1, on the front; dash: 16.67 at 2x, on the front */
    ck_assert_msg(strstr(csv, "m,qa,dense,dense (shared dense results),{},3,50,"), "%s", csv);
    ck_assert_msg(strstr(csv, ",1,NaN,NaN,1,NaN,NaN,1,1\n") || strstr(csv, ",1,nan,nan,1,nan,nan,1,1\n"),
                  "%s", csv);
    ck_assert_msg(
        strstr(csv,
               "m,qa,dash,dash rho=0.5 ls=0.5,\"{\"\"ls\"\":0.5,\"\"rho\"\":0.5}\",3,16.666666666666668,"),
        "%s", csv);
    free(csv);
    /* no Δ statistics and no depth option: said in report.md */
    snprintf(path, sizeof path, "%s/report.md", dir);
    char *md = t_read(path, NULL);
    ck_assert(md && strstr(md, "no NIAH heatmap for m") && strstr(md, "no Δ-per-layer figure for m"));
    free(md);
}
END_TEST

/* ---- paired comparisons and the generated Findings ----
 * A small store: dense, dash rho 0.5, random rho 0.3 / 0.7 (ls 0.5), 2 contexts x 4 samples at
 * each of 3 depths (samples of one depth share their context). variant 0: dash keeps dense's
 * answers; variant 1: dash loses them all. */
static void t_findings_store(const char *db, int variant) {
    dk_err e = {{0}};
    dk_store *s = NULL;
    unlink(db);
    ck_assert_msg(dk_store_open(db, DK_STORE_OPEN_CREATE, &s, &e) == DK_OK, "%s", e.msg);
    dk_run_info ri = {.name = "f",
                      .config_path = "f.json",
                      .config_text = "{}",
                      .config_hash = "h",
                      .threads = 1,
                      .workers = 1,
                      .n_cells = 12};
    int64_t run, model;
    ck_assert(dk_store_run_begin(s, &ri, &run, &e) == DK_OK);
    char sha[65];
    memset(sha, 'c', 64);
    sha[64] = 0;
    dk_model_info mi = {.sha256 = sha,
                        .path = "m.gguf",
                        .n_layer = 2,
                        .n_embd = -1,
                        .n_head = -1,
                        .n_head_kv = -1,
                        .n_ff = -1,
                        .n_vocab = -1,
                        .n_ctx = -1,
                        .n_params = -1,
                        .file_bytes = -1};
    ck_assert(dk_store_model_put(s, &mi, &model, &e) == DK_OK);
    static const char *methods[4] = {"dense", "dash", "random", "random"};
    static const char *params[4] = {"{}", "{\"ls\":0.5,\"rho\":0.5}", "{\"ls\":0.5,\"rho\":0.3,\"seed\":1}",
                                    "{\"ls\":0.5,\"rho\":0.7,\"seed\":1}"};
    static const double fm[4] = {100, 60, 80, 40}; /* FLOPs: speedups 1, 1.67, 1.25, 2.5 */
    dk_cell_spec cs[12];
    char keys[12][16], ids[12][32], opts[3][48], tks[3][16];
    for (int d = 0; d < 3; d++) {
        snprintf(opts[d], sizeof opts[d], "{\"depth\":%d,\"length\":100}", 25 * (d + 1));
        snprintf(tks[d], sizeof tks[d], "tk%d", d);
        for (int m = 0; m < 4; m++) {
            int i = d * 4 + m;
            snprintf(keys[i], sizeof keys[i], "k%d", i);
            snprintf(ids[i], sizeof ids[i], "{\"c\":%d}", i);
            cs[i] = (dk_cell_spec){keys[i],    ids[i],    "passkey", opts[d], tks[d],
                                   methods[m], params[m], model,     8,       0};
        }
    }
    int64_t cid[12];
    ck_assert(dk_store_cells_add(s, run, cs, 12, 0, cid, NULL, &e) == DK_OK);
    dk_worker w;
    dk_store_worker_self(&w);
    for (;;) {
        int64_t got = 0;
        ck_assert(dk_store_cell_claim(s, run, &w, 600, &got, NULL, &e) == DK_OK);
        if (!got) break;
        int i = 0;
        while (cid[i] != got) i++;
        int d = i / 4, m = i % 4;
        for (int j = 0; j < 8; j++) {
            int ctx = j / 4;                        /* two contexts per depth */
            double dense = (d + ctx) % 3 ? 100 : 0; /* dense misses some contexts */
            double sc = m == 0 ? dense : m == 1 ? (variant ? 0 : dense) : m == 2 ? dense * (j % 2) : 0;
            char key[32];
            snprintf(key, sizeof key, "passkey/noise/100/%d/%d", 25 * (d + 1), ctx);
            int64_t act[2] = {10, 5};
            dk_sample_row row = {.cell_id = got,
                                 .sample_id = j,
                                 .prompt_tokens = 12,
                                 .context_tokens = 10,
                                 .question_tokens = 2,
                                 .n_layer = 2,
                                 .active = act,
                                 .flops_dense = 100,
                                 .flops_method = (int64_t)fm[m],
                                 .wall_dense_s = 1,
                                 .wall_method_s = fm[m] / 100,
                                 .wall_decode_s = NAN,
                                 .score = sc,
                                 .kl = m ? (100 - sc) / 50 + 0.01 * j : 0,
                                 .kl_max = NAN,
                                 .top1 = NAN,
                                 .kl_first = NAN,
                                 .top1_first = -1,
                                 .nll_dense = NAN,
                                 .nll_method = NAN,
                                 .context_key = key};
            ck_assert_msg(dk_store_sample_put(s, &w, 600, &row, &e) == DK_OK, "%s", e.msg);
        }
        ck_assert(dk_store_cell_finish(s, got, &w, &e) == DK_OK);
    }
    dk_store_close(s);
}

static char *t_findings_report(int variant, char **md_out) {
    char db[600], dir[700], path[800];
    snprintf(db, sizeof db, "%s/findings%d.db", dk_test_tmpdir(), variant);
    t_findings_store(db, variant);
    dk_err e = {{0}};
    dk_store *s = NULL;
    ck_assert(dk_store_open(db, DK_STORE_OPEN_READONLY, &s, &e) == DK_OK);
    dk_report_opts o;
    dk_report_opts_default(&o);
    o.draw = 0;
    o.n_boot = 500;
    dk_report_result r;
    snprintf(dir, sizeof dir, "%s/findings%d", dk_test_tmpdir(), variant);
    ck_assert_msg(dk_report_write(s, dir, &o, &r, &e) == DK_OK, "%s", e.msg);
    dk_store_close(s);
    snprintf(path, sizeof path, "%s/report.md", dir);
    char *md = t_read(path, NULL);
    ck_assert(md);
    char *f = strstr(md, "\n## Findings\n");
    ck_assert_msg(f, "%s", md);
    char *para = strstr(f, "\n**m.**");
    ck_assert_msg(para, "%s", f);
    char *end = strchr(para + 1, '\n');
    char *out = strndup(para + 1, end ? (size_t)(end - para - 1) : strlen(para + 1));
    *md_out = md;
    return out;
}

START_TEST(test_findings_from_numbers) {
    char *md0, *md1;
    char *f0 = t_findings_report(0, &md0), *f1 = t_findings_report(1, &md1);
    printf("findings 0: %s\nfindings 1: %s\n", f0, f1);
    ck_assert_str_ne(f0, f1);
    /* variant 0: dash matches dense exactly (difference 0, p = 1) and leads random at matched FLOPs */
    ck_assert_msg(strstr(f0, "Indistinguishable from dense") && strstr(f0, "dash rho=0.5 ls=0.5 at 1.67×"),
                  "%s", f0);
    ck_assert_msg(
        strstr(md0, "| dash rho=0.5 ls=0.5 | dense | vs dense | 1.67× | 24 | +0.00 | [+0.00, +0.00] | 1 |"),
        "%s", md0);
    ck_assert_msg(strstr(f0, "DASH leads in 1 of 1 comparisons"), "%s", f0);
    /* variant 1: dash falls below dense and trails nothing it beat before */
    ck_assert_msg(strstr(f1, "Below dense: 3") && !strstr(f1, "DASH leads in 1 of 1"), "%s", f1);
    /* the method paragraph says contexts were resampled: all 96 rows share one with another */
    ck_assert_msg(strstr(md0, "96 of 96 sample rows"), "%s", md0);
    /* matched FLOPs: random interpolated between rho 0.3 (1.25x) and 0.7 (2.5x) at dash's 1.67x */
    ck_assert_msg(
        strstr(md0, "| dash rho=0.5 ls=0.5 | random ls=0.5 seed=1 (interpolated) | matched | 1.67× | 24 |"),
        "%s", md0);
    free(f0);
    free(f1);
    free(md0);
    free(md1);
}
END_TEST

static Suite *report_suite(void) {
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("report");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_pareto_random_vs_bruteforce);
    tcase_add_test(tc, test_bootstrap_deterministic_and_sane);
    tcase_add_test(tc, test_table_main_equals_sql);
    tcase_add_test(tc, test_frontier_pareto_equals_bruteforce);
    tcase_add_test(tc, test_heatmap_and_layers_equal_sql);
    tcase_add_test(tc, test_report_deterministic_for_seed);
    tcase_add_test(tc, test_cli_report_with_gnuplot);
    tcase_add_test(tc, test_cli_report_without_gnuplot);
    tcase_add_test(tc, test_cli_errors);
    tcase_add_test(tc, test_dense_reference_from_shared_results);
    tcase_add_test(tc, test_findings_from_numbers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return dk_test_main(report_suite()); }
