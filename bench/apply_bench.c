/* apply_bench: commands per second through apply_batch alone (no Kafka), against the
 * database of B2BD_PG_DSN, which must hold company c-0 with location l-0 and customers
 * u-0-0 .. u-0-(N-1) in shop "bench" (bench/assign_bench.py's world).
 *   apply_bench [N [BATCH [new|revoke]]]   new: assigns by email creating N new customers;
 *   revoke: N revokes of the customers' roles at l-0 (given first, untimed) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b2bd/apply.h"
#include "b2bd/config.h"
#include "b2bd/db.h"
#include "b2bd/schema.h"
#include "b2bd/util.h"

extern char **environ;

enum kind { ASSIGN, ASSIGN_NEW, REVOKE };

/* n commands of a kind, applied in batches; returns the milliseconds it took, or -1. */
static int64_t run(struct b2bd_applier *ap, enum kind kind, long n, long batch,
                   struct apply_stats *st, struct b2bd_err *err)
{
    /* B2BD_BENCH_ACTOR=A: each command carries "actor": A and an import_id */
    const char *actor = getenv("B2BD_BENCH_ACTOR");
    char envelope[160] = "";
    if (actor)
        snprintf(envelope, sizeof envelope, "\"actor\":\"%.64s\",\"import_id\":\"bench-import\"", actor);
    char **values = calloc((size_t)n, sizeof *values);
    struct b2bd_msg *msgs = calloc((size_t)n, sizeof *msgs);
    if (!values || !msgs)
        abort();
    for (long i = 0; i < n; i++) {
        char id[37];
        util_uuid_v4(id);
        struct sbuf b = {0};
        if (kind == ASSIGN_NEW)
            sbuf_addf(&b, "{\"command_id\":\"%s\",\"type\":\"assign\",\"shop_id\":\"bench\",\"payload\":"
                          "{\"company_id\":\"c-0\",\"customer\":{\"email\":\"New.%ld@Example.com\","
                          "\"first_name\":\"N\\u00e9w %ld\"},"
                          "\"locations\":[{\"location_id\":\"l-0\",\"role\":\"ordering_only\"}]}}",
                      id, i, i);
        else if (kind == REVOKE)
            sbuf_addf(&b, "{\"command_id\":\"%s\",\"type\":\"revoke\",\"shop_id\":\"bench\",\"payload\":"
                          "{\"company_id\":\"c-0\",\"customer_id\":\"u-0-%ld\",\"scope\":\"locations\","
                          "\"location_ids\":[\"l-0\"]}}", id, i);
        else
            sbuf_addf(&b, "{\"command_id\":\"%s\",\"type\":\"assign\",\"shop_id\":\"bench\",\"payload\":"
                          "{\"company_id\":\"c-0\",\"customer\":{\"id\":\"u-0-%ld\"},"
                          "\"locations\":[{\"location_id\":\"l-0\",\"role\":\"ordering_only\"}]}}", id, i);
        if (actor) { /* as b2bctl import sends them: with an actor and an import id */
            struct sbuf e = {0};
            const char *at = strstr(b.s, "\"shop_id\"");
            sbuf_addf(&e, "%.*s%s,%s", (int)(at - b.s), b.s, envelope, at);
            free(b.s);
            b = e;
        }
        values[i] = b.s;
        msgs[i] = (struct b2bd_msg){.topic = kind == REVOKE ? TOPIC_REVOKE : TOPIC_ASSIGN,
                                    .topic_name = kind == REVOKE ? "bench.commands.revoke"
                                                                 : "bench.commands.assign",
                                    .partition = 0, .offset = i, .key = "bench/c-0", .key_len = 9,
                                    .value = values[i], .value_len = b.len};
    }
    int64_t t0 = util_now_ms(), ms = -1;
    long i;
    for (i = 0; i < n; i += batch) {
        size_t k = (size_t)(n - i < batch ? n - i : batch);
        if (apply_batch(ap, msgs + i, k, st, err) < 0)
            break;
    }
    if (i >= n)
        ms = util_now_ms() - t0;
    for (i = 0; i < n; i++)
        free(values[i]);
    free(values);
    free(msgs);
    return ms;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10000;
    long batch = argc > 2 ? atol(argv[2]) : 500;
    /* "new": assigns by email that create their customers (a CSV import's commands) */
    int new_customers = argc > 3 && strcmp(argv[3], "new") == 0;
    /* "revoke": one location's contacts lose their role there (scope locations) */
    int revokes = argc > 3 && strcmp(argv[3], "revoke") == 0;
    struct b2bd_config cfg;
    struct b2bd_err err;
    if (config_load(NULL, environ, &cfg, &err) < 0) {
        fprintf(stderr, "config: %s %s\n", err.field, err.msg);
        return 2;
    }
    struct b2bd_db db;
    db_init(&db, cfg.pg_dsn, cfg.pg_password);
    if (schema_update(&db, &err) != 0) {
        fprintf(stderr, "db: %s\n", err.msg);
        return 1;
    }
    struct b2bd_applier ap = {.db = &db, .cfg = &cfg};
    struct apply_stats st = {0};
    if (revokes) {
        /* the roles first, untimed */
        if (run(&ap, ASSIGN, n, batch, &st, &err) < 0) {
            fprintf(stderr, "batch: %s\n", err.msg);
            return 1;
        }
        st = (struct apply_stats){0};
    }
    enum kind kind = revokes ? REVOKE : new_customers ? ASSIGN_NEW : ASSIGN;
    int64_t ms = run(&ap, kind, n, batch, &st, &err);
    if (ms < 0) {
        fprintf(stderr, "batch: %s\n", err.msg);
        return 1;
    }
    printf("apply_batch: %ld %s commands in batches of %ld: %lld ms, %.0f commands/s"
           " (applied %lu, rejected %lu, skipped %lu, set-based %lu)\n",
           n, revokes ? "revoke" : "assign", batch, (long long)ms,
           n * 1000.0 / (double)(ms ? ms : 1), st.applied, st.rejected, st.skipped, st.bulk_commands);
    db_free(&db);
    config_free(&cfg);
    return 0;
}
