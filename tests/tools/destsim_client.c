#include "destsim_client.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#define DESTSIM_ARGS_MAX 128
#define DESTSIM_POLL_MS  10

struct destsim {
    pid_t pid;
    int port;
    char dir[256];       /* temporary directory of the port file */
    char port_file[300]; /* inside dir */
    char url[300];
};

struct destsim_buf {
    char *data;
    size_t len;
};

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void destsim_free(destsim_t *d)
{
    unlink(d->port_file);
    rmdir(d->dir);
    free(d);
}

/* Reads the port once destsim has renamed its port file into place; 0 until then. */
static int read_port(const char *path)
{
    FILE *f = fopen(path, "r");
    int port = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%d", &port) != 1)
        port = 0;
    fclose(f);
    return port;
}

/* The child's exit status as destsim_stop() reports it. */
static int exit_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Waits up to ms for the child; returns its status code as exit_code(), or -2 while it runs. */
static int wait_child(pid_t pid, long ms)
{
    for (long waited = 0;; waited += DESTSIM_POLL_MS) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return exit_code(status);
        if (r < 0 && errno != EINTR)
            return -1;
        if (waited >= ms)
            return -2;
        sleep_ms(DESTSIM_POLL_MS);
    }
}

/* The host part of a --listen in args, for the URL; NULL when args do not set one. */
static const char *listen_arg(const char *const *args)
{
    for (size_t i = 0; args && args[i]; i++) {
        if (strcmp(args[i], "--listen") == 0 && args[i + 1])
            return args[i + 1];
    }
    return NULL;
}

destsim_t *destsim_start(const char *build_dir, const char *const *args, struct sl_err *err)
{
    char bin[4096];
    const char *argv[DESTSIM_ARGS_MAX];
    size_t argc = 0;
    if (!build_dir)
        build_dir = getenv("SLUICE_BINARY_DIR") ? getenv("SLUICE_BINARY_DIR") : ".";
    if ((size_t)snprintf(bin, sizeof bin, "%s/bin/destsim", build_dir) >= sizeof bin) {
        sl_err_set(err, SL_ERR_INVALID, "destsim: build directory path too long");
        return NULL;
    }
    destsim_t *d = calloc(1, sizeof *d);
    if (!d) {
        sl_err_set(err, SL_ERR_NOMEM, "destsim: out of memory");
        return NULL;
    }
    const char *tmp =
        getenv("TMPDIR") && strlen(getenv("TMPDIR")) < 200 ? getenv("TMPDIR") : "/tmp";
    snprintf(d->dir, sizeof d->dir, "%s/destsim.XXXXXX", tmp);
    if (!mkdtemp(d->dir)) {
        sl_err_set(err, SL_ERR_IO, "destsim: mkdtemp %s: %s", d->dir, strerror(errno));
        free(d);
        return NULL;
    }
    snprintf(d->port_file, sizeof d->port_file, "%s/port", d->dir);

    const char *listen = listen_arg(args);
    argv[argc++] = bin;
    if (!listen) {
        argv[argc++] = "--listen";
        argv[argc++] = "127.0.0.1:0";
    }
    argv[argc++] = "--port-file";
    argv[argc++] = d->port_file;
    for (size_t i = 0; args && args[i]; i++) {
        if (argc + 1 == DESTSIM_ARGS_MAX) {
            sl_err_set(err, SL_ERR_INVALID, "destsim: more than %d arguments", DESTSIM_ARGS_MAX);
            goto fail;
        }
        argv[argc++] = args[i];
    }
    argv[argc] = NULL;

    pid_t parent = getpid();
    d->pid = fork();
    if (d->pid < 0) {
        sl_err_set(err, SL_ERR_IO, "destsim: fork: %s", strerror(errno));
        goto fail;
    }
    if (d->pid == 0) {
        /* Only async-signal-safe calls here: the test process may have threads. The death
         * signal keeps a crashed test from leaving destsim listening. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        execv(bin, (char *const *)argv);
        _exit(127);
    }

    for (long waited = 0; (d->port = read_port(d->port_file)) == 0; waited += DESTSIM_POLL_MS) {
        int code = wait_child(d->pid, 0);
        if (code != -2) {
            sl_err_set(err, SL_ERR_UNAVAILABLE, "destsim %s exited (%d) before listening", bin,
                       code);
            d->pid = 0;
            goto fail;
        }
        if (waited >= DESTSIM_START_TIMEOUT_MS) {
            sl_err_set(err, SL_ERR_TIMEOUT, "destsim: no port file after %d ms",
                       DESTSIM_START_TIMEOUT_MS);
            goto fail;
        }
        sleep_ms(DESTSIM_POLL_MS);
    }
    const char *host = "127.0.0.1";
    char host_buf[256];
    if (listen) {
        const char *colon = strrchr(listen, ':');
        size_t n = colon ? (size_t)(colon - listen) : 0;
        if (n && n < sizeof host_buf) {
            memcpy(host_buf, listen, n);
            host_buf[n] = '\0';
            host = host_buf;
        }
    }
    snprintf(d->url, sizeof d->url, "http://%s:%d", host, d->port);
    return d;

fail:
    if (d->pid > 0) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
    }
    destsim_free(d);
    return NULL;
}

int destsim_port(const destsim_t *d)
{
    return d->port;
}

const char *destsim_url(const destsim_t *d)
{
    return d->url;
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct destsim_buf *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n + 1 > DESTSIM_RESPONSE_MAX)
        return 0; /* makes curl fail the transfer */
    char *p = realloc(b->data, b->len + n + 1);
    if (!p)
        return 0;
    memcpy(p + b->len, ptr, n);
    b->len += n;
    p[b->len] = '\0';
    b->data = p;
    return n;
}

/* One control request; on a 2xx, *out (if not NULL) receives the parsed JSON answer. */
static int control(destsim_t *d, const char *path, const char *post_body, json_t **out,
                   struct sl_err *err)
{
    char url[512];
    struct destsim_buf b = {0};
    long status = 0;
    int rc = -1;
    CURL *c = curl_easy_init();
    if (!c) {
        sl_err_set(err, SL_ERR_NOMEM, "destsim: curl_easy_init failed");
        goto out;
    }
    snprintf(url, sizeof url, "%s%s", d->url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)DESTSIM_HTTP_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (post_body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post_body);
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        sl_err_set(err, SL_ERR_UNAVAILABLE, "destsim %s: %s", path, curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
        sl_err_set(err, SL_ERR_INVALID, "destsim %s: HTTP %ld: %.300s", path, status,
                   b.data ? b.data : "");
        goto out;
    }
    if (out) {
        json_error_t je;
        *out = json_loadb(b.data ? b.data : "", b.len, 0, &je);
        if (!*out) {
            sl_err_set(err, SL_ERR_INVALID, "destsim %s: bad JSON: %s", path, je.text);
            goto out;
        }
    }
    rc = 0;
out:
    free(b.data);
    curl_easy_cleanup(c);
    return rc;
}

json_t *destsim_stats(destsim_t *d, struct sl_err *err)
{
    json_t *j = NULL;
    return control(d, "/_sim/stats", NULL, &j, err) ? NULL : j;
}

json_t *destsim_counters(destsim_t *d, struct sl_err *err)
{
    json_t *j = NULL;
    return control(d, "/_sim/stats?requests=0&order=0", NULL, &j, err) ? NULL : j;
}

int destsim_set_rules(destsim_t *d, const char *rules, struct sl_err *err)
{
    return control(d, "/_sim/rules", rules, NULL, err);
}

int destsim_reset(destsim_t *d, struct sl_err *err)
{
    return control(d, "/_sim/reset", "", NULL, err);
}

int destsim_stop(destsim_t *d)
{
    if (!d)
        return 0;
    kill(d->pid, SIGTERM);
    int code = wait_child(d->pid, DESTSIM_STOP_TIMEOUT_MS);
    if (code == -2) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        code = -1;
    }
    destsim_free(d);
    return code;
}
