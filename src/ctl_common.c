/* ctl_common: what b2bctl's commands share: keys and topics of commands, readers, the database. */
#include "b2bd/ctl_common.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b2bd/kafka.h"
#include "b2bd/util.h"

volatile sig_atomic_t ctl_interrupted;

char *ctl_command_key(const json_t *cmd)
{
    const char *type = json_string_value(json_object_get(cmd, "type"));
    const char *shop = json_string_value(json_object_get(cmd, "shop_id"));
    const json_t *p = json_object_get(cmd, "payload");
    if (!type || !shop)
        return NULL;
    const char *second = NULL;
    char *lowered = NULL;
    if (!strcmp(type, "shop.upsert") || !strcmp(type, "template.update") || !strcmp(type, "shop.redact"))
        second = NULL;
    else if (!strcmp(type, "customer.upsert") || !strcmp(type, "order.upsert")
             || !strcmp(type, "customer.merge"))
        second = json_string_value(json_object_get(p, "customer_id"));
    else if (!strcmp(type, "customer.data_request") || !strcmp(type, "customer.redact")) {
        /* by id, or shop_id/ and the email lower-cased */
        second = json_string_value(json_object_get(p, "customer_id"));
        const char *email = json_string_value(json_object_get(p, "email"));
        if (!second && email && (lowered = strdup(email)) != NULL) {
            for (char *q = lowered; *q; q++)
                *q = (char)tolower((unsigned char)*q);
            second = lowered;
        }
    } else
        second = json_string_value(json_object_get(p, "company_id"));
    struct sbuf b = {0};
    sbuf_adds(&b, shop);
    if (second) {
        sbuf_adds(&b, "/");
        sbuf_adds(&b, second);
    }
    free(lowered);
    return b.s;
}

const char *ctl_command_topic(const char *type)
{
    static const char *const direct[] = {"commands.assign", "commands.revoke", "commands.migrate",
                                         "commands.notify"};
    for (size_t i = 0; i < 4; i++)
        if (type && !strcmp(type, direct[i] + strlen("commands.")))
            return direct[i];
    return "commands.sync";
}

rd_kafka_t *ctl_reader_open(const struct b2bd_config *cfg, const char *suffix, int from_end)
{
    char group[64];
    char id[37];
    util_uuid_v4(id);
    snprintf(group, sizeof group, "b2bctl-%s", id);
    const char *const defaults[] = {"group.id", group, "enable.auto.commit", "false",
                                    "auto.offset.reset", "earliest", NULL};
    struct b2bd_err err;
    rd_kafka_t *rk = kafka_client_new(cfg, RD_KAFKA_CONSUMER, defaults, &err);
    if (!rk) {
        fprintf(stderr, "b2bctl: %s\n", err.msg);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    char *topic = config_topic(cfg, suffix);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    rd_kafka_topic_destroy(rkt);
    if (e || md->topic_cnt != 1 || md->topics[0].err) {
        fprintf(stderr, "b2bctl: no topic %s: %s\n", topic,
                rd_kafka_err2str(e ? e
                                   : md->topic_cnt ? md->topics[0].err
                                                   : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
        if (md)
            rd_kafka_metadata_destroy(md);
        free(topic);
        rd_kafka_destroy(rk);
        return NULL;
    }
    rd_kafka_topic_partition_list_t *parts =
        rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++) {
        int32_t part = md->topics[0].partitions[i].id;
        int64_t off = RD_KAFKA_OFFSET_BEGINNING;
        if (from_end) {
            int64_t lo = 0, hi = 0;
            rd_kafka_resp_err_t we = rd_kafka_query_watermark_offsets(rk, topic, part, &lo, &hi, 10000);
            if (we) {
                fprintf(stderr, "b2bctl: %s [%d]: %s\n", topic, (int)part, rd_kafka_err2str(we));
                rd_kafka_topic_partition_list_destroy(parts);
                rd_kafka_metadata_destroy(md);
                free(topic);
                rd_kafka_destroy(rk);
                return NULL;
            }
            off = hi;
        }
        rd_kafka_topic_partition_list_add(parts, topic, part)->offset = off;
    }
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_metadata_destroy(md);
    free(topic);
    return rk;
}

void ctl_reader_close(rd_kafka_t *rk)
{
    if (!rk)
        return;
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

rd_kafka_resp_err_t ctl_produce(rd_kafka_t *rk, const char *topic, const char *key, size_t key_len,
                                const void *value, size_t len)
{
    return ctl_produce_with(rk, topic, key, key_len, value, len, NULL);
}

rd_kafka_resp_err_t ctl_produce_with(rd_kafka_t *rk, const char *topic, const char *key, size_t key_len,
                                     const void *value, size_t len, rd_kafka_headers_t *headers)
{
    rd_kafka_resp_err_t e;
    for (;;) {
        if (headers)
            e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key ? key_len : 0),
                                  RD_KAFKA_V_VALUE((void *)value, len),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
        else
            e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key ? key_len : 0),
                                  RD_KAFKA_V_VALUE((void *)value, len),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(rk, 100);
    }
    rd_kafka_poll(rk, 0);
    if (e && headers)
        rd_kafka_headers_destroy(headers); /* producev owns them only on success */
    return e;
}

int ctl_db_open(const struct b2bd_config *cfg, struct b2bd_db *db)
{
    struct b2bd_err err;
    db_init(db, cfg->pg_dsn, cfg->pg_password);
    if (db_connect(db, &err) < 0) {
        fprintf(stderr, "b2bctl: %s\n", err.msg);
        db_free(db);
        return -1;
    }
    return 0;
}

void ctl_print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s) {
        puts(s);
        free(s);
    }
    json_decref(j);
}

json_t *ctl_pg_text(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return json_null();
    return json_string(PQgetvalue(res, row, col));
}
