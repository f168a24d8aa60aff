/* apply_bulk_revoke: runs of revokes applied together by b2bd_revoke_bulk. */
#include "apply_bulk_revoke.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "apply_bulk_row.h"
#include "apply_json.h"
#include "b2bd/util.h"

const char BULK_REVOKE_SQL[] = "SELECT i, status, code, field FROM b2bd_revoke_bulk($1::jsonb)";

bool bulk_revoke_eligible(const struct b2bd_command *cmd)
{
    return cmd->type == CMD_REVOKE && !cmd->u.revoke.remove_migrated_orders;
}

size_t bulk_revoke_keys(const struct b2bd_command *cmd, char *out[3])
{
    struct sbuf b = {0};
    sbuf_addf(&b, "c%s", cmd->command_id);
    out[0] = strdup(sbuf_str(&b));
    b.len = 0;
    sbuf_addf(&b, "k%s%c%s", cmd->shop_id, 0x1f, cmd->u.revoke.customer_id);
    out[1] = strdup(sbuf_str(&b));
    sbuf_free(&b);
    if (!out[0] || !out[1])
        abort();
    return 2;
}

static const char *scope_name(enum b2bd_revoke_scope s)
{
    switch (s) {
    case SCOPE_LOCATIONS: return "locations";
    case SCOPE_ALL_LOCATIONS: return "all_locations";
    case SCOPE_COMPANY: return "company";
    }
    return "locations";
}

char *bulk_revoke_rows(const struct bulk_run *r)
{
    json_t *rows = json_array();
    for (size_t i = 0; i < r->n; i++) {
        const struct b2bd_command *cmd = &r->cmds[i];
        const struct b2bd_revoke *p = &cmd->u.revoke;
        json_t *row = bulk_row_new(r, i, p->company_id);
        json_object_set_new(row, "cu", json_string(p->customer_id));
        json_object_set_new(row, "scope", json_string(scope_name(p->scope)));
        json_object_set_new(row, "a", apply_jstr(cmd->actor));
        json_object_set_new(row, "at", apply_jstr(cmd->issued_at));
        if (p->scope == SCOPE_LOCATIONS) {
            json_t *locs = json_array();
            for (size_t k = 0; k < p->n_location_ids; k++)
                json_array_append_new(locs, json_string(p->location_ids[k]));
            json_object_set_new(row, "locs", locs);
        }
        json_array_append_new(rows, row);
    }
    char *s = apply_dump(rows);
    json_decref(rows);
    return s;
}
