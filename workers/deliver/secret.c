#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sl_log.h"

struct dlv_secret {
    char *path; /* NULL for a literal */
    bool multi_line;
    char value[DLV_SECRET_MAX + 1];
    unsigned generation;
    long long checked_ms;
    struct stat seen; /* of the file as last read */
    bool warned;
};

/* Trims trailing whitespace and checks the characters. 0, or -1 with *why. */
static int clean(char *v, bool multi_line, const char **why)
{
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == '\n' || v[n - 1] == '\r' || v[n - 1] == ' ' || v[n - 1] == '\t'))
        v[--n] = '\0';
    if (n == 0) {
        *why = "is empty";
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && !(multi_line && c == '\n') && c != '\t') || c == 0x7f) {
            *why = "holds control characters";
            return -1;
        }
    }
    return 0;
}

/* Reads the file into buf (DLV_SECRET_MAX + 1 bytes) and *st. 0, or -1 with *why. */
static int read_file(const char *path, bool multi_line, char *buf, struct stat *st,
                     const char **why)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = -1;
    if (fd < 0) {
        *why = strerror(errno);
        return -1;
    }
    if (fstat(fd, st) != 0) {
        *why = strerror(errno);
        goto out;
    }
    if (st->st_size > DLV_SECRET_MAX) {
        *why = "is larger than the limit";
        goto out;
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, DLV_SECRET_MAX - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *why = strerror(errno);
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == DLV_SECRET_MAX)
            break;
    }
    buf[n] = '\0';
    if (strlen(buf) != n) {
        *why = "holds a NUL byte";
        goto out;
    }
    rc = clean(buf, multi_line, why);
out:
    close(fd);
    return rc;
}

dlv_secret_t *dlv_secret_new(const char *value, const char *path, bool multi_line,
                             struct sl_err *err)
{
    const char *why = NULL;
    if (!value == !path) {
        sl_err_set(err, SL_ERR_CONFIG, "a secret needs either a value or a file");
        return NULL;
    }
    dlv_secret_t *s = calloc(1, sizeof(*s));
    if (!s || (path && !(s->path = strdup(path)))) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    s->multi_line = multi_line;
    if (path) {
        if (read_file(path, multi_line, s->value, &s->seen, &why) != 0) {
            sl_err_set(err, SL_ERR_CONFIG, "secret file %s: %s", path, why);
            goto fail;
        }
    } else {
        if (strlen(value) > DLV_SECRET_MAX) {
            sl_err_set(err, SL_ERR_CONFIG, "a secret is longer than %d bytes", DLV_SECRET_MAX);
            goto fail;
        }
        memcpy(s->value, value, strlen(value) + 1);
        if (clean(s->value, multi_line, &why) != 0) {
            sl_err_set(err, SL_ERR_CONFIG, "a secret %s", why);
            goto fail;
        }
    }
    return s;
fail:
    dlv_secret_destroy(s);
    return NULL;
}

void dlv_secret_destroy(dlv_secret_t *s)
{
    if (!s)
        return;
    free(s->path);
    explicit_bzero(s, sizeof(*s));
    free(s);
}

bool dlv_secret_is_file(const dlv_secret_t *s)
{
    return s->path != NULL;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

const char *dlv_secret_get(dlv_secret_t *s, long long now_ms, bool force, unsigned *generation)
{
    if (s->path && (force || now_ms - s->checked_ms >= DLV_SECRET_CHECK_MS)) {
        s->checked_ms = now_ms;
        struct stat st;
        char buf[DLV_SECRET_MAX + 1];
        const char *why = NULL;
        if (stat(s->path, &st) == 0 && same_file(&st, &s->seen)) {
            s->warned = false;
        } else if (read_file(s->path, s->multi_line, buf, &st, &why) == 0) {
            if (strcmp(buf, s->value) != 0) {
                explicit_bzero(s->value, sizeof(s->value));
                memcpy(s->value, buf, strlen(buf) + 1);
                s->generation++;
                SL_INFO("secret file %s changed: using its new value", s->path);
            }
            s->seen = st;
            s->warned = false;
        } else if (!s->warned) {
            SL_WARN("secret file %s: %s; keeping the value read last", s->path,
                    why ? why : strerror(errno));
            s->warned = true;
        }
        explicit_bzero(buf, sizeof(buf));
    }
    if (generation)
        *generation = s->generation;
    return s->value;
}
