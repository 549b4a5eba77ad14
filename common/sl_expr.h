/*
 * sl_expr: jq expressions (libjq 1.6) for `when` predicates and `jq` mappings.
 *
 * An expression is compiled once, at start-up, from the pipeline file; a syntax error fails
 * there with the rule's name and jq's own message. It runs over the event as a CloudEvents JSON
 * object (sl_expr_event_json): {"specversion","id","source","type","time",...,"data"}.
 *
 * What a program may use. Everything in jq 1.6 except what would reach outside the event:
 *   - `$ENV` is refused at compile time and `env` fails at run time ("env is not available in
 *     sluice expressions"): the environment holds the pipeline's secrets, and an expression's
 *     output goes to topics, dead letters and logs.
 *   - `input`/`inputs` fail (an expression sees one event); `stderr` fails (it would write
 *     event data past the JSON-lines logs); `import`/`include` are refused at compile time and
 *     `modulemeta` fails (modules would read files, and libjq 1.6 asserts without a library
 *     path).
 *   - libjq 1.6 includes `$HOME/.jq` in every program and has no switch for it: compiling fails
 *     while that file exists, so that an expression means the same in every process.
 *   - `$__loc__`, `debug` (a no-op), `input_filename` (null), `halt` and `halt_error` (an error
 *     here) are harmless and allowed.
 *   - setting an array element at an index of SL_EXPR_INDEX_MAX or more (`.a[$n] = v`, `|=`,
 *     `+=`, `setpath`, `fromstream`) is a runtime error: libjq 1.6 segfaults near 2^31 and
 *     allocates gigabytes well below it. `_sl_setpath` is the unguarded builtin: do not call it.
 *
 * Numbers: jq 1.6 holds every number as a double. Integers beyond +/-2^53 lose precision on the
 * way in (9007199254740993 becomes 9007199254740992); integral results within int64 come back
 * as JSON integers, others as reals; NaN becomes null and +/-infinity +/-DBL_MAX, as jq prints
 * them. `error(null)` is indistinguishable from "no more output" in libjq 1.6.
 *
 * Threads. libjq's state is not thread-safe, so every thread that evaluates an expression gets
 * its own compiled jq_state, compiled lazily from the stored text on that thread's first
 * evaluation (the thread that called sl_expr_compile reuses the one compiled there). Callers
 * need no context object: the per-thread states hang off the sl_expr_t, indexed by a thread
 * slot; a thread's states are freed when it exits (or by sl_expr_destroy). At most
 * SL_EXPR_MAX_THREADS threads use expressions at once. The first use on a thread unblocks
 * SL_EXPR_SIGNAL on it; compiling takes 20-40 ms (libjq 1.6 recompiles its builtins each time),
 * so a thread's first evaluation of each expression pays that once. sl_expr_destroy must not run
 * while any thread evaluates that expression; everything else may be called from any thread.
 *
 * The budget. An evaluation gets `cpu_ms` of its thread's CPU time (default 50 ms, a thousand
 * times what the example rules take). A process-wide watchdog thread samples the CPU clock of
 * every thread inside an evaluation every SL_EXPR_WATCHDOG_MS; once one has used its budget it
 * sends SL_EXPR_SIGNAL to that thread. The handler leaves the evaluation (siglongjmp) only when
 * the thread is executing the code of libjq or of its regex engine (oniguruma), which hold no
 * lock and touch nothing outside what the evaluation allocated; anywhere else (libc's malloc or
 * memcpy, libm, our code) it returns and the watchdog asks again on its next round. The abandoned
 * jq_state is inconsistent, so it is never freed: it is leaked on purpose, kept reachable in a list
 * together with a copy of the abandoned C stack frames and registers (so LeakSanitizer and heap
 * profilers see held memory, not lost memory), counted in sl_expr_stats(), and the thread compiles
 * a fresh state on its next evaluation of that expression. The same path serves libjq's
 * out-of-memory handler, which would otherwise abort the process.
 *
 * Guaranteed: an evaluation that never ends (`def f: f; f`, `last(repeat(1))`,
 * `[range(1e12)]`, `reduce range(1e12) as $i (null; [.])`) returns SL_EXPR_ERR_BUDGET after
 * between cpu_ms and cpu_ms + 2 * SL_EXPR_WATCHDOG_MS of CPU time spent in libjq's and
 * oniguruma's code (catastrophic regex backtracking included), plus whatever time the program
 * spent inside libc (see below); a failed allocation inside an evaluation is the same budget error;
 * a mapping takes at most two outputs (the second only to refuse it), and its output is refused
 * above max_output_bytes (estimated JSON size) or SL_EXPR_MAX_DEPTH levels. Each abort leaks what
 * the program had allocated; after SL_EXPR_MAX_LEAKED aborts in one process the budget error is
 * marked fatal: dead-letter the event, then stop the process so that its supervisor restarts
 * it with the memory back.
 *
 * Not guaranteed: time spent inside libc on the program's behalf is never interrupted, so a
 * program that copies huge values (doubling a string to 1 GiB: 4 s of memcpy and page faults
 * here) overshoots by the time those copies take, which is bounded by the memory it can get;
 * memory used within one budget (a program allocates at full speed until it is stopped; a
 * failed allocation is handled, the kernel's OOM killer is not); and libjq 1.6 frees
 * nested values recursively, about 30 bytes of C stack per level, so a value some 270,000
 * levels deep that libjq itself frees overflows an 8 MiB stack and kills the process. A program
 * builds about 2,500 levels per ms on the reference machine, so the default budget (at most
 * 70 ms with the watchdog's slack: ~180,000 levels) stays below that; a larger budget needs a
 * larger stack on the evaluating threads. Outputs we free ourselves are freed iteratively.
 */
#ifndef SL_EXPR_H
#define SL_EXPR_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sl_cloudevent.h"
#include "sl_err.h"

typedef struct sl_expr sl_expr_t;

#define SL_EXPR_MAX_NAME    128         /* a rule's name, bytes */
#define SL_EXPR_MAX_PROGRAM (64 * 1024) /* a program's text, bytes */
#define SL_EXPR_MAX_THREADS 256         /* threads evaluating expressions at once */
#define SL_EXPR_MAX_DEPTH   2048        /* nesting of an input or an output (jansson's own limit) */
#define SL_EXPR_MAX_LEAKED  32          /* budget aborts per process before they turn fatal */
#define SL_EXPR_INDEX_MAX   1048576     /* an array index a program may set is below this */
#define SL_EXPR_WATCHDOG_MS 10          /* how often the watchdog samples CPU clocks */
#define SL_EXPR_SIGNAL      (SIGRTMIN + 4) /* reserved for the watchdog; do not use elsewhere */

#define SL_EXPR_DEFAULT_CPU_MS     50
#define SL_EXPR_DEFAULT_MAX_OUTPUT (4 * 1024 * 1024)

/* The error code of every budget error, and only of those: the caller dead-letters the event
 * with the message, "expression 'X' exceeded its budget (...)". Compile errors are
 * SL_ERR_CONFIG, runtime errors and a wrong number of outputs SL_ERR_INVALID. */
#define SL_EXPR_ERR_BUDGET SL_ERR_TIMEOUT

struct sl_expr_budget {
    unsigned cpu_ms;         /* CPU time per evaluation, >= 1 */
    size_t max_output_bytes; /* estimated JSON size of a mapping's output, >= 1 */
};

/* Process-wide, monotonic counters for metrics. */
struct sl_expr_stats {
    uint64_t budget_exceeded; /* evaluations stopped by the budget, of any kind */
    uint64_t states_leaked;   /* jq states abandoned by a CPU or memory abort (see above) */
};

/* Compiles `program` for the rule `name` (both copied). On a syntax error, returns NULL with
 * SL_ERR_CONFIG and "expression '<name>': <jq's message>". The caller owns the result. */
sl_expr_t *sl_expr_compile(const char *name, const char *program, struct sl_err *err)
    __attribute__((warn_unused_result));
/* Frees the expression and every thread's state of it. No thread may be evaluating it.
 * NULL is ignored. */
void sl_expr_destroy(sl_expr_t *e);

/* Replaces the budget (defaults above). Call before the expression is shared between threads. */
int sl_expr_set_budget(sl_expr_t *e, const struct sl_expr_budget *budget, struct sl_err *err);

/* The event as a CloudEvents JSON object: every attribute of `ce` as a string member
 * (specversion, id, source, type, time first), then `data`: the payload parsed as JSON when
 * the content type is JSON (application/json, text/json, any "+json" suffix, or no content type,
 * as in the CloudEvents JSON format), else a string when it is UTF-8 text, else `data_base64`. An
 * empty payload has no data member. Invalid JSON under a JSON content type is SL_ERR_INVALID. The
 * caller owns the result (json_decref). */
json_t *sl_expr_event_json(const struct sl_ce *ce, const void *data, size_t len, struct sl_err *err)
    __attribute__((warn_unused_result));

/* An input converted once into libjq's values, for several evaluations of one event (every
 * rule's `when`, then a mapping): converting a 1.3 KB event costs about as much as running a
 * simple expression over it. It is immutable and bound to the thread that made it (libjq's
 * reference counts are not atomic): make, use and free it on one thread. It does not refer to
 * `doc` after sl_expr_input_new returns. Errors as for sl_expr_bool. */
typedef struct sl_expr_input sl_expr_input_t;
sl_expr_input_t *sl_expr_input_new(const json_t *doc, struct sl_err *err)
    __attribute__((warn_unused_result));
/* NULL is ignored. */
void sl_expr_input_free(sl_expr_input_t *in);

/* `when`: the truthiness of the first output (false and null are false, everything else true);
 * no output is false. Returns 0 with *out set, or -1: a runtime error (SL_ERR_INVALID), the
 * budget (SL_EXPR_ERR_BUDGET), or an internal failure. `input` is only read. */
int sl_expr_bool(sl_expr_t *e, const json_t *input, bool *out, struct sl_err *err)
    __attribute__((warn_unused_result));

/* A mapping: exactly one output, returned as a new reference the caller owns. No output or more
 * than one is SL_ERR_INVALID, saying which. NULL on any error, as for sl_expr_bool. */
json_t *sl_expr_value(sl_expr_t *e, const json_t *input, struct sl_err *err)
    __attribute__((warn_unused_result));

/* The same two over a converted input. */
int sl_expr_bool_in(sl_expr_t *e, const sl_expr_input_t *in, bool *out, struct sl_err *err)
    __attribute__((warn_unused_result));
json_t *sl_expr_value_in(sl_expr_t *e, const sl_expr_input_t *in, struct sl_err *err)
    __attribute__((warn_unused_result));

void sl_expr_stats(struct sl_expr_stats *out);

#endif
