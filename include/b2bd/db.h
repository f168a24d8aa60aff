/* db: one PostgreSQL connection: connect, migrate, run prepared statements. */
#ifndef B2BD_DB_H
#define B2BD_DB_H

#include <stdbool.h>
#include <libpq-fe.h>

#include "b2bd/err.h"

#define DB_MAX_PREPARED 96

struct b2bd_metrics;

struct b2bd_db {
    PGconn *conn;
    char *dsn;                  /* owned copy; may hold a password: never log it */
    char *password;             /* owned copy or NULL */
    const char *prepared[DB_MAX_PREPARED]; /* statement texts prepared on conn, by identity */
    int n_prepared;
    char sqlstate[6];           /* of the last failed statement, "" if none */
    char err_message[256];      /* its primary message, detail and hint ("" if none) */
    char err_detail[64];
    char err_hint[128];
    unsigned long reconnects;
    struct b2bd_metrics *metrics; /* counts reconnects; NULL (db_init's): not counted */
};

/* Copies dsn and password (may be NULL); does not connect. Set metrics afterwards to
 * have reconnects counted. */
void db_init(struct b2bd_db *db, const char *dsn, const char *password);
void db_free(struct b2bd_db *db);

/* (Re)connects if not connected. Returns 0, or -1 with err (B2BD_ERR_DB). */
int db_connect(struct b2bd_db *db, struct b2bd_err *err);
void db_disconnect(struct b2bd_db *db);
bool db_connected(const struct b2bd_db *db);

/* Key of the advisory lock held while the schema is brought up to date ("b2bd" in ASCII,
 * then 1): the migrations here, the function files in schema.c. */
#define DB_MIGRATION_LOCK 0x6232626401LL

/* Applies the embedded migrations not applied yet, in one transaction per version,
 * under an advisory lock so that several instances may start at once. b2bd starts with
 * schema_update (schema.h), which runs this between its own steps. */
int db_migrate(struct b2bd_db *db, struct b2bd_err *err);

/* Runs sql (a static string: it is prepared once per connection, keyed by its
 * address) with n text parameters (NULL entries are SQL NULL). lengths and formats
 * may be NULL (all text); a format of 1 marks a binary parameter of the given length.
 * Returns the result (caller PQclear()s) or NULL with err: B2BD_ERR_DB, and
 * db->sqlstate set. */
PGresult *db_query(struct b2bd_db *db, const char *sql, int n, const char *const *values,
                   const int *lengths, const int *formats, struct b2bd_err *err);

/* One statement of a pipeline: a static sql with n parameters as for db_query, or,
 * with simple set, a statement without parameters (SAVEPOINT ...), not prepared. */
struct db_stmt {
    const char *sql;
    int n;
    const char *const *values;
    const int *lengths;
    const int *formats;
    int simple;
};

/* Runs count statements in one round trip (libpq's pipeline mode), in order, in the
 * open transaction. On success returns 0 and, when results is not NULL, results[i]
 * for each (the caller PQclear()s them). On the first failure returns -1 with err
 * and db->sqlstate as db_query sets them; the statements after it did not run. */
int db_pipeline(struct b2bd_db *db, const struct db_stmt *stmts, int count, PGresult **results,
                struct b2bd_err *err);

/* Runs sql without parameters and without preparing (BEGIN, SAVEPOINT ...).
 * Returns 0 or -1 with err. */
int db_exec(struct b2bd_db *db, const char *sql, struct b2bd_err *err);

/* Waits up to timeout_ms for a NOTIFY on a channel this connection LISTENs to, and
 * consumes all that arrived. Returns at once if one arrived during an earlier
 * statement (libpq queues those). Returns 1 if a notification came, else 0. */
int db_wait_notify(struct b2bd_db *db, int timeout_ms);
bool db_sqlstate_is(const struct b2bd_db *db, const char *state);

#endif
