/*
 * envelope: turns one verified HTTP request into the CloudEvents record that sluice-ingress
 * writes to <prefix>ingress (Kafka protocol binding, binary content mode). Pure: no I/O; the
 * caller passes the request's parts and the receiving time.
 *
 * Three request forms, one record shape:
 *   plain webhook   any JSON body. id = a new UUIDv7; source = the source's name; type = the
 *                   value at the source's event_type (else "<source>.event"); idempotencykey = the
 *                   value at event_id (else the new id).
 *   CE binary       Content-Type JSON plus ce-* headers: the attributes as given; the body is the
 *                   data; idempotencykey = the CloudEvents id. Only where source_binary_allowed():
 *                   elsewhere 400 unsigned_attributes (no signature covers headers). A signing
 *                   source that opted in keeps its signed event_id, when set, as idempotencykey.
 *   CE structured   application/cloudevents+json: the attributes as given; the data is `data`
 *                   (compacted) or `data_base64` (decoded) and must be JSON.
 * Every record also carries: specversion 1.0, time (the event's, else the receiving time, RFC
 * 3339 UTC with milliseconds), datacontenttype (-> content-type header), traceparent (the
 * request's `traceparent` header when valid, else a valid one from the CloudEvent, else a new
 * trace), partitionkey and sluicesource (the source's name, whatever the event says, because
 * the validate stage picks schemas by it).
 *
 * The record key is the partition key: the value at the source's partition_key, else (CE input)
 * the event's own partitionkey attribute, else the idempotency key. The record value is the
 * body exactly as received, except in structured mode (the data). Attribute names reserved for
 * Sluice (sluice*, idempotencykey) are refused in CloudEvents input: they would otherwise let a
 * sender choose, say, which source's schemas apply.
 */
#ifndef SLUICE_ENVELOPE_H
#define SLUICE_ENVELOPE_H

#include <stddef.h>
#include <time.h>

#include "cehttp.h"
#include "sl_cloudevent.h"
#include "sl_err.h"
#include "source.h"

#define ENVELOPE_TIME_LEN 24 /* "2026-11-24T17:30:00.123Z" */

struct envelope_request {
    const source_t *source;
    const char *content_type;            /* the Content-Type header, or NULL */
    const char *traceparent;             /* the traceparent header, or NULL */
    const struct cehttp_header *headers; /* the request's ce-* headers (others are ignored) */
    size_t n_headers;
    verify_header_fn header; /* any request header, for header: locators */
    void *header_opaque;
    const void *body; /* as received (the record value, unless structured) */
    size_t body_len;
    struct timespec received; /* CLOCK_REALTIME */
};

/* The record. Owns its attributes and (structured mode) its data; `value`, `key` and `id`
 * point into the request's body or into the envelope itself, so they live as long as both. */
struct envelope {
    struct sl_ce ce;
    const void *value;
    size_t value_len;
    const char *key; /* the partitionkey attribute */
    size_t key_len;
    const char *id; /* the id attribute */
    char *owned;    /* structured-mode data; internal */
};

/* Builds the record into *out (which need not be initialised). Returns 0, or the HTTP status to
 * answer (400, 415, or 503 when memory ran out) with *error set to a reply.h code and *err to the
 * detail; *out is then empty and needs no envelope_free. */
int envelope_build(const struct envelope_request *rq, struct envelope *out, const char **error,
                   struct sl_err *err) __attribute__((warn_unused_result));

void envelope_free(struct envelope *env);

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC) and a NUL into out[ENVELOPE_TIME_LEN + 1]. */
void envelope_format_time(const struct timespec *ts, char out[ENVELOPE_TIME_LEN + 1]);

#endif
