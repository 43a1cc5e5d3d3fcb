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
# every connector. Prints TAP.

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

# listen IMPL ID SERVER [--tcp]: the rndz tool has options of its own
listen() {
  local impl=$1 id=$2 server=$3
  shift 3
  if [ "$impl" = rndz ]; then
    exec "$rndz" client --id "$id" --server-addr "$server" "$@"
  else
    run "$impl" listen "$server" "$id" "$@"
  fi
}

connect() {
  local impl=$1 id=$2 server=$3 peer=$4 message=$5
  shift 5
  if [ "$impl" = rndz ]; then
    "$rndz" client --id "$id" --server-addr "$server" --remote-peer "$peer" --message "$message" "$@"
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

n_tests=$((1 + ${#impls[@]} * 2 * (1 + ${#impls[@]})))
echo "1..$n_tests"
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
  exit 1
fi
server=127.0.0.1:$(sed -n 's/^Serving on port //p' "$tmp/server.out")

for listener in "${impls[@]}"; do
  for transport in udp tcp; do
    flag=()
    [ $transport = tcp ] && flag=(--tcp)
    id="$listener-$transport"
    out="$tmp/listen-$id.out"

    listen "$listener" "$id" "$server" "${flag[@]}" >"$out" 2>&1 &
    pids+=($!)
    if wait_for "$out" '^Registered as'; then
      ok 0 "$listener listener over $transport"
    else
      ok 1 "$listener listener over $transport" "$out"
      for _ in "${impls[@]}"; do ok 1 "skipped: no listener"; done
      continue
    fi

    for connector in "${impls[@]}"; do
      message="from $connector to $id"
      reply=$(connect "$connector" "to-$id" "$server" "$id" "$message" "${flag[@]}" 2>"$tmp/connect.err")
      status=$?
      if [ $status = 0 ] && [ "$reply" = "$message" ]; then
        ok 0 "$connector connector reaches $listener listener over $transport"
      else
        echo "exit status $status, reply \"$reply\"" >>"$tmp/connect.err"
        ok 1 "$connector connector reaches $listener listener over $transport" "$tmp/connect.err"
      fi
    done
  done
done
