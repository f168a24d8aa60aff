/* apply_suspend: suspend and resume of a company or of one contact (CONTRACT.md,
 * "Suspension"). */
#ifndef B2BD_APPLY_SUSPEND_H
#define B2BD_APPLY_SUSPEND_H

#include "apply_cmd.h"

/* The apply function (apply_cmd.h) of suspend and of resume. */
enum b2bd_code apply_suspend(struct apply_cmd *c, struct b2bd_err *err);

#endif
