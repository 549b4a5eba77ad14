/*
 * source: one system that sends events (`sources.<name>` in the pipeline file, reached at
 * POST /v1/events/<name>): how its requests are verified, and where its event id, event type
 * and partition key are found.
 *
 * A field's locator is either a JSON Pointer into the body ("/data/object/customer", with ~0 for
 * '~' and ~1 for '/') or "header:<Name>" (a request header, matched case-insensitively).
 * Extraction rules, per field, once configured:
 *   event_id       required in every request; a string or a number (kept as written).
 *   event_type     required in every request; a string.
 *   partition_key  optional per request: absent, null or "" means "none" (the caller falls back
 *                  to the idempotency key); otherwise a string or a number.
 * Every extracted value is non-empty, well-formed UTF-8 without control characters, and at most
 * SOURCE_VALUE_MAX bytes, because it becomes a Kafka header or key and a log field.
 *
 * Identity: a source whose scheme signs the body (stripe, github, standard-webhooks,
 * hmac-sha256) proves the body and nothing else; ce-* headers are not covered by any of those
 * signatures, so binary-mode CloudEvents on it are refused (400 unsigned_attributes) unless the
 * source opts in (`cloudevents: binary`). Its event id and type come from its own locators.
 * api-key and none authenticate (or trust) the sender itself, which may then assert the event's
 * attributes in ce-* headers.
 *
 * Replay guard (optional, signing schemes only): how long a verified request's signed content
 * is remembered so that the same signed request is not written twice (see replay.h).
 *
 * A source_set is every source of a pipeline file, built once at start-up (config parsing is
 * kept apart from the code API: tests build sources directly with source_new). Sources and sets
 * are immutable after construction and may be shared by threads.
 */
#ifndef SLUICE_SOURCE_H
#define SLUICE_SOURCE_H

#include <stdbool.h>
#include <stddef.h>

#include "jsonscan.h"
#include "sl_conf.h"
#include "sl_err.h"
#include "verify.h"

#define SOURCE_VALUE_MAX      1024 /* bytes of an extracted id, type or key */
#define SOURCE_SET_MAX        200  /* sources in one pipeline file (metrics series per source) */
#define SOURCE_HEADER_LOCATOR "header:"

enum source_field {
    SOURCE_EVENT_ID = 0,
    SOURCE_EVENT_TYPE,
    SOURCE_PARTITION_KEY,
    SOURCE_FIELDS,
};

typedef struct source source_t;
typedef struct source_set source_set_t;

struct source_opts {
    const char *name;                    /* the path segment; 1-100 of [A-Za-z0-9_-] */
    struct verify_opts verify;           /* see verify.h */
    const char *locators[SOURCE_FIELDS]; /* NULL when the field is not configured */
    bool cloudevents_binary;             /* signing schemes: accept ce-* headers anyway */
    long long replay_guard_ms;           /* 0: off; signing schemes only, <= SOURCE_GUARD_MAX_MS */
    bool shed; /* answered 429 while admission control sheds load (ingress.h) */
};

#define SOURCE_GUARD_MAX_MS (30LL * 24 * 3600 * 1000)

/* Copies everything it needs from opts. Fails with a message naming the field for a bad
 * locator, and with verify_new's message for bad verification options. */
source_t *source_new(const struct source_opts *opts, struct sl_err *err)
    __attribute__((warn_unused_result));
void source_destroy(source_t *src);

const char *source_name(const source_t *src);
const verify_t *source_verifier(const source_t *src);
enum verify_scheme source_scheme(const source_t *src);
/* True when the scheme signs the body (stripe, github, standard-webhooks, hmac-sha256). */
bool source_signs_body(const source_t *src);
/* True when binary-mode CloudEvents (ce-* headers) may set the event's attributes: always for
 * api-key and none, only with `cloudevents: binary` for the signing schemes. */
bool source_binary_allowed(const source_t *src);
/* True when the source's requests may be refused (429) while the pipeline is behind. */
bool source_sheds(const source_t *src);
/* The replay guard's window in ms; 0 when the source has none. */
long long source_replay_guard_ms(const source_t *src);
/* "event_id", "event_type", "partition_key": the pipeline file's key for the field. */
const char *source_field_name(enum source_field field);

/* The JSON Pointers of the source's body locators, in a fixed order, for jsonscan(); returns
 * how many (at most SOURCE_FIELDS). The hits jsonscan() gives for them are what
 * source_extract() takes. */
size_t source_pointers(const source_t *src, const jsonptr_t **ptrs);

/* The value of `field` into out[size] (size > SOURCE_VALUE_MAX holds any value), NUL-terminated.
 * `body`/`hits` are the scanned JSON value and the hits for source_pointers(); `header` looks up
 * request headers. Returns 1 when found, 0 when the field is not configured (or, for
 * partition_key, absent in this request), -1 with a one-line *err (never quoting the value)
 * when the request does not have it as the rules above require. */
int source_extract(const source_t *src, enum source_field field, const void *body,
                   const struct jsonscan_hit *hits, verify_header_fn header, void *opaque,
                   char *out, size_t size, struct sl_err *err);

/* ---- the sources of a pipeline file ---- */

/* Builds every source of conf's `sources` section (conf already checked by sl_pipeline_load).
 * Errors name the file, line and key. A list of secrets may hold entries that expand to "" (a
 * `${PREVIOUS:-}` between rotations): they are skipped. The caller owns the set. */
source_set_t *source_set_load(const sl_conf_t *conf, struct sl_err *err)
    __attribute__((warn_unused_result));
void source_set_destroy(source_set_t *set);
size_t source_set_count(const source_set_t *set);
const source_t *source_set_item(const source_set_t *set, size_t i);
/* The source named `name`, or NULL; *index (may be NULL) gets its position in file order, the
 * one source_set_item() takes. */
const source_t *source_set_find(const source_set_t *set, const char *name, size_t *index);

#endif
