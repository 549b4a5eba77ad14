/*
 * sl_testenv: what integration tests share: the test broker's settings, unique names, a raw
 * consumer to read back what was produced, and control of the broker that the ctest fixture
 * started (deploy/local/kafka.sh with the fixture's environment).
 */
#ifndef SL_TESTENV_H
#define SL_TESTENV_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <sys/types.h>

#include "sl_kafka.h"

/* Kafka settings for the test broker (SLUICE_KAFKA_BROKERS from the fixture's environment). */
void sl_testenv_kafka(struct sl_kafka_settings *s);

/* "<prefix>-<uuid>" into buf: a name no earlier run used. */
void sl_testenv_unique(const char *prefix, char *buf, size_t size);

/* The topics of one stage under a prefix of their own. */
struct sl_testenv_topics {
    char prefix[128]; /* "sluice-test-<name>-<unique id>." */
    char in[256], out[256], dlq[256], audit[256];
};

/* Names and creates, under a new prefix for `name`: <prefix><in> and <prefix><out> with 3
 * partitions each, <prefix>dlq with 1 and <prefix>audit with 3. Fails the test if it cannot. */
void sl_testenv_stage_topics(struct sl_testenv_topics *t, const char *name, const char *in,
                             const char *out);

/* Creates a topic with `partitions` partitions on the test broker; fails the test if it
 * cannot. */
void sl_testenv_create_topic(const char *topic, int partitions);

/* A consumer (read_committed) assigned to every partition of `topic` from the beginning.
 * The caller destroys it with rd_kafka_consumer_close + rd_kafka_destroy. */
rd_kafka_t *sl_testenv_consumer(const char *topic, int partitions);

/* Reads up to `max` records, waiting at most `timeout_ms` in all. Returns how many were read;
 * the caller destroys each with rd_kafka_message_destroy. */
size_t sl_testenv_consume(rd_kafka_t *consumer, rd_kafka_message_t **out, size_t max,
                          int timeout_ms);

/* Runs deploy/local/kafka.sh ACTION on the fixture's broker; returns its exit status. */
int sl_testenv_broker(const char *action);

/* Writes a pipeline file for the test broker with `topic_prefix` and the YAML in `extra`
 * appended; returns its path in `path`. */
void sl_testenv_config(const char *topic_prefix, const char *extra, char *path, size_t size);

/* Starts `<build>/bin/<name>` (or `name` itself when it is an absolute path) with `args`
 * (NULL-terminated, without argv[0]) and the current environment, output appended to
 * `<build>/tests/<log>.log`. Returns the pid. */
pid_t sl_testenv_spawn(const char *name, const char *const *args, const char *log);

/* Sends `sig` and waits up to timeout_ms for the process to end; returns its exit status,
 * 128+signal when killed by a signal, or -1 when it did not end (it is then SIGKILLed). */
int sl_testenv_stop(pid_t pid, int sig, int timeout_ms);

/* Produces a CloudEvent (id, source "test", type "test.event") to `topic`; waits for the ack. */
void sl_testenv_produce_event(const char *topic, const char *id, const char *key,
                              const char *value);
/* The same with a type of the caller's and content type application/json. */
void sl_testenv_produce_typed(const char *topic, const char *id, const char *type, const char *key,
                              const char *value);

/* Events [from, to) into `topic` as sluice-ingress writes them: source `source` (also the
 * sluice source name), id "<id_prefix><NNN>", idempotency key "<idem_prefix><NNN>", type
 * order.paid, partition key "cus_<n % 7>", data {"n":<n>}; waits for the acks. */
void sl_testenv_produce_ingress(const char *topic, const char *source, const char *id_prefix,
                                const char *idem_prefix, int from, int to);

/* Runs the shell command `cmd`; its output (bounded) into out. Returns its exit status, -1
 * when it did not exit. */
int sl_testenv_run(const char *cmd, char *out, size_t size);

/* A TCP port that was free a moment ago on 127.0.0.1 (for a child's listener). */
int sl_testenv_free_port(void);

/* GET http://127.0.0.1:<port><path>; returns the status (-1 on a connection error) and the
 * body (bounded) in `body`. */
long sl_testenv_http_get(int port, const char *path, char *body, size_t size);
/* Polls GET /readyz on `port` until it answers `status` with `needle` in its body (60 s at
 * most); returns the last status, the body in `body`. */
long sl_testenv_wait_ready(int port, long status, const char *needle, char *body, size_t size);

/* The last header `name` of `m` as a string in buf; NULL when absent. */
const char *sl_testenv_header(const rd_kafka_message_t *m, const char *name, char *buf,
                              size_t size);
/* Every record of `topic` (`partitions` of them) from the beginning, read_committed, until
 * `want` came (60 s at most), then 2 s more to catch any extra, up to `max` in all. The
 * messages keep the consumer alive: release both with sl_testenv_free_records(). */
size_t sl_testenv_read_all(const char *topic, int partitions, rd_kafka_message_t **msgs, size_t max,
                           size_t want, rd_kafka_t **consumer);
void sl_testenv_free_records(rd_kafka_message_t **msgs, size_t n, rd_kafka_t *consumer);
/* The record among msgs[0..n) whose ce_id is `id`; NULL when none. */
rd_kafka_message_t *sl_testenv_find(rd_kafka_message_t **msgs, size_t n, const char *id);
/* The Idempotency-Key sluice-deliver sends to `dest` for event `id` whose ce_sluicesource is
 * `sluice_source` and ce_source `ce_source`: "<sl_ce_scoped_id>:<dest>" into buf[size]. */
void sl_testenv_idempotency_key(const char *sluice_source, const char *ce_source, const char *id,
                                const char *dest, char *buf, size_t size);

#endif
