/* test_reliability.c — issue 17's findings, each reproduced as a hostile user would and checked
 * to be refused cleanly: one error line, the documented exit status, nothing half-written.
 * (Findings 2 and 3 live beside their loaders: test_gguf's test_memory_checks_hparams and
 * test_longbench's test_malformed.) */
#include "support/dk_test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ---- */

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
    const char *p = dk_test_tmp_path(NULL, 0, "empty.jsonl");
    t_write(p, "");
    snprintf(args, sizeof args, "score '%s'", p);
    ck_assert_int_eq(t_cli_err(args, &err), 0);
    t_assert_one_line(err, "cases: 0 checked: 0 failed: 0");
    free(err);
}
END_TEST

/* ---- finding 6: `run` checks every data file it will read, every line, before the store ---- */

#define LB_LINE                                                                                   \
    "{\"input\": \"q%d\", \"context\": \"c\", \"answers\": [\"a\"], \"length\": 3, \"dataset\": " \
    "\"hotpotqa\","                                                                               \
    " \"language\": \"en\", \"all_classes\": null, \"_id\": \"x%d\"}\n"

/* A LongBench folder (data/hotpotqa.jsonl with 4 lines, line `bad` broken when > 0, config/)
 * and a 1-model config of `samples` samples reading it; the config path goes to cfg. */
static void t_longbench_setup(const char *name, int bad, int samples, char *cfg, size_t n) {
    char dir[600], p[700], text[4096];
    dk_test_tmp_path(dir, sizeof dir, name);
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
             "{\"models\":[\"tests/data/"
             "ref_llama_f32.gguf\"],\"tasks\":[{\"name\":\"hotpotqa\",\"data\":\"%s/data\","
             "\"config\":\"%s/config\"}],\"methods\":[{\"name\":\"dense\"}],\"samples\":%d}",
             dir, dir, samples);
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
    dk_test_tmp_path(db, sizeof db, "lb3.db");
    snprintf(args, sizeof args, "run '%s' --db '%s' --quiet", cfg, db);
    ck_assert_int_eq(t_cli_err(args, &err), 2);
    t_assert_one_line(err, "task hotpotqa has 4 samples, the config asks for 5");
    free(err);
    ck_assert_msg(stat(db, &sb) != 0,
                  "the store was created for a config asking for more samples than the data has");
}
END_TEST

/* ---- finding 7: a value with control characters is echoed escaped, the error stays one line ---- */

START_TEST(test_errors_one_line) {
    char args[2048], *err = NULL;
    /* command-line values (a newline and an escape character) */
    static const struct {
        const char *args, *want;
        int rc;
    } cli[] = {
        {"eval tests/data/ref_llama_f32.gguf --task passkey --method \"$(printf 'da\\nsh')\"",
         "unknown method 'da\\nsh'", 2},
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
    static const struct {
        const char *json, *want;
    } cfgs[] = {
        {"{\"models\":[\"m\"],\"tasks\":[{\"name\":\"passkey\"}],\"methods\":[{\"name\":\"da\\nsh\"}],"
         "\"samples\":1}",
         "unknown method \"da\\nsh\""},
        {"{\"mod\\u0007els\":[\"m\"],\"tasks\":[{\"name\":\"passkey\"}],\"methods\":[{\"name\":\"dense\"}],"
         "\"samples\":1}",
         "mod\\x07els: unknown key"},
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        const char *p = dk_test_tmp_path(NULL, 0, "nl.json");
        t_write(p, cfgs[i].json);
        snprintf(args, sizeof args, "run '%s' --db '%s/nl.db'", p, dk_test_tmpdir());
        ck_assert_int_eq(t_cli_err(args, &err), 2);
        t_assert_one_line(err, cfgs[i].want);
        free(err);
    }
    /* a score case's id in a FAIL line */
    const char *p = dk_test_tmp_path(NULL, 0, "fail.jsonl");
    t_write(p, "{\"metric\":\"qa_f1_score\",\"prediction\":\"a\",\"answers\":[\"b\"],\"expected\":1,\"id\":"
               "\"x\\ny\"}\n");
    snprintf(args, sizeof args, "score '%s'", p);
    ck_assert_int_eq(t_cli_err(args, &err), 1);
    ck_assert_msg(strstr(err, " id=x\\ny: expected 1 got 0\ncases: 1 checked: 1 failed: 1\n") != NULL, "%s",
                  err);
    free(err);
}
END_TEST

/* ---- finding 8 ---- */

/* `dashkit run` of config text json (written to NAME.json in the test folder) into db with
 * `--quiet` and extra flags; stderr into *err; returns the exit status. */
static int t_run_json(const char *name, const char *json, const char *db, const char *flags, char **err) {
    char cfg[600], args[1600];
    snprintf(cfg, sizeof cfg, "%s/%s.json", dk_test_tmpdir(), name);
    t_write(cfg, json);
    snprintf(args, sizeof args, "run '%s' --db '%s' --quiet %s", cfg, db, flags);
    return t_cli_err(args, err);
}

/* A 3-cell run of the test model into db (a small store with dense logits blobs). */
static void t_small_run(const char *db, int samples) {
    char text[600], *err = NULL;
    snprintf(text, sizeof text,
             "{\"models\":[\"tests/data/ref_llama_f32.gguf\"],\"tasks\":[{\"name\":\"passkey\","
             "\"lengths\":[230]}],\"methods\":[{\"name\":\"dense\"},{\"name\":\"dash\",\"rho\":[0.3,0.5]}],"
             "\"samples\":%d}",
             samples);
    ck_assert_msg(t_run_json("small", text, db, "", &err) == 0, "%s", err);
    free(err);
}

/* A fresh tmpfs of `kb` KiB at a new folder (path into dir); 0 (and a SKIP line) when this
 * process may not mount. */
static int t_mount_tmpfs(char *dir, size_t n, const char *name, int kb) {
    char opt[64];
    dk_test_tmp_path(dir, n, name);
    mkdir(dir, 0755);
    snprintf(opt, sizeof opt, "size=%dk", kb);
    if (mount("tmpfs", dir, "tmpfs", 0, opt) != 0) {
        printf("SKIP: %s needs a tmpfs mount (root): %s\n", name, strerror(errno));
        return 0;
    }
    return 1;
}

static void t_umount(const char *dir) {
    if (umount(dir) != 0) umount2(dir, MNT_DETACH);
}

START_TEST(test_config_name_utf8) {
    const char *p = dk_test_tmp_path(NULL, 0, "utf8.json");
    char args[1200], *err = NULL;
    struct stat sb;
    t_write(p, "{\"name\":\"a\xff\xfe "
               "b\",\"models\":[\"m\"],\"tasks\":[{\"name\":\"passkey\"}],\"methods\":[{\"name\":\"dense\"}],"
               "\"samples\":1}");
    snprintf(args, sizeof args, "run '%s' --db '%s/utf8.db'", p, dk_test_tmpdir());
    ck_assert_int_eq(t_cli_err(args, &err), 2);
    t_assert_one_line(err, "utf8.json: name: not valid UTF-8 (byte 0xff at offset 1)");
    free(err);
    dk_test_tmp_path(args, sizeof args, "utf8.db");
    ck_assert(stat(args, &sb) != 0);
    /* an overlong encoding of '/' and a UTF-16 surrogate are not UTF-8 either */
    t_write(p, "{\"name\":\"x\",\"description\":\"\xc0\xaf "
               "\xed\xa0\x80\",\"models\":[\"m\"],\"tasks\":[{\"name\":\"passkey\"}],"
               "\"methods\":[{\"name\":\"dense\"}],\"samples\":1}");
    snprintf(args, sizeof args, "run '%s' --db '%s/utf8.db'", p, dk_test_tmpdir());
    ck_assert_int_eq(t_cli_err(args, &err), 2);
    t_assert_one_line(err, "description: not valid UTF-8 (byte 0xc0 at offset 0)");
    free(err);
}
END_TEST

START_TEST(test_prompt_beyond_training_context) {
    /* the test model's training context is 256 tokens: 20x is refused, a little more warns */
    const char *p = dk_test_tmp_path(NULL, 0, "long.txt");
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 1500; i++) fputs("the cat sat on the mat. ", f);
    fclose(f);
    char args[1200], *err = NULL;
    snprintf(args, sizeof args, "prefill tests/data/ref_llama_f32.gguf --prompt-file '%s'", p);
    ck_assert_int_eq(t_cli_err(args, &err), 2);
    t_assert_one_line(err, "is more than 8 x the model's training context (256 tokens)");
    free(err);
    ck_assert_int_eq(
        t_cli_err("eval tests/data/ref_llama_f32.gguf --task passkey --opt length=5120 -n 1 --budget 0",
                  &err),
        2);
    t_assert_one_line(err, "a prompt of 51");
    free(err);
    f = fopen(p, "w");
    for (int i = 0; i < 60; i++) fputs("the cat sat on the mat. ", f);
    fclose(f);
    ck_assert_int_eq(t_cli_err(args, &err), 0);
    t_assert_one_line(err, "warning: ");
    ck_assert_msg(strstr(err, "exceed the model's training context of 256 tokens"), "%s", err);
    free(err);
}
END_TEST

START_TEST(test_missing_run_exit_codes) {
    char db[600], *err = NULL;
    dk_test_tmp_path(db, sizeof db, "runs.db");
    t_small_run(db, 1);
    /* the same mistake, the same status in every command: a run not in the store is a bad parameter */
    static const char *const cmds[] = {
        "status --db '%s' --run 999", "export --db '%s' --format csv --run 999",
        "report --db '%s' --run 999 --no-draw --out '%s.rep'", "plot --db '%s' --run 999 --out '%s.png'"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char c[700];
        snprintf(c, sizeof c, cmds[i], db, db);
        ck_assert_msg(t_cli_err(c, &err) == 2, "%s: %s", c, err);
        t_assert_one_line(err, "999");
        free(err);
    }
}
END_TEST

START_TEST(test_store_disk_full) {
    char dir[600], db[700], *err = NULL;
    if (!t_mount_tmpfs(dir, sizeof dir, "full", 64)) return;
    /* fill the filesystem */
    char fill[700];
    snprintf(fill, sizeof fill, "%s/fill", dir);
    FILE *f = fopen(fill, "w");
    static char block[4096];
    while (f && fwrite(block, 1, sizeof block, f) == sizeof block) {}
    if (f) fclose(f);
    snprintf(db, sizeof db, "%s/x.db", dir);
    int rc = t_run_json(
        "full",
        "{\"models\":[\"tests/data/ref_llama_f32.gguf\"],\"tasks\":[{\"name\":\"passkey\",\"length\":230}],"
        "\"methods\":[{\"name\":\"dense\"}],\"samples\":1}",
        db, "", &err);
    struct stat sb;
    int left = stat(db, &sb) == 0;
    t_umount(dir);
    ck_assert_msg(rc == 1, "rc %d: %s", rc, err);
    t_assert_one_line(err, "x.db: the disk is full (no space left on device)");
    free(err);
    ck_assert_msg(!left, "an empty store file was left behind on the full disk");
}
END_TEST

START_TEST(test_store_full_mid_run) {
    char dir[600], db[700], *err = NULL;
    /* room for the schema, the cells and some samples (each dense result carries a logits blob),
     * not for all 480: the disk must fill while the workers store samples, neither before (at 300 KB
     * it filled at the workers' first commit, no sample stored) nor after */
    if (!t_mount_tmpfs(dir, sizeof dir, "midfull", 1024)) return;
    snprintf(db, sizeof db, "%s/x.db", dir);
    int rc = t_run_json(
        "midfull",
        "{\"models\":[\"tests/data/"
        "ref_llama_f32.gguf\"],\"tasks\":[{\"name\":\"passkey\",\"lengths\":[230,240]}],"
        "\"methods\":[{\"name\":\"dense\"},{\"name\":\"dash\",\"rho\":[0.3,0.5,0.8]}],\"samples\":60}",
        db, "--workers 2", &err);
    /* what the store holds: samples were written before the disk filled, not all of them */
    int64_t stored = -1;
    sqlite3 *h = NULL;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(h, "SELECT count(*) FROM samples", -1, &q, NULL) == SQLITE_OK &&
            sqlite3_step(q) == SQLITE_ROW)
            stored = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
    sqlite3_close(h);
    t_umount(dir);
    ck_assert_msg(rc == 1, "rc %d: %s", rc, err);
    ck_assert_msg(strstr(err, "full") != NULL, "the full disk is not named: %s", err);
    ck_assert_msg(stored > 0 && stored < 480, "%lld of 480 samples stored: the disk did not fill mid-run: %s",
                  (long long)stored, err);
    /* the workers have exited: the cells they held count as interrupted (at least one: a worker
     * stopped while storing), none as "still running in another process" */
    ck_assert_msg(strstr(err, " 0 still running in another process") != NULL, "%s", err);
    const char *intr = strstr(err, " interrupted");
    ck_assert_msg(intr != NULL, "%s", err);
    while (intr > err && intr[-1] >= '0' && intr[-1] <= '9') intr--;
    ck_assert_msg(atoi(intr) >= 1, "no cell interrupted: %s", err);
    free(err);
}
END_TEST

START_TEST(test_store_read_only_media) {
    char dir[600], db[700], args[1400];
    if (!t_mount_tmpfs(dir, sizeof dir, "ro", 4096)) return;
    snprintf(db, sizeof db, "%s/x.db", dir);
    t_small_run(db, 1);
    int ok = mount("tmpfs", dir, "tmpfs", MS_REMOUNT | MS_RDONLY, NULL) == 0;
    if (!ok) {
        t_umount(dir);
        printf("SKIP: cannot remount read-only\n");
        return;
    }
    static const char *const cmds[] = {"status --db '%s'", "export --db '%s' --format csv",
                                       "report --db '%s' --no-draw --out '%s/../rorep'"};
    int rcs[3];
    char *errs[3];
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof args, cmds[i], db, dir);
        rcs[i] = t_cli_err(args, &errs[i]);
    }
    t_umount(dir);
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(rcs[i] == 0, "%s on read-only media: exit %d: %s", cmds[i], rcs[i], errs[i]);
        free(errs[i]);
    }
}
END_TEST

START_TEST(test_store_corrupt_page) {
    char db[600], args[1400], *err = NULL;
    dk_test_tmp_path(db, sizeof db, "corrupt.db");
    t_small_run(db, 3);
    /* damage the first page of dense_results, which export's query never reads */
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open(db, &h), SQLITE_OK);
    sqlite3_stmt *q = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(h, "SELECT rootpage FROM sqlite_master WHERE name = 'dense_results'",
                                        -1, &q, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    int page = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    ck_assert_int_eq(sqlite3_exec(h, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL), SQLITE_OK);
    int psize = 0;
    ck_assert_int_eq(sqlite3_prepare_v2(h, "PRAGMA page_size", -1, &q, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    psize = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(h);
    FILE *f = fopen(db, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, (long)(page - 1) * psize, SEEK_SET), 0);
    static const char junk[64] = "\x0d\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff";
    fwrite(junk, 1, sizeof junk, f);
    fclose(f);
    snprintf(args, sizeof args, "export --db '%s' --format csv", db);
    ck_assert_int_eq(t_cli_err(args, &err), 1);
    t_assert_one_line(err, "the store is damaged (PRAGMA quick_check:");
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
    tcase_add_test(tc, test_config_name_utf8);
    tcase_add_test(tc, test_prompt_beyond_training_context);
    tcase_add_test(tc, test_missing_run_exit_codes);
    tcase_add_test(tc, test_store_disk_full);
    tcase_add_test(tc, test_store_full_mid_run);
    tcase_add_test(tc, test_store_read_only_media);
    tcase_add_test(tc, test_store_corrupt_page);
    suite_add_tcase(s, tc);
    return dk_test_main(s);
}
