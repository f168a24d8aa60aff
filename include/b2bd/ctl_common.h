/* ctl_common: what b2bctl's commands share: keys and topics of commands, readers, the database. */
#ifndef B2BD_CTL_COMMON_H
#define B2BD_CTL_COMMON_H

#include <signal.h>
#include <stdint.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "b2bd/config.h"
#include "b2bd/db.h"

/* Set by b2bctl's SIGINT/SIGTERM handler: long waits stop early. */
extern volatile sig_atomic_t ctl_interrupted;

/* The contract's key of a command: shop_id/company_id, shop_id/customer_id or shop_id
 * (NULL without type or shop_id). Caller frees. */
char *ctl_command_key(const json_t *cmd);

/* The topic suffix of a command type ("commands.assign", ..., "commands.sync"). */
const char *ctl_command_topic(const char *type);

/* A reader of every partition of prefix+suffix, without a consumer group: from the
 * beginning, or (from_end) from each partition's end as it is now, so that it sees
 * exactly what is produced after this call. NULL after printing why. */
rd_kafka_t *ctl_reader_open(const struct b2bd_config *cfg, const char *suffix, int from_end);
void ctl_reader_close(rd_kafka_t *rk);

/* Produces value with key to topic (copying), waiting while the queue is full. */
rd_kafka_resp_err_t ctl_produce(rd_kafka_t *rk, const char *topic, const char *key, size_t key_len,
                                const void *value, size_t len);
/* The same with headers (owned by the message once produced; freed here otherwise). */
rd_kafka_resp_err_t ctl_produce_with(rd_kafka_t *rk, const char *topic, const char *key, size_t key_len,
                                     const void *value, size_t len, rd_kafka_headers_t *headers);

/* Connects to PostgreSQL (pg_dsn); 0, or -1 after printing why (never the DSN). */
int ctl_db_open(const struct b2bd_config *cfg, struct b2bd_db *db);

/* Prints j to stdout as one line of JSON and frees it. */
void ctl_print_json(json_t *j);

/* A column as a JSON string, or JSON null when it is NULL. */
json_t *ctl_pg_text(const PGresult *res, int row, int col);

#endif
