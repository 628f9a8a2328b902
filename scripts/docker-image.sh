#!/usr/bin/env bash
# Builds the fieldlab image (fieldlab:local, or $FIELDLAB_IMAGE) from this checkout, which must have run
# `npm ci` (scripts/setup.sh does). BASE_IMAGE defaults to the official Node 20 image; where no registry
# is reachable, scripts/docker-base-image.sh makes one from the machine's Debian mirror and Node:
#
#   BASE_IMAGE=$(scripts/docker-base-image.sh) scripts/docker-image.sh
#
# The classic builder: it needs nothing but the Docker engine (no buildx plugin).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE="${FIELDLAB_IMAGE:-fieldlab:local}"
BASE="${BASE_IMAGE:-node:20-bookworm-slim}"
[ -d node_modules ] || { echo "docker-image: run npm ci first (scripts/setup.sh does)" >&2; exit 1; }
printf 'docker-image: building %s on %s\n' "$IMAGE" "$BASE" >&2
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! DOCKER_BUILDKIT=0 docker build --build-arg "BASE_IMAGE=$BASE" -t "$IMAGE" . >"$log" 2>&1; then
  tail -25 "$log" >&2
  echo "docker-image: the build failed (without registry access: BASE_IMAGE=\$(scripts/docker-base-image.sh))" >&2
  exit 1
fi
echo "$IMAGE"
