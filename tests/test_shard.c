/* test_shard.c — `run --shard I/N` and `run --dry-run` (eval/shard.h): the shard of a cell is a
 * pure function of its identity (stable when the config grows or is reordered), every cell is in
 * exactly one shard for N = 1..8, rho-siblings share a shard, bad --shard values are usage
 * errors; a shard run registers only its cells, in config order, and records "I/N". */
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

#define DK_MODEL "tests/data/ref_llama_f32.gguf"   /* 3 layers, n_ctx 256 */
#define DK_MODEL2 "tests/data/ref_qwen2_f32.gguf"

/* 2 models x 2 lengths x (dense + dash x 3 rho + fastv) = 20 cells */
static const char *k_cfg =
    "{\"name\":\"sh\",\"models\":[\"" DK_MODEL "\",\"" DK_MODEL2 "\"],\n"
    " \"tasks\":[{\"name\":\"passkey\",\"lengths\":[200,230]}],\n"
    " \"methods\":[{\"name\":\"dense\"},{\"name\":\"dash\",\"rho\":[0.3,0.5,0.8],\"ls\":0.34},{\"name\":\"fastv\",\"rho\":0.5}],\n"
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

static void tmp_path(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", dk_test_tmpdir(), name); }

static int run_cli(const char *args, char **out) {
    char cmd[2048];
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

typedef struct { char key[65]; int shard[9]; char sib[1100]; } cell_shards;

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
    const char *bad[] = {"5/4", "0/0", "0/4", "4", "/4", "4/", "a/4", "1/4x", "-1/4", "1/-4", "+1/4", " 1/4", "1/5000", ""};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ck_assert_msg(dk_shard_parse(bad[k], &i, &n, &e) == DK_ERR_ARG, "%s accepted", bad[k]);
        ck_assert_msg(strstr(e.msg, "--shard '") != NULL, "%s", e.msg);
    }
}
END_TEST

/* ---- through the CLI: --dry-run covers each cell once ---- */

/* rows of a dry-run listing: ord, key prefix, shard column */
typedef struct { long ord; char key[13]; char shard[16]; } dry_row;

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
    tmp_path(cfgp, sizeof cfgp, "cover.json");
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
    tmp_path(cfgp, sizeof cfgp, "bad.json");
    tmp_path(db, sizeof db, "bad-shard.db");
    write_text(cfgp, k_cfg);
    const char *bad[] = {"5/4", "0/0", "x"};
    for (size_t k = 0; k < 3; k++) {
        char *out = NULL;
        snprintf(args, sizeof args, "run %s --shard %s --db %s", cfgp, bad[k], db);
        ck_assert_int_eq(run_cli(args, &out), 2);
        ck_assert_msg(strstr(out, "dashkit run: --shard '") && !strchr(strchr(out, '\n') + 1, '\n'), "%s", out);
        free(out);
        struct stat st;
        ck_assert_int_ne(stat(db, &st), 0);
    }
}
END_TEST

/* ---- a shard run ---- */

START_TEST(test_shard_run_registers_its_cells) {
    char cfgp[512], db[512], args[1400];
    tmp_path(cfgp, sizeof cfgp, "one.json");
    tmp_path(db, sizeof db, "one-shard.db");
    write_text(cfgp,
               "{\"name\":\"one\",\"models\":[\"" DK_MODEL "\"],\"tasks\":[{\"name\":\"passkey\",\"lengths\":[200,230]}],"
               "\"methods\":[{\"name\":\"dense\"},{\"name\":\"dash\",\"rho\":[0.3,0.5],\"ls\":0.34},{\"name\":\"fastv\",\"rho\":0.5}],"
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
    ck_assert_int_eq(sqlite3_prepare_v2(h, "SELECT r.shard, r.n_cells, substr(c.key, 1, 12), rc.ord, c.state FROM runs r"
                                           " JOIN run_cells rc ON rc.run_id = r.id JOIN cells c ON c.id = rc.cell_id ORDER BY rc.ord",
                                        -1, &q, NULL), SQLITE_OK);
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

static Suite *shard_suite(void) {
    Suite *s = suite_create("shard");
    TCase *tc = tcase_create("shard");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_parse);
    tcase_add_test(tc, test_pure_and_stable);
    tcase_add_test(tc, test_dry_run_cover_once);
    tcase_add_test(tc, test_bad_shard_usage);
    tcase_add_test(tc, test_shard_run_registers_its_cells);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return dk_test_main(shard_suite()); }
