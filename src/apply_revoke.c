/* apply_revoke: the revoke command: roles at locations, all roles, or the whole contact. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply_revoke.h"
#include "apply_migrate.h"
#include "b2bd/util.h"

static const char SQL_LOCATIONS_OF[] =
    "SELECT location_id FROM locations"
    " WHERE shop_id = $1 AND company_id = $2 AND location_id = ANY ($3::text[])";
static const char SQL_DROP_ROLES_AT[] =
    "DELETE FROM roles WHERE shop_id = $1 AND company_id = $2 AND customer_id = $3"
    " AND location_id = ANY ($4::text[]) RETURNING location_id, role";
static const char SQL_DROP_ROLES[] =
    "DELETE FROM roles WHERE shop_id = $1 AND company_id = $2 AND customer_id = $3"
    " RETURNING location_id, role";
/* Locks the contact row: revokes of one contact take turns (two keyed apart, or two
 * instances during a rebalance), and one that waited for another that removed the
 * contact finds none, as if it came after it. */
static const char SQL_LOCK_CONTACT[] =
    "SELECT 1 FROM contacts WHERE shop_id = $1 AND company_id = $2 AND customer_id = $3"
    " FOR UPDATE";
/* Removes the contact and frees a seat for each row removed; returns that number. */
static const char SQL_DROP_CONTACT[] =
    "WITH gone AS (DELETE FROM contacts WHERE shop_id = $1 AND company_id = $2 AND customer_id = $3"
    "  RETURNING 1)"
    " UPDATE companies SET contact_count = contact_count - (SELECT count(*) FROM gone)"
    " WHERE shop_id = $1 AND company_id = $2 RETURNING (SELECT count(*) FROM gone)";

static int in_result(PGresult *res, const char *id)
{
    for (int i = 0; i < PQntuples(res); i++)
        if (strcmp(PQgetvalue(res, i, 0), id) == 0)
            return 1;
    return 0;
}

static int cmp_role(const void *a, const void *b)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "location_id")),
                  json_string_value(json_object_get(*(json_t *const *)b, "location_id")));
}

/* The removed roles as [{location_id, role}], sorted by location. */
static json_t *removed_roles(PGresult *res)
{
    int n = PQntuples(res);
    json_t **v = malloc((size_t)(n ? n : 1) * sizeof *v);
    if (!v)
        abort();
    for (int i = 0; i < n; i++)
        v[i] = json_pack("{ssss}", "location_id", PQgetvalue(res, i, 0), "role", PQgetvalue(res, i, 1));
    qsort(v, (size_t)n, sizeof *v, cmp_role);
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, v[i]);
    free(v);
    return a;
}

/* scope locations: every listed location must be the company's. */
static enum b2bd_code revoke_check_locations(struct apply_cmd *c, const struct b2bd_revoke *p,
                                             const char *arr, struct b2bd_err *err)
{
    const char *v[] = {c->cmd->shop_id, p->company_id, arr};
    PGresult *res = apply_q(c, SQL_LOCATIONS_OF, 3, v, err);
    if (!res)
        return B2BD_ERR_DB;
    enum b2bd_code code = B2BD_OK;
    for (size_t i = 0; i < p->n_location_ids && code == B2BD_OK; i++) {
        if (!in_result(res, p->location_ids[i])) {
            char field[64];
            snprintf(field, sizeof field, "payload.location_ids[%zu]", i);
            code = b2bd_err_set(err, B2BD_NOT_FOUND, field, "no location with this id in the company");
        }
    }
    PQclear(res);
    return code;
}

enum b2bd_code apply_revoke(struct apply_cmd *c, struct b2bd_err *err)
{
    const struct b2bd_revoke *p = &c->cmd->u.revoke;
    const char *shop = c->cmd->shop_id;
    const char *tv[] = {shop, p->company_id, p->customer_id};
    enum b2bd_code code = apply_check_contact(c, p->company_id, p->customer_id, err);
    if (code != B2BD_OK)
        return code;
    int found;
    if ((code = apply_exists(c, SQL_LOCK_CONTACT, 3, tv, &found, err)) != B2BD_OK)
        return code;
    if (!found)
        return b2bd_err_set(err, B2BD_NOT_A_CONTACT, "payload.customer_id",
                            "the customer is not a contact of the company");

    struct sbuf arr = {0};
    PGresult *res;
    json_t *not_held = json_array();
    if (p->scope == SCOPE_LOCATIONS) {
        util_pg_text_array(&arr, p->location_ids, p->n_location_ids);
        code = revoke_check_locations(c, p, sbuf_str(&arr), err);
        if (code != B2BD_OK) {
            sbuf_free(&arr);
            json_decref(not_held);
            return code;
        }
        const char *v[] = {shop, p->company_id, p->customer_id, sbuf_str(&arr)};
        res = apply_q(c, SQL_DROP_ROLES_AT, 4, v, err);
        if (res)
            for (size_t i = 0; i < p->n_location_ids; i++)
                if (!in_result(res, p->location_ids[i]))
                    json_array_append_new(not_held, json_string(p->location_ids[i]));
    } else {
        res = apply_q(c, SQL_DROP_ROLES, 3, tv, err);
    }
    sbuf_free(&arr);
    if (!res) {
        json_decref(not_held);
        return B2BD_ERR_DB;
    }
    json_t *removed = removed_roles(res);
    PQclear(res);

    int contact_removed = 0;
    json_t *reverted = json_array();
    if (p->scope == SCOPE_COMPANY) {
        res = apply_q(c, SQL_DROP_CONTACT, 3, tv, err);
        if (res)
            contact_removed = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "0") != 0;
        else
            code = B2BD_ERR_DB;
        PQclear(res);
        if (code == B2BD_OK && p->remove_migrated_orders) {
            json_decref(reverted);
            reverted = NULL;
            code = apply_revert_migration(c, p->company_id, p->customer_id, &reverted, err);
        }
    }
    if (code != B2BD_OK) {
        json_decref(removed);
        json_decref(not_held);
        json_decref(reverted);
        return code;
    }
    if (contact_removed || json_array_size(removed) > 0)
        apply_touch(c, p->customer_id);
    json_object_set_new(c->result, "customer_id", json_string(p->customer_id));
    json_object_set_new(c->result, "removed_roles", removed);
    json_object_set_new(c->result, "not_held", not_held);
    json_object_set_new(c->result, "contact_removed", json_boolean(contact_removed));
    json_object_set_new(c->result, "reverted_order_ids", reverted);
    return B2BD_OK;
}
