#!/bin/bash
# test-chat.sh: two rndz-chat.py windows talk through a rendezvous, under Xvfb
#
# SPDX-License-Identifier: MIT
#
#   test-chat.sh RNDZ PYTHON [OUTDIR]
#
# RNDZ is the command line tool, PYTHON a Python with PyGObject and GTK 4
# (GI_TYPELIB_PATH and LD_LIBRARY_PATH must point at the build tree). Runs
# `rndz server` on 127.0.0.1, a listening chat ("alice") and a connecting
# one ("bob"), each sending a message to the other as soon as they are
# connected, and saving its window as a PNG once the other's message has
# arrived. Checks both messages crossed over TLS, that each window showed
# the other's fingerprint (the one it printed as its own), both
# screenshots look like a window, and that the server forgets alice once
# she quit. Copies
# alice's screenshot to OUTDIR/screenshot-chat.png if OUTDIR is given.
#
# Runs itself under xvfb-run (a virtual X server on a free display) and
# skips when xvfb-run or GTK 4 is missing. Prints TAP; every program it
# starts is bounded by `timeout` and killed on exit.

set -u

rndz=$1
python=$2
outdir=${3:-}
srcdir=$(cd "$(dirname "$0")" && pwd)
chat=$srcdir/rndz-chat.py

if [ -z "${RNDZ_CHAT_TEST_DISPLAY:-}" ]; then
  if ! command -v xvfb-run >/dev/null; then
    echo "1..0 # SKIP xvfb-run is not installed (Debian: xvfb, xauth)"
    exit 0
  fi
  if ! "$python" -c "import gi; gi.require_version('Gtk', '4.0')" 2>/dev/null; then
    echo "1..0 # SKIP $python has no GTK 4 (Debian: gir1.2-gtk-4.0)"
    exit 0
  fi
  # -a: the first free display from :99 on
  exec xvfb-run -a -s "-screen 0 1280x1024x24 -nolisten tcp" \
    env RNDZ_CHAT_TEST_DISPLAY=1 "$0" "$@"
fi

# Software rendering, no accessibility bus: nothing that Xvfb lacks
export GSK_RENDERER=cairo LIBGL_ALWAYS_SOFTWARE=1 GTK_A11Y=none
# A critical warning (a failed precondition in GTK or rndz-glib) is a failure
export G_DEBUG=fatal-criticals
export LC_ALL=C.UTF-8

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null
  done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "1..9"
n=0
ok() {
  n=$((n + 1))
  if [ "$1" = 0 ]; then
    echo "ok $n - $2"
  else
    echo "not ok $n - $2"
    shift 2
    for file in "$@"; do
      [ -f "$file" ] && sed "s|^|# $(basename "$file"): |" "$file"
    done
  fi
}
bail() {
  echo "Bail out! $1"
  exit 1
}

# wait_for FILE PATTERN: up to 15 s for a line in a background program's output
wait_for() {
  for _ in $(seq 150); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# check_png FILE: a decodable PNG the size of a window, with some content
check_png() {
  "$python" - "$1" <<'EOF'
import sys
import gi
gi.require_version('GdkPixbuf', '2.0')
from gi.repository import GdkPixbuf
pixbuf = GdkPixbuf.Pixbuf.new_from_file(sys.argv[1])
width, height = pixbuf.get_width(), pixbuf.get_height()
pixels = pixbuf.get_pixels()
colours = {pixels[i:i + 3] for i in range(0, len(pixels), 3 * 7)}
print(f'{width}x{height}, {len(colours)} colours')
sys.exit(0 if width >= 300 and height >= 300 and len(colours) >= 16 else 1)
EOF
}

# The server: each program is started directly in the background (not in
# a shell function), so that $! is the program and cleanup reaches it
timeout 60 "$rndz" server --listen-addr 127.0.0.1:0 >"$tmp/server.out" 2>&1 &
pids+=($!)
if ! wait_for "$tmp/server.out" '^Listening on'; then
  ok 1 "rndz server on 127.0.0.1" "$tmp/server.out"
  bail "no server"
fi
ok 0 "rndz server on 127.0.0.1"
server=127.0.0.1:$(sed -n 's/^Listening on .*:\([0-9]*\)$/\1/p' "$tmp/server.out")

# A library built without GnuTLS: the chats talk plain TCP
tls=${RNDZ_EXAMPLES_TLS:-1}
plain=()
[ "$tls" = 0 ] && plain=(--insecure)

alice_says="Hello Bob, this is Alice"
bob_says="Hi Alice! Bob here."

timeout 45 "$python" "$chat" "${plain[@]}" --id alice --server "$server" \
  --auto-message "$alice_says" --screenshot "$tmp/alice.png" \
  >"$tmp/alice.out" 2>"$tmp/alice.err" &
alice=$!
pids+=($alice)
if ! wait_for "$tmp/alice.out" '^Registered as alice'; then
  ok 1 "alice registers" "$tmp/alice.out" "$tmp/alice.err"
  bail "alice did not register"
fi
ok 0 "alice registers"

# bob reaches alice; each sends its message, and quits once the other's
# has arrived and its window is saved
timeout 30 "$python" "$chat" "${plain[@]}" --id bob --server "$server" --peer alice \
  --auto-message "$bob_says" --screenshot "$tmp/bob.png" \
  >"$tmp/bob.out" 2>"$tmp/bob.err"
status=$?
echo "exit status $status" >>"$tmp/bob.err"
[ $status = 0 ] && grep -q '^Connected to alice' "$tmp/bob.out" && [ -f "$tmp/bob.png" ]
ok $? "bob reaches alice and gets her message" "$tmp/bob.out" "$tmp/bob.err"

wait "$alice"
status=$?
echo "exit status $status" >>"$tmp/alice.err"
[ $status = 0 ] && grep -q '^Connected to bob' "$tmp/alice.out" && [ -f "$tmp/alice.png" ]
ok $? "alice gets bob's message" "$tmp/alice.out" "$tmp/alice.err"

# Each window showed the fingerprint the other printed as its own: the
# connection is TLS, and the chat puts the peer's fingerprint on the screen
fingerprint() {
  sed -n 's/^Fingerprint: \([0-9a-f]\{64\}\)$/\1/p' "$1"
}
if [ "$tls" = 0 ]; then
  n=$((n + 2))
  echo "ok $((n - 1)) # SKIP built without TLS: no fingerprints"
  echo "ok $n # SKIP built without TLS: no fingerprints"
else
  alice_fp=$(fingerprint "$tmp/alice.out")
  bob_fp=$(fingerprint "$tmp/bob.out")
  [ -n "$alice_fp" ] && grep -qx "Window shows the peer's fingerprint $alice_fp" "$tmp/bob.out"
  ok $? "bob's window shows alice's fingerprint ($alice_fp)" "$tmp/bob.out" "$tmp/alice.out"
  [ -n "$bob_fp" ] && grep -qx "Window shows the peer's fingerprint $bob_fp" "$tmp/alice.out"
  ok $? "alice's window shows bob's fingerprint ($bob_fp)" "$tmp/bob.out" "$tmp/alice.out"
fi

check_png "$tmp/alice.png" >"$tmp/alice-png.out" 2>&1
ok $? "alice's window saved as a PNG: $(head -n 1 "$tmp/alice-png.out")" "$tmp/alice-png.out"
check_png "$tmp/bob.png" >"$tmp/bob-png.out" 2>&1
ok $? "bob's window saved as a PNG: $(head -n 1 "$tmp/bob-png.out")" "$tmp/bob-png.out"

# alice quit cleanly: she stopped her client (bye, and her TCP connection
# to the server closed), so the server no longer knows her
timeout 20 "$rndz" client --id carol --server-addr "$server" --remote-peer alice \
  --tcp --timeout 5 >"$tmp/carol.out" 2>&1
status=$?
[ $status = 1 ] && grep -q 'not registered' "$tmp/carol.out"
ok $? "alice is gone from the server once she quit" "$tmp/carol.out"

if [ -n "$outdir" ] && [ -f "$tmp/alice.png" ]; then
  cp "$tmp/alice.png" "$outdir/screenshot-chat.png"
fi
exit 0
