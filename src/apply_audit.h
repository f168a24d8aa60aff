/* apply_audit: the actor and issued_at of the commands being applied, noted for the
 * database (b2bd.audit), where the inbox trigger and the access events read them. */
#ifndef B2BD_APPLY_AUDIT_H
#define B2BD_APPLY_AUDIT_H

#include <stddef.h>

#include "b2bd/db.h"
#include "b2bd/decode.h"
#include "b2bd/err.h"

/* Notes the actor and issued_at of the commands (n of them) for the open transaction
 * (setting b2bd.audit, sql/functions/audit.sql), from which their inbox rows and access
 * events take them (the one-by-one path: set-based runs carry them in their rows). No
 * round trip when none has either. Returns 0 or -1 with err. */
int audit_note(struct b2bd_db *db, const struct b2bd_command *cmds, size_t n,
               struct b2bd_err *err);

#endif
