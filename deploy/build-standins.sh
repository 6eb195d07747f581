#!/usr/bin/env bash
# Build local stand-ins for the base images docker-compose.yml names, on machines that reach
# no container registry (only Debian's mirror and PyPI). Each stand-in is tagged with the real
# image's name, so the unmodified compose file and Dockerfile run; a tag that already exists,
# or that `docker pull` can fetch, is left alone.
#
#   bash deploy/build-standins.sh            # python:3.11-slim and valkey/valkey:8
#   FORCE=1 bash deploy/build-standins.sh    # rebuild even when the tags exist
#
# Stand-ins: a minimal Debian bookworm (debootstrap) with python3 3.11 + venv + pip, and one
# with Debian's redis-server 7 answering to valkey-server/valkey-cli. The host's CA bundle is
# copied into the Python stand-in (pip inside containers may go through a TLS-intercepting
# proxy); build stand-ins on the machine that uses them, never publish them.
set -euo pipefail

DOCKER=${DOCKER:-docker}
FORCE=${FORCE:-0}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE_TAG=local/bookworm:base
PYTHON_TAG=${PYTHON_IMAGE:-python:3.11-slim}
REDIS_TAG=${REDIS_IMAGE:-valkey/valkey:8}

log() { echo "build-standins: $*" >&2; }

have_image() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

# True when the image is here already (or pulled now) and FORCE is off.
present() {
    local tag=$1
    [ "$FORCE" = 1 ] && return 1
    have_image "$tag" && return 0
    if timeout 60 "$DOCKER" pull -q "$tag" >/dev/null 2>&1; then
        log "pulled $tag"
        return 0
    fi
    return 1
}

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT

build_base() {
    if [ "$FORCE" != 1 ] && have_image "$BASE_TAG"; then
        return
    fi
    command -v debootstrap >/dev/null || {
        log "debootstrap is missing: apt-get install -y debootstrap"
        exit 1
    }
    log "debootstrap bookworm (minbase) from $MIRROR"
    local rootfs="$workdir/rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$workdir/debootstrap.log" 2>&1 || {
        tail -20 "$workdir/debootstrap.log" >&2
        exit 1
    }
    echo "deb $MIRROR bookworm main" >"$rootfs/etc/apt/sources.list"
    rm -rf "$rootfs/var/cache/apt/archives/"*.deb
    tar -C "$rootfs" -c . | "$DOCKER" import - "$BASE_TAG" >/dev/null
    log "imported $BASE_TAG"
}

build_python() {
    present "$PYTHON_TAG" && return
    build_base
    local ctx="$workdir/python"
    mkdir -p "$ctx"
    cat /etc/ssl/certs/ca-certificates.crt >"$ctx/ca.crt"
    for extra in /usr/local/share/ca-certificates/*.crt; do
        [ -f "$extra" ] && cat "$extra" >>"$ctx/ca.crt"
    done
    cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $BASE_TAG
RUN apt-get update \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
       python3 python3-venv python3-pip ca-certificates \\
    && ln -sf /usr/bin/python3 /usr/local/bin/python \\
    && rm -rf /var/lib/apt/lists/*
COPY ca.crt /usr/local/share/standin-ca.crt
ENV PIP_CERT=/usr/local/share/standin-ca.crt \\
    SSL_CERT_FILE=/usr/local/share/standin-ca.crt \\
    REQUESTS_CA_BUNDLE=/usr/local/share/standin-ca.crt \\
    LANG=C.UTF-8
CMD ["python3"]
DOCKERFILE
    "$DOCKER" build -q -t "$PYTHON_TAG" "$ctx" >/dev/null
    log "built stand-in $PYTHON_TAG"
}

build_redis() {
    present "$REDIS_TAG" && return
    build_base
    local ctx="$workdir/redis"
    mkdir -p "$ctx"
    cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $BASE_TAG
RUN apt-get update \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
       redis-server redis-tools \\
    && ln -s /usr/bin/redis-server /usr/local/bin/valkey-server \\
    && ln -s /usr/bin/redis-cli /usr/local/bin/valkey-cli \\
    && mkdir -p /data \\
    && rm -rf /var/lib/apt/lists/*
WORKDIR /data
EXPOSE 6379
CMD ["valkey-server", "--protected-mode", "no"]
DOCKERFILE
    "$DOCKER" build -q -t "$REDIS_TAG" "$ctx" >/dev/null
    log "built stand-in $REDIS_TAG"
}

build_python
build_redis
log "ready: $PYTHON_TAG, $REDIS_TAG"
