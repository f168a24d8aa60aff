/* reload: on SIGHUP, the settings that change without a restart. */
#ifndef B2BD_RELOAD_H
#define B2BD_RELOAD_H

#include <stddef.h>

#include "b2bd/config.h"

/* Takes into cur the reloadable values of next that differ (log_level, batch_linger_ms,
 * batch_max, notifier_rate_per_s, notifier_retry_initial_ms, notifier_retry_max_ms,
 * notifier_give_up_s): each stored with an atomic store, since other threads (the
 * notifier's workers) read them, and logged (`event=reloaded key=... old=... new=...`);
 * the log level takes effect at once (log_init). Every other key, kafka.* included,
 * whose value differs is logged as `event=restart_needed key=...` and left as it is
 * (secrets compared as config_dump shows them, so never logged).
 *
 * Returns the number of values taken; *restart (if not NULL) gets the number of
 * changed keys that need a restart. */
int reload_apply(struct b2bd_config *cur, const struct b2bd_config *next, int *restart);

#endif
