/*
 * http: sluice-admin's HTTP side on the shared admin listener (sl_admin_start_app): the
 * security headers on every response, the bearer token, the console's assets, and the /api/v1/
 * requests handed to api.c with their body (at most ADM_HTTP_BODY_MAX bytes). /readyz is
 * adm_api_ready; /healthz has no loop of its own to watch (libmicrohttpd's threads answer
 * every request), so it is 200 while it serves.
 */
#ifndef ADM_HTTP_H
#define ADM_HTTP_H

#include "api.h"
#include "auth.h"
#include "sl_admin.h"
#include "sl_metrics.h"

#define ADM_HTTP_BODY_MAX (64 * 1024)

typedef struct adm_http adm_http_t;

/* Listens on `listen` with `threads` workers. `api`, `auth` and `metrics` are borrowed and must
 * outlive the server. NULL with *err. */
adm_http_t *adm_http_start(const char *listen, unsigned int threads, adm_api_t *api,
                           const adm_auth_t *auth, sl_metrics_t *metrics, struct sl_err *err)
    __attribute__((warn_unused_result));
int adm_http_port(const adm_http_t *http);
void adm_http_stop(adm_http_t *http);

#endif
