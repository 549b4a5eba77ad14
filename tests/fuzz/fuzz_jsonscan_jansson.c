/*
 * Differential: the ingress JSON scanner (ingress/jsonscan.c) against jansson with the flags
 * sluice-validate parses with (workers/validate/validate.c: JSON_DECODE_ANY |
 * JSON_REJECT_DUPLICATES). What the ingress accepts with a 202, validate must be able to parse,
 * and what the ingress refuses with a 400, validate would have refused too; so the two must agree
 * on accept/reject. Where both accept, the values at a few pointers must agree as well (kind,
 * string text, number value).
 *
 * Two differences are allowed, both where jsonscan is the stricter (a 400 at the ingress, so
 * nothing accepted is at stake): jsonscan's documented nesting bound (JSONSCAN_MAX_DEPTH, below
 * jansson's), and one NUL byte right after a number or a literal, which jansson 2.14's lexer
 * drops ("0\0", "[1\0]" and "[true\0]" load) while RFC 8259 has no place for it.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_jsonref.h"
#include "jsonscan.h"

#define VALIDATE_JSON_FLAGS (JSON_DECODE_ANY | JSON_REJECT_DUPLICATES)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_jsonptrs_init();
    return 0;
}

/* Deepest nesting of arrays and objects, outside strings. */
static size_t nesting(const uint8_t *p, size_t n)
{
    size_t depth = 0, max = 0;
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        if (in_string) {
            if (p[i] == '\\')
                i++;
            else if (p[i] == '"')
                in_string = false;
        } else if (p[i] == '"') {
            in_string = true;
        } else if (p[i] == '[' || p[i] == '{') {
            max = ++depth > max ? depth : max;
        } else if ((p[i] == ']' || p[i] == '}') && depth) {
            depth--;
        }
    }
    return max;
}

/* A NUL byte right after a digit or a letter (the end of a number or of true, false, null):
 * what jansson's lexer lets through. */
static bool nul_after_token(const uint8_t *p, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (p[i] == 0 && ((p[i - 1] >= '0' && p[i - 1] <= '9') || (p[i - 1] | 0x20) == 'e' ||
                          (p[i - 1] | 0x20) == 'l'))
            return true;
    return false;
}

static void compare_value(const uint8_t *data, const struct jsonscan_hit *hit, json_t *v,
                          const char *ptr)
{
    enum jsonscan_kind want = fuzz_jansson_kind(v);
    if (hit->kind != want)
        fuzz_fail("pointer \"%s\": jsonscan kind %d, jansson kind %d", ptr, hit->kind, want);
    if (want != JSONSCAN_STRING && want != JSONSCAN_NUMBER)
        return;
    char *text = malloc(hit->len + 1);
    size_t len = 0;
    if (!text)
        fuzz_fail("out of memory");
    if (jsonscan_text(data, hit, text, hit->len + 1, &len) != 0)
        fuzz_fail("pointer \"%s\": jsonscan_text failed on an accepted value", ptr);
    if (want == JSONSCAN_STRING &&
        (len != json_string_length(v) || memcmp(text, json_string_value(v), len) != 0))
        fuzz_fail("pointer \"%s\": jsonscan and jansson decode the string differently", ptr);
    if (json_is_integer(v) && strtoll(text, NULL, 10) != json_integer_value(v))
        fuzz_fail("pointer \"%s\": integer %s, jansson %" JSON_INTEGER_FORMAT, ptr, text,
                  json_integer_value(v));
    if (json_is_real(v) && strtod(text, NULL) != json_real_value(v))
        fuzz_fail("pointer \"%s\": number %s, jansson %.17g", ptr, text, json_real_value(v));
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_INPUT_MAX)
        return 0;
    struct jsonscan_hit hits[FUZZ_N_POINTERS];
    struct sl_err err;
    bool scan_ok = jsonscan(data, size, fuzz_pointers, FUZZ_N_POINTERS, hits, &err) == 0;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data, size, VALIDATE_JSON_FLAGS, &jerr);
    if (scan_ok && !root) {
        fuzz_fail("jsonscan accepts what jansson rejects (%s, at byte %d)", jerr.text,
                  jerr.position);
    } else if (!scan_ok && root) {
        if (nesting(data, size) <= JSONSCAN_MAX_DEPTH && !nul_after_token(data, size))
            fuzz_fail("jsonscan rejects what jansson accepts (%s)", err.msg);
    } else if (scan_ok) {
        for (size_t i = 0; i < FUZZ_N_POINTERS; i++)
            compare_value(data, &hits[i], fuzz_jansson_at(root, fuzz_pointer_texts[i]),
                          fuzz_pointer_texts[i]);
    }
    json_decref(root);
    return 0;
}
