#!/usr/bin/env bash
# Installs the AsyncAPI project's parser (@asyncapi/parser, the version pinned in
# tools/asyncapi/package.json and package-lock.json) from the npm registry into
# tools/asyncapi/node_modules (never committed), and with arguments validates those
# AsyncAPI documents: scripts/asyncapi-tools.sh topics/asyncapi.yaml
# Idempotent: installs nothing (and needs no network) when the parser is there.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DIR=$ROOT/tools/asyncapi

scripts/deps.sh >&2
if [ ! -f "$DIR/node_modules/@asyncapi/parser/package.json" ]; then
  echo "asyncapi-tools: installing @asyncapi/parser into $DIR/node_modules" >&2
  if [ -f "$DIR/package-lock.json" ]; then
    npm ci --prefix "$DIR" --no-audit --no-fund --loglevel=error >&2
  else
    npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error >&2
  fi
fi
if [ $# -gt 0 ]; then
  exec node "$DIR/validate.mjs" "$@"
fi
