#!/usr/bin/env bash
# The benchmark: builds b2bd without sanitizers (build-bench/), starts a local environment
# and measures, in one run: 10,000 assign commands end to end with batching on and off,
# the COPY floor, single-command latency at a light rate, and peak memory over 100,000
# commands; and the path users take: new customers by email (1 and 10 companies), b2bctl
# import of a CSV of new customers (and its --dry-run just before), 5,000 revokes, each with its ratio to the COPY floor;
# a company of 10,000 contacts suspended and resumed by one command each, with their ratio
# to the COPY floor of what they must write (10,000 access events and history rows).
# Prints a table; writes build-bench/bench.json.
#   bench/run.sh [--quick] [--only W,...]   (--quick: smaller sizes, for a smoke run;
#                                            --only: some workloads, see assign_bench.py)
# B2BD_BENCH_DURABLE=0 runs PostgreSQL without fsync; B2BD_BENCH_PG_CONF replaces the lines
# added to its postgresql.conf (default: track_commit_timestamp = on, which the lanes
# workload needs).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=$root/build-bench
bash scripts/deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DB2BD_SANITIZE=OFF -DB2BD_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target b2bd b2bctl b2b-kafka-mock apply_bench >/dev/null
trap 'bash scripts/localenv.sh stop "$build/localenv" "$build" >/dev/null 2>&1 || true' EXIT
# a durable PostgreSQL (fsync, synchronous commit): each commit costs what it does in
# production; commit timestamps kept, so that the lanes workload can tell when a command
# was applied (its transaction's commit) without counting an observer's wake-up
B2BD_LOCALENV_DURABLE=${B2BD_BENCH_DURABLE:-1} B2BD_LOCALENV_PG_CONF="${B2BD_BENCH_PG_CONF-track_commit_timestamp = on}" \
  bash scripts/localenv.sh start "$build/localenv" "$build" >/dev/null
export B2BD_BUILD_DIR=$build B2BD_LOCALENV_DIR=$build/localenv B2BD_SOURCE_DIR=$root
/usr/bin/python3 bench/assign_bench.py --out "$build/bench.json" "$@"
