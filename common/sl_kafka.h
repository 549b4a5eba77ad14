/*
 * sl_kafka: the Kafka side every binary shares: settings from the pipeline file's `kafka`
 * section, a base librdkafka configuration, a durable producer, topic creation through the
 * Admin API, and a reachability probe.
 *
 * The producer is always acks=all with enable.idempotence=true, and message.timeout.ms is the
 * configured produce deadline: a record is either acknowledged by the in-sync replicas within
 * the deadline or its delivery report carries an error. Never both, never neither.
 *
 * Record size, one chain (checked by sl_pipeline for the ingress's part):
 *   ingress.max_body_bytes + the record's key and headers
 *     <= kafka.max_message_bytes   (every client's message.max.bytes)
 *     <= each topic's max.message.bytes, which topic creation sets to sl_kafka_topic_max_bytes():
 *        max_message_bytes plus room for batch framing and compression's worst case.
 * A record Kafka refuses for what it is (too large, invalid) is a permanent error, never a
 * retriable one: SL_ERR_TOO_LARGE or SL_ERR_INVALID, from the send or in the delivery report.
 *
 * librdkafka's own log lines are routed into sl_log (component's JSON lines).
 */
#ifndef SL_KAFKA_H
#define SL_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>

#include "sl_conf.h"
#include "sl_err.h"

/* The topics of the pipeline, without the configured prefix. Every arrow between stages is
 * one of them; `sluicectl topics create` makes them all. */
#define SL_TOPIC_INGRESS    "ingress"
#define SL_TOPIC_VALIDATED  "validated"
#define SL_TOPIC_NORMALIZED "normalized"
#define SL_TOPIC_OUTCOMES   "outcomes"
#define SL_TOPIC_DLQ        "dlq"
#define SL_TOPIC_AUDIT      "audit"
#define SL_TOPIC_DELIVER    "deliver." /* + destination name */
/* Longest topic name we build (Kafka's own limit is 249). */
#define SL_TOPIC_NAME_MAX 250

#define SL_KAFKA_MAX_PROPERTIES  32
#define SL_KAFKA_DEFAULT_BROKERS "127.0.0.1:9092"
/* kafka.max_message_bytes: default, and bounds. The upper one is librdkafka's default
 * fetch.max.bytes, which a consumer's message.max.bytes must not exceed. */
#define SL_KAFKA_MAX_MESSAGE_DEFAULT (2 * 1024 * 1024)
#define SL_KAFKA_MAX_MESSAGE_MIN     (64 * 1024)
#define SL_KAFKA_MAX_MESSAGE_MAX     52428800

/* Strings are borrowed from the sl_conf_t they were loaded from (or, in tests, from literals)
 * and must outlive every handle made from the settings. */
struct sl_kafka_settings {
    const char *brokers;
    const char *topic_prefix;
    int partitions;
    int replication_factor;
    int produce_timeout_ms; /* message.timeout.ms */
    int linger_ms;
    const char *compression;
    long long max_message_bytes; /* message.max.bytes of every client */
    size_t n_properties;         /* librdkafka pass-through, applied last */
    const char *property_names[SL_KAFKA_MAX_PROPERTIES];
    const char *property_values[SL_KAFKA_MAX_PROPERTIES];
};

/* The rows of the pipeline file's `kafka` section. */
extern const struct sl_conf_key sl_kafka_conf_keys[];

/* Defaults, with brokers from SLUICE_KAFKA_BROKERS when set. */
void sl_kafka_settings_default(struct sl_kafka_settings *s);
/* Defaults overridden by the `kafka` section of `conf` (which may be absent). */
int sl_kafka_settings_load(const sl_conf_t *conf, struct sl_kafka_settings *s, struct sl_err *err);

/* The max.message.bytes that topic creation gives each topic: max_message_bytes, plus a record
 * batch's framing and lz4's worst-case growth of incompressible data (1/255, rounded up). */
long long sl_kafka_topic_max_bytes(const struct sl_kafka_settings *s);

/* `<prefix><name>` into buf; -1 when it does not fit. */
int sl_kafka_topic_name(const struct sl_kafka_settings *s, const char *name, char *buf,
                        size_t size);

/* A configuration with brokers, client.id, logging into sl_log and the pass-through
 * properties. The caller owns it (rd_kafka_new() consumes it on success). */
rd_kafka_conf_t *sl_kafka_conf_new(const struct sl_kafka_settings *s, const char *client_id,
                                   struct sl_err *err);
/* Sets one property, turning librdkafka's error text into *err. */
int sl_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value,
                      struct sl_err *err);

/* ---- producer ---- */
typedef struct sl_producer sl_producer_t;

/* Called once per record, on the thread that polls the producer (the poller thread when
 * started), with `err` NULL on success. `msg_opaque` is what sl_producer_send() was given. */
typedef void (*sl_producer_dr_cb)(void *msg_opaque, int32_t partition, int64_t offset,
                                  const struct sl_err *err);

sl_producer_t *sl_producer_new(const struct sl_kafka_settings *s, const char *client_id,
                               sl_producer_dr_cb dr, struct sl_err *err)
    __attribute__((warn_unused_result));
/* Serves delivery reports on a background thread until sl_producer_destroy(). */
int sl_producer_start_poller(sl_producer_t *p, struct sl_err *err);
/* Queues a record. `headers` is taken on success (left to the caller on failure). A full
 * local queue is a retriable SL_ERR_UNAVAILABLE; a record over message.max.bytes is a
 * permanent SL_ERR_TOO_LARGE. The delivery report follows exactly once for every record
 * queued; its error is retriable unless the broker refused the record itself (SL_ERR_TOO_LARGE,
 * SL_ERR_INVALID). */
int sl_producer_send(sl_producer_t *p, const char *topic, const void *key, size_t key_len,
                     const void *value, size_t value_len, rd_kafka_headers_t *headers,
                     void *msg_opaque, struct sl_err *err);
/* Serves delivery reports on the calling thread (when no poller runs). */
void sl_producer_poll(sl_producer_t *p, int timeout_ms);
/* Waits until every queued record has its delivery report, or the timeout passes. */
int sl_producer_flush(sl_producer_t *p, int timeout_ms, struct sl_err *err);
/* Records queued but not yet reported. */
int sl_producer_outstanding(sl_producer_t *p);
rd_kafka_t *sl_producer_handle(sl_producer_t *p);
/* Stops the poller and destroys the handle; records still queued get error reports first.
 * Call sl_producer_flush() before, to deliver them. NULL is a no-op. */
void sl_producer_destroy(sl_producer_t *p);

/* ---- administration ---- */
struct sl_topic_spec {
    const char *name; /* full name, prefix included */
    int partitions;
    int replication_factor;
};

/* Creates the topics that do not exist yet, with max.message.bytes = sl_kafka_topic_max_bytes();
 * existing ones are left as they are (idempotent). *created (may be NULL) counts the new ones. */
int sl_kafka_create_topics(const struct sl_kafka_settings *s, const struct sl_topic_spec *specs,
                           size_t n, int timeout_ms, size_t *created, struct sl_err *err);

/* Whether a broker answers a metadata request within the timeout (readiness probes). */
bool sl_kafka_reachable(rd_kafka_t *rk, int timeout_ms);

/* librdkafka before 2.3.0 aborts the process when a cooperative-sticky consumer that has joined
 * its group but was never assigned is closed or destroyed (rd_kafka_sticky_assignor_state_destroy:
 * Assertion `assignor_state', confluentinc/librdkafka#4312). A replica stopped while its group's
 * rebalance is still under way (a scale-down right after a scale-up; with static members that
 * can last session.timeout.ms) would die by SIGABRT instead of exiting 0. `assigned` says
 * whether the consumer's rebalance callback has ever assigned (an empty assignment counts).
 *
 * sl_kafka_consumer_closable: whether rd_kafka_consumer_close() may be called; false only on such
 * a librdkafka for a consumer never assigned, which owns no partition and has nothing to commit.
 * sl_kafka_consumer_destroy: rd_kafka_destroy(rk), or, when not closable, keeps the handle until
 * the process exits (the caller is exiting; the broker drops the member after session.timeout.ms,
 * as for a process that was killed). NULL does nothing. */
bool sl_kafka_consumer_closable(bool assigned);
void sl_kafka_consumer_destroy(rd_kafka_t *rk, bool assigned);

#endif
