/*
 * reconcile: one reconciliation run of sluice-reconcile (rec_run), every `reconcile.interval`.
 *
 * Sources. Everything comes from PostgreSQL: the audit trail (`audit`, written by sluice-audit
 * from <prefix>audit) and event_status (kept by sluice-audit from the same records). The
 * worker does NOT consume <prefix>outcomes: sluice-deliver writes every final outcome twice,
 * as an audit record (outcome delivered / dead_lettered / duplicate with detail.destination)
 * and as an outcome record, from the same event with the same producer before it commits the
 * offset, so the audit trail already holds each final outcome, and sluice-audit applies it to
 * event_status with its order-proof rules (workers/audit/audit.h). A second writer of the same
 * rows from a second copy of the same facts would add a race and a second watermark, and
 * prove nothing the audit trail does not.
 *
 * What a run does, in ONE transaction under an advisory lock (two replicas, or a restart that
 * overlaps the old process, take turns):
 *   1. The watermark: audit rows recorded (recorded_at) in (read_from, read_to], read_from =
 *      the last successful run's read_to minus `reconcile.overlap`, read_to = now(). Every
 *      write below is an idempotent upsert, so rows read twice (the overlap, a run rolled
 *      back, a second replica) change nothing.
 *   2. The book of acceptances, independent of event_status (schemas/sql/0004): every event
 *      with an audit record of stage validate (one for every record on <prefix>ingress,
 *      whatever validate decided) into reconcile_events with its acceptance time
 *      (sluice_accepted_at, the rule sluice-audit uses), and the destinations of every passed
 *      record naming detail.destinations (route's decision) into reconcile_routed.
 *   3. event_status for what sluice-audit cannot see: an accepted event that no stage has
 *      decided about yet (passed validate, not yet routed) gets its pending row with
 *      destination ''; that row goes once the event has a row for a destination.
 *   4. Stuck: pending pairs accepted longer than `reconcile.deadline` ago get stuck_at = now()
 *      (once). For each newly stuck pair, one alert event (below), unless the pair is itself
 *      an alert (its destination is the broken one; it counts as stuck all the same).
 *   5. DLQ growth: dead_letters rows with an id above the last run's; more than
 *      `reconcile.alerts.dlq_growth` of them: one alert event. The first run only takes the
 *      baseline.
 *   5b. Circuits sluice-deliver opened (below): one alert each.
 *   6. reconcile_hourly for every UTC hour of acceptance that this run touched (events with
 *      audit rows read in step 1, pairs that got stuck or left pending) and every hour with a
 *      pending pair: accepted = pairs of the book of step 2 (each routed destination, else
 *      ''), the state columns = event_status; `unexplained` is their difference, and
 *      `explanation` says which side has pairs the other lacks. Rows of those hours that no
 *      longer have pairs are deleted.
 *   7. A reconcile_runs row (balanced when no recomputed hour has a difference).
 *   8. The alerts are produced and flushed (acked) before the COMMIT; if that fails, the run
 *      rolls back and the next run sends them again with the same ids.
 *
 * Alerts are CloudEvents (source sluice/reconcile, type sluice.alert.stuck or
 * sluice.alert.dlq_growth, data JSON describing it) produced to
 * <prefix>deliver.<reconcile.alerts.destination>, so sluice-deliver gives them its retries,
 * rate limit, ledger and DLQ. An alert's id is derived from what it is about (md5 of the stuck
 * pair, or of the DLQ id range), so an alert sent again after a rolled-back run is the same
 * event to deliver's ledger: sent once. Each alert is booked as an event that reconcile
 * accepted (reconcile_events, reconcile_routed, a pending event_status row), so the books of
 * the alerts balance as well. An open circuit: sluice-deliver writes an audit record of
 * outcome circuit_open (no event; detail.destination) when a destination's circuit opens;
 * each such record read in the window is one sluice.alert.circuit_open (its id derived from
 * the record's position), except for the alert destination's own circuit.
 *
 * Metrics: sluice_reconcile_stuck_events (gauge: pending pairs past the deadline),
 * sluice_reconcile_unexplained (gauge: sum of |unexplained| over the hours of the last run),
 * sluice_reconcile_runs_total{status}, sluice_reconcile_alerts_total{type},
 * sluice_reconcile_run_seconds.
 *
 * Threads: rec_run() on one thread; rec_ready() may be called from the admin thread.
 */
#ifndef RECONCILE_H
#define RECONCILE_H

#include <stdbool.h>
#include <stddef.h>

#include "sl_conf.h"
#include "sl_err.h"
#include "sl_kafka.h"
#include "sl_metrics.h"

#define REC_SOURCE     "sluice/reconcile"
#define REC_ADMIN_PORT 9187
#define REC_FLUSH_MS   30000 /* how long a run waits for its alerts' acks */
#define REC_ALERTS_MAX 10000 /* alerts one run sends at most; the rest wait for the next */
#define REC_ALERT_MAX  2048  /* bytes of one alert's data */

/* The `reconcile` section. `alert_topic` is "" when alerts are off. */
struct rec_settings {
    long long interval_ms, deadline_ms, overlap_ms, dlq_growth;
    long long lag_interval_ms; /* the lag exporter's (main.c) */
    char alert_destination[128];
    char alert_topic[SL_TOPIC_NAME_MAX];
};

/* Reads and checks the section (alerts.destination must name a configured destination). */
int rec_settings_load(const sl_conf_t *conf, const struct sl_kafka_settings *kafka,
                      struct rec_settings *s, struct sl_err *err)
    __attribute__((warn_unused_result));

typedef struct rec rec_t;

/* A reconciler writing through `dsn` and producing alerts with `kafka` (both copied or
 * borrowed for the handle's life: `kafka` must outlive it), registering its metrics in `m`.
 * Does not connect. The caller owns the handle (rec_destroy). */
rec_t *rec_new(const struct rec_settings *s, const struct sl_kafka_settings *kafka, const char *dsn,
               sl_metrics_t *m, struct sl_err *err) __attribute__((warn_unused_result));
/* One run (see above). 0, or -1 with *err (retriable: Postgres or Kafka unavailable; the run
 * was rolled back and the next one does its work). */
int rec_run(rec_t *r, struct sl_err *err) __attribute__((warn_unused_result));
/* For /readyz: whether the last run succeeded; why not into `why`. */
bool rec_ready(void *opaque, char *why, size_t size);
/* NULL is a no-op. */
void rec_destroy(rec_t *r);

#endif
