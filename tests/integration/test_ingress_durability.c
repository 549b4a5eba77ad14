/*
 * test_ingress_durability: the promises of sluice-ingress that involve Kafka's state and load.
 *   - broker down: requests get 503 with Retry-After and a JSON body, never 202, /readyz is not
 *     ready, and nothing of them appears later; broker back: 202 again from the same process;
 *   - load: thousands of requests from concurrent clients; every 202 id is in the topic exactly
 *     once, and the topic holds nothing else;
 *   - SIGTERM with requests in flight: each is answered, a request on an idle keep-alive
 *     connection gets 503 shutting_down, new connections are refused, exit status 0.
 * Behaviour only: waits are bounded, nothing asserts how fast.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "ingress_harness.h"
#include "sl_test.h"
#include "sl_testenv.h"

#define SOURCES                                                                                    \
    "sources:\n"                                                                                   \
    "  open:\n"                                                                                    \
    "    verify: { scheme: none }\n"                                                               \
    "    event_type: /type\n"                                                                      \
    "    partition_key: /key\n"

static const char *json_hdrs[] = {"Content-Type: application/json", NULL};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long post(const harness_t *h, const char *body, struct http_reply *r)
{
    return http_request(harness_port(h), "POST", "/v1/events/open", json_hdrs, body, strlen(body),
                        r);
}

/* Polls /readyz until it answers `want` (bounded); returns the last status. */
static long wait_ready(const harness_t *h, long want, int timeout_ms, struct http_reply *r)
{
    long status = -1;
    for (int waited = 0; waited <= timeout_ms; waited += 200) {
        status = http_request(harness_admin_port(h), "GET", "/readyz", NULL, NULL, 0, r);
        if (status == want)
            break;
        sleep_ms(200);
    }
    return status;
}

static bool has_id(char (*ids)[64], size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return true;
    return false;
}

/* ---- concurrent clients ---- */

struct transfer {
    char body[128];
    struct http_reply reply;
    struct curl_slist *hdrs;
};

struct client {
    int port;
    struct transfer *t; /* this client's requests */
    size_t n, parallel;
};

static CURL *start_transfer(CURLM *multi, int port, struct transfer *t)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/events/open", port);
    CURL *c = curl_easy_init();
    t->hdrs =
        curl_slist_append(curl_slist_append(NULL, "Content-Type: application/json"), "Expect:");
    t->reply.status = -1;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, t->hdrs);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, t->body);
    http_capture(c, &t->reply);
    curl_easy_setopt(c, CURLOPT_PRIVATE, t);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)HARNESS_HTTP_TIMEOUT_MS);
    curl_multi_add_handle(multi, c);
    return c;
}

/* Runs the client's requests, `parallel` at a time, on one multi handle (keep-alive reused). */
static void *client_main(void *arg)
{
    struct client *cl = arg;
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)cl->parallel);
    size_t next = 0, done = 0;
    int running = 0;
    while (next < cl->n && next < cl->parallel)
        start_transfer(multi, cl->port, &cl->t[next++]);
    while (done < cl->n) {
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct transfer *t;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
            if (msg->data.result == CURLE_OK)
                curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &t->reply.status);
            curl_multi_remove_handle(multi, msg->easy_handle);
            curl_easy_cleanup(msg->easy_handle);
            curl_slist_free_all(t->hdrs);
            done++;
            if (next < cl->n)
                start_transfer(multi, cl->port, &cl->t[next++]);
        }
        if (done < cl->n)
            curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    curl_multi_cleanup(multi);
    return NULL;
}

/* Sends every transfer from `clients` threads, `parallel` each; returns when all are done. */
static void run_clients(int port, struct transfer *t, size_t n, size_t clients, size_t parallel)
{
    pthread_t th[16];
    struct client cl[16];
    size_t per = n / clients;
    for (size_t i = 0; i < clients; i++) {
        cl[i] = (struct client){port, t + i * per, i + 1 == clients ? n - i * per : per, parallel};
        pthread_create(&th[i], NULL, client_main, &cl[i]);
    }
    for (size_t i = 0; i < clients; i++)
        pthread_join(th[i], NULL);
}

/* ---- tests ---- */

SL_TEST(broker_down_gives_503_and_recovers_without_restart)
{
    harness_t *h = harness_start("    request_timeout: 3s\n", SOURCES);
    struct http_reply r;
    static char ids[256][64];
    size_t n_ids = 0;
    SL_CHECK_INT(post(h, "{\"type\":\"before\",\"key\":\"k\"}", &r), 202);
    SL_REQUIRE(http_accepted_id(&r, ids[n_ids++], sizeof(ids[0])));

    SL_REQUIRE(sl_testenv_broker("stop") == 0);
    if (sl_testenv_broker("status") == 0) {
        sl_test_fail(__FILE__, __LINE__, "a broker still answers: not the fixture's own");
        harness_destroy(h);
        return;
    }
    /* While it is down: 503 + Retry-After + JSON, for several requests at once. */
    enum { DOWN = 6 };
    static struct transfer down[DOWN];
    for (int i = 0; i < DOWN; i++)
        snprintf(down[i].body, sizeof(down[i].body),
                 "{\"type\":\"down\",\"key\":\"k\",\"marker\":\"DOWN-%d\"}", i);
    run_clients(harness_port(h), down, DOWN, 2, DOWN / 2);
    for (int i = 0; i < DOWN; i++) {
        SL_CHECK_INT(down[i].reply.status, 503);
        http_check_error(&down[i].reply, "kafka_unavailable", "broker down");
    }
    SL_CHECK_INT(post(h, "{\"type\":\"down\",\"key\":\"k\",\"marker\":\"DOWN-x\"}", &r), 503);
    SL_CHECK_STR(r.retry_after, "5");
    http_check_error(&r, "kafka_unavailable", "broker down, single");
    SL_CHECK_INT(wait_ready(h, 503, 30000, &r), 503);
    SL_CHECK_CONTAINS(r.body, "Kafka unreachable");

    /* Back up: the same process takes requests again. Attempts made while the producer
     * reconnects may still get 503; they are marked, so the topic check below can tell. */
    int started = sl_testenv_broker("start");
    SL_REQUIRE(started == 0);
    bool recovered = false;
    for (int attempt = 0; attempt < 180 && !recovered; attempt++) {
        char body[128];
        snprintf(body, sizeof(body), "{\"type\":\"after\",\"key\":\"k\",\"marker\":\"AFTER-%d\"}",
                 attempt);
        long status = post(h, body, &r);
        SL_CHECK(status == 202 || status == 503);
        if (status == 202) {
            recovered = http_accepted_id(&r, ids[n_ids++], sizeof(ids[0]));
        } else {
            sleep_ms(500);
        }
    }
    SL_REQUIRE(recovered);
    for (int i = 0; i < 5; i++) {
        SL_CHECK_INT(post(h, "{\"type\":\"after\",\"key\":\"k\"}", &r), 202);
        SL_CHECK(http_accepted_id(&r, ids[n_ids++], sizeof(ids[0])));
    }
    SL_CHECK_INT(wait_ready(h, 200, 30000, &r), 200);

    /* Every 202 is in the topic once; nothing answered 503 while the broker was down is. */
    struct records recs;
    harness_read_topic(harness_topic(h), 512, n_ids, 60000, 3000, &recs);
    size_t n = recs.n;
    size_t found = 0;
    for (size_t i = 0; i < n; i++) {
        char id[128];
        const char *v = record_header(recs.m[i], "ce_id", id, sizeof(id));
        SL_CHECK(!memmem(recs.m[i]->payload, recs.m[i]->len, "DOWN-", 5));
        if (v && has_id(ids, n_ids, v))
            found++;
        else /* a retry answered 503 during the reconnection may have landed: at-least-once */
            SL_CHECK(memmem(recs.m[i]->payload, recs.m[i]->len, "AFTER-", 6) != NULL);
    }
    records_free(&recs);
    SL_CHECK_INT(found, n_ids);
    SL_CHECK_INT(harness_signal_and_wait(h, SIGTERM), 0);
    harness_destroy(h);
}

static int by_string(const void *a, const void *b)
{
    return strcmp(a, b);
}

SL_TEST(every_202_under_load_is_in_the_topic_exactly_once)
{
    harness_t *h = harness_start("    request_timeout: 20s\n", SOURCES);
    enum { N = 3000, CLIENTS = 4, PARALLEL = 16 };
    struct transfer *t = calloc(N, sizeof(*t));
    SL_REQUIRE(t);
    for (int i = 0; i < N; i++)
        snprintf(t[i].body, sizeof(t[i].body), "{\"type\":\"load\",\"key\":\"k%d\",\"seq\":%d}",
                 i % 97, i);
    run_clients(harness_port(h), t, N, CLIENTS, PARALLEL);

    char(*ids)[64] = calloc(N, sizeof(*ids));
    SL_REQUIRE(ids);
    size_t accepted = 0, other = 0;
    for (int i = 0; i < N; i++) {
        if (t[i].reply.status == 202 && http_accepted_id(&t[i].reply, ids[accepted], 64))
            accepted++;
        else
            other++;
    }
    SL_CHECK_INT(other, 0);
    qsort(ids, accepted, sizeof(*ids), by_string);

    struct records recs;
    harness_read_topic(harness_topic(h), N + 100, accepted, 120000, 3000, &recs);
    size_t n = recs.n;
    SL_CHECK_INT(n, accepted);
    unsigned char *seen = calloc(accepted ? accepted : 1, 1);
    size_t dup = 0, unknown = 0;
    for (size_t i = 0; i < n; i++) {
        char id[128];
        const char *v = record_header(recs.m[i], "ce_id", id, sizeof(id));
        char(*hit)[64] = v ? bsearch(v, ids, accepted, sizeof(*ids), by_string) : NULL;
        if (!hit)
            unknown++;
        else if (seen[hit - ids]++)
            dup++;
    }
    records_free(&recs);
    size_t missing = 0;
    for (size_t i = 0; i < accepted; i++)
        missing += !seen[i];
    SL_CHECK_INT(dup, 0);
    SL_CHECK_INT(unknown, 0);
    SL_CHECK_INT(missing, 0);
    printf("    %zu requests, %zu accepted, %zu records\n", (size_t)N, accepted, n);
    free(seen);
    free(ids);
    free(t);
    SL_CHECK_INT(harness_signal_and_wait(h, SIGTERM), 0);
    harness_destroy(h);
}

SL_TEST(sigterm_answers_every_request_in_flight_and_exits_0)
{
    harness_t *h = harness_start("    request_timeout: 10s\n    read_timeout: 30s\n"
                                 "    idle_timeout: 30s\n",
                                 SOURCES);
    enum { K = 8 };
    int fd[K];
    char head[256], rest[128];
    const char *body = "{\"type\":\"in-flight\",\"key\":\"k\",\"pad\":\"0123456789\"}";
    size_t half = strlen(body) / 2;
    /* K requests whose headers and half their body are in: in flight for the server. */
    for (int i = 0; i < K; i++) {
        fd[i] = raw_connect(harness_port(h));
        SL_REQUIRE(fd[i] >= 0);
        snprintf(head, sizeof(head),
                 "POST /v1/events/open HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\n\r\n%.*s",
                 strlen(body), (int)half, body);
        SL_REQUIRE(raw_send(fd[i], head, strlen(head)));
    }
    /* An idle keep-alive connection that has had one request. */
    int idle = raw_connect(harness_port(h));
    char resp[4096];
    snprintf(head, sizeof(head),
             "POST /v1/events/open HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    SL_REQUIRE(idle >= 0 && raw_send(idle, head, strlen(head)));
    SL_CHECK_INT(raw_read_response(idle, resp, sizeof(resp), HARNESS_HTTP_TIMEOUT_MS), 202);
    double in_flight = -1;
    for (int waited = 0; waited < 30000 && in_flight != K; waited += 100) {
        in_flight = harness_metric(h, "sluice_ingress_requests_in_flight");
        sleep_ms(100);
    }
    SL_REQUIRE(in_flight == K);

    SL_REQUIRE(kill(harness_pid(h), SIGTERM) == 0);
    struct http_reply r;
    SL_CHECK_INT(wait_ready(h, 503, 30000, &r), 503);
    SL_CHECK_CONTAINS(r.body, "shutting down");
    /* New work is refused: a request on the idle connection gets 503 and the connection ends;
     * a new connection is not accepted. */
    SL_REQUIRE(raw_send(idle, head, strlen(head)));
    SL_CHECK_INT(raw_read_response(idle, resp, sizeof(resp), HARNESS_HTTP_TIMEOUT_MS), 503);
    SL_CHECK_CONTAINS(resp, "shutting_down");
    SL_CHECK_CONTAINS(resp, "Retry-After: 5");
    SL_CHECK(strcasestr(resp, "Connection: close") != NULL);
    close(idle);
    int late = raw_connect(harness_port(h));
    if (late >= 0) {
        raw_send(late, head, strlen(head));
        SL_CHECK(raw_read_response(late, resp, sizeof(resp), HARNESS_HTTP_TIMEOUT_MS) <= 0);
        close(late);
    }
    /* The requests in flight finish their bodies and are answered. */
    static char ids[K][64];
    size_t accepted = 0;
    snprintf(rest, sizeof(rest), "%s", body + half);
    for (int i = 0; i < K; i++) {
        SL_CHECK(raw_send(fd[i], rest, strlen(rest)));
        int status = raw_read_response(fd[i], resp, sizeof(resp), HARNESS_HTTP_TIMEOUT_MS);
        SL_CHECK_INT(status, 202);
        const char *id = strstr(resp, "{\"id\":\"");
        if (status == 202 && id && sscanf(id, "{\"id\":\"%63[^\"]", ids[accepted]) == 1)
            accepted++;
        close(fd[i]);
    }
    SL_CHECK_INT(harness_signal_and_wait(h, 0), 0);
    char *log = harness_log(h);
    SL_CHECK_CONTAINS(log, "stopped: every request in flight was answered");
    free(log);

    struct records recs;
    harness_read_topic(harness_topic(h), 64, accepted + 1, 30000, 2000, &recs);
    size_t n = recs.n;
    SL_CHECK_INT(n, accepted + 1); /* and the idle connection's first request */
    size_t found = 0;
    for (size_t i = 0; i < n; i++) {
        char id[128];
        const char *v = record_header(recs.m[i], "ce_id", id, sizeof(id));
        found += v && has_id(ids, accepted, v);
    }
    records_free(&recs);
    SL_CHECK_INT(found, K);
    harness_destroy(h);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = sl_test_run_all();
    curl_global_cleanup();
    return rc;
}
