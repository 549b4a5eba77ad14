/*
 * test_liveness: /healthz follows the main loop, /readyz keeps its own meaning. sluice-transform
 * runs with transform.liveness_timeout 1s and a rule whose HTTP lookup goes to a listener that
 * never answers (the connection waits in its backlog), with a 10 s lookup timeout: the loop is
 * blocked in that call. Healthy, the binary answers 200 on both; blocked, /healthz is 503 with
 * a JSON reason while /readyz is still 200; once the lookup fails fast (the listener closed),
 * the loop turns again (the event waits for its retry) and /healthz is 200 again. Every wait is
 * bounded and ends on a state, never on a timing.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sl_test.h"
#include "sl_testenv.h"

#define WAIT_MS 60000

/* A TCP listener on 127.0.0.1 that is never accepted from; its port into *port. */
static int silent_listener(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    SL_REQUIRE(fd >= 0);
    SL_REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(fd, 16) == 0 &&
               getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Polls GET `path` until it answers `status`; returns the last status, the body in `body`. */
static long wait_status(int port, const char *path, long status, char *body, size_t size)
{
    long got = sl_testenv_http_get(port, path, body, size);
    for (int waited = 0; got != status && waited < WAIT_MS; waited += 100) {
        struct timespec pause = {0, 100 * 1000000L};
        nanosleep(&pause, NULL);
        got = sl_testenv_http_get(port, path, body, size);
    }
    return got;
}

SL_TEST(a_blocked_loop_fails_healthz_and_not_readyz)
{
    struct sl_testenv_topics t;
    sl_testenv_stage_topics(&t, "liveness", "validated", "normalized");
    int api_port;
    int api = silent_listener(&api_port);

    char extra[1024], config[4096], admin[64], body[1024];
    snprintf(extra, sizeof(extra),
             "transform:\n"
             "  liveness_timeout: 1s\n"
             "  loop: { retry_max: 500ms }\n"
             "transforms:\n"
             "  - name: hang\n"
             "    lookups: [{ name: c, type: http, url: '\"http://127.0.0.1:%d/c\"', timeout: 10s,"
             " cache_ttl: 0 }]\n"
             "    jq: '{type: \"t\", data: .lookups}'\n",
             api_port);
    sl_testenv_config(t.prefix, extra, config, sizeof(config));
    int port = sl_testenv_free_port();
    snprintf(admin, sizeof(admin), "127.0.0.1:%d", port);
    const char *args[] = {"--config", config, "--admin-listen", admin, NULL};
    pid_t pid = sl_testenv_spawn("sluice-transform", args, "liveness-transform");

    /* Healthy: both 200. */
    SL_CHECK_INT(sl_testenv_wait_ready(port, 200, "ready", body, sizeof(body)), 200);
    SL_CHECK_INT(sl_testenv_http_get(port, "/healthz", body, sizeof(body)), 200);
    SL_CHECK_STR(body, "{\"status\":\"ok\"}");

    /* One event: the loop blocks in its lookup, past the liveness timeout. */
    sl_testenv_produce_event(t.in, "liveness-1", "k1", "{\"n\":1}");
    SL_CHECK_INT(wait_status(port, "/healthz", 503, body, sizeof(body)), 503);
    SL_CHECK_CONTAINS(body, "{\"status\":\"stuck\",\"detail\":\"the main loop has not turned for ");
    SL_CHECK_CONTAINS(body, "(liveness_timeout 1000 ms)");
    /* Its dependencies are fine: /readyz is not about a stuck loop. */
    SL_CHECK_INT(sl_testenv_http_get(port, "/readyz", body, sizeof(body)), 200);

    /* The lookup fails at once from now on (connection reset, then refused): the loop turns,
     * the event waits for its retry, and /healthz recovers. */
    close(api);
    SL_CHECK_INT(wait_status(port, "/healthz", 200, body, sizeof(body)), 200);
    SL_CHECK_INT(sl_testenv_stop(pid, SIGTERM, WAIT_MS), 0);
}

SL_TEST_MAIN()
