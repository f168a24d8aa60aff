/* decode: turns the bytes of one Kafka message into a validated, typed command. */
#ifndef B2BD_DECODE_H
#define B2BD_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "b2bd/command_types.h"
#include "b2bd/err.h"
#include "b2bd/idem_hash.h"
#include "b2bd/validate.h"

/* All strings below are borrowed from the command's JSON and live as long as it.
 * NULL means absent (or JSON null). Every string has passed validation: valid UTF-8
 * (jansson guarantees it), no NUL byte, lengths within the contract's limits. */

struct b2bd_loc_role {
    const char *location_id;
    enum b2bd_role role;
};

struct b2bd_assign {
    const char *company_id;
    /* customer: by id, or by email (with profile fields), or both */
    const char *customer_id;
    const char *email;
    const char *first_name;
    const char *last_name;
    const char *phone;
    struct b2bd_loc_role *locations; /* owned array, n_locations entries */
    size_t n_locations;
    const char *migrate_orders_to;
    bool notify;
};

enum b2bd_revoke_scope { SCOPE_LOCATIONS, SCOPE_ALL_LOCATIONS, SCOPE_COMPANY };

struct b2bd_revoke {
    const char *company_id;
    const char *customer_id;
    enum b2bd_revoke_scope scope;
    const char **location_ids; /* owned array; only with SCOPE_LOCATIONS */
    size_t n_location_ids;
    bool remove_migrated_orders;
};

/* suspend and resume: the company, or one contact of it (customer_id set). */
struct b2bd_suspend {
    const char *company_id;
    const char *customer_id; /* NULL: the whole company */
};

struct b2bd_migrate {
    const char *company_id;
    const char *location_id;
    const char *customer_id;
};

enum b2bd_recipient { RECIPIENT_CUSTOMER, RECIPIENT_STAFF };

struct b2bd_notify {
    const char *company_id;
    const char *location_id;   /* optional */
    const char **customer_ids; /* owned array */
    size_t n_customer_ids;
    enum b2bd_recipient recipient;
    const char *staff_email;   /* optional */
    bool preview;
    const char *resend_of;     /* optional notification id (UUID) */
};

struct b2bd_shop_upsert {
    const char *name;
    const char *account_url;
    const char *from_email;
    const char *staff_email;
    bool b2b_only;
    const char *source_updated_at; /* RFC 3339, optional (also in the other upserts) */
};

struct b2bd_location_upsert {
    const char *location_id;
    const char *name;
};

struct b2bd_company_upsert {
    const char *company_id;
    const char *name;
    struct b2bd_location_upsert *locations; /* owned array */
    size_t n_locations;
    const char *source_updated_at;
};

struct b2bd_customer_upsert {
    const char *customer_id;
    const char *email;
    const char *first_name;
    const char *last_name;
    const char *phone;
    const char **tags;  /* owned array, at most 250, duplicates (case-insensitive) removed */
    size_t n_tags;
    const char *source_updated_at;
};

struct b2bd_order_upsert {
    const char *order_id;
    const char *customer_id;
    enum b2bd_order_status status;
    const char *company_id;  /* both set (B2B order) or both NULL (D2C) */
    const char *location_id;
    const char *placed_at;   /* RFC 3339 timestamp, optional */
    const char *total;       /* decimal string, optional */
    const char *currency;    /* ISO 4217, three upper-case letters, optional */
    const char *source_updated_at;
};

struct b2bd_template_update {
    const char *subject;
    const char *text;
    const char *html;
};

struct b2bd_customer_merge {
    const char *customer_id;       /* kept */
    const char *merge_customer_id; /* merged into the first, then deleted */
};

/* customer.data_request and customer.redact: exactly one of the two is set. */
struct b2bd_customer_ref {
    const char *customer_id;
    const char *email;
};

struct b2bd_command {
    json_t *root;              /* owned: the whole message */
    char command_id[37];       /* canonical lower-case UUID text */
    const char *type_name;     /* as sent (borrowed), NULL if absent or not a string */
    enum b2bd_cmd_type type;
    const char *shop_id;       /* as sent (borrowed), NULL if absent or not a string */
    const char *issued_at;     /* optional, borrowed */
    const char *actor;         /* optional, borrowed */
    const char *import_id;     /* optional, borrowed */
    json_t *payload;           /* borrowed */
    unsigned char hash[32];    /* SHA-256 of the canonical {type, shop_id, payload} */
    bool dry_run;              /* "dry_run": true on a type that has dry runs (CONTRACT
                                  "Trace context and dry runs"): judged, then undone */
    union {
        struct b2bd_assign assign;
        struct b2bd_revoke revoke;
        struct b2bd_migrate migrate;
        struct b2bd_suspend suspend; /* suspend, resume */
        struct b2bd_notify notify;
        struct b2bd_shop_upsert shop;
        struct b2bd_company_upsert company;
        struct b2bd_customer_upsert customer;
        struct b2bd_order_upsert order;
        struct b2bd_template_update tmpl;
        struct b2bd_customer_merge merge;
        struct b2bd_customer_ref subject; /* customer.data_request, customer.redact */
    } u;
};

enum decode_outcome {
    DECODE_OK,         /* a valid command: apply it */
    DECODE_REJECTED,   /* a command, but invalid: err has a rejection code; the
                          envelope fields that could be read are set in cmd */
    DECODE_DEAD_LETTER /* not a command: err has NOT_JSON, NOT_A_COMMAND or TOO_LARGE */
};

/* Decodes and validates one message that arrived on topic `topic`.
 * cmd is always initialised; release it with decode_free() whatever the outcome. */
enum decode_outcome decode_command(const void *buf, size_t len, size_t max_bytes,
                                   enum b2bd_topic topic, struct b2bd_command *cmd,
                                   struct b2bd_err *err);

void decode_free(struct b2bd_command *cmd);

#endif
