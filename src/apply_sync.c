/* apply_sync: the sync commands: shop, company (with locations), customer and order upserts. */
#include <stdio.h>
#include <string.h>

#include "apply_sync.h"
#include "b2bd/util.h"

static const char SQL_SHOP_UPSERT[] =
    "INSERT INTO shops AS s (shop_id, name, account_url, from_email, staff_email, b2b_only)"
    " VALUES ($1, $2, $3, $4, $5, $6)"
    " ON CONFLICT (shop_id) DO UPDATE SET name = EXCLUDED.name,"
    "  account_url = EXCLUDED.account_url, from_email = EXCLUDED.from_email,"
    "  staff_email = EXCLUDED.staff_email, b2b_only = EXCLUDED.b2b_only, updated_at = now()"
    " RETURNING (xmax = 0)";

enum b2bd_code apply_shop_upsert(struct apply_cmd *c, struct b2bd_err *err)
{
    const struct b2bd_shop_upsert *p = &c->cmd->u.shop;
    const char *v[] = {c->cmd->shop_id, p->name, p->account_url, p->from_email,
                       p->staff_email, p->b2b_only ? "true" : "false"};
    PGresult *res = apply_q(c, SQL_SHOP_UPSERT, 6, v, err);
    if (!res)
        return B2BD_ERR_DB;
    json_object_set_new(c->result, "shop_id", json_string(c->cmd->shop_id));
    json_object_set_new(c->result, "created", json_boolean(PQgetvalue(res, 0, 0)[0] == 't'));
    PQclear(res);
    return B2BD_OK;
}

static const char SQL_COMPANY_UPSERT[] =
    "INSERT INTO companies (shop_id, company_id, name) VALUES ($1, $2, $3)"
    " ON CONFLICT (shop_id, company_id) DO UPDATE SET name = EXCLUDED.name, updated_at = now()"
    " RETURNING (xmax = 0)";
static const char SQL_LOCATION_GET[] =
    "SELECT company_id, name FROM locations WHERE shop_id = $1 AND location_id = $2";
static const char SQL_LOCATION_ADD[] =
    "INSERT INTO locations (shop_id, location_id, company_id, name) VALUES ($1, $2, $3, $4)";
static const char SQL_LOCATION_RENAME[] =
    "UPDATE locations SET name = $3 WHERE shop_id = $1 AND location_id = $2";

enum b2bd_code apply_company_upsert(struct apply_cmd *c, struct b2bd_err *err)
{
    const struct b2bd_company_upsert *p = &c->cmd->u.company;
    const char *shop = c->cmd->shop_id;
    const char *v[] = {shop, p->company_id, p->name};
    PGresult *res = apply_q(c, SQL_COMPANY_UPSERT, 3, v, err);
    if (!res)
        return B2BD_ERR_DB;
    int created = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);

    json_t *added = json_array(), *renamed = json_array();
    json_object_set_new(c->result, "company_id", json_string(p->company_id));
    json_object_set_new(c->result, "created", json_boolean(created));
    json_object_set_new(c->result, "locations_added", added);
    json_object_set_new(c->result, "locations_renamed", renamed);
    for (size_t i = 0; i < p->n_locations; i++) {
        const struct b2bd_location_upsert *l = &p->locations[i];
        const char *gv[] = {shop, l->location_id};
        if (!(res = apply_q(c, SQL_LOCATION_GET, 2, gv, err)))
            return B2BD_ERR_DB;
        if (PQntuples(res) == 0) {
            PQclear(res);
            const char *av[] = {shop, l->location_id, p->company_id, l->name};
            if (!(res = apply_q(c, SQL_LOCATION_ADD, 4, av, err)))
                return B2BD_ERR_DB;
            PQclear(res);
            json_array_append_new(added, json_string(l->location_id));
            continue;
        }
        if (strcmp(PQgetvalue(res, 0, 0), p->company_id) != 0) {
            char field[64];
            snprintf(field, sizeof field, "payload.locations[%zu].location_id", i);
            b2bd_err_set(err, B2BD_CONFLICT, field,
                         "location %.*s belongs to another company of the shop",
                         util_utf8_prefix(l->location_id, 80), l->location_id);
            PQclear(res);
            return B2BD_CONFLICT;
        }
        int same = l->name ? (!PQgetisnull(res, 0, 1) && strcmp(PQgetvalue(res, 0, 1), l->name) == 0)
                           : PQgetisnull(res, 0, 1);
        PQclear(res);
        if (same)
            continue;
        const char *rv[] = {shop, l->location_id, l->name};
        if (!(res = apply_q(c, SQL_LOCATION_RENAME, 3, rv, err)))
            return B2BD_ERR_DB;
        PQclear(res);
        json_array_append_new(renamed, json_string(l->location_id));
    }
    return B2BD_OK;
}

static const char SQL_CUSTOMER_BY_EMAIL[] =
    "SELECT customer_id FROM customers WHERE shop_id = $1 AND lower(email) = lower($2)";
static const char SQL_CUSTOMER_UPSERT[] =
    "INSERT INTO customers AS c (shop_id, customer_id, email, first_name, last_name, phone, tags)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7::text[])"
    " ON CONFLICT (shop_id, customer_id) DO UPDATE SET email = EXCLUDED.email,"
    "  first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,"
    "  phone = EXCLUDED.phone, tags = EXCLUDED.tags, updated_at = now()"
    " RETURNING (xmax = 0),"
    "  EXISTS (SELECT 1 FROM contacts k WHERE k.shop_id = $1 AND k.customer_id = $2)";
static const char SQL_CUSTOMER_EMAIL[] =
    "SELECT email FROM customers WHERE shop_id = $1 AND customer_id = $2";

enum b2bd_code apply_customer_upsert(struct apply_cmd *c, struct b2bd_err *err)
{
    const struct b2bd_customer_upsert *p = &c->cmd->u.customer;
    const char *shop = c->cmd->shop_id;
    const char *ev[] = {shop, p->email};
    PGresult *res = apply_q(c, SQL_CUSTOMER_BY_EMAIL, 2, ev, err);
    if (!res)
        return B2BD_ERR_DB;
    if (PQntuples(res) > 0 && strcmp(PQgetvalue(res, 0, 0), p->customer_id) != 0) {
        b2bd_err_set(err, B2BD_CONFLICT, "payload.email",
                     "the email belongs to another customer of the shop");
        PQclear(res);
        return B2BD_CONFLICT;
    }
    PQclear(res);

    /* the email is part of the customer's access event: a change republishes it */
    const char *kv[] = {shop, p->customer_id};
    if (!(res = apply_q(c, SQL_CUSTOMER_EMAIL, 2, kv, err)))
        return B2BD_ERR_DB;
    int email_changed = PQntuples(res) == 1 &&
                        (PQgetisnull(res, 0, 0) || strcmp(PQgetvalue(res, 0, 0), p->email) != 0);
    PQclear(res);

    struct sbuf tags = {0};
    util_pg_text_array(&tags, p->tags, p->n_tags);
    const char *v[] = {shop, p->customer_id, p->email, p->first_name, p->last_name,
                       p->phone, sbuf_str(&tags)};
    res = apply_q(c, SQL_CUSTOMER_UPSERT, 7, v, err);
    sbuf_free(&tags);
    if (!res)
        return B2BD_ERR_DB;
    int created = PQgetvalue(res, 0, 0)[0] == 't';
    int is_contact = PQgetvalue(res, 0, 1)[0] == 't';
    PQclear(res);
    if (email_changed && is_contact)
        apply_touch(c, p->customer_id);
    json_object_set_new(c->result, "customer_id", json_string(p->customer_id));
    json_object_set_new(c->result, "created", json_boolean(created));
    return B2BD_OK;
}

static const char SQL_CUSTOMER_EXISTS[] =
    "SELECT 1 FROM customers WHERE shop_id = $1 AND customer_id = $2";
static const char SQL_LOCATION_OF[] =
    "SELECT company_id FROM locations WHERE shop_id = $1 AND location_id = $2";
static const char SQL_COMPANY_EXISTS[] =
    "SELECT 1 FROM companies WHERE shop_id = $1 AND company_id = $2";
/* A migrated order keeps the company and location it was migrated to, and its
 * customer: the one whose revoke with remove_migrated_orders reverts it. */
static const char SQL_ORDER_UPSERT[] =
    "INSERT INTO orders AS o (shop_id, order_id, customer_id, status, company_id, location_id,"
    "  placed_at, total, currency)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7::timestamptz, $8::numeric, $9)"
    " ON CONFLICT (shop_id, order_id) DO UPDATE SET"
    "  customer_id = CASE WHEN o.migrated_by IS NULL THEN EXCLUDED.customer_id ELSE o.customer_id END,"
    "  status = EXCLUDED.status,"
    "  company_id = CASE WHEN o.migrated_by IS NULL THEN EXCLUDED.company_id ELSE o.company_id END,"
    "  location_id = CASE WHEN o.migrated_by IS NULL THEN EXCLUDED.location_id ELSE o.location_id END,"
    "  placed_at = EXCLUDED.placed_at, total = EXCLUDED.total, currency = EXCLUDED.currency,"
    "  updated_at = now()"
    " RETURNING (xmax = 0), migrated_by IS NOT NULL";

enum b2bd_code apply_order_upsert(struct apply_cmd *c, struct b2bd_err *err)
{
    const struct b2bd_order_upsert *p = &c->cmd->u.order;
    const char *shop = c->cmd->shop_id;
    const char *cv[] = {shop, p->customer_id};
    PGresult *res = apply_q(c, SQL_CUSTOMER_EXISTS, 2, cv, err);
    if (!res)
        return B2BD_ERR_DB;
    int found = PQntuples(res) > 0;
    PQclear(res);
    if (!found)
        return b2bd_err_set(err, B2BD_NOT_FOUND, "payload.customer_id",
                            "no customer with this id in the shop");
    if (p->company_id) {
        const char *kv[] = {shop, p->company_id};
        if (!(res = apply_q(c, SQL_COMPANY_EXISTS, 2, kv, err)))
            return B2BD_ERR_DB;
        found = PQntuples(res) > 0;
        PQclear(res);
        if (!found)
            return b2bd_err_set(err, B2BD_NOT_FOUND, "payload.company_id",
                                "no company with this id in the shop");
        const char *lv[] = {shop, p->location_id};
        if (!(res = apply_q(c, SQL_LOCATION_OF, 2, lv, err)))
            return B2BD_ERR_DB;
        found = PQntuples(res) > 0 && strcmp(PQgetvalue(res, 0, 0), p->company_id) == 0;
        PQclear(res);
        if (!found)
            return b2bd_err_set(err, B2BD_NOT_FOUND, "payload.location_id",
                                "no location with this id in the company");
    }
    const char *v[] = {shop, p->order_id, p->customer_id, decode_order_status_name(p->status),
                       p->company_id, p->location_id, p->placed_at, p->total, p->currency};
    if (!(res = apply_q(c, SQL_ORDER_UPSERT, 9, v, err)))
        return B2BD_ERR_DB;
    json_object_set_new(c->result, "order_id", json_string(p->order_id));
    json_object_set_new(c->result, "created", json_boolean(PQgetvalue(res, 0, 0)[0] == 't'));
    json_object_set_new(c->result, "migrated", json_boolean(PQgetvalue(res, 0, 1)[0] == 't'));
    PQclear(res);
    return B2BD_OK;
}
