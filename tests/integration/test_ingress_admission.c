/*
 * test_ingress_admission: admission control (ingress.admission, sources.*.shed) against the test
 * broker. Validate is not running and events arrive, so validate's consumer lag passes max_lag:
 * the source with `shed: true` gets 429 with Retry-After and a JSON error, the other source 202,
 * and the metrics say so. Then a validate (the pass-through tool in validate's group) drains the
 * topic, and the shed source gets 202 again. Every 202 is in the topic exactly once. Behaviour
 * only: every wait is bounded and ends on a state.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingress_harness.h"
#include "sl_test.h"
#include "sl_testenv.h"

#define MAX_LAG      5
#define WAIT_MS      60000
#define ACCEPTED_MAX 64

#define SOURCES                                                                                    \
    "sources:\n"                                                                                   \
    "  provider:\n"                                                                                \
    "    verify: { scheme: none }\n"                                                               \
    "    shed: true\n"                                                                             \
    "  internal:\n"                                                                                \
    "    verify: { scheme: none }\n"

static const char *json_hdrs[] = {"Content-Type: application/json", NULL};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

struct accepted {
    char ids[ACCEPTED_MAX][64];
    size_t n;
};

/* POSTs one event to `source`; a 202's id goes to `acc`. Returns the status. */
static long post(const harness_t *h, const char *source, int seq, struct accepted *acc,
                 struct http_reply *r)
{
    char path[64], body[64];
    snprintf(path, sizeof(path), "/v1/events/%s", source);
    snprintf(body, sizeof(body), "{\"seq\":%d}", seq);
    long status = http_request(harness_port(h), "POST", path, json_hdrs, body, strlen(body), r);
    if (status == 202) {
        SL_REQUIRE(acc->n < ACCEPTED_MAX);
        SL_CHECK(http_accepted_id(r, acc->ids[acc->n], sizeof(acc->ids[0])));
        acc->n++;
    }
    return status;
}

/* Polls sluice_ingress_admission_lag until `done(value)`; returns the last value. */
static double wait_lag(const harness_t *h, bool (*done)(double))
{
    double v = harness_metric(h, "sluice_ingress_admission_lag");
    for (int waited = 0; !done(v) && waited < WAIT_MS; waited += 200) {
        sleep_ms(200);
        v = harness_metric(h, "sluice_ingress_admission_lag");
    }
    return v;
}

static bool over_bound(double v)
{
    return v > MAX_LAG;
}

static bool drained(double v)
{
    return v == 0;
}

SL_TEST(a_shed_source_gets_429_while_validate_lags_and_202_once_it_drains)
{
    harness_t *h = harness_start("    admission: { max_lag: 5, retry_after: 7s }\n", SOURCES);
    struct accepted acc = {.n = 0};
    struct http_reply r;
    int seq = 0;

    /* Validate is not running: every event is lag. The internal source is never shed. */
    for (int i = 0; i < 2 * MAX_LAG; i++)
        SL_CHECK_INT(post(h, "internal", seq++, &acc, &r), 202);
    SL_CHECK(wait_lag(h, over_bound) >= 2 * MAX_LAG);

    SL_CHECK_INT(post(h, "provider", seq++, &acc, &r), 429);
    http_check_error(&r, "overloaded", "shed request");
    SL_CHECK_STR(r.retry_after, "7");
    SL_CHECK_INT(post(h, "internal", seq++, &acc, &r), 202);
    SL_CHECK(harness_metric(h, "sluice_ingress_shed_total{source=\"provider\"}") == 1);
    SL_CHECK(harness_metric(h, "sluice_ingress_shed_total{source=\"internal\"}") == 0);
    SL_CHECK(harness_metric(
                 h, "sluice_ingress_requests_total{source=\"provider\",status=\"429\"}") == 1);

    /* A validate drains the topic: the provider is admitted again. */
    char prefix[256], config[4096], admin[64];
    const char *topic = harness_topic(h);
    snprintf(prefix, sizeof(prefix), "%.*s", (int)(strlen(topic) - strlen("ingress")), topic);
    /* The topics the stage writes: its output, audit records, dead letters. */
    static const char *const outputs[] = {"validated", "audit", "dlq"};
    for (size_t i = 0; i < sizeof(outputs) / sizeof(outputs[0]); i++) {
        char name[300];
        snprintf(name, sizeof(name), "%s%s", prefix, outputs[i]);
        sl_testenv_create_topic(name, HARNESS_TOPIC_PARTITIONS);
    }
    sl_testenv_config(prefix, "", config, sizeof(config));
    snprintf(admin, sizeof(admin), "127.0.0.1:%d", sl_testenv_free_port());
    const char *args[] = {"--config", config, "--admin-listen", admin, NULL};
    setenv("SLUICE_PASSTHROUGH_AS", "validate", 1);
    pid_t validate = sl_testenv_spawn("sluice-passthrough", args, "admission-validate");
    unsetenv("SLUICE_PASSTHROUGH_AS");
    SL_CHECK(wait_lag(h, drained) == 0);
    SL_CHECK_INT(post(h, "provider", seq++, &acc, &r), 202);
    SL_CHECK_INT(sl_testenv_stop(validate, SIGTERM, WAIT_MS), 0);

    /* Nothing accepted is lost, nothing refused was written. */
    struct records recs;
    harness_read_topic(topic, ACCEPTED_MAX, acc.n, WAIT_MS, 2000, &recs);
    SL_CHECK_INT(recs.n, acc.n);
    for (size_t i = 0; i < acc.n; i++) {
        bool found = false;
        for (size_t j = 0; j < recs.n && !found; j++) {
            char id[128];
            const char *v = record_header(recs.m[j], "ce_id", id, sizeof(id));
            found = v && strcmp(v, acc.ids[i]) == 0;
        }
        SL_CHECK(found);
    }
    records_free(&recs);
    SL_CHECK_INT(harness_signal_and_wait(h, SIGTERM), 0);
    harness_destroy(h);
}

int main(void)
{
    return sl_test_run_all();
}
