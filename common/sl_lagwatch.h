/*
 * sl_lagwatch: a background thread that reads consumer groups' lag (sl_lag) every interval,
 * for the binaries that watch lag from the outside: sluice-reconcile exports every group of the
 * pipeline on its /metrics, sluice-ingress reads validate's group for admission control. The
 * broker is asked on that thread only, never on a caller's path.
 *
 * With a metrics registry, each read sets, per group and partition:
 *   sluice_consumer_lag{stage,group,topic,partition,destination}          records to consume
 *   sluice_consumer_lag_seconds{stage,group,topic,partition,destination}  age of the oldest of
 *       them (0 when none; left as it was when it could not be fetched)
 * destination is the deliver group's destination, empty (no label, to Prometheus) for the
 * stages. A group whose read fails counts in sluice_lag_exporter_errors_total and keeps its
 * series at their last values; the other groups are read all the same. The first failure is logged
 * (a warning), the recovery too; failures in between are only counted.
 *
 * sl_lagwatch_total() is the sum of every watched group's lag at the last read, or -1 while
 * that is unknown (no read finished yet, or the last one failed).
 */
#ifndef SL_LAGWATCH_H
#define SL_LAGWATCH_H

#include <stddef.h>

#include "sl_err.h"
#include "sl_kafka.h"
#include "sl_lag.h"
#include "sl_metrics.h"

typedef struct sl_lagwatch sl_lagwatch_t;

struct sl_lagwatch_opts {
    const struct sl_kafka_settings *kafka; /* borrowed: outlives the watcher */
    const struct sl_lag_group *groups;     /* copied */
    size_t n_groups;                       /* 1 .. SL_LAG_MAX_GROUPS */
    long long interval_ms;                 /* between the end of a read and the next */
    const char *client_id; /* of its Kafka client (and the group.id it never joins) */
    sl_metrics_t *metrics; /* borrowed; NULL: no series, only the total */
};

/* Starts the thread (its first read at once). NULL with *err when the client, the metric
 * families or the thread cannot be made. The caller owns it (sl_lagwatch_stop). */
sl_lagwatch_t *sl_lagwatch_start(const struct sl_lagwatch_opts *opts, struct sl_err *err)
    __attribute__((warn_unused_result));

/* Any thread. */
long long sl_lagwatch_total(const sl_lagwatch_t *w);

/* Stops the thread (after the broker call under way, if any) and frees. NULL is a no-op. */
void sl_lagwatch_stop(sl_lagwatch_t *w);

#endif
