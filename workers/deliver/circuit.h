/*
 * circuit: the circuit breaker of one destination, a pure state machine on a clock the caller
 * passes in.
 *
 *            failures >= ratio over the window (and >= min_requests attempts)
 *   CLOSED ---------------------------------------------------------------> OPEN
 *     ^                                                                     |  cooldown
 *     |  the probe succeeds                                                 v
 *     +------------------------------------------------------------- HALF_OPEN
 *                                  the probe fails: OPEN again, for another cooldown
 *
 * While OPEN nothing is sent: events wait (they are not attempts, so they do not use up their
 * retries). HALF_OPEN lets exactly one request through, the probe; its answer decides.
 *
 * Only answers of requests the breaker let through count, and only while they can still
 * mean something: results that arrive after the breaker opened (requests that were already in
 * flight) are ignored, as are non-probe results in HALF_OPEN.
 *
 * What is a failure is the caller's call: sluice-deliver counts what it would retry except
 * 429 (timeouts, connection errors, 408, 425, 5xx); 2xx and permanent answers show the
 * destination alive, and 429 is a rate limit, which the fleet-wide hold deals with.
 *
 * The window is a ring of DLV_CIRCUIT_BUCKETS buckets of window/DLV_CIRCUIT_BUCKETS each.
 * Embed struct dlv_circuit; do not touch its members.
 */
#ifndef DLV_CIRCUIT_H
#define DLV_CIRCUIT_H

#include <stdbool.h>

#define DLV_CIRCUIT_BUCKETS 10

enum dlv_circuit_state { DLV_CIRCUIT_CLOSED = 0, DLV_CIRCUIT_HALF_OPEN = 1, DLV_CIRCUIT_OPEN = 2 };

struct dlv_circuit_conf {
    int failure_pct;       /* 1..100 */
    long long window_ms;   /* >= DLV_CIRCUIT_BUCKETS */
    int min_requests;      /* >= 1 */
    long long cooldown_ms; /* >= 1 */
};

/* What dlv_circuit_allow() gave a request; hand it back with the result. */
enum dlv_circuit_ticket { DLV_TICKET_NORMAL, DLV_TICKET_PROBE };

struct dlv_circuit {
    struct dlv_circuit_conf conf;
    enum dlv_circuit_state state;
    long long opened_ms;
    bool probe_out;
    long long bucket_ms[DLV_CIRCUIT_BUCKETS]; /* start of the bucket's interval; -1 unused */
    int ok[DLV_CIRCUIT_BUCKETS], failed[DLV_CIRCUIT_BUCKETS];
};

void dlv_circuit_init(struct dlv_circuit *c, const struct dlv_circuit_conf *conf);

/* Whether a request may start now. In HALF_OPEN, true for one request (the probe) until its
 * result or abandonment. *ticket goes back with the result. */
bool dlv_circuit_allow(struct dlv_circuit *c, long long now_ms, enum dlv_circuit_ticket *ticket);
/* The result of a request dlv_circuit_allow() let through. */
void dlv_circuit_record(struct dlv_circuit *c, enum dlv_circuit_ticket ticket, bool failure,
                        long long now_ms);
/* A request let through ended without a result that says anything (it was cancelled). */
void dlv_circuit_abandon(struct dlv_circuit *c, enum dlv_circuit_ticket ticket);

/* The state now (OPEN becomes HALF_OPEN once the cooldown has passed). */
enum dlv_circuit_state dlv_circuit_state(struct dlv_circuit *c, long long now_ms);
/* When an OPEN breaker half-opens. */
long long dlv_circuit_reopen_ms(const struct dlv_circuit *c);
const char *dlv_circuit_state_name(enum dlv_circuit_state s);

#endif
