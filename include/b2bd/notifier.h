/* notifier: workers that send queued notifications over SMTP, with retry, and record the outcome. */
#ifndef B2BD_NOTIFIER_H
#define B2BD_NOTIFIER_H

#include "b2bd/config.h"
#include "b2bd/err.h"

struct b2bd_notifier;
struct b2bd_metrics;

/* Starts cfg->notifier_concurrency workers, each with its own PostgreSQL connection and
 * SMTP client. Workers of all instances share the queue: each claims one due
 * notification at a time by committing a lease on it (lease_until, leased_by) before it
 * talks to the mail server, and records the outcome only while the lease is its own.
 * The lease outlives the longest send, so at most one send of a notification is in
 * flight, even when the worker's database session is lost during the send. Delivery is
 * at least once: a send whose outcome could not be recorded before the lease expired
 * (a crash, or the database away that long) is made again. The outcomes, send times and
 * database reconnects are counted in metrics (NULL: nowhere). */
struct b2bd_notifier *notifier_start(const struct b2bd_config *cfg, struct b2bd_metrics *metrics,
                                     struct b2bd_err *err);

/* Lets each worker finish the email in hand, then joins and frees. */
void notifier_stop(struct b2bd_notifier *n);

/* The delay before retry number `attempt` (1 = the first retry): initial * 2^(attempt-1),
 * at most max, then jittered to between half and all of it by r in [0, 1). */
long notifier_backoff_ms(int attempt, long initial_ms, long max_ms, double r);

#endif
