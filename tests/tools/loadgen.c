/*
 * loadgen: a steady load of Stripe-signed webhooks for the fault matrix (tests/fault/matrix.sh).
 *
 *   loadgen --url http://127.0.0.1:8080/v1/events/stripe --secret whsec_... --out accepted.txt
 *           [--rate 20] [--count 1000] [--duration 30] [--run-id R] [--invalid-every 10]
 *           [--in-flight 64] [--timeout 15]
 *
 * It posts charge.succeeded events at --rate per second (each with a fresh Stripe event id
 * evt_<run-id>n<seq> and charge id ch_<run-id>n<seq>, signed as Stripe signs), until --count
 * were sent or --duration seconds passed, whichever comes first, then waits for the answers
 * still outstanding (each bounded by --timeout) and exits. Every --invalid-every'th event has
 * amount 0, which the example's schema rejects: the pipeline must dead-letter it with a reason.
 *
 * Each 202 appends one line to --out, flushed at once, so that a load that is cut short still
 * left the record of what was accepted:
 *     <id from the 202 body> <Stripe event id> valid|invalid <scoped id>
 * where the scoped id is the id as deliver scopes it to its source (sl_ce_scoped_id: the source
 * is the URL's last path segment, which the ingress also sets as ce_source of a plain webhook):
 * the destinations see it as "<scoped id>:<destination>" in Idempotency-Key.
 * Nothing else is written there. Other answers (503 while Kafka is away, connection errors while
 * ingress restarts) are not retried: the sender did not get a promise for them. The totals go to
 * stdout as one line: sent=N accepted=N rejected=N errors=N (rejected: a status other than 202;
 * errors: no answer).
 *
 * SIGTERM or SIGINT stops the sending early; the answers outstanding are still waited for and
 * recorded, so that the caller can end the load at a moment of its choosing.
 *
 * Only loopback URLs are accepted: this is a test tool. Exit 0 when it ran, 1 on a failure to
 * write --out or start, 2 on a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>

#include "sl_cloudevent.h"
#include "sl_err.h"
#include "verify.h"

#define LG_BODY_MAX      4096  /* one generated webhook */
#define LG_REPLY_MAX     1024  /* an ingress answer kept for its id */
#define LG_IN_FLIGHT_MAX 1024  /* --in-flight bound */
#define LG_RUN_ID_MAX    24    /* --run-id: letters and digits */
#define LG_RATE_MAX      10000 /* --rate bound, per second */

static const char usage[] =
    "usage: loadgen --url URL --secret SECRET --out FILE [--rate N] [--count N]\n"
    "               [--duration SECONDS] [--run-id ID] [--invalid-every N] [--in-flight N]\n"
    "               [--timeout SECONDS]\n";

struct lg_opts {
    const char *url, *secret, *out, *run_id;
    long rate, count, duration, invalid_every, in_flight, timeout;
};

/* One request in flight. */
struct lg_req {
    CURL *easy;
    struct curl_slist *headers;
    char body[LG_BODY_MAX];
    char reply[LG_REPLY_MAX];
    size_t reply_len;
    char evt[64];
    bool invalid;
};

struct lg_totals {
    long sent, accepted, rejected, errors;
};

static volatile sig_atomic_t stop_sending;

static void on_stop(int sig)
{
    (void)sig;
    stop_sending = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t on_reply(char *p, size_t size, size_t n, void *opaque)
{
    struct lg_req *r = opaque;
    size_t len = size * n, room = sizeof r->reply - 1 - r->reply_len;
    size_t take = len < room ? len : room;
    memcpy(r->reply + r->reply_len, p, take);
    r->reply_len += take;
    r->reply[r->reply_len] = '\0';
    return len;
}

static void req_free(struct lg_req *r)
{
    if (!r)
        return;
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r);
}

/* A signed charge.succeeded, number `seq` of this run; NULL on failure (err set). */
static struct lg_req *req_new(const struct lg_opts *o, long seq, struct sl_err *err)
{
    struct lg_req *r = calloc(1, sizeof *r);
    if (!r) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    r->invalid = o->invalid_every > 0 && seq % o->invalid_every == 0;
    snprintf(r->evt, sizeof r->evt, "evt_%sn%ld", o->run_id, seq);
    long now = (long)time(NULL);
    int n = snprintf(
        r->body, sizeof r->body,
        "{\"id\":\"%s\",\"object\":\"event\",\"api_version\":\"2024-06-20\",\"created\":%ld,"
        "\"type\":\"charge.succeeded\",\"livemode\":false,\"data\":{\"object\":{"
        "\"id\":\"ch_%sn%ld\",\"object\":\"charge\",\"amount\":%ld,\"currency\":\"eur\","
        "\"customer\":\"cus_%sc%ld\",\"status\":\"succeeded\",\"description\":null,"
        "\"metadata\":{\"seq\":\"%ld\"}}}}",
        r->evt, now, o->run_id, seq, r->invalid ? 0L : 100 + seq % 5000, o->run_id, seq % 50, seq);
    char sig[VERIFY_SIGNATURE_OUT_MAX], header[VERIFY_SIGNATURE_OUT_MAX + 32];
    if (n < 0 || (size_t)n >= sizeof r->body ||
        verify_sign_stripe(o->secret, now, r->body, (size_t)n, sig, sizeof sig, err) != 0)
        goto fail;
    snprintf(header, sizeof header, "Stripe-Signature: %s", sig);
    r->headers = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *h = r->headers ? curl_slist_append(r->headers, header) : NULL;
    if (!h || !(r->easy = curl_easy_init())) {
        sl_err_set(err, SL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    r->headers = h;
    curl_easy_setopt(r->easy, CURLOPT_URL, o->url);
    curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->easy, CURLOPT_TIMEOUT, o->timeout);
    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE, (long)n);
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_reply);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
    return r;
fail:
    req_free(r);
    return NULL;
}

/* Books one finished request; a 202 goes to `out`. Returns -1 when `out` cannot be written. */
static int req_done(struct lg_req *r, CURLcode cc, const char *source, FILE *out,
                    struct lg_totals *t)
{
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    if (cc != CURLE_OK) {
        t->errors++;
        return 0;
    }
    if (status != 202) {
        t->rejected++;
        return 0;
    }
    json_t *j = json_loadb(r->reply, r->reply_len, 0, NULL);
    const char *id = json_string_value(json_object_get(j, "id"));
    int rc = 0;
    if (!id || !*id || strchr(id, ' ') || strchr(id, '\n')) {
        fprintf(stderr, "loadgen: a 202 without a usable id: %s\n", r->reply);
        t->rejected++;
    } else {
        struct sl_ce ce;
        struct sl_err err;
        char scoped[SL_CE_SCOPED_ID_LEN + 1];
        sl_ce_init(&ce);
        t->accepted++;
        if (sl_ce_set(&ce, SL_CE_SOURCE_NAME, source, &err) != 0 ||
            sl_ce_set(&ce, "source", source, &err) != 0 || sl_ce_scoped_id(&ce, id, scoped) != 0 ||
            fprintf(out, "%s %s %s %s\n", id, r->evt, r->invalid ? "invalid" : "valid", scoped) <
                0 ||
            fflush(out) != 0)
            rc = -1;
        sl_ce_free(&ce);
    }
    json_decref(j);
    return rc;
}

static bool loopback_url(const char *url)
{
    static const char *const ok[] = {"http://127.0.0.1:", "http://localhost:", "http://[::1]:"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strncmp(url, ok[i], strlen(ok[i])) == 0)
            return true;
    return false;
}

static bool run_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > LG_RUN_ID_MAX)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

static int parse_opts(int argc, char **argv, struct lg_opts *o)
{
    static const struct option options[] = {
        {"url", required_argument, NULL, 'u'},
        {"secret", required_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'},
        {"rate", required_argument, NULL, 'r'},
        {"count", required_argument, NULL, 'n'},
        {"duration", required_argument, NULL, 'd'},
        {"run-id", required_argument, NULL, 'i'},
        {"invalid-every", required_argument, NULL, 'v'},
        {"in-flight", required_argument, NULL, 'f'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct lg_opts){
        .run_id = "lg", .rate = 20, .count = 1000, .duration = 30, .in_flight = 64, .timeout = 15};
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        long *num = NULL, lo = 0, hi = 0;
        switch (opt) {
        case 'u':
            o->url = optarg;
            break;
        case 's':
            o->secret = optarg;
            break;
        case 'o':
            o->out = optarg;
            break;
        case 'i':
            o->run_id = optarg;
            break;
        case 'r':
            num = &o->rate, lo = 1, hi = LG_RATE_MAX;
            break;
        case 'n':
            num = &o->count, lo = 1, hi = 100000000;
            break;
        case 'd':
            num = &o->duration, lo = 1, hi = 86400;
            break;
        case 'v':
            num = &o->invalid_every, lo = 0, hi = 100000000;
            break;
        case 'f':
            num = &o->in_flight, lo = 1, hi = LG_IN_FLIGHT_MAX;
            break;
        case 't':
            num = &o->timeout, lo = 1, hi = 600;
            break;
        case 'h':
            fputs(usage, stdout);
            exit(0);
        default:
            return -1;
        }
        if (num) {
            char *end;
            errno = 0;
            *num = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || *num < lo || *num > hi) {
                fprintf(stderr, "loadgen: %s: want %ld..%ld\n", optarg, lo, hi);
                return -1;
            }
        }
    }
    if (optind != argc || !o->url || !o->secret || !o->out) {
        fprintf(stderr, "loadgen: --url, --secret and --out are required\n");
        return -1;
    }
    if (!loopback_url(o->url)) {
        fprintf(stderr, "loadgen: %s: only http:// loopback URLs\n", o->url);
        return -1;
    }
    if (!run_id_ok(o->run_id)) {
        fprintf(stderr, "loadgen: --run-id: 1..%d letters and digits\n", LG_RUN_ID_MAX);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct lg_opts o;
    if (parse_opts(argc, argv, &o) != 0) {
        fputs(usage, stderr);
        return 2;
    }
    const char *source = strrchr(o.url, '/') + 1; /* the URL starts with http:// */
    FILE *out = fopen(o.out, "a");
    if (!out) {
        fprintf(stderr, "loadgen: %s: %s\n", o.out, strerror(errno));
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *multi = curl_multi_init();
    struct lg_totals t = {0};
    struct sl_err err;
    int rc = multi ? 0 : 1, running = 0;
    double start = now_s(), end = start + (double)o.duration;
    long in_flight = 0;
    while (rc == 0) {
        double now = now_s();
        bool sending = !stop_sending && t.sent < o.count && now < end;
        if (!sending && in_flight == 0)
            break;
        /* Due by now at --rate since the start; catches up after a stall, bounded in flight. */
        long due = (long)((now - start) * (double)o.rate) + 1;
        while (sending && t.sent < due && t.sent < o.count && in_flight < o.in_flight) {
            struct lg_req *r = req_new(&o, t.sent + 1, &err);
            if (!r) {
                fprintf(stderr, "loadgen: %s\n", err.msg);
                rc = 1;
                break;
            }
            curl_multi_add_handle(multi, r->easy);
            t.sent++;
            in_flight++;
        }
        curl_multi_perform(multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            struct lg_req *r;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            CURLcode cc = m->data.result;
            curl_multi_remove_handle(multi, r->easy);
            in_flight--;
            if (req_done(r, cc, source, out, &t) != 0) {
                fprintf(stderr, "loadgen: %s: %s\n", o.out, strerror(errno));
                rc = 1;
            }
            req_free(r);
        }
        curl_multi_poll(multi, NULL, 0, 10, NULL);
    }
    printf("sent=%ld accepted=%ld rejected=%ld errors=%ld\n", t.sent, t.accepted, t.rejected,
           t.errors);
    /* Requests still in flight after a failure are abandoned with the process. */
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    if (fclose(out) != 0 && rc == 0) {
        fprintf(stderr, "loadgen: %s: %s\n", o.out, strerror(errno));
        rc = 1;
    }
    return rc;
}
