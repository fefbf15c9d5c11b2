/* report_gnuplot.c — gnuplot, found at run time ($DK_GNUPLOT or PATH) and run by fork/exec in the
 * output folder: probe its terminal, draw each queued figure to temporary names renamed when it
 * succeeded; the head and tail every figure script shares. May include: report_int.h, POSIX. */
#include "report_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- gnuplot: locate, probe, draw ---- */

static void rep_gnuplot_locate(const dk_report_opts *o, dk_report_result *r) {
    const char *env = o->gnuplot ? o->gnuplot : getenv("DK_GNUPLOT");
    r->gnuplot_found = 0;
    if (env) {
        if (*env && access(env, X_OK) == 0) {
            snprintf(r->gnuplot, sizeof r->gnuplot, "%s", env);
            r->gnuplot_found = 1;
        } else {
            snprintf(r->gnuplot, sizeof r->gnuplot, "DK_GNUPLOT='%s' is not an executable", env);
        }
        return;
    }
    const char *path = getenv("PATH");
    if (path) {
        const char *p = path;
        while (*p || p == path) {
            const char *end = strchr(p, ':');
            size_t len = end ? (size_t)(end - p) : strlen(p);
            char cand[1024];
            if (len > 0 && len < sizeof cand - 10) {
                snprintf(cand, sizeof cand, "%.*s/gnuplot", (int)len, p);
                if (access(cand, X_OK) == 0) {
                    snprintf(r->gnuplot, sizeof r->gnuplot, "%.*s", (int)sizeof r->gnuplot - 1, cand);
                    r->gnuplot_found = 1;
                    return;
                }
            }
            if (!end) break;
            p = end + 1;
        }
    }
    snprintf(r->gnuplot, sizeof r->gnuplot,
             "gnuplot not found on PATH (install gnuplot-nox or set DK_GNUPLOT)");
}

/* Runs gnuplot with args in dir; returns its exit status (-1: could not start); its stderr's
 * last non-empty line goes to msg. */
static int rep_gnuplot_exec(const char *gp, const char *dir, char *const args[], char *msg, size_t msg_n) {
    int pfd[2];
    msg[0] = 0;
    if (pipe(pfd) != 0) {
        snprintf(msg, msg_n, "pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        snprintf(msg, msg_n, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
        }
        dup2(pfd[1], 2);
        close(pfd[0]);
        close(pfd[1]);
        if (dir && chdir(dir) != 0) _exit(126);
        execv(gp, args);
        _exit(127);
    }
    close(pfd[1]);
    char buf[8192];
    size_t len = 0;
    ssize_t k;
    while ((k = read(pfd[0], buf + len, sizeof buf - 1 - len)) != 0) {
        if (k < 0) {
            if (errno == EINTR) continue;
            break;
        }
        len += (size_t)k;
        if (len >= sizeof buf - 1) { /* keep the tail */
            memmove(buf, buf + len / 2, len - len / 2);
            len -= len / 2;
        }
    }
    close(pfd[0]);
    buf[len] = 0;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    /* last non-empty line */
    char *end = buf + len;
    while (end > buf && (end[-1] == '\n' || end[-1] == ' ')) *--end = 0;
    char *line = strrchr(buf, '\n');
    line = line ? line + 1 : buf;
    /* gnuplot puts the error after a caret line; the message line is the informative one */
    snprintf(msg, msg_n, "%.*s", (int)(msg_n > 1 ? msg_n - 1 : 0), line);
    if (!WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}

static void rep_gnuplot_probe(dk_report_result *r) {
    char *args[] = {"gnuplot", "-e", "set terminal pngcairo", NULL};
    char msg[256];
    snprintf(r->terminal, sizeof r->terminal, "%s",
             rep_gnuplot_exec(r->gnuplot, NULL, args, msg, sizeof msg) == 0 ? "pngcairo" : "png");
}

static int rep_nonempty(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

/* Draws every queued figure: gnuplot writes to temporary names, renamed when it succeeded. */
void rep_draw(rep_out *o) {
    dk_report_result *r = o->r;
    for (size_t i = 0; i < o->n_figs; i++) {
        const char *stem = o->figs[i];
        char png_tmp[1024], svg_tmp[1024], vars[2600], gpname[1024], msg[512];
        snprintf(png_tmp, sizeof png_tmp, ".%s.%d.png.tmp", stem, (int)getpid());
        snprintf(svg_tmp, sizeof svg_tmp, ".%s.%d.svg.tmp", stem, (int)getpid());
        snprintf(vars, sizeof vars, "pngterm=\"%s\"; outpng=\"%s\"; outsvg=\"%s\"", r->terminal, png_tmp,
                 svg_tmp);
        snprintf(gpname, sizeof gpname, "%s.gp", stem);
        char *args[] = {"gnuplot", "-e", vars, gpname, NULL};
        int rc = rep_gnuplot_exec(r->gnuplot, o->dir, args, msg, sizeof msg);
        int ok = rc == 0;
        const char *fmt[2] = {"png", "svg"};
        const char *tmp[2] = {png_tmp, svg_tmp};
        int want[2] = {o->png, o->svg};
        for (int k = 0; k < 2; k++) {
            char from[2048], to[2048];
            snprintf(from, sizeof from, "%s/%s", o->dir, tmp[k]);
            snprintf(to, sizeof to, "%s/%s.%s", o->dir, stem, fmt[k]);
            if (ok && want[k] && !rep_nonempty(from)) {
                ok = 0;
                if (!msg[0]) snprintf(msg, sizeof msg, "no %s output", fmt[k]);
            }
            if (ok && want[k]) {
                if (rename(from, to) == 0) r->n_files++;
                else {
                    ok = 0;
                    snprintf(msg, sizeof msg, "%.300s: %.100s", to, strerror(errno));
                }
            }
            unlink(from);
        }
        if (ok) r->n_drawn++;
        else {
            r->n_failed++;
            if (!r->failure[0])
                snprintf(r->failure, sizeof r->failure, "%.250s: %.500s", gpname,
                         msg[0] ? msg : (rc < 0 ? "could not run gnuplot" : "gnuplot failed"));
        }
    }
}

dk_status rep_queue_fig(rep_out *o, const char *stem, dk_err *e) {
    char **p = realloc(o->figs, (o->n_figs + 1) * sizeof *p);
    if (!p) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    o->figs = p;
    if (!(o->figs[o->n_figs] = rep_strdup(stem))) return dk_fail(e, DK_ERR_NOMEM, "out of memory");
    o->n_figs++;
    if (o->r) o->r->n_figures++;
    return DK_OK;
}

/* STEM.gp written from gp and the figure queued for drawing. */
dk_status rep_gp_commit(rep_out *o, rep_mem *gp, const char *stem, dk_err *e) {
    char name[1100];
    snprintf(name, sizeof name, "%s.gp", stem);
    dk_status st = rep_mem_commit(gp, o, name, e);
    return st == DK_OK ? rep_queue_fig(o, stem, e) : st;
}

/* Script preamble: outputs are variables so the caller (or a user) can redirect them; then the
 * figure's title (the caller goes on with a newline). */
void rep_gp_head(FILE *f, const rep_out *o, const char *stem, const char *what, const char *dat,
                 const char *title) {
    fprintf(f, "# %s\n# written by `dashkit report` / `dashkit plot` from the store; data: %s\n", what, dat);
    fprintf(f, "# redraw (restyle freely): gnuplot %s.gp   (variables below may be preset with -e)\n", stem);
    fprintf(f, "if (!exists(\"pngterm\")) pngterm = \"pngcairo\"\n");
    if (o->png) fprintf(f, "if (!exists(\"outpng\")) outpng = \"%s.png\"\n", stem);
    if (o->svg) fprintf(f, "if (!exists(\"outsvg\")) outsvg = \"%s.svg\"\n", stem);
    if (o->png) fprintf(f, "set terminal @pngterm size 960,640 noenhanced\nset output outpng\n");
    else fprintf(f, "set terminal svg size 960,640 dynamic noenhanced\nset output outsvg\n");
    fprintf(f, "set title ");
    rep_gp_str(f, title);
}

void rep_gp_tail(FILE *f, const rep_out *o) {
    if (o->png && o->svg)
        fprintf(f, "set terminal svg size 960,640 dynamic noenhanced\nset output outsvg\nreplot\n");
    fprintf(f, "unset output\n");
}

void rep_prepare_draw(const dk_report_opts *o, dk_report_result *r) {
    rep_gnuplot_locate(o, r);
    if (r->gnuplot_found) rep_gnuplot_probe(r);
}
