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

/* ---- finding 6: `run` checks every data file it will read, every line, before the store ---- */

#define LB_LINE "{\"input\": \"q%d\", \"context\": \"c\", \"answers\": [\"a\"], \"length\": 3, \"dataset\": \"hotpotqa\"," \
                " \"language\": \"en\", \"all_classes\": null, \"_id\": \"x%d\"}\n"

/* A LongBench folder (data/hotpotqa.jsonl with 4 lines, line `bad` broken when > 0, config/)
 * and a 1-model config of `samples` samples reading it; the config path goes to cfg. */
static void t_longbench_setup(const char *name, int bad, int samples, char *cfg, size_t n) {
    char dir[600], p[700], text[4096];
    snprintf(dir, sizeof dir, "%s/%s", dk_test_tmpdir(), name);
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/data", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/config", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/config/dataset2prompt.json", dir);
    t_write(p, "{\"hotpotqa\": \"{context} Q: {input} A:\"}");
    snprintf(p, sizeof p, "%s/config/dataset2maxlen.json", dir);
    t_write(p, "{\"hotpotqa\": 4}");
    size_t o = 0;
    for (int i = 1; i <= 4; i++) {
        if (i == bad) o += (size_t)snprintf(text + o, sizeof text - o, "{\"input\": \"q\", \"context\": \n");
        else o += (size_t)snprintf(text + o, sizeof text - o, LB_LINE, i, i);
    }
    snprintf(p, sizeof p, "%s/data/hotpotqa.jsonl", dir);
    t_write(p, text);
    snprintf(cfg, n, "%s/run.json", dir);
    snprintf(text, sizeof text,
             "{\"models\":[\"tests/data/ref_llama_f32.gguf\"],\"tasks\":[{\"name\":\"hotpotqa\",\"data\":\"%s/data\","
             "\"config\":\"%s/config\"}],\"methods\":[{\"name\":\"dense\"}],\"samples\":%d}", dir, dir, samples);
    t_write(cfg, text);
}

START_TEST(test_run_checks_every_data_line) {
    char cfg[700], args[1600], db[600], want[800], *err = NULL;
    struct stat sb;
    /* a broken line in the middle (line 3 of 4), past the first sample and past the 2 asked for */
    for (int samples = 1; samples <= 2; samples++) {
        t_longbench_setup(samples == 1 ? "lb1" : "lb2", 3, samples, cfg, sizeof cfg);
        snprintf(db, sizeof db, "%s/lb%d.db", dk_test_tmpdir(), samples);
        snprintf(args, sizeof args, "run '%s' --db '%s' --quiet", cfg, db);
        ck_assert_int_eq(t_cli_err(args, &err), 1);
        snprintf(want, sizeof want, "/lb%d/data/hotpotqa.jsonl:3: invalid JSON", samples);
        t_assert_one_line(err, want);
        free(err);
        ck_assert_msg(stat(db, &sb) != 0, "the store was created for a config whose data is broken");
    }
    /* more samples asked for than the file holds: refused before the store too */
    t_longbench_setup("lb3", 0, 5, cfg, sizeof cfg);
    snprintf(db, sizeof db, "%s/lb3.db", dk_test_tmpdir());
    snprintf(args, sizeof args, "run '%s' --db '%s' --quiet", cfg, db);
    ck_assert_int_eq(t_cli_err(args, &err), 2);
    t_assert_one_line(err, "task hotpotqa has 4 samples, the config asks for 5");
    free(err);
    ck_assert_msg(stat(db, &sb) != 0, "the store was created for a config asking for more samples than the data has");
}
END_TEST

/* ---- finding 7: a value with control characters is echoed escaped, the error stays one line ---- */

START_TEST(test_errors_one_line) {
    char args[2048], *err = NULL;
    /* command-line values (a newline and an escape character) */
    static const struct { const char *args, *want; int rc; } cli[] = {
        {"eval tests/data/ref_llama_f32.gguf --task passkey --method \"$(printf 'da\\nsh')\"", "unknown method 'da\\nsh'", 2},
        {"tasks \"$(printf 'x\\ny')\"", "unknown task 'x\\ny'", 2},
        {"\"$(printf 'x\\033[2Jy')\"", "unknown command 'x\\x1b[2Jy'", 2},
        {"info --ctx \"$(printf '1\\r\\n2')\" x", "'1\\r\\n2' is not an integer", 2},
        {"score \"$(printf '%s/no\\nsuch')\"", "/no\\nsuch: No such file", 1},
    };
    for (size_t i = 0; i < sizeof cli / sizeof cli[0]; i++) {
        if (strstr(cli[i].args, "%s")) snprintf(args, sizeof args, cli[i].args, dk_test_tmpdir());
        else snprintf(args, sizeof args, "%s", cli[i].args);
        ck_assert_msg(t_cli_err(args, &err) == cli[i].rc, "%s: %s", args, err);
        t_assert_one_line(err, cli[i].want);
        free(err);
    }
    /* JSON strings in a config: a method name, an unknown key */
    static const struct { const char *json, *want; } cfgs[] = {
        {"{\"models\":[\"m\"],\"tasks\":[{\"name\":\"passkey\"}],\"methods\":[{\"name\":\"da\\nsh\"}],\"samples\":1}",
         "unknown method \"da\\nsh\""},
        {"{\"mod\\u0007els\":[\"m\"],\"tasks\":[{\"name\":\"passkey\"}],\"methods\":[{\"name\":\"dense\"}],\"samples\":1}",
         "mod\\x07els: unknown key"},
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        const char *p = t_path("nl.json");
        t_write(p, cfgs[i].json);
        snprintf(args, sizeof args, "run '%s' --db '%s/nl.db'", p, dk_test_tmpdir());
        ck_assert_int_eq(t_cli_err(args, &err), 2);
        t_assert_one_line(err, cfgs[i].want);
        free(err);
    }
    /* a score case's id in a FAIL line */
    const char *p = t_path("fail.jsonl");
    t_write(p, "{\"metric\":\"qa_f1_score\",\"prediction\":\"a\",\"answers\":[\"b\"],\"expected\":1,\"id\":\"x\\ny\"}\n");
    snprintf(args, sizeof args, "score '%s'", p);
    ck_assert_int_eq(t_cli_err(args, &err), 1);
    ck_assert_msg(strstr(err, " id=x\\ny: expected 1 got 0\ncases: 1 checked: 1 failed: 1\n") != NULL, "%s", err);
    free(err);
}
END_TEST

int main(void) {
    Suite *s = suite_create("reliability");
    TCase *tc = tcase_create("reliability");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_score_directory);
    tcase_add_test(tc, test_run_checks_every_data_line);
    tcase_add_test(tc, test_errors_one_line);
    suite_add_tcase(s, tc);
    return dk_test_main(s);
}
