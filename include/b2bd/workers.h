/* workers: one batch's partitions applied in parallel, each worker with its own
 * PostgreSQL connection; a partition's messages stay in order on one worker. */
#ifndef B2BD_WORKERS_H
#define B2BD_WORKERS_H

#include <stddef.h>

#include "b2bd/apply.h"

/* Applies one share of a batch (main.c: apply_batch with retries). Returns 0 once
 * committed, -1 when not all of it was (a stop came first; what was committed is skipped
 * when redelivered). */
typedef int (*workers_apply_fn)(struct b2bd_applier *ap, const struct b2bd_msg *msgs, size_t n,
                                struct apply_stats *st);

struct workers;

/* n workers (at least 1) applying like proto; the first uses proto's connection, the
 * others their own (connected on first use, counted in proto's connection's metrics). */
struct workers *workers_new(size_t n, const struct b2bd_applier *proto);
void workers_free(struct workers *w);

/* Gives each (topic, partition) of msgs to one worker, in order of first appearance,
 * round robin; applies the shares in parallel with fn and waits for all. Sets ok[i] to
 * 1 for each message whose share was committed, and adds the shares' stats to st.
 * Returns how many workers had a share. */
size_t workers_apply(struct workers *w, const struct b2bd_msg *msgs, size_t n, workers_apply_fn fn,
                   struct apply_stats *st, unsigned char *ok);

#endif
