/*
 * ops_events: the events of the audit database as an operator sees them, for `sluicectl events`
 * and sluice-admin's /api/v1/events.
 *
 * An event's story (ops_event_story) is one document:
 *   {"event_id", "source", "type", "timeline": [audit rows as sl_pg_event_timeline gives them],
 *    "dead_letters": [{"id", "stage", "reason", "errors", "attempt", "status", "received_at",
 *                      "status_at", "status_by", "destination", "replays": [...]}],
 *    "event_status": [{"destination", "state", "route", "accepted_at", "terminal_at",
 *                      "stuck_at"}],
 *    "destinations": [{"destination", "outcome", "attempts", "last_status", "at", "state"}]}
 * Per destination the outcome is what the last deliver row for it says (delivered, retry ->
 * "retrying", dead_lettered, duplicate -> delivered by the ledger), "pending" for a destination
 * that a route chose and no deliver row names yet; event_status's state is shown beside it when
 * present. An event that a stage before deliver filtered, deduplicated or dead-lettered (and
 * that no later row took further) has the destination "" (the event as a whole).
 *
 * The listing (ops_events_list) is event_status, one row per event and destination, newest
 * accepted first, one page at a time: keyset pagination on (accepted_at, event_id, destination)
 * with an opaque cursor, so pages stay stable while new events arrive. State "stuck" lists the
 * events still pending that sluice-reconcile reported stuck.
 */
#ifndef OPS_EVENTS_H
#define OPS_EVENTS_H

#include <jansson.h>

#include "sl_err.h"
#include "sl_pg.h"

#define OPS_LIMIT_DEFAULT 50
#define OPS_LIMIT_MAX     500
#define OPS_CURSOR_MAX    512 /* bytes of a cursor's text */

/* The story of event `id`; SL_ERR_NOT_FOUND when the database knows nothing of it. *doc is the
 * caller's. */
int ops_event_story(sl_pg_t *pg, const char *id, json_t **doc, struct sl_err *err)
    __attribute__((warn_unused_result));

/* Filters of the listing; NULL members do not filter. Times: any timestamptz input (RFC 3339). */
struct ops_event_filter {
    const char *source, *type, *destination;
    const char *state;  /* pending, delivered, dead_lettered, filtered, duplicate, or stuck */
    const char *since;  /* accepted at or after */
    const char *until;  /* accepted before */
    const char *q;      /* the event id, or the source's own id (the idempotency key) */
    const char *cursor; /* next_cursor of the previous page */
    int limit;          /* 0: OPS_LIMIT_DEFAULT; at most OPS_LIMIT_MAX */
};

/* Checks the filter's values (state, limit, cursor) without the database: SL_ERR_INVALID naming
 * the parameter, so that a caller can tell a bad request from a failing database. */
int ops_event_filter_check(const struct ops_event_filter *f, struct sl_err *err);

/* One page: {"items": [{"event_id", "source", "type", "destination", "state", "route",
 * "accepted_at", "terminal_at", "stuck_at"}], "next_cursor": text or null}. Checks the filter
 * first (ops_event_filter_check). */
int ops_events_list(sl_pg_t *pg, const struct ops_event_filter *f, json_t **page,
                    struct sl_err *err) __attribute__((warn_unused_result));

#endif
