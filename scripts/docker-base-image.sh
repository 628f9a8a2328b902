#!/usr/bin/env bash
# Builds fieldlab's container base image without a container registry: a minimal Debian 12 made with
# debootstrap from the machine's own Debian mirror, plus the machine's Node.js 20 and npm, imported with
# `docker import`. The Dockerfile takes it as BASE_IMAGE where the official Node image cannot be pulled.
# Idempotent: does nothing when the image exists (FIELDLAB_BASE_REBUILD=1 rebuilds). Needs root.
#
#   scripts/docker-base-image.sh            builds fieldlab-base:bookworm-node20 (prints the name)
#
# The clients a scenario's `device` container runs come from Debian's packages, as on the host.
set -euo pipefail

IMAGE="${FIELDLAB_BASE_IMAGE:-fieldlab-base:bookworm-node20}"
# The Dockerfile's list, so the two never differ.
PACKAGES="$(sed -n 's/^ARG DEVICE_PACKAGES="\(.*\)"$/\1/p' "$(dirname "$0")/../Dockerfile" | tr ' ' ',')"
[ -n "$PACKAGES" ] || { echo "docker-base-image: no DEVICE_PACKAGES in the Dockerfile" >&2; exit 1; }

log() { printf 'docker-base-image: %s\n' "$*" >&2; }

if [ "${FIELDLAB_BASE_REBUILD:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "$IMAGE present"
  echo "$IMAGE"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { log "needs root (debootstrap)"; exit 1; }
command -v debootstrap >/dev/null || { log "debootstrap is not installed: apt-get install debootstrap"; exit 1; }

# The Debian mirror apt already uses (deb822 `URIs:` or a one-line `deb URL bookworm main`).
mirror="$(
  { cat /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } |
    awk '/^URIs:/ { uri = $2 } /^Suites:/ && / bookworm( |$)/ && uri != "" { print uri; exit }'
)"
if [ -z "$mirror" ]; then
  mirror="$(
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      awk '$1 == "deb" && $3 == "bookworm" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }'
  )"
fi
[ -n "$mirror" ] || { log "no Debian bookworm mirror in /etc/apt/sources.list*"; exit 1; }

node_bin="$(command -v node)"
npm_dir="$(dirname "$(readlink -f "$(command -v npm)")")/.."
node -e 'process.exit(process.versions.node.split(".")[0] === "20" ? 0 : 1)' ||
  { log "the machine's Node is $(node --version), not 20"; exit 1; }

root="$(mktemp -d /tmp/fieldlab-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT
log "debootstrap bookworm (minbase + ${PACKAGES}) from the machine's mirror"
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" "$mirror" >"$root.log" 2>&1 ||
  { tail -20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"

log "adding $(node --version) and npm"
install -m 0755 "$node_bin" "$root/usr/local/bin/node"
mkdir -p "$root/usr/local/lib/node_modules"
cp -a "$(readlink -f "$npm_dir")" "$root/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
# Smaller image: no package lists, caches or docs.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* "$root"/usr/share/man/*

log "docker import as $IMAGE"
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["node"]' \
  - "$IMAGE" >/dev/null
echo "$IMAGE"
