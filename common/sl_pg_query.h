/*
 * sl_pg_query: what sluicectl reads from the audit database (schemas/sql/), and the audit
 * partitions' upkeep.
 *
 * Each query is one statement that has Postgres build the JSON, returned as a jansson value
 * owned by the caller (json_decref). Timestamps are RFC 3339 strings in UTC
 * ("2026-11-24T17:30:00.123456+00:00"); jsonb columns come back as JSON; bytea as base64
 * strings. Members that are NULL in the database are JSON null. Listings are bounded
 * (SL_PG_ROWS_MAX rows at most).
 */
#ifndef SL_PG_QUERY_H
#define SL_PG_QUERY_H

#include <jansson.h>

#include "sl_err.h"
#include "sl_pg.h"

#define SL_PG_ROWS_MAX 10000

/* Runs `sql`, which returns at most one row of one JSON value (of any type), and parses it
 * into *out (the caller's). No row (or NULL) is SL_ERR_NOT_FOUND. For the read models built on
 * this module's conventions (ops/). */
int sl_pg_query_json(sl_pg_t *pg, const char *sql, int nparams, const char *const *params,
                     json_t **out, struct sl_err *err) __attribute__((warn_unused_result));

/* ---- audit partitions (daily, UTC) ---- */

/* Creates the partitions of today and the `ahead` days after it that are missing (0 <= ahead
 * <= 365); *created (may be NULL) counts those it made. */
int sl_pg_audit_partitions_ensure(sl_pg_t *pg, int ahead, int *created, struct sl_err *err)
    __attribute__((warn_unused_result));
/* Retention: drops the partitions whose whole day is more than `retain` days ago (retain >= 1):
 * every row younger than `retain` days stays. *dropped: an array of the names dropped. */
int sl_pg_audit_partitions_drop(sl_pg_t *pg, int retain, json_t **dropped, struct sl_err *err)
    __attribute__((warn_unused_result));
/* The partitions, oldest first: [{"name", "day" ("YYYY-MM-DD"), "rows" (the planner's
 * estimate; null before the first ANALYZE)}]. */
int sl_pg_audit_partitions(sl_pg_t *pg, json_t **parts, struct sl_err *err)
    __attribute__((warn_unused_result));

/* ---- reads ---- */

/* Every audit row of one event, in time order (and in pipeline order for equal times):
 * [{"at", "stage", "outcome", "reason", "errors", "source", "type", "destination", "attempt",
 *   "status", "latency_ms", "seconds", "outputs", "detail", "topic", "partition", "offset",
 *   "recorded_at"}]. An unknown event is an empty array. */
int sl_pg_event_timeline(sl_pg_t *pg, const char *event_id, json_t **rows, struct sl_err *err)
    __attribute__((warn_unused_result));

/* Filters of a dead-letter listing; NULL / 0 members do not filter. */
struct sl_pg_dlq_filter {
    const char *source;
    const char *stage;
    const char *status; /* new, replayed, discarded */
    const char *since;  /* received at or after: any timestamptz input, e.g. an RFC 3339 time */
    const char *until;  /* received before */
    const char *destination; /* deliver's letters for this destination (ce_sluicedestination) */
    long long before_id;     /* ids below this one: the next page after a listing's last id */
    int limit;               /* default 100; at most SL_PG_ROWS_MAX */
};

/* Dead letters, newest first: [{"id", "event_id", "source", "type", "stage", "reason",
 * "attempt", "status", "received_at", "topic", "partition", "offset", "payload_size",
 * "replay_count"}]. `f` may be NULL. */
int sl_pg_dead_letters(sl_pg_t *pg, const struct sl_pg_dlq_filter *f, json_t **rows,
                       struct sl_err *err) __attribute__((warn_unused_result));

/* One dead letter in full: the members of the listing plus "errors", "headers", "payload"
 * (base64), "key" (base64 or null), "produced_at", "status_at", "status_by", and "replays" as
 * [{"replayed_by", "replayed_at", "to_stage", "to_topic", "attempt", "partition", "offset"}]
 * oldest first. SL_ERR_NOT_FOUND when there is no such id. */
int sl_pg_dead_letter(sl_pg_t *pg, long long id, json_t **row, struct sl_err *err)
    __attribute__((warn_unused_result));

/* Hourly reconciliation counts with hour >= since (and < until when not NULL), for one source
 * when `source` is not NULL and one destination when `destination` is not NULL, ordered by hour,
 * source, destination: [{"hour", "source", "destination", "accepted", "delivered", "dead_lettered",
 * "filtered", "duplicate", "pending", "stuck", "unexplained", "explanation", "run_id",
 * "updated_at"}]. */
int sl_pg_reconcile_hourly(sl_pg_t *pg, const char *since, const char *until, const char *source,
                           const char *destination, json_t **rows, struct sl_err *err)
    __attribute__((warn_unused_result));

#endif
