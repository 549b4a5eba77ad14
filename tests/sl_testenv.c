#include "sl_testenv.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sl_cloudevent.h"

#include "sl_id.h"
#include "sl_test.h"

void sl_testenv_kafka(struct sl_kafka_settings *s)
{
    sl_kafka_settings_default(s);
    s->topic_prefix = "sluice-test.";
    s->partitions = 1;
}

void sl_testenv_unique(const char *prefix, char *buf, size_t size)
{
    char id[SL_UUID_STR_LEN + 1];
    sl_uuid_v7(id);
    snprintf(buf, size, "%s-%s", prefix, id);
}

void sl_testenv_create_topic(const char *topic, int partitions)
{
    struct sl_kafka_settings s;
    struct sl_err err;
    sl_testenv_kafka(&s);
    struct sl_topic_spec spec = {topic, partitions, 1};
    if (sl_kafka_create_topics(&s, &spec, 1, 30000, NULL, &err) != 0) {
        sl_test_fail(__FILE__, __LINE__, "cannot create topic %s: %s", topic, err.msg);
        sl_test_abort_current();
    }
}

void sl_testenv_stage_topics(struct sl_testenv_topics *t, const char *name, const char *in,
                             const char *out)
{
    char base[80]; /* + "-" + a UUID fits the prefix */
    snprintf(base, sizeof(base), "sluice-test-%s", name);
    sl_testenv_unique(base, t->prefix, sizeof(t->prefix) - 1);
    strcat(t->prefix, ".");
    snprintf(t->in, sizeof(t->in), "%s%s", t->prefix, in);
    snprintf(t->out, sizeof(t->out), "%s%s", t->prefix, out);
    snprintf(t->dlq, sizeof(t->dlq), "%sdlq", t->prefix);
    snprintf(t->audit, sizeof(t->audit), "%saudit", t->prefix);
    sl_testenv_create_topic(t->in, 3);
    sl_testenv_create_topic(t->out, 3);
    sl_testenv_create_topic(t->dlq, 1);
    sl_testenv_create_topic(t->audit, 3);
}

rd_kafka_t *sl_testenv_consumer(const char *topic, int partitions)
{
    struct sl_kafka_settings s;
    struct sl_err err;
    char group[128], errstr[512];
    sl_testenv_kafka(&s);
    sl_testenv_unique("sluice-test-reader", group, sizeof(group));
    rd_kafka_conf_t *conf = sl_kafka_conf_new(&s, "sluice-test-reader", &err);
    if (!conf || sl_kafka_conf_set(conf, "group.id", group, &err) != 0 ||
        sl_kafka_conf_set(conf, "isolation.level", "read_committed", &err) != 0 ||
        sl_kafka_conf_set(conf, "enable.auto.commit", "false", &err) != 0) {
        sl_test_fail(__FILE__, __LINE__, "consumer config: %s", err.msg);
        sl_test_abort_current();
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        sl_test_fail(__FILE__, __LINE__, "consumer: %s", errstr);
        sl_test_abort_current();
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; p++)
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    return rk;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t sl_testenv_consume(rd_kafka_t *consumer, rd_kafka_message_t **out, size_t max,
                          int timeout_ms)
{
    size_t n = 0;
    long long deadline = now_ms() + timeout_ms;
    while (n < max && now_ms() < deadline) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(consumer, 200);
        if (!msg)
            continue;
        if (msg->err) {
            rd_kafka_message_destroy(msg);
            continue;
        }
        out[n++] = msg;
    }
    return n;
}

int sl_testenv_broker(const char *action)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s/deploy/local/kafka.sh' %s >&2", sl_test_source_dir(), action);
    int status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void sl_testenv_config(const char *topic_prefix, const char *extra, char *path, size_t size)
{
    struct sl_kafka_settings s;
    sl_testenv_kafka(&s);
    char name[64];
    sl_testenv_unique("pipeline", name, sizeof(name));
    snprintf(path, size, "%s/tests/%s.yaml", sl_test_binary_dir(), name);
    FILE *f = fopen(path, "w");
    if (!f) {
        sl_test_fail(__FILE__, __LINE__, "cannot write %s", path);
        sl_test_abort_current();
    }
    fprintf(f, "kafka:\n  brokers: \"%s\"\n  topic_prefix: \"%s\"\n  partitions: 3\n%s", s.brokers,
            topic_prefix, extra ? extra : "");
    fclose(f);
}

pid_t sl_testenv_spawn(const char *name, const char *const *args, const char *log)
{
    char bin[4096], log_path[4096];
    if (name[0] == '/')
        snprintf(bin, sizeof(bin), "%s", name);
    else
        snprintf(bin, sizeof(bin), "%s/bin/%s", sl_test_binary_dir(), name);
    snprintf(log_path, sizeof(log_path), "%s/tests/%s.log", sl_test_binary_dir(), log);
    const char *argv[64] = {bin};
    size_t n = 1;
    for (; args && args[n - 1] && n < 63; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    fflush(stdout);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* A test that dies (a crash, a timeout's SIGKILL) takes its workers with it, so that
         * none keeps consuming or holding a port into the next test. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(127);
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    if (pid < 0) {
        sl_test_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
        sl_test_abort_current();
    }
    return pid;
}

int sl_testenv_stop(pid_t pid, int sig, int timeout_ms)
{
    kill(pid, sig);
    long long deadline = now_ms() + timeout_ms;
    int status;
    while (now_ms() < deadline) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(20000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

static void on_test_report(void *opaque, int32_t partition, int64_t offset,
                           const struct sl_err *err)
{
    *(int *)opaque = err ? -1 : 1;
}

void sl_testenv_produce_event(const char *topic, const char *id, const char *key, const char *value)
{
    sl_testenv_produce_typed(topic, id, "test.event", key, value);
}

void sl_testenv_produce_typed(const char *topic, const char *id, const char *type, const char *key,
                              const char *value)
{
    struct sl_kafka_settings s;
    struct sl_err err;
    struct sl_ce ce;
    int done = 0;
    sl_testenv_kafka(&s);
    sl_producer_t *p = sl_producer_new(&s, "test-event-producer", on_test_report, &err);
    SL_REQUIRE(p);
    sl_ce_init(&ce);
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(8);
    SL_REQUIRE(sl_ce_set(&ce, "specversion", "1.0", &err) == 0 &&
               sl_ce_set(&ce, "id", id, &err) == 0 && sl_ce_set(&ce, "source", "test", &err) == 0 &&
               sl_ce_set(&ce, "type", type, &err) == 0 &&
               sl_ce_set(&ce, "datacontenttype", "application/json", &err) == 0 &&
               sl_ce_to_headers(&ce, hdrs, &err) == 0);
    SL_REQUIRE(
        sl_producer_send(p, topic, key, strlen(key), value, strlen(value), hdrs, &done, &err) == 0);
    SL_REQUIRE(sl_producer_flush(p, 30000, &err) == 0);
    SL_CHECK_INT(done, 1);
    sl_ce_free(&ce);
    sl_producer_destroy(p);
}

int sl_testenv_run(const char *cmd, char *out, size_t size)
{
    FILE *p = popen(cmd, "r");
    SL_REQUIRE(p);
    size_t n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void on_ingress_report(void *opaque, int32_t partition, int64_t offset,
                              const struct sl_err *err)
{
    (void)partition;
    (void)offset;
    *(int *)opaque += err ? 1000000 : 1;
}

void sl_testenv_produce_ingress(const char *topic, const char *source, const char *id_prefix,
                                const char *idem_prefix, int from, int to)
{
    struct sl_kafka_settings s;
    struct sl_err err;
    char id[128], idem[128], key[32], data[64];
    int acked = 0;
    sl_testenv_kafka(&s);
    sl_producer_t *p = sl_producer_new(&s, "test-ingress-producer", on_ingress_report, &err);
    SL_REQUIRE(p);
    for (int i = from; i < to; i++) {
        struct sl_ce ce;
        snprintf(id, sizeof(id), "%s%03d", id_prefix, i);
        snprintf(idem, sizeof(idem), "%s%03d", idem_prefix, i);
        snprintf(key, sizeof(key), "cus_%d", i % 7);
        snprintf(data, sizeof(data), "{\"n\":%d}", i);
        sl_ce_init(&ce);
        rd_kafka_headers_t *hdrs = rd_kafka_headers_new(12);
        SL_REQUIRE(sl_ce_set(&ce, "specversion", "1.0", &err) == 0 &&
                   sl_ce_set(&ce, "id", id, &err) == 0 &&
                   sl_ce_set(&ce, "source", source, &err) == 0 &&
                   sl_ce_set(&ce, "type", "order.paid", &err) == 0 &&
                   sl_ce_set(&ce, "datacontenttype", "application/json", &err) == 0 &&
                   sl_ce_set(&ce, SL_CE_PARTITION_KEY, key, &err) == 0 &&
                   sl_ce_set(&ce, SL_CE_IDEMPOTENCY_KEY, idem, &err) == 0 &&
                   sl_ce_set(&ce, SL_CE_SOURCE_NAME, source, &err) == 0 &&
                   sl_ce_to_headers(&ce, hdrs, &err) == 0);
        sl_ce_free(&ce);
        SL_REQUIRE(sl_producer_send(p, topic, key, strlen(key), data, strlen(data), hdrs, &acked,
                                    &err) == 0);
    }
    SL_REQUIRE(sl_producer_flush(p, 90000, &err) == 0);
    sl_producer_destroy(p);
    SL_CHECK_INT(acked, to - from);
}

struct http_body {
    char *buf;
    size_t size, len;
};

static size_t on_http_data(char *p, size_t size, size_t n, void *opaque)
{
    struct http_body *b = opaque;
    size_t take = size * n;
    if (b->size && take > b->size - 1 - b->len)
        take = b->size - 1 - b->len;
    if (b->size) {
        memcpy(b->buf + b->len, p, take);
        b->len += take;
        b->buf[b->len] = '\0';
    }
    return size * n;
}

long sl_testenv_http_get(int port, const char *path, char *body, size_t size)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    struct http_body b = {body, size, 0};
    if (size)
        body[0] = '\0';
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_http_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

int sl_testenv_free_port(void)
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
    SL_REQUIRE(port > 0);
    return port;
}

long sl_testenv_wait_ready(int port, long status, const char *needle, char *body, size_t size)
{
    long got = -1;
    for (int i = 0; i < 600; i++) {
        got = sl_testenv_http_get(port, "/readyz", body, size);
        if (got == status && strstr(body, needle))
            break;
        usleep(100000);
    }
    return got;
}

const char *sl_testenv_header(const rd_kafka_message_t *m, const char *name, char *buf, size_t size)
{
    rd_kafka_headers_t *h;
    const void *v;
    size_t n;
    if (rd_kafka_message_headers(m, &h) || rd_kafka_header_get_last(h, name, &v, &n))
        return NULL;
    snprintf(buf, size, "%.*s", (int)n, (const char *)v);
    return buf;
}

size_t sl_testenv_read_all(const char *topic, int partitions, rd_kafka_message_t **msgs, size_t max,
                           size_t want, rd_kafka_t **consumer)
{
    *consumer = sl_testenv_consumer(topic, partitions);
    size_t n = sl_testenv_consume(*consumer, msgs, want < max ? want : max, 60000);
    n += sl_testenv_consume(*consumer, msgs + n, max - n, n == want && n < max ? 2000 : 0);
    return n;
}

void sl_testenv_free_records(rd_kafka_message_t **msgs, size_t n, rd_kafka_t *consumer)
{
    for (size_t i = 0; i < n; i++)
        rd_kafka_message_destroy(msgs[i]);
    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);
}

rd_kafka_message_t *sl_testenv_find(rd_kafka_message_t **msgs, size_t n, const char *id)
{
    char buf[256];
    for (size_t i = 0; i < n; i++)
        if (sl_testenv_header(msgs[i], "ce_id", buf, sizeof(buf)) && strcmp(buf, id) == 0)
            return msgs[i];
    return NULL;
}

void sl_testenv_idempotency_key(const char *sluice_source, const char *ce_source, const char *id,
                                const char *dest, char *buf, size_t size)
{
    struct sl_ce ce;
    struct sl_err err;
    char scoped[SL_CE_SCOPED_ID_LEN + 1];
    sl_ce_init(&ce);
    SL_REQUIRE(sl_ce_set(&ce, SL_CE_SOURCE_NAME, sluice_source, &err) == 0 &&
               sl_ce_set(&ce, "source", ce_source, &err) == 0 &&
               sl_ce_scoped_id(&ce, id, scoped) == 0);
    sl_ce_free(&ce);
    SL_REQUIRE(snprintf(buf, size, "%s:%s", scoped, dest) < (int)size);
}
