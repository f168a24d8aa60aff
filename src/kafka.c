/* kafka: the Kafka clients: the command consumer and the producer, from the config. */
#include "b2bd/kafka.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b2bd/command_types.h"
#include "b2bd/log.h"
#include "b2bd/metrics.h"
#include "b2bd/util.h"

struct kafka_in {
    rd_kafka_t *rk;
    atomic_int assigned;
    struct b2bd_metrics *metrics; /* NULL: nothing counted */
};

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

/* Publishes the consumer's partition count (metrics and readiness). */
static void kafka_count_assigned(struct kafka_in *k, rd_kafka_t *rk)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(rk, &parts) == RD_KAFKA_RESP_ERR_NO_ERROR && parts) {
        metrics_assigned(k->metrics, parts->cnt);
        rd_kafka_topic_partition_list_destroy(parts);
    }
}

static void kafka_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t code,
                               rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct kafka_in *k = opaque;
    /* NULL once the consumer has no group protocol (shutting down after Kafka went) */
    const char *protocol = rd_kafka_rebalance_protocol(rk);
    int cooperative = protocol && strcmp(protocol, "COOPERATIVE") == 0;
    if (code == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        log_info("kafka", "assigned", LOG_INT("partitions", parts->cnt));
        if (cooperative) {
            rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
            if (e)
                rd_kafka_error_destroy(e);
        } else {
            rd_kafka_assign(rk, parts);
        }
        atomic_store(&k->assigned, 1);
        kafka_count_assigned(k, rk);
    } else {
        log_info("kafka", "revoked", LOG_INT("partitions", parts->cnt));
        if (cooperative) {
            rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
            if (e)
                rd_kafka_error_destroy(e);
        } else {
            rd_kafka_assign(rk, NULL);
            atomic_store(&k->assigned, 0);
        }
        kafka_count_assigned(k, rk);
    }
}

/* librdkafka's statistics (statistics.interval.ms): consumer lag per partition. */
static int kafka_stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    (void)rk;
    struct kafka_in *k = opaque;
    metrics_kafka_stats(k->metrics, json, len);
    return 0; /* librdkafka frees json */
}

struct kafka_in *kafka_in_new(const struct b2bd_config *cfg, struct b2bd_metrics *metrics,
                              struct b2bd_err *err)
{
    static const char *const defaults[] = {
        "enable.auto.commit", "false", "enable.auto.offset.store", "false",
        "auto.offset.reset", "earliest", "client.id", "b2bd",
        "enable.partition.eof", "false", "statistics.interval.ms", "5000",
        /* the prefetch queue: librdkafka's default (64 MiB) was most of b2bd's memory;
         * a few batches ahead are enough */
        "queued.max.messages.kbytes", "8192", NULL};
    struct kafka_in *k = calloc(1, sizeof *k);
    if (!k)
        abort();
    k->metrics = metrics;
    rd_kafka_conf_t *conf = kafka_conf(cfg, defaults, err);
    if (!conf || kafka_set(conf, "group.id", cfg->group_id, err) < 0) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        free(k);
        return NULL;
    }
    rd_kafka_conf_set_rebalance_cb(conf, kafka_rebalance_cb);
    rd_kafka_conf_set_stats_cb(conf, kafka_stats_cb);
    rd_kafka_conf_set_opaque(conf, k);
    char why[256];
    k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
    if (!k->rk) {
        rd_kafka_conf_destroy(conf);
        free(k);
        b2bd_err_set(err, B2BD_ERR_KAFKA, "kafka", "cannot create the Kafka consumer: %s", why);
        return NULL;
    }
    conf = NULL; /* owned by k->rk now */
    rd_kafka_poll_set_consumer(k->rk);

    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(TOPIC_COUNT);
    for (int t = 0; t < TOPIC_COUNT; t++) {
        char *name = config_topic(cfg, decode_topic_suffix((enum b2bd_topic)t));
        rd_kafka_topic_partition_list_add(topics, name, RD_KAFKA_PARTITION_UA);
        free(name);
    }
    rd_kafka_resp_err_t e = rd_kafka_subscribe(k->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        b2bd_err_set(err, B2BD_ERR_KAFKA, "kafka", "cannot subscribe: %s", rd_kafka_err2str(e));
        rd_kafka_destroy(k->rk);
        free(k);
        return NULL;
    }
    return k;
}

size_t kafka_in_poll(struct kafka_in *k, rd_kafka_message_t **out, size_t max, int wait_ms,
                     int linger_ms)
{
    size_t n = 0;
    int64_t deadline = 0;
    while (n < max) {
        int timeout = wait_ms;
        if (n > 0) {
            /* lingering; once it is over, only what is already fetched joins */
            int64_t left = deadline - util_now_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, timeout);
        if (!m) {
            if (n == 0 || timeout == 0)
                break;
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
            /* the high-level consumer reports its fatal errors here, not to error_cb */
            kafka_log_fatal(k->rk);
            rd_kafka_message_destroy(m);
            break;
        }
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                log_warn("kafka", "consume_error", LOG_STR("code", rd_kafka_err2name(m->err)),
                         LOG_STR("topic", m->rkt ? rd_kafka_topic_name(m->rkt) : "-"));
            rd_kafka_message_destroy(m);
            if (n == 0)
                break;
            continue;
        }
        if (n == 0)
            deadline = util_now_ms() + linger_ms;
        out[n++] = m;
    }
    return n;
}

void kafka_in_commit(struct kafka_in *k, rd_kafka_message_t *const *msgs, size_t n, int sync)
{
    if (n == 0)
        return;
    rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        const char *topic = rd_kafka_topic_name(msgs[i]->rkt);
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find(offs, topic, msgs[i]->partition);
        if (!p)
            p = rd_kafka_topic_partition_list_add(offs, topic, msgs[i]->partition);
        if (msgs[i]->offset + 1 > p->offset)
            p->offset = msgs[i]->offset + 1;
    }
    rd_kafka_resp_err_t e = rd_kafka_commit(k->rk, offs, !sync);
    if (e)
        log_warn("kafka", "commit_failed", LOG_STR("code", rd_kafka_err2name(e)));
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

rd_kafka_resp_err_t kafka_fatal(rd_kafka_t *rk)
{
    return rd_kafka_fatal_error(rk, NULL, 0);
}

rd_kafka_resp_err_t kafka_in_fatal(const struct kafka_in *k)
{
    return kafka_fatal(k->rk);
}

int kafka_in_assigned(const struct kafka_in *k)
{
    return atomic_load(&k->assigned);
}

void kafka_in_close(struct kafka_in *k)
{
    if (!k)
        return;
    if (kafka_in_fatal(k)) {
        /* librdkafka 2.0.2 can abort in rd_kafka_destroy() of a consumer fenced out of
         * its group (rd_kafka_broker_destroy_final: "thrd_is_current" assertion, seen in
         * test_faults). b2bd exits right after a fatal error: the dead client is left to
         * the exit, kept reachable so that it is not reported as a leak. */
        static rd_kafka_t *abandoned;
        abandoned = k->rk;
        (void)abandoned;
        free(k);
        return;
    }
    rd_kafka_consumer_close(k->rk); /* on a dead consumer: returns at once */
    rd_kafka_destroy(k->rk);
    free(k);
}
