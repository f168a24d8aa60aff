/* ctl_privacy: b2bctl privacy export|redact (a customer's data request or erasure, as
 * commands) and b2bctl history (a customer's access versions, from the database). */
#ifndef B2BD_CTL_PRIVACY_H
#define B2BD_CTL_PRIVACY_H

#include "b2bd/config.h"

struct ctl_args;
/* b2bctl privacy export|redact (a->cmd->sub says which). Exit code. */
int ctl_privacy_run(const struct b2bd_config *cfg, const struct ctl_args *a);

/* b2bctl history. Exit code. */
int ctl_history_run(const struct b2bd_config *cfg, const struct ctl_args *a);

#endif
