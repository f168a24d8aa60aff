#!/usr/bin/env bash
# Builds the Debian package: b2bd_<version>_<arch>.deb, with dpkg-buildpackage -us -uc -b
# (debian/: debhelper 13, dh with the CMake build) in a clean copy of the source tree,
# then checks it with lintian (any error fails). Usage: scripts/package.sh [OUTDIR]
# (default build/package); prints the path of the .deb last.
# Environment: B2BD_PACKAGE_JOBS (default 2) compile jobs.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
OUT=${1:-$ROOT/build/package}
JOBS=${B2BD_PACKAGE_JOBS:-2}

scripts/deps.sh >&2

WORK=$(mktemp -d /tmp/b2bd-package.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/b2bd"
# The source tree without builds, Git's data or npm's downloads.
tar -C "$ROOT" --exclude=./build --exclude='./build-*' --exclude=./.git \
    --exclude=node_modules --exclude='./obj-*' --exclude=./debian/b2bd \
    --exclude=./debian/.debhelper --exclude=./debian/tmp -cf - . | tar -C "$WORK/b2bd" -xf -

(
  cd "$WORK/b2bd"
  DEB_BUILD_OPTIONS="nocheck parallel=$JOBS" dpkg-buildpackage -us -uc -b >&2
)

changes=$(ls "$WORK"/b2bd_*.changes)
# lintian: errors fail the build; warnings and notes are shown.
lintian --fail-on error --no-tag-display-limit "$changes" >&2

mkdir -p "$OUT"
deb=$(ls "$WORK"/b2bd_*.deb)
cp "$deb" "$changes" "$WORK"/b2bd_*.buildinfo "$OUT"/
echo "$OUT/$(basename "$deb")"
