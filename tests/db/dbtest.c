/* dbtest: throwaway databases and appliers for the database tests. */
#include "dbtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b2bd/schema.h"
#include "b2bd/util.h"

extern char **environ;

#define DBT_PARTITIONS 4

int dbt_failures;

static const char *env_or_die(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "dbtest: %s is not set (source build/localenv/env.sh)\n", name);
        exit(2);
    }
    return v;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "dbtest: %s: %s\n", what, detail ? detail : "");
    abort();
}

static PGconn *connect_or_die(const char *dsn)
{
    PGconn *c = PQconnectdb(dsn);
    if (PQstatus(c) != CONNECTION_OK)
        die("connect", PQerrorMessage(c));
    PGresult *r = PQexec(c, "SET client_min_messages = warning");
    PQclear(r);
    return c;
}

static void admin_exec(const char *sql)
{
    PGconn *c = connect_or_die(env_or_die("PG_ADMIN_DSN"));
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        die(sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

static char *dsn_for(const char *dbname)
{
    struct sbuf b = {0};
    sbuf_addf(&b, "host=127.0.0.1 port=%s user=b2bd dbname=%s", env_or_die("PG_PORT"), dbname);
    return b.s;
}

void dbt_drop_db(const char *dbname)
{
    struct sbuf b = {0};
    sbuf_addf(&b, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", dbname);
    admin_exec(sbuf_str(&b));
    sbuf_free(&b);
}

void dbt_create_db(const char *dbname, const char *create_opts)
{
    dbt_drop_db(dbname);
    struct sbuf b = {0};
    sbuf_addf(&b, "CREATE DATABASE \"%s\" OWNER b2bd TEMPLATE template0 ENCODING 'UTF8' %s", dbname,
              create_opts);
    admin_exec(sbuf_str(&b));
    sbuf_free(&b);
    char *dsn = dsn_for(dbname);
    struct b2bd_db db;
    struct b2bd_err err;
    db_init(&db, dsn, NULL);
    if (schema_update(&db, &err) != 0)
        die("schema", err.msg);
    db_free(&db);
    free(dsn);
}

void dbt_clone_db(const char *dbname, const char *template)
{
    dbt_drop_db(dbname);
    struct sbuf b = {0};
    sbuf_addf(&b, "CREATE DATABASE \"%s\" OWNER b2bd TEMPLATE \"%s\"", dbname, template);
    admin_exec(sbuf_str(&b));
    sbuf_free(&b);
}

void dbt_world_open(struct dbt_world *w, const char *dbname, const char *bulk)
{
    memset(w, 0, sizeof *w);
    snprintf(w->dbname, sizeof w->dbname, "%s", dbname);
    w->dsn = dsn_for(dbname);
    /* the environment, with this world's database and bulk_assign */
    size_t n = 0;
    while (environ[n])
        n++;
    char **envp = calloc(n + 3, sizeof *envp);
    struct sbuf dsn = {0}, bk = {0};
    sbuf_addf(&dsn, "B2BD_PG_DSN=%s", w->dsn);
    sbuf_addf(&bk, "B2BD_BULK_ASSIGN=%s", bulk);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "B2BD_PG_DSN=", 12) != 0 &&
            strncmp(environ[i], "B2BD_BULK_ASSIGN=", 17) != 0)
            envp[k++] = environ[i];
    envp[k++] = dsn.s;
    envp[k++] = bk.s;
    struct b2bd_err err;
    if (config_load(NULL, envp, &w->cfg, &err) < 0)
        die("config", err.msg);
    free(envp);
    sbuf_free(&dsn);
    sbuf_free(&bk);
    db_init(&w->db, w->cfg.pg_dsn, w->cfg.pg_password);
    w->ap = (struct b2bd_applier){.db = &w->db, .cfg = &w->cfg};
    w->aux = connect_or_die(w->dsn);
}

void dbt_world_close(struct dbt_world *w)
{
    if (w->aux)
        PQfinish(w->aux);
    db_free(&w->db);
    config_free(&w->cfg);
    free(w->dsn);
    memset(w, 0, sizeof *w);
}

PGresult *dbt_sql(struct dbt_world *w, const char *sql, int n, const char *const *v)
{
    PGresult *r = PQexecParams(w->aux, sql, n, NULL, v, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        die(sql, PQerrorMessage(w->aux));
    return r;
}

char *dbt_sql_value(struct dbt_world *w, const char *sql, int n, const char *const *v)
{
    PGresult *r = dbt_sql(w, sql, n, v);
    if (PQntuples(r) != 1 || PQnfields(r) != 1)
        die("expected one value", sql);
    char *s = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (!s)
        abort();
    return s;
}

const char *dbt_topic_name(enum b2bd_topic t)
{
    switch (t) {
    case TOPIC_ASSIGN: return "dbt.commands.assign";
    case TOPIC_REVOKE: return "dbt.commands.revoke";
    case TOPIC_MIGRATE: return "dbt.commands.migrate";
    case TOPIC_NOTIFY: return "dbt.commands.notify";
    default: return "dbt.commands.sync";
    }
}

void dbt_batch_add(struct dbt_batch *b, enum b2bd_topic topic, int partition, const char *key,
                   const char *json)
{
    static int64_t next_offset[TOPIC_COUNT][DBT_PARTITIONS];
    if (partition < 0 || partition >= DBT_PARTITIONS)
        die("partition out of range", NULL);
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->msgs = realloc(b->msgs, b->cap * sizeof *b->msgs);
        if (!b->msgs)
            abort();
    }
    char *k = strdup(key), *v = strdup(json);
    if (!k || !v)
        abort();
    b->msgs[b->n++] = (struct b2bd_msg){.topic = topic, .topic_name = dbt_topic_name(topic),
                                        .partition = partition,
                                        .offset = next_offset[topic][partition]++,
                                        .key = k, .key_len = strlen(k),
                                        .value = v, .value_len = strlen(v)};
}

void dbt_batch_clear(struct dbt_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free((void *)b->msgs[i].key);
        free((void *)b->msgs[i].value);
    }
    b->n = 0;
}

void dbt_batch_free(struct dbt_batch *b)
{
    dbt_batch_clear(b);
    free(b->msgs);
    memset(b, 0, sizeof *b);
}

int dbt_apply_rc(struct dbt_world *w, const struct dbt_batch *b)
{
    struct b2bd_err err;
    b2bd_err_clear(&err);
    int rc = apply_batch(&w->ap, b->msgs, b->n, &w->st, &err);
    if (rc < 0)
        fprintf(stderr, "dbtest: apply_batch on %s: %s\n", w->dbname, err.msg);
    return rc;
}

void dbt_apply(struct dbt_world *w, const struct dbt_batch *b)
{
    if (dbt_apply_rc(w, b) < 0)
        abort();
}

json_t *dbt_result(struct dbt_world *w, const char *command_id)
{
    const char *v[] = {command_id};
    PGresult *r = dbt_sql(w, "SELECT convert_from(value, 'UTF8') FROM outbox WHERE topic = 'results'"
                             " AND convert_from(value, 'UTF8')::jsonb ->> 'command_id' = $1"
                             " ORDER BY id DESC LIMIT 1", 1, v);
    json_t *j = PQntuples(r) == 1 ? json_loads(PQgetvalue(r, 0, 0), 0, NULL) : NULL;
    PQclear(r);
    return j;
}
