/* lane: the bulk lane's fetched messages, one queue per partition, taken in turn
 * (kafka.c): two shops importing at once on two partitions both advance. */
#ifndef B2BD_LANE_H
#define B2BD_LANE_H

#include <stddef.h>
#include <stdint.h>

struct lane;

/* An empty lane; destroy frees an item the lane drops (lane_drop, lane_free); size
 * (NULL: none) gives an item's bytes, summed by lane_bytes. */
struct lane *lane_new(void (*destroy)(void *item), size_t (*size)(const void *item));
/* Destroys what the lane still holds, then frees it. */
void lane_free(struct lane *l);

/* Appends item to its partition's queue (in the order fetched: per-partition order). */
void lane_push(struct lane *l, int32_t partition, void *item);
/* Items held, over all partitions. */
size_t lane_buffered(const struct lane *l);
/* Their bytes (see lane_new). */
size_t lane_bytes(const struct lane *l);
/* Takes up to want items into out, the partitions in turn: each partition that holds
 * items gets an equal share (rounded up) of what is left, starting after the partition
 * served last by the previous call; a partition's items come out in order and
 * contiguously. Returns how many were taken. */
size_t lane_take(struct lane *l, void **out, size_t want);
/* Destroys the items of one partition (taken away by a rebalance); returns how many. */
size_t lane_drop(struct lane *l, int32_t partition);
/* Destroys every item held; returns how many. */
size_t lane_drop_all(struct lane *l);

#endif
