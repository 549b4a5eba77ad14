/*
 * ingress: the HTTP front door of Sluice (libmicrohttpd, epoll thread pool).
 *
 *   POST /v1/events/<source>  ->  verify  ->  CloudEvents record  ->  <prefix>ingress
 *                                  202 {"id": ...} only once the delivery report says the broker
 *                                  has the record (acks=all, idempotent producer)
 *
 * Request life, per connection thread:
 *   framing   libmicrohttpd runs in its strict mode (HTTP/1.1 without Host is its own 400);
 *             what 0.9.75's strict mode lets through is refused here, 400 and close: more than
 *             one Content-Length, Content-Length with Transfer-Encoding, bare LF line ends, a
 *             NUL or bare CR in a header value, folded header lines (the request smuggling
 *             primitives). A Transfer-Encoding other than "chunked" is a 501 and close.
 *   headers   route, method, Content-Length (413 before the body is read), Content-Type (415),
 *             api-key verification (401): answered at once, the body is never read.
 *   body      copied into a buffer bounded by max_body_bytes; a chunked body that goes over is
 *             answered 413 at once (libmicrohttpd 0.9.75 cannot queue a reply mid-body, so the
 *             reply is written to the socket directly) and the connection closed.
 *   closing   a connection closed after an error answer, while the client may still be
 *             sending, is closed lingering: its socket stays open for INGRESS_LINGER_MS and what
 *             arrives is read and dropped, so that the kernel does not reset the connection
 *             (and discard the answer) before the client has read it.
 *   complete  signature verification (401), record building (400/415), for a source with a
 *             replay guard the claim of its signed content (replay.h: a replay of a written
 *             request gets the first copy's 202 and is not written again), then the connection
 *             is suspended and the record produced; the producer's delivery report (on the poller
 *             thread) stores 202 or 503 and resumes the connection, whose thread answers. No
 *             thread ever waits for Kafka. The producer's message.timeout.ms is
 *             min(kafka.produce_timeout, ingress.request_timeout), so every suspended request
 *             gets its report within the request deadline; a full producer queue is a 503 at
 *             once. Every 503 carries Retry-After. A record Kafka refuses for what it is (too
 *             large for the topic, invalid) is a 413 or 400: no retry could change it.
 *
 * Slow clients: libmicrohttpd's idle timeout closes a silent connection, but a client that
 * sends one byte just often enough never goes idle. A housekeeping thread therefore gives each
 * connection a read deadline (read_timeout for the headers, from accept or from the end of the
 * previous request plus idle_timeout, and read_timeout again for the body) and shuts down the
 * socket of a connection past it. The same thread probes Kafka once a second for /readyz and
 * refreshes the gauges.
 *
 * Admission control (`ingress.admission`, off unless max_lag is set): an sl_lagwatch thread reads
 * validate's consumer-group lag from the broker every INGRESS_ADMISSION_INTERVAL_MS. While the
 * last lag read is over max_lag, a request of a source with `shed: true` is answered 429
 * (error "overloaded", Retry-After: retry_after) right after its headers, before its body is
 * read; every other source is accepted as ever. A lag that cannot be read (the broker does not
 * answer) admits everything: shedding is for a pipeline that is behind, not for one whose
 * broker is away (requests fail on their own write then). Metrics:
 * sluice_ingress_shed_total{source}, sluice_ingress_admission_lag (the last lag read; -1 while
 * it is not known).
 *
 * Stop: ingress_stop() stops accepting (MHD_quiesce_daemon), answers new requests on open
 * connections 503 (Connection: close), waits for every request in flight to be answered (bounded
 * by the request and read timeouts), flushes the producer, then stops the daemon.
 *
 * Never logged or forwarded: bodies, secrets, and credential headers (verify.h). One log line
 * per rejected request (status, reason, source, client address); one debug line per accepted
 * one, with its event id.
 */
#ifndef SLUICE_INGRESS_H
#define SLUICE_INGRESS_H

#include <stdbool.h>
#include <stddef.h>

#include "sl_conf.h"
#include "sl_err.h"
#include "sl_kafka.h"
#include "sl_lag.h"
#include "sl_live.h"
#include "sl_metrics.h"
#include "source.h"

#define INGRESS_EVENTS_PATH          "/v1/events/"
#define INGRESS_ADMIN_LISTEN_DEFAULT "127.0.0.1:9180"
#define INGRESS_RETRY_AFTER_S        5 /* Retry-After of every 503 */
/* libmicrohttpd's memory pool per connection: it bounds the request headers (about 14 KB fit;
 * more gets libmicrohttpd's own 431) and is zeroed on every request, which costs CPU in
 * proportion (about 6% of the ingress's at 16 KB); 8 KB would save a third of that but cap
 * headers near 6 KB, which long credentials or many CloudEvents headers can exceed. */
#define INGRESS_CONNECTION_MEMORY      (16 * 1024)
#define INGRESS_BODY_START             4096 /* first buffer of a chunked body; it doubles */
#define INGRESS_LINGER_MS              2000 /* a closed connection's input is drained this long */
#define INGRESS_LINGER_MAX             256  /* connections lingering at once; more close at once */
#define INGRESS_LINGER_READ_MAX        (256 * 1024) /* bytes drained from one, then it is closed */
#define INGRESS_LIMIT_LOG_MS           1000 /* "connection limit reached": one line per interval */
#define INGRESS_MAX_CONNECTIONS_PER_IP 100  /* default of ingress.max_connections_per_ip */
#define INGRESS_CE_HEADERS_MAX         40   /* ce-* headers of one request */
#define INGRESS_PROBE_INTERVAL_MS      1000 /* Kafka reachability, for /readyz */
#define INGRESS_PROBE_TIMEOUT_MS       500
#define INGRESS_KEEPER_TICK_MS         200  /* read deadlines are enforced to this granularity */
#define INGRESS_ADMISSION_INTERVAL_MS  2000 /* validate's lag is read this often */

struct ingress_settings {
    const char *listen; /* host:port; port 0 lets the kernel choose (see ingress_port) */
    size_t max_body_bytes;
    int request_timeout_ms;
    int idle_timeout_ms;
    int read_timeout_ms;
    unsigned max_connections;
    unsigned max_connections_per_ip; /* 0: no per-address limit */
    unsigned threads;
    /* The replay guard's Redis (the `redis` section); used only when a source has a guard. */
    const char *redis_url;
    int redis_timeout_ms;
    /* Admission control (see above): off unless `admission`. */
    bool admission;
    long long admission_max_lag;
    int admission_retry_after_s;
    struct sl_lag_group admission_group; /* validate's consumer group and input topic */
    /* Beaten at every tick of the housekeeping thread (which stalls with the request threads
     * when they deadlock on the connection table); borrowed, may be NULL. */
    sl_live_t *live;
};

/* The `ingress` section of a checked pipeline file, with its defaults, and validate's consumer
 * group (sl_lag_groups) for admission control. Strings are borrowed from conf. */
int ingress_settings_load(const sl_conf_t *conf, const struct sl_kafka_settings *kafka,
                          struct ingress_settings *s, struct sl_err *err);

typedef struct ingress ingress_t;

/* Creates the producer and starts serving. `settings` and `kafka` are copied (their strings
 * must outlive the ingress); `sources` and `metrics` are borrowed and must outlive it. */
ingress_t *ingress_start(const struct ingress_settings *settings,
                         const struct sl_kafka_settings *kafka, const source_set_t *sources,
                         sl_metrics_t *metrics, struct sl_err *err)
    __attribute__((warn_unused_result));

/* The port the public listener is bound to. */
int ingress_port(const ingress_t *ing);
/* "<prefix>ingress". */
const char *ingress_topic(const ingress_t *ing);

/* sl_admin readiness callback (`opaque` is the ingress_t): ready when Kafka answered the last
 * probe and no stop is under way. Never blocks. */
bool ingress_ready(void *opaque, char *why, size_t why_size);

/* The graceful stop described above. Idempotent. Returns when every request is answered (or its
 * connection is gone) and the daemon and producer are stopped. */
void ingress_stop(ingress_t *ing);

/* Stops (if not yet stopped) and frees. NULL does nothing. */
void ingress_destroy(ingress_t *ing);

#endif
