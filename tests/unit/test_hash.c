/* Unit tests of the idempotency hash: canonical, stable, and sensitive to type, shop and payload. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "b2bd/decode.h"

#define UUID "6f1c2e1a-7c1d-4b0e-9a57-0c2b9f7e4d11"

static void hex(const unsigned char h[32], char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* Decodes msg (valid) and returns its hash. */
static void hash_of(const char *msg, enum b2bd_topic topic, unsigned char out[32])
{
    struct b2bd_command cmd;
    struct b2bd_err err;
    enum decode_outcome o = decode_command(msg, strlen(msg), 1 << 20, topic, &cmd, &err);
    if (o != DECODE_OK)
        print_error("%s: %s %s\n", msg, err.field, err.msg);
    assert_int_equal(o, DECODE_OK);
    memcpy(out, cmd.hash, 32);
    decode_free(&cmd);
}

static void hash_hex(const char *msg, enum b2bd_topic topic, char out[65])
{
    unsigned char h[32];
    hash_of(msg, topic, h);
    hex(h, out);
}

/* Known values: printf '%s' '<canonical>' | sha256sum */
static void test_known_value(void **state)
{
    (void)state;
    char h[65];
    hash_hex("{\"command_id\":\"" UUID "\",\"type\":\"migrate\",\"shop_id\":\"shop-1\","
             "\"payload\":{\"location_id\":\"loc-1\",\"customer_id\":\"cust-9\","
             "\"company_id\":\"c-1\"}}", TOPIC_MIGRATE, h);
    /* {"payload":{"company_id":"c-1","customer_id":"cust-9","location_id":"loc-1"},
        "shop_id":"shop-1","type":"migrate"} */
    assert_string_equal(h, "36102c74810741d1daac30f880bcf7e8a50748e08a2261a6dabcb60a5158ec4e");

    /* Non-ASCII is written as \uXXXX (upper-case hex, surrogate pairs), '/' unescaped:
     * {"payload":{"b2b_only":true,"n":[1,2.5,null,"a/b"],"name":"Shop \u00E9 \uD83D\uDE00"},
        "shop_id":"shop-1","type":"shop.upsert"} */
    hash_hex("{\"type\":\"shop.upsert\",\"command_id\":\"" UUID "\",\"payload\":"
             "{\"name\":\"Shop \xc3\xa9 \xf0\x9f\x98\x80\",\"b2b_only\":true,"
             "\"n\":[1,2.5,null,\"a\\/b\"]},\"shop_id\":\"shop-1\"}", TOPIC_SYNC, h);
    assert_string_equal(h, "86e4a61444da152211f54cf46a5e316e71d68b61d4f392371d3edd74366919e3");
}

/* decode_hash() of a payload with nested objects, arrays, a negative real, null, false
 * and non-ASCII, against a fixed value computed outside b2bd from the canonical text
 * written out by hand (keys sorted at every level, no spaces, \uXXXX upper-case):
 *   printf '%s' '{"payload":{"a":{"x":false,"y":null},"m":-0.25,"z":[{"a":"\u00FC","b":1}]},"shop_id":"s:1","type":"notify"}' | sha256sum */
static void test_nested_payload_known_value(void **state)
{
    (void)state;
    json_t *payload = json_loads("{\"z\":[{\"b\":1,\"a\":\"\\u00fc\"}],\"a\":{\"y\":null,"
                                 "\"x\":false},\"m\":-0.25}", 0, NULL);
    assert_non_null(payload);
    unsigned char got[32];
    char h[65];
    assert_int_equal(decode_hash("notify", "s:1", payload, got), 0);
    hex(got, h);
    assert_string_equal(h, "f985b5082dd4c484f010eb26fc2427bfec4d6f0aeb171ab0a16455c51baaf6de");
    json_decref(payload);
}

static void test_key_order_and_whitespace(void **state)
{
    (void)state;
    unsigned char a[32], b[32], c[32];
    hash_of("{\"command_id\":\"" UUID "\",\"type\":\"assign\",\"shop_id\":\"shop-1\","
            "\"payload\":{\"company_id\":\"c-1\",\"customer\":{\"id\":\"cust-9\","
            "\"email\":\"a@b.example\"},\"locations\":[{\"location_id\":\"loc-1\","
            "\"role\":\"ordering_only\"}],\"notify\":true}}", TOPIC_ASSIGN, a);
    hash_of("  {\n \"payload\" : {\n  \"notify\" : true ,\"locations\" : [ {\"role\":"
            "\"ordering_only\" , \"location_id\":\"loc-1\"} ] ,\r\n\t\"customer\":{"
            "\"email\":\"a@b.example\",\"id\":\"cust-9\"},\"company_id\":\"c-1\"},"
            "\"shop_id\":\"shop-1\", \"type\" : \"assign\",\n\"command_id\":\"" UUID "\" }\n",
            TOPIC_ASSIGN, b);
    assert_memory_equal(a, b, 32);
    /* the same characters escaped or not */
    hash_of("{\"command_id\":\"" UUID "\",\"type\":\"assign\",\"shop_id\":\"shop-1\","
            "\"payload\":{\"company_id\":\"\\u0063-1\",\"customer\":{\"id\":\"cust-9\","
            "\"email\":\"a\\u0040b.example\"},\"locations\":[{\"location_id\":\"loc-1\","
            "\"role\":\"ordering_only\"}],\"notify\":true}}", TOPIC_ASSIGN, c);
    assert_memory_equal(a, c, 32);
    unsigned char d[32], e[32];
    hash_of("{\"command_id\":\"" UUID "\",\"type\":\"shop.upsert\",\"shop_id\":\"s\","
            "\"payload\":{\"name\":\"Caf\xc3\xa9\"}}", TOPIC_SYNC, d);
    hash_of("{\"command_id\":\"" UUID "\",\"type\":\"shop.upsert\",\"shop_id\":\"s\","
            "\"payload\":{\"name\":\"Caf\\u00e9\"}}", TOPIC_SYNC, e);
    assert_memory_equal(d, e, 32);
}

static void test_envelope_fields_ignored(void **state)
{
    (void)state;
    unsigned char a[32], b[32];
    hash_of("{\"command_id\":\"" UUID "\",\"type\":\"migrate\",\"shop_id\":\"s\","
            "\"payload\":{\"company_id\":\"c\",\"location_id\":\"l\",\"customer_id\":\"u\"}}",
            TOPIC_MIGRATE, a);
    hash_of("{\"command_id\":\"00000000-0000-4000-8000-000000000000\",\"type\":\"migrate\","
            "\"shop_id\":\"s\",\"issued_at\":\"2026-11-22T10:00:00Z\",\"actor\":\"staff:42\","
            "\"import_id\":\"imp-1\",\"extra\":[1,2],"
            "\"payload\":{\"company_id\":\"c\",\"location_id\":\"l\",\"customer_id\":\"u\"}}",
            TOPIC_MIGRATE, b);
    assert_memory_equal(a, b, 32);
}

static void test_differences(void **state)
{
    (void)state;
    unsigned char base[32], h[32];
    hash_of("{\"command_id\":\"" UUID "\",\"type\":\"migrate\",\"shop_id\":\"s\","
            "\"payload\":{\"company_id\":\"c\",\"location_id\":\"l\",\"customer_id\":\"u\"}}",
            TOPIC_MIGRATE, base);
    /* another shop */
    hash_of("{\"command_id\":\"" UUID "\",\"type\":\"migrate\",\"shop_id\":\"t\","
            "\"payload\":{\"company_id\":\"c\",\"location_id\":\"l\",\"customer_id\":\"u\"}}",
            TOPIC_MIGRATE, h);
    assert_memory_not_equal(base, h, 32);
    /* another value */
    hash_of("{\"command_id\":\"" UUID "\",\"type\":\"migrate\",\"shop_id\":\"s\","
            "\"payload\":{\"company_id\":\"c\",\"location_id\":\"l2\",\"customer_id\":\"u\"}}",
            TOPIC_MIGRATE, h);
    assert_memory_not_equal(base, h, 32);
    /* an extra (ignored) payload field still counts: the payload differs */
    hash_of("{\"command_id\":\"" UUID "\",\"type\":\"migrate\",\"shop_id\":\"s\","
            "\"payload\":{\"company_id\":\"c\",\"location_id\":\"l\",\"customer_id\":\"u\","
            "\"note\":null}}", TOPIC_MIGRATE, h);
    assert_memory_not_equal(base, h, 32);
    /* case matters in values */
    hash_of("{\"command_id\":\"" UUID "\",\"type\":\"migrate\",\"shop_id\":\"s\","
            "\"payload\":{\"company_id\":\"C\",\"location_id\":\"l\",\"customer_id\":\"u\"}}",
            TOPIC_MIGRATE, h);
    assert_memory_not_equal(base, h, 32);

    /* another type with the same shop and payload */
    json_t *p = json_loads("{\"name\":\"n\"}", 0, NULL);
    unsigned char x[32], y[32], z[32];
    assert_int_equal(decode_hash("shop.upsert", "s", p, x), 0);
    assert_int_equal(decode_hash("template.update", "s", p, y), 0);
    assert_int_equal(decode_hash("shop.upsert", "s", p, z), 0);
    assert_memory_not_equal(x, y, 32);
    assert_memory_equal(x, z, 32);
    /* integer and real are different JSON */
    json_t *i1 = json_loads("{\"v\":1}", 0, NULL), *r1 = json_loads("{\"v\":1.0}", 0, NULL);
    assert_int_equal(decode_hash("shop.upsert", "s", i1, x), 0);
    assert_int_equal(decode_hash("shop.upsert", "s", r1, y), 0);
    assert_memory_not_equal(x, y, 32);
    json_decref(i1);
    json_decref(r1);
    /* missing inputs */
    assert_int_not_equal(decode_hash(NULL, "s", p, x), 0);
    assert_int_not_equal(decode_hash("shop.upsert", NULL, p, x), 0);
    assert_int_not_equal(decode_hash("shop.upsert", "s", NULL, x), 0);
    json_decref(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_value),
        cmocka_unit_test(test_nested_payload_known_value),
        cmocka_unit_test(test_key_order_and_whitespace),
        cmocka_unit_test(test_envelope_fields_ignored),
        cmocka_unit_test(test_differences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
