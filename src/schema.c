/* schema: the database's schema brought to this build's at start (migrations, then
 * function files), and the refusal of a database that a newer b2bd has brought further. */
#include "b2bd/schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "b2bd/log.h"

static const char SQL_LOCK[] = "SELECT pg_advisory_xact_lock($1::bigint)";
static const char SQL_CREATE_FUNCTIONS[] =
    "CREATE TABLE IF NOT EXISTS schema_functions ("
    " file text PRIMARY KEY, checksum text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";
static const char SQL_CREATE_VERSION[] =
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),"
    " version integer NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())";
/* The recorded schema version (0: none yet) and the newest migration applied (0: none;
 * schema_migrations is made by db_migrate, so it may not exist yet). */
static const char SQL_VERSIONS[] =
    "SELECT coalesce((SELECT version FROM schema_version), 0),"
    "       to_regclass('schema_migrations') IS NOT NULL";
static const char SQL_NEWEST_MIGRATION[] =
    "SELECT coalesce(max(version), 0) FROM schema_migrations";
static const char SQL_CHECKSUM[] = "SELECT checksum FROM schema_functions WHERE file = $1";
static const char SQL_RECORD_FILE[] =
    "INSERT INTO schema_functions (file, checksum) VALUES ($1, $2)"
    " ON CONFLICT (file) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now()";
static const char SQL_RECORD_VERSION[] =
    "INSERT INTO schema_version (version) VALUES ($1::integer)"
    " ON CONFLICT (only_row) DO UPDATE SET version = EXCLUDED.version, applied_at = now()"
    " WHERE schema_version.version < EXCLUDED.version";

/* SHA-256 of text, in hex. Returns 0, or -1 with err. */
static int schema_checksum(const char *text, char hex[65], struct b2bd_err *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(text, strlen(text), md, &n, EVP_sha256(), NULL) != 1 || n != 32) {
        b2bd_err_set(err, B2BD_ERR_INTERNAL, NULL, "SHA-256 failed");
        return -1;
    }
    for (unsigned int i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* In an open transaction: takes the migration lock and makes the bookkeeping tables. */
static int schema_lock(struct b2bd_db *db, struct b2bd_err *err)
{
    char lock[32];
    snprintf(lock, sizeof lock, "%lld", DB_MIGRATION_LOCK);
    const char *lp[] = {lock};
    PGresult *res = db_query(db, SQL_LOCK, 1, lp, NULL, NULL, err);
    if (!res)
        return -1;
    PQclear(res);
    if (db_exec(db, SQL_CREATE_FUNCTIONS, err) < 0 || db_exec(db, SQL_CREATE_VERSION, err) < 0)
        return -1;
    return 0;
}

/* In an open transaction holding the lock: SCHEMA_NEWER, err naming both versions, when
 * the database is beyond version or newest_migration; else 0; -1 with err. */
static int schema_refuse_newer(struct b2bd_db *db, int version, int newest_migration,
                               struct b2bd_err *err)
{
    PGresult *res = db_query(db, SQL_VERSIONS, 0, NULL, NULL, NULL, err);
    if (!res)
        return -1;
    int recorded = atoi(PQgetvalue(res, 0, 0));
    int has_migrations = PQgetvalue(res, 0, 1)[0] == 't';
    PQclear(res);
    int newest = 0;
    if (has_migrations) {
        if (!(res = db_query(db, SQL_NEWEST_MIGRATION, 0, NULL, NULL, NULL, err)))
            return -1;
        newest = atoi(PQgetvalue(res, 0, 0));
        PQclear(res);
    }
    if (recorded > version) {
        b2bd_err_set(err, B2BD_ERR_INTERNAL, NULL,
                     "the database's schema version %d is newer than this b2bd's schema "
                     "version %d: start a b2bd whose schema version is %d or higher",
                     recorded, version, recorded);
        return SCHEMA_NEWER;
    }
    if (newest > newest_migration) {
        b2bd_err_set(err, B2BD_ERR_INTERNAL, NULL,
                     "the database holds migration %d, newer than this b2bd's newest, %d "
                     "(schema version %d): start a newer b2bd",
                     newest, newest_migration, version);
        return SCHEMA_NEWER;
    }
    return 0;
}

static void schema_rollback(struct b2bd_db *db)
{
    if (db_connected(db)) {
        struct b2bd_err ignored;
        db_exec(db, "ROLLBACK", &ignored);
    }
}

/* Opens the transaction, takes the lock and refuses a database beyond version or
 * newest_migration (SCHEMA_NEWER). Returns 0 with the transaction open, else -1 or
 * SCHEMA_NEWER (the caller rolls back). */
static int schema_begin(struct b2bd_db *db, int version, int newest_migration,
                        struct b2bd_err *err)
{
    if (db_connect(db, err) < 0 || db_exec(db, "BEGIN", err) < 0)
        return -1;
    int rc = schema_lock(db, err);
    return rc == 0 ? schema_refuse_newer(db, version, newest_migration, err) : rc;
}

int schema_apply_functions(struct b2bd_db *db, int version, int newest_migration,
                           const struct b2bd_sqlfile *files, int n, int *applied,
                           struct b2bd_err *err)
{
    *applied = 0;
    int rc = schema_begin(db, version, newest_migration, err);
    int done = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        char sum[65];
        if ((rc = schema_checksum(files[i].sql, sum, err)) < 0)
            break;
        const char *cp[] = {files[i].name};
        PGresult *res = db_query(db, SQL_CHECKSUM, 1, cp, NULL, NULL, err);
        if (!res) {
            rc = -1;
            break;
        }
        int same = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), sum) == 0;
        PQclear(res);
        if (same)
            continue;
        const char *rp[] = {files[i].name, sum};
        if (db_exec(db, files[i].sql, err) < 0 ||
            !(res = db_query(db, SQL_RECORD_FILE, 2, rp, NULL, NULL, err))) {
            log_error("db", "functions_failed", LOG_STR("file", files[i].name),
                      LOG_STR("error", err->msg));
            rc = -1;
            break;
        }
        PQclear(res);
        log_info("db", "functions_applied", LOG_STR("file", files[i].name),
                 LOG_STR("sha256", sum));
        done++;
    }
    if (rc == 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", version);
        const char *vp[] = {v};
        PGresult *res = db_query(db, SQL_RECORD_VERSION, 1, vp, NULL, NULL, err);
        if (!res)
            rc = -1;
        PQclear(res);
    }
    if (rc == 0 && db_exec(db, "COMMIT", err) < 0)
        rc = -1;
    if (rc != 0) {
        schema_rollback(db);
        return rc;
    }
    *applied = done;
    return 0;
}

/* Before any migration: SCHEMA_NEWER when the database is beyond this build, else 0. */
static int schema_check(struct b2bd_db *db, int newest_migration, struct b2bd_err *err)
{
    int rc = schema_begin(db, b2bd_schema_version, newest_migration, err);
    if (rc == 0 && db_exec(db, "COMMIT", err) < 0)
        rc = -1;
    if (rc != 0)
        schema_rollback(db);
    return rc;
}

int schema_update(struct b2bd_db *db, struct b2bd_err *err)
{
    int newest = b2bd_migrations_count ? b2bd_migrations[b2bd_migrations_count - 1].version : 0;
    int rc = schema_check(db, newest, err);
    if (rc != 0)
        return rc;
    if (db_migrate(db, err) < 0)
        return -1;
    int applied = 0;
    rc = schema_apply_functions(db, b2bd_schema_version, newest, b2bd_functions,
                                b2bd_functions_count, &applied, err);
    if (rc == 0)
        log_info("db", "schema_ready", LOG_INT("schema_version", b2bd_schema_version),
                 LOG_INT("function_files_applied", applied));
    return rc;
}
