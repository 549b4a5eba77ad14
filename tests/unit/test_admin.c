/* The admin listener over real HTTP (loopback, a kernel-chosen port): /metrics, /healthz
 * following the liveness heartbeat (200 before the first beat and while beats come, 503 with
 * the reason once the last is older than the timeout; /readyz unchanged by it), /readyz
 * following the readiness callback, JSON 404 and 405. */
#include <curl/curl.h>
#include <stdatomic.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "sl_admin.h"
#include "sl_test.h"

struct body {
    char buf[8192];
    size_t len;
};

static size_t on_data(char *p, size_t size, size_t n, void *opaque)
{
    struct body *b = opaque;
    size_t take = size * n;
    if (take > sizeof(b->buf) - 1 - b->len)
        take = sizeof(b->buf) - 1 - b->len;
    memcpy(b->buf + b->len, p, take);
    b->len += take;
    b->buf[b->len] = '\0';
    return size * n;
}

static long request(int port, const char *method, const char *path, struct body *b)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    memset(b, 0, sizeof(*b));
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

static atomic_bool is_ready;

static bool ready_cb(void *opaque, char *why, size_t why_size)
{
    if (atomic_load(&is_ready))
        return true;
    snprintf(why, why_size, "%s", (const char *)opaque);
    return false;
}

SL_TEST(endpoints)
{
    struct sl_err err;
    struct body b;
    sl_metrics_t *m = sl_metrics_new();
    sl_series_add(
        sl_metric_series(sl_metrics_counter(m, "sluice_test_total", "A test.", NULL), NULL), 7);
    sl_admin_t *admin =
        sl_admin_start("127.0.0.1:0", m, ready_cb, "kafka \"unreachable\"", NULL, &err);
    SL_REQUIRE(admin);
    int port = sl_admin_port(admin);
    SL_REQUIRE(port > 0);

    SL_CHECK_INT(request(port, "GET", "/metrics", &b), 200);
    SL_CHECK_CONTAINS(b.buf, "# TYPE sluice_test_total counter\nsluice_test_total 7\n");
    SL_CHECK_INT(request(port, "GET", "/healthz", &b), 200);
    SL_CHECK_STR(b.buf, "{\"status\":\"ok\"}");
    SL_CHECK_INT(request(port, "GET", "/readyz", &b), 503);
    SL_CHECK_STR(b.buf, "{\"status\":\"not ready\",\"detail\":\"kafka \\\"unreachable\\\"\"}");
    atomic_store(&is_ready, true);
    SL_CHECK_INT(request(port, "GET", "/readyz", &b), 200);
    SL_CHECK_INT(request(port, "GET", "/nope", &b), 404);
    SL_CHECK_CONTAINS(b.buf, "\"error\":\"not found\"");
    SL_CHECK_INT(request(port, "POST", "/metrics", &b), 405);
    SL_CHECK_CONTAINS(b.buf, "\"error\":\"method not allowed\"");
    sl_admin_stop(admin);
    sl_metrics_destroy(m);
}

SL_TEST(healthz_follows_the_heartbeat)
{
    struct sl_err err;
    struct body b;
    sl_metrics_t *m = sl_metrics_new();
    sl_live_t *stuck = sl_live_new(1), *alive = sl_live_new(60000), *off = sl_live_new(0);
    SL_REQUIRE(m && stuck && alive && off);
    sl_admin_t *a = sl_admin_start("127.0.0.1:0", m, NULL, NULL, stuck, &err);
    SL_REQUIRE(a);
    /* Not armed before the first beat (start-up is /readyz's). */
    SL_CHECK_INT(request(sl_admin_port(a), "GET", "/healthz", &b), 200);
    sl_live_beat(stuck);
    struct timespec pause = {0, 20 * 1000000L}; /* well past the 1 ms timeout */
    nanosleep(&pause, NULL);
    SL_CHECK_INT(request(sl_admin_port(a), "GET", "/healthz", &b), 503);
    SL_CHECK_CONTAINS(b.buf, "{\"status\":\"stuck\",\"detail\":\"the main loop has not turned "
                             "for ");
    SL_CHECK_CONTAINS(b.buf, "(liveness_timeout 1 ms)\"}");
    SL_CHECK_INT(request(sl_admin_port(a), "GET", "/readyz", &b), 200);
    sl_admin_stop(a);
    /* Beating within the timeout, and a timeout of 0 (off), are alive. */
    sl_live_t *live[] = {alive, off};
    for (size_t i = 0; i < 2; i++) {
        SL_REQUIRE((a = sl_admin_start("127.0.0.1:0", m, NULL, NULL, live[i], &err)));
        sl_live_beat(live[i]);
        nanosleep(&pause, NULL);
        SL_CHECK_INT(request(sl_admin_port(a), "GET", "/healthz", &b), 200);
        sl_admin_stop(a);
    }
    sl_live_destroy(stuck);
    sl_live_destroy(alive);
    sl_live_destroy(off);
    sl_metrics_destroy(m);
}

SL_TEST(bad_address_and_port_in_use)
{
    struct sl_err err;
    sl_metrics_t *m = sl_metrics_new();
    SL_CHECK(sl_admin_start("localhost:80", m, NULL, NULL, NULL, &err) == NULL);
    SL_CHECK_CONTAINS(err.msg, "admin listener: 'localhost:80': host must be a numeric");
    sl_admin_t *a = sl_admin_start("127.0.0.1:0", m, NULL, NULL, NULL, &err);
    SL_REQUIRE(a);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", sl_admin_port(a));
    SL_CHECK(sl_admin_start(addr, m, NULL, NULL, NULL, &err) == NULL);
    SL_CHECK_CONTAINS(err.msg, "cannot listen on");
    sl_admin_stop(a);
    sl_metrics_destroy(m);
}

SL_TEST_MAIN()
