#!/bin/bash
# test-install.sh: what `meson install` puts in place is usable
#
# SPDX-License-Identifier: MIT
#
#   test-install.sh MESON BUILDDIR SRCDIR PREFIX LIBDIR BINDIR INCLUDEDIR
#                   DATADIR LOCALEDIR DOCS(true|false)
#
# The directories are absolute, as configured. Installs the build into a
# temporary DESTDIR, then, from there only: compiles and runs a C program
# with the flags of the installed pkg-config file, imports Rndz in Python
# and GJS from the installed typelib, runs the installed rndz tool, and
# checks the headers, the GIR, the translations and, if built, the API
# reference. Prints TAP; removes its temporary directory.

set -u

meson=$1
builddir=$2
srcdir=$3
prefix=$4
libdir=$5
bindir=$6
includedir=$7
datadir=$8
localedir=$9
docs=${10}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest

# Nothing from the build tree: only what was installed
unset GI_TYPELIB_PATH LD_LIBRARY_PATH PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR

n=0
failed=0
ok() {
  n=$((n + 1))
  echo "ok $n - $1"
}
not_ok() {
  n=$((n + 1))
  failed=1
  echo "not ok $n - $1"
  [ -n "${2:-}" ] && [ -f "$2" ] && sed 's/^/# /' "$2"
}
check() {
  local what=$1
  shift
  if "$@" >"$tmp/log" 2>&1; then
    ok "$what"
  else
    not_ok "$what" "$tmp/log"
  fi
}
skip() {
  n=$((n + 1))
  echo "ok $n - $1 # SKIP $2"
}

echo "1..11"

# 1. Install
if ! DESTDIR=$dest "$meson" install -C "$builddir" --no-rebuild --quiet >"$tmp/log" 2>&1; then
  not_ok "meson install into a DESTDIR" "$tmp/log"
  echo "Bail out! nothing was installed"
  exit 1
fi
ok "meson install into a DESTDIR"

lib=$dest$libdir
export LD_LIBRARY_PATH=$lib

# 2. Headers: the single include and the generated ones
headers=(rndz.h rndz-version.h rndz-features.h rndz-enum-types.h rndz-types.h)
missing=()
for header in "${headers[@]}"; do
  [ -f "$dest$includedir/rndz-glib-1.0/rndz-glib/$header" ] || missing+=("$header")
done
if [ ${#missing[@]} = 0 ]; then
  ok "headers in include/rndz-glib-1.0/rndz-glib"
else
  echo "missing: ${missing[*]}" >"$tmp/log"
  not_ok "headers in include/rndz-glib-1.0/rndz-glib" "$tmp/log"
fi

# 3. A C program built with the installed pkg-config file. Its prefix is
# moved into the DESTDIR in a copy; PKG_CONFIG_SYSROOT_DIR would move
# GLib's paths too.
mkdir -p "$tmp/pc"
sed "s|^prefix=.*|prefix=$dest$prefix|" "$lib/pkgconfig/rndz-glib-1.0.pc" >"$tmp/pc/rndz-glib-1.0.pc" 2>"$tmp/log"
cat >"$tmp/program.c" <<'EOF'
#include <rndz-glib/rndz.h>

int
main (void)
{
  g_autoptr(RndzServer) server = rndz_server_new ();
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new_from_string ("127.0.0.1", 0);
  const char *servers[] = { "127.0.0.1:1", NULL };
  g_autoptr(RndzClient) client = rndz_client_new ("installed", servers);
  g_autoptr(GError) error = NULL;

  if (!RNDZ_CHECK_VERSION (1, 0, 0))
    return 1;
  if (!rndz_server_listen (server, address, &error))
    {
      g_printerr ("%s\n", error->message);
      return 1;
    }
  g_print ("%s %u %s\n", RNDZ_VERSION_S, rndz_server_get_port (server),
           g_enum_to_string (RNDZ_TYPE_CLIENT_STATE, rndz_client_get_state (client)));
  return 0;
}
EOF
build_program() {
  local flags
  flags=$(PKG_CONFIG_PATH=$tmp/pc pkg-config --cflags --libs rndz-glib-1.0) || return 1
  echo "flags: $flags"
  case $flags in
    *"$dest"*) ;;
    *) echo "the flags do not point into the DESTDIR"; return 1 ;;
  esac
  # shellcheck disable=SC2086
  ${CC:-cc} -o "$tmp/program" "$tmp/program.c" $flags || return 1
  "$tmp/program" || return 1
  # Linked with the installed library, not the build tree's
  ldd "$tmp/program" | grep -F "$lib/librndz-glib-1.0.so"
}
check "a C program built with pkg-config --cflags --libs rndz-glib-1.0" build_program

# 4. The rndz tool
check "bin/rndz runs" "$dest$bindir/rndz" --version

# 5. The GIR for other bindings
check "share/gir-1.0/Rndz-1.0.gir" test -f "$dest$datadir/gir-1.0/Rndz-1.0.gir"

# 6, 7. Python and GJS import Rndz from the installed typelib
export GI_TYPELIB_PATH=$lib/girepository-1.0
if [ ! -f "$GI_TYPELIB_PATH/Rndz-1.0.typelib" ]; then
  echo "no $GI_TYPELIB_PATH/Rndz-1.0.typelib" >"$tmp/log"
  not_ok "the typelib is installed" "$tmp/log"
  not_ok "the typelib is installed" "$tmp/log"
else
  if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import gi' 2>/dev/null; then
    check "Python imports Rndz from the installed typelib" /usr/bin/python3 -c '
import sys, gi
gi.require_version("Rndz", "1.0")
from gi.repository import GIRepository, Gio, Rndz
path = GIRepository.Repository.get_default().get_typelib_path("Rndz")
assert path.startswith(sys.argv[1]), path
server = Rndz.Server.new()
assert server.listen(Gio.InetSocketAddress.new_from_string("127.0.0.1", 0))
print(path, server.get_port())
' "$dest"
  else
    skip "Python imports Rndz from the installed typelib" "no /usr/bin/python3 with gi"
  fi

  if command -v gjs >/dev/null; then
    check "GJS imports Rndz from the installed typelib" gjs -c '
const {Gio, Rndz} = imports.gi;
const server = Rndz.Server.new();
if (!server.listen(Gio.InetSocketAddress.new_from_string("127.0.0.1", 0)))
    throw new Error("cannot listen");
print(Rndz.VERSION_S, server.get_port());
'
  else
    skip "GJS imports Rndz from the installed typelib" "no gjs"
  fi
fi

# 8. Translations: one catalog per language of po/LINGUAS
check_translations() {
  local languages
  languages=$(grep -v '^#' "$srcdir/po/LINGUAS" 2>/dev/null | tr -s ' \n' ' ')
  [ -n "${languages// /}" ] || { echo "no languages in po/LINGUAS"; return 0; }
  for language in $languages; do
    catalog=$dest$localedir/$language/LC_MESSAGES/rndz-glib-1.0.mo
    ls -l "$catalog" || return 1
    # A catalog with at least one translated message
    if command -v msgunfmt >/dev/null; then
      [ "$(msgunfmt "$catalog" | grep -c '^msgid ')" -gt 1 ] || return 1
    fi
  done
}
check "a translation catalog for each language of po/LINGUAS" check_translations

# 9. The API reference, when it is built
if [ "$docs" = true ]; then
  check "the API reference in share/doc/rndz-glib-1.0" \
    test -f "$dest$datadir/doc/rndz-glib-1.0/index.html" -a \
         -f "$dest$datadir/doc/rndz-glib-1.0/rndz-glib-1.0.devhelp2"
else
  skip "the API reference in share/doc/rndz-glib-1.0" "-Ddocumentation=false"
fi

# 10, 11. The systemd unit and the manual page
check "lib/systemd/system/rndz-server.service runs the installed rndz" \
  grep -qx "ExecStart=$bindir/rndz server \\\$RNDZ_SERVER_ARGS" "$dest$prefix/lib/systemd/system/rndz-server.service"
check "share/man/man1/rndz.1" test -s "$dest$datadir/man/man1/rndz.1"

exit $failed
