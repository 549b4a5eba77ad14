/*
 * traceparent: the W3C Trace Context `traceparent` header (https://www.w3.org/TR/trace-context/,
 * section 3.2), which the ingress keeps from the request or starts, so that one trace id follows
 * an event through every stage.
 *
 *   00-<trace-id: 32 lowercase hex>-<parent-id: 16 lowercase hex>-<trace-flags: 2 hex>
 *
 * Parsing follows the specification's rules for receivers: version "ff" is invalid; version 00
 * must be exactly 55 characters; a higher version is read by its first four fields (and must
 * continue with '-' after them, if longer); all-zero trace or parent ids are invalid. A
 * receiver that cannot parse the header starts a new trace, so callers treat -1 as "start one".
 */
#ifndef SLUICE_TRACEPARENT_H
#define SLUICE_TRACEPARENT_H

#include <stdint.h>

#define TRACEPARENT_LEN 55 /* "00-" 32 "-" 16 "-" 2 */

struct traceparent {
    uint8_t trace_id[16];
    uint8_t parent_id[8];
    uint8_t flags;
};

/* 0 when `text` is a valid traceparent (any version, read as above), else -1. */
int traceparent_parse(const char *text, struct traceparent *out);

/* A new trace: random non-zero trace and parent ids, flags 00 (the ingress records no spans, so
 * it makes no sampling decision). Thread-safe; ids come from a per-thread generator seeded from
 * getrandom(2), because they must be unique, not secret. */
void traceparent_new(struct traceparent *out);

/* Writes the version-00 form and a NUL into out[TRACEPARENT_LEN + 1]. */
void traceparent_format(const struct traceparent *tp, char out[TRACEPARENT_LEN + 1]);

#endif
