/* sluice-admin's overview from Prometheus (admin.prometheus_url), against the real Prometheus
 * server (Debian's, unpacked by tests/prometheus_deb.sh, the fixture `prometheus`; its path in
 * SLUICE_TEST_PROMETHEUS) scraping a running sluice-deliver (deliver_harness, destsim) every
 * second with the label component="deliver":
 *   - after deliveries the destination's attempts and success ratio, its latency and deliver's
 *     rate come from Prometheus (increase()/rate() need two samples of a series: the second
 *     delivery comes after Prometheus has scraped the first);
 *   - with Prometheus stopped the overview still answers 200: "unavailable" names prometheus,
 *     the destination's figures are empty, deliver's readiness still comes from its /readyz. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin_client.h"
#include "deliver_harness.h"
#include "sl_test.h"
#include "sl_testenv.h"

#define VIEWER  "viewer-token-7"
#define WAIT_MS 60000
#define POLL_MS 200

static struct {
    bool up;
    dh_t *h;
    pid_t admin, prom;
    int port, prom_port;
    char dir[512];
} run;

static void start_prometheus(void)
{
    char conf[600], data[600], listen[64], body[256];
    const char *bin = getenv("SLUICE_TEST_PROMETHEUS");
    SL_REQUIRE(bin && bin[0] == '/');
    snprintf(run.dir, sizeof(run.dir), "%s/tests/prometheus-XXXXXX", sl_test_binary_dir());
    if (!mkdtemp(run.dir))
        sl_test_fail(__FILE__, __LINE__, "mkdtemp %s: %s", run.dir, strerror(errno));
    snprintf(conf, sizeof(conf), "%s/prometheus.yml", run.dir);
    snprintf(data, sizeof(data), "--storage.tsdb.path=%s/data", run.dir);
    FILE *f = fopen(conf, "w");
    SL_REQUIRE(f);
    fprintf(f,
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n  - job_name: sluice\n    static_configs:\n"
            "      - targets: [\"127.0.0.1:%d\"]\n        labels: {component: deliver}\n",
            dh_admin_port(run.h, 0));
    SL_REQUIRE(fclose(f) == 0);
    run.prom_port = sl_testenv_free_port();
    snprintf(listen, sizeof(listen), "--web.listen-address=127.0.0.1:%d", run.prom_port);
    char config_arg[640];
    snprintf(config_arg, sizeof(config_arg), "--config.file=%s", conf);
    const char *args[] = {config_arg, data, listen, "--log.level=warn", NULL};
    run.prom = sl_testenv_spawn(bin, args, "admin-prometheus-server");
    long status = 0;
    for (int waited = 0; waited < WAIT_MS && status != 200; waited += POLL_MS) {
        usleep(POLL_MS * 1000);
        status = sl_testenv_http_get(run.prom_port, "/-/ready", body, sizeof(body));
    }
    SL_REQUIRE(status == 200);
}

/* Deliver and destsim, Prometheus scraping deliver, sluice-admin with prometheus_url. */
static void start(void)
{
    char listen[64], hash[65], body[1024];
    if (run.up)
        return;
    run.up = true;
    run.h = dh_new(&(struct dh_opts){.partitions = 1});
    run.port = sl_testenv_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", run.port);
    admin_token_hash(VIEWER, hash);
    dh_start(run.h, 0, NULL);
    start_prometheus();
    /* Deliver has read the file: what it adds is sluice-admin's. */
    FILE *f = fopen(dh_config(run.h), "a");
    SL_REQUIRE(f);
    fprintf(f,
            "admin:\n  listen: \"%s\"\n  tokens:\n"
            "    - {name: vera, role: viewer, sha256: \"%s\"}\n"
            "  stages: {deliver: \"127.0.0.1:%d\"}\n"
            "  prometheus_url: \"http://127.0.0.1:%d/\"\n",
            listen, hash, dh_admin_port(run.h, 0), run.prom_port);
    SL_REQUIRE(fclose(f) == 0);
    const char *args[] = {"--config", dh_config(run.h), NULL};
    run.admin = sl_testenv_spawn("sluice-admin", args, "admin-prometheus");
    SL_REQUIRE(sl_testenv_wait_ready(run.port, 200, "ready", body, sizeof(body)) == 200);
}

static void stop(void)
{
    if (run.admin > 0 && sl_testenv_stop(run.admin, SIGTERM, 10000) != 0)
        fprintf(stderr, "sluice-admin did not stop cleanly\n");
    if (run.prom > 0 && sl_testenv_stop(run.prom, SIGTERM, 10000) != 0)
        fprintf(stderr, "prometheus did not stop cleanly\n");
    dh_destroy(run.h);
    if (run.dir[0]) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", run.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", run.dir);
    }
}

/* The overview's entry named `name` in its array `what`. */
static const json_t *entry(const json_t *doc, const char *what, const char *name)
{
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(doc, what), i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "name")), name) == 0)
            return e;
    }
    sl_test_fail(__FILE__, __LINE__, "no %s %s in the overview", what, name);
    return NULL;
}

/* Waits (bounded) until Prometheus holds deliver's 2xx attempts series. */
static void wait_scraped(void)
{
    static char body[65536];
    for (int waited = 0; waited < WAIT_MS; waited += POLL_MS) {
        if (sl_testenv_http_get(
                run.prom_port,
                "/api/v1/query?query=sluice_deliver_attempts_total%7Bresult%3D%222xx%22%7D", body,
                sizeof(body)) == 200 &&
            strstr(body, "\"2xx\""))
            return;
        usleep(POLL_MS * 1000);
    }
    sl_test_fail(__FILE__, __LINE__, "Prometheus never scraped deliver's attempts: %s", body);
}

SL_TEST(the_overview_reads_deliveries_from_prometheus)
{
    start();
    dh_produce(run.h, "ev-prom-1", "k1", "{\"n\":1}", NULL);
    dh_flush(run.h);
    dh_wait_2xx(run.h, 1);
    wait_scraped();
    dh_produce(run.h, "ev-prom-2", "k2", "{\"n\":2}", NULL);
    dh_flush(run.h);
    dh_wait_2xx(run.h, 2);
    /* Prometheus sees the second attempt on a later scrape: poll the overview (bounded). */
    json_t *doc = NULL;
    const json_t *dest = NULL;
    for (int waited = 0; waited < WAIT_MS; waited += POLL_MS) {
        json_decref(doc);
        doc = admin_expect(run.port, "GET", "/api/v1/overview", VIEWER, NULL, 200);
        dest = entry(doc, "destinations", dh_dest(run.h));
        if (json_integer_value(json_object_get(json_object_get(dest, "attempts"), "2xx")) > 0)
            break;
        usleep(POLL_MS * 1000);
    }
    SL_CHECK(json_integer_value(json_object_get(json_object_get(dest, "attempts"), "2xx")) > 0);
    SL_CHECK(json_real_value(json_object_get(dest, "success_ratio")) == 1.0);
    SL_CHECK(json_is_number(json_object_get(json_object_get(dest, "latency_ms"), "p95")));
    SL_CHECK_STR(json_string_value(json_object_get(dest, "circuit")), "closed");
    const json_t *stage = entry(doc, "stages", "deliver");
    SL_CHECK(json_is_true(json_object_get(stage, "ready")));
    SL_CHECK(json_real_value(json_object_get(stage, "rate_in")) > 0);
    const json_t *unavailable = json_object_get(doc, "unavailable");
    if (json_object_get(unavailable, "prometheus"))
        sl_test_fail(__FILE__, __LINE__, "prometheus unavailable: %s",
                     json_string_value(json_object_get(unavailable, "prometheus")));
    json_decref(doc);
}

SL_TEST(prometheus_down_is_marked_unavailable)
{
    start();
    SL_REQUIRE(sl_testenv_stop(run.prom, SIGTERM, 10000) == 0);
    run.prom = 0;
    json_t *doc = admin_expect(run.port, "GET", "/api/v1/overview", VIEWER, NULL, 200);
    const json_t *prom = json_object_get(json_object_get(doc, "unavailable"), "prometheus");
    SL_CHECK(json_is_string(prom));
    const json_t *dest = entry(doc, "destinations", dh_dest(run.h));
    SL_CHECK_INT(json_object_size(json_object_get(dest, "attempts")), 0);
    SL_CHECK(json_is_null(json_object_get(dest, "success_ratio")));
    const json_t *stage = entry(doc, "stages", "deliver");
    SL_CHECK(json_is_true(json_object_get(stage, "ready")));
    SL_CHECK(json_is_null(json_object_get(stage, "rate_in")));
    json_decref(doc);
}

int main(void)
{
    int rc = sl_test_run_all();
    stop();
    return rc;
}
