/* apply_bulk_row: the fields every row of a set-based function has. */
#include "apply_bulk_row.h"

#include "apply_json.h"

json_t *bulk_row_new(const struct bulk_run *r, size_t i, const char *company)
{
    const struct b2bd_command *cmd = &r->cmds[i];
    json_t *row = json_object();
    json_object_set_new(row, "i", json_integer((json_int_t)i));
    json_object_set_new(row, "id", json_string(cmd->command_id));
    json_object_set_new(row, "h", apply_hex_or_null(cmd->hash, sizeof cmd->hash));
    json_object_set_new(row, "imp", apply_jstr(cmd->import_id));
    json_object_set_new(row, "k", apply_hex_or_null(r->msgs[i]->key, r->msgs[i]->key_len));
    json_object_set_new(row, "shop", json_string(cmd->shop_id));
    json_object_set_new(row, "co", json_string(company));
    return row;
}
