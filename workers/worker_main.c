#include "worker_main.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "sl_admin.h"
#include "sl_kafka.h"
#include "sl_log.h"
#include "sl_loop.h"
#include "sl_pipeline.h"
#include "sl_signal.h"

#define EXIT_USAGE 2

static void usage(FILE *out, const struct sl_stage *stage)
{
    fprintf(out,
            "usage: sluice-%s [--config FILE] [--admin-listen ADDR] [--instance ID] [--group ID]\n"
            "\n%s\n\n"
            "  --config FILE        the pipeline file (default: $SLUICE_CONFIG)\n"
            "  --admin-listen ADDR  /metrics /healthz /readyz (default 127.0.0.1:%d)\n"
            "  --instance ID        stable replica name (default: $SLUICE_INSTANCE_ID, else the\n"
            "                       host name without static group membership)\n"
            "  --group ID           consumer group (default sluice-%s or <stage>.loop.group_id)\n"
            "  --help, --version\n",
            stage->name, stage->description, stage->admin_port, stage->name);
}

int worker_main(int argc, char **argv, const struct sl_stage *stage)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"admin-listen", required_argument, NULL, 'a'},
        {"instance", required_argument, NULL, 'i'},
        {"group", required_argument, NULL, 'g'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *config = getenv("SLUICE_CONFIG");
    const char *instance = getenv("SLUICE_INSTANCE_ID");
    const char *group = NULL;
    char admin_default[32];
    snprintf(admin_default, sizeof(admin_default), "127.0.0.1:%d", stage->admin_port);
    const char *admin_listen = admin_default;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:a:i:g:hV", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'a':
            admin_listen = optarg;
            break;
        case 'i':
            instance = optarg;
            break;
        case 'g':
            group = optarg;
            break;
        case 'h':
            usage(stdout, stage);
            return EXIT_SUCCESS;
        case 'V':
            printf("sluice-%s %s\n", stage->name, SLUICE_VERSION);
            return EXIT_SUCCESS;
        default:
            usage(stderr, stage);
            return EXIT_USAGE;
        }
    }
    if (optind != argc || !config) {
        fprintf(stderr, "sluice-%s: %s\n", stage->name,
                config ? "unexpected arguments"
                       : "no pipeline file (--config FILE or SLUICE_CONFIG)");
        return EXIT_USAGE;
    }

    struct sl_err err;
    struct sl_kafka_settings kafka;
    struct sl_loop_opts opts;
    sl_conf_t *conf = NULL;
    sl_metrics_t *metrics = NULL;
    sl_loop_t *loop = NULL;
    sl_admin_t *admin = NULL;
    sl_live_t *live = NULL;
    void *ctx = NULL;
    bool stage_ready = false;
    int rc = EXIT_USAGE;

    sl_log_init(stage->name, SL_LOG_INFO);
    if (!(conf = sl_pipeline_load(config, &err)) ||
        sl_kafka_settings_load(conf, &kafka, &err) != 0 ||
        !(live = sl_live_load(conf, stage->name, &err))) {
        fprintf(stderr, "sluice-%s: %s\n", stage->name, err.msg);
        goto out;
    }
    rc = EXIT_FAILURE;
    if (sl_signal_install(&err) != 0 || !(metrics = sl_metrics_new())) {
        SL_ERROR("start-up: %s", metrics ? err.msg : "out of memory");
        goto out;
    }
    const struct sl_stage_env env = {conf, metrics, kafka.topic_prefix};
    if (stage->init(&ctx, &env, &err) != 0) {
        fprintf(stderr, "sluice-%s: %s\n", stage->name, err.msg);
        rc = EXIT_USAGE;
        goto out;
    }
    stage_ready = true;
    sl_loop_opts_default(&opts);
    opts.stage = stage;
    opts.stage_ctx = ctx;
    opts.kafka = &kafka;
    opts.metrics = metrics;
    opts.live = live;
    opts.instance_id = instance;
    opts.group_id = group;
    if (sl_loop_opts_load(&opts, conf, &err) != 0) {
        fprintf(stderr, "sluice-%s: %s\n", stage->name, err.msg);
        rc = EXIT_USAGE;
        goto out;
    }
    if (group)
        opts.group_id = group; /* the command line wins over the file */
    if (!(loop = sl_loop_new(&opts, &err)) ||
        !(admin = sl_admin_start(admin_listen, metrics, sl_loop_ready, loop, live, &err))) {
        SL_ERROR("start-up: %s", err.msg);
        goto out;
    }
    SL_INFO("sluice-%s %s started; admin on %s", stage->name, SLUICE_VERSION, admin_listen);
    if (sl_loop_run(loop, &err) != 0) {
        SL_ERROR("stopped on a fatal error: %s", err.msg);
        goto out;
    }
    SL_INFO("stopped cleanly");
    rc = EXIT_SUCCESS;
out:
    sl_admin_stop(admin);
    sl_loop_destroy(loop);
    if (stage_ready && stage->fini)
        stage->fini(ctx);
    sl_metrics_destroy(metrics);
    sl_live_destroy(live);
    sl_conf_destroy(conf);
    return rc;
}
