/* relay: publishes the outbox to Kafka in commit order, then deletes what was delivered. */
#include "b2bd/relay.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "b2bd/db.h"
#include "b2bd/kafka.h"
#include "b2bd/log.h"
#include "b2bd/metrics.h"
#include "b2bd/outbox.h"
#include "b2bd/util.h"

/* Rows per round: larger rounds spend less of their time waiting for the last acks
 * (bench: 10,000 assigns end to end, about 7,400 -> 8,100 commands/s from 1,000 to
 * 4,000 rows, within the machine's noise; 2,000 keeps the round's rows to a few MiB). */
#define RELAY_BATCH 2000
#define RELAY_STR(x) #x
#define RELAY_XSTR(x) RELAY_STR(x)
/* Key of the advisory lock the publishing relay holds ("b2bd" in ASCII, then 2). */
#define RELAY_LOCK "422036108290"

struct b2bd_relay {
    const struct b2bd_config *cfg;
    struct b2bd_metrics *metrics;
    struct b2bd_db db;
    rd_kafka_t *producer;
    pthread_t thread;
    atomic_int stopping;
    atomic_int fatal;     /* the producer had a fatal error: the relay has stopped */
    atomic_long drain_deadline; /* util_now_ms() after which a stopping relay gives up */
    atomic_ulong published;
    int leader;
    int64_t next_probe; /* util_now_ms() of the next outbox check (metrics, readiness) */
    int64_t next_count; /* util_now_ms() of the next count of suspended contacts (metrics) */
};

/* Delivery status of one row of the round: set by relay_produce when the producer
 * refuses the row, else by the delivery report callback. */
enum { DR_PENDING, DR_OK, DR_FAILED };
struct dr_status {
    int state;
    rd_kafka_resp_err_t err;
};

static void relay_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    struct dr_status *status = m->_private;
    status->state = m->err ? DR_FAILED : DR_OK;
    status->err = m->err;
    if (m->err)
        log_warn("relay", "delivery_failed", LOG_STR("topic", rd_kafka_topic_name(m->rkt)),
                 LOG_STR("code", rd_kafka_err2name(m->err)));
}

static const char SQL_LOCK[] = "SELECT pg_try_advisory_lock(" RELAY_LOCK ")";
static const char SQL_FETCH[] =
    "SELECT id, topic, key, value, headers FROM outbox ORDER BY id LIMIT " RELAY_XSTR(RELAY_BATCH);
/* By id, not by range: a transaction that commits late can hold a lower id that this
 * round has not seen. */
static const char SQL_DELETE[] = "DELETE FROM outbox WHERE id = ANY ($1::bigint[])";

static bool relay_give_up(struct b2bd_relay *r)
{
    return atomic_load(&r->fatal) ||
           (atomic_load(&r->stopping) && util_now_ms() >= atomic_load(&r->drain_deadline));
}

/* A fatal producer error (kafka_fatal) ends the relay: a new producer would need a new
 * process. What was not delivered stays in the outbox for the next start. */
static bool relay_check_fatal(struct b2bd_relay *r)
{
    if (atomic_load(&r->fatal))
        return true;
    rd_kafka_resp_err_t e = kafka_fatal(r->producer);
    if (!e)
        return false;
    atomic_store(&r->fatal, 1);
    log_error("relay", "fatal_stop", LOG_STR("code", rd_kafka_err2name(e)),
              LOG_STR("note", "the producer is dead; undelivered rows stay in the outbox"));
    return true;
}

/* Connects, listens for wake-ups and takes the publishing lock when free. */
static int relay_connect(struct b2bd_relay *r)
{
    struct b2bd_err err;
    if (db_connected(&r->db) && r->leader)
        return 0;
    if (!db_connected(&r->db)) {
        r->leader = 0;
        if (db_connect(&r->db, &err) < 0)
            return -1;
        if (db_exec(&r->db, "LISTEN " OUTBOX_CHANNEL, &err) < 0)
            return -1;
        /* The relay's deletes need not wait for a WAL flush: one lost to a crash only
         * publishes its rows again (the same messages, the same event_id), as a crash
         * between delivery and delete always could. Flushing each one made the applying lanes'
         * commits queue behind them. */
        if (db_exec(&r->db, "SET synchronous_commit = off", &err) < 0)
            return -1;
    }
    PGresult *res = db_query(&r->db, SQL_LOCK, 0, NULL, NULL, NULL, &err);
    if (!res)
        return -1;
    r->leader = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (r->leader)
        log_info("relay", "leading", LOG_STR("note", "this instance publishes the outbox"));
    return r->leader ? 0 : -1;
}

/* Waits for a NOTIFY on the outbox channel, or timeout_ms. */
static void relay_wait(struct b2bd_relay *r, int timeout_ms)
{
    if (!db_connected(&r->db)) {
        util_sleep_ms(timeout_ms);
        return;
    }
    db_wait_notify(&r->db, timeout_ms);
}

static rd_kafka_headers_t *relay_headers(const char *text)
{
    json_t *h = json_loads(text, 0, NULL);
    if (!json_is_array(h)) {
        json_decref(h);
        return NULL;
    }
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(json_array_size(h));
    size_t i;
    json_t *pair;
    json_array_foreach(h, i, pair) {
        const char *name = json_string_value(json_array_get(pair, 0));
        const char *value = json_string_value(json_array_get(pair, 1));
        if (name && value)
            rd_kafka_header_add(hdrs, name, -1, value, -1);
    }
    json_decref(h);
    return hdrs;
}

/* Produces one fetched row. Returns 0 when queued; -1 when refused, with status set. */
static int relay_produce(struct b2bd_relay *r, PGresult *res, int row, struct dr_status *status)
{
    size_t key_len = 0, value_len = 0;
    unsigned char *key = NULL, *value = NULL;
    if (!PQgetisnull(res, row, 2))
        key = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, 2), &key_len);
    if (!PQgetisnull(res, row, 3))
        value = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, 3), &value_len);
    char *topic = config_topic(r->cfg, PQgetvalue(res, row, 1));
    rd_kafka_resp_err_t e;
    for (;;) {
        rd_kafka_headers_t *hdrs =
            PQgetisnull(res, row, 4) ? NULL : relay_headers(PQgetvalue(res, row, 4));
        if (hdrs)
            e = rd_kafka_producev(r->producer, RD_KAFKA_V_TOPIC(topic),
                                  RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE(value, value_len),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_OPAQUE(status), RD_KAFKA_V_HEADERS(hdrs),
                                  RD_KAFKA_V_END);
        else
            e = rd_kafka_producev(r->producer, RD_KAFKA_V_TOPIC(topic),
                                  RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE(value, value_len),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_OPAQUE(status), RD_KAFKA_V_END);
        if (e && hdrs)
            rd_kafka_headers_destroy(hdrs); /* producev owns them only on success */
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || relay_give_up(r) || relay_check_fatal(r))
            break;
        rd_kafka_poll(r->producer, 100);
    }
    if (e) {
        status->state = DR_FAILED;
        status->err = e;
        log_warn("relay", "produce_failed", LOG_STR("topic", topic),
                 LOG_STR("code", rd_kafka_err2name(e)));
    }
    free(topic);
    PQfreemem(key);
    PQfreemem(value);
    return e ? -1 : 0;
}

/* Errors that no retry will cure: the message itself is refused. */
static bool relay_permanent(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
           e == RD_KAFKA_RESP_ERR__INVALID_ARG || e == RD_KAFKA_RESP_ERR_INVALID_RECORD ||
           e == RD_KAFKA_RESP_ERR_INVALID_MSG || e == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
}

static const char SQL_PARK[] =
    "WITH moved AS (DELETE FROM outbox WHERE id = $1 RETURNING *)"
    " INSERT INTO outbox_parked (id, topic, key, value, headers, created_at, error)"
    " SELECT id, topic, key, value, headers, created_at, $2 FROM moved";

/* Moves a row that Kafka will never accept out of the way, into outbox_parked, so that
 * it does not hold up the rest; an operator can inspect and replay it. */
static void relay_park(struct b2bd_relay *r, const char *id, const char *topic,
                       rd_kafka_resp_err_t e)
{
    struct b2bd_err err;
    const char *v[] = {id, rd_kafka_err2name(e)};
    PGresult *res = db_query(&r->db, SQL_PARK, 2, v, NULL, NULL, &err);
    PQclear(res);
    log_error("relay", "parked", LOG_STR("outbox_id", id), LOG_STR("topic", topic),
              LOG_STR("code", rd_kafka_err2name(e)),
              LOG_STR("note", "refused by Kafka; kept in outbox_parked"));
}

/* One round: publish up to RELAY_BATCH rows in id order, wait for their delivery, delete
 * the delivered prefix. Returns rows published, 0 if none waited, -1 on error. */
static int relay_round(struct b2bd_relay *r)
{
    struct b2bd_err err;
    PGresult *res = db_query(&r->db, SQL_FETCH, 0, NULL, NULL, NULL, &err);
    if (!res) {
        log_warn("relay", "fetch_failed", LOG_STR("error", err.msg));
        return -1;
    }
    int n = PQntuples(res);
    if (n == 0) {
        PQclear(res);
        return 0;
    }
    struct dr_status *status = calloc((size_t)n, sizeof *status);
    if (!status)
        abort();
    int queued = 0;
    for (; queued < n; queued++)
        if (relay_produce(r, res, queued, &status[queued]) < 0)
            break;
    while (rd_kafka_outq_len(r->producer) > 0 && !relay_give_up(r) && !relay_check_fatal(r))
        rd_kafka_flush(r->producer, 100);
    if (rd_kafka_outq_len(r->producer) > 0) /* giving up: delivery reports won't come */
        rd_kafka_purge(r->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(r->producer, 0);

    /* Delete only the delivered prefix: a failed row and those after it go again, so
     * the order per key holds (a consumer may see a repeat, with the same event_id). */
    int done = 0;
    while (done < queued && status[done].state == DR_OK)
        done++;
    int rc = done;
    if (done > 0) {
        struct sbuf ids = {0};
        sbuf_adds(&ids, "{");
        for (int i = 0; i < done; i++)
            sbuf_addf(&ids, "%s%s", i ? "," : "", PQgetvalue(res, i, 0));
        sbuf_adds(&ids, "}");
        const char *v[] = {sbuf_str(&ids)};
        PGresult *del = db_query(&r->db, SQL_DELETE, 1, v, NULL, NULL, &err);
        sbuf_free(&ids);
        if (!del)
            rc = -1;
        PQclear(del);
        atomic_fetch_add(&r->published, (unsigned long)done);
        for (int i = 0; i < done; i++) /* delivered, as `published` counts them */
            metrics_published(r->metrics, PQgetvalue(res, i, 1));
    }
    if (done < n) {
        if (rc >= 0 && status[done].state == DR_FAILED && relay_permanent(status[done].err) &&
            !relay_check_fatal(r))
            relay_park(r, PQgetvalue(res, done, 0), PQgetvalue(res, done, 1), status[done].err);
        rc = -1;
    }
    free(status);
    PQclear(res);
    return rc;
}

static const char SQL_PROBE[] =
    "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 FROM outbox";

/* The suspended companies, and the contacts suspended in a company: those of suspended
 * companies, and those suspended on their own in the others (each by the partial indexes
 * of sql/migrations/0020: the work grows with what is suspended, not with the database). */
static const char SQL_SUSPENDED[] =
    "SELECT (SELECT count(*) FROM companies WHERE suspended),"
    " (SELECT count(*) FROM companies c JOIN contacts k ON k.shop_id = c.shop_id AND k.company_id = c.company_id"
    "   WHERE c.suspended)"
    " + (SELECT count(*) FROM contacts k JOIN companies c ON c.shop_id = k.shop_id AND c.company_id = k.company_id"
    "   WHERE k.suspended AND NOT c.suspended)";

/* At most every 5 s, leader or not: counts what is suspended, for the metrics. */
static void relay_count_suspended(struct b2bd_relay *r, int64_t now)
{
    if (now < r->next_count || !db_connected(&r->db))
        return;
    r->next_count = now + 5000;
    struct b2bd_err err;
    PGresult *res = db_query(&r->db, SQL_SUSPENDED, 0, NULL, NULL, NULL, &err);
    if (res && PQntuples(res) == 1)
        metrics_suspended(r->metrics, atol(PQgetvalue(res, 0, 0)), atol(PQgetvalue(res, 0, 1)));
    PQclear(res);
}

/* At most once a second, leader or not: checks the database and measures the outbox
 * (rows waiting, age of the oldest) for the metrics and the readiness check. */
static void relay_probe(struct b2bd_relay *r)
{
    int64_t now = util_now_ms();
    if (now < r->next_probe)
        return;
    r->next_probe = now + 1000;
    struct b2bd_err err;
    PGresult *res = db_connected(&r->db) ? db_query(&r->db, SQL_PROBE, 0, NULL, NULL, NULL, &err) : NULL;
    if (res && PQntuples(res) == 1)
        metrics_outbox(r->metrics, atol(PQgetvalue(res, 0, 0)), atof(PQgetvalue(res, 0, 1)));
    metrics_db_check(r->metrics, res != NULL);
    PQclear(res);
    relay_count_suspended(r, now);
}

/* Learns the leaders of the topics the relay publishes to before the first row waits
 * for them: without it, the first round after start took 0.9 s instead of 45 ms
 * (1,000 rows, against the mock cluster). */
static void relay_warm_up(struct b2bd_relay *r)
{
    static const char *const suffixes[] = {OUTBOX_RESULTS, OUTBOX_ACCESS, OUTBOX_NOTIFICATIONS,
                                           OUTBOX_DLQ, OUTBOX_SHOPS, OUTBOX_PRIVACY};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0] && !atomic_load(&r->stopping); i++) {
        char *name = config_topic(r->cfg, suffixes[i]);
        rd_kafka_topic_t *t = rd_kafka_topic_new(r->producer, name, NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e = t ? rd_kafka_metadata(r->producer, 0, t, &md, 2000)
                                  : RD_KAFKA_RESP_ERR__INVALID_ARG;
        if (e)
            log_warn("relay", "metadata_failed", LOG_STR("topic", name),
                     LOG_STR("code", rd_kafka_err2name(e)));
        if (md)
            rd_kafka_metadata_destroy(md);
        if (t)
            rd_kafka_topic_destroy(t);
        free(name);
    }
}

static void *relay_main(void *arg)
{
    struct b2bd_relay *r = arg;
    long backoff = 100;
    relay_warm_up(r);
    while (!relay_give_up(r)) {
        int connected = relay_connect(r);
        relay_probe(r);
        if (connected < 0) {
            if (atomic_load(&r->stopping))
                break; /* not the leader, or no database: nothing of ours to drain */
            util_sleep_ms(backoff);
            backoff = backoff < 5000 ? backoff * 2 : 5000;
            continue;
        }
        int rc = relay_round(r);
        if (relay_check_fatal(r))
            break;
        if (rc < 0) {
            util_sleep_ms(backoff);
            backoff = backoff < 5000 ? backoff * 2 : 5000;
            continue;
        }
        backoff = 100;
        if (rc == 0) {
            if (atomic_load(&r->stopping))
                break; /* drained */
            relay_wait(r, 500);
        }
    }
    return NULL;
}

struct b2bd_relay *relay_start(const struct b2bd_config *cfg, struct b2bd_metrics *metrics,
                               struct b2bd_err *err)
{
    struct b2bd_relay *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->cfg = cfg;
    r->metrics = metrics;
    r->producer = kafka_producer_new(cfg, relay_dr_cb, err);
    if (!r->producer) {
        free(r);
        return NULL;
    }
    db_init(&r->db, cfg->pg_dsn, cfg->pg_password);
    r->db.metrics = metrics;
    if (pthread_create(&r->thread, NULL, relay_main, r) != 0) {
        rd_kafka_destroy(r->producer);
        db_free(&r->db);
        free(r);
        b2bd_err_set(err, B2BD_ERR_INTERNAL, NULL, "cannot start the relay thread");
        return NULL;
    }
    return r;
}

void relay_stop(struct b2bd_relay *r, int drain_ms)
{
    if (!r)
        return;
    atomic_store(&r->drain_deadline, (long)(util_now_ms() + drain_ms));
    atomic_store(&r->stopping, 1);
    pthread_join(r->thread, NULL);
    if (!atomic_load(&r->fatal))
        rd_kafka_flush(r->producer, 1000);
    rd_kafka_destroy(r->producer);
    db_free(&r->db);
    log_info("relay", "stopped", LOG_UINT("published", atomic_load(&r->published)));
    free(r);
}

bool relay_failed(const struct b2bd_relay *r)
{
    return atomic_load(&((struct b2bd_relay *)r)->fatal) != 0;
}

unsigned long relay_published(const struct b2bd_relay *r)
{
    return atomic_load(&((struct b2bd_relay *)r)->published);
}
