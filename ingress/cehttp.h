/*
 * cehttp: CloudEvents 1.0 over HTTP (the HTTP protocol binding, version 1.0.2), receiving side.
 *
 * Binary content mode: the attributes are `ce-<name>` headers, percent-decoded as the binding's
 * section 3.1.3.2 asks; the body is the data, and Content-Type its datacontenttype.
 * Structured content mode: the body is an `application/cloudevents+json` object holding the
 * attributes and `data` (any JSON value) or `data_base64`.
 * Batch mode (`application/cloudevents-batch+json`) is not supported; callers answer 415.
 *
 * Attribute values are copied into a struct sl_ce (see sl_cloudevent.h for its bounds). Values
 * must be well-formed UTF-8 without control characters: they become Kafka headers, log fields
 * and, for the id, part of a JSON reply.
 */
#ifndef SLUICE_CEHTTP_H
#define SLUICE_CEHTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "sl_cloudevent.h"
#include "sl_err.h"

#define CEHTTP_HEADER_PREFIX "ce-"
#define CEHTTP_SPECVERSION   "1.0"

enum cehttp_media {
    CEHTTP_MEDIA_OTHER = 0,  /* missing, or not JSON */
    CEHTTP_MEDIA_JSON,       /* application/json, or application/<anything>+json */
    CEHTTP_MEDIA_STRUCTURED, /* application/cloudevents+json */
    CEHTTP_MEDIA_BATCH,      /* application/cloudevents-batch+json */
};

/* Classifies a Content-Type value (NULL allowed): type and subtype compare case-insensitively,
 * parameters such as "; charset=utf-8" are ignored. */
enum cehttp_media cehttp_media_of(const char *content_type);

/* Results: CEHTTP_INVALID means a 400, CEHTTP_UNSUPPORTED a 415. */
enum cehttp_result {
    CEHTTP_OK = 0,
    CEHTTP_INVALID = -1,
    CEHTTP_UNSUPPORTED = -2,
};

struct cehttp_header {
    const char *name; /* as received; matched case-insensitively */
    const char *value;
};

/* Binary mode: adds an attribute for each `ce-` header of hdrs[0..n) (others are skipped) to
 * `ce`, then checks the required ones (specversion 1.0, id, source, type). `skip`, when not NULL,
 * names headers that must never become attributes (credential headers, see verify.h). Returns
 * CEHTTP_OK, or CEHTTP_INVALID with *err naming the header. */
int cehttp_binary(const struct cehttp_header *hdrs, size_t n, bool (*skip)(void *, const char *),
                  void *skip_opaque, struct sl_ce *ce, struct sl_err *err);

/* Structured mode: parses body[0..len) into `ce` (datacontenttype defaults to application/json)
 * and the event data into a new buffer *data / *data_len that the caller frees: `data` serialised
 * as compact JSON, or `data_base64` decoded. Both are NULL/0 for an event without data.
 * Extension values that are numbers or booleans are kept in their JSON spelling; null means
 * absent. CEHTTP_UNSUPPORTED when the datacontenttype is not JSON (Sluice carries JSON events);
 * CEHTTP_INVALID for everything else that is wrong, with *err saying what. */
int cehttp_structured(const void *body, size_t len, struct sl_ce *ce, char **data, size_t *data_len,
                      struct sl_err *err);

#endif
