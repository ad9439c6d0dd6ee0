#!/usr/bin/env bash
# The replicated stack on Docker Swarm, behind `make swarm-up | swarm-down | swarm-ps`.
#   scripts/swarm.sh up     init a single-node swarm when none is active (advertised on
#                           127.0.0.1), build the images, deploy, wait until every task is
#                           running and healthy, print the URL
#   scripts/swarm.sh down   remove the stack, wait until its tasks and network are gone, and
#                           leave the swarm if `up` created it
#   scripts/swarm.sh ps     the stack's services and tasks
# Variables (README "Docker Swarm"): SWARM_STACK (polyloop-swarm), SWARM_WEB_PORT (8081),
# SWARM_LOCUST_PORT (8090), SWARM_LOAD=1 (adds Locust), SWARM_<SERVICE>_REPLICAS,
# SWARM_BUILD_PROJECT (polyloop: images polyloop-<service>), SWARM_BUILD=0 (use the images
# as they are), SWARM_REGISTRY (host:port of a registry the nodes pull from: images are
# tagged and pushed there first), SWARM_WAIT_TIMEOUT (300 s).
set -euo pipefail
cd "$(dirname "$0")/.."

RUN=.run
STACK=${SWARM_STACK:-polyloop-swarm}
PROJECT=${SWARM_BUILD_PROJECT:-polyloop}
PY=${PY:-.venv/bin/python}
STACK_FILE=build/swarm/stack.yaml
CREATED=$RUN/swarm-created-by-polyloop
export COMPOSE_BAKE=false
log() { printf '[swarm] %s\n' "$*" >&2; }
load() { case "${SWARM_LOAD:-0}" in 1 | true | yes) return 0 ;; *) return 1 ;; esac; }

node_state() { docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || echo none; }

check_ipvs() {
    # Swarm's VIPs and routing mesh are IPVS in the kernel; without it they never answer
    if [ -e /proc/net/ip_vs ] || grep -qw ip_vs /proc/modules 2>/dev/null \
        || modprobe -n ip_vs 2>/dev/null; then
        log "IPVS: present. The stack still uses endpoint_mode dnsrr + host-mode ports (they work either way)."
    else
        log "IPVS: ABSENT in this kernel (no /proc/net/ip_vs, no ip_vs module): VIPs and the"
        log "  routing mesh cannot answer, so every service uses endpoint_mode dnsrr and the"
        log "  front is published in host mode (both work without IPVS)."
    fi
}

ensure_swarm() {
    case "$(node_state)" in
    active)
        if [ -f "$CREATED" ]; then
            log "the single-node swarm an earlier swarm-up created is active: deploying there"
        else
            log "this engine is already in a swarm: deploying there (swarm-down will not leave it)"
        fi
        ;;
    *)
        log "initialising a single-node swarm advertised on 127.0.0.1"
        docker swarm init --advertise-addr 127.0.0.1 >/dev/null
        mkdir -p "$RUN" && touch "$CREATED"
        ;;
    esac
}

# the stack's token as a swarm secret (deploy/swarm/stack.py mounts it in every service):
# made once from the stack's own (.env, written by make up), kept by every later deploy;
# a secret cannot change while a service uses it, so an existing one is left as it is
# (swarm-down removes it with the stack)
ensure_secret() {
    if docker secret inspect polyloop_admin_token >/dev/null 2>&1; then
        log "secret polyloop_admin_token: present (kept)"
        return
    fi
    "$PY" -m devstack token | tr -d '\n' \
        | docker secret create polyloop_admin_token - >/dev/null
    log "secret polyloop_admin_token: created from the stack's token (.env)"
}

build_images() {
    local prefix=$PROJECT- services=(dns tcp-echo udp-echo resolver web)
    if load; then services+=(locust-master locust-worker); fi
    if [ "${SWARM_BUILD:-1}" != 0 ]; then
        bash scripts/base-image.sh
        bash scripts/wheelhouse.sh
        log "building images ${prefix}<service> (docker compose -p $PROJECT build)"
        docker compose -p "$PROJECT" --profile load build --quiet "${services[@]}"
    fi
    for svc in "${services[@]}"; do
        docker image inspect "$prefix$svc:latest" >/dev/null 2>&1 \
            || { log "image $prefix$svc:latest is missing (SWARM_BUILD=0?)"; exit 1; }
    done
    if [ -n "${SWARM_REGISTRY:-}" ]; then
        log "pushing the images to $SWARM_REGISTRY (the other nodes pull from there)"
        for svc in "${services[@]}"; do
            docker tag "$prefix$svc:latest" "$SWARM_REGISTRY/$prefix$svc:latest"
            docker push --quiet "$SWARM_REGISTRY/$prefix$svc:latest" >/dev/null
        done
        export SWARM_IMAGE_PREFIX=$SWARM_REGISTRY/$prefix
    else
        export SWARM_IMAGE_PREFIX=$prefix
    fi
}

# every service at its replica count and done updating, every task's container healthy
converged() {
    local lines want=0 have=0 healthy ids
    ids=$(docker stack services "$STACK" -q 2>/dev/null) || return 1
    [ -n "$ids" ] || return 1
    # a redeploy rolls the tasks over one by one: the old ones look converged meanwhile
    # shellcheck disable=SC2086
    if docker service inspect $ids --format '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' \
        | grep -qE 'updating|paused|rollback_started'; then
        return 1
    fi
    lines=$(docker stack services "$STACK" --format '{{.Replicas}}' 2>/dev/null) || return 1
    while IFS=/ read -r running desired; do
        desired=${desired%% *}
        [ "$running" = "$desired" ] || return 1
        want=$((want + desired))
    done <<<"$lines"
    healthy=$(docker ps --filter "label=com.docker.stack.namespace=$STACK" \
        --filter health=healthy -q | wc -l)
    have=$(docker ps --filter "label=com.docker.stack.namespace=$STACK" -q | wc -l)
    [ "$healthy" -eq "$want" ] && [ "$have" -eq "$want" ]
}

wait_converged() {
    local deadline=$((SECONDS + ${SWARM_WAIT_TIMEOUT:-300}))
    log "waiting until every task runs and is healthy (at most ${SWARM_WAIT_TIMEOUT:-300} s)"
    until converged; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "not converged before the deadline:"
            docker stack ps "$STACK" --no-trunc --format '{{.Name}} {{.CurrentState}} {{.Error}}' | head -40 >&2
            exit 1
        fi
        sleep 2
    done
}

up() {
    docker info >/dev/null 2>&1 || { log "no Docker engine answers (make engine)"; exit 1; }
    check_ipvs
    ensure_swarm
    build_images
    ensure_secret
    mkdir -p build/swarm
    local args=()
    if load; then args+=(--load); fi
    "$PY" -m deploy.swarm.stack "${args[@]}" >"$STACK_FILE"
    log "deploying stack $STACK from $STACK_FILE (--resolve-image never: no registry asked)"
    docker stack deploy --resolve-image never -c "$STACK_FILE" "$STACK" >/dev/null
    local start=$SECONDS
    wait_converged
    log "stack $STACK converged in $((SECONDS - start)) s"
    docker stack services "$STACK" --format '  {{.Name}} {{.Replicas}}' >&2
    cat <<TXT

  dashboard   http://127.0.0.1:${SWARM_WEB_PORT:-8081}/   (host-mode port: bound on EVERY interface of the node)
TXT
    if load; then echo "  locust      http://127.0.0.1:${SWARM_LOCUST_PORT:-8090}/"; fi
    echo
}

down() {
    if docker stack ls --format '{{.Name}}' 2>/dev/null | grep -qx "$STACK"; then
        log "removing stack $STACK"
        docker stack rm "$STACK" >/dev/null
        local deadline=$((SECONDS + 60))
        while [ -n "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] \
            || docker network ls --format '{{.Name}}' | grep -q "^${STACK}_"; do
            if [ "$SECONDS" -ge "$deadline" ]; then
                log "the stack's containers or network are still there after 60 s"
                exit 1
            fi
            sleep 1
        done
        # unused now: the next swarm-up makes it again from the stack's token of the day
        docker secret rm polyloop_admin_token >/dev/null 2>&1 || true
    fi
    if [ -f "$CREATED" ]; then
        log "leaving the single-node swarm this project created"
        docker swarm leave --force >/dev/null 2>&1 || true
        docker network rm docker_gwbridge >/dev/null 2>&1 || true
        rm -f "$CREATED"
    fi
}

case "${1:-}" in
up) up ;;
down) down ;;
ps) docker stack services "$STACK" && docker stack ps "$STACK" --format '{{.Name}} {{.CurrentState}} {{.Error}}' ;;
wait) wait_converged ;;
*) echo "usage: $0 up|down|ps|wait" >&2; exit 2 ;;
esac
