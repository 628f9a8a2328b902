#!/usr/bin/env bash
# fieldlab set-up for Debian 12 (bookworm): installs the system parts the scenario catalogue, the tests
# and the benchmarks use, then the npm dependencies, then builds. Idempotent: a second run installs
# nothing and takes seconds. Runs as root, or as a user with sudo.
#
#   scripts/setup.sh            everything
#   FIELDLAB_SETUP_SKIP_APT=1   skip system packages (e.g. when they come from elsewhere)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*"; }

if [ "$(id -u)" -eq 0 ]; then SUDO=(); elif command -v sudo >/dev/null; then SUDO=(sudo); else SUDO=(); fi

# Real clients and reference servers the project drives (Debian packages, never downloaded binaries):
#   curl openssl dnsutils(dig) mosquitto-clients  clients under test
#   util-linux(unshare) iproute2 nftables          the lab's namespaces and firewalls
#   squid dnsmasq dnsperf mosquitto mitmproxy      references for `npm run bench`
#   openssh-server/client wireguard-tools          tunnel and VPN scenarios
#   wireguard-go                                   WireGuard in namespaces without the kernel module
#   openjdk-17-jdk-headless maven                  the official Azure IoT Java SDK (a strict AMQP client)
#   awscli (only when no `aws` is on PATH)         SigV4 on the tunnel management API from the AWS CLI
#   chromium                                       renders the HTML report in a test (playwright-core)
APT_PACKAGES=(
  ca-certificates curl openssl dnsutils mosquitto-clients util-linux iproute2 nftables
  squid dnsmasq dnsperf mosquitto mitmproxy openssh-server openssh-client wireguard-tools wireguard-go git
  openjdk-17-jdk-headless maven chromium
)
command -v aws >/dev/null || APT_PACKAGES+=(awscli)

if [ "${FIELDLAB_SETUP_SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] && [ ${#SUDO[@]} -eq 0 ]; then
      echo "setup: missing Debian packages: ${missing[*]}" >&2
      echo "setup: run this script as root, or install them: apt-get install ${missing[*]}" >&2
      exit 1
    fi
    log "installing ${missing[*]}"
    "${SUDO[@]}" apt-get update -qq
    # Services in these packages (squid, dnsmasq, mosquitto, ssh) must not start system-wide: fieldlab
    # starts its own instances on lab addresses. policy-rc.d 101 forbids starting them during install.
    added_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
      "${SUDO[@]}" chmod +x /usr/sbin/policy-rc.d
      added_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
    [ "$added_policy" = 1 ] && "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
  else
    log "system packages present"
  fi
fi

# Node 20.18+ (fieldlab's floor; undici 7 needs it).
if ! command -v node >/dev/null; then
  echo "setup: Node.js 20 is not installed (apt-get install nodejs npm, or your usual Node install)" >&2
  exit 1
fi
node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<18)) { console.error(`setup: Node ${process.version} is too old: fieldlab needs >= 20.18`); process.exit(1) }'

# npm dependencies: only when the lock file changed since the last install.
stamp=node_modules/.fieldlab-lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
else
  log "npm dependencies up to date"
fi

log "building"
npm run --silent build
# fieldlab-tls-front (Go crypto/tls, standard library only) for aws-iot `maxFragmentLength: ignore`; before
# the image, which copies it in.
bash scripts/build-tls-front.sh || log "fieldlab-tls-front not built: maxFragmentLength: ignore is unavailable and its tests skip (or fail under FIELDLAB_REQUIRE)"

# Containers (docker-compose.yml, the fieldlab image): a Docker engine, Debian's docker.io where none
# runs, started without touching the host's firewall (lab networks never leave the machine). Then the
# image, on a base made from the machine's Debian mirror and Node when no registry serves one.
#   FIELDLAB_SETUP_SKIP_DOCKER=1   skip all of it
if [ "${FIELDLAB_SETUP_SKIP_DOCKER:-0}" != 1 ]; then
  if ! docker info >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
      log "no Docker engine answers and not root: container tests skip (or fail under FIELDLAB_REQUIRE)"
    else
      if ! command -v dockerd >/dev/null || ! command -v docker-compose >/dev/null || ! command -v debootstrap >/dev/null; then
        log "installing docker.io docker-compose debootstrap"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
          docker.io docker-compose debootstrap containerd runc iptables >/dev/null
      fi
      log "starting dockerd (no iptables changes, no default bridge)"
      mkdir -p /var/log/fieldlab
      setsid nohup dockerd --iptables=false --ip-masq=false --bridge=none >/var/log/fieldlab/dockerd.log 2>&1 &
      for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
      docker info >/dev/null 2>&1 || { tail -20 /var/log/fieldlab/dockerd.log >&2; exit 1; }
    fi
  fi
  if docker info >/dev/null 2>&1; then
    if [ -z "${BASE_IMAGE:-}" ]; then
      # The official image when the engine can pull it, else one built here.
      if docker image inspect node:20-bookworm-slim >/dev/null 2>&1 || timeout 60 docker pull -q node:20-bookworm-slim >/dev/null 2>&1; then
        BASE_IMAGE=node:20-bookworm-slim
      else
        BASE_IMAGE="$(bash scripts/docker-base-image.sh)"
      fi
    fi
    BASE_IMAGE="$BASE_IMAGE" bash scripts/docker-image.sh >/dev/null
    log "image ${FIELDLAB_IMAGE:-fieldlab:local} built on $BASE_IMAGE"
  fi
fi

# k6 for `fieldlab load` (built from the Go module proxy; without it the built-in Node driver runs).
bash scripts/install-k6.sh || log "k6 not installed: \`fieldlab load\` uses its Node driver and k6 tests skip (or fail under FIELDLAB_REQUIRE)"
log "done"
