#!/usr/bin/env bash
# sluicectl as an operator drives it, with no service running: every command's --help exits 0
# with its usage on stdout; -o takes json or table only; the completion scripts parse and
# complete the commands; against a broker that refuses connections, `lag -o json` prints one
# JSON document on stdout and librdkafka's log records on stderr; with --timeout 1s, every
# command against a broker or a database that accepts connections and never answers ends with
# exit 1 and the reason on stderr (that it ends is ctest's TIMEOUT to check: no timing here).
# shellcheck source=../testlib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../testlib.sh"
ctl="$bin/sluicectl"
passed=0

# ---- help: the commands are the rows of `sluicectl --help` ----
"$ctl" --help > "$work/help" 2> "$work/err" || fail "--help: exit $?"
[ ! -s "$work/err" ] || fail "--help wrote to stderr"
sed -n 's/^  \([a-z][a-z]*\)\( [a-z][a-z]*\)\{0,1\}\( .*\)\{0,1\}$/\1\2/p' "$work/help" > "$work/commands"
for want in "config check" "topics create" lag "schema check" "db migrate" "reconcile report" \
    replay "events show" "dlq list" "dlq show" "dlq replay" "dlq discard" completion; do
    grep -qx "$want" "$work/commands" || fail "'$want' missing from --help: $(cat "$work/help")"
done
while read -r -a words; do
    for help in --help -h; do
        "$ctl" "${words[@]}" "$help" > "$work/out" 2> "$work/err" ||
            fail "${words[*]} $help: exit $? $(cat "$work/err")"
        grep -q "^usage: sluicectl .*${words[*]}" "$work/out" || fail "${words[*]} $help: $(cat "$work/out")"
        [ ! -s "$work/err" ] || fail "${words[*]} $help wrote to stderr: $(cat "$work/err")"
    done
    # The option after the command's other arguments is honoured too.
    "$ctl" "${words[@]}" some-operand --help > /dev/null || fail "${words[*]} OPERAND --help: exit $?"
    passed=$((passed + 1))
done < "$work/commands"
for group in config topics schema db reconcile events dlq; do
    "$ctl" "$group" --help > "$work/out" || fail "$group --help: exit $?"
    grep -q "^  $group " "$work/out" || fail "$group --help: $(cat "$work/out")"
done
set +e
"$ctl" dlq > /dev/null 2> "$work/err"; rc=$?
set -e
[ "$rc" = 2 ] && grep -q "^  dlq list" "$work/err" || fail "dlq alone: exit $rc"
set +e
"$ctl" dlq lsit > /dev/null 2> "$work/err"; rc=$?
set -e
[ "$rc" = 2 ] && grep -q "^sluicectl dlq: unknown subcommand 'lsit'" "$work/err" || fail "dlq lsit: exit $rc"
set +e
"$ctl" lga > /dev/null 2> "$work/err"; rc=$?
set -e
[ "$rc" = 2 ] && grep -q "^sluicectl: unknown command 'lga'" "$work/err" || fail "lga: exit $rc"
passed=$((passed + 1))

# ---- output formats and global options ----
expect_usage() { # args...: exit 2, nothing on stdout, a message on stderr
    set +e
    "$ctl" "$@" > "$work/out" 2> "$work/err"; local rc=$?
    set -e
    [ "$rc" = 2 ] || fail "$*: exit $rc, expected 2"
    [ ! -s "$work/out" ] || fail "$*: stdout: $(cat "$work/out")"
    [ -s "$work/err" ] || fail "$*: no message"
}
expect_usage lag -o yaml
grep -q "use -o json or -o table" "$work/err" || fail "-o yaml: $(cat "$work/err")"
expect_usage dlq list --output=xml
expect_usage events show some-id -o
expect_usage reconcile report -oyaml
expect_usage --timeout forever lag
grep -q "timeout 'forever'" "$work/err" || fail "--timeout forever: $(cat "$work/err")"
expect_usage --timeout 0s lag
passed=$((passed + 1))

# ---- completion ----
"$ctl" completion bash > "$work/completion.bash" || fail "completion bash: exit $?"
bash -n "$work/completion.bash" || fail "completion bash: not bash"
complete_words() { # words typed so far (the last one being completed) -> the candidates
    bash -c '. "$1"; shift; COMP_WORDS=(sluicectl "$@"); COMP_CWORD=$#
        _sluicectl; printf "%s\n" "${COMPREPLY[@]}"' _ "$work/completion.bash" "$@" | sort | xargs
}
bash -c '. "$1"; complete -p sluicectl' _ "$work/completion.bash" | grep -q -- "-F _sluicectl sluicectl$" ||
    fail "complete -p sluicectl"
[ "$(complete_words dl)" = dlq ] || fail "dl: $(complete_words dl)"
[ "$(complete_words --config f.yaml dlq "")" = "discard list replay show" ] ||
    fail "dlq: $(complete_words --config f.yaml dlq "")"
[ "$(complete_words lag -o "")" = "json table" ] || fail "lag -o: $(complete_words lag -o "")"
[ "$(complete_words dlq list --status "")" = "all discarded new replayed" ] || fail "--status"
[ "$(complete_words completion "")" = "--help bash zsh" ] || fail "completion: $(complete_words completion "")"
complete_words lag --s | grep -qx -- --stage || fail "lag --s: $(complete_words lag --s)"
# Every first word of --help completes from nothing.
for first in $(cut -d' ' -f1 "$work/commands" | sort -u); do
    complete_words "" | tr ' ' '\n' | grep -qx "$first" || fail "'$first' does not complete"
done
"$ctl" completion zsh > "$work/completion.zsh" || fail "completion zsh: exit $?"
head -1 "$work/completion.zsh" | grep -qx "#compdef sluicectl" || fail "completion zsh header"
if command -v zsh > /dev/null; then
    zsh -n "$work/completion.zsh" || fail "completion zsh: not zsh"
    zsh -f -c 'autoload -U compinit && compinit -u -d "$2/zcompdump"; . "$1"; print -r -- "${_comps[sluicectl]}"' \
        _ "$work/completion.zsh" "$work" | grep -q "_sluicectl" || fail "completion zsh: not registered"
fi
expect_usage completion fish
passed=$((passed + 1))

# ---- logs on stderr: a broker that refuses connections ----
cat > "$work/refused.yaml" <<YAML
kafka: { brokers: "127.0.0.1:9", topic_prefix: "sluice-test-cli." }
destinations:
  sink: { url: "http://127.0.0.1:9/never" }
YAML
set +e
"$ctl" --timeout 2s --config "$work/refused.yaml" lag -o json > "$work/out" 2> "$work/err"; rc=$?
set -e
[ "$rc" = 1 ] || fail "lag, broker refused: exit $rc"
# Nothing, or one JSON document, on stdout; no log record there.
[ "$(jq -s length "$work/out")" -le 1 ] || fail "lag -o json stdout: $(cat "$work/out")"
! grep -q '"level":' "$work/out" || fail "a log record on stdout: $(cat "$work/out")"
grep -q '"component":"sluicectl".*librdkafka' "$work/err" || fail "no librdkafka log on stderr: $(cat "$work/err")"
grep -q "^sluicectl lag: topic sluice-test-cli.ingress: " "$work/err" || fail "lag error: $(cat "$work/err")"
passed=$((passed + 1))

# ---- --timeout: a broker and a database that accept connections and never answer ----
python3 -c '
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
print(s.getsockname()[1], flush=True)
held = []
while True:
    held.append(s.accept()[0])
' > "$work/port" &
silent=$!
trap 'kill "$silent" 2> /dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")
[ -n "$port" ] || fail "the silent listener did not start"
cat > "$work/silent.yaml" <<YAML
kafka: { brokers: "127.0.0.1:$port", topic_prefix: "sluice-test-cli." }
postgres: { dsn: "postgresql://sluice@127.0.0.1:$port/sluice" }
destinations:
  sink: { url: "http://127.0.0.1:9/never" }
YAML
expect_failure() { # pattern args...: exit 1, the pattern on stderr, nothing but JSON on stdout
    local pattern=$1 rc
    shift
    set +e
    "$ctl" --timeout 1s --config "$work/silent.yaml" "$@" > "$work/out" 2> "$work/err"; rc=$?
    set -e
    [ "$rc" = 1 ] || fail "$*: exit $rc, expected 1: $(cat "$work/err")"
    grep -q -- "$pattern" "$work/err" || fail "$*: stderr: $(cat "$work/err")"
    [ "$(jq -s length "$work/out" 2> /dev/null)" = 0 ] || [ "$(jq -s length "$work/out")" = 1 ] ||
        fail "$*: stdout: $(cat "$work/out")"
    passed=$((passed + 1))
}
expect_failure "^sluicectl lag: topic .*Kafka did not answer" lag -o json
expect_failure "^sluicectl replay: " replay --stage validate --from -1h --dry-run
expect_failure "^sluicectl topics create: " topics create
expect_failure "^sluicectl dlq list: .*cannot connect" dlq list -o json
expect_failure "^sluicectl dlq show: .*cannot connect" dlq show 1 -o json
expect_failure "^sluicectl events show: .*cannot connect" events show some-event -o json
expect_failure "^sluicectl reconcile report: .*cannot connect" reconcile report -o json
expect_failure "^sluicectl db partitions: .*cannot connect" db partitions
echo "$passed passed, 0 failed"
