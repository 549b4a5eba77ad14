/*
 * sl_expr: jq expressions through libjq 1.6, with a per-thread jq_state and a CPU budget.
 *
 * Workload: a handful of expressions (the pipeline's `when` and `jq` rules), each evaluated
 * once per event on the stage's thread(s), over a ~1 KB event. The hot path is: convert the
 * jansson event to jv, jq_start + one or two jq_next, convert one output back. It takes no lock
 * and makes no system call; the budget costs two stores per evaluation (the thread's sequence
 * number and the budget) because the CPU clock is sampled by a watchdog thread, not armed per
 * evaluation (a CPU-clock timer_settime pair costs ~1.7 us, as much as a whole predicate).
 *
 * The abort path, in order:
 *   watchdog: thread T is inside evaluation #seq and its CPU clock has advanced by the budget
 *             since it first saw #seq -> kill_seq = seq; pthread_kill(T, SL_EXPR_SIGNAL)
 *   T, in the handler: still #seq, inside jq_start/jq_next, PC inside libjq's or oniguruma's
 *             text?
 *             no  -> return (libc, libm and our code are never interrupted; the watchdog asks
 *                    again on its next round)
 *             yes -> copy the abandoned stack frames and registers, siglongjmp
 *   T, back in eval(): the jq_state and the outputs taken so far go into the leak list; the
 *             state is recompiled on the next evaluation.
 * libjq 1.6's own global state is a thread-local out-of-memory handler and a hash seed set
 * under pthread_once; the seed is forced at start-up, so an abort can never interrupt that
 * once-routine. The only libc frames that can sit below libjq code are qsort's (jq's sort
 * comparators) and oniguruma's onig_foreach_name: neither holds a lock, and what they had
 * allocated is in the copied frames.
 */
#include "sl_expr.h"

#include <errno.h>
#include <float.h>
#include <jq.h>
#include <limits.h>
#include <link.h>
#include <malloc.h>
#include <math.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

/* Where the interrupted context keeps its program counter and stack pointer. The red zone is
 * the part below the stack pointer that a leaf function may use without moving it. */
#if defined(__x86_64__)
#define UC_PC(uc) ((uintptr_t)(uc)->uc_mcontext.gregs[REG_RIP])
#define UC_SP(uc) ((uintptr_t)(uc)->uc_mcontext.gregs[REG_RSP])
#define REDZONE   128
#elif defined(__aarch64__)
#define UC_PC(uc) ((uintptr_t)(uc)->uc_mcontext.pc)
#define UC_SP(uc) ((uintptr_t)(uc)->uc_mcontext.sp)
#define REDZONE   0
#else
#error "sl_expr: tell the budget handler where this architecture keeps its PC and SP"
#endif

/* The handler reads these from a signal handler: they must be lock-free. */
_Static_assert(ATOMIC_LONG_LOCK_FREE == 2 && sizeof(unsigned long) == sizeof(uint64_t),
               "sl_expr needs lock-free 64-bit atomics");

/* C stack copied on an abort: jq_next's frames take a few KiB. Inside a deep libjq recursion
 * (printing a nested value) only the innermost part is kept: what the outer frames alone
 * referenced then shows up as a leak in LeakSanitizer, rather than the budget waiting. */
#define SNAPSHOT_MAX (64 * 1024)
#define MAX_TEXT     8 /* executable segments of libjq and oniguruma */

/* What a program cannot reach. Definitions shadow the builtins lexically for the whole program;
 * `$ENV` is refused by scan_program() and bound to {} here as a second line of defence. The
 * prelude has no newline, so jq's line numbers stay the user's.
 *
 * Array indices. libjq 1.6 crashes the process (SIGSEGV in jv_array_set: the new length
 * overflows an int) when a path sets an array element at an index near 2^31, as in
 * `.a[.n] = 1` with n = 2147483647, and allocates gigabytes below that. Every way to set a
 * path goes through `setpath`: the assignment operators (`=` is `_assign`; `|=`, `+=`, `//=`
 * and the others are `_modify`, whose bodies here are libjq 1.6's own) and `fromstream`.
 * Each is defined again here on top of a `setpath` that refuses an index at or above
 * SL_EXPR_INDEX_MAX (an event is at most 1 MiB: none of its arrays comes near) with an
 * ordinary jq error, before libjq sees it. `_sl_setpath` keeps the builtin reachable: a jq
 * definition sees only what was defined before it. */
#define INDEX_MAX_TEXT "1048576"
_Static_assert(SL_EXPR_INDEX_MAX == 1048576, "INDEX_MAX_TEXT must spell SL_EXPR_INDEX_MAX");
static const char prelude[] =
    "def _sl_setpath(p; v): setpath(p; v); "
    "def setpath(p; v): p as $p | ([$p | arrays | .[] | select(type == \"number\" and . "
    ">= " INDEX_MAX_TEXT ")] | .[0]) as $i | if $i == null then _sl_setpath($p; v) else "
    "error(\"array index \\($i) is out of range (sluice expressions allow indices "
    "below " INDEX_MAX_TEXT ")\") end; "
    "def _assign(paths; value): value as $v | reduce path(paths) as $p (.; setpath($p; $v)); "
    "def _modify(paths; update): reduce path(paths) as $p (.; label $out | (setpath($p; "
    "getpath($p) | update) | ., break $out), delpaths([$p])); "
    "def fromstream(f): {x: null, e: false} as $init | foreach f as $i ($init; if .e then $init "
    "else . end | if $i | length == 2 then setpath([\"e\"]; $i[0] | length == 0) | "
    "setpath([\"x\"] + $i[0]; $i[1]) else setpath([\"e\"]; $i[0] | length == 1) end; if .e "
    "then .x else empty end); "
    "def env: error(\"env is not available in sluice expressions\"); "
    "def input: error(\"input is not available in sluice expressions\"); "
    "def inputs: error(\"inputs is not available in sluice expressions\"); "
    "def stderr: error(\"stderr is not available in sluice expressions\"); "
    "def modulemeta: error(\"modulemeta is not available in sluice expressions\"); "
    "{} as $ENV | ";

enum run_result { RUN_DONE = 0, RUN_ABORT_CPU = 1, RUN_ABORT_NOMEM = 2 };

/* One per thread that compiles or evaluates expressions. */
struct expr_thread {
    unsigned slot; /* index into g.threads and every sl_expr's jq[] */
    pthread_t self;
    clockid_t cpu_clock;
    _Atomic uint64_t seq;          /* odd while inside an evaluation */
    _Atomic uint64_t kill_seq;     /* the evaluation the watchdog wants stopped */
    _Atomic uint64_t budget_ns;    /* CPU budget of the current evaluation */
    uint64_t wd_seq, wd_cpu_ns;    /* @locks g.lock, watchdog only: what it last saw */
    volatile sig_atomic_t jump_ok; /* inside jq_start/jq_next: an abort may leave */
    volatile uintptr_t stack_top;  /* frame of that call: the top of what an abort abandons */
    sigjmp_buf jmp;
    ucontext_t nomem_uc; /* registers at an out-of-memory abort */
    mcontext_t snap_regs;
    size_t snap_len;
    unsigned char *snap; /* SNAPSHOT_MAX bytes, preallocated: the handler cannot allocate */
};

struct sl_expr {
    char *name;
    char *source; /* prelude + program */
    struct sl_expr_budget budget;
    sl_expr_t *prev, *next; /* @locks g.lock: the registry that thread exit walks */
    /* One compiled state per thread slot. Only the slot's own thread writes its entry, except
     * sl_expr_destroy (no evaluation may run) and that thread's exit (under g.lock). */
    jq_state *jq[SL_EXPR_MAX_THREADS];
};

/* A jq_state abandoned by an abort, with what referenced its memory at that moment: the
 * outputs already taken, the registers and the copied C frames. `ends` holds every word of the
 * jq_state minus one: libjq keeps its value stack by its end pointer, one past the block, which
 * leak checkers do not count as a reference. */
struct leaked {
    struct leaked *next;
    jq_state *jq;
    jv out[2];
    mcontext_t regs;
    size_t n_ends, len;
    uintptr_t *ends;
    unsigned char stack[];
};

#define STATE_WORDS_MAX 512 /* a jq_state is a few hundred bytes */

static struct {
    pthread_mutex_t lock; /* the registry, thread slots, the leak list, the watchdog's start */
    sl_expr_t *exprs;
    struct expr_thread *threads[SL_EXPR_MAX_THREADS];
    struct leaked *leaked;
    atomic_bool watchdog;
    _Atomic uint64_t budget_exceeded, states_leaked;
    /* Set once by global_init(), read-only afterwards (the handler reads text_lo/hi). */
    pthread_key_t key;
    size_t n_text;
    uintptr_t text_lo[MAX_TEXT], text_hi[MAX_TEXT];
    char init_error[SL_ERR_MSG_MAX];
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
/* initial-exec: the signal handler reads it, and that model never allocates. */
static __thread struct expr_thread *tls_thread __attribute__((tls_model("initial-exec")));

/* ---- libjq's code, the signal handler and the out-of-memory handler ---- */

/* Records the executable segments of libjq and of oniguruma, its regex engine: the code an
 * abort may interrupt. Oniguruma imports no lock and no thread-local; after its one-time
 * initialisation (forced in global_init) it writes no global either (its writable segment is
 * byte-for-byte the same around 800 regex runs of every kind jq makes), so leaving it mid-search
 * only leaks the regex and the match stack it had allocated. */
static int find_jq_code(struct dl_phdr_info *info, size_t size, void *opaque)
{
    (void)size;
    bool *found_libjq = opaque;
    const char *base = strrchr(info->dlpi_name, '/');
    base = base ? base + 1 : info->dlpi_name;
    bool libjq = strncmp(base, "libjq.so", 8) == 0;
    if (!libjq && strncmp(base, "libonig.so", 10) != 0)
        return 0;
    *found_libjq = *found_libjq || libjq;
    for (int i = 0; i < info->dlpi_phnum && g.n_text < MAX_TEXT; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        g.text_lo[g.n_text] = info->dlpi_addr + ph->p_vaddr;
        g.text_hi[g.n_text] = g.text_lo[g.n_text] + ph->p_memsz;
        g.n_text++;
    }
    return 0;
}

static bool in_jq_code(uintptr_t pc)
{
    for (size_t i = 0; i < g.n_text; i++)
        if (pc >= g.text_lo[i] && pc < g.text_hi[i])
            return true;
    return false;
}

/* Copies [lo, stack_top), at most its innermost SNAPSHOT_MAX bytes, and the registers into the
 * thread's buffer. Word by word through volatile reads, unsanitized: the range spans other
 * functions' frames, redzones included, and a call to memcpy would be checked by
 * AddressSanitizer. */
__attribute__((no_sanitize("address"))) static void snapshot(struct expr_thread *t, uintptr_t lo,
                                                             const mcontext_t *regs)
{
    lo &= ~(uintptr_t)(sizeof(uintptr_t) - 1);
    uintptr_t hi = t->stack_top;
    size_t len = hi > lo ? hi - lo : 0;
    if (len > SNAPSHOT_MAX)
        len = SNAPSHOT_MAX;
    const volatile uintptr_t *src = (const volatile uintptr_t *)lo;
    uintptr_t *dst = (uintptr_t *)(void *)t->snap;
    for (size_t i = 0; i < len / sizeof(uintptr_t); i++)
        dst[i] = src[i];
    t->snap_len = len;
    t->snap_regs = *regs;
}

static void on_budget_signal(int sig, siginfo_t *info, void *ucv)
{
    (void)sig;
    (void)info;
    struct expr_thread *t = tls_thread;
    if (!t || !t->jump_ok)
        return;
    if (atomic_load_explicit(&t->kill_seq, memory_order_relaxed) !=
        atomic_load_explicit(&t->seq, memory_order_relaxed))
        return; /* that evaluation ended; this is a later one */
    const ucontext_t *uc = ucv;
    if (!in_jq_code(UC_PC(uc)))
        return; /* not in libjq's or oniguruma's code: wait for the next round */
    snapshot(t, UC_SP(uc) - REDZONE, &uc->uc_mcontext);
    t->jump_ok = 0;
    siglongjmp(t->jmp, RUN_ABORT_CPU);
}

/* libjq calls this when an allocation fails, then prints and aborts if it returns; its own
 * comment expects a handler to longjmp "to safety". Outside an evaluation it returns. */
static void on_nomem(void *opaque)
{
    (void)opaque;
    struct expr_thread *t = tls_thread;
    if (!t || !t->jump_ok)
        return;
    /* getcontext() stores the callee-saved registers, which may hold libjq's pointers. */
    if (getcontext(&t->nomem_uc) != 0)
        return;
    snapshot(t, UC_SP(&t->nomem_uc), &t->nomem_uc.uc_mcontext);
    t->jump_ok = 0;
    siglongjmp(t->jmp, RUN_ABORT_NOMEM);
}

static void drop_msg(void *opaque, jv msg)
{
    (void)opaque;
    jv_free(msg);
}

static void thread_exit(void *arg);

static void global_init(void)
{
    if (pthread_key_create(&g.key, thread_exit) != 0) {
        snprintf(g.init_error, sizeof(g.init_error), "expressions: pthread_key_create failed");
        return;
    }
    bool found_libjq = false;
    dl_iterate_phdr(find_jq_code, &found_libjq);
    if (!found_libjq) {
        snprintf(g.init_error, sizeof(g.init_error),
                 "expressions: libjq is not loaded as a shared library, so the budget cannot "
                 "tell its code apart");
        return;
    }
    struct sigaction sa, old;
    if (sigaction(SL_EXPR_SIGNAL, NULL, &old) != 0 || (old.sa_flags & SA_SIGINFO) ||
        old.sa_handler != SIG_DFL) {
        snprintf(g.init_error, sizeof(g.init_error),
                 "expressions: signal SIGRTMIN+%d is already in use", SL_EXPR_SIGNAL - SIGRTMIN);
        return;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_budget_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SL_EXPR_SIGNAL, &sa, NULL) != 0) {
        snprintf(g.init_error, sizeof(g.init_error), "expressions: sigaction: %s", strerror(errno));
        return;
    }
    /* One-time initialisations an abort must never interrupt, done here: libjq seeds its string
     * hash under pthread_once at the first hash, oniguruma sets its globals up at the first
     * regex. One regex through libjq does both. */
    jq_state *jq = jq_init();
    if (jq) {
        jq_set_error_cb(jq, drop_msg, NULL);
        jq_set_debug_cb(jq, drop_msg, NULL);
        jq_set_input_cb(jq, NULL, NULL);
    }
    if (!jq || !jq_compile(jq, "\"a\" | test(\"a\"; \"gix\")")) {
        snprintf(g.init_error, sizeof(g.init_error), "expressions: libjq cannot start");
    } else {
        jq_start(jq, jv_null(), 0);
        jv_free(jq_next(jq));
    }
    jq_teardown(&jq);
}

/* ---- threads ---- */

static void thread_exit(void *arg)
{
    struct expr_thread *t = arg;
    pthread_mutex_lock(&g.lock);
    for (sl_expr_t *e = g.exprs; e; e = e->next)
        if (e->jq[t->slot])
            jq_teardown(&e->jq[t->slot]);
    g.threads[t->slot] = NULL;
    pthread_mutex_unlock(&g.lock);
    tls_thread = NULL;
    free(t->snap);
    free(t);
}

static struct expr_thread *thread_get(struct sl_err *err)
{
    struct expr_thread *t = tls_thread;
    if (t)
        return t;
    pthread_once(&g_once, global_init);
    if (g.init_error[0]) {
        sl_err_set(err, SL_ERR_INTERNAL, "%s", g.init_error);
        return NULL;
    }
    bool slotted = false;
    t = calloc(1, sizeof(*t));
    if (!t || !(t->snap = malloc(SNAPSHOT_MAX))) {
        sl_err_set(err, SL_ERR_NOMEM, "expressions: out of memory");
        goto fail;
    }
    atomic_init(&t->seq, 0);
    atomic_init(&t->kill_seq, 0);
    atomic_init(&t->budget_ns, 0);
    t->self = pthread_self();
    int rc = pthread_getcpuclockid(t->self, &t->cpu_clock);
    if (rc != 0) {
        sl_err_set(err, SL_ERR_INTERNAL, "expressions: pthread_getcpuclockid: %s", strerror(rc));
        goto fail;
    }
    pthread_mutex_lock(&g.lock);
    for (unsigned i = 0; i < SL_EXPR_MAX_THREADS && !slotted; i++)
        if (!g.threads[i]) {
            g.threads[i] = t;
            t->slot = i;
            slotted = true;
        }
    pthread_mutex_unlock(&g.lock);
    if (!slotted) {
        sl_err_set(err, SL_ERR_NOMEM, "expressions: more than %d threads evaluate expressions",
                   SL_EXPR_MAX_THREADS);
        goto fail;
    }
    if (pthread_setspecific(g.key, t) != 0) {
        sl_err_set(err, SL_ERR_NOMEM, "expressions: pthread_setspecific failed");
        goto fail;
    }
    /* A thread that blocked every signal (a common pattern for workers) must still hear the
     * watchdog. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SL_EXPR_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    tls_thread = t;
    return t;
fail:
    if (slotted) {
        pthread_mutex_lock(&g.lock);
        g.threads[t->slot] = NULL;
        pthread_mutex_unlock(&g.lock);
    }
    if (t)
        free(t->snap);
    free(t);
    return NULL;
}

/* ---- the watchdog ---- */

/* @locks g.lock held. */
static void watch_one(struct expr_thread *t)
{
    uint64_t seq = atomic_load_explicit(&t->seq, memory_order_acquire);
    if (!(seq & 1))
        return;
    struct timespec ts;
    if (clock_gettime(t->cpu_clock, &ts) != 0)
        return;
    uint64_t cpu = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    if (t->wd_seq != seq) {
        /* First sight of this evaluation: count from here (at most one period late). */
        t->wd_seq = seq;
        t->wd_cpu_ns = cpu;
        return;
    }
    if (cpu - t->wd_cpu_ns < atomic_load_explicit(&t->budget_ns, memory_order_relaxed))
        return;
    atomic_store_explicit(&t->kill_seq, seq, memory_order_relaxed);
    /* Safe: t is registered, and a thread unregisters (under this lock) before it ends. */
    pthread_kill(t->self, SL_EXPR_SIGNAL);
}

static void *watchdog_main(void *opaque)
{
    (void)opaque;
    const struct timespec period = {.tv_nsec = SL_EXPR_WATCHDOG_MS * 1000000L};
    for (;;) {
        clock_nanosleep(CLOCK_MONOTONIC, 0, &period, NULL);
        pthread_mutex_lock(&g.lock);
        for (unsigned i = 0; i < SL_EXPR_MAX_THREADS; i++)
            if (g.threads[i])
                watch_one(g.threads[i]);
        pthread_mutex_unlock(&g.lock);
    }
    return NULL;
}

/* Started by the first evaluation, not by compiling: `sluicectl config check` needs none. It
 * runs until the process ends. */
static int watchdog_start(struct sl_err *err)
{
    if (atomic_load_explicit(&g.watchdog, memory_order_acquire))
        return 0;
    int rc = 0;
    pthread_mutex_lock(&g.lock);
    if (!atomic_load_explicit(&g.watchdog, memory_order_relaxed)) {
        /* Born with every signal blocked: SIGTERM and the budget signal are not its business. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_t tid;
        rc = pthread_create(&tid, NULL, watchdog_main, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc == 0) {
            pthread_detach(tid);
            atomic_store_explicit(&g.watchdog, true, memory_order_release);
        }
    }
    pthread_mutex_unlock(&g.lock);
    if (rc != 0)
        return sl_err_set(err, SL_ERR_INTERNAL, "expressions: cannot start the watchdog: %s",
                          strerror(rc));
    return 0;
}

/* ---- compiling ---- */

static bool ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static const char *skip_space(const char *p)
{
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (*p != '#')
            return p;
        while (*p && *p != '\n')
            p++;
    }
}

static bool word_at(const char *p, const char *word)
{
    size_t n = strlen(word);
    return strncmp(p, word, n) == 0 && !ident_char(p[n]);
}

#define MAX_INTERPOLATION 64

/* What the prelude cannot express, found with a small jq lexer (comments, string literals with
 * escapes and nested \( ) interpolations): an empty program, module directives, and `$ENV`
 * (jq 1.6 binds an unbound `$ENV` to the environment at compile time; jq allows blanks and
 * comments between `$` and the name). */
static int scan_program(const char *name, const char *program, struct sl_err *err)
{
    const char *p = skip_space(program);
    if (!*p)
        return sl_err_set(err, SL_ERR_CONFIG, "expression '%s' is empty", name);
    if (word_at(p, "import") || word_at(p, "include"))
        return sl_err_set(err, SL_ERR_CONFIG,
                          "expression '%s': modules (import, include) are not available in "
                          "sluice expressions",
                          name);
    int parens[MAX_INTERPOLATION]; /* open parentheses of each enclosing interpolation */
    int depth = 0, open = 0;
    bool in_string = false;
    for (p = program; *p; p++) {
        if (in_string) {
            if (*p == '"') {
                in_string = false;
            } else if (*p == '\\' && p[1] == '(') {
                if (depth == MAX_INTERPOLATION)
                    return sl_err_set(err, SL_ERR_CONFIG,
                                      "expression '%s': string interpolation nested deeper "
                                      "than %d",
                                      name, MAX_INTERPOLATION);
                parens[depth++] = open;
                open = 0;
                in_string = false;
                p++;
            } else if (*p == '\\' && p[1]) {
                p++;
            }
            continue;
        }
        if (*p == '#') {
            while (p[1] && p[1] != '\n')
                p++;
        } else if (*p == '"') {
            in_string = true;
        } else if (*p == '(') {
            open++;
        } else if (*p == ')') {
            if (open == 0 && depth > 0) {
                open = parens[--depth];
                in_string = true;
            } else if (open > 0) {
                open--;
            }
        } else if (*p == '$' && word_at(skip_space(p + 1), "ENV")) {
            return sl_err_set(err, SL_ERR_CONFIG,
                              "expression '%s': $ENV is not available in sluice expressions "
                              "(the environment holds secrets)",
                              name);
        }
    }
    return 0;
}

/* libjq 1.6 includes $HOME/.jq (or the passwd home's) in every program it compiles. */
static int home_jq_check(struct sl_err *err)
{
    const char *home = getenv("HOME");
    struct passwd pw, *found = NULL;
    char pwbuf[1024], path[PATH_MAX];
    if (!home && getpwuid_r(getuid(), &pw, pwbuf, sizeof(pwbuf), &found) == 0 && found)
        home = found->pw_dir;
    if (!home || !*home)
        return 0;
    struct stat st;
    int n = snprintf(path, sizeof(path), "%s/.jq", home);
    if (n < 0 || (size_t)n >= sizeof(path) || stat(path, &st) != 0 || S_ISDIR(st.st_mode))
        return 0;
    return sl_err_set(err, SL_ERR_CONFIG,
                      "%s exists, and libjq 1.6 would include it in every expression: remove "
                      "it, or run with another HOME",
                      path);
}

/* jq's compile messages, joined into one bounded line: "jq: error: " and the closing
 * "jq: N compile error(s)" dropped, the prelude cut out of the quoted source line, blanks
 * collapsed. */
struct compile_log {
    char text[SL_ERR_MSG_MAX];
    size_t len;
};

static void log_putc(struct compile_log *log, char c)
{
    if (c == '\n' || c == '\r' || c == '\t')
        c = ' ';
    if (c == ' ' && (log->len == 0 || log->text[log->len - 1] == ' '))
        return;
    if (log->len + 1 < sizeof(log->text))
        log->text[log->len++] = c;
}

static void collect_msg(void *opaque, jv msg)
{
    struct compile_log *log = opaque;
    if (jv_get_kind(msg) != JV_KIND_STRING)
        msg = jv_dump_string(msg, 0);
    const char *s = jv_string_value(msg);
    if (strncmp(s, "jq: error: ", 11) == 0) {
        s += 11;
    } else if (strncmp(s, "jq: ", 4) == 0 && strstr(s, " compile error")) {
        jv_free(msg);
        return;
    }
    while (log->len > 0 && log->text[log->len - 1] == ' ')
        log->len--;
    if (log->len > 0) {
        log_putc(log, ';');
        log_putc(log, ' ');
    }
    const size_t plen = sizeof(prelude) - 1;
    while (*s) {
        if (strncmp(s, prelude, plen) == 0) {
            s += plen;
            continue;
        }
        log_putc(log, *s++);
    }
    while (log->len > 0 && log->text[log->len - 1] == ' ')
        log->len--;
    log->text[log->len] = '\0';
    jv_free(msg);
}

/* A fresh state for the calling thread. */
static jq_state *compile_state(const sl_expr_t *e, struct sl_err *err)
{
    if (home_jq_check(err) != 0)
        return NULL;
    jq_state *jq = jq_init();
    if (!jq) {
        sl_err_set(err, SL_ERR_NOMEM, "expression '%s': out of memory", e->name);
        return NULL;
    }
    struct compile_log log = {.len = 0};
    jq_set_error_cb(jq, collect_msg, &log);
    /* jq_init() in 1.6 leaves these two uninitialised: `debug` would call a garbage pointer. */
    jq_set_debug_cb(jq, drop_msg, NULL);
    jq_set_input_cb(jq, NULL, NULL);
    jq_set_nomem_handler(jq, on_nomem, NULL);
    int ok = jq_compile(jq, e->source);
    /* libjq reports only compile errors through the callback; whatever else it might say later
     * is dropped, never written to stderr. */
    jq_set_error_cb(jq, drop_msg, NULL);
    if (!ok) {
        sl_err_set(err, SL_ERR_CONFIG, "expression '%s': %s", e->name,
                   log.len ? log.text : "jq cannot compile it");
        jq_teardown(&jq);
    }
    return jq;
}

sl_expr_t *sl_expr_compile(const char *name, const char *program, struct sl_err *err)
{
    sl_expr_t *e = NULL;
    if (!name || !*name || strlen(name) > SL_EXPR_MAX_NAME || !program) {
        sl_err_set(err, SL_ERR_INVALID, "expression: a name (1..%d bytes) and a program needed",
                   SL_EXPR_MAX_NAME);
        goto fail;
    }
    size_t plen = strlen(program);
    if (plen > SL_EXPR_MAX_PROGRAM) {
        sl_err_set(err, SL_ERR_CONFIG, "expression '%s' is longer than %d bytes", name,
                   SL_EXPR_MAX_PROGRAM);
        goto fail;
    }
    if (scan_program(name, program, err) != 0)
        goto fail;
    struct expr_thread *t = thread_get(err);
    if (!t)
        goto fail;
    e = calloc(1, sizeof(*e));
    if (!e || !(e->name = strdup(name)) || !(e->source = malloc(sizeof(prelude) + plen))) {
        sl_err_set(err, SL_ERR_NOMEM, "expression '%s': out of memory", name);
        goto fail;
    }
    memcpy(e->source, prelude, sizeof(prelude) - 1);
    memcpy(e->source + sizeof(prelude) - 1, program, plen + 1);
    e->budget.cpu_ms = SL_EXPR_DEFAULT_CPU_MS;
    e->budget.max_output_bytes = SL_EXPR_DEFAULT_MAX_OUTPUT;
    jq_state *jq = compile_state(e, err);
    if (!jq)
        goto fail;
    pthread_mutex_lock(&g.lock);
    e->next = g.exprs;
    if (g.exprs)
        g.exprs->prev = e;
    g.exprs = e;
    e->jq[t->slot] = jq;
    pthread_mutex_unlock(&g.lock);
    return e;
fail:
    if (e) {
        free(e->name);
        free(e->source);
        free(e);
    }
    return NULL;
}

void sl_expr_destroy(sl_expr_t *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&g.lock);
    if (e->prev)
        e->prev->next = e->next;
    else
        g.exprs = e->next;
    if (e->next)
        e->next->prev = e->prev;
    for (unsigned i = 0; i < SL_EXPR_MAX_THREADS; i++)
        if (e->jq[i])
            jq_teardown(&e->jq[i]);
    pthread_mutex_unlock(&g.lock);
    free(e->name);
    free(e->source);
    free(e);
}

int sl_expr_set_budget(sl_expr_t *e, const struct sl_expr_budget *budget, struct sl_err *err)
{
    if (!e || !budget || budget->cpu_ms == 0 || budget->max_output_bytes == 0)
        return sl_err_set(err, SL_ERR_INVALID,
                          "expression budget: cpu_ms and max_output_bytes must be positive");
    e->budget = *budget;
    return 0;
}

void sl_expr_stats(struct sl_expr_stats *out)
{
    out->budget_exceeded = atomic_load(&g.budget_exceeded);
    out->states_leaked = atomic_load(&g.states_leaked);
}

/* ---- jansson <-> jv ---- */

/* The input, walked into jv. The alternative, json_dumps + jv_parse, costs 39 us alone on
 * bench/expr's 1.3 KB event, against 12 us for this walk plus a whole trivial evaluation. */
static jv to_jv(const json_t *j, int depth, const char **why)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        if (depth >= SL_EXPR_MAX_DEPTH) {
            *why = "is nested too deeply";
            return jv_null();
        }
        jv o = jv_object();
        const char *key;
        size_t klen;
        json_t *v;
        /* jansson's iteration takes a non-const object; it does not modify it. */
        json_object_keylen_foreach((json_t *)j, key, klen, v)
        {
            if (klen > INT_MAX) {
                *why = "has a key longer than 2 GiB";
                break;
            }
            o = jv_object_set(o, jv_string_sized(key, (int)klen), to_jv(v, depth + 1, why));
        }
        return o;
    }
    case JSON_ARRAY: {
        if (depth >= SL_EXPR_MAX_DEPTH) {
            *why = "is nested too deeply";
            return jv_null();
        }
        size_t n = json_array_size(j);
        jv a = jv_array_sized(n > INT_MAX ? INT_MAX : (int)n);
        for (size_t i = 0; i < n; i++)
            a = jv_array_append(a, to_jv(json_array_get(j, i), depth + 1, why));
        return a;
    }
    case JSON_STRING: {
        size_t n = json_string_length(j);
        if (n > INT_MAX) {
            *why = "has a string longer than 2 GiB";
            return jv_null();
        }
        return jv_string_sized(json_string_value(j), (int)n);
    }
    case JSON_INTEGER:
        return jv_number((double)json_integer_value(j));
    case JSON_REAL:
        return jv_number(json_real_value(j));
    case JSON_TRUE:
        return jv_true();
    case JSON_FALSE:
        return jv_false();
    case JSON_NULL:
        break;
    }
    return jv_null();
}

enum conv_fail { CONV_OK, CONV_TOO_BIG, CONV_TOO_DEEP, CONV_BAD_UTF8, CONV_NOMEM };

struct conv {
    size_t bytes, max; /* estimated JSON size so far, and its bound */
    enum conv_fail fail;
};

static bool charge(struct conv *c, size_t n)
{
    c->bytes += n;
    if (c->bytes <= c->max)
        return true;
    c->fail = CONV_TOO_BIG;
    return false;
}

static json_t *number_json(double d)
{
    if (isnan(d))
        return json_null();
    if (isinf(d))
        return json_real(d > 0 ? DBL_MAX : -DBL_MAX);
    if (d == trunc(d) && d >= -0x1p63 && d < 0x1p63)
        return json_integer((json_int_t)d);
    return json_real(d);
}

/* An output, walked; `v` is borrowed. NULL with c->fail set on failure. */
static json_t *from_jv(jv v, int depth, struct conv *c)
{
    if (depth > SL_EXPR_MAX_DEPTH) {
        c->fail = CONV_TOO_DEEP;
        return NULL;
    }
    json_t *out = NULL;
    switch (jv_get_kind(v)) {
    case JV_KIND_OBJECT:
        if (!charge(c, 2) || !(out = json_object()))
            break;
        for (int it = jv_object_iter(v); jv_object_iter_valid(v, it);
             it = jv_object_iter_next(v, it)) {
            jv k = jv_object_iter_key(v, it), x = jv_object_iter_value(v, it);
            int klen = jv_string_length_bytes(jv_copy(k));
            json_t *jx = charge(c, (size_t)klen + 4) ? from_jv(x, depth + 1, c) : NULL;
            if (jx && json_object_setn_new(out, jv_string_value(k), (size_t)klen, jx) != 0)
                c->fail = CONV_BAD_UTF8;
            jv_free(k);
            jv_free(x);
            if (c->fail != CONV_OK)
                break;
        }
        break;
    case JV_KIND_ARRAY: {
        int n = jv_array_length(jv_copy(v));
        if (!charge(c, 2) || !(out = json_array()))
            break;
        for (int i = 0; i < n && c->fail == CONV_OK; i++) {
            jv x = jv_array_get(jv_copy(v), i);
            json_t *jx = charge(c, 1) ? from_jv(x, depth + 1, c) : NULL;
            if (jx && json_array_append_new(out, jx) != 0)
                c->fail = CONV_NOMEM;
            jv_free(x);
        }
        break;
    }
    case JV_KIND_STRING: {
        int n = jv_string_length_bytes(jv_copy(v));
        if (!charge(c, (size_t)n + 2))
            break;
        /* JSON carries only UTF-8; libjq's strings should be (it replaces bad input), but the
         * output is checked rather than trusted. */
        out = json_stringn(jv_string_value(v), (size_t)n);
        if (!out)
            c->fail = CONV_BAD_UTF8;
        break;
    }
    case JV_KIND_NUMBER:
        if (charge(c, 8))
            out = number_json(jv_number_value(v));
        break;
    case JV_KIND_TRUE:
        if (charge(c, 4))
            out = json_true();
        break;
    case JV_KIND_FALSE:
        if (charge(c, 5))
            out = json_false();
        break;
    case JV_KIND_NULL:
    case JV_KIND_INVALID:
        if (charge(c, 4))
            out = json_null();
        break;
    }
    if (!out && c->fail == CONV_OK)
        c->fail = CONV_NOMEM;
    if (c->fail != CONV_OK) {
        json_decref(out);
        return NULL;
    }
    return out;
}

static bool is_container(jv v)
{
    jv_kind k = jv_get_kind(v);
    return k == JV_KIND_ARRAY || k == JV_KIND_OBJECT;
}

/* Keeps a container member on the free_deep stack; anything else is dropped at once (its
 * parent still holds it, so this jv_free only counts down). */
static void keep(jv **stack, size_t *n, size_t *cap, jv m)
{
    if (!is_container(m)) {
        jv_free(m);
        return;
    }
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        jv *grown = realloc(*stack, ncap * sizeof(**stack));
        if (!grown) {
            jv_free(m); /* out of memory: libjq's own recursion frees this member */
            return;
        }
        *stack = grown;
        *cap = ncap;
    }
    (*stack)[(*n)++] = m;
}

/* libjq frees nested values recursively (two C frames per level: some 250,000 levels fill an
 * 8 MiB stack), so an output nested deeper than we convert is taken apart here with a heap
 * stack: a container we hold the only reference to has its container members copied out first,
 * which makes each jv_free shallow. */
static void free_deep(jv v)
{
    size_t n = 0, cap = 0;
    jv *stack = NULL;
    jv x = v;
    for (;;) {
        if (is_container(x) && jv_get_refcnt(x) == 1) {
            if (jv_get_kind(x) == JV_KIND_ARRAY) {
                jv_array_foreach(x, i, m) keep(&stack, &n, &cap, m);
            } else {
                for (int it = jv_object_iter(x); jv_object_iter_valid(x, it);
                     it = jv_object_iter_next(x, it))
                    keep(&stack, &n, &cap, jv_object_iter_value(x, it));
            }
        }
        jv_free(x);
        if (n == 0)
            break;
        x = stack[--n];
    }
    free(stack);
}

/* ---- evaluating ---- */

/* Everything a budget abort may abandon runs in call_start/call_next. They are never inlined:
 * their frame marks the top of the C stack an abort abandons (and copies). */
__attribute__((noinline)) static void call_start(struct expr_thread *t, jq_state *jq, jv input)
{
    t->stack_top = (uintptr_t)__builtin_frame_address(0);
    atomic_signal_fence(memory_order_seq_cst);
    t->jump_ok = 1;
    jq_start(jq, input, 0);
    t->jump_ok = 0;
    atomic_signal_fence(memory_order_seq_cst);
}

__attribute__((noinline)) static jv call_next(struct expr_thread *t, jq_state *jq)
{
    t->stack_top = (uintptr_t)__builtin_frame_address(0);
    atomic_signal_fence(memory_order_seq_cst);
    t->jump_ok = 1;
    jv v = jq_next(jq);
    t->jump_ok = 0;
    atomic_signal_fence(memory_order_seq_cst);
    return v;
}

struct run {
    int want; /* outputs to take: 1 for a predicate, 2 for a mapping (to see a second one) */
    int n;    /* outputs taken */
    jv out[2];
    bool ended; /* jq_next said invalid before `want` outputs: an error, or the end */
    jv end;
};

/* The sigsetjmp frame: nothing here is read after a jump except through *r (memory), so no
 * local needs to be volatile. */
static int guarded_run(struct expr_thread *t, jq_state *jq, jv input, struct run *r)
{
    /* sigsetjmp as the whole controlling expression: one of the uses C allows. */
    switch (sigsetjmp(t->jmp, 0)) {
    case RUN_DONE:
        break;
    case RUN_ABORT_CPU:
        return RUN_ABORT_CPU;
    default:
        return RUN_ABORT_NOMEM;
    }
    call_start(t, jq, input);
    while (r->n < r->want) {
        jv v = call_next(t, jq);
        if (!jv_is_valid(v)) {
            r->end = v;
            r->ended = true;
            break;
        }
        r->out[r->n++] = v;
    }
    return RUN_DONE;
}

/* After an abort: the state and what it handed out are kept, never freed (see the header). */
static void abandon(sl_expr_t *e, struct expr_thread *t, struct run *r)
{
    /* The jump left the handler with its signal blocked (sigsetjmp saved no mask: that would
     * cost a system call per evaluation). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SL_EXPR_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);

    jq_state *jq = e->jq[t->slot];
    size_t n_ends = malloc_usable_size(jq) / sizeof(uintptr_t);
    if (n_ends > STATE_WORDS_MAX)
        n_ends = STATE_WORDS_MAX;
    struct leaked *l = malloc(sizeof(*l) + t->snap_len);
    uintptr_t *ends = malloc(n_ends * sizeof(*ends));
    if (l && ends) {
        for (size_t i = 0; i < n_ends; i++) {
            uintptr_t word;
            memcpy(&word, (const char *)jq + i * sizeof(word), sizeof(word));
            ends[i] = word - 1;
        }
        l->ends = ends;
        l->n_ends = n_ends;
        l->jq = jq;
        l->out[0] = r->n > 0 ? r->out[0] : jv_null();
        l->out[1] = r->n > 1 ? r->out[1] : jv_null();
        l->regs = t->snap_regs;
        l->len = t->snap_len;
        memcpy(l->stack, t->snap, t->snap_len);
        pthread_mutex_lock(&g.lock);
        l->next = g.leaked;
        g.leaked = l;
        pthread_mutex_unlock(&g.lock);
    } else {
        free(l);
        free(ends);
    }
    r->n = 0;
    e->jq[t->slot] = NULL;
    atomic_fetch_add(&g.states_leaked, 1);
}

static int budget_error(const sl_expr_t *e, const char *what, struct sl_err *err)
{
    atomic_fetch_add(&g.budget_exceeded, 1);
    sl_err_set(err, SL_EXPR_ERR_BUDGET, "expression '%s' exceeded its budget (%s)", e->name, what);
    uint64_t leaked = atomic_load(&g.states_leaked);
    if (err && leaked > SL_EXPR_MAX_LEAKED) {
        char tail[128];
        snprintf(tail, sizeof(tail), "; %llu jq states leaked by aborts: restart the process",
                 (unsigned long long)leaked);
        size_t n = strlen(err->msg);
        snprintf(err->msg + n, sizeof(err->msg) - n, "%s", tail);
        err->fatal = true;
    }
    return -1;
}

/* A runtime error's message: jq's string as is, anything else as JSON (bounded). */
static int runtime_error(const sl_expr_t *e, const char *what, jv msg, struct sl_err *err)
{
    if (jv_get_kind(msg) == JV_KIND_STRING) {
        sl_err_set(err, SL_ERR_INVALID, "expression '%s': %s%s", e->name, what,
                   jv_string_value(msg));
        jv_free(msg);
    } else {
        char buf[256];
        sl_err_set(err, SL_ERR_INVALID, "expression '%s': %serror (not a string): %s", e->name,
                   what, jv_dump_string_trunc(msg, buf, sizeof(buf)));
    }
    return -1;
}

static void run_free(struct run *r)
{
    for (int i = 0; i < r->n; i++)
        jv_free(r->out[i]);
    r->n = 0;
}

struct sl_expr_input {
    jv v;
};

sl_expr_input_t *sl_expr_input_new(const json_t *doc, struct sl_err *err)
{
    if (!doc) {
        sl_err_set(err, SL_ERR_INVALID, "expression: no input");
        return NULL;
    }
    /* The thread's set-up installs libjq's out-of-memory handler, which the conversion may
     * call (outside an evaluation it returns, and libjq aborts: as for any allocation). */
    if (!thread_get(err))
        return NULL;
    sl_expr_input_t *in = malloc(sizeof(*in));
    if (!in) {
        sl_err_set(err, SL_ERR_NOMEM, "expression: out of memory");
        return NULL;
    }
    const char *why = NULL;
    in->v = to_jv(doc, 0, &why);
    if (why) {
        jv_free(in->v);
        free(in);
        sl_err_set(err, SL_ERR_INVALID, "the input %s", why);
        return NULL;
    }
    return in;
}

void sl_expr_input_free(sl_expr_input_t *in)
{
    if (!in)
        return;
    jv_free(in->v);
    free(in);
}

/* Runs `e` over `input` on the calling thread, filling *r. 0, or -1 with *err (and nothing
 * left to free in *r). */
static int eval(sl_expr_t *e, const sl_expr_input_t *input, struct run *r, struct sl_err *err)
{
    if (!e || !input)
        return sl_err_set(err, SL_ERR_INVALID, "expression: no expression or no input");
    struct expr_thread *t = thread_get(err);
    if (!t || watchdog_start(err) != 0)
        return -1;
    jq_state *jq = e->jq[t->slot];
    if (!jq) {
        if (!(jq = compile_state(e, err)))
            return -1;
        e->jq[t->slot] = jq;
    }
    /* jq takes a reference; values are copied on write while we hold ours, so the input stays
     * as it was for the next evaluation, even after an abort. */
    jv in = jv_copy(input->v);

    atomic_store_explicit(&t->budget_ns, (uint64_t)e->budget.cpu_ms * 1000000u,
                          memory_order_relaxed);
    uint64_t seq = atomic_load_explicit(&t->seq, memory_order_relaxed);
    atomic_store_explicit(&t->seq, seq + 1, memory_order_release);
    int result = guarded_run(t, jq, in, r);
    atomic_store_explicit(&t->seq, seq + 2, memory_order_release);

    if (result != RUN_DONE) {
        abandon(e, t, r);
        char what[64];
        if (result == RUN_ABORT_CPU)
            snprintf(what, sizeof(what), "%u ms of CPU time", e->budget.cpu_ms);
        else
            snprintf(what, sizeof(what), "out of memory");
        return budget_error(e, what, err);
    }
    if (!r->ended)
        return 0;
    if (jv_invalid_has_msg(jv_copy(r->end))) {
        run_free(r);
        return runtime_error(e, "", jv_invalid_get_msg(r->end), err);
    }
    jv_free(r->end);
    if (jq_halted(jq)) {
        run_free(r);
        jv msg = jq_get_error_message(jq);
        if (!jv_is_valid(msg)) {
            jv_free(msg);
            return sl_err_set(err, SL_ERR_INVALID, "expression '%s' called halt", e->name);
        }
        return runtime_error(e, "halt_error: ", msg, err);
    }
    return 0;
}

/* The input converted for one evaluation, with the expression's name in the error. */
static sl_expr_input_t *input_for(const sl_expr_t *e, const json_t *input, struct sl_err *err)
{
    if (!e || !input) {
        sl_err_set(err, SL_ERR_INVALID, "expression: no expression or no input");
        return NULL;
    }
    sl_expr_input_t *in = sl_expr_input_new(input, err);
    if (!in)
        sl_err_prefix(err, "expression '%s'", e->name);
    return in;
}

int sl_expr_bool(sl_expr_t *e, const json_t *input, bool *out, struct sl_err *err)
{
    sl_expr_input_t *in = input_for(e, input, err);
    if (!in)
        return -1;
    int rc = sl_expr_bool_in(e, in, out, err);
    sl_expr_input_free(in);
    return rc;
}

json_t *sl_expr_value(sl_expr_t *e, const json_t *input, struct sl_err *err)
{
    sl_expr_input_t *in = input_for(e, input, err);
    if (!in)
        return NULL;
    json_t *out = sl_expr_value_in(e, in, err);
    sl_expr_input_free(in);
    return out;
}

int sl_expr_bool_in(sl_expr_t *e, const sl_expr_input_t *input, bool *out, struct sl_err *err)
{
    struct run r = {.want = 1};
    if (eval(e, input, &r, err) != 0)
        return -1;
    *out = false;
    if (r.n == 1) {
        jv_kind k = jv_get_kind(r.out[0]);
        *out = k != JV_KIND_FALSE && k != JV_KIND_NULL;
    }
    run_free(&r);
    return 0;
}

json_t *sl_expr_value_in(sl_expr_t *e, const sl_expr_input_t *input, struct sl_err *err)
{
    struct run r = {.want = 2};
    json_t *out = NULL;
    if (eval(e, input, &r, err) != 0)
        return NULL;
    if (r.n != 1) {
        sl_err_set(err, SL_ERR_INVALID,
                   "expression '%s' produced %s output (a mapping must produce exactly one)",
                   e->name, r.n == 0 ? "no" : "more than one");
        goto out;
    }
    struct conv c = {.max = e->budget.max_output_bytes};
    out = from_jv(r.out[0], 0, &c);
    char what[96];
    switch (c.fail) {
    case CONV_OK:
        break;
    case CONV_TOO_BIG:
        snprintf(what, sizeof(what), "output larger than %zu bytes", c.max);
        budget_error(e, what, err);
        break;
    case CONV_TOO_DEEP:
        snprintf(what, sizeof(what), "output nested deeper than %d levels", SL_EXPR_MAX_DEPTH);
        budget_error(e, what, err);
        break;
    case CONV_BAD_UTF8:
        sl_err_set(err, SL_ERR_INVALID, "expression '%s' produced a string that is not valid UTF-8",
                   e->name);
        break;
    case CONV_NOMEM:
        sl_err_set(err, SL_ERR_NOMEM, "expression '%s': out of memory", e->name);
        break;
    }
    if (c.fail != CONV_OK) {
        /* A refused output may be nested beyond what libjq's recursive free survives. */
        free_deep(r.out[0]);
        r.n = 0;
    }
out:
    run_free(&r);
    return out;
}

/* ---- the event as a CloudEvents JSON object ---- */

static bool json_media_type(const char *ct)
{
    if (!ct)
        return true;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    return (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
           (n == 9 && strncasecmp(ct, "text/json", 9) == 0) ||
           (n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0);
}

static int set_attr(json_t *ev, const char *name, const char *value, struct sl_err *err)
{
    if (strcmp(name, "data") == 0)
        return sl_err_set(err, SL_ERR_INVALID,
                          "event attribute '%s' collides with the event's data", name);
    json_t *v = json_string(value);
    if (!v)
        return sl_err_set(err, SL_ERR_INVALID, "event attribute '%s' is not valid UTF-8", name);
    if (json_object_set_new(ev, name, v) != 0)
        return sl_err_set(err, SL_ERR_NOMEM, "event JSON: out of memory");
    return 0;
}

static json_t *data_json(const struct sl_ce *ce, const void *data, size_t len, const char **member,
                         struct sl_err *err)
{
    *member = "data";
    if (json_media_type(sl_ce_get(ce, "datacontenttype"))) {
        json_error_t jerr;
        size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL;
        json_t *d = json_loadb(data, len, flags, &jerr);
        /* An integer beyond int64 is a double to jq anyway: read it as one. */
        if (!d && json_error_code(&jerr) == json_error_numeric_overflow)
            d = json_loadb(data, len, flags | JSON_DECODE_INT_AS_REAL, &jerr);
        if (!d)
            sl_err_set(err, SL_ERR_INVALID, "event data is not valid JSON: %s (line %d, column %d)",
                       jerr.text, jerr.line, jerr.column);
        return d;
    }
    json_t *d = json_stringn(data, len);
    if (d)
        return d;
    /* Not text: base64, as the CloudEvents JSON format carries binary data. */
    if (len > (size_t)INT_MAX / 4 * 3) {
        sl_err_set(err, SL_ERR_INVALID, "event data is too large");
        return NULL;
    }
    char *b64 = malloc(4 * ((len + 2) / 3) + 1);
    if (!b64) {
        sl_err_set(err, SL_ERR_NOMEM, "event JSON: out of memory");
        return NULL;
    }
    int n = EVP_EncodeBlock((unsigned char *)b64, data, (int)len);
    d = json_stringn(b64, (size_t)n);
    free(b64);
    if (!d)
        sl_err_set(err, SL_ERR_NOMEM, "event JSON: out of memory");
    *member = "data_base64";
    return d;
}

json_t *sl_expr_event_json(const struct sl_ce *ce, const void *data, size_t len, struct sl_err *err)
{
    static const char *const first[] = {"specversion", "id", "source", "type", "time"};
    const size_t n_first = sizeof(first) / sizeof(first[0]);
    if (!ce || (!data && len > 0)) {
        sl_err_set(err, SL_ERR_INVALID, "event JSON: no attributes, or no data");
        return NULL;
    }
    json_t *ev = json_object();
    if (!ev) {
        sl_err_set(err, SL_ERR_NOMEM, "event JSON: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n_first; i++) {
        const char *v = sl_ce_get(ce, first[i]);
        if (v && set_attr(ev, first[i], v, err) != 0)
            goto fail;
    }
    for (size_t i = 0; i < ce->n; i++) {
        bool seen = false;
        for (size_t k = 0; k < n_first && !seen; k++)
            seen = strcmp(ce->attrs[i].name, first[k]) == 0;
        if (!seen && set_attr(ev, ce->attrs[i].name, ce->attrs[i].value, err) != 0)
            goto fail;
    }
    if (len > 0) {
        const char *member;
        json_t *d = data_json(ce, data, len, &member, err);
        if (!d)
            goto fail;
        if (json_object_set_new(ev, member, d) != 0) {
            sl_err_set(err, SL_ERR_NOMEM, "event JSON: out of memory");
            goto fail;
        }
    }
    return ev;
fail:
    json_decref(ev);
    return NULL;
}
