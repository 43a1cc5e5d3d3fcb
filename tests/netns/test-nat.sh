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
#   RNDZ_NETNS_REPORT=FILE  write a markdown table of the rendezvous cases
#                        (NATs, transport, path, time to connect) to FILE
#   RNDZ_NETNS_ONLY=loss only the two cases with loss (12-13)
#   RNDZ_NETNS_ONLY=timings  no tests: the times to connect through every
#                        pair of NATs, with and without loss, measured
#                        (nat-timings.sh; by hand, not in the suite)
#
# Topology, seven namespaces named rndz-PID-RANDOM-*, nothing outside them:
#
#                           srv  192.0.2.10          2001:db8:0:10::10
#                            |   192.0.2.0/24        2001:db8:0:10::/64
#                           isp  (a plain router: the Internet)
#          198.51.100.0/24 /   \ 203.0.113.0/24      2001:db8:0:a0::/64, :b0::/64
#     198.51.100.2 wan  ra       rb  wan 203.0.113.2
#  10.0.1.1 lan (bridge)|        |   lan 10.0.2.1
#     10.0.1.0/24      / \       |       10.0.2.0/24   2001:db8:0:a1::/64, :b1::/64
#         10.0.1.2   pa   pa2    pb      10.0.2.2
#                         10.0.1.3
#
# ra and rb are home routers: IPv4 source NAT (MASQUERADE, which keeps the
# source port when it can: endpoint-independent mapping) and, for IPv4 and
# IPv6 alike, a stateful firewall: forwarding is dropped except LAN to WAN,
# LAN to LAN, and what conntrack finds ESTABLISHED or RELATED; what comes in
# on the WAN for the router itself is dropped likewise, except ICMPv6, which
# neighbour discovery needs. Neither router hairpins: a packet from the LAN
# to the router's own public address is not sent back into the LAN. The isp
# routes the routers' private prefixes to them, as a hostile neighbour
# would: only the firewall keeps its packets off the LANs. Later tests
# change the routers for a while: a per-destination-port ("symmetric") NAT
# (--random-fully) on one side or both, no filter on WAN input, REJECT
# instead of DROP (as OpenWrt does), everything dropped. doc/nat-traversal.md
# tells what each shows.
#
# Three IPv4 rendezvous servers run in srv: one without a relay (port 7777),
# one with a relay (7778, relay on 7779), and one with a tightly limited
# relay (7780, relay on 7781); one IPv6 server without a relay (7777).
#
# Every wait is bounded; an EXIT trap kills what was started and deletes
# the namespaces, whatever happens.

set -u
export LC_ALL=C.UTF-8

RNDZ=${1:-${RNDZ_TOOL:-}}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROBE=$HERE/udp-probe.py
PYTHON=/usr/bin/python3
# shellcheck source=netns-lib.sh
. "$HERE/netns-lib.sh"

# Seconds
REGISTER_WAIT=10
CONNECT_TIMEOUT=10
# Relayed: the client's 3 s direct timeout, then the relay
RELAY_CONNECT_TIMEOUT=6
FAIL_TIMEOUT=4
MARGIN=2

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
NS_PA2=$PREFIX-pa2
NS_PROBE=$PREFIX-probe

netns_init rndz-netns

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
    # Bridged LAN traffic passes FORWARD where br_netfilter is loaded
    run nsx "$ns" "$ipt" -A FORWARD -i lan -o lan -j ACCEPT
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

  for ns in "$NS_SRV" "$NS_ISP" "$NS_RA" "$NS_RB" "$NS_PA" "$NS_PB" "$NS_PA2"; do
    add_ns "$ns"
  done

  veth "$NS_SRV" eth0 "$NS_ISP" srv
  veth "$NS_RA" wan "$NS_ISP" ra
  veth "$NS_RB" wan "$NS_ISP" rb
  # Router A's LAN is a bridge with two hosts
  run ip -n "$NS_RA" link add lan type bridge forward_delay 0
  veth "$NS_PA" eth0 "$NS_RA" lan-pa
  veth "$NS_PA2" eth0 "$NS_RA" lan-pa2
  run ip -n "$NS_RA" link set lan-pa master lan
  run ip -n "$NS_RA" link set lan-pa2 master lan
  run ip -n "$NS_RA" link set lan up
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
  addr "$NS_PA2" eth0 10.0.1.3/24 2001:db8:0:a1::3/64

  run ip -n "$NS_SRV" route add default via 192.0.2.1
  run ip -n "$NS_SRV" -6 route add default via 2001:db8:0:10::1
  run ip -n "$NS_PA" route add default via 10.0.1.1
  run ip -n "$NS_PA" -6 route add default via 2001:db8:0:a1::1
  run ip -n "$NS_PB" route add default via 10.0.2.1
  run ip -n "$NS_PB" -6 route add default via 2001:db8:0:b1::1
  run ip -n "$NS_PA2" route add default via 10.0.1.1
  run ip -n "$NS_PA2" -6 route add default via 2001:db8:0:a1::1

  run nsx "$NS_ISP" sysctl -qw net.ipv4.ip_forward=1
  run nsx "$NS_ISP" sysctl -qw net.ipv6.conf.all.forwarding=1
  run ip -n "$NS_ISP" route add 10.0.1.0/24 via 198.51.100.2
  run ip -n "$NS_ISP" route add 10.0.2.0/24 via 203.0.113.2
  run ip -n "$NS_ISP" -6 route add 2001:db8:0:a1::/64 via 2001:db8:0:a0::2
  run ip -n "$NS_ISP" -6 route add 2001:db8:0:b1::/64 via 2001:db8:0:b0::2

  router "$NS_RA" 198.51.100.1 2001:db8:0:a0::1
  router "$NS_RB" 203.0.113.1 2001:db8:0:b0::1
}

# listener NAME NS SERVER ID [--tcp]: a registered `rndz client` echoing
# what it gets; sets PORT to its local port. Plain (--insecure), as the
# connectors: these tests measure the paths through the NATs, and
# relay-probe.py reaches the listeners with the plain API.
listener ()
{
  local name=$1 ns=$2 server=$3 id=$4
  shift 4
  bg "$name" "$ns" "$RNDZ" client --id "$id" --server-addr "$server" \
     --timeout "$REGISTER_WAIT" --verbose --insecure "$@"
  if ! wait_for "$TMP/$name.out" '^Registered as ' $(( REGISTER_WAIT + 1 )); then
    echo "Bail out! $name did not register"
    sed 's/^/# /' "$TMP/$name.err" | tail -n 20
    exit 1
  fi
  PORT=$(sed -n 's/^Registered as .* on port \([0-9]*\)$/\1/p' "$TMP/$name.out")
}

# stamp BASE START: copies standard input to BASE.err, and to BASE.ts with
# each line prefixed by the milliseconds since START at which it arrived
stamp ()
{
  local line t

  while IFS= read -r line || [ -n "$line" ]; do
    t=${EPOCHREALTIME/./}
    printf '%s\n' "$line" >&3
    printf '%d\t%s\n' $(( t / 1000 - $2 )) "$line" >&4
  done 3>"$1.err" 4>"$1.ts"
}

# connector NAME NS TIMEOUT ARGS...: runs `rndz client`, sets RC, ELAPSED
# (ms, the whole run) and CONNECTED (ms from the start to the note that the
# peer was reached, or the whole run when there is no such note)
connector ()
{
  local name=$1 ns=$2 timeout=$3 start
  shift 3
  start=$(now_ms)
  timeout -k 2 $(( timeout + 5 )) ip netns exec "$ns" "$RNDZ" client \
    --timeout "$timeout" --verbose --insecure "$@" 2>&1 >"$TMP/$name.out" </dev/null |
    stamp "$TMP/$name" "$start"
  RC=${PIPESTATUS[0]}
  ELAPSED=$(( $(now_ms) - start ))
  CONNECTED=$(connected_ms "$name")
  CONNECTED=${CONNECTED:-$ELAPSED}
}

# connected_ms NAME: when the client said it reached its peer (ms)
connected_ms ()
{
  grep -v -- '-DEBUG' "$TMP/$1.ts" 2>/dev/null |
    grep -m 1 -E $'^[0-9]+\t.*(Connected to|Reached peer)' | cut -f 1
}

# failure_of NAME: a failure as the report tells it
failure_of ()
{
  local err
  err=$(grep -v -- '-DEBUG' "$TMP/$1.err" 2>/dev/null)
  case $err in
    *"does not relay"*) echo "failed: no path, no relay" ;;
    *"is full"*) echo "failed: server full" ;;
    *) echo "failed" ;;
  esac
}

# path_of NAME: the path the client said it took (direct, local, relayed),
# or "?" when it said none
path_of ()
{
  local path
  path=$(grep -v -- '-DEBUG' "$TMP/$1.err" 2>/dev/null |
           grep -E 'Connected|Reached' | grep -m 1 -oE '\b(direct|local|relayed)\b')
  echo "${path:-?}"
}

TIMINGS=()

# The report: one row per rendezvous case. ROUTER_A, ROUTER_B and RELAY
# describe the routers and the server as they are when the case runs.
REPORT_ROWS=()
ROUTER_A=home
ROUTER_B=home
RELAY=off

# report_row PEERS SERVER TCP PATH-OR-OUTCOME MS
report_row ()
{
  local transport=UDP ip=IPv4

  [ -n "$3" ] && transport=TCP
  case $2 in \[*) ip=IPv6 ;; esac
  REPORT_ROWS+=("| $1 | $ROUTER_A | $ROUTER_B | $transport/$ip | $RELAY | $4 | $5 |")
}

# path_case DESCRIPTION NAME NS SERVER PEER PATH-REGEX TIMEOUT [--tcp]:
# connects, expects the echo and the path the tool says it took
# ("Connected to alice (relayed)") to match PATH-REGEX: a tool that does
# not say fails
path_case ()
{
  local description=$1 name=$2 ns=$3 server=$4 peer=$5 expect=$6 timeout=$7 tcp=${8:-}
  local message="$name-$RANDOM" status=1 path='?' peers

  connector "$name" "$ns" "$timeout" --id "$name" --server-addr "$server" \
            --remote-peer "$peer" --message "$message" ${tcp:+"$tcp"}
  path=$(path_of "$name")
  if [ "$RC" = 0 ] && [ "$(cat "$TMP/$name.out")" = "$message" ] &&
     [[ $path =~ ^($expect)$ ]]; then
    status=0
    TIMINGS+=("$description: $CONNECTED ms to connect, $ELAPSED ms in all")
  fi
  if [ $status = 0 ]; then
    result 0 "$description (path $path, $CONNECTED ms)"
  else
    result 1 "$description (path $path, exit status $RC after $ELAPSED ms)"
  fi
  if [ $status != 0 ]; then
    echo "# exit status $RC after $ELAPSED ms, path $path (expected $expect), stdout: $(head -c 200 "$TMP/$name.out")"
    grep -v -- '-DEBUG' "$TMP/$name.err" | head -n 5 | sed 's/^/# stderr: /'
    diag "$TMP/$name.err"
  fi
  peers="$(ns_label "$ns") → $peer"
  if [ "$RC" = 0 ] && [ "$path" != "?" ]; then
    report_row "$peers" "$server" "$tcp" "$path" "$CONNECTED"
  elif [ "$RC" = 0 ]; then
    report_row "$peers" "$server" "$tcp" "echo (path not said)" "$CONNECTED"
  elif [ "$path" != "?" ]; then
    report_row "$peers" "$server" "$tcp" "failed: $path, then no echo" "($ELAPSED)"
  else
    report_row "$peers" "$server" "$tcp" "$(failure_of "$name")" "($ELAPSED)"
  fi
}

ns_label ()
{
  case $1 in
    "$NS_PA") echo pa ;;
    "$NS_PA2") echo pa2 ;;
    "$NS_PB") echo pb ;;
    *) echo "$1" ;;
  esac
}

# rendezvous DESCRIPTION NAME NS SERVER PEER [--tcp]: connects directly,
# expects the echo
rendezvous ()
{
  path_case "$1" "$2" "$3" "$4" "$5" direct "$CONNECT_TIMEOUT" ${6:+"$6"}
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
  if [ "$RC" = 0 ]; then
    local path
    path=$(path_of "$name")
    [ "$path" != "?" ] || path="echo"
    report_row "$(ns_label "$ns") → $peer" "$server" "$tcp" "$path (a race)" "$CONNECTED"
  else
    report_row "$(ns_label "$ns") → $peer" "$server" "$tcp" "$(failure_of "$name") (a race)" "($ELAPSED)"
  fi
}

# fails_promptly DESCRIPTION NAME NS SERVER PEER REGEX LIMIT TIMEOUT [--tcp]:
# the connection must fail with status 1 and an error matching REGEX on
# stderr within LIMIT seconds, well before its TIMEOUT (seconds)
fails_promptly ()
{
  local description=$1 name=$2 ns=$3 server=$4 peer=$5 regex=$6 limit=$7 timeout=$8
  local tcp=${9:-} status=1

  connector "$name" "$ns" "$timeout" --id "$name" --server-addr "$server" \
            --remote-peer "$peer" --message "$name" ${tcp:+"$tcp"}
  if [ "$RC" = 1 ] && [ ! -s "$TMP/$name.out" ] &&
     grep -v -- '-DEBUG' "$TMP/$name.err" | grep -qE -- "$regex" &&
     [ "$ELAPSED" -lt $(( limit * 1000 )) ]; then
    status=0
  fi
  result $status "$description ($ELAPSED ms)"
  grep -v -- '-DEBUG' "$TMP/$name.err" | head -n 3 | sed 's/^/# stderr: /'
  if [ $status != 0 ]; then
    echo "# exit status $RC after $ELAPSED ms (limit $limit s, timeout $timeout s), stdout: $(head -c 200 "$TMP/$name.out")"
    diag "$TMP/$name.err"
  fi
}

# loss_rate DESCRIPTION NAME NS SERVER PEER TRIALS [--tcp]: both routers
# lose a share of what they send out (loss_on), the server does not relay:
# every step of the rendezvous must survive loss (doc/protocol.md,
# "Retransmission"). At least MIN of TRIALS must reach the peer directly
# and get the echo back; the median and the longest time to connect go to
# the output and the report.
#
# UDP: 20 of 20 in each of seven runs (before the retransmissions: 14
# and 18 of 20). TCP depends on the kernel: a lost SYN goes again after
# 1 s, then 3 s; before issue 19's TCP work 147 of 160 (92 %) over eight
# runs, median ~1 s, and now and then a connection both sides took
# carried nothing (the listener gave up waiting for the use frame after
# 5 s, the requester's TCP sent it again after 6). Since (spare SYNs
# before the listener's first punch, SYNs every second with
# TCP_RTO_MAX_MS on Linux 6.15, the link to the server redialled after
# 250 ms, the use frame awaited 15 s, the RTO cap kept 10 s after the
# hand-over): 20 of 20 in each of six runs, medians 210-1025 ms, longest
# 2450 ms; 215 of 220 (98 %) since the spare SYNs, the five failures
# before the cap was kept (Linux 6.18; a kernel without TCP_RTO_MAX_MS
# sends SYNs at 0, 1, 3 s and misses more). At 98 %, 20 trials fell
# below 19 one run in 16. The failures left were SYNs (or SYN-ACKs) lost
# three times running within the 3 s direct timeout, while the client's
# own timeout had 7 s left; without a relay to turn to, a TCP client now
# goes on with its direct paths until that timeout (rndz-connect.c,
# "Without a relay"). Since: 20 of 20 in each of twenty-one runs,
# medians 210-1025 ms, longest 4112 ms; 4 of the 420 trials connected
# after the direct timeout, the ones that failed before. A trial now
# fails only when a side's SYNs (or SYN-ACKs) are lost for all of the
# 9 s or so that the timeout leaves after the redirect, some nine in a
# row; even at the 0.7 % that 0 failures in 420 leave possible (95 %),
# 20 trials would fall below 19 about one run in 120: 19 it is. With the
# requester's spare SYNs and the listener's redial (case 49): 20 of 20 in
# each of sixteen runs, medians 10-713 ms.
LOSS_PROBABILITY=0.2
LOSS_TRIALS=20
LOSS_MIN_UDP=19
LOSS_MIN_TCP=19
LOSS_MEASURES=()
loss_rate ()
{
  local description=$1 name=$2 ns=$3 server=$4 peer=$5 trials=$6 tcp=${7:-}
  local need=$LOSS_MIN_UDP
  local i n_direct=0 times=() sorted median=- max=- status=1 message path

  [ -n "$tcp" ] && need=$LOSS_MIN_TCP
  for i in $(seq "$trials"); do
    message="$name-$i-$RANDOM"
    # The server lets one requester ask for one target twice a second
    # (bursts of 4): trials back to back would measure its rate limit
    sleep 0.5
    connector "$name-$i" "$ns" "$CONNECT_TIMEOUT" --id "$name" --server-addr "$server" \
              --remote-peer "$peer" --message "$message" ${tcp:+"$tcp"}
    path=$(path_of "$name-$i")
    if [ "$RC" = 0 ] && [ "$(cat "$TMP/$name-$i.out")" = "$message" ] && [ "$path" = direct ]; then
      n_direct=$(( n_direct + 1 ))
      times+=("$CONNECTED")
    else
      echo "# trial $i: not direct (path $path, exit status $RC after $ELAPSED ms)"
      grep -v -- '-DEBUG' "$TMP/$name-$i.err" | head -n 3 | sed 's/^/#   /'
      # A failure here is rare (about one trial in 200): what the
      # connector saw, for the next person, since the logs go with $TMP
      echo "#   the connector's last messages:"
      tail -n 25 "$TMP/$name-$i.err" | cut -c 1-200 | sed 's/^/#     /'
    fi
  done

  if [ $n_direct -gt 0 ]; then
    sorted=$(printf '%s\n' "${times[@]}" | sort -n)
    median=$(echo "$sorted" | sed -n "$(( (n_direct + 1) / 2 ))p")
    max=$(echo "$sorted" | tail -n 1)
  fi
  [ $n_direct -ge "$need" ] && status=0
  result $status "$description: direct in $n_direct of $trials (at least $need), median $median ms, longest $max ms"
  LOSS_MEASURES+=("$description: direct in $n_direct of $trials; time to connect median $median ms, longest $max ms")
  report_row "$(ns_label "$ns") → $peer" "$server" "$tcp" "direct in $n_direct of $trials" "median $median, max $max"
}

# loss_on / loss_off: both routers drop LOSS_PROBABILITY of the packets
# they send out on the WAN, at random (the iptables statistic match:
# netem needs a qdisc module that namespaces do not always have)
loss_rule ()
{
  local action=$1 ns
  for ns in "$NS_RA" "$NS_RB"; do
    run nsx "$ns" "$IPT" -t mangle "$action" POSTROUTING -o wan -m statistic \
        --mode random --probability "$LOSS_PROBABILITY" -j DROP
  done
}

# The two cases with loss, as they run in the whole suite and alone
# (RNDZ_NETNS_ONLY=loss): alice-udp4 and alice-tcp4 listen on SERVER4
loss_cases ()
{
  loss_rule -A
  ROUTER_A="home, 20 % loss"
  ROUTER_B="home, 20 % loss"
  loss_rate "UDP from pb to alice, both routers losing 20 % of what they send, no relay" \
    lena-udp4 "$NS_PB" "$SERVER4" alice "$LOSS_TRIALS"
  loss_rate "TCP from pb to alice, both routers losing 20 % of what they send, no relay" \
    lena-tcp4 "$NS_PB" "$SERVER4" alice "$LOSS_TRIALS" --tcp
  loss_rule -D
  ROUTER_A=home
  ROUTER_B=home
}

# ---------------------------------------------------------------------------

choose_iptables
setup_topology

N_TESTS=51
# Only the cases with loss, for measuring them
[ "${RNDZ_NETNS_ONLY:-}" = loss ] && N_TESTS=2
if [ "${RNDZ_NETNS_ONLY:-}" = timings ]; then
  # shellcheck source=nat-timings.sh
  . "$HERE/nat-timings.sh"
  N_TESTS=$(timings_plan)
fi
echo "1..$N_TESTS"
echo "# namespaces $PREFIX-*, firewall with $IPT and $IP6T"

SERVER4=192.0.2.10:7777
SERVER6="[2001:db8:0:10::10]:7777"
# With a relay, and with a relay limited to one session at a time, a rate
# and a short idle timeout. srv has no firewall: the relay ports are open.
SERVER4R=192.0.2.10:7778
SERVER4L=192.0.2.10:7780
RELAY_RATE=32768
RELAY_IDLE=6
# What relay-probe.py sends through the limited relay: one buffer (64 KiB,
# which the relay may let through at once) and two seconds at the rate
PROBE_BYTES=$(( 65536 + 2 * RELAY_RATE ))
# How long the client tries the direct paths before it asks for the relay
DIRECT_TIMEOUT=3

# relay-probe.py runs the library from Python: from the build tree next to
# the tool when nobody said where the typelib is
RELAY_PROBE=$HERE/relay-probe.py
BUILT_LIB=$(dirname "$RNDZ")/../rndz-glib
if [ -z "${GI_TYPELIB_PATH:-}" ] && [ -f "$BUILT_LIB/Rndz-1.0.typelib" ]; then
  export GI_TYPELIB_PATH=$BUILT_LIB
  export LD_LIBRARY_PATH=$BUILT_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
HAVE_GI=no
if [ -x "$PYTHON" ] &&
   "$PYTHON" -c 'import gi; gi.require_version("Rndz", "1.0"); from gi.repository import Rndz; Rndz.socket_get_path' 2>/dev/null; then
  HAVE_GI=yes
fi

start_server ()
{
  local name=$1
  shift
  bg "$name" "$NS_SRV" "$RNDZ" server "$@" --verbose
  wait_for "$TMP/$name.out" '^Listening on ' 5 || { diag "$TMP/$name.err"; bail_out "the server $name did not start"; }
}

start_server server4 --listen-addr "$SERVER4"
if [ "${RNDZ_NETNS_ONLY:-}" = loss ]; then
  listener alice-udp4 "$NS_PA" "$SERVER4" alice
  listener alice-tcp4 "$NS_PA" "$SERVER4" alice --tcp
  loss_cases
  for measure in "${LOSS_MEASURES[@]}"; do
    echo "# loss: $measure"
  done
  [ "$T" = "$N_TESTS" ] || bail_out "ran $T tests, planned $N_TESTS"
  exit 0
fi
if [ "${RNDZ_NETNS_ONLY:-}" = timings ]; then
  timings_main
  [ "$T" = "$N_TESTS" ] || bail_out "ran $T tests, planned $N_TESTS"
  exit 0
fi
start_server server6 --listen-addr "$SERVER6"
start_server server4r --listen-addr "$SERVER4R" --relay-port 7779
start_server server4l --listen-addr "$SERVER4L" --relay-port 7781 \
  --relay-max-sessions 1 --relay-rate "$RELAY_RATE" --relay-idle-timeout "$RELAY_IDLE"

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
listener alice-udp4r "$NS_PA" "$SERVER4R" alice
listener alice-tcp4r "$NS_PA" "$SERVER4R" alice --tcp
listener alice-udp4l "$NS_PA" "$SERVER4L" alice
listener alice-tcp4l "$NS_PA" "$SERVER4L" alice --tcp

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

# 7. pa2 shares router A's LAN with pa, and router A does not hairpin: a
# datagram from pa to pa2's public mapping (router A's own address) is not
# sent back into the LAN; only the LAN address reaches pa2
if [ -x "$PYTHON" ]; then
  bg respond4h "$NS_SRV" "$PYTHON" "$PROBE" respond 40011 5
  wait_for "$TMP/respond4h.out" '^ready' 5
  bg probe4h "$NS_PA2" "$PYTHON" "$PROBE" listen 40010 1.5 192.0.2.10 40011
  wait_for "$TMP/probe4h.out" '^ready' 5
  wait_for "$TMP/respond4h.out" '^observed' 3
  nsx "$NS_PA" "$PYTHON" "$PROBE" send 198.51.100.2 40010 hairpin
  nsx "$NS_PA" "$PYTHON" "$PROBE" send 10.0.1.3 40010 lan
  wait "${BG_PID[probe4h]}"
  unset 'BG_PID[probe4h]'
  bg_stop respond4h
  grep -q '^observed 198\.51\.100\.2 40010$' "$TMP/respond4h.out" &&
    grep -q '^got lan from 10\.0\.1\.2 port ' "$TMP/probe4h.out" &&
    ! grep -q 'hairpin' "$TMP/probe4h.out"
  status=$?
  result $status "LAN: pa reaches pa2 at 10.0.1.3, but not through pa2's mapping 198.51.100.2:40010 (router A does not hairpin)"
  [ $status = 0 ] || diag "$TMP/probe4h.out" "$TMP/respond4h.out"
else
  skip "no $PYTHON"
fi

# relay_case DESCRIPTION NAME NS SERVER PEER PATH-REGEX [--tcp]
relay_case ()
{
  path_case "$1" "$2" "$3" "$4" "$5" "$6" "$RELAY_CONNECT_TIMEOUT" ${7:+"$7"}
}

# 8-11. Rendezvous through both NATs, both ways, and the echo back
rendezvous "UDP rendezvous from pb to alice behind NAT A, echo received" \
  carol-udp4 "$NS_PB" "$SERVER4" alice
rendezvous "UDP rendezvous from pa to bob behind NAT B, echo received" \
  dave-udp4 "$NS_PA" "$SERVER4" bob
rendezvous "TCP rendezvous from pb to alice behind NAT A, echo received" \
  carol-tcp4 "$NS_PB" "$SERVER4" alice --tcp
rendezvous "TCP rendezvous from pa to bob behind NAT B, echo received" \
  dave-tcp4 "$NS_PA" "$SERVER4" bob --tcp

# 12-13. UDP and TCP through both NATs, each losing a fifth of what it
# sends (loss_cases)
loss_cases

# 14-15. Two peers on router A's LAN: their public addresses do not reach
# each other (no hairpin), their LAN addresses do. No relay on this server.
ROUTER_B="(same LAN)"
path_case "UDP rendezvous from pa2 to alice on the same LAN, no hairpin: path local" \
  lan-udp4 "$NS_PA2" "$SERVER4" alice local 5
path_case "TCP rendezvous from pa2 to alice on the same LAN, no hairpin: path local" \
  lan-tcp4 "$NS_PA2" "$SERVER4" alice local 5 --tcp
ROUTER_B=home

# 16-23. IPv6: no NAT, the same stateful firewalls
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

# Without NAT, alice's public address is one of her local ones, so the
# client may call the path "local" even from another network (issue 9:
# "LOCAL if X is one of A's cands"): "local" or "direct" are both accepted
path_case "IPv6: UDP rendezvous from pb to alice through both firewalls, echo received" \
  carol-udp6 "$NS_PB" "$SERVER6" alice 'direct|local' "$CONNECT_TIMEOUT"
path_case "IPv6: TCP rendezvous from pb to alice through both firewalls, echo received" \
  carol-tcp6 "$NS_PB" "$SERVER6" alice 'direct|local' "$CONNECT_TIMEOUT" --tcp
ROUTER_B="(same LAN)"
path_case "IPv6: UDP rendezvous from pa2 to alice on the same LAN: path local or direct" \
  lan-udp6 "$NS_PA2" "$SERVER6" alice 'local|direct' 5
path_case "IPv6: TCP rendezvous from pa2 to alice on the same LAN: path local or direct" \
  lan-tcp6 "$NS_PA2" "$SERVER6" alice 'local|direct' 5 --tcp
# IPv4 and IPv6 race: over the IPv6 server, the peers' dual-stack sockets
# offer their IPv4 addresses as candidates too. With IPv6 between pa2 and
# alice cut (alice drops what comes from pa2's IPv6 address), the pair
# still meets, over IPv4 on the LAN
run nsx "$NS_PA" "$IP6T" -I INPUT 1 -s 2001:db8:0:a1::3 -j DROP
path_case "IPv6 server, IPv6 between pa2 and alice cut: UDP over IPv4 on the LAN, path local" \
  lan-udp46 "$NS_PA2" "$SERVER6" alice local 5
path_case "IPv6 server, IPv6 between pa2 and alice cut: TCP over IPv4 on the LAN, path local" \
  lan-tcp46 "$NS_PA2" "$SERVER6" alice local 5 --tcp
run nsx "$NS_PA" "$IP6T" -D INPUT 1
ROUTER_B=home

# 24-25. An unknown peer: the server says so at once
fails_cleanly "UDP: an unknown peer fails at once with a clear error" \
  erin-udp4 "$NS_PB" "$SERVER4" nobody 'nobody.* not registered'
fails_cleanly "TCP: an unknown peer fails at once with a clear error" \
  erin-tcp4 "$NS_PB" "$SERVER4" nobody 'nobody.* not registered' --tcp

# relay_limits: six tests with the limited relay (one session at a time, a
# rate, a short idle timeout), while both routers are symmetric so that pb
# must be relayed to reach alice
relay_limits ()
{
  local status i t_free floor rate ms

  RELAY="limited"

  # relay-probe.py holds a relayed TCP pair: connects, sends PROBE_BYTES
  # and reads their echo, then stays idle until the relay closes it
  if [ $HAVE_GI = yes ]; then
    bg mallory "$NS_PB" "$PYTHON" "$RELAY_PROBE" mallory-tcp4 "$SERVER4L" alice \
       "$PROBE_BYTES" $(( RELAY_IDLE + 4 ))

    # A second pair while the first is relayed: refused, after the direct
    # timeout, with a clear error
    status=1
    if wait_for "$TMP/mallory.out" '^(connected|error)' $(( DIRECT_TIMEOUT + 10 )) &&
       grep -q '^connected relayed ' "$TMP/mallory.out"; then
      connector niaj-udp4 "$NS_PB" 8 --id niaj-udp4 --server-addr "$SERVER4L" \
                --remote-peer alice --message niaj
      if [ "$RC" = 1 ] && [ ! -s "$TMP/niaj-udp4.out" ] &&
         grep -v -- '-DEBUG' "$TMP/niaj-udp4.err" | grep -qi 'full' &&
         [ "$ELAPSED" -lt $(( (DIRECT_TIMEOUT + MARGIN) * 1000 )) ] &&
         ! grep -qE '^(closed|open|error)' "$TMP/mallory.out"; then
        status=0
      fi
      result $status "relay limits: with --relay-max-sessions 1, a second pair fails cleanly while the first is relayed ($ELAPSED ms)"
      grep -v -- '-DEBUG' "$TMP/niaj-udp4.err" | head -n 3 | sed 's/^/# stderr: /'
      if [ $status != 0 ]; then
        echo "# exit status $RC after $ELAPSED ms (limit $(( DIRECT_TIMEOUT + MARGIN )) s)"
        diag "$TMP/niaj-udp4.err" "$TMP/mallory.out"
      fi
    else
      result 1 "relay limits: with --relay-max-sessions 1, a second pair fails cleanly while the first is relayed (the first is not relayed)"
      diag "$TMP/mallory.out" "$TMP/mallory.err"
    fi

    # The transfer stays within the rate: the relay may let one buffer
    # (64 KiB) through at once, the rest not faster than the rate + 10 %
    status=1
    if wait_for "$TMP/mallory.out" '^(echoed|error)' 40 &&
       ms=$(sed -n 's/^echoed [0-9]* \([0-9]*\)$/\1/p' "$TMP/mallory.out") && [ -n "$ms" ]; then
      floor=$(( (PROBE_BYTES - 65536) * 1000 * 10 / (RELAY_RATE * 11) ))
      rate=$(( (PROBE_BYTES - 65536) * 1000 / (ms > 0 ? ms : 1) ))
      [ "$ms" -ge "$floor" ] && status=0
      RELAY_MEASURE="$PROBE_BYTES bytes echoed through the TCP relay limited to $RELAY_RATE B/s in $ms ms: $rate B/s beyond the first 64 KiB"
      result $status "relay limits: $PROBE_BYTES bytes echoed through a relay with --relay-rate $RELAY_RATE in $ms ms (at least $floor ms; $rate B/s after the first 64 KiB)"
    else
      result 1 "relay limits: $PROBE_BYTES bytes echoed through a relay with --relay-rate $RELAY_RATE (no echo)"
      diag "$TMP/mallory.out" "$TMP/mallory.err"
    fi

    # Then idle: the relay closes the pair after the idle timeout
    status=1
    if wait_for "$TMP/mallory.out" '^(closed|open|error)' $(( RELAY_IDLE + 8 )) &&
       ms=$(sed -n 's/^closed \([0-9]*\)$/\1/p' "$TMP/mallory.out") && [ -n "$ms" ] &&
       [ "$ms" -ge $(( RELAY_IDLE * 1000 - 1000 )) ] && [ "$ms" -le $(( RELAY_IDLE * 1000 + 2000 )) ]; then
      status=0
    fi
    result $status "relay limits: an idle relayed TCP pair is closed after --relay-idle-timeout $RELAY_IDLE (after ${ms:-?} ms)"
    [ $status = 0 ] || diag "$TMP/mallory.out" "$TMP/mallory.err"
    bg_stop mallory
  else
    for i in 1 2 3; do
      skip "relay-probe.py needs $PYTHON with PyGObject and the Rndz typelib"
    done
  fi

  # The session is free again once that pair has closed. A UDP pair has
  # nothing to close: its session then lasts until the idle timeout.
  path_case "relay limits: once the first pair has closed, a new pair is relayed (UDP)" \
    olivia-udp4 "$NS_PB" "$SERVER4L" alice relayed "$RELAY_CONNECT_TIMEOUT"
  t_free=$(( $(now_ms) + RELAY_IDLE * 1000 ))
  fails_promptly "relay limits: that UDP session is held while idle for less than --relay-idle-timeout $RELAY_IDLE: the next pair is refused" \
    peggy-tcp4 "$NS_PB" "$SERVER4L" alice 'full' $(( DIRECT_TIMEOUT + MARGIN )) 8 --tcp
  if [ $(( t_free - $(now_ms) )) -lt 1000 ]; then
    echo "# the refused pair took long: the idle timeout may have passed already"
  fi
  # Wait until the idle timeout will have passed, and one second more: the
  # next pair asks for the relay early (its NAT rewrites ports), within a
  # fraction of a second
  while [ "$(now_ms)" -lt $(( t_free + 1000 )) ]; do
    sleep 0.1
  done
  path_case "relay limits: after --relay-idle-timeout $RELAY_IDLE the session is freed, a new pair is relayed (TCP)" \
    rupert-tcp4 "$NS_PB" "$SERVER4L" alice relayed "$RELAY_CONNECT_TIMEOUT" --tcp
  RELAY=on
}

# hard_nat_rate DESCRIPTION NAME NS SERVER PEER TRIALS: UDP through one
# per-destination-port NAT, the other side friendly, no relay: the
# hard-NAT phase (doc/nat-traversal.md, "Hard NATs") is a game of
# chance, so it is tried TRIALS times. The test: at least HARD_MIN_PERCENT
# of the trials get through directly, and every other one fails cleanly
# (no path, within the direct timeout and a margin). The rate and the
# times go to the report.
#
# doc/nat-traversal.md measured 88 of 90 (98 %) each way and 45 of 45
# without WAN input filter; 80 % (8 of 10, 4 of 5) leaves room for the
# odd unlucky trial: at 98 %, 10 trials fall below 8 about once in 800
# runs, 5 below 4 once in 200. A phase that broke, or that a bug made a
# long shot, does not pass at 1 in 10 any more.
HARD_MIN_PERCENT=80
HARD_MEASURES=()
hard_nat_rate ()
{
  local description=$1 name=$2 ns=$3 server=$4 peer=$5 trials=$6
  local i n_direct=0 n_clean=0 times=() sorted median=- range=- status=1 message
  local need=$(( (trials * HARD_MIN_PERCENT + 99) / 100 ))

  for i in $(seq "$trials"); do
    message="$name-$i-$RANDOM"
    connector "$name-$i" "$ns" "$FAIL_TIMEOUT" --id "$name" --server-addr "$server" \
              --remote-peer "$peer" --message "$message"
    if [ "$RC" = 0 ] && [ "$(cat "$TMP/$name-$i.out")" = "$message" ] &&
       [ "$(path_of "$name-$i")" = direct ]; then
      n_direct=$(( n_direct + 1 ))
      times+=("$CONNECTED")
    elif [ "$RC" = 1 ] && [ ! -s "$TMP/$name-$i.out" ] &&
         grep -v -- '-DEBUG' "$TMP/$name-$i.err" | grep -qE 'No path to peer .*relay' &&
         [ "$ELAPSED" -lt $(( (DIRECT_TIMEOUT + MARGIN) * 1000 )) ]; then
      n_clean=$(( n_clean + 1 ))
    else
      echo "# trial $i: neither direct nor a clean failure (exit status $RC after $ELAPSED ms)"
      diag "$TMP/$name-$i.err"
    fi
  done

  if [ $n_direct -gt 0 ]; then
    sorted=$(printf '%s\n' "${times[@]}" | sort -n)
    median=$(echo "$sorted" | sed -n "$(( (n_direct + 1) / 2 ))p")
    range="$(echo "$sorted" | head -n 1)–$(echo "$sorted" | tail -n 1)"
  fi
  [ $n_direct -ge "$need" ] && [ $(( n_direct + n_clean )) = "$trials" ] && status=0
  result $status "$description: direct in $n_direct of $trials trials (at least $need), the others fail cleanly (median $median ms)"
  HARD_MEASURES+=("$description: direct in $n_direct of $trials trials; time to connect $range ms, median $median ms")
  report_row "$(ns_label "$ns") → $peer" "$server" "" "direct in $n_direct of $trials, else no path" "$range (median $median)"
}

HARD_TRIALS=10

# forget_pairs: both routers forget the mappings between the peers (not
# those to the servers, which the registrations need). Run after a
# section that switched NAT modes: a mapping made in one mode lives on in
# the other, and a hard-NAT phase leaves a thousand of them for 30 s,
# which a real router that stays in one mode would not hold against the
# next pair.
forget_pairs ()
{
  if ! command -v conntrack >/dev/null; then
    echo "# no conntrack program: the routers keep the mappings of earlier pairs"
    return
  fi
  nsx "$NS_RA" conntrack -D -d 203.0.113.2 >/dev/null 2>&1
  nsx "$NS_RA" conntrack -D -s 203.0.113.2 >/dev/null 2>&1
  nsx "$NS_RB" conntrack -D -d 198.51.100.2 >/dev/null 2>&1
  nsx "$NS_RB" conntrack -D -s 198.51.100.2 >/dev/null 2>&1
  return 0
}

# 26-41. Per-destination-port ("symmetric") NAT: MASQUERADE --random-fully
# gives every new destination a new random port. The mapping towards the
# other peer is not the one the server saw, and the other router only lets
# in what comes from the latter: hole punching fails. Over UDP the
# hard-NAT phase still finds a way when the other router is friendly
# (doc/nat-traversal.md); over TCP, and with both routers symmetric, a
# pair needs the relay. Router B first, then both, then router A alone.
if [ "$RANDOM_FULLY" = yes ]; then
  run nsx "$NS_RB" "$IPT" -t nat -R POSTROUTING 1 -o wan -j MASQUERADE --random-fully
  ROUTER_B=symmetric
  RELAY=off
  hard_nat_rate "UDP through a symmetric NAT (router B) to alice, server without relay" \
    frank-udp4 "$NS_PB" "$SERVER4" alice "$HARD_TRIALS"
  # TCP has no hard-NAT phase. Without a relay the client gives up after
  # its direct timeout, not at its own (7 s), and says why: its own NAT
  # rewrites its port, which leaves a direct path little chance (a pair
  # whose NATs keep ports goes on until the timeout, as the loss cases do)
  fails_promptly "TCP through a symmetric NAT (router B), server without relay: fails promptly, no path" \
    frank-tcp4 "$NS_PB" "$SERVER4" alice 'No path to peer .*alice.*relay' $(( DIRECT_TIMEOUT + MARGIN )) 7 --tcp
  report_row "pb → alice" "$SERVER4" --tcp "$(failure_of frank-tcp4)" "($ELAPSED)"

  RELAY=on
  relay_case "UDP through a symmetric NAT (router B), server with relay: direct or relayed" \
    grace-udp4r "$NS_PB" "$SERVER4R" alice 'direct|relayed'
  relay_case "TCP through a symmetric NAT (router B), server with relay: relayed" \
    grace-tcp4r "$NS_PB" "$SERVER4R" alice relayed --tcp

  run nsx "$NS_RA" "$IPT" -t nat -R POSTROUTING 1 -o wan -j MASQUERADE --random-fully
  ROUTER_A=symmetric
  forget_pairs
  RELAY=off
  fails_promptly "UDP through symmetric NATs on both sides, server without relay: fails promptly, no path" \
    fay-udp4 "$NS_PB" "$SERVER4" alice 'No path to peer .*alice.*relay' $(( DIRECT_TIMEOUT + MARGIN )) 7
  report_row "pb → alice" "$SERVER4" "" "$(failure_of fay-udp4)" "($ELAPSED)"
  RELAY=on
  relay_limits
  RELAY=on
  relay_case "UDP through symmetric NATs on both sides: relayed" \
    judy-udp4r "$NS_PB" "$SERVER4R" alice relayed
  relay_case "TCP through symmetric NATs on both sides: relayed" \
    judy-tcp4r "$NS_PB" "$SERVER4R" alice relayed --tcp

  # Router A alone. amber registers now, through the symmetric NAT, as a
  # peer behind one does from the start (alice's mapping to the server
  # was made before and keeps its port)
  run nsx "$NS_RB" "$IPT" -t nat -R POSTROUTING 1 -o wan -j MASQUERADE
  ROUTER_B=home
  forget_pairs
  RELAY=off
  listener amber-udp4 "$NS_PA" "$SERVER4" amber
  hard_nat_rate "UDP to amber behind a symmetric NAT (router A), server without relay" \
    ivan-udp4 "$NS_PB" "$SERVER4" amber "$HARD_TRIALS"
  bg_stop amber-udp4
  RELAY=on
  relay_case "UDP to alice behind a symmetric NAT (router A): direct or relayed" \
    ivan-udp4r "$NS_PB" "$SERVER4R" alice 'direct|relayed'
  relay_case "TCP to alice behind a symmetric NAT (router A): direct or relayed" \
    ivan-tcp4r "$NS_PB" "$SERVER4R" alice 'direct|relayed' --tcp
  run nsx "$NS_RA" "$IPT" -t nat -R POSTROUTING 1 -o wan -j MASQUERADE
  ROUTER_A=home
  RELAY=off
  forget_pairs
else
  for i in $(seq 16); do skip "$IPT has no MASQUERADE --random-fully"; done
fi

# 42-43. Routers that reject what they do not expect, as OpenWrt does (TCP
# RST for TCP, ICMP port unreachable for the rest), on input and when
# forwarding. Rejected packets leave no conntrack entry, so UDP gets
# through; but a RST kills the TCP connect it answers, and the far side's
# SYN then finds no SYN_SENT socket and state to match: TCP gets through
# only when two retries cross. Before the routers that let everything in:
# those keep conntrack entries for what they answered (probes of the
# hard-NAT phase among them), which may hold the very tuple a later pair
# needs.
for ns in "$NS_RA" "$NS_RB"; do
  run nsx "$ns" "$IPT" -R INPUT 2 -i wan -p tcp -j REJECT --reject-with tcp-reset
  run nsx "$ns" "$IPT" -A INPUT -i wan -j REJECT --reject-with icmp-port-unreachable
  run nsx "$ns" "$IPT" -A FORWARD -p tcp -j REJECT --reject-with tcp-reset
  run nsx "$ns" "$IPT" -A FORWARD -j REJECT --reject-with icmp-port-unreachable
done
ROUTER_A=rejecting
ROUTER_B=rejecting
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
ROUTER_A=home
ROUTER_B=home

# 44-48. Routers that let unsolicited packets in for themselves (no INPUT
# filter on the WAN, only FORWARD): the router's own stack answers a punch
# that arrives before its peer has sent anything (ICMP port unreachable,
# TCP RST), and conntrack keeps an entry for it. That entry holds the
# tuple (far peer, our public address:port), so when our peer then sends
# to the far peer, MASQUERADE finds the tuple taken and picks another
# source port (UDP), or the SYNs are answered by RSTs on each side in turn
# (TCP, where retries get through one such router but rarely two).
# Listeners punch first, so for UDP this hurts when the requester's router
# is the permissive one.
forget_pairs
run nsx "$NS_RB" "$IPT" -D INPUT -i wan -j DROP
ROUTER_B="no WAN input filter"
rendezvous "TCP rendezvous from pb to alice, router B without WAN input filter, echo received" \
  heidi-tcp4 "$NS_PB" "$SERVER4" alice --tcp
rendezvous "UDP rendezvous from pa to bob, router B without WAN input filter, echo received" \
  ivan-udp4 "$NS_PA" "$SERVER4" bob
# The punch reaches router B first, and its conntrack entry makes
# MASQUERADE give pb's checks to alice another port than the server saw:
# router B is a hard NAT towards alice alone. The hard-NAT phase finds it
# (alice, whose port the server saw kept, probes)
hard_nat_rate "UDP from pb to alice, router B without WAN input filter, server without relay" \
  heidi-udp4 "$NS_PB" "$SERVER4" alice 5
RELAY=on
relay_case "UDP from pb to alice, router B without WAN input filter, server with relay: direct or relayed" \
  heidi-udp4r "$NS_PB" "$SERVER4R" alice 'direct|relayed'
RELAY=off
run nsx "$NS_RA" "$IPT" -D INPUT -i wan -j DROP
ROUTER_A="no WAN input filter"
# Both routers answer: every SYN meets a RST from the far router, unless
# two retries happen to cross
echo_or_clean_failure "TCP from pb to alice, neither router with WAN input filter" \
  judy-tcp4 "$NS_PB" "$SERVER4" alice --tcp
run nsx "$NS_RA" "$IPT" -A INPUT -i wan -j DROP
run nsx "$NS_RB" "$IPT" -A INPUT -i wan -j DROP

# 49. A TCP requester's spare SYNs (rndz-connect.c) leave router B with
# one hop to go: the ISP drops them, and none reaches pa. The firewalls
# count SYNs from router B that reach the ISP with a TTL of 1, and SYNs
# from router B's address that reach pa with a TTL under 32 (pb's own
# arrive with 61, after three routers). It runs before 50-51, after
# which alice's link to the server needs a while to come back.
count_syns ()
{
  nsx "$1" "$IPT" -t raw -nvxL PREROUTING | awk 'NR == 3 { print $1 }'
}
run nsx "$NS_ISP" "$IPT" -t raw -I PREROUTING -i rb -p tcp --syn -m ttl --ttl-eq 1
run nsx "$NS_PA" "$IPT" -t raw -I PREROUTING -s 203.0.113.2 -p tcp --syn -m ttl --ttl-lt 32
connector spare-tcp4 "$NS_PB" "$CONNECT_TIMEOUT" --id spare-tcp4 --server-addr "$SERVER4" \
          --remote-peer alice --message spare-tcp4 --tcp
expired=$(count_syns "$NS_ISP")
arrived=$(count_syns "$NS_PA")
run nsx "$NS_ISP" "$IPT" -t raw -D PREROUTING 1
run nsx "$NS_PA" "$IPT" -t raw -D PREROUTING 1
status=1
if [ "$RC" = 0 ] && [ "$(cat "$TMP/spare-tcp4.out")" = spare-tcp4 ] &&
   [ "$(path_of spare-tcp4)" = direct ] && [ "${expired:-0}" -ge 2 ] && [ "${arrived:-1}" = 0 ]; then
  status=0
fi
result $status "TCP from pb to alice: pb's spare SYNs open router B and stop at the next router ($expired expired at the ISP, ${arrived:-?} reached pa), and pb connects directly"
[ $status = 0 ] || diag "$TMP/spare-tcp4.err"

# 50-51. Router A drops everything now that alice has registered: the
# server forwards the request, which never arrives
run nsx "$NS_RA" "$IPT" -I FORWARD 1 -j DROP
fails_cleanly "UDP: a peer whose router drops everything fails with a clear error within the timeout" \
  olga-udp4 "$NS_PB" "$SERVER4" alice 'peer [^ ]*alice[^ ]* '
fails_cleanly "TCP: a peer whose router drops everything fails with a clear error within the timeout" \
  olga-tcp4 "$NS_PB" "$SERVER4" alice 'peer [^ ]*alice[^ ]* ' --tcp
run nsx "$NS_RA" "$IPT" -D FORWARD 1

for timing in "${TIMINGS[@]}"; do
  echo "# time: $timing"
done
[ -n "${RELAY_MEASURE:-}" ] && echo "# relay: $RELAY_MEASURE"
for measure in "${HARD_MEASURES[@]}"; do
  echo "# hard NAT: $measure"
done
for measure in "${LOSS_MEASURES[@]}"; do
  echo "# loss: $measure"
done

if [ -n "${RNDZ_NETNS_REPORT:-}" ]; then
  {
    echo "Measured by \`tests/netns/test-nat.sh\` on $(date -u '+%Y-%m-%d'), $(uname -sr) $(uname -m), $(nproc) CPUs, $IPT."
    echo
    echo "| Peers | Router A (pa, pa2) | Router B (pb) | Transport | Relay | Path | Time to connect (ms) |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    printf '%s\n' "${REPORT_ROWS[@]}"
    if [ -n "${RELAY_MEASURE:-}" ]; then
      echo
      echo "Relay rate: $RELAY_MEASURE."
    fi
  } >"$RNDZ_NETNS_REPORT"
fi

[ "$T" = "$N_TESTS" ] || bail_out "ran $T tests, planned $N_TESTS"
