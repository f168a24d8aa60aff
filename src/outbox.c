/* outbox: the messages to publish, written in the transaction that caused them. */
#include "b2bd/outbox.h"

#include <string.h>

/* The headers given, and after them the trace headers of the command being applied
 * (b2bd.trace, sql/migrations/0021_trace_context.sql): a dead letter and a repeated
 * result carry the command's trace too. The row names its id: during a dry run the
 * default withholds one, for the rows that the rule functions write
 * (sql/migrations/0022_dry_run.sql); a dry run's repeated result is sent. */
static const char SQL_APPEND[] =
    "INSERT INTO outbox (id, topic, key, value, headers) VALUES (nextval('outbox_id_seq'), $1, $2, $3,"
    " nullif(coalesce($4::jsonb, '[]') || coalesce(nullif(current_setting('b2bd.trace', true), '')::jsonb, '[]'),"
    " '[]'))";
static const char SQL_WAKE[] =
    "BEGIN; SET LOCAL synchronous_commit = off; SELECT pg_notify('" OUTBOX_CHANNEL "', ''); COMMIT";

struct db_stmt outbox_row(struct outbox_row *row, const char *topic, const void *key,
                          size_t key_len, const void *value, size_t value_len,
                          const char *headers)
{
    *row = (struct outbox_row){.values = {topic, key, value, headers},
                               .lengths = {0, (int)key_len, (int)value_len, 0},
                               .formats = {0, 1, 1, 0}};
    return (struct db_stmt){.sql = SQL_APPEND, .n = 4, .values = row->values,
                            .lengths = row->lengths, .formats = row->formats};
}

int outbox_append(struct b2bd_db *db, const char *topic, const void *key, size_t key_len,
                  const void *value, size_t value_len, const char *headers,
                  struct b2bd_err *err)
{
    struct outbox_row row;
    struct db_stmt s = outbox_row(&row, topic, key, key_len, value, value_len, headers);
    PGresult *res = db_query(db, s.sql, s.n, s.values, s.lengths, s.formats, err);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

int outbox_wake(struct b2bd_db *db, struct b2bd_err *err)
{
    return db_exec(db, SQL_WAKE, err);
}
