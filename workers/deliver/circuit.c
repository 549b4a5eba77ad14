#include "circuit.h"

#include <string.h>

static void clear_window(struct dlv_circuit *c)
{
    for (int i = 0; i < DLV_CIRCUIT_BUCKETS; i++) {
        c->bucket_ms[i] = -1;
        c->ok[i] = c->failed[i] = 0;
    }
}

void dlv_circuit_init(struct dlv_circuit *c, const struct dlv_circuit_conf *conf)
{
    memset(c, 0, sizeof(*c));
    c->conf = *conf;
    if (c->conf.window_ms < DLV_CIRCUIT_BUCKETS)
        c->conf.window_ms = DLV_CIRCUIT_BUCKETS;
    c->state = DLV_CIRCUIT_CLOSED;
    clear_window(c);
}

enum dlv_circuit_state dlv_circuit_state(struct dlv_circuit *c, long long now_ms)
{
    if (c->state == DLV_CIRCUIT_OPEN && now_ms >= c->opened_ms + c->conf.cooldown_ms) {
        c->state = DLV_CIRCUIT_HALF_OPEN;
        c->probe_out = false;
    }
    return c->state;
}

long long dlv_circuit_reopen_ms(const struct dlv_circuit *c)
{
    return c->opened_ms + c->conf.cooldown_ms;
}

bool dlv_circuit_allow(struct dlv_circuit *c, long long now_ms, enum dlv_circuit_ticket *ticket)
{
    switch (dlv_circuit_state(c, now_ms)) {
    case DLV_CIRCUIT_CLOSED:
        *ticket = DLV_TICKET_NORMAL;
        return true;
    case DLV_CIRCUIT_HALF_OPEN:
        if (c->probe_out)
            return false;
        c->probe_out = true;
        *ticket = DLV_TICKET_PROBE;
        return true;
    case DLV_CIRCUIT_OPEN:
        break;
    }
    return false;
}

static void open_now(struct dlv_circuit *c, long long now_ms)
{
    c->state = DLV_CIRCUIT_OPEN;
    c->opened_ms = now_ms;
    c->probe_out = false;
    clear_window(c);
}

void dlv_circuit_record(struct dlv_circuit *c, enum dlv_circuit_ticket ticket, bool failure,
                        long long now_ms)
{
    enum dlv_circuit_state s = dlv_circuit_state(c, now_ms);
    if (ticket == DLV_TICKET_PROBE) {
        if (s != DLV_CIRCUIT_HALF_OPEN || !c->probe_out)
            return;
        if (failure) {
            open_now(c, now_ms);
        } else {
            c->state = DLV_CIRCUIT_CLOSED;
            c->probe_out = false;
            clear_window(c);
        }
        return;
    }
    if (s != DLV_CIRCUIT_CLOSED)
        return;

    long long width = c->conf.window_ms / DLV_CIRCUIT_BUCKETS;
    long long start = now_ms - now_ms % width;
    int b = (int)((now_ms / width) % DLV_CIRCUIT_BUCKETS);
    if (c->bucket_ms[b] != start) {
        c->bucket_ms[b] = start;
        c->ok[b] = c->failed[b] = 0;
    }
    if (failure)
        c->failed[b]++;
    else
        c->ok[b]++;

    long long total = 0, failed = 0;
    for (int i = 0; i < DLV_CIRCUIT_BUCKETS; i++) {
        if (c->bucket_ms[i] < 0 || c->bucket_ms[i] <= now_ms - c->conf.window_ms)
            continue;
        total += c->ok[i] + c->failed[i];
        failed += c->failed[i];
    }
    if (total >= c->conf.min_requests && failed * 100 >= (long long)c->conf.failure_pct * total)
        open_now(c, now_ms);
}

void dlv_circuit_abandon(struct dlv_circuit *c, enum dlv_circuit_ticket ticket)
{
    if (ticket == DLV_TICKET_PROBE)
        c->probe_out = false;
}

const char *dlv_circuit_state_name(enum dlv_circuit_state s)
{
    return s == DLV_CIRCUIT_OPEN ? "open" : s == DLV_CIRCUIT_HALF_OPEN ? "half_open" : "closed";
}
