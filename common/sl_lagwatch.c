/* sl_lagwatch: periodic lag reads on a background thread. */
#include "sl_lagwatch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sl_log.h"

/* How long one broker call of a read may take. */
#define LAGWATCH_CALL_MS 5000

struct sl_lagwatch {
    struct sl_lag_group groups[SL_LAG_MAX_GROUPS];
    size_t n_groups;
    long long interval_ms;
    sl_lag_t *reader;
    sl_metric_t *m_lag, *m_age;
    sl_series_t *m_errors;
    struct sl_lag_partition parts[SL_LAG_MAX_PARTITIONS];
    _Atomic long long total;
    bool failing; /* the last read failed (logged once) */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping, started;
    pthread_t thread;
};

/* Reads every group once (a group that fails does not keep the others from being read);
 * -1 with *err (the first failure) when one failed: *total is not known then. */
static int read_all(sl_lagwatch_t *w, long long *total, struct sl_err *err)
{
    int rc = 0;
    *total = 0;
    for (size_t g = 0; g < w->n_groups; g++) {
        const struct sl_lag_group *grp = &w->groups[g];
        struct sl_err e = {0};
        size_t n;
        if (sl_lag_read(w->reader, grp, LAGWATCH_CALL_MS, w->parts, SL_LAG_MAX_PARTITIONS, &n,
                        &e) != 0) {
            if (rc == 0)
                *err = e;
            rc = -1;
            if (w->m_errors)
                sl_series_add(w->m_errors, 1);
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            const struct sl_lag_partition *p = &w->parts[i];
            *total += p->lag;
            if (!w->m_lag)
                continue;
            char partition[16];
            snprintf(partition, sizeof(partition), "%d", (int)p->partition);
            const char *const labels[] = {grp->stage, grp->group, grp->topic, partition,
                                          grp->destination};
            sl_series_set(sl_metric_series(w->m_lag, labels), (double)p->lag);
            if (p->age_seconds >= 0)
                sl_series_set(sl_metric_series(w->m_age, labels), p->age_seconds);
        }
    }
    return rc;
}

static void *run(void *arg)
{
    sl_lagwatch_t *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stopping) {
        pthread_mutex_unlock(&w->mu);
        struct sl_err err = {0};
        long long total;
        if (read_all(w, &total, &err) == 0) {
            atomic_store(&w->total, total);
            if (w->failing)
                SL_INFO("consumer lag: the broker answers again");
            w->failing = false;
        } else {
            atomic_store(&w->total, -1);
            if (!w->failing)
                SL_WARN("consumer lag cannot be read: %s (logged once until it can)", err.msg);
            w->failing = true;
        }
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += w->interval_ms / 1000;
        until.tv_nsec += (w->interval_ms % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_mutex_lock(&w->mu);
        while (!w->stopping && pthread_cond_timedwait(&w->cv, &w->mu, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

sl_lagwatch_t *sl_lagwatch_start(const struct sl_lagwatch_opts *opts, struct sl_err *err)
{
    if (opts->n_groups == 0 || opts->n_groups > SL_LAG_MAX_GROUPS) {
        sl_err_set(err, SL_ERR_INVALID, "lag watcher: %zu groups", opts->n_groups);
        return NULL;
    }
    sl_lagwatch_t *w = calloc(1, sizeof(*w));
    if (!w) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    memcpy(w->groups, opts->groups, opts->n_groups * sizeof(*opts->groups));
    w->n_groups = opts->n_groups;
    w->interval_ms = opts->interval_ms;
    atomic_init(&w->total, -1);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (opts->metrics) {
        static const char *const labels[] = {"stage",     "group",       "topic",
                                             "partition", "destination", NULL};
        w->m_lag = sl_metrics_gauge(opts->metrics, "sluice_consumer_lag",
                                    "Records the consumer group has still to consume, read from "
                                    "the broker (committed offset to last stable offset).",
                                    labels);
        w->m_age = sl_metrics_gauge(opts->metrics, "sluice_consumer_lag_seconds",
                                    "Age of the oldest record the group has still to consume "
                                    "(0 when none).",
                                    labels);
        sl_metric_t *errors =
            sl_metrics_counter(opts->metrics, "sluice_lag_exporter_errors_total",
                               "Lag reads that failed (the broker did not answer).", NULL);
        if (!w->m_lag || !w->m_age || !errors) {
            sl_err_set(err, SL_ERR_NOMEM, "lag watcher: cannot register its metrics");
            goto fail;
        }
        w->m_errors = sl_metric_series(errors, NULL);
    }
    if (!(w->reader = sl_lag_new(opts->kafka, opts->client_id, err)))
        goto fail;
    if (pthread_create(&w->thread, NULL, run, w) != 0) {
        sl_err_set(err, SL_ERR_INTERNAL, "lag watcher: cannot start its thread");
        goto fail;
    }
    w->started = true;
    return w;
fail:
    sl_lagwatch_stop(w);
    return NULL;
}

long long sl_lagwatch_total(const sl_lagwatch_t *w)
{
    return atomic_load(&w->total);
}

void sl_lagwatch_stop(sl_lagwatch_t *w)
{
    if (!w)
        return;
    if (w->started) {
        pthread_mutex_lock(&w->mu);
        w->stopping = true;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
    }
    sl_lag_destroy(w->reader);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
