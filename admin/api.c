#include "api.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actions.h"
#include "overview.h"
#include "ops_dlq.h"
#include "pause.h"
#include "sl_log.h"
#include "ops_events.h"
#include "sl_pg.h"
#include "sl_pg_query.h"
#include "sl_redis.h"

#define SEGMENTS_MAX 6   /* path segments after /api/v1/ */
#define SEGMENT_MAX  256 /* bytes of one */
#define TIME_MAX     40  /* bytes of an RFC 3339 time */

struct adm_api {
    const sl_conf_t *conf;
    const char *dsn;
    struct sl_kafka_settings kafka;
    const char *redis_url, *key_prefix;
    int redis_timeout_ms;
    adm_actions_t *actions;
    adm_overview_t *overview;
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

static unsigned int overview(struct call *c, json_t **doc)
{
    struct sl_err err;
    /* Each dependency that fails leaves its part null: the overview still answers. */
    sl_pg_t *pg = pg_of(c, &err);
    sl_redis_t *redis = sl_redis_new(c->api->redis_url, c->api->redis_timeout_ms, &err);
    int rc = adm_overview_build(c->api->overview, pg, redis, c->api->key_prefix, doc);
    sl_redis_destroy(redis);
    if (rc != 0) {
        *doc = adm_api_error(500, "out of memory");
        return 500;
    }
    return 200;
}

/* ---- actions ---- */

/* The request's body as a JSON object ({} when empty) whose members are all in `known`;
 * NULL with the 400 answer in *doc. */
static json_t *body_of(struct call *c, const char *const *known, json_t **doc)
{
    json_error_t jerr;
    const char *key;
    json_t *v;
    if (!*c->req->body)
        return json_object();
    json_t *body = json_loads(c->req->body, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(body)) {
        json_decref(body);
        *doc = adm_api_error(400, "the body must be a JSON object: %s",
                             jerr.text[0] ? jerr.text : "another JSON value");
        return NULL;
    }
    json_object_foreach(body, key, v)
    {
        bool ok = false;
        for (const char *const *k = known; *k && !ok; k++)
            ok = strcmp(*k, key) == 0;
        if (!ok) {
            *doc = adm_api_error(400, "body member '%s' is not known here", key);
            json_decref(body);
            return NULL;
        }
    }
    return body;
}

/* Member `key` of `body` as a string (absent: NULL) or a boolean (absent: false); -1 with the
 * 400 answer for another type. */
static int body_str(const json_t *body, const char *key, const char **out, json_t **doc)
{
    const json_t *v = json_object_get(body, key);
    *out = json_string_value(v);
    if (v && !json_is_null(v) && !json_is_string(v)) {
        *doc = adm_api_error(400, "body member '%s' must be a string", key);
        return -1;
    }
    return 0;
}

static int body_bool(const json_t *body, const char *key, bool *out, json_t **doc)
{
    const json_t *v = json_object_get(body, key);
    *out = json_is_true(v);
    if (v && !json_is_null(v) && !json_is_boolean(v)) {
        *doc = adm_api_error(400, "body member '%s' must be true or false", key);
        return -1;
    }
    return 0;
}

/* Records the action whatever its outcome. A failure to record is logged: the action itself
 * took place (or was refused) and its answer stands. */
static void record(struct call *c, const char *action, const char *target, const char *event_id,
                   const json_t *params, unsigned int status, const json_t *doc)
{
    struct sl_err err;
    const struct adm_action act = {
        .who = c->req->who,
        .action = action,
        .target = target,
        .event_id = event_id && *event_id && strcmp(event_id, "-") != 0 ? event_id : NULL,
        .parameters = params,
        .remote = c->req->remote,
        .status = status,
        .result = doc,
    };
    if (!pg_of(c, &err) || adm_actions_record(c->api->actions, c->pg, &act, &err) != 0)
        SL_ERROR("action %s on %s by %s not recorded: %s", action, target, c->req->who->name,
                 err.msg);
}

static unsigned int status_of(enum ops_dlq_outcome o)
{
    switch (o) {
    case OPS_DLQ_DONE:
        return 200;
    case OPS_DLQ_UNKNOWN:
        return 404;
    case OPS_DLQ_REFUSED:
    case OPS_DLQ_NO_TARGET:
        return 409;
    case OPS_DLQ_FAILED:
        return 503;
    default:
        return 500;
    }
}

static json_t *replay_doc(long long id, const struct ops_dlq_result *res, bool dry_run)
{
    json_t *doc = json_pack("{s:I, s:s, s:s, s:s, s:i, s:b}", "id", (json_int_t)id, "event_id",
                            res->event_id, "to_stage", res->to_stage, "topic", res->topic,
                            "attempt", res->attempt, "dry_run", dry_run);
    if (doc && !dry_run) {
        json_object_set_new(doc, "partition", json_integer(res->partition));
        json_object_set_new(doc, "offset", json_integer(res->offset));
    }
    return doc;
}

/* The options of a replay from `body`; -1 with the 400 answer. */
static int replay_opts(struct call *c, const json_t *body, struct ops_dlq_replay_opts *o,
                       json_t **doc)
{
    *o = (struct ops_dlq_replay_opts){.by = c->req->who->name};
    if (body_str(body, "to_stage", &o->to_stage, doc) != 0 ||
        body_bool(body, "dry_run", &o->dry_run, doc) != 0 ||
        body_bool(body, "force", &o->force, doc) != 0)
        return -1;
    if (o->to_stage && !ops_dlq_replayable_stage(o->to_stage)) {
        *doc = adm_api_error(400, "body member 'to_stage': use validate, transform, route or "
                                  "deliver");
        return -1;
    }
    return 0;
}

static unsigned int dead_letter_replay(struct call *c, json_t **doc)
{
    static const char *const known[] = {"to_stage", "dry_run", "force", NULL};
    struct sl_err err;
    struct ops_dlq_replay_opts o;
    struct ops_dlq_result res;
    long long id = id_of(c->seg[1]);
    json_t *body = NULL;
    ops_dlq_t *d = NULL;
    unsigned int status = 400;
    if (!id) {
        *doc = adm_api_error(404, "dead letter '%s': ids are positive numbers", c->seg[1]);
        return 404;
    }
    if (!(body = body_of(c, known, doc)) || replay_opts(c, body, &o, doc) != 0)
        goto out;
    if (!pg_of(c, &err)) {
        status = fail(&err, doc);
        goto out;
    }
    if (!(d = ops_dlq_new(c->pg, &c->api->kafka))) {
        status = 500;
        *doc = adm_api_error(500, "out of memory");
        goto out;
    }
    ops_dlq_replay(d, id, &o, &res);
    status = status_of(res.outcome);
    *doc = status == 200 ? replay_doc(id, &res, o.dry_run) : adm_api_error(status, "%s", res.msg);
    record(c, "replay", c->seg[1], res.event_id, body, status, *doc);
out:
    ops_dlq_destroy(d);
    json_decref(body);
    return status;
}

static unsigned int dead_letter_discard(struct call *c, json_t **doc)
{
    static const char *const known[] = {NULL};
    struct sl_err err;
    struct ops_dlq_result res;
    long long id = id_of(c->seg[1]);
    json_t *body = NULL;
    unsigned int status = 400;
    if (!id) {
        *doc = adm_api_error(404, "dead letter '%s': ids are positive numbers", c->seg[1]);
        return 404;
    }
    if (!(body = body_of(c, known, doc)))
        goto out;
    if (!pg_of(c, &err)) {
        status = fail(&err, doc);
        goto out;
    }
    ops_dlq_discard(c->pg, id, c->req->who->name, &res);
    status = status_of(res.outcome);
    *doc = status == 200 ? json_pack("{s:I, s:s, s:s}", "id", (json_int_t)id, "status", "discarded",
                                     "event_id", res.event_id)
                         : adm_api_error(status, "%s", res.msg);
    record(c, "discard", c->seg[1], res.event_id, body, status, *doc);
out:
    json_decref(body);
    return status;
}

/* Bulk replay by filter: the letters ops_dlq_select picks; with dry_run only their count and
 * ids, for the console's confirmation. */
static unsigned int dead_letters_replay(struct call *c, json_t **doc)
{
    static const char *const known[] = {"source",   "stage", "since",   "limit",
                                        "to_stage", "force", "dry_run", NULL};
    struct sl_err err;
    struct ops_dlq_replay_opts o;
    const char *source, *stage, *since;
    long long *ids = NULL;
    size_t n = 0;
    json_t *body = NULL, *failed = NULL, *matched = NULL;
    ops_dlq_t *d = NULL;
    unsigned int status = 400;
    if (!(body = body_of(c, known, doc)) || replay_opts(c, body, &o, doc) != 0 ||
        body_str(body, "source", &source, doc) != 0 || body_str(body, "stage", &stage, doc) != 0 ||
        body_str(body, "since", &since, doc) != 0)
        goto out;
    const json_t *lim = json_object_get(body, "limit");
    json_int_t limit = lim ? json_integer_value(lim) : 100;
    if ((lim && !json_is_integer(lim)) || limit < 1 || limit > OPS_LIMIT_MAX) {
        *doc = adm_api_error(400, "body member 'limit': use 1 to %d", OPS_LIMIT_MAX);
        goto out;
    }
    if (since) {
        struct tm tm = {0};
        const char *end = strptime(since, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!end) {
            *doc = adm_api_error(400, "body member 'since': use an RFC 3339 time");
            goto out;
        }
    }
    if (!pg_of(c, &err) ||
        ops_dlq_select(c->pg, source, stage, since, o.force, (int)limit, &ids, &n, &err) != 0) {
        status = fail(&err, doc);
        goto out;
    }
    if (!(failed = json_array()) || !(matched = json_array()) ||
        !(d = ops_dlq_new(c->pg, &c->api->kafka))) {
        status = 500;
        *doc = adm_api_error(500, "out of memory");
        goto out;
    }
    size_t replayed = 0;
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(matched, json_integer(ids[i]));
        if (o.dry_run)
            continue;
        struct ops_dlq_result res;
        if (ops_dlq_replay(d, ids[i], &o, &res) == 0)
            replayed++;
        else
            json_array_append_new(
                failed, json_pack("{s:I, s:s}", "id", (json_int_t)ids[i], "error", res.msg));
    }
    status = 200;
    *doc = json_pack("{s:I, s:O, s:I, s:O, s:b}", "matched", (json_int_t)n, "ids", matched,
                     "replayed", (json_int_t)replayed, "failed", failed, "dry_run", o.dry_run);
    record(c, "bulk_replay", "filter", NULL, body, status, *doc);
out:
    ops_dlq_destroy(d);
    json_decref(failed);
    json_decref(matched);
    json_decref(body);
    free(ids);
    return status;
}

/* Pause and resume of a destination of the pipeline file (pause.h, honoured by every
 * sluice-deliver). */
static unsigned int destination_pause(struct call *c, json_t **doc, bool pause)
{
    static const char *const pause_known[] = {"reason", NULL}, *const resume_known[] = {NULL};
    struct sl_err err;
    const char *name = c->seg[1], *reason = NULL;
    char key[512];
    json_t *body = NULL, *paused = NULL;
    sl_redis_t *redis = NULL;
    unsigned int status = 400;
    if (!sl_conf_get(sl_conf_get(sl_conf_root(c->api->conf), "destinations"), name)) {
        *doc = adm_api_error(404, "no destination '%s' in the pipeline file", name);
        return 404;
    }
    if (!(body = body_of(c, pause ? pause_known : resume_known, doc)) ||
        body_str(body, "reason", &reason, doc) != 0)
        goto out;
    if (reason && strlen(reason) > DLV_PAUSE_REASON_MAX) {
        *doc = adm_api_error(400, "body member 'reason': at most %d bytes", DLV_PAUSE_REASON_MAX);
        goto out;
    }
    if (dlv_pause_key(c->api->key_prefix, name, key, sizeof(key)) != 0) {
        status = 500;
        *doc = adm_api_error(500, "the Redis key of '%s' is too long", name);
        goto out;
    }
    if (!(redis = sl_redis_new(c->api->redis_url, c->api->redis_timeout_ms, &err)) ||
        (pause ? dlv_pause_set(redis, key, c->req->who->name, reason, &paused, &err)
               : dlv_pause_clear(redis, key, &err)) != 0) {
        status = fail(&err, doc);
    } else {
        status = 200;
        *doc = json_pack("{s:s, s:o}", "destination", name, "paused",
                         paused ? json_incref(paused) : json_null());
    }
    record(c, pause ? "pause" : "resume", name, NULL, body, status, *doc);
out:
    json_decref(paused);
    sl_redis_destroy(redis);
    json_decref(body);
    return status;
}

static unsigned int destination_pause_on(struct call *c, json_t **doc)
{
    return destination_pause(c, doc, true);
}

static unsigned int destination_resume(struct call *c, json_t **doc)
{
    return destination_pause(c, doc, false);
}

static unsigned int actions_list(struct call *c, json_t **doc)
{
    struct sl_err err;
    int limit;
    long long cursor = 0;
    const char *text = arg(c, "cursor");
    if (limit_arg(c, &limit) != 0)
        return bad_param(doc, "limit", "use 1 to 500");
    if (text && !(cursor = id_of(text)))
        return bad_param(doc, "cursor", "not a cursor of this listing");
    if (!pg_of(c, &err) || adm_actions_list(c->pg, cursor, limit, doc, &err) != 0)
        return fail(&err, doc);
    return 200;
}

/* ---- routing ---- */

struct route {
    const char *method;
    const char *pattern[SEGMENTS_MAX + 1]; /* segments; "*" matches any; NULL ends */
    enum adm_role role;
    unsigned int (*fn)(struct call *c, json_t **doc);
    const char *params; /* the query parameters it takes, each followed by a space */
};

#define LIST_PARAMS "limit cursor "
#define TIME_PARAMS "since until "

static const struct route routes[] = {
    {"GET", {"whoami"}, ADM_ROLE_VIEWER, whoami, ""},
    {"GET",
     {"events"},
     ADM_ROLE_VIEWER,
     events_list,
     "source type state destination q " TIME_PARAMS LIST_PARAMS},
    {"GET", {"events", "*"}, ADM_ROLE_VIEWER, event_show, ""},
    {"GET",
     {"dead-letters"},
     ADM_ROLE_VIEWER,
     dead_letters_list,
     "source stage status destination " TIME_PARAMS LIST_PARAMS},
    {"GET", {"dead-letters", "*"}, ADM_ROLE_VIEWER, dead_letter_show, ""},
    {"GET",
     {"reconcile", "hourly"},
     ADM_ROLE_VIEWER,
     reconcile_hourly,
     "source destination " TIME_PARAMS},
    {"GET", {"reconcile", "stuck"}, ADM_ROLE_VIEWER, reconcile_stuck, LIST_PARAMS},
    {"GET", {"actions"}, ADM_ROLE_VIEWER, actions_list, LIST_PARAMS},
    {"GET", {"overview"}, ADM_ROLE_VIEWER, overview, ""},
    {"POST", {"dead-letters", "replay"}, ADM_ROLE_OPERATOR, dead_letters_replay, ""},
    {"POST", {"dead-letters", "*", "replay"}, ADM_ROLE_OPERATOR, dead_letter_replay, ""},
    {"POST", {"dead-letters", "*", "discard"}, ADM_ROLE_OPERATOR, dead_letter_discard, ""},
    {"POST", {"destinations", "*", "pause"}, ADM_ROLE_OPERATOR, destination_pause_on, ""},
    {"POST", {"destinations", "*", "resume"}, ADM_ROLE_OPERATOR, destination_resume, ""},
};

/* The first query parameter that `params` does not list, kept in `unknown`. */
struct param_check {
    const char *params;
    char unknown[SEGMENT_MAX + 1];
};

static bool known_param(void *ctx, const char *name)
{
    struct param_check *pc = ctx;
    size_t n = strlen(name);
    for (const char *p = pc->params; *p; p += strcspn(p, " ") + 1)
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return true;
    snprintf(pc->unknown, sizeof(pc->unknown), "%s", name);
    return false;
}

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
            struct param_check pc = {.params = r->params};
            req->each_arg(req->opaque, known_param, &pc);
            if (pc.unknown[0]) {
                status = bad_param(doc, pc.unknown, "not a parameter of this call");
                goto out;
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

bool adm_api_ready(void *opaque, char *why, size_t why_size)
{
    adm_api_t *api = opaque;
    struct sl_err err;
    const struct sl_pg_opts opts = {.application_name = "sluice-admin", .connect_timeout_s = 2};
    sl_pg_t *pg = sl_pg_new(api->dsn, &opts, &err);
    bool ok = pg && sl_pg_connect(pg, &err) == 0;
    if (!ok)
        snprintf(why, why_size, "%s", err.msg);
    sl_pg_destroy(pg);
    return ok;
}

adm_api_t *adm_api_new(const sl_conf_t *conf, struct sl_err *err)
{
    adm_api_t *api = calloc(1, sizeof(*api));
    if (!api) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    api->conf = conf;
    if (sl_pg_settings(conf, &api->dsn, err) != 0 ||
        sl_kafka_settings_load(conf, &api->kafka, err) != 0 ||
        sl_redis_settings(conf, &api->redis_url, &api->redis_timeout_ms, err) != 0 ||
        sl_redis_key_prefix(conf, api->kafka.topic_prefix, &api->key_prefix, err) != 0)
        goto fail;
    if (!(api->overview = adm_overview_new(conf, err)))
        goto fail;
    if (!(api->actions = adm_actions_new(&api->kafka))) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    return api;
fail:
    adm_api_destroy(api);
    return NULL;
}

void adm_api_destroy(adm_api_t *api)
{
    if (!api)
        return;
    adm_actions_destroy(api->actions);
    adm_overview_destroy(api->overview);
    free(api);
}
