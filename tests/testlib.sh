# shellcheck shell=bash
# Shared by the shell tests that ctest runs: strict mode, the build's binaries, a scratch
# directory removed on exit, and `fail`. Source it first thing.
set -euo pipefail
: "${SLUICE_SOURCE_DIR:?run through ctest}" "${SLUICE_BINARY_DIR:?run through ctest}"
bin="$SLUICE_BINARY_DIR/bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() {
    echo "FAIL: $*"
    exit 1
}
