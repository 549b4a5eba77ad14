/*
 * test_cehttp: ingress/cehttp.[ch], CloudEvents over HTTP. Media types; binary mode (ce-*
 * headers, percent-decoding, required attributes, names, credential headers kept out);
 * structured mode (attributes as given, `data` kept exactly as written but compacted,
 * `data_base64` decoded, the ways an envelope can be wrong, non-JSON data refused with 415).
 */
#include <stdlib.h>
#include <strings.h>

#include "cehttp.h"
#include "sl_test.h"

SL_TEST(media_types)
{
    SL_CHECK_INT(cehttp_media_of("application/json"), CEHTTP_MEDIA_JSON);
    SL_CHECK_INT(cehttp_media_of("Application/JSON; charset=utf-8"), CEHTTP_MEDIA_JSON);
    SL_CHECK_INT(cehttp_media_of("application/vnd.github+json"), CEHTTP_MEDIA_JSON);
    SL_CHECK_INT(cehttp_media_of("application/cloudevents+json; charset=UTF-8"),
                 CEHTTP_MEDIA_STRUCTURED);
    SL_CHECK_INT(cehttp_media_of("application/cloudevents-batch+json"), CEHTTP_MEDIA_BATCH);
    SL_CHECK_INT(cehttp_media_of(NULL), CEHTTP_MEDIA_OTHER);
    SL_CHECK_INT(cehttp_media_of(""), CEHTTP_MEDIA_OTHER);
    SL_CHECK_INT(cehttp_media_of("text/plain"), CEHTTP_MEDIA_OTHER);
    SL_CHECK_INT(cehttp_media_of("application/x-www-form-urlencoded"), CEHTTP_MEDIA_OTHER);
    SL_CHECK_INT(cehttp_media_of("application/+json"), CEHTTP_MEDIA_OTHER);
    SL_CHECK_INT(cehttp_media_of("text/json+xml"), CEHTTP_MEDIA_OTHER);
    SL_CHECK_INT(cehttp_media_of("application/a/b+json"), CEHTTP_MEDIA_OTHER);
}

static bool is_secret_header(void *opaque, const char *name)
{
    return strcasecmp(name, opaque) == 0;
}

SL_TEST(binary_mode_attributes)
{
    struct sl_ce ce;
    struct sl_err err;
    const struct cehttp_header hdrs[] = {
        {"Content-Type", "application/json"},
        {"ce-specversion", "1.0"},
        {"CE-ID", "A234-1234-1234"},
        {"ce-source", "https://example.com/orders"},
        {"ce-type", "com.example.order.created"},
        {"ce-subject", "caf%C3%A9 100%25"},
        {"ce-myextension", "value"},
        {"ce-signature", "must not become an attribute"},
        {"X-Other", "ignored"},
    };
    sl_ce_init(&ce);
    SL_REQUIRE(cehttp_binary(hdrs, sizeof(hdrs) / sizeof(hdrs[0]), is_secret_header, "ce-signature",
                             &ce, &err) == CEHTTP_OK);
    SL_CHECK_STR(sl_ce_get(&ce, "id"), "A234-1234-1234");
    SL_CHECK_STR(sl_ce_get(&ce, "source"), "https://example.com/orders");
    SL_CHECK_STR(sl_ce_get(&ce, "type"), "com.example.order.created");
    SL_CHECK_STR(sl_ce_get(&ce, "subject"), "caf\xc3\xa9 100%");
    SL_CHECK_STR(sl_ce_get(&ce, "myextension"), "value");
    SL_CHECK(sl_ce_get(&ce, "signature") == NULL);
    SL_CHECK_INT(ce.n, 6);
    sl_ce_free(&ce);
}

static int binary(const struct cehttp_header *hdrs, size_t n, struct sl_err *err)
{
    struct sl_ce ce;
    sl_ce_init(&ce);
    int rc = cehttp_binary(hdrs, n, NULL, NULL, &ce, err);
    sl_ce_free(&ce);
    return rc;
}

#define REQUIRED                                                                                   \
    {"ce-specversion", "1.0"}, {"ce-id", "1"}, {"ce-source", "s"},                                 \
    {                                                                                              \
        "ce-type", "t"                                                                             \
    }

SL_TEST(binary_mode_errors)
{
    struct sl_err err;
    const struct cehttp_header no_type[] = {
        {"ce-specversion", "1.0"}, {"ce-id", "1"}, {"ce-source", "s"}};
    SL_CHECK_INT(binary(no_type, 3, &err), CEHTTP_INVALID);
    SL_CHECK_STR(err.msg, "CloudEvents attribute 'type' is missing (header ce-type)");
    const struct cehttp_header v03[] = {
        {"ce-specversion", "0.3"}, {"ce-id", "1"}, {"ce-source", "s"}, {"ce-type", "t"}};
    SL_CHECK_INT(binary(v03, 4, &err), CEHTTP_INVALID);
    SL_CHECK_CONTAINS(err.msg, "specversion must be 1.0");
    const struct cehttp_header bad_name[] = {REQUIRED, {"ce-my_ext", "x"}};
    SL_CHECK_INT(binary(bad_name, 5, &err), CEHTTP_INVALID);
    SL_CHECK_CONTAINS(err.msg, "ce-my_ext");
    const struct cehttp_header long_name[] = {REQUIRED, {"ce-abcdefghijklmnopqrstu", "x"}};
    SL_CHECK_INT(binary(long_name, 5, &err), CEHTTP_INVALID);
    const struct cehttp_header bad_pct[] = {REQUIRED, {"ce-subject", "50%"}};
    SL_CHECK_INT(binary(bad_pct, 5, &err), CEHTTP_INVALID);
    SL_CHECK_CONTAINS(err.msg, "percent-encoding");
    const struct cehttp_header ctl[] = {REQUIRED, {"ce-subject", "a%0Ab"}};
    SL_CHECK_INT(binary(ctl, 5, &err), CEHTTP_INVALID);
    SL_CHECK_CONTAINS(err.msg, "without control characters");
    const struct cehttp_header latin1[] = {REQUIRED, {"ce-subject", "caf%E9"}};
    SL_CHECK_INT(binary(latin1, 5, &err), CEHTTP_INVALID);
    const struct cehttp_header empty_id[] = {
        {"ce-specversion", "1.0"}, {"ce-id", ""}, {"ce-source", "s"}, {"ce-type", "t"}};
    SL_CHECK_INT(binary(empty_id, 4, &err), CEHTTP_INVALID);
}

static int structured(const char *body, struct sl_ce *ce, char **data, size_t *len,
                      struct sl_err *err)
{
    sl_ce_init(ce);
    return cehttp_structured(body, strlen(body), ce, data, len, err);
}

SL_TEST(structured_mode_keeps_attributes_and_data_as_written)
{
    struct sl_ce ce;
    struct sl_err err;
    char *data;
    size_t len;
    const char *body = "{\n  \"specversion\" : \"1.0\",\n  \"type\" : \"com.github.pull_request"
                       ".opened\",\n  \"source\" : \"https://github.com/cloudevents/spec/pull\",\n"
                       "  \"subject\" : \"123\",\n  \"id\" : \"A234-1234-1234\",\n"
                       "  \"time\" : \"2018-04-05T17:31:00Z\",\n  \"comexampleextension1\" : "
                       "\"value\",\n  \"comexampleothervalue\" : 5,\n  \"flag\": true,\n"
                       "  \"dataschema\": null,\n"
                       "  \"data\" : { \"amount\" : 0.1, \"exact\": 1.50, \"s\": \"a \\\" b\\n\","
                       " \"list\" : [ 1 , 2 ] }\n}";
    SL_REQUIRE(structured(body, &ce, &data, &len, &err) == CEHTTP_OK);
    SL_CHECK_STR(sl_ce_get(&ce, "id"), "A234-1234-1234");
    SL_CHECK_STR(sl_ce_get(&ce, "type"), "com.github.pull_request.opened");
    SL_CHECK_STR(sl_ce_get(&ce, "source"), "https://github.com/cloudevents/spec/pull");
    SL_CHECK_STR(sl_ce_get(&ce, "time"), "2018-04-05T17:31:00Z");
    SL_CHECK_STR(sl_ce_get(&ce, "comexampleothervalue"), "5");
    SL_CHECK_STR(sl_ce_get(&ce, "flag"), "true");
    SL_CHECK(sl_ce_get(&ce, "dataschema") == NULL); /* null is absent */
    SL_CHECK_STR(sl_ce_get(&ce, "datacontenttype"), "application/json");
    /* Numbers exactly as written (no 0.10000000000000001), whitespace outside strings gone. */
    const char *want = "{\"amount\":0.1,\"exact\":1.50,\"s\":\"a \\\" b\\n\",\"list\":[1,2]}";
    SL_CHECK_INT(len, strlen(want));
    SL_CHECK(data && memcmp(data, want, len) == 0);
    free(data);
    sl_ce_free(&ce);
}

SL_TEST(structured_mode_data_base64_and_no_data)
{
    struct sl_ce ce;
    struct sl_err err;
    char *data;
    size_t len;
    /* base64 of {"a": 1} */
    const char *b64 = "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\","
                      "\"datacontenttype\":\"application/vnd.x+json\",\"data_base64\":"
                      "\"eyJhIjogMX0=\"}";
    SL_REQUIRE(structured(b64, &ce, &data, &len, &err) == CEHTTP_OK);
    SL_CHECK_INT(len, 8);
    SL_CHECK(data && memcmp(data, "{\"a\": 1}", 8) == 0);
    SL_CHECK_STR(sl_ce_get(&ce, "datacontenttype"), "application/vnd.x+json");
    free(data);
    sl_ce_free(&ce);

    const char *none = "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\"}";
    SL_REQUIRE(structured(none, &ce, &data, &len, &err) == CEHTTP_OK);
    SL_CHECK(data == NULL && len == 0);
    sl_ce_free(&ce);
}

SL_TEST(structured_mode_errors)
{
    static const struct {
        const char *body;
        int rc;
        const char *why;
    } cases[] = {
        {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\"", CEHTTP_INVALID,
         "malformed JSON"},
        {"[1]", CEHTTP_INVALID, "must be a JSON object"},
        {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\"}", CEHTTP_INVALID,
         "'type' is missing (member type)"},
        {"{\"specversion\":\"0.3\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\"}", CEHTTP_INVALID,
         "specversion must be 1.0"},
        {"{\"specversion\":\"1.0\",\"id\":1,\"source\":\"s\",\"type\":\"t\"}", CEHTTP_OK, NULL},
        {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\",\"x\":1.5}",
         CEHTTP_INVALID, "must be a string, an integer or a boolean"},
        {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\",\"x\":{}}",
         CEHTTP_INVALID, "must be a string, an integer or a boolean"},
        {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\",\"Bad\":\"x\"}",
         CEHTTP_INVALID, "lowercase"},
        {"{\"specversion\":\"1.0\",\"id\":\"1\",\"id\":\"2\",\"source\":\"s\",\"type\":\"t\"}",
         CEHTTP_INVALID, "duplicate"},
        {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\",\"data\":1,"
         "\"data_base64\":\"AA==\"}",
         CEHTTP_INVALID, "not both"},
        {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\","
         "\"data_base64\":\"not base64!\"}",
         CEHTTP_INVALID, "not valid padded base64"},
        {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\","
         "\"data_base64\":5}",
         CEHTTP_INVALID, "must be a string"},
        {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\","
         "\"datacontenttype\":\"text/plain\",\"data\":\"hello\"}",
         CEHTTP_UNSUPPORTED, "datacontenttype must be JSON"},
        {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\","
         "\"subject\":\"a\\u0001b\"}",
         CEHTTP_INVALID, "without control characters"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sl_ce ce;
        struct sl_err err = {0};
        char *data = (char *)"unset";
        size_t len = 99;
        int rc = structured(cases[i].body, &ce, &data, &len, &err);
        if (rc != cases[i].rc) {
            sl_test_fail(__FILE__, __LINE__, "case %zu: %d, expected %d (%s)", i, rc, cases[i].rc,
                         err.msg);
        } else if (cases[i].why) {
            SL_CHECK_CONTAINS(err.msg, cases[i].why);
            SL_CHECK(data == NULL && len == 0);
        }
        free(rc == CEHTTP_OK ? data : NULL);
        sl_ce_free(&ce);
    }
}

SL_TEST_MAIN()
