/*
 * sl_addr: "host:port" listen and connect addresses. Hosts are numeric IPv4 ("0.0.0.0",
 * "127.0.0.1") or bracketed IPv6 ("[::1]:9100"); names are not resolved, so a listener never
 * depends on DNS at start-up. Port 0 asks the kernel for a free port.
 */
#ifndef SL_ADDR_H
#define SL_ADDR_H

#include <sys/socket.h>

#include "sl_err.h"

int sl_addr_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len,
                  struct sl_err *err);

/* The port a bound socket ended up on (for port 0), or -1. */
int sl_addr_bound_port(int fd);

#endif
