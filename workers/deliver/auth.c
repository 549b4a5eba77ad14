#include "auth.h"

#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "secret.h"

#define NAME_MAX_LEN 256 /* header name, user name, client id */
#define SCOPE_MAX    1024

struct dlv_auth {
    enum dlv_auth_type type;
    char header[NAME_MAX_LEN];
    char username[NAME_MAX_LEN];
    dlv_secret_t *secret; /* token, password or client secret */
    char token_url[DLV_AUTH_URL_MAX];
    char client_id[NAME_MAX_LEN];
    char scope[SCOPE_MAX];
    /* oauth2 */
    char token[DLV_AUTH_TOKEN_MAX + 1];
    bool have_token, fetching;
    long long expires_ms, refresh_ms, retry_ms, backoff_ms;
    unsigned generation; /* oauth2: one per token */
};

static const char *const type_names[] = {
    [DLV_AUTH_NONE] = "none",
    [DLV_AUTH_BEARER] = "bearer",
    [DLV_AUTH_API_KEY] = "api-key",
    [DLV_AUTH_BASIC] = "basic",
    [DLV_AUTH_OAUTH2] = "oauth2-client-credentials",
};

int dlv_auth_type_parse(const char *name, enum dlv_auth_type *out)
{
    for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
        if (name && strcmp(name, type_names[i]) == 0) {
            *out = (enum dlv_auth_type)i;
            return 0;
        }
    return -1;
}

/* Visible ASCII without separators: what may go into a header name or a user name. */
static bool token_chars(const char *s, bool allow_space)
{
    for (; *s; s++)
        if (*s < ' ' || *s == 0x7f || (*s == ' ' && !allow_space) || *s == ':')
            return false;
    return true;
}

static int copy(char *dst, size_t size, const char *src, const char *what, struct sl_err *err)
{
    if (!src || !*src)
        return sl_err_set(err, SL_ERR_CONFIG, "auth: %s is required", what);
    if (strlen(src) >= size)
        return sl_err_set(err, SL_ERR_CONFIG, "auth: %s is longer than %zu bytes", what, size - 1);
    memcpy(dst, src, strlen(src) + 1);
    return 0;
}

static dlv_secret_t *secret_of(const char *value, const char *file, const char *what,
                               struct sl_err *err)
{
    if (!value == !file) {
        sl_err_set(err, SL_ERR_CONFIG, "auth: give %s or %s_file, one of them", what, what);
        return NULL;
    }
    dlv_secret_t *s = dlv_secret_new(value, file, false, err);
    if (!s)
        sl_err_prefix(err, "auth: %s", what);
    return s;
}

dlv_auth_t *dlv_auth_new(const struct dlv_auth_conf *c, struct sl_err *err)
{
    dlv_auth_t *a = calloc(1, sizeof(*a));
    if (!a) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    a->type = c->type;
    switch (c->type) {
    case DLV_AUTH_NONE:
        break;
    case DLV_AUTH_API_KEY:
        if (copy(a->header, sizeof(a->header), c->header, "header", err) != 0)
            goto fail;
        if (!token_chars(a->header, false)) {
            sl_err_set(err, SL_ERR_CONFIG, "auth: header must be a header name");
            goto fail;
        }
        __attribute__((fallthrough)); /* the key itself is a token */
    case DLV_AUTH_BEARER:
        if (!(a->secret = secret_of(c->token, c->token_file, "token", err)))
            goto fail;
        break;
    case DLV_AUTH_BASIC:
        if (copy(a->username, sizeof(a->username), c->username, "username", err) != 0)
            goto fail;
        if (!token_chars(a->username, true)) {
            sl_err_set(err, SL_ERR_CONFIG, "auth: username must not hold ':' or control bytes");
            goto fail;
        }
        if (!(a->secret = secret_of(c->password, c->password_file, "password", err)))
            goto fail;
        break;
    case DLV_AUTH_OAUTH2:
        if (copy(a->token_url, sizeof(a->token_url), c->token_url, "token_url", err) != 0 ||
            copy(a->client_id, sizeof(a->client_id), c->client_id, "client_id", err) != 0)
            goto fail;
        if (strncmp(a->token_url, "http://", 7) != 0 && strncmp(a->token_url, "https://", 8) != 0) {
            sl_err_set(err, SL_ERR_CONFIG, "auth: token_url must be an http:// or https:// URL");
            goto fail;
        }
        if (c->scope && copy(a->scope, sizeof(a->scope), c->scope, "scope", err) != 0)
            goto fail;
        if (!(a->secret = secret_of(c->client_secret, c->client_secret_file, "client_secret", err)))
            goto fail;
        break;
    }
    return a;
fail:
    dlv_auth_destroy(a);
    return NULL;
}

void dlv_auth_destroy(dlv_auth_t *a)
{
    if (!a)
        return;
    dlv_secret_destroy(a->secret);
    explicit_bzero(a, sizeof(*a));
    free(a);
}

/* base64 of "<a>:<b>" into out; false when it does not fit. */
static bool basic_credentials(const char *a, const char *b, char *out, size_t size)
{
    char plain[DLV_SECRET_MAX + NAME_MAX_LEN * 4];
    int n = snprintf(plain, sizeof(plain), "%s:%s", a, b);
    bool ok = n > 0 && (size_t)n < sizeof(plain) && (size_t)(4 * ((n + 2) / 3) + 1) <= size;
    if (ok)
        EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)plain, n);
    explicit_bzero(plain, sizeof(plain));
    return ok;
}

static bool put(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static bool put(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, size, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < size;
}

bool dlv_auth_header(dlv_auth_t *a, long long now_ms, char *out, size_t size, unsigned *generation)
{
    char b64[DLV_AUTH_HEADER_MAX];
    bool ok = true;
    out[0] = '\0';
    *generation = 0;
    switch (a->type) {
    case DLV_AUTH_NONE:
        break;
    case DLV_AUTH_BEARER:
        ok = put(out, size, "Authorization: Bearer %s",
                 dlv_secret_get(a->secret, now_ms, false, generation));
        break;
    case DLV_AUTH_API_KEY:
        ok = put(out, size, "%s: %s", a->header,
                 dlv_secret_get(a->secret, now_ms, false, generation));
        break;
    case DLV_AUTH_BASIC:
        ok = basic_credentials(a->username, dlv_secret_get(a->secret, now_ms, false, generation),
                               b64, sizeof(b64)) &&
             put(out, size, "Authorization: Basic %s", b64);
        explicit_bzero(b64, sizeof(b64));
        break;
    case DLV_AUTH_OAUTH2:
        if (!a->have_token || now_ms >= a->expires_ms)
            return false;
        *generation = a->generation;
        ok = put(out, size, "Authorization: Bearer %s", a->token);
        break;
    }
    if (!ok)
        out[0] = '\0'; /* cannot happen within the named bounds; send no credential rather
                          than a cut one, and let the 401 say so */
    return true;
}

bool dlv_auth_held(const dlv_auth_t *a)
{
    return a->have_token;
}

bool dlv_auth_fetch_due(const dlv_auth_t *a, long long now_ms)
{
    return a->type == DLV_AUTH_OAUTH2 && !a->fetching && now_ms >= a->retry_ms &&
           (!a->have_token || now_ms >= a->refresh_ms);
}

long long dlv_auth_wake_ms(const dlv_auth_t *a, long long now_ms)
{
    if (a->type != DLV_AUTH_OAUTH2)
        return now_ms;
    if (a->fetching)
        return LLONG_MAX;
    return a->retry_ms > now_ms ? a->retry_ms : now_ms;
}

/* application/x-www-form-urlencoded (RFC 6749 appendix B): unreserved bytes as they are,
 * everything else %XX. False when it does not fit. */
static bool form_encode(const char *in, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        if (o + (plain ? 1 : 3) >= size)
            return false;
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
    return true;
}

static void start_backoff(dlv_auth_t *a, long long now_ms)
{
    a->backoff_ms = a->backoff_ms ? a->backoff_ms * 2 : DLV_AUTH_BACKOFF_MIN_MS;
    if (a->backoff_ms > DLV_AUTH_BACKOFF_MAX_MS)
        a->backoff_ms = DLV_AUTH_BACKOFF_MAX_MS;
    a->retry_ms = now_ms + a->backoff_ms;
}

int dlv_auth_fetch_begin(dlv_auth_t *a, long long now_ms, struct dlv_auth_fetch *f,
                         struct sl_err *err)
{
    char id[NAME_MAX_LEN * 3], secret[DLV_SECRET_MAX * 3], b64[DLV_AUTH_HEADER_MAX];
    char scope[SCOPE_MAX * 3];
    int rc = -1;
    if (a->type != DLV_AUTH_OAUTH2) {
        sl_err_set(err, SL_ERR_INTERNAL, "auth: not an OAuth2 destination");
        goto out;
    }
    /* The file is checked at every fetch: a rotated client secret is used at once. */
    const char *s = dlv_secret_get(a->secret, now_ms, true, NULL);
    if (!form_encode(a->client_id, id, sizeof(id)) || !form_encode(s, secret, sizeof(secret)) ||
        !form_encode(a->scope, scope, sizeof(scope)) ||
        !basic_credentials(id, secret, b64, sizeof(b64)) ||
        !put(f->authorization, sizeof(f->authorization), "Authorization: Basic %s", b64) ||
        !put(f->body, sizeof(f->body), "grant_type=client_credentials%s%s",
             a->scope[0] ? "&scope=" : "", scope)) {
        sl_err_set(err, SL_ERR_CONFIG, "auth: the token request does not fit its bounds");
        start_backoff(a, now_ms);
        goto out;
    }
    memcpy(f->url, a->token_url, strlen(a->token_url) + 1);
    a->fetching = true;
    rc = 0;
out:
    explicit_bzero(secret, sizeof(secret));
    explicit_bzero(b64, sizeof(b64));
    return rc;
}

/* Visible ASCII without spaces: an access token must be usable as it is in a header. */
static bool valid_token(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > DLV_AUTH_TOKEN_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (t[i] <= ' ' || t[i] >= 0x7f)
            return false;
    return true;
}

int dlv_auth_fetch_done(dlv_auth_t *a, long status, const char *body, size_t len, long long now_ms,
                        struct sl_err *err)
{
    a->fetching = false;
    json_t *doc = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    const char *token = json_string_value(json_object_get(doc, "access_token"));
    const char *type = json_string_value(json_object_get(doc, "token_type"));
    json_t *expires = json_object_get(doc, "expires_in");
    int rc = -1;

    if (status != 200) {
        const char *oauth_error = json_string_value(json_object_get(doc, "error"));
        if (status == 0)
            sl_err_set(err, SL_ERR_UNAVAILABLE, "token endpoint did not answer");
        else
            sl_err_set(err, SL_ERR_UNAVAILABLE, "token endpoint answered %ld%s%s", status,
                       oauth_error && token_chars(oauth_error, false) && strlen(oauth_error) < 64
                           ? ": "
                           : "",
                       oauth_error && token_chars(oauth_error, false) && strlen(oauth_error) < 64
                           ? oauth_error
                           : "");
        goto out;
    }
    if (!token || !valid_token(token)) {
        sl_err_set(err, SL_ERR_UNAVAILABLE,
                   "token endpoint answered 200 without a usable "
                   "access_token");
        goto out;
    }
    if (type && strcasecmp(type, "bearer") != 0) {
        sl_err_set(err, SL_ERR_UNAVAILABLE,
                   "token endpoint issued a token of type %.32s, not "
                   "Bearer",
                   token_chars(type, false) ? type : "?");
        goto out;
    }
    long long ttl = DLV_AUTH_DEFAULT_TTL_MS;
    if (json_is_number(expires) && json_number_value(expires) > 0)
        ttl = json_number_value(expires) > 365.0 * 86400
                  ? 365LL * 86400000
                  : (long long)(json_number_value(expires) * 1000);
    long long margin = ttl / 4 < DLV_AUTH_REFRESH_MAX_MS ? ttl / 4 : DLV_AUTH_REFRESH_MAX_MS;
    memcpy(a->token, token, strlen(token) + 1);
    a->have_token = true;
    a->expires_ms = now_ms + ttl;
    a->refresh_ms = a->expires_ms - margin;
    a->generation++;
    a->backoff_ms = 0;
    a->retry_ms = 0;
    rc = 0;
out:
    if (rc != 0)
        start_backoff(a, now_ms);
    json_decref(doc); /* the token copy in the document goes with it */
    return rc;
}

bool dlv_auth_rejected(dlv_auth_t *a, unsigned generation, long long now_ms)
{
    switch (a->type) {
    case DLV_AUTH_NONE:
        return false;
    case DLV_AUTH_OAUTH2:
        if (generation == a->generation && a->have_token) {
            explicit_bzero(a->token, sizeof(a->token));
            a->have_token = false;
            a->retry_ms = 0; /* fetch at once, whatever the backoff */
            a->backoff_ms = 0;
        }
        return true;
    case DLV_AUTH_BEARER:
    case DLV_AUTH_API_KEY:
    case DLV_AUTH_BASIC:
        if (!dlv_secret_is_file(a->secret))
            return false;
        unsigned now_gen;
        dlv_secret_get(a->secret, now_ms, true, &now_gen);
        return now_gen != generation;
    }
    return false;
}
