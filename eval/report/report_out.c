/* report_out.c — the report room's output: small text helpers (slugs, notes, number formats,
 * Markdown/LaTeX/gnuplot/CSV escapes), files written atomically (temporary name + rename) and the
 * memory streams every file is composed in. May include: report_int.h and the C library. */
#include "report_int.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- small helpers ---- */

char *rep_strdup(const char *s) {
    if (!s) s = "";
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void rep_note(dk_report_result *r, const char *fmt, ...) {
    size_t n = strlen(r->notes);
    if (n + 2 >= sizeof r->notes) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->notes + n, sizeof r->notes - n - 1, fmt, ap);
    va_end(ap);
    n = strlen(r->notes);
    if (n + 1 < sizeof r->notes) {
        r->notes[n] = '\n';
        r->notes[n + 1] = 0;
    }
}

/* Lowercase [a-z0-9.] kept, runs of anything else become one '-'. */
char *rep_slug(const char *s) {
    size_t n = strlen(s);
    char *d = malloc(n + 2), *p = d;
    if (!d) return NULL;
    int dash = 0;
    for (; *s; s++) {
        char c = *s;
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.') {
            if (dash && p > d) *p++ = '-';
            *p++ = c;
            dash = 0;
        } else {
            dash = 1;
        }
    }
    if (p == d) *p++ = 'x';
    *p = 0;
    return d;
}

/* Data-file number: 10 significant digits, NaN for missing (gnuplot skips it). */
void rep_fmt(char *b, size_t n, double v) {
    if (isnan(v)) snprintf(b, n, "NaN");
    else snprintf(b, n, "%.10g", v);
}

/* Value with interval: "45.2 [41.0, 49.3]" (or "45.2" without CI, "–" without value). */
void rep_fmt_ci(char *b, size_t n, dk_ci c, int prec, int latex) {
    if (isnan(c.est)) {
        snprintf(b, n, latex ? "--" : "–");
        return;
    }
    if (isnan(c.lo)) {
        snprintf(b, n, "%.*f", prec, c.est);
        return;
    }
    if (latex) snprintf(b, n, "%.*f\\,{\\scriptsize[%.*f, %.*f]}", prec, c.est, prec, c.lo, prec, c.hi);
    else snprintf(b, n, "%.*f [%.*f, %.*f]", prec, c.est, prec, c.lo, prec, c.hi);
}

void rep_latex_escape(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '_':
        case '%':
        case '&':
        case '#':
        case '$':
        case '{':
        case '}': fprintf(f, "\\%c", *s); break;
        case '\\': fputs("\\textbackslash{}", f); break;
        case '~': fputs("\\textasciitilde{}", f); break;
        case '^': fputs("\\textasciicircum{}", f); break;
        default: fputc(*s, f);
        }
    }
}

void rep_md_escape(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '|') fputs("\\|", f);
        else if (*s == '\n') fputc(' ', f);
        else fputc(*s, f);
    }
}

/* gnuplot double-quoted string: backslash and quote escaped. */
void rep_gp_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

void dk_report_csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* ---- atomic files ---- */

/* mkdir -p */
dk_status rep_mkdirs(const char *dir, dk_err *e) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return dk_fail(e, DK_ERR_ARG, "%s: path too long", dir);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return dk_fail(e, DK_ERR_IO, "%s: cannot create folder: %s", buf, strerror(errno));
            *p = c;
            if (!c) break;
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return dk_fail(e, DK_ERR_IO, "%s: not a folder", dir);
    return DK_OK;
}

/* Writes data[0..n) to dir/name through a temporary file in the same folder and rename(2):
 * readers see the old file or the complete new one, never a partial one. */
static dk_status rep_write_file(rep_out *o, const char *name, const char *data, size_t n, dk_err *e) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", o->dir, name);
    snprintf(tmp, sizeof tmp, "%s/.%s.XXXXXX", o->dir, name);
    int fd = mkstemp(tmp);
    if (fd < 0) return dk_fail(e, DK_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    mode_t um = umask(0);
    umask(um);
    if (fchmod(fd, 0666 & ~um) != 0) { /* mkstemp's 0600 otherwise */
    }
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, data + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int err = errno;
            close(fd);
            unlink(tmp);
            return dk_fail(e, DK_ERR_IO, "%s: write failed: %s", path, strerror(err));
        }
        off += (size_t)w;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        return dk_fail(e, DK_ERR_IO, "%s: cannot write: %s", path, strerror(err));
    }
    if (o->r) o->r->n_files++;
    return DK_OK;
}

dk_status rep_mem_open(rep_mem *m, dk_err *e) {
    m->buf = NULL;
    m->len = 0;
    m->f = open_memstream(&m->buf, &m->len);
    return m->f ? DK_OK : dk_fail(e, DK_ERR_NOMEM, "out of memory");
}

dk_status rep_mem_commit(rep_mem *m, rep_out *o, const char *name, dk_err *e) {
    int bad = fclose(m->f) != 0;
    m->f = NULL;
    dk_status st = bad ? dk_fail(e, DK_ERR_NOMEM, "%s: out of memory", name)
                       : rep_write_file(o, name, m->buf, m->len, e);
    free(m->buf);
    m->buf = NULL;
    return st;
}

void rep_mem_drop(rep_mem *m) {
    if (m->f) fclose(m->f);
    free(m->buf);
    m->f = NULL;
    m->buf = NULL;
}

void rep_out_free(rep_out *o) {
    for (size_t i = 0; i < o->n_figs; i++) free(o->figs[i]);
    free(o->figs);
    o->figs = NULL;
    o->n_figs = 0;
}
