/*
 * fuzz: what every harness under tests/fuzz/ shares.
 *
 * A harness is one file defining LLVMFuzzerTestOneInput (and, when it needs set-up once per
 * process, LLVMFuzzerInitialize). With -DSLUICE_FUZZ=ON and clang it links libFuzzer and
 * fuzzes; otherwise it links fuzz_main.c, which runs it over the files and directories named on
 * its command line (the committed corpus and regression inputs), so that every build tree, gcc
 * included, replays them under ctest.
 *
 * A harness reports a bug by crashing: fuzz_fail() prints why and aborts. Inputs longer than
 * FUZZ_INPUT_MAX are ignored: every parser has its own bound far below, and long inputs only
 * slow the fuzzer down.
 */
#ifndef SLUICE_FUZZ_H
#define SLUICE_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FUZZ_INPUT_MAX   (256 * 1024)
#define FUZZ_HEADERS_MAX 32
/* Separates the parts of an input that holds two texts (a schema and an instance, say). */
#define FUZZ_SEP "\n%%\n"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional; libFuzzer and fuzz_main.c call it once before the first input when defined. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Prints "fuzz: <message>" to stderr and aborts. */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A NUL-terminated copy of data[0..size) (malloc); aborts when out of memory. */
char *fuzz_strndup(const void *data, size_t size);

/* Splits data[0..size) at the first FUZZ_SEP into *a and *b (b empty when there is none). */
void fuzz_split(const uint8_t *data, size_t size, const uint8_t **a, size_t *alen,
                const uint8_t **b, size_t *blen);

/* A NUL-terminated copy of the first line (malloc; the caller frees it); *rest / *rest_len get
 * what follows the newline (empty when there is none). */
char *fuzz_first_line(const uint8_t *data, size_t size, const uint8_t **rest, size_t *rest_len);

/* HTTP-like headers: "Name: value" lines up to the first empty line (or the end); the rest is
 * the body. Owns one copy of the header block; names and values point into it. */
struct fuzz_headers {
    char *block;
    size_t n;
    const char *names[FUZZ_HEADERS_MAX];
    const char *values[FUZZ_HEADERS_MAX];
    const uint8_t *body;
    size_t body_len;
};

void fuzz_headers_parse(struct fuzz_headers *h, const uint8_t *data, size_t size);
void fuzz_headers_free(struct fuzz_headers *h);
/* The value of the first header named `name` (case-insensitive), or NULL. */
const char *fuzz_headers_get(const struct fuzz_headers *h, const char *name);

#endif
