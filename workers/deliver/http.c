#include "http.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CONNECT_TIMEOUT_MAX_MS 10000L
#define BODY_INITIAL           1024

struct dlv_http_req {
    dlv_http_t *h;
    CURL *easy;
    struct curl_slist *headers;
    dlv_http_done_cb cb;
    void *opaque;
    char *body; /* response, NUL-terminated */
    size_t len, cap, max;
    bool truncated;
    char retry_after[DLV_HTTP_RETRY_AFTER_MAX];
    bool has_retry_after;
    char errbuf[CURL_ERROR_SIZE];
    dlv_http_req_t *prev, *next; /* the running list, or the pool (next only) */
};

struct dlv_http {
    CURLM *multi;
    size_t running;
    dlv_http_req_t *active; /* running requests */
    dlv_http_req_t *pool;
    size_t pooled;
};

dlv_http_t *dlv_http_new(long max_connections, struct sl_err *err)
{
    /* Idempotent after the first call; not thread-safe, so the engine calls it at start-up
     * (through this constructor) before any other thread could. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        sl_err_set(err, SL_ERR_INTERNAL, "libcurl: global initialisation failed");
        return NULL;
    }
    dlv_http_t *h = calloc(1, sizeof(*h));
    if (!h || !(h->multi = curl_multi_init())) {
        free(h);
        sl_err_set(err, SL_ERR_NOMEM, "libcurl: cannot create a multi handle");
        return NULL;
    }
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, max_connections > 0 ? max_connections : 16);
    return h;
}

static void req_free(dlv_http_req_t *r)
{
    if (!r)
        return;
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r->body);
    free(r);
}

/* Back to the pool (or freed past DLV_HTTP_POOL_MAX). The request is out of the multi. */
static void req_recycle(dlv_http_t *h, dlv_http_req_t *r)
{
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    if (h->pooled >= DLV_HTTP_POOL_MAX) {
        req_free(r);
        return;
    }
    r->prev = NULL;
    r->next = h->pool;
    h->pool = r;
    h->pooled++;
}

void dlv_http_destroy(dlv_http_t *h)
{
    if (!h)
        return;
    while (h->active) {
        dlv_http_req_t *r = h->active;
        h->active = r->next;
        curl_multi_remove_handle(h->multi, r->easy);
        req_free(r);
    }
    while (h->pool) {
        dlv_http_req_t *r = h->pool;
        h->pool = r->next;
        req_free(r);
    }
    curl_multi_cleanup(h->multi);
    free(h);
}

static size_t on_body(char *data, size_t size, size_t n, void *opaque)
{
    dlv_http_req_t *r = opaque;
    size_t total = size * n;
    size_t take = total;
    if (r->len + take > r->max) {
        take = r->max - r->len;
        r->truncated = true;
    }
    if (take > 0) {
        if (r->len + take + 1 > r->cap) {
            size_t cap = r->cap ? r->cap : BODY_INITIAL;
            while (cap < r->len + take + 1)
                cap *= 2;
            if (cap > r->max + 1)
                cap = r->max + 1;
            char *p = realloc(r->body, cap);
            if (!p) {
                r->truncated = true;
                return total; /* keep the transfer; the body is only for the record */
            }
            r->body = p;
            r->cap = cap;
        }
        memcpy(r->body + r->len, data, take);
        r->len += take;
        r->body[r->len] = '\0';
    }
    return total;
}

static size_t on_header(char *data, size_t size, size_t n, void *opaque)
{
    dlv_http_req_t *r = opaque;
    size_t len = size * n;
    static const char name[] = "Retry-After:";
    if (len > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
        const char *v = data + sizeof(name) - 1;
        size_t vlen = len - (sizeof(name) - 1);
        while (vlen > 0 && (*v == ' ' || *v == '\t'))
            v++, vlen--;
        while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
            vlen--;
        if (vlen < sizeof(r->retry_after)) {
            memcpy(r->retry_after, v, vlen);
            r->retry_after[vlen] = '\0';
            r->has_retry_after = true;
        }
    }
    return len;
}

dlv_http_req_t *dlv_http_start(dlv_http_t *h, const struct dlv_http_spec *spec, dlv_http_done_cb cb,
                               void *opaque, struct sl_err *err)
{
    struct curl_slist *headers = curl_slist_append(spec->headers, "Expect:");
    dlv_http_req_t *r = h->pool;
    if (!headers) {
        curl_slist_free_all(spec->headers);
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (r) {
        h->pool = r->next;
        h->pooled--;
        curl_easy_reset(r->easy);
    } else {
        r = calloc(1, sizeof(*r));
        if (!r || !(r->easy = curl_easy_init())) {
            free(r);
            curl_slist_free_all(headers);
            sl_err_set(err, SL_ERR_NOMEM, "libcurl: cannot create a request");
            return NULL;
        }
    }
    r->h = h;
    r->headers = headers;
    r->cb = cb;
    r->opaque = opaque;
    r->len = 0;
    r->max = spec->body_max;
    r->truncated = false;
    r->has_retry_after = false;
    r->errbuf[0] = '\0';
    if (r->body)
        r->body[0] = '\0';

    CURL *e = r->easy;
    long connect_ms =
        spec->timeout_ms < CONNECT_TIMEOUT_MAX_MS ? spec->timeout_ms : CONNECT_TIMEOUT_MAX_MS;
    CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_URL, spec->url);
    SET(CURLOPT_PRIVATE, r);
    SET(CURLOPT_HTTPHEADER, headers);
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)spec->len);
    SET(CURLOPT_POSTFIELDS, spec->len ? spec->body : "");
    if (strcmp(spec->method, "POST") != 0)
        SET(CURLOPT_CUSTOMREQUEST, spec->method);
    SET(CURLOPT_TIMEOUT_MS, spec->timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    /* The path as built, never with dot segments resolved by libcurl: template.h refuses them,
     * and what the audit shows is what was sent. */
    SET(CURLOPT_PATH_AS_IS, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, r);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, r);
    SET(CURLOPT_ERRORBUFFER, r->errbuf);
#undef SET
    if (rc != CURLE_OK) {
        sl_err_set(err, SL_ERR_INVALID, "libcurl: %s", curl_easy_strerror(rc));
        req_recycle(h, r);
        return NULL;
    }
    CURLMcode mrc = curl_multi_add_handle(h->multi, e);
    if (mrc != CURLM_OK) {
        sl_err_set(err, SL_ERR_INTERNAL, "libcurl: %s", curl_multi_strerror(mrc));
        req_recycle(h, r);
        return NULL;
    }
    r->prev = NULL;
    r->next = h->active;
    if (h->active)
        h->active->prev = r;
    h->active = r;
    h->running++;
    return r;
}

/* Takes a request out of the multi and the running list. */
static void req_detach(dlv_http_t *h, dlv_http_req_t *r)
{
    curl_multi_remove_handle(h->multi, r->easy);
    if (r->prev)
        r->prev->next = r->next;
    else
        h->active = r->next;
    if (r->next)
        r->next->prev = r->prev;
    h->running--;
}

void dlv_http_cancel(dlv_http_t *h, dlv_http_req_t *r)
{
    req_detach(h, r);
    req_recycle(h, r);
}

bool dlv_http_wait(dlv_http_t *h, int fd, int timeout_ms)
{
    struct curl_waitfd extra = {.fd = fd, .events = CURL_WAIT_POLLIN};
    curl_multi_poll(h->multi, fd >= 0 ? &extra : NULL, fd >= 0 ? 1 : 0,
                    timeout_ms < 0 ? 0 : timeout_ms, NULL);
    return fd >= 0 && (extra.revents & CURL_WAIT_POLLIN);
}

void dlv_http_run(dlv_http_t *h)
{
    int still = 0;
    curl_multi_perform(h->multi, &still);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(h->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *e = msg->easy_handle;
        CURLcode code = msg->data.result;
        dlv_http_req_t *r = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
        struct dlv_http_result res = {.code = code, .error = ""};
        if (code == CURLE_OK)
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &res.status);
        else
            res.error = r->errbuf[0] ? r->errbuf : curl_easy_strerror(code);
        curl_easy_getinfo(e, CURLINFO_TOTAL_TIME, &res.seconds);
        res.body = r->body ? r->body : "";
        res.body_len = r->len;
        res.body_truncated = r->truncated;
        res.retry_after = r->has_retry_after ? r->retry_after : NULL;
        req_detach(h, r);
        r->cb(r->opaque, &res);
        req_recycle(h, r);
    }
}

size_t dlv_http_running(const dlv_http_t *h)
{
    return h->running;
}
