/* apply_privacy: customer.merge, customer.data_request, customer.redact and shop.redact
 * (CONTRACT.md, "Privacy, profiles and audit"). */
#ifndef B2BD_APPLY_PRIVACY_H
#define B2BD_APPLY_PRIVACY_H

#include "apply_cmd.h"

/* The apply functions (apply_cmd.h) of customer.merge, customer.data_request,
 * customer.redact and shop.redact. */
enum b2bd_code apply_customer_merge(struct apply_cmd *c, struct b2bd_err *err);
enum b2bd_code apply_customer_data_request(struct apply_cmd *c, struct b2bd_err *err);
enum b2bd_code apply_customer_redact(struct apply_cmd *c, struct b2bd_err *err);
enum b2bd_code apply_shop_redact(struct apply_cmd *c, struct b2bd_err *err);

#endif
