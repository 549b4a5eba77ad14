/*
 * api: the JSON API of sluice-admin (/api/v1/..., the contract is README's "Admin API and
 * console"), apart from HTTP: a request in (method, path, query, body, who), a status and a JSON
 * document out. The HTTP side (http.c) authenticates, serves the console and serialises.
 *
 * Each request opens its own PostgreSQL session (sluice-admin answers operators, not traffic),
 * so handlers running on several HTTP threads share nothing but read-only settings.
 */
#ifndef ADM_API_H
#define ADM_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "auth.h"
#include "sl_conf.h"
#include "sl_err.h"

#define ADM_API_PREFIX "/api/v1/"

typedef struct adm_api adm_api_t;

struct adm_request {
    const char *method;
    const char *path; /* starts with ADM_API_PREFIX */
    /* A query parameter's value, or NULL when absent. */
    const char *(*arg)(void *opaque, const char *name);
    /* Calls `cb` with the name of every query parameter until it returns false. */
    void (*each_arg)(void *opaque, bool (*cb)(void *ctx, const char *name), void *ctx);
    void *opaque;
    const char *body; /* NUL-terminated; "" when there is none */
    const struct adm_identity *who;
    const char *remote; /* the client's address, for the record of actions */
};

/* `conf` is borrowed and must outlive the API. NULL with *err. */
adm_api_t *adm_api_new(const sl_conf_t *conf, struct sl_err *err)
    __attribute__((warn_unused_result));
void adm_api_destroy(adm_api_t *api);

/* Answers `req`: the HTTP status, and in *doc (owned by the caller) the answer or the error
 * document {"error": {"code", "message"}}. Thread-safe. */
unsigned int adm_api_handle(adm_api_t *api, const struct adm_request *req, json_t **doc);

/* Readiness (sl_admin_ready_cb): false with the reason while PostgreSQL, which every read
 * needs, cannot be reached. */
bool adm_api_ready(void *api, char *why, size_t why_size);

/* The error document of `status` (400, 401, 403, 404, 405, 409, 413, 500, 503) and a message. */
json_t *adm_api_error(unsigned int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
