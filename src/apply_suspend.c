/* apply_suspend: suspend and resume of a company or of one contact (CONTRACT.md,
 * "Suspension"). */
#include <stdlib.h>

#include "apply_suspend.h"
#include "apply_json.h"

/* The rules run in b2bd_suspend (sql/functions/suspension.sql), set-based: one call for a
 * company of 10,000 contacts as for one contact. It writes the access events itself (one
 * per contact whose entry changes), so nothing is touched here; an event over the message
 * limit fails the call with B2B13 (apply_fresh: LIMIT_REACHED). */
static const char SQL_SUSPEND[] = "SELECT b2bd_suspend($1, $2, $3, $4::boolean, $5::uuid)";

enum b2bd_code apply_suspend(struct apply_cmd *c, struct b2bd_err *err)
{
    const struct b2bd_suspend *p = &c->cmd->u.suspend;
    const char *v[] = {c->cmd->shop_id, p->company_id, p->customer_id,
                       c->cmd->type == CMD_SUSPEND ? "true" : "false", c->cmd->command_id};
    enum b2bd_code code;
    PGresult *res = apply_q_rejectable(c, SQL_SUSPEND, 5, v, &code, err);
    if (!res)
        return code;
    json_t *r = apply_load(PQgetvalue(res, 0, 0));
    PQclear(res);
    /* the result's members in the contract's order */
    json_object_set_new(c->result, "company_id", json_string(p->company_id));
    json_object_set_new(c->result, "customer_id", p->customer_id ? json_string(p->customer_id) : json_null());
    json_object_set(c->result, "changed", json_object_get(r, "changed"));
    json_object_set(c->result, "customers_affected", json_object_get(r, "customers_affected"));
    json_decref(r);
    return B2BD_OK;
}
