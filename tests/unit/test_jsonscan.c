/*
 * test_jsonscan: ingress/jsonscan.[ch]. JSON Pointer parsing (RFC 6901 escapes, array indexes),
 * value lookup during validation (nested, arrays, escaped keys), duplicate keys and number ranges
 * refused as validate (jansson) refuses them, the validator's
 * verdicts on hand-picked valid and invalid texts, the depth bound, and a differential run
 * against jansson (the parser of the later stages) over thousands of mutated documents: both
 * must accept and reject the same texts.
 */
#include <jansson.h>
#include <stdint.h>

#include "jsonscan.h"
#include "sl_test.h"

static jsonptr_t *ptr(const char *text)
{
    struct sl_err err;
    jsonptr_t *p = jsonptr_parse(text, &err);
    if (!p)
        sl_test_fail(__FILE__, __LINE__, "jsonptr_parse(%s): %s", text, err.msg);
    return p;
}

/* The text at `pointer` in `doc` (decoded), or "<absent>" / "<kind N>" / "<invalid: msg>". */
static const char *at(const char *doc, const char *pointer)
{
    static char out[1024];
    struct sl_err err;
    struct jsonscan_hit hit;
    jsonptr_t *p = ptr(pointer);
    const jsonptr_t *ptrs[] = {p};
    if (!p)
        return "<bad pointer>";
    if (jsonscan(doc, strlen(doc), ptrs, 1, &hit, &err) != 0)
        snprintf(out, sizeof(out), "<invalid: %s>", err.msg);
    else if (hit.kind == JSONSCAN_ABSENT)
        snprintf(out, sizeof(out), "<absent>");
    else if (hit.kind != JSONSCAN_STRING && hit.kind != JSONSCAN_NUMBER)
        snprintf(out, sizeof(out), "<kind %d: %.*s>", (int)hit.kind, (int)hit.len, doc + hit.off);
    else if (jsonscan_text(doc, &hit, out, sizeof(out), NULL) != 0)
        snprintf(out, sizeof(out), "<does not fit>");
    jsonptr_destroy(p);
    return out;
}

static bool valid(const void *doc, size_t len, char *why, size_t why_size)
{
    struct sl_err err;
    int rc = jsonscan(doc, len, NULL, 0, NULL, &err);
    if (rc != 0 && why)
        snprintf(why, why_size, "%s", err.msg);
    return rc == 0;
}

SL_TEST(pointer_syntax_and_escapes)
{
    struct sl_err err;
    SL_CHECK_STR(at("{\"a/b\":{\"c~d\":\"x\"}}", "/a~1b/c~0d"), "x");
    /* Left to right: "~01" is "~1", not "/". */
    SL_CHECK_STR(at("{\"~1\":\"tilde-one\",\"/\":\"slash\"}", "/~01"), "tilde-one");
    SL_CHECK_STR(at("{\"\":{\"\":\"empty keys\"}}", "//"), "empty keys");
    SL_CHECK_STR(at("\"whole\"", ""), "whole");
    SL_CHECK(jsonptr_parse("id", &err) == NULL);
    SL_CHECK_CONTAINS(err.msg, "start with '/'");
    SL_CHECK(jsonptr_parse("/a~2", &err) == NULL);
    SL_CHECK_CONTAINS(err.msg, "~0 is '~'");
    SL_CHECK(jsonptr_parse("/a~", &err) == NULL);
    char long_ptr[JSONPTR_MAX_TEXT + 8];
    memset(long_ptr, 'a', sizeof(long_ptr) - 1);
    long_ptr[0] = '/';
    long_ptr[sizeof(long_ptr) - 1] = '\0';
    SL_CHECK(jsonptr_parse(long_ptr, &err) == NULL);
    jsonptr_t *p = ptr("/x/y");
    SL_CHECK_STR(jsonptr_text(p), "/x/y");
    jsonptr_destroy(p);
}

SL_TEST(values_nested_arrays_and_kinds)
{
    const char *doc =
        "{\"id\":\"evt_1\",\"n\":-12.5e+3,\"data\":{\"object\":{\"customer\":\"cus_42\","
        "\"tags\":[\"a\",{\"k\":\"in array\"},[1,2,3]]}},\"t\":true,\"z\":null}";
    SL_CHECK_STR(at(doc, "/id"), "evt_1");
    SL_CHECK_STR(at(doc, "/n"), "-12.5e+3");
    SL_CHECK_STR(at(doc, "/data/object/customer"), "cus_42");
    SL_CHECK_STR(at(doc, "/data/object/tags/1/k"), "in array");
    SL_CHECK_STR(at(doc, "/data/object/tags/2/2"), "3");
    SL_CHECK_STR(at(doc, "/data/object/tags/3"), "<absent>");
    SL_CHECK_STR(at(doc, "/data/object/tags/01"), "<absent>"); /* not a canonical index */
    SL_CHECK_STR(at(doc, "/data/object/tags/-"), "<absent>");
    SL_CHECK_STR(at(doc, "/data/object/missing"), "<absent>");
    SL_CHECK_STR(at(doc, "/id/deeper"), "<absent>");
    SL_CHECK_STR(at(doc, "/t"), "<kind 3: true>");
    SL_CHECK_STR(at(doc, "/z"), "<kind 5: null>");
    SL_CHECK_STR(at(doc, "/data/object/tags/2"), "<kind 7: [1,2,3]>");
    SL_CHECK_STR(at("[10,[20,30]]", "/1/0"), "20");
}

SL_TEST(escaped_keys_and_values_decode)
{
    /* A key written with escapes matches its decoded token. */
    SL_CHECK_STR(at("{\"\\u0069d\":\"by escape\"}", "/id"), "by escape");
    SL_CHECK_STR(at("{\"a\\/b\":1}", "/a~1b"), "1");
    SL_CHECK_STR(at("{\"v\":\"tab\\tquote\\\"bs\\\\nl\\n\"}", "/v"), "tab\tquote\"bs\\nl\n");
    SL_CHECK_STR(at("{\"v\":\"caf\\u00e9 \\u20ac \\ud83d\\ude00\"}", "/v"),
                 "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    SL_CHECK_STR(at("{\"v\":\"raw caf\xc3\xa9\"}", "/v"), "raw caf\xc3\xa9");
}

SL_TEST(duplicate_keys_are_refused_as_validate_refuses_them)
{
    /* validate parses with JSON_REJECT_DUPLICATES: a body it would dead-letter is a 400 here. */
    SL_CHECK_STR(at("{\"id\":\"first\",\"id\":\"second\"}", "/id"),
                 "<invalid: malformed JSON at byte 14: duplicate object key>");
    char why[SL_ERR_MSG_MAX];
    static const char *const dups[] = {
        "{\"a\":1,\"a\":2}",
        "{\"a\":1,\"\\u0061\":2}",                       /* equal once unescaped */
        "[{\"x\":{\"b\":1,\"c\":2,\"b\":3}}]",           /* nested */
        "{\"a\":{\"b\":\"old\"},\"a\":{\"c\":\"new\"}}", /* the value kind does not matter */
        "{\"\":1,\"\":2}",
    };
    for (size_t i = 0; i < sizeof(dups) / sizeof(dups[0]); i++) {
        if (valid(dups[i], strlen(dups[i]), why, sizeof(why)))
            sl_test_fail(__FILE__, __LINE__, "accepted %s", dups[i]);
        else
            SL_CHECK_CONTAINS(why, "duplicate object key");
    }
    /* The same name in different objects, and names that differ only in case or length. */
    static const char *const fine[] = {
        "{\"a\":{\"a\":{\"a\":1}},\"b\":{\"a\":2}}",
        "[{\"a\":1},{\"a\":2}]",
        "{\"a\":1,\"A\":2,\"aa\":3,\"a\\u0000b\":4}",
    };
    SL_CHECK(valid(fine[0], strlen(fine[0]), why, sizeof(why)));
    SL_CHECK(valid(fine[1], strlen(fine[1]), why, sizeof(why)));
    SL_CHECK(!valid(fine[2], strlen(fine[2]), why, sizeof(why))); /* \u0000 stays refused */
    /* A large object goes through the sorted check: the duplicate is found far apart. */
    char big[64 * 1024];
    size_t n = 0;
    big[n++] = '{';
    for (int i = 0; i < 2000; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "%s\"k%d\":%d", i ? "," : "", i, i);
    big[n] = '}';
    SL_CHECK(valid(big, n + 1, why, sizeof(why)));
    n += (size_t)snprintf(big + n, sizeof(big) - n, ",\"k7\":0}");
    SL_CHECK(!valid(big, n, why, sizeof(why)));
    SL_CHECK_CONTAINS(why, "duplicate object key");
}

SL_TEST(numbers_out_of_jansson_range_are_refused)
{
    static const char *const good[] = {
        "9223372036854775807",
        "-9223372036854775808",
        "[0,-0,1e308,-1.7976931348623157e308]",
        "1e-400", /* underflows to zero: jansson takes it */
        "123456789012345678901234567890.0",
    };
    static const char *const bad[] = {
        "9223372036854775808",
        "-9223372036854775809",
        "{\"id\":12345678901234567890}",
        "[1e309]",
        "-1e400",
        "100000000000000000000000000000000000000",
    };
    char why[SL_ERR_MSG_MAX];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!valid(good[i], strlen(good[i]), why, sizeof(why)))
            sl_test_fail(__FILE__, __LINE__, "refused %s: %s", good[i], why);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (valid(bad[i], strlen(bad[i]), why, sizeof(why)))
            sl_test_fail(__FILE__, __LINE__, "accepted %s", bad[i]);
        json_error_t jerr;
        json_t *j = json_loadb(bad[i], strlen(bad[i]), JSON_DECODE_ANY, &jerr);
        if (j)
            sl_test_fail(__FILE__, __LINE__, "jansson accepts %s: the case is wrong", bad[i]);
        json_decref(j);
    }
    SL_CHECK(!valid("{\"id\":12345678901234567890}", 28, why, sizeof(why)));
    SL_CHECK_CONTAINS(why, "at byte 6: integer out of the 64-bit range");
}

SL_TEST(several_pointers_in_one_pass)
{
    const char *doc = "{\"id\":\"e\",\"type\":\"t\",\"k\":{\"c\":7}}";
    jsonptr_t *a = ptr("/id"), *b = ptr("/type"), *c = ptr("/k/c"), *d = ptr("/nope");
    const jsonptr_t *ptrs[] = {a, b, c, d};
    struct jsonscan_hit hits[4];
    struct sl_err err;
    SL_REQUIRE(jsonscan(doc, strlen(doc), ptrs, 4, hits, &err) == 0);
    char out[64];
    SL_CHECK(jsonscan_text(doc, &hits[0], out, sizeof(out), NULL) == 0 && strcmp(out, "e") == 0);
    SL_CHECK(jsonscan_text(doc, &hits[1], out, sizeof(out), NULL) == 0 && strcmp(out, "t") == 0);
    SL_CHECK(jsonscan_text(doc, &hits[2], out, sizeof(out), NULL) == 0 && strcmp(out, "7") == 0);
    SL_CHECK_INT(hits[3].kind, JSONSCAN_ABSENT);
    /* Too small an output buffer is refused, not cut. */
    SL_CHECK_INT(jsonscan_text(doc, &hits[0], out, 1, NULL), -1);
    /* A failed scan leaves no stale hits behind. */
    SL_CHECK(jsonscan("{\"id\":\"e\",", 10, ptrs, 4, hits, &err) != 0);
    SL_CHECK_INT(hits[0].kind, JSONSCAN_ABSENT);
    jsonptr_destroy(a);
    jsonptr_destroy(b);
    jsonptr_destroy(c);
    jsonptr_destroy(d);
}

SL_TEST(verdicts_on_chosen_texts)
{
    static const char *const good[] = {
        "{}",
        "[]",
        "0",
        "-0",
        "1.5e-3",
        "\"s\"",
        "true",
        "null",
        " \t\r\n{ \"a\" : [ ] } \n",
        "[1,-1,0.0,1E5,1e+5,1e-5]",
        "{\"a\":{\"b\":{\"c\":[[[]]]}}}",
        "\"\\ud83d\\ude00\"",
        "\"\xf4\x8f\xbf\xbf\"",
        "12345678901234567890.5",
    };
    static const struct {
        const char *doc, *why;
    } bad[] = {
        {"", "no JSON value"},
        {"   ", "no JSON value"},
        {"{", "end of input"},
        {"{\"a\"}", "expected ':'"},
        {"{\"a\":1,}", "expected a string as object key"},
        {"[1,]", "expected a value"},
        {"[1 2]", "expected ',' or ']'"},
        {"01", "after the JSON value"},
        {"1.", "digit after '.'"},
        {"1e", "exponent"},
        {"-", "expected a digit"},
        {"+1", "unexpected character"},
        {".5", "unexpected character"},
        {"tru", "invalid literal"},
        {"nul", "invalid literal"},
        {"{} {}", "after the JSON value"},
        {"\"abc", "unterminated"},
        {"\"a\tb\"", "control character"},
        {"\"\\x\"", "invalid escape"},
        {"\"\\u12\"", "four hex digits"},
        {"\"\\u0000\"", "\\u0000"},
        {"\"\\udc00\"", "lone low surrogate"},
        {"\"\\ud800\"", "without a low surrogate"},
        {"\"\\ud800\\u0041\"", "without a low surrogate"},
        {"\"\xc0\x80\"", "invalid UTF-8"},          /* overlong NUL */
        {"\"\xed\xa0\x80\"", "invalid UTF-8"},      /* UTF-8 surrogate */
        {"\"\xf4\x90\x80\x80\"", "invalid UTF-8"},  /* above U+10FFFF */
        {"\"\xe2\x82\"", "invalid UTF-8"},          /* truncated */
        {"\xef\xbb\xbf{}", "unexpected character"}, /* a BOM is not JSON text */
    };
    char why[SL_ERR_MSG_MAX];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!valid(good[i], strlen(good[i]), why, sizeof(why)))
            sl_test_fail(__FILE__, __LINE__, "refused %s: %s", good[i], why);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (valid(bad[i].doc, strlen(bad[i].doc), why, sizeof(why))) {
            sl_test_fail(__FILE__, __LINE__, "accepted %s", bad[i].doc);
            continue;
        }
        SL_CHECK_CONTAINS(why, bad[i].why);
        SL_CHECK_CONTAINS(why, "malformed JSON");
    }
    /* The offset points at the problem, and NUL bytes inside the text are just bad bytes. */
    SL_CHECK(!valid("{\"a\":1,\"b\"}", 11, why, sizeof(why)));
    SL_CHECK_CONTAINS(why, "at byte 10");
    SL_CHECK(!valid("{\"a\":\"x\0y\"}", 11, why, sizeof(why)));
}

SL_TEST(depth_is_bounded)
{
    char doc[2 * (JSONSCAN_MAX_DEPTH + 1) + 1];
    size_t n = JSONSCAN_MAX_DEPTH;
    memset(doc, '[', n);
    memset(doc + n, ']', n);
    SL_CHECK(valid(doc, 2 * n, NULL, 0));
    n = JSONSCAN_MAX_DEPTH + 1;
    memset(doc, '[', n);
    memset(doc + n, ']', n);
    char why[SL_ERR_MSG_MAX];
    SL_CHECK(!valid(doc, 2 * n, why, sizeof(why)));
    SL_CHECK_CONTAINS(why, "nested too deeply");
}

SL_TEST(utf8_validator)
{
    SL_CHECK(jsonscan_utf8_valid("plain", 5));
    SL_CHECK(jsonscan_utf8_valid("caf\xc3\xa9 \xf0\x9f\x98\x80", 10));
    SL_CHECK(!jsonscan_utf8_valid("\xc3", 1));
    SL_CHECK(!jsonscan_utf8_valid("\xc1\xbf", 2));
    SL_CHECK(!jsonscan_utf8_valid("\xe0\x80\xaf", 3));
    SL_CHECK(!jsonscan_utf8_valid("\xed\xbf\xbf", 3));
    SL_CHECK(!jsonscan_utf8_valid("\xf5\x80\x80\x80", 4));
    SL_CHECK(!jsonscan_utf8_valid("\xff", 1));
}

/* ---- differential run against jansson ---- */

static uint64_t rng_state = 0x5eed5eedULL;

static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33) % n;
}

SL_TEST(agrees_with_jansson_on_mutated_documents)
{
    static const char *const seeds[] = {
        "{\"id\":\"evt_1NqZ2b\",\"object\":\"event\",\"created\":1700000000,\"data\":{\"object\":"
        "{\"amount\":1200,\"currency\":\"eur\",\"customer\":\"cus_42\",\"paid\":true,"
        "\"refunds\":[],\"metadata\":{\"note\":\"caf\xc3\xa9 \\u00e9 \\ud83d\\ude00\"}}}}",
        "[1,-2.5e10,0,true,false,null,\"s\\\"\\\\\\/\\b\\f\\n\\r\\t\",{\"a\":[{}]}]",
        "{\"contact\":{\"id\":\"c-1\",\"email\":\"A@B.example\",\"tags\":[\"x\",\"y\"]},"
        "\"event\":\"contact.updated\"}",
        /* Near duplicates and numbers at the edge of jansson's range. */
        "{\"a\":1,\"b\":2,\"ab\":9223372036854775807,\"ba\":-9223372036854775808,\"c\":1e308,"
        "\"\\u0062\":[1.7976931348623157e308]}",
    };
    /* Bytes that matter to a JSON lexer. */
    static const char specials[] = "{}[]\":,\\/-+.eE0123456789tfnu \t\n\x01\x7f\x80\xc3\xa9\xed"
                                   "\xf0\xff";
    const int rounds = 20000;
    int agreed = 0, both_ok = 0;
    for (int r = 0; r < rounds; r++) {
        const char *seed = seeds[rnd(sizeof(seeds) / sizeof(seeds[0]))];
        char doc[1024];
        size_t len = strlen(seed);
        memcpy(doc, seed, len);
        int edits = 1 + (int)rnd(3);
        for (int e = 0; e < edits && len > 1; e++) {
            size_t at = rnd((uint32_t)len);
            char c = specials[rnd(sizeof(specials) - 1)];
            switch (rnd(4)) {
            case 0: /* replace */
                doc[at] = c;
                break;
            case 1: /* insert */
                if (len + 1 < sizeof(doc)) {
                    memmove(doc + at + 1, doc + at, len - at);
                    doc[at] = c;
                    len++;
                }
                break;
            case 2: /* delete */
                memmove(doc + at, doc + at + 1, len - at - 1);
                len--;
                break;
            default: /* truncate */
                len = at + 1;
            }
        }
        json_error_t jerr;
        /* As validate parses: duplicates and out-of-range numbers are refused by both. */
        json_t *j = json_loadb(doc, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
        char why[SL_ERR_MSG_MAX] = "";
        bool ours = valid(doc, len, why, sizeof(why));
        if (ours == (j != NULL)) {
            agreed++;
            both_ok += ours;
        } else {
            sl_test_fail(__FILE__, __LINE__, "disagree on %.*s: jsonscan %s (%s), jansson %s (%s)",
                         (int)len, doc, ours ? "accepts" : "refuses", why,
                         j ? "accepts" : "refuses", j ? "" : jerr.text);
        }
        json_decref(j);
    }
    printf("    %d agreed (%d valid)\n", agreed, both_ok);
    SL_CHECK(agreed == rounds);
    SL_CHECK(both_ok > 100); /* the mutations must leave enough valid documents to mean much */
}

SL_TEST_MAIN()
