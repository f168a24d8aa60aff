/* kafka: the Kafka clients: the command consumer and the producer, from the config. */
#ifndef B2BD_KAFKA_H
#define B2BD_KAFKA_H

#include <stddef.h>
#include <librdkafka/rdkafka.h>

#include "b2bd/config.h"
#include "b2bd/err.h"

/* A new producer: idempotent, with the kafka.* settings passed through. dr_cb may be
 * NULL. Returns NULL with err on a bad setting. */
rd_kafka_t *kafka_producer_new(const struct b2bd_config *cfg,
                               void (*dr_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                               struct b2bd_err *err);

/* A plain client of the given type with the common settings (bootstrap, the kafka.*
 * pass-through, logs through log.c) over defaults (name, value, ..., NULL): b2bctl's
 * readers and admin calls. Returns NULL with err on a bad setting. */
rd_kafka_t *kafka_client_new(const struct b2bd_config *cfg, rd_kafka_type_t type,
                             const char *const *defaults, struct b2bd_err *err);

/* The client's fatal error, RD_KAFKA_RESP_ERR_NO_ERROR while there is none. After one
 * (for example an idempotent producer's lost sequence, or a consumer fenced out of its
 * group) the client does nothing more: only a new client, a restart, goes on. The cause
 * is logged once as it is raised (level=error mod=kafka event=fatal). */
rd_kafka_resp_err_t kafka_fatal(rd_kafka_t *rk);

struct kafka_in;
struct b2bd_metrics;

/* A consumer in the configured group, subscribed to the five command topics, with
 * offsets committed only by kafka_in_commit(). Its partition count and lag go to metrics
 * (NULL: nowhere). */
struct kafka_in *kafka_in_new(const struct b2bd_config *cfg, struct b2bd_metrics *metrics,
                              struct b2bd_err *err);

/* The two lanes (README "Two lanes"): the command topics of their own, and the bulk
 * topic. Each is polled by one thread, its own. */
enum kafka_lane { KAFKA_LANE_INTERACTIVE, KAFKA_LANE_BULK };

/* A batch of one lane. The interactive lane waits up to wait_ms for a first message,
 * then takes more until max messages or linger_ms have passed, and then those already
 * fetched (up to max): with linger_ms 0, a lone message goes at once and a burst still
 * makes one batch. The bulk lane waits up to wait_ms, and takes up to max from its
 * partitions in turn; while the interactive lane's batches are full, a tenth of max,
 * once per interactive batch. Returns how many were put in out (the caller destroys them
 * with rd_kafka_message_destroy); error events are logged and not returned, and a fatal
 * error ends the poll at once (check kafka_in_fatal). */
size_t kafka_in_poll(struct kafka_in *k, enum kafka_lane lane, rd_kafka_message_t **out,
                     size_t max, int wait_ms, int linger_ms);

/* Commits, for each partition in msgs, the offset after its last message (async
 * unless sync). */
void kafka_in_commit(struct kafka_in *k, rd_kafka_message_t *const *msgs, size_t n, int sync);

/* The oldest offset the broker holds on a command partition (its low watermark, asked
 * of the broker; up to 5 s). Returns 0, or -1 with err (B2BD_ERR_DB). */
int kafka_in_low_watermark(struct kafka_in *k, const char *topic, int32_t partition,
                           int64_t *low, struct b2bd_err *err);

/* The consumer's fatal error (see kafka_fatal); kafka_in_poll returns early on one. */
rd_kafka_resp_err_t kafka_in_fatal(const struct kafka_in *k);

/* True once the consumer holds at least one partition. */
int kafka_in_assigned(const struct kafka_in *k);

/* Leaves the group (committing nothing more) and frees. */
void kafka_in_close(struct kafka_in *k);

#endif
