#include "sl_kafka.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_log.h"

static const char *const compression_choices[] = {"none", "lz4", "zstd", "gzip", "snappy", NULL};

const struct sl_conf_key sl_kafka_conf_keys[] = {
    {"brokers", SL_CK_STRING, SL_KAFKA_DEFAULT_BROKERS,
     "Bootstrap brokers, comma-separated host:port (SLUICE_KAFKA_BROKERS when unset)."},
    {"topic_prefix", SL_CK_STRING, "sluice.", "Prefix of every topic Sluice uses."},
    {"partitions", SL_CK_INT, "6", "Partitions of each topic that `sluicectl topics create` makes.",
     NULL, 1, 10000},
    {"replication_factor", SL_CK_INT, "1",
     "Replication factor of created topics (3 in production, with min.insync.replicas=2).", NULL, 1,
     16},
    {"produce_timeout", SL_CK_DURATION, "10s",
     "Deadline for a record to be acknowledged by the in-sync replicas (message.timeout.ms).", NULL,
     100, 900000},
    {"linger", SL_CK_DURATION, "5ms", "How long the producer waits to batch records (linger.ms).",
     NULL, 0, 1000},
    {"compression", SL_CK_ENUM, "lz4", "Record batch compression.", NULL, 0, 0,
     compression_choices},
    {"max_message_bytes", SL_CK_SIZE, "2MiB",
     "Largest record any Sluice client writes (librdkafka message.max.bytes). Must hold "
     "ingress.max_body_bytes plus 32 KiB for the record's key and headers; `sluicectl topics "
     "create` gives every topic max.message.bytes a little above it.",
     NULL, SL_KAFKA_MAX_MESSAGE_MIN, SL_KAFKA_MAX_MESSAGE_MAX},
    {"properties", SL_CK_STRING_MAP, NULL,
     "librdkafka properties passed through as they are (e.g. security.protocol). acks and "
     "enable.idempotence cannot be weakened; the keys above take precedence."},
    {NULL},
};

void sl_kafka_settings_default(struct sl_kafka_settings *s)
{
    memset(s, 0, sizeof(*s));
    const char *env = getenv("SLUICE_KAFKA_BROKERS");
    s->brokers = env && *env ? env : SL_KAFKA_DEFAULT_BROKERS;
    s->topic_prefix = "sluice.";
    s->partitions = 6;
    s->replication_factor = 1;
    s->produce_timeout_ms = 10000;
    s->linger_ms = 5;
    s->compression = "lz4";
    s->max_message_bytes = SL_KAFKA_MAX_MESSAGE_DEFAULT;
}

int sl_kafka_settings_load(const sl_conf_t *conf, struct sl_kafka_settings *s, struct sl_err *err)
{
    sl_kafka_settings_default(s);
    const sl_conf_node_t *sec = sl_conf_get(sl_conf_root(conf), "kafka");
    long long partitions, rf, timeout, linger;
    if (sl_conf_str(conf, sec, "brokers", s->brokers, &s->brokers, err) != 0 ||
        sl_conf_str(conf, sec, "topic_prefix", s->topic_prefix, &s->topic_prefix, err) != 0 ||
        sl_conf_int(conf, sec, "partitions", s->partitions, 1, 10000, &partitions, err) != 0 ||
        sl_conf_int(conf, sec, "replication_factor", s->replication_factor, 1, 16, &rf, err) != 0 ||
        sl_conf_duration_ms(conf, sec, "produce_timeout", s->produce_timeout_ms, 100, 900000,
                            &timeout, err) != 0 ||
        sl_conf_duration_ms(conf, sec, "linger", s->linger_ms, 0, 1000, &linger, err) != 0 ||
        sl_conf_str(conf, sec, "compression", s->compression, &s->compression, err) != 0 ||
        sl_conf_size(conf, sec, "max_message_bytes", s->max_message_bytes, SL_KAFKA_MAX_MESSAGE_MIN,
                     SL_KAFKA_MAX_MESSAGE_MAX, &s->max_message_bytes, err) != 0)
        return -1;
    s->partitions = (int)partitions;
    s->replication_factor = (int)rf;
    s->produce_timeout_ms = (int)timeout;
    s->linger_ms = (int)linger;

    const sl_conf_node_t *props = sl_conf_get(sec, "properties");
    if (sl_conf_count(props) > SL_KAFKA_MAX_PROPERTIES)
        return sl_conf_error(conf, props, err, "more than %d properties", SL_KAFKA_MAX_PROPERTIES);
    for (size_t i = 0; i < sl_conf_count(props); i++) {
        s->property_names[i] = sl_conf_key(props, i);
        /* The size chain (sl_kafka.h) rests on this one value. */
        if (strcmp(s->property_names[i], "message.max.bytes") == 0)
            return sl_conf_error(conf, sl_conf_item(props, i), err,
                                 "set kafka.max_message_bytes instead: the ingress body limit "
                                 "and the topics' max.message.bytes follow it");
        if (sl_conf_as_str(conf, sl_conf_item(props, i), &s->property_values[i], err) != 0)
            return -1;
        s->n_properties++;
    }
    return 0;
}

#define BATCH_FRAMING_BYTES 1024 /* record batch header and one record's framing, with room */

/* Settings made by hand (tests) may leave it 0: the default then. */
static long long max_message_bytes(const struct sl_kafka_settings *s)
{
    return s->max_message_bytes ? s->max_message_bytes : SL_KAFKA_MAX_MESSAGE_DEFAULT;
}

long long sl_kafka_topic_max_bytes(const struct sl_kafka_settings *s)
{
    long long max = max_message_bytes(s);
    return max + (max + 254) / 255 + BATCH_FRAMING_BYTES;
}

int sl_kafka_topic_name(const struct sl_kafka_settings *s, const char *name, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s%s", s->topic_prefix, name);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* librdkafka logs at syslog levels; map them onto ours. */
static void on_rdkafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    enum sl_log_level l = level <= 3   ? SL_LOG_ERROR
                          : level <= 4 ? SL_LOG_WARN
                          : level <= 6 ? SL_LOG_INFO
                                       : SL_LOG_DEBUG;
    sl_log(l, NULL, "librdkafka %s: %s: %s", rd_kafka_name(rk), fac, buf);
}

static void on_rdkafka_error(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
    /* Broker-down and similar errors are transient: librdkafka retries on its own, and
     * delivery reports carry what matters to callers. Fatal errors are another matter. */
    if (code == RD_KAFKA_RESP_ERR__FATAL) {
        char fatal[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
        SL_ERROR("kafka fatal error: %s: %s", rd_kafka_err2name(orig), fatal);
        return;
    }
    SL_WARN("kafka: %s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)code), reason);
}

int sl_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value,
                      struct sl_err *err)
{
    char errstr[512];
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
        return sl_err_set(err, SL_ERR_CONFIG, "kafka property %s: %s", name, errstr);
    return 0;
}

rd_kafka_conf_t *sl_kafka_conf_new(const struct sl_kafka_settings *s, const char *client_id,
                                   struct sl_err *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char max_message[32];
    snprintf(max_message, sizeof(max_message), "%lld", max_message_bytes(s));
    if (sl_kafka_conf_set(conf, "bootstrap.servers", s->brokers, err) != 0 ||
        sl_kafka_conf_set(conf, "client.id", client_id, err) != 0 ||
        sl_kafka_conf_set(conf, "socket.keepalive.enable", "true", err) != 0 ||
        sl_kafka_conf_set(conf, "message.max.bytes", max_message, err) != 0)
        goto fail;
    rd_kafka_conf_set_log_cb(conf, on_rdkafka_log);
    rd_kafka_conf_set_error_cb(conf, on_rdkafka_error);
    for (size_t i = 0; i < s->n_properties; i++)
        if (sl_kafka_conf_set(conf, s->property_names[i], s->property_values[i], err) != 0)
            goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Producer                                                                                    */

struct sl_producer {
    rd_kafka_t *rk;
    sl_producer_dr_cb dr;
    pthread_t poller;
    bool poller_running;
    atomic_bool stop;
};

/* Errors about the record itself, which no retry cures; SL_OK for the rest (a broker down, a
 * leader moving, a timeout: retriable). */
static enum sl_errcode permanent_code(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:    /* over message.max.bytes, or the topic's */
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE: /* the batch over the topic's limit */
        return SL_ERR_TOO_LARGE;
    case RD_KAFKA_RESP_ERR_INVALID_RECORD: /* refused by the broker's record validation */
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
        return SL_ERR_INVALID;
    default:
        return SL_OK;
    }
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    sl_producer_t *p = opaque;
    if (!p->dr)
        return;
    if (!msg->err) {
        p->dr(msg->_private, msg->partition, msg->offset, NULL);
        return;
    }
    struct sl_err err;
    enum sl_errcode permanent = permanent_code(msg->err);
    enum sl_errcode code =
        msg->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT ? SL_ERR_TIMEOUT : SL_ERR_KAFKA;
    if (permanent)
        sl_err_set(&err, permanent, "Kafka refused the record: %s (%s)", rd_kafka_err2str(msg->err),
                   rd_kafka_err2name(msg->err));
    else
        sl_err_retriable(&err, code, "Kafka did not acknowledge the record: %s (%s)",
                         rd_kafka_err2str(msg->err), rd_kafka_err2name(msg->err));
    if (rd_kafka_fatal_error(rk, NULL, 0))
        err.fatal = true, err.retriable = false;
    p->dr(msg->_private, msg->partition, msg->offset, &err);
}

sl_producer_t *sl_producer_new(const struct sl_kafka_settings *s, const char *client_id,
                               sl_producer_dr_cb dr, struct sl_err *err)
{
    sl_producer_t *p = calloc(1, sizeof(*p));
    rd_kafka_conf_t *conf = NULL;
    char buf[32], errstr[512];

    if (!p) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    p->dr = dr;
    conf = sl_kafka_conf_new(s, client_id, err);
    if (!conf)
        goto fail;
    /* Set after the pass-through properties: the no-loss guarantee rests on acks and
     * idempotence, and the deadline, linger and compression have keys of their own. */
    snprintf(buf, sizeof(buf), "%d", s->produce_timeout_ms);
    if (sl_kafka_conf_set(conf, "acks", "all", err) != 0 ||
        sl_kafka_conf_set(conf, "enable.idempotence", "true", err) != 0 ||
        sl_kafka_conf_set(conf, "message.timeout.ms", buf, err) != 0 ||
        sl_kafka_conf_set(conf, "compression.type", s->compression, err) != 0)
        goto fail;
    snprintf(buf, sizeof(buf), "%d", s->linger_ms);
    if (sl_kafka_conf_set(conf, "linger.ms", buf, err) != 0)
        goto fail;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, p);

    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!p->rk) {
        sl_err_set(err, SL_ERR_KAFKA, "cannot create Kafka producer: %s", errstr);
        goto fail;
    }
    return p; /* conf is owned by p->rk now */
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    free(p);
    return NULL;
}

static void *poller_main(void *arg)
{
    sl_producer_t *p = arg;
    while (!atomic_load(&p->stop))
        rd_kafka_poll(p->rk, 100);
    return NULL;
}

int sl_producer_start_poller(sl_producer_t *p, struct sl_err *err)
{
    if (pthread_create(&p->poller, NULL, poller_main, p) != 0)
        return sl_err_set(err, SL_ERR_INTERNAL, "cannot start the producer poller thread");
    p->poller_running = true;
    return 0;
}

int sl_producer_send(sl_producer_t *p, const char *topic, const void *key, size_t key_len,
                     const void *value, size_t value_len, rd_kafka_headers_t *headers,
                     void *msg_opaque, struct sl_err *err)
{
    /* RD_KAFKA_MSG_F_COPY: the caller's buffers are free to go once this returns. */
    rd_kafka_resp_err_t rc = rd_kafka_producev(
        p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)value, value_len),
        RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_END);
    if (!rc)
        return 0;
    if (rc == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return sl_err_retriable(err, SL_ERR_UNAVAILABLE,
                                "Kafka producer queue is full: the broker is not keeping up");
    enum sl_errcode permanent = permanent_code(rc);
    return sl_err_set(err, permanent ? permanent : SL_ERR_KAFKA, "cannot produce to %s: %s (%s)",
                      topic, rd_kafka_err2str(rc), rd_kafka_err2name(rc));
}

void sl_producer_poll(sl_producer_t *p, int timeout_ms)
{
    rd_kafka_poll(p->rk, timeout_ms);
}

int sl_producer_flush(sl_producer_t *p, int timeout_ms, struct sl_err *err)
{
    rd_kafka_resp_err_t rc = rd_kafka_flush(p->rk, timeout_ms);
    if (rc == RD_KAFKA_RESP_ERR__TIMED_OUT)
        return sl_err_retriable(err, SL_ERR_TIMEOUT, "%d records still unacknowledged after %d ms",
                                rd_kafka_outq_len(p->rk), timeout_ms);
    if (rc)
        return sl_err_set(err, SL_ERR_KAFKA, "flush: %s", rd_kafka_err2str(rc));
    return 0;
}

int sl_producer_outstanding(sl_producer_t *p)
{
    return rd_kafka_outq_len(p->rk);
}

rd_kafka_t *sl_producer_handle(sl_producer_t *p)
{
    return p->rk;
}

void sl_producer_destroy(sl_producer_t *p)
{
    if (!p)
        return;
    if (p->poller_running) {
        atomic_store(&p->stop, true);
        pthread_join(p->poller, NULL);
    }
    /* Records still queued are purged so each gets its (error) delivery report now, while
     * the callback's targets are still alive. */
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(p->rk, 0);
    rd_kafka_destroy(p->rk);
    free(p);
}

/* ------------------------------------------------------------------------------------------ */
/* Administration                                                                              */

int sl_kafka_create_topics(const struct sl_kafka_settings *s, const struct sl_topic_spec *specs,
                           size_t n, int timeout_ms, size_t *created, struct sl_err *err)
{
    rd_kafka_t *rk = NULL;
    rd_kafka_queue_t *queue = NULL;
    rd_kafka_AdminOptions_t *opts = NULL;
    rd_kafka_NewTopic_t **topics = calloc(n ? n : 1, sizeof(*topics));
    rd_kafka_event_t *ev = NULL;
    char errstr[512];
    int rc = -1;
    size_t made = 0;

    if (!topics) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        goto out;
    }
    rd_kafka_conf_t *conf = sl_kafka_conf_new(s, "sluice-admin", err);
    if (!conf)
        goto out;
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        sl_err_set(err, SL_ERR_KAFKA, "cannot create Kafka admin client: %s", errstr);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        topics[i] = rd_kafka_NewTopic_new(specs[i].name, specs[i].partitions,
                                          specs[i].replication_factor, errstr, sizeof(errstr));
        if (!topics[i]) {
            sl_err_set(err, SL_ERR_INVALID, "topic %s: %s", specs[i].name, errstr);
            goto out;
        }
        char max_bytes[32];
        snprintf(max_bytes, sizeof(max_bytes), "%lld", sl_kafka_topic_max_bytes(s));
        rd_kafka_resp_err_t set =
            rd_kafka_NewTopic_set_config(topics[i], "max.message.bytes", max_bytes);
        if (set) {
            sl_err_set(err, SL_ERR_INVALID, "topic %s: max.message.bytes: %s", specs[i].name,
                       rd_kafka_err2str(set));
            goto out;
        }
    }
    opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    if (rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, errstr, sizeof(errstr)) ||
        rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, errstr, sizeof(errstr))) {
        sl_err_set(err, SL_ERR_INVALID, "admin options: %s", errstr);
        goto out;
    }
    queue = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, topics, n, opts, queue);
    /* The request timeout bounds the answer; allow a little more for the local queue. */
    ev = rd_kafka_queue_poll(queue, timeout_ms + 2000);
    if (!ev) {
        sl_err_retriable(err, SL_ERR_TIMEOUT, "no answer from Kafka (%s) within %d ms", s->brokers,
                         timeout_ms);
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        sl_err_retriable(err, SL_ERR_UNAVAILABLE, "creating topics on %s: %s", s->brokers,
                         rd_kafka_event_error_string(ev));
        goto out;
    }
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    size_t n_res;
    const rd_kafka_topic_result_t **results = rd_kafka_CreateTopics_result_topics(res, &n_res);
    for (size_t i = 0; i < n_res; i++) {
        rd_kafka_resp_err_t terr = rd_kafka_topic_result_error(results[i]);
        if (terr == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            continue;
        if (terr) {
            const char *msg = rd_kafka_topic_result_error_string(results[i]);
            sl_err_set(err, SL_ERR_KAFKA, "topic %s: %s", rd_kafka_topic_result_name(results[i]),
                       msg ? msg : rd_kafka_err2str(terr));
            goto out;
        }
        made++;
    }
    if (created)
        *created = made;
    rc = 0;
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    if (queue)
        rd_kafka_queue_destroy(queue);
    if (opts)
        rd_kafka_AdminOptions_destroy(opts);
    for (size_t i = 0; topics && i < n; i++)
        if (topics[i])
            rd_kafka_NewTopic_destroy(topics[i]);
    free(topics);
    if (rk)
        rd_kafka_destroy(rk);
    return rc;
}

bool sl_kafka_reachable(rd_kafka_t *rk, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t rc = rd_kafka_metadata(rk, 0, NULL, &md, timeout_ms);
    if (md)
        rd_kafka_metadata_destroy(md);
    return rc == RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Consumers kept until exit (sl_kafka_consumer_destroy): referenced from here so that the leak
 * checker sees them as kept, not lost. A process has a consumer per stage or destination. */
#define KEPT_CONSUMERS_MAX 256
static rd_kafka_t *kept_consumers[KEPT_CONSUMERS_MAX];
static atomic_size_t n_kept_consumers;

bool sl_kafka_consumer_closable(bool assigned)
{
    return assigned || rd_kafka_version() >= 0x020300ff;
}

void sl_kafka_consumer_destroy(rd_kafka_t *rk, bool assigned)
{
    if (!rk)
        return;
    if (sl_kafka_consumer_closable(assigned)) {
        rd_kafka_destroy(rk);
        return;
    }
    SL_WARN("the consumer was never assigned a partition; it is left to the process exit, not "
            "destroyed (librdkafka %s aborts then: confluentinc/librdkafka#4312)",
            rd_kafka_version_str());
    size_t i = atomic_fetch_add(&n_kept_consumers, 1);
    if (i < KEPT_CONSUMERS_MAX)
        kept_consumers[i] = rk;
}
