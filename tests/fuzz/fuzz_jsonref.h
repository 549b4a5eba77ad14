/* What the JSON scanner harnesses share: the scanner's pointers made once, and the reference
 * answers from jansson (an independent RFC 6901 walk over jansson's tree). */
#ifndef SLUICE_FUZZ_JSONREF_H
#define SLUICE_FUZZ_JSONREF_H

#include <jansson.h>

#include "jsonscan.h"

/* The pointers both scanner harnesses resolve in every scan (what sources configure, escapes,
 * array indexes, the whole document), as text and, after fuzz_jsonptrs_init(), parsed. */
#define FUZZ_N_POINTERS 8
_Static_assert(FUZZ_N_POINTERS <= JSONSCAN_MAX_POINTERS, "too many pointers for one scan");
extern const char *const fuzz_pointer_texts[FUZZ_N_POINTERS];
extern const jsonptr_t *fuzz_pointers[FUZZ_N_POINTERS];
/* Parses the pointers once; aborts naming one that does not parse. */
void fuzz_jsonptrs_init(void);

/* The value at the JSON Pointer `ptr` (RFC 6901 text) in jansson's tree, or NULL. */
json_t *fuzz_jansson_at(json_t *root, const char *ptr);

/* The scanner's kind of a jansson value (JSONSCAN_ABSENT for NULL). */
enum jsonscan_kind fuzz_jansson_kind(const json_t *v);

#endif
