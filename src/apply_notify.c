/* apply_notify: the B2B access email: notify (queue, preview, resend), assign's notify, template.update. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply_internal.h"
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
static const char SQL_CUSTOMER[] =
    "SELECT first_name, last_name, email FROM customers WHERE shop_id = $1 AND customer_id = $2";
static const char SQL_CONTACT[] =
    "SELECT 1 FROM contacts WHERE shop_id = $1 AND company_id = $2 AND customer_id = $3";
static const char SQL_ROLES[] =
    "SELECT r.location_id, l.name, r.role FROM roles r"
    " JOIN locations l ON l.shop_id = r.shop_id AND l.location_id = r.location_id"
    " WHERE r.shop_id = $1 AND r.company_id = $2 AND r.customer_id = $3"
    " ORDER BY l.name, r.location_id";
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
    "  subject, body_text, body_html FROM notifications"
    " WHERE shop_id = $1 AND notification_id = $2";
static const char SQL_TEMPLATE_SET[] =
    "INSERT INTO templates AS t (shop_id, version, subject, text, html, command_id)"
    " VALUES ($1, 1, $2, $3, $4, $5)"
    " ON CONFLICT (shop_id) DO UPDATE SET version = t.version + 1, subject = EXCLUDED.subject,"
    "  text = EXCLUDED.text, html = EXCLUDED.html, command_id = EXCLUDED.command_id,"
    "  updated_at = now()"
    " RETURNING version";

/* The shop's settings; NULL fields when the shop was never synced. */
struct shop_info {
    PGresult *res;
};

static const char *col(PGresult *res, int c)
{
    return res && PQntuples(res) > 0 && !PQgetisnull(res, 0, c) ? PQgetvalue(res, 0, c) : NULL;
}

/* The recipient's state in the company: why the email is not for them, or B2BD_OK. */
static enum b2bd_code contact_state(struct apply_cmd *c, const char *company, const char *location,
                                    const char *customer, PGresult **roles, struct b2bd_err *err)
{
    const char *shop = c->cmd->shop_id;
    const char *v[] = {shop, customer};
    PGresult *res = apply_q(c, SQL_CUSTOMER, 2, v, err);
    if (!res)
        return B2BD_ERR_DB;
    int found = PQntuples(res) > 0;
    PQclear(res);
    if (!found)
        return B2BD_NOT_FOUND;
    const char *kv[] = {shop, company, customer};
    if (!(res = apply_q(c, SQL_CONTACT, 3, kv, err)))
        return B2BD_ERR_DB;
    found = PQntuples(res) > 0;
    PQclear(res);
    if (!found)
        return B2BD_NOT_A_CONTACT;
    if (!(res = apply_q(c, SQL_ROLES, 3, kv, err)))
        return B2BD_ERR_DB;
    int access = PQntuples(res) > 0;
    if (access && location) {
        access = 0;
        for (int i = 0; i < PQntuples(res) && !access; i++)
            access = strcmp(PQgetvalue(res, i, 0), location) == 0;
    }
    if (!access) {
        PQclear(res);
        return B2BD_NO_LOCATION_ACCESS;
    }
    *roles = res;
    return B2BD_OK;
}

/* The template context of CONTRACT.md ("template.update": the names a template can use),
 * plus has_locations and several_locations. */
static json_t *email_context(PGresult *shop, const char *company_name, const char *location_name,
                             PGresult *customer, PGresult *roles)
{
    json_t *locations = json_array();
    for (int i = 0; i < PQntuples(roles); i++) {
        const char *role = PQgetvalue(roles, i, 2);
        enum b2bd_role r = strcmp(role, "location_admin") == 0 ? ROLE_LOCATION_ADMIN : ROLE_ORDERING_ONLY;
        json_array_append_new(locations, json_pack("{ssssss}", "name", PQgetvalue(roles, i, 1),
                                                   "role", role, "role_name", decode_role_label(r)));
    }
    size_t n = json_array_size(locations);
    json_t *ctx = json_pack("{s{soso}s{sososo}s{so}so s{si}sbsb}",
                            "shop", "name", apply_jstr(col(shop, 0)), "account_url", apply_jstr(col(shop, 1)),
                            "customer", "first_name", apply_jstr(col(customer, 0)),
                            "last_name", apply_jstr(col(customer, 1)), "email", apply_jstr(col(customer, 2)),
                            "company", "name", apply_jstr(company_name),
                            "locations", locations,
                            "login", "code_digits", 6,
                            "has_locations", n > 0, "several_locations", n > 1);
    if (location_name)
        json_object_set_new(ctx, "location", json_pack("{ss}", "name", location_name));
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

/* Renders the email for one contact with roles, and queues it (or returns the preview). */
static enum b2bd_code render_and_queue(struct apply_cmd *c, struct email_job *j, PGresult *roles,
                                       const char *staff_to, char id[37], json_t **preview,
                                       struct b2bd_err *err)
{
    const char *shop = c->cmd->shop_id;
    const char *sv[] = {shop};
    const char *kv[] = {shop, j->company};
    const char *lv[] = {shop, j->company, j->location};
    const char *cv[] = {shop, j->customer};
    PGresult *shop_r = apply_q(c, SQL_SHOP, 1, sv, err);
    PGresult *company_r = shop_r ? apply_q(c, SQL_COMPANY, 2, kv, err) : NULL;
    PGresult *loc_r = company_r && j->location ? apply_q(c, SQL_LOCATION, 3, lv, err) : NULL;
    PGresult *cust_r = company_r && (!j->location || loc_r) ? apply_q(c, SQL_CUSTOMER, 2, cv, err) : NULL;
    enum b2bd_code code = cust_r ? B2BD_OK : B2BD_ERR_DB;
    struct email_template own = {0};
    const struct email_template *t = NULL;
    if (code == B2BD_OK)
        code = load_template(c, &own, &t, err);
    if (code == B2BD_OK) {
        json_t *ctx = email_context(shop_r, col(company_r, 0), col(loc_r, 0), cust_r, roles);
        struct email_rendered r = {0};
        if (email_render(t, ctx, &r) < 0) {
            code = b2bd_err_set(err, B2BD_INVALID, "payload",
                                "the email is too large to render (over %d bytes a part)", EMAIL_MAX_PART);
        } else {
            j->to = staff_to ? staff_to : col(cust_r, 2);
            if (!j->to) {
                code = b2bd_err_set(err, B2BD_INVALID, "payload.customer_ids", "the customer has no email");
            } else if (j->preview) {
                *preview = json_pack("{ssssssssss}", "customer_id", j->customer, "to", j->to,
                                     "subject", r.subject, "text", r.text, "html", r.html);
            } else {
                code = queue_row(c, j, from_address(c, shop_r), t->version, r.subject, r.text, r.html, id, err);
            }
            email_rendered_free(&r);
        }
        json_decref(ctx);
    }
    email_template_free(&own);
    PQclear(shop_r);
    PQclear(company_r);
    PQclear(loc_r);
    PQclear(cust_r);
    return code;
}

enum b2bd_code apply_queue_access_email(struct apply_cmd *c, const char *company,
                                        const char *location, const char *customer,
                                        char id[37], struct b2bd_err *err)
{
    PGresult *roles = NULL;
    enum b2bd_code code = contact_state(c, company, location, customer, &roles, err);
    if (code != B2BD_OK)
        return code;
    struct email_job j = {.company = company, .location = location, .customer = customer};
    code = render_and_queue(c, &j, roles, NULL, id, NULL, err);
    PQclear(roles);
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
        for (size_t i = 0; i < p->n_customer_ids && code == B2BD_OK; i++) {
            const char *customer = p->customer_ids[i];
            PGresult *roles = NULL;
            enum b2bd_code why = contact_state(c, p->company_id, p->location_id, customer, &roles, err);
            if (why == B2BD_ERR_DB) {
                code = why;
                break;
            }
            if (why != B2BD_OK) {
                json_array_append_new(skipped, json_pack("{ssss}", "customer_id", customer,
                                                         "reason", b2bd_code_name(why)));
                continue;
            }
            struct email_job j = {.company = p->company_id, .location = p->location_id,
                                  .customer = customer, .staff = staff_to != NULL,
                                  .preview = p->preview};
            char id[37];
            json_t *pv = NULL;
            code = render_and_queue(c, &j, roles, staff_to, id, &pv, err);
            PQclear(roles);
            if (code == B2BD_OK)
                json_array_append_new(done, pv ? pv : json_pack("{ssss}", "customer_id", customer,
                                                                "notification_id", id));
        }
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
