#!/bin/bash
# back-to-back.sh: `rndz client --remote-peer` run again and again, at once
#
# SPDX-License-Identifier: MIT
#
# The acceptance check of issue 14: N back-to-back
# `rndz client --remote-peer` runs against one listener, at default
# settings, over UDP and over TCP; none may fail, and none may take longer
# than the retry-after the server gave it plus 1 s (1 s when it was given
# none).
#
# For each transport it starts `rndz server --listen-addr 127.0.0.1:0`
# (default limits: the request rate is not raised) and one listener,
# `rndz client --id alice --server-addr … [--tcp]`, then runs
#
#   rndz client --id bobK --server-addr … --remote-peer alice [--tcp] --message hi
#
# for K = 1 … N, each as soon as the one before exited, without a pause.
# Each run is timed (wall clock, from the fork to the exit, so process
# start-up is included, as in bench-cli), its exit status and standard
# error kept. It prints, per transport: the runs, the failures with each
# distinct error message and its count, min/median/p99/max, the runs
# over 100 ms, over 1 s and over their retry-after + 1 s, how many runs'
# standard error mentions a rate limit or a retry, and the retry-after
# values found there (a "retry":N field of a -v debug line, or "try again
# in N ms" / "retry after N ms|s"), then one summary line per transport:
#
#   udp: 1000 runs, 0 failed, median 4.1 ms, max 812 ms
#
# and a TARGET line per transport (MET or MISSED).
#
#   back-to-back.sh [-n N] [--udp|--tcp] [--keep DIR] [--check] [-- OPTION…]
#
#   -n N        runs per transport (default 1000)
#   --udp       UDP only; --tcp: TCP only (default: both, UDP first)
#   --keep DIR  keep the per-run records and every standard error in DIR
#   --check     exit 1 if a target is missed (otherwise exit 0 whatever
#               the figures, like the other benchmarks)
#   -- OPTION…  passed to every connector, e.g. `-- --timeout 3` or `-- -v`
#
# It builds nothing: the program is $RNDZ_TOOL, or _build/tools/rndz of
# the source tree. Everything is on 127.0.0.1. Each connector is bounded
# by its --timeout (10 s unless given after --), and a watchdog kills one
# that is still running 5 s after that; every wait for the server and the
# listener is bounded; an EXIT trap stops whatever was started.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RNDZ=${RNDZ_TOOL:-$ROOT/_build/tools/rndz}
N=1000
TRANSPORTS=(udp tcp)
KEEP=
CHECK=0
EXTRA=()
START_TIMEOUT=10

usage ()
{
  local status=${1:-0}
  if (( status == 0 )); then
    sed -n '/^#   back-to-back.sh/,/^#   -- OPTION/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
  else
    sed -n '/^#   back-to-back.sh/,/^#   -- OPTION/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
  fi
  exit "$status"
}

while [ $# -gt 0 ]; do
  case $1 in
    -n) [ $# -ge 2 ] || usage 2; N=$2; shift 2 ;;
    -n*) N=${1#-n}; shift ;;
    --udp) TRANSPORTS=(udp); shift ;;
    --tcp) TRANSPORTS=(tcp); shift ;;
    --keep) [ $# -ge 2 ] || usage 2; KEEP=$2; shift 2 ;;
    --check) CHECK=1; shift ;;
    -h|--help) usage 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) printf 'back-to-back.sh: unknown option %s\n' "$1" >&2; usage 2 ;;
  esac
done
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "back-to-back.sh: -n takes a positive number" >&2; exit 2; }
[ -x "$RNDZ" ] || { echo "back-to-back.sh: no program $RNDZ (set RNDZ_TOOL)" >&2; exit 2; }

# The connectors' --timeout, for the watchdog and the time budget
CONN_TIMEOUT=10
for ((i = 0; i < ${#EXTRA[@]}; i++)); do
  case ${EXTRA[i]} in
    --timeout=*) CONN_TIMEOUT=${EXTRA[i]#--timeout=} ;;
    --timeout) CONN_TIMEOUT=${EXTRA[i+1]:-10} ;;
  esac
done
[[ $CONN_TIMEOUT =~ ^[0-9]+$ ]] || CONN_TIMEOUT=10

# The messages parsed below are the untranslated ones
export LC_ALL=C.UTF-8
unset RNDZ_KEY RNDZ_SECRET

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rndz-b2b.XXXXXX")
PIDS=()
WATCHDOG=
CURRENT=

cleanup ()
{
  local pid
  stop_watchdog
  [ -n "$CURRENT" ] && kill -KILL "$CURRENT" 2>/dev/null || true
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 30); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
  if [ -z "$KEEP" ]; then
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "$KEEP" ]; then
  mkdir -p "$KEEP"
  rm -rf "$WORK"
  WORK=$(cd "$KEEP" && pwd)
fi

now_us ()
{
  local t=$EPOCHREALTIME
  REPLY=$(( 10#${t%.*} * 1000000 + 10#${t#*.} ))
}

# start NAME SECONDS COMMAND…: COMMAND in the background, its output in
# $WORK/NAME.out and .err; `timeout` bounds it even if this script is
# killed without its trap running
start ()
{
  local name=$1 seconds=$2
  shift 2
  timeout "$seconds" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  PIDS+=("$!")
}

# wait_line NAME PATTERN: waits up to START_TIMEOUT s for a line of
# NAME's output that matches PATTERN, and leaves it in REPLY
wait_line ()
{
  local name=$1 pattern=$2 line
  for _ in $(seq $((START_TIMEOUT * 20))); do
    line=$(grep -m1 -E "$pattern" "$WORK/$name.out" 2>/dev/null || true)
    if [ -n "$line" ]; then
      REPLY=$line
      return 0
    fi
    sleep 0.05
  done
  printf 'back-to-back.sh: %s did not print /%s/ within %d s\n' \
    "$name" "$pattern" "$START_TIMEOUT" >&2
  cat "$WORK/$name.err" >&2 || true
  exit 1
}

# The watchdog kills the connector named in $WORK/current ("PID
# DEADLINE_US") once its deadline is past. Forks nothing in the loop of
# the runs, so that the timing is only the connector's.
watchdog ()
{
  local pid deadline t
  while sleep 0.5; do
    read -r pid deadline <"$WORK/current" 2>/dev/null || continue
    [ -n "${pid:-}" ] || continue
    t=$EPOCHREALTIME
    if (( 10#${t%.*} * 1000000 + 10#${t#*.} > deadline )); then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

stop_watchdog ()
{
  [ -n "$WATCHDOG" ] || return 0
  # Its sleep too, which would otherwise outlive it by up to 0.5 s
  pkill -KILL -P "$WATCHDOG" 2>/dev/null || true
  kill -KILL "$WATCHDOG" 2>/dev/null || true
  wait "$WATCHDOG" 2>/dev/null || true
  WATCHDOG=
}

# retry_after_ms TEXT: the largest retry-after in TEXT, in ms, in REPLY
# (0 if none). Forms: "retry":250 (a -v debug line with the error
# message), "try again in 250 ms", "retry after 250 ms" or "… 2 s".
retry_after_ms ()
{
  local text=$1 v unit frac best=0
  local re='("retry" *: *([0-9]+))|([Tt]ry again in|[Rr]etry[- ][Aa]fter|[Rr]etry in)[^0-9]{0,4}([0-9]+)(\.([0-9]+))? *(ms|s|seconds?)?'
  while [[ $text =~ $re ]]; do
    if [ -n "${BASH_REMATCH[2]}" ]; then
      v=${BASH_REMATCH[2]}
    else
      v=$(( 10#${BASH_REMATCH[4]} ))
      unit=${BASH_REMATCH[7]}
      if [ "$unit" != ms ] && [ -n "$unit" ]; then
        # Seconds, with up to three decimals
        frac=${BASH_REMATCH[6]}000
        v=$(( v * 1000 + 10#${frac:0:3} ))
      fi
    fi
    (( v > best )) && best=$v
    text=${text#*"${BASH_REMATCH[0]}"}
  done
  REPLY=$best
}

# run_phase TRANSPORT: one server, one listener, N connectors; one line
# per run in $WORK/TRANSPORT.runs: K, µs, exit status, retry-after ms,
# 1 if stderr mentions a rate limit or a retry, the error message
run_phase ()
{
  local transport=$1 tflag=() addr k t0 t1 status err retry first text
  local limited limit_re='[Ll]imit|[Rr]etry|[Tt]ry again'
  local runs=$WORK/$transport.runs budget
  [ "$transport" = tcp ] && tflag=(--tcp)
  budget=$(( N * (CONN_TIMEOUT + 6) + 60 ))

  start "server-$transport" "$budget" "$RNDZ" server --listen-addr 127.0.0.1:0
  wait_line "server-$transport" '[0-9]+$'
  addr=127.0.0.1:${REPLY##*:}
  start "alice-$transport" "$budget" "$RNDZ" client --id alice \
    --server-addr "$addr" "${tflag[@]}"
  wait_line "alice-$transport" 'alice'

  mkdir -p "$WORK/$transport.err"
  : >"$runs"
  : >"$WORK/current"
  watchdog &
  WATCHDOG=$!
  printf '%s: server %s, listener alice, %d runs…\n' "$transport" "$addr" "$N"

  for ((k = 1; k <= N; k++)); do
    err=$WORK/$transport.err/$k
    now_us; t0=$REPLY
    "$RNDZ" client --id "bob$k" --server-addr "$addr" --remote-peer alice \
      "${tflag[@]}" --message hi "${EXTRA[@]}" >/dev/null 2>"$err" &
    CURRENT=$!
    echo "$CURRENT $(( t0 + (CONN_TIMEOUT + 5) * 1000000 ))" >"$WORK/current"
    status=0
    wait "$CURRENT" 2>/dev/null || status=$?
    now_us; t1=$REPLY
    CURRENT=
    : >"$WORK/current"
    text=$(<"$err")
    retry_after_ms "$text"; retry=$REPLY
    limited=0
    [[ $text =~ $limit_re ]] && limited=1
    first=
    if (( status != 0 )); then
      if (( status == 137 )); then
        first="killed by the watchdog"
      elif [ -s "$err" ]; then
        # The message itself, not -v's debug lines
        first=$(grep -v -E '^(\(|\*\* \(|[A-Za-z-]+-DEBUG|\[)' "$err" | tail -n 1 || true)
        [ -n "$first" ] || first=$(tail -n 1 "$err")
      else
        first="(exit status $status, nothing on stderr)"
      fi
    fi
    printf '%d\t%d\t%d\t%d\t%d\t%s\n' "$k" $(( t1 - t0 )) "$status" "$retry" \
      "$limited" "$first" >>"$runs"
    if (( k % 100 == 0 )); then
      printf '  %d runs\n' "$k"
    fi
  done

  stop_watchdog
  # Stop this phase's server and listener before the next phase
  cleanup_phase
}

cleanup_phase ()
{
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 30); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}

# report TRANSPORT: the figures of $WORK/TRANSPORT.runs; the summary line
# goes to $WORK/summary, MET or MISSED to $WORK/TRANSPORT.result
report ()
{
  local transport=$1 runs=$WORK/$1.runs
  printf '\n== %s ==\n' "$transport"
  # mawk has no asort(): the times and the retry-after values come sorted
  cut -f 2 "$runs" | sort -n >"$WORK/$transport.times"
  awk -F '\t' -v t="$transport" -v summary="$WORK/summary" \
      -v result="$WORK/$transport.result" '
    function ms (us) { return us / 1000.0 }
    FILENAME ~ /\.times$/ { n++; us[n] = $1; next }
    function fmt (us) { return ms(us) < 100 ? sprintf ("%.1f ms", ms(us)) : sprintf ("%.0f ms", ms(us)) }
    {
      if ($3 != 0) {
        failed++
        msg = $6; gsub (/bob[0-9]+/, "bobK", msg)
        errs[msg]++
      }
      if ($2 > 100000) over100ms++
      if ($2 > 1000000) over1s++
      if ($5 != 0) limited++
      if ($4 > 0) {
        retried++
        if (!($4 in retries)) { nvals++; vals[nvals] = $4 + 0 }
        retries[$4]++
      }
      if ($2 > ($4 + 1000) * 1000) { overlimit++; overk = overk " " $1 }
      if ($3 != 0 && failed <= 20) failk = failk " " $1
    }
    END {
      # Insertion sort of the few distinct retry-after values
      for (i = 2; i <= nvals; i++)
        for (j = i; j > 1 && vals[j - 1] > vals[j]; j--) { x = vals[j]; vals[j] = vals[j - 1]; vals[j - 1] = x }
      med = (n % 2) ? us[(n + 1) / 2] : (us[n / 2] + us[n / 2 + 1]) / 2
      p99 = us[int ((n - 1) * 0.99) + 1]
      printf "runs:      %d\n", n
      printf "failures:  %d", failed
      if (failed) printf " (runs%s%s)", failk, (failed > 20 ? " …" : "")
      printf "\n"
      for (m in errs) printf "  %5d x  %s\n", errs[m], m
      printf "time:      min %s, median %s, p99 %s, max %s\n", fmt(us[1]), fmt(med), fmt(p99), fmt(us[n])
      printf "over 100 ms: %d, over 1 s: %d\n", over100ms, over1s
      printf "over retry-after + 1 s: %d", overlimit
      if (overlimit && overlimit <= 20) printf " (runs%s)", overk
      printf "\n"
      printf "stderr mentions a rate limit or a retry: %d runs\n", limited
      printf "retry-after given: %d runs", retried
      if (retried) {
        printf ":"
        k = nvals
        for (i = 1; i <= k && i <= 12; i++) printf " %d ms (x%d)", vals[i], retries[vals[i]]
        if (k > 12) printf " … %d ms (x%d)", vals[k], retries[vals[k]]
      }
      printf "\n"
      line = sprintf ("%s: %d runs, %d failed, median %s, max %s", t, n, failed, fmt(med), fmt(us[n]))
      print line >> summary
      ok = (failed == 0 && overlimit == 0)
      printf "TARGET %s: no failure, none over its retry-after + 1 s: %s\n", t, ok ? "MET" : "MISSED"
      print (ok ? "MET" : "MISSED") > result
    }' "$WORK/$transport.times" "$runs"
}

cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?')
read -r load1 load5 _ </proc/loadavg || true
printf '# %s, %s CPUs, load average %s %s; %d runs per transport; connector options: %s\n' \
  "$("$RNDZ" --version 2>/dev/null | head -n 1)" "$cpus" "$load1" "$load5" "$N" \
  "${EXTRA[*]:-(none; --timeout defaults to 10 s)}"

for transport in "${TRANSPORTS[@]}"; do
  run_phase "$transport"
done
: >"$WORK/summary"
missed=0
for transport in "${TRANSPORTS[@]}"; do
  report "$transport"
  [ "$(cat "$WORK/$transport.result")" = MET ] || missed=1
done
printf '\n'
cat "$WORK/summary"
[ -n "$KEEP" ] && printf '(runs and standard errors kept in %s)\n' "$WORK"

if (( CHECK && missed )); then
  exit 1
fi
exit 0
