/* ctl_import: b2bctl import: CSV rows or JSON Lines to commands, sent and followed to their results. */
#ifndef B2BD_CTL_IMPORT_H
#define B2BD_CTL_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "b2bd/config.h"
#include "b2bd/ctl_csv.h"

/* The columns an import CSV may have, any subset in any order. */
enum ctl_col {
    CTL_COL_EMAIL,
    CTL_COL_FIRST_NAME,
    CTL_COL_LAST_NAME,
    CTL_COL_PHONE,
    CTL_COL_CUSTOMER_ID,
    CTL_COL_LOCATION_ID,
    CTL_COL_ROLE,
    CTL_COL_NOTIFY,
    CTL_COL_COUNT
};

/* What every row of an import shares (from the command line). */
struct ctl_import_opts {
    const char *shop;
    const char *company;
    const char *location;  /* default location, or NULL */
    const char *role;      /* default role, or NULL (ordering_only) */
    bool notify;           /* default notify */
    const char *import_id;
};

/* Which field of a record holds each column (-1: absent), and how many fields a
 * record must have. */
struct ctl_import_columns {
    int at[CTL_COL_COUNT];
    size_t n_fields;
};

/* A UUID version 5 (RFC 4122, SHA-1) of name in namespace ns, 36 lower-case chars + NUL. */
void ctl_uuid_v5(const unsigned char ns[16], const void *name, size_t len, char out[37]);

/* The namespace of import command ids. */
extern const unsigned char ctl_import_namespace[16];

/* The default import id: "imp-" and 32 hex digits of SHA-256 over the file's bytes and,
 * for CSV, the shop, company and the defaults (so the same file imported the same way
 * gets the same id). opts may be NULL (JSON Lines). */
void ctl_import_default_id(const char *data, size_t len, const struct ctl_import_opts *opts,
                           char out[40]);

/* Reads the header record. Returns 0, or -1 with why (an unknown or repeated column,
 * or neither email nor customer_id). */
int ctl_import_header(const struct ctl_csv_record *hdr, struct ctl_import_columns *cols,
                      char *why, size_t why_len);

/* Builds the assign command of one CSV record. Returns the command (with command_id =
 * ctl_uuid_v5(namespace, import_id \n shop_id \n payload in canonical JSON)), or NULL
 * with the column at fault (or "" for the whole row) in field and why. */
json_t *ctl_import_row(const struct ctl_import_opts *opts, const struct ctl_import_columns *cols,
                       const struct ctl_csv_record *rec, char *field, size_t field_len, char *why,
                       size_t why_len);

/* Completes one JSON Lines command: adds import_id when absent, and a command_id
 * (ctl_uuid_v5 of import_id \n the line) when absent. Returns the command, or NULL
 * with why when the line is not a JSON object with a string type and shop_id. */
json_t *ctl_import_jsonl(const char *import_id, const char *line, size_t len, char *why,
                         size_t why_len);

/* The CSV column a result's error field is about ("payload.locations[0].role" ->
 * "role"), or field itself. */
const char *ctl_import_error_column(const char *field);

struct ctl_args;
/* b2bctl import and b2bctl import status. Exit code. */
int ctl_import_run(const struct b2bd_config *cfg, const struct ctl_args *a);
int ctl_import_status_run(const struct b2bd_config *cfg, const struct ctl_args *a);

#endif
