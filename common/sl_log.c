#include "sl_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_component = "sluice";
static enum sl_log_level log_min_level = SL_LOG_INFO;
static int log_fd = STDOUT_FILENO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int sl_log_level_parse(const char *name, enum sl_log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum sl_log_level)i;
            return 0;
        }
    }
    return -1;
}

void sl_log_init(const char *component, enum sl_log_level level)
{
    log_component = component;
    log_min_level = level;
    const char *env = getenv("SLUICE_LOG_LEVEL");
    if (env && sl_log_level_parse(env, &level) == 0)
        log_min_level = level;
}

void sl_log_set_fd(int fd)
{
    log_fd = fd;
}

bool sl_log_enabled(enum sl_log_level level)
{
    return level >= log_min_level;
}

/* Appends `s` as JSON string content (no quotes) to buf[*pos..cap-1]; stops when full, leaving
 * room for the closing characters the caller adds (it reserves them in `cap`). */
static void append_escaped(char *buf, size_t cap, size_t *pos, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[7];
        size_t n;
        switch (*p) {
        case '"':
            memcpy(esc, "\\\"", n = 2);
            break;
        case '\\':
            memcpy(esc, "\\\\", n = 2);
            break;
        case '\n':
            memcpy(esc, "\\n", n = 2);
            break;
        case '\r':
            memcpy(esc, "\\r", n = 2);
            break;
        case '\t':
            memcpy(esc, "\\t", n = 2);
            break;
        default:
            if (*p < 0x20) {
                esc[0] = '\\', esc[1] = 'u', esc[2] = '0', esc[3] = '0';
                esc[4] = hex[*p >> 4], esc[5] = hex[*p & 15];
                n = 6;
            } else {
                esc[0] = (char)*p;
                n = 1;
            }
        }
        if (*pos + n > cap)
            return;
        memcpy(buf + *pos, esc, n);
        *pos += n;
    }
}

static void append_raw(char *buf, size_t cap, size_t *pos, const char *s)
{
    size_t n = strlen(s);
    if (*pos + n > cap)
        n = cap - *pos;
    memcpy(buf + *pos, s, n);
    *pos += n;
}

void sl_log_write(enum sl_log_level level, const char *event_id, const char *fmt, ...)
{
    char msg[SL_LOG_LINE_MAX];
    char line[SL_LOG_LINE_MAX + 256];
    /* The closing `"}\n` always fits: content stops 3 bytes before the end. */
    const size_t cap = sizeof(line) - 3;
    size_t pos = 0;

    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char tsbuf[64];
    snprintf(tsbuf, sizeof(tsbuf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ts.tv_nsec / 1000000) % 1000);

    append_raw(line, cap, &pos, "{\"ts\":\"");
    append_raw(line, cap, &pos, tsbuf);
    append_raw(line, cap, &pos, "\",\"level\":\"");
    append_raw(line, cap, &pos, level_names[level]);
    append_raw(line, cap, &pos, "\",\"component\":\"");
    append_escaped(line, cap, &pos, log_component);
    if (event_id) {
        append_raw(line, cap, &pos, "\",\"event_id\":\"");
        append_escaped(line, cap, &pos, event_id);
    }
    append_raw(line, cap, &pos, "\",\"msg\":\"");
    append_escaped(line, cap, &pos, msg);
    memcpy(line + pos, "\"}\n", 3);
    pos += 3;

    /* One write per line; a short write to a pipe or terminal is retried for the rest. */
    const char *p = line;
    while (pos > 0) {
        ssize_t n = write(log_fd, p, pos);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += n;
        pos -= (size_t)n;
    }
}
