/* apply: applies batches of consumed messages to PostgreSQL, exactly once each. */
#include "b2bd/apply.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply_assign.h"
#include "apply_audit.h"
#include "apply_bulk.h"
#include "apply_cmd.h"
#include "apply_json.h"
#include "apply_limit.h"
#include "apply_migrate.h"
#include "apply_notify.h"
#include "apply_privacy.h"
#include "apply_revoke.h"
#include "apply_suspend.h"
#include "apply_shop.h"
#include "b2bd/fault.h"
#include "b2bd/log.h"
#include "b2bd/outbox.h"
#include "b2bd/trace.h"

/* A command that meets the surroundings' failure (a deadlock, say) or a unique-key race
 * (fault_classify) is tried again this often within its batch before the whole batch is
 * rolled back and retried (the surroundings') or the command rejected CONFLICT (a race).
 * Any other failure is tried once more, and then it is the command's own: the command is
 * rejected. */
#define APPLY_COMMAND_TRIES 3
#define APPLY_COMMAND_TRIES_OWN_FAULT 2
/* Runs of fewer assigns go the one-by-one path: planning the bulk function's statements
 * costs more than it saves for one or two (bench/apply_bench: batches of 1, 5, 20). */
#define APPLY_BULK_MIN_RUN 3
/* How much of a TOO_LARGE message its dead letter keeps. */
#define APPLY_DLQ_KEEP_BYTES (64 * 1024)

static const char SQL_OFFSET_ENSURE[] =
    "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset)"
    " VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING";
static const char SQL_OFFSET_LOCK[] =
    "SELECT next_offset FROM consumer_offsets"
    " WHERE group_id = $1 AND topic = $2 AND partition = $3 FOR UPDATE";
static const char SQL_OFFSET_SET[] =
    "UPDATE consumer_offsets SET next_offset = $4, updated_at = now()"
    " WHERE group_id = $1 AND topic = $2 AND partition = $3";
static const char SQL_INBOX_GET[] =
    "SELECT payload_hash = $2, result FROM commands WHERE command_id = $1";
/* A command's result message is built by b2bd_result_text (sql/functions/result.sql), the one
 * definition the set-based path uses too. An applied command's goes into its inbox row
 * and the outbox in one statement; b2bd_result_checked raises B2B14 when it would be over
 * the message limit (apply_limit.c). */
static const char SQL_RESULT_APPLIED[] =
    "WITH m AS MATERIALIZED (SELECT b2bd_result_checked($6::bytea, b2bd_result_text(gen_random_uuid(),"
    "  $1::text, $3::text, $2::text, $5::text, $7::text, NULL, NULL, NULL, b2bd_now_text())) AS t),"
    " inbox AS (INSERT INTO commands (command_id, shop_id, type, payload_hash, import_id, result)"
    "  SELECT $1::text::uuid, $2, $3, $4::bytea, $5, m.t FROM m)"
    " INSERT INTO outbox (topic, key, value) SELECT $8::text, $6, convert_to(m.t, 'UTF8') FROM m";
/* A dry run's result (applied or not): marked by b2bd_result_text, written after the
 * command was undone, with an id of its own (the default withholds one during a dry run:
 * sql/migrations/0022_dry_run.sql). */
static const char SQL_RESULT_DRY[] =
    "INSERT INTO outbox (id, topic, key, value) SELECT nextval('outbox_id_seq'), $7::text, $5::bytea,"
    " convert_to(b2bd_result_checked($5::bytea, b2bd_result_text(gen_random_uuid(), $1::text, $3::text,"
    " $2::text, $4::text, $6::text, NULL, NULL, NULL, b2bd_now_text())), 'UTF8')";
static const char SQL_RESULT_REJECTED[] =
    "INSERT INTO outbox (id, topic, key, value) SELECT nextval('outbox_id_seq'), $1::text, $2::bytea,"
    " convert_to(b2bd_result_text(gen_random_uuid(), $3::text, $4::text, $5::text, $6::text, NULL,"
    " $7::text, $8::text, $9::text, b2bd_now_text()), 'UTF8')";
/* The parameters of a result statement; they live until it ran. */
struct result_params {
    const char *values[9];
    int lengths[9];
    int formats[9];
};
static const char SQL_ACCESS_EMIT[] = "SELECT b2bd_emit_access($1, $2, $3)";
static const char SQL_LIMIT_SET[] = "SELECT set_config('b2bd.max_message_bytes', $1, true)";
/* The trace headers (trace.h) that the outbox rows written from now on in the open
 * transaction carry: the outbox's default (sql/migrations/0021_trace_context.sql), so the
 * SQL functions that write outbox rows need not know of it. */
/* b2bd.dry_run: 'on' while the writes are a dry run's (CONTRACT "Trace context and dry
 * runs"; what it changes in the rules: sql/functions/dry_run.sql). */
static const char SQL_TRACE_SET[] =
    "SELECT set_config('b2bd.trace', $1, true), set_config('b2bd.dry_run', $2, true)";

/* The b2bd.trace (NULL: not set, as "") and b2bd.dry_run of the open transaction, as last
 * set. They are set outside any command's savepoint, so that a rollback to one keeps
 * them. */
struct trace_set {
    char *now;
    bool dry;
};

/* The statement that sets b2bd.trace to t's headers and b2bd.dry_run to dry, or none
 * (returns false) when they are so already; v holds its parameters until it ran. */
static bool apply_trace_stmt(struct trace_set *ts, const struct trace_out *t, bool dry,
                             struct db_stmt *s, const char *v[2])
{
    const char *want = t && t->headers ? t->headers : "";
    if (strcmp(want, ts->now ? ts->now : "") == 0 && dry == ts->dry)
        return false;
    free(ts->now);
    if (!(ts->now = strdup(want)))
        abort();
    ts->dry = dry;
    v[0] = ts->now;
    v[1] = dry ? "on" : "";
    *s = (struct db_stmt){.sql = SQL_TRACE_SET, .n = 2, .values = v};
    return true;
}

/* Sets b2bd.trace to t's headers and b2bd.dry_run to dry on their own, when needed.
 * Returns 0 or -1 with err. */
static int apply_trace_set(struct b2bd_db *db, struct trace_set *ts, const struct trace_out *t,
                           bool dry, struct b2bd_err *err)
{
    struct db_stmt s;
    const char *v[2];
    if (!apply_trace_stmt(ts, t, dry, &s, v))
        return 0;
    return db_pipeline(db, &s, 1, NULL, err);
}

/* The log fields that name a command's message (and its trace, when it has one); f has
 * room for 6. Returns how many. */
static size_t apply_msg_fields(struct log_field *f, const struct b2bd_msg *msg,
                               const struct trace_out *t)
{
    size_t n = 0;
    f[n++] = LOG_STR("topic", msg->topic_name);
    f[n++] = LOG_INT("partition", msg->partition);
    f[n++] = LOG_INT("offset", msg->offset);
    if (t && t->trace_id[0])
        f[n++] = LOG_STR("trace_id", t->trace_id);
    return n;
}
/* A command's savepoint: it is all or nothing within the batch's transaction. */
#define STMT_SAVEPOINT ((struct db_stmt){.sql = "SAVEPOINT cmd", .simple = 1})
#define STMT_RELEASE ((struct db_stmt){.sql = "RELEASE SAVEPOINT cmd", .simple = 1})
#define STMT_ROLLBACK_TO ((struct db_stmt){.sql = "ROLLBACK TO SAVEPOINT cmd", .simple = 1})

static enum b2bd_code apply_unsupported(struct apply_cmd *c, struct b2bd_err *err)
{
    return b2bd_err_set(err, B2BD_UNPROCESSABLE, "type", "%s is not supported by this version of b2bd",
                        decode_type_name(c->cmd->type));
}

static apply_fn apply_fn_for(enum b2bd_cmd_type t)
{
    switch (t) {
    case CMD_SHOP_UPSERT: return apply_shop_upsert_tracked;
    case CMD_COMPANY_UPSERT: return apply_company_upsert_tracked;
    case CMD_CUSTOMER_UPSERT: return apply_customer_upsert_tracked;
    case CMD_ORDER_UPSERT: return apply_order_upsert_tracked;
    case CMD_ASSIGN: return apply_assign;
    case CMD_REVOKE: return apply_revoke;
    case CMD_SUSPEND:
    case CMD_RESUME: return apply_suspend;
    case CMD_MIGRATE: return apply_migrate;
    case CMD_NOTIFY: return apply_notify;
    case CMD_TEMPLATE_UPDATE: return apply_template_update;
    case CMD_CUSTOMER_MERGE: return apply_customer_merge;
    case CMD_CUSTOMER_DATA_REQUEST: return apply_customer_data_request;
    case CMD_CUSTOMER_REDACT: return apply_customer_redact;
    case CMD_SHOP_REDACT: return apply_shop_redact;
    default: return apply_unsupported;
    }
}

/* Writes a `rejected` result (the message built by b2bd_result_text). */
static struct db_stmt apply_rejected_stmt(const struct b2bd_msg *msg, const struct b2bd_command *cmd,
                                          const struct b2bd_err *e, struct result_params *p)
{
    *p = (struct result_params){
        .values = {OUTBOX_RESULTS, msg->key, cmd->command_id, cmd->type_name, cmd->shop_id,
                   cmd->import_id, b2bd_code_name(e->code), e->msg, e->field[0] ? e->field : NULL},
        .lengths = {0, (int)msg->key_len},
        .formats = {0, 1},
    };
    return (struct db_stmt){.sql = SQL_RESULT_REJECTED, .n = 9, .values = p->values,
                            .lengths = p->lengths, .formats = p->formats};
}

/* Ends a rejected command in one round trip: undo its changes (when rollback), write its
 * `rejected` result, release its savepoint. */
static int apply_finish_rejected(struct b2bd_db *db, const struct b2bd_msg *msg,
                                 const struct b2bd_command *cmd, const struct b2bd_err *why,
                                 int rollback, struct b2bd_err *err)
{
    struct result_params p;
    struct db_stmt stmts[3];
    int n = 0;
    if (rollback)
        stmts[n++] = STMT_ROLLBACK_TO;
    stmts[n++] = apply_rejected_stmt(msg, cmd, why, &p);
    stmts[n++] = STMT_RELEASE;
    return db_pipeline(db, stmts, n, NULL, err);
}

/* A rejection outside any savepoint (decoding): its result only. */
static int apply_emit_rejected(struct b2bd_db *db, const struct b2bd_msg *msg,
                               const struct b2bd_command *cmd, const struct b2bd_err *why,
                               struct b2bd_err *err)
{
    struct result_params p;
    struct db_stmt s = apply_rejected_stmt(msg, cmd, why, &p);
    return db_pipeline(db, &s, 1, NULL, err);
}

static int apply_emit_dead_letter(struct b2bd_db *db, const struct b2bd_config *cfg,
                                  const struct b2bd_msg *msg, const struct b2bd_err *why,
                                  struct b2bd_err *err)
{
    char partition[16], offset[24], size[24];
    snprintf(partition, sizeof partition, "%d", (int)msg->partition);
    snprintf(offset, sizeof offset, "%lld", (long long)msg->offset);
    json_t *h = json_pack("[[ss][ss][ss][ss][ss]]", "error.code", b2bd_code_name(why->code),
                          "error.message", why->msg, "source.topic", msg->topic_name,
                          "source.partition", partition, "source.offset", offset);
    /* A message over the size limit would be refused by Kafka again, and so would one
     * just under it with the headers added: keep its start, and say so in two more
     * headers. */
    size_t value_len = msg->value_len;
    char *headers = apply_dump(h);
    if (value_len > APPLY_DLQ_KEEP_BYTES &&
        (why->code == B2BD_TOO_LARGE ||
         !apply_message_fits(cfg, msg->key_len + value_len + strlen(headers)))) {
        value_len = APPLY_DLQ_KEEP_BYTES;
        snprintf(size, sizeof size, "%zu", msg->value_len);
        json_array_append_new(h, json_pack("[ss]", "source.size", size));
        json_array_append_new(h, json_pack("[ss]", "value.truncated", "true"));
        free(headers);
        headers = apply_dump(h);
    }
    json_decref(h);
    int rc = outbox_append(db, OUTBOX_DLQ, msg->key, msg->key_len, msg->value, value_len,
                           headers, err);
    free(headers);
    return rc;
}

/* The statement that publishes the whole access of one customer with its next version
 * (b2bd_emit_access, sql/functions/access.sql, which makes the event's id and
 * time); its values live in p until it ran. */
static struct db_stmt apply_access_stmt(struct apply_cmd *c, const char *customer_id,
                                        const char *p[3])
{
    p[0] = c->cmd->shop_id;
    p[1] = customer_id;
    p[2] = c->cmd->command_id;
    return (struct db_stmt){.sql = SQL_ACCESS_EMIT, .n = 3, .values = p};
}

/* Applies a decoded, valid command after the idempotency check: its business rows,
 * its inbox row, its result and its events. Runs inside the command's savepoint. A dry
 * run goes as far as its events (their size is checked: sql/migrations/0022_dry_run.sql),
 * is undone, and keeps only its result, without an inbox row. */
static enum b2bd_code apply_fresh(struct apply_cmd *c, const struct b2bd_msg *msg,
                                  struct b2bd_err *err)
{
    if (audit_note(c->db, c->cmd, 1, err) < 0)
        return B2BD_ERR_DB;
    enum b2bd_code code = apply_fn_for(c->cmd->type)(c, err);
    if (code == B2BD_ERR_DB && apply_is_access_too_large(c->db))
        return apply_access_too_large(c, err);
    if (code != B2BD_OK)
        return code;
    char *body = apply_dump(c->result);

    /* its access events, (a dry run: the undoing,) its inbox row and result, and the
     * savepoint's release: one round trip */
    size_t n = c->n_touched + 3;
    struct db_stmt *stmts = calloc(n, sizeof *stmts);
    const char *(*ap)[3] = calloc(c->n_touched ? c->n_touched : 1, sizeof *ap);
    if (!stmts || !ap)
        abort();
    size_t k = 0;
    for (size_t i = 0; i < c->n_touched; i++)
        stmts[k++] = apply_access_stmt(c, c->touched[i], ap[i]);
    const struct b2bd_command *cmd = c->cmd;
    const char *v[] = {cmd->command_id, cmd->shop_id, cmd->type_name, (const char *)cmd->hash,
                       cmd->import_id, msg->key, body, OUTBOX_RESULTS};
    int len[] = {0, 0, 0, 32, 0, (int)msg->key_len, 0, 0};
    int fmt[] = {0, 0, 0, 1, 0, 1, 0, 0};
    const char *dv[] = {cmd->command_id, cmd->shop_id, cmd->type_name, cmd->import_id, msg->key,
                        body, OUTBOX_RESULTS};
    int dlen[] = {0, 0, 0, 0, (int)msg->key_len, 0, 0};
    int dfmt[] = {0, 0, 0, 0, 1, 0, 0};
    if (cmd->dry_run) {
        stmts[k++] = STMT_ROLLBACK_TO;
        stmts[k++] = (struct db_stmt){.sql = SQL_RESULT_DRY, .n = 7, .values = dv, .lengths = dlen,
                                      .formats = dfmt};
    } else {
        stmts[k++] = (struct db_stmt){.sql = SQL_RESULT_APPLIED, .n = 8, .values = v, .lengths = len,
                                      .formats = fmt};
    }
    stmts[k++] = STMT_RELEASE;
    int rc = db_pipeline(c->db, stmts, (int)k, NULL, err);
    free(body);
    free(stmts);
    free(ap);
    if (rc < 0 && apply_is_access_too_large(c->db))
        return apply_access_too_large(c, err);
    if (rc < 0 && apply_is_result_too_large(c->db))
        return apply_result_too_large(c, err);
    return rc < 0 ? B2BD_ERR_DB : B2BD_OK;
}

enum cmd_outcome { OUT_APPLIED, OUT_REJECTED, OUT_DUPLICATE };

/* One attempt at a command inside its savepoint, given its inbox lookup (res, freed
 * here). On success the savepoint is released. Returns 0 with *out set, or -1 with a
 * database error (the caller rolls back to the savepoint). */
static int apply_attempt(struct apply_cmd *c, const struct b2bd_msg *msg, PGresult *res,
                         enum cmd_outcome *out, struct b2bd_err *err)
{
    const struct b2bd_command *cmd = c->cmd;
    if (PQntuples(res) == 1) {
        int same = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        int rc;
        if (same) {
            /* the stored result again, unchanged */
            const char *stored = PQgetvalue(res, 0, 1);
            struct outbox_row row;
            struct db_stmt stmts[] = {outbox_row(&row, OUTBOX_RESULTS, msg->key, msg->key_len,
                                                 stored, strlen(stored), NULL),
                                      STMT_RELEASE};
            rc = db_pipeline(c->db, stmts, 2, NULL, err);
            *out = OUT_DUPLICATE;
        } else {
            struct b2bd_err why;
            b2bd_err_set(&why, B2BD_IDEMPOTENCY_KEY_REUSED, "command_id",
                         "command_id was already used by a command with another type, "
                         "shop_id or payload");
            rc = apply_finish_rejected(c->db, msg, cmd, &why, 0, err);
            c->rejected = why;
            *out = OUT_REJECTED;
        }
        PQclear(res);
        return rc;
    }
    PQclear(res);

    struct b2bd_err why;
    b2bd_err_clear(&why);
    enum b2bd_code code = apply_fresh(c, msg, &why);
    if (code == B2BD_OK) {
        *out = OUT_APPLIED;
        return 0;
    }
    if (!b2bd_code_is_rejection(code)) {
        *err = why;
        return -1;
    }
    /* rejected: undo its changes, keep only the result */
    *out = OUT_REJECTED;
    c->rejected = why;
    return apply_finish_rejected(c->db, msg, cmd, &why, 1, err);
}

static void apply_log_outcome(const struct b2bd_msg *msg, const struct b2bd_command *cmd,
                              const char *event, const struct b2bd_err *why,
                              const struct trace_out *t)
{
    struct log_field f[11];
    size_t n = 0;
    f[n++] = LOG_STR("cmd_id", cmd->command_id);
    f[n++] = LOG_STR("type", cmd->type_name ? cmd->type_name : "");
    if (cmd->dry_run)
        f[n++] = LOG_STR("dry_run", "true");
    n += apply_msg_fields(f + n, msg, NULL);
    if (why) {
        f[n++] = LOG_STR("code", b2bd_code_name(why->code));
        f[n++] = LOG_STR("field", why->field[0] ? why->field : "-");
    }
    if (t && t->trace_id[0])
        f[n++] = LOG_STR("trace_id", t->trace_id);
    log_fields(why ? LOG_INFO : LOG_DEBUG, "apply", event, f, n);
}

/* Whose a failure is (fault_classify, of the connection's state and last SQLSTATE). A
 * failure outside the database, on a live connection with no SQLSTATE (B2BD_ERR_INTERNAL:
 * a result that cannot be built), is the command's. */
static enum fault_class apply_fault(const struct b2bd_db *db, const struct b2bd_err *err)
{
    if (db_connected(db) && !db->sqlstate[0] && err->code == B2BD_ERR_INTERNAL)
        return FAULT_COMMAND;
    return fault_classify(db->sqlstate, db_connected(db));
}

/* True when a failure is the surroundings' (retried, never the command's rejection). */
static bool apply_transient(const struct b2bd_db *db, const struct b2bd_err *err)
{
    return apply_fault(db, err) == FAULT_SURROUNDINGS;
}

/* Logs the database's own account of a failure that is a command's (or a batch's): the
 * n_what fields that say whose (at most 5), then sqlstate, code and error. */
static void apply_log_refused(const struct b2bd_db *db, const char *event,
                              const struct log_field *what, size_t n_what,
                              const struct b2bd_err *err, const struct b2bd_err *why)
{
    struct log_field f[8];
    size_t n = n_what < 5 ? n_what : 5;
    memcpy(f, what, n * sizeof *f);
    f[n++] = LOG_STR("sqlstate", db->sqlstate[0] ? db->sqlstate : "-");
    f[n++] = LOG_STR("code", b2bd_code_name(why->code));
    f[n++] = LOG_STR("error", db->err_message[0] ? db->err_message : err->msg);
    log_fields(LOG_WARN, "apply", event, f, n);
}

/* Rejects a command the database refused (see fault_rejection): undoes its changes,
 * writes its `rejected` result with a message for the producer, logs the database's. */
static int apply_reject_refused(struct b2bd_db *db, const struct b2bd_msg *msg,
                                const struct b2bd_command *cmd, const struct trace_out *t,
                                struct b2bd_err *out, struct b2bd_err *err)
{
    struct b2bd_err why;
    fault_rejection(db->sqlstate, &why);
    struct log_field what[5];
    what[0] = LOG_STR("cmd_id", cmd->command_id);
    size_t n_what = 1 + apply_msg_fields(what + 1, msg, t);
    apply_log_refused(db, "command_refused", what, n_what, err, &why);
    *out = why;
    return apply_finish_rejected(db, msg, cmd, &why, 1, err);
}

/* Counts and logs a command's outcome. A dry run counts as one (st->dry_runs), never as
 * applied, rejected or a repeat: nothing of it stays. */
static void apply_count(const struct b2bd_msg *msg, const struct b2bd_command *cmd,
                        enum cmd_outcome out, const struct b2bd_err *why,
                        const struct trace_out *t, struct apply_stats *st)
{
    if (cmd->dry_run) {
        st->dry_runs++;
        apply_log_outcome(msg, cmd, out == OUT_APPLIED ? "dry_run_applied"
                                    : out == OUT_DUPLICATE ? "duplicate" : "dry_run_rejected",
                          out == OUT_REJECTED ? why : NULL, t);
    } else if (out == OUT_APPLIED) {
        st->applied++;
        st->applied_by_type[cmd->type]++;
        apply_log_outcome(msg, cmd, "applied", NULL, t);
    } else if (out == OUT_DUPLICATE) {
        st->duplicates++;
        apply_log_outcome(msg, cmd, "duplicate", NULL, t);
    } else {
        st->rejected++;
        st->rejected_by_type[cmd->type]++;
        st->by_code[why->code]++;
        apply_log_outcome(msg, cmd, "rejected", why, t);
    }
}

/* Applies one decoded, valid command on its own, in its savepoint. Returns 0 or -1
 * (database error: the batch must be rolled back). */
static int apply_one(struct b2bd_applier *a, const struct b2bd_msg *msg,
                     const struct b2bd_command *cmd, const struct trace_out *t,
                     struct trace_set *ts, struct apply_stats *st, struct b2bd_err *err)
{
    struct apply_cmd c = {.db = a->db, .cfg = a->cfg, .cmd = cmd,
                          .email_default = a->email_default};
    enum cmd_outcome out = OUT_APPLIED;
    int rc = -1;
    const char *iv[] = {cmd->command_id, (const char *)cmd->hash};
    int ilen[] = {0, 32};
    int ifmt[] = {0, 1};
    bool refused = false;
    for (int attempt = 1; attempt <= APPLY_COMMAND_TRIES; attempt++) {
        /* its trace (when it changes), its savepoint and its inbox lookup: one round trip */
        struct db_stmt first[3];
        const char *tv[2];
        PGresult *r[3];
        int k = apply_trace_stmt(ts, t, cmd->dry_run, &first[0], tv) ? 1 : 0;
        first[k++] = STMT_SAVEPOINT;
        first[k++] = (struct db_stmt){.sql = SQL_INBOX_GET, .n = 2, .values = iv,
                                      .lengths = ilen, .formats = ifmt};
        if (db_pipeline(a->db, first, k, r, err) < 0)
            break;
        for (int j = 0; j < k - 1; j++)
            PQclear(r[j]);
        c.result = json_object();
        rc = apply_attempt(&c, msg, r[k - 1], &out, err);
        apply_cmd_reset(&c);
        if (rc == 0)
            break;
        if (!db_connected(a->db) || attempt == APPLY_COMMAND_TRIES ||
            (apply_fault(a->db, err) == FAULT_COMMAND &&
             attempt == APPLY_COMMAND_TRIES_OWN_FAULT))
            break;
        if (t->trace_id[0])
            log_info("apply", "retry_command", LOG_STR("cmd_id", cmd->command_id),
                     LOG_STR("sqlstate", a->db->sqlstate), LOG_INT("attempt", attempt),
                     LOG_STR("trace_id", t->trace_id));
        else
            log_info("apply", "retry_command", LOG_STR("cmd_id", cmd->command_id),
                     LOG_STR("sqlstate", a->db->sqlstate), LOG_INT("attempt", attempt));
        struct b2bd_err ignored;
        if (db_exec(a->db, "ROLLBACK TO SAVEPOINT cmd", &ignored) < 0)
            break;
    }
    free(c.touched);
    if (rc < 0 && !apply_transient(a->db, err)) {
        /* the command, not the database, is at fault: reject it, go on */
        rc = apply_reject_refused(a->db, msg, cmd, t, &c.rejected, err);
        out = OUT_REJECTED;
        refused = true;
    }
    if (rc == 0) {
        apply_count(msg, cmd, out, &c.rejected, t, st);
        st->isolated += refused;
    }
    return rc;
}

/* Applies a message that is not a valid command: its dead letter or its rejection.
 * Returns 0 or -1 (database error: the batch must be rolled back). */
static int apply_invalid(struct b2bd_applier *a, const struct b2bd_msg *msg,
                         const struct b2bd_command *cmd, enum decode_outcome dec,
                         const struct b2bd_err *why, const struct trace_out *t,
                         struct trace_set *ts, struct apply_stats *st, struct b2bd_err *err)
{
    if (dec == DECODE_REJECTED && !b2bd_code_is_rejection(why->code)) {
        *err = *why; /* out of memory while decoding: not the command's fault */
        return -1;
    }
    if (apply_trace_set(a->db, ts, t, dec == DECODE_REJECTED && cmd->dry_run, err) < 0)
        return -1;
    int rc;
    if (dec == DECODE_DEAD_LETTER) {
        rc = apply_emit_dead_letter(a->db, a->cfg, msg, why, err);
        st->dead_letters++;
        st->by_code[why->code]++;
        struct log_field f[6];
        size_t n = apply_msg_fields(f, msg, t);
        f[n++] = LOG_STR("code", b2bd_code_name(why->code));
        log_fields(LOG_INFO, "apply", "dead_lettered", f, n);
    } else {
        rc = apply_emit_rejected(a->db, msg, cmd, why, err);
        apply_count(msg, cmd, OUT_REJECTED, why, t, st);
    }
    return rc;
}

/* Applies the run of plain assigns gathered so far, set-based, or one by one when the
 * bulk function hands it back. Returns 0 or -1 (the batch must be rolled back). */
static int apply_flush_run(struct b2bd_applier *a, struct bulk_run *run, struct trace_out *t,
                           struct trace_set *ts, struct apply_stats *st, struct b2bd_err *err)
{
    if (run->n == 0)
        return 0;
    struct bulk_outcome *out = calloc(run->n, sizeof *out);
    if (!out)
        abort();
    /* 1: one command at a time (a short run, or one the bulk function handed back) */
    /* each row carries its actor and issued_at (no b2bd.audit: sql/functions/audit.sql); the run's commands
     * came with one trace (apply_batch), whose headers its outbox rows carry */
    int rc = run->n < APPLY_BULK_MIN_RUN ? 1 : apply_trace_set(a->db, ts, t, run->cmds[0].dry_run, err);
    if (rc == 0)
        rc = bulk_apply(a->db, run, out, err);
    if (rc == 0) {
        for (size_t i = 0; i < run->n; i++) {
            enum cmd_outcome o = out[i].status == BULK_APPLIED     ? OUT_APPLIED
                                 : out[i].status == BULK_DUPLICATE ? OUT_DUPLICATE
                                                                   : OUT_REJECTED;
            apply_count(run->msgs[i], &run->cmds[i], o, &out[i].why, t, st);
        }
        st->bulk_commands += run->n;
        if (run->cmds[0].dry_run)
            st->bulk_dry_runs += run->n;
    } else if (rc > 0) {
        if (run->n >= APPLY_BULK_MIN_RUN)
            st->bulk_fallbacks++;
        rc = 0;
        for (size_t i = 0; i < run->n && rc == 0; i++)
            rc = apply_one(a, run->msgs[i], &run->cmds[i], t, ts, st, err);
    }
    free(out);
    bulk_clear(run);
    trace_out_free(t);
    return rc;
}

struct part_pos {
    const char *topic;
    int32_t partition;
    int64_t next;  /* next offset to apply, from the database */
    int64_t upto;  /* next offset after this batch */
    int64_t low;   /* the broker's oldest offset, once asked in this batch (else -1) */
};

/* Commands the broker deleted before they were applied (CONTRACT.md, "Commands the
 * broker deleted first"): the partition's position p->upto jumps to offset. Offsets the
 * broker still holds that were not delivered are the topic's own (transaction markers):
 * only those below its oldest offset (asked once a batch, after the batch's messages
 * were fetched) are a gap. A gap gets one dead letter (empty value, null key, the range
 * in headers) in the batch's transaction, so it is reported once; an error line; and
 * the lost commands are counted. Returns 0, or -1 with err (the batch is retried). */
static int apply_check_lost(struct b2bd_applier *a, struct part_pos *p, int64_t offset,
                            struct trace_set *ts, struct apply_stats *st, struct b2bd_err *err)
{
    if (!a->low_watermark || offset <= p->upto)
        return 0;
    if (p->low < 0 &&
        a->low_watermark(a->low_watermark_ctx, p->topic, p->partition, &p->low, err) < 0)
        return -1;
    if (p->upto >= p->low)
        return 0;
    int64_t from = p->upto, to = (p->low < offset ? p->low : offset) - 1;
    char partition[16], from_s[24], to_s[24], why[160];
    snprintf(partition, sizeof partition, "%d", (int)p->partition);
    snprintf(from_s, sizeof from_s, "%lld", (long long)from);
    snprintf(to_s, sizeof to_s, "%lld", (long long)to);
    snprintf(why, sizeof why,
             "%lld commands (offsets %lld to %lld) were deleted by the broker before b2bd "
             "applied them", (long long)(to - from + 1), (long long)from, (long long)to);
    json_t *h = json_pack("[[ss][ss][ss][ss][ss][ss]]", "error.code",
                          b2bd_code_name(B2BD_COMMANDS_LOST), "error.message", why,
                          "source.topic", p->topic, "source.partition", partition,
                          "lost.from_offset", from_s, "lost.to_offset", to_s);
    char *headers = apply_dump(h);
    json_decref(h);
    /* no command's trace: the gap is no command's message */
    int rc = apply_trace_set(a->db, ts, NULL, false, err);
    if (rc == 0)
        rc = outbox_append(a->db, OUTBOX_DLQ, NULL, 0, "", 0, headers, err);
    free(headers);
    if (rc < 0)
        return -1;
    log_error("apply", "commands_lost", LOG_STR("topic", p->topic),
              LOG_INT("partition", p->partition), LOG_INT("from_offset", from),
              LOG_INT("to_offset", to), LOG_INT("count", to - from + 1),
              LOG_STR("note", "deleted by the broker (retention) before b2bd applied them"));
    st->dead_letters++;
    st->by_code[B2BD_COMMANDS_LOST]++;
    st->lost += (unsigned long)(to - from + 1);
    return 0;
}

static struct part_pos *apply_find_pos(struct part_pos *p, size_t n, const struct b2bd_msg *m)
{
    for (size_t i = 0; i < n; i++)
        if (p[i].partition == m->partition && strcmp(p[i].topic, m->topic_name) == 0)
            return &p[i];
    return NULL;
}

/* Opens the transaction (with the message limit for the outbox's check, trigger
 * outbox_access_size, when limit is set), then locks the consumed-position rows of the
 * partitions and reads them: one round trip. */
static int apply_begin(struct b2bd_applier *a, struct part_pos *pos, size_t n, const char *limit,
                       struct b2bd_err *err)
{
    size_t count = 2 + 2 * n;
    struct db_stmt *stmts = calloc(count, sizeof *stmts);
    PGresult **res = calloc(count, sizeof *res);
    char (*part)[16] = calloc(n ? n : 1, sizeof *part);
    const char *(*v)[3] = calloc(n ? n : 1, sizeof *v);
    const char *lv[] = {limit};
    if (!stmts || !res || !part || !v)
        abort();
    size_t k = 0;
    stmts[k++] = (struct db_stmt){.sql = "BEGIN", .simple = 1};
    if (limit)
        stmts[k++] = (struct db_stmt){.sql = SQL_LIMIT_SET, .n = 1, .values = lv};
    size_t first = k;
    for (size_t i = 0; i < n; i++) {
        snprintf(part[i], sizeof part[i], "%d", (int)pos[i].partition);
        v[i][0] = a->cfg->group_id;
        v[i][1] = pos[i].topic;
        v[i][2] = part[i];
        stmts[k++] = (struct db_stmt){.sql = SQL_OFFSET_ENSURE, .n = 3, .values = v[i]};
        stmts[k++] = (struct db_stmt){.sql = SQL_OFFSET_LOCK, .n = 3, .values = v[i]};
    }
    int rc = db_pipeline(a->db, stmts, (int)k, res, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        pos[i].next = strtoll(PQgetvalue(res[first + 2 * i + 1], 0, 0), NULL, 10);
        pos[i].upto = pos[i].next;
        pos[i].low = -1;
    }
    for (size_t i = 0; rc == 0 && i < k; i++)
        PQclear(res[i]);
    free(stmts);
    free(res);
    free(part);
    free(v);
    return rc;
}

/* Saves the consumed positions that moved and commits (one round trip), then wakes the
 * relays (outbox_wake: a NOTIFY in this transaction would make the other lane's
 * commits wait for this one's flush). */
static int apply_commit(struct b2bd_applier *a, const struct part_pos *pos, size_t n,
                        struct b2bd_err *err)
{
    struct db_stmt *stmts = calloc(n + 2, sizeof *stmts);
    char (*part)[16] = calloc(n ? n : 1, sizeof *part);
    char (*next)[24] = calloc(n ? n : 1, sizeof *next);
    const char *(*v)[4] = calloc(n ? n : 1, sizeof *v);
    if (!stmts || !part || !next || !v)
        abort();
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (pos[i].upto == pos[i].next)
            continue;
        snprintf(part[i], sizeof part[i], "%d", (int)pos[i].partition);
        snprintf(next[i], sizeof next[i], "%lld", (long long)pos[i].upto);
        v[i][0] = a->cfg->group_id;
        v[i][1] = pos[i].topic;
        v[i][2] = part[i];
        v[i][3] = next[i];
        stmts[k++] = (struct db_stmt){.sql = SQL_OFFSET_SET, .n = 4, .values = v[i]};
    }
    stmts[k++] = (struct db_stmt){.sql = "COMMIT", .simple = 1};
    int rc = db_pipeline(a->db, stmts, (int)k, NULL, err);
    if (rc == 0) {
        /* committed: a failed wake is not the batch's (the relays poll; a lost connection
         * is met by the next batch) */
        struct b2bd_err ignored;
        (void)outbox_wake(a->db, &ignored);
    }
    free(stmts);
    free(part);
    free(next);
    free(v);
    return rc;
}

void apply_stats_add(struct apply_stats *into, const struct apply_stats *from)
{
    into->applied += from->applied;
    into->dry_runs += from->dry_runs;
    into->bulk_dry_runs += from->bulk_dry_runs;
    into->rejected += from->rejected;
    into->duplicates += from->duplicates;
    into->dead_letters += from->dead_letters;
    into->skipped += from->skipped;
    into->bulk_commands += from->bulk_commands;
    into->bulk_fallbacks += from->bulk_fallbacks;
    into->isolated += from->isolated;
    into->lost += from->lost;
    for (int t = 0; t <= CMD_UNKNOWN; t++) {
        into->applied_by_type[t] += from->applied_by_type[t];
        into->rejected_by_type[t] += from->rejected_by_type[t];
    }
    for (int c = 0; c <= B2BD_ERR_INTERNAL; c++)
        into->by_code[c] += from->by_code[c];
}

/* Ends a failed transaction: classifies the failure (before the rollback clears it) and
 * rolls back. err becomes B2BD_ERR_DB when the failure is the surroundings', else the
 * rejection that the message at fault gets (apply.h); the database's words are logged. */
static void apply_fail(struct b2bd_applier *a, size_t n, struct b2bd_err *err)
{
    bool transient = apply_transient(a->db, err);
    struct b2bd_err why;
    if (!transient) {
        fault_rejection(a->db->sqlstate, &why);
        const struct log_field what[] = {LOG_UINT("messages", n)};
        apply_log_refused(a->db, "batch_refused", what, 1, err, &why);
    }
    if (db_connected(a->db)) {
        struct b2bd_err ignored;
        db_exec(a->db, "ROLLBACK", &ignored);
    }
    if (transient)
        err->code = B2BD_ERR_DB;
    else
        *err = why;
}

/* Settles one message that the database refused even on its own, in a transaction of
 * its own: its `rejected` result (why; a message that is no valid command: its dead
 * letter or its decoding's rejection) when with_result, and its consumed position. */
static int apply_settle(struct b2bd_applier *a, const struct b2bd_msg *msg,
                        const struct b2bd_err *why, bool with_result, struct apply_stats *st,
                        struct b2bd_err *err)
{
    struct part_pos pos = {.topic = msg->topic_name, .partition = msg->partition};
    struct apply_stats local = {0};
    struct b2bd_command cmd;
    bool decoded = false, skipped = false;
    struct trace_out t;
    struct trace_set ts = {0};
    trace_begin(&msg->trace, &t);
    if (db_connect(a->db, err) < 0 || apply_begin(a, &pos, 1, NULL, err) < 0)
        goto fail;
    if (msg->offset < pos.next) {
        local.skipped++; /* applied meanwhile, by another instance */
    } else {
        if (apply_check_lost(a, &pos, msg->offset, &ts, &local, err) < 0)
            goto fail;
        pos.upto = msg->offset + 1;
        local.isolated++;
        if (with_result) {
            struct b2bd_err dwhy;
            b2bd_err_clear(&dwhy);
            enum decode_outcome dec = decode_command(msg->value, msg->value_len,
                                                     (size_t)a->cfg->max_message_bytes,
                                                     msg->topic, &cmd, &dwhy);
            decoded = true;
            int rc;
            if (dec == DECODE_OK) {
                rc = apply_trace_set(a->db, &ts, &t, cmd.dry_run, err);
                if (rc == 0)
                    rc = apply_emit_rejected(a->db, msg, &cmd, why, err);
                apply_count(msg, &cmd, OUT_REJECTED, why, &t, &local);
            } else {
                rc = apply_invalid(a, msg, &cmd, dec, &dwhy, &t, &ts, &local, err);
            }
            if (rc < 0)
                goto fail;
        } else {
            skipped = true;
        }
    }
    if (apply_commit(a, &pos, 1, err) < 0)
        goto fail;
    if (skipped) {
        struct log_field f[6];
        size_t n = apply_msg_fields(f, msg, &t);
        f[n++] = LOG_STR("note", "the database refused its rejection too: no result");
        log_fields(LOG_ERROR, "apply", "message_skipped", f, n);
    }
    if (decoded)
        decode_free(&cmd);
    trace_out_free(&t);
    free(ts.now);
    apply_stats_add(st, &local);
    return 0;
fail:
    if (decoded)
        decode_free(&cmd);
    trace_out_free(&t);
    free(ts.now);
    apply_fail(a, 1, err);
    return -1;
}

int apply_reject_alone(struct b2bd_applier *a, const struct b2bd_msg *msg,
                       const struct b2bd_err *why, struct apply_stats *st, struct b2bd_err *err)
{
    if (apply_settle(a, msg, why, true, st, err) == 0)
        return 0;
    if (err->code == B2BD_ERR_DB)
        return -1;
    /* even its rejection is refused: its partition must not stop for it */
    return apply_settle(a, msg, why, false, st, err);
}

int apply_batch(struct b2bd_applier *a, const struct b2bd_msg *msgs, size_t n,
                struct apply_stats *st, struct b2bd_err *err)
{
    struct apply_stats local = {0};
    struct part_pos *pos = calloc(n ? n : 1, sizeof *pos);
    size_t n_pos = 0;
    if (!pos)
        abort();
    for (size_t i = 0; i < n; i++) {
        if (!apply_find_pos(pos, n_pos, &msgs[i])) {
            pos[n_pos].topic = msgs[i].topic_name;
            pos[n_pos].partition = msgs[i].partition;
            n_pos++;
        }
    }

    bool bulk = strcmp(a->cfg->bulk_assign, "on") == 0;
    struct bulk_run run;
    bulk_init(&run, n);
    struct trace_out run_trace = {0}; /* the trace of the run's commands (one for all) */
    struct trace_set ts = {0};

    /* the transaction and its message limit (for the outbox's check, outbox_access_size) */
    char limit[24];
    snprintf(limit, sizeof limit, "%ld", a->cfg->max_message_bytes);
    if (db_connect(a->db, err) < 0 || apply_begin(a, pos, n_pos, limit, err) < 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        struct part_pos *p = apply_find_pos(pos, n_pos, &msgs[i]);
        if (msgs[i].offset < p->upto) {
            local.skipped++; /* applied before: redelivered after a crash or rebalance */
            continue;
        }
        if (apply_check_lost(a, p, msgs[i].offset, &ts, &local, err) < 0)
            goto fail;
        p->upto = msgs[i].offset + 1;
        struct b2bd_command cmd;
        struct b2bd_err why;
        b2bd_err_clear(&why);
        enum decode_outcome dec = decode_command(msgs[i].value, msgs[i].value_len,
                                                 (size_t)a->cfg->max_message_bytes,
                                                 msgs[i].topic, &cmd, &why);
        if (dec == DECODE_OK && bulk && bulk_eligible(&cmd)) {
            /* joins the run; a command that meets the run's customers, or came with
             * another trace, starts the next */
            if ((run.n > 0 && !trace_in_equal(&run.msgs[0]->trace, &msgs[i].trace)) ||
                !bulk_try_add(&run, &msgs[i], &cmd)) {
                if (apply_flush_run(a, &run, &run_trace, &ts, &local, err) < 0) {
                    decode_free(&cmd);
                    goto fail;
                }
                bulk_try_add(&run, &msgs[i], &cmd);
            }
            if (run.n == 1)
                trace_begin(&msgs[i].trace, &run_trace);
            continue;
        }
        int rc = apply_flush_run(a, &run, &run_trace, &ts, &local, err);
        struct trace_out t;
        trace_begin(&msgs[i].trace, &t);
        if (rc == 0)
            rc = dec == DECODE_OK ? apply_one(a, &msgs[i], &cmd, &t, &ts, &local, err)
                                  : apply_invalid(a, &msgs[i], &cmd, dec, &why, &t, &ts, &local, err);
        trace_out_free(&t);
        decode_free(&cmd);
        if (rc < 0)
            goto fail;
    }
    if (apply_flush_run(a, &run, &run_trace, &ts, &local, err) < 0)
        goto fail;
    if (apply_commit(a, pos, n_pos, err) < 0)
        goto fail;
    free(pos);
    bulk_free(&run);
    free(ts.now);
    apply_stats_add(st, &local);
    return 0;
fail:
    apply_fail(a, n, err);
    free(pos);
    bulk_free(&run);
    trace_out_free(&run_trace);
    free(ts.now);
    return -1;
}
