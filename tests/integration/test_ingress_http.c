/*
 * test_ingress_http: sluice-ingress's HTTP-level input handling, as a process against the test
 * broker, with raw sockets where the bytes on the wire matter:
 *   - a chunked body far over the limit gets its 413 at once, and the client reads it even while
 *     it keeps sending (lingering close); an unknown Transfer-Encoding gets a 501 at once;
 *   - each request smuggling primitive gets a 400 and the connection is closed;
 *   - JSON that validate would refuse (duplicate keys, an integer beyond int64) gets a 400;
 *   - a body within max_body_bytes fits in a Kafka record (the size chain), and one that Kafka
 *     refuses all the same gets a 413, never a 503;
 *   - the per-address connection limit is on by default, and its log line is rate-limited.
 * Behaviour only: no assertion depends on how fast anything is.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ingress_harness.h"
#include "sl_test.h"

#define INGRESS_YAML                                                                               \
    "    max_body_bytes: 64KiB\n"                                                                  \
    "    request_timeout: 10s\n"                                                                   \
    "    idle_timeout: 5s\n"                                                                       \
    "    read_timeout: 20s\n"

#define SOURCES_YAML                                                                               \
    "sources:\n"                                                                                   \
    "  open:\n"                                                                                    \
    "    verify: { scheme: none }\n"                                                               \
    "    event_type: /type\n"

#define WAIT_MS     20000 /* any single answer or close */
#define MAX_RECORDS 16

static const char *const json_ct = "Content-Type: application/json";

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether the server closes the connection (EOF or reset) within WAIT_MS, reading and dropping
 * whatever else comes first. */
static bool closed_by_server(int fd)
{
    long long deadline = now_ms() + WAIT_MS;
    char buf[4096];
    for (;;) {
        long long left = deadline - now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            return false;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
            return true;
    }
}

/* Sends `request` on a new connection; returns the status of the answer (0: closed without
 * one), its text in out, and whether the server then closed the connection. */
static int exchange(const harness_t *h, const void *request, size_t len, char *out, size_t size,
                    bool *closed)
{
    int fd = raw_connect(harness_port(h));
    SL_REQUIRE(fd >= 0);
    raw_send(fd, request, len); /* the server may close before it has read everything */
    int status = raw_read_response(fd, out, size, WAIT_MS);
    *closed = closed_by_server(fd);
    close(fd);
    return status;
}

/* The count of records in the harness's topic, waiting `linger_ms` for any to come. */
static size_t records_in_topic(const harness_t *h, size_t want, int linger_ms)
{
    struct records recs;
    harness_read_topic(harness_topic(h), MAX_RECORDS, want, 30000, linger_ms, &recs);
    size_t n = recs.n;
    records_free(&recs);
    return n;
}

SL_TEST(chunked_body_far_over_the_limit_is_answered_413_at_once)
{
    harness_t *h = harness_start(INGRESS_YAML, SOURCES_YAML);
    int fd = raw_connect(harness_port(h));
    SL_REQUIRE(fd >= 0);
    const char *head = "POST /v1/events/open HTTP/1.1\r\nHost: x\r\nContent-Type: "
                       "application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    SL_REQUIRE(raw_send(fd, head, strlen(head)));
    /* 16 MiB in 16 KiB chunks, far past the 64 KiB limit (and past anything the server would
     * read to its end); the client keeps sending until the server stops it, and reads only then:
     * the answer must still be there to read. */
    static char chunk[16384 + 16];
    int hdr = snprintf(chunk, sizeof(chunk), "4000\r\n");
    memset(chunk + hdr, ' ', 16384);
    memcpy(chunk + hdr + 16384, "\r\n", 2);
    size_t sent_chunks = 0;
    for (; sent_chunks < 1024; sent_chunks++)
        if (!raw_send(fd, chunk, (size_t)hdr + 16384 + 2))
            break;
    char out[4096];
    int status = raw_read_response(fd, out, sizeof(out), WAIT_MS);
    SL_CHECK_INT(status, 413);
    SL_CHECK_CONTAINS(out, "\"error\":\"body_too_large\"");
    SL_CHECK_CONTAINS(out, "Connection: close");
    SL_CHECK(sent_chunks < 1024); /* the server did not read 16 MiB to its end */
    SL_CHECK(closed_by_server(fd));
    close(fd);
    SL_CHECK(harness_metric(h, "sluice_ingress_requests_total{source=\"open\",status=\"413\"}") ==
             1);

    harness_destroy(h);
}

SL_TEST(unknown_transfer_encoding_is_answered_501_at_once)
{
    harness_t *h = harness_start(INGRESS_YAML, SOURCES_YAML);
    char out[4096];
    bool closed;
    /* The body never ends (no final chunk): only an answer at once ends the exchange before the
     * read timeout. */
    const char *gzip = "POST /v1/events/open HTTP/1.1\r\nHost: x\r\nContent-Type: "
                       "application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n";
    SL_CHECK_INT(exchange(h, gzip, strlen(gzip), out, sizeof(out), &closed), 501);
    SL_CHECK_CONTAINS(out, "\"error\":\"not_implemented\"");
    SL_CHECK(closed);
    const char *two = "POST /v1/events/open HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      "application/json\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
                      "identity\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
    SL_CHECK_INT(exchange(h, two, strlen(two), out, sizeof(out), &closed), 501);
    SL_CHECK(closed);
    /* Plain chunked still works. */
    const char *ok = "POST /v1/events/open HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     "application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "10\r\n{\"type\":\"chunk\"}\r\n0\r\n\r\n";
    SL_CHECK_INT(exchange(h, ok, strlen(ok), out, sizeof(out), &closed), 202);
    SL_CHECK_INT(records_in_topic(h, 1, 1000), 1);
    harness_destroy(h);
}

/* One request smuggling primitive: 400, the connection closed, nothing in the topic; the
 * bytes after the first request would be a second one if the framing were taken loosely. */
static void check_refused(const harness_t *h, const char *what, const void *request, size_t len)
{
    char out[4096];
    bool closed;
    int status = exchange(h, request, len, out, sizeof(out), &closed);
    if (status != 400)
        sl_test_fail(__FILE__, __LINE__, "%s: status %d, want 400 (%s)", what, status, out);
    if (!closed)
        sl_test_fail(__FILE__, __LINE__, "%s: the connection stayed open after the 400", what);
}

#define CHECK_REFUSED(what, lit) check_refused(h, what, lit, sizeof(lit) - 1)

SL_TEST(request_smuggling_primitives_get_400_and_close)
{
    /* Long timeouts: a connection closed within WAIT_MS was closed on purpose. */
    harness_t *h = harness_start("    idle_timeout: 10m\n    read_timeout: 10m\n", SOURCES_YAML);
    /* Every body here is a valid event ({"type":"x"}, 12 bytes): only the framing is wrong. */
    CHECK_REFUSED("two Content-Length", "POST /v1/events/open HTTP/1.1\r\nHost: x\r\n"
                                        "Content-Type: application/json\r\nContent-Length: 12\r\n"
                                        "Content-Length: 63\r\n\r\n{\"type\":\"x\"}"
                                        "POST /v1/events/open HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_REFUSED("two equal Content-Length", "POST /v1/events/open HTTP/1.1\r\nHost: x\r\n"
                                              "Content-Type: application/json\r\n"
                                              "Content-Length: 12\r\nContent-Length: 12\r\n\r\n"
                                              "{\"type\":\"x\"}");
    CHECK_REFUSED("Content-Length with chunked",
                  "POST /v1/events/open HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "c\r\n{\"type\":\"x\"}\r\n0\r\n\r\n");
    CHECK_REFUSED("bare LF in the headers",
                  "POST /v1/events/open HTTP/1.1\r\nHost: x\nContent-Type: application/json\r\n"
                  "Content-Length: 12\r\n\r\n{\"type\":\"x\"}");
    CHECK_REFUSED("bare LF after the request line",
                  "POST /v1/events/open HTTP/1.1\nHost: x\r\nContent-Type: application/json\r\n"
                  "Content-Length: 12\r\n\r\n{\"type\":\"x\"}");
    CHECK_REFUSED("bare LF everywhere", "POST /v1/events/open HTTP/1.1\nHost: x\nContent-Type: "
                                        "application/json\nContent-Length: 12\n\n{\"type\":\"x\"}");
    CHECK_REFUSED("NUL in a header value",
                  "POST /v1/events/open HTTP/1.1\r\nHost: x\r\nX-Api-Key: secret\0junk\r\n"
                  "Content-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"type\":\"x\"}");
    CHECK_REFUSED("NUL at the end of a header value",
                  "POST /v1/events/open HTTP/1.1\r\nHost: x\r\nX-Api-Key: secret\0\r\n"
                  "Content-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"type\":\"x\"}");
    CHECK_REFUSED("bare CR in a header value",
                  "POST /v1/events/open HTTP/1.1\r\nHost: x\r\nX-Note: a\rb\r\n"
                  "Content-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"type\":\"x\"}");
    CHECK_REFUSED("folded header line", "POST /v1/events/open HTTP/1.1\r\nHost: x\r\nX-Note: a\r\n"
                                        " b\r\nContent-Type: application/json\r\n"
                                        "Content-Length: 12\r\n\r\n{\"type\":\"x\"}");
    CHECK_REFUSED("HTTP/1.1 without Host", "POST /v1/events/open HTTP/1.1\r\n"
                                           "Content-Type: application/json\r\n"
                                           "Content-Length: 12\r\n\r\n{\"type\":\"x\"}");
    /* None of them reached the topic (checked with the good ones below). */

    /* The same requests written properly are accepted, on one connection, twice. */
    const char *good = "POST /v1/events/open HTTP/1.1\r\nHost: x\r\nX-Api-Key: secret\r\n"
                       "Content-Type: application/json\r\nContent-Length: 15\r\n\r\n"
                       "{\"type\":\"good\"}";
    int fd = raw_connect(harness_port(h));
    SL_REQUIRE(fd >= 0);
    char out[4096];
    for (int i = 0; i < 2; i++) {
        SL_REQUIRE(raw_send(fd, good, strlen(good)));
        SL_CHECK_INT(raw_read_response(fd, out, sizeof(out), WAIT_MS), 202);
    }
    close(fd);
    /* HTTP/1.0 needs no Host. */
    const char *old = "POST /v1/events/open HTTP/1.0\r\nContent-Type: application/json\r\n"
                      "Content-Length: 15\r\n\r\n{\"type\":\"good\"}";
    bool closed;
    SL_CHECK_INT(exchange(h, old, strlen(old), out, sizeof(out), &closed), 202);
    SL_CHECK_INT(records_in_topic(h, 3, 2000), 3);
    harness_destroy(h);
}

SL_TEST(json_that_validate_refuses_gets_400)
{
    harness_t *h = harness_start(INGRESS_YAML, SOURCES_YAML);
    const char *headers[] = {json_ct, NULL};
    static const char *const bodies[] = {
        "{\"type\":\"dup\",\"a\":1,\"a\":2}",
        "{\"type\":\"big\",\"id\":12345678901234567890}",
        "{\"type\":\"dup\",\"data\":{\"k\":1,\"\\u006b\":2}}",
        "{\"type\":\"overflow\",\"x\":1e400}",
    };
    struct http_reply r;
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        SL_CHECK_INT(http_request(harness_port(h), "POST", "/v1/events/open", headers, bodies[i],
                                  strlen(bodies[i]), &r),
                     400);
        http_check_error(&r, "malformed_json", bodies[i]);
    }
    const char *fine = "{\"type\":\"fine\",\"id\":9223372036854775807,\"a\":{\"a\":1}}";
    SL_CHECK_INT(
        http_request(harness_port(h), "POST", "/v1/events/open", headers, fine, strlen(fine), &r),
        202);
    SL_CHECK_INT(records_in_topic(h, 1, 2000), 1);
    harness_destroy(h);
}

/* A JSON event of exactly `len` bytes (len >= 64) that lz4 cannot shrink: random base64 in a
 * string. The caller frees it. */
static char *incompressible_event(size_t len)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *head = "{\"type\":\"big\",\"pad\":\"";
    char *body = malloc(len + 1);
    SL_REQUIRE(body);
    size_t h = strlen(head);
    memcpy(body, head, h);
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t i = h; i < len - 2; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        body[i] = b64[x % 64];
    }
    memcpy(body + len - 2, "\"}", 3);
    return body;
}

static long post_event(const harness_t *h, const char *body, size_t len, struct http_reply *r)
{
    const char *headers[] = {json_ct, NULL};
    return http_request(harness_port(h), "POST", "/v1/events/open", headers, body, len, r);
}

SL_TEST(bodies_kafka_cannot_take_get_413_never_503)
{
    /* The defaults: max_body_bytes 1 MiB, kafka.max_message_bytes 2 MiB, the topic made as
     * `topics create` makes it. The body size of the report (1,015,161 bytes) used to get a
     * 503 "producer queue is full" for good: librdkafka's default message.max.bytes is 1e6. */
    harness_t *h = harness_start("", SOURCES_YAML);
    struct http_reply r;
    static const size_t sizes[] = {1015161, 1024 * 1024};
    for (size_t i = 0; i < 2; i++) {
        char *body = incompressible_event(sizes[i]);
        SL_CHECK_INT(post_event(h, body, sizes[i], &r), 202);
        free(body);
    }
    char *over = incompressible_event(1024 * 1024 + 1);
    SL_CHECK_INT(post_event(h, over, 1024 * 1024 + 1, &r), 413);
    http_check_error(&r, "body_too_large", "over max_body_bytes");
    free(over);
    struct records recs;
    harness_read_topic(harness_topic(h), MAX_RECORDS, 2, 30000, 1000, &recs);
    SL_CHECK_INT(recs.n, 2);
    for (size_t i = 0; i < recs.n && i < 2; i++)
        SL_CHECK(recs.m[i]->len == sizes[0] || recs.m[i]->len == sizes[1]);
    records_free(&recs);
    harness_destroy(h);

    /* A topic that `topics create` did not make, with a smaller limit (here about 2 MiB) than
     * the configuration allows (4 MiB): Kafka refuses the record, which no retry can change, so
     * the sender gets a 413, not a 503; and the producer goes on working. */
    h = harness_start_kafka("  max_message_bytes: 4MiB\n", "    max_body_bytes: 3MiB\n",
                            SOURCES_YAML);
    size_t big = 2560 * 1024;
    char *body = incompressible_event(big);
    SL_CHECK_INT(post_event(h, body, big, &r), 413);
    http_check_error(&r, "body_too_large", "refused by the topic");
    SL_CHECK(r.retry_after[0] == '\0');
    free(body);
    SL_CHECK_INT(post_event(h, "{\"type\":\"small\"}", 16, &r), 202);
    SL_CHECK_INT(records_in_topic(h, 1, 1000), 1);
    SL_CHECK(harness_metric(h, "sluice_ingress_requests_total{source=\"open\",status=\"503\"}") ==
             0);
    harness_destroy(h);
}

/* Lines of `log` that contain `needle`. */
static int count_lines(const char *log, const char *needle)
{
    int n = 0;
    for (const char *p = log; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

SL_TEST(per_address_connection_limit_is_on_by_default_and_logged_sparingly)
{
    /* No max_connections_per_ip: the default applies. Long timeouts: the held connections
     * must stay open however slowly the test runs. */
    harness_t *h = harness_start("    idle_timeout: 10m\n    read_timeout: 10m\n", SOURCES_YAML);
    enum { LIMIT = 100, EXTRA = 60 };
    int held[LIMIT];
    char out[4096];
    /* Each held connection is known to be accepted: it got its 202, and stays open. */
    const char *req = "POST /v1/events/open HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      "application/json\r\nContent-Length: 15\r\n\r\n{\"type\":\"held\"}";
    for (int i = 0; i < LIMIT; i++) {
        held[i] = raw_connect(harness_port(h));
        SL_REQUIRE(held[i] >= 0);
        SL_REQUIRE(raw_send(held[i], req, strlen(req)));
        SL_REQUIRE(raw_read_response(held[i], out, sizeof(out), WAIT_MS) == 202);
    }
    long long started = now_ms();
    int refused = 0;
    for (int i = 0; i < EXTRA; i++) {
        int fd = raw_connect(harness_port(h));
        if (fd < 0) {
            refused++;
            continue;
        }
        raw_send(fd, req, strlen(req));
        int status = raw_read_response(fd, out, sizeof(out), WAIT_MS);
        refused += status == 0;
        close(fd);
    }
    long long elapsed = now_ms() - started;
    SL_CHECK_INT(refused, EXTRA);
    for (int i = 0; i < LIMIT; i++)
        close(held[i]);
    /* Every refusal is counted; the log has at most one line per second (plus the one that
     * reports the rest once the second is over). */
    double dropped = 0;
    for (int i = 0; i < 100 && dropped < EXTRA; i++) {
        dropped = harness_metric(
            h, "sluice_ingress_connections_dropped_total{reason=\"connection_limit\"}");
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    SL_CHECK(dropped == EXTRA);
    /* The keeper reports the lines left out after the interval. */
    char *log = NULL;
    for (int i = 0; i < 100; i++) {
        free(log);
        log = harness_log(h);
        if (strstr(log, "more times in the last"))
            break;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    int lines = count_lines(log, "connection limit reached");
    SL_CHECK(lines >= 1);
    SL_CHECK(lines <= 2 + 2 * (int)(elapsed / 1000));
    SL_CHECK(lines < EXTRA);
    SL_CHECK_CONTAINS(log, "max_connections_per_ip=100");
    free(log);
    /* Connections close; new ones are served again. */
    struct http_reply r;
    const char *headers[] = {json_ct, NULL};
    long status = 0;
    for (int i = 0; i < 100 && status != 202; i++) {
        status = http_request(harness_port(h), "POST", "/v1/events/open", headers,
                              "{\"type\":\"after\"}", 16, &r);
        if (status != 202) {
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    SL_CHECK_INT(status, 202);
    harness_destroy(h);
}

SL_TEST_MAIN()
