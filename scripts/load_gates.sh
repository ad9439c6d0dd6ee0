#!/usr/bin/env bash
# `make load`: a headless, bounded Locust run of loadtest/ against the running stack.
#
# Writes reports/load/report.html and reports/load/load_*.csv, and exits non-zero when a gate of
# loadtest/budgets.toml is breached (failure ratio, p95 per request): the gates live in
# loadtest/_gates.py and set Locust's own exit code. Extra arguments go to Locust.
#
#   LOAD_USERS=20 LOAD_RATE=10 LOAD_TIME=20s scripts/load_gates.sh  (the defaults: set here
#                                                                  only; make load's USERS,
#                                                                  RATE, DURATION override them)
#   LOAD_REPORTS=dir scripts/load_gates.sh                        # reports elsewhere
#   LOAD_BUDGETS=path/to/budgets.toml scripts/load_gates.sh      # other gates
#   LOAD_SHAPE=step scripts/load_gates.sh                         # or spike
#   scripts/load_gates.sh --tags dns udp                          # some users only
#   LOAD_FAULTS='resolver@5+10:latency_ms=200' scripts/load_gates.sh  # faults set mid-run
#
# Targets: WEB_HOST/WEB_PORT, TCP_ECHO_HOST/..., as the README documents (127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."

locust="${LOCUST:-.venv/bin/locust}"
reports="${LOAD_REPORTS:-reports/load}"
users="${LOAD_USERS:-20}" rate="${LOAD_RATE:-10}" time="${LOAD_TIME:-20s}"
mkdir -p "$reports"
log() { printf '[polyloop] %s\n' "$*" >&2; }

log "load: $users users, spawned $rate/s, for $time (locust -f loadtest --headless${*:+ $*})"
rc=0
"$locust" -f loadtest --headless --users "$users" --spawn-rate "$rate" --run-time "$time" \
    --html "$reports/report.html" --csv "$reports/load" --only-summary "$@" || rc=$?
if [ -s "$reports/report.html" ]; then
    log "report: $reports/report.html (CSV: $reports/load_*.csv)"
fi
[ "$rc" = 0 ] || log "load run FAILED (exit $rc): the lines above say why"
exit "$rc"
