/* apply_privacy: customer.merge, customer.data_request, customer.redact and shop.redact
 * (CONTRACT.md, "Privacy, profiles and audit"). Their rules run in SQL functions
 * (sql/functions/privacy.sql and merge.sql), one round trip each; b2bd builds the export
 * message and redacts the stored results, which are JSON it wrote. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "apply_privacy.h"
#include "apply_json.h"
#include "b2bd/outbox.h"
#include "b2bd/util.h"

/* Loads the JSON text a function returned; only memory can be missing. */
/* ---- customer.merge ---------------------------------------------------------------- */

static const char SQL_MERGE[] = "SELECT b2bd_customer_merge($1, $2, $3)";

enum b2bd_code apply_customer_merge(struct apply_cmd *c, struct b2bd_err *err)
{
    const struct b2bd_customer_merge *p = &c->cmd->u.merge;
    const char *v[] = {c->cmd->shop_id, p->customer_id, p->merge_customer_id};
    enum b2bd_code code;
    PGresult *res = apply_q_rejectable(c, SQL_MERGE, 3, v, &code, err);
    if (!res)
        return code;
    json_t *r = apply_load(PQgetvalue(res, 0, 0));
    PQclear(res);
    json_object_update(c->result, r);
    json_decref(r);
    return B2BD_OK;
}

/* ---- customer.data_request ------------------------------------------------------- */

static const char SQL_EXPORT[] =
    "SELECT b2bd_customer_export($1, $2, $3, $4, $5, $6)::text, lower($3)";

/* Runs one of the SQL functions about a command's subject (by customer_id or email),
 * given (shop, customer_id, email, command_id, a new event_id, now); event_id is set. */
static PGresult *subject_call(struct apply_cmd *c, const char *sql, char event_id[37],
                              enum b2bd_code *code, struct b2bd_err *err)
{
    const struct b2bd_customer_ref *p = &c->cmd->u.subject;
    char now[32];
    util_uuid_v4(event_id);
    util_now_rfc3339(now);
    const char *v[] = {c->cmd->shop_id, p->customer_id, p->email, c->cmd->command_id,
                       event_id, now};
    return apply_q_rejectable(c, sql, 6, v, code, err);
}

enum b2bd_code apply_customer_data_request(struct apply_cmd *c, struct b2bd_err *err)
{
    const struct b2bd_customer_ref *p = &c->cmd->u.subject;
    char event_id[37];
    enum b2bd_code code;
    PGresult *res = subject_call(c, SQL_EXPORT, event_id, &code, err);
    if (!res)
        return code;
    json_t *doc = apply_load(PQgetvalue(res, 0, 0));
    struct sbuf key = {0};
    sbuf_addf(&key, "%s/%s", c->cmd->shop_id, p->customer_id ? p->customer_id : PQgetvalue(res, 0, 1));
    PQclear(res);
    char *text = apply_dump(doc);
    json_object_set_new(c->result, "customer_id", json_incref(json_object_get(doc, "customer_id")));
    json_object_set_new(c->result, "export_event_id", json_string(event_id));
    json_decref(doc);
    size_t len = strlen(text);
    if ((long)len > c->cfg->max_message_bytes) {
        code = b2bd_err_set(err, B2BD_LIMIT_REACHED,
                            p->customer_id ? "payload.customer_id" : "payload.email",
                            "the customer's data export would be %zu bytes, over the limit of %ld",
                            len, c->cfg->max_message_bytes);
    } else if (outbox_append(c->db, OUTBOX_PRIVACY, key.s, key.len, text, len, NULL, err) < 0) {
        code = B2BD_ERR_DB;
    }
    free(text);
    sbuf_free(&key);
    return code;
}

/* ---- customer.redact ----------------------------------------------------------------- */

static const char SQL_REDACT[] = "SELECT b2bd_customer_redact($1, $2, $3, $4, $5, $6)::text";
/* stored results that may name the customer: its id or its email, as JSON strings */
static const char SQL_RESULTS_OF[] =
    "SELECT command_id, result FROM commands WHERE shop_id = $1"
    " AND (strpos(result, $2) > 0 OR strpos(lower(result), lower($3)) > 0)";
static const char SQL_RESULT_SET[] = "UPDATE commands SET result = $2 WHERE command_id = $1";

struct subject {
    const char *id;
    const char *email; /* may be NULL */
    bool id_is_email;
};

static bool is_email(const struct subject *s, const char *v)
{
    return s->email && strcasecmp(v, s->email) == 0;
}

/* Takes the customer's personal data out of a stored result's `result`: a
 * customer_id that is the email, any value that is the email, and the rendered email
 * of a preview for the customer. Returns the number of values removed. */
static int redact_node(json_t *n, const struct subject *s)
{
    int changed = 0;
    if (json_is_object(n)) {
        const char *cid = json_string_value(json_object_get(n, "customer_id"));
        if (cid && strcmp(cid, s->id) == 0 && json_object_get(n, "to")) {
            static const char *const rendered[] = {"to", "subject", "text", "html"};
            for (size_t i = 0; i < 4; i++)
                if (json_object_get(n, rendered[i]) && !json_is_null(json_object_get(n, rendered[i]))) {
                    json_object_set_new(n, rendered[i], json_null());
                    changed++;
                }
        }
        const char *k;
        json_t *v;
        json_object_foreach(n, k, v) {
            const char *str = json_string_value(v);
            bool names_id = (strcmp(k, "customer_id") == 0 || strcmp(k, "merged_customer_id") == 0)
                            && str && strcmp(str, s->id) == 0;
            if (str && ((names_id && s->id_is_email) || is_email(s, str))) {
                json_object_set_new(n, k, json_null());
                changed++;
            } else if (!str) {
                changed += redact_node(v, s);
            }
        }
    } else if (json_is_array(n)) {
        for (size_t i = 0; i < json_array_size(n); i++) {
            json_t *v = json_array_get(n, i);
            const char *str = json_string_value(v);
            if (str && is_email(s, str)) {
                json_array_set_new(n, i, json_null());
                changed++;
            } else if (!str) {
                changed += redact_node(v, s);
            }
        }
    }
    return changed;
}

static char *json_quoted(const char *s)
{
    json_t *j = json_string(s);
    char *out = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (!out)
        abort();
    return out;
}

/* Redacts the shop's stored results that name the customer. */
static enum b2bd_code redact_results(struct apply_cmd *c, const struct subject *s,
                                     struct b2bd_err *err)
{
    char *qid = json_quoted(s->id), *qemail = s->email ? json_quoted(s->email) : NULL;
    const char *v[] = {c->cmd->shop_id, qid, qemail};
    PGresult *res = apply_q(c, SQL_RESULTS_OF, 3, v, err);
    free(qid);
    free(qemail);
    if (!res)
        return B2BD_ERR_DB;
    enum b2bd_code code = B2BD_OK;
    for (int i = 0; i < PQntuples(res) && code == B2BD_OK; i++) {
        json_t *m = json_loads(PQgetvalue(res, i, 1), 0, NULL);
        json_t *r = json_object_get(m, "result");
        if (r && redact_node(r, s) > 0) {
            char *text = apply_dump(m);
            const char *uv[] = {PQgetvalue(res, i, 0), text};
            PGresult *u = apply_q(c, SQL_RESULT_SET, 2, uv, err);
            if (!u)
                code = B2BD_ERR_DB;
            PQclear(u);
            free(text);
        }
        json_decref(m);
    }
    PQclear(res);
    return code;
}

enum b2bd_code apply_customer_redact(struct apply_cmd *c, struct b2bd_err *err)
{
    char event_id[37];
    enum b2bd_code code;
    PGresult *res = subject_call(c, SQL_REDACT, event_id, &code, err);
    if (!res)
        return code;
    json_t *r = apply_load(PQgetvalue(res, 0, 0));
    PQclear(res);
    struct subject s = {.id = json_string_value(json_object_get(r, "customer_id")),
                        .email = json_string_value(json_object_get(r, "email")),
                        .id_is_email = json_is_true(json_object_get(r, "id_is_email"))};
    code = redact_results(c, &s, err);
    json_object_set_new(c->result, "customer_id", s.id_is_email ? json_null() : json_string(s.id));
    json_object_set_new(c->result, "erased", json_incref(json_object_get(r, "erased")));
    json_decref(r);
    return code;
}

/* ---- shop.redact --------------------------------------------------------------------- */

static const char SQL_SHOP_REDACT[] = "SELECT b2bd_shop_redact($1)";

enum b2bd_code apply_shop_redact(struct apply_cmd *c, struct b2bd_err *err)
{
    const char *v[] = {c->cmd->shop_id};
    PGresult *res = apply_q(c, SQL_SHOP_REDACT, 1, v, err);
    if (!res)
        return B2BD_ERR_DB;
    json_t *r = apply_load(PQgetvalue(res, 0, 0));
    PQclear(res);
    json_object_update(c->result, r);
    json_decref(r);
    return B2BD_OK;
}
