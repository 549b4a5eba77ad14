#include "dest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sl_crashguard.h"

/* Headers the engine owns. */
static const char *const reserved[] = {
    "Idempotency-Key",
    "traceparent",
    "tracestate",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "Content-Length",
    "Host",
    "Expect",
    "Transfer-Encoding",
    "Connection",
    NULL,
};

/* The items of a string-or-sequence node. */
static size_t strings_count(const sl_conf_node_t *node)
{
    if (!node)
        return 0;
    return sl_conf_type(node) == SL_CONF_SEQ ? sl_conf_count(node) : 1;
}

static const sl_conf_node_t *strings_item(const sl_conf_node_t *node, size_t i)
{
    return sl_conf_type(node) == SL_CONF_SEQ ? sl_conf_item(node, i) : node;
}

/* A secret file path from `map.key`, relative to the pipeline file's directory, into buf;
 * *out = buf, or NULL when the key is absent. */
static int file_path(const sl_conf_t *conf, const sl_conf_node_t *map, const char *key, char *buf,
                     size_t size, const char **out, struct sl_err *err)
{
    const char *path;
    *out = NULL;
    if (sl_conf_str(conf, map, key, NULL, &path, err) != 0)
        return -1;
    if (!path)
        return 0;
    int n = path[0] == '/' ? snprintf(buf, size, "%s", path)
                           : snprintf(buf, size, "%s/%s", sl_conf_dir(conf), path);
    if (n < 0 || (size_t)n >= size)
        return sl_conf_error(conf, sl_conf_get(map, key), err, "path too long");
    *out = buf;
    return 0;
}

static int load_headers(const sl_conf_t *conf, const sl_conf_node_t *d, bool auth_header,
                        const char *api_key_header, struct dlv_dest_conf *o, struct sl_err *err)
{
    const sl_conf_node_t *h = sl_conf_get(d, "headers");
    if (sl_conf_count(h) > DLV_HEADERS_MAX)
        return sl_conf_error(conf, h, err, "more than %d headers", DLV_HEADERS_MAX);
    for (size_t i = 0; i < sl_conf_count(h); i++) {
        const char *name = sl_conf_key(h, i), *value;
        const sl_conf_node_t *node = sl_conf_item(h, i);
        if (sl_conf_as_str(conf, node, &value, err) != 0)
            return -1;
        bool bad_name = !*name;
        for (const char *p = name; *p; p++)
            bad_name |= *p <= ' ' || *p >= 0x7f || *p == ':';
        if (bad_name)
            return sl_conf_error(conf, node, err, "not a header name");
        for (const char *p = value; *p; p++)
            if ((unsigned char)*p < ' ' && *p != '\t')
                return sl_conf_error(conf, node, err,
                                     "a header value cannot hold control "
                                     "characters");
        bool own = strncasecmp(name, "ce-", 3) == 0 ||
                   (auth_header && strcasecmp(name, "Authorization") == 0) ||
                   (api_key_header && strcasecmp(name, api_key_header) == 0);
        for (size_t r = 0; reserved[r] && !own; r++)
            own = strcasecmp(name, reserved[r]) == 0;
        if (own)
            return sl_conf_error(conf, node, err, "sluice-deliver sets %s itself", name);
        o->header_names[o->n_headers] = name;
        o->header_values[o->n_headers] = value;
        o->n_headers++;
    }
    return 0;
}

static int load_status(const sl_conf_t *conf, const sl_conf_node_t *d, struct dlv_status_rules *s,
                       struct sl_err *err)
{
    const sl_conf_node_t *status = sl_conf_get(d, "status");
    const char *const keys[] = {"retriable", "permanent"};
    int *lists[] = {s->retriable, s->permanent};
    size_t *counts[] = {&s->n_retriable, &s->n_permanent};
    for (size_t k = 0; k < 2; k++) {
        const sl_conf_node_t *codes = sl_conf_get(status, keys[k]);
        if (strings_count(codes) > DLV_STATUS_OVERRIDES_MAX)
            return sl_conf_error(conf, codes, err, "more than %d codes", DLV_STATUS_OVERRIDES_MAX);
        for (size_t i = 0; i < strings_count(codes); i++) {
            const sl_conf_node_t *item = strings_item(codes, i);
            const char *text;
            char *end;
            if (sl_conf_as_str(conf, item, &text, err) != 0)
                return -1;
            long code = strtol(text, &end, 10);
            if (!*text || *end || code < 100 || code > 599 || (code >= 200 && code <= 299))
                return sl_conf_error(conf, item, err,
                                     "expected an HTTP status code 100-599 other than 2xx");
            lists[k][(*counts[k])++] = (int)code;
        }
    }
    return 0;
}

static int load_auth(const sl_conf_t *conf, const sl_conf_node_t *d, struct dlv_dest_conf *o,
                     struct sl_err *err)
{
    const sl_conf_node_t *a = sl_conf_get(d, "auth");
    struct dlv_auth_conf *c = &o->auth;
    const char *type;
    if (sl_conf_str(conf, a, "type", "none", &type, err) != 0)
        return -1;
    if (dlv_auth_type_parse(type, &c->type) != 0)
        return sl_conf_error(conf, a, err, "unknown auth type %s", type);
    if (c->type == DLV_AUTH_NONE)
        return 0;
    if (sl_conf_str(conf, a, "token", NULL, &c->token, err) != 0 ||
        sl_conf_str(conf, a, "header", "X-Api-Key", &c->header, err) != 0 ||
        sl_conf_str(conf, a, "username", NULL, &c->username, err) != 0 ||
        sl_conf_str(conf, a, "password", NULL, &c->password, err) != 0 ||
        sl_conf_str(conf, a, "token_url", NULL, &c->token_url, err) != 0 ||
        sl_conf_str(conf, a, "client_id", NULL, &c->client_id, err) != 0 ||
        sl_conf_str(conf, a, "client_secret", NULL, &c->client_secret, err) != 0 ||
        sl_conf_str(conf, a, "scope", NULL, &c->scope, err) != 0 ||
        file_path(conf, a, "token_file", o->token_file_path, sizeof(o->token_file_path),
                  &c->token_file, err) != 0 ||
        file_path(conf, a, "password_file", o->password_file_path, sizeof(o->password_file_path),
                  &c->password_file, err) != 0 ||
        file_path(conf, a, "client_secret_file", o->client_secret_file_path,
                  sizeof(o->client_secret_file_path), &c->client_secret_file, err) != 0)
        return -1;
    /* Check the credentials now, with the file and line: a bad one stops start-up. */
    struct sl_err why;
    dlv_auth_t *probe = dlv_auth_new(c, &why);
    if (!probe)
        return sl_conf_error(conf, a, err, "%s", why.msg);
    dlv_auth_destroy(probe);
    return 0;
}

static int load_sign(const sl_conf_t *conf, const sl_conf_node_t *d, struct dlv_dest_conf *o,
                     struct sl_err *err)
{
    const sl_conf_node_t *s = sl_conf_get(d, "sign");
    if (!s)
        return 0;
    o->sign = true;
    const sl_conf_node_t *secrets = sl_conf_get(s, "secret");
    size_t n = 0;
    for (size_t i = 0; i < strings_count(secrets); i++) {
        const char *v;
        if (sl_conf_as_str(conf, strings_item(secrets, i), &v, err) != 0)
            return -1;
        if (!*v) /* an optional ${PREVIOUS_SECRET:-} left empty: no secret */
            continue;
        if (n == DLV_SIGN_SECRETS_MAX)
            return sl_conf_error(conf, secrets, err, "more than %d secrets", DLV_SIGN_SECRETS_MAX);
        o->sign_secrets[n++] = v;
    }
    o->n_sign_secrets = n;
    if (file_path(conf, s, "secret_file", o->sign_file_path, sizeof(o->sign_file_path),
                  &o->sign_secret_file, err) != 0)
        return -1;
    struct sl_err why;
    dlv_signer_t *probe =
        dlv_signer_new(o->sign_secrets, o->n_sign_secrets, o->sign_secret_file, &why);
    if (!probe)
        return sl_conf_error(conf, s, err, "%s", why.msg);
    dlv_signer_destroy(probe);
    return 0;
}

static int load(const sl_conf_t *conf, const char *name, struct dlv_dest_conf *o,
                struct sl_err *err);

/* The URL template and the body mapping, compiled. */
static int load_expressions(const sl_conf_t *conf, const sl_conf_node_t *d, const char *url,
                            const char *body, struct dlv_dest_conf *o, struct sl_err *err)
{
    char name[SL_EXPR_MAX_NAME];
    struct sl_err why;
    snprintf(name, sizeof(name), "destinations.%.100s.url", o->name);
    if (!(o->url = dlv_template_new(name, url, &why)))
        return sl_conf_error(conf, sl_conf_get(d, "url"), err, "%s", why.msg);
    if (strcmp(body, ".data") == 0)
        return 0;
    snprintf(name, sizeof(name), "destinations.%.100s.body", o->name);
    if (!(o->body = sl_expr_compile(name, body, &why)))
        return sl_conf_error(conf, sl_conf_get(d, "body"), err, "%s", why.msg);
    return 0;
}

void dlv_dest_conf_free(struct dlv_dest_conf *c)
{
    dlv_template_destroy(c->url);
    sl_expr_destroy(c->body);
    c->url = NULL;
    c->body = NULL;
}

int dlv_dest_conf_load(const sl_conf_t *conf, const char *name, struct dlv_dest_conf *o,
                       struct sl_err *err)
{
    if (load(conf, name, o, err) != 0) {
        dlv_dest_conf_free(o);
        return -1;
    }
    return 0;
}

static int load(const sl_conf_t *conf, const char *name, struct dlv_dest_conf *o,
                struct sl_err *err)
{
    const sl_conf_node_t *d = sl_conf_get(sl_conf_get(sl_conf_root(conf), "destinations"), name);
    long long timeout, conc, attempts, initial, max, age, pct, window, minreq, cooldown;
    const char *ordering, *jitter, *body, *url;
    memset(o, 0, sizeof(*o));
    o->name = name;
    if (!d)
        return sl_err_set(err, SL_ERR_CONFIG, "%s: no destination named '%s'", sl_conf_file(conf),
                          name);
    const sl_conf_node_t *rl = sl_conf_get(d, "rate_limit"), *retry = sl_conf_get(d, "retry"),
                         *circuit = sl_conf_get(d, "circuit");
    if (sl_conf_str(conf, d, "url", NULL, &url, err) != 0 ||
        sl_conf_str(conf, d, "method", "POST", &o->method, err) != 0 ||
        sl_conf_str(conf, d, "body", ".data", &body, err) != 0 ||
        sl_conf_duration_ms(conf, d, "timeout", 10000, 100, 300000, &timeout, err) != 0 ||
        sl_conf_int(conf, d, "concurrency", 16, 1, 10000, &conc, err) != 0 ||
        sl_conf_str(conf, d, "ordering", "per-key", &ordering, err) != 0 ||
        sl_conf_duration_ms(conf, d, "ledger_ttl", 7 * 86400000LL, 60000, 365 * 86400000LL,
                            &o->ledger_ttl_ms, err) != 0 ||
        sl_conf_int(conf, retry, "max_attempts", 10, 1, 1000, &attempts, err) != 0 ||
        sl_conf_duration_ms(conf, retry, "initial", 1000, 1, 86400000, &initial, err) != 0 ||
        sl_conf_duration_ms(conf, retry, "max", 3600000, 1, 7 * 86400000LL, &max, err) != 0 ||
        sl_conf_duration_ms(conf, retry, "max_age", 72 * 3600000LL, 1000, 30 * 86400000LL, &age,
                            err) != 0 ||
        sl_conf_str(conf, retry, "jitter", "full", &jitter, err) != 0 ||
        sl_conf_int(conf, circuit, "failure_ratio", 50, 1, 100, &pct, err) != 0 ||
        sl_conf_duration_ms(conf, circuit, "window", 30000, 1000, 3600000, &window, err) != 0 ||
        sl_conf_int(conf, circuit, "min_requests", 20, 1, 100000, &minreq, err) != 0 ||
        sl_conf_duration_ms(conf, circuit, "cooldown", 30000, 100, 3600000, &cooldown, err) != 0)
        return -1;
    if (max < initial)
        return sl_conf_error(conf, retry, err, "max must not be below initial");
    if (rl) {
        o->rate_limited = true;
        if (sl_conf_int(conf, rl, "per_second", 1, 1, 1000000, &o->per_second, err) != 0 ||
            sl_conf_int(conf, rl, "burst", o->per_second, 1, 1000000, &o->burst, err) != 0)
            return -1;
    }
    o->timeout_ms = (long)timeout;
    o->concurrency = (int)conc;
    o->per_key = strcmp(ordering, "per-key") == 0;
    o->retry =
        (struct dlv_retry_policy){(int)attempts, initial, max, age, strcmp(jitter, "full") == 0};
    o->circuit = (struct dlv_circuit_conf){(int)pct, window, (int)minreq, cooldown};
    if (load_status(conf, d, &o->status, err) != 0 || load_auth(conf, d, o, err) != 0 ||
        load_sign(conf, d, o, err) != 0 || load_expressions(conf, d, url, body, o, err) != 0)
        return -1;
    bool auth_header = o->auth.type == DLV_AUTH_BEARER || o->auth.type == DLV_AUTH_BASIC ||
                       o->auth.type == DLV_AUTH_OAUTH2;
    return load_headers(conf, d, auth_header,
                        o->auth.type == DLV_AUTH_API_KEY ? o->auth.header : NULL, o, err);
}

int dlv_settings_load(const sl_conf_t *conf, struct dlv_settings *o, struct sl_err *err)
{
    const sl_conf_node_t *s = sl_conf_get(sl_conf_root(conf), "deliver");
    if (sl_conf_int(conf, s, "max_events", 10000, 1, 1000000, &o->max_events, err) != 0 ||
        sl_conf_int(conf, s, "max_events_per_partition", 1000, 1, 1000000,
                    &o->max_events_per_partition, err) != 0 ||
        sl_conf_size(conf, s, "max_memory", 256LL * 1024 * 1024, 1024 * 1024,
                     64LL * 1024 * 1024 * 1024, &o->max_memory, err) != 0 ||
        sl_conf_duration_ms(conf, s, "commit_interval", 1000, 10, 60000, &o->commit_interval_ms,
                            err) != 0 ||
        sl_conf_int(conf, s, "max_crashes", SL_CRASHGUARD_DEFAULT_MAX, 0, SL_CRASHGUARD_MAX_MAX,
                    &o->max_crashes, err) != 0)
        return -1;
    return 0;
}
