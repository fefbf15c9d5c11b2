/* dk_common.c — error helpers. */
#include "dk_common.h"
#include <stdio.h>
#include <string.h>

/* Control characters (a file's key, a JSON string echoed in the message) are written as \n, \r,
 * \t or \xNN so the message stays one line; backslashes are kept as they are, so escaping an
 * already escaped message changes nothing. */
size_t dk_escape_controls(const char *s, char *out, size_t n) {
    size_t o = 0;
    if (!n) return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[5];
        const char *add = esc;
        size_t k;
        if (*p == '\n') add = "\\n";
        else if (*p == '\r') add = "\\r";
        else if (*p == '\t') add = "\\t";
        else if (*p < 0x20 || *p == 0x7f) snprintf(esc, sizeof esc, "\\x%02x", *p);
        else {
            esc[0] = (char)*p;
            esc[1] = 0;
        }
        k = strlen(add);
        if (o + k >= n) break; /* truncated at an escape boundary */
        memcpy(out + o, add, k);
        o += k;
    }
    out[o] = 0;
    return o;
}

dk_status dk_fail(dk_err *e, dk_status code, const char *fmt, ...) {
    if (e) {
        char raw[sizeof e->msg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(raw, sizeof raw, fmt, ap);
        va_end(ap);
        dk_escape_controls(raw, e->msg, sizeof e->msg);
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
