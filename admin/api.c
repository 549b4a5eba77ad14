#include "api.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops_dlq.h"
#include "ops_events.h"
#include "sl_pg.h"
#include "sl_pg_query.h"

#define SEGMENTS_MAX 6   /* path segments after /api/v1/ */
#define SEGMENT_MAX  256 /* bytes of one */
#define TIME_MAX     40  /* bytes of an RFC 3339 time */

struct adm_api {
    const char *dsn;
};

/* ---- errors ---- */

static const char *code_of(unsigned int status)
{
    switch (status) {
    case 400:
    case 405:
    case 413:
        return "bad_request";
    case 401:
        return "unauthorized";
    case 403:
        return "forbidden";
    case 404:
        return "not_found";
    case 409:
        return "conflict";
    case 503:
        return "unavailable";
    default:
        return "internal";
    }
}

json_t *adm_api_error(unsigned int status, const char *fmt, ...)
{
    char msg[SL_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return json_pack("{s:{s:s, s:s}}", "error", "code", code_of(status), "message", msg);
}

/* The status of a failure of the read model or the database. */
static unsigned int fail(const struct sl_err *err, json_t **doc)
{
    unsigned int status =
        err->code == SL_ERR_INVALID                                                        ? 400
        : err->code == SL_ERR_NOT_FOUND                                                    ? 404
        : err->code == SL_ERR_UNAVAILABLE || err->code == SL_ERR_TIMEOUT || err->retriable ? 503
                                                                                           : 500;
    *doc = adm_api_error(status, "%s", err->msg);
    return status;
}

/* ---- request parsing ---- */

struct call {
    adm_api_t *api;
    const struct adm_request *req;
    const char *seg[SEGMENTS_MAX];
    size_t n;
    char buf[SEGMENTS_MAX * (SEGMENT_MAX + 1)];
    sl_pg_t *pg;
};

/* Splits the path after the prefix into segments; -1 when there are too many or too long. */
static int split(struct call *c)
{
    const char *p = c->req->path + strlen(ADM_API_PREFIX);
    char *o = c->buf;
    c->n = 0;
    while (*p) {
        size_t len = strcspn(p, "/");
        if (c->n == SEGMENTS_MAX || len == 0 || len > SEGMENT_MAX)
            return -1;
        memcpy(o, p, len);
        o[len] = '\0';
        c->seg[c->n++] = o;
        o += len + 1;
        p += len;
        if (*p == '/')
            p++;
    }
    return 0;
}

static bool seg_is(const struct call *c, size_t i, const char *s)
{
    return i < c->n && strcmp(c->seg[i], s) == 0;
}

static const char *arg(const struct call *c, const char *name)
{
    const char *v = c->req->arg(c->req->opaque, name);
    return v && *v ? v : NULL;
}

/* A time parameter (RFC 3339, or a duration back from now: 2h, 30m, 7d) as canonical RFC 3339
 * UTC into out; absent: *text = NULL. -1 for neither. */
static int time_arg(const struct call *c, const char *name, char *out, size_t size,
                    const char **text)
{
    const char *v = arg(c, name);
    *text = NULL;
    if (!v)
        return 0;
    long long ms;
    if (sl_conf_parse_duration_ms(v, &ms) == 0) {
        time_t t = time(NULL) - (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
        *text = out;
        return 0;
    }
    /* RFC 3339: date, 'T', time, zone; PostgreSQL parses it, this only keeps other forms out. */
    struct tm tm = {0};
    const char *end = strptime(v, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end || strlen(v) >= size)
        return -1;
    if (*end == '.')
        for (end++; *end >= '0' && *end <= '9'; end++)
            ;
    if (!(strcmp(end, "Z") == 0 || strcmp(end, "z") == 0 ||
          ((end[0] == '+' || end[0] == '-') && strlen(end) == 6 && end[3] == ':')))
        return -1;
    snprintf(out, size, "%s", v);
    *text = out;
    return 0;
}

static int limit_arg(const struct call *c, int *limit)
{
    const char *v = arg(c, "limit");
    *limit = OPS_LIMIT_DEFAULT;
    if (!v)
        return 0;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n < 1 || n > OPS_LIMIT_MAX)
        return -1;
    *limit = (int)n;
    return 0;
}

static unsigned int bad_param(json_t **doc, const char *name, const char *what)
{
    *doc = adm_api_error(400, "query parameter '%s': %s", name, what);
    return 400;
}

#define TIME_HELP "use an RFC 3339 time (2026-12-08T10:00:00Z) or a duration back (2h, 30m, 7d)"

static sl_pg_t *pg_of(struct call *c, struct sl_err *err)
{
    const struct sl_pg_opts opts = {.application_name = "sluice-admin"};
    if (!c->pg)
        c->pg = sl_pg_new(c->api->dsn, &opts, err);
    return c->pg;
}

/* ---- handlers ---- */

static unsigned int whoami(struct call *c, json_t **doc)
{
    *doc = json_pack("{s:s, s:s}", "name", c->req->who->name, "role",
                     adm_role_name(c->req->who->role));
    return 200;
}

/* One page of events; a bad state or cursor is the client's (the message names it). */
static unsigned int list_events(struct call *c, const struct ops_event_filter *f, json_t **doc)
{
    struct sl_err err;
    if (ops_event_filter_check(f, &err) != 0) {
        *doc = adm_api_error(400, "query parameter %s", err.msg);
        return 400;
    }
    if (!pg_of(c, &err) || ops_events_list(c->pg, f, doc, &err) != 0)
        return fail(&err, doc);
    return 200;
}

static unsigned int events_list(struct call *c, json_t **doc)
{
    char since[TIME_MAX], until[TIME_MAX];
    struct ops_event_filter f = {
        .source = arg(c, "source"),
        .type = arg(c, "type"),
        .destination = arg(c, "destination"),
        .state = arg(c, "state"),
        .q = arg(c, "q"),
        .cursor = arg(c, "cursor"),
    };
    if (time_arg(c, "since", since, sizeof(since), &f.since) != 0)
        return bad_param(doc, "since", TIME_HELP);
    if (time_arg(c, "until", until, sizeof(until), &f.until) != 0)
        return bad_param(doc, "until", TIME_HELP);
    if (limit_arg(c, &f.limit) != 0)
        return bad_param(doc, "limit", "use 1 to 500");
    return list_events(c, &f, doc);
}

static unsigned int event_show(struct call *c, json_t **doc)
{
    struct sl_err err;
    if (!pg_of(c, &err) || ops_event_story(c->pg, c->seg[1], doc, &err) != 0)
        return fail(&err, doc);
    return 200;
}

/* A positive decimal id; 0 when it is not one. */
static long long id_of(const char *text)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    return errno || end == text || *end || v < 1 ? 0 : v;
}

static unsigned int dead_letters_list(struct call *c, json_t **doc)
{
    struct sl_err err;
    char since[TIME_MAX], until[TIME_MAX];
    struct sl_pg_dlq_filter f = {
        .source = arg(c, "source"),
        .stage = arg(c, "stage"),
        .status = arg(c, "status"),
        .destination = arg(c, "destination"),
    };
    json_t *items = NULL;
    const char *cursor = arg(c, "cursor");
    if (f.status && strcmp(f.status, "new") != 0 && strcmp(f.status, "replayed") != 0 &&
        strcmp(f.status, "discarded") != 0)
        return bad_param(doc, "status", "use new, replayed or discarded");
    if (time_arg(c, "since", since, sizeof(since), &f.since) != 0)
        return bad_param(doc, "since", TIME_HELP);
    if (time_arg(c, "until", until, sizeof(until), &f.until) != 0)
        return bad_param(doc, "until", TIME_HELP);
    if (limit_arg(c, &f.limit) != 0)
        return bad_param(doc, "limit", "use 1 to 500");
    /* The cursor is the last id of the page: ids grow with the time a letter was stored. */
    if (cursor && !(f.before_id = id_of(cursor)))
        return bad_param(doc, "cursor", "not a cursor of this listing");
    int limit = f.limit;
    f.limit++;
    if (!pg_of(c, &err) || sl_pg_dead_letters(c->pg, &f, &items, &err) != 0)
        return fail(&err, doc);
    json_t *next = json_null();
    if (json_array_size(items) > (size_t)limit) {
        json_array_remove(items, (size_t)limit);
        char text[24];
        snprintf(text, sizeof(text), "%lld",
                 (long long)json_integer_value(
                     json_object_get(json_array_get(items, (size_t)limit - 1), "id")));
        next = json_string(text);
    }
    *doc = json_pack("{s:o, s:o}", "items", items, "next_cursor", next);
    return 200;
}

static unsigned int dead_letter_show(struct call *c, json_t **doc)
{
    struct sl_err err;
    long long id = id_of(c->seg[1]);
    if (!id) {
        *doc = adm_api_error(404, "dead letter '%s': ids are positive numbers", c->seg[1]);
        return 404;
    }
    if (!pg_of(c, &err) || ops_dlq_show(c->pg, id, doc, &err) != 0)
        return fail(&err, doc);
    return 200;
}

static unsigned int reconcile_hourly(struct call *c, json_t **doc)
{
    struct sl_err err;
    char since[TIME_MAX], until[TIME_MAX];
    const char *since_text, *until_text;
    json_t *items = NULL;
    if (time_arg(c, "since", since, sizeof(since), &since_text) != 0)
        return bad_param(doc, "since", TIME_HELP);
    if (time_arg(c, "until", until, sizeof(until), &until_text) != 0)
        return bad_param(doc, "until", TIME_HELP);
    if (!since_text) {
        time_t t = time(NULL) - 24 * 3600;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(since, sizeof(since), "%Y-%m-%dT%H:00:00Z", &tm);
        since_text = since;
    }
    if (!pg_of(c, &err) || sl_pg_reconcile_hourly(c->pg, since_text, until_text, arg(c, "source"),
                                                  arg(c, "destination"), &items, &err) != 0)
        return fail(&err, doc);
    *doc = json_pack("{s:o}", "items", items);
    return 200;
}

static unsigned int reconcile_stuck(struct call *c, json_t **doc)
{
    struct ops_event_filter f = {.state = "stuck", .cursor = arg(c, "cursor")};
    if (limit_arg(c, &f.limit) != 0)
        return bad_param(doc, "limit", "use 1 to 500");
    return list_events(c, &f, doc);
}

/* ---- routing ---- */

struct route {
    const char *method;
    const char *pattern[SEGMENTS_MAX + 1]; /* segments; "*" matches any; NULL ends */
    enum adm_role role;
    unsigned int (*fn)(struct call *c, json_t **doc);
};

static const struct route routes[] = {
    {"GET", {"whoami"}, ADM_ROLE_VIEWER, whoami},
    {"GET", {"events"}, ADM_ROLE_VIEWER, events_list},
    {"GET", {"events", "*"}, ADM_ROLE_VIEWER, event_show},
    {"GET", {"dead-letters"}, ADM_ROLE_VIEWER, dead_letters_list},
    {"GET", {"dead-letters", "*"}, ADM_ROLE_VIEWER, dead_letter_show},
    {"GET", {"reconcile", "hourly"}, ADM_ROLE_VIEWER, reconcile_hourly},
    {"GET", {"reconcile", "stuck"}, ADM_ROLE_VIEWER, reconcile_stuck},
};

static bool matches(const struct route *r, const struct call *c)
{
    size_t i = 0;
    for (; i < SEGMENTS_MAX && r->pattern[i]; i++)
        if (i >= c->n || (strcmp(r->pattern[i], "*") != 0 && !seg_is(c, i, r->pattern[i])))
            return false;
    return i == c->n;
}

unsigned int adm_api_handle(adm_api_t *api, const struct adm_request *req, json_t **doc)
{
    struct call c = {.api = api, .req = req};
    unsigned int status = 404;
    bool path_known = false;
    *doc = NULL;
    if (split(&c) == 0)
        for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
            const struct route *r = &routes[i];
            if (!matches(r, &c))
                continue;
            path_known = true;
            if (strcmp(r->method, req->method) != 0)
                continue;
            if (r->role == ADM_ROLE_OPERATOR && req->who->role != ADM_ROLE_OPERATOR) {
                *doc = adm_api_error(403, "%s %s needs the operator role (you are %s, a %s)",
                                     req->method, req->path, req->who->name,
                                     adm_role_name(req->who->role));
                return 403;
            }
            status = r->fn(&c, doc);
            goto out;
        }
    status = path_known ? 405 : 404;
    *doc = path_known ? adm_api_error(405, "%s is not allowed on %s", req->method, req->path)
                      : adm_api_error(404, "no API %s (see README, Admin API)", req->path);
out:
    sl_pg_destroy(c.pg);
    if (!*doc) {
        status = 500;
        *doc = adm_api_error(500, "out of memory");
    }
    return status;
}

adm_api_t *adm_api_new(const sl_conf_t *conf, struct sl_err *err)
{
    adm_api_t *api = calloc(1, sizeof(*api));
    if (!api) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (sl_pg_settings(conf, &api->dsn, err) != 0) {
        free(api);
        return NULL;
    }
    return api;
}

void adm_api_destroy(adm_api_t *api)
{
    free(api);
}
