/* deliver's credentials: secret files re-read on change, the outbound Standard Webhooks
 * signer against the published vector (the one test_verify checks ingress with) and against
 * ingress's own verifier, and every auth type including the OAuth2 token life cycle. */
#include "auth.h"
#include "secret.h"
#include "signer.h"
#include "sl_test.h"
#include "verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* The Standard Webhooks reference vector (standard-webhooks/standard-webhooks, the libraries'
 * tests), shared with tests/unit/test_verify.c. */
#define SW_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SW_ID     "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SW_TS     1614265330
#define SW_BODY   "{\"test\": 2432232314}"
#define SW_SIG    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
#define SW_OTHER  "whsec_dGhpcyBpcyB0aGUgbmV4dCBzZWNyZXQ="

static void temp_path(char *buf, size_t size, const char *tag)
{
    snprintf(buf, size, "%s/tests/dlv-%s-%d", sl_test_binary_dir(), tag, (int)getpid());
}

/* Replaces `path` atomically, as a Kubernetes secret volume does. */
static void write_file(const char *path, const char *text)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    SL_REQUIRE(f);
    fputs(text, f);
    fclose(f);
    SL_REQUIRE(rename(tmp, path) == 0);
}

SL_TEST(secret_file_is_reread_when_it_changes)
{
    char path[4096];
    struct sl_err err;
    unsigned gen0, gen;
    temp_path(path, sizeof(path), "secret");
    write_file(path, "first\n");
    dlv_secret_t *s = dlv_secret_new(NULL, path, false, &err);
    SL_REQUIRE(s);
    SL_CHECK_STR(dlv_secret_get(s, 0, false, &gen0), "first"); /* newline dropped */
    write_file(path, "second");
    /* Within the check interval the file is not looked at; forced or after it, it is. */
    SL_CHECK_STR(dlv_secret_get(s, DLV_SECRET_CHECK_MS - 1, false, &gen), "first");
    SL_CHECK_INT(gen, gen0);
    SL_CHECK_STR(dlv_secret_get(s, DLV_SECRET_CHECK_MS, false, &gen), "second");
    SL_CHECK(gen != gen0);
    /* A broken file keeps the last good value. */
    write_file(path, "bad\x01value");
    SL_CHECK_STR(dlv_secret_get(s, 0, true, &gen0), "second");
    SL_CHECK_INT(gen0, gen);
    unlink(path);
    SL_CHECK_STR(dlv_secret_get(s, 0, true, &gen0), "second");
    dlv_secret_destroy(s);

    SL_CHECK(dlv_secret_new(NULL, path, false, &err) == NULL); /* missing at start: an error */
    SL_CHECK_CONTAINS(err.msg, path);
    SL_CHECK(dlv_secret_new("a\nb", NULL, false, &err) == NULL);
    SL_CHECK(dlv_secret_new("x", path, false, &err) == NULL);
    s = dlv_secret_new("literal \n", NULL, false, &err);
    SL_REQUIRE(s);
    SL_CHECK_STR(dlv_secret_get(s, 99999, true, NULL), "literal");
    dlv_secret_destroy(s);
}

static const char *lookup(void *opaque, const char *name)
{
    const char *const *h = opaque;
    for (; h[0]; h += 2)
        if (strcasecmp(h[0], name) == 0)
            return h[1];
    return NULL;
}

SL_TEST(signer_matches_the_published_vector_and_ingress_verifies_it)
{
    struct sl_err err;
    char sig[DLV_SIGN_HEADER_MAX];
    const char *one[] = {SW_SECRET};
    dlv_signer_t *s = dlv_signer_new(one, 1, NULL, &err);
    SL_REQUIRE(s);
    SL_REQUIRE(
        dlv_signer_sign(s, 0, SW_ID, SW_TS, SW_BODY, strlen(SW_BODY), sig, sizeof(sig), &err) == 0);
    SL_CHECK_STR(sig, SW_SIG);
    dlv_signer_destroy(s);

    /* Two secrets sign twice; a receiver that knows either one accepts. */
    const char *two[] = {SW_OTHER, SW_SECRET};
    s = dlv_signer_new(two, 2, NULL, &err);
    SL_REQUIRE(s);
    SL_REQUIRE(
        dlv_signer_sign(s, 0, SW_ID, SW_TS, SW_BODY, strlen(SW_BODY), sig, sizeof(sig), &err) == 0);
    SL_CHECK_CONTAINS(sig, " " SW_SIG);
    const char *hdrs[] = {
        "webhook-id", SW_ID, "webhook-timestamp", "1614265330", "webhook-signature", sig, NULL};
    for (int i = 0; i < 2; i++) {
        struct verify_opts o = {
            .scheme = VERIFY_STANDARD_WEBHOOKS, .secrets = &two[i], .n_secrets = 1};
        verify_t *v = verify_new(&o, &err);
        SL_REQUIRE(v);
        const char *reason = NULL;
        SL_CHECK_INT(
            verify_check(v, lookup, (void *)hdrs, SW_BODY, strlen(SW_BODY), SW_TS, &reason),
            VERIFY_OK);
        verify_destroy(v);
    }
    dlv_signer_destroy(s);

    SL_CHECK(dlv_signer_new((const char *[]){"whsec_%%%"}, 1, NULL, &err) == NULL);
    SL_CHECK_CONTAINS(err.msg, "#1");
    SL_CHECK(strstr(err.msg, "%%%") == NULL); /* never the secret itself */
    SL_CHECK(dlv_signer_new(NULL, 0, NULL, &err) == NULL);
}

SL_TEST(signer_picks_up_a_rotated_secret_file)
{
    char path[4096], sig[DLV_SIGN_HEADER_MAX];
    struct sl_err err;
    temp_path(path, sizeof(path), "sign");
    write_file(path, SW_OTHER "\n");
    dlv_signer_t *s = dlv_signer_new(NULL, 0, path, &err);
    SL_REQUIRE(s);
    SL_REQUIRE(
        dlv_signer_sign(s, 0, SW_ID, SW_TS, SW_BODY, strlen(SW_BODY), sig, sizeof(sig), &err) == 0);
    SL_CHECK(strstr(sig, SW_SIG) == NULL);
    write_file(path, SW_SECRET "\n" SW_OTHER "\n");
    SL_REQUIRE(dlv_signer_sign(s, DLV_SECRET_CHECK_MS, SW_ID, SW_TS, SW_BODY, strlen(SW_BODY), sig,
                               sizeof(sig), &err) == 0);
    SL_CHECK(strncmp(sig, SW_SIG " v1,", strlen(SW_SIG) + 4) == 0);
    /* An unusable rotation keeps the keys that worked. */
    write_file(path, "not base64 at all\n");
    SL_REQUIRE(dlv_signer_sign(s, 2 * DLV_SECRET_CHECK_MS, SW_ID, SW_TS, SW_BODY, strlen(SW_BODY),
                               sig, sizeof(sig), &err) == 0);
    SL_CHECK(strncmp(sig, SW_SIG " v1,", strlen(SW_SIG) + 4) == 0);
    dlv_signer_destroy(s);
    unlink(path);
}

static dlv_auth_t *auth(const struct dlv_auth_conf *c)
{
    struct sl_err err;
    dlv_auth_t *a = dlv_auth_new(c, &err);
    if (!a)
        sl_test_fail(__FILE__, __LINE__, "dlv_auth_new: %s", err.msg);
    return a;
}

SL_TEST(static_credentials)
{
    char h[DLV_AUTH_HEADER_MAX];
    unsigned gen;
    dlv_auth_t *a = auth(&(struct dlv_auth_conf){.type = DLV_AUTH_NONE});
    SL_REQUIRE(a);
    SL_CHECK(dlv_auth_header(a, 0, h, sizeof(h), &gen));
    SL_CHECK_STR(h, "");
    SL_CHECK(!dlv_auth_rejected(a, gen, 0));
    dlv_auth_destroy(a);

    a = auth(&(struct dlv_auth_conf){.type = DLV_AUTH_BEARER, .token = "t0k"});
    SL_REQUIRE(a);
    SL_CHECK(dlv_auth_header(a, 0, h, sizeof(h), &gen));
    SL_CHECK_STR(h, "Authorization: Bearer t0k");
    SL_CHECK(!dlv_auth_rejected(a, gen, 0)); /* a literal cannot change: no point retrying */
    dlv_auth_destroy(a);

    a = auth(&(struct dlv_auth_conf){.type = DLV_AUTH_API_KEY, .token = "k", .header = "X-Key"});
    SL_REQUIRE(a);
    SL_CHECK(dlv_auth_header(a, 0, h, sizeof(h), &gen));
    SL_CHECK_STR(h, "X-Key: k");
    dlv_auth_destroy(a);

    /* RFC 7617's example: Aladdin / open sesame. */
    a = auth(&(struct dlv_auth_conf){
        .type = DLV_AUTH_BASIC, .username = "Aladdin", .password = "open sesame"});
    SL_REQUIRE(a);
    SL_CHECK(dlv_auth_header(a, 0, h, sizeof(h), &gen));
    SL_CHECK_STR(h, "Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    dlv_auth_destroy(a);

    struct sl_err err;
    SL_CHECK(dlv_auth_new(&(struct dlv_auth_conf){.type = DLV_AUTH_BEARER}, &err) == NULL);
    SL_CHECK(dlv_auth_new(
                 &(struct dlv_auth_conf){.type = DLV_AUTH_BEARER, .token = "a", .token_file = "/x"},
                 &err) == NULL);
    SL_CHECK(
        dlv_auth_new(
            &(struct dlv_auth_conf){.type = DLV_AUTH_BASIC, .username = "a:b", .password = "p"},
            &err) == NULL);
}

SL_TEST(token_file_rotation_after_a_401)
{
    char path[4096], h[DLV_AUTH_HEADER_MAX];
    unsigned gen;
    temp_path(path, sizeof(path), "token");
    write_file(path, "one\n");
    dlv_auth_t *a = auth(&(struct dlv_auth_conf){.type = DLV_AUTH_BEARER, .token_file = path});
    SL_REQUIRE(a);
    SL_CHECK(dlv_auth_header(a, 0, h, sizeof(h), &gen));
    SL_CHECK_STR(h, "Authorization: Bearer one");
    SL_CHECK(!dlv_auth_rejected(a, gen, 1)); /* unchanged file: retrying cannot help */
    write_file(path, "two\n");
    SL_CHECK(dlv_auth_rejected(a, gen, 2)); /* checked at once after the 401 */
    SL_CHECK(dlv_auth_header(a, 3, h, sizeof(h), &gen));
    SL_CHECK_STR(h, "Authorization: Bearer two");
    dlv_auth_destroy(a);
    unlink(path);
}

SL_TEST(oauth2_token_life_cycle)
{
    char h[DLV_AUTH_HEADER_MAX];
    unsigned gen, gen2;
    struct dlv_auth_fetch f;
    struct sl_err err;
    dlv_auth_t *a = auth(&(struct dlv_auth_conf){.type = DLV_AUTH_OAUTH2,
                                                 .token_url = "http://127.0.0.1:1/token",
                                                 .client_id = "sluice",
                                                 .client_secret = "s3cr&t",
                                                 .scope = "write:payments"});
    SL_REQUIRE(a);
    /* No token yet: requests wait, one fetch is due. */
    SL_CHECK(!dlv_auth_header(a, 0, h, sizeof(h), &gen));
    SL_CHECK(dlv_auth_fetch_due(a, 0));
    SL_REQUIRE(dlv_auth_fetch_begin(a, 0, &f, &err) == 0);
    SL_CHECK_STR(f.url, "http://127.0.0.1:1/token");
    SL_CHECK_STR(f.body, "grant_type=client_credentials&scope=write%3Apayments");
    /* base64("sluice:s3cr%26t"): the client is form-encoded inside Basic (RFC 6749 2.3.1). */
    SL_CHECK_STR(f.authorization, "Authorization: Basic c2x1aWNlOnMzY3IlMjZ0");
    SL_CHECK(!dlv_auth_fetch_due(a, 0)); /* one fetch at a time */

    /* A failed fetch backs off; requests keep waiting. */
    SL_CHECK_INT(dlv_auth_fetch_done(a, 401, "{\"error\":\"invalid_client\"}", 26, 100, &err), -1);
    SL_CHECK_CONTAINS(err.msg, "401: invalid_client");
    SL_CHECK(!dlv_auth_fetch_due(a, 100));
    SL_CHECK_INT(dlv_auth_wake_ms(a, 100), 100 + DLV_AUTH_BACKOFF_MIN_MS);
    SL_CHECK(dlv_auth_fetch_due(a, 100 + DLV_AUTH_BACKOFF_MIN_MS));

    SL_REQUIRE(dlv_auth_fetch_begin(a, 1000, &f, &err) == 0);
    const char *ok = "{\"access_token\":\"abc\",\"token_type\":\"bearer\",\"expires_in\":100}";
    SL_CHECK_INT(dlv_auth_fetch_done(a, 200, ok, strlen(ok), 1000, &err), 0);
    SL_CHECK(dlv_auth_header(a, 1000, h, sizeof(h), &gen));
    SL_CHECK_STR(h, "Authorization: Bearer abc");
    /* Refresh once a quarter of the lifetime is left (25 s of 100 s), using the old token
     * meanwhile; never after expiry. */
    SL_CHECK(!dlv_auth_fetch_due(a, 1000 + 74999));
    SL_CHECK(dlv_auth_fetch_due(a, 1000 + 75000));
    SL_CHECK(dlv_auth_header(a, 1000 + 99999, h, sizeof(h), &gen2));
    SL_CHECK(!dlv_auth_header(a, 1000 + 100000, h, sizeof(h), &gen2));

    /* A 401 with the current token drops it; a second 401 from the same burst costs nothing. */
    SL_REQUIRE(dlv_auth_fetch_begin(a, 2000, &f, &err) == 0);
    const char *next = "{\"access_token\":\"def\",\"expires_in\":3600}";
    SL_CHECK_INT(dlv_auth_fetch_done(a, 200, next, strlen(next), 2000, &err), 0);
    SL_CHECK(dlv_auth_header(a, 2000, h, sizeof(h), &gen));
    SL_CHECK(gen != gen2);
    SL_CHECK(dlv_auth_rejected(a, gen, 2100));
    SL_CHECK(dlv_auth_fetch_due(a, 2100));
    SL_CHECK(!dlv_auth_header(a, 2100, h, sizeof(h), &gen2));
    SL_CHECK(dlv_auth_rejected(a, gen, 2101));
    SL_CHECK(dlv_auth_fetch_due(a, 2101));

    /* Answers that are not a usable Bearer token. */
    const char *bad[] = {"{}", "{\"access_token\":\"has space\"}",
                         "{\"access_token\":\"x\",\"token_type\":\"mac\"}", "not json"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        SL_REQUIRE(dlv_auth_fetch_begin(a, 3000, &f, &err) == 0);
        SL_CHECK_INT(dlv_auth_fetch_done(a, 200, bad[i], strlen(bad[i]), 3000, &err), -1);
    }
    dlv_auth_destroy(a);
}

SL_TEST_MAIN()
