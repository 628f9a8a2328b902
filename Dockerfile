# fieldlab: one image with the CLI and every simulator. A container runs one simulator:
#   docker run fieldlab serve connect-proxy --options '{"host":"0.0.0.0","port":3128}' --ready-file /tmp/ready.json
#
# Build from a checkout where `npm ci` has run (scripts/setup.sh does): the build stage compiles and prunes
# the locked dependencies offline, so building needs no registry. BASE_IMAGE is any Debian-based image with
# Node 20 (the official node:20-bookworm-slim by default; scripts/docker-base-image.sh makes one locally,
# with the Debian clients the `device` service runs).
ARG BASE_IMAGE=node:20-bookworm-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
COPY node_modules ./node_modules
COPY harness ./harness
COPY simulators ./simulators
COPY examples ./examples
COPY bench ./bench
RUN node node_modules/typescript/bin/tsc -p tsconfig.json \
 && npm prune --omit=dev --ignore-scripts --offline --no-audit --no-fund --loglevel=error

FROM ${BASE_IMAGE} AS runtime
# The clients a `device` container runs, from Debian's packages (the local base image has them already;
# scripts/docker-base-image.sh reads this list).
ARG DEVICE_PACKAGES="ca-certificates curl openssl dnsutils mosquitto-clients openssh-client openssh-server iproute2 procps"
RUN command -v curl >/dev/null && command -v mosquitto_pub >/dev/null && [ -x /usr/sbin/sshd ] || { \
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        ${DEVICE_PACKAGES} \
      && rm -rf /var/lib/apt/lists/*; }
# A fixed non-root user: files it writes to shared volumes (the lab CA) keep one owner. It has a shell:
# the sshd simulator lets its own user log in (the tunnel scenarios ssh through the tunnel).
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /bin/sh fieldlab \
 && mkdir -p /lab && chown fieldlab:fieldlab /lab
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY scenarios ./scenarios
# The user's files some scenarios hand their client (IoT Edge's config.toml and deployment manifests).
COPY examples/edge ./examples/edge
# fieldlab-tls-front (aws-iot `maxFragmentLength: ignore`): the static binary scripts/build-tls-front.sh
# left in tools/tls-front/bin, when it was built (the simulators look for it there).
COPY tools/tls-front ./tools/tls-front
ENV NODE_ENV=production FIELDLAB_READY_FILE=/tmp/fieldlab-ready.json
USER fieldlab
# Healthy once the simulator `serve` started answers on every TCP endpoint it reported.
HEALTHCHECK --interval=2s --timeout=5s --start-period=20s --retries=15 \
  CMD ["node", "/app/dist/harness/cli/bin.js", "health"]
ENTRYPOINT ["node", "/app/dist/harness/cli/bin.js"]
CMD ["--help"]
