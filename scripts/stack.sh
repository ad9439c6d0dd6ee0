#!/usr/bin/env bash
# The stack's lifecycle behind `make up|down|ps|logs`.
#   scripts/stack.sh up     containers when a Docker engine answers, else local processes
#                           (`python -m devstack up|down|ps|logs`: devstack/ runs those)
#   scripts/stack.sh down   stops whichever mode is running
#   scripts/stack.sh ps | logs
#   POLYLOOP_PYPY=1 scripts/stack.sh up    tcp-echo and dns on PyPy (compose.pypy.yaml)
# The mode in use is kept in .run/mode ("docker" or "local"); tests read it too. The
# compose files of the running stack are kept in .run/compose-file, so down/ps/logs and
# the tests act on the PyPy stack without being told again.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN=.run
PY=${PY:-.venv/bin/python}
export COMPOSE_BAKE=false
log() { printf '[polyloop] %s\n' "$*" >&2; }

pypy() { case "${POLYLOOP_PYPY:-0}" in 1 | true | yes) return 0 ;; *) return 1 ;; esac; }
if [ "${1:-}" = up ]; then
    if pypy; then export COMPOSE_FILE=${COMPOSE_FILE:-compose.yaml}:compose.pypy.yaml; fi
elif [ -z "${COMPOSE_FILE:-}" ] && [ -s "$RUN/compose-file" ]; then
    COMPOSE_FILE=$(cat "$RUN/compose-file")
    export COMPOSE_FILE
fi

engine_answers() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }
mode() { cat "$RUN/mode" 2>/dev/null || true; }
host() { local b=${POLYLOOP_BIND:-127.0.0.1}; [ "$b" = 0.0.0.0 ] && b=127.0.0.1; echo "$b"; }

urls() {
    local h; h=$(host)
    cat <<TXT

  dashboard   http://$h:${WEB_PORT:-8080}/            (API: /api/openapi.json, /metrics, /readyz)
  tcp-echo    nc $h ${TCP_ECHO_PORT:-8000}                         (Twisted)
  udp-echo    nc -u $h ${UDP_ECHO_PORT:-9999}                      (asyncio)
  resolver    curl -d '{"names":["www.polyloop.test"]}' http://$h:${RESOLVER_PORT:-8053}/resolve   (gevent)
  dns         dig +norec @$h -p ${DNS_PORT:-1053} www.polyloop.test   (Twisted Names)

TXT
}

up_docker() {
    docker compose version >/dev/null 2>&1 \
        || { log "the Docker engine answers but 'docker compose' (v2) is missing: run 'make engine'"; exit 1; }
    bash scripts/base-image.sh
    bash scripts/wheelhouse.sh
    if [[ ",${COMPOSE_PROFILES:-}," == *,observe,* ]]; then
        log "profile observe: Prometheus from Debian's package"
        bash scripts/base-image.sh --prometheus
    fi
    if pypy; then
        log "POLYLOOP_PYPY=1: tcp-echo and dns on PyPy ($COMPOSE_FILE)"
        bash scripts/base-image.sh --pypy
        bash scripts/wheelhouse.sh --pypy
    fi
    # an engine from 25 on (API 1.44) checks a starting container every start_interval
    # (compose refuses the key on older ones, Debian's 20.10: they check after 30 s)
    local api
    api=$(docker version --format '{{.Server.APIVersion}}' 2>/dev/null || echo 0)
    if printf '1.44\n%s\n' "$api" | sort -V -C; then
        export COMPOSE_FILE=${COMPOSE_FILE:-compose.yaml}:deploy/compose.start-interval.yaml
    else
        log "Docker Engine API $api (before 25): each service is healthy at its first check, after 30 s"
    fi
    log "building images"
    docker compose build --quiet
    log "starting containers and waiting until every service is healthy"
    docker compose up -d --wait --wait-timeout 180 --remove-orphans
    mkdir -p "$RUN" && echo docker >"$RUN/mode"
    if [ -n "${COMPOSE_FILE:-}" ]; then echo "$COMPOSE_FILE" >"$RUN/compose-file"; else rm -f "$RUN/compose-file"; fi
    log "stack is up in containers"
    urls
}

up_local() {
    log "NO DOCKER ENGINE ANSWERS: the stack runs as LOCAL PROCESSES (python -m devstack)"
    [ -x "$PY" ] || { log "no $PY: run 'make venv' first"; exit 1; }
    "$PY" -m devstack up
    urls
}

# the secret that changes faults, made once into .env (gitignored) when POLYLOOP_ADMIN_TOKEN
# is unset: compose reads .env on every command, devstack passes it to every process
admin_token() {
    [ -x "$PY" ] || return 0
    POLYLOOP_ADMIN_TOKEN=$("$PY" -m devstack token)
    export POLYLOOP_ADMIN_TOKEN
}

case "${1:-}" in
up)
    admin_token
    if engine_answers; then up_docker; else up_local; fi ;;
down)
    case "$(mode)" in
    local) "$PY" -m devstack down ;;
    *) if engine_answers; then docker compose --profile load --profile observe down --remove-orphans; fi ;;
    esac
    rm -f "$RUN/mode" "$RUN/compose-file" ;;
ps | logs)
    # the mode `make up` recorded; with none, containers only if an engine answers
    if [ "$(mode)" = local ]; then
        exec "$PY" -m devstack "$1"
    elif [ "$(mode)" = docker ] || engine_answers; then
        if [ "$1" = ps ]; then docker compose --profile load --profile observe ps
        else docker compose --profile load --profile observe logs -f --tail 50; fi
    else
        log "nothing is running: no stack was started by 'make up' (and no Docker engine answers)"
    fi ;;
*)
    echo "usage: $0 up|down|ps|logs" >&2; exit 2 ;;
esac
