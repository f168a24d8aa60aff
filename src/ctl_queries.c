/* ctl_queries: every SQL query b2bctl runs against b2bd's database (ctl_queries.h). */
#include "b2bd/ctl_queries.h"

#include <stdlib.h>

/* A timestamp as RFC 3339 in UTC with milliseconds. */
#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

static const char SQL_ACCESS[] =
    "SELECT k.company_id, co.name, r.location_id, l.name, r.role, co.suspended, k.suspended"
    " FROM contacts k"
    " JOIN companies co ON co.shop_id = k.shop_id AND co.company_id = k.company_id"
    " LEFT JOIN roles r ON r.shop_id = k.shop_id AND r.company_id = k.company_id"
    "  AND r.customer_id = k.customer_id"
    " LEFT JOIN locations l ON l.shop_id = r.shop_id AND l.location_id = r.location_id"
    " WHERE k.shop_id = $1 AND k.customer_id = $2 ORDER BY 1, 3";

static const char SQL_TIMELINE[] =
    "SELECT notification_id::text, status, attempts, last_error, to_address, recipient,"
    " company_id, location_id, resend_of::text, " TS("created_at") ", " TS("sent_at") ","
    " " TS("next_attempt_at") ", subject, template_version, command_id::text"
    " FROM notifications WHERE shop_id = $1 AND customer_id = $2"
    " ORDER BY created_at, notification_id";

static const char SQL_NOTIFICATION[] = "SELECT company_id, customer_id FROM notifications"
                                       " WHERE shop_id = $1 AND notification_id = $2::uuid";

static const char SQL_IMPORT_STATUS[] =
    "SELECT type, count(*), " TS("min(processed_at)") ", " TS("max(processed_at)")
    " FROM commands WHERE import_id = $1 GROUP BY type ORDER BY type";

static const char SQL_HISTORY[] =
    "SELECT version, companies::text, caused_by::text, actor, " TS("occurred_at")
    " FROM access_history WHERE shop_id = $1 AND customer_id = $2 ORDER BY version";

static const struct ctl_query_def QUERIES[CTL_Q_COUNT] = {
    [CTL_Q_ACCESS] = {"access", SQL_ACCESS, 2, 7},
    [CTL_Q_TIMELINE] = {"timeline", SQL_TIMELINE, 2, 15},
    [CTL_Q_NOTIFICATION] = {"resend", SQL_NOTIFICATION, 2, 2},
    [CTL_Q_IMPORT_STATUS] = {"import status", SQL_IMPORT_STATUS, 1, 4},
    [CTL_Q_HISTORY] = {"history", SQL_HISTORY, 2, 5},
};

const struct ctl_query_def *ctl_query_def(enum ctl_query q)
{
    if ((int)q < 0 || q >= CTL_Q_COUNT)
        abort();
    return &QUERIES[q];
}

PGresult *ctl_query_run(struct b2bd_db *db, enum ctl_query q, const char *const *params,
                        struct b2bd_err *err)
{
    const struct ctl_query_def *d = ctl_query_def(q);
    PGresult *res = db_query(db, d->sql, d->n_params, params, NULL, NULL, err);
    if (res && PQnfields(res) != d->n_cols) {
        b2bd_err_set(err, B2BD_ERR_INTERNAL, NULL,
                     "the %s query returned %d columns, not %d: b2bctl does not match "
                     "this database's schema",
                     d->name, PQnfields(res), d->n_cols);
        PQclear(res);
        return NULL;
    }
    return res;
}
