#!/usr/bin/env bash
# Stops what deploy/local/up.sh started: the Sluice binaries (by recorded pid, SIGTERM, then
# SIGKILL after a grace period), the Kafka broker, and Redis/PostgreSQL only if up.sh started
# them. Leaves data in .run/ (deploy/local/kafka.sh reset empties the broker).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ $# -eq 0 ] || { echo "usage: $(basename "$0")" >&2; exit 2; }

pids="$SLUICE_RUN_ROOT/pids"
for pidfile in "$pids"/*.pid; do
    [ -e "$pidfile" ] || continue
    name=$(basename "$pidfile" .pid)
    pid=$(cat "$pidfile")
    if pid_alive "$pidfile"; then
        say "stopping $name (pid $pid)"
        stop_pid "$pid" 30
    fi
    rm -f "$pidfile"
done
"$SLUICE_ROOT/deploy/local/kafka.sh" stop
"$SLUICE_ROOT/deploy/local/services.sh" stop
