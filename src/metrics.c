/* metrics: b2bd's own metric set, on the generic registry (metrics_registry.c), and its
 * readiness. */
#include "b2bd/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "b2bd/command_types.h"
#include "b2bd/err.h"
#include "b2bd/outbox_topics.h"
#include "b2bd/version.h"

/* ---- b2bd's metrics ------------------------------------------------------------------ */

static const double BATCH_SIZE_BUCKETS[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000};
static const double BATCH_SECONDS_BUCKETS[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                               0.25,  0.5,    1,     2.5,  5,     10,  30};
static const double COMMAND_SECONDS_BUCKETS[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                 0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                                 1,      2.5,     5};
static const double SEND_SECONDS_BUCKETS[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

struct b2bd_metrics *metrics_b2bd_new(void)
{
    struct b2bd_metrics *bm = calloc(1, sizeof *bm);
    if (!bm)
        abort();
    struct metrics *r = bm->reg = metrics_new();
    static const char *const TOPIC[] = {"topic", NULL};
    static const char *const TYPE[] = {"type", NULL};
    static const char *const CODE[] = {"code", NULL};
    static const char *const TOPIC_PARTITION[] = {"topic", "partition", NULL};
    static const char *const VERSION[] = {"version", NULL};
    static const char *const LANE[] = {"lane", NULL};

    bm->consumed = metrics_register(r, METRIC_COUNTER, "b2bd_commands_consumed_total",
        "Messages taken from the command topics, by topic (without the prefix).", TOPIC, NULL, 0);
    bm->applied = metrics_register(r, METRIC_COUNTER, "b2bd_commands_applied_total",
        "Commands applied, by command type.", TYPE, NULL, 0);
    bm->rejected = metrics_register(r, METRIC_COUNTER, "b2bd_commands_rejected_total",
        "Commands that got a rejected result, by command type.", TYPE, NULL, 0);
    bm->rejected_by_code = metrics_register(r, METRIC_COUNTER, "b2bd_commands_rejected_by_code_total",
        "Commands that got a rejected result, by error code.", CODE, NULL, 0);
    bm->duplicates = metrics_register(r, METRIC_COUNTER, "b2bd_commands_duplicate_total",
        "Repeats of applied commands (same command_id): the stored result was sent again.", NULL, NULL, 0);
    bm->skipped = metrics_register(r, METRIC_COUNTER, "b2bd_commands_redelivered_total",
        "Messages skipped because they were applied before (redelivered by Kafka).", NULL, NULL, 0);
    bm->dry_runs = metrics_register(r, METRIC_COUNTER, "b2bd_commands_dry_run_total",
        "Dry runs judged: their results were sent, nothing was applied (not in the applied, "
        "rejected or repeat counts).", NULL, NULL, 0);
    bm->bulk_commands = metrics_register(r, METRIC_COUNTER, "b2bd_apply_bulk_commands_total",
        "Plain assigns and revokes settled set-based, in runs (bulk_assign).", NULL, NULL, 0);
    bm->bulk_fallbacks = metrics_register(r, METRIC_COUNTER, "b2bd_apply_bulk_fallbacks_total",
        "Runs of assigns handed back to the one-by-one path (a race, or rows about one customer).",
        NULL, NULL, 0);
    bm->isolated = metrics_register(r, METRIC_COUNTER, "b2bd_apply_isolated_commands_total",
        "Messages the database refused (a failure that is not the surroundings'), rejected alone "
        "while the others applied; the log has the database's error (event=command_refused).",
        NULL, NULL, 0);
    bm->parallel_batches = metrics_register(r, METRIC_COUNTER, "b2bd_apply_parallel_batches_total",
        "Batches whose partitions were applied by more than one worker (apply_workers).",
        NULL, NULL, 0);
    bm->dead_letters = metrics_register(r, METRIC_COUNTER, "b2bd_dead_letters_total",
        "Messages sent to the dead-letter topic, by code.", CODE, NULL, 0);
    bm->lost = metrics_register(r, METRIC_COUNTER, "b2bd_commands_lost_total",
        "Commands the broker deleted (retention) before b2bd applied them; each gap is a "
        "COMMANDS_LOST dead letter and an event=commands_lost error line.", NULL, NULL, 0);
    bm->batch_size = metrics_register(r, METRIC_HISTOGRAM, "b2bd_batch_size_messages",
        "Messages per committed batch (one transaction).", NULL, BATCH_SIZE_BUCKETS, N_OF(BATCH_SIZE_BUCKETS));
    bm->batch_duration = metrics_register(r, METRIC_HISTOGRAM, "b2bd_batch_duration_seconds",
        "Time to apply and commit one batch, retries included.", NULL, BATCH_SECONDS_BUCKETS,
        N_OF(BATCH_SECONDS_BUCKETS));
    bm->command_duration = metrics_register(r, METRIC_HISTOGRAM, "b2bd_command_duration_seconds",
        "Processing time per message: its batch's duration divided by the batch's size.", NULL,
        COMMAND_SECONDS_BUCKETS, N_OF(COMMAND_SECONDS_BUCKETS));
    bm->batch_retries = metrics_register(r, METRIC_COUNTER, "b2bd_batch_retries_total",
        "Batches rolled back and applied again (database unavailable or failing).", NULL, NULL, 0);
    bm->outbox_rows = metrics_register(r, METRIC_GAUGE, "b2bd_outbox_rows",
        "Rows waiting in the outbox to be published, at the relay's last check.", NULL, NULL, 0);
    bm->outbox_age = metrics_register(r, METRIC_GAUGE, "b2bd_outbox_oldest_age_seconds",
        "Age of the oldest unpublished outbox row at the relay's last check (0: none).", NULL, NULL, 0);
    /* two series for the whole database, not one per shop or company: an operator sees
     * how much is suspended and alerts on a jump; who is suspended is b2bctl access's */
    bm->suspended_companies = metrics_register(r, METRIC_GAUGE, "b2bd_suspended_companies",
        "Companies suspended, in the whole database, at the relay's last count (every 5 s).", NULL, NULL, 0);
    bm->suspended_contacts = metrics_register(r, METRIC_GAUGE, "b2bd_suspended_contacts",
        "Contacts suspended in their company (by the company or on their own), in the whole database, "
        "at the relay's last count (every 5 s).", NULL, NULL, 0);
    bm->published = metrics_register(r, METRIC_COUNTER, "b2bd_events_published_total",
        "Outbox messages delivered to Kafka by this instance, by topic (without the prefix).", TOPIC,
        NULL, 0);
    bm->lag = metrics_register(r, METRIC_GAUGE, "b2bd_consumer_lag_messages",
        "Consumer lag per assigned partition, from librdkafka's statistics.", TOPIC_PARTITION, NULL, 0);
    bm->lane_lag = metrics_register(r, METRIC_GAUGE, "b2bd_lane_lag_messages",
        "Consumer lag of each lane (interactive: the command topics of their own; bulk: the "
        "bulk topic), summed over its assigned partitions, from librdkafka's statistics.",
        LANE, NULL, 0);
    bm->assigned = metrics_register(r, METRIC_GAUGE, "b2bd_consumer_assigned_partitions",
        "Command topic partitions assigned to this consumer.", NULL, NULL, 0);
    bm->ntf_sent = metrics_register(r, METRIC_COUNTER, "b2bd_notifications_sent_total",
        "Emails accepted by the SMTP server.", NULL, NULL, 0);
    bm->ntf_retried = metrics_register(r, METRIC_COUNTER, "b2bd_notifications_retried_total",
        "Email sends that failed transiently and were scheduled again.", NULL, NULL, 0);
    bm->ntf_failed = metrics_register(r, METRIC_COUNTER, "b2bd_notifications_failed_total",
        "Emails given up (permanent refusal or retried too long).", NULL, NULL, 0);
    bm->ntf_duration = metrics_register(r, METRIC_HISTOGRAM, "b2bd_notification_send_duration_seconds",
        "Time of one SMTP send attempt.", NULL, SEND_SECONDS_BUCKETS, N_OF(SEND_SECONDS_BUCKETS));
    bm->db_reconnects = metrics_register(r, METRIC_COUNTER, "b2bd_db_reconnects_total",
        "PostgreSQL connections made again after a connection was lost.", NULL, NULL, 0);
    bm->db_up = metrics_register(r, METRIC_GAUGE, "b2bd_db_up",
        "1 when the last database check succeeded, else 0.", NULL, NULL, 0);
    bm->ready = metrics_register(r, METRIC_GAUGE, "b2bd_ready",
        "1 when /readyz answers 200, else 0.", NULL, NULL, 0);
    bm->build_info = metrics_register(r, METRIC_GAUGE, "b2bd_build_info",
        "Always 1; the version as a label.", VERSION, NULL, 0);

    for (int t = 0; t < TOPIC_COUNT; t++)
        metrics_inc(bm->consumed, METRIC_LABELS(decode_topic_suffix((enum b2bd_topic)t)), 0);
    for (int t = 0; t <= CMD_UNKNOWN; t++) {
        metrics_inc(bm->applied, METRIC_LABELS(decode_type_name((enum b2bd_cmd_type)t)), 0);
        metrics_inc(bm->rejected, METRIC_LABELS(decode_type_name((enum b2bd_cmd_type)t)), 0);
    }
    for (int c = 0; c <= B2BD_ERR_INTERNAL; c++) {
        if (b2bd_code_is_rejection((enum b2bd_code)c))
            metrics_inc(bm->rejected_by_code, METRIC_LABELS(b2bd_code_name((enum b2bd_code)c)), 0);
        if (b2bd_code_is_dead_letter((enum b2bd_code)c))
            metrics_inc(bm->dead_letters, METRIC_LABELS(b2bd_code_name((enum b2bd_code)c)), 0);
    }
    static const char *const OUTPUTS[] = {OUTBOX_RESULTS, OUTBOX_ACCESS, OUTBOX_NOTIFICATIONS,
                                          OUTBOX_DLQ};
    for (size_t i = 0; i < N_OF(OUTPUTS); i++)
        metrics_inc(bm->published, METRIC_LABELS(OUTPUTS[i]), 0);
    metrics_set(bm->build_info, METRIC_LABELS(B2BD_VERSION), 1);
    metrics_set(bm->lane_lag, METRIC_LABELS("interactive"), 0);
    metrics_set(bm->lane_lag, METRIC_LABELS("bulk"), 0);
    atomic_store(&bm->outbox_age_ms, -1);
    return bm;
}

void metrics_b2bd_free(struct b2bd_metrics *bm)
{
    if (!bm)
        return;
    metrics_free(bm->reg);
    free(bm);
}

void metrics_record_batch(struct b2bd_metrics *bm, const struct apply_stats *before,
                          const struct apply_stats *after, size_t n, double seconds)
{
    if (!bm)
        return;
    for (int t = 0; t <= CMD_UNKNOWN; t++) {
        const char *type = decode_type_name((enum b2bd_cmd_type)t);
        unsigned long a = after->applied_by_type[t] - before->applied_by_type[t];
        unsigned long r = after->rejected_by_type[t] - before->rejected_by_type[t];
        if (a)
            metrics_inc(bm->applied, METRIC_LABELS(type), (double)a);
        if (r)
            metrics_inc(bm->rejected, METRIC_LABELS(type), (double)r);
    }
    for (int c = 0; c <= B2BD_ERR_INTERNAL; c++) {
        unsigned long d = after->by_code[c] - before->by_code[c];
        if (!d)
            continue;
        const char *code = b2bd_code_name((enum b2bd_code)c);
        metrics_inc(b2bd_code_is_dead_letter((enum b2bd_code)c) ? bm->dead_letters
                                                                : bm->rejected_by_code,
                    METRIC_LABELS(code), (double)d);
    }
    if (after->duplicates != before->duplicates)
        metrics_inc(bm->duplicates, NULL, (double)(after->duplicates - before->duplicates));
    if (after->skipped != before->skipped)
        metrics_inc(bm->skipped, NULL, (double)(after->skipped - before->skipped));
    if (after->dry_runs != before->dry_runs)
        metrics_inc(bm->dry_runs, NULL, (double)(after->dry_runs - before->dry_runs));
    if (after->bulk_commands != before->bulk_commands)
        metrics_inc(bm->bulk_commands, NULL, (double)(after->bulk_commands - before->bulk_commands));
    if (after->bulk_fallbacks != before->bulk_fallbacks)
        metrics_inc(bm->bulk_fallbacks, NULL, (double)(after->bulk_fallbacks - before->bulk_fallbacks));
    if (after->isolated != before->isolated)
        metrics_inc(bm->isolated, NULL, (double)(after->isolated - before->isolated));
    if (after->lost != before->lost)
        metrics_inc(bm->lost, NULL, (double)(after->lost - before->lost));
    if (n == 0)
        return;
    metrics_observe(bm->batch_size, NULL, (double)n, 1);
    metrics_observe(bm->batch_duration, NULL, seconds, 1);
    metrics_observe(bm->command_duration, NULL, seconds / (double)n, n);
}

void metrics_published(struct b2bd_metrics *bm, const char *topic_suffix)
{
    if (!bm)
        return;
    metrics_inc(bm->published, METRIC_LABELS(topic_suffix), 1);
}

void metrics_outbox(struct b2bd_metrics *bm, long rows, double oldest_age_s)
{
    if (!bm)
        return;
    metrics_set(bm->outbox_rows, NULL, (double)rows);
    metrics_set(bm->outbox_age, NULL, oldest_age_s);
    atomic_store(&bm->outbox_age_ms, (long long)(oldest_age_s * 1000));
}

void metrics_suspended(struct b2bd_metrics *bm, long companies, long contacts)
{
    if (!bm)
        return;
    metrics_set(bm->suspended_companies, NULL, (double)companies);
    metrics_set(bm->suspended_contacts, NULL, (double)contacts);
}

void metrics_db_check(struct b2bd_metrics *bm, int ok)
{
    if (!bm)
        return;
    int64_t now = util_now_ms();
    atomic_store(ok ? &bm->db_ok_ms : &bm->db_fail_ms, (long long)(now > 0 ? now : 1));
    metrics_set(bm->db_up, NULL, ok ? 1 : 0);
}

void metrics_assigned(struct b2bd_metrics *bm, int partitions)
{
    if (!bm)
        return;
    atomic_store(&bm->assigned_partitions, partitions);
    metrics_set(bm->assigned, NULL, partitions);
    if (partitions == 0) {
        metrics_clear(bm->lag);
        metrics_set(bm->lane_lag, METRIC_LABELS("interactive"), 0);
        metrics_set(bm->lane_lag, METRIC_LABELS("bulk"), 0);
    }
}

/* The lane of a command topic: "bulk" for the bulk topic (whatever the prefix). */
static const char *metrics_topic_lane(const char *topic)
{
    static const char BULK[] = "commands.bulk";
    size_t n = strlen(topic), b = sizeof BULK - 1;
    return n >= b && strcmp(topic + n - b, BULK) == 0 ? "bulk" : "interactive";
}

static int metrics_in_lane(const char *topic, const void *lane)
{
    return strcmp(metrics_topic_lane(topic), lane) == 0;
}

int metrics_kafka_stats(struct b2bd_metrics *bm, const char *lane, const char *json, size_t len)
{
    if (!bm)
        return 0;
    json_t *root = json_loadb(json, len, 0, NULL);
    json_t *topics = json_object_get(root, "topics");
    if (!json_is_object(topics)) {
        json_decref(root);
        return -1;
    }
    /* Replaced as a whole, lane by lane (a consumer each): partitions taken away since
     * the lane's last report disappear. */
    metrics_clear_where(bm->lag, 0, metrics_in_lane, lane);
    double sum = 0;
    const char *topic;
    json_t *t;
    json_object_foreach(topics, topic, t) {
        const char *partition;
        json_t *p;
        json_t *parts = json_object_get(t, "partitions");
        json_object_foreach(parts, partition, p) {
            json_t *lag = json_object_get(p, "consumer_lag");
            const char *state = json_string_value(json_object_get(p, "fetch_state"));
            if (strcmp(partition, "-1") == 0 || !json_is_integer(lag) ||
                json_integer_value(lag) < 0 || (state && strcmp(state, "none") == 0))
                continue;
            metrics_set(bm->lag, METRIC_LABELS(topic, partition), (double)json_integer_value(lag));
            sum += (double)json_integer_value(lag);
        }
    }
    metrics_set(bm->lane_lag, METRIC_LABELS(lane), sum);
    json_decref(root);
    return 0;
}

int metrics_ready(struct b2bd_metrics *bm, int64_t now_ms, char *why, size_t size)
{
    long long ok = atomic_load(&bm->db_ok_ms), fail = atomic_load(&bm->db_fail_ms);
    long long age = atomic_load(&bm->outbox_age_ms);
    int ready = 0;
    if (atomic_load(&bm->stopping))
        snprintf(why, size, "stopping");
    else if (!atomic_load(&bm->started))
        snprintf(why, size, "starting");
    else if (ok == 0 || fail > ok)
        snprintf(why, size, "database unreachable");
    else if (now_ms - ok > METRICS_DB_STALE_MS)
        snprintf(why, size, "database not checked for %lld s", (long long)(now_ms - ok) / 1000);
    else if (atomic_load(&bm->needs_consumer) && atomic_load(&bm->assigned_partitions) <= 0)
        snprintf(why, size, "no partitions assigned");
    else if (age > METRICS_OUTBOX_STUCK_MS)
        snprintf(why, size, "outbox stuck: oldest row %lld s old", age / 1000);
    else {
        snprintf(why, size, "ready");
        ready = 1;
    }
    metrics_set(bm->ready, NULL, ready);
    return ready;
}
