/* sl_lag against the test broker, on a topic written in transactions and a group that commits
 * the offset after its last record (as sluice-deliver does, which the commit marker that
 * follows is not part of): records waiting are lag, with their age; consumed up to the marker,
 * the lag is 0, not 1. */
#include <string.h>
#include <time.h>

#include "sl_kafka.h"
#include "sl_lag.h"
#include "sl_test.h"
#include "sl_testenv.h"

#define N_RECORDS  3
#define TIMEOUT_MS 30000

/* N_RECORDS records to partition 0 of `topic` in one transaction. */
static void produce_in_a_transaction(const struct sl_kafka_settings *s, const char *topic)
{
    struct sl_err err;
    char errstr[512], txn_id[128];
    sl_testenv_unique("test-lag-txn", txn_id, sizeof(txn_id));
    rd_kafka_conf_t *conf = sl_kafka_conf_new(s, "test-lag", &err);
    SL_REQUIRE(conf && sl_kafka_conf_set(conf, "transactional.id", txn_id, &err) == 0);
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    SL_REQUIRE(p);
    SL_REQUIRE(!rd_kafka_init_transactions(p, TIMEOUT_MS) && !rd_kafka_begin_transaction(p));
    for (int i = 0; i < N_RECORDS; i++)
        SL_REQUIRE(!rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                                      RD_KAFKA_V_VALUE("{}", 2), RD_KAFKA_V_END));
    SL_REQUIRE(!rd_kafka_commit_transaction(p, TIMEOUT_MS));
    rd_kafka_destroy(p);
}

/* Commits `offset` on partition 0 of `topic` for `group`, without joining it. */
static void commit(const struct sl_kafka_settings *s, const char *group, const char *topic,
                   int64_t offset)
{
    struct sl_err err;
    char errstr[512];
    rd_kafka_conf_t *conf = sl_kafka_conf_new(s, "test-lag-commit", &err);
    SL_REQUIRE(conf && sl_kafka_conf_set(conf, "group.id", group, &err) == 0);
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    SL_REQUIRE(c);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0)->offset = offset;
    SL_CHECK_INT(rd_kafka_commit(c, l, 0), 0);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(c);
}

SL_TEST(a_commit_marker_is_no_lag)
{
    struct sl_kafka_settings s;
    struct sl_err err;
    struct sl_lag_group g = {.stage = "deliver", .destination = "d"};
    sl_testenv_kafka(&s);
    sl_testenv_unique("test-lag-topic", g.topic, sizeof(g.topic));
    sl_testenv_unique("test-lag-group", g.group, sizeof(g.group));
    sl_testenv_create_topic(g.topic, 1);
    produce_in_a_transaction(&s, g.topic);

    sl_lag_t *lag = sl_lag_new(&s, "test-lag-reader", &err);
    SL_REQUIRE(lag);
    struct sl_lag_partition p[2];
    size_t n = 0;
    /* Nothing committed: every record waits, and the marker after them is counted too. The
     * commit returns before the marker is written; the last stable offset moves once it is. */
    for (int tries = 0; tries < TIMEOUT_MS / 100; tries++) {
        SL_REQUIRE(sl_lag_read(lag, &g, TIMEOUT_MS, p, 2, &n, &err) == 0);
        if (n == 1 && p[0].end == N_RECORDS + 1)
            break;
        struct timespec pause = {0, 100 * 1000000L};
        nanosleep(&pause, NULL);
    }
    SL_CHECK_INT(n, 1);
    SL_CHECK_INT(p[0].committed, -1);
    SL_CHECK_INT(p[0].end, N_RECORDS + 1);
    SL_CHECK_INT(p[0].lag, N_RECORDS + 1);
    SL_CHECK(p[0].age_seconds >= 0);

    /* Every record consumed, the marker not: nothing is left to consume. */
    commit(&s, g.group, g.topic, N_RECORDS);
    SL_REQUIRE(sl_lag_read(lag, &g, TIMEOUT_MS, p, 2, &n, &err) == 0);
    SL_CHECK_INT(p[0].committed, N_RECORDS);
    SL_CHECK_INT(p[0].end, N_RECORDS + 1);
    SL_CHECK_INT(p[0].lag, 0);
    SL_CHECK(p[0].age_seconds == 0);
    sl_lag_destroy(lag);
}

SL_TEST_MAIN()
