#!/usr/bin/env bash
# Brings the whole Sluice pipeline up on this machine with the example configuration
# (deploy/examples/pipeline.yaml, or $SLUICE_CONFIG): installs what is missing, starts Redis,
# PostgreSQL and a single-node Kafka broker where they are not running, builds the binaries,
# creates the topics, and starts every Sluice binary that exists, each with its logs in
# .run/logs/. Idempotent: running it again starts only what is not running.
# deploy/local/down.sh stops what this started.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ $# -eq 0 ] || { echo "usage: $(basename "$0")" >&2; exit 2; }

config="${SLUICE_CONFIG:-$SLUICE_ROOT/deploy/examples/pipeline.yaml}"
here="$SLUICE_ROOT/deploy/local"
bin="$SLUICE_ROOT/build/bin"
pids="$SLUICE_RUN_ROOT/pids"
logs="$SLUICE_RUN_ROOT/logs"
mkdir -p "$pids" "$logs"

"$here/install-deps.sh"
"$here/services.sh" start
"$here/kafka.sh" start

say "building (Release) into build/"
cmake -S "$SLUICE_ROOT" -B "$SLUICE_ROOT/build" -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$SLUICE_ROOT/build" -j "$(nproc)" > "$logs/build.log" 2>&1 ||
    { tail -n 30 "$logs/build.log" >&2; die "build failed (full log: $logs/build.log)"; }

# Development secrets for the example's ${VAR}s, kept in .run/dev.env (never committed). Each
# is made once; a variable the file lacks (a source added since) is appended. Source the file
# to sign test requests the way the sources would.
dev_env="$SLUICE_RUN_ROOT/dev.env"
dev_secret() { # NAME VALUE: append unless the file has it
    grep -q "^export $1=" "$dev_env" 2>/dev/null || echo "export $1=$2" >> "$dev_env"
}
(
    umask 077
    dev_secret STRIPE_WEBHOOK_SECRET "whsec_$(openssl rand -base64 24)"
    dev_secret CRM_WEBHOOK_SECRET "$(openssl rand -hex 24)"
    dev_secret GITHUB_WEBHOOK_SECRET "$(openssl rand -hex 20)"
    dev_secret CRM_CLIENT_SECRET "$(openssl rand -hex 16)"
    dev_secret CRM_SIGNING_SECRET "whsec_$(openssl rand -base64 24)"
    dev_secret WAREHOUSE_TOKEN "$(openssl rand -hex 16)"
    # The console's operator token (sluice-admin); the pipeline file reads only its hash.
    dev_secret SLUICE_ADMIN_TOKEN "$(openssl rand -hex 24)"
    grep -q "^export SLUICE_ADMIN_OPERATOR_SHA256=" "$dev_env" ||
        (. "$dev_env" && echo "export SLUICE_ADMIN_OPERATOR_SHA256=$(printf %s "$SLUICE_ADMIN_TOKEN" |
            sha256sum | cut -d' ' -f1)" >> "$dev_env")
)
# shellcheck disable=SC1090
. "$dev_env"

"$bin/sluicectl" config check "$config"
"$bin/sluicectl" --config "$config" topics create
# The audit database's schema (idempotent) and its coming daily partitions.
"$bin/sluicectl" --config "$config" db migrate

# start NAME BINARY ARGS...: runs build/bin/BINARY in the background as NAME (its pid file and
# log), unless NAME already runs.
start() {
    local name=$1 binary=$2
    shift 2
    local pidfile="$pids/$name.pid"
    if pid_alive "$pidfile"; then
        say "$name already running (pid $(cat "$pidfile"))"
        return
    fi
    nohup "$bin/$binary" "$@" >> "$logs/$name.log" 2>&1 &
    echo $! > "$pidfile"
    say "started $name (pid $!, log $logs/$name.log)"
}

# The stages, front to back; each one that has been built is started.
started=0
for stage in ingress validate transform route deliver audit deadletter reconcile admin; do
    if [ -x "$bin/sluice-$stage" ]; then
        start "sluice-$stage" "sluice-$stage" --config "$config"
        started=$((started + 1))
    fi
done
# The example's destinations point at two simulators on 127.0.0.1:8091 and :8092.
if [ -x "$bin/destsim" ]; then
    start destsim-crm destsim --listen 127.0.0.1:8091 --oauth-client "sluice:$CRM_CLIENT_SECRET"
    start destsim-warehouse destsim --listen 127.0.0.1:8092
fi

cat >&2 <<MSG

Sluice is up: Kafka on 127.0.0.1:9092, Redis, PostgreSQL; topics created from
  $config
$started stage binaries started (logs in $logs/). Stop everything with deploy/local/down.sh.
Development secrets are in $dev_env.
MSG
if [ -x "$bin/sluice-admin" ]; then
    cat >&2 <<MSG
The console: http://127.0.0.1:9190/  (development operator token: $SLUICE_ADMIN_TOKEN)
MSG
fi
if [ -x "$bin/sluice-ingress" ]; then
    cat >&2 <<'MSG'
Send an event (see README.md, "Send an event"):
  . .run/dev.env && deploy/local/send-example.sh
MSG
fi
