/* test_ctl_queries: every query b2bctl runs (src/ctl_queries.c) against a database
 * migrated by the current b2bd, holding rows that b2bd itself wrote (a company, an assign
 * by email with notify and an import id): each query must run, return its declared
 * columns and the rows b2bctl prints. A schema change that breaks b2bctl fails here. A
 * query added to ctl_queries.h without a case below fails too. */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "b2bd/ctl_queries.h"
#include "b2bd/email.h"
#include "b2bd/log.h"
#include "b2bd/util.h"
#include "dbtest.h"

#define SHOP "ctlq"
#define COMPANY "c-1"
#define CUSTOMER "cust-1"
#define IMPORT_ID "imp-ctl-queries"

static void add(struct dbt_batch *b, enum b2bd_topic t, const char *id, const char *type,
                const char *extra, const char *payload)
{
    struct sbuf s = {0};
    sbuf_addf(&s, "{\"command_id\":\"%s\",\"type\":\"%s\",\"shop_id\":\"" SHOP "\"%s,\"payload\":%s}",
              id, type, extra, payload);
    dbt_batch_add(b, t, 0, SHOP "/" CUSTOMER, sbuf_str(&s));
    sbuf_free(&s);
}

/* Runs query q; checks it succeeds with its declared columns and at least one row. */
static PGresult *run(struct dbt_world *w, enum ctl_query q, const char *const *params)
{
    const struct ctl_query_def *d = ctl_query_def(q);
    struct b2bd_err err;
    b2bd_err_clear(&err);
    if (db_connect(&w->db, &err) < 0) {
        DBT_CHECK(0, "connect: %s", err.msg);
        return NULL;
    }
    PGresult *res = ctl_query_run(&w->db, q, params, &err);
    DBT_CHECK(res, "query %s: %s", d->name, err.msg);
    if (!res)
        return NULL;
    DBT_CHECK(PQnfields(res) == d->n_cols, "query %s: %d columns", d->name, PQnfields(res));
    DBT_CHECK(PQntuples(res) >= 1, "query %s: no row", d->name);
    if (PQntuples(res) < 1) {
        PQclear(res);
        return NULL;
    }
    return res;
}

static void expect(PGresult *res, int row, int col, const char *want, const char *what)
{
    const char *got = PQgetisnull(res, row, col) ? "(null)" : PQgetvalue(res, row, col);
    DBT_CHECK(strcmp(got, want) == 0, "%s: row %d column %d is \"%s\", want \"%s\"", what, row, col,
          got, want);
}

int main(void)
{
    log_init(LOG_WARN, stderr);
    char name[64];
    snprintf(name, sizeof name, "b2bd_ctlq_%d", (int)getpid());
    dbt_create_db(name, "");
    struct dbt_world w;
    dbt_world_open(&w, name, "off");

    /* the shipped email template, for the assign's notify */
    char src[] = __FILE__, dir[4096];
    snprintf(dir, sizeof dir, "%s/../../config/templates", dirname(src));
    struct email_template tmpl;
    struct b2bd_err err;
    if (email_template_load(dir, &tmpl, &err) < 0) {
        fprintf(stderr, "test_ctl_queries: templates: %s\n", err.msg);
        return 1;
    }
    w.ap.email_default = &tmpl;

    struct dbt_batch b = {0};
    add(&b, TOPIC_SYNC, "00000000-0000-4000-8000-000000000001", "shop.upsert", "",
        "{\"name\":\"Shop\",\"from_email\":\"shop@x.example\"}");
    add(&b, TOPIC_SYNC, "00000000-0000-4000-8000-000000000002", "company.upsert", "",
        "{\"company_id\":\"" COMPANY "\",\"name\":\"Company\","
        "\"locations\":[{\"location_id\":\"loc-1\",\"name\":\"Location 1\"}]}");
    add(&b, TOPIC_ASSIGN, "00000000-0000-4000-8000-000000000003", "assign",
        ",\"actor\":\"ctl-test\",\"import_id\":\"" IMPORT_ID "\"",
        "{\"company_id\":\"" COMPANY "\",\"customer\":{\"id\":\"" CUSTOMER "\","
        "\"email\":\"cust-1@x.example\"},\"notify\":true,"
        "\"locations\":[{\"location_id\":\"loc-1\",\"role\":\"ordering_only\"}]}");
    dbt_apply(&w, &b);
    dbt_batch_free(&b);
    json_t *r = dbt_result(&w, "00000000-0000-4000-8000-000000000003");
    const char *status = json_string_value(json_object_get(r, "status"));
    DBT_CHECK(status && strcmp(status, "applied") == 0, "the assign was not applied");
    json_decref(r);

    char notification[64] = "";
    int covered = 0;
    for (int q = 0; q < CTL_Q_COUNT; q++) {
        PGresult *res = NULL;
        switch ((enum ctl_query)q) {
        case CTL_Q_ACCESS: {
            const char *v[] = {SHOP, CUSTOMER};
            if ((res = run(&w, q, v))) {
                expect(res, 0, 0, COMPANY, "access");
                expect(res, 0, 1, "Company", "access");
                expect(res, 0, 2, "loc-1", "access");
                expect(res, 0, 3, "Location 1", "access");
                expect(res, 0, 4, "ordering_only", "access");
                expect(res, 0, 5, "f", "access"); /* the company's suspension */
                expect(res, 0, 6, "f", "access"); /* the contact's own */
            }
            break;
        }
        case CTL_Q_TIMELINE: {
            const char *v[] = {SHOP, CUSTOMER};
            if ((res = run(&w, q, v))) {
                snprintf(notification, sizeof notification, "%s", PQgetvalue(res, 0, 0));
                expect(res, 0, 1, "queued", "timeline");
                expect(res, 0, 4, "cust-1@x.example", "timeline");
                expect(res, 0, 6, COMPANY, "timeline");
                expect(res, 0, 14, "00000000-0000-4000-8000-000000000003", "timeline");
                DBT_CHECK(!PQgetisnull(res, 0, 9) && PQgetvalue(res, 0, 9)[23] == 'Z',
                      "timeline: created_at %s", PQgetvalue(res, 0, 9));
            }
            break;
        }
        case CTL_Q_NOTIFICATION: {
            /* after the timeline (enum order), which found the id */
            const char *v[] = {SHOP, notification};
            DBT_CHECK(notification[0], "resend: no notification id from the timeline");
            if (notification[0] && (res = run(&w, q, v))) {
                expect(res, 0, 0, COMPANY, "resend");
                expect(res, 0, 1, CUSTOMER, "resend");
            }
            break;
        }
        case CTL_Q_IMPORT_STATUS: {
            const char *v[] = {IMPORT_ID};
            if ((res = run(&w, q, v))) {
                expect(res, 0, 0, "assign", "import status");
                expect(res, 0, 1, "1", "import status");
                DBT_CHECK(strcmp(PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3)) == 0,
                      "import status: first %s, last %s", PQgetvalue(res, 0, 2),
                      PQgetvalue(res, 0, 3));
            }
            break;
        }
        case CTL_Q_HISTORY: {
            const char *v[] = {SHOP, CUSTOMER};
            if ((res = run(&w, q, v))) {
                expect(res, 0, 0, "1", "history");
                expect(res, 0, 3, "ctl-test", "history");
                json_t *companies = json_loads(PQgetvalue(res, 0, 1), 0, NULL);
                DBT_CHECK(json_is_array(companies) && json_array_size(companies) == 1,
                      "history: companies %s", PQgetvalue(res, 0, 1));
                json_decref(companies);
            }
            break;
        }
        case CTL_Q_COUNT:
            break;
        }
        if (res)
            covered++;
        PQclear(res);
    }
    DBT_CHECK(covered == CTL_Q_COUNT, "%d of %d queries ran with rows", covered, (int)CTL_Q_COUNT);

    email_template_free(&tmpl);
    dbt_world_close(&w);
    dbt_drop_db(name);
    printf("test_ctl_queries: %d queries, %s\n", (int)CTL_Q_COUNT, dbt_failures ? "FAILED" : "ok");
    return dbt_failures ? 1 : 0;
}
