/* apply_assign: the assign command: a customer to a company, and roles at its locations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply_internal.h"
#include "b2bd/util.h"

/* DOMAIN.md: at most 10,000 customers can be assigned to a company. */
#define COMPANY_MAX_CONTACTS 10000

static const char SQL_COMPANY[] =
    "SELECT 1 FROM companies WHERE shop_id = $1 AND company_id = $2";
static const char SQL_LOCATIONS_OF[] =
    "SELECT location_id FROM locations"
    " WHERE shop_id = $1 AND company_id = $2 AND location_id = ANY ($3::text[])";
static const char SQL_CUSTOMER_BY_ID[] =
    "SELECT customer_id FROM customers WHERE shop_id = $1 AND customer_id = $2";
static const char SQL_CUSTOMER_BY_EMAIL[] =
    "SELECT customer_id FROM customers WHERE shop_id = $1 AND lower(email) = lower($2)";
static const char SQL_CUSTOMER_CREATE[] =
    "INSERT INTO customers (shop_id, customer_id, email, first_name, last_name, phone)"
    " VALUES ($1, COALESCE($2, lower($3)), $3, $4, $5, $6)"
    " ON CONFLICT (shop_id, customer_id) DO NOTHING RETURNING customer_id";
static const char SQL_CONTACT_ADD[] =
    "INSERT INTO contacts (shop_id, company_id, customer_id) VALUES ($1, $2, $3)"
    " ON CONFLICT DO NOTHING RETURNING 1";
/* The company row's lock serialises racing assigns, so the limit holds. */
static const char SQL_COMPANY_SEAT[] =
    "UPDATE companies SET contact_count = contact_count + 1"
    " WHERE shop_id = $1 AND company_id = $2 AND contact_count < $3 RETURNING contact_count";
static const char SQL_ROLE_SET[] =
    "INSERT INTO roles AS r (shop_id, company_id, location_id, customer_id, role)"
    " VALUES ($1, $2, $3, $4, $5)"
    " ON CONFLICT (shop_id, company_id, customer_id, location_id)"
    " DO UPDATE SET role = EXCLUDED.role WHERE r.role <> EXCLUDED.role RETURNING 1";
static const char SQL_ROLES_IN_COMPANY[] =
    "SELECT location_id, role FROM roles"
    " WHERE shop_id = $1 AND company_id = $2 AND customer_id = $3 ORDER BY location_id";

/* Checks that every listed location belongs to the company. */
static enum b2bd_code assign_check_locations(struct apply_cmd *c, const struct b2bd_assign *p,
                                             struct b2bd_err *err)
{
    if (p->n_locations == 0)
        return B2BD_OK;
    const char **ids = calloc(p->n_locations, sizeof *ids);
    if (!ids)
        abort();
    for (size_t i = 0; i < p->n_locations; i++)
        ids[i] = p->locations[i].location_id;
    struct sbuf arr = {0};
    util_pg_text_array(&arr, ids, p->n_locations);
    free(ids);
    const char *v[] = {c->cmd->shop_id, p->company_id, sbuf_str(&arr)};
    PGresult *res = apply_q(c, SQL_LOCATIONS_OF, 3, v, err);
    sbuf_free(&arr);
    if (!res)
        return B2BD_ERR_DB;
    enum b2bd_code code = B2BD_OK;
    for (size_t i = 0; i < p->n_locations && code == B2BD_OK; i++) {
        int found = 0;
        for (int r = 0; r < PQntuples(res) && !found; r++)
            found = strcmp(PQgetvalue(res, r, 0), p->locations[i].location_id) == 0;
        if (!found) {
            char field[64];
            snprintf(field, sizeof field, "payload.locations[%zu].location_id", i);
            code = b2bd_err_set(err, B2BD_NOT_FOUND, field, "no location with this id in the company");
        }
    }
    PQclear(res);
    return code;
}

/* Finds the customer the command names, or creates it. out_id receives a copy. */
static enum b2bd_code assign_customer(struct apply_cmd *c, const struct b2bd_assign *p,
                                      char **out_id, int *created, struct b2bd_err *err)
{
    const char *shop = c->cmd->shop_id;
    PGresult *res;
    *created = 0;
    if (p->customer_id) {
        const char *v[] = {shop, p->customer_id};
        if (!(res = apply_q(c, SQL_CUSTOMER_BY_ID, 2, v, err)))
            return B2BD_ERR_DB;
        int found = PQntuples(res) > 0;
        PQclear(res);
        if (found) {
            *out_id = strdup(p->customer_id);
            return B2BD_OK;
        }
        if (!p->email)
            return b2bd_err_set(err, B2BD_NOT_FOUND, "payload.customer.id",
                                "no customer with this id in the shop");
    }
    const char *ev[] = {shop, p->email};
    if (!(res = apply_q(c, SQL_CUSTOMER_BY_EMAIL, 2, ev, err)))
        return B2BD_ERR_DB;
    if (PQntuples(res) > 0) {
        if (p->customer_id) { /* the id is new, but the email is another customer's */
            PQclear(res);
            return b2bd_err_set(err, B2BD_CONFLICT, "payload.customer.email",
                                "the email belongs to another customer of the shop");
        }
        *out_id = strdup(PQgetvalue(res, 0, 0));
        PQclear(res);
        return B2BD_OK;
    }
    PQclear(res);
    const char *cv[] = {shop, p->customer_id, p->email, p->first_name, p->last_name, p->phone};
    if (!(res = apply_q(c, SQL_CUSTOMER_CREATE, 6, cv, err)))
        return B2BD_ERR_DB;
    if (PQntuples(res) == 0) { /* the lower-cased email is the id of another customer */
        PQclear(res);
        return b2bd_err_set(err, B2BD_CONFLICT, "payload.customer.email",
                            "a customer whose id is this email exists with another email");
    }
    *out_id = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    *created = 1;
    return B2BD_OK;
}

static enum b2bd_code assign_contact(struct apply_cmd *c, const struct b2bd_assign *p,
                                     const char *customer_id, int *created,
                                     struct b2bd_err *err)
{
    const char *shop = c->cmd->shop_id;
    const char *v[] = {shop, p->company_id, customer_id};
    PGresult *res = apply_q(c, SQL_CONTACT_ADD, 3, v, err);
    if (!res)
        return B2BD_ERR_DB;
    *created = PQntuples(res) > 0;
    PQclear(res);
    if (!*created)
        return B2BD_OK;
    char max[16];
    snprintf(max, sizeof max, "%d", COMPANY_MAX_CONTACTS);
    const char *sv[] = {shop, p->company_id, max};
    if (!(res = apply_q(c, SQL_COMPANY_SEAT, 3, sv, err)))
        return B2BD_ERR_DB;
    int seated = PQntuples(res) > 0;
    PQclear(res);
    if (!seated)
        return b2bd_err_set(err, B2BD_LIMIT_REACHED, "payload.company_id",
                            "the company has %d contacts already", COMPANY_MAX_CONTACTS);
    return B2BD_OK;
}

static enum b2bd_code assign_roles(struct apply_cmd *c, const struct b2bd_assign *p,
                                   const char *customer_id, int *changed, struct b2bd_err *err)
{
    for (size_t i = 0; i < p->n_locations; i++) {
        const char *v[] = {c->cmd->shop_id, p->company_id, p->locations[i].location_id,
                           customer_id, decode_role_name(p->locations[i].role)};
        PGresult *res = apply_q(c, SQL_ROLE_SET, 5, v, err);
        if (!res)
            return B2BD_ERR_DB;
        if (PQntuples(res) > 0)
            *changed = 1;
        PQclear(res);
    }
    return B2BD_OK;
}

static enum b2bd_code assign_result_roles(struct apply_cmd *c, const struct b2bd_assign *p,
                                          const char *customer_id, struct b2bd_err *err)
{
    const char *v[] = {c->cmd->shop_id, p->company_id, customer_id};
    PGresult *res = apply_q(c, SQL_ROLES_IN_COMPANY, 3, v, err);
    if (!res)
        return B2BD_ERR_DB;
    json_t *roles = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(roles, json_pack("{ssss}", "location_id", PQgetvalue(res, i, 0),
                                               "role", PQgetvalue(res, i, 1)));
    PQclear(res);
    json_object_set_new(c->result, "roles", roles);
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

/* notify: true queues the B2B access email, unless the customer ends with no location
 * access (then the result says why). */
static enum b2bd_code assign_notify(struct apply_cmd *c, const struct b2bd_assign *p,
                                    const char *customer_id, struct b2bd_err *err)
{
    json_t *ids = json_array();
    json_object_set_new(c->result, "notification_ids", ids);
    if (!p->notify)
        return B2BD_OK;
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

    const char *kv[] = {c->cmd->shop_id, p->company_id};
    PGresult *res = apply_q(c, SQL_COMPANY, 2, kv, err);
    if (!res)
        return B2BD_ERR_DB;
    int found = PQntuples(res) > 0;
    PQclear(res);
    if (!found)
        return b2bd_err_set(err, B2BD_NOT_FOUND, "payload.company_id",
                            "no company with this id in the shop");
    enum b2bd_code code = assign_check_locations(c, p, err);
    if (code != B2BD_OK)
        return code;

    char *customer_id = NULL;
    int customer_created = 0, contact_created = 0, roles_changed = 0;
    code = assign_customer(c, p, &customer_id, &customer_created, err);
    if (code == B2BD_OK)
        code = assign_contact(c, p, customer_id, &contact_created, err);
    if (code == B2BD_OK)
        code = assign_roles(c, p, customer_id, &roles_changed, err);
    if (code == B2BD_OK) {
        json_object_set_new(c->result, "customer_id", json_string(customer_id));
        json_object_set_new(c->result, "customer_created", json_boolean(customer_created));
        json_object_set_new(c->result, "contact_created", json_boolean(contact_created));
        code = assign_result_roles(c, p, customer_id, err);
    }
    if (code == B2BD_OK && p->migrate_orders_to)
        code = assign_migrate(c, p, customer_id, err);
    if (code == B2BD_OK) {
        if (contact_created || roles_changed)
            apply_touch(c, customer_id);
        code = assign_notify(c, p, customer_id, err);
    }
    free(customer_id);
    return code;
}
