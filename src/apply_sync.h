/* apply_sync: the sync commands: shop, company (with locations), customer and order
 * upserts, as such (apply_shop.h adds source_updated_at and shop events). */
#ifndef B2BD_APPLY_SYNC_H
#define B2BD_APPLY_SYNC_H

#include "apply_cmd.h"

/* Apply functions (apply_cmd.h) of shop.upsert, company.upsert (its locations too),
 * customer.upsert and order.upsert: each writes its record and fills c->result. */
enum b2bd_code apply_shop_upsert(struct apply_cmd *c, struct b2bd_err *err);
enum b2bd_code apply_company_upsert(struct apply_cmd *c, struct b2bd_err *err);
enum b2bd_code apply_customer_upsert(struct apply_cmd *c, struct b2bd_err *err);
enum b2bd_code apply_order_upsert(struct apply_cmd *c, struct b2bd_err *err);

#endif
