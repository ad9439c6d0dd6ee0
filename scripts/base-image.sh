#!/usr/bin/env bash
# Make the base image every service image builds FROM, without a registry if need be.
#   bash scripts/base-image.sh [TAG]          (default polyloop-base:3.11)
#   bash scripts/base-image.sh --pypy [TAG]   (default polyloop-pypy-base:3.9)
#   bash scripts/base-image.sh --prometheus [TAG]   (default polyloop-prometheus-base:2.42)
# 1. If TAG exists already: nothing to do (a warm `make up` costs nothing here).
# 2. Else try `docker pull python:3.11-slim-bookworm` and tag it.
# 3. Else build a minimal Debian bookworm root file system with debootstrap (python3,
#    python3-venv: Python 3.11, the same minor version as the slim image, so one
#    wheelhouse serves both) and `docker import` it. The Debian mirror is read from
#    this machine's own apt sources at run time; none is written in the repo.
# --pypy: the base of the PyPy images of the Twisted services (compose.pypy.yaml):
# Debian's own pypy3 + pypy3-venv (PyPy 7.3.11, Python 3.9), always from debootstrap,
# never pulled: the official pypy images carry another PyPy than the one measured here.
# --prometheus: the base of the compose profile `observe`: Debian's own `prometheus`
# package (2.42) and what its UI needs (the libjs-* packages are among its Depends, which
# debootstrap resolves), always from debootstrap: no registry image is pulled.
set -euo pipefail

packages=python3,python3-venv,ca-certificates
upstream=python:3.11-slim-bookworm
default_tag=polyloop-base:3.11
cmd=python3
if [ "${1:-}" = --pypy ]; then
    shift
    packages=pypy3,pypy3-venv,ca-certificates
    upstream=""
    default_tag=polyloop-pypy-base:3.9
    cmd=pypy3
elif [ "${1:-}" = --prometheus ]; then
    shift
    packages=prometheus,ca-certificates
    upstream=""
    default_tag=polyloop-prometheus-base:2.42
    cmd=prometheus
fi
tag=${1:-$default_tag}
log() { printf '[base-image] %s\n' "$*" >&2; }

if docker image inspect "$tag" >/dev/null 2>&1; then
    exit 0
fi

if [ -n "$upstream" ] && docker pull -q "$upstream" >/dev/null 2>&1; then
    docker tag "$upstream" "$tag"
    log "$tag <- $upstream (pulled)"
    exit 0
fi
if [ -n "$upstream" ]; then
    log "cannot pull $upstream (no registry?): building $tag from Debian packages"
else
    log "building $tag from Debian packages ($packages)"
fi

mirror() {
    # deb822 sources first ("URIs: ..."), then the one-line format ("deb URL bookworm main")
    local uri
    uri=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{print $2}' | grep -v -- '-security' | head -1 || true)
    if [ -z "$uri" ]; then
        uri=$(grep -h '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | awk '{print $2}' | grep -v -- '-security' | head -1 || true)
    fi
    [ -n "$uri" ] || { log "no Debian mirror in this machine's apt sources"; exit 1; }
    printf '%s' "$uri"
}

if ! command -v debootstrap >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

rootfs=$(mktemp -d /tmp/polyloop-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include="$packages" \
    bookworm "$rootfs" "$(mirror)" >/tmp/polyloop-debootstrap.log 2>&1 \
    || { log "debootstrap failed; see /tmp/polyloop-debootstrap.log"; exit 1; }
# lean: apt's caches and the docs are not needed at run time (~265 MB -> ~170 MB)
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
tar -C "$rootfs" -c . | docker import \
    --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "CMD [\"$cmd\"]" - "$tag" >/dev/null
log "$tag built from Debian bookworm ($(docker image inspect -f '{{.Size}}' "$tag" | numfmt --to=iec))"
