/*
 * `sluicectl replay` after a simulated outage, with real processes: sluice-validate,
 * sluice-transform, sluice-route and sluice-deliver against the test broker, Redis and destsim,
 * on a topic prefix, consumer groups (<stage>.loop.group_id) and a destination of this run's
 * own.
 *
 *   batch 1 sent to <prefix>ingress and delivered; sluice-validate stopped (the outage); batch 2
 *   sent while it is down (a replay from a time after it changes nothing: a replay never
 *   skips); sluice-validate restarted, batch 2 delivered. Then the operator's replay: refused
 *   while the stages run, a dry run that changes nothing, validate's group rewound to before
 *   batch 1, sluice-validate started again. Every event passes validate again (its dedup claim
 *   finds the same record: "same"), goes through transform and route again, and sluice-deliver
 *   finds each in its delivery ledger. Then the deliver group itself is rewound and a new
 *   sluice-deliver reads everything again (both copies), again stopped by the ledger.
 *
 * Nothing lost and nothing delivered twice: destsim saw exactly batch 1 + batch 2 requests,
 * one per Idempotency-Key, each answered 2xx once; deliver's metrics count every replayed event
 * as already_delivered; the audit trail shows validate's "first" and "same" for every event and
 * no duplicate. Stops are SIGTERM, so no request is in flight at a stop (a SIGKILL's in-flight
 * request is test_deliver_kill's subject).
 *
 * Every wait polls a state (destsim's counters, the group's lag from `sluicectl lag`, deliver's
 * /metrics, the audit topic) with a bounded timeout; none asserts on time.
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

enum { BATCH1 = 25, BATCH2 = 15, TOTAL = BATCH1 + BATCH2 };

#define WAIT_MS     90000 /* longest wait for a state */
#define STOP_MS     60000 /* after SIGTERM, before SIGKILL */
#define POLL_MS     200
#define OUTPUT_MAX  16384
#define METRICS_MAX (1024 * 1024)

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs `sluicectl --config CONFIG ARGS` (ARGS: a shell word list of the test's own, no
 * quoting needed); stdout and stderr into out. Returns the exit status. */
static int ctl(const char *config, char *out, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int ctl(const char *config, char *out, size_t size, const char *fmt, ...)
{
    char args[1024], cmd[6144];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "'%s/bin/sluicectl' --config '%s' %s 2>&1", sl_test_binary_dir(),
             config, args);
    return sl_testenv_run(cmd, out, size);
}

/* The workers this process started and has not stopped yet: a failed check aborts the test
 * where it stands, so they are stopped when the process exits (sl_testenv_spawn's children
 * would otherwise outlive it). */
static pid_t running[8];

static void stop_running(void)
{
    for (size_t i = 0; i < sizeof(running) / sizeof(running[0]); i++)
        if (running[i] > 0)
            sl_testenv_stop(running[i], SIGTERM, STOP_MS);
}

static void track(pid_t old, pid_t pid)
{
    static bool registered;
    if (!registered)
        registered = atexit(stop_running) == 0;
    for (size_t i = 0; i < sizeof(running) / sizeof(running[0]); i++)
        if (running[i] == old) {
            running[i] = pid;
            return;
        }
}

/* Starts bin/<name> on `config` with an admin port of its own; waits for /readyz. */
static pid_t start(const char *name, const char *config, const char *log, int *admin)
{
    char listen[64], body[256];
    *admin = sl_testenv_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", *admin);
    const char *args[] = {"--config", config, "--admin-listen", listen, NULL};
    pid_t pid = sl_testenv_spawn(name, args, log);
    track(0, pid);
    long long deadline = mono_ms() + WAIT_MS;
    while (sl_testenv_http_get(*admin, "/readyz", body, sizeof(body)) != 200) {
        if (mono_ms() > deadline || kill(pid, 0) != 0) {
            sl_test_fail(__FILE__, __LINE__, "%s did not become ready (log tests/%s.log)", name,
                         log);
            sl_test_abort_current();
        }
        usleep(POLL_MS * 1000);
    }
    return pid;
}

/* The group's total lag over `sluicectl lag --stage STAGE -o json` rows of `group`; -1 when
 * it cannot be read. */
static long long group_lag(const char *config, const char *stage, const char *group)
{
    char out[OUTPUT_MAX];
    if (ctl(config, out, sizeof(out), "lag --stage %s -o json", stage) != 0)
        return -1;
    long long total = 0;
    int lines = 0;
    /* The one document {"items": [...]} is a line of its own among stderr's log lines. */
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *doc = json_loads(line, 0, NULL), *j;
        size_t i;
        json_array_foreach(json_object_get(doc, "items"), i, j)
        {
            const char *g = json_string_value(json_object_get(j, "group"));
            if (g && strcmp(g, group) == 0) {
                total += json_integer_value(json_object_get(j, "lag"));
                lines++;
            }
        }
        json_decref(doc);
    }
    return lines ? total : -1;
}

static void wait_lag(const char *config, const char *stage, const char *group, long long want)
{
    long long deadline = mono_ms() + WAIT_MS, lag;
    while ((lag = group_lag(config, stage, group)) != want) {
        if (mono_ms() > deadline) {
            sl_test_fail(__FILE__, __LINE__, "lag of %s stayed %lld, waited for %lld", group, lag,
                         want);
            sl_test_abort_current();
        }
        usleep(POLL_MS * 1000);
    }
}

/* deliver's outcome counter for `outcome` from its /metrics; -1 when absent. */
static double outcomes(int admin, const char *dest, const char *outcome)
{
    char series[256];
    snprintf(series, sizeof(series),
             "sluice_deliver_outcomes_total{destination=\"%s\",outcome=\"%s\"} ", dest, outcome);
    char *text = malloc(METRICS_MAX);
    SL_REQUIRE(text);
    double v = -1;
    if (sl_testenv_http_get(admin, "/metrics", text, METRICS_MAX) == 200) {
        char *at = strstr(text, series);
        if (at && (at == text || at[-1] == '\n'))
            v = strtod(at + strlen(series), NULL);
    }
    free(text);
    return v;
}

static void wait_outcomes(int admin, const char *dest, const char *outcome, double want)
{
    long long deadline = mono_ms() + WAIT_MS;
    double v;
    while ((v = outcomes(admin, dest, outcome)) != want) {
        if (mono_ms() > deadline) {
            sl_test_fail(__FILE__, __LINE__, "%s outcomes stayed %.0f, waited for %.0f", outcome, v,
                         want);
            sl_test_abort_current();
        }
        usleep(POLL_MS * 1000);
    }
}

/* Waits until destsim answered `want` requests 2xx. */
static void wait_2xx(destsim_t *sim, long want)
{
    struct sl_err err;
    long long deadline = mono_ms() + WAIT_MS;
    for (;;) {
        json_t *c = destsim_counters(sim, &err);
        long n =
            c ? (long)json_integer_value(json_object_get(json_object_get(c, "by_status"), "200"))
              : -1;
        json_decref(c);
        if (n == want)
            return;
        if (mono_ms() > deadline || n > want) {
            sl_test_fail(__FILE__, __LINE__, "destsim answered %ld 2xx, waited for %ld", n, want);
            sl_test_abort_current();
        }
        usleep(POLL_MS * 1000);
    }
}

/* Nothing lost, nothing twice: TOTAL requests in all, TOTAL keys, each answered 2xx once. */
static void check_exactly_once(destsim_t *sim, const char *dest)
{
    struct sl_err err;
    json_t *c = destsim_counters(sim, &err);
    SL_REQUIRE(c);
    SL_CHECK_INT(json_integer_value(json_object_get(c, "requests_total")), TOTAL);
    json_t *keys = json_object_get(c, "keys");
    SL_CHECK_INT(json_object_size(keys), TOTAL);
    char key[128], id[64];
    for (int i = 0; i < TOTAL; i++) {
        snprintf(id, sizeof(id), "replay-ev-%03d", i);
        sl_testenv_idempotency_key("shop", "shop", id, dest, key, sizeof(key));
        json_t *k = json_object_get(keys, key);
        SL_CHECK(k != NULL);
        SL_CHECK_INT(json_integer_value(json_object_get(k, "requests")), 1);
        SL_CHECK_INT(json_integer_value(json_object_get(k, "2xx")), 1);
    }
    json_decref(c);
}

/* Validate's dedup decisions in the audit trail: every event claimed its idempotency key once
 * ("first") and, read again by the replay, found its own record holding it ("same"): passed
 * again, never a "duplicate". Reads <prefix>audit until validate's 2 * TOTAL records came. */
static void check_validate_dedup(const char *audit)
{
    rd_kafka_t *c = sl_testenv_consumer(audit, 1);
    rd_kafka_message_t *msgs[256];
    int first = 0, same = 0, other = 0;
    long long deadline = mono_ms() + WAIT_MS;
    while (first + same + other < 2 * TOTAL && mono_ms() < deadline) {
        size_t n = sl_testenv_consume(c, msgs, 256, 2000);
        for (size_t i = 0; i < n; i++) {
            json_t *a = json_loadb(msgs[i]->payload, msgs[i]->len, 0, NULL);
            const char *stage = json_string_value(json_object_get(a, "stage"));
            const char *outcome = json_string_value(json_object_get(a, "outcome"));
            const char *dedup =
                json_string_value(json_object_get(json_object_get(a, "detail"), "dedup"));
            if (stage && strcmp(stage, "validate") == 0) {
                if (outcome && strcmp(outcome, "passed") == 0 && dedup &&
                    strcmp(dedup, "first") == 0)
                    first++;
                else if (outcome && strcmp(outcome, "passed") == 0 && dedup &&
                         strcmp(dedup, "same") == 0)
                    same++;
                else
                    other++;
            }
            json_decref(a);
            rd_kafka_message_destroy(msgs[i]);
        }
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    SL_CHECK_INT(first, TOTAL);
    SL_CHECK_INT(same, TOTAL);
    SL_CHECK_INT(other, 0);
}

/* "2026-11-24T20:00:00.123Z" for the wall clock now. */
static void now_rfc3339(char *buf, size_t size)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char day[24];
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03dZ", day, (int)(ts.tv_nsec / 1000000));
}

/* The pipeline's stages as child processes. */
struct stages {
    const char *config;
    pid_t pid[4];
    int admin[4];
};

static const char *const stage_names[] = {"validate", "transform", "route", "deliver"};
enum { VALIDATE, TRANSFORM, ROUTE, DELIVER };

static void stage_start(struct stages *st, int i)
{
    char bin[64], log[64];
    snprintf(bin, sizeof(bin), "sluice-%s", stage_names[i]);
    snprintf(log, sizeof(log), "replay-%s", stage_names[i]);
    st->pid[i] = start(bin, st->config, log, &st->admin[i]);
}

static void stage_stop(struct stages *st, int i)
{
    SL_CHECK_INT(sl_testenv_stop(st->pid[i], SIGTERM, STOP_MS), 0);
    track(st->pid[i], 0);
    st->pid[i] = 0;
}

SL_TEST(replay_after_outage_delivers_nothing_twice)
{
    struct sl_err err;
    char prefix[128], topic[256], ingress[256], config[4096], dest[32], out[OUTPUT_MAX];
    char groups[3][96], from[64], later[64];
    sl_testenv_unique("sluice-test-replay", prefix, sizeof(prefix) - 1);
    strcat(prefix, ".");
    for (int i = VALIDATE; i <= ROUTE; i++) {
        char name[32];
        snprintf(name, sizeof(name), "replay-%s", stage_names[i]);
        sl_testenv_unique(name, groups[i], sizeof(groups[i]));
    }
    snprintf(dest, sizeof(dest), "replay-%s", prefix + strlen(prefix) - 13);
    dest[strlen(dest) - 1] = '\0'; /* the uuid's random end, without the prefix's dot */
    destsim_t *sim = destsim_start(NULL, NULL, &err);
    SL_REQUIRE(sim);

    /* Every event passes validate (a source without schemas) and transform (no rules), and
     * goes to the one destination. */
    char *extra = NULL;
    SL_REQUIRE(asprintf(&extra,
                        "sources:\n  shop:\n    verify: { scheme: none }\n"
                        "destinations:\n  %s: { url: \"%s/hook\" }\n"
                        "routes:\n  - name: everything\n    when: 'true'\n    to: %s\n"
                        "validate:\n  loop: { group_id: \"%s\" }\n"
                        "transform:\n  loop: { group_id: \"%s\" }\n"
                        "route:\n  loop: { group_id: \"%s\" }\n",
                        dest, destsim_url(sim), dest, groups[VALIDATE], groups[TRANSFORM],
                        groups[ROUTE]) > 0);
    sl_testenv_config(prefix, extra, config, sizeof(config));
    free(extra);
    const char *main_topics[] = {"ingress", "validated", "normalized"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(topic, sizeof(topic), "%s%s", prefix, main_topics[i]);
        sl_testenv_create_topic(topic, 3);
    }
    snprintf(topic, sizeof(topic), "%sdeliver.%s", prefix, dest);
    sl_testenv_create_topic(topic, 3);
    const char *side[] = {"outcomes", "dlq", "audit"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(topic, sizeof(topic), "%s%s", prefix, side[i]);
        sl_testenv_create_topic(topic, 1);
    }
    snprintf(ingress, sizeof(ingress), "%singress", prefix);

    struct stages st = {.config = config};
    for (int i = DELIVER; i >= VALIDATE; i--)
        stage_start(&st, i);
    const char *vgroup = groups[VALIDATE];

    /* Batch 1, delivered. */
    now_rfc3339(from, sizeof(from));
    sl_testenv_produce_ingress(ingress, "shop", "replay-ev-", "order-", 0, BATCH1);
    wait_2xx(sim, BATCH1);

    /* The outage: validate stopped, batch 2 waits in its input. */
    stage_stop(&st, VALIDATE);
    sl_testenv_produce_ingress(ingress, "shop", "replay-ev-", "order-", BATCH1, TOTAL);
    wait_lag(config, "validate", vgroup, BATCH2);
    /* A replay never skips: from a time after batch 2, the partitions that still hold batch 2
     * keep their offsets. */
    now_rfc3339(later, sizeof(later));
    SL_CHECK_INT(ctl(config, out, sizeof(out), "replay --stage validate --from %s", later), 0);
    SL_CHECK_CONTAINS(out, "kept: not processed up to the time yet");
    SL_CHECK_CONTAINS(out, "nothing to reset");
    SL_CHECK_INT(group_lag(config, "validate", vgroup), BATCH2);
    stage_start(&st, VALIDATE);
    wait_2xx(sim, TOTAL);
    wait_lag(config, "validate", vgroup, 0);
    wait_outcomes(st.admin[DELIVER], dest, "delivered", TOTAL);

    /* Refused while the stages run, naming the members. */
    SL_CHECK_INT(ctl(config, out, sizeof(out), "replay --stage validate --from %s", from), 1);
    SL_CHECK_CONTAINS(out, vgroup);
    SL_CHECK_CONTAINS(out, "has 1 active member(s) (");
    SL_CHECK_CONTAINS(out, "); stop sluice-validate first: ");
    char member[160];
    snprintf(member, sizeof(member), "%s-consumer@", vgroup); /* the member's client id@host */
    SL_CHECK_CONTAINS(out, member);
    SL_CHECK_INT(ctl(config, out, sizeof(out), "replay --stage deliver --destination %s --from %s",
                     dest, from),
                 1);
    SL_CHECK_CONTAINS(out, "deliver.");
    SL_CHECK_CONTAINS(out, "stop every sluice-deliver serving");
    SL_CHECK_INT(group_lag(config, "validate", vgroup), 0); /* the refusals changed nothing */

    /* Stopped: a dry run shows the rewind and changes nothing. */
    stage_stop(&st, VALIDATE);
    SL_CHECK_INT(ctl(config, out, sizeof(out), "replay --stage validate --from %s --dry-run", from),
                 0);
    SL_CHECK_CONTAINS(out, "rewound");
    SL_CHECK_CONTAINS(out, "would be rewound, 40 offset(s) read again; nothing changed");
    SL_CHECK_INT(group_lag(config, "validate", vgroup), 0);

    /* The replay: validate's group rewound to before batch 1. Every event goes through
     * validate (its dedup claim: the same record), transform and route again, and reaches
     * deliver, which finds it in the ledger. */
    SL_CHECK_INT(ctl(config, out, sizeof(out), "replay --stage validate --from %s", from), 0);
    printf("%s", out);
    SL_CHECK_CONTAINS(out, "40 offset(s) will be read again when sluice-validate starts");
    SL_CHECK_INT(group_lag(config, "validate", vgroup), TOTAL);
    stage_start(&st, VALIDATE);
    wait_lag(config, "validate", vgroup, 0);
    wait_outcomes(st.admin[DELIVER], dest, "already_delivered", TOTAL);
    SL_CHECK_INT(outcomes(st.admin[DELIVER], dest, "delivered"), TOTAL);
    check_exactly_once(sim, dest);
    snprintf(topic, sizeof(topic), "%saudit", prefix);
    check_validate_dedup(topic);

    /* The deliver group rewound as well: a new sluice-deliver reads both copies of every
     * event, and the ledger stops each. */
    stage_stop(&st, DELIVER);
    SL_CHECK_INT(ctl(config, out, sizeof(out), "replay --stage deliver --destination %s --from %s",
                     dest, from),
                 0);
    printf("%s", out);
    /* Its topic is written by route's transactions: markers take offsets too. */
    SL_CHECK_CONTAINS(out, "offset(s) will be read again when sluice-deliver starts");
    stage_start(&st, DELIVER);
    wait_outcomes(st.admin[DELIVER], dest, "already_delivered", 2 * TOTAL);
    SL_CHECK_INT(outcomes(st.admin[DELIVER], dest, "delivered"), 0);
    check_exactly_once(sim, dest);

    for (int i = VALIDATE; i <= DELIVER; i++)
        stage_stop(&st, i);
    SL_CHECK_INT(destsim_stop(sim), 0);
    unlink(config);
}

/* Bad input: each a clear message, exit 2 for usage, 1 for what the broker says. */
SL_TEST(bad_input_is_refused_clearly)
{
    char config[4096], prefix[128], out[OUTPUT_MAX];
    sl_testenv_unique("sluice-test-replay-none", prefix, sizeof(prefix) - 1);
    strcat(prefix, ".");
    sl_testenv_config(prefix, "destinations:\n  d1: { url: \"http://127.0.0.1:9/\" }\n", config,
                      sizeof(config));
    SL_CHECK_INT(ctl(config, out, sizeof(out), "replay --stage nope --from -1h"), 2);
    SL_CHECK_CONTAINS(out, "unknown stage 'nope' (validate, transform, route, deliver)");
    SL_CHECK_INT(ctl(config, out, sizeof(out), "replay --stage route"), 2);
    SL_CHECK_CONTAINS(out, "--stage and --from are required");
    SL_CHECK_INT(ctl(config, out, sizeof(out), "replay --stage route --from yesterday"), 2);
    SL_CHECK_CONTAINS(out, "--from 'yesterday': not a time");
    SL_CHECK_INT(ctl(config, out, sizeof(out), "replay --stage route --from 2026-02-30T00:00:00Z"),
                 2);
    SL_CHECK_CONTAINS(out, "not a time");
    SL_CHECK_INT(ctl(config, out, sizeof(out), "replay --stage route --from 2999-01-01T00:00:00Z"),
                 2);
    SL_CHECK_CONTAINS(out, "is in the future");
    SL_CHECK_INT(ctl(config, out, sizeof(out), "replay --stage route --from -1h --to -5m"), 2);
    SL_CHECK_CONTAINS(out, "--to is not supported");
    SL_CHECK_INT(ctl(config, out, sizeof(out), "replay --stage route --from -1h --group ''"), 2);
    SL_CHECK_CONTAINS(out, "group '': empty or too long");
    SL_CHECK_INT(ctl(config, out, sizeof(out), "replay --stage deliver --from -1h"), 2);
    SL_CHECK_CONTAINS(out, "needs --destination NAME");
    SL_CHECK_INT(
        ctl(config, out, sizeof(out), "replay --stage deliver --destination d2 --from -1h"), 2);
    SL_CHECK_CONTAINS(out, "no destination 'd2'");
    /* The stage's topic does not exist under this prefix. */
    SL_CHECK_INT(ctl(config, out, sizeof(out), "replay --stage validate --from -1h --dry-run"), 1);
    SL_CHECK_CONTAINS(out, "no topic ");
    SL_CHECK_CONTAINS(out, "ingress");
    unlink(config);
}

SL_TEST_MAIN()
