/*
 * bench-deliver-sink: the HTTP destination of bench/deliver. Answers every POST with 200 and a
 * two-byte body, at once or after --delay-ms (the connection is suspended and a timer thread
 * resumes it, so a slow answer holds no thread: one polling thread serves any number of them,
 * like a destination that is slow but not overloaded). GET /count answers the number of
 * requests answered so far, for the driver to time a run from the sink's side.
 *
 *   bench-deliver-sink --port-file FILE [--listen 127.0.0.1:0] [--delay-ms N] [--threads N]
 *
 * --threads is MHD's thread pool (default 2): with a single epoll thread, a burst of a few
 * hundred new connections at once was sometimes closed unanswered, every one of them.
 *
 * Deliberately minimal: no parsing, no bookkeeping per request, so that it costs the machine
 * as little as possible next to what is measured. Stops on SIGTERM/SIGINT.
 */
#include <errno.h>
#include <getopt.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sl_addr.h"

#define SINK_PENDING_MAX (1 << 16) /* suspended requests at once */
#define SINK_DELAY_MAX   60000

struct pending {
    struct MHD_Connection *conn;
    long long due_ms;
};

struct sink {
    long delay_ms;
    struct MHD_Response *ok;
    atomic_llong answered;
    pthread_mutex_t lock; /* guards the pending ring */
    pthread_cond_t wake;
    struct pending ring[SINK_PENDING_MAX];
    size_t head, n;
    bool stopping;
};

/* Per request, kept in MHD's con_cls slot: headers seen, body read, suspended. */
enum req_state { REQ_NEW = 0, REQ_BODY, REQ_HELD };

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The timer thread: the delay is the same for every request, so the ring is in due order. */
static void *timer_main(void *arg)
{
    struct sink *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stopping || s->n > 0) {
        if (s->n == 0) {
            pthread_cond_wait(&s->wake, &s->lock);
            continue;
        }
        struct pending *p = &s->ring[s->head];
        long long wait = s->stopping ? 0 : p->due_ms - now_ms();
        if (wait > 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += wait / 1000;
            ts.tv_nsec += (wait % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&s->wake, &s->lock, &ts);
            continue;
        }
        struct MHD_Connection *conn = p->conn;
        s->head = (s->head + 1) % SINK_PENDING_MAX;
        s->n--;
        pthread_mutex_unlock(&s->lock);
        MHD_resume_connection(conn); /* safe from any thread */
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    struct sink *s = cls;
    enum req_state st = (enum req_state)(uintptr_t)*con_cls;
    if (strcmp(method, "GET") == 0 && strcmp(url, "/count") == 0) {
        char text[32];
        int n = snprintf(text, sizeof(text), "%lld", atomic_load(&s->answered));
        struct MHD_Response *r =
            MHD_create_response_from_buffer((size_t)n, text, MHD_RESPMEM_MUST_COPY);
        enum MHD_Result rc = MHD_queue_response(conn, 200, r);
        MHD_destroy_response(r);
        return rc;
    }
    if (st == REQ_NEW) {
        *con_cls = (void *)(uintptr_t)REQ_BODY;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        *upload_size = 0; /* read and dropped */
        return MHD_YES;
    }
    if (s->delay_ms > 0 && st == REQ_BODY) {
        pthread_mutex_lock(&s->lock);
        if (s->n == SINK_PENDING_MAX || s->stopping) {
            pthread_mutex_unlock(&s->lock);
            return MHD_NO;
        }
        MHD_suspend_connection(conn);
        *con_cls = (void *)(uintptr_t)REQ_HELD;
        s->ring[(s->head + s->n) % SINK_PENDING_MAX] =
            (struct pending){conn, now_ms() + s->delay_ms};
        s->n++;
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->lock);
        return MHD_YES;
    }
    atomic_fetch_add(&s->answered, 1);
    return MHD_queue_response(conn, 200, s->ok);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    *con_cls = (void *)(uintptr_t)REQ_NEW;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"listen", required_argument, NULL, 'l'},
        {"port-file", required_argument, NULL, 'p'},
        {"delay-ms", required_argument, NULL, 'd'},
        {"threads", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    const char *listen = "127.0.0.1:0", *port_file = NULL;
    long threads = 2; /* one epoll thread dropped whole bursts of new connections (MHD 0.9.75) */
    static struct sink s;
    int opt;
    while ((opt = getopt_long(argc, argv, "l:p:d:t:", options, NULL)) != -1) {
        switch (opt) {
        case 'l':
            listen = optarg;
            break;
        case 'p':
            port_file = optarg;
            break;
        case 'd':
            s.delay_ms = strtol(optarg, NULL, 10);
            break;
        case 't':
            threads = strtol(optarg, NULL, 10);
            break;
        default:
            fprintf(stderr, "usage: bench-deliver-sink --port-file FILE [--listen ADDR] "
                            "[--delay-ms N] [--threads N]\n");
            return 2;
        }
    }
    if (!port_file || s.delay_ms < 0 || s.delay_ms > SINK_DELAY_MAX || threads < 1 ||
        threads > 64) {
        fprintf(stderr, "bench-deliver-sink: bad arguments\n");
        return 2;
    }
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct sl_err err;
    if (sl_addr_parse(listen, &ss, &sslen, &err) != 0) {
        fprintf(stderr, "bench-deliver-sink: %s\n", err.msg);
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread; taken with sigwait below */
    signal(SIGPIPE, SIG_IGN);

    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.wake, NULL);
    s.ok = MHD_create_response_from_buffer(2, "{}", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(s.ok, "Content-Type", "application/json");
    pthread_t timer;
    if (pthread_create(&timer, NULL, timer_main, &s) != 0)
        return 1;
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        answer, &s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)threads, MHD_OPTION_CONNECTION_LIMIT, (unsigned)20000,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
        MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "bench-deliver-sink: cannot listen on %s\n", listen);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%u\n", (unsigned)info->port) < 0 || fclose(f) != 0 ||
        rename(tmp, port_file) != 0) {
        fprintf(stderr, "bench-deliver-sink: cannot write %s\n", port_file);
        return 1;
    }
    int sig;
    sigwait(&set, &sig);
    pthread_mutex_lock(&s.lock);
    s.stopping = true;
    pthread_cond_signal(&s.wake);
    pthread_mutex_unlock(&s.lock);
    pthread_join(timer, NULL);
    MHD_stop_daemon(d);
    MHD_destroy_response(s.ok);
    return 0;
}
