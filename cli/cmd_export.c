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
    for (int i = 0; cols[i]; i++) if (!strcmp(cols[i], name)) return 1;
    return 0;
}

static int dk_export_rows(sqlite3_stmt *q, FILE *f, int json) {
    int nc = sqlite3_column_count(q), step, n = 0;
    if (!json) {
        for (int c = 0; c < nc; c++) {
            if (c) fputc(',', f);
            dk_report_csv_field(f, sqlite3_column_name(q, c));
        }
        fputs("\r\n", f);
    } else {
        fputs("[", f);
    }
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        if (!json) {
            for (int c = 0; c < nc; c++) {
                if (c) fputc(',', f);
                const unsigned char *t = sqlite3_column_text(q, c);
                if (t) dk_report_csv_field(f, (const char *)t);
            }
            fputs("\r\n", f);
        } else {
            cJSON *o = cJSON_CreateObject();
            for (int c = 0; o && c < nc; c++) {
                const char *name = sqlite3_column_name(q, c);
                cJSON *v = NULL;
                switch (sqlite3_column_type(q, c)) {
                case SQLITE_INTEGER: v = cJSON_CreateNumber((double)sqlite3_column_int64(q, c)); break;
                case SQLITE_FLOAT: v = cJSON_CreateNumber(sqlite3_column_double(q, c)); break;
                case SQLITE_NULL: v = cJSON_CreateNull(); break;
                default: {
                    const char *t = (const char *)sqlite3_column_text(q, c);
                    if (dk_export_json_column(name)) v = cJSON_Parse(t);
                    if (!v) v = cJSON_CreateString(t ? t : "");
                }
                }
                cJSON_AddItemToObject(o, name, v);
            }
            char *txt = o ? cJSON_PrintUnformatted(o) : NULL;
            cJSON_Delete(o);
            if (!txt) return -1;
            fprintf(f, "%s\n%s", n ? "," : "", txt);
            free(txt);
        }
        n++;
    }
    if (json) fputs(n ? "\n]\n" : "]\n", f);
    return step == SQLITE_DONE ? n : -1;
}

int dk_cmd_export(int argc, char **argv) {
    const char *db = "results/dashkit.db", *format = NULL, *out = NULL;
    long long run = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { dk_export_usage(stdout); return 0; }
        int has_val = !strcmp(a, "--db") || !strcmp(a, "--format") || !strcmp(a, "--out") || !strcmp(a, "--run");
        if (has_val && i + 1 >= argc) {
            fprintf(stderr, "dashkit export: option %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--db")) db = argv[++i];
        else if (!strcmp(a, "--format")) format = argv[++i];
        else if (!strcmp(a, "--out")) out = argv[++i];
        else if (!strcmp(a, "--run")) {
            if (!dk_cli_parse_run_id("export", argv[++i], &run)) return 2;
        } else {
            fprintf(stderr, "dashkit export: unknown argument '%s' (see --help)\n", dk_cli_esc(a));
            return 2;
        }
    }
    if (!format) { fprintf(stderr, "dashkit export: --format csv|json is required\n"); return 2; }
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
    sqlite3 *h = dk_store_db(s);
    sqlite3_stmt *q = NULL;
    FILE *f = NULL;
    char tmp[4096] = "";
    int rc = 1;
    if (run) {
        if (sqlite3_prepare_v2(h, "SELECT 1 FROM runs WHERE id = ?", -1, &q, NULL) != SQLITE_OK) goto sql_fail;
        sqlite3_bind_int64(q, 1, run);
        int found = sqlite3_step(q) == SQLITE_ROW;
        sqlite3_finalize(q);
        q = NULL;
        if (!found) { /* a bad parameter (exit 2), as report and plot */
            fprintf(stderr, "dashkit export: %s: no run %lld\n", dk_cli_esc(db), run);
            rc = 2;
            goto done;
        }
    }
    if (sqlite3_prepare_v2(h,
            "SELECT * FROM sample_rows WHERE ?1 = 0 OR cell_id IN (SELECT cell_id FROM run_cells WHERE run_id = ?1)"
            " ORDER BY cell_id, sample_id", -1, &q, NULL) != SQLITE_OK)
        goto sql_fail;
    sqlite3_bind_int64(q, 1, run);
    if (out) {
        snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", out);
        int fd = mkstemp(tmp);
        if (fd < 0 || !(f = fdopen(fd, "w"))) {
            fprintf(stderr, "dashkit export: %s: cannot create: %s\n", out, strerror(errno));
            if (fd >= 0) { close(fd); unlink(tmp); }
            tmp[0] = 0;
            goto done;
        }
    } else {
        f = stdout;
    }
    int n = dk_export_rows(q, f, json);
    if (n < 0) goto sql_fail;
    if (out) {
        int bad = fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0;
        bad |= fclose(f) != 0;
        f = NULL;
        if (bad || rename(tmp, out) != 0) {
            fprintf(stderr, "dashkit export: %s: write failed: %s\n", out, strerror(errno));
            goto done;
        }
        tmp[0] = 0;
        fprintf(stderr, "dashkit export: %d rows -> %s\n", n, out);
    } else if (fflush(stdout) != 0) {
        fprintf(stderr, "dashkit export: stdout: write failed: %s\n", strerror(errno));
        goto done;
    }
    rc = 0;
    goto done;
sql_fail:
    fprintf(stderr, "dashkit export: %s: %s\n", db, sqlite3_errmsg(h));
done:
    if (f && f != stdout) fclose(f);
    if (tmp[0]) unlink(tmp);
    sqlite3_finalize(q);
    dk_store_close(s);
    return rc;
}
