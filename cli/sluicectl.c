/*
 * sluicectl: the operator's command line.
 *
 *   sluicectl config check FILE        validate a pipeline file and its schemas (exit 1 on error)
 *   sluicectl config reference         print every key of the pipeline file (Markdown)
 *   sluicectl topics create            create every topic the pipeline implies (idempotent)
 *   sluicectl lag                      consumer lag per stage, topic and partition
 *   sluicectl schema check SCHEMA INSTANCE...   validate JSON files against a JSON Schema
 *   sluicectl db migrate | partitions  the audit database's schema and partitions
 *   sluicectl reconcile report         the hourly books and stuck events (sluice-reconcile)
 *   sluicectl replay --stage STAGE --from TIME   rewind a stopped stage's group to TIME
 *   sluicectl events show ID           one event's timeline from the audit trail
 *   sluicectl dlq list | show | replay | discard  inspect, replay and discard dead letters
 *
 * The pipeline file comes from --config FILE or SLUICE_CONFIG. Exit codes: 0 success, 1 the
 * operation failed, 2 usage error.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"
#include "sl_conf.h"
#include "sl_kafka.h"
#include "sl_log.h"
#include "sl_pipeline.h"
#include "sluicectl_db.h"
#include "sluicectl_dlq.h"
#include "sluicectl_events.h"
#include "sluicectl_lag.h"
#include "sluicectl_reconcile.h"
#include "sluicectl_replay.h"
#include "sluicectl_schema.h"
#include "transform.h"
#include "validate.h"

#define EXIT_USAGE 2

static const char usage[] =
    "usage: sluicectl [--config FILE] COMMAND ...\n"
    "\n"
    "commands:\n"
    "  config check FILE        validate a pipeline file; exit 1 with file:line: key: error\n"
    "  config reference         print the pipeline file's keys as Markdown\n"
    "  topics create [--timeout DURATION]\n"
    "                           create every topic the pipeline implies (idempotent)\n"
    "  lag [--stage STAGE] [--json]\n"
    "                           consumer lag per stage, topic and partition, from the broker\n"
    "  schema check [--map URI-PREFIX=DIR]... [--assert-formats] SCHEMA INSTANCE...\n"
    "                           validate instances: exit 0 valid, 1 invalid, 2 bad schema/file\n"
    "  db migrate [--dry-run] [--dir DIR] [--ahead DAYS]\n"
    "                           apply pending SQL migrations (idempotent), make partitions\n"
    "  db partitions [--ahead DAYS] [--retain DAYS]\n"
    "                           create coming audit partitions, drop those older than DAYS\n"
    "  reconcile report [--since TIME] [--json]\n"
    "                           hourly accepted vs terminal counts, totals, stuck events\n"
    "  replay --stage STAGE [--destination NAME] --from TIME [--group ID] [--dry-run]\n"
    "                           rewind the stopped stage's consumer group to TIME (the offsets\n"
    "                           for that time) so it re-processes its input; see replay --help\n"
    "  events show ID [--json]  the event's timeline: stages, delivery attempts, dead letters\n"
    "  dlq list [--source S] [--stage S] [--since TIME] [--status S] [--limit N] [--json]\n"
    "  dlq show ID [--json]     one dead letter in full\n"
    "  dlq replay ID... | --filter [--source S] [--stage S] [--since TIME]\n"
    "             [--to-stage STAGE] [--dry-run] [--force] [--by NAME]\n"
    "                           put dead letters back at a stage's input topic\n"
    "  dlq discard ID... [--by NAME]\n"
    "                           mark new dead letters handled without a replay\n"
    "\n"
    "options:\n"
    "  --config FILE            the pipeline file (default: $SLUICE_CONFIG)\n"
    "  --help, --version\n";

static void warn_unset(void *opaque, const char *var, const sl_conf_node_t *node)
{
    const sl_conf_t *conf = opaque;
    fprintf(stderr, "warning: %s:%d: %s: environment variable %s is not set\n", sl_conf_file(conf),
            sl_conf_line(node), sl_conf_keypath(node), var);
}

static int cmd_config_check(const char *path)
{
    struct sl_err err;
    sl_conf_t *conf = sl_pipeline_load(path, &err);
    /* What the stages check at start-up beyond the key table: every schema and every
     * expression compiles. */
    if (!conf || validate_check_config(conf, &err) != 0 ||
        transform_check_config(conf, &err) != 0 || route_check_config(conf, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        sl_conf_destroy(conf);
        return EXIT_FAILURE;
    }
    /* Unset variables are warnings: each binary needs only its own secrets. */
    sl_conf_unset_vars(conf, warn_unset, conf);
    const sl_conf_node_t *root = sl_conf_root(conf);
    printf("%s: ok (%zu sources, %zu transforms, %zu routes, %zu destinations)\n", path,
           sl_conf_count(sl_conf_get(root, "sources")),
           sl_conf_count(sl_conf_get(root, "transforms")),
           sl_conf_count(sl_conf_get(root, "routes")),
           sl_conf_count(sl_conf_get(root, "destinations")));
    sl_conf_destroy(conf);
    return EXIT_SUCCESS;
}

static int cmd_topics_create(const char *path, int argc, char **argv)
{
    long long timeout_ms = 30000;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc &&
            sl_conf_parse_duration_ms(argv[i + 1], &timeout_ms) == 0 && timeout_ms > 0 &&
            timeout_ms <= 600000) {
            i++;
            continue;
        }
        fprintf(stderr, "sluicectl topics create: unexpected argument '%s'\n%s", argv[i], usage);
        return EXIT_USAGE;
    }
    if (!path) {
        fprintf(stderr, "sluicectl topics create: no pipeline file (--config FILE or "
                        "SLUICE_CONFIG)\n");
        return EXIT_USAGE;
    }
    struct sl_err err;
    struct sl_kafka_settings kafka;
    struct sl_topic_spec *specs = NULL;
    size_t n = 0, created = 0;
    int rc = EXIT_FAILURE;
    sl_conf_t *conf = sl_pipeline_load(path, &err);
    if (!conf || sl_kafka_settings_load(conf, &kafka, &err) != 0 ||
        sl_pipeline_topics(conf, &kafka, &specs, &n, &err) != 0 ||
        sl_kafka_create_topics(&kafka, specs, n, (int)timeout_ms, &created, &err) != 0) {
        fprintf(stderr, "sluicectl topics create: %s\n", err.msg);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        printf("%s\n", specs[i].name);
    printf("%zu topics, %zu created, %zu already existed (%s)\n", n, created, n - created,
           kafka.brokers);
    rc = EXIT_SUCCESS;
out:
    sl_pipeline_topics_free(specs, n);
    sl_conf_destroy(conf);
    return rc;
}

static int cmd_lag(const char *path, int argc, char **argv)
{
    struct sl_err err;
    if (!path) {
        fprintf(stderr, "sluicectl lag: no pipeline file (--config FILE or SLUICE_CONFIG)\n");
        return EXIT_USAGE;
    }
    sl_conf_t *conf = sl_pipeline_load(path, &err);
    if (!conf) {
        fprintf(stderr, "sluicectl lag: %s\n", err.msg);
        return EXIT_USAGE;
    }
    int rc = sluicectl_lag(conf, argc, argv);
    sl_conf_destroy(conf);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *config = getenv("SLUICE_CONFIG");
    int opt;
    sl_log_init("sluicectl", SL_LOG_WARN);
    /* "+": stop at the first command word, so subcommands parse their own options. */
    while ((opt = getopt_long(argc, argv, "+c:hV", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return EXIT_SUCCESS;
        case 'V':
            printf("sluicectl %s\n", SLUICE_VERSION);
            return EXIT_SUCCESS;
        default:
            fputs(usage, stderr);
            return EXIT_USAGE;
        }
    }
    int nargs = argc - optind;
    char **args = argv + optind;
    if (nargs >= 3 && strcmp(args[0], "config") == 0 && strcmp(args[1], "check") == 0 && nargs == 3)
        return cmd_config_check(args[2]);
    if (nargs == 2 && strcmp(args[0], "config") == 0 && strcmp(args[1], "reference") == 0) {
        sl_pipeline_write_reference(stdout);
        return EXIT_SUCCESS;
    }
    if (nargs >= 1 && strcmp(args[0], "lag") == 0)
        return cmd_lag(config, nargs, args);
    if (nargs >= 2 && strcmp(args[0], "schema") == 0 && strcmp(args[1], "check") == 0)
        return sluicectl_schema_check(nargs - 1, args + 1);
    if (nargs >= 2 && strcmp(args[0], "db") == 0)
        return sluicectl_db(config, nargs - 1, args + 1);
    if (nargs >= 2 && strcmp(args[0], "reconcile") == 0)
        return sluicectl_reconcile(config, nargs - 1, args + 1);
    if (nargs >= 2 && strcmp(args[0], "events") == 0)
        return sluicectl_events(config, nargs - 1, args + 1);
    if (nargs >= 2 && strcmp(args[0], "dlq") == 0)
        return sluicectl_dlq(config, nargs - 1, args + 1);
    if (nargs >= 1 && strcmp(args[0], "replay") == 0)
        return sluicectl_replay(config, nargs, args);
    if (nargs >= 2 && strcmp(args[0], "topics") == 0 && strcmp(args[1], "create") == 0)
        return cmd_topics_create(config, nargs - 2, args + 2);
    fputs(usage, stderr);
    return EXIT_USAGE;
}
