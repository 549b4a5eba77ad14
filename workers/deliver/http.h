/*
 * http: many HTTP requests at once on one thread, over libcurl's multi interface
 * (curl_multi_poll + curl_multi_perform). The engine's event loop waits here, on the transfers'
 * sockets and on one more descriptor of its own (the Kafka wake-up pipe), so that one thread
 * serves every request, every consumer and every timer: concurrency costs sockets, not threads.
 *
 * Connections are kept alive and reused across requests (the multi handle's connection cache,
 * up to max_connections); easy handles are pooled. Requests never follow redirects (a 3xx is
 * an answer the engine classifies), speak only http and https, and never send
 * "Expect: 100-continue" (a round trip per request for nothing).
 *
 * A response body is kept up to the request's body_max bytes (the rest is read and dropped:
 * body_truncated says so); the Retry-After header is kept. Completion callbacks run inside
 * dlv_http_run(), on the caller's thread; a cancelled request gets none.
 */
#ifndef DLV_HTTP_H
#define DLV_HTTP_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

#include "sl_err.h"

#define DLV_HTTP_RETRY_AFTER_MAX 128 /* bytes of a Retry-After value kept */
#define DLV_HTTP_POOL_MAX        256 /* idle easy handles kept for reuse */

typedef struct dlv_http dlv_http_t;
typedef struct dlv_http_req dlv_http_req_t;

struct dlv_http_result {
    long status;       /* 0 when no HTTP answer came */
    CURLcode code;     /* CURLE_OK when an answer came */
    const char *error; /* curl's one-line reason when code != CURLE_OK, else "" */
    double seconds;    /* total time of the transfer */
    const char *body;  /* NUL-terminated, body_len bytes (at most body_max) */
    size_t body_len;
    bool body_truncated;
    const char *retry_after; /* the Retry-After header's value, or NULL */
};

/* Runs inside dlv_http_run(). The result and its strings live until the callback returns. */
typedef void (*dlv_http_done_cb)(void *opaque, const struct dlv_http_result *res);

struct dlv_http_spec {
    const char *url;
    const char *method;         /* "POST", "PUT", "PATCH" */
    struct curl_slist *headers; /* taken by dlv_http_start() whatever it returns */
    const void *body;           /* borrowed until the callback or the cancel */
    size_t len;
    long timeout_ms; /* the whole transfer */
    size_t body_max; /* response bytes kept */
};

/* max_connections: connections kept alive in all (the sum of the destinations' concurrency,
 * say). The caller owns the result. */
dlv_http_t *dlv_http_new(long max_connections, struct sl_err *err)
    __attribute__((warn_unused_result));
/* Cancels what is running (no callbacks) and frees everything. NULL is a no-op. */
void dlv_http_destroy(dlv_http_t *h);

/* Starts a request. Returns its handle (valid until its callback or dlv_http_cancel), or NULL
 * with *err. */
dlv_http_req_t *dlv_http_start(dlv_http_t *h, const struct dlv_http_spec *spec, dlv_http_done_cb cb,
                               void *opaque, struct sl_err *err);
/* Stops a running request; its callback will not run. */
void dlv_http_cancel(dlv_http_t *h, dlv_http_req_t *req);

/* Waits up to timeout_ms for socket activity of the transfers or for `fd` (-1: none) to be
 * readable. Returns true when `fd` is readable. */
bool dlv_http_wait(dlv_http_t *h, int fd, int timeout_ms);
/* Moves every transfer on and runs the callbacks of the finished ones. */
void dlv_http_run(dlv_http_t *h);
/* Requests running. */
size_t dlv_http_running(const dlv_http_t *h);

#endif
