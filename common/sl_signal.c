#include "sl_signal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;
static int wake_pipe[2] = {-1, -1};

void sl_signal_request_stop(void)
{
    stop_requested = 1;
    if (wake_pipe[1] >= 0) {
        int saved = errno;
        /* Non-blocking: a full pipe already holds a wake-up. */
        ssize_t n = write(wake_pipe[1], "x", 1);
        (void)n;
        errno = saved;
    }
}

static void on_signal(int sig)
{
    (void)sig;
    sl_signal_request_stop();
}

int sl_signal_install(struct sl_err *err)
{
    if (wake_pipe[0] < 0 && pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return sl_err_set(err, SL_ERR_IO, "signal pipe: %s", strerror(errno));
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
        return sl_err_set(err, SL_ERR_IO, "sigaction: %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

bool sl_signal_stopping(void)
{
    return stop_requested != 0;
}

bool sl_signal_wait(int timeout_ms)
{
    if (stop_requested)
        return true;
    if (wake_pipe[0] < 0) {
        /* Not installed: sleep in bounded slices so a programmatic stop is still noticed. */
        struct pollfd none;
        poll(&none, 0, timeout_ms < 0 || timeout_ms > 100 ? 100 : timeout_ms);
        return stop_requested != 0;
    }
    struct pollfd pfd = {.fd = wake_pipe[0], .events = POLLIN};
    if (poll(&pfd, 1, timeout_ms) > 0) {
        char buf[64];
        /* Drain but keep the flag: every later wait returns at once. */
        while (read(wake_pipe[0], buf, sizeof(buf)) > 0)
            ;
    }
    return stop_requested != 0;
}
