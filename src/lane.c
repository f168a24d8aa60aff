/* lane: the bulk lane's fetched messages, one queue per partition, taken in turn. */
#include "b2bd/lane.h"

#include <stdlib.h>
#include <string.h>

struct lane_part {
    int32_t partition;
    void **items;       /* items[head .. head + n) are held, oldest first */
    size_t head, n, cap;
};

struct lane {
    void (*destroy)(void *);
    size_t (*size)(const void *);
    size_t bytes;
    struct lane_part *parts;
    size_t n_parts, cap_parts;
    size_t total;
    size_t turn; /* the partition served next */
};

struct lane *lane_new(void (*destroy)(void *item), size_t (*size)(const void *item))
{
    struct lane *l = calloc(1, sizeof *l);
    if (!l)
        abort();
    l->destroy = destroy;
    l->size = size;
    return l;
}

void lane_free(struct lane *l)
{
    if (!l)
        return;
    lane_drop_all(l);
    for (size_t i = 0; i < l->n_parts; i++)
        free(l->parts[i].items);
    free(l->parts);
    free(l);
}

static struct lane_part *lane_part(struct lane *l, int32_t partition)
{
    for (size_t i = 0; i < l->n_parts; i++)
        if (l->parts[i].partition == partition)
            return &l->parts[i];
    if (l->n_parts == l->cap_parts) {
        l->cap_parts = l->cap_parts ? 2 * l->cap_parts : 8;
        l->parts = realloc(l->parts, l->cap_parts * sizeof *l->parts);
        if (!l->parts)
            abort();
    }
    struct lane_part *p = &l->parts[l->n_parts++];
    memset(p, 0, sizeof *p);
    p->partition = partition;
    return p;
}

void lane_push(struct lane *l, int32_t partition, void *item)
{
    struct lane_part *p = lane_part(l, partition);
    if (p->head > 0 && p->head + p->n == p->cap) { /* room at the front: move down */
        memmove(p->items, p->items + p->head, p->n * sizeof *p->items);
        p->head = 0;
    }
    if (p->head + p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        p->items = realloc(p->items, p->cap * sizeof *p->items);
        if (!p->items)
            abort();
    }
    p->items[p->head + p->n++] = item;
    l->total++;
    l->bytes += l->size ? l->size(item) : 0;
}

size_t lane_bytes(const struct lane *l)
{
    return l->bytes;
}

size_t lane_buffered(const struct lane *l)
{
    return l->total;
}

size_t lane_take(struct lane *l, void **out, size_t want)
{
    size_t got = 0;
    while (got < want && l->total > 0) {
        size_t active = 0;
        for (size_t i = 0; i < l->n_parts; i++)
            active += l->parts[i].n > 0;
        size_t quantum = (want - got + active - 1) / active;
        for (size_t visited = 0; visited < l->n_parts && got < want; visited++) {
            struct lane_part *p = &l->parts[l->turn];
            l->turn = (l->turn + 1) % l->n_parts;
            size_t k = p->n < quantum ? p->n : quantum;
            if (k > want - got)
                k = want - got;
            memcpy(out + got, p->items + p->head, k * sizeof *out);
            for (size_t j = 0; j < k && l->size; j++)
                l->bytes -= l->size(out[got + j]);
            got += k;
            p->head += k;
            p->n -= k;
            l->total -= k;
            if (p->n == 0)
                p->head = 0;
        }
    }
    return got;
}

static size_t lane_part_drop(struct lane *l, struct lane_part *p)
{
    size_t n = p->n;
    for (size_t k = 0; k < p->n; k++) {
        l->bytes -= l->size ? l->size(p->items[p->head + k]) : 0;
        l->destroy(p->items[p->head + k]);
    }
    l->total -= p->n;
    p->head = p->n = 0;
    return n;
}

size_t lane_drop(struct lane *l, int32_t partition)
{
    for (size_t i = 0; i < l->n_parts; i++)
        if (l->parts[i].partition == partition)
            return lane_part_drop(l, &l->parts[i]);
    return 0;
}

size_t lane_drop_all(struct lane *l)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n_parts; i++)
        n += lane_part_drop(l, &l->parts[i]);
    return n;
}
