#!/bin/sh
# Inside `docker build` only: create /opt/venv from the wheelhouse, with no network,
# then drop what a service never runs (pip, setuptools, the packages' own test suites).
#   image-venv.sh twisted dnspython           (names, constrained by the runtime lock)
#   image-venv.sh -r /requirements/locust.txt
#   IMAGE_PYTHON=pypy3 IMAGE_LOCK=/requirements/pypy.txt image-venv.sh twisted dnspython
set -eu
"${IMAGE_PYTHON:-python3}" -m venv /opt/venv
/opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheelhouse \
    -c "${IMAGE_LOCK:-/requirements/runtime.txt}" "$@"
/opt/venv/bin/pip uninstall -q -y pip setuptools
find /opt/venv/lib -depth -type d \( -name test -o -name tests \) -path '*/site-packages/*/*' \
    -exec rm -rf {} +
