/*
 * sluice-admin: the admin API and the web console (README, "Admin API and console"). Loads the
 * pipeline file, serves /api/v1/..., the console and /metrics /healthz /readyz on admin.listen,
 * and stops on SIGTERM. Exit codes: 0 after a clean stop, 1 when it cannot start, 2 usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "auth.h"
#include "http.h"
#include "sl_log.h"
#include "sl_pipeline.h"
#include "sl_signal.h"

#define EXIT_USAGE 2

static const char usage[] =
    "usage: sluice-admin --config FILE [--listen ADDR]\n"
    "\n"
    "  --config FILE   the pipeline file (default: $SLUICE_CONFIG)\n"
    "  --listen ADDR   host:port of the API, the console and /metrics (default: admin.listen)\n"
    "  --help, --version\n";

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *config = getenv("SLUICE_CONFIG"), *listen = NULL;
    int opt, rc = EXIT_FAILURE;
    while ((opt = getopt_long(argc, argv, "c:l:hV", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'l':
            listen = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return EXIT_SUCCESS;
        case 'V':
            printf("sluice-admin %s\n", SLUICE_VERSION);
            return EXIT_SUCCESS;
        default:
            fputs(usage, stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc || !config) {
        fputs(config ? "sluice-admin: unexpected argument\n"
                     : "sluice-admin: no pipeline file (--config FILE or SLUICE_CONFIG)\n",
              stderr);
        fputs(usage, stderr);
        return EXIT_USAGE;
    }

    sl_log_init("admin", SL_LOG_INFO);
    struct sl_err err;
    sl_conf_t *conf = NULL;
    adm_auth_t *auth = NULL;
    adm_api_t *api = NULL;
    sl_metrics_t *metrics = NULL;
    adm_http_t *http = NULL;
    const sl_conf_node_t *section;
    long long threads;
    if (sl_signal_install(&err) != 0 || !(conf = sl_pipeline_load(config, &err)))
        goto fail;
    section = sl_conf_get(sl_conf_root(conf), "admin");
    if (!listen && sl_conf_str(conf, section, "listen", "127.0.0.1:9190", &listen, &err) != 0)
        goto fail;
    if (sl_conf_int(conf, section, "threads", 4, 1, 64, &threads, &err) != 0 ||
        !(auth = adm_auth_load(conf, &err)) || !(api = adm_api_new(conf, &err)))
        goto fail;
    if (!(metrics = sl_metrics_new())) {
        sl_err_set(&err, SL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (!(http = adm_http_start(listen, (unsigned int)threads, api, auth, metrics, &err)))
        goto fail;
    SL_INFO("listening on %.*s:%d", (int)(strrchr(listen, ':') - listen), listen,
            adm_http_port(http));
    while (!sl_signal_wait(-1))
        ;
    SL_INFO("stop requested");
    rc = EXIT_SUCCESS;
    goto out;
fail:
    SL_ERROR("cannot start: %s", err.msg);
    fprintf(stderr, "sluice-admin: %s\n", err.msg);
out:
    adm_http_stop(http);
    sl_metrics_destroy(metrics);
    adm_api_destroy(api);
    adm_auth_destroy(auth);
    sl_conf_destroy(conf);
    return rc;
}
