/* apply_shop: the upserts as the contract's privacy section extends them: an optional
 * source_updated_at (a stale upsert changes nothing), and shop.settings events on
 * events.shops after each shop.upsert that changes something. The upserts themselves
 * are apply_sync.c's. */
#include <stdlib.h>
#include <string.h>

#include "apply_shop.h"
#include "apply_json.h"
#include "apply_sync.h"
#include "b2bd/outbox.h"
#include "b2bd/util.h"

static const char SQL_STALE[] =
    "SELECT $4::timestamptz < source_updated_at FROM source_versions"
    " WHERE shop_id = $1 AND kind = $2 AND record_id = $3";
static const char SQL_SOURCE_SET[] =
    "INSERT INTO source_versions AS s (shop_id, kind, record_id, source_updated_at)"
    " VALUES ($1, $2, $3, $4::timestamptz)"
    " ON CONFLICT (shop_id, kind, record_id) DO UPDATE"
    " SET source_updated_at = greatest(s.source_updated_at, EXCLUDED.source_updated_at)";

/* *stale = 1 when `at` is strictly older than what is stored for the record. */
static enum b2bd_code stale_check(struct apply_cmd *c, const char *kind, const char *record,
                                  const char *at, int *stale, struct b2bd_err *err)
{
    *stale = 0;
    if (!at)
        return B2BD_OK;
    const char *v[] = {c->cmd->shop_id, kind, record, at};
    PGresult *res = apply_q(c, SQL_STALE, 4, v, err);
    if (!res)
        return B2BD_ERR_DB;
    *stale = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    return B2BD_OK;
}

static enum b2bd_code stale_record(struct apply_cmd *c, const char *kind, const char *record,
                                   const char *at, struct b2bd_err *err)
{
    if (!at)
        return B2BD_OK;
    const char *v[] = {c->cmd->shop_id, kind, record, at};
    PGresult *res = apply_q(c, SQL_SOURCE_SET, 4, v, err);
    if (!res)
        return B2BD_ERR_DB;
    PQclear(res);
    return B2BD_OK;
}

/* Applies fn unless the upsert is stale; a stale one gets `result` (taken) with
 * "created": false and "stale": true. */
static enum b2bd_code tracked(struct apply_cmd *c, const char *kind, const char *record,
                              const char *at, apply_fn fn, json_t *stale_result,
                              struct b2bd_err *err)
{
    int stale;
    enum b2bd_code code = stale_check(c, kind, record, at, &stale, err);
    if (code == B2BD_OK && stale) {
        json_object_update(c->result, stale_result);
        json_object_set_new(c->result, "stale", json_true());
    } else if (code == B2BD_OK && (code = fn(c, err)) == B2BD_OK) {
        code = stale_record(c, kind, record, at, err);
    }
    json_decref(stale_result);
    return code;
}

enum b2bd_code apply_company_upsert_tracked(struct apply_cmd *c, struct b2bd_err *err)
{
    const struct b2bd_company_upsert *p = &c->cmd->u.company;
    return tracked(c, "company", p->company_id, p->source_updated_at, apply_company_upsert,
                   json_pack("{sssbs[]s[]}", "company_id", p->company_id, "created", 0,
                             "locations_added", "locations_renamed"),
                   err);
}

enum b2bd_code apply_customer_upsert_tracked(struct apply_cmd *c, struct b2bd_err *err)
{
    const struct b2bd_customer_upsert *p = &c->cmd->u.customer;
    return tracked(c, "customer", p->customer_id, p->source_updated_at, apply_customer_upsert,
                   json_pack("{sssb}", "customer_id", p->customer_id, "created", 0), err);
}

enum b2bd_code apply_order_upsert_tracked(struct apply_cmd *c, struct b2bd_err *err)
{
    const struct b2bd_order_upsert *p = &c->cmd->u.order;
    return tracked(c, "order", p->order_id, p->source_updated_at, apply_order_upsert,
                   json_pack("{sssb}", "order_id", p->order_id, "created", 0), err);
}

/* ---- shop.upsert and shop.settings ------------------------------------------------ */

static const char SQL_SHOP_BEFORE[] =
    "SELECT row(name, account_url, from_email, staff_email, b2b_only)::text FROM shops"
    " WHERE shop_id = $1";
/* the settings' version grows when the upsert changed them (or created the shop) */
static const char SQL_SHOP_BUMP[] =
    "UPDATE shops SET settings_version = settings_version + 1 WHERE shop_id = $1"
    " AND row(name, account_url, from_email, staff_email, b2b_only)::text IS DISTINCT FROM $2"
    " RETURNING settings_version, name, account_url, b2b_only";

/* Publishes shop.settings if the upsert changed the shop (before: its settings' text
 * before, NULL for a new shop). */
static enum b2bd_code shop_event(struct apply_cmd *c, const char *before, struct b2bd_err *err)
{
    const char *shop = c->cmd->shop_id;
    const char *v[] = {shop, before};
    PGresult *res = apply_q(c, SQL_SHOP_BUMP, 2, v, err);
    if (!res)
        return B2BD_ERR_DB;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return B2BD_OK; /* nothing changed: no event */
    }
    char event_id[37], now[32];
    util_uuid_v4(event_id);
    util_now_rfc3339(now);
    json_t *m = json_object();
    json_object_set_new(m, "event_id", json_string(event_id));
    json_object_set_new(m, "type", json_string("shop.settings"));
    json_object_set_new(m, "shop_id", json_string(shop));
    json_object_set_new(m, "name", json_string(PQgetvalue(res, 0, 1)));
    json_object_set_new(m, "account_url",
                        PQgetisnull(res, 0, 2) ? json_null() : json_string(PQgetvalue(res, 0, 2)));
    json_object_set_new(m, "b2b_only", json_boolean(PQgetvalue(res, 0, 3)[0] == 't'));
    json_object_set_new(m, "version", json_integer(strtoll(PQgetvalue(res, 0, 0), NULL, 10)));
    json_object_set_new(m, "caused_by", json_string(c->cmd->command_id));
    json_object_set_new(m, "actor", apply_jstr(c->cmd->actor));
    json_object_set_new(m, "occurred_at", json_string(now));
    PQclear(res);
    char *text = apply_dump(m);
    json_decref(m);
    int rc = outbox_append(c->db, OUTBOX_SHOPS, shop, strlen(shop), text, strlen(text), NULL, err);
    free(text);
    return rc < 0 ? B2BD_ERR_DB : B2BD_OK;
}

enum b2bd_code apply_shop_upsert_tracked(struct apply_cmd *c, struct b2bd_err *err)
{
    const struct b2bd_shop_upsert *p = &c->cmd->u.shop;
    int stale;
    enum b2bd_code code = stale_check(c, "shop", "", p->source_updated_at, &stale, err);
    if (code != B2BD_OK)
        return code;
    if (stale) {
        json_object_set_new(c->result, "shop_id", json_string(c->cmd->shop_id));
        json_object_set_new(c->result, "created", json_false());
        json_object_set_new(c->result, "stale", json_true());
        return B2BD_OK;
    }
    const char *v[] = {c->cmd->shop_id};
    PGresult *res = apply_q(c, SQL_SHOP_BEFORE, 1, v, err);
    if (!res)
        return B2BD_ERR_DB;
    char *before = PQntuples(res) == 1 ? strdup(PQgetvalue(res, 0, 0)) : NULL;
    PQclear(res);
    if ((code = apply_shop_upsert(c, err)) == B2BD_OK && (code = shop_event(c, before, err)) == B2BD_OK)
        code = stale_record(c, "shop", "", p->source_updated_at, err);
    free(before);
    return code;
}
