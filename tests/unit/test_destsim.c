/*
 * The destination simulator checked from outside, as the delivery tests will use it: a real
 * destsim process per test (through destsim_client), real HTTP requests with libcurl. No check
 * depends on how long something took; waits are bounded polls.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "destsim_client.h"
#include "sl_test.h"

#define HTTP_TIMEOUT_MS 10000
#define WAIT_MS         15000 /* bound of every "until" poll */

struct resp {
    CURLcode cc;
    long status;
    char body[4096];
    size_t len;
    char retry_after[128];
    char www_authenticate[128];
    char replayed[16];
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct resp *r = ud;
    size_t len = size * n, room = sizeof r->body - 1 - r->len;
    size_t take = len < room ? len : room;
    memcpy(r->body + r->len, p, take);
    r->len += take;
    r->body[r->len] = '\0';
    return len;
}

static void header_value(const char *line, size_t len, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);
    if (len <= n + 1 || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return;
    const char *v = line + n + 1;
    size_t vlen = len - n - 1;
    while (vlen && (*v == ' '))
        v++, vlen--;
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
        vlen--;
    snprintf(out, size, "%.*s", (int)vlen, v);
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct resp *r = ud;
    header_value(p, size * n, "Retry-After", r->retry_after, sizeof r->retry_after);
    header_value(p, size * n, "WWW-Authenticate", r->www_authenticate, sizeof r->www_authenticate);
    header_value(p, size * n, "Idempotent-Replayed", r->replayed, sizeof r->replayed);
    return size * n;
}

struct req {
    const char *method;      /* NULL: GET, or POST with a body */
    const char *body;        /* NULL: none */
    const char *headers[80]; /* "Name: value", NULL-terminated */
    long timeout_ms;         /* 0: HTTP_TIMEOUT_MS */
    const char *userpwd;     /* HTTP Basic */
};

static CURL *easy_new(const destsim_t *d, const char *path, const struct req *q, struct resp *r,
                      struct curl_slist **hl)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", destsim_url(d), path);
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    SL_REQUIRE(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, q->timeout_ms ? q->timeout_ms : HTTP_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_PRIVATE, r);
    if (q->body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body);
    if (q->method)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
    if (q->userpwd)
        curl_easy_setopt(c, CURLOPT_USERPWD, q->userpwd);
    *hl = NULL;
    for (size_t i = 0; q->headers[i]; i++)
        *hl = curl_slist_append(*hl, q->headers[i]);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hl);
    return c;
}

static void http(const destsim_t *d, const char *path, const struct req *q, struct resp *r)
{
    struct curl_slist *hl;
    CURL *c = easy_new(d, path, q, r, &hl);
    r->cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
}

/* The status of a POST of body with an optional extra header line. */
static long post(const destsim_t *d, const char *path, const char *body, const char *header)
{
    struct req q = {.body = body ? body : "{}", .headers = {header}};
    struct resp r;
    http(d, path, &q, &r);
    return r.cc == CURLE_OK ? r.status : -(long)r.cc;
}

static destsim_t *start(const char *const *args)
{
    struct sl_err err = {0};
    destsim_t *d = destsim_start(NULL, args, &err);
    if (!d)
        sl_test_fail(__FILE__, __LINE__, "destsim_start: %s", err.msg);
    SL_REQUIRE(d);
    return d;
}

static json_t *stats(destsim_t *d)
{
    struct sl_err err = {0};
    json_t *st = destsim_stats(d, &err);
    if (!st)
        sl_test_fail(__FILE__, __LINE__, "destsim_stats: %s", err.msg);
    SL_REQUIRE(st);
    return st;
}

/* An integer at a JSON Pointer-like path of plain keys ("oauth", "tokens_issued"). */
static long long jint(json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(o, a);
    if (b)
        v = json_object_get(v, b);
    return json_integer_value(v);
}

/* Polls the counters until field (top level) reaches want; returns the last value. */
static long long wait_counter(destsim_t *d, const char *field, long long want)
{
    long long v = -1;
    for (int waited = 0; waited < WAIT_MS; waited += 20) {
        struct sl_err err = {0};
        json_t *c = destsim_counters(d, &err);
        v = c ? jint(c, field, NULL) : -1;
        json_decref(c);
        if (v == want)
            break;
        usleep(20 * 1000);
    }
    return v;
}

SL_TEST(answers_200_without_rules_and_records_the_request)
{
    destsim_t *d = start(NULL);
    SL_CHECK_INT(post(d, "/hook", "{\"a\":1}", "Idempotency-Key: k1"), 200);
    json_t *st = stats(d);
    SL_CHECK_INT(jint(st, "requests_total", NULL), 1);
    SL_CHECK_INT(jint(st, "by_status", "200"), 1);
    json_t *k = json_object_get(json_object_get(st, "keys"), "k1");
    SL_CHECK_INT(jint(k, "requests", NULL), 1);
    SL_CHECK_INT(jint(k, "2xx", NULL), 1);
    json_t *reqs = json_object_get(st, "requests");
    SL_REQUIRE(json_array_size(reqs) == 1);
    json_t *r0 = json_array_get(reqs, 0);
    SL_CHECK_STR(json_string_value(json_object_get(r0, "method")), "POST");
    SL_CHECK_STR(json_string_value(json_object_get(r0, "path")), "/hook");
    SL_CHECK_STR(json_string_value(json_object_get(r0, "body")), "{\"a\":1}");
    SL_CHECK_STR(
        json_string_value(json_object_get(json_object_get(r0, "headers"), "Idempotency-Key")),
        "k1");
    SL_CHECK_STR(json_string_value(json_object_get(r0, "action")), "reply");
    SL_CHECK_INT(jint(st, "requests_kept_max", NULL), 10000);
    SL_CHECK_INT(jint(st, "requests_dropped", NULL), 0);
    json_decref(st);
    SL_CHECK_INT(destsim_stop(d), 0);
}

SL_TEST(first_two_get_500_then_200)
{
    const char *args[] = {"--rule", "status=500 times=2", "--rule", "status=200", NULL};
    destsim_t *d = start(args);
    SL_CHECK_INT(post(d, "/x", NULL, NULL), 500);
    SL_CHECK_INT(post(d, "/x", NULL, NULL), 500);
    SL_CHECK_INT(post(d, "/x", NULL, NULL), 200);
    SL_CHECK_INT(post(d, "/x", NULL, NULL), 200);
    json_t *st = stats(d);
    SL_CHECK_INT(jint(st, "by_status", "500"), 2);
    SL_CHECK_INT(jint(st, "by_status", "200"), 2);
    json_t *rule0 = json_array_get(json_object_get(st, "rules"), 0);
    SL_CHECK_STR(json_string_value(json_object_get(rule0, "rule")), "status=500 times=2");
    SL_CHECK_INT(jint(rule0, "matched", NULL), 2);
    json_decref(st);
    SL_CHECK_INT(destsim_stop(d), 0);
}

SL_TEST(retry_after_in_seconds_and_as_http_date)
{
    const char *args[] = {"--rule", "path=/s status=429 retry_after=2", "--rule",
                          "path=/d status=503 retry_after_date=3", NULL};
    destsim_t *d = start(args);
    struct req q = {.body = "{}"};
    struct resp r;
    http(d, "/s", &q, &r);
    SL_CHECK_INT(r.status, 429);
    SL_CHECK_STR(r.retry_after, "2");

    time_t before = time(NULL);
    http(d, "/d", &q, &r);
    time_t after = time(NULL);
    SL_CHECK_INT(r.status, 503);
    time_t at = curl_getdate(r.retry_after, NULL);
    /* destsim answered between before and after (same clock, whole seconds), 3 s ahead. */
    SL_CHECK(at >= before + 3);
    SL_CHECK(at <= after + 3);
    SL_CHECK_CONTAINS(r.retry_after, " GMT");
    SL_CHECK_INT(destsim_stop(d), 0);
}

SL_TEST(a_slow_answer_does_not_block_others_on_one_thread)
{
    const char *args[] = {
        "--threads", "1",          "--rule", "path=/slow delay_ms=3000 status=200",
        "--rule",    "status=201", NULL};
    destsim_t *d = start(args);
    struct req q = {.body = "{}"};
    struct resp slow, fast;
    struct curl_slist *hl_slow, *hl_fast;
    CURLM *m = curl_multi_init();
    CURL *cs = easy_new(d, "/slow", &q, &slow, &hl_slow);
    CURL *cf = easy_new(d, "/fast", &q, &fast, &hl_fast);
    curl_multi_add_handle(m, cs);
    int running = 1;
    /* The fast request starts only once destsim holds the slow one. */
    long long pending = 0;
    for (int waited = 0; pending != 1 && waited < WAIT_MS; waited += 20) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 20, NULL);
        json_t *c = destsim_counters(d, NULL);
        pending = c ? jint(c, "pending", NULL) : 0;
        json_decref(c);
    }
    SL_CHECK_INT(pending, 1);
    curl_multi_add_handle(m, cf);
    CURL *done[2] = {NULL, NULL};
    int n_done = 0;
    for (int loops = 0; n_done < 2 && loops < 2 * WAIT_MS / 20; loops++) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)))
            if (msg->msg == CURLMSG_DONE && n_done < 2)
                done[n_done++] = msg->easy_handle;
        if (n_done < 2)
            curl_multi_poll(m, NULL, 0, 20, NULL);
    }
    SL_CHECK_INT(n_done, 2);
    SL_CHECK(done[0] == cf);
    SL_CHECK(done[1] == cs);
    curl_easy_getinfo(cf, CURLINFO_RESPONSE_CODE, &fast.status);
    curl_easy_getinfo(cs, CURLINFO_RESPONSE_CODE, &slow.status);
    SL_CHECK_INT(fast.status, 201);
    SL_CHECK_INT(slow.status, 200);
    curl_multi_remove_handle(m, cs);
    curl_multi_remove_handle(m, cf);
    curl_easy_cleanup(cs);
    curl_easy_cleanup(cf);
    curl_slist_free_all(hl_slow);
    curl_slist_free_all(hl_fast);
    curl_multi_cleanup(m);
    SL_CHECK_INT(wait_counter(d, "pending", 0), 0);
    SL_CHECK_INT(destsim_stop(d), 0);
}

SL_TEST(hang_until_the_client_gives_up)
{
    const char *args[] = {"--rule", "path=/hang hang", NULL};
    destsim_t *d = start(args);
    struct req q = {.body = "{}", .timeout_ms = 300};
    struct resp r;
    http(d, "/hang", &q, &r);
    SL_CHECK_INT(r.cc, CURLE_OPERATION_TIMEDOUT);
    json_t *c = destsim_counters(d, NULL);
    SL_CHECK_INT(jint(c, "hung", NULL), 1);
    SL_CHECK_INT(jint(c, "pending", NULL), 1);
    json_decref(c);
    SL_CHECK_INT(post(d, "/other", NULL, NULL), 200);
    /* A clean stop with a request still held. */
    SL_CHECK_INT(destsim_stop(d), 0);
}

SL_TEST(close_without_an_answer)
{
    const char *args[] = {"--rule", "path=/now close", "--rule", "path=/later delay_ms=50 close",
                          NULL};
    destsim_t *d = start(args);
    SL_CHECK_INT(post(d, "/now", NULL, NULL), -(long)CURLE_GOT_NOTHING);
    SL_CHECK_INT(post(d, "/later", NULL, NULL), -(long)CURLE_GOT_NOTHING);
    SL_CHECK_INT(post(d, "/fine", NULL, NULL), 200);
    json_t *c = destsim_counters(d, NULL);
    SL_CHECK_INT(jint(c, "closed", NULL), 2);
    SL_CHECK_INT(jint(c, "requests_total", NULL), 3);
    json_decref(c);
    SL_CHECK_INT(destsim_stop(d), 0);
}

/* POST /_sim/oauth/token; returns the status and copies the token out on 200. */
static long token(destsim_t *d, const char *form, const char *userpwd, char *out, size_t size)
{
    struct req q = {.body = form, .userpwd = userpwd};
    struct resp r;
    http(d, "/_sim/oauth/token", &q, &r);
    if (r.status == 200) {
        json_t *j = json_loads(r.body, 0, NULL);
        SL_CHECK_STR(json_string_value(json_object_get(j, "token_type")), "Bearer");
        SL_CHECK_INT(jint(j, "expires_in", NULL), 60);
        const char *t = json_string_value(json_object_get(j, "access_token"));
        SL_CHECK(t && strlen(t) == 64);
        snprintf(out, size, "Authorization: Bearer %s", t ? t : "");
        json_decref(j);
    }
    return r.status;
}

SL_TEST(oauth_client_credentials_require_bearer_and_revoke)
{
    const char *args[] = {"--oauth-client",   "app:s3cret", "--oauth-ttl", "60",
                          "--require-bearer", NULL};
    destsim_t *d = start(args);
    char auth1[128], auth2[128], auth3[128];
    struct req q = {.body = "{}"};
    struct resp r;
    http(d, "/x", &q, &r);
    SL_CHECK_INT(r.status, 401);
    SL_CHECK_CONTAINS(r.www_authenticate, "Bearer");

    SL_CHECK_INT(token(d, "grant_type=client_credentials&client_id=app&client_secret=nope", NULL,
                       auth1, sizeof auth1),
                 401);
    SL_CHECK_INT(token(d, "grant_type=password&client_id=app&client_secret=s3cret", NULL, auth1,
                       sizeof auth1),
                 400);
    SL_CHECK_INT(token(d, "grant_type=client_credentials&client_id=app&client_secret=s3cret", NULL,
                       auth1, sizeof auth1),
                 200);
    SL_CHECK_INT(post(d, "/x", NULL, auth1), 200);
    SL_CHECK_INT(token(d, "grant_type=client_credentials", "app:s3cret", auth2, sizeof auth2), 200);
    SL_CHECK_INT(post(d, "/x", NULL, auth2), 200);

    struct sl_err err = {0};
    struct req revoke = {.body = ""};
    http(d, "/_sim/oauth/revoke", &revoke, &r);
    SL_CHECK_INT(r.status, 200);
    SL_CHECK_INT(post(d, "/x", NULL, auth1), 401);
    SL_CHECK_INT(token(d, "grant_type=client_credentials&client_id=app&client_secret=s3cret", NULL,
                       auth3, sizeof auth3),
                 200);
    SL_CHECK_INT(post(d, "/x", NULL, auth3), 200);

    json_t *st = destsim_stats(d, &err);
    SL_REQUIRE(st);
    SL_CHECK_INT(jint(st, "oauth", "token_requests"), 5);
    SL_CHECK_INT(jint(st, "oauth", "tokens_issued"), 3);
    SL_CHECK_INT(jint(st, "oauth", "token_rejected"), 2);
    SL_CHECK_INT(jint(st, "oauth", "revocations"), 1);
    SL_CHECK_INT(jint(st, "oauth", "unauthorized"), 2);
    SL_CHECK_INT(jint(st, "by_status", "401"), 2);
    SL_CHECK_INT(jint(st, "by_status", "200"), 3);
    json_decref(st);
    SL_CHECK_INT(destsim_stop(d), 0);
}

SL_TEST(oauth_tokens_expire_after_their_ttl)
{
    const char *args[] = {"--oauth-client",   "app:s3cret", "--oauth-ttl", "1",
                          "--require-bearer", NULL};
    destsim_t *d = start(args);
    struct req q = {.body = "grant_type=client_credentials&client_id=app&client_secret=s3cret"};
    struct resp r;
    http(d, "/_sim/oauth/token", &q, &r);
    SL_REQUIRE(r.status == 200);
    json_t *j = json_loads(r.body, 0, NULL);
    char auth[128];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s",
             json_string_value(json_object_get(j, "access_token")));
    json_decref(j);
    long status = 0;
    for (int waited = 0; status != 401 && waited < WAIT_MS; waited += 100) {
        status = post(d, "/x", NULL, auth);
        usleep(100 * 1000);
    }
    SL_CHECK_INT(status, 401);
    SL_CHECK_INT(destsim_stop(d), 0);
}

SL_TEST(counts_requests_and_2xx_per_idempotency_key)
{
    const char *args[] = {"--rule", "key=k1 status=500 times=1", NULL};
    destsim_t *d = start(args);
    SL_CHECK_INT(post(d, "/x", NULL, "Idempotency-Key: k1"), 500);
    SL_CHECK_INT(post(d, "/x", NULL, "Idempotency-Key: k1"), 200);
    SL_CHECK_INT(post(d, "/x", NULL, "Idempotency-Key: k2"), 200);
    SL_CHECK_INT(post(d, "/x", NULL, NULL), 200);
    json_t *st = stats(d);
    json_t *keys = json_object_get(st, "keys");
    SL_CHECK_INT(json_object_size(keys), 2);
    SL_CHECK_INT(jint(json_object_get(keys, "k1"), "requests", NULL), 2);
    SL_CHECK_INT(jint(json_object_get(keys, "k1"), "2xx", NULL), 1);
    SL_CHECK_INT(jint(json_object_get(keys, "k2"), "requests", NULL), 1);
    SL_CHECK_INT(jint(json_object_get(keys, "k2"), "2xx", NULL), 1);
    SL_CHECK_INT(jint(st, "requests_total", NULL), 4);
    /* Without --idempotency nothing is stored or replayed. */
    SL_CHECK(!json_object_get(json_object_get(keys, "k1"), "effects"));
    SL_CHECK(!json_object_get(st, "idempotency"));
    json_decref(st);
    SL_CHECK_INT(destsim_stop(d), 0);
}

/* One POST with an Idempotency-Key; the answer into *r. */
static void post_key(destsim_t *d, const char *key, struct resp *r)
{
    char header[128];
    snprintf(header, sizeof header, "Idempotency-Key: %s", key);
    http(d, "/x", &(struct req){.body = "{}", .headers = {header}}, r);
    SL_CHECK_INT(r->cc, CURLE_OK);
}

SL_TEST(idempotency_performs_each_key_once_and_replays_its_answer)
{
    const char *args[] = {"--idempotency",
                          "--rule",
                          "key=k1 status=503 times=1",
                          "--rule",
                          "key=k2 status=201 body=made",
                          NULL};
    destsim_t *d = start(args);
    struct resp r;
    post_key(d, "k1", &r); /* not a 2xx: not stored, the client may try again */
    SL_CHECK_INT(r.status, 503);
    SL_CHECK_STR(r.replayed, "");
    post_key(d, "k1", &r); /* the action */
    SL_CHECK_INT(r.status, 200);
    SL_CHECK_STR(r.replayed, "");
    post_key(d, "k1", &r); /* the stored answer */
    SL_CHECK_INT(r.status, 200);
    SL_CHECK_STR(r.replayed, "true");
    post_key(d, "k2", &r);
    SL_CHECK_INT(r.status, 201);
    SL_CHECK_STR(r.body, "made");
    SL_CHECK_STR(r.replayed, "");

    /* Rules that would now answer 500 are not consulted for a stored answer. */
    struct sl_err err = {0};
    SL_REQUIRE(destsim_set_rules(d, "status=500", &err) == 0);
    post_key(d, "k2", &r);
    SL_CHECK_INT(r.status, 201);
    SL_CHECK_STR(r.body, "made");
    SL_CHECK_STR(r.replayed, "true");
    post_key(d, "k1", &r);
    SL_CHECK_INT(r.status, 200);
    SL_CHECK_STR(r.replayed, "true");
    post_key(d, "k3", &r);
    SL_CHECK_INT(r.status, 500);
    SL_CHECK_STR(r.replayed, "");

    json_t *st = stats(d);
    json_t *keys = json_object_get(st, "keys");
    json_t *k1 = json_object_get(keys, "k1"), *k2 = json_object_get(keys, "k2"),
           *k3 = json_object_get(keys, "k3");
    SL_CHECK_INT(jint(k1, "requests", NULL), 4);
    SL_CHECK_INT(jint(k1, "2xx", NULL), 3);
    SL_CHECK_INT(jint(k1, "effects", NULL), 1);
    SL_CHECK_INT(jint(k1, "replayed", NULL), 2);
    SL_CHECK_INT(jint(k1, "answer", "status"), 200);
    SL_CHECK_INT(jint(k2, "requests", NULL), 2);
    SL_CHECK_INT(jint(k2, "effects", NULL), 1);
    SL_CHECK_INT(jint(k2, "replayed", NULL), 1);
    SL_CHECK_INT(jint(k3, "effects", NULL), 0);
    SL_CHECK_INT(jint(k3, "replayed", NULL), 0);
    SL_CHECK_INT(jint(st, "idempotency", "effects"), 2);
    SL_CHECK_INT(jint(st, "idempotency", "replayed"), 3);
    json_t *reqs = json_object_get(st, "requests");
    SL_REQUIRE(json_array_size(reqs) == 7);
    SL_CHECK(!json_object_get(json_array_get(reqs, 1), "replayed"));
    SL_CHECK(json_is_true(json_object_get(json_array_get(reqs, 2), "replayed")));
    json_decref(st);

    /* A reset forgets the stored answers: the next request of k1 is decided by the rules. */
    SL_REQUIRE(destsim_reset(d, &err) == 0);
    post_key(d, "k1", &r);
    SL_CHECK_INT(r.status, 500);
    SL_CHECK_STR(r.replayed, "");
    SL_CHECK_INT(destsim_stop(d), 0);
}

SL_TEST(drop_cuts_the_answer_after_its_effect)
{
    const char *args[] = {"--idempotency", "--rule", "key=k1 status=200 drop times=1", NULL};
    destsim_t *d = start(args);
    /* The status line and half the body came, then the connection was cut. */
    SL_CHECK_INT(post(d, "/x", NULL, "Idempotency-Key: k1"), -(long)CURLE_PARTIAL_FILE);
    /* The action was performed all the same: the client's retry gets the stored answer. */
    struct resp r;
    post_key(d, "k1", &r);
    SL_CHECK_INT(r.status, 200);
    SL_CHECK_STR(r.replayed, "true");
    json_t *st = stats(d);
    json_t *k1 = json_object_get(json_object_get(st, "keys"), "k1");
    SL_CHECK_INT(jint(k1, "requests", NULL), 2);
    SL_CHECK_INT(jint(k1, "effects", NULL), 1);
    SL_CHECK(json_is_true(
        json_object_get(json_array_get(json_object_get(st, "requests"), 0), "dropped")));
    json_decref(st);
    const char *bad[] = {"hang drop", "close drop", NULL};
    for (size_t i = 0; bad[i]; i++) {
        struct sl_err err = {0};
        SL_CHECK(destsim_set_rules(d, bad[i], &err) != 0);
    }
    SL_CHECK_INT(destsim_stop(d), 0);
}

SL_TEST(rules_replaced_at_run_time_and_stats_reset)
{
    const char *args[] = {"--rule", "status=200", NULL};
    destsim_t *d = start(args);
    struct sl_err err = {0};
    SL_CHECK_INT(post(d, "/x", NULL, NULL), 200);
    SL_CHECK_INT(destsim_set_rules(d, "status=418\n", &err), 0);
    SL_CHECK_INT(post(d, "/x", NULL, NULL), 418);
    SL_CHECK_INT(destsim_set_rules(d, "status=500\nbogus\n", &err), -1);
    SL_CHECK_CONTAINS(err.msg, "rules:2");
    SL_CHECK_CONTAINS(err.msg, "unknown word 'bogus'");
    SL_CHECK_INT(post(d, "/x", NULL, NULL), 418); /* the old rules stayed */
    SL_CHECK_INT(destsim_set_rules(d, "# a comment\n\n  status=500 times=1\r\nstatus=202", &err),
                 0);
    SL_CHECK_INT(post(d, "/x", NULL, NULL), 500);
    SL_CHECK_INT(post(d, "/x", NULL, NULL), 202);
    SL_CHECK_INT(destsim_reset(d, &err), 0);
    json_t *st = stats(d);
    SL_CHECK_INT(jint(st, "requests_total", NULL), 0);
    SL_CHECK_INT(json_object_size(json_object_get(st, "by_status")), 0);
    SL_CHECK_INT(json_array_size(json_object_get(st, "requests")), 0);
    json_decref(st);
    SL_CHECK_INT(destsim_stop(d), 0);
}

SL_TEST(matchers_on_path_method_header_and_json_field)
{
    const char *args[] = {"--rule", "header:Authorization=\"Bearer abc\" status=401",
                          "--rule", "json:/customer=bad status=400",
                          "--rule", "json:/n=3 status=422",
                          "--rule", "path=/api/* method=PUT status=409 body=\"no, not here\"",
                          NULL};
    destsim_t *d = start(args);
    SL_CHECK_INT(post(d, "/x", NULL, "Authorization: Bearer abc"), 401);
    SL_CHECK_INT(post(d, "/x", NULL, "Authorization: Bearer abd"), 200);
    SL_CHECK_INT(post(d, "/x", "{\"customer\":\"bad\"}", NULL), 400);
    SL_CHECK_INT(post(d, "/x", "{\"customer\":\"good\"}", NULL), 200);
    SL_CHECK_INT(post(d, "/x", "{\"n\":3}", NULL), 422);
    SL_CHECK_INT(post(d, "/x", "not json", NULL), 200);
    struct req put = {.method = "PUT", .body = "{}"};
    struct resp r;
    http(d, "/api/v1/things", &put, &r);
    SL_CHECK_INT(r.status, 409);
    SL_CHECK_STR(r.body, "no, not here");
    SL_CHECK_INT(post(d, "/api/v1/things", NULL, NULL), 200);
    SL_CHECK_INT(destsim_stop(d), 0);
}

SL_TEST(order_of_arrival_per_ordering_key)
{
    const char *args[] = {"--order-pointer", "/customer", "--rule",
                          "json:/customer=B status=500 times=1", NULL};
    destsim_t *d = start(args);
    SL_CHECK_INT(post(d, "/x", "{\"customer\":\"A\",\"n\":1}", "Idempotency-Key: a1"), 200);
    SL_CHECK_INT(post(d, "/x", "{\"customer\":\"B\",\"n\":1}", "Idempotency-Key: b1"), 500);
    SL_CHECK_INT(post(d, "/x", "{\"customer\":\"A\",\"n\":2}", "Idempotency-Key: a2"), 200);
    SL_CHECK_INT(post(d, "/x", "{\"customer\":\"B\",\"n\":1}", "Idempotency-Key: b1"), 200);
    json_t *st = stats(d);
    json_t *a = json_object_get(json_object_get(st, "order"), "A");
    json_t *b = json_object_get(json_object_get(st, "order"), "B");
    SL_REQUIRE(json_array_size(a) == 2 && json_array_size(b) == 2);
    SL_CHECK_STR(json_string_value(json_object_get(json_array_get(a, 0), "key")), "a1");
    SL_CHECK_STR(json_string_value(json_object_get(json_array_get(a, 1), "key")), "a2");
    SL_CHECK_STR(json_string_value(json_object_get(json_array_get(a, 1), "body")),
                 "{\"customer\":\"A\",\"n\":2}");
    SL_CHECK_INT(jint(json_array_get(b, 0), "status", NULL), 500);
    SL_CHECK_INT(jint(json_array_get(b, 1), "status", NULL), 200);
    SL_CHECK_INT(jint(st, "order_dropped", NULL), 0);
    json_decref(st);
    SL_CHECK_INT(destsim_stop(d), 0);
}

SL_TEST(order_key_from_a_header_and_rules_from_a_script)
{
    char script[] = "/tmp/destsim-script.XXXXXX";
    int fd = mkstemp(script);
    SL_REQUIRE(fd >= 0);
    const char text[] = "# the first answer per key fails\npath=/x status=503 times=1\n";
    SL_REQUIRE(write(fd, text, sizeof text - 1) == (ssize_t)(sizeof text - 1));
    close(fd);
    const char *args[] = {"--order-header", "X-Order-Key", "--script", script, NULL};
    destsim_t *d = start(args);
    SL_CHECK_INT(post(d, "/x", NULL, "X-Order-Key: c1"), 503);
    SL_CHECK_INT(post(d, "/x", NULL, "X-Order-Key: c1"), 200);
    json_t *st = stats(d);
    SL_CHECK_INT(json_array_size(json_object_get(json_object_get(st, "order"), "c1")), 2);
    json_decref(st);
    SL_CHECK_INT(destsim_stop(d), 0);
    unlink(script);
}

SL_TEST(bounds_on_body_size_and_header_count)
{
    const char *args[] = {"--max-body", "16", NULL};
    destsim_t *d = start(args);
    SL_CHECK_INT(post(d, "/x", "0123456789abcdef", NULL), 200);
    SL_CHECK_INT(post(d, "/x", "0123456789abcdefg", NULL), 413);
    /* Without Content-Length the bound is found while reading. */
    SL_CHECK_INT(post(d, "/x", "0123456789abcdefg", "Transfer-Encoding: chunked"), 413);
    struct req many = {.body = "{}"};
    char lines[70][32];
    for (int i = 0; i < 70; i++) {
        snprintf(lines[i], sizeof lines[i], "X-Filler-%d: %d", i, i);
        many.headers[i] = lines[i];
    }
    struct resp r;
    http(d, "/x", &many, &r);
    SL_CHECK_INT(r.status, 431);
    json_t *st = stats(d);
    SL_CHECK_INT(jint(st, "by_status", "413"), 2);
    SL_CHECK_INT(jint(st, "by_status", "431"), 1);
    json_decref(st);
    SL_CHECK_INT(destsim_stop(d), 0);
}

SL_TEST(peak_rate_windows_are_reported)
{
    destsim_t *d = start(NULL);
    for (int i = 0; i < 5; i++)
        SL_CHECK_INT(post(d, "/x", NULL, NULL), 200);
    json_t *st = stats(d);
    long long p1 = jint(st, "peak_rps_1s", NULL), p100 = jint(st, "peak_per_100ms", NULL);
    SL_CHECK(p1 >= 1 && p1 <= 5);
    SL_CHECK(p100 >= 1 && p100 <= p1);
    json_decref(st);
    SL_CHECK_INT(destsim_stop(d), 0);
}

SL_TEST(a_bad_rule_stops_start_up_with_a_reason)
{
    const char *args[] = {"--rule", "status=700", NULL};
    struct sl_err err = {0};
    destsim_t *d = destsim_start(NULL, args, &err);
    SL_CHECK(d == NULL);
    SL_CHECK_CONTAINS(err.msg, "exited (2)");
    destsim_stop(d);
}

SL_TEST_MAIN()
