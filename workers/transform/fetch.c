/*
 * fetch: see fetch.h. The body is collected into a buffer that grows up to the caller's bound;
 * the bound is enforced twice, by CURLOPT_MAXFILESIZE_LARGE for a declared Content-Length (the
 * transfer stops before the body) and by the write callback for everything else (chunked or
 * compressed answers), so a misbehaving API can never make the stage hold more than max_bytes.
 */
#include "fetch.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fetch {
    CURL *curl;
    struct curl_slist *headers;
};

/* The answer being collected. */
struct body {
    char *buf;
    size_t len, cap, max;
    bool too_big;
};

fetch_t *fetch_new(const char *const *headers, struct sl_err *err)
{
    fetch_t *f = calloc(1, sizeof(*f));
    if (!f || !(f->curl = curl_easy_init()))
        goto nomem;
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    if (!h)
        goto nomem;
    f->headers = h;
    for (size_t i = 0; headers && headers[i]; i++) {
        if (i >= FETCH_HEADERS_MAX) {
            sl_err_set(err, SL_ERR_CONFIG, "more than %d request headers", FETCH_HEADERS_MAX);
            goto fail;
        }
        if (!(h = curl_slist_append(f->headers, headers[i])))
            goto nomem;
        f->headers = h;
    }
    return f;
nomem:
    sl_err_set(err, SL_ERR_NOMEM, "out of memory");
fail:
    fetch_destroy(f);
    return NULL;
}

void fetch_destroy(fetch_t *f)
{
    if (!f)
        return;
    curl_slist_free_all(f->headers);
    if (f->curl)
        curl_easy_cleanup(f->curl);
    free(f);
}

void fetch_redact(const char *url, char *out, size_t size)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK) {
        curl_url_get(u, CURLUPART_PORT, &port, 0); /* absent: the scheme's default */
        snprintf(out, size, "%s://%s%s%s%s", scheme, host, port ? ":" : "", port ? port : "", path);
    } else {
        snprintf(out, size, "(malformed URL)");
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
}

static size_t on_data(char *data, size_t size, size_t n, void *opaque)
{
    struct body *b = opaque;
    size_t take = size * n;
    if (take > b->max - b->len) {
        b->too_big = true;
        return 0; /* CURLE_WRITE_ERROR ends the transfer */
    }
    if (b->len + take + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + take + 1)
            cap *= 2;
        if (cap > b->max + 1)
            cap = b->max + 1;
        char *p = realloc(b->buf, cap);
        if (!p)
            return 0;
        b->buf = p;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, data, take);
    b->len += take;
    b->buf[b->len] = '\0';
    return take;
}

/* The class of an HTTP status (fetch.h). */
static enum fetch_class classify_status(long status, const char *where, struct sl_err *err)
{
    if (status >= 200 && status < 300)
        return FETCH_OK;
    if (status == 404 || status == 410) {
        sl_err_set(err, SL_ERR_NOT_FOUND, "HTTP %ld from %s", status, where);
        return FETCH_NOT_FOUND;
    }
    if (status == 408 || status == 425 || status == 429 || status >= 500) {
        sl_err_retriable(err, SL_ERR_UNAVAILABLE, "HTTP %ld from %s", status, where);
        return FETCH_RETRY;
    }
    if (status == 401 || status == 403) {
        sl_err_set(err, SL_ERR_CONFIG, "HTTP %ld from %s: check the lookup's credentials", status,
                   where);
        return FETCH_RETRY;
    }
    sl_err_set(err, SL_ERR_INVALID, "HTTP %ld from %s", status, where);
    return FETCH_FAILED;
}

enum fetch_class fetch_get(fetch_t *f, const char *url, long timeout_ms, size_t max_bytes,
                           char **body, size_t *len, struct sl_err *err)
{
    char where[512];
    struct body b = {.max = max_bytes};
    enum fetch_class cls = FETCH_FAILED;
    long status = 0;
    *body = NULL;
    *len = 0;
    fetch_redact(url, where, sizeof(where));

    CURL *c = f->curl;
    curl_easy_reset(c); /* keeps the connection cache: the next GET reuses the connection */
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, f->headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "sluice-transform/" SLUICE_VERSION);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L); /* lookup.c refuses dot segments */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_bytes);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);

    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    bool bounded = b.too_big || rc == CURLE_FILESIZE_EXCEEDED;
    if (rc == CURLE_OK || (bounded && status > 0)) {
        /* A status decides first: an oversized error page is still a 503. */
        cls = classify_status(status, where, err);
        if (cls == FETCH_OK && bounded) {
            sl_err_set(err, SL_ERR_INVALID, "the answer of %s is larger than %zu bytes", where,
                       max_bytes);
            cls = FETCH_FAILED;
        }
        goto out;
    }
    switch (rc) {
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        sl_err_set(err, SL_ERR_INVALID, "cannot GET %s: %s (only http and https URLs)", where,
                   curl_easy_strerror(rc));
        cls = FETCH_FAILED;
        break;
    case CURLE_OUT_OF_MEMORY:
    case CURLE_WRITE_ERROR: /* our buffer could not grow */
        sl_err_retriable(err, SL_ERR_NOMEM, "GET %s: out of memory", where);
        cls = FETCH_RETRY;
        break;
    case CURLE_OPERATION_TIMEDOUT:
        sl_err_retriable(err, SL_ERR_TIMEOUT, "GET %s: no answer within %ld ms", where, timeout_ms);
        cls = FETCH_RETRY;
        break;
    default:
        /* Connection refused or reset, DNS, TLS handshake: the API or the way to it is down. */
        sl_err_retriable(err, SL_ERR_UNAVAILABLE, "GET %s: %s", where, curl_easy_strerror(rc));
        cls = FETCH_RETRY;
        break;
    }
out:
    if (cls == FETCH_OK) {
        if (!b.buf && !(b.buf = calloc(1, 1))) { /* an empty answer */
            sl_err_retriable(err, SL_ERR_NOMEM, "GET %s: out of memory", where);
            return FETCH_RETRY;
        }
        *body = b.buf;
        *len = b.len;
        return cls;
    }
    free(b.buf);
    return cls;
}
