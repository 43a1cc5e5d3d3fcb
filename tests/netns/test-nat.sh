#!/bin/bash
# test-nat.sh: rndz through real NATs and stateful firewalls, in network namespaces
#
# SPDX-License-Identifier: MIT
#
# Usage: test-nat.sh [PATH-TO-RNDZ]   (or RNDZ_TOOL=PATH test-nat.sh)
# Prints TAP. Needs root; skips itself otherwise. Environment:
#   RNDZ_NETNS_IPTABLES  iptables, iptables-legacy or iptables-nft: the
#                        backend to use instead of the first that works
#   RNDZ_NETNS_KEEP=1    keep the logs (their directory is printed)
#
# Topology, six namespaces named rndz-PID-RANDOM-*, nothing outside them:
#
#                           srv  192.0.2.10          2001:db8:0:10::10
#                            |   192.0.2.0/24        2001:db8:0:10::/64
#                           isp  (a plain router: the Internet)
#          198.51.100.0/24 /   \ 203.0.113.0/24      2001:db8:0:a0::/64, :b0::/64
#     198.51.100.2 wan  ra       rb  wan 203.0.113.2
#         10.0.1.1 lan  |        |   lan 10.0.2.1
#     10.0.1.0/24       |        |       10.0.2.0/24   2001:db8:0:a1::/64, :b1::/64
#         10.0.1.2     pa        pb      10.0.2.2
#
# ra and rb are home routers: IPv4 source NAT (MASQUERADE, which keeps the
# source port when it can: endpoint-independent mapping) and, for IPv4 and
# IPv6 alike, a stateful firewall: forwarding is dropped except LAN to WAN
# and what conntrack finds ESTABLISHED or RELATED; what comes in on the WAN
# for the router itself is dropped likewise, except ICMPv6, which neighbour
# discovery needs. The isp routes the routers' private prefixes to them, as
# a hostile neighbour would: only the firewall keeps its packets off the
# LANs. Later tests change the routers for a while: a symmetric NAT
# (--random-fully), no filter on WAN input, REJECT instead of DROP (as
# OpenWrt does), everything dropped. doc/nat-traversal.md tells what each
# shows.
#
# Every wait is bounded; an EXIT trap kills what was started and deletes
# the namespaces, whatever happens.

set -u
export LC_ALL=C.UTF-8

RNDZ=${1:-${RNDZ_TOOL:-}}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROBE=$HERE/udp-probe.py
PYTHON=/usr/bin/python3

# Seconds
REGISTER_WAIT=10
CONNECT_TIMEOUT=10
FAIL_TIMEOUT=4
MARGIN=2

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

PREFIX=rndz-$$-$RANDOM
NS_SRV=$PREFIX-srv
NS_ISP=$PREFIX-isp
NS_RA=$PREFIX-ra
NS_RB=$PREFIX-rb
NS_PA=$PREFIX-pa
NS_PB=$PREFIX-pb
NS_PROBE=$PREFIX-probe

NAMESPACES=()
declare -A BG_PID=()
TMP=$(mktemp -d "${TMPDIR:-/tmp}/rndz-netns.XXXXXX")

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

addr ()
{
  local ns=$1 dev=$2
  shift 2
  for a in "$@"; do
    case $a in
      *:*) run ip -n "$ns" -6 addr add "$a" dev "$dev" nodad ;;
      *) run ip -n "$ns" addr add "$a" dev "$dev" ;;
    esac
  done
}

# Picks the first iptables backend that can do conntrack and NAT here, for
# both families, trying it in a namespace of its own
choose_iptables ()
{
  local candidates=(iptables iptables-legacy iptables-nft) v4 v6

  if [ -n "${RNDZ_NETNS_IPTABLES:-}" ]; then
    candidates=("$RNDZ_NETNS_IPTABLES")
  fi
  add_ns "$NS_PROBE"
  for v4 in "${candidates[@]}"; do
    v6=${v4/iptables/ip6tables}
    if ! command -v "$v4" >/dev/null || ! command -v "$v6" >/dev/null; then
      continue
    fi
    if nsx "$NS_PROBE" "$v4" -t nat -A POSTROUTING -o lo -j MASQUERADE &&
       nsx "$NS_PROBE" "$v4" -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT &&
       nsx "$NS_PROBE" "$v6" -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    then
      IPT=$v4
      IP6T=$v6
      RANDOM_FULLY=no
      if nsx "$NS_PROBE" "$v4" -t nat -A POSTROUTING -o lo -j MASQUERADE --random-fully; then
        RANDOM_FULLY=yes
      fi
      break
    fi
  done >>"$TMP/setup.log" 2>&1
  ip netns del "$NS_PROBE"
  unset 'NAMESPACES[-1]'
  [ -n "${IPT:-}" ] || skip_all "need iptables with conntrack and NAT in network namespaces (tried ${candidates[*]})"
}

# router NS GATEWAY4 GATEWAY6: forwarding, NAT and firewall between the
# interfaces "lan" and "wan"
router ()
{
  local ns=$1 ipt

  run nsx "$ns" sysctl -qw net.ipv4.ip_forward=1
  run nsx "$ns" sysctl -qw net.ipv6.conf.all.forwarding=1
  run ip -n "$ns" route add default via "$2"
  run ip -n "$ns" -6 route add default via "$3"

  for ipt in "$IPT" "$IP6T"; do
    run nsx "$ns" "$ipt" -P FORWARD DROP
    run nsx "$ns" "$ipt" -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    run nsx "$ns" "$ipt" -A FORWARD -i lan -o wan -j ACCEPT
    run nsx "$ns" "$ipt" -A INPUT -i wan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  done
  run nsx "$ns" "$IP6T" -A INPUT -i wan -p ipv6-icmp -j ACCEPT
  run nsx "$ns" "$IPT" -A INPUT -i wan -j DROP
  run nsx "$ns" "$IP6T" -A INPUT -i wan -j DROP
  run nsx "$ns" "$IPT" -t nat -A POSTROUTING -o wan -j MASQUERADE
}

setup_topology ()
{
  local ns

  for ns in "$NS_SRV" "$NS_ISP" "$NS_RA" "$NS_RB" "$NS_PA" "$NS_PB"; do
    add_ns "$ns"
  done

  veth "$NS_SRV" eth0 "$NS_ISP" srv
  veth "$NS_RA" wan "$NS_ISP" ra
  veth "$NS_RB" wan "$NS_ISP" rb
  veth "$NS_PA" eth0 "$NS_RA" lan
  veth "$NS_PB" eth0 "$NS_RB" lan

  addr "$NS_SRV" eth0 192.0.2.10/24 2001:db8:0:10::10/64
  addr "$NS_ISP" srv 192.0.2.1/24 2001:db8:0:10::1/64
  addr "$NS_ISP" ra 198.51.100.1/24 2001:db8:0:a0::1/64
  addr "$NS_ISP" rb 203.0.113.1/24 2001:db8:0:b0::1/64
  addr "$NS_RA" wan 198.51.100.2/24 2001:db8:0:a0::2/64
  addr "$NS_RA" lan 10.0.1.1/24 2001:db8:0:a1::1/64
  addr "$NS_RB" wan 203.0.113.2/24 2001:db8:0:b0::2/64
  addr "$NS_RB" lan 10.0.2.1/24 2001:db8:0:b1::1/64
  addr "$NS_PA" eth0 10.0.1.2/24 2001:db8:0:a1::2/64
  addr "$NS_PB" eth0 10.0.2.2/24 2001:db8:0:b1::2/64

  run ip -n "$NS_SRV" route add default via 192.0.2.1
  run ip -n "$NS_SRV" -6 route add default via 2001:db8:0:10::1
  run ip -n "$NS_PA" route add default via 10.0.1.1
  run ip -n "$NS_PA" -6 route add default via 2001:db8:0:a1::1
  run ip -n "$NS_PB" route add default via 10.0.2.1
  run ip -n "$NS_PB" -6 route add default via 2001:db8:0:b1::1

  run nsx "$NS_ISP" sysctl -qw net.ipv4.ip_forward=1
  run nsx "$NS_ISP" sysctl -qw net.ipv6.conf.all.forwarding=1
  run ip -n "$NS_ISP" route add 10.0.1.0/24 via 198.51.100.2
  run ip -n "$NS_ISP" route add 10.0.2.0/24 via 203.0.113.2
  run ip -n "$NS_ISP" -6 route add 2001:db8:0:a1::/64 via 2001:db8:0:a0::2
  run ip -n "$NS_ISP" -6 route add 2001:db8:0:b1::/64 via 2001:db8:0:b0::2

  router "$NS_RA" 198.51.100.1 2001:db8:0:a0::1
  router "$NS_RB" 203.0.113.1 2001:db8:0:b0::1
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

# listener NAME NS SERVER ID [--tcp]: a registered `rndz client` echoing
# what it gets; sets PORT to its local port
listener ()
{
  local name=$1 ns=$2 server=$3 id=$4
  shift 4
  bg "$name" "$ns" "$RNDZ" client --id "$id" --server-addr "$server" \
     --timeout "$REGISTER_WAIT" --verbose "$@"
  if ! wait_for "$TMP/$name.out" '^Registered as ' $(( REGISTER_WAIT + 1 )); then
    echo "Bail out! $name did not register"
    sed 's/^/# /' "$TMP/$name.err" | tail -n 20
    exit 1
  fi
  PORT=$(sed -n 's/^Registered as .* on port \([0-9]*\)$/\1/p' "$TMP/$name.out")
}

# connector NAME NS TIMEOUT ARGS...: runs `rndz client`, sets RC and ELAPSED (ms)
connector ()
{
  local name=$1 ns=$2 timeout=$3 start
  shift 3
  start=$(now_ms)
  timeout -k 2 $(( timeout + 5 )) ip netns exec "$ns" "$RNDZ" client \
    --timeout "$timeout" --verbose "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null
  RC=$?
  ELAPSED=$(( $(now_ms) - start ))
}

T=0
result ()
{
  local status=$1 description=$2 directive=${3:-}

  T=$(( T + 1 ))
  if [ "$status" = 0 ]; then
    echo "ok $T - $description${directive:+ # $directive}"
  else
    echo "not ok $T - $description${directive:+ # $directive}"
  fi
}

skip ()
{
  T=$(( T + 1 ))
  echo "ok $T # SKIP $1"
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

TIMINGS=()

# rendezvous DESCRIPTION NAME NS SERVER PEER [--tcp] [TODO-REASON]:
# connects, expects the echo
rendezvous ()
{
  local description=$1 name=$2 ns=$3 server=$4 peer=$5 tcp=${6:-} todo=${7:-}
  local message="$name-$RANDOM" status=1

  connector "$name" "$ns" "$CONNECT_TIMEOUT" --id "$name" --server-addr "$server" \
            --remote-peer "$peer" --message "$message" ${tcp:+"$tcp"}
  if [ "$RC" = 0 ] && [ "$(cat "$TMP/$name.out")" = "$message" ]; then
    status=0
    TIMINGS+=("$description: $ELAPSED ms")
  fi
  result $status "$description ($ELAPSED ms)" "${todo:+TODO $todo}"
  if [ $status != 0 ]; then
    echo "# exit status $RC, stdout: $(head -c 200 "$TMP/$name.out")"
    diag "$TMP/$name.err"
  fi
}

# fails_cleanly DESCRIPTION NAME NS SERVER PEER REGEX [--tcp]: the
# connection must fail with status 1, an error matching REGEX on stderr,
# within the timeout and a margin
fails_cleanly ()
{
  local description=$1 name=$2 ns=$3 server=$4 peer=$5 regex=$6 tcp=${7:-}
  local status=1

  connector "$name" "$ns" "$FAIL_TIMEOUT" --id "$name" --server-addr "$server" \
            --remote-peer "$peer" --message "$name" ${tcp:+"$tcp"}
  if [ "$RC" = 1 ] && [ ! -s "$TMP/$name.out" ] &&
     grep -E -- "$regex" "$TMP/$name.err" | grep -qv -- '-DEBUG' &&
     [ "$ELAPSED" -lt $(( (FAIL_TIMEOUT + MARGIN) * 1000 )) ]; then
    status=0
  fi
  result $status "$description ($ELAPSED ms)"
  grep -v -- '-DEBUG' "$TMP/$name.err" | head -n 3 | sed 's/^/# stderr: /'
  if [ $status != 0 ]; then
    echo "# exit status $RC after $ELAPSED ms (limit $(( FAIL_TIMEOUT + MARGIN )) s)"
    diag "$TMP/$name.err"
  fi
}

# not_yet DESCRIPTION NAME NS SERVER PEER TODO-REASON [--tcp]: a case the
# library does not get through yet. Two tests: it fails cleanly (a real
# test), and it works (an expected failure, "not ok # TODO", until it does)
not_yet ()
{
  local description=$1 name=$2 ns=$3 server=$4 peer=$5 todo=$6 tcp=${7:-}

  fails_cleanly "$description: fails cleanly within the timeout" \
    "$name" "$ns" "$server" "$peer" "peer [^ ]*${peer}[^ ]* " ${tcp:+"$tcp"}
  if [ "$RC" = 0 ]; then
    result 0 "$description: rendezvous" "TODO $todo"
  else
    result 1 "$description: rendezvous" "TODO $todo"
  fi
}

# echo_or_clean_failure DESCRIPTION NAME NS SERVER PEER [--tcp]: a race
# that may go either way: the echo, or a clean failure within the timeout
echo_or_clean_failure ()
{
  local description=$1 name=$2 ns=$3 server=$4 peer=$5 tcp=${6:-} outcome=

  connector "$name" "$ns" "$FAIL_TIMEOUT" --id "$name" --server-addr "$server" \
            --remote-peer "$peer" --message "$name" ${tcp:+"$tcp"}
  if [ "$RC" = 0 ] && [ "$(cat "$TMP/$name.out")" = "$name" ]; then
    outcome="got through this time"
  elif [ "$RC" = 1 ] && [ ! -s "$TMP/$name.out" ] &&
       grep -v -- '-DEBUG' "$TMP/$name.err" | grep -qE "peer [^ ]*${peer}[^ ]* " &&
       [ "$ELAPSED" -lt $(( (FAIL_TIMEOUT + MARGIN) * 1000 )) ]; then
    outcome="failed cleanly"
  fi
  [ -n "$outcome" ]
  result $? "$description: echo or clean failure (${outcome:-neither}, $ELAPSED ms)"
  [ -n "$outcome" ] || diag "$TMP/$name.err"
}

# ---------------------------------------------------------------------------

choose_iptables
setup_topology

N_TESTS=29
echo "1..$N_TESTS"
echo "# namespaces $PREFIX-*, firewall with $IPT and $IP6T"

SERVER4=192.0.2.10:7777
SERVER6="[2001:db8:0:10::10]:7777"

bg server4 "$NS_SRV" "$RNDZ" server --listen-addr "$SERVER4" --verbose
bg server6 "$NS_SRV" "$RNDZ" server --listen-addr "$SERVER6" --verbose
wait_for "$TMP/server4.out" '^Listening on ' 5 || { diag "$TMP/server4.err"; bail_out "the IPv4 server did not start"; }
wait_for "$TMP/server6.out" '^Listening on ' 5 || { diag "$TMP/server6.err"; bail_out "the IPv6 server did not start"; }

listener alice-udp4 "$NS_PA" "$SERVER4" alice
PORT_ALICE_UDP=$PORT
listener alice-tcp4 "$NS_PA" "$SERVER4" alice --tcp
PORT_ALICE_TCP=$PORT
listener bob-udp4 "$NS_PB" "$SERVER4" bob
PORT_BOB_UDP=$PORT
listener bob-tcp4 "$NS_PB" "$SERVER4" bob --tcp
listener alice-udp6 "$NS_PA" "$SERVER6" alice
PORT_ALICE_UDP6=$PORT
listener alice-tcp6 "$NS_PA" "$SERVER6" alice --tcp

# 1-2. The server sees the routers' public addresses, with the ports kept
while read -r id public port router; do
  description="NAT: the server sees $id at router $router's public address $public, port $port kept"
  if grep -qE "Registered UDP peer [^ ]*${id}[^ ]* at ${public//./\\.}:$port\$" "$TMP/server4.err" &&
     ! grep -qE "Registered .* at 10\\." "$TMP/server4.err"; then
    result 0 "$description"
  else
    result 1 "$description"
    grep 'Registered' "$TMP/server4.err" | sed 's/^/# /'
  fi
done <<EOF
alice 198.51.100.2 $PORT_ALICE_UDP A
bob 203.0.113.2 $PORT_BOB_UDP B
EOF

# 3-5. A mapping opened by a datagram to the server lets the server's answer
# in, and nothing else: not another port of the server, not another host;
# and nothing reaches the private address straight
if [ -x "$PYTHON" ]; then
  bg respond4 "$NS_SRV" "$PYTHON" "$PROBE" respond 40001 5
  wait_for "$TMP/respond4.out" '^ready' 5
  bg probe4 "$NS_PA" "$PYTHON" "$PROBE" listen 40000 2.5 192.0.2.10 40001
  wait_for "$TMP/probe4.out" '^ready' 5
  wait_for "$TMP/respond4.out" '^observed' 3
  nsx "$NS_ISP" "$PYTHON" "$PROBE" send 198.51.100.2 40000 other-host
  nsx "$NS_SRV" "$PYTHON" "$PROBE" send 10.0.1.2 40000 direct
  nsx "$NS_SRV" "$PYTHON" "$PROBE" send 198.51.100.2 40002 no-mapping
  wait "${BG_PID[probe4]}"
  unset 'BG_PID[probe4]'
  bg_stop respond4

  grep -q '^observed 198\.51\.100\.2 40000$' "$TMP/respond4.out" &&
    grep -q '^got solicited from 192\.0\.2\.10 port 40001$' "$TMP/probe4.out"
  result $? "NAT: the reply to pa's datagram gets in; the server saw it from 198.51.100.2:40000"
  ! grep -qE 'other-port|other-host|no-mapping' "$TMP/probe4.out"
  result $? "firewall: unsolicited datagrams to router A's mapping (another server port, another host) do not reach pa"
  ! grep -q 'direct' "$TMP/probe4.out"
  result $? "firewall: a datagram routed straight to pa's private address 10.0.1.2 is dropped"
  if [ "$T" -ge 4 ] && grep -qE 'other|direct|no-mapping' "$TMP/probe4.out"; then
    diag "$TMP/probe4.out" "$TMP/respond4.out"
  fi
else
  skip "no $PYTHON"
  skip "no $PYTHON"
  skip "no $PYTHON"
fi

# 6. Nobody connects to alice's TCP port from outside, but by rendezvous
tcp_probe ()
{
  nsx "$NS_SRV" timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}
tcp_probe 198.51.100.2 "$PORT_ALICE_TCP"
via_public=$?
tcp_probe 10.0.1.2 "$PORT_ALICE_TCP"
via_private=$?
[ $via_public != 0 ] && [ $via_private != 0 ]
result $? "firewall: TCP connections from the server to alice's listening port $PORT_ALICE_TCP fail, via 198.51.100.2 and via 10.0.1.2"

# 7-10. Rendezvous through both NATs, both ways, and the echo back
rendezvous "UDP rendezvous from pb to alice behind NAT A, echo received" \
  carol-udp4 "$NS_PB" "$SERVER4" alice
rendezvous "UDP rendezvous from pa to bob behind NAT B, echo received" \
  dave-udp4 "$NS_PA" "$SERVER4" bob
rendezvous "TCP rendezvous from pb to alice behind NAT A, echo received" \
  carol-tcp4 "$NS_PB" "$SERVER4" alice --tcp
rendezvous "TCP rendezvous from pa to bob behind NAT B, echo received" \
  dave-tcp4 "$NS_PA" "$SERVER4" bob --tcp

# 11-14. IPv6: no NAT, the same stateful firewalls
grep -qE "Registered UDP peer [^ ]*alice[^ ]* at \\[?2001:db8:0:a1::2\\]?:$PORT_ALICE_UDP6\$" "$TMP/server6.err"
result $? "IPv6: the server sees alice at her own address 2001:db8:0:a1::2, port $PORT_ALICE_UDP6"

if [ -x "$PYTHON" ]; then
  bg respond6 "$NS_SRV" "$PYTHON" "$PROBE" respond 40001 5
  wait_for "$TMP/respond6.out" '^ready' 5
  bg probe6 "$NS_PA" "$PYTHON" "$PROBE" listen 40000 2.5 2001:db8:0:10::10 40001
  wait_for "$TMP/probe6.out" '^ready' 5
  wait_for "$TMP/respond6.out" '^observed' 3
  nsx "$NS_SRV" "$PYTHON" "$PROBE" send 2001:db8:0:a1::2 40003 unsolicited
  nsx "$NS_ISP" "$PYTHON" "$PROBE" send 2001:db8:0:a1::2 40000 other-host
  wait "${BG_PID[probe6]}"
  unset 'BG_PID[probe6]'
  bg_stop respond6
  grep -q '^observed 2001:db8:0:a1::2 40000$' "$TMP/respond6.out" &&
    grep -q '^got solicited from 2001:db8:0:10::10 port 40001$' "$TMP/probe6.out" &&
    ! grep -qE 'other-port|other-host|unsolicited' "$TMP/probe6.out"
  status=$?
  result $status "IPv6 firewall: only the reply to pa's own datagram gets in, not other ports or hosts"
  [ $status = 0 ] || diag "$TMP/probe6.out" "$TMP/respond6.out"
else
  skip "no $PYTHON"
fi

rendezvous "IPv6: UDP rendezvous from pb to alice through both firewalls, echo received" \
  carol-udp6 "$NS_PB" "$SERVER6" alice
rendezvous "IPv6: TCP rendezvous from pb to alice through both firewalls, echo received" \
  carol-tcp6 "$NS_PB" "$SERVER6" alice --tcp

# 15-16. An unknown peer: the server says so at once
fails_cleanly "UDP: an unknown peer fails at once with a clear error" \
  erin-udp4 "$NS_PB" "$SERVER4" nobody 'nobody.* not registered'
fails_cleanly "TCP: an unknown peer fails at once with a clear error" \
  erin-tcp4 "$NS_PB" "$SERVER4" nobody 'nobody.* not registered' --tcp

# 17-20. Router B turns into a symmetric NAT: a new random port for every
# destination (MASQUERADE --random-fully). Its mapping towards alice is not
# the one the server saw, and router A only lets in what comes from the
# latter: hole punching through port-restricted NAT + symmetric NAT fails.
if [ "$RANDOM_FULLY" = yes ]; then
  run nsx "$NS_RB" "$IPT" -t nat -R POSTROUTING 1 -o wan -j MASQUERADE --random-fully
  not_yet "UDP through a symmetric NAT (router B --random-fully)" \
    frank-udp4 "$NS_PB" "$SERVER4" alice "symmetric NAT is not traversed (doc/nat-traversal.md)"
  not_yet "TCP through a symmetric NAT (router B --random-fully)" \
    frank-tcp4 "$NS_PB" "$SERVER4" alice "symmetric NAT is not traversed (doc/nat-traversal.md)" --tcp
  run nsx "$NS_RB" "$IPT" -t nat -R POSTROUTING 1 -o wan -j MASQUERADE
else
  for i in 1 2 3 4; do skip "$IPT has no MASQUERADE --random-fully"; done
fi

# 21-25. Routers that let unsolicited packets in for themselves (no INPUT
# filter on the WAN, only FORWARD): the router's own stack answers a punch
# that arrives before its peer has sent anything (ICMP port unreachable,
# TCP RST), and conntrack keeps an entry for it. That entry holds the
# tuple (far peer, our public address:port), so when our peer then sends
# to the far peer, MASQUERADE finds the tuple taken and picks another
# source port (UDP), or the SYNs are answered by RSTs on each side in turn
# (TCP, where retries get through one such router but rarely two).
# Listeners punch first, so for UDP this hurts when the requester's router
# is the permissive one.
run nsx "$NS_RB" "$IPT" -D INPUT -i wan -j DROP
rendezvous "TCP rendezvous from pb to alice, router B without WAN input filter, echo received" \
  heidi-tcp4 "$NS_PB" "$SERVER4" alice --tcp
rendezvous "UDP rendezvous from pa to bob, router B without WAN input filter, echo received" \
  ivan-udp4 "$NS_PA" "$SERVER4" bob
not_yet "UDP from pb to alice, router B without WAN input filter" \
  heidi-udp4 "$NS_PB" "$SERVER4" alice "the punch reaches router B first and its conntrack entry makes MASQUERADE change pb's port (doc/nat-traversal.md)"
run nsx "$NS_RA" "$IPT" -D INPUT -i wan -j DROP
# Both routers answer: every SYN meets a RST from the far router, unless
# two retries happen to cross
echo_or_clean_failure "TCP from pb to alice, neither router with WAN input filter" \
  judy-tcp4 "$NS_PB" "$SERVER4" alice --tcp
run nsx "$NS_RA" "$IPT" -A INPUT -i wan -j DROP
run nsx "$NS_RB" "$IPT" -A INPUT -i wan -j DROP

# 26-27. Routers that reject what they do not expect, as OpenWrt does (TCP
# RST for TCP, ICMP port unreachable for the rest), on input and when
# forwarding. Rejected packets leave no conntrack entry, so UDP gets
# through; but a RST kills the TCP connect it answers, and the far side's
# SYN then finds no SYN_SENT socket and state to match: TCP gets through
# only when two retries cross.
for ns in "$NS_RA" "$NS_RB"; do
  run nsx "$ns" "$IPT" -R INPUT 2 -i wan -p tcp -j REJECT --reject-with tcp-reset
  run nsx "$ns" "$IPT" -A INPUT -i wan -j REJECT --reject-with icmp-port-unreachable
  run nsx "$ns" "$IPT" -A FORWARD -p tcp -j REJECT --reject-with tcp-reset
  run nsx "$ns" "$IPT" -A FORWARD -j REJECT --reject-with icmp-port-unreachable
done
rendezvous "UDP rendezvous from pb to alice, both routers rejecting (OpenWrt style), echo received" \
  kim-udp4 "$NS_PB" "$SERVER4" alice
echo_or_clean_failure "TCP from pb to alice, both routers rejecting (OpenWrt style)" \
  kim-tcp4 "$NS_PB" "$SERVER4" alice --tcp
for ns in "$NS_RA" "$NS_RB"; do
  run nsx "$ns" "$IPT" -D FORWARD -j REJECT --reject-with icmp-port-unreachable
  run nsx "$ns" "$IPT" -D FORWARD -p tcp -j REJECT --reject-with tcp-reset
  run nsx "$ns" "$IPT" -D INPUT -i wan -j REJECT --reject-with icmp-port-unreachable
  run nsx "$ns" "$IPT" -R INPUT 2 -i wan -j DROP
done

# 28-29. Router A drops everything now that alice has registered: the
# server forwards the request, which never arrives
run nsx "$NS_RA" "$IPT" -I FORWARD 1 -j DROP
fails_cleanly "UDP: a peer whose router drops everything fails with a clear error within the timeout" \
  grace-udp4 "$NS_PB" "$SERVER4" alice 'peer [^ ]*alice[^ ]* '
fails_cleanly "TCP: a peer whose router drops everything fails with a clear error within the timeout" \
  grace-tcp4 "$NS_PB" "$SERVER4" alice 'peer [^ ]*alice[^ ]* ' --tcp
run nsx "$NS_RA" "$IPT" -D FORWARD 1

for timing in "${TIMINGS[@]}"; do
  echo "# time: $timing"
done

[ "$T" = "$N_TESTS" ] || bail_out "ran $T tests, planned $N_TESTS"
