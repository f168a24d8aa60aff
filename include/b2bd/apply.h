/* apply: applies batches of consumed messages to PostgreSQL, exactly once each. */
#ifndef B2BD_APPLY_H
#define B2BD_APPLY_H

#include <stddef.h>
#include <stdint.h>

#include "b2bd/apply_stats.h"
#include "b2bd/config.h"
#include "b2bd/db.h"
#include "b2bd/decode.h"
#include "b2bd/trace.h"

/* One consumed message, as the consumer hands it over (all borrowed). */
struct b2bd_msg {
    enum b2bd_topic topic;
    const char *topic_name;
    int32_t partition;
    int64_t offset;
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    struct trace_in trace; /* its traceparent and tracestate headers */
};

struct email_template;

struct b2bd_applier {
    struct b2bd_db *db;
    const struct b2bd_config *cfg;
    const struct email_template *email_default; /* the shipped B2B access template */
    /* The oldest offset the broker still holds on a partition (its low watermark): 0,
     * or -1 with err (B2BD_ERR_DB: asked again with the batch). Asked when a
     * partition's offsets jump, to tell commands the broker deleted (a COMMANDS_LOST
     * dead letter) from offsets the topic skips (transaction markers). NULL where no
     * Kafka is read (apply_batch called directly): jumps are not looked into. */
    int (*low_watermark)(void *ctx, const char *topic, int32_t partition, int64_t *low,
                         struct b2bd_err *err);
    void *low_watermark_ctx;
};

/* Applies msgs in one transaction: each command on its own is all or nothing (a
 * savepoint each) and gets its result; dead letters and results go to the outbox; the
 * consumed positions advance in the same transaction, so a message redelivered after a
 * crash is recognised and skipped. A command the database refuses (any failure but the
 * surroundings', include/b2bd/fault.h) is rejected within the batch, which goes on.
 * Returns 0 once committed, or -1 with err when nothing was committed: B2BD_ERR_DB, the
 * surroundings failed (reconnect and apply the same batch again); else the database
 * refused the batch outside any one command's savepoint (at COMMIT, say), and err is the
 * rejection the message at fault gets: apply the messages one at a time, and give one
 * that is refused on its own to apply_reject_alone. */
int apply_batch(struct b2bd_applier *a, const struct b2bd_msg *msgs, size_t n,
                struct apply_stats *st, struct b2bd_err *err);

/* Settles a message that apply_batch refused on its own, in a transaction that holds
 * only its `rejected` result (why; a dead letter for a message that is no command) and
 * its consumed position; when the database refuses that too, the position only (the
 * message is skipped, with an error logged). Returns 0 once committed, or -1 with err
 * (B2BD_ERR_DB: the surroundings failed; anything else: the database refuses even to
 * move the position, which no message causes): try again later. */
int apply_reject_alone(struct b2bd_applier *a, const struct b2bd_msg *msg,
                       const struct b2bd_err *why, struct apply_stats *st, struct b2bd_err *err);

/* Adds from's counts to into's. */
void apply_stats_add(struct apply_stats *into, const struct apply_stats *from);

#endif
