/* The crash guard (sl_crashguard.h) against the real Redis: process lifetimes are guards
 * created and destroyed without sl_crashguard_done() (a death), and the markers are read back
 * from Redis. The binaries' behaviour is tests/fault/test_crash_loop.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_crashguard.h"
#include "sl_metrics.h"
#include "sl_redis.h"
#include "sl_test.h"
#include "sl_testenv.h"

/* One process: a guard on `topic` (group "g", walk 10) with its own metrics. */
struct proc {
    sl_metrics_t *metrics;
    sl_crashguard_t *g;
    sl_crashguard_topic_t *t;
};

static const char *redis_url(void)
{
    const char *url = getenv("SLUICE_REDIS_URL");
    return url && *url ? url : SL_REDIS_DEFAULT_URL;
}

static void proc_start(struct proc *p, const char *url, int max_crashes, const char *topic)
{
    struct sl_err err;
    p->metrics = sl_metrics_new();
    SL_REQUIRE(p->metrics);
    const struct sl_crashguard_opts o = {.stage = "t",
                                         .redis_url = url,
                                         .redis_timeout_ms = 1000,
                                         .max_crashes = max_crashes,
                                         .metrics = p->metrics};
    p->g = sl_crashguard_new(&o, &err);
    SL_REQUIRE(p->g);
    p->t = sl_crashguard_topic(p->g, "g", topic, 10, &err);
    SL_REQUIRE(p->t);
}

/* The process ends: cleanly after done(), or as a death when done() was not called. */
static void proc_end(struct proc *p)
{
    sl_crashguard_destroy(p->g);
    sl_metrics_destroy(p->metrics);
}

static bool metrics_have(struct proc *p, const char *line)
{
    size_t len;
    char *text = sl_metrics_render(p->metrics, &len);
    bool found = text && strstr(text, line) != NULL;
    free(text);
    return found;
}

/* The marker of partition 0, "" when there is none. */
static void marker(const char *topic, char *buf, size_t size)
{
    struct sl_err err;
    char key[512];
    snprintf(key, sizeof(key), "%s:crashguard:g:0", topic);
    sl_redis_t *r = sl_redis_new(redis_url(), 1000, &err);
    SL_REQUIRE(r);
    redisReply *reply = NULL;
    const char *argv[] = {"GET", key};
    SL_REQUIRE(sl_redis_cmd(r, &reply, 2, argv, NULL, &err) == 0);
    snprintf(buf, size, "%s", reply->type == REDIS_REPLY_STRING ? reply->str : "");
    freeReplyObject(reply);
    sl_redis_destroy(r);
}

static enum sl_crashguard_verdict enter(struct proc *p, int64_t offset, int want_crashes)
{
    int crashes = -1;
    enum sl_crashguard_verdict v = sl_crashguard_enter(p->t, 0, offset, &crashes);
    SL_CHECK_INT(crashes, want_crashes);
    return v;
}

SL_TEST(a_record_that_kills_its_batch_is_found_and_dead_lettered_after_three_crashes)
{
    char topic[128], m[128];
    sl_testenv_unique("crashguard", topic, sizeof(topic));
    struct proc p;

    /* Dies on offset 7 inside a batch that began at 5. */
    proc_start(&p, redis_url(), 3, topic);
    sl_crashguard_assigned(p.t, 0, 5);
    SL_CHECK(!sl_crashguard_alone(p.t, 0, 5));
    SL_CHECK_INT(enter(&p, 5, 0), SL_CRASHGUARD_GO);
    SL_CHECK_INT(enter(&p, 6, 0), SL_CRASHGUARD_GO);
    SL_CHECK_INT(enter(&p, 7, 0), SL_CRASHGUARD_GO);
    marker(topic, m, sizeof(m));
    SL_CHECK_STR(m, "5 -1 0"); /* one marker per batch, at its first record */
    proc_end(&p);

    /* The next owner replays from 5 one record at a time; 5 and 6 pass, 7 kills it again. */
    proc_start(&p, redis_url(), 3, topic);
    sl_crashguard_assigned(p.t, 0, 5);
    SL_CHECK(metrics_have(&p, "sluice_stage_crashes_total{stage=\"t\"} 1"));
    for (int64_t o = 5; o <= 6; o++) {
        SL_CHECK(sl_crashguard_alone(p.t, 0, o));
        SL_CHECK_INT(enter(&p, o, 1), SL_CRASHGUARD_GO);
        sl_crashguard_done(p.g);
    }
    SL_CHECK(sl_crashguard_alone(p.t, 0, 7));
    SL_CHECK_INT(enter(&p, 7, 1), SL_CRASHGUARD_GO);
    marker(topic, m, sizeof(m));
    SL_CHECK_STR(m, "7 7 1");
    proc_end(&p);

    /* Alone, a second time. */
    proc_start(&p, redis_url(), 3, topic);
    sl_crashguard_assigned(p.t, 0, 7);
    SL_CHECK_INT(enter(&p, 7, 2), SL_CRASHGUARD_GO);
    proc_end(&p);

    /* The third crash: dead-lettered without processing; then the partition moves on. */
    proc_start(&p, redis_url(), 3, topic);
    sl_crashguard_assigned(p.t, 0, 7);
    SL_CHECK(sl_crashguard_alone(p.t, 0, 7));
    SL_CHECK_INT(enter(&p, 7, 3), SL_CRASHGUARD_CRASHED);
    sl_crashguard_done(p.g);
    SL_CHECK(metrics_have(&p, "sluice_stage_crashed_records_total{stage=\"t\"} 1"));
    SL_CHECK(!sl_crashguard_alone(p.t, 0, 8));
    SL_CHECK_INT(enter(&p, 8, 0), SL_CRASHGUARD_GO);
    sl_crashguard_done(p.g);
    marker(topic, m, sizeof(m));
    SL_CHECK_STR(m, "");
    proc_end(&p);

    /* A clean run leaves nothing behind: the next owner suspects nothing. */
    proc_start(&p, redis_url(), 3, topic);
    sl_crashguard_assigned(p.t, 0, 9);
    SL_CHECK(!sl_crashguard_alone(p.t, 0, 9));
    SL_CHECK(metrics_have(&p, "sluice_stage_crashes_total{stage=\"t\"} 0"));
    proc_end(&p);
}

SL_TEST(a_marker_below_the_committed_offset_is_from_a_committed_batch)
{
    char topic[128], m[128];
    sl_testenv_unique("crashguard", topic, sizeof(topic));
    struct proc p;
    proc_start(&p, redis_url(), 3, topic);
    sl_crashguard_assigned(p.t, 0, 0);
    SL_CHECK_INT(enter(&p, 2, 0), SL_CRASHGUARD_GO);
    proc_end(&p); /* died after committing 2, before clearing its marker */
    marker(topic, m, sizeof(m));
    SL_CHECK_STR(m, "2 -1 0");
    proc_start(&p, redis_url(), 3, topic);
    sl_crashguard_assigned(p.t, 0, 3);
    SL_CHECK(!sl_crashguard_alone(p.t, 0, 3));
    SL_CHECK(metrics_have(&p, "sluice_stage_crashes_total{stage=\"t\"} 0"));
    proc_end(&p);
}

SL_TEST(without_redis_or_with_max_crashes_0_the_guard_steps_aside)
{
    char topic[128], m[128];
    sl_testenv_unique("crashguard", topic, sizeof(topic));
    struct proc p;
    /* Nothing listens on port 1: every call fails at once; records go on unguarded. */
    proc_start(&p, "redis://127.0.0.1:1/0", 3, topic);
    sl_crashguard_assigned(p.t, 0, 0);
    SL_CHECK_INT(enter(&p, 0, 0), SL_CRASHGUARD_GO);
    SL_CHECK(!sl_crashguard_alone(p.t, 0, 1));
    sl_crashguard_done(p.g);
    SL_CHECK(metrics_have(&p, "sluice_crashguard_up{stage=\"t\"} 0"));
    proc_end(&p);

    proc_start(&p, redis_url(), 0, topic);
    sl_crashguard_assigned(p.t, 0, 0);
    SL_CHECK_INT(enter(&p, 0, 0), SL_CRASHGUARD_GO);
    marker(topic, m, sizeof(m));
    SL_CHECK_STR(m, "");
    proc_end(&p);

    struct sl_err err;
    const struct sl_crashguard_opts bad = {.stage = "t", .max_crashes = 101};
    SL_CHECK(sl_crashguard_new(&bad, &err) == NULL);
    SL_CHECK_CONTAINS(err.msg, "max_crashes must be between 0 and 100");
}

SL_TEST_MAIN()
