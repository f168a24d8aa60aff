/* kafka: the Kafka clients: the command consumer and the producer, from the config. */
#include "b2bd/kafka.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b2bd/decode.h"
#include "b2bd/lane.h"
#include "b2bd/log.h"
#include "b2bd/metrics.h"
#include "b2bd/util.h"

/* Two consumers, two lanes (README "How it works"), each polled by a thread of its own
 * (main.c): rk over the command topics of their own (the interactive lane), bulk over
 * the bulk topic, whose fetched messages wait in a queue per partition (lane.c), taken
 * in turn. The lanes are applied side by side, so that an interactive command never
 * waits for a bulk batch; while the interactive lane is saturated (its last batch was
 * full) the bulk lane takes a share (BULK_SHARE) once per interactive batch: the
 * capacity the other topics leave, and never none. */
struct kafka_in {
    rd_kafka_t *rk;               /* the interactive lane */
    rd_kafka_t *bulk;             /* the bulk lane */
    char *bulk_topic;
    struct lane *lane;            /* the bulk lane's fetched messages, by partition (its thread's) */
    atomic_int n_assigned[2];     /* partitions held by rk, by bulk */
    atomic_int assigned;
    atomic_int saturated;         /* the interactive lane's last batch was full */
    atomic_ulong batches;         /* interactive batches polled so far */
    unsigned long bulk_seen;      /* batches, when the bulk lane last took a share */
    struct b2bd_metrics *metrics; /* NULL: nothing counted */
};

/* The bulk lane's share of a batch while the interactive lane is saturated: 1/BULK_SHARE
 * of batch_max (at least one message), once per interactive batch. */
#define BULK_SHARE 10
/* The slices in which a lane's poll waits (and the bulk lane looks for an interactive
 * batch to have gone by). */
#define LANE_SLICE_MS 10
/* The bulk consumer's queue (queued.max.messages.kbytes), and what the lane holds at
 * most: twice that, in bytes, so that the lane always takes all the queue holds. That
 * queue is one for all partitions, in the order fetched: a partition fetched late (its
 * broker slower) may sit behind one that filled it; the lane reaches it all the same,
 * and serves both in turn. */
#define BULK_QUEUE_KB 2048
#define LANE_BYTES (2 * 1024 * (size_t)BULK_QUEUE_KB)

static int kafka_set(rd_kafka_conf_t *conf, const char *key, const char *val,
                     struct b2bd_err *err)
{
    char why[256];
    if (rd_kafka_conf_set(conf, key, val, why, sizeof why) != RD_KAFKA_CONF_OK) {
        char field[128];
        snprintf(field, sizeof field, "kafka.%s", key);
        b2bd_err_set(err, B2BD_ERR_CONFIG, field, "%s", why);
        return -1;
    }
    return 0;
}

static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    /* the kafka.* settings go to both clients; each ignores the other's, which is fine */
    if (strstr(buf, "is a consumer property and will be ignored") ||
        strstr(buf, "is a producer property and will be ignored"))
        level = 7;
    log_kv(level <= 3 ? LOG_ERROR : level <= 5 ? LOG_WARN : level <= 6 ? LOG_INFO : LOG_DEBUG,
           "kafka", "client_log", LOG_STR("facility", fac), LOG_STR("msg", buf));
}

/* Logs a client's fatal error with its real cause (rd_kafka_fatal_error). */
static void kafka_log_fatal(rd_kafka_t *rk)
{
    char fatal[512];
    rd_kafka_resp_err_t real = rd_kafka_fatal_error(rk, fatal, sizeof fatal);
    log_error("kafka", "fatal",
              LOG_STR("client", rd_kafka_type(rk) == RD_KAFKA_PRODUCER ? "producer" : "consumer"),
              LOG_STR("code", rd_kafka_err2name(real)), LOG_STR("msg", fatal),
              LOG_STR("note", "the client cannot go on: b2bd exits"));
}

static void kafka_error_cb(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
    (void)opaque;
    if (code == RD_KAFKA_RESP_ERR__FATAL) {
        kafka_log_fatal(rk);
        return;
    }
    log_warn("kafka", "client_error", LOG_STR("code", rd_kafka_err2name((rd_kafka_resp_err_t)code)),
             LOG_STR("msg", reason));
}

/* The common settings: bootstrap, logging, then the kafka.* pass-through. */
static rd_kafka_conf_t *kafka_conf(const struct b2bd_config *cfg, const char *const *defaults,
                                   struct b2bd_err *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (kafka_set(conf, "bootstrap.servers", cfg->kafka_bootstrap, err) < 0)
        goto fail;
    /* Small requests go out at once (TCP_NODELAY, as the Java clients do; librdkafka
     * 2.0 leaves Nagle's algorithm on): a lone command's result is one small request. */
    if (kafka_set(conf, "socket.nagle.disable", "true", err) < 0)
        goto fail;
    for (size_t i = 0; defaults[i]; i += 2)
        if (kafka_set(conf, defaults[i], defaults[i + 1], err) < 0)
            goto fail;
    for (size_t i = 0; i < cfg->n_kafka; i++)
        if (kafka_set(conf, cfg->kafka[i].key, cfg->kafka[i].value, err) < 0)
            goto fail;
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    rd_kafka_conf_set_error_cb(conf, kafka_error_cb);
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static rd_kafka_t *kafka_new(const struct b2bd_config *cfg, rd_kafka_type_t type,
                             const char *const *defaults,
                             void (*dr_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                             struct b2bd_err *err)
{
    rd_kafka_conf_t *conf = kafka_conf(cfg, defaults, err);
    if (!conf)
        return NULL;
    if (dr_cb)
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    char why[256];
    rd_kafka_t *rk = rd_kafka_new(type, conf, why, sizeof why);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        b2bd_err_set(err, B2BD_ERR_KAFKA, "kafka", "cannot create the Kafka %s: %s",
                     type == RD_KAFKA_PRODUCER ? "producer" : "consumer", why);
        return NULL;
    }
    return rk; /* rd_kafka_new took ownership of conf */
}

rd_kafka_t *kafka_producer_new(const struct b2bd_config *cfg,
                               void (*dr_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                               struct b2bd_err *err)
{
    /* Results and access events stay within max_message_bytes (apply_limit.c); a dead
     * letter may add its headers to a message of that size, or keep its first 64 KiB
     * under a smaller limit. librdkafka's own limit (1,000,000 bytes, below the default
     * 1 MiB) refused some of them, and the relay parked them. */
    char max[24];
    long limit = cfg->max_message_bytes + 65536 + 4096;
    snprintf(max, sizeof max, "%ld", limit < 1000000000 ? limit : 1000000000);
    /* murmur2 places keys as the Java clients do, so topics can be co-partitioned */
    const char *const defaults[] = {
        "enable.idempotence", "true", "linger.ms", "5", "message.timeout.ms", "30000",
        "partitioner", "murmur2_random", "client.id", "b2bd", "message.max.bytes", max, NULL};
    return kafka_new(cfg, RD_KAFKA_PRODUCER, defaults, dr_cb, err);
}

rd_kafka_t *kafka_client_new(const struct b2bd_config *cfg, rd_kafka_type_t type,
                             const char *const *defaults, struct b2bd_err *err)
{
    return kafka_new(cfg, type, defaults, NULL, err);
}

/* Publishes the partition count of both consumers (metrics and readiness), given the
 * change the rebalance callback makes to rk's (delta: partitions added, or taken away
 * when negative; eager: the assignment replaced, set to delta, or emptied). Counted from
 * the callback's own lists: rd_kafka_assignment() called from the callback that
 * rd_kafka_consumer_close() runs waits forever (seen: a stop that never ended). */
static void kafka_count_assigned(struct kafka_in *k, rd_kafka_t *rk, int delta, int replace)
{
    atomic_int *n = &k->n_assigned[rk == k->bulk];
    int now = replace ? (delta > 0 ? delta : 0) : atomic_load(n) + delta;
    atomic_store(n, now < 0 ? 0 : now);
    int total = atomic_load(&k->n_assigned[0]) + atomic_load(&k->n_assigned[1]);
    atomic_store(&k->assigned, total > 0);
    metrics_assigned(k->metrics, total);
}

/* Bulk messages fetched from partitions taken away are not applied here: the partition's
 * next owner starts at its committed position (and consumer_offsets skips what was
 * applied). Called in a rebalance, on the thread that polls: no batch is in hand. */
static void kafka_lane_revoked(struct kafka_in *k, rd_kafka_t *rk,
                               const rd_kafka_topic_partition_list_t *parts)
{
    if (rk != k->bulk || !k->lane)
        return;
    size_t dropped = 0;
    for (int i = 0; i < parts->cnt; i++)
        dropped += lane_drop(k->lane, parts->elems[i].partition);
    if (dropped)
        log_info("kafka", "bulk_dropped", LOG_UINT("messages", dropped),
                 LOG_STR("note", "fetched from partitions revoked, not applied here"));
}

static void kafka_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t code,
                               rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct kafka_in *k = opaque;
    /* NULL once the consumer has no group protocol (shutting down after Kafka went) */
    const char *protocol = rd_kafka_rebalance_protocol(rk);
    int cooperative = protocol && strcmp(protocol, "COOPERATIVE") == 0;
    if (code == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        log_info("kafka", "assigned", LOG_INT("partitions", parts->cnt),
                 LOG_STR("lane", rk == k->bulk ? "bulk" : "interactive"));
        if (cooperative) {
            rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
            if (e)
                rd_kafka_error_destroy(e);
        } else {
            rd_kafka_assign(rk, parts);
        }
        kafka_count_assigned(k, rk, parts->cnt, !cooperative);
    } else {
        log_info("kafka", "revoked", LOG_INT("partitions", parts->cnt));
        kafka_lane_revoked(k, rk, parts);
        if (cooperative) {
            rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
            if (e)
                rd_kafka_error_destroy(e);
        } else {
            rd_kafka_assign(rk, NULL);
        }
        kafka_count_assigned(k, rk, -parts->cnt, !cooperative);
    }
}

/* librdkafka's statistics (statistics.interval.ms): consumer lag per partition. */
static int kafka_stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    struct kafka_in *k = opaque;
    metrics_kafka_stats(k->metrics, rk == k->bulk ? "bulk" : "interactive", json, len);
    return 0; /* librdkafka frees json */
}

/* One consumer of the group over topics (suffixes, NULL-ended), its events served by
 * rd_kafka_consumer_poll; its callbacks get k. NULL with err on a failure. */
static rd_kafka_t *kafka_consumer_open(const struct b2bd_config *cfg, struct kafka_in *k,
                                       const char *const *suffixes, int bulk,
                                       struct b2bd_err *err)
{
    static const char *const defaults[] = {
        "enable.auto.commit", "false", "enable.auto.offset.store", "false",
        "auto.offset.reset", "earliest", "client.id", "b2bd",
        "enable.partition.eof", "false", "statistics.interval.ms", "5000",
        /* the prefetch queue: librdkafka's default (64 MiB) was most of b2bd's memory;
         * a few batches ahead are enough */
        "queued.max.messages.kbytes", "8192", NULL};
    /* the bulk lane fetches its partitions in small slices (librdkafka's default is
     * 1 MiB a partition a fetch), so that its queue holds them all, interleaved, for
     * lane_take to serve in turn */
    static const char *const bulk_defaults[] = {
        "enable.auto.commit", "false", "enable.auto.offset.store", "false",
        "auto.offset.reset", "earliest", "client.id", "b2bd-bulk",
        "enable.partition.eof", "false", "statistics.interval.ms", "5000",
        "queued.max.messages.kbytes", "2048", "max.partition.fetch.bytes", "65536", NULL};
    rd_kafka_conf_t *conf = kafka_conf(cfg, bulk ? bulk_defaults : defaults, err);
    /* the bulk lane is a consumer group of its own (group_id + ".bulk"): a rebalance of
     * one lane (a member joining, leaving, closing at a stop) never stops or waits for the
     * other. The consumed positions that count are b2bd's, in consumer_offsets, keyed by
     * group_id and topic: the same for both lanes. */
    char group[512];
    snprintf(group, sizeof group, "%s%s", cfg->group_id, bulk ? ".bulk" : "");
    if (!conf || kafka_set(conf, "group.id", group, err) < 0)
        goto fail;
    for (size_t i = 0; bulk && i < cfg->n_kafka; i++) {
        /* a static member's id names one member: the bulk lane's is its own */
        if (strcmp(cfg->kafka[i].key, "group.instance.id") == 0) {
            char id[512];
            snprintf(id, sizeof id, "%s-bulk", cfg->kafka[i].value);
            if (kafka_set(conf, "group.instance.id", id, err) < 0)
                goto fail;
        }
    }
    rd_kafka_conf_set_rebalance_cb(conf, kafka_rebalance_cb);
    rd_kafka_conf_set_stats_cb(conf, kafka_stats_cb);
    rd_kafka_conf_set_opaque(conf, k);
    char why[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
    if (!rk) {
        b2bd_err_set(err, B2BD_ERR_KAFKA, "kafka", "cannot create the Kafka consumer: %s", why);
        goto fail;
    }
    conf = NULL; /* owned by rk now */
    rd_kafka_poll_set_consumer(rk);

    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(TOPIC_COUNT);
    for (size_t t = 0; suffixes[t]; t++) {
        char *name = config_topic(cfg, suffixes[t]);
        rd_kafka_topic_partition_list_add(topics, name, RD_KAFKA_PARTITION_UA);
        free(name);
    }
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        b2bd_err_set(err, B2BD_ERR_KAFKA, "kafka", "cannot subscribe: %s", rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return NULL;
    }
    return rk;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    return NULL;
}

static void kafka_message_destroy(void *m)
{
    rd_kafka_message_destroy(m);
}

static size_t kafka_message_size(const void *m)
{
    const rd_kafka_message_t *msg = m;
    return msg->len + msg->key_len + sizeof *msg;
}

struct kafka_in *kafka_in_new(const struct b2bd_config *cfg, struct b2bd_metrics *metrics,
                              struct b2bd_err *err)
{
    struct kafka_in *k = calloc(1, sizeof *k);
    if (!k)
        abort();
    k->metrics = metrics;
    k->lane = lane_new(kafka_message_destroy, kafka_message_size);
    k->bulk_topic = config_topic(cfg, decode_topic_suffix(TOPIC_BULK));
    const char *interactive[TOPIC_COUNT + 1] = {0}, *bulk[] = {decode_topic_suffix(TOPIC_BULK), NULL};
    for (int t = 0, i = 0; t < TOPIC_COUNT; t++)
        if (t != TOPIC_BULK)
            interactive[i++] = decode_topic_suffix((enum b2bd_topic)t);
    if (!(k->rk = kafka_consumer_open(cfg, k, interactive, 0, err)))
        goto fail;
    if (!(k->bulk = kafka_consumer_open(cfg, k, bulk, 1, err))) {
        rd_kafka_destroy(k->rk);
        goto fail;
    }
    return k;
fail:
    lane_free(k->lane);
    free(k->bulk_topic);
    free(k);
    return NULL;
}

/* A message polled from rk: 1 a message to apply; 0 an error event, logged and destroyed;
 * -1 the consumer's fatal error (logged, destroyed). */
static int kafka_polled(rd_kafka_t *rk, rd_kafka_message_t *m)
{
    if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
        /* the high-level consumer reports its fatal errors here, not to error_cb */
        kafka_log_fatal(rk);
        rd_kafka_message_destroy(m);
        return -1;
    }
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            log_warn("kafka", "consume_error", LOG_STR("code", rd_kafka_err2name(m->err)),
                     LOG_STR("topic", m->rkt ? rd_kafka_topic_name(m->rkt) : "-"));
        rd_kafka_message_destroy(m);
        return 0;
    }
    return 1;
}

/* Moves what the bulk consumer has fetched into the lane, until the lane holds
 * LANE_BYTES; polls at least once whatever the lane holds (the consumer's events, and
 * max.poll.interval.ms). Returns -1 on the consumer's fatal error. */
static int kafka_lane_fill(struct kafka_in *k)
{
    int first = 1;
    while (first || lane_bytes(k->lane) < LANE_BYTES) {
        first = 0;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k->bulk, 0);
        if (!m)
            return 0;
        int r = kafka_polled(k->bulk, m);
        if (r < 0)
            return -1;
        if (r > 0)
            lane_push(k->lane, m->partition, m);
    }
    return 0;
}

/* The interactive lane: waits up to wait_ms for a first message, lingers linger_ms for
 * more, then takes what is already fetched, up to max. */
static size_t kafka_poll_interactive(struct kafka_in *k, rd_kafka_message_t **out, size_t max,
                                     int wait_ms, int linger_ms)
{
    size_t n = 0;
    int64_t end = util_now_ms() + wait_ms, deadline = 0;
    while (n < max) {
        int64_t left = (n > 0 ? deadline : end) - util_now_ms();
        int timeout = left <= 0 ? 0 : (int)left;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, timeout);
        if (!m) {
            if (timeout == 0 || util_now_ms() >= (n > 0 ? deadline : end))
                break;
            continue;
        }
        int r = kafka_polled(k->rk, m);
        if (r < 0)
            break;
        if (r > 0) {
            if (n == 0) /* lingering; once it is over, only what is already fetched joins */
                deadline = util_now_ms() + linger_ms;
            out[n++] = m;
        }
    }
    atomic_store(&k->saturated, n == max);
    atomic_fetch_add(&k->batches, 1);
    return n;
}

/* The bulk lane: waits up to wait_ms for the lane to hold something, then takes up to
 * max in turn from its partitions; while the interactive lane is saturated, a share,
 * and not before an interactive batch went by since the last. */
static size_t kafka_poll_bulk(struct kafka_in *k, rd_kafka_message_t **out, size_t max,
                              int wait_ms)
{
    int64_t end = util_now_ms() + wait_ms;
    for (;;) {
        if (kafka_lane_fill(k) < 0)
            return 0;
        int saturated = atomic_load(&k->saturated);
        unsigned long batches = atomic_load(&k->batches);
        if (lane_buffered(k->lane) && (!saturated || batches != k->bulk_seen)) {
            k->bulk_seen = batches;
            size_t share = max / BULK_SHARE ? max / BULK_SHARE : 1;
            return lane_take(k->lane, (void **)out, saturated ? share : max);
        }
        int64_t left = end - util_now_ms();
        if (left <= 0)
            return 0;
        if (lane_buffered(k->lane))
            util_sleep_ms(left < LANE_SLICE_MS ? (int)left : LANE_SLICE_MS);
        else { /* waits for the bulk consumer's next message, which joins the lane */
            rd_kafka_message_t *m = rd_kafka_consumer_poll(k->bulk, left < LANE_SLICE_MS ? (int)left
                                                                                        : LANE_SLICE_MS);
            if (m) {
                int r = kafka_polled(k->bulk, m);
                if (r < 0)
                    return 0;
                if (r > 0)
                    lane_push(k->lane, m->partition, m);
            }
        }
    }
}

size_t kafka_in_poll(struct kafka_in *k, enum kafka_lane lane, rd_kafka_message_t **out,
                     size_t max, int wait_ms, int linger_ms)
{
    return lane == KAFKA_LANE_BULK ? kafka_poll_bulk(k, out, max, wait_ms)
                                   : kafka_poll_interactive(k, out, max, wait_ms, linger_ms);
}

/* Commits, through rk, for each partition of its topics in msgs, the offset after its
 * last message there. */
static void kafka_commit_lane(rd_kafka_t *rk, rd_kafka_message_t *const *msgs, size_t n,
                              const char *bulk_topic, int bulk, int sync)
{
    rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        const char *topic = rd_kafka_topic_name(msgs[i]->rkt);
        if ((strcmp(topic, bulk_topic) == 0) != bulk)
            continue;
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find(offs, topic, msgs[i]->partition);
        if (!p)
            p = rd_kafka_topic_partition_list_add(offs, topic, msgs[i]->partition);
        if (msgs[i]->offset + 1 > p->offset)
            p->offset = msgs[i]->offset + 1;
    }
    if (offs->cnt > 0) {
        rd_kafka_resp_err_t e = rd_kafka_commit(rk, offs, !sync);
        if (e)
            log_warn("kafka", "commit_failed", LOG_STR("code", rd_kafka_err2name(e)),
                     LOG_STR("lane", bulk ? "bulk" : "interactive"));
    }
    rd_kafka_topic_partition_list_destroy(offs);
}

int kafka_in_low_watermark(struct kafka_in *k, const char *topic, int32_t partition,
                           int64_t *low, struct b2bd_err *err)
{
    int64_t lo = -1, hi = -1;
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(k->rk, topic, partition, &lo, &hi, 5000);
    if (e || lo < 0) {
        b2bd_err_set(err, B2BD_ERR_DB, "kafka", "cannot read the oldest offset of %s [%d]: %s",
                     topic, (int)partition, rd_kafka_err2name(e));
        return -1;
    }
    *low = lo;
    return 0;
}

void kafka_in_commit(struct kafka_in *k, rd_kafka_message_t *const *msgs, size_t n, int sync)
{
    if (n == 0)
        return;
    kafka_commit_lane(k->rk, msgs, n, k->bulk_topic, 0, sync);
    kafka_commit_lane(k->bulk, msgs, n, k->bulk_topic, 1, sync);
}

rd_kafka_resp_err_t kafka_fatal(rd_kafka_t *rk)
{
    return rd_kafka_fatal_error(rk, NULL, 0);
}

rd_kafka_resp_err_t kafka_in_fatal(const struct kafka_in *k)
{
    rd_kafka_resp_err_t e = kafka_fatal(k->rk);
    return e ? e : kafka_fatal(k->bulk);
}

int kafka_in_assigned(const struct kafka_in *k)
{
    return atomic_load(&k->assigned);
}

/* Closes one consumer (see kafka_in_close). */
static void kafka_consumer_close(rd_kafka_t *rk)
{
    if (kafka_fatal(rk)) {
        /* librdkafka 2.0.2 can abort in rd_kafka_destroy() of a consumer fenced out of
         * its group (rd_kafka_broker_destroy_final: "thrd_is_current" assertion, seen in
         * test_faults). b2bd exits right after a fatal error: the dead client is left to
         * the exit, kept reachable so that it is not reported as a leak. */
        static rd_kafka_t *abandoned[2];
        abandoned[abandoned[0] != NULL] = rk;
        (void)abandoned;
        return;
    }
    rd_kafka_consumer_close(rk); /* on a dead consumer: returns at once */
    rd_kafka_destroy(rk);
}

void kafka_in_close(struct kafka_in *k)
{
    if (!k)
        return;
    lane_drop_all(k->lane); /* fetched, not applied: the next owner starts before them */
    kafka_consumer_close(k->bulk);
    kafka_consumer_close(k->rk);
    lane_free(k->lane);
    free(k->bulk_topic);
    free(k);
}
