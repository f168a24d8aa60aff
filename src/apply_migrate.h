/* apply_migrate: moving a customer's D2C order history to a location (migrate, assign's
 * migrate_orders_to) and back (revoke's remove_migrated_orders). */
#ifndef B2BD_APPLY_MIGRATE_H
#define B2BD_APPLY_MIGRATE_H

#include <jansson.h>

#include "apply_cmd.h"

/* The apply function (apply_cmd.h) of migrate. */
enum b2bd_code apply_migrate(struct apply_cmd *c, struct b2bd_err *err);

/* Moves the customer's D2C orders (not cancelled or deleted) to the location and binds
 * the customer's history in the company to it (ALREADY_MIGRATED, on location_field,
 * when bound to another). The caller has checked contact and role. *out receives the
 * contract's migration object {customer_id, location_id, migrated_order_ids, skipped}. */
enum b2bd_code apply_migration(struct apply_cmd *c, const char *company, const char *location,
                               const char *customer, const char *location_field,
                               json_t **out, struct b2bd_err *err);

/* The `orders.migrated` record of a result, for downstream order systems. */
json_t *apply_orders_migrated_record(const char *company, const json_t *migration);

/* Reverts the orders migrated into the company for the customer to D2C, and ends the
 * binding. *reverted receives the order ids. */
enum b2bd_code apply_revert_migration(struct apply_cmd *c, const char *company,
                                      const char *customer, json_t **reverted,
                                      struct b2bd_err *err);

#endif
