#include "deliver.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "circuit.h"
#include "consumer.h"
#include "dest.h"
#include "http.h"
#include "keyq.h"
#include "pause.h"
#include "retry.h"
#include "signer.h"
#include "template.h"
#include "sl_cloudevent.h"
#include "sl_crashguard.h"
#include "sl_expr.h"
#include "sl_log.h"
#include "sl_record.h"
#include "sl_redis.h"
#include "sl_signal.h"
#include "timers.h"

#define STAGE            "deliver"
#define LOOP_WAIT_MAX_MS 200 /* longest sleep: how soon SIGTERM is noticed */
#define METRICS_EVERY_MS 500
#define DRAIN_SLACK_MS   2000
#define REASON_MAX       1024
#define WHAT_MAX         400 /* the account of one attempt, inside a reason */
#define HEADER_LINE_MAX  (SL_CE_MAX_VALUE + 64)
#define PRODUCE_WAIT_MS  100 /* producer queue full: how long to serve reports before trying */

#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

/* ---- intrusive lists (circular, with a sentinel) ---- */

struct link {
    struct link *prev, *next;
};

static void list_init(struct link *l)
{
    l->prev = l->next = l;
}

static bool list_empty(const struct link *l)
{
    return l->next == l;
}

static bool linked(const struct link *n)
{
    return n->next != NULL;
}

static void list_add_tail(struct link *l, struct link *n)
{
    n->prev = l->prev;
    n->next = l;
    l->prev->next = n;
    l->prev = n;
}

static void list_add_head(struct link *l, struct link *n)
{
    n->next = l->next;
    n->prev = l;
    l->next->prev = n;
    l->next = n;
}

static void list_del(struct link *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = NULL;
}

/* ---- events and destinations ---- */

enum ev_state {
    EV_LEDGER,    /* waiting for the ledger check (engine.ledger) */
    EV_WAITING,   /* behind an earlier event of its key */
    EV_READY,     /* in its destination's ready queue */
    EV_FLIGHT,    /* an HTTP request runs */
    EV_BACKOFF,   /* a retry timer runs */
    EV_MARKING,   /* delivered: the ledger mark is pending (engine.marking) */
    EV_RECORDING, /* final: its records wait for Kafka's acknowledgement */
};

struct dest;

/* The longest Redis key base of a destination: the key prefix, "deliver." and its name. */
#define DEST_KEY_MAX (SL_REDIS_KEY_PREFIX_MAX + SL_TOPIC_NAME_MAX)

struct event {
    struct link all; /* dest.events, in intake order */
    struct link q;   /* engine.ledger, dest.ready or engine.marking */
    struct dlv_keyq_node kq;
    struct dlv_timer timer;
    struct dest *d;
    dlv_part_t *part; /* NULL once dropped */
    int64_t offset;
    struct sl_ce ce;
    bool ce_ok;
    char *idem_key;   /* "<scoped id>:<destination>" (sl_ce_scoped_id of the event id) */
    char *ledger_key; /* "<key base>:ledger:<scoped id>": checked and marked */
    char *ledger_old; /* "<deliver topic>:ledger:<event id>": checked only (deliver.h, Upgrade) */
    void *payload;
    size_t len;
    char *url;  /* rendered from the URL template; NULL: the configured URL */
    char *body; /* rendered by the body mapping; NULL: the payload */
    size_t body_len;
    size_t bytes; /* payload, key, URL and body held: counted in engine.bytes */
    void *key;
    size_t key_len;
    rd_kafka_headers_t *hdrs; /* the record's, for a dead letter */
    long long ts_ms;          /* the record's timestamp (wall clock) */
    enum ev_state state;
    int attempts;
    bool ledger_ok, auth_retried, final, dropped, lost_record;
    int acks; /* records produced, not yet acknowledged */
    dlv_http_req_t *req;
    enum dlv_circuit_ticket ticket;
    unsigned auth_gen;
    long last_status;
    char *last_body; /* at most DLV_BODY_KEPT bytes */
    size_t last_body_len;
};

struct dest {
    dlv_engine_t *e;
    struct dlv_dest_conf conf;
    dlv_consumer_t *consumer;
    sl_crashguard_topic_t *guarded;
    dlv_auth_t *auth;
    dlv_signer_t *signer; /* NULL without `sign` */
    struct dlv_circuit circuit;
    enum dlv_circuit_state shown;
    dlv_keyq_t *keys; /* NULL with ordering: none */
    struct link events, ready;
    size_t held, n_ready, in_flight, retrying;
    long long token_wait_until, hold_until, hold_checked;
    long long wake_ms; /* when dispatch can move again after a time-based block */
    /* "<key prefix>deliver.<name>", then ":bucket", ":hold", ":ledger:<scoped id>" */
    char key_base[DEST_KEY_MAX], bucket_key[DEST_KEY_MAX + 16], hold_key[DEST_KEY_MAX + 16],
        paused_key[DEST_KEY_MAX + 16];
    bool paused;  /* an operator's pause (pause.h), as last read */
    char auth_ok; /* the last token fetch worked (readiness) */
    dlv_http_req_t *token_req;
    struct dlv_auth_fetch fetch; /* the running token request's parts */
    sl_series_t *m_attempts[8], *m_latency, *m_delivered, *m_dead, *m_already, *m_retrying,
        *m_in_flight, *m_held, *m_oldest, *m_circuit, *m_opened, *m_half_open, *m_closed,
        *m_token_waits, *m_token_wait_s, *m_holds, *m_tokens_ok, *m_tokens_failed, *m_assigned,
        *m_paused;
};

enum attempt_class { AC_2XX, AC_3XX, AC_4XX, AC_429, AC_5XX, AC_TIMEOUT, AC_CONNECT, AC_ERROR };
static const char *const attempt_class_names[] = {"2xx", "3xx",     "4xx",     "429",
                                                  "5xx", "timeout", "connect", "error"};

struct dlv_engine {
    struct dlv_engine_opts o;
    struct dlv_settings settings;
    struct dest *dests;
    size_t n_dests;
    sl_producer_t *producer;
    sl_redis_t *redis;
    sl_crashguard_t *guard;
    const char *key_prefix; /* sl_redis_key_prefix, borrowed */
    dlv_http_t *http;
    dlv_timers_t *timers;
    int wake[2];
    struct link ledger, marking;
    size_t events;
    long long bytes;
    bool full;
    long long redis_retry_at, redis_backoff;
    bool draining;
    long long drain_deadline;
    bool fatal;
    struct sl_err fatal_err;
    uint64_t rng;
    long long next_commit, next_metrics;
    char t_outcomes[SL_TOPIC_NAME_MAX], t_dlq[SL_TOPIC_NAME_MAX], t_audit[SL_TOPIC_NAME_MAX];
    pthread_mutex_t lock; /* guards not_ready (read by the admin thread) */
    char not_ready[256];
    sl_metric_t *m_lag;
    sl_series_t *m_redis_errors;
};

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* xorshift64*: the jitter only has to be spread, not secret. */
static uint64_t rnd(dlv_engine_t *e)
{
    e->rng ^= e->rng >> 12;
    e->rng ^= e->rng << 25;
    e->rng ^= e->rng >> 27;
    return e->rng * 2685821657736338717ULL;
}

static void set_not_ready(dlv_engine_t *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_not_ready(dlv_engine_t *e, const char *fmt, ...)
{
    pthread_mutex_lock(&e->lock);
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->not_ready, sizeof(e->not_ready), fmt, ap);
        va_end(ap);
    } else {
        e->not_ready[0] = '\0';
    }
    pthread_mutex_unlock(&e->lock);
}

bool dlv_engine_ready(void *opaque, char *why, size_t why_size)
{
    dlv_engine_t *e = opaque;
    pthread_mutex_lock(&e->lock);
    bool ready = !e->not_ready[0];
    if (!ready)
        snprintf(why, why_size, "%s", e->not_ready);
    pthread_mutex_unlock(&e->lock);
    return ready;
}

static void fail(dlv_engine_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A fatal error: the loop drains what it can and the process exits non-zero, for the
 * supervisor to restart it; what is not committed is read again then. */
static void fail(dlv_engine_t *e, const char *fmt, ...)
{
    if (e->fatal)
        return;
    va_list ap;
    va_start(ap, fmt);
    char msg[SL_ERR_MSG_MAX];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    e->fatal = true;
    sl_err_set(&e->fatal_err, SL_ERR_INTERNAL, "%s", msg);
    e->fatal_err.fatal = true;
    SL_ERROR("%s", msg);
}

static void wake_at(struct dest *d, long long at)
{
    if (at < d->wake_ms)
        d->wake_ms = at;
}

/* ---- Redis: fail closed, with a backoff ---- */

static bool redis_ok(dlv_engine_t *e, long long now)
{
    return now >= e->redis_retry_at;
}

static void redis_failed(dlv_engine_t *e, const struct sl_err *err)
{
    e->redis_backoff = e->redis_backoff ? e->redis_backoff * 2 : DLV_REDIS_BACKOFF_MIN_MS;
    if (e->redis_backoff > DLV_REDIS_BACKOFF_MAX_MS)
        e->redis_backoff = DLV_REDIS_BACKOFF_MAX_MS;
    e->redis_retry_at = mono_ms() + e->redis_backoff;
    sl_series_add(e->m_redis_errors, 1);
    sl_log(e->redis_backoff == DLV_REDIS_BACKOFF_MIN_MS ? SL_LOG_WARN : SL_LOG_DEBUG, NULL,
           "redis: %s; nothing is sent until it answers (retry in %lld ms)", err->msg,
           e->redis_backoff);
    set_not_ready(e, "redis: %s", err->msg);
}

static void redis_worked(dlv_engine_t *e)
{
    sl_redis_persistence_check(e->redis); /* once: when Redis was down at start-up */
    if (!e->redis_backoff)
        return;
    SL_INFO("redis answers again");
    e->redis_backoff = 0;
    e->redis_retry_at = 0;
    set_not_ready(e, NULL);
}

/* ---- producing ---- */

static void on_report(void *opaque, int32_t partition, int64_t offset, const struct sl_err *err);
static void maybe_finish(struct event *ev);
static void drop_event(struct event *ev);

/* Queues one record about `ev` (ev may be NULL for none); `hdrs` is taken. The event cannot
 * finish before the record is acknowledged. A full queue is waited out (its reports are
 * served meanwhile); any other failure is fatal. */
static int produce(dlv_engine_t *e, struct event *ev, const char *topic, const void *key,
                   size_t key_len, const void *value, size_t len, rd_kafka_headers_t *hdrs)
{
    struct sl_err err;
    if (ev)
        ev->acks++; /* held while the queue is served below, so ev cannot finish meanwhile */
    for (;;) {
        if (sl_producer_send(e->producer, topic, key, key_len, value, len, hdrs, ev, &err) == 0)
            return 0;
        if (!err.retriable || e->fatal || sl_signal_stopping())
            break;
        sl_producer_poll(e->producer, PRODUCE_WAIT_MS);
    }
    rd_kafka_headers_destroy(hdrs);
    fail(e, "cannot produce to %s: %s", topic, err.msg);
    if (ev) {
        ev->acks--;
        ev->lost_record = true;
    }
    return -1;
}

static void on_report(void *opaque, int32_t partition, int64_t offset, const struct sl_err *err)
{
    struct event *ev = opaque;
    if (!ev)
        return;
    if (err) {
        ev->lost_record = true;
        fail(ev->d->e, "Kafka did not take a record of event %s: %s",
             ev->ce_ok ? sl_ce_get(&ev->ce, "id") : "?", err->msg);
    }
    ev->acks--;
    maybe_finish(ev);
}

static const char *event_id(const struct event *ev)
{
    return ev->ce_ok ? sl_ce_get(&ev->ce, "id") : NULL;
}

/* The audit record of one attempt (or of an event that needs none). */
static void audit(struct event *ev, const char *outcome, const char *reason, double seconds,
                  const char *error)
{
    dlv_engine_t *e = ev->d->e;
    json_t *detail =
        json_pack("{s:s, s:i}", "destination", ev->d->conf.name, "attempt", ev->attempts);
    if (ev->attempts > 0) {
        json_object_set_new(detail, "status", json_integer(ev->last_status));
        if (error && *error)
            json_object_set_new(detail, "error", json_string(error));
    }
    const struct sl_audit a = {
        .stage = STAGE,
        .ce = ev->ce_ok ? &ev->ce : NULL,
        .topic = dlv_consumer_topic(ev->d->consumer),
        .partition = ev->part ? dlv_part_id(ev->part) : -1,
        .offset = ev->offset,
        .outcome = outcome,
        .seconds = seconds,
        .reason = reason,
        .outputs = -1,
        .detail = detail,
    };
    char *value = NULL;
    size_t len = 0;
    rd_kafka_headers_t *hdrs = NULL;
    struct sl_err err;
    const char *id = event_id(ev);
    if (sl_audit_build(&a, &value, &len, &hdrs, &err) != 0)
        fail(e, "audit record: %s", err.msg);
    else
        produce(e, ev, e->t_audit, id, id ? strlen(id) : 0, value, len, hdrs);
    free(value);
    json_decref(detail);
}

/* The final outcome, to <prefix>outcomes. */
static void outcome(struct event *ev, const char *what, const char *reason, bool from_ledger)
{
    dlv_engine_t *e = ev->d->e;
    char at[SL_RECORD_TIME_MAX];
    rd_kafka_headers_t *hdrs = NULL;
    struct sl_err err;
    sl_record_time(at, sizeof(at));
    const char *id = event_id(ev);
    json_t *rec = json_pack("{s:s?, s:s, s:s, s:i, s:i, s:s}", "event_id", id, "destination",
                            ev->d->conf.name, "outcome", what, "attempts", ev->attempts,
                            "last_status", (int)ev->last_status, "at", at);
    if (rec && reason && *reason)
        json_object_set_new(rec, "reason", json_string(reason));
    if (rec && from_ledger)
        json_object_set_new(rec, "ledger", json_true());
    char *value = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    if (!value)
        fail(e, "outcome record: out of memory");
    else if (sl_record_headers(STAGE, "sluice.outcome", at, &hdrs, &err) != 0)
        fail(e, "outcome record: %s", err.msg);
    else
        produce(e, ev, e->t_outcomes, id, id ? strlen(id) : 0, value, strlen(value), hdrs);
    free(value);
}

/* ---- event life ---- */

static void free_event(struct event *ev)
{
    struct dest *d = ev->d;
    dlv_engine_t *e = d->e;
    list_del(&ev->all);
    if (linked(&ev->q))
        list_del(&ev->q);
    if (d->keys)
        dlv_keyq_remove(d->keys, &ev->kq);
    dlv_timers_disarm(e->timers, &ev->timer);
    d->held--;
    e->events--;
    e->bytes -= (long long)ev->bytes;
    sl_ce_free(&ev->ce);
    if (ev->hdrs)
        rd_kafka_headers_destroy(ev->hdrs);
    free(ev->idem_key);
    free(ev->ledger_key);
    free(ev->ledger_old);
    free(ev->payload);
    free(ev->url);
    free(ev->body);
    free(ev->key);
    free(ev->last_body);
    free(ev);
}

/* Frees the event once nothing refers to it any more; a final one also finishes its offset. */
static void maybe_finish(struct event *ev)
{
    /* Events in a batch being worked on (ledger, marking) or in flight are never freed under
     * the code that holds them; they come back here when that is done. */
    if (ev->acks > 0 || ev->state == EV_FLIGHT || ev->state == EV_LEDGER || ev->state == EV_MARKING)
        return;
    if (ev->dropped) {
        free_event(ev);
        return;
    }
    if (ev->lost_record) {
        drop_event(ev); /* never finished: read again after the restart the failure causes */
        return;
    }
    if (!ev->final || ev->state != EV_RECORDING)
        return;
    dlv_part_finish(ev->part, ev->offset);
    free_event(ev);
}

static void ready_push(struct event *ev, bool front)
{
    struct dest *d = ev->d;
    ev->state = EV_READY;
    if (front)
        list_add_head(&d->ready, &ev->q);
    else
        list_add_tail(&d->ready, &ev->q);
    d->n_ready++;
    d->wake_ms = 0; /* try now */
}

/* The head of a key reached its final outcome: the next event of the key may go. */
static void release_key(struct event *ev)
{
    struct dest *d = ev->d;
    if (!d->keys)
        return;
    struct dlv_keyq_node *next = dlv_keyq_remove(d->keys, &ev->kq);
    if (!next)
        return;
    struct event *n = container_of(next, struct event, kq);
    if (!n->dropped && n->ledger_ok && n->state == EV_WAITING)
        ready_push(n, false);
}

/* Takes an event out of memory without an outcome (revocation, shutdown): its offset stays
 * unfinished, so it is never committed past and the next owner reads it again. */
static void drop_event(struct event *ev)
{
    struct dest *d = ev->d;
    dlv_engine_t *e = d->e;
    if (ev->dropped)
        return;
    ev->dropped = true;
    switch (ev->state) {
    case EV_FLIGHT:
        dlv_http_cancel(e->http, ev->req);
        ev->req = NULL;
        d->in_flight--;
        dlv_circuit_abandon(&d->circuit, ev->ticket);
        break;
    case EV_BACKOFF:
        dlv_timers_disarm(e->timers, &ev->timer);
        d->retrying--;
        break;
    case EV_READY:
        d->n_ready--;
        break;
    case EV_LEDGER:
    case EV_WAITING:
    case EV_MARKING:
    case EV_RECORDING:
        break;
    }
    if (linked(&ev->q))
        list_del(&ev->q);
    ev->state = EV_RECORDING; /* nothing more happens to it but its acknowledgements */
    release_key(ev);
    ev->part = NULL;
    maybe_finish(ev);
}

/* A response body as printable text for a dead letter: valid UTF-8 is kept, anything else
 * becomes '?'. */
static json_t *body_text(const char *body, size_t len)
{
    json_t *s = json_stringn(body, len);
    if (s)
        return s;
    char clean[DLV_BODY_KEPT];
    size_t n = len < sizeof(clean) ? len : sizeof(clean);
    for (size_t i = 0; i < n; i++)
        clean[i] = body[i] >= 0x20 && body[i] < 0x7f ? body[i] : '?';
    return json_stringn(clean, n);
}

/* Final failure: the dead letter (the original record, with why) and the outcome. */
static void dead_letter(struct event *ev, const char *reason)
{
    struct dest *d = ev->d;
    dlv_engine_t *e = d->e;
    char attempt[16];
    ev->final = true;
    release_key(ev);
    /* One error: the last attempt, with the destination's answer (capped). */
    json_t *errors = json_array();
    if (ev->attempts > 0) {
        json_t *body = body_text(ev->last_body ? ev->last_body : "", ev->last_body_len);
        char *text = NULL;
        int n = ev->last_status
                    ? asprintf(&text, "attempt %d: HTTP %ld%s%s", ev->attempts, ev->last_status,
                               ev->last_body_len ? ": " : "", body ? json_string_value(body) : "")
                    : asprintf(&text, "attempt %d: %s", ev->attempts, reason);
        if (n > 0)
            json_array_append_new(errors, json_string(text));
        if (n > 0)
            free(text);
        json_decref(body);
    }
    rd_kafka_headers_t *hdrs = sl_dead_letter_headers(ev->hdrs, STAGE, reason, errors, 0);
    json_decref(errors);
    snprintf(attempt, sizeof(attempt), "%d", ev->attempts);
    rd_kafka_header_remove(hdrs, "ce_" SL_CE_ATTEMPT);
    rd_kafka_header_remove(hdrs, "ce_" SL_CE_DESTINATION);
    rd_kafka_header_add(hdrs, "ce_" SL_CE_ATTEMPT, -1, attempt, -1);
    rd_kafka_header_add(hdrs, "ce_" SL_CE_DESTINATION, -1, d->conf.name, -1);
    produce(e, ev, e->t_dlq, ev->key, ev->key_len, ev->payload, ev->len, hdrs);
    outcome(ev, "dead_lettered", reason, false);
    sl_series_add(d->m_dead, 1);
    sl_log(SL_LOG_INFO, event_id(ev), "%s: dead-lettered after %d attempt(s): %s", d->conf.name,
           ev->attempts, reason);
    ev->state = EV_RECORDING;
    maybe_finish(ev);
}

/* ---- intake ---- */

/* asprintf() into *out (NULL before), leaving it NULL on failure, where asprintf() leaves it
 * undefined: the event's destructor frees whatever was made. */
static bool format_key(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool format_key(char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(out, fmt, ap);
    va_end(ap);
    if (n < 0)
        *out = NULL;
    return n >= 0;
}

static void on_record(void *opaque, dlv_part_t *part, const rd_kafka_message_t *msg)
{
    struct dest *d = opaque;
    dlv_engine_t *e = d->e;
    struct event *ev = calloc(1, sizeof(*ev));
    rd_kafka_headers_t *hdrs = NULL;
    struct sl_err err;
    if (!ev) {
        fail(e, "out of memory taking a record");
        return;
    }
    ev->d = d;
    ev->part = part;
    ev->offset = msg->offset;
    sl_ce_init(&ev->ce);
    list_add_tail(&d->events, &ev->all);
    d->held++;
    e->events++;
    ev->state = EV_RECORDING;
    if ((msg->len && !(ev->payload = malloc(msg->len))) ||
        (msg->key_len && !(ev->key = malloc(msg->key_len)))) {
        fail(e, "out of memory taking a record");
        ev->dropped = true;
        maybe_finish(ev);
        return;
    }
    if (msg->len)
        memcpy(ev->payload, msg->payload, msg->len);
    if (msg->key_len)
        memcpy(ev->key, msg->key, msg->key_len);
    ev->len = msg->len;
    ev->key_len = msg->key_len;
    ev->bytes = ev->len + ev->key_len;
    e->bytes += (long long)ev->bytes;
    if (rd_kafka_message_headers(msg, &hdrs) == 0)
        ev->hdrs = rd_kafka_headers_copy(hdrs);
    rd_kafka_timestamp_type_t tstype;
    ev->ts_ms = rd_kafka_message_timestamp(msg, &tstype);
    if (ev->ts_ms < 0)
        ev->ts_ms = wall_ms();

    ev->ce_ok = hdrs && sl_ce_from_headers(hdrs, &ev->ce, &err) == 0;
    if (!ev->ce_ok) {
        char reason[REASON_MAX];
        snprintf(reason, sizeof(reason), "not a CloudEvent: %.900s",
                 hdrs ? err.msg : "the record has no headers");
        audit(ev, "dead_lettered", reason, 0, NULL);
        dead_letter(ev, reason);
        return;
    }
    const char *id = sl_ce_get(&ev->ce, "id");
    const char *topic = dlv_consumer_topic(d->consumer);
    char scoped[SL_CE_SCOPED_ID_LEN + 1];
    if (sl_ce_scoped_id(&ev->ce, id, scoped) != 0 ||
        !format_key(&ev->idem_key, "%s:%s", scoped, d->conf.name) ||
        !format_key(&ev->ledger_key, "%s:ledger:%s", d->key_base, scoped) ||
        !format_key(&ev->ledger_old, "%s:ledger:%s", topic, id)) {
        fail(e, "out of memory taking a record");
        ev->dropped = true;
        maybe_finish(ev);
        return;
    }
    if (d->keys && ev->key_len > 0 && dlv_keyq_push(d->keys, &ev->kq, ev->key, ev->key_len) < 0) {
        fail(e, "out of memory taking a record");
        ev->dropped = true;
        maybe_finish(ev);
        return;
    }
    ev->state = EV_LEDGER;
    list_add_tail(&e->ledger, &ev->q);
}

static void on_assigned(void *opaque, dlv_part_t *part)
{
    struct dest *d = opaque;
    /* The commit point lags behind what is finished, so a marker above it is no proof of a
     * crash; deliver clears its markers after each ledger round instead. */
    sl_crashguard_assigned(d->guarded, dlv_part_id(part), -1);
}

static void on_revoked(void *opaque, dlv_part_t *part)
{
    struct dest *d = opaque;
    sl_crashguard_revoked(d->guarded, dlv_part_id(part));
    struct link *l = d->events.next;
    while (l != &d->events) {
        struct link *next = l->next;
        struct event *ev = container_of(l, struct event, all);
        if (ev->part == part)
            drop_event(ev); /* may free ev, never another event */
        l = next;
    }
}

/* ---- the ledger ---- */

/* The URL and the body of an event whose destination maps them (jq), once, before its first
 * attempt. A mapping that fails is the event's own problem: it is dead-lettered. Returns 0, or
 * -1 when the event went that way. */
static int render(struct event *ev)
{
    struct dest *d = ev->d;
    struct sl_err err;
    char reason[REASON_MAX];
    bool dynamic = dlv_template_dynamic(d->conf.url);
    if (!d->conf.body && !dynamic)
        return 0;
    const char *what = "the event";
    json_t *doc = sl_expr_event_json(&ev->ce, ev->payload, ev->len, &err);
    bool ok = doc != NULL;
    if (ok && dynamic) {
        what = "url";
        ok = (ev->url = dlv_template_render(d->conf.url, doc, &err)) != NULL;
    }
    if (ok && d->conf.body) {
        what = "body";
        json_t *out = sl_expr_value(d->conf.body, doc, &err);
        ev->body = out ? json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        if (out && !ev->body)
            sl_err_set(&err, SL_ERR_NOMEM, "cannot serialise the body");
        json_decref(out);
        ok = ev->body != NULL;
    }
    json_decref(doc);
    if (ok) {
        ev->body_len = ev->body ? strlen(ev->body) : 0;
        size_t more = ev->body_len + (ev->url ? strlen(ev->url) : 0);
        ev->bytes += more;
        d->e->bytes += (long long)more;
        return 0;
    }
    snprintf(reason, sizeof(reason), "%s: %.900s", what, err.msg);
    audit(ev, "dead_lettered", reason, 0, NULL);
    dead_letter(ev, reason);
    if (err.fatal)
        fail(d->e, "%s", reason); /* too many runaway expressions: restart with memory back */
    return -1;
}

static void after_ledger(struct event *ev, bool seen)
{
    list_del(&ev->q);
    if (seen) {
        /* Delivered before (a restart between the 2xx and the commit, or a replay): say so
         * again, send nothing. */
        ev->final = true;
        release_key(ev);
        audit(ev, "duplicate", "already delivered (delivery ledger)", 0, NULL);
        outcome(ev, "delivered", "already delivered (delivery ledger)", true);
        sl_series_add(ev->d->m_already, 1);
        ev->state = EV_RECORDING;
        maybe_finish(ev);
        return;
    }
    ev->ledger_ok = true;
    if (render(ev) != 0)
        return;
    if (!ev->d->keys || !dlv_keyq_queued(&ev->kq) || dlv_keyq_is_head(&ev->kq))
        ready_push(ev, false);
    else
        ev->state = EV_WAITING;
}

/* The ledger answered for `ev`: what follows (its mappings, which run an operator's jq over
 * the event) is where a record can crash the process, so the crash guard marks it first, and
 * a record that crashed the process max_crashes times is dead-lettered instead. */
static void checked(struct event *ev, bool seen)
{
    int crashes = 0;
    if (!ev->part || sl_crashguard_enter(ev->d->guarded, dlv_part_id(ev->part), ev->offset,
                                         &crashes) != SL_CRASHGUARD_CRASHED) {
        after_ledger(ev, seen);
        return;
    }
    char reason[REASON_MAX];
    snprintf(reason, sizeof(reason),
             SL_CRASHGUARD_REASON ": the record crashed sluice-deliver %d times; it is not "
                                  "processed again",
             crashes);
    list_del(&ev->q);
    audit(ev, "dead_lettered", reason, 0, NULL);
    dead_letter(ev, reason);
}

/* One round trip for up to DLV_REDIS_BATCH events of `list`: EXISTS (check) or SET PX
 * (mark). Returns how many were done; on a failure none are (they stay for the next turn).
 * The check asks for the scoped key and the key of earlier versions at once (EXISTS counts
 * both), so an event delivered before the upgrade is not sent again; the mark writes the
 * scoped key only (deliver.h, Upgrade). */
static size_t ledger_round(dlv_engine_t *e, struct link *list, bool mark)
{
    struct sl_redis_command cmds[DLV_REDIS_BATCH];
    const char *argv[DLV_REDIS_BATCH][5];
    char ttl[DLV_REDIS_BATCH][24];
    struct event *evs[DLV_REDIS_BATCH];
    redisReply *replies[DLV_REDIS_BATCH];
    struct sl_err err;
    size_t n = 0;
    for (struct link *l = list->next; l != list && n < DLV_REDIS_BATCH; l = l->next, n++) {
        struct event *ev = container_of(l, struct event, q);
        /* A record the crash guard suspects goes through the check and its mappings alone. */
        bool alone = !mark && ev->part &&
                     sl_crashguard_alone(ev->d->guarded, dlv_part_id(ev->part), ev->offset);
        if (alone && n > 0)
            break;
        evs[n] = ev;
        if (mark) {
            snprintf(ttl[n], sizeof(ttl[n]), "%lld", ev->d->conf.ledger_ttl_ms);
            argv[n][0] = "SET", argv[n][1] = ev->ledger_key, argv[n][2] = "1";
            argv[n][3] = "PX", argv[n][4] = ttl[n];
            cmds[n] = (struct sl_redis_command){5, argv[n], NULL};
        } else {
            argv[n][0] = "EXISTS", argv[n][1] = ev->ledger_key, argv[n][2] = ev->ledger_old;
            cmds[n] = (struct sl_redis_command){3, argv[n], NULL};
        }
        if (alone) {
            n++;
            break;
        }
    }
    if (n == 0)
        return 0;
    if (sl_redis_pipeline(e->redis, n, cmds, replies, &err) != 0) {
        redis_failed(e, &err);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (sl_redis_reply_check(e->redis, replies[i], &err) != 0 ||
            (!mark && replies[i]->type != REDIS_REPLY_INTEGER)) {
            if (replies[i]->type != REDIS_REPLY_ERROR)
                sl_err_set(&err, SL_ERR_INTERNAL, "unexpected reply to %s", argv[i][0]);
            sl_redis_replies_free(replies, n);
            redis_failed(e, &err);
            return 0;
        }
    redis_worked(e);
    for (size_t i = 0; i < n; i++) {
        struct event *ev = evs[i];
        if (!mark) {
            checked(ev, replies[i]->integer > 0);
            continue;
        }
        list_del(&ev->q);
        ev->state = EV_RECORDING;
        outcome(ev, "delivered", NULL, false);
        maybe_finish(ev);
    }
    sl_redis_replies_free(replies, n);
    if (!mark)
        sl_crashguard_done(e->guard); /* the mappings of this round ran without a crash */
    return n;
}

static void ledger_step(dlv_engine_t *e, long long now)
{
    /* Marks first: they release offsets; checks let new events in. */
    while (!list_empty(&e->marking) && redis_ok(e, now) && ledger_round(e, &e->marking, true))
        ;
    if (e->draining)
        return;
    while (!list_empty(&e->ledger) && redis_ok(e, now) && ledger_round(e, &e->ledger, false))
        ;
}

/* ---- attempts ---- */

static enum attempt_class classify_attempt(long status, CURLcode code)
{
    if (status >= 200 && status < 300)
        return AC_2XX;
    if (status == 429)
        return AC_429;
    if (status >= 500)
        return AC_5XX;
    if (status >= 400)
        return AC_4XX;
    if (status >= 300)
        return AC_3XX;
    if (code == CURLE_OPERATION_TIMEDOUT)
        return AC_TIMEOUT;
    if (code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
        code == CURLE_COULDNT_RESOLVE_PROXY)
        return AC_CONNECT;
    return AC_ERROR;
}

/* A circuit that opens is an audit record about the destination (outcome circuit_open, no
 * event: event_id null, partition and offset -1), so that sluice-reconcile alerts on it
 * through the pipeline as on anything else in the trail. */
static void audit_circuit_open(struct dest *d, long long now)
{
    dlv_engine_t *e = d->e;
    struct sl_err err;
    char reason[160], *value = NULL;
    size_t len = 0;
    rd_kafka_headers_t *hdrs = NULL;
    long long cooldown = dlv_circuit_reopen_ms(&d->circuit) - now;
    snprintf(reason, sizeof(reason),
             "circuit opened: failures over %d%% in %lld ms; probing in %lld ms",
             d->conf.circuit.failure_pct, d->conf.circuit.window_ms, cooldown > 0 ? cooldown : 0);
    json_t *detail = json_pack("{s:s}", "destination", d->conf.name);
    const struct sl_audit a = {
        .stage = STAGE,
        .topic = dlv_consumer_topic(d->consumer),
        .partition = -1,
        .offset = -1,
        .outcome = "circuit_open",
        .reason = reason,
        .outputs = -1,
        .detail = detail,
    };
    if (!detail || sl_audit_build(&a, &value, &len, &hdrs, &err) != 0)
        fail(e, "audit record of the circuit: %s", detail ? err.msg : "out of memory");
    else
        produce(e, NULL, e->t_audit, d->conf.name, strlen(d->conf.name), value, len, hdrs);
    free(value);
    json_decref(detail);
}

static void show_circuit(struct dest *d, long long now)
{
    enum dlv_circuit_state s = dlv_circuit_state(&d->circuit, now);
    if (s == d->shown)
        return;
    /* Once per outage: a probe that fails re-opens a half-open circuit, which says nothing
     * new. */
    if (s == DLV_CIRCUIT_OPEN && d->shown == DLV_CIRCUIT_CLOSED)
        audit_circuit_open(d, now);
    sl_series_set(d->m_circuit, s);
    sl_series_add(s == DLV_CIRCUIT_OPEN        ? d->m_opened
                  : s == DLV_CIRCUIT_HALF_OPEN ? d->m_half_open
                                               : d->m_closed,
                  1);
    sl_log(s == DLV_CIRCUIT_OPEN ? SL_LOG_WARN : SL_LOG_INFO, NULL, "%s: circuit %s", d->conf.name,
           dlv_circuit_state_name(s));
    d->shown = s;
}

/* A 429 slows every replica down: the hold lasts until Retry-After (or the first backoff). */
static void hold(struct dest *d, long long ms, long long now)
{
    dlv_engine_t *e = d->e;
    struct sl_err err;
    if (ms <= 0)
        return;
    if (now + ms > d->hold_until)
        d->hold_until = now + ms;
    sl_series_add(d->m_holds, 1);
    if (redis_ok(e, now)) {
        if (sl_redis_hold_set(e->redis, d->hold_key, ms, &err) != 0)
            redis_failed(e, &err);
        else
            redis_worked(e);
    }
}

static void handle_result(struct event *ev, long status, CURLcode code, const char *error,
                          double seconds, const char *body, size_t body_len,
                          const char *retry_after)
{
    struct dest *d = ev->d;
    dlv_engine_t *e = d->e;
    long long now = mono_ms();
    char reason[REASON_MAX], what[WHAT_MAX];

    d->in_flight--;
    d->wake_ms = 0; /* a slot is free */
    ev->req = NULL;
    ev->state = EV_RECORDING; /* transient: set properly below */
    ev->last_status = status;
    free(ev->last_body);
    ev->last_body = NULL;
    ev->last_body_len = 0;
    if (body_len && (ev->last_body = malloc(body_len < DLV_BODY_KEPT ? body_len : DLV_BODY_KEPT))) {
        ev->last_body_len = body_len < DLV_BODY_KEPT ? body_len : DLV_BODY_KEPT;
        memcpy(ev->last_body, body, ev->last_body_len);
    }
    enum dlv_class cls = dlv_classify(&d->conf.status, status);
    dlv_circuit_record(&d->circuit, ev->ticket, cls == DLV_RETRY && status != 429, now);
    show_circuit(d, now);
    sl_series_add(d->m_attempts[classify_attempt(status, code)], 1);
    sl_series_observe(d->m_latency, seconds);
    if (status)
        snprintf(what, sizeof(what), "HTTP %ld", status);
    else
        snprintf(what, sizeof(what), "no answer: %s", error && *error ? error : "transfer failed");

    if (status == 401 && !ev->auth_retried && dlv_auth_rejected(d->auth, ev->auth_gen, now)) {
        /* The credential was refused and a fresh one is coming: send again at once, once. */
        ev->auth_retried = true;
        audit(ev, "retry", "HTTP 401: sending again with renewed credentials", seconds, error);
        if (e->draining) {
            drop_event(ev);
        } else {
            ready_push(ev, true);
        }
        return;
    }
    switch (cls) {
    case DLV_DELIVERED:
        audit(ev, "delivered", NULL, seconds, error);
        ev->final = true;
        release_key(ev);
        sl_series_add(d->m_delivered, 1);
        sl_log(SL_LOG_DEBUG, event_id(ev), "%s: delivered (%s, attempt %d)", d->conf.name, what,
               ev->attempts);
        ev->state = EV_MARKING;
        list_add_tail(&e->marking, &ev->q);
        return;
    case DLV_PERMANENT:
        snprintf(reason, sizeof(reason), "%.*s: a permanent failure", (int)WHAT_MAX, what);
        audit(ev, "dead_lettered", reason, seconds, error);
        dead_letter(ev, reason);
        return;
    case DLV_RETRY:
        break;
    }

    long long ra = -1, delay = 0;
    if (retry_after && dlv_honours_retry_after(status) &&
        dlv_retry_after_ms(retry_after, wall_ms(), &ra) != 0)
        ra = -1;
    if (status == 429)
        hold(d, ra >= 0 ? ra : d->conf.retry.initial_ms, now);
    enum dlv_next next =
        dlv_retry_next(&d->conf.retry, ev->attempts, ra, wall_ms() - ev->ts_ms, rnd(e), &delay);
    if (next != DLV_NEXT_RETRY) {
        snprintf(reason, sizeof(reason), "%.*s after %d attempt(s); %s", (int)WHAT_MAX, what,
                 ev->attempts,
                 next == DLV_NEXT_GIVE_UP_ATTEMPTS ? "retry.max_attempts reached"
                                                   : "the next attempt would pass retry.max_age");
        audit(ev, "dead_lettered", reason, seconds, error);
        dead_letter(ev, reason);
        return;
    }
    if (e->draining) {
        snprintf(reason, sizeof(reason), "%.*s; not retried here: shutting down", (int)WHAT_MAX,
                 what);
        audit(ev, "retry", reason, seconds, error);
        drop_event(ev);
        return;
    }
    snprintf(reason, sizeof(reason), "%.*s; retry in %lld ms%s", (int)WHAT_MAX, what, delay,
             ra >= 0 ? " (Retry-After)" : "");
    audit(ev, "retry", reason, seconds, error);
    sl_log(SL_LOG_DEBUG, event_id(ev), "%s: attempt %d: %s", d->conf.name, ev->attempts, reason);
    if (dlv_timers_arm(e->timers, &ev->timer, now + delay) != 0) {
        fail(e, "out of memory arming a retry");
        drop_event(ev);
        return;
    }
    ev->state = EV_BACKOFF;
    d->retrying++;
}

static void on_done(void *opaque, const struct dlv_http_result *res)
{
    struct event *ev = opaque;
    handle_result(ev, res->status, res->code, res->error, res->seconds, res->body, res->body_len,
                  res->retry_after);
}

/* Appends "Name: value" when the value is safe in a header (no control characters: an
 * attribute of the event must not be able to inject a header). */
static struct curl_slist *add_header(struct curl_slist *l, bool *ok, const char *name,
                                     const char *value)
{
    char line[HEADER_LINE_MAX];
    if (!*ok || !value)
        return l;
    for (const char *p = value; *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\t')
            return l;
    int n = snprintf(line, sizeof(line), "%s: %s", name, value);
    if (n < 0 || (size_t)n >= sizeof(line))
        return l;
    struct curl_slist *next = curl_slist_append(l, line);
    if (!next)
        *ok = false;
    return next ? next : l;
}

static bool configured(const struct dest *d, const char *name)
{
    for (size_t i = 0; i < d->conf.n_headers; i++)
        if (strcasecmp(d->conf.header_names[i], name) == 0)
            return true;
    return false;
}

/* The request's headers (see deliver.h). NULL with *err when they cannot be built. */
static struct curl_slist *request_headers(struct event *ev, const char *credential, long long now,
                                          struct sl_err *err)
{
    struct dest *d = ev->d;
    struct curl_slist *l = NULL;
    bool ok = true;
    const char *ctype = ev->body ? "application/json" : sl_ce_get(&ev->ce, "datacontenttype");
    if (!configured(d, "Content-Type"))
        l = add_header(l, &ok, "Content-Type", ctype ? ctype : "application/json");
    if (!configured(d, "User-Agent"))
        l = add_header(l, &ok, "User-Agent", "sluice-deliver/" SLUICE_VERSION);
    l = add_header(l, &ok, "Idempotency-Key", ev->idem_key);
    l = add_header(l, &ok, "traceparent", sl_ce_get(&ev->ce, SL_CE_TRACEPARENT));
    static const char *const attrs[] = {"specversion", "id", "source", "type", "time", "subject"};
    for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
        char name[32];
        snprintf(name, sizeof(name), "ce-%s", attrs[i]);
        l = add_header(l, &ok, name, sl_ce_get(&ev->ce, attrs[i]));
    }
    if (d->signer) {
        char sig[DLV_SIGN_HEADER_MAX], ts[24];
        long long t = wall_ms() / 1000;
        snprintf(ts, sizeof(ts), "%lld", t);
        if (dlv_signer_sign(d->signer, now, ev->idem_key, t, ev->body ? ev->body : ev->payload,
                            ev->body ? ev->body_len : ev->len, sig, sizeof(sig), err) != 0) {
            curl_slist_free_all(l);
            return NULL;
        }
        l = add_header(l, &ok, "webhook-id", ev->idem_key);
        l = add_header(l, &ok, "webhook-timestamp", ts);
        l = add_header(l, &ok, "webhook-signature", sig);
    }
    if (credential[0] && ok) {
        struct curl_slist *next = curl_slist_append(l, credential);
        ok = next != NULL;
        l = next ? next : l;
    }
    for (size_t i = 0; i < d->conf.n_headers; i++)
        l = add_header(l, &ok, d->conf.header_names[i], d->conf.header_values[i]);
    if (!ok) {
        curl_slist_free_all(l);
        sl_err_set(err, SL_ERR_NOMEM, "out of memory building headers");
        return NULL;
    }
    return l;
}

static void start_attempt(struct event *ev, const char *credential, unsigned auth_gen,
                          enum dlv_circuit_ticket ticket, long long now)
{
    struct dest *d = ev->d;
    struct sl_err err;
    ev->attempts++;
    ev->auth_gen = auth_gen;
    ev->ticket = ticket;
    ev->state = EV_FLIGHT;
    d->in_flight++;
    struct curl_slist *headers = request_headers(ev, credential, now, &err);
    if (headers) {
        const struct dlv_http_spec spec = {
            .url = ev->url ? ev->url : dlv_template_text(d->conf.url),
            .method = d->conf.method,
            .headers = headers,
            .body = ev->body ? ev->body : ev->payload,
            .len = ev->body ? ev->body_len : ev->len,
            .timeout_ms = d->conf.timeout_ms,
            .body_max = DLV_BODY_KEPT,
        };
        ev->req = dlv_http_start(d->e->http, &spec, on_done, ev, &err);
        if (ev->req)
            return;
    }
    /* Could not even start: an attempt that got no answer, classified as such. */
    handle_result(ev, 0, CURLE_FAILED_INIT, err.msg, 0, NULL, 0, NULL);
}

/* ---- credentials ---- */

static void on_token(void *opaque, const struct dlv_http_result *res)
{
    struct dest *d = opaque;
    struct sl_err err;
    long long now = mono_ms();
    d->token_req = NULL;
    if (dlv_auth_fetch_done(d->auth, res->status, res->body, res->body_len, now, &err) == 0) {
        sl_series_add(d->m_tokens_ok, 1);
        SL_INFO("%s: OAuth2 token obtained", d->conf.name);
        if (!d->auth_ok)
            set_not_ready(d->e, NULL);
        d->auth_ok = 1;
    } else {
        sl_series_add(d->m_tokens_failed, 1);
        SL_ERROR("%s: %s%s%s", d->conf.name, err.msg, res->error[0] ? ": " : "", res->error);
        set_not_ready(d->e, "%s: OAuth2 token: %s", d->conf.name, err.msg);
        d->auth_ok = 0;
    }
    explicit_bzero(&d->fetch, sizeof(d->fetch));
    d->wake_ms = 0;
}

static void fetch_token(struct dest *d, long long now)
{
    struct sl_err err;
    if (d->token_req || !dlv_auth_fetch_due(d->auth, now))
        return;
    if (dlv_auth_fetch_begin(d->auth, now, &d->fetch, &err) != 0) {
        SL_ERROR("%s: %s", d->conf.name, err.msg);
        return;
    }
    struct curl_slist *h = curl_slist_append(NULL, d->fetch.authorization);
    struct curl_slist *h2 =
        h ? curl_slist_append(h, "Content-Type: application/x-www-form-urlencoded") : NULL;
    struct curl_slist *h3 = h2 ? curl_slist_append(h2, "Accept: application/json") : NULL;
    if (!h3) {
        curl_slist_free_all(h2 ? h2 : h);
        dlv_auth_fetch_done(d->auth, 0, NULL, 0, now, &err);
        explicit_bzero(&d->fetch, sizeof(d->fetch));
        return;
    }
    const struct dlv_http_spec spec = {
        .url = d->fetch.url,
        .method = "POST",
        .headers = h3,
        .body = d->fetch.body,
        .len = strlen(d->fetch.body),
        .timeout_ms = DLV_AUTH_FETCH_TIMEOUT_MS,
        .body_max = DLV_AUTH_RESPONSE_MAX,
    };
    d->token_req = dlv_http_start(d->e->http, &spec, on_token, d, &err);
    if (!d->token_req) {
        SL_ERROR("%s: token request: %s", d->conf.name, err.msg);
        dlv_auth_fetch_done(d->auth, 0, NULL, 0, now, &err);
        explicit_bzero(&d->fetch, sizeof(d->fetch));
    }
}

/* ---- dispatch: what may be sent now ---- */

/* Takes `want` tokens, or one, from the fleet's bucket. Returns how many were taken (0: wait;
 * d->token_wait_until says until when). */
static long long take_tokens(struct dest *d, long long want, long long now)
{
    dlv_engine_t *e = d->e;
    struct sl_err err;
    bool allowed = false;
    long long retry_ms = 0;
    if (now < d->token_wait_until) {
        wake_at(d, d->token_wait_until);
        return 0;
    }
    if (!redis_ok(e, now)) {
        wake_at(d, e->redis_retry_at);
        return 0;
    }
    if (want > d->conf.burst)
        want = d->conf.burst;
    for (;;) {
        if (sl_redis_bucket_take(e->redis, d->bucket_key, d->conf.burst, (double)d->conf.per_second,
                                 want, &allowed, &retry_ms, &err) != 0) {
            redis_failed(e, &err);
            wake_at(d, e->redis_retry_at);
            return 0;
        }
        redis_worked(e);
        if (allowed)
            return want;
        if (want == 1)
            break;
        want = 1; /* not that many: maybe one */
    }
    d->token_wait_until = now + (retry_ms > 0 ? retry_ms : 1);
    sl_series_add(d->m_token_waits, 1);
    sl_series_add(d->m_token_wait_s, (double)(retry_ms > 0 ? retry_ms : 1) / 1000.0);
    wake_at(d, d->token_wait_until);
    return 0;
}

/* The fleet-wide hold (after a 429 anywhere) and an operator's pause (pause.h): re-read every
 * DLV_HOLD_POLL_MS. False when sending must wait. */
static bool hold_over(struct dest *d, long long now)
{
    dlv_engine_t *e = d->e;
    struct sl_err err;
    if (now - d->hold_checked >= DLV_HOLD_POLL_MS) {
        if (!redis_ok(e, now)) {
            wake_at(d, e->redis_retry_at);
            return false;
        }
        long long remaining = 0;
        json_t *paused = NULL;
        if (sl_redis_hold_get(e->redis, d->hold_key, &remaining, &err) != 0 ||
            dlv_pause_get(e->redis, d->paused_key, &paused, &err) != 0) {
            redis_failed(e, &err);
            wake_at(d, e->redis_retry_at);
            return false;
        }
        redis_worked(e);
        d->hold_checked = now;
        if ((paused != NULL) != d->paused)
            sl_log(SL_LOG_INFO, NULL, "%s: %s by an operator", d->conf.name,
                   paused ? "paused" : "resumed");
        d->paused = paused != NULL;
        sl_series_set(d->m_paused, d->paused);
        json_decref(paused);
        /* Redis counted `remaining` from when it answered, which is after `now` (taken at the
         * start of the loop turn): measure from the answer, so the hold never ends early. */
        long long answered = mono_ms();
        if (remaining > 0 && answered + remaining > d->hold_until)
            d->hold_until = answered + remaining;
    }
    if (d->paused) {
        wake_at(d, d->hold_checked + DLV_HOLD_POLL_MS); /* to see the resume */
        return false;
    }
    if (now < d->hold_until) {
        wake_at(d, d->hold_until);
        return false;
    }
    return true;
}

static void dispatch(struct dest *d, long long now)
{
    char credential[DLV_AUTH_HEADER_MAX];
    /* A token is fetched when events need one, and renewed ahead of its expiry once held. */
    if (d->n_ready > 0 || dlv_auth_held(d->auth))
        fetch_token(d, now);
    if (d->n_ready == 0 || now < d->wake_ms)
        return;
    d->wake_ms = LLONG_MAX;
    long long tokens = 0;
    while (d->n_ready > 0 && d->in_flight < (size_t)d->conf.concurrency) {
        enum dlv_circuit_ticket ticket;
        unsigned gen = 0;
        if (dlv_circuit_state(&d->circuit, now) == DLV_CIRCUIT_OPEN) {
            show_circuit(d, now);
            wake_at(d, dlv_circuit_reopen_ms(&d->circuit));
            break;
        }
        if (!hold_over(d, now))
            break;
        if (!dlv_auth_header(d->auth, now, credential, sizeof(credential), &gen)) {
            fetch_token(d, now);
            wake_at(d, dlv_auth_wake_ms(d->auth, now));
            break;
        }
        if (d->conf.rate_limited && tokens == 0) {
            long long slots = d->conf.concurrency - (long long)d->in_flight;
            tokens =
                take_tokens(d, (long long)d->n_ready < slots ? (long long)d->n_ready : slots, now);
            if (tokens == 0)
                break;
        }
        if (!dlv_circuit_allow(&d->circuit, now, &ticket)) {
            show_circuit(d, now); /* half-open with its probe out: wait for its answer */
            break;
        }
        show_circuit(d, now);
        struct event *ev = container_of(d->ready.next, struct event, q);
        list_del(&ev->q);
        d->n_ready--;
        if (d->conf.rate_limited)
            tokens--;
        start_attempt(ev, credential, gen, ticket, now);
    }
    explicit_bzero(credential, sizeof(credential));
    /* Tokens left over are not kept: every request goes out right after its token was taken,
     * which is what keeps the fleet within the bucket's rate. */
}

/* ---- the loop ---- */

static void fire_timers(dlv_engine_t *e, long long now)
{
    struct dlv_timer *t;
    while ((t = dlv_timers_pop_due(e->timers, now))) {
        struct event *ev = container_of(t, struct event, timer);
        ev->d->retrying--;
        ready_push(ev, false);
    }
}

static void start_drain(dlv_engine_t *e, long long now)
{
    e->draining = true;
    long long longest = 0;
    for (size_t i = 0; i < e->n_dests; i++)
        if (e->dests[i].conf.timeout_ms > longest)
            longest = e->dests[i].conf.timeout_ms;
    e->drain_deadline = now + longest + e->o.kafka->produce_timeout_ms + DRAIN_SLACK_MS;
    set_not_ready(e, "%s", e->fatal ? "stopping on a fatal error" : "shutting down");
    SL_INFO("stopping: finishing the requests in flight, dropping what waits (it is not "
            "committed)");
    for (size_t i = 0; i < e->n_dests; i++) {
        struct dest *d = &e->dests[i];
        if (d->token_req) {
            dlv_http_cancel(e->http, d->token_req);
            d->token_req = NULL;
            explicit_bzero(&d->fetch, sizeof(d->fetch));
        }
        struct link *l = d->events.next;
        while (l != &d->events) {
            struct link *next = l->next;
            struct event *ev = container_of(l, struct event, all);
            if (ev->state == EV_LEDGER || ev->state == EV_WAITING || ev->state == EV_READY ||
                ev->state == EV_BACKOFF)
                drop_event(ev);
            l = next;
        }
    }
}

static bool drained(dlv_engine_t *e)
{
    if (dlv_http_running(e->http) > 0 || !list_empty(&e->marking))
        return false;
    return sl_producer_outstanding(e->producer) == 0;
}

static void update_gauges(dlv_engine_t *e, long long now)
{
    long long wall = wall_ms();
    for (size_t i = 0; i < e->n_dests; i++) {
        struct dest *d = &e->dests[i];
        sl_series_set(d->m_in_flight, (double)d->in_flight);
        sl_series_set(d->m_retrying, (double)d->retrying);
        sl_series_set(d->m_held, (double)d->held);
        sl_series_set(d->m_assigned, (double)dlv_consumer_assigned(d->consumer));
        double oldest = 0;
        if (!list_empty(&d->events)) {
            const struct event *ev = container_of(d->events.next, struct event, all);
            oldest = wall > ev->ts_ms ? (double)(wall - ev->ts_ms) / 1000.0 : 0;
        }
        sl_series_set(d->m_oldest, oldest);
        show_circuit(d, now);
    }
}

static int loop_timeout(dlv_engine_t *e, long long now, bool more)
{
    if (more)
        return 0;
    long long at = now + LOOP_WAIT_MAX_MS;
    long long t = dlv_timers_next_due(e->timers);
    if (t < at)
        at = t;
    for (size_t i = 0; i < e->n_dests; i++) {
        const struct dest *d = &e->dests[i];
        if (d->n_ready > 0 && d->in_flight < (size_t)d->conf.concurrency && d->wake_ms < at)
            at = d->wake_ms;
    }
    if ((!list_empty(&e->ledger) || !list_empty(&e->marking)) && e->redis_retry_at < at)
        at = e->redis_retry_at;
    if (e->next_commit < at)
        at = e->next_commit;
    return at <= now ? 0 : (int)(at - now);
}

int dlv_engine_run(dlv_engine_t *e, struct sl_err *err)
{
    for (size_t i = 0; i < e->n_dests; i++)
        if (dlv_consumer_subscribe(e->dests[i].consumer, err) != 0)
            return sl_signal_stopping() ? 0 : -1;
    set_not_ready(e, NULL);
    bool more = false;
    for (;;) {
        sl_live_beat(e->o.live);
        long long now = mono_ms();
        if (!e->draining && (sl_signal_stopping() || e->fatal))
            start_drain(e, now);
        if (e->draining && drained(e))
            break;
        if (e->draining && now >= e->drain_deadline) {
            SL_WARN("stopping: %zu request(s) and %d record(s) still unfinished after the drain "
                    "deadline; they will be read again",
                    dlv_http_running(e->http), sl_producer_outstanding(e->producer));
            break;
        }
        if (dlv_http_wait(e->http, e->wake[0], loop_timeout(e, now, more))) {
            char buf[256];
            while (read(e->wake[0], buf, sizeof(buf)) > 0)
                ;
        }
        dlv_http_run(e->http);
        sl_producer_poll(e->producer, 0);
        now = mono_ms();
        more = false;
        for (size_t i = 0; i < e->n_dests; i++) {
            more |=
                dlv_consumer_poll(e->dests[i].consumer, DLV_POLL_BATCH, !e->full && !e->draining);
            const char *why = dlv_consumer_failed(e->dests[i].consumer);
            if (why)
                fail(e, "%s: %s", e->dests[i].conf.name, why);
        }
        fire_timers(e, now);
        ledger_step(e, now);
        if (!e->draining)
            for (size_t i = 0; i < e->n_dests; i++)
                dispatch(&e->dests[i], now);
        if (now >= e->next_commit) {
            for (size_t i = 0; i < e->n_dests; i++)
                dlv_consumer_commit(e->dests[i].consumer, false);
            e->next_commit = now + e->settings.commit_interval_ms;
        }
        bool over =
            e->events >= (size_t)e->settings.max_events || e->bytes >= e->settings.max_memory;
        bool under = e->events <= (size_t)e->settings.max_events * 3 / 4 &&
                     e->bytes <= e->settings.max_memory / 4 * 3;
        e->full = over || (e->full && !under);
        for (size_t i = 0; i < e->n_dests; i++)
            dlv_consumer_balance(e->dests[i].consumer, e->full || e->draining);
        if (now >= e->next_metrics) {
            update_gauges(e, now);
            e->next_metrics = now + METRICS_EVERY_MS;
        }
    }

    /* Commit what is finished, leave the groups (whatever is still held is dropped through
     * the revocation hook), then let Kafka acknowledge what is left. */
    for (size_t i = 0; i < e->n_dests; i++)
        dlv_consumer_close(e->dests[i].consumer);
    struct sl_err ferr;
    if (sl_producer_flush(e->producer, e->o.kafka->produce_timeout_ms, &ferr) != 0)
        SL_WARN("stopping: %s", ferr.msg);
    update_gauges(e, mono_ms());
    if (e->fatal) {
        *err = e->fatal_err;
        return -1;
    }
    SL_INFO("stopped: every finished offset committed");
    return 0;
}

/* ---- set-up ---- */

static int dest_init(dlv_engine_t *e, struct dest *d, const char *name, struct sl_err *err)
{
    d->e = e;
    list_init(&d->events);
    list_init(&d->ready);
    d->shown = DLV_CIRCUIT_CLOSED;
    d->auth_ok = 1;
    if (dlv_dest_conf_load(e->o.conf, name, &d->conf, err) != 0)
        return -1;
    if (!(d->auth = dlv_auth_new(&d->conf.auth, err)))
        return -1;
    if (d->conf.sign && !(d->signer = dlv_signer_new(d->conf.sign_secrets, d->conf.n_sign_secrets,
                                                     d->conf.sign_secret_file, err)))
        return -1;
    if (d->conf.per_key && !(d->keys = dlv_keyq_new()))
        return sl_err_set(err, SL_ERR_NOMEM, "out of memory");
    dlv_circuit_init(&d->circuit, &d->conf.circuit);

    const struct dlv_consumer_opts co = {
        .kafka = e->o.kafka,
        .destination = name,
        .instance_id = e->o.instance_id,
        .max_per_partition = (size_t)e->settings.max_events_per_partition,
        .wake_fd = e->wake[1],
        .lag = e->m_lag,
        .hooks = {on_assigned, on_record, on_revoked, d},
    };
    if (!(d->consumer = dlv_consumer_new(&co, err)) ||
        !(d->guarded = sl_crashguard_topic(e->guard, dlv_consumer_group(d->consumer),
                                           dlv_consumer_topic(d->consumer), DLV_REDIS_BATCH, err)))
        return -1;
    snprintf(d->key_base, sizeof(d->key_base), "%sdeliver.%s", e->key_prefix, name);
    snprintf(d->bucket_key, sizeof(d->bucket_key), "%s:bucket", d->key_base);
    snprintf(d->hold_key, sizeof(d->hold_key), "%s:hold", d->key_base);
    if (dlv_pause_key(e->key_prefix, name, d->paused_key, sizeof(d->paused_key)) != 0)
        return sl_err_set(err, SL_ERR_CONFIG, "%s: the Redis key prefix is too long", name);

    sl_metrics_t *m = e->o.metrics;
    const char *const dl[] = {"destination", NULL};
    const char *const v[] = {name};
    sl_metric_t *attempts = sl_metrics_counter(
        m, "sluice_deliver_attempts_total", "Delivery attempts, by result class.",
        (const char *const[]){"destination", "result", NULL});
    for (size_t i = 0; i < 8; i++)
        d->m_attempts[i] =
            sl_metric_series(attempts, (const char *const[]){name, attempt_class_names[i]});
    d->m_latency = sl_metric_series(
        sl_metrics_histogram(m, "sluice_deliver_attempt_seconds", "Time of one attempt.", dl,
                             sl_metrics_latency_buckets, sl_metrics_latency_buckets_n),
        v);
    sl_metric_t *outcomes =
        sl_metrics_counter(m, "sluice_deliver_outcomes_total", "Final outcomes of events.",
                           (const char *const[]){"destination", "outcome", NULL});
    d->m_delivered = sl_metric_series(outcomes, (const char *const[]){name, "delivered"});
    d->m_dead = sl_metric_series(outcomes, (const char *const[]){name, "dead_lettered"});
    d->m_already = sl_metric_series(outcomes, (const char *const[]){name, "already_delivered"});
    d->m_retrying = sl_metric_series(
        sl_metrics_gauge(m, "sluice_deliver_retries_pending", "Events waiting for a retry.", dl),
        v);
    d->m_in_flight = sl_metric_series(
        sl_metrics_gauge(m, "sluice_deliver_in_flight", "Requests in flight.", dl), v);
    d->m_assigned = sl_metric_series(
        sl_metrics_gauge(m, "sluice_deliver_partitions_assigned",
                         "Partitions of the destination's topic this process consumes.", dl),
        v);
    d->m_held = sl_metric_series(
        sl_metrics_gauge(m, "sluice_deliver_events_held", "Events held in memory.", dl), v);
    d->m_oldest = sl_metric_series(
        sl_metrics_gauge(m, "sluice_deliver_oldest_event_seconds",
                         "Age of the oldest event held (from its record's timestamp).", dl),
        v);
    d->m_circuit =
        sl_metric_series(sl_metrics_gauge(m, "sluice_deliver_circuit_state",
                                          "Circuit breaker: 0 closed, 1 half-open, 2 open.", dl),
                         v);
    sl_metric_t *trans = sl_metrics_counter(m, "sluice_deliver_circuit_transitions_total",
                                            "Circuit breaker state changes, by new state.",
                                            (const char *const[]){"destination", "to", NULL});
    d->m_opened = sl_metric_series(trans, (const char *const[]){name, "open"});
    d->m_half_open = sl_metric_series(trans, (const char *const[]){name, "half_open"});
    d->m_closed = sl_metric_series(trans, (const char *const[]){name, "closed"});
    d->m_token_waits =
        sl_metric_series(sl_metrics_counter(m, "sluice_deliver_rate_limit_waits_total",
                                            "Times sending waited for a rate-limit token.", dl),
                         v);
    d->m_token_wait_s = sl_metric_series(
        sl_metrics_counter(m, "sluice_deliver_rate_limit_wait_seconds_total",
                           "Time the rate-limit bucket asked to wait, summed.", dl),
        v);
    d->m_holds = sl_metric_series(sl_metrics_counter(m, "sluice_deliver_holds_total",
                                                     "Fleet-wide holds set after a 429.", dl),
                                  v);
    d->m_paused = sl_metric_series(
        sl_metrics_gauge(m, "sluice_deliver_paused",
                         "1 while an operator has paused the destination (sluice-admin), as last "
                         "read with the hold.",
                         dl),
        v);
    sl_metric_t *tokens = sl_metrics_counter(m, "sluice_deliver_token_requests_total",
                                             "OAuth2 token requests, by result.",
                                             (const char *const[]){"destination", "result", NULL});
    d->m_tokens_ok = sl_metric_series(tokens, (const char *const[]){name, "ok"});
    d->m_tokens_failed = sl_metric_series(tokens, (const char *const[]){name, "failed"});
    return 0;
}

dlv_engine_t *dlv_engine_new(const struct dlv_engine_opts *o, struct sl_err *err)
{
    dlv_engine_t *e = calloc(1, sizeof(*e));
    const char *url;
    int redis_timeout;
    if (!e) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    e->o = *o;
    e->wake[0] = e->wake[1] = -1;
    pthread_mutex_init(&e->lock, NULL);
    snprintf(e->not_ready, sizeof(e->not_ready), "starting");
    list_init(&e->ledger);
    list_init(&e->marking);
    if (getrandom(&e->rng, sizeof(e->rng), 0) != sizeof(e->rng) || e->rng == 0)
        e->rng = (uint64_t)wall_ms() | 1;
    if (dlv_settings_load(o->conf, &e->settings, err) != 0 ||
        sl_redis_key_prefix(o->conf, o->kafka->topic_prefix, &e->key_prefix, err) != 0)
        goto fail;
    if (pipe2(e->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        sl_err_set(err, SL_ERR_IO, "pipe: %s", strerror(errno));
        goto fail;
    }
    if (sl_kafka_topic_name(o->kafka, SL_TOPIC_OUTCOMES, e->t_outcomes, sizeof(e->t_outcomes)) ||
        sl_kafka_topic_name(o->kafka, SL_TOPIC_DLQ, e->t_dlq, sizeof(e->t_dlq)) ||
        sl_kafka_topic_name(o->kafka, SL_TOPIC_AUDIT, e->t_audit, sizeof(e->t_audit))) {
        sl_err_set(err, SL_ERR_CONFIG, "topic prefix too long");
        goto fail;
    }
    /* This replica's view; the group's lag is sluice_consumer_lag (sl_lagwatch.h). */
    e->m_lag = sl_metrics_gauge(o->metrics, "sluice_replica_lag",
                                "Records after the committed offset on the partitions this "
                                "replica owns, up to the last stable offset, as this replica "
                                "sees them.",
                                (const char *const[]){"stage", "topic", "partition", NULL});
    e->m_redis_errors = sl_metric_series(
        sl_metrics_counter(o->metrics, "sluice_deliver_redis_errors_total",
                           "Redis calls that failed (nothing is sent meanwhile).", NULL),
        NULL);

    /* The crash guard has its own Redis connection: its calls never wait behind the ledger's. */
    struct sl_crashguard_opts guard_opts = {
        .stage = STAGE,
        .max_crashes = (int)e->settings.max_crashes,
        .metrics = o->metrics,
    };
    if (sl_redis_settings(o->conf, &guard_opts.redis_url, &guard_opts.redis_timeout_ms, err) != 0 ||
        !(e->guard = sl_crashguard_new(&guard_opts, err)))
        goto fail;

    /* Which destinations: the ones named, or all. */
    const sl_conf_node_t *all = sl_conf_get(sl_conf_root(o->conf), "destinations");
    size_t n = o->n_destinations ? o->n_destinations : sl_conf_count(all);
    if (n == 0) {
        sl_err_set(err, SL_ERR_CONFIG, "%s: no destinations to deliver to", sl_conf_file(o->conf));
        goto fail;
    }
    if (n > DLV_DESTINATIONS_MAX) {
        sl_err_set(err, SL_ERR_CONFIG, "more than %d destinations in one process",
                   DLV_DESTINATIONS_MAX);
        goto fail;
    }
    if (!(e->dests = calloc(n, sizeof(*e->dests)))) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    long connections = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = o->n_destinations ? o->destinations[i] : sl_conf_key(all, i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(e->dests[j].conf.name, name) == 0) {
                sl_err_set(err, SL_ERR_CONFIG, "destination %s named twice", name);
                goto fail;
            }
        e->n_dests++;
        if (dest_init(e, &e->dests[i], name, err) != 0)
            goto fail;
        connections += e->dests[i].conf.concurrency + 1;
    }
    if (!(e->http = dlv_http_new(connections, err)) || !(e->timers = dlv_timers_new())) {
        if (!err || !e->http)
            goto fail;
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (sl_redis_settings(o->conf, &url, &redis_timeout, err) != 0 ||
        !(e->redis = sl_redis_new(url, redis_timeout, err)))
        goto fail;
    sl_redis_persistence_watch(e->redis, o->metrics);
    if (!(e->producer = sl_producer_new(o->kafka, "sluice-deliver", on_report, err)))
        goto fail;
    rd_kafka_queue_t *mainq = rd_kafka_queue_get_main(sl_producer_handle(e->producer));
    rd_kafka_queue_io_event_enable(mainq, e->wake[1], "p", 1);
    rd_kafka_queue_destroy(mainq);
    return e;
fail:
    dlv_engine_destroy(e);
    return NULL;
}

void dlv_engine_destroy(dlv_engine_t *e)
{
    if (!e)
        return;
    /* Requests first (their callbacks would touch events), then the consumers (revocation
     * drops what is left), then the producer (reports for records still queued). */
    dlv_http_destroy(e->http);
    e->http = NULL;
    for (size_t i = 0; i < e->n_dests; i++) {
        struct dest *d = &e->dests[i];
        d->token_req = NULL;
        for (struct link *l = d->events.next; l != &d->events; l = l->next) {
            struct event *ev = container_of(l, struct event, all);
            ev->req = NULL;
            if (ev->state == EV_FLIGHT)
                ev->state = EV_RECORDING;
        }
    }
    if (e->producer) {
        rd_kafka_queue_t *mainq = rd_kafka_queue_get_main(sl_producer_handle(e->producer));
        rd_kafka_queue_io_event_enable(mainq, -1, NULL, 0);
        rd_kafka_queue_destroy(mainq);
    }
    for (size_t i = 0; i < e->n_dests; i++)
        dlv_consumer_destroy(e->dests[i].consumer);
    sl_producer_destroy(e->producer); /* reports for what is left: events may go */
    for (size_t i = 0; i < e->n_dests; i++) {
        struct dest *d = &e->dests[i];
        while (!list_empty(&d->events)) {
            struct event *ev = container_of(d->events.next, struct event, all);
            ev->acks = 0;
            ev->dropped = true;
            free_event(ev);
        }
        dlv_keyq_destroy(d->keys);
        dlv_dest_conf_free(&d->conf);
        dlv_auth_destroy(d->auth);
        dlv_signer_destroy(d->signer);
    }
    free(e->dests);
    dlv_timers_destroy(e->timers);
    sl_crashguard_destroy(e->guard);
    sl_redis_destroy(e->redis);
    if (e->wake[0] >= 0)
        close(e->wake[0]);
    if (e->wake[1] >= 0)
        close(e->wake[1]);
    pthread_mutex_destroy(&e->lock);
    free(e);
}
