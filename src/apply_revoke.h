/* apply_revoke: the revoke command: roles at locations, all roles, or the whole contact. */
#ifndef B2BD_APPLY_REVOKE_H
#define B2BD_APPLY_REVOKE_H

#include "apply_cmd.h"

/* The apply function (apply_cmd.h) of revoke, with its optional revert of migrated
 * orders. */
enum b2bd_code apply_revoke(struct apply_cmd *c, struct b2bd_err *err);

#endif
