/* dk_test.c — helpers shared by the Check suites. */
#include "dk_test.h"
#include "blas.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

const char *dk_test_fixture(char *buf, size_t n, const char *rel) {
    const char *root = getenv("DK_FIXTURES");
    if (!root || !*root) root = "../shared/fixtures";
    snprintf(buf, n, "%s/%s", root, rel);
    struct stat st;
    if (stat(buf, &st) != 0) {
        printf("SKIP: fixture %s absent (set DK_FIXTURES to ../shared/fixtures)\n", buf);
        fflush(stdout);
        return NULL;
    }
    return buf;
}

const char *dk_test_cli(void) {
    const char *p = getenv("DASHKIT");
    return (p && *p) ? p : "./dashkit";
}

int dk_test_run(const char *cmd, int want_stderr, char **out) {
    char full[8192];
    snprintf(full, sizeof full, "%s%s", cmd, want_stderr ? " 2>&1" : " 2>/dev/null");
    FILE *f = popen(full, "r");
    if (!f) return -1;
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    size_t r;
    while (s && (r = fread(s + len, 1, cap - len - 1, f)) > 0) {
        len += r;
        if (cap - len < 2) { cap *= 2; s = realloc(s, cap); }
    }
    if (s) s[len] = 0;
    int st = pclose(f);
    if (out) *out = s; else free(s);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int dk_test_main(Suite *s) {
    dk_blas_init();
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? 0 : 1;
}

const char *dk_test_tmpdir(void) {
    static char dir[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/dktest.%d.XXXXXX", (int)getpid());
        if (!mkdtemp(dir)) dir[0] = 0;
    }
    return dir;
}
