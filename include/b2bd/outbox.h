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

/* Wakes the relays once the open transaction commits (NOTIFY). */
int outbox_wake(struct b2bd_db *db, struct b2bd_err *err);
/* The same wake-up as a statement for db_pipeline. */
struct db_stmt outbox_wake_stmt(void);

/* The channel outbox_wake notifies. */
#define OUTBOX_CHANNEL "b2bd_outbox"

#endif
