/* A record that crashes a consuming binary must not stall its partition (issue 11, item 4).
 * The real binaries run against the test broker and Redis and are restarted after each crash,
 * as a supervisor would: three records go in on one partition, the middle one crashes the
 * process, and the test asks that the crasher ends as a dead letter with its reason and the
 * record after it is processed, within a bounded number of starts.
 *
 *   - sluice-transform with libjq 1.6's own poison pill (`.data.a[.data.n] = 1`,
 *     n = 2147483647: SIGSEGV in jv_array_set): refused by sl_expr's index guard, no crash;
 *   - sluice-transform and sluice-deliver with a crash on demand (tests/tools/crashshim.c,
 *     LD_PRELOADed in front of libjq's jq_start): the crash guard (sl_crashguard.h) finds the
 *     record and dead-letters it with reason crashed_stage after max_crashes crashes. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "deliver_harness.h"
#include "sl_test.h"
#include "sl_testenv.h"

#define MAX_STARTS 6     /* max_crashes (3) and then some: a crash loop ends the test */
#define STABLE_MS  15000 /* a start that lives this long got past the crasher */
#define MAX_MSGS   16

/* With the crash shim in front of libjq when `shim`, starts `bin` until one start lives
 * STABLE_MS; returns its pid (-1 when every start crashed) and the crashes in *crashes. */
static pid_t start_until_stable(const char *bin, const char *const *args, const char *log,
                                bool shim, int *crashes)
{
    char preload[4096];
    snprintf(preload, sizeof(preload), "%s/bin/libsluice_crashshim.so", sl_test_binary_dir());
    char asan[4096];
    char asan_was[2048] = "";
    bool had_asan = getenv("ASAN_OPTIONS") != NULL;
    if (had_asan)
        snprintf(asan_was, sizeof(asan_was), "%s", getenv("ASAN_OPTIONS"));
    /* Under AddressSanitizer the shim comes before its runtime in the library list. */
    snprintf(asan, sizeof(asan), "%s%sverify_asan_link_order=0", asan_was, asan_was[0] ? ":" : "");
    if (shim) {
        setenv("LD_PRELOAD", preload, 1);
        setenv("ASAN_OPTIONS", asan, 1);
    }
    *crashes = 0;
    pid_t stable = -1;
    for (int start = 0; start < MAX_STARTS && stable < 0; start++) {
        pid_t pid = sl_testenv_spawn(bin, args, log);
        int status = 0;
        pid_t done = 0;
        for (int waited = 0; waited < STABLE_MS && done == 0; waited += 100) {
            done = waitpid(pid, &status, WNOHANG);
            if (done == 0)
                usleep(100000);
        }
        if (done == 0) {
            stable = pid;
        } else if (WIFSIGNALED(status)) {
            (*crashes)++;
            printf("    %s start %d: killed by signal %d\n", bin, start + 1, WTERMSIG(status));
        } else {
            sl_test_fail(__FILE__, __LINE__, "%s exited with %d", bin, WEXITSTATUS(status));
            break;
        }
    }
    unsetenv("LD_PRELOAD");
    if (had_asan)
        setenv("ASAN_OPTIONS", asan_was, 1);
    else
        unsetenv("ASAN_OPTIONS");
    return stable;
}

#define TRANSFORM_RULES                                                                            \
    "transforms:\n"                                                                                \
    "  - name: poke\n"                                                                             \
    "    when: '.type == \"test.event\"'\n"                                                        \
    "    jq: '(.data.a[.data.n] = 1) | {type: \"test.poked\", data: .data}'\n"

/* Three events on one partition through sluice-transform; the middle one is `pill`. Returns
 * the crashes, and the dead letter's reason in `reason`. */
static int transform_run(const char *name, const char *pill, bool shim, char *reason, size_t size)
{
    struct sl_testenv_topics t;
    char config[4096], group[128], instance[128], admin[64], buf[4096];
    sl_testenv_stage_topics(&t, name, SL_TOPIC_VALIDATED, SL_TOPIC_NORMALIZED);
    sl_testenv_config(t.prefix, TRANSFORM_RULES, config, sizeof(config));
    sl_testenv_unique("group", group, sizeof(group));
    sl_testenv_unique("replica", instance, sizeof(instance));
    snprintf(admin, sizeof(admin), "127.0.0.1:%d", sl_testenv_free_port());
    sl_testenv_produce_event(t.in, "ev-before", "k", "{\"a\":[0],\"n\":0}");
    sl_testenv_produce_event(t.in, "ev-pill", "k", pill);
    sl_testenv_produce_event(t.in, "ev-after", "k", "{\"a\":[0],\"n\":1}");
    /* A stable instance id, as a StatefulSet gives: a restart takes its partitions back at
     * once instead of waiting for the dead member's session to time out. */
    const char *args[] = {"--config", config,           "--group", group, "--instance",
                          instance,   "--admin-listen", admin,     NULL};
    int crashes = 0;
    pid_t pid = start_until_stable("sluice-transform", args, name, shim, &crashes);
    reason[0] = '\0';
    if (pid < 0) {
        sl_test_fail(__FILE__, __LINE__, "sluice-transform crashed %d times in a row", crashes);
        return crashes;
    }
    rd_kafka_message_t *msgs[MAX_MSGS];
    rd_kafka_t *c;
    size_t n = sl_testenv_read_all(t.out, 3, msgs, MAX_MSGS, 2, &c);
    SL_CHECK_INT(n, 2);
    SL_CHECK(sl_testenv_find(msgs, n, "ev-before") != NULL);
    SL_CHECK(sl_testenv_find(msgs, n, "ev-after") != NULL); /* the partition moved on */
    sl_testenv_free_records(msgs, n, c);
    n = sl_testenv_read_all(t.dlq, 1, msgs, MAX_MSGS, 1, &c);
    SL_CHECK_INT(n, 1);
    rd_kafka_message_t *m = sl_testenv_find(msgs, n, "ev-pill");
    SL_CHECK(m != NULL);
    if (m && sl_testenv_header(m, "ce_sluicereason", buf, sizeof(buf)))
        snprintf(reason, size, "%s", buf);
    if (m)
        SL_CHECK_STR(sl_testenv_header(m, "ce_sluicestage", buf, sizeof(buf)), "transform");
    sl_testenv_free_records(msgs, n, c);
    /* The audit trail says it too. */
    n = sl_testenv_read_all(t.audit, 3, msgs, MAX_MSGS, 3, &c);
    m = NULL;
    for (size_t i = 0; i < n; i++)
        if (msgs[i]->key_len == 7 && memcmp(msgs[i]->key, "ev-pill", 7) == 0)
            m = msgs[i];
    SL_CHECK(m != NULL && strstr((const char *)m->payload, "\"dead_lettered\"") != NULL);
    sl_testenv_free_records(msgs, n, c);
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
    return crashes;
}

SL_TEST(libjq_poison_pill_is_a_dead_letter_not_a_crash_loop)
{
    char reason[4096];
    int crashes =
        transform_run("crash-jq", "{\"a\":[0],\"n\":2147483647}", false, reason, sizeof(reason));
    SL_CHECK_INT(crashes, 0);
    SL_CHECK_CONTAINS(reason, "array index 2147483647 is out of range");
}

SL_TEST(a_record_that_crashes_transform_is_dead_lettered_after_max_crashes)
{
    char reason[4096];
    int crashes = transform_run("crash-transform", "{\"a\":[0],\"n\":0,\"x\":\"crash-on-demand\"}",
                                true, reason, sizeof(reason));
    SL_CHECK_INT(crashes, 3);
    SL_CHECK_CONTAINS(reason, "crashed_stage: the record crashed sluice-transform 3 times");
}

/* Steady load on the input topic from a thread of the test: events "load-<n>" with keys
 * that spread over the partitions, until `stop`. */
struct load {
    const char *topic;
    atomic_bool stop;
    atomic_int sent;
    pthread_t thread;
};

static void *load_run(void *opaque)
{
    struct load *l = opaque;
    char id[32], key[32];
    for (int n = 0; !atomic_load(&l->stop); n++) {
        snprintf(id, sizeof(id), "load-%d", n);
        snprintf(key, sizeof(key), "key-%d", n);
        sl_testenv_produce_event(l->topic, id, key, "{\"a\":[0],\"n\":0}");
        atomic_fetch_add(&l->sent, 1);
        usleep(5000);
    }
    return NULL;
}

/* The crash guard replays a partition one record at a time after a death, committing the
 * open batch before each of them. With other partitions under load, that batch holds their
 * records when the crashing record comes: the commit must leave the crasher's partition at
 * the crasher, or the crash that follows loses it (neither delivered nor dead-lettered: seen
 * in the fault matrix's kill9-route row). Each restart is a chance to meet that order, which
 * the broker's fetch decides; the steady load makes it the likely one. */
SL_TEST(a_crashing_record_is_not_lost_while_other_partitions_are_busy)
{
    struct sl_testenv_topics t;
    char config[4096], group[128], instance[128], admin[64];
    sl_testenv_stage_topics(&t, "crash-busy", SL_TOPIC_VALIDATED, SL_TOPIC_NORMALIZED);
    sl_testenv_config(t.prefix, TRANSFORM_RULES, config, sizeof(config));
    sl_testenv_unique("group", group, sizeof(group));
    sl_testenv_unique("replica", instance, sizeof(instance));
    snprintf(admin, sizeof(admin), "127.0.0.1:%d", sl_testenv_free_port());
    sl_testenv_produce_event(t.in, "ev-pill", "k", "{\"a\":[0],\"n\":0,\"x\":\"crash-on-demand\"}");
    struct load load = {.topic = t.in};
    SL_REQUIRE(pthread_create(&load.thread, NULL, load_run, &load) == 0);
    const char *args[] = {"--config", config,           "--group", group, "--instance",
                          instance,   "--admin-listen", admin,     NULL};
    int crashes = 0;
    pid_t pid = start_until_stable("sluice-transform", args, "crash-busy", true, &crashes);
    atomic_store(&load.stop, true);
    pthread_join(load.thread, NULL);
    int sent = atomic_load(&load.sent);
    printf("    %d crashes, %d events of load\n", crashes, sent);
    SL_CHECK_INT(crashes, 3);
    if (pid < 0) {
        sl_test_fail(__FILE__, __LINE__, "sluice-transform crashed %d times in a row", crashes);
        return;
    }
    rd_kafka_message_t *dead[MAX_MSGS];
    rd_kafka_t *c;
    size_t n = sl_testenv_read_all(t.dlq, 1, dead, MAX_MSGS, 1, &c);
    for (size_t i = 0; i < n; i++)
        printf("    dead letter: %.*s\n", (int)dead[i]->key_len, (const char *)dead[i]->key);
    SL_CHECK_INT(n, 1);
    SL_CHECK(sl_testenv_find(dead, n, "ev-pill") != NULL);
    sl_testenv_free_records(dead, n, c);
    /* And the load went through, each event once. */
    rd_kafka_message_t **out = calloc((size_t)sent + 1, sizeof(*out));
    SL_REQUIRE(out);
    n = sl_testenv_read_all(t.out, 3, out, (size_t)sent + 1, (size_t)sent, &c);
    SL_CHECK_INT(n, sent);
    for (int i = 0; i < sent; i++) {
        char id[32];
        snprintf(id, sizeof(id), "load-%d", i);
        SL_CHECK(sl_testenv_find(out, n, id) != NULL);
    }
    sl_testenv_free_records(out, n, c);
    free(out);
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
}

SL_TEST(a_record_that_crashes_deliver_is_dead_lettered_after_max_crashes)
{
    const struct dh_opts o = {.dest_yaml = "    body: '{payload: .data}'\n", .partitions = 1};
    dh_t *h = dh_new(&o);
    char admin[64], instance[128], buf[4096];
    snprintf(admin, sizeof(admin), "127.0.0.1:%d", sl_testenv_free_port());
    sl_testenv_unique("replica", instance, sizeof(instance));
    dh_produce(h, "ev-before", "k", "{\"n\":1}", NULL);
    dh_produce(h, "ev-pill", "k", "{\"x\":\"crash-on-demand\"}", NULL);
    dh_produce(h, "ev-after", "k", "{\"n\":2}", NULL);
    dh_flush(h);
    const char *args[] = {"--config", dh_config(h), "--admin-listen", admin, "--instance",
                          instance,   NULL};
    int crashes = 0;
    pid_t pid = start_until_stable("sluice-deliver", args, "crash-deliver", true, &crashes);
    if (pid < 0) {
        sl_test_fail(__FILE__, __LINE__, "sluice-deliver crashed %d times in a row", crashes);
        dh_destroy(h);
        return;
    }
    SL_CHECK_INT(crashes, 3);
    dh_wait_2xx(h, 2); /* ev-before and ev-after: the partition moved on */
    struct dh_rec recs[MAX_MSGS];
    size_t n = dh_read(h, SL_TOPIC_DLQ, recs, 1, 60000);
    SL_CHECK_INT(n, 1);
    if (n == 1) {
        SL_CHECK(dh_header(&recs[0], "ce_id", buf, sizeof(buf)) && strcmp(buf, "ev-pill") == 0);
        SL_CHECK(dh_header(&recs[0], "ce_sluicereason", buf, sizeof(buf)));
        SL_CHECK_CONTAINS(buf, "crashed_stage: the record crashed sluice-deliver 3 times");
    }
    dh_recs_free(recs, n);
    n = dh_read(h, SL_TOPIC_OUTCOMES, recs, 3, 60000);
    SL_CHECK_INT(n, 3);
    dh_recs_free(recs, n);
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, 60000), 0);
    dh_destroy(h);
}

SL_TEST_MAIN()
