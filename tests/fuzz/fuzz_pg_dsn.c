/*
 * The PostgreSQL DSN check (common/sl_pg.c: sl_pg_new, which parses with libpq and does not
 * connect) over any text, as SLUICE_PG_DSN or the pipeline file may hold. The "where" label
 * that every message carries must never show the password.
 */
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "sl_pg.h"

/* The value of `key` in libpq's reading of the DSN ("" when absent). */
static const char *option(const PQconninfoOption *opts, const char *key)
{
    for (const PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, key) == 0)
            return o->val ? o->val : "";
    return "";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_INPUT_MAX)
        return 0;
    char *text = fuzz_strndup(data, size);
    struct sl_err err;
    sl_pg_t *pg = sl_pg_new(text, NULL, &err);
    if (pg) {
        char *msg = NULL;
        PQconninfoOption *opts = PQconninfoParse(text, &msg);
        PQfreemem(msg);
        if (!opts)
            fuzz_fail("sl_pg_new accepted a DSN that libpq does not parse");
        const char *pw = option(opts, "password");
        const char *where = sl_pg_where(pg);
        /* A password that is also (part of) the host, port, database, user or a default shows
         * there as that, legitimately; one with a separator could span two fields. */
        static const char *const fields[] = {"host", "hostaddr", "port", "dbname", "user"};
        bool shown_as_other = strpbrk(pw, ":/ ") || strstr("postgres localhost 5432 (default)", pw);
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
            shown_as_other |= strstr(option(opts, fields[i]), pw) != NULL;
        if (strlen(pw) >= 4 && !shown_as_other && strstr(where, pw))
            fuzz_fail("the password shows in \"%s\"", where);
        PQconninfoFree(opts);
    }
    sl_pg_destroy(pg);
    free(text);
    return 0;
}
