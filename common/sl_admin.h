/*
 * sl_admin: the admin HTTP listener every binary runs: GET /metrics (Prometheus text from an
 * sl_metrics registry), /healthz (liveness: 200 while the binary's main loop turns, 503 with
 * the reason when sl_live says it is stuck; see sl_live.h) and /readyz
 * (200 when the readiness callback says the binary can take work, else 503 with the reason).
 * Bodies of /healthz and /readyz are JSON. One internal thread (libmicrohttpd, epoll); every
 * other path is a JSON 404, every other method a JSON 405.
 *
 * A binary whose whole purpose is HTTP (sluice-admin) plugs an application into the same
 * listener (sl_admin_start_app): it gets every request the three built-in paths do not answer,
 * a pool of threads instead of one, and headers added to every response, built-in or its own
 * (sl_admin_queue), so /metrics carries the same security headers as the application's pages.
 */
#ifndef SL_ADMIN_H
#define SL_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include <microhttpd.h>

#include "sl_err.h"
#include "sl_live.h"
#include "sl_metrics.h"

typedef struct sl_admin sl_admin_t;

/* Fills `why` (NUL-terminated, bounded) when not ready. Runs on the admin thread. */
typedef bool (*sl_admin_ready_cb)(void *opaque, char *why, size_t why_size);

/* `metrics`, `opaque` and `live` are borrowed and must outlive the listener. `ready` may be
 * NULL (always ready), `live` too (always alive). */
sl_admin_t *sl_admin_start(const char *listen, sl_metrics_t *metrics, sl_admin_ready_cb ready,
                           void *opaque, sl_live_t *live, struct sl_err *err)
    __attribute__((warn_unused_result));
/* The application behind the listener: libmicrohttpd's access handler and completion callback
 * (see MHD_AccessHandlerCallback, MHD_RequestCompletedCallback) with `opaque` as their first
 * argument, called for every request but GET/HEAD of /metrics /healthz /readyz. */
struct sl_admin_app {
    MHD_AccessHandlerCallback handler;
    MHD_RequestCompletedCallback completed; /* may be NULL */
    void *opaque;
    /* Name, value, name, value, ..., NULL: added to every response. Borrowed: must outlive the
     * listener. May be NULL. */
    const char *const *headers;
    unsigned int threads; /* worker threads; 0 or 1: one */
};

/* sl_admin_start with an application; `app` is copied, what it points to is borrowed. */
sl_admin_t *sl_admin_start_app(const char *listen, sl_metrics_t *metrics, sl_admin_ready_cb ready,
                               void *opaque, sl_live_t *live, const struct sl_admin_app *app,
                               struct sl_err *err) __attribute__((warn_unused_result));
/* Adds the listener's headers to `resp` and queues it (MHD_queue_response); `resp` stays the
 * caller's to destroy. For the application's handler. */
enum MHD_Result sl_admin_queue(const sl_admin_t *admin, struct MHD_Connection *conn,
                               unsigned int status, struct MHD_Response *resp);
/* The port actually bound (useful with port 0). */
int sl_admin_port(const sl_admin_t *admin);
void sl_admin_stop(sl_admin_t *admin);

#endif
