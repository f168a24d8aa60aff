/* apply_cmd: the state of one command being applied, and the queries the apply_<command>
 * modules run with it. */
#ifndef B2BD_APPLY_CMD_H
#define B2BD_APPLY_CMD_H

#include <stddef.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "b2bd/config.h"
#include "b2bd/db.h"
#include "b2bd/decode.h"
#include "b2bd/err.h"

struct email_template;

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

/* Marks a customer's access as changed: an access event is published for it when the
 * command succeeds. */
void apply_touch(struct apply_cmd *c, const char *customer_id);

/* Empties the command's state for its next attempt: frees the touched customers (the
 * array itself stays, for reuse; the caller frees c->touched at the end) and the result,
 * which becomes NULL. */
void apply_cmd_reset(struct apply_cmd *c);

/* Runs a prepared statement with n text parameters (NULL = SQL NULL). */
PGresult *apply_q(struct apply_cmd *c, const char *sql, int n, const char *const *v,
                  struct b2bd_err *err);

/* Runs a statement that may raise a rejection (b2bd_reject, SQLSTATE B2B01): err then
 * has the contract's code, field and message. Returns the result or NULL. */
PGresult *apply_q_rejectable(struct apply_cmd *c, const char *sql, int n, const char *const *v,
                             enum b2bd_code *code, struct b2bd_err *err);

/* Runs a query for existence: *found is 1 when it returns a row. */
enum b2bd_code apply_exists(struct apply_cmd *c, const char *sql, int n, const char *const *v,
                            int *found, struct b2bd_err *err);

/* The company and the customer exist in the shop (NOT_FOUND on payload.company_id or
 * payload.customer_id) and the customer is its contact (NOT_A_CONTACT). */
enum b2bd_code apply_check_contact(struct apply_cmd *c, const char *company, const char *customer,
                                   struct b2bd_err *err);

#endif
