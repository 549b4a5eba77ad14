/*
 * sl_log: JSON lines on stdout (or the descriptor sl_log_set_fd names), one object per line:
 *
 *   {"ts":"2026-11-24T17:30:00.123Z","level":"info","component":"ingress",
 *    "event_id":"0193...","msg":"accepted"}
 *
 * The component is the process's (one binary, one component), set once by sl_log_init() before
 * any thread starts. Each line is formatted into a bounded buffer and written with one write(2),
 * so lines from several threads never interleave. Messages are cut at SL_LOG_LINE_MAX bytes.
 * The level is checked before the arguments are evaluated (the macros), as Redis's serverLog.
 * Never log a secret, a signature or a whole payload.
 */
#ifndef SL_LOG_H
#define SL_LOG_H

#include <stdbool.h>

enum sl_log_level { SL_LOG_DEBUG = 0, SL_LOG_INFO, SL_LOG_WARN, SL_LOG_ERROR };

#define SL_LOG_LINE_MAX 4096

/* `component` must outlive the process's logging (a string literal). The minimum level comes
 * from `level`, unless SLUICE_LOG_LEVEL (debug|info|warn|error) is set in the environment. */
void sl_log_init(const char *component, enum sl_log_level level);

/* Where the lines go from now on: an open descriptor the process keeps open (default
 * STDOUT_FILENO, where a stage's supervisor collects them). A command line tool whose stdout is
 * its output (sluicectl) sends them to STDERR_FILENO. Call it before any thread starts. */
void sl_log_set_fd(int fd);

bool sl_log_enabled(enum sl_log_level level);

/* `event_id` may be NULL. Prefer the macros below. */
void sl_log_write(enum sl_log_level level, const char *event_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parses "debug", "info", "warn", "error"; returns -1 for anything else. */
int sl_log_level_parse(const char *name, enum sl_log_level *out);

#define sl_log(level, event_id, ...)                                                               \
    do {                                                                                           \
        if (sl_log_enabled(level))                                                                 \
            sl_log_write(level, event_id, __VA_ARGS__);                                            \
    } while (0)

#define SL_DEBUG(...) sl_log(SL_LOG_DEBUG, NULL, __VA_ARGS__)
#define SL_INFO(...)  sl_log(SL_LOG_INFO, NULL, __VA_ARGS__)
#define SL_WARN(...)  sl_log(SL_LOG_WARN, NULL, __VA_ARGS__)
#define SL_ERROR(...) sl_log(SL_LOG_ERROR, NULL, __VA_ARGS__)

#endif
