/* apply_internal: what the apply_<command> modules share with the dispatcher. */
#ifndef B2BD_APPLY_INTERNAL_H
#define B2BD_APPLY_INTERNAL_H

#include <jansson.h>
#include <libpq-fe.h>

#include "b2bd/config.h"
#include "b2bd/db.h"
#include "b2bd/decode.h"
#include "b2bd/err.h"

/* DOMAIN.md: at most 10,000 customers can be assigned to a company. */
#define COMPANY_MAX_CONTACTS 10000

/* The state of one command being applied. */
struct apply_cmd {
    struct b2bd_db *db;
    const struct b2bd_config *cfg;
    const struct b2bd_command *cmd;
    const struct email_template *email_default;
    json_t *result;   /* the `result` object; the apply function fills it */
    char **touched;   /* customers whose contacts or roles changed (owned) */
    size_t n_touched, cap_touched;
    int queued_email; /* wake the notifiers when the command commits */
    struct b2bd_err rejected; /* why, when the command was rejected */
};

/* An apply function returns B2BD_OK, a rejection code (with err set: the command's
 * changes are rolled back), or B2BD_ERR_DB (err set). */
typedef enum b2bd_code (*apply_fn)(struct apply_cmd *c, struct b2bd_err *err);

enum b2bd_code apply_shop_upsert(struct apply_cmd *c, struct b2bd_err *err);
enum b2bd_code apply_company_upsert(struct apply_cmd *c, struct b2bd_err *err);
enum b2bd_code apply_customer_upsert(struct apply_cmd *c, struct b2bd_err *err);
enum b2bd_code apply_order_upsert(struct apply_cmd *c, struct b2bd_err *err);
enum b2bd_code apply_assign(struct apply_cmd *c, struct b2bd_err *err);
enum b2bd_code apply_revoke(struct apply_cmd *c, struct b2bd_err *err);
enum b2bd_code apply_migrate(struct apply_cmd *c, struct b2bd_err *err);
enum b2bd_code apply_notify(struct apply_cmd *c, struct b2bd_err *err);
enum b2bd_code apply_template_update(struct apply_cmd *c, struct b2bd_err *err);

/* Queues the B2B access email to a contact of the company (location may be NULL),
 * rendered now, sent by the notifier; id receives the notification id. */
enum b2bd_code apply_queue_access_email(struct apply_cmd *c, const char *company,
                                        const char *location, const char *customer,
                                        char id[37], struct b2bd_err *err);

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

/* Marks a customer's access as changed: an access event is published for it when the
 * command succeeds. */
void apply_touch(struct apply_cmd *c, const char *customer_id);

/* Runs a prepared statement with n text parameters (NULL = SQL NULL). */
PGresult *apply_q(struct apply_cmd *c, const char *sql, int n, const char *const *v,
                  struct b2bd_err *err);

/* Runs a query for existence: *found is 1 when it returns a row. */
enum b2bd_code apply_exists(struct apply_cmd *c, const char *sql, int n, const char *const *v,
                            int *found, struct b2bd_err *err);

/* The company and the customer exist in the shop (NOT_FOUND on payload.company_id or
 * payload.customer_id) and the customer is its contact (NOT_A_CONTACT). */
enum b2bd_code apply_check_contact(struct apply_cmd *c, const char *company, const char *customer,
                                   struct b2bd_err *err);

/* json_string(s), or json_null() for NULL. */
json_t *apply_jstr(const char *s);

#endif
