/* apply_migrate: moving a customer's D2C order history to a location (migrate, and assign's migrate_orders_to). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply_migrate.h"
#include "b2bd/util.h"

static const char SQL_LOCATION_IN[] =
    "SELECT 1 FROM locations WHERE shop_id = $1 AND location_id = $2 AND company_id = $3";
static const char SQL_ROLE_AT[] =
    "SELECT 1 FROM roles WHERE shop_id = $1 AND company_id = $2 AND customer_id = $3"
    " AND location_id = $4";
/* The binding row is locked: two migrations of one customer take turns. */
static const char SQL_BINDING[] =
    "SELECT location_id FROM order_migrations"
    " WHERE shop_id = $1 AND company_id = $2 AND customer_id = $3 FOR UPDATE";
static const char SQL_BIND[] =
    "INSERT INTO order_migrations (shop_id, company_id, customer_id, location_id, command_id)"
    " VALUES ($1, $2, $3, $4, $5)";
/* Row locks on the orders: an order.upsert of the same order waits, then keeps the
 * company and location (it never changes those of a migrated order). */
static const char SQL_MOVE[] =
    "UPDATE orders SET company_id = $2, location_id = $3, migrated_by = $5, migrated_at = now(),"
    "  updated_at = now()"
    " WHERE shop_id = $1 AND customer_id = $4 AND company_id IS NULL"
    "  AND status NOT IN ('cancelled', 'deleted')"
    " RETURNING order_id";
/* What stays, by reason; orders migrated into this company before are not counted. */
static const char SQL_SKIPPED[] =
    "SELECT count(*) FILTER (WHERE company_id IS NOT NULL),"
    "       count(*) FILTER (WHERE company_id IS NULL AND status = 'cancelled'),"
    "       count(*) FILTER (WHERE company_id IS NULL AND status = 'deleted')"
    " FROM orders WHERE shop_id = $1 AND customer_id = $2"
    "  AND NOT (migrated_by IS NOT NULL AND company_id = $3)";

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first column of res as a JSON array of strings, sorted: a stable order for readers. */
static json_t *ids_sorted(PGresult *res)
{
    int n = PQntuples(res);
    const char **v = malloc((size_t)(n ? n : 1) * sizeof *v);
    if (!v)
        abort();
    for (int i = 0; i < n; i++)
        v[i] = PQgetvalue(res, i, 0);
    qsort(v, (size_t)n, sizeof *v, cmp_str);
    json_t *ids = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(ids, json_string(v[i]));
    free(v);
    return ids;
}

enum b2bd_code apply_migration(struct apply_cmd *c, const char *company, const char *location,
                               const char *customer, const char *location_field,
                               json_t **out, struct b2bd_err *err)
{
    const char *shop = c->cmd->shop_id;
    int found;
    const char *bv[] = {shop, company, customer};
    PGresult *res = apply_q(c, SQL_BINDING, 3, bv, err);
    if (!res)
        return B2BD_ERR_DB;
    int bound = PQntuples(res) > 0;
    if (bound && strcmp(PQgetvalue(res, 0, 0), location) != 0) {
        b2bd_err_set(err, B2BD_ALREADY_MIGRATED, location_field,
                     "the customer's order history went to location %.*s of this company",
                     util_utf8_prefix(PQgetvalue(res, 0, 0), 100), PQgetvalue(res, 0, 0));
        PQclear(res);
        return B2BD_ALREADY_MIGRATED;
    }
    PQclear(res);
    if (!bound) {
        const char *v[] = {shop, company, customer, location, c->cmd->command_id};
        enum b2bd_code code = apply_exists(c, SQL_BIND, 5, v, &found, err);
        if (code != B2BD_OK)
            return code;
    }
    const char *mv[] = {shop, company, location, customer, c->cmd->command_id};
    if (!(res = apply_q(c, SQL_MOVE, 5, mv, err)))
        return B2BD_ERR_DB;
    json_t *ids = ids_sorted(res);
    PQclear(res);
    const char *sv[] = {shop, customer, company};
    if (!(res = apply_q(c, SQL_SKIPPED, 3, sv, err))) {
        json_decref(ids);
        return B2BD_ERR_DB;
    }
    json_t *skipped = json_pack("{sIsIsI}", "b2b", (json_int_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10),
                                "cancelled", (json_int_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10),
                                "deleted", (json_int_t)strtoll(PQgetvalue(res, 0, 2), NULL, 10));
    PQclear(res);
    *out = json_pack("{sssssoso}", "customer_id", customer, "location_id", location,
                     "migrated_order_ids", ids, "skipped", skipped);
    return B2BD_OK;
}

json_t *apply_orders_migrated_record(const char *company, const json_t *migration)
{
    return json_pack("{sOsssOsO}", "customer_id", json_object_get(migration, "customer_id"),
                     "company_id", company, "location_id", json_object_get(migration, "location_id"),
                     "order_ids", json_object_get(migration, "migrated_order_ids"));
}

enum b2bd_code apply_migrate(struct apply_cmd *c, struct b2bd_err *err)
{
    const struct b2bd_migrate *p = &c->cmd->u.migrate;
    int found;
    enum b2bd_code code = apply_check_contact(c, p->company_id, p->customer_id, err);
    if (code != B2BD_OK)
        return code;
    const char *lv[] = {c->cmd->shop_id, p->location_id, p->company_id};
    if ((code = apply_exists(c, SQL_LOCATION_IN, 3, lv, &found, err)) != B2BD_OK)
        return code;
    if (!found)
        return b2bd_err_set(err, B2BD_NOT_FOUND, "payload.location_id", "no location with this id in the company");
    const char *tv[] = {c->cmd->shop_id, p->company_id, p->customer_id, p->location_id};
    if ((code = apply_exists(c, SQL_ROLE_AT, 4, tv, &found, err)) != B2BD_OK)
        return code;
    if (!found)
        return b2bd_err_set(err, B2BD_NO_LOCATION_ACCESS, "payload.location_id",
                            "the customer holds no role at this location");
    json_t *m = NULL;
    code = apply_migration(c, p->company_id, p->location_id, p->customer_id, "payload.location_id", &m, err);
    if (code != B2BD_OK)
        return code;
    json_object_update(c->result, m);
    json_object_set_new(c->result, "orders.migrated", apply_orders_migrated_record(p->company_id, m));
    json_decref(m);
    return B2BD_OK;
}

/* Used by revoke with remove_migrated_orders. */
static const char SQL_REVERT[] =
    "UPDATE orders SET company_id = NULL, location_id = NULL, migrated_by = NULL,"
    "  migrated_at = NULL, updated_at = now()"
    " WHERE shop_id = $1 AND customer_id = $2 AND company_id = $3 AND migrated_by IS NOT NULL"
    " RETURNING order_id";
static const char SQL_UNBIND[] =
    "DELETE FROM order_migrations WHERE shop_id = $1 AND company_id = $2 AND customer_id = $3";

enum b2bd_code apply_revert_migration(struct apply_cmd *c, const char *company, const char *customer,
                                      json_t **reverted, struct b2bd_err *err)
{
    const char *shop = c->cmd->shop_id;
    const char *v[] = {shop, customer, company};
    PGresult *res = apply_q(c, SQL_REVERT, 3, v, err);
    if (!res)
        return B2BD_ERR_DB;
    json_t *ids = ids_sorted(res);
    PQclear(res);
    const char *uv[] = {shop, company, customer};
    if (!(res = apply_q(c, SQL_UNBIND, 3, uv, err))) {
        json_decref(ids);
        return B2BD_ERR_DB;
    }
    PQclear(res);
    *reverted = ids;
    return B2BD_OK;
}
