/* test_reload: reload_apply takes the reloadable settings, leaves the others and says
 * which need a restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "b2bd/config.h"
#include "b2bd/log.h"
#include "b2bd/reload.h"

static void load(char *const *envp, struct b2bd_config *cfg)
{
    struct b2bd_err err;
    if (config_load(NULL, envp, cfg, &err) != 0)
        fail_msg("config_load: %s %s", err.field, err.msg);
}

/* Runs reload_apply with the log captured; returns the log (caller frees). */
static char *apply_logged(struct b2bd_config *cur, const struct b2bd_config *next, int *taken,
                          int *restart)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    log_init(cur->log_level, f);
    *taken = reload_apply(cur, next, restart);
    log_init(LOG_INFO, NULL);
    fclose(f);
    return buf;
}

static void test_takes_reloadable_values(void **state)
{
    (void)state;
    char *const before[] = {"B2BD_KAFKA_BOOTSTRAP=k:9092", "B2BD_PG_DSN=dbname=b2b", NULL};
    char *const after[] = {"B2BD_KAFKA_BOOTSTRAP=k:9092", "B2BD_PG_DSN=dbname=b2b",
                           "B2BD_BATCH_MAX=7", "B2BD_BATCH_LINGER_MS=25",
                           "B2BD_NOTIFIER_RATE_PER_S=3", "B2BD_NOTIFIER_RETRY_INITIAL_MS=1000",
                           "B2BD_NOTIFIER_RETRY_MAX_MS=9000", "B2BD_NOTIFIER_GIVE_UP_S=600", NULL};
    struct b2bd_config cur, next;
    load(before, &cur);
    load(after, &next);
    int taken = 0, restart = -1;
    char *log = apply_logged(&cur, &next, &taken, &restart);
    assert_int_equal(taken, 6);
    assert_int_equal(restart, 0);
    assert_int_equal(cur.batch_max, 7);
    assert_int_equal(cur.batch_linger_ms, 25);
    assert_int_equal(cur.notifier_rate_per_s, 3);
    assert_int_equal(cur.notifier_retry_initial_ms, 1000);
    assert_int_equal(cur.notifier_retry_max_ms, 9000);
    assert_int_equal(cur.notifier_give_up_s, 600);
    assert_non_null(strstr(log, "event=reloaded key=batch_max old=500 new=7"));
    assert_non_null(strstr(log, "event=reloaded key=notifier_rate_per_s old=0 new=3"));
    assert_null(strstr(log, "restart_needed"));
    free(log);
    /* the same again: nothing to take */
    log = apply_logged(&cur, &next, &taken, &restart);
    assert_int_equal(taken, 0);
    assert_int_equal(restart, 0);
    assert_null(strstr(log, "event=reloaded"));
    free(log);
    config_free(&cur);
    config_free(&next);
}

static void test_log_level(void **state)
{
    (void)state;
    char *const before[] = {"B2BD_KAFKA_BOOTSTRAP=k:9092", "B2BD_PG_DSN=dbname=b2b", NULL};
    char *const after[] = {"B2BD_KAFKA_BOOTSTRAP=k:9092", "B2BD_PG_DSN=dbname=b2b",
                           "B2BD_LOG_LEVEL=error", NULL};
    struct b2bd_config cur, next;
    load(before, &cur);
    load(after, &next);
    assert_true(log_enabled(LOG_INFO));
    int restart = -1;
    assert_int_equal(reload_apply(&cur, &next, &restart), 1);
    assert_int_equal(restart, 0);
    assert_int_equal(cur.log_level, LOG_ERROR);
    assert_false(log_enabled(LOG_WARN)); /* at once */
    assert_true(log_enabled(LOG_ERROR));
    log_init(LOG_INFO, NULL);
    config_free(&cur);
    config_free(&next);
}

static void test_other_keys_need_a_restart(void **state)
{
    (void)state;
    char *const before[] = {"B2BD_KAFKA_BOOTSTRAP=k:9092", "B2BD_PG_DSN=dbname=b2b user=a password=old",
                            "B2BD_KAFKA__CLIENT_ID=one", "B2BD_KAFKA__LINGER_MS=5", NULL};
    char *const after[] = {"B2BD_KAFKA_BOOTSTRAP=k:9093", "B2BD_PG_DSN=dbname=b2b user=a password=new",
                           "B2BD_GROUP_ID=other", "B2BD_APPLY_WORKERS=4", "B2BD_BATCH_MAX=9",
                           "B2BD_KAFKA__CLIENT_ID=two", "B2BD_KAFKA__ACKS=all", NULL};
    struct b2bd_config cur, next;
    load(before, &cur);
    load(after, &next);
    int taken = 0, restart = 0;
    char *log = apply_logged(&cur, &next, &taken, &restart);
    assert_int_equal(taken, 1); /* batch_max */
    assert_int_equal(cur.batch_max, 9);
    /* kafka_bootstrap, group_id, apply_workers, kafka.client.id, kafka.acks (added),
     * kafka.linger.ms (removed); not pg_dsn: its password is hidden in the comparison */
    assert_int_equal(restart, 6);
    assert_string_equal(cur.kafka_bootstrap, "k:9092");
    assert_string_equal(cur.group_id, "b2bd");
    assert_int_equal(cur.apply_workers, 2);
    const char *want[] = {"key=kafka_bootstrap ", "key=group_id ", "key=apply_workers ",
                          "key=kafka.client.id ", "key=kafka.acks ", "key=kafka.linger.ms "};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        char needle[80];
        snprintf(needle, sizeof needle, "event=restart_needed %s", want[i]);
        if (!strstr(log, needle))
            fail_msg("no '%s' in:\n%s", needle, log);
    }
    assert_null(strstr(log, "password")); /* no secret logged */
    assert_null(strstr(log, "pg_dsn"));
    free(log);
    config_free(&cur);
    config_free(&next);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_takes_reloadable_values),
        cmocka_unit_test(test_log_level),
        cmocka_unit_test(test_other_keys_need_a_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
