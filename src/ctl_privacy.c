/* ctl_privacy: b2bctl privacy export|redact and b2bctl history. */
#include "b2bd/ctl_privacy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "b2bd/ctl_cli.h"
#include "b2bd/ctl_common.h"
#include "b2bd/ctl_queries.h"
#include "b2bd/ctl_send.h"
#include "b2bd/util.h"
#include "b2bd/validate.h"

static void print_rejection(const json_t *result)
{
    const json_t *e = json_object_get(result, "error");
    const char *field = json_string_value(json_object_get(e, "field"));
    printf("rejected: %s %s: %s\n", json_string_value(json_object_get(e, "code")), field ? field : "",
           json_string_value(json_object_get(e, "message")));
}

/* The export answering request id, read from reader (opened before the request). */
static json_t *wait_export(rd_kafka_t *reader, const char *id, long timeout_s)
{
    json_t *found = NULL;
    int64_t deadline = util_now_ms() + timeout_s * 1000;
    while (!found && util_now_ms() < deadline && !ctl_interrupted) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(reader, 200);
        if (!m)
            continue;
        if (!m->err && m->payload) {
            json_t *d = json_loadb(m->payload, m->len, 0, NULL);
            const char *rid = json_string_value(json_object_get(d, "request_command_id"));
            if (rid && !strcasecmp(rid, id))
                found = d;
            else
                json_decref(d);
        }
        rd_kafka_message_destroy(m);
    }
    return found;
}

/* An erasure cannot be undone: on a terminal, the operator types "yes"; elsewhere --yes
 * must say it. Returns 1 when confirmed. */
static int confirm_redact(const char *shop, const char *who)
{
    if (!isatty(STDIN_FILENO)) {
        fputs("b2bctl: privacy redact erases for good: pass --yes (standard input is not a terminal)\n",
              stderr);
        return 0;
    }
    fprintf(stderr, "Erase the personal data of %s in shop %s? This cannot be undone. Type yes: ", who, shop);
    fflush(stderr);
    char line[16];
    if (!fgets(line, sizeof line, stdin) || strcmp(line, "yes\n") != 0) {
        fputs("b2bctl: not confirmed, nothing sent\n", stderr);
        return 0;
    }
    return 1;
}

/* Writes the export document to path (one line of JSON); takes doc. */
static int write_document(const char *path, json_t *doc)
{
    FILE *f = fopen(path, "w");
    int rc = f && json_dumpf(doc, f, JSON_COMPACT) == 0 && fputc('\n', f) != EOF ? 0 : -1;
    int saved = errno;
    if (f && fclose(f) != 0 && rc == 0) {
        rc = -1;
        saved = errno;
    }
    if (rc < 0)
        fprintf(stderr, "b2bctl: %s: %s\n", path, strerror(saved));
    json_decref(doc);
    return rc;
}

int ctl_privacy_run(const struct b2bd_config *cfg, const struct ctl_args *a)
{
    int export = !strcmp(a->cmd->sub, "export");
    int by_email = ctl_flag(a, "email"), json_out = ctl_flag(a, "json");
    int yes = !export && ctl_flag(a, "yes");
    long timeout_s = ctl_opt_long(a, "timeout", 30);
    const char *actor = ctl_opt(a, "actor") ? ctl_opt(a, "actor") : "b2bctl-privacy";
    const char *output = export ? ctl_opt(a, "output") : NULL;
    const char *shop = a->operands[0], *who = a->operands[1];
    if (!decode_is_shop_id(shop) || (by_email && !decode_is_email(who))) {
        fprintf(stderr, "b2bctl: %s\n", by_email && !decode_is_email(who) ? "not an email address"
                                                                       : "not a shop id");
        return 2;
    }
    if (!export && !yes && !confirm_redact(shop, who))
        return isatty(STDIN_FILENO) ? 1 : 2;
    char id[37];
    util_uuid_v4(id);
    json_t *cmd = json_pack("{s:s, s:s, s:s, s:s, s:{s:s}}", "command_id", id, "type",
                            export ? "customer.data_request" : "customer.redact", "shop_id", shop,
                            "actor", actor, "payload", by_email ? "email" : "customer_id", who);
    rd_kafka_t *reader = export ? ctl_reader_open(cfg, "events.privacy", 1) : NULL;
    if (export && !reader) {
        json_decref(cmd);
        return 1;
    }
    json_t *result = ctl_send_and_wait(cfg, cmd, timeout_s);
    json_decref(cmd);
    int rc = 1;
    if (result) {
        const char *status = json_string_value(json_object_get(result, "status"));
        int ok = status && !strcmp(status, "applied");
        json_t *doc = ok && export ? wait_export(reader, id, timeout_s) : NULL;
        if (!ok && json_out)
            ctl_print_json(json_incref(result));
        else if (!ok)
            print_rejection(result);
        else if (export && !doc)
            fprintf(stderr, "b2bctl: no customer.data_export for request %s within %ld s\n", id, timeout_s);
        else if (export && output)
            ok = write_document(output, doc) == 0;
        else if (export)
            ctl_print_json(doc);
        else if (json_out)
            ctl_print_json(json_incref(result));
        else {
            json_t *e = json_object_get(json_object_get(result, "result"), "erased");
            printf("erased: contacts %lld, roles %lld, notifications %lld, orders unlinked %lld\n",
                   (long long)json_integer_value(json_object_get(e, "contacts")),
                   (long long)json_integer_value(json_object_get(e, "roles")),
                   (long long)json_integer_value(json_object_get(e, "notifications")),
                   (long long)json_integer_value(json_object_get(e, "orders_unlinked")));
        }
        rc = ok && (!export || doc) ? 0 : 1;
        json_decref(result);
    }
    if (reader)
        ctl_reader_close(reader);
    return rc;
}

int ctl_history_run(const struct b2bd_config *cfg, const struct ctl_args *a)
{
    int json_out = ctl_flag(a, "json");
    const char *shop = a->operands[0], *customer = a->operands[1];
    struct b2bd_db db;
    if (ctl_db_open(cfg, &db) < 0)
        return 1;
    struct b2bd_err err;
    const char *v[] = {shop, customer};
    PGresult *res = ctl_query_run(&db, CTL_Q_HISTORY, v, &err);
    if (!res) {
        fprintf(stderr, "b2bctl: %s\n", err.msg);
        db_free(&db);
        return 1;
    }
    json_t *list = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(list, json_pack("{s:I, s:o, s:s, s:o, s:s}", "version",
                                              (json_int_t)strtoll(PQgetvalue(res, i, 0), NULL, 10),
                                              "companies", json_loads(PQgetvalue(res, i, 1), 0, NULL),
                                              "caused_by", PQgetvalue(res, i, 2), "actor",
                                              ctl_pg_text(res, i, 3), "occurred_at", PQgetvalue(res, i, 4)));
    if (json_out) {
        ctl_print_json(json_pack("{s:s, s:s, s:o}", "shop_id", shop, "customer_id", customer,
                                 "access_history", list));
    } else {
        if (PQntuples(res) == 0)
            printf("%s/%s: no access history\n", shop, customer);
        for (int i = 0; i < PQntuples(res); i++) {
            char *companies = json_dumps(json_object_get(json_array_get(list, (size_t)i), "companies"),
                                         JSON_COMPACT);
            printf("v%s  %s  by %s (actor %s): %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 4),
                   PQgetvalue(res, i, 2), PQgetisnull(res, i, 3) ? "-" : PQgetvalue(res, i, 3),
                   companies ? companies : "?");
            free(companies);
        }
        json_decref(list);
    }
    PQclear(res);
    db_free(&db);
    return 0;
}
