/*
 * sl_jsonschema beyond the official suite: error reports (instance paths, keyword locations,
 * messages, several errors, the max_errors bound), schemas rejected at load, files that refer
 * to each other, URI mappings, formats on and off, depth bounds, rollback after a failed load,
 * threads, a performance sanity check, and `sluicectl schema check`.
 */
#include "sl_jsonschema.h"
#include "sl_test.h"
#include "../../cli/sluicectl_schema.h"

#include <limits.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#define CAPTURE_MAX 16
#define CAPTURE_LEN 256

struct captured {
    size_t n;
    char ip[CAPTURE_MAX][CAPTURE_LEN];
    char kl[CAPTURE_MAX][CAPTURE_LEN];
    char msg[CAPTURE_MAX][CAPTURE_LEN];
};

static void capture(void *opaque, const char *instance_path, const char *keyword_location,
                    const char *message)
{
    struct captured *cap = opaque;
    if (cap->n < CAPTURE_MAX) {
        snprintf(cap->ip[cap->n], CAPTURE_LEN, "%s", instance_path);
        snprintf(cap->kl[cap->n], CAPTURE_LEN, "%s", keyword_location);
        snprintf(cap->msg[cap->n], CAPTURE_LEN, "%s", message);
    }
    cap->n++;
}

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *json = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!json)
        sl_test_fail(__FILE__, __LINE__, "test JSON does not parse: %s: %s", jerr.text, text);
    return json;
}

static const sl_schema_t *add_text(sl_schema_set_t *set, const char *text, struct sl_err *err)
{
    json_t *json = parse(text);
    const sl_schema_t *schema = json ? sl_schema_set_add(set, json, NULL, err) : NULL;
    json_decref(json);
    return schema;
}

/* Validates instance text, collecting up to max errors into *cap (zeroed first). */
static int check(const sl_schema_t *schema, const char *text, struct captured *cap, size_t max)
{
    json_t *instance = parse(text);
    memset(cap, 0, sizeof(*cap));
    int rc = instance ? sl_schema_validate(schema, instance, capture, cap, max) : -1;
    json_decref(instance);
    return rc;
}

static void fixture_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/tests/unit/fixtures/jsonschema/%s", sl_test_source_dir(), name);
}

SL_TEST(destroy_null_is_a_no_op)
{
    sl_schema_set_destroy(NULL);
}

SL_TEST(error_gives_instance_path_keyword_location_and_message)
{
    struct sl_err err;
    struct captured cap;
    sl_schema_set_t *set = sl_schema_set_new();
    const sl_schema_t *s =
        add_text(set,
                 "{\"properties\":{\"data\":{\"properties\":{\"amount\":{\"type\":\"integer\","
                 "\"minimum\":0}}}}}",
                 &err);
    SL_REQUIRE(s != NULL);
    SL_CHECK_INT(check(s, "{\"data\":{\"amount\":-5}}", &cap, 10), 0);
    SL_REQUIRE(cap.n == 1);
    SL_CHECK_STR(cap.ip[0], "/data/amount");
    SL_CHECK_STR(cap.kl[0], "/properties/data/properties/amount/minimum");
    SL_CHECK_STR(cap.msg[0], "-5 is less than 0");
    SL_CHECK_INT(check(s, "{\"data\":{\"amount\":5}}", &cap, 10), 1);
    SL_CHECK_INT(cap.n, 0);
    SL_CHECK_INT(check(s, "{\"data\":{\"amount\":\"5\"}}", &cap, 10), 0);
    SL_CHECK_STR(cap.kl[0], "/properties/data/properties/amount/type");
    SL_CHECK_STR(cap.msg[0], "expected integer, got string");
    sl_schema_set_destroy(set);
}

SL_TEST(every_error_is_reported_up_to_max_errors)
{
    struct sl_err err;
    struct captured cap;
    sl_schema_set_t *set = sl_schema_set_new();
    const sl_schema_t *s = add_text(set,
                                    "{\"type\":\"object\",\"required\":[\"id\",\"type\"],"
                                    "\"properties\":{\"n\":{\"maximum\":3},\"tags\":{\"items\":"
                                    "{\"type\":\"string\"}}},\"additionalProperties\":false}",
                                    &err);
    SL_REQUIRE(s != NULL);
    const char *bad = "{\"n\":7,\"tags\":[\"a\",1,\"b\",2],\"extra\":true}";
    SL_CHECK_INT(check(s, bad, &cap, 100), 0);
    SL_REQUIRE(cap.n == 6);
    SL_CHECK_STR(cap.msg[0], "missing required property \"id\"");
    SL_CHECK_STR(cap.kl[0], "/required");
    SL_CHECK_STR(cap.ip[0], "");
    SL_CHECK_STR(cap.msg[1], "missing required property \"type\"");
    SL_CHECK_STR(cap.ip[2], "/n");
    SL_CHECK_STR(cap.msg[2], "7 is greater than 3");
    SL_CHECK_STR(cap.ip[3], "/tags/1");
    SL_CHECK_STR(cap.kl[3], "/properties/tags/items/type");
    SL_CHECK_STR(cap.ip[4], "/tags/3");
    SL_CHECK_STR(cap.kl[5], "/additionalProperties");
    SL_CHECK_STR(cap.msg[5], "property \"extra\" is not allowed");
    /* the bound holds, and the answer does not change */
    SL_CHECK_INT(check(s, bad, &cap, 2), 0);
    SL_CHECK_INT(cap.n, 2);
    SL_CHECK_INT(check(s, bad, &cap, 0), 0);
    SL_CHECK_INT(cap.n, 0);
    json_t *instance = parse(bad);
    SL_CHECK_INT(sl_schema_validate(s, instance, NULL, NULL, 100), 0);
    json_decref(instance);
    sl_schema_set_destroy(set);
}

SL_TEST(paths_escape_pointer_characters_and_show_refs)
{
    struct sl_err err;
    struct captured cap;
    sl_schema_set_t *set = sl_schema_set_new();
    const sl_schema_t *s = add_text(set,
                                    "{\"$defs\":{\"pos\":{\"minimum\":1}},"
                                    "\"properties\":{\"a/b\":{\"$ref\":\"#/$defs/pos\"},"
                                    "\"m~n\":{\"type\":\"array\",\"prefixItems\":[true,{\"const\""
                                    ":\"x\"}]}}}",
                                    &err);
    SL_REQUIRE(s != NULL);
    SL_CHECK_INT(check(s, "{\"a/b\":0,\"m~n\":[0,\"y\"]}", &cap, 10), 0);
    SL_REQUIRE(cap.n == 2);
    SL_CHECK_STR(cap.ip[0], "/a~1b");
    SL_CHECK_STR(cap.kl[0], "/properties/a~1b/$ref/minimum");
    SL_CHECK_STR(cap.ip[1], "/m~0n/1");
    SL_CHECK_STR(cap.kl[1], "/properties/m~0n/prefixItems/1/const");
    SL_CHECK_STR(cap.msg[1], "\"y\" is not the required value \"x\"");
    sl_schema_set_destroy(set);
}

SL_TEST(messages_of_common_keywords)
{
    static const struct {
        const char *schema, *instance, *keyword_location, *message;
    } cases[] = {
        {"{\"enum\":[\"eur\",\"usd\"]}", "\"gbp\"", "/enum",
         "\"gbp\" is not one of \"eur\", \"usd\""},
        {"{\"maxLength\":3}", "\"h\\u00e9llo\"", "/maxLength",
         "\"h\xc3\xa9llo\" is longer than 3 characters"},
        {"{\"pattern\":\"^cus_\"}", "\"ch_1\"", "/pattern",
         "\"ch_1\" does not match the pattern \"^cus_\""},
        {"{\"multipleOf\":0.01}", "19.999", "/multipleOf", "19.999 is not a multiple of 0.01"},
        {"{\"exclusiveMinimum\":0}", "0", "/exclusiveMinimum", "0 is not greater than 0"},
        {"{\"minItems\":2}", "[1]", "/minItems", "array has 1 items, fewer than 2"},
        {"{\"uniqueItems\":true}", "[1,2,1.0]", "/uniqueItems", "items 0 and 2 are equal"},
        {"{\"contains\":{\"type\":\"string\"}}", "[1]", "/contains",
         "no item matches the contains schema"},
        {"{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"null\"}]}", "1", "/anyOf",
         "value matches none of the 2 alternatives"},
        {"{\"oneOf\":[{\"minimum\":0},{\"maximum\":10}]}", "5", "/oneOf",
         "value matches alternatives 0 and 1, but exactly one must match"},
        {"{\"not\":{\"type\":\"null\"}}", "null", "/not", "value must not match the schema"},
        {"{\"dependentRequired\":{\"card\":[\"cvc\"]}}", "{\"card\":1}", "/dependentRequired/card",
         "property \"card\" requires property \"cvc\""},
        {"{\"if\":{\"required\":[\"a\"]},\"then\":{\"required\":[\"b\"]}}", "{\"a\":1}",
         "/then/required", "missing required property \"b\""},
        {"{\"unevaluatedProperties\":false,\"allOf\":[{\"properties\":{\"a\":true}}]}",
         "{\"a\":1,\"b\":2}", "/unevaluatedProperties", "property \"b\" is not allowed"},
        {"false", "1", "", "no value is allowed here (false schema)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sl_err err;
        struct captured cap;
        sl_schema_set_t *set = sl_schema_set_new();
        const sl_schema_t *s = add_text(set, cases[i].schema, &err);
        SL_REQUIRE(s != NULL);
        SL_CHECK_INT(check(s, cases[i].instance, &cap, 10), 0);
        SL_CHECK_INT(cap.n, 1);
        SL_CHECK_STR(cap.kl[0], cases[i].keyword_location);
        SL_CHECK_STR(cap.msg[0], cases[i].message);
        sl_schema_set_destroy(set);
    }
}

SL_TEST(numbers_and_strings_follow_the_spec)
{
    struct sl_err err;
    struct captured cap;
    sl_schema_set_t *set = sl_schema_set_new();
    const sl_schema_t *money = add_text(set, "{\"multipleOf\":0.01}", &err);
    const sl_schema_t *len = add_text(set, "{\"minLength\":5,\"maxLength\":5}", &err);
    const sl_schema_t *integer = add_text(set, "{\"type\":\"integer\"}", &err);
    SL_REQUIRE(money && len && integer);
    SL_CHECK_INT(check(money, "19.99", &cap, 1), 1); /* 1998.9999999999998 in binary */
    SL_CHECK_INT(check(money, "1999", &cap, 1), 1);
    SL_CHECK_INT(check(len, "\"h\\u00e9llo\"", &cap, 1), 1);        /* 5 code points, 6 bytes */
    SL_CHECK_INT(check(len, "\"\\ud83d\\ude00abcd\"", &cap, 1), 1); /* emoji is one */
    SL_CHECK_INT(check(integer, "1.0", &cap, 1), 1);
    SL_CHECK_INT(check(integer, "1.5", &cap, 1), 0);
    sl_schema_set_destroy(set);
}

SL_TEST(unique_items_on_long_arrays_is_not_quadratic)
{
    struct sl_err err;
    struct captured cap = {0};
    sl_schema_set_t *set = sl_schema_set_new();
    const sl_schema_t *s = add_text(set, "{\"uniqueItems\":true}", &err);
    SL_REQUIRE(s != NULL);
    json_t *array = json_array();
    for (int i = 0; i < 100000; i++)
        json_array_append_new(array, i % 2 ? json_integer(i) : json_pack("{si}", "n", i));
    SL_CHECK_INT(sl_schema_validate(s, array, capture, &cap, 5), 1);
    json_array_append_new(array, json_real(77777.0)); /* equals the integer 77777 */
    SL_CHECK_INT(sl_schema_validate(s, array, capture, &cap, 5), 0);
    SL_CHECK_STR(cap.msg[0], "items 77777 and 100000 are equal");
    json_decref(array);
    sl_schema_set_destroy(set);
}

SL_TEST(invalid_schemas_are_rejected_at_load)
{
    static const struct {
        const char *schema, *expect;
    } cases[] = {
        {"{\"pattern\":\"([a-z\"}", "#/pattern: invalid regular expression"},
        {"{\"patternProperties\":{\"(\":{}}}", "#/patternProperties: invalid regular expression"},
        {"{\"$ref\":\"#/$defs/missing\"}", "#/$ref: cannot resolve \"#/$defs/missing\""},
        {"{\"$ref\":\"other.json\"}", "cannot resolve \"other.json\""},
        {"{\"$ref\":\"#nowhere\"}", "has no anchor \"nowhere\""},
        {"{\"minimum\":\"5\"}", "#/minimum: must be a number"},
        {"{\"properties\":{\"a\":{\"maxLength\":-1}}}", "#/properties/a/maxLength: must be a "
                                                        "non-negative integer"},
        {"{\"type\":\"strin\"}", "#/type: must be a type name"},
        {"{\"required\":\"id\"}", "#/required: must be an array of strings"},
        {"{\"required\":[\"a\",\"a\"]}", "\"a\" is listed twice"},
        {"{\"properties\":[]}", "#/properties: must be an object of schemas"},
        {"{\"items\":5}", "#/items: must be a schema"},
        {"{\"allOf\":[]}", "#/allOf: must be a non-empty array of schemas"},
        {"{\"multipleOf\":0}", "#/multipleOf: must be greater than 0"},
        {"{\"$schema\":\"http://json-schema.org/draft-04/schema#\"}", "is not supported"},
        {"{\"$defs\":{\"a\":{\"$anchor\":\"1bad\"}}}", "not a valid anchor name"},
        {"{\"$id\":\"https://x.test/a#frag\"}", "must not contain a fragment"},
        {"{\"format\":7}", "#/format: must be a string"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sl_err err = {0};
        sl_schema_set_t *set = sl_schema_set_new();
        SL_CHECK(add_text(set, cases[i].schema, &err) == NULL);
        SL_CHECK(err.code != SL_OK);
        SL_CHECK_CONTAINS(err.msg, cases[i].expect);
        sl_schema_set_destroy(set);
    }
}

SL_TEST(errors_are_optional_and_one_line)
{
    struct captured cap;
    sl_schema_set_t *set = sl_schema_set_new();
    SL_CHECK(add_text(set, "{\"minimum\":\"5\"}", NULL) == NULL);
    const sl_schema_t *s = add_text(set, "{\"additionalProperties\":false}", NULL);
    SL_REQUIRE(s != NULL);
    SL_CHECK_INT(check(s, "{\"a\\nb\":1}", &cap, 5), 0);
    SL_CHECK_STR(cap.msg[0], "property \"a?b\" is not allowed");
    sl_schema_set_destroy(set);
}

SL_TEST(a_failed_add_leaves_the_set_as_it_was)
{
    struct sl_err err;
    struct captured cap;
    sl_schema_set_t *set = sl_schema_set_new();
    const sl_schema_t *first = add_text(set, "{\"$id\":\"https://x.test/a\",\"minimum\":1}", &err);
    SL_REQUIRE(first != NULL);
    /* refers to the first schema, then fails: its compiled parts must not stay behind */
    SL_CHECK(add_text(set,
                      "{\"$id\":\"https://x.test/b\",\"$defs\":{\"bad\":{\"pattern\":\"(\"}},"
                      "\"allOf\":[{\"$ref\":\"a\"},{\"$ref\":\"#/$defs/bad\"}]}",
                      &err) == NULL);
    const sl_schema_t *again =
        add_text(set, "{\"$id\":\"https://x.test/b\",\"$ref\":\"a\",\"maximum\":5}", &err);
    SL_REQUIRE(again != NULL);
    SL_CHECK_INT(check(again, "3", &cap, 5), 1);
    SL_CHECK_INT(check(again, "0", &cap, 5), 0);
    SL_CHECK_INT(check(again, "6", &cap, 5), 0);
    SL_CHECK_INT(check(first, "0", &cap, 5), 0);
    /* the same $id twice is an error of its own */
    SL_CHECK(add_text(set, "{\"$id\":\"https://x.test/a\"}", &err) == NULL);
    SL_CHECK_CONTAINS(err.msg, "already names another schema");
    sl_schema_set_destroy(set);
}

SL_TEST(files_refer_to_each_other_relative_to_their_own_uri)
{
    char path[PATH_MAX];
    struct sl_err err;
    struct captured cap;
    sl_schema_set_t *set = sl_schema_set_new();
    fixture_path(path, sizeof(path), "order.json");
    const sl_schema_t *order = sl_schema_set_load_file(set, path, &err);
    if (!order)
        sl_test_fail(__FILE__, __LINE__, "%s", err.msg);
    SL_REQUIRE(order != NULL);
    SL_CHECK(sl_schema_set_load_file(set, path, &err) == order);
    SL_CHECK_INT(check(order,
                       "{\"customer\":{\"id\":\"cus_1\",\"address\":{\"country\":\"FR\"},"
                       "\"credit\":0},\"total\":10,\"lines\":[1,2]}",
                       &cap, 10),
                 1);
    SL_CHECK_INT(check(order,
                       "{\"customer\":{\"id\":\"x\",\"address\":{\"country\":\"fr\"},"
                       "\"credit\":-1},\"total\":-1,\"lines\":[1,-2]}",
                       &cap, 10),
                 0);
    /* in the instance's member order */
    SL_REQUIRE(cap.n == 5);
    SL_CHECK_STR(cap.ip[0], "/customer/id");
    SL_CHECK_STR(cap.kl[0], "/properties/customer/$ref/properties/id/pattern");
    SL_CHECK_STR(cap.ip[1], "/customer/address/country");
    SL_CHECK_STR(cap.kl[1], "/properties/customer/$ref/properties/address/$ref/properties/"
                            "country/pattern");
    SL_CHECK_STR(cap.ip[2], "/customer/credit");
    SL_CHECK_STR(cap.kl[2], "/properties/customer/$ref/properties/credit/$ref/minimum");
    SL_CHECK_STR(cap.ip[3], "/total");
    SL_CHECK_STR(cap.ip[4], "/lines/1");
    SL_CHECK_STR(cap.kl[4], "/properties/lines/items/$ref/minimum");
    sl_schema_set_destroy(set);
}

SL_TEST(bad_files_are_clear_errors)
{
    char path[PATH_MAX];
    struct sl_err err;
    sl_schema_set_t *set = sl_schema_set_new();
    fixture_path(path, sizeof(path), "no-such-file.json");
    SL_CHECK(sl_schema_set_load_file(set, path, &err) == NULL);
    SL_CHECK_INT(err.code, SL_ERR_NOT_FOUND);
    SL_CHECK_CONTAINS(err.msg, "no-such-file.json");
    fixture_path(path, sizeof(path), "malformed.json");
    SL_CHECK(sl_schema_set_load_file(set, path, &err) == NULL);
    SL_CHECK_CONTAINS(err.msg, "malformed.json:3:");
    fixture_path(path, sizeof(path), "bad_ref.json");
    SL_CHECK(sl_schema_set_load_file(set, path, &err) == NULL);
    SL_CHECK_CONTAINS(err.msg, "bad_ref.json#/properties/a/$ref: cannot resolve");
    SL_CHECK_CONTAINS(err.msg, "does-not-exist.json");
    SL_CHECK(sl_schema_set_map(set, "https://x.test/", "/no/such/dir", &err) != 0);
    SL_CHECK(sl_schema_set_map(set, "not a uri", "/", &err) != 0);
    sl_schema_set_destroy(set);
}

SL_TEST(mapped_prefixes_load_from_files_on_demand)
{
    char dir[PATH_MAX], path[PATH_MAX];
    struct sl_err err;
    struct captured cap;
    sl_schema_set_t *set = sl_schema_set_new();
    fixture_path(dir, sizeof(dir), "");
    SL_REQUIRE(sl_schema_set_map(set, "https://schemas.sluice.test/", dir, &err) == 0);
    const sl_schema_t *s =
        add_text(set, "{\"$ref\":\"https://schemas.sluice.test/money.json#/$defs/amount\"}", &err);
    SL_REQUIRE(s != NULL);
    SL_CHECK_INT(check(s, "3", &cap, 5), 1);
    SL_CHECK_INT(check(s, "-3", &cap, 5), 0);
    SL_CHECK(add_text(set, "{\"$ref\":\"https://schemas.sluice.test/../secret.json\"}", &err) ==
             NULL);
    /* a meta-schema that requires a vocabulary we do not implement */
    fixture_path(path, sizeof(path), "uses_custom_meta.json");
    SL_CHECK(sl_schema_set_load_file(set, path, &err) == NULL);
    SL_CHECK_CONTAINS(err.msg, "requires the unsupported vocabulary");
    sl_schema_set_destroy(set);
}

SL_TEST(vocabularies_of_a_custom_meta_schema_switch_keywords)
{
    struct sl_err err;
    struct captured cap;
    sl_schema_set_t *set = sl_schema_set_new();
    /* describes itself: its own $vocabulary applies (no validation vocabulary) */
    const sl_schema_t *meta =
        add_text(set,
                 "{\"$schema\":\"https://x.test/meta\",\"$id\":\"https://x.test/meta\","
                 "\"$vocabulary\":{\"https://json-schema.org/draft/2020-12/vocab/core\":true,"
                 "\"https://json-schema.org/draft/2020-12/vocab/applicator\":true,"
                 "\"https://json-schema.org/draft/2020-12/vocab/format-assertion\":false}}",
                 &err);
    if (!meta)
        sl_test_fail(__FILE__, __LINE__, "%s", err.msg);
    const sl_schema_t *s = add_text(set,
                                    "{\"$schema\":\"https://x.test/meta\",\"properties\":{\"a\":"
                                    "{\"minimum\":5,\"format\":\"date\"},\"b\":false}}",
                                    &err);
    SL_REQUIRE(s != NULL);
    SL_CHECK_INT(check(s, "{\"a\":1}", &cap, 5), 1);        /* minimum is switched off */
    SL_CHECK_INT(check(s, "{\"a\":\"nope\"}", &cap, 5), 0); /* format-assertion is on */
    SL_CHECK_INT(check(s, "{\"b\":1}", &cap, 5), 0);        /* applicators still work */
    sl_schema_set_destroy(set);
}

SL_TEST(formats_are_annotations_unless_asserted)
{
    static const struct {
        const char *format, *good, *bad;
    } cases[] = {
        {"date-time", "\"2024-02-29T23:59:60Z\"", "\"2023-02-29T10:00:00Z\""},
        {"date-time", "\"2024-03-10T12:30:00.123+01:00\"", "\"2024-03-10 12:30:00\""},
        {"date", "\"2024-12-31\"", "\"2024-13-01\""},
        {"time", "\"08:30:00Z\"", "\"08:30:00\""},
        {"email", "\"jane.doe+tag@example.com\"", "\"jane..doe@example.com\""},
        {"hostname", "\"api.example.com\"", "\"-bad-.example.com\""},
        {"ipv4", "\"192.168.0.1\"", "\"192.168.0.01\""},
        {"ipv6", "\"2001:db8::8a2e:370:7334\"", "\"2001:db8:::1\""},
        {"uri", "\"https://example.com/a?b=c#d\"", "\"//example.com/no-scheme\""},
        {"uri-reference", "\"../a/b?c\"", "\"a b\""},
        {"uuid", "\"8f14e45f-ceea-467f-a8d8-2b0b5e0bd5a1\"", "\"8f14e45f-ceea-467f-a8d8\""},
        {"duration", "\"P1DT12H\"", "\"P1H\""},
        {"json-pointer", "\"/a~1b/0\"", "\"a/b\""},
        {"regex", "\"^[a-z]+$\"", "\"([a-z\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[128];
        struct sl_err err;
        struct captured cap;
        sl_schema_set_t *set = sl_schema_set_new();
        snprintf(text, sizeof(text), "{\"format\":\"%s\"}", cases[i].format);
        const sl_schema_t *s = add_text(set, text, &err);
        SL_REQUIRE(s != NULL);
        SL_CHECK_INT(check(s, cases[i].bad, &cap, 5), 1);
        sl_schema_set_assert_formats(set, true);
        SL_CHECK_INT(check(s, cases[i].good, &cap, 5), 1);
        if (check(s, cases[i].bad, &cap, 5) != 0)
            sl_test_fail(__FILE__, __LINE__, "%s accepted %s", cases[i].format, cases[i].bad);
        else
            SL_CHECK_CONTAINS(cap.msg[0], cases[i].format);
        SL_CHECK_INT(check(s, "42", &cap, 5), 1); /* formats apply to strings only */
        sl_schema_set_destroy(set);
    }
}

SL_TEST(deep_instances_and_ref_cycles_hit_the_depth_bound)
{
    struct sl_err err;
    struct captured cap;
    sl_schema_set_t *set = sl_schema_set_new();
    const sl_schema_t *tree = add_text(set, "{\"items\":{\"$ref\":\"#\"}}", &err);
    const sl_schema_t *cycle = add_text(set,
                                        "{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},\"b\":{\"$ref\""
                                        ":\"#/$defs/a\"}},\"$ref\":\"#/$defs/a\"}",
                                        &err);
    const sl_schema_t *negated = add_text(set, "{\"not\":{\"$ref\":\"#\"}}", &err);
    SL_REQUIRE(tree && cycle && negated);
    /* nested arrays deeper than the bound: built by hand, jansson's parser stops at 2048 */
    json_t *deep = json_array();
    for (int i = 0; i < SL_SCHEMA_MAX_DEPTH + 10; i++) {
        json_t *outer = json_array();
        json_array_append_new(outer, deep);
        deep = outer;
    }
    memset(&cap, 0, sizeof(cap));
    SL_CHECK_INT(sl_schema_validate(tree, deep, capture, &cap, 10), 0);
    SL_CHECK_INT(cap.n, 1);
    SL_CHECK_CONTAINS(cap.msg[0], "nesting deeper than");
    SL_CHECK_INT(sl_schema_validate(tree, deep, NULL, NULL, 0), 0);
    json_decref(deep);
    SL_CHECK_INT(check(tree, "[[[[1]]]]", &cap, 10), 1);
    SL_CHECK_INT(check(cycle, "1", &cap, 10), 0);
    SL_CHECK_CONTAINS(cap.msg[0], "$ref cycle");
    /* `not` must not turn the aborted evaluation into a success */
    SL_CHECK_INT(check(negated, "1", &cap, 10), 0);
    SL_CHECK_INT(cap.n, 1);
    /* a schema nested deeper than the compile bound is rejected, not a stack overflow */
    json_t *schema = json_object();
    for (int i = 0; i < 1100; i++) {
        json_t *outer = json_object();
        json_object_set_new(outer, "items", schema);
        schema = outer;
    }
    SL_CHECK(sl_schema_set_add(set, schema, NULL, &err) == NULL);
    SL_CHECK_CONTAINS(err.msg, "nested deeper than");
    json_decref(schema);
    sl_schema_set_destroy(set);
}

struct thread_arg {
    const sl_schema_t *schema;
    json_t *good, *bad;
    int wrong;
};

static void *validate_many(void *p)
{
    struct thread_arg *arg = p;
    for (int i = 0; i < 2000; i++) {
        struct captured cap = {0};
        if (sl_schema_validate(arg->schema, arg->good, capture, &cap, 10) != 1)
            arg->wrong++;
        if (sl_schema_validate(arg->schema, arg->bad, capture, &cap, 10) != 0 || cap.n != 2)
            arg->wrong++;
    }
    return NULL;
}

SL_TEST(validation_is_safe_from_several_threads)
{
    struct sl_err err;
    sl_schema_set_t *set = sl_schema_set_new();
    const sl_schema_t *s =
        add_text(set,
                 "{\"properties\":{\"id\":{\"pattern\":\"^evt_[0-9]+$\"},"
                 "\"tags\":{\"unevaluatedItems\":false,\"prefixItems\":[{\"type\""
                 ":\"string\"}]}}}",
                 &err);
    SL_REQUIRE(s != NULL);
    struct thread_arg args[4];
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){s, parse("{\"id\":\"evt_1\",\"tags\":[\"a\"]}"),
                                      parse("{\"id\":\"evt_x\",\"tags\":[\"a\",\"b\"]}"), 0};
        SL_REQUIRE(pthread_create(&threads[i], NULL, validate_many, &args[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        SL_CHECK_INT(args[i].wrong, 0);
        json_decref(args[i].good);
        json_decref(args[i].bad);
    }
    sl_schema_set_destroy(set);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

SL_TEST(a_1kb_event_validates_in_microseconds)
{
    char path[PATH_MAX];
    struct sl_err err;
    json_error_t jerr;
    sl_schema_set_t *set = sl_schema_set_new();
    sl_schema_set_assert_formats(set, true);
    fixture_path(path, sizeof(path), "stripe_charge.schema.json");
    const sl_schema_t *s = sl_schema_set_load_file(set, path, &err);
    if (!s)
        sl_test_fail(__FILE__, __LINE__, "%s", err.msg);
    SL_REQUIRE(s != NULL);
    fixture_path(path, sizeof(path), "stripe_charge.event.json");
    json_t *event = json_load_file(path, 0, &jerr);
    SL_REQUIRE(event != NULL);
    char *text = json_dumps(event, JSON_COMPACT);
    SL_REQUIRE(text != NULL);
    SL_CHECK_INT(sl_schema_validate(s, event, NULL, NULL, 0), 1);
    const int rounds = 20000;
    int valid = 0;
    double t0 = now_seconds();
    for (int i = 0; i < rounds; i++)
        valid += sl_schema_validate(s, event, NULL, NULL, 0);
    double per = (now_seconds() - t0) / rounds;
    SL_CHECK_INT(valid, rounds);
    printf("    %zu-byte event: %.2f us per validation, %.0f validations/s on one core%s\n",
           strlen(text), per * 1e6, 1.0 / per,
#ifdef __SANITIZE_ADDRESS__
           " (under AddressSanitizer: several times slower than a Release build)"
#else
           ""
#endif
    );
    /* A generous bound that still catches a regex compile or a schema walk per call. */
    SL_CHECK(per < 500e-6);
    /* an invalid copy reports its error */
    json_object_set_new(json_object_get(json_object_get(event, "data"), "object"), "currency",
                        json_string("EUR"));
    struct captured cap = {0};
    SL_CHECK_INT(sl_schema_validate(s, event, capture, &cap, 10), 0);
    SL_CHECK_STR(cap.ip[0], "/data/object/currency");
    SL_CHECK_STR(cap.kl[0], "/properties/data/properties/object/$ref/properties/currency/$ref/"
                            "pattern");
    free(text);
    json_decref(event);
    sl_schema_set_destroy(set);
}

/* Runs sluicectl_schema_check with stdout sent to a file; returns the exit code, output in out. */
static int run_cli(char **argv, int argc, char *out, size_t cap)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/test_jsonschema_cli.%d.out", sl_test_binary_dir(),
             (int)getpid());
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    FILE *f = fopen(path, "w+");
    if (saved < 0 || !f) {
        sl_test_fail(__FILE__, __LINE__, "cannot redirect stdout to %s", path);
        if (f)
            fclose(f);
        return -1;
    }
    dup2(fileno(f), STDOUT_FILENO);
    int rc = sluicectl_schema_check(argc, argv);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    rewind(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    fclose(f);
    unlink(path);
    return rc;
}

SL_TEST(sluicectl_schema_check_exit_codes_and_output)
{
    char schema[PATH_MAX], good[PATH_MAX], bad[PATH_MAX], broken[PATH_MAX], dir[PATH_MAX];
    char map[PATH_MAX + 64], out[4096];
    char tmp_good[PATH_MAX], tmp_bad[PATH_MAX];
    fixture_path(schema, sizeof(schema), "order.json");
    fixture_path(broken, sizeof(broken), "malformed.json");
    fixture_path(dir, sizeof(dir), "");
    snprintf(tmp_good, sizeof(tmp_good), "%s/test_jsonschema_good.%d.json", sl_test_binary_dir(),
             (int)getpid());
    snprintf(tmp_bad, sizeof(tmp_bad), "%s/test_jsonschema_bad.%d.json", sl_test_binary_dir(),
             (int)getpid());
    FILE *f = fopen(tmp_good, "w");
    SL_REQUIRE(f != NULL);
    fputs("{\"customer\":{\"id\":\"cus_1\"},\"total\":3}", f);
    fclose(f);
    f = fopen(tmp_bad, "w");
    SL_REQUIRE(f != NULL);
    fputs("{\"customer\":{\"id\":\"cus_1\"},\"total\":-3}", f);
    fclose(f);
    snprintf(good, sizeof(good), "%s", tmp_good);
    snprintf(bad, sizeof(bad), "%s", tmp_bad);
    snprintf(map, sizeof(map), "https://schemas.sluice.test/=%s", dir);

    char *valid_argv[] = {"check", "--map", map, schema, good};
    SL_CHECK_INT(run_cli(valid_argv, 5, out, sizeof(out)), 0);
    SL_CHECK_STR(out, "");

    char *invalid_argv[] = {"check", "--assert-formats", schema, good, bad};
    SL_CHECK_INT(run_cli(invalid_argv, 5, out, sizeof(out)), 1);
    char expect[PATH_MAX + 128];
    snprintf(expect, sizeof(expect),
             "%s: /total: /properties/total/$ref/minimum: -3 is less than 0\n", bad);
    SL_CHECK_STR(out, expect);

    char *malformed_argv[] = {"check", schema, bad, broken};
    SL_CHECK_INT(run_cli(malformed_argv, 4, out, sizeof(out)), 2);
    char *bad_schema_argv[] = {"check", broken, good};
    SL_CHECK_INT(run_cli(bad_schema_argv, 3, out, sizeof(out)), 2);
    char *usage_argv[] = {"check", schema};
    SL_CHECK_INT(run_cli(usage_argv, 2, out, sizeof(out)), 2);
    char *unknown_argv[] = {"check", "--frobnicate", schema, good};
    SL_CHECK_INT(run_cli(unknown_argv, 4, out, sizeof(out)), 2);
    unlink(tmp_good);
    unlink(tmp_bad);
}

SL_TEST_MAIN()
