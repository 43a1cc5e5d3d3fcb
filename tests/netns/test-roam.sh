#!/bin/bash
# test-roam.sh: a listener that changes networks, in network namespaces
#
# SPDX-License-Identifier: MIT
#
# Usage: test-roam.sh [PATH-TO-RNDZ]   (or RNDZ_TOOL=PATH test-roam.sh)
# Prints TAP. Needs root, PyGObject and the Rndz typelib; skips itself
# otherwise. Environment:
#   RNDZ_NETNS_IPTABLES  iptables, iptables-legacy or iptables-nft: the
#                        backend to use instead of the first that works
#   RNDZ_NETNS_KEEP=1    keep the logs (their directory is printed)
#   RNDZ_ROAM_SWITCHES   how many times the listener changes networks (10)
#   RNDZ_ROAM_SAME_SWITCHES  and how many times more with the same address
#                        on both networks (4)
#   RNDZ_ROAM_GAP_MS     the time between the old network going and the
#                        new one coming (0)
#   RNDZ_ROAM_CONTROL_LIMIT  how long (ms) the control case waits for the
#                        listener without a network monitor (15000)
#
# Topology, six namespaces named rndz-roam-PID-RANDOM-* (about 35 s in
# all):
#
#                     srv 192.0.2.10           pc 198.18.0.2 (no NAT)
#                       \  192.0.2.0/24         / 198.18.0.0/24
#                        '------ isp ----------'
#          198.51.100.0/24 /         \ 203.0.113.0/24
#        198.51.100.2 wan r1          r2 wan 203.0.113.2
#           10.0.1.1 lan  |           |  lan 10.0.2.1
#                         |           |
#               10.0.1.2 eth1 - pl - eth2 10.0.2.2
#
# r1 and r2 are home routers as in test-nat.sh: source NAT (MASQUERADE)
# and a stateful firewall that lets in only what answers the LAN. pl, the
# listener's host, has a cable to each, but only one network at a time:
# the other cable is down and has no address, as when a laptop goes from
# Wi-Fi to Ethernet. roam-peer.py listens in pl (id alice, over UDP and
# TCP, the keepalive interval KEEPALIVE_MS, long enough that it cannot be
# what brings the listener back) and probes from pc.
#
# A switch: the old network goes (address flushed, cable down), GAP_MS
# later (none by default: the worst case for a listener that waits for
# its old TCP connection from the first signal on) the new one comes
# (cable up, address, default route). The time of
# the switch is when the default route is in place: a network is up when
# it routes. The kernel tells GNetworkMonitor, the listener registers
# again; from that moment the prober in pc starts an attempt to reach
# alice every 100 ms, over UDP and over TCP, and the time of the first
# attempt whose message came back is the switch's time to reach.
#
# Then the same with both LANs 10.0.1.0/24, pl at 10.0.1.2 on either:
# only the router and the public address change, as between two home
# networks that hand out the same address.
#
# Then the control: a listener (id bob) whose GNetworkMonitor sees nothing
# (GIO_USE_NETWORK_MONITOR=base: GNetworkMonitorBase, which says the
# network is always there and never signals a change) is not reached
# within 5 s of a switch: what brings alice back is the monitor. He comes
# back only when his server has been silent for two keepalive intervals
# and a second (his are 5 s, for the test's sake), over UDP as over TCP.
#
# Every wait is bounded; an EXIT trap kills what was started and deletes
# the namespaces, whatever happens.

set -u
export LC_ALL=C.UTF-8

RNDZ=${1:-${RNDZ_TOOL:-}}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PEER=$HERE/roam-peer.py
PYTHON=/usr/bin/python3

SWITCHES=${RNDZ_ROAM_SWITCHES:-10}
SAME_SWITCHES=${RNDZ_ROAM_SAME_SWITCHES:-4}
KEEPALIVE_MS=30000
# Without a monitor, the listener finds out only when the server has not
# answered for two keepalive intervals and a second (rndz-listener.c,
# link_is_alive()): bob's is short so that the test sees it
CONTROL_KEEPALIVE_MS=5000
CONTROL_FALLBACK_MS=$(( 2 * CONTROL_KEEPALIVE_MS + 1000 ))
CONTROL_LIMIT_MS=${RNDZ_ROAM_CONTROL_LIMIT:-$(( CONTROL_FALLBACK_MS + 4000 ))}
GAP_MS=${RNDZ_ROAM_GAP_MS:-0}
# The targets: every switch reached within REACH_LIMIT_MS (1 s with a new
# address), the median under MEDIAN_LIMIT_MS (issue 19)
REACH_LIMIT_MS=5000
MEDIAN_LIMIT_MS=1500
# Before the first switch, and between switches: time for the listener
# and the prober to settle
BASELINE_LIMIT_MS=5000
PAUSE=1
SERVER=192.0.2.10:7777

skip_all ()
{
  echo "1..0 # SKIP $*"
  exit 0
}

bail_out ()
{
  echo "Bail out! $*"
  exit 1
}

if [ -z "$RNDZ" ] || [ ! -x "$RNDZ" ]; then
  bail_out "no rndz program: pass its path, or set RNDZ_TOOL"
fi
if [ "$(id -u)" != 0 ]; then
  skip_all "need root and network namespaces (not running as root)"
fi
for program in ip timeout; do
  command -v "$program" >/dev/null || skip_all "need root and network namespaces (no $program program)"
done

# The peers run the library from Python: from the build tree next to the
# tool when nobody said where the typelib is
BUILT_LIB=$(dirname "$RNDZ")/../rndz-glib
if [ -z "${GI_TYPELIB_PATH:-}" ] && [ -f "$BUILT_LIB/Rndz-1.0.typelib" ]; then
  export GI_TYPELIB_PATH=$BUILT_LIB
  export LD_LIBRARY_PATH=$BUILT_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
if [ ! -x "$PYTHON" ] ||
   ! "$PYTHON" -c 'import gi; gi.require_version("Rndz", "1.0"); from gi.repository import Rndz; Rndz.socket_get_path' 2>/dev/null; then
  skip_all "need $PYTHON with PyGObject and the Rndz typelib"
fi

PREFIX=rndz-roam-$$-$RANDOM
NS_SRV=$PREFIX-srv
NS_ISP=$PREFIX-isp
NS_R1=$PREFIX-r1
NS_R2=$PREFIX-r2
NS_PL=$PREFIX-pl
NS_PC=$PREFIX-pc
NS_PROBE=$PREFIX-probe

NAMESPACES=()
declare -A BG_PID=()
TMP=$(mktemp -d "${TMPDIR:-/tmp}/rndz-roam.XXXXXX")

now_ms ()
{
  local t=${EPOCHREALTIME/./}
  echo $(( t / 1000 ))
}

stop_pid ()
{
  local pid=$1 i

  kill -TERM "$pid" 2>/dev/null || return 0
  for (( i = 0; i < 40; i++ )); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}

cleanup ()
{
  local name ns pid

  [ -n "$PROBE_FD" ] && exec {PROBE_FD}>&-
  for name in "${!BG_PID[@]}"; do
    stop_pid "${BG_PID[$name]}"
  done
  # Anything else still in our namespaces was started by us too
  for ns in "${NAMESPACES[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      kill -KILL "$pid" 2>/dev/null
    done
  done
  for ns in "${NAMESPACES[@]}"; do
    ip netns del "$ns" 2>/dev/null
  done
  if [ "${RNDZ_NETNS_KEEP:-0}" = 1 ]; then
    echo "# logs kept in $TMP"
  else
    rm -rf "$TMP"
  fi
}
PROBE_FD=
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

nsx ()
{
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}

# Setup steps: any failure ends the run
run ()
{
  echo "+ $*" >>"$TMP/setup.log"
  if ! "$@" >>"$TMP/setup.log" 2>&1; then
    echo "Bail out! setup failed: $*"
    sed 's/^/# /' "$TMP/setup.log" | tail -n 20
    exit 1
  fi
}

add_ns ()
{
  local ns=$1

  if ! ip netns add "$ns" 2>>"$TMP/setup.log"; then
    skip_all "need root and network namespaces (ip netns add is not permitted here)"
  fi
  NAMESPACES+=("$ns")
  run ip -n "$ns" link set lo up
}

# veth NS1 IF1 NS2 IF2: a cable between two namespaces, created inside them
veth ()
{
  run ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"
  run ip -n "$1" link set "$2" up
  run ip -n "$3" link set "$4" up
}

# Picks the first iptables backend that can do conntrack and NAT here,
# trying it in a namespace of its own (as test-nat.sh does)
choose_iptables ()
{
  local candidates=(iptables iptables-legacy iptables-nft) ipt

  if [ -n "${RNDZ_NETNS_IPTABLES:-}" ]; then
    candidates=("$RNDZ_NETNS_IPTABLES")
  fi
  add_ns "$NS_PROBE"
  for ipt in "${candidates[@]}"; do
    command -v "$ipt" >/dev/null || continue
    if nsx "$NS_PROBE" "$ipt" -t nat -A POSTROUTING -o lo -j MASQUERADE &&
       nsx "$NS_PROBE" "$ipt" -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    then
      IPT=$ipt
      break
    fi
  done >>"$TMP/setup.log" 2>&1
  ip netns del "$NS_PROBE"
  unset 'NAMESPACES[-1]'
  [ -n "${IPT:-}" ] || skip_all "need iptables with conntrack and NAT in network namespaces (tried ${candidates[*]})"
}

# router NS GATEWAY: forwarding, NAT and a stateful firewall between the
# interfaces "lan" and "wan", IPv4 only
router ()
{
  local ns=$1

  run nsx "$ns" sysctl -qw net.ipv4.ip_forward=1
  run ip -n "$ns" route add default via "$2"
  run nsx "$ns" "$IPT" -P FORWARD DROP
  run nsx "$ns" "$IPT" -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  run nsx "$ns" "$IPT" -A FORWARD -i lan -o wan -j ACCEPT
  run nsx "$ns" "$IPT" -A INPUT -i wan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  run nsx "$ns" "$IPT" -A INPUT -i wan -j DROP
  run nsx "$ns" "$IPT" -t nat -A POSTROUTING -o wan -j MASQUERADE
}

setup_topology ()
{
  local ns

  for ns in "$NS_SRV" "$NS_ISP" "$NS_R1" "$NS_R2" "$NS_PL" "$NS_PC"; do
    add_ns "$ns"
  done
  veth "$NS_SRV" eth0 "$NS_ISP" srv
  veth "$NS_PC" eth0 "$NS_ISP" pc
  veth "$NS_R1" wan "$NS_ISP" r1
  veth "$NS_R2" wan "$NS_ISP" r2
  veth "$NS_PL" eth1 "$NS_R1" lan
  veth "$NS_PL" eth2 "$NS_R2" lan

  run ip -n "$NS_SRV" addr add 192.0.2.10/24 dev eth0
  run ip -n "$NS_PC" addr add 198.18.0.2/24 dev eth0
  run ip -n "$NS_ISP" addr add 192.0.2.1/24 dev srv
  run ip -n "$NS_ISP" addr add 198.18.0.1/24 dev pc
  run ip -n "$NS_ISP" addr add 198.51.100.1/24 dev r1
  run ip -n "$NS_ISP" addr add 203.0.113.1/24 dev r2
  run ip -n "$NS_R1" addr add 198.51.100.2/24 dev wan
  run ip -n "$NS_R1" addr add 10.0.1.1/24 dev lan
  run ip -n "$NS_R2" addr add 203.0.113.2/24 dev wan
  run ip -n "$NS_R2" addr add 10.0.2.1/24 dev lan
  run ip -n "$NS_SRV" route add default via 192.0.2.1
  run ip -n "$NS_PC" route add default via 198.18.0.1
  run nsx "$NS_ISP" sysctl -qw net.ipv4.ip_forward=1
  router "$NS_R1" 198.51.100.1
  router "$NS_R2" 203.0.113.1

  # pl starts on router 1; the cable to router 2 is down
  run ip -n "$NS_PL" link set eth2 down
  run ip -n "$NS_PL" addr add 10.0.1.2/24 dev eth1
  run ip -n "$NS_PL" route add default via 10.0.1.1
  NETWORK=1
  SAME_ADDRESS=0
}

# lan_prefix N: the first three bytes of router N's LAN addresses
lan_prefix ()
{
  if [ "$SAME_ADDRESS" = 1 ]; then
    echo 10.0.1
  else
    echo "10.0.$1"
  fi
}

# switch_network: pl leaves router NETWORK for the other one; sets
# NETWORK, and T0 (epoch ms) to when the new default route was in place
switch_network ()
{
  local old=$NETWORK new=$(( 3 - NETWORK ))

  run ip -n "$NS_PL" addr flush dev "eth$old"
  run ip -n "$NS_PL" link set "eth$old" down
  sleep "$(printf '%d.%03d' $(( GAP_MS / 1000 )) $(( GAP_MS % 1000 )))"
  run ip -n "$NS_PL" link set "eth$new" up
  run ip -n "$NS_PL" addr add "$(lan_prefix $new).2/24" dev "eth$new"
  run ip -n "$NS_PL" route add default via "$(lan_prefix $new).1"
  T0=$(now_ms)
  NETWORK=$new
}

# same_address: router 2's LAN becomes 10.0.1.0/24 too, as two home
# networks often are, and pl gets the same address on either
same_address ()
{
  run ip -n "$NS_R2" addr flush dev lan
  run ip -n "$NS_R2" addr add 10.0.1.1/24 dev lan
  SAME_ADDRESS=1
}

# distinct_addresses: router 2's LAN is 10.0.2.0/24 again, and pl's
# address on it 10.0.2.2 if that is where it is
distinct_addresses ()
{
  run ip -n "$NS_R2" addr flush dev lan
  run ip -n "$NS_R2" addr add 10.0.2.1/24 dev lan
  SAME_ADDRESS=0
  if [ "$NETWORK" = 2 ]; then
    run ip -n "$NS_PL" addr flush dev eth2
    run ip -n "$NS_PL" addr add 10.0.2.2/24 dev eth2
    run ip -n "$NS_PL" route add default via 10.0.2.1
  fi
}

# Background processes: bg NAME NS COMMAND..., output in $TMP/NAME.{out,err}
bg ()
{
  local name=$1 ns=$2
  shift 2
  ip netns exec "$ns" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null &
  BG_PID[$name]=$!
}

bg_stop ()
{
  stop_pid "${BG_PID[$1]}"
  unset "BG_PID[$1]"
}

# wait_for FILE EXTENDED-REGEX SECONDS
wait_for ()
{
  local deadline=$(( $(now_ms) + $3 * 1000 ))

  until grep -qE -- "$2" "$1" 2>/dev/null; do
    [ "$(now_ms)" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}

T=0
result ()
{
  T=$(( T + 1 ))
  if [ "$1" = 0 ]; then
    echo "ok $T - $2"
  else
    echo "not ok $T - $2"
  fi
}

diag ()
{
  local file
  for file in "$@"; do
    [ -s "$file" ] || continue
    echo "# --- $(basename "$file")"
    tail -n 15 "$file" | sed 's/^/#   /'
  done
}

# listener NAME ID KEEPALIVE-MS [ENV...]: roam-peer.py listening in pl as
# ID, over UDP and TCP; waits until both are registered
listener ()
{
  local name=$1 id=$2 keepalive=$3
  shift 3
  bg "$name" "$NS_PL" env "$@" "$PYTHON" "$PEER" listen "$id" "$SERVER" "$keepalive" 600
  if ! wait_for "$TMP/$name.out" '^registered udp' 12 ||
     ! wait_for "$TMP/$name.out" '^registered tcp' 2; then
    diag "$TMP/$name.out" "$TMP/$name.err" "$TMP/server.err"
    bail_out "$name did not register"
  fi
}

# prober PEER: roam-peer.py in pc, which tries to reach PEER when told
ROUND=0
prober ()
{
  local peer=$1

  [ -n "$PROBE_FD" ] && exec {PROBE_FD}>&-
  [ -n "${BG_PID[prober]:-}" ] && bg_stop prober
  rm -f "$TMP/probe.in"
  mkfifo "$TMP/probe.in"
  ip netns exec "$NS_PC" "$PYTHON" "$PEER" probe "carol-$peer-" "$SERVER" "$peer" \
    <"$TMP/probe.in" >"$TMP/prober-$peer.out" 2>"$TMP/prober-$peer.err" &
  BG_PID[prober]=$!
  exec {PROBE_FD}>"$TMP/probe.in"
  PROBER_OUT=$TMP/prober-$peer.out
  ROUND=0
}

# reach T0 LIMIT-MS: tells the prober to go; sets UDP_MS and TCP_MS to the
# times to reach (ms since T0), or to "-" when not reached within LIMIT-MS
reach ()
{
  local line
  ROUND=$(( ROUND + 1 ))
  echo "go $1 $2" >&"$PROBE_FD"
  if ! wait_for_count "$PROBER_OUT" '^done' "$ROUND" $(( $2 / 1000 + 5 )); then
    diag "$PROBER_OUT" "${PROBER_OUT%.out}.err"
    bail_out "the prober did not finish round $ROUND"
  fi
  UDP_MS=-
  TCP_MS=-
  # This round's lines: those after the previous round's "done"
  while read -r line; do
    case $line in
      "reached udp "*) UDP_MS=$(echo "$line" | cut -d ' ' -f 3) ;;
      "reached tcp "*) TCP_MS=$(echo "$line" | cut -d ' ' -f 3) ;;
    esac
  done < <(awk -v round="$ROUND" '/^done/ { n++; next } n == round - 1' "$PROBER_OUT")
}

# wait_for_count FILE REGEX COUNT SECONDS
wait_for_count ()
{
  local deadline=$(( $(now_ms) + $4 * 1000 ))

  until [ "$(grep -cE -- "$2" "$1" 2>/dev/null)" -ge "$3" ]; do
    [ "$(now_ms)" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}

# since LISTENER-NAME REGEX T0: ms from T0 to the first line of the
# listener's output matching REGEX whose last field (epoch ms) is not
# before T0, or "-"
since ()
{
  awk -v t0="$3" -v re="$2" '$0 ~ re && $NF >= t0 { print $NF - t0; found = 1; exit }
                             END { if (!found) print "-" }' "$TMP/$1.out"
}

# changes LISTENER-NAME T0: when the listener's monitor signalled, in ms
# from T0, from the switch's start to 2 s after T0
changes ()
{
  awk -v t0="$2" -v from="$(( $2 - GAP_MS - 500 ))" \
      '/^changed / && $2 >= from && $2 <= t0 + 2000 { printf "%s%+d", sep, $2 - t0; sep = " " }' \
      "$TMP/$1.out"
}

# median and max of numbers, "-" counting as more than any
stats ()
{
  local sorted n
  sorted=$(printf '%s\n' "$@" | sed 's/^-$/999999/' | sort -n)
  n=$#
  MEDIAN=$(echo "$sorted" | sed -n "$(( (n + 1) / 2 ))p")
  MAX=$(echo "$sorted" | tail -n 1)
  [ "$MEDIAN" = 999999 ] && MEDIAN=-
  [ "$MAX" = 999999 ] && MAX=-
}

# ---------------------------------------------------------------------------

choose_iptables
setup_topology

echo "1..13"
echo "# namespaces $PREFIX-*, firewall with $IPT, $SWITCHES switches"

# The prober asks for the listener ten times a second, and its clients
# resend their requests: far beyond the server's default limit on
# requests from one address and to one address (20 a second), which a
# time to reach must not measure
bg server "$NS_SRV" "$RNDZ" server --listen-addr "$SERVER" --request-rate 1000 --verbose
wait_for "$TMP/server.out" '^Listening on ' 5 || { diag "$TMP/server.err"; bail_out "the server did not start"; }

listener alice alice "$KEEPALIVE_MS"
prober alice

# 1. The monitor that GIO gives a program in a namespace sees its routes
grep -q '^monitor GNetworkMonitorNetlink$' "$TMP/alice.out"
result $? "the listener's GNetworkMonitor is the netlink one ($(sed -n 's/^monitor //p' "$TMP/alice.out"))"

# 2. Before any switch, through router 1
reach "$(now_ms)" "$BASELINE_LIMIT_MS"
[ "$UDP_MS" != - ] && [ "$TCP_MS" != - ]
result $? "before any switch, alice is reached through router 1 (UDP $UDP_MS ms, TCP $TCP_MS ms)"

# switches DESCRIPTION COUNT LIMIT-MS: COUNT switches, then the tests on
# their times: each within LIMIT-MS, the median under MEDIAN_LIMIT_MS
switches ()
{
  local description=$1 count=$2 limit=$3 i transport times udp_times=() tcp_times=()

  for (( i = 1; i <= count; i++ )); do
    sleep "$PAUSE"
    switch_network
    reach "$T0" "$REACH_LIMIT_MS"
    udp_times+=("$UDP_MS")
    tcp_times+=("$TCP_MS")
    echo "# switch $i to router $NETWORK: UDP $UDP_MS ms, TCP $TCP_MS ms;" \
         "registered again after $(since alice '^state udp registered' "$T0") ms (UDP)," \
         "$(since alice '^state tcp registered' "$T0") ms (TCP); monitor at $(changes alice "$T0") ms"
  done

  for transport in UDP TCP; do
    if [ $transport = UDP ]; then
      times=("${udp_times[@]}")
    else
      times=("${tcp_times[@]}")
    fi
    stats "${times[@]}"
    echo "# $transport, $description: ${times[*]} (ms; median $MEDIAN, max $MAX)"
    [ "$MAX" != - ] && [ "$MAX" -lt "$limit" ]
    result $? "$transport, $description: after each of $count switches alice is reached within $limit ms (max $MAX ms)"
    [ "$MEDIAN" != - ] && [ "$MEDIAN" -lt "$MEDIAN_LIMIT_MS" ]
    result $? "$transport, $description: median time to reach alice after a switch under $MEDIAN_LIMIT_MS ms ($MEDIAN ms)"
  done
}

# 3-6. The switches, a new address every time. Issue 19 asks for the
# listener to be reachable within 1 s of the new network: nothing holds
# it back, not even over TCP, whose old connection's address is gone.
switches "new address" "$SWITCHES" 1000

# 7-10. Both LANs the same: the address stays, the router and the public
# address change. Over TCP the old connection gets a second to answer
# (NETWORK_PROBE_MS in rndz-listener.c), then the listener connects again
# from its very address and port.
same_address
switches "same address" "$SAME_SWITCHES" "$REACH_LIMIT_MS"

# 11-13. The control: bob's monitor sees nothing. He is reached before the
# switch, and not after it: alice came back thanks to her monitor, not
# the keepalive or anything else in the way the test is built.
bg_stop alice
distinct_addresses
listener bob bob "$CONTROL_KEEPALIVE_MS" GIO_USE_NETWORK_MONITOR=base
prober bob
reach "$(now_ms)" "$BASELINE_LIMIT_MS"
baseline_udp=$UDP_MS
baseline_tcp=$TCP_MS
sleep "$PAUSE"
switch_network
reach "$T0" "$CONTROL_LIMIT_MS"
echo "# control, switch to router $NETWORK without a network monitor: UDP $UDP_MS ms, TCP $TCP_MS ms (limit $CONTROL_LIMIT_MS ms)"
grep -q '^monitor GNetworkMonitorBase$' "$TMP/bob.out" && ! grep -q '^changed' "$TMP/bob.out" &&
  [ "$baseline_udp" != - ] && [ "$baseline_tcp" != - ]
result $? "control: bob, with GIO_USE_NETWORK_MONITOR=base ($(sed -n 's/^monitor //p' "$TMP/bob.out"), no change signalled), is reached before the switch (UDP $baseline_udp ms, TCP $baseline_tcp ms)"
{ [ "$UDP_MS" = - ] || [ "$UDP_MS" -ge "$REACH_LIMIT_MS" ]; } &&
  { [ "$TCP_MS" = - ] || [ "$TCP_MS" -ge "$REACH_LIMIT_MS" ]; }
result $? "control: without the monitor, bob is not reached within $REACH_LIMIT_MS ms of the switch (UDP $UDP_MS ms, TCP $TCP_MS ms)"
[ "$UDP_MS" != - ] && [ "$UDP_MS" -le $(( CONTROL_FALLBACK_MS + 3000 )) ] &&
  [ "$TCP_MS" != - ] && [ "$TCP_MS" -le $(( CONTROL_FALLBACK_MS + 3000 )) ]
result $? "control: bob comes back once his server has been silent for 2 keepalive intervals and a second ($CONTROL_FALLBACK_MS ms; UDP $UDP_MS ms, TCP $TCP_MS ms after the switch)"

[ "$T" = 13 ] || bail_out "ran $T tests, planned 13"
