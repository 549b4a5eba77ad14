/*
 * prom: the Prometheus text exposition format (version 0.0.4) as sluice's binaries write it,
 * read back into samples, for the overview's scrape of each stage's /metrics. Pure: no I/O.
 *
 * A sample line is `name{label="value",...} number`; comments, blank lines and lines that do
 * not parse are skipped. Label values are unescaped (\\, \", \n). Bounded: at most
 * ADM_PROM_SAMPLES_MAX samples and ADM_PROM_LABELS_MAX labels per sample are kept.
 */
#ifndef ADM_PROM_H
#define ADM_PROM_H

#include <stdbool.h>
#include <stddef.h>

#define ADM_PROM_SAMPLES_MAX 20000
#define ADM_PROM_LABELS_MAX  8

typedef struct adm_prom adm_prom_t;

/* The samples of `text`; NULL when out of memory. The caller destroys them. */
adm_prom_t *adm_prom_parse(const char *text);
void adm_prom_destroy(adm_prom_t *p);

/* The sum of the samples named `name` whose labels include every pair of `match` (name, value,
 * ..., NULL; NULL matches all). *found (may be NULL): whether any sample matched. */
double adm_prom_sum(const adm_prom_t *p, const char *name, const char *const *match, bool *found);

/* Calls `cb` with the value of label `label` of each sample named `name` that matches `match`
 * (as adm_prom_sum) and the sample's value. */
void adm_prom_each(const adm_prom_t *p, const char *name, const char *const *match,
                   const char *label, void (*cb)(void *opaque, const char *v, double value),
                   void *opaque);

/* The q-quantile (0 < q < 1) of histogram `name` (its `name`_bucket samples matching `match`),
 * interpolated linearly within the bucket as Prometheus's histogram_quantile does; -1 when
 * there are no observations. */
double adm_prom_quantile(const adm_prom_t *p, const char *name, const char *const *match, double q);

#endif
