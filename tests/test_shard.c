/* test_shard.c — `run --shard I/N` and `run --dry-run` (eval/sweep/shard.h): the shard of a cell is a
 * pure function of its identity (stable when the config grows or is reordered), every cell is in
 * exactly one shard for N = 1..8, rho-siblings share a shard, bad --shard values are usage
 * errors; a shard run registers only its cells, in config order, and records "I/N".
 * `dashkit merge`: shards united == the one-machine run (every sample, layer and dense row but wall
 * times), idempotent, a conflicting shard refused naming the cell with OUT untouched, a partial
 * shard merged and finished by `run`, bad inputs (missing, corrupt, truncated, other config, OUT
 * itself) one line, exit 1, nothing written. `dashkit slurm`: its array and merge scripts, run by
 * bash as Slurm would run them, give the one-machine results; --dry-run's plan; usage errors;
 * `dashkit status DIR`. The real cluster is tests/slow_slurm.sh (make check-slow). */
#include "config.h"
#include "runner.h"
#include "shard.h"
#include "support/dk_test.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DK_MODEL "tests/data/ref_llama_f32.gguf" /* 3 layers, n_ctx 256 */
#define DK_MODEL2 "tests/data/ref_qwen2_f32.gguf"

/* 2 models x 2 lengths x (dense + dash x 3 rho + fastv) = 20 cells */
static const char *k_cfg = "{\"name\":\"sh\",\"models\":[\"" DK_MODEL "\",\"" DK_MODEL2 "\"],\n"
                           " \"tasks\":[{\"name\":\"passkey\",\"lengths\":[200,230]}],\n"
                           " \"methods\":[{\"name\":\"dense\"},{\"name\":\"dash\",\"rho\":[0.3,0.5,0.8],"
                           "\"ls\":0.34},{\"name\":\"fastv\",\"rho\":0.5}],\n"
                           " \"samples\":2,\"seed\":5,\"threads\":1}\n";
/* the same grown and reordered: a third length, a rho more, a method more, methods and models swapped */
static const char *k_cfg_grown =
    "{\"name\":\"sh2\",\"models\":[\"" DK_MODEL2 "\",\"" DK_MODEL "\"],\n"
    " \"tasks\":[{\"name\":\"passkey\",\"lengths\":[240,230,200]}],\n"
    " \"methods\":[{\"name\":\"fastv\",\"rho\":0.5},{\"name\":\"random\",\"rho\":0.5,\"ls\":0.34},\n"
    "              {\"name\":\"dash\",\"rho\":[0.8,0.667,0.5,0.3],\"ls\":0.34},{\"name\":\"dense\"}],\n"
    " \"samples\":2,\"seed\":5,\"threads\":1}\n";

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static int run_cli(const char *args, char **out) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s", dk_test_cli(), args);
    return dk_test_run(cmd, 1, out);
}

/* sibling key: model index + the cell without rho */
static void sibling_key(const dk_config *cfg, size_t i, char *buf, size_t n) {
    char g[1024];
    dk_runner_prefix_group(cfg, &cfg->cells[i], g, sizeof g);
    snprintf(buf, n, "%zu|%s", cfg->cells[i].model, g);
}

/* ---- the partition as a function (fake model digests: identity only) ---- */

typedef struct {
    char key[65];
    int shard[9];
    char sib[1100];
} cell_shards;

static cell_shards *shards_of(const char *text, size_t *n_out) {
    dk_err e = {{0}};
    dk_config *cfg = NULL;
    ck_assert_msg(dk_config_parse(text, strlen(text), "t.json", NULL, &cfg, &e) == DK_OK, "%s", e.msg);
    cell_shards *cs = calloc(cfg->n_cells, sizeof *cs);
    for (size_t i = 0; i < cfg->n_cells; i++) {
        char sha[65];
        dk_sha256_hex(cfg->models[cfg->cells[i].model], strlen(cfg->models[cfg->cells[i].model]), sha);
        dk_config_identity id;
        ck_assert(dk_config_cell_identity(cfg, &cfg->cells[i], sha, &id, &e) == DK_OK);
        char group[65];
        ck_assert(dk_shard_group_key(id.json, group, &e) == DK_OK);
        memcpy(cs[i].key, id.key, 65);
        for (int n = 1; n <= 8; n++) cs[i].shard[n] = dk_shard_of_group(group, n);
        sibling_key(cfg, i, cs[i].sib, sizeof cs[i].sib);
        dk_config_identity_free(&id);
    }
    *n_out = cfg->n_cells;
    dk_config_free(cfg);
    return cs;
}

START_TEST(test_pure_and_stable) {
    size_t na, nb;
    cell_shards *a = shards_of(k_cfg, &na), *b = shards_of(k_cfg_grown, &nb);
    ck_assert_int_eq(na, 20);
    ck_assert_int_eq(nb, 2 * 3 * 7);
    size_t found = 0;
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++) {
            if (strcmp(a[i].key, b[j].key)) continue;
            found++;
            for (int n = 1; n <= 8; n++) ck_assert_int_eq(a[i].shard[n], b[j].shard[n]);
        }
    ck_assert_int_eq(found, na); /* every original cell is in the grown config, in the same shard */
    /* siblings (differing only in rho) together; and more than one shard used for N = 4 */
    int used[9] = {0};
    for (size_t i = 0; i < nb; i++) {
        used[b[i].shard[4]] = 1;
        for (size_t j = 0; j < nb; j++)
            if (!strcmp(b[i].sib, b[j].sib))
                for (int n = 1; n <= 8; n++) ck_assert_int_eq(b[i].shard[n], b[j].shard[n]);
    }
    ck_assert_int_ge(used[1] + used[2] + used[3] + used[4], 3);
    /* dash's 4 rho values form one group; random (same ls, rho) is another method: not a sibling */
    free(a);
    free(b);
}
END_TEST

START_TEST(test_parse) {
    int i, n;
    dk_err e = {{0}};
    ck_assert(dk_shard_parse("3/8", &i, &n, &e) == DK_OK && i == 3 && n == 8);
    ck_assert(dk_shard_parse("1/1", &i, &n, &e) == DK_OK && i == 1 && n == 1);
    const char *bad[] = {"5/4",  "0/0",  "0/4",  "4",    "/4",   "4/",     "a/4",
                         "1/4x", "-1/4", "1/-4", "+1/4", " 1/4", "1/5000", ""};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ck_assert_msg(dk_shard_parse(bad[k], &i, &n, &e) == DK_ERR_ARG, "%s accepted", bad[k]);
        ck_assert_msg(strstr(e.msg, "--shard '") != NULL, "%s", e.msg);
    }
}
END_TEST

/* ---- through the CLI: --dry-run covers each cell once ---- */

/* rows of a dry-run listing: ord, key prefix, shard column */
typedef struct {
    long ord;
    char key[13];
    char shard[16];
} dry_row;

static size_t parse_dry(const char *out, dry_row *rows, size_t max, long *cells) {
    *cells = -1;
    const char *c = strstr(out, "cells: ");
    if (c) *cells = strtol(c + 7, NULL, 10);
    size_t n = 0;
    const char *line = strstr(out, "  ord  key");
    ck_assert_ptr_nonnull(line);
    line = strchr(line, '\n');
    while (line && line[1] && n < max) {
        line++;
        dry_row r;
        if (sscanf(line, "%ld %12s %15s", &r.ord, r.key, r.shard) == 3) rows[n++] = r;
        line = strchr(line, '\n');
    }
    return n;
}

START_TEST(test_dry_run_cover_once) {
    char cfgp[512], args[1200];
    dk_test_tmp_path(cfgp, sizeof cfgp, "cover.json");
    write_text(cfgp, k_cfg);
    dk_err e = {{0}};
    dk_config *cfg = NULL;
    ck_assert(dk_config_load(cfgp, NULL, &cfg, &e) == DK_OK);
    char *out = NULL;
    dry_row all[64], rows[64];
    long cells;
    snprintf(args, sizeof args, "run %s --dry-run", cfgp);
    ck_assert_int_eq(run_cli(args, &out), 0);
    ck_assert_int_eq(parse_dry(out, all, 64, &cells), 20);
    ck_assert_int_eq(cells, 20);
    free(out);
    for (int n = 1; n <= 8; n++) {
        int seen[20] = {0}, shard_of[20];
        for (int i = 1; i <= n; i++) {
            snprintf(args, sizeof args, "run %s --shard %d/%d --dry-run", cfgp, i, n);
            ck_assert_int_eq(run_cli(args, &out), 0);
            size_t k = parse_dry(out, rows, 64, &cells);
            ck_assert_int_eq((long)k, cells);
            char want[16];
            snprintf(want, sizeof want, "%d/%d", i, n);
            for (size_t r = 0; r < k; r++) {
                ck_assert(rows[r].ord >= 0 && rows[r].ord < 20);
                ck_assert_str_eq(rows[r].shard, want);
                ck_assert_str_eq(rows[r].key, all[rows[r].ord].key);
                seen[rows[r].ord]++;
                shard_of[rows[r].ord] = i;
            }
            free(out);
        }
        for (int c = 0; c < 20; c++) ck_assert_msg(seen[c] == 1, "N=%d: cell %d in %d shards", n, c, seen[c]);
        for (int c = 0; c < 20; c++)
            for (int d = 0; d < 20; d++) {
                char a[1100], b[1100];
                sibling_key(cfg, (size_t)c, a, sizeof a);
                sibling_key(cfg, (size_t)d, b, sizeof b);
                if (!strcmp(a, b)) ck_assert_int_eq(shard_of[c], shard_of[d]);
            }
    }
    dk_config_free(cfg);
}
END_TEST

START_TEST(test_bad_shard_usage) {
    char cfgp[512], db[512], args[1400];
    dk_test_tmp_path(cfgp, sizeof cfgp, "bad.json");
    dk_test_tmp_path(db, sizeof db, "bad-shard.db");
    write_text(cfgp, k_cfg);
    const char *bad[] = {"5/4", "0/0", "x"};
    for (size_t k = 0; k < 3; k++) {
        char *out = NULL;
        snprintf(args, sizeof args, "run %s --shard %s --db %s", cfgp, bad[k], db);
        ck_assert_int_eq(run_cli(args, &out), 2);
        ck_assert_msg(strstr(out, "dashkit run: --shard '") && !strchr(strchr(out, '\n') + 1, '\n'), "%s",
                      out);
        free(out);
        struct stat st;
        ck_assert_int_ne(stat(db, &st), 0);
    }
}
END_TEST

/* ---- a shard run ---- */

START_TEST(test_shard_run_registers_its_cells) {
    char cfgp[512], db[512], args[1400];
    dk_test_tmp_path(cfgp, sizeof cfgp, "one.json");
    dk_test_tmp_path(db, sizeof db, "one-shard.db");
    write_text(cfgp, "{\"name\":\"one\",\"models\":[\"" DK_MODEL
                     "\"],\"tasks\":[{\"name\":\"passkey\",\"lengths\":[200,230]}],"
                     "\"methods\":[{\"name\":\"dense\"},{\"name\":\"dash\",\"rho\":[0.3,0.5],\"ls\":0.34},{"
                     "\"name\":\"fastv\",\"rho\":0.5}],"
                     "\"samples\":1,\"seed\":5,\"threads\":1}");
    char *out = NULL;
    dry_row rows[64];
    long cells;
    /* the first shard of 3 that has cells */
    int shard = 0;
    size_t k = 0;
    for (int i = 1; i <= 3 && !k; i++) {
        snprintf(args, sizeof args, "run %s --shard %d/3 --dry-run", cfgp, i);
        ck_assert_int_eq(run_cli(args, &out), 0);
        k = parse_dry(out, rows, 64, &cells);
        shard = i;
        free(out);
    }
    ck_assert_uint_gt(k, 0);
    snprintf(args, sizeof args, "run %s --shard %d/3 --db %s --threads 1 --quiet", cfgp, shard, db);
    ck_assert_msg(run_cli(args, &out) == 0, "%s", out);
    char want[32];
    snprintf(want, sizeof want, "shard: %d/3\n", shard);
    ck_assert_msg(strstr(out, want), "%s", out);
    free(out);
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q = NULL;
    ck_assert_int_eq(
        sqlite3_prepare_v2(
            h,
            "SELECT r.shard, r.n_cells, substr(c.key, 1, 12), rc.ord, c.state FROM runs r"
            " JOIN run_cells rc ON rc.run_id = r.id JOIN cells c ON c.id = rc.cell_id ORDER BY rc.ord",
            -1, &q, NULL),
        SQLITE_OK);
    size_t n = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        ck_assert_uint_lt(n, k);
        snprintf(want, sizeof want, "%d/3", shard);
        ck_assert_str_eq((const char *)sqlite3_column_text(q, 0), want);
        ck_assert_int_eq(sqlite3_column_int(q, 1), 8); /* the whole config's cells */
        ck_assert_str_eq((const char *)sqlite3_column_text(q, 2), rows[n].key);
        ck_assert_int_eq(sqlite3_column_int(q, 3), rows[n].ord);
        ck_assert_str_eq((const char *)sqlite3_column_text(q, 4), "done");
        n++;
    }
    ck_assert_uint_eq(n, k);
    sqlite3_finalize(q);
    sqlite3_close(h);
}
END_TEST

/* ---- merge ---- */

static const char *k_cfg_merge = "{\"name\":\"mg\",\"models\":[\"" DK_MODEL
                                 "\"],\"tasks\":[{\"name\":\"passkey\",\"lengths\":[200,230]}],"
                                 "\"methods\":[{\"name\":\"dense\"},{\"name\":\"dash\",\"rho\":[0.3,0.5],"
                                 "\"ls\":0.34},{\"name\":\"fastv\",\"rho\":0.5}],"
                                 "\"samples\":2,\"seed\":5,\"threads\":1}";

/* Every row of a query as text (BLOBs as hex), one line per row. */
static char *dump_query(const char *db, const char *sql) {
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q = NULL;
    ck_assert_msg(sqlite3_prepare_v2(h, sql, -1, &q, NULL) == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(h));
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    out[0] = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        for (int i = 0; i < sqlite3_column_count(q); i++) {
            int t = sqlite3_column_type(q, i), n = sqlite3_column_bytes(q, i);
            size_t need = len + 2 * (size_t)n + 32;
            while (need > cap) {
                cap *= 2;
                out = realloc(out, cap);
            }
            if (t == SQLITE_NULL) len += (size_t)sprintf(out + len, "NULL");
            else if (t == SQLITE_BLOB) {
                const unsigned char *b = sqlite3_column_blob(q, i);
                for (int k = 0; k < n; k++) len += (size_t)sprintf(out + len, "%02x", b[k]);
            } else if (t == SQLITE_FLOAT)
                len += (size_t)sprintf(out + len, "%a", sqlite3_column_double(q, i));
            else len += (size_t)sprintf(out + len, "%s", (const char *)sqlite3_column_text(q, i));
            out[len++] = i + 1 < sqlite3_column_count(q) ? '|' : '\n';
            out[len] = 0;
        }
    }
    sqlite3_finalize(q);
    sqlite3_close(h);
    return out;
}

/* What must be equal between a merged store and a one-machine run: every sample row, layer row
 * and dense reference but wall times, ids, workers and creation times, keyed by cell identity. */
static char *dump_results(const char *db) {
    char *a = dump_query(db,
                         "SELECT c.key, c.identity, c.state, c.n_samples, s.sample_id, s.sample_key, "
                         "s.prompt_tokens, s.context_tokens,"
                         " s.question_tokens, s.gen_tokens, s.active_tokens, s.flops_dense, s.flops_method, "
                         "s.flops_dense_parts,"
                         " s.flops_method_parts, s.prediction, s.answers, s.score, s.kl, s.kl_answer, s.top1,"
                         " (SELECT group_concat(l.layer || ':' || coalesce(l.delta_min, '-') || ':' || "
                         "coalesce(l.delta_median, '-') || ':'"
                         "  || coalesce(l.delta_max, '-') || ':' || l.flops, ',') FROM (SELECT * FROM "
                         "sample_layers WHERE sample_row = s.id"
                         "  ORDER BY layer) l)"
                         " FROM cells c LEFT JOIN samples s ON s.cell_id = c.id ORDER BY c.key, s.sample_id");
    char *b = dump_query(db, "SELECT model_sha256, task_key, sample_id, task, task_options, prompt_tokens, "
                             "flops, flops_parts, prediction, score,"
                             " n_vocab, n_logit_rows, logits FROM dense_results ORDER BY 1, 2, 3");
    char *r = malloc(strlen(a) + strlen(b) + 8);
    sprintf(r, "%s--\n%s", a, b);
    free(a);
    free(b);
    return r;
}

/* Every row of every table (for "nothing changed"). */
static char *dump_all(const char *db) {
    static const char *const tables[] = {"runs",    "models",        "cells",         "run_cells",
                                         "samples", "sample_layers", "dense_results", "run_shards"};
    char *all = calloc(1, 1);
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT * FROM %s ORDER BY 1, 2, 3", tables[i]);
        char *t = dump_query(db, sql);
        all = realloc(all, strlen(all) + strlen(t) + 64);
        sprintf(all + strlen(all), "== %s\n%s", tables[i], t);
        free(t);
    }
    return all;
}

static void sql_exec(const char *db, const char *sql) {
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open(db, &h), SQLITE_OK);
    char *msg = NULL;
    ck_assert_msg(sqlite3_exec(h, sql, NULL, NULL, &msg) == SQLITE_OK, "%s: %s", sql, msg ? msg : "");
    sqlite3_close(h);
}

static int64_t q_int(const char *db, const char *sql) {
    char *t = dump_query(db, sql);
    int64_t v = strtoll(t, NULL, 10);
    free(t);
    return v;
}

/* The one-machine run (all.db) and the 3 shard stores (s1..s3.db) of k_cfg_merge in the test's
 * folder; paths written to cfg/all/sh. */
static void make_runs(char cfg[512], char all[512], char sh[3][512]) {
    char args[2048];
    char *out = NULL;
    dk_test_tmp_path(cfg, 512, "merge.json");
    write_text(cfg, k_cfg_merge);
    dk_test_tmp_path(all, 512, "all.db");
    snprintf(args, sizeof args, "run %s --db %s --quiet", cfg, all);
    ck_assert_msg(run_cli(args, &out) == 0, "%s", out);
    free(out);
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "s%d.db", i + 1);
        dk_test_tmp_path(sh[i], 512, name);
        snprintf(args, sizeof args, "run %s --shard %d/3 --db %s --quiet", cfg, i + 1, sh[i]);
        ck_assert_msg(run_cli(args, &out) == 0, "%s", out);
        free(out);
    }
}

static int merge_cli(const char *out_db, const char *shards, char **out) {
    char args[4096];
    snprintf(args, sizeof args, "merge %s %s", out_db, shards);
    return run_cli(args, out);
}

/* exactly one line of output */
static void assert_one_line(const char *out) {
    const char *nl = strchr(out, '\n');
    ck_assert_msg(nl && !nl[1], "not one line: %s", out);
}

START_TEST(test_merge_equals_single_idempotent_conflict) {
    char cfg[512], all[512], sh[3][512], out_db[512], shards[2048], *out = NULL;
    make_runs(cfg, all, sh);
    dk_test_tmp_path(out_db, sizeof out_db, "out.db");
    snprintf(shards, sizeof shards, "%s %s %s", sh[0], sh[1], sh[2]);
    ck_assert_msg(merge_cli(out_db, shards, &out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "cells: 8\ndone: 8\npending: 0\nfailed: 0\nsamples: 16\n"), "%s", out);
    free(out);
    /* == the one-machine run, sample by sample (wall times aside) */
    char *a = dump_results(all), *b = dump_results(out_db);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    /* one run, with each shard's provenance */
    ck_assert_int_eq(q_int(out_db, "SELECT count(*) FROM runs"), 1);
    ck_assert_int_eq(q_int(out_db, "SELECT count(*) FROM run_shards"), 3);
    ck_assert_int_eq(
        q_int(out_db, "SELECT count(DISTINCT shard) FROM run_shards WHERE host <> '' AND cpu IS NOT NULL"),
        3);
    ck_assert_int_eq(
        q_int(out_db,
              "SELECT count(*) FROM runs WHERE host IS NOT NULL AND blas_core IS NOT NULL AND shard IS NULL"
              " AND n_cells = 8 AND finished_at >= started_at"),
        1);
    ck_assert_int_eq(q_int(out_db, "SELECT count(*) FROM run_cells"), 8);
    /* config order kept: the merged run's ords are those of the one-machine run */
    char *oa = dump_query(
        all, "SELECT c.key, rc.ord FROM run_cells rc JOIN cells c ON c.id = rc.cell_id ORDER BY rc.ord");
    char *ob = dump_query(
        out_db, "SELECT c.key, rc.ord FROM run_cells rc JOIN cells c ON c.id = rc.cell_id ORDER BY rc.ord");
    ck_assert_str_eq(oa, ob);
    free(oa);
    free(ob);

    /* idempotent: the same shards again change nothing, one of them or all */
    char *before = dump_all(out_db);
    ck_assert_msg(merge_cli(out_db, sh[1], &out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "samples_added: 0\n"), "%s", out);
    free(out);
    ck_assert_msg(merge_cli(out_db, shards, &out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "cells_added: 0\nsamples_added: 0\nsamples_same: 16\ndense_added: 0\n"), "%s",
                  out);
    free(out);
    char *after = dump_all(out_db);
    ck_assert_str_eq(before, after);
    free(after);

    /* a conflicting shard: one score changed -> refused naming the cell, OUT untouched */
    int k = q_int(sh[0], "SELECT count(*) FROM samples")   ? 0
            : q_int(sh[1], "SELECT count(*) FROM samples") ? 1
                                                           : 2;
    char bad[512], sql[512];
    dk_test_tmp_path(bad, sizeof bad, "conflict.db");
    dk_test_copy_file(sh[k], bad);
    char *key = dump_query(
        bad,
        "SELECT substr(c.key, 1, 12) FROM samples s JOIN cells c ON c.id = s.cell_id ORDER BY s.id LIMIT 1");
    key[12] = 0;
    snprintf(sql, sizeof sql,
             "UPDATE samples SET score = score + 1 WHERE id = (SELECT min(id) FROM samples)");
    sql_exec(bad, sql);
    ck_assert_int_eq(merge_cli(out_db, bad, &out), 1);
    assert_one_line(out);
    char want[64];
    snprintf(want, sizeof want, "cell %s (", key);
    ck_assert_msg(strstr(out, want) && strstr(out, "score differs") && strstr(out, "dashkit merge: "), "%s",
                  out);
    free(out);
    /* also among the shards of one merge into a new OUT: nothing is left behind */
    char fresh[512], both[2048];
    dk_test_tmp_path(fresh, sizeof fresh, "fresh.db");
    snprintf(both, sizeof both, "%s %s", sh[k], bad);
    ck_assert_int_eq(merge_cli(fresh, both, &out), 1);
    free(out);
    struct stat st;
    ck_assert_int_ne(stat(fresh, &st), 0);
    after = dump_all(out_db);
    ck_assert_str_eq(before, after);
    free(after);
    free(before);
    free(key);
}
END_TEST

START_TEST(test_merge_partial_then_run) {
    char cfg[512], all[512], sh[3][512], out_db[512], shards[2048], args[2048], *out = NULL;
    make_runs(cfg, all, sh);
    /* the shard with most cells, cut short: one cell killed after its first sample (still
     * "running" for a worker on a host that is gone), another not started */
    int k = 0;
    for (int i = 1; i < 3; i++)
        if (q_int(sh[i], "SELECT count(*) FROM cells") > q_int(sh[k], "SELECT count(*) FROM cells")) k = i;
    ck_assert_int_ge(q_int(sh[k], "SELECT count(*) FROM cells"), 2);
    char part[512];
    dk_test_tmp_path(part, sizeof part, "partial.db");
    dk_test_copy_file(sh[k], part);
    sql_exec(part, "DELETE FROM sample_layers WHERE sample_row IN (SELECT id FROM samples WHERE (cell_id = "
                   "(SELECT min(id) FROM cells)"
                   "  AND sample_id = 1) OR cell_id = (SELECT max(id) FROM cells));"
                   "DELETE FROM samples WHERE (cell_id = (SELECT min(id) FROM cells) AND sample_id = 1) OR "
                   "cell_id = (SELECT max(id) FROM cells);"
                   "UPDATE cells SET state = 'running', worker_host = 'gone', worker_pid = 1, lease_until = "
                   "0 WHERE id = (SELECT min(id) FROM cells);"
                   "UPDATE cells SET state = 'pending' WHERE id = (SELECT max(id) FROM cells);"
                   "UPDATE runs SET finished_at = NULL;");
    dk_test_tmp_path(out_db, sizeof out_db, "partial-out.db");
    snprintf(shards, sizeof shards, "%s %s %s", k == 0 ? part : sh[0], k == 1 ? part : sh[1],
             k == 2 ? part : sh[2]);
    ck_assert_msg(merge_cli(out_db, shards, &out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "cells: 8\ndone: 6\npending: 2\nfailed: 0\nsamples: 13\n"), "%s", out);
    free(out);
    ck_assert_int_eq(q_int(out_db, "SELECT count(*) FROM runs WHERE finished_at IS NULL"), 1);
    /* the remainder finishes with `run`: exactly the 3 missing samples, then equal to one machine */
    snprintf(args, sizeof args, "run %s --db %s --quiet", cfg, out_db);
    ck_assert_msg(run_cli(args, &out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "cells: 8\ndone: 8\n") && strstr(out, "samples: 16\nsamples_new: 3\n"), "%s",
                  out);
    free(out);
    char *a = dump_results(all), *b = dump_results(out_db);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    /* the finished shard merged again later: nothing conflicts, nothing is added */
    ck_assert_msg(merge_cli(out_db, sh[k], &out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "samples_added: 0\n"), "%s", out);
    free(out);
}
END_TEST

START_TEST(test_merge_bad_inputs) {
    char cfg[512], all[512], sh[3][512], out_db[512], args[2048], *out = NULL;
    make_runs(cfg, all, sh);
    dk_test_tmp_path(out_db, sizeof out_db, "bad-out.db");
    ck_assert_int_eq(merge_cli(out_db, sh[0], &out), 0);
    free(out);
    size_t n0;
    void *bytes0 = dk_test_read_file(out_db, &n0);
    /* another config's shard */
    char other_cfg[512], other[512], corrupt[512], trunc[512], missing[512], newout[512];
    dk_test_tmp_path(other_cfg, sizeof other_cfg, "other.json");
    write_text(other_cfg, "{\"name\":\"other\",\"models\":[\"" DK_MODEL
                          "\"],\"tasks\":[{\"name\":\"passkey\",\"length\":200}],"
                          "\"methods\":[{\"name\":\"dense\"}],\"samples\":1,\"seed\":5,\"threads\":1}");
    dk_test_tmp_path(other, sizeof other, "other.db");
    snprintf(args, sizeof args, "run %s --shard 1/1 --db %s --quiet", other_cfg, other);
    ck_assert_msg(run_cli(args, &out) == 0, "%s", out);
    free(out);
    /* a corrupt file, a truncated store, a missing file */
    dk_test_tmp_path(corrupt, sizeof corrupt, "corrupt.db");
    char junk[8192];
    memset(junk, 'x', sizeof junk);
    FILE *f = fopen(corrupt, "wb");
    fwrite(junk, 1, sizeof junk, f);
    fclose(f);
    dk_test_tmp_path(trunc, sizeof trunc, "trunc.db");
    size_t n;
    void *b = dk_test_read_file(sh[1], &n);
    f = fopen(trunc, "wb");
    fwrite(b, 1, n * 2 / 3, f);
    fclose(f);
    free(b);
    dk_test_tmp_path(missing, sizeof missing, "no-such-shard.db");
    dk_test_tmp_path(newout, sizeof newout, "never.db");
    struct {
        const char *shard, *want;
    } cases[] = {
        {other, "a shard of config"}, {corrupt, "not a dashkit store"},       {trunc, trunc},
        {missing, "no such store"},   {out_db, "is the output store itself"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char list[1100];
        snprintf(list, sizeof list, "%s %s", sh[2], cases[i].shard);
        for (int o = 0; o < (cases[i].shard == out_db ? 1 : 2); o++) {
            int rc = merge_cli(o ? newout : out_db, list, &out);
            ck_assert_msg(rc == 1, "case %zu: rc %d: %s", i, rc, out);
            assert_one_line(out);
            ck_assert_msg(strstr(out, "dashkit merge: ") && strstr(out, cases[i].want), "%s", out);
            free(out);
        }
        struct stat st;
        ck_assert_int_ne(stat(newout, &st), 0);
        void *bytes = dk_test_read_file(out_db, &n);
        ck_assert(n == n0 && !memcmp(bytes, bytes0, n));
        free(bytes);
    }
    /* usage */
    ck_assert_int_eq(run_cli("merge", &out), 2);
    free(out);
    snprintf(args, sizeof args, "merge %s", newout);
    ck_assert_int_eq(run_cli(args, &out), 2);
    assert_one_line(out);
    free(out);
    free(bytes0);
}
END_TEST

/* ---- dashkit slurm and status DIR (no Slurm: the scripts run under bash) ---- */

static int file_has(const char *path, const char *needle) {
    size_t n;
    char *t = dk_test_read_file(path, &n);
    int r = strstr(t, needle) != NULL;
    free(t);
    return r;
}

START_TEST(test_slurm_scripts_run_without_slurm) {
    char cfg[512], all[512], sh[3][512], dir[512], args[2048], path[700], *out = NULL;
    make_runs(cfg, all, sh);
    dk_test_tmp_path(dir, sizeof dir, "slurm-out");
    snprintf(args, sizeof args, "slurm %s --shards 3 --out %s --time 1:00:00 --mem 2G --partition cpu", cfg,
             dir);
    ck_assert_msg(run_cli(args, &out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "shards: 3\ncells: 8\ncpus_per_task: 1\n"), "%s", out);
    free(out);
    snprintf(path, sizeof path, "%s/dashkit-shards.sbatch", dir);
    ck_assert(file_has(path, "#SBATCH --array=1-3\n") && file_has(path, "#SBATCH --cpus-per-task=1\n") &&
              file_has(path, "#SBATCH --time=1:00:00\n") && file_has(path, "#SBATCH --mem=2G\n") &&
              file_has(path, "#SBATCH --partition=cpu\n") && file_has(path, "/logs/shard-%a.log\n") &&
              file_has(path, "--shard \"$i/3\"") && file_has(path, "threads=${SLURM_CPUS_PER_TASK:-1}"));
    snprintf(path, sizeof path, "%s/submit.sh", dir);
    ck_assert(file_has(path, "--dependency=afterany:\"$array\"") &&
              file_has(path, "echo \"array_job: $array\""));
    /* the array's tasks and then the merge, each as Slurm would start it (bash, its variables) */
    for (int i = 1; i <= 3; i++) {
        snprintf(args, sizeof args,
                 "SLURM_ARRAY_TASK_ID=%d SLURM_CPUS_PER_TASK=1 bash %s/dashkit-shards.sbatch", i, dir);
        ck_assert_msg(dk_test_run(args, 1, &out) == 0, "%s", out);
        free(out);
    }
    snprintf(args, sizeof args, "bash %s/dashkit-merge.sbatch", dir);
    ck_assert_msg(dk_test_run(args, 1, &out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "cells: 8\ndone: 8\n") && strstr(out, "merged: ") &&
                      strstr(out, " done 8 pending 0 failed 0"),
                  "%s", out);
    ck_assert_msg(strstr(out, "shards: 3\nmissing: none\n"), "%s", out);
    free(out);
    snprintf(path, sizeof path, "%s/dashkit.db", dir);
    char *a = dump_results(all), *b = dump_results(path);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    /* each shard run recorded the threads Slurm gave it */
    ck_assert_int_eq(q_int(path, "SELECT count(*) FROM run_shards WHERE threads = 1"), 3);
    /* status DIR while one shard store is missing */
    snprintf(path, sizeof path, "%s/shard-2.db", dir);
    ck_assert_int_eq(unlink(path), 0);
    snprintf(args, sizeof args, "status %s", dir);
    ck_assert_msg(run_cli(args, &out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "shards: 2\nmissing: 2\n"), "%s", out);
    free(out);
}
END_TEST

START_TEST(test_slurm_dry_run_and_usage) {
    char cfgp[512], dir[512], args[2048], *out = NULL;
    dk_test_tmp_path(cfgp, sizeof cfgp, "sdry.json");
    write_text(cfgp, k_cfg);
    dk_test_tmp_path(dir, sizeof dir, "never-written");
    snprintf(args, sizeof args, "slurm %s --shards 3 --dry-run --out %s", cfgp, dir);
    ck_assert_msg(run_cli(args, &out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "cells: 20\nshards: 3\n") && strstr(out, "imbalance: "), "%s", out);
    /* per shard: the cells `run --shard I/3 --dry-run` lists */
    long sum = 0;
    for (int i = 1; i <= 3; i++) {
        char want[64], *o2 = NULL;
        long cells;
        dry_row rows[64];
        snprintf(args, sizeof args, "run %s --shard %d/3 --dry-run", cfgp, i);
        ck_assert_int_eq(run_cli(args, &o2), 0);
        parse_dry(o2, rows, 64, &cells);
        free(o2);
        snprintf(want, sizeof want, "\n%6d %7ld ", i, cells);
        ck_assert_msg(strstr(out, want), "%s: %s", want, out);
        sum += cells;
    }
    ck_assert_int_eq(sum, 20);
    free(out);
    struct stat st;
    ck_assert_int_ne(stat(dir, &st), 0);
    const char *bad[] = {"--shards 0",
                         "--shards 5000",
                         "",
                         "--shards 2 --partition \"a'b\"",
                         "--shards 2 --time ''",
                         "--shards 2 --submit --dry-run",
                         "--shards 2 --bogus"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        snprintf(args, sizeof args, "slurm %s %s --out %s", cfgp, bad[k], dir);
        ck_assert_msg(run_cli(args, &out) == 2, "%s: %s", bad[k], out);
        assert_one_line(out);
        free(out);
        ck_assert_int_ne(stat(dir, &st), 0);
    }
}
END_TEST

static Suite *shard_suite(void) {
    Suite *s = suite_create("shard");
    TCase *tc = tcase_create("shard");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_parse);
    tcase_add_test(tc, test_pure_and_stable);
    tcase_add_test(tc, test_dry_run_cover_once);
    tcase_add_test(tc, test_bad_shard_usage);
    tcase_add_test(tc, test_shard_run_registers_its_cells);
    tcase_add_test(tc, test_merge_equals_single_idempotent_conflict);
    tcase_add_test(tc, test_merge_partial_then_run);
    tcase_add_test(tc, test_merge_bad_inputs);
    tcase_add_test(tc, test_slurm_scripts_run_without_slurm);
    tcase_add_test(tc, test_slurm_dry_run_and_usage);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return dk_test_main(shard_suite()); }
