/* apply_bulk: runs of plain assigns in a batch, applied together by one set-based
 * function (b2bd_assign_bulk, sql/functions/assign.sql) instead of one
 * savepoint and several round trips each. */
#ifndef B2BD_APPLY_BULK_H
#define B2BD_APPLY_BULK_H

#include <stdbool.h>
#include <stddef.h>

#include "b2bd/apply.h"
#include "b2bd/db.h"
#include "b2bd/decode.h"
#include "b2bd/err.h"

/* Consecutive commands of a batch that the bulk function may apply together: plain
 * assigns (no migrate_orders_to, no email) with no customer id, email (ASCII case
 * folded) or command_id in common, so that few depend on another's writes; the bulk
 * function hands back the runs where some still may (see cmd_keys in apply_bulk.c). */
struct bulk_run {
    size_t n, cap;
    const struct b2bd_msg **msgs;  /* borrowed */
    struct b2bd_command *cmds;     /* owned: decode_free()d by bulk_clear */
    char **keys;                   /* open-addressing set of the run's keys (owned) */
    size_t n_keys, cap_keys;
};

/* Outcome of one command of a run. */
enum bulk_status { BULK_APPLIED, BULK_DUPLICATE, BULK_REJECTED };

struct bulk_outcome {
    enum bulk_status status;
    struct b2bd_err why; /* BULK_REJECTED: code and field (message in the result only) */
};

/* A run that holds up to cap commands. */
void bulk_init(struct bulk_run *r, size_t cap);
void bulk_free(struct bulk_run *r);

/* True for a command a bulk function applies: an assign without migration or email (a
 * dry run too: b2bd_assign_bulk undoes a run of them), or a revoke without
 * remove_migrated_orders that is no dry run (apply_bulk_revoke.h). */
bool bulk_eligible(const struct b2bd_command *cmd);

/* Adds a decoded command to the run, which takes it over (cmd is left zeroed), when
 * there is room, it is of the run's type (assigns and revokes make separate runs), a dry
 * run as the run's are, and it has no key in common with the run's commands; else returns
 * false and leaves cmd alone. An empty run takes any eligible command. */
bool bulk_try_add(struct bulk_run *r, const struct b2bd_msg *msg, struct b2bd_command *cmd);

/* Applies the run inside its own savepoint. Returns 0 with out[i] for each command;
 * 1 when the run was rolled back to its savepoint and must be applied one command at
 * a time (a race, or rows the function cannot settle set-wise; the transaction is
 * usable); -1 with err when the connection failed (the batch must be rolled back). */
int bulk_apply(struct b2bd_db *db, struct bulk_run *r, struct bulk_outcome *out,
               struct b2bd_err *err);

/* Empties the run (its commands are freed). */
void bulk_clear(struct bulk_run *r);

#endif
