/*
 * lookup: see lookup.h. A lookup is built from its pipeline entry once (expressions compiled,
 * the keys that do not belong to its type refused), then run once per matching event on the
 * stage's thread: evaluate what to ask, ask Redis or the API, turn the answer into JSON.
 */
#include "lookup.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetch.h"
#include "sl_expr.h"
#include "sl_log.h"
#include "sl_text.h"

/* "<prefix>lookup:<64 hex digits>" */
#define LOOKUP_CACHE_KEY_MAX (256 + 8 + 64)

struct lookup {
    const char *name; /* borrowed from the pipeline file */
    enum lookup_type type;
    sl_expr_t *key, *field; /* redis; field NULL: GET */
    bool json;              /* redis: parse the value */
    sl_expr_t *url;         /* http */
    long long timeout_ms, cache_ttl_ms, max_bytes;
    const sl_conf_t *conf;              /* borrowed */
    const sl_conf_node_t *headers_node; /* http: the `headers` map, NULL when none */
    char **headers; /* http: NULL-terminated "Name: value" lines, owned; made by lookup_start() */
    /* Set by lookup_start(). */
    sl_redis_t *redis; /* borrowed */
    const char *prefix;
    fetch_t *fetch;
};

/* ---- building ---- */

void lookup_destroy(lookup_t *l)
{
    if (!l)
        return;
    sl_expr_destroy(l->key);
    sl_expr_destroy(l->field);
    sl_expr_destroy(l->url);
    for (size_t i = 0; l->headers && l->headers[i]; i++)
        free(l->headers[i]);
    free(l->headers);
    fetch_destroy(l->fetch);
    free(l);
}

/* Names usable as `.lookups.<name>` in jq without quoting. */
static bool valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > LOOKUP_NAME_MAX || (name[0] >= '0' && name[0] <= '9'))
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return false;
    return true;
}

/* Compiles the member `key` of `node` as the expression "<lookup>.<key>"; *out stays NULL when
 * the member is absent. */
static int compile_member(const sl_conf_t *conf, const sl_conf_node_t *node, const char *key,
                          const char *name, sl_expr_t **out, struct sl_err *err)
{
    const char *program;
    char expr_name[SL_EXPR_MAX_NAME + 1];
    if (sl_conf_str(conf, node, key, NULL, &program, err) != 0)
        return -1;
    if (!program)
        return 0;
    snprintf(expr_name, sizeof(expr_name), "%s.%s", name, key);
    if (!(*out = sl_expr_compile(expr_name, program, err))) {
        const sl_conf_node_t *at = sl_conf_get(node, key);
        sl_err_prefix(err, "%s:%d: %s", sl_conf_file(conf), sl_conf_line(at), sl_conf_keypath(at));
        return -1;
    }
    return 0;
}

/* Refuses the members of `node` that only the other type uses. */
static int refuse_keys(const sl_conf_t *conf, const sl_conf_node_t *node, const char *const *keys,
                       const char *type, struct sl_err *err)
{
    for (size_t i = 0; keys[i]; i++)
        if (sl_conf_get(node, keys[i]))
            return sl_conf_error(conf, sl_conf_get(node, keys[i]), err, "not a key of %s lookups",
                                 type);
    return 0;
}

/* Checks the `headers` map: names, and values that are scalars. Their text is read only by
 * lookup_start(): a value may name a secret that only sluice-transform's environment holds, and
 * `sluicectl config check` runs elsewhere. */
static int check_headers(const sl_conf_t *conf, const sl_conf_node_t *map, struct sl_err *err)
{
    if (sl_conf_count(map) > FETCH_HEADERS_MAX)
        return sl_conf_error(conf, map, err, "more than %d headers", FETCH_HEADERS_MAX);
    for (size_t i = 0; i < sl_conf_count(map); i++) {
        const char *name = sl_conf_key(map, i);
        if (!*name || strpbrk(name, ": \t\r\n") ||
            sl_conf_type(sl_conf_item(map, i)) != SL_CONF_SCALAR)
            return sl_conf_error(conf, sl_conf_item(map, i), err,
                                 "not a valid header name or value");
    }
    return 0;
}

/* The request header lines "Name: value", NULL-terminated, into l->headers. */
static int build_headers(lookup_t *l, struct sl_err *err)
{
    const sl_conf_node_t *map = l->headers_node;
    size_t n = sl_conf_count(map);
    if (!(l->headers = calloc(n + 1, sizeof(*l->headers))))
        return sl_err_set(err, SL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *name = sl_conf_key(map, i), *value;
        if (sl_conf_as_str(l->conf, sl_conf_item(map, i), &value, err) != 0)
            return -1;
        if (strpbrk(value, "\r\n"))
            return sl_conf_error(l->conf, sl_conf_item(map, i), err,
                                 "a header value cannot span lines");
        size_t size = strlen(name) + strlen(value) + 3;
        if (!(l->headers[i] = malloc(size)))
            return sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        snprintf(l->headers[i], size, "%s: %s", name, value);
    }
    return 0;
}

lookup_t *lookup_new(const sl_conf_t *conf, const sl_conf_node_t *node, struct sl_err *err)
{
    static const char *const redis_only[] = {"key", "field", "json", NULL};
    static const char *const http_only[] = {"url",       "headers",   "timeout",
                                            "cache_ttl", "max_bytes", NULL};
    const char *type;
    lookup_t *l = calloc(1, sizeof(*l));
    if (!l) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    l->conf = conf;
    l->headers_node = sl_conf_get(node, "headers");
    if (sl_conf_str(conf, node, "name", NULL, &l->name, err) != 0 ||
        sl_conf_str(conf, node, "type", NULL, &type, err) != 0)
        goto fail;
    if (!valid_name(l->name)) {
        sl_conf_error(conf, sl_conf_get(node, "name"), err,
                      "a lookup name is 1-%d letters, digits or '_', not starting with a digit",
                      LOOKUP_NAME_MAX);
        goto fail;
    }
    if (strcmp(type, "redis") == 0) {
        l->type = LOOKUP_REDIS;
        if (refuse_keys(conf, node, http_only, type, err) != 0 ||
            sl_conf_bool(conf, node, "json", false, &l->json, err) != 0 ||
            compile_member(conf, node, "key", l->name, &l->key, err) != 0 ||
            compile_member(conf, node, "field", l->name, &l->field, err) != 0)
            goto fail;
        if (!l->key) {
            sl_conf_error(conf, node, err, "a redis lookup needs 'key'");
            goto fail;
        }
    } else {
        l->type = LOOKUP_HTTP;
        if (refuse_keys(conf, node, redis_only, type, err) != 0 ||
            sl_conf_duration_ms(conf, node, "timeout", 2000, 10, 30000, &l->timeout_ms, err) != 0 ||
            sl_conf_duration_ms(conf, node, "cache_ttl", 300000, 0, 7LL * 86400000,
                                &l->cache_ttl_ms, err) != 0 ||
            sl_conf_size(conf, node, "max_bytes", 256 * 1024, 1, 16 * 1024 * 1024, &l->max_bytes,
                         err) != 0 ||
            check_headers(conf, sl_conf_get(node, "headers"), err) != 0 ||
            compile_member(conf, node, "url", l->name, &l->url, err) != 0)
            goto fail;
        if (!l->url) {
            sl_conf_error(conf, node, err, "an http lookup needs 'url'");
            goto fail;
        }
    }
    return l;
fail:
    lookup_destroy(l);
    return NULL;
}

const char *lookup_name(const lookup_t *l)
{
    return l->name;
}

enum lookup_type lookup_type(const lookup_t *l)
{
    return l->type;
}

bool lookup_needs_redis(const lookup_t *l)
{
    return l->type == LOOKUP_REDIS || l->cache_ttl_ms > 0;
}

int lookup_start(lookup_t *l, sl_redis_t *redis, const char *prefix, struct sl_err *err)
{
    l->redis = redis;
    l->prefix = prefix;
    if (l->type == LOOKUP_HTTP && (build_headers(l, err) != 0 ||
                                   !(l->fetch = fetch_new((const char *const *)l->headers, err))))
        return -1;
    return 0;
}

/* ---- running ---- */

/* What an expression gives to ask for: a string (copied with its length: it may hold NUL bytes)
 * or an integer, into buf[size] and *len. LOOKUP_MISSING for null. */
static enum lookup_result eval_text(sl_expr_t *e, const json_t *input, const char *what, char *buf,
                                    size_t size, size_t *len, struct sl_err *err)
{
    json_t *v = sl_expr_value(e, input, err);
    if (!v)
        return LOOKUP_FAILED;
    enum lookup_result r = LOOKUP_FAILED;
    size_t n = 0;
    if (json_is_null(v)) {
        sl_err_set(err, SL_ERR_NOT_FOUND, "the %s is null: nothing to look up", what);
        r = LOOKUP_MISSING;
    } else if (json_is_string(v) || json_is_integer(v)) {
        char digits[32];
        const char *text = digits;
        if (json_is_string(v)) {
            text = json_string_value(v);
            n = json_string_length(v);
        } else {
            n = (size_t)snprintf(digits, sizeof(digits), "%" JSON_INTEGER_FORMAT,
                                 json_integer_value(v));
        }
        if (n < size) {
            memcpy(buf, text, n);
            buf[n] = '\0';
            *len = n;
            r = LOOKUP_FOUND;
        } else {
            sl_err_set(err, SL_ERR_INVALID, "the %s is longer than %zu bytes", what, size - 1);
        }
    } else {
        sl_err_set(err, SL_ERR_INVALID, "the %s must be a string or an integer, not %s", what,
                   json_is_object(v)  ? "an object"
                   : json_is_array(v) ? "an array"
                   : json_is_real(v)  ? "a fraction"
                                      : "a boolean");
    }
    json_decref(v);
    return r;
}

/* A failed Redis command: refused credentials and unreachable servers hold the event, an error
 * reply (WRONGTYPE, say) fails it. */
static enum lookup_result redis_failed(struct sl_err *err)
{
    return err->retriable || err->code == SL_ERR_CONFIG ? LOOKUP_RETRY : LOOKUP_FAILED;
}

static enum lookup_result run_redis(lookup_t *l, const json_t *input, json_t **value,
                                    struct sl_err *err)
{
    char key[LOOKUP_KEY_MAX + 1], field[LOOKUP_KEY_MAX + 1];
    size_t key_len, field_len = 0;
    enum lookup_result r = eval_text(l->key, input, "key", key, sizeof(key), &key_len, err);
    if (r == LOOKUP_FOUND && l->field)
        r = eval_text(l->field, input, "field", field, sizeof(field), &field_len, err);
    if (r != LOOKUP_FOUND)
        return r;
    const char *argv[] = {l->field ? "HGET" : "GET", key, field};
    const size_t argvlen[] = {strlen(argv[0]), key_len, field_len};
    redisReply *reply;
    if (sl_redis_cmd(l->redis, &reply, l->field ? 3 : 2, argv, argvlen, err) != 0) {
        sl_err_prefix(err, "redis %s %s%s%s", argv[0], key, l->field ? " " : "",
                      l->field ? field : "");
        return redis_failed(err);
    }
    if (reply->type == REDIS_REPLY_NIL) {
        sl_err_set(err, SL_ERR_NOT_FOUND, "redis %s %s%s%s: not found", argv[0], key,
                   l->field ? " " : "", l->field ? field : "");
        r = LOOKUP_MISSING;
    } else if (reply->type != REDIS_REPLY_STRING) {
        sl_err_set(err, SL_ERR_INVALID, "redis %s %s: unexpected reply type %d", argv[0], key,
                   reply->type);
        r = LOOKUP_FAILED;
    } else if (l->json) {
        json_error_t jerr;
        *value =
            json_loadb(reply->str, reply->len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
        if (!*value) {
            sl_err_set(err, SL_ERR_INVALID, "redis %s %s: the value is not JSON: %s", argv[0], key,
                       jerr.text);
            r = LOOKUP_FAILED;
        }
    } else if (!(*value = json_stringn(reply->str, reply->len))) {
        sl_err_set(err, SL_ERR_INVALID, "redis %s %s: the value is not UTF-8 text", argv[0], key);
        r = LOOKUP_FAILED;
    }
    freeReplyObject(reply);
    return r;
}

/* "<prefix>lookup:<hex SHA-256 of url>": bounded whatever the URL's length. */
static int cache_key(const lookup_t *l, const char *url, char *out, size_t size, struct sl_err *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(url, strlen(url), md, &md_len, EVP_sha256(), NULL) != 1)
        return sl_err_retriable(err, SL_ERR_NOMEM, "cannot hash the URL");
    int n = snprintf(out, size, "%slookup:", l->prefix);
    for (unsigned int i = 0; i < md_len && n > 0 && (size_t)n + 2 < size; i++)
        n += snprintf(out + n, size - (size_t)n, "%02x", md[i]);
    return 0;
}

/* A cached answer into *value: LOOKUP_FOUND, or LOOKUP_MISSING when there is none (or it is
 * unreadable: it is then fetched again and overwritten). */
static enum lookup_result cache_get(lookup_t *l, const char *key, const char *where, json_t **value,
                                    struct sl_err *err)
{
    const char *argv[] = {"GET", key};
    redisReply *reply;
    if (sl_redis_cmd(l->redis, &reply, 2, argv, NULL, err) != 0) {
        sl_err_prefix(err, "the cache of GET %s", where);
        return redis_failed(err);
    }
    if (reply->type == REDIS_REPLY_STRING)
        *value = json_loadb(reply->str, reply->len, JSON_DECODE_ANY, NULL);
    freeReplyObject(reply);
    return *value ? LOOKUP_FOUND : LOOKUP_MISSING;
}

/* Keeps an answer for cache_ttl. The answer is in hand: a cache that cannot take it only costs
 * a later request, so a failure is not the event's. */
static void cache_put(lookup_t *l, const char *key, const char *where, const char *body, size_t len)
{
    char ttl[32];
    struct sl_err err;
    redisReply *reply;
    snprintf(ttl, sizeof(ttl), "%lld", l->cache_ttl_ms);
    const char *argv[] = {"SET", key, body, "PX", ttl};
    const size_t argvlen[] = {3, strlen(key), len, 2, strlen(ttl)};
    if (sl_redis_cmd(l->redis, &reply, 5, argv, argvlen, &err) == 0)
        freeReplyObject(reply);
    else
        SL_DEBUG("lookup '%s': cannot cache GET %s: %s", l->name, where, err.msg);
}

static enum lookup_result run_http(lookup_t *l, const json_t *input, json_t **value, bool *cached,
                                   struct sl_err *err)
{
    char url[FETCH_URL_MAX + 1], where[512], key[LOOKUP_CACHE_KEY_MAX];
    size_t url_len;
    enum lookup_result r = eval_text(l->url, input, "URL", url, sizeof(url), &url_len, err);
    if (r != LOOKUP_FOUND)
        return r;
    if (strlen(url) != url_len) {
        sl_err_set(err, SL_ERR_INVALID, "the URL contains a NUL character");
        return LOOKUP_FAILED;
    }
    fetch_redact(url, where, sizeof(where));
    if (sl_url_refuse_dot_segments(url, err) != 0) {
        /* The request, with the lookup's headers, would reach another path than the one the
         * expression meant (lookup.h). */
        sl_err_prefix(err, "GET %s", where);
        return LOOKUP_FAILED;
    }
    if (l->cache_ttl_ms > 0) {
        if (cache_key(l, url, key, sizeof(key), err) != 0)
            return LOOKUP_RETRY;
        r = cache_get(l, key, where, value, err);
        if (r != LOOKUP_MISSING) {
            *cached = r == LOOKUP_FOUND;
            return r;
        }
    }
    char *body;
    size_t len;
    switch (fetch_get(l->fetch, url, (long)l->timeout_ms, (size_t)l->max_bytes, &body, &len, err)) {
    case FETCH_OK:
        break;
    case FETCH_NOT_FOUND:
        return LOOKUP_MISSING;
    case FETCH_RETRY:
        return LOOKUP_RETRY;
    case FETCH_FAILED:
        return LOOKUP_FAILED;
    }
    json_error_t jerr;
    *value = json_loadb(body, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!*value)
        sl_err_set(err, SL_ERR_INVALID, "the answer of GET %s is not JSON: %s", where, jerr.text);
    else if (l->cache_ttl_ms > 0)
        cache_put(l, key, where, body, len);
    free(body);
    return *value ? LOOKUP_FOUND : LOOKUP_FAILED;
}

enum lookup_result lookup_run(lookup_t *l, const json_t *input, json_t **value, bool *cached,
                              struct sl_err *err)
{
    *value = NULL;
    *cached = false;
    enum lookup_result r = l->type == LOOKUP_REDIS ? run_redis(l, input, value, err)
                                                   : run_http(l, input, value, cached, err);
    if (r != LOOKUP_FOUND && *value) {
        json_decref(*value);
        *value = NULL;
    }
    return r;
}
