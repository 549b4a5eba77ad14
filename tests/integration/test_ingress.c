/*
 * test_ingress: sluice-ingress as a process, against the test broker.
 *   - a plain webhook becomes a record with the exact body bytes, the CloudEvents headers and the
 *     partition key; CloudEvents binary and structured input keep their attributes;
 *   - each verification scheme end to end: valid -> 202 and in the topic, invalid -> 401 with a
 *     JSON body and nothing in the topic; secrets and signatures never reach the log or Kafka;
 *   - every bad input gets its status and a JSON error body, and nothing reaches the topic;
 *   - slow clients (headers trickled byte by byte, or stalled) are dropped while normal clients
 *     are served;
 *   - the admin listener's /healthz, /readyz and /metrics.
 * Behaviour only: no assertion depends on how fast anything is.
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ingress_harness.h"
#include "sl_test.h"
#include "verify.h"

#define STRIPE_SECRET     "whsec_test_current_secret"
#define STRIPE_OLD_SECRET "whsec_test_previous_secret"
#define GITHUB_SECRET     "github-test-secret"
#define SW_SECRET         "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" /* the spec's example */
#define CRM_SECRET        "crm-test-secret"
#define API_KEY           "internal-test-api-key"
#define TRACEPARENT       "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

#define INGRESS_YAML                                                                               \
    "    max_body_bytes: 64KiB\n"                                                                  \
    "    request_timeout: 10s\n"                                                                   \
    "    idle_timeout: 2s\n"                                                                       \
    "    read_timeout: 3s\n"

#define MAX_RECORDS 64

/* The sources of every test here; the api-key hash is filled in at run time. */
static const char *sources_yaml(void)
{
    static char yaml[4096];
    unsigned char hash[32];
    char hex[65];
    EVP_Digest(API_KEY, strlen(API_KEY), hash, NULL, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", hash[i]);
    snprintf(yaml, sizeof(yaml),
             "sources:\n"
             "  stripe:\n"
             "    verify: { scheme: stripe, secret: [\"" STRIPE_SECRET "\", \"" STRIPE_OLD_SECRET
             "\"], tolerance: 5m }\n"
             "    event_id: /id\n"
             "    event_type: /type\n"
             "    partition_key: /data/object/customer\n"
             "  github:\n"
             "    verify: { scheme: github, secret: \"" GITHUB_SECRET "\" }\n"
             "    event_id: header:X-GitHub-Delivery\n"
             "    event_type: header:X-GitHub-Event\n"
             "  svix:\n"
             "    verify: { scheme: standard-webhooks, secret: \"" SW_SECRET "\" }\n"
             "    event_id: header:webhook-id\n"
             "    event_type: /type\n"
             "  crm:\n"
             "    verify: { scheme: hmac-sha256, header: X-CRM-Signature, prefix: \"sha256=\", "
             "encoding: base64, secret: \"" CRM_SECRET "\" }\n"
             "    event_id: header:X-CRM-Delivery\n"
             "    event_type: /event\n"
             "    partition_key: /contact/id\n"
             "  stripe_ce:\n"
             "    verify: { scheme: stripe, secret: \"" STRIPE_SECRET "\" }\n"
             "    cloudevents: binary\n"
             "    event_id: /id\n"
             "    event_type: /type\n"
             "  internal:\n"
             "    verify: { scheme: api-key, key_hashes: [\"%s\"] }\n"
             "  open:\n"
             "    verify: { scheme: none }\n"
             "    event_type: /type\n",
             hex);
    return yaml;
}

static const char *json_ct = "Content-Type: application/json";

static void stripe_sig(const char *secret, long ts, const char *body, char *hdr, size_t size)
{
    char sig[VERIFY_SIGNATURE_OUT_MAX];
    struct sl_err err;
    SL_REQUIRE(verify_sign_stripe(secret, ts, body, strlen(body), sig, sizeof(sig), &err) == 0);
    snprintf(hdr, size, "Stripe-Signature: %s", sig);
}

static long post(const harness_t *h, const char *source, const char *const *headers,
                 const char *body, struct http_reply *r)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/events/%s", source);
    return http_request(harness_port(h), "POST", path, headers, body, strlen(body), r);
}

static const rd_kafka_message_t *find_by_id(const struct records *recs, const char *id)
{
    char buf[256];
    for (size_t i = 0; i < recs->n; i++) {
        const char *v = record_header(recs->m[i], "ce_id", buf, sizeof(buf));
        if (v && strcmp(v, id) == 0)
            return recs->m[i];
    }
    return NULL;
}

#define CHECK_HEADER(m, name, want)                                                                \
    do {                                                                                           \
        char hb_[1024];                                                                            \
        SL_CHECK_STR(record_header(m, name, hb_, sizeof(hb_)), want);                              \
    } while (0)

SL_TEST(plain_webhook_record_has_exact_body_cloudevents_headers_and_key)
{
    harness_t *h = harness_start(INGRESS_YAML, sources_yaml());
    /* Whitespace, escapes and UTF-8 that a re-serialisation would change. */
    const char *body = "{\n  \"id\": \"evt_plain_1\",\n  \"type\": \"charge.succeeded\",\n"
                       "  \"data\": {\"object\": {\"customer\": \"cus_42\", \"amount\": 1.50,"
                       " \"note\": \"caf\xc3\xa9 \\u00e9\"}}\n}";
    char sig[256];
    stripe_sig(STRIPE_SECRET, (long)time(NULL), body, sig, sizeof(sig));
    const char *with_trace[] = {json_ct, sig, "traceparent: " TRACEPARENT, NULL};
    struct http_reply r;
    char id1[128], id2[128];
    SL_CHECK_INT(post(h, "stripe", with_trace, body, &r), 202);
    SL_CHECK_STR(r.content_type, "application/json");
    SL_REQUIRE(http_accepted_id(&r, id1, sizeof(id1)));
    const char *no_trace[] = {json_ct, sig, NULL};
    SL_CHECK_INT(post(h, "stripe", no_trace, body, &r), 202);
    SL_REQUIRE(http_accepted_id(&r, id2, sizeof(id2)));

    struct records recs;
    harness_read_topic(harness_topic(h), MAX_RECORDS, 2, 30000, 1000, &recs);
    size_t n = recs.n;
    SL_CHECK_INT(n, 2);
    const rd_kafka_message_t *m = find_by_id(&recs, id1);
    SL_REQUIRE(m);
    SL_CHECK(m->len == strlen(body) && memcmp(m->payload, body, m->len) == 0);
    SL_CHECK(m->key_len == 6 && memcmp(m->key, "cus_42", 6) == 0);
    CHECK_HEADER(m, "ce_specversion", "1.0");
    CHECK_HEADER(m, "ce_source", "stripe");
    CHECK_HEADER(m, "ce_type", "charge.succeeded");
    CHECK_HEADER(m, "content-type", "application/json");
    CHECK_HEADER(m, "ce_idempotencykey", "evt_plain_1");
    CHECK_HEADER(m, "ce_partitionkey", "cus_42");
    CHECK_HEADER(m, "ce_sluicesource", "stripe");
    CHECK_HEADER(m, "ce_traceparent", TRACEPARENT);
    char buf[256];
    const char *t = record_header(m, "ce_time", buf, sizeof(buf));
    SL_CHECK(t && strlen(t) == 24 && t[10] == 'T' && t[19] == '.' && t[23] == 'Z');
    /* Only CloudEvents headers: no request header, the signature least of all. */
    rd_kafka_headers_t *hdrs = NULL;
    SL_REQUIRE(rd_kafka_message_headers(m, &hdrs) == 0);
    const char *name;
    const void *value;
    size_t size;
    for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == 0; i++) {
        SL_CHECK(strncmp(name, "ce_", 3) == 0 || strcmp(name, "content-type") == 0);
        SL_CHECK(!memmem(value, size, "v1=", 3));
    }
    /* Without a traceparent, the ingress starts a trace of its own. */
    const rd_kafka_message_t *m2 = find_by_id(&recs, id2);
    SL_REQUIRE(m2);
    const char *tp = record_header(m2, "ce_traceparent", buf, sizeof(buf));
    SL_CHECK(tp && strlen(tp) == 55 && strncmp(tp, "00-", 3) == 0 && strcmp(tp, TRACEPARENT));
    records_free(&recs);
    harness_destroy(h);
}

SL_TEST(cloudevents_binary_and_structured_input_keep_their_attributes)
{
    harness_t *h = harness_start(INGRESS_YAML, sources_yaml());
    struct http_reply r;
    char id[128];
    const char *binary[] = {json_ct,
                            "ce-specversion: 1.0",
                            "ce-id: order-1001",
                            "ce-source: https://shop.example/orders",
                            "ce-type: com.example.order.created",
                            "ce-subject: caf%C3%A9",
                            "ce-partitionkey: customer-9",
                            "ce-myextension: kept",
                            NULL};
    const char *data = "{ \"order\": 1001 }";
    SL_CHECK_INT(post(h, "open", binary, data, &r), 202);
    SL_REQUIRE(http_accepted_id(&r, id, sizeof(id)));
    SL_CHECK_STR(id, "order-1001");

    const char *structured[] = {"Content-Type: application/cloudevents+json; charset=utf-8", NULL};
    const char *envelope =
        "{\"specversion\":\"1.0\",\"id\":\"pr-77\",\"source\":\"https://github."
        "com/cloudevents/spec/pull\",\"type\":\"com.github.pull_request.opened\","
        "\"time\":\"2018-04-05T17:31:00Z\",\"comexampleothervalue\":5,"
        "\"data\": { \"number\" : 77, \"title\": \"a \\\"b\\\"\" }}";
    SL_CHECK_INT(post(h, "open", structured, envelope, &r), 202);
    SL_REQUIRE(http_accepted_id(&r, id, sizeof(id)));
    SL_CHECK_STR(id, "pr-77");

    struct records recs;
    harness_read_topic(harness_topic(h), MAX_RECORDS, 2, 30000, 1000, &recs);
    size_t n = recs.n;
    SL_CHECK_INT(n, 2);
    const rd_kafka_message_t *b = find_by_id(&recs, "order-1001");
    SL_REQUIRE(b);
    SL_CHECK(b->len == strlen(data) && memcmp(b->payload, data, b->len) == 0);
    SL_CHECK(b->key_len == 10 && memcmp(b->key, "customer-9", 10) == 0);
    CHECK_HEADER(b, "ce_source", "https://shop.example/orders");
    CHECK_HEADER(b, "ce_type", "com.example.order.created");
    CHECK_HEADER(b, "ce_subject", "caf\xc3\xa9");
    CHECK_HEADER(b, "ce_myextension", "kept");
    CHECK_HEADER(b, "ce_idempotencykey", "order-1001");
    CHECK_HEADER(b, "ce_sluicesource", "open");
    CHECK_HEADER(b, "content-type", "application/json");

    const rd_kafka_message_t *s = find_by_id(&recs, "pr-77");
    SL_REQUIRE(s);
    const char *compact = "{\"number\":77,\"title\":\"a \\\"b\\\"\"}";
    SL_CHECK(s->len == strlen(compact) && memcmp(s->payload, compact, s->len) == 0);
    CHECK_HEADER(s, "ce_source", "https://github.com/cloudevents/spec/pull");
    CHECK_HEADER(s, "ce_type", "com.github.pull_request.opened");
    CHECK_HEADER(s, "ce_time", "2018-04-05T17:31:00Z");
    CHECK_HEADER(s, "ce_comexampleothervalue", "5");
    CHECK_HEADER(s, "ce_idempotencykey", "pr-77");
    CHECK_HEADER(s, "ce_partitionkey", "pr-77");
    CHECK_HEADER(s, "content-type", "application/json");
    CHECK_HEADER(s, "ce_sluicesource", "open");
    records_free(&recs);
    harness_destroy(h);
}

/* The reproduction of issue 11 item 1: one Stripe-signed body, sent once as a webhook and then
 * again with ce-* headers that no signature covers. They must not become new ids. */
SL_TEST(unsigned_cloudevents_headers_never_set_a_signed_sources_identity)
{
    harness_t *h = harness_start(INGRESS_YAML, sources_yaml());
    const char *body = "{\"id\":\"evt_signed_1\",\"type\":\"charge.succeeded\",\"data\":"
                       "{\"object\":{\"customer\":\"cus_7\"}}}";
    char sig[256];
    stripe_sig(STRIPE_SECRET, (long)time(NULL), body, sig, sizeof(sig));
    struct http_reply r;
    char id[128];
    const char *plain[] = {json_ct, sig, NULL};
    SL_CHECK_INT(post(h, "stripe", plain, body, &r), 202);
    SL_REQUIRE(http_accepted_id(&r, id, sizeof(id)));
    for (int i = 1; i <= 2; i++) {
        char ce_id[64], ce_type[64];
        snprintf(ce_id, sizeof(ce_id), "ce-id: attacker-id-%d", i);
        snprintf(ce_type, sizeof(ce_type), "ce-type: refund.created.%d", i);
        const char *forged[] = {
            json_ct, sig, "ce-specversion: 1.0", ce_id, "ce-source: https://attacker.example",
            ce_type, NULL};
        SL_CHECK_INT(post(h, "stripe", forged, body, &r), 400);
        http_check_error(&r, "unsigned_attributes", "ce-* headers on a stripe source");
        SL_CHECK_CONTAINS(r.body, "structured mode");
    }
    /* Sluice's own attributes cannot be smuggled in either, on any source. */
    const char *reserved[] = {json_ct,
                              sig,
                              "ce-specversion: 1.0",
                              "ce-id: x",
                              "ce-source: s",
                              "ce-type: t",
                              "ce-idempotencykey: evt_other",
                              "ce-sluicesource: open",
                              NULL};
    SL_CHECK_INT(post(h, "stripe", reserved, body, &r), 400);
    http_check_error(&r, "unsigned_attributes", "reserved ce-* headers on a stripe source");
    SL_CHECK_INT(post(h, "open", reserved, "{\"type\":\"t\"}", &r), 400);
    http_check_error(&r, "invalid_event", "reserved ce-* headers on a none source");
    /* ce-* headers without ce-specversion are not a CloudEvent: ignored, identity from the body. */
    const char *stray[] = {json_ct, sig, "ce-id: attacker-id-3", NULL};
    SL_CHECK_INT(post(h, "stripe", stray, body, &r), 202);
    char stray_id[128];
    SL_REQUIRE(http_accepted_id(&r, stray_id, sizeof(stray_id)));

    /* Structured mode on a signing source: the attributes are inside the signed body. */
    const char *ce_body = "{\"specversion\":\"1.0\",\"id\":\"evt_structured_1\",\"source\":"
                          "\"https://stripe.example\",\"type\":\"charge.succeeded\","
                          "\"data\":{\"object\":{\"customer\":\"cus_8\"}}}";
    char ce_sig[256];
    stripe_sig(STRIPE_SECRET, (long)time(NULL), ce_body, ce_sig, sizeof(ce_sig));
    const char *structured[] = {"Content-Type: application/cloudevents+json", ce_sig, NULL};
    SL_CHECK_INT(post(h, "stripe", structured, ce_body, &r), 202);
    SL_REQUIRE(http_accepted_id(&r, id, sizeof(id)));
    SL_CHECK_STR(id, "evt_structured_1");

    /* Opted in (cloudevents: binary): the attributes are kept as sent, but the idempotency key
     * is still the signed body's /id, so a forged ce-id cannot pass dedup. */
    const char *opted[] = {json_ct,
                           sig,
                           "ce-specversion: 1.0",
                           "ce-id: attacker-id-4",
                           "ce-source: https://attacker.example",
                           "ce-type: refund.created",
                           NULL};
    SL_CHECK_INT(post(h, "stripe_ce", opted, body, &r), 202);
    SL_REQUIRE(http_accepted_id(&r, id, sizeof(id)));
    SL_CHECK_STR(id, "attacker-id-4");

    struct records recs;
    harness_read_topic(harness_topic(h), MAX_RECORDS, 4, 30000, 2000, &recs);
    size_t n = recs.n;
    SL_CHECK_INT(n, 4);
    char buf[256];
    size_t from_stripe = 0;
    for (size_t i = 0; i < n; i++) {
        const char *v = record_header(recs.m[i], "ce_idempotencykey", buf, sizeof(buf));
        SL_CHECK(v && strncmp(v, "attacker", 8) != 0);
        const char *src = record_header(recs.m[i], "ce_sluicesource", buf, sizeof(buf));
        if (src && strcmp(src, "stripe") == 0) {
            from_stripe++;
            const char *t = record_header(recs.m[i], "ce_type", buf, sizeof(buf));
            SL_CHECK(t && strcmp(t, "charge.succeeded") == 0);
        }
    }
    SL_CHECK_INT(from_stripe, 3);
    const rd_kafka_message_t *m = find_by_id(&recs, "attacker-id-4");
    SL_REQUIRE(m);
    CHECK_HEADER(m, "ce_idempotencykey", "evt_signed_1");
    CHECK_HEADER(m, "ce_type", "refund.created");
    CHECK_HEADER(m, "ce_sluicesource", "stripe_ce");
    m = find_by_id(&recs, stray_id);
    SL_REQUIRE(m);
    CHECK_HEADER(m, "ce_idempotencykey", "evt_signed_1");
    records_free(&recs);
    SL_CHECK(harness_metric(h, "sluice_ingress_requests_total{source=\"stripe\",status=\"400\"}") ==
             3);
    harness_destroy(h);
}

/* One request of the scheme table: its headers, its body, and the status it must get. */
struct scheme_case {
    const char *what, *source;
    char headers[6][512];
    char body[512];
    long want;
};

static void add_header(struct scheme_case *c, const char *name, const char *value)
{
    for (int i = 0; i < 6; i++) {
        if (!c->headers[i][0]) {
            snprintf(c->headers[i], sizeof(c->headers[i]), "%s: %s", name, value);
            return;
        }
    }
}

static struct scheme_case *new_case(struct scheme_case *cases, size_t *nc, const char *what,
                                    const char *source, long want)
{
    struct scheme_case *c = &cases[(*nc)++];
    c->what = what;
    c->source = source;
    c->want = want;
    add_header(c, "Content-Type", "application/json");
    return c;
}

SL_TEST(each_verification_scheme_end_to_end)
{
    harness_t *h = harness_start(INGRESS_YAML, sources_yaml());
    struct sl_err err;
    static struct scheme_case cases[24];
    size_t nc = 0;
    long now = (long)time(NULL);
    char sig[VERIFY_SIGNATURE_OUT_MAX];
    memset(cases, 0, sizeof(cases));

#define CASE(w, src, st) c = new_case(cases, &nc, w, src, st)
    struct scheme_case *c;
    /* stripe: current and previous secret (rotation), then the ways to fail. */
#define SBODY "{\"id\":\"evt_%s_%zu\",\"type\":\"t\",\"data\":{\"object\":{}}}"
    struct {
        const char *what, *secret;
        long ts;
        bool tamper;
        long want;
    } stripe[] = {
        {"stripe current secret", STRIPE_SECRET, now, false, 202},
        {"stripe previous secret", STRIPE_OLD_SECRET, now, false, 202},
        {"stripe wrong secret", "whsec_wrong", now, false, 401},
        {"stripe tampered body", STRIPE_SECRET, now, true, 401},
        {"stripe stale timestamp", STRIPE_SECRET, now - 600, false, 401},
        {"stripe future timestamp", STRIPE_SECRET, now + 600, false, 401},
    };
    for (size_t i = 0; i < sizeof(stripe) / sizeof(stripe[0]); i++) {
        CASE(stripe[i].what, "stripe", stripe[i].want);
        snprintf(c->body, sizeof(c->body), SBODY, stripe[i].want == 202 ? "ok" : "INVALID", i);
        SL_REQUIRE(verify_sign_stripe(stripe[i].secret, stripe[i].ts, c->body, strlen(c->body), sig,
                                      sizeof(sig), &err) == 0);
        add_header(c, "Stripe-Signature", sig);
        if (stripe[i].tamper)
            c->body[8] = 'X';
    }
    CASE("stripe missing header", "stripe", 401);
    snprintf(c->body, sizeof(c->body), "{\"id\":\"INVALID-nohdr\",\"type\":\"t\"}");

    /* github */
#define GBODY "{\"action\":\"opened\",\"marker\":\"%s\"}"
    CASE("github valid", "github", 202);
    snprintf(c->body, sizeof(c->body), GBODY, "github-ok");
    SL_REQUIRE(verify_sign_hmac_sha256(GITHUB_SECRET, "sha256=", false, c->body, strlen(c->body),
                                       sig, sizeof(sig), &err) == 0);
    add_header(c, "X-Hub-Signature-256", sig);
    add_header(c, "X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    add_header(c, "X-GitHub-Event", "pull_request");
    CASE("github wrong secret", "github", 401);
    snprintf(c->body, sizeof(c->body), GBODY, "INVALID-github");
    SL_REQUIRE(verify_sign_hmac_sha256("nope", "sha256=", false, c->body, strlen(c->body), sig,
                                       sizeof(sig), &err) == 0);
    add_header(c, "X-Hub-Signature-256", sig);
    add_header(c, "X-GitHub-Delivery", "x");
    add_header(c, "X-GitHub-Event", "push");

    /* standard webhooks */
#define WBODY "{\"type\":\"invoice.paid\",\"marker\":\"%s\"}"
    struct {
        const char *what, *secret;
        long ts;
        long want;
    } sw[] = {
        {"standard-webhooks valid", SW_SECRET, now, 202},
        {"standard-webhooks wrong secret", "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", now, 401},
        {"standard-webhooks stale", SW_SECRET, now - 600, 401},
    };
    for (size_t i = 0; i < sizeof(sw) / sizeof(sw[0]); i++) {
        char msg_id[32], ts[32];
        snprintf(msg_id, sizeof(msg_id), "msg_%zu", i);
        snprintf(ts, sizeof(ts), "%ld", sw[i].ts);
        CASE(sw[i].what, "svix", sw[i].want);
        snprintf(c->body, sizeof(c->body), WBODY, sw[i].want == 202 ? "sw-ok" : "INVALID-sw");
        SL_REQUIRE(verify_sign_standard_webhooks(sw[i].secret, msg_id, sw[i].ts, c->body,
                                                 strlen(c->body), sig, sizeof(sig), &err) == 0);
        add_header(c, "webhook-id", msg_id);
        add_header(c, "webhook-timestamp", ts);
        add_header(c, "webhook-signature", sig);
    }

    /* hmac-sha256, base64 with a prefix */
#define CBODY "{\"event\":\"contact.updated\",\"contact\":{\"id\":\"c-%s\"}}"
    for (int valid = 1; valid >= 0; valid--) {
        CASE(valid ? "hmac-sha256 valid" : "hmac-sha256 wrong secret", "crm", valid ? 202 : 401);
        snprintf(c->body, sizeof(c->body), CBODY, valid ? "ok" : "INVALID");
        SL_REQUIRE(verify_sign_hmac_sha256(valid ? CRM_SECRET : "nope", "sha256=", true, c->body,
                                           strlen(c->body), sig, sizeof(sig), &err) == 0);
        add_header(c, "X-CRM-Signature", sig);
        add_header(c, "X-CRM-Delivery", valid ? "d-1" : "d-2");
    }

    /* api-key: both header forms, a wrong key, none */
    CASE("api-key bearer", "internal", 202);
    snprintf(c->body, sizeof(c->body), "{\"marker\":\"key-bearer\"}");
    add_header(c, "Authorization", "Bearer " API_KEY);
    CASE("api-key x-api-key", "internal", 202);
    snprintf(c->body, sizeof(c->body), "{\"marker\":\"key-header\"}");
    add_header(c, "X-Api-Key", API_KEY);
    CASE("api-key wrong key", "internal", 401);
    snprintf(c->body, sizeof(c->body), "{\"marker\":\"INVALID-key\"}");
    add_header(c, "Authorization", "Bearer not-the-key");
    CASE("api-key missing", "internal", 401);
    snprintf(c->body, sizeof(c->body), "{\"marker\":\"INVALID-nokey\"}");

    /* none */
    CASE("none", "open", 202);
    snprintf(c->body, sizeof(c->body), "{\"type\":\"internal.ping\"}");
#undef CASE
#undef SBODY
#undef GBODY
#undef WBODY
#undef CBODY

    char ids[24][128];
    size_t accepted = 0;
    for (size_t i = 0; i < nc; i++) {
        const char *hdrs[7] = {NULL};
        for (int j = 0; j < 6 && cases[i].headers[j][0]; j++)
            hdrs[j] = cases[i].headers[j];
        struct http_reply r;
        long status = post(h, cases[i].source, hdrs, cases[i].body, &r);
        if (status != cases[i].want) {
            sl_test_fail(__FILE__, __LINE__, "%s: status %ld, expected %ld (%s)", cases[i].what,
                         status, cases[i].want, r.body);
            continue;
        }
        if (status == 202)
            SL_CHECK(http_accepted_id(&r, ids[accepted++], sizeof(ids[0])));
        else
            http_check_error(&r, "unauthorized", cases[i].what);
    }
    SL_CHECK_INT(accepted, 8);

    struct records recs;
    harness_read_topic(harness_topic(h), MAX_RECORDS, accepted, 30000, 2000, &recs);
    size_t n = recs.n;
    SL_CHECK_INT(n, accepted);
    for (size_t i = 0; i < accepted; i++)
        if (!find_by_id(&recs, ids[i]))
            sl_test_fail(__FILE__, __LINE__, "202 id %s is not in the topic", ids[i]);
    for (size_t i = 0; i < n; i++) {
        SL_CHECK(!memmem(recs.m[i]->payload, recs.m[i]->len, "INVALID", 7));
        char buf[256];
        /* Header locators worked: the delivery ids are the idempotency keys. */
        const char *src = record_header(recs.m[i], "ce_sluicesource", buf, sizeof(buf));
        if (src && strcmp(src, "github") == 0) {
            CHECK_HEADER(recs.m[i], "ce_idempotencykey", "72d3162e-cc78-11e3-81ab-4c9367dc0958");
            CHECK_HEADER(recs.m[i], "ce_type", "pull_request");
        }
    }
    records_free(&recs);

    /* No secret, key or signature in the log. */
    SL_CHECK_INT(harness_signal_and_wait(h, SIGTERM), 0);
    char *log = harness_log(h);
    SL_REQUIRE(log);
    const char *never[] = {STRIPE_SECRET, STRIPE_OLD_SECRET, GITHUB_SECRET, SW_SECRET,
                           CRM_SECRET,    API_KEY,           "not-the-key"};
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
        if (strstr(log, never[i]))
            sl_test_fail(__FILE__, __LINE__, "the log contains the secret '%s'", never[i]);
    static const char *const credential[] = {
        "Stripe-Signature: ", "X-Hub-Signature-256: ", "webhook-signature: ",
        "X-CRM-Signature: ",  "Authorization: ",       "X-Api-Key: "};
    for (size_t i = 0; i < nc; i++)
        for (int j = 0; j < 6; j++)
            for (size_t k = 0; k < sizeof(credential) / sizeof(credential[0]); k++) {
                size_t len = strlen(credential[k]);
                const char *value = cases[i].headers[j] + len;
                if (strncmp(cases[i].headers[j], credential[k], len) == 0 && strstr(log, value))
                    sl_test_fail(__FILE__, __LINE__, "the log contains %s", cases[i].headers[j]);
            }
    /* One line per rejected request, with its reason. */
    size_t rejected = 0;
    for (const char *p = log; (p = strstr(p, "rejected: status=401")); p++)
        rejected++;
    SL_CHECK_INT(rejected, nc - accepted);
    SL_CHECK_CONTAINS(log, "detail=timestamp outside tolerance");
    free(log);
    harness_destroy(h);
}

SL_TEST(bad_inputs_get_their_status_and_a_json_body)
{
    harness_t *h = harness_start(INGRESS_YAML, sources_yaml());
    struct http_reply r;
    const char *json[] = {json_ct, NULL};
    const char *text[] = {"Content-Type: text/plain", NULL};
    const char *batch[] = {"Content-Type: application/cloudevents-batch+json", NULL};
    const char *chunked[] = {json_ct, "Transfer-Encoding: chunked", NULL};
    int port = harness_port(h);

    SL_CHECK_INT(post(h, "open", json, "{\"type\":", &r), 400);
    http_check_error(&r, "malformed_json", "truncated JSON");
    SL_CHECK_CONTAINS(r.body, "at byte 8");
    SL_CHECK_INT(post(h, "open", json, "{\"type\":5}", &r), 400);
    http_check_error(&r, "invalid_event", "type not a string");
    SL_CHECK_CONTAINS(r.body, "event_type: /type is a number");
    SL_CHECK_INT(post(h, "open", json, "", &r), 400);
    http_check_error(&r, "malformed_json", "empty body");
    SL_CHECK_INT(post(h, "nope", json, "{}", &r), 404);
    http_check_error(&r, "unknown_source", "unknown source");
    SL_CHECK_INT(http_request(port, "POST", "/v2/other", json, "{}", 2, &r), 404);
    http_check_error(&r, "not_found", "other path");
    SL_CHECK_INT(http_request(port, "GET", "/v1/events/open", NULL, NULL, 0, &r), 405);
    http_check_error(&r, "method_not_allowed", "GET");
    SL_CHECK_INT(http_request(port, "PUT", "/v1/events/open", json, "{}", 2, &r), 405);
    SL_CHECK_INT(post(h, "open", text, "{}", &r), 415);
    http_check_error(&r, "unsupported_media_type", "text/plain");
    SL_CHECK_INT(post(h, "open", NULL, "{}", &r), 415);
    http_check_error(&r, "unsupported_media_type", "no Content-Type");
    SL_CHECK_INT(post(h, "open", batch, "[]", &r), 415);
    http_check_error(&r, "unsupported_media_type", "batch");

    /* 413: announced by Content-Length, and counted on a chunked body. */
    size_t big_len = 70 * 1024;
    char *big = malloc(big_len + 1);
    SL_REQUIRE(big);
    memset(big, ' ', big_len);
    big[0] = '{', big[big_len - 1] = '}', big[big_len] = '\0';
    SL_CHECK_INT(post(h, "open", json, big, &r), 413);
    http_check_error(&r, "body_too_large", "Content-Length");
    SL_CHECK_INT(post(h, "open", chunked, big, &r), 413);
    http_check_error(&r, "body_too_large", "chunked");
    free(big);
    /* A chunked body far past the limit is not read to its end: the connection is cut. */
    big_len = 4 * 1024 * 1024;
    big = malloc(big_len + 1);
    SL_REQUIRE(big);
    memset(big, ' ', big_len);
    big[big_len] = '\0';
    SL_CHECK(post(h, "open", chunked, big, &r) != 202);
    free(big);

    /* Headers beyond the connection's memory: libmicrohttpd's own 431 (its body is HTML). */
    static char huge[48 * 1024];
    snprintf(huge, sizeof(huge), "X-Big: ");
    memset(huge + 7, 'a', sizeof(huge) - 8);
    const char *huge_hdrs[] = {json_ct, huge, NULL};
    long status = post(h, "open", huge_hdrs, "{}", &r);
    SL_CHECK(status == 431 || status == 413);

    /* None of it reached the topic; a valid request afterwards does. */
    const char *ok[] = {json_ct, NULL};
    SL_CHECK_INT(post(h, "open", ok, "{\"type\":\"after\"}", &r), 202);
    struct records recs;
    harness_read_topic(harness_topic(h), MAX_RECORDS, 1, 30000, 2000, &recs);
    size_t n = recs.n;
    SL_CHECK_INT(n, 1);
    if (n == 1)
        CHECK_HEADER(recs.m[0], "ce_type", "after");
    records_free(&recs);
    SL_CHECK(harness_metric(h, "sluice_ingress_requests_total{source=\"open\",status=\"415\"}") ==
             3);
    SL_CHECK(harness_metric(
                 h, "sluice_ingress_requests_total{source=\"_unknown\",status=\"404\"}") == 2);
    harness_destroy(h);
}

/* A socket that sends an HTTP request one byte at a time; `stall_after` bytes then nothing. */
struct slow_client {
    int fd;
    const char *request;
    size_t sent, stall_after;
    bool closed;
};

/* Whether the server has closed the connection (without answering it). */
static bool server_closed(struct slow_client *s)
{
    char buf[256];
    struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
    if (poll(&pfd, 1, 0) <= 0)
        return false;
    ssize_t n = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0 && memmem(buf, (size_t)n, " 202 ", 5))
        sl_test_fail(__FILE__, __LINE__, "a slow client got a 202");
    return n == 0 || (n < 0 && errno != EAGAIN);
}

SL_TEST(slow_clients_are_dropped_and_do_not_block_others)
{
    harness_t *h = harness_start(INGRESS_YAML, sources_yaml());
    const char *request = "POST /v1/events/open HTTP/1.1\r\nHost: x\r\nContent-Type: "
                          "application/json\r\nContent-Length: 17\r\nX-Padding: "
                          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n"
                          "{\"type\":\"slow\"}";
    const char *body_request =
        "POST /v1/events/open HTTP/1.1\r\nHost: x\r\nContent-Type: "
        "application/json\r\nContent-Length: 300\r\n\r\n"
        "{\"type\":\"slow body\",\"pad\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    /* Six trickle their headers a byte at a time, more often than the idle timeout, so only
     * the read deadline can stop them; two stall after a few bytes (the idle timeout's job);
     * one sends its headers and then trickles a body it never finishes. */
    struct slow_client slow[9];
    for (int i = 0; i < 9; i++) {
        slow[i] = (struct slow_client){.fd = raw_connect(harness_port(h)),
                                       .request = i < 8 ? request : body_request,
                                       .stall_after = i >= 6 && i < 8 ? 10 : (size_t)-1};
        SL_REQUIRE(slow[i].fd >= 0);
    }
    size_t header_len = strstr(body_request, "\r\n\r\n") + 4 - body_request;
    SL_REQUIRE(raw_send(slow[8].fd, body_request, header_len));
    slow[8].sent = header_len;

    int served = 0, closed = 0;
    struct http_reply r;
    const char *json[] = {json_ct, NULL};
    for (int round = 0; round < 600 && closed < 9; round++) { /* 600 x 100 ms at most */
        for (int i = 0; i < 9; i++) {
            struct slow_client *s = &slow[i];
            if (s->closed)
                continue;
            if (server_closed(s)) {
                s->closed = true;
                closed++;
                continue;
            }
            if (s->sent < s->stall_after && s->sent < strlen(s->request) &&
                send(s->fd, s->request + s->sent, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
                s->sent++;
        }
        /* Meanwhile a normal client is served as usual. */
        if (round % 5 == 0 && post(h, "open", json, "{\"type\":\"normal\"}", &r) == 202)
            served++;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    SL_CHECK_INT(closed, 9);
    for (int i = 0; i < 9; i++) {
        SL_CHECK(slow[i].sent < strlen(slow[i].request)); /* none could finish its request */
        close(slow[i].fd);
    }
    SL_CHECK(served >= 3);
    /* Those that kept sending were closed by the read deadline, not by idleness. */
    SL_CHECK(harness_metric(
                 h, "sluice_ingress_connections_dropped_total{reason=\"read_timeout\"}") >= 7);
    harness_destroy(h);
}

SL_TEST(admin_endpoints)
{
    harness_t *h = harness_start(INGRESS_YAML, sources_yaml());
    struct http_reply r;
    SL_CHECK_INT(http_request(harness_admin_port(h), "GET", "/healthz", NULL, NULL, 0, &r), 200);
    SL_CHECK_INT(http_request(harness_admin_port(h), "GET", "/readyz", NULL, NULL, 0, &r), 200);
    SL_CHECK_CONTAINS(r.body, "ready");
    const char *json[] = {json_ct, NULL};
    SL_CHECK_INT(post(h, "open", json, "{\"type\":\"m\"}", &r), 202);
    SL_CHECK(harness_metric(h, "sluice_ingress_requests_total{source=\"open\",status=\"202\"}") ==
             1);
    SL_CHECK(harness_metric(h, "sluice_ingress_request_bytes_total{source=\"open\"}") == 12);
    SL_CHECK(harness_metric(h, "sluice_ingress_kafka_delivery_seconds_count{result=\"ok\"}") == 1);
    SL_CHECK(harness_metric(h, "sluice_ingress_request_seconds_count{source=\"open\"}") == 1);
    SL_CHECK(harness_metric(h, "sluice_ingress_requests_in_flight") == 0);
    SL_CHECK(harness_metric(h, "sluice_ingress_producer_queue_depth") >= 0);
    SL_CHECK(harness_metric(h, "sluice_ingress_connections") >= 0);
    /* The public listener serves only events. */
    SL_CHECK_INT(http_request(harness_port(h), "GET", "/metrics", NULL, NULL, 0, &r), 404);
    harness_destroy(h);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = sl_test_run_all();
    curl_global_cleanup();
    return rc;
}
