/* Unit tests of lane: the bulk lane's per-partition queues, taken in turn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "b2bd/lane.h"

/* An item: its partition * 100000 + its sequence number in that partition. */
static int destroyed;
static void destroy(void *item)
{
    free(item);
    destroyed++;
}

static size_t item_size(const void *item)
{
    (void)item;
    return 10;
}

static void push(struct lane *l, int32_t partition, int seq)
{
    int *v = malloc(sizeof *v);
    assert_non_null(v);
    *v = partition * 100000 + seq;
    lane_push(l, partition, v);
}

/* Takes up to want; counts per partition (0..3) and checks per-partition order. */
static size_t take(struct lane *l, size_t want, size_t per[4], int next[4])
{
    void *out[2000];
    size_t n = lane_take(l, out, want);
    for (size_t i = 0; i < n; i++) {
        int v = *(int *)out[i];
        int p = v / 100000;
        assert_int_equal(v % 100000, next[p]);
        next[p]++;
        per[p]++;
        free(out[i]);
    }
    return n;
}

static void test_partitions_share_a_batch(void **state)
{
    (void)state;
    struct lane *l = lane_new(destroy, item_size);
    /* a large import on partition 0 fetched first, a small one on 1 after it */
    for (int i = 0; i < 1000; i++)
        push(l, 0, i);
    for (int i = 0; i < 100; i++)
        push(l, 1, i);
    assert_int_equal(lane_buffered(l), 1100);
    assert_int_equal(lane_bytes(l), 11000);
    size_t per[4] = {0};
    int next[4] = {0};
    assert_int_equal(take(l, 100, per, next), 100);
    assert_int_equal(per[0], 50);
    assert_int_equal(per[1], 50);
    /* the small one is done in its second batch, the large one goes on alone */
    assert_int_equal(take(l, 100, per, next), 100);
    assert_int_equal(per[1], 100);
    assert_int_equal(per[0], 100);
    assert_int_equal(take(l, 500, per, next), 500);
    assert_int_equal(per[0], 600);
    assert_int_equal(lane_buffered(l), 400);
    assert_int_equal(lane_bytes(l), 4000);
    lane_free(l);
}

static void test_turns_carry_over_between_batches(void **state)
{
    (void)state;
    struct lane *l = lane_new(destroy, item_size);
    for (int p = 0; p < 3; p++)
        for (int i = 0; i < 100; i++)
            push(l, p, i);
    size_t per[4] = {0};
    int next[4] = {0};
    /* one message a batch: the partitions in turn, not the first one every time */
    for (int i = 0; i < 30; i++)
        assert_int_equal(take(l, 1, per, next), 1);
    assert_int_equal(per[0], 10);
    assert_int_equal(per[1], 10);
    assert_int_equal(per[2], 10);
    /* an uneven share: 7 over 3 partitions, rounded up, then what is left */
    assert_int_equal(take(l, 7, per, next), 7);
    assert_int_equal(per[0] + per[1] + per[2], 37);
    assert_true(per[0] >= 12 && per[1] >= 12 && per[2] >= 10);
    lane_free(l);
}

static void test_drop_a_partition(void **state)
{
    (void)state;
    struct lane *l = lane_new(destroy, item_size);
    for (int i = 0; i < 10; i++) {
        push(l, 2, i);
        push(l, 3, i);
    }
    destroyed = 0;
    assert_int_equal(lane_drop(l, 2), 10);
    assert_int_equal(destroyed, 10);
    assert_int_equal(lane_drop(l, 7), 0);
    assert_int_equal(lane_buffered(l), 10);
    assert_int_equal(lane_bytes(l), 100);
    size_t per[4] = {0};
    int next[4] = {0};
    assert_int_equal(take(l, 100, per, next), 10);
    assert_int_equal(per[3], 10);
    assert_int_equal(take(l, 100, per, next), 0);
    /* a partition refilled after a drop starts again from its own order */
    for (int i = 0; i < 5; i++)
        push(l, 3, 10 + i);
    push(l, 1, 0);
    assert_int_equal(take(l, 100, per, next), 6);
    /* lane_free destroys what is left */
    push(l, 0, 0);
    destroyed = 0;
    lane_free(l);
    assert_int_equal(destroyed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partitions_share_a_batch),
        cmocka_unit_test(test_turns_carry_over_between_batches),
        cmocka_unit_test(test_drop_a_partition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
