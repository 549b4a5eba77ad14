/*
 * reply: the JSON bodies sluice-ingress answers with.
 *
 *   202  {"id":"<event id>"}
 *   4xx/503  {"error":"<code>","detail":"<one line for a human>"}
 *
 * `error` is one of the stable codes below, for programs; `detail` says what was wrong, for
 * people. Strings are escaped for JSON: quotes, backslashes and control characters, and any byte
 * that is not part of well-formed UTF-8 becomes U+FFFD, so the body is valid JSON whatever the
 * input (a client's CloudEvents id, say).
 */
#ifndef SLUICE_REPLY_H
#define SLUICE_REPLY_H

#include <stddef.h>

/* Error codes ("error" member). */
#define REPLY_BAD_REQUEST       "bad_request"            /* 400: HTTP framing refused */
#define REPLY_MALFORMED_JSON    "malformed_json"         /* 400 */
#define REPLY_INVALID_EVENT     "invalid_event"          /* 400: JSON, but not a usable event */
#define REPLY_UNSIGNED_ATTRS    "unsigned_attributes"    /* 400: ce-* headers on a signing source */
#define REPLY_UNAUTHORIZED      "unauthorized"           /* 401 */
#define REPLY_NOT_FOUND         "not_found"              /* 404: path */
#define REPLY_UNKNOWN_SOURCE    "unknown_source"         /* 404: /v1/events/<name> */
#define REPLY_METHOD            "method_not_allowed"     /* 405 */
#define REPLY_TOO_LARGE         "body_too_large"         /* 413 */
#define REPLY_MEDIA_TYPE        "unsupported_media_type" /* 415 */
#define REPLY_OVERLOADED        "overloaded"             /* 429: admission control shed it */
#define REPLY_NOT_IMPLEMENTED   "not_implemented"        /* 501: a Transfer-Encoding */
#define REPLY_KAFKA_UNAVAILABLE "kafka_unavailable"      /* 503: the write did not succeed */
#define REPLY_SHUTTING_DOWN     "shutting_down"          /* 503 */
#define REPLY_INTERNAL          "internal_error"         /* 503: ours, e.g. out of memory */
#define REPLY_IN_FLIGHT         "in_flight" /* 503: the same signed request is being written */
#define REPLY_GUARD_UNAVAILABLE "replay_guard_unavailable" /* 503: its Redis did not answer */

/* An error body is at most this long; a longer detail is cut at a character boundary. */
#define REPLY_ERROR_MAX 1024

/* Writes the error body into out[size] (size >= 64), NUL-terminated; returns its length. */
size_t reply_error_json(char *out, size_t size, const char *error, const char *detail);

/* The 202 body for `id`, in a new buffer the caller frees; NULL when out of memory. */
char *reply_accepted_json(const char *id, size_t *len);

#endif
