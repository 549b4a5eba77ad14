/* Unit tests of the CloudEvents binary-mode header codec. */
#include <string.h>

#include "sl_cloudevent.h"
#include "sl_id.h"
#include "sl_test.h"

static void fill_required(struct sl_ce *ce)
{
    struct sl_err err;
    SL_CHECK_INT(sl_ce_set(ce, "specversion", "1.0", &err), 0);
    SL_CHECK_INT(sl_ce_set(ce, "id", "0193a1b2-0000-7000-8000-000000000001", &err), 0);
    SL_CHECK_INT(sl_ce_set(ce, "source", "stripe", &err), 0);
    SL_CHECK_INT(sl_ce_set(ce, "type", "charge.succeeded", &err), 0);
}

SL_TEST(round_trip)
{
    struct sl_ce in, out;
    struct sl_err err;
    sl_ce_init(&in);
    sl_ce_init(&out);
    fill_required(&in);
    SL_CHECK_INT(sl_ce_set(&in, "time", "2026-11-24T17:00:00Z", &err), 0);
    SL_CHECK_INT(sl_ce_set(&in, "datacontenttype", "application/json", &err), 0);
    SL_CHECK_INT(sl_ce_set(&in, SL_CE_IDEMPOTENCY_KEY, "evt_123", &err), 0);
    SL_CHECK_INT(sl_ce_set(&in, SL_CE_TRACEPARENT,
                           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &err),
                 0);

    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(8);
    SL_REQUIRE(sl_ce_to_headers(&in, hdrs, &err) == 0);
    /* A header that is not CloudEvents' is ignored on the way back. */
    rd_kafka_header_add(hdrs, "x-other", -1, "1", 1);

    const void *v;
    size_t n;
    SL_CHECK_INT(rd_kafka_header_get_last(hdrs, "content-type", &v, &n), 0);
    SL_CHECK(n == strlen("application/json") && memcmp(v, "application/json", n) == 0);
    SL_CHECK_INT(rd_kafka_header_get_last(hdrs, "ce_idempotencykey", &v, &n), 0);

    SL_REQUIRE(sl_ce_from_headers(hdrs, &out, &err) == 0);
    SL_CHECK_INT(out.n, in.n);
    for (size_t i = 0; i < in.n; i++)
        SL_CHECK_STR(sl_ce_get(&out, in.attrs[i].name), in.attrs[i].value);
    SL_CHECK(sl_ce_get(&out, "other") == NULL);
    rd_kafka_headers_destroy(hdrs);
    sl_ce_free(&in);
    sl_ce_free(&out);
}

SL_TEST(missing_attribute_is_named)
{
    static const char *const required[] = {"specversion", "id", "source", "type"};
    for (size_t r = 0; r < 4; r++) {
        struct sl_ce ce, out;
        struct sl_err err;
        sl_ce_init(&ce);
        sl_ce_init(&out);
        rd_kafka_headers_t *hdrs = rd_kafka_headers_new(8);
        for (size_t i = 0; i < 4; i++) {
            if (i == r)
                continue;
            char name[32];
            snprintf(name, sizeof(name), "ce_%s", required[i]);
            rd_kafka_header_add(hdrs, name, -1, i == 0 ? "1.0" : "x", -1);
        }
        SL_CHECK_INT(sl_ce_from_headers(hdrs, &out, &err), -1);
        char expect[128];
        snprintf(expect, sizeof(expect), "missing CloudEvents attribute '%s' (header ce_%s)",
                 required[r], required[r]);
        SL_CHECK_STR(err.msg, expect);
        SL_CHECK_INT(out.n, 0); /* nothing half-filled is left behind */

        /* Encoding refuses the same event. */
        for (size_t i = 0; i < 4; i++)
            if (i != r)
                sl_ce_set(&ce, required[i], i == 0 ? "1.0" : "x", &err);
        rd_kafka_headers_t *enc = rd_kafka_headers_new(8);
        SL_CHECK_INT(sl_ce_to_headers(&ce, enc, &err), -1);
        SL_CHECK_CONTAINS(err.msg, required[r]);
        rd_kafka_headers_destroy(enc);
        rd_kafka_headers_destroy(hdrs);
        sl_ce_free(&ce);
    }
}

SL_TEST(bad_specversion_and_names)
{
    struct sl_ce ce;
    struct sl_err err;
    sl_ce_init(&ce);
    fill_required(&ce);
    SL_CHECK_INT(sl_ce_set(&ce, "specversion", "0.3", &err), 0);
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(8);
    SL_CHECK_INT(sl_ce_to_headers(&ce, hdrs, &err), -1);
    SL_CHECK_STR(err.msg, "unsupported CloudEvents specversion '0.3'");
    SL_CHECK_INT(sl_ce_set(&ce, "Bad-Name", "x", &err), -1);
    SL_CHECK_CONTAINS(err.msg, "must be 1-20 lowercase letters or digits");
    SL_CHECK_INT(sl_ce_set(&ce, "averyveryverylongextension", "x", &err), -1);
    SL_CHECK_INT(sl_ce_set_n(&ce, "x", "a\0b", 3, &err), -1);
    SL_CHECK_CONTAINS(err.msg, "NUL");
    /* Replacing keeps one attribute. */
    size_t n = ce.n;
    SL_CHECK_INT(sl_ce_set(&ce, "type", "other", &err), 0);
    SL_CHECK_INT(ce.n, n);
    SL_CHECK_STR(sl_ce_get(&ce, "type"), "other");
    rd_kafka_headers_destroy(hdrs);
    sl_ce_free(&ce);
}

SL_TEST(uuid_v7_shape_and_order)
{
    char a[SL_UUID_STR_LEN + 1], b[SL_UUID_STR_LEN + 1];
    sl_uuid_v7(a);
    SL_CHECK_INT(strlen(a), 36);
    SL_CHECK(a[14] == '7');
    SL_CHECK(strchr("89ab", a[19]) != NULL);
    for (int i = 0; i < 1000; i++) {
        sl_uuid_v7(b);
        SL_CHECK(strcmp(a, b) != 0);
        /* The 48-bit millisecond prefix never goes backwards. */
        SL_CHECK(memcmp(a, b, 13) <= 0);
        memcpy(a, b, sizeof(a));
    }
}

/* The scoped id of (sluicesource, source, id), or "" when the hash failed. */
static const char *scoped(char *out, const char *sluicesource, const char *source, const char *id)
{
    struct sl_ce ce;
    struct sl_err err;
    sl_ce_init(&ce);
    if (sluicesource)
        SL_CHECK_INT(sl_ce_set(&ce, SL_CE_SOURCE_NAME, sluicesource, &err), 0);
    if (source)
        SL_CHECK_INT(sl_ce_set(&ce, "source", source, &err), 0);
    if (sl_ce_scoped_id(&ce, id, out) != 0)
        out[0] = '\0';
    sl_ce_free(&ce);
    return out;
}

SL_TEST(scoped_id_is_stable_and_separates_sources)
{
    char a[SL_CE_SCOPED_ID_LEN + 1], b[SL_CE_SCOPED_ID_LEN + 1];
    /* The documented construction, computed independently (Python's hashlib): a change here
     * changes every ledger key and Idempotency-Key in the field. */
    SL_CHECK_STR(scoped(a, "apikey", "test", "order-124"), "0906cee0ad6c11deb330bd765e5d36da");
    SL_CHECK_STR(scoped(a, NULL, NULL, "x"), "3e825835d002b0db18e61f4d89262b09");
    /* Equal ids of two sluice sources, or of two CloudEvents sources, never meet. */
    SL_CHECK(strcmp(scoped(a, "apikey", "test", "order-124"),
                    scoped(b, "crm", "test", "order-124")) != 0);
    SL_CHECK(strcmp(scoped(a, "crm", "urn:a", "order-124"),
                    scoped(b, "crm", "urn:b", "order-124")) != 0);
    /* The split between fields is part of the identity. */
    SL_CHECK(strcmp(scoped(a, "a:b", "c", "1"), scoped(b, "a", "b:c", "1")) != 0);
    SL_CHECK(strcmp(scoped(a, "a", "b", "c"), scoped(b, "", "ab", "c")) != 0);
}

SL_TEST_MAIN()
