/* metrics_registry: Prometheus counters, gauges and histograms (text format 0.0.4), a
 * generic registry that knows no type of b2bd's. */
#ifndef B2BD_METRICS_REGISTRY_H
#define B2BD_METRICS_REGISTRY_H

#include <stddef.h>

#include "b2bd/util.h"

/* ---- A registry ------------------------------------------------------------------------
 * A registry holds families (one name, help text, type and label names each); a family
 * holds series (one per combination of label values, made on first use; a family
 * without labels has its one series from the start). Every operation locks the
 * registry's mutex, so any thread may update and render. */

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

#define METRIC_MAX_LABELS 4
#define METRIC_MAX_BUCKETS 20

struct metrics;
struct metric;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* Adds a family. labels: NULL-terminated label names, or NULL for none. buckets: a
 * histogram's upper bounds, increasing, without +Inf (added when rendered); NULL for
 * other types. Names and label names are the caller's static strings. Aborts on a
 * programming error (too many labels or buckets). */
struct metric *metrics_register(struct metrics *m, enum metric_type type, const char *name,
                                const char *help, const char *const *labels,
                                const double *buckets, size_t n_buckets);

/* values: one label value per label name of the family (NULL when it has none); copied.
 * metrics_inc adds by (>= 0 for a counter) to a counter or gauge; metrics_set sets a
 * gauge; metrics_observe records n observations of v in a histogram. */
void metrics_inc(struct metric *f, const char *const *values, double by);
void metrics_set(struct metric *f, const char *const *values, double v);
void metrics_observe(struct metric *f, const char *const *values, double v, unsigned long n);

/* The current value of a counter or gauge series (0 if it does not exist); for a
 * histogram, its count. */
double metrics_get(struct metric *f, const char *const *values);

/* Drops every series of a labelled family (a gauge whose label sets went away). */
void metrics_clear(struct metric *f);
/* Removes the series whose value of label (an index) matches. */
void metrics_clear_where(struct metric *f, size_t label,
                         int (*match)(const char *value, const void *ctx), const void *ctx);

/* Appends the whole registry in the Prometheus text format 0.0.4: per family `# HELP`,
 * `# TYPE`, then its series; label values escaped (\\, \", \n); histograms as cumulative
 * `_bucket{le=...}` lines ending with le="+Inf", then `_sum` and `_count`. */
void metrics_render(struct metrics *m, struct sbuf *out);

/* Label values as an array literal: metrics_inc(f, METRIC_LABELS("assign"), 1). */
#define METRIC_LABELS(...) ((const char *const[]){__VA_ARGS__})

/* Monotonic clock in seconds, for durations. */
double metrics_clock(void);

#endif
