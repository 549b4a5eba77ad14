#include "http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assets.h"

/* The console runs only its own files: no inline script or style, no other origin. */
static const char *const security_headers[] = {
    "Content-Security-Policy",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options",
    "nosniff",
    "Referrer-Policy",
    "no-referrer",
    NULL,
};

struct adm_http {
    sl_admin_t *admin;
    adm_api_t *api;
    const adm_auth_t *auth;
};

/* One request's state across libmicrohttpd's calls: the body as it arrives. */
struct req {
    char *body;
    size_t len;
    bool too_large;
};

static enum MHD_Result queue(adm_http_t *http, struct MHD_Connection *conn, unsigned int status,
                             const char *type, const void *data, size_t len,
                             enum MHD_ResponseMemoryMode mode, bool api)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)data, mode);
    if (!resp)
        return MHD_NO;
    enum MHD_Result rc = MHD_NO;
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type) != MHD_YES ||
        (api &&
         MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES) ||
        (status == MHD_HTTP_UNAUTHORIZED &&
         MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer") != MHD_YES))
        goto out;
    rc = sl_admin_queue(http->admin, conn, status, resp);
out:
    MHD_destroy_response(resp);
    return rc;
}

/* Serialises `doc` (consumed) as the answer. */
static enum MHD_Result reply_doc(adm_http_t *http, struct MHD_Connection *conn, unsigned int status,
                                 json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text)
        return MHD_NO;
    size_t len = strlen(text);
    return queue(http, conn, status, "application/json", text, len, MHD_RESPMEM_MUST_FREE, true);
}

static const char *arg(void *opaque, const char *name)
{
    return MHD_lookup_connection_value(opaque, MHD_GET_ARGUMENT_KIND, name);
}

struct each {
    bool (*cb)(void *ctx, const char *name);
    void *ctx;
};

static enum MHD_Result each_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    struct each *e = cls;
    return e->cb(e->ctx, key) ? MHD_YES : MHD_NO;
}

static void each_arg(void *opaque, bool (*cb)(void *ctx, const char *name), void *ctx)
{
    struct each e = {cb, ctx};
    MHD_get_connection_values(opaque, MHD_GET_ARGUMENT_KIND, each_one, &e);
}

static void remote_of(struct MHD_Connection *conn, char *buf, size_t size)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(buf, size, "-");
    if (!info || !info->client_addr)
        return;
    const struct sockaddr *sa = info->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf,
                  (socklen_t)size);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, buf,
                  (socklen_t)size);
}

/* Collects the body of a request into r (bounded); true once it is complete. */
static bool collect(struct req *r, const char *data, size_t *size)
{
    if (*size == 0)
        return true;
    if (!r->too_large && r->len + *size <= ADM_HTTP_BODY_MAX) {
        char *grown = realloc(r->body, r->len + *size + 1);
        if (grown) {
            memcpy(grown + r->len, data, *size);
            r->body = grown;
            r->len += *size;
            r->body[r->len] = '\0';
        } else {
            r->too_large = true;
        }
    } else {
        r->too_large = true;
    }
    *size = 0;
    return false;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    adm_http_t *http = cls;
    struct req *r = *con_cls;
    if (!r) {
        if (!(r = calloc(1, sizeof(*r))))
            return MHD_NO;
        *con_cls = r;
        return MHD_YES; /* libmicrohttpd calls again, with the body if there is one */
    }
    if (!collect(r, upload_data, upload_data_size))
        return MHD_YES;

    bool api = strncmp(url, ADM_API_PREFIX, strlen(ADM_API_PREFIX)) == 0;
    const struct adm_identity *who = adm_auth_check(
        http->auth, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"));
    if (!api) {
        const struct adm_asset *asset = adm_asset_find(url);
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
            return reply_doc(http, conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                             adm_api_error(405, "%s: use GET", url));
        if (!asset)
            return reply_doc(http, conn, MHD_HTTP_NOT_FOUND, adm_api_error(404, "no page %s", url));
        if (!who && !adm_asset_public(asset))
            return reply_doc(http, conn, MHD_HTTP_UNAUTHORIZED,
                             adm_api_error(401, "%s needs a token (Authorization: Bearer)", url));
        return queue(http, conn, MHD_HTTP_OK, asset->content_type, asset->data, asset->len,
                     MHD_RESPMEM_PERSISTENT, false);
    }
    if (!who)
        return reply_doc(
            http, conn, MHD_HTTP_UNAUTHORIZED,
            adm_api_error(401, "a valid token is needed (Authorization: Bearer <token>)"));
    if (r->too_large)
        return reply_doc(http, conn, MHD_HTTP_CONTENT_TOO_LARGE,
                         adm_api_error(413, "the body is over %d bytes", ADM_HTTP_BODY_MAX));
    char remote[INET6_ADDRSTRLEN];
    remote_of(conn, remote, sizeof(remote));
    const struct adm_request req = {
        .method = method,
        .path = url,
        .arg = arg,
        .each_arg = each_arg,
        .opaque = conn,
        .body = r->body ? r->body : "",
        .who = who,
        .remote = remote,
    };
    json_t *doc = NULL;
    unsigned int status = adm_api_handle(http->api, &req, &doc);
    return reply_doc(http, conn, status, doc);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct req *r = *con_cls;
    if (r)
        free(r->body);
    free(r);
    *con_cls = NULL;
}

adm_http_t *adm_http_start(const char *listen, unsigned int threads, adm_api_t *api,
                           const adm_auth_t *auth, sl_metrics_t *metrics, struct sl_err *err)
{
    adm_http_t *http = calloc(1, sizeof(*http));
    if (!http) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    http->api = api;
    http->auth = auth;
    const struct sl_admin_app app = {
        .handler = handle,
        .completed = completed,
        .opaque = http,
        .headers = security_headers,
        .threads = threads,
    };
    if (!(http->admin = sl_admin_start_app(listen, metrics, adm_api_ready, api, NULL, &app, err))) {
        free(http);
        return NULL;
    }
    return http;
}

int adm_http_port(const adm_http_t *http)
{
    return sl_admin_port(http->admin);
}

void adm_http_stop(adm_http_t *http)
{
    if (!http)
        return;
    sl_admin_stop(http->admin);
    free(http);
}
