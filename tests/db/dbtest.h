/* dbtest: what the database tests (tests/db) share: a throwaway database per "world",
 * an applier on it, and batches of command messages handed straight to apply_batch
 * (no Kafka). Needs the local environment's PostgreSQL (PG_ADMIN_DSN, PG_PORT: ctest
 * sources build/localenv/env.sh). Every failure of the harness itself aborts. */
#ifndef B2BD_DBTEST_H
#define B2BD_DBTEST_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "b2bd/apply.h"
#include "b2bd/config.h"
#include "b2bd/db.h"

/* A database, with an applier configured with bulk_assign on or off. */
struct dbt_world {
    char dbname[64];
    char *dsn;
    struct b2bd_config cfg;
    struct b2bd_db db;       /* the applier's connection */
    struct b2bd_applier ap;
    struct apply_stats st;
    PGconn *aux;             /* the test's own connection (autocommit) */
};

/* Creates database dbname (dropped first if left over) with the CREATE DATABASE
 * options create_opts (e.g. "LOCALE 'C.utf8'", may be ""), migrates it. */
void dbt_create_db(const char *dbname, const char *create_opts);
void dbt_drop_db(const char *dbname);
/* Creates database dbname as a copy of template (migrated, nobody connected to it). */
void dbt_clone_db(const char *dbname, const char *template);

/* An applier on database dbname (created by dbt_create_db), bulk_assign "on"/"off". */
void dbt_world_open(struct dbt_world *w, const char *dbname, const char *bulk);
void dbt_world_close(struct dbt_world *w);

/* Runs sql (parameters as text, NULL = SQL NULL) on the world's aux connection;
 * aborts unless it succeeds. The caller PQclear()s. */
PGresult *dbt_sql(struct dbt_world *w, const char *sql, int n, const char *const *v);
/* The same, for a query returning one value: a malloc'd copy ("" for NULL). */
char *dbt_sql_value(struct dbt_world *w, const char *sql, int n, const char *const *v);

/* A batch of messages. Offsets grow per topic and partition over the whole process,
 * so the same batch may be applied to several worlds. */
struct dbt_batch {
    struct b2bd_msg *msgs;
    size_t n, cap;
};

/* Adds a message (json is copied); key is copied too. */
void dbt_batch_add(struct dbt_batch *b, enum b2bd_topic topic, int partition, const char *key,
                   const char *json);
void dbt_batch_clear(struct dbt_batch *b);
void dbt_batch_free(struct dbt_batch *b);

/* apply_batch on the world; aborts when it fails (the tests' database does not). */
void dbt_apply(struct dbt_world *w, const struct dbt_batch *b);
/* The same, returning apply_batch's return value. */
int dbt_apply_rc(struct dbt_world *w, const struct dbt_batch *b);

/* The (last) result message of a command in the world's outbox, parsed; NULL if none.
 * The caller json_decref()s. */
json_t *dbt_result(struct dbt_world *w, const char *command_id);

/* The topic enum's message topic name ("dbt.commands.assign"). */
const char *dbt_topic_name(enum b2bd_topic t);

/* Failed checks so far (DBT_CHECK): a test exits non-zero when any failed. */
extern int dbt_failures;

/* Checks cond; when false, prints where and why (printf arguments) and counts it. */
#define DBT_CHECK(cond, ...)                                                  \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);              \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
            dbt_failures++;                                                   \
        }                                                                     \
    } while (0)

#endif
