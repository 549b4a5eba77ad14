#include "sl_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const errcode_names[] = {
    [SL_OK] = "ok",
    [SL_ERR_INVALID] = "invalid",
    [SL_ERR_CONFIG] = "config",
    [SL_ERR_NOT_FOUND] = "not_found",
    [SL_ERR_IO] = "io",
    [SL_ERR_TIMEOUT] = "timeout",
    [SL_ERR_UNAVAILABLE] = "unavailable",
    [SL_ERR_KAFKA] = "kafka",
    [SL_ERR_NOMEM] = "nomem",
    [SL_ERR_INTERNAL] = "internal",
    [SL_ERR_TOO_LARGE] = "too_large",
};

static int err_vset(struct sl_err *err, enum sl_errcode code, bool retriable, const char *fmt,
                    va_list ap) __attribute__((format(printf, 4, 0)));

static int err_vset(struct sl_err *err, enum sl_errcode code, bool retriable, const char *fmt,
                    va_list ap)
{
    if (!err)
        return -1;
    err->code = code;
    err->retriable = retriable;
    err->fatal = false;
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    /* One line: a newline inside a message would break JSON-lines logs and CLI output. */
    for (char *p = err->msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return -1;
}

int sl_err_set(struct sl_err *err, enum sl_errcode code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(err, code, false, fmt, ap);
    va_end(ap);
    return -1;
}

int sl_err_retriable(struct sl_err *err, enum sl_errcode code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(err, code, true, fmt, ap);
    va_end(ap);
    return -1;
}

void sl_err_prefix(struct sl_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    char prefix[SL_ERR_MSG_MAX], old[SL_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    /* Bounded concatenation: the prefix is kept whole where it fits; the old message's tail is
     * what gets cut. */
    size_t n = strnlen(prefix, sizeof(err->msg) - 1);
    memcpy(err->msg, prefix, n);
    size_t room = sizeof(err->msg) - 1 - n;
    size_t sep = room < 2 ? room : 2;
    memcpy(err->msg + n, ": ", sep);
    n += sep;
    size_t rest = strnlen(old, sizeof(err->msg) - 1 - n);
    memcpy(err->msg + n, old, rest);
    err->msg[n + rest] = '\0';
}

void sl_err_clear(struct sl_err *err)
{
    if (err)
        memset(err, 0, sizeof(*err));
}

const char *sl_errcode_name(enum sl_errcode code)
{
    if ((size_t)code < sizeof(errcode_names) / sizeof(errcode_names[0]) && errcode_names[code])
        return errcode_names[code];
    return "unknown";
}
