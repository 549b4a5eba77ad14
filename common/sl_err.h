/*
 * sl_err: the one error type at module edges.
 *
 * A function that can fail takes `struct sl_err *err` last and returns 0 on success or -1 (or
 * NULL) on failure after filling *err. `err` may be NULL when the caller does not want the
 * details. The message is one line, bounded, and must never contain a secret.
 *
 * `retriable` tells the caller that the same call may succeed later (a dependency is down);
 * `fatal` that the process cannot go on (a fenced producer, a broken invariant).
 */
#ifndef SL_ERR_H
#define SL_ERR_H

#include <stdbool.h>
#include <stddef.h>

enum sl_errcode {
    SL_OK = 0,
    SL_ERR_INVALID,     /* bad input or arguments */
    SL_ERR_CONFIG,      /* the pipeline file is wrong */
    SL_ERR_NOT_FOUND,   /* a named thing does not exist */
    SL_ERR_IO,          /* file or socket I/O */
    SL_ERR_TIMEOUT,     /* a deadline passed */
    SL_ERR_UNAVAILABLE, /* a dependency (Kafka, Redis, Postgres, HTTP) cannot be reached */
    SL_ERR_KAFKA,       /* Kafka answered with an error */
    SL_ERR_NOMEM,       /* allocation failed or a bound was reached */
    SL_ERR_INTERNAL,    /* a broken invariant */
    SL_ERR_TOO_LARGE,   /* over a size limit that no retry changes (a record Kafka refuses) */
};

#define SL_ERR_MSG_MAX 512

struct sl_err {
    enum sl_errcode code;
    bool retriable;
    bool fatal;
    char msg[SL_ERR_MSG_MAX];
};

/* Fills *err (if not NULL) with code and a formatted one-line message; retriable and fatal
 * are reset to false. Always returns -1 so that `return sl_err_set(...)` reads naturally. */
int sl_err_set(struct sl_err *err, enum sl_errcode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* As sl_err_set, marking the error retriable. */
int sl_err_retriable(struct sl_err *err, enum sl_errcode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the existing message with "<prefix>: " (bounded; the tail is cut if needed). */
void sl_err_prefix(struct sl_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void sl_err_clear(struct sl_err *err);

/* "invalid", "config", ... : stable names for logs and metrics. */
const char *sl_errcode_name(enum sl_errcode code);

#endif
