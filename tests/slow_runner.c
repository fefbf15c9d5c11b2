/* slow_runner.c — `make check-slow`: configs/quickstart.json end to end on the bundled model
 * (models/dashkit-tiny.gguf; skipped with a message when it has not been trained yet), with two
 * workers, then resumed: every cell done once, dense sharing, FLOPs falling with rho. */
#include "support/dk_test.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int64_t q_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *q = NULL;
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

START_TEST(test_quickstart_end_to_end) {
    struct stat st;
    if (stat("models/dashkit-tiny.gguf", &st) != 0) {
        printf("SKIP: models/dashkit-tiny.gguf absent (train it with scripts/train_tiny.py)\n");
        return;
    }
    char db[512], cmd[1200], *out = NULL;
    dk_test_tmp_path(db, sizeof db, "quickstart.db");
    snprintf(cmd, sizeof cmd, "%s run configs/quickstart.json --db %s --workers 2 --quiet", dk_test_cli(),
             db);
    ck_assert_msg(dk_test_run(cmd, 1, &out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "cells: 220\ndone: 220\n"), "%s", out);
    free(out);
    ck_assert_msg(dk_test_run(cmd, 1, &out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "samples_new: 0\n"), "resume recomputed samples:\n%s", out);
    free(out);
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    ck_assert_int_eq(q_int(h, "SELECT count(*) FROM cells WHERE state = 'done' AND attempts = 1"), 220);
    ck_assert_int_eq(q_int(h, "SELECT count(*) FROM samples"), 880); /* 220 cells x 4 samples */
    ck_assert_int_eq(q_int(h, "SELECT count(*) FROM dense_results"),
                     80); /* 20 task points (2 tasks x 2 lengths x 5 depths) x 4 samples */
    ck_assert_int_eq(q_int(h, "SELECT count(*) FROM samples s JOIN cells c ON c.id = s.cell_id"
                              " WHERE c.method = 'dense' AND (s.kl != 0 OR s.top1 != 1)"),
                     0);
    /* per task point, the dash cells' FLOPs fall as rho grows */
    ck_assert_int_eq(q_int(h,
                           "SELECT count(*) FROM cell_summary a JOIN cell_summary b ON a.task = b.task"
                           " AND a.task_options = b.task_options AND a.method = 'dash' AND b.method = 'dash'"
                           " AND a.rho < b.rho WHERE a.flops_method <= b.flops_method"),
                     0);
    sqlite3_close(h);
}
END_TEST

/* A rho sweep on the trained model at a real length: prefix sharing (on by default, with two
 * workers) stores exactly what running every cell alone stores. */
static char *dump(const char *db) {
    char cmd[1400], *out = NULL;
    snprintf(cmd, sizeof cmd,
             "sqlite3 %s \"SELECT c.key, s.sample_id, s.active_tokens, s.flops_method, s.flops_method_parts,"
             " hex(s.prediction), s.kl, s.kl_answer, s.top1, s.score FROM samples s JOIN cells c"
             " ON c.id = s.cell_id ORDER BY 1, 2\"",
             db);
    ck_assert_msg(dk_test_run(cmd, 1, &out) == 0, "%s", out ? out : cmd);
    return out;
}

START_TEST(test_prefix_sharing_bundled) {
    struct stat st;
    if (stat("models/dashkit-tiny.gguf", &st) != 0) {
        printf("SKIP: models/dashkit-tiny.gguf absent (train it with scripts/train_tiny.py)\n");
        return;
    }
    char cfg[512], on[512], off[512], cmd[1600], *out = NULL;
    dk_test_tmp_path(cfg, sizeof cfg, "sweep.json");
    dk_test_tmp_path(on, sizeof on, "sweep_on.db");
    dk_test_tmp_path(off, sizeof off, "sweep_off.db");
    FILE *f = fopen(cfg, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "{\"models\":[\"models/dashkit-tiny.gguf\"],\"tasks\":[{\"name\":\"passkey\",\"length\":1024}],"
            "\"methods\":[{\"name\":\"dash\",\"rho\":[0.3,0.5,0.667,0.8],\"ls\":0.4}],\"samples\":3,\"seed\":"
            "3}\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s run %s --db %s --workers 2 --quiet", dk_test_cli(), cfg, on);
    ck_assert_msg(dk_test_run(cmd, 1, &out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "prefix_sharing: on\n") && !strstr(out, "prefix_sharing_runs: 0\n"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s run %s --db %s --quiet --no-prefix-sharing", dk_test_cli(), cfg, off);
    ck_assert_msg(dk_test_run(cmd, 1, &out) == 0, "%s", out);
    free(out);
    char *a = dump(on), *b = dump(off);
    ck_assert_int_gt((int)strlen(a), 0);
    ck_assert_msg(!strcmp(a, b), "results differ with prefix sharing");
    free(a);
    free(b);
}
END_TEST

int main(void) {
    Suite *s = suite_create("runner-slow");
    TCase *tc = tcase_create("quickstart");
    tcase_set_timeout(tc, 3600);
    tcase_add_test(tc, test_quickstart_end_to_end);
    tcase_add_test(tc, test_prefix_sharing_bundled);
    suite_add_tcase(s, tc);
    return dk_test_main(s);
}
