/*
 * ingress: see ingress.h for the request life, the slow-client guard and the stop sequence.
 *
 * Threads and what they touch:
 *   connection threads (libmicrohttpd pool)  on_access, on_completed, on_connection: one
 *        request at a time per connection; a struct request belongs to its connection thread
 *        except between suspend and resume, when it belongs to the delivery report.
 *   producer poller (sl_kafka)               on_delivery: fills the request's result, then
 *        resumes the connection and never touches the request again (it may be freed at once).
 *   keeper                                   read deadlines, Kafka probe, gauges.
 *   the caller of ingress_stop               the stop sequence.
 *
 * The gate (a rwlock) orders sends against the stop: a send holds it for reading; the stop
 * takes it for writing to close the producer to new records, so no record can be queued after
 * the final flush and no connection can be suspended when the daemon stops (which libmicrohttpd
 * forbids).
 */
#include "ingress.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "cehttp.h"
#include "envelope.h"
#include "replay.h"
#include "reply.h"
#include "sl_addr.h"
#include "sl_lagwatch.h"
#include "sl_log.h"
#include "sl_pipeline.h"
#include "sl_redis.h"

#define UNKNOWN_SOURCE  "_unknown" /* metrics label for requests outside any source */
#define DRAIN_GRACE_MS  2000       /* after the deadlines, for the last replies to go out */
#define DRAIN_POLL_MS   20
#define CLIENT_ADDR_MAX 64
/* A replay guard's pending claim outlives the Kafka deadline by this much (replay.h). */
#define REPLAY_PENDING_GRACE_MS 5000

/* libmicrohttpd before 0.9.77 has no setting that refuses bare LF line ends or a NUL in a header
 * value (MHD_OPTION_CLIENT_DISCIPLINE_LVL came with it); with those, check_framing() reads the
 * header section as 0.9.75 leaves it in its buffer (see check_line_ends). */
#define CHECK_LINE_ENDS (MHD_VERSION < 0x00097701)

static const unsigned statuses[] = {202, 400, 401, 404, 405, 413, 415, 429, 501, 503};
#define N_STATUSES (sizeof(statuses) / sizeof(statuses[0]))

enum req_state { REQ_READING = 0, REQ_WAITING, REQ_DONE };

/* Why a request got its 503, for the reply and the log. */
enum unavailable { UNAV_KAFKA = 0, UNAV_QUEUE_FULL, UNAV_STOPPING, UNAV_INTERNAL };

/* One per TCP connection (libmicrohttpd's socket context): the keeper's view of it. */
struct conn_slot {
    struct conn_slot *prev, *next;
    int fd;
    _Atomic int64_t deadline_ms; /* monotonic; 0 while the server, not the client, is due */
    atomic_bool linger;          /* answered with an error: close lingering (ingress.h) */
    char client[CLIENT_ADDR_MAX];
};

/* A connection libmicrohttpd has closed whose input is still drained (a dup of its socket). */
struct lingering {
    int fd;
    int64_t deadline_ms;
    size_t read;
};

struct source_stats {
    sl_series_t *requests[N_STATUSES];
    sl_series_t *bytes;
    sl_series_t *latency;
    sl_series_t *replays;
    sl_series_t *shed;
};

struct request {
    ingress_t *ing;
    struct MHD_Connection *conn;
    struct conn_slot *slot;
    const source_t *src;
    struct source_stats *stats;
    int64_t started_ns;
    /* body */
    char *body;
    size_t len, cap;
    /* result: written by the delivery report before it resumes the connection */
    _Atomic int state;
    bool delivered;
    unsigned refused; /* 413 or 400: Kafka refused the record itself (no retry can help) */
    enum unavailable why;
    int64_t produced_ns;
    char *id;
    char kafka_error[160];
    struct replay_ticket *ticket; /* a guarded source's claim (replay.h), or NULL */
};

struct ingress {
    struct ingress_settings s;
    struct sl_kafka_settings kafka;
    const source_set_t *sources;
    char topic[SL_TOPIC_NAME_MAX];
    sl_producer_t *producer;
    replay_t *replay; /* NULL when no source has a replay guard */
    pthread_rwlock_t gate;
    bool gate_closed; /* under gate (write) */
    struct MHD_Daemon *daemon;
    MHD_socket listen_fd; /* ours once quiesced */
    int port;

    /* metrics */
    struct source_stats *stats; /* one per source, then one for UNKNOWN_SOURCE */
    sl_series_t *in_flight_gauge, *queue_gauge, *conn_gauge, *slow_dropped;
    sl_series_t *delivery_ok, *delivery_failed;

    /* prebuilt replies, shared by every request (libmicrohttpd counts references) */
    struct MHD_Response *r_not_found, *r_method, *r_too_large, *r_media, *r_batch;
    struct MHD_Response *r_unavailable[UNAV_INTERNAL + 1];
    struct MHD_Response *r_shed; /* 429 with Retry-After; NULL without admission control */

    sl_lagwatch_t *admission; /* NULL without admission control */
    sl_series_t *admission_lag;

    atomic_bool stopping, stopped, kafka_ok;
    atomic_long in_flight; /* requests with a context: body read, or waiting for Kafka */
    atomic_long waiting;   /* suspended requests whose delivery report has not resumed them */
    atomic_long connections;

    pthread_mutex_t slots_lock;
    struct conn_slot *slots;
    struct lingering lingering[INGRESS_LINGER_MAX]; /* under slots_lock */
    size_t n_lingering;

    /* "connection limit reached", rate-limited (under limit_lock) */
    pthread_mutex_t limit_lock;
    int64_t limit_logged_ms;
    unsigned long limit_suppressed;
    sl_series_t *limit_dropped;

    pthread_t keeper;
    bool keeper_running;
    pthread_mutex_t keeper_lock;
    pthread_cond_t keeper_cond;
    bool keeper_stop;
};

/* ---- helpers -------------------------------------------------------------------------------- */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ms(void)
{
    return now_ns() / 1000000;
}

static size_t status_index(unsigned status)
{
    for (size_t i = 0; i < N_STATUSES; i++)
        if (statuses[i] == status)
            return i;
    return N_STATUSES - 1; /* only 503 is left: every other status is in the table */
}

static const char *lookup_header(void *opaque, const char *name)
{
    return MHD_lookup_connection_value(opaque, MHD_HEADER_KIND, name);
}

static struct conn_slot *slot_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

static void slot_deadline(struct conn_slot *slot, int64_t deadline_ms)
{
    if (slot)
        atomic_store_explicit(&slot->deadline_ms, deadline_ms, memory_order_relaxed);
}

static void client_address(struct MHD_Connection *conn, char *out, size_t size)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = info ? info->client_addr : NULL;
    snprintf(out, size, "?");
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)size);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)size);
}

static void update_in_flight(ingress_t *ing, long delta)
{
    long n = atomic_fetch_add(&ing->in_flight, delta) + delta;
    sl_series_set(ing->in_flight_gauge, (double)n);
}

/* ---- replies -------------------------------------------------------------------------------- */

static struct MHD_Response *json_response(const char *body, size_t len,
                                          enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, mode);
    if (r &&
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") != MHD_YES) {
        MHD_destroy_response(r);
        r = NULL;
    }
    return r;
}

/* A fixed error reply, built once. `extra_name`/`extra_value` add one header (may be NULL). */
static struct MHD_Response *error_response(const char *error, const char *detail,
                                           const char *extra_name, const char *extra_value)
{
    char body[REPLY_ERROR_MAX];
    size_t len = reply_error_json(body, sizeof(body), error, detail);
    struct MHD_Response *r = json_response(body, len, MHD_RESPMEM_MUST_COPY);
    if (r && extra_name && MHD_add_response_header(r, extra_name, extra_value) != MHD_YES) {
        MHD_destroy_response(r);
        r = NULL;
    }
    return r;
}

static void count(struct source_stats *st, unsigned status, int64_t started_ns)
{
    sl_series_add(st->requests[status_index(status)], 1);
    sl_series_observe(st->latency, (double)(now_ns() - started_ns) / 1e9);
}

/* Queues `resp` (not consumed) and accounts for the request. */
static enum MHD_Result answer(struct MHD_Connection *conn, struct source_stats *st, unsigned status,
                              int64_t started_ns, struct MHD_Response *resp)
{
    count(st, status, started_ns);
    if (!resp)
        return MHD_NO; /* a prebuilt reply could not be made: drop the connection */
    return MHD_queue_response(conn, status, resp);
}

/* One log line for a rejected request: status, code, source, client, reason. */
static void log_rejected(struct MHD_Connection *conn, const char *source, unsigned status,
                         const char *code, const char *detail)
{
    enum sl_log_level level = status >= 500 ? SL_LOG_WARN : SL_LOG_INFO;
    if (!sl_log_enabled(level))
        return;
    char client[CLIENT_ADDR_MAX];
    client_address(conn, client, sizeof(client));
    sl_log(level, NULL, "rejected: status=%u error=%s source=%s client=%s detail=%s", status, code,
           source, client, detail);
}

/* Marks the connection to be closed lingering once libmicrohttpd closes it. */
static void linger_on_close(struct MHD_Connection *conn)
{
    struct conn_slot *slot = slot_of(conn);
    if (slot)
        atomic_store(&slot->linger, true);
}

/* A reply built for this request (its detail varies), logged as a rejection. With `close`, the
 * connection is closed after it, lingering. */
static enum MHD_Result reject_as(struct MHD_Connection *conn, struct source_stats *st,
                                 const char *source, int64_t started_ns, unsigned status,
                                 const char *code, const char *detail, bool close)
{
    char body[REPLY_ERROR_MAX];
    size_t len = reply_error_json(body, sizeof(body), code, detail);
    struct MHD_Response *r = json_response(body, len, MHD_RESPMEM_MUST_COPY);
    char retry[16];
    snprintf(retry, sizeof(retry), "%d", INGRESS_RETRY_AFTER_S);
    if (r && status == MHD_HTTP_SERVICE_UNAVAILABLE)
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, retry);
    if (r && close && MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close") != MHD_YES) {
        MHD_destroy_response(r);
        r = NULL;
    }
    if (close)
        linger_on_close(conn);
    log_rejected(conn, source, status, code, detail);
    enum MHD_Result rc = answer(conn, st, status, started_ns, r);
    if (r)
        MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result reject(struct MHD_Connection *conn, struct source_stats *st,
                              const char *source, int64_t started_ns, unsigned status,
                              const char *code, const char *detail)
{
    return reject_as(conn, st, source, started_ns, status, code, detail, false);
}

/* A prebuilt reply, logged as a rejection. */
static enum MHD_Result reject_fixed(struct MHD_Connection *conn, struct source_stats *st,
                                    const char *source, int64_t started_ns, unsigned status,
                                    const char *code, const char *detail, struct MHD_Response *resp)
{
    log_rejected(conn, source, status, code, detail);
    return answer(conn, st, status, started_ns, resp);
}

static const char *const unavailable_detail[] = {
    [UNAV_KAFKA] = "the event could not be written to Kafka in time; retry later",
    [UNAV_QUEUE_FULL] = "the Kafka producer queue is full; retry later",
    [UNAV_STOPPING] = "this instance is shutting down; retry",
    [UNAV_INTERNAL] = "internal error (out of memory); retry later",
};

static enum MHD_Result reject_unavailable(ingress_t *ing, struct MHD_Connection *conn,
                                          struct source_stats *st, const char *source,
                                          int64_t started_ns, enum unavailable why,
                                          const char *log_detail)
{
    const char *code = why == UNAV_STOPPING   ? REPLY_SHUTTING_DOWN
                       : why == UNAV_INTERNAL ? REPLY_INTERNAL
                                              : REPLY_KAFKA_UNAVAILABLE;
    return reject_fixed(conn, st, source, started_ns, MHD_HTTP_SERVICE_UNAVAILABLE, code,
                        log_detail ? log_detail : unavailable_detail[why], ing->r_unavailable[why]);
}

/* Answers a request whose body is still arriving, and has its connection closed (the caller
 * returns MHD_NO): libmicrohttpd 0.9.75 cannot queue a reply before the whole body is read, so
 * the reply is written to the socket here. It is small, and the socket's send buffer has room:
 * libmicrohttpd sends a reply in full before it reads the next request. */
static enum MHD_Result answer_now(struct request *req, unsigned status, const char *code,
                                  const char *detail)
{
    char body[REPLY_ERROR_MAX], head[256];
    size_t len = reply_error_json(body, sizeof(body), code, detail);
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %u %s\r\nConnection: close\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n%s\r\n",
                     status, MHD_get_reason_phrase_for(status), len,
                     status == MHD_HTTP_SERVICE_UNAVAILABLE ? "Retry-After: 5\r\n" : "");
    _Static_assert(INGRESS_RETRY_AFTER_S == 5, "the Retry-After above");
    log_rejected(req->conn, source_name(req->src), status, code, detail);
    count(req->stats, status, req->started_ns);
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (info) {
        struct iovec iov[2] = {{head, (size_t)n}, {body, len}};
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
        ssize_t sent = sendmsg(info->connect_fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent != (ssize_t)((size_t)n + len))
            SL_WARN("the %u reply could not be written in full (%zd bytes); closing", status, sent);
    }
    linger_on_close(req->conn);
    return MHD_NO;
}

/* ---- framing -------------------------------------------------------------------------------- */

struct framing {
    unsigned content_length, transfer_encoding; /* how many of each header */
    const char *te;                             /* the (first) Transfer-Encoding */
    const char *bad;                            /* why a header is refused */
#if CHECK_LINE_ENDS
    const char *next, *end; /* where the next header line must start; the section's end */
#endif
};

#if CHECK_LINE_ENDS
/* libmicrohttpd 0.9.75 parses the header section in its read buffer, in place: each line end
 * becomes NUL bytes (CR LF two, a bare LF one), each header's value is the text up to the
 * first NUL (a NUL in the value cuts it short, "secret\0junk" reads "secret"), and the section
 * runs from the method to just past the empty line (MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE).
 * So the request is made of CR LF-terminated lines with no NUL in them exactly when the request
 * line's version and every value, in order, end with two NULs right where the next line (or,
 * after the last, the empty line) starts. A folded (obs-fold) line is copied elsewhere by
 * libmicrohttpd and fails the same check. */
static bool line_ends_at(struct framing *f, const char *eol)
{
    if ((uintptr_t)eol + 2 > (uintptr_t)f->end || eol[0] != '\0' || eol[1] != '\0') {
        f->bad = "a line end is not CR LF, or a header holds a NUL byte or is folded";
        return false;
    }
    f->next = eol + 2;
    return true;
}
#endif

static enum MHD_Result check_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    size_t key_size, const char *value, size_t value_size)
{
    struct framing *f = cls;
    (void)kind;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        f->content_length++;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        if (!f->transfer_encoding++)
            f->te = value;
    }
    if (value && memchr(value, '\r', value_size)) {
        f->bad = "a header value holds a bare CR";
        return MHD_NO;
    }
#if CHECK_LINE_ENDS
    if (key != f->next || !value || (uintptr_t)value < (uintptr_t)key + key_size) {
        f->bad = "a line end is not CR LF, or a header holds a NUL byte or is folded";
        return MHD_NO;
    }
    if (!line_ends_at(f, value + value_size))
        return MHD_NO;
#else
    (void)key_size;
#endif
    return MHD_YES;
}

/* The request smuggling primitives that libmicrohttpd's strict mode lets through, checked once
 * the headers are in. Returns 0, or the status (400, 501) with *detail. */
static unsigned check_framing(struct MHD_Connection *conn, const char *method, const char *version,
                              const char **detail)
{
    struct framing f = {0};
#if CHECK_LINE_ENDS
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    f.end = info ? method + info->header_size : method;
    if ((uintptr_t)version < (uintptr_t)method || (uintptr_t)version >= (uintptr_t)f.end ||
        !line_ends_at(&f, version + strlen(version))) {
        *detail = "the request line does not end with CR LF";
        return MHD_HTTP_BAD_REQUEST;
    }
#else
    (void)method, (void)version;
#endif
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, check_header, &f);
#if CHECK_LINE_ENDS
    if (!f.bad && (f.next + 2 != f.end || f.next[0] != '\0' || f.next[1] != '\0'))
        f.bad = "a line end is not CR LF, or a header holds a NUL byte or is folded";
#endif
    *detail = f.bad;
    if (f.bad)
        return MHD_HTTP_BAD_REQUEST;
    if (f.content_length > 1) {
        *detail = "more than one Content-Length header";
        return MHD_HTTP_BAD_REQUEST;
    }
    if (f.transfer_encoding && f.content_length) {
        *detail = "both Content-Length and Transfer-Encoding";
        return MHD_HTTP_BAD_REQUEST;
    }
    if (f.transfer_encoding > 1 || (f.te && strcasecmp(f.te, "chunked") != 0)) {
        *detail = "the only Transfer-Encoding accepted is chunked";
        return MHD_HTTP_NOT_IMPLEMENTED;
    }
    return 0;
}

/* ---- the delivery report -------------------------------------------------------------------- */

_Static_assert(INGRESS_CONNECTION_MEMORY + 16 * 1024 <= SL_PIPELINE_RECORD_ALLOWANCE,
               "a record's headers (copies of request headers, plus Sluice's own) must fit in "
               "the allowance that the pipeline check reserves next to max_body_bytes");

/* The status for a produce error: 413 or 400 when Kafka refused the record itself (a permanent
 * error: the sender must not retry it), 0 when a retry may succeed (a 503). */
static unsigned refused_status(const struct sl_err *err)
{
    if (err->retriable)
        return 0;
    return err->code == SL_ERR_TOO_LARGE ? MHD_HTTP_CONTENT_TOO_LARGE
           : err->code == SL_ERR_INVALID ? MHD_HTTP_BAD_REQUEST
                                         : 0;
}

static void on_delivery(void *opaque, int32_t partition, int64_t offset, const struct sl_err *err)
{
    struct request *req = opaque;
    ingress_t *ing = req->ing;
    double secs = (double)(now_ns() - req->produced_ns) / 1e9;
    (void)partition, (void)offset;
    req->delivered = !err;
    if (err) {
        req->why = UNAV_KAFKA;
        req->refused = refused_status(err);
        snprintf(req->kafka_error, sizeof(req->kafka_error), "%.*s",
                 (int)sizeof(req->kafka_error) - 1, err->msg);
    }
    sl_series_observe(err ? ing->delivery_failed : ing->delivery_ok, secs);
    atomic_store_explicit(&req->state, REQ_DONE, memory_order_release);
    /* From here on the request belongs to its connection thread again. */
    MHD_resume_connection(req->conn);
    atomic_fetch_sub(&ing->waiting, 1);
}

/* ---- the request path ----------------------------------------------------------------------- */

/* Names that may be echoed in a 404: the source-name alphabet only. */
static bool echoable(const char *name)
{
    size_t n = 0;
    for (const char *p = name; *p; p++, n++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return false;
    return n >= 1 && n <= 100;
}

static enum MHD_Result on_headers(ingress_t *ing, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, void **con_cls)
{
    int64_t started = now_ns();
    struct conn_slot *slot = slot_of(conn);
    struct source_stats *st = &ing->stats[source_set_count(ing->sources)]; /* unknown */
    size_t plen = strlen(INGRESS_EVENTS_PATH), index;

    /* Framing first: where this request ends (and the next begins) must be beyond doubt. */
    const char *framing = NULL;
    unsigned bad = check_framing(conn, method, version, &framing);
    if (bad)
        return reject_as(conn, st, UNKNOWN_SOURCE, started, bad,
                         bad == MHD_HTTP_NOT_IMPLEMENTED ? REPLY_NOT_IMPLEMENTED
                                                         : REPLY_BAD_REQUEST,
                         framing, true);

    if (strncmp(url, INGRESS_EVENTS_PATH, plen) != 0)
        return reject_fixed(conn, st, UNKNOWN_SOURCE, started, MHD_HTTP_NOT_FOUND, REPLY_NOT_FOUND,
                            "no such path", ing->r_not_found);
    const char *name = url + plen;
    const source_t *src = source_set_find(ing->sources, name, &index);
    if (!src) {
        char detail[160];
        if (echoable(name))
            snprintf(detail, sizeof(detail), "no source named '%s' is configured", name);
        else
            snprintf(detail, sizeof(detail), "no source by that name is configured");
        return reject(conn, st, UNKNOWN_SOURCE, started, MHD_HTTP_NOT_FOUND, REPLY_UNKNOWN_SOURCE,
                      detail);
    }
    name = source_name(src);
    st = &ing->stats[index];
    if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
        return reject_fixed(conn, st, name, started, MHD_HTTP_METHOD_NOT_ALLOWED, REPLY_METHOD,
                            "use POST", ing->r_method);
    if (atomic_load(&ing->stopping))
        return reject_unavailable(ing, conn, st, name, started, UNAV_STOPPING, NULL);
    if (ing->admission && source_sheds(src) &&
        sl_lagwatch_total(ing->admission) > ing->s.admission_max_lag) {
        sl_series_add(st->shed, 1);
        return reject_fixed(conn, st, name, started, MHD_HTTP_TOO_MANY_REQUESTS, REPLY_OVERLOADED,
                            "validate's consumer lag is over ingress.admission.max_lag",
                            ing->r_shed);
    }

    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long content_length = cl ? strtoull(cl, NULL, 10) : 0;
    if (content_length > ing->s.max_body_bytes) {
        linger_on_close(conn); /* the client may be sending the body already */
        return reject_fixed(conn, st, name, started, MHD_HTTP_CONTENT_TOO_LARGE, REPLY_TOO_LARGE,
                            "Content-Length over the limit", ing->r_too_large);
    }
    enum cehttp_media media = cehttp_media_of(
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE));
    if (media == CEHTTP_MEDIA_OTHER || media == CEHTTP_MEDIA_BATCH)
        return reject_fixed(
            conn, st, name, started, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, REPLY_MEDIA_TYPE,
            media == CEHTTP_MEDIA_BATCH ? "CloudEvents batch mode" : "Content-Type is not JSON",
            media == CEHTTP_MEDIA_BATCH ? ing->r_batch : ing->r_media);
    /* An API key needs no body: refuse a bad one before reading it. */
    if (source_scheme(src) == VERIFY_API_KEY) {
        const char *reason = NULL;
        int rc =
            verify_check(source_verifier(src), lookup_header, conn, NULL, 0, time(NULL), &reason);
        if (rc == VERIFY_REJECTED)
            return reject(conn, st, name, started, MHD_HTTP_UNAUTHORIZED, REPLY_UNAUTHORIZED,
                          reason);
        if (rc != VERIFY_OK)
            return reject_unavailable(ing, conn, st, name, started, UNAV_INTERNAL, reason);
    }

    struct request *req = calloc(1, sizeof(*req));
    if (!req)
        return reject_unavailable(ing, conn, st, name, started, UNAV_INTERNAL, NULL);
    atomic_init(&req->state, REQ_READING);
    req->ing = ing;
    req->conn = conn;
    req->slot = slot;
    req->src = src;
    req->stats = st;
    req->started_ns = started;
    /* Sized by Content-Length when there is one (it is within the limit), so the body is
     * copied once; a chunked body starts small and doubles. */
    req->cap = content_length ? (size_t)content_length : INGRESS_BODY_START;
    /* The body has read_timeout to arrive, however it trickles. */
    slot_deadline(slot, started / 1000000 + ing->s.read_timeout_ms);
    update_in_flight(ing, 1);
    *con_cls = req;
    return MHD_YES;
}

static enum MHD_Result on_body_chunk(struct request *req, const char *data, size_t size)
{
    ingress_t *ing = req->ing;
    sl_series_add(req->stats->bytes, (double)size);
    /* Only a chunked body can get here: a Content-Length over the limit was refused. */
    if (req->len + size > ing->s.max_body_bytes) {
        char detail[96];
        snprintf(detail, sizeof(detail), "the body is larger than %zu bytes",
                 ing->s.max_body_bytes);
        return answer_now(req, MHD_HTTP_CONTENT_TOO_LARGE, REPLY_TOO_LARGE, detail);
    }
    if (!req->body || req->len + size > req->cap) {
        size_t cap = req->cap;
        while (cap < req->len + size)
            cap *= 2;
        if (cap > ing->s.max_body_bytes)
            cap = ing->s.max_body_bytes;
        char *body = realloc(req->body, cap);
        if (!body)
            return answer_now(req, MHD_HTTP_SERVICE_UNAVAILABLE, REPLY_INTERNAL,
                              unavailable_detail[UNAV_INTERNAL]);
        req->body = body;
        req->cap = cap;
    }
    memcpy(req->body + req->len, data, size);
    req->len += size;
    return MHD_YES;
}

struct ce_headers {
    struct cehttp_header h[INGRESS_CE_HEADERS_MAX];
    size_t n;
    bool overflow;
};

static enum MHD_Result collect_ce(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    struct ce_headers *c = cls;
    (void)kind;
    if (strncasecmp(key, CEHTTP_HEADER_PREFIX, strlen(CEHTTP_HEADER_PREFIX)) != 0)
        return MHD_YES;
    if (c->n == INGRESS_CE_HEADERS_MAX) {
        c->overflow = true;
        return MHD_NO;
    }
    c->h[c->n++] = (struct cehttp_header){key, value ? value : ""};
    return MHD_YES;
}

/* Suspends the connection and queues the record; the delivery report resumes it. */
static void produce(ingress_t *ing, struct request *req, struct envelope *env,
                    rd_kafka_headers_t *hdrs)
{
    struct sl_err err;
    int rc = -1;
    atomic_store(&req->state, REQ_WAITING);
    atomic_fetch_add(&ing->waiting, 1);
    /* Suspend before producing: the report may come on the poller thread before this returns,
     * and resuming a connection that is not suspended is undefined. */
    MHD_suspend_connection(req->conn);
    req->produced_ns = now_ns();
    pthread_rwlock_rdlock(&ing->gate);
    bool closed = ing->gate_closed;
    if (!closed)
        rc = sl_producer_send(ing->producer, ing->topic, env->key, env->key_len, env->value,
                              env->value_len, hdrs, req, &err);
    pthread_rwlock_unlock(&ing->gate);
    if (rc == 0)
        return;
    rd_kafka_headers_destroy(hdrs);
    req->why = closed                           ? UNAV_STOPPING
               : err.code == SL_ERR_UNAVAILABLE ? UNAV_QUEUE_FULL
                                                : UNAV_KAFKA;
    if (!closed) {
        req->refused = refused_status(&err);
        snprintf(req->kafka_error, sizeof(req->kafka_error), "%.*s",
                 (int)sizeof(req->kafka_error) - 1, err.msg);
    }
    atomic_store(&req->state, REQ_DONE);
    MHD_resume_connection(req->conn);
    atomic_fetch_sub(&ing->waiting, 1);
}

/* ---- the replay guard (replay.h) ---------------------------------------------------------- */

static enum MHD_Result on_result(ingress_t *ing, struct request *req);

/* Claims the request's signed content before its record is written. Returns 0 when the record
 * is to be written (the claim is held in req->ticket); otherwise the request has been answered
 * with *answered: a replay of a written request gets the first copy's 202 and writes nothing,
 * one racing a copy in flight gets 503, and so does a Redis that cannot answer (fail closed). */
static int guard(ingress_t *ing, struct request *req, const unsigned char *digest,
                 const char *event_id, enum MHD_Result *answered)
{
    const char *name = source_name(req->src);
    char first[REPLAY_ID_MAX];
    enum replay_result result;
    struct sl_err err;
    if (!req->ticket && !(req->ticket = malloc(sizeof(*req->ticket)))) {
        *answered = reject_unavailable(ing, req->conn, req->stats, name, req->started_ns,
                                       UNAV_INTERNAL, NULL);
        return -1;
    }
    if (replay_claim(ing->replay, name, digest, event_id, source_replay_guard_ms(req->src),
                     req->ticket, &result, first, sizeof(first), &err) != 0) {
        *answered = reject(req->conn, req->stats, name, req->started_ns,
                           MHD_HTTP_SERVICE_UNAVAILABLE, REPLY_GUARD_UNAVAILABLE, err.msg);
        return -1;
    }
    if (result == REPLAY_FIRST)
        return 0;
    sl_series_add(req->stats->replays, 1);
    if (result == REPLAY_IN_FLIGHT) {
        *answered =
            reject(req->conn, req->stats, name, req->started_ns, MHD_HTTP_SERVICE_UNAVAILABLE,
                   REPLY_IN_FLIGHT, "the same signed request is being written now; retry");
        return -1;
    }
    sl_log(SL_LOG_INFO, first,
           "replay: source=%s the same signed request was accepted before: answered with its "
           "202, nothing written",
           name);
    char *id = strdup(first);
    if (!id) {
        *answered = reject_unavailable(ing, req->conn, req->stats, name, req->started_ns,
                                       UNAV_INTERNAL, NULL);
        return -1;
    }
    free(req->id);
    req->id = id;
    req->delivered = true;
    atomic_store(&req->state, REQ_DONE);
    *answered = on_result(ing, req);
    return -1;
}

/* Settles a held claim once the record's fate is known (or its connection is gone). */
static void settle(ingress_t *ing, struct request *req)
{
    if (!req->ticket || !req->ticket->held)
        return;
    bool written = atomic_load(&req->state) == REQ_DONE && req->delivered;
    struct sl_err err;
    if (replay_settle(ing->replay, req->ticket, written, &err) != 0)
        sl_log(SL_LOG_WARN, req->id,
               "replay guard: %s; the claim expires on its own within %d ms (source=%s)", err.msg,
               ing->s.request_timeout_ms + REPLAY_PENDING_GRACE_MS, source_name(req->src));
}

static enum MHD_Result on_body_complete(ingress_t *ing, struct request *req)
{
    struct MHD_Connection *conn = req->conn;
    const char *name = source_name(req->src);
    slot_deadline(req->slot, 0); /* the client is done; the server is due now */

    /* A guarded source's request is remembered by the digest of its signed content. */
    unsigned char digest[VERIFY_DIGEST_LEN];
    bool guarded = source_replay_guard_ms(req->src) > 0;
    if (source_scheme(req->src) != VERIFY_API_KEY) {
        const char *reason = NULL;
        int rc = verify_check_digest(source_verifier(req->src), lookup_header, conn, req->body,
                                     req->len, time(NULL), guarded ? digest : NULL, &reason);
        if (rc == VERIFY_REJECTED)
            return reject(conn, req->stats, name, req->started_ns, MHD_HTTP_UNAUTHORIZED,
                          REPLY_UNAUTHORIZED, reason);
        if (rc != VERIFY_OK)
            return reject_unavailable(ing, conn, req->stats, name, req->started_ns, UNAV_INTERNAL,
                                      reason);
    }

    struct ce_headers ce = {.n = 0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_ce, &ce);
    if (ce.overflow) {
        char detail[96];
        snprintf(detail, sizeof(detail), "more than %d ce- headers", INGRESS_CE_HEADERS_MAX);
        return reject(conn, req->stats, name, req->started_ns, MHD_HTTP_BAD_REQUEST,
                      REPLY_INVALID_EVENT, detail);
    }
    struct envelope_request rq = {
        .source = req->src,
        .content_type =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
        .traceparent = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "traceparent"),
        .headers = ce.h,
        .n_headers = ce.n,
        .header = lookup_header,
        .header_opaque = conn,
        .body = req->body,
        .body_len = req->len,
    };
    clock_gettime(CLOCK_REALTIME, &rq.received);
    struct envelope env;
    struct sl_err err;
    const char *code = NULL;
    int status = envelope_build(&rq, &env, &code, &err);
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
        return reject_unavailable(ing, conn, req->stats, name, req->started_ns, UNAV_INTERNAL,
                                  err.msg);
    if (status != 0)
        return reject(conn, req->stats, name, req->started_ns, (unsigned)status, code, err.msg);

    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(env.ce.n);
    if (sl_ce_to_headers(&env.ce, hdrs, &err) != 0 || !(req->id = strdup(env.id))) {
        rd_kafka_headers_destroy(hdrs);
        envelope_free(&env);
        return reject_unavailable(ing, conn, req->stats, name, req->started_ns, UNAV_INTERNAL,
                                  NULL);
    }
    enum MHD_Result answered;
    if (guarded && guard(ing, req, digest, env.id, &answered) != 0) {
        rd_kafka_headers_destroy(hdrs);
        envelope_free(&env);
        return answered;
    }
    produce(ing, req, &env, hdrs);
    envelope_free(&env); /* the producer copied key and value */
    return MHD_YES;
}

/* The connection was resumed by the delivery report (or by produce() on a failed send). */
static enum MHD_Result on_result(ingress_t *ing, struct request *req)
{
    const char *name = source_name(req->src);
    settle(ing, req);
    if (!req->delivered && req->refused) {
        char detail[sizeof(req->kafka_error) + 64];
        snprintf(detail, sizeof(detail), "the event cannot be written to Kafka, now or later: %s",
                 req->kafka_error);
        return reject(req->conn, req->stats, name, req->started_ns, req->refused,
                      req->refused == MHD_HTTP_CONTENT_TOO_LARGE ? REPLY_TOO_LARGE
                                                                 : REPLY_INVALID_EVENT,
                      detail);
    }
    if (!req->delivered)
        return reject_unavailable(ing, req->conn, req->stats, name, req->started_ns, req->why,
                                  req->kafka_error[0] ? req->kafka_error : NULL);
    size_t len;
    char *body = reply_accepted_json(req->id, &len);
    struct MHD_Response *r = body ? json_response(body, len, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!r) {
        /* The record is in Kafka but the 202 cannot be built: the client retries and dedup
         * downstream (by the idempotency key) absorbs the copy. */
        free(body);
        return reject_unavailable(ing, req->conn, req->stats, name, req->started_ns, UNAV_INTERNAL,
                                  "could not build the 202 reply");
    }
    sl_log(SL_LOG_DEBUG, req->id, "accepted: source=%s bytes=%zu", name, req->len);
    enum MHD_Result rc = answer(req->conn, req->stats, MHD_HTTP_ACCEPTED, req->started_ns, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    ingress_t *ing = cls;
    struct request *req = *con_cls;
    if (!req)
        return on_headers(ing, conn, url, method, version, con_cls);
    if (*upload_data_size) {
        enum MHD_Result rc = on_body_chunk(req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return rc;
    }
    switch (atomic_load_explicit(&req->state, memory_order_acquire)) {
    case REQ_READING:
        return on_body_complete(ing, req);
    case REQ_DONE:
        return on_result(ing, req);
    default: /* not called while suspended */
        return MHD_YES;
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    ingress_t *ing = cls;
    struct request *req = *con_cls;
    (void)toe;
    /* The next request on this connection must have its headers in within idle_timeout (a
     * silent client) plus read_timeout (a trickling one). */
    slot_deadline(slot_of(conn), now_ms() + ing->s.idle_timeout_ms + ing->s.read_timeout_ms);
    if (!req)
        return;
    settle(ing, req); /* the client left before its answer */
    free(req->ticket);
    free(req->body);
    free(req->id);
    free(req);
    *con_cls = NULL;
    update_in_flight(ing, -1);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    ingress_t *ing = cls;
    struct conn_slot *slot = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        atomic_fetch_add(&ing->connections, 1);
        /* Without a slot the connection still has libmicrohttpd's idle timeout. */
        if (!info || !(slot = calloc(1, sizeof(*slot))))
            return;
        slot->fd = info->connect_fd;
        client_address(conn, slot->client, sizeof(slot->client));
        atomic_init(&slot->deadline_ms, now_ms() + ing->s.read_timeout_ms);
        pthread_mutex_lock(&ing->slots_lock);
        slot->next = ing->slots;
        if (ing->slots)
            ing->slots->prev = slot;
        ing->slots = slot;
        pthread_mutex_unlock(&ing->slots_lock);
        *socket_context = slot;
        return;
    }
    atomic_fetch_sub(&ing->connections, 1);
    if (!slot)
        return;
    /* Unlinked under the lock before libmicrohttpd closes the socket, so the keeper never
     * shuts down a descriptor that another connection may have been given since. */
    pthread_mutex_lock(&ing->slots_lock);
    /* libmicrohttpd has shut down the sending side (the client sees the end of the answer) and
     * closes the socket next; a copy of the descriptor keeps it open while the keeper drains
     * what the client still sends (ingress.h, "closing"). */
    if (atomic_load(&slot->linger) && ing->n_lingering < INGRESS_LINGER_MAX) {
        int fd = dup(slot->fd);
        if (fd >= 0)
            ing->lingering[ing->n_lingering++] =
                (struct lingering){fd, now_ms() + INGRESS_LINGER_MS, 0};
    }
    if (slot->prev)
        slot->prev->next = slot->next;
    else
        ing->slots = slot->next;
    if (slot->next)
        slot->next->prev = slot->prev;
    pthread_mutex_unlock(&ing->slots_lock);
    free(slot);
    *socket_context = NULL;
}

/* "connection limit reached" (the total or the per-address limit; libmicrohttpd says the same
 * for both): counted always, logged at most once per INGRESS_LIMIT_LOG_MS with the number of
 * lines left out since the last, so a flood of connections cannot flood the log. `flush` (from
 * the keeper) reports the ones left out once the interval is over. */
static void limit_reached(ingress_t *ing, bool flush)
{
    int64_t now = now_ms();
    unsigned long suppressed = 0;
    bool log = false;
    pthread_mutex_lock(&ing->limit_lock);
    if (!flush)
        ing->limit_suppressed++;
    if (ing->limit_suppressed && now - ing->limit_logged_ms >= INGRESS_LIMIT_LOG_MS) {
        suppressed = ing->limit_suppressed - !flush;
        ing->limit_suppressed = 0;
        ing->limit_logged_ms = now;
        log = true;
    }
    pthread_mutex_unlock(&ing->limit_lock);
    if (!flush)
        sl_series_add(ing->limit_dropped, 1);
    if (log && !flush)
        SL_WARN("http: connection limit reached (max_connections=%u, max_connections_per_ip=%u): "
                "new connections are closed at once; %lu more in the last %d ms",
                ing->s.max_connections, ing->s.max_connections_per_ip, suppressed,
                INGRESS_LIMIT_LOG_MS);
    else if (log)
        SL_WARN("http: connection limit reached %lu more times in the last %d ms", suppressed,
                INGRESS_LIMIT_LOG_MS);
}

/* libmicrohttpd's messages. A client's connection ending early (including the ones the keeper
 * shuts down, already logged as rejected, and the ones ingress closes on purpose after an
 * answer) is routine on a public listener: debug. The connection limit is rate-limited. The
 * rest (accept or epoll failures) are warnings. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    ingress_t *ing = cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    if (strstr(msg, "reached connection limit")) {
        limit_reached(ing, false);
        return;
    }
    bool client_gone =
        (strstr(msg, "onnection") && (strstr(msg, "closed") || strstr(msg, "reset"))) ||
        strstr(msg, "Application reported internal error");
    sl_log(client_gone ? SL_LOG_DEBUG : SL_LOG_WARN, NULL, "http: %s", msg);
}

/* ---- the keeper ----------------------------------------------------------------------------- */

/* Shuts down the sockets of connections past their read deadline. libmicrohttpd then sees the
 * connection end and closes it on its own thread. The lock is held only for the sweep; the log
 * lines (one per connection, at most REAP_LOG_MAX a tick, then a count) are written after. */
#define REAP_LOG_MAX 16
static void reap_slow(ingress_t *ing)
{
    char clients[REAP_LOG_MAX][CLIENT_ADDR_MAX];
    size_t reaped = 0;
    int64_t now = now_ms();
    pthread_mutex_lock(&ing->slots_lock);
    for (struct conn_slot *slot = ing->slots; slot; slot = slot->next) {
        int64_t deadline = atomic_load_explicit(&slot->deadline_ms, memory_order_relaxed);
        if (!deadline || now <= deadline)
            continue;
        atomic_store(&slot->deadline_ms, 0);
        shutdown(slot->fd, SHUT_RDWR);
        if (reaped < REAP_LOG_MAX)
            memcpy(clients[reaped], slot->client, CLIENT_ADDR_MAX);
        reaped++;
    }
    pthread_mutex_unlock(&ing->slots_lock);
    sl_series_add(ing->slow_dropped, (double)reaped);
    for (size_t i = 0; i < reaped && i < REAP_LOG_MAX; i++)
        SL_INFO("rejected: connection closed: error=read_timeout client=%s detail=request not "
                "received within %d ms",
                clients[i], ing->s.read_timeout_ms);
    if (reaped > REAP_LOG_MAX)
        SL_INFO("rejected: %zu more connections closed for the same reason", reaped - REAP_LOG_MAX);
}

/* Drains the lingering connections, one buffer each per tick (so the lock is held briefly
 * however fast clients send); closes each at its end, its deadline, or its byte bound. With
 * `all`, closes every one (the stop). */
static void drain_lingering(ingress_t *ing, bool all)
{
    char buf[16384];
    int64_t now = now_ms();
    pthread_mutex_lock(&ing->slots_lock);
    for (size_t i = 0; i < ing->n_lingering;) {
        struct lingering *l = &ing->lingering[i];
        bool done = all || now >= l->deadline_ms;
        if (!done) {
            ssize_t n = recv(l->fd, buf, sizeof(buf), MSG_DONTWAIT);
            bool again = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
            done = !again && (n <= 0 || (l->read += (size_t)n) > INGRESS_LINGER_READ_MAX);
        }
        if (!done) {
            i++;
            continue;
        }
        close(l->fd);
        *l = ing->lingering[--ing->n_lingering];
    }
    pthread_mutex_unlock(&ing->slots_lock);
}

static void probe_kafka(ingress_t *ing)
{
    bool ok = sl_kafka_reachable(sl_producer_handle(ing->producer), INGRESS_PROBE_TIMEOUT_MS);
    bool was = atomic_exchange(&ing->kafka_ok, ok);
    if (ok && !was)
        SL_INFO("kafka reachable at %s", ing->kafka.brokers);
    else if (!ok && was)
        SL_WARN("kafka unreachable at %s: /readyz reports not ready", ing->kafka.brokers);
}

static void *keeper_main(void *arg)
{
    ingress_t *ing = arg;
    int64_t next_probe = 0;
    pthread_mutex_lock(&ing->keeper_lock);
    while (!ing->keeper_stop) {
        pthread_mutex_unlock(&ing->keeper_lock);
        sl_live_beat(ing->s.live);
        reap_slow(ing);
        drain_lingering(ing, false);
        limit_reached(ing, true);
        if (now_ms() >= next_probe) {
            probe_kafka(ing);
            next_probe = now_ms() + INGRESS_PROBE_INTERVAL_MS;
        }
        sl_series_set(ing->queue_gauge, sl_producer_outstanding(ing->producer));
        sl_series_set(ing->conn_gauge, (double)atomic_load(&ing->connections));
        if (ing->admission)
            sl_series_set(ing->admission_lag, (double)sl_lagwatch_total(ing->admission));
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += INGRESS_KEEPER_TICK_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_mutex_lock(&ing->keeper_lock);
        if (!ing->keeper_stop)
            pthread_cond_timedwait(&ing->keeper_cond, &ing->keeper_lock, &until);
    }
    pthread_mutex_unlock(&ing->keeper_lock);
    return NULL;
}

static void keeper_stop(ingress_t *ing)
{
    drain_lingering(ing, true);
    if (!ing->keeper_running)
        return;
    pthread_mutex_lock(&ing->keeper_lock);
    ing->keeper_stop = true;
    pthread_cond_signal(&ing->keeper_cond);
    pthread_mutex_unlock(&ing->keeper_lock);
    pthread_join(ing->keeper, NULL);
    ing->keeper_running = false;
}

/* ---- settings, start, stop ------------------------------------------------------------------ */

/* `ingress.admission`, and validate's group (the first of sl_lag_groups) when it is on. */
static int admission_settings_load(const sl_conf_t *conf, const struct sl_kafka_settings *kafka,
                                   const sl_conf_node_t *sec, struct ingress_settings *s,
                                   struct sl_err *err)
{
    const sl_conf_node_t *adm = sl_conf_get(sec, "admission");
    static struct sl_lag_group groups[SL_LAG_MAX_GROUPS];
    long long retry_after;
    size_t n;
    s->admission = sl_conf_get(adm, "max_lag") != NULL;
    if (sl_conf_int(conf, adm, "max_lag", 0, 0, 1000000000000LL, &s->admission_max_lag, err) ||
        sl_conf_duration_ms(conf, adm, "retry_after", 30000, 1000, 3600000, &retry_after, err))
        return -1;
    s->admission_retry_after_s = (int)(retry_after / 1000);
    if (!s->admission)
        return 0;
    if (sl_lag_groups(conf, kafka, groups, SL_LAG_MAX_GROUPS, &n, err) != 0)
        return -1;
    s->admission_group = groups[0];
    return 0;
}

int ingress_settings_load(const sl_conf_t *conf, const struct sl_kafka_settings *kafka,
                          struct ingress_settings *s, struct sl_err *err)
{
    const sl_conf_node_t *sec = sl_conf_get(sl_conf_root(conf), "ingress");
    long long body, request, idle, read, conns, per_ip, threads;
    if (sl_conf_str(conf, sec, "listen", "0.0.0.0:8080", &s->listen, err) != 0 ||
        sl_conf_size(conf, sec, "max_body_bytes", SL_PIPELINE_MAX_BODY_DEFAULT, 1, 64 * 1024 * 1024,
                     &body, err) != 0 ||
        sl_conf_duration_ms(conf, sec, "request_timeout", 10000, 100, 300000, &request, err) != 0 ||
        sl_conf_duration_ms(conf, sec, "idle_timeout", 15000, 1000, 3600000, &idle, err) != 0 ||
        sl_conf_duration_ms(conf, sec, "read_timeout", 10000, 1000, 3600000, &read, err) != 0 ||
        sl_conf_int(conf, sec, "max_connections", 1000, 1, 100000, &conns, err) != 0 ||
        sl_conf_int(conf, sec, "max_connections_per_ip", INGRESS_MAX_CONNECTIONS_PER_IP, 0, 100000,
                    &per_ip, err) != 0 ||
        sl_conf_int(conf, sec, "threads", 2, 2, 64, &threads, err) != 0 ||
        admission_settings_load(conf, kafka, sec, s, err) != 0)
        return -1;
    s->max_body_bytes = (size_t)body;
    s->request_timeout_ms = (int)request;
    s->idle_timeout_ms = (int)idle;
    s->read_timeout_ms = (int)read;
    s->max_connections = (unsigned)conns;
    s->max_connections_per_ip = (unsigned)per_ip;
    s->threads = (unsigned)threads;
    return sl_redis_settings(conf, &s->redis_url, &s->redis_timeout_ms, err);
}

static int make_metrics(ingress_t *ing, sl_metrics_t *m, struct sl_err *err)
{
    static const char *const by_source_status[] = {"source", "status", NULL};
    static const char *const by_source[] = {"source", NULL};
    static const char *const by_result[] = {"result", NULL};
    static const char *const by_reason[] = {"reason", NULL};
    sl_metric_t *requests =
        sl_metrics_counter(m, "sluice_ingress_requests_total",
                           "HTTP requests answered, by source and status.", by_source_status);
    sl_metric_t *bytes = sl_metrics_counter(m, "sluice_ingress_request_bytes_total",
                                            "Request body bytes received, by source.", by_source);
    sl_metric_t *latency =
        sl_metrics_histogram(m, "sluice_ingress_request_seconds",
                             "Time from a request's headers to its answer being queued, by source.",
                             by_source, sl_metrics_latency_buckets, sl_metrics_latency_buckets_n);
    sl_metric_t *in_flight =
        sl_metrics_gauge(m, "sluice_ingress_requests_in_flight",
                         "Requests being read or waiting for Kafka's acknowledgement.", NULL);
    sl_metric_t *delivery = sl_metrics_histogram(
        m, "sluice_ingress_kafka_delivery_seconds",
        "Time from producing a record to its delivery report, by result (ok, error).", by_result,
        sl_metrics_latency_buckets, sl_metrics_latency_buckets_n);
    sl_metric_t *queue =
        sl_metrics_gauge(m, "sluice_ingress_producer_queue_depth",
                         "Records queued in the producer, not yet reported.", NULL);
    sl_metric_t *conns =
        sl_metrics_gauge(m, "sluice_ingress_connections", "Open client connections.", NULL);
    sl_metric_t *dropped = sl_metrics_counter(
        m, "sluice_ingress_connections_dropped_total",
        "Connections closed by the server before a request arrived, by reason (read_timeout, "
        "connection_limit).",
        by_reason);
    sl_metric_t *replays = sl_metrics_counter(
        m, "sluice_ingress_replays_total",
        "Requests whose signed content the source's replay guard had seen (answered 202 without "
        "a new record, or 503 while the first copy was being written), by source.",
        by_source);
    sl_metric_t *shed =
        sl_metrics_counter(m, "sluice_ingress_shed_total",
                           "Requests answered 429 by admission control (validate's lag over "
                           "ingress.admission.max_lag), by source.",
                           by_source);
    sl_metric_t *admission_lag = sl_metrics_gauge(
        m, "sluice_ingress_admission_lag",
        "Validate's consumer lag as admission control last read it; -1 while it cannot be read "
        "(everything is admitted then).",
        NULL);
    if (!requests || !bytes || !latency || !in_flight || !delivery || !queue || !conns ||
        !dropped || !replays || !shed || !admission_lag)
        return sl_err_set(err, SL_ERR_NOMEM, "cannot register the ingress metrics");

    size_t n = source_set_count(ing->sources);
    ing->stats = calloc(n + 1, sizeof(*ing->stats));
    if (!ing->stats)
        return sl_err_set(err, SL_ERR_NOMEM, "out of memory");
    /* Every series is made now, so a request only ever follows pointers. */
    for (size_t i = 0; i <= n; i++) {
        const char *name = i < n ? source_name(source_set_item(ing->sources, i)) : UNKNOWN_SOURCE;
        for (size_t j = 0; j < N_STATUSES; j++) {
            char status[8];
            snprintf(status, sizeof(status), "%u", statuses[j]);
            ing->stats[i].requests[j] =
                sl_metric_series(requests, (const char *const[]){name, status});
        }
        ing->stats[i].bytes = sl_metric_series(bytes, (const char *const[]){name});
        ing->stats[i].latency = sl_metric_series(latency, (const char *const[]){name});
        ing->stats[i].replays = sl_metric_series(replays, (const char *const[]){name});
        ing->stats[i].shed = sl_metric_series(shed, (const char *const[]){name});
    }
    ing->in_flight_gauge = sl_metric_series(in_flight, NULL);
    ing->admission_lag = sl_metric_series(admission_lag, NULL);
    sl_series_set(ing->admission_lag, -1);
    ing->delivery_ok = sl_metric_series(delivery, (const char *const[]){"ok"});
    ing->delivery_failed = sl_metric_series(delivery, (const char *const[]){"error"});
    ing->queue_gauge = sl_metric_series(queue, NULL);
    ing->conn_gauge = sl_metric_series(conns, NULL);
    ing->slow_dropped = sl_metric_series(dropped, (const char *const[]){"read_timeout"});
    ing->limit_dropped = sl_metric_series(dropped, (const char *const[]){"connection_limit"});
    return 0;
}

static int make_responses(ingress_t *ing, struct sl_err *err)
{
    char retry[16], detail[160];
    snprintf(retry, sizeof(retry), "%d", INGRESS_RETRY_AFTER_S);
    snprintf(detail, sizeof(detail), "the body is larger than %zu bytes", ing->s.max_body_bytes);
    ing->r_not_found = error_response(REPLY_NOT_FOUND,
                                      "POST events to " INGRESS_EVENTS_PATH "<source>", NULL, NULL);
    ing->r_method = error_response(REPLY_METHOD, "use POST", MHD_HTTP_HEADER_ALLOW, "POST");
    ing->r_too_large = error_response(REPLY_TOO_LARGE, detail, NULL, NULL);
    ing->r_media = error_response(REPLY_MEDIA_TYPE,
                                  "Content-Type must be application/json, application/*+json "
                                  "or application/cloudevents+json",
                                  NULL, NULL);
    ing->r_batch = error_response(REPLY_MEDIA_TYPE,
                                  "CloudEvents batch mode is not supported: send one event per "
                                  "request",
                                  NULL, NULL);
    ing->r_unavailable[UNAV_KAFKA] =
        error_response(REPLY_KAFKA_UNAVAILABLE, unavailable_detail[UNAV_KAFKA],
                       MHD_HTTP_HEADER_RETRY_AFTER, retry);
    ing->r_unavailable[UNAV_QUEUE_FULL] =
        error_response(REPLY_KAFKA_UNAVAILABLE, unavailable_detail[UNAV_QUEUE_FULL],
                       MHD_HTTP_HEADER_RETRY_AFTER, retry);
    ing->r_unavailable[UNAV_INTERNAL] = error_response(
        REPLY_INTERNAL, unavailable_detail[UNAV_INTERNAL], MHD_HTTP_HEADER_RETRY_AFTER, retry);
    /* Stopping: also close the connection, so the client's next try goes to another instance. */
    ing->r_unavailable[UNAV_STOPPING] = error_response(
        REPLY_SHUTTING_DOWN, unavailable_detail[UNAV_STOPPING], MHD_HTTP_HEADER_RETRY_AFTER, retry);
    if (ing->r_unavailable[UNAV_STOPPING] &&
        MHD_add_response_header(ing->r_unavailable[UNAV_STOPPING], MHD_HTTP_HEADER_CONNECTION,
                                "close") != MHD_YES) {
        MHD_destroy_response(ing->r_unavailable[UNAV_STOPPING]);
        ing->r_unavailable[UNAV_STOPPING] = NULL;
    }
    if (ing->s.admission) {
        char shed_retry[16];
        snprintf(shed_retry, sizeof(shed_retry), "%d", ing->s.admission_retry_after_s);
        if (!(ing->r_shed = error_response(REPLY_OVERLOADED,
                                           "the pipeline is behind; this source's events are "
                                           "refused for now: retry after Retry-After seconds",
                                           MHD_HTTP_HEADER_RETRY_AFTER, shed_retry)))
            return sl_err_set(err, SL_ERR_NOMEM, "cannot build the fixed replies");
    }
    if (!ing->r_not_found || !ing->r_method || !ing->r_too_large || !ing->r_media ||
        !ing->r_batch || !ing->r_unavailable[UNAV_KAFKA] || !ing->r_unavailable[UNAV_QUEUE_FULL] ||
        !ing->r_unavailable[UNAV_INTERNAL] || !ing->r_unavailable[UNAV_STOPPING])
        return sl_err_set(err, SL_ERR_NOMEM, "cannot build the fixed replies");
    return 0;
}

static int start_daemon(ingress_t *ing, struct sl_err *err)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (sl_addr_parse(ing->s.listen, &ss, &len, err) != 0) {
        sl_err_prefix(err, "ingress.listen");
        return -1;
    }
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    unsigned idle_s = (unsigned)((ing->s.idle_timeout_ms + 999) / 1000);
    /* The logger comes first, so that libmicrohttpd reports even option errors through it. */
    ing->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_access, ing, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, ing,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, ing->s.threads,
        MHD_OPTION_CONNECTION_LIMIT, ing->s.max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        ing->s.max_connections_per_ip, MHD_OPTION_CONNECTION_TIMEOUT, idle_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)INGRESS_CONNECTION_MEMORY,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, ing, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        ing, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
#if CHECK_LINE_ENDS
        /* 0.9.75: HTTP/1.1 without Host is a 400, no spaces in the request target. */
        MHD_OPTION_STRICT_FOR_CLIENT, 1,
#else
        /* Refuses bare LF, NUL and other framing tricks; compatible with every client that
         * follows the RFCs' MUSTs. */
        MHD_OPTION_CLIENT_DISCIPLINE_LVL, 2,
#endif
        MHD_OPTION_END);
    if (!ing->daemon)
        return sl_err_set(err, SL_ERR_IO, "cannot listen on %s (address in use?)", ing->s.listen);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(ing->daemon, MHD_DAEMON_INFO_LISTEN_FD);
    ing->port = info ? sl_addr_bound_port(info->listen_fd) : -1;
    return 0;
}

/* The replay guard, when a source has one: a Redis connection per HTTP thread. */
static int start_replay(ingress_t *ing, struct sl_err *err)
{
    bool any = false;
    for (size_t i = 0; i < source_set_count(ing->sources); i++)
        any |= source_replay_guard_ms(source_set_item(ing->sources, i)) > 0;
    if (!any)
        return 0;
    unsigned handles = ing->s.threads < REPLAY_HANDLES_MAX ? ing->s.threads : REPLAY_HANDLES_MAX;
    ing->replay = replay_new(ing->s.redis_url ? ing->s.redis_url : SL_REDIS_DEFAULT_URL,
                             ing->s.redis_timeout_ms > 0 ? ing->s.redis_timeout_ms : 1000,
                             ing->kafka.topic_prefix, handles,
                             (long long)ing->s.request_timeout_ms + REPLAY_PENDING_GRACE_MS, err);
    return ing->replay ? 0 : -1;
}

/* The lag watcher of admission control; its own Kafka client, not the producer's. */
static int start_admission(ingress_t *ing, struct sl_err *err)
{
    if (!ing->s.admission)
        return 0;
    const struct sl_lagwatch_opts opts = {
        .kafka = &ing->kafka,
        .groups = &ing->s.admission_group,
        .n_groups = 1,
        .interval_ms = INGRESS_ADMISSION_INTERVAL_MS,
        .client_id = "sluice-ingress-admission",
    };
    ing->admission = sl_lagwatch_start(&opts, err);
    return ing->admission ? 0 : -1;
}

ingress_t *ingress_start(const struct ingress_settings *settings,
                         const struct sl_kafka_settings *kafka, const source_set_t *sources,
                         sl_metrics_t *metrics, struct sl_err *err)
{
    ingress_t *ing = calloc(1, sizeof(*ing));
    if (!ing) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    ing->s = *settings;
    ing->kafka = *kafka;
    ing->sources = sources;
    ing->listen_fd = MHD_INVALID_SOCKET;
    pthread_rwlock_init(&ing->gate, NULL);
    pthread_mutex_init(&ing->slots_lock, NULL);
    pthread_mutex_init(&ing->limit_lock, NULL);
    pthread_mutex_init(&ing->keeper_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ing->keeper_cond, &ca);
    pthread_condattr_destroy(&ca);

    /* The delivery report must come before the request deadline: the record's own deadline is
     * the shorter of the two. */
    struct sl_kafka_settings ks = *kafka;
    if (ks.produce_timeout_ms > settings->request_timeout_ms)
        ks.produce_timeout_ms = settings->request_timeout_ms;
    if (sl_kafka_topic_name(kafka, SL_TOPIC_INGRESS, ing->topic, sizeof(ing->topic)) != 0) {
        sl_err_set(err, SL_ERR_CONFIG, "kafka.topic_prefix is too long");
        goto fail;
    }
    if (make_metrics(ing, metrics, err) != 0 || make_responses(ing, err) != 0 ||
        start_replay(ing, err) != 0 || start_admission(ing, err) != 0)
        goto fail;
    ing->producer = sl_producer_new(&ks, "sluice-ingress", on_delivery, err);
    if (!ing->producer || sl_producer_start_poller(ing->producer, err) != 0 ||
        start_daemon(ing, err) != 0)
        goto fail;
    if (pthread_create(&ing->keeper, NULL, keeper_main, ing) != 0) {
        sl_err_set(err, SL_ERR_INTERNAL, "cannot start the housekeeping thread");
        goto fail;
    }
    ing->keeper_running = true;
    return ing;
fail:
    ingress_destroy(ing);
    return NULL;
}

int ingress_port(const ingress_t *ing)
{
    return ing->port;
}

const char *ingress_topic(const ingress_t *ing)
{
    return ing->topic;
}

bool ingress_ready(void *opaque, char *why, size_t why_size)
{
    ingress_t *ing = opaque;
    if (atomic_load(&ing->stopping)) {
        snprintf(why, why_size, "shutting down");
        return false;
    }
    if (!atomic_load(&ing->kafka_ok)) {
        snprintf(why, why_size, "Kafka unreachable at %s", ing->kafka.brokers);
        return false;
    }
    return true;
}

/* Waits until *counter is 0 or the deadline (monotonic ms) passes; returns what is left. */
static long wait_zero(atomic_long *counter, int64_t deadline_ms)
{
    long n;
    while ((n = atomic_load(counter)) > 0 && now_ms() < deadline_ms) {
        struct timespec ts = {0, DRAIN_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    return n;
}

void ingress_stop(ingress_t *ing)
{
    if (atomic_exchange(&ing->stopped, true))
        return;
    atomic_store(&ing->stopping, true);
    if (!ing->daemon)
        goto producer;
    ing->listen_fd = MHD_quiesce_daemon(ing->daemon);
    /* The socket would still complete handshakes into its backlog, leaving new clients hanging
     * until the stop ends; shut it down so they are refused at once and go elsewhere. The
     * descriptor itself stays open until the daemon is stopped, as libmicrohttpd requires. */
    if (ing->listen_fd != MHD_INVALID_SOCKET)
        shutdown(ing->listen_fd, SHUT_RDWR);
    SL_INFO("stopping: no new connections; %ld requests in flight", atomic_load(&ing->in_flight));

    /* 1. Every request in flight gets its answer: the ones waiting for Kafka within the
     *    request timeout, the ones still being read within the read timeout (or they are cut). */
    int longest = ing->s.request_timeout_ms > ing->s.read_timeout_ms ? ing->s.request_timeout_ms
                                                                     : ing->s.read_timeout_ms;
    long left = wait_zero(&ing->in_flight, now_ms() + longest + DRAIN_GRACE_MS);

    /* 2. No record is queued from now on; what is queued is delivered or reported. */
    pthread_rwlock_wrlock(&ing->gate);
    ing->gate_closed = true;
    pthread_rwlock_unlock(&ing->gate);
    struct sl_err err;
    if (sl_producer_flush(ing->producer, ing->s.request_timeout_ms, &err) != 0) {
        SL_ERROR("stopping: %s; failing them", err.msg);
        rd_kafka_purge(sl_producer_handle(ing->producer),
                       RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    }
    /* The last reports resume their connections, which then answer. */
    long waiting = wait_zero(&ing->waiting, now_ms() + DRAIN_GRACE_MS);
    left = wait_zero(&ing->in_flight, now_ms() + DRAIN_GRACE_MS);
    keeper_stop(ing);
    if (waiting > 0) {
        /* libmicrohttpd aborts when stopped with suspended connections; leave it to the
         * process exit rather than crash (the reports did not come back in time). */
        SL_ERROR("stopping: %ld requests still wait for Kafka; not stopping the HTTP daemon",
                 waiting);
        ing->daemon = NULL;
    } else {
        MHD_stop_daemon(ing->daemon);
        ing->daemon = NULL;
        /* Ours since the quiesce, and closed only now: a pool thread may still use it. */
        if (ing->listen_fd != MHD_INVALID_SOCKET)
            close(ing->listen_fd);
        ing->listen_fd = MHD_INVALID_SOCKET;
    }
    if (left > 0)
        SL_WARN("stopping: %ld requests were cut off (their clients were too slow)", left);
    else
        SL_INFO("stopped: every request in flight was answered");
producer:
    keeper_stop(ing);
    sl_producer_destroy(ing->producer);
    ing->producer = NULL;
}

void ingress_destroy(ingress_t *ing)
{
    if (!ing)
        return;
    ingress_stop(ing);
    struct MHD_Response *fixed[] = {ing->r_not_found,
                                    ing->r_method,
                                    ing->r_too_large,
                                    ing->r_media,
                                    ing->r_batch,
                                    ing->r_unavailable[UNAV_KAFKA],
                                    ing->r_unavailable[UNAV_QUEUE_FULL],
                                    ing->r_unavailable[UNAV_STOPPING],
                                    ing->r_unavailable[UNAV_INTERNAL],
                                    ing->r_shed};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (fixed[i])
            MHD_destroy_response(fixed[i]);
    free(ing->stats);
    replay_destroy(ing->replay);
    sl_lagwatch_stop(ing->admission);
    pthread_cond_destroy(&ing->keeper_cond);
    pthread_mutex_destroy(&ing->keeper_lock);
    pthread_mutex_destroy(&ing->limit_lock);
    pthread_mutex_destroy(&ing->slots_lock);
    pthread_rwlock_destroy(&ing->gate);
    free(ing);
}
