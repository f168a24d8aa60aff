/* outbox: the messages to publish, written in the transaction that caused them. */
#ifndef B2BD_OUTBOX_H
#define B2BD_OUTBOX_H

#include <stddef.h>

#include "b2bd/db.h"
#include "b2bd/outbox_topics.h" /* OUTBOX_RESULTS ...: the output topics */

/* Appends one message to the outbox in the open transaction. key and value are bytes
 * (key may be NULL: no key); headers is a JSON array text of [name, value] pairs or
 * NULL. Returns 0 or -1 with err. */
int outbox_append(struct b2bd_db *db, const char *topic, const void *key, size_t key_len,
                  const void *value, size_t value_len, const char *headers,
                  struct b2bd_err *err);

/* The same append as a statement for db_pipeline: fills row (which must live until the
 * pipeline ran) and returns the statement. */
struct outbox_row {
    const char *values[4];
    int lengths[4];
    int formats[4];
};
struct db_stmt outbox_row(struct outbox_row *row, const char *topic, const void *key,
                          size_t key_len, const void *value, size_t value_len,
                          const char *headers);

/* Wakes the relays (NOTIFY): called after the commit of what they are to publish, not
 * inside it; the wake is a transaction of its own whose commit does not wait for a WAL
 * flush. PostgreSQL serialises the commits of transactions that notify
 * (one lock, held through the commit's flush): a NOTIFY inside a large transaction makes
 * every other connection's notifying commit wait for that transaction's flush. The rows
 * are durable before the wake is sent; a wake lost to a crash costs a relay its poll
 * interval, nothing else. Returns 0 or -1 with err. */
int outbox_wake(struct b2bd_db *db, struct b2bd_err *err);

/* The channel outbox_wake notifies. */
#define OUTBOX_CHANNEL "b2bd_outbox"

#endif
