/* Unit tests of Prometheus rendering. */
#include <stdlib.h>
#include <string.h>

#include "sl_metrics.h"
#include "sl_test.h"

SL_TEST(counter_gauge_histogram_rendering)
{
    sl_metrics_t *m = sl_metrics_new();
    SL_REQUIRE(m);
    sl_metric_t *req = sl_metrics_counter(m, "sluice_requests_total", "Requests by source.",
                                          (const char *const[]){"source", "status", NULL});
    sl_metric_t *inflight = sl_metrics_gauge(m, "sluice_in_flight", "In flight.", NULL);
    const double bounds[] = {0.01, 0.1, 1};
    sl_metric_t *lat = sl_metrics_histogram(m, "sluice_latency_seconds", "Latency.",
                                            (const char *const[]){"stage", NULL}, bounds, 3);
    SL_REQUIRE(req && inflight && lat);

    sl_series_add(sl_metric_series(req, (const char *const[]){"stripe", "202"}), 1);
    sl_series_add(sl_metric_series(req, (const char *const[]){"stripe", "202"}), 2);
    sl_series_add(sl_metric_series(req, (const char *const[]){"crm", "401"}), 1);
    sl_series_set(sl_metric_series(inflight, NULL), 5);
    sl_series_add(sl_metric_series(inflight, NULL), -2);
    sl_series_t *s = sl_metric_series(lat, (const char *const[]){"validate"});
    sl_series_observe(s, 0.005);
    sl_series_observe(s, 0.05);
    sl_series_observe(s, 0.05);
    sl_series_observe(s, 5);

    size_t len;
    char *text = sl_metrics_render(m, &len);
    SL_REQUIRE(text);
    SL_CHECK_INT(len, strlen(text));
    const char *expected = "# HELP sluice_requests_total Requests by source.\n"
                           "# TYPE sluice_requests_total counter\n"
                           "sluice_requests_total{source=\"stripe\",status=\"202\"} 3\n"
                           "sluice_requests_total{source=\"crm\",status=\"401\"} 1\n"
                           "# HELP sluice_in_flight In flight.\n"
                           "# TYPE sluice_in_flight gauge\n"
                           "sluice_in_flight 3\n"
                           "# HELP sluice_latency_seconds Latency.\n"
                           "# TYPE sluice_latency_seconds histogram\n"
                           "sluice_latency_seconds_bucket{stage=\"validate\",le=\"0.01\"} 1\n"
                           "sluice_latency_seconds_bucket{stage=\"validate\",le=\"0.1\"} 3\n"
                           "sluice_latency_seconds_bucket{stage=\"validate\",le=\"1\"} 3\n"
                           "sluice_latency_seconds_bucket{stage=\"validate\",le=\"+Inf\"} 4\n"
                           "sluice_latency_seconds_sum{stage=\"validate\"} 5.105\n"
                           "sluice_latency_seconds_count{stage=\"validate\"} 4\n";
    SL_CHECK_STR(text, expected);
    free(text);
    sl_metrics_destroy(m);
}

SL_TEST(label_values_are_escaped)
{
    sl_metrics_t *m = sl_metrics_new();
    sl_metric_t *c = sl_metrics_counter(m, "c_total", "Help with \\ and\nnewline.",
                                        (const char *const[]){"v", NULL});
    sl_series_add(sl_metric_series(c, (const char *const[]){"a\"b\\c\nd"}), 1);
    char *text = sl_metrics_render(m, NULL);
    SL_CHECK_CONTAINS(text, "# HELP c_total Help with \\\\ and\\nnewline.\n");
    SL_CHECK_CONTAINS(text, "c_total{v=\"a\\\"b\\\\c\\nd\"} 1\n");
    free(text);
    sl_metrics_destroy(m);
}

SL_TEST(bad_names_rejected_and_cardinality_bounded)
{
    sl_metrics_t *m = sl_metrics_new();
    SL_CHECK(sl_metrics_counter(m, "bad-name", "x", NULL) == NULL);
    SL_CHECK(sl_metrics_counter(m, "ok", "x", (const char *const[]){"bad label", NULL}) == NULL);
    sl_metric_t *c = sl_metrics_counter(m, "many_total", "x", (const char *const[]){"k", NULL});
    char v[32];
    for (int i = 0; i < SL_METRICS_MAX_SERIES + 10; i++) {
        snprintf(v, sizeof(v), "%d", i);
        sl_series_add(sl_metric_series(c, (const char *const[]){v}), 1);
    }
    char *text = sl_metrics_render(m, NULL);
    SL_CHECK_CONTAINS(text, "many_total{k=\"_overflow\"} 10\n");
    free(text);
    sl_metrics_destroy(m);
}

static void set_lag(void *opaque)
{
    sl_series_set(opaque, 42);
}

SL_TEST(collect_hook_runs_before_render)
{
    sl_metrics_t *m = sl_metrics_new();
    sl_series_t *s = sl_metric_series(sl_metrics_gauge(m, "lag", "Lag.", NULL), NULL);
    SL_CHECK_INT(sl_metrics_on_collect(m, set_lag, s), 0);
    char *text = sl_metrics_render(m, NULL);
    SL_CHECK_CONTAINS(text, "lag 42\n");
    free(text);
    sl_metrics_destroy(m);
}

SL_TEST_MAIN()
