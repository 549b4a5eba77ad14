/*
 * ingress_harness: what the sluice-ingress integration tests share. It runs the real binary as a
 * child process against the test broker, talks HTTP to it (libcurl, and raw sockets where a test
 * needs byte-level control), and reads back what landed in its topic.
 *
 * The child listens on 127.0.0.1:0 for both listeners, so no port is ever guessed: the harness
 * reads the ports from the child's "listening" log line. Every wait is bounded; a failure to
 * start fails the current test with the tail of the child's log.
 */
#ifndef INGRESS_HARNESS_H
#define INGRESS_HARNESS_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define HARNESS_START_TIMEOUT_MS 60000 /* until the child logs that it listens and is ready */
#define HARNESS_STOP_TIMEOUT_MS  60000 /* after SIGTERM, before SIGKILL */
#define HARNESS_HTTP_TIMEOUT_MS  60000 /* one request */
#define HARNESS_BODY_MAX         16384 /* reply bodies kept */
#define HARNESS_TOPIC_PARTITIONS 3

typedef struct harness harness_t;

/* Creates a fresh topic prefix and its <prefix>ingress topic, writes a pipeline file with
 * `ingress_yaml` (the keys under `ingress:`, indented by four spaces, may be "") and
 * `sources_yaml` (the whole `sources:` section), starts build/bin/sluice-ingress on it and
 * waits until it listens and /readyz says ready. */
harness_t *harness_start(const char *ingress_yaml, const char *sources_yaml);
/* The same, with `kafka_yaml` (more keys of the `kafka` section, indented by two spaces, each
 * line ending in a newline; may be ""). The topic is made as sl_testenv_create_topic() makes
 * it, whatever these keys say. */
harness_t *harness_start_kafka(const char *kafka_yaml, const char *ingress_yaml,
                               const char *sources_yaml);

int harness_port(const harness_t *h);
int harness_admin_port(const harness_t *h);
const char *harness_topic(const harness_t *h);
pid_t harness_pid(const harness_t *h);

/* Sends `sig` and waits for the child (bounded); returns its exit status, 128 + the signal when
 * a signal ended it, -1 when it had to be killed. The handle stays usable for harness_log(). */
int harness_signal_and_wait(harness_t *h, int sig);

/* The child's whole log so far (stdout and stderr), NUL-terminated; the caller frees it. */
char *harness_log(const harness_t *h);

/* Stops the child if it still runs (SIGTERM), removes its files, frees h. */
void harness_destroy(harness_t *h);

/* ---- HTTP ---- */

struct http_reply {
    long status; /* -1: no HTTP answer (connection refused, reset, timeout) */
    char body[HARNESS_BODY_MAX];
    size_t len;
    char content_type[128];
    char retry_after[32];
    char connection[32];
};

/* One request; `headers` is NULL-terminated ("Name: value"), may be NULL. */
long http_request(int port, const char *method, const char *path, const char *const *headers,
                  const void *body, size_t len, struct http_reply *reply);

/* Makes an easy handle fill `reply` (body, Content-Type, Retry-After, Connection), for tests
 * that drive their own (multi) transfers. The status is theirs to set. */
void http_capture(void *curl_easy, struct http_reply *reply);

/* Checks that the reply is an error body {"error": <code>, "detail": <non-empty>} served as
 * application/json; reports a test failure naming `what` otherwise. */
void http_check_error(const struct http_reply *r, const char *code, const char *what);

/* The "id" of a 202 body into id[size]; false when the body is not {"id": "..."}. */
bool http_accepted_id(const struct http_reply *r, char *id, size_t size);

/* GET /metrics on the admin port, the value of the first sample whose line starts with `series`
 * (e.g. `sluice_ingress_requests_total{source="s",status="202"}`); -1 when absent. */
double harness_metric(const harness_t *h, const char *series);

/* ---- raw sockets ---- */

int raw_connect(int port);
/* Sends everything (blocking); false on an error (the server closed). */
bool raw_send(int fd, const void *buf, size_t len);
/* Reads one HTTP response (headers and a Content-Length body) within timeout_ms; returns its
 * status, 0 when the server closed without an answer, -1 on a timeout. The response text
 * goes into out (NUL-terminated, bounded). */
int raw_read_response(int fd, char *out, size_t size, int timeout_ms);

/* ---- Kafka ---- */

/* Records read back from a topic. They are valid until records_free(): librdkafka's consumer
 * must outlive its messages. */
struct records {
    rd_kafka_t *consumer;
    rd_kafka_message_t **m;
    size_t n;
};

/* Reads records of the topic until `want` have come (or timeout_ms), then keeps reading for
 * `linger_ms` to catch any extra (duplicates), at most `max` in all. */
void harness_read_topic(const char *topic, size_t max, size_t want, int timeout_ms, int linger_ms,
                        struct records *out);
void records_free(struct records *r);

/* The value of header `name` of a record, NUL-terminated into buf; NULL when absent. */
const char *record_header(const rd_kafka_message_t *m, const char *name, char *buf, size_t size);

#endif
