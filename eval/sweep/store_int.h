/* store_int.h — what the store's own files (eval/sweep/store*.c) share: the handle and the SQLite
 * helpers. Only store*.c include it; everyone else reads and writes through store.h. */
#ifndef DK_STORE_INT_H
#define DK_STORE_INT_H

#include "store.h"
#include <sqlite3.h>

struct dk_store {
    sqlite3 *db;
    char *path;
    int readonly;
};

dk_cell_state dk_cell_state_parse(const unsigned char *s);
/* DK_ERR_ARG for a constraint violation, else DK_ERR_IO: "PATH: what: SQLite's message" */
dk_status dk_sql_fail(dk_store *s, dk_err *err, const char *what);
dk_status dk_sql_exec(dk_store *s, const char *sql, dk_err *err);
dk_status dk_sql_prepare(dk_store *s, const char *sql, sqlite3_stmt **st, dk_err *err);
void dk_sql_rollback(dk_store *s); /* when a transaction is open */
/* Ends the open transaction: COMMIT when rc is DK_OK (a failed COMMIT rolls back and is the
 * result), else ROLLBACK; returns the result. */
dk_status dk_sql_end(dk_store *s, dk_status rc, dk_err *err);
void dk_sql_bind_text(sqlite3_stmt *st, int i, const char *v); /* NULL -> NULL */
void dk_sql_bind_real(sqlite3_stmt *st, int i, double v);      /* NAN -> NULL */
void dk_sql_bind_known(sqlite3_stmt *st, int i, int64_t v);    /* < 0 (unknown) -> NULL */
char *dk_sql_strdup(const unsigned char *s);                   /* NULL -> NULL */
double dk_sql_col_real(sqlite3_stmt *q, int i);                /* NULL -> NAN */
int64_t dk_sql_col_known(sqlite3_stmt *q, int i);              /* NULL -> -1 */
/* *out = an owned copy of column i (NULL for NULL); -1 when out of memory */
int dk_sql_col_text(sqlite3_stmt *q, int i, char **out);
/* One parameter value for dk_sql_bind_all, made by DK_V_TEXT (NULL -> NULL), DK_V_INT,
 * DK_V_DOUBLE, DK_V_REAL (NAN -> NULL) or DK_V_KNOWN (< 0 -> NULL). */
typedef struct {
    enum { DK_SQL_VAL_TEXT, DK_SQL_VAL_INT, DK_SQL_VAL_DOUBLE, DK_SQL_VAL_REAL, DK_SQL_VAL_KNOWN } kind;
    union {
        const char *t;
        int64_t i;
        double d;
    } v;
} dk_sql_val;
#define DK_V_TEXT(x) ((dk_sql_val){DK_SQL_VAL_TEXT, {.t = (x)}})
#define DK_V_INT(x) ((dk_sql_val){DK_SQL_VAL_INT, {.i = (x)}})
#define DK_V_DOUBLE(x) ((dk_sql_val){DK_SQL_VAL_DOUBLE, {.d = (x)}})
#define DK_V_REAL(x) ((dk_sql_val){DK_SQL_VAL_REAL, {.d = (x)}})
#define DK_V_KNOWN(x) ((dk_sql_val){DK_SQL_VAL_KNOWN, {.i = (x)}})
/* Binds v[0..n) to parameters first, first + 1, ...; DK_SQL_BIND(st, first, DK_V_TEXT(a),
 * DK_V_INT(b), ...) binds its list, so a statement's values read in the order of its columns. */
void dk_sql_bind_all(sqlite3_stmt *st, int first, const dk_sql_val *v, size_t n);
/* dk_sql_prepare, then the values bound from parameter 1: DK_SQL_PREPARE(s, sql, &st, err,
 * DK_V_TEXT(a), ...). */
dk_status dk_sql_prepare_bind(dk_store *s, const char *sql, sqlite3_stmt **st, dk_err *err,
                              const dk_sql_val *v, size_t n);
#define DK_SQL_PREPARE(s, sql, st, err, ...)                          \
    dk_sql_prepare_bind(s, sql, st, err, (dk_sql_val[]){__VA_ARGS__}, \
                        sizeof((dk_sql_val[]){__VA_ARGS__}) / sizeof(dk_sql_val))
#define DK_SQL_BIND(st, first, ...)                         \
    dk_sql_bind_all(st, first, (dk_sql_val[]){__VA_ARGS__}, \
                    sizeof((dk_sql_val[]){__VA_ARGS__}) / sizeof(dk_sql_val))

#endif
