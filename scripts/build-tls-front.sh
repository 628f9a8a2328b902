#!/usr/bin/env bash
# Builds fieldlab-tls-front (tools/tls-front: Go's crypto/tls in front of a simulator, standard library
# only, nothing downloaded) into tools/tls-front/bin/, where the simulators and the image look for it.
# Idempotent: does nothing when the binary is newer than its sources.
#
#   scripts/build-tls-front.sh
set -euo pipefail
cd "$(dirname "$0")/../tools/tls-front"

log() { printf 'build-tls-front: %s\n' "$*"; }

out=bin/fieldlab-tls-front
if [ -x "$out" ] && [ -z "$(find main.go go.mod -newer "$out")" ]; then
  log "$out is up to date"
  exit 0
fi

# The official Go tarball installs to /usr/local/go, often not on a root or sudo PATH.
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then PATH="/usr/local/go/bin:$PATH"; fi
if ! command -v go >/dev/null; then
  echo "build-tls-front: go is not installed (Go >= 1.21: Debian's golang-go where new enough, or https://go.dev/dl/)" >&2
  echo "build-tls-front: without it the aws-iot persona's maxFragmentLength: ignore is unavailable" >&2
  exit 1
fi

# Static (no cgo), so the same binary runs in the fieldlab image.
mkdir -p bin
CGO_ENABLED=0 GOFLAGS=-mod=mod GOPROXY=off go build -trimpath -ldflags='-s -w' -o "$out.tmp" .
mv "$out.tmp" "$out"
log "built tools/tls-front/$out with $(go version | awk '{print $3}')"
