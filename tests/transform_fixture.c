#include "transform_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_test.h"

const char *const tf_example_rules[] = {
    "stripe-charge-to-payment",
    "stripe-refund-to-payment",
    "crm-contact-to-contact",
    "github-push-to-code",
    NULL,
};

json_t *tf_load(const char *rule, const char *kind)
{
    char path[4096];
    json_error_t jerr;
    snprintf(path, sizeof(path), "%s/tests/data/transform/%s.%s.json", sl_test_source_dir(), rule,
             kind);
    json_t *fx = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!fx || !json_is_string(json_object_get(fx, "key")) ||
        !json_is_object(json_object_get(fx, "headers")) || !json_object_get(fx, "data")) {
        sl_test_fail(__FILE__, __LINE__, "%s: %s", path,
                     fx ? "not {key, headers, data}" : jerr.text);
        sl_test_abort_current();
    }
    return fx;
}

const char *tf_key(const json_t *fx)
{
    return json_string_value(json_object_get(fx, "key"));
}

rd_kafka_headers_t *tf_headers(const json_t *fx)
{
    json_t *headers = json_object_get(fx, "headers");
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(json_object_size(headers));
    const char *name;
    json_t *value;
    json_object_foreach(headers, name, value)
    {
        rd_kafka_header_add(hdrs, name, -1, json_string_value(value), -1);
    }
    return hdrs;
}

void tf_ce(const json_t *fx, struct sl_ce *ce)
{
    struct sl_err err;
    rd_kafka_headers_t *hdrs = tf_headers(fx);
    SL_REQUIRE(sl_ce_from_headers(hdrs, ce, &err) == 0);
    rd_kafka_headers_destroy(hdrs);
}

char *tf_payload(const json_t *fx, size_t *len)
{
    char *payload = json_dumps(json_object_get(fx, "data"), JSON_COMPACT | JSON_ENCODE_ANY);
    SL_REQUIRE(payload);
    *len = strlen(payload);
    return payload;
}

void tf_check_record(const json_t *expected, const void *key, size_t key_len,
                     const rd_kafka_headers_t *hdrs, const void *value, size_t len,
                     const char *what)
{
    const char *want_key = tf_key(expected);
    if (!key || key_len != strlen(want_key) || memcmp(key, want_key, key_len) != 0)
        sl_test_fail(__FILE__, __LINE__, "%s: key '%.*s', expected '%s'", what, (int)key_len,
                     key ? (const char *)key : "", want_key);
    json_t *headers = json_object_get(expected, "headers");
    size_t i = 0;
    const char *name;
    json_t *want;
    json_object_foreach(headers, name, want)
    {
        const char *got_name;
        const void *got;
        size_t got_len;
        if (!hdrs || rd_kafka_header_get_all(hdrs, i++, &got_name, &got, &got_len) != 0) {
            sl_test_fail(__FILE__, __LINE__, "%s: header %zu (%s) missing", what, i, name);
            continue;
        }
        const char *w = json_string_value(want);
        if (strcmp(got_name, name) != 0 || got_len != strlen(w) || memcmp(got, w, got_len) != 0)
            sl_test_fail(__FILE__, __LINE__, "%s: header %zu is %s: '%.*s', expected %s: '%s'",
                         what, i, got_name, (int)got_len, (const char *)got, name, w);
    }
    if (hdrs && rd_kafka_header_cnt(hdrs) != json_object_size(headers))
        sl_test_fail(__FILE__, __LINE__, "%s: %zu headers, expected %zu", what,
                     rd_kafka_header_cnt(hdrs), json_object_size(headers));
    size_t want_len;
    char *payload = tf_payload(expected, &want_len);
    if (len != want_len || memcmp(value, payload, len) != 0)
        sl_test_fail(__FILE__, __LINE__, "%s: payload\n  %.*s\nexpected\n  %s", what, (int)len,
                     (const char *)value, payload);
    free(payload);
}
