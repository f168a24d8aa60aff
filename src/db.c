/* db: one PostgreSQL connection: connect, migrate, run prepared statements. */
#include "b2bd/db.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b2bd/log.h"
#include "b2bd/metrics.h"
#include "b2bd/migrations.h"

void db_init(struct b2bd_db *db, const char *dsn, const char *password)
{
    memset(db, 0, sizeof *db);
    db->dsn = strdup(dsn ? dsn : "");
    db->password = password ? strdup(password) : NULL;
}

void db_disconnect(struct b2bd_db *db)
{
    if (db->conn)
        PQfinish(db->conn);
    db->conn = NULL;
    db->n_prepared = 0;
}

void db_free(struct b2bd_db *db)
{
    db_disconnect(db);
    free(db->dsn);
    if (db->password) {
        memset(db->password, 0, strlen(db->password));
        free(db->password);
    }
    memset(db, 0, sizeof *db);
}

bool db_connected(const struct b2bd_db *db)
{
    return db->conn && PQstatus(db->conn) == CONNECTION_OK;
}

/* Drops the notice lines libpq prints on stderr by default; they are not events. */
static void db_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

int db_connect(struct b2bd_db *db, struct b2bd_err *err)
{
    if (db_connected(db))
        return 0;
    db_disconnect(db);
    const char *keys[] = {"dbname", "password", "application_name", "connect_timeout", NULL};
    const char *vals[] = {db->dsn, db->password, "b2bd", "10", NULL};
    db->conn = PQconnectdbParams(keys, vals, 1);
    if (!db->conn || PQstatus(db->conn) != CONNECTION_OK) {
        /* libpq's message names host and port, never the password */
        char msg[200];
        snprintf(msg, sizeof msg, "%s", db->conn ? PQerrorMessage(db->conn) : "out of memory");
        msg[strcspn(msg, "\n")] = '\0';
        db_disconnect(db);
        b2bd_err_set(err, B2BD_ERR_DB, NULL, "cannot connect to PostgreSQL: %s", msg);
        return -1;
    }
    PQsetNoticeProcessor(db->conn, db_notice, NULL);
    db->reconnects++;
    if (db->reconnects > 1 && db->metrics) /* this connection was up before and was lost */
        metrics_inc(db->metrics->db_reconnects, NULL, 1);
    return 0;
}

static void db_fail(struct b2bd_db *db, PGresult *res, struct b2bd_err *err)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    snprintf(db->sqlstate, sizeof db->sqlstate, "%s", state ? state : "");
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    const char *hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;
    snprintf(db->err_message, sizeof db->err_message, "%s", primary ? primary : "");
    snprintf(db->err_detail, sizeof db->err_detail, "%s", detail ? detail : "");
    snprintf(db->err_hint, sizeof db->err_hint, "%s", hint ? hint : "");
    char msg[200];
    snprintf(msg, sizeof msg, "%s", db->conn ? PQerrorMessage(db->conn) : "no connection");
    msg[strcspn(msg, "\n")] = '\0';
    b2bd_err_set(err, B2BD_ERR_DB, NULL, "%s%s%s", msg, state ? " sqlstate=" : "",
                 state ? state : "");
}

static bool db_result_ok(PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

int db_exec(struct b2bd_db *db, const char *sql, struct b2bd_err *err)
{
    db->sqlstate[0] = '\0';
    if (!db->conn) {
        snprintf(db->sqlstate, sizeof db->sqlstate, "08003");
        b2bd_err_set(err, B2BD_ERR_DB, NULL, "no connection to PostgreSQL");
        return -1;
    }
    PGresult *res = PQexec(db->conn, sql);
    if (!res || !db_result_ok(res)) {
        db_fail(db, res, err);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

static int db_statement(struct b2bd_db *db, const char *sql, int n, char name[16],
                        struct b2bd_err *err)
{
    for (int i = 0; i < db->n_prepared; i++) {
        if (db->prepared[i] == sql) {
            snprintf(name, 16, "s%d", i);
            return 0;
        }
    }
    if (db->n_prepared == DB_MAX_PREPARED) {
        name[0] = '\0'; /* run unprepared */
        return 0;
    }
    snprintf(name, 16, "s%d", db->n_prepared);
    PGresult *res = PQprepare(db->conn, name, sql, n, NULL);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        db_fail(db, res, err);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    db->prepared[db->n_prepared++] = sql;
    return 0;
}

PGresult *db_query(struct b2bd_db *db, const char *sql, int n, const char *const *values,
                   const int *lengths, const int *formats, struct b2bd_err *err)
{
    db->sqlstate[0] = '\0';
    if (!db->conn) {
        snprintf(db->sqlstate, sizeof db->sqlstate, "08003");
        b2bd_err_set(err, B2BD_ERR_DB, NULL, "no connection to PostgreSQL");
        return NULL;
    }
    char name[16];
    if (db_statement(db, sql, n, name, err) < 0)
        return NULL;
    PGresult *res = name[0]
        ? PQexecPrepared(db->conn, name, n, values, lengths, formats, 0)
        : PQexecParams(db->conn, sql, n, NULL, values, lengths, formats, 0);
    if (!res || !db_result_ok(res)) {
        db_fail(db, res, err);
        PQclear(res);
        return NULL;
    }
    return res;
}

/* The name a statement has (or will have once prepared) on this connection; -1 when the
 * cache is full (run unprepared). *known says whether it is prepared already. */
static int db_statement_slot(struct b2bd_db *db, const char *sql, int *known)
{
    for (int i = 0; i < db->n_prepared; i++)
        if (db->prepared[i] == sql) {
            *known = 1;
            return i;
        }
    *known = 0;
    return db->n_prepared < DB_MAX_PREPARED ? db->n_prepared : -1;
}

int db_pipeline(struct b2bd_db *db, const struct db_stmt *stmts, int count, PGresult **results,
                struct b2bd_err *err)
{
    db->sqlstate[0] = '\0';
    if (results)
        for (int i = 0; i < count; i++)
            results[i] = NULL;
    if (!db->conn) {
        snprintf(db->sqlstate, sizeof db->sqlstate, "08003");
        b2bd_err_set(err, B2BD_ERR_DB, NULL, "no connection to PostgreSQL");
        return -1;
    }
    /* A statement not prepared yet is prepared inside the pipeline, just before it runs:
     * a Parse sent earlier would run before, say, a ROLLBACK TO SAVEPOINT at its head. */
    int *prepare = calloc((size_t)count, sizeof *prepare); /* slot + 1 when prepared here */
    if (!prepare)
        abort();
    int rc = PQenterPipelineMode(db->conn) ? 0 : -1;
    int sent = 0;
    int pending = db->n_prepared; /* slots taken by this pipeline's prepares */
    for (int i = 0; i < count && rc == 0; i++, sent++) {
        const struct db_stmt *s = &stmts[i];
        int known = 0, slot = s->simple ? -1 : db_statement_slot(db, s->sql, &known);
        for (int j = 0; j < i && slot >= 0 && !known; j++)
            if (!stmts[j].simple && stmts[j].sql == s->sql && prepare[j]) {
                slot = prepare[j] - 1; /* prepared earlier in this pipeline */
                known = 1;
            }
        if (slot >= 0 && !known) {
            slot = pending++;
            if (slot >= DB_MAX_PREPARED)
                slot = -1;
        }
        char name[16];
        if (slot >= 0)
            snprintf(name, sizeof name, "s%d", slot);
        int ok = 1;
        if (slot >= 0 && !known) {
            ok = PQsendPrepare(db->conn, name, s->sql, s->n, NULL);
            prepare[i] = slot + 1;
        }
        if (ok)
            ok = slot < 0 ? PQsendQueryParams(db->conn, s->sql, s->n, NULL, s->values, s->lengths,
                                              s->formats, 0)
                          : PQsendQueryPrepared(db->conn, name, s->n, s->values, s->lengths,
                                                s->formats, 0);
        if (!ok)
            rc = -1;
    }
    if (rc < 0 || !PQpipelineSync(db->conn)) {
        db_fail(db, NULL, err);
        free(prepare);
        db_disconnect(db); /* a half-sent pipeline leaves the connection unusable */
        return -1;
    }
    PGresult *failed = NULL;
    int made = 0;
    for (int i = 0; i < sent; i++) {
        for (int step = prepare[i] ? 0 : 1; step < 2; step++) { /* the Parse, then the run */
            PGresult *res = PQgetResult(db->conn);
            PGresult *extra;
            while ((extra = PQgetResult(db->conn)) != NULL) /* the end of this message */
                PQclear(extra);
            ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
            if (!failed && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
                failed = res; /* the first failure; the rest are PGRES_PIPELINE_ABORTED */
                res = NULL;
            }
            if (step == 0) {
                if (!failed && res) { /* prepared: remember it for this connection */
                    db->prepared[prepare[i] - 1] = stmts[i].sql;
                    made++;
                }
                PQclear(res);
            } else if (results && !failed) {
                results[i] = res;
            } else {
                PQclear(res);
            }
        }
    }
    /* This pipeline's prepares took the next slots in order, and those after a failure
     * were not run: the ones that succeeded are a prefix, counted in `made`. */
    db->n_prepared += made;
    PGresult *sync = PQgetResult(db->conn);
    PQclear(sync);
    PQexitPipelineMode(db->conn);
    free(prepare);
    if (failed) {
        db_fail(db, failed, err);
        PQclear(failed);
        if (results)
            for (int i = 0; i < sent; i++) {
                PQclear(results[i]);
                results[i] = NULL;
            }
        return -1;
    }
    return 0;
}

bool db_sqlstate_is(const struct b2bd_db *db, const char *state)
{
    return strcmp(db->sqlstate, state) == 0;
}

static const char SQL_LOCK[] = "SELECT pg_advisory_xact_lock($1::bigint)";
static const char SQL_CREATE_VERSIONS[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY, name text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";
static const char SQL_APPLIED[] = "SELECT 1 FROM schema_migrations WHERE version = $1";
static const char SQL_RECORD[] = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)";

/* Runs a migration's text: any number of statements, or none (a frozen migration whose
 * function bodies moved to sql/functions may hold only comments now). */
static int db_run_script(struct b2bd_db *db, const char *sql, struct b2bd_err *err)
{
    db->sqlstate[0] = '\0';
    PGresult *res = PQexec(db->conn, sql);
    if (!res || (!db_result_ok(res) && PQresultStatus(res) != PGRES_EMPTY_QUERY)) {
        db_fail(db, res, err);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

/* Applies one migration if it is not applied yet, in its own transaction, holding the
 * migration lock (waiting for it if another instance migrates now). */
static int db_migrate_one(struct b2bd_db *db, const struct b2bd_migration *m, int *applied,
                          struct b2bd_err *err)
{
    char lock[32], version[16];
    snprintf(lock, sizeof lock, "%lld", DB_MIGRATION_LOCK);
    snprintf(version, sizeof version, "%d", m->version);
    const char *lp[] = {lock};
    const char *vp[] = {version};
    const char *rp[] = {version, m->name};
    PGresult *res = NULL;

    *applied = 0;
    if (db_exec(db, "BEGIN", err) < 0)
        return -1;
    if (!(res = db_query(db, SQL_LOCK, 1, lp, NULL, NULL, err)))
        goto fail;
    PQclear(res);
    if (db_exec(db, SQL_CREATE_VERSIONS, err) < 0)
        goto fail;
    if (!(res = db_query(db, SQL_APPLIED, 1, vp, NULL, NULL, err)))
        goto fail;
    int done = PQntuples(res) > 0;
    PQclear(res);
    if (!done) {
        if (db_run_script(db, m->sql, err) < 0)
            goto fail;
        if (!(res = db_query(db, SQL_RECORD, 2, rp, NULL, NULL, err)))
            goto fail;
        PQclear(res);
        *applied = 1;
    }
    if (db_exec(db, "COMMIT", err) < 0)
        goto fail;
    return 0;
fail:
    if (db_connected(db)) {
        struct b2bd_err ignored;
        db_exec(db, "ROLLBACK", &ignored);
    }
    return -1;
}

int db_migrate(struct b2bd_db *db, struct b2bd_err *err)
{
    if (db_connect(db, err) < 0)
        return -1;
    for (int i = 0; i < b2bd_migrations_count; i++) {
        const struct b2bd_migration *m = &b2bd_migrations[i];
        int applied;
        if (db_migrate_one(db, m, &applied, err) < 0) {
            log_error("db", "migration_failed", LOG_INT("version", m->version),
                      LOG_STR("name", m->name), LOG_STR("error", err->msg));
            return -1;
        }
        if (applied)
            log_info("db", "migrated", LOG_INT("version", m->version), LOG_STR("name", m->name));
    }
    return 0;
}

static int db_drain_notifies(struct b2bd_db *db)
{
    int got = 0;
    PGnotify *n;
    while ((n = PQnotifies(db->conn)) != NULL) {
        PQfreemem(n);
        got = 1;
    }
    return got;
}

int db_wait_notify(struct b2bd_db *db, int timeout_ms)
{
    if (!db_connected(db))
        return 0;
    if (db_drain_notifies(db))
        return 1;
    struct pollfd pfd = {.fd = PQsocket(db->conn), .events = POLLIN};
    if (poll(&pfd, 1, timeout_ms) > 0)
        PQconsumeInput(db->conn);
    return db_drain_notifies(db);
}
