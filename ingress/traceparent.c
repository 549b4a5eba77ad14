#include "traceparent.h"

#include <stdbool.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* Lowercase hex only: the specification forbids uppercase in every field. */
static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int hex_bytes(const char *in, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hex_digit(in[2 * i]), lo = hex_digit(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

int traceparent_parse(const char *text, struct traceparent *out)
{
    uint8_t version;
    size_t len = strnlen(text, TRACEPARENT_LEN + 1);
    if (len < TRACEPARENT_LEN || hex_bytes(text, &version, 1) != 0 || version == 0xff)
        return -1;
    if (version == 0 && len != TRACEPARENT_LEN)
        return -1;
    if (len > TRACEPARENT_LEN && text[TRACEPARENT_LEN] != '-')
        return -1;
    if (text[2] != '-' || text[35] != '-' || text[52] != '-')
        return -1;
    struct traceparent tp;
    if (hex_bytes(text + 3, tp.trace_id, 16) != 0 || hex_bytes(text + 36, tp.parent_id, 8) != 0 ||
        hex_bytes(text + 53, &tp.flags, 1) != 0)
        return -1;
    if (all_zero(tp.trace_id, 16) || all_zero(tp.parent_id, 8))
        return -1;
    *out = tp;
    return 0;
}

/* splitmix64 (Steele, Lea, Flood 2014): a fast generator whose outputs are well spread even
 * from correlated seeds; the state is per thread, so there is no locking. */
static uint64_t next_random(void)
{
    static _Thread_local uint64_t state;
    static _Thread_local bool seeded;
    if (!seeded) {
        if (getrandom(&state, sizeof(state), 0) != (ssize_t)sizeof(state)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            state = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^ (uint64_t)(uintptr_t)&ts;
        }
        seeded = true;
    }
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void traceparent_new(struct traceparent *out)
{
    do {
        uint64_t a = next_random(), b = next_random(), c = next_random();
        memcpy(out->trace_id, &a, 8);
        memcpy(out->trace_id + 8, &b, 8);
        memcpy(out->parent_id, &c, 8);
    } while (all_zero(out->trace_id, 16) || all_zero(out->parent_id, 8));
    out->flags = 0;
}

static char *hex_out(char *o, const uint8_t *b, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        *o++ = digits[b[i] >> 4];
        *o++ = digits[b[i] & 15];
    }
    return o;
}

void traceparent_format(const struct traceparent *tp, char out[TRACEPARENT_LEN + 1])
{
    char *o = out;
    *o++ = '0';
    *o++ = '0';
    *o++ = '-';
    o = hex_out(o, tp->trace_id, 16);
    *o++ = '-';
    o = hex_out(o, tp->parent_id, 8);
    *o++ = '-';
    o = hex_out(o, &tp->flags, 1);
    *o = '\0';
}
