#!/bin/bash
# test-nat-secure.sh: secure connections (DTLS, TLS) through real NATs, in
# network namespaces
#
# SPDX-License-Identifier: MIT
#
# Usage: test-nat-secure.sh [PATH-TO-RNDZ]   (or RNDZ_TOOL=PATH ...)
# Prints TAP. Needs root, iptables with conntrack, and PyGObject with the
# Rndz typelib (secure-peer.py is the peer: `rndz client` has no secure
# mode yet); skips itself otherwise. Environment:
#   RNDZ_NETNS_IPTABLES  iptables, iptables-legacy or iptables-nft
#   RNDZ_NETNS_KEEP=1    keep the logs (their directory is printed)
#   RNDZ_NETNS_IDLE=S    how long the keepalive cases stay idle (default 180)
#
# Topology, ten namespaces named rndz-PID-RANDOM-*, IPv4 only, routers
# as in test-nat.sh (MASQUERADE, a stateful firewall, no hairpin):
#
#                     srv 192.0.2.10 (rndz server: 7777; 7778, relay 7779)
#                      |
#                     isp
#        ____________/ | \ \____________
#       ra           rb   rc            rd      wan 198.51.100.2, 203.0.113.2,
#       |            |    |             |           198.18.0.2, 198.18.1.2
#       pa           pb   pc            pd      lan 10.0.1-4.0/24, hosts .2
#
# ra and rb carry the path cases: direct, then router B per-destination-port
# ("symmetric", --random-fully: the hard-NAT phase), then both symmetric
# (the relay). rc and rd carry only the keepalive cases, which run in the
# background meanwhile: their conntrack UDP timeouts are 30 s, and a DTLS
# channel between pc and pd stays idle for RNDZ_NETNS_IDLE seconds, once
# with the default keepalive (the channel must still carry data) and once
# with keepalives all but off (it must not: the routers forgot the path).
#
# Every wait is bounded; an EXIT trap kills what was started and deletes
# the namespaces, whatever happens.

set -u
export LC_ALL=C.UTF-8

RNDZ=${1:-${RNDZ_TOOL:-}}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=netns-lib.sh
. "$HERE/netns-lib.sh"
PEER=$HERE/secure-peer.py
PYTHON=/usr/bin/python3
IDLE=${RNDZ_NETNS_IDLE:-180}
CONNECT_TIMEOUT=25
# Keepalives all but off: the longest interval a channel takes, 11.5 days
NO_KEEPALIVE=1000000000
# How many times the hard-NAT case may try: it is a game of chance
HARD_TRIALS=3

if [ -z "$RNDZ" ] || [ ! -x "$RNDZ" ]; then
  echo "Bail out! no rndz program: pass its path, or set RNDZ_TOOL"
  exit 1
fi
[ "$(id -u)" = 0 ] || skip_all "need root and network namespaces (not running as root)"
for program in ip timeout; do
  command -v "$program" >/dev/null || skip_all "no $program program"
done
BUILT_LIB=$(dirname "$RNDZ")/../rndz-glib
if [ -z "${GI_TYPELIB_PATH:-}" ] && [ -f "$BUILT_LIB/Rndz-1.0.typelib" ]; then
  export GI_TYPELIB_PATH=$BUILT_LIB
  export LD_LIBRARY_PATH=$BUILT_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
"$PYTHON" -c 'import gi; gi.require_version("Rndz", "1.0"); from gi.repository import Rndz; Rndz.DtlsChannel' \
  2>/dev/null || skip_all "need PyGObject and the Rndz typelib with secure channels"

PREFIX=rndz-$$-$RANDOM
NS_PROBE=$PREFIX-probe
netns_init rndz-netns-secure

# link NS1 IF1 ADDR1 NS2 IF2 ADDR2: a cable, addressed at both ends
link ()
{
  run ip -n "$PREFIX-$1" link add "$2" type veth peer name "$5" netns "$PREFIX-$4"
  run ip -n "$PREFIX-$1" addr add "$3" dev "$2"
  run ip -n "$PREFIX-$4" addr add "$6" dev "$5"
  run ip -n "$PREFIX-$1" link set "$2" up
  run ip -n "$PREFIX-$4" link set "$5" up
}

# router NS N WAN-ADDR: a home router between wan (towards isp, which
# is at .1 of WAN-ADDR's /24) and lan 10.0.N.0/24, whose host is
# 10.0.N.2, as test-nat.sh builds them
router ()
{
  local ns=$1 n=$2 wan=$3 host=$4 gateway=${3%.*}.1

  link "$ns" wan "$wan/24" isp "$ns" "$gateway/24"
  link "$host" eth0 "10.0.$n.2/24" "$ns" lan "10.0.$n.1/24"
  run ip -n "$PREFIX-$host" route add default via "10.0.$n.1"
  run ip -n "$PREFIX-$ns" route add default via "$gateway"
  run ip -n "$PREFIX-isp" route add "10.0.$n.0/24" via "$wan"
  run nsx "$PREFIX-$ns" sysctl -qw net.ipv4.ip_forward=1
  run nsx "$PREFIX-$ns" "$IPT" -P FORWARD DROP
  run nsx "$PREFIX-$ns" "$IPT" -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  run nsx "$PREFIX-$ns" "$IPT" -A FORWARD -i lan -o wan -j ACCEPT
  run nsx "$PREFIX-$ns" "$IPT" -A INPUT -i wan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  run nsx "$PREFIX-$ns" "$IPT" -A INPUT -i wan -j DROP
  run nsx "$PREFIX-$ns" "$IPT" -t nat -A POSTROUTING -o wan -j MASQUERADE
}

setup_topology ()
{
  local ns

  for ns in srv isp ra rb rc rd pa pb pc pd; do
    add_ns "$PREFIX-$ns"
  done
  link srv eth0 192.0.2.10/24 isp srv 192.0.2.1/24
  run ip -n "$PREFIX-srv" route add default via 192.0.2.1
  run nsx "$PREFIX-isp" sysctl -qw net.ipv4.ip_forward=1
  router ra 1 198.51.100.2 pa
  router rb 2 203.0.113.2 pb
  router rc 3 198.18.0.2 pc
  router rd 4 198.18.1.2 pd
  # The keepalive routers forget an idle UDP flow after 30 s, answered
  # or not (the defaults are 30 s and 120 s)
  for ns in rc rd; do
    run nsx "$PREFIX-$ns" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=30
    run nsx "$PREFIX-$ns" sysctl -qw net.netfilter.nf_conntrack_udp_timeout_stream=30
  done
}

# listener NAME NS SERVER ID udp|tcp [KEEPALIVE-MS]: a secure-peer.py
# listener; sets FP to its fingerprint
listener ()
{
  local name=$1 ns=$2 server=$3 id=$4
  shift 4
  bg "$name" "$PREFIX-$ns" "$PYTHON" "$PEER" listen "$id" "$server" "$@"
  if ! wait_for "$TMP/$name.out" '^ready' 15; then
    echo "Bail out! $name did not register"
    diag "$TMP/$name.out" "$TMP/$name.err"
    exit 1
  fi
  FP=$(sed -n 's/^fingerprint //p' "$TMP/$name.out")
}

# connector NAME NS ARGS...: secure-peer.py connect ARGS, bounded; sets RC
connector ()
{
  local name=$1 ns=$2
  shift 2
  timeout -k 2 $(( CONNECT_TIMEOUT + 15 )) ip netns exec "$PREFIX-$ns" "$PYTHON" "$PEER" connect "$@" \
    >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null
  RC=$?
}

# secure_try NAME NS SERVER PEER udp|tcp FP PATH-REGEX: a pinned
# connection; succeeds with the path PATH-REGEX (set in TAKEN), the
# fingerprint FP and the echo
secure_try ()
{
  local name=$1 ns=$2 server=$3 peer=$4 transport=$5 fp=$6 expect=$7

  connector "$name" "$ns" "$name" "$server" "$peer" "$transport" "$fp" 0
  TAKEN=$(sed -n 's/^connected \([a-z]*\) .*/\1/p' "$TMP/$name.out")
  [ "$RC" = 0 ] && grep -q "^connected [a-z]* $fp " "$TMP/$name.out" &&
    grep -q '^echo ' "$TMP/$name.out" && [[ $TAKEN =~ ^($expect)$ ]]
}

# secure_case DESCRIPTION NAME ...: secure_try NAME ..., as a test
secure_case ()
{
  local description=$1 status

  shift
  secure_try "$@"
  status=$?
  result $status "$description (path ${TAKEN:-none})"
  [ $status = 0 ] || diag "$TMP/$1.out" "$TMP/$1.err"
}

# ---------------------------------------------------------------------------

choose_iptables
setup_topology

echo "1..10"
echo "# namespaces $PREFIX-*, firewall with $IPT; keepalive cases idle $IDLE s"

SERVER=192.0.2.10:7777
SERVER_RELAY=192.0.2.10:7778
bg server "$PREFIX-srv" "$RNDZ" server --listen-addr "$SERVER" --verbose
bg server-relay "$PREFIX-srv" "$RNDZ" server --listen-addr "$SERVER_RELAY" --relay-port 7779 --verbose
wait_for "$TMP/server.out" '^Listening on ' 5 && wait_for "$TMP/server-relay.out" '^Listening on ' 5 ||
  { diag "$TMP/server.err"; echo "Bail out! the servers did not start"; exit 1; }

# 1. The routers of the keepalive cases forget UDP flows after 30 s
[ "$(nsx "$PREFIX-rc" sysctl -n net.netfilter.nf_conntrack_udp_timeout_stream)" = 30 ] &&
  [ "$(nsx "$PREFIX-rd" sysctl -n net.netfilter.nf_conntrack_udp_timeout)" = 30 ]
result $? "routers C and D: conntrack UDP timeouts of 30 s"

# The keepalive cases start first and run in the background: pd reaches
# carol (default keepalive) and dave (keepalives all but off, both ends)
listener carol pc "$SERVER" carol udp
FP_CAROL=$FP
listener dave pc "$SERVER" dave udp "$NO_KEEPALIVE"
FP_DAVE=$FP
bg ka "$PREFIX-pd" "$PYTHON" "$PEER" connect pd-ka "$SERVER" carol udp "$FP_CAROL" "$IDLE"
bg noka "$PREFIX-pd" "$PYTHON" "$PEER" connect pd-noka "$SERVER" dave udp "$FP_DAVE" "$IDLE" "$NO_KEEPALIVE"
KA_START=$SECONDS

listener alice-udp pa "$SERVER" alice udp
FP_ALICE_UDP=$FP
listener alice-tcp pa "$SERVER" alice tcp
FP_ALICE_TCP=$FP
listener alice-udp-r pa "$SERVER_RELAY" alice udp
FP_ALICE_UDP_R=$FP
listener alice-tcp-r pa "$SERVER_RELAY" alice tcp
FP_ALICE_TCP_R=$FP

# 2-4. Home NATs on both sides: direct paths, and a wrong pin fails
secure_case "DTLS from pb to alice through two NATs: direct, pinned, echoed" \
  pb-udp pb "$SERVER" alice udp "$FP_ALICE_UDP" direct
secure_case "TLS from pb to alice through two NATs: direct, pinned, echoed" \
  pb-tcp pb "$SERVER" alice tcp "$FP_ALICE_TCP" direct
connector pb-pin pb pb-pin "$SERVER" alice udp "$FP_CAROL" 0
[ "$RC" = 1 ] && grep -q '^error rndz-error-quark 11 ' "$TMP/pb-pin.out" &&
  ! grep -q '^connected' "$TMP/pb-pin.out"
status=$?
result $status "DTLS from pb to alice pinned to another fingerprint: IDENTITY_MISMATCH, no channel"
[ $status = 0 ] || diag "$TMP/pb-pin.out" "$TMP/pb-pin.err"

# 5-7. Router B per destination port: the hard-NAT phase over UDP; TCP
# needs the relay; both routers so: UDP needs it too
if [ "$RANDOM_FULLY" = yes ]; then
  run nsx "$PREFIX-rb" "$IPT" -t nat -R POSTROUTING 1 -o wan -j MASQUERADE --random-fully
  for (( i = 1; i <= HARD_TRIALS; i++ )); do
    secure_try "pb-hard-$i" pb "$SERVER" alice udp "$FP_ALICE_UDP" direct
    status=$?
    [ $status = 0 ] && break
  done
  result $status "DTLS from pb behind a symmetric NAT to alice, no relay: the hard-NAT phase, direct (trial $(( i > HARD_TRIALS ? HARD_TRIALS : i )) of $HARD_TRIALS)"
  [ $status = 0 ] || diag "$TMP/pb-hard-$HARD_TRIALS.out" "$TMP/pb-hard-$HARD_TRIALS.err"
  secure_case "TLS from pb behind a symmetric NAT to alice: relayed, pinned, echoed" \
    pb-tcp-r pb "$SERVER_RELAY" alice tcp "$FP_ALICE_TCP_R" relayed
  run nsx "$PREFIX-ra" "$IPT" -t nat -R POSTROUTING 1 -o wan -j MASQUERADE --random-fully
  secure_case "DTLS between two symmetric NATs: relayed, pinned, echoed" \
    pb-udp-r pb "$SERVER_RELAY" alice udp "$FP_ALICE_UDP_R" relayed
  run nsx "$PREFIX-ra" "$IPT" -t nat -R POSTROUTING 1 -o wan -j MASQUERADE
  run nsx "$PREFIX-rb" "$IPT" -t nat -R POSTROUTING 1 -o wan -j MASQUERADE
else
  for i in 1 2 3; do skip "$IPT has no MASQUERADE --random-fully"; done
fi

# 8-10. The keepalive cases end
for name in ka noka; do
  deadline=$(( KA_START + IDLE + CONNECT_TIMEOUT + 20 ))
  while kill -0 "${BG_PID[$name]}" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
    sleep 0.5
  done
  stop_pid "${BG_PID[$name]}"
  unset "BG_PID[$name]"
done
grep -q '^connected direct ' "$TMP/ka.out" && grep -q '^echo ' "$TMP/ka.out" &&
  grep -q '^connected direct ' "$TMP/noka.out" && grep -q '^echo ' "$TMP/noka.out"
status=$?
result $status "DTLS from pd to carol and dave through routers C and D: direct, echoed at once"
[ $status = 0 ] || diag "$TMP/ka.out" "$TMP/ka.err" "$TMP/noka.out" "$TMP/noka.err"
grep -q '^echo-after-idle ' "$TMP/ka.out"
status=$?
result $status "DTLS idle for $IDLE s with the default keepalive, routers forgetting after 30 s: still carries data"
[ $status = 0 ] || diag "$TMP/ka.out" "$TMP/ka.err" "$TMP/carol.out"
grep -q '^echo ' "$TMP/noka.out" && ! grep -q '^echo-after-idle ' "$TMP/noka.out" &&
  grep -q '^error ' "$TMP/noka.out"
status=$?
result $status "the same without keepalives: the routers forgot the path, nothing comes back (the case above bites)"
[ $status = 0 ] || diag "$TMP/noka.out" "$TMP/dave.out"
