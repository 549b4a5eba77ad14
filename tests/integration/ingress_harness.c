#include "ingress_harness.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sl_test.h"
#include "sl_testenv.h"

#define POLL_MS   50
#define LOG_MAX   (64 * 1024 * 1024)
#define PATH_MAX_ 512

struct harness {
    pid_t pid;
    bool exited;
    int port, admin_port;
    char prefix[160];
    char topic[200];
    char dir[PATH_MAX_ - 32]; /* room for the file names below */
    char config[PATH_MAX_];
    char log[PATH_MAX_];
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

char *harness_log(const harness_t *h)
{
    FILE *f = fopen(h->log, "r");
    char *buf = malloc(LOG_MAX + 1);
    size_t n = 0;
    if (buf && f)
        n = fread(buf, 1, LOG_MAX, f);
    if (buf)
        buf[n] = '\0';
    if (f)
        fclose(f);
    return buf;
}

static void fail_with_log(harness_t *h, const char *what)
{
    char *log = harness_log(h);
    size_t len = log ? strlen(log) : 0;
    const char *tail = log ? log + (len > 3000 ? len - 3000 : 0) : "";
    sl_test_fail(__FILE__, __LINE__, "sluice-ingress: %s; log tail:\n%s", what, tail);
    free(log);
}

static void write_config(harness_t *h, const char *kafka_yaml, const char *ingress_yaml,
                         const char *sources_yaml)
{
    FILE *f = fopen(h->config, "w");
    if (!f) {
        sl_test_fail(__FILE__, __LINE__, "cannot write %s", h->config);
        sl_test_abort_current();
    }
    fprintf(f,
            "kafka:\n"
            "  brokers: \"${SLUICE_KAFKA_BROKERS}\"\n"
            "  topic_prefix: \"%s\"\n"
            "  partitions: %d\n"
            "  linger: 2ms\n"
            "%s"
            "ingress:\n"
            "    listen: \"127.0.0.1:0\"\n"
            "%s\n"
            "%s\n",
            h->prefix, HARNESS_TOPIC_PARTITIONS, kafka_yaml, ingress_yaml, sources_yaml);
    fclose(f);
}

/* Parses "listening: http 127.0.0.1:P, admin 127.0.0.1:A" from the log. */
static bool read_ports(harness_t *h)
{
    char *log = harness_log(h);
    const char *line = log ? strstr(log, "\"listening: http ") : NULL;
    bool ok = false;
    if (line) {
        const char *http = strstr(line, "http 127.0.0.1:"),
                   *admin = strstr(line, "admin 127.0.0.1:");
        ok = http && admin && sscanf(http, "http 127.0.0.1:%d", &h->port) == 1 &&
             sscanf(admin, "admin 127.0.0.1:%d", &h->admin_port) == 1;
    }
    free(log);
    return ok;
}

static bool child_exited(harness_t *h, int *status)
{
    if (h->exited)
        return true;
    if (waitpid(h->pid, status, WNOHANG) == h->pid)
        h->exited = true;
    return h->exited;
}

harness_t *harness_start(const char *ingress_yaml, const char *sources_yaml)
{
    return harness_start_kafka("", ingress_yaml, sources_yaml);
}

harness_t *harness_start_kafka(const char *kafka_yaml, const char *ingress_yaml,
                               const char *sources_yaml)
{
    char unique[128], topic[200];
    sl_testenv_unique("sluice-test.ingress", unique, sizeof(unique));
    snprintf(topic, sizeof(topic), "%s.ingress", unique);
    /* First, as it may end the test: nothing is allocated yet. */
    sl_testenv_create_topic(topic, HARNESS_TOPIC_PARTITIONS);
    harness_t *h = calloc(1, sizeof(*h));
    SL_REQUIRE(h);
    snprintf(h->prefix, sizeof(h->prefix), "%s.", unique);
    snprintf(h->topic, sizeof(h->topic), "%s", topic);
    snprintf(h->dir, sizeof(h->dir), "%s/tests/ingress-XXXXXX", sl_test_binary_dir());
    if (!mkdtemp(h->dir)) {
        sl_test_fail(__FILE__, __LINE__, "mkdtemp %s: %s", h->dir, strerror(errno));
        free(h);
        sl_test_abort_current();
    }
    snprintf(h->config, sizeof(h->config), "%s/pipeline.yaml", h->dir);
    snprintf(h->log, sizeof(h->log), "%s/ingress.log", h->dir);
    write_config(h, kafka_yaml, ingress_yaml, sources_yaml);

    char bin[PATH_MAX_];
    snprintf(bin, sizeof(bin), "%s/bin/sluice-ingress", sl_test_binary_dir());
    int logfd = open(h->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    SL_REQUIRE(logfd >= 0);
    h->pid = fork();
    if (h->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the test */
        dup2(logfd, STDOUT_FILENO);
        dup2(logfd, STDERR_FILENO);
        execl(bin, bin, "--config", h->config, "--admin-listen", "127.0.0.1:0", (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    close(logfd);
    SL_REQUIRE(h->pid > 0);

    long long deadline = now_ms() + HARNESS_START_TIMEOUT_MS;
    int status;
    while (!read_ports(h)) {
        if (child_exited(h, &status) || now_ms() > deadline) {
            fail_with_log(h, h->exited ? "exited during start-up" : "did not start in time");
            harness_destroy(h);
            sl_test_abort_current();
        }
        sleep_ms(POLL_MS);
    }
    /* Ready means the producer reached the broker: requests then do not wait for a first
     * connection, and no test depends on start-up speed. */
    struct http_reply r;
    while (http_request(h->admin_port, "GET", "/readyz", NULL, NULL, 0, &r) != 200) {
        if (child_exited(h, &status) || now_ms() > deadline) {
            fail_with_log(h, "never became ready");
            harness_destroy(h);
            sl_test_abort_current();
        }
        sleep_ms(POLL_MS);
    }
    return h;
}

int harness_port(const harness_t *h)
{
    return h->port;
}

int harness_admin_port(const harness_t *h)
{
    return h->admin_port;
}

const char *harness_topic(const harness_t *h)
{
    return h->topic;
}

pid_t harness_pid(const harness_t *h)
{
    return h->pid;
}

int harness_signal_and_wait(harness_t *h, int sig)
{
    int status = 0;
    if (!h->exited)
        kill(h->pid, sig);
    long long deadline = now_ms() + HARNESS_STOP_TIMEOUT_MS;
    while (!child_exited(h, &status) && now_ms() < deadline)
        sleep_ms(POLL_MS);
    if (!h->exited) {
        kill(h->pid, SIGKILL);
        waitpid(h->pid, NULL, 0);
        h->exited = true;
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void harness_destroy(harness_t *h)
{
    if (!h)
        return;
    if (!h->exited)
        harness_signal_and_wait(h, SIGTERM);
    /* The log stays next to the build for a failed run; the config has no secret of value. */
    free(h);
}

/* ---- HTTP ---- */

static size_t on_body(char *p, size_t size, size_t n, void *opaque)
{
    struct http_reply *r = opaque;
    size_t take = size * n;
    if (take > sizeof(r->body) - 1 - r->len)
        take = sizeof(r->body) - 1 - r->len;
    memcpy(r->body + r->len, p, take);
    r->len += take;
    r->body[r->len] = '\0';
    return size * n;
}

static void header_value(const char *line, size_t len, const char *name, char *out, size_t size)
{
    size_t nlen = strlen(name);
    if (len <= nlen + 1 || strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
        return;
    const char *v = line + nlen + 1;
    size_t vlen = len - nlen - 1;
    while (vlen && (*v == ' ' || *v == '\t'))
        v++, vlen--;
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
        vlen--;
    snprintf(out, size, "%.*s", (int)vlen, v);
}

static size_t on_header(char *p, size_t size, size_t n, void *opaque)
{
    struct http_reply *r = opaque;
    header_value(p, size * n, "Content-Type", r->content_type, sizeof(r->content_type));
    header_value(p, size * n, "Retry-After", r->retry_after, sizeof(r->retry_after));
    header_value(p, size * n, "Connection", r->connection, sizeof(r->connection));
    return size * n;
}

void http_capture(void *curl_easy, struct http_reply *r)
{
    curl_easy_setopt(curl_easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl_easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(curl_easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl_easy, CURLOPT_HEADERDATA, r);
}

long http_request(int port, const char *method, const char *path, const char *const *headers,
                  const void *body, size_t len, struct http_reply *r)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    memset(r, 0, sizeof(*r));
    r->status = -1;
    CURL *c = curl_easy_init();
    struct curl_slist *list = NULL;
    /* No "Expect: 100-continue" round trip unless a test asks for it. */
    list = curl_slist_append(list, "Expect:");
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append(list, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    http_capture(c, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)HARNESS_HTTP_TIMEOUT_MS);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
    return r->status;
}

void http_check_error(const struct http_reply *r, const char *code, const char *what)
{
    json_error_t e;
    json_t *j = json_loadb(r->body, r->len, 0, &e);
    const char *got = j ? json_string_value(json_object_get(j, "error")) : NULL;
    const char *detail = j ? json_string_value(json_object_get(j, "detail")) : NULL;
    if (!got || strcmp(got, code) != 0 || !detail || !*detail || json_object_size(j) != 2)
        sl_test_fail(__FILE__, __LINE__, "%s: expected error %s, got status %ld body %s", what,
                     code, r->status, r->body);
    if (strncmp(r->content_type, "application/json", 16) != 0)
        sl_test_fail(__FILE__, __LINE__, "%s: Content-Type '%s'", what, r->content_type);
    json_decref(j);
}

bool http_accepted_id(const struct http_reply *r, char *id, size_t size)
{
    json_error_t e;
    json_t *j = json_loadb(r->body, r->len, 0, &e);
    const char *v = j ? json_string_value(json_object_get(j, "id")) : NULL;
    bool ok = v && *v && json_object_size(j) == 1 && strlen(v) < size;
    if (ok)
        strcpy(id, v);
    json_decref(j);
    return ok;
}

struct growing {
    char *buf;
    size_t len;
};

static size_t on_grow(char *p, size_t size, size_t n, void *opaque)
{
    struct growing *g = opaque;
    char *buf = realloc(g->buf, g->len + size * n + 1);
    if (!buf)
        return 0;
    memcpy(buf + g->len, p, size * n);
    g->buf = buf;
    g->len += size * n;
    g->buf[g->len] = '\0';
    return size * n;
}

double harness_metric(const harness_t *h, const char *series)
{
    char url[128];
    struct growing g = {NULL, 0};
    long status = -1;
    double value = -1;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", h->admin_port);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_grow);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &g);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)HARNESS_HTTP_TIMEOUT_MS);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    size_t n = strlen(series);
    for (const char *line = status == 200 ? g.buf : NULL; line && *line;
         line = strchr(line, '\n')) {
        if (*line == '\n')
            line++;
        if (strncmp(line, series, n) == 0 && line[n] == ' ') {
            value = strtod(line + n + 1, NULL);
            break;
        }
    }
    free(g.buf);
    return value;
}

/* ---- raw sockets ---- */

int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

bool raw_send(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

int raw_read_response(int fd, char *out, size_t size, int timeout_ms)
{
    size_t len = 0;
    long long deadline = now_ms() + timeout_ms;
    out[0] = '\0';
    for (;;) {
        const char *end = strstr(out, "\r\n\r\n");
        if (end) {
            const char *cl = strcasestr(out, "\r\nContent-Length:");
            size_t want =
                (size_t)(end + 4 - out) + (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
            if (len >= want || want >= size) {
                int status = 0;
                sscanf(out, "HTTP/1.%*d %d", &status);
                return status;
            }
        }
        long long left = deadline - now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            return -1;
        ssize_t n = recv(fd, out + len, size - 1 - len, 0);
        if (n <= 0)
            return 0;
        len += (size_t)n;
        out[len] = '\0';
    }
}

/* ---- Kafka ---- */

void harness_read_topic(const char *topic, size_t max, size_t want, int timeout_ms, int linger_ms,
                        struct records *out)
{
    out->consumer = sl_testenv_consumer(topic, HARNESS_TOPIC_PARTITIONS);
    out->m = calloc(max ? max : 1, sizeof(*out->m));
    SL_REQUIRE(out->m);
    out->n = sl_testenv_consume(out->consumer, out->m, want < max ? want : max, timeout_ms);
    if (out->n < max && linger_ms > 0)
        out->n += sl_testenv_consume(out->consumer, out->m + out->n, max - out->n, linger_ms);
}

void records_free(struct records *r)
{
    for (size_t i = 0; i < r->n; i++)
        rd_kafka_message_destroy(r->m[i]);
    free(r->m);
    rd_kafka_consumer_close(r->consumer);
    rd_kafka_destroy(r->consumer);
    memset(r, 0, sizeof(*r));
}

const char *record_header(const rd_kafka_message_t *m, const char *name, char *buf, size_t size)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *v;
    size_t len;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(hdrs, name, &v, &len) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    snprintf(buf, size, "%.*s", (int)len, v ? (const char *)v : "");
    return buf;
}
