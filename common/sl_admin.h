/*
 * sl_admin: the admin HTTP listener every binary runs: GET /metrics (Prometheus text from an
 * sl_metrics registry), /healthz (liveness: 200 while the binary's main loop turns, 503 with
 * the reason when sl_live says it is stuck; see sl_live.h) and /readyz
 * (200 when the readiness callback says the binary can take work, else 503 with the reason).
 * Bodies of /healthz and /readyz are JSON. One internal thread (libmicrohttpd, epoll); every
 * other path is a JSON 404, every other method a JSON 405.
 */
#ifndef SL_ADMIN_H
#define SL_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

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
/* The port actually bound (useful with port 0). */
int sl_admin_port(const sl_admin_t *admin);
void sl_admin_stop(sl_admin_t *admin);

#endif
