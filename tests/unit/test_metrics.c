/* test_metrics: Prometheus text rendering, b2bd's counters from batch stats, lag from librdkafka's statistics, readiness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "b2bd/metrics.h"
#include "b2bd/version.h"

/* Renders m into a string the test frees. */
static char *render(struct metrics *m)
{
    struct sbuf b = {0};
    metrics_render(m, &b);
    char *s = strdup(sbuf_str(&b));
    sbuf_free(&b);
    return s;
}

static void assert_has(const char *text, const char *part)
{
    if (!strstr(text, part))
        fail_msg("missing %s in:\n%s", part, text);
}

static void test_counter_help_type_and_value(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    struct metric *c = metrics_register(m, METRIC_COUNTER, "x_events_total",
                                        "Events seen.\nTwo lines, a \\ too.", NULL, NULL, 0);
    char *t = render(m);
    assert_string_equal(t, "# HELP x_events_total Events seen.\\nTwo lines, a \\\\ too.\n"
                           "# TYPE x_events_total counter\n"
                           "x_events_total 0\n");
    free(t);
    metrics_inc(c, NULL, 3);
    metrics_inc(c, NULL, 0.5);
    t = render(m);
    assert_has(t, "\nx_events_total 3.5\n");
    free(t);
    assert_true(metrics_get(c, NULL) == 3.5);
    metrics_free(m);
}

static void test_labels_escaped_and_series_kept_apart(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    static const char *const L[] = {"type", "code", NULL};
    struct metric *c = metrics_register(m, METRIC_COUNTER, "x_total", "By type and code.", L, NULL, 0);
    char *t = render(m);
    /* a labelled family shows no series until one is used, but its HELP and TYPE */
    assert_string_equal(t, "# HELP x_total By type and code.\n# TYPE x_total counter\n");
    free(t);
    metrics_inc(c, METRIC_LABELS("assign", "NOT_FOUND"), 2);
    metrics_inc(c, METRIC_LABELS("assign", "INVALID"), 1);
    metrics_inc(c, METRIC_LABELS("assign", "NOT_FOUND"), 1);
    metrics_inc(c, METRIC_LABELS("a\"b\\c\nd", "x"), 1);
    t = render(m);
    assert_has(t, "\nx_total{type=\"assign\",code=\"NOT_FOUND\"} 3\n");
    assert_has(t, "\nx_total{type=\"assign\",code=\"INVALID\"} 1\n");
    assert_has(t, "\nx_total{type=\"a\\\"b\\\\c\\nd\",code=\"x\"} 1\n");
    free(t);
    assert_true(metrics_get(c, METRIC_LABELS("assign", "NOT_FOUND")) == 3);
    assert_true(metrics_get(c, METRIC_LABELS("assign", "CONFLICT")) == 0);
    metrics_free(m);
}

static void test_gauge_set_and_clear(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    static const char *const L[] = {"topic", "partition", NULL};
    struct metric *g = metrics_register(m, METRIC_GAUGE, "x_lag", "Lag.", L, NULL, 0);
    metrics_set(g, METRIC_LABELS("t", "0"), 7);
    metrics_set(g, METRIC_LABELS("t", "0"), -2);
    metrics_set(g, METRIC_LABELS("t", "1"), 1e20);
    char *t = render(m);
    assert_has(t, "# TYPE x_lag gauge\n");
    assert_has(t, "\nx_lag{topic=\"t\",partition=\"0\"} -2\n");
    assert_has(t, "\nx_lag{topic=\"t\",partition=\"1\"} 1e+20\n");
    free(t);
    metrics_clear(g);
    t = render(m);
    assert_null(strstr(t, "x_lag{"));
    free(t);
    metrics_free(m);
}

static void test_histogram_cumulative_inf_sum_count(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    static const double B[] = {0.005, 0.1, 1};
    struct metric *h = metrics_register(m, METRIC_HISTOGRAM, "x_seconds", "Durations.", NULL, B, 3);
    char *t = render(m);
    assert_string_equal(t, "# HELP x_seconds Durations.\n# TYPE x_seconds histogram\n"
                           "x_seconds_bucket{le=\"0.005\"} 0\n"
                           "x_seconds_bucket{le=\"0.1\"} 0\n"
                           "x_seconds_bucket{le=\"1\"} 0\n"
                           "x_seconds_bucket{le=\"+Inf\"} 0\n"
                           "x_seconds_sum 0\n"
                           "x_seconds_count 0\n");
    free(t);
    metrics_observe(h, NULL, 0.005, 1); /* on the bound: in that bucket (le) */
    metrics_observe(h, NULL, 0.05, 2);
    metrics_observe(h, NULL, 0.5, 1);
    metrics_observe(h, NULL, 3, 1);     /* above every bound: +Inf only */
    t = render(m);
    assert_has(t, "x_seconds_bucket{le=\"0.005\"} 1\n"
                  "x_seconds_bucket{le=\"0.1\"} 3\n"
                  "x_seconds_bucket{le=\"1\"} 4\n"
                  "x_seconds_bucket{le=\"+Inf\"} 5\n"
                  "x_seconds_sum 3.605\n"
                  "x_seconds_count 5\n");
    free(t);
    assert_true(metrics_get(h, NULL) == 5);
    metrics_free(m);
}

static void test_histogram_with_labels(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    static const double B[] = {1, 10};
    static const char *const L[] = {"op", NULL};
    struct metric *h = metrics_register(m, METRIC_HISTOGRAM, "x_size", "Sizes.", L, B, 2);
    metrics_observe(h, METRIC_LABELS("a"), 5, 1);
    char *t = render(m);
    assert_has(t, "x_size_bucket{op=\"a\",le=\"1\"} 0\n"
                  "x_size_bucket{op=\"a\",le=\"10\"} 1\n"
                  "x_size_bucket{op=\"a\",le=\"+Inf\"} 1\n"
                  "x_size_sum{op=\"a\"} 5\n"
                  "x_size_count{op=\"a\"} 1\n");
    free(t);
    metrics_free(m);
}

static void test_b2bd_families_named_by_convention(void **state)
{
    (void)state;
    struct b2bd_metrics *bm = metrics_b2bd_new();
    char *t = render(bm->reg);
    /* zero series exist from the start for known types, codes and topics */
    assert_has(t, "\nb2bd_commands_applied_total{type=\"assign\"} 0\n");
    assert_has(t, "\nb2bd_commands_rejected_by_code_total{code=\"NOT_FOUND\"} 0\n");
    assert_has(t, "\nb2bd_dead_letters_total{code=\"NOT_JSON\"} 0\n");
    assert_has(t, "\nb2bd_events_published_total{topic=\"events.access\"} 0\n");
    assert_has(t, "\nb2bd_commands_consumed_total{topic=\"commands.sync\"} 0\n");
    assert_has(t, "# TYPE b2bd_batch_duration_seconds histogram\n");
    assert_has(t, "# TYPE b2bd_outbox_oldest_age_seconds gauge\n");
    assert_has(t, "\nb2bd_build_info{version=\"" B2BD_VERSION "\"} 1\n");
    /* every sample name: b2bd_ prefix; every counter ends in _total */
    for (char *line = t; *line; line = strchr(line, '\n') + 1) {
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[128], type[32];
            assert_int_equal(sscanf(line, "# TYPE %127s %31s", name, type), 2);
            assert_memory_equal(name, "b2bd_", 5);
            if (strcmp(type, "counter") == 0)
                assert_string_equal(name + strlen(name) - 6, "_total");
        } else if (line[0] != '#') {
            assert_memory_equal(line, "b2bd_", 5);
        }
    }
    free(t);
    metrics_b2bd_free(bm);
}

static void test_record_batch_adds_differences(void **state)
{
    (void)state;
    struct b2bd_metrics *bm = metrics_b2bd_new();
    struct apply_stats before = {0}, after = {0};
    before.applied_by_type[CMD_ASSIGN] = 10; /* cumulative: only the difference counts */
    after.applied_by_type[CMD_ASSIGN] = 13;
    after.applied_by_type[CMD_SHOP_UPSERT] = 1;
    after.rejected_by_type[CMD_ASSIGN] = 2;
    after.by_code[B2BD_NOT_FOUND] = 2;
    after.by_code[B2BD_NOT_JSON] = 1;
    after.duplicates = 1;
    after.skipped = 4;
    metrics_record_batch(bm, &before, &after, 10, 0.02);
    assert_true(metrics_get(bm->applied, METRIC_LABELS("assign")) == 3);
    assert_true(metrics_get(bm->applied, METRIC_LABELS("shop.upsert")) == 1);
    assert_true(metrics_get(bm->rejected, METRIC_LABELS("assign")) == 2);
    assert_true(metrics_get(bm->rejected_by_code, METRIC_LABELS("NOT_FOUND")) == 2);
    assert_true(metrics_get(bm->rejected_by_code, METRIC_LABELS("NOT_JSON")) == 0);
    assert_true(metrics_get(bm->dead_letters, METRIC_LABELS("NOT_JSON")) == 1);
    assert_true(metrics_get(bm->duplicates, NULL) == 1);
    assert_true(metrics_get(bm->skipped, NULL) == 4);
    assert_true(metrics_get(bm->batch_size, NULL) == 1);
    assert_true(metrics_get(bm->batch_duration, NULL) == 1);
    assert_true(metrics_get(bm->command_duration, NULL) == 10); /* one observation per message */
    char *t = render(bm->reg);
    assert_has(t, "b2bd_batch_size_messages_bucket{le=\"5\"} 0\nb2bd_batch_size_messages_bucket{le=\"10\"} 1\n");
    assert_has(t, "b2bd_command_duration_seconds_bucket{le=\"0.0025\"} 10\n");
    assert_has(t, "b2bd_command_duration_seconds_bucket{le=\"0.001\"} 0\n");
    free(t);
    metrics_b2bd_free(bm);
}

static void test_kafka_stats_give_lag_of_fetched_partitions(void **state)
{
    (void)state;
    struct b2bd_metrics *bm = metrics_b2bd_new();
    static const char STATS[] =
        "{\"name\":\"b2bd#consumer-1\",\"type\":\"consumer\",\"topics\":{"
        "\"b2b.commands.assign\":{\"topic\":\"b2b.commands.assign\",\"partitions\":{"
        "\"0\":{\"partition\":0,\"fetch_state\":\"active\",\"consumer_lag\":12},"
        "\"1\":{\"partition\":1,\"fetch_state\":\"none\",\"consumer_lag\":-1},"
        "\"2\":{\"partition\":2,\"fetch_state\":\"active\",\"consumer_lag\":-1},"
        "\"-1\":{\"partition\":-1,\"fetch_state\":\"none\",\"consumer_lag\":-1}}},"
        "\"b2b.commands.sync\":{\"partitions\":{\"3\":{\"fetch_state\":\"active\",\"consumer_lag\":0}}}}}";
    assert_int_equal(metrics_kafka_stats(bm, "interactive", STATS, strlen(STATS)), 0);
    char *t = render(bm->reg);
    assert_has(t, "\nb2bd_consumer_lag_messages{topic=\"b2b.commands.assign\",partition=\"0\"} 12\n");
    assert_has(t, "\nb2bd_consumer_lag_messages{topic=\"b2b.commands.sync\",partition=\"3\"} 0\n");
    assert_null(strstr(t, "partition=\"1\""));
    assert_null(strstr(t, "partition=\"2\""));
    assert_null(strstr(t, "partition=\"-1\""));
    free(t);
    /* a later report replaces the earlier: partition 0 gone */
    static const char LATER[] = "{\"topics\":{\"b2b.commands.sync\":{\"partitions\":{"
                                "\"3\":{\"fetch_state\":\"active\",\"consumer_lag\":5}}}}}";
    assert_int_equal(metrics_kafka_stats(bm, "interactive", LATER, strlen(LATER)), 0);
    t = render(bm->reg);
    assert_null(strstr(t, "b2b.commands.assign"));
    assert_has(t, "partition=\"3\"} 5\n");
    assert_has(t, "\nb2bd_lane_lag_messages{lane=\"interactive\"} 5\n");
    free(t);
    /* the bulk lane's consumer reports its own topic: the other lane's gauges stay */
    static const char BULK[] = "{\"topics\":{\"b2b.commands.bulk\":{\"partitions\":{"
                               "\"0\":{\"fetch_state\":\"active\",\"consumer_lag\":700},"
                               "\"1\":{\"fetch_state\":\"active\",\"consumer_lag\":40}}}}}";
    assert_int_equal(metrics_kafka_stats(bm, "bulk", BULK, strlen(BULK)), 0);
    t = render(bm->reg);
    assert_has(t, "\nb2bd_consumer_lag_messages{topic=\"b2b.commands.sync\",partition=\"3\"} 5\n");
    assert_has(t, "\nb2bd_consumer_lag_messages{topic=\"b2b.commands.bulk\",partition=\"0\"} 700\n");
    assert_has(t, "\nb2bd_lane_lag_messages{lane=\"bulk\"} 740\n");
    assert_has(t, "\nb2bd_lane_lag_messages{lane=\"interactive\"} 5\n");
    free(t);
    /* and the interactive lane's next report leaves the bulk lane's */
    assert_int_equal(metrics_kafka_stats(bm, "interactive", LATER, strlen(LATER)), 0);
    t = render(bm->reg);
    assert_has(t, "topic=\"b2b.commands.bulk\",partition=\"1\"} 40\n");
    free(t);
    assert_int_equal(metrics_kafka_stats(bm, "interactive", "not json", 8), -1);
    metrics_b2bd_free(bm);
}

static void test_readiness(void **state)
{
    (void)state;
    struct b2bd_metrics *bm = metrics_b2bd_new();
    char why[120];
    int64_t now = util_now_ms();
    assert_int_equal(metrics_ready(bm, now, why, sizeof why), 0);
    assert_string_equal(why, "starting");
    atomic_store(&bm->started, 1);
    assert_int_equal(metrics_ready(bm, now, why, sizeof why), 0);
    assert_string_equal(why, "database unreachable");
    metrics_db_check(bm, 1);
    assert_int_equal(metrics_ready(bm, util_now_ms(), why, sizeof why), 1);
    assert_string_equal(why, "ready");
    assert_true(metrics_get(bm->ready, NULL) == 1);
    /* stale: no check for longer than METRICS_DB_STALE_MS */
    assert_int_equal(metrics_ready(bm, util_now_ms() + METRICS_DB_STALE_MS + 1000, why, sizeof why), 0);
    assert_memory_equal(why, "database not checked", 20);
    /* a consuming role needs partitions */
    atomic_store(&bm->needs_consumer, 1);
    assert_int_equal(metrics_ready(bm, util_now_ms(), why, sizeof why), 0);
    assert_string_equal(why, "no partitions assigned");
    metrics_assigned(bm, 20);
    assert_int_equal(metrics_ready(bm, util_now_ms(), why, sizeof why), 1);
    /* the outbox stuck */
    metrics_outbox(bm, 3, 75.5);
    assert_int_equal(metrics_ready(bm, util_now_ms(), why, sizeof why), 0);
    assert_string_equal(why, "outbox stuck: oldest row 75 s old");
    metrics_outbox(bm, 0, 0);
    assert_int_equal(metrics_ready(bm, util_now_ms(), why, sizeof why), 1);
    /* a failed check after a good one */
    util_sleep_ms(2);
    metrics_db_check(bm, 0);
    assert_int_equal(metrics_ready(bm, util_now_ms(), why, sizeof why), 0);
    assert_string_equal(why, "database unreachable");
    assert_true(metrics_get(bm->db_up, NULL) == 0);
    assert_true(metrics_get(bm->ready, NULL) == 0);
    util_sleep_ms(2);
    metrics_db_check(bm, 1);
    assert_int_equal(metrics_ready(bm, util_now_ms(), why, sizeof why), 1);
    atomic_store(&bm->stopping, 1);
    assert_int_equal(metrics_ready(bm, util_now_ms(), why, sizeof why), 0);
    assert_string_equal(why, "stopping");
    metrics_b2bd_free(bm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_help_type_and_value),
        cmocka_unit_test(test_labels_escaped_and_series_kept_apart),
        cmocka_unit_test(test_gauge_set_and_clear),
        cmocka_unit_test(test_histogram_cumulative_inf_sum_count),
        cmocka_unit_test(test_histogram_with_labels),
        cmocka_unit_test(test_b2bd_families_named_by_convention),
        cmocka_unit_test(test_record_batch_adds_differences),
        cmocka_unit_test(test_kafka_stats_give_lag_of_fetched_partitions),
        cmocka_unit_test(test_readiness),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
