/*
 * destsim_client: start, script, read and stop the destination simulator from a C test.
 *
 *   const char *args[] = {"--rule", "status=500 times=2", "--rule", "status=200", NULL};
 *   destsim_t *d = destsim_start(NULL, args, &err);     // waits until it listens
 *   ... point the deliver worker at destsim_url(d) ...
 *   json_t *st = destsim_stats(d, &err);                 // GET /_sim/stats
 *   json_decref(st);
 *   destsim_stop(d);                                     // SIGTERM; 0 when it exited cleanly
 *
 * destsim runs as a child process (it gets SIGTERM if the test process dies first), so that a
 * test can also kill or restart it. Every wait is bounded. One destsim_t is for one thread.
 */
#ifndef DESTSIM_CLIENT_H
#define DESTSIM_CLIENT_H

#include <jansson.h>

#include "sl_err.h"

#define DESTSIM_START_TIMEOUT_MS 15000                /* until the port file appears */
#define DESTSIM_STOP_TIMEOUT_MS  10000                /* after SIGTERM, before SIGKILL */
#define DESTSIM_HTTP_TIMEOUT_MS  10000                /* each control request */
#define DESTSIM_RESPONSE_MAX     (128u * 1024 * 1024) /* a stats answer (10,000 requests) */

typedef struct destsim destsim_t;

/* Runs <build_dir>/bin/destsim (build_dir NULL: $SLUICE_BINARY_DIR, else ".") with
 * "--listen 127.0.0.1:0 --port-file <temp file>" and then args (NULL-terminated; NULL for none);
 * args may carry their own --listen HOST:PORT, which then replaces the default (HOST must be
 * reachable as given). Returns once destsim listens, or NULL with *err (its exit status if it
 * stopped, e.g. on a bad rule). The caller owns the handle: destsim_stop() it. */
destsim_t *destsim_start(const char *build_dir, const char *const *args, struct sl_err *err);

int destsim_port(const destsim_t *d);

/* "http://HOST:PORT", without a trailing slash; owned by d. */
const char *destsim_url(const destsim_t *d);

/* GET /_sim/stats: every counter and the last 10,000 requests (see destsim.c for the shape).
 * The caller owns the result (json_decref). */
json_t *destsim_stats(destsim_t *d, struct sl_err *err);

/* The same without the request list and the order lists: cheap enough to poll. */
json_t *destsim_counters(destsim_t *d, struct sl_err *err);

/* POST /_sim/rules: replaces every rule by these lines; on a bad rule, the old ones stay and
 * *err carries destsim's reason. */
int destsim_set_rules(destsim_t *d, const char *rules, struct sl_err *err);

/* POST /_sim/reset: clears the counters (rules and OAuth tokens stay). */
int destsim_reset(destsim_t *d, struct sl_err *err);

/* SIGTERM, then waits up to DESTSIM_STOP_TIMEOUT_MS (then SIGKILL) and frees d. Returns destsim's
 * exit status (0: a clean stop), or -1 when it had to be killed or was killed by a signal.
 * destsim_stop(NULL) returns 0. */
int destsim_stop(destsim_t *d);

#endif
