/* test_seat_race: a company's seat count stays the real number of its contacts when
 * commands about one contact are applied at once, by two appliers on two connections
 * (two instances during a rebalance, or a producer that keys them differently, so that
 * they arrive on two partitions).
 *
 * The race is driven, not hoped for: a third connection holds a row lock that both
 * commands need, the test waits until both wait for it, then lets go.
 *   - two revokes (scope company) of one contact: one removes the contact and frees its
 *     seat; the other, one after the other, is NOT_A_CONTACT and frees none (b2bd once
 *     freed a second seat for a contact row it had not deleted);
 *   - two assigns making one customer a contact, alone and in runs of the set-based
 *     path: one seat taken;
 *   - assigns of *different* customers racing for a company's last seats, alone (one
 *     applied, the other LIMIT_REACHED) and in runs of the set-based path (as many
 *     applied as there were seats): the count never passes COMPANY_MAX_CONTACTS. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "../../src/apply_domain.h"
#include "b2bd/log.h"
#include "b2bd/util.h"
#include "dbtest.h"

#define SHOP "race"
#define KEY "race/c-1"

#define CHECK DBT_CHECK

static void add(struct dbt_batch *b, enum b2bd_topic t, int partition, const char *id,
                const char *type, const char *payload)
{
    struct sbuf s = {0};
    sbuf_addf(&s, "{\"command_id\":\"%s\",\"type\":\"%s\",\"shop_id\":\"" SHOP "\",\"payload\":%s}", id,
              type, payload);
    dbt_batch_add(b, t, partition, KEY, sbuf_str(&s));
    sbuf_free(&s);
}

static void add_assign(struct dbt_batch *b, int partition, const char *id, const char *customer)
{
    char p[256];
    snprintf(p, sizeof p,
             "{\"company_id\":\"c-1\",\"customer\":{\"id\":\"%s\"},"
             "\"locations\":[{\"location_id\":\"loc-1\",\"role\":\"ordering_only\"}]}",
             customer);
    add(b, TOPIC_ASSIGN, partition, id, "assign", p);
}

struct job {
    struct dbt_world *w;
    const struct dbt_batch *b;
    int rc;
};

static void *run_job(void *arg)
{
    struct job *j = arg;
    j->rc = dbt_apply_rc(j->w, j->b);
    return NULL;
}

/* Applies a on wa and b on wb at once, both held up by the row lock that lock_sql takes
 * in a transaction of the holder's connection until both wait; then releases it. */
static void race(struct dbt_world *holder, const char *lock_sql, struct dbt_world *wa,
                 const struct dbt_batch *a, struct dbt_world *wb, const struct dbt_batch *b)
{
    PQclear(dbt_sql(holder, "BEGIN", 0, NULL));
    PGresult *r = dbt_sql(holder, lock_sql, 0, NULL);
    if (PQntuples(r) != 1) {
        fprintf(stderr, "the lock query found no row: %s\n", lock_sql);
        abort();
    }
    PQclear(r);
    struct job ja = {.w = wa, .b = a}, jb = {.w = wb, .b = b};
    pthread_t ta, tb;
    if (pthread_create(&ta, NULL, run_job, &ja) != 0 || pthread_create(&tb, NULL, run_job, &jb) != 0)
        abort();
    int waiting = 0;
    for (int i = 0; i < 3000 && waiting < 2; i++) {
        char *n = dbt_sql_value(wb, "SELECT count(*) FROM pg_stat_activity"
                                    " WHERE datname = current_database() AND wait_event_type = 'Lock'",
                                0, NULL);
        waiting = atoi(n);
        free(n);
        if (waiting < 2)
            usleep(10000);
    }
    CHECK(waiting == 2, "both commands should wait for the lock (waiting: %d)", waiting);
    PQclear(dbt_sql(holder, "COMMIT", 0, NULL));
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(ja.rc == 0 && jb.rc == 0, "both batches should commit");
}

/* Checks that the seat count is the number of contacts; to keep the cases apart, a
 * count found wrong is then set right. */
static void check_seats(struct dbt_world *w, const char *when)
{
    char *seats = dbt_sql_value(w, "SELECT contact_count FROM companies WHERE shop_id = '" SHOP "'"
                                   " AND company_id = 'c-1'", 0, NULL);
    char *real = dbt_sql_value(w, "SELECT count(*) FROM contacts WHERE shop_id = '" SHOP "'"
                                  " AND company_id = 'c-1'", 0, NULL);
    CHECK(strcmp(seats, real) == 0, "%s: contact_count %s, but %s contacts", when, seats, real);
    if (strcmp(seats, real) != 0)
        PQclear(dbt_sql(w, "UPDATE companies SET contact_count = (SELECT count(*) FROM contacts k"
                           " WHERE k.shop_id = '" SHOP "' AND k.company_id = 'c-1')"
                           " WHERE shop_id = '" SHOP "' AND company_id = 'c-1'", 0, NULL));
    free(seats);
    free(real);
}

/* The result of a command: "applied" or the error code. */
static char *outcome(struct dbt_world *w, const char *id, int *contact_removed)
{
    json_t *j = dbt_result(w, id);
    const char *st = json_string_value(json_object_get(j, "status"));
    const char *code = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    char *s = strdup(!j ? "no result" : st && strcmp(st, "applied") == 0 ? "applied" : code ? code : "?");
    *contact_removed = json_is_true(json_object_get(json_object_get(j, "result"), "contact_removed"));
    json_decref(j);
    return s;
}

static void revokes_race(struct dbt_world *a, struct dbt_world *b)
{
    /* a second contact, so that a wrong count is visible as 1 or 0 too */
    struct dbt_batch setup = {0};
    add_assign(&setup, 0, "00000000-0000-4000-8000-000000000010", "r1");
    add_assign(&setup, 0, "00000000-0000-4000-8000-000000000011", "r2");
    dbt_apply(a, &setup);
    dbt_batch_free(&setup);
    check_seats(a, "before the revokes");

    const char *revoke = "{\"company_id\":\"c-1\",\"customer_id\":\"r1\",\"scope\":\"company\"}";
    struct dbt_batch x = {0}, y = {0};
    add(&x, TOPIC_REVOKE, 0, "00000000-0000-4000-8000-000000000020", "revoke", revoke);
    add(&y, TOPIC_REVOKE, 1, "00000000-0000-4000-8000-000000000021", "revoke", revoke);
    race(a, "SELECT 1 FROM contacts WHERE shop_id = '" SHOP "' AND customer_id = 'r1' FOR UPDATE",
         a, &x, b, &y);
    check_seats(a, "after two revokes of one contact at once");
    int removed_x = 0, removed_y = 0;
    char *ox = outcome(a, "00000000-0000-4000-8000-000000000020", &removed_x);
    char *oy = outcome(a, "00000000-0000-4000-8000-000000000021", &removed_y);
    /* one removed the contact; the other, one after the other, finds no contact */
    int one_each = (strcmp(ox, "applied") == 0 && removed_x && strcmp(oy, "NOT_A_CONTACT") == 0) ||
                   (strcmp(oy, "applied") == 0 && removed_y && strcmp(ox, "NOT_A_CONTACT") == 0);
    CHECK(one_each, "one revoke should remove the contact and the other be NOT_A_CONTACT: %s (%d), %s (%d)",
          ox, removed_x, oy, removed_y);
    free(ox);
    free(oy);
    dbt_batch_free(&x);
    dbt_batch_free(&y);
}

static void assigns_race(struct dbt_world *a, struct dbt_world *b, int bulk)
{
    /* r3 (or r4) is assigned twice at once; with bulk, each in a run of three */
    const char *who = bulk ? "r4" : "r3";
    struct dbt_batch x = {0}, y = {0};
    char id[37];
    util_uuid_v4(id);
    add_assign(&x, 0, id, who);
    util_uuid_v4(id);
    add_assign(&y, 1, id, who);
    if (bulk) {
        util_uuid_v4(id);
        add_assign(&x, 0, id, "r5");
        util_uuid_v4(id);
        add_assign(&x, 0, id, "r6");
        util_uuid_v4(id);
        add_assign(&y, 1, id, "r7");
        util_uuid_v4(id);
        add_assign(&y, 1, id, "r8");
    }
    unsigned long bulk_before = a->st.bulk_commands + b->st.bulk_commands;
    race(a, "SELECT 1 FROM companies WHERE shop_id = '" SHOP "' AND company_id = 'c-1' FOR UPDATE",
         a, &x, b, &y);
    check_seats(a, bulk ? "after two runs assigning one customer at once"
                        : "after two assigns of one customer at once");
    if (bulk)
        CHECK(a->st.bulk_commands + b->st.bulk_commands > bulk_before,
              "the runs should have gone the set-based path");
    dbt_batch_free(&x);
    dbt_batch_free(&y);
}

/* Fills the company with filler contacts (customers f-N, made in SQL) until `left`
 * seats remain, its seat count set to the real number of contacts. */
static void leave_seats(struct dbt_world *w, int left)
{
    char target[16];
    snprintf(target, sizeof target, "%d", COMPANY_MAX_CONTACTS - left);
    const char *v[] = {target};
    PQclear(dbt_sql(w, "INSERT INTO customers (shop_id, customer_id, email)"
                       " SELECT '" SHOP "', 'f-' || g, 'f-' || g || '@x.example'"
                       " FROM generate_series(1, $1::int) g ON CONFLICT DO NOTHING", 1, v));
    PQclear(dbt_sql(w, "DELETE FROM contacts WHERE shop_id = '" SHOP "' AND company_id = 'c-1'"
                       " AND customer_id LIKE 'f-%'", 0, NULL));
    PQclear(dbt_sql(w, "INSERT INTO contacts (shop_id, company_id, customer_id)"
                       " SELECT '" SHOP "', 'c-1', 'f-' || g FROM generate_series(1,"
                       "  $1::int - (SELECT count(*) FROM contacts WHERE shop_id = '" SHOP "'"
                       "             AND company_id = 'c-1')) g", 1, v));
    PQclear(dbt_sql(w, "UPDATE companies SET contact_count = (SELECT count(*) FROM contacts k"
                       " WHERE k.shop_id = '" SHOP "' AND k.company_id = 'c-1')"
                       " WHERE shop_id = '" SHOP "' AND company_id = 'c-1'", 0, NULL));
    char *n = dbt_sql_value(w, "SELECT contact_count FROM companies WHERE shop_id = '" SHOP "'"
                               " AND company_id = 'c-1'", 0, NULL);
    CHECK(atoi(n) == COMPANY_MAX_CONTACTS - left, "the company should have %d contacts, has %s",
          COMPANY_MAX_CONTACTS - left, n);
    free(n);
}

/* Different customers racing for the last seats: `seats` left, each batch assigning
 * `per` new contacts (in a run of the set-based path when per >= 3); exactly `seats` of
 * them applied, the others LIMIT_REACHED on payload.company_id. */
static void last_seats_race(struct dbt_world *a, struct dbt_world *b, int seats, int per,
                            const char *prefix)
{
    leave_seats(a, seats);
    struct dbt_batch up = {0}, x = {0}, y = {0};
    char ids[16][37];
    int n = 0;
    for (int i = 0; i < 2 * per && i < 16; i++) {
        char customer[32], p[128], cid[37];
        snprintf(customer, sizeof customer, "%s-%d", prefix, i);
        snprintf(p, sizeof p, "{\"customer_id\":\"%s\",\"email\":\"%s@x.example\"}", customer, customer);
        util_uuid_v4(cid);
        add(&up, TOPIC_SYNC, 0, cid, "customer.upsert", p);
        util_uuid_v4(ids[n]);
        add_assign(i < per ? &x : &y, i < per ? 0 : 1, ids[n], customer);
        n++;
    }
    dbt_apply(a, &up); /* the customers, not yet contacts */
    dbt_batch_free(&up);
    unsigned long bulk_before = a->st.bulk_commands + b->st.bulk_commands;
    race(a, "SELECT 1 FROM companies WHERE shop_id = '" SHOP "' AND company_id = 'c-1' FOR UPDATE",
         a, &x, b, &y);
    int applied = 0, limited = 0;
    for (int i = 0; i < n; i++) {
        int removed;
        char *o = outcome(a, ids[i], &removed);
        applied += strcmp(o, "applied") == 0;
        limited += strcmp(o, "LIMIT_REACHED") == 0;
        free(o);
    }
    CHECK(applied == seats && limited == n - seats,
          "%d seats left, %d assigns of new contacts at once: %d applied, %d LIMIT_REACHED",
          seats, n, applied, limited);
    char *count = dbt_sql_value(a, "SELECT contact_count FROM companies WHERE shop_id = '" SHOP "'"
                                   " AND company_id = 'c-1'", 0, NULL);
    CHECK(atoi(count) == COMPANY_MAX_CONTACTS, "the seat count should be %d, is %s",
          COMPANY_MAX_CONTACTS, count);
    free(count);
    check_seats(a, "after assigns racing for the last seats");
    if (per >= 3)
        CHECK(a->st.bulk_commands + b->st.bulk_commands > bulk_before,
              "the runs should have gone the set-based path");
    dbt_batch_free(&x);
    dbt_batch_free(&y);
}

int main(void)
{
    log_init(LOG_WARN, stderr);
    char name[64];
    snprintf(name, sizeof name, "b2bd_race_%d", (int)getpid());
    dbt_create_db(name, "LOCALE 'C'");
    struct dbt_world a, b;
    dbt_world_open(&a, name, "on");
    dbt_world_open(&b, name, "on");

    struct dbt_batch setup = {0};
    add(&setup, TOPIC_SYNC, 0, "00000000-0000-4000-8000-000000000001", "company.upsert",
        "{\"company_id\":\"c-1\",\"name\":\"C\",\"locations\":[{\"location_id\":\"loc-1\",\"name\":\"L\"}]}");
    for (int i = 1; i <= 8; i++) {
        char id[37], p[128];
        snprintf(id, sizeof id, "00000000-0000-4000-8000-0000000001%02d", i);
        snprintf(p, sizeof p, "{\"customer_id\":\"r%d\",\"email\":\"r%d@x.example\"}", i, i);
        add(&setup, TOPIC_SYNC, 0, id, "customer.upsert", p);
    }
    dbt_apply(&a, &setup);
    dbt_batch_free(&setup);

    revokes_race(&a, &b);
    assigns_race(&a, &b, 0);
    assigns_race(&a, &b, 1);
    last_seats_race(&a, &b, 1, 1, "s");  /* one by one: one of two */
    last_seats_race(&a, &b, 4, 3, "t");  /* runs of three: four of six */

    dbt_world_close(&a);
    dbt_world_close(&b);
    dbt_drop_db(name);
    printf("test_seat_race: %s\n", dbt_failures ? "FAILED" : "ok");
    return dbt_failures ? 1 : 0;
}
