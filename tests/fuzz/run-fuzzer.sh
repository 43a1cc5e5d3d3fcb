#!/bin/bash
# run-fuzzer.sh: run one libFuzzer harness for a bounded time, as a TAP test
#
# SPDX-License-Identifier: MIT
#
# Usage: run-fuzzer.sh NAME FUZZER CORPUS ARTIFACTS [LIBFUZZER-OPTION…]
#        run-fuzzer.sh --known BUG NAME FUZZER ARTIFACTS INPUT…
#
# Runs FUZZER for RNDZ_FUZZ_SECONDS seconds (20 by default) over the
# committed CORPUS, which it only reads: every input there runs first (the
# regression inputs among them), and what the fuzzer adds goes to a
# temporary directory. A crash, a leak, a sanitizer report, a broken
# invariant (an abort) or a timeout fails the test; the input that caused
# it is kept under ARTIFACTS. Prints TAP: "1..1" and one "ok" or "not ok"
# line with the number of inputs run.
#
# With --known, runs each INPUT once instead: inputs of a reported BUG
# that is not fixed yet. Their failure is expected, a TAP "not ok # TODO";
# once they pass, the test reports "ok # TODO", an unexpected pass, which
# says that the bug is fixed and the expectation must go.

set -u

known=
if [ "${1:-}" = --known ]; then
  known=$2
  shift 2
  if [ $# -lt 4 ]; then
    echo "usage: $0 --known BUG NAME FUZZER ARTIFACTS INPUT…" >&2
    exit 2
  fi
elif [ $# -lt 4 ]; then
  echo "usage: $0 NAME FUZZER CORPUS ARTIFACTS [LIBFUZZER-OPTION…]" >&2
  exit 2
fi
if [ -n "$known" ]; then
  name=$1 fuzzer=$2 artifacts=$3 corpus=
  shift 3
else
  name=$1 fuzzer=$2 corpus=$3 artifacts=$4
  shift 4
fi

seconds=${RNDZ_FUZZ_SECONDS:-20}
case $seconds in
  ''|*[!0-9]*|0) echo "1..0 # SKIP RNDZ_FUZZ_SECONDS is not a positive number: $seconds"; exit 0 ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/rndz-fuzz-$name.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
mkdir -p "$artifacts"
log=$artifacts/last-run.log

# LeakSanitizer on, UBSan fatal; keep what the caller (or meson) set
# before, the later option wins
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1"
# json-glib and GIO stay quiet; a critical warning is a bug, and aborts
export G_DEBUG=fatal-criticals
unset G_MESSAGES_DEBUG

if [ -n "$known" ]; then
  echo "1..1"
  failing=()
  : >"$artifacts/known.log"
  for input in "$@"; do
    if ! "$fuzzer" "$input" >"$work/log" 2>&1; then
      failing+=("$(basename "$input"): $(grep -m 1 -E '^fuzz-[a-z]+: ' "$work/log")")
    fi
    cat "$work/log" >>"$artifacts/known.log"
  done
  if [ ${#failing[@]} = 0 ]; then
    echo "ok 1 - known $name inputs pass # TODO fixed? Remove the expectation: $known"
  else
    echo "not ok 1 - ${#failing[@]} of $# known $name inputs fail # TODO $known"
    printf '# %s\n' "${failing[@]}"
  fi
  exit 0
fi

echo "1..1"
status=0
# The outer timeout only guards against a hang of libFuzzer itself
timeout --kill-after=30 $((seconds * 2 + 300)) \
  "$fuzzer" \
    -max_total_time="$seconds" \
    -timeout=30 \
    -rss_limit_mb=2560 \
    -error_exitcode=77 \
    -timeout_exitcode=78 \
    -print_final_stats=1 \
    -artifact_prefix="$artifacts/" \
    "$@" \
    "$work" "$corpus" >"$log" 2>&1 || status=$?

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
coverage=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -n 1 |
           sed -n 's/.*\(cov: [0-9]*\).*\(ft: [0-9]*\).*\(corp: [0-9]*\/[0-9]*[a-zA-Z]*\).*/\1 \2 \3/p')

if [ "$status" = 0 ] && [ -n "$execs" ]; then
  echo "ok 1 - fuzz $name for $seconds s, $execs execs${coverage:+ ($coverage)}"
  exit 0
fi

echo "not ok 1 - fuzz $name for $seconds s: exit status $status${execs:+ after $execs execs}"
echo "# The input that failed, if any, is in $artifacts/; the log is $log:"
grep -v -E '^#[0-9]+[[:space:]]' "$log" | tail -n 100 | sed 's/^/# /'
exit 1
