#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for SECONDS (default 20).
#
#   fuzz/run.sh [SECONDS]                 all targets
#   FUZZ_TARGETS="decode" fuzz/run.sh 600 some of them (decode mustache smtp_headers)
#   FUZZ_BUILD_DIR=/tmp/bf fuzz/run.sh    build and scratch directory (default build-fuzz/)
#
# Each target is built from fuzz/fuzz_<name>.c and the src/*.c files it needs, with
# -fsanitize=fuzzer,address,undefined, and started from its seed corpus fuzz/corpus/<name>/
# (read only: new inputs go to BUILD/corpus/<name>/) with the dictionary fuzz/<name>.dict.
# Any crash, sanitizer report, memory leak, broken invariant (abort) or slow input
# (over FUZZ_UNIT_TIMEOUT seconds, default 10) fails the run: exit 1, the input saved
# as BUILD/artifacts/<name>-crash-*, -leak-*, -timeout-*. Prints the executions of each.
# Exit 77 (ctest's skip) when clang or libFuzzer's runtime (libclang-rt-14-dev) is missing;
# under CI (CI set, as .ci/run sets it) that is a failure instead (exit 1): scripts/deps.sh
# must provide them.
set -uo pipefail

SECONDS_EACH=${1:-20}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
BUILD=${FUZZ_BUILD_DIR:-$SRC/build-fuzz}
TARGETS=${FUZZ_TARGETS:-decode mustache smtp_headers}
UNIT_TIMEOUT=${FUZZ_UNIT_TIMEOUT:-10}
CC=${FUZZ_CC:-clang}

# A tool the run needs is missing: a skip by hand, a failure under CI.
missing() {
  if [ -n "${CI:-}" ]; then
    echo "fuzz: FAIL: $* (CI: scripts/deps.sh must provide it)"
    exit 1
  fi
  echo "fuzz: SKIP: $*"
  exit 77
}

case "$SECONDS_EACH" in
  ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

if ! command -v "$CC" >/dev/null 2>&1; then
  missing "$CC not found (apt-get install clang libclang-rt-14-dev)"
fi
# libFuzzer's runtime: a trivial target must link.
mkdir -p "$BUILD/artifacts" || exit 1
probe="$BUILD/probe.c"
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$probe"
if ! "$CC" -fsanitize=fuzzer,address,undefined "$probe" -o "$BUILD/probe" >"$BUILD/probe.log" 2>&1; then
  sed 's/^/  /' "$BUILD/probe.log" | head -5
  missing "$CC cannot link -fsanitize=fuzzer (libclang-rt-14-dev missing?; its output above)"
fi
if ! pkg-config --exists jansson libcrypto libcurl; then
  missing "pkg-config cannot find jansson, libcrypto or libcurl"
fi

# The src/ files each target links.
sources() {
  case "$1" in
    decode) echo "src/decode.c src/command_types.c src/validate.c src/idem_hash.c src/err.c" ;;
    mustache) echo "src/mustache.c" ;;
    smtp_headers) echo "src/smtp.c" ;;
    *) return 1 ;;
  esac
}
max_len() {
  case "$1" in
    decode) echo 32768 ;;
    mustache) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

CFLAGS=(-std=c11 -g -O1 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -D_GNU_SOURCE
        -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
        -fno-sanitize-recover=undefined -I"$SRC/include")
read -r -a PKG_CFLAGS <<<"$(pkg-config --cflags jansson libcrypto libcurl)"
read -r -a PKG_LIBS <<<"$(pkg-config --libs jansson libcrypto libcurl)"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

status=0
summary=()
for t in $TARGETS; do
  srcs=$(sources "$t") || { echo "fuzz: unknown target $t" >&2; exit 2; }
  bin="$BUILD/fuzz_$t"
  echo "fuzz: building $bin"
  # shellcheck disable=SC2086
  if ! (cd "$SRC" && "$CC" "${CFLAGS[@]}" "${PKG_CFLAGS[@]}" "fuzz/fuzz_$t.c" $srcs \
          -o "$bin" "${PKG_LIBS[@]}"); then
    echo "fuzz: FAIL: $t does not build"
    status=1
    summary+=("$t: does not build")
    continue
  fi
  work="$BUILD/corpus/$t"
  mkdir -p "$work"
  log="$BUILD/$t.log"
  echo "fuzz: running $t for ${SECONDS_EACH}s (log $log)"
  # libFuzzer's own exit codes are made distinct from ctest's skip code 77 (its default
  # error exit code is 77 too).
  "$bin" -max_total_time="$SECONDS_EACH" -timeout="$UNIT_TIMEOUT" -rss_limit_mb=2560 \
      -max_len="$(max_len "$t")" -dict="$HERE/$t.dict" -print_final_stats=1 \
      -error_exitcode=71 -timeout_exitcode=72 \
      -artifact_prefix="$BUILD/artifacts/$t-" "$work" "$HERE/corpus/$t" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  if [ "$rc" -ne 0 ]; then
    status=1
    summary+=("$t: FAIL (exit $rc) after ${execs:-?} executions; see $log")
    echo "fuzz: FAIL: $t exited $rc; the end of its log:"
    grep -v '^#[0-9]' "$log" | tail -40 | sed 's/^/  /'
    ls -1 "$BUILD/artifacts/" 2>/dev/null | grep "^$t-" | sed 's/^/  artifact: /'
  else
    summary+=("$t: ok, ${execs:-?} executions (${rate:-?}/s, ${cov:-cov: ?}, corpus $(ls "$work" | wc -l) new)")
  fi
done

echo "fuzz: summary (${SECONDS_EACH}s each)"
for s in "${summary[@]}"; do
  echo "  $s"
done
exit $status
