/* apply_audit: the actor and issued_at of the commands being applied, noted for the
 * database (b2bd.audit), where the inbox trigger and the access events read them. */
#include <stdlib.h>

#include "apply_audit.h"
#include "apply_json.h"

static const char SQL_NOTE[] = "SELECT set_config('b2bd.audit', $1, true)";

int audit_note(struct b2bd_db *db, const struct b2bd_command *cmds, size_t n,
               struct b2bd_err *err)
{
    json_t *map = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!cmds[i].actor && !cmds[i].issued_at)
            continue;
        if (!map && !(map = json_object()))
            abort();
        json_t *e = json_object();
        json_object_set_new(e, "a", apply_jstr(cmds[i].actor));
        json_object_set_new(e, "i", apply_jstr(cmds[i].issued_at));
        json_object_set_new(map, cmds[i].command_id, e);
    }
    if (!map)
        return 0;
    char *text = apply_dump(map);
    json_decref(map);
    const char *v[] = {text};
    PGresult *res = db_query(db, SQL_NOTE, 1, v, NULL, NULL, err);
    free(text);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}
