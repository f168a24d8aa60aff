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
#define NOTIFIER_STR(x) #x
#define NOTIFIER_XSTR(x) NOTIFIER_STR(x)

/* curl's limit on one send, connection included (CURLOPT_CONNECTTIMEOUT_MS and
 * CURLOPT_TIMEOUT_MS, set by smtp.c). */
#define NOTIFIER_SMTP_TIMEOUT_MS 30000
/* How long a claimed notification stays leased to its worker: the longest send plus a
 * minute for what comes between the claim's commit and the send (building the message;
 * a wait for the pace renews the lease) and for a stalled thread. Within it, no other
 * worker sends the same notification; once it expires, an unrecorded send is retried. */
#define NOTIFIER_LEASE_MS (NOTIFIER_SMTP_TIMEOUT_MS + 60000)
/* A stopping worker tries this long to record the outcome of the send in hand. */
#define NOTIFIER_STOP_RECORD_MS 5000

struct worker {
    struct b2bd_notifier *n;
    pthread_t thread;
    int index;
    char token[37]; /* leased_by of this worker's claims: unique per worker and process */
};

struct b2bd_notifier {
    const struct b2bd_config *cfg;
    struct b2bd_metrics *metrics; /* NULL: nothing counted */
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

/* Claims the next due notification that no one holds a lease on: commits a lease of
 * NOTIFIER_LEASE_MS for this worker ($1), so that no transaction stays open, and no row
 * lock is held, while the mail server is talked to. */
static const char SQL_CLAIM[] =
    "UPDATE notifications SET"
    "  lease_until = now() + " NOTIFIER_XSTR(NOTIFIER_LEASE_MS) " * interval '1 millisecond',"
    "  leased_by = $1"
    " WHERE notification_id = ("
    "  SELECT notification_id FROM notifications"
    "  WHERE status = 'queued' AND next_attempt_at <= now()"
    "    AND (lease_until IS NULL OR lease_until <= now())"
    "  ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED)"
    " RETURNING notification_id, shop_id, customer_id, company_id, to_address, from_address,"
    "  subject, body_text, body_html, message_id, attempts,"
    "  extract(epoch FROM now() - created_at)::bigint, trace::text";
/* Renews the lease before a send that had to wait for the pace. */
static const char SQL_RENEW[] =
    "UPDATE notifications SET"
    "  lease_until = now() + " NOTIFIER_XSTR(NOTIFIER_LEASE_MS) " * interval '1 millisecond'"
    " WHERE notification_id = $1 AND leased_by = $2 AND status = 'queued'";
/* When the next notification is due: its retry time, or the end of its lease. */
static const char SQL_NEXT_DUE[] =
    "SELECT ceil(extract(epoch FROM min(greatest(next_attempt_at, lease_until)) - now()) * 1000)::bigint"
    " FROM notifications WHERE status = 'queued'";
/* The outcomes: recorded only by the lease's holder ($2), and ending the lease. */
static const char SQL_SENT[] =
    "UPDATE notifications SET status = 'sent', attempts = attempts + 1, sent_at = now(),"
    "  last_error = NULL, lease_until = NULL, leased_by = NULL, updated_at = now()"
    " WHERE notification_id = $1 AND leased_by = $2";
static const char SQL_RETRY[] =
    "UPDATE notifications SET attempts = attempts + 1, last_error = $3,"
    "  next_attempt_at = now() + $4::bigint * interval '1 millisecond',"
    "  lease_until = NULL, leased_by = NULL, updated_at = now()"
    " WHERE notification_id = $1 AND leased_by = $2";
static const char SQL_FAILED[] =
    "UPDATE notifications SET status = 'failed', attempts = attempts + 1, last_error = $3,"
    "  lease_until = NULL, leased_by = NULL, updated_at = now()"
    " WHERE notification_id = $1 AND leased_by = $2";

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
    /* the trace of the command that queued the email (migration 0021) */
    const char *trace = PQgetisnull(row, 0, 12) ? NULL : PQgetvalue(row, 0, 12);
    int rc = outbox_append(db, OUTBOX_NOTIFICATIONS, key.s, key.len, text, strlen(text), trace, err);
    sbuf_free(&key);
    free(text);
    return rc;
}

/* Runs one outcome update. Returns 1 if it changed the row, 0 if the lease is no longer
 * this worker's (it expired and another worker took the notification over, or the
 * notification was erased), -1 on a database error. */
static int record_update(struct b2bd_db *db, const char *sql, int n, const char *const *v,
                         struct b2bd_err *err)
{
    PGresult *res = db_query(db, sql, n, v, NULL, NULL, err);
    if (!res)
        return -1;
    int changed = atoi(PQcmdTuples(res)) > 0;
    PQclear(res);
    return changed;
}

/* Records the outcome of one send in the open transaction. Returns 0 when recorded,
 * 1 when the lease was lost (nothing to record), -1 on a database error. */
static int record(struct b2bd_notifier *n, struct b2bd_db *db, PGresult *row, const char *token,
                  const struct smtp_result *r, struct b2bd_err *err)
{
    const char *id = PQgetvalue(row, 0, 0);
    int attempts = atoi(PQgetvalue(row, 0, 10)) + 1;
    long age_s = atol(PQgetvalue(row, 0, 11));
    int rc;
    if (r->outcome == SMTP_SENT) {
        const char *v[] = {id, token};
        if ((rc = record_update(db, SQL_SENT, 2, v, err)) <= 0)
            return rc < 0 ? -1 : 1;
        log_info("notifier", "sent", LOG_STR("notification_id", id), LOG_INT("attempts", attempts));
        if (n->metrics)
            metrics_inc(n->metrics->ntf_sent, NULL, 1);
        return emit_event(db, row, "sent", attempts, NULL, err);
    }
    /* the settings SIGHUP may change (src/reload.c stores them atomically) */
    long delay = notifier_backoff_ms(attempts, __atomic_load_n(&n->cfg->notifier_retry_initial_ms, __ATOMIC_RELAXED),
                                     __atomic_load_n(&n->cfg->notifier_retry_max_ms, __ATOMIC_RELAXED),
                                     random01());
    int give_up = r->outcome == SMTP_PERMANENT ||
                  age_s * 1000 + delay > __atomic_load_n(&n->cfg->notifier_give_up_s, __ATOMIC_RELAXED) * 1000;
    if (give_up) {
        const char *v[] = {id, token, r->error};
        if ((rc = record_update(db, SQL_FAILED, 3, v, err)) <= 0)
            return rc < 0 ? -1 : 1;
        log_warn("notifier", "failed", LOG_STR("notification_id", id),
                 LOG_INT("attempts", attempts), LOG_INT("reply", r->reply_code),
                 LOG_STR("error", r->error));
        if (n->metrics)
            metrics_inc(n->metrics->ntf_failed, NULL, 1);
        return emit_event(db, row, "failed", attempts, r->error, err);
    }
    char ms[24];
    snprintf(ms, sizeof ms, "%ld", delay);
    const char *v[] = {id, token, r->error, ms};
    if ((rc = record_update(db, SQL_RETRY, 4, v, err)) <= 0)
        return rc < 0 ? -1 : 1;
    log_info("notifier", "retry", LOG_STR("notification_id", id), LOG_INT("attempts", attempts),
             LOG_INT("reply", r->reply_code), LOG_INT("delay_ms", delay),
             LOG_STR("error", r->error));
    if (n->metrics)
        metrics_inc(n->metrics->ntf_retried, NULL, 1);
    return 0;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Waits for this worker's turn so that the instance starts at most notifier_rate_per_s
 * sends a second. Returns 1 if it waited, else 0. */
static int pace(struct b2bd_notifier *n)
{
    long rate = __atomic_load_n(&n->cfg->notifier_rate_per_s, __ATOMIC_RELAXED);
    if (rate <= 0)
        return 0;
    int64_t now = now_us();
    pthread_mutex_lock(&n->pace_lock);
    int64_t at = n->next_send_us > now ? n->next_send_us : now;
    n->next_send_us = at + 1000000 / rate;
    pthread_mutex_unlock(&n->pace_lock);
    if (at > now) {
        struct timespec ts = {(time_t)((at - now) / 1000000), (long)((at - now) % 1000000) * 1000};
        nanosleep(&ts, NULL);
        return 1;
    }
    return 0;
}

/* Connects (when not connected) and listens for new notifications. */
static int worker_connect(struct b2bd_db *db, struct b2bd_err *err)
{
    if (db_connected(db))
        return 0;
    if (db_connect(db, err) < 0 || db_exec(db, "LISTEN " NOTIFY_CHANNEL, err) < 0)
        return -1;
    return 0;
}

/* Records the outcome of a send in one transaction, reconnecting and retrying while the
 * database is away (the lease keeps the notification this worker's meanwhile); a
 * stopping worker gives up after NOTIFIER_STOP_RECORD_MS, and its lease then expires:
 * the email is sent again (at least once, never twice at the same time). */
static void record_outcome(struct b2bd_notifier *n, struct b2bd_db *db, PGresult *row,
                           const char *token, const struct smtp_result *r)
{
    long backoff = 100;
    int64_t stop_by = 0;
    const char *id = PQgetvalue(row, 0, 0);
    for (;;) {
        struct b2bd_err err;
        b2bd_err_clear(&err);
        int rc = -1;
        if (worker_connect(db, &err) == 0 && db_exec(db, "BEGIN", &err) == 0) {
            rc = record(n, db, row, token, r, &err);
            if (rc == 0 && db_exec(db, "COMMIT", &err) < 0)
                rc = -1;
            else if (rc != 0 && db_connected(db))
                db_exec(db, "ROLLBACK", &err);
        }
        if (rc == 0) {
            struct b2bd_err ignored; /* committed: the relays also poll */
            (void)outbox_wake(db, &ignored);
            return;
        }
        if (rc == 1) {
            log_warn("notifier", "lease_lost", LOG_STR("notification_id", id),
                     LOG_STR("note", "the notification was taken over or erased: its outcome is "
                                     "not recorded by this worker"));
            return;
        }
        log_warn("notifier", "record_failed", LOG_STR("notification_id", id),
                 LOG_STR("error", err.msg), LOG_INT("retry_ms", backoff));
        if (atomic_load(&n->stopping)) {
            if (!stop_by)
                stop_by = util_now_ms() + NOTIFIER_STOP_RECORD_MS;
            else if (util_now_ms() >= stop_by) {
                log_error("notifier", "record_abandoned", LOG_STR("notification_id", id),
                          LOG_STR("note", "sent again once its lease expires"));
                return;
            }
        }
        util_sleep_ms(backoff);
        backoff = backoff < 2000 ? backoff * 2 : 2000;
    }
}

/* One notification: claim (a committed lease), send, record. Returns 1 if one was
 * handled, 0 if none was due, -1 on a database error. */
static int work_once(struct b2bd_notifier *n, struct b2bd_db *db, struct smtp_client *smtp,
                     const char *token)
{
    struct b2bd_err err;
    const char *cv[] = {token};
    PGresult *row = db_query(db, SQL_CLAIM, 1, cv, NULL, NULL, &err);
    if (!row || PQntuples(row) == 0) {
        int rc = row ? 0 : -1;
        PQclear(row);
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
        if (pace(n)) {
            /* the wait came out of the lease: renew it, or leave the email to its expiry */
            const char *v[] = {PQgetvalue(row, 0, 0), token};
            PGresult *res = db_query(db, SQL_RENEW, 2, v, NULL, NULL, &err);
            int renewed = res && atoi(PQcmdTuples(res)) > 0;
            PQclear(res);
            if (!renewed) {
                PQclear(row);
                return -1;
            }
        }
        double started = metrics_clock();
        smtp_send(smtp, &m, &r);
        if (n->metrics)
            metrics_observe(n->metrics->ntf_duration, NULL, metrics_clock() - started, 1);
    }
    record_outcome(n, db, row, token, &r);
    PQclear(row);
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
    db.metrics = n->metrics;
    /* smtp:// upgrades with STARTTLS when the server offers it (try), or refuses to
     * send without it (required); smtps:// is TLS from the start */
    int starttls = strcmp(cfg->smtp_starttls, "required") == 0 ? 2
                   : strcmp(cfg->smtp_starttls, "off") == 0    ? 0
                                                               : 1;
    struct smtp_settings ss = {.url = cfg->smtp_url, .password = cfg->smtp_password,
                               .timeout_ms = NOTIFIER_SMTP_TIMEOUT_MS, .starttls = starttls,
                               .ca_file = cfg->smtp_ca_file};
    struct smtp_client *smtp = smtp_client_new(&ss);
    long backoff = 100;
    while (!atomic_load(&n->stopping)) {
        if (!db_connected(&db)) {
            if (worker_connect(&db, &err) < 0) {
                util_sleep_ms(backoff);
                backoff = backoff < 5000 ? backoff * 2 : 5000;
                continue;
            }
            backoff = 100;
        }
        int rc = work_once(n, &db, smtp, w->token);
        if (rc < 0)
            util_sleep_ms(backoff);
        else if (rc == 0)
            wait_work(&db);
    }
    smtp_client_free(smtp);
    db_free(&db);
    return NULL;
}

struct b2bd_notifier *notifier_start(const struct b2bd_config *cfg, struct b2bd_metrics *metrics,
                                     struct b2bd_err *err)
{
    if (!cfg->smtp_url) {
        b2bd_err_set(err, B2BD_ERR_CONFIG, "smtp_url", "the notifier needs smtp_url (B2BD_SMTP_URL)");
        return NULL;
    }
    struct b2bd_notifier *n = calloc(1, sizeof *n);
    if (!n)
        abort();
    n->cfg = cfg;
    n->metrics = metrics;
    pthread_mutex_init(&n->pace_lock, NULL);
    n->n_workers = (int)cfg->notifier_concurrency;
    n->workers = calloc((size_t)n->n_workers, sizeof *n->workers);
    if (!n->workers)
        abort();
    for (int i = 0; i < n->n_workers; i++) {
        n->workers[i] = (struct worker){.n = n, .index = i};
        util_uuid_v4(n->workers[i].token);
        if (pthread_create(&n->workers[i].thread, NULL, worker_main, &n->workers[i]) != 0) {
            n->n_workers = i;
            notifier_stop(n);
            b2bd_err_set(err, B2BD_ERR_INTERNAL, NULL, "cannot start notifier workers");
            return NULL;
        }
    }
    log_info("notifier", "started", LOG_INT("workers", n->n_workers));
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
