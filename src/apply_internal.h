/* apply_internal: what the apply_<command> modules share with the dispatcher (and, for
 * them, the JSON helpers of apply_json.h and the domain's limits of apply_domain.h). */
#ifndef B2BD_APPLY_INTERNAL_H
#define B2BD_APPLY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "apply_domain.h"
#include "apply_json.h"
#include "b2bd/config.h"
#include "b2bd/db.h"
#include "b2bd/decode.h"
#include "b2bd/err.h"

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

/* ---- message size (apply_limit.c) ---- */

/* Room kept under max_message_bytes for Kafka's framing of a message: the record batch
 * header (61 bytes), a record's own fields (at most 36) and a few header lengths, so
 * that a broker whose message.max.bytes is max_message_bytes takes every result and
 * access event b2bd writes (key, value and headers within max_message_bytes - 256). */
#define APPLY_MESSAGE_FRAMING 256

/* The SQLSTATE the outbox raises for an access event too large (migration 0013). */
#define APPLY_SQLSTATE_TOO_LARGE "B2B13"

/* True when a message whose key, value and headers take bytes fits max_message_bytes. */
bool apply_message_fits(const struct b2bd_config *cfg, size_t bytes);

/* B2BD_OK when the command's result message (key and value: bytes) fits, else
 * LIMIT_REACHED on the payload list that makes the result large. */
enum b2bd_code apply_result_fits(struct apply_cmd *c, size_t bytes, struct b2bd_err *err);

/* LIMIT_REACHED on field: the command's `what` ("result") would be too large. */
enum b2bd_code apply_too_large(struct apply_cmd *c, const char *field, const char *what,
                               struct b2bd_err *err);

/* True when the last statement failed because an access event was too large; then
 * apply_access_too_large sets the command's LIMIT_REACHED. */
bool apply_is_access_too_large(const struct b2bd_db *db);
enum b2bd_code apply_access_too_large(struct apply_cmd *c, struct b2bd_err *err);

#endif
