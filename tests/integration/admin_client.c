#include "admin_client.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_test.h"

/* Appends p[0..n) to buf (*len bytes of max, kept NUL-terminated) when it fits whole. */
static void keep(char *buf, size_t *len, size_t max, const char *p, size_t n)
{
    if (*len + n < max) {
        memcpy(buf + *len, p, n);
        *len += n;
        buf[*len] = '\0';
    }
}

static size_t on_body(char *p, size_t size, size_t n, void *opaque)
{
    struct admin_answer *a = opaque;
    keep(a->body, &a->len, ADMIN_CLIENT_BODY_MAX, p, size * n);
    return size * n;
}

static size_t on_head(char *p, size_t size, size_t n, void *opaque)
{
    struct admin_answer *a = opaque;
    keep(a->head, &a->head_len, ADMIN_CLIENT_HEAD_MAX, p, size * n);
    return size * n;
}

struct admin_answer admin_call(int port, const char *method, const char *path, const char *token,
                               const char *body)
{
    struct admin_answer a = {.body = calloc(1, ADMIN_CLIENT_BODY_MAX)};
    SL_REQUIRE(a.body);
    char url[4096], auth[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    if (token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    if (body) {
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_head);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &a);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    SL_CHECK_INT(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return a;
}

static json_t *json_of(const struct admin_answer *a)
{
    json_error_t jerr;
    json_t *doc = json_loads(a->body, 0, &jerr);
    if (!doc)
        sl_test_fail(__FILE__, __LINE__, "not JSON (%s): %.200s", jerr.text, a->body);
    return doc;
}

json_t *admin_expect(int port, const char *method, const char *path, const char *token,
                     const char *body, long status)
{
    struct admin_answer a = admin_call(port, method, path, token, body);
    if (a.status != status)
        sl_test_fail(__FILE__, __LINE__, "%s %s: %ld, want %ld: %.300s", method, path, a.status,
                     status, a.body);
    json_t *doc = json_of(&a);
    free(a.body);
    SL_REQUIRE(doc);
    return doc;
}

void admin_token_hash(const char *token, char *hex)
{
    unsigned char md[32];
    unsigned int len = 0;
    SL_REQUIRE(EVP_Digest(token, strlen(token), md, &len, EVP_sha256(), NULL) && len == 32);
    for (unsigned int i = 0; i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}
