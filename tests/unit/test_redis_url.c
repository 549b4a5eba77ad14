/* Unit tests of sl_redis without a server: the URL grammar (good forms, bad forms, and no
 * password in any message), the `redis` settings of the pipeline file, the local SHA1 of a
 * script, and how error replies are classified. Includes the module to reach url_parse(). */
#include "../../common/sl_redis.c"

#include <stdlib.h>

#include "sl_test.h"

/* The password every bad URL below carries; no message may show it or a piece of it. */
#define SECRET "hunter2"

static void check_no_secret(const char *msg)
{
    SL_CHECK(strstr(msg, SECRET) == NULL);
    SL_CHECK(strstr(msg, "hunt") == NULL);
    SL_CHECK(strstr(msg, "ter2") == NULL);
}

struct good {
    const char *url, *host;
    int port, db;
    const char *user, *password;
};

SL_TEST(good_urls_parse)
{
    static const struct good cases[] = {
        {"redis://127.0.0.1:6379/0", "127.0.0.1", 6379, 0, "", ""},
        {"redis://localhost", "localhost", 6379, 0, "", ""},
        {"REDIS://Cache-1.internal_zone:6380/5", "Cache-1.internal_zone", 6380, 5, "", ""},
        {"redis://host/", "host", 6379, 0, "", ""},
        {"redis://:s3cret@host", "host", 6379, 0, "", "s3cret"},
        {"redis://alice:s3cret@10.0.0.7:1/15", "10.0.0.7", 1, 15, "alice", "s3cret"},
        {"redis://:p%40ss%2Fw%3Ard%25%3F%23@host:7000", "host", 7000, 0, "", "p@ss/w:rd%?#"},
        {"redis://us%3Aer:p@ss@host", "host", 6379, 0, "us:er", "p@ss"},
        {"redis://[::1]:6390/2", "::1", 6390, 2, "", ""},
        {"redis://:pw@[fe80::1:2]", "fe80::1:2", 6379, 0, "", "pw"},
        {"redis://h:65535/2147483647", "h", 65535, 2147483647, "", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct redis_url u;
        struct sl_err err;
        if (url_parse(cases[i].url, &u, &err) != 0) {
            sl_test_fail(__FILE__, __LINE__, "%s: %s", cases[i].url, err.msg);
            continue;
        }
        SL_CHECK_STR(u.host, cases[i].host);
        SL_CHECK_INT(u.port, cases[i].port);
        SL_CHECK_INT(u.db, cases[i].db);
        SL_CHECK_STR(u.user, cases[i].user);
        SL_CHECK_STR(u.password, cases[i].password);
    }
}

struct bad {
    const char *url, *msg;
};

SL_TEST(bad_urls_are_rejected_without_the_password)
{
    static const struct bad cases[] = {
        {"", "empty"},
        {"http://:" SECRET "@host", "must be redis://"},
        {"unix:///tmp/redis.sock", "must be redis://"},
        {"rediss://:" SECRET "@host", "TLS"},
        {"redis://", "the host"},
        {"redis://:" SECRET "@", "the host"},
        {"redis://:" SECRET "@:6379", "the host"},
        {"redis://ho st", "the host"},
        {"redis://:" SECRET "@host:0", "the port"},
        {"redis://:" SECRET "@host:65536", "the port"},
        {"redis://host:", "the port"},
        {"redis://host:-1", "the port"},
        {"redis://host:12ab", "the port"},
        {"redis://host:1:2", "the port"},
        {"redis://host/abc", "the database"},
        {"redis://host/-1", "the database"},
        {"redis://host/1/2", "the database"},
        {"redis://host/99999999999", "the database"},
        {"redis://host?db=1", "query"},
        {"redis://host/0#frag", "query"},
        {"redis://" SECRET "@host", "[user]:password@"},
        {"redis://user:@host", "empty password"},
        {"redis://:" SECRET "%4@host", "percent-encoding"},
        {"redis://:" SECRET "%zz@host", "percent-encoding"},
        {"redis://:" SECRET "%00@host", "percent-encoding"},
        /* Unencoded '/', '?', '#' in a password end the host part early: the rest would be
         * parsed as port or database, so the message must not quote it. */
        {"redis://:hunt/er2@host", "percent-encode"},
        {"redis://:hunt?er2@host", "percent-encode"},
        {"redis://:hunt#er2@host", "percent-encode"},
        {"redis://:hunt/ter2", "the host"},
        {"redis://:" SECRET "@[::1", "IPv6"},
        {"redis://[::1]x", "':port'"},
        {"redis://[::g]:1", "the host"},
        {"redis://[]:1", "the host"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct redis_url u;
        struct sl_err err;
        if (url_parse(cases[i].url, &u, &err) == 0) {
            sl_test_fail(__FILE__, __LINE__, "accepted: %s", cases[i].url);
            continue;
        }
        SL_CHECK_INT(err.code, SL_ERR_CONFIG);
        SL_CHECK_CONTAINS(err.msg, cases[i].msg);
        check_no_secret(err.msg);
    }
}

SL_TEST(limits_are_enforced)
{
    struct redis_url u;
    struct sl_err err;
    SL_CHECK_INT(url_parse(NULL, &u, &err), -1);
    SL_CHECK_CONTAINS(err.msg, "empty");

    char url[SL_REDIS_URL_MAX + 16];
    memset(url, 'a', sizeof(url) - 1);
    url[sizeof(url) - 1] = '\0';
    memcpy(url, "redis://", 8);
    SL_CHECK_INT(url_parse(url, &u, &err), -1);
    SL_CHECK_CONTAINS(err.msg, "longer than");

    /* A password of exactly SL_REDIS_CRED_MAX bytes fits; one more does not. */
    char pw[SL_REDIS_CRED_MAX + 2];
    memset(pw, 'p', sizeof(pw));
    pw[SL_REDIS_CRED_MAX] = '\0';
    snprintf(url, sizeof(url), "redis://:%s@host", pw);
    SL_CHECK_INT(url_parse(url, &u, &err), 0);
    SL_CHECK_INT(strlen(u.password), SL_REDIS_CRED_MAX);
    pw[SL_REDIS_CRED_MAX] = 'p';
    pw[SL_REDIS_CRED_MAX + 1] = '\0';
    snprintf(url, sizeof(url), "redis://:%s@host", pw);
    SL_CHECK_INT(url_parse(url, &u, &err), -1);
    SL_CHECK_CONTAINS(err.msg, "longer than");
    SL_CHECK(strstr(err.msg, "ppp") == NULL);

    char host[HOST_MAX + 2];
    memset(host, 'h', sizeof(host));
    host[HOST_MAX + 1] = '\0';
    snprintf(url, sizeof(url), "redis://%s", host);
    SL_CHECK_INT(url_parse(url, &u, &err), -1);
    host[HOST_MAX] = '\0';
    snprintf(url, sizeof(url), "redis://%s", host);
    SL_CHECK_INT(url_parse(url, &u, &err), 0);
}

SL_TEST(new_checks_url_and_timeout_without_connecting)
{
    struct sl_err err;
    /* Nothing listens on port 1: sl_redis_new() must not try. */
    sl_redis_t *r = sl_redis_new("redis://alice:" SECRET "@127.0.0.1:1/3", 250, &err);
    SL_REQUIRE(r);
    SL_CHECK(r->ctx == NULL);
    SL_CHECK_STR(r->where, "127.0.0.1:1");
    sl_redis_destroy(r);
    r = sl_redis_new("redis://[::1]:7/0", 250, &err);
    SL_REQUIRE(r);
    SL_CHECK_STR(r->where, "[::1]:7");
    sl_redis_destroy(r);
    sl_redis_destroy(NULL);

    SL_CHECK(sl_redis_new("redis://host", 0, &err) == NULL);
    SL_CHECK_CONTAINS(err.msg, "timeout");
    SL_CHECK(sl_redis_new("redis://:" SECRET "@host:x", 100, &err) == NULL);
    SL_CHECK_INT(err.code, SL_ERR_CONFIG);
    check_no_secret(err.msg);
}

static sl_conf_t *conf_of(const char *text)
{
    struct sl_err err;
    sl_conf_t *conf = sl_conf_load_string("pipeline.yaml", ".", text, strlen(text), &err);
    if (!conf) {
        sl_test_fail(__FILE__, __LINE__, "%s", err.msg);
        sl_test_abort_current();
    }
    return conf;
}

SL_TEST(settings_from_file_env_and_default)
{
    struct sl_err err;
    const char *url = NULL;
    int timeout = 0;

    unsetenv("SLUICE_REDIS_URL");
    SL_CHECK_INT(sl_redis_settings(NULL, &url, &timeout, &err), 0);
    SL_CHECK_STR(url, SL_REDIS_DEFAULT_URL);
    SL_CHECK_INT(timeout, 1000);

    setenv("SLUICE_REDIS_URL", "redis://env-host:6390/4", 1);
    sl_conf_t *conf = conf_of("redis: { timeout: 250ms }\n");
    SL_CHECK_INT(sl_redis_settings(conf, &url, &timeout, &err), 0);
    SL_CHECK_STR(url, "redis://env-host:6390/4");
    SL_CHECK_INT(timeout, 250);
    sl_conf_destroy(conf);

    /* The file wins over the environment. */
    conf = conf_of("redis:\n  url: redis://file-host/2\n");
    SL_CHECK_INT(sl_redis_settings(conf, &url, &timeout, &err), 0);
    SL_CHECK_STR(url, "redis://file-host/2");
    SL_CHECK_INT(timeout, 1000);
    sl_conf_destroy(conf);

    /* A bad URL in the file names the file and the line, and not the password. */
    conf = conf_of("kafka: {}\nredis:\n  url: \"redis://:" SECRET "@host:nope\"\n");
    SL_CHECK_INT(sl_redis_settings(conf, &url, &timeout, &err), -1);
    SL_CHECK_INT(err.code, SL_ERR_CONFIG);
    SL_CHECK_CONTAINS(err.msg, "pipeline.yaml:3");
    SL_CHECK_CONTAINS(err.msg, "the port");
    check_no_secret(err.msg);
    sl_conf_destroy(conf);

    /* One from the environment says so. */
    setenv("SLUICE_REDIS_URL", "redis://:" SECRET "@host/x", 1);
    SL_CHECK_INT(sl_redis_settings(NULL, &url, &timeout, &err), -1);
    SL_CHECK_CONTAINS(err.msg, "SLUICE_REDIS_URL: ");
    SL_CHECK_CONTAINS(err.msg, "the database");
    check_no_secret(err.msg);

    conf = conf_of("redis: { timeout: 5ms }\n");
    SL_CHECK_INT(sl_redis_settings(conf, &url, &timeout, &err), -1);
    SL_CHECK_CONTAINS(err.msg, "timeout");
    sl_conf_destroy(conf);
    unsetenv("SLUICE_REDIS_URL");
}

SL_TEST(key_prefix_defaults_to_the_topic_prefix)
{
    struct sl_err err;
    const char *prefix = NULL;
    SL_CHECK_INT(sl_redis_key_prefix(NULL, "sluice.", &prefix, &err), 0);
    SL_CHECK_STR(prefix, "sluice.");
    sl_conf_t *conf = conf_of("redis: { key_prefix: staging.eu- }\n");
    SL_CHECK_INT(sl_redis_key_prefix(conf, "sluice.", &prefix, &err), 0);
    SL_CHECK_STR(prefix, "staging.eu-");
    sl_conf_destroy(conf);
    /* ':' separates the parts after the prefix: with it, two prefixes could make one key. */
    conf = conf_of("kafka: {}\nredis:\n  key_prefix: \"a:b\"\n");
    SL_CHECK_INT(sl_redis_key_prefix(conf, "sluice.", &prefix, &err), -1);
    SL_CHECK_INT(err.code, SL_ERR_CONFIG);
    SL_CHECK_CONTAINS(err.msg, "pipeline.yaml:3");
    SL_CHECK_CONTAINS(err.msg, "key_prefix");
    sl_conf_destroy(conf);
    conf = conf_of("redis: { key_prefix: \"\" }\n");
    SL_CHECK_INT(sl_redis_key_prefix(conf, "sluice.", &prefix, &err), -1);
    sl_conf_destroy(conf);
}

SL_TEST(script_sha1_is_computed_locally)
{
    struct sl_err err;
    /* The SHA1 that SCRIPT LOAD "return 1" answers. */
    sl_redis_script_t *s = sl_redis_script_new("return 1", &err);
    SL_REQUIRE(s);
    SL_CHECK_STR(sl_redis_script_sha(s), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    sl_redis_script_destroy(s);
    SL_CHECK(sl_redis_script_new("", &err) == NULL);
    sl_redis_script_destroy(NULL);
}

static void classify(const sl_redis_t *r, const char *text, enum sl_errcode code, bool retriable,
                     bool fatal)
{
    redisReply reply = {.type = REDIS_REPLY_ERROR, .str = (char *)text, .len = strlen(text)};
    struct sl_err err;
    SL_CHECK_INT(sl_redis_reply_check(r, &reply, &err), -1);
    if (err.code != code || err.retriable != retriable || err.fatal != fatal)
        sl_test_fail(__FILE__, __LINE__, "%s: %s retriable=%d fatal=%d", text,
                     sl_errcode_name(err.code), err.retriable, err.fatal);
    SL_CHECK_CONTAINS(err.msg, "redis 127.0.0.1:6379: ");
    SL_CHECK_CONTAINS(err.msg, text);
}

SL_TEST(error_replies_are_classified)
{
    struct sl_err err;
    sl_redis_t *r = sl_redis_new("redis://127.0.0.1:6379", 100, &err);
    SL_REQUIRE(r);
    classify(r, "ERR value is not an integer or out of range", SL_ERR_INVALID, false, false);
    classify(r, "WRONGTYPE Operation against a key holding the wrong kind of value", SL_ERR_INVALID,
             false, false);
    classify(r, "LOADING Redis is loading the dataset in memory", SL_ERR_UNAVAILABLE, true, false);
    classify(r, "BUSY Redis is busy running a script.", SL_ERR_UNAVAILABLE, true, false);
    classify(r, "BUSYKEY Target key name already exists.", SL_ERR_INVALID, false, false);
    classify(r, "MASTERDOWN Link with MASTER is down", SL_ERR_UNAVAILABLE, true, false);
    classify(r, "TRYAGAIN Multiple keys request during rehashing", SL_ERR_UNAVAILABLE, true, false);
    classify(r, "CLUSTERDOWN The cluster is down", SL_ERR_UNAVAILABLE, true, false);
    classify(r, "READONLY You can't write against a read only replica.", SL_ERR_UNAVAILABLE, true,
             false);
    classify(r, "OOM command not allowed when used memory > 'maxmemory'.", SL_ERR_UNAVAILABLE, true,
             false);
    classify(r, "NOAUTH Authentication required.", SL_ERR_CONFIG, false, true);
    classify(r, "WRONGPASS invalid username-password pair or user is disabled.", SL_ERR_CONFIG,
             false, true);
    classify(r, "NOPERM this user has no permissions to run the 'eval' command", SL_ERR_CONFIG,
             false, true);
    redisReply ok = {.type = REDIS_REPLY_STATUS, .str = "OK", .len = 2};
    SL_CHECK_INT(sl_redis_reply_check(r, &ok, &err), 0);
    sl_redis_destroy(r);
}

SL_TEST_MAIN()
