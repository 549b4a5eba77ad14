#include "sl_testenv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "sl_id.h"
#include "sl_test.h"

void sl_testenv_kafka(struct sl_kafka_settings *s)
{
    sl_kafka_settings_default(s);
    s->topic_prefix = "sluice-test.";
    s->partitions = 1;
}

void sl_testenv_unique(const char *prefix, char *buf, size_t size)
{
    char id[SL_UUID_STR_LEN + 1];
    sl_uuid_v7(id);
    snprintf(buf, size, "%s-%s", prefix, id);
}

void sl_testenv_create_topic(const char *topic, int partitions)
{
    struct sl_kafka_settings s;
    struct sl_err err;
    sl_testenv_kafka(&s);
    struct sl_topic_spec spec = {topic, partitions, 1};
    if (sl_kafka_create_topics(&s, &spec, 1, 30000, NULL, &err) != 0) {
        sl_test_fail(__FILE__, __LINE__, "cannot create topic %s: %s", topic, err.msg);
        sl_test_abort_current();
    }
}

rd_kafka_t *sl_testenv_consumer(const char *topic, int partitions)
{
    struct sl_kafka_settings s;
    struct sl_err err;
    char group[128], errstr[512];
    sl_testenv_kafka(&s);
    sl_testenv_unique("sluice-test-reader", group, sizeof(group));
    rd_kafka_conf_t *conf = sl_kafka_conf_new(&s, "sluice-test-reader", &err);
    if (!conf || sl_kafka_conf_set(conf, "group.id", group, &err) != 0 ||
        sl_kafka_conf_set(conf, "isolation.level", "read_committed", &err) != 0 ||
        sl_kafka_conf_set(conf, "enable.auto.commit", "false", &err) != 0) {
        sl_test_fail(__FILE__, __LINE__, "consumer config: %s", err.msg);
        sl_test_abort_current();
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        sl_test_fail(__FILE__, __LINE__, "consumer: %s", errstr);
        sl_test_abort_current();
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; p++)
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    return rk;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t sl_testenv_consume(rd_kafka_t *consumer, rd_kafka_message_t **out, size_t max,
                          int timeout_ms)
{
    size_t n = 0;
    long long deadline = now_ms() + timeout_ms;
    while (n < max && now_ms() < deadline) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(consumer, 200);
        if (!msg)
            continue;
        if (msg->err) {
            rd_kafka_message_destroy(msg);
            continue;
        }
        out[n++] = msg;
    }
    return n;
}

int sl_testenv_broker(const char *action)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s/deploy/local/kafka.sh' %s >&2", sl_test_source_dir(), action);
    int status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
