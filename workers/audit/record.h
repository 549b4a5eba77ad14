/*
 * record: one audit record (the JSON value of a record on <prefix>audit, see produce_audit in
 * common/sl_loop.c and sl_audit_build in common/sl_record.h) as the row it becomes in the
 * `audit` table, and the event_status rows it implies. Pure: no I/O, no global state.
 *
 * What a record must hold (anything else is malformed: the stage dead-letters it with the
 * reason that audit_row_parse() gives):
 *   - at most AUDIT_RECORD_MAX bytes of one JSON object (RFC 8259), with the limits that
 *     PostgreSQL's jsonb puts on JSON as well, so that a record taken here is never refused
 *     there: no \u0000 and no lone surrogate in a string, strings of valid UTF-8, at most
 *     AUDIT_NUMBER_MAX characters in a number and an exponent within +-AUDIT_EXPONENT_MAX,
 *     at most AUDIT_DEPTH_MAX levels of nesting;
 *   - "stage", "outcome": non-empty strings; "topic": a string; "partition": an integer in
 *     [-1, 2^31); "offset": an integer;
 *   - "at": an RFC 3339 time ("2026-11-24T17:30:00.123Z", an offset instead of Z, up to 9
 *     fraction digits; years 1970..9999). Absent or null: the Kafka timestamp of the record.
 *     Written as canonical UTC text, so Postgres never refuses it and the same record always
 *     lands in the same daily partition with the same key;
 *   - "event_id", "reason", "source", "type": a string or null; "seconds": a finite number or
 *     null; "outputs": an integer in [0, 2^31) or null; "errors": an array or null; "detail":
 *     an object or null. "errors" and "detail" are stored as the JSON text they are in the
 *     record (Postgres makes them jsonb); members with other names are ignored. A member given
 *     twice counts with its last value, as in jsonb.
 *
 * Why not jansson: a record is read once and written out as text; building and freeing a tree
 * for it, and printing "detail" again, was most of this worker's CPU time. The scanner below
 * reads it in one pass into one block of memory.
 *
 * Columns taken from "detail" when they have the type named here (otherwise they stay in
 * detail only; a stage's detail is its own and never makes a record malformed):
 *   destination  detail.destination, a non-empty string
 *   attempt      detail.attempt, an integer in [0, 2^31)
 *   status       detail.status, an integer in [0, 2^31) (the destination's HTTP status)
 *   latency_ms   detail.latency_ms, a number; else, for a record with an attempt >= 1,
 *                "seconds" x 1000 (sluice-deliver reports the attempt's duration as seconds)
 * This is the contract for a stage that records attempts (sluice-deliver): put destination,
 * attempt and status in detail, and the attempt's duration in seconds (or latency_ms).
 */
#ifndef AUDIT_RECORD_H
#define AUDIT_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sl_err.h"

/* Largest audit record accepted (bytes of JSON). Real ones are well under 10 KiB: the errors
 * of a rejection are capped at 4 KiB, a reason at 1 KiB. */
#define AUDIT_RECORD_MAX 65536
/* Canonical timestamptz text: "2026-11-24 17:30:00.123456+00" and its NUL, with room. */
#define AUDIT_TIME_MAX 40
/* event_status rows one record implies at most (the destinations of one routing decision;
 * the loop lets an event produce at most 64 records). */
#define AUDIT_STATUS_MAX 64
/* Limits that keep a record within what jsonb takes (see above). */
#define AUDIT_DEPTH_MAX    64
#define AUDIT_NUMBER_MAX   1000
#define AUDIT_EXPONENT_MAX 1000
/* How far before a record's "at" the time inside a UUIDv7 event id may lie and still be taken
 * as the event's acceptance time (a dead letter replayed weeks later keeps its own). */
#define AUDIT_ACCEPTED_LOOKBACK_DAYS 30

struct audit_row {
    char *text; /* owns every string below (one block) */
    char at[AUDIT_TIME_MAX];
    /* When ingress accepted the event, as well as this record tells: the time inside a UUIDv7
     * event id (sluice-ingress makes them) when it lies within the lookback before "at", else
     * "at". "" when there is no event id. */
    char accepted[AUDIT_TIME_MAX];
    const char *event_id, *stage, *outcome, *reason, *source, *type, *topic;
    const char *errors, *detail; /* JSON text as in the record; NULL: none */
    const char *destination;     /* NULL: none (see above) */
    const char *route;           /* detail.routes when it names exactly one route */
    /* detail.destinations: its non-empty strings (at most AUDIT_STATUS_MAX), each with its
     * NUL, one after the other. */
    const char *destinations;
    size_t n_destinations;
    int32_t partition;
    int64_t offset;
    bool has_seconds, has_outputs, has_attempt, has_status, has_latency;
    double seconds, latency_ms;
    int32_t outputs, attempt, status;
};

/* One event_status row that a record implies: the destination ("" for the event before any
 * route chose one) and the state (a string constant). */
struct audit_status {
    const char *destination;
    const char *state;
};

/* Parses `len` bytes of `data` into *row. `timestamp_ms` is the record's Kafka timestamp (-1
 * unknown), used when the record has no "at". 0, or -1 with *err (SL_ERR_INVALID, one line
 * that says what is wrong, for the dead letter's reason); *row needs audit_row_free() only
 * after a success. */
int audit_row_parse(struct audit_row *row, const void *data, size_t len, int64_t timestamp_ms,
                    struct sl_err *err) __attribute__((warn_unused_result));
void audit_row_free(struct audit_row *row);

/* The event_status rows that `row` implies (the rules are in audit.h) into out (room for
 * AUDIT_STATUS_MAX); returns how many. The strings are borrowed from the row. */
size_t audit_row_status(const struct audit_row *row, struct audit_status *out);

/* Parses an RFC 3339 time into microseconds since the Unix epoch. 0, or -1 when it is not
 * one (or lies outside the years 1970..9999). */
int audit_time_parse(const char *s, int64_t *us);
/* Formats microseconds since the epoch as canonical UTC text into buf (AUDIT_TIME_MAX). */
void audit_time_format(int64_t us, char *buf, size_t size);

#endif
