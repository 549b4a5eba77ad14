/*
 * sl_signal: shutdown through a flag. SIGTERM and SIGINT only set the flag and wake whoever
 * waits in sl_signal_wait(); the main loop notices, stops taking work, finishes or hands back
 * what is in flight, commits and exits 0. SIGPIPE is ignored (a closed socket is an error
 * return, not a death). Process-wide by nature: signals are.
 */
#ifndef SL_SIGNAL_H
#define SL_SIGNAL_H

#include <stdbool.h>

#include "sl_err.h"

int sl_signal_install(struct sl_err *err);
bool sl_signal_stopping(void);
/* Programmatic stop (tests, fatal errors in a worker thread). Async-signal-safe. */
void sl_signal_request_stop(void);
/* Sleeps up to timeout_ms (or forever when < 0) or until a stop is requested.
 * Returns true when stopping. */
bool sl_signal_wait(int timeout_ms);

#endif
