/* fault: whose fault a failed database statement is, by its SQLSTATE: the one classifier
 * of failures. The surroundings' (the connection lost, a deadlock, a serialization
 * failure, the server shutting down or short of resources) is retried and never rejects
 * a command; a unique-key race is retried in the command's savepoint, then rejected
 * CONFLICT; anything else is the command's, which is rejected alone so that the others
 * go on (CONTRACT.md, "Limits and failures"). */
#ifndef B2BD_FAULT_H
#define B2BD_FAULT_H

#include <stdbool.h>

#include "b2bd/err.h"

enum fault_class {
    /* Not the command's: the batch is rolled back and applied again after a backoff
     * (reconnecting); nothing is rejected. A command that meets one is first tried
     * again in its savepoint (while connected). */
    FAULT_SURROUNDINGS,
    /* A unique key raced by a concurrent writer (23505): tried again in the command's
     * savepoint, where it sees the winner's row; if it still fails, CONFLICT. */
    FAULT_RACE,
    /* The command's own: tried once more in its savepoint, then rejected (see
     * fault_rejection). */
    FAULT_COMMAND,
};

/* The class of a failure with this SQLSTATE (NULL or "": the server gave none) on a
 * connection that is (connected) or is no longer up. Not connected, "" (no answer from
 * the server: the connection or the client failed), class 08 (connection), 40001
 * (serialization), 40P01 (deadlock), 40003 (statement completion unknown: whether it
 * committed is not known, and applying the batch again is safe because the consumed
 * positions and the inbox make a committed one skipped), 57P0x (shutdown, cannot
 * connect now), 53 (insufficient resources: disk full, out of memory, too many
 * connections), 58 (system error: I/O), 55P03 (lock not available): FAULT_SURROUNDINGS.
 * 23505: FAULT_RACE. Anything else: FAULT_COMMAND. */
enum fault_class fault_classify(const char *sqlstate, bool connected);

/* The rejection of a command the database refused with this SQLSTATE ("" when no
 * statement failed: the result could not be built): CONFLICT for a unique key raced
 * (23505), INVALID for a value the database cannot hold (class 22), UNPROCESSABLE for
 * everything else, with a message for the producer that names no database internals.
 * Sets *why (no field) and returns its code. */
enum b2bd_code fault_rejection(const char *sqlstate, struct b2bd_err *why);

#endif
