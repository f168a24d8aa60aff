/* fault: whose fault a failed database statement is, by its SQLSTATE. The surroundings'
 * (the connection lost, a deadlock, a serialization failure, the server shutting down or
 * short of resources) is retried and never rejects a command; anything else is the
 * command's, which is rejected alone so that the others go on (CONTRACT.md, "Limits and
 * failures"). */
#ifndef B2BD_FAULT_H
#define B2BD_FAULT_H

#include <stdbool.h>

#include "b2bd/err.h"

/* True when a failure with this SQLSTATE is the surroundings': "" (no answer from the
 * server: the connection or the client failed), class 08 (connection), 40001
 * (serialization), 40P01 (deadlock), 40003 (completion unknown), 57P0x (shutdown,
 * cannot connect now), 53 (insufficient resources: disk full, out of memory, too many
 * connections), 58 (system error: I/O), 55P03 (lock not available). */
bool fault_transient(const char *sqlstate);

/* The rejection of a command the database refused with this SQLSTATE ("" when no
 * statement failed: the result could not be built): CONFLICT for a unique key raced
 * (23505), INVALID for a value the database cannot hold (class 22), UNPROCESSABLE for
 * everything else, with a message for the producer that names no database internals.
 * Sets *why (no field) and returns its code. */
enum b2bd_code fault_rejection(const char *sqlstate, struct b2bd_err *why);

#endif
