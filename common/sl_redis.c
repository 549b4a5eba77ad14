#include "sl_redis.h"
#include "sl_log.h"
#include "sl_text.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

/* Longest host name (RFC 1035) and the command name kept for messages. */
#define HOST_MAX     253
#define CMD_NAME_MAX 32

/* The parsed URL. Holds the password: wiped wherever one goes out of scope. */
struct redis_url {
    char host[HOST_MAX + 1]; /* without the brackets of an IPv6 address */
    int port;
    int db;
    char user[SL_REDIS_CRED_MAX + 1];     /* "" : AUTH password */
    char password[SL_REDIS_CRED_MAX + 1]; /* "" : no AUTH */
};

struct sl_redis_script {
    char sha[41];
    size_t len;
    char lua[]; /* NUL-terminated */
};

struct sl_redis {
    redisContext *ctx; /* NULL until the first call and after a transport failure */
    struct redis_url url;
    int timeout_ms;
    struct timeval timeout;
    char where[HOST_MAX + 16]; /* "host:port" or "[v6]:port", for messages */
    sl_redis_script_t *claim, *bucket, *hold;
    sl_metrics_t *metrics;  /* persistence reporting; NULL: not watched */
    sl_series_t *m_persist; /* sluice_redis_persistence */
    bool persist_checked;
};

/* Error codes of replies that mean "Redis cannot take this now, it will later". */
static const char *const retriable_codes[] = {
    "LOADING",  "BUSY",       "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN",
    "READONLY", "NOREPLICAS", "OOM",        NULL,
};
/* Error codes of replies that mean the credentials or ACLs are wrong. */
static const char *const credential_codes[] = {"NOAUTH", "WRONGPASS", "NOPERM", NULL};

/* ---- URL ---- */

/* Decimal digits s[0..n), nothing else, at most `max`. */
static bool parse_num(const char *s, size_t n, long max, long *out)
{
    long v = 0;
    if (n == 0 || n > 10)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

static bool all_in(const char *s, size_t n, const char *set, bool alnum)
{
    for (size_t i = 0; i < n; i++)
        if (!(alnum && isalnum((unsigned char)s[i])) && !strchr(set, s[i]))
            return false;
    return n > 0;
}

/* Parses redis://[[user]:password@]host[:port][/db] into *u.
 *
 * Messages never quote the URL or any part of it: a password with an unencoded '/', '?' or
 * '#' ends the authority early, and its pieces would then be parsed (and quoted) as host,
 * port or database. */
static int url_parse(const char *url, struct redis_url *u, struct sl_err *err)
{
    memset(u, 0, sizeof(*u));
    u->port = 6379;
    if (!url || !*url)
        return sl_err_set(err, SL_ERR_CONFIG, "redis url is empty");
    if (strnlen(url, SL_REDIS_URL_MAX + 1) > SL_REDIS_URL_MAX)
        return sl_err_set(err, SL_ERR_CONFIG, "redis url is longer than %d bytes",
                          SL_REDIS_URL_MAX);
    if (strncasecmp(url, "rediss://", 9) == 0)
        return sl_err_set(err, SL_ERR_CONFIG,
                          "redis url: rediss:// (TLS) is not supported (hiredis 0.14.1 has no "
                          "TLS); use redis:// to a local TLS-terminating proxy (stunnel, "
                          "ghostunnel) in front of a TLS-only Redis");
    if (strncasecmp(url, "redis://", 8) != 0)
        return sl_err_set(err, SL_ERR_CONFIG,
                          "redis url must be redis://[[user]:password@]host[:port][/db]");

    const char *auth = url + 8;
    size_t alen = strcspn(auth, "/?#");
    const char *rest = auth + alen;
    if (strchr(rest, '@'))
        return sl_err_set(err, SL_ERR_CONFIG,
                          "redis url: '@' after the host; percent-encode '/', '?', '#' and '@' "
                          "in a password (%%2F, %%3F, %%23, %%40)");
    if (strpbrk(rest, "?#"))
        return sl_err_set(err, SL_ERR_CONFIG,
                          "redis url: query parameters and fragments are not supported");

    const char *hp = auth;
    size_t hplen = alen;
    const char *at = memrchr(auth, '@', alen);
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        if (!colon)
            return sl_err_set(err, SL_ERR_CONFIG,
                              "redis url: credentials must be written [user]:password@");
        int rc = sl_pct_decode(auth, (size_t)(colon - auth), u->user, sizeof(u->user));
        if (rc == 0)
            rc = sl_pct_decode(colon + 1, (size_t)(at - colon - 1), u->password,
                               sizeof(u->password));
        if (rc == -1)
            return sl_err_set(err, SL_ERR_CONFIG,
                              "redis url: bad percent-encoding in the credentials");
        if (rc == -2)
            return sl_err_set(err, SL_ERR_CONFIG,
                              "redis url: user or password longer than %d bytes",
                              SL_REDIS_CRED_MAX);
        if (!u->password[0])
            return sl_err_set(err, SL_ERR_CONFIG,
                              "redis url: empty password (leave out '[user]:password@' for "
                              "none)");
        hp = at + 1;
        hplen = alen - (size_t)(hp - auth);
    }

    const char *host = hp, *port = NULL;
    size_t hlen, plen = 0;
    bool host_ok;
    if (hplen > 0 && hp[0] == '[') {
        const char *close = memchr(hp, ']', hplen);
        if (!close)
            return sl_err_set(err, SL_ERR_CONFIG,
                              "redis url: '[' without ']' around an IPv6 address");
        host = hp + 1;
        hlen = (size_t)(close - host);
        host_ok = all_in(host, hlen, "0123456789abcdefABCDEF:.", false);
        size_t after = hplen - (size_t)(close + 1 - hp);
        if (after > 0) {
            if (close[1] != ':')
                return sl_err_set(err, SL_ERR_CONFIG,
                                  "redis url: expected ':port' after the IPv6 address");
            port = close + 2;
            plen = after - 1;
        }
    } else {
        const char *colon = memchr(hp, ':', hplen);
        hlen = colon ? (size_t)(colon - hp) : hplen;
        host_ok = all_in(host, hlen, "-._", true);
        if (colon) {
            port = colon + 1;
            plen = hplen - hlen - 1;
        }
    }
    if (!host_ok || hlen > HOST_MAX)
        return sl_err_set(err, SL_ERR_CONFIG,
                          "redis url: the host must be a name, an IPv4 address or a bracketed "
                          "IPv6 address");
    memcpy(u->host, host, hlen);
    u->host[hlen] = '\0';

    long v;
    if (port) {
        if (!parse_num(port, plen, 65535, &v) || v == 0)
            return sl_err_set(err, SL_ERR_CONFIG,
                              "redis url: the port must be a number from 1 to 65535");
        u->port = (int)v;
    }
    /* "redis://host/" is database 0, as for most clients. */
    if (rest[0] == '/' && rest[1]) {
        if (!parse_num(rest + 1, strlen(rest + 1), INT_MAX, &v))
            return sl_err_set(err, SL_ERR_CONFIG,
                              "redis url: the database must be a number (redis://host:port/0)");
        u->db = (int)v;
    }
    return 0;
}

int sl_redis_settings(const sl_conf_t *conf, const char **url, int *timeout_ms, struct sl_err *err)
{
    const char *env = getenv("SLUICE_REDIS_URL");
    bool from_env = env && *env;
    const sl_conf_node_t *sec = sl_conf_get(sl_conf_root(conf), "redis");
    long long timeout = 1000;
    *url = from_env ? env : SL_REDIS_DEFAULT_URL;
    *timeout_ms = (int)timeout;
    if (sl_conf_str(conf, sec, "url", *url, url, err) != 0 ||
        sl_conf_duration_ms(conf, sec, "timeout", timeout, 10, 60000, &timeout, err) != 0)
        return -1;
    *timeout_ms = (int)timeout;

    struct redis_url u;
    int rc = url_parse(*url, &u, err);
    explicit_bzero(&u, sizeof(u));
    if (rc == 0 || !err)
        return rc;
    /* Say where the bad URL came from: the file (with its line), or the environment. */
    const sl_conf_node_t *node = sl_conf_get(sec, "url");
    if (node) {
        char msg[SL_ERR_MSG_MAX];
        memcpy(msg, err->msg, sizeof(msg));
        return sl_conf_error(conf, node, err, "%s", msg);
    }
    if (from_env)
        sl_err_prefix(err, "SLUICE_REDIS_URL");
    return -1;
}

int sl_redis_key_prefix(const sl_conf_t *conf, const char *topic_prefix, const char **prefix,
                        struct sl_err *err)
{
    const sl_conf_node_t *sec = sl_conf_get(sl_conf_root(conf), "redis");
    if (sl_conf_str(conf, sec, "key_prefix", topic_prefix, prefix, err) != 0)
        return -1;
    size_t n = *prefix ? strlen(*prefix) : 0;
    if (n >= 1 && n <= SL_REDIS_KEY_PREFIX_MAX && all_in(*prefix, n, "._-", true))
        return 0;
#define KEY_PREFIX_RULE "must be 1 to %d letters, digits, '.', '_' or '-'"
    const sl_conf_node_t *node = sl_conf_get(sec, "key_prefix");
    if (node)
        return sl_conf_error(conf, node, err, "redis key_prefix " KEY_PREFIX_RULE,
                             SL_REDIS_KEY_PREFIX_MAX);
    return sl_err_set(
        err, SL_ERR_CONFIG,
        "the redis key prefix (kafka.topic_prefix; set redis.key_prefix) " KEY_PREFIX_RULE,
        SL_REDIS_KEY_PREFIX_MAX);
#undef KEY_PREFIX_RULE
}

/* ---- connection ---- */

static void drop(sl_redis_t *r)
{
    if (r->ctx) {
        redisFree(r->ctx);
        r->ctx = NULL;
    }
}

/* argv[0] as a bounded C string, for messages. */
static void command_name(const char **argv, const size_t *argvlen, char *buf, size_t size)
{
    size_t n = argvlen ? argvlen[0] : strlen(argv[0]);
    snprintf(buf, size, "%.*s", (int)(n < size - 1 ? n : size - 1), argv[0]);
}

/* The context failed (connect, send or receive): the connection is useless now, since a late
 * reply would be taken for the next command's. Drops it. */
static int io_error(sl_redis_t *r, const char *what, struct sl_err *err)
{
    int saved = errno; /* hiredis leaves the failed read(2)'s errno in place */
    if (r->ctx && r->ctx->err == REDIS_ERR_IO && (saved == EAGAIN || saved == EWOULDBLOCK))
        sl_err_retriable(err, SL_ERR_UNAVAILABLE, "redis %s: %s: no answer within %d ms", r->where,
                         what, r->timeout_ms);
    else
        sl_err_retriable(err, SL_ERR_UNAVAILABLE, "redis %s: %s: %s", r->where, what,
                         r->ctx ? r->ctx->errstr : "cannot allocate a connection");
    drop(r);
    return -1;
}

static bool code_in(const redisReply *reply, const char *const *codes)
{
    for (; *codes; codes++) {
        size_t n = strlen(*codes);
        if (reply->len >= n && memcmp(reply->str, *codes, n) == 0 &&
            (reply->len == n || reply->str[n] == ' '))
            return true;
    }
    return false;
}

/* Classifies an error reply into *err (see the header). `what` (may be NULL) names the
 * command. */
static int reply_error(const sl_redis_t *r, const char *what, const redisReply *reply,
                       struct sl_err *err)
{
    char prefix[sizeof(r->where) + CMD_NAME_MAX + 2];
    snprintf(prefix, sizeof(prefix), "%s%s%s", r->where, what ? ": " : "", what ? what : "");
    int n = (int)(reply->len < 400 ? reply->len : 400);
    if (code_in(reply, retriable_codes))
        return sl_err_retriable(err, SL_ERR_UNAVAILABLE, "redis %s: %.*s", prefix, n, reply->str);
    if (code_in(reply, credential_codes)) {
        sl_err_set(err, SL_ERR_CONFIG, "redis %s: %.*s", prefix, n, reply->str);
        if (err)
            err->fatal = true;
        return -1;
    }
    return sl_err_set(err, SL_ERR_INVALID, "redis %s: %.*s", prefix, n, reply->str);
}

/* A demoted master answers READONLY: a new connection (the host name resolved again, say)
 * may reach the new one. */
static bool wants_reconnect(const redisReply *reply)
{
    static const char *const codes[] = {"READONLY", NULL};
    return reply->type == REDIS_REPLY_ERROR && code_in(reply, codes);
}

/* Fails the call for an error reply: classifies it, frees it, drops the connection when a new
 * one may help. */
static int reject(sl_redis_t *r, const char *what, redisReply *reply, struct sl_err *err)
{
    reply_error(r, what, reply, err);
    if (wants_reconnect(reply))
        drop(r);
    freeReplyObject(reply);
    return -1;
}

static int redis_connect(sl_redis_t *r, struct sl_err *err);

/* One command on the connection (made first when there is none); *reply may be an error
 * reply. */
static int roundtrip(sl_redis_t *r, const char *what, int argc, const char **argv,
                     const size_t *argvlen, redisReply **reply, struct sl_err *err)
{
    *reply = NULL;
    if (!r->ctx && redis_connect(r, err) != 0)
        return -1;
    *reply = redisCommandArgv(r->ctx, argc, argv, argvlen);
    if (!*reply)
        return io_error(r, what, err);
    return 0;
}

/* AUTH and SELECT on a new connection. A refusal that is not "later" means the URL is wrong:
 * a fatal configuration error rather than a bad event. */
static int setup(sl_redis_t *r, int argc, const char **argv, struct sl_err *err)
{
    redisReply *reply;
    if (roundtrip(r, argv[0], argc, argv, NULL, &reply, err) != 0)
        return -1;
    if (reply->type != REDIS_REPLY_ERROR) {
        freeReplyObject(reply);
        return 0;
    }
    reply_error(r, argv[0], reply, err);
    if (err && !err->retriable) {
        err->code = SL_ERR_CONFIG;
        err->fatal = true;
    }
    freeReplyObject(reply);
    drop(r);
    return -1;
}

static int redis_connect(sl_redis_t *r, struct sl_err *err)
{
    r->ctx = redisConnectWithTimeout(r->url.host, r->url.port, r->timeout);
    if (!r->ctx || r->ctx->err || redisSetTimeout(r->ctx, r->timeout) != REDIS_OK ||
        redisEnableKeepAlive(r->ctx) != REDIS_OK)
        return io_error(r, "connect", err);
    if (r->url.password[0]) {
        /* AUTH user password for an ACL user, AUTH password for the default user. */
        const char *auth[3] = {"AUTH"};
        int argc = 1;
        if (r->url.user[0])
            auth[argc++] = r->url.user;
        auth[argc++] = r->url.password;
        if (setup(r, argc, auth, err) != 0)
            return -1;
    }
    if (r->url.db != 0) {
        char db[16];
        snprintf(db, sizeof(db), "%d", r->url.db);
        const char *select[] = {"SELECT", db};
        if (setup(r, 2, select, err) != 0)
            return -1;
    }
    return 0;
}

/* ---- handle ---- */

/* An old key that exists decides alone and nothing is written: it expires within its window
 * like any claim, and a retry of the sender meanwhile must still be found. */
static const char claim_lua[] =
    "-- KEYS[1] = dedup key, KEYS[2] = old key or none; ARGV[1] = event id, ARGV[2] = ttl ms\n"
    "-- returns 0 first (claimed now), 1 same event id, 2 another event id (duplicate)\n"
    "if KEYS[2] then\n"
    "  local old = redis.call('GET', KEYS[2])\n"
    "  if old then if old == ARGV[1] then return 1 end return 2 end\n"
    "end\n"
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end\n"
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end\n"
    "return 2\n";

/* ../shared/reference/c-libraries.md: the server clock is the one clock of the fleet; replies
 * carry only integers (Lua numbers are truncated), fractional state is kept as a string. */
static const char bucket_lua[] =
    "-- KEYS[1] = bucket key; ARGV = capacity, refill_per_second, cost\n"
    "-- returns {allowed (0/1), retry_after_ms}\n"
    "local cap, rate, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "local s = redis.call('HMGET', KEYS[1], 'tokens', 'ts')\n"
    "local tokens, ts = tonumber(s[1]) or cap, tonumber(s[2]) or now\n"
    "if now > ts then tokens = math.min(cap, tokens + (now - ts) * rate / 1000); ts = now end\n"
    "local allowed, wait = 0, 0\n"
    "if tokens >= cost then tokens = tokens - cost; allowed = 1\n"
    "else wait = math.ceil((cost - tokens) * 1000 / rate) end\n"
    "redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', ts)\n"
    "redis.call('PEXPIRE', KEYS[1], math.ceil(cap * 1000 / rate) + 1000)\n"
    "return {allowed, wait}\n";

/* The key's own expiry is the deadline (server clock), so PTTL is the time left and a shorter
 * hold never replaces a longer one. PTTL is -2 (no key) or -1 (no expiry) when there is none
 * to keep. */
static const char hold_lua[] = "-- KEYS[1] = hold key; ARGV[1] = hold ms\n"
                               "if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then\n"
                               "  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[1])\n"
                               "end\n"
                               "return 0\n";

sl_redis_t *sl_redis_new(const char *url, int timeout_ms, struct sl_err *err)
{
    if (timeout_ms <= 0) {
        sl_err_set(err, SL_ERR_CONFIG, "redis timeout must be more than 0 ms");
        return NULL;
    }
    sl_redis_t *r = calloc(1, sizeof(*r));
    if (!r) {
        sl_err_set(err, SL_ERR_NOMEM, "redis: out of memory");
        return NULL;
    }
    if (url_parse(url, &r->url, err) != 0)
        goto fail;
    r->timeout_ms = timeout_ms;
    r->timeout.tv_sec = timeout_ms / 1000;
    r->timeout.tv_usec = (timeout_ms % 1000) * 1000;
    bool v6 = strchr(r->url.host, ':') != NULL;
    snprintf(r->where, sizeof(r->where), "%s%s%s:%d", v6 ? "[" : "", r->url.host, v6 ? "]" : "",
             r->url.port);
    if (!(r->claim = sl_redis_script_new(claim_lua, err)) ||
        !(r->bucket = sl_redis_script_new(bucket_lua, err)) ||
        !(r->hold = sl_redis_script_new(hold_lua, err)))
        goto fail;
    return r;
fail:
    sl_redis_destroy(r);
    return NULL;
}

void sl_redis_destroy(sl_redis_t *r)
{
    if (!r)
        return;
    drop(r);
    sl_redis_script_destroy(r->claim);
    sl_redis_script_destroy(r->bucket);
    sl_redis_script_destroy(r->hold);
    explicit_bzero(&r->url, sizeof(r->url));
    free(r);
}

/* ---- commands ---- */

int sl_redis_cmd(sl_redis_t *r, redisReply **reply, int argc, const char **argv,
                 const size_t *argvlen, struct sl_err *err)
{
    *reply = NULL;
    if (argc < 1 || !argv)
        return sl_err_set(err, SL_ERR_INVALID, "redis: a command needs at least its name");
    char name[CMD_NAME_MAX];
    command_name(argv, argvlen, name, sizeof(name));
    redisReply *rep;
    if (roundtrip(r, name, argc, argv, argvlen, &rep, err) != 0)
        return -1;
    if (rep->type == REDIS_REPLY_ERROR)
        return reject(r, name, rep, err);
    *reply = rep;
    return 0;
}

int sl_redis_pipeline(sl_redis_t *r, size_t n, const struct sl_redis_command *cmds,
                      redisReply **replies, struct sl_err *err)
{
    for (size_t i = 0; i < n; i++)
        replies[i] = NULL;
    if (n > SL_REDIS_PIPELINE_MAX)
        return sl_err_set(err, SL_ERR_INVALID, "redis: a pipeline holds at most %d commands",
                          SL_REDIS_PIPELINE_MAX);
    for (size_t i = 0; i < n; i++)
        if (cmds[i].argc < 1 || !cmds[i].argv)
            return sl_err_set(err, SL_ERR_INVALID,
                              "redis: pipeline command %zu needs at least its name", i);
    if (n == 0)
        return 0;
    if (!r->ctx && redis_connect(r, err) != 0)
        return -1;
    int rc = -1;
    bool reconnect = false;
    /* Appending only fills the output buffer; the first read flushes it all at once. */
    for (size_t i = 0; i < n; i++)
        if (redisAppendCommandArgv(r->ctx, cmds[i].argc, cmds[i].argv, cmds[i].argvlen) !=
            REDIS_OK) {
            io_error(r, "pipeline", err);
            goto out;
        }
    for (size_t i = 0; i < n; i++) {
        void *reply = NULL;
        if (redisGetReply(r->ctx, &reply) != REDIS_OK || !reply) {
            io_error(r, "pipeline", err);
            goto out;
        }
        replies[i] = reply;
        reconnect = reconnect || wants_reconnect(replies[i]);
    }
    rc = 0;
out:
    if (rc != 0)
        sl_redis_replies_free(replies, n);
    if (reconnect)
        drop(r);
    return rc;
}

int sl_redis_reply_check(const sl_redis_t *r, const redisReply *reply, struct sl_err *err)
{
    if (!reply)
        return sl_err_set(err, SL_ERR_INVALID, "redis %s: no reply", r->where);
    return reply->type == REDIS_REPLY_ERROR ? reply_error(r, NULL, reply, err) : 0;
}

void sl_redis_replies_free(redisReply **replies, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (replies[i])
            freeReplyObject(replies[i]);
        replies[i] = NULL;
    }
}

/* ---- scripts ---- */

sl_redis_script_t *sl_redis_script_new(const char *lua, struct sl_err *err)
{
    size_t len = lua ? strnlen(lua, SL_REDIS_SCRIPT_MAX + 1) : 0;
    if (len == 0 || len > SL_REDIS_SCRIPT_MAX) {
        sl_err_set(err, SL_ERR_INVALID, "redis script: empty or longer than %d bytes",
                   SL_REDIS_SCRIPT_MAX);
        return NULL;
    }
    sl_redis_script_t *s = malloc(sizeof(*s) + len + 1);
    if (!s) {
        sl_err_set(err, SL_ERR_NOMEM, "redis script: out of memory");
        return NULL;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(lua, len, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20) {
        free(s);
        sl_err_set(err, SL_ERR_INTERNAL, "redis script: SHA1 failed");
        return NULL;
    }
    for (unsigned int i = 0; i < mdlen; i++)
        snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
    memcpy(s->lua, lua, len + 1);
    s->len = len;
    return s;
}

void sl_redis_script_destroy(sl_redis_script_t *s)
{
    free(s);
}

const char *sl_redis_script_sha(const sl_redis_script_t *s)
{
    return s->sha;
}

int sl_redis_script_run(sl_redis_t *r, const sl_redis_script_t *s, redisReply **reply, int numkeys,
                        int argc, const char **argv, const size_t *argvlen, struct sl_err *err)
{
    *reply = NULL;
    if (argc < 0 || argc > SL_REDIS_SCRIPT_ARGS_MAX || numkeys < 0 || numkeys > argc)
        return sl_err_set(err, SL_ERR_INVALID,
                          "redis script: %d keys of %d arguments (at most %d arguments)", numkeys,
                          argc, SL_REDIS_SCRIPT_ARGS_MAX);
    char nk[16];
    snprintf(nk, sizeof(nk), "%d", numkeys);
    const char *av[SL_REDIS_SCRIPT_ARGS_MAX + 3] = {"EVALSHA", s->sha, nk};
    size_t al[SL_REDIS_SCRIPT_ARGS_MAX + 3] = {7, 40, strlen(nk)};
    for (int i = 0; i < argc; i++) {
        av[3 + i] = argv[i];
        al[3 + i] = argvlen ? argvlen[i] : strlen(argv[i]);
    }
    redisReply *rep;
    if (roundtrip(r, "EVALSHA", argc + 3, av, al, &rep, err) != 0)
        return -1;
    static const char *const noscript[] = {"NOSCRIPT", NULL};
    if (rep->type == REDIS_REPLY_ERROR && code_in(rep, noscript)) {
        /* Redis lost its script cache (restart, failover, SCRIPT FLUSH). EVAL caches the
         * script again, so the next call's EVALSHA finds it. */
        freeReplyObject(rep);
        av[0] = "EVAL";
        al[0] = 4;
        av[1] = s->lua;
        al[1] = s->len;
        if (roundtrip(r, "EVAL", argc + 3, av, al, &rep, err) != 0)
            return -1;
    }
    if (rep->type == REDIS_REPLY_ERROR)
        return reject(r, av[0], rep, err);
    *reply = rep;
    return 0;
}

/* ---- domain helpers ---- */

static int check_key(const char *key, struct sl_err *err)
{
    if (!key || !*key)
        return sl_err_set(err, SL_ERR_INVALID, "redis: empty key");
    return 0;
}

static int check_ms(const char *what, long long ms, struct sl_err *err)
{
    if (ms <= 0 || ms > SL_REDIS_TTL_MAX_MS)
        return sl_err_set(err, SL_ERR_INVALID, "redis: %s must be 1 to %lld ms, not %lld", what,
                          SL_REDIS_TTL_MAX_MS, ms);
    return 0;
}

static int unexpected(const sl_redis_t *r, const char *what, struct sl_err *err)
{
    return sl_err_set(err, SL_ERR_INTERNAL, "redis %s: %s: unexpected reply", r->where, what);
}

int sl_redis_dedup_claim(sl_redis_t *r, const char *key, const char *old_key, const char *event_id,
                         long long ttl_ms, enum sl_redis_claim *result, struct sl_err *err)
{
    if (check_key(key, err) != 0 || (old_key && check_key(old_key, err) != 0) ||
        check_ms("dedup ttl", ttl_ms, err) != 0)
        return -1;
    if (!event_id || !*event_id)
        return sl_err_set(err, SL_ERR_INVALID, "redis: dedup claim without an event id");
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", ttl_ms);
    const char *argv[4];
    int argc = 0;
    argv[argc++] = key;
    if (old_key)
        argv[argc++] = old_key;
    int keys = argc;
    argv[argc++] = event_id;
    argv[argc++] = ttl;
    redisReply *reply;
    if (sl_redis_script_run(r, r->claim, &reply, keys, argc, argv, NULL, err) != 0)
        return -1;
    int rc = 0;
    if (reply->type != REDIS_REPLY_INTEGER || reply->integer < 0 || reply->integer > 2)
        rc = unexpected(r, "dedup claim", err);
    else
        *result = reply->integer == 0   ? SL_REDIS_CLAIM_FIRST
                  : reply->integer == 1 ? SL_REDIS_CLAIM_SAME
                                        : SL_REDIS_CLAIM_DUPLICATE;
    freeReplyObject(reply);
    return rc;
}

int sl_redis_bucket_take(sl_redis_t *r, const char *key, long long capacity, double per_second,
                         long long cost, bool *allowed, long long *retry_after_ms,
                         struct sl_err *err)
{
    if (check_key(key, err) != 0)
        return -1;
    if (capacity < 1 || cost < 1 || cost > capacity)
        return sl_err_set(err, SL_ERR_INVALID,
                          "redis bucket: need 1 <= cost <= capacity, not cost %lld, capacity %lld",
                          cost, capacity);
    /* The refill time is also the key's TTL; bounding it keeps the script's PEXPIRE argument
     * an integer that Redis accepts (and catches a rate given per millisecond). */
    if (!isfinite(per_second) || per_second <= 0 ||
        (double)capacity * 1000.0 / per_second > (double)SL_REDIS_TTL_MAX_MS)
        return sl_err_set(err, SL_ERR_INVALID,
                          "redis bucket: per_second must be > 0 and refill capacity %lld within "
                          "%lld ms",
                          capacity, SL_REDIS_TTL_MAX_MS);
    char cap[24], rate[32], c[24];
    snprintf(cap, sizeof(cap), "%lld", capacity);
    snprintf(rate, sizeof(rate), "%.17g", per_second);
    snprintf(c, sizeof(c), "%lld", cost);
    const char *argv[] = {key, cap, rate, c};
    redisReply *reply;
    if (sl_redis_script_run(r, r->bucket, &reply, 1, 4, argv, NULL, err) != 0)
        return -1;
    int rc = 0;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_INTEGER) {
        rc = unexpected(r, "bucket take", err);
    } else {
        *allowed = reply->element[0]->integer == 1;
        *retry_after_ms = *allowed ? 0 : reply->element[1]->integer;
    }
    freeReplyObject(reply);
    return rc;
}

int sl_redis_hold_set(sl_redis_t *r, const char *key, long long hold_ms, struct sl_err *err)
{
    if (check_key(key, err) != 0 || check_ms("hold", hold_ms, err) != 0)
        return -1;
    char ms[24];
    snprintf(ms, sizeof(ms), "%lld", hold_ms);
    const char *argv[] = {key, ms};
    redisReply *reply;
    if (sl_redis_script_run(r, r->hold, &reply, 1, 2, argv, NULL, err) != 0)
        return -1;
    freeReplyObject(reply);
    return 0;
}

int sl_redis_hold_get(sl_redis_t *r, const char *key, long long *remaining_ms, struct sl_err *err)
{
    if (check_key(key, err) != 0)
        return -1;
    const char *argv[] = {"PTTL", key};
    redisReply *reply;
    if (sl_redis_cmd(r, &reply, 2, argv, NULL, err) != 0)
        return -1;
    int rc = 0;
    if (reply->type != REDIS_REPLY_INTEGER)
        rc = unexpected(r, "hold get", err);
    else
        *remaining_ms = reply->integer > 0 ? reply->integer : 0;
    freeReplyObject(reply);
    return rc;
}

int sl_redis_ledger_mark(sl_redis_t *r, const char *key, long long ttl_ms, struct sl_err *err)
{
    if (check_key(key, err) != 0 || check_ms("ledger ttl", ttl_ms, err) != 0)
        return -1;
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", ttl_ms);
    const char *argv[] = {"SET", key, "1", "PX", ttl};
    redisReply *reply;
    if (sl_redis_cmd(r, &reply, 5, argv, NULL, err) != 0)
        return -1;
    freeReplyObject(reply);
    return 0;
}

int sl_redis_ledger_seen(sl_redis_t *r, const char *key, bool *seen, struct sl_err *err)
{
    if (check_key(key, err) != 0)
        return -1;
    const char *argv[] = {"EXISTS", key};
    redisReply *reply;
    if (sl_redis_cmd(r, &reply, 2, argv, NULL, err) != 0)
        return -1;
    int rc = 0;
    if (reply->type != REDIS_REPLY_INTEGER)
        rc = unexpected(r, "ledger seen", err);
    else
        *seen = reply->integer > 0;
    freeReplyObject(reply);
    return rc;
}

/* ---- persistence ---- */

/* The value of `CONFIG GET name` into buf ("" when the server returns none); 0, or -1 with
 * *err (an error reply as sl_redis_cmd() classifies it). */
static int config_get(sl_redis_t *r, const char *name, char *buf, size_t size, struct sl_err *err)
{
    const char *argv[] = {"CONFIG", "GET", name};
    redisReply *reply;
    if (sl_redis_cmd(r, &reply, 3, argv, NULL, err) != 0)
        return -1;
    buf[0] = '\0';
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[1]->type == REDIS_REPLY_STRING)
        snprintf(buf, size, "%.*s", (int)reply->element[1]->len, reply->element[1]->str);
    freeReplyObject(reply);
    return 0;
}

int sl_redis_persistence(sl_redis_t *r, enum sl_redis_persist *out, struct sl_err *err)
{
    char aof[16], save[256];
    struct sl_err e;
    *out = SL_REDIS_PERSIST_UNKNOWN;
    if (config_get(r, "appendonly", aof, sizeof(aof), &e) != 0 ||
        config_get(r, "save", save, sizeof(save), &e) != 0) {
        if (e.code == SL_ERR_UNAVAILABLE) {
            if (err)
                *err = e;
            return -1;
        }
        return 0; /* CONFIG refused: unknown, and that is fine */
    }
    *out = strcasecmp(aof, "yes") == 0 || save[0] ? SL_REDIS_PERSIST_ON : SL_REDIS_PERSIST_NONE;
    return 0;
}

void sl_redis_persistence_watch(sl_redis_t *r, sl_metrics_t *m)
{
    if (!m)
        return;
    r->metrics = m;
    r->m_persist = sl_metric_series(
        sl_metrics_gauge(m, "sluice_redis_persistence",
                         "Whether Redis keeps dedup claims and the delivery ledger over a restart: "
                         "1 yes (AOF or RDB), 0 no, -1 unknown (CONFIG refused, or not asked yet).",
                         NULL),
        NULL);
    sl_series_set(r->m_persist, SL_REDIS_PERSIST_UNKNOWN);
    sl_redis_persistence_check(r);
}

void sl_redis_persistence_check(sl_redis_t *r)
{
    enum sl_redis_persist p;
    if (!r->metrics || r->persist_checked || sl_redis_persistence(r, &p, NULL) != 0)
        return; /* not watched, done, or Redis down: the next call that reaches it asks */
    r->persist_checked = true;
    sl_series_set(r->m_persist, p);
    const char *note = NULL;
    if (p == SL_REDIS_PERSIST_NONE) {
        note = "redis persistence: none (appendonly no, save \"\"): a Redis restart forgets "
               "dedup claims and the delivery ledger";
        SL_WARN("redis %s reports no persistence (appendonly no, save \"\"): a restart of it "
                "forgets dedup claims and the delivery ledger, so a provider's retry or a "
                "replay may be delivered again (only the destination's Idempotency-Key stops "
                "it)",
                r->where);
    } else if (p == SL_REDIS_PERSIST_UNKNOWN) {
        note = "redis persistence: unknown (CONFIG refused)";
        SL_INFO("redis %s refuses CONFIG: its persistence is unknown; make sure it keeps its "
                "data over a restart",
                r->where);
    } else {
        SL_INFO("redis %s persists its data (append-only file or RDB snapshots)", r->where);
    }
    sl_metrics_note_set(r->metrics, "redis", note);
}
