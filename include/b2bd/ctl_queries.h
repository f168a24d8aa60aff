/* ctl_queries: every SQL query b2bctl runs against b2bd's database, in one place, so
 * that a schema change that breaks b2bctl fails a test (tests/db/test_ctl_queries.c runs
 * each against a database migrated by the current b2bd). Columns are read by position:
 * the list after each id below. */
#ifndef B2BD_CTL_QUERIES_H
#define B2BD_CTL_QUERIES_H

#include <libpq-fe.h>

#include "b2bd/db.h"
#include "b2bd/err.h"

enum ctl_query {
    /* $1 shop, $2 customer: a customer's companies and roles, one row per role (a
     * company without roles: one row, location NULL), by company then location.
     * company_id, company name, location_id, location name, role */
    CTL_Q_ACCESS,
    /* $1 shop, $2 customer: the customer's emails, oldest first. notification_id,
     * status, attempts, last_error, to_address, recipient, company_id, location_id,
     * resend_of, created_at, sent_at, next_attempt_at (times RFC 3339 UTC, ms),
     * subject, template_version, command_id */
    CTL_Q_TIMELINE,
    /* $1 shop, $2 notification id (a UUID): the notification to resend, 0 or 1 row.
     * company_id, customer_id */
    CTL_Q_NOTIFICATION,
    /* $1 import id: the applied commands of an import, one row per type, by type.
     * type, count, first processed_at, last processed_at (RFC 3339 UTC, ms) */
    CTL_Q_IMPORT_STATUS,
    /* $1 shop, $2 customer: the customer's access history, by version. version,
     * companies (JSON text), caused_by, actor, occurred_at (RFC 3339 UTC, ms) */
    CTL_Q_HISTORY,
    CTL_Q_COUNT
};

struct ctl_query_def {
    const char *name;  /* "access": the b2bctl command that runs it */
    const char *sql;   /* static: prepared once per connection */
    int n_params;
    int n_cols;
};

/* The query's definition; q < CTL_Q_COUNT. */
const struct ctl_query_def *ctl_query_def(enum ctl_query q);

/* Runs query q with its n_params text parameters on db. Returns the result (the caller
 * PQclear()s), or NULL with err: the database's failure, or B2BD_ERR_INTERNAL when the
 * result does not have the query's columns. */
PGresult *ctl_query_run(struct b2bd_db *db, enum ctl_query q, const char *const *params,
                        struct b2bd_err *err);

#endif
