/* apply_privacy: the contract's "Privacy, profiles and audit" section: the audit notes of
 * every command, shop events and stale upserts (apply_shop.c), and customer.merge,
 * customer.data_request, customer.redact and shop.redact (apply_privacy.c). */
#ifndef B2BD_APPLY_PRIVACY_H
#define B2BD_APPLY_PRIVACY_H

#include <stddef.h>

#include "apply_internal.h"

/* Notes the actor and issued_at of the commands (n of them) for the open transaction
 * (setting b2bd.audit, sql/migrations/0011_privacy_audit.sql), from which their inbox
 * rows and access events take them (the one-by-one path: set-based runs carry them in
 * their rows, 0016). No round trip when none has either. Returns 0 or -1 with err. */
int audit_note(struct b2bd_db *db, const struct b2bd_command *cmds, size_t n,
               struct b2bd_err *err);

/* The upserts with their optional source_updated_at (a stale one is applied with
 * "stale": true and changes nothing); shop.upsert also publishes shop.settings on
 * events.shops when it changes something. */
enum b2bd_code apply_shop_upsert_tracked(struct apply_cmd *c, struct b2bd_err *err);
enum b2bd_code apply_company_upsert_tracked(struct apply_cmd *c, struct b2bd_err *err);
enum b2bd_code apply_customer_upsert_tracked(struct apply_cmd *c, struct b2bd_err *err);
enum b2bd_code apply_order_upsert_tracked(struct apply_cmd *c, struct b2bd_err *err);

enum b2bd_code apply_customer_merge(struct apply_cmd *c, struct b2bd_err *err);
enum b2bd_code apply_customer_data_request(struct apply_cmd *c, struct b2bd_err *err);
enum b2bd_code apply_customer_redact(struct apply_cmd *c, struct b2bd_err *err);
enum b2bd_code apply_shop_redact(struct apply_cmd *c, struct b2bd_err *err);

/* Runs a statement that may raise a rejection (b2bd_reject, SQLSTATE B2B01): err then
 * has the contract's code, field and message. Returns the result or NULL. */
PGresult *apply_q_rejectable(struct apply_cmd *c, const char *sql, int n, const char *const *v,
                             enum b2bd_code *code, struct b2bd_err *err);

#endif
