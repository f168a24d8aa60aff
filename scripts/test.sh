#!/usr/bin/env bash
# The project's test command: installs the Debian packages (scripts/deps.sh),
# builds build/ with AddressSanitizer and UndefinedBehaviorSanitizer, and runs
# every test (unit, schema, integration) with ctest. Extra arguments go to
# ctest (e.g. scripts/test.sh -R integration -V). Exits non-zero on any failure.
#
# Integration tests run in parallel (-j2): each test has its own topic prefix and
# database; the services (scripts/localenv.sh) are a ctest fixture.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BUILD=${B2BD_TEST_BUILD_DIR:-$ROOT/build}
JOBS=${B2BD_TEST_JOBS:-2}

scripts/deps.sh

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=0:print_stacktrace=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
if [ -f "$ROOT/tests/lsan.supp" ]; then
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/tests/lsan.supp:print_suppressions=0}
fi

cmake -S "$ROOT" -B "$BUILD" -DB2BD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
cmake --build "$BUILD" -j"$JOBS"

# Whatever happens, leave no service of the local environment running.
trap '"$ROOT/scripts/localenv.sh" stop "$BUILD/localenv" "$BUILD" >/dev/null 2>&1 || true' EXIT
ctest --test-dir "$BUILD" --output-on-failure -j"$JOBS" "$@"
