/* command_types: the names of the command topics, types, roles and order statuses
 * (the contract's words), for the decoder, the metrics, the Kafka consumer and apply. */
#include "b2bd/command_types.h"

#include <string.h>

const char *decode_topic_suffix(enum b2bd_topic t)
{
    switch (t) {
    case TOPIC_ASSIGN: return "commands.assign";
    case TOPIC_REVOKE: return "commands.revoke";
    case TOPIC_MIGRATE: return "commands.migrate";
    case TOPIC_NOTIFY: return "commands.notify";
    case TOPIC_SYNC: return "commands.sync";
    case TOPIC_BULK: return "commands.bulk";
    case TOPIC_COUNT: break;
    }
    return "unknown";
}

int decode_topic_from_name(const char *prefix, const char *name)
{
    if (!name)
        return -1;
    size_t pl = prefix ? strlen(prefix) : 0;
    if (pl && strncmp(name, prefix, pl) != 0)
        return -1;
    for (int t = 0; t < TOPIC_COUNT; t++)
        if (strcmp(name + pl, decode_topic_suffix((enum b2bd_topic)t)) == 0)
            return t;
    return -1;
}

const char *decode_type_name(enum b2bd_cmd_type t)
{
    switch (t) {
    case CMD_ASSIGN: return "assign";
    case CMD_REVOKE: return "revoke";
    case CMD_MIGRATE: return "migrate";
    case CMD_NOTIFY: return "notify";
    case CMD_SUSPEND: return "suspend";
    case CMD_RESUME: return "resume";
    case CMD_SHOP_UPSERT: return "shop.upsert";
    case CMD_COMPANY_UPSERT: return "company.upsert";
    case CMD_CUSTOMER_UPSERT: return "customer.upsert";
    case CMD_ORDER_UPSERT: return "order.upsert";
    case CMD_TEMPLATE_UPDATE: return "template.update";
    case CMD_CUSTOMER_MERGE: return "customer.merge";
    case CMD_CUSTOMER_DATA_REQUEST: return "customer.data_request";
    case CMD_CUSTOMER_REDACT: return "customer.redact";
    case CMD_SHOP_REDACT: return "shop.redact";
    case CMD_UNKNOWN: break;
    }
    return "unknown";
}

enum b2bd_topic decode_type_topic(enum b2bd_cmd_type t)
{
    switch (t) {
    case CMD_ASSIGN: return TOPIC_ASSIGN;
    case CMD_REVOKE:
    case CMD_SUSPEND:
    case CMD_RESUME: return TOPIC_REVOKE;
    case CMD_MIGRATE: return TOPIC_MIGRATE;
    case CMD_NOTIFY: return TOPIC_NOTIFY;
    default: return TOPIC_SYNC;
    }
}

enum b2bd_cmd_type decode_type_from_name(const char *s, size_t len)
{
    for (int t = 0; t < CMD_UNKNOWN; t++) {
        const char *n = decode_type_name((enum b2bd_cmd_type)t);
        if (strlen(n) == len && memcmp(n, s, len) == 0)
            return (enum b2bd_cmd_type)t;
    }
    return CMD_UNKNOWN;
}

const char *decode_role_name(enum b2bd_role r)
{
    return r == ROLE_LOCATION_ADMIN ? "location_admin" : "ordering_only";
}

const char *decode_role_label(enum b2bd_role r)
{
    return r == ROLE_LOCATION_ADMIN ? "Location admin" : "Ordering only";
}

const char *decode_order_status_name(enum b2bd_order_status s)
{
    switch (s) {
    case ORDER_OPEN: return "open";
    case ORDER_CLOSED: return "closed";
    case ORDER_CANCELLED: return "cancelled";
    case ORDER_DELETED: return "deleted";
    }
    return "open";
}
