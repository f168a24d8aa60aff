/* apply_shop: the upserts as the contract's privacy section extends them: an optional
 * source_updated_at (a stale upsert changes nothing), and shop.settings events on
 * events.shops after each shop.upsert that changes something. */
#ifndef B2BD_APPLY_SHOP_H
#define B2BD_APPLY_SHOP_H

#include "apply_cmd.h"

/* The upserts with their optional source_updated_at (a stale one is applied with
 * "stale": true and changes nothing); shop.upsert also publishes shop.settings on
 * events.shops when it changes something. */
enum b2bd_code apply_shop_upsert_tracked(struct apply_cmd *c, struct b2bd_err *err);
enum b2bd_code apply_company_upsert_tracked(struct apply_cmd *c, struct b2bd_err *err);
enum b2bd_code apply_customer_upsert_tracked(struct apply_cmd *c, struct b2bd_err *err);
enum b2bd_code apply_order_upsert_tracked(struct apply_cmd *c, struct b2bd_err *err);

#endif
