/*
 * destsim: a scriptable HTTP destination for the delivery tests (libmicrohttpd).
 *
 * The delivery worker's tests start this binary as "the system outside" and script how it
 * misbehaves: answer 2xx/4xx/5xx, 429/503 with Retry-After (seconds or an HTTP date), answer
 * late, never answer, or drop the connection. It counts what it saw so that a test can assert
 * "each idempotency key was answered 2xx exactly once", "the peak rate stayed under the limit"
 * or "customer A's events arrived in order".
 *
 *   destsim --listen 127.0.0.1:0 --port-file F --rule 'status=500 times=2' --rule 'status=200'
 *
 * Rules are read in order; the first one that matches a request decides the answer; a request
 * that no rule matches gets 200. The grammar is in usage[] below (and `destsim --help`).
 *
 * Slow and hanging answers suspend the connection (MHD_suspend_connection) and put the request
 * on a pending list that one timer thread walks: it resumes each request when it is due, and MHD
 * calls the handler again to send the answer. So a slow request never occupies a polling thread,
 * and one polling thread (--threads 1) serves any number of slow requests at once.
 *
 * Control API on the same port, never subject to rules or to --require-bearer:
 *   GET  /_sim/stats[?requests=N][&order=0]   counters as JSON (shape below)
 *   POST /_sim/rules                          body = rule lines; replaces all rules (400 keeps
 *                                             the old ones) and restarts their `times` counts
 *   POST /_sim/reset                          clears the counters and the answers stored by
 *                                             --idempotency (rules and tokens stay)
 *   POST /_sim/oauth/token                    OAuth2 client credentials (form body, or the
 *                                             client in HTTP Basic auth)
 *   POST /_sim/oauth/revoke                   every token issued so far becomes invalid
 *
 * --idempotency makes the destination behave like an idempotent API (Stripe's Idempotency-Key):
 * the first request of a key that is answered 2xx performs the business action (an "effect") and
 * its answer (status, body) is stored; every later request with that key gets the stored answer
 * at once, with "Idempotent-Replayed: true", without consulting the rules and without a second
 * effect. Answers other than 2xx are not stored (the client may try again). Deciding the answer
 * and storing it happen under one lock, so two concurrent requests of a key cannot both perform
 * the action. Without the flag every request is decided by the rules, as before.
 *
 * Stats (every counter since start or the last reset):
 *   { "requests_total": 12,                  requests subject to rules (not /_sim/)
 *     "by_status": {"200": 10, "500": 2},    answers sent or decided (a delayed answer counts
 *                                            when it is decided, before it is sent)
 *     "hung": 0, "closed": 0,                requests that got no answer (hang, close)
 *     "pending": 0,                          requests held right now (delay or hang)
 *     "peak_rps_1s": 5, "peak_per_100ms": 2, most arrivals in any sliding 1 s / 100 ms window
 *     "keys": {"k1": {"requests": 3, "2xx": 1}}, per Idempotency-Key header; "2xx" counts
 *                                            answers, stored replays included; with
 *                                            --idempotency also "effects" (0 or 1),
 *                                            "replayed" and "answer": {"status", "rule",
 *                                            "body"?} (the stored answer)
 *     "idempotency": {"effects", "replayed"}, only with --idempotency: totals over all keys
 *     "keys_dropped": 0,                     requests with a key beyond SIM_KEYS_MAX keys
 *     "order": {"A": [{"seq": 1, "key": "k1", "status": 500, "body": "..."}]},
 *                                            arrivals per ordering key (--order-header or
 *                                            --order-pointer), oldest first
 *     "order_dropped": 0,                    arrivals beyond SIM_ORDER_MAX entries in all
 *     "requests": [{"seq", "t_ms", "method", "path", "headers": {...}, "body",
 *                   "body_truncated", "action": "reply"|"hang"|"close", "status", "rule",
 *                   "replayed"?: true (--idempotency: a stored answer),
 *                   "dropped"?: true (the rule's drop: the answer was cut)}],
 *                                            the last SIM_REQUESTS_KEPT (10,000), oldest first;
 *                                            bodies cut at SIM_STORED_BODY_MAX bytes
 *     "requests_dropped": 0,                 older requests no longer listed
 *     "rules": [{"rule": "status=500 times=2", "matched": 2}],
 *     "oauth": {"token_requests", "tokens_issued", "token_rejected", "revocations",
 *               "unauthorized"} }
 *
 * Bounds: a key beyond SIM_KEYS_MAX keys is not counted (keys_dropped) and, with
 * --idempotency, not remembered either: its requests are decided by the rules. Bodies over
 * --max-body get 413, more than SIM_HEADERS_MAX request headers get 431,
 * and every list above has a named maximum. A hung request is closed after SIM_HANG_MAX_MS so
 * that abandoned connections do not pile up forever.
 *
 * Threads: MHD's polling threads run the handler; the timer thread resumes held requests; the
 * main thread waits for SIGTERM/SIGINT (blocked everywhere, taken with sigwait), then stops the
 * timer, resumes what is still held (so MHD can close it) and stops MHD. @locks: every counter,
 * the rules, the tokens and the pending list are under sim.lock; MHD functions are called with
 * it held only for MHD_suspend_connection (lock order: sim.lock, then MHD's own).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <jansson.h>
#include <microhttpd.h>
#include <openssl/rand.h>

#include "sl_err.h"

#define SIM_BODY_MAX_DEFAULT (1024 * 1024) /* --max-body default: 413 beyond */
#define SIM_HEADERS_MAX      64            /* request headers: 431 beyond */
#define SIM_RULES_MAX        64
#define SIM_MATCHERS_MAX     8    /* matchers in one rule */
#define SIM_WORD_MAX         1024 /* one word of a rule line, also the line */
#define SIM_SCRIPT_MAX       (1024 * 1024)
#define SIM_REQUESTS_KEPT    10000 /* "requests" in stats: the last this many */
#define SIM_STORED_BODY_MAX  4096  /* bytes of each stored body */
#define SIM_KEYS_MAX         200000
#define SIM_ORDER_MAX        100000     /* order entries over all ordering keys */
#define SIM_TOKENS_MAX       1024       /* live OAuth tokens; the oldest is forgotten first */
#define SIM_CLIENTS_MAX      8          /* --oauth-client */
#define SIM_RATE_RING        (1u << 17) /* peak rate is exact up to this many arrivals per s */
#define SIM_DELAY_MAX_MS     600000
#define SIM_HANG_MAX_MS      600000
#define SIM_THREADS_MAX      64
#define SIM_IDLE_TIMEOUT_S   120 /* keep-alive connections idle longer are closed */
#define SIM_STATUS_MAX       600
#define SIM_KEY_HEADER       "Idempotency-Key"
#define SIM_REPLAYED_HEADER  "Idempotent-Replayed"

static const char usage[] =
    "usage: destsim [options]\n"
    "  --listen HOST:PORT     address to listen on (default 127.0.0.1:0; [::1]:0 for IPv6)\n"
    "  --port-file FILE       write the bound port to FILE (atomically) once listening\n"
    "  --script FILE          rule lines from FILE ('#' comments, blank lines ignored)\n"
    "  --rule RULE            one rule (repeatable; after --script rules, in order)\n"
    "  --threads N            MHD polling threads (default 4, 1..64)\n"
    "  --max-body BYTES       request bodies larger get 413 (default 1048576)\n"
    "  --order-header NAME    ordering key for stats.order from this request header\n"
    "  --order-pointer PTR    ... or from this JSON Pointer into the body (/data/customer_id)\n"
    "  --oauth-client ID:SECRET  client accepted by POST /_sim/oauth/token (repeatable)\n"
    "  --oauth-ttl SECONDS    lifetime of issued tokens (default 3600)\n"
    "  --require-bearer       requests without a valid issued token get 401\n"
    "  --idempotency          act like an idempotent API: the first 2xx of an Idempotency-Key\n"
    "                         performs the action and is stored; later requests with that key\n"
    "                         get the stored answer (Idempotent-Replayed: true), no 2nd action\n"
    "  --verbose              one line per request on stderr\n"
    "\n"
    "Rules: one per line, words separated by spaces; first matching rule wins; no match: 200.\n"
    "  matchers (all must hold):\n"
    "    path=/x           exact path; a trailing * matches a prefix (path=/api/*)\n"
    "    method=POST\n"
    "    header:NAME=VALUE request header NAME (any case) equals VALUE\n"
    "    key=VALUE         Idempotency-Key header equals VALUE\n"
    "    json:PTR=VALUE    JSON Pointer PTR into the body: a string equal to VALUE, or another\n"
    "                      value whose compact JSON text is VALUE (json:/n=3, json:/ok=true)\n"
    "  exactly one action:\n"
    "    status=CODE       answer CODE (200..599)\n"
    "    hang              never answer (closed at shutdown or after 10 minutes)\n"
    "    close             close the connection without an answer\n"
    "  modifiers:\n"
    "    times=N           the rule matches its first N requests only\n"
    "    delay_ms=N        wait N ms (other connections are not blocked), then act\n"
    "    retry_after=S     Retry-After: S (seconds)\n"
    "    retry_after_date=S  Retry-After: the HTTP date S seconds after answering\n"
    "    body=TEXT         answer body (default {\"destsim\":true,\"status\":CODE,\"rule\":N});\n"
    "                      application/json when it starts with { or [, else text/plain\n"
    "    drop              the answer is decided (with --idempotency its effect performed and\n"
    "                      stored) but the connection is cut mid-response: the status line,\n"
    "                      headers and half the body are sent, then the connection closes\n"
    "  VALUE or TEXT with spaces goes in double quotes, with \\\" and \\\\ inside:\n"
    "    header:Authorization=\"Bearer abc\" status=401\n"
    "  examples: 'status=500 times=2' then 'status=200'; 'status=429 retry_after=2';\n"
    "    'json:/customer=bad status=400'; 'delay_ms=50 status=200'; 'path=/down close'\n";

/* ---- rules ---------------------------------------------------------------------------------- */

enum sim_match_kind { MATCH_PATH, MATCH_METHOD, MATCH_HEADER, MATCH_KEY, MATCH_JSON };

struct sim_match {
    enum sim_match_kind kind;
    char *name; /* header name or JSON Pointer; NULL otherwise */
    char *value;
};

enum sim_action { ACT_NONE, ACT_REPLY, ACT_HANG, ACT_CLOSE };

struct sim_rule {
    char *text; /* the line as written, for stats */
    struct sim_match match[SIM_MATCHERS_MAX];
    int n_match;
    enum sim_action action;
    int status;
    long times; /* 0: no limit */
    long matched;
    long delay_ms;
    long retry_after;      /* -1: none */
    long retry_after_date; /* -1: none */
    char *body;            /* NULL: the default body */
    bool drop;             /* cut the connection after half the answer */
};

struct sim_rules {
    struct sim_rule rule[SIM_RULES_MAX];
    int n;
};

/* What a request gets; copied out of the rule because rules may be replaced meanwhile. */
struct sim_reply {
    enum sim_action action;
    int status;
    int rule; /* 1-based, 0: no rule matched (or not a rule: 401, 413, 431) */
    long delay_ms;
    long retry_after;
    long retry_after_date;
    char *body; /* owned; NULL: the default body */
    bool unauthorized;
    bool replayed; /* --idempotency: the stored answer of an earlier 2xx */
    bool drop;     /* the rule's `drop`: half the answer, then the connection is cut */
};

/* ---- the simulator -------------------------------------------------------------------------- */

struct sim_opts {
    const char *listen;
    const char *port_file;
    unsigned threads;
    size_t max_body;
    const char *order_header;
    const char *order_pointer;
    const char *script;
    const char *rules[SIM_RULES_MAX]; /* --rule, in order, from argv */
    int n_rules;
    const char *clients[SIM_CLIENTS_MAX]; /* "ID:SECRET", from argv */
    int n_clients;
    long oauth_ttl;
    bool require_bearer;
    bool idempotency;
    bool verbose;
};

struct sim_token {
    char value[65]; /* hex; "" when unused */
    int64_t expires_ms;
};

enum sim_req_state { REQ_READING, REQ_HELD, REQ_DUE, REQ_ABORTED, REQ_ANSWERED };

struct sim_req {
    struct sim *sim;
    struct MHD_Connection *conn;
    bool control; /* under /_sim/ */
    char *body;   /* NUL-terminated for the rule parser */
    size_t len, cap;
    bool too_large;
    enum sim_req_state state;
    struct sim_reply reply;
    int64_t due_ms;
    struct sim_req *next; /* pending list */
};

struct sim_rate {
    int64_t t_us[SIM_RATE_RING]; /* arrival times, monotonic, in order */
    uint64_t head_1s, head_100ms, tail;
    uint64_t peak_1s, peak_100ms;
};

struct sim_stats {
    uint64_t total;
    uint64_t by_status[SIM_STATUS_MAX];
    uint64_t hung, closed;
    json_t *keys;
    uint64_t keys_dropped;
    json_t *order;
    uint64_t order_entries, order_dropped;
    json_t *requests[SIM_REQUESTS_KEPT]; /* ring; immutable once stored */
    uint64_t requests_stored;
    uint64_t token_requests, tokens_issued, token_rejected, revocations, unauthorized;
    uint64_t effects, replayed; /* --idempotency */
    struct sim_rate rate;
};

struct sim {
    struct sim_opts opts;
    struct MHD_Daemon *daemon;
    int64_t start_ms;
    pthread_t timer;
    bool timer_started;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the timer thread: a new pending request, or stopping */
    bool stopping;
    struct sim_rules *rules;
    struct sim_req *pending;
    unsigned n_pending;
    struct sim_token tokens[SIM_TOKENS_MAX];
    unsigned token_next;
    struct sim_stats st;
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_ms(void)
{
    return mono_us() / 1000;
}

static void rule_free(struct sim_rule *r)
{
    for (int i = 0; i < r->n_match; i++) {
        free(r->match[i].name);
        free(r->match[i].value);
    }
    free(r->text);
    free(r->body);
}

static void rules_destroy(struct sim_rules *rules)
{
    if (!rules)
        return;
    for (int i = 0; i < rules->n; i++)
        rule_free(&rules->rule[i]);
    free(rules);
}

/* Reads the next space-separated word of a rule line into word, removing the double quotes of a
 * quoted part (which may hold spaces). Returns 1 for a word, 0 at the end of the line, -1 on
 * error. */
static int rule_next_word(const char **p, char *word, size_t size, struct sl_err *err)
{
    const char *s = *p;
    size_t n = 0;
    bool quoted = false;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '\0')
        return 0;
    for (; *s && (quoted || (*s != ' ' && *s != '\t')); s++) {
        char c = *s;
        if (c == '"') {
            quoted = !quoted;
            continue;
        }
        if (quoted && c == '\\' && (s[1] == '"' || s[1] == '\\'))
            c = *++s;
        if (n + 1 >= size)
            return sl_err_set(err, SL_ERR_INVALID, "word longer than %zu bytes", size - 1);
        word[n++] = c;
    }
    if (quoted)
        return sl_err_set(err, SL_ERR_INVALID, "unterminated quote");
    word[n] = '\0';
    *p = s;
    return 1;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int rule_add_match(struct sim_rule *r, enum sim_match_kind kind, const char *name,
                          const char *value, struct sl_err *err)
{
    if (r->n_match == SIM_MATCHERS_MAX)
        return sl_err_set(err, SL_ERR_INVALID, "more than %d matchers", SIM_MATCHERS_MAX);
    struct sim_match *m = &r->match[r->n_match];
    m->kind = kind;
    m->name = name ? strdup(name) : NULL;
    m->value = strdup(value);
    if ((name && !m->name) || !m->value) {
        free(m->name);
        free(m->value);
        return sl_err_set(err, SL_ERR_NOMEM, "out of memory");
    }
    r->n_match++;
    return 0;
}

static int rule_set_action(struct sim_rule *r, enum sim_action action, struct sl_err *err)
{
    if (r->action != ACT_NONE)
        return sl_err_set(err, SL_ERR_INVALID, "more than one of status=, hang, close");
    r->action = action;
    return 0;
}

/* Applies one word ("status=500", "hang", "header:X=y", ...) to the rule. */
static int rule_word(struct sim_rule *r, char *word, struct sl_err *err)
{
    if (strcmp(word, "hang") == 0)
        return rule_set_action(r, ACT_HANG, err);
    if (strcmp(word, "close") == 0)
        return rule_set_action(r, ACT_CLOSE, err);
    if (strcmp(word, "drop") == 0) {
        r->drop = true;
        return 0;
    }
    char *eq = strchr(word, '=');
    if (!eq)
        return sl_err_set(err, SL_ERR_INVALID, "unknown word '%s'", word);
    *eq = '\0';
    const char *k = word, *v = eq + 1;
    long n;
    if (strcmp(k, "path") == 0)
        return rule_add_match(r, MATCH_PATH, NULL, v, err);
    if (strcmp(k, "method") == 0)
        return rule_add_match(r, MATCH_METHOD, NULL, v, err);
    if (strcmp(k, "key") == 0)
        return rule_add_match(r, MATCH_KEY, NULL, v, err);
    if (strncmp(k, "header:", 7) == 0 && k[7])
        return rule_add_match(r, MATCH_HEADER, k + 7, v, err);
    if (strncmp(k, "json:", 5) == 0 && k[5] == '/')
        return rule_add_match(r, MATCH_JSON, k + 5, v, err);
    if (strcmp(k, "status") == 0) {
        if (parse_long(v, 200, SIM_STATUS_MAX - 1, &n))
            return sl_err_set(err, SL_ERR_INVALID, "status=%s: want 200..%d", v,
                              SIM_STATUS_MAX - 1);
        r->status = (int)n;
        return rule_set_action(r, ACT_REPLY, err);
    }
    if (strcmp(k, "body") == 0) {
        free(r->body);
        r->body = strdup(v);
        return r->body ? 0 : sl_err_set(err, SL_ERR_NOMEM, "out of memory");
    }
    struct {
        const char *name;
        long *field;
        long max;
    } nums[] = {
        {"times", &r->times, LONG_MAX},
        {"delay_ms", &r->delay_ms, SIM_DELAY_MAX_MS},
        {"retry_after", &r->retry_after, INT_MAX},
        {"retry_after_date", &r->retry_after_date, INT_MAX},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        if (strcmp(k, nums[i].name) == 0) {
            if (parse_long(v, 0, nums[i].max, nums[i].field))
                return sl_err_set(err, SL_ERR_INVALID, "%s=%s: want 0..%ld", k, v, nums[i].max);
            return 0;
        }
    }
    return sl_err_set(err, SL_ERR_INVALID, "unknown word '%s='", k);
}

static int rule_parse(struct sim_rule *r, const char *line, struct sl_err *err)
{
    char word[SIM_WORD_MAX];
    *r = (struct sim_rule){.retry_after = -1, .retry_after_date = -1};
    r->text = strdup(line);
    if (!r->text)
        return sl_err_set(err, SL_ERR_NOMEM, "out of memory");
    int rc;
    while ((rc = rule_next_word(&line, word, sizeof word, err)) == 1) {
        if (rule_word(r, word, err))
            return -1;
    }
    if (rc < 0)
        return -1;
    if (r->action == ACT_NONE)
        return sl_err_set(err, SL_ERR_INVALID, "no action (status=, hang or close)");
    if (r->action != ACT_REPLY &&
        (r->retry_after >= 0 || r->retry_after_date >= 0 || r->body || r->drop))
        return sl_err_set(err, SL_ERR_INVALID,
                          "retry_after, retry_after_date, body and drop need status=");
    if (r->action == ACT_HANG && r->delay_ms)
        return sl_err_set(err, SL_ERR_INVALID, "hang takes no delay_ms");
    return 0;
}

/* Appends the rules of text (lines; '#' comments) to rules; errors name source and line. */
static int rules_append(struct sim_rules *rules, const char *text, size_t len, const char *source,
                        struct sl_err *err)
{
    char line[SIM_WORD_MAX];
    int lineno = 0;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        lineno++;
        if (n >= sizeof line)
            return sl_err_set(err, SL_ERR_INVALID, "%s:%d: line longer than %zu bytes", source,
                              lineno, sizeof line - 1);
        memcpy(line, text + pos, n);
        line[n] = '\0';
        pos += n + 1;
        if (n && line[n - 1] == '\r')
            line[n - 1] = '\0';
        const char *s = line + strspn(line, " \t");
        if (*s == '\0' || *s == '#')
            continue;
        if (rules->n == SIM_RULES_MAX)
            return sl_err_set(err, SL_ERR_INVALID, "%s:%d: more than %d rules", source, lineno,
                              SIM_RULES_MAX);
        struct sim_rule *r = &rules->rule[rules->n];
        if (rule_parse(r, s, err)) {
            rule_free(r);
            sl_err_prefix(err, "%s:%d", source, lineno);
            return -1;
        }
        rules->n++;
    }
    return 0;
}

/* ---- matching ------------------------------------------------------------------------------- */

/* RFC 6901: the value at ptr in doc, or NULL. */
static json_t *json_pointer_get(json_t *doc, const char *ptr)
{
    json_t *cur = doc;
    while (cur && *ptr == '/') {
        char tok[256];
        size_t n = 0;
        for (ptr++; *ptr && *ptr != '/'; ptr++) {
            char c = *ptr;
            if (c == '~') {
                if (ptr[1] != '0' && ptr[1] != '1')
                    return NULL;
                c = *++ptr == '0' ? '~' : '/';
            }
            if (n + 1 >= sizeof tok)
                return NULL;
            tok[n++] = c;
        }
        tok[n] = '\0';
        if (json_is_object(cur)) {
            cur = json_object_getn(cur, tok, n);
        } else if (json_is_array(cur)) {
            long idx;
            if ((n > 1 && tok[0] == '0') || parse_long(tok, 0, LONG_MAX, &idx))
                return NULL;
            cur = json_array_get(cur, (size_t)idx);
        } else {
            return NULL;
        }
    }
    return *ptr ? NULL : cur;
}

/* A string's own text, else the compact JSON text of the value; caller frees. */
static char *json_value_text(const json_t *v)
{
    if (json_is_string(v))
        return strndup(json_string_value(v), json_string_length(v));
    return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

static bool match_one(const struct sim_match *m, struct sim_req *req, const char *url,
                      const char *method, json_t *doc)
{
    const char *v = NULL;
    switch (m->kind) {
    case MATCH_PATH: {
        size_t n = strlen(m->value);
        if (n && m->value[n - 1] == '*')
            return strncmp(url, m->value, n - 1) == 0;
        return strcmp(url, m->value) == 0;
    }
    case MATCH_METHOD:
        return strcmp(method, m->value) == 0;
    case MATCH_HEADER:
        v = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, m->name);
        return v && strcmp(v, m->value) == 0;
    case MATCH_KEY:
        v = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, SIM_KEY_HEADER);
        return v && strcmp(v, m->value) == 0;
    case MATCH_JSON: {
        json_t *j = doc ? json_pointer_get(doc, m->name) : NULL;
        char *text = j ? json_value_text(j) : NULL;
        bool ok = text && strcmp(text, m->value) == 0;
        free(text);
        return ok;
    }
    }
    return false;
}

/* @locks sim.lock. Picks the answer for a request subject to rules. */
static int rules_decide(struct sim *sim, struct sim_req *req, const char *url, const char *method,
                        json_t *doc, struct sim_reply *out)
{
    *out = (struct sim_reply){
        .action = ACT_REPLY, .status = 200, .retry_after = -1, .retry_after_date = -1};
    for (int i = 0; i < sim->rules->n; i++) {
        struct sim_rule *r = &sim->rules->rule[i];
        if (r->times && r->matched >= r->times)
            continue;
        bool all = true;
        for (int m = 0; all && m < r->n_match; m++)
            all = match_one(&r->match[m], req, url, method, doc);
        if (!all)
            continue;
        r->matched++;
        *out = (struct sim_reply){.action = r->action,
                                  .status = r->status,
                                  .rule = i + 1,
                                  .delay_ms = r->delay_ms,
                                  .retry_after = r->retry_after,
                                  .retry_after_date = r->retry_after_date,
                                  .drop = r->drop};
        if (r->body && !(out->body = strdup(r->body)))
            return -1;
        break;
    }
    return 0;
}

/* @locks sim.lock. With --idempotency, a request whose key was answered 2xx before gets that
 * stored answer: 1 with *out filled, 0 when the rules decide, -1 out of memory. */
static int idem_replay(struct sim *sim, struct sim_req *req, struct sim_reply *out)
{
    if (!sim->opts.idempotency)
        return 0;
    const char *key = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, SIM_KEY_HEADER);
    json_t *answer = key ? json_object_get(json_object_get(sim->st.keys, key), "answer") : NULL;
    if (!answer)
        return 0;
    *out = (struct sim_reply){.action = ACT_REPLY,
                              .status = (int)json_integer_value(json_object_get(answer, "status")),
                              .rule = (int)json_integer_value(json_object_get(answer, "rule")),
                              .retry_after = -1,
                              .retry_after_date = -1,
                              .replayed = true};
    const char *body = json_string_value(json_object_get(answer, "body"));
    if (body && !(out->body = strdup(body)))
        return -1;
    return 1;
}

/* ---- OAuth ---------------------------------------------------------------------------------- */

/* @locks sim.lock */
static bool token_valid(struct sim *sim, const char *authorization)
{
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return false;
    const char *t = authorization + 7;
    int64_t now = mono_ms();
    for (unsigned i = 0; i < SIM_TOKENS_MAX; i++) {
        const struct sim_token *tok = &sim->tokens[i];
        if (tok->value[0] && tok->expires_ms > now && strcmp(tok->value, t) == 0)
            return true;
    }
    return false;
}

static bool client_ok(const struct sim *sim, const char *id, const char *secret)
{
    if (!id || !secret)
        return false;
    size_t n = strlen(id);
    for (int i = 0; i < sim->opts.n_clients; i++) {
        const char *c = sim->opts.clients[i];
        if (strncmp(c, id, n) == 0 && c[n] == ':' && strcmp(c + n + 1, secret) == 0)
            return true;
    }
    return false;
}

/* Finds name in an application/x-www-form-urlencoded body; decodes it into out. */
static bool form_get(const char *body, const char *name, char *out, size_t size)
{
    size_t nlen = strlen(name);
    for (const char *p = body; p; p = strchr(p, '&'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, nlen) != 0 || p[nlen] != '=')
            continue;
        const char *v = p + nlen + 1;
        size_t vlen = strcspn(v, "&");
        if (vlen >= size)
            return false;
        memcpy(out, v, vlen);
        out[vlen] = '\0';
        for (char *c = out; *c; c++)
            if (*c == '+')
                *c = ' ';
        MHD_http_unescape(out);
        return true;
    }
    return false;
}

/* ---- stats ---------------------------------------------------------------------------------- */

/* A JSON string of at most cap bytes of s (cut at a character boundary); bytes that are not
 * UTF-8 become '?' so that a binary body can still be listed. */
static json_t *json_text(const char *s, size_t len, size_t cap)
{
    if (len > cap) {
        len = cap;
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
            len--;
    }
    json_t *j = json_stringn(s, len);
    if (j || len == 0)
        return j;
    char *copy = malloc(len);
    if (!copy)
        return NULL;
    for (size_t i = 0; i < len; i++)
        copy[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
    j = json_stringn(copy, len);
    free(copy);
    return j;
}

static enum MHD_Result header_to_json(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    json_t *headers = cls;
    const char *old = json_string_value(json_object_get(headers, key));
    if (old) {
        /* A repeated header is listed once, joined as HTTP would fold it. */
        size_t n = strlen(old) + 2 + strlen(value);
        char *joined = malloc(n + 1);
        if (joined) {
            snprintf(joined, n + 1, "%s, %s", old, value);
            json_object_set_new(headers, key, json_text(joined, n, SIM_STORED_BODY_MAX));
            free(joined);
        }
        return MHD_YES;
    }
    json_object_set_new(headers, key, json_text(value, strlen(value), SIM_STORED_BODY_MAX));
    return MHD_YES;
}

/* @locks sim.lock. Notes an arrival for the peak-rate windows. */
static void rate_arrival(struct sim_rate *r)
{
    int64_t now = mono_us();
    r->t_us[r->tail % SIM_RATE_RING] = now;
    r->tail++;
    if (r->tail - r->head_1s > SIM_RATE_RING)
        r->head_1s = r->tail - SIM_RATE_RING;
    while (r->t_us[r->head_1s % SIM_RATE_RING] <= now - 1000000)
        r->head_1s++;
    if (r->head_100ms < r->head_1s)
        r->head_100ms = r->head_1s;
    while (r->t_us[r->head_100ms % SIM_RATE_RING] <= now - 100000)
        r->head_100ms++;
    if (r->tail - r->head_1s > r->peak_1s)
        r->peak_1s = r->tail - r->head_1s;
    if (r->tail - r->head_100ms > r->peak_100ms)
        r->peak_100ms = r->tail - r->head_100ms;
}

static const char *action_name(enum sim_action a)
{
    return a == ACT_HANG ? "hang" : a == ACT_CLOSE ? "close" : "reply";
}

static void counter_add(json_t *obj, const char *name, json_int_t n)
{
    json_t *v = json_object_get(obj, name);
    json_integer_set(v, json_integer_value(v) + n);
}

/* @locks sim.lock. Counts a request's key; with --idempotency, the first 2xx of the key is its
 * effect and its answer is stored for idem_replay(). */
static void stats_key(struct sim *sim, const char *key, const struct sim_reply *r, bool ok)
{
    struct sim_stats *st = &sim->st;
    json_t *k = json_object_get(st->keys, key);
    if (!k && json_object_size(st->keys) < SIM_KEYS_MAX) {
        json_t *fresh = sim->opts.idempotency ? json_pack("{s:i,s:i,s:i,s:i}", "requests", 0, "2xx",
                                                          0, "effects", 0, "replayed", 0)
                                              : json_pack("{s:i,s:i}", "requests", 0, "2xx", 0);
        if (json_object_set_new(st->keys, key, fresh) == 0)
            k = json_object_get(st->keys, key);
    }
    if (!k) {
        st->keys_dropped++;
        return;
    }
    counter_add(k, "requests", 1);
    counter_add(k, "2xx", ok);
    if (r->replayed) {
        counter_add(k, "replayed", 1);
        st->replayed++;
    } else if (ok && sim->opts.idempotency) {
        counter_add(k, "effects", 1);
        st->effects++;
        json_object_set_new(
            k, "answer",
            json_pack("{s:i,s:i,s:s*}", "status", r->status, "rule", r->rule, "body", r->body));
    }
}

/* @locks sim.lock. Counts a request subject to rules with the answer it got. */
static void stats_record(struct sim *sim, struct sim_req *req, const char *url, const char *method,
                         json_t *doc)
{
    struct sim_stats *st = &sim->st;
    const struct sim_reply *r = &req->reply;
    bool ok = r->action == ACT_REPLY && r->status >= 200 && r->status < 300;
    uint64_t seq = ++st->total;
    if (r->action == ACT_HANG)
        st->hung++;
    else if (r->action == ACT_CLOSE)
        st->closed++;
    else
        st->by_status[r->status]++;

    const char *key = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, SIM_KEY_HEADER);
    if (key)
        stats_key(sim, key, r, ok);

    json_t *body = json_text(req->body ? req->body : "", req->len, SIM_STORED_BODY_MAX);
    json_t *headers = json_object();
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, header_to_json, headers);
    json_t *entry = json_pack("{s:I,s:I,s:s,s:s,s:o,s:O*,s:b,s:s,s:i,s:i}", "seq", (json_int_t)seq,
                              "t_ms", (json_int_t)(mono_ms() - sim->start_ms), "method", method,
                              "path", url, "headers", headers, "body", body, "body_truncated",
                              req->len > SIM_STORED_BODY_MAX, "action", action_name(r->action),
                              "status", r->action == ACT_REPLY ? r->status : 0, "rule", r->rule);
    if (entry && r->replayed)
        json_object_set_new(entry, "replayed", json_true());
    if (entry && r->drop)
        json_object_set_new(entry, "dropped", json_true());
    if (entry) {
        json_t **slot = &st->requests[st->requests_stored % SIM_REQUESTS_KEPT];
        json_decref(*slot);
        *slot = entry;
        st->requests_stored++;
    }

    char *order_key = NULL;
    if (sim->opts.order_header) {
        const char *h =
            MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, sim->opts.order_header);
        order_key = h ? strdup(h) : NULL;
    } else if (sim->opts.order_pointer && doc) {
        json_t *v = json_pointer_get(doc, sim->opts.order_pointer);
        order_key = v ? json_value_text(v) : NULL;
    }
    if (order_key) {
        json_t *list = NULL;
        if (st->order_entries < SIM_ORDER_MAX) { /* bounds the ordering keys too */
            list = json_object_get(st->order, order_key);
            if (!list && json_object_set_new(st->order, order_key, json_array()) == 0)
                list = json_object_get(st->order, order_key);
        }
        if (list &&
            json_array_append_new(
                list, json_pack("{s:I,s:s?,s:i,s:O*}", "seq", (json_int_t)seq, "key", key, "status",
                                r->action == ACT_REPLY ? r->status : 0, "body", body)) == 0)
            st->order_entries++;
        else
            st->order_dropped++;
        free(order_key);
    }
    json_decref(body);
}

/* @locks sim.lock */
static void stats_clear(struct sim_stats *st)
{
    json_object_clear(st->keys);
    json_object_clear(st->order);
    for (size_t i = 0; i < SIM_REQUESTS_KEPT; i++)
        json_decref(st->requests[i]);
    json_t *keys = st->keys, *order = st->order;
    memset(st, 0, sizeof *st);
    st->keys = keys;
    st->order = order;
}

/* @locks sim.lock. A snapshot that shares only immutable parts with the live counters, so that
 * it can be serialised after the lock is released. */
static json_t *stats_snapshot(struct sim *sim, uint64_t max_requests, bool with_order)
{
    struct sim_stats *st = &sim->st;
    json_t *by_status = json_object();
    for (int s = 0; s < SIM_STATUS_MAX; s++) {
        if (st->by_status[s]) {
            char code[8];
            snprintf(code, sizeof code, "%d", s);
            json_object_set_new(by_status, code, json_integer((json_int_t)st->by_status[s]));
        }
    }
    uint64_t kept =
        st->requests_stored < SIM_REQUESTS_KEPT ? st->requests_stored : SIM_REQUESTS_KEPT;
    uint64_t n = kept < max_requests ? kept : max_requests;
    json_t *requests = json_array();
    for (uint64_t i = st->requests_stored - n; i < st->requests_stored; i++)
        json_array_append(requests, st->requests[i % SIM_REQUESTS_KEPT]);
    json_t *rules = json_array();
    for (int i = 0; i < sim->rules->n; i++)
        json_array_append_new(rules, json_pack("{s:s,s:I}", "rule", sim->rules->rule[i].text,
                                               "matched", (json_int_t)sim->rules->rule[i].matched));
    json_t *o = json_pack(
        "{s:I,s:o,s:I,s:I,s:I,s:I,s:I,s:o,s:I,s:o,s:I,s:I,s:o,s:{s:I,s:I,s:I,s:I,s:I}}",
        "requests_total", (json_int_t)st->total, "by_status", by_status, "hung",
        (json_int_t)st->hung, "closed", (json_int_t)st->closed, "pending",
        (json_int_t)sim->n_pending, "peak_rps_1s", (json_int_t)st->rate.peak_1s, "peak_per_100ms",
        (json_int_t)st->rate.peak_100ms, "keys", json_deep_copy(st->keys), "keys_dropped",
        (json_int_t)st->keys_dropped, "requests", requests, "requests_dropped",
        (json_int_t)(st->requests_stored - kept), "requests_kept_max",
        (json_int_t)SIM_REQUESTS_KEPT, "rules", rules, "oauth", "token_requests",
        (json_int_t)st->token_requests, "tokens_issued", (json_int_t)st->tokens_issued,
        "token_rejected", (json_int_t)st->token_rejected, "revocations",
        (json_int_t)st->revocations, "unauthorized", (json_int_t)st->unauthorized);
    if (o && sim->opts.idempotency)
        json_object_set_new(o, "idempotency",
                            json_pack("{s:I,s:I}", "effects", (json_int_t)st->effects, "replayed",
                                      (json_int_t)st->replayed));
    if (o && with_order) {
        json_object_set_new(o, "order", json_deep_copy(st->order));
        json_object_set_new(o, "order_dropped", json_integer((json_int_t)st->order_dropped));
    }
    return o;
}

/* ---- answers -------------------------------------------------------------------------------- */

/* Answers with a JSON body; takes the reference to body. */
static enum MHD_Result send_json(struct MHD_Connection *conn, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, int status, const char *error,
                                  const char *detail)
{
    return send_json(conn, status, json_pack("{s:s,s:s}", "error", error, "detail", detail));
}

/* A `drop` answer's body: its first half is sent, then the reader reports an error, on which
 * MHD closes the connection with the rest of the announced Content-Length missing. */
struct sim_dropped {
    size_t len;
    char body[];
};

static ssize_t dropped_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    const struct sim_dropped *d = cls;
    size_t half = d->len / 2;
    if (pos >= half)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = half - (size_t)pos < max ? half - (size_t)pos : max;
    memcpy(buf, d->body + pos, n);
    return (ssize_t)n;
}

/* The response for body: as it is, or (drop) cut after half of it. */
static struct MHD_Response *reply_response(const char *body, bool drop)
{
    size_t len = strlen(body);
    if (!drop)
        return MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    struct sim_dropped *d = malloc(sizeof *d + len + 1);
    if (!d)
        return NULL;
    d->len = len;
    memcpy(d->body, body, len + 1);
    struct MHD_Response *resp = MHD_create_response_from_callback(len, 4096, dropped_read, d, free);
    if (!resp)
        free(d);
    return resp;
}

/* Sends the decided answer, or closes the connection (MHD_NO) for close, hang and shutdown. */
static enum MHD_Result reply_send(struct sim_req *req)
{
    const struct sim_reply *r = &req->reply;
    if (req->state == REQ_ABORTED || r->action != ACT_REPLY)
        return MHD_NO;
    req->state = REQ_ANSWERED;
    char dflt[96];
    const char *body = r->body;
    if (r->status == 204 || r->status == 304) {
        body = "";
    } else if (!body) {
        snprintf(dflt, sizeof dflt, "{\"destsim\":true,\"status\":%d,\"rule\":%d}", r->status,
                 r->rule);
        body = dflt;
    }
    if (r->drop && !*body)
        return MHD_NO; /* nothing to cut in half: cut before the answer */
    struct MHD_Response *resp = reply_response(body, r->drop);
    if (!resp)
        return MHD_NO;
    bool json = !r->body || r->body[0] == '{' || r->body[0] == '[';
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            json ? "application/json" : "text/plain");
    char value[64];
    if (r->retry_after >= 0) {
        snprintf(value, sizeof value, "%ld", r->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, value);
    }
    if (r->retry_after_date >= 0) {
        /* Computed when answering, so that a delayed answer still points into the future. */
        time_t t = time(NULL) + r->retry_after_date;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(value, sizeof value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, value);
    }
    if (r->replayed)
        MHD_add_response_header(resp, SIM_REPLAYED_HEADER, "true");
    if (r->unauthorized)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer error=\"invalid_token\"");
    snprintf(value, sizeof value, "%d", r->rule);
    MHD_add_response_header(resp, "X-Destsim-Rule", value);
    enum MHD_Result rc = MHD_queue_response(req->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* @locks sim.lock (before a held request is suspended: it may be freed once resumed). */
static void log_request(const struct sim *sim, const struct sim_req *req, const char *method,
                        const char *url)
{
    if (!sim->opts.verbose)
        return;
    const struct sim_reply *r = &req->reply;
    const char *key = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, SIM_KEY_HEADER);
    fprintf(stderr, "destsim: %s %s key=%s -> %s %d rule=%d delay_ms=%ld%s\n", method, url,
            key ? key : "-", action_name(r->action), r->action == ACT_REPLY ? r->status : 0,
            r->rule, r->delay_ms, r->replayed ? " (replayed)" : "");
}

/* A request subject to rules, complete (or cut short by a bound: status is then 413/431). */
static enum MHD_Result answer_request(struct sim *sim, struct sim_req *req, const char *url,
                                      const char *method, int bound_status)
{
    json_t *doc = req->len ? json_loadb(req->body, req->len, 0, NULL) : NULL;
    pthread_mutex_lock(&sim->lock);
    struct sim_reply *r = &req->reply;
    int rc = 0;
    if (bound_status) {
        *r = (struct sim_reply){
            .action = ACT_REPLY, .status = bound_status, .retry_after = -1, .retry_after_date = -1};
    } else if (sim->opts.require_bearer &&
               !token_valid(sim, MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                             MHD_HTTP_HEADER_AUTHORIZATION))) {
        *r = (struct sim_reply){.action = ACT_REPLY,
                                .status = 401,
                                .retry_after = -1,
                                .retry_after_date = -1,
                                .unauthorized = true};
        sim->st.unauthorized++;
    } else {
        int replay = idem_replay(sim, req, r);
        rc = replay == 0 ? rules_decide(sim, req, url, method, doc, r) : replay < 0 ? -1 : 0;
    }
    if (rc == 0) {
        stats_record(sim, req, url, method, doc);
        log_request(sim, req, method, url);
    }
    bool hold = rc == 0 && (r->action == ACT_HANG || r->delay_ms > 0);
    if (hold && sim->stopping) {
        rc = -1;
    } else if (hold) {
        MHD_suspend_connection(req->conn);
        req->state = REQ_HELD;
        req->due_ms = mono_ms() + (r->action == ACT_HANG ? SIM_HANG_MAX_MS : r->delay_ms);
        req->next = sim->pending;
        sim->pending = req;
        sim->n_pending++;
        pthread_cond_signal(&sim->wake);
    }
    pthread_mutex_unlock(&sim->lock);
    json_decref(doc);
    if (rc)
        return MHD_NO;
    return hold ? MHD_YES : reply_send(req);
}

/* ---- control API ---------------------------------------------------------------------------- */

static enum MHD_Result control_token(struct sim *sim, struct sim_req *req)
{
    char grant[64], id[256], secret[256];
    char *basic_pass = NULL;
    char *basic_user = MHD_basic_auth_get_username_password(req->conn, &basic_pass);
    const char *body = req->body ? req->body : "";
    bool grant_ok = form_get(body, "grant_type", grant, sizeof grant) &&
                    strcmp(grant, "client_credentials") == 0;
    bool client;
    if (basic_user)
        client = client_ok(sim, basic_user, basic_pass);
    else
        client = form_get(body, "client_id", id, sizeof id) &&
                 form_get(body, "client_secret", secret, sizeof secret) &&
                 client_ok(sim, id, secret);
    MHD_free(basic_user);
    MHD_free(basic_pass);
    unsigned char raw[32];
    bool issue = grant_ok && client && RAND_bytes(raw, sizeof raw) == 1;

    json_t *answer = NULL;
    pthread_mutex_lock(&sim->lock);
    sim->st.token_requests++;
    if (issue) {
        struct sim_token *tok = &sim->tokens[sim->token_next++ % SIM_TOKENS_MAX];
        for (size_t i = 0; i < sizeof raw; i++)
            snprintf(tok->value + 2 * i, 3, "%02x", raw[i]);
        tok->expires_ms = mono_ms() + sim->opts.oauth_ttl * 1000;
        sim->st.tokens_issued++;
        answer = json_pack("{s:s,s:s,s:I}", "access_token", tok->value, "token_type", "Bearer",
                           "expires_in", (json_int_t)sim->opts.oauth_ttl);
    } else {
        sim->st.token_rejected++;
    }
    pthread_mutex_unlock(&sim->lock);
    if (issue)
        return send_json(req->conn, 200, answer);
    if (!grant_ok)
        return send_json(req->conn, 400, json_pack("{s:s}", "error", "unsupported_grant_type"));
    if (!client)
        return send_json(req->conn, 401, json_pack("{s:s}", "error", "invalid_client"));
    return MHD_NO; /* no random bytes */
}

static enum MHD_Result control_request(struct sim *sim, struct sim_req *req, const char *url,
                                       const char *method)
{
    bool post = strcmp(method, "POST") == 0;
    if (strcmp(url, "/_sim/stats") == 0 && strcmp(method, "GET") == 0) {
        const char *q = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "requests");
        const char *o = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "order");
        long max = SIM_REQUESTS_KEPT;
        if (q && parse_long(q, 0, LONG_MAX, &max))
            return send_error(req->conn, 400, "bad_request", "requests=N wants a number");
        pthread_mutex_lock(&sim->lock);
        json_t *snap = stats_snapshot(sim, (uint64_t)max, !(o && strcmp(o, "0") == 0));
        pthread_mutex_unlock(&sim->lock);
        return send_json(req->conn, 200, snap);
    }
    if (strcmp(url, "/_sim/rules") == 0 && post) {
        struct sl_err err = {0};
        struct sim_rules *rules = calloc(1, sizeof *rules);
        if (!rules)
            return MHD_NO;
        if (rules_append(rules, req->body ? req->body : "", req->len, "rules", &err)) {
            rules_destroy(rules);
            return send_error(req->conn, 400, "bad_rules", err.msg);
        }
        int n = rules->n;
        pthread_mutex_lock(&sim->lock);
        struct sim_rules *old = sim->rules;
        sim->rules = rules;
        pthread_mutex_unlock(&sim->lock);
        rules_destroy(old);
        return send_json(req->conn, 200, json_pack("{s:i}", "rules", n));
    }
    if (strcmp(url, "/_sim/reset") == 0 && post) {
        pthread_mutex_lock(&sim->lock);
        stats_clear(&sim->st);
        pthread_mutex_unlock(&sim->lock);
        return send_json(req->conn, 200, json_pack("{s:b}", "reset", 1));
    }
    if (strcmp(url, "/_sim/oauth/token") == 0 && post) {
        if (sim->opts.n_clients == 0)
            return send_error(req->conn, 404, "not_found", "no --oauth-client configured");
        return control_token(sim, req);
    }
    if (strcmp(url, "/_sim/oauth/revoke") == 0 && post) {
        pthread_mutex_lock(&sim->lock);
        memset(sim->tokens, 0, sizeof sim->tokens);
        sim->st.revocations++;
        pthread_mutex_unlock(&sim->lock);
        return send_json(req->conn, 200, json_pack("{s:b}", "revoked", 1));
    }
    return send_error(req->conn, 404, "not_found", "unknown control path or method");
}

/* ---- MHD callbacks -------------------------------------------------------------------------- */

static int body_append(struct sim_req *req, const char *data, size_t n, size_t max)
{
    if (req->too_large || req->len + n > max) {
        req->too_large = true; /* keep reading (and dropping) so that 413 can be answered */
        return 0;
    }
    if (req->len + n + 1 > req->cap) {
        size_t cap = req->cap ? req->cap : 4096;
        while (cap < req->len + n + 1)
            cap *= 2;
        char *p = realloc(req->body, cap);
        if (!p)
            return -1;
        req->body = p;
        req->cap = cap;
    }
    memcpy(req->body + req->len, data, n);
    req->len += n;
    req->body[req->len] = '\0';
    return 0;
}

/* The bound a request breaks before its body is read (header count, Content-Length), or 0. */
static int early_bound(const struct sim *sim, struct MHD_Connection *conn)
{
    if (MHD_get_connection_values(conn, MHD_HEADER_KIND, NULL, NULL) > SIM_HEADERS_MAX)
        return 431;
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) > sim->opts.max_body)
        return 413;
    return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    struct sim *sim = cls;
    struct sim_req *req = *req_cls;
    if (!req) {
        req = calloc(1, sizeof *req);
        if (!req)
            return MHD_NO;
        req->sim = sim;
        req->conn = conn;
        req->control = strncmp(url, "/_sim/", 6) == 0;
        *req_cls = req;
        if (!req->control) {
            pthread_mutex_lock(&sim->lock);
            rate_arrival(&sim->st.rate);
            pthread_mutex_unlock(&sim->lock);
        }
        int bound = early_bound(sim, conn);
        if (bound == 0)
            return MHD_YES;
        req->state = REQ_ANSWERED;
        if (req->control)
            return send_error(conn, bound, "too_large", "request over a destsim bound");
        return answer_request(sim, req, url, method, bound);
    }
    /* Called again once resumed (MHD calls no more after an answer, nor while suspended). */
    if (req->state == REQ_DUE || req->state == REQ_ABORTED)
        return reply_send(req);
    if (*upload_data_size) {
        if (body_append(req, upload_data, *upload_data_size, sim->opts.max_body))
            return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (req->control) {
        req->state = REQ_ANSWERED;
        if (req->too_large)
            return send_error(conn, 413, "too_large", "body over --max-body");
        enum MHD_Result rc = control_request(sim, req, url, method);
        if (sim->opts.verbose)
            fprintf(stderr, "destsim: %s %s (control)\n", method, url);
        return rc;
    }
    return answer_request(sim, req, url, method, req->too_large ? 413 : 0);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct sim_req *req = *req_cls;
    if (!req)
        return;
    free(req->reply.body);
    free(req->body);
    free(req);
    *req_cls = NULL;
}

/* ---- the timer thread ----------------------------------------------------------------------- */

/* Resumes each request of a list taken off sim.pending. MHD may free a request as soon as it is
 * resumed, so the next pointer is read first. */
static void resume_list(struct sim_req *list)
{
    while (list) {
        struct sim_req *next = list->next;
        MHD_resume_connection(list->conn);
        list = next;
    }
}

static void *timer_main(void *arg)
{
    struct sim *sim = arg;
    pthread_mutex_lock(&sim->lock);
    while (!sim->stopping) {
        int64_t now = mono_ms(), next = INT64_MAX;
        struct sim_req *due = NULL;
        for (struct sim_req **pp = &sim->pending; *pp;) {
            struct sim_req *req = *pp;
            if (req->due_ms <= now) {
                *pp = req->next;
                req->state = req->reply.action == ACT_HANG ? REQ_ABORTED : REQ_DUE;
                req->next = due;
                due = req;
                sim->n_pending--;
            } else {
                next = req->due_ms < next ? req->due_ms : next;
                pp = &req->next;
            }
        }
        if (due) {
            pthread_mutex_unlock(&sim->lock);
            resume_list(due);
            pthread_mutex_lock(&sim->lock);
        } else if (next == INT64_MAX) {
            pthread_cond_wait(&sim->wake, &sim->lock);
        } else {
            struct timespec ts = {.tv_sec = next / 1000, .tv_nsec = (next % 1000) * 1000000};
            pthread_cond_timedwait(&sim->wake, &sim->lock, &ts);
        }
    }
    pthread_mutex_unlock(&sim->lock);
    return NULL;
}

/* ---- life cycle ----------------------------------------------------------------------------- */

static int listen_addr(const char *spec, struct sockaddr_storage *ss, struct sl_err *err)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || (size_t)(colon - spec) >= sizeof host)
        return sl_err_set(err, SL_ERR_INVALID, "--listen %s: want HOST:PORT", spec);
    const char *h = spec, *end = colon;
    if (*h == '[' && end > h && end[-1] == ']') {
        h++;
        end--;
    }
    memcpy(host, h, (size_t)(end - h));
    host[end - h] = '\0';
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc)
        return sl_err_set(err, SL_ERR_INVALID, "--listen %s: %s", spec, gai_strerror(rc));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return 0;
}

static int read_file(const char *path, char **out, size_t *len, struct sl_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return sl_err_set(err, SL_ERR_IO, "%s: %s", path, strerror(errno));
    char *buf = malloc(SIM_SCRIPT_MAX + 1);
    size_t n = buf ? fread(buf, 1, SIM_SCRIPT_MAX + 1, f) : 0;
    bool bad = !buf || ferror(f);
    fclose(f);
    if (bad || n > SIM_SCRIPT_MAX) {
        free(buf);
        return sl_err_set(err, SL_ERR_IO, "%s: unreadable or over %d bytes", path, SIM_SCRIPT_MAX);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

static int write_port_file(const char *path, unsigned port, struct sl_err *err)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return sl_err_set(err, SL_ERR_INVALID, "--port-file path too long");
    FILE *f = fopen(tmp, "w");
    if (!f)
        return sl_err_set(err, SL_ERR_IO, "%s: %s", tmp, strerror(errno));
    int bad = fprintf(f, "%u\n", port) < 0;
    bad |= fclose(f) != 0;
    /* Renamed into place so that a reader never sees a half-written file. */
    if (bad || rename(tmp, path) != 0)
        return sl_err_set(err, SL_ERR_IO, "%s: %s", path, strerror(errno));
    return 0;
}

static void sim_destroy(struct sim *sim)
{
    if (!sim)
        return;
    rules_destroy(sim->rules);
    stats_clear(&sim->st);
    json_decref(sim->st.keys);
    json_decref(sim->st.order);
    pthread_cond_destroy(&sim->wake);
    pthread_mutex_destroy(&sim->lock);
    free(sim);
}

static struct sim *sim_new(const struct sim_opts *opts, struct sl_err *err)
{
    struct sim *sim = calloc(1, sizeof *sim);
    if (!sim) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    sim->opts = *opts;
    sim->start_ms = mono_ms();
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sim->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&sim->lock, NULL);
    sim->rules = calloc(1, sizeof *sim->rules);
    sim->st.keys = json_object();
    sim->st.order = json_object();
    if (!sim->rules || !sim->st.keys || !sim->st.order) {
        sim_destroy(sim);
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    return sim;
}

static int sim_start(struct sim *sim, struct sl_err *err)
{
    struct sockaddr_storage ss = {0};
    if (listen_addr(sim->opts.listen, &ss, err))
        return -1;
    if (pthread_create(&sim->timer, NULL, timer_main, sim) != 0)
        return sl_err_set(err, SL_ERR_INTERNAL, "cannot start the timer thread");
    sim->timer_started = true;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (sim->opts.verbose)
        flags |= MHD_USE_ERROR_LOG;
    struct MHD_OptionItem ops[] = {
        {MHD_OPTION_SOCK_ADDR, 0, &ss},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, sim},
        {MHD_OPTION_CONNECTION_TIMEOUT, SIM_IDLE_TIMEOUT_S, NULL},
        /* A pool of one is no pool: leave the option out then. */
        {sim->opts.threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END,
         (intptr_t)sim->opts.threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    sim->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, sim, MHD_OPTION_ARRAY, ops,
                                   MHD_OPTION_END);
    if (!sim->daemon)
        return sl_err_set(err, SL_ERR_IO, "cannot listen on %s", sim->opts.listen);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(sim->daemon, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = info ? info->port : 0;
    if (port == 0)
        return sl_err_set(err, SL_ERR_INTERNAL, "cannot tell the bound port");
    if (sim->opts.port_file && write_port_file(sim->opts.port_file, port, err))
        return -1;
    fprintf(stderr, "destsim: listening on %s (port %u)\n", sim->opts.listen, port);
    return 0;
}

/* Stops the timer first so that nothing else takes requests off the pending list, then resumes
 * what is still held (MHD refuses to stop with suspended connections) and stops MHD, which
 * closes those connections without an answer. */
static void sim_stop(struct sim *sim)
{
    pthread_mutex_lock(&sim->lock);
    sim->stopping = true;
    pthread_cond_signal(&sim->wake);
    pthread_mutex_unlock(&sim->lock);
    if (sim->timer_started)
        pthread_join(sim->timer, NULL);
    pthread_mutex_lock(&sim->lock);
    struct sim_req *held = sim->pending;
    sim->pending = NULL;
    sim->n_pending = 0;
    for (struct sim_req *req = held; req; req = req->next)
        req->state = REQ_ABORTED;
    pthread_mutex_unlock(&sim->lock);
    resume_list(held);
    if (sim->daemon)
        MHD_stop_daemon(sim->daemon);
}

static int load_rules(struct sim_rules *rules, const struct sim_opts *o, struct sl_err *err)
{
    if (o->script) {
        char *text = NULL;
        size_t len = 0;
        if (read_file(o->script, &text, &len, err))
            return -1;
        int rc = rules_append(rules, text, len, o->script, err);
        free(text);
        if (rc)
            return -1;
    }
    for (int i = 0; i < o->n_rules; i++) {
        char source[32];
        snprintf(source, sizeof source, "--rule %d", i + 1);
        if (rules_append(rules, o->rules[i], strlen(o->rules[i]), source, err))
            return -1;
    }
    return 0;
}

static int parse_opts(int argc, char **argv, struct sim_opts *o, struct sl_err *err)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"port-file", required_argument, NULL, 'p'},
        {"script", required_argument, NULL, 's'},
        {"rule", required_argument, NULL, 'r'},
        {"threads", required_argument, NULL, 't'},
        {"max-body", required_argument, NULL, 'b'},
        {"order-header", required_argument, NULL, 'H'},
        {"order-pointer", required_argument, NULL, 'P'},
        {"oauth-client", required_argument, NULL, 'c'},
        {"oauth-ttl", required_argument, NULL, 'T'},
        {"require-bearer", no_argument, NULL, 'B'},
        {"idempotency", no_argument, NULL, 'I'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct sim_opts){
        .listen = "127.0.0.1:0", .threads = 4, .max_body = SIM_BODY_MAX_DEFAULT, .oauth_ttl = 3600};
    long n;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'l':
            o->listen = optarg;
            break;
        case 'p':
            o->port_file = optarg;
            break;
        case 's':
            o->script = optarg;
            break;
        case 'r':
            if (o->n_rules == SIM_RULES_MAX)
                return sl_err_set(err, SL_ERR_INVALID, "more than %d --rule", SIM_RULES_MAX);
            o->rules[o->n_rules++] = optarg;
            break;
        case 't':
            if (parse_long(optarg, 1, SIM_THREADS_MAX, &n))
                return sl_err_set(err, SL_ERR_INVALID, "--threads %s: want 1..%d", optarg,
                                  SIM_THREADS_MAX);
            o->threads = (unsigned)n;
            break;
        case 'b':
            if (parse_long(optarg, 0, INT_MAX, &n))
                return sl_err_set(err, SL_ERR_INVALID, "--max-body %s: want bytes", optarg);
            o->max_body = (size_t)n;
            break;
        case 'H':
            o->order_header = optarg;
            break;
        case 'P':
            if (optarg[0] != '/')
                return sl_err_set(err, SL_ERR_INVALID, "--order-pointer %s: want /a/b", optarg);
            o->order_pointer = optarg;
            break;
        case 'c':
            if (!strchr(optarg, ':') || o->n_clients == SIM_CLIENTS_MAX)
                return sl_err_set(err, SL_ERR_INVALID, "--oauth-client: want ID:SECRET, at most %d",
                                  SIM_CLIENTS_MAX);
            o->clients[o->n_clients++] = optarg;
            break;
        case 'T':
            if (parse_long(optarg, 1, 86400 * 365, &n))
                return sl_err_set(err, SL_ERR_INVALID, "--oauth-ttl %s: want seconds", optarg);
            o->oauth_ttl = n;
            break;
        case 'B':
            o->require_bearer = true;
            break;
        case 'I':
            o->idempotency = true;
            break;
        case 'v':
            o->verbose = true;
            break;
        case 'h':
            fputs(usage, stdout);
            exit(0);
        default:
            return sl_err_set(err, SL_ERR_INVALID, "unknown or incomplete option '%s'",
                              argv[optind - 1]);
        }
    }
    if (optind < argc)
        return sl_err_set(err, SL_ERR_INVALID, "unexpected argument '%s'", argv[optind]);
    if (o->order_header && o->order_pointer)
        return sl_err_set(err, SL_ERR_INVALID,
                          "--order-header and --order-pointer exclude each other");
    if (o->require_bearer && o->n_clients == 0)
        return sl_err_set(err, SL_ERR_INVALID, "--require-bearer needs --oauth-client");
    return 0;
}

int main(int argc, char **argv)
{
    struct sl_err err = {0};
    struct sim_opts opts;
    struct sim *sim = NULL;
    int sig = 0, rc = 1;
    if (parse_opts(argc, argv, &opts, &err)) {
        fprintf(stderr, "destsim: %s (see --help)\n", err.msg);
        return 2;
    }
    /* Blocked before any thread starts so that only sigwait() below takes them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    sim = sim_new(&opts, &err);
    if (!sim)
        goto out;
    if (load_rules(sim->rules, &opts, &err)) {
        rc = 2; /* a bad rule is a bad command line */
        goto out;
    }
    if (sim_start(sim, &err))
        goto out;
    sigwait(&stop, &sig);
    if (opts.verbose)
        fprintf(stderr, "destsim: signal %d, stopping\n", sig);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "destsim: %s\n", err.msg);
    if (sim)
        sim_stop(sim);
    sim_destroy(sim);
    return rc;
}
