/*
 * bench-deliver: the measuring part of bench/deliver/run.sh.
 *
 * Deliveries per second from Kafka to a local HTTP sink (bench-deliver-sink), against the
 * reference measured in the same run: a plain libcurl multi client (one thread, the same
 * number of requests in flight, the same 1 KB body) posting to the same sink as fast as it
 * answers. Two sinks:
 *
 *   fast   answers 200 at once: sluice-deliver with 1, 2 and 4 processes, each with
 *          `concurrency` requests in flight; ratio = deliveries/s over the client's req/s.
 *   slow   answers after 50 ms: one process (one thread) at concurrency 16, 64 and 256.
 *          Throughput must follow concurrency / 50 ms, as the client's does: concurrency is
 *          requests in flight on one event loop, not threads.
 *
 * A delivery run: a fresh topic prefix, the deliver topic with `partitions` partitions, the
 * processes started and each given its partitions (sluice_deliver_partitions_assigned), then
 * `events` events produced (1 KB, distinct keys) while the sink's answer count is polled; the
 * time runs from the first answer to the events-th. Every delivery includes what sluice-deliver
 * always does: the ledger check and mark in Redis, one audit record and one outcome record
 * produced with acks=all, offsets committed. CPU per delivery is the processes' utime + stime
 * over the run, divided by the events.
 *
 *   bench-deliver --bin DIR --brokers HOST:PORT --work DIR [--events N] [--concurrency N]
 *                 [--partitions N] [--client-seconds S]
 */
#include <curl/curl.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sl_cloudevent.h"
#include "sl_id.h"
#include "sl_kafka.h"

#define BODY_BYTES    1024
#define WAIT_MS       120000 /* longest wait for anything */
#define POLL_MS       5      /* sink count polling while a run is timed */
#define PROCS_MAX     4
#define SLOW_DELAY_MS 50
#define TEXT_MAX      4096

struct opts {
    const char *bin, *brokers, *work;
    long events, concurrency, partitions;
    double client_seconds;
};

static struct opts o = {.events = 20000, .concurrency = 64, .partitions = 8, .client_seconds = 5};
static char body[BODY_BYTES + 1];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Every child still running, so that no exit path leaves one behind. */
static pid_t children[PROCS_MAX + 2];

static void stop(pid_t pid);

static void stop_children(void)
{
    for (size_t i = 0; i < sizeof(children) / sizeof(children[0]); i++)
        if (children[i] > 0)
            stop(children[i]);
}

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench-deliver: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1); /* stop_children runs (atexit) */
}

/* ---- child processes ---- */

static pid_t spawn(const char *const *argv, const char *log)
{
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* killed with the driver, whatever kills it */
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    if (pid < 0)
        die("fork failed");
    for (size_t i = 0; i < sizeof(children) / sizeof(children[0]); i++)
        if (children[i] == 0) {
            children[i] = pid;
            break;
        }
    return pid;
}

static void stop(pid_t pid)
{
    int status;
    for (size_t i = 0; i < sizeof(children) / sizeof(children[0]); i++)
        if (children[i] == pid)
            children[i] = 0;
    kill(pid, SIGTERM);
    for (int i = 0; i < WAIT_MS / 10; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
}

/* utime + stime of a running process, in seconds. */
static double cpu_of(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
        return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    return 0;
}

/* ---- HTTP helpers ---- */

static size_t to_buf(char *p, size_t size, size_t n, void *opaque)
{
    char *buf = opaque;
    size_t have = strlen(buf), take = size * n;
    if (have + take >= TEXT_MAX)
        take = TEXT_MAX - 1 - have;
    memcpy(buf + have, p, take);
    buf[have + take] = '\0';
    return size * n;
}

/* GET http://127.0.0.1:port/path into text (TEXT_MAX), reusing `c`; the status, -1 on error. */
static long get(CURL *c, int port, const char *path, char *text)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    text[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_buf);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, text);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

static long long sink_count(CURL *c, int port)
{
    char text[TEXT_MAX];
    return get(c, port, "/count", text) == 200 ? atoll(text) : -1;
}

/* A metric from a deliver process's /metrics: the sum over the series starting with prefix. */
static double metric(CURL *c, int port, const char *prefix)
{
    static char text[1 << 20];
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
    FILE *mem = fmemopen(text, sizeof(text) - 1, "w");
    if (!mem)
        return -1;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, NULL);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, mem);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
    CURLcode rc = curl_easy_perform(c);
    long n = ftell(mem);
    fclose(mem);
    if (rc != CURLE_OK || n <= 0)
        return -1;
    text[n] = '\0';
    double sum = 0;
    size_t plen = strlen(prefix);
    for (char *line = text; line && *line;) {
        if (strncmp(line, prefix, plen) == 0) {
            char *sp = strchr(line, ' ');
            if (sp)
                sum += strtod(sp + 1, NULL);
        }
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    return sum;
}

/* A port the kernel gave a moment ago (the admin listener of a deliver process). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    if (port < 0)
        die("no free port");
    return port;
}

static size_t discard(char *p, size_t size, size_t n, void *opaque)
{
    return size * n;
}

/* ---- the sink ---- */

static pid_t start_sink(long delay_ms, int *port, const char *name)
{
    char port_file[512], log[512], delay[32];
    snprintf(port_file, sizeof(port_file), "%s/%s.port", o.work, name);
    snprintf(log, sizeof(log), "%s/%s.log", o.work, name);
    snprintf(delay, sizeof(delay), "%ld", delay_ms);
    unlink(port_file);
    char bin[512];
    snprintf(bin, sizeof(bin), "%s/bench-deliver-sink", o.bin);
    const char *argv[] = {bin, "--port-file", port_file, "--delay-ms", delay, NULL};
    pid_t pid = spawn(argv, log);
    for (int i = 0; i < WAIT_MS / 10; i++) {
        FILE *f = fopen(port_file, "r");
        if (f && fscanf(f, "%d", port) == 1) {
            fclose(f);
            return pid;
        }
        if (f)
            fclose(f);
        usleep(10000);
    }
    die("the sink did not start (%s)", log);
}

/* ---- the reference: a plain libcurl multi client ---- */

struct client_result {
    double rate, cpu_us;
};

static struct client_result run_client(int port, long concurrency, double seconds)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/in", port);
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, concurrency + 1);
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Idempotency-Key: 01a20ea6-9e44-7cd5-b4a5-ba04f2da0971:sink");
    h = curl_slist_append(h, "Expect:");
    CURL **easy = calloc((size_t)concurrency, sizeof(*easy));
    for (long i = 0; i < concurrency; i++) {
        easy[i] = curl_easy_init();
        curl_easy_setopt(easy[i], CURLOPT_URL, url);
        curl_easy_setopt(easy[i], CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(easy[i], CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(easy[i], CURLOPT_POSTFIELDSIZE, (long)BODY_BYTES);
        curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(easy[i], CURLOPT_NOSIGNAL, 1L);
        curl_multi_add_handle(m, easy[i]);
    }
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = now_s(), end = t0 + seconds;
    long done = 0;
    int running = 0;
    while (now_s() < end) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            long status = 0;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            done += msg->data.result == CURLE_OK && status == 200;
            CURL *e = msg->easy_handle;
            curl_multi_remove_handle(m, e);
            curl_multi_add_handle(m, e); /* the same request again, on a kept-alive connection */
        }
        curl_multi_poll(m, NULL, 0, 10, NULL);
    }
    double t = now_s() - t0;
    getrusage(RUSAGE_SELF, &r1);
    double cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec + r1.ru_stime.tv_sec -
                          r0.ru_stime.tv_sec) +
                 (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec + r1.ru_stime.tv_usec -
                          r0.ru_stime.tv_usec) /
                     1e6;
    for (long i = 0; i < concurrency; i++) {
        curl_multi_remove_handle(m, easy[i]);
        curl_easy_cleanup(easy[i]);
    }
    free(easy);
    curl_slist_free_all(h);
    curl_multi_cleanup(m);
    return (struct client_result){done / t, done ? cpu * 1e6 / (double)done : 0};
}

/* ---- a delivery run ---- */

struct feed {
    sl_producer_t *p;
    char topic[SL_TOPIC_NAME_MAX];
    long n;
    atomic_int failed;
};

static void on_report(void *opaque, int32_t partition, int64_t offset, const struct sl_err *err)
{
    struct feed *f = opaque;
    if (err)
        atomic_store(&f->failed, 1);
}

static void *produce_all(void *arg)
{
    struct feed *f = arg;
    struct sl_err err;
    for (long i = 0; i < f->n; i++) {
        char id[SL_UUID_STR_LEN + 1];
        struct sl_ce ce;
        sl_uuid_v7(id);
        sl_ce_init(&ce);
        rd_kafka_headers_t *hdrs = rd_kafka_headers_new(6);
        if (sl_ce_set(&ce, "specversion", "1.0", &err) || sl_ce_set(&ce, "id", id, &err) ||
            sl_ce_set(&ce, "source", "bench", &err) ||
            sl_ce_set(&ce, "type", "bench.event", &err) ||
            sl_ce_set(&ce, "datacontenttype", "application/json", &err) ||
            sl_ce_to_headers(&ce, hdrs, &err))
            atomic_store(&f->failed, 1);
        sl_ce_free(&ce);
        while (sl_producer_send(f->p, f->topic, id, strlen(id), body, BODY_BYTES, hdrs, f, &err) !=
               0) {
            if (!err.retriable) {
                rd_kafka_headers_destroy(hdrs);
                atomic_store(&f->failed, 1);
                break;
            }
            sl_producer_poll(f->p, 10);
        }
        sl_producer_poll(f->p, 0);
    }
    sl_producer_flush(f->p, WAIT_MS, &err);
    return NULL;
}

struct run_result {
    double rate, cpu_us;
};

static struct run_result run_deliver(int sink_port, int procs, long concurrency, long events,
                                     const char *label)
{
    struct sl_err err;
    struct sl_kafka_settings k;
    char id[SL_UUID_STR_LEN + 1], prefix[64], config[512], log[512], bin[512];
    sl_uuid_v7(id);
    snprintf(prefix, sizeof(prefix), "bench-%.8s%s.", id, id + 24);
    sl_kafka_settings_default(&k);
    k.brokers = o.brokers;
    k.topic_prefix = prefix;
    k.partitions = (int)o.partitions;

    struct feed feed = {.n = events};
    snprintf(feed.topic, sizeof(feed.topic), "%sdeliver.sink", prefix);
    char names[4][SL_TOPIC_NAME_MAX];
    const char *suffix[] = {"outcomes", "audit", "dlq"};
    struct sl_topic_spec specs[4] = {{feed.topic, (int)o.partitions, 1}};
    for (int i = 0; i < 3; i++) {
        snprintf(names[i], sizeof(names[i]), "%s%s", prefix, suffix[i]);
        specs[i + 1] = (struct sl_topic_spec){names[i], (int)o.partitions, 1};
    }
    if (sl_kafka_create_topics(&k, specs, 4, 30000, NULL, &err) != 0)
        die("topics: %s", err.msg);

    snprintf(config, sizeof(config), "%s/%s.yaml", o.work, prefix);
    FILE *f = fopen(config, "w");
    if (!f)
        die("cannot write %s", config);
    fprintf(f,
            "kafka: { brokers: \"%s\", topic_prefix: \"%s\", partitions: %ld, linger: 5ms }\n"
            "deliver: { max_events: 50000, max_events_per_partition: 20000 }\n"
            "destinations:\n"
            "  sink:\n"
            "    url: \"http://127.0.0.1:%d/in\"\n"
            "    concurrency: %ld\n"
            "    ordering: none\n"
            "    timeout: 30s\n"
            "    ledger_ttl: 10m\n",
            o.brokers, prefix, o.partitions, sink_port, concurrency);
    fclose(f);

    snprintf(bin, sizeof(bin), "%s/sluice-deliver", o.bin);
    pid_t pids[PROCS_MAX];
    int ports[PROCS_MAX];
    for (int i = 0; i < procs; i++) {
        char listen[64];
        ports[i] = free_port();
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", ports[i]);
        snprintf(log, sizeof(log), "%s/%sdeliver-%d.log", o.work, prefix, i);
        const char *argv[] = {bin, "--config", config, "--admin-listen", listen, NULL};
        pids[i] = spawn(argv, log);
    }
    CURL *c = curl_easy_init();
    double deadline = now_s() + WAIT_MS / 1000.0;
    for (;;) {
        /* Every process with its share: a sum alone can be one process holding them all
         * before the others joined. */
        int balanced = 0;
        for (int i = 0; i < procs; i++)
            balanced += metric(c, ports[i], "sluice_deliver_partitions_assigned") ==
                        (double)(o.partitions / procs);
        if (balanced == procs)
            break;
        if (now_s() > deadline)
            die("the deliver processes did not get their partitions (%s)", label);
        usleep(100000);
    }

    feed.p = sl_producer_new(&k, "bench-deliver-feed", on_report, &err);
    if (!feed.p)
        die("producer: %s", err.msg);
    long long base = sink_count(c, sink_port);
    double cpu0 = 0;
    for (int i = 0; i < procs; i++)
        cpu0 += cpu_of(pids[i]);
    pthread_t feeder;
    pthread_create(&feeder, NULL, produce_all, &feed);
    double t_first = 0, t_last = 0;
    deadline = now_s() + WAIT_MS / 1000.0;
    for (;;) {
        long long n = sink_count(c, sink_port) - base;
        double t = now_s();
        if (n > 0 && t_first == 0)
            t_first = t;
        if (n >= events) {
            t_last = t;
            break;
        }
        if (t > deadline)
            die("deliveries stalled (%s)", label);
        usleep(POLL_MS * 1000);
    }
    double cpu1 = 0;
    for (int i = 0; i < procs; i++)
        cpu1 += cpu_of(pids[i]);
    pthread_join(feeder, NULL);
    if (atomic_load(&feed.failed))
        die("producing events failed (%s)", label);
    sl_producer_destroy(feed.p);
    for (int i = 0; i < procs; i++)
        stop(pids[i]);
    curl_easy_cleanup(c);
    /* The first answer already counts: the interval covers events - 1 deliveries. */
    double rate = (double)(events - 1) / (t_last - t_first);
    return (struct run_result){rate, (cpu1 - cpu0) * 1e6 / (double)events};
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"bin", required_argument, NULL, 'b'},
        {"brokers", required_argument, NULL, 'k'},
        {"work", required_argument, NULL, 'w'},
        {"events", required_argument, NULL, 'n'},
        {"concurrency", required_argument, NULL, 'c'},
        {"partitions", required_argument, NULL, 'p'},
        {"client-seconds", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'b':
            o.bin = optarg;
            break;
        case 'k':
            o.brokers = optarg;
            break;
        case 'w':
            o.work = optarg;
            break;
        case 'n':
            o.events = atol(optarg);
            break;
        case 'c':
            o.concurrency = atol(optarg);
            break;
        case 'p':
            o.partitions = atol(optarg);
            break;
        case 's':
            o.client_seconds = atof(optarg);
            break;
        default:
            return 2;
        }
    }
    if (!o.bin || !o.brokers || !o.work || o.events < 100 || o.concurrency < 1 ||
        o.partitions < PROCS_MAX || o.partitions % PROCS_MAX != 0) {
        fprintf(stderr, "usage: bench-deliver --bin DIR --brokers HOST:PORT --work DIR "
                        "[--events N>=100] [--concurrency N] [--partitions N, a multiple of 4] "
                        "[--client-seconds S]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    atexit(stop_children);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    memset(body, 'x', BODY_BYTES);
    memcpy(body, "{\"pad\":\"", 8);
    memcpy(body + BODY_BYTES - 2, "\"}", 2);

    int fast_port, slow_port;
    pid_t fast = start_sink(0, &fast_port, "sink-fast");
    pid_t slow = start_sink(SLOW_DELAY_MS, &slow_port, "sink-slow");

    printf("bench/deliver: %ld events of %d bytes, %ld partitions; one Kafka broker, Redis and "
           "every process on this machine\n\n",
           o.events, BODY_BYTES, o.partitions);
    printf("Sink answering 200 at once, %ld requests in flight per process:\n", o.concurrency);
    struct client_result ref = run_client(fast_port, o.concurrency, o.client_seconds);
    printf("  %-36s %9.0f req/s   %6.1f us CPU/request\n", "libcurl multi client (reference)",
           ref.rate, ref.cpu_us);
    const int procs[] = {1, 2, 4};
    for (size_t i = 0; i < 3; i++) {
        char label[64];
        snprintf(label, sizeof(label), "sluice-deliver x%d", procs[i]);
        struct run_result r = run_deliver(fast_port, procs[i], o.concurrency, o.events, label);
        printf("  %-36s %9.0f deliveries/s   %6.1f us CPU/delivery   ratio %.2f\n", label, r.rate,
               r.cpu_us, r.rate / ref.rate);
        fflush(stdout);
    }

    printf("\nSink answering after %d ms, one process (one thread):\n", SLOW_DELAY_MS);
    const long concs[] = {16, 64, 256};
    for (size_t i = 0; i < 3; i++) {
        double ideal = (double)concs[i] * 1000.0 / SLOW_DELAY_MS;
        struct client_result cr = run_client(slow_port, concs[i], o.client_seconds);
        long events = (long)(ideal * 4); /* about four seconds of it */
        char label[64];
        snprintf(label, sizeof(label), "concurrency %ld", concs[i]);
        struct run_result r = run_deliver(slow_port, 1, concs[i], events, label);
        printf("  %-16s ideal %6.0f/s   libcurl %6.0f req/s   sluice-deliver %6.0f "
               "deliveries/s   ratio %.2f (to libcurl) %.2f (to ideal)\n",
               label, ideal, cr.rate, r.rate, r.rate / cr.rate, r.rate / ideal);
        fflush(stdout);
    }
    stop(fast);
    stop(slow);
    curl_global_cleanup();
    return 0;
}
