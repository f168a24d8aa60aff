/* metrics: b2bd's own set of Prometheus metrics (on a metrics_registry) and its readiness. */
#ifndef B2BD_METRICS_H
#define B2BD_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "b2bd/apply_stats.h"
#include "b2bd/metrics_registry.h"

/* ---- b2bd's metrics and readiness ------------------------------------------------------ */

struct b2bd_metrics {
    struct metrics *reg;
    struct metric *consumed;          /* b2bd_commands_consumed_total{topic} */
    struct metric *applied;           /* b2bd_commands_applied_total{type} */
    struct metric *rejected;          /* b2bd_commands_rejected_total{type} */
    struct metric *rejected_by_code;  /* b2bd_commands_rejected_by_code_total{code} */
    struct metric *duplicates;        /* b2bd_commands_duplicate_total */
    struct metric *skipped;           /* b2bd_commands_redelivered_total */
    struct metric *dry_runs;          /* b2bd_commands_dry_run_total */
    struct metric *bulk_commands;     /* b2bd_apply_bulk_commands_total */
    struct metric *bulk_fallbacks;    /* b2bd_apply_bulk_fallbacks_total */
    struct metric *isolated;          /* b2bd_apply_isolated_commands_total */
    struct metric *parallel_batches;  /* b2bd_apply_parallel_batches_total */
    struct metric *dead_letters;      /* b2bd_dead_letters_total{code} */
    struct metric *lost;              /* b2bd_commands_lost_total */
    struct metric *batch_size;        /* b2bd_batch_size_messages (histogram) */
    struct metric *batch_duration;    /* b2bd_batch_duration_seconds (histogram) */
    struct metric *command_duration;  /* b2bd_command_duration_seconds (histogram) */
    struct metric *batch_retries;     /* b2bd_batch_retries_total */
    struct metric *outbox_rows;       /* b2bd_outbox_rows */
    struct metric *outbox_age;        /* b2bd_outbox_oldest_age_seconds */
    struct metric *suspended_companies; /* b2bd_suspended_companies */
    struct metric *suspended_contacts;  /* b2bd_suspended_contacts */
    struct metric *published;         /* b2bd_events_published_total{topic} */
    struct metric *lag;               /* b2bd_consumer_lag_messages{topic,partition} */
    struct metric *assigned;          /* b2bd_consumer_assigned_partitions */
    struct metric *lane_lag;          /* b2bd_lane_lag_messages{lane} */
    struct metric *ntf_sent;          /* b2bd_notifications_sent_total */
    struct metric *ntf_retried;       /* b2bd_notifications_retried_total */
    struct metric *ntf_failed;        /* b2bd_notifications_failed_total */
    struct metric *ntf_duration;      /* b2bd_notification_send_duration_seconds (histogram) */
    struct metric *db_reconnects;     /* b2bd_db_reconnects_total */
    struct metric *db_up;             /* b2bd_db_up */
    struct metric *ready;             /* b2bd_ready (set when rendered) */
    struct metric *build_info;        /* b2bd_build_info{version} */
    /* Readiness inputs. */
    atomic_int started;               /* migrations ran, clients up (main's event=ready) */
    atomic_int stopping;              /* a stop was asked */
    atomic_int needs_consumer;        /* this role consumes commands */
    atomic_int assigned_partitions;
    atomic_llong db_ok_ms;            /* util_now_ms() of the last good check, 0: none */
    atomic_llong db_fail_ms;          /* util_now_ms() of the last failed check, 0: none */
    atomic_llong outbox_age_ms;       /* age of the oldest unpublished row, -1: unknown */
};

/* Readiness thresholds: a database check older than this is stale; an outbox whose
 * oldest row is older than this is stuck. */
#define METRICS_DB_STALE_MS 15000
#define METRICS_OUTBOX_STUCK_MS 60000

/* A registry with b2bd's families registered (and zero series for every known command
 * type, error code and output topic, so that rate() works from the start). main.c makes
 * the daemon's one and hands it to the modules that count (db, kafka, relay, notifier,
 * http); b2bctl and the tests hand them NULL, and then nothing is counted. Thread-safe.
 * The counting functions below do nothing when bm is NULL. */
struct b2bd_metrics *metrics_b2bd_new(void);
void metrics_b2bd_free(struct b2bd_metrics *bm);

/* After one committed batch of n messages that took seconds: adds the differences of
 * the cumulative stats (after - before) to the counters, observes the batch size, its
 * duration, and n times the per-command duration (seconds / n). */
void metrics_record_batch(struct b2bd_metrics *bm, const struct apply_stats *before,
                          const struct apply_stats *after, size_t n, double seconds);

/* One row published to the output topic with this suffix ("results"). */
void metrics_published(struct b2bd_metrics *bm, const char *topic_suffix);

/* The relay's outbox check: rows waiting and the age of the oldest (0 when none). */
void metrics_outbox(struct b2bd_metrics *bm, long rows, double oldest_age_s);

/* The relay's count of suspended companies and of contacts suspended in a company (by the
 * company or on their own), over the whole database (CONTRACT.md, "Suspension"). */
void metrics_suspended(struct b2bd_metrics *bm, long companies, long contacts);

/* A database check by a connection: ok or failed. */
void metrics_db_check(struct b2bd_metrics *bm, int ok);

/* The consumer's partition count after a rebalance. */
void metrics_assigned(struct b2bd_metrics *bm, int partitions);

/* librdkafka's statistics JSON of the consumer of lane ("interactive" or "bulk"):
 * replaces the lag gauges of that lane's topics with topics.*.partitions.*.consumer_lag
 * of each partition this consumer fetches (partition -1 and unknown lags, -1, left out),
 * and the lane's lag with their sum. Returns 0, or -1 when the text is not the expected
 * JSON. */
int metrics_kafka_stats(struct b2bd_metrics *bm, const char *lane, const char *json, size_t len);

/* 1 when ready, else 0 with a short reason in why: started, not stopping, the last
 * database check succeeded less than METRICS_DB_STALE_MS ago, partitions assigned (roles
 * that consume), the outbox's oldest row younger than METRICS_OUTBOX_STUCK_MS. */
int metrics_ready(struct b2bd_metrics *bm, int64_t now_ms, char *why, size_t size);

#endif
