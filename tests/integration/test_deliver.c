/*
 * sluice-deliver against the destination simulator, the test broker and Redis: what the
 * destination sees, and what is recorded, for each way a delivery goes (issue 6). Each test
 * runs its own sluice-deliver on a fresh topic prefix and its own destsim.
 */
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <strings.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "deliver_harness.h"
#include "sl_cloudevent.h"
#include "sl_id.h"
#include "sl_redis.h"
#include "sl_sign.h"
#include "sl_test.h"
#include "sl_testenv.h"
#include "verify.h"

#define SIGN_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

static void unique_id(const char *tag, char *buf, size_t size)
{
    char uuid[SL_UUID_STR_LEN + 1];
    sl_uuid_v7(uuid);
    snprintf(buf, size, "%s-%s", tag, uuid);
}

/* The requests destsim kept, as a JSON array (the caller frees the stats it came from). */
static json_t *requests(dh_t *h, json_t **stats)
{
    struct sl_err err;
    *stats = destsim_stats(dh_sim(h), &err);
    SL_REQUIRE(*stats);
    return json_object_get(*stats, "requests");
}

/* The Idempotency-Key deliver sends for an event (deliver.h): the scoped id of (sluicesource,
 * source, id), then ":<destination>". */
static void want_idem(const dh_t *h, const char *sluicesource, const char *source, const char *id,
                      char *buf, size_t size)
{
    struct sl_ce ce;
    struct sl_err err;
    char scoped[SL_CE_SCOPED_ID_LEN + 1];
    sl_ce_init(&ce);
    SL_REQUIRE(sl_ce_set(&ce, "source", source, &err) == 0);
    if (sluicesource)
        SL_REQUIRE(sl_ce_set(&ce, SL_CE_SOURCE_NAME, sluicesource, &err) == 0);
    SL_REQUIRE(sl_ce_scoped_id(&ce, id, scoped) == 0);
    sl_ce_free(&ce);
    snprintf(buf, size, "%s:%s", scoped, dh_dest(h));
}

static const char *req_header(const json_t *req, const char *name)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)json_object_get(req, "headers"), k, v)
    {
        if (strcasecmp(k, name) == 0)
            return json_string_value(v);
    }
    return NULL;
}

static const char *lookup(void *opaque, const char *name)
{
    return req_header(opaque, name);
}

/* Reads `n` outcome records and returns them as JSON objects in an array. */
static json_t *outcomes(dh_t *h, size_t n)
{
    struct dh_rec recs[256];
    SL_REQUIRE(n <= 256);
    size_t got = dh_read(h, "outcomes", recs, n, DH_WAIT_MS);
    SL_CHECK_INT(got, n);
    json_t *all = json_array();
    for (size_t i = 0; i < got; i++)
        json_array_append_new(all, dh_json(&recs[i]));
    dh_recs_free(recs, got);
    return all;
}

SL_TEST(success_headers_signature_and_records)
{
    dh_t *h = dh_new(&(struct dh_opts){
        .dest_yaml = "    sign: { scheme: standard-webhooks, secret: \"" SIGN_SECRET "\" }\n"
                     "    headers: { X-Team: payments }\n"});
    dh_start(h, 0, NULL);
    enum { N = 20 };
    char ids[N][64];
    for (int i = 0; i < N; i++) {
        char data[64];
        unique_id("ok", ids[i], sizeof(ids[i]));
        snprintf(data, sizeof(data), "{\"n\":%d}", i);
        const char *attrs[] = {"traceparent",
                               "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                               "datacontenttype", "application/json", NULL};
        dh_produce(h, ids[i], i % 2 ? "A" : "B", data, attrs);
    }
    dh_flush(h);
    dh_wait_2xx(h, N);

    json_t *stats;
    json_t *reqs = requests(h, &stats);
    SL_CHECK_INT(json_array_size(reqs), N);
    struct sl_err err;
    const char *secrets[] = {SIGN_SECRET};
    verify_t *v = verify_new(&(struct verify_opts){.scheme = VERIFY_STANDARD_WEBHOOKS,
                                                   .secrets = secrets,
                                                   .n_secrets = 1},
                             &err);
    SL_REQUIRE(v);
    size_t i;
    json_t *r;
    json_array_foreach(reqs, i, r)
    {
        const char *key = req_header(r, "Idempotency-Key");
        SL_REQUIRE(key);
        SL_CHECK_STR(json_string_value(json_object_get(r, "method")), "POST");
        SL_CHECK_STR(json_string_value(json_object_get(r, "path")), "/hook");
        SL_CHECK_STR(req_header(r, "traceparent"),
                     "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        SL_CHECK_STR(req_header(r, "Content-Type"), "application/json");
        SL_CHECK_STR(req_header(r, "X-Team"), "payments");
        SL_CHECK_STR(req_header(r, "ce-type"), "test.event");
        SL_CHECK_STR(req_header(r, "ce-specversion"), "1.0");
        const char *id = req_header(r, "ce-id");
        SL_REQUIRE(id);
        char want[128];
        want_idem(h, NULL, "test", id, want, sizeof(want));
        SL_CHECK_STR(key, want);
        SL_CHECK_STR(req_header(r, "webhook-id"), want);
        /* The body is the event's data, byte for byte, and the signature verifies. */
        const char *body = json_string_value(json_object_get(r, "body"));
        SL_CHECK(body && strncmp(body, "{\"n\":", 5) == 0);
        const char *reason = NULL;
        SL_CHECK_INT(verify_check(v, lookup, r, body, strlen(body), time(NULL), &reason),
                     VERIFY_OK);
    }
    verify_destroy(v);
    json_decref(stats);

    /* One outcome per event, delivered at the first attempt; one audit record per attempt. */
    json_t *outs = outcomes(h, N);
    json_array_foreach(outs, i, r)
    {
        SL_CHECK_STR(json_string_value(json_object_get(r, "outcome")), "delivered");
        SL_CHECK_STR(json_string_value(json_object_get(r, "destination")), dh_dest(h));
        SL_CHECK_INT(json_integer_value(json_object_get(r, "attempts")), 1);
        SL_CHECK_INT(json_integer_value(json_object_get(r, "last_status")), 200);
    }
    json_decref(outs);
    struct dh_rec audit[N + 1];
    size_t n = dh_read(h, "audit", audit, N + 1, 3000);
    SL_CHECK_INT(n, N);
    for (size_t k = 0; k < n; k++) {
        json_t *a = dh_json(&audit[k]);
        SL_CHECK_STR(json_string_value(json_object_get(a, "stage")), "deliver");
        SL_CHECK_STR(json_string_value(json_object_get(a, "outcome")), "delivered");
        SL_CHECK_INT(json_integer_value(json_object_get(json_object_get(a, "detail"), "attempt")),
                     1);
        json_decref(a);
    }
    dh_recs_free(audit, n);
    SL_CHECK_INT(dh_stop(h, 0, SIGTERM), 0);
    dh_destroy(h);
}

/* ---- helpers for the scenarios below ---- */

/* Reads `n` records of `name`, failing the test when fewer come. */
static size_t read_n(dh_t *h, const char *name, struct dh_rec *out, size_t n)
{
    size_t got = dh_read(h, name, out, n, DH_WAIT_MS);
    SL_CHECK_INT(got, n);
    return got;
}

static long long jint(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* The audit records of the scenario, in order (one partition). */
static json_t *audit_records(dh_t *h, size_t n)
{
    struct dh_rec recs[64];
    SL_REQUIRE(n <= 64);
    size_t got = read_n(h, "audit", recs, n);
    json_t *all = json_array();
    for (size_t i = 0; i < got; i++)
        json_array_append_new(all, dh_json(&recs[i]));
    dh_recs_free(recs, got);
    return all;
}

static long long stat_int(dh_t *h, const char *path1, const char *path2)
{
    struct sl_err err;
    json_t *c = destsim_counters(dh_sim(h), &err);
    SL_REQUIRE(c);
    json_t *v = json_object_get(c, path1);
    if (path2)
        v = json_object_get(v, path2);
    long long n = json_integer_value(v);
    json_decref(c);
    return n;
}

static void sim_post(dh_t *h, const char *path)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", destsim_url(dh_sim(h)), path);
    CURL *c = curl_easy_init();
    SL_REQUIRE(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    FILE *sink = fopen("/dev/null", "w");
    curl_easy_setopt(c, CURLOPT_WRITEDATA, sink);
    long status = 0;
    SL_CHECK(curl_easy_perform(c) == CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    SL_CHECK_INT(status, 200);
    curl_easy_cleanup(c);
    fclose(sink);
}

static void set_rules(dh_t *h, const char *rules)
{
    struct sl_err err;
    if (destsim_set_rules(dh_sim(h), rules, &err) != 0) {
        sl_test_fail(__FILE__, __LINE__, "destsim rules: %s", err.msg);
        sl_test_abort_current();
    }
}

/* Produces one event with a fresh id into id[]. */
static void one_event(dh_t *h, const char *tag, char *id, size_t size)
{
    unique_id(tag, id, size);
    dh_produce(h, id, "k", "{\"hello\":\"world\"}", NULL);
    dh_flush(h);
}

/* The t_ms of every request destsim kept, in arrival order, into t[] (at most max). */
static size_t request_times(dh_t *h, long long *t, size_t max)
{
    json_t *stats;
    json_t *reqs = requests(h, &stats);
    size_t i, n = 0;
    json_t *r;
    json_array_foreach(reqs, i, r)
    {
        if (n < max)
            t[n++] = jint(r, "t_ms");
    }
    json_decref(stats);
    return n;
}

#define FAST_RETRY "    retry: { max_attempts: 3, initial: 50ms, max: 200ms, jitter: none }\n"

SL_TEST(retried_after_500_then_delivered_once)
{
    const char *args[] = {"--rule", "status=500 times=2", NULL};
    dh_t *h = dh_new(&(struct dh_opts){.destsim_args = args, .dest_yaml = FAST_RETRY});
    char id[64];
    dh_start(h, 0, NULL);
    one_event(h, "r500", id, sizeof(id));
    dh_wait_2xx(h, 1);

    json_t *stats;
    json_t *reqs = requests(h, &stats);
    SL_CHECK_INT(json_array_size(reqs), 3);
    char key[128];
    want_idem(h, NULL, "test", id, key, sizeof(key));
    json_t *k = json_object_get(json_object_get(stats, "keys"), key);
    SL_CHECK_INT(jint(k, "requests"), 3); /* the same Idempotency-Key every time */
    SL_CHECK_INT(jint(k, "2xx"), 1);
    json_decref(stats);

    json_t *audit = audit_records(h, 3);
    const char *want[] = {"retry", "retry", "delivered"};
    for (size_t i = 0; i < 3; i++) {
        json_t *a = json_array_get(audit, i);
        SL_CHECK_STR(jstr(a, "outcome"), want[i]);
        SL_CHECK_STR(jstr(a, "event_id"), id);
        SL_CHECK_INT(jint(json_object_get(a, "detail"), "attempt"), (long long)i + 1);
        SL_CHECK_INT(jint(json_object_get(a, "detail"), "status"), i < 2 ? 500 : 200);
    }
    json_decref(audit);
    json_t *outs = outcomes(h, 1);
    SL_CHECK_STR(jstr(json_array_get(outs, 0), "outcome"), "delivered");
    SL_CHECK_INT(jint(json_array_get(outs, 0), "attempts"), 3);
    json_decref(outs);
    SL_CHECK_INT(dh_stop(h, 0, SIGTERM), 0);
    dh_destroy(h);
}

/* 429 with Retry-After: the next attempt never comes before the time the destination named
 * (destsim's own clock: t_ms of its requests), although the backoff alone would be 50 ms. */
static void retry_after_case(const char *rule, long long min_gap_ms)
{
    const char *args[] = {"--rule", rule, NULL};
    dh_t *h = dh_new(&(struct dh_opts){.destsim_args = args, .dest_yaml = FAST_RETRY});
    char id[64];
    dh_start(h, 0, NULL);
    one_event(h, "ra", id, sizeof(id));
    dh_wait_2xx(h, 1);
    long long t[4];
    SL_REQUIRE(request_times(h, t, 4) == 2);
    SL_CHECK(t[1] - t[0] >= min_gap_ms);
    /* The 429 set the fleet-wide hold. */
    char series[256];
    snprintf(series, sizeof(series), "sluice_deliver_holds_total{destination=\"%s\"}", dh_dest(h));
    SL_CHECK_INT(dh_metric(h, 0, series), 1);
    json_t *outs = outcomes(h, 1);
    SL_CHECK_INT(jint(json_array_get(outs, 0), "attempts"), 2);
    json_decref(outs);
    SL_CHECK_INT(dh_stop(h, 0, SIGTERM), 0);
    dh_destroy(h);
}

SL_TEST(retry_after_seconds_is_honoured)
{
    retry_after_case("status=429 retry_after=2 times=1", 2000);
}

SL_TEST(retry_after_http_date_is_honoured)
{
    /* An HTTP date has whole seconds: "3 s after answering" may name a moment up to 1 s
     * sooner than answering + 3 s, and never a moment before answering + 2 s. */
    retry_after_case("status=429 retry_after_date=3 times=1", 2000);
}

SL_TEST(timeout_is_retried)
{
    const char *args[] = {"--rule", "delay_ms=3000 status=200 times=1", NULL};
    dh_t *h = dh_new(
        &(struct dh_opts){.destsim_args = args, .dest_yaml = "    timeout: 300ms\n" FAST_RETRY});
    char id[64];
    dh_start(h, 0, NULL);
    one_event(h, "to", id, sizeof(id));
    dh_wait_2xx(h, 2); /* destsim counts the late answer it decided, too */
    json_t *audit = audit_records(h, 2);
    json_t *first = json_array_get(audit, 0);
    SL_CHECK_STR(jstr(first, "outcome"), "retry");
    SL_CHECK_INT(jint(json_object_get(first, "detail"), "status"), 0);
    SL_CHECK_CONTAINS(jstr(json_object_get(first, "detail"), "error"), "imed out");
    SL_CHECK_STR(jstr(json_array_get(audit, 1), "outcome"), "delivered");
    json_decref(audit);
    char series[256];
    snprintf(series, sizeof(series),
             "sluice_deliver_attempts_total{destination=\"%s\",result=\"timeout\"}", dh_dest(h));
    SL_CHECK_INT(dh_metric(h, 0, series), 1);
    SL_CHECK_INT(dh_stop(h, 0, SIGTERM), 0);
    dh_destroy(h);
}

/* Checks the one dead letter and the one outcome of a scenario. */
static void check_dead_letter(dh_t *h, const char *id, int attempts, long status,
                              const char *reason_part, const char *error_part)
{
    struct dh_rec dlq[2];
    char buf[4096];
    SL_REQUIRE(read_n(h, "dlq", dlq, 1) == 1);
    SL_CHECK_STR(dlq[0].value, "{\"hello\":\"world\"}"); /* the original payload */
    SL_CHECK_STR(dlq[0].key, "k");
    SL_CHECK(dh_header(&dlq[0], "ce_id", buf, sizeof(buf)) && strcmp(buf, id) == 0);
    SL_CHECK(dh_header(&dlq[0], "ce_sluicestage", buf, sizeof(buf)) && strcmp(buf, "deliver") == 0);
    SL_CHECK(dh_header(&dlq[0], "ce_sluicedestination", buf, sizeof(buf)) &&
             strcmp(buf, dh_dest(h)) == 0);
    SL_CHECK(dh_header(&dlq[0], "ce_sluiceattempt", buf, sizeof(buf)) && atoi(buf) == attempts);
    SL_CHECK(dh_header(&dlq[0], "ce_sluicereason", buf, sizeof(buf)));
    SL_CHECK_CONTAINS(buf, reason_part);
    SL_CHECK(dh_header(&dlq[0], "ce_sluiceerrors", buf, sizeof(buf)));
    SL_CHECK_CONTAINS(buf, error_part);
    dh_recs_free(dlq, 1);
    json_t *outs = outcomes(h, 1);
    json_t *o = json_array_get(outs, 0);
    SL_CHECK_STR(jstr(o, "outcome"), "dead_lettered");
    SL_CHECK_STR(jstr(o, "event_id"), id);
    SL_CHECK_INT(jint(o, "attempts"), attempts);
    SL_CHECK_INT(jint(o, "last_status"), status);
    SL_CHECK_CONTAINS(jstr(o, "reason"), reason_part);
    json_decref(outs);
}

SL_TEST(connection_refused_is_retried_then_dead_lettered)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", sl_testenv_free_port());
    dh_t *h = dh_new(&(struct dh_opts){.url = url, .dest_yaml = FAST_RETRY});
    char id[64];
    dh_start(h, 0, NULL);
    one_event(h, "refused", id, sizeof(id));
    check_dead_letter(h, id, 3, 0, "no answer", "attempt 3: no answer");
    char series[256];
    snprintf(series, sizeof(series),
             "sluice_deliver_attempts_total{destination=\"%s\",result=\"connect\"}", dh_dest(h));
    SL_CHECK_INT(dh_metric(h, 0, series), 3);
    SL_CHECK_INT(dh_stop(h, 0, SIGTERM), 0);
    dh_destroy(h);
}

SL_TEST(permanent_400_goes_to_the_dead_letter_queue_at_once)
{
    const char *args[] = {"--rule", "status=400 body={\"error\":\"unknown customer\"}", NULL};
    dh_t *h = dh_new(&(struct dh_opts){.destsim_args = args, .dest_yaml = FAST_RETRY});
    char id[64];
    dh_start(h, 0, NULL);
    one_event(h, "p400", id, sizeof(id));
    check_dead_letter(h, id, 1, 400, "HTTP 400", "unknown customer");
    SL_CHECK_INT(stat_int(h, "requests_total", NULL), 1);
    SL_CHECK_INT(dh_stop(h, 0, SIGTERM), 0);
    dh_destroy(h);
}

SL_TEST(max_attempts_then_dead_letter_with_the_last_status)
{
    const char *args[] = {"--rule", "status=503 times=2 body=busy", "--rule",
                          "status=500 body=boom", NULL};
    dh_t *h = dh_new(&(struct dh_opts){.destsim_args = args, .dest_yaml = FAST_RETRY});
    char id[64];
    dh_start(h, 0, NULL);
    one_event(h, "max", id, sizeof(id));
    check_dead_letter(h, id, 3, 500, "HTTP 500 after 3 attempt(s)", "attempt 3: HTTP 500: boom");
    SL_CHECK_INT(stat_int(h, "requests_total", NULL), 3);
    SL_CHECK_INT(dh_stop(h, 0, SIGTERM), 0);
    dh_destroy(h);
}

SL_TEST(replayed_event_is_not_sent_twice)
{
    dh_t *h = dh_new(&(struct dh_opts){.dest_yaml = FAST_RETRY});
    char id[64];
    dh_start(h, 0, NULL);
    one_event(h, "replay", id, sizeof(id));
    dh_wait_2xx(h, 1);
    /* The same event again (a replay of the topic, a restart before the commit): the ledger
     * knows it; the destination does not see it again, the outcome says so. */
    dh_produce(h, id, "k", "{\"hello\":\"world\"}", NULL);
    dh_flush(h);
    json_t *outs = outcomes(h, 2);
    SL_CHECK_STR(jstr(json_array_get(outs, 1), "outcome"), "delivered");
    SL_CHECK(json_is_true(json_object_get(json_array_get(outs, 1), "ledger")));
    json_decref(outs);
    SL_CHECK_INT(stat_int(h, "requests_total", NULL), 1);
    SL_CHECK_INT(dh_stop(h, 0, SIGTERM), 0);
    dh_destroy(h);
}

/* Event ids are unique only within their source (issue 11): one id from two sluice sources,
 * and from two CloudEvents sources of one sluice source, is three events, each delivered once
 * under its own Idempotency-Key; each one again is not sent again. */
SL_TEST(equal_ids_of_two_sources_are_both_delivered)
{
    dh_t *h = dh_new(&(struct dh_opts){.dest_yaml = FAST_RETRY});
    dh_start(h, 0, NULL);
    char id[64], want[3][128];
    unique_id("order-124", id, sizeof(id));
    const char *const attrs[3][5] = {
        {SL_CE_SOURCE_NAME, "apikey", NULL},
        {SL_CE_SOURCE_NAME, "crm", NULL},
        {SL_CE_SOURCE_NAME, "crm", "source", "urn:crm:eu", NULL},
    };
    want_idem(h, "apikey", "test", id, want[0], sizeof(want[0]));
    want_idem(h, "crm", "test", id, want[1], sizeof(want[1]));
    want_idem(h, "crm", "urn:crm:eu", id, want[2], sizeof(want[2]));
    /* One after the other, each once the one before was delivered and is in the ledger. */
    for (int i = 0; i < 3; i++) {
        dh_produce(h, id, "k", "{\"order\":124}", attrs[i]);
        dh_flush(h);
        dh_wait_2xx(h, i + 1);
    }
    /* The same three again (a replay): the ledger knows each of them. */
    for (int i = 0; i < 3; i++)
        dh_produce(h, id, "k", "{\"order\":124}", attrs[i]);
    dh_flush(h);
    json_t *outs = outcomes(h, 6);
    size_t i;
    json_t *o;
    int from_ledger = 0;
    json_array_foreach(outs, i, o)
    {
        SL_CHECK_STR(jstr(o, "outcome"), "delivered");
        from_ledger += json_is_true(json_object_get(o, "ledger"));
    }
    SL_CHECK_INT(from_ledger, 3);
    json_decref(outs);

    json_t *stats;
    json_t *reqs = requests(h, &stats);
    SL_CHECK_INT(json_array_size(reqs), 3);
    for (int k = 0; k < 3 && k < (int)json_array_size(reqs); k++) {
        const char *key = req_header(json_array_get(reqs, (size_t)k), "Idempotency-Key");
        SL_REQUIRE(key);
        SL_CHECK_STR(key, want[k]); /* one partition (key "k"): in order */
    }
    SL_CHECK(strcmp(want[0], want[1]) != 0 && strcmp(want[1], want[2]) != 0);
    json_decref(stats);
    SL_CHECK_INT(dh_stop(h, 0, SIGTERM), 0);
    dh_destroy(h);
}

/* An event delivered by a build before the scoped ledger (its ledger key is the bare event
 * id, deliver.h "Upgrade") is not sent again after the upgrade. */
SL_TEST(event_in_the_old_format_ledger_is_not_sent_again)
{
    dh_t *h = dh_new(&(struct dh_opts){.dest_yaml = FAST_RETRY});
    char id[64], fresh[64], topic[256], key[512];
    unique_id("old-ledger", id, sizeof(id));
    unique_id("new", fresh, sizeof(fresh));
    snprintf(topic, sizeof(topic), "deliver.%s", dh_dest(h));
    dh_topic(h, topic, key, sizeof(key));
    strncat(key, ":ledger:", sizeof(key) - strlen(key) - 1);
    strncat(key, id, sizeof(key) - strlen(key) - 1);
    struct sl_err err;
    const char *url;
    int timeout_ms;
    SL_REQUIRE(sl_redis_settings(NULL, &url, &timeout_ms, &err) == 0);
    sl_redis_t *r = sl_redis_new(url, timeout_ms, &err);
    SL_REQUIRE(r && sl_redis_ledger_mark(r, key, 600000, &err) == 0);
    sl_redis_destroy(r);

    dh_start(h, 0, NULL);
    dh_produce(h, id, "k", "{\"n\":1}", (const char *const[]){SL_CE_SOURCE_NAME, "crm", NULL});
    dh_produce(h, fresh, "k", "{\"n\":2}", NULL);
    dh_flush(h);
    json_t *outs = outcomes(h, 2);
    for (size_t i = 0; i < json_array_size(outs); i++) {
        json_t *o = json_array_get(outs, i);
        SL_CHECK_STR(jstr(o, "outcome"), "delivered");
        /* From the ledger for the old one only (outcomes of two ids may come in any order). */
        SL_CHECK(json_is_true(json_object_get(o, "ledger")) ==
                 (strcmp(jstr(o, "event_id"), id) == 0));
    }
    json_decref(outs);
    SL_CHECK_INT(stat_int(h, "requests_total", NULL), 1);
    SL_CHECK_INT(dh_stop(h, 0, SIGTERM), 0);
    dh_destroy(h);
}

/* The pipeline's Redis keys (ledger, rate-limit bucket) live under redis.key_prefix when it is
 * set, and nothing under the topic prefix: two pipelines with one topic prefix on one Redis.
 * (The bucket key lives for its refill time, 100 s here.) */
SL_TEST(redis_keys_live_under_the_key_prefix)
{
    char kp[96];
    unique_id("kp", kp, sizeof(kp) - 1);
    strncat(kp, ".", sizeof(kp) - strlen(kp) - 1);
    dh_t *h = dh_new(&(struct dh_opts){.redis_key_prefix = kp,
                                       .dest_yaml = FAST_RETRY
                                       "    rate_limit: { per_second: 1, burst: 100 }\n"});
    dh_start(h, 0, NULL);
    char id[64], scoped[128], topic[256], base[2][512], key[768];
    unique_id("kp", id, sizeof(id));
    dh_produce(h, id, "k", "{}", NULL);
    dh_flush(h);
    dh_wait_2xx(h, 1);
    json_decref(outcomes(h, 1)); /* the ledger is marked before the outcome is written */
    want_idem(h, NULL, "test", id, scoped, sizeof(scoped));
    *strchr(scoped, ':') = '\0';
    snprintf(topic, sizeof(topic), "deliver.%s", dh_dest(h));
    snprintf(base[0], sizeof(base[0]), "%s%s", kp, topic);
    dh_topic(h, topic, base[1], sizeof(base[1]));
    struct sl_err err;
    const char *url;
    int timeout_ms;
    SL_REQUIRE(sl_redis_settings(NULL, &url, &timeout_ms, &err) == 0);
    sl_redis_t *r = sl_redis_new(url, timeout_ms, &err);
    SL_REQUIRE(r);
    for (int i = 0; i < 2; i++) {
        for (int f = 0; f < 2; f++) {
            bool seen = false;
            if (f == 0)
                snprintf(key, sizeof(key), "%s:ledger:%s", base[i], scoped);
            else
                snprintf(key, sizeof(key), "%s:bucket", base[i]);
            SL_REQUIRE(sl_redis_ledger_seen(r, key, &seen, &err) == 0);
            if (seen != (i == 0))
                sl_test_fail(__FILE__, __LINE__, "%s: %s", key, seen ? "present" : "absent");
        }
    }
    sl_redis_destroy(r);
    SL_CHECK_INT(dh_stop(h, 0, SIGTERM), 0);
    dh_destroy(h);
}

/* ---- per-key order ---- */

struct order_state {
    long others_2xx; /* 2xx answers wanted for keys B and C */
};

static bool others_done_and_a2_failing(const json_t *c, void *arg)
{
    const struct order_state *st = arg;
    /* A1 and every B and C event delivered; A2 failed at least twice. */
    return dh_count_2xx(c) >= st->others_2xx + 1 &&
           json_integer_value(json_object_get(json_object_get(c, "by_status"), "500")) >= 2;
}

/* The destsim order list of `customer` as the sequence of (seq, status) in arrival order. */
static size_t order_of(const json_t *stats, const char *customer, int *seq, int *status, size_t max)
{
    json_t *list = json_object_get(json_object_get(stats, "order"), customer);
    size_t i, n = 0;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        json_t *body = json_loads(jstr(e, "body"), 0, NULL);
        if (n < max) {
            seq[n] = (int)jint(body, "seq");
            status[n] = (int)jint(e, "status");
            n++;
        }
        json_decref(body);
    }
    return n;
}

SL_TEST(per_key_order_holds_while_one_key_fails_and_others_proceed)
{
    enum { PER_KEY = 10 };
    const char *args[] = {"--order-pointer", "/customer", "--rule",
                          "json:/customer=A json:/seq=2 status=500", NULL};
    dh_t *h = dh_new(&(struct dh_opts){
        .destsim_args = args,
        .dest_yaml = "    ordering: per-key\n    concurrency: 8\n"
                     "    retry: { max_attempts: 1000, initial: 50ms, max: 200ms }\n"});
    dh_start(h, 0, NULL);
    const char *customers[] = {"A", "B", "C"};
    for (int i = 1; i <= PER_KEY; i++)
        for (int c = 0; c < 3; c++) {
            char id[64], data[64];
            unique_id(customers[c], id, sizeof(id));
            snprintf(data, sizeof(data), "{\"customer\":\"%s\",\"seq\":%d}", customers[c], i);
            dh_produce(h, id, customers[c], data, NULL);
        }
    dh_flush(h);

    /* While A2 keeps failing: B and C are all delivered, and nothing of A after A2 was sent. */
    struct order_state st = {2 * PER_KEY};
    json_decref(dh_wait_sim(h, others_done_and_a2_failing, &st, "B and C delivered, A2 failing"));
    struct sl_err err;
    json_t *stats = destsim_stats(dh_sim(h), &err);
    SL_REQUIRE(stats);
    int seq[64], status[64];
    size_t n = order_of(stats, "A", seq, status, 64);
    SL_REQUIRE(n >= 3);
    SL_CHECK(seq[0] == 1 && status[0] == 200);
    for (size_t i = 1; i < n; i++)
        SL_CHECK(seq[i] == 2 && status[i] == 500);
    json_decref(stats);

    /* A2 recovers: A's events follow in order, each delivered once. */
    set_rules(h, "");
    dh_wait_2xx(h, 3 * PER_KEY);
    stats = destsim_stats(dh_sim(h), &err);
    SL_REQUIRE(stats);
    for (int c = 0; c < 3; c++) {
        n = order_of(stats, customers[c], seq, status, 64);
        int next = 1;
        for (size_t i = 0; i < n; i++) {
            if (status[i] != 200)
                continue;
            SL_CHECK_INT(seq[i], next);
            next++;
        }
        SL_CHECK_INT(next, PER_KEY + 1);
    }
    json_decref(stats);
    SL_CHECK_INT(dh_stop(h, 0, SIGTERM), 0);
    dh_destroy(h);
}

/* ---- circuit breaker ---- */

static double circuit_metric(dh_t *h, const char *family, const char *extra)
{
    char series[256];
    snprintf(series, sizeof(series), "%s{destination=\"%s\"%s}", family, dh_dest(h), extra);
    return dh_metric(h, 0, series);
}

static bool half_opened_twice(const json_t *c, void *arg)
{
    dh_t *h = arg;
    (void)c;
    return circuit_metric(h, "sluice_deliver_circuit_transitions_total", ",to=\"half_open\"") >= 2;
}

static bool circuit_opened(const json_t *c, void *arg)
{
    dh_t *h = arg;
    (void)c;
    return circuit_metric(h, "sluice_deliver_circuit_transitions_total", ",to=\"open\"") >= 1;
}

SL_TEST(circuit_opens_probes_and_recovers)
{
    const char *args[] = {"--rule", "status=503", NULL};
    dh_t *h = dh_new(&(struct dh_opts){
        .destsim_args = args,
        .dest_yaml = "    ordering: none\n    concurrency: 4\n"
                     "    retry: { max_attempts: 1000, initial: 20ms, max: 100ms }\n"
                     "    circuit: { failure_ratio: 50, window: 10s, min_requests: 4, "
                     "cooldown: 500ms }\n"});
    dh_start(h, 0, NULL);
    enum { N = 8 };
    for (int i = 0; i < N; i++) {
        char id[64];
        unique_id("cb", id, sizeof(id));
        dh_produce(h, id, NULL, "{}", NULL);
    }
    dh_flush(h);
    json_decref(dh_wait_sim(h, circuit_opened, h, "the circuit to open"));
    double probes0 =
        circuit_metric(h, "sluice_deliver_circuit_transitions_total", ",to=\"half_open\"");
    long long requests0 = stat_int(h, "requests_total", NULL);
    json_decref(dh_wait_sim(h, half_opened_twice, h, "two half-open probes"));
    long long requests1 = stat_int(h, "requests_total", NULL);
    double probes1 =
        circuit_metric(h, "sluice_deliver_circuit_transitions_total", ",to=\"half_open\"");
    /* While open, only the probes went out: one request per half-open state (plus at most one
     * probe caught between the two readings). */
    SL_CHECK(probes1 - probes0 >= 1);
    SL_CHECK(requests1 - requests0 <= (long long)(probes1 - probes0) + 1);

    set_rules(h, "");
    dh_wait_2xx(h, N);
    SL_CHECK(circuit_metric(h, "sluice_deliver_circuit_transitions_total", ",to=\"closed\"") >= 1);
    json_t *outs = outcomes(h, N);
    size_t i;
    json_t *o;
    json_array_foreach(outs, i, o)
    {
        SL_CHECK_STR(jstr(o, "outcome"), "delivered");
    }
    json_decref(outs);
    SL_CHECK_INT(dh_stop(h, 0, SIGTERM), 0);
    /* The circuit opened once (a failed probe re-opening it is the same outage): one audit
     * record about the destination, for sluice-reconcile's alert. */
    enum { AUDIT_MAX = 4096 };
    struct dh_rec *recs = calloc(AUDIT_MAX, sizeof(*recs));
    SL_REQUIRE(recs);
    size_t n = dh_read(h, "audit", recs, AUDIT_MAX, 5000), opened = 0;
    for (size_t r = 0; r < n; r++) {
        json_t *a = dh_json(&recs[r]);
        const char *outcome = jstr(a, "outcome");
        if (outcome && strcmp(outcome, "circuit_open") == 0) {
            opened++;
            SL_CHECK(json_is_null(json_object_get(a, "event_id")) ||
                     !json_object_get(a, "event_id"));
            SL_CHECK_STR(
                json_string_value(json_object_get(json_object_get(a, "detail"), "destination")),
                dh_dest(h));
            SL_CHECK_CONTAINS(jstr(a, "reason"), "circuit opened");
        }
        json_decref(a);
    }
    SL_CHECK_INT(opened, 1);
    dh_recs_free(recs, n);
    free(recs);
    dh_destroy(h);
}

/* ---- OAuth2 client credentials ---- */

#define OAUTH_YAML(ttl_comment)                                                                    \
    "    concurrency: 8\n    ordering: none\n" FAST_RETRY                                          \
    "    auth: { type: oauth2-client-credentials, token_url: \"%s/_sim/oauth/token\", "            \
    "client_id: sluice, client_secret: s3cret }\n"

static dh_t *oauth_scenario(const char *ttl)
{
    const char *args[] = {
        "--oauth-client", "sluice:s3cret", "--require-bearer", "--oauth-ttl", ttl, NULL};
    /* The token URL names destsim's port, known once it runs: start it, then rewrite. */
    dh_t *h = dh_new(&(struct dh_opts){.destsim_args = args, .dest_yaml = "    concurrency: 1\n"});
    char *yaml = NULL, *text = NULL;
    SL_REQUIRE(asprintf(&yaml, OAUTH_YAML(), destsim_url(dh_sim(h))) > 0);
    /* Rewrite the pipeline file with the auth section. */
    FILE *f = fopen(dh_config(h), "r");
    SL_REQUIRE(f);
    size_t cap = 1 << 16, len = fread(text = calloc(1, cap), 1, cap - 1, f);
    fclose(f);
    text[len] = '\0';
    char *at = strstr(text, "    concurrency: 1\n");
    SL_REQUIRE(at);
    *at = '\0';
    f = fopen(dh_config(h), "w");
    SL_REQUIRE(f);
    fprintf(f, "%s%s%s", text, yaml, at + strlen("    concurrency: 1\n"));
    fclose(f);
    free(text);
    free(yaml);
    return h;
}

static void produce_n(dh_t *h, const char *tag, int n)
{
    for (int i = 0; i < n; i++) {
        char id[64];
        unique_id(tag, id, sizeof(id));
        dh_produce(h, id, id, "{}", NULL); /* keyed by id: spread over every partition */
    }
    dh_flush(h);
}

SL_TEST(oauth_token_fetched_once_for_many_requests)
{
    dh_t *h = oauth_scenario("3600");
    dh_start(h, 0, NULL);
    produce_n(h, "oa", 40);
    dh_wait_2xx(h, 40);
    SL_CHECK_INT(stat_int(h, "oauth", "token_requests"), 1);
    SL_CHECK_INT(stat_int(h, "oauth", "tokens_issued"), 1);
    SL_CHECK_INT(stat_int(h, "oauth", "unauthorized"), 0);
    SL_CHECK_INT(stat_int(h, "requests_total", NULL), 40);
    SL_CHECK_INT(dh_stop(h, 0, SIGTERM), 0);
    dh_destroy(h);
}

SL_TEST(oauth_token_refreshed_before_expiry)
{
    dh_t *h = oauth_scenario("2");
    dh_start(h, 0, NULL);
    produce_n(h, "oe1", 10);
    dh_wait_2xx(h, 10);
    /* Outlive the first token (2 s); the next requests must carry a fresh one, fetched ahead
     * of the expiry, so that none is refused. */
    usleep(2500 * 1000);
    produce_n(h, "oe2", 10);
    dh_wait_2xx(h, 20);
    SL_CHECK(stat_int(h, "oauth", "tokens_issued") >= 2);
    SL_CHECK_INT(stat_int(h, "oauth", "unauthorized"), 0);
    SL_CHECK_INT(stat_int(h, "requests_total", NULL), 20);
    SL_CHECK_INT(dh_stop(h, 0, SIGTERM), 0);
    dh_destroy(h);
}

SL_TEST(oauth_token_refreshed_at_once_on_401)
{
    dh_t *h = oauth_scenario("3600");
    dh_start(h, 0, NULL);
    produce_n(h, "o4a", 5);
    dh_wait_2xx(h, 5);
    sim_post(h, "/_sim/oauth/revoke"); /* the destination forgets every token */
    produce_n(h, "o4b", 5);
    dh_wait_2xx(h, 10);
    SL_CHECK_INT(stat_int(h, "oauth", "tokens_issued"), 2);
    SL_CHECK(stat_int(h, "oauth", "unauthorized") >= 1);
    json_t *outs = outcomes(h, 10);
    size_t i;
    json_t *o;
    json_array_foreach(outs, i, o)
    {
        SL_CHECK_STR(jstr(o, "outcome"), "delivered");
    }
    json_decref(outs);
    SL_CHECK_INT(dh_stop(h, 0, SIGTERM), 0);
    dh_destroy(h);
}

/* ---- rate limit across replicas ---- */

struct two {
    dh_t *h;
};

static double dest_metric(dh_t *h, int i, const char *family, const char *extra)
{
    char series[256];
    snprintf(series, sizeof(series), "%s{destination=\"%s\"%s}", family, dh_dest(h), extra);
    return dh_metric(h, i, series);
}

static bool both_assigned(const json_t *c, void *arg)
{
    dh_t *h = arg;
    (void)c;
    return dest_metric(h, 0, "sluice_deliver_partitions_assigned", "") == 2 &&
           dest_metric(h, 1, "sluice_deliver_partitions_assigned", "") == 2;
}

SL_TEST(rate_limit_holds_across_two_processes)
{
    /* A low rate keeps the token spacing (200 ms) far above the jitter between a token's grant
     * and its request's arrival, so the bound is exact, not a near miss. */
    enum { RATE = 5, BURST = 5, N = 60 };
    dh_t *h =
        dh_new(&(struct dh_opts){.partitions = 4,
                                 .dest_yaml = "    ordering: none\n    concurrency: 16\n"
                                              "    rate_limit: { per_second: 5, burst: 5 }\n"});
    dh_start(h, 0, NULL);
    dh_start(h, 1, NULL);
    json_decref(dh_wait_sim(h, both_assigned, h, "two partitions for each process"));
    produce_n(h, "rl", N);
    dh_wait_2xx(h, N);
    /* destsim measured every arrival: no 1-second window saw more than the bucket allows
     * (burst, then the rate), although each process alone could send 16 at once. */
    long long peak = stat_int(h, "peak_rps_1s", NULL);
    printf("rate limit %d/s, burst %d: peak over any 1 s window %lld requests\n", RATE, BURST,
           peak);
    SL_CHECK(peak <= RATE + BURST);
    SL_CHECK_INT(stat_int(h, "requests_total", NULL), N);
    for (int i = 0; i < 2; i++) {
        printf("process %d: %.0f delivered, waited for a token %.0f times\n", i,
               dest_metric(h, i, "sluice_deliver_attempts_total", ",result=\"2xx\""),
               dest_metric(h, i, "sluice_deliver_rate_limit_waits_total", ""));
        SL_CHECK(dest_metric(h, i, "sluice_deliver_attempts_total", ",result=\"2xx\"") > 0);
        SL_CHECK(dest_metric(h, i, "sluice_deliver_rate_limit_waits_total", "") > 0);
    }
    SL_CHECK_INT(dh_stop(h, 0, SIGTERM), 0);
    SL_CHECK_INT(dh_stop(h, 1, SIGTERM), 0);
    dh_destroy(h);
}

/* ---- a 429 holds the whole fleet ---- */

static bool saw_429(const json_t *c, void *arg)
{
    (void)arg;
    return json_integer_value(json_object_get(json_object_get(c, "by_status"), "429")) >= 1;
}

/* Waits until the fleet-wide hold of the scenario's destination is set in Redis (the same
 * Redis as the processes': SLUICE_REDIS_URL or the default). */
static void wait_hold_set(dh_t *h)
{
    struct sl_err err;
    const char *url;
    int timeout_ms;
    char topic[256], key[300];
    SL_REQUIRE(sl_redis_settings(NULL, &url, &timeout_ms, &err) == 0);
    sl_redis_t *r = sl_redis_new(url, timeout_ms, &err);
    SL_REQUIRE(r);
    snprintf(topic, sizeof(topic), "deliver.%s", dh_dest(h));
    dh_topic(h, topic, key, sizeof(key));
    strncat(key, ":hold", sizeof(key) - strlen(key) - 1);
    long long remaining = 0;
    for (int waited = 0; remaining <= 0 && waited < DH_WAIT_MS; waited += 20) {
        if (sl_redis_hold_get(r, key, &remaining, &err) != 0) {
            sl_test_fail(__FILE__, __LINE__, "redis: %s", err.msg);
            break;
        }
        if (remaining <= 0)
            usleep(20 * 1000);
    }
    sl_redis_destroy(r);
    if (remaining <= 0) {
        sl_test_fail(__FILE__, __LINE__, "no hold on %s after the 429", key);
        sl_test_abort_current();
    }
}

/* Two processes share a destination (one group, two partitions each). The first event gets
 * 429 with Retry-After: 5; the process that got it sets the fleet-wide hold in Redis. Only
 * then are the other events produced, to every partition: neither process may send anything
 * to the destination before the hold ends (destsim's clock: t_ms of the 429 plus 5 s), the
 * other process included, which knows of the 429 only through Redis. Then every event was
 * delivered, each key with exactly one effect (destsim --idempotency) and none re-sent.
 *
 * The other events come after the hold is in Redis on purpose: a process reads the hold when
 * it has something to send, and at most every DLV_HOLD_POLL_MS while it keeps sending, so a
 * process busy at the moment of the 429 may still send for that long; that window is the
 * design's (deliver.h), not what this test measures. */
SL_TEST(retry_after_on_429_holds_every_process)
{
    /* PTTL and both millisecond clocks (destsim's t_ms, deliver's) each round down. */
    enum { N = 40, HOLD_MS = 5000, ROUNDING_MS = 2 };
    const char *args[] = {"--idempotency", "--rule", "status=429 retry_after=5 times=1", NULL};
    dh_t *h = dh_new(&(struct dh_opts){.destsim_args = args,
                                       .partitions = 4,
                                       .dest_yaml = "    ordering: none\n    concurrency: 8\n"
                                                    "    retry: { initial: 50ms, max: 1s }\n"});
    dh_start(h, 0, NULL);
    dh_start(h, 1, NULL);
    json_decref(dh_wait_sim(h, both_assigned, h, "two partitions for each process"));
    produce_n(h, "held", 1);
    json_decref(dh_wait_sim(h, saw_429, NULL, "the 429"));
    wait_hold_set(h);
    produce_n(h, "after", N);
    dh_wait_2xx(h, N + 1);

    json_t *stats;
    json_t *reqs = requests(h, &stats);
    SL_CHECK_INT(json_array_size(reqs), N + 2); /* the 429 and its retry, and N more */
    SL_REQUIRE(json_array_size(reqs) > 0);
    json_t *first = json_array_get(reqs, 0);
    SL_CHECK_INT(jint(first, "status"), 429);
    long long hold_end = jint(first, "t_ms") + HOLD_MS, earliest = LLONG_MAX;
    size_t i, early = 0;
    json_t *r;
    json_array_foreach(reqs, i, r)
    {
        if (i == 0)
            continue;
        long long t = jint(r, "t_ms");
        earliest = t < earliest ? t : earliest;
        early += t < hold_end - ROUNDING_MS;
    }
    printf("hold until t=%lld ms (destsim's clock); first request after the 429 at t=%lld ms; "
           "%zu before the hold ended\n",
           hold_end, earliest, early);
    SL_CHECK_INT(early, 0);

    const char *k;
    json_t *v;
    size_t keys = 0, once = 0, replayed = 0;
    json_object_foreach(json_object_get(stats, "keys"), k, v)
    {
        keys++;
        once += jint(v, "effects") == 1;
        replayed += (size_t)jint(v, "replayed");
    }
    SL_CHECK_INT(keys, N + 1);
    SL_CHECK_INT(once, N + 1);
    SL_CHECK_INT(replayed, 0);
    json_decref(stats);
    double holds = 0;
    for (int p = 0; p < 2; p++) {
        double sent = dest_metric(h, p, "sluice_deliver_attempts_total", ",result=\"2xx\"");
        printf("process %d: %.0f delivered\n", p, sent);
        SL_CHECK(sent > 0); /* both had events during the hold */
        holds += dest_metric(h, p, "sluice_deliver_holds_total", "");
    }
    SL_CHECK_INT(holds, 1);
    SL_CHECK_INT(dh_stop(h, 0, SIGTERM), 0);
    SL_CHECK_INT(dh_stop(h, 1, SIGTERM), 0);
    dh_destroy(h);
}

/* ---- credentials and signing secrets from files ---- */

#define SECRET_A "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SECRET_B "whsec_dGhpcyBpcyB0aGUgbmV4dCBzZWNyZXQ="

static void write_file(const char *path, const char *text)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    SL_REQUIRE(f);
    fputs(text, f);
    fclose(f);
    SL_REQUIRE(rename(tmp, path) == 0); /* atomic, as a Kubernetes secret volume swaps */
}

/* Every request from seq `from` on carries `token` and a signature made with `secret` (and
 * not with `other`). */
static void check_phase(dh_t *h, size_t from, const char *token, const char *secret,
                        const char *other)
{
    struct sl_err err;
    json_t *stats;
    json_t *reqs = requests(h, &stats);
    verify_t *good = verify_new(&(struct verify_opts){.scheme = VERIFY_STANDARD_WEBHOOKS,
                                                      .secrets = (const char *[]){secret},
                                                      .n_secrets = 1},
                                &err);
    verify_t *bad = verify_new(&(struct verify_opts){.scheme = VERIFY_STANDARD_WEBHOOKS,
                                                     .secrets = (const char *[]){other},
                                                     .n_secrets = 1},
                               &err);
    SL_REQUIRE(good && bad);
    char want[64];
    snprintf(want, sizeof(want), "Bearer %s", token);
    for (size_t i = from; i < json_array_size(reqs); i++) {
        json_t *r = json_array_get(reqs, i);
        const char *body = jstr(r, "body"), *reason;
        SL_CHECK_STR(req_header(r, "Authorization"), want);
        SL_CHECK_INT(jint(r, "status"), 200);
        SL_CHECK_INT(verify_check(good, lookup, r, body, strlen(body), time(NULL), &reason),
                     VERIFY_OK);
        SL_CHECK_INT(verify_check(bad, lookup, r, body, strlen(body), time(NULL), &reason),
                     VERIFY_REJECTED);
    }
    verify_destroy(good);
    verify_destroy(bad);
    json_decref(stats);
}

SL_TEST(rotated_token_and_signing_secret_files_are_picked_up)
{
    char token_file[4096], sign_file[4096], yaml[9000];
    snprintf(token_file, sizeof(token_file), "%s/tests/dlv-token-%d", sl_test_binary_dir(),
             (int)getpid());
    snprintf(sign_file, sizeof(sign_file), "%s/tests/dlv-sign-%d", sl_test_binary_dir(),
             (int)getpid());
    write_file(token_file, "tok-1\n");
    write_file(sign_file, SECRET_A "\n");
    snprintf(yaml, sizeof(yaml),
             "    ordering: none\n" FAST_RETRY "    auth: { type: bearer, token_file: \"%s\" }\n"
             "    sign: { scheme: standard-webhooks, secret_file: \"%s\" }\n",
             token_file, sign_file);
    const char *args[] = {"--rule", "header:Authorization=\"Bearer tok-1\" status=200", "--rule",
                          "status=401", NULL};
    dh_t *h = dh_new(&(struct dh_opts){.destsim_args = args, .dest_yaml = yaml});
    dh_start(h, 0, NULL);
    produce_n(h, "f1", 3);
    dh_wait_2xx(h, 3);
    check_phase(h, 0, "tok-1", SECRET_A, SECRET_B);

    /* Rotation while idle: both files change; after the check interval the new values are
     * used from the first request on (no 401 at all). */
    write_file(token_file, "tok-2\n");
    write_file(sign_file, SECRET_B "\n");
    set_rules(h, "header:Authorization=\"Bearer tok-2\" status=200\nstatus=401\n");
    usleep(1500 * 1000); /* > DLV_SECRET_CHECK_MS */
    produce_n(h, "f2", 3);
    dh_wait_2xx(h, 6);
    check_phase(h, 3, "tok-2", SECRET_B, SECRET_A);
    SL_CHECK_INT(stat_int(h, "by_status", "401"), 0);

    /* Rotation under traffic: a request may still go out with the old token; its 401 makes
     * deliver read the file at once and send again, so every event is still delivered. */
    write_file(token_file, "tok-3\n");
    set_rules(h, "header:Authorization=\"Bearer tok-3\" status=200\nstatus=401\n");
    produce_n(h, "f3", 3);
    dh_wait_2xx(h, 9);
    json_t *outs = outcomes(h, 9);
    size_t i;
    json_t *o;
    json_array_foreach(outs, i, o)
    {
        SL_CHECK_STR(jstr(o, "outcome"), "delivered");
    }
    json_decref(outs);
    SL_CHECK_INT(dh_stop(h, 0, SIGTERM), 0);
    dh_destroy(h);
    unlink(token_file);
    unlink(sign_file);
}

/* ---- jq: the body mapping and URL parts ---- */

SL_TEST(jq_body_and_templated_url)
{
    dh_t *h = dh_new(&(struct dh_opts){
        .url_path = "/customers/{{ .data.customer }}/payments?n={{ .data.amount }}",
        .dest_yaml = FAST_RETRY "    body: 'if .data.amount < 0 then error(\"negative amount\") "
                                "else {event: .id, cents: (.data.amount * 100)} end'\n"});
    dh_start(h, 0, NULL);
    char ok[64], bad[64];
    unique_id("jq", ok, sizeof(ok));
    unique_id("jq", bad, sizeof(bad));
    dh_produce(h, ok, "k", "{\"customer\":\"cus/1 x\",\"amount\":5}", NULL);
    dh_produce(h, bad, "k", "{\"customer\":\"cus_2\",\"amount\":-1}", NULL);
    dh_flush(h);
    dh_wait_2xx(h, 1);

    json_t *stats;
    json_t *reqs = requests(h, &stats);
    SL_REQUIRE(json_array_size(reqs) == 1);
    json_t *r = json_array_get(reqs, 0);
    /* destsim records the path as libmicrohttpd decoded it; the encoding itself (the value
     * cannot leave its segment: "cus%2F1%20x") is test_dlv_template's. */
    SL_CHECK_STR(jstr(r, "path"), "/customers/cus/1 x/payments");
    SL_CHECK_STR(req_header(r, "Content-Type"), "application/json");
    json_t *body = json_loads(jstr(r, "body"), 0, NULL);
    SL_CHECK_STR(jstr(body, "event"), ok);
    SL_CHECK_INT(jint(body, "cents"), 500);
    json_decref(body);
    json_decref(stats);

    /* The mapping failed for the other event: dead-lettered, never sent. */
    struct dh_rec dlq[1];
    char buf[1024];
    SL_REQUIRE(read_n(h, "dlq", dlq, 1) == 1);
    SL_CHECK(dh_header(&dlq[0], "ce_id", buf, sizeof(buf)) && strcmp(buf, bad) == 0);
    SL_CHECK(dh_header(&dlq[0], "ce_sluicereason", buf, sizeof(buf)));
    SL_CHECK_CONTAINS(buf, "body: ");
    SL_CHECK_CONTAINS(buf, "negative amount");
    dh_recs_free(dlq, 1);
    SL_CHECK_INT(dh_stop(h, 0, SIGTERM), 0);
    dh_destroy(h);
}

/* Issue 11 item 10: customer_id ".." made /ingest/../records, and libcurl sent POST /records
 * with the destination's credentials. Now such an event is dead-lettered with the reason and
 * never sent; others reach exactly the path they name. */
SL_TEST(templated_url_never_leaves_its_path_by_dot_segments)
{
    dh_t *h = dh_new(&(struct dh_opts){.url_path = "/ingest/{{ .data.customer_id }}/records",
                                       .dest_yaml = FAST_RETRY
                                       "    auth: { type: bearer, token: \"t0ken\" }\n"});
    dh_start(h, 0, NULL);
    char up[64], ok[64], enc[64];
    unique_id("dots", up, sizeof(up));
    unique_id("dots", ok, sizeof(ok));
    unique_id("dots", enc, sizeof(enc));
    dh_produce(h, up, "k", "{\"customer_id\":\"..\"}", NULL);
    dh_produce(h, ok, "k", "{\"customer_id\":\"cus_1\"}", NULL);
    dh_produce(h, enc, "k", "{\"customer_id\":\"%2E%2E\"}", NULL);
    dh_flush(h);
    dh_wait_2xx(h, 2);

    /* Both others, at the paths they name (destsim shows the path decoded once: "%2E%2E" was
     * sent as %252E%252E, text, not dots). Nothing reached /records. */
    json_t *stats;
    json_t *reqs = requests(h, &stats);
    SL_CHECK_INT(json_array_size(reqs), 2);
    SL_CHECK_STR(jstr(json_array_get(reqs, 0), "path"), "/ingest/cus_1/records");
    SL_CHECK_STR(jstr(json_array_get(reqs, 1), "path"), "/ingest/%2E%2E/records");
    json_decref(stats);
    struct dh_rec dlq[1];
    char buf[1024];
    SL_REQUIRE(read_n(h, "dlq", dlq, 1) == 1);
    SL_CHECK(dh_header(&dlq[0], "ce_id", buf, sizeof(buf)) && strcmp(buf, up) == 0);
    SL_CHECK(dh_header(&dlq[0], "ce_sluicereason", buf, sizeof(buf)));
    SL_CHECK_CONTAINS(buf, "url: ");
    SL_CHECK_CONTAINS(buf, "dot segment \"..\"");
    dh_recs_free(dlq, 1);

    SL_CHECK_INT(dh_stop(h, 0, SIGTERM), 0);
    dh_destroy(h);
}

SL_TEST_MAIN()
