/*
 * Two pipelines on one Kafka cluster, isolated by their topic prefix alone: the same stage
 * binaries (sluice-validate, -transform, -route, -deliver), each pipeline's own file with its
 * own prefix and nothing else set about groups (default consumer groups, default
 * transactional ids, the same host), and the same destination name in both. Both run side by
 * side; the same event ids are sent to both pipelines' ingress topics.
 *
 * Each pipeline delivers every one of its events exactly once to its own destination (its
 * own destsim), no stage process dies (a fenced producer ends the process), every stage's lag
 * (`sluicectl lag`, the groups its pipeline file implies) drains to 0, and every group of a
 * pipeline, described through the Admin API, has exactly one member (its own stage) whose
 * assignment holds only its own pipeline's topics: no foreign members, no shared groups.
 *
 * Every wait polls a state with a bounded timeout; none asserts on time.
 */
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "destsim_client.h"
#include "sl_kafka.h"
#include "sl_test.h"
#include "sl_testenv.h"

enum { EVENTS = 20, N_PIPES = 2, N_STAGES = 4 };

#define WAIT_MS    90000 /* longest wait for a state */
#define STOP_MS    60000 /* after SIGTERM, before SIGKILL */
#define POLL_MS    200
#define OUTPUT_MAX 16384

static const char *const stage_names[N_STAGES] = {"validate", "transform", "route", "deliver"};

struct pipe {
    char prefix[128];
    char config[4096];
    destsim_t *sim;
    pid_t pid[N_STAGES];
    int admin[N_STAGES];
};

static struct pipe pipes[N_PIPES];

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A failed check aborts the test where it stands: the stages still running are stopped when
 * the process exits. */
static void stop_all(void)
{
    for (int p = 0; p < N_PIPES; p++)
        for (int s = 0; s < N_STAGES; s++)
            if (pipes[p].pid[s] > 0) {
                sl_testenv_stop(pipes[p].pid[s], SIGTERM, STOP_MS);
                pipes[p].pid[s] = 0;
            }
}

/* `sluicectl --config CONFIG lag -o json` into out; its exit status. */
static int lag_json(const char *config, char *out, size_t size)
{
    char cmd[6144];
    snprintf(cmd, sizeof(cmd), "'%s/bin/sluicectl' --config '%s' lag -o json 2>&1",
             sl_test_binary_dir(), config);
    return sl_testenv_run(cmd, out, size);
}

/* The pipeline's groups (one per stage, as `sluicectl lag` derives them from the file) into
 * groups[stage]; the total lag of the transactional stages, -1 when it cannot be read. */
static long long pipeline_lag(const struct pipe *p, char groups[N_STAGES][256], bool last)
{
    char out[OUTPUT_MAX];
    if (lag_json(p->config, out, sizeof(out)) != 0)
        return -1;
    long long total = 0;
    /* The one document {"items": [...]} is a line of its own among stderr's log lines. */
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *doc = json_loads(line, 0, NULL), *j;
        size_t i;
        json_array_foreach(json_object_get(doc, "items"), i, j)
        {
            const char *stage = json_string_value(json_object_get(j, "stage"));
            const char *group = json_string_value(json_object_get(j, "group"));
            for (int s = 0; stage && group && s < N_STAGES; s++)
                if (strcmp(stage, stage_names[s]) == 0)
                    snprintf(groups[s], 256, "%s", group);
            /* A commit marker nobody consumes is no lag (sl_lag.h): deliver's groups drain to 0
             * like the transactional stages'. */
            long long lag = json_integer_value(json_object_get(j, "lag"));
            if (lag && last) {
                char *text = json_dumps(j, JSON_COMPACT);
                printf("# lag %s\n", text ? text : "?");
                free(text);
            }
            total += lag;
        }
        json_decref(doc);
    }
    return total;
}

/* Starts every stage of `p`, waiting for each one's /readyz. */
static void pipe_start(struct pipe *p, int index)
{
    for (int s = N_STAGES - 1; s >= 0; s--) {
        char bin[64], log[64], listen[64], body[256];
        snprintf(bin, sizeof(bin), "sluice-%s", stage_names[s]);
        snprintf(log, sizeof(log), "pipelines-%d-%s", index, stage_names[s]);
        p->admin[s] = sl_testenv_free_port();
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", p->admin[s]);
        const char *args[] = {"--config", p->config, "--admin-listen", listen, NULL};
        p->pid[s] = sl_testenv_spawn(bin, args, log);
        long long deadline = mono_ms() + WAIT_MS;
        while (sl_testenv_http_get(p->admin[s], "/readyz", body, sizeof(body)) != 200) {
            if (mono_ms() > deadline || kill(p->pid[s], 0) != 0) {
                sl_test_fail(__FILE__, __LINE__, "%s did not become ready (log tests/%s.log)", bin,
                             log);
                sl_test_abort_current();
            }
            usleep(POLL_MS * 1000);
        }
    }
}

/* Waits until `p`'s destsim answered 2xx to EVENTS requests (or gave up), then checks that
 * each event came exactly once, answered 2xx once. */
static void check_delivered_once(const struct pipe *p, int index)
{
    struct sl_err err;
    long long deadline = mono_ms() + WAIT_MS;
    long n = -1;
    json_t *c = NULL;
    for (;;) {
        json_decref(c);
        c = destsim_counters(p->sim, &err);
        SL_REQUIRE(c);
        n = (long)json_integer_value(json_object_get(json_object_get(c, "by_status"), "200"));
        if (n >= EVENTS || mono_ms() > deadline)
            break;
        usleep(POLL_MS * 1000);
    }
    if (n != EVENTS)
        sl_test_fail(__FILE__, __LINE__, "pipeline %d: its destination answered %ld 2xx of %d",
                     index, n, EVENTS);
    SL_CHECK_INT(json_integer_value(json_object_get(c, "requests_total")), EVENTS);
    json_t *keys = json_object_get(c, "keys");
    SL_CHECK_INT(json_object_size(keys), EVENTS);
    char key[128], id[64];
    for (int i = 0; i < EVENTS; i++) {
        snprintf(id, sizeof(id), "pipe-ev-%03d", i);
        sl_testenv_idempotency_key("shop", "shop", id, "sink", key, sizeof(key));
        json_t *k = json_object_get(keys, key);
        SL_CHECK(k != NULL);
        SL_CHECK_INT(json_integer_value(json_object_get(k, "requests")), 1);
        SL_CHECK_INT(json_integer_value(json_object_get(k, "2xx")), 1);
    }
    json_decref(c);
}

/* Describes `group` through the Admin API: the number of members, and how many of them have
 * a partition of a topic outside `prefix` assigned (foreign members). -1 on an error. */
static int describe_group(const char *group, const char *prefix, int *foreign)
{
    struct sl_kafka_settings s;
    struct sl_err err;
    char errstr[256];
    sl_testenv_kafka(&s);
    rd_kafka_conf_t *conf = sl_kafka_conf_new(&s, "test-pipelines-admin", &err);
    SL_REQUIRE(conf);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    SL_REQUIRE(rk);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    const char *groups[] = {group};
    rd_kafka_DescribeConsumerGroups(rk, groups, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    int members = -1;
    *foreign = 0;
    if (ev && !rd_kafka_event_error(ev)) {
        size_t n;
        const rd_kafka_ConsumerGroupDescription_t **d =
            rd_kafka_DescribeConsumerGroups_result_groups(
                rd_kafka_event_DescribeConsumerGroups_result(ev), &n);
        if (n == 1 && !rd_kafka_ConsumerGroupDescription_error(d[0])) {
            members = (int)rd_kafka_ConsumerGroupDescription_member_count(d[0]);
            for (int m = 0; m < members; m++) {
                const rd_kafka_MemberDescription_t *md =
                    rd_kafka_ConsumerGroupDescription_member(d[0], (size_t)m);
                const rd_kafka_topic_partition_list_t *parts =
                    rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(md));
                bool own = true;
                for (int i = 0; parts && i < parts->cnt; i++)
                    own &= strncmp(parts->elems[i].topic, prefix, strlen(prefix)) == 0;
                if (!own) {
                    printf("# group %s: foreign member %s\n", group,
                           rd_kafka_MemberDescription_client_id(md));
                    (*foreign)++;
                }
            }
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return members;
}

SL_TEST(two_pipelines_share_a_broker_without_meeting)
{
    struct sl_err err;
    char topic[256];
    atexit(stop_all);
    for (int p = 0; p < N_PIPES; p++) {
        struct pipe *pp = &pipes[p];
        char name[64];
        snprintf(name, sizeof(name), "sluice-test-pipe%d", p);
        sl_testenv_unique(name, pp->prefix, sizeof(pp->prefix) - 1);
        strcat(pp->prefix, ".");
        pp->sim = destsim_start(NULL, NULL, &err);
        SL_REQUIRE(pp->sim);
        /* Nothing about groups: the defaults are what is tested. */
        char *extra = NULL;
        SL_REQUIRE(asprintf(&extra,
                            "sources:\n  shop:\n    verify: { scheme: none }\n"
                            "destinations:\n  sink: { url: \"%s/hook\" }\n"
                            "routes:\n  - name: everything\n    when: 'true'\n    to: sink\n",
                            destsim_url(pp->sim)) > 0);
        sl_testenv_config(pp->prefix, extra, pp->config, sizeof(pp->config));
        free(extra);
        const char *topics[] = {"ingress",  "validated", "normalized", "deliver.sink",
                                "outcomes", "dlq",       "audit"};
        for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
            snprintf(topic, sizeof(topic), "%s%s", pp->prefix, topics[i]);
            sl_testenv_create_topic(topic, 3);
        }
    }
    /* Side by side: the second pipeline starts while the first runs. */
    for (int p = 0; p < N_PIPES; p++)
        pipe_start(&pipes[p], p);
    for (int p = 0; p < N_PIPES; p++) {
        snprintf(topic, sizeof(topic), "%.127singress", pipes[p].prefix);
        sl_testenv_produce_ingress(topic, "shop", "pipe-ev-", "pipe-ev-", 0, EVENTS);
    }

    for (int p = 0; p < N_PIPES; p++)
        check_delivered_once(&pipes[p], p);
    /* Every stage drained its input and its groups are its own. */
    for (int p = 0; p < N_PIPES; p++) {
        char groups[N_STAGES][256] = {{0}};
        long long deadline = mono_ms() + WAIT_MS, lag;
        while ((lag = pipeline_lag(&pipes[p], groups, mono_ms() > deadline)) != 0 &&
               mono_ms() <= deadline)
            usleep(POLL_MS * 1000);
        SL_CHECK_INT(lag, 0);
        for (int s = 0; s < N_STAGES; s++) {
            int foreign;
            SL_CHECK(groups[s][0] != '\0');
            int members = describe_group(groups[s], pipes[p].prefix, &foreign);
            printf("# pipeline %d, %s: group %s, %d member(s)\n", p, stage_names[s], groups[s],
                   members);
            SL_CHECK_INT(members, 1);
            SL_CHECK_INT(foreign, 0);
            for (int q = 0; q < N_PIPES; q++)
                SL_CHECK(q == p ||
                         strncmp(groups[s], pipes[q].prefix, strlen(pipes[q].prefix)) != 0);
        }
    }
    /* No stage died on the way (a fenced producer ends its process), and each stops cleanly. */
    for (int p = 0; p < N_PIPES; p++)
        for (int s = 0; s < N_STAGES; s++) {
            SL_CHECK(kill(pipes[p].pid[s], 0) == 0);
            SL_CHECK_INT(sl_testenv_stop(pipes[p].pid[s], SIGTERM, STOP_MS), 0);
            pipes[p].pid[s] = 0;
        }
    for (int p = 0; p < N_PIPES; p++)
        SL_CHECK_INT(destsim_stop(pipes[p].sim), 0);
}

int main(void)
{
    return sl_test_run_all();
}
