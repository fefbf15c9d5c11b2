/* dk_common.c — error helpers and the monotonic clock. */
#include "dk_common.h"
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Control characters (a file's key, a JSON string echoed in the message) are written as \n, \r,
 * \t or \xNN so the message stays one line; backslashes are kept as they are, so escaping an
 * already escaped message changes nothing. Truncated at the buffer's size. */
static void dk_err_escape(char *msg, size_t cap) {
    char tmp[sizeof ((dk_err *)0)->msg];
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p && n + 1 < sizeof tmp; p++) {
        if (*p >= 0x20 && *p != 0x7F) { tmp[n++] = (char)*p; continue; }
        char esc[5];
        int k = *p == '\n' ? snprintf(esc, sizeof esc, "\\n") : *p == '\r' ? snprintf(esc, sizeof esc, "\\r")
              : *p == '\t' ? snprintf(esc, sizeof esc, "\\t") : snprintf(esc, sizeof esc, "\\x%02x", *p);
        if (n + (size_t)k + 1 > sizeof tmp) break;
        memcpy(tmp + n, esc, (size_t)k);
        n += (size_t)k;
    }
    tmp[n] = 0;
    snprintf(msg, cap, "%s", tmp);
}

dk_status dk_fail(dk_err *e, dk_status code, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        dk_err_escape(e->msg, sizeof e->msg);
    }
    return code;
}

const char *dk_status_name(dk_status s) {
    switch (s) {
    case DK_OK: return "ok";
    case DK_ERR_IO: return "io error";
    case DK_ERR_FORMAT: return "format error";
    case DK_ERR_UNSUPPORTED: return "unsupported";
    case DK_ERR_ARG: return "invalid argument";
    case DK_ERR_NOMEM: return "out of memory";
    case DK_ERR_STATE: return "invalid state";
    }
    return "unknown";
}

double dk_time_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
