/*
 * sluice-reconcile: runs the reconciler (reconcile.h) every `reconcile.interval` until
 * SIGTERM. Not a stage of the shared loop: it consumes no topic (see reconcile.h for why it
 * reads the audit trail rather than <prefix>outcomes), it only reads and writes PostgreSQL
 * and produces alert events.
 *
 * It is also the pipeline's lag exporter (one per pipeline, like reconcile itself): every
 * `reconcile.lag_interval` it reads every consumer group's lag from the broker (sl_lagwatch.h),
 * so a stage that is down still has its lag on /metrics, rising.
 *
 * --config FILE (or SLUICE_CONFIG), --admin-listen ADDR (default 127.0.0.1:9187: /metrics,
 * /healthz, /readyz: ready while the last run succeeded), --help, --version. Exit codes: 0
 * clean shutdown, 1 start-up failure, 2 usage or config error. A failed run is logged and
 * counted, and the next interval tries again (Postgres down is waited out).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "reconcile.h"
#include "sl_admin.h"
#include "sl_lagwatch.h"
#include "sl_log.h"
#include "sl_pg.h"
#include "sl_pipeline.h"
#include "sl_signal.h"

#define EXIT_USAGE 2

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sluice-reconcile [--config FILE] [--admin-listen ADDR]\n"
            "\nChecks that every accepted event reaches a terminal state per destination, marks\n"
            "and alerts stuck ones, and keeps the hourly books (reconcile_hourly).\n\n"
            "  --config FILE        the pipeline file (default: $SLUICE_CONFIG)\n"
            "  --admin-listen ADDR  /metrics /healthz /readyz (default 127.0.0.1:%d)\n"
            "  --help, --version\n",
            REC_ADMIN_PORT);
}

/* Waits `interval_ms` (true when stopping), beating: waiting for the next run is the loop
 * turning, only a run that does not return is stuck. */
static bool wait_interval(sl_live_t *live, long long interval_ms)
{
    for (long long left = interval_ms; left > 0; left -= 1000) {
        sl_live_beat(live);
        if (sl_signal_wait(left < 1000 ? (int)left : 1000))
            return true;
    }
    return false;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"admin-listen", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *config = getenv("SLUICE_CONFIG");
    char admin_default[32];
    snprintf(admin_default, sizeof(admin_default), "127.0.0.1:%d", REC_ADMIN_PORT);
    const char *admin_listen = admin_default;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:a:hV", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'a':
            admin_listen = optarg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_SUCCESS;
        case 'V':
            printf("sluice-reconcile %s\n", SLUICE_VERSION);
            return EXIT_SUCCESS;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc || !config) {
        fprintf(stderr, "sluice-reconcile: %s\n",
                config ? "unexpected arguments"
                       : "no pipeline file (--config FILE or SLUICE_CONFIG)");
        return EXIT_USAGE;
    }

    struct sl_err err;
    struct sl_kafka_settings kafka;
    struct rec_settings settings;
    const char *dsn;
    sl_conf_t *conf = NULL;
    sl_metrics_t *metrics = NULL;
    rec_t *rec = NULL;
    sl_admin_t *admin = NULL;
    sl_lagwatch_t *lag = NULL;
    sl_live_t *live = NULL;
    static struct sl_lag_group groups[SL_LAG_MAX_GROUPS];
    size_t n_groups;
    int rc = EXIT_USAGE;

    sl_log_init("reconcile", SL_LOG_INFO);
    if (!(conf = sl_pipeline_load(config, &err)) ||
        sl_kafka_settings_load(conf, &kafka, &err) != 0 ||
        rec_settings_load(conf, &kafka, &settings, &err) != 0 ||
        sl_pg_settings(conf, &dsn, &err) != 0 ||
        sl_lag_groups(conf, &kafka, groups, SL_LAG_MAX_GROUPS, &n_groups, &err) != 0 ||
        !(live = sl_live_load(conf, "reconcile", &err))) {
        fprintf(stderr, "sluice-reconcile: %s\n", err.msg);
        goto out;
    }
    rc = EXIT_FAILURE;
    if (sl_signal_install(&err) != 0 || !(metrics = sl_metrics_new())) {
        SL_ERROR("start-up: %s", metrics ? err.msg : "out of memory");
        goto out;
    }
    const struct sl_lagwatch_opts lag_opts = {
        .kafka = &kafka,
        .groups = groups,
        .n_groups = n_groups,
        .interval_ms = settings.lag_interval_ms,
        .client_id = "sluice-reconcile-lag",
        .metrics = metrics,
    };
    if (!(rec = rec_new(&settings, &kafka, dsn, metrics, &err)) ||
        !(lag = sl_lagwatch_start(&lag_opts, &err)) ||
        !(admin = sl_admin_start(admin_listen, metrics, rec_ready, rec, live, &err))) {
        SL_ERROR("start-up: %s", err.msg);
        goto out;
    }
    SL_INFO("sluice-reconcile %s started; admin on %s; every %lld ms, deadline %lld ms, alerts "
            "to %s",
            SLUICE_VERSION, admin_listen, settings.interval_ms, settings.deadline_ms,
            settings.alert_topic[0] ? settings.alert_topic : "(none)");
    do {
        sl_live_beat(live);
        if (rec_run(rec, &err) != 0)
            SL_WARN("run failed%s: %s", err.retriable ? " (the next run tries again)" : "",
                    err.msg);
    } while (!wait_interval(live, settings.interval_ms));
    SL_INFO("stopped cleanly");
    rc = EXIT_SUCCESS;
out:
    sl_admin_stop(admin);
    sl_lagwatch_stop(lag);
    rec_destroy(rec);
    sl_metrics_destroy(metrics);
    sl_live_destroy(live);
    sl_conf_destroy(conf);
    return rc;
}
