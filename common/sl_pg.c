#include "sl_pg.h"
#include "sl_log.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest piece of a statement quoted in messages. */
#define LABEL_MAX 64

struct sl_pg {
    PGconn *conn; /* NULL until the first call and after a lost connection */
    char *dsn;    /* holds the password: wiped on destroy */
    size_t dsn_len;
    struct sl_pg_opts opts;
    char where[320]; /* "postgres host:port/db" */
    /* The connection was lost inside a transaction: refuse calls until sl_pg_rollback(). */
    bool txn_lost;
    sl_pg_copy_t *copy;              /* the COPY in progress, if any */
    unsigned long session, sessions; /* the current session's number (0: none), and the last */
    /* Staging tables created in this session (forgotten on reconnect). */
    char *staging[SL_PG_STAGING_MAX];
    size_t nstaging;
};

struct sl_pg_copy {
    sl_pg_t *pg;
    PGTransactionStatusType was; /* before the COPY command: for fail() */
    bool failed;                 /* err holds the first failure */
    bool done;                   /* the server's side of the COPY is over already */
    struct sl_err err;
    int fields; /* fields written in the current row */
    /* Upserts only. */
    bool upsert;
    bool own_txn; /* BEGIN was ours: COMMIT or ROLLBACK is too */
    char *insert, *before, *clear;
    size_t len;
    char buf[SL_PG_COPY_BUF];
};

/* ---- messages ---- */

/* `in` as one line: runs of whitespace become one space, trailing ones go. */
static void one_line(const char *in, char *out, size_t size)
{
    size_t n = 0;
    bool space = false;
    for (const char *p = in ? in : ""; *p && n + 1 < size; p++) {
        if (isspace((unsigned char)*p)) {
            space = n > 0;
            continue;
        }
        if (space && n + 2 < size)
            out[n++] = ' ';
        space = false;
        out[n++] = *p;
    }
    out[n] = '\0';
}

/* The start of a statement, for messages: "INSERT INTO audit (at, stage, ...". */
static void label(const char *sql, char *out, size_t size)
{
    char line[LABEL_MAX + 4];
    one_line(sql, line, sizeof(line));
    if (strlen(line) > LABEL_MAX)
        memcpy(line + LABEL_MAX - 3, "...", 4);
    snprintf(out, size, "%s", line);
}

static void on_notice(void *arg, const PGresult *res)
{
    const sl_pg_t *pg = arg;
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    char msg[SL_ERR_MSG_MAX];
    one_line(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY), msg, sizeof(msg));
    if (severity && strcmp(severity, "WARNING") == 0)
        SL_WARN("%s: %s", pg->where, msg);
    else
        SL_DEBUG("%s: %s: %s", pg->where, severity ? severity : "NOTICE", msg);
}

/* ---- the DSN ---- */

static int dsn_check(const char *dsn, PQconninfoOption **parsed, struct sl_err *err)
{
    if (!dsn || !*dsn)
        return sl_err_set(err, SL_ERR_CONFIG, "postgres dsn is empty");
    if (strnlen(dsn, SL_PG_DSN_MAX + 1) > SL_PG_DSN_MAX)
        return sl_err_set(err, SL_ERR_CONFIG, "postgres dsn is longer than %d bytes",
                          SL_PG_DSN_MAX);
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &msg);
    /* libpq's message may quote a piece of the DSN, which may be the password. */
    PQfreemem(msg);
    if (!opts)
        return sl_err_set(err, SL_ERR_CONFIG,
                          "postgres dsn is neither a postgresql:// URI nor key=value pairs that "
                          "libpq accepts (percent-encode special characters in a URI)");
    if (parsed)
        *parsed = opts;
    else
        PQconninfoFree(opts);
    return 0;
}

static const char *dsn_get(const PQconninfoOption *opts, const char *key)
{
    for (const PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, key) == 0)
            return o->val && *o->val ? o->val : NULL;
    return NULL;
}

int sl_pg_settings(const sl_conf_t *conf, const char **dsn, struct sl_err *err)
{
    const char *env = getenv("SLUICE_PG_DSN");
    bool from_env = env && *env;
    const sl_conf_node_t *sec = sl_conf_get(sl_conf_root(conf), "postgres");
    *dsn = from_env ? env : SL_PG_DEFAULT_DSN;
    if (sl_conf_str(conf, sec, "dsn", *dsn, dsn, err) != 0)
        return -1;
    if (dsn_check(*dsn, NULL, err) == 0)
        return 0;
    if (!err)
        return -1;
    /* Say where the bad DSN came from: the file (with its line), or the environment. */
    const sl_conf_node_t *node = sl_conf_get(sec, "dsn");
    if (node) {
        char msg[SL_ERR_MSG_MAX];
        memcpy(msg, err->msg, sizeof(msg));
        return sl_conf_error(conf, node, err, "%s", msg);
    }
    if (from_env)
        sl_err_prefix(err, "SLUICE_PG_DSN");
    return -1;
}

/* ---- handle ---- */

sl_pg_t *sl_pg_new(const char *dsn, const struct sl_pg_opts *opts, struct sl_err *err)
{
    PQconninfoOption *parsed = NULL;
    if (dsn_check(dsn, &parsed, err) != 0)
        return NULL;
    sl_pg_t *pg = calloc(1, sizeof(*pg));
    if (!pg || !(pg->dsn = strdup(dsn))) {
        free(pg);
        PQconninfoFree(parsed);
        sl_err_set(err, SL_ERR_NOMEM, "postgres: out of memory");
        return NULL;
    }
    pg->dsn_len = strlen(dsn);
    if (opts)
        pg->opts = *opts;
    if (pg->opts.connect_timeout_s <= 0)
        pg->opts.connect_timeout_s = 5;
    if (pg->opts.statement_timeout_ms == 0)
        pg->opts.statement_timeout_ms = 30000;
    if (!pg->opts.application_name)
        pg->opts.application_name = "sluice";
    const char *host = dsn_get(parsed, "host");
    const char *port = dsn_get(parsed, "port");
    const char *db = dsn_get(parsed, "dbname");
    if (!host)
        host = dsn_get(parsed, "hostaddr");
    if (!db)
        db = dsn_get(parsed, "user");
    snprintf(pg->where, sizeof(pg->where), "postgres %.120s:%.16s/%.120s",
             host ? host : "localhost", port ? port : "5432", db ? db : "(default)");
    PQconninfoFree(parsed);
    return pg;
}

static void forget_staging(sl_pg_t *pg)
{
    for (size_t i = 0; i < pg->nstaging; i++)
        free(pg->staging[i]);
    pg->nstaging = 0;
}

static void drop(sl_pg_t *pg)
{
    if (pg->conn) {
        PQfinish(pg->conn);
        pg->conn = NULL;
    }
    pg->session = 0;
    forget_staging(pg);
}

void sl_pg_destroy(sl_pg_t *pg)
{
    if (!pg)
        return;
    sl_pg_copy_abort(pg->copy);
    drop(pg);
    explicit_bzero(pg->dsn, pg->dsn_len);
    free(pg->dsn);
    free(pg);
}

const char *sl_pg_where(const sl_pg_t *pg)
{
    return pg->where;
}

/* ---- errors ---- */

static bool state_is(const char *state, const char *prefix)
{
    return state && strncmp(state, prefix, strlen(prefix)) == 0;
}

/* Turns a failed command into *err and drops a lost connection. `res` may be NULL (libpq gave
 * no result); `was` is the transaction status before the command. Returns -1. */
static int fail(sl_pg_t *pg, const char *what, const PGresult *res, PGTransactionStatusType was,
                struct sl_err *err)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char msg[SL_ERR_MSG_MAX];
    one_line(primary    ? primary
             : pg->conn ? PQerrorMessage(pg->conn)
                        : "no connection",
             msg, sizeof(msg));
    bool lost = !pg->conn || PQstatus(pg->conn) != CONNECTION_OK || state_is(state, "08") ||
                state_is(state, "57P01") || state_is(state, "57P02") || state_is(state, "57P03");
    if (lost) {
        if (was == PQTRANS_INTRANS || was == PQTRANS_INERROR || was == PQTRANS_ACTIVE)
            pg->txn_lost = true;
        drop(pg);
        return sl_err_retriable(err, SL_ERR_UNAVAILABLE, "%s: %s: connection lost: %s%s", pg->where,
                                what, msg,
                                pg->txn_lost ? " (the transaction is lost with it)" : "");
    }
    const char *st = state ? state : "?";
    if (state_is(state, "57014") || state_is(state, "55P03") || state_is(state, "40001") ||
        state_is(state, "40P01"))
        return sl_err_retriable(err, SL_ERR_TIMEOUT, "%s: %s: %s (SQLSTATE %s; try again)",
                                pg->where, what, msg, st);
    if (state_is(state, "53"))
        return sl_err_retriable(err, SL_ERR_UNAVAILABLE, "%s: %s: %s (SQLSTATE %s)", pg->where,
                                what, msg, st);
    if (state_is(state, "28") || state_is(state, "42501")) {
        sl_err_set(err, SL_ERR_CONFIG, "%s: %s: %s (SQLSTATE %s)", pg->where, what, msg, st);
        if (err)
            err->fatal = true;
        return -1;
    }
    return sl_err_set(err, SL_ERR_INVALID, "%s: %s: %s (SQLSTATE %s)", pg->where, what, msg, st);
}

/* The connection is in a state this module does not drive (a COPY it did not start): start
 * afresh. */
static int confused(sl_pg_t *pg, const char *what, PGTransactionStatusType was, struct sl_err *err)
{
    if (was != PQTRANS_IDLE)
        pg->txn_lost = true;
    drop(pg);
    return sl_err_set(err, SL_ERR_INVALID,
                      "%s: %s: unexpected COPY (use sl_pg_copy_begin); connection reset", pg->where,
                      what);
}

/* ---- connection ---- */

static int pg_connect(sl_pg_t *pg, struct sl_err *err)
{
    char timeout[16], statement[24];
    snprintf(timeout, sizeof(timeout), "%d", pg->opts.connect_timeout_s);
    snprintf(statement, sizeof(statement), "%d",
             pg->opts.statement_timeout_ms < 0 ? 0 : pg->opts.statement_timeout_ms);
    /* Defaults first: with expand_dbname, what the DSN says comes later and wins. */
    const char *keys[] = {
        "connect_timeout",  "keepalives",       "keepalives_idle", "keepalives_interval",
        "keepalives_count", "application_name", "dbname",          NULL};
    const char *vals[] = {timeout, "1", "10", "5", "3", pg->opts.application_name, pg->dsn, NULL};
    forget_staging(pg);
    pg->conn = PQconnectdbParams(keys, vals, 1);
    if (!pg->conn)
        return sl_err_set(err, SL_ERR_NOMEM, "%s: out of memory", pg->where);
    if (PQstatus(pg->conn) != CONNECTION_OK) {
        char msg[SL_ERR_MSG_MAX];
        one_line(PQerrorMessage(pg->conn), msg, sizeof(msg));
        drop(pg);
        return sl_err_retriable(err, SL_ERR_UNAVAILABLE, "%s: cannot connect: %s", pg->where, msg);
    }
    PQsetNoticeReceiver(pg->conn, on_notice, pg);
    pg->session = ++pg->sessions;
    const char *params[] = {statement};
    PGresult *res = PQexecParams(pg->conn,
                                 "SELECT set_config('statement_timeout', $1, false), "
                                 "set_config('TimeZone', 'UTC', false)",
                                 1, NULL, params, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = fail(pg, "session settings", res, PQTRANS_IDLE, err);
        drop(pg); /* a session without its settings is not one to keep */
    }
    PQclear(res);
    return rc;
}

/* Before every command: no COPY open, no lost transaction, a live connection. */
static int ready(sl_pg_t *pg, struct sl_err *err)
{
    if (pg->copy)
        return sl_err_set(err, SL_ERR_INVALID, "%s: a COPY is in progress on this handle",
                          pg->where);
    if (pg->txn_lost)
        return sl_err_retriable(err, SL_ERR_UNAVAILABLE,
                                "%s: the connection was lost inside a transaction; roll back "
                                "and start it again",
                                pg->where);
    if (pg->conn && PQstatus(pg->conn) != CONNECTION_OK)
        drop(pg);
    return pg->conn ? 0 : pg_connect(pg, err);
}

unsigned long sl_pg_session(const sl_pg_t *pg)
{
    return pg->session;
}

int sl_pg_connect(sl_pg_t *pg, struct sl_err *err)
{
    return ready(pg, err);
}

/* ---- statements ---- */

int sl_pg_exec(sl_pg_t *pg, const char *sql, int nparams, const char *const *params, PGresult **res,
               struct sl_err *err)
{
    if (res)
        *res = NULL;
    if (nparams < 0 || (nparams > 0 && !params))
        return sl_err_set(err, SL_ERR_INVALID, "%s: bad parameters", pg->where);
    if (ready(pg, err) != 0)
        return -1;
    char what[LABEL_MAX + 4];
    label(sql, what, sizeof(what));
    PGTransactionStatusType was = PQtransactionStatus(pg->conn);
    PGresult *r = PQexecParams(pg->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (res) {
            *res = r;
            r = NULL;
        }
    } else if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
        rc = confused(pg, what, was, err);
    } else {
        rc = fail(pg, what, r, was, err);
    }
    PQclear(r);
    return rc;
}

/* The 1-based line of the `pos`-th character (1-based, as the server counts: characters, not
 * bytes) of `sql`; 0 when pos is out of range. */
static int line_of(const char *sql, long pos)
{
    int line = 1;
    long chars = 0;
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++) {
        if ((*p & 0xC0) == 0x80)
            continue; /* a UTF-8 continuation byte */
        if (++chars == pos)
            return line;
        if (*p == '\n')
            line++;
    }
    return 0;
}

int sl_pg_script(sl_pg_t *pg, const char *sql, int *line, struct sl_err *err)
{
    if (line)
        *line = 0;
    if (ready(pg, err) != 0)
        return -1;
    PGTransactionStatusType was = PQtransactionStatus(pg->conn);
    PGresult *r = PQexec(pg->conn, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;
    if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
        rc = confused(pg, "script", was, err);
    } else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        const char *pos = r ? PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION) : NULL;
        if (line && pos)
            *line = line_of(sql, strtol(pos, NULL, 10));
        rc = fail(pg, "script", r, was, err);
    }
    PQclear(r);
    return rc;
}

int sl_pg_begin(sl_pg_t *pg, struct sl_err *err)
{
    return sl_pg_exec(pg, "BEGIN", 0, NULL, NULL, err);
}

int sl_pg_commit(sl_pg_t *pg, struct sl_err *err)
{
    PGresult *res;
    if (sl_pg_exec(pg, "COMMIT", 0, NULL, &res, err) != 0)
        return -1;
    /* COMMIT of a failed transaction "succeeds" with the tag ROLLBACK. */
    int rc = 0;
    if (strcmp(PQcmdStatus(res), "COMMIT") != 0)
        rc = sl_err_set(err, SL_ERR_INVALID,
                        "%s: COMMIT: the transaction had failed and was rolled back", pg->where);
    PQclear(res);
    return rc;
}

void sl_pg_rollback(sl_pg_t *pg)
{
    if (pg->txn_lost) {
        pg->txn_lost = false;
        return;
    }
    if (pg->copy || !pg->conn || PQtransactionStatus(pg->conn) == PQTRANS_IDLE)
        return;
    PGresult *r = PQexec(pg->conn, "ROLLBACK");
    /* A ROLLBACK that fails leaves the session in doubt: a new one is certain. */
    if (PQresultStatus(r) != PGRES_COMMAND_OK || PQtransactionStatus(pg->conn) != PQTRANS_IDLE)
        drop(pg);
    PQclear(r);
}

/* ---- COPY ---- */

/* Collects the result of the COPY command once the client's side is over (after PQputCopyEnd,
 * or after the server ended it with an error); *rows from the "COPY n" tag. */
static int copy_collect(sl_pg_copy_t *c, long long *rows, struct sl_err *err)
{
    sl_pg_t *pg = c->pg;
    PGresult *first = NULL, *r;
    bool stuck = false;
    c->done = true;
    while ((r = PQgetResult(pg->conn)) != NULL) {
        if (PQresultStatus(r) == PGRES_COPY_IN) {
            /* The end did not get through: the connection is beyond use. */
            PQclear(r);
            stuck = true;
            break;
        }
        if (!first)
            first = r;
        else
            PQclear(r);
    }
    int rc = 0;
    if (stuck) {
        if (c->was != PQTRANS_IDLE)
            pg->txn_lost = true;
        drop(pg);
        rc = sl_err_retriable(err, SL_ERR_UNAVAILABLE, "%s: COPY: the connection broke", pg->where);
    } else if (PQresultStatus(first) != PGRES_COMMAND_OK) {
        rc = fail(pg, "COPY", first, c->was, err);
    } else if (rows) {
        *rows = strtoll(PQcmdTuples(first), NULL, 10);
    }
    PQclear(first);
    return rc;
}

static void copy_flush(sl_pg_copy_t *c)
{
    if (c->failed || c->len == 0)
        return;
    if (PQputCopyData(c->pg->conn, c->buf, (int)c->len) != 1) {
        /* The connection broke, or the server refused the data and ended the COPY: its
         * answer says which. */
        c->failed = true;
        copy_collect(c, NULL, &c->err);
    }
    c->len = 0;
}

static void put(sl_pg_copy_t *c, const char *p, size_t n)
{
    while (n > 0 && !c->failed) {
        if (c->len == sizeof(c->buf))
            copy_flush(c);
        size_t k = sizeof(c->buf) - c->len;
        if (k > n)
            k = n;
        memcpy(c->buf + c->len, p, k);
        c->len += k;
        p += k;
        n -= k;
    }
}

static void field(sl_pg_copy_t *c)
{
    if (c->fields++ > 0)
        put(c, "\t", 1);
}

static void copy_error(sl_pg_copy_t *c, const char *msg)
{
    if (c->failed)
        return;
    c->failed = true;
    sl_err_set(&c->err, SL_ERR_INVALID, "%s: COPY: %s", c->pg->where, msg);
}

void sl_pg_copy_textn(sl_pg_copy_t *c, const char *s, size_t len)
{
    if (!s) {
        sl_pg_copy_null(c);
        return;
    }
    field(c);
    size_t run = 0; /* bytes of s before i that need no escape, not yet written */
    for (size_t i = 0; i < len && !c->failed; i++) {
        const char *esc = NULL;
        switch (s[i]) {
        case '\\':
            esc = "\\\\";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\0':
            copy_error(c, "text contains a NUL byte");
            return;
        default:
            run++;
            continue;
        }
        put(c, s + i - run, run);
        put(c, esc, 2);
        run = 0;
    }
    put(c, s + len - run, run);
}

void sl_pg_copy_text(sl_pg_copy_t *c, const char *s)
{
    sl_pg_copy_textn(c, s, s ? strlen(s) : 0);
}

void sl_pg_copy_null(sl_pg_copy_t *c)
{
    field(c);
    put(c, "\\N", 2);
}

void sl_pg_copy_int(sl_pg_copy_t *c, long long v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%lld", v);
    field(c);
    put(c, num, (size_t)n);
}

void sl_pg_copy_double(sl_pg_copy_t *c, double v)
{
    char num[32];
    int n;
    if (isnan(v))
        n = snprintf(num, sizeof(num), "NaN");
    else if (isinf(v))
        n = snprintf(num, sizeof(num), "%sInfinity", v < 0 ? "-" : "");
    else
        n = snprintf(num, sizeof(num), "%.17g", v);
    field(c);
    put(c, num, (size_t)n);
}

void sl_pg_copy_bytea(sl_pg_copy_t *c, const void *data, size_t len)
{
    if (!data) {
        sl_pg_copy_null(c);
        return;
    }
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = data;
    char chunk[512];
    field(c);
    /* bytea's hex input "\x..." with COPY's backslash escaped. */
    put(c, "\\\\x", 3);
    while (len > 0 && !c->failed) {
        size_t n = len < sizeof(chunk) / 2 ? len : sizeof(chunk) / 2;
        for (size_t i = 0; i < n; i++) {
            chunk[2 * i] = hex[p[i] >> 4];
            chunk[2 * i + 1] = hex[p[i] & 15];
        }
        put(c, chunk, 2 * n);
        p += n;
        len -= n;
    }
}

int sl_pg_copy_row(sl_pg_copy_t *c, struct sl_err *err)
{
    put(c, "\n", 1);
    c->fields = 0;
    if (!c->failed)
        return 0;
    if (err)
        *err = c->err;
    return -1;
}

/* Tells the server to drop what was copied (it answers with an error that ends the COPY), or
 * when even that cannot be sent, gives the connection up. */
static void copy_abandon(sl_pg_copy_t *c)
{
    sl_pg_t *pg = c->pg;
    if (c->done || !pg->conn)
        return;
    if (PQputCopyEnd(pg->conn, "abandoned by the client") == 1) {
        copy_collect(c, NULL, NULL);
        return;
    }
    if (c->was != PQTRANS_IDLE)
        pg->txn_lost = true;
    drop(pg);
}

static void copy_free(sl_pg_copy_t *c)
{
    if (c->pg->copy == c)
        c->pg->copy = NULL;
    free(c->insert);
    free(c->before);
    free(c->clear);
    free(c);
}

/* Issues the COPY command; the handle is then busy with `c` until it is ended. */
static int copy_start(sl_pg_copy_t *c, const char *table, const char *columns, struct sl_err *err)
{
    sl_pg_t *pg = c->pg;
    char sql[2 * SL_PG_SQL_PART_MAX + 64];
    snprintf(sql, sizeof(sql), "COPY %s (%s) FROM STDIN", table, columns);
    c->was = PQtransactionStatus(pg->conn);
    PGresult *r = PQexec(pg->conn, sql);
    int rc = 0;
    if (PQresultStatus(r) == PGRES_COPY_IN)
        pg->copy = c;
    else
        rc = fail(pg, "COPY", r, c->was, err);
    PQclear(r);
    return rc;
}

/* A statement assembled from the caller's SQL parts; NULL when out of memory. */
static char *sql_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *sql_printf(const char *fmt, ...)
{
    char *sql = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&sql, fmt, ap) < 0)
        sql = NULL;
    va_end(ap);
    return sql;
}

static bool part_ok(const char *s, bool required)
{
    if (!s)
        return !required;
    return *s && strnlen(s, SL_PG_SQL_PART_MAX + 1) <= SL_PG_SQL_PART_MAX;
}

sl_pg_copy_t *sl_pg_copy_begin(sl_pg_t *pg, const char *table, const char *columns,
                               struct sl_err *err)
{
    if (!part_ok(table, true) || !part_ok(columns, true)) {
        sl_err_set(err, SL_ERR_INVALID, "%s: COPY needs a table and columns (at most %d bytes)",
                   pg->where, SL_PG_SQL_PART_MAX);
        return NULL;
    }
    if (ready(pg, err) != 0)
        return NULL;
    sl_pg_copy_t *c = calloc(1, sizeof(*c));
    if (!c) {
        sl_err_set(err, SL_ERR_NOMEM, "%s: out of memory", pg->where);
        return NULL;
    }
    c->pg = pg;
    if (copy_start(c, table, columns, err) != 0) {
        copy_free(c);
        return NULL;
    }
    return c;
}

/* Makes the staging table of `spec` on this connection unless it did already. A table made
 * inside the caller's transaction is not remembered: a rollback would take it away. */
static int staging_ensure(sl_pg_t *pg, const struct sl_pg_upsert *spec, struct sl_err *err)
{
    for (size_t i = 0; i < pg->nstaging; i++)
        if (strcmp(pg->staging[i], spec->staging) == 0)
            return 0;
    /* Only the copied columns, with the target's types and none of its constraints: those
     * (and the defaults of the other columns) apply when the rows move. */
    char sql[3 * SL_PG_SQL_PART_MAX + 128];
    snprintf(sql, sizeof(sql),
             "CREATE TEMP TABLE IF NOT EXISTS %s ON COMMIT DELETE ROWS AS SELECT %s FROM %s "
             "WITH NO DATA",
             spec->staging, spec->columns, spec->table);
    bool in_txn = PQtransactionStatus(pg->conn) != PQTRANS_IDLE;
    if (sl_pg_exec(pg, sql, 0, NULL, NULL, err) != 0)
        return -1;
    if (!in_txn && pg->nstaging < SL_PG_STAGING_MAX) {
        char *name = strdup(spec->staging);
        if (name)
            pg->staging[pg->nstaging++] = name;
    }
    return 0;
}

sl_pg_copy_t *sl_pg_upsert_begin(sl_pg_t *pg, const struct sl_pg_upsert *spec, struct sl_err *err)
{
    if (!part_ok(spec->table, true) || !part_ok(spec->staging, true) ||
        !part_ok(spec->columns, true) || !part_ok(spec->conflict, false) ||
        !part_ok(spec->before, false)) {
        sl_err_set(err, SL_ERR_INVALID,
                   "%s: an upsert needs a table, a staging table and columns; every part at "
                   "most %d bytes",
                   pg->where, SL_PG_SQL_PART_MAX);
        return NULL;
    }
    if (ready(pg, err) != 0 || staging_ensure(pg, spec, err) != 0)
        return NULL;
    sl_pg_copy_t *c = calloc(1, sizeof(*c));
    if (!c) {
        sl_err_set(err, SL_ERR_NOMEM, "%s: out of memory", pg->where);
        return NULL;
    }
    c->pg = pg;
    c->upsert = true;
    c->insert = sql_printf("INSERT INTO %s (%s) SELECT %s FROM %s ON CONFLICT %s DO NOTHING",
                           spec->table, spec->columns, spec->columns, spec->staging,
                           spec->conflict ? spec->conflict : "");
    c->clear = sql_printf("DELETE FROM %s", spec->staging);
    if (spec->before)
        c->before = strdup(spec->before);
    if (!c->insert || !c->clear || (spec->before && !c->before)) {
        copy_free(c);
        sl_err_set(err, SL_ERR_NOMEM, "%s: out of memory", pg->where);
        return NULL;
    }
    c->own_txn = PQtransactionStatus(pg->conn) == PQTRANS_IDLE;
    if ((c->own_txn && sl_pg_begin(pg, err) != 0) ||
        copy_start(c, spec->staging, spec->columns, err) != 0) {
        if (c->own_txn)
            sl_pg_rollback(pg);
        copy_free(c);
        return NULL;
    }
    return c;
}

/* Moves the staged rows: the `before` statement, the INSERT, then COMMIT (own transaction) or
 * emptying the staging table (the caller's). */
static int upsert_finish(sl_pg_copy_t *c, long long *rows, struct sl_err *err)
{
    sl_pg_t *pg = c->pg;
    PGresult *res = NULL;
    if ((c->before && sl_pg_exec(pg, c->before, 0, NULL, NULL, err) != 0) ||
        sl_pg_exec(pg, c->insert, 0, NULL, &res, err) != 0)
        return -1;
    if (rows)
        *rows = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return c->own_txn ? sl_pg_commit(pg, err) : sl_pg_exec(pg, c->clear, 0, NULL, NULL, err);
}

int sl_pg_copy_end(sl_pg_copy_t *c, long long *rows, struct sl_err *err)
{
    sl_pg_t *pg = c->pg;
    int rc = -1;
    if (rows)
        *rows = 0;
    copy_flush(c);
    if (c->failed) {
        if (err)
            *err = c->err;
        copy_abandon(c);
        goto out;
    }
    if (PQputCopyEnd(pg->conn, NULL) != 1) {
        copy_collect(c, NULL, err);
        goto out;
    }
    if (copy_collect(c, c->upsert ? NULL : rows, err) != 0)
        goto out;
    pg->copy = NULL;
    rc = c->upsert ? upsert_finish(c, rows, err) : 0;
out:
    pg->copy = NULL;
    if (rc != 0 && c->upsert && c->own_txn)
        sl_pg_rollback(pg);
    copy_free(c);
    return rc;
}

void sl_pg_copy_abort(sl_pg_copy_t *c)
{
    if (!c)
        return;
    sl_pg_t *pg = c->pg;
    copy_abandon(c);
    pg->copy = NULL;
    if (c->upsert && c->own_txn)
        sl_pg_rollback(pg);
    copy_free(c);
}
