/* apply_bulk: runs of plain assigns applied together by b2bd_assign_bulk, and runs of
 * revokes by b2bd_revoke_bulk (apply_bulk_revoke.c). */
#include "apply_bulk.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "apply_bulk_revoke.h"
#include "apply_bulk_row.h"
#include "apply_domain.h"
#include "apply_json.h"
#include "b2bd/log.h"
#include "b2bd/util.h"

static const char SQL_BULK[] = "SELECT i, status, code, field FROM b2bd_assign_bulk($1::jsonb, $2)";
#define STMT_BULK_SAVEPOINT ((struct db_stmt){.sql = "SAVEPOINT bulk", .simple = 1})
#define STMT_BULK_RELEASE ((struct db_stmt){.sql = "RELEASE SAVEPOINT bulk", .simple = 1})

void bulk_init(struct bulk_run *r, size_t cap)
{
    memset(r, 0, sizeof *r);
    r->cap = cap ? cap : 1;
    r->msgs = calloc(r->cap, sizeof *r->msgs);
    r->cmds = calloc(r->cap, sizeof *r->cmds);
    /* up to three keys a command, the table at most a quarter full */
    r->cap_keys = 16;
    while (r->cap_keys < r->cap * 12)
        r->cap_keys *= 2;
    r->keys = calloc(r->cap_keys, sizeof *r->keys);
    if (!r->msgs || !r->cmds || !r->keys)
        abort();
}

void bulk_clear(struct bulk_run *r)
{
    for (size_t i = 0; i < r->n; i++)
        decode_free(&r->cmds[i]);
    r->n = 0;
    for (size_t i = 0; i < r->cap_keys && r->n_keys; i++) {
        if (r->keys[i]) {
            free(r->keys[i]);
            r->keys[i] = NULL;
            r->n_keys--;
        }
    }
}

void bulk_free(struct bulk_run *r)
{
    bulk_clear(r);
    free(r->msgs);
    free(r->cmds);
    free(r->keys);
    memset(r, 0, sizeof *r);
}

bool bulk_eligible(const struct b2bd_command *cmd)
{
    /* a dry run of a revoke goes one by one: b2bd_revoke_bulk has no dry run */
    return (cmd->type == CMD_ASSIGN && !cmd->u.assign.migrate_orders_to && !cmd->u.assign.notify)
           || (bulk_revoke_eligible(cmd) && !cmd->dry_run);
}

/* ---- the run's keys: "c" command id, "k" shop + customer id or lower-case email ---- */

static uint64_t key_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* The slot of key s: where it is, or the empty slot where it would go. */
static size_t key_slot(const struct bulk_run *r, const char *s)
{
    size_t i = (size_t)key_hash(s) & (r->cap_keys - 1);
    while (r->keys[i] && strcmp(r->keys[i], s) != 0)
        i = (i + 1) & (r->cap_keys - 1);
    return i;
}

/* The keys of a command (at most 3), as allocated strings. Emails are folded to ASCII
 * lower case here, which keeps most commands that meet apart, but not all: how
 * PostgreSQL's lower() folds the rest depends on the database's locale, and whether an
 * id names the customer of an email is known only there. The keys only spare the bulk
 * function runs it would hand back: b2bd_assign_bulk (sql/functions/assign.sql) hands
 * back every run where two rows may name one customer, by the database's own lower()
 * and the customers it finds. */
static size_t cmd_keys(const struct b2bd_command *cmd, char *out[3])
{
    if (cmd->type == CMD_REVOKE)
        return bulk_revoke_keys(cmd, out);
    const struct b2bd_assign *p = &cmd->u.assign;
    size_t n = 0;
    struct sbuf b = {0};
    sbuf_addf(&b, "c%s", cmd->command_id);
    out[n++] = strdup(sbuf_str(&b));
    if (p->customer_id) {
        b.len = 0;
        sbuf_addf(&b, "k%s%c%s", cmd->shop_id, 0x1f, p->customer_id);
        out[n++] = strdup(sbuf_str(&b));
    }
    if (p->email) {
        b.len = 0;
        sbuf_addf(&b, "k%s%c", cmd->shop_id, 0x1f);
        for (const char *s = p->email; *s; s++)
            sbuf_addf(&b, "%c", tolower((unsigned char)*s));
        out[n++] = strdup(sbuf_str(&b));
    }
    sbuf_free(&b);
    for (size_t i = 0; i < n; i++)
        if (!out[i])
            abort();
    return n;
}

bool bulk_try_add(struct bulk_run *r, const struct b2bd_msg *msg, struct b2bd_command *cmd)
{
    if (r->n == r->cap ||
        (r->n > 0 && (r->cmds[0].type != cmd->type || r->cmds[0].dry_run != cmd->dry_run)))
        return false; /* full, or a run of the other kind (dry runs and real commands apart) */
    char *k[3];
    size_t n = cmd_keys(cmd, k);
    bool fits = true;
    for (size_t i = 0; i < n; i++)
        fits = fits && !r->keys[key_slot(r, k[i])];
    for (size_t i = 0; i < n; i++) {
        /* probed again: an earlier key of this command may sit where this one would */
        size_t slot = key_slot(r, k[i]);
        if (fits && !r->keys[slot]) {
            r->keys[slot] = k[i]; /* its id may be its own email: kept once */
            r->n_keys++;
        } else {
            free(k[i]);
        }
    }
    if (!fits)
        return false;
    r->msgs[r->n] = msg;
    r->cmds[r->n++] = *cmd;
    memset(cmd, 0, sizeof *cmd);
    return true;
}

/* ---- applying ---------------------------------------------------------------------- */

/* The run as b2bd_assign_bulk reads it (see the function's comment). */
static char *bulk_rows(const struct bulk_run *r)
{
    json_t *rows = json_array();
    for (size_t i = 0; i < r->n; i++) {
        const struct b2bd_command *cmd = &r->cmds[i];
        const struct b2bd_assign *p = &cmd->u.assign;
        json_t *locs = json_array(), *roles = json_array();
        for (size_t k = 0; k < p->n_locations; k++) {
            json_array_append_new(locs, json_string(p->locations[k].location_id));
            json_array_append_new(roles, json_string(decode_role_name(p->locations[k].role)));
        }
        json_t *row = bulk_row_new(r, i, p->company_id);
        json_object_set_new(row, "cu", apply_jstr(p->customer_id));
        json_object_set_new(row, "em", apply_jstr(p->email));
        json_object_set_new(row, "fn", apply_jstr(p->first_name));
        json_object_set_new(row, "ln", apply_jstr(p->last_name));
        json_object_set_new(row, "ph", apply_jstr(p->phone));
        json_object_set_new(row, "locs", locs);
        json_object_set_new(row, "roles", roles);
        json_object_set_new(row, "a", apply_jstr(cmd->actor));
        json_object_set_new(row, "at", apply_jstr(cmd->issued_at));
        json_array_append_new(rows, row);
    }
    char *s = apply_dump(rows);
    json_decref(rows);
    return s;
}

static int bulk_outcomes(const struct bulk_run *r, PGresult *res, struct bulk_outcome *out)
{
    if (PQntuples(res) != (int)r->n)
        return -1;
    for (int row = 0; row < PQntuples(res); row++) {
        long i = strtol(PQgetvalue(res, row, 0), NULL, 10);
        if (i < 0 || (size_t)i >= r->n)
            return -1;
        const char *status = PQgetvalue(res, row, 1);
        struct bulk_outcome *o = &out[i];
        b2bd_err_clear(&o->why);
        if (strcmp(status, "applied") == 0) {
            o->status = BULK_APPLIED;
        } else if (strcmp(status, "duplicate") == 0) {
            o->status = BULK_DUPLICATE;
        } else {
            o->status = BULK_REJECTED;
            b2bd_err_set(&o->why, b2bd_code_from_name(PQgetvalue(res, row, 2)),
                         PQgetisnull(res, row, 3) ? NULL : PQgetvalue(res, row, 3), "%s",
                         PQgetvalue(res, row, 2));
        }
    }
    return 0;
}

int bulk_apply(struct b2bd_db *db, struct bulk_run *r, struct bulk_outcome *out,
               struct b2bd_err *err)
{
    bool revokes = r->n > 0 && r->cmds[0].type == CMD_REVOKE;
    char *rows = revokes ? bulk_revoke_rows(r) : bulk_rows(r);
    char max[16];
    snprintf(max, sizeof max, "%d", COMPANY_MAX_CONTACTS);
    const char *v[] = {rows, max};
    struct db_stmt stmts[] = {STMT_BULK_SAVEPOINT,
                              {.sql = revokes ? BULK_REVOKE_SQL : SQL_BULK, .n = revokes ? 1 : 2,
                               .values = v},
                              STMT_BULK_RELEASE};
    PGresult *res[3];
    int rc = db_pipeline(db, stmts, 3, res, err);
    free(rows);
    if (rc == 0) {
        rc = bulk_outcomes(r, res[1], out);
        for (int i = 0; i < 3; i++)
            PQclear(res[i]);
        if (rc == 0)
            return 0;
        /* cannot happen: the function returns one row per command */
        b2bd_err_set(err, B2BD_ERR_INTERNAL, NULL, "%s returned a bad outcome",
                     revokes ? "b2bd_revoke_bulk" : "b2bd_assign_bulk");
        return -1;
    }
    if (!db_connected(db))
        return -1;
    /* B2B02: rows the function hands back; anything else: a race or a value the
     * one-by-one path turns into a rejection */
    log_info("apply", "bulk_fallback", LOG_UINT("commands", r->n),
             LOG_STR("sqlstate", db->sqlstate));
    struct b2bd_err ignored;
    if (db_exec(db, "ROLLBACK TO SAVEPOINT bulk", &ignored) < 0 ||
        db_exec(db, "RELEASE SAVEPOINT bulk", &ignored) < 0) {
        *err = ignored;
        return -1;
    }
    return 1;
}
