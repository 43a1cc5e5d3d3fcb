# nat-timings.sh: times to connect through every pair of NATs (sourced, not run)
# shellcheck shell=bash
#
# SPDX-License-Identifier: MIT
#
# A measurement that a person runs by hand, not a test of the suite:
#
#   sudo RNDZ_NETNS_ONLY=timings RNDZ_NETNS_REPORT=timings.md \
#     nice tests/netns/test-nat.sh _build/tools/rndz
#
# test-nat.sh sources this file in that mode, builds its topology, and
# calls timings_main instead of its tests. For every requester's router
# (rb, in front of pb) and target's router (ra, in front of pa) in
# {cone, rewriting}, UDP and TCP, without and with 20 % loss on both
# routers (loss_rule), pb reaches a listener in pa TIMINGS_TRIALS times
# through a server that relays, and the script prints how many trials
# got the echo back, the path the client said it took, and the median
# and longest time to connect. "cone" is the home router (MASQUERADE
# keeps the port: endpoint-independent mapping); "rewriting" gives every
# destination a port of its own (MASQUERADE --random-fully). The
# listeners register after their router took its mode, as a peer behind
# such a router always does (doc/nat-traversal.md: a registration made
# before may hide the rewriting). Environment, besides test-nat.sh's:
#   RNDZ_TIMINGS_TRIALS=N  trials per case (default 10)
#   RNDZ_NETNS_REPORT=FILE the table, in markdown, to FILE as well
#
# The targets are issue 19's, for the median of the trials with the
# relay on: TCP with one rewriting NAT under 1.5 s; both rewriting, UDP
# and TCP, under 1.0 s; with 20 % loss on both routers, every case under
# 3 s. A trial that failed counts as slower than any that connected.

TIMINGS_TRIALS=${RNDZ_TIMINGS_TRIALS:-10}
# A server of its own, with a relay whose limits the trials do not
# reach: a UDP session that was used lasts until the idle timeout (60 s),
# and ten trials a case from one address would hit the default of four
# sessions per address. The rate limit of requests stays the default;
# the trials are half a second apart, as in loss_rate.
TIMINGS_SERVER=192.0.2.10:7782
TIMINGS_RELAY_PORT=7783
TIMINGS_ROWS=()

timings_modes ()
{
  echo cone
  [ "$RANDOM_FULLY" = yes ] && echo rewriting
}

# timings_plan: the number of cases (TAP tests)
timings_plan ()
{
  local n
  n=$(timings_modes | wc -l)
  echo $(( n * n * 4 ))
}

# timings_nat NS MODE: the router's NAT as MODE (cone or rewriting), and
# none of the mappings it made before: one made in the other mode would
# live on in this one
timings_nat ()
{
  local ns=$1 mode=$2

  if [ "$mode" = rewriting ]; then
    run nsx "$ns" "$IPT" -t nat -R POSTROUTING 1 -o wan -j MASQUERADE --random-fully
  else
    run nsx "$ns" "$IPT" -t nat -R POSTROUTING 1 -o wan -j MASQUERADE
  fi
  if command -v conntrack >/dev/null; then
    nsx "$ns" conntrack -F >/dev/null 2>&1
  else
    echo "# no conntrack program: the routers keep the mappings of earlier cases"
  fi
}

# timings_target REQUESTER TARGET TRANSPORT LOSS: issue 19's limit for
# the median (ms), or nothing where it set none
timings_target ()
{
  if [ "$4" = yes ]; then
    echo 3000
  elif [ "$1" = rewriting ] && [ "$2" = rewriting ]; then
    echo 1000
  elif [ "$3" = TCP ] && [ "$1$2" != conecone ]; then
    echo 1500
  fi
}

# timings_median N TIMES...: the median of N trials whose times (ms,
# sorted) are given, the trials that failed counting as slower than any
# of them; nothing when the median falls on a failure
timings_median ()
{
  local n=$1 lo hi
  shift
  local times=("$@")

  lo=$(( (n - 1) / 2 ))
  hi=$(( n / 2 ))
  [ "$hi" -lt ${#times[@]} ] || return 0
  echo $(( (times[lo] + times[hi]) / 2 ))
}

# timings_case REQUESTER TARGET TRANSPORT LOSS PEER: TIMINGS_TRIALS
# connections from pb to PEER (in pa), one TAP line and one table row
timings_case ()
{
  local req=$1 tgt=$2 transport=$3 loss=$4 peer=$5
  local name tcp="" i message path n_ok=0 times=() sorted=() median max target
  local verdict paths status=1
  local -A by_path=()

  [ "$transport" = TCP ] && tcp=--tcp
  name=time-${req:0:1}${tgt:0:1}-${transport,,}-$loss
  echo "# requester's NAT $req, target's NAT $tgt, $transport, loss $loss"
  for (( i = 1; i <= TIMINGS_TRIALS; i++ )); do
    message="$name-$i-$RANDOM"
    # The server lets one requester ask for one target twice a second
    sleep 0.5
    connector "$name-$i" "$NS_PB" "$CONNECT_TIMEOUT" --id "$name" \
              --server-addr "$TIMINGS_SERVER" --remote-peer "$peer" \
              --message "$message" ${tcp:+"$tcp"}
    path=$(path_of "$name-$i")
    if [ "$RC" = 0 ] && [ "$(cat "$TMP/$name-$i.out")" = "$message" ]; then
      n_ok=$(( n_ok + 1 ))
      times+=("$CONNECTED")
      by_path[$path]=$(( ${by_path[$path]:-0} + 1 ))
      echo "#   trial $i: $path, $CONNECTED ms"
    else
      echo "#   trial $i: failed (path $path, exit status $RC after $ELAPSED ms)"
      grep -v -- '-DEBUG' "$TMP/$name-$i.err" | tail -n 2 | sed 's/^/#     /'
    fi
  done

  if [ $n_ok -gt 0 ]; then
    mapfile -t sorted < <(printf '%s\n' "${times[@]}" | sort -n)
  fi
  median=$(timings_median "$TIMINGS_TRIALS" "${sorted[@]}")
  max=
  if [ $n_ok -gt 0 ]; then
    max=${sorted[-1]}
    [ $n_ok -lt "$TIMINGS_TRIALS" ] && max="$max ($(( TIMINGS_TRIALS - n_ok )) failed)"
  fi
  paths=$(for path in "${!by_path[@]}"; do echo "$path ${by_path[$path]}"; done |
            sort -k2,2nr | paste -sd ',' | sed 's/,/, /g')
  target=$(timings_target "$req" "$tgt" "$transport" "$loss")
  verdict=-
  if [ -n "$target" ]; then
    if [ -n "$median" ] && [ "$median" -lt "$target" ]; then
      verdict="< $target: met"
    else
      verdict="< $target: **missed**"
    fi
  fi
  [ $n_ok = "$TIMINGS_TRIALS" ] && status=0
  result $status "$req → $tgt, $transport, loss $loss: $n_ok of $TIMINGS_TRIALS connected (${paths:-none}), median ${median:--} ms, longest ${max:--} ms, target $verdict"
  TIMINGS_ROWS+=("| $req | $tgt | $transport | $( [ "$loss" = yes ] && echo '20 %' || echo none ) | $n_ok of $TIMINGS_TRIALS | ${paths:-none} | ${median:-failed} | ${max:--} | $verdict |")
}

timings_report ()
{
  local commit

  commit=$(git -C "$HERE" rev-parse --short HEAD 2>/dev/null)
  {
    echo "Measured by \`RNDZ_NETNS_ONLY=timings tests/netns/test-nat.sh\` (script at ${commit:-?}) on $(date -u '+%Y-%m-%d %H:%M UTC'), $("$RNDZ" --version 2>/dev/null | head -n 1), $(uname -sr) $(uname -m), $(nproc) CPUs, $IPT; $TIMINGS_TRIALS trials a case, half a second apart, server with a relay."
    echo
    echo "| Requester's NAT (pb) | Target's NAT (pa) | Transport | Loss on both routers | Connected | Path | Median (ms) | Longest (ms) | Target for the median (ms) |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    printf '%s\n' "${TIMINGS_ROWS[@]}"
  } >"$TMP/timings.md"
  sed 's/^/# /' "$TMP/timings.md"
  if [ -n "${RNDZ_NETNS_REPORT:-}" ]; then
    cp "$TMP/timings.md" "$RNDZ_NETNS_REPORT"
  fi
}

# timings_main: every case, with the routers as each needs them
timings_main ()
{
  local req tgt loss transport peer

  start_server server4t --listen-addr "$TIMINGS_SERVER" --relay-port "$TIMINGS_RELAY_PORT" \
    --relay-max-sessions 1000 --relay-max-sessions-per-address 1000 \
    --relay-max-sessions-per-network 1000
  for tgt in $(timings_modes); do
    for req in $(timings_modes); do
      timings_nat "$NS_RA" "$tgt"
      timings_nat "$NS_RB" "$req"
      # A target of its own for each pair of modes, registered through
      # the target's router as it is now
      peer=target-${req:0:1}${tgt:0:1}
      listener "$peer-udp" "$NS_PA" "$TIMINGS_SERVER" "$peer"
      listener "$peer-tcp" "$NS_PA" "$TIMINGS_SERVER" "$peer" --tcp
      for loss in no yes; do
        [ "$loss" = yes ] && loss_rule -A
        for transport in UDP TCP; do
          timings_case "$req" "$tgt" "$transport" "$loss" "$peer"
        done
        [ "$loss" = yes ] && loss_rule -D
      done
      bg_stop "$peer-udp"
      bg_stop "$peer-tcp"
    done
  done
  timings_nat "$NS_RA" cone
  timings_nat "$NS_RB" cone
  timings_report
}
