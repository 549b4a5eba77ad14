/*
 * sl_metrics: counters, gauges and histograms with labels, rendered in the Prometheus text
 * exposition format (version 0.0.4).
 *
 * A family (sl_metric_t) has a fixed list of label names; a series (sl_series_t) is one
 * combination of label values. Families and series are created once and live as long as the
 * registry; the pointers are stable, so a hot path looks a series up once and keeps it.
 * Updates are lock-free atomics; creating a series takes the family's lock. Each family holds
 * at most SL_METRICS_MAX_SERIES series: past that, sl_metric_series() returns the family's
 * overflow series (label values all "_overflow"), so a label fed from outside input cannot
 * exhaust memory.
 */
#ifndef SL_METRICS_H
#define SL_METRICS_H

#include <stddef.h>

typedef struct sl_metrics sl_metrics_t;
typedef struct sl_metric sl_metric_t;
typedef struct sl_series sl_series_t;

#define SL_METRICS_MAX_SERIES  2000
#define SL_METRICS_MAX_LABELS  6
#define SL_METRICS_MAX_BUCKETS 32
#define SL_METRICS_MAX_RENDER  (32 * 1024 * 1024)

/* Latency buckets in seconds, 0.5 ms .. 60 s. */
extern const double sl_metrics_latency_buckets[];
extern const size_t sl_metrics_latency_buckets_n;

sl_metrics_t *sl_metrics_new(void);
void sl_metrics_destroy(sl_metrics_t *m);

/* `name`, `help` and `labels` must outlive the registry (string literals). `labels` is
 * NULL-terminated, or NULL for none. Returns NULL on a bad name, too many labels, or OOM. */
sl_metric_t *sl_metrics_counter(sl_metrics_t *m, const char *name, const char *help,
                                const char *const *labels);
sl_metric_t *sl_metrics_gauge(sl_metrics_t *m, const char *name, const char *help,
                              const char *const *labels);
/* `bounds`: ascending upper bounds (the +Inf bucket is implicit); copied. */
sl_metric_t *sl_metrics_histogram(sl_metrics_t *m, const char *name, const char *help,
                                  const char *const *labels, const double *bounds, size_t n_bounds);

/* The series for these label values (as many as the family has labels; NULL for none).
 * Values are copied. Never NULL for a valid family (see the overflow series above). */
sl_series_t *sl_metric_series(sl_metric_t *family, const char *const *values);

void sl_series_add(sl_series_t *s, double v);     /* counters (v >= 0) and gauges */
void sl_series_set(sl_series_t *s, double v);     /* gauges */
void sl_series_observe(sl_series_t *s, double v); /* histograms */
double sl_series_value(const sl_series_t *s);     /* counter/gauge value; histogram count */

/* Called at the start of every render, to refresh gauges computed on demand. */
typedef void (*sl_metrics_collect_cb)(void *opaque);
int sl_metrics_on_collect(sl_metrics_t *m, sl_metrics_collect_cb cb, void *opaque);

/* Notes about the process that are not numbers (e.g. "redis persistence: none"), which the
 * admin listener shows as /readyz's detail; at most SL_METRICS_MAX_NOTES keys, each text cut
 * to SL_METRICS_NOTE_MAX - 1 bytes. `text` NULL removes the key's note. Thread-safe. */
#define SL_METRICS_MAX_NOTES 4
#define SL_METRICS_NOTE_MAX  256
void sl_metrics_note_set(sl_metrics_t *m, const char *key, const char *text);
/* Every note, "; "-separated, into buf (bounded; "" when none). */
void sl_metrics_notes(sl_metrics_t *m, char *buf, size_t size);

/* The whole registry as Prometheus text; the caller frees it. NULL on OOM. */
char *sl_metrics_render(sl_metrics_t *m, size_t *len);

#endif
