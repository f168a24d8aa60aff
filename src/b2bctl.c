/* b2bctl: the operator's command-line tool: imports, commands, topics, access, emails, dead letters. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <openssl/evp.h>

#include "b2bd/config.h"
#include "b2bd/ctl_cli.h"
#include "b2bd/ctl_common.h"
#include "b2bd/ctl_csv.h"
#include "b2bd/ctl_import.h"
#include "b2bd/ctl_privacy.h"
#include "b2bd/ctl_queries.h"
#include "b2bd/ctl_send.h"
#include "b2bd/ctl_topics.h"
#include "b2bd/db.h"
#include "b2bd/kafka.h"
#include "b2bd/log.h"
#include "b2bd/util.h"
#include "b2bd/validate.h"
#include "b2bd/version.h"

extern char **environ;

static void on_signal(int sig)
{
    (void)sig;
    ctl_interrupted = 1;
}

/* send --wait: counts the results by status and error code. */
struct send_tally {
    long applied, rejected;
    json_t *codes; /* error code -> count */
};

static void send_tally_add(void *arg, size_t tag, json_t *r)
{
    (void)tag;
    struct send_tally *t = arg;
    const char *status = json_string_value(json_object_get(r, "status"));
    if (status && !strcmp(status, "applied")) {
        t->applied++;
        return;
    }
    t->rejected++;
    const char *code = json_string_value(json_object_get(json_object_get(r, "error"), "code"));
    json_int_t c = json_integer_value(json_object_get(t->codes, code ? code : "?"));
    json_object_set_new(t->codes, code ? code : "?", json_integer(c + 1));
}

static int cmd_send(const struct b2bd_config *cfg, const struct ctl_args *a)
{
    int wait = ctl_flag(a, "wait");
    long timeout_s = ctl_opt_long(a, "timeout", 120);
    const char *path = a->operands[0];
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) {
        perror(path);
        return 1;
    }
    struct send_tally tally = {.codes = json_object()};
    struct ctl_send *s = ctl_send_open(cfg, wait ? send_tally_add : NULL, &tally);
    if (!s) {
        if (f != stdin)
            fclose(f);
        json_decref(tally.codes);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0, sent = 0, bad = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        lineno++;
        json_error_t je;
        json_t *cmd = json_loadb(line, (size_t)len, 0, &je);
        if (!cmd) {
            if (strspn(line, " \t\r\n") == (size_t)len)
                continue;
            fprintf(stderr, "b2bctl: %s:%ld: not JSON: %s\n", path, lineno, je.text);
            bad++;
            continue;
        }
        rd_kafka_resp_err_t e = ctl_send_command(s, cmd, line, (size_t)len, 0);
        if (e) {
            fprintf(stderr, "b2bctl: %s:%ld: %s\n", path, lineno, rd_kafka_err2str(e));
            bad++;
        } else {
            sent++;
        }
        json_decref(cmd);
    }
    free(line);
    if (f != stdin)
        fclose(f);
    int undelivered = ctl_send_flush(s);
    if (undelivered > 0) {
        fprintf(stderr, "b2bctl: %d messages not delivered\n", undelivered);
        bad++;
    }
    printf("sent=%ld unreadable_lines=%ld\n", sent, bad);
    printf("trace_id=%s\n", ctl_send_trace_id(s));
    long missing = 0;
    if (wait) {
        /* one result per command id, counted by status and error code */
        missing = ctl_send_wait(s, timeout_s, false, NULL);
        printf("results: applied=%ld rejected=%ld missing=%ld\n", tally.applied, tally.rejected, missing);
        const char *code;
        json_t *cnt;
        json_object_foreach(tally.codes, code, cnt)
            printf("  rejected %s: %lld\n", code, (long long)json_integer_value(cnt));
    }
    ctl_send_close(s);
    json_decref(tally.codes);
    return (bad || tally.rejected || missing) ? 1 : 0;
}

static int cmd_tail(const struct b2bd_config *cfg, const struct ctl_args *a)
{
    long max = ctl_opt_long(a, "max", -1), timeout_s = ctl_opt_long(a, "timeout", 5);
    rd_kafka_t *rk = ctl_reader_open(cfg, a->operands[0], 0);
    if (!rk)
        return 1;
    long n = 0;
    int64_t idle_until = util_now_ms() + timeout_s * 1000;
    while ((max < 0 || n < max) && util_now_ms() < idle_until && !ctl_interrupted) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (!m->err) {
            printf("%.*s\n", (int)m->len, (const char *)m->payload);
            n++;
            idle_until = util_now_ms() + timeout_s * 1000;
        }
        rd_kafka_message_destroy(m);
    }
    fflush(stdout);
    ctl_reader_close(rk);
    return 0;
}

/* Opens the database and runs query q (ctl_queries.h) with its text parameters; returns
 * the result, or NULL after printing why (db is then freed). */
static PGresult *ctl_query(const struct b2bd_config *cfg, struct b2bd_db *db, enum ctl_query q,
                           const char *const *v)
{
    struct b2bd_err err;
    if (ctl_db_open(cfg, db) < 0)
        return NULL;
    PGresult *res = ctl_query_run(db, q, v, &err);
    if (!res) {
        fprintf(stderr, "b2bctl: %s\n", err.msg);
        db_free(db);
    }
    return res;
}

/* Why the contact of row i (columns 5 and 6: the company's and the contact's own
 * suspension, CONTRACT.md "Suspension") is suspended; NULL when it is not. */
static const char *suspension(PGresult *res, int i)
{
    int company = *PQgetvalue(res, i, 5) == 't', contact = *PQgetvalue(res, i, 6) == 't';
    return company && contact ? "the company and the contact" : company ? "the company"
         : contact ? "the contact" : NULL;
}

static int cmd_access(const struct b2bd_config *cfg, const struct ctl_args *a)
{
    int json_out = ctl_flag(a, "json");
    const char *shop = a->operands[0], *customer = a->operands[1];
    const char *v[] = {shop, customer};
    struct b2bd_db db;
    PGresult *res = ctl_query(cfg, &db, CTL_Q_ACCESS, v);
    if (!res)
        return 1;
    if (json_out) {
        json_t *companies = json_array(), *cur = NULL;
        for (int i = 0; i < PQntuples(res); i++) {
            if (!cur || strcmp(json_string_value(json_object_get(cur, "company_id")), PQgetvalue(res, i, 0))) {
                cur = json_pack("{s:s, s:o, s:s, s:[], s:b, s:b}", "company_id", PQgetvalue(res, i, 0), "name",
                                ctl_pg_text(res, i, 1), "access", suspension(res, i) ? "suspended" : "no_access",
                                "locations", "company_suspended", *PQgetvalue(res, i, 5) == 't',
                                "contact_suspended", *PQgetvalue(res, i, 6) == 't');
                json_array_append_new(companies, cur);
            }
            if (!PQgetisnull(res, i, 2)) {
                if (!suspension(res, i))
                    json_object_set_new(cur, "access", json_string("locations"));
                json_array_append_new(json_object_get(cur, "locations"),
                                      json_pack("{s:s, s:o, s:s}", "location_id", PQgetvalue(res, i, 2),
                                                "name", ctl_pg_text(res, i, 3), "role", PQgetvalue(res, i, 4)));
            }
        }
        ctl_print_json(json_pack("{s:s, s:s, s:o}", "shop_id", shop, "customer_id", customer,
                                 "companies", companies));
    } else {
        if (PQntuples(res) == 0)
            printf("%s/%s: no company (D2C)\n", shop, customer);
        for (int i = 0; i < PQntuples(res); i++) {
            const char *why = suspension(res, i);
            char tag[80] = "";
            if (why)
                snprintf(tag, sizeof tag, " [suspended: %s; roles kept, no access]", why);
            if (PQgetisnull(res, i, 2))
                printf("company %s (%s)%s: No access\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), tag);
            else
                printf("company %s (%s)%s: location %s (%s): %s\n", PQgetvalue(res, i, 0),
                       PQgetvalue(res, i, 1), tag, PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
                       PQgetvalue(res, i, 4));
        }
    }
    PQclear(res);
    db_free(&db);
    return 0;
}

static int cmd_timeline(const struct b2bd_config *cfg, const struct ctl_args *a)
{
    int json_out = ctl_flag(a, "json");
    const char *shop = a->operands[0], *customer = a->operands[1];
    const char *v[] = {shop, customer};
    struct b2bd_db db;
    PGresult *res = ctl_query(cfg, &db, CTL_Q_TIMELINE, v);
    if (!res)
        return 1;
    static const char *const names[] = {"notification_id", "status", "attempts", "last_error",
                                        "to_address", "recipient", "company_id", "location_id",
                                        "resend_of", "created_at", "sent_at", "next_attempt_at",
                                        "subject", "template_version", "command_id"};
    if (json_out) {
        json_t *list = json_array();
        for (int i = 0; i < PQntuples(res); i++) {
            json_t *o = json_object();
            for (int c = 0; c < (int)(sizeof names / sizeof *names); c++) {
                if ((c == 2 || c == 13) && !PQgetisnull(res, i, c))
                    json_object_set_new(o, names[c], json_integer(strtoll(PQgetvalue(res, i, c), NULL, 10)));
                else
                    json_object_set_new(o, names[c], ctl_pg_text(res, i, c));
            }
            if (strcmp(PQgetvalue(res, i, 1), "queued"))
                json_object_set_new(o, "next_attempt_at", json_null());
            json_array_append_new(list, o);
        }
        ctl_print_json(json_pack("{s:s, s:s, s:o}", "shop_id", shop, "customer_id", customer,
                                 "notifications", list));
    } else {
        if (PQntuples(res) == 0)
            printf("%s/%s: no email\n", shop, customer);
        for (int i = 0; i < PQntuples(res); i++) {
            printf("%s  %-6s  %s  to %s (%s), company %s%s%s, attempts %s", PQgetvalue(res, i, 9),
                   PQgetvalue(res, i, 1), PQgetvalue(res, i, 0), PQgetvalue(res, i, 4),
                   PQgetvalue(res, i, 5), PQgetvalue(res, i, 6),
                   PQgetisnull(res, i, 7) ? "" : ", location ", PQgetvalue(res, i, 7),
                   PQgetvalue(res, i, 2));
            if (!PQgetisnull(res, i, 10))
                printf(", sent %s", PQgetvalue(res, i, 10));
            if (!strcmp(PQgetvalue(res, i, 1), "queued"))
                printf(", next attempt %s", PQgetvalue(res, i, 11));
            if (!PQgetisnull(res, i, 8))
                printf(", resend of %s", PQgetvalue(res, i, 8));
            if (!PQgetisnull(res, i, 3))
                printf(", last error: %s", PQgetvalue(res, i, 3));
            putchar('\n');
        }
    }
    PQclear(res);
    db_free(&db);
    return 0;
}

static int cmd_resend(const struct b2bd_config *cfg, const struct ctl_args *a)
{
    int json_out = ctl_flag(a, "json"), staff = ctl_flag(a, "staff");
    long timeout_s = ctl_opt_long(a, "timeout", 30);
    const char *staff_email = ctl_opt(a, "staff-email");
    if (staff_email && !staff) {
        fprintf(stderr, "b2bctl: --staff-email goes with --staff\n");
        return 2;
    }
    const char *shop = a->operands[0], *nid = a->operands[1];
    if (!decode_is_uuid(nid)) {
        fprintf(stderr, "b2bctl: %s is not a notification id (a UUID)\n", nid);
        return 2;
    }
    const char *v[] = {shop, nid};
    struct b2bd_db db;
    PGresult *res = ctl_query(cfg, &db, CTL_Q_NOTIFICATION, v);
    if (!res)
        return 1;
    if (PQntuples(res) != 1) {
        fprintf(stderr, "b2bctl: no notification %s in shop %s\n", nid, shop);
        PQclear(res);
        db_free(&db);
        return 1;
    }
    char id[37];
    util_uuid_v4(id);
    json_t *payload = json_pack("{s:s, s:[s], s:s, s:s}", "company_id", PQgetvalue(res, 0, 0),
                                "customer_ids", PQgetvalue(res, 0, 1), "recipient",
                                staff ? "staff" : "customer", "resend_of", nid);
    if (staff_email)
        json_object_set_new(payload, "staff_email", json_string(staff_email));
    json_t *cmd = json_pack("{s:s, s:s, s:s, s:s, s:o}", "command_id", id, "type", "notify", "shop_id",
                            shop, "actor", "b2bctl-resend", "payload", payload);
    PQclear(res);
    db_free(&db);
    json_t *result = ctl_send_and_wait(cfg, cmd, timeout_s);
    json_decref(cmd);
    if (!result)
        return 1;
    const char *status = json_string_value(json_object_get(result, "status"));
    int ok = status && !strcmp(status, "applied");
    if (json_out) {
        json_incref(result);
        ctl_print_json(result);
    } else if (ok) {
        json_t *q, *queued = json_object_get(json_object_get(result, "result"), "queued");
        size_t i;
        json_array_foreach(queued, i, q)
            printf("queued notification %s (resend of %s) for %s\n",
                   json_string_value(json_object_get(q, "notification_id")), nid,
                   json_string_value(json_object_get(q, "customer_id")));
        json_t *s, *skipped = json_object_get(json_object_get(result, "result"), "skipped");
        json_array_foreach(skipped, i, s)
            printf("skipped %s: %s\n", json_string_value(json_object_get(s, "customer_id")),
                   json_string_value(json_object_get(s, "reason")));
    } else {
        json_t *e = json_object_get(result, "error");
        printf("rejected: %s %s: %s\n", json_string_value(json_object_get(e, "code")),
               json_string_value(json_object_get(e, "field")) ? json_string_value(json_object_get(e, "field")) : "",
               json_string_value(json_object_get(e, "message")));
    }
    json_decref(result);
    return ok ? 0 : 1;
}

/* ---- dead letters ---- */

static json_t *dlq_headers(const rd_kafka_message_t *m)
{
    json_t *h = json_object();
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m, &hdrs))
        return h;
    const char *name;
    const void *val;
    size_t len;
    for (size_t i = 0; !rd_kafka_header_get_all(hdrs, i, &name, &val, &len); i++) {
        char *s = strndup(val ? (const char *)val : "", val ? len : 0);
        json_object_set_new(h, name, json_stringn_nocheck(s, strlen(s)));
        if (!ctl_utf8_valid(s, strlen(s)))
            json_object_set_new(h, name, json_string("(not UTF-8)"));
        free(s);
    }
    return h;
}

static json_t *dlq_entry(const rd_kafka_message_t *m)
{
    json_t *o = json_pack("{s:s, s:i, s:I}", "topic", rd_kafka_topic_name(m->rkt), "partition",
                          (int)m->partition, "offset", (json_int_t)m->offset);
    if (m->key && ctl_utf8_valid(m->key, m->key_len))
        json_object_set_new(o, "key", json_stringn(m->key, m->key_len));
    else
        json_object_set_new(o, "key", json_null());
    json_object_set_new(o, "headers", dlq_headers(m));
    if (m->payload && ctl_utf8_valid(m->payload, m->len) && !memchr(m->payload, 0, m->len)) {
        json_object_set_new(o, "value", json_stringn(m->payload, m->len));
    } else if (m->payload) {
        size_t cap = 4 * ((m->len + 2) / 3) + 1;
        unsigned char *b64 = malloc(cap);
        int n = EVP_EncodeBlock(b64, m->payload, (int)m->len);
        json_object_set_new(o, "value_base64", json_stringn((char *)b64, (size_t)n));
        free(b64);
    } else {
        json_object_set_new(o, "value", json_null());
    }
    json_object_set_new(o, "size", json_integer((json_int_t)m->len));
    return o;
}

static void dlq_print(const json_t *e)
{
    printf("%s [%lld] @%lld  key=%s  %lld bytes\n", json_string_value(json_object_get(e, "topic")),
           (long long)json_integer_value(json_object_get(e, "partition")),
           (long long)json_integer_value(json_object_get(e, "offset")),
           json_string_value(json_object_get(e, "key")) ? json_string_value(json_object_get(e, "key")) : "(none)",
           (long long)json_integer_value(json_object_get(e, "size")));
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)json_object_get(e, "headers"), k, v)
        printf("  %s: %s\n", k, json_string_value(v));
    const char *val = json_string_value(json_object_get(e, "value"));
    if (val) {
        printf("  value: ");
        for (size_t i = 0; val[i] && i < 200; i++)
            putchar((unsigned char)val[i] < 0x20 ? '?' : val[i]);
        printf("%s\n", strlen(val) > 200 ? "..." : "");
    } else {
        printf("  value: (binary, base64 in --json)\n");
    }
}

/* Reads dead letters: those there are now (up to each partition's end when it starts:
 * a replay's own copies, dead-lettered again, are not read), or the one at
 * partition/offset; stops early after timeout_s without a message. */
static int dlq_read(const struct b2bd_config *cfg, long max, long timeout_s, int partition, long long offset,
                    int (*each)(const rd_kafka_message_t *, void *), void *arg)
{
    rd_kafka_t *rk = ctl_reader_open(cfg, "dlq", 0);
    if (!rk)
        return -1;
    char *topic = config_topic(cfg, "dlq");
    enum { MAXP = 1024 };
    int64_t *ends = calloc(MAXP, sizeof *ends), *next = calloc(MAXP, sizeof *next);
    if (partition >= 0) {
        rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(parts, topic, partition)->offset = offset;
        rd_kafka_assign(rk, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        max = 1;
    } else {
        rd_kafka_topic_partition_list_t *parts = NULL;
        if (!rd_kafka_assignment(rk, &parts)) {
            for (int i = 0; i < parts->cnt; i++) {
                int32_t p = parts->elems[i].partition;
                int64_t lo = 0, hi = 0;
                if (p >= 0 && p < MAXP
                    && !rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000)) {
                    ends[p] = hi;
                    next[p] = lo;
                }
            }
            rd_kafka_topic_partition_list_destroy(parts);
        }
    }
    long n = 0;
    int64_t idle_until = util_now_ms() + timeout_s * 1000;
    while ((max < 0 || n < max) && util_now_ms() < idle_until && !ctl_interrupted) {
        if (partition < 0) {
            int left = 0;
            for (int p = 0; p < MAXP && !left; p++)
                left = next[p] < ends[p];
            if (!left)
                break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (!m->err && partition < 0 && m->partition >= 0 && m->partition < MAXP) {
            next[m->partition] = m->offset + 1;
            if (m->offset >= ends[m->partition]) {
                rd_kafka_message_destroy(m);
                continue;
            }
        }
        if (!m->err && (partition < 0 || m->offset == offset)) {
            n++;
            each(m, arg);
            idle_until = util_now_ms() + timeout_s * 1000;
        } else if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            fprintf(stderr, "b2bctl: dlq: %s\n", rd_kafka_message_errstr(m));
            if (partition >= 0) {
                rd_kafka_message_destroy(m);
                break;
            }
        }
        rd_kafka_message_destroy(m);
    }
    free(ends);
    free(next);
    free(topic);
    ctl_reader_close(rk);
    return (int)n;
}

static int dlq_collect(const rd_kafka_message_t *m, void *arg)
{
    json_array_append_new((json_t *)arg, dlq_entry(m));
    return 0;
}

struct replay {
    const struct b2bd_config *cfg;
    rd_kafka_t *producer;
    json_t *done;  /* entries with "replayed_to" or "skipped" */
    long replayed, skipped;
};

static int dlq_replay_one(const rd_kafka_message_t *m, void *arg)
{
    struct replay *rp = arg;
    json_t *e = dlq_entry(m);
    json_t *h = json_object_get(e, "headers");
    const char *src = json_string_value(json_object_get(h, "source.topic"));
    const char *trunc = json_string_value(json_object_get(h, "value.truncated"));
    const char *code = json_string_value(json_object_get(h, "error.code"));
    size_t plen = strlen(rp->cfg->topic_prefix);
    const char *why = NULL;
    if (!src)
        why = "no source.topic header";
    else if (strncmp(src, rp->cfg->topic_prefix, plen) || strncmp(src + plen, "commands.", 9))
        why = "source.topic is not one of this prefix's command topics";
    else if (code && !strcmp(code, "COMMANDS_LOST"))
        why = "the broker deleted those commands (COMMANDS_LOST): the dead letter holds none of them";
    else if (trunc && !strcmp(trunc, "true"))
        why = "the value was truncated (TOO_LARGE): the original is not in the dead letter";
    if (!why) {
        rd_kafka_headers_t *src_h = NULL, *out_h = rd_kafka_headers_new(4);
        if (!rd_kafka_message_headers(m, &src_h)) {
            const char *name;
            const void *val;
            size_t len;
            for (size_t i = 0; !rd_kafka_header_get_all(src_h, i, &name, &val, &len); i++)
                if (strncmp(name, "error.", 6) && strncmp(name, "source.", 7) && strcmp(name, "value.truncated"))
                    rd_kafka_header_add(out_h, name, -1, val, (ssize_t)len);
        }
        char of[64];
        snprintf(of, sizeof of, "%d@%lld", (int)m->partition, (long long)m->offset);
        rd_kafka_header_add(out_h, "b2bctl.replay_of", -1, of, -1);
        rd_kafka_resp_err_t err = rd_kafka_producev(
            rp->producer, RD_KAFKA_V_TOPIC(src), RD_KAFKA_V_KEY(m->key, m->key_len),
            RD_KAFKA_V_VALUE(m->payload, m->len), RD_KAFKA_V_HEADERS(out_h),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err) {
            rd_kafka_headers_destroy(out_h);
            why = rd_kafka_err2str(err);
        }
    }
    json_object_del(e, "value");
    json_object_del(e, "value_base64");
    if (why) {
        rp->skipped++;
        json_object_set_new(e, "skipped", json_string(why));
    } else {
        rp->replayed++;
        json_object_set_new(e, "replayed_to", json_string(src));
    }
    json_array_append_new(rp->done, e);
    return 0;
}

static int cmd_dlq_list(const struct b2bd_config *cfg, const struct ctl_args *a)
{
    json_t *list = json_array();
    if (dlq_read(cfg, ctl_opt_long(a, "max", -1), ctl_opt_long(a, "timeout", 3), -1, 0, dlq_collect,
                 list) < 0) {
        json_decref(list);
        return 1;
    }
    if (ctl_flag(a, "json")) {
        ctl_print_json(json_pack("{s:o}", "dead_letters", list));
    } else {
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e)
            dlq_print(e);
        printf("%zu dead letter(s)\n", json_array_size(list));
        json_decref(list);
    }
    return 0;
}

static int cmd_dlq_replay(const struct b2bd_config *cfg, const struct ctl_args *a)
{
    long timeout_s = ctl_opt_long(a, "timeout", 3);
    long long offset = ctl_opt(a, "offset") ? strtoll(ctl_opt(a, "offset"), NULL, 10) : -1;
    int partition = (int)ctl_opt_long(a, "partition", -1), all = ctl_flag(a, "all");
    int json_out = ctl_flag(a, "json");
    if (all == (partition >= 0 || offset >= 0) || (!all && (partition < 0 || offset < 0))) {
        fprintf(stderr, "b2bctl: dlq replay needs --partition P --offset N, or --all\n");
        return 2;
    }
    struct b2bd_err err;
    struct replay rp = {.cfg = cfg, .done = json_array()};
    rp.producer = kafka_producer_new(cfg, NULL, &err);
    if (!rp.producer) {
        fprintf(stderr, "b2bctl: %s\n", err.msg);
        json_decref(rp.done);
        return 1;
    }
    int n = dlq_read(cfg, -1, timeout_s, partition, offset, dlq_replay_one, &rp);
    rd_kafka_flush(rp.producer, 30000);
    int undelivered = rd_kafka_outq_len(rp.producer);
    rd_kafka_destroy(rp.producer);
    if (n < 0) {
        json_decref(rp.done);
        return 1;
    }
    if (undelivered)
        fprintf(stderr, "b2bctl: %d replayed message(s) not delivered\n", undelivered);
    if (!n && partition >= 0)
        fprintf(stderr, "b2bctl: no dead letter at partition %d offset %lld\n", partition, offset);
    if (json_out) {
        ctl_print_json(json_pack("{s:I, s:I, s:o}", "replayed", (json_int_t)rp.replayed, "skipped",
                                 (json_int_t)rp.skipped, "dead_letters", rp.done));
    } else {
        size_t i;
        json_t *e;
        json_array_foreach(rp.done, i, e) {
            const char *to = json_string_value(json_object_get(e, "replayed_to"));
            printf("[%lld] @%lld: %s %s\n", (long long)json_integer_value(json_object_get(e, "partition")),
                   (long long)json_integer_value(json_object_get(e, "offset")), to ? "replayed to" : "skipped:",
                   to ? to : json_string_value(json_object_get(e, "skipped")));
        }
        printf("replayed %ld, skipped %ld\n", rp.replayed, rp.skipped);
        json_decref(rp.done);
    }
    return (rp.skipped || undelivered || (!n && partition >= 0)) ? 1 : 0;
}

static int cmd_completion(const struct b2bd_config *cfg, const struct ctl_args *a);

#define JSON_OPT {"json", 'j', NULL, "output in JSON"}
#define TIMEOUT_OPT(dflt) {"timeout", 't', "S", "wait at most S seconds (default " dflt ")"}

/* Every command: its options, help and handler (ctl_cli.h makes the parser, the help and
 * the bash completion of this table). */
static const struct ctl_cmd commands[] = {
    {"import", NULL, "FILE", 1, "a CSV or JSON Lines bulk import",
     "FILE is a CSV file (a header row naming some of email, first_name, last_name,\n"
     "phone, customer_id, location_id, role, notify, in any order; RFC 4180, UTF-8)\n"
     "giving one assign command per row, or JSON Lines of whole commands (*.jsonl,\n"
     "*.ndjson, or a file starting with '{'). --location, --role (default\n"
     "ordering_only) and --notify are the defaults of rows that leave them empty.\n"
     "Each command's id is a UUID v5 of the import id and the command, so running\n"
     "the same import again sends the same commands: applied ones change nothing\n"
     "(the daemon answers with the stored result). The import id defaults to a\n"
     "hash of the file, the shop, the company and the defaults.\n"
     "The commands go to the bulk topic (commands.bulk), which b2bd serves with the\n"
     "capacity its other topics leave; --own-topics sends each to its type's topic\n"
     "instead (the import id and command ids stay the same).\n"
     "Waits for every result (--wait-timeout: give up after S seconds without a new\n"
     "result, default 120), prints a summary, writes rejected and unparseable rows\n"
     "with their reason to FILE.rejected.csv, and exits 1 if there are any (or\n"
     "results are missing), 0 otherwise. 'already applied' counts results whose\n"
     "processed_at is before this run started (the daemon's clock).\n"
     "--dry-run sends every command as a dry run (the same ids): each is judged as it\n"
     "would be now, on its own, and undone; the summary and FILE.rejected.csv say what\n"
     "the import would do, and a real import of the file afterwards sends the same ids.\n",
     {{"shop", 's', "S", "the shop (required for CSV)"},
      {"company", 'c', "C", "the company (required for CSV)"},
      {"location", 'l', "L", "the location of rows without location_id"},
      {"role", 'r', "R", "the role of rows without one: ordering_only or location_admin"},
      {"notify", 'n', NULL, "notify the customers of rows without notify"},
      {"import-id", 'i', "ID", "the import id (default: a hash of the file and options)"},
      {"wait-timeout", 'w', "S", "give up after S seconds without a new result (default 120)"},
      {"own-topics", 'o', NULL, "send each command to its type's topic, not the bulk topic"},
      {"dry-run", 'd', NULL, "judge every row, apply none (the results say what would happen)"},
      JSON_OPT},
     false, ctl_import_run},
    {"import", "status", "IMPORT_ID", 1, "an import's applied commands",
     "The import's applied commands, from the database, by type (exit 1 if none).\n",
     {JSON_OPT}, false, ctl_import_status_run},
    {"send", NULL, "FILE", 1, "produce JSON Lines commands",
     "Produces the commands of a JSON Lines file (- for stdin) to their topics, with the\n"
     "contract's keys; --wait reads the results topic until every command has its\n"
     "result (at most --timeout S, default 120) and prints applied and rejected counts\n"
     "by code (exit 1 if any was rejected or is missing).\n",
     {{"wait", 'w', NULL, "wait for every command's result"}, TIMEOUT_OPT("120")},
     false, cmd_send},
    {"tail", NULL, "TOPIC", 1, "print an output topic",
     "Prints the messages of a topic (results, events.access, dlq, ...; the prefix is\n"
     "added) from the beginning, one line each, until N messages or S seconds (default\n"
     "5) without a new one.\n",
     {{"max", 'm', "N", "stop after N messages"},
      {"timeout", 't', "S", "stop after S seconds without a message (default 5)"}},
     false, cmd_tail},
    {"access", NULL, "SHOP CUSTOMER", 2, "a customer's companies, locations, roles",
     "A customer's companies, locations and roles, from the database; a company where the\ncustomer is suspended (the company or the contact) is marked, its roles kept.\n", {JSON_OPT}, false,
     cmd_access},
    {"timeline", NULL, "SHOP CUSTOMER", 2, "a customer's access emails",
     "The customer's B2B access emails, oldest first, from the database: status\n"
     "(queued, sent, failed), attempts, last error, address, times, resend_of.\n",
     {JSON_OPT}, false, cmd_timeline},
    {"resend", NULL, "SHOP NOTIFICATION_ID", 2, "send an email again",
     "Sends a notification's email again: produces a notify command with resend_of\n"
     "(to the same recipient, or to staff: E or the shop's staff address) and waits\n"
     "for its result (at most S seconds, default 30). Exit 1 unless applied.\n",
     {{"staff", 's', NULL, "send it to the shop's staff"},
      {"staff-email", 'e', "E", "with --staff: to this address"}, TIMEOUT_OPT("30"), JSON_OPT},
     false, cmd_resend},
    {"dlq", "list", "", 0, "the dead letters",
     "The dead letters there are now, oldest first per partition, with their headers\n"
     "(at most N; gives up after S seconds without a message, default 3).\n",
     {{"max", 'm', "N", "at most N dead letters"},
      {"timeout", 't', "S", "give up after S seconds without a message (default 3)"}, JSON_OPT},
     false, cmd_dlq_list},
    {"dlq", "replay", "", 0, "replay dead letters (--partition P --offset N, or --all)",
     "Produces a dead letter's (with --all: each one there is now) original\n"
     "value and key (and its own headers, without error.*, source.* and\n"
     "value.truncated) back to its source.topic, which\n"
     "must be one of the prefix's command topics; a truncated (TOO_LARGE) one is not\n"
     "replayed. Needs --partition P --offset N, or --all.\n"
     "Exit 1 if any selected dead letter was not replayed.\n",
     {{"partition", 'p', "P", "the dead letter's partition (with --offset)"},
      {"offset", 'o', "N", "the dead letter's offset (with --partition)"},
      {"all", 'a', NULL, "every dead letter there is now"},
      {"timeout", 't', "S", "give up after S seconds without a message (default 3)"}, JSON_OPT},
     false, cmd_dlq_replay},
    {"topics", "apply", "", 0, "create the contract's topics", CTL_TOPICS_APPLY_HELP,
     {{"manifest", 'm', "FILE", "the topic manifest (default: see above)"}, TIMEOUT_OPT("15"),
      JSON_OPT},
     false, ctl_topics_apply_run},
    {"privacy", "export", "SHOP CUSTOMER", 2, "a customer's data export (GDPR access)",
     "Produces a customer.data_request and prints the customer.data_export document\n"
     "it publishes on events.privacy (one line of JSON), or writes it to FILE (--output).\n"
     "CUSTOMER is a customer_id, or with --email an email address. Waits at most S seconds\n"
     "(default 30). Exit 1 unless applied.\n",
     {{"email", 'e', NULL, "CUSTOMER is an email address"},
      {"actor", 'a', "A", "the command's actor (default b2bctl-privacy)"}, TIMEOUT_OPT("30"),
      JSON_OPT, {"output", 'o', "FILE", "write the document to FILE"}},
     false, ctl_privacy_run},
    {"privacy", "redact", "SHOP CUSTOMER", 2, "a customer's erasure (asks to confirm)",
     "Produces a customer.redact (erases the customer's personal data; see README,\n"
     "Privacy) and prints what was erased. It asks for confirmation on a terminal; --yes\n"
     "confirms (and is required when standard input is not a terminal).\n"
     "CUSTOMER is a customer_id, or with --email an email address. Waits at most S seconds\n"
     "(default 30). Exit 1 unless applied.\n",
     {{"email", 'e', NULL, "CUSTOMER is an email address"},
      {"actor", 'a', "A", "the command's actor (default b2bctl-privacy)"}, TIMEOUT_OPT("30"),
      JSON_OPT, {"yes", 'y', NULL, "confirm the erasure"}},
     false, ctl_privacy_run},
    {"history", NULL, "SHOP CUSTOMER", 2, "a customer's access versions",
     "A customer's access versions, oldest first, from the database: each version's\n"
     "companies and roles, the command that caused it, its actor and time.\n",
     {JSON_OPT}, false, ctl_history_run},
    {"completion", NULL, "SHELL", 1, "a completion script (SHELL: bash)",
     "Prints a bash completion script for b2bctl's commands and options (the package\n"
     "installs it as /usr/share/bash-completion/completions/b2bctl).\n",
     {{NULL}}, true, cmd_completion},
};
#define N_COMMANDS (sizeof commands / sizeof *commands)

static int cmd_completion(const struct b2bd_config *cfg, const struct ctl_args *a)
{
    (void)cfg;
    if (strcmp(a->operands[0], "bash")) {
        fprintf(stderr, "b2bctl: completion: only bash\n");
        return 2;
    }
    ctl_cli_bash_completion(commands, N_COMMANDS, "b2bctl", "--config --help --version", stdout);
    return 0;
}

static void usage(FILE *f)
{
    fputs("usage: b2bctl [--config FILE] COMMAND ... (COMMAND --help for its options)\n"
          "       b2bctl --version\n"
          "commands:\n",
          f);
    ctl_cli_commands(commands, N_COMMANDS, f);
    fputs("Settings as for b2bd (--config FILE and B2BD_* variables: B2BD_KAFKA_BOOTSTRAP,\n"
          "B2BD_TOPIC_PREFIX, B2BD_PG_DSN, ...; only the ones a command needs must be set).\n",
          f);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int i = 1;
    if (i + 1 < argc && !strcmp(argv[i], "--config")) {
        path = argv[i + 1];
        i += 2;
    }
    if (i >= argc || !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
        usage(i >= argc ? stderr : stdout);
        return i >= argc ? 2 : 0;
    }
    if (!strcmp(argv[i], "--version")) {
        printf("b2bctl %s\n", B2BD_VERSION);
        return 0;
    }
    bool known = false;
    const struct ctl_cmd *cmd = ctl_cli_find(commands, N_COMMANDS, argc - i, argv + i, &known);
    if (!cmd) {
        /* a command with subcommands: its help, to stdout for --help */
        int help = known && argc - i >= 2 && (!strcmp(argv[i + 1], "--help") || !strcmp(argv[i + 1], "-h"));
        if (known)
            ctl_cli_help(commands, N_COMMANDS, argv[i], help ? stdout : stderr);
        else
            usage(stderr);
        return help ? 0 : 2;
    }
    struct ctl_args args;
    int rc = ctl_cli_parse(commands, N_COMMANDS, cmd, argc - i, argv + i, &args);
    if (rc >= 0)
        return rc;
    if (cmd->no_config)
        return cmd->run(NULL, &args);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    log_init(LOG_WARN, stderr);
    /* b2bctl needs only some settings: fill the required ones it may not use */
    struct b2bd_config cfg;
    struct b2bd_err err;
    size_t n_env = 0;
    while (environ[n_env])
        n_env++;
    char **envp = calloc(n_env + 3, sizeof *envp);
    envp[0] = "B2BD_KAFKA_BOOTSTRAP=127.0.0.1:9092";
    envp[1] = "B2BD_PG_DSN=dbname=b2bd";
    memcpy(envp + 2, environ, n_env * sizeof *envp);
    rc = config_load(path, envp, &cfg, &err);
    free(envp);
    if (rc < 0) {
        fprintf(stderr, "b2bctl: configuration: %s %s (%s)\n", err.field, err.msg,
                b2bd_code_name(err.code));
        return 2;
    }
    rc = cmd->run(&cfg, &args);
    config_free(&cfg);
    return rc;
}
