/* outbox: the messages to publish, written in the transaction that caused them. */
#include "b2bd/outbox.h"

#include <string.h>

static const char SQL_APPEND[] =
    "INSERT INTO outbox (topic, key, value, headers) VALUES ($1, $2, $3, $4::jsonb)";
static const char SQL_WAKE[] = "SELECT pg_notify('" OUTBOX_CHANNEL "', '')";

int outbox_append(struct b2bd_db *db, const char *topic, const void *key, size_t key_len,
                  const void *value, size_t value_len, const char *headers,
                  struct b2bd_err *err)
{
    const char *v[] = {topic, key, value, headers};
    int len[] = {0, (int)key_len, (int)value_len, 0};
    int fmt[] = {0, 1, 1, 0};
    PGresult *res = db_query(db, SQL_APPEND, 4, v, len, fmt, err);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

int outbox_wake(struct b2bd_db *db, struct b2bd_err *err)
{
    PGresult *res = db_query(db, SQL_WAKE, 0, NULL, NULL, NULL, err);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}
