/* Unit tests of err: the contract's codes and the internal failures' codes are apart:
 * an internal failure (a file not there, a wrong setting, a Kafka client, the database)
 * is never a rejection or a dead letter, and never named like one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "b2bd/err.h"

static const struct {
    enum b2bd_code code;
    const char *name;
} INTERNAL[] = {
    {B2BD_ERR_DB, "DB_ERROR"},
    {B2BD_ERR_CONFIG, "CONFIG_ERROR"},
    {B2BD_ERR_IO, "IO_ERROR"},
    {B2BD_ERR_KAFKA, "KAFKA_ERROR"},
    {B2BD_ERR_INTERNAL, "INTERNAL"},
};

static void test_internal_codes_are_not_the_contracts(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof INTERNAL / sizeof INTERNAL[0]; i++) {
        enum b2bd_code c = INTERNAL[i].code;
        assert_false(b2bd_code_is_rejection(c));
        assert_false(b2bd_code_is_dead_letter(c));
        assert_string_equal(b2bd_code_name(c), INTERNAL[i].name);
        assert_int_equal(b2bd_code_from_name(INTERNAL[i].name), c);
    }
}

/* Every code has a name of its own, so a log's code= says which failure it was. */
static void test_names_are_distinct(void **state)
{
    (void)state;
    for (int a = B2BD_OK; a <= B2BD_ERR_INTERNAL; a++)
        for (int b = a + 1; b <= B2BD_ERR_INTERNAL; b++)
            if (strcmp(b2bd_code_name((enum b2bd_code)a), b2bd_code_name((enum b2bd_code)b)) == 0)
                fail_msg("codes %d and %d are both %s", a, b, b2bd_code_name((enum b2bd_code)a));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_internal_codes_are_not_the_contracts),
        cmocka_unit_test(test_names_are_distinct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
