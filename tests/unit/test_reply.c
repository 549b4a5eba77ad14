/*
 * test_reply: ingress/reply.[ch], the JSON bodies of every answer. Each body parses as JSON with
 * jansson and carries exactly the code and detail given; quotes, backslashes, control
 * characters and bytes that are not UTF-8 are escaped or replaced; a long detail is cut at a
 * character boundary within REPLY_ERROR_MAX.
 */
#include <jansson.h>
#include <stdlib.h>

#include "reply.h"
#include "sl_test.h"

/* Parses an error body and returns its detail (static), checking its shape. */
static const char *detail_of(const char *body, size_t len, const char *want_code)
{
    static char detail[REPLY_ERROR_MAX];
    json_error_t e;
    json_t *j = json_loadb(body, len, 0, &e);
    if (!j) {
        sl_test_fail(__FILE__, __LINE__, "not JSON (%s): %s", e.text, body);
        return "";
    }
    SL_CHECK_INT(json_object_size(j), 2);
    SL_CHECK_STR(json_string_value(json_object_get(j, "error")), want_code);
    snprintf(detail, sizeof(detail), "%s", json_string_value(json_object_get(j, "detail")));
    json_decref(j);
    return detail;
}

SL_TEST(error_bodies)
{
    char body[REPLY_ERROR_MAX];
    size_t len = reply_error_json(body, sizeof(body), REPLY_UNAUTHORIZED, "no signature matched");
    SL_CHECK_STR(body, "{\"error\":\"unauthorized\",\"detail\":\"no signature matched\"}");
    SL_CHECK_INT(len, strlen(body));
    len = reply_error_json(body, sizeof(body), REPLY_INVALID_EVENT,
                           "a \"quoted\" \\ path\nnew\tline \x01");
    SL_CHECK_STR(detail_of(body, len, REPLY_INVALID_EVENT), "a \"quoted\" \\ path\nnew\tline \x01");
    len = reply_error_json(body, sizeof(body), REPLY_NOT_FOUND, NULL);
    SL_CHECK_STR(detail_of(body, len, REPLY_NOT_FOUND), "");
}

SL_TEST(invalid_utf8_is_replaced)
{
    char body[REPLY_ERROR_MAX];
    size_t len = reply_error_json(body, sizeof(body), REPLY_INVALID_EVENT,
                                  "caf\xc3\xa9 \xe9t\xc3 \xed\xa0\x80 \xf0\x9f\x98\x80");
    SL_CHECK_STR(detail_of(body, len, REPLY_INVALID_EVENT),
                 "caf\xc3\xa9 \xef\xbf\xbdt\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
                 "\xf0\x9f\x98\x80");
}

SL_TEST(long_details_are_cut_to_fit)
{
    char body[REPLY_ERROR_MAX], detail[3 * REPLY_ERROR_MAX];
    /* Two-byte characters, and a quote that needs escaping, all the way. */
    for (size_t i = 0; i + 3 < sizeof(detail); i += 3)
        memcpy(detail + i, "\xc3\xa9\"", 3);
    detail[sizeof(detail) - 1] = '\0';
    size_t len = reply_error_json(body, sizeof(body), REPLY_TOO_LARGE, detail);
    SL_CHECK(len < REPLY_ERROR_MAX);
    SL_CHECK_INT(len, strlen(body));
    const char *d = detail_of(body, len, REPLY_TOO_LARGE);
    SL_CHECK(strlen(d) > 600);
    SL_CHECK(strncmp(d, detail, strlen(d)) == 0); /* a prefix, cut between characters */
    /* The smallest buffer the contract allows still gives valid JSON. */
    char small[64];
    len = reply_error_json(small, sizeof(small), REPLY_KAFKA_UNAVAILABLE, detail);
    detail_of(small, len, REPLY_KAFKA_UNAVAILABLE);
}

SL_TEST(accepted_body)
{
    size_t len;
    char *body = reply_accepted_json("01a20ea6-9e44-7cd5-b4a5-ba04f2da0971", &len);
    SL_REQUIRE(body);
    SL_CHECK_STR(body, "{\"id\":\"01a20ea6-9e44-7cd5-b4a5-ba04f2da0971\"}");
    SL_CHECK_INT(len, strlen(body));
    free(body);
    /* A CloudEvents id is the sender's: whatever it holds, the body stays JSON. */
    body = reply_accepted_json("a\"b\\c\x01\xff", &len);
    SL_REQUIRE(body);
    json_error_t e;
    json_t *j = json_loadb(body, len, 0, &e);
    SL_REQUIRE(j);
    SL_CHECK_STR(json_string_value(json_object_get(j, "id")), "a\"b\\c\x01\xef\xbf\xbd");
    json_decref(j);
    free(body);
}

SL_TEST_MAIN()
