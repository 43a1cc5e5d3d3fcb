#!/bin/bash
# demo.sh: build rndz-glib and run a rendezvous on this machine
#
# SPDX-License-Identifier: MIT
#
# Installs the dependencies, builds in _build (or $BUILD_DIR), then starts a
# rendezvous server on a free loopback port and two listening peers, one
# on UDP and one on TCP, and has two more peers reach them through the
# server by id and exchange a message with them: a real UDP and a real TCP
# connection made by hole punching, on 127.0.0.1, encrypted (DTLS over
# UDP, TLS over TCP, as `rndz client` does by default). Each peer has an
# identity file; the connectors pin the listener's fingerprint, and the
# script checks that each side saw the other's.
#
# Every wait is bounded; an EXIT trap stops whatever was started.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-_build}
TIMEOUT=${RNDZ_DEMO_TIMEOUT:-10}

cd "$ROOT"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rndz-demo.XXXXXX")
PIDS=()
NAMES=()
STEP=0
STEPS=8

step ()
{
  STEP=$((STEP + 1))
  printf '\n==> [%d/%d] %s\n' "$STEP" "$STEPS" "$*"
}

fail ()
{
  printf '\nFAILED: %s\n' "$*" >&2
  for log in "$WORK"/*.err; do
    [ -s "$log" ] || continue
    printf -- '--- %s ---\n' "$(basename "$log")" >&2
    cat "$log" >&2
  done
  exit 1
}

cleanup ()
{
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    # Bounded: whatever does not stop within 5 s is killed
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME COMMAND...: runs COMMAND in the background, stdout and stderr
# to $WORK/NAME.out and .err. A timeout bounds it even if this script is
# killed without its trap running.
start ()
{
  local name=$1
  shift
  timeout 600 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  PIDS+=("$!")
  NAMES+=("$name")
}

# wait_line NAME: waits up to $TIMEOUT seconds for the first line that
# NAME prints, and prints it
wait_line ()
{
  local name=$1
  if ! timeout "$TIMEOUT" bash -c 'until [ -s "$1" ] && grep -q . "$1"; do sleep 0.05; done' _ "$WORK/$name.out"; then
    fail "$name printed nothing within $TIMEOUT seconds"
  fi
  head -n 1 "$WORK/$name.out"
}

# The port is the number that ends the line, whatever the language
port_of () { sed -n '1s/.*[^0-9]\([0-9]\{1,5\}\)$/\1/p' <<<"$1"; }

# wait_second_line NAME: waits up to $TIMEOUT seconds for the second line
# that NAME prints (a listener's "Fingerprint: …"), and prints it
wait_second_line ()
{
  local name=$1
  if ! timeout "$TIMEOUT" bash -c 'until [ "$(grep -c . "$1")" -ge 2 ]; do sleep 0.05; done' _ "$WORK/$name.out"; then
    fail "$name printed no fingerprint within $TIMEOUT seconds"
  fi
  sed -n 2p "$WORK/$name.out"
}

# A fingerprint is the last word of its line, whatever the language
last_word () { awk '{ print $NF }' <<<"$1"; }

# saw_peer NAME PEER FINGERPRINT: checks that NAME said, on standard
# error, that PEER has FINGERPRINT, and prints that line
saw_peer ()
{
  local name=$1 peer=$2 fingerprint=$3 line
  line=$(grep -F "$fingerprint" "$WORK/$name.err" | grep -F "$peer" | grep -v -- '-DEBUG' | head -n 1) ||
    fail "$name did not print the fingerprint $fingerprint of $peer"
  echo "$name: ${line#*: }"
}

# listener NAME [--tcp]: starts a listening peer with the identity file
# $WORK/NAME.pem, prints its two lines, sets FINGERPRINT, and checks it
# against `rndz fingerprint`
listener ()
{
  local name=$1 line
  shift
  echo "\$ rndz client --id $name --server-addr 127.0.0.1:$SERVER_PORT --identity $name.pem${*:+ $*}"
  start "$name" "$RNDZ" client --id "$name" --server-addr "127.0.0.1:$SERVER_PORT" \
    --identity "$WORK/$name.pem" --timeout "$TIMEOUT" --verbose "$@"
  line=$(wait_line "$name")
  echo "$name: $line"
  line=$(wait_second_line "$name")
  echo "$name: $line"
  FINGERPRINT=$(last_word "$line")
  [[ $FINGERPRINT =~ ^[0-9a-f]{64}$ ]] || fail "no fingerprint in the line: $line"
  echo "\$ rndz fingerprint $name.pem"
  line=$("$RNDZ" fingerprint "$WORK/$name.pem") || fail "rndz fingerprint $name.pem failed"
  echo "$line"
  [ "$line" = "$FINGERPRINT" ] || fail "$name printed $FINGERPRINT, but its file has $line"
}

# exchange NAME PEER PEER-FINGERPRINT MESSAGE [--tcp]: reaches PEER,
# pinned to PEER-FINGERPRINT, with the identity file $WORK/NAME.pem, sends
# MESSAGE, checks that the reply is its echo and that each side printed
# the other's fingerprint
exchange ()
{
  local name=$1 peer=$2 peer_fingerprint=$3 message=$4
  shift 4
  local reply status=0 fingerprint
  echo "\$ rndz client --id $name --server-addr 127.0.0.1:$SERVER_PORT --remote-peer $peer --message '$message' --identity $name.pem --peer-fingerprint ${peer_fingerprint:0:16}…${*:+ $*}"
  reply=$(timeout $((TIMEOUT + 5)) "$RNDZ" client --id "$name" --server-addr "127.0.0.1:$SERVER_PORT" \
            --remote-peer "$peer" --message "$message" --timeout "$TIMEOUT" \
            --identity "$WORK/$name.pem" --peer-fingerprint "$peer_fingerprint" "$@" \
            2>"$WORK/$name.err") || status=$?
  [ "$status" = 0 ] || fail "$name could not exchange a message with $peer (exit status $status)"
  echo "reply: $reply"
  [ "$reply" = "$message" ] || fail "$name got “$reply” back instead of “$message”"

  saw_peer "$name" "$peer" "$peer_fingerprint"
  fingerprint=$("$RNDZ" fingerprint "$WORK/$name.pem") || fail "rndz fingerprint $name.pem failed"
  saw_peer "$peer" "$name" "$fingerprint"
}

step "Installing the build and test dependencies"
bash "$ROOT/scripts/install-deps.sh"

step "Building in $BUILD_DIR"
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  meson setup "$BUILD_DIR"
else
  # The demo needs both halves of the library; an unchanged configuration
  # is left alone, so nothing is regenerated
  off=$(meson introspect --buildoptions "$BUILD_DIR" | /usr/bin/python3 -c '
import json, sys
options = {o["name"]: o["value"] for o in json.load(sys.stdin)}
print(" ".join(n for n in ("client", "server") if options.get(n) is not True))
')
  if [ -n "$off" ]; then
    meson configure "$BUILD_DIR" -Dclient=true -Dserver=true
  fi
fi
ninja -C "$BUILD_DIR"
RNDZ=$ROOT/$BUILD_DIR/tools/rndz
[ -x "$RNDZ" ] || fail "no rndz program at $RNDZ"

step "Starting a rendezvous server on a free port of 127.0.0.1"
echo "\$ rndz server --listen-addr 127.0.0.1:0"
start server "$RNDZ" server --listen-addr 127.0.0.1:0
line=$(wait_line server)
echo "server: $line"
SERVER_PORT=$(port_of "$line")
[ -n "$SERVER_PORT" ] || fail "no port in the server's first line: $line"

step "Starting a UDP peer “demo-udp” that registers and echoes, over DTLS"
listener demo-udp
UDP_FINGERPRINT=$FINGERPRINT

step "Starting a TCP peer “demo-tcp” that registers and echoes, over TLS"
listener demo-tcp --tcp
TCP_FINGERPRINT=$FINGERPRINT

step "Reaching “demo-udp” over UDP through the server, encrypted (DTLS)"
exchange demo-udp-client demo-udp "$UDP_FINGERPRINT" "hello over UDP"

step "Reaching “demo-tcp” over TCP through the server, encrypted (TLS)"
exchange demo-tcp-client demo-tcp "$TCP_FINGERPRINT" "hello over TCP" --tcp

step "Stopping the peers, then the server (SIGTERM)"
for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
  pid=${PIDS[$i]}
  kill -TERM "$pid" 2>/dev/null || true
  status=0
  timeout "$TIMEOUT" bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 0.05; done' _ "$pid" ||
    fail "${NAMES[$i]} did not stop within $TIMEOUT seconds"
  wait "$pid" || status=$?
  [ "$status" = 0 ] || fail "${NAMES[$i]} exited with status $status"
  echo "${NAMES[$i]}: stopped"
done
PIDS=()

for name in demo-udp demo-tcp; do
  echo
  echo "What $name saw (--verbose):"
  grep -v -- '-DEBUG' "$WORK/$name.err" | sed 's/^/  /' || true
done

echo
echo "Demo passed: a UDP and a TCP connection made through the rendezvous server, encrypted"
echo "(DTLS and TLS) between peers that checked each other's fingerprint, each echoed a message."
