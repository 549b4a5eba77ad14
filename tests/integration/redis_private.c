#include "redis_private.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sl_redis.h"
#include "sl_test.h"
#include "sl_testenv.h"

#define POLL_MS 50

struct rp {
    pid_t pid;
    int port;
    char dir[1024];
    char log[1100];
    char url[64];
    const char *extra[RP_EXTRA_MAX + 1]; /* borrowed, NULL-terminated */
};

static bool answers(const rp_t *r)
{
    struct sl_err err;
    sl_redis_t *c = sl_redis_new(r->url, 500, &err);
    redisReply *reply = NULL;
    bool ok = c && sl_redis_cmd(c, &reply, 1, (const char *[]){"PING"}, NULL, &err) == 0;
    if (reply)
        freeReplyObject(reply);
    sl_redis_destroy(c);
    return ok;
}

static void launch(rp_t *r)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", r->port);
    fflush(stdout);
    r->pid = fork();
    SL_REQUIRE(r->pid >= 0);
    if (r->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
        if (!freopen(r->log, "a", stdout) || !freopen(r->log, "a", stderr))
            _exit(126);
        /* Later options override earlier ones: the extra ones come last. */
        const char *argv[16 + RP_EXTRA_MAX] = {
            "redis-server", "--port",      port, "--bind",       "127.0.0.1", "--dir",
            r->dir,         "--save",      "",   "--appendonly", "yes",       "--appendfsync",
            "always",       "--daemonize", "no"};
        size_t n = 15;
        for (size_t i = 0; r->extra[i]; i++)
            argv[n++] = r->extra[i];
        argv[n] = NULL;
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    for (int waited = 0; waited < RP_START_MS && !answers(r); waited += POLL_MS)
        usleep(POLL_MS * 1000);
    if (!answers(r)) {
        sl_test_fail(__FILE__, __LINE__, "redis-server on port %d did not start; see %s", r->port,
                     r->log);
        sl_test_abort_current();
    }
}

rp_t *rp_start(const char *name)
{
    return rp_start_with(name, NULL);
}

rp_t *rp_start_with(const char *name, const char *const *extra)
{
    if (system("command -v redis-server >/dev/null 2>&1") != 0)
        sl_test_skip("redis-server is not installed (deploy/local/install-deps.sh)");
    /* The server dies under the test's own connections: a write must fail, not kill the test. */
    signal(SIGPIPE, SIG_IGN);
    rp_t *r = calloc(1, sizeof(*r));
    SL_REQUIRE(r);
    char unique[96];
    sl_testenv_unique(name, unique, sizeof(unique));
    snprintf(r->dir, sizeof(r->dir), "%s/tests/%s", sl_test_binary_dir(), unique);
    SL_REQUIRE(mkdir(r->dir, 0755) == 0);
    snprintf(r->log, sizeof(r->log), "%s/redis.log", r->dir);
    r->port = sl_testenv_free_port();
    snprintf(r->url, sizeof(r->url), "redis://127.0.0.1:%d/0", r->port);
    for (size_t i = 0; extra && extra[i]; i++) {
        SL_REQUIRE(i < RP_EXTRA_MAX);
        r->extra[i] = extra[i];
    }
    launch(r);
    return r;
}

const char *rp_url(const rp_t *r)
{
    return r->url;
}

void rp_kill(rp_t *r)
{
    if (r->pid <= 0)
        return;
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
}

void rp_restart(rp_t *r)
{
    rp_kill(r);
    launch(r);
}

void rp_destroy(rp_t *r)
{
    if (!r)
        return;
    rp_kill(r);
    free(r);
}
