#!/bin/sh
# pyflakes over every Python file git tracks (ctest lint.python). Fails when pyflakes3
# (scripts/deps.sh) is missing: a check that cannot run is not a pass.
set -eu
cd "$(dirname "$0")/.."
command -v pyflakes3 >/dev/null || { echo "pyflakes3 missing: run scripts/deps.sh" >&2; exit 1; }
git ls-files -z '*.py' | xargs -0 pyflakes3
