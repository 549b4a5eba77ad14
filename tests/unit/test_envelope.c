/*
 * test_envelope: ingress/envelope.[ch], the record a request becomes. Plain webhooks (new id,
 * configured type, idempotency and partition keys, fallbacks), CloudEvents binary and structured
 * input (attributes kept, reserved names refused, partition key precedence), trace context
 * (kept, taken from the event, or started), and the statuses of bad requests.
 */
#include <stdlib.h>
#include <strings.h>

#include "envelope.h"
#include "reply.h"
#include "sl_test.h"
#include "traceparent.h"

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static const char *lookup(void *opaque, const char *name)
{
    for (const struct cehttp_header *h = opaque; h && h->name; h++)
        if (strcasecmp(h->name, name) == 0)
            return h->value;
    return NULL;
}

static source_t *make_source(const char *name, const char *id, const char *type, const char *key)
{
    struct sl_err err;
    struct source_opts o = {
        .name = name,
        .verify = {.scheme = VERIFY_NONE},
        .locators = {
            [SOURCE_EVENT_ID] = id, [SOURCE_EVENT_TYPE] = type, [SOURCE_PARTITION_KEY] = key}};
    source_t *src = source_new(&o, &err);
    if (!src)
        sl_test_fail(__FILE__, __LINE__, "source_new: %s", err.msg);
    return src;
}

/* A request with the given headers ({NULL, NULL}-terminated) and body. */
static struct envelope_request request(const source_t *src, const struct cehttp_header *hdrs,
                                       const char *body)
{
    size_t n = 0;
    while (hdrs && hdrs[n].name)
        n++;
    struct envelope_request rq = {
        .source = src,
        .content_type = lookup((void *)hdrs, "Content-Type"),
        .traceparent = lookup((void *)hdrs, "traceparent"),
        .headers = hdrs,
        .n_headers = n,
        .header = lookup,
        .header_opaque = (void *)hdrs,
        .body = body,
        .body_len = strlen(body),
        .received = {.tv_sec = 1795000000, .tv_nsec = 123456789},
    };
    return rq;
}

SL_TEST(plain_webhook_record)
{
    source_t *src = make_source("stripe", "/id", "/type", "/data/object/customer");
    const struct cehttp_header hdrs[] = {{"Content-Type", "application/json; charset=utf-8"},
                                         {"traceparent", TP},
                                         {"Stripe-Signature", "t=1,v1=00"},
                                         {NULL, NULL}};
    const char *body = "{\"id\":\"evt_1\",\"type\":\"charge.succeeded\",\"data\":{\"object\":"
                       "{\"customer\":\"cus_42\"}}}";
    struct envelope_request rq = request(src, hdrs, body);
    struct envelope env;
    struct sl_err err;
    const char *code = NULL;
    SL_REQUIRE(envelope_build(&rq, &env, &code, &err) == 0);
    SL_CHECK(env.value == body && env.value_len == strlen(body)); /* the body as received */
    SL_CHECK_STR(env.key, "cus_42");
    SL_CHECK_INT(env.key_len, 6);
    SL_CHECK_STR(sl_ce_get(&env.ce, "specversion"), "1.0");
    SL_CHECK_STR(sl_ce_get(&env.ce, "source"), "stripe");
    SL_CHECK_STR(sl_ce_get(&env.ce, "type"), "charge.succeeded");
    SL_CHECK_STR(sl_ce_get(&env.ce, "time"), "2026-11-18T11:06:40.123Z");
    SL_CHECK_STR(sl_ce_get(&env.ce, "datacontenttype"), "application/json; charset=utf-8");
    SL_CHECK_STR(sl_ce_get(&env.ce, SL_CE_IDEMPOTENCY_KEY), "evt_1");
    SL_CHECK_STR(sl_ce_get(&env.ce, SL_CE_TRACEPARENT), TP);
    SL_CHECK_STR(sl_ce_get(&env.ce, SL_CE_PARTITION_KEY), "cus_42");
    SL_CHECK_STR(sl_ce_get(&env.ce, SL_CE_SOURCE_NAME), "stripe");
    SL_CHECK_STR(env.id, sl_ce_get(&env.ce, "id"));
    /* A fresh UUIDv7. */
    SL_CHECK_INT(strlen(env.id), 36);
    SL_CHECK(env.id[14] == '7');
    SL_CHECK_INT(env.ce.n, 10);
    /* Nothing of the request's other headers, the signature least of all. */
    for (size_t i = 0; i < env.ce.n; i++)
        SL_CHECK(!strstr(env.ce.attrs[i].value, "v1=00"));
    char first_id[64];
    snprintf(first_id, sizeof(first_id), "%s", env.id);
    envelope_free(&env);
    SL_REQUIRE(envelope_build(&rq, &env, &code, &err) == 0);
    SL_CHECK(strcmp(env.id, first_id) != 0);
    envelope_free(&env);
    source_destroy(src);
}

SL_TEST(plain_webhook_fallbacks)
{
    source_t *src = make_source("crm", NULL, NULL, "/contact/id");
    const struct cehttp_header hdrs[] = {{"Content-Type", "application/json"}, {NULL, NULL}};
    struct envelope_request rq = request(src, hdrs, "{\"contact\":{}}");
    struct envelope env;
    struct sl_err err;
    const char *code;
    SL_REQUIRE(envelope_build(&rq, &env, &code, &err) == 0);
    SL_CHECK_STR(sl_ce_get(&env.ce, "type"), "crm.event");
    /* No event_id: the idempotency key is the new id; no partition key in this request: the
     * idempotency key. */
    SL_CHECK_STR(sl_ce_get(&env.ce, SL_CE_IDEMPOTENCY_KEY), env.id);
    SL_CHECK_STR(env.key, env.id);
    /* A new, valid trace. */
    struct traceparent tp;
    SL_CHECK_INT(traceparent_parse(sl_ce_get(&env.ce, SL_CE_TRACEPARENT), &tp), 0);
    envelope_free(&env);
    source_destroy(src);
}

static int build_status(const source_t *src, const struct cehttp_header *hdrs, const char *body,
                        const char **code, char *detail, size_t size)
{
    struct envelope_request rq = request(src, hdrs, body);
    struct envelope env;
    struct sl_err err = {0};
    *code = NULL;
    int status = envelope_build(&rq, &env, code, &err);
    snprintf(detail, size, "%s", err.msg);
    if (status == 0)
        envelope_free(&env);
    return status;
}

SL_TEST(bad_requests_get_their_status)
{
    source_t *src = make_source("s", "/id", "/type", NULL);
    const struct cehttp_header json[] = {{"Content-Type", "application/json"}, {NULL, NULL}};
    const struct cehttp_header text[] = {{"Content-Type", "text/plain"}, {NULL, NULL}};
    const struct cehttp_header batch[] = {{"Content-Type", "application/cloudevents-batch+json"},
                                          {NULL, NULL}};
    const char *code;
    char detail[SL_ERR_MSG_MAX];
    SL_CHECK_INT(build_status(src, json, "{\"id\":", &code, detail, sizeof(detail)), 400);
    SL_CHECK_STR(code, REPLY_MALFORMED_JSON);
    SL_CHECK_CONTAINS(detail, "malformed JSON at byte 6");
    SL_CHECK_INT(build_status(src, json, "{\"type\":\"t\"}", &code, detail, sizeof(detail)), 400);
    SL_CHECK_STR(code, REPLY_INVALID_EVENT);
    SL_CHECK_STR(detail, "event_id: /id is missing in the body");
    SL_CHECK_INT(
        build_status(src, json, "{\"id\":\"1\",\"type\":{}}", &code, detail, sizeof(detail)), 400);
    SL_CHECK_STR(detail, "event_type: /type is an object, expected a string");
    SL_CHECK_INT(build_status(src, text, "{}", &code, detail, sizeof(detail)), 415);
    SL_CHECK_STR(code, REPLY_MEDIA_TYPE);
    SL_CHECK_INT(build_status(src, NULL, "{}", &code, detail, sizeof(detail)), 415);
    SL_CHECK_INT(build_status(src, batch, "[]", &code, detail, sizeof(detail)), 415);
    SL_CHECK_CONTAINS(detail, "batch");
    SL_CHECK_INT(build_status(src, json, "", &code, detail, sizeof(detail)), 400);
    SL_CHECK_STR(code, REPLY_MALFORMED_JSON);
    source_destroy(src);
}

SL_TEST(binary_cloudevent_keeps_its_attributes)
{
    /* The source's locators for id and type do not apply to CloudEvents; partition_key does. */
    source_t *src = make_source("orders", "/nope", "/nope", NULL);
    const struct cehttp_header hdrs[] = {{"Content-Type", "application/json"},
                                         {"ce-specversion", "1.0"},
                                         {"ce-id", "order-77"},
                                         {"ce-source", "https://shop.example/orders"},
                                         {"ce-type", "order.created"},
                                         {"ce-time", "2026-01-02T03:04:05Z"},
                                         {"ce-partitionkey", "customer-9"},
                                         {"ce-traceparent", TP},
                                         {"ce-myext", "kept"},
                                         {NULL, NULL}};
    const char *body = "{\"total\":12}";
    struct envelope_request rq = request(src, hdrs, body);
    struct envelope env;
    struct sl_err err;
    const char *code;
    SL_REQUIRE(envelope_build(&rq, &env, &code, &err) == 0);
    SL_CHECK(env.value == body);
    SL_CHECK_STR(env.id, "order-77");
    SL_CHECK_STR(sl_ce_get(&env.ce, "source"), "https://shop.example/orders");
    SL_CHECK_STR(sl_ce_get(&env.ce, "type"), "order.created");
    SL_CHECK_STR(sl_ce_get(&env.ce, "time"), "2026-01-02T03:04:05Z");
    SL_CHECK_STR(sl_ce_get(&env.ce, "myext"), "kept");
    SL_CHECK_STR(sl_ce_get(&env.ce, SL_CE_IDEMPOTENCY_KEY), "order-77");
    SL_CHECK_STR(sl_ce_get(&env.ce, SL_CE_SOURCE_NAME), "orders");
    SL_CHECK_STR(sl_ce_get(&env.ce, SL_CE_TRACEPARENT), TP); /* from the event */
    SL_CHECK_STR(env.key, "customer-9");                     /* the event's partition key */
    SL_CHECK_STR(sl_ce_get(&env.ce, "datacontenttype"), "application/json");
    envelope_free(&env);
    source_destroy(src);
}

SL_TEST(structured_cloudevent_and_partition_key_precedence)
{
    source_t *src = make_source("orders", NULL, NULL, "/customer");
    const struct cehttp_header hdrs[] = {{"Content-Type", "application/cloudevents+json"},
                                         {"traceparent", "not-a-traceparent"},
                                         {NULL, NULL}};
    const char *body = "{\"specversion\":\"1.0\",\"id\":\"e-1\",\"source\":\"/shop\",\"type\":"
                       "\"order.paid\",\"partitionkey\":\"from-event\",\"data\":{ \"customer\" : "
                       "\"cus_7\" }}";
    struct envelope_request rq = request(src, hdrs, body);
    struct envelope env;
    struct sl_err err;
    const char *code;
    SL_REQUIRE(envelope_build(&rq, &env, &code, &err) == 0);
    SL_CHECK_INT(env.value_len, strlen("{\"customer\":\"cus_7\"}"));
    SL_CHECK(memcmp(env.value, "{\"customer\":\"cus_7\"}", env.value_len) == 0);
    SL_CHECK_STR(env.id, "e-1");
    SL_CHECK_STR(sl_ce_get(&env.ce, "type"), "order.paid");
    SL_CHECK_STR(sl_ce_get(&env.ce, "source"), "/shop");
    SL_CHECK_STR(env.key, "cus_7"); /* the configured pointer, into the data, wins */
    SL_CHECK_STR(sl_ce_get(&env.ce, "time"), "2026-11-18T11:06:40.123Z"); /* receiving time */
    struct traceparent tp;                                                /* replaced */
    SL_CHECK_INT(traceparent_parse(sl_ce_get(&env.ce, SL_CE_TRACEPARENT), &tp), 0);
    envelope_free(&env);

    /* data_base64 must decode to JSON. */
    const char *b64 = "{\"specversion\":\"1.0\",\"id\":\"e-2\",\"source\":\"/shop\",\"type\":\"t\","
                      "\"data_base64\":\"bm90IGpzb24=\"}";
    char detail[SL_ERR_MSG_MAX];
    SL_CHECK_INT(build_status(src, hdrs, b64, &code, detail, sizeof(detail)), 400);
    SL_CHECK_STR(code, REPLY_MALFORMED_JSON);
    /* An event without data is a record without a value. */
    const char *nodata = "{\"specversion\":\"1.0\",\"id\":\"e-3\",\"source\":\"/shop\",\"type\":"
                         "\"t\"}";
    rq = request(src, hdrs, nodata);
    SL_REQUIRE(envelope_build(&rq, &env, &code, &err) == 0);
    SL_CHECK_INT(env.value_len, 0);
    SL_CHECK_STR(env.key, "e-3");
    envelope_free(&env);
    source_destroy(src);
}

SL_TEST(reserved_attributes_are_refused)
{
    source_t *src = make_source("orders", NULL, NULL, NULL);
    const struct cehttp_header spoof[] = {{"Content-Type", "application/json"},
                                          {"ce-specversion", "1.0"},
                                          {"ce-id", "1"},
                                          {"ce-source", "s"},
                                          {"ce-type", "t"},
                                          {"ce-sluicesource", "payments"},
                                          {NULL, NULL}};
    const char *code;
    char detail[SL_ERR_MSG_MAX];
    SL_CHECK_INT(build_status(src, spoof, "{}", &code, detail, sizeof(detail)), 400);
    SL_CHECK_STR(detail, "CloudEvents attribute 'sluicesource' is reserved for Sluice");
    const struct cehttp_header structured[] = {{"Content-Type", "application/cloudevents+json"},
                                               {NULL, NULL}};
    SL_CHECK_INT(build_status(src, structured,
                              "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":"
                              "\"t\",\"idempotencykey\":\"x\"}",
                              &code, detail, sizeof(detail)),
                 400);
    SL_CHECK_CONTAINS(detail, "'idempotencykey' is reserved");
    source_destroy(src);
}

static source_t *make_signed(const char *name, bool binary)
{
    struct sl_err err;
    const char *secrets[] = {"github-secret"};
    struct source_opts o = {.name = name,
                            .verify = {.scheme = VERIFY_GITHUB, .secrets = secrets, .n_secrets = 1},
                            .locators = {[SOURCE_EVENT_ID] = "/id", [SOURCE_EVENT_TYPE] = "/type"},
                            .cloudevents_binary = binary};
    source_t *src = source_new(&o, &err);
    if (!src)
        sl_test_fail(__FILE__, __LINE__, "source_new: %s", err.msg);
    return src;
}

SL_TEST(signed_source_refuses_unsigned_attributes_unless_opted_in)
{
    source_t *src = make_signed("gh", false);
    SL_REQUIRE(src);
    SL_CHECK(source_signs_body(src) && !source_binary_allowed(src));
    const struct cehttp_header binary[] = {{"Content-Type", "application/json"},
                                           {"ce-specversion", "1.0"},
                                           {"ce-id", "forged-1"},
                                           {"ce-source", "s"},
                                           {"ce-type", "forged.type"},
                                           {NULL, NULL}};
    const char *body = "{\"id\":\"delivery-1\",\"type\":\"push\"}";
    const char *code;
    char detail[SL_ERR_MSG_MAX];
    SL_CHECK_INT(build_status(src, binary, body, &code, detail, sizeof(detail)), 400);
    SL_CHECK_STR(code, REPLY_UNSIGNED_ATTRS);
    SL_CHECK_CONTAINS(detail, "structured mode");
    /* Plain and structured requests are fine: everything they say is signed. */
    const struct cehttp_header plain[] = {{"Content-Type", "application/json"}, {NULL, NULL}};
    struct envelope_request rq = request(src, plain, body);
    struct envelope env;
    struct sl_err err;
    SL_REQUIRE(envelope_build(&rq, &env, &code, &err) == 0);
    SL_CHECK_STR(sl_ce_get(&env.ce, SL_CE_IDEMPOTENCY_KEY), "delivery-1");
    SL_CHECK_STR(sl_ce_get(&env.ce, "type"), "push");
    envelope_free(&env);
    source_destroy(src);

    /* Opted in: the attributes as sent, the idempotency key from the signed body. */
    src = make_signed("gh", true);
    SL_REQUIRE(src);
    SL_CHECK(source_binary_allowed(src));
    rq = request(src, binary, body);
    SL_REQUIRE(envelope_build(&rq, &env, &code, &err) == 0);
    SL_CHECK_STR(env.id, "forged-1");
    SL_CHECK_STR(sl_ce_get(&env.ce, "type"), "forged.type");
    SL_CHECK_STR(sl_ce_get(&env.ce, SL_CE_IDEMPOTENCY_KEY), "delivery-1");
    envelope_free(&env);
    /* ... which the signed body must then have. */
    SL_CHECK_INT(build_status(src, binary, "{\"type\":\"push\"}", &code, detail, sizeof(detail)),
                 400);
    SL_CHECK_CONTAINS(detail, "event_id: /id is missing");
    source_destroy(src);

    /* api-key and none: the sender asserts its attributes (binary_cloudevent_keeps_...). */
    src = make_source("orders", "/id", NULL, NULL);
    SL_CHECK(!source_signs_body(src) && source_binary_allowed(src));
    rq = request(src, binary, body);
    SL_REQUIRE(envelope_build(&rq, &env, &code, &err) == 0);
    SL_CHECK_STR(sl_ce_get(&env.ce, SL_CE_IDEMPOTENCY_KEY), "forged-1");
    envelope_free(&env);
    source_destroy(src);
}

SL_TEST(time_format)
{
    char out[ENVELOPE_TIME_LEN + 1];
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 999999999};
    envelope_format_time(&ts, out);
    SL_CHECK_STR(out, "1970-01-01T00:00:00.999Z");
}

SL_TEST_MAIN()
