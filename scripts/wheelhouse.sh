#!/usr/bin/env bash
# Prepare the wheelhouse the images install from (no network inside `docker build`).
#   bash scripts/wheelhouse.sh             -> build/wheelhouse/
#   bash scripts/wheelhouse.sh --pypy      -> build/wheelhouse-pypy/
# Wheels for CPython 3.11 manylinux x86_64 (the images' interpreter), from the pinned
# lock files. Skipped when the wheelhouse is newer than every lock file.
# --pypy: wheels for Debian's pypy3 (Python 3.9) from requirements/pypy.txt, made by the
# host's own pypy3 with `pip wheel` (installed with apt-get when missing): pure-Python
# wheels are downloaded, and what has no pp39 wheel (zope.interface) is built from its
# sdist, which on PyPy gives a pure-Python wheel (no C extension to compile).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = --pypy ]; then
    out=build/wheelhouse-pypy
    locks=(requirements/pypy.txt)
else
    out=build/wheelhouse
    locks=(requirements/runtime.txt requirements/locust.txt)
fi
stamp=$out/.stamp

if [ -f "$stamp" ] && [ -z "$(find "${locks[@]}" -newer "$stamp")" ]; then
    exit 0
fi
mkdir -p "$out"
if [ "$out" = build/wheelhouse-pypy ]; then
    if ! command -v pypy3 >/dev/null 2>&1; then
        echo "[wheelhouse] installing Debian's pypy3 (apt-get)" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pypy3 >/dev/null
    fi
    tools=$(mktemp -d /tmp/polyloop-pypy-pip.XXXXXX)
    trap 'rm -rf "$tools"' EXIT
    pypy3 -m venv "$tools"
    "$tools/bin/pip" wheel --quiet --disable-pip-version-check --no-deps -w "$out" \
        -r "${locks[0]}" 2>&1 | grep -v 'is ignored' || true
else
    for lock in "${locks[@]}"; do
        python3 -m pip download --quiet --disable-pip-version-check --no-deps \
            --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 \
            --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            --platform manylinux_2_28_x86_64 --platform any \
            -d "$out" -r "$lock" 2>&1 | grep -v 'is ignored' || true
    done
fi
# every pinned requirement must now have a wheel
python3 - "$out" "${locks[@]}" <<'PY'
import re, sys, pathlib
out = pathlib.Path(sys.argv[1])
have = {re.sub(r"[-_.]+", "_", p.name.split("-")[0]).lower() for p in out.glob("*.whl")}
missing = []
for lock in sys.argv[2:]:
    for line in pathlib.Path(lock).read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==", line)
        if m and re.sub(r"[-_.]+", "_", m.group(1)).lower() not in have:
            missing.append(m.group(0))
if missing:
    sys.exit(f"[wheelhouse] no wheel for: {', '.join(sorted(set(missing)))}")
PY
touch "$stamp"
echo "[wheelhouse] $(ls "$out"/*.whl | wc -l) wheels in $out ($(du -sh "$out" | cut -f1))" >&2
