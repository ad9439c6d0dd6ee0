#!/usr/bin/env bash
# The dashboard's chart library (uPlot), brought into the build the way the wheelhouse is:
# pinned in requirements/js/package.json + package-lock.json (version and integrity hash),
# installed on the host by `npm ci --ignore-scripts` (no package script ever runs) into
# build/js/, and its dist files copied to services/web/static/vendor/ (gitignored), which
# the front serves under /static/vendor/ in both modes: the local processes read the
# source tree, the web image COPYs services/web. Nothing is fetched by `docker build` or by
# the page. `make vendor` (and make venv / up / test-unit, which depend on it) runs this.
#   bash scripts/vendor-js.sh           install from the lock, copy, check
# Refresh the pin: edit the version in package.json, then in requirements/js run
# `npm install --package-lock-only --ignore-scripts` and commit both files.
set -euo pipefail
cd "$(dirname "$0")/.."

src=requirements/js
work=build/js
out=services/web/static/vendor
log() { printf '[vendor-js] %s\n' "$*" >&2; }

command -v npm >/dev/null 2>&1 \
    || { log "npm is missing (Debian: apt-get install npm): the dashboard needs it once, to vendor uPlot"; exit 1; }

rm -rf "$work"
mkdir -p "$work"
cp "$src/package.json" "$src/package-lock.json" "$src/.npmrc" "$work/"
# ci: exactly the lock, every tarball checked against its integrity hash; fails if the
# lock and package.json disagree
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)

dist=$work/node_modules/uplot/dist
version=$(node -p 'require("./'"$work"'/node_modules/uplot/package.json").version' 2>/dev/null \
    || sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$work/node_modules/uplot/package.json" | head -1)
staging=$(mktemp -d "build/vendor.XXXXXX")
trap 'rm -rf "$staging"' EXIT
cp "$dist/uPlot.iife.min.js" "$dist/uPlot.min.css" "$staging/"
cp "$work/node_modules/uplot/LICENSE" "$staging/uPlot.LICENSE"
printf 'uplot %s\n' "$version" >"$staging/VERSIONS"
chmod 644 "$staging"/*
rm -rf "$out"
mv "$staging" "$out"
chmod 755 "$out"
touch "$out/.stamp"
log "uPlot $version in $out ($(du -sh "$out" | cut -f1))"
