#!/usr/bin/env bash
# kustomize for rendering deploy/k8s offline: the one on PATH, else built once from the Go module proxy into
# the cache (outside the work tree). Prints the path of the binary.
set -euo pipefail

KUSTOMIZE_VERSION=${LINEGUARD_KUSTOMIZE_VERSION:-v5.5.0}
cache=${LINEGUARD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lineguard}/tools/kustomize-$KUSTOMIZE_VERSION

if command -v kustomize >/dev/null 2>&1; then
    command -v kustomize
    exit 0
fi
if [[ ! -x $cache/bin/kustomize ]]; then
    if ! command -v go >/dev/null 2>&1; then
        echo "error: kustomize is missing and there is no Go toolchain to build it" >&2
        exit 1
    fi
    echo "building kustomize $KUSTOMIZE_VERSION into $cache (once)" >&2
    mkdir -p "$cache"
    GOBIN=$cache/bin GOPATH=$cache/gopath GOFLAGS=-mod=mod GOTOOLCHAIN=local \
        go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >&2
    chmod -R u+w "$cache/gopath" && rm -rf "$cache/gopath"
fi
echo "$cache/bin/kustomize"
