/* apply_assign: the assign command: a customer to a company, and roles at its locations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply_assign.h"
#include "apply_domain.h"
#include "apply_json.h"
#include "apply_migrate.h"
#include "apply_notify.h"
#include "b2bd/util.h"

/* The rules of assign run in b2bd_assign() (sql/functions/assign.sql), which
 * gives its one row to b2bd_assign_core, as b2bd_assign_bulk gives a run: one round trip,
 * next to the data. It returns {result, changed}: the result object is
 * b2bd_assign_result's, the set-based path's too; this path adds to it what only it
 * does (migration, notification_ids filled, notification_skipped). */
static const char SQL_ASSIGN[] =
    "SELECT b2bd_assign($1, $2, $3, $4, $5, $6, $7, $8::text[], $9::text[], $10)";

/* Runs b2bd_assign; on a rejection it raised, sets err from the SQLSTATE B2B01 error. */
static enum b2bd_code assign_core(struct apply_cmd *c, const struct b2bd_assign *p,
                                  json_t **out, struct b2bd_err *err)
{
    const char **ids = calloc(p->n_locations + 1, sizeof *ids);
    const char **roles = calloc(p->n_locations + 1, sizeof *roles);
    if (!ids || !roles)
        abort();
    for (size_t i = 0; i < p->n_locations; i++) {
        ids[i] = p->locations[i].location_id;
        roles[i] = decode_role_name(p->locations[i].role);
    }
    struct sbuf ida = {0}, rolea = {0};
    util_pg_text_array(&ida, ids, p->n_locations);
    util_pg_text_array(&rolea, roles, p->n_locations);
    free(ids);
    free(roles);
    char max[16];
    snprintf(max, sizeof max, "%d", COMPANY_MAX_CONTACTS);
    const char *v[] = {c->cmd->shop_id, p->company_id, p->customer_id, p->email,
                       p->first_name, p->last_name, p->phone, sbuf_str(&ida), sbuf_str(&rolea), max};
    enum b2bd_code code;
    PGresult *res = apply_q_rejectable(c, SQL_ASSIGN, 10, v, &code, err);
    sbuf_free(&ida);
    sbuf_free(&rolea);
    if (!res)
        return code;
    *out = apply_load(PQgetvalue(res, 0, 0));
    PQclear(res);
    return B2BD_OK;
}

static const char SQL_ROLE_AT[] =
    "SELECT l.company_id = $2, r.role IS NOT NULL FROM locations l"
    " LEFT JOIN roles r ON r.shop_id = l.shop_id AND r.location_id = l.location_id"
    "  AND r.company_id = $2 AND r.customer_id = $3"
    " WHERE l.shop_id = $1 AND l.location_id = $4";

/* migrate_orders_to: a location where the customer holds a role after this command;
 * the migration's rejection rejects the whole assign. */
static enum b2bd_code assign_migrate(struct apply_cmd *c, const struct b2bd_assign *p,
                                     const char *customer_id, struct b2bd_err *err)
{
    const char *v[] = {c->cmd->shop_id, p->company_id, customer_id, p->migrate_orders_to};
    PGresult *res = apply_q(c, SQL_ROLE_AT, 4, v, err);
    if (!res)
        return B2BD_ERR_DB;
    int in_company = PQntuples(res) > 0 && PQgetvalue(res, 0, 0)[0] == 't';
    int has_role = in_company && PQgetvalue(res, 0, 1)[0] == 't';
    PQclear(res);
    if (!in_company)
        return b2bd_err_set(err, B2BD_NOT_FOUND, "payload.migrate_orders_to",
                            "no location with this id in the company");
    if (!has_role)
        return b2bd_err_set(err, B2BD_NO_LOCATION_ACCESS, "payload.migrate_orders_to",
                            "the customer holds no role at this location after the command");
    json_t *m = NULL;
    enum b2bd_code code = apply_migration(c, p->company_id, p->migrate_orders_to, customer_id,
                                          "payload.migrate_orders_to", &m, err);
    if (code != B2BD_OK)
        return code;
    json_object_set_new(c->result, "migration", m);
    json_object_set_new(c->result, "orders.migrated", apply_orders_migrated_record(p->company_id, m));
    return B2BD_OK;
}

/* notify: true queues the B2B access email, unless the customer is suspended in the
 * company or ends with no location access (then the result says why). */
static enum b2bd_code assign_notify(struct apply_cmd *c, const struct b2bd_assign *p,
                                    const char *customer_id, struct b2bd_err *err)
{
    json_t *ids = json_object_get(c->result, "notification_ids");
    if (!p->notify)
        return B2BD_OK;
    /* a contact suspended in the company gets no email (CONTRACT.md, "Suspension") */
    if (json_is_true(json_object_get(c->result, "suspended"))) {
        json_object_set_new(c->result, "notification_skipped",
                            json_pack("{ss}", "reason", b2bd_code_name(B2BD_SUSPENDED)));
        return B2BD_OK;
    }
    if (json_array_size(json_object_get(c->result, "roles")) == 0) {
        json_object_set_new(c->result, "notification_skipped",
                            json_pack("{ss}", "reason", b2bd_code_name(B2BD_NO_LOCATION_ACCESS)));
        return B2BD_OK;
    }
    char id[37];
    enum b2bd_code code = apply_queue_access_email(c, p->company_id, NULL, customer_id, id, err);
    if (code == B2BD_OK)
        json_array_append_new(ids, json_string(id));
    return code;
}

enum b2bd_code apply_assign(struct apply_cmd *c, struct b2bd_err *err)
{
    const struct b2bd_assign *p = &c->cmd->u.assign;
    json_t *r = NULL;
    enum b2bd_code code = assign_core(c, p, &r, err);
    if (code != B2BD_OK)
        return code;
    /* the result object as b2bd_assign_result builds it for both paths */
    json_object_update(c->result, json_object_get(r, "result"));
    const char *customer_id = json_string_value(json_object_get(c->result, "customer_id"));
    if (p->migrate_orders_to)
        code = assign_migrate(c, p, customer_id, err);
    if (code == B2BD_OK) {
        if (json_is_true(json_object_get(r, "changed")))
            apply_touch(c, customer_id);
        code = assign_notify(c, p, customer_id, err);
    }
    json_decref(r);
    return code;
}
