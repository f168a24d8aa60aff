/* apply_bulk_revoke: runs of revokes in a batch, applied together by one set-based
 * function (b2bd_revoke_bulk, sql/functions/revoke.sql), the way apply_bulk
 * applies runs of plain assigns. A run holds revokes only, without
 * remove_migrated_orders, and no two about one customer of a shop. */
#ifndef B2BD_APPLY_BULK_REVOKE_H
#define B2BD_APPLY_BULK_REVOKE_H

#include <stdbool.h>
#include <stddef.h>

#include "apply_bulk.h"

/* The statement that applies a run of revokes; $1 is bulk_revoke_rows(run). */
extern const char BULK_REVOKE_SQL[];

/* True for a revoke the bulk function applies: any scope, no remove_migrated_orders
 * (whose reverted orders stay on the one-by-one path). */
bool bulk_revoke_eligible(const struct b2bd_command *cmd);

/* The run's keys of a revoke (2), as allocated strings: "c" and its command id, "k" and
 * its shop and customer id, as apply_bulk keys an assign's customer. */
size_t bulk_revoke_keys(const struct b2bd_command *cmd, char *out[3]);

/* The run as b2bd_revoke_bulk reads it (see the function's comment); caller frees. */
char *bulk_revoke_rows(const struct bulk_run *r);

#endif
