/*
 * deliver_harness: what the sluice-deliver integration, fault and benchmark runs share. A
 * scenario is a fresh topic prefix on the test broker, the destination simulator (destsim)
 * as the system outside, a pipeline file with one destination pointing at it (a fresh name,
 * "sink-<random>"; its consumer group <prefix>deliver.<name> is the scenario's own anyway),
 * and one or more sluice-deliver processes on that file; events are produced to
 * <prefix>deliver.<name> and what came out is read from destsim's counters and from the
 * outcomes, dead-letter and audit topics.
 *
 * Every wait is bounded (DH_WAIT_MS unless told otherwise); a wait that runs out fails the
 * current test with what was seen. Waiting is never an assertion about time: the tests assert
 * counts and orders that destsim and Kafka recorded.
 */
#ifndef DELIVER_HARNESS_H
#define DELIVER_HARNESS_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "destsim_client.h"

#define DH_WAIT_MS       90000 /* longest wait for a condition */
#define DH_STOP_MS       60000 /* after SIGTERM, before SIGKILL */
#define DH_PROCESSES_MAX 8

typedef struct dh dh_t;

struct dh_opts {
    const char *const *destsim_args; /* NULL-terminated, NULL for none */
    const char *dest_yaml;           /* keys of the destination besides url, indented 4 spaces */
    const char *url;                 /* NULL: destsim's URL + url_path */
    const char *url_path;            /* NULL: "/hook" */
    int partitions;                  /* of <prefix>deliver.<name>; 0: 3 */
    const char *redis_url;           /* the pipeline file's redis url; NULL: the default Redis */
    const char *redis_key_prefix;    /* redis.key_prefix; NULL: none (the topic prefix) */
};

/* Starts destsim and writes the pipeline file; creates the topics. Starts no deliver yet. */
dh_t *dh_new(const struct dh_opts *o);
/* Stops every process still running (SIGTERM, then SIGKILL) and destsim, frees h. */
void dh_destroy(dh_t *h);

destsim_t *dh_sim(dh_t *h);
const char *dh_config(const dh_t *h);
/* The destination's name. */
const char *dh_dest(const dh_t *h);
/* "<prefix><name>" into a static buffer per call site is error-prone: into buf. */
void dh_topic(const dh_t *h, const char *name, char *buf, size_t size);

/* Starts sluice-deliver #i (0..DH_PROCESSES_MAX-1) with its own admin port, and `instance`
 * (NULL: none) as --instance. Waits until its /readyz answers 200. */
void dh_start(dh_t *h, int i, const char *instance);
/* The admin listener's port of #i (after dh_start). */
int dh_admin_port(const dh_t *h, int i);
/* Sends `sig` to #i and waits for it (bounded); its exit status, 128+signal, or -1. */
int dh_stop(dh_t *h, int i, int sig);
/* GET /readyz of #i: its HTTP status (-1: no answer), the body NUL-terminated into body. */
long dh_readyz(const dh_t *h, int i, char *body, size_t size);
/* GET /metrics of #i: the value of the first sample line starting with `series`; -1 absent. */
double dh_metric(const dh_t *h, int i, const char *series);

/* One event to <prefix>deliver.<name>: id, key (NULL: none), data, and optional attributes
 * (NULL-terminated name/value pairs, e.g. {"traceparent", "00-...", NULL}); queued, not
 * flushed. */
void dh_produce(dh_t *h, const char *id, const char *key, const char *data,
                const char *const *attrs);
/* Waits until every produced event is acknowledged. */
void dh_flush(dh_t *h);

/* Polls destsim's counters (destsim_counters) until pred returns true; fails the test when
 * DH_WAIT_MS passes. Returns the last counters (the caller frees them). */
json_t *dh_wait_sim(dh_t *h, bool (*pred)(const json_t *counters, void *arg), void *arg,
                    const char *what);
/* Waits until destsim counted `n` answers 2xx in all (by_status 2xx summed). */
void dh_wait_2xx(dh_t *h, long n);
long dh_count_2xx(const json_t *counters);

/* A record read back: copies, owned by the array they came in. */
struct dh_rec {
    char *key;   /* NUL-terminated, NULL when none */
    char *value; /* NUL-terminated */
    size_t len;
    rd_kafka_headers_t *hdrs; /* never NULL */
    int32_t partition;
    int64_t offset;
};

/* Reads the records of <prefix><name> (all partitions, from the beginning) until `n` were read
 * or `timeout_ms` passed; returns how many (into out[0..n)). Free them with dh_recs_free. */
size_t dh_read(dh_t *h, const char *name, struct dh_rec *out, size_t n, int timeout_ms);
void dh_recs_free(struct dh_rec *recs, size_t n);
/* The value of header `name`, NUL-terminated into buf; false when absent or too long. */
bool dh_header(const struct dh_rec *r, const char *name, char *buf, size_t size);
/* The value parsed as JSON (the caller frees it). */
json_t *dh_json(const struct dh_rec *r);

#endif
