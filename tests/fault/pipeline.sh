# tests/fault/pipeline.sh: a private Sluice pipeline for the fault matrix and the drills
# (bench/replay/run.sh). Sourced, not run: it brings up a run directory of its own, the build
# tree's test broker (started when not running, then stopped again), a private redis-server
# and PostgreSQL cluster, two destination simulators in idempotent mode and every binary of
# BINARIES on the example configuration, and stops all of it on exit.
#
# The caller sets: src (the repository), here (tests/fault), build and bin (the build tree and
# its bin/), kind (names the run directory <build>/<kind>/ and the topic prefix: "matrix"),
# seed (names the run), keep (1: keep the run directory), BINARIES (the stages, in
# pipeline order), READY_MAX_S, and defines say and die. The run directory is also kept when
# the caller sets failed=1.
# Provides: run, logs, tag, prefix, conf, http_port, redis_port, pg_port, pg_dsn, crm_url,
# wh_url, STRIPE_WEBHOOK_SECRET (exported), loadgen_pid (killed on exit when set), failed, and
# the functions free_port, kafka, redis_start/redis_stop, pg_start/pg_stop, psql_q,
# destsim_start, start_bin, alive, wait_ready, stop_bin (stop_rc) and supervise (exits,
# crashes).
# shellcheck shell=bash disable=SC2034
# ---- the run's own directory, ports and services -------------------------------------------
run="$build/fault-$kind/run-$seed-$$"
logs="$run/logs"
mkdir -p "$logs" "$run/redis"
tag="${kind:0:1}${seed}x$$"
prefix="sluice-$kind-$tag."

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now, below the ephemeral
# range (32768-) where outgoing connections bind ports without listening.
free_port() {
    local p
    while :; do
        p=$((20000 + ($(od -An -N2 -tu2 /dev/urandom) % 12000))) # below the ephemeral range
        (exec 3<> "/dev/tcp/127.0.0.1/$p") 2> /dev/null || {
            echo "$p"
            return
        }
    done
}

# The build tree's test broker: the fixture's environment, or the same values from the cache.
if [ -z "${SLUICE_KAFKA_PORT:-}" ]; then
    SLUICE_KAFKA_PORT=$(sed -n 's/^SLUICE_TEST_KAFKA_PORT:[A-Z]*=//p' "$build/CMakeCache.txt")
    [ -n "$SLUICE_KAFKA_PORT" ] || die "no SLUICE_KAFKA_PORT and none in $build/CMakeCache.txt"
    export SLUICE_KAFKA_PORT
    export SLUICE_KAFKA_CONTROLLER_PORT=$((SLUICE_KAFKA_PORT + 1))
    export SLUICE_KAFKA_RUN_DIR="$build/test-kafka"
fi
export SLUICE_KAFKA_BROKERS="127.0.0.1:$SLUICE_KAFKA_PORT"
kafka() { "$src/deploy/local/kafka.sh" "$@" >> "$logs/kafka.sh.log" 2>&1; }

declare -A PID ADMIN
http_port=$(free_port)
redis_port=$(free_port)
pg_port=$(free_port)
started_kafka=0
redis_pid=""
loadgen_pid=""
crm_pid="" wh_pid=""
failed=0

cleanup() {
    # Only this shell cleans up: a subshell that exits (a trap runs there too) must not.
    [ "$BASHPID" = "$$" ] || return 0
    local name
    [ -n "$loadgen_pid" ] && kill -9 "$loadgen_pid" 2> /dev/null
    for name in "${!PID[@]}"; do
        [ -n "${PID[$name]}" ] && kill -9 "${PID[$name]}" 2> /dev/null
    done
    for name in "$crm_pid" "$wh_pid" "$redis_pid"; do
        [ -n "$name" ] && kill -9 "$name" 2> /dev/null
    done
    wait 2> /dev/null
    "$here/pg_private.sh" destroy "$run/pg" > /dev/null 2>&1
    [ "$started_kafka" = 1 ] && kafka stop
    if [ "$failed" = 0 ] && [ "$keep" = 0 ]; then
        rm -rf "$run"
    else
        say "logs and data kept in $run"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! kafka status; then
    say "starting the test broker on $SLUICE_KAFKA_BROKERS"
    kafka start || die "the broker did not start (see $logs/kafka.sh.log)"
    started_kafka=1
fi

redis_start() {
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly yes \
        --appendfsync everysec --dir "$run/redis" --daemonize no >> "$logs/redis.log" 2>&1 &
    redis_pid=$!
    local i
    for ((i = 0; i < 100; i++)); do
        redis-cli -p "$redis_port" ping > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "redis-server did not start (see $logs/redis.log)"
}
redis_stop() {
    kill -TERM "$redis_pid" 2> /dev/null
    wait "$redis_pid" 2> /dev/null
    redis_pid=""
}
pg_start() { "$here/pg_private.sh" start "$run/pg" "$pg_port" >> "$logs/pg.log" 2>&1 || die "PostgreSQL did not start (see $logs/pg.log and $run/pg/server.log)"; }
pg_stop() { "$here/pg_private.sh" stop "$run/pg" >> "$logs/pg.log" 2>&1; }

redis_start
pg_start
pg_dsn="postgresql://sluice@127.0.0.1:$pg_port/postgres"
psql_q() { psql "$pg_dsn" -v ON_ERROR_STOP=1 -qAt -F ' ' -c "$1" 2>> "$logs/psql.log"; }

# ---- the pipeline ---------------------------------------------------------------------------
# The example, unchanged but for the schemas' absolute path (the copy lives in the run
# directory) and a reconcile interval short enough to wait for.
conf="$run/pipeline.yaml"
sed -e "s|^schema_dir: .*|schema_dir: $src/schemas|" -e 's|^  interval: 1m$|  interval: 5s|' \
    "$src/deploy/examples/pipeline.yaml" > "$conf"
grep -q '^  interval: 5s' "$conf" || die "the example's reconcile interval moved; adjust matrix.sh"

export SLUICE_TOPIC_PREFIX="$prefix"
export SLUICE_REDIS_URL="redis://127.0.0.1:$redis_port/0"
export SLUICE_PG_DSN="$pg_dsn"
export SLUICE_INGRESS_LISTEN="127.0.0.1:$http_port"
export STRIPE_WEBHOOK_SECRET="whsec_matrix$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
export CRM_WEBHOOK_SECRET="matrix-crm-webhook" GITHUB_WEBHOOK_SECRET="matrix-github"
export CRM_CLIENT_SECRET="matrix-crm-client-secret"
export CRM_SIGNING_SECRET="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
export WAREHOUSE_TOKEN="matrix-warehouse-token"

# destsim_start NAME ARGS...: a simulator in idempotent mode; prints its base URL.
destsim_start() {
    local name=$1
    shift
    rm -f "$run/$name.port"
    "$bin/destsim" --listen 127.0.0.1:0 --port-file "$run/$name.port" --idempotency "$@" \
        >> "$logs/destsim-$name.log" 2>&1 &
    local pid=$! i
    for ((i = 0; i < 100; i++)); do
        [ -s "$run/$name.port" ] && break
        sleep 0.1
    done
    [ -s "$run/$name.port" ] || die "destsim $name did not start"
    echo "$pid http://127.0.0.1:$(cat "$run/$name.port")"
}
read -r crm_pid crm_url < <(destsim_start crm --oauth-client "sluice:$CRM_CLIENT_SECRET" --require-bearer)
read -r wh_pid wh_url < <(destsim_start warehouse)
[ -n "${crm_url:-}" ] && [ -n "${wh_url:-}" ] || die "the destination simulators did not start"
export CRM_API_URL="$crm_url/crm/payments" CRM_TOKEN_URL="$crm_url/_sim/oauth/token"
export WAREHOUSE_URL="$wh_url/ingest"

"$bin/sluicectl" --config "$conf" topics create >> "$logs/sluicectl.log" 2>&1 || die "topics create failed (see $logs/sluicectl.log)"
"$bin/sluicectl" --config "$conf" db migrate >> "$logs/sluicectl.log" 2>&1 || die "db migrate failed (see $logs/sluicectl.log)"

has_opt() { "$bin/sluice-$1" --help 2>&1 | grep -q -- "$2 "; }

# start_bin NAME: starts sluice-<stage> as NAME ("deliver", or a replica "deliver#2") with its
# own admin port (kept across restarts) and log; extra environment for it in ENV_<stage>.
start_bin() {
    local name=$1 stage=${1%%#*}
    [ -n "${ADMIN[$name]:-}" ] || ADMIN[$name]=$(free_port)
    local args=(--config "$conf" --admin-listen "127.0.0.1:${ADMIN[$name]}")
    has_opt "$stage" --group && args+=(--group "${prefix}$stage")
    # Static membership (restarted with its instance id, a process takes its partitions back
    # at once). Replicas of the transactional stages need an instance id of their own as well
    # (without one, the transactional.id comes from the host name and two replicas on one host
    # fence each other); they wait for session.timeout.ms after SIGTERM, as static members do.
    # sluice-deliver's replicas are dynamic members, which leave the group on SIGTERM.
    if [[ "$name" != *#* || "$stage" != deliver ]] && has_opt "$stage" --instance; then
        args+=(--instance "$tag-${name/\#/-}")
    fi
    local envs=()
    [ "$stage" = deliver ] && [ -n "${DELIVER_CRM_URL:-}" ] && envs=("CRM_API_URL=$DELIVER_CRM_URL")
    env "${envs[@]}" "$bin/sluice-$stage" "${args[@]}" >> "$logs/$name.log" 2>&1 &
    PID[$name]=$!
}
# alive PID: the process runs (a child that exited stays a zombie until waited for).
alive() {
    local st
    st=$(ps -o stat= -p "$1" 2> /dev/null) && [[ "$st" != Z* ]]
}
# wait_ready NAME: its /readyz answers 200 (READY_MAX_S at most); 1 when it did not.
wait_ready() {
    local i
    for ((i = 0; i < READY_MAX_S * 5; i++)); do
        curl -sf -o /dev/null -m 2 "http://127.0.0.1:${ADMIN[$1]}/readyz" && return 0
        alive "${PID[$1]}" || break
        sleep 0.2
    done
    say "$1 is not ready (see $logs/$1.log)"
    return 1
}
# stop_bin NAME SIGNAL: sends SIGNAL, waits for the exit; its exit status in stop_rc. (Not in
# a subshell: only this shell can wait for its children.)
stop_rc=0
stop_bin() {
    local pid=${PID[$1]} i
    kill "-$2" "$pid" 2> /dev/null
    # SIGTERM: the binary promises to exit within a bounded time; past 90 s it is killed.
    for ((i = 0; i < 450; i++)); do
        alive "$pid" || break
        sleep 0.2
    done
    kill -9 "$pid" 2> /dev/null
    wait "$pid" 2> /dev/null
    stop_rc=$?
    PID[$1]=""
}

for b in "${BINARIES[@]}"; do start_bin "$b"; done
for b in "${BINARIES[@]}"; do wait_ready "$b" || die "the pipeline did not come up"; done
say "pipeline up: topic prefix $prefix, ingress 127.0.0.1:$http_port, crm $crm_url, warehouse $wh_url"

# supervise: what a supervisor (systemd, Kubernetes) does: a binary that ended without being
# stopped is started again. An exit with a status is a binary giving up on a fatal error (a
# restart helps: counted in `exits`); death by a signal nobody sent is a crash (a failure).
exits=0 crashes=0
supervise() {
    local name st
    for name in "${!PID[@]}"; do
        [ -n "${PID[$name]}" ] && ! alive "${PID[$name]}" || continue
        wait "${PID[$name]}" 2> /dev/null
        st=$?
        if [ "$st" -gt 128 ]; then
            crashes=$((crashes + 1))
            say "$name died of signal $((st - 128)): a crash (see $logs/$name.log); restarting it"
        else
            exits=$((exits + 1))
            say "$name exited $st on its own (see $logs/$name.log); restarting it"
        fi
        PID[$name]=""
        start_bin "$name"
    done
}

