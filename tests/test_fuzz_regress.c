/* test_fuzz_regress.c — replays every input kept in tests/data/fuzz/NAME/ through fuzz target
 * NAME (fuzz/fuzz.h), compiled without libFuzzer: inputs that once crashed a parser, or broke a
 * promise the target checks, must now pass. A crash or abort fails the test (Check runs each
 * test in its own process); `make test-asan` replays them under the sanitizers too. Also checks
 * that every folder there names a target (README.md says what goes there), and that each target survives the trivial inputs. */
#include "support/dk_test.h"
#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DK_FUZZ_DATA "tests/data/fuzz"

static const dk_fuzz_target *find_target(const char *name) {
    for (const dk_fuzz_target *t = dk_fuzz_targets; t->name; t++)
        if (!strcmp(t->name, name)) return t;
    return NULL;
}

START_TEST(test_folders_name_targets) {
    DIR *d = opendir(DK_FUZZ_DATA);
    ck_assert_msg(d != NULL, "%s is missing", DK_FUZZ_DATA);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || de->d_type != DT_DIR) continue;
        ck_assert_msg(find_target(de->d_name) != NULL, "%s/%s names no fuzz target", DK_FUZZ_DATA,
                      de->d_name);
    }
    closedir(d);
}
END_TEST

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Replays tests/data/fuzz/<target _i>/ in name order. */
START_TEST(test_replay) {
    const dk_fuzz_target *t = &dk_fuzz_targets[_i];
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", DK_FUZZ_DATA, t->name);
    DIR *d = opendir(dir);
    if (!d) return; /* no regression inputs for this target yet */
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        names = realloc(names, (n + 1) * sizeof *names);
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        size_t size;
        uint8_t *data = dk_test_read_file(path, &size);
        fprintf(stderr, "replay %s\n", path); /* names the input if it crashes */
        ck_assert_int_eq(t->fn(data, size), 0);
        free(data);
        free(names[i]);
    }
    free(names);
}
END_TEST

/* Every target takes the empty input, one byte of each flag value and a short text. */
START_TEST(test_trivial_inputs) {
    const dk_fuzz_target *t = &dk_fuzz_targets[_i];
    ck_assert_int_eq(t->fn((const uint8_t *)"", 0), 0);
    for (int b = 0; b < 16; b++) {
        uint8_t one = (uint8_t)b;
        ck_assert_int_eq(t->fn(&one, 1), 0);
    }
    static const char text[] = "\x00{\"a\": [1, 2]}\nGGUF\x03\x00\x00\x00 hello \xe2\x96\x81";
    ck_assert_int_eq(t->fn((const uint8_t *)text, sizeof text - 1), 0);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("fuzz_regress");
    TCase *tc = tcase_create("replay");
    tcase_set_timeout(tc, 120);
    int n = 0;
    while (dk_fuzz_targets[n].name) n++;
    tcase_add_test(tc, test_folders_name_targets);
    tcase_add_loop_test(tc, test_replay, 0, n);
    tcase_add_loop_test(tc, test_trivial_inputs, 0, n);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return dk_test_main(suite()); }
