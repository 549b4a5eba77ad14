/*
 * sl_text: small text decoders that several modules parse untrusted input with (URLs,
 * signatures, JSON Pointers, UTF-8). Pure functions, bounded by their arguments.
 */
#ifndef SL_TEXT_H
#define SL_TEXT_H

#include <stddef.h>

#include "sl_err.h"

/* The value of one hex digit (either case), or -1. */
int sl_hex_digit(int c);

/* Exactly 2*n hex digits in[0..len) into n bytes at out. 0, or -1 when len != 2*n or a
 * character is not a hex digit. */
int sl_hex_decode(const char *in, size_t len, unsigned char *out, size_t n);

/* Percent-decodes s[0..n) into out (size bytes, always NUL-terminated on success).
 * Returns 0, -1 for a malformed escape or an encoded NUL (%00), -2 when it does not fit. */
int sl_pct_decode(const char *s, size_t n, char *out, size_t size);

/* Length of the valid UTF-8 sequence at p (n >= 1 bytes left), or 0 when it is not one
 * (overlong forms, surrogates and code points past U+10FFFF are not). */
size_t sl_utf8_seq_len(const unsigned char *p, size_t n);

/* 0 when the path of `url` (scheme://authority/path?query#fragment) has no dot segment: no
 * segment that is "." or ".." once "%2E"/"%2e" are read as '.'. Else -1 with *err
 * (SL_ERR_INVALID) naming the segment. Servers and proxies remove dot segments (RFC 3986
 * 5.2.4), many after percent-decoding, so a URL built from event data that has one can reach
 * another path than the one configured: the caller refuses it. */
int sl_url_refuse_dot_segments(const char *url, struct sl_err *err);

#endif
