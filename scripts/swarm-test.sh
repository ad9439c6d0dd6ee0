#!/usr/bin/env bash
# `make test-swarm`: deploy the replicated stack on Docker Swarm, run tests/swarm through
# its front, tear everything down (and leave the swarm if this run created it).
#   SWARM_WEB_PORT (26080 here, so that it never meets `make up`'s 8080 or swarm-up's 8081)
#   SWARM_BUILD_PROJECT (polyloop: the images `make up` built), SWARM_STACK
set -euo pipefail
cd "$(dirname "$0")/.."
export SWARM_WEB_PORT=${SWARM_WEB_PORT:-26080} SWARM_LOCUST_PORT=${SWARM_LOCUST_PORT:-26089}
export SWARM_STACK=${SWARM_STACK:-polyloop-swarm-test}
PY=${PY:-.venv/bin/python}
start=$SECONDS
trap 'bash scripts/swarm.sh down; echo "[swarm-test] total $((SECONDS - start)) s (deploy + tests + teardown)" >&2' EXIT
bash scripts/swarm.sh up
echo "[swarm-test] deployed and converged in $((SECONDS - start)) s" >&2
POLYLOOP_SWARM=1 "$PY" -m pytest tests/swarm -p no:cacheprovider -rA -s -q
