/* cmd_export.c — `dashkit export [--db PATH] --format csv|json [--out FILE] [--run ID]`:
 * one row per stored sample with its cell's model, task options and method parameters (the
 * store's sample_rows view). A file is written to a temporary name beside it and renamed into
 * place only when complete: a failed export leaves no file behind. */
#include "cli.h"
#include "cli_util.h"
#include "report.h"
#include "store.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void dk_export_usage(FILE *f) {
    fprintf(f, "usage: dashkit export [--db PATH] --format csv|json [--out FILE] [--run ID]\n\n"
               "Writes one row per stored sample, with its cell's model, task options and method\n"
               "parameters (columns of the store's sample_rows view), ordered by cell and sample.\n\n"
               "  --db PATH       the store (default results/dashkit.db)\n"
               "  --format F      csv (RFC 4180, header row, empty = NULL) or json (array of objects;\n"
               "                  JSON-valued columns embedded as JSON)\n"
               "  --out FILE      write FILE atomically (temporary file + rename); default stdout\n"
               "  --run ID        only the cells of this run\n"
               "  -h, --help      this help\n");
}

/* Columns of sample_rows that hold JSON text and are embedded as JSON values in --format json. */
static int dk_export_json_column(const char *name) {
    static const char *const cols[] = {"task_options", "params", "active_tokens", "answers", NULL};
    for (int i = 0; cols[i]; i++)
        if (!strcmp(cols[i], name)) return 1;
    return 0;
}

typedef struct {
    FILE *f;
    int json;
    int64_t n; /* rows written */
} dk_export_ctx;

/* One row of sample_rows (dk_store_row_fn): CSV fields (empty = NULL) or a JSON object. */
static int dk_export_row(void *ctx, const dk_store_value *v, int nc, int header) {
    dk_export_ctx *x = ctx;
    FILE *f = x->f;
    if (header) {
        if (x->json) {
            fputs("[", f);
            return 0;
        }
        for (int c = 0; c < nc; c++) {
            if (c) fputc(',', f);
            dk_report_csv_field(f, v[c].name);
        }
        fputs("\r\n", f);
        return 0;
    }
    if (!x->json) {
        for (int c = 0; c < nc; c++) {
            if (c) fputc(',', f);
            if (v[c].text) dk_report_csv_field(f, v[c].text);
        }
        fputs("\r\n", f);
        x->n++;
        return 0;
    }
    cJSON *o = cJSON_CreateObject();
    for (int c = 0; o && c < nc; c++) {
        cJSON *j = NULL;
        switch (v[c].type) {
        case DK_STORE_INTEGER: j = cJSON_CreateNumber((double)v[c].i); break;
        case DK_STORE_REAL: j = cJSON_CreateNumber(v[c].r); break;
        case DK_STORE_NULL: j = cJSON_CreateNull(); break;
        default:
            if (dk_export_json_column(v[c].name)) j = cJSON_Parse(v[c].text);
            if (!j) j = cJSON_CreateString(v[c].text ? v[c].text : "");
        }
        cJSON_AddItemToObject(o, v[c].name, j);
    }
    char *txt = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!txt) return -1;
    fprintf(f, "%s\n%s", x->n ? "," : "", txt);
    free(txt);
    x->n++;
    return 0;
}

/* A run that is not in the store: exit 2 (a bad parameter, as report and plot); 1 when unreadable. */
static int dk_export_check_run(dk_store *s, const char *db, long long run) {
    dk_err e = {{0}};
    dk_store_run *runs = NULL;
    size_t n = 0;
    if (dk_store_runs_read(s, &runs, &n, &e) != DK_OK) {
        fprintf(stderr, "dashkit export: %s\n", e.msg);
        return 1;
    }
    int found = 0;
    for (size_t i = 0; i < n; i++) found |= runs[i].id == run;
    dk_store_runs_free(runs, n);
    if (!found) {
        fprintf(stderr, "dashkit export: %s: no run %lld\n", dk_cli_esc(db), run);
        return 2;
    }
    return 0;
}

int dk_cmd_export(int argc, char **argv) {
    const char *db = "results/dashkit.db", *format = NULL, *out = NULL;
    long long run = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dk_cli_help(a, dk_export_usage)) return 0;
        static const char *const with_val[] = {"--db", "--format", "--out", "--run", NULL};
        const char *v = dk_cli_opt_value("export", argc, argv, &i, with_val);
        if (!v) return 2;
        if (!strcmp(a, "--db")) db = v;
        else if (!strcmp(a, "--format")) format = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!dk_cli_parse_run_id("export", v, &run)) return 2;
    }
    if (!format) {
        fprintf(stderr, "dashkit export: --format csv|json is required\n");
        return 2;
    }
    if (strcmp(format, "csv") != 0 && strcmp(format, "json") != 0) {
        fprintf(stderr, "dashkit export: --format '%s': expected csv or json\n", dk_cli_esc(format));
        return 2;
    }
    int json = !strcmp(format, "json");

    dk_err e = {{0}};
    dk_store *s = NULL;
    if (dk_store_open(db, DK_STORE_OPEN_READONLY, &s, &e) != DK_OK) {
        fprintf(stderr, "dashkit export: %s\n", e.msg);
        return 1;
    }
    FILE *f = NULL;
    char tmp[4096] = "";
    int rc = 1;
    if (run && (rc = dk_export_check_run(s, db, run)) != 0) goto done;
    rc = 1;
    if (out) {
        snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", out);
        int fd = mkstemp(tmp);
        if (fd < 0 || !(f = fdopen(fd, "w"))) {
            fprintf(stderr, "dashkit export: %s: cannot create: %s\n", out, strerror(errno));
            if (fd >= 0) {
                close(fd);
                unlink(tmp);
            }
            tmp[0] = 0;
            goto done;
        }
    } else {
        f = stdout;
    }
    dk_export_ctx x = {f, json, 0};
    int64_t n = 0;
    if (dk_store_sample_rows(s, run, dk_export_row, &x, &n, &e) != DK_OK) {
        fprintf(stderr, "dashkit export: %s\n", e.msg);
        goto done;
    }
    if (json) fputs(n ? "\n]\n" : "]\n", f);
    if (out) {
        int bad = fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0;
        bad |= fclose(f) != 0;
        f = NULL;
        if (bad || rename(tmp, out) != 0) {
            fprintf(stderr, "dashkit export: %s: write failed: %s\n", out, strerror(errno));
            goto done;
        }
        tmp[0] = 0;
        fprintf(stderr, "dashkit export: %lld rows -> %s\n", (long long)n, out);
    } else if (fflush(stdout) != 0) {
        fprintf(stderr, "dashkit export: stdout: write failed: %s\n", strerror(errno));
        goto done;
    }
    rc = 0;
done:
    if (f && f != stdout) fclose(f);
    if (tmp[0]) unlink(tmp);
    dk_store_close(s);
    return rc;
}
