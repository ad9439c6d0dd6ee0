#!/usr/bin/env bash
# build/pypy-venv: Debian's pypy3 (Python 3.9) with requirements/pypy.txt, installed from
# build/wheelhouse-pypy with no index. Used by tests/unit/test_pypy_services.py, by
# `python -m bench --only pypy` and by `POLYLOOP_PYPY=1 make up` without Docker.
#   bash scripts/pypy-venv.sh      (make pypy-venv; installs pypy3 with apt-get if missing)
# Skipped when the venv is newer than the lock file.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=build/pypy-venv
lock=requirements/pypy.txt
bash scripts/wheelhouse.sh --pypy
if [ -x "$venv/bin/python" ] && [ "$venv/.stamp" -nt "$lock" ]; then
    exit 0
fi
rm -rf "$venv"
pypy3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-index \
    --find-links build/wheelhouse-pypy -r "$lock" 2>&1 | grep -v 'is ignored' || true
"$venv/bin/python" -c "import twisted.names, dns.message, prometheus_client" \
    || { echo "[pypy-venv] $venv is incomplete" >&2; exit 1; }
touch "$venv/.stamp"
echo "[pypy-venv] $venv: $("$venv/bin/python" -c 'import sys; print(sys.version.split()[0], sys.implementation.name)')" >&2
