/* dk_common.c — error helpers and the monotonic clock. */
#include "dk_common.h"
#include <stdio.h>
#include <time.h>

dk_status dk_fail(dk_err *e, dk_status code, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
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
