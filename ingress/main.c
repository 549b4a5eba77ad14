/*
 * sluice-ingress: the HTTP front door. Loads the pipeline file, serves POST /v1/events/<source>
 * on ingress.listen and /metrics /healthz /readyz on the admin listener, and stops gracefully on
 * SIGTERM (see ingress.h). Exit codes: 0 after a clean stop, 1 when it cannot start, 2 usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingress.h"
#include "sl_admin.h"
#include "sl_log.h"
#include "sl_pipeline.h"
#include "sl_signal.h"
#include "source.h"

#define EXIT_USAGE 2

static const char usage[] =
    "usage: sluice-ingress --config FILE [--listen ADDR] [--admin-listen ADDR]\n"
    "\n"
    "  --config FILE         the pipeline file (default: $SLUICE_CONFIG)\n"
    "  --listen ADDR         public listener, host:port (default: ingress.listen)\n"
    "  --admin-listen ADDR   /metrics /healthz /readyz (default: " INGRESS_ADMIN_LISTEN_DEFAULT
    ")\n"
    "  --help, --version\n";

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"admin-listen", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *config = getenv("SLUICE_CONFIG"), *listen = NULL;
    const char *admin_listen = INGRESS_ADMIN_LISTEN_DEFAULT;
    int opt, rc = EXIT_FAILURE;
    while ((opt = getopt_long(argc, argv, "c:l:a:hV", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'l':
            listen = optarg;
            break;
        case 'a':
            admin_listen = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return EXIT_SUCCESS;
        case 'V':
            printf("sluice-ingress %s\n", SLUICE_VERSION);
            return EXIT_SUCCESS;
        default:
            fputs(usage, stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc || !config) {
        fputs(config ? "sluice-ingress: unexpected argument\n"
                     : "sluice-ingress: no pipeline file (--config FILE or SLUICE_CONFIG)\n",
              stderr);
        fputs(usage, stderr);
        return EXIT_USAGE;
    }

    sl_log_init("ingress", SL_LOG_INFO);
    struct sl_err err;
    struct sl_kafka_settings kafka;
    struct ingress_settings settings;
    sl_conf_t *conf = NULL;
    source_set_t *sources = NULL;
    sl_metrics_t *metrics = NULL;
    ingress_t *ing = NULL;
    sl_admin_t *admin = NULL;
    sl_live_t *live = NULL;

    if (sl_signal_install(&err) != 0 || !(conf = sl_pipeline_load(config, &err)) ||
        sl_kafka_settings_load(conf, &kafka, &err) != 0 ||
        ingress_settings_load(conf, &kafka, &settings, &err) != 0 ||
        !(live = sl_live_load(conf, "ingress", &err)) || !(sources = source_set_load(conf, &err)))
        goto fail;
    if (listen)
        settings.listen = listen;
    settings.live = live;
    if (!(metrics = sl_metrics_new())) {
        sl_err_set(&err, SL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (!(ing = ingress_start(&settings, &kafka, sources, metrics, &err)) ||
        !(admin = sl_admin_start(admin_listen, metrics, ingress_ready, ing, live, &err)))
        goto fail;
    SL_INFO("listening: http %.*s:%d, admin %.*s:%d; %zu sources; topic %s; brokers %s",
            (int)(strrchr(settings.listen, ':') - settings.listen), settings.listen,
            ingress_port(ing), (int)(strrchr(admin_listen, ':') - admin_listen), admin_listen,
            sl_admin_port(admin), source_set_count(sources), ingress_topic(ing), kafka.brokers);

    while (!sl_signal_wait(-1))
        ;
    SL_INFO("stop requested");
    /* The admin listener stays up while the ingress drains, so /readyz reports the stop. */
    ingress_stop(ing);
    rc = EXIT_SUCCESS;
    goto out;
fail:
    SL_ERROR("cannot start: %s", err.msg);
    fprintf(stderr, "sluice-ingress: %s\n", err.msg);
out:
    sl_admin_stop(admin);
    ingress_destroy(ing);
    source_set_destroy(sources);
    sl_metrics_destroy(metrics);
    sl_live_destroy(live);
    sl_conf_destroy(conf);
    return rc;
}
