/* Unit tests of trace: reading a traceparent as W3C Trace Context says, and how b2bd
 * continues a command's trace (its own parent id, the trace id, flags and tracestate as
 * they came). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "b2bd/trace.h"

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define PID "00f067aa0ba902b7"

static bool valid(const char *tp)
{
    return trace_parse(tp, strlen(tp), NULL, NULL);
}

static void test_valid_traceparents(void **state)
{
    (void)state;
    char id[33], flags[3];
    assert_true(trace_parse("00-" TID "-" PID "-01", 55, id, flags));
    assert_string_equal(id, TID);
    assert_string_equal(flags, "01");
    assert_true(valid("00-" TID "-" PID "-00"));
    assert_true(valid("00-" TID "-" PID "-ff")); /* flags: any byte */
    /* a later version is read by its first four fields, and may go on after a '-' */
    assert_true(valid("01-" TID "-" PID "-01"));
    assert_true(valid("cc-" TID "-" PID "-01-what-comes-next"));
}

static void test_invalid_traceparents(void **state)
{
    (void)state;
    const char *bad[] = {
        "ff-" TID "-" PID "-01",                              /* version ff */
        "00-00000000000000000000000000000000-" PID "-01",     /* trace id all zeros */
        "00-" TID "-0000000000000000-01",                     /* parent id all zeros */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-" PID "-01",     /* upper case */
        "00-" TID "-" PID "-01-",                             /* version 00: four fields */
        "00-" TID "-" PID "-0",                               /* short flags */
        "00-" TID "0-" PID "-01",                             /* 33 digits */
        "00_" TID "-" PID "-01",                              /* separator */
        "01-" TID "-" PID "-01x",                             /* later version: '-' after */
        "0g-" TID "-" PID "-01",                              /* not hex */
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (valid(bad[i]))
            fail_msg("valid: %s", bad[i]);
    }
    assert_false(trace_parse(NULL, 0, NULL, NULL));
    /* a NUL inside is no hex digit */
    assert_false(trace_parse("00-" TID "-" PID "\0001", 55, NULL, NULL));
}

static json_t *headers_of(const struct trace_out *t)
{
    return json_loads(t->headers, 0, NULL);
}

static void test_begin_continues_the_trace(void **state)
{
    (void)state;
    const char *tp = "00-" TID "-" PID "-01";
    const char *ts = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
    struct trace_in in = {.parent = tp, .parent_len = strlen(tp), .state = ts, .state_len = strlen(ts)};
    struct trace_out a, b;
    trace_begin(&in, &a);
    trace_begin(&in, &b);
    assert_string_equal(a.trace_id, TID);
    assert_int_equal(strlen(a.traceparent), 55);
    assert_memory_equal(a.traceparent, "00-" TID "-", 36);
    assert_string_equal(a.traceparent + 52, "-01");
    assert_true(valid(a.traceparent));
    /* a parent id of b2bd's own: not the caller's, new for each delivery */
    assert_memory_not_equal(a.traceparent + 36, PID, 16);
    assert_memory_not_equal(a.traceparent + 36, b.traceparent + 36, 16);
    json_t *h = headers_of(&a);
    assert_non_null(h);
    assert_int_equal(json_array_size(h), 2);
    assert_string_equal(json_string_value(json_array_get(json_array_get(h, 0), 0)), "traceparent");
    assert_string_equal(json_string_value(json_array_get(json_array_get(h, 0), 1)), a.traceparent);
    assert_string_equal(json_string_value(json_array_get(json_array_get(h, 1), 0)), "tracestate");
    assert_string_equal(json_string_value(json_array_get(json_array_get(h, 1), 1)), ts);
    json_decref(h);
    trace_out_free(&a);
    trace_out_free(&b);

    /* a later version: written as 00, with the trace id and flags */
    const char *v1 = "01-" TID "-" PID "-00-more";
    in = (struct trace_in){.parent = v1, .parent_len = strlen(v1)};
    trace_begin(&in, &a);
    assert_memory_equal(a.traceparent, "00-" TID "-", 36);
    assert_string_equal(a.traceparent + 52, "-00");
    h = headers_of(&a);
    assert_int_equal(json_array_size(h), 1); /* no tracestate came */
    json_decref(h);
    trace_out_free(&a);
}

static void test_no_trace(void **state)
{
    (void)state;
    struct trace_out t;
    struct trace_in none = {0};
    trace_begin(&none, &t);
    assert_string_equal(t.trace_id, "");
    assert_null(t.headers);
    trace_out_free(&t);
    /* an invalid traceparent is ignored with its tracestate */
    const char *bad = "ff-" TID "-" PID "-01";
    struct trace_in in = {.parent = bad, .parent_len = strlen(bad), .state = "a=b", .state_len = 3};
    trace_begin(&in, &t);
    assert_null(t.headers);
    /* so is one given twice */
    const char *tp = "00-" TID "-" PID "-01";
    in = (struct trace_in){.parent = tp, .parent_len = strlen(tp), .repeated = true};
    trace_begin(&in, &t);
    assert_null(t.headers);
    /* a tracestate that is not printable ASCII is dropped, the trace kept */
    in = (struct trace_in){.parent = tp, .parent_len = strlen(tp), .state = "a=\n", .state_len = 3};
    trace_begin(&in, &t);
    assert_non_null(t.headers);
    assert_null(strstr(t.headers, "tracestate"));
    trace_out_free(&t);
}

static void test_equal_and_new(void **state)
{
    (void)state;
    const char *tp = "00-" TID "-" PID "-01";
    struct trace_in a = {.parent = tp, .parent_len = 55}, b = a, none = {0};
    assert_true(trace_in_equal(&a, &b));
    assert_false(trace_in_equal(&a, &none));
    b.state = "x=y";
    b.state_len = 3;
    assert_false(trace_in_equal(&a, &b));
    char n1[56], n2[56];
    trace_new(n1);
    trace_new(n2);
    assert_true(valid(n1));
    assert_string_equal(n1 + 52, "-01");
    assert_memory_not_equal(n1, n2, 55);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_traceparents),
        cmocka_unit_test(test_invalid_traceparents),
        cmocka_unit_test(test_begin_continues_the_trace),
        cmocka_unit_test(test_no_trace),
        cmocka_unit_test(test_equal_and_new),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
