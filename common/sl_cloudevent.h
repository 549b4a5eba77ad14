/*
 * sl_cloudevent: CloudEvents 1.0 attributes and their Kafka protocol binding, binary content
 * mode: the payload is the record value, each attribute a header `ce_<name>`, except
 * `datacontenttype`, which travels as `content-type`.
 *
 * Required attributes: specversion ("1.0"), id, source, type. Extension names follow the spec:
 * lowercase ASCII letters and digits, at most 20 characters. Sluice's own extensions are listed
 * below; unknown `ce_` headers are kept as extensions, other headers are ignored.
 *
 * A struct sl_ce owns copies of its names and values. Bounded: at most SL_CE_MAX_ATTRS
 * attributes, each value at most SL_CE_MAX_VALUE bytes, no NUL bytes inside a value.
 */
#ifndef SL_CLOUDEVENT_H
#define SL_CLOUDEVENT_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "sl_err.h"

#define SL_CE_MAX_ATTRS 32
#define SL_CE_MAX_VALUE 4096

/* Sluice's extension attributes. */
#define SL_CE_IDEMPOTENCY_KEY "idempotencykey"    /* the source's own event id, for dedup */
#define SL_CE_TRACEPARENT     "traceparent"       /* W3C trace context */
#define SL_CE_PARTITION_KEY   "partitionkey"      /* CloudEvents "partitioning" extension */
#define SL_CE_ATTEMPT         "sluiceattempt"     /* delivery or replay attempt count */
#define SL_CE_STAGE           "sluicestage"       /* the stage that dead-lettered the event */
#define SL_CE_REASON          "sluicereason"      /* why it was dead-lettered */
#define SL_CE_ERRORS          "sluiceerrors"      /* JSON array of the errors behind the reason */
#define SL_CE_ORIGINAL_TYPE   "sluiceorigtype"    /* the type before a transform */
#define SL_CE_ROUTE           "sluiceroute"       /* the route that sent it to a destination */
#define SL_CE_SOURCE_NAME     "sluicesource"      /* the configured source it came in through */
#define SL_CE_DESTINATION     "sluicedestination" /* dead letters of deliver: where it was going */
#define SL_CE_REPLAY          "sluicereplay"      /* a dead letter put back: its dead letter's id */

struct sl_ce_attr {
    char *name;
    char *value;
};

struct sl_ce {
    size_t n;
    struct sl_ce_attr attrs[SL_CE_MAX_ATTRS];
};

void sl_ce_init(struct sl_ce *ce);
/* Frees the names and values; the struct can be reused after sl_ce_init(). */
void sl_ce_free(struct sl_ce *ce);
/* Sets or replaces an attribute. Rejects bad names and values with a clear message. */
int sl_ce_set(struct sl_ce *ce, const char *name, const char *value, struct sl_err *err);
int sl_ce_set_n(struct sl_ce *ce, const char *name, const char *value, size_t len,
                struct sl_err *err);
/* The value, or NULL. */
const char *sl_ce_get(const struct sl_ce *ce, const char *name);

/* Appends the attributes as headers. Fails, naming the attribute, when a required one is
 * missing. */
int sl_ce_to_headers(const struct sl_ce *ce, rd_kafka_headers_t *hdrs, struct sl_err *err);
/* Reads the attributes from a record's headers into an initialised, empty `ce`. Fails, naming
 * the attribute and header, when a required one is missing or specversion is not 1.0. */
int sl_ce_from_headers(const rd_kafka_headers_t *hdrs, struct sl_ce *ce, struct sl_err *err);
/* Reads whatever attributes the headers carry into an initialised, empty `ce`, requiring none
 * and skipping headers that are not valid attributes: for a record that is not a whole
 * CloudEvent (the dead letter of a raw record) but is still to be kept. */
void sl_ce_read_headers(const rd_kafka_headers_t *hdrs, struct sl_ce *ce);

/* Whether `name` is a valid attribute name (lowercase letters and digits, 1..20 chars). */
int sl_ce_valid_name(const char *name);

/* Hex digits of a scoped id: the first 128 bits of a SHA-256. */
#define SL_CE_SCOPED_ID_LEN 32

/* An event id scoped to where the event came from. CloudEvents ids are unique only within
 * their source, so whatever remembers an event by its id (validate's dedup claim, deliver's
 * ledger and Idempotency-Key) uses this instead:
 *
 *     lowercase hex of SHA-256( field(sluicesource) field(source) field(id) )[0..16)
 *     field(x) = the length of x as 8 bytes big-endian, then the bytes of x
 *
 * The length prefixes make the split unambiguous: ("a:b", "c") never hashes as ("a", "b:c").
 * `id` is the id to scope (the event id, or the idempotency key); an absent sluicesource or
 * source counts as empty. Pure and stable across versions and hosts: changing it changes every
 * key derived from it. Writes out[SL_CE_SCOPED_ID_LEN + 1]; 0, or -1 when OpenSSL fails. */
int sl_ce_scoped_id(const struct sl_ce *ce, const char *id, char out[SL_CE_SCOPED_ID_LEN + 1])
    __attribute__((warn_unused_result));

#endif
