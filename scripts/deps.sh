#!/usr/bin/env bash
# Installs the Debian 12 packages the build, the demo and the tests need, then the npm
# packages of the test clients written in Node.js (tests/clients/kafkajs: kafkajs, the
# version its package-lock.json pins, by npm ci from the npm registry).
# Idempotent: does nothing (and needs no network) when everything is present.
# Run as root (or through sudo when it is available).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The npm packages of a test client: npm ci (exactly what package-lock.json pins) unless
# node_modules already holds each pinned package at its pinned version (no network then).
npm_client() {
  local dir=$1
  if node -e '
      const fs = require("fs"), path = require("path"), dir = process.argv[1];
      const lock = JSON.parse(fs.readFileSync(path.join(dir, "package-lock.json"), "utf8"));
      for (const [p, v] of Object.entries(lock.packages)) {
        if (!p) continue;
        const got = JSON.parse(fs.readFileSync(path.join(dir, p, "package.json"), "utf8"));
        if (got.version !== v.version) process.exit(1);
      }' "$dir" 2>/dev/null; then
    return 0
  fi
  echo "deps: npm ci in ${dir#"$ROOT"/}"
  npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
}

npm_clients() {
  npm_client "$ROOT/tests/clients/kafkajs"
}

PACKAGES=(
  # build
  gcc make cmake pkg-config libc6-dev git
  librdkafka-dev libpq-dev libjansson-dev libcurl4-openssl-dev libssl-dev libcmocka-dev
  libmicrohttpd-dev libsystemd-dev
  # local environment, demo and integration tests
  postgresql python3 python3-aiosmtpd python3-confluent-kafka python3-psycopg2
  python3-jsonschema python3-yaml procps curl iproute2 ca-certificates
  # test_smtp_tls: a test CA and the SMTP server's certificate
  openssl
  # SQL functions tested directly (tests/integration/test_sql_rules.py)
  postgresql-15-pgtap
  # every Python file of the repository checked for unused names and typos (ctest lint.python)
  pyflakes3
  # fuzzing (fuzz/run.sh, ctest fuzz.short): clang and libFuzzer's runtime
  clang libclang-rt-14-dev
  # systemd-analyze verify of the unit files
  systemd
  # the daemon under valgrind (tests/integration/test_valgrind.py)
  valgrind
  # the threads' stacks of a daemon that does not stop when told (tests/integration/harness.py)
  gdb
  # the Debian package (scripts/package.sh, ctest package.deb), the man pages (mandoc -T lint)
  debhelper dpkg-dev fakeroot lintian mandoc
  # promtool: the alerting rules (monitoring/) and /metrics (promtool check metrics)
  prometheus
  # the AsyncAPI document's validation (scripts/asyncapi-tools.sh installs its npm packages)
  nodejs
)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  if [ "$status" != "installed" ]; then
    missing+=("$p")
  fi
done

# npm: its own package in Debian, but part of nodejs in other builds (NodeSource's)
if ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PACKAGES[@]} packages present"
  npm_clients
  exit 0
fi

echo "deps: installing ${missing[*]}"
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "deps: missing packages and not root: ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
npm_clients
