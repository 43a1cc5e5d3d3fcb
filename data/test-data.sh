#!/bin/bash
# test-data.sh: the manual page and the systemd unit are sound
#
# SPDX-License-Identifier: MIT
#
#   test-data.sh RNDZ MANPAGE [UNIT [TEMPLATE]]
#
# RNDZ is the built tool, MANPAGE doc/rndz.1, UNIT the configured
# rndz-server.service (absent or empty when the server is not built),
# TEMPLATE the configured rndz-server@.service (absent without cluster
# support). Checks that
# the page formats without a warning, that it names every option that
# `rndz MODE --help` lists, and that systemd-analyze finds the unit valid
# and well confined (offline: nothing is started). Each check that lacks
# its tool (groff, man, systemd-analyze) is skipped. Prints TAP.

set -u

rndz=$1
manpage=$2
unit=${3:-}
template=${4:-}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export LC_ALL=C.UTF-8

n=0
ok() {
  n=$((n + 1))
  if [ "$1" = 0 ]; then
    echo "ok $n - $2"
  else
    echo "not ok $n - $2"
    [ -n "${3:-}" ] && [ -f "$3" ] && sed 's/^/# /' "$3"
  fi
}
skip() {
  n=$((n + 1))
  echo "ok $n - $1 # SKIP $2"
}

echo "1..7"

# 1. groff: -ww turns on every warning; they go to standard error
if command -v groff >/dev/null; then
  groff -man -Tutf8 -ww -z "$manpage" >"$tmp/groff.log" 2>&1
  [ $? = 0 ] && [ ! -s "$tmp/groff.log" ]
  ok $? "rndz.1 formats without a warning" "$tmp/groff.log"
else
  skip "rndz.1 formats without a warning" "no groff"
fi

# 2. man renders it, with its sections
if command -v man >/dev/null; then
  MANWIDTH=80 man -l "$manpage" >"$tmp/man.txt" 2>&1
  status=$?
  missing=0
  for section in NAME SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS" ENVIRONMENT EXAMPLES "SEE ALSO"; do
    grep -q "^$section\$" "$tmp/man.txt" || { echo "no section $section" >>"$tmp/man.log"; missing=1; }
  done
  [ $status = 0 ] && [ $missing = 0 ]
  ok $? "man -l rndz.1 renders every section" "$tmp/man.log"
else
  skip "man -l rndz.1 renders every section" "no man"
fi

# 3. Every option of every mode is in the page (as \-\-name)
for mode in "" server client key; do
  # shellcheck disable=SC2086
  "$rndz" $mode --help 2>/dev/null | sed -n 's/^ *\(-[a-z], \)\{0,1\}--\([a-z-]*\).*/\2/p'
done | sort -u >"$tmp/options"
while read -r option; do
  grep -qF -- "\\-\\-${option//-/\\-}" "$manpage" || echo "--$option is not documented" >>"$tmp/options.log"
done <"$tmp/options"
[ -s "$tmp/options" ] && [ ! -s "$tmp/options.log" ]
ok $? "rndz.1 documents all $(wc -l <"$tmp/options") options of rndz --help" "$tmp/options.log"

# 4 and 5. The unit, with ExecStart= pointing at the built tool, and the
# manual page where Documentation=man:rndz(1) can find it
if [ -z "$unit" ]; then
  skip "systemd-analyze verify rndz-server.service" "the server is not built"
  skip "rndz-server.service is well confined" "the server is not built"
elif ! command -v systemd-analyze >/dev/null; then
  skip "systemd-analyze verify rndz-server.service" "no systemd-analyze"
  skip "rndz-server.service is well confined" "no systemd-analyze"
else
  mkdir -p "$tmp/unit" "$tmp/man/man1"
  cp "$manpage" "$tmp/man/man1/rndz.1"
  sed "s|^ExecStart=[^ ]*|ExecStart=$(cd "$(dirname "$rndz")" && pwd)/$(basename "$rndz")|" \
    "$unit" >"$tmp/unit/rndz-server.service"

  (cd "$tmp/unit" && MANPATH=$tmp/man systemd-analyze verify ./rndz-server.service) >"$tmp/verify.log" 2>&1
  ok $? "systemd-analyze verify rndz-server.service" "$tmp/verify.log"

  # Exposure 0.0 (confined) to 10.0 (not at all); it is about 1.1, and
  # what is left is the network access a server needs
  (cd "$tmp/unit" && systemd-analyze security --offline=yes --threshold=20 \
    ./rndz-server.service) >"$tmp/security.log" 2>&1
  status=$?
  exposure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$tmp/security.log")
  ok $status "rndz-server.service is well confined: exposure ${exposure:-?} (at most 2.0)" "$tmp/security.log"
fi

# 6 and 7. The template, as its instance rndz-server@1.service
if [ -z "$template" ]; then
  skip "systemd-analyze verify rndz-server@1.service" "no cluster support"
  skip "rndz-server@.service is well confined" "no cluster support"
elif ! command -v systemd-analyze >/dev/null; then
  skip "systemd-analyze verify rndz-server@1.service" "no systemd-analyze"
  skip "rndz-server@.service is well confined" "no systemd-analyze"
else
  mkdir -p "$tmp/template" "$tmp/man/man1"
  cp "$manpage" "$tmp/man/man1/rndz.1"
  sed "s|^ExecStart=[^ ]*|ExecStart=$(cd "$(dirname "$rndz")" && pwd)/$(basename "$rndz")|" \
    "$template" >"$tmp/template/rndz-server@1.service"

  (cd "$tmp/template" && MANPATH=$tmp/man systemd-analyze verify ./rndz-server@1.service) \
    >"$tmp/verify-template.log" 2>&1
  ok $? "systemd-analyze verify rndz-server@1.service" "$tmp/verify-template.log"

  (cd "$tmp/template" && systemd-analyze security --offline=yes --threshold=20 \
    ./rndz-server@1.service) >"$tmp/security-template.log" 2>&1
  status=$?
  exposure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$tmp/security-template.log")
  ok $status "rndz-server@.service is well confined: exposure ${exposure:-?} (at most 2.0)" "$tmp/security-template.log"
fi
