/* The catalogue of hostile inputs, through decode_command: what each becomes (a dead
 * letter, a rejection with its field, or a command whose strings are kept verbatim).
 * The same inputs go through Kafka in tests/integration/test_hostile.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "b2bd/decode.h"

#define MIB (1024 * 1024)
#define UUID "6f1c2e1a-7c1d-4b0e-9a57-0c2b9f7e4d11"

struct outcome {
    enum decode_outcome o;
    struct b2bd_err err;
    struct b2bd_command cmd;
};

static void run(struct outcome *r, const char *msg, size_t len, size_t max, enum b2bd_topic t)
{
    r->o = decode_command(msg, len, max, t, &r->cmd, &r->err);
}

/* printf-built message (heap). */
static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *s = NULL;
    assert_true(vasprintf(&s, f, ap) >= 0);
    va_end(ap);
    return s;
}

static char *rep(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

#define ENV(type) "{\"command_id\":\"" UUID "\",\"type\":\"" type "\",\"shop_id\":\"shop-1\",\"payload\":"

static void expect(const char *msg, size_t len, enum b2bd_topic t, enum decode_outcome o,
                   enum b2bd_code code, const char *field)
{
    struct outcome r;
    run(&r, msg, len, MIB, t);
    if (r.o != o || r.err.code != code || (field && strcmp(r.err.field, field) != 0)) {
        print_error("message %.200s\n want %d %s %s\n got  %d %s %s: %s\n", msg, o,
                    b2bd_code_name(code), field ? field : "", r.o, b2bd_code_name(r.err.code),
                    r.err.field, r.err.msg);
        decode_free(&r.cmd);
        fail();
    }
    decode_free(&r.cmd);
}

#define EXPECT(msg, t, o, code, field) expect(msg, strlen(msg), t, o, code, field)

static void test_invalid_utf8_is_not_json(void **state)
{
    (void)state;
    EXPECT(ENV("assign") "{\"company_id\":\"c-\xff\",\"customer\":{\"id\":\"x\"},\"locations\":[]}}", TOPIC_ASSIGN,
           DECODE_DEAD_LETTER, B2BD_NOT_JSON, NULL);
    EXPECT(ENV("assign") "{\"company_id\":\"\xc0\xaf\",\"customer\":{\"id\":\"x\"},\"locations\":[]}}", TOPIC_ASSIGN,
           DECODE_DEAD_LETTER, B2BD_NOT_JSON, NULL);          /* overlong '/' */
    EXPECT(ENV("assign") "{\"company_id\":\"\xed\xa0\x80\",\"customer\":{\"id\":\"x\"},\"locations\":[]}}",
           TOPIC_ASSIGN, DECODE_DEAD_LETTER, B2BD_NOT_JSON, NULL); /* encoded surrogate */
    EXPECT(ENV("assign") "{\"company_id\":\"\\ud800\",\"customer\":{\"id\":\"x\"},\"locations\":[]}}", TOPIC_ASSIGN,
           DECODE_DEAD_LETTER, B2BD_NOT_JSON, NULL);          /* lone surrogate escape */
    EXPECT("\xef\xbb\xbf{\"command_id\":\"" UUID "\"}", TOPIC_ASSIGN, DECODE_DEAD_LETTER,
           B2BD_NOT_JSON, NULL);                              /* a BOM is not JSON */
}

static void test_nul_bytes(void **state)
{
    (void)state;
    static const char raw[] = ENV("assign") "{\"company_id\":\"c\0-1\",\"customer\":{\"id\":\"x\"},\"locations\":[]}}";
    expect(raw, sizeof raw - 1, TOPIC_ASSIGN, DECODE_DEAD_LETTER, B2BD_NOT_JSON, NULL);
    static const char lead[] = "\0{}";
    expect(lead, sizeof lead - 1, TOPIC_ASSIGN, DECODE_DEAD_LETTER, B2BD_NOT_JSON, NULL);
    EXPECT(ENV("assign") "{\"company_id\":\"c\\u0000-1\",\"customer\":{\"id\":\"x\"},\"locations\":[]}}",
           TOPIC_ASSIGN, DECODE_REJECTED, B2BD_INVALID, "payload.company_id");
    EXPECT(ENV("customer.upsert") "{\"customer_id\":\"x\",\"email\":\"a@b.example\","
           "\"first_name\":\"A\\u0000nn\"}}", TOPIC_SYNC, DECODE_REJECTED, B2BD_INVALID,
           "payload.first_name");
    EXPECT(ENV("customer.upsert") "{\"customer_id\":\"x\",\"email\":\"a@b.example\","
           "\"ignored\":[\"\\u0000\"]}}", TOPIC_SYNC, DECODE_REJECTED, B2BD_INVALID, NULL);
    EXPECT(ENV("customer.upsert") "{\"customer_id\":\"x\",\"email\":\"a@b.example\","
           "\"k\\u0000\":1}}", TOPIC_SYNC, DECODE_DEAD_LETTER, B2BD_NOT_JSON, NULL);
}

static void test_ten_megabytes(void **state)
{
    (void)state;
    char *text = rep('t', 10 * 1000 * 1000);
    char *msg = fmt(ENV("template.update") "{\"subject\":\"S\",\"text\":\"%s\",\"html\":\"H\"}}", text);
    size_t len = strlen(msg);
    struct outcome r;
    run(&r, msg, len, MIB, TOPIC_SYNC); /* the default limit */
    assert_int_equal(r.o, DECODE_DEAD_LETTER);
    assert_int_equal(r.err.code, B2BD_TOO_LARGE);
    decode_free(&r.cmd);
    run(&r, msg, len, len, TOPIC_SYNC); /* a limit that lets it through */
    assert_int_equal(r.o, DECODE_OK);
    assert_string_equal(r.cmd.u.tmpl.text, text);
    decode_free(&r.cmd);
    run(&r, msg, len, len - 1, TOPIC_SYNC);
    assert_int_equal(r.err.code, B2BD_TOO_LARGE);
    decode_free(&r.cmd);
    free(msg);
    free(text);
}

static void test_deep_nesting(void **state)
{
    (void)state;
    char *open = rep('[', 10000), *close = rep(']', 10000);
    char *msg = fmt(ENV("assign") "{\"company_id\":\"c\",\"customer\":{\"id\":\"x\"},\"locations\":[],\"x\":%s%s}}",
                    open, close);
    EXPECT(msg, TOPIC_ASSIGN, DECODE_DEAD_LETTER, B2BD_NOT_JSON, NULL);
    free(msg);
    msg = fmt("%s%s", open, close);
    EXPECT(msg, TOPIC_ASSIGN, DECODE_DEAD_LETTER, B2BD_NOT_JSON, NULL);
    free(msg);
    open[2000] = close[2000] = '\0'; /* within jansson's 2048 */
    msg = fmt(ENV("assign") "{\"company_id\":\"c\",\"customer\":{\"id\":\"x\"},\"locations\":[],\"x\":%s%s}}",
              open, close);
    EXPECT(msg, TOPIC_ASSIGN, DECODE_OK, B2BD_OK, NULL);
    free(msg);
    free(open);
    free(close);
}

static void test_numbers_where_strings_belong(void **state)
{
    (void)state;
    EXPECT(ENV("assign") "{\"company_id\":42,\"customer\":{\"id\":\"x\"},\"locations\":[]}}", TOPIC_ASSIGN,
           DECODE_REJECTED, B2BD_INVALID, "payload.company_id");
    EXPECT(ENV("assign") "{\"company_id\":\"c\",\"customer\":{\"id\":1e3},\"locations\":[]}}", TOPIC_ASSIGN,
           DECODE_REJECTED, B2BD_INVALID, "payload.customer.id");
    EXPECT(ENV("assign") "{\"company_id\":\"c\",\"customer\":{\"id\":\"x\"},"
           "\"locations\":[{\"location_id\":\"l\",\"role\":1}]}}", TOPIC_ASSIGN, DECODE_REJECTED,
           B2BD_INVALID, "payload.locations[0].role");
    EXPECT(ENV("assign") "{\"company_id\":\"c\",\"customer\":{\"id\":\"x\"},\"locations\":[],\"notify\":\"yes\"}}",
           TOPIC_ASSIGN, DECODE_REJECTED, B2BD_INVALID, "payload.notify");
    EXPECT(ENV("order.upsert") "{\"order_id\":\"o\",\"customer_id\":\"x\",\"status\":\"open\","
           "\"total\":12.5}}", TOPIC_SYNC, DECODE_REJECTED, B2BD_INVALID, "payload.total");
    EXPECT("{\"command_id\":\"" UUID "\",\"type\":\"assign\",\"shop_id\":7,\"payload\":{}}",
           TOPIC_ASSIGN, DECODE_REJECTED, B2BD_INVALID, "shop_id");
    EXPECT("{\"command_id\":12345}", TOPIC_ASSIGN, DECODE_DEAD_LETTER, B2BD_NOT_A_COMMAND, NULL);
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    EXPECT(ENV("assign") "{\"company_id\":\"c\",\"customer\":{\"id\":\"x\"},\"locations\":"
           "[{\"location_id\":\"l\",\"role\":\"ordering_only\",\"role\":\"location_admin\"}]}}",
           TOPIC_ASSIGN, DECODE_REJECTED, B2BD_INVALID, "payload.locations[0].role");
    EXPECT("{\"command_id\":\"" UUID "\",\"type\":\"assign\",\"shop_id\":\"a\",\"shop_id\":\"b\","
           "\"payload\":{\"company_id\":\"c\",\"customer\":{\"id\":\"x\"},\"locations\":[]}}",
           TOPIC_ASSIGN, DECODE_REJECTED, B2BD_INVALID, "shop_id");
    EXPECT("{\"command_id\":\"" UUID "\",\"command_id\":\"" UUID "\"}", TOPIC_ASSIGN,
           DECODE_REJECTED, B2BD_INVALID, "command_id");
}

static void test_id_lengths(void **state)
{
    (void)state;
    char *c255 = rep('c', 255), *c256 = rep('c', 256);
    char *msg = fmt(ENV("assign") "{\"company_id\":\"%s\",\"customer\":{\"id\":\"x\"},\"locations\":[]}}", c255);
    EXPECT(msg, TOPIC_ASSIGN, DECODE_OK, B2BD_OK, NULL);
    free(msg);
    msg = fmt(ENV("assign") "{\"company_id\":\"%s\",\"customer\":{\"id\":\"x\"},\"locations\":[]}}", c256);
    EXPECT(msg, TOPIC_ASSIGN, DECODE_REJECTED, B2BD_INVALID, "payload.company_id");
    free(msg);
    /* 255 code points of two bytes each: within the limit; 256: over */
    char wide[256 * 2 + 1];
    for (int i = 0; i < 256; i++)
        memcpy(wide + 2 * i, "\xc3\xa9", 2);
    wide[255 * 2] = '\0';
    msg = fmt(ENV("migrate") "{\"company_id\":\"c\",\"location_id\":\"%s\",\"customer_id\":\"x\"}}", wide);
    EXPECT(msg, TOPIC_MIGRATE, DECODE_OK, B2BD_OK, NULL);
    free(msg);
    wide[255 * 2] = '\xc3';
    wide[256 * 2] = '\0';
    msg = fmt(ENV("migrate") "{\"company_id\":\"c\",\"location_id\":\"%s\",\"customer_id\":\"x\"}}", wide);
    EXPECT(msg, TOPIC_MIGRATE, DECODE_REJECTED, B2BD_INVALID, "payload.location_id");
    free(msg);
    free(c255);
    free(c256);
}

static void test_sql_html_and_crlf_in_names_are_kept_verbatim(void **state)
{
    (void)state;
    const char *msg = ENV("customer.upsert") "{\"customer_id\":\"x\",\"email\":\"a@b.example\","
        "\"first_name\":\"Robert'); DROP TABLE customers;--\","
        "\"last_name\":\"<script>alert('x')</script>\\r\\nBcc: evil@example.com\","
        "\"phone\":\"\\u001b[31m\\u0085\"}}";
    struct outcome r;
    run(&r, msg, strlen(msg), MIB, TOPIC_SYNC);
    assert_int_equal(r.o, DECODE_OK);
    assert_string_equal(r.cmd.u.customer.first_name, "Robert'); DROP TABLE customers;--");
    assert_string_equal(r.cmd.u.customer.last_name,
                        "<script>alert('x')</script>\r\nBcc: evil@example.com");
    assert_string_equal(r.cmd.u.customer.phone, "\x1b[31m\xc2\x85");
    decode_free(&r.cmd);
    /* ids may not hold control characters: they end up in Kafka keys and logs */
    EXPECT(ENV("customer.upsert") "{\"customer_id\":\"x\\r\\ny\",\"email\":\"a@b.example\"}}",
           TOPIC_SYNC, DECODE_REJECTED, B2BD_INVALID, "payload.customer_id");
}

static void test_emails(void **state)
{
    (void)state;
    EXPECT(ENV("customer.upsert") "{\"customer_id\":\"x\",\"email\":\"a@b.example\\r\\nBcc: e@x.example\"}}",
           TOPIC_SYNC, DECODE_REJECTED, B2BD_INVALID, "payload.email");
    EXPECT(ENV("assign") "{\"company_id\":\"c\",\"customer\":{\"email\":\"a@b.example\\n\"},\"locations\":[]}}",
           TOPIC_ASSIGN, DECODE_REJECTED, B2BD_INVALID, "payload.customer.email");
    EXPECT(ENV("shop.upsert") "{\"name\":\"S\",\"from_email\":\"s@b.example\\rX\"}}", TOPIC_SYNC,
           DECODE_REJECTED, B2BD_INVALID, "payload.from_email");
    EXPECT(ENV("customer.upsert") "{\"customer_id\":\"x\",\"email\":\"no-at.example\"}}",
           TOPIC_SYNC, DECODE_REJECTED, B2BD_INVALID, "payload.email");
    EXPECT(ENV("customer.upsert") "{\"customer_id\":\"x\",\"email\":\"a@b@c.example\"}}",
           TOPIC_SYNC, DECODE_REJECTED, B2BD_INVALID, "payload.email");
    EXPECT(ENV("customer.upsert") "{\"customer_id\":\"x\",\"email\":\"a\\u00a0b@c.example\"}}",
           TOPIC_SYNC, DECODE_REJECTED, B2BD_INVALID, "payload.email"); /* a no-break space */
    EXPECT(ENV("customer.upsert") "{\"customer_id\":\"x\",\"email\":\"anna@b\\u00fccher.example\"}}",
           TOPIC_SYNC, DECODE_OK, B2BD_OK, NULL);                        /* a unicode domain */
    EXPECT(ENV("customer.upsert") "{\"customer_id\":\"x\",\"email\":\"\\u00e5sa@xn--bcher-kva.example\"}}",
           TOPIC_SYNC, DECODE_OK, B2BD_OK, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_utf8_is_not_json),
        cmocka_unit_test(test_nul_bytes),
        cmocka_unit_test(test_ten_megabytes),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_numbers_where_strings_belong),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_id_lengths),
        cmocka_unit_test(test_sql_html_and_crlf_in_names_are_kept_verbatim),
        cmocka_unit_test(test_emails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
