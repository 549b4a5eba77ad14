#!/usr/bin/env bash
# Single-node Apache Kafka 3.9.1 (KRaft) for development and tests, assembled
# from Maven Central jars (Debian has no broker package). Recipe and reasons:
# shared/reference/kafka-local.md.
#
#   kafka.sh fetch    download the jars into the cache (no-op when cached)
#   kafka.sh start    fetch, format once, start in the background, wait until up
#   kafka.sh stop     stop the broker this run dir started (by recorded pid only)
#   kafka.sh status   exit 0 when a broker answers on the port
#   kafka.sh reset    stop and delete the data (formatted again on next start)
#   kafka.sh logs [-f]  show (or follow) the broker log
#
# Environment:
#   SLUICE_KAFKA_PORT             client port (default 9092)
#   SLUICE_KAFKA_CONTROLLER_PORT  KRaft controller port (default 9093)
#   SLUICE_KAFKA_RUN_DIR          config, data, logs, pid (default <repo>/.run/kafka)
#   SLUICE_KAFKA_START_TIMEOUT    seconds to wait for the broker (default 90)
#   XDG_CACHE_HOME                jar cache root (default ~/.cache)
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    echo "usage: $(basename "$0") {fetch|start|stop|status|reset|logs [-f]}" >&2
    exit 2
}

KAFKA_VERSION=3.9.1
POM="$SLUICE_ROOT/deploy/local/kafka/pom.xml"
# Jars are shared by every checkout and run dir: fetched once per machine.
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/sluice/kafka-$KAFKA_VERSION"
LIB_DIR="$CACHE_DIR/lib"
# Jars whose presence means the cache is complete (it is only ever created
# by an atomic rename, so these are a sanity check, not a progress marker).
REQUIRED_JARS=("kafka_2.13-$KAFKA_VERSION.jar" "kafka-clients-$KAFKA_VERSION.jar"
    "kafka-server-$KAFKA_VERSION.jar" "slf4j-reload4j-1.7.36.jar" "reload4j-1.2.25.jar")

PORT="${SLUICE_KAFKA_PORT:-9092}"
CPORT="${SLUICE_KAFKA_CONTROLLER_PORT:-9093}"
START_TIMEOUT="${SLUICE_KAFKA_START_TIMEOUT:-90}"
RUN_DIR="${SLUICE_KAFKA_RUN_DIR:-$SLUICE_RUN_ROOT/kafka}"
[[ "$PORT" =~ ^[0-9]+$ && "$CPORT" =~ ^[0-9]+$ ]] || die "ports must be numbers: $PORT, $CPORT"
[ "$PORT" != "$CPORT" ] || die "SLUICE_KAFKA_PORT and SLUICE_KAFKA_CONTROLLER_PORT must differ"
[[ "$START_TIMEOUT" =~ ^[0-9]+$ ]] || die "SLUICE_KAFKA_START_TIMEOUT must be a number of seconds"
# Absolute, because the path goes into server.properties and the pid check.
case "$RUN_DIR" in /*) ;; *) RUN_DIR="$PWD/$RUN_DIR" ;; esac

CONF_DIR="$RUN_DIR/config"
DATA_DIR="$RUN_DIR/data"
LOG_DIR="$RUN_DIR/logs"
BROKER_LOG="$LOG_DIR/broker.log"
PID_FILE="$RUN_DIR/kafka.pid"
CLUSTER_ID_FILE="$RUN_DIR/cluster.id"
SERVER_PROPS="$CONF_DIR/server.properties"
LOG4J_PROPS="$CONF_DIR/log4j.properties"
BOOTSTRAP="127.0.0.1:$PORT"

JAVA_OPTS=(-Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j.configuration=file:$LOG4J_PROPS" "-Dkafka.logs.dir=$LOG_DIR")

kjava() { java "${JAVA_OPTS[@]}" -cp "$LIB_DIR/*" "$@"; }

jars_present() {
    local j
    for j in "${REQUIRED_JARS[@]}"; do
        [ -f "$LIB_DIR/$j" ] || return 1
    done
}

cmd_fetch() {
    local tmp t0 t1 n size
    if jars_present; then
        say "jars for Kafka $KAFKA_VERSION already cached in $LIB_DIR"
        return 0
    fi
    need_cmd mvn java
    [ -f "$POM" ] || die "missing $POM"
    [ ! -e "$LIB_DIR" ] || die "$LIB_DIR exists but lacks Kafka jars; remove it and fetch again"
    mkdir -p "$CACHE_DIR"
    # Download next to the final place, then rename: an interrupted fetch
    # leaves only a lib.tmp.* dir (removed on exit), never a half cache.
    tmp="$(mktemp -d "$CACHE_DIR/lib.tmp.XXXXXX")"
    # shellcheck disable=SC2064 # expand $tmp now: it is local
    trap "rm -rf '$tmp'" EXIT
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'; trap - EXIT; exit 130" INT TERM HUP
    say "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIB_DIR ..."
    t0="$(date +%s)"
    # Maven's output is kept aside and shown only on failure (-q still
    # emits colour escapes on success).
    if ! mvn -B -q -Dstyle.color=never -f "$POM" \
        org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp/lib" >"$tmp/mvn.log" 2>&1; then
        cat "$tmp/mvn.log" >&2
        die "maven could not fetch the Kafka jars (network? proxy? see above)"
    fi
    local j
    for j in "${REQUIRED_JARS[@]}"; do
        [ -f "$tmp/lib/$j" ] || die "fetched jars lack $j"
    done
    # mv -T fails rather than nesting if a concurrent fetch won the race.
    if ! mv -T "$tmp/lib" "$LIB_DIR" 2>/dev/null; then
        jars_present || die "could not move the jars into $LIB_DIR"
        say "another fetch filled the cache first; using it"
    fi
    rm -rf "$tmp"
    trap - EXIT INT TERM HUP
    t1="$(date +%s)"
    n="$(find "$LIB_DIR" -name '*.jar' | wc -l)"
    size="$(du -sh "$LIB_DIR" | cut -f1)"
    say "fetched $n jars ($size) in $((t1 - t0))s"
}

write_config() {
    mkdir -p "$CONF_DIR" "$DATA_DIR" "$LOG_DIR"
    # Regenerated on every start so the ports always follow the environment.
    # The reference's recipe, plus one partition for the internal topics
    # (50 by default: slow to create on a small box) and a transaction
    # timeout ceiling above librdkafka's default transaction.timeout.ms.
    cat >"$SERVER_PROPS" <<EOF
# Generated by deploy/local/kafka.sh; edits are overwritten on start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA_DIR
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
transaction.max.timeout.ms=900000
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
EOF
    # All logging to stderr, which start redirects into logs/broker.log.
    cat >"$LOG4J_PROPS" <<'EOF'
log4j.rootLogger=INFO, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=%d{ISO8601} %-5p [%c{1}] %m%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.network.RequestChannel$=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.org.apache.kafka.clients=WARN
EOF
}

format_storage() {
    local id
    # Format once per data dir (meta.properties marks a formatted one).
    [ -f "$DATA_DIR/meta.properties" ] && return 0
    if [ -s "$CLUSTER_ID_FILE" ]; then
        id="$(cat "$CLUSTER_ID_FILE")"
    else
        id="$(kjava kafka.tools.StorageTool random-uuid 2>>"$LOG_DIR/format.log")" ||
            die "StorageTool random-uuid failed; see $LOG_DIR/format.log"
        printf '%s\n' "$id" >"$CLUSTER_ID_FILE"
    fi
    say "formatting $DATA_DIR (cluster id $id)"
    kjava kafka.tools.StorageTool format -t "$id" -c "$SERVER_PROPS" -g \
        >>"$LOG_DIR/format.log" 2>&1 ||
        die "StorageTool format failed; see $LOG_DIR/format.log"
}

broker_answers() { kcat -b "$BOOTSTRAP" -L -m 2 >/dev/null 2>&1; }

# ours: the pid file names a live java running *this* run dir's config (the
# config check protects against a recycled pid).
ours() {
    pid_alive "$PID_FILE" && pid_cmdline_has "$(cat "$PID_FILE")" kafka.Kafka "$SERVER_PROPS"
}

# Stop waiting when the broker answers or its process is gone. Plain liveness
# here, not ours(): right after the fork the child's command line is still
# this script's until nohup execs java.
up_or_dead() { ! pid_alive "$PID_FILE" || { port_open 127.0.0.1 "$PORT" && broker_answers; }; }

# Serialise start/stop/reset on one run dir (two test processes, or a test
# and a developer). fd 9 is closed for the broker so it never holds the lock.
lock_run_dir() { take_lock "$RUN_DIR/.lock"; }

cmd_start() {
    local pid t0
    need_cmd java kcat
    lock_run_dir
    if ours; then
        pid="$(cat "$PID_FILE")"
        if broker_answers; then
            say "already running on $BOOTSTRAP (pid $pid, started by this run dir)"
            return 0
        fi
        say "our broker (pid $pid) is starting; waiting for it"
    else
        if [ -e "$PID_FILE" ]; then
            say "removing stale pid file $PID_FILE"
            rm -f "$PID_FILE"
        fi
        if port_open 127.0.0.1 "$PORT"; then
            if broker_answers; then
                say "a Kafka broker not started by this run dir already answers on $BOOTSTRAP; leaving it alone"
                return 0
            fi
            die "port $PORT is in use by something that is not a Kafka broker"
        fi
        if port_open 127.0.0.1 "$CPORT"; then
            die "controller port $CPORT is already in use (set SLUICE_KAFKA_CONTROLLER_PORT)"
        fi
        cmd_fetch
        write_config
        format_storage
        # nohup + </dev/null: the broker outlives this script and holds no
        # terminal or pipe of the caller (a $(kafka.sh start) would hang).
        printf '\n==== start %s ====\n' "$(date '+%F %T')" >>"$BROKER_LOG"
        nohup java "${JAVA_OPTS[@]}" -cp "$LIB_DIR/*" kafka.Kafka "$SERVER_PROPS" \
            </dev/null >>"$BROKER_LOG" 2>&1 9>&- &
        pid=$!
        printf '%s\n' "$pid" >"$PID_FILE"
        say "started broker pid $pid on $BOOTSTRAP (controller $CPORT, run dir $RUN_DIR)"
    fi

    t0="$(date +%s)"
    # Each try costs up to ~2.5 s when the broker is not up yet (kcat -m 2),
    # so the deadline below, not the try count, is the real bound.
    while ! up_or_dead; do
        if [ $(($(date +%s) - t0)) -ge "$START_TIMEOUT" ]; then
            warn "broker did not answer within ${START_TIMEOUT}s; last 50 log lines:"
            tail -n 50 "$BROKER_LOG" >&2 || true
            say "stopping it"
            stop_pid "$pid" 30
            rm -f "$PID_FILE"
            exit 1
        fi
        sleep 0.5
    done
    if ! pid_alive "$PID_FILE"; then
        warn "broker process $pid died during startup; last 50 log lines of $BROKER_LOG:"
        tail -n 50 "$BROKER_LOG" >&2 || true
        rm -f "$PID_FILE"
        exit 1
    fi
    say "Kafka $KAFKA_VERSION up on $BOOTSTRAP after $(($(date +%s) - t0))s"
}

cmd_stop() {
    local pid
    lock_run_dir
    if [ ! -e "$PID_FILE" ]; then
        say "no broker started from $RUN_DIR; nothing to stop"
        return 0
    fi
    if ! ours; then
        say "recorded broker is not running (stale pid file); nothing to stop"
        rm -f "$PID_FILE"
        return 0
    fi
    pid="$(cat "$PID_FILE")"
    say "stopping broker pid $pid ($BOOTSTRAP)"
    # SIGTERM is a controlled shutdown; KILL only after 30 s.
    stop_pid "$pid" 30
    rm -f "$PID_FILE"
    say "stopped"
}

cmd_status() {
    local who="not started by this run dir"
    if ours; then who="pid $(cat "$PID_FILE"), run dir $RUN_DIR"; fi
    if command -v kcat >/dev/null 2>&1 && broker_answers; then
        say "up on $BOOTSTRAP ($who)"
        return 0
    fi
    if ours; then
        say "down on $BOOTSTRAP, but our process is alive ($who): starting or stuck"
    else
        say "down on $BOOTSTRAP"
    fi
    return 1
}

cmd_reset() {
    cmd_stop
    # ${VAR:?} guards rm -rf against an empty path.
    rm -rf "${DATA_DIR:?}" "${CLUSTER_ID_FILE:?}"
    say "data deleted; the next start formats a new cluster"
}

cmd_logs() {
    [ -f "$BROKER_LOG" ] || die "no log yet: $BROKER_LOG"
    case "${1:-}" in
        "") tail -n 100 "$BROKER_LOG" ;;
        -f) tail -n 100 -f "$BROKER_LOG" ;;
        *) usage ;;
    esac
}

[ $# -ge 1 ] || usage
action="$1"
shift
case "$action" in
    fetch) [ $# -eq 0 ] || usage; cmd_fetch ;;
    start) [ $# -eq 0 ] || usage; cmd_start ;;
    stop) [ $# -eq 0 ] || usage; cmd_stop ;;
    status) [ $# -eq 0 ] || usage; cmd_status ;;
    reset) [ $# -eq 0 ] || usage; cmd_reset ;;
    logs) [ $# -le 1 ] || usage; cmd_logs "$@" ;;
    *) usage ;;
esac
