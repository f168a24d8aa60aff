/* apply_notify: the B2B access email: notify (queue, preview, resend), assign's notify, template.update. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply_notify.h"
#include "apply_json.h"
#include "apply_limit.h"
#include "b2bd/email.h"
#include "b2bd/util.h"

/* The channel the notifiers listen on. */
#define NOTIFY_CHANNEL "b2bd_notify"

static const char SQL_SHOP[] =
    "SELECT name, account_url, from_email, staff_email FROM shops WHERE shop_id = $1";
static const char SQL_COMPANY[] =
    "SELECT name FROM companies WHERE shop_id = $1 AND company_id = $2";
static const char SQL_LOCATION[] =
    "SELECT name FROM locations WHERE shop_id = $1 AND company_id = $2 AND location_id = $3";
/* The state of every listed customer ($3, a JSON array of ids) in the company, in list
 * order, in one statement: a customer of the shop?, a contact?, name and email, the
 * roles in the company as [[location_id, location name, role]] (by name, then id), and
 * whether one is at location $4. One statement for any length of list, each id looked
 * up by key (OFFSET 0 keeps the lookups per id, whatever the size of the shop): a
 * notify of 100,000 ids costs one round trip, not three each. */
static const char SQL_STATES[] =
    "SELECT u.customer_id IS NOT NULL, coalesce(u.contact, false), u.first_name, u.last_name,"
    "  u.email, r.roles, coalesce(r.at_location, false), coalesce(u.suspended, false)"
    " FROM json_array_elements_text($3::json) WITH ORDINALITY AS x(id, n)"
    " LEFT JOIN LATERAL (SELECT u.customer_id, u.first_name, u.last_name, u.email,"
    "                           EXISTS (SELECT 1 FROM contacts k WHERE k.shop_id = $1"
    "                                      AND k.company_id = $2 AND k.customer_id = u.customer_id) AS contact,"
    "                           b2bd_suspended_in($1, $2, u.customer_id) AS suspended"
    "                      FROM customers u WHERE u.shop_id = $1 AND u.customer_id = x.id OFFSET 0) u ON true"
    " LEFT JOIN LATERAL (SELECT json_agg(json_build_array(o.location_id, l.name, o.role)"
    "                             ORDER BY l.name, o.location_id) AS roles,"
    "                           bool_or(o.location_id = $4) AS at_location"
    "                      FROM roles o"
    "                      JOIN locations l ON l.shop_id = o.shop_id AND l.location_id = o.location_id"
    "                     WHERE u.contact AND o.shop_id = $1 AND o.company_id = $2"
    "                       AND o.customer_id = u.customer_id) r ON true"
    " ORDER BY x.n";
enum { ST_FOUND, ST_CONTACT, ST_FIRST_NAME, ST_LAST_NAME, ST_EMAIL, ST_ROLES, ST_AT_LOCATION, ST_SUSPENDED };
static const char SQL_TEMPLATE[] =
    "SELECT version, subject, text, html FROM templates WHERE shop_id = $1";
static const char SQL_QUEUE[] =
    "INSERT INTO notifications (notification_id, shop_id, customer_id, company_id, location_id,"
    "  recipient, to_address, from_address, template_version, subject, body_text, body_html,"
    "  message_id, resend_of, command_id)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";
static const char SQL_WAKE[] = "SELECT pg_notify('" NOTIFY_CHANNEL "', '')";
static const char SQL_ORIGINAL[] =
    "SELECT customer_id, company_id, location_id, to_address, from_address, template_version,"
    "  subject, body_text, body_html, b2bd_suspended_in(shop_id, company_id, customer_id)"
    " FROM notifications"
    " WHERE shop_id = $1 AND notification_id = $2";
static const char SQL_TEMPLATE_SET[] =
    "INSERT INTO templates AS t (shop_id, version, subject, text, html, command_id)"
    " VALUES ($1, 1, $2, $3, $4, $5)"
    " ON CONFLICT (shop_id) DO UPDATE SET version = t.version + 1, subject = EXCLUDED.subject,"
    "  text = EXCLUDED.text, html = EXCLUDED.html, command_id = EXCLUDED.command_id,"
    "  updated_at = now()"
    " RETURNING version";

static const char *col(PGresult *res, int c)
{
    return res && PQntuples(res) > 0 && !PQgetisnull(res, 0, c) ? PQgetvalue(res, 0, c) : NULL;
}

/* A cell of a row, NULL for SQL NULL. */
static const char *cell(PGresult *res, int row, int c)
{
    return PQgetisnull(res, row, c) ? NULL : PQgetvalue(res, row, c);
}

/* The states of the n customers (SQL_STATES): one row each, in their order. */
static PGresult *contact_states(struct apply_cmd *c, const char *company, const char *location,
                                const char *const *customers, size_t n, struct b2bd_err *err)
{
    json_t *ids = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(ids, json_string(customers[i]));
    char *text = apply_dump(ids);
    json_decref(ids);
    const char *v[] = {c->cmd->shop_id, company, text, location};
    PGresult *res = apply_q(c, SQL_STATES, 4, v, err);
    free(text);
    if (res && PQntuples(res) != (int)n) {
        PQclear(res); /* cannot happen: one row per listed id */
        b2bd_err_set(err, B2BD_ERR_INTERNAL, NULL, "the customers' states came back incomplete");
        return NULL;
    }
    return res;
}

/* Why the email is not for the customer of row `row`, or B2BD_OK. */
static enum b2bd_code state_of(PGresult *states, int row, const char *location)
{
    if (PQgetvalue(states, row, ST_FOUND)[0] != 't')
        return B2BD_NOT_FOUND;
    if (PQgetvalue(states, row, ST_CONTACT)[0] != 't')
        return B2BD_NOT_A_CONTACT;
    if (PQgetvalue(states, row, ST_SUSPENDED)[0] == 't')
        return B2BD_SUSPENDED;
    if (PQgetisnull(states, row, ST_ROLES) ||
        (location && PQgetvalue(states, row, ST_AT_LOCATION)[0] != 't'))
        return B2BD_NO_LOCATION_ACCESS;
    return B2BD_OK;
}

/* What every email of one command shares: the shop, company and location rows (NULL
 * fields when not synced) and the template. */
struct email_env {
    PGresult *shop, *company, *location;
    struct email_template own;
    const struct email_template *t;
};

/* The template context of CONTRACT.md ("template.update": the names a template can use),
 * plus has_locations and several_locations; roles: the customer's row's roles. */
static json_t *email_context(const struct email_env *e, PGresult *states, int row)
{
    json_t *roles = json_loads(PQgetvalue(states, row, ST_ROLES), 0, NULL);
    json_t *locations = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(roles, i, r) {
        const char *name = json_string_value(json_array_get(r, 1));
        const char *role = json_string_value(json_array_get(r, 2));
        enum b2bd_role k = role && strcmp(role, "location_admin") == 0 ? ROLE_LOCATION_ADMIN
                                                                        : ROLE_ORDERING_ONLY;
        json_array_append_new(locations, json_pack("{ssssss}", "name", name ? name : "",
                                                   "role", role ? role : "",
                                                   "role_name", decode_role_label(k)));
    }
    json_decref(roles);
    size_t n = json_array_size(locations);
    json_t *ctx = json_pack("{s{soso}s{sososo}s{so}so s{si}sbsb}",
                            "shop", "name", apply_jstr(col(e->shop, 0)),
                            "account_url", apply_jstr(col(e->shop, 1)),
                            "customer", "first_name", apply_jstr(cell(states, row, ST_FIRST_NAME)),
                            "last_name", apply_jstr(cell(states, row, ST_LAST_NAME)),
                            "email", apply_jstr(cell(states, row, ST_EMAIL)),
                            "company", "name", apply_jstr(col(e->company, 0)),
                            "locations", locations,
                            "login", "code_digits", 6,
                            "has_locations", n > 0, "several_locations", n > 1);
    if (col(e->location, 0))
        json_object_set_new(ctx, "location", json_pack("{ss}", "name", col(e->location, 0)));
    return ctx;
}

/* The shop's template, or the default; version in *version. */
static enum b2bd_code load_template(struct apply_cmd *c, struct email_template *own,
                                    const struct email_template **t, struct b2bd_err *err)
{
    const char *v[] = {c->cmd->shop_id};
    PGresult *res = apply_q(c, SQL_TEMPLATE, 1, v, err);
    if (!res)
        return B2BD_ERR_DB;
    *t = c->email_default;
    if (PQntuples(res) > 0) {
        struct b2bd_err ignored;
        if (email_template_parse(PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3),
                                 atoi(PQgetvalue(res, 0, 0)), own, &ignored) == B2BD_OK)
            *t = own; /* stored templates parsed when they were updated */
    }
    PQclear(res);
    return B2BD_OK;
}

struct email_job {
    const char *company, *location, *customer;
    const char *to;           /* recipient address */
    int staff;
    const char *resend_of;
    int preview;
};

static const char *from_address(struct apply_cmd *c, PGresult *shop)
{
    return col(shop, 2) ? col(shop, 2) : c->cfg->smtp_from;
}

static enum b2bd_code queue_row(struct apply_cmd *c, const struct email_job *j, const char *from,
                                int version, const char *subject, const char *text, const char *html,
                                char id[37], struct b2bd_err *err)
{
    char ver[16], message_id[80];
    util_uuid_v4(id);
    snprintf(ver, sizeof ver, "%d", version);
    snprintf(message_id, sizeof message_id, "<%s@b2bd>", id);
    const char *v[] = {id, c->cmd->shop_id, j->customer, j->company, j->location,
                       j->staff ? "staff" : "customer", j->to, from, ver, subject, text, html,
                       message_id, j->resend_of, c->cmd->command_id};
    PGresult *res = apply_q(c, SQL_QUEUE, 15, v, err);
    if (!res)
        return B2BD_ERR_DB;
    PQclear(res);
    if (!c->queued_email) {
        if (!(res = apply_q(c, SQL_WAKE, 0, NULL, err)))
            return B2BD_ERR_DB;
        PQclear(res);
        c->queued_email = 1;
    }
    return B2BD_OK;
}

static enum b2bd_code env_load(struct apply_cmd *c, const char *company, const char *location,
                               struct email_env *e, struct b2bd_err *err)
{
    memset(e, 0, sizeof *e);
    const char *shop = c->cmd->shop_id;
    const char *v[] = {shop, company, location};
    if (!(e->shop = apply_q(c, SQL_SHOP, 1, v, err)) ||
        !(e->company = apply_q(c, SQL_COMPANY, 2, v, err)) ||
        (location && !(e->location = apply_q(c, SQL_LOCATION, 3, v, err))))
        return B2BD_ERR_DB;
    return load_template(c, &e->own, &e->t, err);
}

static void env_free(struct email_env *e)
{
    PQclear(e->shop);
    PQclear(e->company);
    PQclear(e->location);
    email_template_free(&e->own);
    memset(e, 0, sizeof *e);
}

/* Renders the email for the contact of row `row` of states (one with roles), and queues
 * it (or returns the preview). */
static enum b2bd_code render_and_queue(struct apply_cmd *c, const struct email_env *e,
                                       struct email_job *j, PGresult *states, int row,
                                       const char *staff_to, char id[37], json_t **preview,
                                       struct b2bd_err *err)
{
    enum b2bd_code code = B2BD_OK;
    json_t *ctx = email_context(e, states, row);
    struct email_rendered r = {0};
    if (email_render(e->t, ctx, &r) < 0) {
        code = b2bd_err_set(err, B2BD_INVALID, "payload",
                            "the email is too large to render (over %d bytes a part)", EMAIL_MAX_PART);
    } else {
        j->to = staff_to ? staff_to : cell(states, row, ST_EMAIL);
        if (!j->to) {
            code = b2bd_err_set(err, B2BD_INVALID, "payload.customer_ids", "the customer has no email");
        } else if (j->preview) {
            *preview = json_pack("{ssssssssss}", "customer_id", j->customer, "to", j->to,
                                 "subject", r.subject, "text", r.text, "html", r.html);
        } else {
            code = queue_row(c, j, from_address(c, e->shop), e->t->version, r.subject, r.text,
                             r.html, id, err);
        }
        email_rendered_free(&r);
    }
    json_decref(ctx);
    return code;
}

enum b2bd_code apply_queue_access_email(struct apply_cmd *c, const char *company,
                                        const char *location, const char *customer,
                                        char id[37], struct b2bd_err *err)
{
    PGresult *states = contact_states(c, company, location, &customer, 1, err);
    if (!states)
        return err->code == B2BD_ERR_INTERNAL ? B2BD_ERR_INTERNAL : B2BD_ERR_DB;
    enum b2bd_code code = state_of(states, 0, location);
    if (code == B2BD_OK) {
        struct email_env e;
        code = env_load(c, company, location, &e, err);
        struct email_job j = {.company = company, .location = location, .customer = customer};
        if (code == B2BD_OK)
            code = render_and_queue(c, &e, &j, states, 0, NULL, id, NULL, err);
        env_free(&e);
    }
    PQclear(states);
    return code;
}

/* The email to each listed customer (queued, or previewed), or the reason it is skipped,
 * in list order. The result grows with the list: once its entries alone are over the
 * message limit, the command is LIMIT_REACHED at once (apply_fresh would refuse the
 * result anyway), before more emails are rendered or queued. */
static enum b2bd_code notify_listed(struct apply_cmd *c, const struct b2bd_notify *p,
                                    const char *staff_to, json_t *done, json_t *skipped,
                                    struct b2bd_err *err)
{
    PGresult *states = contact_states(c, p->company_id, p->location_id, p->customer_ids,
                                      p->n_customer_ids, err);
    if (!states)
        return err->code == B2BD_ERR_INTERNAL ? B2BD_ERR_INTERNAL : B2BD_ERR_DB;
    struct email_env e = {0};
    int loaded = 0;
    enum b2bd_code code = B2BD_OK;
    size_t bytes = 0; /* of the entries so far, as the result holds them */
    for (size_t i = 0; i < p->n_customer_ids && code == B2BD_OK; i++) {
        const char *customer = p->customer_ids[i];
        json_t *entry = NULL, *into = done;
        enum b2bd_code why = state_of(states, (int)i, p->location_id);
        if (why != B2BD_OK) {
            entry = json_pack("{ssss}", "customer_id", customer, "reason", b2bd_code_name(why));
            into = skipped;
        } else {
            if (!loaded && (code = env_load(c, p->company_id, p->location_id, &e, err)) != B2BD_OK)
                break;
            loaded = 1;
            struct email_job j = {.company = p->company_id, .location = p->location_id,
                                  .customer = customer, .staff = staff_to != NULL,
                                  .preview = p->preview};
            char id[37];
            if ((code = render_and_queue(c, &e, &j, states, (int)i, staff_to, id, &entry, err)) != B2BD_OK)
                break;
            if (!entry)
                entry = json_pack("{ssss}", "customer_id", customer, "notification_id", id);
        }
        char *text = apply_dump(entry);
        bytes += strlen(text) + 1;
        free(text);
        json_array_append_new(into, entry);
        if (!apply_message_fits(c->cfg, bytes))
            code = apply_too_large(c, "payload.customer_ids", "result", err);
    }
    env_free(&e);
    PQclear(states);
    return code;
}

/* The staff address: the command's staff_email, else the shop's. */
static enum b2bd_code staff_address(struct apply_cmd *c, const struct b2bd_notify *p,
                                    char **out, struct b2bd_err *err)
{
    *out = NULL;
    if (p->recipient != RECIPIENT_STAFF)
        return B2BD_OK;
    if (p->staff_email) {
        *out = strdup(p->staff_email);
        return B2BD_OK;
    }
    const char *v[] = {c->cmd->shop_id};
    PGresult *res = apply_q(c, SQL_SHOP, 1, v, err);
    if (!res)
        return B2BD_ERR_DB;
    if (col(res, 3))
        *out = strdup(col(res, 3));
    PQclear(res);
    if (!*out)
        return b2bd_err_set(err, B2BD_INVALID, "payload.staff_email",
                            "recipient staff needs staff_email or the shop's staff address");
    return B2BD_OK;
}

static enum b2bd_code resend(struct apply_cmd *c, const struct b2bd_notify *p, const char *staff_to,
                             json_t *queued, struct b2bd_err *err)
{
    char original[37];
    snprintf(original, sizeof original, "%s", p->resend_of);
    for (char *q = original; *q; q++)
        *q = (char)(*q >= 'A' && *q <= 'F' ? *q - 'A' + 'a' : *q);
    const char *v[] = {c->cmd->shop_id, original};
    PGresult *res = apply_q(c, SQL_ORIGINAL, 2, v, err);
    if (!res)
        return B2BD_ERR_DB;
    if (PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 1), p->company_id) != 0) {
        PQclear(res);
        return b2bd_err_set(err, B2BD_NOT_FOUND, "payload.resend_of",
                            "no notification with this id in the shop and company");
    }
    if (PQgetvalue(res, 0, 9)[0] == 't') {
        PQclear(res);
        return b2bd_err_set(err, B2BD_SUSPENDED, "payload.resend_of",
                            "the notification's customer is suspended in the company");
    }
    struct email_job j = {.customer = PQgetvalue(res, 0, 0), .company = PQgetvalue(res, 0, 1),
                          .location = col(res, 2), .to = staff_to ? staff_to : PQgetvalue(res, 0, 3),
                          .staff = staff_to != NULL, .resend_of = original};
    char id[37];
    enum b2bd_code code = B2BD_OK;
    if (p->preview) {
        json_t *pv = json_pack("{ssssssssss}", "customer_id", j.customer, "to", j.to,
                               "subject", PQgetvalue(res, 0, 6), "text", PQgetvalue(res, 0, 7),
                               "html", PQgetvalue(res, 0, 8));
        json_array_append_new(queued, pv);
    } else {
        code = queue_row(c, &j, col(res, 4), atoi(PQgetvalue(res, 0, 5)), PQgetvalue(res, 0, 6),
                         PQgetvalue(res, 0, 7), PQgetvalue(res, 0, 8), id, err);
        if (code == B2BD_OK)
            json_array_append_new(queued, json_pack("{ssss}", "customer_id", j.customer,
                                                    "notification_id", id));
    }
    PQclear(res);
    return code;
}

static const char SQL_COMPANY_EXISTS[] =
    "SELECT 1 FROM companies WHERE shop_id = $1 AND company_id = $2";
static const char SQL_LOCATION_EXISTS[] =
    "SELECT 1 FROM locations WHERE shop_id = $1 AND company_id = $2 AND location_id = $3";

enum b2bd_code apply_notify(struct apply_cmd *c, struct b2bd_err *err)
{
    const struct b2bd_notify *p = &c->cmd->u.notify;
    const char *shop = c->cmd->shop_id;
    const char *kv[] = {shop, p->company_id, p->location_id};
    PGresult *res = apply_q(c, SQL_COMPANY_EXISTS, 2, kv, err);
    if (!res)
        return B2BD_ERR_DB;
    int found = PQntuples(res) > 0;
    PQclear(res);
    if (!found)
        return b2bd_err_set(err, B2BD_NOT_FOUND, "payload.company_id", "no company with this id in the shop");
    if (p->location_id) {
        if (!(res = apply_q(c, SQL_LOCATION_EXISTS, 3, kv, err)))
            return B2BD_ERR_DB;
        found = PQntuples(res) > 0;
        PQclear(res);
        if (!found)
            return b2bd_err_set(err, B2BD_NOT_FOUND, "payload.location_id",
                                "no location with this id in the company");
    }
    char *staff_to = NULL;
    enum b2bd_code code = staff_address(c, p, &staff_to, err);
    if (code != B2BD_OK)
        return code;

    json_t *done = json_array(), *skipped = json_array();
    if (p->resend_of) {
        code = resend(c, p, staff_to, done, err);
    } else {
        code = notify_listed(c, p, staff_to, done, skipped, err);
    }
    free(staff_to);
    if (code != B2BD_OK) {
        json_decref(done);
        json_decref(skipped);
        return code;
    }
    if (p->preview) {
        json_object_set_new(c->result, "previews", done);
        json_object_set_new(c->result, "skipped", skipped);
    } else {
        json_object_set_new(c->result, "queued", done);
        json_object_set_new(c->result, "skipped", skipped);
    }
    return B2BD_OK;
}

enum b2bd_code apply_template_update(struct apply_cmd *c, struct b2bd_err *err)
{
    const struct b2bd_template_update *p = &c->cmd->u.tmpl;
    struct email_template t;
    enum b2bd_code code = email_template_parse(p->subject, p->text, p->html, 0, &t, err);
    if (code != B2BD_OK)
        return code;
    email_template_free(&t);
    const char *v[] = {c->cmd->shop_id, p->subject, p->text, p->html, c->cmd->command_id};
    PGresult *res = apply_q(c, SQL_TEMPLATE_SET, 5, v, err);
    if (!res)
        return B2BD_ERR_DB;
    json_object_set_new(c->result, "template_version", json_integer(atoi(PQgetvalue(res, 0, 0))));
    PQclear(res);
    return B2BD_OK;
}
