#!/bin/bash
# test.sh: build rndz-glib and run its whole test suite
#
# SPDX-License-Identifier: MIT
#
# Usage: scripts/test.sh [MESON-TEST-ARGUMENTS…]
#   e.g. scripts/test.sh --setup valgrind, or scripts/test.sh --suite unit
#
# Installs the dependencies, builds in _build (or $BUILD_DIR; created if
# needed), runs "meson test" and ends with one line
#
#   N passed, N failed, N skipped
#
# counting test cases: the TAP results ("ok", "not ok", "# SKIP") that
# each test printed, as meson's testlog.json recorded them. A test that
# printed no TAP counts as one case with meson's verdict, and a TAP test
# that meson failed (a crash, a timeout, a wrong plan) counts one failure
# more when none of its cases failed. A skip or a TODO ("not ok # TODO",
# and a whole test skipped) counts as skipped only when
# tests/expected-skips.txt lists it with its reason; otherwise it is a
# failure. Both kinds are printed before that line. Exits non-zero if
# anything failed.
#
# In CI (CI=true), or with RNDZ_TEST_SANITIZERS=1 (=0 turns it off), it
# then also builds in _build-asan (or $SAN_BUILD_DIR) with clang,
# AddressSanitizer, UndefinedBehaviorSanitizer and the libFuzzer
# harnesses, and runs the suites unit, fuzz and stress there
# (RNDZ_FUZZ_SECONDS per harness: 60 in CI, else 20; RNDZ_STRESS_SECONDS:
# 20); their cases count in the same line. See doc/security.md.
#
# It also builds everything once without GnuTLS, in _build-notls (or
# $NOTLS_BUILD_DIR; -Dtls=disabled, no introspection: some 15 s), and
# runs the one test made for that build, notls, whose cases count too:
# the secure API must still build there and fail cleanly. RNDZ_TEST_NOTLS=0
# turns it off.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-_build}
PYTHON=/usr/bin/python3

cd "$ROOT"

# What CI reads when the suite could not even run
give_up ()
{
  echo "test.sh: $*" >&2
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
}

echo "==> Installing the build and test dependencies"
bash "$ROOT/scripts/install-deps.sh" || give_up "installing the dependencies failed"

echo "==> Building in $BUILD_DIR"
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  meson setup "$BUILD_DIR" -Dclient=true -Dserver=true -Dtests=true ||
    give_up "meson setup failed"
else
  # The whole suite needs both halves of the library and the tests; an
  # unchanged configuration is left alone, so nothing is regenerated
  off=$(meson introspect --buildoptions "$BUILD_DIR" | "$PYTHON" -c '
import json, sys
options = {o["name"]: o["value"] for o in json.load(sys.stdin)}
print(" ".join(n for n in ("client", "server", "tests") if options.get(n) is not True))
') || give_up "meson introspect failed on $BUILD_DIR"
  if [ -n "$off" ]; then
    meson configure "$BUILD_DIR" -Dclient=true -Dserver=true -Dtests=true ||
      give_up "meson configure failed"
  fi
fi
ninja -C "$BUILD_DIR" || give_up "the build failed"

echo "==> Running the test suite"
# meson names the log after the setup: testlog-valgrind.json
setup=
prev=
for arg in "$@"; do
  case $arg in
    --setup=*) setup=${arg#--setup=} ;;
    *) [ "$prev" = --setup ] && setup=$arg ;;
  esac
  prev=$arg
done
TESTLOG=$BUILD_DIR/meson-logs/testlog${setup:+-$setup}.json
rm -f "$TESTLOG"
status=0
meson test -C "$BUILD_DIR" --print-errorlogs "$@" || status=$?

[ -f "$TESTLOG" ] || give_up "meson test wrote no $TESTLOG (exit status $status)"
TESTLOGS=("$TESTLOG")

# The sanitizer build: on in CI, or with RNDZ_TEST_SANITIZERS=1
sanitizers=${RNDZ_TEST_SANITIZERS:-$([ "${CI:-}" = true ] && echo 1 || echo 0)}
if [ "$sanitizers" != 0 ]; then
  SAN_BUILD_DIR=${SAN_BUILD_DIR:-_build-asan}
  echo "==> Building in $SAN_BUILD_DIR: clang, ASan, UBSan, libFuzzer"
  if [ ! -f "$SAN_BUILD_DIR/build.ninja" ]; then
    CC=clang meson setup "$SAN_BUILD_DIR" -Dclient=true -Dserver=true -Dtests=true \
      -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false ||
      give_up "meson setup failed in $SAN_BUILD_DIR"
  fi
  ninja -C "$SAN_BUILD_DIR" || give_up "the build failed in $SAN_BUILD_DIR"

  echo "==> Running the suites unit, fuzz and stress with the sanitizers"
  SAN_TESTLOG=$SAN_BUILD_DIR/meson-logs/testlog.json
  rm -f "$SAN_TESTLOG"
  if [ "${CI:-}" = true ]; then
    export RNDZ_FUZZ_SECONDS=${RNDZ_FUZZ_SECONDS:-60}
  fi
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    meson test -C "$SAN_BUILD_DIR" --print-errorlogs --suite unit --suite fuzz --suite stress ||
    status=$?
  [ -f "$SAN_TESTLOG" ] || give_up "meson test wrote no $SAN_TESTLOG (exit status $status)"
  TESTLOGS+=("$SAN_TESTLOG")
fi

# The build without TLS: compiled whole, and its own test run
if [ "${RNDZ_TEST_NOTLS:-1}" != 0 ]; then
  NOTLS_BUILD_DIR=${NOTLS_BUILD_DIR:-_build-notls}
  echo "==> Building in $NOTLS_BUILD_DIR: without TLS"
  if [ ! -f "$NOTLS_BUILD_DIR/build.ninja" ]; then
    meson setup "$NOTLS_BUILD_DIR" -Dclient=true -Dserver=true -Dtests=true \
      -Dtls=disabled -Dintrospection=disabled ||
      give_up "meson setup failed in $NOTLS_BUILD_DIR"
  fi
  ninja -C "$NOTLS_BUILD_DIR" || give_up "the build failed in $NOTLS_BUILD_DIR"

  echo "==> Running the test notls without TLS"
  NOTLS_TESTLOG=$NOTLS_BUILD_DIR/meson-logs/testlog.json
  rm -f "$NOTLS_TESTLOG"
  meson test -C "$NOTLS_BUILD_DIR" --print-errorlogs notls || status=$?
  [ -f "$NOTLS_TESTLOG" ] || give_up "meson test wrote no $NOTLS_TESTLOG (exit status $status)"
  TESTLOGS+=("$NOTLS_TESTLOG")
fi

echo "==> Counting test cases"
summary=$("$PYTHON" - "$ROOT/tests/expected-skips.txt" "${TESTLOGS[@]}" <<'EOF'
import fileinput
import fnmatch
import json
import os
import re
import sys

# "ok 3 - what # SKIP why", "not ok 4 /path # TODO why"
TAP = re.compile(r'^(not )?ok\b\s*\d*\s*(?:-\s*)?([^#]*?)\s*(?:#\s*(\w+)\b\s*(.*))?$',
                 re.IGNORECASE)
PLAN = re.compile(r'^1\.\.\d+')
PLAN_SKIP = re.compile(r'^1\.\.0\s*#\s*SKIP\b\s*(.*)', re.IGNORECASE)
MESON_OK = {'OK', 'EXPECTEDFAIL'}

# The one list of what may be skipped or left undone: "test | case | reason"
expected = []
with open(sys.argv[1], encoding='utf-8') as f:
    for number, line in enumerate(f, 1):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        fields = [field.strip() for field in line.split('|')]
        if len(fields) != 3 or not all(fields):
            sys.exit(f'{sys.argv[1]}:{number}: not "test | case | reason"')
        expected.append(fields)

def listed(test, case):
    for entry in expected:
        if fnmatch.fnmatchcase(test, entry[0]) and fnmatch.fnmatchcase(case, entry[1]):
            return entry
    return None

passed = failed = skipped = 0
notes = []                              # expected and unexpected, for the end
logs = sys.argv[2:]
with fileinput.input(logs, encoding='utf-8', errors='replace') as log:
    for line in log:
        line = line.strip()
        if not line:
            continue
        test = json.loads(line)
        name = test.get('name', '?')
        # "rndz-glib:unit / ratelimit": the list names the test alone
        base = name.rsplit(' / ', 1)[-1]
        if len(logs) > 1:               # which build directory
            name = os.path.basename(os.path.dirname(os.path.dirname(log.filename()))) + ' ' + name
        result = test.get('result', 'ERROR')
        stdout = (test.get('stdout') or '').splitlines()
        # Only a TAP stream has a plan: other tests' "ok" lines are not cases
        if any(PLAN.match(l) for l in stdout):
            cases = [m for m in (TAP.match(l) for l in stdout) if m]
        else:
            cases = []

        t_passed = t_failed = t_skipped = 0

        # A skip or a TODO is a failure unless the list names it
        def not_done(case, directive, why):
            entry = listed(base, case)
            what = case
            if entry is not None:
                notes.append(f'  expected {directive}: {name}: {what} ({entry[2]})')
                return 'skipped'
            notes.append(f'  UNEXPECTED {directive}: {name}: {what} # {why} '
                         f'(not in tests/expected-skips.txt)')
            return 'failed'

        for m in cases:
            case = m.group(2).strip()
            directive = (m.group(3) or '').upper()
            why = (m.group(4) or '').strip()
            if m.group(1) and directive == 'TODO':
                verdict = not_done(case, 'TODO', why)
            elif m.group(1):
                verdict = 'failed'
            elif directive == 'SKIP':
                verdict = not_done(case, 'SKIP', why)
            elif directive == 'TODO':
                notes.append(f'  UNEXPECTED PASS: {name}: {case} is marked TODO')
                verdict = 'failed'
            else:
                verdict = 'passed'
            t_passed += verdict == 'passed'
            t_failed += verdict == 'failed'
            t_skipped += verdict == 'skipped'

        if not cases:
            plan_skip = next((m for m in (PLAN_SKIP.match(l) for l in stdout) if m), None)
            if result == 'SKIP' or (plan_skip and result in MESON_OK):
                why = plan_skip.group(1).strip() if plan_skip else 'meson says SKIP'
                # Its case is its reason: a list entry can name the one
                # condition it is expected under
                verdict = not_done(why, 'SKIP', why)
                t_skipped = int(verdict == 'skipped')
                t_failed = int(verdict == 'failed')
            elif result in MESON_OK:
                t_passed = 1
            else:
                t_failed = 1
        elif result not in MESON_OK and result != 'SKIP' and t_failed == 0:
            t_failed = 1                    # crashed, timed out, bad plan

        verdict = 'FAIL' if t_failed else result
        print(f'  {name}: {verdict} ({t_passed} passed, {t_failed} failed, '
              f'{t_skipped} skipped)', file=sys.stderr)
        passed += t_passed
        failed += t_failed
        skipped += t_skipped

for note in notes:
    print(note, file=sys.stderr)
print(f'{passed} passed, {failed} failed, {skipped} skipped')
EOF
) || give_up "cannot read ${TESTLOGS[*]}"

echo "$summary"

failed=$(sed -n 's/^[0-9]* passed, \([0-9]*\) failed.*/\1/p' <<<"$summary")
if [ "$status" != 0 ] || [ "${failed:-1}" != 0 ]; then
  exit 1
fi
