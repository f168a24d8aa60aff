/* workers: one batch's partitions applied in parallel, one connection each. */
#include "b2bd/workers.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>


struct share {
    struct b2bd_applier ap;
    struct b2bd_db db;      /* own connection (unused by the first worker) */
    struct b2bd_msg *msgs;  /* this batch's share */
    size_t *from;           /* msgs[k] is the batch's message from[k] */
    size_t n;
    struct apply_stats st;
    workers_apply_fn fn;
    int rc;
    int threaded;           /* this batch: applied on its own thread */
    pthread_t thread;
};

struct workers {
    size_t n;
    struct share *s;
    size_t cap;             /* of each share's arrays */
};

struct workers *workers_new(size_t n, const struct b2bd_applier *proto)
{
    struct workers *w = calloc(1, sizeof *w);
    if (!w || !(w->s = calloc(n ? n : 1, sizeof *w->s)))
        abort();
    w->n = n ? n : 1;
    for (size_t i = 0; i < w->n; i++) {
        w->s[i].ap = *proto;
        if (i > 0) {
            db_init(&w->s[i].db, proto->cfg->pg_dsn, proto->cfg->pg_password);
            w->s[i].db.metrics = proto->db->metrics; /* counted as proto's connection is */
            w->s[i].ap.db = &w->s[i].db;
        }
    }
    return w;
}

void workers_free(struct workers *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++) {
        if (i > 0)
            db_free(&w->s[i].db);
        free(w->s[i].msgs);
        free(w->s[i].from);
    }
    free(w->s);
    free(w);
}

static void *share_main(void *arg)
{
    struct share *s = arg;
    s->rc = s->fn(&s->ap, s->msgs, s->n, &s->st);
    return NULL;
}

/* The worker of msgs[i]: that of an earlier message of its partition, else the next. */
static size_t worker_of(const struct b2bd_msg *msgs, size_t i, const size_t *owner,
                        size_t *next, size_t n_workers)
{
    for (size_t j = 0; j < i; j++)
        if (msgs[j].partition == msgs[i].partition &&
            strcmp(msgs[j].topic_name, msgs[i].topic_name) == 0)
            return owner[j];
    size_t o = *next;
    *next = (*next + 1) % n_workers;
    return o;
}

size_t workers_apply(struct workers *w, const struct b2bd_msg *msgs, size_t n, workers_apply_fn fn,
                   struct apply_stats *st, unsigned char *ok)
{
    if (n > w->cap) {
        for (size_t i = 0; i < w->n; i++) {
            free(w->s[i].msgs);
            free(w->s[i].from);
            w->s[i].msgs = calloc(n, sizeof *w->s[i].msgs);
            w->s[i].from = calloc(n, sizeof *w->s[i].from);
            if (!w->s[i].msgs || !w->s[i].from)
                abort();
        }
        w->cap = n;
    }
    size_t *owner = calloc(n ? n : 1, sizeof *owner);
    if (!owner)
        abort();
    size_t next = 0;
    for (size_t i = 0; i < w->n; i++) {
        w->s[i].n = 0;
        w->s[i].fn = fn;
        w->s[i].rc = -1;
        memset(&w->s[i].st, 0, sizeof w->s[i].st);
    }
    /* a batch holds few partitions: the quadratic look-up stays small next to applying */
    for (size_t i = 0; i < n; i++) {
        owner[i] = worker_of(msgs, i, owner, &next, w->n);
        struct share *s = &w->s[owner[i]];
        s->msgs[s->n] = msgs[i];
        s->from[s->n++] = i;
    }
    free(owner);

    /* the first share on this thread, the others on threads of their own */
    for (size_t i = 1; i < w->n; i++) {
        struct share *s = &w->s[i];
        s->threaded = 0;
        if (s->n == 0)
            continue;
        if (pthread_create(&s->thread, NULL, share_main, s) == 0)
            s->threaded = 1;
        else
            share_main(s); /* no thread to be had: in turn, on this one */
    }
    if (w->s[0].n)
        share_main(&w->s[0]);
    for (size_t i = 1; i < w->n; i++)
        if (w->s[i].threaded)
            pthread_join(w->s[i].thread, NULL);

    memset(ok, 0, n);
    size_t busy = 0;
    for (size_t i = 0; i < w->n; i++) {
        struct share *s = &w->s[i];
        if (s->n == 0)
            continue;
        busy++;
        apply_stats_add(st, &s->st);
        if (s->rc == 0)
            for (size_t k = 0; k < s->n; k++)
                ok[s->from[k]] = 1;
    }
    return busy;
}
