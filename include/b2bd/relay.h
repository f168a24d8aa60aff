/* relay: publishes the outbox to Kafka in commit order, then deletes what was delivered. */
#ifndef B2BD_RELAY_H
#define B2BD_RELAY_H

#include <stdbool.h>

#include "b2bd/config.h"
#include "b2bd/err.h"

struct b2bd_relay;
struct b2bd_metrics;

/* Starts the relay thread, with its own PostgreSQL connection and producer. Only one
 * relay of all instances publishes at a time (an advisory lock); the others wait to
 * take over. It counts what it publishes, the outbox and its database checks in metrics
 * (NULL: nowhere). Returns NULL with err on a bad Kafka setting. */
struct b2bd_relay *relay_start(const struct b2bd_config *cfg, struct b2bd_metrics *metrics,
                               struct b2bd_err *err);

/* Asks the relay to stop, lets it publish what is waiting for up to drain_ms, then
 * joins and frees it. What is not published stays in the outbox for the next start. */
void relay_stop(struct b2bd_relay *r, int drain_ms);

/* True once the relay stopped on a fatal producer error (kafka_fatal): the daemon
 * must exit (non-zero) to get a new producer; the outbox keeps what was not published. */
bool relay_failed(const struct b2bd_relay *r);

/* Messages published so far (for logs and metrics). */
unsigned long relay_published(const struct b2bd_relay *r);

#endif
