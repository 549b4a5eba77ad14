/* Integration tests of the migration runner against real PostgreSQL: from an empty schema and
 * again, a dry run, a changed file, a failing file, files out of order, a database newer than
 * the directory, and concurrent runs serialised by the advisory lock. Each test works in a
 * schema of its own; tests that edit migrations work on a copy of schemas/sql. */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "pg_testenv.h"
#include "sl_id.h"
#include "sl_pg_migrate.h"
#include "sl_test.h"

/* The migrations in the repository. */
#define REPO_MIGRATIONS 5

static const char *repo_dir(void)
{
    static char dir[1024];
    snprintf(dir, sizeof(dir), "%s/schemas/sql", sl_test_source_dir());
    return dir;
}

static void write_file(const char *path, const char *text, const char *mode)
{
    FILE *f = fopen(path, mode);
    SL_REQUIRE(f);
    fputs(text, f);
    fclose(f);
}

/* A copy of the repository's migrations in a scratch directory of the build tree. */
static void copy_migrations(char *dir, size_t size)
{
    char id[SL_UUID_STR_LEN + 1];
    sl_uuid_v7(id);
    snprintf(dir, size, "%s/tests/pg-migrations-%s", sl_test_binary_dir(), id);
    SL_REQUIRE(mkdir(dir, 0755) == 0);
    DIR *d = opendir(repo_dir());
    SL_REQUIRE(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strstr(e->d_name, ".sql"))
            continue;
        char from[2048], to[2048], buf[65536];
        snprintf(from, sizeof(from), "%s/%s", repo_dir(), e->d_name);
        snprintf(to, sizeof(to), "%s/%s", dir, e->d_name);
        FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
        SL_REQUIRE(in && out);
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
            SL_REQUIRE(fwrite(buf, 1, n, out) == n);
        fclose(in);
        fclose(out);
    }
    closedir(d);
}

static void remove_dir(const char *dir)
{
    char cmd[2100];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    SL_CHECK(system(cmd) == 0);
}

static sl_pg_t *fresh(char *dsn)
{
    char schema[64];
    pg_test_schema(schema, dsn);
    return pg_test_handle(dsn, -1);
}

static int migrate(sl_pg_t *pg, const char *dir, bool dry_run, struct sl_pg_migrate_result *res,
                   struct sl_err *err)
{
    return sl_pg_migrate(pg, dir, dry_run, NULL, NULL, res, err);
}

static long long count(sl_pg_t *pg, const char *sql)
{
    return pg_test_int(pg, sql);
}

SL_TEST(from_empty_then_nothing_to_apply)
{
    char dsn[PG_TEST_DSN_MAX];
    sl_pg_t *pg = fresh(dsn);
    struct sl_err err;
    struct sl_pg_migrate_result res;
    SL_REQUIRE(migrate(pg, repo_dir(), false, &res, &err) == 0);
    SL_CHECK_INT(res.files, REPO_MIGRATIONS);
    SL_CHECK_INT(res.applied, REPO_MIGRATIONS);
    SL_CHECK_INT(res.version, REPO_MIGRATIONS);
    SL_CHECK(strncmp(res.schema, "sluice_test_", 12) == 0);
    static const char *const tables[] = {
        "audit",          "dead_letters",     "dead_letter_replays", "event_status",
        "reconcile_runs", "reconcile_hourly", "schema_migrations",   "admin_actions"};
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        char sql[200];
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND "
                 "tablename = '%s'",
                 tables[i]);
        SL_CHECK_INT(count(pg, sql), 1);
    }
    SL_CHECK_INT(count(pg, "SELECT count(*) FROM schema_migrations WHERE length(checksum) = 64"),
                 REPO_MIGRATIONS);
    char name[64];
    SL_CHECK_STR(
        pg_test_str(pg, "SELECT name FROM schema_migrations WHERE version = 1", name, sizeof(name)),
        "audit");

    SL_REQUIRE(migrate(pg, repo_dir(), false, &res, &err) == 0);
    SL_CHECK_INT(res.applied, 0);
    SL_CHECK_INT(res.version, REPO_MIGRATIONS);
    SL_CHECK_INT(count(pg, "SELECT count(*) FROM schema_migrations"), REPO_MIGRATIONS);
    /* A second handle, a new session: still nothing. */
    sl_pg_t *other = pg_test_handle(dsn, -1);
    SL_REQUIRE(migrate(other, repo_dir(), false, &res, &err) == 0);
    SL_CHECK_INT(res.applied, 0);
    sl_pg_destroy(other);
    sl_pg_destroy(pg);
}

struct events {
    int pending[8], npending;
};

static void record(void *opaque, enum sl_pg_migrate_event ev, int version, const char *name)
{
    struct events *e = opaque;
    if (ev == SL_PG_MIGRATE_PENDING && e->npending < 8)
        e->pending[e->npending++] = version;
}

SL_TEST(dry_run_changes_nothing)
{
    char dsn[PG_TEST_DSN_MAX];
    sl_pg_t *pg = fresh(dsn);
    struct sl_err err;
    struct sl_pg_migrate_result res;
    struct events ev = {0};
    SL_REQUIRE(sl_pg_migrate(pg, repo_dir(), true, record, &ev, &res, &err) == 0);
    SL_CHECK_INT(res.applied, REPO_MIGRATIONS);
    SL_CHECK_INT(res.version, 0);
    SL_CHECK_INT(ev.npending, REPO_MIGRATIONS);
    SL_CHECK_INT(ev.pending[0], 1);
    SL_CHECK_INT(ev.pending[2], 3);
    SL_CHECK_INT(count(pg, "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"),
                 0);
    SL_REQUIRE(migrate(pg, repo_dir(), false, &res, &err) == 0);
    ev.npending = 0;
    SL_REQUIRE(sl_pg_migrate(pg, repo_dir(), true, record, &ev, &res, &err) == 0);
    SL_CHECK_INT(res.applied, 0);
    SL_CHECK_INT(ev.npending, 0);
    SL_CHECK_INT(res.version, REPO_MIGRATIONS);
    sl_pg_destroy(pg);
}

SL_TEST(a_changed_migration_is_refused)
{
    char dsn[PG_TEST_DSN_MAX], dir[1024], path[1200];
    sl_pg_t *pg = fresh(dsn);
    struct sl_err err;
    struct sl_pg_migrate_result res;
    copy_migrations(dir, sizeof(dir));
    SL_REQUIRE(migrate(pg, dir, false, &res, &err) == 0);
    /* Edit an applied file and add a new one: nothing at all is applied. */
    snprintf(path, sizeof(path), "%s/0002_dead_letters.sql", dir);
    write_file(path, "-- an innocent comment\n", "a");
    snprintf(path, sizeof(path), "%s/0006_more.sql", dir);
    write_file(path, "CREATE TABLE more (v int);\n", "w");
    SL_CHECK(migrate(pg, dir, false, &res, &err) == -1);
    SL_CHECK_INT(err.code, SL_ERR_CONFIG);
    SL_CHECK_CONTAINS(err.msg, "0002_dead_letters.sql: changed after it was applied");
    SL_CHECK(migrate(pg, dir, true, &res, &err) == -1); /* the dry run says so too */
    SL_CHECK_CONTAINS(err.msg, "changed after it was applied");
    SL_CHECK_INT(count(pg, "SELECT count(*) FROM pg_tables WHERE tablename = 'more' AND "
                           "schemaname = current_schema()"),
                 0);
    SL_CHECK_INT(count(pg, "SELECT max(version) FROM schema_migrations"), REPO_MIGRATIONS);
    remove_dir(dir);
    sl_pg_destroy(pg);
}

SL_TEST(a_new_migration_applies_and_a_failing_one_keeps_nothing)
{
    char dsn[PG_TEST_DSN_MAX], dir[1024], path[1200];
    sl_pg_t *pg = fresh(dsn);
    struct sl_err err;
    struct sl_pg_migrate_result res;
    copy_migrations(dir, sizeof(dir));
    SL_REQUIRE(migrate(pg, dir, false, &res, &err) == 0);
    snprintf(path, sizeof(path), "%s/0006_more.sql", dir);
    write_file(path, "CREATE TABLE more (v int);\nINSERT INTO more VALUES (1);\n", "w");
    snprintf(path, sizeof(path), "%s/0007_broken.sql", dir);
    write_file(path, "CREATE TABLE broken (v int);\n-- then\nINSERT INTO broken VALUES ('x');\n",
               "w");
    SL_CHECK(migrate(pg, dir, false, &res, &err) == -1);
    SL_CHECK_INT(err.code, SL_ERR_INVALID);
    SL_CHECK_CONTAINS(err.msg, "0007_broken.sql:3:");
    SL_CHECK_CONTAINS(err.msg, "invalid input syntax for type integer");
    /* 0006 went in before 0007 failed; 0007 left nothing, not even its record. */
    SL_CHECK_INT(count(pg, "SELECT count(*) FROM more"), 1);
    SL_CHECK_INT(count(pg, "SELECT count(*) FROM pg_tables WHERE tablename = 'broken' AND "
                           "schemaname = current_schema()"),
                 0);
    SL_CHECK_INT(count(pg, "SELECT max(version) FROM schema_migrations"), 6);
    /* Fixed: it applies. */
    write_file(path, "CREATE TABLE broken (v int);\n", "w");
    SL_REQUIRE(migrate(pg, dir, false, &res, &err) == 0);
    SL_CHECK_INT(res.applied, 1);
    SL_CHECK_INT(res.version, 7);
    remove_dir(dir);
    sl_pg_destroy(pg);
}

SL_TEST(out_of_order_newer_database_and_bad_names_are_refused)
{
    char dsn[PG_TEST_DSN_MAX], dir[1024], path[1200];
    sl_pg_t *pg = fresh(dsn);
    struct sl_err err;
    struct sl_pg_migrate_result res;
    copy_migrations(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/0007_later.sql", dir);
    write_file(path, "CREATE TABLE later (v int);\n", "w");
    SL_REQUIRE(migrate(pg, dir, false, &res, &err) == 0);
    snprintf(path, sizeof(path), "%s/0006_between.sql", dir);
    write_file(path, "CREATE TABLE between_ (v int);\n", "w");
    SL_CHECK(migrate(pg, dir, false, &res, &err) == -1);
    SL_CHECK_INT(err.code, SL_ERR_CONFIG);
    SL_CHECK_CONTAINS(err.msg, "0006_between.sql is not applied but the later 0007 is");
    SL_REQUIRE(remove(path) == 0);
    /* The database has 0007; a directory without it is an older sluicectl. */
    snprintf(path, sizeof(path), "%s/0007_later.sql", dir);
    SL_REQUIRE(remove(path) == 0);
    SL_CHECK(migrate(pg, dir, false, &res, &err) == -1);
    SL_CHECK_CONTAINS(err.msg, "the database has migration 0007_later");
    snprintf(path, sizeof(path), "%s/5_oops.sql", dir);
    write_file(path, "SELECT 1;\n", "w");
    SL_CHECK(migrate(pg, dir, false, &res, &err) == -1);
    SL_CHECK_CONTAINS(err.msg, "5_oops.sql: a migration is named NNNN_name.sql");
    SL_CHECK(migrate(pg, "/nonexistent/sql", false, &res, &err) == -1);
    SL_CHECK_CONTAINS(err.msg, "/nonexistent/sql");
    remove_dir(dir);
    sl_pg_destroy(pg);
}

/* ---- concurrent runs ---- */

struct run {
    pthread_t thread;
    const char *dsn;
    atomic_int waiting;
    int rc;
    struct sl_pg_migrate_result res;
    struct sl_err err;
};

static void on_event(void *opaque, enum sl_pg_migrate_event ev, int version, const char *name)
{
    struct run *run = opaque;
    if (ev == SL_PG_MIGRATE_WAITING)
        atomic_store(&run->waiting, 1);
}

static void *run_migrate(void *arg)
{
    struct run *run = arg;
    struct sl_pg_opts opts = {.statement_timeout_ms = -1};
    sl_pg_t *pg = sl_pg_new(run->dsn, &opts, &run->err);
    run->rc = pg ? sl_pg_migrate(pg, repo_dir(), false, on_event, run, &run->res, &run->err) : -1;
    sl_pg_destroy(pg);
    return NULL;
}

SL_TEST(a_run_waits_for_the_lock_holder)
{
    char dsn[PG_TEST_DSN_MAX];
    sl_pg_t *holder = fresh(dsn);
    pg_test_exec(holder, "SELECT pg_advisory_lock(hashtext('" SL_PG_MIGRATE_LOCK
                         "'), hashtext(current_schema()))");
    struct run run = {.dsn = dsn};
    SL_REQUIRE(pthread_create(&run.thread, NULL, run_migrate, &run) == 0);
    /* Wait (bounded) until the run reports that it waits for the lock. */
    for (int i = 0; i < 6000 && !atomic_load(&run.waiting); i++)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    SL_CHECK(atomic_load(&run.waiting));
    /* Blocked before touching anything. */
    SL_CHECK_INT(count(holder, "SELECT count(*) FROM pg_tables WHERE schemaname = "
                               "current_schema()"),
                 0);
    pg_test_exec(holder, "SELECT pg_advisory_unlock(hashtext('" SL_PG_MIGRATE_LOCK
                         "'), hashtext(current_schema()))");
    pthread_join(run.thread, NULL);
    SL_CHECK_INT(run.rc, 0);
    SL_CHECK_INT(run.res.applied, REPO_MIGRATIONS);
    SL_CHECK_INT(count(holder, "SELECT count(*) FROM schema_migrations"), REPO_MIGRATIONS);
    sl_pg_destroy(holder);
}

SL_TEST(concurrent_runs_apply_each_migration_once)
{
    char dsn[PG_TEST_DSN_MAX];
    sl_pg_t *pg = fresh(dsn);
    struct run runs[4];
    for (int i = 0; i < 4; i++) {
        runs[i] = (struct run){.dsn = dsn};
        SL_REQUIRE(pthread_create(&runs[i].thread, NULL, run_migrate, &runs[i]) == 0);
    }
    int applied = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(runs[i].thread, NULL);
        if (runs[i].rc != 0)
            sl_test_fail(__FILE__, __LINE__, "run %d: %s", i, runs[i].err.msg);
        applied += runs[i].res.applied;
    }
    SL_CHECK_INT(applied, REPO_MIGRATIONS);
    SL_CHECK_INT(count(pg, "SELECT count(*) FROM schema_migrations"), REPO_MIGRATIONS);
    sl_pg_destroy(pg);
}

int main(void)
{
    int rc = sl_test_run_all();
    pg_test_cleanup();
    return rc;
}
