/* Integration tests of sl_redis against real Redis.
 *
 * Most tests use the shared Redis that the `services` fixture makes sure runs (SLUICE_REDIS_URL,
 * 127.0.0.1:6379), under a key prefix unique to this run; every key they write expires. Tests
 * that stop, freeze or flush Redis use a private redis-server that the test starts itself on a
 * free port (no persistence), so that nobody else's data or scripts are touched. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sl_redis.h"
#include "sl_test.h"
#include "sl_testenv.h"

/* ---- helpers ---- */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* A key under this run's prefix. */
static void key(char *buf, size_t size, const char *name)
{
    static char prefix[96];
    if (!prefix[0])
        sl_testenv_unique("sluice-test:redis", prefix, sizeof(prefix));
    snprintf(buf, size, "%s:%s", prefix, name);
}

/* A handle on the shared Redis, from the same settings a stage would read. */
static sl_redis_t *shared(void)
{
    struct sl_err err;
    const char *url;
    int timeout_ms;
    SL_REQUIRE(sl_redis_settings(NULL, &url, &timeout_ms, &err) == 0);
    sl_redis_t *r = sl_redis_new(url, 2000, &err);
    SL_REQUIRE(r);
    return r;
}

static redisReply *cmd(sl_redis_t *r, int argc, const char **argv)
{
    struct sl_err err;
    redisReply *reply;
    if (sl_redis_cmd(r, &reply, argc, argv, NULL, &err) != 0) {
        sl_test_fail(__FILE__, __LINE__, "%s: %s", argv[0], err.msg);
        sl_test_abort_current();
    }
    return reply;
}

static long long cmd_int(sl_redis_t *r, int argc, const char **argv)
{
    redisReply *reply = cmd(r, argc, argv);
    long long v = reply->type == REDIS_REPLY_INTEGER ? reply->integer : -999;
    freeReplyObject(reply);
    return v;
}

/* The server clock in ms, truncated as the bucket script truncates it. */
static long long server_ms(sl_redis_t *r)
{
    const char *argv[] = {"TIME"};
    redisReply *reply = cmd(r, 1, argv);
    SL_REQUIRE(reply->type == REDIS_REPLY_ARRAY && reply->elements == 2);
    long long ms = atoll(reply->element[0]->str) * 1000 + atoll(reply->element[1]->str) / 1000;
    freeReplyObject(reply);
    return ms;
}

static void check_unavailable(const struct sl_err *err, const char *where)
{
    SL_CHECK_INT(err->code, SL_ERR_UNAVAILABLE);
    SL_CHECK(err->retriable);
    SL_CHECK(!err->fatal);
    SL_CHECK_CONTAINS(err->msg, where);
}

/* ---- a private redis-server ---- */

struct server {
    pid_t pid;
    int port;
    const char *password; /* NULL: none */
    char where[32];       /* "127.0.0.1:<port>" */
};

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    SL_REQUIRE(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    SL_REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    SL_REQUIRE(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

static bool server_answers(const struct server *s)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
    bool ok = false;
    if (c && !c->err) {
        redisReply *reply = s->password ? redisCommand(c, "AUTH %s", s->password) : NULL;
        if (reply)
            freeReplyObject(reply);
        reply = redisCommand(c, "PING");
        ok = reply && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0;
        if (reply)
            freeReplyObject(reply);
    }
    redisFree(c);
    return ok;
}

/* Starts redis-server on s->port (a free one when 0) and waits until it answers. */
static void server_start(struct server *s)
{
    /* The server dies under our connections: writes must fail, not kill the test. */
    signal(SIGPIPE, SIG_IGN);
    if (system("command -v redis-server >/dev/null 2>&1") != 0)
        sl_test_skip("redis-server is not installed (deploy/local/install-deps.sh)");
    if (!s->port)
        s->port = free_port();
    snprintf(s->where, sizeof(s->where), "127.0.0.1:%d", s->port);
    char dir[512], log[600], port[16];
    snprintf(dir, sizeof(dir), "%s/test-redis", sl_test_binary_dir());
    mkdir(dir, 0755);
    snprintf(log, sizeof(log), "%s/redis-%d.log", dir, s->port);
    snprintf(port, sizeof(port), "%d", s->port);
    s->pid = fork();
    SL_REQUIRE(s->pid >= 0);
    if (s->pid == 0) {
        /* Never outlive the test, whatever happens to it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (!freopen(log, "a", stdout) || !freopen(log, "a", stderr))
            _exit(126);
        const char *argv[] = {"redis-server",
                              "--port",
                              port,
                              "--bind",
                              "127.0.0.1",
                              "--save",
                              "",
                              "--appendonly",
                              "no",
                              "--daemonize",
                              "no",
                              "--dir",
                              dir,
                              "--requirepass",
                              s->password,
                              NULL};
        if (!s->password)
            argv[13] = NULL;
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 200 && !server_answers(s); i++)
        sleep_ms(50);
    if (!server_answers(s)) {
        sl_test_fail(__FILE__, __LINE__, "redis-server on port %d did not start; see %s", s->port,
                     log);
        sl_test_abort_current();
    }
}

/* SIGKILL: a crash, no goodbye to the clients. */
static void server_kill(struct server *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

/* ---- commands, pipelines, scripts on the shared Redis ---- */

SL_TEST(command_is_binary_safe_and_error_replies_are_invalid)
{
    struct sl_err err;
    sl_redis_t *r = shared();
    char k[160];
    key(k, sizeof(k), "binary");
    const char value[] = {'a', '\0', 'b', '\r', '\n'};
    const char *set[] = {"SET", k, value, "PX", "60000"};
    const size_t setlen[] = {3, strlen(k), sizeof(value), 2, 5};
    redisReply *reply;
    SL_REQUIRE(sl_redis_cmd(r, &reply, 5, set, setlen, &err) == 0);
    SL_CHECK_INT(reply->type, REDIS_REPLY_STATUS);
    freeReplyObject(reply);
    const char *get[] = {"GET", k};
    reply = cmd(r, 2, get);
    SL_CHECK(reply->type == REDIS_REPLY_STRING && reply->len == sizeof(value) &&
             memcmp(reply->str, value, sizeof(value)) == 0);
    freeReplyObject(reply);

    /* An error reply: not retriable, Redis's message, the connection stays usable. */
    const char *incr[] = {"INCR", k};
    reply = (redisReply *)1;
    SL_CHECK_INT(sl_redis_cmd(r, &reply, 2, incr, NULL, &err), -1);
    SL_CHECK(reply == NULL);
    SL_CHECK_INT(err.code, SL_ERR_INVALID);
    SL_CHECK(!err.retriable && !err.fatal);
    SL_CHECK_CONTAINS(err.msg, "INCR: ERR value is not an integer");
    const char *nope[] = {"NOSUCHCOMMAND"};
    SL_CHECK_INT(sl_redis_cmd(r, &reply, 1, nope, NULL, &err), -1);
    SL_CHECK_INT(err.code, SL_ERR_INVALID);
    const char *ping[] = {"PING"};
    reply = cmd(r, 1, ping);
    SL_CHECK_STR(reply->str, "PONG");
    freeReplyObject(reply);
    SL_CHECK_INT(sl_redis_cmd(r, &reply, 0, ping, NULL, &err), -1);
    sl_redis_destroy(r);
}

SL_TEST(pipeline_runs_several_commands_in_one_round_trip)
{
    struct sl_err err;
    sl_redis_t *r = shared();
    char k[160], counter[160];
    key(k, sizeof(k), "pipe");
    key(counter, sizeof(counter), "pipe-counter");
    const char *set[] = {"SET", k, "v", "PX", "60000"};
    const char *set_counter[] = {"SET", counter, "41", "PX", "60000"};
    const char *incr[] = {"INCR", counter};
    const char *get[] = {"GET", k};
    const char *hget[] = {"HGET", k, "field"}; /* WRONGTYPE: k is a string */
    const char *ping[] = {"PING"};
    const struct sl_redis_command cmds[] = {
        {5, set, NULL}, {5, set_counter, NULL}, {2, incr, NULL},
        {2, get, NULL}, {3, hget, NULL},        {1, ping, NULL},
    };
    redisReply *replies[6];
    SL_REQUIRE(sl_redis_pipeline(r, 6, cmds, replies, &err) == 0);
    SL_CHECK_INT(sl_redis_reply_check(r, replies[0], &err), 0);
    SL_CHECK_STR(replies[0]->str, "OK");
    SL_CHECK_INT(replies[2]->integer, 42);
    SL_CHECK_STR(replies[3]->str, "v");
    /* One failed command does not stop the others; each reply is checked on its own. */
    SL_CHECK_INT(sl_redis_reply_check(r, replies[4], &err), -1);
    SL_CHECK_INT(err.code, SL_ERR_INVALID);
    SL_CHECK_CONTAINS(err.msg, "WRONGTYPE");
    SL_CHECK_STR(replies[5]->str, "PONG");
    sl_redis_replies_free(replies, 6);
    SL_CHECK(replies[0] == NULL && replies[5] == NULL);

    SL_CHECK_INT(sl_redis_pipeline(r, 0, cmds, replies, &err), 0);
    const struct sl_redis_command empty[] = {{0, ping, NULL}};
    SL_CHECK_INT(sl_redis_pipeline(r, 1, empty, replies, &err), -1);
    SL_CHECK_INT(err.code, SL_ERR_INVALID);

    /* The largest batch, more than a socket buffer holds. */
    enum { N = SL_REDIS_PIPELINE_MAX };
    static struct sl_redis_command many[N + 1];
    static redisReply *many_replies[N + 1];
    const char *incrby[] = {"INCRBY", counter, "2"};
    for (size_t i = 0; i < N + 1; i++)
        many[i] = (struct sl_redis_command){3, incrby, NULL};
    SL_REQUIRE(sl_redis_pipeline(r, N, many, many_replies, &err) == 0);
    SL_CHECK_INT(many_replies[N - 1]->integer, 42 + 2 * N);
    sl_redis_replies_free(many_replies, N);
    SL_CHECK_INT(sl_redis_pipeline(r, N + 1, many, many_replies, &err), -1);
    sl_redis_destroy(r);
}

SL_TEST(script_sha_matches_redis_and_runs_with_keys_and_args)
{
    struct sl_err err;
    sl_redis_t *r = shared();
    const char *lua = "redis.call('SET', KEYS[1], ARGV[1], 'PX', 60000)\n"
                      "return {KEYS[1], ARGV[1], #ARGV}";
    sl_redis_script_t *s = sl_redis_script_new(lua, &err);
    SL_REQUIRE(s);
    const char *load[] = {"SCRIPT", "LOAD", lua};
    redisReply *reply = cmd(r, 3, load);
    SL_CHECK_STR(reply->str, sl_redis_script_sha(s));
    freeReplyObject(reply);

    char k[160];
    key(k, sizeof(k), "script");
    const char *argv[] = {k, "x\0y", "second"};
    const size_t argvlen[] = {strlen(k), 3, 6};
    SL_REQUIRE(sl_redis_script_run(r, s, &reply, 1, 3, argv, argvlen, &err) == 0);
    SL_REQUIRE(reply->type == REDIS_REPLY_ARRAY && reply->elements == 3);
    SL_CHECK_STR(reply->element[0]->str, k);
    SL_CHECK(reply->element[1]->len == 3 && memcmp(reply->element[1]->str, "x\0y", 3) == 0);
    SL_CHECK_INT(reply->element[2]->integer, 2);
    freeReplyObject(reply);

    /* A runtime error in a script is the caller's bug: not retriable. */
    sl_redis_script_t *bad = sl_redis_script_new("return redis.call('INCR', KEYS[1])", &err);
    SL_REQUIRE(bad);
    SL_CHECK_INT(sl_redis_script_run(r, bad, &reply, 1, 1, argv, argvlen, &err), -1);
    SL_CHECK_INT(err.code, SL_ERR_INVALID);
    SL_CHECK(!err.retriable);
    SL_CHECK_INT(sl_redis_script_run(r, bad, &reply, 2, 1, argv, argvlen, &err), -1);
    SL_CHECK_INT(err.code, SL_ERR_INVALID);
    sl_redis_script_destroy(bad);
    sl_redis_script_destroy(s);
    sl_redis_destroy(r);
}

/* ---- domain helpers on the shared Redis ---- */

/* A change of key format (issue 11: dedup scoped to the source): the key of the earlier
 * format is read, never written, and decides while it lives. */
SL_TEST(dedup_claim_reads_the_old_key_and_writes_only_the_new_one)
{
    struct sl_err err;
    sl_redis_t *r = shared();
    char k[160], old[160];
    key(k, sizeof(k), "dedup.v2:stripe:scoped");
    key(old, sizeof(old), "dedup:stripe:evt_old1");
    enum sl_redis_claim c;
    /* Claimed before the upgrade (the old format, as earlier builds wrote it). */
    const char *set[] = {"SET", old, "ev-A", "PX", "60000"};
    redisReply *reply = cmd(r, 5, set);
    freeReplyObject(reply);
    /* The sender's retry after the upgrade: still a duplicate; the same record: SAME. */
    SL_REQUIRE(sl_redis_dedup_claim(r, k, old, "ev-B", 60000, &c, &err) == 0);
    SL_CHECK_INT(c, SL_REDIS_CLAIM_DUPLICATE);
    SL_REQUIRE(sl_redis_dedup_claim(r, k, old, "ev-A", 60000, &c, &err) == 0);
    SL_CHECK_INT(c, SL_REDIS_CLAIM_SAME);
    const char *exists[] = {"EXISTS", k};
    SL_CHECK_INT(cmd_int(r, 2, exists), 0);
    /* Without an old claim, the new key is claimed as before, and the old one stays unwritten. */
    char k2[160], old2[160];
    key(k2, sizeof(k2), "dedup.v2:stripe:scoped2");
    key(old2, sizeof(old2), "dedup:stripe:evt_old2");
    SL_REQUIRE(sl_redis_dedup_claim(r, k2, old2, "ev-C", 60000, &c, &err) == 0);
    SL_CHECK_INT(c, SL_REDIS_CLAIM_FIRST);
    SL_REQUIRE(sl_redis_dedup_claim(r, k2, old2, "ev-D", 60000, &c, &err) == 0);
    SL_CHECK_INT(c, SL_REDIS_CLAIM_DUPLICATE);
    const char *exists_old[] = {"EXISTS", old2};
    SL_CHECK_INT(cmd_int(r, 2, exists_old), 0);
    SL_CHECK_INT(sl_redis_dedup_claim(r, k2, "", "ev-C", 60000, &c, &err), -1);
    sl_redis_destroy(r);
}

SL_TEST(dedup_claim_first_same_duplicate_and_expiry)
{
    struct sl_err err;
    sl_redis_t *r = shared();
    char k[160];
    key(k, sizeof(k), "dedup:stripe:evt_1");
    enum sl_redis_claim c;
    SL_REQUIRE(sl_redis_dedup_claim(r, k, NULL, "ev-A", 60000, &c, &err) == 0);
    SL_CHECK_INT(c, SL_REDIS_CLAIM_FIRST);
    /* The same Kafka record again (crash, aborted transaction): not a duplicate. */
    SL_REQUIRE(sl_redis_dedup_claim(r, k, NULL, "ev-A", 60000, &c, &err) == 0);
    SL_CHECK_INT(c, SL_REDIS_CLAIM_SAME);
    /* The provider's retry of the same webhook, under a new event id: a duplicate. */
    SL_REQUIRE(sl_redis_dedup_claim(r, k, NULL, "ev-B", 60000, &c, &err) == 0);
    SL_CHECK_INT(c, SL_REDIS_CLAIM_DUPLICATE);
    SL_REQUIRE(sl_redis_dedup_claim(r, k, NULL, "ev-A", 60000, &c, &err) == 0);
    SL_CHECK_INT(c, SL_REDIS_CLAIM_SAME);
    const char *pttl[] = {"PTTL", k};
    long long ttl = cmd_int(r, 2, pttl);
    SL_CHECK(ttl > 0 && ttl <= 60000);

    /* After the window, the key is free again for whoever comes. */
    char k2[160];
    key(k2, sizeof(k2), "dedup:stripe:evt_2");
    SL_REQUIRE(sl_redis_dedup_claim(r, k2, NULL, "ev-C", 30, &c, &err) == 0);
    SL_CHECK_INT(c, SL_REDIS_CLAIM_FIRST);
    const char *exists[] = {"EXISTS", k2};
    for (int i = 0; i < 500 && cmd_int(r, 2, exists) == 1; i++)
        sleep_ms(10);
    SL_REQUIRE(sl_redis_dedup_claim(r, k2, NULL, "ev-D", 60000, &c, &err) == 0);
    SL_CHECK_INT(c, SL_REDIS_CLAIM_FIRST);
    SL_REQUIRE(sl_redis_dedup_claim(r, k2, NULL, "ev-C", 60000, &c, &err) == 0);
    SL_CHECK_INT(c, SL_REDIS_CLAIM_DUPLICATE);

    SL_CHECK_INT(sl_redis_dedup_claim(r, k, NULL, "", 60000, &c, &err), -1);
    SL_CHECK_INT(sl_redis_dedup_claim(r, k, NULL, "ev-A", 0, &c, &err), -1);
    SL_CHECK_INT(sl_redis_dedup_claim(r, "", NULL, "ev-A", 1000, &c, &err), -1);
    SL_CHECK_INT(err.code, SL_ERR_INVALID);
    sl_redis_destroy(r);
}

SL_TEST(bucket_respects_capacity_and_refills)
{
    struct sl_err err;
    sl_redis_t *r = shared();
    char k[160];
    bool allowed;
    long long retry;

    /* One token per 100 s: nothing refills during the test. */
    key(k, sizeof(k), "bucket:slow");
    for (int i = 0; i < 5; i++) {
        SL_REQUIRE(sl_redis_bucket_take(r, k, 5, 0.01, 1, &allowed, &retry, &err) == 0);
        SL_CHECK(allowed);
        SL_CHECK_INT(retry, 0);
    }
    SL_REQUIRE(sl_redis_bucket_take(r, k, 5, 0.01, 1, &allowed, &retry, &err) == 0);
    SL_CHECK(!allowed);
    SL_CHECK(retry > 0 && retry <= 100000);
    const char *pttl[] = {"PTTL", k};
    long long ttl = cmd_int(r, 2, pttl);
    SL_CHECK(ttl > 0 && ttl <= 5 * 100000 + 1000);

    /* A take of several tokens succeeds whole or takes nothing. */
    key(k, sizeof(k), "bucket:cost");
    SL_REQUIRE(sl_redis_bucket_take(r, k, 10, 0.01, 4, &allowed, &retry, &err) == 0 && allowed);
    SL_REQUIRE(sl_redis_bucket_take(r, k, 10, 0.01, 4, &allowed, &retry, &err) == 0 && allowed);
    SL_REQUIRE(sl_redis_bucket_take(r, k, 10, 0.01, 4, &allowed, &retry, &err) == 0);
    SL_CHECK(!allowed);
    SL_CHECK(retry > 100000 && retry <= 200000); /* 2 tokens short */
    SL_REQUIRE(sl_redis_bucket_take(r, k, 10, 0.01, 2, &allowed, &retry, &err) == 0);
    SL_CHECK(allowed);

    /* 20 per second: after the advertised wait the token is there. */
    key(k, sizeof(k), "bucket:refill");
    for (int i = 0; i < 2; i++)
        SL_REQUIRE(sl_redis_bucket_take(r, k, 2, 20, 1, &allowed, &retry, &err) == 0 && allowed);
    SL_REQUIRE(sl_redis_bucket_take(r, k, 2, 20, 1, &allowed, &retry, &err) == 0);
    SL_CHECK(!allowed);
    SL_CHECK(retry > 0 && retry <= 50);
    for (int i = 0; i < 5 && !allowed; i++) {
        sleep_ms(retry);
        SL_REQUIRE(sl_redis_bucket_take(r, k, 2, 20, 1, &allowed, &retry, &err) == 0);
        SL_CHECK(allowed || retry > 0);
    }
    SL_CHECK(allowed);

    SL_CHECK_INT(sl_redis_bucket_take(r, k, 2, 20, 3, &allowed, &retry, &err), -1);
    SL_CHECK_INT(err.code, SL_ERR_INVALID);
    SL_CHECK_INT(sl_redis_bucket_take(r, k, 2, 0, 1, &allowed, &retry, &err), -1);
    SL_CHECK_INT(sl_redis_bucket_take(r, k, 2, NAN, 1, &allowed, &retry, &err), -1);
    SL_CHECK_INT(sl_redis_bucket_take(r, k, 1000000, 1e-6, 1, &allowed, &retry, &err), -1);
    SL_CHECK_INT(sl_redis_bucket_take(r, k, 0, 1, 1, &allowed, &retry, &err), -1);
    sl_redis_destroy(r);
}

/* Two replicas, each with its own handle (one per thread), sharing one bucket. */
struct replica {
    const char *key;
    long long until_ms; /* monotonic */
    long long granted, errors;
};

enum { SHARED_CAPACITY = 10, SHARED_RATE = 250 }; /* 0.25 token per ms: exact in binary */

static void *replica_run(void *arg)
{
    struct replica *rep = arg;
    struct sl_err err;
    const char *url;
    int timeout_ms;
    sl_redis_t *r = NULL;
    if (sl_redis_settings(NULL, &url, &timeout_ms, &err) == 0)
        r = sl_redis_new(url, 2000, &err);
    if (!r) {
        rep->errors++;
        return NULL;
    }
    while (now_ms() < rep->until_ms) {
        bool allowed;
        long long retry;
        if (sl_redis_bucket_take(r, rep->key, SHARED_CAPACITY, SHARED_RATE, 1, &allowed, &retry,
                                 &err) != 0)
            rep->errors++;
        else if (allowed)
            rep->granted++;
        else
            sleep_ms(retry < 3 ? retry : 3);
    }
    sl_redis_destroy(r);
    return NULL;
}

SL_TEST(two_handles_sharing_a_bucket_never_exceed_capacity_plus_refill)
{
    sl_redis_t *r = shared();
    char k[160];
    key(k, sizeof(k), "bucket:shared");
    long long t0 = server_ms(r);
    struct replica reps[2] = {{k, now_ms() + 1000, 0, 0}, {k, now_ms() + 1000, 0, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        SL_REQUIRE(pthread_create(&th[i], NULL, replica_run, &reps[i]) == 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    long long t1 = server_ms(r);
    /* Every take ran between t0 and t1 on the server's clock, so the bucket can have handed
     * out its capacity plus what refilled in between, and not one token more. */
    long long total = reps[0].granted + reps[1].granted;
    long long bound = SHARED_CAPACITY + SHARED_RATE * (t1 - t0) / 1000;
    printf("  shared bucket: %lld + %lld granted, bound %lld over %lld ms\n", reps[0].granted,
           reps[1].granted, bound, t1 - t0);
    SL_CHECK_INT(reps[0].errors + reps[1].errors, 0);
    SL_CHECK(total <= bound);
    SL_CHECK(total >= SHARED_CAPACITY);
    SL_CHECK(reps[0].granted > 0 && reps[1].granted > 0);
    sl_redis_destroy(r);
}

SL_TEST(hold_keeps_the_later_deadline)
{
    struct sl_err err;
    sl_redis_t *r = shared();
    char k[160];
    key(k, sizeof(k), "hold:crm");
    long long left = -1;
    SL_REQUIRE(sl_redis_hold_get(r, k, &left, &err) == 0);
    SL_CHECK_INT(left, 0);
    SL_REQUIRE(sl_redis_hold_set(r, k, 5000, &err) == 0);
    SL_REQUIRE(sl_redis_hold_get(r, k, &left, &err) == 0);
    SL_CHECK(left > 0 && left <= 5000);
    /* A shorter Retry-After from another replica does not shorten the pause. */
    SL_REQUIRE(sl_redis_hold_set(r, k, 1000, &err) == 0);
    SL_REQUIRE(sl_redis_hold_get(r, k, &left, &err) == 0);
    SL_CHECK(left > 1000 && left <= 5000);
    /* A longer one extends it. */
    SL_REQUIRE(sl_redis_hold_set(r, k, 20000, &err) == 0);
    SL_REQUIRE(sl_redis_hold_get(r, k, &left, &err) == 0);
    SL_CHECK(left > 5000 && left <= 20000);

    /* A short hold ends by itself. */
    char k2[160];
    key(k2, sizeof(k2), "hold:short");
    SL_REQUIRE(sl_redis_hold_set(r, k2, 20, &err) == 0);
    for (int i = 0; i < 500 && left > 0; i++) {
        SL_REQUIRE(sl_redis_hold_get(r, k2, &left, &err) == 0);
        sleep_ms(5);
    }
    SL_CHECK_INT(left, 0);
    SL_CHECK_INT(sl_redis_hold_set(r, k, 0, &err), -1);
    SL_CHECK_INT(err.code, SL_ERR_INVALID);
    sl_redis_destroy(r);
}

SL_TEST(ledger_marks_and_sees)
{
    struct sl_err err;
    sl_redis_t *r = shared();
    char k[160];
    key(k, sizeof(k), "ledger:ev-A:crm");
    bool seen = true;
    SL_REQUIRE(sl_redis_ledger_seen(r, k, &seen, &err) == 0);
    SL_CHECK(!seen);
    SL_REQUIRE(sl_redis_ledger_mark(r, k, 60000, &err) == 0);
    SL_REQUIRE(sl_redis_ledger_seen(r, k, &seen, &err) == 0);
    SL_CHECK(seen);
    const char *pttl[] = {"PTTL", k};
    long long ttl = cmd_int(r, 2, pttl);
    SL_CHECK(ttl > 0 && ttl <= 60000);
    SL_CHECK_INT(sl_redis_ledger_mark(r, k, SL_REDIS_TTL_MAX_MS + 1, &err), -1);
    sl_redis_destroy(r);
}

/* ---- outages, on a private server ---- */

/* Every kind of call, each expected to fail as "unavailable, retry later" within the
 * deadline. */
static void check_all_calls_unavailable(sl_redis_t *r, const sl_redis_script_t *s,
                                        const char *where, long long bound_ms)
{
    struct sl_err err;
    redisReply *reply;
    const char *ping[] = {"PING"};
    const char *args[] = {"41"};
    const struct sl_redis_command cmds[] = {{1, ping, NULL}, {1, ping, NULL}};
    redisReply *replies[2] = {(redisReply *)1, (redisReply *)1};
    enum sl_redis_claim c;
    bool b;
    long long ms;

    long long t = now_ms();
    SL_CHECK_INT(sl_redis_cmd(r, &reply, 1, ping, NULL, &err), -1);
    check_unavailable(&err, where);
    SL_CHECK_INT(sl_redis_pipeline(r, 2, cmds, replies, &err), -1);
    check_unavailable(&err, where);
    SL_CHECK(replies[0] == NULL && replies[1] == NULL);
    SL_CHECK_INT(sl_redis_script_run(r, s, &reply, 0, 1, args, NULL, &err), -1);
    check_unavailable(&err, where);
    SL_CHECK_INT(sl_redis_dedup_claim(r, "k", NULL, "ev", 1000, &c, &err), -1);
    check_unavailable(&err, where);
    SL_CHECK_INT(sl_redis_bucket_take(r, "b", 1, 1, 1, &b, &ms, &err), -1);
    check_unavailable(&err, where);
    SL_CHECK_INT(sl_redis_hold_get(r, "h", &ms, &err), -1);
    check_unavailable(&err, where);
    SL_CHECK_INT(sl_redis_ledger_seen(r, "l", &b, &err), -1);
    check_unavailable(&err, where);
    long long elapsed = now_ms() - t;
    if (elapsed > bound_ms)
        sl_test_fail(__FILE__, __LINE__, "7 calls took %lld ms, more than %lld", elapsed, bound_ms);
}

static long long script_plus_one(sl_redis_t *r, const sl_redis_script_t *s)
{
    struct sl_err err;
    redisReply *reply;
    const char *args[] = {"41"};
    if (sl_redis_script_run(r, s, &reply, 0, 1, args, NULL, &err) != 0) {
        sl_test_fail(__FILE__, __LINE__, "script: %s", err.msg);
        return -1;
    }
    long long v = reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
    freeReplyObject(reply);
    return v;
}

static bool script_cached(sl_redis_t *r, const sl_redis_script_t *s)
{
    const char *exists[] = {"SCRIPT", "EXISTS", sl_redis_script_sha(s)};
    redisReply *reply = cmd(r, 3, exists);
    bool cached =
        reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 && reply->element[0]->integer == 1;
    freeReplyObject(reply);
    return cached;
}

SL_TEST(server_crash_fails_fast_then_the_same_handle_reconnects)
{
    struct sl_err err;
    /* A password with characters that must be percent-encoded, and a database other than 0:
     * both must be applied again on every reconnect. */
    struct server srv = {.password = "p@ss/w:rd"};
    server_start(&srv);
    char url[128];
    snprintf(url, sizeof(url), "redis://:p%%40ss%%2Fw%%3Ard@127.0.0.1:%d/3", srv.port);
    sl_redis_t *r = sl_redis_new(url, 500, &err);
    SL_REQUIRE(r);
    sl_redis_script_t *s = sl_redis_script_new("return tonumber(ARGV[1]) + 1", &err);
    SL_REQUIRE(s);
    SL_CHECK_INT(script_plus_one(r, s), 42);
    enum sl_redis_claim c;
    SL_REQUIRE(sl_redis_dedup_claim(r, "dedup:x", NULL, "ev-1", 60000, &c, &err) == 0);
    SL_CHECK_INT(c, SL_REDIS_CLAIM_FIRST);

    server_kill(&srv);
    /* Connection refused: each call fails at once, never hangs. Twice: the first call finds
     * the old connection dead, the next ones fail to connect. */
    check_all_calls_unavailable(r, s, srv.where, 7 * 500 + 2000);
    check_all_calls_unavailable(r, s, srv.where, 7 * 500 + 2000);

    server_start(&srv); /* same port, empty: no data, no scripts */
    const char *ping[] = {"PING"};
    redisReply *reply = cmd(r, 1, ping);
    SL_CHECK_STR(reply->str, "PONG");
    freeReplyObject(reply);
    /* NOSCRIPT, then EVAL, which caches it again for the next EVALSHA. */
    SL_CHECK(!script_cached(r, s));
    SL_CHECK_INT(script_plus_one(r, s), 42);
    SL_CHECK(script_cached(r, s));
    SL_CHECK_INT(script_plus_one(r, s), 42);
    SL_REQUIRE(sl_redis_dedup_claim(r, "dedup:x", NULL, "ev-1", 60000, &c, &err) == 0);
    SL_CHECK_INT(c, SL_REDIS_CLAIM_FIRST);
    SL_REQUIRE(sl_redis_dedup_claim(r, "dedup:x", NULL, "ev-2", 60000, &c, &err) == 0);
    SL_CHECK_INT(c, SL_REDIS_CLAIM_DUPLICATE);

    /* The reconnect selected database 3 again. */
    const char *dbsize[] = {"DBSIZE"};
    SL_CHECK_INT(cmd_int(r, 1, dbsize), 1);
    char url0[128];
    snprintf(url0, sizeof(url0), "redis://:p%%40ss%%2Fw%%3Ard@127.0.0.1:%d/0", srv.port);
    sl_redis_t *r0 = sl_redis_new(url0, 500, &err);
    SL_REQUIRE(r0);
    SL_CHECK_INT(cmd_int(r0, 1, dbsize), 0);
    sl_redis_destroy(r0);

    /* SCRIPT FLUSH (an operator, a failover to a fresh replica): the same fallback. */
    const char *flush[] = {"SCRIPT", "FLUSH"};
    freeReplyObject(cmd(r, 2, flush));
    SL_CHECK(!script_cached(r, s));
    SL_CHECK_INT(script_plus_one(r, s), 42);
    bool allowed;
    long long retry;
    SL_CHECK_INT(sl_redis_bucket_take(r, "bucket", 1, 1, 1, &allowed, &retry, &err), 0);
    SL_CHECK(allowed);
    SL_CHECK_INT(sl_redis_hold_set(r, "hold", 1000, &err), 0);

    sl_redis_script_destroy(s);
    sl_redis_destroy(r);
    server_kill(&srv);
}

SL_TEST(frozen_server_times_out_within_the_deadline_then_recovers)
{
    struct sl_err err;
    struct server srv = {0};
    server_start(&srv);
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", srv.port);
    sl_redis_t *r = sl_redis_new(url, 300, &err);
    SL_REQUIRE(r);
    const char *ping[] = {"PING"};
    redisReply *reply = cmd(r, 1, ping);
    freeReplyObject(reply);

    /* SIGSTOP: the kernel still accepts connections and takes our bytes, nobody answers. */
    SL_REQUIRE(kill(srv.pid, SIGSTOP) == 0);
    for (int i = 0; i < 2; i++) {
        long long t = now_ms();
        SL_CHECK_INT(sl_redis_cmd(r, &reply, 1, ping, NULL, &err), -1);
        long long elapsed = now_ms() - t;
        check_unavailable(&err, srv.where);
        SL_CHECK_CONTAINS(err.msg, "no answer within 300 ms");
        if (elapsed < 250 || elapsed > 2000)
            sl_test_fail(__FILE__, __LINE__, "call %d took %lld ms for a 300 ms deadline", i,
                         elapsed);
    }
    SL_REQUIRE(kill(srv.pid, SIGCONT) == 0);
    /* Stale replies of the abandoned connections never reach this one. */
    reply = cmd(r, 1, ping);
    SL_CHECK_STR(reply->str, "PONG");
    freeReplyObject(reply);
    const char *echo[] = {"ECHO", "fresh"};
    reply = cmd(r, 2, echo);
    SL_CHECK_STR(reply->str, "fresh");
    freeReplyObject(reply);
    sl_redis_destroy(r);
    server_kill(&srv);
}

SL_TEST(wrong_credentials_are_fatal_config_errors_without_the_password)
{
    struct sl_err err;
    struct server srv = {.password = "right-pw"};
    server_start(&srv);
    char url[160];
    redisReply *reply;
    const char *ping[] = {"PING"};

    snprintf(url, sizeof(url), "redis://:wrong-pw@127.0.0.1:%d", srv.port);
    sl_redis_t *r = sl_redis_new(url, 500, &err);
    SL_REQUIRE(r);
    SL_CHECK_INT(sl_redis_cmd(r, &reply, 1, ping, NULL, &err), -1);
    SL_CHECK_INT(err.code, SL_ERR_CONFIG);
    SL_CHECK(err.fatal && !err.retriable);
    SL_CHECK_CONTAINS(err.msg, "AUTH");
    SL_CHECK(strstr(err.msg, "wrong-pw") == NULL);
    sl_redis_destroy(r);

    /* No password for a server that wants one. */
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", srv.port);
    r = sl_redis_new(url, 500, &err);
    SL_REQUIRE(r);
    SL_CHECK_INT(sl_redis_cmd(r, &reply, 1, ping, NULL, &err), -1);
    SL_CHECK_INT(err.code, SL_ERR_CONFIG);
    SL_CHECK(err.fatal);
    SL_CHECK_CONTAINS(err.msg, "NOAUTH");
    sl_redis_destroy(r);

    /* A database the server does not have. */
    snprintf(url, sizeof(url), "redis://:right-pw@127.0.0.1:%d/999", srv.port);
    r = sl_redis_new(url, 500, &err);
    SL_REQUIRE(r);
    SL_CHECK_INT(sl_redis_cmd(r, &reply, 1, ping, NULL, &err), -1);
    SL_CHECK_INT(err.code, SL_ERR_CONFIG);
    SL_CHECK_CONTAINS(err.msg, "SELECT");
    sl_redis_destroy(r);

    /* An ACL user (Redis 6+): AUTH user password. */
    snprintf(url, sizeof(url), "redis://:right-pw@127.0.0.1:%d", srv.port);
    sl_redis_t *admin = sl_redis_new(url, 500, &err);
    SL_REQUIRE(admin);
    const char *setuser[] = {"ACL", "SETUSER", "alice", "on", ">al1ce:pw", "~*", "+@all"};
    freeReplyObject(cmd(admin, 7, setuser));
    sl_redis_destroy(admin);
    snprintf(url, sizeof(url), "redis://alice:al1ce%%3Apw@127.0.0.1:%d/1", srv.port);
    r = sl_redis_new(url, 500, &err);
    SL_REQUIRE(r);
    const char *whoami[] = {"ACL", "WHOAMI"};
    reply = cmd(r, 2, whoami);
    SL_CHECK_STR(reply->str, "alice");
    freeReplyObject(reply);
    sl_redis_destroy(r);
    snprintf(url, sizeof(url), "redis://alice:not-hers@127.0.0.1:%d", srv.port);
    r = sl_redis_new(url, 500, &err);
    SL_REQUIRE(r);
    SL_CHECK_INT(sl_redis_cmd(r, &reply, 1, ping, NULL, &err), -1);
    SL_CHECK_INT(err.code, SL_ERR_CONFIG);
    SL_CHECK_CONTAINS(err.msg, "WRONGPASS");
    SL_CHECK(strstr(err.msg, "not-hers") == NULL);
    sl_redis_destroy(r);
    server_kill(&srv);
}

SL_TEST(nothing_listening_is_unavailable_not_a_hang)
{
    struct sl_err err;
    char url[64];
    int port = free_port();
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
    sl_redis_t *r = sl_redis_new(url, 300, &err);
    SL_REQUIRE(r);
    sl_redis_script_t *s = sl_redis_script_new("return 1", &err);
    SL_REQUIRE(s);
    char where[32];
    snprintf(where, sizeof(where), "127.0.0.1:%d", port);
    const char *ping[] = {"PING"};
    redisReply *reply;
    SL_CHECK_INT(sl_redis_cmd(r, &reply, 1, ping, NULL, &err), -1);
    check_unavailable(&err, where);
    SL_CHECK_CONTAINS(err.msg, "connect: ");
    check_all_calls_unavailable(r, s, where, 7 * 300 + 2000);
    sl_redis_script_destroy(s);
    sl_redis_destroy(r);
}

SL_TEST_MAIN()
