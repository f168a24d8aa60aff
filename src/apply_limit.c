/* apply_limit: no result or access event over max_message_bytes (CONTRACT.md, "Limits
 * and failures"): a command whose result or access event would be is LIMIT_REACHED on
 * the field of the list that makes it large, and changes nothing. */
#include <stdlib.h>
#include <string.h>

#include "apply_limit.h"

/* Room kept under max_message_bytes for Kafka's framing of a message: the record batch
 * header (61 bytes), a record's own fields (at most 36) and a few header lengths, so
 * that a broker whose message.max.bytes is max_message_bytes takes every result and
 * access event b2bd writes (key, value and headers within max_message_bytes - 256). */
#define APPLY_MESSAGE_FRAMING 256

/* The SQLSTATEs for an access event too large (the outbox's trigger, b2bd_access_too_large
 * in sql/functions/access.sql) and for a result too large (b2bd_result_checked,
 * sql/functions/result.sql). */
#define APPLY_SQLSTATE_TOO_LARGE "B2B13"
#define APPLY_SQLSTATE_RESULT_TOO_LARGE "B2B14"

/* The field named for a result too large, by the result's largest member. */
static const struct {
    enum b2bd_cmd_type type;
    const char *member; /* NULL: any */
    const char *field;
} RESULT_FIELDS[] = {
    {CMD_ASSIGN, "migration", "payload.migrate_orders_to"},
    {CMD_ASSIGN, "orders.migrated", "payload.migrate_orders_to"},
    {CMD_ASSIGN, "notification_ids", "payload.notify"},
    {CMD_ASSIGN, NULL, "payload.locations"},
    {CMD_REVOKE, "reverted_order_ids", "payload.remove_migrated_orders"},
    /* a customer's whole order history: the customer makes it large */
    {CMD_MIGRATE, NULL, "payload.customer_id"},
    {CMD_COMPANY_UPSERT, NULL, "payload.locations"},
};

bool apply_message_fits(const struct b2bd_config *cfg, size_t bytes)
{
    return bytes + APPLY_MESSAGE_FRAMING <= (size_t)cfg->max_message_bytes;
}

/* The list of the command that the result's member `member` grows with. */
static const char *result_field(const struct b2bd_command *cmd, const char *member)
{
    if (cmd->type == CMD_NOTIFY)
        return cmd->u.notify.resend_of ? "payload.resend_of" : "payload.customer_ids";
    if (cmd->type == CMD_REVOKE && (!member || strcmp(member, "reverted_order_ids") != 0))
        return cmd->u.revoke.scope == SCOPE_LOCATIONS ? "payload.location_ids" : "payload.scope";
    for (size_t i = 0; i < sizeof RESULT_FIELDS / sizeof RESULT_FIELDS[0]; i++)
        if (RESULT_FIELDS[i].type == cmd->type &&
            (!RESULT_FIELDS[i].member || (member && strcmp(RESULT_FIELDS[i].member, member) == 0)))
            return RESULT_FIELDS[i].field;
    return "payload";
}

/* The name of the result's largest member (NULL for an empty result). */
static const char *largest_member(const json_t *result)
{
    const char *name = NULL, *key;
    size_t most = 0;
    json_t *v;
    json_object_foreach((json_t *)result, key, v) {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        size_t len = s ? strlen(s) : 0;
        free(s);
        if (!name || len > most) {
            name = key;
            most = len;
        }
    }
    return name;
}

enum b2bd_code apply_too_large(struct apply_cmd *c, const char *field, const char *what,
                               struct b2bd_err *err)
{
    return b2bd_err_set(err, B2BD_LIMIT_REACHED, field,
                        "the %s would be larger than the message limit (%ld bytes); "
                        "send the command with fewer entries", what, c->cfg->max_message_bytes);
}

bool apply_is_result_too_large(const struct b2bd_db *db)
{
    return db_connected(db) && strcmp(db->sqlstate, APPLY_SQLSTATE_RESULT_TOO_LARGE) == 0;
}

enum b2bd_code apply_result_too_large(struct apply_cmd *c, struct b2bd_err *err)
{
    return apply_too_large(c, result_field(c->cmd, largest_member(c->result)), "result", err);
}

enum b2bd_code apply_access_too_large(struct apply_cmd *c, struct b2bd_err *err)
{
    const struct b2bd_command *cmd = c->cmd;
    const char *field = "payload";
    if (cmd->type == CMD_ASSIGN)
        field = "payload.locations";
    else if (cmd->type == CMD_CUSTOMER_UPSERT)
        field = "payload.email"; /* the event carries the email */
    else if (cmd->type == CMD_SUSPEND || cmd->type == CMD_RESUME)
        field = cmd->u.suspend.customer_id ? "payload.customer_id" : "payload.company_id";
    else if (cmd->type == CMD_REVOKE)
        field = cmd->u.revoke.scope == SCOPE_LOCATIONS ? "payload.location_ids" : "payload.scope";
    return apply_too_large(c, field, "access event", err);
}

bool apply_is_access_too_large(const struct b2bd_db *db)
{
    return db_connected(db) && strcmp(db->sqlstate, APPLY_SQLSTATE_TOO_LARGE) == 0;
}
