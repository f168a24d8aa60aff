/* notifier: workers that send queued notifications over SMTP, with retry, and record the outcome. */
#include "b2bd/notifier.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>

#include <jansson.h>

#include "b2bd/db.h"
#include "b2bd/log.h"
#include "b2bd/metrics.h"
#include "b2bd/outbox.h"
#include "b2bd/smtp.h"
#include "b2bd/util.h"

#define NOTIFY_CHANNEL "b2bd_notify"

struct worker {
    struct b2bd_notifier *n;
    pthread_t thread;
    int index;
};

struct b2bd_notifier {
    const struct b2bd_config *cfg;
    atomic_int stopping;
    pthread_mutex_t pace_lock; /* the workers share one pace (notifier_rate_per_s) */
    int64_t next_send_us;
    struct worker *workers;
    int n_workers;
};

long notifier_backoff_ms(int attempt, long initial_ms, long max_ms, double r)
{
    double d = (double)initial_ms;
    for (int i = 1; i < attempt && d < (double)max_ms; i++)
        d *= 2;
    if (d > (double)max_ms)
        d = (double)max_ms;
    if (r < 0)
        r = 0;
    if (r >= 1)
        r = 0.999999;
    return (long)(d / 2 + d / 2 * r);
}

static double random01(void)
{
    unsigned int v = 0;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
        return 0.5;
    return (double)v / 4294967296.0;
}

/* Takes the next due notification and keeps its row locked (the transaction stays open). */
static const char SQL_TAKE[] =
    "SELECT notification_id, shop_id, customer_id, company_id, to_address, from_address,"
    "  subject, body_text, body_html, message_id, attempts,"
    "  extract(epoch FROM now() - created_at)::bigint"
    " FROM notifications WHERE status = 'queued' AND next_attempt_at <= now()"
    " ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED";
static const char SQL_NEXT_DUE[] =
    "SELECT ceil(extract(epoch FROM min(next_attempt_at) - now()) * 1000)::bigint"
    " FROM notifications WHERE status = 'queued'";
static const char SQL_SENT[] =
    "UPDATE notifications SET status = 'sent', attempts = attempts + 1, sent_at = now(),"
    "  last_error = NULL, updated_at = now() WHERE notification_id = $1";
static const char SQL_RETRY[] =
    "UPDATE notifications SET attempts = attempts + 1, last_error = $2,"
    "  next_attempt_at = now() + $3::bigint * interval '1 millisecond', updated_at = now()"
    " WHERE notification_id = $1";
static const char SQL_FAILED[] =
    "UPDATE notifications SET status = 'failed', attempts = attempts + 1, last_error = $2,"
    "  updated_at = now() WHERE notification_id = $1";

/* Publishes notification.sent or notification.failed through the outbox. */
static int emit_event(struct b2bd_db *db, PGresult *row, const char *status, int attempts,
                      const char *error, struct b2bd_err *err)
{
    char event_id[37], type[40];
    util_uuid_v4(event_id);
    snprintf(type, sizeof type, "notification.%s", status);
    json_t *m = json_pack("{sssssssssssssssisoso}", "event_id", event_id, "type", type,
                          "notification_id", PQgetvalue(row, 0, 0), "shop_id", PQgetvalue(row, 0, 1),
                          "customer_id", PQgetvalue(row, 0, 2), "company_id", PQgetvalue(row, 0, 3),
                          "status", status, "attempts", attempts,
                          "message_id", json_string(PQgetvalue(row, 0, 9)),
                          "error", error ? json_string(error) : json_null());
    char *text = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    struct sbuf key = {0};
    sbuf_addf(&key, "%s/%s", PQgetvalue(row, 0, 1), PQgetvalue(row, 0, 2));
    int rc = outbox_append(db, OUTBOX_NOTIFICATIONS, key.s, key.len, text, strlen(text), NULL, err);
    sbuf_free(&key);
    free(text);
    if (rc == 0)
        rc = outbox_wake(db, err);
    return rc;
}

/* Records the outcome of one send in the open transaction. */
static int record(struct b2bd_notifier *n, struct b2bd_db *db, PGresult *row,
                  const struct smtp_result *r, struct b2bd_err *err)
{
    const char *id = PQgetvalue(row, 0, 0);
    int attempts = atoi(PQgetvalue(row, 0, 10)) + 1;
    long age_s = atol(PQgetvalue(row, 0, 11));
    PGresult *res;
    char idq[48];
    log_quote(idq, sizeof idq, id);
    if (r->outcome == SMTP_SENT) {
        const char *v[] = {id};
        if (!(res = db_query(db, SQL_SENT, 1, v, NULL, NULL, err)))
            return -1;
        PQclear(res);
        log_info("notifier", "sent", "notification_id=%s attempts=%d", idq, attempts);
        metrics_inc(metrics_global()->ntf_sent, NULL, 1);
        return emit_event(db, row, "sent", attempts, NULL, err);
    }
    long delay = notifier_backoff_ms(attempts, n->cfg->notifier_retry_initial_ms,
                                     n->cfg->notifier_retry_max_ms, random01());
    int give_up = r->outcome == SMTP_PERMANENT ||
                  age_s * 1000 + delay > n->cfg->notifier_give_up_s * 1000;
    char msg[300];
    log_quote(msg, sizeof msg, r->error);
    if (give_up) {
        const char *v[] = {id, r->error};
        if (!(res = db_query(db, SQL_FAILED, 2, v, NULL, NULL, err)))
            return -1;
        PQclear(res);
        log_warn("notifier", "failed", "notification_id=%s attempts=%d reply=%ld error=%s", idq,
                 attempts, r->reply_code, msg);
        metrics_inc(metrics_global()->ntf_failed, NULL, 1);
        return emit_event(db, row, "failed", attempts, r->error, err);
    }
    char ms[24];
    snprintf(ms, sizeof ms, "%ld", delay);
    const char *v[] = {id, r->error, ms};
    if (!(res = db_query(db, SQL_RETRY, 3, v, NULL, NULL, err)))
        return -1;
    PQclear(res);
    log_info("notifier", "retry", "notification_id=%s attempts=%d reply=%ld delay_ms=%ld error=%s",
             idq, attempts, r->reply_code, delay, msg);
    metrics_inc(metrics_global()->ntf_retried, NULL, 1);
    return 0;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Waits for this worker's turn so that the instance starts at most notifier_rate_per_s
 * sends a second. */
static void pace(struct b2bd_notifier *n)
{
    long rate = n->cfg->notifier_rate_per_s;
    if (rate <= 0)
        return;
    int64_t now = now_us();
    pthread_mutex_lock(&n->pace_lock);
    int64_t at = n->next_send_us > now ? n->next_send_us : now;
    n->next_send_us = at + 1000000 / rate;
    pthread_mutex_unlock(&n->pace_lock);
    if (at > now) {
        struct timespec ts = {(time_t)((at - now) / 1000000), (long)((at - now) % 1000000) * 1000};
        nanosleep(&ts, NULL);
    }
}

/* One notification: take, send, record. Returns 1 if one was handled, 0 if none was
 * due, -1 on a database error. */
static int work_once(struct b2bd_notifier *n, struct b2bd_db *db, struct smtp_client *smtp)
{
    struct b2bd_err err;
    if (db_exec(db, "BEGIN", &err) < 0)
        return -1;
    PGresult *row = db_query(db, SQL_TAKE, 0, NULL, NULL, NULL, &err);
    if (!row || PQntuples(row) == 0) {
        int rc = row ? 0 : -1;
        PQclear(row);
        db_exec(db, row ? "COMMIT" : "ROLLBACK", &err);
        return rc;
    }
    const char *from = PQgetisnull(row, 0, 5) ? n->cfg->smtp_from : PQgetvalue(row, 0, 5);
    struct smtp_message m = {.from = from, .to = PQgetvalue(row, 0, 4),
                             .subject = PQgetvalue(row, 0, 6), .text = PQgetvalue(row, 0, 7),
                             .html = PQgetvalue(row, 0, 8), .message_id = PQgetvalue(row, 0, 9)};
    struct smtp_result r = {0};
    if (!from) {
        r.outcome = SMTP_PERMANENT;
        snprintf(r.error, sizeof r.error, "no sender address: the shop has no from_email and smtp_from is not set");
    } else {
        pace(n);
        double started = metrics_clock();
        smtp_send(smtp, &m, &r);
        metrics_observe(metrics_global()->ntf_duration, NULL, metrics_clock() - started, 1);
    }
    int rc = record(n, db, row, &r, &err);
    PQclear(row);
    if (rc < 0 || db_exec(db, "COMMIT", &err) < 0) {
        char msg[300];
        log_quote(msg, sizeof msg, err.msg);
        log_warn("notifier", "record_failed", "error=%s", msg);
        if (db_connected(db))
            db_exec(db, "ROLLBACK", &err);
        return -1;
    }
    return 1;
}

/* Waits for a NOTIFY, the next due time or at most a second. */
static void wait_work(struct b2bd_db *db)
{
    struct b2bd_err err;
    long wait = 1000;
    PGresult *res = db_query(db, SQL_NEXT_DUE, 0, NULL, NULL, NULL, &err);
    if (res && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        long due = atol(PQgetvalue(res, 0, 0));
        if (due < wait)
            wait = due < 10 ? 10 : due;
    }
    PQclear(res);
    db_wait_notify(db, (int)wait);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct b2bd_notifier *n = w->n;
    const struct b2bd_config *cfg = n->cfg;
    struct b2bd_db db;
    struct b2bd_err err;
    db_init(&db, cfg->pg_dsn, cfg->pg_password);
    /* smtp:// upgrades with STARTTLS when the server offers it (try), or refuses to
     * send without it (required); smtps:// is TLS from the start */
    int starttls = strcmp(cfg->smtp_starttls, "required") == 0 ? 2
                   : strcmp(cfg->smtp_starttls, "off") == 0    ? 0
                                                               : 1;
    struct smtp_settings ss = {.url = cfg->smtp_url, .password = cfg->smtp_password,
                               .timeout_ms = 30000, .starttls = starttls};
    struct smtp_client *smtp = smtp_client_new(&ss);
    long backoff = 100;
    while (!atomic_load(&n->stopping)) {
        if (!db_connected(&db)) {
            if (db_connect(&db, &err) < 0 || db_exec(&db, "LISTEN " NOTIFY_CHANNEL, &err) < 0) {
                util_sleep_ms(backoff);
                backoff = backoff < 5000 ? backoff * 2 : 5000;
                continue;
            }
            backoff = 100;
        }
        int rc = work_once(n, &db, smtp);
        if (rc < 0)
            util_sleep_ms(backoff);
        else if (rc == 0)
            wait_work(&db);
    }
    smtp_client_free(smtp);
    db_free(&db);
    return NULL;
}

struct b2bd_notifier *notifier_start(const struct b2bd_config *cfg, struct b2bd_err *err)
{
    if (!cfg->smtp_url) {
        b2bd_err_set(err, B2BD_INVALID, "smtp_url", "the notifier needs smtp_url (B2BD_SMTP_URL)");
        return NULL;
    }
    struct b2bd_notifier *n = calloc(1, sizeof *n);
    if (!n)
        abort();
    n->cfg = cfg;
    pthread_mutex_init(&n->pace_lock, NULL);
    n->n_workers = (int)cfg->notifier_concurrency;
    n->workers = calloc((size_t)n->n_workers, sizeof *n->workers);
    if (!n->workers)
        abort();
    for (int i = 0; i < n->n_workers; i++) {
        n->workers[i] = (struct worker){.n = n, .index = i};
        if (pthread_create(&n->workers[i].thread, NULL, worker_main, &n->workers[i]) != 0) {
            n->n_workers = i;
            notifier_stop(n);
            b2bd_err_set(err, B2BD_ERR_INTERNAL, NULL, "cannot start notifier workers");
            return NULL;
        }
    }
    log_info("notifier", "started", "workers=%d", n->n_workers);
    return n;
}

void notifier_stop(struct b2bd_notifier *n)
{
    if (!n)
        return;
    atomic_store(&n->stopping, 1);
    for (int i = 0; i < n->n_workers; i++)
        pthread_join(n->workers[i].thread, NULL);
    free(n->workers);
    pthread_mutex_destroy(&n->pace_lock);
    free(n);
}
