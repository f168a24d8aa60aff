/* Unit tests of fault: which SQLSTATEs are the surroundings' (retried) and which a
 * command's (rejected), and the rejection's words, which quote no database internals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "b2bd/fault.h"

static void test_surroundings_are_transient(void **state)
{
    (void)state;
    const char *transient[] = {"",      "08000", "08003", "08006", "40001", "40P01", "40003",
                               "57P01", "57P02", "57P03", "53100", "53200", "53300", "58030",
                               "55P03"};
    for (size_t i = 0; i < sizeof transient / sizeof transient[0]; i++) {
        if (!fault_transient(transient[i]))
            fail_msg("%s should be the surroundings'", transient[i]);
    }
    assert_true(fault_transient(NULL));
}

static void test_everything_else_is_the_commands(void **state)
{
    (void)state;
    const char *own[] = {"22003", "22001", "22008", "22P02", "23505", "23514", "23503", "42703",
                         "42P01", "54000", "54001", "XX000", "XX001", "P0001", "P0004", "0A000",
                         "57014", "25P02", "40002", "55000", "HV000"};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        if (fault_transient(own[i]))
            fail_msg("%s should be the command's", own[i]);
    }
}

/* The code of a state's rejection, and its message checked for database words. */
static enum b2bd_code rejection(const char *state)
{
    struct b2bd_err why;
    b2bd_err_clear(&why);
    strcpy(why.field, "stale");
    enum b2bd_code code = fault_rejection(state, &why);
    assert_int_equal(code, why.code);
    assert_true(b2bd_code_is_rejection(code));
    assert_string_equal(why.field, "");
    assert_true(strlen(why.msg) > 20);
    const char *banned[] = {"ERROR", "SQLSTATE", "sqlstate", "constraint", "index", "pkey",
                            "trigger", "SQL", state};
    for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++)
        if (banned[i][0] && strstr(why.msg, banned[i]))
            fail_msg("%s: message quotes \"%s\": %s", state, banned[i], why.msg);
    return code;
}

static void test_rejection_codes(void **state)
{
    (void)state;
    assert_int_equal(rejection("23505"), B2BD_CONFLICT);
    assert_int_equal(rejection("22003"), B2BD_INVALID);
    assert_int_equal(rejection("22008"), B2BD_INVALID);
    assert_int_equal(rejection("22P02"), B2BD_INVALID);
    assert_int_equal(rejection("22021"), B2BD_INVALID);
    assert_int_equal(rejection("23514"), B2BD_UNPROCESSABLE);
    assert_int_equal(rejection("23502"), B2BD_UNPROCESSABLE);
    assert_int_equal(rejection("42703"), B2BD_UNPROCESSABLE);
    assert_int_equal(rejection("54000"), B2BD_UNPROCESSABLE);
    assert_int_equal(rejection("XX000"), B2BD_UNPROCESSABLE);
    assert_int_equal(rejection("P0001"), B2BD_UNPROCESSABLE);
    assert_int_equal(rejection("ZZZZZ"), B2BD_UNPROCESSABLE);
    assert_int_equal(rejection(""), B2BD_UNPROCESSABLE);
}

static void test_messages_say_what_kind(void **state)
{
    (void)state;
    struct b2bd_err a, b;
    fault_rejection("54000", &a);
    fault_rejection("22003", &b);
    assert_non_null(strstr(a.msg, "limit"));
    assert_non_null(strstr(b.msg, "number"));
    assert_string_not_equal(a.msg, b.msg);
    fault_rejection(NULL, &a);
    assert_int_equal(a.code, B2BD_UNPROCESSABLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_surroundings_are_transient),
        cmocka_unit_test(test_everything_else_is_the_commands),
        cmocka_unit_test(test_rejection_codes),
        cmocka_unit_test(test_messages_say_what_kind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
