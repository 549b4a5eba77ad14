/*
 * fetch: one bounded HTTP GET of a JSON resource for the transform's `http` lookups (libcurl),
 * classified so that the stage can act on it:
 *
 *   FETCH_OK         2xx: *body holds the answer (at most max_bytes).
 *   FETCH_NOT_FOUND  404 or 410: the resource definitely does not exist.
 *   FETCH_RETRY      the answer may be different later: a connection error, the deadline,
 *                    408, 425, 429 or 5xx (err retriable, SL_ERR_UNAVAILABLE or _TIMEOUT); and
 *                    401 or 403 (SL_ERR_CONFIG, not retriable: credentials that only an operator
 *                    can fix, so every event waits rather than being dead-lettered).
 *   FETCH_FAILED     it will not work for this URL: another status (3xx are not followed: an
 *                    internal API answers directly), an answer over max_bytes, a malformed URL
 *                    or a scheme other than http and https (SL_ERR_INVALID).
 *
 * Messages name the request with fetch_redact(): scheme, host, port and path, never the query or
 * user info, which may carry credentials.
 *
 * A fetch_t is one libcurl easy handle, reused so that connections are kept alive between
 * events: one thread at a time. The process calls curl_global_init() before the first
 * fetch_new() (transform_stage's init does) and must ignore SIGPIPE (sl_signal_install does).
 */
#ifndef TRANSFORM_FETCH_H
#define TRANSFORM_FETCH_H

#include <stddef.h>

#include "sl_err.h"

#define FETCH_URL_MAX     8192 /* bytes of a URL */
#define FETCH_HEADERS_MAX 32   /* configured request headers */

typedef struct fetch fetch_t;

enum fetch_class { FETCH_OK, FETCH_NOT_FOUND, FETCH_RETRY, FETCH_FAILED };

/* A handle sending `headers` (NULL-terminated "Name: value" lines, copied; NULL for none) and
 * Accept: application/json with every request. The caller owns it (fetch_destroy). */
fetch_t *fetch_new(const char *const *headers, struct sl_err *err)
    __attribute__((warn_unused_result));
/* NULL is a no-op. */
void fetch_destroy(fetch_t *f);

/* GETs `url` within timeout_ms (connecting included). On FETCH_OK, *body (NUL-terminated, owned
 * by the caller: free()) and *len hold the answer; otherwise *body is NULL and *err says why. */
enum fetch_class fetch_get(fetch_t *f, const char *url, long timeout_ms, size_t max_bytes,
                           char **body, size_t *len, struct sl_err *err);

/* "scheme://host[:port]/path" of url into out (always NUL-terminated); "(malformed URL)" when it
 * does not parse. */
void fetch_redact(const char *url, char *out, size_t size);

#endif
