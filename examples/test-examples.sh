#!/bin/bash
# test-examples.sh: the echo examples talk to each other and to `rndz`
#
# SPDX-License-Identifier: MIT
#
#   test-examples.sh ECHO RNDZ [PYTHON GJS]
#
# ECHO is the built echo.c, RNDZ the command line tool; PYTHON and GJS, if
# given, run echo.py and echo.js (GI_TYPELIB_PATH and LD_LIBRARY_PATH must
# point at the build tree). One C server on 127.0.0.1, port 0; every
# listener (C, Python, JavaScript, rndz) over UDP and TCP is reached by
# every connector, secure (TLS, DTLS: the default) and plain (--insecure).
# Secure, the connector must see the fingerprint the listener says it
# has, the listener prints its peers' fingerprints, and a connector that
# pins the listener's fingerprint gets through while one that pins
# another does not. Prints TAP.

set -u

echo_c=$1
rndz=$2
python=${3:-}
gjs=${4:-}
srcdir=$(cd "$(dirname "$0")" && pwd)

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null
  done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

impls=(c rndz)
[ -n "$python" ] && impls+=(py)
[ -n "$gjs" ] && impls+=(js)

# The examples are secure by default (TLS over TCP, DTLS over UDP) and
# plain with --insecure. The rndz tool is too once it has --insecure;
# before that it is plain only, and meets the examples only in plain mode.
rndz_secure=false
"$rndz" client --help 2>&1 | grep -q -- --insecure && rndz_secure=true

# run IMPL ARGS...: one example, as a command line. It replaces the
# shell it runs in (exec), so that $! of a background "listen" is the
# program itself and cleanup's kill reaches it.
run() {
  local impl=$1
  shift
  case $impl in
    c) exec "$echo_c" "$@" ;;
    py) exec "$python" "$srcdir/echo.py" "$@" ;;
    js) exec "$gjs" -m "$srcdir/echo.js" "$@" ;;
  esac
}

# rndz_options OPTIONS...: sets $options to OPTIONS without --insecure when
# the tool is plain only (and does not know it)
rndz_options() {
  options=()
  for option in "$@"; do
    [ "$option" = --insecure ] && [ $rndz_secure = false ] && continue
    options+=("$option")
  done
}

# listen IMPL ID SERVER [OPTIONS]: the rndz tool has options of its own
listen() {
  local impl=$1 id=$2 server=$3
  shift 3
  if [ "$impl" = rndz ]; then
    rndz_options "$@"
    exec "$rndz" client --id "$id" --server-addr "$server" "${options[@]}"
  else
    run "$impl" listen "$server" "$id" "$@"
  fi
}

connect() {
  local impl=$1 id=$2 server=$3 peer=$4 message=$5
  shift 5
  if [ "$impl" = rndz ]; then
    rndz_options "$@"
    "$rndz" client --id "$id" --server-addr "$server" --remote-peer "$peer" --message "$message" \
      "${options[@]}"
  else
    run "$impl" connect "$server" "$id" "$peer" "$message" "$@"
  fi
}

# wait_for FILE PATTERN: up to 10 s for a line in a background program's output
wait_for() {
  for _ in $(seq 100); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# A plan at the end: the count depends on the tool's options
n=0

ok() {
  n=$((n + 1))
  if [ "$1" = 0 ]; then
    echo "ok $n - $2"
  else
    echo "not ok $n - $2"
    [ -n "${3:-}" ] && sed 's/^/# /' "$3"
  fi
}

"$echo_c" server 127.0.0.1:0 >"$tmp/server.out" 2>&1 &
pids+=($!)
if wait_for "$tmp/server.out" '^Serving on port'; then
  ok 0 "C server on 127.0.0.1"
else
  ok 1 "C server on 127.0.0.1" "$tmp/server.out"
  echo "1..$n"
  exit 1
fi
server=127.0.0.1:$(sed -n 's/^Serving on port //p' "$tmp/server.out")

# What a listener's output says its fingerprint is (the examples and the
# tool alike)
own_fingerprint() {
  sed -n 's/^Fingerprint: \([0-9a-f]\{64\}\)$/\1/p' "$1"
}

# pin_tests IMPL ID OUT FINGERPRINT TRANSPORT FLAGS...: a connector that
# pins the listener's fingerprint reaches it; one that pins another
# fingerprint fails, says why, and gets no echo
pin_tests() {
  local impl=$1 id=$2 out=$3 fp=$4 transport=$5
  shift 5
  local message="pinned from $impl to $id" reply status
  reply=$(connect "$impl" "pin-$id" "$server" "$id" "$message" "$@" \
    --peer-fingerprint "$fp" 2>"$tmp/connect.err")
  status=$?
  echo "exit status $status, reply \"$reply\"" >>"$tmp/connect.err"
  [ $status = 0 ] && [ "$reply" = "$message" ]
  ok $? "$impl connector pins the $impl listener's fingerprint over $transport" "$tmp/connect.err"

  reply=$(connect "$impl" "wrong-$id" "$server" "$id" "$message" "$@" \
    --peer-fingerprint "$(printf '%064d' 0)" 2>"$tmp/connect.err")
  status=$?
  echo "exit status $status, reply \"$reply\"" >>"$tmp/connect.err"
  [ $status != 0 ] && [ -z "$reply" ] && grep -qi 'fingerprint\|identity' "$tmp/connect.err"
  ok $? "$impl connector with a wrong pin is refused over $transport" "$tmp/connect.err"
}

# one_listener MODE IMPL TRANSPORT: a listener, reached by every connector
one_listener() {
  local mode=$1 listener=$2 transport=$3 connector flag=() id out fp
  local identity=$tmp/identity-$listener.pem
  [ "$transport" = tcp ] && flag+=(--tcp)
  [ "$mode" = plain ] && flag+=(--insecure)
  id="$listener-$transport-$mode"
  out="$tmp/listen-$id.out"

  # Secure, each implementation's listeners keep one identity in a file:
  # the UDP one creates it, the TCP one loads it
  if [ "$mode" = secure ]; then
    listen "$listener" "$id" "$server" "${flag[@]}" --identity "$identity" >"$out" 2>&1 &
  else
    listen "$listener" "$id" "$server" "${flag[@]}" >"$out" 2>&1 &
  fi
  pids+=($!)
  fp=
  if ! wait_for "$out" '^Registered as'; then
    ok 1 "$listener listener over $transport, $mode" "$out"
    return
  fi
  if [ "$mode" = secure ]; then
    wait_for "$out" '^Fingerprint: '
    fp=$(own_fingerprint "$out")
    [ -n "$fp" ]
    ok $? "$listener listener over $transport, $mode, prints its fingerprint" "$out"
    if [ "$transport" = udp ]; then
      [ "$(stat -c %a "$identity")" = 600 ] && grep -q 'PRIVATE KEY' "$identity"
      ok $? "$listener listener created its identity file, mode 0600" "$out"
      echo "$fp" >"$identity.fp"
    else
      [ "$fp" = "$(cat "$identity.fp")" ]
      ok $? "$listener listener loaded the same identity from its file" "$out"
    fi
  else
    ok 0 "$listener listener over $transport, $mode"
  fi

  for connector in "${impls[@]}"; do
    [ "$mode" = secure ] && [ "$connector" = rndz ] && [ $rndz_secure = false ] && continue
    local message="from $connector to $id" reply status seen=
    reply=$(connect "$connector" "to-$id" "$server" "$id" "$message" "${flag[@]}" 2>"$tmp/connect.err")
    status=$?
    # Every connector tells which fingerprint the listener proved, on
    # standard error: the examples as 'Connected to "ID", fingerprint FP',
    # the tool as 'rndz: Peer "ID" has the fingerprint FP'
    if [ -n "$fp" ]; then
      seen=$(sed -n 's/^.* fingerprint \([0-9a-f]\{64\}\)$/\1/p' "$tmp/connect.err")
    fi
    echo "exit status $status, reply \"$reply\", fingerprint \"$seen\" (\"$fp\" expected)" >>"$tmp/connect.err"
    if [ $status = 0 ] && [ "$reply" = "$message" ] &&
       [ "$seen" = "$fp" ]; then
      ok 0 "$connector connector reaches $listener listener over $transport, $mode"
    else
      ok 1 "$connector connector reaches $listener listener over $transport, $mode" "$tmp/connect.err"
    fi
  done

  # The listener saw each secure connector's fingerprint
  if [ -n "$fp" ]; then
    grep -q '[Pp]eer .* fingerprint [0-9a-f]\{64\}$' "$out"
    ok $? "$listener listener prints its peers' fingerprints over $transport" "$out"
    pin_tests "$listener" "$id" "$out" "$fp" "$transport" "${flag[@]}"
  fi
}

# pinned_listener IMPL: a UDP listener that lets in only the fingerprint of
# IMPL's identity file (made by its first listener): a connector with that
# file gets its echo, one with another identity none
pinned_listener() {
  local impl=$1 identity=$tmp/identity-$1.pem id=$1-pinned out reply status
  local message="from a friend of $1-pinned"
  out="$tmp/listen-$id.out"
  listen "$impl" "$id" "$server" --peer-fingerprint "$(cat "$identity.fp")" >"$out" 2>&1 &
  pids+=($!)
  wait_for "$out" '^Fingerprint: '

  reply=$(connect "$impl" "friend-$id" "$server" "$id" "$message" --identity "$identity" \
    2>"$tmp/connect.err")
  status=$?
  echo "exit status $status, reply \"$reply\"" >>"$tmp/connect.err"
  [ $status = 0 ] && [ "$reply" = "$message" ]
  ok $? "$impl listener pinned to a fingerprint lets in the peer that has it" "$tmp/connect.err" "$out"

  reply=$(connect "$impl" "stranger-$id" "$server" "$id" "$message" 2>"$tmp/connect.err")
  status=$?
  echo "exit status $status, reply \"$reply\"" >>"$tmp/connect.err"
  [ $status != 0 ] && [ -z "$reply" ] && ! grep -q 'stranger' "$out"
  ok $? "$impl listener pinned to a fingerprint keeps others out" "$tmp/connect.err" "$out"
}

# A library built without GnuTLS has the secure calls, failing: plain only
modes=(secure plain)
[ "${RNDZ_EXAMPLES_TLS:-1}" = 0 ] && modes=(plain)

for mode in "${modes[@]}"; do
  for listener in "${impls[@]}"; do
    [ "$mode" = secure ] && [ "$listener" = rndz ] && [ $rndz_secure = false ] && continue
    for transport in udp tcp; do
      one_listener "$mode" "$listener" "$transport"
    done
    [ "$mode" = secure ] && pinned_listener "$listener"
  done
done

echo "1..$n"
