#!/usr/bin/env bash
# Make `docker compose` available for validating docker-compose*.yml (`docker compose config`), without a
# daemon. Uses the plugin when it is there; else builds Docker Compose v2 from the Go module proxy once into
# the cache (outside the work tree) and links it as a CLI plugin. Prints the path of the plugin it uses.
set -euo pipefail

COMPOSE_MODULE=github.com/docker/compose/v2/cmd
COMPOSE_VERSION=${LINEGUARD_COMPOSE_VERSION:-v2.29.7}
cache=${LINEGUARD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lineguard}/tools/compose-$COMPOSE_VERSION
plugins=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins

if docker compose version >/dev/null 2>&1; then
    command -v docker
    exit 0
fi
if ! command -v docker >/dev/null 2>&1; then
    echo "error: no docker client to hang the compose plugin on" >&2
    exit 1
fi
if [[ ! -x $cache/bin/cmd ]]; then
    if ! command -v go >/dev/null 2>&1; then
        echo "error: docker compose is missing and there is no Go toolchain to build it" >&2
        exit 1
    fi
    echo "building docker compose $COMPOSE_VERSION into $cache (once)" >&2
    mkdir -p "$cache"
    GOBIN=$cache/bin GOPATH=$cache/gopath GOFLAGS=-mod=mod GOTOOLCHAIN=local \
        go install "$COMPOSE_MODULE@$COMPOSE_VERSION" >&2
    chmod -R u+w "$cache/gopath" && rm -rf "$cache/gopath"  # the module cache: hundreds of MB, not needed
fi
mkdir -p "$plugins"
ln -sf "$cache/bin/cmd" "$plugins/docker-compose"
docker compose version >&2
echo "$plugins/docker-compose"
