#include "sluicectl_db.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sl_pg.h"
#include "sl_pg_migrate.h"
#include "sl_pg_query.h"
#include "sl_pipeline.h"
#include "sluicectl_common.h"

#define EXIT_USAGE    2
#define AHEAD_DEFAULT 7

static const char usage[] =
    "usage: sluicectl [--config FILE] db migrate [--dry-run] [--dir DIR] [--ahead DAYS]\n"
    "       sluicectl [--config FILE] db partitions [--ahead DAYS] [--retain DAYS]\n"
    "\n"
    "  migrate      apply pending migrations (each in a transaction; idempotent), then create\n"
    "               the audit partitions of today and DAYS ahead (default 7)\n"
    "    --dry-run  list what would be applied; change nothing\n"
    "    --dir DIR  the migrations (default: $SLUICE_SQL_DIR, <bin>/../share/sluice/sql,\n"
    "               the source tree's schemas/sql)\n"
    "  partitions   create the audit partitions of today and DAYS ahead (default 7); with\n"
    "               --retain, drop those whose whole day is more than DAYS ago; list them\n"
    "\n"
    "The database: the pipeline file's postgres.dsn, else $SLUICE_PG_DSN.\n";

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The migrations directory: --dir, $SLUICE_SQL_DIR, next to an installed binary, or the source
 * tree this binary was built from. A directory named explicitly must exist. */
static int find_dir(const char *opt, char *out, size_t size)
{
    const char *env = getenv("SLUICE_SQL_DIR");
    const char *named = opt ? opt : env && *env ? env : NULL;
    if (named) {
        if (!is_dir(named)) {
            fprintf(stderr, "sluicectl db migrate: %s: not a directory\n", named);
            return -1;
        }
        if ((size_t)snprintf(out, size, "%s", named) >= size) {
            fprintf(stderr, "sluicectl db migrate: %s: path too long\n", named);
            return -1;
        }
        return 0;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            if ((size_t)snprintf(out, size, "%s/../share/sluice/sql", exe) < size && is_dir(out))
                return 0;
        }
    }
    if ((size_t)snprintf(out, size, "%s", SLUICE_SQL_SOURCE_DIR) < size && is_dir(out))
        return 0;
    fprintf(stderr,
            "sluicectl db migrate: no migrations directory (looked for "
            "<bin>/../share/sluice/sql and %s); use --dir or SLUICE_SQL_DIR\n",
            SLUICE_SQL_SOURCE_DIR);
    return -1;
}

/* "--name N" at argv[*i] with 0 <= N <= max; advances *i. */
static bool int_opt(int argc, char **argv, int *i, const char *name, int max, int *out)
{
    if (strcmp(argv[*i], name) != 0 || *i + 1 >= argc)
        return false;
    char *end;
    errno = 0;
    long v = strtol(argv[*i + 1], &end, 10);
    if (errno || end == argv[*i + 1] || *end || v < 0 || v > max)
        return false;
    *out = (int)v;
    (*i)++;
    return true;
}

/* A handle on the pipeline's database, with no statement timeout unless --timeout asks for one: a
 * migration may rewrite a large table. */
static sl_pg_t *open_db(const char *config, const char *cmd)
{
    struct sl_err err;
    sl_pg_t *pg = NULL;
    sl_conf_t *conf = NULL;
    if (config && !(conf = sl_pipeline_load(config, &err)))
        goto fail;
    if (!(pg = ctl_pg_open(conf, -1, &err)))
        goto fail;
    sl_conf_destroy(conf);
    return pg;
fail:
    fprintf(stderr, "sluicectl db %s: %s\n", cmd, err.msg);
    sl_conf_destroy(conf);
    return NULL;
}

static void on_progress(void *opaque, enum sl_pg_migrate_event ev, int version, const char *name)
{
    switch (ev) {
    case SL_PG_MIGRATE_WAITING:
        printf("waiting for another migration run to finish (advisory lock)\n");
        break;
    case SL_PG_MIGRATE_PENDING:
        printf("would apply %04d_%s\n", version, name);
        break;
    case SL_PG_MIGRATE_APPLYING:
        printf("applying %04d_%s\n", version, name);
        break;
    case SL_PG_MIGRATE_APPLIED:
        printf("applied %04d_%s\n", version, name);
        break;
    }
    fflush(stdout);
}

static int ensure_partitions(sl_pg_t *pg, const char *cmd, int ahead)
{
    struct sl_err err;
    int created = 0;
    if (sl_pg_audit_partitions_ensure(pg, ahead, &created, &err) != 0) {
        fprintf(stderr, "sluicectl db %s: audit partitions: %s\n", cmd, err.msg);
        return -1;
    }
    printf("audit partitions: today and %d days ahead in place (%d created)\n", ahead, created);
    return 0;
}

static int cmd_migrate(const char *config, int argc, char **argv)
{
    bool dry_run = false;
    const char *dir_opt = NULL;
    int ahead = AHEAD_DEFAULT;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dry-run") == 0)
            dry_run = true;
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir_opt = argv[++i];
        else if (!int_opt(argc, argv, &i, "--ahead", 365, &ahead)) {
            fprintf(stderr, "sluicectl db migrate: unexpected argument '%s'\n%s", argv[i], usage);
            return EXIT_USAGE;
        }
    }
    char dir[PATH_MAX];
    if (find_dir(dir_opt, dir, sizeof(dir)) != 0)
        return EXIT_FAILURE;
    sl_pg_t *pg = open_db(config, "migrate");
    if (!pg)
        return EXIT_FAILURE;
    struct sl_err err;
    struct sl_pg_migrate_result res;
    int rc = EXIT_FAILURE;
    printf("%s, migrations in %s\n", sl_pg_where(pg), dir);
    if (sl_pg_migrate(pg, dir, dry_run, on_progress, NULL, &res, &err) != 0) {
        fprintf(stderr, "sluicectl db migrate: %s\n", err.msg);
        goto out;
    }
    if (dry_run)
        printf("dry run: %d of %d migrations to apply; schema %s at version %d\n", res.applied,
               res.files, res.schema, res.version);
    else if (res.applied == 0)
        printf("nothing to apply: schema %s at version %d (%d migrations)\n", res.schema,
               res.version, res.files);
    else
        printf("%d applied: schema %s at version %d\n", res.applied, res.schema, res.version);
    if (!dry_run && ensure_partitions(pg, "migrate", ahead) != 0)
        goto out;
    rc = EXIT_SUCCESS;
out:
    sl_pg_destroy(pg);
    return rc;
}

static int cmd_partitions(const char *config, int argc, char **argv)
{
    int ahead = AHEAD_DEFAULT, retain = 0;
    for (int i = 1; i < argc; i++) {
        if (int_opt(argc, argv, &i, "--ahead", 365, &ahead))
            continue;
        if (int_opt(argc, argv, &i, "--retain", 36500, &retain) && retain >= 1)
            continue;
        fprintf(stderr, "sluicectl db partitions: unexpected argument '%s'\n%s", argv[i], usage);
        return EXIT_USAGE;
    }
    sl_pg_t *pg = open_db(config, "partitions");
    if (!pg)
        return EXIT_FAILURE;
    struct sl_err err;
    json_t *dropped = NULL, *parts = NULL;
    int rc = EXIT_FAILURE;
    if (ensure_partitions(pg, "partitions", ahead) != 0)
        goto out;
    if (retain && sl_pg_audit_partitions_drop(pg, retain, &dropped, &err) != 0) {
        fprintf(stderr, "sluicectl db partitions: retention: %s\n", err.msg);
        goto out;
    }
    size_t i;
    json_t *v;
    json_array_foreach(dropped, i, v) printf("dropped %s\n", json_string_value(v));
    if (sl_pg_audit_partitions(pg, &parts, &err) != 0) {
        fprintf(stderr, "sluicectl db partitions: %s\n", err.msg);
        goto out;
    }
    json_array_foreach(parts, i, v)
    {
        const char *name = json_string_value(json_object_get(v, "name"));
        const char *day = json_string_value(json_object_get(v, "day"));
        json_t *rows = json_object_get(v, "rows");
        if (json_is_integer(rows))
            printf("%-24s %-10s ~%lld rows\n", name, day ? day : "-",
                   (long long)json_integer_value(rows));
        else
            printf("%-24s %-10s (not analyzed yet)\n", name, day ? day : "-");
    }
    rc = EXIT_SUCCESS;
out:
    json_decref(dropped);
    json_decref(parts);
    sl_pg_destroy(pg);
    return rc;
}

int sluicectl_db(const char *config, int argc, char **argv)
{
    return strcmp(argv[0], "migrate") == 0 ? cmd_migrate(config, argc, argv)
                                           : cmd_partitions(config, argc, argv);
}
