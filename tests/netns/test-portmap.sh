#!/bin/bash
# test-portmap.sh: port mapping on a real router (miniupnpd), in network namespaces
#
# SPDX-License-Identifier: MIT
#
# Usage: test-portmap.sh [PATH-TO-RNDZ]   (or RNDZ_TOOL=PATH test-portmap.sh)
# Prints TAP. Needs root, iptables-legacy (miniupnpd's iptables backend
# drives the kernel's legacy tables through libiptc) and miniupnpd
# (Debian's miniupnpd-iptables); skips itself otherwise. Environment:
#   RNDZ_NETNS_KEEP=1   keep the logs (their directory is printed)
#   RNDZ_PORTMAP_ROUNDS=N   connections of each transport (default 10)
#
# Topology, seven namespaces named rndz-pm-PID-RANDOM-*, nothing outside:
#
#                         srv  192.0.2.10
#                          |
#                         isp  (a plain router: the Internet)
#          11.1.1.0/24 /   \ 203.0.113.0/24
#     11.1.1.2 wan  ra       rb  wan 203.0.113.2
#    10.0.1.1 lan     |        |   lan 10.0.2.1
#                     pa       pb  10.0.2.2       pc 10.0.2.3 (no default
#                  10.0.1.2                       route: no gateway)
#
# Both routers are hard NATs: MASQUERADE --random-fully gives every
# destination a port of its own, and a stateful firewall drops what
# comes in unasked. ra runs miniupnpd (UPnP-IGD, NAT-PMP and PCP) on its
# LAN, with the chains it expects (as its iptables_init.sh makes them).
# ra's public address is not from a documentation range: miniupnpd maps
# nothing on an address it knows to be reserved.
# One rendezvous server, without a relay: a connection is direct or
# fails. Without a mapping, no direct path exists between pa and pb.
#
# Tests: the listeners in pa get mappings (seen in miniupnpd's chains);
# UDP and TCP from pb reach them directly, ROUNDS times each (times
# reported); the same with the listeners' port mapping off fails (the
# control); the mappings are gone once the listeners stop; the first
# registration takes as long with port mapping on as off, behind a
# gateway that does not map (pb) and without any gateway (pc), where
# not a datagram goes to port 5351; and with miniupnpd's NAT-PMP and PCP
# off, UPnP-IGD alone maps, lets UDP and TCP in, and removes its mappings.

set -u
export LC_ALL=C.UTF-8

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=netns-lib.sh
. "$HERE/netns-lib.sh"

RNDZ=${1:-${RNDZ_TOOL:-}}
ROUNDS=${RNDZ_PORTMAP_ROUNDS:-10}
MINIUPNPD=${RNDZ_MINIUPNPD:-/usr/sbin/miniupnpd}
IPT=iptables-legacy
SERVER=192.0.2.10:7777
# Seconds
REGISTER_WAIT=10
CONNECT_TIMEOUT=8
MAP_WAIT=8

if [ -z "$RNDZ" ] || [ ! -x "$RNDZ" ]; then
  bail_out "no rndz program: pass its path, or set RNDZ_TOOL"
fi
if [ "$(id -u)" != 0 ]; then
  skip_all "need root and network namespaces (not running as root)"
fi
for program in ip timeout "$IPT"; do
  command -v "$program" >/dev/null || skip_all "need $program"
done
[ -x "$MINIUPNPD" ] || skip_all "need miniupnpd (Debian: miniupnpd-iptables)"
"$MINIUPNPD" --version 2>&1 | grep -q 'iptables' ||
  skip_all "need miniupnpd's iptables backend (Debian: miniupnpd-iptables)"

PREFIX=rndz-pm-$$-$RANDOM
NS_SRV=$PREFIX-srv
NS_ISP=$PREFIX-isp
NS_RA=$PREFIX-ra
NS_RB=$PREFIX-rb
NS_PA=$PREFIX-pa
NS_PB=$PREFIX-pb
NS_PC=$PREFIX-pc

netns_init rndz-portmap

# router NS GATEWAY: a hard NAT (--random-fully) and a stateful firewall
# between "lan" and "wan"
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
  run nsx "$ns" "$IPT" -t nat -A POSTROUTING -o wan -j MASQUERADE --random-fully
}

# The chains miniupnpd fills, hooked as its iptables_init.sh hooks them
miniupnpd_chains ()
{
  local ns=$1

  run nsx "$ns" "$IPT" -t nat -N MINIUPNPD
  run nsx "$ns" "$IPT" -t nat -I PREROUTING -i wan -j MINIUPNPD
  run nsx "$ns" "$IPT" -t mangle -N MINIUPNPD
  run nsx "$ns" "$IPT" -t mangle -I PREROUTING -i wan -j MINIUPNPD
  run nsx "$ns" "$IPT" -t filter -N MINIUPNPD
  run nsx "$ns" "$IPT" -t filter -I FORWARD -i wan ! -o wan -j MINIUPNPD
  run nsx "$ns" "$IPT" -t nat -N MINIUPNPD-POSTROUTING
  run nsx "$ns" "$IPT" -t nat -I POSTROUTING -o wan -j MINIUPNPD-POSTROUTING
}

setup_topology ()
{
  local ns

  for ns in "$NS_SRV" "$NS_ISP" "$NS_RA" "$NS_RB" "$NS_PA" "$NS_PB" "$NS_PC"; do
    add_ns "$ns"
  done
  # A probe: miniupnpd needs the legacy tables in a namespace
  nsx "$NS_RA" "$IPT" -t nat -L -n >/dev/null 2>&1 ||
    skip_all "need $IPT with NAT in network namespaces"
  nsx "$NS_RA" "$IPT" -t nat -A POSTROUTING -o lo -j MASQUERADE --random-fully 2>/dev/null ||
    skip_all "need MASQUERADE --random-fully"
  run nsx "$NS_RA" "$IPT" -t nat -F POSTROUTING

  veth "$NS_SRV" eth0 "$NS_ISP" srv
  veth "$NS_RA" wan "$NS_ISP" ra
  veth "$NS_RB" wan "$NS_ISP" rb
  veth "$NS_PA" eth0 "$NS_RA" lan
  run ip -n "$NS_RB" link add lan type bridge forward_delay 0
  veth "$NS_PB" eth0 "$NS_RB" lan-pb
  veth "$NS_PC" eth0 "$NS_RB" lan-pc
  run ip -n "$NS_RB" link set lan-pb master lan
  run ip -n "$NS_RB" link set lan-pc master lan
  run ip -n "$NS_RB" link set lan up

  run ip -n "$NS_SRV" addr add 192.0.2.10/24 dev eth0
  run ip -n "$NS_ISP" addr add 192.0.2.1/24 dev srv
  run ip -n "$NS_ISP" addr add 11.1.1.1/24 dev ra
  run ip -n "$NS_ISP" addr add 203.0.113.1/24 dev rb
  run ip -n "$NS_RA" addr add 11.1.1.2/24 dev wan
  run ip -n "$NS_RA" addr add 10.0.1.1/24 dev lan
  run ip -n "$NS_RB" addr add 203.0.113.2/24 dev wan
  run ip -n "$NS_RB" addr add 10.0.2.1/24 dev lan
  run ip -n "$NS_PA" addr add 10.0.1.2/24 dev eth0
  run ip -n "$NS_PB" addr add 10.0.2.2/24 dev eth0
  run ip -n "$NS_PC" addr add 10.0.2.3/24 dev eth0

  run ip -n "$NS_SRV" route add default via 192.0.2.1
  run ip -n "$NS_PA" route add default via 10.0.1.1
  run ip -n "$NS_PB" route add default via 10.0.2.1
  # pc reaches the server, but has no default route: no gateway
  run ip -n "$NS_PC" route add 192.0.2.0/24 via 10.0.2.1
  run nsx "$NS_ISP" sysctl -qw net.ipv4.ip_forward=1

  router "$NS_RA" 11.1.1.1
  router "$NS_RB" 203.0.113.1
  miniupnpd_chains "$NS_RA"
  # Counts what pc and pb send to port 5351, of their router or anyone
  for ipt_chain in INPUT FORWARD; do
    run nsx "$NS_RB" "$IPT" -I "$ipt_chain" -i lan -s 10.0.2.3 -p udp --dport 5351
    run nsx "$NS_RB" "$IPT" -I "$ipt_chain" -i lan -s 10.0.2.2 -p udp --dport 5351
  done
}

median ()
{
  printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "-" }'
}

listener ()
{
  local name=$1 ns=$2 id=$3
  shift 3
  bg "$name" "$ns" "$RNDZ" client --id "$id" --server-addr "$SERVER" \
     --timeout "$REGISTER_WAIT" --verbose "$@"
  if ! wait_for "$TMP/$name.out" '^Registered as ' $(( REGISTER_WAIT + 1 )); then
    echo "Bail out! $name did not register"
    diag "$TMP/$name.err"
    exit 1
  fi
}

# The DNAT rules miniupnpd holds, for PROTO (udp or tcp)
mappings ()
{
  nsx "$NS_RA" "$IPT" -t nat -S MINIUPNPD 2>/dev/null | grep -c -- "-p $1 .*DNAT"
}

# wait_mapped PROTO SECONDS
wait_mapped ()
{
  local deadline=$(( $(now_ms) + $2 * 1000 ))

  until [ "$(mappings "$1")" -ge 1 ]; do
    [ "$(now_ms)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# connect NAME ARGS...: sets RC, MS (the whole run: rendezvous, the
# message and its echo), PATH_TAKEN
connect ()
{
  local name=$1 start line
  shift
  start=$(now_ms)
  timeout -k 2 $(( CONNECT_TIMEOUT + 5 )) ip netns exec "$NS_PB" "$RNDZ" client \
    --timeout "$CONNECT_TIMEOUT" --verbose --server-addr "$SERVER" "$@" \
    >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null
  RC=$?
  MS=$(( $(now_ms) - start ))
  line=$(grep -v -- '-DEBUG' "$TMP/$name.err" | grep -m 1 -E 'Connected to|Reached peer')
  PATH_TAKEN=$(grep -m 1 -oE '\b(direct|local|relayed)\b' <<<"$line")
  PATH_TAKEN=${PATH_TAKEN:-?}
}

# rounds TRANSPORT PEER [--tcp]: ROUNDS connections; sets OK, TIMES, PATHS
rounds ()
{
  local transport=$1 peer=$2 tcp=${3:-} i message seen
  OK=0
  TIMES=()
  PATHS=()
  for (( i = 1; i <= ROUNDS; i++ )); do
    # The server limits requests from one address: pb's are spaced out
    [ "$i" = 1 ] || sleep 0.5
    message="m-$transport-$i-$RANDOM"
    seen=$(wc -l <"$TMP/$peer.err" 2>/dev/null || echo 0)
    connect "bob-$transport-$i" --id "bob-$transport-$i" --remote-peer "$peer" \
            --message "$message" ${tcp:+"$tcp"}
    if [ "$RC" = 0 ] && [ "$(cat "$TMP/bob-$transport-$i.out")" = "$message" ] &&
       [[ $PATH_TAKEN =~ ^(direct|local)$ ]]; then
      OK=$(( OK + 1 ))
      TIMES+=("$MS")
      PATHS+=("$PATH_TAKEN")
    else
      echo "# $transport round $i: exit status $RC after $MS ms, path $PATH_TAKEN"
      grep -v -- '-DEBUG' "$TMP/bob-$transport-$i.err" | head -n 3 | sed 's/^/#   /'
      # What each side did, for a failure in CI, where the logs go
      echo "#   bob-$transport-$i, last lines:"
      tail -n 30 "$TMP/bob-$transport-$i.err" | sed 's/^/#     /'
      if [ -f "$TMP/$peer.err" ]; then
        echo "#   $peer, during the round:"
        tail -n +"$(( seen + 1 ))" "$TMP/$peer.err" | head -n 40 | sed 's/^/#     /'
      fi
    fi
  done
}

# register_ms NS ARGS...: how long `rndz client` takes from its start to
# "Registered as" (its own clock, through a timestamped pipe)
register_ms ()
{
  local ns=$1 start line t
  shift
  start=${EPOCHREALTIME/./}
  timeout -k 1 1.5 ip netns exec "$ns" "$RNDZ" client --server-addr "$SERVER" \
    --timeout 5 "$@" 2>/dev/null </dev/null |
    while IFS= read -r line; do
      t=${EPOCHREALTIME/./}
      case $line in
        "Registered as "*) echo $(( (t - start) / 1000 )) ;;
      esac
    done
}

setup_topology

# start_miniupnpd NATPMP: miniupnpd on ra; NATPMP (yes or no) turns
# NAT-PMP and PCP on or off (UPnP-IGD is always on)
start_miniupnpd ()
{
  cat >"$TMP/miniupnpd.conf" <<EOF
ext_ifname=wan
listening_ip=lan
http_port=0
enable_natpmp=$1
enable_upnp=yes
secure_mode=yes
system_uptime=no
min_lifetime=120
max_lifetime=86400
uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b
allow 1024-65535 10.0.1.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
EOF
  bg miniupnpd "$NS_RA" "$MINIUPNPD" -d -f "$TMP/miniupnpd.conf" -P "$TMP/miniupnpd.pid"
}

start_miniupnpd yes
bg server "$NS_SRV" "$RNDZ" server --listen-addr "$SERVER" --verbose
wait_for "$TMP/server.out" '^Listening on ' 5 || { diag "$TMP/server.err"; bail_out "the server did not start"; }
sleep 0.3
kill -0 "${BG_PID[miniupnpd]}" 2>/dev/null || { diag "$TMP/miniupnpd.err"; bail_out "miniupnpd did not start"; }

echo "1..14"

# 1. The listeners get their mappings from miniupnpd
listener alice-udp "$NS_PA" alice-udp
listener alice-tcp "$NS_PA" alice-tcp --tcp
status=0
wait_mapped udp "$MAP_WAIT" || status=1
wait_mapped tcp "$MAP_WAIT" || status=1
result $status "miniupnpd maps a UDP and a TCP port for the listeners behind ra"
if [ $status != 0 ]; then
  nsx "$NS_RA" "$IPT" -t nat -S MINIUPNPD | sed 's/^/# /'
  diag "$TMP/miniupnpd.err" "$TMP/alice-udp.err"
fi
method=$(grep -m 1 -oE '(PCP|NAT-PMP|UPnP-IGD): the gateway maps [^ ]*' "$TMP/alice-udp.err")
echo "# $method"

# 2-3. Both routers hard: UDP and TCP from pb reach pa directly
rounds udp alice-udp
result $(( OK == ROUNDS ? 0 : 1 )) "UDP through two port-rewriting NATs, via the mapped port: $OK of $ROUNDS direct"
echo "# UDP: median $(median "${TIMES[@]}") ms (all: ${TIMES[*]:-none}), paths: $(printf '%s\n' "${PATHS[@]}" | sort | uniq -c | tr -s ' \n' ' ')"
rounds tcp alice-tcp --tcp
result $(( OK == ROUNDS ? 0 : 1 )) "TCP through two port-rewriting NATs, via the mapped port: $OK of $ROUNDS direct"
echo "# TCP: median $(median "${TIMES[@]}") ms (all: ${TIMES[*]:-none}), paths: $(printf '%s\n' "${PATHS[@]}" | sort | uniq -c | tr -s ' \n' ' ')"

# 4-5. Stopped: miniupnpd forgets the mappings
bg_stop alice-udp
bg_stop alice-tcp
status=0
for (( i = 0; i < 40; i++ )); do
  [ "$(mappings udp)" = 0 ] && [ "$(mappings tcp)" = 0 ] && break
  sleep 0.05
done
[ "$(mappings udp)" = 0 ] && [ "$(mappings tcp)" = 0 ] || status=1
result $status "the mappings are gone from miniupnpd once the listeners stop ($(( i * 50 )) ms)"
[ $status = 0 ] || nsx "$NS_RA" "$IPT" -t nat -S MINIUPNPD | sed 's/^/# /'
nsx "$NS_RA" "$IPT" -S MINIUPNPD | grep -q -- '-j ACCEPT' && status=1
result $status "and so are miniupnpd's forwarding rules"

# 6-7. The control: port mapping off, the same NATs, no direct path
listener alice-udp-off "$NS_PA" alice-udp-off --no-port-mapping
listener alice-tcp-off "$NS_PA" alice-tcp-off --tcp --no-port-mapping
ROUNDS_SAVED=$ROUNDS
ROUNDS=1
rounds udp-off alice-udp-off
result $(( OK == 0 ? 0 : 1 )) "control: without port mapping, UDP finds no direct path ($OK of 1)"
rounds tcp-off alice-tcp-off --tcp
result $(( OK == 0 ? 0 : 1 )) "control: without port mapping, TCP finds no direct path ($OK of 1)"
ROUNDS=$ROUNDS_SAVED
[ "$(mappings udp)" = 0 ] && [ "$(mappings tcp)" = 0 ] || echo "# a listener with port mapping off has a mapping"
bg_stop alice-udp-off
bg_stop alice-tcp-off

# 8-9. No delay: the first registration, port mapping on and off, behind
# a gateway that does not map (pb: rb has no PCP, NAT-PMP or UPnP) and
# with no gateway at all (pc)
for where in pb pc; do
  ns=$NS_PB
  [ $where = pc ] && ns=$NS_PC
  on=()
  off=()
  for (( i = 1; i <= 5; i++ )); do
    on+=("$(register_ms "$ns" --id "reg-$where-on-$i")")
    off+=("$(register_ms "$ns" --id "reg-$where-off-$i" --no-port-mapping)")
  done
  m_on=$(median "${on[@]}")
  m_off=$(median "${off[@]}")
  echo "# $where: registered in ${on[*]} ms with port mapping on (median $m_on), ${off[*]} ms off (median $m_off)"
  status=1
  if [ "${#on[@]}" = 5 ] && [ -n "$m_on" ] && [ "$m_on" != - ] && [ "$m_on" -le $(( m_off + 100 )) ]; then
    status=0
  fi
  case $where in
    pb) result $status "behind a router without port mapping, registration is not delayed (median $m_on ms on, $m_off ms off)" ;;
    pc) result $status "without a gateway, registration is not delayed (median $m_on ms on, $m_off ms off)" ;;
  esac
done

# 10. Without a gateway, nothing goes to port 5351
sent_to_5351 ()
{
  nsx "$NS_RB" "$IPT" -v -S INPUT | grep -E -- "-s $1/32 .*--dport 5351" | awk '{ n += $NF - 0; for (i = 1; i < NF; i++) if ($i == "-c") n2 += $(i + 1) } END { print n2 + 0 }'
}
sent_pc=$(( $(sent_to_5351 10.0.2.3) ))
sent_pb=$(( $(sent_to_5351 10.0.2.2) ))
result $(( sent_pc == 0 && sent_pb > 0 ? 0 : 1 )) "without a gateway, no datagram to port 5351 (pc: $sent_pc; pb, which has one: $sent_pb)"

# 11-14. UPnP-IGD alone: miniupnpd with NAT-PMP and PCP off
bg_stop miniupnpd
start_miniupnpd no
sleep 0.3
listener alice-udp-upnp "$NS_PA" alice-udp-upnp
listener alice-tcp-upnp "$NS_PA" alice-tcp-upnp --tcp
status=0
wait_mapped udp "$MAP_WAIT" || status=1
wait_mapped tcp "$MAP_WAIT" || status=1
method=$(grep -m 1 -oE '(PCP|NAT-PMP|UPnP-IGD): the gateway maps [^ ]*' "$TMP/alice-udp-upnp.err")
[[ $method == UPnP-IGD* ]] || status=1
result $status "UPnP-IGD alone maps the ports (${method:-no mapping})"
[ $status = 0 ] || diag "$TMP/alice-udp-upnp.err"
ROUNDS_SAVED=$ROUNDS
ROUNDS=3
rounds udp-upnp alice-udp-upnp
result $(( OK == ROUNDS ? 0 : 1 )) "UDP via a UPnP-IGD mapping: $OK of $ROUNDS direct (${TIMES[*]:-none} ms)"
rounds tcp-upnp alice-tcp-upnp --tcp
result $(( OK == ROUNDS ? 0 : 1 )) "TCP via a UPnP-IGD mapping: $OK of $ROUNDS direct (${TIMES[*]:-none} ms)"
ROUNDS=$ROUNDS_SAVED
bg_stop alice-udp-upnp
bg_stop alice-tcp-upnp
status=0
for (( i = 0; i < 40; i++ )); do
  [ "$(mappings udp)" = 0 ] && [ "$(mappings tcp)" = 0 ] && break
  sleep 0.05
done
[ "$(mappings udp)" = 0 ] && [ "$(mappings tcp)" = 0 ] || status=1
result $status "the UPnP-IGD mappings are gone once the listeners stop ($(( i * 50 )) ms)"
[ $status = 0 ] || nsx "$NS_RA" "$IPT" -t nat -S MINIUPNPD | sed 's/^/# /'
