# shellcheck shell=bash
# Helpers shared by deploy/local/*.sh. Source it; do not run it.
#
# Provides: SLUICE_ROOT, SLUICE_RUN_ROOT, SLUICE_STATE_DIR, say, warn, die,
# need_cmd, as_root, as_postgres, wait_for, port_open, take_lock, pid_alive,
# pid_cmdline_has, stop_pid. Bounds run times with coreutils' timeout (always
# present on Debian: coreutils is Essential) and uses flock if present.

# Repository root: two levels above this file. Resolved from the file, not
# from $PWD or git, so the scripts work from any directory and in a tarball.
SLUICE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
# Everything the scripts own at run time lives under .run/ (gitignored).
SLUICE_RUN_ROOT="${SLUICE_RUN_ROOT:-$SLUICE_ROOT/.run}"
# Records of what *we* started, so that stop never touches anything else.
SLUICE_STATE_DIR="${SLUICE_STATE_DIR:-$SLUICE_RUN_ROOT/state}"
# Prefix for messages: the calling script's name.
SLUICE_LOG_TAG="${SLUICE_LOG_TAG:-$(basename "$0" .sh)}"

# Messages go to stderr so that stdout stays usable by callers.
say() { printf '%s: %s\n' "$SLUICE_LOG_TAG" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$SLUICE_LOG_TAG" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$SLUICE_LOG_TAG" "$*" >&2
    exit 1
}

# need_cmd CMD...: fail early with a hint instead of a cryptic error later.
need_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 ||
            die "'$c' not found; run deploy/local/install-deps.sh"
    done
}

# as_root CMD...: run as root, through sudo only when we are not root already.
# CMD must be an external command (sudo cannot run shell functions); bound it
# with "as_root timeout SECS CMD...".
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        command -v sudo >/dev/null 2>&1 || die "not root and no sudo: cannot run $*"
        sudo "$@"
    fi
}

# as_postgres CMD...: run as the postgres OS user (peer auth on the local
# socket is the only access a fresh Debian cluster grants). Runs from / so
# the postgres user does not complain about an unreadable cwd, and drops the
# caller's libpq variables so they cannot redirect the connection.
as_postgres() {
    local -a clean=(env -u PGHOST -u PGHOSTADDR -u PGPORT -u PGUSER -u PGDATABASE
        -u PGPASSWORD -u PGSERVICE -u PGSERVICEFILE -u PGPASSFILE)
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u postgres -- "${clean[@]}" "$@")
    else
        command -v sudo >/dev/null 2>&1 || die "not root and no sudo: cannot run $*"
        (cd / && sudo -u postgres "${clean[@]}" "$@")
    fi
}

# take_lock FILE: hold an exclusive lock on FILE (fd 9) until the script
# exits, waiting at most 300 s. Anything started in the background while the
# lock is held must get "9>&-", or it would keep the lock after we exit.
take_lock() {
    command -v flock >/dev/null 2>&1 || return 0
    mkdir -p "$(dirname "$1")"
    exec 9>"$1"
    flock -w 300 9 || die "another process has held $1 for over 300s"
}

# wait_for [-n TRIES] [-d DELAY] CMD...: run CMD until it succeeds, at most
# TRIES times (default 60) with DELAY seconds between tries (default 0.5).
# Returns 0 as soon as CMD succeeds, 1 when the tries are used up.
wait_for() {
    local tries=60 delay=0.5 i
    while [ $# -gt 0 ]; do
        case "$1" in
            -n) tries="$2"; shift 2 ;;
            -d) delay="$2"; shift 2 ;;
            --) shift; break ;;
            *) break ;;
        esac
    done
    [ $# -gt 0 ] || die "wait_for: no command"
    for ((i = 1; i <= tries; i++)); do
        if "$@"; then
            return 0
        fi
        if [ "$i" -lt "$tries" ]; then
            sleep "$delay"
        fi
    done
    return 1
}

# port_open HOST PORT: true when something accepts TCP connections there.
# Uses bash's /dev/tcp (no extra package); timeout bounds a filtered port.
port_open() {
    # shellcheck disable=SC2016 # expanded by the inner bash, on purpose
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# pid_alive PIDFILE: true when PIDFILE holds the pid of a live process.
pid_alive() {
    local pid
    [ -s "$1" ] || return 1
    pid="$(cat "$1" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    ! _sluice_pid_gone "$pid"
}

# pid_cmdline_has PID STRING...: true when the process's command line holds
# every STRING. Guards against a recycled pid before we signal it. Without
# /proc (not Linux) it cannot check and answers true.
pid_cmdline_has() {
    local pid="$1" cmd s
    shift
    [ -r "/proc/$pid/cmdline" ] || return 0
    cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    for s in "$@"; do
        [[ "$cmd" == *"$s"* ]] || return 1
    done
}

# stop_pid PID GRACE_SECONDS: SIGTERM, wait up to GRACE_SECONDS, then SIGKILL.
stop_pid() {
    local pid="$1" grace="$2"
    kill -TERM "$pid" 2>/dev/null || return 0
    if wait_for -n "$((grace * 2))" -d 0.5 _sluice_pid_gone "$pid"; then
        return 0
    fi
    warn "pid $pid still alive after ${grace}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_for -n 20 -d 0.5 _sluice_pid_gone "$pid" || die "pid $pid survived SIGKILL"
}
# A zombie counts as gone: in a container, pid 1 may never reap it.
_sluice_pid_gone() {
    local state=""
    kill -0 "$1" 2>/dev/null || return 0
    if [ -r "/proc/$1/stat" ]; then
        # Field 3 of /proc/PID/stat, after the parenthesised command name.
        state="$(sed -e 's/^.*) //' -e 's/ .*//' "/proc/$1/stat" 2>/dev/null)" || true
    fi
    [ "$state" = Z ]
}
