/* Unit tests of decode: dead letters, rejections with their fields, and typed commands. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "b2bd/decode.h"

#define MAX_BYTES (1024 * 1024)
#define UUID "6f1c2e1a-7c1d-4b0e-9a57-0c2b9f7e4d11"

/* Test messages are written with ' for " to keep them readable. */
static char *dq(const char *s)
{
    char *out = strdup(s);
    assert_non_null(out);
    for (char *p = out; *p; p++)
        if (*p == '\'')
            *p = '"';
    return out;
}

/* An envelope around a payload (all single-quoted). */
static char *envelope(const char *type, const char *payload)
{
    char *s = NULL;
    assert_true(asprintf(&s, "{'command_id':'" UUID "','type':'%s','shop_id':'shop-1',"
                             "'payload':%s}", type, payload) > 0);
    char *out = dq(s);
    free(s);
    return out;
}

/* `unit` n times. */
static char *rep(const char *unit, size_t n)
{
    size_t ul = strlen(unit);
    char *s = malloc(ul * n + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * ul, unit, ul);
    s[ul * n] = '\0';
    return s;
}

static enum decode_outcome decode_raw(const char *buf, size_t len, enum b2bd_topic topic,
                                      struct b2bd_command *cmd, struct b2bd_err *err)
{
    return decode_command(buf, len, MAX_BYTES, topic, cmd, err);
}

/* Decodes msg (already with ") and checks outcome, code and field (NULL: not checked). */
static void check_msg(const char *msg, size_t len, enum b2bd_topic topic,
                      enum decode_outcome want, enum b2bd_code code, const char *field)
{
    struct b2bd_command cmd;
    struct b2bd_err err;
    enum decode_outcome got = decode_raw(msg, len, topic, &cmd, &err);
    bool ok = got == want && err.code == code && (!field || strcmp(err.field, field) == 0);
    if (want == DECODE_OK)
        ok = ok && err.field[0] == '\0';
    else
        ok = ok && err.msg[0] != '\0';
    if (!ok) {
        print_error("message: %.300s\n  want outcome %d %s field '%s'\n"
                    "  got  outcome %d %s field '%s': %s\n",
                    msg, want, b2bd_code_name(code), field ? field : "(any)", got,
                    b2bd_code_name(err.code), err.field, err.msg);
        decode_free(&cmd);
        fail();
    }
    decode_free(&cmd);
}

static void check(const char *quoted, enum b2bd_topic topic, enum decode_outcome want,
                  enum b2bd_code code, const char *field)
{
    char *msg = dq(quoted);
    check_msg(msg, strlen(msg), topic, want, code, field);
    free(msg);
}

/* A payload of `type` on its own topic: accepted, or rejected with code and field. */
static void payload_ok(const char *type, const char *payload)
{
    char *msg = envelope(type, payload);
    enum b2bd_topic topic = TOPIC_SYNC;
    for (int t = 0; t < CMD_UNKNOWN; t++)
        if (strcmp(decode_type_name((enum b2bd_cmd_type)t), type) == 0)
            topic = decode_type_topic((enum b2bd_cmd_type)t);
    check_msg(msg, strlen(msg), topic, DECODE_OK, B2BD_OK, NULL);
    free(msg);
}

static void payload_bad(const char *type, const char *payload, const char *field)
{
    char *msg = envelope(type, payload);
    enum b2bd_topic topic = TOPIC_SYNC;
    for (int t = 0; t < CMD_UNKNOWN; t++)
        if (strcmp(decode_type_name((enum b2bd_cmd_type)t), type) == 0)
            topic = decode_type_topic((enum b2bd_cmd_type)t);
    check_msg(msg, strlen(msg), topic, DECODE_REJECTED, B2BD_INVALID, field);
    free(msg);
}

/* Decodes an accepted command for the typed checks. */
static void decode_ok(const char *type, enum b2bd_topic topic, const char *payload,
                      struct b2bd_command *cmd)
{
    char *msg = envelope(type, payload);
    struct b2bd_err err;
    enum decode_outcome o = decode_raw(msg, strlen(msg), topic, cmd, &err);
    if (o != DECODE_OK)
        print_error("%s: %s %s\n", msg, err.field, err.msg);
    free(msg);
    assert_int_equal(o, DECODE_OK);
    assert_int_equal(err.code, B2BD_OK);
}

/* ---- err ------------------------------------------------------------------------- */

static void test_err_names_and_classes(void **state)
{
    (void)state;
    assert_string_equal(b2bd_code_name(B2BD_INVALID), "INVALID");
    assert_string_equal(b2bd_code_name(B2BD_NOT_FOUND), "NOT_FOUND");
    assert_string_equal(b2bd_code_name(B2BD_LIMIT_REACHED), "LIMIT_REACHED");
    assert_string_equal(b2bd_code_name(B2BD_NOT_A_CONTACT), "NOT_A_CONTACT");
    assert_string_equal(b2bd_code_name(B2BD_NO_LOCATION_ACCESS), "NO_LOCATION_ACCESS");
    assert_string_equal(b2bd_code_name(B2BD_ALREADY_MIGRATED), "ALREADY_MIGRATED");
    assert_string_equal(b2bd_code_name(B2BD_UNKNOWN_TYPE), "UNKNOWN_TYPE");
    assert_string_equal(b2bd_code_name(B2BD_WRONG_TOPIC), "WRONG_TOPIC");
    assert_string_equal(b2bd_code_name(B2BD_IDEMPOTENCY_KEY_REUSED), "IDEMPOTENCY_KEY_REUSED");
    assert_string_equal(b2bd_code_name(B2BD_CONFLICT), "CONFLICT");
    assert_string_equal(b2bd_code_name(B2BD_MERGE_REFUSED), "MERGE_REFUSED");
    assert_string_equal(b2bd_code_name(B2BD_SUSPENDED), "SUSPENDED");
    assert_int_equal(b2bd_code_from_name("SUSPENDED"), B2BD_SUSPENDED);
    assert_string_equal(b2bd_code_name(B2BD_UNPROCESSABLE), "UNPROCESSABLE");
    assert_string_equal(b2bd_code_name(B2BD_NOT_JSON), "NOT_JSON");
    assert_string_equal(b2bd_code_name(B2BD_NOT_A_COMMAND), "NOT_A_COMMAND");
    assert_string_equal(b2bd_code_name(B2BD_TOO_LARGE), "TOO_LARGE");
    assert_string_equal(b2bd_code_name(B2BD_COMMANDS_LOST), "COMMANDS_LOST");
    assert_string_equal(b2bd_code_name(B2BD_ERR_DB), "DB_ERROR");
    assert_string_equal(b2bd_code_name(B2BD_ERR_INTERNAL), "INTERNAL");
    assert_non_null(b2bd_code_name((enum b2bd_code)999));
    for (int c = B2BD_OK; c <= B2BD_ERR_INTERNAL; c++) {
        bool rej = c >= B2BD_INVALID && c <= B2BD_UNPROCESSABLE;
        bool dead = c == B2BD_NOT_JSON || c == B2BD_NOT_A_COMMAND || c == B2BD_TOO_LARGE ||
                    c == B2BD_COMMANDS_LOST;
        assert_int_equal(!!b2bd_code_is_rejection((enum b2bd_code)c), rej);
        assert_int_equal(!!b2bd_code_is_dead_letter((enum b2bd_code)c), dead);
    }
}

static void test_err_set_and_clear(void **state)
{
    (void)state;
    struct b2bd_err e;
    assert_int_equal(b2bd_err_set(&e, B2BD_NOT_FOUND, "payload.company_id", "no company %s (%d)",
                                  "c-1", 7),
                     B2BD_NOT_FOUND);
    assert_int_equal(e.code, B2BD_NOT_FOUND);
    assert_string_equal(e.msg, "no company c-1 (7)");
    assert_string_equal(e.field, "payload.company_id");
    b2bd_err_set(&e, B2BD_INVALID, NULL, "x");
    assert_string_equal(e.field, "");
    b2bd_err_clear(&e);
    assert_int_equal(e.code, B2BD_OK);
    assert_string_equal(e.msg, "");
    assert_string_equal(e.field, "");
    /* A truncated message never ends inside a UTF-8 sequence. */
    char *long_e = rep("\xc3\xa9", 300);
    b2bd_err_set(&e, B2BD_INVALID, long_e, "x%s", long_e);
    assert_int_equal(strlen(e.msg), 255);        /* "x" + 127 two-byte characters */
    assert_int_equal(strlen(e.field), 126);      /* 63 two-byte characters */
    free(long_e);
}

/* ---- names ----------------------------------------------------------------------- */

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(decode_topic_suffix(TOPIC_ASSIGN), "commands.assign");
    assert_string_equal(decode_topic_suffix(TOPIC_SYNC), "commands.sync");
    assert_int_equal(decode_topic_from_name("b2b.", "b2b.commands.revoke"), TOPIC_REVOKE);
    assert_int_equal(decode_topic_from_name("b2b.", "b2b.commands.sync"), TOPIC_SYNC);
    assert_int_equal(decode_topic_from_name("x.", "b2b.commands.sync"), -1);
    assert_int_equal(decode_topic_from_name("b2b.", "b2b.results"), -1);
    assert_int_equal(decode_topic_from_name("", "commands.notify"), TOPIC_NOTIFY);
    assert_int_equal(decode_topic_from_name(NULL, "commands.migrate"), TOPIC_MIGRATE);
    assert_int_equal(decode_topic_from_name("b2b.", "b2b.commands.assignx"), -1);
    assert_string_equal(decode_topic_suffix(TOPIC_BULK), "commands.bulk");
    assert_int_equal(decode_topic_from_name("b2b.", "b2b.commands.bulk"), TOPIC_BULK);
    const char *types[] = {"assign", "revoke", "migrate", "notify", "suspend", "resume", "shop.upsert",
                           "company.upsert", "customer.upsert", "order.upsert",
                           "template.update", "customer.merge", "customer.data_request",
                           "customer.redact", "shop.redact", "unknown"};
    for (int t = 0; t <= CMD_UNKNOWN; t++)
        assert_string_equal(decode_type_name((enum b2bd_cmd_type)t), types[t]);
    assert_int_equal(decode_type_topic(CMD_ASSIGN), TOPIC_ASSIGN);
    assert_int_equal(decode_type_topic(CMD_REVOKE), TOPIC_REVOKE);
    assert_int_equal(decode_type_topic(CMD_MIGRATE), TOPIC_MIGRATE);
    assert_int_equal(decode_type_topic(CMD_NOTIFY), TOPIC_NOTIFY);
    assert_int_equal(decode_type_topic(CMD_SUSPEND), TOPIC_REVOKE);
    assert_int_equal(decode_type_topic(CMD_RESUME), TOPIC_REVOKE);
    for (int t = CMD_SHOP_UPSERT; t < CMD_UNKNOWN; t++)
        assert_int_equal(decode_type_topic((enum b2bd_cmd_type)t), TOPIC_SYNC);
    assert_string_equal(decode_role_name(ROLE_ORDERING_ONLY), "ordering_only");
    assert_string_equal(decode_role_name(ROLE_LOCATION_ADMIN), "location_admin");
    assert_string_equal(decode_role_label(ROLE_ORDERING_ONLY), "Ordering only");
    assert_string_equal(decode_role_label(ROLE_LOCATION_ADMIN), "Location admin");
    assert_string_equal(decode_order_status_name(ORDER_OPEN), "open");
    assert_string_equal(decode_order_status_name(ORDER_CLOSED), "closed");
    assert_string_equal(decode_order_status_name(ORDER_CANCELLED), "cancelled");
    assert_string_equal(decode_order_status_name(ORDER_DELETED), "deleted");
}

static void test_validators(void **state)
{
    (void)state;
    assert_true(decode_is_uuid(UUID));
    assert_true(decode_is_uuid("6F1C2E1A-7C1D-4B0E-9A57-0C2B9F7E4D11"));
    assert_false(decode_is_uuid(NULL));
    assert_false(decode_is_uuid(""));
    assert_false(decode_is_uuid("6f1c2e1a7c1d4b0e9a570c2b9f7e4d11"));
    assert_false(decode_is_uuid("6f1c2e1a-7c1d-4b0e-9a57-0c2b9f7e4d1"));
    assert_false(decode_is_uuid("6f1c2e1a-7c1d-4b0e-9a57-0c2b9f7e4d111"));
    assert_false(decode_is_uuid("6f1c2e1g-7c1d-4b0e-9a57-0c2b9f7e4d11"));
    assert_false(decode_is_uuid("6f1c2e1a-7c1d-4b0e-9a57_0c2b9f7e4d11"));
    assert_false(decode_is_uuid("{6f1c2e1a-7c1d-4b0e-9a57-0c2b9f7e4d1}"));

    assert_true(decode_is_shop_id("shop-1"));
    assert_true(decode_is_shop_id("A.b_c:d-9"));
    char *s64 = rep("x", 64), *s65 = rep("x", 65);
    assert_true(decode_is_shop_id(s64));
    assert_false(decode_is_shop_id(s65));
    free(s64);
    free(s65);
    assert_false(decode_is_shop_id(""));
    assert_false(decode_is_shop_id(NULL));
    assert_false(decode_is_shop_id("shop 1"));
    assert_false(decode_is_shop_id("shop/1"));
    assert_false(decode_is_shop_id("sh\xc3\xb6p"));

    assert_true(decode_is_email("a@b.example"));
    assert_true(decode_is_email("A.B+tag@Example.COM"));
    assert_true(decode_is_email("user@localhost"));
    assert_true(decode_is_email("j\xc3\xb8rn@bl\xc3\xa5" "b\xc3\xa6r.no"));  /* unicode */
    assert_false(decode_is_email(NULL));
    assert_false(decode_is_email(""));
    assert_false(decode_is_email("ab.example"));
    assert_false(decode_is_email("@b.example"));
    assert_false(decode_is_email("a@"));
    assert_false(decode_is_email("a@b@c"));
    assert_false(decode_is_email("a b@c.example"));
    assert_false(decode_is_email("a@c.example "));
    assert_false(decode_is_email("a\t@c.example"));
    assert_false(decode_is_email("a\r\nBcc: x@y@c.example"));
    assert_false(decode_is_email("a\x7f@c.example"));
    assert_false(decode_is_email("a\xc2\xa0@c.example"));    /* no-break space */
    assert_false(decode_is_email("a\xe3\x80\x80@c.example")); /* ideographic space */
    assert_false(decode_is_email("a@.example"));
    assert_false(decode_is_email("a@example."));
    assert_false(decode_is_email("a@ex..ample"));
    char *local = rep("a", 240), *e = NULL;
    assert_true(asprintf(&e, "%s@b.example", local) > 0); /* 250 bytes */
    assert_true(decode_is_email(e));
    free(e);
    assert_true(asprintf(&e, "%s@bbbbb.example", local) > 0); /* 254 */
    assert_true(decode_is_email(e));
    free(e);
    assert_true(asprintf(&e, "%s@bbbbbb.example", local) > 0); /* 255 */
    assert_false(decode_is_email(e));
    free(e);
    free(local);
}

/* ---- dead letters -------------------------------------------------------------- */

static void test_too_large(void **state)
{
    (void)state;
    char *msg = envelope("migrate", "{'company_id':'c','location_id':'l','customer_id':'u'}");
    size_t len = strlen(msg);
    struct b2bd_command cmd;
    struct b2bd_err err;
    assert_int_equal(decode_command(msg, len, len, TOPIC_MIGRATE, &cmd, &err), DECODE_OK);
    decode_free(&cmd);
    assert_int_equal(decode_command(msg, len, len - 1, TOPIC_MIGRATE, &cmd, &err),
                     DECODE_DEAD_LETTER);
    assert_int_equal(err.code, B2BD_TOO_LARGE);
    assert_null(cmd.root);
    assert_string_equal(cmd.command_id, "");
    decode_free(&cmd);
    free(msg);
    /* Checked before parsing: garbage over the limit is TOO_LARGE too. */
    char *junk = rep("\xff", 100);
    assert_int_equal(decode_command(junk, 100, 99, TOPIC_SYNC, &cmd, &err), DECODE_DEAD_LETTER);
    assert_int_equal(err.code, B2BD_TOO_LARGE);
    decode_free(&cmd);
    free(junk);
}

static void test_not_json(void **state)
{
    (void)state;
    const char *cases[] = {
        "",
        " ",
        "{",
        "nul",
        "{'command_id':'" UUID "','type':'migrate'",                      /* truncated */
        "{'command_id':'" UUID "','type':'migr",                          /* truncated */
        "{'command_id':'" UUID "'} x",                                    /* trailing */
        "{'command_id':'" UUID "',}",
        "{command_id:'" UUID "'}",
        "{'command_id':'" UUID "','payload':{'a':'\\ud800'}}",            /* lone surrogate */
        "{'command_id':'" UUID "','payload':{'a':99999999999999999999}}", /* beyond int64 */
        "{'command_id':'" UUID "','payload':{'a\\u0000b':1}}",            /* NUL in a key */
        "{'command_id':'" UUID "','payload':{'a':'\\x'}}",                /* bad escape */
        "{'command_id':'" UUID "','payload':{'a':'tab\there'}}",          /* raw control */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check(cases[i], TOPIC_SYNC, DECODE_DEAD_LETTER, B2BD_NOT_JSON, "");
    /* Invalid UTF-8 bytes. */
    const char *bytes[] = {
        "{\"command_id\":\"" UUID "\",\"type\":\"\xff\"}",
        "{\"command_id\":\"" UUID "\",\"type\":\"\xc3\x28\"}",           /* bad continuation */
        "{\"command_id\":\"" UUID "\",\"type\":\"\xc0\xaf\"}",           /* overlong */
        "{\"command_id\":\"" UUID "\",\"type\":\"\xed\xa0\x80\"}",       /* UTF-16 surrogate */
        "{\"command_id\":\"" UUID "\",\"type\":\"\xe2\x82\"}",           /* cut sequence */
        "\xef\xbb\xbf{\"command_id\":\"" UUID "\"}",                     /* byte order mark */
    };
    for (size_t i = 0; i < sizeof bytes / sizeof *bytes; i++)
        check_msg(bytes[i], strlen(bytes[i]), TOPIC_SYNC, DECODE_DEAD_LETTER, B2BD_NOT_JSON,
                  "");
    /* A raw NUL byte in the message. */
    const char nul[] = "{\"command_id\":\"" UUID "\",\"type\":\"a\0b\"}";
    check_msg(nul, sizeof nul - 1, TOPIC_SYNC, DECODE_DEAD_LETTER, B2BD_NOT_JSON, "");
    /* NULL buffer. */
    struct b2bd_command cmd;
    struct b2bd_err err;
    assert_int_equal(decode_command(NULL, 0, MAX_BYTES, TOPIC_SYNC, &cmd, &err),
                     DECODE_DEAD_LETTER);
    assert_int_equal(err.code, B2BD_NOT_JSON);
    decode_free(&cmd);
}

static void test_deep_nesting(void **state)
{
    (void)state;
    const size_t depth = 10000;
    char *open = rep("[", depth), *close = rep("]", depth), *msg = NULL;
    /* Unclosed, closed, and inside a real command's payload. */
    check_msg(open, depth, TOPIC_SYNC, DECODE_DEAD_LETTER, B2BD_NOT_JSON, "");
    assert_true(asprintf(&msg, "%s%s", open, close) > 0);
    check_msg(msg, strlen(msg), TOPIC_SYNC, DECODE_DEAD_LETTER, B2BD_NOT_JSON, "");
    free(msg);
    assert_true(asprintf(&msg, "{\"command_id\":\"" UUID "\",\"type\":\"shop.upsert\","
                               "\"shop_id\":\"s\",\"payload\":{\"name\":\"n\",\"x\":%s%s}}",
                         open, close) > 0);
    check_msg(msg, strlen(msg), TOPIC_SYNC, DECODE_DEAD_LETTER, B2BD_NOT_JSON, "");
    free(msg);
    char *objs = rep("{\"a\":", depth);
    check_msg(objs, strlen(objs), TOPIC_SYNC, DECODE_DEAD_LETTER, B2BD_NOT_JSON, "");
    free(objs);
    /* Deep but within jansson's limit: fine, and ignored as an extra field. */
    char *o2 = rep("[", 2000), *c2 = rep("]", 2000);
    assert_true(asprintf(&msg, "{\"command_id\":\"" UUID "\",\"type\":\"shop.upsert\","
                               "\"shop_id\":\"s\",\"payload\":{\"name\":\"n\",\"x\":%s%s}}",
                         o2, c2) > 0);
    check_msg(msg, strlen(msg), TOPIC_SYNC, DECODE_OK, B2BD_OK, NULL);
    free(msg);
    free(o2);
    free(c2);
    free(open);
    free(close);
}

static void test_not_a_command(void **state)
{
    (void)state;
    const char *cases[] = {
        "[]",
        "['" UUID "']",
        "123",
        "-1.5e3",
        "'" UUID "'",
        "null",
        "true",
        "{}",
        "{'type':'assign','shop_id':'s','payload':{}}",
        "{'command_id':null}",
        "{'command_id':42}",
        "{'command_id':{'id':'" UUID "'}}",
        "{'command_id':['" UUID "']}",
        "{'command_id':''}",
        "{'command_id':'not-a-uuid'}",
        "{'command_id':'6f1c2e1a7c1d4b0e9a570c2b9f7e4d11'}",
        "{'command_id':'6f1c2e1a-7c1d-4b0e-9a57-0c2b9f7e4d1'}",
        "{'command_id':'6f1c2e1a-7c1d-4b0e-9a57-0c2b9f7e4d1x'}",
        "{'command_id':' " UUID "'}",
        "{'command_id':'" UUID "\\u0000'}",
        "{'Command_id':'" UUID "'}",
        /* a duplicate key does not make a non-command a command */
        "{'command_id':'x','command_id':'y'}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check(cases[i], TOPIC_SYNC, DECODE_DEAD_LETTER, B2BD_NOT_A_COMMAND, "");
}

static void test_command_id_canonical(void **state)
{
    (void)state;
    char *msg = dq("{'command_id':'6F1C2E1A-7C1D-4B0E-9A57-0C2B9F7E4D11','type':'migrate',"
                   "'shop_id':'s','payload':{'company_id':'c','location_id':'l',"
                   "'customer_id':'u'}}");
    struct b2bd_command cmd;
    struct b2bd_err err;
    assert_int_equal(decode_raw(msg, strlen(msg), TOPIC_MIGRATE, &cmd, &err), DECODE_OK);
    assert_string_equal(cmd.command_id, UUID);
    decode_free(&cmd);
    free(msg);
}

/* ---- envelope ------------------------------------------------------------------- */

#define ENV(rest) "{'command_id':'" UUID "'," rest "}"
#define MIGRATE_P "'payload':{'company_id':'c','location_id':'l','customer_id':'u'}"

static void test_envelope_rules(void **state)
{
    (void)state;
    const enum decode_outcome R = DECODE_REJECTED;
    check(ENV("'type':'migrate','shop_id':'s'," MIGRATE_P), TOPIC_MIGRATE, DECODE_OK, B2BD_OK,
          NULL);
    /* type */
    check(ENV("'shop_id':'s'," MIGRATE_P), TOPIC_MIGRATE, R, B2BD_INVALID, "type");
    check(ENV("'type':null,'shop_id':'s'," MIGRATE_P), TOPIC_MIGRATE, R, B2BD_INVALID, "type");
    check(ENV("'type':7,'shop_id':'s'," MIGRATE_P), TOPIC_MIGRATE, R, B2BD_INVALID, "type");
    check(ENV("'type':['migrate'],'shop_id':'s'," MIGRATE_P), TOPIC_MIGRATE, R, B2BD_INVALID,
          "type");
    check(ENV("'type':'migrate\\u0000','shop_id':'s'," MIGRATE_P), TOPIC_MIGRATE, R,
          B2BD_INVALID, "type");
    check(ENV("'type':'frobnicate','shop_id':'s'," MIGRATE_P), TOPIC_MIGRATE, R,
          B2BD_UNKNOWN_TYPE, "type");
    check(ENV("'type':'Migrate','shop_id':'s'," MIGRATE_P), TOPIC_MIGRATE, R,
          B2BD_UNKNOWN_TYPE, "type");
    check(ENV("'type':'','shop_id':'s'," MIGRATE_P), TOPIC_MIGRATE, R, B2BD_UNKNOWN_TYPE,
          "type");
    check(ENV("'type':'unknown','shop_id':'s'," MIGRATE_P), TOPIC_MIGRATE, R,
          B2BD_UNKNOWN_TYPE, "type");
    /* wrong topic, both ways; decided before the payload is looked at */
    check(ENV("'type':'migrate','shop_id':'s'," MIGRATE_P), TOPIC_ASSIGN, R, B2BD_WRONG_TOPIC,
          "type");
    check(ENV("'type':'migrate','shop_id':'s'," MIGRATE_P), TOPIC_SYNC, R, B2BD_WRONG_TOPIC,
          "type");
    check(ENV("'type':'shop.upsert','shop_id':'s','payload':{'name':'n'}"), TOPIC_NOTIFY, R,
          B2BD_WRONG_TOPIC, "type");
    check(ENV("'type':'suspend','shop_id':'s','payload':{'company_id':'c'}"), TOPIC_ASSIGN, R,
          B2BD_WRONG_TOPIC, "type");
    check(ENV("'type':'resume','shop_id':'s','payload':{'company_id':'c'}"), TOPIC_REVOKE, DECODE_OK,
          B2BD_OK, NULL);
    check(ENV("'type':'assign','shop_id':'s','payload':{}"), TOPIC_REVOKE, R, B2BD_WRONG_TOPIC,
          "type");
    /* the bulk topic takes every type, with the checks of the type's own topic */
    check(ENV("'type':'migrate','shop_id':'s'," MIGRATE_P), TOPIC_BULK, DECODE_OK, B2BD_OK, NULL);
    check(ENV("'type':'shop.upsert','shop_id':'s','payload':{'name':'n'}"), TOPIC_BULK,
          DECODE_OK, B2BD_OK, NULL);
    check(ENV("'type':'assign','shop_id':'s','payload':{}"), TOPIC_BULK, R, B2BD_INVALID,
          "payload.company_id");
    check(ENV("'type':'frobnicate','shop_id':'s'," MIGRATE_P), TOPIC_BULK, R,
          B2BD_UNKNOWN_TYPE, "type");
    check(ENV("'type':'migrate'," MIGRATE_P), TOPIC_BULK, R, B2BD_INVALID, "shop_id");
    /* shop_id */
    check(ENV("'type':'migrate'," MIGRATE_P), TOPIC_MIGRATE, R, B2BD_INVALID, "shop_id");
    check(ENV("'type':'migrate','shop_id':''," MIGRATE_P), TOPIC_MIGRATE, R, B2BD_INVALID,
          "shop_id");
    check(ENV("'type':'migrate','shop_id':1," MIGRATE_P), TOPIC_MIGRATE, R, B2BD_INVALID,
          "shop_id");
    check(ENV("'type':'migrate','shop_id':'shop 1'," MIGRATE_P), TOPIC_MIGRATE, R,
          B2BD_INVALID, "shop_id");
    check(ENV("'type':'migrate','shop_id':'sh\\u00f6p'," MIGRATE_P), TOPIC_MIGRATE, R,
          B2BD_INVALID, "shop_id");
    check(ENV("'type':'migrate','shop_id':'a\\u0000'," MIGRATE_P), TOPIC_MIGRATE, R,
          B2BD_INVALID, "shop_id");
    check(ENV("'type':'migrate','shop_id':'"
              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'," MIGRATE_P),
          TOPIC_MIGRATE, DECODE_OK, B2BD_OK, NULL); /* 64 */
    check(ENV("'type':'migrate','shop_id':'"
              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'," MIGRATE_P),
          TOPIC_MIGRATE, R, B2BD_INVALID, "shop_id"); /* 65 */
    check(ENV("'type':'migrate','shop_id':'A-z.0_9:x'," MIGRATE_P), TOPIC_MIGRATE, DECODE_OK,
          B2BD_OK, NULL);
    /* issued_at */
    const char *good_ts[] = {"2026-11-22T10:00:00Z", "2026-11-22t10:00:00z",
                             "2026-11-22T10:00:00.123456Z", "2026-11-22T10:00:00+05:30",
                             "2024-02-29T23:59:60-08:00", "0001-01-01T00:00:00Z"};
    const char *bad_ts[] = {"2026-11-22", "2026-11-22T10:00:00", "2026-11-22 10:00:00Z",
                            "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z",
                            "2026-04-31T00:00:00Z", "2026-11-22T24:00:00Z",
                            "2026-11-22T10:60:00Z", "2026-11-22T10:00:61Z",
                            "2026-11-22T10:00:00.Z", "2026-11-22T10:00:00+0530",
                            "2026-11-22T10:00:00+24:00", "0000-01-01T00:00:00Z",
                            "26-11-22T10:00:00Z", "2026-11-22T10:00:00Zjunk", "tomorrow"};
    char buf[512];
    for (size_t i = 0; i < sizeof good_ts / sizeof *good_ts; i++) {
        snprintf(buf, sizeof buf, ENV("'type':'migrate','shop_id':'s','issued_at':'%s',"
                                      MIGRATE_P), good_ts[i]);
        check(buf, TOPIC_MIGRATE, DECODE_OK, B2BD_OK, NULL);
    }
    for (size_t i = 0; i < sizeof bad_ts / sizeof *bad_ts; i++) {
        snprintf(buf, sizeof buf, ENV("'type':'migrate','shop_id':'s','issued_at':'%s',"
                                      MIGRATE_P), bad_ts[i]);
        check(buf, TOPIC_MIGRATE, R, B2BD_INVALID, "issued_at");
    }
    check(ENV("'type':'migrate','shop_id':'s','issued_at':1764000000," MIGRATE_P),
          TOPIC_MIGRATE, R, B2BD_INVALID, "issued_at");
    check(ENV("'type':'migrate','shop_id':'s','issued_at':null," MIGRATE_P), TOPIC_MIGRATE,
          DECODE_OK, B2BD_OK, NULL);
    /* actor, import_id */
    check(ENV("'type':'migrate','shop_id':'s','actor':'staff:42','import_id':'imp-1',"
              MIGRATE_P), TOPIC_MIGRATE, DECODE_OK, B2BD_OK, NULL);
    check(ENV("'type':'migrate','shop_id':'s','actor':''," MIGRATE_P), TOPIC_MIGRATE, R,
          B2BD_INVALID, "actor");
    check(ENV("'type':'migrate','shop_id':'s','actor':42," MIGRATE_P), TOPIC_MIGRATE, R,
          B2BD_INVALID, "actor");
    check(ENV("'type':'migrate','shop_id':'s','import_id':''," MIGRATE_P), TOPIC_MIGRATE, R,
          B2BD_INVALID, "import_id");
    check(ENV("'type':'migrate','shop_id':'s','import_id':{}," MIGRATE_P), TOPIC_MIGRATE, R,
          B2BD_INVALID, "import_id");
    check(ENV("'type':'migrate','shop_id':'s','import_id':'a\\nb'," MIGRATE_P), TOPIC_MIGRATE,
          R, B2BD_INVALID, "import_id");
    char *a256 = rep("a", 256);
    snprintf(buf, sizeof buf, ENV("'type':'migrate','shop_id':'s','actor':'%s'," MIGRATE_P),
             a256);
    check(buf, TOPIC_MIGRATE, R, B2BD_INVALID, "actor");
    free(a256);
    /* payload */
    check(ENV("'type':'migrate','shop_id':'s'"), TOPIC_MIGRATE, R, B2BD_INVALID, "payload");
    check(ENV("'type':'migrate','shop_id':'s','payload':null"), TOPIC_MIGRATE, R, B2BD_INVALID,
          "payload");
    check(ENV("'type':'migrate','shop_id':'s','payload':[]"), TOPIC_MIGRATE, R, B2BD_INVALID,
          "payload");
    check(ENV("'type':'migrate','shop_id':'s','payload':'{}'"), TOPIC_MIGRATE, R, B2BD_INVALID,
          "payload");
    /* unknown envelope and payload fields are ignored */
    check(ENV("'type':'migrate','shop_id':'s','future':[1,{'x':null}],'payload':{"
              "'company_id':'c','location_id':'l','customer_id':'u','extra':{'a':1}}"),
          TOPIC_MIGRATE, DECODE_OK, B2BD_OK, NULL);
}

/* Decodes quoted on topic: a valid command whose dry_run is want (cmd->dry_run). */
static void check_dry(const char *quoted, enum b2bd_topic topic, bool want)
{
    char *msg = dq(quoted);
    struct b2bd_command cmd;
    struct b2bd_err err;
    enum decode_outcome got = decode_raw(msg, strlen(msg), topic, &cmd, &err);
    if (got != DECODE_OK)
        print_error("message: %.300s\n  got outcome %d %s field '%s': %s\n", msg, got,
                    b2bd_code_name(err.code), err.field, err.msg);
    bool dry = cmd.dry_run;
    decode_free(&cmd);
    free(msg);
    assert_int_equal(got, DECODE_OK);
    assert_int_equal(dry, want);
}

/* The idempotency hash of quoted (a valid command) into h. */
static void hash_of(const char *quoted, unsigned char h[32])
{
    char *msg = dq(quoted);
    struct b2bd_command cmd;
    struct b2bd_err err;
    assert_int_equal(decode_raw(msg, strlen(msg), TOPIC_MIGRATE, &cmd, &err), DECODE_OK);
    memcpy(h, cmd.hash, 32);
    decode_free(&cmd);
    free(msg);
}

/* dry_run: true makes assign, revoke, migrate, suspend and resume a dry run (on their own
 * topic and on the bulk topic); false or null is a command like any other; not a boolean,
 * or true on a type without dry runs, is INVALID; it does not count in the idempotency
 * hash. */
static void test_dry_run(void **state)
{
    (void)state;
    const enum decode_outcome R = DECODE_REJECTED;
    check_dry(ENV("'type':'migrate','shop_id':'s','dry_run':false," MIGRATE_P), TOPIC_MIGRATE, false);
    check_dry(ENV("'type':'migrate','shop_id':'s','dry_run':null," MIGRATE_P), TOPIC_MIGRATE, false);
    check_dry(ENV("'type':'migrate','shop_id':'s'," MIGRATE_P), TOPIC_MIGRATE, false);
    check(ENV("'type':'migrate','shop_id':'s','dry_run':'true'," MIGRATE_P), TOPIC_MIGRATE, R,
          B2BD_INVALID, "dry_run");
    check(ENV("'type':'migrate','shop_id':'s','dry_run':1," MIGRATE_P), TOPIC_MIGRATE, R,
          B2BD_INVALID, "dry_run");
    check_dry(ENV("'type':'migrate','shop_id':'s','dry_run':true," MIGRATE_P), TOPIC_MIGRATE, true);
    check_dry(ENV("'type':'suspend','shop_id':'s','dry_run':true,'payload':{'company_id':'c'}"),
              TOPIC_REVOKE, true);
    check_dry(ENV("'type':'resume','shop_id':'s','dry_run':true,'payload':{'company_id':'c'}"),
              TOPIC_REVOKE, true);
    check_dry(ENV("'type':'revoke','shop_id':'s','dry_run':true,'payload':{'company_id':'c',"
                  "'customer_id':'u','scope':'company'}"), TOPIC_REVOKE, true);
    check_dry(ENV("'type':'assign','shop_id':'s','dry_run':true,'payload':{'company_id':'c',"
                  "'customer':{'id':'u'},'locations':[]}"), TOPIC_ASSIGN, true);
    check_dry(ENV("'type':'assign','shop_id':'s','dry_run':true,'payload':{'company_id':'c',"
                  "'customer':{'id':'u'},'locations':[]}"), TOPIC_BULK, true);
    check(ENV("'type':'shop.upsert','shop_id':'s','dry_run':true,'payload':{'name':'n'}"), TOPIC_SYNC,
          R, B2BD_INVALID, "dry_run");
    check(ENV("'type':'notify','shop_id':'s','dry_run':true,'payload':{'company_id':'c',"
              "'customer_ids':['u']}"), TOPIC_NOTIFY, R, B2BD_INVALID, "dry_run");
    unsigned char real[32], dry[32];
    hash_of(ENV("'type':'migrate','shop_id':'s'," MIGRATE_P), real);
    hash_of(ENV("'type':'migrate','shop_id':'s','dry_run':true," MIGRATE_P), dry);
    assert_memory_equal(real, dry, 32);
}

static void test_envelope_fields_on_rejection(void **state)
{
    (void)state;
    struct b2bd_command cmd;
    struct b2bd_err err;
    char *msg = dq(ENV("'type':'assign','shop_id':'bad shop','issued_at':'yesterday',"
                       "'actor':'staff:1','import_id':'imp','payload':{'x':1}"));
    assert_int_equal(decode_raw(msg, strlen(msg), TOPIC_ASSIGN, &cmd, &err), DECODE_REJECTED);
    assert_int_equal(err.code, B2BD_INVALID);
    assert_string_equal(err.field, "shop_id");
    assert_string_equal(cmd.command_id, UUID);
    assert_string_equal(cmd.type_name, "assign");
    assert_int_equal(cmd.type, CMD_ASSIGN);
    assert_string_equal(cmd.shop_id, "bad shop");
    assert_string_equal(cmd.issued_at, "yesterday");
    assert_string_equal(cmd.actor, "staff:1");
    assert_string_equal(cmd.import_id, "imp");
    assert_non_null(cmd.payload);
    assert_non_null(cmd.root);
    decode_free(&cmd);
    decode_free(&cmd); /* twice is harmless */
    free(msg);

    msg = dq(ENV("'type':'bogus','shop_id':7,'actor':null"));
    assert_int_equal(decode_raw(msg, strlen(msg), TOPIC_ASSIGN, &cmd, &err), DECODE_REJECTED);
    assert_int_equal(err.code, B2BD_UNKNOWN_TYPE);
    assert_string_equal(cmd.type_name, "bogus");
    assert_int_equal(cmd.type, CMD_UNKNOWN);
    assert_null(cmd.shop_id);
    assert_null(cmd.actor);
    assert_null(cmd.issued_at);
    assert_null(cmd.import_id);
    assert_null(cmd.payload);
    decode_free(&cmd);
    free(msg);

    /* WRONG_TOPIC keeps the type that was read. */
    msg = dq(ENV("'type':'revoke','shop_id':'s','payload':{}"));
    assert_int_equal(decode_raw(msg, strlen(msg), TOPIC_ASSIGN, &cmd, &err), DECODE_REJECTED);
    assert_int_equal(err.code, B2BD_WRONG_TOPIC);
    assert_int_equal(cmd.type, CMD_REVOKE);
    decode_free(&cmd);
    free(msg);

    /* A rejection after typed arrays were filled leaves no typed data and no leak. */
    msg = envelope("assign", "{'company_id':'c','customer':{'id':'u'},'locations':["
                             "{'location_id':'l1','role':'ordering_only'},"
                             "{'location_id':'l2','role':'owner'}]}");
    assert_int_equal(decode_raw(msg, strlen(msg), TOPIC_ASSIGN, &cmd, &err), DECODE_REJECTED);
    assert_string_equal(err.field, "payload.locations[1].role");
    assert_null(cmd.u.assign.locations);
    assert_int_equal(cmd.u.assign.n_locations, 0);
    decode_free(&cmd);
    free(msg);
}

static void test_free_zeroed(void **state)
{
    (void)state;
    struct b2bd_command cmd;
    memset(&cmd, 0, sizeof cmd);
    decode_free(&cmd);
    decode_free(NULL);
    /* After a dead letter too. */
    struct b2bd_err err;
    assert_int_equal(decode_raw("[]", 2, TOPIC_SYNC, &cmd, &err), DECODE_DEAD_LETTER);
    decode_free(&cmd);
    decode_free(&cmd);
}

/* ---- NUL, lengths, control characters --------------------------------------------- */

static void test_nul_in_strings(void **state)
{
    (void)state;
    payload_bad("assign", "{'company_id':'c\\u0000','customer':{'id':'u'},'locations':[]}",
                "payload.company_id");
    payload_bad("assign", "{'company_id':'c','customer':{'email':'a@b.c\\u0000'},"
                          "'locations':[]}", "payload.customer.email");
    payload_bad("assign", "{'company_id':'c','customer':{'id':'u','first_name':'A\\u0000'},"
                          "'locations':[]}", "payload.customer.first_name");
    payload_bad("template.update", "{'subject':'s','text':'t\\u0000','html':'h'}",
                "payload.text");
    /* in fields the decoder does not read */
    payload_bad("shop.upsert", "{'name':'n','note':{'deep':['ok','bad\\u0000']}}",
                "payload.note.deep[1]");
    check(ENV("'type':'shop.upsert','shop_id':'s','meta':'\\u0000','payload':{'name':'n'}"),
          TOPIC_SYNC, DECODE_REJECTED, B2BD_INVALID, "meta");
    check(ENV("'type':'shop.upsert','shop_id':'s','actor':'x\\u0000','payload':{'name':'n'}"),
          TOPIC_SYNC, DECODE_REJECTED, B2BD_INVALID, "actor");
}

static void test_id_lengths(void **state)
{
    (void)state;
    const char *units[] = {"a", "\\u00e9", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                           "\\ud83d\\ude00"};
    char *p = NULL;
    for (size_t u = 0; u < sizeof units / sizeof *units; u++) {
        char *id255 = rep(units[u], 255), *id256 = rep(units[u], 256);
        assert_true(asprintf(&p, "{'company_id':'%s','location_id':'l','customer_id':'u'}",
                             id255) > 0);
        payload_ok("migrate", p);
        free(p);
        assert_true(asprintf(&p, "{'company_id':'c','location_id':'l','customer_id':'%s'}",
                             id256) > 0);
        payload_bad("migrate", p, "payload.customer_id");
        free(p);
        assert_true(asprintf(&p, "{'company_id':'c','customer':{'id':'u'},'locations':["
                                 "{'location_id':'%s','role':'ordering_only'}]}", id256) > 0);
        payload_bad("assign", p, "payload.locations[0].location_id");
        free(p);
        assert_true(asprintf(&p, "{'order_id':'%s','customer_id':'u','status':'open'}",
                             id255) > 0);
        payload_ok("order.upsert", p);
        free(p);
        free(id255);
        free(id256);
    }
    /* decode_is_id (b2bctl's --import-id): characters counted, not bytes */
    char *w255 = rep("\xf0\xa0\x80\x80", 255), *w256 = rep("\xf0\xa0\x80\x80", 256);
    assert_true(decode_is_id(w255));
    assert_false(decode_is_id(w256));
    free(w255);
    free(w256);
    assert_true(decode_is_id("imp-1"));
    assert_false(decode_is_id(""));
    assert_false(decode_is_id(NULL));
    assert_false(decode_is_id("a\tb"));
    assert_false(decode_is_id("a\xf0\xa0"));  /* not UTF-8 */
    payload_bad("migrate", "{'company_id':'','location_id':'l','customer_id':'u'}",
                "payload.company_id");
    /* control characters: refused in ids, kept in names */
    payload_bad("migrate", "{'company_id':'c\\u0001','location_id':'l','customer_id':'u'}",
                "payload.company_id");
    payload_bad("migrate", "{'company_id':'c','location_id':'l\\n','customer_id':'u'}",
                "payload.location_id");
    payload_bad("migrate", "{'company_id':'c','location_id':'l','customer_id':'u\\u007f'}",
                "payload.customer_id");
    payload_bad("migrate", "{'company_id':'c','location_id':'l','customer_id':'u\\u0085'}",
                "payload.customer_id");
    payload_ok("migrate", "{'company_id':'c d','location_id':' l ','customer_id':'\\u00e9'}");
    /* suspend and resume (CONTRACT.md, "Suspension"): customer_id absent or null is the
     * whole company; not a string, INVALID on it */
    payload_ok("suspend", "{'company_id':'c'}");
    payload_ok("suspend", "{'company_id':'c','customer_id':null}");
    payload_ok("resume", "{'company_id':'c','customer_id':'u'}");
    payload_bad("suspend", "{'customer_id':'u'}", "payload.company_id");
    payload_bad("suspend", "{'company_id':'c','customer_id':5}", "payload.customer_id");
    payload_bad("resume", "{'company_id':'c','customer_id':['u']}", "payload.customer_id");
    payload_bad("resume", "{'company_id':'c','customer_id':''}", "payload.customer_id");
    payload_ok("company.upsert", "{'company_id':'c','name':'Acme\\u0001\\n\\t Ltd'}");
    payload_ok("customer.upsert", "{'customer_id':'u','email':'a@b.c','first_name':'A\\r\\nB',"
                                  "'tags':['x\\ty']}");
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    const enum decode_outcome R = DECODE_REJECTED;
    check(ENV("'type':'migrate','shop_id':'s','shop_id':'t'," MIGRATE_P), TOPIC_MIGRATE, R,
          B2BD_INVALID, "shop_id");
    check(ENV("'type':'assign','shop_id':'s','payload':{'company_id':'c','customer':"
              "{'email':'a@b.c','email':'d@e.f'},'locations':[]}"),
          TOPIC_ASSIGN, R, B2BD_INVALID, "payload.customer.email");
    check(ENV("'type':'assign','shop_id':'s','payload':{'company_id':'c','customer':"
              "{'id':'u'},'locations':[{'location_id':'a','role':'ordering_only'},"
              "{'location_id':'b','role':'ordering_only','role':'location_admin'}]}"),
          TOPIC_ASSIGN, R, B2BD_INVALID, "payload.locations[1].role");
    check(ENV("'type':'shop.upsert','shop_id':'s','payload':{'name':'n','x':[[1,{}],"
              "{'\\u00e9':1,'\\u00e9':2}]}"),
          TOPIC_SYNC, R, B2BD_INVALID, "payload.x[1].\xc3\xa9");
    check(ENV("'type':'shop.upsert','shop_id':'s','payload':{'name':'\\u00e9\\u00e9','x':{"
              "'k\\'x\\\\':1,'a':1,'a':2}}"),
          TOPIC_SYNC, R, B2BD_INVALID, "payload.x.a");
    /* the same key spelled with an escape */
    check(ENV("'type':'shop.upsert','shop_id':'s','payload':{'name':'n','\\u006eame':'m'}"),
          TOPIC_SYNC, R, B2BD_INVALID, "payload.name");
    /* a repeated command_id: the last one is read */
    char *msg = dq("{'command_id':'00000000-0000-0000-0000-000000000000',"
                   "'command_id':'" UUID "','type':'shop.upsert','shop_id':'s',"
                   "'payload':{'name':'n'}}");
    struct b2bd_command cmd;
    struct b2bd_err err;
    assert_int_equal(decode_raw(msg, strlen(msg), TOPIC_SYNC, &cmd, &err), R);
    assert_int_equal(err.code, B2BD_INVALID);
    assert_string_equal(err.field, "command_id");
    assert_non_null(strstr(err.msg, "duplicate"));
    assert_string_equal(cmd.command_id, UUID);
    assert_string_equal(cmd.shop_id, "s");
    decode_free(&cmd);
    free(msg);
}

/* ---- per type: rejections ---------------------------------------------------------- */

#define CUST "'customer':{'id':'u'}"

static void test_assign_invalid(void **state)
{
    (void)state;
    const char *t = "assign";
    payload_bad(t, "{" CUST ",'locations':[]}", "payload.company_id");
    payload_bad(t, "{'company_id':null," CUST ",'locations':[]}", "payload.company_id");
    payload_bad(t, "{'company_id':5," CUST ",'locations':[]}", "payload.company_id");
    payload_bad(t, "{'company_id':'c','locations':[]}", "payload.customer");
    payload_bad(t, "{'company_id':'c','customer':'u','locations':[]}", "payload.customer");
    payload_bad(t, "{'company_id':'c','customer':{},'locations':[]}", "payload.customer");
    payload_bad(t, "{'company_id':'c','customer':{'id':null,'email':null},'locations':[]}",
                "payload.customer");
    payload_bad(t, "{'company_id':'c','customer':{'first_name':'A'},'locations':[]}",
                "payload.customer");
    payload_bad(t, "{'company_id':'c','customer':{'id':1},'locations':[]}",
                "payload.customer.id");
    payload_bad(t, "{'company_id':'c','customer':{'email':'nope'},'locations':[]}",
                "payload.customer.email");
    payload_bad(t, "{'company_id':'c','customer':{'email':'a b@c.d'},'locations':[]}",
                "payload.customer.email");
    payload_bad(t, "{'company_id':'c','customer':{'email':true},'locations':[]}",
                "payload.customer.email");
    payload_bad(t, "{'company_id':'c','customer':{'id':'u','email':'x@'},'locations':[]}",
                "payload.customer.email");
    payload_bad(t, "{'company_id':'c','customer':{'id':'u','first_name':7},'locations':[]}",
                "payload.customer.first_name");
    payload_bad(t, "{'company_id':'c','customer':{'id':'u','last_name':{}},'locations':[]}",
                "payload.customer.last_name");
    payload_bad(t, "{'company_id':'c','customer':{'id':'u','phone':1234},'locations':[]}",
                "payload.customer.phone");
    payload_bad(t, "{'company_id':'c'," CUST "}", "payload.locations");
    payload_bad(t, "{'company_id':'c'," CUST ",'locations':null}", "payload.locations");
    payload_bad(t, "{'company_id':'c'," CUST ",'locations':{}}", "payload.locations");
    payload_bad(t, "{'company_id':'c'," CUST ",'locations':['l1']}", "payload.locations[0]");
    payload_bad(t, "{'company_id':'c'," CUST ",'locations':[{'role':'ordering_only'}]}",
                "payload.locations[0].location_id");
    payload_bad(t, "{'company_id':'c'," CUST ",'locations':[{'location_id':'l'}]}",
                "payload.locations[0].role");
    payload_bad(t, "{'company_id':'c'," CUST ",'locations':[{'location_id':'a','role':"
                   "'ordering_only'},{'location_id':'b','role':'admin'}]}",
                "payload.locations[1].role");
    payload_bad(t, "{'company_id':'c'," CUST ",'locations':[{'location_id':'a','role':"
                   "'Ordering_only'}]}", "payload.locations[0].role");
    payload_bad(t, "{'company_id':'c'," CUST ",'locations':[{'location_id':'a','role':1}]}",
                "payload.locations[0].role");
    payload_bad(t, "{'company_id':'c'," CUST ",'locations':[{'location_id':'a','role':"
                   "'ordering_only'},{'location_id':'b','role':'ordering_only'},"
                   "{'location_id':'a','role':'location_admin'}]}",
                "payload.locations[2].location_id");
    payload_bad(t, "{'company_id':'c'," CUST ",'locations':[],'migrate_orders_to':''}",
                "payload.migrate_orders_to");
    payload_bad(t, "{'company_id':'c'," CUST ",'locations':[],'migrate_orders_to':3}",
                "payload.migrate_orders_to");
    payload_bad(t, "{'company_id':'c'," CUST ",'locations':[],'notify':'true'}",
                "payload.notify");
    payload_bad(t, "{'company_id':'c'," CUST ",'locations':[],'notify':1}", "payload.notify");
    /* the first error wins */
    payload_bad(t, "{'customer':{},'locations':7}", "payload.company_id");
}

static void test_assign_duplicates_many(void **state)
{
    (void)state;
    /* 5000 locations, the last one repeating the 4000th. */
    size_t n = 5000, cap = n * 64 + 256, len = 0;
    char *p = malloc(cap);
    assert_non_null(p);
    len += (size_t)snprintf(p + len, cap - len, "{'company_id':'c'," CUST ",'locations':[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(p + len, cap - len,
                                "%s{'location_id':'loc-%zu','role':'ordering_only'}",
                                i ? "," : "", i == n - 1 ? (size_t)3999 : i);
    snprintf(p + len, cap - len, "]}");
    payload_bad("assign", p, "payload.locations[4999].location_id");
    free(p);
}

static void test_revoke_invalid(void **state)
{
    (void)state;
    const char *t = "revoke";
    payload_bad(t, "{'customer_id':'u','scope':'company'}", "payload.company_id");
    payload_bad(t, "{'company_id':'c','scope':'company'}", "payload.customer_id");
    payload_bad(t, "{'company_id':'c','customer_id':'u'}", "payload.scope");
    payload_bad(t, "{'company_id':'c','customer_id':'u','scope':'everything'}", "payload.scope");
    payload_bad(t, "{'company_id':'c','customer_id':'u','scope':['company']}", "payload.scope");
    payload_bad(t, "{'company_id':'c','customer_id':'u','scope':'locations'}",
                "payload.location_ids");
    payload_bad(t, "{'company_id':'c','customer_id':'u','scope':'locations','location_ids':[]}",
                "payload.location_ids");
    payload_bad(t, "{'company_id':'c','customer_id':'u','scope':'locations','location_ids':'l'}",
                "payload.location_ids");
    payload_bad(t, "{'company_id':'c','customer_id':'u','scope':'locations',"
                   "'location_ids':['a',2]}", "payload.location_ids[1]");
    payload_bad(t, "{'company_id':'c','customer_id':'u','scope':'locations',"
                   "'location_ids':['a','b','a']}", "payload.location_ids[2]");
    payload_bad(t, "{'company_id':'c','customer_id':'u','scope':'locations',"
                   "'location_ids':['a'],'remove_migrated_orders':true}",
                "payload.remove_migrated_orders");
    payload_bad(t, "{'company_id':'c','customer_id':'u','scope':'all_locations',"
                   "'remove_migrated_orders':true}", "payload.remove_migrated_orders");
    payload_bad(t, "{'company_id':'c','customer_id':'u','scope':'company',"
                   "'remove_migrated_orders':'yes'}", "payload.remove_migrated_orders");
    payload_ok(t, "{'company_id':'c','customer_id':'u','scope':'all_locations',"
                  "'remove_migrated_orders':false}");
    /* location_ids is ignored with another scope, whatever it holds */
    payload_ok(t, "{'company_id':'c','customer_id':'u','scope':'company','location_ids':7}");
}

static void test_migrate_invalid(void **state)
{
    (void)state;
    payload_bad("migrate", "{'location_id':'l','customer_id':'u'}", "payload.company_id");
    payload_bad("migrate", "{'company_id':'c','customer_id':'u'}", "payload.location_id");
    payload_bad("migrate", "{'company_id':'c','location_id':'l'}", "payload.customer_id");
    payload_bad("migrate", "{'company_id':'c','location_id':['l'],'customer_id':'u'}",
                "payload.location_id");
}

static void test_notify_invalid(void **state)
{
    (void)state;
    const char *t = "notify";
    payload_bad(t, "{'customer_ids':['u']}", "payload.company_id");
    payload_bad(t, "{'company_id':'c'}", "payload.customer_ids");
    payload_bad(t, "{'company_id':'c','customer_ids':[]}", "payload.customer_ids");
    payload_bad(t, "{'company_id':'c','customer_ids':'u'}", "payload.customer_ids");
    payload_bad(t, "{'company_id':'c','customer_ids':['u','']}", "payload.customer_ids[1]");
    payload_bad(t, "{'company_id':'c','customer_ids':['u','v','u']}", "payload.customer_ids[2]");
    payload_bad(t, "{'company_id':'c','location_id':'','customer_ids':['u']}",
                "payload.location_id");
    payload_bad(t, "{'company_id':'c','customer_ids':['u'],'recipient':'boss'}",
                "payload.recipient");
    payload_bad(t, "{'company_id':'c','customer_ids':['u'],'recipient':'staff',"
                   "'staff_email':'staff'}", "payload.staff_email");
    payload_bad(t, "{'company_id':'c','customer_ids':['u'],'preview':'no'}", "payload.preview");
    payload_bad(t, "{'company_id':'c','resend_of':'n-1'}", "payload.resend_of");
    payload_bad(t, "{'company_id':'c','resend_of':42}", "payload.resend_of");
    /* with resend_of, customer_ids is ignored */
    payload_ok(t, "{'company_id':'c','resend_of':'" UUID "'}");
    payload_ok(t, "{'company_id':'c','resend_of':'" UUID "','customer_ids':[]}");
    payload_ok(t, "{'company_id':'c','resend_of':null,'customer_ids':['u']}");
}

static void test_shop_invalid(void **state)
{
    (void)state;
    const char *t = "shop.upsert";
    payload_bad(t, "{}", "payload.name");
    payload_bad(t, "{'name':null}", "payload.name");
    payload_bad(t, "{'name':''}", "payload.name");
    payload_bad(t, "{'name':42}", "payload.name");
    payload_bad(t, "{'name':'n','account_url':1}", "payload.account_url");
    payload_bad(t, "{'name':'n','from_email':'shop'}", "payload.from_email");
    payload_bad(t, "{'name':'n','staff_email':'a@b@c'}", "payload.staff_email");
    payload_bad(t, "{'name':'n','b2b_only':'false'}", "payload.b2b_only");
    payload_bad(t, "{'name':'n','b2b_only':0}", "payload.b2b_only");
    char *big = rep("\\u00e9", 1001), *p = NULL;
    assert_true(asprintf(&p, "{'name':'%s'}", big) > 0);
    payload_bad(t, p, "payload.name");
    free(p);
    big[strlen(big) - 6] = '\0'; /* 1000 characters */
    assert_true(asprintf(&p, "{'name':'%s'}", big) > 0);
    payload_ok(t, p);
    free(p);
    free(big);
}

static void test_company_invalid(void **state)
{
    (void)state;
    const char *t = "company.upsert";
    payload_bad(t, "{'name':'n'}", "payload.company_id");
    payload_bad(t, "{'company_id':'c'}", "payload.name");
    payload_bad(t, "{'company_id':'c','name':''}", "payload.name");
    payload_bad(t, "{'company_id':'c','name':'n','locations':{}}", "payload.locations");
    payload_bad(t, "{'company_id':'c','name':'n','locations':[{'name':'x'}]}",
                "payload.locations[0].location_id");
    payload_bad(t, "{'company_id':'c','name':'n','locations':[{'location_id':'a'},'b']}",
                "payload.locations[1]");
    payload_bad(t, "{'company_id':'c','name':'n','locations':[{'location_id':'a','name':1}]}",
                "payload.locations[0].name");
    payload_bad(t, "{'company_id':'c','name':'n','locations':[{'location_id':'a'},"
                   "{'location_id':'a','name':'x'}]}", "payload.locations[1].location_id");
}

static void test_customer_invalid(void **state)
{
    (void)state;
    const char *t = "customer.upsert";
    payload_bad(t, "{'email':'a@b.c'}", "payload.customer_id");
    payload_bad(t, "{'customer_id':'u'}", "payload.email");
    payload_bad(t, "{'customer_id':'u','email':''}", "payload.email");
    payload_bad(t, "{'customer_id':'u','email':'a@b.c','first_name':[]}",
                "payload.first_name");
    payload_bad(t, "{'customer_id':'u','email':'a@b.c','phone':33612345678}", "payload.phone");
    payload_bad(t, "{'customer_id':'u','email':'a@b.c','tags':'vip'}", "payload.tags");
    payload_bad(t, "{'customer_id':'u','email':'a@b.c','tags':['vip',1]}", "payload.tags[1]");
    payload_bad(t, "{'customer_id':'u','email':'a@b.c','tags':['vip','']}", "payload.tags[1]");
    char *t256 = rep("\\u00e9", 256), *t255 = rep("\\u00e9", 255), *p = NULL;
    assert_true(asprintf(&p, "{'customer_id':'u','email':'a@b.c','tags':['%s']}", t256) > 0);
    payload_bad(t, p, "payload.tags[0]");
    free(p);
    assert_true(asprintf(&p, "{'customer_id':'u','email':'a@b.c','tags':['%s']}", t255) > 0);
    payload_ok(t, p);
    free(p);
    free(t256);
    free(t255);
}

/* n tags t0..t(n-1), then `extra`. */
static char *tags_payload(size_t n, const char *extra)
{
    size_t cap = n * 16 + 256, len = 0;
    char *p = malloc(cap);
    assert_non_null(p);
    len += (size_t)snprintf(p + len, cap - len, "{'customer_id':'u','email':'a@b.c','tags':[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(p + len, cap - len, "%s'T%zu'", i ? "," : "", i);
    snprintf(p + len, cap - len, "%s]}", extra);
    return p;
}

static void test_tags_limit(void **state)
{
    (void)state;
    char *p = tags_payload(250, "");
    payload_ok("customer.upsert", p);
    free(p);
    p = tags_payload(251, "");
    payload_bad("customer.upsert", p, "payload.tags");
    free(p);
    /* duplicates (any case) do not count */
    p = tags_payload(250, ",'t0','T249','t100'");
    payload_ok("customer.upsert", p);
    free(p);
    p = tags_payload(250, ",'t0','new'");
    payload_bad("customer.upsert", p, "payload.tags");
    free(p);
}

static void test_order_invalid(void **state)
{
    (void)state;
    const char *t = "order.upsert";
#define ORD "'order_id':'o','customer_id':'u','status':'open'"
    payload_bad(t, "{'customer_id':'u','status':'open'}", "payload.order_id");
    payload_bad(t, "{'order_id':'o','status':'open'}", "payload.customer_id");
    payload_bad(t, "{'order_id':'o','customer_id':'u'}", "payload.status");
    payload_bad(t, "{'order_id':'o','customer_id':'u','status':'paid'}", "payload.status");
    payload_bad(t, "{'order_id':'o','customer_id':'u','status':'OPEN'}", "payload.status");
    payload_bad(t, "{" ORD ",'company_id':'c'}", "payload.location_id");
    payload_bad(t, "{" ORD ",'company_id':'c','location_id':null}", "payload.location_id");
    payload_bad(t, "{" ORD ",'location_id':'l'}", "payload.company_id");
    payload_bad(t, "{" ORD ",'company_id':'','location_id':'l'}", "payload.company_id");
    payload_bad(t, "{" ORD ",'placed_at':'2026-11-22'}", "payload.placed_at");
    payload_bad(t, "{" ORD ",'placed_at':1764000000}", "payload.placed_at");
    const char *bad_totals[] = {"12.50.1", "", "1e3", "+3", ".5", "5.", "12,50", " 1",
                                "-", "--1", "0x10", "123456789012345678901", "1.12345678901",
                                "NaN"};
    char buf[256];
    for (size_t i = 0; i < sizeof bad_totals / sizeof *bad_totals; i++) {
        snprintf(buf, sizeof buf, "{" ORD ",'total':'%s'}", bad_totals[i]);
        payload_bad(t, buf, "payload.total");
    }
    payload_bad(t, "{" ORD ",'total':12.5}", "payload.total");
    payload_bad(t, "{" ORD ",'total':12}", "payload.total");
    const char *good_totals[] = {"12.50", "-3", "0", "007", "-0.5", "12345678901234567890",
                                 "1.1234567890"};
    for (size_t i = 0; i < sizeof good_totals / sizeof *good_totals; i++) {
        snprintf(buf, sizeof buf, "{" ORD ",'total':'%s'}", good_totals[i]);
        payload_ok(t, buf);
    }
    payload_bad(t, "{" ORD ",'currency':'eur'}", "payload.currency");
    payload_bad(t, "{" ORD ",'currency':'EURO'}", "payload.currency");
    payload_bad(t, "{" ORD ",'currency':'EU'}", "payload.currency");
    payload_bad(t, "{" ORD ",'currency':978}", "payload.currency");
    payload_ok(t, "{" ORD ",'company_id':null,'location_id':null,'currency':null,"
                  "'total':null,'placed_at':null}");
#undef ORD
}

static void test_template_invalid(void **state)
{
    (void)state;
    const char *t = "template.update";
    payload_bad(t, "{'text':'t','html':'h'}", "payload.subject");
    payload_bad(t, "{'subject':'s','html':'h'}", "payload.text");
    payload_bad(t, "{'subject':'s','text':'t'}", "payload.html");
    payload_bad(t, "{'subject':1,'text':'t','html':'h'}", "payload.subject");
    payload_bad(t, "{'subject':'s','text':'t','html':null}", "payload.html");
    /* Mustache is not parsed here */
    payload_ok(t, "{'subject':'{{#broken','text':'','html':'<p>{{x}}</p>'}");
}

static void test_privacy_invalid(void **state)
{
    (void)state;
    const char *m = "customer.merge";
    payload_bad(m, "{'merge_customer_id':'c-2'}", "payload.customer_id");
    payload_bad(m, "{'customer_id':'c-1'}", "payload.merge_customer_id");
    payload_bad(m, "{'customer_id':'c-1','merge_customer_id':'c-1'}", "payload.merge_customer_id");
    payload_bad(m, "{'customer_id':'','merge_customer_id':'c-2'}", "payload.customer_id");
    payload_bad(m, "{'customer_id':'c-1','merge_customer_id':7}", "payload.merge_customer_id");
    char *long_id = rep("x", 256);
    char *p = NULL;
    assert_true(asprintf(&p, "{'customer_id':'c-1','merge_customer_id':'%s'}", long_id) > 0);
    payload_bad(m, p, "payload.merge_customer_id");
    free(p);
    payload_ok(m, "{'customer_id':'c-1','merge_customer_id':'C-1'}");
    const char *subject_types[] = {"customer.data_request", "customer.redact"};
    for (int i = 0; i < 2; i++) {
        const char *t = subject_types[i];
        payload_bad(t, "{}", "payload.customer_id");
        payload_bad(t, "{'customer_id':null,'email':null}", "payload.customer_id");
        payload_bad(t, "{'customer_id':'c-1','email':'a@b.example'}", "payload.email");
        payload_bad(t, "{'email':'no-at-sign'}", "payload.email");
        payload_bad(t, "{'customer_id':'a\\u0001b'}", "payload.customer_id");
        assert_true(asprintf(&p, "{'customer_id':'%s'}", long_id) > 0);
        payload_bad(t, p, "payload.customer_id");
        free(p);
        payload_ok(t, "{'customer_id':'c-1'}");
        payload_ok(t, "{'email':'A@b.example'}");
    }
    free(long_id);
    payload_ok("shop.redact", "{}");
    payload_ok("shop.redact", "{'anything':1}");
    /* source_updated_at on every upsert */
    payload_bad("customer.upsert", "{'customer_id':'c','email':'a@b.example','source_updated_at':'x'}",
                "payload.source_updated_at");
    payload_bad("shop.upsert", "{'name':'n','source_updated_at':5}", "payload.source_updated_at");
    payload_bad("company.upsert", "{'company_id':'c','name':'n','source_updated_at':'2026-13-01T00:00:00Z'}",
                "payload.source_updated_at");
    payload_bad("order.upsert", "{'order_id':'o','customer_id':'c','status':'open','source_updated_at':''}",
                "payload.source_updated_at");
    payload_ok("order.upsert", "{'order_id':'o','customer_id':'c','status':'open','source_updated_at':null}");
}

static void test_privacy_typed(void **state)
{
    (void)state;
    struct b2bd_command cmd;
    decode_ok("customer.merge", TOPIC_SYNC, "{'customer_id':'c-1','merge_customer_id':'c-2'}", &cmd);
    assert_int_equal(cmd.type, CMD_CUSTOMER_MERGE);
    assert_string_equal(cmd.u.merge.customer_id, "c-1");
    assert_string_equal(cmd.u.merge.merge_customer_id, "c-2");
    decode_free(&cmd);
    decode_ok("customer.redact", TOPIC_SYNC, "{'email':'Ana@B.example'}", &cmd);
    assert_int_equal(cmd.type, CMD_CUSTOMER_REDACT);
    assert_null(cmd.u.subject.customer_id);
    assert_string_equal(cmd.u.subject.email, "Ana@B.example");
    decode_free(&cmd);
    decode_ok("customer.data_request", TOPIC_SYNC, "{'customer_id':'c-9'}", &cmd);
    assert_int_equal(cmd.type, CMD_CUSTOMER_DATA_REQUEST);
    assert_string_equal(cmd.u.subject.customer_id, "c-9");
    assert_null(cmd.u.subject.email);
    decode_free(&cmd);
    decode_ok("shop.redact", TOPIC_SYNC, "{}", &cmd);
    assert_int_equal(cmd.type, CMD_SHOP_REDACT);
    decode_free(&cmd);
    decode_ok("customer.upsert", TOPIC_SYNC,
              "{'customer_id':'c','email':'a@b.example','source_updated_at':'2026-12-01T10:00:00+01:00'}", &cmd);
    assert_string_equal(cmd.u.customer.source_updated_at, "2026-12-01T10:00:00+01:00");
    decode_free(&cmd);
    /* on another topic: WRONG_TOPIC */
    char *msg = envelope("shop.redact", "{}");
    check_msg(msg, strlen(msg), TOPIC_ASSIGN, DECODE_REJECTED, B2BD_WRONG_TOPIC, "type");
    free(msg);
}

/* ---- per type: typed results -------------------------------------------------------- */

static void test_assign_typed(void **state)
{
    (void)state;
    struct b2bd_command cmd;
    decode_ok("assign", TOPIC_ASSIGN,
              "{'company_id':'c-1','customer':{'id':'cust-9'},'locations':["
              "{'location_id':'loc-1','role':'ordering_only'},"
              "{'location_id':'loc-2','role':'location_admin'}],"
              "'migrate_orders_to':'loc-1','notify':true}", &cmd);
    assert_int_equal(cmd.type, CMD_ASSIGN);
    assert_string_equal(cmd.type_name, "assign");
    assert_string_equal(cmd.shop_id, "shop-1");
    assert_string_equal(cmd.command_id, UUID);
    const struct b2bd_assign *a = &cmd.u.assign;
    assert_string_equal(a->company_id, "c-1");
    assert_string_equal(a->customer_id, "cust-9");
    assert_null(a->email);
    assert_null(a->first_name);
    assert_int_equal(a->n_locations, 2);
    assert_string_equal(a->locations[0].location_id, "loc-1");
    assert_int_equal(a->locations[0].role, ROLE_ORDERING_ONLY);
    assert_string_equal(a->locations[1].location_id, "loc-2");
    assert_int_equal(a->locations[1].role, ROLE_LOCATION_ADMIN);
    assert_string_equal(a->migrate_orders_to, "loc-1");
    assert_true(a->notify);
    decode_free(&cmd);

    decode_ok("assign", TOPIC_ASSIGN,
              "{'company_id':'c-1','customer':{'email':'New@Example.com','first_name':'Ana',"
              "'last_name':'Lee','phone':'+33 6'},'locations':[],'notify':null}", &cmd);
    a = &cmd.u.assign;
    assert_null(a->customer_id);
    assert_string_equal(a->email, "New@Example.com");
    assert_string_equal(a->first_name, "Ana");
    assert_string_equal(a->last_name, "Lee");
    assert_string_equal(a->phone, "+33 6");
    assert_int_equal(a->n_locations, 0);
    assert_null(a->locations);
    assert_null(a->migrate_orders_to);
    assert_false(a->notify);
    decode_free(&cmd);

    decode_ok("assign", TOPIC_ASSIGN,
              "{'company_id':'c','customer':{'id':'u','email':'u@x.y'},'locations':[]}", &cmd);
    assert_string_equal(cmd.u.assign.customer_id, "u");
    assert_string_equal(cmd.u.assign.email, "u@x.y");
    decode_free(&cmd);
}

static void test_revoke_typed(void **state)
{
    (void)state;
    struct b2bd_command cmd;
    decode_ok("revoke", TOPIC_REVOKE, "{'company_id':'c-1','customer_id':'cust-9',"
                                      "'scope':'locations','location_ids':['loc-2','loc-3']}",
              &cmd);
    const struct b2bd_revoke *r = &cmd.u.revoke;
    assert_int_equal(cmd.type, CMD_REVOKE);
    assert_string_equal(r->company_id, "c-1");
    assert_string_equal(r->customer_id, "cust-9");
    assert_int_equal(r->scope, SCOPE_LOCATIONS);
    assert_int_equal(r->n_location_ids, 2);
    assert_string_equal(r->location_ids[0], "loc-2");
    assert_string_equal(r->location_ids[1], "loc-3");
    assert_false(r->remove_migrated_orders);
    decode_free(&cmd);

    decode_ok("revoke", TOPIC_REVOKE, "{'company_id':'c','customer_id':'u','scope':'company',"
                                      "'location_ids':['x'],'remove_migrated_orders':true}",
              &cmd);
    r = &cmd.u.revoke;
    assert_int_equal(r->scope, SCOPE_COMPANY);
    assert_int_equal(r->n_location_ids, 0);
    assert_null(r->location_ids);
    assert_true(r->remove_migrated_orders);
    decode_free(&cmd);

    decode_ok("revoke", TOPIC_REVOKE, "{'company_id':'c','customer_id':'u',"
                                      "'scope':'all_locations'}", &cmd);
    assert_int_equal(cmd.u.revoke.scope, SCOPE_ALL_LOCATIONS);
    decode_free(&cmd);
}

static void test_migrate_typed(void **state)
{
    (void)state;
    struct b2bd_command cmd;
    decode_ok("migrate", TOPIC_MIGRATE,
              "{'company_id':'c-1','location_id':'loc-1','customer_id':'cust-9'}", &cmd);
    assert_int_equal(cmd.type, CMD_MIGRATE);
    assert_string_equal(cmd.u.migrate.company_id, "c-1");
    assert_string_equal(cmd.u.migrate.location_id, "loc-1");
    assert_string_equal(cmd.u.migrate.customer_id, "cust-9");
    assert_null(cmd.issued_at);
    assert_null(cmd.actor);
    assert_null(cmd.import_id);
    decode_free(&cmd);
}

static void test_notify_typed(void **state)
{
    (void)state;
    struct b2bd_command cmd;
    decode_ok("notify", TOPIC_NOTIFY,
              "{'company_id':'c-1','location_id':'loc-1','customer_ids':['cust-9','cust-10'],"
              "'recipient':'customer','staff_email':null,'preview':false,'resend_of':null}",
              &cmd);
    const struct b2bd_notify *n = &cmd.u.notify;
    assert_int_equal(cmd.type, CMD_NOTIFY);
    assert_string_equal(n->company_id, "c-1");
    assert_string_equal(n->location_id, "loc-1");
    assert_int_equal(n->n_customer_ids, 2);
    assert_string_equal(n->customer_ids[0], "cust-9");
    assert_string_equal(n->customer_ids[1], "cust-10");
    assert_int_equal(n->recipient, RECIPIENT_CUSTOMER);
    assert_null(n->staff_email);
    assert_false(n->preview);
    assert_null(n->resend_of);
    decode_free(&cmd);

    decode_ok("notify", TOPIC_NOTIFY,
              "{'company_id':'c','customer_ids':['u'],'recipient':'staff',"
              "'staff_email':'boss@shop.example','preview':true}", &cmd);
    n = &cmd.u.notify;
    assert_null(n->location_id);
    assert_int_equal(n->recipient, RECIPIENT_STAFF);
    assert_string_equal(n->staff_email, "boss@shop.example");
    assert_true(n->preview);
    decode_free(&cmd);

    decode_ok("notify", TOPIC_NOTIFY,
              "{'company_id':'c','resend_of':'6F1C2E1A-7C1D-4B0E-9A57-0C2B9F7E4D11',"
              "'customer_ids':['ignored']}", &cmd);
    n = &cmd.u.notify;
    assert_string_equal(n->resend_of, "6F1C2E1A-7C1D-4B0E-9A57-0C2B9F7E4D11");
    assert_int_equal(n->n_customer_ids, 0);
    assert_int_equal(n->recipient, RECIPIENT_CUSTOMER);
    decode_free(&cmd);
}

static void test_sync_typed(void **state)
{
    (void)state;
    struct b2bd_command cmd;
    decode_ok("shop.upsert", TOPIC_SYNC,
              "{'name':'Shop','account_url':'https://shop.example/account',"
              "'from_email':'noreply@shop.example','staff_email':'staff@shop.example',"
              "'b2b_only':true}", &cmd);
    assert_int_equal(cmd.type, CMD_SHOP_UPSERT);
    assert_string_equal(cmd.u.shop.name, "Shop");
    assert_string_equal(cmd.u.shop.account_url, "https://shop.example/account");
    assert_string_equal(cmd.u.shop.from_email, "noreply@shop.example");
    assert_string_equal(cmd.u.shop.staff_email, "staff@shop.example");
    assert_true(cmd.u.shop.b2b_only);
    decode_free(&cmd);

    decode_ok("shop.upsert", TOPIC_SYNC, "{'name':'S'}", &cmd);
    assert_null(cmd.u.shop.account_url);
    assert_null(cmd.u.shop.from_email);
    assert_false(cmd.u.shop.b2b_only);
    decode_free(&cmd);

    decode_ok("company.upsert", TOPIC_SYNC,
              "{'company_id':'c-1','name':'Acme','locations':[{'location_id':'loc-1',"
              "'name':'Paris'},{'location_id':'loc-2'}]}", &cmd);
    const struct b2bd_company_upsert *c = &cmd.u.company;
    assert_int_equal(cmd.type, CMD_COMPANY_UPSERT);
    assert_string_equal(c->company_id, "c-1");
    assert_string_equal(c->name, "Acme");
    assert_int_equal(c->n_locations, 2);
    assert_string_equal(c->locations[0].location_id, "loc-1");
    assert_string_equal(c->locations[0].name, "Paris");
    assert_string_equal(c->locations[1].location_id, "loc-2");
    assert_null(c->locations[1].name);
    decode_free(&cmd);

    decode_ok("company.upsert", TOPIC_SYNC, "{'company_id':'c','name':'A'}", &cmd);
    assert_int_equal(cmd.u.company.n_locations, 0);
    assert_null(cmd.u.company.locations);
    decode_free(&cmd);

    decode_ok("customer.upsert", TOPIC_SYNC,
              "{'customer_id':'cust-9','email':'a@b.example','first_name':'A','last_name':'B',"
              "'phone':'+1','tags':['VIP','vip','Wholesale','\\u00c9t\\u00e9','\\u00e9T\\u00c9',"
              "'wholesale','x']}", &cmd);
    const struct b2bd_customer_upsert *cu = &cmd.u.customer;
    assert_int_equal(cmd.type, CMD_CUSTOMER_UPSERT);
    assert_string_equal(cu->customer_id, "cust-9");
    assert_string_equal(cu->email, "a@b.example");
    assert_string_equal(cu->first_name, "A");
    assert_string_equal(cu->last_name, "B");
    assert_string_equal(cu->phone, "+1");
    assert_int_equal(cu->n_tags, 4);
    assert_string_equal(cu->tags[0], "VIP");
    assert_string_equal(cu->tags[1], "Wholesale");
    assert_string_equal(cu->tags[2], "\xc3\x89t\xc3\xa9");
    assert_string_equal(cu->tags[3], "x");
    decode_free(&cmd);

    decode_ok("customer.upsert", TOPIC_SYNC, "{'customer_id':'u','email':'a@b.c','tags':[]}",
              &cmd);
    assert_int_equal(cmd.u.customer.n_tags, 0);
    assert_null(cmd.u.customer.first_name);
    decode_free(&cmd);

    decode_ok("order.upsert", TOPIC_SYNC,
              "{'order_id':'o-1','customer_id':'cust-9','status':'cancelled','company_id':'c-1',"
              "'location_id':'loc-1','placed_at':'2026-11-22T10:00:00Z','total':'12.50',"
              "'currency':'EUR'}", &cmd);
    const struct b2bd_order_upsert *o = &cmd.u.order;
    assert_int_equal(cmd.type, CMD_ORDER_UPSERT);
    assert_string_equal(o->order_id, "o-1");
    assert_string_equal(o->customer_id, "cust-9");
    assert_int_equal(o->status, ORDER_CANCELLED);
    assert_string_equal(o->company_id, "c-1");
    assert_string_equal(o->location_id, "loc-1");
    assert_string_equal(o->placed_at, "2026-11-22T10:00:00Z");
    assert_string_equal(o->total, "12.50");
    assert_string_equal(o->currency, "EUR");
    decode_free(&cmd);

    const char *st[] = {"open", "closed", "cancelled", "deleted"};
    for (int i = 0; i < 4; i++) {
        char p[128];
        snprintf(p, sizeof p, "{'order_id':'o','customer_id':'u','status':'%s',"
                              "'company_id':null,'location_id':null}", st[i]);
        decode_ok("order.upsert", TOPIC_SYNC, p, &cmd);
        assert_int_equal(cmd.u.order.status, i);
        assert_null(cmd.u.order.company_id);
        assert_null(cmd.u.order.location_id);
        assert_null(cmd.u.order.total);
        decode_free(&cmd);
    }

    decode_ok("template.update", TOPIC_SYNC,
              "{'subject':'Hello {{customer.first_name}}','text':'T','html':'<b>H</b>'}", &cmd);
    assert_int_equal(cmd.type, CMD_TEMPLATE_UPDATE);
    assert_string_equal(cmd.u.tmpl.subject, "Hello {{customer.first_name}}");
    assert_string_equal(cmd.u.tmpl.text, "T");
    assert_string_equal(cmd.u.tmpl.html, "<b>H</b>");
    decode_free(&cmd);
}

static void test_envelope_typed(void **state)
{
    (void)state;
    char *msg = dq("{'command_id':'" UUID "','type':'migrate','shop_id':'shop-1',"
                   "'issued_at':'2026-11-22T10:00:00Z','actor':'staff:42',"
                   "'import_id':'import-2026-11-22-a','payload':{'company_id':'c',"
                   "'location_id':'l','customer_id':'u'}}");
    struct b2bd_command cmd;
    struct b2bd_err err;
    assert_int_equal(decode_raw(msg, strlen(msg), TOPIC_MIGRATE, &cmd, &err), DECODE_OK);
    assert_string_equal(cmd.issued_at, "2026-11-22T10:00:00Z");
    assert_string_equal(cmd.actor, "staff:42");
    assert_string_equal(cmd.import_id, "import-2026-11-22-a");
    assert_true(json_is_object(cmd.payload));
    assert_ptr_equal(cmd.payload, json_object_get(cmd.root, "payload"));
    unsigned char zero[32] = {0};
    assert_memory_not_equal(cmd.hash, zero, 32);
    decode_free(&cmd);
    free(msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_names_and_classes),
        cmocka_unit_test(test_err_set_and_clear),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_validators),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_not_json),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_not_a_command),
        cmocka_unit_test(test_command_id_canonical),
        cmocka_unit_test(test_envelope_rules),
        cmocka_unit_test(test_dry_run),
        cmocka_unit_test(test_envelope_fields_on_rejection),
        cmocka_unit_test(test_free_zeroed),
        cmocka_unit_test(test_nul_in_strings),
        cmocka_unit_test(test_id_lengths),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_assign_invalid),
        cmocka_unit_test(test_assign_duplicates_many),
        cmocka_unit_test(test_revoke_invalid),
        cmocka_unit_test(test_migrate_invalid),
        cmocka_unit_test(test_notify_invalid),
        cmocka_unit_test(test_shop_invalid),
        cmocka_unit_test(test_company_invalid),
        cmocka_unit_test(test_customer_invalid),
        cmocka_unit_test(test_tags_limit),
        cmocka_unit_test(test_order_invalid),
        cmocka_unit_test(test_template_invalid),
        cmocka_unit_test(test_privacy_invalid),
        cmocka_unit_test(test_privacy_typed),
        cmocka_unit_test(test_assign_typed),
        cmocka_unit_test(test_revoke_typed),
        cmocka_unit_test(test_migrate_typed),
        cmocka_unit_test(test_notify_typed),
        cmocka_unit_test(test_sync_typed),
        cmocka_unit_test(test_envelope_typed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
