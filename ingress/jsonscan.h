/*
 * jsonscan: checks that a request body is one well-formed JSON text (RFC 8259) and picks the
 * values at a few JSON Pointers (RFC 6901) in the same pass, without building a tree.
 *
 * Why not jansson here: the ingress only needs "is it JSON?" and two or three small values
 * (event id, type, partition key) out of every body, and forwards the bytes as they came.
 * A DOM costs a malloc per value, about as much CPU as the whole HTTP exchange; one
 * validating pass over the bytes costs a small fraction of it.
 *
 * Strictness follows jansson's defaults, so that what the ingress accepts the later stages can
 * parse: UTF-8 only (no overlong forms, no surrogates, nothing above U+10FFFF), no control
 * characters in strings, no lone surrogate escapes, no "\u0000", no leading zeros, no trailing
 * bytes other than whitespace. Like validate's parse (jansson with JSON_DECODE_ANY |
 * JSON_REJECT_DUPLICATES), so that a body the later stages would refuse is refused here with a
 * 400 instead of being dead-lettered after its 202: a top-level scalar is a JSON text; an object
 * that repeats a member name (compared after unescaping) is refused; an integer (no fraction, no
 * exponent) outside the 64-bit signed range is refused, and so is a real that overflows a double
 * (one that underflows is not). Numbers are forwarded as written. Nesting deeper than
 * JSONSCAN_MAX_DEPTH is refused, which also bounds the scanner's recursion.
 *
 * Memory: the member names of the open objects are kept while scanning (a few bytes per name,
 * plus one copy of the text's size when a name holds escapes), freed before returning.
 *
 * Thread safety: a jsonptr_t is immutable after jsonptr_parse and may be shared by threads.
 */
#ifndef SLUICE_JSONSCAN_H
#define SLUICE_JSONSCAN_H

#include <stdbool.h>
#include <stddef.h>

#include "sl_err.h"

#define JSONSCAN_MAX_DEPTH    256 /* nested arrays/objects */
#define JSONSCAN_MAX_POINTERS 8   /* pointers resolved in one scan */
#define JSONPTR_MAX_TEXT      512 /* bytes of a pointer as configured */
#define JSONPTR_MAX_TOKENS    32  /* reference tokens of one pointer */

typedef struct jsonptr jsonptr_t;

/* Parses "" (the whole document) or "/a/b~1c/0". ~0 is '~' and ~1 is '/'; any other '~' is an
 * error, as is a text that does not start with '/'. The caller owns the result. */
jsonptr_t *jsonptr_parse(const char *text, struct sl_err *err) __attribute__((warn_unused_result));
void jsonptr_destroy(jsonptr_t *ptr);
/* The pointer as configured. */
const char *jsonptr_text(const jsonptr_t *ptr);

enum jsonscan_kind {
    JSONSCAN_ABSENT = 0, /* the pointer matched nothing */
    JSONSCAN_STRING,
    JSONSCAN_NUMBER,
    JSONSCAN_TRUE,
    JSONSCAN_FALSE,
    JSONSCAN_NULL,
    JSONSCAN_OBJECT,
    JSONSCAN_ARRAY,
};

/* Where a pointer's value is in the text: `off`/`len` span the value as written (a string's
 * span includes its quotes). */
struct jsonscan_hit {
    enum jsonscan_kind kind;
    size_t off, len;
};

/* Validates text[0..len) and fills hits[i] for ptrs[i] (n_ptrs <= JSONSCAN_MAX_POINTERS).
 * Returns 0, or -1 with a one-line message naming the byte offset ("malformed JSON at byte 17:
 * expected ':' after an object key"; err->code SL_ERR_INVALID), or -1 with SL_ERR_NOMEM when
 * memory ran out; the message never quotes the body. */
int jsonscan(const void *text, size_t len, const jsonptr_t *const *ptrs, size_t n_ptrs,
             struct jsonscan_hit *hits, struct sl_err *err) __attribute__((warn_unused_result));

/* The text of a STRING hit with its escapes resolved, or a NUMBER hit as written, into
 * out[0..size) with a terminating NUL; *out_len (may be NULL) gets its length. Returns -1 when
 * it does not fit or the hit is of another kind. Only for hits that jsonscan() produced over
 * the same text. */
int jsonscan_text(const void *text, const struct jsonscan_hit *hit, char *out, size_t size,
                  size_t *out_len);

/* Whether s[0..len) is well-formed UTF-8 (the same rule the scanner applies to JSON text). */
bool jsonscan_utf8_valid(const void *s, size_t len);

#endif
