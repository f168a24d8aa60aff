#!/usr/bin/env bash
# Mutation testing: applies each one-line mutation of tests/mutations/list.tsv to a scratch
# worktree of HEAD, builds, runs the tests it names and reports the mutations they do not
# catch (tests/mutations/run.py; --help). Not part of ctest: it takes tens of minutes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
scripts/deps.sh
exec /usr/bin/python3 tests/mutations/run.py "$@"
