/*
 * lookup: one enrichment lookup of a transform rule (`transforms[].lookups[]` in the pipeline
 * file). The rule's mapping sees each result as `.lookups.<name>` of its input.
 *
 *   type: redis   GET <key>, or HGET <key> <field> when `field` is given. `key` and `field` are
 *                 jq expressions over the event; the value is a JSON string, or parsed JSON with
 *                 `json: true`.
 *   type: http    GET <url> (`url` a jq expression; http or https), answered with JSON. With
 *                 `cache_ttl` > 0 (the default, 5m) the answer is kept in Redis under
 *                 "<key prefix>lookup:<sha256 of the URL>" for that long (the key prefix is
 *                 redis.key_prefix, by default the topic prefix), and a cached answer
 *                 is used without asking the API. Misses and errors are never cached, so a
 *                 resource created later is found on the next event.
 *
 *                 A URL whose path has a "." or ".." segment (also written %2E) is refused
 *                 (LOOKUP_FAILED, never requested): a server would resolve it, and a value
 *                 such as ".." in `"https://api/customers/" + .data.id` would reach another
 *                 path with the lookup's headers. libcurl sends paths as written
 *                 (CURLOPT_PATH_AS_IS). jq's @uri keeps dots: it does not avoid this.
 *
 * Expressions see the event as the mapping does, with `.lookups` holding the results of the
 * rule's earlier lookups (so a Redis lookup can find the id an HTTP lookup then fetches). A
 * key, field or URL must be a string or a number; null means there is nothing to look up, which
 * is a miss.
 *
 * Outcomes of lookup_run():
 *   LOOKUP_FOUND    *value is the result (new reference); *cached tells an answer from the cache.
 *   LOOKUP_MISSING  definitely not there: Redis nil, HTTP 404 or 410, a null key or URL. The
 *                   rule's `on_missing` decides (fail: dead letter; null: go on with null).
 *   LOOKUP_RETRY    maybe later: Redis unreachable or busy, HTTP connection error, deadline,
 *                   408/425/429/5xx. *err is retriable. Refused credentials (Redis AUTH/ACL,
 *                   HTTP 401/403) are LOOKUP_RETRY too, with a non-retriable SL_ERR_CONFIG:
 *                   the caller holds the event and says at error level that an operator must act.
 *   LOOKUP_FAILED   this event cannot be enriched: an expression error (its budget included:
 *                   err->fatal as sl_expr says), a key that is not a string, a WRONGTYPE reply,
 *                   a value or answer that is not the JSON it should be, another HTTP status, an
 *                   answer over `max_bytes`. The caller dead-letters the event.
 * Messages name what was asked ("redis HGET repo-owners octo/hello", "GET http://host/path"),
 * never a URL's query or credentials.
 *
 * Life cycle: lookup_new() compiles (used by config checks too); lookup_start() gives it the
 * Redis handle and, for http, its headers and its own libcurl handle; lookup_run() on the
 * stage's one thread.
 */
#ifndef TRANSFORM_LOOKUP_H
#define TRANSFORM_LOOKUP_H

#include <jansson.h>
#include <stdbool.h>

#include "sl_conf.h"
#include "sl_err.h"
#include "sl_redis.h"

#define LOOKUP_NAME_MAX 64   /* bytes of a lookup's name */
#define LOOKUP_KEY_MAX  1024 /* bytes of a Redis key or hash field */

typedef struct lookup lookup_t;

enum lookup_type { LOOKUP_REDIS, LOOKUP_HTTP };

enum lookup_result { LOOKUP_FOUND, LOOKUP_MISSING, LOOKUP_RETRY, LOOKUP_FAILED };

/* Compiles the lookup at `node` (an item of a rule's `lookups`); `conf` is borrowed and must
 * outlive the lookup. Errors name file, line and key. */
lookup_t *lookup_new(const sl_conf_t *conf, const sl_conf_node_t *node, struct sl_err *err)
    __attribute__((warn_unused_result));
/* NULL is a no-op. */
void lookup_destroy(lookup_t *l);

const char *lookup_name(const lookup_t *l);
enum lookup_type lookup_type(const lookup_t *l);
/* Whether lookup_run() talks to Redis (a redis lookup, or an http lookup with a cache). */
bool lookup_needs_redis(const lookup_t *l);

/* Readies the lookup to run: `redis` (borrowed; NULL when !lookup_needs_redis()), the Redis
 * key prefix of its cache keys (sl_redis_key_prefix; borrowed), and for http the request headers,
 * whose values are read only here (they may name secrets that only the stage's environment holds:
 * an unset variable fails here, naming file, line and key, not in lookup_new()). */
int lookup_start(lookup_t *l, sl_redis_t *redis, const char *prefix, struct sl_err *err)
    __attribute__((warn_unused_result));

/* Runs the lookup over `input` (the event JSON with `.lookups` so far; only read). */
enum lookup_result lookup_run(lookup_t *l, const json_t *input, json_t **value, bool *cached,
                              struct sl_err *err);

#endif
