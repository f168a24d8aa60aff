/* test_notifier: the retry schedule of the notifier (exponential, capped, jittered). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "b2bd/notifier.h"

static void test_doubles_from_initial(void **state)
{
    (void)state;
    /* r = 0.999999: the top of the jitter range, i.e. the undithered delay (less a hair) */
    long prev = 0;
    for (int attempt = 1; attempt <= 6; attempt++) {
        long d = notifier_backoff_ms(attempt, 60000, 3600000, 0.999999);
        long full = 60000L << (attempt - 1);
        assert_true(d <= full && d >= full - 1 - full / 100000);
        assert_true(d > prev);
        prev = d;
    }
}

static void test_capped_at_max(void **state)
{
    (void)state;
    assert_true(notifier_backoff_ms(7, 60000, 3600000, 0.999999) <= 3600000);
    assert_true(notifier_backoff_ms(7, 60000, 3600000, 0.999999) >= 3599990);
    assert_true(notifier_backoff_ms(1000, 60000, 3600000, 0.999999) <= 3600000);
    assert_true(notifier_backoff_ms(1000000, 60000, 3600000, 0.5) >= 1800000);
}

static void test_jitter_between_half_and_all(void **state)
{
    (void)state;
    assert_int_equal(notifier_backoff_ms(1, 1000, 10000, 0.0), 500);
    assert_int_equal(notifier_backoff_ms(2, 1000, 10000, 0.0), 1000);
    assert_int_equal(notifier_backoff_ms(2, 1000, 10000, 0.5), 1500);
    for (int i = 0; i < 100; i++) {
        double r = i / 100.0;
        long d = notifier_backoff_ms(3, 1000, 10000, r);
        assert_true(d >= 2000 && d <= 4000);
    }
    /* out-of-range r is clamped, never a negative or doubled delay */
    assert_int_equal(notifier_backoff_ms(1, 1000, 10000, -3.0), 500);
    assert_true(notifier_backoff_ms(1, 1000, 10000, 7.0) <= 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doubles_from_initial),
        cmocka_unit_test(test_capped_at_max),
        cmocka_unit_test(test_jitter_between_half_and_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
