/*
 * deliver: the engine of sluice-deliver. One thread runs one event loop for every destination
 * it serves: the Kafka consumers, every HTTP request (libcurl multi), the retry timers, the
 * Redis calls and the producer of outcome, audit and dead-letter records.
 *
 * An event's way through (each arrow is one step of the loop; none blocks on the network
 * except the short Redis round trips, which are batched):
 *
 *   record ─► ledger check ──────► (per-key: behind an earlier event of its key) ─► ready
 *               │ already delivered: outcome "delivered" again (ledger), nothing sent
 *   ready ─► circuit closed? fleet hold over? rate-limit token? credentials? free slot?
 *         ─► attempt (HTTP) ─► 2xx ─► ledger mark ─► outcome ─► acked ─► offset committable
 *                           ├► retriable ─► backoff timer (Retry-After on 429/503) ─► ready
 *                           │              or, out of attempts or age, dead letter
 *                           └► permanent ─► dead letter + outcome ─► acked ─► committable
 *
 * Every attempt writes an audit record (its time, status, latency, error, attempt number);
 * every final outcome writes a record to <prefix>outcomes:
 *
 *   {"event_id", "destination", "outcome": "delivered"|"dead_lettered", "attempts",
 *    "last_status", "at", "reason"?, "ledger"?: true}
 *
 * and a dead letter carries the original record plus ce_sluicestage "deliver", the reason (the
 * last status or error), ce_sluiceerrors ["attempt N: HTTP 500: <response body, at most
 * DLV_BODY_KEPT bytes>"], ce_sluiceattempt and ce_sluicedestination. A record's offset becomes
 * committable only once all of its records are acknowledged by Kafka (and, when delivered,
 * the ledger holds it), so a crash at any point sends an event again at most when its 2xx had
 * not been recorded yet; the Idempotency-Key lets the destination recognise that one.
 *
 * What a destination receives, on every attempt:
 *   Idempotency-Key: <scoped id>:<destination>    (stable across retries, replays, restarts)
 *   Content-Type: the event's datacontenttype (application/json when it has none)
 *   ce-specversion, ce-id, ce-source, ce-type, ce-time: the CloudEvents attributes (binary mode)
 *   traceparent: the event's trace context, when it has one
 *   webhook-id, webhook-timestamp, webhook-signature: Standard Webhooks, when `sign` is set
 *     (webhook-id is the Idempotency-Key: receivers of that scheme deduplicate on it)
 *   the credential header of `auth`, and the destination's own `headers`
 *   User-Agent: sluice-deliver/<version>
 * and as body the event's data, byte for byte.
 *
 * Identity. CloudEvents ids are unique only within their source, so the Idempotency-Key and
 * the delivery ledger use the scoped id, sl_ce_scoped_id() of (ce_sluicesource, ce_source,
 * ce_id): 32 hex digits. Equal ids from two sources are two events, each sent once. The ledger
 * key is "<key prefix>deliver.<destination>:ledger:<scoped id>"; the rate-limit bucket and the
 * fleet-wide hold are "<key prefix>deliver.<destination>:bucket" and ":hold". The key prefix is
 * redis.key_prefix, by default kafka.topic_prefix (sl_redis_key_prefix), so the keys are the
 * deliver topic's name unless two pipelines that share a Redis set their own.
 *
 * Upgrade from the unscoped ledger (issue 11). Earlier builds keyed the ledger by the bare
 * event id, "<deliver topic>:ledger:<event id>", and sent "<event id>:<destination>". The
 * ledger check asks for both keys in one EXISTS and the mark writes the scoped key only, so an
 * event delivered before the upgrade is not sent again for one ledger_ttl. The old key can be
 * dropped from the check once every deliver has run this version for longer than the largest
 * ledger_ttl (default 7 days): the old keys have expired by then. Events sent by both versions
 * (a record redelivered across the upgrade while not yet in the ledger) reach the destination
 * with the old and then the new Idempotency-Key: once, at the upgrade.
 *
 * Redis is needed for the ledger, the rate-limit bucket and the fleet-wide hold. When it does
 * not answer, deliver fails closed: nothing is sent (an unchecked ledger could send an event
 * twice, a missing token could break a rate limit), events wait in memory, /readyz says why,
 * and the calls are retried with a backoff up to DLV_REDIS_BACKOFF_MAX_MS.
 *
 * SIGTERM: consumption stops, events not in flight are dropped from memory (their offsets are
 * not committed: the next owner reads them), retries are not started, the requests in flight
 * finish (each bounded by its timeout), their outcomes are recorded and acknowledged, the
 * finished offsets are committed, the consumers leave their groups. Bounded by the longest
 * destination timeout plus the Kafka produce timeout.
 *
 * Threading: everything runs on the thread of dlv_engine_run(), except dlv_engine_ready()
 * (the admin thread), which takes the engine's lock. Metrics are atomics.
 */
#ifndef DLV_DELIVER_H
#define DLV_DELIVER_H

#include <stdbool.h>
#include <stddef.h>

#include "sl_conf.h"
#include "sl_err.h"
#include "sl_kafka.h"
#include "sl_live.h"
#include "sl_metrics.h"

#define DLV_BODY_KEPT            2048 /* response bytes kept for a dead letter */
#define DLV_REDIS_BACKOFF_MIN_MS 100
#define DLV_REDIS_BACKOFF_MAX_MS 5000
#define DLV_HOLD_POLL_MS         250 /* how often the fleet-wide hold is read while sending */
#define DLV_REDIS_BATCH          512 /* ledger checks or marks in one round trip */
#define DLV_POLL_BATCH           500 /* records taken from one consumer per loop turn */
#define DLV_DESTINATIONS_MAX     64  /* destinations served by one process */

typedef struct dlv_engine dlv_engine_t;

struct dlv_engine_opts {
    const sl_conf_t *conf;
    const struct sl_kafka_settings *kafka;
    /* The destinations to serve (names in the pipeline file); none: every one. */
    const char *const *destinations;
    size_t n_destinations;
    const char *instance_id; /* static group membership when set */
    sl_metrics_t *metrics;
    sl_live_t *live; /* beaten at every turn of dlv_engine_run's loop; may be NULL */
};

/* Loads the destinations, connects nothing yet (Kafka clients are created, Redis is lazy).
 * Borrows everything in opts. Config errors name file, line and key. */
dlv_engine_t *dlv_engine_new(const struct dlv_engine_opts *opts, struct sl_err *err)
    __attribute__((warn_unused_result));
/* Runs until SIGTERM (sl_signal_stopping) and a clean drain: 0; or until a fatal error (Kafka
 * refused a record, out of memory): -1 with *err, after draining what it can. */
int dlv_engine_run(dlv_engine_t *e, struct sl_err *err);
/* For /readyz: false while Redis or a token endpoint fails, or while draining. */
bool dlv_engine_ready(void *e, char *why, size_t why_size);
void dlv_engine_destroy(dlv_engine_t *e);

#endif
