/* score.c — fuzz target "score": `dashkit score --quiet FILE` (dk_cmd_score, the CLI's own
 * function) on the bytes as a cases file; stdout goes to /dev/null, the one error line or the
 * summary to stderr. Input: byte 0 bit 0 picks the code-sim backend (difflib / levenshtein),
 * the rest is the JSONL. Exit status must be 0 or 1. Seeds: fuzz/seeds.sh (cases of every
 * metric, and the metrics golden file of the shared fixtures when present). */
#include "cli.h"
#include "fuzz.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int dk_fuzz_score(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    char path[64];
    snprintf(path, sizeof path, "%s", dk_fuzz_file(data + 1, size - 1));
    char *argv[] = {"score", "--quiet", "--code-sim", (data[0] & 1) ? "levenshtein" : "difflib", path, NULL};
    fflush(stdout);
    int saved = dup(1), devnull = open("/dev/null", O_WRONLY);
    dk_fuzz_assert(saved >= 0 && devnull >= 0 && dup2(devnull, 1) == 1, "score", "cannot redirect stdout");
    int rc = dk_cmd_score(5, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    close(devnull);
    dk_fuzz_assert(rc == 0 || rc == 1, "score", "exit status other than 0 or 1 for a readable file");
    return 0;
}
