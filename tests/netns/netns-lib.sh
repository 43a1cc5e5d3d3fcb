# netns-lib.sh: what the network-namespace tests share (sourced, not run)
#
# SPDX-License-Identifier: MIT
#
# TAP output, namespaces that are deleted however the test ends, cables
# and addresses, an iptables backend that can do NAT here, background
# processes and waits. A test sets PREFIX (the prefix of its namespaces)
# before it calls netns_init NAME, which makes its temporary directory
# TMP and installs the cleanup; it may define netns_cleanup_hook, which
# runs first. Every namespace made with add_ns is deleted at exit, and
# every process started in one is killed.

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

netns_cleanup ()
{
  local name ns pid

  if declare -F netns_cleanup_hook >/dev/null; then
    netns_cleanup_hook
  fi
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

# netns_init NAME: the temporary directory ${TMPDIR:-/tmp}/NAME.XXXXXX
# (TMP), and the cleanup at exit
netns_init ()
{
  NAMESPACES=()
  declare -gA BG_PID=()
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  T=0
  trap netns_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

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

# addr NS DEV ADDRESS/PREFIX...: IPv4 and IPv6 addresses (no duplicate
# address detection, so that they are usable at once)
addr ()
{
  local ns=$1 dev=$2 a
  shift 2
  for a in "$@"; do
    case $a in
      *:*) run ip -n "$ns" -6 addr add "$a" dev "$dev" nodad ;;
      *) run ip -n "$ns" addr add "$a" dev "$dev" ;;
    esac
  done
}

# Picks the first iptables backend that can do conntrack and NAT here, for
# both families, trying it in a namespace of its own (NS_PROBE): sets IPT,
# IP6T, and RANDOM_FULLY (yes if MASQUERADE takes --random-fully)
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

# result STATUS DESCRIPTION [DIRECTIVE]: one TAP test line
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

# diag FILE...: the end of each file, as TAP comments
diag ()
{
  local file
  for file in "$@"; do
    [ -s "$file" ] || continue
    echo "# --- $(basename "$file")"
    tail -n 15 "$file" | sed 's/^/#   /'
  done
}
