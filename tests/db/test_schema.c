/* test_schema: the function files and the schema version (src/schema.c), at the level of
 * the applier, on a database of the test's own:
 *   - a database schema_update made holds every function file of this build, recorded
 *     with its checksum, and this build's schema version; applying the build's files again
 *     runs none;
 *   - a set of files is applied once: again, nothing is run; one of them edited, only that
 *     one is run, and the database has its new body; another file unchanged keeps its
 *     record;
 *   - a database whose recorded schema version is higher than this build's, or which
 *     holds a migration this build does not know, is refused (SCHEMA_NEWER, the message
 *     naming both versions) and nothing is applied to it.
 * (The daemon's exit status on such a database: integration test_schema.py.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "b2bd/log.h"
#include "b2bd/schema.h"
#include "dbtest.h"


static int newest_migration(void)
{
    return b2bd_migrations[b2bd_migrations_count - 1].version;
}

/* schema_apply_functions on the world's database; returns its rc, *applied the count. */
static int apply(struct dbt_world *w, int version, const struct b2bd_sqlfile *files, int n,
                 int *applied, struct b2bd_err *err)
{
    b2bd_err_clear(err);
    return schema_apply_functions(&w->db, version, newest_migration(), files, n, applied, err);
}

static int int_value(struct dbt_world *w, const char *sql)
{
    char *v = dbt_sql_value(w, sql, 0, NULL);
    int n = atoi(v);
    free(v);
    return n;
}

static void builds_files(struct dbt_world *w)
{
    struct b2bd_err err;
    int applied = -1;
    DBT_CHECK(int_value(w, "SELECT count(*) FROM schema_functions") == b2bd_functions_count,
          "every function file recorded");
    DBT_CHECK(int_value(w, "SELECT version FROM schema_version") == b2bd_schema_version,
          "the build's schema version recorded");
    DBT_CHECK(apply(w, b2bd_schema_version, b2bd_functions, b2bd_functions_count, &applied,
                &err) == 0 && applied == 0,
          "the build's files again: %d run (%s)", applied, err.msg);
}

static void edited_file(struct dbt_world *w)
{
    struct b2bd_err err;
    int applied = -1;
    struct b2bd_sqlfile files[] = {
        {"t_one.sql", "CREATE OR REPLACE FUNCTION b2bdt_one() RETURNS integer LANGUAGE sql"
                      " AS $$ SELECT 1 $$;"},
        {"t_two.sql", "-- two\nCREATE OR REPLACE FUNCTION b2bdt_two() RETURNS integer"
                      " LANGUAGE sql AS $$ SELECT 2 $$;"},
    };
    DBT_CHECK(apply(w, b2bd_schema_version, files, 2, &applied, &err) == 0 && applied == 2,
          "first: %d run (%s)", applied, err.msg);
    DBT_CHECK(int_value(w, "SELECT b2bdt_one() * 10 + b2bdt_two()") == 12, "first: bodies");
    char *one_at = dbt_sql_value(
        w, "SELECT applied_at::text FROM schema_functions WHERE file = 't_one.sql'", 0, NULL);

    DBT_CHECK(apply(w, b2bd_schema_version, files, 2, &applied, &err) == 0 && applied == 0,
          "again: %d run (%s)", applied, err.msg);

    files[1].sql = "-- two, edited\nCREATE OR REPLACE FUNCTION b2bdt_two() RETURNS integer"
                   " LANGUAGE sql AS $$ SELECT 22 $$;";
    DBT_CHECK(apply(w, b2bd_schema_version, files, 2, &applied, &err) == 0 && applied == 1,
          "edited: %d run (%s)", applied, err.msg);
    DBT_CHECK(int_value(w, "SELECT b2bdt_two()") == 22, "edited: the new body");
    char *one_after = dbt_sql_value(
        w, "SELECT applied_at::text FROM schema_functions WHERE file = 't_one.sql'", 0, NULL);
    DBT_CHECK(strcmp(one_at, one_after) == 0, "the unchanged file keeps its record");
    free(one_at);
    free(one_after);
    DBT_CHECK(int_value(w, "SELECT count(*) FROM schema_functions WHERE file = 't_two.sql'"
                       " AND checksum = encode(sha256(convert_to('-- two, edited\nCREATE OR"
                       " REPLACE FUNCTION b2bdt_two() RETURNS integer LANGUAGE sql AS $$"
                       " SELECT 22 $$;', 'UTF8')), 'hex')") == 1,
          "edited: its SHA-256 recorded");
    DBT_CHECK(apply(w, b2bd_schema_version, files, 2, &applied, &err) == 0 && applied == 0,
          "edited, again: %d run (%s)", applied, err.msg);

    /* a file that fails is not recorded, and nothing of its transaction stays */
    files[0].sql = "CREATE OR REPLACE FUNCTION b2bdt_one() RETURNS integer LANGUAGE sql"
                   " AS $$ SELECT 3 $$;";
    files[1].sql = "CREATE OR REPLACE FUNCTION b2bdt_two() RETURNS integer LANGUAGE sql"
                   " AS $$ SELECT no_such_column $$;";
    DBT_CHECK(apply(w, b2bd_schema_version, files, 2, &applied, &err) == -1 && applied == 0,
          "failing file: rc -1, nothing counted");
    DBT_CHECK(int_value(w, "SELECT b2bdt_one() * 100 + b2bdt_two()") == 122,
          "failing file: the earlier file of the set rolled back too");
}

/* The database beyond this build: refused, nothing applied. */
static void newer_database(struct dbt_world *w)
{
    struct b2bd_err err;
    char want[128];
    PQclear(dbt_sql(w, "DELETE FROM schema_functions", 0, NULL));
    char v[16];
    snprintf(v, sizeof v, "%d", b2bd_schema_version + 1);
    const char *p[] = {v};
    PQclear(dbt_sql(w, "UPDATE schema_version SET version = $1::integer", 1, p));

    b2bd_err_clear(&err);
    int rc = schema_update(&w->db, &err);
    DBT_CHECK(rc == SCHEMA_NEWER, "newer version: rc %d (%s)", rc, err.msg);
    snprintf(want, sizeof want, "schema version %d is newer than this b2bd's schema version %d",
             b2bd_schema_version + 1, b2bd_schema_version);
    DBT_CHECK(strstr(err.msg, want) != NULL, "the message names both versions: %s", err.msg);
    DBT_CHECK(int_value(w, "SELECT count(*) FROM schema_functions") == 0, "nothing applied");
    DBT_CHECK(int_value(w, "SELECT version FROM schema_version") == b2bd_schema_version + 1,
          "the recorded version stays");

    /* a migration this build does not know, the version as the build's */
    snprintf(v, sizeof v, "%d", b2bd_schema_version);
    PQclear(dbt_sql(w, "UPDATE schema_version SET version = $1::integer", 1, p));
    PQclear(dbt_sql(w, "INSERT INTO schema_migrations (version, name) VALUES (9999, 'later')",
                    0, NULL));
    b2bd_err_clear(&err);
    rc = schema_update(&w->db, &err);
    DBT_CHECK(rc == SCHEMA_NEWER, "newer migration: rc %d (%s)", rc, err.msg);
    DBT_CHECK(strstr(err.msg, "migration 9999") != NULL, "the message names it: %s", err.msg);
    DBT_CHECK(int_value(w, "SELECT count(*) FROM schema_functions") == 0, "nothing applied");

    /* and without them, the build's files are applied again */
    PQclear(dbt_sql(w, "DELETE FROM schema_migrations WHERE version = 9999", 0, NULL));
    b2bd_err_clear(&err);
    rc = schema_update(&w->db, &err);
    DBT_CHECK(rc == 0, "back to this build's: rc %d (%s)", rc, err.msg);
    DBT_CHECK(int_value(w, "SELECT count(*) FROM schema_functions") == b2bd_functions_count,
          "every file applied again");
}

int main(void)
{
    log_init(LOG_WARN, stderr);
    char name[64];
    snprintf(name, sizeof name, "b2bd_schema_%d", (int)getpid());
    dbt_create_db(name, "");
    struct dbt_world w;
    dbt_world_open(&w, name, "on");

    builds_files(&w);
    edited_file(&w);
    newer_database(&w);

    dbt_world_close(&w);
    dbt_drop_db(name);
    if (dbt_failures) {
        fprintf(stderr, "test_schema: %d failures\n", dbt_failures);
        return 1;
    }
    printf("test_schema: ok\n");
    return 0;
}
