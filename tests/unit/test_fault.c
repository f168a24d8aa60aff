/* Unit tests of fault: which SQLSTATEs are the surroundings' (retried), a race (retried,
 * then CONFLICT) and a command's (rejected), a table over SQLSTATEs; and the rejection's
 * words, which quote no database internals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "b2bd/fault.h"

/* Every SQLSTATE the README names, and neighbours that must not be caught with them:
 * its class on a live connection. */
static const struct {
    const char *state;
    enum fault_class want;
} CLASSES[] = {
    /* the surroundings': retried, never rejected */
    {"", FAULT_SURROUNDINGS},      /* no answer from the server */
    {"08000", FAULT_SURROUNDINGS}, {"08003", FAULT_SURROUNDINGS}, {"08006", FAULT_SURROUNDINGS},
    {"08P01", FAULT_SURROUNDINGS}, {"40001", FAULT_SURROUNDINGS}, {"40P01", FAULT_SURROUNDINGS},
    {"40003", FAULT_SURROUNDINGS}, {"57P01", FAULT_SURROUNDINGS}, {"57P02", FAULT_SURROUNDINGS},
    {"57P03", FAULT_SURROUNDINGS}, {"57P04", FAULT_SURROUNDINGS}, {"53000", FAULT_SURROUNDINGS},
    {"53100", FAULT_SURROUNDINGS}, {"53200", FAULT_SURROUNDINGS}, {"53300", FAULT_SURROUNDINGS},
    {"53400", FAULT_SURROUNDINGS}, {"58000", FAULT_SURROUNDINGS}, {"58030", FAULT_SURROUNDINGS},
    {"58P01", FAULT_SURROUNDINGS}, {"55P03", FAULT_SURROUNDINGS},
    /* a unique-key race: retried in the savepoint, then CONFLICT */
    {"23505", FAULT_RACE},
    /* the command's: tried once more, then rejected */
    {"22003", FAULT_COMMAND}, {"22001", FAULT_COMMAND}, {"22008", FAULT_COMMAND},
    {"22P02", FAULT_COMMAND}, {"23514", FAULT_COMMAND}, {"23503", FAULT_COMMAND},
    {"23502", FAULT_COMMAND}, {"23P01", FAULT_COMMAND}, {"42703", FAULT_COMMAND},
    {"42P01", FAULT_COMMAND}, {"54000", FAULT_COMMAND}, {"54001", FAULT_COMMAND},
    {"XX000", FAULT_COMMAND}, {"XX001", FAULT_COMMAND}, {"P0001", FAULT_COMMAND},
    {"P0004", FAULT_COMMAND}, {"0A000", FAULT_COMMAND}, {"57014", FAULT_COMMAND},
    {"57000", FAULT_COMMAND}, {"25P02", FAULT_COMMAND}, {"40002", FAULT_COMMAND},
    {"40000", FAULT_COMMAND}, {"55000", FAULT_COMMAND}, {"55006", FAULT_COMMAND},
    {"HV000", FAULT_COMMAND}, {"B2B01", FAULT_COMMAND}, {"B2B14", FAULT_COMMAND},
    {"5", FAULT_COMMAND},         {"0", FAULT_COMMAND},
};

static void test_classes(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof CLASSES / sizeof CLASSES[0]; i++) {
        enum fault_class got = fault_classify(CLASSES[i].state, true);
        if (got != CLASSES[i].want)
            fail_msg("%s: class %d, want %d", CLASSES[i].state, (int)got, (int)CLASSES[i].want);
    }
    assert_int_equal(fault_classify(NULL, true), FAULT_SURROUNDINGS);
}

/* A lost connection is the surroundings', whatever the last SQLSTATE said. */
static void test_disconnected_is_the_surroundings(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof CLASSES / sizeof CLASSES[0]; i++)
        assert_int_equal(fault_classify(CLASSES[i].state, false), FAULT_SURROUNDINGS);
    assert_int_equal(fault_classify(NULL, false), FAULT_SURROUNDINGS);
}

/* What a failure that is not the surroundings' becomes: a race CONFLICT, a value
 * (class 22) INVALID, everything else UNPROCESSABLE. */
static void test_rejection_follows_the_class(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof CLASSES / sizeof CLASSES[0]; i++) {
        const char *s = CLASSES[i].state;
        if (CLASSES[i].want == FAULT_SURROUNDINGS)
            continue;
        struct b2bd_err why;
        enum b2bd_code want = CLASSES[i].want == FAULT_RACE ? B2BD_CONFLICT
                              : strncmp(s, "22", 2) == 0    ? B2BD_INVALID
                                                            : B2BD_UNPROCESSABLE;
        if (fault_rejection(s, &why) != want)
            fail_msg("%s: rejected %s, want %s", s, b2bd_code_name(why.code),
                     b2bd_code_name(want));
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
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_disconnected_is_the_surroundings),
        cmocka_unit_test(test_rejection_follows_the_class),
        cmocka_unit_test(test_rejection_codes),
        cmocka_unit_test(test_messages_say_what_kind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
