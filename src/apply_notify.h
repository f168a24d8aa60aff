/* apply_notify: the B2B access email: notify (queue, preview, resend), assign's notify,
 * template.update. */
#ifndef B2BD_APPLY_NOTIFY_H
#define B2BD_APPLY_NOTIFY_H

#include "apply_cmd.h"

/* The apply functions (apply_cmd.h) of notify and template.update. */
enum b2bd_code apply_notify(struct apply_cmd *c, struct b2bd_err *err);
enum b2bd_code apply_template_update(struct apply_cmd *c, struct b2bd_err *err);

/* Queues the B2B access email to a contact of the company (location may be NULL),
 * rendered now, sent by the notifier; id receives the notification id. */
enum b2bd_code apply_queue_access_email(struct apply_cmd *c, const char *company,
                                        const char *location, const char *customer,
                                        char id[37], struct b2bd_err *err);

#endif
