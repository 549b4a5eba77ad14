#include "sl_pg_migrate.h"
#include "sl_log.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct migration {
    int version;
    char name[SL_PG_MIGRATION_NAME_MAX + 1];
    char path[PATH_MAX];
    char checksum[2 * 32 + 1]; /* SHA-256, hex */
    char *sql;
};

struct plan {
    struct migration *m; /* sorted by version */
    int n, cap;
};

static void plan_free(struct plan *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->m[i].sql);
    free(p->m);
    p->m = NULL;
    p->n = p->cap = 0;
}

/* "NNNN_name.sql" into version and name; false for anything else. */
static bool parse_name(const char *file, int *version, char *name)
{
    size_t len = strlen(file);
    if (len < 10 || strcmp(file + len - 4, ".sql") != 0 || file[4] != '_')
        return false;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        if (file[i] < '0' || file[i] > '9')
            return false;
        v = v * 10 + (file[i] - '0');
    }
    size_t n = len - 9;
    if (v == 0 || n > SL_PG_MIGRATION_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = file[5 + i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
            return false;
    }
    memcpy(name, file + 5, n);
    name[n] = '\0';
    *version = v;
    return true;
}

/* Reads the file (at most SL_PG_MIGRATION_FILE_MAX bytes, no NUL) and its SHA-256. */
static int read_migration(struct migration *m, struct sl_err *err)
{
    FILE *f = fopen(m->path, "rb");
    int rc = -1;
    if (!f)
        return sl_err_set(err, SL_ERR_IO, "%s: %s", m->path, strerror(errno));
    m->sql = malloc(SL_PG_MIGRATION_FILE_MAX + 1);
    if (!m->sql) {
        sl_err_set(err, SL_ERR_NOMEM, "%s: out of memory", m->path);
        goto out;
    }
    size_t len = fread(m->sql, 1, SL_PG_MIGRATION_FILE_MAX + 1, f);
    if (ferror(f)) {
        sl_err_set(err, SL_ERR_IO, "%s: read error", m->path);
        goto out;
    }
    if (len > SL_PG_MIGRATION_FILE_MAX) {
        sl_err_set(err, SL_ERR_CONFIG, "%s: larger than %d bytes", m->path,
                   SL_PG_MIGRATION_FILE_MAX);
        goto out;
    }
    if (memchr(m->sql, '\0', len)) {
        sl_err_set(err, SL_ERR_CONFIG, "%s: contains a NUL byte", m->path);
        goto out;
    }
    m->sql[len] = '\0';
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(m->sql, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
        sl_err_set(err, SL_ERR_INTERNAL, "%s: SHA-256 failed", m->path);
        goto out;
    }
    for (unsigned int i = 0; i < mdlen; i++)
        snprintf(m->checksum + 2 * i, 3, "%02x", md[i]);
    rc = 0;
out:
    fclose(f);
    return rc;
}

static int by_version(const void *a, const void *b)
{
    const struct migration *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

/* Every NNNN_name.sql of `dir`, read and sorted. Other *.sql names are errors (a typo would
 * otherwise be skipped silently); files not ending in .sql are ignored. */
static int plan_load(const char *dir, struct plan *p, struct sl_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return sl_err_set(err, SL_ERR_CONFIG, "migrations directory %s: %s", dir, strerror(errno));
    int rc = -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 4, ".sql") != 0)
            continue;
        if (p->n == SL_PG_MIGRATIONS_MAX) {
            sl_err_set(err, SL_ERR_CONFIG, "%s: more than %d migrations", dir,
                       SL_PG_MIGRATIONS_MAX);
            goto out;
        }
        if (p->n == p->cap) {
            int cap = p->cap ? 2 * p->cap : 16;
            struct migration *more = realloc(p->m, (size_t)cap * sizeof(*more));
            if (!more) {
                sl_err_set(err, SL_ERR_NOMEM, "migrations: out of memory");
                goto out;
            }
            p->m = more;
            p->cap = cap;
        }
        struct migration *m = &p->m[p->n];
        m->sql = NULL;
        if (!parse_name(e->d_name, &m->version, m->name)) {
            sl_err_set(err, SL_ERR_CONFIG,
                       "%s/%s: a migration is named NNNN_name.sql (version 0001-9999; name of "
                       "a-z, 0-9, _)",
                       dir, e->d_name);
            goto out;
        }
        if ((size_t)snprintf(m->path, sizeof(m->path), "%s/%s", dir, e->d_name) >=
            sizeof(m->path)) {
            sl_err_set(err, SL_ERR_CONFIG, "%s: path too long", dir);
            goto out;
        }
        p->n++;
        if (read_migration(m, err) != 0)
            goto out;
    }
    if (p->n > 0)
        qsort(p->m, (size_t)p->n, sizeof(*p->m), by_version);
    for (int i = 1; i < p->n; i++)
        if (p->m[i].version == p->m[i - 1].version) {
            sl_err_set(err, SL_ERR_CONFIG, "%s and %s have the same version", p->m[i - 1].path,
                       p->m[i].path);
            goto out;
        }
    rc = 0;
out:
    closedir(d);
    if (rc != 0)
        plan_free(p);
    return rc;
}

/* Checks the recorded migrations against the files; *applied[i] tells whether p->m[i] is
 * recorded. `rows` is (version, name, checksum) ordered by version. */
static int plan_check(const struct plan *p, const PGresult *rows, bool *applied, int *version,
                      struct sl_err *err)
{
    *version = 0;
    for (int r = 0; r < PQntuples(rows); r++) {
        int v = atoi(PQgetvalue(rows, r, 0));
        const char *name = PQgetvalue(rows, r, 1), *sum = PQgetvalue(rows, r, 2);
        const struct migration *m = NULL;
        for (int i = 0; i < p->n && !m; i++)
            if (p->m[i].version == v) {
                m = &p->m[i];
                applied[i] = true;
            }
        if (!m)
            return sl_err_set(err, SL_ERR_CONFIG,
                              "the database has migration %04d_%s, which is not in this "
                              "directory: the schema is newer than this sluicectl",
                              v, name);
        if (strcmp(m->checksum, sum) != 0)
            return sl_err_set(err, SL_ERR_CONFIG,
                              "%s: changed after it was applied (sha256 %.12s... recorded, "
                              "%.12s... on disk); add a new migration instead of editing an "
                              "applied one",
                              m->path, sum, m->checksum);
        *version = v;
    }
    for (int i = 0; i < p->n; i++)
        if (!applied[i] && p->m[i].version < *version)
            return sl_err_set(err, SL_ERR_CONFIG,
                              "%s is not applied but the later %04d is: migrations only ever "
                              "go at the end; give it a number after %04d",
                              p->m[i].path, *version, *version);
    return 0;
}

/* One migration and its record, in one transaction. */
static int apply(sl_pg_t *pg, const struct migration *m, struct sl_err *err)
{
    char version[16];
    snprintf(version, sizeof(version), "%d", m->version);
    const char *params[] = {version, m->name, m->checksum};
    int line = 0;
    if (sl_pg_begin(pg, err) != 0)
        return -1;
    if (sl_pg_script(pg, m->sql, &line, err) != 0) {
        if (line > 0)
            sl_err_prefix(err, "%s:%d", m->path, line);
        else
            sl_err_prefix(err, "%s", m->path);
        goto fail;
    }
    if (sl_pg_exec(pg,
                   "INSERT INTO schema_migrations (version, name, checksum) "
                   "VALUES ($1::integer, $2, $3)",
                   3, params, NULL, err) != 0 ||
        sl_pg_commit(pg, err) != 0) {
        sl_err_prefix(err, "%s", m->path);
        goto fail;
    }
    return 0;
fail:
    sl_pg_rollback(pg);
    return -1;
}

static const char lock_sql[] =
    "SELECT pg_try_advisory_lock(hashtext($1), hashtext(current_schema()))";
static const char wait_sql[] = "SELECT pg_advisory_lock(hashtext($1), hashtext(current_schema()))";
static const char unlock_sql[] =
    "SELECT pg_advisory_unlock(hashtext($1), hashtext(current_schema()))";

static const char table_sql[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                " version    integer     PRIMARY KEY,"
                                " name       text        NOT NULL,"
                                " checksum   text        NOT NULL,"
                                " applied_at timestamptz NOT NULL DEFAULT now())";

int sl_pg_migrate(sl_pg_t *pg, const char *dir, bool dry_run, sl_pg_migrate_cb cb, void *opaque,
                  struct sl_pg_migrate_result *res, struct sl_err *err)
{
    struct plan p = {0};
    PGresult *r = NULL;
    bool *applied = NULL;
    unsigned long locked = 0; /* the session holding the lock; 0: none */
    const char *lock_key[] = {SL_PG_MIGRATE_LOCK};
    int rc = -1;
    memset(res, 0, sizeof(*res));
    if (plan_load(dir, &p, err) != 0)
        return -1;
    res->files = p.n;
    applied = calloc((size_t)p.n + 1, sizeof(*applied));
    if (!applied) {
        sl_err_set(err, SL_ERR_NOMEM, "migrations: out of memory");
        goto out;
    }
    if (sl_pg_exec(pg, "SELECT current_schema()", 0, NULL, &r, err) != 0)
        goto out;
    if (PQgetisnull(r, 0, 0)) {
        sl_err_set(err, SL_ERR_CONFIG,
                   "%s: no schema to migrate: no schema of the search_path exists",
                   sl_pg_where(pg));
        goto out;
    }
    snprintf(res->schema, sizeof(res->schema), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    r = NULL;

    if (!dry_run) {
        if (sl_pg_exec(pg, lock_sql, 1, lock_key, &r, err) != 0)
            goto out;
        if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
            if (cb)
                cb(opaque, SL_PG_MIGRATE_WAITING, 0, "");
            if (sl_pg_exec(pg, wait_sql, 1, lock_key, NULL, err) != 0)
                goto out;
        }
        locked = sl_pg_session(pg);
        PQclear(r);
        r = NULL;
        if (sl_pg_exec(pg, table_sql, 0, NULL, NULL, err) != 0)
            goto out;
    } else {
        if (sl_pg_exec(pg, "SELECT to_regclass(format('%I.schema_migrations', current_schema()))",
                       0, NULL, &r, err) != 0)
            goto out;
        bool fresh = PQgetisnull(r, 0, 0);
        PQclear(r);
        r = NULL;
        if (fresh) {
            for (int i = 0; i < p.n; i++)
                if (cb)
                    cb(opaque, SL_PG_MIGRATE_PENDING, p.m[i].version, p.m[i].name);
            res->applied = p.n;
            rc = 0;
            goto out;
        }
    }

    if (sl_pg_exec(pg, "SELECT version, name, checksum FROM schema_migrations ORDER BY version", 0,
                   NULL, &r, err) != 0 ||
        plan_check(&p, r, applied, &res->version, err) != 0)
        goto out;
    for (int i = 0; i < p.n; i++) {
        if (applied[i])
            continue;
        if (dry_run) {
            if (cb)
                cb(opaque, SL_PG_MIGRATE_PENDING, p.m[i].version, p.m[i].name);
            res->applied++;
            continue;
        }
        if (cb)
            cb(opaque, SL_PG_MIGRATE_APPLYING, p.m[i].version, p.m[i].name);
        if (apply(pg, &p.m[i], err) != 0)
            goto out;
        res->applied++;
        res->version = p.m[i].version;
        if (cb)
            cb(opaque, SL_PG_MIGRATE_APPLIED, p.m[i].version, p.m[i].name);
    }
    rc = 0;
out:
    PQclear(r);
    /* Give the lock back now rather than at disconnect; a lost session took it with it. */
    if (locked && locked == sl_pg_session(pg) &&
        sl_pg_exec(pg, unlock_sql, 1, lock_key, NULL, NULL) != 0)
        SL_DEBUG("%s: could not release the migration lock; it goes with the session",
                 sl_pg_where(pg));
    free(applied);
    plan_free(&p);
    return rc;
}
