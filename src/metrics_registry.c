/* metrics_registry: a generic Prometheus registry: counters, gauges and histograms,
 * rendered in the text format 0.0.4. It knows no type of b2bd's. */
#include "b2bd/metrics_registry.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct series {
    char *values[METRIC_MAX_LABELS];
    double value;                         /* counter, gauge */
    double sum;                           /* histogram */
    unsigned long count;                  /* histogram */
    unsigned long buckets[METRIC_MAX_BUCKETS]; /* histogram, per bucket (not cumulative) */
};

struct metric {
    struct metrics *reg;
    enum metric_type type;
    const char *name;
    const char *help;
    const char *labels[METRIC_MAX_LABELS];
    size_t n_labels;
    double bounds[METRIC_MAX_BUCKETS];
    size_t n_bounds;
    struct series *series;
    size_t n_series, cap_series;
};

struct metrics {
    pthread_mutex_t lock;
    struct metric **families;
    size_t n_families;
};

double metrics_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct metrics *metrics_new(void)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (!m)
        abort();
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

static void metrics_free_series(struct metric *f)
{
    for (size_t i = 0; i < f->n_series; i++)
        for (size_t l = 0; l < f->n_labels; l++)
            free(f->series[i].values[l]);
    f->n_series = 0;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_families; i++) {
        metrics_free_series(m->families[i]);
        free(m->families[i]->series);
        free(m->families[i]);
    }
    free(m->families);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* The series with these label values, made when missing. Called with the lock held. */
static struct series *metrics_series(struct metric *f, const char *const *values)
{
    for (size_t i = 0; i < f->n_series; i++) {
        size_t l = 0;
        while (l < f->n_labels && strcmp(f->series[i].values[l], values[l] ? values[l] : "") == 0)
            l++;
        if (l == f->n_labels)
            return &f->series[i];
    }
    if (f->n_series == f->cap_series) {
        f->cap_series = f->cap_series ? f->cap_series * 2 : 8;
        f->series = realloc(f->series, f->cap_series * sizeof *f->series);
        if (!f->series)
            abort();
    }
    struct series *s = &f->series[f->n_series++];
    memset(s, 0, sizeof *s);
    for (size_t l = 0; l < f->n_labels; l++)
        if (!(s->values[l] = strdup(values[l] ? values[l] : "")))
            abort();
    return s;
}

struct metric *metrics_register(struct metrics *m, enum metric_type type, const char *name,
                                const char *help, const char *const *labels,
                                const double *buckets, size_t n_buckets)
{
    struct metric *f = calloc(1, sizeof *f);
    if (!f)
        abort();
    *f = (struct metric){.reg = m, .type = type, .name = name, .help = help};
    for (; labels && labels[f->n_labels]; f->n_labels++) {
        if (f->n_labels == METRIC_MAX_LABELS)
            abort();
        f->labels[f->n_labels] = labels[f->n_labels];
    }
    if (type == METRIC_HISTOGRAM) {
        if (n_buckets > METRIC_MAX_BUCKETS)
            abort();
        memcpy(f->bounds, buckets, n_buckets * sizeof *buckets);
        f->n_bounds = n_buckets;
    }
    pthread_mutex_lock(&m->lock);
    m->families = realloc(m->families, (m->n_families + 1) * sizeof *m->families);
    if (!m->families)
        abort();
    m->families[m->n_families++] = f;
    if (f->n_labels == 0)
        metrics_series(f, NULL);
    pthread_mutex_unlock(&m->lock);
    return f;
}

void metrics_inc(struct metric *f, const char *const *values, double by)
{
    pthread_mutex_lock(&f->reg->lock);
    metrics_series(f, values)->value += by;
    pthread_mutex_unlock(&f->reg->lock);
}

void metrics_set(struct metric *f, const char *const *values, double v)
{
    pthread_mutex_lock(&f->reg->lock);
    metrics_series(f, values)->value = v;
    pthread_mutex_unlock(&f->reg->lock);
}

void metrics_observe(struct metric *f, const char *const *values, double v, unsigned long n)
{
    pthread_mutex_lock(&f->reg->lock);
    struct series *s = metrics_series(f, values);
    size_t b = 0;
    while (b < f->n_bounds && v > f->bounds[b])
        b++;
    if (b < f->n_bounds)
        s->buckets[b] += n;
    s->count += n;
    s->sum += v * (double)n;
    pthread_mutex_unlock(&f->reg->lock);
}

double metrics_get(struct metric *f, const char *const *values)
{
    double v = 0;
    pthread_mutex_lock(&f->reg->lock);
    for (size_t i = 0; i < f->n_series; i++) {
        size_t l = 0;
        while (l < f->n_labels && strcmp(f->series[i].values[l], values[l] ? values[l] : "") == 0)
            l++;
        if (l == f->n_labels) {
            v = f->type == METRIC_HISTOGRAM ? (double)f->series[i].count : f->series[i].value;
            break;
        }
    }
    pthread_mutex_unlock(&f->reg->lock);
    return v;
}

void metrics_clear(struct metric *f)
{
    pthread_mutex_lock(&f->reg->lock);
    if (f->n_labels > 0)
        metrics_free_series(f);
    pthread_mutex_unlock(&f->reg->lock);
}

void metrics_clear_where(struct metric *f, size_t label,
                         int (*match)(const char *value, const void *ctx), const void *ctx)
{
    pthread_mutex_lock(&f->reg->lock);
    size_t kept = 0;
    for (size_t i = 0; i < f->n_series; i++) {
        struct series *s = &f->series[i];
        if (label < f->n_labels && match(s->values[label], ctx)) {
            for (size_t l = 0; l < f->n_labels; l++)
                free(s->values[l]);
            continue;
        }
        f->series[kept++] = *s;
    }
    f->n_series = kept;
    pthread_mutex_unlock(&f->reg->lock);
}

/* A sample value: whole numbers without exponent, +Inf/-Inf/NaN as the format says. */
static void metrics_number(struct sbuf *out, double v)
{
    if (isnan(v))
        sbuf_adds(out, "NaN");
    else if (isinf(v))
        sbuf_adds(out, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0)
        sbuf_addf(out, "%.0f", v);
    else {
        char text[40]; /* the shortest of 15 and 17 digits that reads back the same */
        snprintf(text, sizeof text, "%.15g", v);
        if (strtod(text, NULL) != v)
            snprintf(text, sizeof text, "%.17g", v);
        sbuf_adds(out, text);
    }
}

/* Escapes a label value (\, " and newline) or, with help set, a HELP text (\ and newline). */
static void metrics_escape(struct sbuf *out, const char *s, int help)
{
    for (; *s; s++) {
        if (*s == '\\')
            sbuf_adds(out, "\\\\");
        else if (*s == '\n')
            sbuf_adds(out, "\\n");
        else if (*s == '"' && !help)
            sbuf_adds(out, "\\\"");
        else
            sbuf_add(out, s, 1);
    }
}

/* name{l1="v1",...,extra} (extra: a pre-rendered pair such as le="0.5", or NULL). */
static void metrics_sample_name(struct sbuf *out, const struct metric *f, const struct series *s,
                                const char *suffix, const char *extra)
{
    sbuf_adds(out, f->name);
    sbuf_adds(out, suffix);
    if (f->n_labels == 0 && !extra)
        return;
    sbuf_adds(out, "{");
    for (size_t l = 0; l < f->n_labels; l++) {
        sbuf_addf(out, "%s%s=\"", l ? "," : "", f->labels[l]);
        metrics_escape(out, s->values[l], 0);
        sbuf_adds(out, "\"");
    }
    if (extra)
        sbuf_addf(out, "%s%s", f->n_labels ? "," : "", extra);
    sbuf_adds(out, "}");
}

static void metrics_render_family(struct sbuf *out, const struct metric *f)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    sbuf_addf(out, "# HELP %s ", f->name);
    metrics_escape(out, f->help, 1);
    sbuf_addf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
    for (size_t i = 0; i < f->n_series; i++) {
        const struct series *s = &f->series[i];
        if (f->type != METRIC_HISTOGRAM) {
            metrics_sample_name(out, f, s, "", NULL);
            sbuf_adds(out, " ");
            metrics_number(out, s->value);
            sbuf_adds(out, "\n");
            continue;
        }
        unsigned long cumulative = 0;
        char le[48];
        for (size_t b = 0; b < f->n_bounds; b++) {
            cumulative += s->buckets[b];
            snprintf(le, sizeof le, "le=\"%.15g\"", f->bounds[b]);
            metrics_sample_name(out, f, s, "_bucket", le);
            sbuf_addf(out, " %lu\n", cumulative);
        }
        metrics_sample_name(out, f, s, "_bucket", "le=\"+Inf\"");
        sbuf_addf(out, " %lu\n", s->count);
        metrics_sample_name(out, f, s, "_sum", NULL);
        sbuf_adds(out, " ");
        metrics_number(out, s->sum);
        sbuf_adds(out, "\n");
        metrics_sample_name(out, f, s, "_count", NULL);
        sbuf_addf(out, " %lu\n", s->count);
    }
}

void metrics_render(struct metrics *m, struct sbuf *out)
{
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n_families; i++)
        metrics_render_family(out, m->families[i]);
    pthread_mutex_unlock(&m->lock);
}
