#!/usr/bin/env bash
# pg_private.sh: a PostgreSQL server of a test's own, for the tests that stop and restart their
# database (the machine's server is shared and never stopped).
#
#   pg_private.sh start DIR PORT   initdb into DIR/data once (superuser "sluice", trust on
#                                  127.0.0.1 only), then start it on 127.0.0.1:PORT
#   pg_private.sh stop DIR         fast shutdown: sessions are cut, as in an outage
#   pg_private.sh destroy DIR      stop it if it runs, and delete DIR
#
# PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user (runuser),
# which then owns DIR. The binaries are those of `pg_config --bindir`, else the newest
# /usr/lib/postgresql/*/bin.
set -euo pipefail

bindir=$(pg_config --bindir 2> /dev/null || true)
if [ ! -x "$bindir/initdb" ]; then
    bindir=$(ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V | tail -1)
fi
[ -x "$bindir/initdb" ] || { echo "pg_private.sh: no initdb found" >&2; exit 1; }

as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

action=${1:?usage: pg_private.sh start DIR PORT | stop DIR | destroy DIR}
dir=${2:?a directory}
case "$action" in
start)
    port=${3:?a port}
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "$bindir/initdb" -D "$dir/data" -U sluice -A trust --no-sync \
            > "$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -c listen_addresses=127.0.0.1 -k $dir -c fsync=off" start > /dev/null
    ;;
stop)
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop > /dev/null
    ;;
destroy)
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w -t 60 stop > /dev/null || true
    fi
    rm -rf "$dir"
    ;;
*)
    echo "pg_private.sh: unknown action $action" >&2
    exit 2
    ;;
esac
