/*
 * test_source: ingress/source.[ch]. Field extraction through JSON Pointers (with ~0/~1 escapes)
 * and header:Name locators, the per-field rules (required id and type, optional partition key,
 * accepted kinds, bounds) and their error messages; building the sources of a pipeline file,
 * with errors that name the file, line and key, and secret lists during a rotation.
 */
#include <strings.h>

#include "sl_pipeline.h"
#include "sl_test.h"
#include "source.h"

struct hdr {
    const char *name, *value;
};

static const char *lookup(void *opaque, const char *name)
{
    for (const struct hdr *h = opaque; h && h->name; h++)
        if (strcasecmp(h->name, name) == 0)
            return h->value;
    return NULL;
}

static source_t *make(const char *id, const char *type, const char *key)
{
    struct sl_err err;
    struct source_opts o = {
        .name = "src",
        .verify = {.scheme = VERIFY_NONE},
        .locators = {
            [SOURCE_EVENT_ID] = id, [SOURCE_EVENT_TYPE] = type, [SOURCE_PARTITION_KEY] = key}};
    source_t *src = source_new(&o, &err);
    if (!src)
        sl_test_fail(__FILE__, __LINE__, "source_new: %s", err.msg);
    return src;
}

/* Scans `body` with the source's pointers and extracts `field`; returns source_extract's result
 * with the value or the error message in `out`. */
static int extract(const source_t *src, enum source_field field, const char *body,
                   const struct hdr *hdrs, char *out, size_t size)
{
    const jsonptr_t *ptrs[SOURCE_FIELDS];
    struct jsonscan_hit hits[SOURCE_FIELDS];
    struct sl_err err = {0};
    size_t n = source_pointers(src, ptrs);
    if (jsonscan(body, strlen(body), ptrs, n, hits, &err) != 0) {
        snprintf(out, size, "scan: %s", err.msg);
        return -2;
    }
    int rc = source_extract(src, field, body, hits, lookup, (void *)hdrs, out, size, &err);
    if (rc < 0)
        snprintf(out, size, "%s", err.msg);
    return rc;
}

SL_TEST(pointers_with_escapes_and_headers)
{
    source_t *src = make("/a~1b/c~0d", "header:X-Event-Type", "/data/0/customer");
    char out[SOURCE_VALUE_MAX + 1];
    const char *body = "{\"a/b\":{\"c~d\":\"evt_9\"},\"data\":[{\"customer\":\"cus_1\"}]}";
    const struct hdr hdrs[] = {{"x-event-type", "order.created"}, {NULL, NULL}};
    SL_CHECK_INT(extract(src, SOURCE_EVENT_ID, body, hdrs, out, sizeof(out)), 1);
    SL_CHECK_STR(out, "evt_9");
    SL_CHECK_INT(extract(src, SOURCE_EVENT_TYPE, body, hdrs, out, sizeof(out)), 1);
    SL_CHECK_STR(out, "order.created");
    SL_CHECK_INT(extract(src, SOURCE_PARTITION_KEY, body, hdrs, out, sizeof(out)), 1);
    SL_CHECK_STR(out, "cus_1");
    SL_CHECK_STR(source_name(src), "src");
    SL_CHECK_INT(source_scheme(src), VERIFY_NONE);
    source_destroy(src);
}

SL_TEST(missing_values_give_clear_errors)
{
    source_t *src = make("/id", "header:X-GitHub-Event", "/customer");
    char out[SOURCE_VALUE_MAX + 1];
    SL_CHECK_INT(extract(src, SOURCE_EVENT_ID, "{\"other\":1}", NULL, out, sizeof(out)), -1);
    SL_CHECK_STR(out, "event_id: /id is missing in the body");
    SL_CHECK_INT(extract(src, SOURCE_EVENT_ID, "{\"id\":null}", NULL, out, sizeof(out)), -1);
    SL_CHECK_STR(out, "event_id: /id is null in the body");
    SL_CHECK_INT(extract(src, SOURCE_EVENT_ID, "{\"id\":\"\"}", NULL, out, sizeof(out)), -1);
    SL_CHECK_STR(out, "event_id: /id is empty in the body");
    SL_CHECK_INT(extract(src, SOURCE_EVENT_TYPE, "{}", NULL, out, sizeof(out)), -1);
    SL_CHECK_STR(out, "event_type: header X-GitHub-Event is missing");
    /* The partition key is optional per request: absent, null or empty means none. */
    SL_CHECK_INT(extract(src, SOURCE_PARTITION_KEY, "{}", NULL, out, sizeof(out)), 0);
    SL_CHECK_INT(extract(src, SOURCE_PARTITION_KEY, "{\"customer\":null}", NULL, out, sizeof(out)),
                 0);
    SL_CHECK_INT(extract(src, SOURCE_PARTITION_KEY, "{\"customer\":\"\"}", NULL, out, sizeof(out)),
                 0);
    source_destroy(src);
}

SL_TEST(kinds_per_field)
{
    source_t *src = make("/id", "/type", "/key");
    char out[SOURCE_VALUE_MAX + 1];
    /* Numbers are ids and keys (kept as written), never types. */
    SL_CHECK_INT(
        extract(src, SOURCE_EVENT_ID, "{\"id\":1234567890123456789}", NULL, out, sizeof(out)), 1);
    SL_CHECK_STR(out, "1234567890123456789");
    SL_CHECK_INT(extract(src, SOURCE_PARTITION_KEY, "{\"key\":42}", NULL, out, sizeof(out)), 1);
    SL_CHECK_STR(out, "42");
    SL_CHECK_INT(extract(src, SOURCE_EVENT_TYPE, "{\"type\":7}", NULL, out, sizeof(out)), -1);
    SL_CHECK_STR(out, "event_type: /type is a number, expected a string");
    SL_CHECK_INT(extract(src, SOURCE_EVENT_ID, "{\"id\":{\"x\":1}}", NULL, out, sizeof(out)), -1);
    SL_CHECK_STR(out, "event_id: /id is an object, expected a string or a number");
    SL_CHECK_INT(extract(src, SOURCE_PARTITION_KEY, "{\"key\":[1]}", NULL, out, sizeof(out)), -1);
    SL_CHECK_CONTAINS(out, "is an array");
    SL_CHECK_INT(extract(src, SOURCE_EVENT_TYPE, "{\"type\":true}", NULL, out, sizeof(out)), -1);
    SL_CHECK_CONTAINS(out, "is a boolean");
    /* Control characters (escaped in JSON) would break headers and logs. */
    SL_CHECK_INT(extract(src, SOURCE_EVENT_ID, "{\"id\":\"a\\nb\"}", NULL, out, sizeof(out)), -1);
    SL_CHECK_STR(out, "event_id contains control characters");
    source_destroy(src);
}

SL_TEST(values_are_bounded)
{
    source_t *src = make("/id", "header:X-Type", NULL);
    static char body[SOURCE_VALUE_MAX + 64], big[SOURCE_VALUE_MAX + 8];
    char out[SOURCE_VALUE_MAX + 1];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    snprintf(body, sizeof(body), "{\"id\":\"%s\"}", big);
    SL_CHECK_INT(extract(src, SOURCE_EVENT_ID, body, NULL, out, sizeof(out)), -1);
    SL_CHECK_STR(out, "event_id: /id is longer than 1024 bytes");
    const struct hdr hdrs[] = {{"X-Type", big}, {NULL, NULL}};
    SL_CHECK_INT(extract(src, SOURCE_EVENT_TYPE, "{}", hdrs, out, sizeof(out)), -1);
    SL_CHECK_STR(out, "event_type: header X-Type is longer than 1024 bytes");
    /* Not configured: 0, whatever the request holds. */
    SL_CHECK_INT(extract(src, SOURCE_PARTITION_KEY, "{\"key\":1}", NULL, out, sizeof(out)), 0);
    source_destroy(src);
}

SL_TEST(bad_locators_and_names_are_refused)
{
    struct sl_err err;
    struct source_opts o = {.name = "src", .verify = {.scheme = VERIFY_NONE}};
    o.locators[SOURCE_EVENT_ID] = "id";
    SL_CHECK(source_new(&o, &err) == NULL);
    SL_CHECK_STR(err.msg, "event_id: expected a JSON Pointer such as /id, or header:Name");
    o.locators[SOURCE_EVENT_ID] = "/a~x";
    SL_CHECK(source_new(&o, &err) == NULL);
    SL_CHECK_CONTAINS(err.msg, "event_id: JSON Pointer '/a~x'");
    o.locators[SOURCE_EVENT_ID] = "header:Bad Name";
    SL_CHECK(source_new(&o, &err) == NULL);
    SL_CHECK_CONTAINS(err.msg, "is not a valid header name");
    o.locators[SOURCE_EVENT_ID] = "header:";
    SL_CHECK(source_new(&o, &err) == NULL);
    o.locators[SOURCE_EVENT_ID] = NULL;
    o.name = "no/slash";
    SL_CHECK(source_new(&o, &err) == NULL);
    SL_CHECK_CONTAINS(err.msg, "source name");
    /* Verification options go through verify_new's checks. */
    o.name = "src";
    o.verify.scheme = VERIFY_STRIPE;
    SL_CHECK(source_new(&o, &err) == NULL);
    SL_CHECK_CONTAINS(err.msg, "needs at least one secret");
}

static sl_conf_t *load(const char *yaml, struct sl_err *err)
{
    sl_conf_t *conf = sl_conf_load_string("pipeline.yaml", ".", yaml, strlen(yaml), err);
    if (conf &&
        (sl_conf_check(conf, sl_pipeline_keys, err) != 0 || sl_pipeline_check(conf, err) != 0)) {
        sl_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

SL_TEST(sources_of_a_pipeline_file)
{
    struct sl_err err;
    setenv("TEST_SOURCE_SECRET", "whsec_current", 1);
    unsetenv("TEST_SOURCE_PREVIOUS");
    const char *yaml = "sources:\n"
                       "  stripe:\n"
                       "    verify:\n"
                       "      scheme: stripe\n"
                       "      secret: [\"${TEST_SOURCE_SECRET}\", \"${TEST_SOURCE_PREVIOUS:-}\"]\n"
                       "      tolerance: 2m\n"
                       "      replay_guard: 24h\n"
                       "    cloudevents: binary\n"
                       "    event_id: /id\n"
                       "    event_type: /type\n"
                       "  crm:\n"
                       "    verify: { scheme: hmac-sha256, header: X-Sig, secret: s, encoding: "
                       "base64 }\n"
                       "    event_id: header:X-Delivery\n"
                       "  keys:\n"
                       "    verify: { scheme: api-key, key_hashes: "
                       "[\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"] }\n";
    sl_conf_t *conf = load(yaml, &err);
    SL_REQUIRE(conf);
    source_set_t *set = source_set_load(conf, &err);
    if (!set)
        sl_test_fail(__FILE__, __LINE__, "source_set_load: %s", err.msg);
    SL_REQUIRE(set);
    SL_CHECK_INT(source_set_count(set), 3);
    size_t index = 99;
    const source_t *crm = source_set_find(set, "crm", &index);
    SL_REQUIRE(crm);
    SL_CHECK_INT(index, 1);
    SL_CHECK(source_set_item(set, 1) == crm);
    SL_CHECK_INT(source_scheme(crm), VERIFY_HMAC_SHA256);
    SL_CHECK(source_set_find(set, "keys", &index) && index == 2);
    SL_CHECK(source_set_find(set, "stripe", NULL) == source_set_item(set, 0));
    SL_CHECK(source_set_find(set, "nope", &index) == NULL);
    SL_CHECK(source_set_find(set, "", NULL) == NULL);
    /* The empty second secret (no rotation under way) is skipped, the first one works. */
    const verify_t *v = source_verifier(source_set_item(set, 0));
    char sig[VERIFY_SIGNATURE_OUT_MAX];
    time_t now = time(NULL);
    SL_REQUIRE(verify_sign_stripe("whsec_current", (long)now, "{}", 2, sig, sizeof(sig), &err) ==
               0);
    const struct hdr hdrs[] = {{"Stripe-Signature", sig}, {NULL, NULL}};
    const char *why = NULL;
    SL_CHECK_INT(verify_check(v, lookup, (void *)hdrs, "{}", 2, now, &why), VERIFY_OK);
    /* tolerance: 2m applies: 3 minutes off is refused. */
    SL_CHECK_INT(verify_check(v, lookup, (void *)hdrs, "{}", 2, now + 180, &why), VERIFY_REJECTED);
    /* Identity and replay options, and their defaults. */
    SL_CHECK(source_signs_body(crm) && !source_binary_allowed(crm));
    SL_CHECK_INT(source_replay_guard_ms(crm), 0);
    SL_CHECK(source_replay_guard_ms(source_set_item(set, 0)) == 24LL * 3600 * 1000);
    SL_CHECK(source_binary_allowed(source_set_item(set, 0)));
    SL_CHECK(!source_signs_body(source_set_item(set, 2)) &&
             source_binary_allowed(source_set_item(set, 2)));
    source_set_destroy(set);
    sl_conf_destroy(conf);
}

SL_TEST(pipeline_file_errors_name_file_line_and_key)
{
    struct sl_err err;
    const char *bad_pointer = "sources:\n"
                              "  a:\n"
                              "    verify: { scheme: none }\n"
                              "    event_id: id\n";
    sl_conf_t *conf = load(bad_pointer, &err);
    SL_REQUIRE(conf);
    SL_CHECK(source_set_load(conf, &err) == NULL);
    SL_CHECK_STR(err.msg, "pipeline.yaml:3: sources.a: event_id: expected a JSON Pointer such as "
                          "/id, or header:Name");
    sl_conf_destroy(conf);

    const char *wrong_list = "sources:\n"
                             "  a:\n"
                             "    verify:\n"
                             "      scheme: api-key\n"
                             "      key_hashes: [\"00\"]\n"
                             "      secret: x\n";
    conf = load(wrong_list, &err);
    SL_REQUIRE(conf);
    SL_CHECK(source_set_load(conf, &err) == NULL);
    SL_CHECK_STR(err.msg, "pipeline.yaml:6: sources.a.verify.secret: does not apply to scheme "
                          "api-key");
    sl_conf_destroy(conf);

    /* An option that does not apply to the scheme is an error, not silently ignored. */
    const char *misapplied = "sources:\n"
                             "  a:\n"
                             "    verify: { scheme: github, secret: s, tolerance: 1m }\n";
    conf = load(misapplied, &err);
    SL_REQUIRE(conf);
    SL_CHECK(source_set_load(conf, &err) == NULL);
    SL_CHECK_CONTAINS(err.msg, "pipeline.yaml:3: sources.a: verify: tolerance applies only");
    sl_conf_destroy(conf);

    /* A replay guard remembers a signature: a scheme without one has nothing to remember. */
    const char *guard_api_key = "sources:\n"
                                "  a:\n"
                                "    verify: { scheme: none, replay_guard: 1h }\n";
    conf = load(guard_api_key, &err);
    SL_CHECK(conf == NULL);
    SL_CHECK_CONTAINS(err.msg, "pipeline.yaml:3");
    SL_CHECK_CONTAINS(err.msg, "signs nothing a replay guard could remember");
    sl_conf_destroy(conf);

    /* A secret list whose only entry is empty leaves no secret at all. */
    const char *no_secret = "sources:\n"
                            "  a:\n"
                            "    verify: { scheme: github, secret: [\"\"] }\n";
    conf = load(no_secret, &err);
    SL_REQUIRE(conf);
    SL_CHECK(source_set_load(conf, &err) == NULL);
    SL_CHECK_CONTAINS(err.msg, "needs at least one secret");
    sl_conf_destroy(conf);
}

SL_TEST_MAIN()
