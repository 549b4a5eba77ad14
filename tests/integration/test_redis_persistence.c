/*
 * Redis persistence as sluice-validate and sluice-deliver report it, against three private
 * redis-servers (redis_private): one without persistence (--save "" --appendonly no), one
 * with an append-only file, and one that refuses CONFIG (--rename-command CONFIG "", as a
 * managed Redis may). sl_redis_persistence() says NONE, ON and UNKNOWN; each binary, started
 * on that server, stays ready, shows the gauge sluice_redis_persistence (0, 1, -1) on
 * /metrics and, when there is something to say, a "redis persistence: ..." detail on /readyz.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redis_private.h"
#include "sl_redis.h"
#include "sl_test.h"
#include "sl_testenv.h"

#define STOP_MS     30000
#define METRICS_MAX (1024 * 1024)

struct server_case {
    const char *name;
    const char *const *args;
    enum sl_redis_persist want;
    const char *gauge;  /* the /metrics line */
    const char *detail; /* in /readyz; NULL: no detail at all */
};

static const char *const none_args[] = {"--save", "", "--appendonly", "no", NULL};
static const char *const aof_args[] = {"--appendonly", "yes", NULL};
static const char *const noconfig_args[] = {
    "--save", "", "--appendonly", "no", "--rename-command", "CONFIG", "", NULL};

static const struct server_case cases[] = {
    {"redis-none", none_args, SL_REDIS_PERSIST_NONE, "\nsluice_redis_persistence 0\n",
     "redis persistence: none"},
    {"redis-aof", aof_args, SL_REDIS_PERSIST_ON, "\nsluice_redis_persistence 1\n", NULL},
    {"redis-noconfig", noconfig_args, SL_REDIS_PERSIST_UNKNOWN, "\nsluice_redis_persistence -1\n",
     "redis persistence: unknown"},
};

/* Starts bin/<name> on `config`, waits until /readyz answers 200, checks its detail and the
 * gauge, and stops it. */
static void check_binary(const char *name, const char *config, const struct server_case *c)
{
    char listen[64], log[128], body[2048];
    int port = sl_testenv_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    snprintf(log, sizeof(log), "persistence-%s-%s", name, c->name);
    const char *args[] = {"--config", config, "--admin-listen", listen, NULL};
    pid_t pid = sl_testenv_spawn(name, args, log);
    long status = sl_testenv_wait_ready(port, 200, c->detail ? c->detail : "", body, sizeof(body));
    printf("# %s on %s: /readyz %ld %s\n", name, c->name, status, body);
    SL_CHECK_INT(status, 200);
    if (c->detail)
        SL_CHECK_CONTAINS(body, c->detail);
    else
        SL_CHECK_STR(body, "{\"status\":\"ready\"}");
    char *metrics = malloc(METRICS_MAX);
    SL_REQUIRE(metrics);
    SL_CHECK_INT(sl_testenv_http_get(port, "/metrics", metrics, METRICS_MAX), 200);
    SL_CHECK_CONTAINS(metrics, c->gauge);
    /* Stopped once its partition is assigned: librdkafka 2.0's sticky assignor can abort a
     * consumer closed before its first assignment. */
    for (int i = 0; i < 600 && !strstr(metrics, "sluice_replica_lag{"); i++) {
        usleep(100000);
        sl_testenv_http_get(port, "/metrics", metrics, METRICS_MAX);
    }
    free(metrics);
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, STOP_MS), 0);
}

SL_TEST(validate_and_deliver_report_redis_persistence)
{
    char prefix[128], topic[256], config[4096];
    sl_testenv_unique("sluice-test-persist", prefix, sizeof(prefix) - 1);
    strcat(prefix, ".");
    const char *topics[] = {"ingress", "validated", "dlq", "audit", "outcomes", "deliver.sink"};
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
        snprintf(topic, sizeof(topic), "%s%s", prefix, topics[i]);
        sl_testenv_create_topic(topic, 1);
    }
    sl_testenv_config(prefix,
                      "sources:\n  shop:\n    verify: { scheme: none }\n"
                      "destinations:\n  sink: { url: \"http://127.0.0.1:9/hook\" }\n",
                      config, sizeof(config));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct server_case *c = &cases[i];
        rp_t *redis = rp_start_with(c->name, c->args);
        struct sl_err err;
        sl_redis_t *r = sl_redis_new(rp_url(redis), 1000, &err);
        SL_REQUIRE(r);
        enum sl_redis_persist got = 99;
        SL_CHECK_INT(sl_redis_persistence(r, &got, &err), 0);
        SL_CHECK_INT(got, c->want);
        sl_redis_destroy(r);

        setenv("SLUICE_REDIS_URL", rp_url(redis), 1);
        check_binary("sluice-validate", config, c);
        check_binary("sluice-deliver", config, c);
        rp_destroy(redis);
    }
    /* A Redis that cannot be reached is an error (retriable), not "unknown". */
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", sl_testenv_free_port());
    struct sl_err err;
    sl_redis_t *r = sl_redis_new(url, 1000, &err);
    SL_REQUIRE(r);
    enum sl_redis_persist got;
    SL_CHECK_INT(sl_redis_persistence(r, &got, &err), -1);
    SL_CHECK(err.retriable);
    sl_redis_destroy(r);
}

SL_TEST_MAIN()
