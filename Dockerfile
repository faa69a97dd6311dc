# iomux built from source and tested in a Linux container.
#
#   docker build --network=host -t iomux-test .            # FROM the official node:20-bookworm
#   docker run --rm --network=none \
#     --security-opt seccomp=docker/seccomp-io_uring.json iomux-test
#
# `npm run test:docker` (scripts/test-docker.sh) does all of it: both seccomp
# runs and the clean-install check. Where no image can be pulled, build a base
# with scripts/docker-base.sh and pass it: --build-arg BASE=iomux-base:bookworm-node20.
# An extra CA bundle (NODE_EXTRA_CA_CERTS on the host, e.g. behind a
# TLS-intercepting proxy) is picked up from .docker-extra-ca.pem when present;
# scripts/test-docker.sh puts it there.
ARG BASE=node:20-bookworm

# ---- test: build from source (liburing linked statically) and run npm test
FROM ${BASE} AS test
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates liburing-dev pkg-config python3 make g++ cmake wrk \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /iomux
# Dependencies first, so editing the sources does not refetch them. The
# glob lets the CA file be absent.
COPY package.json package-lock.json .docker-extra-ca.pe[m] ./
RUN if [ -s .docker-extra-ca.pem ]; then export NODE_EXTRA_CA_CERTS=$PWD/.docker-extra-ca.pem; fi \
 && npm ci --ignore-scripts --no-audit --no-fund
COPY . .
# From source, whatever prebuilds/ holds: node-gyp-build prefers build/Release.
# Then the tarball, installed once into a scratch directory: that puts the
# metadata of its runtime dependencies into the npm cache (npm ci caches only
# tarballs), so test/prebuild.test.ts can install it with --offline (the
# tests run with --network=none).
RUN npx node-gyp rebuild \
 && npm run build:ts \
 && node -e "require('node-gyp-build').path('.').includes('build/Release') || process.exit(1)" \
 && npm pack --ignore-scripts --silent \
 && if [ -s .docker-extra-ca.pem ]; then export NODE_EXTRA_CA_CERTS=$PWD/.docker-extra-ca.pem; fi \
 && mkdir /tmp/warm && echo '{ "name": "warm", "private": true }' > /tmp/warm/package.json \
 && (cd /tmp/warm && npm install --ignore-scripts --no-audit --no-fund /iomux/iomux-*.tgz) \
 && rm -rf /tmp/warm .docker-extra-ca.pem
CMD ["npm", "test"]

# ---- clean-install: the packed tarball into an image without a compiler
# (the base as is) with install scripts off: only the committed prebuild can
# make it load.
FROM ${BASE} AS clean-install
WORKDIR /app
COPY --from=test /iomux/iomux-*.tgz /tmp/
COPY package.json .docker-extra-ca.pe[m] /tmp/ca/
RUN if [ -s /tmp/ca/.docker-extra-ca.pem ]; then export NODE_EXTRA_CA_CERTS=/tmp/ca/.docker-extra-ca.pem; fi \
 && echo '{ "name": "clean-install", "private": true }' > package.json \
 && npm install --ignore-scripts --no-audit --no-fund /tmp/iomux-*.tgz \
 && rm -rf /tmp/ca
CMD ["node", "-e", "const i = require('iomux'); console.log(JSON.stringify({ addon: require('node-gyp-build').path(require('path').dirname(require.resolve('iomux/package.json'))), backends: i.backends() }))"]
