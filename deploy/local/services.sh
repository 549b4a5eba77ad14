#!/usr/bin/env bash
# Redis (127.0.0.1:$SLUICE_REDIS_PORT, default 6379) and PostgreSQL
# (127.0.0.1:5432) for development and tests, from the Debian packages.
#
#   services.sh start   start whichever is not answering, then make sure the
#                       role sluice/sluice and databases sluice, sluice_test exist
#   services.sh stop    stop only what this script started (see .run/state/)
#   services.sh status  exit 0 when both answer
#
# A server that already answers (a system service, a container, another
# checkout's) is used as it is and never stopped.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    echo "usage: $(basename "$0") {start|stop|status}" >&2
    exit 2
}

REDIS_PORT="${SLUICE_REDIS_PORT:-6379}"
[[ "$REDIS_PORT" =~ ^[0-9]+$ ]] || die "SLUICE_REDIS_PORT must be a number: $REDIS_PORT"
# Per port, so a private test instance never mixes with the default one.
REDIS_RUN="$SLUICE_RUN_ROOT/redis-$REDIS_PORT"
REDIS_PIDFILE="$REDIS_RUN/redis.pid"
REDIS_MARK="$SLUICE_STATE_DIR/redis-$REDIS_PORT.started"

PG_PORT=5432
PG_MARK="$SLUICE_STATE_DIR/postgresql.started"
SLUICE_DB_URL="postgresql://sluice:sluice@127.0.0.1:$PG_PORT/sluice"
SLUICE_TEST_DB_URL="postgresql://sluice:sluice@127.0.0.1:$PG_PORT/sluice_test"
# libpq waits forever on a half-open connection by default.
export PGCONNECT_TIMEOUT=5

# ---------------------------------------------------------------- Redis

redis_up() {
    [ "$(timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]
}

# The pid in our pid file, if it is the redis-server we started on this port.
redis_our_pid() {
    local pid
    [ -f "$REDIS_MARK" ] && pid_alive "$REDIS_PIDFILE" || return 1
    pid="$(cat "$REDIS_PIDFILE")"
    pid_cmdline_has "$pid" redis-server ":$REDIS_PORT" || return 1
    printf '%s\n' "$pid"
}

redis_start() {
    if redis_up; then
        if redis_our_pid >/dev/null; then
            say "redis: already running on 127.0.0.1:$REDIS_PORT (started by us)"
        else
            say "redis: already running on 127.0.0.1:$REDIS_PORT (not ours; leaving it alone)"
        fi
        return 0
    fi
    if port_open 127.0.0.1 "$REDIS_PORT"; then
        die "redis: port $REDIS_PORT is open but does not answer PING (password? not Redis?)"
    fi
    need_cmd redis-server redis-cli
    mkdir -p "$REDIS_RUN" "$SLUICE_STATE_DIR"
    # No persistence: this is a scratch server for development and tests.
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" \
        --save "" --appendonly no --pidfile "$REDIS_PIDFILE" --dir "$REDIS_RUN" \
        --logfile "$REDIS_RUN/redis.log" 9>&- ||
        die "redis: redis-server failed to start; see $REDIS_RUN/redis.log"
    # Recorded before the wait, so that stop can clean up a slow start too.
    printf '%s\n' "$REDIS_PIDFILE" >"$REDIS_MARK"
    if ! wait_for -n 40 -d 0.25 redis_up; then
        tail -n 20 "$REDIS_RUN/redis.log" >&2 || true
        die "redis: not answering on 127.0.0.1:$REDIS_PORT after 10s"
    fi
    say "redis: started on 127.0.0.1:$REDIS_PORT (pid $(cat "$REDIS_PIDFILE"), dir $REDIS_RUN)"
}

redis_stop() {
    local pid
    if [ ! -f "$REDIS_MARK" ]; then
        say "redis: not started by us on port $REDIS_PORT; leaving it alone"
        return 0
    fi
    if pid="$(redis_our_pid)"; then
        say "redis: stopping pid $pid (127.0.0.1:$REDIS_PORT)"
        stop_pid "$pid" 30
    else
        say "redis: the instance we started is gone already"
    fi
    rm -f "$REDIS_MARK"
}

# ---------------------------------------------------------------- PostgreSQL

pg_up() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -t 3; }

# Newest installed major version with a config dir (Debian layout), else
# newest server binary (postgresql installed but every cluster dropped).
pg_version() {
    local v
    v="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null |
        grep -E '^[0-9]+(\.[0-9]+)?$' | sort -V | tail -n 1)" || true
    if [ -z "$v" ]; then
        v="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null |
            grep -E '^[0-9]+(\.[0-9]+)?$' | sort -V | tail -n 1)" || true
    fi
    [ -n "$v" ] || die "postgresql: no server installed; run deploy/local/install-deps.sh"
    printf '%s\n' "$v"
}

# "PORT STATUS" of cluster VER/main from pg_lsclusters, empty if none.
pg_cluster_info() {
    { pg_lsclusters -h "$1" main 2>/dev/null || true; } | awk '{print $3, $4}'
}

pg_start() {
    local ver info port status
    if pg_up; then
        if [ -f "$PG_MARK" ]; then
            say "postgresql: already running on 127.0.0.1:$PG_PORT (started by us)"
        else
            say "postgresql: already running on 127.0.0.1:$PG_PORT (not ours; leaving it alone)"
        fi
        return 0
    fi
    need_cmd pg_ctlcluster pg_createcluster pg_lsclusters pg_isready psql
    ver="$(pg_version)"
    info="$(pg_cluster_info "$ver")"
    if [ -z "$info" ]; then
        say "postgresql: creating cluster $ver/main"
        as_root timeout 300 pg_createcluster "$ver" main 9>&- >&2 ||
            die "postgresql: pg_createcluster $ver main failed"
        info="$(pg_cluster_info "$ver")"
    fi
    read -r port status <<<"$info"
    [ "$port" = "$PG_PORT" ] ||
        die "postgresql: cluster $ver/main uses port $port, not $PG_PORT (see /etc/postgresql/$ver/main/postgresql.conf)"
    case "$status" in
        online*) die "postgresql: cluster $ver/main is running but not answering on 127.0.0.1:$PG_PORT (listen_addresses?)" ;;
    esac
    mkdir -p "$SLUICE_STATE_DIR"
    # No systemd here: talk to pg_ctl directly. Recorded before the wait so
    # that stop can clean up a slow start too.
    printf '%s main\n' "$ver" >"$PG_MARK"
    as_root timeout 120 pg_ctlcluster --skip-systemctl-redirect "$ver" main start 9>&- >&2 ||
        die "postgresql: pg_ctlcluster $ver main start failed (log: /var/log/postgresql/postgresql-$ver-main.log)"
    wait_for -n 60 -d 0.5 pg_up ||
        die "postgresql: cluster $ver/main not answering on 127.0.0.1:$PG_PORT after 30s"
    say "postgresql: started cluster $ver/main on 127.0.0.1:$PG_PORT"
}

pg_stop() {
    local ver cluster info
    if [ ! -f "$PG_MARK" ]; then
        say "postgresql: not started by us; leaving it alone"
        return 0
    fi
    read -r ver cluster <"$PG_MARK"
    info="$(pg_cluster_info "$ver")"
    case "$info" in
        *online*)
            say "postgresql: stopping cluster $ver/$cluster"
            # Fast mode (the default): roll back sessions, shut down cleanly.
            as_root timeout 120 pg_ctlcluster --skip-systemctl-redirect "$ver" "$cluster" stop >&2 ||
                die "postgresql: pg_ctlcluster $ver $cluster stop failed"
            ;;
        *) say "postgresql: cluster $ver/$cluster is not running any more" ;;
    esac
    rm -f "$PG_MARK"
}

# True when role sluice can log in with its password, has CREATEDB, and owns
# both databases. Checked as sluice itself: no superuser access needed.
pg_db_ready() {
    local ok
    ok="$(psql -X -q -At -v ON_ERROR_STOP=1 "$SLUICE_DB_URL" -c "
        select (select rolcanlogin and rolcreatedb from pg_roles where rolname = 'sluice')
           and (select count(*) from pg_database d join pg_roles r on r.oid = d.datdba
                where d.datname in ('sluice', 'sluice_test') and r.rolname = 'sluice') = 2" \
        2>/dev/null)" || return 1
    [ "$ok" = t ] && psql -X -q -At "$SLUICE_TEST_DB_URL" -c 'select 1' >/dev/null 2>&1
}

pg_ensure_db() {
    if pg_db_ready; then
        say "postgresql: role sluice and databases sluice, sluice_test already in place"
    else
        say "postgresql: creating/updating role sluice and databases sluice, sluice_test"
        id postgres >/dev/null 2>&1 ||
            die "postgresql: no postgres OS user here; create role sluice (password sluice, LOGIN CREATEDB) and databases sluice, sluice_test owned by it by hand"
        # Over the local socket as the postgres OS user (peer auth), so it
        # works on a fresh Debian cluster. Every statement is idempotent.
        as_postgres timeout 60 psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -d postgres >/dev/null <<'SQL' ||
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sluice') THEN
    CREATE ROLE sluice LOGIN CREATEDB PASSWORD 'sluice';
  ELSE
    ALTER ROLE sluice LOGIN CREATEDB PASSWORD 'sluice';
  END IF;
END
$$;
SELECT 'CREATE DATABASE sluice OWNER sluice'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'sluice') \gexec
SELECT 'CREATE DATABASE sluice_test OWNER sluice'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'sluice_test') \gexec
ALTER DATABASE sluice OWNER TO sluice;
ALTER DATABASE sluice_test OWNER TO sluice;
SQL
            die "postgresql: could not create the role/databases as the postgres user"
    fi
    psql -X -q "$SLUICE_DB_URL" -c 'select 1' >/dev/null ||
        die "postgresql: cannot connect as $SLUICE_DB_URL"
    psql -X -q "$SLUICE_TEST_DB_URL" -c 'select 1' >/dev/null ||
        die "postgresql: cannot connect as $SLUICE_TEST_DB_URL"
    say "postgresql: verified $SLUICE_DB_URL (and sluice_test)"
}

# ---------------------------------------------------------------- commands

cmd_start() {
    need_cmd redis-cli pg_isready psql
    take_lock "$SLUICE_STATE_DIR/.services.lock"
    redis_start
    pg_start
    pg_ensure_db
}

cmd_stop() {
    take_lock "$SLUICE_STATE_DIR/.services.lock"
    redis_stop
    pg_stop
}

cmd_status() {
    local rc=0 who
    need_cmd redis-cli pg_isready
    who="not ours"
    if redis_our_pid >/dev/null; then who="started by us"; fi
    if redis_up; then
        say "redis: up on 127.0.0.1:$REDIS_PORT ($who)"
    else
        say "redis: down on 127.0.0.1:$REDIS_PORT"
        rc=1
    fi
    who="not ours"
    if [ -f "$PG_MARK" ]; then who="started by us"; fi
    if pg_up; then
        say "postgresql: up on 127.0.0.1:$PG_PORT ($who)"
    else
        say "postgresql: down on 127.0.0.1:$PG_PORT"
        rc=1
    fi
    return "$rc"
}

[ $# -eq 1 ] || usage
case "$1" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) usage ;;
esac
