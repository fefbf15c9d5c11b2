/* dk_test.h — helpers shared by the Check suites. */
#ifndef DK_TEST_H
#define DK_TEST_H
#include <check.h>
#include <stddef.h>

/* Path of a fixture under $DK_FIXTURES (default ../shared/fixtures), written into buf.
 * Returns NULL (and prints "SKIP <why>" once) when the fixture folder or file is absent. */
const char *dk_test_fixture(char *buf, size_t n, const char *rel);

/* Path of the dashkit CLI binary ($DASHKIT, default ./dashkit). */
const char *dk_test_cli(void);

/* Runs `cmd` with /bin/sh; captures stdout (and stderr if want_stderr) into a malloc'd,
 * NUL-terminated string (*out, may be NULL); returns the exit status (or -1). */
int dk_test_run(const char *cmd, int want_stderr, char **out);

/* Runs a Check suite with CK_NORMAL output; returns the process exit status. */
int dk_test_main(Suite *s);

/* Temporary directory unique to this process (created on first use). */
const char *dk_test_tmpdir(void);

#define DK_SKIP_IF_NULL(p) do { if ((p) == NULL) return; } while (0)
#endif
