#!/usr/bin/env bash
# Installs k6 (the load-test runner behind `fieldlab load`) by building it from source with
# `go install`: the only download is from the Go module proxy (GOPROXY), never a prebuilt binary.
# Idempotent: when `k6 version` already prints the pinned version, it does nothing.
#
#   scripts/install-k6.sh              install into $GOBIN (default $HOME/go/bin)
#   GOBIN=/usr/local/bin scripts/install-k6.sh
#
# Building k6 takes several minutes on a small machine. fieldlab finds k6 on PATH or in
# $HOME/go/bin and /root/go/bin (harness/capabilities.ts), so PATH need not change.
set -euo pipefail

# Pinned: the newest release on the module proxy that builds with the installed Go (k6 v1.8.1 needs
# Go >= 1.25). Check others with `go list -m -versions go.k6.io/k6`.
K6_VERSION="v1.8.1"

log() { printf 'install-k6: %s\n' "$*"; }

GOBIN="${GOBIN:-$HOME/go/bin}"
export GOBIN

# Already there? Look on PATH first, then where `go install` puts it.
for k6 in "$(command -v k6 2>/dev/null || true)" "$GOBIN/k6"; do
  [ -n "$k6" ] && [ -x "$k6" ] || continue
  # `k6 version` prints e.g. "k6 v1.8.1 (commit/devel, go1.26.8, linux/amd64)".
  if "$k6" version 2>/dev/null | grep -qF "k6 ${K6_VERSION} "; then
    log "k6 ${K6_VERSION} already installed at $k6"
    exit 0
  fi
done

# The official Go tarball installs to /usr/local/go, often not on a root or sudo PATH.
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then PATH="/usr/local/go/bin:$PATH"; fi
if ! command -v go >/dev/null; then
  echo "install-k6: go is not installed: k6 is built with \`go install\` (Go >= 1.25)." >&2
  echo "install-k6: install Go (Debian: apt-get install golang-go, if new enough; or https://go.dev/dl/)," >&2
  echo "install-k6: then run scripts/install-k6.sh again." >&2
  echo "install-k6: (without k6, \`fieldlab load\` uses its built-in Node driver)" >&2
  exit 1
fi

log "building k6 ${K6_VERSION} with $(go version | awk '{print $3}') into $GOBIN (takes a few minutes)"
mkdir -p "$GOBIN"
go install "go.k6.io/k6@${K6_VERSION}"
"$GOBIN/k6" version
log "installed $GOBIN/k6"
