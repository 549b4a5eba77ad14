/* Integration tests of sl_kafka against the real broker that the ctest fixture started:
 * produce with acks=all and read the record back with its headers intact; topic creation is
 * idempotent; a produce while the broker is stopped fails with a clear error (and the same
 * producer works again once the broker is back). */
#include <stdatomic.h>
#include <string.h>

#include "sl_cloudevent.h"
#include "sl_group.h"
#include "sl_kafka.h"
#include "sl_test.h"
#include "sl_testenv.h"

struct report {
    atomic_int done;
    int32_t partition;
    int64_t offset;
    bool failed;
    struct sl_err err;
};

static void on_report(void *opaque, int32_t partition, int64_t offset, const struct sl_err *err)
{
    struct report *r = opaque;
    r->partition = partition;
    r->offset = offset;
    if (err) {
        r->failed = true;
        r->err = *err;
    }
    atomic_store(&r->done, 1);
}

static void send_one(sl_producer_t *p, const char *topic, const char *key, const char *value,
                     const struct sl_ce *ce, struct report *r)
{
    struct sl_err err;
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(8);
    if (ce)
        SL_REQUIRE(sl_ce_to_headers(ce, hdrs, &err) == 0);
    if (sl_producer_send(p, topic, key, strlen(key), value, strlen(value), hdrs, r, &err) != 0) {
        rd_kafka_headers_destroy(hdrs);
        sl_test_fail(__FILE__, __LINE__, "send: %s", err.msg);
        sl_test_abort_current();
    }
}

SL_TEST(produce_acks_all_and_read_back_with_headers)
{
    struct sl_kafka_settings s;
    struct sl_err err;
    char topic[128];
    sl_testenv_kafka(&s);
    sl_testenv_unique("sluice-test.roundtrip", topic, sizeof(topic));
    sl_testenv_create_topic(topic, 3);

    sl_producer_t *p = sl_producer_new(&s, "test-producer", on_report, &err);
    SL_REQUIRE(p);
    /* The producer really is acks=all + idempotent. */
    char val[32];
    size_t len = sizeof(val);
    rd_kafka_conf_t *c = (rd_kafka_conf_t *)rd_kafka_conf(sl_producer_handle(p));
    SL_CHECK_INT(rd_kafka_conf_get(c, "enable.idempotence", val, &len), RD_KAFKA_CONF_OK);
    SL_CHECK_STR(val, "true");
    len = sizeof(val);
    SL_CHECK_INT(rd_kafka_conf_get(c, "acks", val, &len), RD_KAFKA_CONF_OK);
    SL_CHECK_STR(val, "-1");

    struct sl_ce ce;
    sl_ce_init(&ce);
    SL_CHECK_INT(sl_ce_set(&ce, "specversion", "1.0", &err), 0);
    SL_CHECK_INT(sl_ce_set(&ce, "id", "0193a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b", &err), 0);
    SL_CHECK_INT(sl_ce_set(&ce, "source", "stripe", &err), 0);
    SL_CHECK_INT(sl_ce_set(&ce, "type", "charge.succeeded", &err), 0);
    SL_CHECK_INT(sl_ce_set(&ce, "time", "2026-11-24T17:00:00.000Z", &err), 0);
    SL_CHECK_INT(sl_ce_set(&ce, "datacontenttype", "application/json", &err), 0);
    SL_CHECK_INT(sl_ce_set(&ce, SL_CE_IDEMPOTENCY_KEY, "evt_1", &err), 0);
    const char *body = "{\"id\":\"evt_1\",\"amount\":1200,\"note\":\"caf\xc3\xa9\"}";
    struct report r = {0};
    send_one(p, topic, "cus_42", body, &ce, &r);
    SL_REQUIRE(sl_producer_flush(p, 30000, &err) == 0);
    SL_REQUIRE(atomic_load(&r.done));
    SL_CHECK(!r.failed);
    SL_CHECK(r.offset >= 0);

    rd_kafka_t *consumer = sl_testenv_consumer(topic, 3);
    rd_kafka_message_t *msgs[4];
    size_t n = sl_testenv_consume(consumer, msgs, 1, 30000);
    SL_REQUIRE(n == 1);
    SL_CHECK_INT(msgs[0]->partition, r.partition);
    SL_CHECK_INT(msgs[0]->offset, r.offset);
    SL_CHECK(msgs[0]->key_len == 6 && memcmp(msgs[0]->key, "cus_42", 6) == 0);
    SL_CHECK(msgs[0]->len == strlen(body) && memcmp(msgs[0]->payload, body, msgs[0]->len) == 0);
    rd_kafka_headers_t *hdrs = NULL;
    SL_REQUIRE(rd_kafka_message_headers(msgs[0], &hdrs) == 0);
    struct sl_ce back;
    sl_ce_init(&back);
    SL_REQUIRE(sl_ce_from_headers(hdrs, &back, &err) == 0);
    SL_CHECK_INT(back.n, ce.n);
    for (size_t i = 0; i < ce.n; i++)
        SL_CHECK_STR(sl_ce_get(&back, ce.attrs[i].name), ce.attrs[i].value);
    sl_ce_free(&back);
    rd_kafka_message_destroy(msgs[0]);
    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);
    sl_ce_free(&ce);
    sl_producer_destroy(p);
}

SL_TEST(create_topics_twice_is_idempotent)
{
    struct sl_kafka_settings s;
    struct sl_err err;
    char a[128], b[128];
    sl_testenv_kafka(&s);
    sl_testenv_unique("sluice-test.idem-a", a, sizeof(a));
    sl_testenv_unique("sluice-test.idem-b", b, sizeof(b));
    struct sl_topic_spec specs[] = {{a, 2, 1}, {b, 1, 1}};
    size_t created = 99;
    SL_CHECK_INT(sl_kafka_create_topics(&s, specs, 2, 30000, &created, &err), 0);
    SL_CHECK_INT(created, 2);
    SL_CHECK_INT(sl_kafka_create_topics(&s, specs, 2, 30000, &created, &err), 0);
    SL_CHECK_INT(created, 0);
    /* A request the broker refuses is an error that names the topic. */
    struct sl_topic_spec bad = {a, 1, 5};
    char c[128];
    sl_testenv_unique("sluice-test.idem-c", c, sizeof(c));
    bad.name = c;
    SL_CHECK_INT(sl_kafka_create_topics(&s, &bad, 1, 30000, &created, &err), -1);
    SL_CHECK_CONTAINS(err.msg, c);
}

/* A consumer of `group` that has not joined it (OffsetFetch and OffsetCommit only). */
static rd_kafka_t *group_client(const char *group)
{
    struct sl_kafka_settings s;
    struct sl_err err;
    char errstr[256];
    sl_testenv_kafka(&s);
    rd_kafka_conf_t *conf = sl_kafka_conf_new(&s, "test-group", &err);
    SL_REQUIRE(conf && sl_kafka_conf_set(conf, "group.id", group, &err) == 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    SL_REQUIRE(rk);
    return rk;
}

/* The committed offsets of `group` on partitions 0..2 of `topic` (-1001: none). */
static void group_offsets(const char *group, const char *topic, int64_t out[3])
{
    rd_kafka_t *rk = group_client(group);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(3);
    for (int i = 0; i < 3; i++)
        rd_kafka_topic_partition_list_add(parts, topic, i);
    SL_REQUIRE(rd_kafka_committed(rk, parts, 30000) == RD_KAFKA_RESP_ERR_NO_ERROR);
    for (int i = 0; i < 3; i++)
        out[i] = parts->elems[i].offset;
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_destroy(rk);
}

static void group_commit(const char *group, const char *topic, const int64_t offsets[3])
{
    rd_kafka_t *rk = group_client(group);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(3);
    for (int i = 0; i < 3; i++)
        if (offsets[i] >= 0)
            rd_kafka_topic_partition_list_add(parts, topic, i)->offset = offsets[i];
    SL_REQUIRE(rd_kafka_commit(rk, parts, 0) == RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_destroy(rk);
}

/* The first start after groups were named after the pipeline resumes where the old group
 * stopped; later starts keep the new group's own offsets; a new pipeline adopts nothing. */
SL_TEST(group_adopts_the_legacy_groups_offsets_once)
{
    struct sl_kafka_settings s;
    struct sl_err err;
    char topic[128], other[128], group[128], legacy[128], fresh[128];
    sl_testenv_kafka(&s);
    sl_testenv_unique("sluice-test.adopt", topic, sizeof(topic));
    sl_testenv_unique("sluice-test.adopt-other", other, sizeof(other));
    sl_testenv_unique("sluice-test.adopt-group", group, sizeof(group));
    sl_testenv_unique("sluice-test.adopt-legacy", legacy, sizeof(legacy));
    sl_testenv_unique("sluice-test.adopt-fresh", fresh, sizeof(fresh));
    sl_testenv_create_topic(topic, 3);
    sl_testenv_create_topic(other, 3);
    for (int i = 0; i < 5; i++)
        sl_testenv_produce_event(topic, "adopt", i % 2 ? "a" : "b", "{}");
    /* The old group (shared by two pipelines) read 2 and 3 records of this topic, 1 of
     * another pipeline's. */
    const int64_t old[3] = {2, 3, -1}, others[3] = {1, -1, -1};
    group_commit(legacy, topic, old);
    group_commit(legacy, other, others);

    rd_kafka_t *rk = group_client(group);
    SL_CHECK_INT(sl_group_adopt(rk, group, legacy, topic, &err), 0);
    int64_t got[3];
    group_offsets(group, topic, got);
    SL_CHECK_INT(got[0], 2);
    SL_CHECK_INT(got[1], 3);
    SL_CHECK_INT(got[2], RD_KAFKA_OFFSET_INVALID);
    group_offsets(group, other, got); /* another pipeline's positions stay its own */
    SL_CHECK_INT(got[0], RD_KAFKA_OFFSET_INVALID);

    /* Once the group has its own offsets, the old group's are no longer read. */
    const int64_t moved[3] = {4, 5, 1}, older[3] = {0, 0, 0};
    group_commit(group, topic, moved);
    group_commit(legacy, topic, older);
    SL_CHECK_INT(sl_group_adopt(rk, group, legacy, topic, &err), 0);
    group_offsets(group, topic, got);
    SL_CHECK_INT(got[0], 4);
    SL_CHECK_INT(got[1], 5);
    SL_CHECK_INT(got[2], 1);
    rd_kafka_destroy(rk);

    /* An old group that never read the topic: nothing to adopt, nothing committed. */
    char unknown[128];
    sl_testenv_unique("sluice-test.adopt-none", unknown, sizeof(unknown));
    rk = group_client(fresh);
    SL_CHECK_INT(sl_group_adopt(rk, fresh, unknown, topic, &err), 0);
    rd_kafka_destroy(rk);
    group_offsets(fresh, topic, got);
    SL_CHECK_INT(got[0], RD_KAFKA_OFFSET_INVALID);

    char name[64];
    s.topic_prefix = "sluice.";
    SL_CHECK_INT(sl_group_id(&s, "validate", name, sizeof(name), &err), 0);
    SL_CHECK_STR(name, "sluice.validate");
    SL_CHECK_INT(sl_group_id(&s, "validate", name, 8, &err), -1);
}

SL_TEST(produce_with_broker_stopped_fails_within_deadline_then_recovers)
{
    struct sl_kafka_settings s;
    struct sl_err err;
    char topic[128];
    sl_testenv_kafka(&s);
    s.produce_timeout_ms = 3000;
    sl_testenv_unique("sluice-test.down", topic, sizeof(topic));
    sl_testenv_create_topic(topic, 1);
    sl_producer_t *p = sl_producer_new(&s, "test-producer-down", on_report, &err);
    SL_REQUIRE(p);

    struct report before = {0};
    send_one(p, topic, "k", "before", NULL, &before);
    SL_REQUIRE(sl_producer_flush(p, 30000, &err) == 0 && !before.failed);

    SL_REQUIRE(sl_testenv_broker("stop") == 0);
    if (sl_testenv_broker("status") == 0) {
        sl_test_fail(__FILE__, __LINE__,
                     "a broker still answers: the fixture's broker is not "
                     "the one this test can stop");
        sl_producer_destroy(p);
        return;
    }
    struct report down = {0};
    send_one(p, topic, "k", "while down", NULL, &down);
    /* The delivery report must come by itself once the deadline passes; the flush only
     * bounds how long the test waits for it (generously: this is no timing test). */
    sl_producer_flush(p, s.produce_timeout_ms * 10, &err);
    bool got_report = atomic_load(&down.done);
    int restarted = sl_testenv_broker("start");

    SL_CHECK(got_report);
    SL_CHECK(down.failed);
    SL_CHECK(down.err.retriable);
    SL_CHECK_INT(down.err.code, SL_ERR_TIMEOUT);
    SL_CHECK_CONTAINS(down.err.msg, "Kafka did not acknowledge the record");
    SL_CHECK_CONTAINS(down.err.msg, "timed out");
    SL_REQUIRE(restarted == 0);

    /* The same producer works again without a restart. */
    struct report after = {0};
    send_one(p, topic, "k", "after", NULL, &after);
    SL_CHECK_INT(sl_producer_flush(p, 60000, &err), 0);
    SL_CHECK(atomic_load(&after.done) && !after.failed);
    sl_producer_destroy(p);
}

SL_TEST_MAIN()
