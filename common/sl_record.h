/*
 * sl_record: the records every stage writes besides its output, in one shape whatever the
 * stage wrote them: the audit record (<prefix>audit) and the dead letter (<prefix>dlq). The
 * transactional loop and sluice-deliver both build them here, so that sluice-audit and
 * sluice-deadletter read one format.
 *
 * Audit record: key = the event id; value = one JSON object
 *
 *   {"event_id", "stage", "outcome", "source", "type", "topic", "partition", "offset", "at",
 *    "seconds", "reason"?, "errors"?, "outputs"?, "detail"?}
 *
 * (source is the event's `sluicesource`, else its `source`); headers: a CloudEvent of its own,
 * id a new UUIDv7, source "sluice/<stage>", type "sluice.audit", time = at, content-type
 * application/json.
 *
 * Dead letter: the original record's key, payload and headers, plus the extensions
 * ce_sluicestage, ce_sluicereason and ce_sluiceerrors (a JSON array of strings; bounded by
 * SL_RECORD_ERRORS_MAX bytes: trailing errors are dropped and a last "... and N more" counts
 * them), replacing any that an earlier dead-lettering left.
 */
#ifndef SL_RECORD_H
#define SL_RECORD_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdint.h>

#include "sl_cloudevent.h"
#include "sl_err.h"

#define SL_RECORD_ERRORS_MAX 4096 /* bytes of the ce_sluiceerrors header */
#define SL_RECORD_TIME_MAX   40   /* "2026-11-24T17:30:00.123Z" and its NUL, with room */

struct sl_audit {
    const char *stage;      /* required */
    const struct sl_ce *ce; /* the event's attributes; NULL when it is not a CloudEvent */
    const char *topic;      /* where the event was read */
    int32_t partition;
    int64_t offset;
    const char *outcome;  /* required: passed, dead_lettered, delivered, retry, ... */
    double seconds;       /* time the stage spent on it (for deliver: the attempt) */
    const char *reason;   /* NULL or "" for none */
    const json_t *errors; /* an array of strings; NULL or empty for none */
    long long outputs;    /* records produced; < 0: not reported */
    const json_t *detail; /* an object; NULL or empty for none */
};

/* The audit record of `a`: *value (JSON, *len bytes; the caller frees it) and *hdrs (the
 * caller owns them). 0, or -1 with *err. */
int sl_audit_build(const struct sl_audit *a, char **value, size_t *len, rd_kafka_headers_t **hdrs,
                   struct sl_err *err);

/* The headers of a dead letter: a copy of `orig` (NULL: none) with the stage, the reason and
 * the errors (NULL or empty: no header) set as above; `dropped` errors were already left out
 * by the caller. The caller owns the result. */
rd_kafka_headers_t *sl_dead_letter_headers(const rd_kafka_headers_t *orig, const char *stage,
                                           const char *reason, const json_t *errors,
                                           size_t dropped);

/* The CloudEvents headers of a record a stage writes about an event (an audit record, a
 * delivery outcome): id a new UUIDv7, source "sluice/<stage>", `type`, time `at`,
 * content-type application/json. *hdrs: the caller owns them. 0, or -1 with *err. */
int sl_record_headers(const char *stage, const char *type, const char *at,
                      rd_kafka_headers_t **hdrs, struct sl_err *err);

/* The current UTC time as "2026-11-24T17:30:00.123Z" into buf (SL_RECORD_TIME_MAX bytes). */
void sl_record_time(char *buf, size_t size);

#endif
