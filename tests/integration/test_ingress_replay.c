/*
 * test_ingress_replay: sluice-ingress's replay guard (`verify.replay_guard`, ingress/replay.h)
 * against the test broker and Redis.
 *   - a github-signed request replayed with a new X-GitHub-Delivery is answered with the first
 *     copy's 202 and written once; without a guard it is written again (the hole it closes);
 *   - a first attempt that Kafka did not take (503) leaves no claim: its retry is written;
 *   - Redis down under a guarded source: 503 + Retry-After (fail closed), other sources work.
 * Behaviour only: waits are bounded, nothing asserts how fast.
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "ingress_harness.h"
#include "redis_private.h"
#include "sl_redis.h"
#include "sl_test.h"
#include "sl_testenv.h"
#include "verify.h"

#define GITHUB_SECRET "github-replay-secret"
#define MAX_RECORDS   32

#define SOURCES                                                                                    \
    "sources:\n"                                                                                   \
    "  gh:\n"                                                                                      \
    "    verify: { scheme: github, secret: \"" GITHUB_SECRET "\", replay_guard: 1h }\n"            \
    "    event_id: header:X-GitHub-Delivery\n"                                                     \
    "    event_type: header:X-GitHub-Event\n"                                                      \
    "  gh_unguarded:\n"                                                                            \
    "    verify: { scheme: github, secret: \"" GITHUB_SECRET "\" }\n"                              \
    "    event_id: header:X-GitHub-Delivery\n"                                                     \
    "    event_type: header:X-GitHub-Event\n"                                                      \
    "  open:\n"                                                                                    \
    "    verify: { scheme: none }\n"

/* A github request for `body` with its own delivery id; headers point into *req. */
struct gh_request {
    char sig[VERIFY_SIGNATURE_OUT_MAX + 32];
    char delivery[96];
    const char *headers[5];
};

static const char *const *gh_headers(struct gh_request *req, const char *body, const char *delivery)
{
    char sig[VERIFY_SIGNATURE_OUT_MAX];
    struct sl_err err;
    SL_REQUIRE(verify_sign_hmac_sha256(GITHUB_SECRET, "sha256=", false, body, strlen(body), sig,
                                       sizeof(sig), &err) == 0);
    snprintf(req->sig, sizeof(req->sig), "X-Hub-Signature-256: %s", sig);
    snprintf(req->delivery, sizeof(req->delivery), "X-GitHub-Delivery: %s", delivery);
    req->headers[0] = "Content-Type: application/json";
    req->headers[1] = req->sig;
    req->headers[2] = req->delivery;
    req->headers[3] = "X-GitHub-Event: push";
    req->headers[4] = NULL;
    return req->headers;
}

static long post(const harness_t *h, const char *source, const char *const *headers,
                 const char *body, struct http_reply *r)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/events/%s", source);
    return http_request(harness_port(h), "POST", path, headers, body, strlen(body), r);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The guard's keys of source `source` in the harness's pipeline (its prefix is the topic's). */
static size_t guard_keys(sl_redis_t *redis, const harness_t *h, const char *source,
                         char *first_value, size_t size, long long *pttl)
{
    const char *topic = harness_topic(h);
    char pattern[512];
    snprintf(pattern, sizeof(pattern), "%.*sreplay:%s:*", (int)(strlen(topic) - strlen("ingress")),
             topic, source);
    const char *scan[] = {"KEYS", pattern};
    redisReply *reply = NULL;
    struct sl_err err;
    SL_REQUIRE(sl_redis_cmd(redis, &reply, 2, scan, NULL, &err) == 0);
    size_t n = reply->elements;
    if (n > 0) {
        const char *get[] = {"GET", reply->element[0]->str};
        const char *ttl[] = {"PTTL", reply->element[0]->str};
        redisReply *v = NULL, *t = NULL;
        SL_REQUIRE(sl_redis_cmd(redis, &v, 2, get, NULL, &err) == 0);
        SL_REQUIRE(sl_redis_cmd(redis, &t, 2, ttl, NULL, &err) == 0);
        snprintf(first_value, size, "%s", v->type == REDIS_REPLY_STRING ? v->str : "");
        *pttl = t->integer;
        freeReplyObject(v);
        freeReplyObject(t);
    }
    freeReplyObject(reply);
    return n;
}

/* The Redis the harness's ingress uses (the fixture's). */
static sl_redis_t *shared_redis(void)
{
    struct sl_err err;
    const char *url = getenv("SLUICE_REDIS_URL");
    sl_redis_t *redis = sl_redis_new(url ? url : SL_REDIS_DEFAULT_URL, 2000, &err);
    SL_REQUIRE(redis);
    return redis;
}

static size_t count_body(const struct records *recs, const char *body)
{
    size_t n = 0;
    for (size_t i = 0; i < recs->n; i++)
        if (recs->m[i]->len == strlen(body) &&
            memcmp(recs->m[i]->payload, body, recs->m[i]->len) == 0)
            n++;
    return n;
}

SL_TEST(a_replayed_github_request_is_written_once)
{
    harness_t *h = harness_start("    request_timeout: 10s\n", SOURCES);
    sl_redis_t *redis = shared_redis();
    const char *body = "{\"ref\":\"refs/heads/main\",\"after\":\"c0ffee\",\"pusher\":\"x\"}";
    struct gh_request a, b, c;
    struct http_reply r;
    char first[128], again[128];

    SL_CHECK_INT(post(h, "gh", gh_headers(&a, body, "delivery-1"), body, &r), 202);
    SL_REQUIRE(http_accepted_id(&r, first, sizeof(first)));
    /* The same signed body with a new delivery header: what an attacker (or GitHub's manual
     * redelivery) sends. The first copy's answer, nothing new written. */
    for (int i = 0; i < 2; i++) {
        SL_CHECK_INT(post(h, "gh", gh_headers(&b, body, i ? "delivery-3" : "delivery-2"), body, &r),
                     202);
        if (!http_accepted_id(&r, again, sizeof(again)))
            sl_test_fail(__FILE__, __LINE__, "replay: %s", r.body);
        SL_CHECK_STR(again, first);
    }
    SL_CHECK(harness_metric(h, "sluice_ingress_replays_total{source=\"gh\"}") == 2);
    /* Another body is another request. */
    const char *other = "{\"ref\":\"refs/heads/main\",\"after\":\"decade\",\"pusher\":\"x\"}";
    SL_CHECK_INT(post(h, "gh", gh_headers(&c, other, "delivery-4"), other, &r), 202);
    /* The unguarded source writes the replay again: the hole the guard closes. */
    SL_CHECK_INT(post(h, "gh_unguarded", gh_headers(&a, body, "delivery-1"), body, &r), 202);
    SL_CHECK_INT(post(h, "gh_unguarded", gh_headers(&b, body, "delivery-2"), body, &r), 202);

    struct records recs;
    harness_read_topic(harness_topic(h), MAX_RECORDS, 4, 30000, 2000, &recs);
    SL_CHECK_INT(recs.n, 4); /* gh: body once and other; gh_unguarded: body twice */
    SL_CHECK_INT(count_body(&recs, body), 3);
    SL_CHECK_INT(count_body(&recs, other), 1);
    records_free(&recs);

    /* What Redis holds: the written claim for the window, the event id, no secret. */
    char value[256];
    long long pttl = 0;
    SL_CHECK_INT(guard_keys(redis, h, "gh", value, sizeof(value), &pttl), 2);
    SL_CHECK(value[0] == 'w');
    SL_CHECK(pttl > 0 && pttl <= 3600 * 1000);
    SL_CHECK(!strstr(value, GITHUB_SECRET));
    SL_CHECK_INT(guard_keys(redis, h, "gh_unguarded", value, sizeof(value), &pttl), 0);
    sl_redis_destroy(redis);
    harness_destroy(h);
}

SL_TEST(a_failed_first_attempt_does_not_burn_the_claim)
{
    harness_t *h = harness_start("    request_timeout: 3s\n", SOURCES);
    sl_redis_t *redis = shared_redis();
    const char *body = "{\"ref\":\"refs/heads/retry\",\"after\":\"beef\"}";
    struct gh_request a;
    struct http_reply r;
    char value[256];
    long long pttl;

    SL_REQUIRE(sl_testenv_broker("stop") == 0);
    SL_CHECK_INT(post(h, "gh", gh_headers(&a, body, "delivery-r"), body, &r), 503);
    http_check_error(&r, "kafka_unavailable", "broker down");
    SL_CHECK_STR(r.retry_after, "5");
    /* The claim was released with the 503. */
    SL_CHECK_INT(guard_keys(redis, h, "gh", value, sizeof(value), &pttl), 0);

    /* The provider retries the same request until it is taken; each 503 on the way (the
     * producer reconnecting) releases its claim too. */
    SL_REQUIRE(sl_testenv_broker("start") == 0);
    char id[128] = "";
    for (int attempt = 0; attempt < 180 && !id[0]; attempt++) {
        long status = post(h, "gh", gh_headers(&a, body, "delivery-r"), body, &r);
        SL_CHECK(status == 202 || status == 503);
        if (status == 202)
            SL_REQUIRE(http_accepted_id(&r, id, sizeof(id)));
        else
            sleep_ms(500);
    }
    SL_REQUIRE(id[0]);
    /* Once written, the same request is a replay. */
    char again[128];
    SL_CHECK_INT(post(h, "gh", gh_headers(&a, body, "delivery-r"), body, &r), 202);
    SL_REQUIRE(http_accepted_id(&r, again, sizeof(again)));
    SL_CHECK_STR(again, id);
    SL_CHECK_INT(guard_keys(redis, h, "gh", value, sizeof(value), &pttl), 1);
    SL_CHECK(value[0] == 'w' && strcmp(value + 1, id) == 0);

    struct records recs;
    harness_read_topic(harness_topic(h), MAX_RECORDS, 1, 60000, 3000, &recs);
    SL_CHECK_INT(count_body(&recs, body), 1);
    records_free(&recs);
    sl_redis_destroy(redis);
    harness_destroy(h);
}

SL_TEST(redis_down_fails_closed_for_guarded_sources_only)
{
    rp_t *rp = rp_start("ingress-replay");
    char sources[2048];
    snprintf(sources, sizeof(sources), SOURCES "redis:\n  url: \"%s\"\n  timeout: 500ms\n",
             rp_url(rp));
    harness_t *h = harness_start("    request_timeout: 10s\n", sources);
    const char *body = "{\"ref\":\"refs/heads/outage\"}";
    const char *json[] = {"Content-Type: application/json", NULL};
    struct gh_request a;
    struct http_reply r;

    SL_CHECK_INT(post(h, "gh", gh_headers(&a, body, "delivery-o"), body, &r), 202);
    rp_kill(rp);
    const char *body2 = "{\"ref\":\"refs/heads/outage2\"}";
    SL_CHECK_INT(post(h, "gh", gh_headers(&a, body2, "delivery-o2"), body2, &r), 503);
    http_check_error(&r, "replay_guard_unavailable", "redis down");
    SL_CHECK_STR(r.retry_after, "5");
    SL_CHECK_INT(post(h, "gh_unguarded", gh_headers(&a, body2, "delivery-o2"), body2, &r), 202);
    SL_CHECK_INT(post(h, "open", json, "{}", &r), 202);
    /* Back: the guard answers again, and still knows the first request. */
    rp_restart(rp);
    SL_CHECK_INT(post(h, "gh", gh_headers(&a, body2, "delivery-o2"), body2, &r), 202);
    char id[128];
    SL_CHECK_INT(post(h, "gh", gh_headers(&a, body, "delivery-o3"), body, &r), 202);
    SL_REQUIRE(http_accepted_id(&r, id, sizeof(id)));

    struct records recs;
    harness_read_topic(harness_topic(h), MAX_RECORDS, 4, 30000, 2000, &recs);
    SL_CHECK_INT(count_body(&recs, body), 1);
    SL_CHECK_INT(count_body(&recs, body2), 2); /* gh once (after the outage), gh_unguarded once */
    records_free(&recs);
    harness_destroy(h);
    rp_destroy(rp);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = sl_test_run_all();
    curl_global_cleanup();
    return rc;
}
