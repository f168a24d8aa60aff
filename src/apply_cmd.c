/* apply_cmd: the state of one command being applied, and the queries the apply_<command>
 * modules run with it. */
#include "apply_cmd.h"

#include <stdlib.h>
#include <string.h>

PGresult *apply_q(struct apply_cmd *c, const char *sql, int n, const char *const *v,
                  struct b2bd_err *err)
{
    return db_query(c->db, sql, n, v, NULL, NULL, err);
}

PGresult *apply_q_rejectable(struct apply_cmd *c, const char *sql, int n, const char *const *v,
                             enum b2bd_code *code, struct b2bd_err *err)
{
    PGresult *res = apply_q(c, sql, n, v, err);
    *code = B2BD_OK;
    if (res)
        return res;
    if (!db_sqlstate_is(c->db, "B2B01")) {
        *code = B2BD_ERR_DB;
        return NULL;
    }
    *code = b2bd_err_set(err, b2bd_code_from_name(c->db->err_detail),
                         c->db->err_hint[0] ? c->db->err_hint : NULL, "%s", c->db->err_message);
    return NULL;
}

static const char SQL_COMPANY_OF_SHOP[] =
    "SELECT 1 FROM companies WHERE shop_id = $1 AND company_id = $2";
static const char SQL_CUSTOMER_OF_SHOP[] =
    "SELECT 1 FROM customers WHERE shop_id = $1 AND customer_id = $2";
static const char SQL_CONTACT_OF_COMPANY[] =
    "SELECT 1 FROM contacts WHERE shop_id = $1 AND company_id = $2 AND customer_id = $3";

enum b2bd_code apply_exists(struct apply_cmd *c, const char *sql, int n, const char *const *v,
                            int *found, struct b2bd_err *err)
{
    PGresult *res = apply_q(c, sql, n, v, err);
    if (!res)
        return B2BD_ERR_DB;
    *found = PQntuples(res) > 0;
    PQclear(res);
    return B2BD_OK;
}

enum b2bd_code apply_check_contact(struct apply_cmd *c, const char *company, const char *customer,
                                   struct b2bd_err *err)
{
    const char *v[] = {c->cmd->shop_id, company, customer};
    const char *cv[] = {c->cmd->shop_id, customer};
    int found;
    enum b2bd_code code;
    if ((code = apply_exists(c, SQL_COMPANY_OF_SHOP, 2, v, &found, err)) != B2BD_OK)
        return code;
    if (!found)
        return b2bd_err_set(err, B2BD_NOT_FOUND, "payload.company_id", "no company with this id in the shop");
    if ((code = apply_exists(c, SQL_CUSTOMER_OF_SHOP, 2, cv, &found, err)) != B2BD_OK)
        return code;
    if (!found)
        return b2bd_err_set(err, B2BD_NOT_FOUND, "payload.customer_id", "no customer with this id in the shop");
    if ((code = apply_exists(c, SQL_CONTACT_OF_COMPANY, 3, v, &found, err)) != B2BD_OK)
        return code;
    if (!found)
        return b2bd_err_set(err, B2BD_NOT_A_CONTACT, "payload.customer_id",
                            "the customer is not a contact of the company");
    return B2BD_OK;
}

void apply_touch(struct apply_cmd *c, const char *customer_id)
{
    for (size_t i = 0; i < c->n_touched; i++)
        if (strcmp(c->touched[i], customer_id) == 0)
            return;
    if (c->n_touched == c->cap_touched) {
        c->cap_touched = c->cap_touched ? c->cap_touched * 2 : 4;
        c->touched = realloc(c->touched, c->cap_touched * sizeof *c->touched);
        if (!c->touched)
            abort();
    }
    c->touched[c->n_touched++] = strdup(customer_id);
}

void apply_cmd_reset(struct apply_cmd *c)
{
    for (size_t i = 0; i < c->n_touched; i++)
        free(c->touched[i]);
    c->n_touched = 0;
    json_decref(c->result);
    c->result = NULL;
}
