#!/usr/bin/env bash
# Debian's prometheus package (the server and promtool) unpacked under
# $SLUICE_SOURCE_DIR/.run/tools/prometheus with apt-get download and dpkg-deb -x: nothing is
# installed and no daemon starts. Fetched once; later runs find it there. Used by
# tests/chart/check.sh (promtool) and, as the ctest fixture `prometheus`, by
# test_admin_prometheus (the server).
# shellcheck source=testlib.sh
. "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"

tools=$SLUICE_SOURCE_DIR/.run/tools
mkdir -p "$tools"
# One installer at a time (two build trees may run this at once).
exec 8> "$tools/.prometheus.lock"
flock 8
usr=$tools/prometheus/usr/bin
if [ ! -x "$usr/prometheus" ] || [ ! -x "$usr/promtool" ]; then
    rm -rf "$tools/prometheus" "$tools/deb"
    mkdir -p "$tools/deb"
    # apt-get download needs the package lists; a machine that never ran apt-get update has none.
    (cd "$tools/deb" && { apt-get download prometheus 2> /dev/null ||
        { apt-get update -qq && apt-get download prometheus; }; }) ||
        fail "cannot download Debian's prometheus package"
    dpkg-deb -x "$tools"/deb/prometheus_*.deb "$tools/prometheus"
    rm -rf "$tools/deb"
fi
"$usr/prometheus" --version 2>&1 | head -1
