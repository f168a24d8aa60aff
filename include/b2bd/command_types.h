/* command_types: the command topics, types, roles and order statuses, and their names
 * (the contract's words). */
#ifndef B2BD_COMMAND_TYPES_H
#define B2BD_COMMAND_TYPES_H

#include <stddef.h>

/* The command topics, by the part of their name after the prefix. */
enum b2bd_topic {
    TOPIC_ASSIGN,   /* "commands.assign" */
    TOPIC_REVOKE,   /* "commands.revoke" */
    TOPIC_MIGRATE,  /* "commands.migrate" */
    TOPIC_NOTIFY,   /* "commands.notify" */
    TOPIC_SYNC,     /* "commands.sync" */
    TOPIC_BULK,     /* "commands.bulk": every type, the bulk lane (kafka.c) */
    TOPIC_COUNT
};

/* The suffix of a command topic ("commands.assign"). */
const char *decode_topic_suffix(enum b2bd_topic t);
/* Finds the topic whose full name is prefix + suffix; returns -1 if none. */
int decode_topic_from_name(const char *prefix, const char *name);

enum b2bd_cmd_type {
    CMD_ASSIGN,
    CMD_REVOKE,
    CMD_MIGRATE,
    CMD_NOTIFY,
    CMD_SUSPEND,   /* on the revoke topic */
    CMD_RESUME,    /* on the revoke topic */
    CMD_SHOP_UPSERT,
    CMD_COMPANY_UPSERT,
    CMD_CUSTOMER_UPSERT,
    CMD_ORDER_UPSERT,
    CMD_TEMPLATE_UPDATE,
    CMD_CUSTOMER_MERGE,
    CMD_CUSTOMER_DATA_REQUEST,
    CMD_CUSTOMER_REDACT,
    CMD_SHOP_REDACT,
    CMD_UNKNOWN
};

/* "assign", "shop.upsert", ...; "unknown" for CMD_UNKNOWN. */
const char *decode_type_name(enum b2bd_cmd_type t);
/* The type named by the len bytes at s ("assign"); CMD_UNKNOWN if none. */
enum b2bd_cmd_type decode_type_from_name(const char *s, size_t len);
/* The topic a type belongs to (its own; the bulk topic takes every type too). */
enum b2bd_topic decode_type_topic(enum b2bd_cmd_type t);

enum b2bd_role { ROLE_ORDERING_ONLY, ROLE_LOCATION_ADMIN };
const char *decode_role_name(enum b2bd_role r);      /* "ordering_only" */
const char *decode_role_label(enum b2bd_role r);     /* "Ordering only" */

enum b2bd_order_status { ORDER_OPEN, ORDER_CLOSED, ORDER_CANCELLED, ORDER_DELETED };
const char *decode_order_status_name(enum b2bd_order_status s);

#endif
