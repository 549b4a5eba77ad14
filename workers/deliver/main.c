/*
 * sluice-deliver: delivers the events routed to destinations (<prefix>deliver.<name>) to the
 * systems outside, over HTTP, with retries, rate limits, credentials, circuit breaking and
 * signing; records every attempt and outcome. The engine is deliver.h; this is its thin main.
 *
 * Exit codes: 0 after a clean shutdown (SIGTERM), 1 on a fatal error, 2 on a usage or
 * configuration error.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "deliver.h"
#include "sl_admin.h"
#include "sl_kafka.h"
#include "sl_log.h"
#include "sl_pipeline.h"
#include "sl_signal.h"

#define EXIT_USAGE    2
#define ADMIN_DEFAULT "127.0.0.1:9184"

static void usage(FILE *out)
{
    fputs("usage: sluice-deliver [--config FILE] [--admin-listen ADDR] [--destination NAME]...\n"
          "                      [--instance ID]\n"
          "\n"
          "Delivers the events routed to destinations to the systems outside (HTTP), with\n"
          "retries, rate limits, credentials, circuit breaking and signing.\n"
          "\n"
          "  --config FILE         the pipeline file (default: $SLUICE_CONFIG)\n"
          "  --admin-listen ADDR   /metrics /healthz /readyz (default " ADMIN_DEFAULT ")\n"
          "  --destination NAME    serve this destination (repeatable; default: every one)\n"
          "  --instance ID         stable replica name for static group membership (default:\n"
          "                        $SLUICE_INSTANCE_ID; unset: dynamic membership)\n"
          "  --help, --version\n",
          out);
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"admin-listen", required_argument, NULL, 'a'},
        {"destination", required_argument, NULL, 'd'},
        {"instance", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *config = getenv("SLUICE_CONFIG");
    const char *instance = getenv("SLUICE_INSTANCE_ID");
    const char *admin_listen = ADMIN_DEFAULT;
    const char *destinations[DLV_DESTINATIONS_MAX];
    size_t n_destinations = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:a:d:i:hV", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'a':
            admin_listen = optarg;
            break;
        case 'd':
            if (n_destinations == DLV_DESTINATIONS_MAX) {
                fprintf(stderr, "sluice-deliver: more than %d --destination\n",
                        DLV_DESTINATIONS_MAX);
                return EXIT_USAGE;
            }
            destinations[n_destinations++] = optarg;
            break;
        case 'i':
            instance = optarg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_SUCCESS;
        case 'V':
            printf("sluice-deliver %s\n", SLUICE_VERSION);
            return EXIT_SUCCESS;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc || !config) {
        fprintf(stderr, "sluice-deliver: %s\n",
                config ? "unexpected arguments"
                       : "no pipeline file (--config FILE or SLUICE_CONFIG)");
        return EXIT_USAGE;
    }
    if (instance && !*instance)
        instance = NULL;

    struct sl_err err;
    struct sl_kafka_settings kafka;
    sl_conf_t *conf = NULL;
    sl_metrics_t *metrics = NULL;
    dlv_engine_t *engine = NULL;
    sl_admin_t *admin = NULL;
    sl_live_t *live = NULL;
    int rc = EXIT_USAGE;

    sl_log_init("deliver", SL_LOG_INFO);
    if (!(conf = sl_pipeline_load(config, &err)) ||
        sl_kafka_settings_load(conf, &kafka, &err) != 0 ||
        !(live = sl_live_load(conf, "deliver", &err))) {
        fprintf(stderr, "sluice-deliver: %s\n", err.msg);
        goto out;
    }
    rc = EXIT_FAILURE;
    if (sl_signal_install(&err) != 0 || !(metrics = sl_metrics_new())) {
        SL_ERROR("start-up: %s", metrics ? err.msg : "out of memory");
        goto out;
    }
    const struct dlv_engine_opts opts = {
        .conf = conf,
        .kafka = &kafka,
        .destinations = destinations,
        .n_destinations = n_destinations,
        .instance_id = instance,
        .metrics = metrics,
        .live = live,
    };
    if (!(engine = dlv_engine_new(&opts, &err))) {
        fprintf(stderr, "sluice-deliver: %s\n", err.msg);
        rc = err.code == SL_ERR_CONFIG ? EXIT_USAGE : EXIT_FAILURE;
        goto out;
    }
    if (!(admin = sl_admin_start(admin_listen, metrics, dlv_engine_ready, engine, live, &err))) {
        SL_ERROR("start-up: %s", err.msg);
        goto out;
    }
    SL_INFO("sluice-deliver %s started; admin on port %d", SLUICE_VERSION, sl_admin_port(admin));
    if (dlv_engine_run(engine, &err) != 0) {
        SL_ERROR("stopped on a fatal error: %s", err.msg);
        goto out;
    }
    SL_INFO("stopped cleanly");
    rc = EXIT_SUCCESS;
out:
    sl_admin_stop(admin);
    dlv_engine_destroy(engine);
    sl_metrics_destroy(metrics);
    sl_live_destroy(live);
    sl_conf_destroy(conf);
    return rc;
}
