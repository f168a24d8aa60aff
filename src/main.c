/* main: the b2bd daemon: consume commands, apply them, publish what changed. */
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "b2bd/apply.h"
#include "b2bd/config.h"
#include "b2bd/db.h"
#include "b2bd/email.h"
#include "b2bd/http.h"
#include "b2bd/kafka.h"
#include "b2bd/log.h"
#include "b2bd/metrics.h"
#include "b2bd/schema.h"
#include "b2bd/notifier.h"
#include "b2bd/relay.h"
#include "b2bd/reload.h"
#include "b2bd/sdnotify.h"
#include "b2bd/util.h"
#include "b2bd/version.h"
#include "b2bd/workers.h"

extern char **environ;

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;
/* What main() loaded the configuration from, for a reload: --config and --role. */
static const char *config_path, *role_override;

/* Exit status after a fatal Kafka client error: systemd's Restart=on-failure starts a
 * new process, with new clients; the outbox and the uncommitted offsets wait for it. */
#define EXIT_KAFKA_FATAL 3

/* True once a Kafka client of the daemon is dead (logged as it happened). */
static bool kafka_dead(struct kafka_in *in, const struct b2bd_relay *relay)
{
    return (in && kafka_in_fatal(in)) || relay_failed(relay);
}

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        reload_requested = 1;
    else
        stop_requested = 1;
}

/* SIGHUP: loads the configuration again and takes what changes without a restart
 * (reload_apply); a configuration that fails to load changes nothing. */
static void reload(struct b2bd_config *cfg, const char *status)
{
    reload_requested = 0;
    sdnotify_reloading();
    struct b2bd_config next;
    struct b2bd_err err;
    b2bd_err_clear(&err);
    if (config_load(config_path, environ, &next, &err) < 0) {
        log_error("main", "reload_failed", LOG_STR("field", err.field[0] ? err.field : "-"),
                  LOG_STR("code", b2bd_code_name(err.code)), LOG_STR("error", err.msg),
                  LOG_STR("note", "the settings stay as they were"));
    } else {
        if (role_override) {
            free(next.role);
            next.role = strdup(role_override);
        }
        int restart = 0;
        int taken = reload_apply(cfg, &next, &restart);
        log_info("main", "reload_done", LOG_INT("taken", taken),
                 LOG_INT("restart_needed", restart));
        config_free(&next);
    }
    sdnotify_ready(status);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: b2bd [--config FILE] [--role all|worker|notifier] [--check-config] [--version]\n"
            "  Consumes b2b commands from Kafka, applies them in PostgreSQL and publishes\n"
            "  results and access events. Settings come from FILE and the environment\n"
            "  (B2BD_*; see config/b2bd.conf and the README).\n"
            "  --role ROLE     all (default): commands and emails; worker: commands only;\n"
            "                  notifier: emails only (overrides the role setting)\n"
            "  --check-config  load the configuration, print it (secrets hidden), exit\n");
}

/* Connects and brings the schema up to date (schema_update), retrying with backoff until
 * it works or a stop is asked (-1). Returns SCHEMA_NEWER, without retrying, when the
 * database's schema is newer than this build's. */
static int startup_database(struct b2bd_db *db)
{
    long backoff = 200;
    for (;;) {
        struct b2bd_err err;
        b2bd_err_clear(&err);
        int rc = schema_update(db, &err);
        if (rc == 0)
            return 0;
        if (rc == SCHEMA_NEWER) {
            log_error("main", "schema_newer", LOG_STR("error", err.msg),
                      LOG_INT("schema_version", b2bd_schema_version));
            return SCHEMA_NEWER;
        }
        log_warn("main", "database_unavailable", LOG_STR("error", err.msg),
                 LOG_INT("retry_ms", backoff));
        sdnotify_status("waiting for PostgreSQL");
        if (stop_requested)
            return -1;
        util_sleep_ms(backoff);
        backoff = backoff < 5000 ? backoff * 2 : 5000;
    }
}

/* Waits before the next attempt after a failure of the surroundings: 100 ms doubling to
 * 5 s, counted in metrics. Returns -1 if a stop was asked. */
static int retry_wait(struct b2bd_metrics *metrics, long *backoff)
{
    metrics_inc(metrics->batch_retries, NULL, 1);
    sdnotify_watchdog(); /* alive, waiting for the database: a restart would not help */
    if (stop_requested)
        return -1;
    util_sleep_ms(*backoff);
    *backoff = *backoff < 5000 ? *backoff * 2 : 5000;
    return 0;
}

/* Applies msgs in one transaction, retrying (with backoff, reconnecting) while the
 * surroundings fail. Returns 0 once committed, -1 if a stop came first (nothing
 * committed), 1 when the database refused something in them (why: what the message at
 * fault gets). Counted in the metrics of the applier's connection (run's). */
static int apply_retrying(struct b2bd_applier *ap, const struct b2bd_msg *msgs, size_t n,
                          struct apply_stats *st, struct b2bd_err *why, long *backoff)
{
    struct b2bd_metrics *metrics = ap->db->metrics;
    for (;;) {
        struct b2bd_err err;
        b2bd_err_clear(&err);
        if (apply_batch(ap, msgs, n, st, &err) == 0) {
            metrics_db_check(metrics, 1);
            return 0;
        }
        if (err.code != B2BD_ERR_DB) {
            metrics_inc(metrics->batch_retries, NULL, 1);
            *why = err;
            return 1;
        }
        if (!db_connected(ap->db))
            metrics_db_check(metrics, 0);
        log_warn("main", "batch_failed", LOG_UINT("messages", n), LOG_STR("error", err.msg),
                 LOG_INT("retry_ms", *backoff));
        if (retry_wait(metrics, backoff) < 0)
            return -1;
    }
}

/* Rejects a message the database refused on its own, retrying while the surroundings
 * fail. Returns 0 once committed, -1 if a stop came first. */
static int reject_retrying(struct b2bd_applier *ap, const struct b2bd_msg *msg,
                           const struct b2bd_err *why, struct apply_stats *st, long *backoff)
{
    for (;;) {
        struct b2bd_err err;
        b2bd_err_clear(&err);
        if (apply_reject_alone(ap, msg, why, st, &err) == 0)
            return 0;
        log_warn("main", "reject_failed", LOG_STR("topic", msg->topic_name),
                 LOG_INT("partition", msg->partition), LOG_INT("offset", msg->offset),
                 LOG_STR("error", err.msg), LOG_INT("retry_ms", *backoff));
        if (retry_wait(ap->db->metrics, backoff) < 0)
            return -1;
    }
}

/* Applies one share of a batch. When the database refuses the batch outside any one
 * command (at COMMIT, say), its messages are applied again one per transaction, in
 * order, and one refused on its own is rejected alone: one message never stops the
 * others. Returns 0 once all is committed, -1 if a stop came first (what was committed
 * is skipped when redelivered). */
static int apply_with_retry(struct b2bd_applier *ap, const struct b2bd_msg *msgs, size_t n,
                            struct apply_stats *st)
{
    long backoff = 100;
    struct b2bd_err why;
    int rc = apply_retrying(ap, msgs, n, st, &why, &backoff);
    if (rc <= 0)
        return rc;
    log_warn("main", "batch_split", LOG_UINT("messages", n),
             LOG_STR("note", "applied again one message at a time"));
    for (size_t i = 0; i < n; i++) {
        rc = n > 1 ? apply_retrying(ap, &msgs[i], 1, st, &why, &backoff) : 1;
        if (rc > 0)
            rc = reject_retrying(ap, &msgs[i], &why, st, &backoff);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* apply's question for a partition's oldest offset (b2bd_applier.low_watermark). */
static int low_watermark(void *ctx, const char *topic, int32_t partition, int64_t *low,
                         struct b2bd_err *err)
{
    return kafka_in_low_watermark(ctx, topic, partition, low, err);
}

/* One lane's pipeline (README "Two lanes"): consume, apply, commit offsets, until a stop
 * is asked or the other lane ends; counted in its connection's metrics. The interactive
 * lane runs on the main thread (and takes reloads), the bulk lane on a thread of its
 * own, with connections of its own: an interactive command never waits for a bulk
 * batch. */
struct lane_run {
    enum kafka_lane lane;
    struct b2bd_config *cfg;
    struct kafka_in *in;
    struct b2bd_relay *relay;
    struct b2bd_db *db;                 /* its first worker's connection */
    const struct email_template *tmpl;
    struct lane_totals *totals;
};

/* Both lanes' counts (the progress and stopping lines), and how they end. */
struct lane_totals {
    pthread_mutex_t lock;
    struct apply_stats by_lane[2];      /* each lane's counts so far, by enum kafka_lane */
    atomic_size_t batch_max;            /* cfg->batch_max, as the main thread last read it */
    atomic_int quit;                    /* a lane ended: the other ends too */
};

static void lane_totals_set(struct lane_totals *t, enum kafka_lane lane, const struct apply_stats *st)
{
    pthread_mutex_lock(&t->lock);
    t->by_lane[lane] = *st;
    pthread_mutex_unlock(&t->lock);
}

static struct apply_stats lane_totals_get(struct lane_totals *t)
{
    struct apply_stats st = {0};
    pthread_mutex_lock(&t->lock);
    apply_stats_add(&st, &t->by_lane[0]);
    apply_stats_add(&st, &t->by_lane[1]);
    pthread_mutex_unlock(&t->lock);
    return st;
}

static void lane_loop(struct lane_run *L)
{
    struct b2bd_config *cfg = L->cfg;
    struct b2bd_metrics *metrics = L->db->metrics;
    struct b2bd_applier ap = {.db = L->db, .cfg = cfg, .email_default = L->tmpl,
                              .low_watermark = low_watermark, .low_watermark_ctx = L->in};
    struct workers *workers = workers_new((size_t)cfg->apply_workers, &ap);
    struct apply_stats st = {0};
    bool main_lane = L->lane == KAFKA_LANE_INTERACTIVE;
    size_t max = atomic_load(&L->totals->batch_max);
    rd_kafka_message_t **batch = NULL, **done = NULL;
    struct b2bd_msg *msgs = NULL;
    unsigned char *ok = NULL;
    size_t cap = 0;
    int64_t next_report = util_now_ms() + 10000;
    while (!stop_requested && !kafka_dead(L->in, L->relay) && !atomic_load(&L->totals->quit)) {
        if (main_lane && reload_requested) {
            reload(cfg, "consuming commands");
            atomic_store(&L->totals->batch_max, (size_t)cfg->batch_max);
        }
        max = atomic_load(&L->totals->batch_max);
        if (max != cap) { /* empty between rounds: sized anew */
            free(batch);
            free(done);
            free(msgs);
            free(ok);
            batch = calloc(max, sizeof *batch);
            done = calloc(max, sizeof *done);
            msgs = calloc(max, sizeof *msgs);
            ok = calloc(max, 1);
            if (!batch || !done || !msgs || !ok)
                abort();
            cap = max;
        }
        if (main_lane)
            sdnotify_watchdog();
        size_t n = kafka_in_poll(L->in, L->lane, batch, max, 200, (int)cfg->batch_linger_ms);
        if (kafka_in_fatal(L->in)) {
            /* nothing of this batch applied or committed: the next process takes it */
            for (size_t i = 0; i < n; i++)
                rd_kafka_message_destroy(batch[i]);
            break;
        }
        for (size_t i = 0; i < n; i++) {
            const char *topic = rd_kafka_topic_name(batch[i]->rkt);
            msgs[i] = (struct b2bd_msg){
                .topic = (enum b2bd_topic)decode_topic_from_name(cfg->topic_prefix, topic),
                .topic_name = topic,
                .partition = batch[i]->partition,
                .offset = batch[i]->offset,
                .key = batch[i]->key,
                .key_len = batch[i]->key_len,
                .value = batch[i]->payload,
                .value_len = batch[i]->len,
            };
            trace_in_from_kafka(batch[i], &msgs[i].trace);
            metrics_inc(metrics->consumed,
                        METRIC_LABELS((int)msgs[i].topic >= 0 && msgs[i].topic < TOPIC_COUNT
                                          ? decode_topic_suffix(msgs[i].topic) : "other"), 1);
        }
        if (n > 0) {
            struct apply_stats before = st;
            double started = metrics_clock();
            if (workers_apply(workers, msgs, n, apply_with_retry, &st, ok) > 1)
                metrics_inc(metrics->parallel_batches, NULL, 1);
            size_t n_done = 0;
            for (size_t i = 0; i < n; i++)
                if (ok[i])
                    done[n_done++] = batch[i];
            metrics_record_batch(metrics, &before, &st, n_done, metrics_clock() - started);
            kafka_in_commit(L->in, done, n_done, stop_requested);
            if (n_done < n)
                log_warn("main", "batch_abandoned", LOG_UINT("messages", n - n_done),
                         LOG_STR("note", "not committed: applied after the restart"));
            lane_totals_set(L->totals, L->lane, &st);
        }
        for (size_t i = 0; i < n; i++)
            rd_kafka_message_destroy(batch[i]);
        if (main_lane && util_now_ms() >= next_report) {
            struct apply_stats all = lane_totals_get(L->totals);
            log_info("main", "progress", LOG_UINT("applied", all.applied),
                     LOG_UINT("rejected", all.rejected), LOG_UINT("duplicates", all.duplicates),
                     LOG_UINT("dead_letters", all.dead_letters), LOG_UINT("skipped", all.skipped),
                     LOG_UINT("published", relay_published(L->relay)));
            next_report = util_now_ms() + 10000;
        }
    }
    atomic_store(&L->totals->quit, 1);
    workers_free(workers);
    free(batch);
    free(done);
    free(msgs);
    free(ok);
}

static void *bulk_lane_main(void *arg)
{
    lane_loop(arg);
    return NULL;
}

/* The command pipelines: the interactive lane here, the bulk lane on its own thread and
 * connections; both end when a stop is asked, or when either ends. */
static void run_worker(struct b2bd_config *cfg, struct kafka_in *in, struct b2bd_db *db,
                       const struct email_template *tmpl, struct b2bd_relay *relay)
{
    struct lane_totals totals = {0};
    pthread_mutex_init(&totals.lock, NULL);
    atomic_store(&totals.batch_max, (size_t)cfg->batch_max);
    struct b2bd_db bulk_db;
    db_init(&bulk_db, cfg->pg_dsn, cfg->pg_password);
    bulk_db.metrics = db->metrics; /* counted as the first connection is */
    struct lane_run interactive = {.lane = KAFKA_LANE_INTERACTIVE, .cfg = cfg, .in = in,
                                   .relay = relay, .db = db, .tmpl = tmpl, .totals = &totals};
    struct lane_run bulk = interactive;
    bulk.lane = KAFKA_LANE_BULK;
    bulk.db = &bulk_db;
    pthread_t thread;
    bool threaded = pthread_create(&thread, NULL, bulk_lane_main, &bulk) == 0;
    if (!threaded)
        log_error("main", "bulk_lane_failed", LOG_STR("note", "no thread for the bulk lane: stopping"));
    else
        lane_loop(&interactive);
    atomic_store(&totals.quit, 1);
    if (threaded)
        pthread_join(thread, NULL);
    struct apply_stats st = lane_totals_get(&totals);
    log_info("main", "stopping", LOG_UINT("applied", st.applied), LOG_UINT("rejected", st.rejected),
             LOG_UINT("duplicates", st.duplicates), LOG_UINT("dead_letters", st.dead_letters),
             LOG_UINT("bulk", st.bulk_commands), LOG_UINT("bulk_fallbacks", st.bulk_fallbacks));
    db_free(&bulk_db);
    pthread_mutex_destroy(&totals.lock);
}

static int run(struct b2bd_config *cfg)
{
    int worker = strcmp(cfg->role, "notifier") != 0;
    int notifier = strcmp(cfg->role, "worker") != 0;
    struct b2bd_err err;
    b2bd_err_clear(&err);

    struct email_template tmpl = {0};
    if (worker && email_template_load(cfg->templates_dir, &tmpl, &err) < 0) {
        log_error("main", "templates_failed", LOG_STR("code", b2bd_code_name(err.code)),
                  LOG_STR("error", err.msg));
        return 1;
    }
    if (notifier && !cfg->smtp_url) {
        if (!worker) {
            log_error("main", "config_error", LOG_STR("field", "smtp_url"),
                      LOG_STR("error", "the notifier role needs smtp_url"));
            email_template_free(&tmpl);
            return 1;
        }
        log_warn("main", "notifier_disabled",
                 LOG_STR("note", "no smtp_url: emails stay queued until a notifier runs"));
        notifier = 0;
    }
    /* the daemon's one set of metrics, handed to each module that counts */
    struct b2bd_metrics *metrics = metrics_b2bd_new();
    atomic_store(&metrics->needs_consumer, worker);
    struct http_server *http = http_start(cfg->http_listen, metrics, &err);
    if (http)
        log_info("main", "http_listening", LOG_STR("addr", cfg->http_listen),
                 LOG_INT("port", http_port(http)), LOG_STR("paths", "/metrics,/healthz,/readyz"));
    else /* the commands matter more than their metrics: go on without them */
        log_error("main", "http_failed", LOG_STR("field", err.field),
                  LOG_STR("code", b2bd_code_name(err.code)), LOG_STR("error", err.msg));
    struct b2bd_db db;
    db_init(&db, cfg->pg_dsn, cfg->pg_password);
    db.metrics = metrics;
    int started = startup_database(&db);
    if (started != 0) {
        db_free(&db);
        email_template_free(&tmpl);
        http_stop(http);
        metrics_b2bd_free(metrics);
        return started == SCHEMA_NEWER ? 4 : 0; /* 4: b2bd(8) EXIT STATUS */
    }
    metrics_db_check(metrics, 1);
    int rc = 0;
    struct b2bd_relay *relay = NULL;
    struct b2bd_notifier *ntf = NULL;
    struct kafka_in *in = NULL;
    if (!(relay = relay_start(cfg, metrics, &err))) {
        log_error("main", "relay_failed", LOG_STR("field", err.field),
                  LOG_STR("code", b2bd_code_name(err.code)), LOG_STR("error", err.msg));
        rc = 1;
        goto out;
    }
    if (worker && !(in = kafka_in_new(cfg, metrics, &err))) {
        log_error("main", "consumer_failed", LOG_STR("field", err.field),
                  LOG_STR("code", b2bd_code_name(err.code)), LOG_STR("error", err.msg));
        rc = 1;
        goto out;
    }
    if (notifier && !(ntf = notifier_start(cfg, metrics, &err))) {
        log_error("main", "notifier_failed", LOG_STR("field", err.field),
                  LOG_STR("code", b2bd_code_name(err.code)), LOG_STR("error", err.msg));
        rc = 1;
        goto out;
    }
    log_info("main", "ready", LOG_STR("role", cfg->role), LOG_STR("group", cfg->group_id),
             LOG_STR("prefix", cfg->topic_prefix), LOG_INT("batch_max", cfg->batch_max),
             LOG_INT("linger_ms", cfg->batch_linger_ms));
    atomic_store(&metrics->started, 1);
    sdnotify_ready(worker ? "consuming commands" : "sending notifications");
    if (worker)
        run_worker(cfg, in, &db, &tmpl, relay);
    else
        while (!stop_requested && !kafka_dead(NULL, relay)) {
            if (reload_requested)
                reload(cfg, "sending notifications");
            sdnotify_watchdog();
            util_sleep_ms(200);
        }
    if (kafka_dead(in, relay)) {
        log_error("main", "fatal_stop",
                  LOG_STR("client", relay_failed(relay) ? "producer" : "consumer"),
                  LOG_INT("exit", EXIT_KAFKA_FATAL),
                  LOG_STR("note", "a Kafka client failed for good; what is not published stays in "
                                  "the outbox for the next start"));
        rc = EXIT_KAFKA_FATAL;
    }
out:
    atomic_store(&metrics->stopping, 1);
    sdnotify_stopping();
    if (in)
        kafka_in_close(in);
    notifier_stop(ntf);
    relay_stop(relay, 10000);
    db_free(&db);
    email_template_free(&tmpl);
    http_stop(http);
    metrics_b2bd_free(metrics); /* after everything that counts has stopped */
    log_info("main", "stopped", LOG_INT("pid", getpid()));
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"role", required_argument, NULL, 'r'},
                                         {"check-config", no_argument, NULL, 'k'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    /* glibc gives each thread that allocates an arena of its own (up to 8 per core),
     * each keeping what it freed: with the apply workers, relay, notifiers and
     * librdkafka's threads that was several MiB of resident memory for nothing */
    mallopt(M_ARENA_MAX, 2);
    const char *path = NULL, *role = NULL;
    int check = 0, o;
    while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': path = optarg; break;
        case 'r': role = optarg; break;
        case 'k': check = 1; break;
        case 'V': printf("b2bd %s\n", B2BD_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    struct b2bd_config cfg;
    struct b2bd_err err;
    b2bd_err_clear(&err);
    if (config_load(path, environ, &cfg, &err) < 0) {
        /* the failure's kind: CONFIG_ERROR (a setting), IO_ERROR (a file missing or
         * unreadable), never a command's code */
        fprintf(stderr, "b2bd: configuration: %s%s%s (%s)\n", err.field[0] ? err.field : "",
                err.field[0] ? ": " : "", err.msg, b2bd_code_name(err.code));
        return 2;
    }
    if (role) {
        if (strcmp(role, "all") && strcmp(role, "worker") && strcmp(role, "notifier")) {
            fprintf(stderr, "b2bd: --role: all, worker or notifier\n");
            config_free(&cfg);
            return 2;
        }
        free(cfg.role);
        cfg.role = strdup(role);
    }
    if (check) {
        config_dump(&cfg, stdout);
        config_free(&cfg);
        return 0;
    }
    log_init(cfg.log_level, stderr);

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    config_path = path;
    role_override = role;
    signal(SIGPIPE, SIG_IGN);

    char *dsn = config_redact(cfg.pg_dsn);
    log_info("main", "starting", LOG_STR("version", B2BD_VERSION), LOG_INT("pid", getpid()),
             LOG_STR("bootstrap", cfg.kafka_bootstrap), LOG_STR("pg", dsn));
    free(dsn);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = run(&cfg);
    curl_global_cleanup();
    config_free(&cfg);
    return rc;
}
