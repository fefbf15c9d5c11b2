/* dk_common.h — status codes and error messages shared by every dashkit module.
 *
 * Convention (as SQLite): library functions return a dk_status and, on failure, fill a
 * caller-provided dk_err with ONE human-readable line naming the file/field/value at fault.
 * Library code never prints and never exits; only cli/ does. */
#ifndef DK_COMMON_H
#define DK_COMMON_H

#include <stddef.h>
#include <stdarg.h>
#include "util.h" /* clock, growable string, heap, argmax: the bottom helpers, for every layer */

typedef enum {
    DK_OK = 0,
    DK_ERR_IO,          /* open/read/write/mmap failed */
    DK_ERR_FORMAT,      /* file content is malformed (bad magic, truncated, absurd counts) */
    DK_ERR_UNSUPPORTED, /* well-formed but not supported (unknown arch/tensor type/tokenizer) */
    DK_ERR_ARG,         /* invalid parameter from the caller/user */
    DK_ERR_NOMEM,       /* allocation failed */
    DK_ERR_STATE,       /* API misuse (e.g. context full) */
} dk_status;

typedef struct {
    char msg[1024]; /* one line, no trailing newline; empty when no error */
} dk_err;

/* Copies s into out (n bytes, NUL-terminated) with control characters escaped: newline, CR and
 * tab as \n \r \t, other bytes < 0x20 and DEL as \xNN; cut at an escape boundary when out is
 * full. Returns the length written. The one escaping of values echoed in error lines: dk_fail
 * applies it to every message, and the CLI to command-line values it echoes. */
size_t dk_escape_controls(const char *s, char *out, size_t n);

/* Formats msg into e (if e != NULL), control characters escaped (always one line), and returns
 * code. Usage: return dk_fail(e, DK_ERR_IO, "%s: ...", path); */
dk_status dk_fail(dk_err *e, dk_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

const char *dk_status_name(dk_status s);

#endif
