/* ctl_privacy: b2bctl privacy export|redact (a customer's data request or erasure, as
 * commands) and b2bctl history (a customer's access versions, from the database). */
#ifndef B2BD_CTL_PRIVACY_H
#define B2BD_CTL_PRIVACY_H

#include "b2bd/config.h"

/* b2bctl privacy ...: argv[0] is "privacy". Exit code. */
int ctl_privacy_main(const struct b2bd_config *cfg, int argc, char **argv);

/* b2bctl history ...: argv[0] is "history". Exit code. */
int ctl_history_main(const struct b2bd_config *cfg, int argc, char **argv);

#endif
