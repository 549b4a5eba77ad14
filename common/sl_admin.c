#include "sl_admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_addr.h"

struct sl_admin {
    struct MHD_Daemon *daemon;
    sl_metrics_t *metrics;
    sl_admin_ready_cb ready;
    void *opaque;
    sl_live_t *live;
    struct sl_admin_app app;
    int port;
};

enum MHD_Result sl_admin_queue(const sl_admin_t *admin, struct MHD_Connection *conn,
                               unsigned int status, struct MHD_Response *resp)
{
    for (const char *const *h = admin->app.headers; h && h[0] && h[1]; h += 2)
        if (MHD_add_response_header(resp, h[0], h[1]) != MHD_YES)
            return MHD_NO;
    return MHD_queue_response(conn, status, resp);
}

static enum MHD_Result reply(const sl_admin_t *admin, struct MHD_Connection *conn,
                             unsigned int status, const char *content_type, char *body, size_t len,
                             enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
    if (!resp) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    enum MHD_Result rc = sl_admin_queue(admin, conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result reply_json(const sl_admin_t *admin, struct MHD_Connection *conn,
                                  unsigned int status, const char *json)
{
    return reply(admin, conn, status, "application/json", (char *)json, strlen(json),
                 MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    sl_admin_t *admin = cls;
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    bool builtin = !strcmp(url, "/metrics") || !strcmp(url, "/healthz") || !strcmp(url, "/readyz");
    if (admin->app.handler && !(get && builtin))
        return admin->app.handler(admin->app.opaque, conn, url, method, version, upload_data,
                                  upload_data_size, con_cls);
    if (!get)
        return reply_json(admin, conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                          "{\"error\":\"method not allowed\",\"detail\":\"use GET\"}");
    if (strcmp(url, "/metrics") == 0) {
        size_t len;
        char *text = sl_metrics_render(admin->metrics, &len);
        if (!text)
            return reply_json(admin, conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                              "{\"error\":\"out of memory\",\"detail\":\"metrics\"}");
        return reply(admin, conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text,
                     len, MHD_RESPMEM_MUST_FREE);
    }
    if (strcmp(url, "/healthz") == 0) {
        char why[192], body[sizeof(why) + 64];
        if (sl_live_ok(admin->live, why, sizeof(why)))
            return reply_json(admin, conn, MHD_HTTP_OK, "{\"status\":\"ok\"}");
        snprintf(body, sizeof(body), "{\"status\":\"stuck\",\"detail\":\"%s\"}", why);
        return reply_json(admin, conn, MHD_HTTP_SERVICE_UNAVAILABLE, body);
    }
    if (strcmp(url, "/readyz") == 0) {
        /* Not ready: the reason, then the registry's notes; ready: the notes, if any. */
        char why[256] = "", notes[SL_METRICS_MAX_NOTES * (SL_METRICS_NOTE_MAX + 2)];
        bool ready = !admin->ready || admin->ready(admin->opaque, why, sizeof(why));
        notes[0] = '\0';
        if (admin->metrics)
            sl_metrics_notes(admin->metrics, notes, sizeof(notes));
        if (ready && !notes[0])
            return reply_json(admin, conn, MHD_HTTP_OK, "{\"status\":\"ready\"}");
        /* Both texts are produced by our own code, but escape quotes and backslashes anyway. */
        char body[sizeof(why) + sizeof(notes) * 2 + 64], *o = body;
        o += sprintf(o, "{\"status\":\"%s\",\"detail\":\"", ready ? "ready" : "not ready");
        const char *parts[] = {ready ? "" : why, !ready && notes[0] ? "; " : "", notes};
        for (size_t i = 0; i < 3; i++)
            for (const char *p = parts[i]; *p && o < body + sizeof(body) - 8; p++) {
                if (*p == '"' || *p == '\\')
                    *o++ = '\\';
                *o++ = (*p >= 0x20) ? *p : ' ';
            }
        strcpy(o, "\"}");
        return reply_json(admin, conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, body);
    }
    return reply_json(admin, conn, MHD_HTTP_NOT_FOUND,
                      "{\"error\":\"not found\",\"detail\":\"paths: /metrics /healthz /readyz\"}");
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    sl_admin_t *admin = cls;
    if (admin->app.completed)
        admin->app.completed(admin->app.opaque, conn, con_cls, toe);
}

sl_admin_t *sl_admin_start(const char *listen, sl_metrics_t *metrics, sl_admin_ready_cb ready,
                           void *opaque, sl_live_t *live, struct sl_err *err)
{
    return sl_admin_start_app(listen, metrics, ready, opaque, live, NULL, err);
}

sl_admin_t *sl_admin_start_app(const char *listen, sl_metrics_t *metrics, sl_admin_ready_cb ready,
                               void *opaque, sl_live_t *live, const struct sl_admin_app *app,
                               struct sl_err *err)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (sl_addr_parse(listen, &ss, &len, err) != 0) {
        sl_err_prefix(err, "admin listener");
        return NULL;
    }
    sl_admin_t *admin = calloc(1, sizeof(*admin));
    if (!admin) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    admin->metrics = metrics;
    admin->ready = ready;
    admin->opaque = opaque;
    admin->live = live;
    if (app)
        admin->app = *app;
    unsigned int threads = admin->app.threads > 1 ? admin->app.threads : 1;
    unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    admin->daemon =
        MHD_start_daemon(flags, 0, NULL, NULL, handle, admin, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned int)64, MHD_OPTION_NOTIFY_COMPLETED,
                         completed, admin, MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_END);
    if (!admin->daemon) {
        sl_err_set(err, SL_ERR_IO, "admin listener: cannot listen on %s (in use?)", listen);
        free(admin);
        return NULL;
    }
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(admin->daemon, MHD_DAEMON_INFO_LISTEN_FD);
    admin->port = info ? sl_addr_bound_port(info->listen_fd) : -1;
    return admin;
}

int sl_admin_port(const sl_admin_t *admin)
{
    return admin->port;
}

void sl_admin_stop(sl_admin_t *admin)
{
    if (!admin)
        return;
    MHD_stop_daemon(admin->daemon);
    free(admin);
}
