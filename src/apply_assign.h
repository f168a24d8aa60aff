/* apply_assign: the assign command: a customer to a company, and roles at its locations. */
#ifndef B2BD_APPLY_ASSIGN_H
#define B2BD_APPLY_ASSIGN_H

#include "apply_cmd.h"

/* The apply function (apply_cmd.h) of assign, with its optional order migration and
 * access email. */
enum b2bd_code apply_assign(struct apply_cmd *c, struct b2bd_err *err);

#endif
