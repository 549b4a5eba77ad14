/*
 * sluicectl: the operator's command line.
 *
 * The commands are the rows of `commands` below: the dispatcher, the usage text (`sluicectl
 * --help`, `sluicectl COMMAND --help`) and the shell completion (`sluicectl completion bash`)
 * all read that one table.
 *
 * The pipeline file comes from --config FILE or SLUICE_CONFIG. Global --timeout DURATION bounds
 * every call to the broker and to PostgreSQL. Log records (librdkafka's, libpq's notices) go to
 * stderr: stdout carries the command's output only. Exit codes: 0 success, 1 the operation
 * failed, 2 usage error.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "route.h"
#include "sl_conf.h"
#include "sl_kafka.h"
#include "sl_log.h"
#include "sl_pipeline.h"
#include "sluicectl_common.h"
#include "sluicectl_completion.h"
#include "sluicectl_db.h"
#include "sluicectl_dlq.h"
#include "sluicectl_events.h"
#include "sluicectl_lag.h"
#include "sluicectl_reconcile.h"
#include "sluicectl_replay.h"
#include "sluicectl_schema.h"
#include "transform.h"
#include "validate.h"

#define EXIT_USAGE  2
#define TIMEOUT_MAX 3600000 /* --timeout at most an hour */

static void warn_unset(void *opaque, const char *var, const sl_conf_node_t *node)
{
    const sl_conf_t *conf = opaque;
    fprintf(stderr, "warning: %s:%d: %s: environment variable %s is not set\n", sl_conf_file(conf),
            sl_conf_line(node), sl_conf_keypath(node), var);
}

static int cmd_config_check(const char *config, int argc, char **argv)
{
    (void)config; /* the file checked is the operand */
    if (argc != 2) {
        fprintf(stderr, "usage: sluicectl config check FILE\n");
        return EXIT_USAGE;
    }
    const char *path = argv[1];
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

static int cmd_config_reference(const char *config, int argc, char **argv)
{
    (void)config;
    if (argc != 1) {
        fprintf(stderr, "sluicectl config reference: unexpected argument '%s'\n", argv[1]);
        return EXIT_USAGE;
    }
    sl_pipeline_write_reference(stdout);
    return EXIT_SUCCESS;
}

static int cmd_topics_create(const char *path, int argc, char **argv)
{
    long long timeout_ms = ctl_timeout_ms(30000);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc &&
            sl_conf_parse_duration_ms(argv[i + 1], &timeout_ms) == 0 && timeout_ms > 0 &&
            timeout_ms <= 600000) {
            i++;
            continue;
        }
        fprintf(stderr, "sluicectl topics create: unexpected argument '%s'\n", argv[i]);
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

static int cmd_completion(const char *config, int argc, char **argv);

static int cmd_schema_check(const char *config, int argc, char **argv)
{
    (void)config; /* schemas and instances are operands */
    return sluicectl_schema_check(argc, argv);
}

static const struct ctl_command commands[] = {
    {"config check", "FILE", "validate a pipeline file; exit 1 with file:line: key: error",
     cmd_config_check},
    {"config reference", "", "print the pipeline file's keys as Markdown", cmd_config_reference},
    {"topics create", "[--timeout DURATION]",
     "create every topic the pipeline implies (idempotent)", cmd_topics_create},
    {"lag", "[--stage STAGE] [-o json|table]",
     "consumer lag per stage, topic and partition, from the broker", sluicectl_lag},
    {"schema check",
     "[--map URI-PREFIX=DIR]... [--assert-formats] [--max-errors N] SCHEMA INSTANCE...",
     "validate instances: exit 0 valid, 1 invalid, 2 bad schema/file", cmd_schema_check},
    {"db migrate", "[--dry-run] [--dir DIR] [--ahead DAYS]",
     "apply pending SQL migrations (idempotent), make partitions", sluicectl_db},
    {"db partitions", "[--ahead DAYS] [--retain DAYS]",
     "create coming audit partitions, drop those older than DAYS", sluicectl_db},
    {"reconcile report", "[--since TIME] [-o json|table]",
     "hourly accepted vs terminal counts, totals, stuck events", sluicectl_reconcile_report},
    {"replay", "--stage STAGE [--destination NAME] --from TIME [--group ID] [--dry-run]",
     "rewind the stopped stage's consumer group to TIME (the offsets for that time) so it\n"
     "re-processes its input; a group with members is refused",
     sluicectl_replay},
    {"events show", "ID [-o json|table]",
     "the event's timeline: stages, delivery attempts, dead letters", sluicectl_events_show},
    {"dlq list",
     "[--source S] [--stage S] [--since TIME] [--status new|replayed|discarded|all] [--limit N] "
     "[-o json|table]",
     "dead letters, newest first", sluicectl_dlq},
    {"dlq show", "ID [-o json|table]", "one dead letter in full", sluicectl_dlq},
    {"dlq replay",
     "ID... | --filter [--source S] [--stage S] [--since TIME] [--limit N] [--to-stage STAGE] "
     "[--dry-run] [--force] [--by NAME]",
     "put dead letters back at a stage's input topic", sluicectl_dlq},
    {"dlq discard", "ID... [--by NAME]", "mark new dead letters handled without a replay",
     sluicectl_dlq},
    {"completion", "bash|zsh",
     "the shell completion script; bash: source <(sluicectl completion bash)", cmd_completion},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct option options[] = {
    {"config", required_argument, NULL, 'c'},
    {"timeout", required_argument, NULL, 't'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static const char global_usage[] =
    "global options:\n"
    "  --config FILE       the pipeline file (default: $SLUICE_CONFIG)\n"
    "  --timeout DURATION  bound every broker and PostgreSQL call (1s, 500ms, 2m; default: each\n"
    "                      command's own, 10 to 30 s)\n"
    "  --help, --version\n"
    "output: read commands print a table, or one JSON document with -o json (alias --json);\n"
    "log records go to stderr. Exit codes: 0 done, 1 failed, 2 usage error.\n";

/* One command's words and synopsis after `lead`, then its summary indented. */
static void print_command(FILE *out, const struct ctl_command *c, const char *lead)
{
    fprintf(out, "%s%s%s%s\n", lead, c->words, *c->synopsis ? " " : "", c->synopsis);
    for (const char *p = c->summary; *p;) {
        size_t len = strcspn(p, "\n");
        fprintf(out, "      %.*s\n", (int)len, p);
        p += len + (p[len] == '\n');
    }
}

/* Whether `words` starts with the word `group` (NULL: every command is in it). */
static bool in_group(const char *words, const char *group)
{
    size_t len = group ? strlen(group) : 0;
    return !group || (strncmp(words, group, len) == 0 && words[len] == ' ');
}

/* The commands of `group` (all of them for NULL) and the global options. */
static void print_usage(FILE *out, const char *group)
{
    fprintf(out,
            "usage: sluicectl [--config FILE] [--timeout DURATION] COMMAND ...\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (in_group(commands[i].words, group))
            print_command(out, &commands[i], "  ");
    fprintf(out, "\n%s", global_usage);
}

/* Whether some command's first word is `word` and a second word follows it ("dlq"). */
static bool is_group(const char *word)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (in_group(commands[i].words, word))
            return true;
    return false;
}

static int cmd_completion(const char *config, int argc, char **argv)
{
    (void)config;
    if (argc != 2 || sluicectl_completion(argv[1], commands, N_COMMANDS, options, stdout) != 0) {
        fprintf(stderr, "usage: sluicectl completion bash|zsh\n");
        return EXIT_USAGE;
    }
    return EXIT_SUCCESS;
}

/* The row named by args[0] (and args[1] for a two-word command); NULL if none. *used: how many
 * words name it. */
static const struct ctl_command *find_command(int nargs, char **args, int *used)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const char *w = commands[i].words, *space = strchr(w, ' ');
        size_t len = space ? (size_t)(space - w) : strlen(w);
        if (strlen(args[0]) != len || strncmp(args[0], w, len) != 0)
            continue;
        if (!space) {
            *used = 1;
            return &commands[i];
        }
        if (nargs >= 2 && strcmp(args[1], space + 1) == 0) {
            *used = 2;
            return &commands[i];
        }
    }
    return NULL;
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

int main(int argc, char **argv)
{
    const char *config = getenv("SLUICE_CONFIG");
    int opt;
    long long timeout_ms;
    /* stdout is the command's output (JSON that scripts parse): log records go to stderr. */
    sl_log_set_fd(STDERR_FILENO);
    sl_log_init("sluicectl", SL_LOG_WARN);
    /* "+": stop at the first command word, so commands parse their own options. */
    while ((opt = getopt_long(argc, argv, "+c:hV", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 't':
            if (sl_conf_parse_duration_ms(optarg, &timeout_ms) != 0 || timeout_ms <= 0 ||
                timeout_ms > TIMEOUT_MAX) {
                fprintf(stderr,
                        "sluicectl: --timeout '%s': a duration from 1ms to 1h (1s, 500ms)\n",
                        optarg);
                return EXIT_USAGE;
            }
            ctl_set_timeout_ms((int)timeout_ms);
            break;
        case 'h':
            print_usage(stdout, NULL);
            return EXIT_SUCCESS;
        case 'V':
            printf("sluicectl %s\n", SLUICE_VERSION);
            return EXIT_SUCCESS;
        default:
            print_usage(stderr, NULL);
            return EXIT_USAGE;
        }
    }
    int nargs = argc - optind, used;
    char **args = argv + optind;
    const struct ctl_command *c = nargs > 0 ? find_command(nargs, args, &used) : NULL;
    if (!c) {
        /* A group's word alone ("dlq") or with --help: its commands. */
        bool help = nargs > 0 && wants_help(nargs - 1, args + 1);
        bool group = nargs > 0 && is_group(args[0]);
        if (!help && group && nargs > 1)
            fprintf(stderr, "sluicectl %s: unknown subcommand '%s'\n", args[0], args[1]);
        else if (!help && nargs > 0 && !group)
            fprintf(stderr, "sluicectl: unknown command '%s'\n", args[0]);
        print_usage(help ? stdout : stderr, group ? args[0] : NULL);
        return help ? EXIT_SUCCESS : EXIT_USAGE;
    }
    if (wants_help(nargs - used, args + used)) {
        fprintf(stdout, "usage: sluicectl [--config FILE] [--timeout DURATION] ");
        print_command(stdout, c, "");
        fprintf(stdout, "\n%s", global_usage);
        return EXIT_SUCCESS;
    }
    return c->run(config, nargs - used + 1, args + used - 1);
}
