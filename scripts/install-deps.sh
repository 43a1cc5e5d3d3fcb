#!/bin/bash
# install-deps.sh: install what building and testing rndz-glib needs
#
# SPDX-License-Identifier: MIT
#
# Debian 12. Installs only the packages that are missing, and runs
# apt-get update only when something is missing, so a second run does
# nothing. Works as root, or through sudo otherwise.

set -euo pipefail

PACKAGES=(
  # build
  meson ninja-build pkg-config gcc
  libglib2.0-dev libglib2.0-dev-bin libjson-glib-dev
  gettext
  # introspection and its tests
  gobject-introspection libgirepository1.0-dev gir1.2-glib-2.0
  python3 python3-gi gjs
  # API reference and its check (meson test --suite doc)
  gi-docgen
  # tests: valgrind setup, network namespaces with NAT (tests/netns)
  valgrind iproute2 iptables conntrack procps coreutils
  # tests: the GTK 4 chat example under Xvfb (meson test --suite gtk)
  gir1.2-gtk-4.0 xvfb xauth
  # tests: the manual page and the systemd unit (meson test --suite data)
  groff-base man-db systemd
  # tests: the sanitizer build and the libFuzzer harnesses (tests/fuzz);
  # libFuzzer's runtime is in libclang-rt-14-dev
  clang libclang-rt-14-dev
  # server fleets (issue 16): hiredis and its GLib adapter for the shared
  # registry, a real Redis for its tests, libsoup 3 for the metrics
  libhiredis-dev redis-server libsoup-3.0-dev
  # secure connections (issue 15): GnuTLS makes identities and runs DTLS;
  # glib-networking is GIO's TLS backend, which TCP's TLS needs at run time
  libgnutls28-dev glib-networking
  # port mapping (issue 19): NAT-PMP and UPnP-IGD for listeners, and a
  # real router daemon for the network-namespace test (tests/netns
  # starts its own; no system service is left running, see below)
  libnatpmp-dev libgupnp-igd-1.0-dev miniupnpd-iptables
)

missing=()
for package in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
  if [ "$status" != installed ]; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages are installed"
  exit 0
fi

if [ "$(id -u)" = 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null; then
  SUDO=(sudo)
else
  echo "install-deps: missing packages (${missing[*]}), and neither root nor sudo to install them" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends "${missing[@]}"

# miniupnpd's package may start its service where systemd runs: the
# tests start miniupnpd themselves, on routers in network namespaces
if [[ " ${missing[*]} " == *" miniupnpd"* ]] && [ -d /run/systemd/system ]; then
  "${SUDO[@]}" systemctl disable --now miniupnpd.service >/dev/null 2>&1 || true
fi
