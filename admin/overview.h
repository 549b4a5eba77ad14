/*
 * overview: GET /api/v1/overview, the pipeline at a glance (README, "Admin API and console").
 *
 * Stages: each binary's admin listener is scraped (/readyz, then /metrics, each with a short
 * deadline); the addresses are admin.stages, by default each binary's default listener
 * (ingress 127.0.0.1:9180 ... reconcile 127.0.0.1:9187). Rates are per second between this
 * scrape and the previous one the overview kept (null on the first); errors and latency are
 * totals since each process started. Lag is the broker's, as sluice-reconcile exports it
 * (sluice_consumer_lag), else the stage's own view (sluice_replica_lag). A stage that cannot be
 * scraped is ready: false with the reason; the overview itself never fails for it. Destinations:
 * the pipeline file's, with sluice-deliver's metrics (attempts by result, success ratio, latency
 * p50/p95 from its histogram, circuit, events held) and the operator's pause from Redis. Dead
 * letters, stuck events and today's books (UTC day) come from PostgreSQL; when a dependency is down
 * its part is null and "unavailable" names it.
 */
#ifndef ADM_OVERVIEW_H
#define ADM_OVERVIEW_H

#include <jansson.h>

#include "sl_conf.h"
#include "sl_err.h"
#include "sl_pg.h"
#include "sl_redis.h"

#define ADM_OVERVIEW_STAGES_MAX 32

typedef struct adm_overview adm_overview_t;

/* The stages and destinations of `conf` (borrowed: it must outlive the overview). NULL with
 * *err for a bad admin.stages address. */
adm_overview_t *adm_overview_new(const sl_conf_t *conf, struct sl_err *err)
    __attribute__((warn_unused_result));
void adm_overview_destroy(adm_overview_t *o);

/* The overview document into *doc (the caller's). `pg` and `redis` may fail to connect: their
 * parts are then null. `key_prefix` is the Redis key prefix. Thread-safe. 0, or -1 when out of
 * memory. */
int adm_overview_build(adm_overview_t *o, sl_pg_t *pg, sl_redis_t *redis, const char *key_prefix,
                       json_t **doc);

#endif
