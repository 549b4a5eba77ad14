/* Exactly-once inside Kafka, the oracle of Kafka's own transactions_test.py: a stage process
 * on the shared loop (sluice-passthrough) is killed with SIGKILL at random moments while
 * events keep arriving, and restarted each time with the same instance id. Afterwards the
 * read_committed output holds every input event exactly once, and so does the audit topic.
 * The random seed is printed so that a failing run can be replayed. */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sl_cloudevent.h"
#include "sl_test.h"
#include "sl_testenv.h"

enum { N_EVENTS = 6000, N_KEYS = 50, BATCH = 100, KILLS = 4 };

struct feeder {
    char topic[256];
    atomic_int produced;
    atomic_bool failed;
};

static void on_report(void *opaque, int32_t partition, int64_t offset, const struct sl_err *err)
{
    struct feeder *f = opaque;
    if (err)
        atomic_store(&f->failed, true);
}

/* Produces N_EVENTS CloudEvents in batches, pausing between them, so that events keep
 * arriving while the stage is killed and restarted. */
static void *feed(void *arg)
{
    struct feeder *f = arg;
    struct sl_kafka_settings s;
    struct sl_err err;
    sl_testenv_kafka(&s);
    sl_producer_t *p = sl_producer_new(&s, "eos-feeder", on_report, &err);
    if (!p) {
        atomic_store(&f->failed, true);
        return NULL;
    }
    for (int i = 0; i < N_EVENTS; i++) {
        char id[32], key[16];
        snprintf(id, sizeof(id), "eos-%06d", i);
        snprintf(key, sizeof(key), "k%d", i % N_KEYS);
        struct sl_ce ce;
        sl_ce_init(&ce);
        rd_kafka_headers_t *hdrs = rd_kafka_headers_new(6);
        if (sl_ce_set(&ce, "specversion", "1.0", &err) || sl_ce_set(&ce, "id", id, &err) ||
            sl_ce_set(&ce, "source", "eos", &err) || sl_ce_set(&ce, "type", "eos.test", &err) ||
            sl_ce_to_headers(&ce, hdrs, &err) ||
            sl_producer_send(p, f->topic, key, strlen(key), id, strlen(id), hdrs, f, &err)) {
            rd_kafka_headers_destroy(hdrs);
            atomic_store(&f->failed, true);
        }
        sl_ce_free(&ce);
        if (i % BATCH == BATCH - 1) {
            sl_producer_flush(p, 30000, &err);
            atomic_store(&f->produced, i + 1);
            usleep(150000); /* ~650 events/s: the kills below land mid-stream */
        }
    }
    if (sl_producer_flush(p, 60000, &err) != 0)
        atomic_store(&f->failed, true);
    atomic_store(&f->produced, N_EVENTS);
    sl_producer_destroy(p);
    return NULL;
}

static int event_index(const char *id, size_t len)
{
    if (len != 10 || memcmp(id, "eos-", 4) != 0)
        return -1;
    int n = atoi(id + 4);
    return n >= 0 && n < N_EVENTS ? n : -1;
}

/* Reads `topic` until every event was seen and nothing new arrived for a few seconds (to
 * catch late duplicates), or 180 s passed, counting each event: by the ce_id header, or by the
 * audit record's event_id. Returns the records read. */
static size_t count_events(const char *topic, bool audit, int *counts)
{
    rd_kafka_t *c = sl_testenv_consumer(topic, 3);
    size_t total = 0;
    int distinct = 0, idle_ms = 0, waited_ms = 0;
    memset(counts, 0, sizeof(int) * N_EVENTS);
    while (waited_ms < 180000 && (distinct < N_EVENTS || idle_ms < 3000)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 500);
        if (!m || m->err) {
            if (m)
                rd_kafka_message_destroy(m);
            idle_ms += 500;
            waited_ms += 500;
            continue;
        }
        idle_ms = 0;
        total++;
        int idx = -1;
        if (audit) {
            json_t *a = json_loadb(m->payload, m->len, 0, NULL);
            const char *id = json_string_value(json_object_get(a, "event_id"));
            idx = id ? event_index(id, strlen(id)) : -1;
            json_decref(a);
        } else {
            rd_kafka_headers_t *h;
            const void *v;
            size_t n;
            if (!rd_kafka_message_headers(m, &h) && !rd_kafka_header_get_last(h, "ce_id", &v, &n))
                idx = event_index(v, n);
        }
        if (idx >= 0 && counts[idx]++ == 0)
            distinct++;
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return total;
}

static void check_exactly_once(const char *what, const int *counts, size_t total)
{
    int missing = 0, duplicated = 0;
    for (int i = 0; i < N_EVENTS; i++) {
        missing += counts[i] == 0;
        duplicated += counts[i] > 1;
    }
    printf("    %s: %zu records, %d events missing, %d duplicated\n", what, total, missing,
           duplicated);
    SL_CHECK_INT(total, N_EVENTS);
    SL_CHECK_INT(missing, 0);
    SL_CHECK_INT(duplicated, 0);
}

SL_TEST(kill_9_under_load_keeps_exactly_once)
{
    char prefix[128], in[256], out[256], audit[256], dlq[256], config[4096], group[96];
    char instance[96], admin[64];
    sl_testenv_unique("sluice-test-eos", prefix, sizeof(prefix) - 1);
    strcat(prefix, ".");
    snprintf(in, sizeof(in), "%singress", prefix);
    snprintf(out, sizeof(out), "%svalidated", prefix);
    snprintf(audit, sizeof(audit), "%saudit", prefix);
    snprintf(dlq, sizeof(dlq), "%sdlq", prefix);
    sl_testenv_create_topic(in, 3);
    sl_testenv_create_topic(out, 3);
    sl_testenv_create_topic(audit, 3);
    sl_testenv_create_topic(dlq, 1);
    /* Small transactions, so that kills land inside open ones as well as between them. */
    sl_testenv_config(prefix, "validate:\n  loop: { batch_max_events: 50, batch_max_wait: 20ms }\n",
                      config, sizeof(config));
    sl_testenv_unique("eos-group", group, sizeof(group));
    sl_testenv_unique("eos-instance", instance, sizeof(instance));
    snprintf(admin, sizeof(admin), "127.0.0.1:%d", sl_testenv_free_port());
    /* The pass-through stage stands in for validate, so it reads the section above. */
    setenv("SLUICE_PASSTHROUGH_AS", "validate", 1);
    setenv("SLUICE_PASSTHROUGH_INPUT", "ingress", 1);
    setenv("SLUICE_PASSTHROUGH_OUTPUT", "validated", 1);
    const char *args[] = {"--config", config,           "--group", group, "--instance",
                          instance,   "--admin-listen", admin,     NULL};

    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    printf("    seed %u\n", seed);
    struct feeder f = {0};
    snprintf(f.topic, sizeof(f.topic), "%s", in);
    pthread_t feeder;
    SL_REQUIRE(pthread_create(&feeder, NULL, feed, &f) == 0);

    pid_t pid = sl_testenv_spawn("sluice-passthrough", args, "eos");
    for (int k = 0; k < KILLS; k++) {
        /* Let it get going (the first start initialises transactions), then kill at a random
         * moment: before, inside or between transactions. */
        usleep((useconds_t)(k == 0 ? 2000000 : 0) + 200000 + (useconds_t)(rand_r(&seed) % 1500000));
        int status = sl_testenv_stop(pid, SIGKILL, 10000);
        printf("    kill %d after %d events produced: status %d\n", k + 1, atomic_load(&f.produced),
               status);
        SL_CHECK_INT(status, 128 + SIGKILL);
        pid = sl_testenv_spawn("sluice-passthrough", args, "eos");
    }
    pthread_join(feeder, NULL);
    SL_CHECK(!atomic_load(&f.failed));

    static int counts[N_EVENTS];
    size_t total = count_events(out, false, counts);
    check_exactly_once("output", counts, total);
    total = count_events(audit, true, counts);
    check_exactly_once("audit", counts, total);

    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
    unsetenv("SLUICE_PASSTHROUGH_AS");
    unsetenv("SLUICE_PASSTHROUGH_INPUT");
    unsetenv("SLUICE_PASSTHROUGH_OUTPUT");
}

/* A consumer that Kafka fences for good (here: a second process joins with the same static
 * instance id, as the broker does to a member after its restart when a commit races the
 * re-join) must stop the process with the reason, not leave it polling a dead consumer with
 * /healthz green and its partitions stalled. Found by tests/fault/matrix.sh (kafka-kill9). The
 * first process is idle, so only its consumer can notice: its transactional producer is never
 * used, and is not what stops it. */
SL_TEST(a_fenced_consumer_stops_the_process)
{
    char config[4096], group[96], instance[96], admin[2][64];
    struct sl_testenv_topics t;
    sl_testenv_stage_topics(&t, "fenced", "ingress", "validated");
    sl_testenv_config(t.prefix, "", config, sizeof(config));
    sl_testenv_unique("fenced-group", group, sizeof(group));
    sl_testenv_unique("fenced-instance", instance, sizeof(instance));
    setenv("SLUICE_PASSTHROUGH_AS", "validate", 1);
    setenv("SLUICE_PASSTHROUGH_INPUT", "ingress", 1);
    setenv("SLUICE_PASSTHROUGH_OUTPUT", "validated", 1);
    pid_t pid[2];
    for (int i = 0; i < 2; i++) {
        int port = sl_testenv_free_port();
        char body[512];
        snprintf(admin[i], sizeof(admin[i]), "127.0.0.1:%d", port);
        const char *args[] = {"--config", config,           "--group", group, "--instance",
                              instance,   "--admin-listen", admin[i],  NULL};
        pid[i] = sl_testenv_spawn("sluice-passthrough", args, "fenced");
        SL_CHECK_INT(sl_testenv_wait_ready(port, 200, "", body, sizeof(body)), 200);
    }
    /* The first one is fenced: it exits non-zero (a supervisor restarts it) within the bound. */
    int status = sl_testenv_stop(pid[0], 0, 60000);
    SL_CHECK(status != -1 && status != 0);
    SL_CHECK_INT(sl_testenv_stop(pid[1], SIGTERM, 60000), 0);
    unsetenv("SLUICE_PASSTHROUGH_AS");
    unsetenv("SLUICE_PASSTHROUGH_INPUT");
    unsetenv("SLUICE_PASSTHROUGH_OUTPUT");
}

SL_TEST_MAIN()
