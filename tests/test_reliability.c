/* test_reliability.c — issue 17's findings, each reproduced as a hostile user would and checked
 * to be refused cleanly: one error line, the documented exit status, nothing half-written.
 * (Findings 2 and 3 live beside their loaders: test_gguf's test_memory_checks_hparams and
 * test_longbench's test_malformed.) */
#include "support/dk_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ---- */

static const char *t_path(const char *name) {
    static char p[8][512];
    static int k;
    char *r = p[k++ % 8];
    snprintf(r, 512, "%s/%s", dk_test_tmpdir(), name);
    return r;
}

static void t_write(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* Runs `dashkit ARGS`, stdout dropped, stderr captured in *err (malloc'd); returns the exit status. */
static int t_cli_err(const char *args, char **err) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "( %s %s 2>&1 >/dev/null )", dk_test_cli(), args);
    return dk_test_run(cmd, 0, err);
}

/* exactly one line, ending in '\n', containing want */
static void t_assert_one_line(const char *out, const char *want) {
    ck_assert_ptr_nonnull(out);
    char *nl = strchr(out, '\n');
    ck_assert_msg(nl && nl[1] == 0, "expected exactly one line, got: [%s]", out);
    ck_assert_msg(strstr(out, want) != NULL, "'%s' lacks '%s'", out, want);
}

/* ---- finding 4: `score DIR` read error is not an empty file ---- */

START_TEST(test_score_directory) {
    char args[1024], *err = NULL;
    snprintf(args, sizeof args, "score '%s'", dk_test_tmpdir());
    ck_assert_int_eq(t_cli_err(args, &err), 1);
    t_assert_one_line(err, "read error");
    ck_assert_ptr_null(strstr(err, "cases:"));
    free(err);
    /* an empty file still is 0 cases, exit 0 */
    const char *p = t_path("empty.jsonl");
    t_write(p, "");
    snprintf(args, sizeof args, "score '%s'", p);
    ck_assert_int_eq(t_cli_err(args, &err), 0);
    t_assert_one_line(err, "cases: 0 checked: 0 failed: 0");
    free(err);
}
END_TEST

int main(void) {
    Suite *s = suite_create("reliability");
    TCase *tc = tcase_create("reliability");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_score_directory);
    suite_add_tcase(s, tc);
    return dk_test_main(s);
}
