/* Unit tests of util: cutting a UTF-8 value at a character boundary for quoting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "b2bd/util.h"

/* U+20000 (4 bytes), U+4E00 (3 bytes), U+00E9 (2 bytes) */
#define C4 "\xF0\xA0\x80\x80"
#define C3 "\xE4\xB8\x80"
#define C2 "\xC3\xA9"

static void test_short_value_is_whole(void **state)
{
    (void)state;
    assert_int_equal(util_utf8_prefix("abc", 80), 3);
    assert_int_equal(util_utf8_prefix("", 80), 0);
    assert_int_equal(util_utf8_prefix(C4 C3 C2, 9), 9);
}

static void test_cut_at_boundary(void **state)
{
    (void)state;
    assert_int_equal(util_utf8_prefix("abcdef", 4), 4);
    assert_int_equal(util_utf8_prefix(C4 C4, 4), 4);
    assert_int_equal(util_utf8_prefix(C3 C3 C3, 6), 6);
}

static void test_cut_inside_a_character_drops_it(void **state)
{
    (void)state;
    for (int max = 5; max <= 7; max++)
        assert_int_equal(util_utf8_prefix(C4 C4, max), 4);
    assert_int_equal(util_utf8_prefix(C4 C4, 3), 0);
    assert_int_equal(util_utf8_prefix(C3 C3 C3, 8), 6);
    assert_int_equal(util_utf8_prefix("a" C2 "b", 2), 1);
    assert_int_equal(util_utf8_prefix(C2 C3 C4, 8), 5);
}

/* 255 three-byte characters quoted at 80 bytes: 26 whole ones, never a broken one. */
static void test_quoted_long_id_stays_utf8(void **state)
{
    (void)state;
    char id[255 * 3 + 1] = "";
    for (int i = 0; i < 255; i++)
        memcpy(id + 3 * i, C3, 3);
    id[255 * 3] = '\0';
    char msg[256];
    snprintf(msg, sizeof msg, "location %.*s belongs", util_utf8_prefix(id, 80), id);
    assert_int_equal(strlen(msg), strlen("location  belongs") + 78);
    assert_int_equal(memcmp(msg + 9 + 78, " belongs", 8), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_short_value_is_whole),
        cmocka_unit_test(test_cut_at_boundary),
        cmocka_unit_test(test_cut_inside_a_character_drops_it),
        cmocka_unit_test(test_quoted_long_id_stays_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
