/* sluice-audit's records without infrastructure: the record -> row mapping of every stage's
 * shape (the loop's, sluice-deliver's attempts, route's decision), what makes a record
 * malformed, the times Postgres is given, and the event_status rows each outcome implies. */
#include <string.h>

#include "record.h"
#include "sl_test.h"

static int parse(struct audit_row *row, const char *json, struct sl_err *err)
{
    return audit_row_parse(row, json, strlen(json), 1700000000123, err);
}

SL_TEST(a_loop_record_maps_to_its_columns)
{
    struct audit_row r;
    struct sl_err err;
    SL_REQUIRE(
        parse(&r,
              "{\"event_id\":\"e1\",\"stage\":\"validate\",\"outcome\":\"dead_lettered\","
              "\"source\":\"stripe\",\"type\":\"charge.succeeded\",\"topic\":\"sluice."
              "ingress\",\"partition\":2,\"offset\":1207,\"at\":\"2026-11-24T17:30:00.123Z\","
              "\"seconds\":0.0025,\"reason\":\"schema validation failed\",\"errors\":[\"/a: "
              "x\"],\"detail\":{\"schema\":\"s.json\"}}",
              &err) == 0);
    SL_CHECK_STR(r.event_id, "e1");
    SL_CHECK_STR(r.stage, "validate");
    SL_CHECK_STR(r.outcome, "dead_lettered");
    SL_CHECK_STR(r.source, "stripe");
    SL_CHECK_STR(r.type, "charge.succeeded");
    SL_CHECK_STR(r.topic, "sluice.ingress");
    SL_CHECK_INT(r.partition, 2);
    SL_CHECK_INT(r.offset, 1207);
    SL_CHECK_STR(r.at, "2026-11-24 17:30:00.123000+00");
    SL_CHECK_STR(r.accepted, "2026-11-24 17:30:00.123000+00"); /* not a UUIDv7: its "at" */
    SL_CHECK(r.has_seconds && r.seconds == 0.0025);
    SL_CHECK_STR(r.reason, "schema validation failed");
    SL_CHECK_STR(r.errors, "[\"/a: x\"]");
    SL_CHECK_STR(r.detail, "{\"schema\":\"s.json\"}");
    SL_CHECK(!r.destination && !r.has_attempt && !r.has_status && !r.has_latency && !r.has_outputs);
    audit_row_free(&r);
}

SL_TEST(a_delivery_attempt_fills_destination_attempt_status_and_latency)
{
    struct audit_row r;
    struct sl_err err;
    SL_REQUIRE(parse(&r,
                     "{\"event_id\":\"e2\",\"stage\":\"deliver\",\"outcome\":\"retry\",\"topic\":"
                     "\"sluice.deliver.crm\",\"partition\":0,\"offset\":5,\"at\":\"2026-11-24T17:"
                     "30:01Z\",\"seconds\":0.25,\"reason\":\"HTTP 503\",\"detail\":{"
                     "\"destination\":\"crm\",\"attempt\":3,\"status\":503}}",
                     &err) == 0);
    SL_CHECK_STR(r.destination, "crm");
    SL_CHECK(r.has_attempt && r.attempt == 3);
    SL_CHECK(r.has_status && r.status == 503);
    SL_CHECK(r.has_latency && r.latency_ms == 250.0);
    audit_row_free(&r);

    /* latency_ms given wins; detail members of another type stay in detail only. */
    SL_REQUIRE(parse(&r,
                     "{\"stage\":\"deliver\",\"outcome\":\"delivered\",\"topic\":\"t\","
                     "\"partition\":-1,\"offset\":-1,\"seconds\":9,\"detail\":{\"destination\":"
                     "7,\"attempt\":\"1\",\"status\":200,\"latency_ms\":12.5}}",
                     &err) == 0);
    SL_CHECK(!r.destination && !r.has_attempt);
    SL_CHECK(r.has_status && r.status == 200);
    SL_CHECK(r.has_latency && r.latency_ms == 12.5);
    /* No "at": the record's Kafka timestamp. */
    SL_CHECK_STR(r.at, "2023-11-14 22:13:20.123000+00");
    SL_CHECK_STR(r.accepted, ""); /* no event id */
    audit_row_free(&r);
}

SL_TEST(malformed_records_are_refused_with_a_reason)
{
    static const struct {
        const char *json, *reason;
    } cases[] = {
        {"not json", "not JSON"},
        {"[1,2]", "not a JSON object"},
        {"{\"outcome\":\"passed\",\"topic\":\"t\",\"partition\":0,\"offset\":1}", "\"stage\""},
        {"{\"stage\":\"\",\"outcome\":\"passed\",\"topic\":\"t\",\"partition\":0,\"offset\":1}",
         "\"stage\" must not be empty"},
        {"{\"stage\":\"v\",\"topic\":\"t\",\"partition\":0,\"offset\":1}", "\"outcome\""},
        {"{\"stage\":\"v\",\"outcome\":\"passed\",\"partition\":0,\"offset\":1}", "\"topic\""},
        {"{\"stage\":\"v\",\"outcome\":\"passed\",\"topic\":\"t\",\"offset\":1}", "\"partition\""},
        {"{\"stage\":\"v\",\"outcome\":\"passed\",\"topic\":\"t\",\"partition\":2147483648,"
         "\"offset\":1}",
         "\"partition\""},
        {"{\"stage\":\"v\",\"outcome\":\"passed\",\"topic\":\"t\",\"partition\":0}", "\"offset\""},
        {"{\"stage\":\"v\",\"outcome\":\"passed\",\"topic\":\"t\",\"partition\":0,\"offset\":1,"
         "\"at\":\"yesterday\"}",
         "\"at\""},
        {"{\"stage\":\"v\",\"outcome\":\"passed\",\"topic\":\"t\",\"partition\":0,\"offset\":1,"
         "\"event_id\":5}",
         "\"event_id\" must be a string"},
        {"{\"stage\":\"v\",\"outcome\":\"passed\",\"topic\":\"t\",\"partition\":0,\"offset\":1,"
         "\"seconds\":\"1\"}",
         "\"seconds\""},
        {"{\"stage\":\"v\",\"outcome\":\"passed\",\"topic\":\"t\",\"partition\":0,\"offset\":1,"
         "\"outputs\":-1}",
         "\"outputs\""},
        {"{\"stage\":\"v\",\"outcome\":\"passed\",\"topic\":\"t\",\"partition\":0,\"offset\":1,"
         "\"errors\":\"x\"}",
         "\"errors\" must be an array"},
        {"{\"stage\":\"v\",\"outcome\":\"passed\",\"topic\":\"t\",\"partition\":0,\"offset\":1,"
         "\"detail\":[]}",
         "\"detail\" must be an object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct audit_row r;
        struct sl_err err;
        SL_CHECK(parse(&r, cases[i].json, &err) == -1);
        SL_CHECK_INT(err.code, SL_ERR_INVALID);
        SL_CHECK_CONTAINS(err.msg, cases[i].reason);
    }
    /* No "at" and no timestamp either. */
    struct audit_row r;
    struct sl_err err;
    const char *no_at = "{\"stage\":\"v\",\"outcome\":\"passed\",\"topic\":\"t\",\"partition\":0,"
                        "\"offset\":1}";
    SL_CHECK(audit_row_parse(&r, no_at, strlen(no_at), -1, &err) == -1);
    SL_CHECK_CONTAINS(err.msg, "\"at\" is missing");
    /* Over the size limit. */
    char *big = malloc(AUDIT_RECORD_MAX + 2);
    SL_REQUIRE(big);
    memset(big, ' ', AUDIT_RECORD_MAX + 1);
    big[AUDIT_RECORD_MAX + 1] = '\0';
    SL_CHECK(audit_row_parse(&r, big, AUDIT_RECORD_MAX + 1, 0, &err) == -1);
    SL_CHECK_CONTAINS(err.msg, "over the limit");
    free(big);
}

SL_TEST(times_are_rfc3339_and_written_in_utc)
{
    static const struct {
        const char *in, *out;
    } ok[] = {
        {"2026-11-24T17:30:00Z", "2026-11-24 17:30:00.000000+00"},
        {"2026-11-24t17:30:00.5z", "2026-11-24 17:30:00.500000+00"},
        {"2026-11-24 17:30:00.123456789Z", "2026-11-24 17:30:00.123456+00"},
        {"2026-11-24T23:30:00-01:30", "2026-11-25 01:00:00.000000+00"},
        {"2024-02-29T00:15:00+02:00", "2024-02-28 22:15:00.000000+00"},
        {"1970-01-01T00:00:00Z", "1970-01-01 00:00:00.000000+00"},
        {"9999-12-31T23:59:59.999999Z", "9999-12-31 23:59:59.999999+00"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t us = -1;
        char buf[AUDIT_TIME_MAX];
        SL_CHECK_INT(audit_time_parse(ok[i].in, &us), 0);
        audit_time_format(us, buf, sizeof(buf));
        SL_CHECK_STR(buf, ok[i].out);
    }
    static const char *const bad[] = {
        "",
        "2026-11-24",
        "2026-11-24T17:30:00",   /* no zone */
        "2026-11-24T17:30:00.Z", /* empty fraction */
        "2026-11-24T17:30:00.1234567891Z",
        "2026-02-29T00:00:00Z", /* not a leap year */
        "2026-13-01T00:00:00Z",
        "2026-11-24T24:00:00Z",
        "2026-11-24T17:30:00+0100",
        "2026-11-24T17:30:00Z trailing",
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:30:00+01:00", /* before 1970 in UTC */
        "9999-12-31T23:00:00-02:00", /* after 9999 in UTC */
        "+2026-11-24T17:30:00Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t us;
        if (audit_time_parse(bad[i], &us) == 0)
            sl_test_fail(__FILE__, __LINE__, "accepted \"%s\"", bad[i]);
    }
}

SL_TEST(the_acceptance_time_is_the_uuid_v7_time_when_it_is_recent)
{
    struct audit_row r;
    struct sl_err err;
    /* An id made at 10:00; the record is an hour later. */
    char json[512];
    int64_t us = 0;
    SL_REQUIRE(audit_time_parse("2025-11-28T10:00:00Z", &us) == 0);
    long long ms = us / 1000;
    char id[40];
    snprintf(id, sizeof(id), "%08llx-%04llx-7abc-8def-0123456789ab", (ms >> 16) & 0xffffffffLL,
             ms & 0xffffLL);
    snprintf(json, sizeof(json),
             "{\"event_id\":\"%s\",\"stage\":\"route\",\"outcome\":\"passed\",\"topic\":\"t\","
             "\"partition\":0,\"offset\":1,\"at\":\"2025-11-28T11:00:00Z\"}",
             id);
    SL_REQUIRE(parse(&r, json, &err) == 0);
    SL_CHECK_STR(r.accepted, "2025-11-28 10:00:00.000000+00");
    audit_row_free(&r);
    /* Older than the lookback (a replay much later): the record's own time. */
    snprintf(json, sizeof(json),
             "{\"event_id\":\"%s\",\"stage\":\"route\",\"outcome\":\"passed\",\"topic\":\"t\","
             "\"partition\":0,\"offset\":1,\"at\":\"2026-03-01T00:00:00Z\"}",
             id);
    SL_REQUIRE(parse(&r, json, &err) == 0);
    SL_CHECK_STR(r.accepted, "2026-03-01 00:00:00.000000+00");
    audit_row_free(&r);
    /* Later than the record (another host's clock): the record's own time. */
    snprintf(json, sizeof(json),
             "{\"event_id\":\"%s\",\"stage\":\"route\",\"outcome\":\"passed\",\"topic\":\"t\","
             "\"partition\":0,\"offset\":1,\"at\":\"2025-11-28T09:59:59Z\"}",
             id);
    SL_REQUIRE(parse(&r, json, &err) == 0);
    SL_CHECK_STR(r.accepted, "2025-11-28 09:59:59.000000+00");
    audit_row_free(&r);
}

/* The event_status rows of one record, as "dest=state" joined by commas. */
static void statuses(const char *json, char *out, size_t size)
{
    struct audit_row r;
    struct sl_err err;
    struct audit_status st[AUDIT_STATUS_MAX];
    out[0] = '\0';
    if (parse(&r, json, &err) != 0) {
        sl_test_fail(__FILE__, __LINE__, "%s: %s", json, err.msg);
        return;
    }
    size_t n = audit_row_status(&r, st);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(out);
        snprintf(out + len, size - len, "%s%s=%s", i ? "," : "", st[i].destination, st[i].state);
    }
    audit_row_free(&r);
}

SL_TEST(each_outcome_implies_its_event_status_rows)
{
    static const struct {
        const char *outcome, *detail, *expect;
    } cases[] = {
        {"filtered", "{}", "=filtered"},
        {"dead_lettered", "{}", "=dead_lettered"},
        {"duplicate", "{}", "=duplicate"},
        {"passed", "{}", ""},
        {"passed", "{\"destinations\":[\"crm\",\"\",7,\"warehouse\"]}",
         "crm=pending,warehouse=pending"},
        {"retry", "{\"destination\":\"crm\",\"attempt\":2}", "crm=pending"},
        {"retry", "{}", ""},
        {"delivered", "{\"destination\":\"crm\",\"attempt\":1,\"status\":200}", "crm=delivered"},
        {"delivered", "{}", ""},
        {"dead_lettered", "{\"destination\":\"crm\",\"attempt\":10}", "crm=dead_lettered"},
        {"duplicate", "{\"destination\":\"crm\",\"attempt\":0}", "crm=delivered"},
        {"something_new", "{\"destination\":\"crm\"}", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char json[512], got[256];
        snprintf(json, sizeof(json),
                 "{\"event_id\":\"e\",\"stage\":\"s\",\"outcome\":\"%s\",\"topic\":\"t\","
                 "\"partition\":0,\"offset\":1,\"detail\":%s}",
                 cases[i].outcome, cases[i].detail);
        statuses(json, got, sizeof(got));
        if (strcmp(got, cases[i].expect) != 0)
            sl_test_fail(__FILE__, __LINE__, "%s %s: \"%s\", expected \"%s\"", cases[i].outcome,
                         cases[i].detail, got, cases[i].expect);
    }
    /* Without an event id, nothing. */
    char got[64];
    statuses("{\"stage\":\"s\",\"outcome\":\"filtered\",\"topic\":\"t\",\"partition\":0,"
             "\"offset\":1}",
             got, sizeof(got));
    SL_CHECK_STR(got, "");
    /* The route of a single-route decision. */
    struct audit_row r;
    struct sl_err err;
    SL_REQUIRE(parse(&r,
                     "{\"event_id\":\"e\",\"stage\":\"route\",\"outcome\":\"passed\",\"topic\":"
                     "\"t\",\"partition\":0,\"offset\":1,\"detail\":{\"destinations\":[\"crm\"],"
                     "\"routes\":[\"payments\"]}}",
                     &err) == 0);
    SL_CHECK_STR(r.route, "payments");
    audit_row_free(&r);
}

/* A record with `members` after the required ones. */
static int parse_with(struct audit_row *r, const char *members, struct sl_err *err)
{
    char json[8192];
    snprintf(json, sizeof(json),
             "{\"stage\":\"v\",\"outcome\":\"passed\",\"topic\":\"t\",\"partition\":0,"
             "\"offset\":1%s}",
             members);
    return parse(r, json, err);
}

SL_TEST(json_is_checked_as_strictly_as_jsonb_takes_it)
{
    static const char *const bad[] = {
        ",}",                         /* trailing comma */
        ",\"a\":\"x}",                /* unterminated string */
        ",\"a\":\"\\x\"}",            /* bad escape */
        ",\"a\":\"\\u0000\"}",        /* jsonb refuses NUL */
        ",\"a\":\"\\ud800\"}",        /* lone high surrogate */
        ",\"a\":\"\\udc00\"}",        /* lone low surrogate */
        ",\"a\":\"\\ud800\\u0041\"}", /* high surrogate, then not a low one */
        ",\"a\":\"\\u12G4\"}",        /* bad hex */
        ",\"a\":\"\xff\"}",           /* not UTF-8 */
        ",\"a\":\"\xc0\xaf\"}",       /* overlong */
        ",\"a\":\"\xed\xa0\x80\"}",   /* an encoded surrogate */
        ",\"a\":\"raw\nnewline\"}",   /* control character */
        ",\"a\":01}",
        ",\"a\":1.}",
        ",\"a\":.5}",
        ",\"a\":1e}",
        ",\"a\":+1}",
        ",\"a\":-}",
        ",\"a\":1e1001}", /* jsonb's numeric would overflow */
        ",\"a\":tru}",
        ",\"a\":nul}",
        ",\"a\" 1}",
        ",'a':1}",
        ",\"a\":[1,]}",
        ",\"a\":{\"b\"}}",
        "} x", /* after the object */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct audit_row r;
        struct sl_err err;
        if (parse_with(&r, bad[i], &err) == 0) {
            sl_test_fail(__FILE__, __LINE__, "accepted %s", bad[i]);
            audit_row_free(&r);
            continue;
        }
        SL_CHECK_CONTAINS(err.msg, "not JSON");
    }
    /* Nesting past the bound. */
    char deep[512] = ",\"a\":";
    for (int i = 0; i < AUDIT_DEPTH_MAX + 1; i++)
        strcat(deep, "[");
    for (int i = 0; i < AUDIT_DEPTH_MAX + 1; i++)
        strcat(deep, "]");
    strcat(deep, "}");
    struct audit_row r;
    struct sl_err err;
    SL_CHECK(parse_with(&r, deep, &err) == -1);
    SL_CHECK_CONTAINS(err.msg, "nested too deeply");
    SL_CHECK(parse(&r, "{\"stage\":\"v\"", &err) == -1);
    SL_CHECK_CONTAINS(err.msg, "not JSON");
    /* Within the bounds, everything JSON allows. */
    SL_REQUIRE(parse_with(&r,
                          " , \"a\" : [ 1 , -0.5e+3 , 1E-2 , true , false , null , { } , [ ] ] ,"
                          "\"b\":{\"c\":[[[\"\\/\"]]]},\"n\":123456789012345678901234567890 ",
                          &err) == 0);
    audit_row_free(&r);
}

SL_TEST(strings_are_decoded_and_json_members_kept_as_written)
{
    struct audit_row r;
    struct sl_err err;
    SL_REQUIRE(
        parse_with(&r,
                   ",\"reason\":\"line\\nbreak \\u00e9 \\ud83d\\ude00 \\\"q\\\" \\\\ \\/ "
                   "\\t\",\"errors\":[ \"a\" , \"b\\u00e9\" ],\"detail\":{ \"destination\" "
                   ": \"crm\", \"more\": {\"deep\": [[[]]]}, \"destinations\": [\"a\", \"\", "
                   "{\"x\": [1]}, \"b\"], \"routes\": [\"r1\"], \"attempt\": 2, \"status\": "
                   "500, \"latency_ms\": 1.5e2 },\"stage\":\"again\"",
                   &err) == 0);
    SL_CHECK_STR(r.reason, "line\nbreak \xc3\xa9 \xf0\x9f\x98\x80 \"q\" \\ / \t");
    SL_CHECK_STR(r.errors, "[ \"a\" , \"b\\u00e9\" ]");
    SL_CHECK_CONTAINS(r.detail, "\"more\": {\"deep\": [[[]]]}");
    SL_CHECK_STR(r.stage, "again"); /* the last of a member given twice, as in jsonb */
    SL_CHECK_STR(r.destination, "crm");
    SL_CHECK_STR(r.route, "r1");
    SL_CHECK(r.has_attempt && r.attempt == 2 && r.has_status && r.status == 500);
    SL_CHECK(r.has_latency && r.latency_ms == 150.0);
    struct audit_status st[AUDIT_STATUS_MAX];
    audit_row_free(&r);
    SL_REQUIRE(parse(&r,
                     "{\"event_id\":\"e\",\"stage\":\"route\",\"outcome\":\"passed\",\"topic\":"
                     "\"t\",\"partition\":0,\"offset\":1,\"detail\":{\"destinations\":[\"a\",\"\","
                     "7,\"b\"],\"routes\":[\"r1\",\"r2\"]}}",
                     &err) == 0);
    SL_CHECK_INT(audit_row_status(&r, st), 2);
    SL_CHECK_STR(st[0].destination, "a");
    SL_CHECK_STR(st[1].destination, "b");
    SL_CHECK(r.route == NULL); /* two routes name none */
    audit_row_free(&r);
}

SL_TEST_MAIN()
