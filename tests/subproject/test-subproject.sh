#!/bin/bash
# test-subproject.sh: rndz-glib as a meson subproject of another project
#
# SPDX-License-Identifier: MIT
#
#   test-subproject.sh MESON RNDZ_GLIB_SOURCE_DIR
#
# Puts the project of this directory (meson.build, main.c) in a temporary
# directory with the rndz-glib source tree as subprojects/rndz-glib (a
# symbolic link: nothing is copied), configures it offline, checks that
# rndz-glib brings only its library along, builds the project and runs
# its program, which registers a client with a server on 127.0.0.1.
# TAP output; every step bounded in time; the directory is removed at
# the end.

set -uo pipefail

MESON=$1
SOURCE=$(cd "$2" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STEPS=4

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rndz-subproject.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
PREFIX=$WORK/prefix

echo "1..$STEPS"

fail ()
{
  echo "not ok $1 - $2"
  sed 's/^/# /' "$WORK/log"
  # The steps that need this one cannot run
  for ((i = $1 + 1; i <= STEPS; i++)); do
    echo "ok $i # SKIP step $1 failed"
  done
  exit 1
}

mkdir "$WORK/project" "$WORK/project/subprojects"
cp "$HERE/meson.build" "$HERE/main.c" "$WORK/project/"
ln -s "$SOURCE" "$WORK/project/subprojects/rndz-glib"

# No wrap downloads, and the subproject even if an rndz-glib-1.0 is
# installed on this machine. A plain build (no optimisation) is enough to
# check the build's shape, and quicker.
timeout 60 "$MESON" setup "$WORK/build" "$WORK/project" \
  --wrap-mode=nodownload --force-fallback-for=rndz-glib-1.0 --buildtype=plain \
  --prefix="$PREFIX" > "$WORK/log" 2>&1 \
  || fail 1 "meson setup finds rndz-glib-1.0 in subprojects/"
echo "ok 1 - meson setup finds rndz-glib-1.0 in subprojects/"

# What a library brings along and nothing more: no tests of its own in the
# parent's `meson test`, no rndz program, manual page or systemd unit to
# install; the library, its headers, pkg-config file and translations.
{
  "$MESON" introspect --tests "$WORK/build" | grep -o '"name": "[^"]*"' | sed 's/^/test /'
  "$MESON" introspect --installed "$WORK/build" | grep -o ': "[^"]*"' | cut -d'"' -f2
} > "$WORK/log" 2>&1
only_library=yes
grep -q '^test ' "$WORK/log" && only_library=no
grep -q "^$PREFIX/include/rndz-glib-1.0/rndz-glib/rndz.h$" "$WORK/log" || only_library=no
if grep '^/' "$WORK/log" | grep -Ev "^$PREFIX/(lib/|include/rndz-glib-1.0/|share/locale/)" > /dev/null; then
  only_library=no
fi
[ $only_library = yes ] || fail 2 "rndz-glib brings only its library"
echo "ok 2 - rndz-glib brings only its library"

timeout 120 "$MESON" compile -C "$WORK/build" > "$WORK/log" 2>&1 \
  || fail 3 "the program builds against <rndz-glib/rndz.h>"
echo "ok 3 - the program builds against <rndz-glib/rndz.h>"

timeout 20 "$WORK/build/rndz-glib-user" > "$WORK/log" 2>&1 \
  || fail 4 "the program registers a client with a server"
grep -q "^rndz-glib [0-9.]*: registered with 127.0.0.1:[0-9]*, state registered, port [0-9]*$" "$WORK/log" \
  || fail 4 "the program registers a client with a server"
echo "ok 4 - the program registers a client with a server"
sed 's/^/# /' "$WORK/log"
