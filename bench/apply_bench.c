/* apply_bench: commands per second through apply_batch alone (no Kafka), against the
 * database of B2BD_PG_DSN, which must hold company c-0 with location l-0 and customers
 * u-0-0 .. u-0-(N-1) in shop "bench" (bench/assign_bench.py's world).
 *   apply_bench [N [BATCH [new]]]   new: assigns by email creating N new customers */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b2bd/apply.h"
#include "b2bd/config.h"
#include "b2bd/db.h"
#include "b2bd/util.h"

extern char **environ;

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10000;
    long batch = argc > 2 ? atol(argv[2]) : 500;
    /* "new": assigns by email that create their customers (a CSV import's commands) */
    int new_customers = argc > 3 && strcmp(argv[3], "new") == 0;
    struct b2bd_config cfg;
    struct b2bd_err err;
    if (config_load(NULL, environ, &cfg, &err) < 0) {
        fprintf(stderr, "config: %s %s\n", err.field, err.msg);
        return 2;
    }
    struct b2bd_db db;
    db_init(&db, cfg.pg_dsn, cfg.pg_password);
    if (db_migrate(&db, &err) < 0) {
        fprintf(stderr, "db: %s\n", err.msg);
        return 1;
    }
    char **values = calloc((size_t)n, sizeof *values);
    struct b2bd_msg *msgs = calloc((size_t)n, sizeof *msgs);
    for (long i = 0; i < n; i++) {
        char id[37];
        util_uuid_v4(id);
        struct sbuf b = {0};
        if (new_customers)
            sbuf_addf(&b, "{\"command_id\":\"%s\",\"type\":\"assign\",\"shop_id\":\"bench\",\"payload\":"
                          "{\"company_id\":\"c-0\",\"customer\":{\"email\":\"New.%ld@Example.com\","
                          "\"first_name\":\"N\\u00e9w %ld\"},"
                          "\"locations\":[{\"location_id\":\"l-0\",\"role\":\"ordering_only\"}]}}",
                      id, i, i);
        else
            sbuf_addf(&b, "{\"command_id\":\"%s\",\"type\":\"assign\",\"shop_id\":\"bench\",\"payload\":"
                          "{\"company_id\":\"c-0\",\"customer\":{\"id\":\"u-0-%ld\"},"
                          "\"locations\":[{\"location_id\":\"l-0\",\"role\":\"ordering_only\"}]}}", id, i);
        values[i] = b.s;
        msgs[i] = (struct b2bd_msg){.topic = TOPIC_ASSIGN, .topic_name = "bench.commands.assign",
                                    .partition = 0, .offset = i, .key = "bench/c-0", .key_len = 9,
                                    .value = values[i], .value_len = b.len};
    }
    struct b2bd_applier ap = {.db = &db, .cfg = &cfg};
    struct apply_stats st = {0};
    int64_t t0 = util_now_ms();
    for (long i = 0; i < n; i += batch) {
        size_t k = (size_t)(n - i < batch ? n - i : batch);
        if (apply_batch(&ap, msgs + i, k, &st, &err) < 0) {
            fprintf(stderr, "batch: %s\n", err.msg);
            return 1;
        }
    }
    int64_t ms = util_now_ms() - t0;
    printf("apply_batch: %ld assign commands in batches of %ld: %lld ms, %.0f commands/s (applied %lu)\n",
           n, batch, (long long)ms, n * 1000.0 / (double)(ms ? ms : 1), st.applied);
    for (long i = 0; i < n; i++)
        free(values[i]);
    free(values);
    free(msgs);
    db_free(&db);
    config_free(&cfg);
    return 0;
}
